// SPDX-License-Identifier: MIT
/*
 * Decode's one-row GEMV for FP8 weights with the official FP8 activation
 * quant (reference numerics) on the tensor cores.  dsv4_linear1_fp8 spends
 * several instructions a weight on the CUDA cores (each e4m3 code turned
 * into a float, and every warp putting its x pieces on the FP8 grid
 * again), which held wq_b, wo_b and the shared expert near 1.6 TB/s in
 * the graph.  Here x is put on the FP8 grid once a block, as e4m3 codes
 * in shared memory, and the weights' codes go into mma.m16n8k32 as they
 * are loaded:
 *
 * - lane (g, q) loads 16 bytes of rows g and g + 8 at column 16q of each
 *   64-column half of a 128-column block: the first 8 are one mma's k
 *   slots (a[0], a[2]; x's same 8 columns in b), the last 8 another's.
 *   x is in every column of B (as in dsv4_experts_mma), so the k order
 *   inside an mma need only agree between A and B;
 * - the four mmas of a 128-column block (exact products, F32 sums) are
 *   added and scaled by the weights' block scale and x's scale, in F32.
 *   Only the summation order differs from dsv4_linear1_fp8.
 *
 * grid (ceil(rows / 64), ks, groups), 128 threads: warp w takes rows
 * [64 blockIdx.x + 16 w, +16) over column slice blockIdx.y (cols / ks,
 * whole 128-column blocks, at most FW_MMA_MAX_COLS); the slices' partial
 * sums meet in the row block's last block (part [ks, rows] per group,
 * count [gridDim.x] per group, zero and left zero).  Groups, xgs, ygs
 * and hp as dsv4_linear1_*'s; aq is implied (x is always quantized; an x
 * already on the grid stays as it is).  x 16-byte aligned (the host
 * checks).  dsv4_linear1_fp8_mma_glu: the same with the SwiGLU folded in
 * (the shared expert's sw2, $DSV4_GPU_FUSE_GLU): x is g and the GEMV's x
 * the SwiGLU of g and glu.u (abi.h's fw_glu; one row: weight glu.w[0]).
 */
#include "common.cuh"
#include "mma.cuh"

/* x[0..cols) (with @gr's SwiGLU first) on the FP8 grid per 128 (the scale
 * as load_x's fused quant picks it) into e4m3 codes in column order, and
 * the blocks' scales; four threads a block, every thread calls */
template <bool GLU>
static __device__ void quant_x_codes(const float *__restrict__ x, const glu_row &gr,
				     uint32_t cols, uint8_t *xq, float *xs)
{
	uint32_t nb = cols / 128, t4 = threadIdx.x % 4;

	for (uint32_t b0 = 0; b0 < nb; b0 += blockDim.x / 4) {
		uint32_t b = b0 + threadIdx.x / 4;
		int on = b < nb;
		float v[32], s = quant_x_quarter<GLU>(x, gr, b, on, t4, v);

		if (!on)
			continue;
#pragma unroll
		for (int g = 0; g < 2; g++) {
			uint32_t w[4] = { 0, 0, 0, 0 };

#pragma unroll
			for (int j = 0; j < 16; j++)
				w[j / 4] |= (uint32_t)fp8_code(v[16 * g + j], s).__x << (8 * (j % 4));
			*(uint4 *)(xq + (size_t)b * 128 + t4 * 32 + g * 16) =
				make_uint4(w[0], w[1], w[2], w[3]);
		}
		if (!t4)
			xs[b] = s;
	}
}

/* two 128-column blocks of a lane: 16 bytes of rows g and g + 8 in each
 * half, and the blocks' weight scales for the two rows */
struct f8_step {
	uint4 wg[2][2], wg8[2][2];
	float sg[2], sg8[2];
};

static __device__ __forceinline__ float f8_scale(const fw_mat &w, size_t si)
{
	return w.scale_f32 ? ((const float *)w.scale)[si] : e8m0(((const uint8_t *)w.scale)[si]);
}

/* a lane's two weight rows (g and g + 8 of its warp's 16 in the block's
 * 64) over the column slice from k0: where they start, their first
 * block's scale index, whether they exist; w's row0 at the group's */
struct f8_rows {
	const uint8_t *dg, *dg8;
	size_t sig, sig8;
	uint32_t rg, rg8;
	int on_g, on_g8;
};

static __device__ __forceinline__ f8_rows f8_rows_at(const fw_mat &w, uint32_t k0, uint32_t rb)
{
	uint32_t lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
	uint32_t o0 = rb * 64 + (threadIdx.x / 32) * 16, sc_cols = (w.cols + 127) / 128;
	f8_rows r;

	r.rg = o0 + g;
	r.rg8 = o0 + g + 8;
	r.on_g = r.rg < w.rows;
	r.on_g8 = r.rg8 < w.rows;
	r.dg = (const uint8_t *)w.data + (size_t)(w.row0 + r.rg) * w.cols + k0 + q * 16;
	r.dg8 = (const uint8_t *)w.data + (size_t)(w.row0 + r.rg8) * w.cols + k0 + q * 16;
	r.sig = (size_t)((w.row0 + r.rg) / 128) * sc_cols + k0 / 128;
	r.sig8 = (size_t)((w.row0 + r.rg8) / 128) * sc_cols + k0 / 128;
	return r;
}

/* blocks b0, b0 + 1 of the slice (past nb: zeros, not read) */
static __device__ __forceinline__ void f8_load(f8_step &t, uint32_t b0, uint32_t nb,
					       const f8_rows &r, const fw_mat &w)
{
	const uint8_t *dg = r.dg, *dg8 = r.dg8;
	int on_g = r.on_g, on_g8 = r.on_g8;
	size_t sig = r.sig, sig8 = r.sig8;

#pragma unroll
	for (int u = 0; u < 2; u++) {
		uint32_t b = b0 + u;
		int on = b < nb;

#pragma unroll
		for (int h = 0; h < 2; h++) {
			size_t off = (size_t)b * 128 + h * 64;

			t.wg[u][h] = on && on_g ? ld_weight16(dg + off) : make_uint4(0, 0, 0, 0);
			t.wg8[u][h] = on && on_g8 ? ld_weight16(dg8 + off) : make_uint4(0, 0, 0, 0);
		}
		t.sg[u] = on && on_g ? f8_scale(w, sig + b) : 0.f;
		t.sg8[u] = on && on_g8 ? f8_scale(w, sig8 + b) : 0.f;
	}
}

static __device__ __forceinline__ void f8_run(const f8_step &t, uint32_t b0, uint32_t nb,
					      const uint8_t *xq, const float *xs, uint32_t q,
					      float &acc_g, float &acc_g8)
{
#pragma unroll
	for (int u = 0; u < 2; u++) {
		uint32_t b = b0 + u;
		float tg = 0.f, tg8 = 0.f;

		if (b >= nb)
			break;
#pragma unroll
		for (int h = 0; h < 2; h++) {
			uint4 xv = *(const uint4 *)(xq + (size_t)b * 128 + h * 64 + q * 16);
			const uint4 &wv = t.wg[u][h], &wv8 = t.wg8[u][h];
			uint32_t a0[4] = { wv.x, wv8.x, wv.y, wv8.y }, b0x[2] = { xv.x, xv.y };
			uint32_t a1[4] = { wv.z, wv8.z, wv.w, wv8.w }, b1x[2] = { xv.z, xv.w };
			float d0[4], d1[4];

			mma_e4m3(d0, a0, b0x);
			mma_e4m3(d1, a1, b1x);
			tg += d0[0] + d1[0];
			tg8 += d0[2] + d1[2];
		}
		acc_g += tg * t.sg[u] * xs[b];
		acc_g8 += tg8 * t.sg8[u] * xs[b];
	}
}

/*
 * The rows' sums (every lane of a row group holds them) out: into y (and
 * hp's post step where hp.X), or with ks > 1 slices into part, the row
 * block's (rb's) last block adding them in slice order.  count: the
 * group's.
 */
static __device__ __forceinline__ void f8_finish(const f8_rows &r, float acc_g, float acc_g8,
						 uint32_t rows, uint32_t ks, float *__restrict__ y,
						 float *__restrict__ part,
						 uint32_t *__restrict__ count, const fw_hc_post &hp,
						 uint32_t rb)
{
	uint32_t q = threadIdx.x % 4;

	if (ks == 1) {
		if (q == 0 && r.on_g) {
			y[r.rg] = acc_g;
			if (hp.X)
				hc_post_at(hp, 0, r.rg, acc_g);
		}
		if (q == 0 && r.on_g8) {
			y[r.rg8] = acc_g8;
			if (hp.X)
				hc_post_at(hp, 0, r.rg8, acc_g8);
		}
		return;
	}
	if (q == 0 && r.on_g)
		part[(size_t)blockIdx.y * rows + r.rg] = acc_g;
	if (q == 0 && r.on_g8)
		part[(size_t)blockIdx.y * rows + r.rg8] = acc_g8;
	if (!splitk_last(count, rb, ks))
		return;
	/* the last block: each row's slices added in slice order */
	uint32_t o = rb * 64 + threadIdx.x;

	if (threadIdx.x < 64 && o < rows) {
		float sum = sum_cg(part + o, 0, ks, 1, rows);

		y[o] = sum;
		if (hp.X)
			hc_post_at(hp, 0, o, sum);
	}
	if (threadIdx.x == 0)
		count[rb] = 0;
}

/*
 * LOOP: gridDim.x blocks take the row blocks in turn (block b: b, b +
 * gridDim.x, ...), x quantized once; so a big GEMV can leave SMs to the
 * kernels beside it (decode's wq_b beside the indexer's chain,
 * $DSV4_GPU_WQB_LOOP).  Without, a block a row block.
 */
template <bool GLU, bool LOOP>
static __device__ __forceinline__ void
linear1_fp8_mma(fw_mat w, const float *__restrict__ x, float *__restrict__ y,
		float *__restrict__ part, uint32_t *__restrict__ count, uint32_t xgs,
		uint32_t ygs, const fw_hc_post &hp, const fw_glu &glu)
{
	__shared__ __align__(16) uint8_t xq[FW_MMA_MAX_COLS];
	__shared__ float xs[FW_MMA_MAX_COLS / 128];
	uint32_t grp = blockIdx.z, ks = gridDim.y, slice = w.cols / ks, k0 = blockIdx.y * slice;
	uint32_t q = threadIdx.x % 4, nb = slice / 128;
	uint32_t nrb = LOOP ? (w.rows + 63) / 64 : gridDim.x, rb = blockIdx.x;
	f8_step A, B;

	w.row0 += grp * w.rows;
	x += (size_t)grp * xgs;
	y += (size_t)grp * ygs;
	part += (size_t)grp * ks * w.rows;
	count += (size_t)grp * nrb;

	f8_rows r = f8_rows_at(w, k0, rb);

	/* the first weights are on their way while x is quantized (with
	 * $DSV4_GPU_PDL, while the kernel before ends: only weights are
	 * read before fw_pdl_wait()); then each step's loads go out before
	 * the step before is used */
	f8_load(A, 0, nb, r, w);
	fw_pdl_wait();
	quant_x_codes<GLU>(x + k0, GLU ? glu_at(glu, (size_t)grp * xgs + k0, 0) : glu_row{}, slice,
			   xq, xs);
	__syncthreads();
	for (;;) {
		float acc_g = 0.f, acc_g8 = 0.f;

		for (uint32_t b0 = 0; b0 < nb; b0 += 4) {
			f8_load(B, b0 + 2, nb, r, w);
			f8_run(A, b0, nb, xq, xs, q, acc_g, acc_g8);
			f8_load(A, b0 + 4, nb, r, w);
			f8_run(B, b0 + 2, nb, xq, xs, q, acc_g, acc_g8);
		}
		if (!LOOP || rb + gridDim.x >= nrb) {
			fw_pdl_launch();
			f8_finish(r, acc_g, acc_g8, w.rows, ks, y, part, count, hp, rb);
			return;
		}
		f8_finish(r, acc_g, acc_g8, w.rows, ks, y, part, count, hp, rb);
		rb += gridDim.x;
		r = f8_rows_at(w, k0, rb);
		f8_load(A, 0, nb, r, w);
	}
}

FW_KERNEL void __launch_bounds__(128)
dsv4_linear1_fp8_mma(fw_mat w, const float *__restrict__ x, float *__restrict__ y,
		     float *__restrict__ part, uint32_t *__restrict__ count, uint32_t aq,
		     uint32_t xgs, uint32_t ygs, fw_hc_post hp)
{
	(void)aq;
	linear1_fp8_mma<false, false>(w, x, y, part, count, xgs, ygs, hp, fw_glu{});
}

/* the shared expert's sw2 with the SwiGLU folded in: a kernel of its own,
 * so that the SwiGLU's registers stay out of the plain one */
FW_KERNEL void __launch_bounds__(128)
dsv4_linear1_fp8_mma_glu(fw_mat w, const float *__restrict__ x, float *__restrict__ y,
			 float *__restrict__ part, uint32_t *__restrict__ count, uint32_t aq,
			 uint32_t xgs, uint32_t ygs, fw_hc_post hp, fw_glu glu)
{
	(void)aq;
	linear1_fp8_mma<true, false>(w, x, y, part, count, xgs, ygs, hp, glu);
}

/* dsv4_linear1_fp8_mma with gridDim.x blocks taking the row blocks in turn
 * (the grid's x need not cover them) */
FW_KERNEL void __launch_bounds__(128)
dsv4_linear1_fp8_mma_loop(fw_mat w, const float *__restrict__ x, float *__restrict__ y,
			  float *__restrict__ part, uint32_t *__restrict__ count, uint32_t aq,
			  uint32_t xgs, uint32_t ygs, fw_hc_post hp)
{
	(void)aq;
	linear1_fp8_mma<false, true>(w, x, y, part, count, xgs, ygs, hp, fw_glu{});
}

/*
 * Decode's wo_a on the tensor cores.  wo_a takes no act quant (the
 * official code runs it in BF16 on an F32-exact x), so x cannot go into
 * the e4m3 mma as one code vector; instead it comes split into
 * FW_XSPLIT_PARTS e4m3 parts (xsplit_block(), abi.h: dsv4_attn_combine
 * writes them beside o), part j in column j of B.  The mma then forms
 * every part's products at once (the same mma count as one x), each
 * lane's two columns are scaled by their parts' scales per 128-column
 * block, and the four lanes of a row group add their parts at the end.
 * Exact products, F32 sums: only the sum order (and the parts' 2^-32
 * remainder) differs from dsv4_linear1_fp8 on the F32 x.
 *
 * lane (g, q) holds part g's 16 bytes at the columns its weights take, in
 * shared memory with the halves of odd parts swapped (a warp's eight
 * lanes of a load phase then read 128 distinct bytes).
 */
struct f8_parts {
	float g0, g1, g80, g81;	/* rows g, g + 8: parts 2q, 2q + 1 */
};

static __device__ __forceinline__ void f8_run_parts(const f8_step &t, uint32_t b0, uint32_t nb,
						    const uint8_t *xq, const float *xs,
						    uint32_t g, uint32_t q, float &acc_g,
						    float &acc_g8)
{
#pragma unroll
	for (int u = 0; u < 2; u++) {
		uint32_t b = b0 + u;
		f8_parts p = { 0.f, 0.f, 0.f, 0.f };

		if (b >= nb)
			break;
#pragma unroll
		for (uint32_t h = 0; h < 2; h++) {
			uint4 xv = *(const uint4 *)(xq + ((size_t)b * FW_XSPLIT_PARTS + g) * 128 +
						    (h ^ (g & 1)) * 64 + q * 16);
			const uint4 &wv = t.wg[u][h], &wv8 = t.wg8[u][h];
			uint32_t a0[4] = { wv.x, wv8.x, wv.y, wv8.y }, b0x[2] = { xv.x, xv.y };
			uint32_t a1[4] = { wv.z, wv8.z, wv.w, wv8.w }, b1x[2] = { xv.z, xv.w };
			float d0[4], d1[4];

			mma_e4m3(d0, a0, b0x);
			mma_e4m3(d1, a1, b1x);
			p.g0 += d0[0] + d1[0];
			p.g1 += d0[1] + d1[1];
			p.g80 += d0[2] + d1[2];
			p.g81 += d0[3] + d1[3];
		}
		float2 s = *(const float2 *)(xs + (size_t)b * FW_XSPLIT_PARTS + 2 * q);

		acc_g += (p.g0 * s.x + p.g1 * s.y) * t.sg[u];
		acc_g8 += (p.g80 * s.x + p.g81 * s.y) * t.sg8[u];
	}
}

/*
 * grid (ceil(rows / 64), ks, groups), 128 threads, as dsv4_linear1_fp8_mma
 * (the split-K scratch and the last block's sum alike), on x given as its
 * parts: codes xp and scales xps (abi.h's layout over the whole row);
 * group g's x starts at column g xgs (a multiple of 128), slices at most
 * FW_XSPLIT_MAX_COLS.
 */
FW_KERNEL void __launch_bounds__(128)
dsv4_linear1_fp8_mmx(fw_mat w, const uint8_t *__restrict__ xp, const float *__restrict__ xps,
		     float *__restrict__ y, float *__restrict__ part, uint32_t *__restrict__ count,
		     uint32_t xgs, uint32_t ygs)
{
	__shared__ __align__(16) uint8_t xq[FW_XSPLIT_MAX_COLS * FW_XSPLIT_PARTS];
	__shared__ __align__(8) float xs[FW_XSPLIT_MAX_COLS / 128 * FW_XSPLIT_PARTS];
	uint32_t grp = blockIdx.z, ks = gridDim.y, slice = w.cols / ks, k0 = blockIdx.y * slice;
	uint32_t g = threadIdx.x % 32 / 4, q = threadIdx.x % 4, nb = slice / 128;
	float acc_g = 0.f, acc_g8 = 0.f;
	f8_step A, B;
	fw_hc_post none = {};

	w.row0 += grp * w.rows;
	y += (size_t)grp * ygs;
	part += (size_t)grp * ks * w.rows;
	count += (size_t)grp * gridDim.x;

	const f8_rows r = f8_rows_at(w, k0, blockIdx.x);
	/* the slice's parts: 16-byte pieces, 64 a block */
	size_t xb = ((size_t)grp * xgs + k0) / 128;
	const uint4 *src = (const uint4 *)(xp + xb * FW_XSPLIT_PARTS * 128);

	f8_load(A, 0, nb, r, w);
	fw_pdl_wait();
	for (uint32_t c = threadIdx.x; c < nb * 64; c += blockDim.x) {
		uint32_t bb = c / 64, pg = c % 64 / 8, hh = c % 8 / 4, qq = c % 4;

		*(uint4 *)(xq + ((size_t)bb * FW_XSPLIT_PARTS + pg) * 128 + (hh ^ (pg & 1)) * 64 +
			   qq * 16) = src[c];
	}
	for (uint32_t c = threadIdx.x; c < nb * FW_XSPLIT_PARTS; c += blockDim.x)
		xs[c] = xps[xb * FW_XSPLIT_PARTS + c];
	__syncthreads();
	for (uint32_t b0 = 0; b0 < nb; b0 += 4) {
		f8_load(B, b0 + 2, nb, r, w);
		f8_run_parts(A, b0, nb, xq, xs, g, q, acc_g, acc_g8);
		f8_load(A, b0 + 4, nb, r, w);
		f8_run_parts(B, b0 + 2, nb, xq, xs, g, q, acc_g, acc_g8);
	}
	fw_pdl_launch();
	/* a row's parts are spread over the four lanes of its group */
	acc_g += __shfl_xor_sync(0xffffffffu, acc_g, 1);
	acc_g += __shfl_xor_sync(0xffffffffu, acc_g, 2);
	acc_g8 += __shfl_xor_sync(0xffffffffu, acc_g8, 1);
	acc_g8 += __shfl_xor_sync(0xffffffffu, acc_g8, 2);
	f8_finish(r, acc_g, acc_g8, w.rows, ks, y, part, count, none, blockIdx.x);
}

/* grid (cols / 128), 128 threads: x [cols] split into its e4m3 parts
 * (codes xp, scales xps: abi.h), as dsv4_attn_combine splits o; for the
 * tests of dsv4_linear1_fp8_mmx */
FW_KERNEL void __launch_bounds__(128)
dsv4_xsplit(const float *__restrict__ x, uint8_t *__restrict__ xp, float *__restrict__ xps)
{
	size_t blk = blockIdx.x;

	xsplit_block(x[blk * 128 + threadIdx.x], xp + blk * FW_XSPLIT_PARTS * 128,
		     xps + blk * FW_XSPLIT_PARTS);
}
