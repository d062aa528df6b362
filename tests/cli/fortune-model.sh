#!/usr/bin/env bash
# The embedded default model (userspace/models/fortune-v4): it loads as a
# release checkpoint, our held-out perplexity equals the PyTorch reference's
# recorded in ppl.json (DeepSeek's official code, same checkpoint) within
# 1 %, and the server answers a chat request with it.  TAP on stdout.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
model=$top/userspace/models/fortune-v4
n=0
rc=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; rc=1; fi; }

size=$(stat -c %s "$model/model.safetensors")
[ "$size" -le 20000000 ]; t $? "checkpoint is $((size / 1000)) kB (at most 20 MB)"
"$build/bin/dsv4-ckpt" "$model" >/dev/null 2>&1; t $? "dsv4-ckpt opens it as a release checkpoint"
cmp -s "$model/tokenizer.json" "$top/tests/fixtures/tokenizer/tokenizer.json"
t $? "its tokenizer.json is the one checked against HF tokenizers"
got=$(node "$top/tests/cli/fortune-ppl.mjs" "$build/bin/dsv4-run" "$model")
ours=$(node -p "JSON.parse(process.argv[1]).ppl" "$got")
ref=$(node -p "require('$model/ppl.json').official_ppl")
node -e "process.exit(Math.abs($ours / $ref - 1) <= 0.01 ? 0 : 1)"
t $? "held-out perplexity $ours vs the official code's $ref (within 1 %)"

port=$((20000 + RANDOM % 40000))
"$build/bin/dsv4-server" --model "$model" --alias fortune --port "$port" -q &
pid=$!
for _ in $(seq 1 100); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && break
	sleep 0.1
done
answer=$(curl -s "http://127.0.0.1:$port/v1/chat/completions" -d '{"model": "fortune",
	"messages": [{"role": "user", "content": "Tell me a fortune."}], "max_tokens": 48,
	"temperature": 0}' | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
	const r=JSON.parse(s); console.log(r.choices[0].message.content)})')
kill "$pid"
wait "$pid" 2>/dev/null
# readable English: mostly letters and spaces, several words of two or more letters
words=$(grep -oE '[A-Za-z]{2,}' <<<"$answer" | wc -l)
[ "$words" -ge 4 ]; t $? "a chat answer in words: $(tr '\n\t' '  ' <<<"$answer")"
echo "1..$n"
exit $rc
