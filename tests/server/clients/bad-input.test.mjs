// Bad input against dsv4-server (run under ASan+UBSan by run-server-tests.sh):
// every request gets a clear error in its API's shape, nothing crashes, the
// server keeps serving, and a client that leaves frees its sequence.
// DSV4_URL, DSV4_KEY, DSV4_MODEL as in sdk.test.mjs; the server runs with
// --max-body 65536 --timeout 3 --max-connections 64.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

const url = process.env.DSV4_URL;
const key = process.env.DSV4_KEY;
const model = process.env.DSV4_MODEL;
const { hostname, port } = new URL(url);
const auth = { authorization: `Bearer ${key}` };

async function post(path, body, headers = {}) {
  const r = await fetch(url + path, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

// Raw bytes on a socket; resolves with what came back before the server
// closed (or @wait ms passed).
function raw(bytes, wait = 3000) {
  return new Promise((resolve) => {
    const s = net.connect(port, hostname);
    let got = '';
    const t = setTimeout(() => { s.destroy(); resolve(got); }, wait);
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('close', () => { clearTimeout(t); resolve(got); });
    s.on('error', () => {});
    s.write(bytes);
  });
}

// The server closes idle keep-alive connections after its --timeout (3 s
// here) and undici keeps them 4 s, so a GET can go out on a connection the
// server has just closed ('fetch failed'): retry it, as clients do for
// idempotent requests.
async function slots() {
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`${url}/slots`, { headers: auth });
      return await r.json();
    } catch (e) {
      if (i >= 2) throw e;
    }
  }
}

async function waitIdle(ms = 8000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const s = await slots();
    if (s.running === 0 && s.waiting === 0) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const openaiError = (r, status, re) => {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.json?.error?.message, 'string', r.text);
  assert.equal(typeof r.json.error.type, 'string');
  if (re) assert.match(r.json.error.message, re);
};

const anthropicError = (r, status, re) => {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.type, 'error', r.text);
  assert.equal(typeof r.json.error.type, 'string');
  if (re) assert.match(r.json.error.message, re);
};

test('malformed and truncated JSON: 400 with the position', async () => {
  const full = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });
  for (let cut = 0; cut < full.length; cut += 7) {
    const r = await post('/v1/chat/completions', full.slice(0, cut));
    openaiError(r, 400);
  }
  openaiError(await post('/v1/chat/completions', '{"model": "x",,}'), 400, /JSON/);
  openaiError(await post('/v1/chat/completions', '[1, 2]'), 400, /object/);
  openaiError(await post('/v1/chat/completions', '{"a":1}{"b":2}'), 400);
  openaiError(await post('/v1/chat/completions', '['.repeat(30000)), 400);
  anthropicError(await post('/v1/messages', '{"model":'), 400);
});

test('wrong types name the field', async () => {
  const base = { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };
  const cases = [
    [{ messages: 5 }, /messages/],
    [{ messages: [] }, /messages/],
    [{ max_tokens: 'x' }, /max_tokens/],
    [{ max_tokens: 0 }, /max_tokens/],
    [{ temperature: 'hot' }, /temperature/],
    [{ top_p: 3 }, /top_p/],
    [{ top_k: -1 }, /top_k/],
    [{ stop: [1] }, /stop/],
    [{ stop: '' }, /stop/],
    [{ stop: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'] }, /stop/],
    [{ seed: 'x' }, /seed/],
    [{ n: 2 }, /'n'/],
    [{ stream: 'yes' }, /stream/],
    [{ tools: {} }, /tools/],
    [{ logprobs: 1 }, /logprobs/],
    [{ top_logprobs: 50, logprobs: true }, /top_logprobs/],
    [{ reasoning_effort: 'extreme' }, /reasoning_effort/],
    [{ thinking: true }, /thinking/],
    [{ messages: [{ role: 7, content: 'x' }] }, null],
    [{ messages: [{ role: 'wizard', content: 'x' }] }, null],
    [{ messages: [{ role: 'user', content: { a: 1 } }] }, null],
    [{ messages: ['hello'] }, null],
    [{ model: 5 }, /model/],
  ];
  for (const [patch, re] of cases) {
    const r = await post('/v1/chat/completions', JSON.stringify({ ...base, ...patch }));
    openaiError(r, 400, re);
  }
  const bad = [
    [{ max_tokens: undefined }, /max_tokens/],
    [{ messages: [{ role: 'system', content: 'x' }] }, null],
    [{ stop_sequences: 'x' }, /stop_sequences/],
    [{ temperature: 1.5 }, /temperature/],
    [{ system: 5 }, /system/],
    [{ thinking: { type: 'maybe' } }, /thinking/],
    [{ messages: [{ role: 'user', content: [{ type: 'tool_result' }] }] }, /tool_result/],
    // a bad block after good text: the text gathered so far is freed (ASan below)
    [{ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text' }] }] }, /text/],
    [{ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { text: 'b' }] }] }, /type/],
    [{ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, 7] }] }, /type/],
  ];
  for (const [patch, re] of bad) {
    const r = await post('/v1/messages', JSON.stringify({ ...base, ...patch }));
    anthropicError(r, 400, re);
  }
  // an error message cut at its limit inside a multi-byte character is
  // still sent (as valid UTF-8), wherever in the character the cut falls
  const names = [];
  for (const [ch, width] of [['\u00e9', 2], ['\u20ac', 3], ['\u{1F600}', 4]])
    for (let k = 0; k < width; k++) names.push('x'.repeat(k) + ch.repeat(1400 / width));
  for (const name of names) {
    openaiError(await post('/v1/chat/completions', JSON.stringify({ model: name, messages: [{ role: 'user', content: 'hi' }] })), 404);
    anthropicError(await post('/v1/messages', JSON.stringify({ model: name, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] })), 404);
  }
  const c = await post('/v1/completions', JSON.stringify({ model, prompt: [99999999] }));
  openaiError(c, 400, /prompt/);
  openaiError(await post('/v1/completions', JSON.stringify({ model, prompt: [] })), 400, /prompt/);
  openaiError(await post('/v1/completions', JSON.stringify({ model, prompt: 'x', suffix: 'y' })), 400, /suffix/);
  openaiError(await post('/tokenize', JSON.stringify({ content: 5 })), 400, /content/);
  openaiError(await post('/detokenize', JSON.stringify({ tokens: [-1] })), 400, /tokens/);
  openaiError(await post('/detokenize', JSON.stringify({ tokens: ['a'] })), 400, /tokens/);
  openaiError(await post('/detokenize', JSON.stringify({ tokens: [1e12] })), 400, /tokens/);
});

test('unknown fields are ignored; unknown model 404; unknown route 404; wrong method 405', async () => {
  const r = await post('/v1/chat/completions', JSON.stringify({
    model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, frobnicate: { deep: [1] },
  }));
  assert.equal(r.status, 200, r.text);
  openaiError(await post('/v1/chat/completions', JSON.stringify({ model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }] })), 404, /gpt-9/);
  anthropicError(await post('/v1/messages', JSON.stringify({ model: 'claude-x', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] })), 404);
  openaiError(await post('/v1/nothing', '{}'), 404);
  const g = await fetch(`${url}/v1/chat/completions`, { headers: auth });
  assert.equal(g.status, 405);
});

test('context overflow: 400 with the limits', async () => {
  const long = 'word '.repeat(2000);
  const r = await post('/v1/chat/completions', JSON.stringify({ model, messages: [{ role: 'user', content: long }] }));
  openaiError(r, 400, /context is 512 tokens/);
  const a = await post('/v1/messages', JSON.stringify({ model, max_tokens: 100000, messages: [{ role: 'user', content: 'hi' }] }));
  anthropicError(a, 400, /context/);
});

test('invalid UTF-8 in the body: 400', async () => {
  const body = Buffer.concat([Buffer.from('{"model":"' + model + '","messages":[{"role":"user","content":"'),
    Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('"}]}')]);
  openaiError(await post('/v1/chat/completions', body), 400, /UTF-8|utf-8|JSON/i);
  openaiError(await post('/tokenize', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])), 400);
});

test('huge bodies: 413, by Content-Length and by chunked upload', async () => {
  const big = 'x'.repeat(200000);
  const r = await post('/v1/chat/completions', JSON.stringify({ model, messages: [{ role: 'user', content: big }] }));
  openaiError(r, 413);
  const a = await post('/v1/messages', JSON.stringify({ model, max_tokens: 1, messages: [{ role: 'user', content: big }] }));
  anthropicError(a, 413);
  const chunk = 'a'.repeat(8000);
  let req = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n`;
  for (let i = 0; i < 12; i++) req += `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
  req += '0\r\n\r\n';
  const got = await raw(req, 5000);
  assert.match(got, /^HTTP\/1\.1 413/);
});

test('missing or wrong API key: 401 in each shape; /health stays public', async () => {
  openaiError(await post('/v1/chat/completions', '{}', { authorization: 'Bearer nope' }), 401);
  anthropicError(await post('/v1/messages', '{}', { authorization: '', 'x-api-key': 'nope' }), 401);
  const h = await fetch(`${url}/health`);
  assert.equal(h.status, 200);
  const m = await fetch(`${url}/metrics`);
  assert.equal(m.status, 401);
});

test('garbage HTTP does not hurt the server', async () => {
  await raw('GARBAGE\r\n\r\n', 1000);
  await raw('\x00\x01\x02\xff\xfe'.repeat(1000), 1000);
  await raw(`GET /health HTTP/1.1\r\nHost: x\r\n${'X-A: b\r\n'.repeat(5000)}\r\n`, 1000);
  await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n`, 1000);
  const h = await fetch(`${url}/health`);
  assert.equal(h.status, 200);
});

test('slow clients are cut off; others are served meanwhile', async () => {
  const socks = [];
  for (let i = 0; i < 20; i++) {
    const s = net.connect(port, hostname);
    s.on('error', () => {});
    s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n');
    socks.push(s);
  }
  const t0 = Date.now();
  const r = await post('/v1/chat/completions', JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }));
  assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 < 20000);
  // the server's idle timeout (3 s) closes the half-sent requests
  const closed = await Promise.all(socks.map((s) => new Promise((res) => {
    const t = setTimeout(() => res(false), 15000);
    s.on('close', () => { clearTimeout(t); res(true); });
  })));
  assert.ok(closed.every(Boolean));
});

test('a client leaving mid-stream frees its sequence', async () => {
  const ctl = new AbortController();
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', signal: ctl.signal,
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 400, stream: true, temperature: 1 }),
  });
  const reader = r.body.getReader();
  await reader.read();
  ctl.abort();
  assert.ok(await waitIdle(), 'sequence still running after the client left');
});

test('a client leaving a non-streaming request frees its sequence', async () => {
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 450 });
  await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 300);
  assert.ok(await waitIdle(), 'sequence still running after the client left');
  const a = new AbortController();
  const p = fetch(`${url}/v1/messages`, {
    method: 'POST', signal: a.signal, headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: 450, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const r = await p;
  await r.body.getReader().read();
  a.abort();
  assert.ok(await waitIdle());
});

test('still serving after all of it', async () => {
  const r = await post('/v1/chat/completions', JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 3 }));
  assert.equal(r.status, 200, r.text);
  const m = await fetch(`${url}/metrics`, { headers: auth });
  assert.equal(m.status, 200);
  assert.match(await m.text(), /dsv4_requests_total\{api="openai",endpoint="\/v1\/chat\/completions",status="400"\}/);
});
