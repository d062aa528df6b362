#!/usr/bin/env bash
# make bench-stream: the expert streamer against fio (io_uring, same file,
# block size, queue depth, O_DIRECT), cold and warm, then decode with the
# routed experts resident and streamed with 100/30/10 % caches.  Uses the
# checkpoint of run-engine-bench.sh (written there on first use).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
model=${BENCH_MODEL:-$build/bench/flash2}
if [ ! -f "$model/config.json" ]; then
	mkdir -p "$(dirname "$model")"
	rm -rf "$model.tmp"
	"$build/bin/dsv4-mkmodel" --preset flash --layers 2 --seed 1 "$model.tmp" >/dev/null
	mv "$model.tmp" "$model"
fi
command -v fio >/dev/null || { echo "bench: fio missing (make deps)" >&2; exit 1; }
"$build/bin/dsv4-stream-bench" --model "$model" --experts "${BENCH_EXPERTS:-64}" \
	--batch "${BENCH_BATCH:-8}" --decode "${BENCH_DECODE:-8}"
