// The server through the official OpenAI Node SDK, as applications call it (run by run.sh, which
// starts the servers and passes their addresses). Models:
//   BUNDLED_URL: models/sort-reverse (SentencePiece, no chat template): "sort 3 1 2 =" -> " 1 2 3"
//   STORIES_URL: stories260K (SentencePiece, a Llama 2 vocabulary): leading spaces
//   QWEN_URL: a tiny Qwen3 with the real tokenizer and chat template, built so that greedy
//     decoding after "<|im_start|>assistant\n" writes a <think> block and a get_weather tool call,
//     and after "</think>\n\n" (enable_thinking false) the sentence below
//   QWEN_INLINE_URL: the same, started with --reasoning-format inline
//   KEYED_URL: the bundled model behind --api-key test-key-123

import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = (url, key = 'none') => new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 60000 });
const bundled = client(process.env.BUNDLED_URL);
const stories = client(process.env.STORIES_URL);
const qwen = client(process.env.QWEN_URL);
const qwenInline = client(process.env.QWEN_INLINE_URL);

const REASONING = 'The user asks for the weather in Paris; I will call the tool.';
const ANSWER = 'It is 18 degrees and sunny in Paris.';
const TOOLS = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city'] },
  },
}];
const WEATHER = [{ role: 'user', content: 'What is the weather in Paris?' }];

// Collects a chat stream into one message, as an application would.
async function collectChat(stream) {
  const out = { content: '', reasoning: '', calls: [], finish: null, chunks: 0, usage: null, logprobs: [] };
  for await (const chunk of stream) {
    out.chunks++;
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      const d = c.delta ?? {};
      if (d.content) out.content += d.content;
      if (d.reasoning_content) out.reasoning += d.reasoning_content;
      for (const call of d.tool_calls ?? []) {
        const slot = (out.calls[call.index] ??= { id: '', name: '', arguments: '' });
        if (call.id) slot.id = call.id;
        if (call.function?.name) slot.name += call.function.name;
        if (call.function?.arguments) slot.arguments += call.function.arguments;
      }
      if (c.logprobs?.content) out.logprobs.push(...c.logprobs.content);
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

async function collectCompletion(stream) {
  const out = { text: '', finish: null, usage: null, tokens: [], token_logprobs: [] };
  for await (const chunk of stream) {
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      out.text += c.text ?? '';
      if (c.logprobs) {
        out.tokens.push(...c.logprobs.tokens);
        out.token_logprobs.push(...c.logprobs.token_logprobs);
      }
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

async function rejects400(promise, param) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.status, 400, `status of ${e}`);
    assert.ok(e.error?.message || e.message, 'a message');
    if (param !== undefined) assert.equal(e.param ?? e.error?.param, param);
    return true;
  });
}

test('models: the one model, with created', async () => {
  const list = await bundled.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].id, 'sort-reverse');
  assert.equal(list.data[0].object, 'model');
  assert.ok(Number.isInteger(list.data[0].created) && list.data[0].created > 1.6e9);
});

test('completions: greedy answer, echo, stop, n with a seed', async () => {
  const r = await bundled.completions.create({ model: 'sort-reverse', prompt: 'sort 3 1 2 =', max_tokens: 8, temperature: 0 });
  assert.equal(r.choices[0].text, ' 1 2 3');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  const echo = await bundled.completions.create({ model: 'sort-reverse', prompt: 'sort 3 1 2 =', max_tokens: 8, temperature: 0, echo: true });
  assert.equal(echo.choices[0].text, 'sort 3 1 2 = 1 2 3');
  const stop = await bundled.completions.create({ model: 'sort-reverse', prompt: 'sort 3 1 2 =', max_tokens: 8, temperature: 0, stop: ' 3' });
  assert.equal(stop.choices[0].text, ' 1 2');
  assert.equal(stop.choices[0].finish_reason, 'stop');
  const a = await bundled.completions.create({ model: 'sort-reverse', prompt: 'sort 9 8 0 3 4 =', max_tokens: 12, n: 3, seed: 7, temperature: 1.5 });
  const b = await bundled.completions.create({ model: 'sort-reverse', prompt: 'sort 9 8 0 3 4 =', max_tokens: 12, n: 3, seed: 7, temperature: 1.5 });
  assert.equal(a.choices.length, 3);
  assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
});

test('completions: a stream joined equals the whole answer; include_usage adds the usage chunk', async () => {
  for (const prompt of ['sort 9 8 0 3 4 3 2 5 =', 'reverse 7 0 2 9 =']) {
    const whole = await bundled.completions.create({ prompt, max_tokens: 16, temperature: 0, model: 'x' });
    const s = await collectCompletion(await bundled.completions.create({ prompt, max_tokens: 16, temperature: 0, model: 'x', stream: true, stream_options: { include_usage: true } }));
    assert.equal(s.text, whole.choices[0].text);
    assert.equal(s.finish, whole.choices[0].finish_reason);
    assert.deepEqual(s.usage, whole.usage);
  }
});

test('stories260K: completions keep their leading space, streamed or not', async () => {
  const whole = await stories.completions.create({ model: 'stories260K', prompt: 'The dog', max_tokens: 12, temperature: 0 });
  assert.match(whole.choices[0].text, /^ \S/);
  const echo = await stories.completions.create({ model: 'stories260K', prompt: 'The dog', max_tokens: 12, temperature: 0, echo: true });
  assert.equal(echo.choices[0].text, 'The dog' + whole.choices[0].text);
  const s = await collectCompletion(await stories.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 24, temperature: 0, stream: true }));
  const w = await stories.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 24, temperature: 0 });
  assert.equal(s.text, w.choices[0].text);
  assert.doesNotMatch(s.text, / ,/);
});

test('completions logprobs: the chosen token is the greedy top, streamed equals whole', async () => {
  const prompt = 'Once upon a time';
  const r = await stories.completions.create({ model: 's', prompt, max_tokens: 10, temperature: 0, logprobs: 3 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, r.usage.completion_tokens);
  // (the tokens end with the EOS that ended the answer: its piece, as vLLM reports it)
  assert.ok(lp.tokens.join('').startsWith(r.choices[0].text));
  for (let i = 0; i < lp.tokens.length; i++) {
    assert.ok(lp.token_logprobs[i] <= 0);
    const top = lp.top_logprobs[i];
    assert.ok(Object.keys(top).length >= 3 && Object.keys(top).length <= 4);
    assert.equal(Math.max(...Object.values(top)), lp.token_logprobs[i], 'greedy picks the most likely token');
    if (i > 0) assert.equal(lp.text_offset[i], lp.text_offset[i - 1] + [...lp.tokens[i - 1]].length);
  }
  const s = await collectCompletion(await stories.completions.create({ model: 's', prompt, max_tokens: 10, temperature: 0, logprobs: 3, stream: true }));
  assert.deepEqual(s.tokens, lp.tokens);
  assert.deepEqual(s.token_logprobs, lp.token_logprobs);
});

test('frequency and presence penalties, logit_bias', async () => {
  const prompt = 'Once upon a time';
  const ask = (extra) => stories.completions.create({ model: 's', prompt, max_tokens: 40, temperature: 0, logprobs: 0, ...extra });
  const plain = await ask({});
  const toks = plain.choices[0].logprobs.tokens;
  assert.ok(new Set(toks).size < toks.length, 'the plain answer repeats a token');
  const penalized = await ask({ presence_penalty: 2.0, frequency_penalty: 2.0 });
  const ptoks = penalized.choices[0].logprobs.tokens;
  assert.notEqual(penalized.choices[0].text, plain.choices[0].text);
  assert.ok(new Set(ptoks).size / ptoks.length > new Set(toks).size / toks.length, 'fewer repeats');
  // The logprobs are the model's own, before penalties: the first token, with nothing generated
  // before it to penalize, is the same with the same logprob.
  assert.equal(ptoks[0], toks[0]);
  assert.equal(penalized.choices[0].logprobs.token_logprobs[0], plain.choices[0].logprobs.token_logprobs[0]);
  // +100 on one id forces it at every step; -100 keeps it out.
  const forced = await ask({ max_tokens: 5, logit_bias: { 300: 100 } });
  const ftoks = forced.choices[0].logprobs.tokens;
  assert.equal(ftoks.length, 5);
  assert.ok(ftoks.every((t) => t === ftoks[0]) && ftoks[0].length > 0, JSON.stringify(ftoks));
  const banned = await ask({ logit_bias: { 300: -100 } });
  assert.ok(!banned.choices[0].logprobs.tokens.includes(ftoks[0]));
});

test('refusals name the field', async () => {
  await rejects400(qwen.chat.completions.create({ model: 'q', messages: WEATHER, response_format: { type: 'json_object' } }), 'response_format');
  await rejects400(qwen.chat.completions.create({ model: 'q', messages: WEATHER, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }), 'response_format');
  await rejects400(qwen.chat.completions.create({ model: 'q', messages: WEATHER, tools: TOOLS, tool_choice: 'required' }), 'tool_choice');
  await rejects400(qwen.chat.completions.create({ model: 'q', messages: WEATHER, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } } }), 'tool_choice');
  await rejects400(bundled.completions.create({ model: 'x', prompt: 'sort 1 =', suffix: 'x' }), 'suffix');
  await rejects400(bundled.completions.create({ model: 'x', prompt: 'sort 1 =', frobnicate: 1 }), 'frobnicate');
  await rejects400(bundled.completions.create({ model: 'x', prompt: 'sort 1 =', presence_penalty: 3 }), 'presence_penalty');
  await rejects400(bundled.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }), 'messages');
  const ok = await qwen.chat.completions.create({ model: 'q', messages: WEATHER, response_format: { type: 'text' }, max_tokens: 4, temperature: 0 });
  assert.equal(ok.choices.length, 1);
});

test('tool call and reasoning, whole', async () => {
  const r = await qwen.chat.completions.create({ model: 'q', messages: WEATHER, tools: TOOLS, temperature: 0 });
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.tool_calls.length, 1);
  assert.equal(m.tool_calls[0].type, 'function');
  assert.equal(m.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { city: 'Paris', unit: 'celsius' });
  assert.ok(m.tool_calls[0].id.length > 0);
  assert.equal(m.reasoning_content.trim(), REASONING);
  assert.ok(!m.content, `no content besides the call, got ${JSON.stringify(m.content)}`);
});

test('tool call and reasoning, streamed', async () => {
  const s = await collectChat(await qwen.chat.completions.create({ model: 'q', messages: WEATHER, tools: TOOLS, temperature: 0, stream: true, stream_options: { include_usage: true } }));
  assert.equal(s.finish, 'tool_calls');
  assert.equal(s.calls.length, 1);
  assert.equal(s.calls[0].name, 'get_weather');
  assert.deepEqual(JSON.parse(s.calls[0].arguments), { city: 'Paris', unit: 'celsius' });
  assert.equal(s.reasoning.trim(), REASONING);
  assert.equal(s.content.trim(), '');
  assert.ok(s.usage && s.usage.completion_tokens > 10);
});

test('the tool round trip: content null with tool_calls, then a tool message', async () => {
  const first = await qwen.chat.completions.create({ model: 'q', messages: WEATHER, tools: TOOLS, temperature: 0 });
  const call = first.choices[0].message.tool_calls[0];
  const messages = [
    { role: 'developer', content: 'You are a weather assistant.' },
    ...WEATHER,
    { role: 'assistant', content: null, tool_calls: [call] },
    { role: 'tool', tool_call_id: call.id, content: '{"temperature": 18, "sky": "sunny"}' },
  ];
  const r = await qwen.chat.completions.create({ model: 'q', messages, tools: TOOLS, temperature: 0, chat_template_kwargs: { enable_thinking: false } });
  assert.equal(r.choices[0].message.content, ANSWER);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].message.tool_calls, undefined);
});

test('tool_choice none leaves the call as text; the inline reasoning server keeps <think>', async () => {
  const none = await qwen.chat.completions.create({ model: 'q', messages: WEATHER, tools: TOOLS, tool_choice: 'none', temperature: 0 });
  assert.match(none.choices[0].message.content, /<tool_call>/);
  assert.equal(none.choices[0].finish_reason, 'stop');
  const inline = await qwenInline.chat.completions.create({ model: 'q', messages: WEATHER, temperature: 0 });
  assert.match(inline.choices[0].message.content, /^<think>\nThe user asks/);
  assert.equal(inline.choices[0].message.reasoning_content, undefined);
});

test('chat logprobs with top_logprobs, streamed equals whole', async () => {
  const r = await qwen.chat.completions.create({ model: 'q', messages: WEATHER, temperature: 0, logprobs: true, top_logprobs: 2, chat_template_kwargs: { enable_thinking: false } });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.ok(t.logprob <= 0 && t.top_logprobs.length === 2);
    assert.equal(t.top_logprobs[0].logprob, t.logprob);
    assert.deepEqual(Buffer.from(t.bytes).toString('utf8'), t.token);
  }
  const s = await collectChat(await qwen.chat.completions.create({ model: 'q', messages: WEATHER, temperature: 0, logprobs: true, top_logprobs: 2, stream: true, chat_template_kwargs: { enable_thinking: false } }));
  assert.deepEqual(s.logprobs, content);
  assert.equal(s.content, r.choices[0].message.content);
});

test('ids the tokenizer has no piece for decode to nothing: the answer and the stream still end', async () => {
  // Qwen3's config has 151,936 ids, its tokenizer 151,669: force one in between.
  const r = await qwen.chat.completions.create({ model: 'q', messages: WEATHER, max_tokens: 4, temperature: 0, logit_bias: { 151900: 100 } });
  assert.equal(r.choices[0].message.content, '');
  assert.equal(r.choices[0].finish_reason, 'length');
  const s = await collectChat(await qwen.chat.completions.create({ model: 'q', messages: WEATHER, max_tokens: 4, temperature: 0, logit_bias: { 151900: 100 }, stream: true }));
  assert.equal(s.finish, 'length');
});

test('errors have JSON bodies; /metrics counts; the API key guards all but /health', async () => {
  for (const [method, path, status] of [['GET', '/nope', 404], ['GET', '/v1/completions', 405], ['POST', '/v1/completions', 400]]) {
    const res = await fetch(`${process.env.BUNDLED_URL}${path}`, { method });
    assert.equal(res.status, status);
    const body = await res.json();
    assert.ok(body.error.message.length > 0, `${path}: ${JSON.stringify(body)}`);
  }
  const metrics = await (await fetch(`${process.env.BUNDLED_URL}/metrics`)).text();
  assert.match(metrics, /maskgen_requests_total\{method="POST",path="\/v1\/completions",status="200"\} \d+/);
  assert.match(metrics, /maskgen_time_to_first_token_seconds_count \d+/);
  assert.match(metrics, /maskgen_requests_running \d+/);
  const keyed = process.env.KEYED_URL;
  await assert.rejects(client(keyed, 'wrong').models.list(), (e) => e.status === 401);
  const fine = await client(keyed, 'test-key-123').completions.create({ model: 'x', prompt: 'sort 3 1 2 =', max_tokens: 8, temperature: 0 });
  assert.equal(fine.choices[0].text, ' 1 2 3');
  assert.equal((await fetch(`${keyed}/health`)).status, 200);
  const unauth = await fetch(`${keyed}/metrics`);
  assert.equal(unauth.status, 401);
  assert.equal((await unauth.json()).error.type, 'authentication_error');
});
