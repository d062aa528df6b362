// SPDX-License-Identifier: MIT
/*
 * The MoE router's arithmetic for one row by one warp: dsv4_router's
 * decode form, and decode's dsv4_experts_mma, which routes for itself
 * (one launch less between the gate and the experts).
 */
#ifndef DSV4_FW_ROUTE_CUH
#define DSV4_FW_ROUTE_CUH

#include "common.cuh"

static __device__ __forceinline__ float softplusf_(float x)
{
	return x > 20.0f ? x : log1pf(expf(x));
}

/* a gate logit's routing score, sqrt(softplus) */
static __device__ __forceinline__ float route_score(float logit)
{
	return sqrtf(softplusf_(logit));
}

/*
 * dsv4_router's work for one row by one warp (E <= 256, K <= 64): the
 * scores of the logits @s (with @keep: also written there), then the K
 * experts into idx and their weights into wts.  @hash: the row's
 * tid2eid entries (hash layers; out of range: -1), else the top K of
 * score + bias, lane l holding experts l, l + 32, ...: each pick the
 * lane's best (lower expert on ties), then the warp's, with the block
 * form's comparison.  The weights' sum is taken in pick order, as the
 * block form adds them.
 */
static __device__ void router_warp(const float *s, float *keep, uint32_t E, uint32_t K,
				   const float *bias, const int32_t *hash, float route_scale,
				   uint32_t hf, int32_t *idx, float *wts)
{
	uint32_t lane = threadIdx.x % 32, taken = 0, picks = hash ? 0 : K;
	float sv[8], key[8], sum = 0.f, s_lo = 0.f, s_hi = 0.f;
	int32_t i_lo = -1, i_hi = -1;

	if (hash) {
		int32_t v = lane < K ? hash[lane] : -1, w = lane + 32 < K ? hash[lane + 32] : -1;

		i_lo = v >= 0 && (uint32_t)v < E ? v : -1;
		i_hi = w >= 0 && (uint32_t)w < E ? w : -1;
		s_lo = i_lo >= 0 ? route_score(s[i_lo]) : 0.f;
		s_hi = i_hi >= 0 ? route_score(s[i_hi]) : 0.f;
		if (keep) {	/* (in place: every lane's reads first) */
			__syncwarp();
			for (uint32_t e = lane; e < E; e += 32)
				keep[e] = route_score(s[e]);
		}
	}
#pragma unroll
	for (int i = 0; i < 8 && !hash; i++) {
		uint32_t e = lane + 32 * i;

		sv[i] = e < E ? route_score(s[e]) : 0.f;
		key[i] = e < E ? sv[i] + (bias ? bias[e] : 0.f) : -INFINITY;
		if (e < E && keep)
			keep[e] = sv[i];
	}
	for (uint32_t j = 0; j < picks; j++) {
		float bv = -INFINITY, bs = 0.f;
		int32_t bi = -1;

#pragma unroll
		for (int i = 0; i < 8; i++) {
			uint32_t e = lane + 32 * i;

			if (e < E && !(taken >> i & 1) && (bi < 0 || key[i] > bv)) {
				bv = key[i];
				bi = (int32_t)e;
				bs = sv[i];
			}
		}
		for (int o = 16; o; o /= 2) {
			float ov = __shfl_xor_sync(0xffffffffu, bv, o);
			float os = __shfl_xor_sync(0xffffffffu, bs, o);
			int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);

			if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
				bv = ov;
				bi = oi;
				bs = os;
			}
		}
		if (bi >= 0 && (uint32_t)bi % 32 == lane)
			taken |= 1u << (bi / 32);
		/* pick j stays with lane j % 32 (registers, not a local array) */
		if (lane == j % 32 && j < 32) {
			i_lo = bi;
			s_lo = bs;
		} else if (lane == j % 32) {
			i_hi = bi;
			s_hi = bs;
		}
	}
	/* the weights' sum in pick order, as the block form adds them */
	for (uint32_t j = 0; j < K; j++) {
		int32_t i = __shfl_sync(0xffffffffu, j < 32 ? i_lo : i_hi, j % 32);
		float v = __shfl_sync(0xffffffffu, j < 32 ? s_lo : s_hi, j % 32);

		sum += i >= 0 ? v : 0;
	}
	if (hf)
		sum += 1e-20f;
	if (lane < K) {
		idx[lane] = i_lo;
		wts[lane] = i_lo >= 0 ? s_lo / sum * route_scale : 0.f;
	}
	if (lane + 32 < K) {
		idx[lane + 32] = i_hi;
		wts[lane + 32] = i_hi >= 0 ? s_hi / sum * route_scale : 0.f;
	}
}

#endif
