#!/usr/bin/env bash
# Long contexts on the CPU engine: a small V4-architecture model
# (tests/bench/config-long.json: SWA, CSA with Flash's top-k 512, HCA 128;
# one indexer head so the O(T^2) indexer fits 2 cores) prefilled in chunks
# to each length in LENGTHS, then decoded.  Prints per length the prefill
# time, the decode time per step, the indexer's share of the time, and the
# KV per tier with the bytes per token against the format's formula.
#   tests/bench/run-long-context.sh [LENGTHS]     (default: 4096 65536 1048576)
# make bench runs the default; make check runs 65536 (cli-long suite).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
lengths=${1:-4096 65536 1048576}
model=$build/bench/long
if [ ! -f "$model/config.json" ]; then
	mkdir -p "$(dirname "$model")"
	rm -rf "$model.tmp"
	"$build/bin/dsv4-mkmodel" --config "$top/tests/bench/config-long.json" --seed 1 "$model.tmp" >/dev/null
	mv "$model.tmp" "$model"
fi
for n in $lengths; do
	chunk=1024
	[ "$n" -gt 262144 ] && chunk=256	# the indexer's score rows: chunk x entries floats
	start=$(date +%s%N)
	out=$("$build/bin/dsv4-run" --model "$model" --random-prompt "$n" --chunk $chunk \
		--n-predict 9 --numerics exact --stats 2>&1 >/dev/null)
	end=$(date +%s%N)
	echo "bench: context $n (wall $(( (end - start) / 1000000 )) ms)"
	grep -E 'decode:|KV after' <<< "$out" | sed 's/^dsv4-run: /bench:   /'
done

# prefix cache: time to first token for a repeated 32K-token prompt, cold
# (computed, snapshot saved) and resumed from the disk snapshot (a restart)
kv=$(mktemp -d)
for run in computed resumed; do
	out=$("$build/bin/dsv4-run" --model "$model" --random-prompt 32768 --seed 7 --n-predict 1 \
		--numerics exact --stats --kv-disk-dir "$kv" 2>&1 >/dev/null)
	ttft=$(grep -oE 'prefill 32768 tokens in [0-9.]+ s' <<< "$out" | grep -oE '[0-9.]+ s')
	reused=$(grep -oE '[0-9]+ of 32768 prompt tokens reused' <<< "$out")
	echo "bench: 32K prompt, $run: time to first token $ttft ($reused)"
	eval "ttft_$run=\${ttft% s}"
done
awk -v a="$ttft_computed" -v b="$ttft_resumed" \
	'BEGIN { printf "bench: prefix cache TTFT ratio (computed / resumed): %.1fx\n", a / b }'
rm -rf "$kv"
