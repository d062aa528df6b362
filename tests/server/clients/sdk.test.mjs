// The official OpenAI and Anthropic SDKs against dsv4-server.
//
// DSV4_URL: a server on a tiny random-weight model (real sampling);
// DSV4_FORCED_URL: the same model with --test-forced-output, whose every
// answer is a fixed thinking + tool-call text (so that reasoning and tool
// calls can be checked through the SDKs); DSV4_KEY: the --api-key of both;
// DSV4_MODEL: the model id.  Run by tests/server/run-server-tests.sh.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const url = process.env.DSV4_URL;
const forcedUrl = process.env.DSV4_FORCED_URL;
const key = process.env.DSV4_KEY;
const model = process.env.DSV4_MODEL;

const oai = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
const ant = new Anthropic({ baseURL: url, apiKey: key, maxRetries: 0 });
const oaiForced = new OpenAI({ baseURL: `${forcedUrl}/v1`, apiKey: key, maxRetries: 0 });
const antForced = new Anthropic({ baseURL: forcedUrl, apiKey: key, maxRetries: 0 });

const hello = [{ role: 'user', content: 'Say something about the sea.' }];

async function tokenize(content) {
  const r = await fetch(`${url}/tokenize`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ content }),
  });
  assert.equal(r.status, 200);
  return (await r.json()).tokens;
}

test('openai: models list names the served model', async () => {
  const list = await oai.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  assert.deepEqual(ids, [model]);
  const one = await oai.models.retrieve(model);
  assert.equal(one.id, model);
});

test('openai: chat completion, its shape and usage', async () => {
  const r = await oai.chat.completions.create({ model, messages: hello, max_tokens: 12, seed: 1 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  // the prompt is DeepSeek V4's rendering: BOS, <｜User｜>, text, <｜Assistant｜></think>
  const ids = await tokenize('<｜begin▁of▁sentence｜><｜User｜>Say something about the sea.<｜Assistant｜></think>');
  assert.equal(r.usage.prompt_tokens, ids.length);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
  if (r.choices[0].finish_reason === 'length') assert.equal(r.usage.completion_tokens, 12);
});

test('openai: the same seed gives the same answer; greedy too', async () => {
  const a = await oai.chat.completions.create({ model, messages: hello, max_tokens: 16, seed: 7, temperature: 1.2 });
  const b = await oai.chat.completions.create({ model, messages: hello, max_tokens: 16, seed: 7, temperature: 1.2 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const g1 = await oai.chat.completions.create({ model, messages: hello, max_tokens: 16, temperature: 0 });
  const g2 = await oai.chat.completions.create({ model, messages: hello, max_tokens: 16, temperature: 0 });
  assert.equal(g1.choices[0].message.content, g2.choices[0].message.content);
});

test('openai: streaming chunks add up to the non-streaming answer, usage last', async () => {
  const params = { model, messages: hello, max_tokens: 20, temperature: 0 };
  const whole = await oai.chat.completions.create(params);
  const stream = await oai.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, chunks = 0, roleSeen = false;
  for await (const c of stream) {
    chunks++;
    assert.equal(c.object, 'chat.completion.chunk');
    if (c.usage) {
      usage = c.usage;
      assert.equal(c.choices.length, 0);
      continue;
    }
    assert.equal(c.usage, null);
    const d = c.choices[0].delta;
    if (d.role) roleSeen = true;
    if (d.content) text += d.content;
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.ok(roleSeen);
  assert.ok(chunks >= 3);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.ok(usage);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
  assert.equal(usage.prompt_tokens, whole.usage.prompt_tokens);
});

test('openai: logprobs with top_logprobs', async () => {
  const r = await oai.chat.completions.create({ model, messages: hello, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens - (r.choices[0].finish_reason === 'stop' ? 1 : 0));
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    // greedy: the chosen token is the most likely one
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
  }
});

test('openai: streamed logprobs add up to the non-streaming ones', async () => {
  const params = { model, messages: hello, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2 };
  const whole = await oai.chat.completions.create(params);
  const stream = await oai.chat.completions.create({ ...params, stream: true });
  const got = [];
  for await (const c of stream) {
    const lp = c.choices[0]?.logprobs;
    if (lp) {
      assert.ok(lp.content.length > 0, 'a chunk with logprobs carries entries');
      got.push(...lp.content);
    }
  }
  const want = whole.choices[0].logprobs.content;
  assert.ok(want.length > 0);
  assert.deepEqual(got.map((t) => t.token), want.map((t) => t.token));
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i].logprob - want[i].logprob) < 1e-6);
    assert.equal(got[i].top_logprobs.length, 2);
  }
});

test('openai: a prompt longer than a cache block is reused (cached_tokens)', async () => {
  const long = 'The quick brown fox jumps over the lazy dog. '.repeat(40);
  const msgs = [{ role: 'user', content: long }];
  await oai.chat.completions.create({ model, messages: msgs, max_tokens: 2 });
  const r = await oai.chat.completions.create({ model, messages: msgs, max_tokens: 2 });
  assert.ok(r.usage.prompt_tokens > 256);
  assert.ok(r.usage.prompt_tokens_details.cached_tokens >= 128, JSON.stringify(r.usage));
  assert.equal(r.usage.prompt_tokens_details.cached_tokens % 128, 0);
});

test('openai: legacy completions, plain and streamed', async () => {
  const r = await oai.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  const s = await oai.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('openai: errors come back as the SDK exception types', async () => {
  await assert.rejects(oai.chat.completions.create({ model: 'no-such-model', messages: hello }), OpenAI.NotFoundError);
  await assert.rejects(oai.chat.completions.create({ model, messages: 'not a list' }), OpenAI.BadRequestError);
  await assert.rejects(oai.chat.completions.create({ model, messages: hello, temperature: 9 }), OpenAI.BadRequestError);
  await assert.rejects(oai.chat.completions.create({ model, messages: hello, max_tokens: 10000000 }),
    (e) => e instanceof OpenAI.BadRequestError && /context/.test(e.message));
  const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model, messages: hello }), OpenAI.AuthenticationError);
});

test('openai: over the queue, 429 RateLimitError; the others finish', async () => {
  // the server runs --parallel 2 --queue 2: 10 at once overflow it
  const reqs = [];
  for (let i = 0; i < 10; i++)
    reqs.push(oai.chat.completions.create({ model, messages: hello, max_tokens: 48, temperature: 0 }));
  const res = await Promise.allSettled(reqs);
  const ok = res.filter((r) => r.status === 'fulfilled').length;
  const limited = res.filter((r) => r.status === 'rejected' && r.reason instanceof OpenAI.RateLimitError).length;
  assert.equal(ok + limited, 10, JSON.stringify(res.filter((r) => r.status === 'rejected').map((r) => String(r.reason))));
  assert.ok(limited >= 1);
  assert.ok(ok >= 2);
});

test('openai: thinking and a tool call, non-streaming and streamed', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } } }];
  const params = { model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, thinking: { type: 'enabled' } };
  const r = await oaiForced.chat.completions.create(params);
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.reasoning_content, 'I should look up the weather.');
  assert.equal(m.tool_calls.length, 1);
  assert.equal(m.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { city: 'Paris', days: 3 });

  const s = await oaiForced.chat.completions.create({ ...params, stream: true });
  let reasoning = '', calls = [], finish = null;
  for await (const c of s) {
    const d = c.choices[0]?.delta ?? {};
    if (d.reasoning_content) reasoning += d.reasoning_content;
    if (d.tool_calls) calls.push(...d.tool_calls);
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.equal(reasoning, 'I should look up the weather.');
  assert.equal(finish, 'tool_calls');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].index, 0);
  assert.deepEqual(JSON.parse(calls[0].function.arguments), { city: 'Paris', days: 3 });

  // the round trip: the call and its result go back in the history
  const r2 = await oaiForced.chat.completions.create({
    ...params,
    messages: [...params.messages, m, { role: 'tool', tool_call_id: m.tool_calls[0].id, content: '{"temp": 21}' }],
  });
  assert.ok(r2.usage.prompt_tokens > r.usage.prompt_tokens);
});

test('openai: stop strings end the answer before them', async () => {
  const r = await oaiForced.chat.completions.create({ model, messages: hello, thinking: { type: 'enabled' }, stop: ['look up'] });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].message.reasoning_content, 'I should ');
});

test('anthropic: a message, its shape and usage', async () => {
  const r = await ant.messages.create({ model, max_tokens: 10, messages: hello, temperature: 0 });
  assert.equal(r.type, 'message');
  assert.equal(r.role, 'assistant');
  assert.equal(r.content[0].type, 'text');
  assert.ok(['end_turn', 'max_tokens'].includes(r.stop_reason));
  assert.ok(r.usage.output_tokens >= 1 && r.usage.output_tokens <= 10);
  assert.equal(typeof r.usage.cache_read_input_tokens, 'number');
  const count = await ant.messages.countTokens({ model, messages: hello });
  assert.equal(count.input_tokens, r.usage.input_tokens + r.usage.cache_read_input_tokens);
});

test('anthropic: streaming events add up to the answer', async () => {
  const params = { model, max_tokens: 16, messages: hello, temperature: 0, system: 'Be brief.' };
  const whole = await ant.messages.create(params);
  const stream = ant.messages.stream(params);
  const types = [];
  stream.on('streamEvent', (e) => types.push(e.type));
  const final = await stream.finalMessage();
  assert.equal(types[0], 'message_start');
  assert.equal(types[types.length - 1], 'message_stop');
  assert.ok(types.includes('message_delta'));
  assert.deepEqual(final.content, whole.content);
  assert.equal(final.stop_reason, whole.stop_reason);
  assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
});

test('anthropic: thinking and tool_use, then the tool_result round trip', async () => {
  const tools = [{ name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } } }];
  const params = { model, max_tokens: 200, tools, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'Weather in Paris?' }] };
  const r = await antForced.messages.create(params);
  assert.equal(r.stop_reason, 'tool_use');
  assert.equal(r.content[0].type, 'thinking');
  assert.equal(r.content[0].thinking, 'I should look up the weather.');
  const use = r.content.find((b) => b.type === 'tool_use');
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Paris', days: 3 });

  const final = await antForced.messages.stream(params).finalMessage();
  assert.equal(final.stop_reason, 'tool_use');
  assert.deepEqual(final.content.find((b) => b.type === 'tool_use').input, { city: 'Paris', days: 3 });
  assert.equal(final.content[0].thinking, 'I should look up the weather.');

  const r2 = await antForced.messages.create({
    ...params,
    messages: [...params.messages, { role: 'assistant', content: r.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '{"temp": 21}' }] }],
  });
  assert.ok(r2.usage.input_tokens + r2.usage.cache_read_input_tokens >
            r.usage.input_tokens + r.usage.cache_read_input_tokens);
});

test('anthropic: errors come back as the SDK exception types', async () => {
  await assert.rejects(ant.messages.create({ model: 'no-such-model', max_tokens: 5, messages: hello }), Anthropic.NotFoundError);
  await assert.rejects(ant.messages.create({ model, messages: hello }), Anthropic.BadRequestError);
  await assert.rejects(ant.messages.create({ model, max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'image', source: {} }] }] }), Anthropic.BadRequestError);
  const bad = new Anthropic({ baseURL: url, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.messages.create({ model, max_tokens: 5, messages: hello }), Anthropic.AuthenticationError);
});

test('anthropic: over the queue, 529 OverloadedError', async () => {
  const reqs = [];
  for (let i = 0; i < 10; i++)
    reqs.push(ant.messages.create({ model, max_tokens: 48, messages: hello, temperature: 0 }));
  const res = await Promise.allSettled(reqs);
  const over = res.filter((r) => r.status === 'rejected' && r.reason instanceof Anthropic.OverloadedError).length;
  const ok = res.filter((r) => r.status === 'fulfilled').length;
  assert.equal(ok + over, 10);
  assert.ok(over >= 1);
});
