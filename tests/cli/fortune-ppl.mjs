// Held-out perplexity of the embedded model by our engine (dsv4-run
// --dump-logits, reference numerics), as tools/train/ppl.py computes it:
// NLL of the answer tokens (and EOS) given the chat prompt.
// usage: node fortune-ppl.mjs DSV4_RUN MODEL_DIR  -> prints {"ppl", "tokens", "samples"}
import { execFileSync } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [bin, model] = process.argv.slice(2);
const samples = JSON.parse(readFileSync(join(model, 'heldout.json'), 'utf8'));
const dir = mkdtempSync(join(tmpdir(), 'dsv4-ppl-'));
let nll = 0, count = 0;
for (const [i, s] of samples.entries()) {
  const out = join(dir, `${i}.logits`);
  execFileSync(bin, ['--model', model, '--threads', '2', '--numerics', 'reference',
    '--tokens', s.ids.join(','), '--n-predict', '1', '--dump-logits', out], { stdio: 'ignore' });
  const raw = readFileSync(out);
  const nl = raw.indexOf(10);
  const [, , rows, , vocab] = raw.subarray(0, nl).toString().split(' ').map(Number);
  const body = raw.subarray(nl + 1);
  const lg = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + rows * vocab * 4));
  for (let t = s.prompt_len; t < s.ids.length; t++) {
    const row = lg.subarray((t - 1) * vocab, t * vocab);
    let mx = -Infinity;
    for (const v of row) if (v > mx) mx = v;
    let sum = 0;
    for (const v of row) sum += Math.exp(v - mx);
    nll -= row[s.ids[t]] - mx - Math.log(sum);
    count++;
  }
  rmSync(out);
}
rmSync(dir, { recursive: true });
console.log(JSON.stringify({ ppl: Math.exp(nll / count), tokens: count, samples: samples.length }));
