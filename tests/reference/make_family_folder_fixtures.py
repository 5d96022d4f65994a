#!/usr/bin/env python3
"""Model folders as users download them, one a family, for `batch_generate --model`: a tiny random
model of the family whose vocabulary is a real tokenizer's, in bfloat16, and what transformers'
generate() (greedy) continues two prompts with, decoded by the Hugging Face tokenizer.

  python3 tests/reference/make_family_folder_fixtures.py --tokenizers DIR --out DIR

--tokenizers holds gemma3/ (Gemma 3's tokenizer.json and tokenizer_config.json, from
../shared/tokenizers/gemma3.tar.xz), llama2-json/, llama3/ and qwen3/ as in ../shared/tokenizers.
Writes models/<family>_vocab/{config.json, generation_config.json, model.safetensors} (no tokenizer
files: tests copy them from ../shared) and reference/<family>_vocab.json with, per prompt, the ids
the tokenizer gives (special tokens added as the tokenizer config says), the new ids and their text
decoded after the prompt (decode(prompt + new) minus decode(prompt), special tokens skipped), which
is what batch_generate prints after "prompt -> ".
"""
import argparse
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model_fixtures as mmf  # noqa: E402

PROMPTS = ["The capital of France is", "糖尿病患者应定期监测血糖水平。"]
MAX_NEW = 8
SMALL = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
             max_position_embeddings=256, rms_norm_eps=1e-6)  # small: the embedding is vocab x 16


def families():
    from transformers import Gemma2Config, Gemma3TextConfig, GraniteConfig, Olmo2Config, Phi3Config
    return [
        ("gemma2", "gemma3", lambda v, t: Gemma2Config(vocab_size=v, head_dim=8, query_pre_attn_scalar=8,
                                                        sliding_window=4, bos_token_id=t.bos_token_id,
                                                        eos_token_id=t.eos_token_id, pad_token_id=t.pad_token_id,
                                                        **SMALL)),
        ("gemma3_text", "gemma3", lambda v, t: Gemma3TextConfig(vocab_size=v, head_dim=8, query_pre_attn_scalar=8,
                                                                 sliding_window=4, sliding_window_pattern=2,
                                                                 bos_token_id=t.bos_token_id,
                                                                 eos_token_id=t.eos_token_id,
                                                                 pad_token_id=t.pad_token_id, **SMALL)),
        ("phi3", "llama2-json", lambda v, t: Phi3Config(vocab_size=v, bos_token_id=1, eos_token_id=2, pad_token_id=None,
                                                         **SMALL)),
        ("olmo2", "qwen3", lambda v, t: Olmo2Config(vocab_size=v, bos_token_id=None, eos_token_id=t.eos_token_id,
                                                     pad_token_id=None, tie_word_embeddings=True, **SMALL)),
        ("granite", "llama3", lambda v, t: GraniteConfig(vocab_size=v, embedding_multiplier=12.0, residual_multiplier=0.22,
                                                          attention_multiplier=0.25, logits_scaling=4.0,
                                                          bos_token_id=t.bos_token_id, eos_token_id=t.eos_token_id,
                                                          pad_token_id=None, tie_word_embeddings=True, **SMALL)),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizers", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    os.makedirs(os.path.join(args.out, "reference"), exist_ok=True)
    print(f"transformers {transformers.__version__}")
    for seed, (name, tok_name, make_config) in enumerate(families(), start=120):
        tok = AutoTokenizer.from_pretrained(os.path.join(args.tokenizers, tok_name))
        vocab = len(tok)
        config = make_config(vocab, tok)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").to(torch.float64).eval()
        mmf.reinit(model, seed)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if name.startswith("gemma") and p.ndim == 1 and not pname.endswith("bias"):
                    p.data -= 1.0
        folder = os.path.join(args.out, "models", name + "_vocab")
        model.to(torch.bfloat16).save_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
        rows = []
        for prompt in PROMPTS:
            ids = tok(prompt)["input_ids"]
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=MAX_NEW, pad_token_id=tok.pad_token_id or 0,
                                 output_scores=True, return_dict_in_generate=True)
            new = out.sequences[0, len(ids):].tolist()
            scores = torch.stack(out.scores, 1)[0].double()
            top2 = scores.topk(2, -1).values
            margin = (top2[:, 0] - top2[:, 1]).min().item()
            before = tok.decode(ids, skip_special_tokens=True)
            whole = tok.decode(ids + new, skip_special_tokens=True)
            if not whole.startswith(before):
                mmf.problem(f"{name}: decode(prompt + new) does not start with decode(prompt)")
            text = whole[len(before):]
            print(f"  {name} ({tok_name}, vocab {vocab}): {prompt!r} -> {text!r}  ids {ids} new {new} margin {margin:.3g}")
            if margin < 1e-4:
                mmf.problem(f"{name}: greedy near tie ({margin:.3g})")
            rows.append({"prompt": prompt, "input_ids": ids, "new_ids": new, "text": text,
                         "line": f"{prompt} -> {text}", "smallest_top2_margin": margin})
        ref = {"model": name + "_vocab", "tokenizer": tok_name, "vocab_size": vocab, "max_new_tokens": MAX_NEW,
               "transformers_version": transformers.__version__,
               "note": "float32 generate() on the bfloat16 file; greedy, alone; text decoded after the prompt",
               "rows": rows}
        mmf.write_json(os.path.join(args.out, "reference", name + "_vocab.json"), ref)
    if mmf.PROBLEMS:
        print(f"{len(mmf.PROBLEMS)} PROBLEMS:", *mmf.PROBLEMS, sep="\n  ")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
