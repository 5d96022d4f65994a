#!/usr/bin/env bash
# Builds the libFuzzer harnesses in tests/fuzz with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs each for SECONDS (default 60) on its corpus, two at a time.
# A crash, leak or sanitizer report fails the script; the input is left in tests/fuzz/findings/.
#   bash tests/fuzz/run.sh [SECONDS] [HARNESS...]
# Needs clang and libFuzzer (Debian: clang, libfuzzer-14-dev) and ../shared/tokenizers.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
shift || true
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  harnesses=(tokenizer_json_load tokenizer_encode chat_template safetensors_header model_config generate_args server_request)
fi
out="build-fuzz"
mkdir -p "$out" tests/fuzz/findings
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -Iinclude -I/usr/include/eigen3 "-DMASKGEN_FUZZ_TOKENIZERS_DEFAULT=\"$PWD/../shared/tokenizers\""
       "-DMASKGEN_FUZZ_BUNDLED_MODEL=\"$PWD/models/sort-reverse\"")
libs=(-lsentencepiece -lpcre2-8 -lutf8proc)
server=(-Iserver -pthread)  # server_request only (Boost's headers are in the default path)
build() {  # rebuilt when its source or a header is newer than the binary
  local h="$1" extra=()
  [ "$h" = server_request ] && extra=("${server[@]}")
  [ "$out/$h" -nt "tests/fuzz/$h.cpp" ] && [ -z "$(find include server -newer "$out/$h" -name '*.hpp' | head -1)" ] ||
    clang++ "${flags[@]}" "tests/fuzz/$h.cpp" -o "$out/$h" "${libs[@]}" "${extra[@]}"
}
building=()
for h in "${harnesses[@]}"; do  # two at a time, on the two cores
  build "$h" & building+=($!)
  if ((${#building[@]} == 2)); then
    for p in "${building[@]}"; do wait "$p"; done
    building=()
  fi
done
for p in "${building[@]}"; do wait "$p"; done
run() {
  local h="$1" work="$out/corpus-$1"
  mkdir -p "$work"
  local dict=()
  [ -f "tests/fuzz/$h.dict" ] && dict=(-dict="tests/fuzz/$h.dict")
  "$out/$h" "$work" "tests/fuzz/corpus/$h" "${dict[@]}" -max_total_time="$seconds" -max_len=8192 \
    -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="tests/fuzz/findings/$h-" \
    > "$out/$h.log" 2>&1
}
pids=()
status=0
for h in "${harnesses[@]}"; do
  run "$h" & pids+=($!)
  if ((${#pids[@]} == 2)); then
    for p in "${pids[@]}"; do wait "$p" || status=1; done
    pids=()
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
for h in "${harnesses[@]}"; do
  echo "== $h: $(grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$out/$h.log" | tr '\n' ' ')"
  grep -E "^#[0-9]+.*(DONE|pulse)" "$out/$h.log" | tail -1 || true
  grep -E "ERROR|SUMMARY|deadly signal|crash-" "$out/$h.log" | head -5 || true
done
exit $status
