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

/* four X values at row r, column c as hi + mid + lo; whether any needs
 * more than its hi part */
static __device__ __forceinline__ bool put_x4(gemm_smem &sm, uint32_t r, uint32_t c, float4 v)
{
	const float e[4] = { v.x, v.y, v.z, v.w };
	bool parts = false;

#pragma unroll
	for (int q = 0; q < 4; q++) {
		__nv_bfloat16 hi = __float2bfloat16_rn(e[q]);
		float rest = e[q] - __bfloat162float(hi);
		__nv_bfloat16 mid = __float2bfloat16_rn(rest);
		__nv_bfloat16 lo = __float2bfloat16_rn(rest - __bfloat162float(mid));

		parts |= rest != 0.f;
		sm.in.x[0][r][c + q] = hi;
		sm.in.x[1][r][c + q] = mid;
		sm.in.x[2][r][c + q] = lo;
	}
	return parts;
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
		put_x4(sm, r, c4 * 4, v);
	}
}

/* a warp's four 16 x 16 accumulators of its 32 x 32 quarter of the tile */
typedef nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> gemm_acc;

/* one step's products: X parts p0 .. 0 (small parts first) times W */
static __device__ __forceinline__ void
tile_products(gemm_smem &sm, gemm_acc (&acc)[2][2], int p0)
{
	using namespace nvcuda;
	uint32_t warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;

#pragma unroll
	for (int kk = 0; kk < GK; kk += 16) {
		wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b[2];
		wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;

		for (int j = 0; j < 2; j++)
			wmma::load_matrix_sync(b[j], &sm.in.w[wn * 32 + j * 16][kk], GLD);
		for (int p = p0; p >= 0; p--)	/* small parts first */
			for (int i = 0; i < 2; i++) {
				wmma::load_matrix_sync(a, &sm.in.x[p][wm * 32 + i * 16][kk], GLD);
				for (int j = 0; j < 2; j++)
					wmma::mma_sync(acc[i][j], a, b[j], acc[i][j]);
			}
	}
}

/* the accumulators through shared memory into y's rows of @t */
static __device__ __forceinline__ void
store_tile(gemm_smem &sm, gemm_acc (&acc)[2][2], const fw_mat &w, const gemm_rows &t,
	   uint32_t o0, float *y, uint32_t ldy)
{
	using namespace nvcuda;
	uint32_t warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;

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

/* one 64 x 64 tile: rows @t of X times W rows [o0, o0+64) into y */
static __device__ void gemm_tile(gemm_smem &sm, const fw_mat &w, const float *x, uint32_t ldx,
				 const gemm_rows &t, uint32_t o0, float *y, uint32_t ldy)
{
	gemm_acc acc[2][2];

	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			nvcuda::wmma::fill_fragment(acc[i][j], 0.f);
	for (uint32_t k0 = 0; k0 < w.cols; k0 += GK) {
		__syncthreads();
		load_x(sm, x, ldx, t, k0);
		load_w(sm, w, o0, k0);
		__syncthreads();
		tile_products(sm, acc, 2);
	}
	store_tile(sm, acc, w, t, o0, y, ldy);
}

/*
 * gemm_tile's pipelined form ($DSV4_GPU_GEMM_PIPE=1: dsv4_gemm_pipe,
 * dsv4_gemm_experts_pipe).  The next step's X and W are loaded into
 * registers while this step's products run (gemm_tile waits for each
 * step's loads with the tensor cores idle), and where a step's X tile
 * is exact in BF16 (every mid and lo part zero: X on the FP8 grid, as the
 * act quant leaves it in reference numerics) its two small parts' products
 * are skipped (each would add +0.0).  The same products in the same order
 * otherwise, so the same sums.
 */
struct gemm_regs {
	float4 x[8];	/* X: 8 float4 a thread, as load_x reads them */
	uint4 w[4];	/* W: FP8 2, FP4 1, BF16 4 of these a thread */
	float s[2];	/* their scales (0 where the row is past the matrix) */
};

static __device__ __forceinline__ void fetch_x(gemm_regs &g, const float *x, uint32_t ldx,
					       const gemm_rows &t, uint32_t k0)
{
#pragma unroll
	for (uint32_t j = 0; j < 8; j++) {
		uint32_t idx = threadIdx.x + 128 * j, r = idx / 16, c4 = idx % 16;

		g.x[j] = r < t.n ? *(const float4 *)(x + (size_t)in_row(t, r) * ldx + k0 + c4 * 4) :
				   make_float4(0, 0, 0, 0);
	}
}

static __device__ __forceinline__ void fetch_w(gemm_regs &g, const fw_mat &w, uint32_t o0,
					       uint32_t k0)
{
	uint32_t tid = threadIdx.x;

	if (w.fmt == FW_FP8) {
#pragma unroll
		for (uint32_t j = 0; j < 2; j++) {
			uint32_t idx = tid + 128 * j, r = idx / 4, part = idx % 4, o = o0 + r;
			size_t row = w.row0 + o;

			g.w[j] = make_uint4(0, 0, 0, 0);
			g.s[j] = 0.f;
			if (o < w.rows) {
				g.w[j] = *(const uint4 *)((const uint8_t *)w.data + row * w.cols + k0 +
							  part * 16);
				g.s[j] = e8m0(((const uint8_t *)w.scale)[(row / 128) *
					((w.cols + 127) / 128) + k0 / 128]);
			}
		}
	} else if (w.fmt == FW_FP4) {
		uint32_t r = tid / 2, part = tid % 2, o = o0 + r, c = k0 + part * 32;
		size_t row = w.row0 + o;

		g.w[0] = make_uint4(0, 0, 0, 0);
		g.s[0] = 0.f;
		if (o < w.rows) {
			g.w[0] = *(const uint4 *)((const uint8_t *)w.data + row * (w.cols / 2) + c / 2);
			g.s[0] = e8m0(((const uint8_t *)w.scale)[row * (w.cols / 32) + c / 32]);
		}
	} else {	/* BF16 */
#pragma unroll
		for (uint32_t j = 0; j < 4; j++) {
			uint32_t idx = tid + 128 * j, r = idx / 8, part = idx % 8, o = o0 + r;

			g.w[j] = o < w.rows ? *(const uint4 *)((const uint16_t *)w.data +
					(size_t)(w.row0 + o) * w.cols + k0 + part * 8) :
					      make_uint4(0, 0, 0, 0);
		}
	}
}

/* the fetched step into shared memory as load_x and load_w put it;
 * returns whether any of this thread's X values needs its mid or lo part */
static __device__ __forceinline__ bool put_regs(gemm_smem &sm, const gemm_regs &g, const fw_mat &w)
{
	uint32_t tid = threadIdx.x;
	bool parts = false;

#pragma unroll
	for (uint32_t j = 0; j < 8; j++) {
		uint32_t idx = tid + 128 * j, r = idx / 16, c4 = idx % 16;
		parts |= put_x4(sm, r, c4 * 4, g.x[j]);
	}
	if (w.fmt == FW_FP8) {
#pragma unroll
		for (uint32_t j = 0; j < 2; j++) {
			uint32_t idx = tid + 128 * j, r = idx / 4, part = idx % 4;
			__nv_bfloat16 *dst = &sm.in.w[r][part * 16];
			const uint32_t u[4] = { g.w[j].x, g.w[j].y, g.w[j].z, g.w[j].w };

#pragma unroll
			for (int k = 0; k < 16; k++)
				dst[k] = __float2bfloat16_rn(e4m3((uint8_t)(u[k / 4] >> (8 * (k % 4)))) *
							     g.s[j]);
		}
	} else if (w.fmt == FW_FP4) {
		uint32_t r = tid / 2, part = tid % 2;
		__nv_bfloat16 *dst = &sm.in.w[r][part * 32];
		const uint32_t u[4] = { g.w[0].x, g.w[0].y, g.w[0].z, g.w[0].w };

#pragma unroll
		for (int k = 0; k < 32; k++)
			dst[k] = __float2bfloat16_rn(fp4v(u[k / 8] >> (4 * (k % 8))) * 16384.f * g.s[0]);
	} else {
#pragma unroll
		for (uint32_t j = 0; j < 4; j++) {
			uint32_t idx = tid + 128 * j, r = idx / 8, part = idx % 8;

			*(uint4 *)&sm.in.w[r][part * 8] = g.w[j];
		}
	}
	return parts;
}

static __device__ void gemm_tile_pipe(gemm_smem &sm, const fw_mat &w, const float *x,
				      uint32_t ldx, const gemm_rows &t, uint32_t o0, float *y,
				      uint32_t ldy)
{
	gemm_acc acc[2][2];
	gemm_regs g;

	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			nvcuda::wmma::fill_fragment(acc[i][j], 0.f);
	fetch_x(g, x, ldx, t, 0);
	fetch_w(g, w, o0, 0);
	for (uint32_t k0 = 0; k0 < w.cols; k0 += GK) {
		__syncthreads();	/* (the last step's products are done with sm) */
		bool parts = put_regs(sm, g, w);
		int p0 = __syncthreads_or(parts) ? 2 : 0;

		if (k0 + GK < w.cols) {	/* in flight while the products run */
			fetch_x(g, x, ldx, t, k0 + GK);
			fetch_w(g, w, o0, k0 + GK);
		}
		tile_products(sm, acc, p0);
	}
	store_tile(sm, acc, w, t, o0, y, ldy);
}

/*
 * grid (ceil(rows/64), ceil(R/64), groups), 128 threads.  The caller
 * checks: FP8 (ue8m0 scales), FP4 or BF16 weights, cols % 64 == 0, x rows
 * 16-byte aligned.  Groups as dsv4_linear's.
 */
#define GEMM_KERNEL(name, TILE_FN)                                                               \
	FW_KERNEL void __launch_bounds__(128)                                                    \
	name(fw_mat w, const float *__restrict__ x, uint32_t ldx, uint32_t R,                    \
	     float *__restrict__ y, uint32_t ldy, uint32_t xgs, uint32_t ygs)                    \
	{                                                                                        \
		__shared__ gemm_smem sm;                                                         \
		uint32_t r0 = blockIdx.y * GT, g = blockIdx.z;                                   \
		gemm_rows t = { NULL, R - r0 < GT ? R - r0 : GT, r0, 1, 0 };                     \
                                                                                                 \
		w.row0 += g * w.rows;                                                            \
		TILE_FN(sm, w, x + (size_t)g * xgs, ldx, t, blockIdx.x * GT, y + (size_t)g * ygs, \
			ldy);                                                                    \
	}

/* and by gemm_tile_pipe ($DSV4_GPU_GEMM_PIPE=1) */
GEMM_KERNEL(dsv4_gemm, gemm_tile)
GEMM_KERNEL(dsv4_gemm_pipe, gemm_tile_pipe)

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
#define GEMM_EXPERTS_KERNEL(name, TILE_FN)                                                       \
	FW_KERNEL void __launch_bounds__(128)                                                    \
	name(const fw_mat *__restrict__ tab_a, const fw_mat *__restrict__ tab_b,                 \
	     const int32_t *__restrict__ order, const int32_t *__restrict__ tiles,               \
	     const uint32_t *__restrict__ ntiles, uint32_t K, const float *__restrict__ x,       \
	     uint32_t ldx, uint32_t per_slot, float *__restrict__ y_a, float *__restrict__ y_b,  \
	     uint32_t ldy)                                                                       \
	{                                                                                        \
		__shared__ gemm_smem sm;                                                         \
		uint32_t ti = blockIdx.y;                                                        \
                                                                                                 \
		if (ti >= *ntiles)                                                               \
			return;                                                                  \
		const int32_t *tile = tiles + 3 * ti;                                            \
		fw_mat w = (blockIdx.z ? tab_b : tab_a)[tile[0]];                                \
                                                                                                 \
		if (blockIdx.x * GT >= w.rows)                                                   \
			return;                                                                  \
		gemm_rows t = { order + tile[1], (uint32_t)tile[2], 0, K, per_slot };            \
                                                                                                 \
		TILE_FN(sm, w, x, ldx, t, blockIdx.x * GT, blockIdx.z ? y_b : y_a, ldy);         \
	}

/* and by gemm_tile_pipe ($DSV4_GPU_GEMM_PIPE=1) */
GEMM_EXPERTS_KERNEL(dsv4_gemm_experts, gemm_tile)
GEMM_EXPERTS_KERNEL(dsv4_gemm_experts_pipe, gemm_tile_pipe)
