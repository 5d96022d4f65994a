#!/usr/bin/env python3
"""Drives an OpenAI-style server (maskgen's server/ or llama.cpp's llama-server) with
concurrent streaming clients and prints aggregate new tokens per second and time to first token.

Each client sends REQUESTS requests one after another: a prompt of PROMPT_TOKENS random token ids
(the same ids for every server: seeded by client and request), `max_tokens` MAX_TOKENS,
`temperature` 0 and `ignore_eos`, so every answer is MAX_TOKENS tokens long. Time to first token is
from sending the request to the first server-sent event that carries text.

    python3 bench/server_load.py --url http://127.0.0.1:8080 --clients 1 4 8 16

Python's standard library only.
"""
import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse


def one_request(url, prompt, max_tokens):
    parts = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True})
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]!r}")
    first = None
    events = 0
    finish = None
    buffer = b""
    while True:
        chunk = response.read1(65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            line = event.strip()
            if not line.startswith(b"data: "):
                continue
            payload = line[6:]
            if payload == b"[DONE]":
                continue
            data = json.loads(payload)
            choice = data["choices"][0]
            if choice.get("text") and first is None:
                first = time.perf_counter() - start
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
            events += 1
    conn.close()
    return first if first is not None else time.perf_counter() - start, finish


def run(url, clients, requests, prompt_tokens, max_tokens, seed):
    ttfts, errors = [], []
    lock = threading.Lock()

    def client(c):
        for r in range(requests):
            rng = random.Random(seed * 1000003 + c * 1009 + r)
            prompt = [1] + [rng.randrange(3, 31000) for _ in range(prompt_tokens - 1)]
            try:
                ttft, finish = one_request(url, prompt, max_tokens)
                if finish != "length":
                    raise RuntimeError(f"finish_reason {finish}")
                with lock:
                    ttfts.append(ttft)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    tokens = len(ttfts) * max_tokens
    return {
        "clients": clients,
        "requests": len(ttfts),
        "errors": errors[:3],
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "ttft_median_ms": round(1000 * statistics.median(ttfts), 1) if ttfts else None,
        "ttft_mean_ms": round(1000 * statistics.mean(ttfts), 1) if ttfts else None,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--requests", type=int, default=2, help="requests per client")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    for c in args.clients:
        result = run(args.url, c, args.requests, args.prompt_tokens, args.max_tokens, args.seed)
        print(json.dumps({"server": args.label, **result}), flush=True)


if __name__ == "__main__":
    main()
