// SPDX-License-Identifier: MIT
/*
 * Prefill GEMM on the tensor cores: Y[r, o] = sum_c W[o, c] X[r, c] for
 * many input rows, in 64 x 64 output tiles of 4 warps (WMMA 16x16x16,
 * BF16 in, F32 accumulate).
 *
 * Numerics: the weights (FP8 e4m3 x ue8m0, FP4 e2m1 x ue8m0, BF16) are
 * exact in BF16 once their power-of-two scale is folded in, and X is split
 * into three BF16 parts (hi + mid + lo carry its 24 significant bits), so
 * every product is exact and only the summation order differs from the
 * F32 CUDA-core path.  F32 weights and FP8 with F32 scales stay on
 * dsv4_linear (the host decides).
 *
 * dsv4_gemm_experts is the MoE form: dsv4_expert_tiles sorts the
 * (token, slot) pairs by expert and cuts each expert's list into tiles of
 * up to 64 rows; each block takes one tile and one 64-wide output slice.
 */
#include <mma.h>

#include "common.cuh"

#define GT 64		/* tile rows and output columns */
#define GK 64		/* columns per step */
#define GLD (GK + 8)	/* BF16 row stride in shared memory */
#define OLD (GT + 4)	/* F32 row stride of the output staging */

struct gemm_smem {
	union {
		struct {
			__nv_bfloat16 x[3][GT][GLD];
			__nv_bfloat16 w[GT][GLD];
		} in;
		float out[GT][OLD];
	};
};

/* which rows a tile works on: @n rows, input row of i, output row of i */
struct gemm_rows {
	const int32_t *slot;	/* NULL: rows r0 + i */
	uint32_t n, r0, K, per_slot;
};

static __device__ __forceinline__ uint32_t in_row(const gemm_rows &t, uint32_t i)
{
	if (!t.slot)
		return t.r0 + i;
	return t.per_slot ? (uint32_t)t.slot[i] : (uint32_t)t.slot[i] / t.K;
}

static __device__ __forceinline__ uint32_t out_row(const gemm_rows &t, uint32_t i)
{
	return t.slot ? (uint32_t)t.slot[i] : t.r0 + i;
}

/* W rows [o0, o0+64) x columns [k0, k0+64) as BF16 with scales folded */
static __device__ void load_w(gemm_smem &sm, const fw_mat &w, uint32_t o0, uint32_t k0)
{
	uint32_t tid = threadIdx.x;

	if (w.fmt == FW_FP8) {
		for (uint32_t j = 0; j < 2; j++) {
			uint32_t idx = tid + 128 * j, r = idx / 4, part = idx % 4, o = o0 + r;
			__nv_bfloat16 *dst = &sm.in.w[r][part * 16];

			if (o >= w.rows) {
				for (int k = 0; k < 16; k++)
					dst[k] = __float2bfloat16_rn(0.f);
				continue;
			}
			size_t row = w.row0 + o;
			uint4 q = *(const uint4 *)((const uint8_t *)w.data + row * w.cols + k0 + part * 16);
			float s = e8m0(((const uint8_t *)w.scale)[(row / 128) * ((w.cols + 127) / 128) +
								  k0 / 128]);
			const uint32_t u[4] = { q.x, q.y, q.z, q.w };

#pragma unroll
			for (int k = 0; k < 16; k++)
				dst[k] = __float2bfloat16_rn(e4m3((uint8_t)(u[k / 4] >> (8 * (k % 4)))) * s);
		}
	} else if (w.fmt == FW_FP4) {
		uint32_t r = tid / 2, part = tid % 2, o = o0 + r;
		__nv_bfloat16 *dst = &sm.in.w[r][part * 32];

		if (o >= w.rows) {
			for (int k = 0; k < 32; k++)
				dst[k] = __float2bfloat16_rn(0.f);
			return;
		}
		size_t row = w.row0 + o;
		uint32_t c = k0 + part * 32;
		uint4 q = *(const uint4 *)((const uint8_t *)w.data + row * (w.cols / 2) + c / 2);
		float s = e8m0(((const uint8_t *)w.scale)[row * (w.cols / 32) + c / 32]);
		const uint32_t u[4] = { q.x, q.y, q.z, q.w };

#pragma unroll
		for (int k = 0; k < 32; k++)
			dst[k] = __float2bfloat16_rn(fp4v(u[k / 8] >> (4 * (k % 8))) * 16384.f * s);
	} else {	/* BF16 */
		for (uint32_t j = 0; j < 4; j++) {
			uint32_t idx = tid + 128 * j, r = idx / 8, part = idx % 8, o = o0 + r;
			uint4 q = make_uint4(0, 0, 0, 0);

			if (o < w.rows)
				q = *(const uint4 *)((const uint16_t *)w.data + (size_t)(w.row0 + o) * w.cols +
						     k0 + part * 8);
			*(uint4 *)&sm.in.w[r][part * 8] = q;
		}
	}
}

/* X rows of the tile x columns [k0, k0+64), split into hi + mid + lo */
static __device__ void load_x(gemm_smem &sm, const float *x, uint32_t ldx, const gemm_rows &t,
			      uint32_t k0)
{
	for (uint32_t j = 0; j < 8; j++) {
		uint32_t idx = threadIdx.x + 128 * j, r = idx / 16, c4 = idx % 16;
		float4 v = make_float4(0, 0, 0, 0);

		if (r < t.n)
			v = *(const float4 *)(x + (size_t)in_row(t, r) * ldx + k0 + c4 * 4);
		const float e[4] = { v.x, v.y, v.z, v.w };

#pragma unroll
		for (int q = 0; q < 4; q++) {
			__nv_bfloat16 hi = __float2bfloat16_rn(e[q]);
			float rest = e[q] - __bfloat162float(hi);
			__nv_bfloat16 mid = __float2bfloat16_rn(rest);
			__nv_bfloat16 lo = __float2bfloat16_rn(rest - __bfloat162float(mid));

			sm.in.x[0][r][c4 * 4 + q] = hi;
			sm.in.x[1][r][c4 * 4 + q] = mid;
			sm.in.x[2][r][c4 * 4 + q] = lo;
		}
	}
}

/* one 64 x 64 tile: rows @t of X times W rows [o0, o0+64) into y */
static __device__ void gemm_tile(gemm_smem &sm, const fw_mat &w, const float *x, uint32_t ldx,
				 const gemm_rows &t, uint32_t o0, float *y, uint32_t ldy)
{
	using namespace nvcuda;
	uint32_t warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;
	wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];

	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			wmma::fill_fragment(acc[i][j], 0.f);
	for (uint32_t k0 = 0; k0 < w.cols; k0 += GK) {
		__syncthreads();
		load_x(sm, x, ldx, t, k0);
		load_w(sm, w, o0, k0);
		__syncthreads();
#pragma unroll
		for (int kk = 0; kk < GK; kk += 16) {
			wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b[2];
			wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;

			for (int j = 0; j < 2; j++)
				wmma::load_matrix_sync(b[j], &sm.in.w[wn * 32 + j * 16][kk], GLD);
			for (int p = 2; p >= 0; p--)	/* small parts first */
				for (int i = 0; i < 2; i++) {
					wmma::load_matrix_sync(a, &sm.in.x[p][wm * 32 + i * 16][kk], GLD);
					for (int j = 0; j < 2; j++)
						wmma::mma_sync(acc[i][j], a, b[j], acc[i][j]);
				}
		}
	}
	__syncthreads();
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			wmma::store_matrix_sync(&sm.out[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j],
						OLD, wmma::mem_row_major);
	__syncthreads();
	for (uint32_t j = 0; j < GT * GT / 128; j++) {
		uint32_t idx = threadIdx.x + 128 * j, r = idx / GT, c = idx % GT;

		if (r < t.n && o0 + c < w.rows)
			y[(size_t)out_row(t, r) * ldy + o0 + c] = sm.out[r][c];
	}
}

/*
 * grid (ceil(rows/64), ceil(R/64), groups), 128 threads.  The caller
 * checks: FP8 (ue8m0 scales), FP4 or BF16 weights, cols % 64 == 0, x rows
 * 16-byte aligned.  Groups as dsv4_linear's.
 */
FW_KERNEL void __launch_bounds__(128)
dsv4_gemm(fw_mat w, const float *__restrict__ x, uint32_t ldx, uint32_t R,
	  float *__restrict__ y, uint32_t ldy, uint32_t xgs, uint32_t ygs)
{
	__shared__ gemm_smem sm;
	uint32_t r0 = blockIdx.y * GT, g = blockIdx.z;
	gemm_rows t = { NULL, R - r0 < GT ? R - r0 : GT, r0, 1, 0 };

	w.row0 += g * w.rows;
	gemm_tile(sm, w, x + (size_t)g * xgs, ldx, t, blockIdx.x * GT, y + (size_t)g * ygs, ldy);
}

/*
 * one block of 1024 threads: the slots s < RK with idx[s] >= 0 sorted by
 * expert into order[]; tiles[3 i ..] = (expert, first, count <= 64) for
 * i < *ntiles.  Room: RK/64 + E tiles.  E <= 1024.
 */
FW_KERNEL void __launch_bounds__(1024)
dsv4_expert_tiles(const int32_t *__restrict__ idx, uint32_t RK, uint32_t E,
		  int32_t *__restrict__ order, int32_t *__restrict__ tiles,
		  uint32_t *__restrict__ ntiles)
{
	__shared__ uint32_t count[1024], start[1024];

	for (uint32_t e = threadIdx.x; e < E; e += blockDim.x)
		count[e] = 0;
	__syncthreads();
	for (uint32_t s = threadIdx.x; s < RK; s += blockDim.x)
		if (idx[s] >= 0 && (uint32_t)idx[s] < E)
			atomicAdd(&count[idx[s]], 1u);
	__syncthreads();
	if (threadIdx.x == 0) {
		uint32_t at = 0, nt = 0;

		for (uint32_t e = 0; e < E; e++) {
			start[e] = at;
			for (uint32_t f = 0; f < count[e]; f += GT, nt++) {
				tiles[3 * nt] = (int32_t)e;
				tiles[3 * nt + 1] = (int32_t)(at + f);
				tiles[3 * nt + 2] = (int32_t)(count[e] - f < GT ? count[e] - f : GT);
			}
			at += count[e];
		}
		*ntiles = nt;
	}
	__syncthreads();
	/* the order within an expert varies from run to run; each row's result
	 * does not depend on the other rows of its tile */
	for (uint32_t s = threadIdx.x; s < RK; s += blockDim.x)
		if (idx[s] >= 0 && (uint32_t)idx[s] < E)
			order[atomicAdd(&start[idx[s]], 1u)] = (int32_t)s;
}

/*
 * grid (ceil(rows/64), tile room, 2 or 1), 128 threads: tile blockIdx.y of
 * dsv4_expert_tiles' list through expert e's matrix (z picks tab_a/y_a or
 * tab_b/y_b); slot s reads x row (per_slot ? s : s / K) and writes y row s.
 */
FW_KERNEL void __launch_bounds__(128)
dsv4_gemm_experts(const fw_mat *__restrict__ tab_a, const fw_mat *__restrict__ tab_b,
		  const int32_t *__restrict__ order, const int32_t *__restrict__ tiles,
		  const uint32_t *__restrict__ ntiles, uint32_t K, const float *__restrict__ x,
		  uint32_t ldx, uint32_t per_slot, float *__restrict__ y_a,
		  float *__restrict__ y_b, uint32_t ldy)
{
	__shared__ gemm_smem sm;
	uint32_t ti = blockIdx.y;

	if (ti >= *ntiles)
		return;
	const int32_t *tile = tiles + 3 * ti;
	fw_mat w = (blockIdx.z ? tab_b : tab_a)[tile[0]];

	if (blockIdx.x * GT >= w.rows)
		return;
	gemm_rows t = { order + tile[1], (uint32_t)tile[2], 0, K, per_slot };

	gemm_tile(sm, w, x, ldx, t, blockIdx.x * GT, blockIdx.z ? y_b : y_a, ldy);
}
