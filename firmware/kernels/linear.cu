// SPDX-License-Identifier: MIT
/*
 * y[r, o] = sum_c W[o, c] x[r, c] on weights in their stored formats
 * (F32, BF16, FP8 e4m3 with 128x128 ue8m0 or F32 block scales, FP4 e2m1
 * with per-32 ue8m0 scales), decoded in registers.  One warp per output
 * row; each lane reads 16 weight bytes per step (coalesced across the
 * warp) and applies them to up to FW_LINEAR_ROWS input rows, so a weight
 * row is read once per launch: decode (few rows) is a pure weight stream.
 *
 * dsv4_linear_experts is the MoE form: one input row per (token, slot),
 * the expert's matrix picked on the device from the router's choice, so
 * decode needs no round trip to the host.
 */
#include "common.cuh"

/* the scale of piece @c of row @o (one per piece: FP8 blocks are 128 wide,
 * FP4 blocks 32, pieces 16 and 32) */
template <int FMT>
static __device__ __forceinline__ float piece_scale(const fw_mat &w, uint32_t o, uint32_t col)
{
	if (FMT == FW_FP4)
		return e8m0(((const uint8_t *)w.scale)[(size_t)(w.row0 + o) * (w.cols / 32) + col / 32]);
	if (FMT == FW_FP8) {
		size_t si = (size_t)((w.row0 + o) / 128) * ((w.cols + 127) / 128) + col / 128;

		return w.scale_f32 ? ((const float *)w.scale)[si] : e8m0(((const uint8_t *)w.scale)[si]);
	}
	return 1.f;
}

/* values per 16-byte piece */
template <int FMT> struct piece;
template <> struct piece<FW_F32> { enum { n = 4 }; };
template <> struct piece<FW_BF16> { enum { n = 8 }; };
template <> struct piece<FW_FP8> { enum { n = 16 }; };
template <> struct piece<FW_FP4> { enum { n = 32 }; };

/* the 16 raw bytes of piece @c (column c*n) of row @o */
template <int FMT>
static __device__ __forceinline__ uint4 raw_piece(const fw_mat &w, uint32_t o, uint32_t c)
{
	const int n = piece<FMT>::n;
	size_t r = w.row0 + o;

	if (FMT == FW_FP4)
		return *(const uint4 *)((const uint8_t *)w.data + r * (w.cols / 2) + c * n / 2);
	if (FMT == FW_FP8)
		return *(const uint4 *)((const uint8_t *)w.data + r * w.cols + c * n);
	if (FMT == FW_BF16)
		return *(const uint4 *)((const uint16_t *)w.data + r * w.cols + c * n);
	return *(const uint4 *)((const float *)w.data + r * w.cols + c * n);
}

/* the n values of a raw piece, before piece_scale() */
template <int FMT>
static __device__ __forceinline__ void decode_piece(uint4 q, float *v)
{
	const uint32_t u[4] = { q.x, q.y, q.z, q.w };

	if (FMT == FW_FP4) {
		/* fp4v() two at a time: a byte pair spread into 16-bit lanes, then
		 * each lane's low and high nibble made a half (bits placed as
		 * fp4v places them), a half2 converted at once */
#pragma unroll
		for (int i = 0; i < 4; i++) {
#pragma unroll
			for (int b = 0; b < 2; b++) {
				uint32_t t = __byte_perm(u[i], 0, b ? 0x4342 : 0x4140);
				uint32_t lo = ((t & 0x00070007u) << 9) | ((t & 0x00080008u) << 12);
				uint32_t hi = ((t & 0x00700070u) << 5) | ((t & 0x00800080u) << 8);
				float2 fl = __half22float2(*(const __half2 *)&lo);
				float2 fh = __half22float2(*(const __half2 *)&hi);

				v[8 * i + 4 * b] = fl.x;
				v[8 * i + 4 * b + 1] = fh.x;
				v[8 * i + 4 * b + 2] = fl.y;
				v[8 * i + 4 * b + 3] = fh.y;
			}
		}
	} else if (FMT == FW_FP8) {
		/* two e4m3 per conversion (exact through half) */
#pragma unroll
		for (int k = 0; k < 8; k++) {
			__half2_raw h = __nv_cvt_fp8x2_to_halfraw2(
				(__nv_fp8x2_storage_t)(u[k / 2] >> (16 * (k % 2))), __NV_E4M3);
			float2 f = __half22float2(*(const __half2 *)&h);

			v[2 * k] = f.x;
			v[2 * k + 1] = f.y;
		}
	} else if (FMT == FW_BF16) {
#pragma unroll
		for (int k = 0; k < 8; k++)
			v[k] = bf16f((uint16_t)(u[k / 2] >> (16 * (k % 2))));
	} else {
#pragma unroll
		for (int k = 0; k < 4; k++)
			v[k] = __uint_as_float(u[k]);
	}
}

/*
 * x's piece @c (n floats) into xv; with @aq the official FP8 activation
 * quant per 128 values, fused: the 128/n lanes holding one block (adjacent
 * lanes of the same step) agree on its amax by shuffles.  Every lane of
 * the warp must call this (@on: whether its piece exists).
 */
template <int FMT>
static __device__ __forceinline__ void load_x(const float *x, uint32_t c, int on, int aq,
					      float *xv)
{
	const int n = piece<FMT>::n;

#pragma unroll
	for (int k = 0; k < n / 4; k++) {
		float4 q = on ? ((const float4 *)(x + (size_t)c * n))[k] : make_float4(0, 0, 0, 0);

		xv[4 * k] = q.x;
		xv[4 * k + 1] = q.y;
		xv[4 * k + 2] = q.z;
		xv[4 * k + 3] = q.w;
	}
	if (FMT != FW_FP8 && FMT != FW_FP4)
		return;
	if (aq) {
		float a = 0.f;

#pragma unroll
		for (int k = 0; k < n; k++)
			a = fmaxf(a, fabsf(xv[k]));
#pragma unroll
		for (int o = 1; o < 128 / n; o *= 2)
			a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
		float s = e8m0_ceil(a, 1.0f / 448.0f, 1e-4f);

#pragma unroll
		for (int k = 0; k < n; k++)
			xv[k] = fp8_round(xv[k], s);
	}
}

/* one element, for shapes the pieces do not tile */
static __device__ float load_one(const fw_mat &w, uint32_t o, uint32_t c)
{
	size_t r = w.row0 + o;

	switch (w.fmt) {
	case FW_FP4: {
		uint8_t b = ((const uint8_t *)w.data)[r * (w.cols / 2) + c / 2];

		return fp4_lut[c & 1 ? b >> 4 : b & 15] *
		       e8m0(((const uint8_t *)w.scale)[r * (w.cols / 32) + c / 32]);
	}
	case FW_FP8: {
		size_t si = (r / 128) * ((w.cols + 127) / 128) + c / 128;
		float s = w.scale_f32 ? ((const float *)w.scale)[si] : e8m0(((const uint8_t *)w.scale)[si]);

		return e4m3(((const uint8_t *)w.data)[r * w.cols + c]) * s;
	}
	case FW_BF16:
		return bf16f(((const uint16_t *)w.data)[r * w.cols + c]);
	default:
		return ((const float *)w.data)[r * w.cols + c];
	}
}

/* acc[r] = W[o] . x[r] for r < nrows, summed across the warp (aq: x on
 * the FP8 grid first, see load_x) */
template <int FMT>
static __device__ __forceinline__ void row_dot(const fw_mat &w, uint32_t o, const float *x,
					       uint32_t ldx, uint32_t nrows, float *acc, int aq)
{
	const int n = piece<FMT>::n;
	uint32_t lane = threadIdx.x % 32, pieces = w.cols / n;
	float v[n], xv[n];

#pragma unroll
	for (int r = 0; r < FW_LINEAR_ROWS; r++)
		acc[r] = 0.f;
	for (uint32_t base = 0; base < pieces; base += 32) {
		uint32_t c = base + lane;
		int on = c < pieces;
		float s = on ? piece_scale<FMT>(w, o, c * n) : 0.f;

		if (on)
			decode_piece<FMT>(raw_piece<FMT>(w, o, c), v);
#pragma unroll
		for (int r = 0; r < FW_LINEAR_ROWS; r++) {
			if (r >= nrows)
				break;
			float part = 0.f;

			load_x<FMT>(x + (size_t)r * ldx, c, on, aq, xv);
#pragma unroll
			for (int k = 0; k < n; k++)
				part += v[k] * xv[k];
			if (FMT == FW_FP4)
				part *= 16384.f;	/* see fp4v() */
			if (on)
				acc[r] += part * s;
		}
	}
#pragma unroll
	for (int r = 0; r < FW_LINEAR_ROWS; r++)
		acc[r] = warp_sum(acc[r]);
}

static __device__ void row_dot_any(const fw_mat &w, uint32_t o, const float *x, uint32_t ldx,
				   uint32_t nrows, float *acc, int aq)
{
	uint32_t lane = threadIdx.x % 32;
	/* the pieces need whole pieces per row and 16-byte aligned x rows */
	int tiled = ldx % 4 == 0 && ((uintptr_t)x & 15) == 0 &&
		    (w.fmt == FW_FP4 ? w.cols % 32 == 0 : w.fmt == FW_FP8 ? w.cols % 16 == 0 :
		     w.fmt == FW_BF16 ? w.cols % 8 == 0 : w.cols % 4 == 0);

	if (tiled) {
		switch (w.fmt) {
		case FW_FP4:
			row_dot<FW_FP4>(w, o, x, ldx, nrows, acc, aq);
			return;
		case FW_FP8:
			row_dot<FW_FP8>(w, o, x, ldx, nrows, acc, aq);
			return;
		case FW_BF16:
			row_dot<FW_BF16>(w, o, x, ldx, nrows, acc, aq);
			return;
		default:
			row_dot<FW_F32>(w, o, x, ldx, nrows, acc, aq);
			return;
		}
	}
	for (int r = 0; r < FW_LINEAR_ROWS; r++)
		acc[r] = 0.f;
	for (uint32_t c = lane; c < w.cols; c += 32) {
		float wv = load_one(w, o, c);

		for (uint32_t r = 0; r < nrows; r++)
			acc[r] += wv * x[(size_t)r * ldx + c];
	}
	for (int r = 0; r < FW_LINEAR_ROWS; r++)
		acc[r] = warp_sum(acc[r]);
}

/* One input row, NR output rows per warp: the x piece is loaded once
 * and used for the NR weight rows (x traffic from L1 is what limits FP4,
 * 32 values per 16-byte piece). */
template <int FMT, int NR>
static __device__ __forceinline__ void rows_dot(const fw_mat &w, uint32_t o0, uint32_t nout,
						 const float *x, float *acc, uint32_t k0, uint32_t k1,
						 int aq)
{
	const int n = piece<FMT>::n;
	uint32_t lane = threadIdx.x % 32, pieces = k1 / n;
	float v[n], xv[n];

#pragma unroll
	for (int i = 0; i < NR; i++)
		acc[i] = 0.f;
	for (uint32_t base = k0 / n; base < pieces; base += 32) {
		uint32_t c = base + lane;
		int on = c < pieces;
		uint4 q[NR];
		float s[NR];

		/* the four rows' pieces in flight together */
#pragma unroll
		for (int i = 0; i < NR; i++) {
			int use = on && i < nout;

			q[i] = use ? raw_piece<FMT>(w, o0 + i, c) : make_uint4(0, 0, 0, 0);
			s[i] = use ? piece_scale<FMT>(w, o0 + i, c * n) : 0.f;
		}
		load_x<FMT>(x, c, on, aq, xv);
#pragma unroll
		for (int i = 0; i < NR; i++) {
			float part = 0.f;

			decode_piece<FMT>(q[i], v);
#pragma unroll
			for (int k = 0; k < n; k++)
				part += v[k] * xv[k];
			if (FMT == FW_FP4)
				part *= 16384.f;	/* see fp4v() */
			acc[i] += part * s[i];
		}
	}
#pragma unroll
	for (int i = 0; i < NR; i++)
		acc[i] = warp_sum(acc[i]);
}

/* columns [k0, k1) only (a split-K slice: whole 128-column blocks), or
 * all; NR output rows from o0; FMT is w's format */
template <int FMT, int NR>
static __device__ void rows_fmt(const fw_mat &w, uint32_t o0, const float *x, float *acc,
				uint32_t k0, uint32_t k1, int aq)
{
	uint32_t nout = w.rows - o0 < NR ? w.rows - o0 : NR;
	int tiled = ((uintptr_t)x & 15) == 0 && w.cols % piece<FMT>::n == 0;

	if (tiled) {
		rows_dot<FMT, NR>(w, o0, nout, x, acc, k0, k1, aq);
		return;
	}
	/* element by element (no act quant: the host quantizes x first) */
	for (uint32_t i = 0; i < NR; i++) {
		acc[i] = 0.f;
		if (i < nout)
			for (uint32_t c = k0 + threadIdx.x % 32; c < k1; c += 32)
				acc[i] += load_one(w, o0 + i, c) * x[c];
		acc[i] = warp_sum(acc[i]);
	}
}

/* rows_fmt for w's format */
template <int NR>
static __device__ void rows_any(const fw_mat &w, uint32_t o0, const float *x, float *acc,
				uint32_t k0, uint32_t k1, int aq)
{
	switch (w.fmt) {
	case FW_FP4:
		rows_fmt<FW_FP4, NR>(w, o0, x, acc, k0, k1, aq);
		return;
	case FW_FP8:
		rows_fmt<FW_FP8, NR>(w, o0, x, acc, k0, k1, aq);
		return;
	case FW_BF16:
		rows_fmt<FW_BF16, NR>(w, o0, x, acc, k0, k1, aq);
		return;
	default:
		rows_fmt<FW_F32, NR>(w, o0, x, acc, k0, k1, aq);
		return;
	}
}

/* whether this block is the last of row block @rb's @ks to arrive, its
 * partial sums written (the caller sets count[rb] back to 0) */
static __device__ __forceinline__ int splitk_last(uint32_t *count, uint32_t rb, uint32_t ks)
{
	__shared__ int last;

	__threadfence();
	__syncthreads();
	if (threadIdx.x == 0)
		last = atomicAdd(&count[rb], 1u) == ks - 1;
	__syncthreads();
	if (!last)
		return 0;
	__threadfence();
	return 1;
}

/* the last block: *out (first warp, lane i: row 32 rb + i) = the row's
 * partial sums added in slice order; every thread calls */
static __device__ __forceinline__ void splitk_add(const float *part, uint32_t rb, uint32_t rows,
						  uint32_t ks, float *out)
{
	__shared__ float red[8][32];
	uint32_t ol = threadIdx.x % 32, j = threadIdx.x / 32, o = rb * 32 + ol;
	float sum = 0.f;

	if (o < rows)
		sum = sum_cg(part + o, j, ks, 8, rows);
	red[j][ol] = sum;
	__syncthreads();
	if (j == 0) {
		sum = 0.f;
		for (int i = 0; i < 8; i++)
			sum += red[i][ol];
		*out = sum;
	}
}

/*
 * Split-K's end, every thread of a 256-thread block calls after writing
 * its partial sums part [ks, rows] (row block rb: rows [32 rb, 32 rb + 32)):
 * in the last of the row block's ks blocks to arrive (count[rb] counts
 * them; left zero again) the first warp gets in *out lane l's row's sum
 * of the ks partials in a fixed order (each warp adds every 8th, then the
 * 8 sums in order: loads in flight together, not one chain of ks), so the
 * result does not depend on timing.  Returns whether this block was last.
 */
static __device__ int splitk_sum(const float *part, uint32_t *count, uint32_t rb, uint32_t rows,
				 uint32_t ks, float *out)
{
	if (!splitk_last(count, rb, ks))
		return 0;
	splitk_add(part, rb, rows, ks, out);
	if (threadIdx.x == 0)
		count[rb] = 0;
	return 1;
}

/* y = W x for one input row, w in format FMT: four output rows a warp;
 * with gridDim.y = ksplit > 1 each block takes cols/ksplit columns and
 * the partial sums meet in splitk_sum(); with @hp the mHC post step on
 * each output (W's rows are D) */
template <int FMT>
static __device__ void linear_one(const fw_mat &w, const float *x, float *y, float *part,
				  uint32_t *count, uint32_t aq, const fw_hc_post *hp)
{
	uint32_t warp = blockIdx.x * 8 + threadIdx.x / 32, o0 = warp * 4;
	uint32_t ks = gridDim.y, slice = w.cols / ks;
	float acc[FW_LINEAR_ROWS], sum;

	fw_pdl_wait();
	if (o0 < w.rows)
		rows_fmt<FMT, 4>(w, o0, x, acc, blockIdx.y * slice, (blockIdx.y + 1) * slice, aq);
	/* the weights are read: the next kernel's blocks may come */
	fw_pdl_launch();
	if (ks == 1) {
		if (o0 < w.rows && threadIdx.x % 32 == 0)
			for (uint32_t i = 0; i < 4 && o0 + i < w.rows; i++) {
				y[o0 + i] = acc[i];
				if (hp)
					hc_post_at(*hp, 0, o0 + i, acc[i]);
			}
		return;
	}
	if (o0 < w.rows && threadIdx.x % 32 == 0)
		for (uint32_t i = 0; i < 4 && o0 + i < w.rows; i++)
			part[(size_t)blockIdx.y * w.rows + o0 + i] = acc[i];
	if (!splitk_sum(part, count, blockIdx.x, w.rows, ks, &sum))
		return;
	uint32_t o = blockIdx.x * 32 + threadIdx.x;

	if (threadIdx.x < 32 && o < w.rows) {
		y[o] = sum;
		if (hp)
			hc_post_at(*hp, 0, o, sum);
	}
}

/*
 * grid: (ceil(rows/8), ceil(nrows/FW_LINEAR_ROWS)) blocks of 256 threads
 * (one output row per warp, FW_LINEAR_ROWS input rows per blockIdx.y;
 * one input row is dsv4_linear1_<format>'s, below).  aq: x through the
 * official FP8 activation quant on the way in (FP8/FP4 weights, cols a
 * multiple of 128, x rows 16-byte aligned: the caller checks).  gridDim.z
 * groups: group g uses rows [g rows, (g+1) rows) of the
 * matrix from w.row0, x + g xgs and y + g ygs.
 */
FW_KERNEL void __launch_bounds__(256)
dsv4_linear(fw_mat w, const float *__restrict__ x, uint32_t ldx, uint32_t nrows,
	    float *__restrict__ y, uint32_t ldy, uint32_t aq, uint32_t xgs, uint32_t ygs)
{
	uint32_t warp = blockIdx.x * 8 + threadIdx.x / 32, g = blockIdx.z;
	float acc[FW_LINEAR_ROWS];

	/* group g: the next w.rows rows, its own x and y */
	w.row0 += g * w.rows;
	x += (size_t)g * xgs;
	y += (size_t)g * ygs;
	/* blockIdx.y picks FW_LINEAR_ROWS of the input rows */
	uint32_t r0 = blockIdx.y * FW_LINEAR_ROWS;

	if (warp >= w.rows || r0 >= nrows)
		return;
	nrows = nrows - r0 < FW_LINEAR_ROWS ? nrows - r0 : FW_LINEAR_ROWS;
	x += (size_t)r0 * ldx;
	y += (size_t)r0 * ldy;
	row_dot_any(w, warp, x, ldx, nrows, acc, aq);
	if (threadIdx.x % 32 == 0)
		for (uint32_t r = 0; r < nrows; r++)
			y[(size_t)r * ldy + warp] = acc[r];
}

/*
 * dsv4_linear's one-row form (decode's GEMVs), a kernel per weight format
 * so that each holds only its own format's registers: with all four in
 * one, 128 registers a thread left two blocks of an SM, too few loads in
 * flight.  grid (ceil(rows/32), ksplit, groups), 256 threads (linear_one();
 * partial sums in part [ksplit, rows] per group, count [ceil(rows/32)]
 * per group, zero and left zero); groups and aq as dsv4_linear's; with
 * hp.X the mHC post step on each output (one group, W's rows hp.D:
 * decode's wo_b).
 */
#define LINEAR1(name, FMT, BLOCKS)                                                                  \
	FW_KERNEL void __launch_bounds__(256, BLOCKS)                                          \
	name(fw_mat w, const float *__restrict__ x, float *__restrict__ y,                     \
	     float *__restrict__ part, uint32_t *__restrict__ count, uint32_t aq, uint32_t xgs, \
	     uint32_t ygs, fw_hc_post hp)                                                      \
	{                                                                                      \
		uint32_t g = blockIdx.z;                                                       \
                                                                                               \
		w.row0 += g * w.rows;                                                          \
		x += (size_t)g * xgs;                                                          \
		y += (size_t)g * ygs;                                                          \
		part += (size_t)g * gridDim.y * w.rows;                                        \
		count += (size_t)g * gridDim.x;                                                \
		linear_one<FMT>(w, x, y, part, count, aq, hp.X ? &hp : NULL);                  \
	}

/* four blocks an SM (64 registers, no spills); FP4's 32 values a piece
 * need more */
LINEAR1(dsv4_linear1_f32, FW_F32, 4)
LINEAR1(dsv4_linear1_bf16, FW_BF16, 4)
LINEAR1(dsv4_linear1_fp8, FW_FP8, 4)
LINEAR1(dsv4_linear1_fp4, FW_FP4, 1)

/*
 * grid: (ceil(rows/32), slots, 2 or 1), 128 threads, eight output rows a
 * warp (each x piece loaded serves eight weight rows: FP4 experts read
 * twice the x bytes per weight byte with four).  z picks (tab_a, y_a) or
 * (tab_b, y_b).  Slot s = token * K + j uses expert idx[s] on input row
 * x[(per_slot ? s : s / K) * ldx]; a slot with idx < 0 (no expert, or not
 * in this group of streamed experts) is left as it is.  aq as for
 * dsv4_linear.
 */
FW_KERNEL void __launch_bounds__(128)
dsv4_linear_experts(const fw_mat *__restrict__ tab_a, const fw_mat *__restrict__ tab_b,
		    const int32_t *__restrict__ idx, uint32_t K, const float *__restrict__ x,
		    uint32_t ldx, uint32_t per_slot, float *__restrict__ y_a,
		    float *__restrict__ y_b, uint32_t ldy, uint32_t aq)
{
	uint32_t s = blockIdx.y, o0 = (blockIdx.x * 4 + threadIdx.x / 32) * 8;
	int32_t e = idx[s];
	const fw_mat *tab = blockIdx.z ? tab_b : tab_a;
	float *y = blockIdx.z ? y_b : y_a;
	float acc[8];

	if (e < 0)
		return;
	fw_mat w = tab[e];

	if (o0 >= w.rows)
		return;
	rows_any<8>(w, o0, x + (size_t)(per_slot ? s : s / K) * ldx, acc, 0, w.cols, aq);
	if (threadIdx.x % 32 == 0)
		for (uint32_t i = 0; i < 8 && o0 + i < w.rows; i++)
			y[(size_t)s * ldy + o0 + i] = acc[i];
}
