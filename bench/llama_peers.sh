#!/usr/bin/env bash
# Decode and prefill of the random 110M-shape model against run.c (llama2.c) and llama.cpp on the same
# weights, 2 threads, in turns (ROUNDS rounds, default 2). Expects the peers built outside the
# repository and the model converted (see bench/RESULTS.md for the commands):
#   PEERS/llama.cpp/build/bin/{llama-bench,llama-batched-bench}, PEERS/llama2.c/{run,tokenizer.bin},
#   PEERS/models/random110m{.bin,-f32.gguf,-BF16.gguf,-F16.gguf,-Q8_0.gguf}
#   bash bench/llama_peers.sh PEERS [BUILD_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
peers="$1"
build="${2:-build}"
rounds="${3:-2}"
L="$peers/llama.cpp/build/bin"
M="$peers/models"
for round in $(seq "$rounds"); do
  echo "== round $round: maskgen model_bench (formats: 0 F32, 1 BF16, 2 F16, 3 int8)"
  "$build/bench/model_bench" --benchmark_filter='BM_(Prefill|DecodeStep)/(1|16)/' --benchmark_repetitions=3 \
    --benchmark_report_aggregates_only=true 2>/dev/null | grep median
  echo "== round $round: run.c (llama2.c), F32, 256 tokens"
  (cd "$peers/llama2.c" && OMP_NUM_THREADS=2 ./run "$M/random110m.bin" -z tokenizer.bin -n 256 -t 0 -i "Once" 2>&1 |
    grep -E "achieved")
  echo "== round $round: llama.cpp llama-bench (pp128, tg64), 2 threads"
  for t in f32 BF16 F16 Q8_0; do
    "$L/llama-bench" -m "$M/random110m-$t.gguf" -t 2 -p 128 -n 64 -r 3 -o md 2>/dev/null | grep -E "^\| llama"
  done
  echo "== round $round: llama.cpp llama-batched-bench (prompt 128, 32 new tokens, 1 and 16 sequences)"
  for t in f32 BF16; do
    echo "-- $t"
    "$L/llama-batched-bench" -m "$M/random110m-$t.gguf" -t 2 -c 8192 -b 2048 -ub 512 -npp 128 -ntg 32 -npl 1,16 2>/dev/null |
      grep -E "^\|" | tail -2
  done
done
