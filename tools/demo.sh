#!/usr/bin/env bash
# Installs what is missing, builds the examples, and runs the demo on the bundled model
# (models/sort-reverse): what the attention mask changes, then a batch generated with streaming.
#   bash tools/demo.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build="${1:-build-demo}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMASKGEN_BUILD_TESTS=OFF -DMASKGEN_BUILD_BENCHMARKS=OFF
cmake --build "$build" -j2 --target mask_pitfall batch_generate tokenize_batch server

echo
echo "== mask_pitfall: the same batch with the mask, and without it"
"$build/examples/mask_pitfall"

echo
echo "== batch_generate --stream: one prompt, printed as it is generated"
"$build/examples/batch_generate" --stream "reverse 3 1 4 1 5 9 2 6 5 3 5 8 ="

echo
echo "== batch_generate --check: 40 prompts in batches of 16, each answer checked"
"$build/examples/batch_generate" --check --batch-size 16 --file examples/demo_prompts.txt
