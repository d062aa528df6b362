#!/usr/bin/env bash
# make bench-engine: the CPU engine on a Flash-shaped synthetic checkpoint
# (dsv4-mkmodel --preset flash --layers 2, about 9 GB, written once to
# build/bench/flash2; ~10 minutes on 2 cores).  Prints decode time per
# layer, weight bytes per token, achieved bytes/s against the copy
# bandwidth measured in the same run, and prefill tokens/s and GFLOP/s.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
model=${BENCH_MODEL:-$build/bench/flash2}
if [ ! -f "$model/config.json" ]; then
	echo "bench: writing $model (dsv4-mkmodel --preset flash --layers 2)"
	mkdir -p "$(dirname "$model")"
	rm -rf "$model.tmp"
	"$build/bin/dsv4-mkmodel" --preset flash --layers 2 --seed 1 "$model.tmp" >/dev/null
	mv "$model.tmp" "$model"
fi
"$build/bin/dsv4-engine-bench" --model "$model" --prefill "${BENCH_PREFILL:-128}" \
	--decode "${BENCH_DECODE:-8}" ${BENCH_THREADS:+--threads $BENCH_THREADS}
