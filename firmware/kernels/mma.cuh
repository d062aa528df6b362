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

/* fw_glu for one row of x (glu.u set): u the row's up projection
 * outputs, wr its weight */
struct glu_row {
	const float *u;
	float lim, wr;
};

static __device__ __forceinline__ glu_row glu_at(const fw_glu &glu, size_t off, uint32_t row)
{
	glu_row r;

	r.u = (const float *)glu.u + off;
	r.lim = glu.lim;
	r.wr = glu.w ? ((const float *)glu.w)[row] : 1.0f;
	return r;
}

/*
 * x's 128-column block @b (zeros where !@on): this thread's quarter of it
 * (32 values from column 32 t4) into @v, with GLU @gr's SwiGLU first, and the
 * block's FP8 scale, the amax shared by the block's four adjacent threads
 * (the fused quant's rule).  Every thread of the warp calls.
 */
template <bool GLU>
static __device__ __forceinline__ float quant_x_quarter(const float *__restrict__ x,
							const glu_row &gr, uint32_t b, int on,
							uint32_t t4, float *v)
{
	float a = 0.f;

#pragma unroll
	for (int i = 0; i < 8; i++) {
		float4 f = on ? ((const float4 *)(x + (size_t)b * 128 + t4 * 32))[i] :
			   make_float4(0, 0, 0, 0);

		if (GLU && on) {
			float4 u = ((const float4 *)(gr.u + (size_t)b * 128 + t4 * 32))[i];

			f.x = swiglu_h(f.x, u.x, gr.lim, gr.wr);
			f.y = swiglu_h(f.y, u.y, gr.lim, gr.wr);
			f.z = swiglu_h(f.z, u.z, gr.lim, gr.wr);
			f.w = swiglu_h(f.w, u.w, gr.lim, gr.wr);
		}
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

/*
 * One 128-value block of a row (@v: thread t's value t; a block of 128
 * threads, all call) split into FW_XSPLIT_PARTS e4m3 parts (abi.h): part
 * j is the residual after parts 0..j-1, scaled by the power of two that
 * puts its largest |value| at most 448, rounded to nearest even.  Each
 * residual is exact in F32 (the rounding drops only bits the F32 value
 * holds), and the block's largest residual shrinks by 2^-4 or more a part
 * (until it falls under the scale's floor, 2^-100), so the parts add up to
 * the block within 2^-32 of its amax (for blocks above about 2^-68).  Writes codes [parts, 128] and scales
 * [parts].  One barrier a part: the amax as bits (|v| orders as its bits)
 * by one warp reduction, the four warps' through shared memory that
 * alternates between parts (a first form with block_max()'s two barriers
 * and shuffles cost dsv4_attn_combine 3 us).
 */
static __device__ void xsplit_block(float v, uint8_t *codes, float *scales)
{
	__shared__ uint32_t wmax[2][4];
	uint32_t lane = threadIdx.x % 32, wid = threadIdx.x / 32;
	/* a bigger block: its first 128 threads hold the values */
	bool mine = threadIdx.x < 128;

	for (int j = 0; j < FW_XSPLIT_PARTS; j++) {
		uint32_t m = __reduce_max_sync(0xffffffffu, __float_as_uint(fabsf(v)));

		if (!lane && mine)
			wmax[j & 1][wid] = m;
		__syncthreads();
		m = max(max(wmax[j & 1][0], wmax[j & 1][1]), max(wmax[j & 1][2], wmax[j & 1][3]));
		/* (a residual of 0 gets a tiny scale and zero codes) */
		float s = e8m0_ceil(__uint_as_float(m), 1.0f / 448.0f, 0x1p-100f);
		__nv_fp8_e4m3 c = fp8_code(v, s);

		if (mine)
			codes[j * 128 + threadIdx.x] = c.__x;
		if (!threadIdx.x)
			scales[j] = s;
		v = __fsub_rn(v, __fmul_rn((float)c, s));
	}
}

#endif
