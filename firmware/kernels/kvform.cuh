/* SPDX-License-Identifier: MIT */
/*
 * The packed KV storage forms, as libdsv4drv/src/engine/kvfmt.c writes and
 * reads them.  Main entries in FlashMLA's MODEL1 layout (abi.h's
 * FW_MODEL1_BYTES): nope dims as e4m3 codes with one ue8m0 scale per 64
 * (the official FP8 rule: amax floored at 1e-4, over 448, rounded up to a
 * power of two), rope dims as BF16.  Indexer keys as V3.2's FP8: e4m3 codes
 * of k / s with s = amax / 448 (an F32, not a power of two).
 */
#ifndef DSV4_FW_KVFORM_CUH
#define DSV4_FW_KVFORM_CUH

#include "common.cuh"

/* x[0..n) rounded to BF16, nearest even (the rope dims an entry keeps) */
static __device__ void block_round_bf16(float *x, uint32_t n)
{
	for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
		x[i] = __bfloat162float(__float2bfloat16_rn(x[i]));
	__syncthreads();
}

/*
 * entry e (shared memory; its nope dims on their 64-blocks' FP8 grid and
 * its rope dims BF16 values, so nothing is lost) stored at out as MODEL1:
 * a warp a block of 64, two values a lane
 */
static __device__ void block_model1_store(const float *e, uint32_t hd, uint32_t rd, uint8_t *out)
{
	uint32_t nope = hd - rd, lane = threadIdx.x % 32, nw = blockDim.x / 32;
	uint8_t *sc = out + nope + 2 * rd;

	for (uint32_t b = threadIdx.x / 32; b < nope / 64; b += nw) {
		float v0 = e[b * 64 + 2 * lane], v1 = e[b * 64 + 2 * lane + 1];
		float amax = warp_max(fmaxf(fabsf(v0), fabsf(v1)));
		float s = e8m0_ceil(amax, 1.0f / 448.0f, 1e-4f);
		uint32_t c0 = fp8_code(v0, s).__x, c1 = fp8_code(v1, s).__x;

		*(uint16_t *)(out + b * 64 + 2 * lane) = (uint16_t)(c0 | c1 << 8);
		if (!lane)
			sc[b] = (uint8_t)(__float_as_uint(s) >> 23);
	}
	for (uint32_t i = threadIdx.x; i < rd; i += blockDim.x)
		*(uint16_t *)(out + nope + 2 * i) =
			__bfloat16_as_ushort(__float2bfloat16_rn(e[nope + i]));
	for (uint32_t i = nope + 2 * rd + nope / 64 + threadIdx.x; i < FW_MODEL1_BYTES(hd, rd);
	     i += blockDim.x)
		out[i] = 0;
}

/* one MODEL1 entry at src as F32 at dst (16-byte aligned), by one warp:
 * four nope dims a lane at a time, then two rope dims */
static __device__ __forceinline__ void warp_model1_load(const uint8_t *__restrict__ src,
							uint32_t hd, uint32_t rd,
							float *__restrict__ dst, uint32_t lane)
{
	uint32_t nope = hd - rd;
	const uint8_t *sc = src + nope + 2 * rd;

	for (uint32_t i = lane; i < nope / 4; i += 32) {
		uint32_t v = ((const uint32_t *)src)[i];
		float s = e8m0(sc[i / 16]);

		((float4 *)dst)[i] = make_float4(e4m3(v & 0xff) * s, e4m3((v >> 8) & 0xff) * s,
						 e4m3((v >> 16) & 0xff) * s, e4m3(v >> 24) * s);
	}
	for (uint32_t i = lane; i < rd / 2; i += 32) {
		uint32_t v = ((const uint32_t *)(src + nope))[i];

		((float2 *)(dst + nope))[i] = make_float2(bf16f(v & 0xffff), bf16f(v >> 16));
	}
}

/* x[0..n) rounded as an FP8 indexer key keeps it: s = amax / 448 (1 for
 * an all-zero key), each value e4m3(k / s) * s, the divisions and products
 * rounded as the CPU's (kv_index_encode / kv_index_decode) */
static __device__ void block_round_fp8_key(float *x, uint32_t n)
{
	float amax = 0.f;

	for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
		amax = fmaxf(amax, fabsf(x[i]));
	amax = block_max(amax);	/* (its barriers: every x read before any write) */
	float s = amax > 0.f ? __fdiv_rn(amax, 448.0f) : 1.0f;

	for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
		__nv_fp8_e4m3 c(fminf(fmaxf(__fdiv_rn(x[i], s), -448.0f), 448.0f));

		x[i] = __fmul_rn((float)c, s);
	}
	__syncthreads();
}

#endif
