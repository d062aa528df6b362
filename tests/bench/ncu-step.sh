#!/usr/bin/env bash
# Where one decode step's time goes, kernel by kernel: ncu over gpu_bench
# with CUDA graphs off, then ncu_step.py prints the last decode step's
# launches in order and each kernel's total.  On the GPU machine, from the
# repository root after `make gpu-kit` (or with build/gpu-kit and
# build/firmware carried over):
#   tests/bench/ncu-step.sh [CONTEXT [LAYERS [EXPERTS]]]
# Defaults: 4096, and the benchmark's Flash-shaped checkpoint (5 layers, 32
# experts).  Each launch's DRAM bytes read come with its time, so the table
# gives each kernel's bandwidth.  ncu runs each kernel alone with the SM clock locked at base, so
# the times run long against the graph replay's: they rank the kernels, they
# do not add up to the step (DSV4_GPU_PROFILE=graph measures that).
set -euo pipefail
top=$(pwd)
kit=$top/build/gpu-kit
ctx=${1:-4096}
layers=${2:-5}
experts=${3:-32}
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LD_LIBRARY_PATH=$kit/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

[ -x "$ncu" ] || { echo "ncu-step: no ncu here" >&2; exit 1; }
"$kit/dsv4-mkmodel" --preset flash --layers "$layers" --experts "$experts" --seed 1 \
	"$tmp/model" >/dev/null
echo "\$ ncu --metrics gpu__time_duration.sum,dram__bytes_read.sum gpu_bench --contexts $ctx --steps 2 --prefill 16" \
	"(flash preset, $layers layers, $experts experts, DSV4_GPU_GRAPHS=0)"
DSV4_GPU_GRAPHS=0 "$ncu" --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv \
	"$kit/gpu_bench" --model "$tmp/model" --contexts "$ctx" --steps 2 --prefill 16 \
	>"$tmp/ncu.csv" 2>"$tmp/ncu.err" || { tail -20 "$tmp/ncu.err" >&2; exit 1; }
python3 "$top/tests/bench/ncu_step.py" "$tmp/ncu.csv"
