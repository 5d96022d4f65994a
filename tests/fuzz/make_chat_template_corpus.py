#!/usr/bin/env python3
"""Writes the seed corpus of the chat_template fuzz harness into tests/fuzz/corpus/chat_template/.

Each seed is a template, then optionally \\x01 and a JSON object of variables (the harness renders
with them) or nothing (the harness applies its own fixed conversation). The seeds:
  - the real Qwen3 and Llama 3 templates (../shared/tokenizers/*/tokenizer_config.json) and the
    other real templates of tests/data/chat/chat_fixtures.json ("templates"), alone;
  - a few of the fixtures' cases of those real templates, with their variables (REAL_CASES);
  - every EVERY-th of its one-construct synthetic cases ("template_text" with their variables).
Seeds are named after what they hold; files named regress_* (minimized findings) are kept.
Standard library only:  python3 tests/fuzz/make_chat_template_corpus.py
"""

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fuzz" / "corpus" / "chat_template"
FIXTURES = ROOT / "tests" / "data" / "chat" / "chat_fixtures.json"
TOKENIZERS = ROOT.parent / "shared" / "tokenizers"
EVERY = 2  # of the synthetic cases, keep one in EVERY (about 80 of 157)
# Cases of the real templates kept with their variables: tools, tool calls, <think> history, text.
REAL_CASES = ["qwen3/tools_system_gen", "qwen3/tool_calls_round_trip_gen", "qwen3/think_history_last_kept",
              "qwen3/reasoning_content_field", "qwen3/unicode", "llama3/multi_turn_system_gen", "llama3/tricky_text",
              "llama3_1/tool_call_round_trip", "mistral_instruct/tool_calls_round_trip", "llama2/multi_turn_system_gen",
              "gemma3/content_parts", "gemma3/unicode_white_space_trimmed", "phi4_mini/system_tools_string"]
MAX_LEN = 8192  # run.sh's -max_len: longer seeds would be cut


def seed(template, variables=None):
    data = template.encode("utf-8")
    if variables is not None:
        data += b"\x01" + json.dumps(variables, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return data


def slug(name):
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")


def main():
    fixtures = json.loads(FIXTURES.read_text(encoding="utf-8"))
    seeds = {}
    for model in ("qwen3", "llama3"):
        config = json.loads((TOKENIZERS / model / "tokenizer_config.json").read_text(encoding="utf-8"))
        seeds[f"real_{model}"] = seed(config["chat_template"])
    for name, entry in fixtures["templates"].items():
        if f"real_{name}" not in seeds:
            seeds[f"real_{name}"] = seed(entry["text"])
    cases = fixtures["cases"]
    by_name = {c["name"]: c for c in cases}
    for name in REAL_CASES:
        c = by_name[name]
        seeds[f"case_{slug(name)}"] = seed(fixtures["templates"][c["template"]]["text"], c["variables"])
    synthetic = [c for c in cases if "template_text" in c]
    for c in synthetic[::EVERY]:
        seeds[f"syn_{slug(c['name'].split('/', 1)[-1])}"] = seed(c["template_text"], c.get("variables", {}))

    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if not old.name.startswith("regress_"):
            old.unlink()
    total = 0
    for name, data in sorted(seeds.items()):
        if len(data) > MAX_LEN:
            print(f"skipped {name}: {len(data)} bytes, over {MAX_LEN}")
            continue
        (OUT / name).write_bytes(data)
        total += len(data)
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes (regress_* kept) to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
