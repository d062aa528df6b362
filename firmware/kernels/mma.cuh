// SPDX-License-Identifier: MIT
/*
 * What the one-row tensor-core GEMVs share (dsv4_experts_mma,
 * dsv4_linear1_fp8_mma): the e4m3 mma with x in every column of B, and
 * x's per-128 FP8 quant as the CUDA-core GEMVs' fused quant does it.
 */
#ifndef DSV4_FW_MMA_CUH
#define DSV4_FW_MMA_CUH

#include "common.cuh"

/* d = A (16x32 e4m3) . B (32x8 e4m3), F32 */
static __device__ __forceinline__ void mma_e4m3(float *d, const uint32_t *a, const uint32_t *b)
{
	asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
		     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};"
		     : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
		       "f"(0.f));
}

/*
 * x's 128-column block @b (zeros where !@on): this thread's quarter of it
 * (32 values from column 32 t4) into @v, and the block's FP8 scale, the
 * amax shared by the block's four adjacent threads (the fused quant's
 * rule).  Every thread of the warp calls.
 */
static __device__ __forceinline__ float quant_x_quarter(const float *__restrict__ x, uint32_t b,
							int on, uint32_t t4, float *v)
{
	float a = 0.f;

#pragma unroll
	for (int i = 0; i < 8; i++) {
		float4 f = on ? ((const float4 *)(x + (size_t)b * 128 + t4 * 32))[i] :
			   make_float4(0, 0, 0, 0);

		v[4 * i] = f.x;
		v[4 * i + 1] = f.y;
		v[4 * i + 2] = f.z;
		v[4 * i + 3] = f.w;
	}
#pragma unroll
	for (int i = 0; i < 32; i++)
		a = fmaxf(a, fabsf(v[i]));
	a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, 1));
	a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, 2));
	return e8m0_ceil(a, 1.0f / 448.0f, 1e-4f);
}

#endif
