#!/usr/bin/env bash
# maskgen against llama.cpp on the same random weights at TinyLlama-1.1B's shape, one weight type
# after another, ROUNDS rounds, 2 threads each, model files in tmpfs (this machine kind evicts idle
# file pages), then a table of medians and ratios (bench/peer_table.py). Expects (bench/RESULTS.md
# has the commands that make them):
#   PEERS/llama.cpp/build/bin/{llama-bench,llama-batched-bench}
#   MODELS/tinyllama-{F32,BF16,F16}/          make_random_model --tinyllama --dtype ...
#   MODELS/tinyllama-{f32,BF16,F16,Q8_0,Q4_0,Q4_K_M}.gguf  export_llama2c + llama-convert-llama2c-to-ggml
#                                                          + llama-quantize
#   bash bench/llama_peers.sh PEERS MODELS [BUILD_DIR] [ROUNDS] [FORMATS]
# FORMATS: any of F32 BF16 F16 INT8 (maskgen's int8 at load against Q8_0), Q4_0 and Q4_K_M
# (maskgen's int4 at load, groups of 32 with zero points, against each), default the first four.
# Environment: TMP (tmpfs folder, default /dev/shm/maskgen-peers), OUT (results folder),
# REPS (Google Benchmark repetitions, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
peers="$1"
models="$2"
build="${3:-build}"
rounds="${4:-2}"
formats="${5:-F32 BF16 F16 INT8}"
tmp="${TMP:-/dev/shm/maskgen-peers}"
out="${OUT:-bench-peers-$(date +%Y%m%d-%H%M%S)}"
reps="${REPS:-3}"
L="$peers/llama.cpp/build/bin"
mkdir -p "$out" "$tmp"
for round in $(seq "$rounds"); do
  for format in $formats; do
    case "$format" in
      INT8) folder=tinyllama-F32; gguf=tinyllama-Q8_0.gguf; int8=--int8 ;;
      Q4_0 | Q4_K_M) folder=tinyllama-F32; gguf="tinyllama-$format.gguf"; int8=--int4 ;;
      F32) folder=tinyllama-F32; gguf=tinyllama-f32.gguf; int8= ;;
      *) folder="tinyllama-$format"; gguf="tinyllama-$format.gguf"; int8= ;;
    esac
    echo "== round $round, $format: busiest processes before the run"
    top -bn1 | sed -n '7,11p'
    rm -rf "${tmp:?}"/*
    cp -r "$models/$folder" "$tmp/"
    cp "$models/$gguf" "$tmp/"
    echo "== round $round, $format: maskgen model_bench"
    "$build/bench/model_bench" --model "$tmp/$folder" $int8 --benchmark_filter='BM_(Prefill|DecodeStep|Engine)' \
      --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
      --benchmark_out="$out/r$round-$format-maskgen.json" --benchmark_out_format=json | grep -E "median|Engine"
    echo "== round $round, $format: llama.cpp llama-bench (pp128, tg64)"
    "$L/llama-bench" -m "$tmp/$gguf" -t 2 -p 128 -n 64 -r "$reps" -o json > "$out/r$round-$format-llama-bench.json" 2>/dev/null
    echo "== round $round, $format: llama.cpp llama-batched-bench (prompt 128, 32 new tokens, 1, 4 and 16 sequences)"
    "$L/llama-batched-bench" -m "$tmp/$gguf" -t 2 -c 8192 -b 2048 -ub 512 -npp 128 -ntg 32 -npl 1,4,16 2>/dev/null |
      grep -E "^\|" | tee "$out/r$round-$format-batched.txt"
  done
done
rm -rf "${tmp:?}"
python3 bench/peer_table.py "$out"
