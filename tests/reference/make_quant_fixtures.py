#!/usr/bin/env python3
"""Writes tiny quantized model folders laid out as the published quantizers write them, and a
float64 oracle of each.

Layout written under --out (copy models/ and reference/ into tests/data/):
  models/<name>/config.json (with "quantization_config"), generation_config.json, model.safetensors
      (and quantize_config.json for GPTQ), one folder a fixture below
  models/quant_bad/<case>/ and models/quant_bad/README.md: copies of good folders with one defect
      each, which a loader must refuse (the README says what is wrong and what to say)
  reference/<name>.json
      as make_model_fixtures.py writes them (make_reference: float64 logits of padded batches and of
      each prompt alone, generate() greedy, repetition penalty, beams, right padded, unmasked), plus
        "stored_dtype"           dtype of the tensors the quantizer leaves unquantized
        "quantization"           method, bits, group size, the value formula, the quantization_config
        "tensors"                every tensor of model.safetensors: name, shape, dtype
        "dequantized_checksum"   sum, sum of squares and a position-weighted sum (sum of w.flat[n] *
                                 ((n % 251) + 1) / 251, n the row-major index: it sees a permutation, the
                                 other two do not) of the float64 dequantized weight [out, in] of
                                 model.layers.0.self_attn.q_proj and model.layers.0.mlp.down_proj (for
                                 gpt-oss: of layer 0's experts gate_up_proj [E, 2I, H] and down_proj
                                 [E, H, I]), to check an unpacking apart from the forward
        "pack_check"             unpack(pack(codes)) == codes for every projection, code ranges seen
        "loader_check"           where transformers 5.17 has a loader that runs here: the largest
                                 |its dequantized weight - ours|; else "not installed: ..."
        "wrong_readings"         max|logits - reference| of the same file read with a plausible mistake
                                 (each must be large, or the fixture would not notice that mistake)
        "max_abs_diff_vs_unquantized_weights"  how far the quantization moved the logits

The dense fixtures are Qwen3 (model_type qwen3): vocab 128, hidden 128, intermediate 192, 2 layers,
4 heads of 32, 2 KV heads, untied lm_head, RoPE theta 1e6 (fp8_block_qwen3: hidden 192,
intermediate 320). Every Linear projection of the layers (q_proj, k_proj, v_proj, o_proj,
gate_proj, up_proj, down_proj) is quantized; embed_tokens, the norms (q_norm and k_norm included)
and lm_head stay in the stored dtype. Procedure per fixture: float weights drawn as
make_model_fixtures.reinit draws them (seeded); each projection quantized by the format's own
round-to-nearest rule (for the asymmetric formats, each group's weights are first moved by a random
fraction of their range, so that the zero points spread over the whole code range); packed as the
cited code packs it; unpacked again by a different, vectorized routine (the inverse, following the
cited dequantizers) and required equal; dequantized in float64 and loaded into transformers' model,
float64 throughout (make_model_fixtures.Float64Math), from the folder as written.

Formats (weight [out, in] is nn.Linear's; "word j" of an int32 holds bits 32/b*j .. : value j of a
word sits at bit b*j, low bits first; int32 words are two's complement, so a word whose top value
has its high bit set is negative):

  awq_qwen3  AutoAWQ GEMM (awq/modules/linear/gemm.py WQLinear_GEMM.from_linear,
      awq/utils/packing_utils.py AWQ_ORDER / unpack_awq / reverse_awq_order / dequantize_gemm;
      awq/quantize/quantizer.py pseudo_quantize_tensor for the rule), float16 elsewhere.
      qweight int32 [in, out/8]: word (i, c) holds q[i, 8c + AWQ_ORDER[j]] in its value j,
          AWQ_ORDER = 0 2 4 6 1 3 5 7 (the 4-bit fields along the OUTPUT dim, interleaved)
      qzeros int32 [in/32, out/8], the zero points packed the same way; scales float16 [in/32, out]
      weight[o, i] = (q[i, o] - z[i // 32, o]) * s[i // 32, o]
      quantization_config {"bits": 4, "group_size": 32, "modules_to_not_convert": null,
          "quant_method": "awq", "version": "gemm", "zero_point": true} (AutoAWQ's
          to_transformers_dict); AutoAWQ requires in % group_size == 0
  gptq_qwen3, gptq_qwen3_actorder, gptq_qwen3_8bit, gptq_qwen3_g_uneven  GPTQ v1 checkpoints as
      GPTQModel writes them (gptqmodel/nn_modules/qlinear/__init__.py PackableQuantLinear.pack_block
      and dequantize_weight, _register_gptq_buffers for the shapes; gptqmodel/utils/model.py
      convert_gptq_v2_to_v1_format_module for the stored zero - 1; AutoGPTQ's qlinear_cuda_old
      pack is the same layout), float16 elsewhere. b bits, g group size, G = ceil(in / g):
      qweight int32 [in*b/32, out]: word (r, o) holds q[r*32/b + j, o] in its value j (along the INPUT dim)
      qzeros int32 [G, out*b/32]: word (k, c) holds z[k, c*32/b + j] - 1 in its value j (v1: zero - 1)
      scales float16 [G, out]; g_idx int32 [in]: the group of input i
      weight[o, i] = (q[i, o] - (stored_zero[g_idx[i], o] + 1)) * s[g_idx[i], o]
      v1's stored zero - 1 is a subtraction on whole packed words (GPTQModel subtracts 0x11111111,
      or 0x01010101 for 8 bits): a zero point of 0 would borrow from its neighbour, so these
      fixtures keep every zero point in 1 .. 2^b - 1 (no borrow: each field is exactly zero - 1,
      and GPTQModel's word-wise +0x11111111 and AutoGPTQ's field-wise + 1 agree)
      gptq_qwen3: b 4, g 32, sym false, desc_act false, g_idx[i] = i // 32
      gptq_qwen3_actorder: as gptq_qwen3 with desc_act true: g_idx[i] = rank[i] // 32 for a random
          permutation (input perm[k] has rank k), qweight still in the original input order
      gptq_qwen3_8bit: b 8, g 64, sym true: every zero point 128, stored 127 (qzeros words 0x7F7F7F7F)
      gptq_qwen3_g_uneven: b 4, g 128 with intermediate 192: down_proj (in 192) has G = 2 groups, the
          last of 64 inputs. GPTQModel allows it: its buffers use ceil(in / g) and its torch kernel
          (TorchLinear, SUPPORTS_AUTO_PADDING = True) accepts in % g != 0 (the Marlin, ExLlama and
          BitBLAS kernels refuse it); its quantizer closes the last group short.
      quantize_config.json beside config.json, and the same dict as config.json's
      quantization_config, as GPTQModel 4.2 writes it (QuantizeConfig.to_dict and the meta fields
      of ModelWriter.save_quantized): {"bits", "group_size", "desc_act", "sym", "lm_head": false,
      "quant_method": "gptq", "checkpoint_format": "gptq", "pack_dtype": "int32", "meta": {...}}
  ct_w4a16_qwen3, ct_w4a16_asym_qwen3, ct_w8a16_qwen3  compressed-tensors "pack-quantized"
      (compressed_tensors/compressors/pack_quantized/base.py PackedQuantizationCompressor.compress and
      helpers.py pack_to_int32 / unpack_from_int32, 0.15; quantization/utils/helpers.py
      calculate_qparams and lifecycle/forward.py for the rule), bfloat16 elsewhere:
      weight_packed int32 [out, in*b/32]: word (o, c) holds q[o, c*32/b + j] + 2^(b-1) in its value j
          (signed codes in [-2^(b-1), 2^(b-1) - 1], offset to unsigned; along the INPUT dim)
      weight_scale bfloat16 [out, G] (group: G = in / g; channel: [out, 1])
      weight_zero_point (asymmetric only) int32 [ceil(out*b/32), G]: word (c, k) holds
          zp[c*32/b + j, k] + 2^(b-1) in its value j (pack_to_int32(packed_dim=0): along the OUT dim)
      weight_shape int64 [2] = [out, in] (torch.tensor(weight.shape): int64, as the compressor saves it)
      weight[o, i] = (q[o, i] - zp[o, i // g]) * s[o, i // g] (zp = 0 when symmetric)
      ct_w4a16_qwen3: 4 bits, group 32, symmetric; ct_w4a16_asym_qwen3: the same, asymmetric;
      ct_w8a16_qwen3: 8 bits, strategy channel, symmetric
  ct_fp8_qwen3, ct_fp8_tensor_qwen3  compressed-tensors "float-quantized" (naive_quantized/base.py
      FloatQuantizationCompressor: the weight cast to float8_e4m3fn, scales kept), bfloat16 elsewhere:
      weight float8_e4m3fn [out, in]; weight[o, i] = fp8[o, i] * weight_scale
      ct_fp8_qwen3 (llm-compressor's FP8_DYNAMIC): weight_scale bfloat16 [out, 1] (channel);
          input_activations dynamic per token (no tensor)
      ct_fp8_tensor_qwen3 (FP8, static): weight_scale bfloat16 [1] (tensor: initialize.py gives the
          scale shape (1,) in the weight's dtype), input_scale bfloat16 [1] (static per-tensor input
          scale: max|input| over the prompts / 448). The oracle runs the weights dequantized and the
          activations unquantized: it does not model the input quantization the config asks for.
  fp8_block_qwen3  transformers' fine-grained FP8 (integrations/finegrained_fp8.py FP8Linear and
      Fp8Dequantize; DeepSeek-V3's weight_dequant), as the Qwen3-*-FP8 checkpoints, bfloat16 elsewhere;
      hidden 192 and intermediate 320 so that no projection divides into 128 x 128 blocks evenly:
      weight float8_e4m3fn [out, in]; weight_scale_inv float32 [ceil(out/128), ceil(in/128)]
      weight[o, i] = fp8[o, i] * weight_scale_inv[o // 128, i // 128] (the last blocks are partial)
      transformers 5.17's own dequantizer (Fp8Dequantize, from_pretrained with dequantize=True) takes the
      block as shape // grid: it refuses gate/up/down_proj here (320 / 3) and would use blocks of 96
      columns for q/k/v_proj (192 / 2); loader_check records both, and its result on the whole blocks
      quantization_config {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
          "weight_block_size": [128, 128]}
  gpt_oss_mxfp4  gpt-oss as make_family_fixtures.py's gpt_oss (4 layers, 8 experts, top 2, sinks,
      clamped SwiGLU, sliding window 6 in layers 0 and 2, YaRN; its seed search for routing margins
      and its checks), expert intermediate 64, with the experts in MXFP4 as gpt-oss publishes them
      (transformers integrations/mxfp4.py convert_moe_packed_tensors), bfloat16 elsewhere (router,
      attention, sinks, biases, norms, embeddings, lm_head):
      mlp.experts.gate_up_proj_blocks uint8 [E, 2I, H/32, 16], gate_up_proj_scales uint8 [E, 2I, H/32]
      mlp.experts.down_proj_blocks uint8 [E, H, I/32, 16], down_proj_scales uint8 [E, H, I/32]
      row r of blocks [e, r, k, :] holds the 32 inputs 32k .. 32k+31 of output r, two e2m1 codes a byte,
      the low nibble first (input 32k + 2b in byte b's low nibble, 32k + 2b + 1 in its high nibble);
      value = FP4[code] * 2^(scale - 127), FP4 = 0 .5 1 1.5 2 3 4 6 -0 -.5 -1 -1.5 -2 -3 -4 -6;
      dequantized [E, 2I, H] transposed is transformers' gate_up_proj [E, H, 2I] (gate and up
      interleaved along 2I: even rows gate, odd rows up), [E, H, I] transposed its down_proj [E, I, H].
      Scales by the OCP MX rule: 2^(floor(log2(max|block|)) - 2), codes the nearest e2m1 (saturating).
      quantization_config {"modules_to_not_convert": ["model.layers.*.self_attn",
          "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"}
      (as gpt-oss-20b's config.json)

Loaders: transformers 5.17 loads AWQ only through gptqmodel and GPTQ through optimum (+ gptqmodel),
compressed-tensors through compressed_tensors (>= 0.15): none is installed where this runs, so those
fixtures say "not installed: ..." in loader_check (and rest on the packers' semantics as cited). The
fine-grained FP8 loader (dequantize) and the MXFP4 loader (Mxfp4Config dequantize) are run on the
written folders, and transformers' own dequantizing functions (Fp8Dequantize, convert_moe_packed_tensors)
on the written tensors.

Run with torch, transformers 5.17 and safetensors installed (CPU is enough; FP8 needs torch's
float8_e4m3fn), 12 or more cores to run the fixtures side by side:
  python3 tests/reference/make_quant_fixtures.py --out DIR [--only NAME ...] [--jobs N]
then copy DIR/models and DIR/reference into tests/data/.
"""
import argparse
import copy
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, Qwen3Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model_fixtures as mmf  # noqa: E402
import make_family_fixtures as mff  # noqa: E402

PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
CHECKSUMMED = ("model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj")
QWEN3_ROPE = {"rope_type": "default", "rope_theta": 1000000.0}
GROUP_SHIFT = 0.45           # asymmetric formats: each group moved by up to this fraction of its range
DISTINCT = mff.DISTINCT


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


# ----------------------------------------------------------------------------------------------
# Bit packing (two routines each: a loop that follows the cited packer, a vectorized inverse)
# ----------------------------------------------------------------------------------------------
def to_int32(words):
    """int64 words holding 32 bits -> int32 with the same bits (two's complement)."""
    words = words & 0xFFFFFFFF
    return torch.where(words >= 2 ** 31, words - 2 ** 32, words).to(torch.int32)


def pack_words(values, bits, dim):
    """Unsigned codes (each in [0, 2^bits)) packed 32 // bits to an int32 along `dim`: value j of a
    word at bit bits * j. A loop over the positions in a word, as GPTQModel's pack and
    compressed-tensors' pack_to_int32 do it."""
    per = 32 // bits
    if int(values.min()) < 0 or int(values.max()) >= 2 ** bits:
        raise ValueError(f"codes {int(values.min())} .. {int(values.max())} do not fit {bits} bits")
    v = values.to(torch.int64).movedim(dim, -1)
    if v.shape[-1] % per:
        raise ValueError(f"{v.shape[-1]} values along dim {dim} is no multiple of {per}")
    v = v.reshape(*v.shape[:-1], v.shape[-1] // per, per)
    word = torch.zeros(v.shape[:-1], dtype=torch.int64)
    for j in range(per):
        word |= v[..., j] << (bits * j)
    return to_int32(word).movedim(-1, dim).contiguous()


def unpack_words(words, bits, dim):
    """The inverse of pack_words, all positions of a word shifted out at once: int64 codes."""
    per = 32 // bits
    w = words.to(torch.int64).movedim(dim, -1) & 0xFFFFFFFF
    shifts = torch.arange(0, 32, bits, dtype=torch.int64)
    v = (w[..., None] >> shifts) & ((1 << bits) - 1)
    return v.reshape(*w.shape[:-1], w.shape[-1] * per).movedim(-1, dim).contiguous()


AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)          # awq/utils/packing_utils.py
AWQ_REVERSE_ORDER = (0, 4, 1, 5, 2, 6, 3, 7)


def awq_pack(codes):
    """codes [rows, out] -> int32 [rows, out/8] as WQLinear_GEMM.from_linear packs qweight and qzeros:
    value i of word c is column 8c + AWQ_ORDER[i]."""
    rows, out = codes.shape
    if out % 8 or int(codes.min()) < 0 or int(codes.max()) > 15:
        raise ValueError(f"AWQ codes [{rows}, {out}] in {int(codes.min())} .. {int(codes.max())}")
    word = torch.zeros(rows, out // 8, dtype=torch.int64)
    for col in range(out // 8):
        for i in range(8):
            word[:, col] |= codes[:, col * 8 + AWQ_ORDER[i]].to(torch.int64) << (4 * i)
    return to_int32(word)


def awq_unpack(words):
    """int32 [rows, out/8] -> codes [rows, out]: every 4-bit field shifted out (unpack_awq), then the
    columns put back in order (reverse_awq_order): column 8c + j is value AWQ_REVERSE_ORDER[j]."""
    raw = unpack_words(words, 4, 1)
    rows, out = raw.shape
    return raw.view(rows, out // 8, 8)[:, :, list(AWQ_REVERSE_ORDER)].reshape(rows, out).contiguous()


def shifted_groups(x, gen):
    """x [..., n]: each group (last dim) moved by a random fraction (up to GROUP_SHIFT) of its range,
    so that the asymmetric formats' zero points spread over their whole code range."""
    r = x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)
    u = torch.rand(r.shape, generator=gen, dtype=torch.float64) * 2 - 1
    return x + GROUP_SHIFT * u * r


def same(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype in (torch.float8_e4m3fn,):
        return torch.equal(a.view(torch.uint8), b.view(torch.uint8))
    return torch.equal(a, b)


def code_range(t):
    return [int(t.min()), int(t.max())]


# ----------------------------------------------------------------------------------------------
# The formats
# ----------------------------------------------------------------------------------------------
class Fixture:
    """One quantized dense Qwen3. quantize(w) -> info (the codes and scales, as tensors); pack(info)
    -> {suffix: tensor as written}; unpack(tensors, shape) -> info; dequantize(info) -> float64
    [out, in]. exact_keys: the info entries unpack must give back bit for bit."""
    method = None
    bits = None
    group_size = None
    exact_keys = ()
    hidden, intermediate = 128, 192
    calibrate = False

    def __init__(self, name, seed):
        self.name, self.seed = name, seed

    def config(self):
        common = dict(mmf.COMMON, hidden_size=self.hidden, intermediate_size=self.intermediate)
        return Qwen3Config(**common, num_key_value_heads=2, head_dim=32, tie_word_embeddings=False,
                           attention_bias=False, use_sliding_window=False, sliding_window=None,
                           rope_parameters=dict(QWEN3_ROPE))

    def expected(self):
        return dict(model_type="qwen3", vocab_size=128, hidden_size=self.hidden, intermediate_size=self.intermediate,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                    tie_word_embeddings=False)

    def extra_files(self, folder):
        pass

    def wrong_readings(self, tensors, shape):
        return {}

    def pack_stats(self, info, stats):
        pass

    def record(self):
        return {"method": self.method, "bits": self.bits, "group_size": self.group_size,
                "value_formula": self.formula, "quantization_config": self.quantization_config()}


class Awq(Fixture):
    method, bits, group_size = "awq", 4, 32
    stored_dtype = torch.float16
    exact_keys = ("codes", "zeros", "scales")
    formula = ("weight[o, i] = (q[i, o] - z[i // 32, o]) * scales[i // 32, o]; q: the 4-bit fields of qweight "
               "[in, out/8], z those of qzeros [in/32, out/8], value j of word c being column 8c + AWQ_ORDER[j], "
               "AWQ_ORDER = 0 2 4 6 1 3 5 7")

    def quantization_config(self):
        return {"bits": 4, "group_size": 32, "modules_to_not_convert": None, "quant_method": "awq",
                "version": "gemm", "zero_point": True}

    def quantize(self, w, gen, ctx):
        out, k = w.shape
        g = self.group_size
        wg = shifted_groups(w.reshape(out, k // g, g), gen)
        mn, mx = wg.amin(-1), wg.amax(-1)                   # pseudo_quantize_tensor with zero_point
        s = ((mx - mn).clamp(min=1e-5) / 15).to(torch.float16).to(torch.float64)
        z = (-torch.round(mn / s)).clamp(0, 15)
        q = (torch.round(wg / s[..., None]) + z[..., None]).clamp(0, 15)
        return {"codes": q.reshape(out, k).T.long().contiguous(), "zeros": z.T.long().contiguous(),
                "scales": s.T.to(torch.float16).contiguous(), "float": wg.reshape(out, k)}

    def pack(self, info):
        return {"qweight": awq_pack(info["codes"]), "qzeros": awq_pack(info["zeros"]), "scales": info["scales"]}

    def unpack(self, t, shape):
        return {"codes": awq_unpack(t["qweight"]), "zeros": awq_unpack(t["qzeros"]), "scales": t["scales"]}

    def dequantize(self, info):
        g = self.group_size
        z = info["zeros"].repeat_interleave(g, 0).to(torch.float64)
        s = info["scales"].to(torch.float64).repeat_interleave(g, 0)
        return ((info["codes"].to(torch.float64) - z) * s).T.contiguous()

    def pack_stats(self, info, stats):
        stats.setdefault("codes", []).append(code_range(info["codes"]))
        stats.setdefault("zeros", []).append(code_range(info["zeros"]))

    def wrong_readings(self, t, shape):
        plain = {"codes": unpack_words(t["qweight"], 4, 1), "zeros": unpack_words(t["qzeros"], 4, 1),
                 "scales": t["scales"]}
        return {"AWQ_ORDER ignored (value j of word c read as column 8c + j)": self.dequantize(plain)}


GPTQ_V1_OFFSET = {4: 0x11111111, 8: 0x01010101}     # convert_gptq_v2_to_v1_format_module


class Gptq(Fixture):
    method = "gptq"
    stored_dtype = torch.float16
    exact_keys = ("codes", "zeros", "scales", "g_idx")

    def __init__(self, name, seed, bits, group, sym, desc_act):
        super().__init__(name, seed)
        self.bits, self.group_size, self.sym, self.desc_act = bits, group, sym, desc_act
        self.formula = (f"weight[o, i] = (q[i, o] - (stored_zero[g_idx[i], o] + 1)) * scales[g_idx[i], o]; q: the "
                        f"{bits}-bit fields of qweight [in*{bits}/32, out] (value j of word r = input r*{32 // bits} + j), "
                        f"stored_zero those of qzeros [ceil(in/{group}), out*{bits}/32] (value j of word c = output "
                        f"c*{32 // bits} + j), v1: stored_zero = zero - 1")

    def quantization_config(self):
        return {"bits": self.bits, "group_size": self.group_size, "desc_act": self.desc_act, "sym": self.sym,
                "lm_head": False, "quant_method": "gptq", "checkpoint_format": "gptq", "pack_dtype": "int32",
                "meta": {"quantizer": ["gptqmodel:4.2.5"], "uri": "https://github.com/modelcloud/gptqmodel",
                         "damp_percent": 0.05, "damp_auto_increment": 0.01, "static_groups": False,
                         "true_sequential": True, "mse": 0.0, "v2": False, "v2_alpha": 0.25,
                         "act_group_aware": False}}

    def record(self):
        r = super().record()
        r.update(desc_act=self.desc_act, sym=self.sym, checkpoint_format="gptq",
                 groups_note="G = ceil(in / group_size); g_idx[i] = i // group_size unless desc_act")
        return r

    def extra_files(self, folder):
        with open(os.path.join(folder, "quantize_config.json"), "w") as f:
            json.dump(self.quantization_config(), f, indent=2)
            f.write("\n")

    def quantize(self, w, gen, ctx):
        out, k = w.shape
        g, maxq = self.group_size, 2 ** self.bits - 1
        G = math.ceil(k / g)
        if self.desc_act:   # act-order: groups of consecutive ranks of a permutation of the inputs
            perm = torch.randperm(k, generator=gen)
            rank = torch.empty(k, dtype=torch.int64)
            rank[perm] = torch.arange(k)
            g_idx = rank // g
        else:
            g_idx = torch.arange(k) // g
        work = w.clone()
        scales = torch.zeros(G, out, dtype=torch.float64)
        zeros = torch.zeros(G, out, dtype=torch.float64)
        for j in range(G):
            cols = (g_idx == j).nonzero().squeeze(1)
            x = work[:, cols]
            if not self.sym:
                x = shifted_groups(x, gen)
                work[:, cols] = x
            xmin = x.amin(1).clamp(max=0)                   # GPTQ's Quantizer.find_params: 0 in range
            xmax = x.amax(1).clamp(min=0)
            if self.sym:
                xmax = torch.maximum(xmin.abs(), xmax)
                xmin = torch.where(xmin < 0, -xmax, xmin)
            flat = (xmin == 0) & (xmax == 0)
            xmin, xmax = torch.where(flat, -1.0, xmin), torch.where(flat, 1.0, xmax)
            s = ((xmax - xmin) / maxq).to(torch.float16).to(torch.float64)
            if self.sym:
                z = torch.full_like(s, (maxq + 1) // 2)
            else:   # v1 stores zero - 1 by a word-wise subtraction: keep zero >= 1 (no borrow)
                z = torch.round(-xmin / s).clamp(1, maxq)
            scales[j], zeros[j] = s, z
        q = (torch.round(work / scales[g_idx].T) + zeros[g_idx].T).clamp(0, maxq)      # pack_block's int_block
        return {"codes": q.T.long().contiguous(), "zeros": zeros.long(), "scales": scales.to(torch.float16),
                "g_idx": g_idx.to(torch.int32), "float": work}

    def pack(self, info):
        bits = self.bits
        qweight = pack_words(info["codes"], bits, 0)
        v2 = pack_words(info["zeros"], bits, 1)                               # GPTQModel's in-memory (v2) qzeros
        v1 = to_int32(v2.to(torch.int64) - GPTQ_V1_OFFSET[bits])              # what save_quantized writes (v1)
        if not torch.equal(v1, pack_words(info["zeros"] - 1, bits, 1)):
            mmf.problem(f"{self.name}: v1 qzeros by word subtraction differ from packing zero - 1 (a borrow)")
        return {"qweight": qweight, "qzeros": v1, "scales": info["scales"], "g_idx": info["g_idx"]}

    def unpack(self, t, shape):
        return {"codes": unpack_words(t["qweight"], self.bits, 0), "zeros": unpack_words(t["qzeros"], self.bits, 1) + 1,
                "scales": t["scales"], "g_idx": t["g_idx"]}

    def dequantize(self, info):
        gi = info["g_idx"].long()
        s = info["scales"].to(torch.float64)[gi]
        z = info["zeros"].to(torch.float64)[gi]
        return (s * (info["codes"].to(torch.float64) - z)).T.contiguous()

    def pack_stats(self, info, stats):
        stats.setdefault("codes", []).append(code_range(info["codes"]))
        stats.setdefault("zeros", []).append(code_range(info["zeros"]))
        stats.setdefault("groups", []).append(int(info["scales"].shape[0]))

    def wrong_readings(self, t, shape):
        info = self.unpack(t, shape)
        out = {"v1 zeros read without the + 1 (as checkpoint_format gptq_v2)": self.dequantize(dict(info, zeros=info["zeros"] - 1))}
        if self.desc_act:
            plain = torch.arange(info["g_idx"].numel(), dtype=torch.int32) // self.group_size
            out["g_idx ignored (group of input i read as i // group_size)"] = self.dequantize(dict(info, g_idx=plain))
        return out


def ct_args(num_bits, kind, strategy, symmetric, group_size=None, dynamic=False, observer="minmax"):
    """A QuantizationArgs as compressed-tensors 0.15 serializes it."""
    return {"actorder": None, "block_structure": None, "dynamic": dynamic, "group_size": group_size,
            "num_bits": num_bits, "observer": observer, "observer_kwargs": {}, "scale_dtype": None,
            "strategy": strategy, "symmetric": symmetric, "type": kind,
            "zp_dtype": None if symmetric else "torch.int8"}


def ct_config(fmt, weights, input_activations=None):
    return {"config_groups": {"group_0": {"format": fmt, "input_activations": input_activations,
                                          "output_activations": None, "targets": ["Linear"], "weights": weights}},
            "format": fmt, "global_compression_ratio": None, "ignore": ["lm_head"], "kv_cache_scheme": None,
            "quant_method": "compressed-tensors", "quantization_status": "compressed", "sparsity_config": {},
            "transform_config": {}, "version": "0.15.0"}


class CtPacked(Fixture):
    method = "compressed-tensors pack-quantized"
    stored_dtype = torch.bfloat16

    def __init__(self, name, seed, bits, strategy, group, symmetric):
        super().__init__(name, seed)
        self.bits, self.strategy, self.group_size, self.symmetric = bits, strategy, group, symmetric
        self.exact_keys = ("codes", "scales", "shape") + (() if symmetric else ("zeros",))
        g = f"i // {group}" if group else "0"
        self.formula = (f"weight[o, i] = (q[o, i] - zp[o, {g}]) * weight_scale[o, {g}]; q = field - {2 ** (bits - 1)} "
                        f"of weight_packed [out, in*{bits}/32] (value j of word c = input c*{32 // bits} + j)"
                        + ("; zp = 0" if symmetric else
                           f"; zp = field - {2 ** (bits - 1)} of weight_zero_point [ceil(out*{bits}/32), groups] "
                           f"(value j of word c = output c*{32 // bits} + j)"))

    def quantization_config(self):
        return ct_config("pack-quantized", ct_args(self.bits, "int", self.strategy, self.symmetric, self.group_size))

    def record(self):
        r = super().record()
        r.update(strategy=self.strategy, symmetric=self.symmetric, format="pack-quantized")
        return r

    def quantize(self, w, gen, ctx):
        out, k = w.shape
        qmin, qmax = -2 ** (self.bits - 1), 2 ** (self.bits - 1) - 1
        G = k // self.group_size if self.group_size else 1
        wg = w.reshape(out, G, k // G)
        if not self.symmetric:
            wg = shifted_groups(wg, gen)
        mn, mx = wg.amin(-1).clamp(max=0), wg.amax(-1).clamp(min=0)   # calculate_qparams: 0 in range
        if self.symmetric:
            s = torch.maximum(mn.abs(), mx) / ((qmax - qmin) / 2)
        else:
            s = (mx - mn) / (qmax - qmin)
        s = s.to(torch.bfloat16).to(torch.float64)            # scales in the weight's dtype
        zp = torch.zeros_like(s) if self.symmetric else torch.round((qmin - mn / s).clamp(qmin, qmax))
        q = torch.round(wg / s[..., None] + zp[..., None]).clamp(qmin, qmax)
        info = {"codes": q.reshape(out, k).long(), "scales": s.to(torch.bfloat16), "shape": torch.tensor([out, k]),
                "float": wg.reshape(out, k)}
        if not self.symmetric:
            info["zeros"] = zp.long()
        return info

    def pack(self, info):
        off = 2 ** (self.bits - 1)
        t = {"weight_packed": pack_words(info["codes"] + off, self.bits, 1), "weight_scale": info["scales"],
             "weight_shape": info["shape"]}
        if not self.symmetric:
            t["weight_zero_point"] = pack_words(info["zeros"] + off, self.bits, 0)
        return t

    def unpack(self, t, shape):
        off = 2 ** (self.bits - 1)
        out, k = (int(v) for v in t["weight_shape"])
        info = {"codes": unpack_words(t["weight_packed"], self.bits, 1)[:, :k] - off, "scales": t["weight_scale"],
                "shape": t["weight_shape"]}
        if not self.symmetric:
            info["zeros"] = unpack_words(t["weight_zero_point"], self.bits, 0)[:out] - off
        return info

    def dequantize(self, info):
        out, k = info["codes"].shape
        G = info["scales"].shape[1]
        s = info["scales"].to(torch.float64).repeat_interleave(k // G, 1)
        z = info["zeros"].to(torch.float64).repeat_interleave(k // G, 1) if "zeros" in info else 0.0
        return (info["codes"].to(torch.float64) - z) * s

    def pack_stats(self, info, stats):
        stats.setdefault("codes", []).append(code_range(info["codes"]))
        if "zeros" in info:
            stats.setdefault("zeros", []).append(code_range(info["zeros"]))

    def wrong_readings(self, t, shape):
        info = self.unpack(t, shape)
        off = 2 ** (self.bits - 1)
        out = {f"weight_packed fields read without the -{off} offset": self.dequantize(dict(info, codes=info["codes"] + off))}
        if not self.symmetric:
            out["weight_zero_point ignored (read as symmetric)"] = self.dequantize(dict(info, zeros=torch.zeros_like(info["zeros"])))
        return out


def to_fp8(x):
    return x.to(torch.float32).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)


class CtFp8(Fixture):
    method = "compressed-tensors float-quantized"
    bits = 8
    stored_dtype = torch.bfloat16

    def __init__(self, name, seed, strategy):
        super().__init__(name, seed)
        self.strategy = strategy
        self.calibrate = strategy == "tensor"
        self.exact_keys = ("weight", "scales") + (("input_scale",) if self.calibrate else ())
        self.formula = ("weight[o, i] = fp8[o, i] * weight_scale[o, 0] (weight_scale [out, 1])" if strategy == "channel"
                        else "weight[o, i] = fp8[o, i] * weight_scale[0] (weight_scale [1]); input_scale [1] is the static "
                             "input scale, not applied by this oracle (activations unquantized)")

    def quantization_config(self):
        if self.strategy == "channel":   # FP8_DYNAMIC
            return ct_config("float-quantized", ct_args(8, "float", "channel", True),
                             ct_args(8, "float", "token", True, dynamic=True, observer=None))
        return ct_config("float-quantized", ct_args(8, "float", "tensor", True),     # FP8 (static)
                         ct_args(8, "float", "tensor", True, observer="static_minmax"))

    def record(self):
        r = super().record()
        r.update(strategy=self.strategy, format="float-quantized", fp8="float8_e4m3fn",
                 activations="dynamic per token" if self.strategy == "channel" else "static per tensor (input_scale)",
                 note="the reference quantizes no activation: weights dequantized, activations in float64")
        return r

    def quantize(self, w, gen, ctx):
        amax = w.abs().amax(1, keepdim=True) if self.strategy == "channel" else w.abs().amax().reshape(1)
        s = (amax / 448.0).to(torch.bfloat16)
        fp8 = to_fp8(w / s.to(torch.float64))
        info = {"weight": fp8, "scales": s, "float": w}
        if self.calibrate:
            info["input_scale"] = (torch.tensor([ctx["input_amax"][ctx["name"]]], dtype=torch.float64) / 448.0).to(torch.bfloat16)
        return info

    def pack(self, info):
        t = {"weight": info["weight"], "weight_scale": info["scales"]}
        if self.calibrate:
            t["input_scale"] = info["input_scale"]
        return t

    def unpack(self, t, shape):
        info = {"weight": t["weight"], "scales": t["weight_scale"]}
        if "input_scale" in t:
            info["input_scale"] = t["input_scale"]
        return info

    def dequantize(self, info):
        return info["weight"].to(torch.float64) * info["scales"].to(torch.float64)

    def pack_stats(self, info, stats):
        stats.setdefault("fp8_abs_max", []).append(float(info["weight"].to(torch.float32).abs().max()))

    def wrong_readings(self, t, shape):
        return {"weight_scale used as a divisor": t["weight"].to(torch.float64) / t["weight_scale"].to(torch.float64)}


class Fp8Block(Fixture):
    method = "fp8"
    bits = 8
    stored_dtype = torch.bfloat16
    hidden, intermediate = 192, 320
    exact_keys = ("weight", "scale_inv")
    block = 128
    formula = "weight[o, i] = fp8[o, i] * weight_scale_inv[o // 128, i // 128] (the last row and column of blocks partial)"

    def quantization_config(self):
        return {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}

    def record(self):
        r = super().record()
        r.update(weight_block_size=[128, 128], group_size=None, fp8="float8_e4m3fn",
                 note="activation_scheme dynamic: the reference quantizes no activation")
        return r

    def expand(self, s, out, k):
        b = self.block
        return s.to(torch.float64).repeat_interleave(b, 0)[:out].repeat_interleave(b, 1)[:, :k]

    def quantize(self, w, gen, ctx):
        out, k = w.shape
        b = self.block
        R, C = math.ceil(out / b), math.ceil(k / b)
        s = torch.zeros(R, C, dtype=torch.float32)
        for r in range(R):
            for c in range(C):
                s[r, c] = float(w[r * b:(r + 1) * b, c * b:(c + 1) * b].abs().max()) / 448.0
        fp8 = to_fp8(w / self.expand(s, out, k))
        return {"weight": fp8, "scale_inv": s, "float": w}

    def pack(self, info):
        return {"weight": info["weight"], "weight_scale_inv": info["scale_inv"]}

    def unpack(self, t, shape):
        return {"weight": t["weight"], "scale_inv": t["weight_scale_inv"]}

    def dequantize(self, info):
        out, k = info["weight"].shape
        return info["weight"].to(torch.float64) * self.expand(info["scale_inv"], out, k)

    def pack_stats(self, info, stats):
        stats.setdefault("scale_grids", []).append(list(info["scale_inv"].shape))

    def wrong_readings(self, t, shape):
        out, k = t["weight"].shape
        return {"weight_scale_inv used as a divisor": t["weight"].to(torch.float64) / self.expand(t["weight_scale_inv"], out, k)}


FIXTURES = [
    Awq("awq_qwen3", 201),
    Gptq("gptq_qwen3", 202, bits=4, group=32, sym=False, desc_act=False),
    Gptq("gptq_qwen3_actorder", 203, bits=4, group=32, sym=False, desc_act=True),
    Gptq("gptq_qwen3_8bit", 204, bits=8, group=64, sym=True, desc_act=False),
    Gptq("gptq_qwen3_g_uneven", 205, bits=4, group=128, sym=False, desc_act=False),
    CtPacked("ct_w4a16_qwen3", 206, bits=4, strategy="group", group=32, symmetric=True),
    CtPacked("ct_w4a16_asym_qwen3", 207, bits=4, strategy="group", group=32, symmetric=False),
    CtPacked("ct_w8a16_qwen3", 208, bits=8, strategy="channel", group=None, symmetric=True),
    CtFp8("ct_fp8_qwen3", 209, strategy="channel"),
    CtFp8("ct_fp8_tensor_qwen3", 210, strategy="tensor"),
    Fp8Block("fp8_block_qwen3", 211),
]
GPT_OSS_NAME, GPT_OSS_SEED = "gpt_oss_mxfp4", 212
ALL_NAMES = [f.name for f in FIXTURES] + [GPT_OSS_NAME]


# ----------------------------------------------------------------------------------------------
# Building a dense fixture
# ----------------------------------------------------------------------------------------------
def calibrate(model, prompts, names):
    """max |input| of each named Linear over the prompts alone (static input scales)."""
    amax, handles = {}, []
    modules = dict(model.named_modules())
    for n in names:
        handles.append(modules[n].register_forward_hook(
            lambda m, args, out, n=n: amax.__setitem__(n, max(amax.get(n, 0.0), float(args[0].abs().max())))))
    try:
        mff.prompts_alone(model, prompts)
    finally:
        for h in handles:
            h.remove()
    return amax


def summarize_stats(stats):
    """codes / zeros: [least, largest] over the projections; groups, scale grids: the values seen;
    fp8_abs_max: the largest."""
    out = {}
    for k, vs in stats.items():
        if k in ("codes", "zeros"):
            out[k] = [min(v[0] for v in vs), max(v[1] for v in vs)]
        elif k == "fp8_abs_max":
            out[k] = max(vs)
        else:
            out[k] = [json.loads(v) for v in sorted({json.dumps(v) for v in vs})]
    return out


def checksum(w):
    """sum and sum of squares of w [out, in] (or [E, out, in]), and a position-weighted sum that a
    permutation of columns or rows changes: sum of w.flat[n] * ((n % 251) + 1) / 251, n the
    row-major index."""
    n = torch.arange(w.numel(), dtype=torch.int64)
    c = ((n % 251) + 1).to(torch.float64) / 251.0
    return {"shape": list(w.shape), "sum": float(w.sum()), "sum_of_squares": float((w * w).sum()),
            "weighted_sum": float((w.reshape(-1) * c).sum())}


def tensor_list(tensors):
    return [{"name": n, "shape": list(t.shape), "dtype": dtype_name(t.dtype)}
            for n, t in sorted(tensors.items(), key=lambda kv: mff_natural(kv[0]))]


def mff_natural(s):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s)]


def write_config(folder, config, dtype, qc):
    config.save_pretrained(folder)
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["dtype"] = dtype_name(dtype)
    cfg["quantization_config"] = qc
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    return cfg


def split_by_module(tensors, modules):
    """{module prefix: {suffix: tensor}} for the file's tensors under each prefix."""
    out = {m: {} for m in modules}
    for n, t in tensors.items():
        prefix, _, suffix = n.rpartition(".")
        if prefix in out:
            out[prefix][suffix] = t
    return out


def load_quantized(folder, fx):
    """The folder's model in float64: transformers' Qwen3 built from config.json (less its
    quantization_config), its projections dequantized from the file by fx.unpack / fx.dequantize,
    every other tensor widened from the file."""
    config = AutoConfig.from_pretrained(folder)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32      # built in float32 (rotary frequencies too), then widened
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(torch.float64).eval()
    tensors = load_file(os.path.join(folder, "model.safetensors"))
    expected = dict(model.named_parameters())
    projections = [n[: -len(".weight")] for n in expected if n[: -len(".weight")].endswith(PROJECTIONS)]
    parts = split_by_module(tensors, projections)
    state, used = {}, set()
    for n, p in expected.items():
        prefix = n[: -len(".weight")]
        if prefix in parts:
            sub = parts[prefix]
            used.update(f"{prefix}.{k}" for k in sub)
            state[n] = fx.dequantize(fx.unpack(sub, tuple(p.shape)))
        else:
            used.add(n)
            state[n] = tensors[n].to(torch.float64)
    if set(tensors) - used:
        mmf.problem(f"{folder}: tensors not read: {sorted(set(tensors) - used)}")
    model.load_state_dict(state, strict=True)
    return model, tensors, parts


def logits_with(model, prompts, weights):
    """The prompts alone with some projections' weights replaced (then put back)."""
    params = dict(model.named_parameters())
    saved = {n: params[n + ".weight"].data.clone() for n in weights}
    try:
        for n, w in weights.items():
            params[n + ".weight"].data = w.clone()
        return mff.prompts_alone(model, prompts)
    finally:
        for n, w in saved.items():
            params[n + ".weight"].data = w


def transformers_attempt(folder, packages):
    """What transformers' own from_pretrained does with the folder as written."""
    try:
        AutoModelForCausalLM.from_pretrained(folder)
    except Exception as e:  # noqa: BLE001
        missing = [p for p, ok in packages.items() if not ok]
        return f"not installed: {', '.join(missing) or '(none missing?)'}; transformers {transformers.__version__} " \
               f"from_pretrained says {type(e).__name__}: {str(e)[:300]}"
    return "loaded by transformers (a loader is installed): compare its weights by hand"


def installed(names):
    return {n: importlib.util.find_spec(n) is not None for n in names}


def fp8_block_loader_check(folder, fx, deq, parts):
    """transformers' fine-grained FP8: from_pretrained with dequantize=True, its Fp8Dequantize on the
    evenly divisible part of each projection, and the FP8Linear load without dequantizing."""
    out = {}
    from transformers.integrations.finegrained_fp8 import Fp8Dequantize
    worst, worst32 = 0.0, 0.0
    for n, sub in parts.items():
        w, s = sub["weight"], sub["weight_scale_inv"]
        R, C = w.shape[0] // 128, w.shape[1] // 128
        if R == 0 or C == 0:
            continue
        theirs = Fp8Dequantize(None)._dequantize_one(w[:R * 128, :C * 128], s[:R, :C], torch.float32)
        mine = deq[n][:R * 128, :C * 128]
        worst = max(worst, float((theirs.to(torch.float64) - mine).abs().max()))
        worst32 = max(worst32, float((theirs - mine.to(torch.float32)).abs().max()))
    full = {}
    for n, sub in parts.items():   # the same function on the whole tensor: it derives the block from shape // grid
        try:
            theirs = Fp8Dequantize(None)._dequantize_one(sub["weight"], sub["weight_scale_inv"], torch.float32)
            full[n] = float((theirs.to(torch.float64) - deq[n]).abs().max())
        except Exception as e:  # noqa: BLE001
            full[n] = f"refused: {type(e).__name__}: {str(e)[:200]}"
    out["fp8_dequantize_on_whole_tensors"] = {
        "per_projection": full,
        "note": "Fp8Dequantize._dequantize_one on each whole projection: transformers 5.17 takes the block as "
                "shape // scale grid, so a grid whose count divides the shape gets a wrong block (e.g. 96 for "
                "in 192 with 2 column blocks: a nonzero difference here) and one that does not is refused; "
                "weight_block_size [128, 128] with ceil-sized grids is what the file means"}
    out["fp8_dequantize_on_whole_blocks"] = {
        "max_abs_diff": worst, "max_abs_diff_vs_ours_rounded_to_float32": worst32,
        "note": "transformers.integrations.finegrained_fp8.Fp8Dequantize._dequantize_one (float32) on the rows "
                "and columns of each projection that fill whole 128 x 128 blocks"}
    with tempfile.TemporaryDirectory() as tmp:
        for f in os.listdir(folder):
            shutil.copy(os.path.join(folder, f), tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            cfg = json.load(f)
        cfg["quantization_config"]["dequantize"] = True
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(cfg, f)
        try:
            m = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
            params = dict(m.named_parameters())
            per = {n: float((params[n + ".weight"].detach().to(torch.float64) - deq[n]).abs().max()) for n in deq}
            out["from_pretrained_dequantize"] = {"max_abs_diff": max(per.values()), "per_projection": per}
        except Exception as e:  # noqa: BLE001
            out["from_pretrained_dequantize"] = f"refused: {type(e).__name__}: {str(e)[:400]}"
        try:
            m = AutoModelForCausalLM.from_pretrained(folder)
            mods = dict(m.named_modules())
            kinds = sorted({type(mods[n]).__name__ for n in deq})
            equal = all(same(mods[n].weight.detach().cpu(), parts[n]["weight"])
                        and same(mods[n].weight_scale_inv.detach().cpu(), parts[n]["weight_scale_inv"]) for n in deq)
            out["from_pretrained_fp8_linear"] = {"modules": kinds, "parameters_equal_the_file": equal,
                                                 "note": "loaded without dequantizing (FP8Linear: ceil-shaped scale "
                                                         "grids accepted); its forward needs the kernels package"}
        except Exception as e:  # noqa: BLE001
            out["from_pretrained_fp8_linear"] = f"refused: {type(e).__name__}: {str(e)[:400]}"
    return out


def build_dense(fx, prompts, out_dir, summary):
    name = fx.name
    config = fx.config()
    torch.manual_seed(fx.seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(torch.float64).eval()
    mmf.reinit(model, fx.seed)
    params = dict(model.named_parameters())
    projections = [f"model.layers.{l}.{p}" for l in range(config.num_hidden_layers) for p in PROJECTIONS]
    with torch.no_grad():
        for n, p in params.items():
            if n[: -len(".weight")] not in projections:
                p.data = p.data.to(fx.stored_dtype).to(torch.float64)
    ctx = {"input_amax": calibrate(model, prompts, projections) if fx.calibrate else {}}
    gen = torch.Generator().manual_seed(fx.seed + 17)
    tensors, float_w, deq, stats = {}, {}, {}, {}
    pack_ok = True
    for pn in projections:
        w = params[pn + ".weight"].detach().clone()
        info = fx.quantize(w, gen, dict(ctx, name=pn))
        packed = fx.pack(info)
        back = fx.unpack(packed, tuple(w.shape))
        for key in fx.exact_keys:
            if not same(info[key], back[key]):
                pack_ok = False
                mmf.problem(f"{name}: {pn}: unpack(pack({key})) differs from {key}")
        d = fx.dequantize(back)
        if not torch.equal(d, fx.dequantize(info)) or d.shape != w.shape or not torch.isfinite(d).all():
            pack_ok = False
            mmf.problem(f"{name}: {pn}: dequantized weight of {tuple(d.shape)} wrong")
        float_w[pn], deq[pn] = info["float"], d
        fx.pack_stats(info, stats)
        for k, v in packed.items():
            tensors[f"{pn}.{k}"] = v.contiguous()
    with torch.no_grad():
        for pn in projections:
            params[pn + ".weight"].data = deq[pn].clone()
    for n, p in params.items():
        if n[: -len(".weight")] not in projections:
            tensors[n] = p.detach().to(fx.stored_dtype).contiguous()

    folder = os.path.join(out_dir, "models", name)
    os.makedirs(folder, exist_ok=True)
    config.architectures = [type(model).__name__]
    cfg = write_config(folder, config, fx.stored_dtype, fx.quantization_config())
    model.generation_config.save_pretrained(folder)
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    fx.extra_files(folder)
    for key, value in fx.expected().items():
        if cfg.get(key) != value:
            mmf.problem(f"{name}: config.json {key} = {cfg.get(key)!r}, expected {value!r}")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"  {name}: files {sorted(os.listdir(folder))}, {size} bytes; quantization_config "
          f"{json.dumps(cfg['quantization_config'], sort_keys=True)}")
    if size > 2 * 1024 * 1024:
        mmf.problem(f"{name}: folder of {size} bytes")
    for t in tensor_list(tensors):
        if t["name"].startswith("model.layers.0.") or not t["name"].startswith("model.layers."):
            print(f"    {t['name']} {t['shape']} {t['dtype']}")

    reloaded, file_tensors, parts = load_quantized(folder, fx)
    mine = dict(model.named_parameters())
    differ = [n for n, p in reloaded.named_parameters() if not torch.equal(p, mine[n])]
    if differ:
        mmf.problem(f"{name}: the folder reloads to other weights: {differ}")
    f64 = mmf.Float64Math(reloaded)
    f64.enable()
    summary["eos"] = [2]
    ref = mmf.make_reference(name, reloaded, prompts, mmf.TINY_MAX_NEW_TOKENS, [2], 2, f64, summary)
    std = summary["logit_std"][0]
    if not 1.0 <= std <= 20.0:
        mmf.problem(f"{name}: logit std {std:.3f} outside [1, 20]")
    single = [torch.tensor(r, dtype=torch.float64) for r in ref["single"]]
    ref["stored_dtype"] = dtype_name(fx.stored_dtype)
    ref["quantization"] = fx.record()
    ref["tensors"] = tensor_list(file_tensors)
    ref["dequantized_checksum"] = {n: checksum(deq[n]) for n in CHECKSUMMED}
    ref["pack_check"] = {"unpack_pack_equal": pack_ok, "projections": len(projections),
                         "negative_int32_words": int(sum(int((t < 0).sum()) for t in file_tensors.values()
                                                         if t.dtype == torch.int32)),
                         "ranges": summarize_stats(stats)}
    wrong = {}
    readings = {}
    for pn in projections:
        for desc, w in fx.wrong_readings(parts[pn], tuple(deq[pn].shape)).items():
            readings.setdefault(desc, {})[pn] = w
    for desc, ws in readings.items():
        d = mmf.max_diff(logits_with(reloaded, prompts, ws), single)
        wrong[desc] = d
        print(f"  {name}: read with '{desc}': max|logits diff| {d:.3e}")
        if d <= DISTINCT:
            mmf.problem(f"{name}: reading '{desc}' changes the logits by only {d:.3e}")
    ref["wrong_readings"] = wrong
    ref["max_abs_diff_vs_unquantized_weights"] = mmf.max_diff(logits_with(reloaded, prompts, float_w), single)
    print(f"  {name}: logits of the weights before quantization differ by {ref['max_abs_diff_vs_unquantized_weights']:.3e}")

    f64.disable()
    packages = installed(["gptqmodel", "optimum", "awq", "auto_gptq", "compressed_tensors"])
    if isinstance(fx, Fp8Block):
        ref["loader_check"] = fp8_block_loader_check(folder, fx, deq, parts)
    else:
        need = {"awq": ["gptqmodel"], "gptq": ["optimum", "gptqmodel"]}.get(fx.method, ["compressed_tensors"])
        ref["loader_check"] = transformers_attempt(folder, {p: packages[p] for p in need})
    print(f"  {name}: loader check {json.dumps(ref['loader_check'])}")
    f64.enable()
    ref["note_quantized"] = ("the projections are the float64 dequantized values of the file's packed tensors "
                             "(quantization.value_formula); every other tensor is the file's, widened to float64; "
                             "no activation is quantized")
    return ref


# ----------------------------------------------------------------------------------------------
# gpt-oss with MXFP4 experts
# ----------------------------------------------------------------------------------------------
FP4_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
MXFP4_CODES = {}   # (layer, proj) -> (blocks, scales) of the last model drawn
GPT_OSS_NOT_CONVERTED = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]


def mxfp4_quantize(rows):
    """rows [E, R, K] float64 (K % 32 == 0) -> blocks uint8 [E, R, K/32, 16], scales uint8 [E, R, K/32]:
    per 32 values a shared scale 2^(floor(log2 max|v|) - 2) (OCP MX, e2m1's largest exponent 2), each
    value the nearest e2m1 of v / scale (saturating at 6, ties to the smaller magnitude), sign bit 8."""
    E, R, K = rows.shape
    x = rows.reshape(E, R, K // 32, 32)
    amax = x.abs().amax(-1)
    exp = torch.where(amax > 0, torch.floor(torch.log2(amax.clamp(min=1e-300))) - 2, torch.full_like(amax, -127))
    exp = exp.clamp(-127, 127)
    v = x / torch.pow(2.0, exp)[..., None]
    mags = torch.tensor(FP4_VALUES[:8], dtype=torch.float64)
    code = (v.abs()[..., None] - mags).abs().argmin(-1) + 8 * torch.signbit(v).long()
    byte = code[..., 0::2] | (code[..., 1::2] << 4)
    return byte.to(torch.uint8).contiguous(), (exp + 127).to(torch.uint8).contiguous()


def mxfp4_dequantize(blocks, scales):
    """blocks [E, R, G, 16], scales [E, R, G] -> float64 [E, R, 32 G]: low nibble first."""
    b = blocks.to(torch.int64)
    codes = torch.stack((b & 0xF, b >> 4), -1).reshape(*blocks.shape[:-1], 32)
    lut = torch.tensor(FP4_VALUES, dtype=torch.float64)
    vals = lut[codes] * torch.pow(2.0, scales.to(torch.float64) - 127)[..., None]
    return vals.reshape(*blocks.shape[:-2], blocks.shape[-2] * 32)


ORIGINAL_MOE_ADJUST = mff.moe_adjust


def moe_adjust_mxfp4(family, model, seed):
    """make_family_fixtures' expert draw, then every expert weight rounded to MXFP4 (its codes kept)."""
    ORIGINAL_MOE_ADJUST(family, model, seed)
    with torch.no_grad():
        for l, layer in enumerate(model.model.layers):
            ex = layer.mlp.experts
            for proj in ("gate_up_proj", "down_proj"):
                p = getattr(ex, proj)                       # gpt-oss in memory: [E, in, out]
                blocks, scales = mxfp4_quantize(p.data.to(torch.float64).transpose(1, 2))
                p.data = mxfp4_dequantize(blocks, scales).transpose(1, 2).contiguous().to(p.dtype)
                MXFP4_CODES[(l, proj)] = (blocks, scales)


def gpt_oss_mxfp4_config():
    from transformers import GptOssConfig
    common = dict(mmf.COMMON, num_hidden_layers=4, intermediate_size=64, max_position_embeddings=64)
    return mff.with_extras(GptOssConfig, dict(swiglu_limit=7.0), **common, num_key_value_heads=2, head_dim=16,
                           tie_word_embeddings=False, pad_token_id=None, attention_bias=True, num_local_experts=8,
                           num_experts_per_tok=2, sliding_window=6,
                           layer_types=["sliding_attention", "full_attention"] * 2,
                           rope_parameters=dict(mff.GPT_OSS_ROPE))


def build_gpt_oss_mxfp4(prompts, out_dir, summary):
    """make_family_fixtures' gpt_oss build (seed search, float64 reference, MoE and gpt-oss checks),
    run under its own name on experts rounded to MXFP4; then the folder rewritten with the experts as
    MXFP4 blocks and scales, checked against transformers' MXFP4 loader."""
    family = mff.Family("gpt_oss", GPT_OSS_SEED, torch.bfloat16, gpt_oss_mxfp4_config,
                        expected=dict(model_type="gpt_oss", num_hidden_layers=4, num_key_value_heads=2, head_dim=16,
                                      tie_word_embeddings=False, intermediate_size=64, num_experts_per_tok=2,
                                      sliding_window=6, attention_bias=True, max_position_embeddings=64,
                                      swiglu_limit=7.0),
                        rope_layers=None, check=mff.gpt_oss_check, everywhere=True, v4=None, seed_tries=16,
                        moe=mff.MoeSpec("topk_softmax", None, True, (1, 1, 1, 1), gate_up_scale=3.5, down_scale=0.3))
    mff.moe_adjust = moe_adjust_mxfp4
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ref = mff.build(family, prompts, tmp, summary)
            src = os.path.join(tmp, "models", "gpt_oss")
            tensors = load_file(os.path.join(src, "model.safetensors"))
            folder = os.path.join(out_dir, "models", GPT_OSS_NAME)
            os.makedirs(folder, exist_ok=True)
            for f in ("config.json", "generation_config.json"):
                shutil.copy(os.path.join(src, f), folder)
    finally:
        mff.moe_adjust = ORIGINAL_MOE_ADJUST
        mmf.manual_forward = mff.ORIGINAL_MANUAL
        mmf.batches_for = mff.ORIGINAL_BATCHES
    deq = {}
    for (l, proj), (blocks, scales) in sorted(MXFP4_CODES.items()):
        key = f"model.layers.{l}.mlp.experts.{proj}"
        t = tensors.pop(key)
        d = mxfp4_dequantize(blocks, scales)                 # [E, out, in]
        deq[key] = d
        if tuple(t.shape) != tuple(d.transpose(1, 2).shape) or not torch.equal(t.to(torch.float64), d.transpose(1, 2)):
            mmf.problem(f"{GPT_OSS_NAME}: {key} {tuple(t.shape)} in the file is not the MXFP4 values drawn")
        back = mxfp4_quantize(d)
        if not (torch.equal(back[0], blocks) and torch.equal(back[1], scales)):
            print(f"  note: {key}: re-quantizing the dequantized values gives other codes (-0 or ties)")
        tensors[key + "_blocks"] = blocks
        tensors[key + "_scales"] = scales
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = {"modules_to_not_convert": list(GPT_OSS_NOT_CONVERTED), "quant_method": "mxfp4"}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"  {GPT_OSS_NAME}: files {sorted(os.listdir(folder))}, {size} bytes")
    if size > 2 * 1024 * 1024:
        mmf.problem(f"{GPT_OSS_NAME}: folder of {size} bytes")
    listing = tensor_list(tensors)
    for t in listing:
        if t["name"].startswith("model.layers.0.mlp"):
            print(f"    {t['name']} {t['shape']} {t['dtype']}")

    ref["model"] = GPT_OSS_NAME
    ref["stored_dtype"] = "bfloat16"
    ref["quantization"] = {
        "method": "mxfp4", "bits": 4, "group_size": 32, "quantization_config": cfg["quantization_config"],
        "value_formula": "value = FP4[code] * 2^(scale - 127); FP4 = 0 .5 1 1.5 2 3 4 6 -0 -.5 -1 -1.5 -2 -3 -4 -6; "
                         "blocks[e, r, k, b] = code of input 32k + 2b (low nibble) | code of input 32k + 2b + 1 << 4; "
                         "dequantized [E, R, K] transposed to [E, K, R] is transformers' gate_up_proj [E, H, 2I] (gate "
                         "even, up odd along 2I) and down_proj [E, I, H]"}
    ref["expert_layout"] = {"layouts": ["mlp.experts.gate_up_proj_blocks [E, 2I, H/32, 16] uint8, gate_up_proj_scales "
                                        "[E, 2I, H/32] uint8, gate_up_proj_bias [E, 2I]; down_proj_blocks [E, H, I/32, 16], "
                                        "down_proj_scales [E, H, I/32], down_proj_bias [E, H]"],
                            "layer 0": {t["name"]: t["shape"] for t in listing if t["name"].startswith("model.layers.0.mlp")}}
    ref["tensors"] = listing
    ref["dequantized_checksum"] = {k: checksum(deq[k]) for k in ("model.layers.0.mlp.experts.gate_up_proj",
                                                                 "model.layers.0.mlp.experts.down_proj")}
    ref["note_dequantized_checksum"] = "of the dequantized [E, out, in] = [E, 2I, H] and [E, H, I], before transposing"
    codes = torch.cat([torch.stack((b & 0xF, b >> 4), -1).reshape(-1) for b, _ in MXFP4_CODES.values()])
    exps = torch.cat([s.reshape(-1) for _, s in MXFP4_CODES.values()]).to(torch.int64)
    ref["pack_check"] = {"codes_used": sorted(set(codes.tolist())), "scale_bytes": code_range(exps)}

    check = {}
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors
    worst = 0.0
    for key, d in deq.items():
        theirs = convert_moe_packed_tensors(tensors[key + "_blocks"], tensors[key + "_scales"], dtype=torch.float32)
        worst = max(worst, float((theirs.cpu().to(torch.float64) - d.transpose(1, 2)).abs().max()))
    check["convert_moe_packed_tensors"] = {"max_abs_diff": worst, "note": "transformers.integrations.mxfp4."
                                           "convert_moe_packed_tensors (float32) on the file's blocks and scales"}
    with tempfile.TemporaryDirectory() as tmp:
        for f in os.listdir(folder):
            shutil.copy(os.path.join(folder, f), tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            c = json.load(f)
        c["quantization_config"]["dequantize"] = True
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(c, f)
        try:
            m = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.bfloat16)
            params = dict(m.named_parameters())
            per = {k: float((params[k].detach().cpu().to(torch.float64) - d.transpose(1, 2)).abs().max())
                   for k, d in deq.items()}
            check["from_pretrained_mxfp4_dequantize"] = {"max_abs_diff": max(per.values()), "per_tensor": per,
                                                         "note": "Mxfp4Config(dequantize=True), bfloat16"}
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            check["from_pretrained_mxfp4_dequantize"] = f"refused: {type(e).__name__}: {str(e)[:400]}"
            mmf.problem(f"{GPT_OSS_NAME}: transformers' MXFP4 loader refused the folder: {e}")
    ref["loader_check"] = check
    print(f"  {GPT_OSS_NAME}: loader check {json.dumps(check)}")
    for v in check.values():
        if isinstance(v, dict) and v["max_abs_diff"] != 0.0:
            mmf.problem(f"{GPT_OSS_NAME}: transformers dequantizes the experts {v['max_abs_diff']:.3e} away from ours")
    ref["note_quantized"] = ("the experts are the float64 values of the file's MXFP4 blocks and scales (exact in "
                             "bfloat16); every other tensor is the file's bfloat16, widened")
    return ref


# ----------------------------------------------------------------------------------------------
# Folders a loader must refuse
# ----------------------------------------------------------------------------------------------
BAD = [
    ("awq_qweight_shape", "awq_qwen3", "model.layers.0.self_attn.q_proj.qweight is [128, 15], not [in, out/8] = [128, 16]",
     "refuse: the qweight shape does not match the projection (name the tensor, its shape and the expected one)"),
    ("gptq_scales_rows", "gptq_qwen3", "model.layers.0.self_attn.q_proj.scales has 3 rows, not ceil(in/group_size) = 4",
     "refuse: the scales (and qzeros) do not match the number of groups"),
    ("awq_scale_nan", "awq_qwen3", "model.layers.0.self_attn.q_proj.scales[0, 0] is NaN",
     "refuse: a scale is not finite (name the tensor)"),
    ("ct_scale_inf", "ct_w4a16_qwen3", "model.layers.0.mlp.down_proj.weight_scale[0, 0] is +inf",
     "refuse: a scale is not finite (name the tensor)"),
    ("gptq_g_idx_range", "gptq_qwen3", "model.layers.0.self_attn.q_proj.g_idx[5] is 4 with 4 groups (0 .. 3)",
     "refuse: a g_idx entry is outside [0, groups)"),
    ("unknown_method_hqq", "awq_qwen3", "quantization_config.quant_method is \"hqq\"",
     "refuse: the quantization method hqq is not supported (name it)"),
    ("gptq_bits3", "gptq_qwen3", "quantization_config.bits (and quantize_config.json's) is 3; the tensors are the "
     "4-bit ones", "refuse: 3-bit GPTQ is not supported (or: the packed shapes do not match 3 bits)"),
    ("awq_group48", "awq_qwen3", "group_size 48 does not divide in_features 128 (AutoAWQ asserts in % group_size == "
     "0); qzeros and scales have ceil(in/48) rows, so only the divisibility is wrong",
     "refuse: group_size 48 does not divide the input size 128"),
]


def write_bad(out_dir):
    root = os.path.join(out_dir, "models", "quant_bad")
    os.makedirs(root, exist_ok=True)
    lines = ["# Quantized folders a loader must refuse", "",
             "Each folder is a copy of a good fixture (tests/data/models/<source>) with one defect "
             "(written by tests/reference/make_quant_fixtures.py).", ""]
    for case, source, wrong, say in BAD:
        src = os.path.join(out_dir, "models", source)
        if not os.path.isdir(src):
            mmf.problem(f"quant_bad/{case}: {source} was not written")
            continue
        dst = os.path.join(root, case)
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        tensors = load_file(os.path.join(dst, "model.safetensors"))
        with open(os.path.join(dst, "config.json")) as f:
            cfg = json.load(f)
        qc = cfg["quantization_config"]
        if case == "awq_qweight_shape":
            k = "model.layers.0.self_attn.q_proj.qweight"
            tensors[k] = tensors[k][:, :-1].contiguous()
        elif case == "gptq_scales_rows":
            k = "model.layers.0.self_attn.q_proj.scales"
            tensors[k] = tensors[k][:-1].contiguous()
        elif case == "awq_scale_nan":
            tensors["model.layers.0.self_attn.q_proj.scales"][0, 0] = float("nan")
        elif case == "ct_scale_inf":
            tensors["model.layers.0.mlp.down_proj.weight_scale"][0, 0] = float("inf")
        elif case == "gptq_g_idx_range":
            tensors["model.layers.0.self_attn.q_proj.g_idx"][5] = 4
        elif case == "unknown_method_hqq":
            qc["quant_method"] = "hqq"
        elif case == "gptq_bits3":
            qc["bits"] = 3
        elif case == "awq_group48":
            qc["group_size"] = 48
            for n in list(tensors):
                if n.endswith(".qzeros") or n.endswith(".scales"):
                    k_in = tensors[n[: -len(n.rpartition(".")[2])] + "qweight"].shape[0]
                    tensors[n] = tensors[n][: math.ceil(k_in / 48)].contiguous()
        save_file(tensors, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(dst, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        if os.path.exists(os.path.join(dst, "quantize_config.json")):
            with open(os.path.join(dst, "quantize_config.json"), "w") as f:
                json.dump(qc, f, indent=2)
                f.write("\n")
        lines.append(f"- `{case}/` (from `{source}`): {wrong}. A loader must {say}.")
        print(f"  quant_bad/{case}: {wrong}")
    with open(os.path.join(root, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------
def prompts_of():
    g = torch.Generator().manual_seed(mmf.PROMPT_SEED)
    return [[1] + torch.randint(3, 128, (n - 1,), generator=g).tolist() for n in mff.PROMPT_LENGTHS]


def run_one(name, out_dir):
    prompts = prompts_of()
    print(f"prompts {prompts}")
    summaries = {name: {}}
    print(f"\n=== {name} ===", flush=True)
    try:
        if name == GPT_OSS_NAME:
            ref = build_gpt_oss_mxfp4(prompts, out_dir, summaries[name])
        else:
            fx = next(f for f in FIXTURES if f.name == name)
            ref = build_dense(fx, prompts, out_dir, summaries[name])
        mmf.write_json(os.path.join(out_dir, "reference", f"{name}.json"), ref)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        summaries[name]["error"] = f"{type(e).__name__}: {e}"
        mmf.problem(f"{name}: {summaries[name]['error']}")
    mmf.print_summary(summaries)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", help=f"fixtures to write (default: all of {ALL_NAMES})")
    ap.add_argument("--jobs", type=int, default=1, help="fixtures written side by side, one process each")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of this process (0: torch's default)")
    ap.add_argument("--no-bad", action="store_true", help="do not write models/quant_bad")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(os.path.join(args.out, "reference"), exist_ok=True)
    names = args.only or ALL_NAMES
    unknown = [n for n in names if n not in ALL_NAMES]
    if unknown:
        sys.exit(f"unknown fixtures {unknown}; known: {ALL_NAMES}")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}; installed "
          f"{installed(['compressed_tensors', 'gptqmodel', 'optimum', 'awq', 'auto_gptq', 'accelerate', 'kernels'])}",
          flush=True)
    failed = []
    if len(names) == 1:
        run_one(names[0], args.out)
        failed = [names[0]] if mmf.PROBLEMS else []
    else:
        logs = os.path.join(args.out, "logs")
        os.makedirs(logs, exist_ok=True)
        pending, running = list(names), []
        # gpt-oss searches seeds: start it first
        pending.sort(key=lambda n: n != GPT_OSS_NAME)
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                n = pending.pop(0)
                log = open(os.path.join(logs, f"{n}.log"), "w")
                cmd = [sys.executable, os.path.abspath(__file__), "--out", args.out, "--only", n, "--threads", "1"]
                running.append((n, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
            for item in list(running):
                n, proc, log = item
                if proc.poll() is not None:
                    log.close()
                    running.remove(item)
                    print(f"{n}: exit {proc.returncode}", flush=True)
                    if proc.returncode:
                        failed.append(n)
            time.sleep(0.5)
        for n in names:
            with open(os.path.join(logs, f"{n}.log")) as f:
                text = f.read()
            tail = text[text.rfind("==================== SUMMARY"):] if "SUMMARY" in text else text[-3000:]
            print(f"\n--- {n} ---\n{tail}")
    if not args.no_bad and {"awq_qwen3", "gptq_qwen3", "ct_w4a16_qwen3"} <= set(names):
        print("\n=== quant_bad ===")
        write_bad(args.out)
    if failed or mmf.PROBLEMS:
        print(f"\nfailed: {failed}; {len(mmf.PROBLEMS)} PROBLEMS in this process:")
        for p in mmf.PROBLEMS:
            print("  -", p)
        sys.exit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
