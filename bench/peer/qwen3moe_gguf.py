#!/usr/bin/env python3
"""A Qwen3-MoE model folder (config.json + model.safetensors in bfloat16, the published
checkpoints' tensor names: make_random_model --qwen3-30b-a3b) as a GGUF file for llama.cpp's
`qwen3moe` architecture, holding the same weights.

    python3 bench/peer/qwen3moe_gguf.py --model DIR --out FILE.gguf --gguf-py LLAMA_CPP/gguf-py
        [--tokenizer DIR_WITH_TOKENIZER_JSON] [--verify]

Needs numpy, PyYAML and llama.cpp's own `gguf` Python package (gguf-py in its source tree, given
by --gguf-py or already importable); no torch, no transformers.

What the file holds, as llama.cpp's converter would write it for this architecture:
  - every matrix as stored, bfloat16 bit for bit: token_embd, output, blk.N.attn_{q,k,v,output}, and
    each layer's experts stacked into one tensor per projection, blk.N.ffn_{gate,up,down}_exps
    ([experts, rows, columns] in numpy's order, expert e at index e);
  - the norms (blk.N.attn_norm, attn_q_norm, attn_k_norm, ffn_norm, output_norm) and the router
    (blk.N.ffn_gate_inp) in float32, each value the bfloat16 value exactly (llama.cpp keeps 1-D
    tensors and routers in float32);
  - the hyperparameters of config.json (qwen3moe.*), and a vocabulary: with --tokenizer, that
    folder's tokenizer.json (byte-level BPE: its pieces, merges and added tokens, pre-tokenizer
    "qwen2"), padded with "[PAD<id>]" pieces up to vocab_size as llama.cpp's converter does;
    without it, tokenizer model "none" and qwen3moe.vocab_size (llama.cpp then makes placeholder
    tokens: enough for llama-bench, which feeds token ids).
--verify reads the written file back (gguf.GGUFReader) and checks every tensor against the
safetensors values.
"""
import argparse
import json
import pathlib
import sys

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=pathlib.Path, help="folder with config.json and model.safetensors")
    p.add_argument("--out", required=True, type=pathlib.Path, help="the GGUF file to write")
    p.add_argument("--gguf-py", type=pathlib.Path, help="llama.cpp's gguf-py folder (imported as `gguf`)")
    p.add_argument("--tokenizer", type=pathlib.Path, help="folder with the tokenizer.json to write as the vocabulary")
    p.add_argument("--verify", action="store_true", help="read the file back and compare every tensor")
    return p.parse_args()


class Safetensors:
    """The tensors of one .safetensors file, mapped read-only (nothing is copied until asked)."""

    def __init__(self, path):
        raw = np.memmap(path, dtype=np.uint8, mode="r")
        length = int(raw[:8].view("<u8")[0])
        self.header = json.loads(bytes(raw[8:8 + length]).decode("utf-8"))
        self.header.pop("__metadata__", None)
        self.raw = raw
        self.base = 8 + length

    def names(self):
        return list(self.header)

    def bf16(self, name):
        """The tensor's bfloat16 bits as uint16, in its shape (a view of the mapped file)."""
        info = self.header[name]
        if info["dtype"] != "BF16":
            sys.exit(f"qwen3moe_gguf: tensor {name} is {info['dtype']}; this converter takes bfloat16 folders only")
        begin, end = info["data_offsets"]
        return self.raw[self.base + begin:self.base + end].view("<u2").reshape(info["shape"])


def widen(bits):
    """bfloat16 bits -> the same values as float32."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def plan(config, st):
    """[(gguf name, numpy shape, 'BF16' | 'F32', a function returning the data)] in file order."""
    layers = config["num_hidden_layers"]
    experts = config["num_experts"]
    out = []

    def plain(gguf_name, hf_name, kind):
        shape = st.header[hf_name]["shape"]
        fetch = (lambda: st.bf16(hf_name)) if kind == "BF16" else (lambda: widen(st.bf16(hf_name)))
        out.append((gguf_name, shape, kind, fetch))

    def stacked(gguf_name, layer, proj):
        names = [f"model.layers.{layer}.mlp.experts.{e}.{proj}.weight" for e in range(experts)]
        shape = [experts] + st.header[names[0]]["shape"]
        for n in names:
            if st.header[n]["shape"] != shape[1:]:
                sys.exit(f"qwen3moe_gguf: {n} has shape {st.header[n]['shape']}, expected {shape[1:]}")
        out.append((gguf_name, shape, "BF16", lambda: np.stack([st.bf16(n) for n in names])))

    plain("token_embd.weight", "model.embed_tokens.weight", "BF16")
    for i in range(layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        plain(b + "attn_norm.weight", p + "input_layernorm.weight", "F32")
        plain(b + "attn_q.weight", p + "self_attn.q_proj.weight", "BF16")
        plain(b + "attn_k.weight", p + "self_attn.k_proj.weight", "BF16")
        plain(b + "attn_v.weight", p + "self_attn.v_proj.weight", "BF16")
        plain(b + "attn_output.weight", p + "self_attn.o_proj.weight", "BF16")
        plain(b + "attn_q_norm.weight", p + "self_attn.q_norm.weight", "F32")
        plain(b + "attn_k_norm.weight", p + "self_attn.k_norm.weight", "F32")
        plain(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", "F32")
        plain(b + "ffn_gate_inp.weight", p + "mlp.gate.weight", "F32")
        stacked(b + "ffn_gate_exps.weight", i, "gate_proj")
        stacked(b + "ffn_up_exps.weight", i, "up_proj")
        stacked(b + "ffn_down_exps.weight", i, "down_proj")
    plain("output_norm.weight", "model.norm.weight", "F32")
    if config.get("tie_word_embeddings", False):
        if "lm_head.weight" in st.header:
            sys.exit("qwen3moe_gguf: config.json ties the embeddings but the file has lm_head.weight")
    else:
        plain("output.weight", "lm_head.weight", "BF16")
    used = {f"model.layers.{i}.mlp.experts.{e}.{proj}.weight" for i in range(layers) for e in range(experts)
            for proj in ("gate_proj", "up_proj", "down_proj")}
    mapped = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for i in range(layers):
        for n in ("input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                  "self_attn.q_norm", "self_attn.k_norm", "post_attention_layernorm", "mlp.gate"):
            mapped.add(f"model.layers.{i}.{n}.weight")
    left = [n for n in st.names() if n not in used and n not in mapped]
    if left:
        sys.exit(f"qwen3moe_gguf: tensors this converter does not place: {left[:5]}")
    return out


def vocabulary(gguf, config, tokenizer_dir):
    """(pieces, token types, merges) of vocab_size entries."""
    size = config["vocab_size"]
    tok = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if tok["model"]["type"] != "BPE":
        sys.exit("qwen3moe_gguf: the tokenizer is not BPE")
    by_id = {i: (piece, gguf.TokenType.NORMAL) for piece, i in tok["model"]["vocab"].items()}
    for added in tok.get("added_tokens", []):
        text = added["content"]
        control = added.get("special", False) or (text.startswith("<|") and text.endswith("|>"))
        by_id[added["id"]] = (text, gguf.TokenType.CONTROL if control else gguf.TokenType.USER_DEFINED)
    if max(by_id) >= size:
        sys.exit(f"qwen3moe_gguf: the tokenizer has id {max(by_id)}, beyond vocab_size {size}")
    pieces, types = [], []
    for i in range(size):
        piece, kind = by_id.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED))
        pieces.append(piece)
        types.append(kind)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
    return pieces, types, merges


def main():
    args = parse_args()
    if args.gguf_py:
        sys.path.insert(0, str(args.gguf_py))
    import gguf  # llama.cpp's package

    config = json.loads((args.model / "config.json").read_text())
    if config.get("model_type") != "qwen3_moe":
        sys.exit(f"qwen3moe_gguf: model_type is {config.get('model_type')!r}, not 'qwen3_moe'")
    if config.get("mlp_only_layers") or config.get("decoder_sparse_step", 1) != 1:
        sys.exit("qwen3moe_gguf: llama.cpp's qwen3moe has a sparse MLP in every layer; this folder has dense ones")
    if not config.get("norm_topk_prob", False):
        sys.exit("qwen3moe_gguf: llama.cpp's qwen3moe renormalizes the top-k weights; this folder has norm_topk_prob false")
    if config.get("rope_scaling") or config.get("rope_parameters", {}).get("rope_type", "default") != "default":
        sys.exit("qwen3moe_gguf: only the default RoPE is written")
    files = sorted(args.model.glob("*.safetensors"))
    if len(files) != 1:
        sys.exit(f"qwen3moe_gguf: expected one .safetensors file in {args.model}, found {len(files)}")
    st = Safetensors(files[0])
    tensors = plan(config, st)

    head_dim = config.get("head_dim", config["hidden_size"] // config["num_attention_heads"])
    theta = config.get("rope_theta", config.get("rope_parameters", {}).get("rope_theta", 10000.0))
    w = gguf.GGUFWriter(args.out, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN3MOE])
    w.add_name(args.model.name)
    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config["num_key_value_heads"])
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_expert_count(config["num_experts"])
    w.add_expert_used_count(config["num_experts_per_tok"])
    w.add_expert_feed_forward_length(config["moe_intermediate_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if args.tokenizer:
        pieces, types, merges = vocabulary(gguf, config, args.tokenizer)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2")
        w.add_token_list(pieces)
        w.add_token_types(types)
        w.add_token_merges(merges)
        for add, key in ((w.add_bos_token_id, "bos_token_id"), (w.add_eos_token_id, "eos_token_id"),
                         (w.add_pad_token_id, "bos_token_id")):
            if isinstance(config.get(key), int) and config[key] < len(pieces):
                add(config[key])
        w.add_add_bos_token(False)
        vocab_note = "tokenizer.json"
    else:  # no vocabulary: llama.cpp makes vocab_size placeholder tokens
        w.add_tokenizer_model("none")
        w.add_vocab_size(config["vocab_size"])
        vocab_note = "none"

    kinds = {"BF16": (np.uint16, gguf.GGMLQuantizationType.BF16), "F32": (np.float32, gguf.GGMLQuantizationType.F32)}
    for name, shape, kind, _ in tensors:
        dtype, qtype = kinds[kind]
        w.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = 0
    for name, shape, kind, fetch in tensors:
        data = np.ascontiguousarray(fetch())
        assert list(data.shape) == list(shape), (name, data.shape, shape)
        w.write_tensor_data(data)
        total += data.nbytes
    w.close()
    print(f"wrote {args.out}: {len(tensors)} tensors, {total / 1e9:.3f} GB of weights, "
          f"vocabulary of {config['vocab_size']} ({vocab_note})")

    if args.verify:
        reader = gguf.GGUFReader(args.out)
        read = {t.name: t for t in reader.tensors}
        for name, shape, kind, fetch in tensors:
            t = read[name]
            want = fetch()
            got = np.asarray(t.data)
            if kind == "BF16":
                got = got.view(np.uint16) if got.dtype != np.uint16 else got
            if got.reshape(-1).shape != want.reshape(-1).shape or not np.array_equal(got.reshape(-1), want.reshape(-1)):
                sys.exit(f"qwen3moe_gguf: {name} differs from the safetensors values")
            if list(reversed([int(d) for d in t.shape])) != list(shape):
                sys.exit(f"qwen3moe_gguf: {name} has ne {list(t.shape)}, expected the reverse of {shape}")
        print(f"verified: all {len(tensors)} tensors equal the safetensors values")


if __name__ == "__main__":
    main()
