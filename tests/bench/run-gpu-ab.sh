#!/usr/bin/env bash
# Same-run A/B of decode settings, on the GPU machine from the repository
# root after `make gpu-kit` (or with build/gpu-kit and build/firmware
# carried over):
#   tests/bench/run-gpu-ab.sh ROUNDS LABEL=SETTINGS ...
# e.g.
#   tests/bench/run-gpu-ab.sh 2 pdl= plain=DSV4_GPU_PDL=0 \
#       'pdl-noattn=DSV4_GPU_PDL_SKIP=dsv4_attn_scores,dsv4_attn_pv'
# SETTINGS: space-separated VAR=value pairs for that variant's environment
# (DSV4_FIRMWARE=path picks another fatbin).  Writes the Flash-shaped
# checkpoint of run-gpu-bench.sh once, then runs gpu_bench for every
# variant in turn, ROUNDS times (interleaved, so that the clocks' drift over
# the run does not favour one), and prints each variant's prefill line
# (256 tokens, one chunk) and decode lines:
# context | ms/token | ms/layer | tok/s (43 layers) | weight MB | KV MB |
# roofline ms | ratio.  Timings only compare within one run (one machine).
set -uo pipefail
[ $# -ge 2 ] || { sed -n '2,15p' "$0"; exit 2; }
rounds=$1
shift
case $rounds in '' | *[!0-9]*) echo "ROUNDS must be a number" >&2; exit 2 ;; esac
for v in "$@"; do
	case $v in *=*) ;; *) echo "not LABEL=SETTINGS: $v" >&2; exit 2 ;; esac
done
. tests/gpu/kit-env.sh
model=$tmp/flash5
"$kit/dsv4-mkmodel" --preset flash --layers 5 --experts 32 --seed 1 "$model" >/dev/null || exit 1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
fail=0
for ((r = 1; r <= rounds; r++)); do
	for v in "$@"; do
		label=${v%%=*}
		read -r -a settings <<<"${v#*=}"
		echo "== $label (round $r): ${settings[*]:-defaults}"
		if ! env "${settings[@]}" "$kit/gpu_bench" --model "$model" --contexts 4096,131072 \
			--steps 32 --prefill 256 >"$tmp/out" 2>&1; then
			cat "$tmp/out"
			fail=1
			continue
		fi
		grep -E '^(\| [0-9]|prefill:)' "$tmp/out"
	done
done
exit $fail
