#!/usr/bin/env python3
"""Makes maskgen's bundled demo model, models/sort-reverse: a small Llama that sorts or reverses
lists of digits, with its own SentencePiece tokenizer.

    python3 tools/train_demo_model.py --out models/sort-reverse          # GPU if there is one
    python3 tools/train_demo_model.py --out /tmp/m --device cpu --steps 300   # a quick CPU try

Needs torch, sentencepiece and safetensors (Debian: python3-torch; pip: sentencepiece,
safetensors). transformers is optional: when present, the script checks that transformers'
LlamaForCausalLM computes the same logits from the written folder.

The task. A prompt is a word and a list of 1 to 20 digits; the answer is the list sorted or
reversed, then the end of sequence:

    "sort 5 2 9 2 ="     ->  " 2 2 5 9"
    "reverse 5 2 9 2 ="  ->  " 2 9 2 5"

so the answer to any prompt can be checked, and a batch holds prompts of very different lengths
(4 to 23 tokens with BOS): the left-padded rows of a batch carry up to 19 pads, which a run
without the attention mask attends to.

Steps, all with fixed seeds (random.Random(seed), torch.manual_seed(seed)):
1. A corpus of 200,000 random lines "prompt answer".
2. A SentencePiece BPE tokenizer trained on it (ids: <unk> 0, <s> 1, </s> 2, <pad> 3).
3. A Llama-architecture model in plain PyTorch (RMSNorm, RoPE, grouped-query attention, SwiGLU,
   tied embeddings), trained on fresh random examples with the loss on the answer and EOS only.
   Batches are right-padded, so with causal attention no real token ever sees a pad in training.
4. Greedy decoding of 2,000 held-out prompts in left-padded batches, with the mask, to report
   accuracy; and the same batches without the mask, to show what goes wrong.
5. A Hugging Face folder: config.json, model.safetensors (float32), tokenizer.model.

The committed model was made by `--seed 0` with the default arguments on one NVIDIA H200; the
run took 5.0 minutes (training 4.7: 8000 steps of 512 examples). See the summary it prints (also written as train_log.json).
"""

import argparse
import json
import math
import os
import random
import tempfile
import time

import sentencepiece as spm
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

TASKS = ("sort", "reverse")
MAX_ITEMS = 20


def make_example(rng):
    task = rng.choice(TASKS)
    items = [rng.randint(0, 9) for _ in range(rng.randint(1, MAX_ITEMS))]
    answer = sorted(items) if task == "sort" else items[::-1]
    return f"{task} {' '.join(map(str, items))} =", " " + " ".join(map(str, answer))


def expected_answer(prompt):
    words = prompt.split()
    items = [int(w) for w in words[1:-1]]
    out = sorted(items) if words[0] == "sort" else items[::-1]
    return " ".join(map(str, out))


def train_tokenizer(rng, folder, seed):
    if hasattr(spm, "set_random_generator_seed"):
        spm.set_random_generator_seed(seed)
    lines = [p + a for p, a in (make_example(rng) for _ in range(200_000))]
    prefix = os.path.join(folder, "tokenizer")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=prefix, model_type="bpe", vocab_size=48,
        hard_vocab_limit=False, character_coverage=1.0, normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, num_threads=1, minloglevel=2)
    return spm.SentencePieceProcessor(model_file=prefix + ".model"), prefix + ".model"


# ----------------------------------------------------------------------------------------------
# The model: the Llama architecture as transformers' LlamaForCausalLM computes it.

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, h, kv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.h, self.kv, self.hd = h, kv, hd
        self.q_proj = nn.Linear(d, h * hd, bias=False)
        self.k_proj = nn.Linear(d, kv * hd, bias=False)
        self.v_proj = nn.Linear(d, kv * hd, bias=False)
        self.o_proj = nn.Linear(h * hd, d, bias=False)

    def forward(self, x, cos, sin, bias):  # x [b, t, d]; cos, sin [b, t, hd]; bias [b, 1, t, t]
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        cos, sin = cos[:, None], sin[:, None]
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(self.h // self.kv, dim=1)
        v = v.repeat_interleave(self.h // self.kv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + bias
        out = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.h * self.hd))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, ff, eps = cfg["hidden_size"], cfg["intermediate_size"], cfg["rms_norm_eps"]
        self.input_layernorm = RMSNorm(d, eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(d, eps)
        self.gate_proj = nn.Linear(d, ff, bias=False)
        self.up_proj = nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin, bias):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bias)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        hd = cfg["head_dim"]
        inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        self.register_buffer("inv_freq", inv.float(), persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, mask):
        """ids, mask: [b, t]. Positions count the real tokens before each one; a real query sees the
        real keys at or before it. Pass an all-ones mask to run 'without the mask'."""
        b, t = ids.shape
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        angles = pos[..., None].float() * self.inv_freq
        emb = torch.cat((angles, angles), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
        allowed = causal[None] & mask[:, None, :].bool()
        allowed = allowed | torch.eye(t, dtype=torch.bool, device=ids.device)[None]  # pad queries see themselves
        bias = torch.zeros(b, 1, t, t, device=ids.device).masked_fill(~allowed[:, None], float("-inf"))
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, bias)
        return self.norm(x) @ self.embed_tokens.weight.T  # tied output head


def hf_state_dict(model):
    out = {"model.embed_tokens.weight": model.embed_tokens.weight, "model.norm.weight": model.norm.weight}
    for i, layer in enumerate(model.layers):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[p + f"self_attn.{name}.weight"] = getattr(layer.self_attn, name).weight
        for name in ("gate_proj", "up_proj", "down_proj"):
            out[p + f"mlp.{name}.weight"] = getattr(layer, name).weight
        out[p + "input_layernorm.weight"] = layer.input_layernorm.weight
        out[p + "post_attention_layernorm.weight"] = layer.post_attention_layernorm.weight
    return {k: v.detach().float().cpu().contiguous() for k, v in out.items()}


# ----------------------------------------------------------------------------------------------

def training_batch(rng, sp, size, device):
    rows, targets = [], []
    for _ in range(size):
        prompt, answer = make_example(rng)
        p = [1] + sp.encode(prompt)
        a = sp.encode(answer) + [2]
        rows.append(p + a)
        targets.append([-100] * len(p) + a)
    width = max(len(r) for r in rows)
    ids = torch.full((size, width), 3, dtype=torch.long)
    labels = torch.full((size, width), -100, dtype=torch.long)
    for i, (r, t) in enumerate(zip(rows, targets)):
        ids[i, : len(r)] = torch.tensor(r)
        labels[i, : len(t)] = torch.tensor(t)
    # Right padding: with causal attention no real token sees a pad, so the mask is all ones.
    return ids.to(device), labels.to(device)


@torch.no_grad()
def greedy(model, sp, prompts, use_mask, device, max_new=MAX_ITEMS + 2):
    """Left-padded batch greedy decoding; returns the decoded answers."""
    encoded = [[1] + sp.encode(p) for p in prompts]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(prompts), width), 3, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, width - len(e):] = torch.tensor(e)
        mask[i, width - len(e):] = 1
    ids, mask = ids.to(device), mask.to(device)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    new = []
    for _ in range(max_new):
        logits = model(ids, mask if use_mask else torch.ones_like(mask))[:, -1]
        token = logits.argmax(-1)
        token = torch.where(done, torch.full_like(token, 3), token)
        new.append(token)
        done |= token == 2
        ids = torch.cat([ids, token[:, None]], 1)
        mask = torch.cat([mask, (~done | (token == 2)).long()[:, None]], 1)
        if done.all():
            break
    new = torch.stack(new, 1).tolist()
    answers = []
    for row in new:
        row = row[: row.index(2)] if 2 in row else row
        answers.append(sp.decode(row).strip())
    return answers


def evaluate(model, sp, rng, device, n=2000, batch=100):
    prompts = [make_example(rng)[0] for _ in range(n)]
    result = {}
    for use_mask in (True, False):
        right = 0
        for i in range(0, n, batch):
            chunk = prompts[i: i + batch]
            right += sum(a == expected_answer(p) for p, a in zip(chunk, greedy(model, sp, chunk, use_mask, device)))
        result["with_mask" if use_mask else "without_mask"] = right / n
    return result


def check_with_transformers(folder, model, device):
    try:
        from transformers import LlamaForCausalLM
    except ImportError:
        return "transformers not installed: skipped"
    hf = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).to(device).eval()
    ids = torch.tensor([[3, 3, 1, 20, 7, 8, 9], [1, 21, 7, 8, 9, 10, 11]], device=device)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]], device=device)
    with torch.no_grad():
        ours = model(ids, mask)
        theirs = hf(input_ids=ids, attention_mask=mask).logits
    diff = (ours - theirs)[mask.bool()].abs().max().item()
    return f"max |logits - transformers' logits| over real positions: {diff:.3e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--max-minutes", type=float, default=6.0, help="stop training after this long")
    args = ap.parse_args()
    start = time.time()
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        sp, sp_file = train_tokenizer(rng, tmp, args.seed + 1)
        with open(sp_file, "rb") as f:
            tokenizer_bytes = f.read()
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]

    cfg = dict(vocab_size=sp.get_piece_size(), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
               num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=64,
               rms_norm_eps=1e-5, rope_theta=10000.0)
    model = Llama(cfg).to(args.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    train_start, losses, step = time.time(), [], 0
    for step in range(args.steps):
        ids, labels = training_batch(rng, sp, args.batch, args.device)
        logits = model(ids, torch.ones_like(ids))
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 500 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {sum(losses[-50:]) / len(losses[-50:]):.4f}  {time.time() - start:6.1f} s",
                  flush=True)
        if time.time() - train_start > args.max_minutes * 60:
            print(f"stopping at step {step}: --max-minutes reached", flush=True)
            break
    train_seconds = time.time() - train_start
    model.eval()
    accuracy = evaluate(model, sp, random.Random(args.seed + 1), args.device)

    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": cfg["vocab_size"],
        "hidden_size": cfg["hidden_size"], "intermediate_size": cfg["intermediate_size"],
        "num_hidden_layers": cfg["num_hidden_layers"], "num_attention_heads": cfg["num_attention_heads"],
        "num_key_value_heads": cfg["num_key_value_heads"], "head_dim": cfg["head_dim"],
        "max_position_embeddings": cfg["max_position_embeddings"], "rms_norm_eps": cfg["rms_norm_eps"],
        "rope_theta": cfg["rope_theta"], "hidden_act": "silu", "tie_word_embeddings": True,
        "attention_bias": False, "mlp_bias": False, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3,
        "torch_dtype": "float32",
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out, "tokenizer.model"), "wb") as f:
        f.write(tokenizer_bytes)
    save_file(hf_state_dict(model), os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    check = check_with_transformers(args.out, model, args.device)

    log = {"seed": args.seed, "steps_run": step + 1, "batch": args.batch, "device": str(args.device),
           "device_name": torch.cuda.get_device_name() if str(args.device).startswith("cuda") else "cpu",
           "train_seconds": round(train_seconds, 1), "total_seconds": round(time.time() - start, 1),
           "final_loss": sum(losses[-50:]) / len(losses[-50:]), "accuracy_2000_prompts": accuracy,
           "parameters": sum(p.numel() for p in model.parameters()), "pieces": pieces,
           "transformers_check": check, "torch": torch.__version__}
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=2)
    print(json.dumps({k: v for k, v in log.items() if k != "pieces"}, indent=2))
    print("pieces:", pieces)


if __name__ == "__main__":
    main()
