// make demo: one chat request through the OpenAI API, streamed to the
// terminal as it arrives, then the usage the server reported.
// usage: node chat.mjs URL MODEL "question"
const [url, model, question] = process.argv.slice(2);
const r = await fetch(`${url}/v1/chat/completions`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    model, stream: true, stream_options: { include_usage: true }, max_tokens: 48,
    temperature: 0.7, seed: 1, messages: [{ role: 'user', content: question }],
  }),
});
if (!r.ok) {
  console.error(`demo: HTTP ${r.status}: ${await r.text()}`);
  process.exit(1);
}
process.stdout.write(`you> ${question}\nassistant> `);
const decoder = new TextDecoder();
let buf = '', usage = null, finish = null;
for await (const chunk of r.body) {
  buf += decoder.decode(chunk, { stream: true });
  let i;
  while ((i = buf.indexOf('\n\n')) >= 0) {
    const event = buf.slice(0, i);
    buf = buf.slice(i + 2);
    for (const line of event.split('\n')) {
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const c = JSON.parse(line.slice(6));
      if (c.usage) usage = c.usage;
      const d = c.choices?.[0]?.delta;
      if (d?.content) process.stdout.write(d.content);
      if (c.choices?.[0]?.finish_reason) finish = c.choices[0].finish_reason;
    }
  }
}
process.stdout.write('\n');
console.log(`(finish: ${finish}; ${usage.prompt_tokens} prompt tokens, ${usage.completion_tokens} generated)`);
