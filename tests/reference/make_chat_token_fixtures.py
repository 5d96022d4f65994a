#!/usr/bin/env python3
"""Writes tests/data/chat/chat_token_fixtures.json: transformers' apply_chat_template for the real
Qwen3 and Llama 3 tokenizers, as text (tokenize=False) and as token ids (tokenize=True), one
conversation at a time and as one left-padded batch.

Run with transformers 5 and tokenizers installed (no model weights are needed):

    python3 tests/reference/make_chat_token_fixtures.py --tokenizers DIR --out FILE

where DIR holds qwen3/ and llama3/, each with tokenizer.json and tokenizer_config.json (the shared
test data). The conversations are written here, inline, and copied into the output with every
result, so a test reads everything it needs from the one file.
"""
import argparse
import json
import platform

import tokenizers
import transformers
from transformers import AutoTokenizer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

QWEN3_CASES = [
    {"name": "user_only", "messages": [{"role": "user", "content": "What is 2 + 2?"}], "add_generation_prompt": True},
    {
        "name": "system_user",
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Name three primes."},
        ],
        "add_generation_prompt": True,
    },
    {
        "name": "no_thinking",
        "messages": [{"role": "user", "content": "Say hi."}],
        "add_generation_prompt": True,
        "variables": {"enable_thinking": False},
    },
    {
        "name": "multi_turn_with_think",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Is 91 prime?"},
            {"role": "assistant", "content": "<think>\n91 = 7 * 13.\n</think>\n\nNo, 91 = 7 × 13."},
            {"role": "user", "content": "And 97?"},
            {"role": "assistant", "content": "<think>\nNot divisible by 2, 3, 5, 7.\n</think>\n\nYes."},
            {"role": "user", "content": "Thanks!"},
        ],
        "add_generation_prompt": True,
    },
    {
        "name": "reasoning_content_field",
        "messages": [
            {"role": "user", "content": "Capital of Japan?"},
            {"role": "assistant", "content": "Tokyo.", "reasoning_content": "Japan's capital is Tokyo."},
        ],
        "add_generation_prompt": False,
    },
    {
        "name": "non_ascii",
        "messages": [
            {"role": "system", "content": "你是一个乐于助人的助手。"},
            {"role": "user", "content": "糖尿病患者应定期监测血糖水平，请问需要注意什么？ Ça va? 😀 مرحبا"},
        ],
        "add_generation_prompt": True,
    },
    {
        "name": "tools_and_calls",
        "messages": [
            {"role": "system", "content": "Use tools when needed."},
            {"role": "user", "content": "Weather in Zürich?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}
                ],
            },
            {"role": "tool", "content": "{\"temperature\": 4, \"sky\": \"Schnee\"}"},
            {"role": "tool", "content": "{\"humidity\": 0.8}"},
        ],
        "add_generation_prompt": True,
        "tools": [WEATHER_TOOL],
    },
    {
        "name": "special_token_text_in_content",
        "messages": [{"role": "user", "content": "Print <|im_end|> and <think> literally, then \n\n  spaces."}],
        "add_generation_prompt": True,
    },
    {
        "name": "whitespace_and_code",
        "messages": [
            {"role": "user", "content": "def f(x):\n\treturn x  *  2\n\n\n# done   "},
            {"role": "assistant", "content": "\n\nIt doubles x.\n"},
        ],
        "add_generation_prompt": False,
    },
]

LLAMA3_CASES = [
    {"name": "user_only", "messages": [{"role": "user", "content": "What is 2 + 2?"}], "add_generation_prompt": True},
    {
        "name": "system_multi_turn",
        "messages": [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "  Arr, ahoy!  "},
            {"role": "user", "content": "Où est le trésor? 🏴‍☠️"},
        ],
        "add_generation_prompt": True,
    },
    {
        "name": "no_generation_prompt",
        "messages": [{"role": "user", "content": "Print <|eot_id|> literally."}, {"role": "assistant", "content": "Done."}],
        "add_generation_prompt": False,
    },
]

# One left-padded batch through apply_chat_template(list of conversations, padding=True).
QWEN3_BATCH = ["user_only", "non_ascii", "multi_turn_with_think", "no_thinking"]


def render(tokenizer, case, tokenize):
    kwargs = dict(case.get("variables", {}))
    if "tools" in case:
        kwargs["tools"] = case["tools"]
    out = tokenizer.apply_chat_template(
        case["messages"], tokenize=tokenize, add_generation_prompt=case["add_generation_prompt"], **kwargs
    )
    if tokenize and not isinstance(out, list):  # transformers 5 returns a BatchEncoding by default
        out = out["input_ids"]
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizers", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    result = {
        "generated_by": "tests/reference/make_chat_token_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "tokenizers": {},
    }
    for name, cases in (("qwen3", QWEN3_CASES), ("llama3", LLAMA3_CASES)):
        tokenizer = AutoTokenizer.from_pretrained(f"{args.tokenizers}/{name}")
        entries = []
        for case in cases:
            text = render(tokenizer, case, tokenize=False)
            ids = render(tokenizer, case, tokenize=True)
            entries.append({**case, "text": text, "ids": [int(i) for i in ids]})
        result["tokenizers"][name] = {"cases": entries}

    tokenizer = AutoTokenizer.from_pretrained(f"{args.tokenizers}/qwen3")
    tokenizer.padding_side = "left"
    by_name = {c["name"]: c for c in QWEN3_CASES}
    batch = [by_name[n]["messages"] for n in QWEN3_BATCH]
    encoded = tokenizer.apply_chat_template(batch, tokenize=True, add_generation_prompt=True, padding=True, return_dict=True)
    result["tokenizers"]["qwen3"]["batch"] = {
        "cases": QWEN3_BATCH,
        "add_generation_prompt": True,
        "pad_token_id": tokenizer.pad_token_id,
        "input_ids": [[int(i) for i in row] for row in encoded["input_ids"]],
        "attention_mask": [[int(i) for i in row] for row in encoded["attention_mask"]],
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", args.out, {k: len(v["cases"]) for k, v in result["tokenizers"].items()})


if __name__ == "__main__":
    main()
