// SPDX-License-Identifier: MIT
/*
 * Row-wise pieces of the forward pass (spec §2, §5, §6): the embedding
 * into hc_mult streams, mHC's hc_pre (mixes, Sinkhorn-normalized comb,
 * collapse, then the block's RMSNorm) and hc_post, hc_head, RMSNorm and
 * the per-head norm + RoPE (+ FP8 grid) of q and kv, activation fake-quant,
 * the router, the clamped SwiGLU and the MoE combine.  One block per row
 * (or per row and head); the arithmetic mirrors the CPU engine's.
 */
#include "common.cuh"
#include "route.cuh"

static __device__ __forceinline__ float sigmoidf_(float x)
{
	return 1.0f / (1.0f + expf(-x));
}

/* an mHC pre weight: sigmoid(mix rs scale + base) + eps (spec §mHC) */
static __device__ __forceinline__ float hc_pre_weight(float mix, float rs, float scale,
						      float base, float eps)
{
	return sigmoidf_(mix * rs * scale + base) + eps;
}

/* grid (R, slices): X[r] = hc copies of embed[tok[r]] */
FW_KERNEL void dsv4_embed(fw_mat w, const int32_t *__restrict__ tok, uint32_t hc,
			  float *__restrict__ X)
{
	fw_pdl_enter();
	uint32_t r = blockIdx.x, D = w.cols;
	size_t t = (size_t)tok[r];

	/* blockIdx.y: a slice of the row (one block alone took ~12 us) */
	for (uint32_t d = blockIdx.y * blockDim.x + threadIdx.x; d < D;
	     d += gridDim.y * blockDim.x) {
		float v = w.fmt == FW_BF16 ? bf16f(((const uint16_t *)w.data)[t * D + d]) :
			  ((const float *)w.data)[t * D + d];

		for (uint32_t k = 0; k < hc; k++)
			X[((size_t)r * hc + k) * D + d] = v;
	}
}

/* rsqrt(mean(x^2) + eps) of one row of n values, every thread */
static __device__ float row_rs(const float *x, uint32_t n, float eps)
{
	double ss = 0;

	if (n % 4 == 0 && ((uintptr_t)x & 15) == 0) {
		for (uint32_t i = threadIdx.x; i < n / 4; i += blockDim.x) {
			float4 v = ((const float4 *)x)[i];

			ss += (double)v.x * v.x + (double)v.y * v.y + (double)v.z * v.z +
			      (double)v.w * v.w;
		}
		ss = block_sum(ss);
		return 1.0f / sqrtf((float)(ss / n) + eps);
	}
	for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
		ss += (double)x[i] * x[i];
	ss = block_sum(ss);
	return 1.0f / sqrtf((float)(ss / n) + eps);
}

/* hc lines of M (line stride, element stride) each divided by its sum + eps */
static __device__ void normalize_lines(float *M, uint32_t hc, uint32_t line, uint32_t elem,
				       float eps)
{
	for (uint32_t j = 0; j < hc; j++) {
		float *v = M + j * line, s = 0;

		for (uint32_t k = 0; k < hc; k++)
			s += v[k * elem];
		for (uint32_t k = 0; k < hc; k++)
			v[k * elem] /= s + eps;
	}
}

/*
 * hc_pre's mixes and Sinkhorn with one lane per element of comb (hc*hc <= 32,
 * called by the whole first warp): every sum is taken in the serial order
 * (k = 0, 1, ...) from shuffles, so the result is the serial code's, bit
 * for bit, without one thread walking the iterations alone.
 */
static __device__ void hc_mix_warp(const float *mx, float rs, const float *scale,
				   const float *base, uint32_t hc, uint32_t iters, float eps,
				   float *pre, float *P, float *comb)
{
	uint32_t l = threadIdx.x % 32, j = l / hc, k = l % hc, on = l < hc * hc;
	float m = 0, rmax = -INFINITY, sum = 0;

	if (l < hc) {
		pre[l] = hc_pre_weight(mx[l], rs, scale[0], base[l], eps);
		P[l] = 2 * sigmoidf_(mx[hc + l] * rs * scale[1] + base[hc + l]);
	}
	if (on)
		m = mx[2 * hc + l] * rs * scale[2] + base[2 * hc + l];
	for (uint32_t q = 0; q < hc; q++)
		rmax = fmaxf(rmax, __shfl_sync(0xffffffffu, m, j * hc + q));
	m = on ? expf(m - rmax) : 0.f;
	for (uint32_t q = 0; q < hc; q++)
		sum += __shfl_sync(0xffffffffu, m, j * hc + q);
	m = m / sum + eps;
	for (uint32_t it = 0; it < iters; it++) {
		if (it) {	/* rows: line j, elements k */
			float s = 0;

			for (uint32_t q = 0; q < hc; q++)
				s += __shfl_sync(0xffffffffu, m, j * hc + q);
			m /= s + eps;
		}
		float s = 0;	/* columns: line k, elements j */

		for (uint32_t q = 0; q < hc; q++)
			s += __shfl_sync(0xffffffffu, m, q * hc + k);
		m /= s + eps;
	}
	if (on)
		comb[l] = m;
}

/* acc += p v, per column */
static __device__ __forceinline__ void axpy4(float4 &acc, float p, float4 v)
{
	acc.x += p * v.x;
	acc.y += p * v.y;
	acc.z += p * v.z;
	acc.w += p * v.w;
}

static __device__ __forceinline__ double sumsq4(float4 a)
{
	return (double)a.x * a.x + (double)a.y * a.y + (double)a.z * a.z + (double)a.w * a.w;
}

/*
 * xn's end, every thread calls: @ss (the sum of squares of the thread's
 * acc) summed over the block, then out = acc rn [* normw] for the thread's
 * four float4 of columns (4 (threadIdx.x + u blockDim.x)); LOADED: normw's
 * values already in @nw
 */
template <bool LOADED>
static __device__ __forceinline__ void xn_finish(const float4 *acc, double ss, uint32_t D,
						 float norm_eps, const float *normw,
						 const float4 *nw, float *out)
{
	ss = block_sum(ss);
	float rn = 1.0f / sqrtf((float)(ss / D) + norm_eps);

#pragma unroll
	for (int u = 0; u < 4; u++) {
		uint32_t d = 4 * (threadIdx.x + u * blockDim.x);

		if (d >= D)
			continue;
		float4 o = make_float4(acc[u].x * rn, acc[u].y * rn, acc[u].z * rn, acc[u].w * rn);

		if (LOADED && normw) {
			o.x *= nw[u].x;
			o.y *= nw[u].y;
			o.z *= nw[u].z;
			o.w *= nw[u].w;
		} else if (normw) {
			o.x *= normw[d];
			o.y *= normw[d + 1];
			o.z *= normw[d + 2];
			o.w *= normw[d + 3];
		}
		*(float4 *)(out + d) = o;
	}
}

/*
 * xn's start: acc[u] = sum over i < n of pre[i] X_i at the thread's four
 * float4 of columns (4 (threadIdx.x + u blockDim.x)), X_i's float4 there
 * from @x(u, i, d); returns the sum of squares of the thread's acc
 */
template <typename F>
static __device__ __forceinline__ double pre_mix4(float4 *acc, const float *pre, uint32_t n,
						  uint32_t D, F x)
{
	double ss = 0;

#pragma unroll
	for (int u = 0; u < 4; u++) {
		uint32_t d = 4 * (threadIdx.x + u * blockDim.x);

		acc[u] = make_float4(0, 0, 0, 0);
		if (d >= D)
			continue;
#pragma unroll
		for (uint32_t i = 0; i < n; i++)
			axpy4(acc[u], pre[i], x(u, i, d));
		ss += sumsq4(acc[u]);
	}
	return ss;
}

/* hc_pre_xn's register path for NX streams (NX == hc: the loads of a
 * thread in flight together) or up to NX (the loop kept) */
template <int NX, bool EXACT>
static __device__ __forceinline__ void hc_pre_xn_regs(const float *Xr, const float *pre,
						      uint32_t hc, uint32_t D,
						      const float *normw, float norm_eps,
						      float *out)
{
	float4 acc[4];
	double ss = pre_mix4(acc, pre, EXACT ? NX : hc, D, [&](int, uint32_t i, uint32_t d) {
		return *(const float4 *)(Xr + (size_t)i * D + d);
	});

	xn_finish<false>(acc, ss, D, norm_eps, normw, NULL, out);
}

/* hc_pre_xn's result through memory: out written, then normed in place
 * (any D, any alignment); every thread calls */
static __device__ void hc_pre_xn_loop(const float *Xr, const float *pre, uint32_t hc, uint32_t D,
				      const float *normw, float norm_eps, float *out)
{
	for (uint32_t d = threadIdx.x; d < D; d += blockDim.x) {
		float acc = 0;

		for (uint32_t i = 0; i < hc; i++)
			acc += pre[i] * Xr[(size_t)i * D + d];
		out[d] = acc;
	}
	__syncthreads();
	block_rmsnorm(out, normw, D, norm_eps);
}

/*
 * out [D] = rmsnorm(sum_i pre_i X_i) * normw (pre in shared memory); every
 * thread of the block calls.  Up to four float4 a thread stay in
 * registers through the norm.
 */
static __device__ void hc_pre_xn(const float *Xr, const float *pre, uint32_t hc, uint32_t D,
				 const float *normw, float norm_eps, float *out)
{
	if (D % 4 == 0 && D <= 16 * blockDim.x && ((uintptr_t)Xr & 15) == 0) {
		if (hc == 4)	/* V4's */
			hc_pre_xn_regs<4, true>(Xr, pre, hc, D, normw, norm_eps, out);
		else
			hc_pre_xn_regs<16, false>(Xr, pre, hc, D, normw, norm_eps, out);
		return;
	}
	hc_pre_xn_loop(Xr, pre, hc, D, normw, norm_eps, out);
}

/*
 * grid R, 256 threads.  mix [R, (2+hc)hc] = hc_fn . X (un-normalized);
 * out: xn [R, D] = rmsnorm(sum_i pre_i X_i) * normw, post [R, hc],
 * comb [R, hc*hc] (Sinkhorn).  parts: 1 xn, 2 post and comb, 3 both (the
 * Sinkhorn is a serial chain that decode overlaps with the sublayer, as
 * only hc_post needs its result).
 */
FW_KERNEL void dsv4_hc_pre(const float *__restrict__ mix, const float *__restrict__ X,
			   const float *__restrict__ scale, const float *__restrict__ base,
			   uint32_t hc, uint32_t D, uint32_t iters, float hc_eps, float norm_eps,
			   const float *__restrict__ normw, float *__restrict__ xn,
			   float *__restrict__ post, float *__restrict__ comb, uint32_t parts)
{
	fw_pdl_enter();
	__shared__ float pre[16], M[256];
	uint32_t r = blockIdx.x, W = hc * D, nmix = (2 + hc) * hc;
	const float *Xr = X + (size_t)r * W, *mx = mix + (size_t)r * nmix;
	float rs = row_rs(Xr, W, norm_eps);

	if (!(parts & 2)) {	/* pre only: the serial chain runs elsewhere */
		if (threadIdx.x < hc)
			pre[threadIdx.x] = hc_pre_weight(mx[threadIdx.x], rs, scale[0],
							 base[threadIdx.x], hc_eps);
	} else if (hc * hc <= 32) {
		if (threadIdx.x < 32)
			hc_mix_warp(mx, rs, scale, base, hc, iters, hc_eps, pre,
				    post + (size_t)r * hc, comb + (size_t)r * hc * hc);
	} else if (threadIdx.x == 0) {
		float *P = post + (size_t)r * hc;

		for (uint32_t i = 0; i < hc; i++) {
			pre[i] = hc_pre_weight(mx[i], rs, scale[0], base[i], hc_eps);
			P[i] = 2 * sigmoidf_(mx[hc + i] * rs * scale[1] + base[hc + i]);
		}
		for (uint32_t j = 0; j < hc; j++) {
			float *row = M + j * hc, rmax = -INFINITY, sum = 0;

			for (uint32_t k = 0; k < hc; k++) {
				row[k] = mx[2 * hc + j * hc + k] * rs * scale[2] + base[2 * hc + j * hc + k];
				rmax = fmaxf(rmax, row[k]);
			}
			for (uint32_t k = 0; k < hc; k++) {
				row[k] = expf(row[k] - rmax);
				sum += row[k];
			}
			for (uint32_t k = 0; k < hc; k++)
				row[k] = row[k] / sum + hc_eps;
		}
		for (uint32_t it = 0; it < iters; it++) {
			if (it)
				normalize_lines(M, hc, hc, 1, hc_eps);
			normalize_lines(M, hc, 1, hc, hc_eps);
		}
		for (uint32_t i = 0; i < hc * hc; i++)
			comb[(size_t)r * hc * hc + i] = M[i];
	}
	__syncthreads();
	if (parts & 1)
		hc_pre_xn(Xr, pre, hc, D, normw, norm_eps, xn + (size_t)r * D);
}

/*
 * dsv4_hc_mix's last block for hc 4 (V4's; D <= 16 blockDim.x, as the host
 * checks): what dsv4_hc_mix's general tail computes, to the bit, but every
 * load it needs (the four streams of X, normw, scale and base, the slices'
 * sums of squares) goes out with the partial mixes' instead of one round
 * trip after another.  mixr: the row's mix; out: its xn.
 */
static __device__ __forceinline__ void hc_mix_last4(const float *pr, const double *dss,
						    uint32_t S, uint32_t nmix, const float *Xr,
						    uint32_t D, const float *scale,
						    const float *base, float hc_eps,
						    float norm_eps, const float *normw,
						    float *mixr, float *out)
{
	__shared__ float pre[4];
	__shared__ double rsum;
	uint32_t lane = threadIdx.x % 32, wid = threadIdx.x / 32, W = 4 * D;
	float4 xv[4][4], nw[4], acc[4];
	double dv[8], ss;
	float sum, sc = 0.f, bs = 0.f;

#pragma unroll
	for (int u = 0; u < 4; u++) {
		uint32_t d = 4 * (threadIdx.x + u * blockDim.x);

		if (d >= D)
			continue;
#pragma unroll
		for (int i = 0; i < 4; i++)
			xv[u][i] = *(const float4 *)(Xr + (size_t)i * D + d);
		if (normw)
			nw[u] = *(const float4 *)(normw + d);
	}
	if (threadIdx.x < 4) {
		sc = scale[0];
		bs = base[threadIdx.x];
	}
	/* the sums of squares as sum_cg(dss, lane, S, 32, 1) adds them */
	if (wid == 1)
#pragma unroll
		for (int u = 0; u < 8; u++)
			dv[u] = lane + 32 * u < S ? __ldcg(dss + lane + 32 * u) : 0.0;
	splitk_add(pr, 0, nmix, S, &sum);
	if (wid == 1) {
		double t = 0;

#pragma unroll
		for (int u = 0; u < 8; u++)
			if (lane + 32 * u < S)
				t += dv[u];
		t = warp_sum(t);
		if (!lane)
			rsum = t;
	}
	__syncthreads();
	float rs = 1.0f / sqrtf((float)(rsum / W) + norm_eps);

	if (threadIdx.x < nmix)
		mixr[threadIdx.x] = sum;
	if (threadIdx.x < 4)
		pre[threadIdx.x] = hc_pre_weight(sum, rs, sc, bs, hc_eps);
	__syncthreads();
	/* xn as hc_pre_xn_regs<4, true> forms it, from the loaded streams */
	ss = pre_mix4(acc, pre, 4, D, [&](int u, uint32_t i, uint32_t) { return xv[u][i]; });
	xn_finish<true>(acc, ss, D, norm_eps, normw, nw, out);
}

/*
 * Decode's mHC pre step in one launch, dsv4_linear1_f32 (hc_fn, one row) and
 * dsv4_hc_pre (parts 1) without the boundary between them.  grid (S, R),
 * 256 threads: block (s, r) takes column slice s of row r's hc D values
 * (as dsv4_linear1_f32's split-K does, so mix comes out the same to the bit)
 * and its sum of squares; the row's last block to arrive adds the slices
 * up (splitk_last, splitk_add) into mix, and forms pre and xn as
 * dsv4_hc_pre does (for hc 4, hc_mix_last4 with its loads together).
 * w: hc_fn, F32, rows (2 + hc) hc <= 32; hc D a multiple of 128 S.
 * Scratch: part [R, S, rows] partial mixes, then from float
 * FW_HC_MIX_DSS doubles [R, S]; count [R] zero, left zero.
 * One block an SM (the grid is a few dozen): the last block keeps its
 * loads in registers (with 4 an SM ptxas took 60 registers, and left to
 * itself 48 with spills).
 */
FW_KERNEL void __launch_bounds__(256, 1)
dsv4_hc_mix(fw_mat w, const float *__restrict__ X, uint32_t hc, uint32_t D,
	    float *__restrict__ part, uint32_t *__restrict__ count, float *__restrict__ mix,
	    const float *__restrict__ scale, const float *__restrict__ base, float hc_eps,
	    float norm_eps, const float *__restrict__ normw, float *__restrict__ xn)
{
	fw_pdl_enter();
	__shared__ float pre[16];
	__shared__ double rsum;
	uint32_t s = blockIdx.x, S = gridDim.x, r = blockIdx.y, W = hc * D, slice = W / S;
	uint32_t nmix = w.rows, o0 = (threadIdx.x / 32) * 4;
	const float *Xr = X + (size_t)r * W;
	float *pr = part + (size_t)r * S * nmix, acc[FW_LINEAR_ROWS], sum = 0.f;
	double *dss = (double *)(part + FW_HC_MIX_DSS) + (size_t)r * S, ss = 0;

	if (o0 < nmix)
		rows_fmt<FW_F32, 4>(w, o0, Xr, acc, s * slice, (s + 1) * slice, 0);
	if (o0 < nmix && threadIdx.x % 32 == 0)
		for (uint32_t i = 0; i < 4 && o0 + i < nmix; i++)
			pr[(size_t)s * nmix + o0 + i] = acc[i];
	for (uint32_t i = threadIdx.x; i < slice / 4; i += blockDim.x) {
		float4 v = ((const float4 *)(Xr + (size_t)s * slice))[i];

		ss += (double)v.x * v.x + (double)v.y * v.y + (double)v.z * v.z +
		      (double)v.w * v.w;
	}
	ss = block_sum(ss);
	if (threadIdx.x == 0)
		dss[s] = ss;
	if (!splitk_last(count + r, 0, S))
		return;
	/* the last block */
	if (hc == 4 && S <= 256 && D % 4 == 0 && D <= 16 * blockDim.x &&
	    ((uintptr_t)Xr & 15) == 0 && ((uintptr_t)normw & 15) == 0) {
		hc_mix_last4(pr, dss, S, nmix, Xr, D, scale, base, hc_eps, norm_eps, normw,
			     mix + (size_t)r * nmix, xn + (size_t)r * D);
		if (threadIdx.x == 0)
			count[r] = 0;
		return;
	}
	splitk_add(pr, 0, nmix, S, &sum);
	if (threadIdx.x == 0)
		count[r] = 0;
	/* sum (first warp) is mix[lane] */
	if (threadIdx.x < nmix)
		mix[(size_t)r * nmix + threadIdx.x] = sum;
	if (threadIdx.x < 32) {	/* the sums of squares, loads in flight together */
		double t = sum_cg(dss, threadIdx.x, S, 32, 1);

		t = warp_sum(t);
		if (threadIdx.x == 0)
			rsum = t;
	}
	__syncthreads();
	float rs = 1.0f / sqrtf((float)(rsum / W) + norm_eps);

	if (threadIdx.x < hc)
		pre[threadIdx.x] = hc_pre_weight(sum, rs, scale[0], base[threadIdx.x], hc_eps);
	__syncthreads();
	hc_pre_xn(Xr, pre, hc, D, normw, norm_eps, xn + (size_t)r * D);
}

/* grid (R, ceil(D/256)): X'_k = post_k f + sum_j comb[j][k] X_j, in place */
FW_KERNEL void dsv4_hc_post(float *__restrict__ X, const float *__restrict__ f,
			    const float *__restrict__ post, const float *__restrict__ comb,
			    uint32_t hc, uint32_t D)
{
	fw_pdl_enter();
	uint32_t r = blockIdx.x, d = blockIdx.y * blockDim.x + threadIdx.x;
	fw_hc_post hp = { (uint64_t)X, (uint64_t)post, (uint64_t)comb, hc, D };

	if (d < D)
		hc_post_at(hp, r, d, f[(size_t)r * D + d]);
}

/* grid R, up to 1024 threads: y = rmsnorm(sum_k pre_k X_k) * normw, pre from hc_head's
 * mixes */
FW_KERNEL void dsv4_hc_head(const float *__restrict__ mix, const float *__restrict__ X,
			    const float *__restrict__ scale, const float *__restrict__ base,
			    uint32_t hc, uint32_t D, float hc_eps, float norm_eps,
			    const float *__restrict__ normw, float *__restrict__ y)
{
	fw_pdl_enter();
	__shared__ float pre[16];
	uint32_t r = blockIdx.x;
	const float *Xr = X + (size_t)r * hc * D;
	float rs = row_rs(Xr, hc * D, norm_eps);

	if (threadIdx.x < hc)
		pre[threadIdx.x] = hc_pre_weight(mix[(size_t)r * hc + threadIdx.x], rs, scale[0],
						 base[threadIdx.x], hc_eps);
	__syncthreads();
	hc_pre_xn_loop(Xr, pre, hc, D, normw, norm_eps, y + (size_t)r * D);
}

/* grid R: x[r] <- rmsnorm(x[r]) * w, n values per row at stride ld */
FW_KERNEL void dsv4_rmsnorm(float *__restrict__ x, uint32_t ld, uint32_t n,
			    const float *__restrict__ w, float eps)
{
	fw_pdl_enter();
	block_rmsnorm(x + (size_t)blockIdx.x * ld, w, n, eps);
}

/* dsv4_head_prep's steps on one head v [hd] at position p, by the block */
static __device__ __forceinline__ void block_head_prep(float *v, uint32_t hd, uint32_t rd,
						       const float *w, float eps, uint32_t p,
						       const float *freqs, uint32_t fq)
{
	block_rmsnorm(v, w, hd, eps);
	block_rope(v + hd - rd, freqs, rd, p, 0);
	if (fq)
		block_fakequant_fp8(v, hd - rd, 64);
}

/*
 * grid (R, heads): each head of hd values: RMSNorm (weight w or none),
 * RoPE over its last rd values at pos[r], then with fq the FP8 grid (per
 * 64) on the first hd - rd values (the KV entry's reference rounding).
 */
FW_KERNEL void dsv4_head_prep(float *__restrict__ x, uint32_t hd, uint32_t rd,
			      const float *__restrict__ w, float eps,
			      const uint32_t *__restrict__ pos, const float *__restrict__ freqs,
			      uint32_t fq)
{
	fw_pdl_enter();
	uint32_t r = blockIdx.x, h = blockIdx.y, H = gridDim.y;

	block_head_prep(x + ((size_t)r * H + h) * hd, hd, rd, w, eps, pos[r], freqs, fq);
}

/*
 * grid (R, 2), decode's wq_a and wkv run as one GEMV: blockIdx.y 0 takes
 * row r's qr [qlr] (RMSNorm with q_norm, as dsv4_rmsnorm), 1 its kv [hd]
 * (as dsv4_head_prep with kv_norm and fq).  qr rows qlr apart and kv rows
 * hd apart: the host launches it for one row, whose kv follows its qr.
 */
FW_KERNEL void dsv4_qkv_prep(float *__restrict__ qr, uint32_t qlr,
			     const float *__restrict__ q_norm, float *__restrict__ kv, uint32_t hd,
			     uint32_t rd, const float *__restrict__ kv_norm, float eps,
			     const uint32_t *__restrict__ pos, const float *__restrict__ freqs,
			     uint32_t fq)
{
	fw_pdl_enter();
	uint32_t r = blockIdx.x, t = threadIdx.x;
	float *v = kv + (size_t)r * hd;

	if (qlr > 4 * blockDim.x || hd > 4 * blockDim.x) {	/* (not V4's widths) */
		if (blockIdx.y == 0) {
			block_rmsnorm(qr + (size_t)r * qlr, q_norm, qlr, eps);
			return;
		}
		block_head_prep(v, hd, rd, kv_norm, eps, pos[r], freqs, fq);
		return;
	}
	if (blockIdx.y == 0) {
		block_rmsnorm4(qr + (size_t)r * qlr, q_norm, qlr, eps);
		return;
	}
	/* block_rope's loads with the norm's */
	float f0 = t < rd / 2 ? freqs[t] : 0.f;
	uint32_t p = pos[r];

	block_rmsnorm4(v, kv_norm, hd, eps);
	for (uint32_t i = t; i < rd / 2; i += blockDim.x)
		rope_pair(v + hd - rd, i, p, i == t ? f0 : freqs[i], 0);
	__syncthreads();
	if (fq)
		block_fakequant_fp8(v, hd - rd, 64);
}

/* grid R: out[r] = x[r] on the FP8 grid per 128 (the official act_quant) */
FW_KERNEL void dsv4_act_quant(const float *__restrict__ x, uint32_t ldx, uint32_t n,
			      float *__restrict__ out, uint32_t ldo)
{
	fw_pdl_enter();
	float *o = out + (size_t)blockIdx.x * ldo;

	for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
		o[i] = x[(size_t)blockIdx.x * ldx + i];
	__syncthreads();
	block_fakequant_fp8(o, n, 128);
}

/*
 * grid R, 256 threads.  logits [R, E] of the gate become sqrt(softplus);
 * the K experts: tid2eid[tok*K + j] (hash layers; out of range: -1) or the
 * top K of score + bias (higher first, lower index on ties).  Weights:
 * score / sum * route_scale (sum + 1e-20 with HF's variant).
 */
FW_KERNEL void dsv4_router(float *__restrict__ logits, uint32_t E, uint32_t K,
			   const float *__restrict__ bias, const int32_t *__restrict__ tid2eid,
			   const int32_t *__restrict__ tok, float route_scale, uint32_t hf,
			   int32_t *__restrict__ idx, float *__restrict__ wts)
{
	fw_pdl_enter();
	__shared__ int32_t chosen[64];
	__shared__ float best_v[32];
	__shared__ int32_t best_i[32];
	uint32_t r = blockIdx.x, lane = threadIdx.x % 32, wid = threadIdx.x / 32;
	float *s = logits + (size_t)r * E;

	if (E <= 256 && K <= 64) {
		/* the first warp alone, scores in registers: the same picks
		 * and sums as below without a barrier per pick (decode's
		 * router took ~7 us) */
		if (!wid)
			router_warp(s, s, E, K, bias, tid2eid ? tid2eid + (size_t)tok[r] * K : NULL,
				    route_scale, hf, idx + (size_t)r * K, wts + (size_t)r * K);
		return;
	}
	for (uint32_t e = threadIdx.x; e < E; e += blockDim.x)
		s[e] = route_score(s[e]);
	__syncthreads();
	if (tid2eid) {
		if (threadIdx.x < K) {
			int32_t v = tid2eid[(size_t)tok[r] * K + threadIdx.x];

			chosen[threadIdx.x] = v >= 0 && (uint32_t)v < E ? v : -1;
		}
	} else {
		for (uint32_t j = 0; j < K; j++) {
			float bv = -INFINITY;
			int32_t bi = -1;

			for (uint32_t e = threadIdx.x; e < E; e += blockDim.x) {
				float v = s[e] + (bias ? bias[e] : 0.f);
				int taken = 0;

				for (uint32_t i = 0; i < j; i++)
					taken |= chosen[i] == (int32_t)e;
				if (!taken && (bi < 0 || v > bv)) {
					bv = v;
					bi = (int32_t)e;
				}
			}
			for (int o = 16; o; o /= 2) {
				float ov = __shfl_xor_sync(0xffffffffu, bv, o);
				int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);

				if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
					bv = ov;
					bi = oi;
				}
			}
			if (!lane) {
				best_v[wid] = bv;
				best_i[wid] = bi;
			}
			__syncthreads();
			if (threadIdx.x == 0) {
				for (uint32_t w = 1; w < blockDim.x / 32; w++)
					if (best_i[w] >= 0 && (bi < 0 || best_v[w] > bv ||
							      (best_v[w] == bv && best_i[w] < bi))) {
						bv = best_v[w];
						bi = best_i[w];
					}
				chosen[j] = bi;
			}
			__syncthreads();
		}
	}
	__syncthreads();
	if (threadIdx.x == 0) {
		float sum = 0;

		for (uint32_t j = 0; j < K; j++)
			sum += chosen[j] >= 0 ? s[chosen[j]] : 0;
		if (hf)
			sum += 1e-20f;
		for (uint32_t j = 0; j < K; j++) {
			idx[(size_t)r * K + j] = chosen[j];
			wts[(size_t)r * K + j] = chosen[j] >= 0 ? s[chosen[j]] / sum * route_scale : 0.f;
		}
	}
}

/*
 * grid rows: h = silu(min(g, lim)) * clamp(u, -lim, lim) [* w[row / per]]
 * (lim 0: no clamp), then with fq the FP8 act_quant of h for the next GEMV.
 */
FW_KERNEL void dsv4_swiglu(const float *__restrict__ g, const float *__restrict__ u, uint32_t I,
			   float lim, const float *__restrict__ w, float *__restrict__ h,
			   uint32_t fq)
{
	fw_pdl_enter();
	uint32_t r = blockIdx.x;
	float *hr = h + (size_t)r * I;

	float wr = w ? w[r] : 1.0f;

	if (fq && I % 128 == 0) {
		/* each warp takes whole blocks of 128 as block_fakequant_fp8
		 * does, h in registers between the SwiGLU and the rounding */
		uint32_t lane = threadIdx.x % 32, nw = blockDim.x / 32;

		for (uint32_t b = (threadIdx.x / 32) * 128; b < I; b += nw * 128) {
			float hv[4], amax = 0;

#pragma unroll
			for (int k = 0; k < 4; k++) {
				size_t i = (size_t)r * I + b + lane + 32 * k;

				hv[k] = swiglu_h(g[i], u[i], lim, wr);
				amax = fmaxf(amax, fabsf(hv[k]));
			}
			amax = warp_max(amax);
			float sc = e8m0_ceil(amax, 1.0f / 448.0f, 1e-4f);

#pragma unroll
			for (int k = 0; k < 4; k++)
				hr[b + lane + 32 * k] = fp8_round(hv[k], sc);
		}
		return;
	}
	for (uint32_t i = threadIdx.x; i < I; i += blockDim.x)
		hr[i] = swiglu_h(g[(size_t)r * I + i], u[(size_t)r * I + i], lim, wr);
}

/* grid (R, ceil(D/256)): out[r] = shared[r] + sum_j [wts[r,j] *] ye[r*K + j],
 * then with hp.X the mHC post step on it (hc_post_at) */
FW_KERNEL void dsv4_moe_combine(const float *__restrict__ ye, const float *__restrict__ wts,
				uint32_t K, uint32_t D, uint32_t weight_after,
				const float *__restrict__ shared, float *__restrict__ out, fw_hc_post hp)
{
	fw_pdl_enter();
	uint32_t r = blockIdx.x, d = blockIdx.y * blockDim.x + threadIdx.x;

	if (d >= D)
		return;
	float acc = 0;

	for (uint32_t j = 0; j < K; j++)
		acc += (weight_after ? wts[(size_t)r * K + j] : 1.0f) * ye[((size_t)r * K + j) * D + d];
	acc += shared[(size_t)r * D + d];
	out[(size_t)r * D + d] = acc;
	if (hp.X)
		hc_post_at(hp, r, d, acc);
}
