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
import math
import os
import sys
import traceback

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen3Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model_fixtures as mmf  # noqa: E402

WINDOW = 6


def manual_forward_window(model, ids, mask, window=None):
    """make_model_fixtures.manual_forward with an optional sliding window over real positions."""
    if window is None:
        return ORIGINAL_MANUAL(model, ids, mask)
    cfg, base = model.config, model.model
    B, L = ids.shape
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, mmf.head_dim_of(cfg)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    ang = pos.to(torch.float64)[..., None] * mmf.rope_inv_freq(cfg)
    cos = torch.cat((ang.cos(), ang.cos()), -1)[:, None]
    sin = torch.cat((ang.sin(), ang.sin()), -1)[:, None]
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    near = (pos[:, :, None] - pos[:, None, :]) < window                    # [B, Lq, Lk]
    allowed = causal[None, None] & mask.bool()[:, None, None, :] & near[:, None]

    def rms(x, norm):
        return norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + mmf.norm_eps(norm)))

    def rotate(x):
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin

    x = base.embed_tokens.weight[ids]
    for layer in base.layers:
        a = layer.self_attn
        h = rms(x, layer.input_layernorm)
        q = F.linear(h, a.q_proj.weight, a.q_proj.bias).view(B, L, nh, hd)
        k = F.linear(h, a.k_proj.weight, a.k_proj.bias).view(B, L, nkv, hd)
        v = F.linear(h, a.v_proj.weight, a.v_proj.bias).view(B, L, nkv, hd)
        if hasattr(a, "q_norm"):
            q, k = rms(q, a.q_norm), rms(k, a.k_norm)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        q, k = rotate(q), rotate(k)
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        s = (q @ k.transpose(2, 3)) * hd ** -0.5
        p = torch.softmax(s.masked_fill(~allowed, -math.inf), -1).nan_to_num(0.0)
        o = (p @ v).transpose(1, 2).reshape(B, L, nh * hd)
        x = x + F.linear(o, a.o_proj.weight, a.o_proj.bias)
        h = rms(x, layer.post_attention_layernorm)
        m = layer.mlp
        x = x + m.down_proj(F.silu(m.gate_proj(h)) * m.up_proj(h))
    return F.linear(rms(x, base.norm), model.lm_head.weight)


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
            mmf.manual_forward = lambda m, i, k: manual_forward_window(m, i, k, window)
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
