#!/usr/bin/env python3
"""The table of bench/llama_peers.sh: maskgen's medians beside llama.cpp's figures of the same round.

   python3 bench/peer_table.py RESULTS_DIR

Reads RESULTS_DIR/r<round>-<format>-{maskgen.json,llama-bench.json,batched.txt} and prints, per
round and format, tokens/s of both, the ratio, and maskgen's GFLOP/s and share of the FP32 FMA
peak (compute-bound cases) or weight GB/s and share of the read bandwidth (decode of one row), both
measured at the start of the same model_bench run.
"""
import json
import pathlib
import re
import sys


def maskgen_figures(path):
    data = json.loads(path.read_text())
    out = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b["run_name"] if "run_name" in b else b["name"]
        out[name.split("/iterations")[0].replace("/real_time", "")] = b
    return out, data["context"]


def llama_bench(path):
    out = {}
    for r in json.loads(path.read_text()):
        key = "pp%d" % r["n_prompt"] if r["n_prompt"] else "tg%d" % r["n_gen"]
        out[key] = r["avg_ts"]
    return out


def batched(path):
    out = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 10 or not cells[0].isdigit():
            continue
        pp, tg, b, _, t_pp, s_pp, t_tg, s_tg, t, s = cells
        out[int(b)] = {"S_PP": float(s_pp), "S_TG": float(s_tg), "T": float(t), "TG": int(tg)}
    return out


def main():
    results = pathlib.Path(sys.argv[1])
    runs = sorted(results.glob("r*-maskgen.json"))
    if not runs:
        sys.exit("no r*-maskgen.json in %s" % results)
    print("| round | weights | case | maskgen tok/s | llama.cpp tok/s | ratio | maskgen GFLOP/s (% of FP32 peak) or weight GB/s (% of bandwidth) |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    for run in runs:
        m = re.match(r"r(\d+)-(\w+)-maskgen\.json", run.name)
        rnd, fmt = m.group(1), m.group(2)
        ours, context = maskgen_figures(run)
        lb = llama_bench(results / ("r%s-%s-llama-bench.json" % (rnd, fmt)))
        bb = batched(results / ("r%s-%s-batched.txt" % (rnd, fmt)))
        peer_name = {"INT8": "int8 / Q8_0", "Q4_0": "int4 / Q4_0", "Q4_K_M": "int4 / Q4_K_M"}.get(fmt, fmt)
        rows = [
            ("prefill 128, batch 1", "BM_Prefill/1", lb.get("pp128"), "compute"),
            ("prefill 16 x 128", "BM_Prefill/16", bb.get(16, {}).get("S_PP"), "compute"),
            ("decode, 1 row", "BM_DecodeStep/1", lb.get("tg64"), "bandwidth"),
            ("decode, 4 rows", "BM_DecodeStep/4", bb.get(4, {}).get("S_TG"), "compute"),
            ("decode, 16 rows", "BM_DecodeStep/16", bb.get(16, {}).get("S_TG"), "compute"),
            ("engine, 16 requests (128 + 32 tokens), new tokens/s", "BM_Engine/16",
             16 * bb[16]["TG"] / bb[16]["T"] if 16 in bb else None, None),
        ]
        for label, key, peer, bound in rows:
            b = ours.get(key)
            if b is None:
                continue
            tps = b["items_per_second"]
            detail = ""
            if bound == "compute":
                detail = "%.0f (%.0f%%)" % (b["GFLOP/s"], b["pct_of_peak"])
            elif bound == "bandwidth":
                detail = "%.1f GB/s (%.0f%%)" % (b["weight_GB/s"], b["pct_of_bandwidth"])
            ratio = "%.2fx" % (tps / peer) if peer else ""
            print("| %s | %s | %s | %.1f | %s | %s | %s |" % (rnd, peer_name, label, tps, "%.1f" % peer if peer else "", ratio, detail))
        print("| %s | %s | machine | FP32 FMA peak %.0f GFLOP/s, read bandwidth %.1f GB/s, load %.1f s | | | |" % (
            rnd, peer_name, float(context.get("fma_peak_gflops", 0)), float(context.get("read_bandwidth_gbps", 0)),
            float(context.get("load_seconds", 0))))


if __name__ == "__main__":
    main()
