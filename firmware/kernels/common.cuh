// SPDX-License-Identifier: MIT
/*
 * Device helpers shared by the kernels: the stored number formats decoded,
 * and the official quantizers (FP8 e4m3 / FP4 e2m1 with power-of-two
 * ue8m0 scales) rounded exactly as libdsv4drv/src/quant.c rounds them, so
 * the GPU's reference numerics land on the CPU's grid.
 */
#ifndef DSV4_FW_COMMON_CUH
#define DSV4_FW_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <stdint.h>

#include "abi.h"

#define FW_KERNEL extern "C" __global__

/*
 * Programmatic dependent launch (decode graphs with $DSV4_GPU_PDL): a
 * kernel launched with the attribute may start while the kernel before it
 * on its stream still runs.  fw_pdl_wait(): until that kernel has ended
 * and its writes are visible (nothing it or any earlier kernel writes may
 * be read before, and nothing written); fw_pdl_launch(): let the next
 * kernel start now (its blocks then wait in their own fw_pdl_wait()).
 * Both do nothing in a launch without the attribute.
 */
static __device__ __forceinline__ void fw_pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void fw_pdl_launch(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/*
 * A load of weights, which a step reads once.  Built with
 * -DFW_WEIGHT_EVICT_FIRST (a variant fatbin, for measuring beside
 * $DSV4_GPU_L2PF_*) it asks L2 to evict these lines first and L1 not to
 * keep them, so that what later kernels still need (KV, activations,
 * prefetched weights) stays in L2; otherwise it is a plain load.
 */
#if defined(FW_WEIGHT_EVICT_FIRST) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
/* (an L2 cache policy; the eviction-priority form of ld wants 256-bit loads) */
static __device__ __forceinline__ uint64_t evict_first_policy(void)
{
	uint64_t pol;

	asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
	return pol;
}
#endif

static __device__ __forceinline__ uint4 ld_weight16(const void *p)
{
#if defined(FW_WEIGHT_EVICT_FIRST) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
	uint4 v;

	asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
	    : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p), "l"(evict_first_policy()));
	return v;
#else
	return *(const uint4 *)p;
#endif
}

static __device__ __forceinline__ uint2 ld_weight8(const void *p)
{
#if defined(FW_WEIGHT_EVICT_FIRST) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
	uint2 v;

	asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v2.u32 {%0, %1}, [%2], %3;"
	    : "=r"(v.x), "=r"(v.y) : "l"(p), "l"(evict_first_policy()));
	return v;
#else
	return *(const uint2 *)p;
#endif
}

/* a short kernel's start: wait for the one before, then let the next
 * one's blocks start and do what they can before their own wait */
static __device__ __forceinline__ void fw_pdl_enter(void)
{
	fw_pdl_wait();
	fw_pdl_launch();
}

/*
 * The @n blocks of a group (all resident at once: the host sees to it)
 * wait here for each other; what each wrote before is then visible to
 * the others' loads past L1.  @bar: the group's {arrived, generation},
 * zero at first and left with arrived zero, so that it serves every
 * wait of every launch after.
 */
static __device__ void group_wait(uint32_t *bar, uint32_t n)
{
	__syncthreads();
	if (!threadIdx.x) {
		volatile uint32_t *gen = bar + 1;
		uint32_t g = *gen;	/* (it moves on only once this block arrives) */

		__threadfence();
		if (atomicAdd(bar, 1u) == n - 1) {
			atomicExch(bar, 0u);
			__threadfence();
			atomicAdd(bar + 1, 1u);
		} else {
			while (*gen == g)
				;
		}
		__threadfence();
	}
	__syncthreads();
}

/*
 * sum over k = k0, k0 + step, ... < n of p[k * stride], added in that
 * order, read past L1 (__ldcg: other blocks' writes) eight loads at a
 * time: __ldcg is inline assembly, so a plain loop waited for each load
 * before the next (eight round trips to L2 for a 64-slice split-K)
 */
template <typename T>
static __device__ __forceinline__ T sum_cg(const T *p, uint32_t k0, uint32_t n, uint32_t step,
					   size_t stride)
{
	T sum = 0;

	for (uint32_t k = k0; k < n; k += 8 * step) {
		T v[8];

#pragma unroll
		for (int u = 0; u < 8; u++)
			v[u] = k + u * step < n ? __ldcg(p + (size_t)(k + u * step) * stride) : T(0);
#pragma unroll
		for (int u = 0; u < 8; u++)
			if (k + u * step < n)
				sum += v[u];
	}
	return sum;
}

static __device__ __forceinline__ float e8m0(uint8_t s)
{
	return __int_as_float((int)s << 23);	/* 2^(s-127) */
}

static __device__ __forceinline__ float e4m3(uint8_t v)
{
	__nv_fp8_e4m3 f;

	f.__x = v;
	return (float)f;
}

static __device__ __forceinline__ float bf16f(uint16_t v)
{
	return __uint_as_float((uint32_t)v << 16);
}

__device__ static const float fp4_lut[16] = {
	0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f,
	-0.f, -0.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f,
};

/*
 * an e2m1 code (low 4 bits of @n) times 2^-14: its three magnitude bits
 * placed as a half's exponent low bits and mantissa top bit make that
 * half exactly (the subnormal code 1 included), so decoding is a few bit
 * operations and one conversion; piece sums take the 2^14 back (exactly:
 * a power of two) before their scale.
 */
static __device__ __forceinline__ float fp4v(uint32_t n)
{
	return __half2float(__ushort_as_half((unsigned short)(((n & 7) << 9) | ((n & 8) << 12))));
}

/* power-of-two scale of a block: amax floored, over the format's max,
 * rounded up through the exponent bits (dsv4_e8m0_ceil) */
static __device__ __forceinline__ float e8m0_ceil(float amax, float inv_max, float floor_amax)
{
	float s = __fmul_rn(fmaxf(amax, floor_amax), inv_max);
	uint32_t u = __float_as_uint(s);
	int e = (int)((u >> 23) & 0xff);

	if (u & 0x7fffff)
		e++;
	if (e > 254)
		e = 254;
	return e8m0((uint8_t)e);
}

/* x / s as an e4m3 code, saturated and rounded to nearest even (s a
 * power of two, so x * (1/s) is x / s exactly, without a divide) */
static __device__ __forceinline__ __nv_fp8_e4m3 fp8_code(float x, float s)
{
	return __nv_fp8_e4m3(fminf(fmaxf(__fmul_rn(x, __frcp_rn(s)), -448.f), 448.f));
}

static __device__ __forceinline__ float fp8_round(float x, float s)
{
	return __fmul_rn((float)fp8_code(x, s), s);
}

/* silu(min(g, lim)) * clamp(u, -lim, lim) * wr (lim 0: no clamp): dsv4_swiglu's
 * h, and the GEMVs' that take it folded in (abi.h's fw_glu) */
static __device__ __forceinline__ float swiglu_h(float gv, float uv, float lim, float wr)
{
	if (lim > 0) {
		uv = fminf(fmaxf(uv, -lim), lim);
		gv = fminf(gv, lim);
	}
	return gv / (1.0f + expf(-gv)) * uv * wr;
}

static __device__ __forceinline__ float fp4_round(float x, float inv, float s)
{
	const float grid[8] = { 0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f };
	float v = fminf(fmaxf(__fmul_rn(x, inv), -6.f), 6.f), a = fabsf(v);
	int best = 0;

	for (int i = 1; i < 8; i++) {
		float d = fabsf(a - grid[i]), db = fabsf(a - grid[best]);

		if (d < db || (d == db && !(i & 1)))
			best = i;
	}
	return __fmul_rn(signbit(v) ? -grid[best] : grid[best], s);
}

/* sums across a warp, then across the block (blockDim.x a multiple of 32,
 * at most 1024); every thread gets the total */
template <typename T>
static __device__ __forceinline__ T warp_sum(T v)
{
#pragma unroll
	for (int o = 16; o; o /= 2)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
	for (int o = 16; o; o /= 2)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

template <typename T>
static __device__ T block_sum(T v)
{
	__shared__ T part[32];
	int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = blockDim.x / 32;

	v = warp_sum(v);
	__syncthreads();
	if (!lane)
		part[w] = v;
	__syncthreads();
	v = lane < nw ? part[lane] : (T)0;
	return warp_sum(v);
}

static __device__ float block_max(float v)
{
	__shared__ float part[32];
	int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = blockDim.x / 32;

	v = warp_max(v);
	__syncthreads();
	if (!lane)
		part[w] = v;
	__syncthreads();
	v = lane < nw ? part[lane] : -INFINITY;
	return warp_max(v);
}

/* hc_post_at's arithmetic for NX == hc streams, unrolled into registers */
template <int NX>
static __device__ __forceinline__ void hc_post_n(float *Xr, const float *P, const float *M,
						 uint32_t hc, uint32_t D, uint32_t d, float f)
{
	float xs[NX];

#pragma unroll
	for (uint32_t j = 0; j < NX; j++)
		if (j < hc)
			xs[j] = Xr[(size_t)j * D + d];
#pragma unroll
	for (uint32_t k = 0; k < NX; k++) {
		if (k >= hc)
			break;
		float acc = P[k] * f;

#pragma unroll
		for (uint32_t j = 0; j < NX; j++)
			if (j < hc)
				acc += M[j * hc + k] * xs[j];
		Xr[(size_t)k * D + d] = acc;
	}
}

/* the mHC post step at row r, column d, given the sublayer's f there
 * (see struct fw_hc_post; dsv4_hc_post and the kernels that fuse it) */
static __device__ __forceinline__ void hc_post_at(const fw_hc_post &hp, uint32_t r, uint32_t d,
						  float f)
{
	uint32_t hc = hp.hc, D = hp.D;
	float *Xr = (float *)hp.X + (size_t)r * hc * D;
	const float *P = (const float *)hp.post + (size_t)r * hc;
	const float *M = (const float *)hp.comb + (size_t)r * hc * hc;

	float xs[16];

	if (hc == 4) {	/* V4's, in registers */
		hc_post_n<4>(Xr, P, M, hc, D, d, f);
		return;
	}
	for (uint32_t j = 0; j < hc; j++)
		xs[j] = Xr[(size_t)j * D + d];
	for (uint32_t k = 0; k < hc; k++) {
		float acc = P[k] * f;

		for (uint32_t j = 0; j < hc; j++)
			acc += M[j * hc + k] * xs[j];
		Xr[(size_t)k * D + d] = acc;
	}
}

/* x <- x * rsqrt(mean(x^2) + eps) [* w], over n values, by one block;
 * the sum in double as the CPU takes it */
static __device__ void block_rmsnorm(float *x, const float *w, uint32_t n, float eps)
{
	double ss = 0;

	for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
		ss += (double)x[i] * x[i];
	ss = block_sum(ss);
	float r = 1.0f / sqrtf((float)(ss / n) + eps);

	for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
		x[i] = w ? w[i] * (x[i] * r) : x[i] * r;
	__syncthreads();
}

/* block_rmsnorm for n <= 4 blockDim.x, x's and w's loads out together;
 * the same arithmetic in the same order */
static __device__ __forceinline__ void block_rmsnorm4(float *x, const float *w, uint32_t n,
						      float eps)
{
	float xv[4], wv[4];
	double ss = 0;

#pragma unroll
	for (int u = 0; u < 4; u++) {
		uint32_t i = threadIdx.x + u * blockDim.x;

		xv[u] = i < n ? x[i] : 0.f;
		wv[u] = w && i < n ? w[i] : 0.f;
	}
#pragma unroll
	for (int u = 0; u < 4; u++)
		if (threadIdx.x + u * blockDim.x < n)
			ss += (double)xv[u] * xv[u];
	ss = block_sum(ss);
	float r = 1.0f / sqrtf((float)(ss / n) + eps);

#pragma unroll
	for (int u = 0; u < 4; u++) {
		uint32_t i = threadIdx.x + u * blockDim.x;

		if (i < n)
			x[i] = w ? wv[u] * (xv[u] * r) : xv[u] * r;
	}
	__syncthreads();
}

/* FP8 fake-quant of x[0..n) in blocks of @block (a power of two <= 128):
 * each warp takes whole blocks */
static __device__ void block_fakequant_fp8(float *x, uint32_t n, uint32_t block)
{
	int lane = threadIdx.x % 32, nw = blockDim.x / 32;

	for (uint32_t b = (threadIdx.x / 32) * block; b < n; b += nw * block) {
		float amax = 0;

		for (uint32_t i = lane; i < block; i += 32)
			amax = fmaxf(amax, fabsf(x[b + i]));
		amax = warp_max(amax);
		float s = e8m0_ceil(amax, 1.0f / 448.0f, 1e-4f);

		for (uint32_t i = lane; i < block; i += 32)
			x[b + i] = fp8_round(x[b + i], s);
	}
	__syncthreads();
}

/* FP4 fake-quant in blocks of 32: one warp per block */
static __device__ void block_fakequant_fp4(float *x, uint32_t n)
{
	int lane = threadIdx.x % 32, nw = blockDim.x / 32;

	for (uint32_t b = (threadIdx.x / 32) * 32; b < n; b += nw * 32) {
		float v = x[b + lane], amax = warp_max(fabsf(v));
		float s = e8m0_ceil(amax, 1.0f / 6.0f, 6.0f * 0x1p-126f);

		x[b + lane] = fp4_round(v, __fdiv_rn(1.0f, s), s);
	}
	__syncthreads();
}

/*
 * A block of 32 values on the FP4 grid (e2m1 times a power of two 2^E,
 * so multiples of 2^(E-1), at most 6 2^E) as int8 codes v / 2^e: with e
 * = floor(log2 amax) - 3 <= E - 1 (amax < 2^(E+3)) every code is a whole
 * number below 16, found without knowing E.  Returns e (0 for a block of
 * zeros).
 */
static __device__ __forceinline__ int grid_step_exp(float amax)
{
	int biased = __float_as_int(amax) >> 23;	/* amax >= 0 */

	if (!(amax > 0.f))
		return 0;
	/* ilogbf() for a normal amax from its exponent bits (the call's
	 * checks took much of the conversion); a subnormal or inf amax still
	 * through the call, as before */
	return (biased && biased < 255 ? biased - 127 : ilogbf(amax)) - 3;
}

/* v 2^e: one multiply by the power of two where 2^e is a normal float
 * (exact, as scalbnf is, unless the product falls below the normals) */
static __device__ __forceinline__ float times_pow2(float v, int e)
{
	return e >= -126 && e <= 127 ? v * __int_as_float((e + 127) << 23) : scalbnf(v, e);
}

/* v / 2^e, a whole number on the grid */
static __device__ __forceinline__ int8_t grid_code(float v, int e)
{
	return (int8_t)__float2int_rn(times_pow2(v, -e));
}

/*
 * x[0..n) (on the FP4 grid, n % 32 == 0) as the indexer's key codes at
 * @dst, the FW_ICODE_BYTES layout: n int8 codes grid_code(v, e), then a
 * 32-value block's step 2^e as an F32 each, e = grid_step_exp() of the
 * block's amax (the codes dsv4_index_scores_mma8 multiplies); a warp a
 * block, as block_fakequant_fp4() goes
 */
static __device__ void block_grid_codes(const float *x, uint32_t n, uint8_t *dst)
{
	int lane = threadIdx.x % 32, nw = blockDim.x / 32;

	for (uint32_t b = (threadIdx.x / 32) * 32; b < n; b += nw * 32) {
		float v = x[b + lane];
		int e = grid_step_exp(warp_max(fabsf(v)));

		dst[b + lane] = (uint8_t)grid_code(v, e);
		if (!lane)
			((float *)(dst + n))[b / 32] = times_pow2(1.f, e);
	}
}

/* the orthonormal Sylvester Hadamard transform of x[0..n), n a power of two */
static __device__ void block_hadamard(float *x, uint32_t n)
{
	for (uint32_t h = 1; h < n; h *= 2) {
		for (uint32_t t = threadIdx.x; t < n / 2; t += blockDim.x) {
			uint32_t j = (t / h) * 2 * h + t % h;
			float a = x[j], b = x[j + h];

			x[j] = a + b;
			x[j + h] = a - b;
		}
		__syncthreads();
	}
	float s = 1.0f / sqrtf((float)n);

	for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
		x[i] *= s;
	__syncthreads();
}

/* pair i of x (values 2i, 2i + 1) rotated by the angle pos freq (RoPE;
 * @inverse: by its negative), the angle rounded as the CPU's rope_cs
 * (FP32 product, then cos/sin) */
static __device__ __forceinline__ void rope_pair(float *x, uint32_t i, uint32_t pos, float freq,
						 int inverse)
{
	float ang = __fmul_rn((float)pos, freq);
	float c = cosf(ang), s = sinf(ang), a = x[2 * i], b = x[2 * i + 1];

	if (inverse)
		s = -s;
	x[2 * i] = a * c - b * s;
	x[2 * i + 1] = a * s + b * c;
}

/* interleaved-pair RoPE on x[0..rd) at @pos, by the block */
static __device__ void block_rope(float *x, const float *freqs, uint32_t rd, uint32_t pos,
				  int inverse)
{
	for (uint32_t i = threadIdx.x; i < rd / 2; i += blockDim.x)
		rope_pair(x, i, pos, freqs[i], inverse);
	__syncthreads();
}

#endif
