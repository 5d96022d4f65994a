#!/usr/bin/env bash
# Installs what is missing, builds maskgen with its tests, and runs them.
#   bash tools/test.sh [BUILD_DIR] [extra cmake arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build="${1:-build}"
shift || true
# Tests on, whatever an earlier configure of the same folder cached (the demo turns them off).
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMASKGEN_BUILD_TESTS=ON "$@"
cmake --build "$build" -j2
ctest --test-dir "$build" --output-on-failure -j2 --no-tests=error
