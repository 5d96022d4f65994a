#!/usr/bin/env python3
"""Writes the oracle for weights kept as stored (BF16, F16) and for sliding-window attention.

Layout written under --out (copy models/ and reference/ into tests/data/):
  models/llama_bf16/     llama_gqa's architecture and seed, saved in bfloat16
  models/qwen3_f16/      the tiny qwen3's architecture and seed, saved in float16
  models/mistral_window/ a tiny Mistral with sliding_window 6 (float32), prompts and generations
                         longer than the window
  reference/<name>.json  as make_model_fixtures.py writes them: float64 logits of padded batches and
                         of each prompt alone, transformers' generate() (greedy, repetition penalty,
                         beams, alone, right padded, unmasked)

The 16-bit models are saved, then reloaded from the file in float64 (converting a live model would
also round its RoPE buffers), so the reference is exact float64 arithmetic on exactly the stored
weights. For the window model the independent float64 forward of make_model_fixtures.py is given
the window (a key is seen when its position is within sliding_window - 1 of the query's), and the
"holes" batch is left out: transformers measures the window in padded columns, so a pad between
real tokens takes a place in it, while maskgen (and the prompt run alone) counts real tokens.

Run with torch, transformers 5 and safetensors installed (CPU is enough):
  python3 tests/reference/make_dtype_fixtures.py --out DIR
"""
import argparse
import os
import sys
import traceback

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen3Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model_fixtures as mmf  # noqa: E402

WINDOW = 6


ORIGINAL_MANUAL = mmf.manual_forward
ORIGINAL_BATCHES = mmf.batches_for


def specs():
    common = dict(mmf.COMMON)
    llama3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    return [
        ("llama_bf16", 101, torch.bfloat16,
         LlamaConfig(**common, num_key_value_heads=2, tie_word_embeddings=False, attention_bias=False,
                     mlp_bias=False, rope_parameters=dict(llama3))),
        ("qwen3_f16", 105, torch.float16,
         Qwen3Config(**common, num_key_value_heads=2, head_dim=32, tie_word_embeddings=True, attention_bias=False,
                     use_sliding_window=False, sliding_window=None,
                     rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
        ("mistral_window", 107, torch.float32,
         MistralConfig(**common, num_key_value_heads=1, tie_word_embeddings=False, sliding_window=WINDOW,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    os.makedirs(os.path.join(args.out, "reference"), exist_ok=True)
    g = torch.Generator().manual_seed(mmf.PROMPT_SEED)
    prompts = [[1] + torch.randint(3, 128, (n - 1,), generator=g).tolist() for n in (1, 3, 7, 12)]
    print(f"prompts {prompts}")
    summaries = {}
    for name, seed, dtype, config in specs():
        print(f"\n=== {name} ({dtype}) ===", flush=True)
        summary = summaries.setdefault(name, {})
        try:
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(torch.float64).eval()
            mmf.reinit(model, seed)
            folder = os.path.join(args.out, "models", name)
            os.makedirs(folder, exist_ok=True)
            model.to(dtype).save_pretrained(folder)
            reloaded = mmf.load(folder)
            f64 = mmf.Float64Math(reloaded)
            f64.enable()
            window = getattr(reloaded.config, "sliding_window", None) if name == "mistral_window" else None
            print(f"  {name}: sliding_window in config {getattr(reloaded.config, 'sliding_window', None)}")
            mmf.manual_forward = lambda m, i, k: ORIGINAL_MANUAL(m, i, k, window)
            mmf.batches_for = (lambda p: [b for b in ORIGINAL_BATCHES(p) if b[0] != "holes"]) if window else ORIGINAL_BATCHES
            ref = mmf.make_reference(name, reloaded, prompts, 16 if window else mmf.TINY_MAX_NEW_TOKENS, [2], 2,
                                     f64, summary)
            ref["stored_dtype"] = str(dtype).replace("torch.", "")
            if window:
                ref["sliding_window"] = window
                ref["note_window"] = ("the window counts real positions: a key is seen when the query's position "
                                      "minus the key's is below sliding_window; no 'holes' batch (see the script)")
            mmf.write_json(os.path.join(args.out, "reference", f"{name}.json"), ref)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            summary["error"] = f"{type(e).__name__}: {e}"
            mmf.problem(f"{name}: {summary['error']}")
        finally:
            mmf.manual_forward = ORIGINAL_MANUAL
            mmf.batches_for = ORIGINAL_BATCHES
    mmf.print_summary(summaries)
    if mmf.PROBLEMS:
        print(f"\n{len(mmf.PROBLEMS)} PROBLEMS:")
        for p in mmf.PROBLEMS:
            print("  -", p)
        sys.exit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
