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
# Each target names what it links in its first line:
#   /* fuzz-srcs: FILES... ; fuzz-libs: -l... ; fuzz-cflags: ... */
# (paths from the repository root, globs allowed); its seeds live in
# corpus-<name>/ (fuzz_foo.c: corpus-foo/), else corpus/.
field() {	# field NAME FIRSTLINE
	sed -n "s/.*$1:\([^;*]*\).*/\1/p" <<<"$2"
}
for src in "$top"/tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	n=$((n + 1))
	bin=$build/$name
	first=$(head -1 "$src")
	srcs=$(cd "$top" && for f in $(field fuzz-srcs "$first"); do echo "$top/$f"; done)
	libs=$(field fuzz-libs "$first")
	cflags=$(field fuzz-cflags "$first")
	cflags=${cflags//-I/-I$top/}
	cflags=${cflags//-I$top\/\//-I\/}
	if [ -z "$srcs" ] || ! clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -I"$top/kmod/uapi" -I"$top/libdsv4drv/include" $cflags \
		-DFIXTURES="\"$top/tests/fixtures\"" \
		-o "$bin" "$src" $srcs $libs 2>"$build/$name.build.log"; then
		echo "not ok $n $name builds"
		sed 's/^/# /' "$build/$name.build.log" | head -20
		rc=1
		continue
	fi
	seeds=$top/tests/fuzz/corpus-${name#fuzz_}
	[ -d "$seeds" ] || seeds=$top/tests/fuzz/corpus
	work=$build/$name.corpus
	mkdir -p "$work"
	if "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		"$work" "$seeds" >"$build/$name.log" 2>&1; then
		runs=$(grep -oE 'Done [0-9]+ runs' "$build/$name.log" | tail -1)
		echo "ok $n $name: no crash in ${secs}s ($runs)"
	else
		echo "not ok $n $name crashed (log: $build/$name.log)"
		grep -E 'ERROR|SUMMARY|runtime error|deadly signal' "$build/$name.log" | head -10 | sed 's/^/# /'
		rc=1
	fi
done
# The allocation-failure sweep (oom_request.c): fuzz_request's harness and
# sources, the sources' allocations renamed to the sweep's counting ones.
n=$((n + 1))
first=$(head -1 "$top/tests/fuzz/fuzz_request.c")
libs=$(field fuzz-libs "$first")
cflags=$(field fuzz-cflags "$first")
cflags=${cflags//-I/-I$top/}
cflags=${cflags//-I$top\/\//-I\/}
obj=$build/oom.obj
rm -rf "$obj"
mkdir -p "$obj"
cc_san() {
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
		-I"$top/kmod/uapi" -I"$top/libdsv4drv/include" $cflags "$@"
}
ok=1
for f in $(field fuzz-srcs "$first"); do
	cc_san -Dmalloc=oom_malloc -Dcalloc=oom_calloc -Drealloc=oom_realloc -Dstrdup=oom_strdup \
		-Dstrndup=oom_strndup -c "$top/$f" -o "$obj/$(basename "$f" .c).o" \
		2>>"$build/oom_request.build.log" || ok=0
done
[ $ok = 1 ] &&
	cc_san -DFIXTURES="\"$top/tests/fixtures\"" -c "$top/tests/fuzz/fuzz_request.c" \
		-o "$obj/harness.o" 2>>"$build/oom_request.build.log" &&
	cc_san -o "$build/oom_request" "$top/tests/fuzz/oom_request.c" "$obj"/*.o $libs \
		-Wl,--wrap=json_loadb,--wrap=json_object_set_new,--wrap=json_array_append_new \
		-Wl,--wrap=json_array_insert_new,--wrap=json_array_extend,--wrap=json_dumps \
		2>>"$build/oom_request.build.log" || ok=0
if [ $ok = 0 ]; then
	echo "not ok $n oom_request builds"
	sed 's/^/# /' "$build/oom_request.build.log" | head -20
	rc=1
elif ASAN_OPTIONS=detect_leaks=1 "$build/oom_request" "$top"/tests/fuzz/corpus-request/* \
	>"$build/oom_request.out" 2>"$build/oom_request.log"; then
	echo "ok $n oom_request: every allocation of every seed request failed in turn" \
		"($(grep -c '^ok' "$build/oom_request.out") seeds)"
else
	echo "not ok $n oom_request (log: $build/oom_request.log)"
	grep '^not ok' "$build/oom_request.out" | sed 's/^/# /'
	grep -E 'ERROR|SUMMARY|runtime error' "$build/oom_request.log" | head -10 | sed 's/^/# /'
	rc=1
fi
echo "1..$n"
exit $rc
