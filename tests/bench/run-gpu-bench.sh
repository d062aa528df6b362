#!/usr/bin/env bash
# The CUDA backend's benchmark, on the GPU machine (see firmware/README.md),
# from the repository root after `make gpu-kit` (or with build/gpu-kit and
# build/firmware carried over):
#   tests/bench/run-gpu-bench.sh [LAYERS] [EXPERTS]
# 1. writes a Flash-shaped checkpoint (dsv4-mkmodel --preset flash, LAYERS
#    layers (5), EXPERTS routed experts per layer (32) so that HF fits);
# 2. gpu_bench: device bandwidth anchors, prefill, decode at 4K and 128K
#    against the HBM roofline, and decode with the routed experts streamed
#    from pinned host memory against the PCIe roofline; decode again with
#    the CSA main entries in mapped host memory (--kv-spill), and without
#    programmatic dependent launch (DSV4_GPU_PDL=0, the control);
# 3. HF transformers eager on the same checkpoint (BF16, and FP32 as our
#    activations are FP32) when torch is there, and the ratios.
set -uo pipefail
layers=${1:-5}
experts=${2:-32}
. tests/gpu/kit-env.sh
model=$tmp/flash$layers
echo "\$ dsv4-mkmodel --preset flash --layers $layers --experts $experts --seed 1"
"$kit/dsv4-mkmodel" --preset flash --layers "$layers" --experts "$experts" --seed 1 \
	"$model" >/dev/null || exit 1
echo "\$ gpu_bench --model MODEL --contexts 4096,131072 --steps 32 --prefill 1024 --stream-slots 6"
"$kit/gpu_bench" --model "$model" --contexts 4096,131072 --steps 32 --prefill 1024 \
	--stream-slots 6 | tee "$tmp/ours" || exit 1
echo "\$ gpu_bench --model MODEL --contexts 4096,131072 --steps 32 --prefill 256 --kv-spill"
"$kit/gpu_bench" --model "$model" --contexts 4096,131072 --steps 32 --prefill 256 --kv-spill |
	grep -E '^(model|\|)' || exit 1
echo "\$ DSV4_GPU_PDL=0 gpu_bench --model MODEL --contexts 4096,131072 --steps 32 --prefill 256"
DSV4_GPU_PDL=0 "$kit/gpu_bench" --model "$model" --contexts 4096,131072 --steps 32 \
	--prefill 256 | grep -E '^(model|\|)' || exit 1
python3 -c 'import torch, transformers' 2>/dev/null || { echo "no torch: HF anchor skipped"; exit 0; }
ours_dec=$(sed -n 's/^| 4096 | \([0-9.]*\) |.*/\1/p' "$tmp/ours")
ours_pre=$(sed -n 's/^prefill: [0-9]* tokens in [0-9.]* s: \([0-9.]*\) tokens\/s.*/\1/p' "$tmp/ours")
for dt in bfloat16 float32; do
	echo "\$ hf_bench.py --ckpt MODEL --dtype $dt --context 4096 --steps 16 --prefill 1024"
	python3 "$top/tools/reference/hf_bench.py" --ckpt "$model" --dtype $dt --context 4096 \
		--steps 16 --prefill 1024 2>&1 | grep -v Warning | tee "$tmp/hf" || continue
	hf_dec=$(sed -n 's/^hf decode: context [0-9]*: \([0-9.]*\) ms.*/\1/p' "$tmp/hf")
	hf_pre=$(sed -n 's/^hf prefill: .*: \([0-9.]*\) tokens\/s.*/\1/p' "$tmp/hf")
	[ -n "$hf_dec" ] && [ -n "$ours_dec" ] && [ -n "$hf_pre" ] && [ -n "$ours_pre" ] &&
		awk -v a="$hf_dec" -v b="$ours_dec" -v c="$ours_pre" -v d="$hf_pre" -v t=$dt 'BEGIN {
			printf "vs HF eager %s: decode at 4096 %.1fx (%.3f vs %.3f ms/token), prefill %.1fx (%.0f vs %.0f tokens/s)\n",
			t, a / b, b, a, c / d, c, d }'
done
