#!/usr/bin/env bash
# maskgen against llama.cpp on the same random weights of a Qwen3-30B-A3B-shaped layer stack
# (bfloat16), ROUNDS interleaved rounds (in each: every depth, maskgen then llama.cpp), THREADS
# threads each, then bench/moe_table.py's medians, ratios and per-layer figures (the difference of
# the deepest and the shallowest stack), and maskgen's peak memory on each folder.
#   bash bench/moe_peers.sh PEERS MODELS [BUILD_DIR] [ROUNDS] [LAYERS]
# Expects:
#   PEERS/llama.cpp/build/bin/{llama-bench,llama-batched-bench}
#   MODELS/qwen3moe-<L>l/       make_random_model --qwen3-30b-a3b --layers L --out MODELS/qwen3moe-<L>l
#   MODELS/qwen3moe-<L>l.gguf   python3 bench/peer/qwen3moe_gguf.py --model MODELS/qwen3moe-<L>l \
#                                 --out MODELS/qwen3moe-<L>l.gguf --gguf-py PEERS/llama.cpp/gguf-py
# for each L in LAYERS (default "1 3"; links allowed). Benchmarks read from tmpfs (some machines
# evict idle file pages): a folder or file already in tmpfs is read in place, any other is copied
# into TMP (a tmpfs folder) for its turn and removed after it, so a depth kept on disk costs memory
# only while it runs (COPY=1 copies every one).
# Environment: OUT (results folder), REPS (Google Benchmark and llama-bench repetitions, default 3),
# THREADS (default 2), COPY (default 0), TMP (default /dev/shm/maskgen-moe-peers).
#
# What runs, at each depth:
#   maskgen   moe_bench: BM_MoeDecode/1 (context 256-320), BM_MoeDecode/16 (context 128-192),
#             BM_MoePrefill/1 (128 tokens)
#   llama.cpp llama-bench -p 128 -n 0 (pp128); llama-bench -p 0 -n 64 -d 256 (tg64 after a context
#             of 256); llama-batched-bench -npp 128 -ntg 32 -npl 16 (S_TG: 16 sequences decoding
#             after prompts of 128)
# After the rounds: model_memory on each folder (load, 128-token prompt, 32 new tokens), under
# /usr/bin/time -v for its peak resident set, and llama-bench's peak resident set beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
peers="$1"
models="$2"
build="${3:-build}"
rounds="${4:-2}"
layers="${5:-1 3}"
out="${OUT:-bench-moe-peers-$(date +%Y%m%d-%H%M%S)}"
reps="${REPS:-3}"
threads="${THREADS:-2}"
copy="${COPY:-0}"
tmp="${TMP:-/dev/shm/maskgen-moe-peers}"
L="$peers/llama.cpp/build/bin"
for tool in "$L/llama-bench" "$L/llama-batched-bench" "$build/bench/moe_bench" "$build/bench/model_memory"; do
  [ -x "$tool" ] || { echo "moe_peers.sh: $tool is missing" >&2; exit 2; }
done
for n in $layers; do
  for f in "$models/qwen3moe-${n}l/config.json" "$models/qwen3moe-${n}l.gguf"; do
    [ -e "$f" ] || { echo "moe_peers.sh: $f is missing (see the commands at the top of this script)" >&2; exit 2; }
  done
done
mkdir -p "$out"
echo "threads $threads, repetitions $reps, rounds $rounds, depths $layers; results in $out"

# Puts the folder and GGUF of depth $1 where the benchmarks read them; sets dir and gguf. Each
# one already in tmpfs (after links) is read in place; any other is copied into TMP for its turn.
staged=0
on_tmpfs() { [ "$(stat -f -c %T "$(readlink -f "$1")")" = tmpfs ]; }
stage() {
  dir="$models/qwen3moe-$1l"
  gguf="$models/qwen3moe-$1l.gguf"
  staged=0
  if [ "$copy" = 1 ] || ! on_tmpfs "$dir" || ! on_tmpfs "$gguf"; then
    mkdir -p "$tmp"
    rm -rf "${tmp:?}"/*
    if [ "$copy" = 1 ] || ! on_tmpfs "$dir"; then cp -rL "$dir" "$tmp/"; dir="$tmp/qwen3moe-$1l"; fi
    if [ "$copy" = 1 ] || ! on_tmpfs "$gguf"; then cp -L "$gguf" "$tmp/"; gguf="$tmp/qwen3moe-$1l.gguf"; fi
    staged=1
  fi
}
unstage() { if [ "$staged" = 1 ]; then rm -rf "${tmp:?}"; fi; }

for round in $(seq "$rounds"); do
  for n in $layers; do
    stage "$n"
    tag="r$round-${n}l"
    echo "== round $round, $n layers: busiest processes before the run"
    top -bn1 | sed -n '7,11p'
    echo "== round $round, $n layers: maskgen moe_bench"
    "$build/bench/moe_bench" --model "$dir" --threads "$threads" --benchmark_filter='BM_Moe' \
      --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
      --benchmark_out="$out/$tag-maskgen.json" --benchmark_out_format=json | grep -E "^BM_Moe" | grep -vE "_(mean|stddev|cv) " || true
    echo "== round $round, $n layers: llama.cpp llama-bench pp128, then tg64 at depth 256"
    "$L/llama-bench" -m "$gguf" -t "$threads" -p 128 -n 0 -r "$reps" -o json > "$out/$tag-llama-pp.json" 2>"$out/$tag-llama-pp.log"
    "$L/llama-bench" -m "$gguf" -t "$threads" -p 0 -n 64 -d 256 -r "$reps" -o json > "$out/$tag-llama-tg.json" 2>"$out/$tag-llama-tg.log"
    echo "== round $round, $n layers: llama.cpp llama-batched-bench (16 sequences, prompts of 128, 32 new tokens)"
    # Its logger prints from a thread of its own and now and then loses the last lines at exit:
    # up to 3 tries for the line of figures.
    for try in 1 2 3; do
      "$L/llama-batched-bench" -m "$gguf" -t "$threads" -c 4096 -b 2048 -ub 512 -npp 128 -ntg 32 -npl 16 \
        --output-format jsonl 2>"$out/$tag-batched.log" | grep '^{' > "$out/$tag-batched.jsonl" || true
      [ -s "$out/$tag-batched.jsonl" ] && break
      echo "   (no figures printed, try $try)"
    done
    unstage
  done
done

for n in $layers; do
  stage "$n"
  echo "== maskgen memory, $n layers (model_memory under /usr/bin/time -v)"
  /usr/bin/time -v "$build/bench/model_memory" "$dir" 2> "$out/memory-${n}l.time" | tee "$out/memory-${n}l.txt"
  grep -E "Maximum resident set size" "$out/memory-${n}l.time" | tee -a "$out/memory-${n}l.txt"
  echo "== llama.cpp memory, $n layers (llama-bench pp16 under /usr/bin/time -v; its weights stay mapped)"
  /usr/bin/time -v "$L/llama-bench" -m "$gguf" -t "$threads" -p 16 -n 0 -r 1 > /dev/null 2> "$out/memory-${n}l-llama.time" || true
  grep -E "Maximum resident set size" "$out/memory-${n}l-llama.time" | tee "$out/memory-${n}l-llama.txt"
  unstage
done

python3 bench/moe_table.py "$out"
