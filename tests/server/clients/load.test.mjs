// A bounded load test: 32 concurrent clients, each sending a few requests
// through the OpenAI and Anthropic SDKs (streaming and not).  Checks: no
// errors, the /metrics counters moved by exactly what the clients saw, and
// the server's RSS did not grow between a warm-up round and the end.
// DSV4_URL, DSV4_KEY, DSV4_MODEL, DSV4_PID (the server's pid, for RSS).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const url = process.env.DSV4_URL;
const key = process.env.DSV4_KEY;
const model = process.env.DSV4_MODEL;
const pid = process.env.DSV4_PID;
const CLIENTS = 32;
const PER_CLIENT = Number(process.env.DSV4_LOAD_PER_CLIENT ?? 8);

const oai = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 600000 });
const ant = new Anthropic({ baseURL: url, apiKey: key, maxRetries: 0, timeout: 600000 });

function rssKiB() {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return Number(m[1]);
}

async function metrics() {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).text();
  const get = (re) => {
    const m = text.match(re);
    return m ? Number(m[1]) : 0;
  };
  return {
    generated: get(/^dsv4_generation_tokens_total (\d+)/m),
    prompt: get(/^dsv4_prompt_tokens_total (\d+)/m),
    chat200: get(/^dsv4_requests_total\{api="openai",endpoint="\/v1\/chat\/completions",status="200"\} (\d+)/m),
    msg200: get(/^dsv4_requests_total\{api="anthropic",endpoint="\/v1\/messages",status="200"\} (\d+)/m),
    ttft: get(/^dsv4_time_to_first_token_seconds_count (\d+)/m),
  };
}

// One request of kind i % 4; returns { prompt, completion, api }.
async function one(c, i) {
  const content = `Client ${c} request ${i}: tell me about number ${c * 100 + i}.`;
  const max = 4 + ((c + i) % 5);
  switch (i % 4) {
    case 0: {
      const r = await oai.chat.completions.create({ model, messages: [{ role: 'user', content }], max_tokens: max });
      return { prompt: r.usage.prompt_tokens, completion: r.usage.completion_tokens, api: 'chat' };
    }
    case 1: {
      const s = await oai.chat.completions.create({ model, messages: [{ role: 'user', content }], max_tokens: max, stream: true, stream_options: { include_usage: true } });
      let usage = null;
      for await (const ch of s) if (ch.usage) usage = ch.usage;
      return { prompt: usage.prompt_tokens, completion: usage.completion_tokens, api: 'chat' };
    }
    case 2: {
      const r = await ant.messages.create({ model, max_tokens: max, messages: [{ role: 'user', content }] });
      return { prompt: r.usage.input_tokens + r.usage.cache_read_input_tokens, completion: r.usage.output_tokens, api: 'msg' };
    }
    default: {
      const f = await ant.messages.stream({ model, max_tokens: max, messages: [{ role: 'user', content }] }).finalMessage();
      return { prompt: f.usage.input_tokens + f.usage.cache_read_input_tokens, completion: f.usage.output_tokens, api: 'msg' };
    }
  }
}

async function round(perClient) {
  const results = [];
  const errors = [];
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    for (let i = 0; i < perClient; i++) {
      try {
        results.push(await one(c, i));
      } catch (e) {
        errors.push(String(e));
      }
    }
  }));
  return { results, errors };
}

test(`${CLIENTS} clients x ${PER_CLIENT} requests: no errors, metrics match, RSS stable`, async () => {
  await round(1);				// warm-up: buffers reach their size
  const rss0 = rssKiB();
  const m0 = await metrics();
  const t0 = Date.now();
  const { results, errors } = await round(PER_CLIENT);
  const secs = (Date.now() - t0) / 1000;
  const m1 = await metrics();
  const rss1 = rssKiB();
  assert.deepEqual(errors, []);
  assert.equal(results.length, CLIENTS * PER_CLIENT);
  const sum = (k, f = () => true) => results.filter(f).reduce((a, r) => a + r[k], 0);
  assert.equal(m1.generated - m0.generated, sum('completion'));
  assert.equal(m1.prompt - m0.prompt, sum('prompt'));
  assert.equal(m1.chat200 - m0.chat200, results.filter((r) => r.api === 'chat').length);
  assert.equal(m1.msg200 - m0.msg200, results.filter((r) => r.api === 'msg').length);
  assert.equal(m1.ttft - m0.ttft, results.length);
  console.log(`# ${results.length} requests in ${secs.toFixed(1)} s, ${sum('completion')} tokens out; RSS ${rss0} -> ${rss1} KiB`);
  assert.ok(rss1 - rss0 < 32 * 1024, `RSS grew by ${rss1 - rss0} KiB`);
});
