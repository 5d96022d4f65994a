#!/usr/bin/env python3
"""Writes the model fixtures: tiny random models and float64 references from Hugging Face transformers.

Layout written under --out:
  models/<name>/config.json, model.safetensors (float32), generation_config.json
      five tiny random models (llama_gqa, llama_tied, mistral, qwen2, qwen3), fixed seeds
  reference/<name>.json
      for each tiny model and for stories260K (read from --stories, not copied): the prompts,
      float64 logits at every real position of padded batches (left, right, left with extra
      padding, holes in the mask) and of each prompt alone, and transformers' generate()
      outputs (greedy, greedy with repetition penalty, beam search, each prompt alone, and the
      two known-wrong ways: right padding, and left padding without the mask).

The reference is float64 throughout. Stock transformers computes three steps in float32 even in
a float64 model (RoPE cos/sin, RMSNorm, the eager softmax); this script swaps those three for
float64 versions of the same formulas (see Float64Math), checks the swap against an independent
float64 forward written here (manual_forward), and prints how far stock transformers lies from it.
(Stock float64 eager attention also turns the mask's float64 minimum into -inf in float32, so a
left-padded batch gets NaN logits; the swap avoids that too.)
generate() itself casts the last logits to float32 before choosing a token, so the recorded
generate scores are float32 numbers; the margins between the two best scores are recorded so that
a test can tell a real disagreement from a near tie.

Run with torch, transformers 5, sentencepiece and safetensors installed (CPU is enough):
  python3 tests/reference/make_model_fixtures.py --stories PATH/TO/stories260K --out DIR
then copy DIR/models and DIR/reference into tests/data/.
"""
import argparse
import json
import math
import os
import sys
import traceback
import types

import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

PAD_ID = 0                   # pad id written into the padded forward batches; only the mask matters
TINY_MAX_NEW_TOKENS = 12
STORIES_MAX_NEW_TOKENS = 24
REPETITION_PENALTY = 1.3
LINEAR_SCALE = 1.5           # 2-D weights ~ N(0, 1/fan_in) * LINEAR_SCALE
LM_HEAD_SCALE = 4.0          # untied lm_head ~ N(0, 1/hidden) * LM_HEAD_SCALE: logits' std about 4
PROMPT_SEED = 1234
STORIES_TEXTS = [
    "Once upon a time",
    "Lily and Tom went to the park to play",
    "The cat",
    "One day, a little bird found a shiny red ball under the big tree",
]

PROBLEMS = []                # every failed check; the script writes what it can, then exits 1


def problem(msg):
    print("PROBLEM:", msg, flush=True)
    PROBLEMS.append(msg)


# ----------------------------------------------------------------------------------------------
# The tiny models
# ----------------------------------------------------------------------------------------------
COMMON = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, rms_norm_eps=1e-6, max_position_embeddings=256,
              bos_token_id=1, eos_token_id=2)


def tiny_specs():
    """(name, seed, config, expected values in config.json, extra eos id chosen from the model?)."""
    llama3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    linear = {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}
    default_1e4 = {"rope_type": "default", "rope_theta": 10000.0}
    default_1e6 = {"rope_type": "default", "rope_theta": 1000000.0}
    specs = [
        ("llama_gqa", 101,
         LlamaConfig(**COMMON, num_key_value_heads=2, tie_word_embeddings=False, attention_bias=False,
                     mlp_bias=False, rope_parameters=dict(llama3)),
         dict(num_key_value_heads=2, tie_word_embeddings=False, head_dim=16, rope=llama3), False),
        ("llama_tied", 102,
         LlamaConfig(**COMMON, num_key_value_heads=4, tie_word_embeddings=True, attention_bias=False,
                     mlp_bias=False, rope_parameters=dict(linear)),
         dict(num_key_value_heads=4, tie_word_embeddings=True, head_dim=16, rope=linear), False),
        ("mistral", 103,
         MistralConfig(**COMMON, num_key_value_heads=1, tie_word_embeddings=False, sliding_window=None,
                       rope_parameters=dict(default_1e4)),
         dict(num_key_value_heads=1, tie_word_embeddings=False, head_dim=16, rope=default_1e4,
              sliding_window=None), False),
        ("qwen2", 104,
         Qwen2Config(**COMMON, num_key_value_heads=2, tie_word_embeddings=False, use_sliding_window=False,
                     sliding_window=None, rope_parameters=dict(default_1e6)),
         dict(num_key_value_heads=2, tie_word_embeddings=False, rope=default_1e6), True),
        ("qwen3", 105,
         Qwen3Config(**COMMON, num_key_value_heads=2, head_dim=32, tie_word_embeddings=True,
                     attention_bias=False, use_sliding_window=False, sliding_window=None,
                     rope_parameters=dict(default_1e6)),
         dict(num_key_value_heads=2, tie_word_embeddings=True, head_dim=32, rope=default_1e6), True),
    ]
    return specs


def reinit(model, seed):
    """Deterministic weights whose logits are far from flat (the library default is std 0.02)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied lm_head is the embedding: listed once
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if p.ndim == 1 and name.endswith("bias"):
                value = 0.2 * noise
            elif p.ndim == 1:  # RMSNorm weights, q_norm/k_norm included
                value = 1.0 + 0.2 * noise
            elif "embed_tokens" in name:
                value = noise
            elif name.startswith("lm_head"):
                value = noise * LM_HEAD_SCALE / math.sqrt(p.shape[1])
            else:  # nn.Linear weight [out, in]: fan_in = in
                value = noise * LINEAR_SCALE / math.sqrt(p.shape[1])
            # Round to float32 now, so the float64 reference uses exactly the saved weights.
            p.data = value.float().double()


# ----------------------------------------------------------------------------------------------
# Float64 math inside transformers
# ----------------------------------------------------------------------------------------------
def rope_parameters(cfg):
    """The RoPE dict of a config object, from transformers 5's rope_parameters or 4's fields."""
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict) and "rope_type" not in rp and "full_attention" in rp:
        rp = rp["full_attention"]
    if not rp:
        rp = dict(getattr(cfg, "rope_scaling", None) or {})
        rp.setdefault("rope_type", rp.get("type", "default"))
        rp["rope_theta"] = cfg.rope_theta
    return dict(rp)


def head_dim_of(cfg):
    hd = getattr(cfg, "head_dim", None)
    return hd if hd else cfg.hidden_size // cfg.num_attention_heads


def rope_inv_freq(cfg):
    """RoPE inverse frequencies [head_dim/2] in float64, for the rope types the fixtures use."""
    rp = rope_parameters(cfg)
    dim = head_dim_of(cfg)
    inv = 1.0 / (rp["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    kind = rp["rope_type"]
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / rp["factor"]
    if kind == "llama3":
        factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
        old = rp["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled)
    raise ValueError(f"rope_type {kind} not handled by this script")


def norm_eps(norm):
    return getattr(norm, "variance_epsilon", getattr(norm, "eps", None))


def rms_norm_f64(self, x):
    """transformers' RMSNorm formula without its cast to float32."""
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm_eps(self)))


def rope_forward_f64(self, x, position_ids, *args, **kwargs):
    """transformers' rotary embedding without its cast to float32: cos/sin [batch, seq, head_dim]."""
    freqs = position_ids.to(torch.float64)[:, :, None] * self._maskgen_inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    scaling = getattr(self, "attention_scaling", 1.0)
    return (emb.cos() * scaling).to(x.dtype), (emb.sin() * scaling).to(x.dtype)


EAGER_CALLS = [0]
ORIGINAL_EAGER = {}          # modeling module name -> transformers' own eager_attention_forward


def eager_attention_f64(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' eager attention with the softmax in the input dtype (float64), not float32.

    query [batch, heads, q, head_dim], key/value [batch, kv_heads, k, head_dim]."""
    EAGER_CALLS[0] += 1
    n_rep = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(n_rep, dim=1)      # same as transformers' repeat_kv
    value = value.repeat_interleave(n_rep, dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        m = attention_mask[:, :, :, : key.shape[-2]]
        if m.dtype == torch.bool:
            scores = scores.masked_fill(~m, torch.finfo(scores.dtype).min)
        else:
            scores = scores + m
    weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights


class Float64Math:
    """Swaps transformers' three float32 steps for float64 ones, on one model, reversibly."""

    def __init__(self, model):
        self.model = model
        self.modeling = sys.modules[type(model).__module__]   # e.g. transformers.models.llama.modeling_llama
        eager = getattr(self.modeling, "eager_attention_forward", None)
        if eager is not None and eager is not eager_attention_f64:
            ORIGINAL_EAGER[self.modeling.__name__] = eager
        self.original_eager = ORIGINAL_EAGER.get(self.modeling.__name__)
        if self.original_eager is None:
            problem(f"{self.modeling.__name__} has no eager_attention_forward to replace")
        inv = rope_inv_freq(model.config)
        self.norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
        self.ropes = [m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding")]
        if not self.norms or not self.ropes:
            problem(f"found {len(self.norms)} RMSNorm and {len(self.ropes)} rotary modules")
        for r in self.ropes:
            hf = r.inv_freq.detach().to(torch.float64).cpu()
            rel = ((hf - inv).abs() / inv).max().item()
            print(f"  rope inv_freq: float64 here vs transformers' float32: max rel diff {rel:.2e}")
            if hf.shape != inv.shape or rel > 1e-5:
                problem(f"rope inv_freq disagrees with transformers': {hf.tolist()} vs {inv.tolist()}")
            r._maskgen_inv_freq = inv   # plain attribute: model.to(dtype) leaves it float64
        self.inv_freq = inv

    def enable(self):
        for m in self.norms:
            m.forward = types.MethodType(rms_norm_f64, m)
        for r in self.ropes:
            r.forward = types.MethodType(rope_forward_f64, r)
        self.modeling.eager_attention_forward = eager_attention_f64

    def disable(self):
        for m in self.norms + self.ropes:
            if "forward" in m.__dict__:
                del m.forward
        if self.original_eager is not None:
            self.modeling.eager_attention_forward = self.original_eager


# ----------------------------------------------------------------------------------------------
# An independent float64 forward, to check the patched transformers
# ----------------------------------------------------------------------------------------------
def manual_forward(model, ids, mask, window=None, use_rope=None):
    """Logits [batch, seq, vocab] of a Llama/Mistral/Qwen2/Qwen3/SmolLM3 model, written from the papers.

    A real token's position is the count of real tokens before it; a query sees the real keys at
    or before it (with a sliding `window`, only those whose position is within window - 1 of its
    own). `use_rope`, one bool a layer, leaves q and k unrotated in the layers marked False
    (SmolLM3's NoPE layers); None rotates in every layer. ids, mask: [batch, seq] int64."""
    cfg, base = model.config, model.model
    B, L = ids.shape
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, head_dim_of(cfg)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    ang = pos.to(torch.float64)[..., None] * rope_inv_freq(cfg)          # [B, L, hd/2]
    cos = torch.cat((ang.cos(), ang.cos()), -1)[:, None]                   # [B, 1, L, hd]
    sin = torch.cat((ang.sin(), ang.sin()), -1)[:, None]
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    allowed = causal[None, None] & mask.bool()[:, None, None, :]          # [B, 1, Lq, Lk]
    if window is not None:
        allowed = allowed & ((pos[:, :, None] - pos[:, None, :]) < window)[:, None]

    def rms(x, norm):
        return norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm_eps(norm)))

    def rotate(x):
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin

    if use_rope is None:
        use_rope = [True] * len(base.layers)
    if len(use_rope) != len(base.layers):
        raise ValueError(f"use_rope has {len(use_rope)} entries for {len(base.layers)} layers")
    x = base.embed_tokens.weight[ids]                                      # [B, L, hidden]
    for layer, rotated in zip(base.layers, use_rope):
        a = layer.self_attn
        h = rms(x, layer.input_layernorm)
        q = F.linear(h, a.q_proj.weight, a.q_proj.bias).view(B, L, nh, hd)
        k = F.linear(h, a.k_proj.weight, a.k_proj.bias).view(B, L, nkv, hd)
        v = F.linear(h, a.v_proj.weight, a.v_proj.bias).view(B, L, nkv, hd)
        if hasattr(a, "q_norm"):                                           # Qwen3: per-head RMSNorm
            q, k = rms(q, a.q_norm), rms(k, a.k_norm)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))                   # [B, heads, L, hd]
        if rotated:
            q, k = rotate(q), rotate(k)
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        s = (q @ k.transpose(2, 3)) * hd ** -0.5
        p = torch.softmax(s.masked_fill(~allowed, -math.inf), -1).nan_to_num(0.0)  # pad queries: 0
        o = (p @ v).transpose(1, 2).reshape(B, L, nh * hd)
        x = x + F.linear(o, a.o_proj.weight, a.o_proj.bias)
        h = rms(x, layer.post_attention_layernorm)
        m = layer.mlp
        x = x + m.down_proj(F.silu(m.gate_proj(h)) * m.up_proj(h))
    return F.linear(rms(x, base.norm), model.lm_head.weight)


# ----------------------------------------------------------------------------------------------
# Batches and forward references
# ----------------------------------------------------------------------------------------------
def padded(prompts, side, width):
    ids, mask = [], []
    for p in prompts:
        fill = width - len(p)
        if side == "left":
            ids.append([PAD_ID] * fill + p)
            mask.append([0] * fill + [1] * len(p))
        else:
            ids.append(p + [PAD_ID] * fill)
            mask.append([1] * len(p) + [0] * fill)
    return ids, mask


def with_holes(prompts):
    """Two pads first, then a pad after every second real token; rows filled to one width at the
    end (even rows) or at the start (odd rows)."""
    rows = []
    for p in prompts:
        ids, mask = [PAD_ID, PAD_ID], [0, 0]
        for i, t in enumerate(p):
            ids.append(t)
            mask.append(1)
            if i % 2 == 1:
                ids.append(PAD_ID)
                mask.append(0)
        rows.append((ids, mask))
    width = max(len(r[0]) for r in rows)
    out_ids, out_mask = [], []
    for i, (ids, mask) in enumerate(rows):
        fill = width - len(ids)
        if i % 2 == 0:
            out_ids.append(ids + [PAD_ID] * fill)
            out_mask.append(mask + [0] * fill)
        else:
            out_ids.append([PAD_ID] * fill + ids)
            out_mask.append([0] * fill + mask)
    return out_ids, out_mask


def batches_for(prompts):
    longest = max(len(p) for p in prompts)
    return [("left",) + padded(prompts, "left", longest),
            ("right",) + padded(prompts, "right", longest),
            ("left_extra",) + padded(prompts, "left", longest + 5),
            ("holes",) + with_holes(prompts)]


def positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def forward_logits(model, ids, mask):
    """transformers' forward with the mask and mask-derived positions: logits [batch, seq, vocab]."""
    ids, mask = torch.tensor(ids), torch.tensor(mask)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=False)
    return out.logits


def real_rows(logits, mask):
    """Per row, the logits at its real positions, in order: list of [n_real, vocab]."""
    mask = torch.tensor(mask)
    return [logits[r][mask[r] == 1] for r in range(logits.shape[0])]


def max_diff(rows_a, rows_b):
    return max((a - b).abs().max().item() for a, b in zip(rows_a, rows_b))


# ----------------------------------------------------------------------------------------------
# generate()
# ----------------------------------------------------------------------------------------------
def strip_after_eos(tokens, eos):
    """The tokens up to and including the first EOS (what a lone run produces)."""
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[: i + 1]
    return list(tokens)


def finite_or_none(values):
    return [v if math.isfinite(v) else None for v in values]


@torch.no_grad()
def generate(model, ids, mask, max_new, eos, pad, **kw):
    ids = torch.tensor(ids)
    mask = torch.tensor(mask)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new,
                         eos_token_id=eos, pad_token_id=pad, output_scores=True,
                         return_dict_in_generate=True, **kw)
    result = {"sequences": out.sequences[:, ids.shape[1]:].tolist()}
    if kw.get("num_beams", 1) > 1:
        result["sequences_scores"] = out.sequences_scores.tolist()
    else:
        scores = torch.stack(out.scores, dim=1).to(torch.float64)        # [batch, steps, vocab]
        top2 = scores.topk(2, dim=-1).values
        result["scores_top2_margin"] = [finite_or_none(r) for r in (top2[..., 0] - top2[..., 1]).tolist()]
    return result


def generate_references(model, prompts, left_ids, left_mask, right_ids, right_mask, max_new, eos, pad):
    beam = dict(num_beams=4, length_penalty=1.0, early_stopping=False)
    g = {"note": "new tokens only; finished rows padded with pad_token_id. transformers' repetition "
                 "penalty also penalizes the pad ids in input_ids, so its batched run can differ from "
                 "'alone' (see matches_alone); a mask-aware implementation should equal 'alone'",
         "max_new_tokens": max_new, "eos_token_id": eos, "pad_token_id": pad,
         "input_ids": left_ids, "attention_mask": left_mask}
    g["greedy"] = generate(model, left_ids, left_mask, max_new, eos, pad)
    g["greedy_repetition_penalty"] = dict(
        repetition_penalty=REPETITION_PENALTY,
        **generate(model, left_ids, left_mask, max_new, eos, pad, repetition_penalty=REPETITION_PENALTY))
    g["beam4"] = dict(num_beams=4, num_return_sequences=1, length_penalty=1.0, early_stopping=False,
                      **generate(model, left_ids, left_mask, max_new, eos, pad, num_return_sequences=1, **beam))
    g["beam4_ret2"] = dict(num_beams=4, num_return_sequences=2, length_penalty=1.0, early_stopping=False,
                           **generate(model, left_ids, left_mask, max_new, eos, pad, num_return_sequences=2, **beam))
    alone = []
    for p in prompts:
        one, ones = [p], [[1] * len(p)]
        gr = generate(model, one, ones, max_new, eos, pad)
        rp = generate(model, one, ones, max_new, eos, pad, repetition_penalty=REPETITION_PENALTY)
        bm = generate(model, one, ones, max_new, eos, pad, num_return_sequences=1, **beam)
        alone.append({"input_ids": p, "greedy": gr["sequences"][0],
                      "greedy_scores_top2_margin": gr["scores_top2_margin"][0],
                      "greedy_repetition_penalty": rp["sequences"][0],
                      "beam4": bm["sequences"][0], "beam4_sequences_score": bm["sequences_scores"][0]})
    g["alone"] = alone
    g["right_padded_greedy"] = {"input_ids": right_ids, "attention_mask": right_mask,
                                **generate(model, right_ids, right_mask, max_new, eos, pad)}
    ones = [[1] * len(r) for r in left_ids]
    g["unmasked_left_greedy"] = {"input_ids": left_ids, "attention_mask": ones,
                                 **generate(model, left_ids, ones, max_new, eos, pad)}

    def matches(key, alone_key):
        rows = g[key]["sequences"]
        return [strip_after_eos(r, eos) == strip_after_eos(a[alone_key], eos) for r, a in zip(rows, alone)]

    g["matches_alone"] = {
        "greedy": matches("greedy", "greedy"),
        "greedy_repetition_penalty": matches("greedy_repetition_penalty", "greedy_repetition_penalty"),
        "beam4": matches("beam4", "beam4"),
        "right_padded_greedy": matches("right_padded_greedy", "greedy"),
        "unmasked_left_greedy": matches("unmasked_left_greedy", "greedy"),
    }
    g["rows_finished_by_eos"] = [any(t in eos for t in r) for r in g["greedy"]["sequences"]]
    return g


# ----------------------------------------------------------------------------------------------
# One model's reference file
# ----------------------------------------------------------------------------------------------
def make_reference(name, model, prompts, max_new, eos, pad, f64, summary):
    ref = {"model": name, "transformers_version": transformers.__version__,
           "torch_version": torch.__version__, "dtype": "float64",
           "note": "float64 throughout: RoPE, RMSNorm and softmax computed in float64 (stock "
                   "transformers does them in float32); generate() scores are float32 "
                   "(transformers casts the last logits to float32)",
           "rope_inv_freq": f64.inv_freq.tolist(), "prompts": prompts}
    # Stock transformers vs the float64 swap: how much float32 was inside. Stock eager attention
    # adds float64's lowest value as the mask and casts to float32, where it becomes -inf: a query
    # with no real key (a left pad) gets NaN, which reaches real tokens through 0 * NaN.
    left_ids, left_mask = padded(prompts, "left", max(len(p) for p in prompts))

    def singles():
        return [real_rows(forward_logits(model, [p], [[1] * len(p)]), [[1] * len(p)])[0] for p in prompts]

    f64.disable()
    stock_single = singles()
    stock_left = forward_logits(model, left_ids, left_mask)
    f64.enable()
    EAGER_CALLS[0] = 0
    single = singles()
    if EAGER_CALLS[0] == 0 and isinstance(f64, Float64Math):
        problem(f"{name}: the float64 eager attention was not called")
    summary["stock_vs_f64"] = max_diff(stock_single, single)
    summary["stock_left_nan"] = any(bool(torch.isnan(r).any()) for r in real_rows(stock_left, left_mask))
    ref["single"] = [s.tolist() for s in single]
    stds = torch.cat([s.std(dim=-1) for s in single])
    summary["logit_std"] = (stds.mean().item(), stds.min().item(), stds.max().item())

    ref["forward"] = []
    summary["batch_vs_single"] = {}
    summary["manual_vs_hf"] = 0.0
    for kind, ids, mask in batches_for(prompts):
        logits = forward_logits(model, ids, mask)
        rows = real_rows(logits, mask)
        d = max_diff(rows, single)
        summary["batch_vs_single"][kind] = d
        if manual_forward is not None:  # families without one are checked against stock transformers
            manual = real_rows(manual_forward(model, torch.tensor(ids), torch.tensor(mask)), mask)
            summary["manual_vs_hf"] = max(summary["manual_vs_hf"], max_diff(rows, manual))
        if not torch.isfinite(logits).all():
            problem(f"{name}/{kind}: non-finite logits (pad positions included)")
        if d >= 1e-9:
            problem(f"{name}/{kind}: batched logits differ from single by {d:.3e}")
        ref["forward"].append({"name": kind, "input_ids": ids, "attention_mask": mask,
                               "position_ids": positions(torch.tensor(mask)).tolist(),
                               "max_abs_diff_vs_single": d, "logits": [r.tolist() for r in rows]})
    if summary["manual_vs_hf"] > 1e-10:
        problem(f"{name}: patched transformers differs from the manual float64 forward by "
                f"{summary['manual_vs_hf']:.3e}")

    right_ids, right_mask = padded(prompts, "right", max(len(p) for p in prompts))
    g = generate_references(model, prompts, left_ids, left_mask, right_ids, right_mask, max_new, eos, pad)
    ref["generate"] = g
    summary["matches_alone"] = g["matches_alone"]
    summary["finished"] = g["rows_finished_by_eos"]
    summary["min_margin"] = min(v for row in g["greedy"]["scores_top2_margin"] for v in row if v is not None)
    if not all(g["matches_alone"]["greedy"]):
        problem(f"{name}: batched greedy differs from alone: {g['matches_alone']['greedy']}")
    return ref


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")


# ----------------------------------------------------------------------------------------------
# Saving and checking a tiny model
# ----------------------------------------------------------------------------------------------
def json_rope(cfg):
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and "rope_type" not in rp and "full_attention" in rp:
        rp = rp["full_attention"]
    if rp:
        return dict(rp, rope_theta=rp.get("rope_theta", cfg.get("rope_theta")))
    rp = dict(cfg.get("rope_scaling") or {})
    rp.setdefault("rope_type", rp.get("type", "default"))
    rp["rope_theta"] = cfg.get("rope_theta")
    return rp


def check_written_config(name, cfg, expected, eos):
    want = dict(COMMON, eos_token_id=eos if len(eos) > 1 else eos[0])
    want.update({k: v for k, v in expected.items() if k != "rope"})
    for key, value in want.items():
        if key not in cfg:
            print(f"  note: {name} config.json has no {key!r} (expected {value!r})")
            if key in ("head_dim", "tie_word_embeddings"):
                problem(f"{name}: config.json lacks {key}")
        elif cfg[key] != value:
            problem(f"{name}: config.json {key} = {cfg[key]!r}, expected {value!r}")
    rope = json_rope(cfg)
    for key, value in expected["rope"].items():
        if rope.get(key) != value:
            problem(f"{name}: config.json rope {key} = {rope.get(key)!r}, expected {value!r}")
    layer_types = cfg.get("layer_types")
    if layer_types is not None and any(t != "full_attention" for t in layer_types):
        problem(f"{name}: layer_types {layer_types}")


def pick_second_eos(model, prompts):
    """A second EOS id for the Qwen models: a token that greedy decoding of one prompt first emits
    a few steps in, so that its row finishes while others run on (tests finished rows and several
    EOS ids). Prompts are tried in the order 1, 2, 3, 0."""
    tried = []
    for index in (1, 2, 3, 0):
        ids, emitted = list(prompts[index]), []
        with torch.no_grad():
            for _ in range(8):
                logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
                emitted.append(int(logits.argmax()))
                ids.append(emitted[-1])
        tried.append((index, emitted))
        for step in (3, 4, 2, 5, 1):
            t = emitted[step]
            if t > 2 and t not in emitted[:step]:
                return t, tried
    return None, tried


def build_tiny(name, seed, config, expected, second_eos, prompts, out_dir, summary):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model = model.to(torch.float64).eval()
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        problem(f"{name}: attention implementation is {model.config._attn_implementation}")
    reinit(model, seed)
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if tied != expected["tie_word_embeddings"]:
        problem(f"{name}: lm_head tied={tied} in memory")
    f64 = Float64Math(model)
    f64.enable()
    eos = [2]
    if second_eos:
        extra, tried = pick_second_eos(model, prompts)
        print(f"  {name}: greedy alone (prompt, tokens) {tried}; second EOS id {extra}")
        if extra is not None:
            eos = [2, extra]
    model.config.eos_token_id = eos if len(eos) > 1 else eos[0]
    model.generation_config.eos_token_id = model.config.eos_token_id
    summary["eos"] = eos

    folder = os.path.join(out_dir, "models", name)
    os.makedirs(folder, exist_ok=True)
    model.to(torch.float32)
    model.save_pretrained(folder)
    model.to(torch.float64)
    print(f"  {name}: files {sorted(os.listdir(folder))}")
    gen_path = os.path.join(folder, "generation_config.json")
    if os.path.exists(gen_path):
        with open(gen_path) as f:
            print(f"  {name}: generation_config.json: {json.dumps(json.load(f), sort_keys=True)}")
    with open(os.path.join(folder, "config.json")) as f:
        text = f.read()
    print(f"  {name}: config.json as transformers {transformers.__version__} wrote it:\n{text}")
    cfg = json.loads(text)
    check_written_config(name, cfg, expected, eos)

    path = os.path.join(folder, "model.safetensors")
    with safe_open(path, "pt") as st:
        names = sorted(st.keys())
        dtypes = {str(st.get_tensor(n).dtype) for n in names}
    print(f"  {name}: {len(names)} tensors {dtypes}: {names}")
    if dtypes != {"torch.float32"}:
        problem(f"{name}: tensor dtypes {dtypes}")
    if expected["tie_word_embeddings"] == ("lm_head.weight" in names):
        problem(f"{name}: tie_word_embeddings={expected['tie_word_embeddings']} but lm_head.weight "
                f"{'present' if 'lm_head.weight' in names else 'absent'}")
    if name == "qwen2" and not any(n.endswith("q_proj.bias") for n in names):
        problem("qwen2: no q_proj.bias in the safetensors file")
    if name == "qwen3" and not any(n.endswith("q_norm.weight") for n in names):
        problem("qwen3: no q_norm.weight in the safetensors file")

    if name == "qwen2":  # transformers 4 spelling: rope_theta at top level, rope_scaling null
        rope = json_rope(cfg)
        if rope.get("rope_type", "default") != "default":
            problem("qwen2: the 4-style rewrite assumes default rope")
        cfg.pop("rope_parameters", None)
        cfg["rope_theta"] = rope["rope_theta"]
        cfg["rope_scaling"] = None
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"  qwen2: config.json rewritten in transformers 4 style:\n{json.dumps(cfg, sort_keys=True)}")

    # The references come from the model as loaded back from the folder, so that they hold for
    # what is on disk (and the 4-style qwen2 config is proven to load to the same model).
    reloaded = load(folder)
    left_ids, left_mask = padded(prompts, "left", max(len(p) for p in prompts))
    f64_reloaded = Float64Math(reloaded)
    f64_reloaded.enable()
    a = real_rows(forward_logits(model, left_ids, left_mask), left_mask)
    b = real_rows(forward_logits(reloaded, left_ids, left_mask), left_mask)
    summary["reload_diff"] = max_diff(a, b)
    if summary["reload_diff"] > 1e-12:
        problem(f"{name}: reloaded model differs by {summary['reload_diff']:.3e}")
    tied = reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    print(f"  {name}: reloaded lm_head shares the embedding: {tied}; max|logits diff| vs the model "
          f"in memory {summary['reload_diff']:.3e}")
    if tied != expected["tie_word_embeddings"]:
        problem(f"{name}: reloaded lm_head tied={tied}")
    return reloaded, f64_reloaded, eos


def load(folder):
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    return model.to(torch.float64).eval()


# ----------------------------------------------------------------------------------------------
def print_summary(summaries):
    print("\n==================== SUMMARY ====================")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for name, s in summaries.items():
        if "error" in s:
            print(f"{name}: ERROR {s['error']}")
            continue
        std = s.get("logit_std", (float("nan"),) * 3)
        print(f"{name}: eos {s.get('eos')}; logit std over vocab mean {std[0]:.3f} (min {std[1]:.3f}, "
              f"max {std[2]:.3f}); stock transformers vs float64 (unpadded) {s.get('stock_vs_f64', float('nan')):.3e}, "
              f"stock left batch has NaN: {s.get('stock_left_nan')}; "
              f"patched vs manual float64 {s.get('manual_vs_hf', float('nan')):.3e}; reload diff "
              f"{s.get('reload_diff', 'n/a')}")
        print("   batched vs single max|diff|: " + ", ".join(
            f"{k} {v:.3e}" for k, v in s.get("batch_vs_single", {}).items()))
        for k, v in s.get("matches_alone", {}).items():
            print(f"   {k} rows equal alone: {v}")
        print(f"   greedy rows finished by EOS: {s.get('finished')}; smallest greedy top-2 margin "
              f"{s.get('min_margin', float('nan')):.3e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stories", help="folder with stories260K config.json, model.safetensors, tokenizer.model")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    os.makedirs(os.path.join(args.out, "reference"), exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}", flush=True)

    g = torch.Generator().manual_seed(PROMPT_SEED)
    tiny_prompts = [[1] + torch.randint(3, 128, (n - 1,), generator=g).tolist() for n in (1, 3, 7, 12)]
    print(f"tiny prompts: {tiny_prompts}")

    summaries = {}
    for name, seed, config, expected, second_eos in tiny_specs():
        print(f"\n=== {name} ===", flush=True)
        summary = summaries.setdefault(name, {})
        try:
            model, f64, eos = build_tiny(name, seed, config, expected, second_eos, tiny_prompts, args.out, summary)
            ref = make_reference(name, model, tiny_prompts, TINY_MAX_NEW_TOKENS, eos, eos[0], f64, summary)
            if not 2.0 <= summary["logit_std"][0] <= 10.0:
                problem(f"{name}: logit std {summary['logit_std'][0]:.3f} outside [2, 10]")
            write_json(os.path.join(args.out, "reference", f"{name}.json"), ref)
        except Exception as e:
            traceback.print_exc()
            summary["error"] = f"{type(e).__name__}: {e}"
            problem(f"{name}: {summary['error']}")

    if args.stories:
        print("\n=== stories260K ===", flush=True)
        summary = summaries.setdefault("stories260K", {})
        try:
            import sentencepiece as spm
            sp = spm.SentencePieceProcessor(model_file=os.path.join(args.stories, "tokenizer.model"))
            prompts = [[1] + sp.EncodeAsIds(t) for t in STORIES_TEXTS]
            print(f"stories260K prompts: {prompts}")
            model = load(args.stories)
            eos = model.config.eos_token_id
            eos = list(eos) if isinstance(eos, (list, tuple)) else [eos]
            summary["eos"] = eos
            f64 = Float64Math(model)
            f64.enable()
            ref = make_reference("stories260K", model, prompts, STORIES_MAX_NEW_TOKENS, eos, eos[0], f64, summary)
            ref["texts"] = STORIES_TEXTS
            write_json(os.path.join(args.out, "reference", "stories260K.json"), ref)
        except Exception as e:
            traceback.print_exc()
            summary["error"] = f"{type(e).__name__}: {e}"
            problem(f"stories260K: {summary['error']}")

    print_summary(summaries)
    if PROBLEMS:
        print(f"\n{len(PROBLEMS)} PROBLEMS:")
        for p in PROBLEMS:
            print("  -", p)
        sys.exit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
