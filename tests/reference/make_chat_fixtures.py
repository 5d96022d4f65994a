#!/usr/bin/env python3
"""Writes tests/data/chat/chat_fixtures.json: the independent reference for maskgen's Jinja
chat-template interpreter.

How it was run (from the repository root; any Python 3 with jinja2 >= 3.1 will do, e.g. Debian's
python3-jinja2; it was run with jinja2 3.1.6 on Python 3.11):

    python3 tests/reference/make_chat_fixtures.py

It needs no network, numpy, torch or transformers. It reproduces the rendering environment of
Hugging Face transformers' `apply_chat_template` (transformers 4.4x and 5.x,
`src/transformers/utils/chat_template_utils.py`: `_compile_jinja_template` /
`_cached_compile_jinja_template` and `render_jinja_template`; `tokenization_utils_base.py`:
`apply_chat_template`):

  * `jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
    extensions=[AssistantTracker, jinja2.ext.loopcontrols])`, everything else at jinja2's
    defaults (autoescape off, keep_trailing_newline off, the default lenient `Undefined`);
  * the `tojson` filter replaced by `json.dumps(x, ensure_ascii=False, indent=indent,
    separators=separators, sort_keys=sort_keys)` (no HTML escaping, keys in insertion order);
  * globals `raise_exception(message)` (raises `jinja2.exceptions.TemplateError(message)`) and
    `strftime_now(format)`. transformers formats `datetime.now()`; here the clock is FIXED at
    2024-07-26 00:00:00 so the fixtures do not change from day to day;
  * the render call `compiled.render(messages=chat, tools=tools_or_None, documents=None,
    add_generation_prompt=False_by_default, **{**tokenizer.special_tokens_map, **kwargs})`:
    `tools` and `documents` are passed as None (not left undefined) when not given, the messages
    are the caller's dicts unchanged, and the special tokens are the named ones (bos, eos, unk,
    sep, pad, cls, mask) whose value is not None.

Template sources: qwen3 and llama3 are read from ../shared/tokenizers/*/tokenizer_config.json
and gemma3 from the tokenizer_config.json inside ../shared/tokenizers/gemma3.tar.xz (the shared
test data beside the checkout, or --shared DIR); the others are embedded below,
copied verbatim from the public files named in TEMPLATE_SOURCES.
"""
import argparse
import datetime
import hashlib
import json
import platform
import sys
import tarfile
from pathlib import Path

import jinja2
import jinja2.exceptions
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# ---------------------------------------------------------------------------------------------
# transformers' environment
# ---------------------------------------------------------------------------------------------

FIXED_NOW = datetime.datetime(2024, 7, 26, 0, 0, 0)


class AssistantTracker(jinja2.ext.Extension):
    """transformers' `{% generation %}...{% endgeneration %}` tag. It only records where assistant
    text lies when `return_assistant_tokens_mask=True`; for rendering it outputs its body as is,
    which is all that is reproduced here."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_generation_support")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):  # noqa: A002 - transformers' parameter name
    return FIXED_NOW.strftime(format)


def make_env():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENVIRONMENT = {
    "class": "jinja2.sandbox.ImmutableSandboxedEnvironment",
    "trim_blocks": True,
    "lstrip_blocks": True,
    "keep_trailing_newline": False,
    "autoescape": False,
    "undefined": "jinja2.Undefined (the default): prints as '', is falsy, iterates as empty, has length 0; "
    "attribute or item access on it raises UndefinedError",
    "extensions": [
        "AssistantTracker: {% generation %}...{% endgeneration %} renders its body unchanged",
        "jinja2.ext.loopcontrols: {% break %} and {% continue %}",
    ],
    "filters_replaced": {
        "tojson": "tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) = "
        "json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys): "
        "no HTML escaping, non-ASCII kept, keys in insertion order, separators (', ', ': ') without indent "
        "and (',', ': ') with indent"
    },
    "globals_added": {
        "raise_exception": "raise_exception(message) raises jinja2.exceptions.TemplateError(message); str(e) == message",
        "strftime_now": "strftime_now(format) = now.strftime(format); transformers uses datetime.now(), "
        "these fixtures use the FIXED time below",
    },
    "fixed_now": FIXED_NOW.isoformat(),
    "render_call": "compiled.render(messages=chat, tools=tools, documents=documents, "
    "add_generation_prompt=add_generation_prompt, **{**special_tokens_map, **kwargs})",
    "render_defaults": {
        "tools": "None (passed explicitly, so `tools is defined` is true and `tools is none` is true)",
        "documents": "None (passed explicitly)",
        "add_generation_prompt": "False (passed explicitly)",
    },
    "special_tokens_map": "the named special tokens bos_token, eos_token, unk_token, sep_token, pad_token, "
    "cls_token, mask_token whose value is not None (a None one is NOT passed, so it is undefined in the "
    "template); kwargs such as enable_thinking or date_string are added after them and win on a clash",
    "messages": "the caller's list of dicts, passed unchanged (dict keys are reachable both as "
    "message['key'] and message.key)",
    "variables_in_fixtures": "every case records in 'variables' exactly the keyword arguments given to "
    "render(), in order; JSON null is Python None; JSON numbers written with a '.' or exponent are floats",
}

# ---------------------------------------------------------------------------------------------
# Templates. Embedded texts are verbatim copies (split into string pieces only for line length;
# the script checks each one's sha256 before use).
# ---------------------------------------------------------------------------------------------

# 2507 characters, sha256 cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f
QWEN2_5_TEMPLATE = (
    '{%- if tools %}\n'
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    '    {%- else %}\n'
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    '    {%- endif %}\n'
    '    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}\n'
    '    {%- for tool in tools %}\n'
    '        {{- "\\n" }}\n'
    '        {{- tool | tojson }}\n'
    '    {%- endfor %}\n'
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}\n'
    '{%- else %}\n'
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    '    {%- else %}\n'
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    '    {%- endif %}\n'
    '{%- endif %}\n'
    '{%- for message in messages %}\n'
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}'
    '\n'
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n'
    "        {{- '<|im_start|>' + message.role }}\n"
    '        {%- if message.content %}\n'
    "            {{- '\\n' + message.content }}\n"
    '        {%- endif %}\n'
    '        {%- for tool_call in message.tool_calls %}\n'
    '            {%- if tool_call.function is defined %}\n'
    '                {%- set tool_call = tool_call.function %}\n'
    '            {%- endif %}\n'
    '            {{- \'\\n<tool_call>\\n{"name": "\' }}\n'
    '            {{- tool_call.name }}\n'
    '            {{- \'", "arguments": \' }}\n'
    '            {{- tool_call.arguments | tojson }}\n'
    "            {{- '}\\n</tool_call>' }}\n"
    '        {%- endfor %}\n'
    "        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n"
    '        {%- endif %}\n'
    "        {{- '\\n<tool_response>\\n' }}\n"
    '        {{- message.content }}\n'
    "        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n"
    '        {%- endif %}\n'
    '    {%- endif %}\n'
    '{%- endfor %}\n'
    '{%- if add_generation_prompt %}\n'
    "    {{- '<|im_start|>assistant\\n' }}\n"
    '{%- endif %}\n'
)

# 4614 characters, sha256 e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65
LLAMA3_1_TEMPLATE = (
    '{{- bos_token }}\n'
    '{%- if custom_tools is defined %}\n'
    '    {%- set tools = custom_tools %}\n'
    '{%- endif %}\n'
    '{%- if not tools_in_user_message is defined %}\n'
    '    {%- set tools_in_user_message = true %}\n'
    '{%- endif %}\n'
    '{%- if not date_string is defined %}\n'
    '    {%- set date_string = "26 Jul 2024" %}\n'
    '{%- endif %}\n'
    '{%- if not tools is defined %}\n'
    '    {%- set tools = none %}\n'
    '{%- endif %}\n'
    '\n'
    '{#- This block extracts the system message, so we can slot it into the right place. #}\n'
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    '    {%- set messages = messages[1:] %}\n'
    '{%- else %}\n'
    '    {%- set system_message = "" %}\n'
    '{%- endif %}\n'
    '\n'
    '{#- System message + builtin tools #}\n'
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}\n'
    '{%- if builtin_tools is defined or tools is not none %}\n'
    '    {{- "Environment: ipython\\n" }}\n'
    '{%- endif %}\n'
    '{%- if builtin_tools is defined %}\n'
    '    {{- "Tools: " + builtin_tools | reject(\'equalto\', \'code_interpreter\') | join(", ") + "\\n\\n"}}\n'
    '{%- endif %}\n'
    '{{- "Cutting Knowledge Date: December 2023\\n" }}\n'
    '{{- "Today Date: " + date_string + "\\n\\n" }}\n'
    '{%- if tools is not none and not tools_in_user_message %}\n'
    '    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}\n'
    '    {{- \'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.\' }}\n'
    '    {{- "Do not use variables.\\n\\n" }}\n'
    '    {%- for t in tools %}\n'
    '        {{- t | tojson(indent=4) }}\n'
    '        {{- "\\n\\n" }}\n'
    '    {%- endfor %}\n'
    '{%- endif %}\n'
    '{{- system_message }}\n'
    '{{- "<|eot_id|>" }}\n'
    '\n'
    '{#- Custom tools are passed in a user message with some extra guidance #}\n'
    '{%- if tools_in_user_message and not tools is none %}\n'
    '    {#- Extract the first user message so we can plug it in here #}\n'
    '    {%- if messages | length != 0 %}\n'
    "        {%- set first_user_message = messages[0]['content']|trim %}\n"
    '        {%- set messages = messages[1:] %}\n'
    '    {%- else %}\n'
    '        {{- raise_exception("Cannot put tools in the first user message when there\'s no first user message!") }}\n'
    '{%- endif %}\n'
    "    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n"
    '    {{- "Given the following functions, please respond with a JSON for a function call " }}\n'
    '    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}\n'
    '    {{- \'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.\' }}\n'
    '    {{- "Do not use variables.\\n\\n" }}\n'
    '    {%- for t in tools %}\n'
    '        {{- t | tojson(indent=4) }}\n'
    '        {{- "\\n\\n" }}\n'
    '    {%- endfor %}\n'
    '    {{- first_user_message + "<|eot_id|>"}}\n'
    '{%- endif %}\n'
    '\n'
    '{%- for message in messages %}\n'
    "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}"
    '\n'
    "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n"
    "    {%- elif 'tool_calls' in message %}\n"
    '        {%- if not message.tool_calls|length == 1 %}\n'
    '            {{- raise_exception("This model only supports single tool-calls at once!") }}\n'
    '        {%- endif %}\n'
    '        {%- set tool_call = message.tool_calls[0].function %}\n'
    '        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}\n'
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    '            {{- "<|python_tag|>" + tool_call.name + ".call(" }}\n'
    '            {%- for arg_name, arg_val in tool_call.arguments | items %}\n'
    '                {{- arg_name + \'="\' + arg_val + \'"\' }}\n'
    '                {%- if not loop.last %}\n'
    '                    {{- ", " }}\n'
    '                {%- endif %}\n'
    '                {%- endfor %}\n'
    '            {{- ")" }}\n'
    '        {%- else  %}\n'
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    '            {{- \'{"name": "\' + tool_call.name + \'", \' }}\n'
    '            {{- \'"parameters": \' }}\n'
    '            {{- tool_call.arguments | tojson }}\n'
    '            {{- "}" }}\n'
    '        {%- endif %}\n'
    '        {%- if builtin_tools is defined %}\n'
    "            {#- This means we're in ipython mode #}\n"
    '            {{- "<|eom_id|>" }}\n'
    '        {%- else %}\n'
    '            {{- "<|eot_id|>" }}\n'
    '        {%- endif %}\n'
    '    {%- elif message.role == "tool" or message.role == "ipython" %}\n'
    '        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}\n'
    '        {%- if message.content is mapping or message.content is iterable %}\n'
    '            {{- message.content | tojson }}\n'
    '        {%- else %}\n'
    '            {{- message.content }}\n'
    '        {%- endif %}\n'
    '        {{- "<|eot_id|>" }}\n'
    '    {%- endif %}\n'
    '{%- endfor %}\n'
    '{%- if add_generation_prompt %}\n'
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    '{%- endif %}\n'
)

# 3827 characters, sha256 5816fce10444e03c2e9ee1ef8a4a1ea61ae7e69e438613f3b17b69d0426223a4
LLAMA3_2_TEMPLATE = (
    '{{- bos_token }}\n'
    '{%- if custom_tools is defined %}\n'
    '    {%- set tools = custom_tools %}\n'
    '{%- endif %}\n'
    '{%- if not tools_in_user_message is defined %}\n'
    '    {%- set tools_in_user_message = true %}\n'
    '{%- endif %}\n'
    '{%- if not date_string is defined %}\n'
    '    {%- if strftime_now is defined %}\n'
    '        {%- set date_string = strftime_now("%d %b %Y") %}\n'
    '    {%- else %}\n'
    '        {%- set date_string = "26 Jul 2024" %}\n'
    '    {%- endif %}\n'
    '{%- endif %}\n'
    '{%- if not tools is defined %}\n'
    '    {%- set tools = none %}\n'
    '{%- endif %}\n'
    '\n'
    '{#- This block extracts the system message, so we can slot it into the right place. #}\n'
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    '    {%- set messages = messages[1:] %}\n'
    '{%- else %}\n'
    '    {%- set system_message = "" %}\n'
    '{%- endif %}\n'
    '\n'
    '{#- System message #}\n'
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}\n'
    '{%- if tools is not none %}\n'
    '    {{- "Environment: ipython\\n" }}\n'
    '{%- endif %}\n'
    '{{- "Cutting Knowledge Date: December 2023\\n" }}\n'
    '{{- "Today Date: " + date_string + "\\n\\n" }}\n'
    '{%- if tools is not none and not tools_in_user_message %}\n'
    '    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}\n'
    '    {{- \'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.\' }}\n'
    '    {{- "Do not use variables.\\n\\n" }}\n'
    '    {%- for t in tools %}\n'
    '        {{- t | tojson(indent=4) }}\n'
    '        {{- "\\n\\n" }}\n'
    '    {%- endfor %}\n'
    '{%- endif %}\n'
    '{{- system_message }}\n'
    '{{- "<|eot_id|>" }}\n'
    '\n'
    '{#- Custom tools are passed in a user message with some extra guidance #}\n'
    '{%- if tools_in_user_message and not tools is none %}\n'
    '    {#- Extract the first user message so we can plug it in here #}\n'
    '    {%- if messages | length != 0 %}\n'
    "        {%- set first_user_message = messages[0]['content']|trim %}\n"
    '        {%- set messages = messages[1:] %}\n'
    '    {%- else %}\n'
    '        {{- raise_exception("Cannot put tools in the first user message when there\'s no first user message!") }}\n'
    '{%- endif %}\n'
    "    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n"
    '    {{- "Given the following functions, please respond with a JSON for a function call " }}\n'
    '    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}\n'
    '    {{- \'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.\' }}\n'
    '    {{- "Do not use variables.\\n\\n" }}\n'
    '    {%- for t in tools %}\n'
    '        {{- t | tojson(indent=4) }}\n'
    '        {{- "\\n\\n" }}\n'
    '    {%- endfor %}\n'
    '    {{- first_user_message + "<|eot_id|>"}}\n'
    '{%- endif %}\n'
    '\n'
    '{%- for message in messages %}\n'
    "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}"
    '\n'
    "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n"
    "    {%- elif 'tool_calls' in message %}\n"
    '        {%- if not message.tool_calls|length == 1 %}\n'
    '            {{- raise_exception("This model only supports single tool-calls at once!") }}\n'
    '        {%- endif %}\n'
    '        {%- set tool_call = message.tool_calls[0].function %}\n'
    "        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    '        {{- \'{"name": "\' + tool_call.name + \'", \' }}\n'
    '        {{- \'"parameters": \' }}\n'
    '        {{- tool_call.arguments | tojson }}\n'
    '        {{- "}" }}\n'
    '        {{- "<|eot_id|>" }}\n'
    '    {%- elif message.role == "tool" or message.role == "ipython" %}\n'
    '        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}\n'
    '        {%- if message.content is mapping or message.content is iterable %}\n'
    '            {{- message.content | tojson }}\n'
    '        {%- else %}\n'
    '            {{- message.content }}\n'
    '        {%- endif %}\n'
    '        {{- "<|eot_id|>" }}\n'
    '    {%- endif %}\n'
    '{%- endfor %}\n'
    '{%- if add_generation_prompt %}\n'
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    '{%- endif %}\n'
)

# 3959 characters, sha256 e16746b40344d6c5b5265988e0328a0bf7277be86f1c335156eae07e29c82826
MISTRAL_V0_3_TEMPLATE = (
    '{%- if messages[0]["role"] == "system" %}\n'
    '    {%- set system_message = messages[0]["content"] %}\n'
    '    {%- set loop_messages = messages[1:] %}\n'
    '{%- else %}\n'
    '    {%- set loop_messages = messages %}\n'
    '{%- endif %}\n'
    '{%- if not tools is defined %}\n'
    '    {%- set tools = none %}\n'
    '{%- endif %}\n'
    '{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}\n'
    '\n'
    '{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}\n'
    '{%- set ns = namespace() %}\n'
    '{%- set ns.index = 0 %}\n'
    '{%- for message in loop_messages %}\n'
    '    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}'
    '\n'
    '        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}\n'
    '            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}\n'
    '        {%- endif %}\n'
    '        {%- set ns.index = ns.index + 1 %}\n'
    '    {%- endif %}\n'
    '{%- endfor %}\n'
    '\n'
    '{{- bos_token }}\n'
    '{%- for message in loop_messages %}\n'
    '    {%- if message["role"] == "user" %}\n'
    '        {%- if tools is not none and (message == user_messages[-1]) %}\n'
    '            {{- "[AVAILABLE_TOOLS] [" }}\n'
    '            {%- for tool in tools %}\n'
    '                {%- set tool = tool.function %}\n'
    '                {{- \'{"type": "function", "function": {\' }}\n'
    '                {%- for key, val in tool.items() if key != "return" %}\n'
    '                    {%- if val is string %}\n'
    '                        {{- \'"\' + key + \'": "\' + val + \'"\' }}\n'
    '                    {%- else %}\n'
    '                        {{- \'"\' + key + \'": \' + val|tojson }}\n'
    '                    {%- endif %}\n'
    '                    {%- if not loop.last %}\n'
    '                        {{- ", " }}\n'
    '                    {%- endif %}\n'
    '                {%- endfor %}\n'
    '                {{- "}}" }}\n'
    '                {%- if not loop.last %}\n'
    '                    {{- ", " }}\n'
    '                {%- else %}\n'
    '                    {{- "]" }}\n'
    '                {%- endif %}\n'
    '            {%- endfor %}\n'
    '            {{- "[/AVAILABLE_TOOLS]" }}\n'
    '            {%- endif %}\n'
    '        {%- if loop.last and system_message is defined %}\n'
    '            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}\n'
    '        {%- else %}\n'
    '            {{- "[INST] " + message["content"] + "[/INST]" }}\n'
    '        {%- endif %}\n'
    '    {%- elif message.tool_calls is defined and message.tool_calls is not none %}\n'
    '        {{- "[TOOL_CALLS] [" }}\n'
    '        {%- for tool_call in message.tool_calls %}\n'
    '            {%- set out = tool_call.function|tojson %}\n'
    '            {{- out[:-1] }}\n'
    '            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}\n'
    '                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}\n'
    '            {%- endif %}\n'
    '            {{- \', "id": "\' + tool_call.id + \'"}\' }}\n'
    '            {%- if not loop.last %}\n'
    '                {{- ", " }}\n'
    '            {%- else %}\n'
    '                {{- "]" + eos_token }}\n'
    '            {%- endif %}\n'
    '        {%- endfor %}\n'
    '    {%- elif message["role"] == "assistant" %}\n'
    '        {{- " " + message["content"]|trim + eos_token}}\n'
    '    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}\n'
    '        {%- if message.content is defined and message.content.content is defined %}\n'
    '            {%- set content = message.content.content %}\n'
    '        {%- else %}\n'
    '            {%- set content = message.content %}\n'
    '        {%- endif %}\n'
    '        {{- \'[TOOL_RESULTS] {"content": \' + content|string + ", " }}\n'
    '        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}\n'
    '            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}\n'
    '        {%- endif %}\n'
    '        {{- \'"call_id": "\' + message.tool_call_id + \'"}[/TOOL_RESULTS]\' }}\n'
    '    {%- else %}\n'
    '        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}\n'
    '    {%- endif %}\n'
    '{%- endfor %}\n'
)

# 815 characters, sha256 e8d5b5a546d3f19df16a5320c614fab05bdc4edd50e850f1afd947b503ea41cf
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    '{% set loop_messages = messages %}{% set system_message = false %}{% endif %}'
    '{% for message in loop_messages %}'
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    '{% if loop.index0 == 0 and system_message != false %}'
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# 407 characters, sha256 dcaee66df77bfbb789ec541fe713218da30225a526f1db97138fc39ee6dc56aa
PHI3_MINI_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# 430 characters, sha256 78d976a442bcde2f0be15aafbb8e3050e1104f86732266f68403251b89982a90
PHI3_5_MINI_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# 423 characters, sha256 febf589225c9728ab791f52e8897d7607a823d45368f0a4c92fa68997b40cce9
PHI4_MINI_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and "
    "message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + "
    "message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + "
    "message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

EMBEDDED_SHA256 = {
    "qwen2_5": "cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f",
    "llama3_1": "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65",
    "llama3_2": "5816fce10444e03c2e9ee1ef8a4a1ea61ae7e69e438613f3b17b69d0426223a4",
    "mistral_instruct": "e16746b40344d6c5b5265988e0328a0bf7277be86f1c335156eae07e29c82826",
    "llama2": "e8d5b5a546d3f19df16a5320c614fab05bdc4edd50e850f1afd947b503ea41cf",
    "phi3_mini": "dcaee66df77bfbb789ec541fe713218da30225a526f1db97138fc39ee6dc56aa",
    "phi3_5_mini": "78d976a442bcde2f0be15aafbb8e3050e1104f86732266f68403251b89982a90",
    "phi4_mini": "febf589225c9728ab791f52e8897d7607a823d45368f0a4c92fa68997b40cce9",
}

LLAMA_CPP = "github.com/ggerganov/llama.cpp @ c392e5094deaf2d1a7c18683214f007fad3fe42b"
HF_JS = "github.com/huggingface/huggingface.js @ fe42e68017ffc76d09922ea8f9b38a6964345710"
GUIDANCE = "github.com/guidance-ai/guidance @ 5413339aad8d36ce49df29902a7730d025bd6027"
PHI3_TOKENS = {"bos_token": "<s>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>"}

# name -> (model, where the text came from, special tokens as in the model's tokenizer_config.json)
TEMPLATE_SOURCES = {
    "qwen3": {
        "model": "Qwen3 (tokenizer_config.json as published)",
        "source": "../shared/tokenizers/qwen3/tokenizer_config.json, key chat_template",
    },
    "llama3": {
        "model": "Llama 3 (tokenizer_config.json as published; the base model's template, which appends the "
        "assistant header whatever add_generation_prompt is)",
        "source": "../shared/tokenizers/llama3/tokenizer_config.json, key chat_template",
    },
    "qwen2_5": {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "source": LLAMA_CPP + ", models/templates/Qwen-Qwen2.5-7B-Instruct.jinja (written by "
        "scripts/get_chat_template.py from the model's tokenizer_config.json with sys.stdout.write, i.e. "
        "verbatim); byte-identical to the tokenizer.chat_template of Ollama's qwen2.5-coder:1.5b GGUF as "
        "recorded in " + HF_JS + ", packages/ollama-utils/src/chat-template-automap.ts",
        "tokens": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None},
    },
    "llama3_1": {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "source": LLAMA_CPP + ", models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja (verbatim, see "
        "qwen2_5); byte-identical to Ollama's llama3.1:8b GGUF template in " + HF_JS
        + ", packages/ollama-utils/src/chat-template-automap.ts",
        "tokens": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": None, "unk_token": None},
    },
    "llama3_2": {
        "model": "meta-llama/Llama-3.2-3B-Instruct (added: unlike 3.1 it calls strftime_now)",
        "source": LLAMA_CPP + ", models/templates/meta-llama-Llama-3.2-3B-Instruct.jinja (verbatim, see qwen2_5)",
        "tokens": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": None, "unk_token": None},
    },
    "mistral_instruct": {
        "model": "mistralai/Mistral-7B-Instruct-v0.3 (the 'v3' template with tool support, shared with "
        "Mistral-Large-Instruct-2407)",
        "source": LLAMA_CPP + ", tests/test-chat-template.cpp, entry \"Mistral-Large-Instruct-2407 (mistralai "
        "'v3' template...)\", C string literal decoded; the HF file itself was not reachable offline. The same "
        "text appears in public code as the chat template of lmstudio-community/Mistral-7B-Instruct-v0.3-GGUF "
        "and as a copy of mistralai/Mistral-7B-Instruct-v0.3's template (compared by eye, not byte for byte)",
        "tokens": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": None, "unk_token": "<unk>"},
    },
    "llama2": {
        "model": "meta-llama/Llama-2-7b-chat-hf",
        "source": HF_JS + ", packages/ollama-utils/src/chat-template-automap.ts, entry library/llama2:7b (the "
        "tokenizer.chat_template stored in Ollama's llama2:7b GGUF, converted from meta-llama/Llama-2-7b-chat-hf); "
        "the HF file itself was not reachable offline; the same text appears in several public code copies "
        "of the Llama-2-chat template",
        "tokens": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": None, "unk_token": "<unk>"},
    },
    "gemma3": {
        "model": "Gemma 3 instruction-tuned (tokenizer_config.json as published with the Gemma 3 tokenizer)",
        "source": "../shared/tokenizers/gemma3.tar.xz, member ./tokenizer_config.json, key chat_template (read "
        "from the archive without unpacking it)",
    },
    "phi3_mini": {
        "model": "microsoft/Phi-3-mini-4k-instruct (the template of its July 2024 update, with a system role)",
        "source": GUIDANCE + ", guidance/chat.py, phi3_mini_template (commented there as copied from the model's "
        "tokenizer_config.json#L119); the same text is in a public copy of the model's whole tokenizer_config.json "
        "(a C# tokenizer test, with bos <s>, eos and pad <|endoftext|>, unk <unk>, which are used here); the HF file "
        "itself was not reachable offline",
        "tokens": PHI3_TOKENS,
    },
    "phi3_5_mini": {
        "model": "microsoft/Phi-3.5-mini-instruct (skips a system message whose content is empty)",
        "source": LLAMA_CPP + ", models/templates/microsoft-Phi-3.5-mini-instruct.jinja (verbatim, see qwen2_5); "
        "special tokens taken to be Phi-3-mini's (the same tokenizer); only eos_token is read by the template",
        "tokens": PHI3_TOKENS,
    },
    "phi4_mini": {
        "model": "microsoft/Phi-4-mini-instruct (no newlines; a system message may carry a 'tools' string)",
        "source": GUIDANCE + ", guidance/chat.py, phi_4_mini_template (commented there as copied from the model's "
        "tokenizer_config.json#L104, 2025-06-16); the same text appears in other public copies (Berkeley "
        "function-calling leaderboard handlers, onnxruntime-genai's tests); special tokens: bos <|endoftext|> as "
        "the leaderboard handler records it, eos, pad and unk taken to be <|endoftext|> too (not checked against "
        "the file); the template reads eos_token only",
        "tokens": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>"},
    },
}

EMBEDDED = {
    "qwen2_5": QWEN2_5_TEMPLATE,
    "llama3_1": LLAMA3_1_TEMPLATE,
    "llama3_2": LLAMA3_2_TEMPLATE,
    "mistral_instruct": MISTRAL_V0_3_TEMPLATE,
    "llama2": LLAMA2_TEMPLATE,
    "phi3_mini": PHI3_MINI_TEMPLATE,
    "phi3_5_mini": PHI3_5_MINI_TEMPLATE,
    "phi4_mini": PHI4_MINI_TEMPLATE,
}

NAMED_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def token_text(value):
    """A tokenizer_config.json special token is a string or an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def load_templates(shared):
    templates = {}
    for name in ("qwen3", "llama3"):
        path = shared / "tokenizers" / name / "tokenizer_config.json"
        if not path.is_file():
            sys.exit(f"make_chat_fixtures: {path} not found (pass --shared DIR)")
        config = json.loads(path.read_text(encoding="utf-8"))
        text = config["chat_template"]
        assert isinstance(text, str), name
        tokens = {key: token_text(config.get(key)) for key in NAMED_SPECIAL_TOKENS if key in config}
        templates[name] = {**TEMPLATE_SOURCES[name], "tokens": tokens, "text": text}
    archive = shared / "tokenizers" / "gemma3.tar.xz"
    if not archive.is_file():
        sys.exit(f"make_chat_fixtures: {archive} not found (pass --shared DIR)")
    with tarfile.open(archive, "r:xz") as tar:
        config = json.loads(tar.extractfile("./tokenizer_config.json").read().decode("utf-8"))
    assert isinstance(config["chat_template"], str), "gemma3"
    tokens = {key: token_text(config.get(key)) for key in NAMED_SPECIAL_TOKENS if key in config}
    templates["gemma3"] = {**TEMPLATE_SOURCES["gemma3"], "tokens": tokens, "text": config["chat_template"]}
    for name, text in EMBEDDED.items():
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        assert digest == EMBEDDED_SHA256[name], f"{name}: embedded template text changed ({digest})"
        templates[name] = {**TEMPLATE_SOURCES[name], "text": text}
    order = ("qwen3", "llama3", "qwen2_5", "llama3_1", "llama3_2", "mistral_instruct", "llama2", "gemma3",
             "phi3_mini", "phi3_5_mini", "phi4_mini")
    return {name: templates[name] for name in order}


def special_tokens_map(tokens):
    """transformers 5's tokenizer.special_tokens_map: the named special tokens that are not None."""
    return {key: tokens[key] for key in NAMED_SPECIAL_TOKENS if tokens.get(key) is not None}


# ---------------------------------------------------------------------------------------------
# Rendering and recording
# ---------------------------------------------------------------------------------------------


def roundtrip(value):
    """What the C++ test will see: the variables after a trip through JSON."""
    return json.loads(json.dumps(value, ensure_ascii=False))


def run(template_text, variables):
    try:
        compiled = make_env().from_string(template_text)
        return {"expected": compiled.render(**variables)}
    except Exception as e:  # noqa: BLE001 - every failure is recorded
        return {"error": str(e), "error_type": type(e).__name__}


class Recorder:
    def __init__(self, templates):
        self.templates = templates
        self.cases = []
        self.names = set()

    def _add(self, case, outcome, expect_error):
        assert case["name"] not in self.names, case["name"]
        self.names.add(case["name"])
        if expect_error and "error" not in outcome:
            raise AssertionError(f"{case['name']}: expected an error, rendered {outcome['expected']!r}")
        if not expect_error and "error" in outcome:
            raise AssertionError(f"{case['name']}: unexpected {outcome['error_type']}: {outcome['error']}")
        case.update(outcome)
        self.cases.append(case)

    def chat(self, template, name, messages, *, tools=None, documents=None, add_generation_prompt=False,
             expect_error=False, note=None, **kwargs):
        """One apply_chat_template(messages, tools=..., add_generation_prompt=..., **kwargs) call."""
        tokens = special_tokens_map(self.templates[template]["tokens"])
        variables = {
            "messages": messages,
            "tools": tools,
            "documents": documents,
            "add_generation_prompt": add_generation_prompt,
            **{**tokens, **kwargs},
        }
        variables = roundtrip(variables)
        case = {"name": f"{template}/{name}", "template": template}
        if note:
            case["note"] = note
        case["variables"] = variables
        self._add(case, run(self.templates[template]["text"], variables), expect_error)

    def synthetic(self, name, template_text, variables=None, *, expect_error=False, note=None):
        variables = roundtrip(variables or {})
        case = {"name": f"synthetic/{name}", "template_text": template_text}
        if note:
            case["note"] = note
        case["variables"] = variables
        self._add(case, run(template_text, variables), expect_error)


# ---------------------------------------------------------------------------------------------
# Conversations
# ---------------------------------------------------------------------------------------------

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello, how are you?"}
A1 = {"role": "assistant", "content": "I'm fine, thank you. How can I help?"}
U2 = {"role": "user", "content": "Tell me a joke."}
A2 = {"role": "assistant", "content": "Why did the chicken cross the road? To get to the other side."}
U3 = {"role": "user", "content": "Another one, please."}
MULTI = [U1, A1, U2, A2, U3]

TRICKY_TEXT = (
    '  He said "hi" and left.\n'
    "Path: C:\\temp\\new\\file.txt and a lone backslash \\\n"
    "\tTabbed line with 'single' quotes and a {{ not_a_variable }} and {% not_a_tag %}\n"
    "Fake markers: <|im_end|> [INST] <</SYS>>  \n\n"
)
TRICKY_REPLY = '\n  Sure: "quoted", \\backslash\\, and\ttab.  \n'
UNICODE_TEXT = "你好，世界！😀 Café naïve façade — Ünïcödé; 👩‍💻 ZWJ; שלום; e\u0301 (combining); ﬁ ligature; 𝔘"
UNICODE_REPLY = "很好！🎉 Ça va très bien, merci. Привет. こんにちは。"
EMPTY_USER = {"role": "user", "content": ""}
EMPTY_ASSISTANT = {"role": "assistant", "content": ""}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and country, e.g. \"Paris, France\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "options": {
                    "type": "object",
                    "properties": {
                        "days": {"type": "integer", "minimum": 1, "maximum": 7},
                        "include_hourly": {"type": "boolean", "default": False},
                        "threshold": {"type": "number", "default": 0.5},
                    },
                    "required": ["days"],
                },
            },
            "required": ["location"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the knowledge base (支持中文查询) for exact phrases.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Text to find"},
                "filters": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "value": {"type": ["string", "number", "null"]}},
                    },
                },
                "top_k": {"type": "integer", "default": 5},
            },
            "required": ["query"],
        },
        "return": {"type": "array", "description": "Matching passages"},
    },
}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL]

WEATHER_ARGS = {"location": "Paris, France", "unit": "celsius", "options": {"days": 2, "include_hourly": True}}
SEARCH_ARGS_JSON = '{"query": "北京 天气", "top_k": 3}'
CALL_WEATHER = {"id": "call12345", "type": "function",
                "function": {"name": "get_current_weather", "arguments": WEATHER_ARGS}}
CALL_SEARCH_STR = {"id": "call67890", "type": "function",
                   "function": {"name": "search_docs", "arguments": SEARCH_ARGS_JSON}}
TOOL_QUESTION = {"role": "user", "content": "What's the weather in Paris, and what do the docs say about Beijing?"}
WEATHER_RESULT = {"role": "tool", "tool_call_id": "call12345", "name": "get_current_weather",
                  "content": '{"temperature": 22.5, "condition": "晴 (sunny)"}'}
SEARCH_RESULT = {"role": "tool", "tool_call_id": "call67890", "name": "search_docs",
                 "content": "Beijing: capital of China."}
TOOL_ANSWER = {"role": "assistant", "content": "It is 22.5 °C and sunny in Paris. Beijing is the capital of China."}


def assistant_calls(*calls, content=""):
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


# ---------------------------------------------------------------------------------------------
# Cases for the real templates
# ---------------------------------------------------------------------------------------------


def common_cases(r, t):
    """Conversations every plain chat template should accept."""
    r.chat(t, "system_user_gen", [SYSTEM, U1], add_generation_prompt=True)
    r.chat(t, "system_user_nogen", [SYSTEM, U1], add_generation_prompt=False)
    r.chat(t, "user_only_gen", [U1], add_generation_prompt=True)
    r.chat(t, "user_only_default_gen", [U1], note="add_generation_prompt not given: transformers passes False")
    r.chat(t, "multi_turn_gen", MULTI, add_generation_prompt=True)
    r.chat(t, "multi_turn_system_gen", [SYSTEM] + MULTI, add_generation_prompt=True)
    r.chat(t, "ends_with_assistant_nogen", [SYSTEM, U1, A1])
    r.chat(t, "tricky_text", [{"role": "user", "content": TRICKY_TEXT},
                              {"role": "assistant", "content": TRICKY_REPLY},
                              {"role": "user", "content": "  padded  "}], add_generation_prompt=True)
    r.chat(t, "unicode", [{"role": "system", "content": "Réponds en français. 用中文回答。"},
                          {"role": "user", "content": UNICODE_TEXT},
                          {"role": "assistant", "content": UNICODE_REPLY},
                          {"role": "user", "content": "🙂"}], add_generation_prompt=True)
    r.chat(t, "empty_contents", [EMPTY_USER, EMPTY_ASSISTANT, EMPTY_USER], add_generation_prompt=True)


def qwen3_cases(r):
    t = "qwen3"
    common_cases(r, t)
    for value in (False, True):
        r.chat(t, f"enable_thinking_{str(value).lower()}_gen", [SYSTEM, U1], add_generation_prompt=True,
               enable_thinking=value)
        r.chat(t, f"enable_thinking_{str(value).lower()}_nogen", [SYSTEM, U1], enable_thinking=value)
    r.chat(t, "enable_thinking_string_false", [U1], add_generation_prompt=True, enable_thinking="false",
           note="'is false' is an identity test: the string 'false' is not the boolean false")
    think_history = [
        {"role": "user", "content": "What is 1+1?"},
        {"role": "assistant", "content": "<think>\nSimple arithmetic.\n</think>\n\n1+1 = 2."},
        {"role": "user", "content": "And 2+2?"},
        {"role": "assistant", "content": "<think>\nAdd two and two.\n\n</think>\n\n\n2+2 = 4."},
    ]
    r.chat(t, "think_history_last_kept", think_history,
           note="reasoning of turns before the last user query is dropped; the final assistant turn keeps it")
    r.chat(t, "think_history_then_user_gen", think_history + [{"role": "user", "content": "Thanks!"}],
           add_generation_prompt=True, enable_thinking=True)
    r.chat(t, "think_unclosed_and_inline", [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "<think>inline thought</think>answer one"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "no think tags here </think> but a stray closing tag"},
    ])
    r.chat(t, "reasoning_content_field", [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "The answer is 4.", "reasoning_content": "\n2 plus 2 makes 4.\n"},
    ])
    r.chat(t, "reasoning_content_history_gen", [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "The answer is 4.", "reasoning_content": "2 plus 2 makes 4."},
        {"role": "user", "content": "And 3+3?"},
    ], add_generation_prompt=True, enable_thinking=False)
    r.chat(t, "reasoning_content_none_uses_tags", [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>greet back</think>Hello!", "reasoning_content": None},
    ])
    r.chat(t, "reasoning_content_empty_last", [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": ""},
    ])
    r.chat(t, "tools_system_gen", [SYSTEM, TOOL_QUESTION], tools=TOOLS, add_generation_prompt=True)
    r.chat(t, "tools_no_system_gen", [TOOL_QUESTION], tools=TOOLS, add_generation_prompt=True,
           enable_thinking=False)
    r.chat(t, "tools_empty_list", [SYSTEM, U1], tools=[], add_generation_prompt=True,
           note="an empty tools list is falsy: rendered as if there were no tools")
    r.chat(t, "tool_calls_round_trip_gen", [
        SYSTEM, TOOL_QUESTION,
        assistant_calls(CALL_WEATHER, CALL_SEARCH_STR),
        WEATHER_RESULT, SEARCH_RESULT,
    ], tools=TOOLS, add_generation_prompt=True,
        note="arguments as a dict (tojson) and as a JSON string (printed as is); consecutive tool messages share one user turn")
    r.chat(t, "tool_calls_with_text_and_answer", [
        TOOL_QUESTION,
        assistant_calls(CALL_WEATHER, content="<think>\nNeed the weather tool.\n</think>\n\nLet me check."),
        WEATHER_RESULT,
        TOOL_ANSWER,
    ], tools=TOOLS)
    r.chat(t, "tool_call_without_function_wrapper", [
        TOOL_QUESTION,
        {"role": "assistant", "content": "", "tool_calls": [{"name": "get_current_weather", "arguments": WEATHER_ARGS}]},
        WEATHER_RESULT,
    ], tools=TOOLS, add_generation_prompt=True)
    r.chat(t, "tool_response_as_user_multistep", [
        {"role": "user", "content": "Weather in Paris?"},
        assistant_calls(CALL_WEATHER, content="<think>call it</think>"),
        {"role": "user", "content": "<tool_response>\n22.5 C\n</tool_response>"},
        {"role": "assistant", "content": "<think>got it</think>It is 22.5 C."},
    ], note="a user message wrapped in <tool_response> does not count as the last query")
    r.chat(t, "system_not_first", [U1, {"role": "system", "content": "Be brief."}, A1, U2],
           add_generation_prompt=True)
    r.chat(t, "unknown_role_skipped", [U1, {"role": "critic", "content": "ignored"}, A1])
    r.chat(t, "error_empty_messages", [], add_generation_prompt=True, expect_error=True,
           note="messages[0] is undefined; .role on it raises (Python's message)")
    r.chat(t, "error_assistant_content_none", [
        TOOL_QUESTION, {"role": "assistant", "content": None, "tool_calls": [CALL_WEATHER]}, WEATHER_RESULT,
    ], tools=TOOLS, expect_error=True,
        note="'</think>' in None raises TypeError inside the template (Python's message)")


def llama3_cases(r):
    t = "llama3"
    common_cases(r, t)


def qwen2_5_cases(r):
    t = "qwen2_5"
    common_cases(r, t)
    r.chat(t, "tools_system_gen", [SYSTEM, TOOL_QUESTION], tools=TOOLS, add_generation_prompt=True)
    r.chat(t, "tools_default_system_gen", [TOOL_QUESTION], tools=TOOLS, add_generation_prompt=True)
    r.chat(t, "tool_calls_round_trip_gen", [
        SYSTEM, TOOL_QUESTION,
        assistant_calls(CALL_WEATHER, CALL_SEARCH_STR),
        WEATHER_RESULT, SEARCH_RESULT,
    ], tools=TOOLS, add_generation_prompt=True,
        note="string arguments go through tojson too, so they come out as a quoted JSON string")
    r.chat(t, "tool_calls_content_none", [
        TOOL_QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [CALL_WEATHER]},
        WEATHER_RESULT,
        TOOL_ANSWER,
    ], tools=TOOLS)
    r.chat(t, "tool_calls_with_text", [
        TOOL_QUESTION, assistant_calls(CALL_WEATHER, content="Let me check."), WEATHER_RESULT,
    ], tools=TOOLS, add_generation_prompt=True)
    r.chat(t, "tool_first_message", [WEATHER_RESULT, U1], add_generation_prompt=True)
    r.chat(t, "system_not_first", [U1, {"role": "system", "content": "Be brief."}, A1, U2],
           add_generation_prompt=True)


def llama3_1_cases(r, t="llama3_1"):
    common_cases(r, t)
    r.chat(t, "date_string_given", [SYSTEM, U1], add_generation_prompt=True, date_string="01 Jan 2025")
    r.chat(t, "tools_in_user_message", [SYSTEM, TOOL_QUESTION], tools=TOOLS, add_generation_prompt=True)
    r.chat(t, "tools_in_system_message", [SYSTEM, TOOL_QUESTION], tools=TOOLS, add_generation_prompt=True,
           tools_in_user_message=False)
    r.chat(t, "custom_tools", [TOOL_QUESTION], custom_tools=[SEARCH_TOOL], add_generation_prompt=True)
    r.chat(t, "tool_call_round_trip", [
        SYSTEM, TOOL_QUESTION, assistant_calls(CALL_WEATHER), WEATHER_RESULT,
    ], tools=TOOLS, add_generation_prompt=True,
        note="a string tool result is 'iterable', so it goes through tojson and comes out quoted")
    r.chat(t, "tool_call_string_arguments", [
        TOOL_QUESTION, assistant_calls(CALL_SEARCH_STR),
        {"role": "tool", "content": {"passages": ["Beijing: capital of China."], "count": 1}},
        TOOL_ANSWER,
    ], tools=TOOLS, note="string arguments are tojson-quoted; a mapping tool result is tojson'd")
    r.chat(t, "tool_result_number", [
        TOOL_QUESTION, assistant_calls(CALL_WEATHER), {"role": "tool", "content": 22.5},
    ], tools=TOOLS, add_generation_prompt=True, note="a number is neither mapping nor iterable: printed as is")
    r.chat(t, "error_two_tool_calls", [
        TOOL_QUESTION, assistant_calls(CALL_WEATHER, CALL_SEARCH_STR),
    ], tools=TOOLS, expect_error=True)
    r.chat(t, "error_tools_without_user", [SYSTEM], tools=TOOLS, expect_error=True)


def llama3_1_only_cases(r):
    t = "llama3_1"
    r.chat(t, "builtin_tools", [SYSTEM, {"role": "user", "content": "Search the web for the Eiffel tower height."}],
           builtin_tools=["code_interpreter", "brave_search", "wolfram_alpha"], add_generation_prompt=True)
    r.chat(t, "builtin_tool_call", [
        {"role": "user", "content": "Search the web for the Eiffel tower height."},
        assistant_calls({"type": "function",
                         "function": {"name": "brave_search", "arguments": {"query": "Eiffel tower height"}}}),
        {"role": "ipython", "content": "330 m"},
    ], builtin_tools=["brave_search", "wolfram_alpha"], add_generation_prompt=True)


def llama3_2_cases(r):
    t = "llama3_2"
    r.chat(t, "system_user_gen", [SYSTEM, U1], add_generation_prompt=True,
           note="date from strftime_now('%d %b %Y') at the fixed time")
    r.chat(t, "user_only_nogen", [U1])
    r.chat(t, "multi_turn_gen", MULTI, add_generation_prompt=True)
    r.chat(t, "date_string_given", [SYSTEM, U1], add_generation_prompt=True, date_string="01 Jan 2025")
    r.chat(t, "tools_in_user_message", [SYSTEM, TOOL_QUESTION], tools=TOOLS, add_generation_prompt=True)
    r.chat(t, "tool_call_round_trip", [
        TOOL_QUESTION, assistant_calls(CALL_WEATHER), WEATHER_RESULT, TOOL_ANSWER,
    ], tools=TOOLS, tools_in_user_message=False)
    r.chat(t, "unicode", [{"role": "user", "content": UNICODE_TEXT}], add_generation_prompt=True)


def mistral_cases(r):
    t = "mistral_instruct"
    common_cases(r, t)
    r.chat(t, "tools_gen", [SYSTEM, TOOL_QUESTION], tools=TOOLS, add_generation_prompt=True,
           note="tools go before the LAST user message; the 'return' key of a function is skipped")
    r.chat(t, "tools_multi_turn", [U1, A1, TOOL_QUESTION], tools=TOOLS)
    r.chat(t, "tool_calls_round_trip", [
        SYSTEM, TOOL_QUESTION,
        assistant_calls(CALL_WEATHER, CALL_SEARCH_STR),
        WEATHER_RESULT, SEARCH_RESULT, TOOL_ANSWER,
    ], tools=TOOLS)
    r.chat(t, "tool_result_mapping_content", [
        TOOL_QUESTION, assistant_calls(CALL_WEATHER),
        {"role": "tool", "tool_call_id": "call12345", "content": {"temperature": 22.5, "ok": True, "note": None}},
    ], note="content|string of a dict is Python's repr")
    r.chat(t, "tool_result_nested_content", [
        TOOL_QUESTION, assistant_calls(CALL_WEATHER),
        {"role": "tool", "tool_call_id": "call12345", "content": {"content": "22.5 C"}},
    ], note="message.content.content is used when present")
    r.chat(t, "error_user_user", [U1, U2], expect_error=True)
    r.chat(t, "error_assistant_first", [A1, U1], expect_error=True)
    r.chat(t, "error_system_in_user_slot", [U1, A1, {"role": "system", "content": "late"}], expect_error=True)
    r.chat(t, "error_system_in_assistant_slot", [U1, {"role": "system", "content": "late"}], expect_error=True)
    r.chat(t, "error_tool_call_id_length", [
        TOOL_QUESTION, assistant_calls({**CALL_WEATHER, "id": "call_1"}),
    ], expect_error=True)
    r.chat(t, "error_tool_result_without_id", [
        TOOL_QUESTION, assistant_calls(CALL_WEATHER), {"role": "tool", "content": "22.5"},
    ], expect_error=True)


def llama2_cases(r):
    t = "llama2"
    common_cases(r, t)
    r.chat(t, "system_multiline", [{"role": "system", "content": "Line one.\nLine two.\n"}, U1])
    r.chat(t, "error_user_user", [U1, U2], expect_error=True)
    r.chat(t, "error_assistant_first", [A1, U1], expect_error=True)
    r.chat(t, "system_second_dropped", [U1, {"role": "system", "content": "late"}],
           note="passes the alternation check (index 1 is not a user slot) and renders nothing")
    r.chat(t, "error_system_twice", [SYSTEM, SYSTEM, U1], expect_error=True)


# Python's str.strip() (jinja2's trim filter) removes every Unicode white-space character: the
# no-break space, the ideographic space, the em space, NEL (U+0085), the line and paragraph
# separators and the information separators U+001C..U+001F, but not the zero-width space (U+200B,
# not white space to Python) nor the BOM (U+FEFF).
UNICODE_SPACES = "\u00a0\u3000\u2003\u0085\u2028\u2029\x1c\x1d\x1e\x1f\t\n\r\x0b\x0c "


def text_parts(*texts):
    return [{"type": "text", "text": t} for t in texts]


def gemma3_cases(r):
    t = "gemma3"
    common_cases(r, t)
    r.chat(t, "system_only_gen", [SYSTEM], add_generation_prompt=True,
           note="the system message only prefixes the first user turn: with no turn left, nothing but BOS")
    r.chat(t, "system_multi_turn_nogen", [SYSTEM] + MULTI + [A1],
           note="the system text and a blank line go before the first user turn only")
    r.chat(t, "content_parts", [
        {"role": "user", "content": text_parts("  Describe ", "this:\n") + [{"type": "image"}]
         + text_parts(" briefly. ")},
        {"role": "assistant", "content": text_parts("A cat.  ")},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "\tAnd this?"}]},
    ], add_generation_prompt=True, note="each text part is trimmed on its own; an image part prints <start_of_image>")
    r.chat(t, "content_parts_system", [
        {"role": "system", "content": text_parts("System from parts.", " Second part is dropped.")},
        {"role": "user", "content": text_parts("Hi")},
    ], add_generation_prompt=True, note="a list-valued system content contributes its first part's text only, untrimmed")
    r.chat(t, "content_parts_unknown_type", [
        {"role": "user", "content": [{"type": "audio", "audio": "x"}, {"type": "text", "text": "ok"},
                                     {"type": "video"}]},
    ], add_generation_prompt=True, note="parts of another type print nothing")
    r.chat(t, "content_parts_empty_list", [{"role": "user", "content": []}], add_generation_prompt=True)
    r.chat(t, "content_parts_odd_items", [
        {"role": "user", "content": [{"type": "text"}, {"text": "no type"}, {"type": "text", "text": None},
                                     {"type": "text", "text": 7}, {"type": "text", "text": " end "}]},
    ], add_generation_prompt=True,
        note="a missing text is undefined and trims to ''; None trims to 'None' and 7 to '7' (trim prints its "
        "argument first); a part without a type prints nothing")
    r.chat(t, "content_mapping_iterates_keys", [{"role": "user", "content": {"type": "text", "text": "hidden"}}],
           add_generation_prompt=True,
           note="a mapping is iterable: its keys are strings, and a string's ['type'] is undefined, so nothing prints")
    r.chat(t, "mixed_string_and_parts", [
        SYSTEM, {"role": "user", "content": text_parts(UNICODE_TEXT)}, {"role": "assistant", "content": UNICODE_REPLY},
        {"role": "user", "content": "  plain string  "},
    ], add_generation_prompt=True)
    r.chat(t, "unicode_white_space_trimmed", [
        {"role": "system", "content": UNICODE_SPACES + "sys kept as is" + UNICODE_SPACES},
        {"role": "user", "content": UNICODE_SPACES + "inner\u00a0\u3000space kept" + UNICODE_SPACES},
        {"role": "assistant", "content": text_parts(UNICODE_SPACES + "part" + UNICODE_SPACES)},
        {"role": "user", "content": "\u200bzero width\u200b\ufeff"},
    ], add_generation_prompt=True,
        note="trim is Python's str.strip(): every Unicode white space goes, U+200B and U+FEFF stay; "
        "the system text is not trimmed")
    r.chat(t, "white_space_only_content", [{"role": "user", "content": " \n\t "},
                                           {"role": "assistant", "content": "\u3000"}])
    r.chat(t, "system_in_assistant_slot", [U1, {"role": "system", "content": "  late system  "}],
           add_generation_prompt=True,
           note="a later system message in an assistant slot passes the alternation check and prints as a 'system' turn")
    r.chat(t, "tool_role_in_assistant_slot", [U1, {"role": "tool", "content": "result"}])
    r.chat(t, "error_system_after_first_turn", [SYSTEM, U1, A1, {"role": "system", "content": "Be brief."}, U2],
           add_generation_prompt=True, expect_error=True,
           note="a system message after the first turn takes a user slot: the template raises")
    r.chat(t, "error_two_systems", [SYSTEM, SYSTEM, U1], expect_error=True)
    r.chat(t, "error_user_user", [U1, U2], add_generation_prompt=True, expect_error=True)
    r.chat(t, "error_assistant_first", [A1, U1], expect_error=True)
    r.chat(t, "error_assistant_assistant", [SYSTEM, U1, A1, A2], expect_error=True)
    r.chat(t, "error_content_none", [U1, {"role": "assistant", "content": None}], expect_error=True,
           note="None is neither a string nor iterable: the template raises 'Invalid content type'")
    r.chat(t, "error_content_number", [{"role": "user", "content": 42}], expect_error=True)
    r.chat(t, "error_empty_messages", [], add_generation_prompt=True, expect_error=True,
           note="messages[0] is undefined; ['role'] on it raises (jinja2's UndefinedError)")


def phi3_common_cases(r, t):
    common_cases(r, t)
    r.chat(t, "ends_with_assistant_gen", [SYSTEM, U1, A1], add_generation_prompt=True,
           note="the template appends the generation prompt even after an assistant turn")
    r.chat(t, "system_not_first", [U1, {"role": "system", "content": "Be brief."}, A1, U2])
    r.chat(t, "unknown_role_skipped", [U1, {"role": "tool", "content": "skipped"}, A1])
    r.chat(t, "white_space_kept", [{"role": "system", "content": UNICODE_SPACES},
                                   {"role": "user", "content": "  \n leading and trailing \t"}],
           add_generation_prompt=True, note="no trim: contents go in as they are")
    r.chat(t, "error_content_parts", [{"role": "user", "content": text_parts("Hello")}], expect_error=True,
           note="str + list: the template does not take content parts (Python's TypeError)")
    r.chat(t, "error_content_none", [U1, {"role": "assistant", "content": None}], expect_error=True)
    r.chat(t, "error_content_number", [{"role": "user", "content": 42}], expect_error=True)


def phi_cases(r):
    phi3_common_cases(r, "phi3_mini")
    r.chat("phi3_mini", "empty_system_kept", [{"role": "system", "content": ""}, U1], add_generation_prompt=True)
    phi3_common_cases(r, "phi3_5_mini")
    r.chat("phi3_5_mini", "empty_system_skipped", [{"role": "system", "content": ""}, U1], add_generation_prompt=True,
           note="Phi-3.5 skips a system message with empty content")
    t = "phi4_mini"
    common_cases(r, t)
    r.chat(t, "unknown_role_printed", [U1, {"role": "tool", "content": "result"}], add_generation_prompt=True,
           note="any role prints as <|role|>")
    tools_json = json.dumps([{"name": "get_current_weather", "description": "Weather in a city (城市)",
                              "parameters": {"city": {"type": "str"}}}], ensure_ascii=False)
    r.chat(t, "system_tools_string", [{"role": "system", "content": "You are a helpful assistant with tools.",
                                       "tools": tools_json}, TOOL_QUESTION], add_generation_prompt=True)
    r.chat(t, "system_tools_empty_string", [{"role": "system", "content": "", "tools": ""}, U1],
           note="an empty tools string is not none: the tool markers print around nothing")
    r.chat(t, "system_tools_none", [{"role": "system", "content": "No tools.", "tools": None}, U1],
           add_generation_prompt=True, note="tools present but None: the plain system turn")
    r.chat(t, "user_tools_ignored", [{"role": "user", "content": "Hi", "tools": "[]"}], add_generation_prompt=True,
           note="only a system message's tools are printed")
    r.chat(t, "error_system_tools_list", [{"role": "system", "content": "sys", "tools": [WEATHER_TOOL]}, U1],
           expect_error=True, note="tools must already be a string: str + list raises (Python's TypeError)")
    r.chat(t, "error_content_parts", [{"role": "user", "content": text_parts("Hello")}], expect_error=True)


# ---------------------------------------------------------------------------------------------
# Synthetic templates: one construct at a time, expected output computed by jinja2 in the same
# environment.
# ---------------------------------------------------------------------------------------------

PEOPLE = [
    {"name": "Ann", "age": 31, "active": True, "role": "user"},
    {"name": "Bob", "age": 25, "active": False, "role": "assistant"},
    {"name": "Cy", "age": 40, "active": True, "role": "user"},
]
CHAT = [SYSTEM, U1, A1, U2]


def synthetic_cases(r):
    s = r.synthetic

    # --- loops -----------------------------------------------------------------------------
    s("loop_vars", "{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}"
      "/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}:{{ x }};{% endfor %}", {"xs": ["a", "b", "c"]})
    s("loop_previtem_nextitem", "{% for x in xs %}[{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}]{% endfor %}",
      {"xs": [1, 2, 3]}, note="previtem/nextitem are undefined (print '') at the ends")
    s("loop_previtem_defined", "{% for x in xs %}{{ loop.previtem is defined }},{{ loop.nextitem is defined }};"
      "{% endfor %}", {"xs": [1, 2]})
    s("loop_cycle", "{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}", {"xs": [1, 2, 3]})
    s("loop_filtered", "{% for x in xs if x > 1 %}{{ loop.index }}:{{ x }}/{{ loop.length }} {% endfor %}",
      {"xs": [3, 1, 2, 0, 5]}, note="loop.index and loop.length count the filtered items")
    s("loop_else_empty", "{% for x in xs %}{{ x }}{% else %}nothing{% endfor %}", {"xs": []})
    s("loop_else_undefined", "{% for x in missing %}{{ x }}{% else %}nothing{% endfor %}",
      note="iterating an undefined variable yields nothing")
    s("loop_else_filtered_out", "{% for x in xs if x > 10 %}{{ x }}{% else %}none left{% endfor %}", {"xs": [1, 2]})
    s("loop_break_continue", "{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}"
      "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {"xs": [1, 2, 3, 4, 5]})
    s("loop_dict_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
      {"d": {"z": 1, "a": 2, "m": [3]}}, note="insertion order, not sorted")
    s("loop_dict_keys_plain", "{% for k in d %}{{ k }},{% endfor %}", {"d": {"z": 1, "a": 2}})
    s("loop_string_chars", "{% for c in 'héllo' %}[{{ c }}]{% endfor %}")
    s("loop_range", "{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(1, 10, 4) %}{{ i }},{% endfor %}"
      "|{% for i in range(3, 0, -1) %}{{ i }}{% endfor %}")
    s("loop_nested_outer_loop", "{% for row in rows %}{% set outer = loop %}{% for c in row %}"
      "{{ outer.index }}.{{ loop.index }}={{ c }} {% endfor %}{% endfor %}", {"rows": [["a", "b"], ["c"]]})
    s("loop_unpack_pairs", "{% for a, b in pairs %}{{ a }}-{{ b }} {% endfor %}", {"pairs": [[1, "x"], [2, "y"]]})
    s("loop_reverse_slice", "{% for m in messages[::-1] %}{{ loop.index0 }}:{{ m.role }} {% endfor %}",
      {"messages": CHAT})
    s("loop_scope_set", "{% set x = 1 %}{% for i in [1, 2, 3] %}{% set x = x + i %}[{{ x }}]{% endfor %}{{ x }}",
      note="a set inside a loop does not leak out of it")
    s("loop_recursive", "{% for item in tree recursive %}{{ item.name }}{% if item.children %}({{ loop(item.children) }})"
      "{% endif %}{{ loop.depth }}{% endfor %}",
      {"tree": [{"name": "a", "children": [{"name": "b", "children": []}, {"name": "c"}]}, {"name": "d"}]})
    s("loop_changed", "{% for x in xs %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}", {"xs": [1, 1, 2, 2, 1]})

    # --- namespace, set, macros ----------------------------------------------------------------
    s("namespace_counter", "{% set ns = namespace(count=0, last='') %}{% for m in messages %}"
      "{% if m.role == 'user' %}{% set ns.count = ns.count + 1 %}{% set ns.last = m.content %}{% endif %}"
      "{% endfor %}{{ ns.count }}|{{ ns.last }}", {"messages": CHAT})
    s("namespace_empty_then_set", "{% set ns = namespace() %}{% set ns.flag = true %}{{ ns.flag }}")
    s("namespace_list_value", "{% set ns = namespace(items=[]) %}{% for x in [1, 2] %}"
      "{% set ns.items = ns.items + [x * 10] %}{% endfor %}{{ ns.items }}")
    s("set_block", "{% set greeting %}Hello, {{ name }}!{% endset %}[{{ greeting }}]", {"name": "World"})
    s("set_tuple_unpack", "{% set a, b = [1, 2] %}{{ a }}+{{ b }}={{ a + b }}")
    s("set_overrides_variable", "{% set messages = messages[1:] %}{{ messages | length }}", {"messages": CHAT})
    s("macro_defaults", "{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}"
      "{% endmacro %}{{ greet('Bob') }}|{{ greet('Ann', 'Hi') }}|{{ greet('Cy', punct='?') }}")
    s("macro_whitespace", "{%- macro item(x) -%}\n  <{{ x }}>\n{%- endmacro -%}\n{{ item(1) }}{{ item(2) }}")
    s("macro_recursive", "{% macro render(v) %}{% if v is mapping %}{{ '{' }}{% for k, x in v.items() %}"
      "{{ k }}:{{ render(x) }}{% if not loop.last %},{% endif %}{% endfor %}{{ '}' }}"
      "{% elif v is string %}'{{ v }}'{% else %}{{ v }}{% endif %}{% endmacro %}{{ render(d) }}",
      {"d": {"a": {"b": "x", "c": 1}, "d": None}})
    s("macro_caller", "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner {{ 1 + 1 }}{% endcall %}")
    s("filter_block", "{% filter upper %}shout {{ word }}{% endfilter %}", {"word": "this"})
    s("generation_tag", "A{% generation %}B{{ x }}{% endgeneration %}C", {"x": "-x-"},
      note="transformers' AssistantTracker tag renders its body unchanged")
    s("raw_block", "{% raw %}{{ not_rendered }} {% if %}{% endraw %}!")
    s("comment", "a{# a comment with {{ braces }} #}b{#- trimmed -#}  c")

    # --- whitespace control: trim_blocks, lstrip_blocks, -, + -----------------------------------
    s("ws_trim_blocks", "{% if true %}\nyes\n{% endif %}\nend|",
      note="trim_blocks removes the first newline after a block tag")
    s("ws_lstrip_blocks", "line\n    {% if true %}\n    indented\n    {% endif %}\ndone|",
      note="lstrip_blocks removes whitespace before a block tag at the start of a line")
    s("ws_lstrip_not_after_text", "x   {% if true %}y{% endif %}   z|",
      note="lstrip_blocks only acts when the tag starts its line")
    s("ws_expression_not_trimmed", "  {{ 'v' }}\n  {{ 'w' }}\n|",
      note="trim/lstrip_blocks do not apply to {{ }}")
    s("ws_comment_trimmed", "a\n  {# note #}\nb|", note="comments are trimmed like block tags")
    s("ws_minus_left", "a  \n\n  {%- if true %}b{% endif %}|")
    s("ws_minus_right", "{% if true -%}   \n\n  b{% endif %}|")
    s("ws_minus_expression", "a  {{- 'b' -}}  \n c|")
    s("ws_plus_disables_lstrip", "    {%+ if true %}x{% endif %}|", note="{%+ keeps the indentation")
    s("ws_plus_disables_trim", "{% if true +%}\nx{% endif %}|", note="+%} keeps the newline")
    s("ws_indented_for", "<ul>\n  {% for x in xs %}\n  <li>{{ x }}</li>\n  {% endfor %}\n</ul>", {"xs": [1, 2]})
    s("ws_nested_blocks_lines", "{% for m in messages %}\n    {% if m.role == 'user' %}\n        U: {{ m.content }}\n"
      "    {% elif m.role == 'assistant' %}\n        A: {{ m.content }}\n    {% endif %}\n{% endfor %}",
      {"messages": CHAT})
    s("ws_chat_template_style", "{%- for m in messages %}\n    {{- '<' + m.role + '>\\n' + m.content + '\\n' }}\n"
      "{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<assistant>\\n' }}\n{%- endif %}\n",
      {"messages": CHAT, "add_generation_prompt": True})
    s("ws_trailing_newline_dropped", "hello\n", note="keep_trailing_newline=False drops ONE final newline")
    s("ws_two_trailing_newlines", "hello\n\n")
    s("ws_trailing_newline_after_expr", "{{ 'x' }}\n")
    s("ws_crlf_source", "a\r\nb\r\n{% if true %}\r\nc{% endif %}\r\n",
      note="newlines in the template source are normalized to \\n; trim_blocks also eats \\r\\n")
    s("ws_crlf_in_variable", "[{{ v }}]", {"v": "a\r\nb\r"}, note="data is never normalized")
    s("ws_block_at_end_without_newline", "x\n{% if false %}y{% endif %}")
    s("ws_set_lines", "{% set a = 1 %}\n{% set b = 2 %}\n{{ a + b }}\n")
    s("ws_tab_lstrip", "\t \t{% if true %}x{% endif %}|")

    # --- filters -------------------------------------------------------------------------------
    s("filter_trim", "[{{ '  a b \\n\\t' | trim }}][{{ 'xxhixx' | trim('x') }}]")
    s("filter_tojson_basic", "{{ d | tojson }}",
      {"d": {"b": 1, "a": [1, 2.5, None, True, False], "s": "quote \" back \\ slash / <tag> & 'apos'",
             "n": {"x": {}}, "e": [], "u": "中文 é 😀", "f": 1.0, "g": 1e-05, "h": 12345678901234567890}},
      note="insertion order, no HTML escaping, ensure_ascii=False, Python float repr")
    s("filter_tojson_indent", "{{ d | tojson(indent=4) }}",
      {"d": {"name": "x", "list": [1, {"k": "v"}], "empty_list": [], "empty_dict": {}, "u": "ü"}})
    s("filter_tojson_indent_2_sort", "{{ d | tojson(indent=2, sort_keys=true) }}", {"d": {"b": 1, "a": {"d": 2, "c": 3}}})
    s("filter_tojson_separators", "{{ d | tojson(separators=(',', ':')) }}", {"d": {"a": [1, 2], "b": "c"}})
    s("filter_tojson_ensure_ascii", "{{ 'é中😀' | tojson(ensure_ascii=true) }}")
    s("filter_tojson_scalars", "{{ 'str' | tojson }} {{ 1 | tojson }} {{ 1.5 | tojson }} {{ none | tojson }} "
      "{{ true | tojson }} {{ 'line\\nbreak\\ttab' | tojson }} {{ '\\u0001' | tojson }}")
    s("filter_tojson_undefined", "{{ missing | tojson }}", expect_error=True,
      note="json.dumps of an Undefined fails (Python's message)")
    s("filter_length", "{{ 'héllo' | length }} {{ [1, 2, 3] | length }} {{ {'a': 1} | length }} "
      "{{ missing | length }} {{ '' | count }}")
    s("filter_case", "{{ 'Hello World' | lower }} {{ 'Hello World' | upper }} {{ 'hELLO wORLD' | capitalize }} "
      "{{ 'hello wORLD-foo bar_baz' | title }} {{ 'éa' | upper }}")
    s("filter_first_last", "{{ [3, 4, 5] | first }} {{ [3, 4, 5] | last }} {{ 'abc' | first }} {{ 'abc' | last }}")
    s("filter_first_empty", "[{{ [] | first }}]", note="first of an empty list is undefined")
    s("filter_default", "{{ missing | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|"
      "{{ none | default('d') }}|{{ none | default('d', true) }}|{{ 0 | default('d', boolean=true) }}|"
      "{{ 'v' | default('d') }}|{{ missing | d('alias') }}")
    s("filter_join", "{{ ['a', 'b', 'c'] | join }}|{{ ['a', 'b'] | join(', ') }}|{{ [1, 2] | join('-') }}|"
      "{{ people | join(', ', attribute='name') }}", {"people": PEOPLE})
    s("filter_replace", "{{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }} "
      "{{ 'x\\ny' | replace('\\n', '\\\\n') }}")
    s("filter_items", "{% for k, v in d | items %}{{ k }}={{ v }} {% endfor %}|{{ d | items | list }}",
      {"d": {"b": 1, "a": "x"}})
    s("filter_dictsort", "{{ d | dictsort }}", {"d": {"b": 1, "a": 2, "C": 3}})
    s("filter_map_attribute", "{{ people | map(attribute='name') | list }}|{{ people | map(attribute='age') | sum }}|"
      "{{ ['a', 'b'] | map('upper') | join }}", {"people": PEOPLE})
    s("filter_selectattr", "{{ people | selectattr('active') | map(attribute='name') | join(',') }}|"
      "{{ people | selectattr('role', 'equalto', 'user') | list | length }}|"
      "{{ people | rejectattr('active') | map(attribute='name') | first }}|"
      "{{ messages | selectattr('role', 'eq', 'user') | map(attribute='content') | list }}",
      {"people": PEOPLE, "messages": CHAT})
    s("filter_select_reject", "{{ [1, 2, 3, 4, 5] | select('odd') | list }} {{ [1, 2, 3] | reject('equalto', 2) | list }} "
      "{{ ['a', '', 'b'] | select | list }}")
    s("filter_string", "{{ 42 | string }} {{ none | string }} {{ [1, 'a'] | string }} {{ (42 | string) ~ '!' }} "
      "{{ true | string | lower }}")
    s("filter_int_float", "{{ '42' | int + 1 }} {{ '3.9' | int }} {{ 3.9 | int }} {{ 'x' | int }} {{ 'x' | int(7) }} "
      "{{ '2.5' | float }} {{ 3 | float }} {{ true | int }} {{ -3.9 | int }}")
    s("filter_list", "{{ 'ab' | list }} {{ (1, 2) | list }} {{ {'k': 1, 'j': 2} | list }}")
    s("filter_round", "{{ 2.5 | round }} {{ 3.5 | round }} {{ 1.23456 | round(2) }} {{ 2.5 | round(0, 'floor') }} "
      "{{ 2.1 | round(0, 'ceil') }} {{ 7 | round }} {{ -1.5 | round }}",
      note="round() is Python's banker's rounding and returns a float")
    s("filter_sort_unique", "{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} "
      "{{ people | sort(attribute='age') | map(attribute='name') | join }} {{ [1, 2, 1, 3, 2] | unique | list }}",
      {"people": PEOPLE})
    s("filter_reverse", "{{ [1, 2, 3] | reverse | list }} {{ 'abc' | reverse }}")
    s("filter_min_max_sum_abs", "{{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ [1, 2, 3] | sum }} {{ [0.5, 0.25] | sum }} "
      "{{ -3 | abs }} {{ -2.5 | abs }}")
    s("filter_format", "{{ '%s has %d items (%.2f%%)' | format('cart', 3, 42.123) }} {{ '%5s|%-5s|' | format('a', 'b') }}")
    s("filter_indent", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(4, true) }}|{{ 'x\\n\\ny' | indent(2, blank=true) }}")
    s("filter_wordcount_truncate", "{{ 'one two  three' | wordcount }} {{ 'a long sentence here' | truncate(9, true, '...', 0) }}")
    s("filter_batch_slice", "{{ [1, 2, 3, 4, 5] | batch(2) | list }} {{ [1, 2, 3, 4, 5] | slice(2) | list }}")
    s("filter_attr", "{{ d | attr('x') }}|{{ people[0] | attr('name') }}|", {"d": {"x": 1}, "people": PEOPLE},
      note="attr() looks up attributes only: a dict key is not an attribute, so both print ''")
    s("filter_unknown_split", "{{ 'a,b' | split(',') }}", expect_error=True,
      note="jinja2 has no split filter: compile-time error")

    # --- tests ---------------------------------------------------------------------------------
    s("test_defined", "{{ x is defined }} {{ missing is defined }} {{ missing is undefined }} {{ d.k is defined }} "
      "{{ d.nope is defined }} {{ d['k'] is defined }} {{ none is defined }}", {"x": 1, "d": {"k": None}})
    s("test_none", "{{ none is none }} {{ x is none }} {{ x is not none }} {{ missing is none }}", {"x": 0})
    s("test_types", "{{ 's' is string }} {{ 1 is string }} {{ {} is mapping }} {{ [] is mapping }} "
      "{{ [] is iterable }} {{ 's' is iterable }} {{ 1 is iterable }} {{ {} is iterable }} {{ 1 is number }} "
      "{{ 1.5 is number }} {{ true is number }} {{ '1' is number }} {{ [] is sequence }} {{ 's' is sequence }}")
    s("test_integer_float_boolean", "{{ 1 is integer }} {{ 1.0 is integer }} {{ 1.0 is float }} {{ true is integer }} "
      "{{ true is boolean }} {{ 1 is boolean }}")
    s("test_true_false", "{{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ none is false }} "
      "{{ x is true }} {{ y is false }}", {"x": True, "y": False},
      note="'is true'/'is false' are identity checks on the booleans")
    s("test_equalto_sameas", "{{ 1 is equalto 1 }} {{ 'a' is eq 'b' }} {{ none is sameas none }} "
      "{{ true is sameas true }} {{ 1 is sameas true }} {{ x is sameas false }} {{ 2 is ne 3 }}", {"x": False})
    s("test_in", "{{ 'a' is in 'abc' }} {{ 2 is in [1, 2] }} {{ 'k' is in {'k': 1} }} {{ 'z' is in ['a'] }}")
    s("test_odd_even_divisible", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 10 is divisibleby(4) }}")
    s("test_lower_upper", "{{ 'abc' is lower }} {{ 'Abc' is lower }} {{ 'ABC' is upper }}")
    s("test_comparisons", "{{ 3 is gt 2 }} {{ 3 is ge 3 }} {{ 2 is lt 1 }} {{ 2 is le 2 }}")
    s("test_callable", "{{ raise_exception is callable }} {{ 'x' is callable }}")

    # --- slicing and subscripts ----------------------------------------------------------------
    s("slicing_lists", "{{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ xs[1:3] }} {{ xs[-1] }} {{ xs[::2] }} {{ xs[10:] }}",
      {"xs": [1, 2, 3, 4, 5]})
    s("slicing_strings", "{{ s[::-1] }}|{{ s[1:] }}|{{ s[:-1] }}|{{ s[1:3] }}|{{ s[-1] }}|{{ s[0] }}", {"s": "héllo"})
    s("subscript_out_of_range", "[{{ xs[5] }}][{{ d['nope'] }}][{{ d.nope }}]", {"xs": [1], "d": {}},
      note="a missing index or key is undefined, printed as ''")
    s("subscript_vs_attribute", "{{ messages[0]['content'] }}|{{ messages[0].content }}|{{ messages[-1].role }}|"
      "{{ messages[1]['role'] == messages[1].role }}", {"messages": CHAT})
    s("attribute_of_missing_key_chained", "{{ d.a.b }}", {"d": {}}, expect_error=True,
      note="d.a is undefined; .b on it raises (Python's message)")
    s("attribute_of_undefined_variable", "{{ missing.attr }}", expect_error=True)
    s("attribute_of_none", "[{{ x.attr }}][{{ x.attr is defined }}]", {"x": None},
      note="an attribute of None is undefined (not an error) until something is looked up on it")
    s("attribute_of_none_chained", "{{ x.attr.more }}", {"x": None}, expect_error=True)
    s("dict_key_named_like_method", "{{ d['items'] }} {{ d.get('keys') }} {{ d['update'] }}",
      {"d": {"items": "I", "keys": "K", "update": "U"}})
    s("dict_key_shadowed_by_method", "[{{ d.update }}][{{ d['update'] }}][{{ d.update is defined }}][{{ d.pop is defined }}]",
      {"d": {"update": "U"}},
      note="d.update finds the dict method first; the immutable sandbox turns it into an undefined ('')")
    s("dict_unsafe_method_call", "{{ d.update({'a': 1}) }}", {"d": {}}, expect_error=True)

    # --- string methods ------------------------------------------------------------------------
    s("str_startswith_endswith", "{{ s.startswith('<tool') }} {{ s.endswith('>') }} {{ s.startswith(('x', '<')) }} "
      "{{ s.endswith('nope') }}", {"s": "<tool_response>"})
    s("str_split", "{{ s.split() }} {{ s.split(',') }} {{ s.split(',', 1) }} {{ s.rsplit(',', 1) }} {{ 'a  b'.split(' ') }} "
      "{{ ''.split(',') }}", {"s": "a,b, c d"})
    s("str_split_index", "{{ s.split('</think>')[-1].lstrip('\\n') }}|{{ s.split('</think>')[0].rstrip('\\n').split('<think>')[-1] }}",
      {"s": "<think>\nreason\n</think>\n\nanswer"})
    s("str_strip_family", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ t.strip('x') }}]"
      "[{{ t.lstrip('xy') }}][{{ t.rstrip('x') }}][{{ u.strip('\\n') }}]",
      {"s": " \t a b \n ", "t": "xyxaxx", "u": "\n\nmid\n"})
    s("str_case_methods", "{{ s.upper() }} {{ s.lower() }} {{ s.title() }} {{ s.capitalize() }} {{ s.swapcase() }}",
      {"s": "hELLO wOrld"})
    s("str_replace_count_find", "{{ s.replace('a', 'o') }} {{ s.replace('a', 'o', 1) }} {{ s.count('a') }} "
      "{{ s.find('n') }} {{ s.find('z') }} {{ s.index('n') }}", {"s": "banana"})
    s("str_join_method", "{{ ', '.join(xs) }} {{ ''.join(['a', 'b']) }}", {"xs": ["x", "y"]})
    s("str_format_method", "{{ '{} and {}'.format('a', 1) }} {{ '{name}!'.format(name='Bo') }} {{ '{:>4}'.format('x') }}")
    s("str_predicates", "{{ '123'.isdigit() }} {{ 'abc'.isalpha() }} {{ '  '.isspace() }} {{ 'Ab'.islower() }}")
    s("str_unknown_method", "{{ 'x'.nope() }}", expect_error=True)

    # --- dict and list methods -----------------------------------------------------------------
    s("dict_methods", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys() | list }} "
      "{{ d.values() | list }} {{ d.items() | list }}", {"d": {"a": 1, "b": [2]}})
    s("list_methods", "{{ xs.index(2) }} {{ xs.count(1) }}", {"xs": [1, 2, 1]})
    s("list_append_forbidden", "{% set xs = [] %}{{ xs.append(1) }}", expect_error=True,
      note="ImmutableSandboxedEnvironment forbids mutating methods")
    s("dict_global", "{{ dict(a=1, b='x') }} {{ dict(a=1) | tojson }}")
    s("sandbox_dunder", "[{{ ''.__class__ }}][{{ ''.__class__ is defined }}]",
      note="an unsafe attribute is an undefined that prints ''")
    s("sandbox_dunder_chained", "{{ ''.__class__.__mro__ }}", expect_error=True)

    # --- operators -----------------------------------------------------------------------------
    s("in_not_in", "{{ 'ell' in 'hello' }} {{ 'z' not in 'hello' }} {{ 2 in [1, 2] }} {{ 'a' in {'a': 1} }} "
      "{{ 1 in {'a': 1} }} {{ 'x' not in [] }} {{ none in [none] }}")
    s("comparisons", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 1 == '1' }} {{ true == 1 }} {{ 'a' < 'b' }} "
      "{{ [1, 2] == [1, 2] }} {{ 'abc' != 'abd' }} {{ none == none }} {{ 2 >= 2 }} {{ [1, 2] < [1, 3] }}")
    s("arithmetic", "{{ 7 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} "
      "{{ 2 ** -1 }} {{ 1 + 1.5 }} {{ 0.1 + 0.2 }} {{ 10 / 3 }} {{ -x }} {{ - 2 ** 2 }} {{ 7.5 // 2 }} {{ 2 * 3 + 4 }} "
      "{{ 2 * (3 + 4) }} {{ 1 - - 1 }}", {"x": 5})
    s("arithmetic_big", "{{ 2 ** 64 }} {{ 9007199254740993 + 0 }} {{ 10 ** 20 * 1.0 }}")
    s("division_by_zero", "{{ 1 / 0 }}", expect_error=True)
    s("float_printing", "{{ 1.0 }} {{ 0.1 }} {{ 1e-05 }} {{ 1e16 }} {{ 1.5e300 * 1e10 }} {{ 123456789.0 * 10 }} "
      "{{ -0.0 }} {{ 1 / 3 }} {{ 2.0 ** 0.5 }} {{ 100.0 }} {{ 1e-4 }} {{ 0.0001 }} {{ 1e22 }} {{ 12345678901234567.0 }} "
      "{{ x }} {{ y }} {{ z }}", {"x": 2.5, "y": 3.0, "z": 1e-07},
      note="Python float repr: shortest round-trip digits, exponent below 1e-4 and from 1e16")
    s("string_concat", "{{ 'a' + 'b' }} {{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] + [2, 3] }} {{ x ~ '' }}",
      {"x": 2.50})
    s("string_plus_number_error", "{{ 'a' + 1 }}", expect_error=True)
    s("and_or_values", "[{{ '' or 'x' }}][{{ 'a' and 'b' }}][{{ 0 or none }}][{{ [] or 'empty' }}][{{ 'a' or 'b' }}]"
      "[{{ '' and 'b' }}][{{ none and 1 }}][{{ missing or 'fallback' }}]", note="and/or return an operand")
    s("not_and_is_not", "{{ not '' }} {{ not [1] }} {{ not missing }} {{ x is not none }} {{ not x is none }} "
      "{{ not (1 == 1) }}", {"x": 1})
    s("inline_if", "[{{ 'yes' if x else 'no' }}][{{ 'yes' if not x else 'no' }}][{{ 'only' if x }}][{{ 'only' if not x }}]",
      {"x": True}, note="an inline if without else gives undefined, printed ''")
    s("if_elif_else", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}many{% endif %} {% endfor %}")
    s("truthiness", "{% for v in values %}{{ 'T' if v else 'F' }}{% endfor %}",
      {"values": ["", "0", 0, 0.0, 1, [], [0], {}, {"a": 1}, None, False, True, " "]})
    s("string_literals", "{{ 'single' }} {{ \"double\" }} {{ 'it\\'s' }} {{ \"say \\\"hi\\\"\" }} {{ 'tab\\there' }} "
      "{{ 'nl\\nhere' }} {{ '\\u00e9\\x41' }} {{ 'back\\\\slash' }} {{ 'café 中文 😀' }}")
    s("list_and_dict_literals", "{{ [1, 'two', 3.0, none, true] }} {{ {'a': 1, 'b': [1, 2]} }} {{ (1, 2) }} {{ (1,) }} "
      "{{ [] }} {{ {} }}")

    # --- printing values -----------------------------------------------------------------------
    s("print_values", "{{ none }}|{{ true }}|{{ false }}|{{ missing }}|{{ 0 }}|{{ '' }}|{{ x }}|{{ y }}",
      {"x": None, "y": False})
    s("print_list_reprs", "{{ xs }}", {"xs": ["a", 1, 2.0, None, True, "it's", 'say "hi"', "both ' and \"", "é中", "\n"]},
      note="Python repr: quote choice depends on the content; non-ASCII is kept, control characters escaped")
    s("print_dict_repr", "{{ d }}", {"d": {"a": 1, "b": None, "c": {"nested": [1, "x"]}, "d": "q'uote"}})
    s("print_message_dict", "{{ messages[1] }}", {"messages": CHAT})
    s("print_range_object", "{{ range(3) }}")

    # --- chat-template idioms ------------------------------------------------------------------
    s("raise_exception_call", "{% if messages[0].role != 'user' %}{{ raise_exception('First message must be from the user!') }}"
      "{% endif %}ok", {"messages": CHAT}, expect_error=True)
    s("raise_exception_not_reached", "{% if false %}{{ raise_exception('never') }}{% endif %}ok")
    s("strftime_now_fixed", "{{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%d %b %Y') }} {{ strftime_now('%A %B %d %H:%M:%S %j') }}",
      note="strftime_now is fixed at 2024-07-26 00:00:00 in these fixtures")
    s("messages_helpers", "{{ messages | length }} {{ (messages | last).role }} {{ messages[1:] | map(attribute='role') | join('/') }} "
      "{{ (messages | selectattr('role', 'equalto', 'user') | list)[-1].content }}", {"messages": CHAT})
    s("message_equality", "{% set users = messages | selectattr('role', 'equalto', 'user') | list %}"
      "{% for m in messages %}{{ m == users[-1] }} {% endfor %}", {"messages": CHAT})
    s("test_then_inline_if_is_syntax_error", "{{ x is none if true else 'n' }}", {"x": 1}, expect_error=True,
      note="jinja2 parses the name after a test (here 'if') as the test's argument")
    s("optional_key_checks", "{% for m in messages %}{{ m.tool_calls is defined }}/{{ 'tool_calls' in m }}/"
      "{{ (m.tool_calls is not none) if m.tool_calls is defined else '-' }} {% endfor %}",
      {"messages": [U1, {"role": "assistant", "content": "", "tool_calls": None},
                    {"role": "assistant", "content": "", "tool_calls": [CALL_WEATHER]}]})
    s("content_list_of_parts", "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}"
      "{% for p in m.content %}{% if p.type == 'text' %}{{ p.text }}{% else %}<{{ p.type }}>{% endif %}{% endfor %}"
      "{% endif %}|{% endfor %}",
      {"messages": [{"role": "user", "content": [{"type": "text", "text": "Look: "}, {"type": "image"},
                                                  {"type": "text", "text": " ok?"}]}, U1]})
    s("bos_eos_undefined", "[{{ bos_token }}][{{ eos_token }}]{% if bos_token is defined %}B{% endif %}", {"eos_token": "</s>"},
      note="a special token that is None in tokenizer_config.json is not passed at all")
    s("tools_none_vs_undefined", "{{ tools is defined }} {{ tools is none }} {{ 'T' if tools else 'F' }} "
      "{{ documents is none }} {{ tools is not none }}", {"tools": None, "documents": None})
    s("tojson_tool_like_llama", "{% for t in tools %}{{ t | tojson(indent=4) }}\n\n{% endfor %}", {"tools": [SEARCH_TOOL]})
    s("tojson_then_slice", "{% set out = call.function | tojson %}{{ out[:-1] }}, \"id\": \"{{ call.id }}\"}}",
      {"call": CALL_WEATHER})


# ---------------------------------------------------------------------------------------------


def main():
    here = Path(__file__).resolve()
    repo = here.parents[2]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=repo.parent / "shared",
                        help="the shared test data folder (default: ../shared beside the checkout)")
    parser.add_argument("--out", type=Path, default=repo / "tests" / "data" / "chat" / "chat_fixtures.json")
    args = parser.parse_args()

    templates = load_templates(args.shared)
    r = Recorder(templates)
    qwen3_cases(r)
    llama3_cases(r)
    qwen2_5_cases(r)
    llama3_1_cases(r)
    llama3_1_only_cases(r)
    llama3_2_cases(r)
    mistral_cases(r)
    llama2_cases(r)
    gemma3_cases(r)
    phi_cases(r)
    synthetic_cases(r)

    template_entries = {}
    for name, entry in templates.items():
        tokens = {key: entry["tokens"].get(key) for key in ("bos_token", "eos_token", "pad_token", "unk_token")}
        template_entries[name] = {
            "model": entry["model"],
            "source": entry["source"],
            **tokens,
            "special_tokens_passed": special_tokens_map(entry["tokens"]),
            "sha256": hashlib.sha256(entry["text"].encode("utf-8")).hexdigest(),
            "text": entry["text"],
        }

    data = {
        "generator": "tests/reference/make_chat_fixtures.py with jinja2 %s on Python %s: the environment of "
        "transformers' apply_chat_template rebuilt from its source, with strftime_now fixed at %s"
        % (jinja2.__version__, platform.python_version(), FIXED_NOW.isoformat()),
        "environment": ENVIRONMENT,
        "templates": template_entries,
        "cases": r.cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    args.out.write_text(text, encoding="utf-8")

    counts = {}
    for case in r.cases:
        key = case.get("template", "synthetic")
        ok, err = counts.get(key, (0, 0))
        counts[key] = (ok + ("expected" in case), err + ("error" in case))
    print(f"wrote {args.out} ({len(text.encode('utf-8'))} bytes, {len(r.cases)} cases)")
    for key, (ok, err) in counts.items():
        print(f"  {key}: {ok + err} cases ({err} errors)")


if __name__ == "__main__":
    main()
