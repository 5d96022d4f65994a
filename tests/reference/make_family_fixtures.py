#!/usr/bin/env python3
"""Writes the oracle for model families beyond Llama, Mistral and Qwen: one tiny random model each.

Layout written under --out (copy models/ and reference/ into tests/data/):
  models/<name>/config.json, generation_config.json, model.safetensors (in the family's published
      dtype), one folder a family in FAMILIES:
        smollm3   4 layers, GQA (4 heads, 2 KV heads), tied embeddings, bfloat16, RoPE theta 5e6;
                  no_rope_layer_interval 2, so that config.json's no_rope_layers is [1, 0, 1, 0]:
                  layers 0 and 2 rotate q and k, layers 1 and 3 (NoPE) do not
  reference/<name>.json
      as make_model_fixtures.py writes them (make_reference): float64 logits at every real
      position of padded batches (left, right, left with extra padding, holes) and of each prompt
      alone, and transformers' generate() (greedy, repetition penalty, beams, alone, right padded,
      unmasked); plus "stored_dtype" as in make_dtype_fixtures.py, and the family's own keys
      (for smollm3: "no_rope_layers" and the distance from the same weights with RoPE in every
      layer)

As in make_dtype_fixtures.py, each model is saved in its stored dtype, reloaded from the file in
float64 and run with RoPE, RMSNorm and softmax in float64 (make_model_fixtures.Float64Math); the
reference is checked against the independent float64 forward (make_model_fixtures.manual_forward),
which is told which layers use RoPE as the written config.json says. For SmolLM3 the script also
checks that config.json holds both values of no_rope_layers, that transformers' attention modules
read the same per-layer flag, and that the logits differ clearly from the same weights with RoPE in
every layer, so that an implementation that ignores no_rope_layers fails the fixture.

To add a family, append a Family to FAMILIES: the config, the values config.json must hold, and
which layers rotate (from config.json as written); extra checks go in `check`.

Run with torch, transformers 5 (with SmolLM3) and safetensors installed (CPU is enough):
  python3 tests/reference/make_family_fixtures.py --out DIR
"""
import argparse
import dataclasses
import json
import os
import sys
import traceback
from typing import Callable, Optional

import torch
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model_fixtures as mmf  # noqa: E402

ORIGINAL_MANUAL = mmf.manual_forward
PROMPT_LENGTHS = (1, 3, 7, 12)
DISTINCT = 1e-3              # the least max|diff| that counts as "clearly different" logits


@dataclasses.dataclass
class Family:
    name: str
    seed: int
    stored_dtype: torch.dtype
    config: Callable[[], object]             # builds the transformers config
    expected: dict                           # config.json values for mmf.check_written_config
    rope_layers: Callable[[dict], list]      # config.json as written -> one bool a layer: rotates q, k?
    check: Optional[Callable] = None         # check(family, cfg, model, prompts, f64, ref, summary)
    max_new_tokens: int = mmf.TINY_MAX_NEW_TOKENS


# ----------------------------------------------------------------------------------------------
# SmolLM3
# ----------------------------------------------------------------------------------------------
SMOLLM3_ROPE = {"rope_type": "default", "rope_theta": 5000000.0}   # SmolLM3-3B's theta


def smollm3_config():
    from transformers import SmolLM3Config
    common = dict(mmf.COMMON, num_hidden_layers=4)
    return SmolLM3Config(**common, num_key_value_heads=2, no_rope_layer_interval=2, tie_word_embeddings=True,
                         use_sliding_window=False, sliding_window=None, attention_bias=False, mlp_bias=False,
                         pad_token_id=None, rope_parameters=dict(SMOLLM3_ROPE))


def smollm3_rope_layers(cfg):
    """transformers: no_rope_layers[i] == 1 means layer i applies RoPE, 0 means a NoPE layer."""
    return [bool(v) for v in cfg["no_rope_layers"]]


def smollm3_check(family, cfg, model, prompts, f64, ref, summary):
    name = family.name
    flags = cfg.get("no_rope_layers")
    print(f"  {name}: no_rope_layers {flags}, no_rope_layer_interval {cfg.get('no_rope_layer_interval')}, "
          f"layer_types {cfg.get('layer_types')}, use_sliding_window {cfg.get('use_sliding_window')}")
    if not isinstance(flags, list) or len(flags) != cfg["num_hidden_layers"] or set(flags) != {0, 1}:
        mmf.problem(f"{name}: config.json no_rope_layers {flags!r} should hold both 0 and 1, one a layer")
    if list(model.config.no_rope_layers) != flags:
        mmf.problem(f"{name}: loaded config no_rope_layers {model.config.no_rope_layers} != config.json {flags}")
    use_rope = family.rope_layers(cfg)

    # transformers' attention modules hold the per-layer flag they read in forward().
    attns = [layer.self_attn for layer in model.model.layers]
    held = [getattr(a, "use_rope", None) for a in attns]
    print(f"  {name}: transformers' self_attn.use_rope per layer {held}")
    if any(h is None for h in held):
        mmf.problem(f"{name}: transformers' attention has no use_rope attribute (its code changed)")
    elif [bool(h) for h in held] != use_rope:
        mmf.problem(f"{name}: transformers' use_rope {held} differs from no_rope_layers {flags}")
    scalings = {getattr(a, "scaling", None) for a in attns}
    windows = {getattr(a, "sliding_window", None) for a in attns}
    print(f"  {name}: attention scaling {scalings} (head_dim ** -0.5 = "
          f"{mmf.head_dim_of(model.config) ** -0.5}); sliding_window per layer {windows}")
    if scalings != {mmf.head_dim_of(model.config) ** -0.5} or windows != {None}:
        mmf.problem(f"{name}: attention scaling {scalings} or sliding windows {windows} not as manual_forward")

    # The same weights with RoPE in every layer: what an implementation ignoring no_rope_layers
    # computes. Its logits must be far from the reference, or the fixture proves nothing.
    ids, mask = mmf.padded(prompts, "left", max(len(p) for p in prompts))
    ids_t, mask_t = torch.tensor(ids), torch.tensor(mask)
    hf = mmf.real_rows(mmf.forward_logits(model, ids, mask), mask)
    all_rope = mmf.real_rows(ORIGINAL_MANUAL(model, ids_t, mask_t, None, [True] * len(use_rope)), mask)
    per_row = [(a - b).abs().max().item() for a, b in zip(hf, all_rope)]
    summary["vs_rope_everywhere"] = per_row
    ref["max_abs_diff_vs_rope_in_every_layer"] = per_row
    print(f"  {name}: max|logits - logits with RoPE in every layer| per prompt {per_row}")
    if max(per_row) <= DISTINCT:
        mmf.problem(f"{name}: RoPE in every layer changes the logits by only {max(per_row):.3e}")
    no_rope = mmf.real_rows(ORIGINAL_MANUAL(model, ids_t, mask_t, None, [False] * len(use_rope)), mask)
    summary["vs_rope_nowhere"] = mmf.max_diff(hf, no_rope)
    if summary["vs_rope_nowhere"] <= DISTINCT:
        mmf.problem(f"{name}: RoPE in no layer changes the logits by only {summary['vs_rope_nowhere']:.3e}")

    # transformers itself, told to rotate in every layer, computes what manual_forward does with
    # RoPE everywhere: the flag is the only thing that differs between the layers.
    if all(h is not None for h in held):
        try:
            for a in attns:
                a.use_rope = True
            forced = mmf.real_rows(mmf.forward_logits(model, ids, mask), mask)
        finally:
            for a, h in zip(attns, held):
                a.use_rope = h
        summary["forced_vs_manual"] = mmf.max_diff(forced, all_rope)
        print(f"  {name}: transformers with use_rope forced on vs manual with RoPE everywhere "
              f"{summary['forced_vs_manual']:.3e}")
        if summary["forced_vs_manual"] > 1e-10:
            mmf.problem(f"{name}: forcing use_rope on differs from manual RoPE everywhere by "
                        f"{summary['forced_vs_manual']:.3e}")
        again = mmf.real_rows(mmf.forward_logits(model, ids, mask), mask)
        if mmf.max_diff(again, hf) != 0.0:
            mmf.problem(f"{name}: the model did not return to its own flags")

    ref["no_rope_layers"] = flags
    ref["note_no_rope"] = ("no_rope_layers[i] == 1: layer i rotates q and k (RoPE); 0: it does not (NoPE), "
                           "positions still count real tokens; max_abs_diff_vs_rope_in_every_layer is, per "
                           "prompt, how far the same weights with RoPE in every layer are from these logits")


FAMILIES = [
    Family("smollm3", 108, torch.bfloat16, smollm3_config,
           expected=dict(model_type="smollm3", num_hidden_layers=4, num_key_value_heads=2, tie_word_embeddings=True,
                         no_rope_layer_interval=2, no_rope_layers=[1, 0, 1, 0], use_sliding_window=False,
                         sliding_window=None, attention_bias=False, mlp_bias=False, rope=dict(SMOLLM3_ROPE)),
           rope_layers=smollm3_rope_layers, check=smollm3_check),
]


# ----------------------------------------------------------------------------------------------
def build(family, prompts, out_dir, summary):
    name = family.name
    dtype_name = str(family.stored_dtype).replace("torch.", "")
    torch.manual_seed(family.seed)
    model = AutoModelForCausalLM.from_config(family.config(), attn_implementation="eager")
    model = model.to(torch.float64).eval()
    mmf.reinit(model, family.seed)
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if tied != family.expected["tie_word_embeddings"]:
        mmf.problem(f"{name}: lm_head tied={tied} in memory")

    folder = os.path.join(out_dir, "models", name)
    os.makedirs(folder, exist_ok=True)
    model.to(family.stored_dtype).save_pretrained(folder)
    print(f"  {name}: files {sorted(os.listdir(folder))}")
    gen_path = os.path.join(folder, "generation_config.json")
    if os.path.exists(gen_path):
        with open(gen_path) as f:
            print(f"  {name}: generation_config.json: {json.dumps(json.load(f), sort_keys=True)}")
    else:
        mmf.problem(f"{name}: no generation_config.json")
    with open(os.path.join(folder, "config.json")) as f:
        text = f.read()
    print(f"  {name}: config.json as transformers {transformers.__version__} wrote it:\n{text}")
    cfg = json.loads(text)
    mmf.check_written_config(name, cfg, family.expected, [2])

    with safe_open(os.path.join(folder, "model.safetensors"), "pt") as st:
        names = sorted(st.keys())
        dtypes = {str(st.get_tensor(n).dtype) for n in names}
    print(f"  {name}: {len(names)} tensors {dtypes}: {names}")
    if dtypes != {str(family.stored_dtype)}:
        mmf.problem(f"{name}: tensor dtypes {dtypes}, expected {family.stored_dtype}")
    if family.expected["tie_word_embeddings"] == ("lm_head.weight" in names):
        mmf.problem(f"{name}: tie_word_embeddings={family.expected['tie_word_embeddings']} but lm_head.weight "
                    f"{'present' if 'lm_head.weight' in names else 'absent'}")

    # The reference comes from the file, reloaded in float64: exact arithmetic on the stored weights.
    reloaded = mmf.load(folder)
    tied = reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    print(f"  {name}: reloaded lm_head shares the embedding: {tied}")
    if tied != family.expected["tie_word_embeddings"]:
        mmf.problem(f"{name}: reloaded lm_head tied={tied}")
    f64 = mmf.Float64Math(reloaded)
    n_layers = len(reloaded.model.layers)
    print(f"  {name}: Float64Math swaps {len(f64.norms)} RMSNorm "
          f"({sorted({type(m).__name__ for m in f64.norms})}), "
          f"{len(f64.ropes)} rotary ({sorted({type(m).__name__ for m in f64.ropes})}) and "
          f"{f64.modeling.__name__}.eager_attention_forward")
    if len(f64.norms) != 2 * n_layers + 1:
        mmf.problem(f"{name}: {len(f64.norms)} RMSNorm modules for {n_layers} layers")
    f64.enable()

    use_rope = family.rope_layers(cfg)
    print(f"  {name}: layers that apply RoPE (from config.json) {use_rope}")
    mmf.manual_forward = lambda m, i, k: ORIGINAL_MANUAL(m, i, k, None, use_rope)
    summary["eos"] = [2]
    ref = mmf.make_reference(name, reloaded, prompts, family.max_new_tokens, [2], 2, f64, summary)
    ref["stored_dtype"] = dtype_name
    std = summary["logit_std"][0]
    if not 1.0 <= std <= 20.0:
        mmf.problem(f"{name}: logit std {std:.3f} outside [1, 20]")
    elif not 2.0 <= std <= 10.0:
        print(f"  note: {name}: logit std {std:.3f} outside make_model_fixtures' [2, 10]")
    if family.check is not None:
        family.check(family, cfg, reloaded, prompts, f64, ref, summary)
    return ref


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", help="names of the families to write (default: all)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    os.makedirs(os.path.join(args.out, "reference"), exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}", flush=True)
    g = torch.Generator().manual_seed(mmf.PROMPT_SEED)
    prompts = [[1] + torch.randint(3, 128, (n - 1,), generator=g).tolist() for n in PROMPT_LENGTHS]
    print(f"prompts {prompts}")
    summaries = {}
    for family in FAMILIES:
        if args.only and family.name not in args.only:
            continue
        print(f"\n=== {family.name} ({family.stored_dtype}) ===", flush=True)
        summary = summaries.setdefault(family.name, {})
        try:
            ref = build(family, prompts, args.out, summary)
            mmf.write_json(os.path.join(args.out, "reference", f"{family.name}.json"), ref)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            summary["error"] = f"{type(e).__name__}: {e}"
            mmf.problem(f"{family.name}: {summary['error']}")
        finally:
            mmf.manual_forward = ORIGINAL_MANUAL
    mmf.print_summary(summaries)
    for name, s in summaries.items():
        if "vs_rope_everywhere" in s:
            print(f"{name}: logits vs RoPE in every layer, max|diff| per prompt "
                  + ", ".join(f"{v:.3e}" for v in s["vs_rope_everywhere"])
                  + f"; vs RoPE in no layer {s['vs_rope_nowhere']:.3e}; transformers with use_rope forced on "
                  f"vs manual RoPE everywhere {s.get('forced_vs_manual', float('nan')):.3e}")
    if mmf.PROBLEMS:
        print(f"\n{len(mmf.PROBLEMS)} PROBLEMS:")
        for p in mmf.PROBLEMS:
            print("  -", p)
        sys.exit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
