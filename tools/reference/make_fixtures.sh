#!/usr/bin/env bash
# Regenerates tests/fixtures/official-*.safetensors on a machine with
# PyTorch and a GPU (the lent H100 here):
#   tools/reference/make_fixtures.sh OFFICIAL_DIR OUTDIR [MKMODEL]
# OFFICIAL_DIR holds DeepSeek's inference/model.py fetched from the public
# mirror (spec §0: Mockingjay1316/deepseek-v4-flash-spark @ 0825add);
# MKMODEL is a dsv4-mkmodel binary (default build/bin/static/dsv4-mkmodel).
set -euo pipefail
official=$1
out=$2
mk=${3:-build/bin/static/dsv4-mkmodel}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
mkdir -p "$out"
for p in tiny-a tiny-b tiny-c; do
	"$mk" --preset "$p" --seed 1 "$work/$p"
	# exact numerics (the tight end-to-end check) on 400 tokens: they cross
	# 3 HCA windows (ratio 128) and the sliding
	# window many times; decode from position 160 on
	python3 "$here/run_official.py" --official "$official" --ckpt "$work/$p" \
		--out "$out/official-$p.safetensors" --tokens 400 --prefill 160 --no-layers --modes exact
	# per-layer hidden streams for teacher-forced checks (reference numerics): 32 tokens
	python3 "$here/run_official.py" --official "$official" --ckpt "$work/$p" \
		--out "$out/official-$p-layers.safetensors" --tokens 32 --prefill 8 --modes reference
done
rm -rf "$work"
