#!/usr/bin/env python3
"""Writes tests/data/tokenizer_fixtures.json: the oracle for maskgen's tokenizer tests.

For each SentencePiece model it records
  * SentencePiece's own ids (EncodeAsIds, no special tokens) for a varied text set: these are the
    truth for maskgen's ids;
  * Hugging Face transformers' padded layouts (input_ids, attention_mask) for many padding and
    truncation settings, computed over those same SentencePiece ids, so that the layout is checked
    independently of transformers' own (sometimes different) whitespace handling.

Run with transformers 5, sentencepiece and torch installed:
  python3 tests/reference/make_tokenizer_fixtures.py --model llama2=PATH/tokenizer.model \
      --model stories260K=PATH/tokenizer.model --out tests/data/tokenizer_fixtures.json
"""
import argparse
import itertools
import json
import os
import tempfile

import sentencepiece as spm
import transformers
from transformers import AutoTokenizer

TEXTS = [
    "Once upon a time, there was a little girl named Lily.",
    "",
    "患者主诉头痛三天，伴有发热和咳嗽。血压 130/85 mmHg，体温 38.5°C。",
    "糖尿病患者应定期监测血糖水平，并遵医嘱服用二甲双胍 500mg，每日两次。",
    "東京の病院で診察を受けました。 서울대학교병원 진료 예약",
    "Emoji: 😀🎉👍🏽 and a family 👨‍👩‍👧‍👦!",
    "  two  spaces",
    "   leading and trailing spaces   ",
    "tabs\tand\t\tmore tabs\n\nnew lines\r\nwindows line end",
    "\n",
    "Café déjà vu, naïve façade, Ångström, São Paulo, Łódź, Ærøskøbing.",
    "Numbers: 3.14159, 2,718, -42, 1e10, 0x1F, 12345678901234567890.",
    "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ１２３ and no\u00a0break space",
    "A",
    "The quick brown fox jumps over the lazy dog. " * 6,
    "She said: \"I can't go—it's 5 o'clock!\" (really?) [yes] {no} <tag> #hash @at ~tilde",
]


def hf_tokenizer(model_path, add_eos):
    """AutoTokenizer over a folder holding tokenizer.model and a Llama tokenizer_config.json."""
    folder = tempfile.mkdtemp()
    os.symlink(os.path.abspath(model_path), os.path.join(folder, "tokenizer.model"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": add_eos,
                   "legacy": True, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, f)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.pad_token = tok.eos_token  # what maskgen falls back to; only the mask says what is padding
    return tok


def settings():
    """The grid of layouts: (padding, max_length kind, multiple, truncation, sides, specials)."""
    for padding_side, padding, multiple, trunc, add_bos, add_eos in itertools.product(
            ["left", "right"], ["longest", "max_length"], [None, 8],
            [None, ("right", 12), ("left", 12), ("left", 3)], [True, False], [False, True]):
        if not add_bos and add_eos:
            continue
        yield dict(padding_side=padding_side, padding=padding, pad_to_multiple_of=multiple,
                   truncation=trunc is not None, truncation_side=trunc[0] if trunc else "right",
                   trunc_length=trunc[1] if trunc else None, add_bos=add_bos, add_eos=add_eos)


def set_specials(tok, sp, s):
    """Applies the settings to transformers' tokenizer and checks that it honours them."""
    tok.truncation_side = s["truncation_side"]
    tok.add_bos_token = s["add_bos"]
    tok.add_eos_token = s["add_eos"]
    probe = tok("A")["input_ids"]
    expected = [tok.bos_token_id] * s["add_bos"] + sp.EncodeAsIds("A") + [tok.eos_token_id] * s["add_eos"]
    if list(probe) != expected:
        raise RuntimeError(f"transformers ignored add_bos/add_eos: {probe} != {expected}")


def layout_call(tok, sp, texts, s, max_length):
    """transformers end to end: its own __call__ with truncation and padding."""
    set_specials(tok, sp, s)
    return tok(texts, padding=s["padding"], truncation=s["truncation"], max_length=max_length,
               pad_to_multiple_of=s["pad_to_multiple_of"], padding_side=s["padding_side"])


def layout_pad(tok, sp, sp_ids, s, max_length):
    """transformers' pad() over SentencePiece's ids with BOS/EOS (no truncation)."""
    set_specials(tok, sp, s)
    rows = [[tok.bos_token_id] * s["add_bos"] + ids + [tok.eos_token_id] * s["add_eos"] for ids in sp_ids]
    return tok.pad({"input_ids": rows}, padding=s["padding"], max_length=max_length,
                   pad_to_multiple_of=s["pad_to_multiple_of"], padding_side=s["padding_side"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="name=path/to/tokenizer.model")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    fixture = {"generator": "tests/reference/make_tokenizer_fixtures.py",
               "transformers_version": transformers.__version__,
               "sentencepiece_version": spm.__version__, "texts": TEXTS, "tokenizers": {}}
    for spec in args.model:
        name, path = spec.split("=", 1)
        sp = spm.SentencePieceProcessor(model_file=path)
        sp_ids = [sp.EncodeAsIds(t) for t in TEXTS]
        entry = {"vocab_size": sp.GetPieceSize(), "bos_id": sp.bos_id(), "eos_id": sp.eos_id(),
                 "pad_id": sp.pad_id(), "unk_id": sp.unk_id(), "ids": sp_ids, "cases": []}
        tok_plain, tok_eos = hf_tokenizer(path, False), hf_tokenizer(path, True)
        # Where transformers' own ids agree with SentencePiece's (for the record).
        entry["transformers_ids_agree"] = [
            tok_plain(t, add_special_tokens=False)["input_ids"] == ids for t, ids in zip(TEXTS, sp_ids)]
        agree = [i for i, ok in enumerate(entry["transformers_ids_agree"]) if ok]
        # "call" batches go through transformers end to end (texts whose ids agree only); "pad"
        # batches use every text, through pad() over SentencePiece's ids, without truncation.
        longest_agreeing = max(agree, key=lambda i: len(sp_ids[i]))
        batches = [("call", agree), ("call", agree[:4] + [1]), ("call", [longest_agreeing]),
                   ("pad", list(range(len(TEXTS)))), ("pad", [2, 5, 6, 7, 8, 10])]
        for s in settings():
            for mode, rows_idx in batches:
                if mode == "pad" and s["truncation"]:
                    continue
                ids = [sp_ids[i] for i in rows_idx]
                n_special = int(s["add_bos"]) + int(s["add_eos"])
                longest = max(len(x) for x in ids) + n_special
                if s["truncation"]:
                    max_length = s["trunc_length"]
                else:  # without truncation max_length must hold every row; leave a little slack
                    max_length = longest + 3 if s["padding"] == "max_length" else None
                tok = tok_eos if s["add_eos"] else tok_plain
                case = {"mode": mode, "settings": s, "rows": rows_idx, "max_length": max_length}
                try:
                    if mode == "call":
                        out = layout_call(tok, sp, [TEXTS[i] for i in rows_idx], s, max_length)
                    else:
                        out = layout_pad(tok, sp, ids, s, max_length)
                except Exception as e:  # recorded, so a failure of the oracle is visible
                    case["error"] = f"{type(e).__name__}: {e}"
                    entry["cases"].append(case)
                    continue
                case["pad_token_id"] = tok.pad_token_id
                case["input_ids"] = [list(map(int, r)) for r in out["input_ids"]]
                case["attention_mask"] = [list(map(int, r)) for r in out["attention_mask"]]
                entry["cases"].append(case)
        fixture["tokenizers"][name] = entry
        n_err = sum("error" in c for c in entry["cases"])
        print(f"{name}: {len(entry['cases'])} layout cases ({n_err} errors), "
              f"{sum(entry['transformers_ids_agree'])}/{len(TEXTS)} texts where transformers' ids agree")
    with open(args.out, "w") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
