// SPDX-License-Identifier: MIT
/*
 * The lightning indexer of CSA layers (spec §4.4): queries roped, Hadamard
 * rotated and put on the FP4 grid; score(entry) = sum_h w_h relu(q_h . k)
 * over the visible indexer keys; and a deterministic top-k (higher score,
 * then lower entry) returned in ascending entry order, as the CPU engine's.
 */
#include "common.cuh"

/* grid (R, heads): q head <- FP4(Hadamard(RoPE(q))) */
FW_KERNEL void dsv4_index_q(float *__restrict__ qi, uint32_t ihd, uint32_t rd,
			    const uint32_t *__restrict__ pos, const float *__restrict__ freqs,
			    uint32_t reference)
{
	fw_pdl_enter();
	float *q = qi + ((size_t)blockIdx.x * gridDim.y + blockIdx.y) * ihd;

	block_rope(q + ihd - rd, freqs, rd, pos[blockIdx.x], 0);
	block_hadamard(q, ihd);
	if (reference)
		block_fakequant_fp4(q, ihd);
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

/* entries whose summed slices dsv4_topk keeps in shared memory (17 KB;
 * the host slices the scores only below 132 tiles of 32) */
#define TOPK_SHARED 4352

/*
 * grid R, 1024 threads.  Radix select of the k-th largest key (8 bits per
 * pass), then the chosen entries written in index order: all above the
 * threshold and the lowest-indexed of those equal to it.  The bin choice
 * and the output offsets are block-wide scans (one thread walking 256
 * bins per pass and 1024 counts took most of the kernel's time).  With
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
	__shared__ uint32_t hist[256], wt[64];
	__shared__ uint32_t prefix, want;
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
	if (!t) {
		prefix = 0;
		want = k;	/* how many still to take at or above the prefix */
	}
	for (int shift = 24; shift >= 0; shift -= 8) {
		uint32_t mask = shift == 24 ? 0 : 0xffffffffu << (shift + 8);

		for (uint32_t i = t; i < 256; i += blockDim.x)
			hist[i] = 0;
		__syncthreads();
		for (uint32_t i = t; i < n; i += blockDim.x) {
			uint32_t kk = order_key(s[i]);

			if ((kk & mask) == prefix)
				atomicAdd(&hist[(kk >> shift) & 255], 1u);
		}
		__syncthreads();
		/* the highest bin b whose count from b up reaches want (else 0):
		 * thread t holds bin 255 - t's suffix sum */
		uint32_t b = 255 - t, h = t < 256 ? hist[b] : 0, suf = h, unused = 0;
		uint32_t w = want;

		block_scan2(suf, unused, wt);
		if (t < 256 && suf - h < w && (suf >= w || b == 0)) {
			want = w - (suf - h);
			prefix |= b << shift;
		}
		__syncthreads();
	}
	/* prefix is the threshold; want of the equal ones are taken */
	uint32_t per = (n + blockDim.x - 1) / blockDim.x, i0 = t * per;
	uint32_t i1 = i0 + per < n ? i0 + per : n, gt = 0, eq = 0;

	for (uint32_t i = i0; i < i1; i++) {
		uint32_t kk = order_key(s[i]);

		gt += kk > prefix;
		eq += kk == prefix;
	}
	uint32_t g0 = gt, e0 = eq, need_eq = want;

	block_scan2(gt, eq, wt);	/* inclusive sums, made exclusive */
	gt -= g0;
	eq -= e0;
	if (!t)
		nsel[r] = k;
	for (uint32_t i = i0; i < i1; i++) {
		uint32_t kk = order_key(s[i]);

		if (kk > prefix) {
			out[gt + (eq < need_eq ? eq : need_eq)] = (int32_t)i;
			gt++;
		} else if (kk == prefix && eq < need_eq) {
			out[gt + eq] = (int32_t)i;
			eq++;
		}
	}
}

/*
 * The same top-k in two steps where one row has many entries (the one
 * block above issues too little for 32768 at 128K: 55 us a CSA layer,
 * ncu IPC 1.2 on its one SM).  dsv4_topk_part: grid (R, parts), each
 * block picks the top k of its FW_TOPK_PART entries (the same rule), keys
 * and indices in index order; dsv4_topk_merge: a block a row picks the
 * top k of the parts' picks.  An entry of the row's top k is in its
 * part's top k (fewer than k entries outrank it there), and the parts'
 * picks lie in index order, so the choice and its order are the one
 * block's.  Decode (up to 8 rows) takes this path with
 * $DSV4_GPU_TOPK_PARTS=1 (not yet run on a GPU when written).
 */

/* a row's scores as keys */
struct topk_scores {
	const float *s;
	uint32_t base;

	__device__ bool valid(uint32_t) const { return true; }
	__device__ uint32_t key(uint32_t i) const { return order_key(s[i]); }
	__device__ int32_t index(uint32_t i) const { return (int32_t)(base + i); }
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

/* grid (R, parts), 1024 threads: part b's top k of entries
 * [b FW_TOPK_PART, +FW_TOPK_PART) into picks [R, parts, k] (keys and
 * entry indices) and their count into pn [R, parts] */
FW_KERNEL void __launch_bounds__(1024)
dsv4_topk_part(const float *__restrict__ scores, uint32_t max_entries,
	       const uint32_t *__restrict__ pos, uint32_t k, uint32_t *__restrict__ pkey,
	       int32_t *__restrict__ pidx, uint32_t *__restrict__ pn)
{
	fw_pdl_enter();
	__shared__ uint32_t hist[256], wt[64], sh[2];
	uint32_t r = blockIdx.x, n = (pos[r] + 1) / 4, b0 = blockIdx.y * FW_TOPK_PART;
	uint32_t m = n > b0 ? (n - b0 < FW_TOPK_PART ? n - b0 : FW_TOPK_PART) : 0;
	size_t part = (size_t)r * gridDim.y + blockIdx.y;
	struct topk_scores src = { scores + (size_t)r * max_entries + b0, b0 };

	if (m <= k) {
		for (uint32_t i = threadIdx.x; i < m; i += blockDim.x) {
			pkey[part * k + i] = src.key(i);
			pidx[part * k + i] = src.index(i);
		}
		if (!threadIdx.x)
			pn[part] = m;
		return;
	}
	topk_threshold(src, m, k, hist, wt, sh);
	topk_emit(src, m, sh[0], sh[1], false, wt, pidx + part * k, pkey + part * k);
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
	topk_threshold(src, parts * k, k, hist, wt, sh);
	topk_emit(src, parts * k, sh[0], sh[1], false, wt, out, NULL);
	if (!threadIdx.x)
		nsel[r] = k;
}
