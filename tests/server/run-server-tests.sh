#!/usr/bin/env bash
# The server suite: dsv4-server on a tiny random-weight model with the
# fixture tokenizer, all on 127.0.0.1.
#   1. the official npm SDKs (clients/sdk.test.mjs) against two servers:
#      one sampling, one with --test-forced-output (thinking + a tool call)
#   2. bad input (clients/bad-input.test.mjs) against the ASan+UBSan build;
#      the server must answer everything, keep serving, and exit clean
#      (LeakSanitizer included) on SIGTERM
#   3. a bounded load test (clients/load.test.mjs): 32 clients, 0 errors,
#      /metrics counters equal to what the clients saw, RSS stable
#   4. /health is 503 while loading, then 200
#   1b. an engine error mid-generation (--test-fail-after): the error
#      events of both APIs' streams, 500 for plain requests
# TAP on stdout (node's reporter), one line per top-level test.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
work=$build/server-test
clients=$top/tests/server/clients
key=test-key-$$
rc=0
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
}
trap cleanup EXIT

if [ ! -d "$clients/node_modules/openai" ]; then
	echo "not ok 1 - npm test clients missing (make deps runs npm ci in tests/server/clients)"
	exit 1
fi
rm -rf "$work"
mkdir -p "$work"
"$build/bin/dsv4-mkmodel" --preset tiny-a --seed 3 --vocab 8064 \
	--tokenizer "$top/tests/fixtures/tokenizer/tokenizer.json" "$work/model" >/dev/null || {
	echo "not ok 1 - dsv4-mkmodel"; exit 1; }
cat >"$work/forced.txt" <<'EOF'
I should look up the weather.</think>

<｜DSML｜tool_calls>
<｜DSML｜invoke name="get_weather">
<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>
<｜DSML｜parameter name="days" string="false">3</｜DSML｜parameter>
</｜DSML｜invoke>
</｜DSML｜tool_calls>
EOF
# the file ends with a newline the model must not say: strip it
printf '%s' "$(cat "$work/forced.txt")" >"$work/forced.txt"

# start NAME BIN ARGS...: a server on a free port; sets $port
start() {
	local name=$1 bin=$2 i
	shift 2
	for i in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		"$bin" --model "$work/model" --alias tiny --port "$port" --api-key "$key" "$@" \
			>"$work/$name.log" 2>&1 &
		pid=$!
		for _ in $(seq 1 600); do
			if curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" |
				grep -q 200; then
				pids+=("$pid")
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		grep -q 'cannot listen' "$work/$name.log" || break
	done
	echo "not ok - $name did not start:"
	sed 's/^/# /' "$work/$name.log" | tail -20
	return 1
}

n=0
tap() {	# tap OK|FAIL DESCRIPTION
	n=$((n + 1))
	if [ "$1" = OK ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; rc=1; fi
}

# ---- 4. /health while loading ----
port=$((20000 + RANDOM % 40000))
# (a 6 s hold, up to ~5 s for the first answer: on 2 busy cores the
# server took over 2.5 s to listen once)
"$build/bin/dsv4-server" --model "$work/model" --port "$port" --test-load-delay 6000 \
	>"$work/loading.log" 2>&1 &
lp=$!
pids+=("$lp")
code=000
for _ in $(seq 1 100); do
	code=$(curl -s -o "$work/health.json" -w '%{http_code}' "http://127.0.0.1:$port/health")
	[ "$code" != 000 ] && break
	sleep 0.05
done
if [ "$code" = 503 ] && grep -q 'Loading model' "$work/health.json"; then
	tap OK "health: 503 while loading"
else
	tap FAIL "health: 503 while loading (got $code: $(cat "$work/health.json" 2>/dev/null))"
fi
for _ in $(seq 1 100); do
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")
	[ "$code" = 200 ] && break
	sleep 0.1
done
[ "$code" = 200 ] && tap OK "health: 200 once loaded" || tap FAIL "health: 200 once loaded (got $code)"
kill -TERM "$lp"
wait "$lp"
[ $? = 0 ] && tap OK "SIGTERM: clean exit" || tap FAIL "SIGTERM: clean exit"

# ---- 1. the SDKs ----
start main "$build/bin/dsv4-server" --parallel 2 --queue 2 --ctx-size 2048 || exit 1
main_port=$port
start forced "$build/bin/dsv4-server" --parallel 2 --test-forced-output "$work/forced.txt" ||
	exit 1
forced_port=$port
echo "# sdk tests: openai $(node -p "require('$clients/node_modules/openai/package.json').version"), @anthropic-ai/sdk $(node -p "require('$clients/node_modules/@anthropic-ai/sdk/package.json').version")"
DSV4_URL=http://127.0.0.1:$main_port DSV4_FORCED_URL=http://127.0.0.1:$forced_port \
	DSV4_KEY=$key DSV4_MODEL=tiny \
	node --test --test-reporter=tap --test-timeout=120000 "$clients/sdk.test.mjs" |
	grep -vE '^TAP version|^1\.\.' | sed -E "s/^(not )?ok [0-9]+ - /\1ok - sdk: /" || rc=1

# ---- 1b. an engine error mid-generation (--test-fail-after 3): a stream
# ends with its API's error event (and no finish), a plain request gets a
# 500, and the server goes on serving ----
start failing "$build/bin/dsv4-server" --parallel 1 --test-fail-after 3 || exit 1
post() {	# post PATH OUT BODY -> HTTP code
	curl -s -N -o "$2" -w '%{http_code}' -H "Authorization: Bearer $key" -H "x-api-key: $key" \
		-H 'anthropic-version: 2023-06-01' -H 'Content-Type: application/json' -d "$3" \
		"http://127.0.0.1:$port$1"
}
msg='"max_tokens":40,"temperature":0,"messages":[{"role":"user","content":"Hello there"}]'
code=$(post /v1/chat/completions "$work/fail-o.sse" "{\"model\":\"tiny\",\"stream\":true,$msg}")
if [ "$code" = 200 ] && grep -q '"delta":{"content":"[^"]' "$work/fail-o.sse" &&
	grep -q '"code":"generation_failed"' "$work/fail-o.sse" &&
	grep -q 'injected engine failure' "$work/fail-o.sse" &&
	! grep -q '"finish_reason":"' "$work/fail-o.sse" &&
	[ "$(tail -n 2 "$work/fail-o.sse" | head -n 1)" = "data: [DONE]" ]; then
	tap OK "engine error: OpenAI stream: text, then an error event and [DONE]"
else
	tap FAIL "engine error: OpenAI stream ($code): $(tail -c 400 "$work/fail-o.sse")"
fi
code=$(post /v1/messages "$work/fail-a.sse" "{\"model\":\"tiny\",\"stream\":true,$msg}")
if [ "$code" = 200 ] && grep -q '"text_delta","text":"[^"]' "$work/fail-a.sse" &&
	grep -q '^event: error' "$work/fail-a.sse" && grep -q '"type":"api_error"' "$work/fail-a.sse" &&
	! grep -q '^event: message_stop' "$work/fail-a.sse"; then
	tap OK "engine error: Anthropic stream: text, then an error event, no message_stop"
else
	tap FAIL "engine error: Anthropic stream ($code): $(tail -c 400 "$work/fail-a.sse")"
fi
code=$(post /v1/chat/completions "$work/fail-o.json" "{\"model\":\"tiny\",$msg}")
if [ "$code" = 500 ] && grep -q '"code":"generation_failed"' "$work/fail-o.json"; then
	tap OK "engine error: OpenAI request answered 500 generation_failed"
else
	tap FAIL "engine error: OpenAI request ($code): $(head -c 400 "$work/fail-o.json")"
fi
code=$(post /v1/messages "$work/fail-a.json" "{\"model\":\"tiny\",$msg}")
if [ "$code" = 500 ] && grep -q '"type":"error"' "$work/fail-a.json"; then
	tap OK "engine error: Anthropic request answered 500 with an error object"
else
	tap FAIL "engine error: Anthropic request ($code): $(head -c 400 "$work/fail-a.json")"
fi
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")
[ "$code" = 200 ] && tap OK "engine error: the server still healthy" ||
	tap FAIL "engine error: the server still healthy (health $code)"
bad=0
for v in 0 -1 x 2000000; do
	"$build/bin/dsv4-server" --model "$work/model" --test-fail-after "$v" >"$work/badopt.log" 2>&1 &&
		bad=1
	grep -q "bad value for --test-fail-after" "$work/badopt.log" || bad=1
done
[ $bad = 0 ] && tap OK "engine error: --test-fail-after rejects 0, -1, x, 2000000" ||
	tap FAIL "engine error: --test-fail-after rejects bad values ($(cat "$work/badopt.log"))"

# ---- 3. load (against the main server, queue large enough) ----
kill "${pids[@]}" 2>/dev/null
wait 2>/dev/null
pids=()
start load "$build/bin/dsv4-server" --parallel 4 --queue 64 --ctx-size 1024 || exit 1
DSV4_URL=http://127.0.0.1:$port DSV4_KEY=$key DSV4_MODEL=tiny DSV4_PID=$pid \
	node --test --test-reporter=tap --test-timeout=600000 "$clients/load.test.mjs" |
	grep -vE '^TAP version|^1\.\.' | sed -E "s/^(not )?ok [0-9]+ - /\1ok - load: /" || rc=1
kill "${pids[@]}" 2>/dev/null
wait 2>/dev/null
pids=()

# ---- 2. bad input, under ASan ----
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
start asan "$build/bin/dsv4-server-san" --parallel 2 --max-body 65536 --timeout 3 \
	--max-connections 64 --ctx-size 512 || exit 1
DSV4_URL=http://127.0.0.1:$port DSV4_KEY=$key DSV4_MODEL=tiny \
	node --test --test-reporter=tap --test-timeout=120000 "$clients/bad-input.test.mjs" |
	grep -vE '^TAP version|^1\.\.' | sed -E "s/^(not )?ok [0-9]+ - /\1ok - bad input: /" || rc=1
asan_pid=${pids[0]}
kill -TERM "$asan_pid"
wait "$asan_pid"
st=$?
pids=()
if [ $st = 0 ] && ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error' "$work/asan.log"; then
	tap OK "bad input: ASan/UBSan server exits clean, no leaks"
else
	tap FAIL "bad input: ASan/UBSan server exit $st"
	grep -E -A12 'ERROR: |runtime error' "$work/asan.log" | head -40 | sed 's/^/# /'
fi
exit $rc
