#!/usr/bin/env bash
# Runs tokenizer_json_bench and its Hugging Face tokenizers peer in turns (3 rounds each), on the
# same tokenizer.json and texts, so that both see the same machine load.
#   bash bench/tokenizer_json_peer.sh [BUILD_DIR] [qwen3|llama3|llama2-json|gemma3|gptoss|deepseek_v3]
# (gemma3, gptoss and deepseek_v3 are tarballs in ../shared, extracted into BUILD_DIR by CMake.)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
name="${2:-qwen3}"
json="../shared/tokenizers/$name/tokenizer.json"
[ -f "$json" ] || json="$build/shared-tokenizers/$name/tokenizer.json"
if [ ! -d .node/node_modules/@anush008/tokenizers ]; then
  npm install --prefix .node --no-save @anush008/tokenizers >/dev/null
fi
for round in 1 2 3; do
  echo "== round $round: maskgen ($name)"
  MASKGEN_BENCH_TOKENIZER="$name" "$build/bench/tokenizer_json_bench" --benchmark_repetitions=5 \
    --benchmark_report_aggregates_only=true 2>/dev/null | grep median
  echo "== round $round: Hugging Face tokenizers ($name)"
  node bench/peer/hf_tokenizers.js "$json" 5
done
