#!/usr/bin/env bash
# The server as real clients use it: the official OpenAI Node SDK (npm `openai`, the version
# pinned below) drives servers on the bundled model, stories260K and a tiny Qwen3 built to answer
# with a reasoning block and a tool call (tools/make_scripted_model), through every field and
# endpoint the server implements (openai_sdk_test.mjs).
#
#   server/client_test/run.sh BIN_DIR WORK_DIR SHARED_DIR
#     BIN_DIR: where `server` and `make_scripted_model` are; WORK_DIR: scratch (node_modules,
#     model folders, logs); SHARED_DIR: the test data folder beside the repository.
# Prints "SKIPPED: ..." and exits 0 when node or the npm registry cannot be reached.
set -euo pipefail
bin=$1 work=$2 shared=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
sdk_version=6.49.0

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIPPED: node and npm are needed for the OpenAI SDK client test"; exit 0
fi
if [ ! -d "$shared/tokenizers/qwen3" ] || [ ! -d "$shared/models/stories260K" ]; then
  echo "SKIPPED: $shared lacks tokenizers/qwen3 or models/stories260K"; exit 0
fi
mkdir -p "$work"
if [ ! -f "$work/node_modules/openai/package.json" ] || ! grep -q "\"version\": \"$sdk_version\"" "$work/node_modules/openai/package.json"; then
  if ! (cd "$work" && npm install --silent --no-audit --no-fund --prefix "$work" "openai@$sdk_version" >"$work/npm.log" 2>&1); then
    echo "SKIPPED: npm could not install openai@$sdk_version (registry unreachable?):"; tail -5 "$work/npm.log"; exit 0
  fi
fi

# The tiny Qwen3: after the chat template's "<|im_start|>assistant\n" it thinks, then calls
# get_weather; after "...</think>\n\n" (enable_thinking false) it answers in words.
cat >"$work/scripts.json" <<'JSON'
[{"trigger": "\n", "text": "<think>\nThe user asks for the weather in Paris; I will call the tool.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>"},
 {"trigger": "\n\n", "text": "It is 18 degrees and sunny in Paris."}]
JSON
"$bin/make_scripted_model" --tokenizer "$shared/tokenizers/qwen3" --out "$work/tiny-qwen3" --scripts "$work/scripts.json" \
  --vocab-size 151936 >/dev/null  # as Qwen3's configs: 267 ids past the tokenizer

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Starts a server on a free port; sets $url.
serve() {
  local name=$1; shift
  local log="$work/$name.log"
  "$bin/server" --port 0 --threads 1 "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    url=$(grep -o 'http://[0-9.]*:[0-9]*' "$log" | head -1 || true)
    if [ -n "$url" ]; then return 0; fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "server $name did not start:"; cat "$log"; exit 1; fi
    sleep 0.1
  done
  echo "server $name did not print its address:"; cat "$log"; exit 1
}

serve bundled --model "$repo/models/sort-reverse"; export BUNDLED_URL=$url
serve stories --model "$shared/models/stories260K"; export STORIES_URL=$url
serve qwen --model "$work/tiny-qwen3"; export QWEN_URL=$url
serve qwen-inline --model "$work/tiny-qwen3" --reasoning-format inline; export QWEN_INLINE_URL=$url
serve keyed --model "$repo/models/sort-reverse" --api-key test-key-123; export KEYED_URL=$url
export SERVER_LOGS="$work"
# (an ES module finds `openai` in the node_modules beside it)
cp "$here/openai_sdk_test.mjs" "$work/openai_sdk_test.mjs"
node --test "$work/openai_sdk_test.mjs"
