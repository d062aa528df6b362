// SPDX-License-Identifier: MIT
/*
 * The forward pass on the GPU, step for step the CPU engine's
 * (engine/forward.c, attention.c, moe.c): embedding -> hc_mult streams ->
 * per block hc_pre+norm / attention / hc_post / hc_pre+norm / MoE /
 * hc_post -> hc_head+norm -> head.  Every step is a firmware kernel on
 * one stream; the host only launches, and waits once per call for the
 * logits (or where a hook asks to see a layer).  The MoE's experts are
 * picked on the device (router -> expert table), so a decode step has no
 * round trip.  The numerics modes match the CPU's: with reference
 * numerics the activations are put on the FP8/FP4 grids where the
 * official code quantizes them.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "../engine/engine.h"
#include "gpu.h"
#include "gpu_model.h"

/* device scratch of one call: offsets into gm->scratch */
struct bufs {
	CUdeviceptr X, mix, xn, f, post, comb, xq, qr, q, kv, o, z, ca, cz, qi, qi8, qstep, wi, scores, sel, nsel;
	CUdeviceptr pkey, pidx, pn;
	CUdeviceptr cside;	/* one row: the outputs of a layer's wside, back to back */
	CUdeviceptr logits, idx, idxg, wts, g, u, h, ye, sg, su, sh, sy, hX, hmix, hy, hlog, meta;
	CUdeviceptr pos, cstart, clast, tok, rowtab, chunks;
	CUdeviceptr order, tiles, ntiles;	/* experts sorted for the prefill GEMM */
	CUdeviceptr gath;	/* CSA entries gathered from host memory, GATH_ROWS rows */
	CUdeviceptr asc, amax, apart, aden;	/* split attention (split_attn()) */
	CUdeviceptr op, ops;	/* one row: o's e4m3 parts and their scales (woa_mmx()) */
};

struct fwd {
	struct gpu_model *gm;
	struct dsv4_model *m;
	const struct dsv4_config *c;
	const struct cu_driver *cu;
	CUresult r;
	uint32_t R, nl, nchunks, maxe, maxkeys;
	CUdeviceptr wi;		/* the indexer's head weights (side_inputs()) */
	int reference;
	int split;		/* side-stream branches allowed (decode) */
	int posted;		/* the sublayer did the mHC post step itself */
	int side_open;		/* side work since the last side_join() */
	int mhc_open;		/* a Sinkhorn on gm->mhc since the last mhc_join() */
	int pf_open;		/* an L2 prefetch on gm->pf since the last pf_join() */
	int ix_open;		/* the indexer on gm->ixs since the last fork_join() */
	/* side_inputs() left the indexer's wait to gm->ixs: its push done
	 * at gm->ix_inputs, or (icmp_in) its push too, from inputs at icmp_in */
	int icmp_deferred;
	CUdeviceptr icmp_in;
	int capturing;		/* into a graph (forward_graph()) */
	/* the last thing put on main [0], side [1], mhc [2], pf [3] and ixs
	 * [4] was a kernel (with $DSV4_GPU_PDL the next may start while it
	 * ends: launch_as()) */
	int after_kernel[5];
	float *hlog_host;	/* the logits' place in hstage (NULL: not staged) */
	CUstream main;		/* gm->main */
	CUstream cur;		/* where launches go: main, gm->side, gm->mhc, gm->pf or gm->ixs */
	struct bufs b;
	size_t used;		/* carving: bytes so far */
	/* $DSV4_GPU_PROFILE=graph: launches counted, the one numbered skip
	 * left out, and (rec) what each was */
	uint32_t nlaunch;
	int64_t skip;
	struct gpu_launch_rec *rec;
	uint32_t rec_cap;
};

/* rows whose selected CSA entries are gathered at once (spilled KV) */
#define GATH_ROWS 64

/* decode attention split over the keys (dsv4_attn_scores/pv/combine): up
 * to this many rows, in at most FW_SPLIT_RANGES key ranges of a row, heads
 * in groups of FW_SPLIT_HEADS (abi.h) */
#define SPLIT_ROWS 8

static int split_attn(const struct fwd *w)
{
	uint32_t hd = w->c->head_dim;

	return w->gm->split_attn && w->R <= SPLIT_ROWS && hd % 4 == 0 && hd <= 512 &&
	       hd >= w->c->rope_head_dim;
}

/*
 * prefill's attention by the same kernels ($DSV4_GPU_PREFILL_SPLIT=1): in
 * batches of this many rows, each with at most PREFILL_SPLIT_RANGES key
 * ranges, so that a key is read once for a head group instead of once a
 * head (dsv4_attention: a block a row and head)
 */
#define PREFILL_SPLIT_ROWS 32
#define PREFILL_SPLIT_RANGES 4

static int prefill_split(const struct fwd *w)
{
	uint32_t hd = w->c->head_dim;

	return w->gm->prefill_split && w->R > SPLIT_ROWS && hd % 4 == 0 && hd <= 512 &&
	       hd >= w->c->rope_head_dim;
}

/* key ranges per row: about 8 keys each, at most FW_SPLIT_RANGES */
static uint32_t split_ranges(const struct fwd *w)
{
	uint32_t S = (w->maxkeys + 7) / 8;

	return S < 1 ? 1 : S > FW_SPLIT_RANGES ? FW_SPLIT_RANGES : S;
}

/* prefill's ranges for @n rows of @HG head groups: about two blocks an
 * SM's worth of blocks (528 on the H100), within PREFILL_SPLIT_RANGES */
static uint32_t prefill_ranges(const struct fwd *w, uint32_t n, uint32_t HG)
{
	uint32_t S = 2 * (uint32_t)w->gm->g->sms / (HG * n), most = split_ranges(w);

	if (most > PREFILL_SPLIT_RANGES)
		most = PREFILL_SPLIT_RANGES;
	return S < 1 ? 1 : S > most ? most : S;
}

/* dsv4_attn_combine's slices of a head: the RoPE dims in the last one */
static uint32_t combine_slices(uint32_t hd, uint32_t rd)
{
	uint32_t z = 4;

	while (z > 1 && (hd % z || hd / z < rd))
		z /= 2;
	return z;
}

/* few entry tiles of dsv4_index_scores_tiled (fewer than the SMs): a
 * row's 32 blocks at 4K left most SMs idle (~19 us), so with 64 heads it
 * slices them (below) */
static int index_few_tiles(const struct fwd *w)
{
	return (uint64_t)w->R * ((w->maxe + 31) / 32) < 132;
}

/* dsv4_index_scores_mma8 (a warp a head tile of 16 entries) for what it
 * takes: 8, 16, 32 or 64 index heads ($DSV4_GPU_INDEX_MMA8=0: never) */
static int index_mma8(const struct fwd *w)
{
	uint32_t ih = w->c->index_n_heads;

	return w->gm->index_mma8 && (ih == 8 || ih == 16 || ih == 32 || ih == 64);
}

/*
 * the indexer's scores on the tensor cores (dsv4_index_scores_mma8 or
 * _mma): queries and keys on the FP4 grid (reference numerics), shapes
 * their shared memory holds; by default at every length where _mma8
 * serves the head count (4.2 us a CSA layer at 4K against the tiled
 * form's sliced 9.9-11.3), else where the tiled form has many tiles (at
 * 4K its sliced form took 9.1 us, _mma 14.8; at 128K 35.5 against 20.8)
 */
static int index_mma(const struct fwd *w)
{
	uint32_t ih = w->c->index_n_heads, ihd = w->c->index_head_dim;

	return w->gm->index_mma && w->reference && ih % 8 == 0 && ih <= 64 && ihd % 32 == 0 &&
	       ihd <= 128 && (w->gm->index_mma == 2 || index_mma8(w) || !index_few_tiles(w));
}

/*
 * dsv4_index_scores_tiled's head slices (the grid's z): 8 with few tiles
 * and 64 heads (a warp each); else 1 (and with dsv4_index_scores_mma)
 */
static uint32_t index_slices(const struct fwd *w)
{
	return !index_mma(w) && w->c->index_n_heads == 64 && index_few_tiles(w) ? 8 : 1;
}

/* dsv4_index_scores_mma's warps a block (16 entries each): the most, up
 * to 8, that still give two blocks an SM (132 SMs) */
static uint32_t index_mma_warps(const struct fwd *w)
{
	uint32_t nw = 8;

	while (nw > 1 && (uint64_t)w->R * ((w->maxe + 16 * nw - 1) / (16 * nw)) < 264)
		nw /= 2;
	return nw;
}

/* the top-k's parts a row (gpu_topk_parts()) for up to 8 rows (decode:
 * more rows' one-block launches fill the SMs already), where the scores
 * are not sliced (sliced means few entries) */
static uint32_t topk_parts(const struct fwd *w)
{
	return w->gm->topk_parts && w->R <= 8 && index_slices(w) == 1 ?
		       gpu_topk_parts(w->maxe) : 0;
}

static CUdeviceptr carve(struct fwd *w, size_t bytes)
{
	size_t at = (w->used + 255) & ~(size_t)255;

	w->used = at + bytes;
	return w->gm->scratch + at;
}

/* lays out the call's buffers (with gm->scratch 0: just the size) */
static void layout(struct fwd *w)
{
	const struct dsv4_config *c = w->c;
	size_t R = w->R, nl = w->nl ? w->nl : 1, hc = c->hc_mult, D = c->dim, F = 4;
	size_t nmix = (2 + hc) * hc, RK = R * c->n_activated_experts, I = c->moe_inter_dim;
	size_t cw = 2 * (c->head_dim > c->index_head_dim ? c->head_dim : c->index_head_dim);
	size_t Hd = (size_t)c->n_heads * c->head_dim;
	struct bufs *b = &w->b;

	w->used = 0;
	b->X = carve(w, R * hc * D * F);
	b->mix = carve(w, R * nmix * F);
	b->xn = carve(w, R * D * F);
	b->f = carve(w, R * D * F);
	b->post = carve(w, R * hc * F);
	b->comb = carve(w, R * hc * hc * F);
	b->xq = carve(w, (R > nl ? R : nl) * w->m->max_cols * F);
	/* one row: kv right after qr (wq_a and wkv as one GEMV writes both),
	 * where that keeps kv 16-byte aligned for the float4 key loads */
	int kv_after = R == 1 && c->q_lora_rank % 4 == 0;

	b->qr = carve(w, R * (c->q_lora_rank + (kv_after ? c->head_dim : 0)) * F);
	b->q = carve(w, R * Hd * F);
	b->kv = kv_after ? b->qr + c->q_lora_rank * F : carve(w, R * c->head_dim * F);
	b->o = carve(w, R * Hd * F);
	b->op = R == 1 && Hd % 128 == 0 ? carve(w, Hd * FW_XSPLIT_PARTS) : 0;
	b->ops = b->op ? carve(w, Hd / 128 * FW_XSPLIT_PARTS * F) : 0;
	b->z = carve(w, R * c->o_groups * c->o_lora_rank * F);
	b->ca = carve(w, R * cw * F);
	b->cz = carve(w, R * cw * F);
	b->qi = carve(w, R * c->index_n_heads * c->index_head_dim * F);
	b->qi8 = index_mma(w) ? carve(w, R * c->index_n_heads * c->index_head_dim) : 0;
	b->qstep = index_mma(w) ? carve(w, R * c->index_n_heads * c->index_head_dim / 32 * F) : 0;
	b->wi = carve(w, R * c->index_n_heads * F);
	/* one row: what the layer's wside GEMV writes (side_inputs()) */
	b->cside = R == 1 ? carve(w, (2 * cw + 2 * 2 * c->index_head_dim + c->index_n_heads) * F) : 0;
	b->scores = carve(w, index_slices(w) * R * w->maxe * F);
	b->sel = carve(w, R * c->index_topk * 4);
	b->nsel = carve(w, R * 4);
	b->pkey = carve(w, R * topk_parts(w) * c->index_topk * 4);
	b->pidx = carve(w, R * topk_parts(w) * c->index_topk * 4);
	b->pn = carve(w, R * topk_parts(w) * 4);
	b->logits = carve(w, R * c->n_routed_experts * F);
	b->idx = carve(w, RK * 4);
	b->idxg = carve(w, RK * 4);
	b->wts = carve(w, RK * F);
	b->g = carve(w, RK * I * F);
	b->u = carve(w, RK * I * F);
	b->h = carve(w, RK * I * F);
	b->ye = carve(w, RK * D * F);
	/* one row: su right after sg (sw1 and sw3 as one GEMV writes both) */
	b->sg = carve(w, R * I * F * (R == 1 ? 2 : 1));
	b->su = R == 1 ? b->sg + I * F : carve(w, R * I * F);
	b->sh = carve(w, R * I * F);
	b->sy = carve(w, R * D * F);
	b->hX = carve(w, nl * hc * D * F);
	b->hmix = carve(w, nl * hc * F);
	b->hy = carve(w, nl * D * F);
	b->hlog = carve(w, nl * c->vocab_size * F);
	b->order = carve(w, RK * 4);
	b->tiles = carve(w, (RK / 64 + c->n_routed_experts + 1) * 3 * 4);
	b->ntiles = carve(w, 4);
	b->gath = w->gm->kv_mem || w->gm->m1 ?
		carve(w, (R < GATH_ROWS ? R : GATH_ROWS) * c->index_topk * c->head_dim * F) : 0;
	if (split_attn(w) || prefill_split(w)) {
		int pre = !split_attn(w);
		size_t RH = (pre && R > PREFILL_SPLIT_ROWS ? PREFILL_SPLIT_ROWS : R) * c->n_heads;
		size_t S = pre ? PREFILL_SPLIT_RANGES : FW_SPLIT_RANGES;

		b->asc = carve(w, RH * w->maxkeys * F);
		b->amax = carve(w, RH * S * F);
		b->apart = carve(w, RH * S * c->head_dim * F);
		b->aden = carve(w, RH * S * F);
	}
	/* metadata, uploaded in one copy: pos, cstart, clast, tok, chunks, rowtab */
	b->meta = carve(w, R * 8 * 4 + R * 8);
	b->pos = b->meta;
	b->cstart = b->pos + R * 4;
	b->clast = b->cstart + R * 4;
	b->tok = b->clast + R * 4;
	b->chunks = b->tok + R * 4;
	b->rowtab = b->chunks + R * 8;
	b->rowtab = (b->rowtab + 7) & ~(CUdeviceptr)7;
}

static int reserve(struct fwd *w)
{
	struct gpu_model *gm = w->gm;
	CUdeviceptr keep = gm->scratch;

	gm->scratch = 0;
	layout(w);
	gm->scratch = keep;
	if (w->used > gm->scratch_cap) {
		if (gm->scratch)
			w->cu->MemFree(gm->scratch);
		gm->scratch = 0;
		gm->scratch_cap = 0;
		if (w->cu->MemAlloc(&gm->scratch, w->used))
			return -ENOMEM;
		gm->scratch_cap = w->used;
	}
	layout(w);
	return 0;
}

/*
 * Kernels launched with programmatic serialization (launch_as()): their
 * firmware reads nothing an earlier kernel wrote (and writes nothing)
 * before fw_pdl_wait().  Not dsv4_topk: one block re-reading the
 * scores, launched that way (while the scores' last blocks ran) it took
 * 88-106 us at 128K instead of 33 (CUPTI timeline, 2026-12-07).
 */
static int pdl_ready(enum gpu_kernel k)
{
	switch (k) {
	case K_EMBED: case K_HC_MIX: case K_HC_PRE: case K_HC_POST: case K_HC_HEAD:
	case K_RMSNORM: case K_HEAD_PREP: case K_QKV_PREP: case K_ACT_QUANT: case K_ROUTER:
	case K_SWIGLU: case K_MOE_COMBINE: case K_RING_STORE: case K_ATTN_SCORES:
	case K_ATTN_PV: case K_ATTN_COMBINE: case K_CMP_PUSH: case K_GATHER_ENTRIES:
	case K_INDEX_Q: case K_INDEX_SCORES_TILED: case K_INDEX_SCORES_MMA:
	case K_INDEX_SCORES_MMA8: case K_INDEX_SCORES_MMA8C:
	case K_INDEX_SCORES_MMA8S: case K_ATTN_FUSED: case K_LINEAR1_F32:
	case K_LINEAR1_BF16: case K_LINEAR1_FP8: case K_LINEAR1_FP4: case K_LINEAR1_FP8_MMA:
	case K_LINEAR1_FP8_MMX: case K_EXPERTS_MMA: case K_EXPERTS_MMA_GLU:
	case K_LINEAR1_FP8_MMA_GLU: case K_ATTN_PV_SK: case K_ATTN_FUSED_SK:
	case K_LINEAR1_FP8_MMA_LOOP: case K_CMP_PUSH_PACKED: case K_GATHER_MODEL1:
		return 1;
	default:
		return 0;
	}
}

static int stream_slot(const struct fwd *w, CUstream s)
{
	return s == w->main ? 0 : s == w->gm->side ? 1 : s == w->gm->mhc ? 2 : s == w->gm->pf ? 3 : 4;
}

/* a copy, memset or event wait went onto @s: a kernel after it depends on
 * more than the kernel before, and is launched the plain way */
static void pdl_cut(struct fwd *w, CUstream s)
{
	w->after_kernel[stream_slot(w, s)] = 0;
}

/*
 * Programmatic dependent launch (decode graphs only; $DSV4_GPU_PDL=0: off): a
 * kernel right after another on its stream is launched with programmatic
 * stream serialization, so its blocks start as the one before lets them
 * (fw_pdl_launch(): short kernels at their start, GEMVs once their weights
 * are read) and wait in fw_pdl_wait() for it to end; a GEMV on the tensor
 * cores loads its first weights before that wait.  The step's launch
 * latencies and ramps then overlap the kernels' tails.
 */
static CUresult launch_pdl(struct fwd *w, CUfunction fn, unsigned gx, unsigned gy, unsigned gz,
			   unsigned block, unsigned smem, void **args)
{
	struct cu_launch_attr attr = { .id = CU_LAUNCH_ATTR_PROGRAMMATIC_SERIALIZATION };
	struct cu_launch_config cfg = { .grid = { gx, gy, gz }, .block = { block, 1, 1 },
					.smem = smem, .stream = w->cur, .attrs = &attr,
					.nattrs = 1 };

	attr.value.programmatic_serialization_allowed = 1;
	return w->cu->LaunchKernelEx(&cfg, fn, args, NULL);
}

/* @what: the profile's bucket (the kernel, or K_COUNT + a linear shape) */
static void launch_as(struct fwd *w, enum gpu_kernel k, int what, unsigned gx, unsigned gy,
		      unsigned gz, unsigned block, unsigned smem, void **args)
{
	struct gpu_model *gm = w->gm;
	CUevent *ev = NULL;
	int pdl;

	if (w->r || !gx || !gy || !gz)
		return;
	if (w->rec && w->nlaunch < w->rec_cap)
		w->rec[w->nlaunch] = (struct gpu_launch_rec){ k, { gx, gy, gz } };
	if (w->nlaunch++ == w->skip)
		return;
	if (gm->profile && gm->prof_used < gm->prof_cap && gm->prof_ev[2 * gm->prof_used] &&
	    gm->prof_ev[2 * gm->prof_used + 1]) {
		ev = &gm->prof_ev[2 * gm->prof_used];
		gm->prof_what[gm->prof_used++] = (int16_t)what;
		w->cu->EventRecord(ev[0], w->cur);
	}
	pdl = gm->pdl && w->capturing && w->split && !gm->prof_graph && pdl_ready(k) &&
	      !(gm->pdl_skip >> k & 1) && w->after_kernel[stream_slot(w, w->cur)];
	if (pdl) {
		w->r = launch_pdl(w, gm->g->fn[k], gx, gy, gz, block, smem, args);
		/* refused (a driver that cannot capture it): the plain way from
		 * now on, for this launch too */
		if (w->r)
			gm->pdl = 0;
	}
	if (!pdl || w->r)
		w->r = w->cu->LaunchKernel(gm->g->fn[k], gx, gy, gz, block, 1, 1, smem, w->cur,
					   args, NULL);
	w->after_kernel[stream_slot(w, w->cur)] = 1;
	if (ev)
		w->cu->EventRecord(ev[1], w->cur);
}

static void launch(struct fwd *w, enum gpu_kernel k, unsigned gx, unsigned gy, unsigned gz,
		   unsigned block, unsigned smem, void **args)
{
	launch_as(w, k, k, gx, gy, gz, block, smem, args);
}

/*
 * Decode is a chain of small latency-bound kernels; branches that do not
 * depend on each other overlap on the side stream: side_begin() forks it
 * from the main stream, side_end() goes back to the main stream, and
 * side_join() makes the main stream wait for the branch.  Only for one
 * row (no shared act-quant buffer) and without the profiler.
 */
static void side_begin(struct fwd *w)
{
	if (!w->split || w->r)
		return;
	w->r = w->cu->EventRecord(w->gm->fork, w->main);
	if (!w->r)
		w->r = w->cu->StreamWaitEvent(w->gm->side, w->gm->fork, 0);
	w->cur = w->gm->side;
	pdl_cut(w, w->cur);
}

static void side_end(struct fwd *w)
{
	if (!w->split)
		return;
	w->cur = w->main;
	if (!w->r)
		w->r = w->cu->EventRecord(w->gm->join, w->gm->side);
	w->side_open = 1;
}

/* @s waits for the side stream's branch (side_join(): the main stream);
 * only after a side_end() of this forward: join as last recorded by an
 * earlier capture would be a wait across graphs, which fails the capture
 * (seen when a branch was moved so that a sublayer joined without one) */
static void side_join_on(struct fwd *w, CUstream s)
{
	if (w->split && w->side_open && !w->r)
		w->r = w->cu->StreamWaitEvent(s, w->gm->join, 0);
	pdl_cut(w, s);
	/* (another stream's wait leaves the main stream's join to come) */
	if (s == w->main)
		w->side_open = 0;
}

static void side_join(struct fwd *w)
{
	side_join_on(w, w->main);
}

/*
 * Decode's Sinkhorn (dsv4_hc_pre forming post and comb, one serial block
 * of about 20 us) needs only the sublayer's mixes and is needed only by
 * its post step: in the attention sublayer it goes on a stream of its
 * own, so that the compressors' branch on the side stream does not queue
 * behind it; mhc_join() makes the main stream wait for it before the
 * attention.  (In the MoE sublayer it stays on the side stream ahead of
 * the shared expert: see moe().)
 */
static int mhc_aside(const struct fwd *w)
{
	return w->split && w->gm->mhc_stream;
}

/* launches go to @s, forked from the main stream here (@fork) */
static void fork_to(struct fwd *w, CUstream s, CUevent fork)
{
	if (w->r)
		return;
	w->r = w->cu->EventRecord(fork, w->main);
	if (!w->r)
		w->r = w->cu->StreamWaitEvent(s, fork, 0);
	w->cur = s;
	pdl_cut(w, w->cur);
}

/* launches go to the main stream again; @join marks @s's branch end */
static void fork_end(struct fwd *w, CUstream s, CUevent join, int *open)
{
	w->cur = w->main;
	if (!w->r)
		w->r = w->cu->EventRecord(join, s);
	*open = 1;
}

/* the main stream waits for the branch (as side_join(): only after a
 * fork_end() of this forward) */
static void fork_join(struct fwd *w, CUevent join, int *open)
{
	if (!*open)
		return;
	if (!w->r)
		w->r = w->cu->StreamWaitEvent(w->main, join, 0);
	pdl_cut(w, w->main);
	*open = 0;
}

static void mhc_begin(struct fwd *w)
{
	fork_to(w, w->gm->mhc, w->gm->mhc_fork);
}

static void mhc_end(struct fwd *w)
{
	fork_end(w, w->gm->mhc, w->gm->mhc_join, &w->mhc_open);
}

static void mhc_join(struct fwd *w)
{
	fork_join(w, w->gm->mhc_join, &w->mhc_open);
}

/*
 * Decode's L2 prefetch ($DSV4_GPU_L2PF_*, off by default: an experiment
 * not yet timed): the first @pct % of W's codes pulled into L2 on gm->pf,
 * forked from the main stream here, while the kernels before W's GEMV
 * leave HBM idle; pf_join() (at the MoE's side_join(), already a cut in
 * the main stream's programmatic launches) makes the capture whole.
 */
static void l2_prefetch(struct fwd *w, const struct fw_mat *W, uint32_t pct)
{
	uint64_t row = fw_code_bytes(W->fmt, W->cols);
	uint64_t bytes = row * W->rows * pct / 100 / 16 * 16;
	CUdeviceptr at = W->data + row * W->row0;
	uint32_t nb = w->gm->l2pf_blocks, threads = nb ? 32 : 128, chunk = 64 * 1024;
	void *a[] = { &at, &bytes, &chunk, &w->gm->l2pf_last };

	if (!pct || !bytes || !w->split || w->R != 1 || !W->data || at % 16 || w->r)
		return;
	/* $DSV4_GPU_L2PF_BLOCKS: the bytes over about that many blocks of
	 * 32 (a TMA unit a block's SM): each SM's requests run one after another */
	if (nb)
		chunk = (uint32_t)((bytes + 32ull * nb - 1) / (32ull * nb) + 15) / 16 * 16;
	fork_to(w, w->gm->pf, w->gm->pf_fork);
	launch(w, K_L2_PREFETCH, (unsigned)((bytes + (uint64_t)threads * chunk - 1) /
					    ((uint64_t)threads * chunk)), 1, 1, threads, 0, a);
	fork_end(w, w->gm->pf, w->gm->pf_join, &w->pf_open);
}

static void pf_join(struct fwd *w)
{
	fork_join(w, w->gm->pf_join, &w->pf_open);
}

/* the split-K scratch of the stream launches go to (one each: a counter
 * shared by two streams' GEMVs at once would mix their slices) */
static int splitk_slot(const struct fwd *w)
{
	return w->cur == w->gm->side ? 1 : w->cur == w->gm->ixs ? 2 : 0;
}

/*
 * Decode's indexer on gm->ixs (forked after qr, beside wq_b and the
 * query's prep; the main stream joins it before the attention), unless
 * $DSV4_GPU_INDEX_ASIDE=0 or a top-k hook reads the picks in between
 */
static int index_aside(const struct fwd *w)
{
	return w->split && w->gm->index_aside && !(w->m->opt.hooks && w->m->opt.hooks->topk);
}

static int quantized(const struct fw_mat *W)
{
	return W->fmt == FW_FP8 || W->fmt == FW_FP4;
}

/* the profile bucket of a linear's shape */
static int prof_linear(struct gpu_model *gm, const struct fw_mat *W, uint32_t n, uint32_t ks)
{
	uint32_t i;

	if (!gm->profile)
		return K_LINEAR;

	for (i = 0; i < gm->n_prof_lin; i++)
		if (gm->prof_lin[i].rows == W->rows && gm->prof_lin[i].cols == W->cols &&
		    gm->prof_lin[i].fmt == W->fmt && gm->prof_lin[i].nrows == n)
			break;
	if (i == gm->n_prof_lin) {
		if (i == sizeof(gm->prof_lin) / sizeof(gm->prof_lin[0]))
			return K_LINEAR;
		gm->prof_lin[gm->n_prof_lin++] = (struct gpu_prof_lin){ W->rows, W->cols, W->fmt, n,
									ks, 0, 0 };
	}
	return K_COUNT + (int)i;
}

/* @rows rows of x (@cols wide) on the FP8 grid in b.xq (ld @cols), where
 * the official activation quant cannot ride inside the GEMV */
static CUdeviceptr act_quant_rows(struct fwd *w, CUdeviceptr x, uint32_t ldx, uint32_t cols,
				  uint32_t rows)
{
	CUdeviceptr xq = w->b.xq;
	void *a[] = { &x, &ldx, &cols, &xq, &cols };

	launch(w, K_ACT_QUANT, rows, 1, 1, 256, 0, a);
	return xq;
}

/* from this many input rows on, linears run on the tensor cores (dsv4_gemm) */
#define GEMM_MIN_ROWS 16

/* what dsv4_gemm takes: weights exact in BF16 with their scale folded in */
static int gemm_fits(const struct fw_mat *W)
{
	return (W->fmt == FW_FP4 || W->fmt == FW_BF16 || (W->fmt == FW_FP8 && !W->scale_f32)) &&
	       W->cols % 64 == 0;
}

/* whether y = W x applies the official FP8 activation quant to x: asked
 * for (@act_quant), reference numerics, FP8/FP4 weights of whole blocks */
static uint32_t takes_act_quant(const struct fwd *w, const struct fw_mat *W, int act_quant)
{
	return act_quant && w->reference && quantized(W) && W->cols % 128 == 0;
}

/*
 * dsv4_linear1_*'s column slices for one input row and few output rows, so
 * that enough blocks stream the matrix (whole 128-column slices; count
 * holds 256 row blocks).  The scratch holds 32 x 8192 partial rows, but
 * slices stop at 8192: up to 24000 was measured slower (firmware/README.md)
 */
static uint32_t splitk_slices(const struct fw_mat *W, uint32_t G, CUdeviceptr x)
{
	uint64_t grows = (uint64_t)G * W->rows;
	uint32_t ks = 1;

	if (G * ((W->rows + 31) / 32) <= 256 && x % 16 == 0) {
		/* one row block (hc_fn: 24 x 16384): more, shorter slices */
		int one = G * ((W->rows + 31) / 32) == 1;
		uint32_t most = one ? 64 : 32, least = one ? 256 : 512;

		while (ks < most && grows * ks * 2 <= 8192 && W->cols % (ks * 2 * 128) == 0 &&
		       W->cols / (ks * 2) >= least)
			ks *= 2;
	}
	return ks;
}

/*
 * The tensor-core one-row GEMVs' column slices for FP8 @W in @G groups
 * (0: none fit): whole 128-column slices of at most @most columns (their
 * x in shared memory), enough blocks to stream the matrix (about four an
 * SM), and the split-K scratch's limits
 */
static uint32_t mma_ks(const struct fw_mat *W, uint32_t G, uint32_t most)
{
	uint32_t gx = (W->rows + 63) / 64, ks = 1;

	if (W->fmt != FW_FP8 || W->cols % 128)
		return 0;
	while (W->cols / ks > most ||
	       ((uint64_t)gx * G * ks < 512 && W->cols % (ks * 2 * 128) == 0 &&
		W->cols / (ks * 2) >= 512 && ks < 32))
		ks *= 2;
	if (W->cols % (ks * 128) || W->cols / ks > most)
		return 0;
	if (ks > 1 && ((uint64_t)gx * G > 256 || (uint64_t)G * ks * W->rows > 32 * 8192))
		return 0;
	return ks;
}

/* dsv4_linear1_fp8_mma's column slices (mma_ks()): FP8 weights with the
 * act quant (aq), x 16-byte aligned */
static uint32_t mma_slices(const struct fwd *w, const struct fw_mat *W, uint32_t G,
			   CUdeviceptr x, uint32_t xgs, uint32_t aq)
{
	if (!w->gm->linear_mma || !aq || x % 16 || xgs % 4)
		return 0;
	return mma_ks(W, G, FW_MMA_MAX_COLS);
}

/*
 * dsv4_linear1_fp8_mmx's column slices for decode's wo_a (@W one group's
 * rows, @G groups; 0: it does not take it): split attention with o
 * formed a 128-dim slice a block (dsv4_attn_combine then splits o into
 * its parts), FP8 weights, slices as mma_ks() picks them but at most
 * FW_XSPLIT_MAX_COLS
 */
static uint32_t woa_mmx(const struct fwd *w, const struct fw_mat *W, uint32_t G)
{
	const struct dsv4_config *c = w->c;

	if (!w->gm->woa_mma || w->R != 1 || !split_attn(w) || !w->b.op ||
	    c->head_dim / combine_slices(c->head_dim, c->rope_head_dim) != 128)
		return 0;
	return mma_ks(W, G, FW_XSPLIT_MAX_COLS);
}

/*
 * y = W x for one row of x (decode's GEMV: dsv4_linear1_<W's format>, or
 * for FP8 weights with the act quant dsv4_linear1_fp8_mma), G groups as
 * lin_g(); aq: the act quant inside; with @hp the mHC post step on y (one
 * group, W's rows D)
 */
static void lin1(struct fwd *w, const struct fw_mat *W, uint32_t G, CUdeviceptr x, uint32_t xgs,
		 CUdeviceptr y, uint32_t ygs, uint32_t aq, const struct fw_hc_post *hp)
{
	struct fw_mat wm = *W;
	struct fw_hc_post none = { 0 }, p = hp ? *hp : none;
	uint32_t ks = splitk_slices(W, G, x), mks = mma_slices(w, W, G, x, xgs, aq);
	int on = splitk_slot(w);
	void *a[] = { &wm, &x, &y, &w->gm->splitk_part[on], &w->gm->splitk_count[on],
		      &aq, &xgs, &ygs, &p };

	if (mks) {
		launch_as(w, K_LINEAR1_FP8_MMA, prof_linear(w->gm, W, 1, mks), (W->rows + 63) / 64,
			  mks, G, 128, 0, a);
		return;
	}
	launch_as(w, (enum gpu_kernel)(K_LINEAR1_F32 + W->fmt), prof_linear(w->gm, W, 1, ks),
		  (W->rows + 31) / 32, ks, G, 256, 0, a);
}

/*
 * decode's tensor-core GEMV y = W x (act quant inside) as kernel @k, which
 * takes dsv4_linear1_fp8_mma's arguments and then @glu, each block taking
 * @per row blocks of W in turn; 0: not launched, where that GEMV does not
 * take W (the caller runs lin())
 */
static int lin1_mma_as(struct fwd *w, enum gpu_kernel k, const struct fw_mat *W, CUdeviceptr x,
		       CUdeviceptr y, uint32_t per, struct fw_glu glu)
{
	struct fw_mat wm = *W;
	struct fw_hc_post none = { 0 };
	uint32_t aq = takes_act_quant(w, W, 1), zero = 0, nrb = (W->rows + 63) / 64;
	uint32_t mks = w->R == 1 ? mma_slices(w, W, 1, x, 0, aq) : 0;
	int on = splitk_slot(w);
	void *a[] = { &wm, &x, &y, &w->gm->splitk_part[on], &w->gm->splitk_count[on],
		      &aq, &zero, &zero, &none, &glu };

	if (!mks)
		return 0;
	launch_as(w, k, prof_linear(w->gm, W, 1, mks), (nrb + per - 1) / per, mks, 1, 128, 0, a);
	return 1;
}

/* ... with the SwiGLU h of @g and @u (limit @lim) folded in
 * (dsv4_linear1_fp8_mma_glu; the shared expert's sw2 with
 * $DSV4_GPU_FUSE_GLU=1); 0: the caller runs dsv4_swiglu and the GEMV */
static int lin1_glu(struct fwd *w, const struct fw_mat *W, CUdeviceptr g, CUdeviceptr u,
		    float lim, CUdeviceptr y)
{
	struct fw_glu glu = { u, 0, lim, 0 };

	return w->gm->fuse_glu && u % 16 == 0 &&
	       lin1_mma_as(w, K_LINEAR1_FP8_MMA_GLU, W, g, y, 1, glu);
}

/* ... by dsv4_linear1_fp8_mma_loop, each block taking @per row blocks
 * (gm->wqb_loop, decode's wq_b beside the indexer) */
static int lin1_loop(struct fwd *w, const struct fw_mat *W, CUdeviceptr x, CUdeviceptr y,
		     uint32_t per)
{
	struct fw_glu none = { 0 };

	return per > 1 && lin1_mma_as(w, K_LINEAR1_FP8_MMA_LOOP, W, x, y, per, none);
}

/*
 * y[r] = W x[r] for @rows rows; act_quant: the official FP8 activation
 * quant first (reference numerics, FP8/FP4 weights).  With G > 1, G
 * groups in one launch: group g takes W's rows [g rows, (g+1) rows) on
 * x + g xgs into y + g ygs (floats), as wo_a does per head group.
 */
static void lin_g(struct fwd *w, const struct fw_mat *W, uint32_t G, CUdeviceptr x,
		  uint32_t xgs, uint32_t ldx, uint32_t rows, CUdeviceptr y, uint32_t ygs,
		  uint32_t ldy, int act_quant)
{
	struct fw_mat wm = *W;
	uint32_t gemm = rows >= GEMM_MIN_ROWS && gemm_fits(W) && ldx % 4 == 0 && x % 16 == 0 &&
			xgs % 4 == 0;
	/* the quant is fused into the one-row GEMV (decode); more rows would
	 * quantize x once per output row, so they take a quant pass first */
	uint32_t aq = takes_act_quant(w, W, act_quant);

	if (aq && (rows > 1 || ldx % 4 || x % 16 || G > 1)) {
		x = act_quant_rows(w, x, ldx, W->cols, rows);
		ldx = W->cols;
		aq = 0;
	}
	if (gemm) {
		void *a[] = { &wm, &x, &ldx, &rows, &y, &ldy, &xgs, &ygs };

		launch(w, w->gm->gemm_pipe ? K_GEMM_PIPE : K_GEMM, (W->rows + 63) / 64,
		       (rows + 63) / 64, G, 128, 0, a);
		return;
	}
	if (rows == 1) {
		lin1(w, W, G, x, xgs, y, ygs, aq, NULL);
		return;
	}
	{
		void *a[] = { &wm, &x, &ldx, &rows, &y, &ldy, &aq, &xgs, &ygs };

		launch_as(w, K_LINEAR, prof_linear(w->gm, W, rows, 1), (W->rows + 7) / 8,
			  (rows + FW_LINEAR_ROWS - 1) / FW_LINEAR_ROWS, G, 256, 0, a);
	}
}

static void lin(struct fwd *w, const struct fw_mat *W, CUdeviceptr x, uint32_t ldx,
		uint32_t rows, CUdeviceptr y, uint32_t ldy, int act_quant)
{
	lin_g(w, W, 1, x, 0, ldx, rows, y, 0, ldy, act_quant);
}

/* the mHC post step's operands for the kernels that fuse it */
static struct fw_hc_post hc_post_of(const struct fwd *w)
{
	return (struct fw_hc_post){ w->b.X, w->b.post, w->b.comb, w->c->hc_mult, w->c->dim };
}

/* whether decode's output projection @W (one row of x, D outputs) takes
 * the mHC post step (dsv4_linear1_* with hp) */
static int post_fits(const struct fwd *w, const struct fw_mat *W, CUdeviceptr x)
{
	return w->gm->fuse_mhc && w->R == 1 && x % 16 == 0 && W->rows == w->c->dim;
}

/* y = W x for one row, then the mHC post step on y (post_fits()) */
static void lin_post(struct fwd *w, const struct fw_mat *W, CUdeviceptr x, CUdeviceptr y,
		     int act_quant)
{
	struct fw_hc_post hp = hc_post_of(w);
	uint32_t aq = takes_act_quant(w, W, act_quant);

	lin1(w, W, 1, x, 0, y, 0, aq, &hp);
	w->posted = 1;
}

static CUdeviceptr layer_freqs(const struct fwd *w, uint32_t L)
{
	return w->c->compress_ratios[L] ? w->gm->freqs_cmp : w->gm->freqs_swa;
}

/* a compressor's output width: coff * hd */
static uint32_t cmp_width(const struct dsv4_config *c, uint32_t L, int indexer)
{
	uint32_t ratio = indexer ? 4 : c->compress_ratios[L];

	return (ratio == 4 ? 2 : 1) * (indexer ? c->index_head_dim : c->head_dim);
}

/* every chunk's rows through the compressor, from a = wkv x and z = wgate x */
static void cmp_push(struct fwd *w, uint32_t L, const struct gcmp *gc, int indexer,
		     CUdeviceptr ca, CUdeviceptr cz)
{
	const struct dsv4_config *c = w->c;
	uint32_t ratio = indexer ? 4 : c->compress_ratios[L], coff = ratio == 4 ? 2 : 1;
	uint32_t hd = indexer ? c->index_head_dim : c->head_dim;
	uint32_t ix = (uint32_t)indexer, rd = c->rope_head_dim, ref = (uint32_t)w->reference;
	uint32_t form = (w->gm->m1 ? FW_FORM_MODEL1 : 0) | (w->gm->k8 ? FW_FORM_FP8_KEYS : 0);
	float eps = (float)c->norm_eps;
	struct bufs *b = &w->b;
	void *a[] = { &ca, &cz, &b->rowtab, &L, &ix, &b->pos, &b->chunks,
		      (void *)&gc->ape, &ratio, &hd, &coff, (void *)&gc->norm,
		      &w->gm->freqs_cmp, &rd, &eps, &ref, &form };
	/* the packed storage forms: MODEL1 main entries, FP8 or codes-only keys */
	int packed = indexer ? w->gm->codes_only || w->gm->k8 : w->gm->m1;

	launch(w, packed ? K_CMP_PUSH_PACKED : K_CMP_PUSH, w->nchunks, 1, 1, 256, 0, a);
}

/* the indexer's compressor push from a = wkv x at @at, z = wgate x right
 * after it (the one-row side GEMV's layout) */
static void index_push(struct fwd *w, uint32_t L, CUdeviceptr at)
{
	cmp_push(w, L, &w->gm->layers[L].icmp, 1, at, at + cmp_width(w->c, L, 1) * 4);
}

/* a = wkv x, z = wgate x, then every chunk's rows through its compressor */
static void compress(struct fwd *w, uint32_t L, const struct gcmp *gc, int indexer)
{
	uint32_t width = cmp_width(w->c, L, indexer);
	struct bufs *b = &w->b;

	lin(w, &gc->wkv, b->xn, w->c->dim, w->R, b->ca, width, 0);
	lin(w, &gc->wgate, b->xn, w->c->dim, w->R, b->cz, width, 0);
	cmp_push(w, L, gc, indexer, b->ca, b->cz);
}

/*
 * What takes xn beside the attention: the compressor (and for CSA the
 * indexer's compressor and its weights, into b->wi).  One row with wside
 * uploaded as one matrix: one GEMV into b->cside, whose pieces the pushes
 * and the indexer read where they lie.
 */
static void side_inputs(struct fwd *w, uint32_t L)
{
	const struct dsv4_config *c = w->c;
	const struct glayer *gl = &w->gm->layers[L];
	uint32_t ratio = c->compress_ratios[L], width = cmp_width(c, L, 0);
	uint32_t iwidth = cmp_width(c, L, 1);
	CUdeviceptr at = w->b.cside, iat = at + 2 * width * 4;	/* the indexer's part */

	w->wi = w->b.wi;
	if (!w->gm->fuse_qkv || !w->b.cside || !gl->wside.data) {
		compress(w, L, &gl->cmp, 0);
		if (ratio == 4) {
			compress(w, L, &gl->icmp, 1);
			lin(w, &gl->iweights, w->b.xn, c->dim, w->R, w->b.wi, c->index_n_heads, 0);
		}
		return;
	}
	lin(w, &gl->wside, w->b.xn, c->dim, 1, at, gl->wside.rows, 0);
	/* with the indexer on its own stream (index_aside()) it waits for
	 * its compressor's push only (ix_inputs), not for the side's branch:
	 * the push goes first here ($DSV4_GPU_ICMP_SIDE=0: on that stream,
	 * between the query's prep and the scores) */
	w->icmp_deferred = ratio == 4 && index_aside(w) && !w->r;
	w->icmp_in = w->icmp_deferred && !w->gm->icmp_side ? iat : 0;
	/* (ix_inputs then also stands for the GEMV, which the indexer's
	 * weights in cside come from: the push, launched after it, waits
	 * for it to end in fw_pdl_enter() before anything else) */
	if (w->icmp_deferred && w->gm->icmp_side)
		index_push(w, L, iat);
	if (w->icmp_deferred && !w->r)
		w->r = w->cu->EventRecord(w->gm->ix_inputs, w->cur);
	cmp_push(w, L, &gl->cmp, 0, at, at + width * 4);
	if (ratio == 4) {
		if (!w->icmp_deferred)
			index_push(w, L, iat);
		w->wi = iat + 2 * iwidth * 4;
	}
}

static int call_topk_hook(struct fwd *w, uint32_t L, const uint32_t *pos)
{
	const struct dsv4_model_hooks *hk = w->m->opt.hooks;
	uint32_t k = w->c->index_topk, R = w->R;
	int32_t *sel = malloc((size_t)R * k * sizeof(*sel) + R * sizeof(uint32_t));
	uint32_t *nsel = (uint32_t *)(sel + (size_t)R * k);

	if (!sel)
		return -ENOMEM;
	if (!w->r)
		w->r = w->cu->MemcpyDtoH(sel, w->b.sel, (size_t)R * k * sizeof(*sel));
	if (!w->r)
		w->r = w->cu->MemcpyDtoH(nsel, w->b.nsel, R * sizeof(*nsel));
	for (uint32_t r = 0; r < R && !w->r; r++)
		hk->topk(hk->ctx, L, pos[r], sel + (size_t)r * k, nsel[r]);
	free(sel);
	return 0;
}

/* the lightning indexer: top-k entries per row into b->sel / b->nsel */
static void indexer(struct fwd *w, uint32_t L, const uint32_t *pos)
{
	const struct dsv4_config *c = w->c;
	const struct glayer *gl = &w->gm->layers[L];
	struct bufs *b = &w->b;
	uint32_t ih = c->index_n_heads, ihd = c->index_head_dim, rd = c->rope_head_dim;
	uint32_t ref = (uint32_t)w->reference, topk = c->index_topk;
	float wscale = (float)(1.0 / sqrt((double)ihd) / sqrt((double)ih));
	void *aq[] = { &b->qi, &ihd, &rd, &b->pos, &w->gm->freqs_cmp, &ref, &b->qi8, &b->qstep };
	uint32_t ept = 1;
	void *as[] = { &b->qi, &w->wi, &b->rowtab, &L, &b->pos, &ih, &ihd, &wscale, &b->scores,
		       &w->maxe, &ept };
	void *am8[] = { &b->qi8, &b->qstep, &w->wi, &b->rowtab, &L, &b->pos, &ih, &ihd, &wscale,
			&b->scores, &w->maxe };
	uint32_t nz = 1;
	void *at[] = { &b->scores, &w->maxe, &b->pos, &topk, &b->sel, &b->nsel, &nz };
	uint32_t parts = topk_parts(w);
	void *ap[] = { &b->scores, &w->maxe, &b->pos, &topk, &b->pkey, &b->pidx, &b->pn };
	void *am[] = { &b->pkey, &b->pidx, &b->pn, &parts, &topk, &b->sel, &b->nsel };

	/* the compressors and the weights ran on the side (attention()), or
	 * the indexer's push is this stream's or came first there
	 * (side_inputs()) */
	lin(w, &gl->iwq_b, b->qr, c->q_lora_rank, w->R, b->qi, ih * ihd, 1);
	launch(w, K_INDEX_Q, w->R, ih, 1, 128, 0, aq);
	if (w->icmp_deferred) {
		if (!w->r)
			w->r = w->cu->StreamWaitEvent(w->cur, w->gm->ix_inputs, 0);
		pdl_cut(w, w->cur);
		if (w->icmp_in)
			index_push(w, L, w->icmp_in);
		w->icmp_deferred = 0;
	} else {
		side_join_on(w, w->cur);
	}
	if (index_mma(w) && index_mma8(w)) {
		uint32_t E = 16 * (64 / ih), gy = (w->maxe + E - 1) / E, cap = w->gm->index_sblocks;

		/* more groups than the streamed form's blocks: those take
		 * them in turn (its prefetch holds 8 words a thread) */
		if (w->gm->icodes && cap && gy > cap && E * (FW_ICODE_BYTES(ihd) / 4) <= 8 * 256)
			launch(w, K_INDEX_SCORES_MMA8S, w->R, cap, 1, 256, 0, am8);
		else
			launch(w, w->gm->icodes ? K_INDEX_SCORES_MMA8C : K_INDEX_SCORES_MMA8, w->R,
			       gy, 1, 256, 0, am8);
	} else if (index_mma(w)) {
		uint32_t nw = index_mma_warps(w);

		launch(w, K_INDEX_SCORES_MMA, w->R, (w->maxe + 16 * nw - 1) / (16 * nw), 1, 32 * nw,
		       0, am8);
	} else if (ih % 8 == 0 && ih <= 64 && ih * ihd <= 8192 && ihd % 4 == 0) {
		nz = index_slices(w);
		/* two entries a thread once the 32-entry tiles fill two waves
		 * (each query piece then read once for both) */
		ept = nz == 1 && (uint64_t)w->R * ((w->maxe + 31) / 32) >= 264 ? w->gm->index_ept : 1;
		launch(w, K_INDEX_SCORES_TILED, w->R, (w->maxe + 32 * ept - 1) / (32 * ept), nz, 256,
		       0, as);
	} else {
		launch(w, K_INDEX_SCORES, w->R, (w->maxe + 7) / 8, 1, 256, 0, as);
	}
	if (parts) {
		launch(w, K_TOPK_PART, w->R, parts, 1, 1024, 0, ap);
		launch(w, K_TOPK_MERGE, w->R, 1, 1, 1024, 0, am);
	} else {
		launch(w, K_TOPK, w->R, 1, 1, 1024, 0, at);
	}
	if (w->m->opt.hooks && w->m->opt.hooks->topk)
		call_topk_hook(w, L, pos);
}

static void attention(struct fwd *w, uint32_t L, const uint32_t *pos)
{
	const struct dsv4_config *c = w->c;
	const struct glayer *gl = &w->gm->layers[L];
	struct bufs *b = &w->b;
	uint32_t R = w->R, H = c->n_heads, hd = c->head_dim, rd = c->rope_head_dim;
	uint32_t qlr = c->q_lora_rank, G = c->o_groups, olr = c->o_lora_rank, D = c->dim;
	uint32_t ratio = c->compress_ratios[L], zero = 0, win = c->window_size;
	uint32_t topk = c->index_topk, ref = (uint32_t)w->reference, Hhd = H * hd;
	float eps = (float)c->norm_eps;
	CUdeviceptr none = 0, freqs = layer_freqs(w, L);
	int split = split_attn(w), psplit = !split && prefill_split(w);
	/* decode: wq_a and wkv in one GEMV (they sit back to back, and
	 * layout() put kv right after qr) */
	int qkv = w->gm->fuse_qkv && R == 1 && gl->wqkv_a.data && b->kv == b->qr + qlr * 4;

	struct fw_mat woa = gl->wo_a;
	uint32_t mmx;

	woa.rows = olr;
	mmx = woa_mmx(w, &woa, G);
	l2_prefetch(w, &gl->wq_b, w->gm->l2pf_wqb);
	/* the compressors (and the indexer's weights) need only xn */
	if (ratio) {
		side_begin(w);
		side_inputs(w, L);
		side_end(w);
	}
	if (qkv) {
		/* one row: qr and kv from one GEMV, their norms in one launch */
		void *a[] = { &b->qr, &qlr, (void *)&gl->q_norm, &b->kv, &hd, &rd,
			      (void *)&gl->kv_norm, &eps, &b->pos, &freqs, &ref };

		lin(w, &gl->wqkv_a, b->xn, D, R, b->qr, qlr + hd, 1);
		launch(w, K_QKV_PREP, R, 2, 1, 256, 0, a);
	} else {
		void *a[] = { &b->qr, &qlr, &qlr, (void *)&gl->q_norm, &eps };

		lin(w, &gl->wq_a, b->xn, D, R, b->qr, qlr, 1);
		launch(w, K_RMSNORM, R, 1, 1, 256, 0, a);
	}
	/* decode's indexer beside wq_b (index_aside()) */
	int ix_aside = ratio == 4 && index_aside(w);

	if (ix_aside) {
		fork_to(w, w->gm->ixs, w->gm->ix_fork);
		indexer(w, L, pos);
		fork_end(w, w->gm->ixs, w->gm->ix_join, &w->ix_open);
	}
	/* (beside the indexer, optionally on fewer blocks: gm->wqb_loop) */
	if (!ix_aside || !lin1_loop(w, &gl->wq_b, b->qr, b->q, w->gm->wqb_loop))
		lin(w, &gl->wq_b, b->qr, qlr, R, b->q, H * hd, 1);
	l2_prefetch(w, &gl->wo_a, w->gm->l2pf_woa);
	if (!qkv || !split) {	/* (with both, dsv4_attn_scores preps q) */
		void *a[] = { &b->q, &hd, &rd, &none, &eps, &b->pos, &freqs, &zero };

		launch(w, K_HEAD_PREP, R, H, 1, 128, 0, a);
	}
	if (!qkv) {
		void *a[] = { &b->kv, &hd, &rd, (void *)&gl->kv_norm, &eps, &b->pos, &freqs, &ref };

		lin(w, &gl->wkv, b->xn, D, R, b->kv, hd, 1);
		launch(w, K_HEAD_PREP, R, 1, 1, 128, 0, a);
	}
	if (ratio == 4 && !ix_aside)
		indexer(w, L, pos);
	side_join(w);
	fork_join(w, w->gm->ix_join, &w->ix_open);
	mhc_join(w);	/* post and comb, for wo_b's post step */
	{
		uint32_t r0 = 0, step = R, qprep = (uint32_t)qkv;
		/* one row: its key goes into the ring beside the attention (the
		 * slot it takes held position pos - window, outside the row's
		 * window); with more rows a later row's store could take a key
		 * an earlier row still reads */
		int ring_aside = w->split && R == 1 && w->gm->ring_aside;
		CUdeviceptr gath = 0;
		void *a[] = { &b->q, &b->kv, &b->rowtab, &L, &b->pos, &b->cstart, &ratio, &b->sel,
			      &b->nsel, &topk, &win, &hd, &rd, &freqs, (void *)&gl->attn_sink,
			      &ref, &b->o, &r0, &gath };
		void *s[] = { &b->kv, &b->rowtab, &L, &b->pos, &b->clast, &win, &hd };
		void *g[] = { &b->rowtab, &L, &b->sel, &b->nsel, &topk, &hd, &r0, &b->gath, &rd };

		if (ring_aside) {
			side_begin(w);
			launch(w, K_RING_STORE, R, 1, 1, 128, 0, s);
			side_end(w);
		}
		/* spilled entries: each row's selection comes over PCIe once, not
		 * once per head; MODEL1 entries: decoded once, not once per head */
		if (ratio == 4 && (w->gm->kv_mem || w->gm->m1)) {
			gath = b->gath;
			step = GATH_ROWS;
		}
		if (psplit && step > PREFILL_SPLIT_ROWS)
			step = PREFILL_SPLIT_ROWS;
		for (r0 = 0; r0 < R; r0 += step) {
			uint32_t n = R - r0 < step ? R - r0 : step;

			if (gath)
				launch(w, w->gm->m1 ? K_GATHER_MODEL1 : K_GATHER_ENTRIES, n,
				       (topk + 7) / 8, 1, 256, 0, g);
			if (split || psplit) {
				uint32_t HG = (H + FW_SPLIT_HEADS - 1) / FW_SPLIT_HEADS;
				uint32_t S = split ? split_ranges(w) : prefill_ranges(w, n, HG);
				uint32_t ld = w->maxkeys;
				void *as[] = { &b->q, &b->kv, &b->rowtab, &L, &b->pos, &b->cstart,
					       &ratio, &b->sel, &b->nsel, &topk, &win, &hd, &H, &r0,
					       &gath, &b->asc, &ld, &b->amax, &qprep, &rd, &freqs,
					       &eps };
				void *ap[] = { &b->kv, &b->rowtab, &L, &b->pos, &b->cstart, &ratio,
					       &b->sel, &b->nsel, &topk, &win, &hd, &H, &r0, &gath,
					       &b->asc, &ld, &b->amax, &ref, &b->apart, &b->aden };
				CUdeviceptr op = mmx ? b->op : 0, ops = mmx ? b->ops : 0;
				void *ac[] = { &b->pos, &b->amax, &b->apart, &b->aden, &S, &hd, &rd,
					       &freqs, (void *)&gl->attn_sink, &b->o, &r0, &op,
					       &ops };

				uint32_t Z = combine_slices(hd, rd);

				if (split && (uint64_t)S * HG * n <= w->gm->attn_fused_fit &&
				    2 * HG * n <= ATTN_BAR_WORDS) {
					void *af[] = { &b->q, &b->kv, &b->rowtab, &L, &b->pos,
						       &b->cstart, &ratio, &b->sel, &b->nsel,
						       &topk, &win, &hd, &H, &r0, &gath, &b->asc,
						       &ld, &b->amax, &qprep, &rd, &freqs, &eps,
						       &ref, &b->apart, &b->aden,
						       (void *)&gl->attn_sink, &b->o, &op, &ops, &Z,
						       &w->gm->attn_bar };

					launch(w, w->gm->pv_shared ? K_ATTN_FUSED_SK : K_ATTN_FUSED,
					       S, HG, n, 256, 0, af);
					continue;
				}
				launch(w, K_ATTN_SCORES, S, HG, n, 256, 0, as);
				launch(w, w->gm->pv_shared ? K_ATTN_PV_SK : K_ATTN_PV, S, HG, n, 256, 0,
				       ap);
				launch(w, K_ATTN_COMBINE, H, n, Z, 128, 0, ac);
				continue;
			}
			launch(w, K_ATTENTION, n, H, 1, 256, (9 * hd + w->maxkeys) * 4, a);
		}
		if (!ring_aside)	/* (joined with the shared expert, in moe()) */
			launch(w, K_RING_STORE, R, 1, 1, 128, 0, s);
	}
	/* grouped low-rank output: wo_a per group, all groups in one launch
	 * (no act quant; one row: on the tensor cores, o in parts), then wo_b */
	if (mmx) {
		uint32_t xgs = (H / G) * hd, on = splitk_slot(w);
		void *a[] = { &woa, &b->op, &b->ops, &b->z, &w->gm->splitk_part[on],
			      &w->gm->splitk_count[on], &xgs, &olr };

		launch_as(w, K_LINEAR1_FP8_MMX, prof_linear(w->gm, &woa, 1, mmx),
			  (olr + 63) / 64, mmx, G, 128, 0, a);
	} else {
		lin_g(w, &woa, G, b->o, (H / G) * hd, Hhd, R, b->z, olr, G * olr, 0);
	}
	if (post_fits(w, &gl->wo_b, b->z))
		lin_post(w, &gl->wo_b, b->z, b->f, 1);
	else
		lin(w, &gl->wo_b, b->z, G * olr, R, b->f, D, 1);
}

/* dsv4_swiglu's threads for rows of I: a warp per 128 values up to 1024
 * (decode's few rows: each warp's loads out at once, not a loop of round
 * trips) */
static uint32_t swiglu_threads(uint32_t I)
{
	uint32_t t = (I + 127) / 128 * 32;

	return t < 256 ? 256 : t > 1024 ? 1024 : t;
}

/* FP4 experts whose x is on the FP8 grid (reference numerics: the act
 * quant of w1/w3's input, h quantized by the SwiGLU) take the tensor
 * cores; dsv4_experts_mma quantizes x itself, which leaves an x already
 * on the grid as it is */
static int mma13_fits(const struct fwd *w, const struct glayer *gl, CUdeviceptr xe)
{
	uint32_t D = w->c->dim;

	return w->gm->experts_mma && w->reference && gl->e1.fmt == FW_FP4 && D % 128 == 0 &&
	       D <= FW_MMA_MAX_COLS && xe % 16 == 0;
}

/*
 * the routed experts' three kernels for the slots whose expert is in @idx
 * (with @rt: the w1/w3 GEMV routes first, dsv4_router's work; decode)
 */
static void experts(struct fwd *w, uint32_t L, CUdeviceptr idx, CUdeviceptr xe, uint32_t aq,
		    const struct fw_route *rt)
{
	const struct dsv4_config *c = w->c;
	const struct glayer *gl = &w->gm->layers[L];
	struct bufs *b = &w->b;
	uint32_t D = c->dim, K = c->n_activated_experts, I = c->moe_inter_dim;
	uint32_t RK = w->R * K, zero = 0, one = 1, E = c->n_routed_experts;
	uint32_t after = !!(w->m->opt.flags & DSV4_MODEL_HF_WEIGHT_AFTER_DOWN);
	uint32_t fq = w->reference && quantized(&gl->e2) && I % 128 == 0;
	float lim = (float)c->swiglu_limit;
	CUdeviceptr wts = after ? 0 : b->wts;
	void *a13[] = { (void *)&gl->w1tab, (void *)&gl->w3tab, &idx, &K, &xe, &D, &zero, &b->g,
			&b->u, &I, &aq };
	void *sw[] = { &b->g, &b->u, &I, &lim, &wts, &b->h, &fq };
	void *a2[] = { (void *)&gl->w2tab, (void *)&gl->w2tab, &idx, &K, &b->h, &I, &one, &b->ye,
		       &b->ye, &D, &zero };
	struct fw_route routed = { 0 }, self = rt ? *rt : routed;
	int mma13 = mma13_fits(w, gl, xe);
	int mma2 = w->gm->experts_mma && fq && gl->e2.fmt == FW_FP4 && I <= FW_MMA_MAX_COLS &&
		   b->h % 16 == 0;
	/* $DSV4_GPU_FUSE_GLU: w2 forms its x from g and u itself */
	int glu2 = mma2 && w->gm->fuse_glu && b->g % 16 == 0 && b->u % 16 == 0;

	if (RK >= GEMM_MIN_ROWS * K && !aq && gemm_fits(&gl->e1) && gemm_fits(&gl->e2) &&
	    D % 64 == 0 && I % 64 == 0 && E <= 1024) {
		/* prefill: the slots sorted by expert, tiles through the tensor cores */
		uint32_t room = RK / 64 + E + 1;
		void *at[] = { &idx, &RK, &E, &b->order, &b->tiles, &b->ntiles };
		void *g13[] = { (void *)&gl->w1tab, (void *)&gl->w3tab, &b->order, &b->tiles,
				&b->ntiles, &K, &xe, &D, &zero, &b->g, &b->u, &I };
		void *g2[] = { (void *)&gl->w2tab, (void *)&gl->w2tab, &b->order, &b->tiles,
			       &b->ntiles, &K, &b->h, &I, &one, &b->ye, &b->ye, &D };

		enum gpu_kernel ge = w->gm->gemm_pipe ? K_GEMM_EXPERTS_PIPE : K_GEMM_EXPERTS;

		launch(w, K_EXPERT_TILES, 1, 1, 1, 1024, 0, at);
		launch(w, ge, (I + 63) / 64, room, 2, 128, 0, g13);
		launch(w, K_SWIGLU, RK, 1, 1, 256, 0, sw);
		launch(w, ge, (D + 63) / 64, room, 1, 128, 0, g2);
		return;
	}
	if (mma13) {
		void *m13[] = { (void *)&gl->w1tab, (void *)&gl->w3tab, &idx, &K, &xe, &D, &zero,
				&b->g, &b->u, &I, &self };

		launch(w, K_EXPERTS_MMA, (I + 63) / 64, RK, 2, 128, 0, m13);
	} else {
		launch(w, K_LINEAR_EXPERTS, (I + 31) / 32, RK, 2, 128, 0, a13);
	}
	if (glu2) {
		/* the SwiGLU inside w2's launch: x is g, per slot */
		struct fw_glu glu = { b->u, wts, lim, 0 };
		void *m2[] = { (void *)&gl->w2tab, (void *)&gl->w2tab, &idx, &K, &b->g, &I, &one,
			       &b->ye, &b->ye, &D, &routed, &glu };

		launch(w, K_EXPERTS_MMA_GLU, (D + 63) / 64, RK, 1, 128, 0, m2);
		return;
	}
	launch(w, K_SWIGLU, RK, 1, 1, swiglu_threads(I), 0, sw);
	if (mma2) {
		void *m2[] = { (void *)&gl->w2tab, (void *)&gl->w2tab, &idx, &K, &b->h, &I, &one,
			       &b->ye, &b->ye, &D, &routed };

		launch(w, K_EXPERTS_MMA, (D + 63) / 64, RK, 1, 128, 0, m2);
	} else {
		launch(w, K_LINEAR_EXPERTS, (D + 31) / 32, RK, 1, 128, 0, a2);
	}
}

/* a GPU slot for expert e of layer L: a hit, or the least recently used
 * slot not taken by this group (tick < @group) */
static uint32_t gpu_slot_for(struct gpu_model *gm, uint32_t L, uint32_t e, uint64_t group, int *hit)
{
	uint32_t E = gm->m->cfg.n_routed_experts;
	int32_t si = gm->gwhere[(size_t)L * E + e];
	uint32_t v = 0;

	*hit = si >= 0;
	if (si < 0) {
		for (uint32_t i = 1; i < gm->gslots; i++)
			if (gm->gslot[i].tick < gm->gslot[v].tick)
				v = i;
		if (gm->gslot[v].layer >= 0)
			gm->gwhere[(size_t)gm->gslot[v].layer * E + gm->gslot[v].expert] = -1;
		gm->gslot[v].layer = (int32_t)L;
		gm->gslot[v].expert = (int32_t)e;
		gm->gwhere[(size_t)L * E + e] = (int32_t)v;
		si = (int32_t)v;
	}
	gm->gslot[si].tick = group;
	return (uint32_t)si;
}

/* copies one expert's three matrices (as the store's pinned cache holds
 * them) into GPU slot @si and points the host tables at them */
static CUresult gpu_slot_fill(struct gpu_model *gm, uint32_t L, uint32_t e, uint32_t si,
			      const struct mat *m3[3])
{
	uint32_t E = gm->m->cfg.n_routed_experts;
	CUdeviceptr at = gm->gcache + (CUdeviceptr)si * gm->gslot_bytes;
	CUresult r = 0;

	for (int j = 0; j < 3 && !r; j++) {
		const struct mat *x = m3[j];
		size_t n = (size_t)x->rows * x->cols, all = mat_bytes(x);
		size_t db = x->fmt == MAT_FP8 ? n : x->fmt == MAT_FP4 ? n / 2 :
			    x->fmt == MAT_BF16 ? 2 * n : 4 * n;
		struct fw_mat *f = &gm->htab[((size_t)L * 3 + j) * E + e];

		f->data = at;
		r = gm->g->cu.MemcpyHtoDAsync(at, x->data, db, gm->copy);
		at += (db + 255) & ~(size_t)255;
		f->scale = all > db ? at : 0;
		if (!r && all > db)
			r = gm->g->cu.MemcpyHtoDAsync(at, x->scale, all - db, gm->copy);
		at += (all - db + 255) & ~(size_t)255;
		gm->st.bytes_copied += all;
	}
	return r;
}

/*
 * Streamed experts: the router's choice comes back to the host; each group
 * of experts (as many as both caches hold) is made resident in the CPU
 * store's pinned cache (io_uring), copied on the copy stream into GPU
 * slots (misses only), and computed once the copy event has passed.
 */
static int stream_experts(struct fwd *w, uint32_t L, CUdeviceptr xe, uint32_t aq)
{
	struct gpu_model *gm = w->gm;
	const struct dsv4_config *c = w->c;
	const struct glayer *gl = &gm->layers[L];
	uint32_t E = c->n_routed_experts, K = c->n_activated_experts, RK = w->R * K, n_ex = 0;
	uint32_t cap = store_capacity(w->m->store, L);
	int32_t *hidx = malloc((size_t)RK * 2 * sizeof(*hidx) + (size_t)E * sizeof(int32_t));
	int32_t *gidx = hidx + RK, *ex = gidx + RK;
	struct mat *sw = malloc(3 * (size_t)E * sizeof(*sw));
	int ret = 0;

	if (!hidx || !sw) {
		free(hidx);
		free(sw);
		return -ENOMEM;
	}
	if (cap > gm->gslots)
		cap = gm->gslots;
	if (!w->r)
		w->r = w->cu->MemcpyDtoH(hidx, w->b.idx, (size_t)RK * sizeof(*hidx));
	for (uint32_t e = 0; e < E && !w->r; e++)
		for (uint32_t s = 0; s < RK; s++)
			if (hidx[s] == (int32_t)e) {
				ex[n_ex++] = (int32_t)e;
				break;
			}
	for (uint32_t g0 = 0; g0 < n_ex && !w->r && !ret; g0 += cap) {
		uint32_t ng = n_ex - g0 < cap ? n_ex - g0 : cap;
		uint64_t group = ++gm->gtick, t0;

		ret = store_acquire(w->m->store, L, ex + g0, ng, sw, sw + ng, sw + 2 * ng);
		if (ret)
			break;
		for (uint32_t i = 0; i < ng && !w->r; i++) {
			const struct mat *m3[3] = { &sw[i], &sw[ng + i], &sw[2 * ng + i] };
			int hit;
			uint32_t si = gpu_slot_for(gm, L, (uint32_t)ex[g0 + i], group, &hit);

			if (hit) {
				gm->st.hits++;
				continue;
			}
			gm->st.misses++;
			w->r = gpu_slot_fill(gm, L, (uint32_t)ex[g0 + i], si, m3);
		}
		/* the layer's tables, then the compute stream waits for the copies */
		for (int j = 0; j < 3 && !w->r; j++)
			w->r = w->cu->MemcpyHtoDAsync(j == 0 ? gl->w1tab : j == 1 ? gl->w2tab : gl->w3tab,
						      gm->htab + ((size_t)L * 3 + j) * E,
						      (size_t)E * sizeof(struct fw_mat), gm->copy);
		if (!w->r)
			w->r = w->cu->EventRecord(gm->copied, gm->copy);
		if (!w->r)
			w->r = w->cu->StreamWaitEvent(w->main, gm->copied, 0);
		pdl_cut(w, w->main);
		for (uint32_t s = 0; s < RK; s++) {
			gidx[s] = -1;
			for (uint32_t i = 0; i < ng; i++)
				if (hidx[s] == ex[g0 + i])
					gidx[s] = hidx[s];
		}
		if (!w->r)
			w->r = w->cu->MemcpyHtoDAsync(w->b.idxg, gidx, (size_t)RK * sizeof(*gidx),
						      w->main);
		pdl_cut(w, w->main);
		experts(w, L, w->b.idxg, xe, aq, NULL);
		/* the pinned host copies are needed until the copies are done */
		t0 = now_ns();
		if (!w->r)
			w->r = w->cu->StreamSynchronize(gm->copy);
		gm->st.copy_ns += now_ns() - t0;
		store_release(w->m->store, L, ex + g0, ng);
	}
	/* (gidx may go: an async copy from pageable memory returns once staged) */
	free(hidx);
	free(sw);
	return ret;
}

static int moe(struct fwd *w, uint32_t L)
{
	const struct dsv4_config *c = w->c;
	const struct glayer *gl = &w->gm->layers[L];
	struct bufs *b = &w->b;
	uint32_t R = w->R, D = c->dim, E = c->n_routed_experts, K = c->n_activated_experts;
	uint32_t I = c->moe_inter_dim, zero = 0;
	uint32_t after = !!(w->m->opt.flags & DSV4_MODEL_HF_WEIGHT_AFTER_DOWN);
	uint32_t shared_clamp = !!(w->m->opt.flags & DSV4_MODEL_HF_SHARED_CLAMP);
	float scale = (float)c->route_scale, lim = (float)c->swiglu_limit, nolim = 0;
	CUdeviceptr xe = b->xn, none = 0;
	/* the routed experts' FP8 activation quant happens inside their GEMV */
	uint32_t aq = w->reference && quantized(&gl->e1) && D % 128 == 0;
	int ret = 0;

	CUdeviceptr bias = gl->tid2eid ? 0 : gl->gate_bias;
	/* one row on resident tensor-core experts: their w1/w3 launch routes */
	struct fw_route rt = { b->logits, bias, gl->tid2eid, b->tok, b->idx, b->wts, E, after, scale };
	int self_route = w->gm->fuse_route && R == 1 && !w->gm->stream && E <= 256 && K <= 64 &&
			 mma13_fits(w, gl, xe);

	if (gl->sw13.data) {
		l2_prefetch(w, &gl->sw13, w->gm->l2pf_shared);
	} else {
		l2_prefetch(w, &gl->sw1, w->gm->l2pf_shared);
		l2_prefetch(w, &gl->sw3, w->gm->l2pf_shared);
	}
	lin(w, &gl->gate, b->xn, D, R, b->logits, E, 0);
	if (!self_route) {
		void *a[] = { &b->logits, &E, &K, &bias, (void *)&gl->tid2eid, &b->tok, &scale,
			      &after, &b->idx, &b->wts };

		launch(w, K_ROUTER, R, 1, 1, 256, 0, a);
	}
	/* the shared expert first: it overlaps the streamed experts' copies
	 * (and in decode runs beside the routed ones, on the side stream,
	 * after the Sinkhorn there: started beside the gate, it slowed the
	 * gate and the routed w1/w3 by more than it gained) */
	side_begin(w);
	if (w->gm->fuse_qkv && R == 1 && gl->sw13.data && b->su == b->sg + I * 4) {
		lin(w, &gl->sw13, b->xn, D, R, b->sg, 2 * I, 1);
	} else {
		lin(w, &gl->sw1, b->xn, D, R, b->sg, I, 1);
		lin(w, &gl->sw3, b->xn, D, R, b->su, I, 1);
	}
	if (!lin1_glu(w, &gl->sw2, b->sg, b->su, shared_clamp ? lim : nolim, b->sy)) {
		void *a[] = { &b->sg, &b->su, &I, shared_clamp ? &lim : &nolim, &none, &b->sh, &zero };

		launch(w, K_SWIGLU, R, 1, 1, swiglu_threads(I), 0, a);
		lin(w, &gl->sw2, b->sh, I, R, b->sy, D, 1);
	}
	side_end(w);
	if (aq && R > 1) {	/* as in lin_g(): one quant pass for many rows */
		xe = act_quant_rows(w, b->xn, D, D, R);
		aq = 0;
	}
	/* slots without an expert contribute nothing: streaming leaves slots
	 * out (those of other groups), a hash layer those whose table entry is
	 * out of range; otherwise the experts write every slot */
	if (!w->r && (w->gm->stream || gl->tid2eid || E < K))
		w->r = w->cu->MemsetD32Async(b->ye, 0, (size_t)R * K * D, w->main);
	/* (and with $DSV4_GPU_PDL the w1/w3 launch goes the plain way: started
	 * while the gate's 16 blocks ran, it took 46-48 us instead of 31,
	 * probably its 384 blocks placed on the other SMs only, 3-4 an SM) */
	pdl_cut(w, w->main);
	if (w->gm->stream)
		ret = stream_experts(w, L, xe, aq);
	else
		experts(w, L, b->idx, xe, aq, self_route ? &rt : NULL);
	side_join(w);
	pf_join(w);
	{
		/* the mHC post step on f as it is formed */
		struct fw_hc_post hp = { 0 };
		void *a[] = { &b->ye, &b->wts, &K, &D, &after, &b->sy, &b->f, &hp };

		if (w->gm->fuse_mhc) {
			hp = hc_post_of(w);
			w->posted = 1;
		}
		launch(w, K_MOE_COMBINE, R, (D + 255) / 256, 1, 256, 0, a);
	}
	return ret;
}

/*
 * dsv4_hc_mix's column slices for an mHC pre step on X, 0 where it does
 * not take it: one row (decode), on the main stream, @fn F32 of @rows (at
 * most 32) over hc D columns (a sublayer's hc_fn: (2 + hc) hc rows; the
 * head's: hc), xn within dsv4_hc_mix's registers, its scratch in the
 * split-K one
 */
static uint32_t hc_mix_slices(const struct fwd *w, const struct fw_mat *fn, uint32_t rows,
			      CUdeviceptr X)
{
	const struct dsv4_config *c = w->c;
	uint32_t hc = c->hc_mult, D = c->dim, S = splitk_slices(fn, 1, X);
	int fits = w->gm->fuse_mhc && w->R == 1 && w->cur == w->main && fn->fmt == FW_F32 &&
		   X % 16 == 0 && fn->rows == rows && fn->rows <= 32 &&
		   fn->cols == hc * D && D % 4 == 0 && D <= 16 * 256 &&
		   fn->cols % (S * 128) == 0 && (uint64_t)S * fn->rows <= FW_HC_MIX_DSS;

	return fits ? S : 0;
}

static int block(struct fwd *w, uint32_t L, int br, const uint32_t *pos)
{
	const struct dsv4_config *c = w->c;
	const struct glayer *gl = &w->gm->layers[L];
	struct bufs *b = &w->b;
	uint32_t hc = c->hc_mult, D = c->dim, nmix = (2 + hc) * hc, iters = c->hc_sinkhorn_iters;
	float hc_eps = (float)c->hc_eps, eps = (float)c->norm_eps;
	CUdeviceptr normw = br ? gl->ffn_norm : gl->attn_norm;
	uint32_t parts = 3;
	void *pre[] = { &b->mix, &b->X, (void *)&gl->hc_scale[br], (void *)&gl->hc_base[br], &hc,
			&D, &iters, &hc_eps, &eps, &normw, &b->xn, &b->post, &b->comb, &parts };
	void *post[] = { &b->X, &b->f, &b->post, &b->comb, &hc, &D };
	const struct fw_mat *fn = &gl->hc_fn[br];
	uint32_t S = hc_mix_slices(w, fn, (2 + hc) * hc, b->X);
	int ret = 0;

	if (S) {
		/* one row: mix and xn in one launch, split over column slices */
		struct fw_mat wm = *fn;
		void *a[] = { &wm, &b->X, &hc, &D, &w->gm->splitk_part[0],
			      &w->gm->splitk_count[0], &b->mix, (void *)&gl->hc_scale[br],
			      (void *)&gl->hc_base[br], &hc_eps, &eps, &normw, &b->xn };

		launch(w, K_HC_MIX, S, w->R, 1, 256, 0, a);
	} else {
		lin(w, fn, b->X, hc * D, w->R, b->mix, nmix, 0);
	}
	/* post and comb (the Sinkhorn's serial chain) apart from xn when
	 * dsv4_hc_mix formed xn, or in decode, on the side stream beside the
	 * sublayer (joined before the post step) */
	if (S || w->split) {
		parts = 2;
		if (!br && mhc_aside(w)) {
			mhc_begin(w);
			launch(w, K_HC_PRE, w->R, 1, 1, 256, 0, pre);
			mhc_end(w);
		} else {
			side_begin(w);
			launch(w, K_HC_PRE, w->R, 1, 1, 256, 0, pre);
			side_end(w);
		}
	}
	/* xn with a big block, as one block per row is all there is */
	if (!S) {
		parts = w->split ? 1 : 3;
		launch(w, K_HC_PRE, w->R, 1, 1, w->R < 64 ? 1024 : 256, 0, pre);
	}
	w->posted = 0;
	if (br)
		ret = moe(w, L);
	else
		attention(w, L, pos);
	if (!w->posted)
		launch(w, K_HC_POST, w->R, (D + 255) / 256, 1, 256, 0, post);
	return ret;
}

/*
 * rows [*r0, *r0 + *n) of piece @i of decode's @P pieces of logits (the
 * head's @V rows): the last about V/20 rows, each one before it four
 * times as many, the first the rest, in multiples of 128 rows.  Small
 * last pieces leave little to copy once the head ends; each earlier
 * piece's two copies (to hstage, to the caller) take less time than the
 * GPU takes to form the pieces after it.  Returns 0 where V is too
 * small for @P pieces.
 */
static int logit_piece(uint32_t V, uint32_t P, uint32_t i, uint32_t *r0, uint32_t *n)
{
	uint32_t size[GPU_LOGIT_PIECES_MAX], rest = V, want = V / 20;

	if (P < 2 || P > GPU_LOGIT_PIECES_MAX)
		return 0;
	for (uint32_t k = P - 1; k >= 1; k--, want *= 4) {
		size[k] = want / 128 * 128 < 128 ? 128 : want / 128 * 128;
		if (rest < size[k] + 128)
			return 0;
		rest -= size[k];
	}
	size[0] = rest;
	*r0 = 0;
	for (uint32_t k = 0; k < i; k++)
		*r0 += size[k];
	*n = size[i];
	return 1;
}

/* how many pieces head() sends decode's logits out in (0: one copy after) */
static uint32_t logit_pieces(const struct fwd *w)
{
	uint32_t P = w->gm->logit_pieces, r0, n;

	return w->split && w->nl == 1 && w->hlog_host &&
	       logit_piece(w->c->vocab_size, P, 0, &r0, &n) ? P : 0;
}

/* logits of the rows in @lrows into b.hlog [nl, vocab]; with one row and
 * logit_pieces(), in pieces, each copied on into hstage as the next forms */
static void head(struct fwd *w, const uint32_t *lrows)
{
	const struct dsv4_config *c = w->c;
	struct gpu_model *gm = w->gm;
	struct bufs *b = &w->b;
	uint32_t hc = c->hc_mult, D = c->dim, nl = w->nl;
	size_t row = (size_t)hc * D * 4;
	float hc_eps = (float)c->hc_eps, eps = (float)c->norm_eps;
	void *a[] = { &b->hmix, &b->hX, &gm->hc_head_scale, &gm->hc_head_base, &hc, &D, &hc_eps,
		      &eps, &gm->norm, &b->hy };
	/* one row: hc_head's mixes and y in one dsv4_hc_mix launch, as a
	 * sublayer's pre step, on the row where it lies in X */
	CUdeviceptr X1 = b->X + (nl == 1 ? lrows[0] * row : 0);
	uint32_t S = nl == 1 ? hc_mix_slices(w, &gm->hc_head, hc, X1) : 0;
	struct fw_mat wm = gm->hc_head;
	void *m[] = { &wm, &X1, &hc, &D, &gm->splitk_part[0], &gm->splitk_count[0], &b->hmix,
		      &gm->hc_head_scale, &gm->hc_head_base, &hc_eps, &eps, &gm->norm, &b->hy };

	if (S) {
		launch(w, K_HC_MIX, S, 1, 1, 256, 0, m);
	} else {
		for (uint32_t i = 0; i < nl && !w->r; i++)
			w->r = w->cu->MemcpyDtoDAsync(b->hX + i * row, b->X + lrows[i] * row, row,
						      w->main);
		pdl_cut(w, w->main);
		lin(w, &gm->hc_head, b->hX, hc * D, nl, b->hmix, hc, 0);
		/* few rows: one block each, as wide as it gets (256 threads
		 * took ~19 us for one row) */
		launch(w, K_HC_HEAD, nl, 1, 1, nl < 64 ? 1024 : 256, 0, a);
	}
	uint32_t P = logit_pieces(w);

	if (!P) {
		lin(w, &gm->head, b->hy, D, nl, b->hlog, c->vocab_size, 0);
		return;
	}
	for (uint32_t i = 0; i < P && !w->r; i++) {
		struct fw_mat v = gm->head;
		uint32_t r0, n;

		logit_piece(c->vocab_size, P, i, &r0, &n);
		v.row0 += r0;
		v.rows = n;
		lin(w, &v, b->hy, D, 1, b->hlog + (size_t)r0 * 4, c->vocab_size, 0);
		side_begin(w);
		if (!w->r)
			w->r = w->cu->MemcpyDtoHAsync(w->hlog_host + r0, b->hlog + (size_t)r0 * 4,
						      (size_t)n * 4, w->cur);
		/* in a graph, an event record node the host can wait on */
		if (!w->r)
			w->r = w->capturing ?
			       w->cu->EventRecordWithFlags(gm->logit_ev[i], w->cur,
							   1 /* CU_EVENT_RECORD_EXTERNAL */) :
			       w->cu->EventRecord(gm->logit_ev[i], w->cur);
		pdl_cut(w, w->cur);
		side_end(w);
	}
	side_join(w);
}

/* embedding, the blocks, the head: every launch of one call */
static int forward(struct fwd *w, const uint32_t *pos, const uint32_t *lrows, char *err,
		   size_t errlen)
{
	const struct dsv4_config *c = w->c;
	struct dsv4_model *m = w->m;
	uint32_t hc = c->hc_mult, D = c->dim, R = w->R;
	int ret = 0;

	{
		struct fw_mat em = w->gm->embed;
		void *a[] = { &em, &w->b.tok, &hc, &w->b.X };

		launch(w, K_EMBED, R, (D + 255) / 256 < 16 ? (D + 255) / 256 : 16, 1, 256, 0, a);
	}
	for (uint32_t L = 0; L < c->n_layers && !w->r && !ret; L++) {
		block(w, L, 0, pos);
		ret = block(w, L, 1, pos);
		if (ret && m->store && store_error(m->store)[0])
			return dsv4_errf(err, errlen, ret,
					 "layer %u: %s; the batch's sequences were reset", L,
					 store_error(m->store));
		if (m->opt.hooks && m->opt.hooks->layer_out && !w->r) {
			float *X = malloc((size_t)R * hc * D * sizeof(float));

			if (!X)
				return -ENOMEM;
			w->r = w->cu->MemcpyDtoH(X, w->b.X, (size_t)R * hc * D * sizeof(float));
			if (!w->r)
				m->opt.hooks->layer_out(m->opt.hooks->ctx, L, X, R, hc * D);
			/* the hook may change X (teacher forcing): the next block reads it */
			if (!w->r)
				w->r = w->cu->MemcpyHtoD(w->b.X, X, (size_t)R * hc * D * sizeof(float));
			free(X);
		}
	}
	pf_join(w);	/* (moe() joined it already where it ran) */
	if (w->nl && !w->r && !ret)
		head(w, lrows);
	return ret;
}

/* the step captured with launch @skip (-1: none) left out, instantiated */
static CUgraphExec capture_without(struct fwd *w, const uint32_t *pos, const uint32_t *lrows,
				   int64_t skip)
{
	CUgraph g = NULL;
	CUgraphExec e = NULL;
	char err[256];
	int ret;

	if (w->cu->StreamBeginCapture(w->main, 1 /* thread-local */))
		return NULL;
	w->nlaunch = 0;
	w->skip = skip;
	ret = forward(w, pos, lrows, err, sizeof(err));
	w->skip = -1;
	if (w->cu->StreamEndCapture(w->main, &g) || w->r || ret ||
	    w->cu->GraphInstantiateWithFlags(&e, g, 0))
		e = NULL;
	if (g)
		w->cu->GraphDestroy(g);
	w->r = 0;
	return e;
}

/*
 * $DSV4_GPU_PROFILE=graph: each launch's cost on the critical path, as
 * the replay time of the step captured without it, subtracted from the
 * whole step's (gpu_profile.c adds them up and reports them).
 * $DSV4_GPU_PROFILE=replay: the whole step's replays back to back only;
 * a step's time less this is what the host adds between replays.
 */
static void graph_profile(struct fwd *w, const uint32_t *pos, const uint32_t *lrows)
{
	struct gpu_model *gm = w->gm;
	struct gpu_launch_rec rec[1024];
	CUgraphExec whole, e;
	double base = 0, b, t;
	uint32_t n, timed = 0;

	w->rec = rec;
	w->rec_cap = 1024;
	whole = capture_without(w, pos, lrows, -1);
	w->rec = NULL;
	n = w->nlaunch < 1024 ? w->nlaunch : 1024;
	if (!whole)
		return;
	if (gm->prof_graph == PROF_GRAPH_REPLAY) {	/* the whole step only */
		b = gpu_replay_s(gm, whole, w->main);
		if (b >= 0)
			gpu_graph_profile_base(gm, b);
		w->cu->GraphExecDestroy(whole);
		return;
	}
	/* the whole step timed beside each variant: the clocks drift by
	 * about 1 % over the seconds this takes, as much as a small kernel */
	for (uint32_t k = 0; k < n; k++) {
		e = capture_without(w, pos, lrows, k);
		b = gpu_replay_s(gm, whole, w->main);
		t = e ? gpu_replay_s(gm, e, w->main) : -1;
		if (e)
			w->cu->GraphExecDestroy(e);
		if (b < 0 || t < 0)
			break;
		base += b;
		timed++;
		gpu_graph_profile_add(gm, &rec[k], b - t);
	}
	if (timed)
		gpu_graph_profile_base(gm, base / timed);
	w->cu->GraphExecDestroy(whole);
}

/*
 * One-token decode as a CUDA graph: ~170 small kernels replayed with one
 * launch instead of launched one by one.  Everything that changes per
 * token is in device memory (the metadata upload); the launches bake in
 * the scratch layout, the scores' width (maxe) and the attention's shared
 * memory (maxkeys), which the caller rounds up so that the graph is
 * captured again only every few thousand tokens.
 */
static int forward_graph(struct fwd *w, const uint32_t *pos, const uint32_t *lrows, char *err,
			 size_t errlen)
{
	struct gpu_model *gm = w->gm;
	struct gpu_graph_key key = { gm->scratch, w->maxe, w->maxkeys };
	CUgraph g = NULL;
	CUresult r;
	int ret;

	if (gm->graph && !memcmp(&key, &gm->graph_key, sizeof(key))) {
		gm->graph_replays++;
		w->r = w->cu->GraphLaunch(gm->graph, w->main);
		return 0;
	}
	if (gm->graph) {
		w->cu->GraphExecDestroy(gm->graph);
		gm->graph = NULL;
	}
	w->r = w->cu->StreamBeginCapture(w->main, 1 /* thread-local */);
	if (w->r)
		return 0;
	w->capturing = 1;
	memset(w->after_kernel, 0, sizeof(w->after_kernel));
	ret = forward(w, pos, lrows, err, errlen);
	w->capturing = 0;
	/* the capture ends whatever happened inside it */
	r = w->cu->StreamEndCapture(w->main, &g);
	if (!w->r)
		w->r = r;
	if (!w->r && !ret)
		w->r = w->cu->GraphInstantiateWithFlags(&gm->graph, g, 0);
	if (g)
		w->cu->GraphDestroy(g);
	if (w->r || ret) {
		gm->graph = NULL;
		return ret;
	}
	gm->graph_key = key;
	gm->graph_builds++;
	if (gm->prof_graph)
		graph_profile(w, pos, lrows);
	w->r = w->cu->GraphLaunch(gm->graph, w->main);
	return 0;
}

int gpu_eval_many(struct dsv4_model *m, struct dsv4_eval_req *reqs, uint32_t n, char *err,
		  size_t errlen)
{
	const struct dsv4_config *c = &m->cfg;
	struct fwd w = { .gm = m->gpu, .m = m, .c = c, .cu = &m->gpu->g->cu,
			 .reference = m->opt.numerics == DSV4_NUMERICS_REFERENCE, .skip = -1 };
	uint32_t R = 0, nl = 0, lpieces;
	int graph;
	uint64_t t0 = now_ns();
	struct batch bt;
	uint32_t *meta = NULL, *lrows = NULL;
	float *logits = NULL, *owned = NULL;
	int ret = 0, staged;

	gpu_bind(w.gm->g);
	for (uint32_t i = 0; i < n; i++)
		R += reqs[i].n_tokens;
	nl = eval_logit_rows(reqs, n, NULL);
	w.R = R;
	w.nl = nl;
	w.split = R == 1 && !w.gm->profile;
	w.main = w.cur = w.gm->main;
	/* what the graph cannot hold: host round trips (streamed experts,
	 * hooks), and more than one token */
	graph = w.gm->graphs && w.split && n == 1 && nl == 1 && !m->store &&
		!(m->opt.hooks && (m->opt.hooks->topk || m->opt.hooks->layer_out));
	w.nchunks = n;
	/* host metadata: pos, cstart, clast, tok, chunks [2n], then rowtab (u64) */
	meta = calloc((size_t)R * 8 + 2 * (size_t)R + 2, 4);
	lrows = malloc(((size_t)nl + 1) * sizeof(*lrows));
	staged = w.gm->hstage && (size_t)nl * c->vocab_size * 4 <= w.gm->hstage_logits;
	if (staged)
		logits = (float *)(w.gm->hstage + w.gm->hstage_meta);
	else
		logits = owned = malloc(((size_t)nl * c->vocab_size + 1) * sizeof(float));
	if (!meta || !lrows || !logits) {
		ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory for %u rows", R);
		goto out;
	}
	uint32_t *pos = meta, *cstart = pos + R, *clast = cstart + R, *chunks = clast + 2 * R;
	int32_t *tok = (int32_t *)(clast + R);
	w.maxe = 1;
	for (uint32_t i = 0, r = 0; i < n; i++) {
		struct dsv4_seq *s = reqs[i].seq;

		chunks[2 * i] = r;
		chunks[2 * i + 1] = reqs[i].n_tokens;
		for (uint32_t t = 0; t < reqs[i].n_tokens; t++, r++) {
			pos[r] = s->pos + t;
			tok[r] = reqs[i].tokens[t];
			cstart[r] = r - t;
			clast[r] = s->pos + reqs[i].n_tokens - 1;
			if ((pos[r] + 1) / 4 > w.maxe)
				w.maxe = (pos[r] + 1) / 4;
		}
		if (gpu_seq_grow(w.gm, s->gpu, s->pos + reqs[i].n_tokens)) {
			ret = dsv4_errf(err, errlen, -ENOMEM, "GPU memory for the KV entries of %u tokens",
					s->pos + reqs[i].n_tokens);
			goto out;
		}
	}
	bt = (struct batch){ .rows = R, .pos = pos };
	w.maxkeys = attention_max_keys(m, &bt);
	if (graph) {	/* rounded up: one graph serves thousands of tokens */
		uint32_t room = w.gm->attn_smem / 4 - 9 * c->head_dim;

		w.maxe = (w.maxe + 2047) / 2048 * 2048;
		if (w.maxkeys <= room)
			w.maxkeys = (w.maxkeys + 511) / 512 * 512 < room ?
				    (w.maxkeys + 511) / 512 * 512 : room;
	}
	if ((w.maxkeys + 9 * c->head_dim) * 4 > w.gm->attn_smem) {
		ret = dsv4_errf(err, errlen, -E2BIG,
				"CUDA backend: %u keys per query exceed the attention kernel's shared "
				"memory", w.maxkeys);
		goto out;
	}
	if (reserve(&w)) {
		ret = dsv4_errf(err, errlen, -ENOMEM, "GPU memory for %u rows of activations", R);
		goto out;
	}
	/* upload the metadata: the device layout is pos, cstart, clast, tok, chunks, rowtab */
	{
		size_t head_bytes = (size_t)(w.b.rowtab - w.b.meta);
		size_t bytes = head_bytes + (size_t)R * 8;
		int pinned = staged && bytes <= w.gm->hstage_meta;
		uint8_t *hb = pinned ? w.gm->hstage : malloc(bytes);

		if (!hb) {
			ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
		memset(hb, 0, head_bytes);
		memcpy(hb, pos, (size_t)R * 4);
		memcpy(hb + (w.b.cstart - w.b.meta), cstart, (size_t)R * 4);
		memcpy(hb + (w.b.clast - w.b.meta), clast, (size_t)R * 4);
		memcpy(hb + (w.b.tok - w.b.meta), tok, (size_t)R * 4);
		memcpy(hb + (w.b.chunks - w.b.meta), chunks, (size_t)n * 8);
		for (uint32_t i = 0, r = 0; i < n; i++)
			for (uint32_t t = 0; t < reqs[i].n_tokens; t++, r++) {
				uint64_t tab = reqs[i].seq->gpu->tab;

				memcpy(hb + head_bytes + (size_t)r * 8, &tab, 8);
			}
		if (pinned) {	/* the previous call's copies are done: it synchronized */
			w.r = w.cu->MemcpyHtoDAsync(w.b.meta, hb, bytes, w.main);
		} else {
			w.r = w.cu->MemcpyHtoD(w.b.meta, hb, bytes);
			free(hb);
		}
	}
	eval_logit_rows(reqs, n, lrows);
	w.hlog_host = staged ? logits : NULL;
	if (m->store)	/* the hash layers' experts are known from the tokens */
		moe_prefetch_hashed(m, tok, R);
	if (graph)
		ret = forward_graph(&w, pos, lrows, err, errlen);
	else
		ret = forward(&w, pos, lrows, err, errlen);
	if (ret && m->store && store_error(m->store)[0]) {
		w.cu->CtxSynchronize();	/* queued copies may still read hstage */
		eval_reset_all(reqs, n);
		goto out;
	}
	/* head() sent the logits out in this many pieces (0: one copy now) */
	lpieces = logit_pieces(&w);
	if (nl && !w.r && !ret && lpieces) {
		/* each piece on to the caller as soon as it is in hstage */
		float *dst = NULL;

		for (uint32_t i = 0; i < n; i++)
			if (reqs[i].want != DSV4_LOGITS_NONE && reqs[i].n_tokens)
				dst = reqs[i].logits;
		for (uint32_t i = 0; i < lpieces && !w.r; i++) {
			uint32_t r0, cnt;

			logit_piece(c->vocab_size, lpieces, i, &r0, &cnt);
			w.r = w.cu->EventSynchronize(w.gm->logit_ev[i]);
			if (!w.r)
				memcpy(dst + r0, logits + r0, (size_t)cnt * sizeof(float));
		}
	} else if (nl && !w.r && !ret && staged) {
		/* (a blocking stream: the legacy stream's copy waits for it) */
		w.r = w.cu->MemcpyDtoHAsync(logits, w.b.hlog, (size_t)nl * c->vocab_size * 4, w.main);
	} else if (nl && !w.r && !ret) {
		w.r = w.cu->MemcpyDtoH(logits, w.b.hlog, (size_t)nl * c->vocab_size * 4);
	}
	if (!w.r && !ret)
		w.r = w.cu->CtxSynchronize();
	if (w.gm->profile)
		gpu_prof_collect(w.gm);
	if (w.r || ret) {
		/* the next call rewrites hstage: nothing queued may read it
		 * (the result is this error's, or a sticky one already in w.r) */
		w.cu->CtxSynchronize();
		eval_reset_all(reqs, n);
		ret = dsv4_errf(err, errlen, ret ? ret : -EIO,
				"CUDA forward: %s; the batch's sequences were reset",
				ret ? strerror(-ret) : gpu_err(w.gm->g, w.r));
		goto out;
	}
	eval_deliver(reqs, n, lpieces ? NULL : logits, c->vocab_size);
	m->times.total_ns += now_ns() - t0;
	m->times.rows += R;
out:
	free(meta);
	free(lrows);
	free(owned);
	return ret;
}
