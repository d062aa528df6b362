// SPDX-License-Identifier: MIT
/*
 * The lightning indexer of CSA layers (spec §4.4): queries roped, Hadamard
 * rotated and put on the FP4 grid; score(entry) = sum_h w_h relu(q_h . k)
 * over the visible indexer keys; and a deterministic top-k (higher score,
 * then lower entry) returned in ascending entry order, as the CPU engine's.
 */
#include "common.cuh"

/* the step exponent of a 32-value block a quad of lanes holds, eight
 * values a lane (@p, @q): grid_step_exp() of the quad's amax */
static __device__ __forceinline__ int quad_step_exp(float4 p, float4 q)
{
	float m = fmaxf(fmaxf(fmaxf(fabsf(p.x), fabsf(p.y)), fmaxf(fabsf(p.z), fabsf(p.w))),
			fmaxf(fmaxf(fabsf(q.x), fabsf(q.y)), fmaxf(fabsf(q.z), fabsf(q.w))));

	m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
	m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
	return grid_step_exp(m);
}

/* four codes, the first in the low byte (an mma fragment register) */
static __device__ __forceinline__ uint32_t grid_codes4(float4 v, int e)
{
	return (uint32_t)(uint8_t)grid_code(v.x, e) | (uint32_t)(uint8_t)grid_code(v.y, e) << 8 |
	       (uint32_t)(uint8_t)grid_code(v.z, e) << 16 |
	       (uint32_t)(uint8_t)grid_code(v.w, e) << 24;
}

/*
 * grid (R, heads), 128 threads, ihd <= 1024: q head <- FP4(Hadamard(RoPE(
 * q))), worked on in shared memory (5-6 us as through global memory:
 * the launch and its wait, not the passes); with @q8 (reference numerics, ihd % 32
 * == 0) also the head as int8 codes [R, heads, ihd] and their steps 2^e
 * [R, heads, ihd / 32] (grid_step_exp()) for dsv4_index_scores_mma8
 * and dsv4_index_scores_mma
 */
FW_KERNEL void dsv4_index_q(float *__restrict__ qi, uint32_t ihd, uint32_t rd,
			    const uint32_t *__restrict__ pos, const float *__restrict__ freqs,
			    uint32_t reference, int8_t *__restrict__ q8, float *__restrict__ qstep)
{
	fw_pdl_enter();
	__shared__ float x[1024];
	size_t head = (size_t)blockIdx.x * gridDim.y + blockIdx.y;
	float *q = qi + head * ihd;
	uint32_t lane = threadIdx.x % 32;

	for (uint32_t d = threadIdx.x; d < ihd; d += blockDim.x)
		x[d] = q[d];
	__syncthreads();
	block_rope(x + ihd - rd, freqs, rd, pos[blockIdx.x], 0);
	block_hadamard(x, ihd);
	if (reference)
		block_fakequant_fp4(x, ihd);
	for (uint32_t d = threadIdx.x; d < ihd; d += blockDim.x)
		q[d] = x[d];
	if (!reference || !q8)
		return;
	for (uint32_t b = threadIdx.x / 32; b < ihd / 32; b += blockDim.x / 32) {
		float v = x[b * 32 + lane];
		int e = grid_step_exp(warp_max(fabsf(v)));

		q8[head * ihd + b * 32 + lane] = grid_code(v, e);
		if (!lane)
			qstep[head * (ihd / 32) + b] = scalbnf(1.f, e);
	}
}

/* grid (R, ceil(max_entries / 8)), 256 threads: a warp per entry */
FW_KERNEL void __launch_bounds__(256)
dsv4_index_scores(const float *__restrict__ qi, const float *__restrict__ wi,
		  const uint64_t *__restrict__ rowtab, uint32_t L, const uint32_t *__restrict__ pos,
		  uint32_t ih, uint32_t ihd, float wscale, float *__restrict__ scores,
		  uint32_t max_entries)
{
	uint32_t r = blockIdx.x, j = blockIdx.y * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r] + L;
	const float *key = (const float *)sl->icmp_ent + (size_t)j * ihd;
	const float *q = qi + (size_t)r * ih * ihd;
	float s = 0;

	if (j >= (pos[r] + 1) / 4)
		return;
	for (uint32_t h = 0; h < ih; h++) {
		float acc = 0;

		for (uint32_t d = lane; d < ihd; d += 32)
			acc += q[(size_t)h * ihd + d] * key[d];
		acc = warp_sum(acc);
		s += (wi[(size_t)r * ih + h] * wscale) * (acc > 0 ? acc : 0);
	}
	if (!lane)
		scores[(size_t)r * max_entries + j] = s;
}

/* staged keys: 32 entries of 16 float4 pieces, or 64 of 8 (each row
 * padded by one piece: a warp's rows in distinct banks) */
#define INDEX_KS (64 * 9)

/*
 * One tile of dsv4_index_scores_tiled: 32 EPT entries from n0 (< n),
 * thread (g, e) taking entries e + 32 x (x < EPT) and heads [g hpg,
 * (g+1) hpg) of the block's; each dot product in order over d, the same
 * arithmetic for any EPT.  Two entries a thread (long contexts) load each
 * query piece from shared memory once for both.
 */
template <int EPT>
static __device__ __forceinline__ void index_tile(const float4 *qs, const float *ws, float4 *ks,
						  float *part, const float *kbase, uint32_t n0,
						  uint32_t n, uint32_t ihd, uint32_t hpg,
						  float *__restrict__ out)
{
	const uint32_t P = EPT == 1 ? 16 : 8, S = P + 1, T = 32 * EPT;
	uint32_t e = threadIdx.x % 32, g = threadIdx.x / 32, np = ihd / 4;
	uint32_t ne = n - n0 < T ? n - n0 : T;
	float s[EPT];

#pragma unroll
	for (int x = 0; x < EPT; x++)
		s[x] = 0.f;
	for (uint32_t h0 = 0; h0 < hpg; h0 += 8) {
		float acc[EPT][8];

#pragma unroll
		for (int x = 0; x < EPT; x++)
#pragma unroll
			for (int i = 0; i < 8; i++)
				acc[x][i] = 0.f;
		/* the tile's keys through shared memory, P pieces a row at a
		 * time, loaded a row per P threads (a thread reading its own
		 * entry's row from global memory waited on each piece) */
		for (uint32_t c0 = 0; c0 < np; c0 += P) {
			uint32_t w = np - c0 < P ? np - c0 : P;

			__syncthreads();
			for (uint32_t t = threadIdx.x; t < T * P; t += blockDim.x) {
				const float4 *row = (const float4 *)(kbase + (size_t)(t / P) * ihd);

				if (t / P < ne && t % P < w)
					ks[(t / P) * S + t % P] = row[c0 + t % P];
			}
			__syncthreads();
			for (uint32_t u = 0; u < w; u++) {
				uint32_t d4 = c0 + u;
				float4 k[EPT];

#pragma unroll
				for (int x = 0; x < EPT; x++)
					k[x] = ks[(e + 32 * x) * S + u];
#pragma unroll
				for (int i = 0; i < 8; i++) {
					if (h0 + i < hpg) {
						float4 q = qs[(g * hpg + h0 + i) * np + d4];

#pragma unroll
						for (int x = 0; x < EPT; x++)
							acc[x][i] += q.x * k[x].x + q.y * k[x].y +
								     q.z * k[x].z + q.w * k[x].w;
					}
				}
			}
		}
#pragma unroll
		for (int x = 0; x < EPT; x++) {
			if (e + 32 * x >= ne)
				continue;
#pragma unroll
			for (int i = 0; i < 8; i++)
				if (h0 + i < hpg)
					s[x] += ws[g * hpg + h0 + i] * (acc[x][i] > 0 ? acc[x][i] : 0);
		}
	}
#pragma unroll
	for (int x = 0; x < EPT; x++)
		part[g * T + e + 32 * x] = s[x];
	__syncthreads();
	if (g == 0) {
#pragma unroll
		for (int x = 0; x < EPT; x++) {
			float t = 0;

			if (e + 32 * x >= ne)
				continue;
			for (uint32_t k = 0; k < 8; k++)
				t += part[k * T + e + 32 * x];
			out[n0 + e + 32 * x] = t;
		}
	}
}

/*
 * The same scores, tiled: grid (R, ceil(max_entries / (32 ept)), Z), 256
 * threads, ih % 8 == 0, ih * ihd <= 8192, ihd % 4 == 0, ept 1 or 2 (the
 * host checks).  Row r's queries sit in shared memory, the tile's keys
 * pass through it a few pieces of a row at a time (index_tile()); the 8
 * warps' head groups' sums meet in order.  No shuffle per head: the
 * warp-per-entry form above spends most of its time in those at long
 * contexts.  ept = 2 (long contexts): 64 entries a tile, two a thread.
 *
 * Z = 8 (ih = 64, few tiles: a row's 32 blocks left most SMs idle): block
 * z takes group z's 8 heads, a warp each, and writes the group's sum into
 * slice z of scores [Z, R, max_entries]; dsv4_topk adds the slices in
 * order, so the scores are the same as with Z = 1.
 */
FW_KERNEL void __launch_bounds__(256)
dsv4_index_scores_tiled(const float *__restrict__ qi, const float *__restrict__ wi,
			const uint64_t *__restrict__ rowtab, uint32_t L,
			const uint32_t *__restrict__ pos, uint32_t ih, uint32_t ihd, float wscale,
			float *__restrict__ scores, uint32_t max_entries, uint32_t ept)
{
	fw_pdl_enter();
	__shared__ float4 qs[8192 / 4];
	__shared__ float ws[64 * 8], part[8 * 64];
	__shared__ float4 ks[INDEX_KS];
	uint32_t r = blockIdx.x, Z = gridDim.z, n0 = blockIdx.y * 32 * ept;
	uint32_t n = (pos[r] + 1) / 4, hpg = ih / 8 / Z;
	/* the block's heads: all, or group blockIdx.z's (Z = 8) */
	uint32_t nh = ih / Z, hb = blockIdx.z * nh;
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r] + L;

	if (n0 >= n)
		return;
	for (uint32_t i = threadIdx.x; i < nh * ihd / 4; i += blockDim.x)
		qs[i] = ((const float4 *)(qi + ((size_t)r * ih + hb) * ihd))[i];
	for (uint32_t h = threadIdx.x; h < nh; h += blockDim.x)
		ws[h] = wi[(size_t)r * ih + hb + h] * wscale;
	__syncthreads();
	const float *kbase = (const float *)sl->icmp_ent + (size_t)n0 * ihd;
	float *out = scores + ((size_t)blockIdx.z * gridDim.x + r) * max_entries;

	if (ept == 2)
		index_tile<2>(qs, ws, ks, part, kbase, n0, n, ihd, hpg, out);
	else
		index_tile<1>(qs, ws, ks, part, kbase, n0, n, ihd, hpg, out);
}

/* d = A (16x32 s8) . B (32x8 s8), exact in s32 */
static __device__ __forceinline__ void mma_s8(int *d, const uint32_t *a, uint32_t b0, uint32_t b1)
{
	asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
		     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};"
		     : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
}

/* one 32-value block's mma sums @c (entries g, g + 8 by heads hc, hc + 1)
 * into the running dot products @d, scaled by the keys' steps @ska, @skb
 * and the queries' @q0, @q1 (powers of two) */
static __device__ __forceinline__ void add_block_terms(float *d, const int *c, float ska, float skb,
						       float q0, float q1)
{
	d[0] = __fadd_rn(d[0], __fmul_rn((float)c[0], __fmul_rn(ska, q0)));
	d[1] = __fadd_rn(d[1], __fmul_rn((float)c[1], __fmul_rn(ska, q1)));
	d[2] = __fadd_rn(d[2], __fmul_rn((float)c[2], __fmul_rn(skb, q0)));
	d[3] = __fadd_rn(d[3], __fmul_rn((float)c[3], __fmul_rn(skb, q1)));
}

/* every lane of a quad gets the quad's dot products of the tile's eight
 * heads, dq[k] from lane k (the shuffles do not wait on each other) */
static __device__ __forceinline__ void quad_gather(const float *d, float (*dq)[4], uint32_t lane)
{
#pragma unroll
	for (uint32_t k = 0; k < 4; k++)
#pragma unroll
		for (uint32_t j = 0; j < 4; j++)
			dq[k][j] = __shfl_sync(0xffffffffu, d[j], (lane & ~3u) | k);
}

/*
 * dsv4_index_scores_tiled's scores on the tensor cores, where queries and
 * keys lie on the FP4 grid (reference numerics): grid (R, ceil(max_entries
 * / (16 W))), 32 W threads (W <= 8 warps), ih % 8 == 0, ih <= 64, ihd % 32
 * == 0, ihd <= 128 (the host checks).  Warp w takes entries n0 + 16 w ..
 * + 16: their F32 keys become int8 codes a 32-value block (grid_codes4(),
 * the queries' came from dsv4_index_q), each block's dot products are
 * integer mma sums (exact), scaled by the two steps (powers of two) and
 * added over the blocks in order.  Products of FP4 values are exact in
 * F32, so the tiled form's F32 dot products are exact too wherever their
 * partial sums fit 24 bits (the blocks' steps within about 2^9 of each
 * other) -- then the two agree to the bit.  The heads' terms are added as
 * index_tile() adds them: in order within each of 8 head groups (a fused
 * multiply-add each, as nvcc's default contraction compiles index_tile()'s
 * s += w * relu), the groups' sums in order; a quad's four lanes hold
 * two heads each of a tile of 8, so each lane gathers the tile's eight
 * from the quad and the four add them alike.  At 128K 20.8 us a CSA
 * layer against the tiled form's 35.5; at 4K 14.8 against its eight head
 * slices' 9.1, so the host keeps it to many tiles (dsv4_index_scores_mma8,
 * below, serves the usual head counts at every length).
 */
FW_KERNEL void __launch_bounds__(256)
dsv4_index_scores_mma(const int8_t *__restrict__ q8, const float *__restrict__ qstep,
		      const float *__restrict__ wi, const uint64_t *__restrict__ rowtab, uint32_t L,
		      const uint32_t *__restrict__ pos, uint32_t ih, uint32_t ihd, float wscale,
		      float *__restrict__ scores, uint32_t max_entries)
{
	fw_pdl_enter();
	/* the row's query codes, a head a row of ihd + 16 bytes: a quad's
	 * lanes read 4 bytes of 8 heads, in 32 distinct banks */
	__shared__ __align__(16) uint32_t qs[64 * (128 + 16) / 4];
	__shared__ float ss[64 * 4], ws[64];
	uint32_t r = blockIdx.x, n = (pos[r] + 1) / 4, nw = blockDim.x / 32;
	uint32_t n0 = blockIdx.y * 16 * nw, nb = ihd / 32, stride = ihd / 4 + 4;
	uint32_t lane = threadIdx.x % 32, g = lane / 4, t = lane % 4, hpg = ih / 8;
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r] + L;

	if (n0 >= n)
		return;
	/* the codes 16 bytes a load, eight loads out at once (one warp: 512
	 * pieces; a loop of 4-byte round trips took most of the kernel) */
	const uint4 *src = (const uint4 *)(q8 + (size_t)r * ih * ihd);
	uint32_t np = ih * ihd / 16, pr = ihd / 16;

	for (uint32_t i0 = threadIdx.x; i0 < np; i0 += 8 * blockDim.x) {
		uint4 v[8];

#pragma unroll
		for (uint32_t j = 0; j < 8; j++)
			if (i0 + j * blockDim.x < np)
				v[j] = src[i0 + j * blockDim.x];
#pragma unroll
		for (uint32_t j = 0; j < 8; j++) {
			uint32_t i = i0 + j * blockDim.x;

			if (i < np)
				*(uint4 *)&qs[i / pr * stride + i % pr * 4] = v[j];
		}
	}
	for (uint32_t i = threadIdx.x; i < ih * nb; i += blockDim.x)
		ss[i] = qstep[(size_t)r * ih * nb + i];
	for (uint32_t h = threadIdx.x; h < ih; h += blockDim.x)
		ws[h] = wi[(size_t)r * ih + h] * wscale;
	__syncthreads();
	uint32_t ea = n0 + 16 * (threadIdx.x / 32) + g, eb = ea + 8;

	if (ea - g >= n)
		return;
	const float4 *ka = (const float4 *)((const float *)sl->icmp_ent + (size_t)ea * ihd);
	const float4 *kb = (const float4 *)((const float *)sl->icmp_ent + (size_t)eb * ihd);
	const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
	float4 x[4][4];
	uint32_t a[4][4];
	float ska[4], skb[4];

	/* all loads first: rows ea and eb, columns 4t.. and 16 + 4t.. of
	 * each block (the mma's A fragment) */
#pragma unroll
	for (uint32_t b = 0; b < 4; b++) {
		if (b < nb) {
			x[b][0] = ea < n ? ka[8 * b + t] : zero;
			x[b][1] = eb < n ? kb[8 * b + t] : zero;
			x[b][2] = ea < n ? ka[8 * b + 4 + t] : zero;
			x[b][3] = eb < n ? kb[8 * b + 4 + t] : zero;
		}
	}
#pragma unroll
	for (uint32_t b = 0; b < 4; b++) {
		if (b >= nb)
			continue;
		int xa = quad_step_exp(x[b][0], x[b][2]), xb = quad_step_exp(x[b][1], x[b][3]);

		ska[b] = times_pow2(1.f, xa);
		skb[b] = times_pow2(1.f, xb);
		a[b][0] = grid_codes4(x[b][0], xa);
		a[b][1] = grid_codes4(x[b][1], xb);
		a[b][2] = grid_codes4(x[b][2], xa);
		a[b][3] = grid_codes4(x[b][3], xb);
	}
	/* running sums: the group's (sa, sb) and the groups' (ta, tb) */
	float sa = 0.f, sb = 0.f, ta = 0.f, tb = 0.f;

	for (uint32_t h0 = 0; h0 < ih; h0 += 8) {
		uint32_t hq = h0 + g, hc = h0 + 2 * t;
		float d[4] = { 0.f, 0.f, 0.f, 0.f };

#pragma unroll
		for (uint32_t b = 0; b < 4; b++) {
			if (b >= nb)
				continue;
			int c[4];

			mma_s8(c, a[b], qs[hq * stride + 8 * b + t], qs[hq * stride + 8 * b + 4 + t]);
			add_block_terms(d, c, ska[b], skb[b], ss[hc * nb + b], ss[(hc + 1) * nb + b]);
		}
		/* every lane of the quad gathers the tile's eight heads and adds
		 * them in order */
		float dq[4][4];

		quad_gather(d, dq, lane);
#pragma unroll
		for (uint32_t k = 0; k < 4; k++) {
#pragma unroll
			for (uint32_t j = 0; j < 2; j++) {
				uint32_t h = h0 + 2 * k + j;
				float w = ws[h];

				sa = __fmaf_rn(w, dq[k][j] > 0 ? dq[k][j] : 0.f, sa);
				sb = __fmaf_rn(w, dq[k][2 + j] > 0 ? dq[k][2 + j] : 0.f, sb);
				if ((h + 1) % hpg == 0) {
					ta = __fadd_rn(ta, sa);
					tb = __fadd_rn(tb, sb);
					sa = sb = 0.f;
				}
			}
		}
	}
	float *out = scores + (size_t)r * max_entries;

	if (t == 0 && ea < n)
		out[ea] = ta;
	if (t == 0 && eb < n)
		out[eb] = tb;
}

/*
 * dsv4_index_scores_mma's numbers with the work spread over more warps
 * (that kernel: 16 entries and all heads a warp, every block loading its
 * keys then computing at once; ncu at 128K: 3.5 warps a scheduler, one
 * instruction every 9 cycles, DRAM at 23 %).  grid (R, ceil(max_entries /
 * (16 G))), 256 threads, G = 64 / ih entry groups of 16 a block, ih in {8,
 * 16, 32, 64}, ihd % 32 == 0, ihd <= 128 (the host checks).  The block's
 * F32 keys become codes once, into shared memory (a quad of lanes a
 * 32-value block, as dsv4_index_scores_mma forms them); then warp w takes
 * entry group w / T and head tile w % T (T = ih / 8): the tile's query
 * codes straight from global memory (L2), an mma a 32-value block, the steps and the
 * heads' terms in the same order as dsv4_index_scores_mma (so the same
 * bits), each head group's sum into shared memory (a tile holds whole
 * groups: ih / 8 heads a group divides 8); then a thread an entry adds
 * the eight groups' sums in order.
 */
#define IMMA8_CODE_STRIDE (128 + 16)	/* a row's codes, 16 bytes apart in banks */

/* keys [n0, n0 + E) (contiguous) made codes into @kc and steps into @ks:
 * thread i takes values [8 i, 8 i + 8) of each 2048, a quad a 32-value
 * block; entries from @n on as zeros */
static __device__ __forceinline__ void mma8_keys_f32(const fw_seq_layer *sl, uint32_t n0,
						     uint32_t n, uint32_t E, uint32_t ihd,
						     uint8_t *kc, float *ks)
{
	const float4 *kv = (const float4 *)((const float *)sl->icmp_ent + (size_t)n0 * ihd);
	const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);

	for (uint32_t v0 = 8 * threadIdx.x; v0 < E * ihd; v0 += 8 * blockDim.x) {
		uint32_t e = v0 / ihd, c = v0 % ihd;
		int in = n0 + e < n;
		float4 x0 = in ? kv[v0 / 4] : zero, x1 = in ? kv[v0 / 4 + 1] : zero;
		int xe = quad_step_exp(x0, x1);

		*(uint2 *)&kc[e * IMMA8_CODE_STRIDE + c] =
			make_uint2(grid_codes4(x0, xe), grid_codes4(x1, xe));
		if (c % 32 == 0)
			ks[e * 4 + c / 32] = times_pow2(1.f, xe);
	}
}

/* the same from the keys' stored codes (icmp_code, FW_ICODE_BYTES an
 * entry, the codes and steps mma8_keys_f32() forms): a word a thread,
 * 16 bytes apart in banks; entries from @n on as zero codes, step 1 */
static __device__ __forceinline__ void mma8_keys_codes(const fw_seq_layer *sl, uint32_t n0,
						       uint32_t n, uint32_t E, uint32_t ihd,
						       uint8_t *kc, float *ks)
{
	uint32_t wpe = FW_ICODE_BYTES(ihd) / 4, cw = ihd / 4;
	const uint32_t *kw = (const uint32_t *)((const uint8_t *)sl->icmp_code +
						(size_t)n0 * FW_ICODE_BYTES(ihd));

	for (uint32_t i = threadIdx.x; i < E * wpe; i += blockDim.x) {
		uint32_t e = i / wpe, c = i % wpe, in = n0 + e < n;
		uint32_t v = in ? kw[i] : 0u;

		if (c < cw)
			*(uint32_t *)&kc[e * IMMA8_CODE_STRIDE + 4 * c] = v;
		else
			ks[e * 4 + c - cw] = in ? __uint_as_float(v) : 1.f;
	}
}

/* a warp's query tile (heads h0..h0 + 8 of row r): codes as mma B
 * fragments, the steps of heads hc and hc + 1, the heads' weights */
struct mma8_tile {
	uint32_t bq[4][2];
	float q0[4], q1[4], wv[8];
};

static __device__ __forceinline__ void
mma8_load_tile(mma8_tile &q, const int8_t *__restrict__ q8, const float *__restrict__ qstep,
	       const float *__restrict__ wi, uint32_t r, uint32_t ih, uint32_t ihd, float wscale,
	       uint32_t h0, uint32_t g, uint32_t t)
{
	uint32_t nb = ihd / 32, hq = h0 + g, hc = h0 + 2 * t;
	const uint32_t *qw = (const uint32_t *)(q8 + ((size_t)r * ih + hq) * ihd);
	const float *qsr = qstep + (size_t)r * ih * nb;

#pragma unroll
	for (uint32_t b = 0; b < 4; b++) {
		if (b >= nb)
			continue;
		q.bq[b][0] = qw[8 * b + t];
		q.bq[b][1] = qw[8 * b + 4 + t];
		q.q0[b] = qsr[hc * nb + b];
		q.q1[b] = qsr[(hc + 1) * nb + b];
	}
#pragma unroll
	for (uint32_t j = 0; j < 8; j++)
		q.wv[j] = wi[(size_t)r * ih + h0 + j] * wscale;
}

/*
 * one group of E entries from n0 whose key codes and steps are in @kc and
 * @ks: the warp's tile of 16 entries from e0 and 8 heads from h0 (an mma
 * a 32-value block, the steps and head terms in dsv4_index_scores_mma's
 * order), each head group's sum into @gs; then a thread an entry adds the
 * eight groups' sums in order into out[n0 + entry]
 */
static __device__ __forceinline__ void
mma8_group(const mma8_tile &q, const uint8_t *kc, const float *ks, float *gs, uint32_t e0,
	   uint32_t h0, uint32_t lane, uint32_t nb, uint32_t hpg, uint32_t E, uint32_t n0,
	   uint32_t n, float *__restrict__ out)
{
	uint32_t g = lane / 4, t = lane % 4;
	const uint8_t *ra = kc + (e0 + g) * IMMA8_CODE_STRIDE, *rb = ra + 8 * IMMA8_CODE_STRIDE;
	uint32_t a[4][4];
	float ska[4], skb[4], d[4] = { 0.f, 0.f, 0.f, 0.f };

#pragma unroll
	for (uint32_t b = 0; b < 4; b++) {
		if (b >= nb)
			continue;
		a[b][0] = *(const uint32_t *)&ra[32 * b + 4 * t];
		a[b][1] = *(const uint32_t *)&rb[32 * b + 4 * t];
		a[b][2] = *(const uint32_t *)&ra[32 * b + 16 + 4 * t];
		a[b][3] = *(const uint32_t *)&rb[32 * b + 16 + 4 * t];
		ska[b] = ks[(e0 + g) * 4 + b];
		skb[b] = ks[(e0 + g + 8) * 4 + b];
	}
#pragma unroll
	for (uint32_t b = 0; b < 4; b++) {
		if (b >= nb)
			continue;
		int c[4];

		mma_s8(c, a[b], q.bq[b][0], q.bq[b][1]);
		add_block_terms(d, c, ska[b], skb[b], q.q0[b], q.q1[b]);
	}
	float dq[4][4], sa = 0.f, sb = 0.f;

	quad_gather(d, dq, lane);
#pragma unroll
	for (uint32_t k = 0; k < 4; k++) {
#pragma unroll
		for (uint32_t j = 0; j < 2; j++) {
			uint32_t h = h0 + 2 * k + j;

			sa = __fmaf_rn(q.wv[2 * k + j], dq[k][j] > 0 ? dq[k][j] : 0.f, sa);
			sb = __fmaf_rn(q.wv[2 * k + j], dq[k][2 + j] > 0 ? dq[k][2 + j] : 0.f, sb);
			if ((h + 1) % hpg == 0) {
				if (t == 0) {
					gs[(e0 + g) * 8 + h / hpg] = sa;
					gs[(e0 + g + 8) * 8 + h / hpg] = sb;
				}
				sa = sb = 0.f;
			}
		}
	}
	__syncthreads();
	if (threadIdx.x < E && n0 + threadIdx.x < n) {
		float ta = 0.f;

#pragma unroll
		for (uint32_t j = 0; j < 8; j++)
			ta = __fadd_rn(ta, gs[threadIdx.x * 8 + j]);
		out[n0 + threadIdx.x] = ta;
	}
}

template <bool CODES>
static __device__ __forceinline__ void
index_scores_mma8(const int8_t *__restrict__ q8, const float *__restrict__ qstep,
		  const float *__restrict__ wi, const uint64_t *__restrict__ rowtab, uint32_t L,
		  const uint32_t *__restrict__ pos, uint32_t ih, uint32_t ihd, float wscale,
		  float *__restrict__ scores, uint32_t max_entries)
{
	fw_pdl_enter();
	__shared__ __align__(16) uint8_t kc[128 * IMMA8_CODE_STRIDE];
	__shared__ float ks[128 * 4], gs[128 * 8];
	uint32_t T = ih / 8, G = 8 / T, E = 16 * G, nb = ihd / 32, hpg = ih / 8;
	uint32_t r = blockIdx.x, n = (pos[r] + 1) / 4, n0 = blockIdx.y * E;
	uint32_t lane = threadIdx.x % 32, wid = threadIdx.x / 32, g = lane / 4, t = lane % 4;
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r] + L;

	if (n0 >= n)
		return;
	if (CODES)
		mma8_keys_codes(sl, n0, n, E, ihd, kc, ks);
	else
		mma8_keys_f32(sl, n0, n, E, ihd, kc, ks);
	__syncthreads();
	uint32_t e0 = 16 * (wid / T), h0 = 8 * (wid % T);
	mma8_tile q;

	mma8_load_tile(q, q8, qstep, wi, r, ih, ihd, wscale, h0, g, t);
	mma8_group(q, kc, ks, gs, e0, h0, lane, nb, hpg, E, n0, n, scores + (size_t)r * max_entries);
}

FW_KERNEL void __launch_bounds__(256)
dsv4_index_scores_mma8(const int8_t *__restrict__ q8, const float *__restrict__ qstep,
		       const float *__restrict__ wi, const uint64_t *__restrict__ rowtab, uint32_t L,
		       const uint32_t *__restrict__ pos, uint32_t ih, uint32_t ihd, float wscale,
		       float *__restrict__ scores, uint32_t max_entries)
{
	index_scores_mma8<false>(q8, qstep, wi, rowtab, L, pos, ih, ihd, wscale, scores,
				 max_entries);
}

/* dsv4_index_scores_mma8 on the keys' stored codes (every layer's
 * icmp_code set) */
FW_KERNEL void __launch_bounds__(256)
dsv4_index_scores_mma8c(const int8_t *__restrict__ q8, const float *__restrict__ qstep,
			const float *__restrict__ wi, const uint64_t *__restrict__ rowtab, uint32_t L,
			const uint32_t *__restrict__ pos, uint32_t ih, uint32_t ihd, float wscale,
			float *__restrict__ scores, uint32_t max_entries)
{
	index_scores_mma8<true>(q8, qstep, wi, rowtab, L, pos, ih, ihd, wscale, scores,
				max_entries);
}

/*
 * dsv4_index_scores_mma8c's scores with fewer blocks that each take entry
 * groups gridDim.y apart in turn: the tile's query codes, steps and
 * weights loaded once, each word's place in shared memory found once,
 * and the next group's key codes loaded into registers while this
 * group's are multiplied.  At 128K the one-group blocks took 19 us a CSA
 * layer for 4.7 MB; this form 15 us (CUPTI, H100).  A first form that
 * divided every word's index by the words an entry in each group took
 * 21.5, instruction-bound (ncu: issue near half its peak, DRAM at 6 %).
 * The same arithmetic a group, so the same bits.  E
 * FW_ICODE_BYTES(ihd) / 4 <= 8 x 256 words a group (the host checks).
 */
#define IMMA8S_PF 8

FW_KERNEL void __launch_bounds__(256, 2)
dsv4_index_scores_mma8s(const int8_t *__restrict__ q8, const float *__restrict__ qstep,
			const float *__restrict__ wi, const uint64_t *__restrict__ rowtab, uint32_t L,
			const uint32_t *__restrict__ pos, uint32_t ih, uint32_t ihd, float wscale,
			float *__restrict__ scores, uint32_t max_entries)
{
	fw_pdl_enter();
	/* the key codes (rows IMMA8_CODE_STRIDE apart), then their steps */
	__shared__ __align__(16) uint8_t kcs[128 * IMMA8_CODE_STRIDE + 128 * 4 * 4];
	__shared__ float gs[128 * 8];
	uint8_t *kc = kcs;
	float *ks = (float *)(kcs + 128 * IMMA8_CODE_STRIDE);
	uint32_t T = ih / 8, G = 8 / T, E = 16 * G, nb = ihd / 32, hpg = ih / 8;
	uint32_t r = blockIdx.x, n = (pos[r] + 1) / 4, groups = (n + E - 1) / E;
	uint32_t lane = threadIdx.x % 32, wid = threadIdx.x / 32, g = lane / 4, t = lane % 4;
	uint32_t wpe = FW_ICODE_BYTES(ihd) / 4, cw = ihd / 4, words = E * wpe;
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r] + L;
	const uint32_t *kw = (const uint32_t *)sl->icmp_code;
	uint32_t pf[IMMA8S_PF], at[IMMA8S_PF];

	if (blockIdx.y >= groups)
		return;
	/* where each of the thread's words goes in shared memory: the same
	 * for every group (a group's words lie contiguous from n0 wpe) */
#pragma unroll
	for (uint32_t j = 0; j < IMMA8S_PF; j++) {
		uint32_t i = threadIdx.x + j * blockDim.x, e = i / wpe, c = i % wpe;

		at[j] = c < cw ? e * IMMA8_CODE_STRIDE + 4 * c :
				 128 * IMMA8_CODE_STRIDE + 4 * (e * 4 + c - cw);
	}
	/* the first group's key codes out first (words past the row's
	 * entries as zeros: zero codes and steps, scores not kept), then the
	 * query tile's */
	uint32_t lim = min(words, (n - blockIdx.y * E) * wpe);
	const uint32_t *src = kw + (size_t)blockIdx.y * E * wpe;

#pragma unroll
	for (uint32_t j = 0; j < IMMA8S_PF; j++) {
		uint32_t i = threadIdx.x + j * blockDim.x;

		pf[j] = i < lim ? src[i] : 0u;
	}
	uint32_t e0 = 16 * (wid / T), h0 = 8 * (wid % T);
	mma8_tile q;

	mma8_load_tile(q, q8, qstep, wi, r, ih, ihd, wscale, h0, g, t);

	for (uint32_t grp = blockIdx.y; grp < groups; grp += gridDim.y) {
		uint32_t n0 = grp * E, next = (grp + gridDim.y) * E;

		/* this group's codes into shared memory (the last group's
		 * readers passed the barrier before its sums) */
#pragma unroll
		for (uint32_t j = 0; j < IMMA8S_PF; j++)
			if (threadIdx.x + j * blockDim.x < words)
				*(uint32_t *)&kcs[at[j]] = pf[j];
		__syncthreads();
		/* the next group's loads out while this one is multiplied */
		lim = next < n ? min(words, (n - next) * wpe) : 0;
		src = kw + (size_t)next * wpe;
#pragma unroll
		for (uint32_t j = 0; j < IMMA8S_PF; j++) {
			uint32_t i = threadIdx.x + j * blockDim.x;

			pf[j] = i < lim ? src[i] : 0u;
		}
		mma8_group(q, kc, ks, gs, e0, h0, lane, nb, hpg, E, n0, n,
			   scores + (size_t)r * max_entries);
	}
}

/*
 * grid (n), 128 threads, ihd % 32 == 0: the indexer's keys ent [n, ihd]
 * (on the FP4 grid) as codes [n, FW_ICODE_BYTES(ihd)], as dsv4_cmp_push
 * stores them; for keys that came from the host
 */
FW_KERNEL void __launch_bounds__(128)
dsv4_icmp_codes(const float *__restrict__ ent, uint8_t *__restrict__ code, uint32_t ihd)
{
	block_grid_codes(ent + (size_t)blockIdx.x * ihd, ihd,
			 code + (size_t)blockIdx.x * FW_ICODE_BYTES(ihd));
}

static __device__ __forceinline__ uint32_t order_key(float f)
{
	uint32_t u = __float_as_uint(f == 0.f ? 0.f : f);

	return u & 0x80000000u ? ~u : u | 0x80000000u;
}

/* inclusive prefix sums of a and b across the block (blockDim.x a multiple
 * of 32, at most 1024); @wt: 64 words of shared memory */
static __device__ void block_scan2(uint32_t &a, uint32_t &b, uint32_t *wt)
{
	uint32_t lane = threadIdx.x % 32, wid = threadIdx.x / 32, nw = blockDim.x / 32;

	for (int o = 1; o < 32; o *= 2) {
		uint32_t x = __shfl_up_sync(0xffffffffu, a, o), y = __shfl_up_sync(0xffffffffu, b, o);

		if (lane >= o) {
			a += x;
			b += y;
		}
	}
	if (lane == 31) {
		wt[wid] = a;
		wt[32 + wid] = b;
	}
	__syncthreads();
	if (wid == 0) {
		uint32_t x = lane < nw ? wt[lane] : 0, y = lane < nw ? wt[32 + lane] : 0;

		for (int o = 1; o < 32; o *= 2) {
			uint32_t u = __shfl_up_sync(0xffffffffu, x, o), v = __shfl_up_sync(0xffffffffu, y, o);

			if (lane >= o) {
				x += u;
				y += v;
			}
		}
		wt[lane] = x;
		wt[32 + lane] = y;
	}
	__syncthreads();
	if (wid) {
		a += wt[wid - 1];
		b += wt[32 + wid - 1];
	}
	__syncthreads();	/* wt may be used again */
}

/*
 * The same top-k in two steps where one row has many entries (dsv4_topk's
 * one block, below, issues too little for 32768 at 128K: 55 us a CSA layer,
 * ncu IPC 1.2 on its one SM).  dsv4_topk_part: grid (R, parts), each
 * block picks the top k of its FW_TOPK_PART entries (the same rule), keys
 * and indices in index order; dsv4_topk_merge: a block a row picks the
 * top k of the parts' picks.  An entry of the row's top k is in its
 * part's top k (fewer than k entries outrank it there), and the parts'
 * picks lie in index order, so the choice and its order are the one
 * block's.  Decode (up to 8 rows) takes this path (unless
 * $DSV4_GPU_TOPK_PARTS=0): 8.3 + 8.9 us a CSA layer at 128K against 54.6.
 */

/* a row's scores as keys */
struct topk_scores {
	const float *s;
	uint32_t base;

	__device__ bool valid(uint32_t) const { return true; }
	__device__ uint32_t key(uint32_t i) const { return order_key(s[i]); }
	__device__ int32_t index(uint32_t i) const { return (int32_t)(base + i); }
};

/* a part's keys staged in shared memory (the six passes over them each
 * waited on global loads: 8.6 us a part at 128K) */
struct topk_staged {
	const uint32_t *keys;
	uint32_t base;

	__device__ bool valid(uint32_t) const { return true; }
	__device__ uint32_t key(uint32_t i) const { return keys[i]; }
	__device__ int32_t index(uint32_t i) const { return (int32_t)(base + i); }
};

/* the parts' picks, keys staged in shared memory, 0 in a slot no pick
 * fills (order_key() gives 0 only for a NaN no score is) */
struct topk_picks_staged {
	const uint32_t *keys;
	const int32_t *idx;

	__device__ bool valid(uint32_t i) const { return keys[i] != 0; }
	__device__ uint32_t key(uint32_t i) const { return keys[i]; }
	__device__ int32_t index(uint32_t i) const { return idx[i]; }
};

/* a row's parts' picks: slot i is pick i % k of part i / k */
struct topk_picks {
	const uint32_t *keys;
	const int32_t *idx;
	const uint32_t *cnt;
	uint32_t k;

	__device__ bool valid(uint32_t i) const { return i % k < cnt[i / k]; }
	__device__ uint32_t key(uint32_t i) const { return keys[i]; }
	__device__ int32_t index(uint32_t i) const { return idx[i]; }
};

/* radix select of the k-th largest key among @src's valid slots [0, n),
 * 1024 threads: sh[0] the key, sh[1] how many equal to it to take */
template <class S>
static __device__ void topk_threshold(const S &src, uint32_t n, uint32_t k, uint32_t *hist,
				      uint32_t *wt, uint32_t *sh)
{
	uint32_t t = threadIdx.x;

	if (!t) {
		sh[0] = 0;
		sh[1] = k;
	}
	for (int shift = 24; shift >= 0; shift -= 8) {
		uint32_t mask = shift == 24 ? 0 : 0xffffffffu << (shift + 8);

		for (uint32_t i = t; i < 256; i += blockDim.x)
			hist[i] = 0;
		__syncthreads();
		uint32_t prefix = sh[0];

		for (uint32_t i = t; i < n; i += blockDim.x) {
			if (!src.valid(i))
				continue;
			uint32_t kk = src.key(i);

			if ((kk & mask) == prefix)
				atomicAdd(&hist[(kk >> shift) & 255], 1u);
		}
		__syncthreads();
		uint32_t b = 255 - t, h = t < 256 ? hist[b] : 0, suf = h, unused = 0;
		uint32_t w = sh[1];

		block_scan2(suf, unused, wt);
		if (t < 256 && suf - h < w && (suf >= w || b == 0)) {
			sh[1] = w - (suf - h);
			sh[0] = prefix | b << shift;
		}
		__syncthreads();
	}
}

/* @src's valid slots above @thr and the first @need_eq equal to it (every
 * valid slot with @all) into out (and their keys into okey) in slot order */
template <class S>
static __device__ void topk_emit(const S &src, uint32_t n, uint32_t thr, uint32_t need_eq,
				 bool all, uint32_t *wt, int32_t *out, uint32_t *okey)
{
	uint32_t per = (n + blockDim.x - 1) / blockDim.x, i0 = threadIdx.x * per;
	uint32_t i1 = i0 + per < n ? i0 + per : n, gt = 0, eq = 0;

	for (uint32_t i = i0; i < i1; i++) {
		if (!src.valid(i))
			continue;
		uint32_t kk = src.key(i);

		gt += all || kk > thr;
		eq += !all && kk == thr;
	}
	uint32_t g0 = gt, e0 = eq;

	block_scan2(gt, eq, wt);	/* inclusive sums, made exclusive */
	gt -= g0;
	eq -= e0;
	for (uint32_t i = i0; i < i1; i++) {
		if (!src.valid(i))
			continue;
		uint32_t kk = src.key(i), at;

		if (all || kk > thr) {
			at = gt + (eq < need_eq ? eq : need_eq);
			gt++;
		} else if (kk == thr && eq < need_eq) {
			at = gt + eq;
			eq++;
		} else {
			continue;
		}
		out[at] = src.index(i);
		if (okey)
			okey[at] = kk;
	}
}

/* entries whose summed slices dsv4_topk keeps in shared memory (17 KB;
 * the host slices the scores only below 132 tiles of 32) */
#define TOPK_SHARED 4352

/*
 * grid R, 1024 threads.  Radix select of the k-th largest key
 * (topk_threshold()), then the chosen entries written in index order
 * (topk_emit()): all above the threshold and the lowest-indexed of those
 * equal to it.  The bin choice and the output offsets are block-wide
 * scans (one thread walking 256 bins per pass and 1024 counts took most
 * of the kernel's time).  With
 * nz > 1 the scores come in nz slices [nz, R, max_entries]
 * (dsv4_index_scores_tiled's Z), added in slice order first (into shared
 * memory, or where they do not fit into slice 0).
 */
FW_KERNEL void __launch_bounds__(1024)
dsv4_topk(float *__restrict__ scores, uint32_t max_entries,
	  const uint32_t *__restrict__ pos, uint32_t k, int32_t *__restrict__ sel,
	  uint32_t *__restrict__ nsel, uint32_t nz)
{
	fw_pdl_enter();
	__shared__ uint32_t hist[256], wt[64], sh[2];
	__shared__ float sum_sh[TOPK_SHARED];
	uint32_t r = blockIdx.x, n = (pos[r] + 1) / 4, t = threadIdx.x;
	float *s = scores + (size_t)r * max_entries;
	int32_t *out = sel + (size_t)r * k;

	if (n <= k) {
		for (uint32_t i = t; i < n; i += blockDim.x)
			out[i] = (int32_t)i;
		if (!t)
			nsel[r] = n;
		return;
	}
	if (nz > 1) {
		/* the sums stay in shared memory where they fit (few entries is
		 * why there are slices): the passes below read them there */
		size_t zs = (size_t)gridDim.x * max_entries;
		float *to = n <= TOPK_SHARED ? sum_sh : s;

		for (uint32_t i = t; i < n; i += blockDim.x) {
			float v[8], sum = 0.f;

#pragma unroll
			for (uint32_t z = 0; z < 8; z++)
				v[z] = z < nz ? s[z * zs + i] : 0.f;
#pragma unroll
			for (uint32_t z = 0; z < 8; z++)
				if (z < nz)
					sum += v[z];
			to[i] = sum;
		}
		s = to;
		__syncthreads();
	}
	struct topk_scores src = { s, 0 };

	topk_threshold(src, n, k, hist, wt, sh);
	topk_emit(src, n, sh[0], sh[1], false, wt, out, NULL);
	if (!t)
		nsel[r] = k;
}

/* grid (R, parts), 1024 threads: part b's top k of entries
 * [b FW_TOPK_PART, +FW_TOPK_PART) into picks [R, parts, k] (keys and
 * entry indices) and their count into pn [R, parts] */
FW_KERNEL void __launch_bounds__(1024)
dsv4_topk_part(const float *__restrict__ scores, uint32_t max_entries,
	       const uint32_t *__restrict__ pos, uint32_t k, uint32_t *__restrict__ pkey,
	       int32_t *__restrict__ pidx, uint32_t *__restrict__ pn)
{
	fw_pdl_enter();
	__shared__ uint32_t hist[256], wt[64], sh[2], ks[FW_TOPK_PART];
	uint32_t r = blockIdx.x, n = (pos[r] + 1) / 4, b0 = blockIdx.y * FW_TOPK_PART;
	uint32_t m = n > b0 ? (n - b0 < FW_TOPK_PART ? n - b0 : FW_TOPK_PART) : 0;
	size_t part = (size_t)r * gridDim.y + blockIdx.y;
	struct topk_scores src = { scores + (size_t)r * max_entries + b0, b0 };
	struct topk_staged st = { ks, b0 };

	if (m <= k) {
		for (uint32_t i = threadIdx.x; i < m; i += blockDim.x) {
			pkey[part * k + i] = src.key(i);
			pidx[part * k + i] = src.index(i);
		}
		if (!threadIdx.x)
			pn[part] = m;
		return;
	}
#pragma unroll 4
	for (uint32_t i = threadIdx.x; i < m; i += blockDim.x)
		ks[i] = src.key(i);
	__syncthreads();
	topk_threshold(st, m, k, hist, wt, sh);
	topk_emit(st, m, sh[0], sh[1], false, wt, pidx + part * k, pkey + part * k);
	if (!threadIdx.x)
		pn[part] = k;
}

/* grid R, 1024 threads: the top k of row r's @parts parts' picks (all of
 * them where they are k or fewer) into sel [R, k] and nsel [R] */
FW_KERNEL void __launch_bounds__(1024)
dsv4_topk_merge(const uint32_t *__restrict__ pkey, const int32_t *__restrict__ pidx,
		const uint32_t *__restrict__ pn, uint32_t parts, uint32_t k,
		int32_t *__restrict__ sel, uint32_t *__restrict__ nsel)
{
	fw_pdl_enter();
	__shared__ uint32_t hist[256], wt[64], sh[2], cnt[FW_TOPK_MAX_PARTS];
	__shared__ uint32_t ks[2 * FW_TOPK_PART];
	uint32_t r = blockIdx.x, total = 0;
	size_t at = (size_t)r * parts;

	if (parts > FW_TOPK_MAX_PARTS)	/* the host's gpu_topk_parts() keeps it */
		__trap();
	for (uint32_t i = threadIdx.x; i < parts; i += blockDim.x)
		cnt[i] = pn[at + i];
	__syncthreads();
	for (uint32_t i = 0; i < parts; i++)
		total += cnt[i];
	struct topk_picks src = { pkey + at * k, pidx + at * k, cnt, k };
	int32_t *out = sel + (size_t)r * k;

	if (total <= k) {
		topk_emit(src, parts * k, 0, 0, true, wt, out, NULL);
		if (!threadIdx.x)
			nsel[r] = total;
		return;
	}
	if (parts * k <= 2 * FW_TOPK_PART) {	/* the picks' keys in shared memory */
		struct topk_picks_staged st = { ks, pidx + at * k };

#pragma unroll 4
		for (uint32_t i = threadIdx.x; i < parts * k; i += blockDim.x)
			ks[i] = src.valid(i) ? src.key(i) : 0;
		__syncthreads();
		topk_threshold(st, parts * k, k, hist, wt, sh);
		topk_emit(st, parts * k, sh[0], sh[1], false, wt, out, NULL);
	} else {
		topk_threshold(src, parts * k, k, hist, wt, sh);
		topk_emit(src, parts * k, sh[0], sh[1], false, wt, out, NULL);
	}
	if (!threadIdx.x)
		nsel[r] = k;
}
