#!/usr/bin/env python3
"""Writes the oracle for model families beyond Llama, Mistral and Qwen: one tiny random model each.

Layout written under --out (copy models/ and reference/ into tests/data/):
  models/<name>/config.json, generation_config.json, model.safetensors (in the family's published
      dtype), one folder a family in FAMILIES:
        smollm3   4 layers, GQA (4 heads, 2 KV heads), tied embeddings, bfloat16, RoPE theta 5e6;
                  no_rope_layer_interval 2, so that config.json's no_rope_layers is [1, 0, 1, 0]:
                  layers 0 and 2 rotate q and k, layers 1 and 3 (NoPE) do not
        gemma2, gemma3_text, gemma3_mm, phi3, olmo2, granite: see their configs below
        qwen3_moe 4 layers, 8 experts, top 2 renormalized (norm_topk_prob), expert MLPs of 32,
                  mlp_only_layers [2]: layer 2 is a dense MLP of 96 among sparse ones; per-head q/k norm
        mixtral   4 layers, 4 experts (num_local_experts), top 2, expert MLPs of 64
        olmoe     4 layers, 8 experts, top 2 not renormalized, expert MLPs of 32; q/k norm over the
                  whole projection
        gpt_oss   4 layers, 8 experts, top 2 of the biased router logits, softmax over those; experts
                  with biases and the clamped SwiGLU (limit 7); attention biases and sinks; sliding
                  window 6 in layers 0 and 2; YaRN (factor 4 over 16 positions, truncate false)
      and for qwen3_moe and mixtral a sibling folder with the same weights in the expert layout
      transformers did not write (models/qwen3_moe_fused, models/mixtral_fused where transformers
      writes per-expert tensors), which transformers loads to bitwise the same logits
      (config.v4.json beside config.json: the same model in transformers 4's spelling, where the
      family has one)
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

The families with everywhere=True run transformers' own modeling code with float64 wherever it asks
for float32 (Float64Everywhere). The mixture-of-experts families load with experts_implementation
"eager" (transformers' per-expert loop; its default grouped_mm takes no float64) and get, beyond
the common reference: the tensor names and shapes transformers writes ("expert_layout"), its
expert blocks checked against a float64 block written here from the file's tensors (manual_moe),
a seed whose routing no float32 rounding can flip (the k-th and (k+1)-th router scores of every
real token of every forward apart by MOE_RELATIVE_MARGIN of the token's largest score:
"min_router_margin") and is not degenerate, and logits that change clearly with top-k one more or
one less and with norm_topk_prob flipped. gpt-oss also records its YaRN frequencies and attention
factor ("yarn_inv_freq", "yarn_attention_factor", checked against yarn_reference) and how often
its SwiGLU clamp engages ("swiglu_clamps", required on both sides), and proves that sinks, the
clamp, the windows and YaRN each change the logits.

To add a family, append a Family to FAMILIES: the config, the values config.json must hold, and
which layers rotate (from config.json as written); extra checks go in `check`.

Run with torch, transformers 5 (5.17 for the mixtures of experts) and safetensors installed (CPU
is enough):
  python3 tests/reference/make_family_fixtures.py --out DIR [--only NAME ...]
"""
import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import traceback
import types
from typing import Callable, Optional

import torch
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model_fixtures as mmf  # noqa: E402

ORIGINAL_MANUAL = mmf.manual_forward
ORIGINAL_BATCHES = mmf.batches_for
PROMPT_LENGTHS = (1, 3, 7, 12)
DISTINCT = 1e-3              # the least max|diff| that counts as "clearly different" logits


@dataclasses.dataclass
class MoeSpec:
    """What a mixture-of-experts family routes and how its tiny model's experts are drawn."""
    router: str                  # "softmax_topk": the top k of softmax(router logits) (Qwen3-MoE, Mixtral, OLMoE);
                                 # "topk_softmax": the top k router logits (with a bias), softmax over those k (gpt-oss)
    normalize_key: Optional[str]  # config key that renormalizes the top-k weights to sum 1; None: fixed by the family
    always_normalized: bool      # without such a key: whether the k weights sum to 1 (Mixtral, gpt-oss)
    sparse_layers: tuple         # one 1/0 a layer: the layer's MLP is the expert block (0: a dense MLP)
    gate_up_scale: float = 1.5   # expert gate/up weights ~ N(0, 1/fan_in) * gate_up_scale
    down_scale: float = 1.5      # expert down weights ~ N(0, 1/fan_in) * down_scale
    alternate: bool = False      # also write the same weights in the other expert layout (a sibling folder)
    block_sparse_moe: bool = False  # per-expert tensors are Mixtral's block_sparse_moe.experts.{e}.w1/w3/w2


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
    everywhere: bool = False                 # run transformers' own code in float64 (Float64Everywhere)
    v4: Optional[Callable] = None            # config.json -> the same model in transformers 4's spelling
    norm_center: float = 1.0                 # RMSNorm weights ~ norm_center + 0.2 N(0, 1) (Gemma: 1 + w)
    tolerate: tuple = ()                     # PROBLEMS that are transformers' own batch dependence
    embed_std: float = 1.0                   # embedding weights ~ embed_std N(0, 1)
    moe: Optional[MoeSpec] = None            # mixture of experts: routing, expert scales, layouts
    seed_tries: int = 1                      # seeds tried (seed + 1000 i) until moe_accept takes one


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


# ----------------------------------------------------------------------------------------------
# Families run by transformers' own code in float64 (Gemma 2 and 3, Phi-3, OLMo 2, Granite)
# ----------------------------------------------------------------------------------------------
class Float64Everywhere:
    """transformers' own modeling code, with float64 wherever it asks for float32.

    Their norms ((1 + w) for Gemma, the norm of the whole projection for OLMo 2), rotary
    embeddings (two of them for Gemma 3, partial and LongRoPE for Phi-3) and attention (with
    soft-capping for Gemma 2) are not the Llama modules Float64Math swaps. Instead, while enabled,
    Tensor.float() and .to(float32), and the float32 dtype given to softmax, torch.tensor and
    torch.arange, mean float64: the model code runs as written, in float64. Enabled while the model
    is built, so that the rotary frequencies are computed in float64 too. disable() restores stock
    torch, which make_reference uses to measure how much float32 stock transformers has inside."""

    def __init__(self):
        self.original = dict(to=torch.Tensor.to, float=torch.Tensor.float, softmax=torch.nn.functional.softmax,
                             tensor=torch.tensor, arange=torch.arange)
        self.inv_freq = None  # set per model: its rotary buffers, for the reference file
        self.norms, self.ropes = [], []
        self.active = False

    @staticmethod
    def _wide(dtype):
        return torch.float64 if dtype is torch.float32 else dtype

    def enable(self):
        o, wide = self.original, self._wide

        def to(t, *args, **kw):
            args = tuple(wide(a) if isinstance(a, torch.dtype) else a for a in args)
            if "dtype" in kw:
                kw["dtype"] = wide(kw["dtype"])
            return o["to"](t, *args, **kw)

        def softmax(x, dim=None, _stacklevel=3, dtype=None):
            return o["softmax"](x, dim=dim, dtype=wide(dtype) if dtype is not None else None)

        def tensor(data, *args, dtype=None, **kw):
            return o["tensor"](data, *args, dtype=wide(dtype) if dtype is not None else None, **kw)

        def arange(*args, dtype=None, **kw):
            return o["arange"](*args, dtype=wide(dtype) if dtype is not None else None, **kw)

        torch.Tensor.to = to
        torch.Tensor.float = lambda t, *a, **k: t.double()
        torch.nn.functional.softmax = softmax
        torch.tensor = tensor
        torch.arange = arange
        self.active = True

    def disable(self):
        o = self.original
        torch.Tensor.to, torch.Tensor.float = o["to"], o["float"]
        torch.nn.functional.softmax, torch.tensor, torch.arange = o["softmax"], o["tensor"], o["arange"]
        self.active = False


EVERYWHERE = Float64Everywhere()


def is_moe(config):
    return bool(getattr(config, "num_experts_per_tok", None))


def implementations(config):
    """transformers' eager attention, and for a mixture of experts its eager experts (the default
    grouped_mm path takes no float64)."""
    impl = dict(attn_implementation="eager")
    if is_moe(config):
        impl["experts_implementation"] = "eager"
    return impl


def transformers_state(folder):
    """The parameters of `folder` as transformers' own from_pretrained lays them out in memory (its
    checkpoint conversion applied: per-expert tensors fused into mlp.experts.*), in the file's
    dtype, loaded by stock torch."""
    from safetensors.torch import load_file
    from transformers import AutoConfig
    dtype = next(iter(load_file(os.path.join(folder, "model.safetensors")).values())).dtype
    was = EVERYWHERE.active
    EVERYWHERE.disable()
    try:
        config = AutoConfig.from_pretrained(folder)
        model, info = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, output_loading_info=True,
                                                           **implementations(config))
    finally:
        if was:
            EVERYWHERE.enable()
    if not isinstance(info, dict):
        info = {k: getattr(info, k, None) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        mmf.problem(f"{folder}: transformers' from_pretrained reports {bad}")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def load_built(folder):
    """The model of `folder`, built by its class's __init__ (under Float64Everywhere: rotary
    frequencies and Gemma's embedding scale computed in float64 there) and given the file's
    tensors, in float64. Every tensor of the file must be a parameter, and every parameter but a
    tied head must come from the file. A mixture of experts gets the tensors as transformers'
    from_pretrained converts them (transformers_state), so that its expert layouts are read by
    transformers itself."""
    from safetensors.torch import load_file
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForCausalLM.from_config(config, **implementations(config))
    if is_moe(config):
        state = transformers_state(folder)
    else:
        state = load_file(os.path.join(folder, "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = getattr(config, "tie_word_embeddings", False)
    if unexpected or [k for k in missing if not (tied and k == "lm_head.weight")]:
        mmf.problem(f"{folder}: missing {missing}, unexpected {unexpected}")
    model = model.to(torch.float64).eval()
    if tied and model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        mmf.problem(f"{folder}: lm_head not tied")
    scale = getattr(model.model.embed_tokens, "embed_scale", None)
    if scale is not None:
        print(f"  embed_scale {scale.item()!r} (sqrt(hidden_size) = {config.hidden_size ** 0.5!r})")
        if scale.item() != config.hidden_size ** 0.5:
            mmf.problem(f"{folder}: embed_scale {scale.item()} != sqrt(hidden_size)")
    for m in model.modules():
        if type(m).__name__.endswith("RotaryEmbedding"):
            for bname, b in m.named_buffers(recurse=False):
                print(f"  {bname} {b.dtype} {[round(v, 12) for v in b.tolist()]}")
    return model


class RotaryBuffers:
    """The rotary modules' inverse frequencies, by buffer name, for the reference file."""

    def __init__(self, model):
        self.buffers = {}
        for m in model.modules():
            if type(m).__name__.endswith("RotaryEmbedding"):
                for name, b in m.named_buffers(recurse=False):
                    if name.endswith("inv_freq") and "original" not in name:
                        self.buffers[name] = b.detach().cpu()

    def tolist(self):
        return {k: v.tolist() for k, v in self.buffers.items()}


def logits_of(model, prompts):
    ids, mask = mmf.padded(prompts, "left", max(len(p) for p in prompts))
    return mmf.real_rows(mmf.forward_logits(model, ids, mask), mask)


def prompts_alone(model, prompts):
    return [mmf.real_rows(mmf.forward_logits(model, [p], [[1] * len(p)]), [[1] * len(p)])[0] for p in prompts]


def must_differ(name, what, a, b, summary):
    d = mmf.max_diff(a, b)
    summary.setdefault("ablations", {})[what] = d
    print(f"  {name}: max|logits - logits {what}| {d:.3e}")
    if d <= DISTINCT:
        mmf.problem(f"{name}: {what} changes the logits by only {d:.3e}: the fixture would not notice")


def with_config(model, **changes):
    """Runs with model.config (and every module holding an attribute of the same name) changed."""
    class Ctx:
        def __enter__(self):
            self.saved = []
            for m in [model.config] + list(model.modules()):
                for k, v in changes.items():
                    if k in getattr(m, "__dict__", {}):
                        self.saved.append((m, k, getattr(m, k)))
                        setattr(m, k, v)
            return self

        def __exit__(self, *exc):
            for m, k, v in reversed(self.saved):
                setattr(m, k, v)
    return Ctx()


GEMMA_TINY = dict(num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24, sliding_window=6,
                  hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, pad_token_id=None,
                  attention_bias=False)


def gemma2_config():
    from transformers import Gemma2Config
    common = dict(mmf.COMMON, num_hidden_layers=4)
    return Gemma2Config(**common, **GEMMA_TINY, attn_logit_softcapping=3.0, final_logit_softcapping=6.0,
                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def gemma2_v4(cfg):
    """transformers 4's spelling of the same model: top-level rope_theta, no layer_types (Gemma 2
    slides in the even layers)."""
    v4 = {k: v for k, v in cfg.items() if k not in ("layer_types", "rope_parameters")}
    v4["rope_theta"] = cfg["rope_parameters"]["rope_theta"]
    return v4


def gemma2_check(family, cfg, model, prompts, f64, ref, summary):
    name = family.name
    want = ["sliding_attention", "full_attention"] * 2
    if cfg.get("layer_types") != want:
        mmf.problem(f"{name}: layer_types {cfg.get('layer_types')}, expected {want}")
    hf = prompts_alone(model, prompts)
    with with_config(model, final_logit_softcapping=None):
        raw = prompts_alone(model, prompts)
    top = max(r.abs().max().item() for r in raw)
    summary["raw_logit_max"] = top
    print(f"  {name}: largest logit before final soft-capping {top:.3f} (cap {cfg['final_logit_softcapping']})")
    if top <= cfg["final_logit_softcapping"]:
        mmf.problem(f"{name}: logits never reach the final soft-cap")
    must_differ(name, "without final soft-capping", hf, raw, summary)
    with with_config(model, attn_logit_softcapping=None):
        must_differ(name, "without attention soft-capping", hf, prompts_alone(model, prompts), summary)
    with with_config(model, sliding_window=10 ** 6):
        must_differ(name, "without sliding windows", hf, prompts_alone(model, prompts), summary)
    ref["final_logit_softcapping"] = cfg["final_logit_softcapping"]
    ref["attn_logit_softcapping"] = cfg["attn_logit_softcapping"]


GEMMA3_ROPE = {"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 100000.0},
               "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}


def gemma3_config():
    from transformers import Gemma3TextConfig
    common = dict(mmf.COMMON, num_hidden_layers=6)
    return Gemma3TextConfig(**common, **GEMMA_TINY, sliding_window_pattern=3, final_logit_softcapping=None,
                            attn_logit_softcapping=None, rope_parameters=json.loads(json.dumps(GEMMA3_ROPE)))


def gemma3_v4(cfg):
    """transformers 4's spelling, as published Gemma 3 checkpoints carry it: rope_theta (global),
    rope_local_base_freq (local), rope_scaling (global layers only), sliding_window_pattern."""
    v4 = {k: v for k, v in cfg.items() if k not in ("layer_types", "rope_parameters")}
    full, local = cfg["rope_parameters"]["full_attention"], cfg["rope_parameters"]["sliding_attention"]
    v4["rope_theta"] = full["rope_theta"]
    v4["rope_local_base_freq"] = local["rope_theta"]
    v4["rope_scaling"] = {"rope_type": full["rope_type"], "factor": full["factor"]}
    v4["sliding_window_pattern"] = 3
    return v4


def gemma3_check(family, cfg, model, prompts, f64, ref, summary):
    name = family.name
    want = ["sliding_attention", "sliding_attention", "full_attention"] * 2
    if cfg.get("layer_types") != want:
        mmf.problem(f"{name}: layer_types {cfg.get('layer_types')}, expected {want}")
    if not any(n.endswith("q_norm.weight") for n, _ in model.named_parameters()):
        mmf.problem(f"{name}: no q_norm")
    hf = prompts_alone(model, prompts)
    rot = model.model.rotary_emb
    full, local = rot.full_attention_inv_freq.clone(), rot.sliding_attention_inv_freq.clone()
    try:  # the global layers' RoPE in every layer
        rot.sliding_attention_inv_freq.copy_(full)
        must_differ(name, "with the global RoPE in local layers", hf, prompts_alone(model, prompts), summary)
    finally:
        rot.sliding_attention_inv_freq.copy_(local)
    try:
        rot.full_attention_inv_freq.copy_(local)
        must_differ(name, "with the local RoPE in global layers", hf, prompts_alone(model, prompts), summary)
    finally:
        rot.full_attention_inv_freq.copy_(full)
    with with_config(model, sliding_window=10 ** 6):
        must_differ(name, "without sliding windows", hf, prompts_alone(model, prompts), summary)
    again = prompts_alone(model, prompts)
    if mmf.max_diff(again, hf) != 0.0:
        mmf.problem(f"{name}: the model did not return to its own RoPE")


PHI3_SHORT = [1.0, 1.0, 1.25, 1.5, 2.0, 3.0]        # exact in float32, as transformers holds them
PHI3_LONG = [1.0, 1.5, 2.5, 4.0, 8.0, 16.0]
PHI3_ORIGINAL = 16
PHI3_LONG_PROMPT = 20


def phi3_config():
    from transformers import Phi3Config
    common = dict(mmf.COMMON, max_position_embeddings=64)
    return Phi3Config(**common, num_key_value_heads=2, tie_word_embeddings=False, pad_token_id=None,
                      original_max_position_embeddings=PHI3_ORIGINAL, sliding_window=10,
                      rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
                                       "short_factor": list(PHI3_SHORT), "long_factor": list(PHI3_LONG)})


def phi3_v4(cfg):
    """transformers 4's spelling, as Phi-3.5-mini and Phi-4-mini publish it: rope_scaling with
    "type": "longrope", top-level rope_theta and partial_rotary_factor."""
    v4 = {k: v for k, v in cfg.items() if k != "rope_parameters"}
    rp = cfg["rope_parameters"]
    v4["rope_theta"] = rp["rope_theta"]
    v4["partial_rotary_factor"] = rp["partial_rotary_factor"]
    v4["rope_scaling"] = {"type": "longrope", "short_factor": rp["short_factor"], "long_factor": rp["long_factor"]}
    return v4


def phi3_check(family, cfg, model, prompts, f64, ref, summary):
    name = family.name
    names = [n for n, _ in model.named_parameters()]
    if not any(n.endswith("qkv_proj.weight") for n in names) or not any(n.endswith("gate_up_proj.weight") for n in names):
        mmf.problem(f"{name}: no fused qkv_proj / gate_up_proj")
    # A prompt longer than original_max_position_embeddings, alone: transformers rotates every token
    # of that forward with the long factors; its first 15 tokens alone (shorter) use the short ones.
    g = torch.Generator().manual_seed(77)
    long_prompt = [1] + torch.randint(3, 128, (PHI3_LONG_PROMPT - 1,), generator=g).tolist()
    whole = prompts_alone(model, [long_prompt])[0]
    head = prompts_alone(model, [long_prompt[:PHI3_ORIGINAL - 1]])[0]
    d = (whole[: PHI3_ORIGINAL - 1] - head).abs().max().item()
    summary["long_vs_short_prefix"] = d
    print(f"  {name}: first {PHI3_ORIGINAL - 1} tokens, long factors (in a {PHI3_LONG_PROMPT}-token forward) vs "
          f"short (alone): max|diff| {d:.3e}")
    if d <= DISTINCT:
        mmf.problem(f"{name}: long and short factors give the same logits")
    ref["long_prompt"] = {"input_ids": long_prompt, "logits": whole.tolist(),
                          "note": "one forward of a prompt longer than original_max_position_embeddings: "
                                  "every token rotated with long_factor"}
    rot = model.model.rotary_emb
    ref["attention_scaling"] = rot.attention_scaling
    print(f"  {name}: rotary attention_scaling {rot.attention_scaling} (sqrt(1 + ln 4 / ln 16) = "
          f"{math.sqrt(1 + math.log(4) / math.log(16))})")
    with with_config(model, sliding_window=None):
        hf = prompts_alone(model, prompts)
    must_differ(name, "without the sliding window", prompts_alone(model, prompts), hf, summary)
    # transformers 5.17's Phi-3 generate() loses the context where a row first grows past
    # original_max_position_embeddings: prepare_inputs_for_generation drops the cache so that the
    # whole context is recomputed with the long factors, but only the last token is fed again. The
    # references past that step are therefore greedy decoding by whole forwards (no cache), which is
    # what the cache drop intends, with transformers' repetition penalty applied to the logits.
    def whole_forwards(prompt, penalty):
        seq = list(prompt)
        for _ in range(family.max_new_tokens):
            logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].clone()
            if penalty != 1.0:
                idx = torch.tensor(sorted(set(seq)))
                picked = logits[idx]
                logits[idx] = torch.where(picked < 0, picked * penalty, picked / penalty)
            top2 = logits.topk(2).values
            if (top2[0] - top2[1]).item() < 1e-6:
                mmf.problem(f"{name}: near tie in whole-forward greedy")
            seq.append(int(logits.argmax()))
            if seq[-1] == 2:
                break
        return seq[len(prompt):]
    whole_refs = []
    for p in prompts:
        whole_refs.append({"input_ids": p, "greedy": whole_forwards(p, 1.0),
                           "greedy_repetition_penalty": whole_forwards(p, mmf.REPETITION_PENALTY)})
    ref["generate_whole_forwards"] = whole_refs
    for p, w, alone in zip(prompts, whole_refs, ref["generate"]["alone"]):
        trusted = PHI3_ORIGINAL + 1 - len(p)
        same = w["greedy"][:trusted] == alone["greedy"][:trusted]
        print(f"  {name}: prompt of {len(p)}: whole-forward greedy {w['greedy']} vs generate() {alone['greedy']}; "
              f"the first {trusted} tokens agree: {same}")
        if not same:
            mmf.problem(f"{name}: whole-forward greedy differs from generate() before the LongRoPE switch")
    ref["note_whole_forwards"] = ("generate_whole_forwards: greedy (and greedy with repetition_penalty) by a whole "
                                  "forward per step, no cache: transformers 5.17's generate() drops the cache where "
                                  "a row first passes original_max_position_embeddings but feeds only the last token "
                                  "again, losing the context; its tokens from that step on are not a reference")
    ref["note_longrope"] = ("transformers picks long_factor for a whole forward call when its largest position + 1 "
                            "exceeds original_max_position_embeddings, per batch: alone that is per row. Its "
                            "batched generate() therefore switches every row when the longest does; the "
                            "'alone' references are the contract")


def olmo2_config():
    from transformers import Olmo2Config
    return Olmo2Config(**mmf.COMMON, num_key_value_heads=2, tie_word_embeddings=False, pad_token_id=None,
                       attention_bias=False, rope_parameters={"rope_type": "default", "rope_theta": 500000.0})


def plain_v4(cfg):
    v4 = {k: v for k, v in cfg.items() if k != "rope_parameters"}
    rp = cfg["rope_parameters"]
    v4["rope_theta"] = rp["rope_theta"]
    v4["rope_scaling"] = None
    return v4


def olmo2_check(family, cfg, model, prompts, f64, ref, summary):
    a = model.model.layers[0].self_attn
    if a.q_norm.weight.shape[0] != cfg["num_attention_heads"] * 16 or a.k_norm.weight.shape[0] != cfg["num_key_value_heads"] * 16:
        mmf.problem(f"{family.name}: q_norm {tuple(a.q_norm.weight.shape)} / k_norm {tuple(a.k_norm.weight.shape)}")


def granite_config():
    from transformers import GraniteConfig
    return GraniteConfig(**mmf.COMMON, num_key_value_heads=2, tie_word_embeddings=True, pad_token_id=None,
                         attention_bias=False, mlp_bias=False, embedding_multiplier=12.0, residual_multiplier=0.22,
                         attention_multiplier=0.09375, logits_scaling=2.5,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def granite_check(family, cfg, model, prompts, f64, ref, summary):
    hf = prompts_alone(model, prompts)
    for key, neutral in (("embedding_multiplier", 1.0), ("residual_multiplier", 1.0),
                         ("attention_multiplier", 0.25), ("logits_scaling", 1.0)):
        changes = {key: neutral}
        if key == "attention_multiplier":
            changes["scaling"] = neutral
        if key == "residual_multiplier":
            pass
        with with_config(model, **changes):
            must_differ(family.name, f"with {key} {neutral}", hf, prompts_alone(model, prompts), summary)


# ----------------------------------------------------------------------------------------------
# Mixture-of-experts families (Qwen3-MoE, Mixtral, OLMoE, gpt-oss)
# ----------------------------------------------------------------------------------------------
MOE_RELATIVE_MARGIN = 1e-4   # least router gap (k-th minus (k+1)-th score) over the token's largest |score|
GPT_OSS_ALPHA = 1.702        # gpt-oss' SwiGLU: (up + 1) * gate * sigmoid(alpha * gate), both clamped at the limit
MOE_KEYS = ("num_experts", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size", "intermediate_size",
            "norm_topk_prob", "mlp_only_layers", "decoder_sparse_step", "shared_expert_intermediate_size",
            "router_jitter_noise", "swiglu_limit", "experts_per_token", "layer_types", "sliding_window",
            "clip_qkv", "head_dim", "attention_bias")


def with_extras(cls, extras, **kw):
    """cls(**kw, **extras): published configs carry fields (Qwen3-MoE's head_dim, gpt-oss' swiglu_limit)
    that the config class does not declare; transformers keeps them as attributes."""
    try:
        return cls(**kw, **extras)
    except Exception as e:  # noqa: BLE001
        print(f"  note: {cls.__name__} refuses {sorted(extras)} as arguments ({type(e).__name__}: {e}); "
              f"set as attributes")
        config = cls(**kw)
        for k, v in extras.items():
            setattr(config, k, v)
        return config


def qwen3_moe_config():
    from transformers import Qwen3MoeConfig
    common = dict(mmf.COMMON, num_hidden_layers=4)      # intermediate_size 96: the dense MLP of layer 2
    return with_extras(Qwen3MoeConfig, dict(head_dim=16), **common, num_key_value_heads=2, tie_word_embeddings=False,
                       pad_token_id=None, attention_bias=False, use_sliding_window=False, sliding_window=None,
                       num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                       mlp_only_layers=[2], decoder_sparse_step=1,
                       rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})


def mixtral_config():
    from transformers import MixtralConfig
    common = dict(mmf.COMMON, num_hidden_layers=4, intermediate_size=64)
    return MixtralConfig(**common, num_key_value_heads=2, tie_word_embeddings=False, pad_token_id=None,
                         sliding_window=None, num_local_experts=4, num_experts_per_tok=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})


def olmoe_config():
    from transformers import OlmoeConfig
    common = dict(mmf.COMMON, num_hidden_layers=4, intermediate_size=32)
    return OlmoeConfig(**common, num_key_value_heads=2, tie_word_embeddings=False, pad_token_id=None,
                       attention_bias=False, clip_qkv=None, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


# YaRN as gpt-oss publishes it (factor 32 over 4096 there), scaled down: 64 positions over 16. The
# tiny head (16) and context make most frequencies interpolated; rope_theta 1000 (gpt-oss: 150000)
# puts the ramp's fractional end (1.08) past dimension pair 1, so that pair is a mix and
# truncate=false matters (truncated, the ramp would end at 2).
GPT_OSS_ROPE = {"rope_type": "yarn", "rope_theta": 1000.0, "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0,
                "truncate": False, "original_max_position_embeddings": 16}


def gpt_oss_config():
    from transformers import GptOssConfig
    common = dict(mmf.COMMON, num_hidden_layers=4, intermediate_size=32, max_position_embeddings=64)
    return with_extras(GptOssConfig, dict(swiglu_limit=7.0), **common, num_key_value_heads=2, head_dim=16,
                       tie_word_embeddings=False, pad_token_id=None, attention_bias=True, num_local_experts=8,
                       num_experts_per_tok=2, sliding_window=6,
                       layer_types=["sliding_attention", "full_attention"] * 2, rope_parameters=dict(GPT_OSS_ROPE))


def qwen3_moe_v4(cfg):
    """transformers 4's spelling, as Qwen3-30B-A3B publishes it: rope_theta, rope_scaling null, and
    the expert count as num_experts."""
    v4 = plain_v4(cfg)
    if "num_local_experts" in v4:
        v4["num_experts"] = v4.pop("num_local_experts")
    return v4


def gpt_oss_v4(cfg):
    """transformers 4's spelling, as gpt-oss-20b publishes it: rope_theta and a rope_scaling of type
    yarn; layer_types stay (transformers 4 wrote them for gpt-oss too)."""
    v4 = {k: v for k, v in cfg.items() if k != "rope_parameters"}
    rp = flat_rope(cfg)
    v4["rope_theta"] = rp.pop("rope_theta")
    v4["rope_scaling"] = rp
    return v4


def flat_rope(cfg):
    """config.json's rope_parameters as one dict (transformers may key it by layer type)."""
    rp = dict(cfg["rope_parameters"])
    if "rope_type" not in rp and "full_attention" in rp:
        rp = dict(rp["full_attention"])
    return rp


def sparse_blocks(model):
    """(layer, block, router, experts) of each layer whose MLP is the expert block."""
    out = []
    for l, layer in enumerate(model.model.layers):
        mlp = layer.mlp
        if hasattr(mlp, "experts"):
            router = getattr(mlp, "gate", None)
            out.append((l, mlp, router if router is not None else mlp.router, mlp.experts))
    return out


class Capture:
    """Forward hooks on (tag, module) pairs: each call's (tag, positional inputs, output) in `seen`."""

    def __init__(self, modules):
        self.modules, self.seen, self.handles = modules, [], []

    def __enter__(self):
        for tag, m in self.modules:
            self.handles.append(m.register_forward_hook(
                lambda module, args, output, tag=tag: self.seen.append((tag, args, output))))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def moe_adjust(family, model, seed):
    """Expert tensors drawn with their real fan-in (mmf.reinit takes dim 1 of every tensor for it)
    and the family's scales; gpt-oss' expert and router biases and attention sinks non-zero."""
    spec = family.moe
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
                transposed = family.name == "gpt_oss"      # [E, in, out] rather than [E, out, in]
                fan_in = p.shape[1] if transposed else p.shape[2]
                scale = spec.gate_up_scale if name.endswith("gate_up_proj") else spec.down_scale
                p.data = noise * scale / math.sqrt(fan_in)
            elif name.endswith("experts.gate_up_proj_bias"):
                p.data = 0.5 * noise
            elif name.endswith("experts.down_proj_bias"):
                p.data = 0.2 * noise
            elif name.endswith("router.bias"):
                p.data = 0.5 * noise
            elif name.endswith("self_attn.sinks"):
                p.data = 1.5 * noise


# Expert tensors in a file, any layout: per expert (Qwen3-MoE and OLMoE: mlp.experts.{e}.gate_proj,
# up_proj, down_proj; Mixtral: block_sparse_moe.experts.{e}.w1 (gate), w3 (up), w2 (down)), or fused
# (mlp.experts.gate_up_proj [E, 2I, H], gate rows then up rows, and down_proj [E, H, I]; gpt-oss:
# gate_up_proj [E, H, 2I] with gate and up interleaved on the last dim, down_proj [E, I, H], biases).
PER_EXPERT = re.compile(r"^model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.experts\.(\d+)\."
                        r"(gate_proj|up_proj|down_proj|w1|w2|w3)\.weight$")
FUSED = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)(_bias)?$")
ROUTER = re.compile(r"^model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.(gate|router)\.(weight|bias)$")
ROLE = {"gate_proj": "gate", "w1": "gate", "up_proj": "up", "w3": "up", "down_proj": "down", "w2": "down"}


def canonical_experts(tensors, gpt_oss):
    """Per sparse layer, float64: router [E, H] (+ bias [E]), gate and up [E, I, H], down [E, H, I]
    (+ biases gate_b, up_b [E, I], down_b [E, H]), read from the file's names; and the layouts seen."""
    layers, lists, layouts = {}, {}, set()
    for name, t in tensors.items():
        t = t.to(torch.float64)
        m = PER_EXPERT.match(name)
        if m:
            l, e, role = int(m[1]), int(m[3]), ROLE[m[4]]
            lists.setdefault(l, {}).setdefault(role, {})[e] = t
            layouts.add(f"{m[2]}.experts.{{e}}." + ("w1/w3/w2" if m[4][0] == "w" else "gate_proj/up_proj/down_proj"))
            continue
        m = FUSED.match(name)
        if m:
            l, w = int(m[1]), layers.setdefault(int(m[1]), {})
            if gpt_oss:
                layouts.add("mlp.experts.gate_up_proj [E, H, 2I] interleaved, down_proj [E, I, H], biases")
                if m[2] == "gate_up_proj" and not m[3]:
                    w["gate"], w["up"] = t[..., ::2].transpose(1, 2), t[..., 1::2].transpose(1, 2)
                elif m[2] == "gate_up_proj":
                    w["gate_b"], w["up_b"] = t[:, ::2], t[:, 1::2]
                elif not m[3]:
                    w["down"] = t.transpose(1, 2)
                else:
                    w["down_b"] = t
            else:
                layouts.add("mlp.experts.gate_up_proj [E, 2I, H] gate then up, down_proj [E, H, I]")
                if m[3]:
                    raise ValueError(f"{name}: a bias in a family without expert biases")
                if m[2] == "gate_up_proj":
                    half = t.shape[1] // 2
                    w["gate"], w["up"] = t[:, :half], t[:, half:]
                else:
                    w["down"] = t
            continue
        m = ROUTER.match(name)
        if m:
            layers.setdefault(int(m[1]), {})["router_" + m[4][0]] = t
    for l, roles in lists.items():
        w = layers.setdefault(l, {})
        for role, by_expert in roles.items():
            if sorted(by_expert) != list(range(len(by_expert))):
                raise ValueError(f"layer {l}: {role} experts {sorted(by_expert)}")
            w[role] = torch.stack([by_expert[e] for e in range(len(by_expert))])
    for l, w in layers.items():
        missing = {"router_w", "gate", "up", "down"} - set(w)
        if missing:
            raise ValueError(f"layer {l}: no {sorted(missing)} among the expert tensors")
    return layers, sorted(layouts)


def manual_moe(x, w, spec, k, normalize, limit=None):
    """The expert block on tokens x [N, H] (float64), written from the families' papers and model
    cards: route, run each chosen expert, sum with the routing weights. [N, H]."""
    logits = x @ w["router_w"].T
    if "router_b" in w:
        logits = logits + w["router_b"]
    if spec.router == "softmax_topk":
        weights, chosen = torch.softmax(logits, -1).topk(k, -1)
        if normalize:
            weights = weights / weights.sum(-1, keepdim=True)
    else:
        top, chosen = logits.topk(k, -1)
        weights = torch.softmax(top, -1)
    out = torch.zeros_like(x)
    for n in range(x.shape[0]):
        for j in range(k):
            e = int(chosen[n, j])
            gate = w["gate"][e] @ x[n] + (w["gate_b"][e] if "gate_b" in w else 0.0)
            up = w["up"][e] @ x[n] + (w["up_b"][e] if "up_b" in w else 0.0)
            if limit is not None:  # gpt-oss
                gate, up = gate.clamp(max=limit), up.clamp(min=-limit, max=limit)
                h = (up + 1) * gate * torch.sigmoid(GPT_OSS_ALPHA * gate)
            else:
                h = gate * torch.sigmoid(gate) * up
            out[n] += weights[n, j] * (w["down"][e] @ h + (w["down_b"][e] if "down_b" in w else 0.0))
    return out


def normalizes(family, config):
    spec = family.moe
    return bool(getattr(config, spec.normalize_key)) if spec.normalize_key else spec.always_normalized


def router_stats(model, family, forwards):
    """Over the real tokens of each (name, ids, mask) forward, at every sparse layer: the smallest gap
    between the k-th and (k+1)-th largest of the scores transformers ranks (softmax probabilities,
    or gpt-oss' logits), relative to the token's largest |score|; the same for the router logits;
    and how often each expert is chosen."""
    spec, k = family.moe, model.config.num_experts_per_tok
    blocks = sparse_blocks(model)
    ranked_name = "softmax probabilities" if spec.router == "softmax_topk" else "router logits (with bias)"
    best, best_logit, usage, tokens = None, None, {}, 0
    for fname, ids, mask in forwards:
        with Capture([(l, router) for l, _, router, _ in blocks]) as cap:
            mmf.forward_logits(model, ids, mask)
        B, L = len(ids), len(ids[0])
        real = torch.tensor(mask).bool()
        where = real.nonzero().tolist()
        for l, _, output in cap.seen:
            logits = output[0].detach().to(torch.float64).reshape(B, L, -1)[real]        # [N, E]
            ranked = torch.softmax(logits, -1) if spec.router == "softmax_topk" else logits
            for values, kind in ((ranked, "ranked"), (logits, "logits")):
                srt = values.sort(-1, descending=True).values
                gap = srt[:, k - 1] - srt[:, k]
                scale = srt.abs().max(-1).values
                rel = gap / scale
                i = int(rel.argmin())
                entry = {"relative": rel[i].item(), "gap": gap[i].item(), "scale": scale[i].item(), "layer": l,
                         "forward": fname, "row": where[i][0], "position": where[i][1]}
                if kind == "ranked":
                    entry["ranked"] = ranked_name
                    if best is None or entry["relative"] < best["relative"]:
                        best = entry
                elif best_logit is None or entry["relative"] < best_logit["relative"]:
                    best_logit = entry
            chosen = ranked.topk(k, -1).indices.reshape(-1)
            counts = torch.bincount(chosen, minlength=logits.shape[-1]).tolist()
            usage[l] = [a + b for a, b in zip(usage.get(l, [0] * len(counts)), counts)]
            tokens += logits.shape[0]
    return {"min": best, "min_logits": best_logit, "usage": usage, "token_layers": tokens}


def margin_forwards(prompts, continuations):
    """The forwards whose routing the reference depends on: each prompt alone, the padded batches,
    and each prompt followed by what generate() produced alone (all but its last token: the
    tokens generate() runs forwards on). continuations: (label, prompt index, new tokens)."""
    fw = [(f"prompt {i} alone", [p], [[1] * len(p)]) for i, p in enumerate(prompts)]
    fw += [(f"{kind} batch", ids, mask) for kind, ids, mask in mmf.batches_for(prompts)]
    for label, i, new in continuations:
        seq = prompts[i] + mmf.strip_after_eos(list(new), [2])[:-1]
        fw.append((f"prompt {i} + its {label}", [seq], [[1] * len(seq)]))
    return fw


def swiglu_clamps(model, prompts):
    """How many gate values exceed gpt-oss' limit (clamped from above) and how many up values lie
    outside [-limit, limit], over the expert inputs of the prompts alone."""
    counts = {"gate_above": 0, "up_above": 0, "up_below": 0, "gate_values": 0}
    experts = [e for _, _, _, e in sparse_blocks(model)]

    def counting(module, gate_up):
        gate, up = gate_up[..., ::2], gate_up[..., 1::2]
        counts["gate_above"] += int((gate > module.limit).sum())
        counts["up_above"] += int((up > module.limit).sum())
        counts["up_below"] += int((up < -module.limit).sum())
        counts["gate_values"] += gate.numel()
        return type(module)._apply_gate(module, gate_up)
    for e in experts:
        e._apply_gate = types.MethodType(counting, e)
    try:
        prompts_alone(model, prompts)
    finally:
        for e in experts:
            del e._apply_gate
    return counts


def moe_accept(family, model, prompts):
    """Whether this seed's weights, rounded to the stored dtype (in place: they are saved so),
    make a fixture: logits far from flat, routing that no float32 rounding can flip (over the
    prompts, the batches and what generate() makes of the prompts alone) and is not degenerate,
    and for gpt-oss the SwiGLU clamp reached on both sides; and how many (layer, expert) pairs are
    never chosen (the seed search prefers none)."""
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.to(family.stored_dtype).to(torch.float64)
    single = prompts_alone(model, prompts)
    std = torch.cat([s.std(dim=-1) for s in single]).mean().item()
    beam = dict(num_beams=4, num_return_sequences=1, length_penalty=1.0, early_stopping=False)
    continuations = []
    for i, p in enumerate(prompts):
        for label, kw in (("greedy", {}), ("greedy_repetition_penalty", {"repetition_penalty": mmf.REPETITION_PENALTY}),
                          ("beam4", beam)):
            out = mmf.generate(model, [p], [[1] * len(p)], family.max_new_tokens, [2], 2, **kw)
            continuations.append((label, i, out["sequences"][0]))
    stats = router_stats(model, family, margin_forwards(prompts, continuations))
    unused = {l: [e for e, c in enumerate(u) if c == 0] for l, u in stats["usage"].items()}
    unused = {l: u for l, u in unused.items() if u}
    why = [f"logit std {std:.3f}", f"least relative router gap {stats['min']['relative']:.3e} (layer "
           f"{stats['min']['layer']}, {stats['min']['forward']})", f"experts never chosen {unused or 'none'}",
           f"usage {stats['usage']}"]
    ok = 1.0 <= std <= 20.0 and stats["min"]["relative"] >= MOE_RELATIVE_MARGIN and not degenerate(stats["usage"])
    if family.name == "gpt_oss":
        clamps = swiglu_clamps(model, prompts)
        why.append(f"SwiGLU clamps {clamps}")
        ok = ok and clamps["gate_above"] > 0 and clamps["up_above"] + clamps["up_below"] > 0
    return ok, sum(len(u) for u in unused.values()), "; ".join(why)


def degenerate(usage):
    """Routing that would hide expert bugs: a sparse layer choosing fewer than half of its experts,
    or giving one expert more than half of its choices."""
    return any(sum(c > 0 for c in u) * 2 < len(u) or max(u) * 2 > sum(u) for u in usage.values())


def relaid(tensors, family, to):
    """The same tensors (same dtype, same values) in the other expert layout: to="fused" gives
    mlp.experts.gate_up_proj [E, 2I, H] (gate rows, then up rows), mlp.experts.down_proj [E, H, I]
    and mlp.gate.weight, the layout transformers 5 holds in memory; to="per_expert" gives the
    family's published per-expert names."""
    dtype = next(iter(tensors.values())).dtype
    experts, _ = canonical_experts(tensors, gpt_oss=False)
    out = {n: t for n, t in tensors.items() if not (PER_EXPERT.match(n) or FUSED.match(n) or ROUTER.match(n))}
    for l, w in experts.items():
        if to == "fused":
            out[f"model.layers.{l}.mlp.experts.gate_up_proj"] = torch.cat([w["gate"], w["up"]], 1).to(dtype).contiguous()
            out[f"model.layers.{l}.mlp.experts.down_proj"] = w["down"].to(dtype).contiguous()
            out[f"model.layers.{l}.mlp.gate.weight"] = w["router_w"].to(dtype).contiguous()
        else:
            prefix = "block_sparse_moe" if family.moe.block_sparse_moe else "mlp"
            names = ("w1", "w3", "w2") if family.moe.block_sparse_moe else ("gate_proj", "up_proj", "down_proj")
            for e in range(w["gate"].shape[0]):
                for role, n in zip(("gate", "up", "down"), names):
                    out[f"model.layers.{l}.{prefix}.experts.{e}.{n}.weight"] = w[role][e].to(dtype).contiguous()
            out[f"model.layers.{l}.{prefix}.gate.weight"] = w["router_w"].to(dtype).contiguous()
    return out


def print_tensors(name, tensors):
    print(f"  {name}: {len(tensors)} tensors as written (name, shape, dtype):")
    for n in sorted(tensors, key=lambda s: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s)]):
        print(f"    {n} {list(tensors[n].shape)} {str(tensors[n].dtype).replace('torch.', '')}")


def write_alternate(family, folder, tensors, layouts, model, prompts, ref, summary):
    """The same weights in the expert layout transformers did not write, in a sibling folder named
    by the layout it holds; transformers must load it to the very same parameters and logits."""
    from safetensors.torch import save_file
    name = family.name
    per_expert = any("{e}" in s for s in layouts)
    to = "fused" if per_expert else "per_expert"
    other = os.path.join(os.path.dirname(folder), f"{name}_{to}")
    os.makedirs(other, exist_ok=True)
    for f in ("config.json", "generation_config.json"):
        shutil.copy(os.path.join(folder, f), other)
    new = relaid(tensors, family, to)
    save_file(new, os.path.join(other, "model.safetensors"), metadata={"format": "pt"})
    print_tensors(os.path.basename(other), new)
    a, b = canonical_experts(tensors, False)[0], canonical_experts(new, False)[0]
    same = sorted(a) == sorted(b) and all(torch.equal(a[l][r], b[l][r]) for l in a for r in a[l])
    if not same:
        mmf.problem(f"{name}: {os.path.basename(other)} does not hold the same experts")
    sa, sb = transformers_state(folder), transformers_state(other)
    equal = sorted(sa) == sorted(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    d = mmf.max_diff(prompts_alone(load_built(other), prompts), prompts_alone(model, prompts))
    summary["alternate"] = (os.path.basename(other), equal, d)
    print(f"  {name}: {os.path.basename(other)}: transformers loads the same parameters: {equal}; logits max|diff| {d:.3e}")
    if not equal or d != 0.0:
        mmf.problem(f"{name}: {os.path.basename(other)} loads to other parameters ({equal}) or logits ({d:.3e})")
    ref["alternate_layout"] = {"folder": os.path.basename(other), "logits_max_abs_diff": d,
                               "note": "the same bfloat16 weights in the other expert layout; transformers loads "
                                       "both to the same parameters and bitwise the same logits"}


def guarded(name, what, fn):
    """fn(), its exception a PROBLEM rather than the end of the family: the reference is still written."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        mmf.problem(f"{name}: {what} failed: {type(e).__name__}: {e}")


def moe_check(family, cfg, model, prompts, f64, ref, summary):
    """What every mixture-of-experts fixture must show: the sparse layers and expert layout as
    written, transformers' expert block equal to a float64 block written here from the file's
    tensors, routing that no float32 rounding can flip, and logits that change clearly with top-k
    and (where a config key sets it) the renormalization of the top-k weights."""
    from safetensors.torch import load_file
    name, spec = family.name, family.moe
    folder = summary["folder"]
    print(f"  {name}: MoE fields of config.json {json.dumps({k: cfg[k] for k in MOE_KEYS if k in cfg}, sort_keys=True)}")
    experts = cfg.get("num_experts", cfg.get("num_local_experts"))
    k = cfg["num_experts_per_tok"]
    keys = [key for key in ("num_experts", "num_local_experts") if key in cfg]
    print(f"  {name}: the expert count is written as {keys}")
    blocks = sparse_blocks(model)
    sparse = [0] * len(model.model.layers)
    for l, *_ in blocks:
        sparse[l] = 1
    print(f"  {name}: sparse layers {sparse}; block {type(blocks[0][1]).__name__}, router {type(blocks[0][2]).__name__}, "
          f"experts {type(blocks[0][3]).__name__}")
    if sparse != list(spec.sparse_layers):
        mmf.problem(f"{name}: sparse layers {sparse}, expected {list(spec.sparse_layers)}")
    impl = {getattr(e.config, "_experts_implementation", None) for _, _, _, e in blocks}
    print(f"  {name}: experts implementation {impl} (model.config: "
          f"{getattr(model.config, '_experts_implementation', None)!r}); attention {model.config._attn_implementation!r}; "
          f"config.json keys naming an implementation: {[key for key in cfg if 'implementation' in key]}")
    if impl != {"eager"}:
        mmf.problem(f"{name}: experts implementation {impl}, not eager")
    for _, _, router, e in blocks:
        if getattr(router, "top_k", k) != k or getattr(e, "num_experts", experts) != experts:
            mmf.problem(f"{name}: router top_k {getattr(router, 'top_k', None)} / experts {e.num_experts}")

    tensors = load_file(os.path.join(folder, "model.safetensors"))
    print_tensors(name, tensors)
    weights, layouts = canonical_experts(tensors, gpt_oss=name == "gpt_oss")
    print(f"  {name}: expert layout as transformers {transformers.__version__} writes it: {layouts}")
    if sorted(weights) != [l for l, s in enumerate(sparse) if s]:
        mmf.problem(f"{name}: expert tensors for layers {sorted(weights)}")
    for l, s in enumerate(sparse):
        if not s:
            w = tensors.get(f"model.layers.{l}.mlp.gate_proj.weight")
            if w is None or list(w.shape) != [cfg["intermediate_size"], cfg["hidden_size"]]:
                mmf.problem(f"{name}: dense layer {l} has no mlp.gate_proj.weight of [intermediate_size, hidden_size]")
    first = min(weights)
    example = {n: list(t.shape) for n, t in tensors.items() if n.startswith(f"model.layers.{first}.")
               and (PER_EXPERT.match(n) or FUSED.match(n) or ROUTER.match(n))
               and (not PER_EXPERT.match(n) or PER_EXPERT.match(n)[3] == "0")}
    ref["expert_layout"] = {"layouts": layouts, f"layer {first} (expert 0 of per-expert tensors)": example}

    limit = cfg.get("swiglu_limit") if name == "gpt_oss" else None
    normalize = normalizes(family, model.config)
    ref["sparse_layers"] = sparse
    ref["num_experts"] = experts
    ref["num_experts_per_tok"] = k
    ref["normalize_top_k"] = normalize

    def block_vs_manual():  # transformers' expert block against the one written here, on the file's tensors
        with Capture([(l, block) for l, block, _, _ in blocks]) as cap:
            prompts_alone(model, prompts)
        worst = 0.0
        for l, args, output in cap.seen:
            x = args[0].reshape(-1, args[0].shape[-1]).to(torch.float64)
            hf = (output[0] if isinstance(output, tuple) else output).reshape(x.shape)
            mine = manual_moe(x, weights[l], spec, k, normalize, limit)
            worst = max(worst, ((hf - mine).abs().max() / mine.abs().max().clamp(min=1.0)).item())
        summary["block_vs_manual"] = worst
        ref["moe_block_vs_manual"] = worst
        print(f"  {name}: transformers' expert blocks vs the float64 block written here from the file: "
              f"max relative diff {worst:.3e}")
        if worst > 1e-12:
            mmf.problem(f"{name}: transformers' expert block differs from the manual one by {worst:.3e}")

    def margins():  # routing margins over every forward the reference holds
        continuations = [(label, i, a[label]) for i, a in enumerate(ref["generate"]["alone"])
                         for label in ("greedy", "greedy_repetition_penalty", "beam4")]
        stats = router_stats(model, family, margin_forwards(prompts, continuations))
        summary["router"] = stats
        ref["min_router_margin"] = stats["min"]
        ref["min_router_logit_margin"] = stats["min_logits"]
        ref["expert_usage"] = {str(l): u for l, u in stats["usage"].items()}
        print(f"  {name}: least router gap (k-th minus (k+1)-th {stats['min']['ranked']}, relative to the token's "
              f"largest) {json.dumps(stats['min'])}; in logits {json.dumps(stats['min_logits'])}; over "
              f"{stats['token_layers']} token-layers; expert usage {stats['usage']}")
        if stats["min"]["relative"] < MOE_RELATIVE_MARGIN:
            mmf.problem(f"{name}: router gap {stats['min']['relative']:.3e} relative: float32 could flip an expert")
        unused = {l: [e for e, c in enumerate(u) if c == 0] for l, u in stats["usage"].items()}
        ref["experts_never_chosen"] = {str(l): u for l, u in unused.items()}
        if degenerate(stats["usage"]):
            mmf.problem(f"{name}: degenerate routing {stats['usage']}")

    def ablations():
        hf = prompts_alone(model, prompts)
        for other_k in (k - 1, k + 1):
            with with_config(model, num_experts_per_tok=other_k, top_k=other_k):
                must_differ(name, f"with top-{other_k} routing", hf, prompts_alone(model, prompts), summary)
        if spec.normalize_key:
            with with_config(model, **{spec.normalize_key: not normalize}):
                must_differ(name, f"with {spec.normalize_key} {not normalize}", hf, prompts_alone(model, prompts), summary)
        if mmf.max_diff(prompts_alone(model, prompts), hf) != 0.0:
            mmf.problem(f"{name}: the model did not return to its own routing")

    guarded(name, "the expert block check", block_vs_manual)
    guarded(name, "the router margins", margins)
    guarded(name, "the routing ablations", ablations)
    if spec.alternate:
        guarded(name, "the alternate expert layout",
                lambda: write_alternate(family, folder, tensors, layouts, model, prompts, ref, summary))

    d = summary["batch_vs_single"]
    ref["batch_equals_alone"] = {"forward_max_abs_diff": d, "generate": ref["generate"]["matches_alone"]}
    print(f"  {name}: transformers' batches vs rows alone: logits {d}; generate() rows equal alone "
          f"{ref['generate']['matches_alone']}")
    ref["note_moe"] = ("sparse_layers[i] == 1: layer i's MLP is the expert block. Routing: "
                       + ("top k of softmax(router logits), " + ("renormalized to sum 1" if normalize else "not renormalized")
                          if spec.router == "softmax_topk" else "top k of the router logits (with bias), softmax over those k")
                       + ". min_router_margin: over the real tokens of every forward here (prompts alone, the "
                       "batches, each prompt followed by its generate() tokens alone), the smallest gap between the "
                       "k-th and (k+1)-th largest ranked score, relative to that token's largest |score|; "
                       "min_router_logit_margin the same in router logits. expert_usage: choices per expert per "
                       "sparse layer over those forwards")


def qwen3_moe_check(family, cfg, model, prompts, f64, ref, summary):
    a = model.model.layers[0].self_attn
    print(f"  {family.name}: q_norm {tuple(a.q_norm.weight.shape)}, k_norm {tuple(a.k_norm.weight.shape)} (per head)")
    if a.q_norm.weight.shape[0] != 16 or a.k_norm.weight.shape[0] != 16:
        mmf.problem(f"{family.name}: q_norm {tuple(a.q_norm.weight.shape)} / k_norm {tuple(a.k_norm.weight.shape)}")
    moe_check(family, cfg, model, prompts, f64, ref, summary)


def olmoe_check(family, cfg, model, prompts, f64, ref, summary):
    a = model.model.layers[0].self_attn
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    print(f"  {family.name}: q_norm {tuple(a.q_norm.weight.shape)}, k_norm {tuple(a.k_norm.weight.shape)} "
          f"(over the whole projection)")
    if a.q_norm.weight.shape[0] != cfg["num_attention_heads"] * hd or a.k_norm.weight.shape[0] != cfg["num_key_value_heads"] * hd:
        mmf.problem(f"{family.name}: q_norm {tuple(a.q_norm.weight.shape)} / k_norm {tuple(a.k_norm.weight.shape)}")
    moe_check(family, cfg, model, prompts, f64, ref, summary)


def yarn_reference(rp, head_dim, truncate=None):
    """YaRN's inverse frequencies [head_dim/2] and attention factor in float64, from the paper's
    formulas with transformers' conventions (the ramp between the dimensions where beta_fast and
    beta_slow rotations fit in original_max_position_embeddings; floor/ceil of its ends unless
    truncate is false; attention factor 0.1 ln(factor) + 1)."""
    base, factor, orig = rp["rope_theta"], rp["factor"], rp["original_max_position_embeddings"]
    truncate = rp.get("truncate", True) if truncate is None else truncate

    def dim_of(rotations):
        return head_dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))
    low, high = dim_of(rp.get("beta_fast") or 32), dim_of(rp.get("beta_slow") or 1)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001
    pairs = torch.arange(head_dim // 2, dtype=torch.float64)
    ramp = ((pairs - low) / (high - low)).clamp(0, 1)          # 0: keep the frequency, 1: divide it by factor
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    yarn = inv / factor * ramp + inv * (1 - ramp)
    attention = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return yarn, attention, (low, high)


def gpt_oss_check(family, cfg, model, prompts, f64, ref, summary):
    """gpt-oss beyond moe_check: attention sinks, the clamped SwiGLU, biases everywhere, sliding
    layers, and YaRN as transformers computes it."""
    name = family.name
    guarded(name, "the MoE checks", lambda: moe_check(family, cfg, model, prompts, f64, ref, summary))
    attns = [layer.self_attn for layer in model.model.layers]
    experts = [e for _, _, _, e in sparse_blocks(model)]
    hf = prompts_alone(model, prompts)

    def structure():
        limits, alphas = {e.limit for e in experts}, {e.alpha for e in experts}
        windows = [a.sliding_window for a in attns]
        print(f"  {name}: transformers' SwiGLU limit {limits} alpha {alphas} (config.json swiglu_limit "
              f"{cfg.get('swiglu_limit')}); sliding_window per layer {windows}; sinks per layer "
              f"{[[round(v, 4) for v in a.sinks.tolist()] for a in attns]}")
        if limits != {cfg.get("swiglu_limit")} or alphas != {GPT_OSS_ALPHA}:
            mmf.problem(f"{name}: SwiGLU limit {limits} / alpha {alphas} not as config.json and manual_moe say")
        if windows != [6, None, 6, None]:
            mmf.problem(f"{name}: sliding windows {windows}")
        if cfg.get("layer_types") != ["sliding_attention", "full_attention"] * 2:
            mmf.problem(f"{name}: layer_types {cfg.get('layer_types')}")
        biases = [n for n, _ in model.named_parameters() if n.endswith("bias") or n.endswith("sinks")]
        zero = [n for n, p in model.named_parameters()
                if (n.endswith("bias") or n.endswith("sinks")) and not bool(p.abs().min() > 0)]
        print(f"  {name}: {len(biases)} bias and sink tensors; any with a zero entry: {zero}")
        if zero or not any(n.endswith("mlp.router.bias") for n in biases) or not any("o_proj.bias" in n for n in biases):
            mmf.problem(f"{name}: biases or sinks missing or zero: {zero}")

    def clamps():
        counts = swiglu_clamps(model, prompts)
        summary["clamps"] = counts
        ref["swiglu_clamps"] = dict(counts, note="over the expert inputs of the prompts alone: gate values above "
                                                 "swiglu_limit, up values above it and below -swiglu_limit")
        ref["swiglu_limit"], ref["swiglu_alpha"] = cfg.get("swiglu_limit"), GPT_OSS_ALPHA
        print(f"  {name}: SwiGLU clamps over the prompts alone {counts}")
        if counts["gate_above"] == 0 or counts["up_above"] + counts["up_below"] == 0:
            mmf.problem(f"{name}: the SwiGLU clamp never engages: {counts}")
        with with_config(model, limit=1e9):
            must_differ(name, "with the SwiGLU limit 1e9", hf, prompts_alone(model, prompts), summary)

    def sinks_and_windows():
        saved = [a.sinks.data.clone() for a in attns]
        try:
            for a in attns:
                a.sinks.data.zero_()
            must_differ(name, "with attention sinks 0", hf, prompts_alone(model, prompts), summary)
            for a in attns:
                a.sinks.data.fill_(-math.inf)
            must_differ(name, "without attention sinks", hf, prompts_alone(model, prompts), summary)
        finally:
            for a, sink in zip(attns, saved):
                a.sinks.data.copy_(sink)
        with with_config(model, sliding_window=10 ** 6):
            must_differ(name, "without sliding windows", hf, prompts_alone(model, prompts), summary)

    def yarn():  # what transformers computed (in float64 here) against the formulas
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        rot = model.model.rotary_emb
        rp = flat_rope(cfg)
        mine, attention, (low, high) = yarn_reference(rp, cfg["head_dim"])
        theirs = rot.inv_freq.detach().to(torch.float64).cpu()
        rel = ((theirs - mine).abs() / mine).max().item()
        implicit = cfg["max_position_embeddings"] / rp["original_max_position_embeddings"]
        ref["yarn_inv_freq"] = theirs.tolist()
        ref["yarn_attention_factor"] = rot.attention_scaling
        EVERYWHERE.disable()
        try:
            f32, f32_attention = ROPE_INIT_FUNCTIONS["yarn"](model.config, None)
        finally:
            EVERYWHERE.enable()
        print(f"  {name}: YaRN inv_freq transformers (float64 here) {theirs.tolist()}; the formulas {mine.tolist()}; "
              f"max rel diff {rel:.2e}; stock float32 {f32.tolist()}; attention factor {rot.attention_scaling!r} "
              f"(0.1 ln {rp['factor']} + 1 = {attention!r}; stock {f32_attention!r}); ramp [{low}, {high}]; factor "
              f"{rp['factor']}, max_position_embeddings / original = {implicit}")
        if rel > 1e-12 or abs(rot.attention_scaling - attention) > 1e-15:
            mmf.problem(f"{name}: transformers' YaRN differs from the formulas (inv_freq {rel:.2e}, attention "
                        f"{rot.attention_scaling} vs {attention})")
        ref["yarn"] = {"inv_freq_float32": f32.tolist(), "attention_factor_float32": float(f32_attention),
                       "ramp_low": low, "ramp_high": high, "factor": rp["factor"], "implicit_factor": implicit,
                       "inv_freq_if_truncated": yarn_reference(rp, cfg["head_dim"], truncate=True)[0].tolist(),
                       "note": "transformers 5.17 uses rope_parameters.factor; max_position_embeddings / "
                               "original_max_position_embeddings only where factor is absent (here both are 4). "
                               "inv_freq[i] = inv[i] / factor * ramp[i] + inv[i] * (1 - ramp[i]), ramp[i] = "
                               "clamp((i - low) / (high - low), 0, 1), low and high not rounded (truncate false); "
                               "cos and sin are multiplied by yarn_attention_factor = 0.1 ln(factor) + 1"}
        inv = rot.inv_freq.clone()
        try:
            for label, other in (("with YaRN truncated", yarn_reference(rp, cfg["head_dim"], truncate=True)[0]),
                                 ("with plain RoPE frequencies", yarn_reference(dict(rp, factor=1.0), cfg["head_dim"])[0])):
                rot.inv_freq.copy_(other.to(rot.inv_freq.dtype))
                must_differ(name, label, hf, prompts_alone(model, prompts), summary)
        finally:
            rot.inv_freq.copy_(inv)
        scaling = rot.attention_scaling
        try:
            rot.attention_scaling = 1.0
            must_differ(name, "without the YaRN attention factor", hf, prompts_alone(model, prompts), summary)
        finally:
            rot.attention_scaling = scaling

    guarded(name, "the gpt-oss structure checks", structure)
    guarded(name, "the SwiGLU clamp checks", clamps)
    guarded(name, "the sink and window checks", sinks_and_windows)
    guarded(name, "the YaRN checks", yarn)
    if mmf.max_diff(prompts_alone(model, prompts), hf) != 0.0:
        mmf.problem(f"{name}: the model did not return to its own sinks, limit and RoPE")


FAMILIES = [
    Family("smollm3", 108, torch.bfloat16, smollm3_config,
           expected=dict(model_type="smollm3", num_hidden_layers=4, num_key_value_heads=2, tie_word_embeddings=True,
                         no_rope_layer_interval=2, no_rope_layers=[1, 0, 1, 0], use_sliding_window=False,
                         sliding_window=None, attention_bias=False, mlp_bias=False, rope=dict(SMOLLM3_ROPE)),
           rope_layers=smollm3_rope_layers, check=smollm3_check),
    Family("gemma2", 109, torch.bfloat16, gemma2_config,
           expected=dict(model_type="gemma2", num_hidden_layers=4, tie_word_embeddings=True, query_pre_attn_scalar=24,
                         attn_logit_softcapping=3.0, final_logit_softcapping=6.0, sliding_window=6,
                         hidden_activation="gelu_pytorch_tanh", head_dim=16),
           rope_layers=None, check=gemma2_check, everywhere=True, v4=gemma2_v4, norm_center=0.0, embed_std=0.5),
    Family("gemma3_text", 110, torch.bfloat16, gemma3_config,
           expected=dict(model_type="gemma3_text", num_hidden_layers=6, tie_word_embeddings=True,
                         query_pre_attn_scalar=24, sliding_window=6, hidden_activation="gelu_pytorch_tanh",
                         head_dim=16),
           rope_layers=None, check=gemma3_check, everywhere=True, v4=gemma3_v4, norm_center=0.0, embed_std=0.5),
    Family("phi3", 111, torch.bfloat16, phi3_config,
           expected=dict(model_type="phi3", tie_word_embeddings=False, original_max_position_embeddings=PHI3_ORIGINAL,
                         sliding_window=10, max_position_embeddings=64),
           rope_layers=None, check=phi3_check, everywhere=True, v4=phi3_v4,
           tolerate=("batched greedy differs from alone",)),
    Family("olmo2", 112, torch.bfloat16, olmo2_config,
           expected=dict(model_type="olmo2", tie_word_embeddings=False),
           rope_layers=None, check=olmo2_check, everywhere=True, v4=plain_v4),
    Family("granite", 113, torch.bfloat16, granite_config,
           expected=dict(model_type="granite", tie_word_embeddings=True, embedding_multiplier=12.0,
                         residual_multiplier=0.22, attention_multiplier=0.09375, logits_scaling=2.5),
           rope_layers=None, check=granite_check, everywhere=True, v4=plain_v4, embed_std=0.5),
    Family("qwen3_moe", 115, torch.bfloat16, qwen3_moe_config,
           expected=dict(model_type="qwen3_moe", num_hidden_layers=4, num_key_value_heads=2, tie_word_embeddings=False,
                         moe_intermediate_size=32, num_experts_per_tok=2, norm_topk_prob=True, mlp_only_layers=[2],
                         decoder_sparse_step=1),
           rope_layers=None, check=qwen3_moe_check, everywhere=True, v4=qwen3_moe_v4, seed_tries=8,
           moe=MoeSpec("softmax_topk", "norm_topk_prob", False, (1, 1, 0, 1), alternate=True)),
    Family("mixtral", 116, torch.bfloat16, mixtral_config,
           expected=dict(model_type="mixtral", num_hidden_layers=4, num_key_value_heads=2, tie_word_embeddings=False,
                         intermediate_size=64, num_experts_per_tok=2, sliding_window=None),
           rope_layers=None, check=moe_check, everywhere=True, v4=plain_v4, seed_tries=8,
           moe=MoeSpec("softmax_topk", None, True, (1, 1, 1, 1), alternate=True, block_sparse_moe=True)),
    Family("olmoe", 117, torch.bfloat16, olmoe_config,
           expected=dict(model_type="olmoe", num_hidden_layers=4, num_key_value_heads=2, tie_word_embeddings=False,
                         intermediate_size=32, num_experts_per_tok=2, norm_topk_prob=False, clip_qkv=None),
           rope_layers=None, check=olmoe_check, everywhere=True, v4=plain_v4, seed_tries=8,
           moe=MoeSpec("softmax_topk", "norm_topk_prob", False, (1, 1, 1, 1))),
    Family("gpt_oss", 118, torch.bfloat16, gpt_oss_config,
           expected=dict(model_type="gpt_oss", num_hidden_layers=4, num_key_value_heads=2, head_dim=16,
                         tie_word_embeddings=False, intermediate_size=32, num_experts_per_tok=2, sliding_window=6,
                         attention_bias=True, max_position_embeddings=64, swiglu_limit=7.0),
           rope_layers=None, check=gpt_oss_check, everywhere=True, v4=gpt_oss_v4, seed_tries=8,
           moe=MoeSpec("topk_softmax", None, True, (1, 1, 1, 1), gate_up_scale=3.5, down_scale=0.3)),
]


# ----------------------------------------------------------------------------------------------
# Gemma 3 as published for 4B and up: the multimodal "gemma3" config (text_config, vision_config)
# ----------------------------------------------------------------------------------------------
MM_NAMES_V4 = (("model.language_model.", "language_model.model."), ("model.vision_tower.", "vision_tower."),
               ("model.multi_modal_projector.", "multi_modal_projector."), ("lm_head.", "language_model.lm_head."))


def build_gemma3_multimodal(prompts, out_dir, summary):
    """A tiny Gemma3ForConditionalGeneration (SigLIP tower of one layer) whose text model is
    gemma3_text's config: reference logits of text-only prompts, and the same checkpoint in
    transformers 4's layout (language_model.model.*, config in the 4 spelling) that published
    Gemma 3 folders have."""
    import shutil
    from safetensors.torch import load_file, save_file
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig
    name = "gemma3_mm"
    seed = 114
    torch.manual_seed(seed)
    text = gemma3_config().to_dict()
    for k in ("architectures", "transformers_version", "dtype", "torch_dtype"):
        text.pop(k, None)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                image_size=8, patch_size=4)
    config = Gemma3Config(text_config=text, vision_config=vision.to_dict(), mm_tokens_per_image=4,
                          image_token_index=120, boi_token_index=118, eoi_token_index=119,
                          bos_token_id=1, eos_token_id=2, pad_token_id=None)
    model = Gemma3ForConditionalGeneration(config).to(torch.float64).eval()
    mmf.reinit(model, seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "language_model" in pname and p.ndim == 1 and not pname.endswith("bias"):
                p.data -= 1.0
            elif "embed_tokens" in pname:
                p.data *= 0.5
    folder = os.path.join(out_dir, "models", name)
    os.makedirs(folder, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(folder)
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    print(f"  {name}: config.json {json.dumps(cfg, sort_keys=True)}")
    state = load_file(os.path.join(folder, "model.safetensors"))
    print(f"  {name}: {len(state)} tensors: {sorted(state)}")
    # transformers 5 writes the published layout: language_model.model.*, vision_tower.*, ...
    if not any(k.startswith("language_model.model.") for k in state) or not any("vision_tower" in k for k in state):
        mmf.problem(f"{name}: tensor names not as expected")

    def module_name(k):  # file name -> transformers 5's module path
        for new, old in MM_NAMES_V4:
            if k.startswith(old):
                return new + k[len(old):]
        return k

    def load_mm(path):
        c = Gemma3Config.from_pretrained(path)
        c._attn_implementation = "eager"
        c.text_config._attn_implementation = "eager"
        m = Gemma3ForConditionalGeneration(c)
        st = {module_name(k): v for k, v in load_file(os.path.join(path, "model.safetensors")).items()}
        missing, unexpected = m.load_state_dict(st, strict=False)
        if unexpected or [k for k in missing if k != "lm_head.weight"]:
            mmf.problem(f"{path}: missing {missing}, unexpected {unexpected}")
        return m.to(torch.float64).eval()

    reloaded = load_mm(folder)
    single = prompts_alone(reloaded, prompts)
    # The same weights as a text-only gemma3_text model: the text path must be that model.
    text_folder = os.path.join(out_dir, "tmp_gemma3_text_of_mm")
    os.makedirs(text_folder, exist_ok=True)
    text_state = {k.replace("language_model.model.", "model."): v for k, v in state.items()
                  if k.startswith("language_model.model.")}
    save_file(text_state, os.path.join(text_folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(text_folder, "config.json"), "w") as f:
        json.dump(dict(cfg["text_config"], model_type="gemma3_text", architectures=["Gemma3ForCausalLM"],
                       tie_word_embeddings=True), f)
    as_text = load_built(text_folder)
    d = mmf.max_diff(prompts_alone(as_text, prompts), single)
    summary["mm_vs_text"] = d
    print(f"  {name}: text path vs the same weights as gemma3_text: {d:.3e}")
    if d > 1e-12:
        mmf.problem(f"{name}: the multimodal model's text path differs from gemma3_text by {d:.3e}")
    shutil.rmtree(text_folder)

    # The config in transformers 4's spelling, as published Gemma 3 folders have it.
    v4 = {k: v for k, v in cfg.items()}
    v4["text_config"] = gemma3_v4(cfg["text_config"])
    with open(os.path.join(folder, "config.v4.json"), "w") as f:
        json.dump(v4, f, indent=2, sort_keys=True)
        f.write("\n")
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for fname in ("model.safetensors", "generation_config.json"):
            shutil.copy(os.path.join(folder, fname), tmp)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(v4, f)
        d4 = mmf.max_diff(prompts_alone(load_mm(tmp), prompts), single)
    summary["mm_v4"] = d4
    print(f"  {name}: config.v4.json loads to logits {d4:.3e} from config.json's")
    if d4 != 0.0:
        mmf.problem(f"{name}: the transformers 4 spelling gives other logits ({d4:.3e})")
    ref = {"model": name, "transformers_version": transformers.__version__, "prompts": prompts,
           "single": [r.tolist() for r in single], "image_token_index": 120, "boi_token_index": 118,
           "note": "text-only prompts through Gemma3ForConditionalGeneration in float64 (Float64Everywhere); "
                   "equal to the same weights loaded as gemma3_text (mm_vs_text)",
           "mm_vs_text": d}
    return ref


# ----------------------------------------------------------------------------------------------
def build(family, prompts, out_dir, summary):
    if not family.everywhere:
        return build_swapped(family, prompts, out_dir, summary)
    EVERYWHERE.enable()
    try:
        return build_everywhere(family, prompts, out_dir, summary)
    finally:
        EVERYWHERE.disable()


def check_expected(name, cfg, expected):
    want = dict(mmf.COMMON)
    want.pop("pad_token_id", None)
    want.update(expected)
    for key, value in want.items():
        if cfg.get(key) != value:
            mmf.problem(f"{name}: config.json {key} = {cfg.get(key)!r}, expected {value!r}")


def build_everywhere(family, prompts, out_dir, summary):
    """A family run by transformers' own code in float64 (Float64Everywhere)."""
    name = family.name
    dtype_name = str(family.stored_dtype).replace("torch.", "")

    def make(seed):
        torch.manual_seed(seed)
        config = family.config()
        model = AutoModelForCausalLM.from_config(config, **implementations(config)).to(torch.float64).eval()
        mmf.reinit(model, seed)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.ndim == 1 and not pname.endswith("bias"):
                    p.data -= 1.0 - family.norm_center
                elif "embed_tokens" in pname:
                    p.data *= family.embed_std
        if family.moe is not None:
            moe_adjust(family, model, seed)
        return model

    seed = family.seed
    model = make(seed)
    if family.moe is not None:  # a seed whose routing qualifies; among those, one that uses every expert
        candidates = []
        for attempt in range(family.seed_tries):
            if attempt:
                seed = family.seed + 1000 * attempt
                model = make(seed)
            ok, unused, why = moe_accept(family, model, prompts)
            print(f"  {name}: seed {seed}: {'qualifies' if ok else 'refused'}, {unused} (layer, expert) pairs never "
                  f"chosen: {why}", flush=True)
            if ok:
                candidates.append((unused, attempt, seed))
                if unused == 0:
                    break
        if not candidates:
            mmf.problem(f"{name}: none of {family.seed_tries} seeds makes a fixture; the last one is written")
        elif min(candidates)[2] != seed:
            seed = min(candidates)[2]
            model = make(seed)
            moe_accept(family, model, prompts)   # rounds the weights to the stored dtype again
    summary["seed"] = seed
    folder = os.path.join(out_dir, "models", name)
    summary["folder"] = folder
    os.makedirs(folder, exist_ok=True)
    model.to(family.stored_dtype).save_pretrained(folder)
    with open(os.path.join(folder, "config.json")) as f:
        text = f.read()
    print(f"  {name}: files {sorted(os.listdir(folder))}; config.json as transformers {transformers.__version__} "
          f"wrote it:\n{text}")
    cfg = json.loads(text)
    check_expected(name, cfg, family.expected)
    with safe_open(os.path.join(folder, "model.safetensors"), "pt") as st:
        names = sorted(st.keys())
        dtypes = {str(st.get_tensor(n).dtype) for n in names}
    print(f"  {name}: {len(names)} tensors {dtypes}: {names}")
    if dtypes != {str(family.stored_dtype)}:
        mmf.problem(f"{name}: tensor dtypes {dtypes}, expected {family.stored_dtype}")
    if family.expected["tie_word_embeddings"] == ("lm_head.weight" in names):
        mmf.problem(f"{name}: tie_word_embeddings={family.expected['tie_word_embeddings']} but lm_head.weight "
                    f"{'present' if 'lm_head.weight' in names else 'absent'}")

    reloaded = load_built(folder)
    print(f"  {name}: attention implementation {reloaded.config._attn_implementation}"
          + (f", experts implementation {getattr(reloaded.config, '_experts_implementation', None)}"
             if family.moe else ""))
    if reloaded.config._attn_implementation != "eager":
        mmf.problem(f"{name}: attention is {reloaded.config._attn_implementation}, not eager")
    rotary = RotaryBuffers(reloaded)
    dtypes = {str(v.dtype) for v in rotary.buffers.values()}
    print(f"  {name}: rotary buffers {sorted(rotary.buffers)} in {dtypes}")
    if dtypes != {"torch.float64"}:
        mmf.problem(f"{name}: rotary frequencies in {dtypes}, not float64")
    EVERYWHERE.inv_freq = rotary
    mmf.manual_forward = None
    summary["eos"] = [2]
    if cfg.get("sliding_window") is not None:  # transformers' windows count padded columns
        mmf.batches_for = lambda p: [b for b in ORIGINAL_BATCHES(p) if b[0] != "holes"]
    ref = mmf.make_reference(name, reloaded, prompts, family.max_new_tokens, [2], 2, EVERYWHERE, summary)
    ref["stored_dtype"] = dtype_name
    ref["note"] = ("transformers' own modeling code in float64: wherever it asks for float32 (norms, rotary "
                   "embeddings, softmax) it computes in float64; generate() scores too")
    if family.moe is not None:
        ref["seed"] = seed
        ref["note"] += ("; experts_implementation='eager' (transformers' per-expert loop: its grouped_mm path takes "
                        "no float64), router softmax in float64 too")
    if summary["stock_vs_f64"] > 1e-3:
        mmf.problem(f"{name}: stock transformers (float32 inside) differs from the float64 run by "
                    f"{summary['stock_vs_f64']:.3e}: more than rounding")
    std = summary["logit_std"][0]
    if not 1.0 <= std <= 20.0:
        mmf.problem(f"{name}: logit std {std:.3f} outside [1, 20]")
    if family.v4 is not None:
        v4 = family.v4(cfg)
        with open(os.path.join(folder, "config.v4.json"), "w") as f:
            json.dump(v4, f, indent=2, sort_keys=True)
            f.write("\n")
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            for fname in os.listdir(folder):
                if fname != "config.v4.json" and fname != "config.json":
                    shutil.copy(os.path.join(folder, fname), tmp)
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump(v4, f)
            other = load_built(tmp)
            d = mmf.max_diff(prompts_alone(other, prompts), prompts_alone(reloaded, prompts))
        summary["v4_vs_v5"] = d
        print(f"  {name}: config.v4.json (transformers 4 spelling) loads to logits {d:.3e} from config.json's")
        if d != 0.0:
            mmf.problem(f"{name}: the transformers 4 spelling gives other logits ({d:.3e})")
    if family.check is not None:
        guarded(name, "the family's checks", lambda: family.check(family, cfg, reloaded, prompts, EVERYWHERE, ref, summary))
    return ref


def build_swapped(family, prompts, out_dir, summary):
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
    if not args.only or "gemma3_mm" in args.only:
        print("\n=== gemma3_mm (bfloat16) ===", flush=True)
        summary = summaries.setdefault("gemma3_mm", {})
        EVERYWHERE.enable()
        try:
            mmf.write_json(os.path.join(args.out, "reference", "gemma3_mm.json"),
                           build_gemma3_multimodal(prompts, args.out, summary))
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            mmf.problem(f"gemma3_mm: {type(e).__name__}: {e}")
        finally:
            EVERYWHERE.disable()
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
            mmf.batches_for = ORIGINAL_BATCHES
        for p in list(mmf.PROBLEMS):
            if any(t in p for t in family.tolerate) and p.startswith(family.name):
                mmf.PROBLEMS.remove(p)
                print(f"  note (transformers' own batch dependence, expected): {p}")
    mmf.print_summary(summaries)
    for name, s in summaries.items():
        if "vs_rope_everywhere" in s:
            print(f"{name}: logits vs RoPE in every layer, max|diff| per prompt "
                  + ", ".join(f"{v:.3e}" for v in s["vs_rope_everywhere"])
                  + f"; vs RoPE in no layer {s['vs_rope_nowhere']:.3e}; transformers with use_rope forced on "
                  f"vs manual RoPE everywhere {s.get('forced_vs_manual', float('nan')):.3e}")
    for name, s in summaries.items():
        if "router" in s:
            r = s["router"]
            print(f"{name}: seed {s.get('seed')}; expert blocks vs manual {s.get('block_vs_manual', float('nan')):.3e}; "
                  f"least relative router gap {r['min']['relative']:.3e} (gap {r['min']['gap']:.3e} in "
                  f"{r['min']['ranked']}, layer {r['min']['layer']}, {r['min']['forward']}, row {r['min']['row']}, "
                  f"position {r['min']['position']}); in logits {r['min_logits']['relative']:.3e} "
                  f"(gap {r['min_logits']['gap']:.3e})")
            print("   ablations max|diff|: " + ", ".join(f"{k} {v:.3e}" for k, v in s.get("ablations", {}).items()))
            if "clamps" in s:
                print(f"   SwiGLU clamps {s['clamps']}")
            if "alternate" in s:
                print(f"   {s['alternate'][0]}: same parameters {s['alternate'][1]}, logits max|diff| {s['alternate'][2]:.3e}")
    if mmf.PROBLEMS:
        print(f"\n{len(mmf.PROBLEMS)} PROBLEMS:")
        for p in mmf.PROBLEMS:
            print("  -", p)
        sys.exit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
