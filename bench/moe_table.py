#!/usr/bin/env python3
"""The tables of bench/moe_peers.sh: maskgen's moe_bench medians beside llama.cpp's figures of the
same round, then per-layer figures from the difference of two depths, medians over the rounds.

   python3 bench/moe_table.py RESULTS_DIR

Reads RESULTS_DIR/r<round>-<L>l-{maskgen.json,llama-pp.json,llama-tg.json,batched.jsonl} and
memory-<L>l.txt, memory-<L>l-llama.txt. Cases (tokens/s; higher is better):
  decode 1    BM_MoeDecode/1 (context 256-320)      llama-bench tg64 at depth 256
  decode 16   BM_MoeDecode/16 (context 128-192)     llama-batched-bench S_TG at 16 sequences
  prefill 128 BM_MoePrefill/1                       llama-bench pp128
Per layer: a case's time for one step (1 token; 16 tokens; 128 tokens) at the deepest stack minus
that at the shallowest, over the layers between them; the head, the embedding and everything else
paid once a step cancel. Against it: the bytes one layer's step reads (at 1 row: attention +
router + the 8 routed experts, maskgen's stored width; at 16 rows: the expected experts that 16
tokens choose under uniform routing) over the read bandwidth maskgen measured in the same run,
and 2 x the layer's active parameters x tokens over the same time (GFLOP/s). "48 layers" scales
the per-layer time to Qwen3-30B-A3B's depth plus the once-a-step part.
"""
import json
import pathlib
import re
import statistics
import sys

CASES = [("decode 1", "BM_MoeDecode/1", 1), ("decode 16", "BM_MoeDecode/16", 16), ("prefill 128", "BM_MoePrefill/1", 128)]


def maskgen(path):
    data = json.loads(path.read_text())
    out = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"]).split("/iterations")[0].replace("/real_time", "")
        out[name] = b
    return out, data["context"]


def llama_bench(path):
    out = {}
    if not path.exists() or not path.read_text().strip():
        return out
    for r in json.loads(path.read_text()):
        key = "pp%d" % r["n_prompt"] if r["n_prompt"] else "tg%d" % r["n_gen"]
        out[key] = r["avg_ts"]
    return out


def batched(path):
    out = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            out[r["pl"]] = r["speed_tg"]
    return out


def load(results):
    rows = {}  # (round, layers) -> figures
    for f in sorted(results.glob("r*-*l-maskgen.json")):
        m = re.match(r"r(\d+)-(\d+)l-maskgen\.json", f.name)
        rnd, layers = int(m.group(1)), int(m.group(2))
        mg, ctx = maskgen(f)
        pp = llama_bench(results / f"r{rnd}-{layers}l-llama-pp.json")
        tg = llama_bench(results / f"r{rnd}-{layers}l-llama-tg.json")
        bt = batched(results / f"r{rnd}-{layers}l-batched.jsonl")
        peer = {"decode 1": tg.get("tg64"), "decode 16": bt.get(16), "prefill 128": pp.get("pp128")}
        rows[(rnd, layers)] = {"maskgen": {c: mg.get(n, {}).get("items_per_second") for c, n, _ in CASES},
                               "bytes": {c: mg.get(n, {}).get("weight_bytes") for c, n, _ in CASES},
                               "peer": peer, "ctx": ctx}
    return rows


def fmt(x, digits=1):
    return "—" if x is None else f"{x:.{digits}f}"


def main():
    results = pathlib.Path(sys.argv[1])
    rows = load(results)
    if not rows:
        sys.exit(f"moe_table: no r*-*l-maskgen.json in {results}")
    print("| round | layers | case | maskgen tok/s | llama.cpp tok/s | ratio |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for (rnd, layers), r in sorted(rows.items()):
        for case, _, _ in CASES:
            a, b = r["maskgen"][case], r["peer"][case]
            ratio = f"{a / b:.2f}x" if a and b else "—"
            print(f"| {rnd} | {layers} | {case} | {fmt(a)} | {fmt(b)} | {ratio} |")

    depths = sorted({layers for _, layers in rows})
    print()
    if len(depths) < 2:
        print("one depth only: no per-layer figures")
    else:
        lo, hi = depths[0], depths[-1]
        per = {}  # case -> engine -> [per-layer seconds a step, once-a-step seconds], one per round
        extra = {}  # round -> (bandwidth, active params a layer, bytes a parameter)
        for rnd in sorted({r for r, _ in rows}):
            if (rnd, lo) not in rows or (rnd, hi) not in rows:
                continue
            a, b = rows[(rnd, lo)], rows[(rnd, hi)]
            ctx = b["ctx"]
            active_layer = float(ctx["active_params_per_layer"])
            bpp = 1.0 if ctx.get("weights") == "I8" else 4.0 if ctx.get("weights") == "F32" else 2.0
            extra[rnd] = (float(ctx["read_bandwidth_gbps"]) * 1e9, active_layer, bpp)
            for case, _, tokens in CASES:
                for engine in ("maskgen", "peer"):
                    ta, tb = a[engine][case], b[engine][case]
                    if not ta or not tb:
                        continue
                    step_lo, step_hi = tokens / ta, tokens / tb
                    layer = (step_hi - step_lo) / (hi - lo)
                    per.setdefault(case, {}).setdefault(engine, []).append((layer, step_lo - lo * layer, rnd))
        if not per:
            print("no round has both depths")
            return
        bw = statistics.median(e[0] for e in extra.values())
        active_layer, bpp = next(iter(extra.values()))[1:]
        print(f"Per layer ({hi} layers minus {lo}, medians over {len(extra)} round(s)); read bandwidth measured by "
              f"maskgen {bw / 1e9:.1f} GB/s; active parameters a layer {active_layer / 1e6:.2f}M, "
              f"{bpp:g} bytes each:")
        print()
        print("| case | engine | ms a layer | weight GB/s (% of bandwidth) | GFLOP/s of the active work | "
              "tok/s at 48 layers |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for case, _, tokens in CASES:
            for engine, label in (("maskgen", "maskgen"), ("peer", "llama.cpp")):
                got = per.get(case, {}).get(engine)
                if not got:
                    continue
                layer = statistics.median(g[0] for g in got)
                once = statistics.median(g[1] for g in got)
                gflops = 2 * active_layer * tokens / layer / 1e9 if layer > 0 else None
                bw_cell = "—"
                if case == "decode 1" and layer > 0:
                    gbs = active_layer * bpp / layer
                    bw_cell = f"{gbs / 1e9:.1f} ({100 * gbs / bw:.0f}%)"
                elif case == "decode 16" and layer > 0:
                    # the experts 16 tokens touch if routing were uniform, E (1 - (1 - k/E)^16)
                    lo_bytes = rows[(got[0][2], lo)]["bytes"][case]
                    hi_bytes = rows[(got[0][2], hi)]["bytes"][case]
                    if lo_bytes and hi_bytes:
                        gbs = (hi_bytes - lo_bytes) / (hi - lo) / layer
                        bw_cell = f"{gbs / 1e9:.1f} ({100 * gbs / bw:.0f}%)"
                full = tokens / (48 * layer + once) if layer > 0 else None
                print(f"| {case} | {label} | {1e3 * layer:.2f} | {bw_cell} | {fmt(gflops)} | {fmt(full)} |")
        print()
        print("(GB/s at 16 rows counts each expert once a step, however many of the 16 tokens chose it.)")

    print()
    for f in sorted(results.glob("memory-*.txt")):
        print(f"{f.name}: " + " | ".join(line.strip() for line in f.read_text().splitlines() if line.strip()))


if __name__ == "__main__":
    main()
