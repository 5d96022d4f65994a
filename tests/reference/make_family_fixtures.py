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
import math
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
ORIGINAL_BATCHES = mmf.batches_for
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
    everywhere: bool = False                 # run transformers' own code in float64 (Float64Everywhere)
    v4: Optional[Callable] = None            # config.json -> the same model in transformers 4's spelling
    norm_center: float = 1.0                 # RMSNorm weights ~ norm_center + 0.2 N(0, 1) (Gemma: 1 + w)
    tolerate: tuple = ()                     # PROBLEMS that are transformers' own batch dependence
    embed_std: float = 1.0                   # embedding weights ~ embed_std N(0, 1)


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

    def disable(self):
        o = self.original
        torch.Tensor.to, torch.Tensor.float = o["to"], o["float"]
        torch.nn.functional.softmax, torch.tensor, torch.arange = o["softmax"], o["tensor"], o["arange"]


EVERYWHERE = Float64Everywhere()


def load_built(folder):
    """The model of `folder`, built by its class's __init__ (under Float64Everywhere: rotary
    frequencies and Gemma's embedding scale computed in float64 there) and given the file's
    tensors, in float64. Every tensor of the file must be a parameter, and every parameter but a
    tied head must come from the file."""
    from safetensors.torch import load_file
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
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
    torch.manual_seed(family.seed)
    model = AutoModelForCausalLM.from_config(family.config(), attn_implementation="eager").to(torch.float64).eval()
    mmf.reinit(model, family.seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.ndim == 1 and not pname.endswith("bias"):
                p.data -= 1.0 - family.norm_center
            elif "embed_tokens" in pname:
                p.data *= family.embed_std
    folder = os.path.join(out_dir, "models", name)
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
    print(f"  {name}: attention implementation {reloaded.config._attn_implementation}")
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
        import shutil
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
        family.check(family, cfg, reloaded, prompts, EVERYWHERE, ref, summary)
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
    if mmf.PROBLEMS:
        print(f"\n{len(mmf.PROBLEMS)} PROBLEMS:")
        for p in mmf.PROBLEMS:
            print("  -", p)
        sys.exit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
