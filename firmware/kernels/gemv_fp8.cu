// SPDX-License-Identifier: MIT
/*
 * Decode-time GEMV on DeepSeek V4's FP8 weights, as stored: e4m3 codes
 * [rows, cols] row-major with one ue8m0 scale per 128x128 block
 * ([ceil(rows/128), ceil(cols/128)] bytes, value 2^(s-127)).
 * y[r] = sum_c e4m3(w[r, c]) * scale(r/128, c/128) * x[c], in FP32.
 *
 * One warp per output row; each lane reads 16 weight bytes at a time
 * (coalesced across the warp), so a row is read once, in order.
 */
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
dsv4_gemv_fp8(const uint8_t *__restrict__ w, const uint8_t *__restrict__ scale,
	      const float *__restrict__ x, float *__restrict__ y, uint32_t rows, uint32_t cols)
{
	uint32_t warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
	uint32_t scale_cols = (cols + 127) / 128;
	const uint8_t *row = w + (size_t)warp * cols;
	float acc = 0.f;

	if (warp >= rows)
		return;
	const uint8_t *srow = scale + (size_t)(warp / 128) * scale_cols;
	/* 16-byte pieces: aligned when cols % 16 == 0 (every V4 dimension) */
	if (cols % 16 == 0) {
		for (uint32_t c = lane * 16; c < cols; c += 32 * 16) {
			uint4 q = *(const uint4 *)(row + c);
			const uint8_t *b = (const uint8_t *)&q;
			float s = e8m0(srow[c / 128]), part = 0.f;

#pragma unroll
			for (int k = 0; k < 16; k++)
				part += e4m3(b[k]) * x[c + k];
			acc += part * s;
		}
	} else {
		for (uint32_t c = lane; c < cols; c += 32)
			acc += e4m3(row[c]) * e8m0(srow[c / 128]) * x[c];
	}
#pragma unroll
	for (int off = 16; off; off /= 2)
		acc += __shfl_xor_sync(0xffffffffu, acc, off);
	if (!lane)
		y[warp] = acc;
}
