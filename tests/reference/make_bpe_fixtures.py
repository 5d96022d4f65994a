#!/usr/bin/env python3
"""Writes the oracle for maskgen's tokenizer.json (byte-level BPE) backend and a Qwen3 end-to-end run.

Layout written under --out:
  bpe_<name>.json            for each tokenizer folder (--tokenizer NAME=FOLDER holding tokenizer.json
                             and tokenizer_config.json, e.g. Qwen3 and Llama 3):
      texts                  the text set (plus texts given as raw bytes, hex, that are not UTF-8)
      encode                 per text: Hugging Face tokenizers' ids without and with special tokens,
                             and transformers' AutoTokenizer ids (its default: add_special_tokens)
      decode                 per id sequence: tokenizers' decode with and without skip_special_tokens,
                             and transformers' decode (which may clean up spaces); the sequences are the
                             texts' ids, their prefixes that end inside a character, and fixed lists
      special                transformers' bos/eos/pad/unk ids (pad unset is recorded as null)
      layouts                transformers' padded batches over the text set for a grid of padding and
                             truncation settings (a tokenizer with no pad gets pad = eos first, as
                             maskgen falls back)
  bpe_add_bos_rules.json     what transformers' AutoTokenizer adds to "Hello world" for Llama 3's
                             tokenizer.json with a ByteLevel or a TemplateProcessing (BOS) post-processor,
                             under add_bos_token / add_eos_token settings in tokenizer_config.json
  models/qwen3_vocab/        a tiny random Qwen3 with the real 151,936-token vocabulary, tied embeddings,
                             saved in bfloat16 as published Qwen3 checkpoints are
  reference/qwen3_vocab.json the Qwen3 tokenizer -> left-padded batch -> generate() -> decode pipeline of
                             transformers on that model, in float64 from the saved file: input ids and
                             mask, greedy new tokens, top-2 score margins, decoded texts, each prompt
                             alone, and last-position logits of the padded batch (top 64 per row)

Run with torch, transformers 5, tokenizers, sentencepiece and safetensors installed (CPU is enough):
  python3 tests/reference/make_bpe_fixtures.py --tokenizer qwen3=DIR --tokenizer llama3=DIR --out OUT
then copy OUT/bpe_*.json to tests/data/bpe/ and OUT/models, OUT/reference to tests/data/.
"""
import argparse
import itertools
import json
import os
import sys
import traceback
import warnings

import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model_fixtures as mmf  # noqa: E402  (float64 swaps and helpers of the model fixtures)

TEXTS = [
    "",
    "Hello world",
    "Once upon a time, there was a little girl named Lily.",
    # Chinese medical text
    "患者主诉头痛三天，伴有发热和咳嗽。血压 130/85 mmHg，体温 38.5°C。",
    "糖尿病患者应定期监测血糖水平，并遵医嘱服用二甲双胍 500mg，每日两次。",
    "高血压（hypertension）是心脑血管疾病的主要危险因素之一。",
    # Japanese, Korean, Arabic, Hindi with combining marks
    "東京の病院で診察を受けました。カタカナとひらがな、漢字。",
    "서울대학교병원 진료 예약을 했습니다. 한국어 텍스트입니다.",
    "مرحبا بالعالم! هذا نص عربي للاختبار، مع أرقام ١٢٣ و 456.",
    "नमस्ते दुनिया। यह हिन्दी पाठ है: क्षत्रिय, श्री, द्वारा, प्रेम।",
    # emoji with ZWJ sequences and skin tones
    "Emoji: 😀🎉👍🏽 and a family 👨‍👩‍👧‍👦! 🏳️‍🌈 👩🏿‍💻 🇯🇵",
    # digits
    "1234567890 12 345 6789 3.14159 2,718 -42 1e10 0x1F 12345678901234567890",
    "In 2024, 1,000,000 people paid $12.50 each (tel. 555-0123).",
    # contractions in any case
    "I'LL go, you'Re right, she'S here, we'VE done it, they'D know, I'm sure, DON'T, can't",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D",
    # whitespace
    "  two  spaces",
    "   leading and trailing spaces   ",
    "tabs\tand\t\tmore tabs\n\nnew lines\r\nwindows line end\r\n",
    "\n",
    " ",
    "     ",
    "\t\t\t",
    "a\n\n\n\nb \n c\r\r\nd",
    "end with space ",
    "end with newline\n",
    # NFC: decomposed accents
    "Cafe\u0301 re\u0301sume\u0301 n\u0303 A\u030a Ångström",
    "Café déjà vu, naïve façade, São Paulo, Łódź, Ærøskøbing.",
    # non-breaking and ideographic spaces
    "no\u00a0break\u00a0space and\u3000ideographic\u3000space\u2003em\u2009thin",
    "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ１２３",
    # code and URLs
    "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "https://example.com/path/to?query=1&b=%20x#frag and www.test.org/a_b-c",
    "user@example.com, C:\\Users\\name\\file.txt, /usr/local/bin",
    # special tokens written inside text
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text<|endoftext|>",
    "<think>\nreasoning here\n</think>\n\nThe answer is 42.",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>",
    "<|im_start <|endoftext| <|im_end|x <|begin_of_text| almost special",
    " <|endoftext|> spaced <|im_end|>",
    # symbols
    "She said: \"I can't go—it's 5 o'clock!\" (really?) [yes] {no} <tag> #hash @at ~tilde",
    "αβγ ΔΣΩ кириллица Привет мир ¿Qué tal? ¡Hola! ß ẞ ǅ ﬁ",
    "Zero\u200bwidth\u200cjoiners\u200d and \ufeffBOM, soft\u00adhyphen",
    "The quick brown fox jumps over the lazy dog. " * 6,
]

# Raw byte strings that are not valid UTF-8 (hex). The reference encodes Python's
# bytes.decode("utf-8", "replace"): every maximal invalid subpart becomes one U+FFFD.
BAD_UTF8 = [
    "ff",
    "48656c6c6fff776f726c64",       # Hello\xffworld
    "e4bd",                         # a 3-byte character cut after 2 bytes
    "e4bda0e5",                     # 你 then a cut character
    "c0af",                         # overlong '/'
    "eda080",                       # a UTF-16 surrogate
    "f4908080",                     # above U+10FFFF
    "80bf41",                       # lone continuation bytes
    "e4bd41e5a5bd",                 # cut character followed by 'A' and 好
]

PADDING_TEXTS = [1, 2, 3, 4, 8, 11]  # indices into TEXTS for the layout batches


def layout_settings():
    for side, padding, multiple, trunc, tside, specials in itertools.product(
            ["left", "right"], ["longest", "max_length"], [None, 8], [False, True], ["right", "left"],
            [True, False]):
        if not trunc and tside == "left":
            continue
        yield dict(padding_side=side, padding=padding, pad_to_multiple_of=multiple, truncation=trunc,
                   truncation_side=tside, add_special_tokens=specials,
                   max_length=16 if (padding == "max_length" or trunc) else None)


def hf_decode_tokenizers(tok, ids, skip):
    return tok.decode(ids, skip_special_tokens=skip)


def tokenizer_fixture(name, folder):
    out = {"name": name, "tokenizers_version": tokenizers.__version__,
           "transformers_version": transformers.__version__}
    raw = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tok = AutoTokenizer.from_pretrained(folder)
    out["load_warnings"] = [str(w.message) for w in caught]
    out["transformers_class"] = type(tok).__name__
    out["special"] = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                      "pad_token_id": tok.pad_token_id, "unk_token_id": tok.unk_token_id,
                      "bos_token": tok.bos_token, "eos_token": tok.eos_token, "pad_token": tok.pad_token,
                      "vocab_size_with_added": len(tok), "raw_vocab_size": raw.get_vocab_size(True)}
    texts = list(TEXTS)
    bad = [bytes.fromhex(h).decode("utf-8", "replace") for h in BAD_UTF8]
    out["texts"] = texts
    out["bad_utf8"] = [{"hex": h, "as_decoded": s} for h, s in zip(BAD_UTF8, bad)]
    enc = []
    for t in texts + bad:
        plain = raw.encode(t, add_special_tokens=False).ids
        special = raw.encode(t, add_special_tokens=True).ids
        tf = tok(t)["input_ids"]
        tf_plain = tok(t, add_special_tokens=False)["input_ids"]
        if tf_plain != plain:
            print(f"  {name}: transformers and tokenizers differ without specials on {t!r}: {tf_plain} {plain}")
        enc.append({"ids": plain, "ids_with_special": special, "transformers_ids": tf,
                    "transformers_ids_no_special": tf_plain})
    out["encode"] = enc
    # A batch call of tokenizers, to check it equals one by one.
    batch = [e.ids for e in raw.encode_batch(texts, add_special_tokens=False)]
    if batch != [e["ids"] for e in enc[: len(texts)]]:
        print(f"PROBLEM: {name}: encode_batch differs from encode")

    # Decoding: each text's ids, every prefix of a few texts (prefixes end inside characters),
    # and hand-made lists (special ids, ids of multi-byte pieces alone).
    seqs = [e["ids_with_special"] for e in enc]
    for i in (3, 6, 10):
        ids = enc[i]["ids"]
        seqs += [ids[:k] for k in range(1, len(ids))]
    n = raw.get_vocab_size(True)
    seqs += [[k] for k in range(0, n, 997)]
    seqs += [list(range(n - 30, n)), [0, 1, 2], list(range(200, 260))]
    dec = []
    for ids in seqs:
        dec.append({"ids": ids,
                    "skip": raw.decode(ids, skip_special_tokens=True),
                    "keep": raw.decode(ids, skip_special_tokens=False),
                    "transformers_skip": tok.decode(ids, skip_special_tokens=True),
                    "transformers_keep": tok.decode(ids, skip_special_tokens=False)})
    out["decode"] = dec

    # Padding layouts as transformers lays them out.
    pad_fallback = tok.pad_token_id is None
    if pad_fallback:
        tok.pad_token = tok.eos_token
    out["layout_pad_token_id"] = tok.pad_token_id
    out["layout_pad_is_eos_fallback"] = pad_fallback
    batch_texts = [texts[i] for i in PADDING_TEXTS]
    out["layout_texts"] = PADDING_TEXTS
    layouts = []
    for s in layout_settings():
        tok.padding_side = s["padding_side"]
        tok.truncation_side = s["truncation_side"]
        kw = dict(padding=s["padding"], truncation=s["truncation"], add_special_tokens=s["add_special_tokens"])
        if s["max_length"] is not None:
            kw["max_length"] = s["max_length"]
        if s["pad_to_multiple_of"] is not None:
            kw["pad_to_multiple_of"] = s["pad_to_multiple_of"]
        try:
            r = tok(batch_texts, **kw)
            layouts.append(dict(s, input_ids=r["input_ids"], attention_mask=r["attention_mask"]))
        except Exception as e:  # noqa: BLE001  (recorded: maskgen must refuse the same settings)
            layouts.append(dict(s, error=f"{type(e).__name__}: {e}"))
    out["layouts"] = layouts
    return out, tok


TEMPLATE_BOS = {"type": "Sequence", "processors": [
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
    {"type": "TemplateProcessing",
     "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
     "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
              {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
     "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                              "tokens": ["<|begin_of_text|>"]}}}]}


def add_bos_rules(llama3_folder):
    """Which of tokenizer.json's post-processor and tokenizer_config.json's add_bos_token decides."""
    import tempfile
    cases = {"bytelevel_add_bos_true": (None, {"add_bos_token": True}),
             "bytelevel_add_eos_true": (None, {"add_eos_token": True}),
             "template_no_flag": (TEMPLATE_BOS, {}),
             "template_add_bos_false": (TEMPLATE_BOS, {"add_bos_token": False}),
             "template_add_eos_true": (TEMPLATE_BOS, {"add_eos_token": True})}
    out = {"transformers_version": transformers.__version__, "text": "Hello world",
           "template_post_processor": TEMPLATE_BOS}
    for name, (post, extra) in cases.items():
        d = tempfile.mkdtemp()
        with open(os.path.join(llama3_folder, "tokenizer.json")) as f:
            j = json.load(f)
        if post is not None:
            j["post_processor"] = post
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            json.dump(j, f)
        with open(os.path.join(llama3_folder, "tokenizer_config.json")) as f:
            c = json.load(f)
        c.update(extra)
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(c, f)
        tok = AutoTokenizer.from_pretrained(d)
        out[name] = {"config": extra, "template": post is not None,
                     "default": tok(out["text"])["input_ids"],
                     "no_special": tok(out["text"], add_special_tokens=False)["input_ids"]}
    print(f"add_bos rules: {json.dumps(out)}")
    return out


# ----------------------------------------------------------------------------------------------
# A tiny random Qwen3 with the real vocabulary, end to end
# ----------------------------------------------------------------------------------------------
QWEN3_PROMPTS = [
    "患者主诉头痛三天，伴有发热和咳嗽。",
    "Once upon a time",
    "The capital of France is",
    "糖尿病患者应定期监测血糖水平，并遵医嘱服用二甲双胍。请问需要注意什么？",
]
QWEN3_MAX_NEW = 12


def qwen3_end_to_end(tok, out_dir):
    config = Qwen3Config(vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
                         max_position_embeddings=512, tie_word_embeddings=True, attention_bias=False,
                         use_sliding_window=False, sliding_window=None,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                         bos_token_id=151643, eos_token_id=151645, pad_token_id=None)
    torch.manual_seed(106)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(torch.float64).eval()
    mmf.reinit(model, 106)
    folder = os.path.join(out_dir, "models", "qwen3_vocab")
    os.makedirs(folder, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(folder)
    # The tests read the tokenizer from the shared Qwen3 folder; the model folder holds weights only.
    model = mmf.load(folder)  # float64 from the bf16 file: RoPE buffers recomputed, not rounded
    f64 = mmf.Float64Math(model)
    f64.enable()
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    print(f"qwen3_vocab config.json: {json.dumps(cfg, sort_keys=True)}")
    print(f"qwen3_vocab files: {sorted(os.listdir(folder))}")

    tok.padding_side = "left"
    enc = tok(QWEN3_PROMPTS, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    pad = tok.pad_token_id
    eos = tok.eos_token_id
    ref = {"model": "qwen3_vocab", "transformers_version": transformers.__version__,
           "prompts": QWEN3_PROMPTS, "pad_token_id": pad, "eos_token_id": [eos],
           "input_ids": ids.tolist(), "attention_mask": mask.tolist(), "max_new_tokens": QWEN3_MAX_NEW}
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=mmf.positions(mask),
                       use_cache=False).logits[:, -1].to(torch.float64)     # left padded: last column
    top = logits.topk(64, dim=-1)
    ref["last_logits_top64"] = {"ids": top.indices.tolist(), "values": top.values.tolist()}
    g = mmf.generate(model, ids.tolist(), mask.tolist(), QWEN3_MAX_NEW, [eos], pad)
    ref["greedy"] = g
    new = torch.tensor(g["sequences"])
    ref["decoded"] = tok.batch_decode(new, skip_special_tokens=True)
    ref["decoded_keep_special"] = tok.batch_decode(new, skip_special_tokens=False)
    alone = []
    for p in QWEN3_PROMPTS:
        one = tok([p])["input_ids"]
        r = mmf.generate(model, one, [[1] * len(one[0])], QWEN3_MAX_NEW, [eos], pad)
        alone.append({"input_ids": one[0], "greedy": r["sequences"][0]})
    ref["alone"] = alone
    same = [mmf.strip_after_eos(a["greedy"], [eos]) == mmf.strip_after_eos(b, [eos])
            for a, b in zip(alone, g["sequences"])]
    ref["batched_equals_alone"] = same
    print(f"qwen3_vocab: greedy {g['sequences']}\n  decoded {ref['decoded']}\n  equals alone {same}")
    if not all(same):
        print("PROBLEM: qwen3_vocab batched greedy differs from alone")
    return ref


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", action="append", required=True, help="NAME=FOLDER")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    os.makedirs(os.path.join(args.out, "reference"), exist_ok=True)
    print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, torch {torch.__version__}")
    failed = False
    toks = {}
    for spec in args.tokenizer:
        name, folder = spec.split("=", 1)
        try:
            fx, tok = tokenizer_fixture(name, folder)
            toks[name] = tok
            mmf.write_json(os.path.join(args.out, f"bpe_{name}.json"), fx)
            print(f"{name}: {fx['transformers_class']} special {fx['special']} warnings {fx['load_warnings']}")
            print(f"  first ids {[e['transformers_ids'] for e in fx['encode'][:3]]}")
            print(f"  layouts with errors: {sum('error' in l for l in fx['layouts'])} of {len(fx['layouts'])}")
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            failed = True
    folders = dict(s.split("=", 1) for s in args.tokenizer)
    if "llama3" in folders:
        try:
            mmf.write_json(os.path.join(args.out, "bpe_add_bos_rules.json"), add_bos_rules(folders["llama3"]))
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            failed = True
    if "qwen3" in toks:
        try:
            folder = dict(s.split("=", 1) for s in args.tokenizer)["qwen3"]
            tok = AutoTokenizer.from_pretrained(folder)
            mmf.write_json(os.path.join(args.out, "reference", "qwen3_vocab.json"), qwen3_end_to_end(tok, args.out))
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            failed = True
    if failed or mmf.PROBLEMS:
        print("PROBLEMS:", mmf.PROBLEMS)
        sys.exit(1)
    print("all done")


if __name__ == "__main__":
    main()
