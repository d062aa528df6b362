#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# FUZZ_SECONDS (default 30) from the committed seed corpus.  TAP on stdout.
#   make check: 30 s per target;  make fuzz: FUZZ_SECONDS=600
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}/fuzz
secs=${FUZZ_SECONDS:-30}
mkdir -p "$build"
n=0
rc=0
for src in "$top"/tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	n=$((n + 1))
	bin=$build/$name
	if ! clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -I"$top/kmod/uapi" -I"$top/libdsv4drv/include" \
		-o "$bin" "$src" "$top"/libdsv4drv/src/{safetensors,dtype,error}.c -ljansson -lm 2>"$build/$name.build.log"; then
		echo "not ok $n $name builds"
		sed 's/^/# /' "$build/$name.build.log" | head -20
		rc=1
		continue
	fi
	work=$build/$name.corpus
	mkdir -p "$work"
	if "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		"$work" "$top/tests/fuzz/corpus" >"$build/$name.log" 2>&1; then
		runs=$(grep -oE 'Done [0-9]+ runs' "$build/$name.log" | tail -1)
		echo "ok $n $name: no crash in ${secs}s ($runs)"
	else
		echo "not ok $n $name crashed (log: $build/$name.log)"
		grep -E 'ERROR|SUMMARY|runtime error' "$build/$name.log" | head -10 | sed 's/^/# /'
		rc=1
	fi
done
echo "1..$n"
exit $rc
