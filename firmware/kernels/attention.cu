// SPDX-License-Identifier: MIT
/*
 * Hybrid attention (spec §4): each query row of each head attends over the
 * sliding window (this call's rows, then the ring) and the compressed
 * entries (CSA: the indexer's top-k; HCA: all visible), with the per-head
 * sink in the denominator only, then inverse RoPE of the output.  Two
 * passes over the keys so that P rounds to BF16 against the final max as
 * the reference kernel's P does (online softmax would round differently).
 * Also the window ring's update and the compressors' state machine.
 */
#include "common.cuh"
#include "mma.cuh"
#include "kvform.cuh"

/* keys one warp reads at once (memory-level parallelism in decode, where
 * a head is one block and its warps walk hundreds of keys) */
#define KEYS_AT_ONCE 4

struct rowkeys {
	const float *kvc, *ring, *ent;
	const int32_t *sel;
	uint32_t first, nwin, ncmp, start, row0, win, hd, ratio;
};

static __device__ __forceinline__ const float *key_at(const rowkeys &k, uint32_t j)
{
	if (j < k.nwin) {
		uint32_t p = k.first + j;

		return p >= k.start ? k.kvc + (size_t)(k.row0 + p - k.start) * k.hd :
				      k.ring + (size_t)(p % k.win) * k.hd;
	}
	j -= k.nwin;
	return k.ent + (size_t)(k.ratio == 4 && k.sel ? (uint32_t)k.sel[j] : j) * k.hd;
}

/* the float4 at dim d of each of the KEYS_AT_ONCE keys (zeros for a
 * missing key, NULL) */
template <int NK = KEYS_AT_ONCE>
static __device__ __forceinline__ void keys_at_dim(const float *const *kj, uint32_t d, float4 *a)
{
#pragma unroll
	for (int u = 0; u < NK; u++)
		a[u] = kj[u] ? *(const float4 *)(kj[u] + d) : make_float4(0, 0, 0, 0);
}

static __device__ __forceinline__ float dot4(float4 a, float4 b)
{
	return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

/* row r's keys: the window (this call's rows of r's chunk, then the
 * ring), then the compressed entries (CSA: the row's top-k selection, or
 * with @gath its gathered copies; HCA: every visible one).  Returns their
 * number. */
static __device__ __forceinline__ uint32_t row_keys(rowkeys &k, const float *kvc,
						    const uint64_t *rowtab, uint32_t L, uint32_t r,
						    const uint32_t *pos, const uint32_t *cstart,
						    uint32_t ratio, const int32_t *sel,
						    const uint32_t *nsel, uint32_t topk, uint32_t win,
						    uint32_t hd, const float *gath)
{
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r] + L;
	uint32_t p = pos[r];

	k.kvc = kvc;
	k.ring = (const float *)sl->ring;
	k.ent = (const float *)sl->cmp_ent;
	k.sel = sel + (size_t)r * topk;
	if (gath && ratio == 4) {
		k.ent = gath;
		k.sel = NULL;
	}
	k.first = p + 1 > win ? p + 1 - win : 0;
	k.nwin = p - k.first + 1;
	k.ncmp = ratio == 4 ? nsel[r] : ratio ? (p + 1) / ratio : 0;
	k.row0 = cstart[r];
	k.start = pos[k.row0];
	k.win = win;
	k.hd = hd;
	k.ratio = ratio;
	return k.nwin + k.ncmp;
}

/*
 * grid (R, H), 256 threads, dynamic shared memory (9 hd + keys) floats.
 * q [R, H*hd]; kvc [R, hd] this call's rows; row r's chunk starts at row
 * cstart[r]; rowtab[r] -> the sequence's fw_seq_layer array.  Row r is
 * r0 + blockIdx.x; with @gath (CSA layers whose entries live in host
 * memory) row r's selected entries are gath [r - r0, topk, hd], gathered
 * into GPU memory by dsv4_gather_entries, instead of entries[sel[j]].
 */
FW_KERNEL void __launch_bounds__(256, 3)
dsv4_attention(const float *__restrict__ q, const float *__restrict__ kvc,
	       const uint64_t *__restrict__ rowtab, uint32_t L, const uint32_t *__restrict__ pos,
	       const uint32_t *__restrict__ cstart, uint32_t ratio, const int32_t *__restrict__ sel,
	       const uint32_t *__restrict__ nsel, uint32_t topk, uint32_t win, uint32_t hd,
	       uint32_t rd, const float *__restrict__ freqs, const float *__restrict__ sink,
	       uint32_t reference, float *__restrict__ o, uint32_t r0,
	       const float *__restrict__ gath)
{
	extern __shared__ float sm[];
	uint32_t r = r0 + blockIdx.x, h = blockIdx.y, H = gridDim.y, p = pos[r];
	uint32_t lane = threadIdx.x % 32, wid = threadIdx.x / 32, nw = blockDim.x / 32;
	float *qs = sm, *sc = sm + hd;
	rowkeys k;
	uint32_t n = row_keys(k, kvc, rowtab, L, r, pos, cstart, ratio, sel, nsel, topk, win, hd,
			      gath ? gath + (size_t)blockIdx.x * topk * hd : NULL);
	float scale = 1.0f / sqrtf((float)hd);

	for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x)
		qs[d] = q[((size_t)r * H + h) * hd + d];
	__syncthreads();
	/* scores: a warp per key, KEYS_AT_ONCE keys of a warp in flight
	 * together (one at a time, each waited out a whole L2 latency); each
	 * key's sum is formed as with one key at a time */
	float mx = -INFINITY;

	for (uint32_t j0 = wid; j0 < n; j0 += KEYS_AT_ONCE * nw) {
		const float *kj[KEYS_AT_ONCE];
		float acc[KEYS_AT_ONCE];

#pragma unroll
		for (int u = 0; u < KEYS_AT_ONCE; u++) {
			uint32_t j = j0 + u * nw;

			kj[u] = j < n ? key_at(k, j) : NULL;
			acc[u] = 0.f;
		}
		for (uint32_t d = lane * 4; d < hd; d += 128) {
			float4 b = *(const float4 *)(qs + d), a[KEYS_AT_ONCE];

			keys_at_dim(kj, d, a);
#pragma unroll
			for (int u = 0; u < KEYS_AT_ONCE; u++)
				acc[u] += dot4(a[u], b);
		}
#pragma unroll
		for (int u = 0; u < KEYS_AT_ONCE; u++) {
			uint32_t j = j0 + u * nw;
			float v = warp_sum(acc[u]) * scale;

			if (j < n) {
				if (!lane)
					sc[j] = v;
				mx = fmaxf(mx, v);
			}
		}
	}
	mx = block_max(mx);
	float den = 0;

	for (uint32_t j = threadIdx.x; j < n; j += blockDim.x) {
		float e = expf(sc[j] - mx);

		den += e;
		sc[j] = reference ? __bfloat162float(__float2bfloat16_rn(e)) : e;
	}
	den = block_sum(den) + expf(sink[h] - mx);
	__syncthreads();
	/* P.V: warps over keys (each key read once, coalesced), lanes over
	 * dims; the warps' partial sums meet in shared memory */
	float *part = sc + n;	/* [nw, hd] after the scores */
	float acc[32];

#pragma unroll
	for (int i = 0; i < 32; i++)
		acc[i] = 0.f;
	for (uint32_t j0 = wid; j0 < n; j0 += KEYS_AT_ONCE * nw) {
		const float *kj[KEYS_AT_ONCE];
		float pj[KEYS_AT_ONCE];

#pragma unroll
		for (int u = 0; u < KEYS_AT_ONCE; u++) {
			uint32_t j = j0 + u * nw;

			kj[u] = j < n ? key_at(k, j) : NULL;
			pj[u] = j < n ? sc[j] : 0.f;
		}
#pragma unroll
		for (int i = 0; i < 8; i++) {
			uint32_t d = lane * 4 + 128 * i;

			if (d < hd) {
				float4 v[KEYS_AT_ONCE];

				keys_at_dim(kj, d, v);
				/* in key order, as one key at a time */
#pragma unroll
				for (int u = 0; u < KEYS_AT_ONCE; u++) {
					if (!kj[u])
						break;
					acc[4 * i] += pj[u] * v[u].x;
					acc[4 * i + 1] += pj[u] * v[u].y;
					acc[4 * i + 2] += pj[u] * v[u].z;
					acc[4 * i + 3] += pj[u] * v[u].w;
				}
			}
		}
	}
#pragma unroll
	for (int i = 0; i < 8; i++) {
		uint32_t d = lane * 4 + 128 * i;

		if (d < hd)
			for (int e = 0; e < 4; e++)
				part[(size_t)wid * hd + d + e] = acc[4 * i + e];
	}
	__syncthreads();
	for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
		float sum = 0;

		for (uint32_t w = 0; w < nw; w++)
			sum += part[(size_t)w * hd + d];
		qs[d] = sum / den;
	}
	__syncthreads();
	block_rope(qs + hd - rd, freqs, rd, p, 1);
	for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x)
		o[((size_t)r * H + h) * hd + d] = qs[d];
}

/*
 * Decode attention split over the keys.  With one row (or a few) the
 * kernel above is H blocks on as many SMs, each re-reading the row's one
 * shared key set for its head, twice.  Here a block takes a range of the
 * keys for FW_SPLIT_HEADS heads: every key is read once per head group and
 * S ranges spread the rows over the GPU.  Three steps: scores (and each
 * range's max), exp and P.V per range against the row's max over every
 * range (so P rounds to BF16 against the final max, as in the kernel
 * above), then the ranges' sums added in range order, divided by the
 * denominator with the sink, and inverse-roped.
 *
 * Common arguments as dsv4_attention's; grid (S, ceil(H / FW_SPLIT_HEADS),
 * rows) for the first two, row r0 + blockIdx.z; range c of n keys is
 * [c C, (c + 1) C) with C = ceil(n / S).  Scratch: sc [rows, H, ld]
 * scores, cmax [rows, H, S], part [rows, H, S, hd], pden [rows, H, S].
 */

/* dsv4_head_prep without a norm weight or FP8 grid, by one warp: v
 * RMS-normed (sum of squares in double, so its order does not show), then
 * RoPE on its last rd values at @p */
static __device__ __forceinline__ void warp_head_prep(float *v, uint32_t hd, uint32_t rd,
						      float eps, uint32_t p, const float *freqs)
{
	uint32_t lane = threadIdx.x % 32;
	float f0 = lane < rd / 2 ? freqs[lane] : 0.f;	/* (before the norm's wait) */
	double ss = 0;

	for (uint32_t d = lane; d < hd; d += 32)
		ss += (double)v[d] * v[d];
	ss = warp_sum(ss);
	float rn = 1.0f / sqrtf((float)(ss / hd) + eps);

	for (uint32_t d = lane; d < hd; d += 32)
		v[d] = v[d] * rn;
	__syncwarp();
	for (uint32_t i = lane; i < rd / 2; i += 32)
		rope_pair(v + hd - rd, i, p, i == lane ? f0 : freqs[i], 0);
	__syncwarp();
}

/*
 * The sums of 32 values across the warp, lane l getting value l's in t[0]:
 * each step keeps half the values and trades the other half with the lane
 * O apart (31 shuffles for all 32, not 5 each).  Each value's sum pairs
 * its lanes as warp_sum's butterfly does, so it is the same to the bit.
 */
template <int O>
static __device__ __forceinline__ void warp_sum32(float (&t)[32], uint32_t lane)
{
	bool up = lane & O;

#pragma unroll
	for (int k = 0; k < O; k++) {
		float send = up ? t[k] : t[k + O], keep = up ? t[k + O] : t[k];

		t[k] = keep + __shfl_xor_sync(0xffffffffu, send, O);
	}
	if constexpr (O > 1)
		warp_sum32<O / 2>(t, lane);
}

static_assert(KEYS_AT_ONCE * FW_SPLIT_HEADS == 32, "dsv4_attn_scores: a key and head a lane");

/* what one step of the split attention wrote for the next: read as any
 * load in the step's own kernel (the kernel boundary orders them), past
 * L1 in dsv4_attn_fused (other blocks wrote it in the same launch) */
template <bool CG>
static __device__ __forceinline__ float step_ld(const float *p)
{
	return CG ? __ldcg(p) : *p;
}

/* dsv4_attn_scores' range c of S, head group hg, row r0 + i */
template <bool CG>
static __device__ __forceinline__ void
attn_scores_range(const float *__restrict__ q, const float *__restrict__ kvc,
		  const uint64_t *__restrict__ rowtab, uint32_t L, const uint32_t *__restrict__ pos,
		  const uint32_t *__restrict__ cstart, uint32_t ratio, const int32_t *__restrict__ sel,
		  const uint32_t *__restrict__ nsel, uint32_t topk, uint32_t win, uint32_t hd,
		  uint32_t H, uint32_t r0, const float *__restrict__ gath, float *sc, uint32_t ld,
		  float *cmax, uint32_t qprep, uint32_t rd, const float *__restrict__ freqs, float eps,
		  uint32_t c, uint32_t S, uint32_t hg, uint32_t i)

{
	__shared__ __align__(16) float qs[FW_SPLIT_HEADS * 512];
	__shared__ float wmax[8][FW_SPLIT_HEADS];
	uint32_t r = r0 + i, h0 = hg * FW_SPLIT_HEADS;
	uint32_t nh = H - h0 < FW_SPLIT_HEADS ? H - h0 : FW_SPLIT_HEADS;
	uint32_t lane = threadIdx.x % 32, wid = threadIdx.x / 32, nw = blockDim.x / 32;
	const float4 *qg = (const float4 *)(q + ((size_t)r * H + h0) * hd);

	/* the group's heads are adjacent in q: their loads first, together
	 * (they need nothing; row_keys' are a chain) */
#pragma unroll 4
	for (uint32_t t = threadIdx.x; t < nh * hd / 4; t += blockDim.x)
		((float4 *)qs)[t] = qg[t];
	rowkeys k;
	uint32_t n = row_keys(k, kvc, rowtab, L, r, pos, cstart, ratio, sel, nsel, topk, win, hd,
			      gath ? gath + (size_t)i * topk * hd : NULL);
	uint32_t C = (n + S - 1) / S, j0 = c * C, j1 = j0 + C < n ? j0 + C : n;
	float scale = 1.0f / sqrtf((float)hd), mx = -INFINITY;

	/* the warp's first keys on their way from memory into L2 while q
	 * comes (and is prepared): lpk lines of 128 bytes a key */
	for (uint32_t l = lane, lpk = (hd + 31) / 32; l < KEYS_AT_ONCE * lpk; l += 32) {
		uint32_t j = j0 + wid + l / lpk * nw;

		if (j < j1)
			asm volatile("prefetch.global.L2 [%0];" ::"l"(key_at(k, j) + l % lpk * 32));
	}
	__syncthreads();
	if (qprep) {	/* q as wq_b left it: dsv4_head_prep's steps, a warp a head */
		for (uint32_t h = wid; h < nh; h += nw)
			warp_head_prep(qs + h * hd, hd, rd, eps, pos[r], freqs);
		__syncthreads();
	}
	/* a warp per key, KEYS_AT_ONCE keys in flight, each key read once for
	 * all the group's heads; each sum formed as in dsv4_attention */
	for (uint32_t jb = j0 + wid; jb < j1; jb += KEYS_AT_ONCE * nw) {
		const float *kj[KEYS_AT_ONCE];
		float acc[KEYS_AT_ONCE][FW_SPLIT_HEADS];

#pragma unroll
		for (int u = 0; u < KEYS_AT_ONCE; u++) {
			uint32_t j = jb + u * nw;

			kj[u] = j < j1 ? key_at(k, j) : NULL;
#pragma unroll
			for (int h = 0; h < FW_SPLIT_HEADS; h++)
				acc[u][h] = 0.f;
		}
		for (uint32_t d = lane * 4; d < hd; d += 128) {
			float4 a[KEYS_AT_ONCE];

			keys_at_dim(kj, d, a);
#pragma unroll
			for (int h = 0; h < FW_SPLIT_HEADS; h++) {
				if (h >= nh)
					break;
				float4 b = *(const float4 *)(qs + h * hd + d);

#pragma unroll
				for (int u = 0; u < KEYS_AT_ONCE; u++)
					acc[u][h] += dot4(a[u], b);
			}
		}
		/* lane u FW_SPLIT_HEADS + h gets key u's sum for head h */
		{
			uint32_t u = lane / FW_SPLIT_HEADS, h = lane % FW_SPLIT_HEADS;
			uint32_t j = jb + u * nw;
			float t[32], v, m;

#pragma unroll
			for (int x = 0; x < 32; x++)
				t[x] = acc[x / FW_SPLIT_HEADS][x % FW_SPLIT_HEADS];
			warp_sum32<16>(t, lane);
			v = t[0] * scale;

			if (j < j1 && h < nh)
				sc[((size_t)i * H + h0 + h) * ld + j] = v;
			m = j < j1 && h < nh ? v : -INFINITY;
			/* the head's max over the four keys: lanes h, h + 8, h + 16, h + 24 */
			m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, FW_SPLIT_HEADS));
			m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2 * FW_SPLIT_HEADS));
			mx = fmaxf(mx, m);
		}
	}
	if (lane < FW_SPLIT_HEADS)
		wmax[wid][lane] = mx;
	__syncthreads();
	if (threadIdx.x < nh) {
		float m = -INFINITY;

		for (uint32_t w = 0; w < nw; w++)
			m = fmaxf(m, wmax[w][threadIdx.x]);
		cmax[((size_t)i * H + h0 + threadIdx.x) * S + c] = m;
	}
}

FW_KERNEL void __launch_bounds__(256)
dsv4_attn_scores(const float *__restrict__ q, const float *__restrict__ kvc,
		 const uint64_t *__restrict__ rowtab, uint32_t L, const uint32_t *__restrict__ pos,
		 const uint32_t *__restrict__ cstart, uint32_t ratio,
		 const int32_t *__restrict__ sel, const uint32_t *__restrict__ nsel, uint32_t topk,
		 uint32_t win, uint32_t hd, uint32_t H, uint32_t r0, const float *__restrict__ gath,
		 float *__restrict__ sc, uint32_t ld, float *__restrict__ cmax, uint32_t qprep,
		 uint32_t rd, const float *__restrict__ freqs, float eps)
{
	fw_pdl_enter();
	attn_scores_range<false>(q, kvc, rowtab, L, pos, cstart, ratio, sel, nsel, topk, win, hd, H,
				 r0, gath, sc, ld, cmax, qprep, rd, freqs, eps, blockIdx.x, gridDim.x,
				 blockIdx.y, blockIdx.z);
}

/* keys dsv4_attn_pv's warps take at once (each adds them to its sums in
 * key order, so any count gives the same sums) */
#define PV_KEYS 8
/* float4s of a chunk of PV_KEYS keys (head_dim <= 512) a thread of 256
 * loads (the shared-key form) */
#define PV_LOADS (PV_KEYS * 128 / 256)

/* this thread's float4s of keys [jb, jb + PV_KEYS) (< j1), laid out
 * [key][hd / 4] in the order of the thread's slots (zeros past j1) */
static __device__ __forceinline__ void pv_chunk_load(const rowkeys &k, uint32_t jb, uint32_t j1,
						     uint32_t hd, float4 *nxt)
{
	uint32_t q4 = hd / 4;

#pragma unroll
	for (int l = 0; l < PV_LOADS; l++) {
		uint32_t at = threadIdx.x + l * 256, u = at / q4;

		nxt[l] = u < PV_KEYS && jb + u < j1 ? ((const float4 *)key_at(k, jb + u))[at % q4] :
						      make_float4(0, 0, 0, 0);
	}
}

/* the row's max for head h: over every range's (S <= FW_SPLIT_RANGES) */
template <bool CG>
static __device__ __forceinline__ float split_max(const float *cmax, uint32_t S)
{
	uint32_t lane = threadIdx.x % 32;

	return warp_max(lane < S ? step_ld<CG>(cmax + lane) : -INFINITY);
}

/* a warp per head of the group, lanes over dims (hd <= 512), the range's
 * keys in order, PV_KEYS in flight: range c of S, head group hg, row
 * r0 + i.  SK: each chunk of PV_KEYS keys read once into shared memory for
 * the group's heads, the next chunk's loads in flight while it is added
 * (the plain form has each warp read every key for its head: 8x the L2
 * reads, 84 MB a CSA layer and 150 MB an HCA layer at 128K, which the
 * CUPTI timeline puts at L2's bandwidth); the same sums either way */
template <bool CG, bool SK>
static __device__ __forceinline__ void
attn_pv_range(const float *__restrict__ kvc, const uint64_t *__restrict__ rowtab, uint32_t L,
	      const uint32_t *__restrict__ pos, const uint32_t *__restrict__ cstart, uint32_t ratio,
	      const int32_t *__restrict__ sel, const uint32_t *__restrict__ nsel, uint32_t topk,
	      uint32_t win, uint32_t hd, uint32_t H, uint32_t r0, const float *__restrict__ gath,
	      const float *sc, uint32_t ld, const float *cmax, uint32_t reference, float *part,
	      float *pden, uint32_t c, uint32_t S, uint32_t hg, uint32_t i)
{
	uint32_t r = r0 + i;
	uint32_t lane = threadIdx.x % 32, h = hg * FW_SPLIT_HEADS + threadIdx.x / 32;
	rowkeys k;
	/* (SK) the chunk's keys */
	__shared__ __align__(16) float4 kvs[SK ? PV_KEYS * 128 : 1];
	float4 nxt[SK ? PV_LOADS : 1];
	/* (with SK a warp without a head loads its part of the keys all the
	 * same) */
	bool mine = threadIdx.x / 32 < FW_SPLIT_HEADS && h < H;

	if (!SK && !mine)
		return;
	uint32_t n = row_keys(k, kvc, rowtab, L, r, pos, cstart, ratio, sel, nsel, topk, win, hd,
			      gath ? gath + (size_t)i * topk * hd : NULL);
	uint32_t C = (n + S - 1) / S, j0 = c * C, j1 = j0 + C < n ? j0 + C : n;
	size_t rh = (size_t)i * H + (mine ? h : hg * FW_SPLIT_HEADS);
	const float *srow = sc + rh * ld;
	/* the range's first 32 keys: lane l holds key j0 + l's score (and
	 * address), loaded with the max's loads */
	uint32_t jl = j0 + lane;
	float s_l = jl < j1 ? step_ld<CG>(srow + jl) : 0.f;
	const float *k_l = !SK && jl < j1 ? key_at(k, jl) : NULL;
	float m = split_max<CG>(cmax + rh * S, S), den = 0.f, acc[16];

#pragma unroll
	for (int t = 0; t < 16; t++)
		acc[t] = 0.f;
	if (SK)
		pv_chunk_load(k, j0, j1, hd, nxt);
	for (uint32_t jb = j0; jb < j1; jb += PV_KEYS) {
		if (SK) {
			__syncthreads();	/* (the chunk before is used up) */
#pragma unroll
			for (int l = 0; l < PV_LOADS; l++)
				kvs[threadIdx.x + l * 256] = nxt[l];
			__syncthreads();
			/* the next chunk's loads out while this one is added */
			if (jb + PV_KEYS < j1)
				pv_chunk_load(k, jb + PV_KEYS, j1, hd, nxt);
			if (!mine)
				continue;
		}
		const float *kj[PV_KEYS];
		float pj[PV_KEYS];

#pragma unroll
		for (int u = 0; u < PV_KEYS; u++) {
			uint32_t j = jb + u;	/* (the same in every lane) */

			kj[u] = NULL;
			pj[u] = 0.f;
			if (j < j1) {
				float sj = j - j0 < 32 ? __shfl_sync(0xffffffffu, s_l, j - j0) :
							  step_ld<CG>(srow + j);
				float e = expf(sj - m);

				den += e;
				if (SK)
					kj[u] = (const float *)(kvs + u * (hd / 4));
				else
					kj[u] = j - j0 < 32 ?
							(const float *)__shfl_sync(
								0xffffffffu, (unsigned long long)k_l,
								j - j0) :
							key_at(k, j);
				pj[u] = reference ? __bfloat162float(__float2bfloat16_rn(e)) : e;
			}
		}
#pragma unroll
		for (int t = 0; t < 4; t++) {
			uint32_t d = lane * 4 + 128 * t;

			if (d < hd) {
				float4 v[PV_KEYS];

				keys_at_dim<PV_KEYS>(kj, d, v);
#pragma unroll
				for (int u = 0; u < PV_KEYS; u++) {
					if (!kj[u])
						break;
					acc[4 * t] += pj[u] * v[u].x;
					acc[4 * t + 1] += pj[u] * v[u].y;
					acc[4 * t + 2] += pj[u] * v[u].z;
					acc[4 * t + 3] += pj[u] * v[u].w;
				}
			}
		}
	}
	if (SK && !mine)
		return;
	float *out = part + (rh * S + c) * hd;

#pragma unroll
	for (int t = 0; t < 4; t++) {
		uint32_t d = lane * 4 + 128 * t;

		if (d < hd)
			*(float4 *)(out + d) = make_float4(acc[4 * t], acc[4 * t + 1], acc[4 * t + 2],
							   acc[4 * t + 3]);
	}
	if (!lane)
		pden[rh * S + c] = den;
}

/* dsv4_attn_pv and, with the keys through shared memory
 * ($DSV4_GPU_PV_SHARED=1), dsv4_attn_pv_sk: one signature */
#define ATTN_PV_KERNEL(name, SK)                                                                 \
	FW_KERNEL void __launch_bounds__(256)                                                    \
	name(const float *__restrict__ kvc, const uint64_t *__restrict__ rowtab, uint32_t L,     \
	     const uint32_t *__restrict__ pos, const uint32_t *__restrict__ cstart,             \
	     uint32_t ratio, const int32_t *__restrict__ sel, const uint32_t *__restrict__ nsel, \
	     uint32_t topk, uint32_t win, uint32_t hd, uint32_t H, uint32_t r0,                 \
	     const float *__restrict__ gath, const float *__restrict__ sc, uint32_t ld,         \
	     const float *__restrict__ cmax, uint32_t reference, float *__restrict__ part,      \
	     float *__restrict__ pden)                                                           \
	{                                                                                        \
		fw_pdl_enter();                                                                  \
		attn_pv_range<false, SK>(kvc, rowtab, L, pos, cstart, ratio, sel, nsel, topk,    \
					 win, hd, H, r0, gath, sc, ld, cmax, reference, part,    \
					 pden, blockIdx.x, gridDim.x, blockIdx.y, blockIdx.z);   \
	}

ATTN_PV_KERNEL(dsv4_attn_pv, false)
ATTN_PV_KERNEL(dsv4_attn_pv_sk, true)

/* grid (H, rows, slices), 128 threads: the ranges' sums in range order
 * over the denominator (with the sink), inverse RoPE, into o [R, H*hd].
 * blockIdx.z takes a slice of hd / gridDim.z dims (one block per head
 * reading all S ranges took ~8 us); the RoPE dims lie in the last slice
 * (the host checks rd <= hd / gridDim.z).  xp != 0 (one row, slices of
 * 128 dims): o also split into e4m3 parts for wo_a on the tensor cores,
 * codes into xp and scales into xps (abi.h's FW_XSPLIT layout) */
template <bool CG>
static __device__ __forceinline__ void
attn_combine_slice(const uint32_t *__restrict__ pos, const float *cmax, const float *part,
		   const float *pden, uint32_t S, uint32_t hd, uint32_t rd,
		   const float *__restrict__ freqs, const float *__restrict__ sink,
		   float *__restrict__ o, uint32_t r0, uint8_t *__restrict__ xp,
		   float *__restrict__ xps, uint32_t h, uint32_t H, uint32_t i, uint32_t z, uint32_t Z)
{
	__shared__ float x[512];
	uint32_t r = r0 + i;
	uint32_t W = hd / Z, d0 = z * W;
	size_t rh = (size_t)i * H + h;
	float m = split_max<CG>(cmax + rh * S, S), den = 0.f, v[FW_SPLIT_RANGES];

	/* S <= FW_SPLIT_RANGES (the host caps it): each sum's loads out
	 * together, then added in range order */
#pragma unroll
	for (uint32_t c = 0; c < FW_SPLIT_RANGES; c++)
		v[c] = c < S ? step_ld<CG>(pden + rh * S + c) : 0.f;
#pragma unroll
	for (uint32_t c = 0; c < FW_SPLIT_RANGES; c++)
		if (c < S)
			den += v[c];
	den += expf(sink[h] - m);
	for (uint32_t d = threadIdx.x; d < W; d += blockDim.x) {
		const float *p = part + rh * S * hd + d0 + d;
		float sum = 0.f;

#pragma unroll
		for (uint32_t c = 0; c < FW_SPLIT_RANGES; c++)
			v[c] = c < S ? step_ld<CG>(p + (size_t)c * hd) : 0.f;
#pragma unroll
		for (uint32_t c = 0; c < FW_SPLIT_RANGES; c++)
			if (c < S)
				sum += v[c];
		x[d] = sum / den;
	}
	__syncthreads();
	if (d0 + W == hd)
		block_rope(x + W - rd, freqs, rd, pos[r], 1);
	for (uint32_t d = threadIdx.x; d < W; d += blockDim.x)
		o[((size_t)r * H + h) * hd + d0 + d] = x[d];
	if (xp) {
		size_t blk = (((size_t)r * H + h) * hd + d0) / 128;

		xsplit_block(x[threadIdx.x], xp + blk * FW_XSPLIT_PARTS * 128,
			     xps + blk * FW_XSPLIT_PARTS);
	}
}

FW_KERNEL void __launch_bounds__(128)
dsv4_attn_combine(const uint32_t *__restrict__ pos, const float *__restrict__ cmax,
		  const float *__restrict__ part, const float *__restrict__ pden, uint32_t S,
		  uint32_t hd, uint32_t rd, const float *__restrict__ freqs,
		  const float *__restrict__ sink, float *__restrict__ o, uint32_t r0,
		  uint8_t *__restrict__ xp, float *__restrict__ xps)
{
	fw_pdl_enter();
	attn_combine_slice<false>(pos, cmax, part, pden, S, hd, rd, freqs, sink, o, r0, xp, xps,
				  blockIdx.x, gridDim.x, blockIdx.y, blockIdx.z, gridDim.z);
}

/*
 * dsv4_attn_scores, _pv and _combine in one launch (decode): grid (S,
 * heads / FW_SPLIT_HEADS, rows), 256 threads.  The S blocks of a head
 * group and row wait for each other (group_wait(), on their pair of
 * words in @bar) once the scores' maxima are out and again once the
 * ranges' sums are; then they take the group's Z slices of each head for
 * the combine in turn.  The same sums in the same order as the three
 * kernels: the launch only saves their two kernel boundaries.  A block
 * waits for blocks launched after it, so the host launches this only
 * where the whole grid fits on the GPU at once.  dsv4_attn_fused_sk: with
 * P.V's keys through shared memory, as dsv4_attn_pv_sk.
 */
template <bool SK>
static __device__ __forceinline__ void
attn_fused(const float *__restrict__ q, const float *__restrict__ kvc,
		const uint64_t *__restrict__ rowtab, uint32_t L, const uint32_t *__restrict__ pos,
		const uint32_t *__restrict__ cstart, uint32_t ratio, const int32_t *__restrict__ sel,
		const uint32_t *__restrict__ nsel, uint32_t topk, uint32_t win, uint32_t hd,
		uint32_t H, uint32_t r0, const float *__restrict__ gath, float *sc, uint32_t ld,
		float *cmax, uint32_t qprep, uint32_t rd, const float *__restrict__ freqs, float eps,
		uint32_t reference, float *part, float *pden, const float *__restrict__ sink,
		float *__restrict__ o, uint8_t *__restrict__ xp, float *__restrict__ xps,
		uint32_t Z, uint32_t *bar)
{
	uint32_t c = blockIdx.x, S = gridDim.x, hg = blockIdx.y, i = blockIdx.z;
	uint32_t h0 = hg * FW_SPLIT_HEADS, nh = H - h0 < FW_SPLIT_HEADS ? H - h0 : FW_SPLIT_HEADS;
	uint32_t *gbar = bar + 2 * ((size_t)i * gridDim.y + hg);

	fw_pdl_wait();
	attn_scores_range<true>(q, kvc, rowtab, L, pos, cstart, ratio, sel, nsel, topk, win, hd, H,
				r0, gath, sc, ld, cmax, qprep, rd, freqs, eps, c, S, hg, i);
	group_wait(gbar, S);
	attn_pv_range<true, SK>(kvc, rowtab, L, pos, cstart, ratio, sel, nsel, topk, win, hd, H,
				r0, gath, sc, ld, cmax, reference, part, pden, c, S, hg, i);
	group_wait(gbar, S);
	fw_pdl_launch();	/* (every block is running: the next kernel may come) */
	for (uint32_t u = c; u < nh * Z; u += S) {
		__syncthreads();	/* (the slice's shared x is the last one's) */
		attn_combine_slice<true>(pos, cmax, part, pden, S, hd, rd, freqs, sink, o, r0, xp,
					 xps, h0 + u / Z, H, i, u % Z, Z);
	}
}

/* dsv4_attn_fused and dsv4_attn_fused_sk: one signature */
#define ATTN_FUSED_KERNEL(name, SK)                                                              \
	FW_KERNEL void __launch_bounds__(256, 2)                                                 \
	name(const float *__restrict__ q, const float *__restrict__ kvc,                         \
	     const uint64_t *__restrict__ rowtab, uint32_t L, const uint32_t *__restrict__ pos,  \
	     const uint32_t *__restrict__ cstart, uint32_t ratio,                                \
	     const int32_t *__restrict__ sel, const uint32_t *__restrict__ nsel, uint32_t topk,  \
	     uint32_t win, uint32_t hd, uint32_t H, uint32_t r0, const float *__restrict__ gath, \
	     float *sc, uint32_t ld, float *cmax, uint32_t qprep, uint32_t rd,                   \
	     const float *__restrict__ freqs, float eps, uint32_t reference, float *part,        \
	     float *pden, const float *__restrict__ sink, float *__restrict__ o,                 \
	     uint8_t *__restrict__ xp, float *__restrict__ xps, uint32_t Z, uint32_t *bar)       \
	{                                                                                        \
		attn_fused<SK>(q, kvc, rowtab, L, pos, cstart, ratio, sel, nsel, topk, win, hd,  \
			       H, r0, gath, sc, ld, cmax, qprep, rd, freqs, eps, reference,      \
			       part, pden, sink, o, xp, xps, Z, bar);                            \
	}

ATTN_FUSED_KERNEL(dsv4_attn_fused, false)
ATTN_FUSED_KERNEL(dsv4_attn_fused_sk, true)

/*
 * grid (n, ceil(topk/8)), 256 threads: for rows r0 .. r0+n-1, their
 * selected CSA entries (read through the host mapping once, a warp per
 * entry) into gath [n, topk, hd], so that the heads read GPU memory.
 */
FW_KERNEL void __launch_bounds__(256)
dsv4_gather_entries(const uint64_t *__restrict__ rowtab, uint32_t L, const int32_t *__restrict__ sel,
		    const uint32_t *__restrict__ nsel, uint32_t topk, uint32_t hd, uint32_t r0,
		    float *__restrict__ gath)
{
	fw_pdl_enter();
	uint32_t r = r0 + blockIdx.x, j = blockIdx.y * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r] + L;

	if (j >= nsel[r])
		return;
	const float4 *src = (const float4 *)((const float *)sl->cmp_ent +
					     (size_t)sel[(size_t)r * topk + j] * hd);
	float4 *dst = (float4 *)(gath + ((size_t)blockIdx.x * topk + j) * hd);

	for (uint32_t d = lane; d < hd / 4; d += 32)
		dst[d] = src[d];
}

/*
 * dsv4_gather_entries for CSA entries kept as MODEL1 (in GPU or host
 * memory): each selected entry decoded into gath [n, topk, hd] as F32, the
 * values the CPU engine's kv_main_decode gives
 */
FW_KERNEL void __launch_bounds__(256)
dsv4_gather_model1(const uint64_t *__restrict__ rowtab, uint32_t L, const int32_t *__restrict__ sel,
		   const uint32_t *__restrict__ nsel, uint32_t topk, uint32_t hd, uint32_t r0,
		   float *__restrict__ gath, uint32_t rd)
{
	fw_pdl_enter();
	uint32_t r = r0 + blockIdx.x, j = blockIdx.y * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r] + L;

	if (j >= nsel[r])
		return;
	warp_model1_load((const uint8_t *)sl->cmp_ent +
				 (size_t)sel[(size_t)r * topk + j] * FW_MODEL1_BYTES(hd, rd),
			 hd, rd, gath + ((size_t)blockIdx.x * topk + j) * hd, lane);
}

/* grid R: the ring keeps the last window positions of each chunk (rows
 * earlier in a chunk than that would race for the same slot) */
FW_KERNEL void dsv4_ring_store(const float *__restrict__ kvc, const uint64_t *__restrict__ rowtab,
			       uint32_t L, const uint32_t *__restrict__ pos,
			       const uint32_t *__restrict__ clast, uint32_t win, uint32_t hd)
{
	fw_pdl_enter();
	uint32_t r = blockIdx.x;
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r] + L;
	float *ring = (float *)sl->ring + (size_t)(pos[r] % win) * hd;

	if (pos[r] + win <= clast[r])
		return;
	for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x)
		ring[d] = kvc[(size_t)r * hd + d];
}

/* the window's n slot values (kv and score) become the previous window's:
 * eight a thread loaded before any is stored, as the compiler must assume
 * each store could change a later load (kv and score may alias) */
static __device__ __forceinline__ void cmp_shift(float *kv, float *score, uint32_t n)
{
	for (uint32_t i0 = threadIdx.x; i0 < n; i0 += 8 * blockDim.x) {
		float k[8], s[8];

#pragma unroll
		for (int j = 0; j < 8; j++) {
			uint32_t i = i0 + j * blockDim.x;

			k[j] = i < n ? kv[n + i] : 0.f;
			s[j] = i < n ? score[n + i] : 0.f;
		}
#pragma unroll
		for (int j = 0; j < 8; j++) {
			uint32_t i = i0 + j * blockDim.x;

			if (i < n) {
				kv[i] = k[j];
				score[i] = s[j];
			}
		}
	}
}

/*
 * grid: one block per chunk (chunks[2c] = first row, chunks[2c+1] = rows),
 * 256 threads, rows in order.  a = wkv x, z = wgate x [R, coff*hd].  Each
 * token goes into its slot with score z + ape; when its window completes
 * the entry (softmax over slots per channel; with overlap the previous
 * window's slots give the first half of the channels) is normalized, roped
 * at the window's first position and rounded (indexer: Hadamard then FP4;
 * main: FP8 on the nope dims; PACKED with @form's FW_FORM_MODEL1: FP8 on
 * the nope dims and BF16 on the rope dims, whatever the numerics; with
 * FW_FORM_FP8_KEYS the indexer's keys also as FP8 keys keep them), and
 * stored as entry pos / ratio (the indexer's also as codes where the layer
 * has icmp_code, and PACKED: only so where it has no icmp_ent; MODEL1
 * entries of CSA layers in that layout).
 */
template <bool PACKED>
static __device__ __forceinline__ void
cmp_push(const float *__restrict__ a, const float *__restrict__ z,
	 const uint64_t *__restrict__ rowtab, uint32_t L, uint32_t indexer,
	 const uint32_t *__restrict__ pos, const uint32_t *__restrict__ chunks,
	 const float *__restrict__ ape, uint32_t ratio, uint32_t hd, uint32_t coff,
	 const float *__restrict__ normw, const float *__restrict__ freqs, uint32_t rd, float eps,
	 uint32_t reference, uint32_t form)
{
	const bool M1 = PACKED && (form & FW_FORM_MODEL1);
	const bool K8 = PACKED && (form & FW_FORM_FP8_KEYS);
	__shared__ float e[1024];
	uint32_t r0 = chunks[2 * blockIdx.x], nr = chunks[2 * blockIdx.x + 1];
	uint32_t width = coff * hd, nslots = coff * ratio;
	const fw_seq_layer *sl = (const fw_seq_layer *)rowtab[r0] + L;
	float *kv = (float *)(indexer ? sl->icmp_kv : sl->cmp_kv);
	float *score = (float *)(indexer ? sl->icmp_score : sl->cmp_score);
	float *ent = (float *)(indexer ? sl->icmp_ent : sl->cmp_ent);

	for (uint32_t r = r0; r < r0 + nr; r++) {
		uint32_t p = pos[r], slot = (coff == 2 ? ratio : 0) + p % ratio;
		const float *ap = ape + (size_t)(p % ratio) * width;

		for (uint32_t d = threadIdx.x; d < width; d += blockDim.x) {
			kv[(size_t)slot * width + d] = a[(size_t)r * width + d];
			score[(size_t)slot * width + d] = z[(size_t)r * width + d] + ap[d];
		}
		__syncthreads();
		if ((p + 1) % ratio)
			continue;
		for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
			float m = -INFINITY, sum = 0, acc = 0;

#pragma unroll 8
			for (uint32_t s = 0; s < nslots; s++) {
				uint32_t ch = coff == 2 && s >= ratio ? hd + d : d;

				m = fmaxf(m, score[(size_t)s * width + ch]);
			}
#pragma unroll 8
			for (uint32_t s = 0; s < nslots; s++) {
				uint32_t ch = coff == 2 && s >= ratio ? hd + d : d;
				float pr = expf(score[(size_t)s * width + ch] - m);

				sum += pr;
				acc += pr * kv[(size_t)s * width + ch];
			}
			e[d] = acc / sum;
		}
		__syncthreads();
		if (coff == 2)
			cmp_shift(kv, score, ratio * width);
		block_rmsnorm(e, normw, hd, eps);
		uint32_t w = p / ratio;

		block_rope(e + hd - rd, freqs, rd, w * ratio, 0);
		if (indexer) {
			block_hadamard(e, hd);
			if (reference)
				block_fakequant_fp4(e, hd);
			if (K8)	/* (no codes: the host keeps them off) */
				block_round_fp8_key(e, hd);
			if (reference && sl->icmp_code)	/* hd % 32 == 0 (the host) */
				block_grid_codes(e, hd, (uint8_t *)sl->icmp_code +
					(size_t)w * FW_ICODE_BYTES(hd));
		} else if (reference || M1) {
			block_fakequant_fp8(e, hd - rd, 64);
		}
		if (M1 && !indexer)	/* what the MODEL1 entry keeps */
			block_round_bf16(e + hd - rd, rd);
		if (M1 && !indexer && ratio == 4)
			block_model1_store(e, hd, rd, (uint8_t *)sl->cmp_ent +
				(size_t)w * FW_MODEL1_BYTES(hd, rd));
		else if (!PACKED || ent)
			for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x)
				ent[(size_t)w * hd + d] = e[d];
		__syncthreads();
	}
}

FW_KERNEL void __launch_bounds__(256)
dsv4_cmp_push(const float *__restrict__ a, const float *__restrict__ z,
	      const uint64_t *__restrict__ rowtab, uint32_t L, uint32_t indexer,
	      const uint32_t *__restrict__ pos, const uint32_t *__restrict__ chunks,
	      const float *__restrict__ ape, uint32_t ratio, uint32_t hd, uint32_t coff,
	      const float *__restrict__ normw, const float *__restrict__ freqs, uint32_t rd,
	      float eps, uint32_t reference)
{
	fw_pdl_enter();
	cmp_push<false>(a, z, rowtab, L, indexer, pos, chunks, ape, ratio, hd, coff, normw, freqs,
			rd, eps, reference, 0);
}

/*
 * dsv4_cmp_push for the packed storage forms (@form, abi.h's FW_FORM_*):
 * main entries kept as MODEL1 (--kv-main model1: CSA layers' in that
 * layout, HCA layers' F32 holding its values), the indexer's keys rounded
 * as FP8 keys (--kv-index fp8), and the keys as codes only where the
 * layer has no icmp_ent ($DSV4_GPU_KEY_CODES_ONLY=1)
 */
FW_KERNEL void __launch_bounds__(256)
dsv4_cmp_push_packed(const float *__restrict__ a, const float *__restrict__ z,
		     const uint64_t *__restrict__ rowtab, uint32_t L, uint32_t indexer,
		     const uint32_t *__restrict__ pos, const uint32_t *__restrict__ chunks,
		     const float *__restrict__ ape, uint32_t ratio, uint32_t hd, uint32_t coff,
		     const float *__restrict__ normw, const float *__restrict__ freqs, uint32_t rd,
		     float eps, uint32_t reference, uint32_t form)
{
	fw_pdl_enter();
	cmp_push<true>(a, z, rowtab, L, indexer, pos, chunks, ape, ratio, hd, coff, normw, freqs, rd,
		       eps, reference, form);
}
