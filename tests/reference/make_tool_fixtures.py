#!/usr/bin/env python3
"""Writes the tool-call fixtures: what the chat templates print for assistant tool calls, and the
OpenAI tool round trip as a server hands it to a template.

    python3 tests/reference/make_tool_fixtures.py

It renders with jinja2 in exactly the environment of make_chat_fixtures.py (transformers'
apply_chat_template settings; it imports make_env, run and special_tokens_map from there), taking
the templates from tests/data/chat/chat_fixtures.json. No network, no transformers.

1. tests/data/chat/tool_call_fixtures.json, the reference for the parsers in
   include/maskgen/chat/tool_calls.hpp and reasoning.hpp.

   "rendered" cases: for qwen3, qwen2_5, llama3_1, llama3_2 and mistral_instruct, a conversation
   with tools that ends in an assistant message with tool calls. The assistant turn is cut from
   the rendering as what a model trained on the template emits after the generation prompt:
     prompt   = render(messages[:-1], add_generation_prompt=True)
     full     = render(messages,      add_generation_prompt=False)
     assert full.startswith(prompt)
     turn     = full[len(prompt):], which must end with the template's end-of-turn text
                ("<|im_end|>\n" for Qwen, "<|eot_id|>" for Llama, "</s>" for Mistral)
     text     = turn without that end-of-turn text.
   The expected parse is the assistant message that went in: its content (None counts as ""),
   its reasoning_content (Qwen3; "" when absent) and its calls as {name, arguments} with
   arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":")), the compact JSON
   of the dict given to the template. So the expectations come from the template's input, not
   from a parser. Where jinja2 refuses the conversation (Llama 3.x render one call only), the case
   records the error instead.

   "hand-written" cases: texts written here with their expected parse worked out by hand from the
   rules in the headers (malformed JSON, text before a call, markers without a call, Llama 3's
   ";"-separated calls as vLLM's llama3_json parser accepts, a reasoning block before a call, ...).

   "reasoning_cases": Qwen3 renderings of an assistant reply with reasoning_content (rendered,
   cut as above) and hand-written texts for the <think> split.

2. tests/data/chat/tool_roundtrip_fixtures.json, in the case format of chat_fixtures.json
   (name, template, variables, expected or error + error_type): system (not for Mistral: its
   template moves the system message into the last user turn), user, an assistant message with
   "content": null and tool_calls whose function.arguments is a dict, then a "tool" message with
   tool_call_id and content, and add_generation_prompt=True. Arguments are a dict because that is
   what vLLM hands the template: vllm/entrypoints/chat_utils.py (_postprocess_messages) replaces
   each assistant tool call's JSON-string function.arguments by json.loads(arguments) before
   rendering, and transformers' docs ask for dicts. vLLM also turns "content": null into ""
   (_parse_chat_message_content: None -> [] -> "\\n".join([]) for string-content templates), so
   each conversation is recorded both ways; Qwen3's template fails on null content in jinja2 itself
   ("'</think>' in message.content": TypeError "argument of type 'NoneType' is not iterable").
   Mistral's template requires 9-character alphanumeric ids; the others get OpenAI-style ids.
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_chat_fixtures as chat  # noqa: E402 - the same environment as the chat fixtures

REPO = HERE.parents[1]
CHAT_DIR = REPO / "tests" / "data" / "chat"

FAMILIES = ("qwen3", "qwen2_5", "llama3_1", "llama3_2", "mistral_instruct")
FORMATS = {"qwen3": "hermes", "qwen2_5": "hermes", "llama3_1": "llama3_json", "llama3_2": "llama3_json",
           "mistral_instruct": "mistral", "llama3": "none", "llama2": "none", "gemma3": "none", "phi3_mini": "none",
           "phi3_5_mini": "none", "phi4_mini": "none"}
END_OF_TURN = {"qwen3": "<|im_end|>\n", "qwen2_5": "<|im_end|>\n", "llama3_1": "<|eot_id|>",
               "llama3_2": "<|eot_id|>", "mistral_instruct": "</s>"}

TOOLS = chat.TOOLS
WEATHER_ARGS = chat.WEATHER_ARGS  # nested object, a boolean
SEARCH_ARGS = {"query": "北京 天气", "top_k": 3, "filters": [{"field": "lang", "value": None}]}
QUESTION = chat.TOOL_QUESTION
SYSTEM = chat.SYSTEM


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def call(name, arguments, call_id):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def ids_for(family):
    if family == "mistral_instruct":
        return ("a1B2c3D4e", "Z9y8X7w6v")
    return ("call_weather_0001", "call_search_0002")


def render(template, messages, add_generation_prompt, tools=TOOLS):
    variables = {"messages": messages, "tools": tools, "documents": None,
                 "add_generation_prompt": add_generation_prompt, **template["special_tokens_passed"]}
    variables = chat.roundtrip(variables)
    return variables, chat.run(template["text"], variables)


def rendered_case(templates, family, name, assistant, note=None, template_drops_content=False):
    template = templates[family]
    head = [QUESTION] if family == "mistral_instruct" else [SYSTEM, QUESTION]
    messages = head + [assistant]
    case = {"name": f"{family}/{name}", "kind": "rendered", "family": family, "format": FORMATS[family],
            "message": assistant}
    if note:
        case["note"] = note
    _, prompt = render(template, messages[:-1], True)
    _, full = render(template, messages, False)
    if "error" in full:
        case["error"] = full["error"]
        case["error_type"] = full["error_type"]
        return case
    prompt, full = prompt["expected"], full["expected"]
    assert full.startswith(prompt), case["name"]
    turn = full[len(prompt):]
    eot = END_OF_TURN[family]
    assert turn.endswith(eot), (case["name"], turn[-40:])
    case["text"] = turn[: -len(eot)]
    expected = {"content": "" if template_drops_content else assistant.get("content") or "",
                "tool_calls": [{"name": c["function"]["name"], "arguments": compact(c["function"]["arguments"])}
                               for c in assistant.get("tool_calls", [])]}
    if family == "qwen3":
        expected = {"reasoning": assistant.get("reasoning_content") or "", **expected}
        case["starts_in_reasoning"] = False
    case["expected"] = expected
    return case


def hand(family, name, text, content, calls=(), note=None, reasoning=None, starts_in_reasoning=False):
    case = {"name": f"{family}/{name}", "kind": "hand-written", "family": family, "format": FORMATS[family],
            "text": text}
    if note:
        case["note"] = note
    expected = {"content": content,
                "tool_calls": [{"name": n, "arguments": compact(a)} for n, a in calls]}
    if reasoning is not None:
        expected = {"reasoning": reasoning, **expected}
        case["starts_in_reasoning"] = starts_in_reasoning
    case["expected"] = expected
    return case


def tool_call_cases(templates):
    cases = []
    for family in FAMILIES:
        w, s = ids_for(family)
        one = {"role": "assistant", "content": "", "tool_calls": [call("get_current_weather", WEATHER_ARGS, w)]}
        two = {"role": "assistant", "content": "",
               "tool_calls": [call("get_current_weather", WEATHER_ARGS, w), call("search_docs", SEARCH_ARGS, s)]}
        cases.append(rendered_case(templates, family, "one_call", one))
        cases.append(rendered_case(templates, family, "two_calls", two,
                                   note="Llama 3.x templates render one call only (raise_exception)"
                                   if family.startswith("llama") else None))
        if family in ("qwen3", "qwen2_5"):
            cases.append(rendered_case(templates, family, "text_then_two_calls",
                                       {**two, "content": "Let me check both."},
                                       note="the template writes content + '\\n' before the first call"))
            cases.append(rendered_case(templates, family, "content_none_one_call", {**one, "content": None}))
        if family == "qwen3":
            cases.append(rendered_case(templates, family, "reasoning_then_call",
                                       {**one, "reasoning_content": "The user wants the weather.\nCall the tool."},
                                       note="a Qwen3 reasoning block followed by a tool call"))
        if family == "mistral_instruct":
            cases.append(rendered_case(templates, family, "content_ignored_one_call",
                                       {**one, "content": "Let me check."}, template_drops_content=True,
                                       note="the template drops the content of a message with tool calls, "
                                       "so the expected content is empty"))

    weather = ("get_current_weather", WEATHER_ARGS)
    search = ("search_docs", SEARCH_ARGS)
    wj = compact(WEATHER_ARGS)
    hermes_weather = '<tool_call>\n{"name": "get_current_weather", "arguments": ' + json.dumps(WEATHER_ARGS) + "}\n</tool_call>"
    hermes_search = ('<tool_call>\n{"name": "search_docs", "arguments": ' + json.dumps(SEARCH_ARGS, ensure_ascii=False)
                     + "}\n</tool_call>")
    bad_json = '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": }\n</tool_call>'
    cases += [
        hand("qwen2_5", "plain_text", "No tools needed: 2 + 2 = 4.\n", "No tools needed: 2 + 2 = 4.\n"),
        hand("qwen2_5", "text_before_call", "I'll look that up.\n\n" + hermes_weather, "I'll look that up.", [weather],
             note="whitespace directly before a call is not content"),
        hand("qwen2_5", "text_after_call", hermes_weather + "\nDone.", "Done.", [weather]),
        hand("qwen2_5", "compact_block", '<tool_call>{"name":"get_current_weather","arguments":' + wj + "}</tool_call>",
             "", [weather], note="no newlines inside the block"),
        hand("qwen2_5", "malformed_json", bad_json, bad_json, note="malformed JSON: the block stays content, verbatim"),
        hand("qwen2_5", "malformed_then_valid", bad_json + "\n" + hermes_search, bad_json, [search],
             note="a malformed block stays content; the next block is still a call (its whitespace before is dropped)"),
        hand("qwen2_5", "arguments_not_object",
             '<tool_call>\n{"name": "get_current_weather", "arguments": "Paris"}\n</tool_call>',
             '<tool_call>\n{"name": "get_current_weather", "arguments": "Paris"}\n</tool_call>'),
        hand("qwen2_5", "name_not_string", '<tool_call>\n{"name": 7, "arguments": {}}\n</tool_call>',
             '<tool_call>\n{"name": 7, "arguments": {}}\n</tool_call>'),
        hand("qwen2_5", "unclosed_block", "Checking.\n" + hermes_weather[:-len("</tool_call>")],
             "Checking.\n" + hermes_weather[:-len("</tool_call>")], note="a call without its closing marker is not a call"),
        hand("qwen2_5", "marker_like_text", "Use <tool_call> tags, or <tool_ca", "Use <tool_call> tags, or <tool_ca",
             note="an opened block that never closes, and a marker's start at the very end, are content"),
        hand("qwen3", "starts_in_reasoning_then_call",
             "The user wants the weather in Paris.\n</think>\n\n" + hermes_weather,
             "", [weather], reasoning="The user wants the weather in Paris.", starts_in_reasoning=True,
             note="the prompt ended with '<think>\\n' (newer Qwen3 templates): no opening marker in the output"),
        hand("qwen3", "reasoning_text_then_calls",
             "<think>\nTwo lookups.\n</think>\n\nChecking both.\n" + hermes_weather + "\n" + hermes_search,
             "Checking both.", [weather, search], reasoning="Two lookups."),
        hand("llama3_1", "python_tag", "<|python_tag|>" + '{"name": "get_current_weather", "parameters": ' + wj + "}",
             "", [weather]),
        hand("llama3_1", "two_calls_semicolon",
             '{"name": "get_current_weather", "parameters": ' + json.dumps(WEATHER_ARGS) + '}; {"name": "search_docs", '
             '"parameters": ' + json.dumps(SEARCH_ARGS, ensure_ascii=False) + "}",
             "", [weather, search], note="several calls separated by ';', as vLLM's llama3_json parser accepts"),
        hand("llama3_2", "arguments_key", '{"name": "get_current_weather", "arguments": ' + wj + "}", "", [weather],
             note="'arguments' where 'parameters' is absent, as vLLM accepts"),
        hand("llama3_2", "text_before_call", "Sure! " + '{"name": "get_current_weather", "parameters": ' + wj + "}",
             "Sure! " + '{"name": "get_current_weather", "parameters": ' + wj + "}",
             note="calls count only at the start of the output"),
        hand("llama3_2", "malformed_json", '{"name": "get_current_weather", "parameters": {"location": }}',
             '{"name": "get_current_weather", "parameters": {"location": }}'),
        hand("llama3_2", "call_then_text", '{"name": "get_current_weather", "parameters": ' + wj + "}\nThat is all.",
             "That is all.", [weather]),
        hand("llama3_2", "plain_json_answer", '{"answer": 4}', '{"answer": 4}', note="an object without name: content"),
        hand("llama3_2", "plain_text", "Hello there.", "Hello there."),
        hand("mistral_instruct", "no_space", '[TOOL_CALLS][{"name": "get_current_weather", "arguments": ' + wj + "}]",
             "", [weather]),
        hand("mistral_instruct", "text_before_call",
             'Checking. [TOOL_CALLS] [{"name": "get_current_weather", "arguments": ' + wj + ', "id": "a1B2c3D4e"}]',
             "Checking.", [weather]),
        hand("mistral_instruct", "malformed_json",
             '[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": }}]',
             '[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": }}]'),
        hand("mistral_instruct", "one_bad_element",
             '[TOOL_CALLS] [{"name": "get_current_weather", "arguments": ' + wj + '}, {"name": "search_docs"}]',
             '[TOOL_CALLS] [{"name": "get_current_weather", "arguments": ' + wj + '}, {"name": "search_docs"}]',
             note="the array is taken as a whole: one invalid element leaves it all content"),
        hand("mistral_instruct", "marker_without_array", "[TOOL_CALLS] none today", "[TOOL_CALLS] none today"),
    ]
    return cases


def reasoning_cases(templates):
    cases = []
    template = templates["qwen3"]
    for name, message in (
        ("rendered_reasoning_reply", {"role": "assistant", "content": "The answer is 4.",
                                      "reasoning_content": "2 plus 2 makes 4.\n\nSo: 4."}),
        ("rendered_empty_reasoning", {"role": "assistant", "content": "Hello!"}),
        ("rendered_newlines_trimmed", {"role": "assistant", "content": "\n\nHi.\n",
                                       "reasoning_content": "\nthink\n"}),
    ):
        messages = [{"role": "user", "content": "What is 2+2?"}, message]
        _, prompt = render(template, messages[:-1], True, tools=None)
        _, full = render(template, messages, False, tools=None)
        prompt, full = prompt["expected"], full["expected"]
        assert full.startswith(prompt) and full.endswith("<|im_end|>\n")
        # The template writes reasoning_content.strip('\n') and content.lstrip('\n').
        cases.append({"name": f"qwen3/{name}", "kind": "rendered", "message": message,
                      "text": full[len(prompt):-len("<|im_end|>\n")], "starts_in_reasoning": False,
                      "expected": {"reasoning": (message.get("reasoning_content") or "").strip("\n"),
                                   "content": message["content"].lstrip("\n")}})

    def h(name, text, reasoning, content, starts=False, note=None, **options):
        case = {"name": f"qwen3/{name}", "kind": "hand-written", "text": text, "starts_in_reasoning": starts,
                "expected": {"reasoning": reasoning, "content": content}}
        if options:
            case["options"] = options
        if note:
            case["note"] = note
        return case

    cases += [
        h("opened_by_prompt", "\nI should greet.\n</think>\n\nHello!", "I should greet.", "Hello!", starts=True),
        h("opened_by_prompt_no_newlines", "Thinking</think>Answer", "Thinking", "Answer", starts=True),
        h("truncated_in_reasoning", "<think>\nStill thinking about", "Still thinking about", "",
          note="no </think>: all reasoning"),
        h("truncated_flag", "Still thinking\n\n", "Still thinking", "", starts=True),
        h("no_reasoning", "Just an answer.\n", "", "Just an answer.\n", note="no flag, no <think>: all content verbatim"),
        h("stray_close_not_opened", "Answer </think> more", "", "Answer </think> more",
          note="not opened: a </think> later on is content"),
        h("thinking_disabled_output", "\n\nHello!", "", "\n\nHello!",
          note="enable_thinking=false puts <think>\\n\\n</think>\\n\\n in the prompt; the output is content verbatim"),
        h("second_close_is_content", "<think>a</think>b</think>c", "a", "b</think>c"),
        h("inner_newlines_kept", "<think>\n\nline one\n\nline two\n\n</think>\n\n\nreply\n\nend\n",
          "line one\n\nline two", "reply\n\nend\n"),
        h("spaces_not_stripped", "<think> a </think> b", " a ", " b", note="only newlines are stripped"),
        h("leading_space_then_open", "  <think>x</think>y", "x", "y"),
        h("flag_with_open_marker", "<think>\nx\n</think>\ny", "x", "y", starts=True,
          note="a <think> at the start is skipped even when the prompt opened reasoning"),
        h("keep_newlines", "<think>\nx\n</think>\n\ny", "\nx\n", "\n\ny", keep_newlines=True,
          note="vLLM's qwen3 parser: partition at </think>, nothing stripped"),
        h("inline", "<think>\nx\n</think>\n\ny", "", "<think>\nx\n</think>\n\ny", split=False),
        h("inline_flag", "x</think>y", "", "x</think>y", starts=True, split=False),
        h("marker_prefix_at_end", "<think>a</thi", "a</thi", ""),
        h("open_prefix_only", "<thi", "", "<thi"),
        h("empty", "", "", ""),
        h("empty_flag", "", "", "", starts=True),
    ]
    return cases


def roundtrip_cases(templates):
    cases = []
    for family in FAMILIES:
        template = templates[family]
        w, s = ids_for(family)
        calls_one = [call("get_current_weather", WEATHER_ARGS, w)]
        calls_two = calls_one + [call("search_docs", SEARCH_ARGS, s)]
        results = [{"role": "tool", "tool_call_id": w, "content": '{"temperature": 22.5, "condition": "sunny"}'},
                   {"role": "tool", "tool_call_id": s, "content": "Beijing: capital of China."}]
        head = [QUESTION] if family == "mistral_instruct" else [SYSTEM, QUESTION]
        shapes = [("one_call", calls_one, results[:1])]
        if not family.startswith("llama"):
            shapes.append(("two_calls", calls_two, results))
        for shape, calls, tool_messages in shapes:
            as_strings = [{**c, "function": {**c["function"], "arguments": json.dumps(c["function"]["arguments"],
                                                                                   ensure_ascii=False)}}
                          for c in calls]
            variants = [
                ("content_null", {"content": None, "tool_calls": calls},
                 "OpenAI's request as sent (assistant content null), arguments parsed to a dict as vLLM does"),
                ("content_empty", {"content": "", "tool_calls": calls},
                 "as vLLM hands it to the template: content null becomes '', arguments a dict"),
                ("arguments_string", {"content": "", "tool_calls": as_strings},
                 "arguments left as OpenAI's JSON string (not what vLLM passes): Qwen3 prints the string as is, the "
                 "other templates quote it with tojson"),
            ]
            if family == "qwen3":
                variants.append(("content_null_reasoning_empty", {"content": None, "reasoning_content": "",
                                                                  "tool_calls": calls},
                                 "with reasoning_content the template skips the '</think>' test, then adds "
                                 "content (None) to a string"))
            for variant, fields, note in variants:
                messages = head + [{"role": "assistant", **fields}] + tool_messages
                variables, outcome = render(template, messages, True)
                case = {"name": f"{family}/roundtrip_{shape}_{variant}", "template": family, "note": note,
                        "variables": variables}
                case.update(outcome)
                cases.append(case)
    return cases


def main():
    fixtures = json.loads((CHAT_DIR / "chat_fixtures.json").read_text(encoding="utf-8"))
    templates = fixtures["templates"]
    generator = ("tests/reference/make_tool_fixtures.py with jinja2 %s, templates from "
                 "tests/data/chat/chat_fixtures.json" % chat.jinja2.__version__)

    tool_data = {
        "generator": generator,
        "cut": "rendered cases: text = render(messages)[len(render(messages[:-1], add_generation_prompt=True)):] "
               "without the end-of-turn text that follows the assistant turn (end_of_turn below)",
        "arguments": "expected arguments = json.dumps(arguments, ensure_ascii=False, separators=(',', ':'))",
        "end_of_turn": {f: END_OF_TURN[f] for f in FAMILIES},
        "formats": FORMATS,
        "cases": tool_call_cases(templates),
        "reasoning_cases": reasoning_cases(templates),
    }
    roundtrip_data = {
        "generator": generator,
        "environment": fixtures["environment"],
        "note": "same case format as chat_fixtures.json; templates are chat_fixtures.json's",
        "cases": roundtrip_cases(templates),
    }
    for name, data in (("tool_call_fixtures.json", tool_data), ("tool_roundtrip_fixtures.json", roundtrip_data)):
        path = CHAT_DIR / name
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path} ({len(data['cases'])} cases)")


if __name__ == "__main__":
    main()
