// SPDX-License-Identifier: MIT
/*
 * The routed experts' one-row GEMV for FP4 weights with the official FP8
 * activation quant (reference numerics), on the tensor cores.  Decoding
 * FP4 to floats and multiplying on the CUDA cores costs about five
 * instructions a weight, which made dsv4_linear_experts issue-bound at
 * half the HBM bandwidth.  Here a weight costs a fraction of one:
 *
 * - an e2m1 code's three magnitude bits, shifted left by two, are the
 *   e4m3 code of the same value times 2^-6 (the subnormal 0.5 included),
 *   and its sign moves to bit 7, so eight FP4 weights become eight FP8
 *   ones with a handful of bit operations;
 * - x is put on the FP8 grid per 128 (as dsv4_linear's fused quant does;
 *   already on it, it stays as it is) and kept as e4m3 codes in shared
 *   memory;
 * - one mma.m16n8k32 multiplies 16 rows by one FP4 scale block (32
 *   columns); its F32 sums (exact products) are scaled per block on the
 *   CUDA cores, then by x's scale per 128.  Only the summation order
 *   differs from the CUDA-core form.
 *
 * sm_90 has no FP8 mma.sync: ptxas converts both operands to halves (F2FP)
 * and issues two f16 mmas.  FP4 straight to halves was measured no faster
 * (firmware/README.md): the kernel waits on each warp's chain, not a pipe.
 *
 * x goes into every column of the 16x8 B operand, so every column of the
 * result holds the same sums and the k order inside an mma need only
 * agree between A and B: lane (g, q) gives A rows g and g + 8 and B the
 * same eight columns of the block, even-numbered ones in the low register
 * and odd ones in the high.
 *
 * grid (ceil(rows / 64), slots, 2 or 1), 128 threads: warp w takes rows
 * [64 blockIdx.x + 16 w, +16) of the slot's expert; otherwise as
 * dsv4_linear_experts.  cols % 128 == 0 and <= FW_MMA_MAX_COLS, FP4
 * weights (the host checks).  With rt.logits (decode's w1 and w3) each
 * block first routes its slot's row as dsv4_router does (router_warp),
 * and one block a row leaves idx and wts for the kernels after.
 * dsv4_experts_mma_glu: w2 with the SwiGLU folded in (abi.h's fw_glu):
 * x is g, per slot, and slot s's x the SwiGLU of g and glu.u weighted by
 * glu.w[s] ($DSV4_GPU_FUSE_GLU).
 */
#include "common.cuh"
#include "mma.cuh"
#include "route.cuh"

/* eight e2m1 codes (element i in bits 4i..4i+3) as e4m3 codes times
 * 2^-6: the even elements into @ev's bytes, the odd ones into @od's */
static __device__ __forceinline__ void fp4x8_to_e4m3(uint32_t u, uint32_t &ev, uint32_t &od)
{
	ev = ((u & 0x07070707u) << 2) | ((u & 0x08080808u) << 4);
	od = ((u >> 2) & 0x1c1c1c1cu) | (u & 0x80808080u);
}

/* x[0..cols) (with @gr's SwiGLU first) on the FP8 grid per 128 into e4m3
 * codes, each 8 columns as [0 2 4 6 1 3 5 7] (the order fp4x8_to_e4m3
 * gives the weights), and the 128-blocks' scales; four threads a block,
 * every thread calls */
template <bool GLU>
static __device__ void quant_x(const float *__restrict__ x, const glu_row &gr, uint32_t cols,
			       uint8_t *xq, float *xs)
{
	uint32_t nb = cols / 128, t4 = threadIdx.x % 4;

	for (uint32_t b0 = 0; b0 < nb; b0 += blockDim.x / 4) {
		uint32_t b = b0 + threadIdx.x / 4;
		int on = b < nb;
		float v[32], s = quant_x_quarter<GLU>(x, gr, b, on, t4, v);

		if (!on)
			continue;
#pragma unroll
		for (int g = 0; g < 4; g++) {
			uint32_t w[2] = { 0, 0 };

#pragma unroll
			for (int j = 0; j < 8; j++) {
				__nv_fp8_e4m3 q = fp8_code(v[8 * g + j], s);

				w[j & 1] |= (uint32_t)q.__x << (8 * (j / 2));
			}
			*(uint2 *)(xq + (size_t)b * 128 + t4 * 32 + g * 8) = make_uint2(w[0], w[1]);
		}
		if (!t4)
			xs[b] = s;
	}
}

/* one step's weights of a lane: four 128-column chunks of rows g and
 * g + 8 (two 8-byte words of each per chunk) and their scale words */
struct mma_step {
	uint2 wg[4][2], wg8[4][2];
	uint32_t scg[4], scg8[4];
};

/* step c0's loads (chunks past nch: zeros, not read) */
static __device__ __forceinline__ void mma_load(mma_step &t, uint32_t c0, uint32_t nch,
						const uint8_t *dg, const uint8_t *dg8,
						const uint8_t *sg, const uint8_t *sg8, int on_g,
						int on_g8, uint32_t q)
{
#pragma unroll
	for (int u = 0; u < 4; u++) {
		uint32_t c = c0 + u;
		int on = c < nch;

#pragma unroll
		for (int hh = 0; hh < 2; hh++) {
			size_t off = (size_t)c * 64 + hh * 32 + q * 8;

			t.wg[u][hh] = on && on_g ? ld_weight8(dg + off) : make_uint2(0, 0);
			t.wg8[u][hh] = on && on_g8 ? ld_weight8(dg8 + off) : make_uint2(0, 0);
		}
		t.scg[u] = on && on_g ? *(const uint32_t *)(sg + (size_t)c * 4) : 0;
		t.scg8[u] = on && on_g8 ? *(const uint32_t *)(sg8 + (size_t)c * 4) : 0;
	}
}

/* step c0's mmas into the rows' sums, chunk by chunk in column order */
static __device__ __forceinline__ void mma_step_run(const mma_step &t, uint32_t c0, uint32_t nch,
						    const uint8_t *xq, const float *xs,
						    uint32_t q, uint32_t koff, float &acc_g,
						    float &acc_g8)
{
#pragma unroll
	for (int u = 0; u < 4; u++) {
		uint32_t c = c0 + u;
		float tg = 0.f, tg8 = 0.f;

		if (c >= nch)
			break;
#pragma unroll
		for (int hh = 0; hh < 2; hh++) {
			/* lanes q < 2 hold block 2hh, lanes q >= 2 block 2hh + 1,
			 * 16 columns each: trade one word across the pair so
			 * each lane has 8 of both */
			uint32_t send = q < 2 ? t.wg[u][hh].y : t.wg[u][hh].x;
			uint32_t send8 = q < 2 ? t.wg8[u][hh].y : t.wg8[u][hh].x;
			uint32_t got = __shfl_xor_sync(0xffffffffu, send, 2);
			uint32_t got8 = __shfl_xor_sync(0xffffffffu, send8, 2);
			uint32_t wa = q < 2 ? t.wg[u][hh].x : got, wb = q < 2 ? got : t.wg[u][hh].y;
			uint32_t wa8 = q < 2 ? t.wg8[u][hh].x : got8;
			uint32_t wb8 = q < 2 ? got8 : t.wg8[u][hh].y;

#pragma unroll
			for (int k = 0; k < 2; k++) {
				uint32_t blk = 2 * hh + k, a[4], bx[2];
				float d[4];
				uint2 xv = *(const uint2 *)(xq + (size_t)c * 128 + blk * 32 + koff);

				fp4x8_to_e4m3(k ? wb : wa, a[0], a[2]);
				fp4x8_to_e4m3(k ? wb8 : wa8, a[1], a[3]);
				bx[0] = xv.x;
				bx[1] = xv.y;
				mma_e4m3(d, a, bx);
				tg += d[0] * e8m0((uint8_t)(t.scg[u] >> (8 * blk)));
				tg8 += d[2] * e8m0((uint8_t)(t.scg8[u] >> (8 * blk)));
			}
		}
		acc_g += tg * xs[c];
		acc_g8 += tg8 * xs[c];
	}
}

template <bool GLU>
static __device__ __forceinline__ void
experts_mma(const fw_mat *__restrict__ tab_a, const fw_mat *__restrict__ tab_b,
	    const int32_t *__restrict__ idx, uint32_t K, const float *__restrict__ x, uint32_t ldx,
	    uint32_t per_slot, float *__restrict__ y_a, float *__restrict__ y_b, uint32_t ldy,
	    const fw_route &rt, const fw_glu &glu)
{
	__shared__ __align__(16) uint8_t xq[FW_MMA_MAX_COLS];
	__shared__ float xs[FW_MMA_MAX_COLS / 128];
	__shared__ int32_t rsel[64];
	__shared__ float rwts[64];
	uint32_t s = blockIdx.y, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
	int32_t e;

	/* which expert (and so which weights) comes from the kernels before */
	fw_pdl_wait();
	if (rt.logits) {	/* the router's picks for the slot's row, here */
		uint32_t r = s / K;
		const int32_t *hash = rt.tid2eid ? (const int32_t *)rt.tid2eid +
							   (size_t)((const int32_t *)rt.tok)[r] * K :
						   NULL;

		if (threadIdx.x < 32)
			router_warp((const float *)rt.logits + (size_t)r * rt.E, NULL, rt.E, K,
				    (const float *)rt.bias, hash, rt.scale, rt.hf, rsel, rwts);
		__syncthreads();
		e = rsel[s % K];
		/* for the kernels after: one block of the row writes them */
		if (blockIdx.x == 0 && blockIdx.z == 0 && s % K == 0 && threadIdx.x < K) {
			((int32_t *)rt.idx)[(size_t)r * K + threadIdx.x] = rsel[threadIdx.x];
			((float *)rt.wts)[(size_t)r * K + threadIdx.x] = rwts[threadIdx.x];
		}
	} else {
		e = idx[s];
	}

	if (e < 0)
		return;
	const fw_mat w = (blockIdx.z ? tab_b : tab_a)[e];
	float *y = blockIdx.z ? y_b : y_a;
	uint32_t o0 = blockIdx.x * 64 + (threadIdx.x / 32) * 16, nch = w.cols / 128;
	uint32_t rg = o0 + g, rg8 = o0 + g + 8;
	int on_g = rg < w.rows, on_g8 = rg8 < w.rows;
	const uint8_t *dg = (const uint8_t *)w.data + (size_t)(w.row0 + rg) * (w.cols / 2);
	const uint8_t *dg8 = (const uint8_t *)w.data + (size_t)(w.row0 + rg8) * (w.cols / 2);
	const uint8_t *sg = (const uint8_t *)w.scale + (size_t)(w.row0 + rg) * (w.cols / 32);
	const uint8_t *sg8 = (const uint8_t *)w.scale + (size_t)(w.row0 + rg8) * (w.cols / 32);
	/* lane q's columns in a block of 32: its word after the exchange */
	uint32_t koff = q < 2 ? q * 16 : (q - 2) * 16 + 8;
	float acc_g = 0.f, acc_g8 = 0.f;
	mma_step A, B;

	/* the first step's weights are on their way while x is quantized;
	 * then each step's loads go out before the step before is used */
	size_t xoff = (size_t)(per_slot ? s : s / K) * ldx;

	mma_load(A, 0, nch, dg, dg8, sg, sg8, on_g, on_g8, q);
	quant_x<GLU>(x + xoff, GLU ? glu_at(glu, xoff, s) : glu_row{}, w.cols, xq, xs);
	__syncthreads();
	for (uint32_t c0 = 0; c0 < nch; c0 += 8) {
		mma_load(B, c0 + 4, nch, dg, dg8, sg, sg8, on_g, on_g8, q);
		mma_step_run(A, c0, nch, xq, xs, q, koff, acc_g, acc_g8);
		mma_load(A, c0 + 8, nch, dg, dg8, sg, sg8, on_g, on_g8, q);
		mma_step_run(B, c0 + 4, nch, xq, xs, q, koff, acc_g, acc_g8);
	}
	fw_pdl_launch();
	/* 2^6 back (see fp4x8_to_e4m3); every lane of a group holds the sums */
	if (q == 0) {
		if (on_g)
			y[(size_t)s * ldy + rg] = acc_g * 64.f;
		if (on_g8)
			y[(size_t)s * ldy + rg8] = acc_g8 * 64.f;
	}
}

FW_KERNEL void __launch_bounds__(128)
dsv4_experts_mma(const fw_mat *__restrict__ tab_a, const fw_mat *__restrict__ tab_b,
		 const int32_t *__restrict__ idx, uint32_t K, const float *__restrict__ x,
		 uint32_t ldx, uint32_t per_slot, float *__restrict__ y_a,
		 float *__restrict__ y_b, uint32_t ldy, fw_route rt)
{
	experts_mma<false>(tab_a, tab_b, idx, K, x, ldx, per_slot, y_a, y_b, ldy, rt, fw_glu{});
}

/* w2 with the SwiGLU folded in (x is g, per slot; glu.u given): a kernel
 * of its own, so that the SwiGLU's registers stay out of the plain one */
FW_KERNEL void __launch_bounds__(128)
dsv4_experts_mma_glu(const fw_mat *__restrict__ tab_a, const fw_mat *__restrict__ tab_b,
		     const int32_t *__restrict__ idx, uint32_t K, const float *__restrict__ x,
		     uint32_t ldx, uint32_t per_slot, float *__restrict__ y_a,
		     float *__restrict__ y_b, uint32_t ldy, fw_route rt, fw_glu glu)
{
	experts_mma<true>(tab_a, tab_b, idx, K, x, ldx, per_slot, y_a, y_b, ldy, rt, glu);
}
