#!/usr/bin/env python3
"""Writes the seed corpora of the safetensors_header, model_config, generate_args and
server_request harnesses into tests/fuzz/corpus/<harness>/ (Python's standard library only):

    python3 tests/fuzz/make_seed_corpora.py
"""
import json
import random
import struct
from pathlib import Path

root = Path(__file__).resolve().parents[2]
corpus = root / "tests" / "fuzz" / "corpus"


def write(harness, name, data):
    d = corpus / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))


def safetensors(header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


# safetensors: valid files of each dtype, metadata, and the classic ways to be wrong.
f32 = struct.pack("<6f", *[0.5 * i for i in range(6)])
write("safetensors_header", "f32", safetensors({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, f32))
write("safetensors_header", "mixed", safetensors({
    "__metadata__": {"format": "pt"},
    "a": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]},
    "b": {"dtype": "F16", "shape": [2, 2], "data_offsets": [8, 16]},
    "c": {"dtype": "I8", "shape": [], "data_offsets": [16, 17]},
}, bytes(range(17))))
# The packed tensors of quantized checkpoints: GPTQ's int32 codes, zeros and g_idx beside float16
# scales, MXFP4's uint8 blocks, FP8 weights, an int64 shape.
write("safetensors_header", "packed", safetensors({
    "m.qweight": {"dtype": "I32", "shape": [2, 4], "data_offsets": [0, 32]},
    "m.qzeros": {"dtype": "I32", "shape": [1, 1], "data_offsets": [32, 36]},
    "m.scales": {"dtype": "F16", "shape": [1, 4], "data_offsets": [36, 44]},
    "m.g_idx": {"dtype": "I32", "shape": [16], "data_offsets": [44, 108]},
    "e.blocks": {"dtype": "U8", "shape": [2, 16], "data_offsets": [108, 140]},
    "f.weight": {"dtype": "F8_E4M3", "shape": [4, 4], "data_offsets": [140, 156]},
    "f.weight_shape": {"dtype": "I64", "shape": [2], "data_offsets": [156, 172]},
}, bytes(range(172))))
write("safetensors_header", "empty", safetensors({}, b""))
write("safetensors_header", "overlap", safetensors({
    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
}, bytes(12)))
write("safetensors_header", "huge_shape", safetensors({"a": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 4]}}, bytes(4)))
write("safetensors_header", "length_past_end", struct.pack("<Q", 1 << 50) + b"{}")
write("safetensors_header", "truncated", safetensors({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, f32)[:-5])

# model_config: the committed folders' config.json, some with their generation_config.json.
for folder in sorted((root / "tests" / "data" / "models").iterdir()) + [root / "models" / "sort-reverse"]:
    config = folder / "config.json"
    if not config.exists():
        continue
    data = config.read_bytes()
    generation = folder / "generation_config.json"
    if generation.exists():
        data += b"\x01" + generation.read_bytes()
    write("model_config", folder.name, data)

# generate_args: bytes read as shapes, ids, mask values and settings.
rng = random.Random(13)
for i in range(12):
    write("generate_args", f"seed{i:02d}", bytes(rng.randrange(256) for _ in range(rng.randrange(8, 120))))

# server_request: a first byte (even: /v1/completions, odd: /v1/chat/completions), then a body.
bodies = [
    (0, {"prompt": "sort 3 1 2 =", "max_tokens": 8, "temperature": 0}),
    (0, {"prompt": [1, 5, 6, 7], "max_tokens": 4, "stream": True, "stop": ["\n", "="], "n": 2, "seed": 3}),
    (0, {"prompt": ["reverse 1 2 ="], "temperature": 0.7, "top_p": 0.9, "top_k": 5, "min_p": 0.1, "ignore_eos": True}),
    (0, {"prompt": "sort 1 =", "logprobs": 2}),
    (1, {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 3}),
    (1, {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "chat_template_kwargs": {"enable_thinking": False}}),
]
for i, (kind, body) in enumerate(bodies):
    write("server_request", f"body{i}", bytes([kind]) + json.dumps(body).encode())
print("wrote", ", ".join(sorted({p.parent.name for p in corpus.glob('*/*')})))
