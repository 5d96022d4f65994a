#!/usr/bin/env bash
# Installs what is missing, builds maskgen with its tests, and runs them.
#   bash tools/test.sh [BUILD_DIR] [extra cmake arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build="${1:-build}"
shift || true
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j2
ctest --test-dir "$build" --output-on-failure -j2
