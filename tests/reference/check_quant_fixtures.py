#!/usr/bin/env python3
"""Re-derives the "dequantized_checksum" of every quantized fixture from its folder, with the Python
standard library only (no torch, no numpy), element by element from the layouts documented in
make_quant_fixtures.py: a second, independent reading of the packed tensors that must agree with
the one the oracle was computed from. Also checks that each reference's "tensors" list is the file's.

  python3 tests/reference/check_quant_fixtures.py [--data tests/data]

Exits 1 on any mismatch.
"""
import argparse
import array
import json
import math
import os
import struct
import sys

FP4 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
DTYPES = {"I32": "int32", "I64": "int64", "F16": "float16", "BF16": "bfloat16", "U8": "uint8",
          "F8_E4M3": "float8_e4m3fn", "F32": "float32"}


def e4m3(u):
    sign = -1.0 if u & 0x80 else 1.0
    e, m = (u >> 3) & 15, u & 7
    if e == 15 and m == 7:
        return float("nan")
    return sign * (m / 8.0) * 2.0 ** -6 if e == 0 else sign * (1 + m / 8.0) * 2.0 ** (e - 7)


def read_safetensors(path):
    """{name: (shape, flat list of Python numbers, safetensors dtype)}; little-endian host assumed."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header, base = json.loads(data[8:8 + n]), 8 + n
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        s, e = v["data_offsets"]
        raw, dt = data[base + s: base + e], v["dtype"]
        if dt in ("I32", "I64", "F32"):
            vals = array.array({"I32": "i", "I64": "q", "F32": "f"}[dt], raw).tolist()
        elif dt == "F16":
            vals = [x[0] for x in struct.iter_unpack("<e", raw)]
        elif dt == "BF16":
            vals = [struct.unpack("<f", struct.pack("<I", u << 16))[0] for u in array.array("H", raw)]
        elif dt == "U8":
            vals = list(raw)
        elif dt == "F8_E4M3":
            vals = [e4m3(u) for u in raw]
        else:
            raise ValueError(f"{name}: dtype {dt}")
        out[name] = (v["shape"], vals, dt)
    return out


def field(word, j, bits):
    """Value j of a packed int32 word: bits bits * j .. bits * (j + 1) - 1."""
    return ((word & 0xFFFFFFFF) >> (bits * j)) & ((1 << bits) - 1)


def rows(t):
    (r, c), vals = t[0], t[1]
    return [vals[i * c:(i + 1) * c] for i in range(r)]


def awq(T, p, out, k, g):
    qw, qz, s = rows(T[p + ".qweight"]), rows(T[p + ".qzeros"]), rows(T[p + ".scales"])

    def code(words, o):                  # column o: value AWQ_ORDER.index(o % 8) of word o // 8
        return field(words[o // 8], AWQ_ORDER.index(o % 8), 4)
    return [[(code(qw[i], o) - code(qz[i // g], o)) * s[i // g][o] for i in range(k)] for o in range(out)]


def gptq(T, p, out, k, bits):
    qw, qz, s = rows(T[p + ".qweight"]), rows(T[p + ".qzeros"]), rows(T[p + ".scales"])
    gi, per = T[p + ".g_idx"][1], 32 // bits
    return [[(field(qw[i // per][o], i % per, bits) - (field(qz[gi[i]][o // per], o % per, bits) + 1)) * s[gi[i]][o]
             for i in range(k)] for o in range(out)]


def ct_packed(T, p, out, k, bits):
    wp, ws = rows(T[p + ".weight_packed"]), rows(T[p + ".weight_scale"])
    if T[p + ".weight_shape"][1] != [out, k]:
        raise ValueError(f"{p}: weight_shape {T[p + '.weight_shape'][1]}")
    per, off, n = 32 // bits, 1 << (bits - 1), k // len(ws[0])
    zp = rows(T[p + ".weight_zero_point"]) if p + ".weight_zero_point" in T else None

    def z(o, g):
        return 0 if zp is None else field(zp[o // per][g], o % per, bits) - off
    return [[(field(wp[o][i // per], i % per, bits) - off - z(o, i // n)) * ws[o][i // n] for i in range(k)]
            for o in range(out)]


def ct_fp8(T, p, out, k):
    w, (shape, s, _) = rows(T[p + ".weight"]), T[p + ".weight_scale"]
    return [[w[o][i] * (s[0] if shape == [1] else s[o]) for i in range(k)] for o in range(out)]


def fp8_block(T, p, out, k):
    w, s = rows(T[p + ".weight"]), rows(T[p + ".weight_scale_inv"])
    return [[w[o][i] * s[o // 128][i // 128] for i in range(k)] for o in range(out)]


def mxfp4(T, p):
    (E, R, G, B), blocks, _ = T[p + "_blocks"]
    scales = T[p + "_scales"][1]
    vals = []
    for idx in range(E * R * G):
        scale = 2.0 ** (scales[idx] - 127)
        for b in range(B):
            byte = blocks[idx * B + b]
            vals += [FP4[byte & 15] * scale, FP4[byte >> 4] * scale]
    return vals


def dequantized(T, qc, p, shape):
    if qc["quant_method"] == "mxfp4":
        return mxfp4(T, p)
    out, k = shape
    method = qc["quant_method"]
    if method == "awq":
        w = awq(T, p, out, k, qc["group_size"])
    elif method == "gptq":
        w = gptq(T, p, out, k, qc["bits"])
    elif method == "fp8":
        w = fp8_block(T, p, out, k)
    elif qc["format"] == "pack-quantized":
        w = ct_packed(T, p, out, k, qc["config_groups"]["group_0"]["weights"]["num_bits"])
    else:
        w = ct_fp8(T, p, out, k)
    return [x for r in w for x in r]


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
    args = ap.parse_args()
    bad, checked = 0, 0
    for f in sorted(os.listdir(os.path.join(args.data, "reference"))):
        ref = json.load(open(os.path.join(args.data, "reference", f)))
        if "dequantized_checksum" not in ref:
            continue
        name = f[:-len(".json")]
        folder = os.path.join(args.data, "models", name)
        qc = json.load(open(os.path.join(folder, "config.json")))["quantization_config"]
        T = read_safetensors(os.path.join(folder, "model.safetensors"))
        for p, want in ref["dequantized_checksum"].items():
            flat = dequantized(T, qc, p, want["shape"])
            got = {"sum": math.fsum(flat), "sum_of_squares": math.fsum(x * x for x in flat),
                   "weighted_sum": math.fsum(x * ((n % 251) + 1) / 251.0 for n, x in enumerate(flat))}
            ok = all(close(got[key], want[key]) for key in got)
            bad += not ok
            checked += 1
            print(f"{name:22s} {p:42s} " + " ".join(f"{key} {got[key]:.12g}" for key in got)
                  + ("" if ok else f"  MISMATCH (reference {want})"))
        listed = {t["name"]: (t["shape"], t["dtype"]) for t in ref["tensors"]}
        filed = {n: (v[0], DTYPES[v[2]]) for n, v in T.items()}
        if listed != filed:
            bad += 1
            print(f"{name}: the reference's tensor list differs from model.safetensors")
    print(f"{checked} checksums, {bad} mismatches")
    sys.exit(1 if bad or not checked else 0)


if __name__ == "__main__":
    main()
