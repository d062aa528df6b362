// SPDX-License-Identifier: MIT
/*
 * The model in GPU memory: every weight uploaded as stored (FP8/FP4 codes
 * and their scales, BF16, F32 vectors), in one device allocation sized by
 * a dry run of the same walk; per-expert matrix tables for the device-side
 * MoE dispatch; and each sequence's state (window rings, compressor
 * states, emitted entries as F32).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "../engine/engine.h"
#include "gpu.h"
#include "gpu_model.h"

struct uploader {
	struct gpu_model *gm;
	int dry;
	size_t used;
	CUresult r;
};

/* an on-by-default switch turned off with VAR=0 */
static int env_off(const char *var)
{
	const char *v = getenv(var);

	return v && *v == '0';
}

/* an off-by-default switch turned on with VAR=1 */
static int env_on(const char *var)
{
	const char *v = getenv(var);

	return v && *v == '1';
}

/* a number from 0 (unset, negative or not a number) to @max */
static uint32_t env_upto(const char *var, uint32_t max)
{
	const char *v = getenv(var);
	long p = v ? strtol(v, NULL, 10) : 0;

	return p <= 0 ? 0 : p > (long)max ? max : (uint32_t)p;
}

/* $DSV4_GPU_PDL_SKIP's kernel names (comma-separated) as bits */
static uint64_t pdl_skip_mask(const char *list)
{
	_Static_assert(K_COUNT <= 64, "a bit per kernel");
	uint64_t mask = 0;

	for (unsigned int k = 0; list && k < K_COUNT; k++) {
		const char *name = gpu_kernel_name(k), *at = list;
		size_t n = strlen(name);

		while ((at = strstr(at, name))) {
			if ((at == list || at[-1] == ',') && (at[n] == ',' || !at[n]))
				mask |= 1ull << k;
			at += n;
		}
	}
	return mask;
}

/* @bytes of @src into the arena at the next multiple of @align */
static CUdeviceptr put_at(struct uploader *u, const void *src, size_t bytes, size_t align)
{
	size_t at = (u->used + align - 1) / align * align;

	u->used = at + bytes;
	if (u->dry || u->r || !bytes)
		return u->dry ? 0 : u->gm->arena + at;
	u->r = u->gm->g->cu.MemcpyHtoD(u->gm->arena + at, src, bytes);
	return u->gm->arena + at;
}

static CUdeviceptr put(struct uploader *u, const void *src, size_t bytes)
{
	return put_at(u, src, bytes, 256);
}

/* @m's bytes of codes and of scales */
static void mat_parts(const struct mat *m, size_t *db, size_t *sb)
{
	_Static_assert((int)MAT_F32 == FW_F32 && (int)MAT_BF16 == FW_BF16 &&
		       (int)MAT_FP8 == FW_FP8 && (int)MAT_FP4 == FW_FP4,
		       "fw_mat_of() passes the format on as it is");
	*db = fw_code_bytes((uint32_t)m->fmt, (size_t)m->rows * m->cols);
	*sb = m->data ? mat_bytes(m) - *db : 0;
}

static struct fw_mat fw_mat_of(const struct mat *m)
{
	return (struct fw_mat){ .fmt = (uint32_t)m->fmt, .rows = m->rows, .cols = m->cols,
				.scale_f32 = (uint32_t)m->scale_f32 };
}

static struct fw_mat put_mat(struct uploader *u, const struct mat *m)
{
	struct fw_mat f = fw_mat_of(m);
	size_t db, sb;

	if (!m->data)
		return f;
	mat_parts(m, &db, &sb);
	f.data = put(u, m->data, db);
	if (sb)
		f.scale = put(u, m->scale, sb);
	return f;
}

/*
 * Matrices that take the same x (wq_a and wkv; the compressors' and the
 * indexer's weights; the shared expert's sw1 and sw3), back to back in the arena, codes then scales, so
 * that decode runs them as one GEMV: *all is the n as one matrix (their
 * rows in order), its data 0 where their formats or shapes do not line
 * up (then each goes in on its own).
 */
static void put_group(struct uploader *u, const struct mat *const *m, struct fw_mat *const *f,
		      int n, struct fw_mat *all)
{
	size_t d[8] = { 0 }, sc[8] = { 0 };
	int join = n <= 8;

	memset(all, 0, sizeof(*all));
	for (int i = 0; i < n && join; i++) {
		join = m[i]->data && m[i]->fmt == m[0]->fmt && m[i]->cols == m[0]->cols &&
		       m[i]->scale_f32 == m[0]->scale_f32;
		/* each part's codes and scales must start aligned right after
		 * the last's; FP8 block scales line up on whole 128-row blocks */
		if (join)
			mat_parts(m[i], &d[i], &sc[i]);
		if (join && i < n - 1)
			join = d[i] % 256 == 0 && sc[i] % 4 == 0 &&
			       !(m[i]->fmt == MAT_FP8 && m[i]->rows % 128);
	}
	if (!join) {
		for (int i = 0; i < n; i++)
			*f[i] = put_mat(u, m[i]);
		return;
	}
	for (int i = 0; i < n; i++) {
		*f[i] = fw_mat_of(m[i]);
		f[i]->data = put_at(u, m[i]->data, d[i], i ? 1 : 256);
	}
	for (int i = 0; i < n && sc[0]; i++)
		f[i]->scale = put_at(u, m[i]->scale, sc[i], i ? 1 : 256);
	*all = *f[0];
	for (int i = 1; i < n; i++)
		all->rows += m[i]->rows;
}

static CUdeviceptr put_vec(struct uploader *u, const float *v, size_t n)
{
	return v ? put(u, v, n * sizeof(float)) : 0;
}

/* a compressor's vectors (its matrices went in with put_group()) */
static void put_cmp(struct uploader *u, const struct compressor_w *cw, struct gcmp *g)
{
	g->ape = put_vec(u, cw->ape, (size_t)cw->ratio * cw->coff * cw->head_dim);
	g->norm = put_vec(u, cw->norm, cw->head_dim);
}

/* the whole model; with u->dry only the size */
static int put_model(struct uploader *u, struct dsv4_model *m)
{
	struct gpu_model *gm = u->gm;
	const struct dsv4_config *c = &m->cfg;
	uint32_t hc = c->hc_mult, D = c->dim, nmix = (2 + hc) * hc, E = c->n_routed_experts;
	uint32_t K = c->n_activated_experts;
	struct fw_mat *tab = malloc(3 * (size_t)E * sizeof(*tab));
	int32_t *t2e = NULL;

	if (!tab)
		return -ENOMEM;
	gm->embed = put_mat(u, &m->embed);
	gm->head = put_mat(u, &m->head);
	gm->hc_head = put_mat(u, &m->hc_head_mat);
	gm->norm = put_vec(u, m->norm, D);
	gm->hc_head_base = put_vec(u, m->hc_head_base, hc);
	gm->hc_head_scale = put_vec(u, m->hc_head_scale, 1);
	gm->freqs_swa = put_vec(u, m->freqs_swa, c->rope_head_dim / 2);
	gm->freqs_cmp = put_vec(u, m->freqs_cmp, c->rope_head_dim / 2);
	for (uint32_t L = 0; L < c->n_layers; L++) {
		const struct layer_w *lw = &m->layers[L];
		struct glayer *gl = &gm->layers[L];

		gl->attn_norm = put_vec(u, lw->attn_norm, D);
		gl->ffn_norm = put_vec(u, lw->ffn_norm, D);
		for (int b = 0; b < 2; b++) {
			gl->hc_fn[b] = put_mat(u, &lw->hc_fn_mat[b]);
			gl->hc_base[b] = put_vec(u, lw->hc_base[b], nmix);
			gl->hc_scale[b] = put_vec(u, lw->hc_scale[b], 3);
		}
		gl->attn_sink = put_vec(u, lw->attn_sink, c->n_heads);
		put_group(u, (const struct mat *[]){ &lw->wq_a, &lw->wkv },
			  (struct fw_mat *[]){ &gl->wq_a, &gl->wkv }, 2, &gl->wqkv_a);
		gl->q_norm = put_vec(u, lw->q_norm, c->q_lora_rank);
		gl->wq_b = put_mat(u, &lw->wq_b);
		gl->kv_norm = put_vec(u, lw->kv_norm, c->head_dim);
		gl->wo_a = put_mat(u, &lw->wo_a);
		gl->wo_b = put_mat(u, &lw->wo_b);
		/* what takes xn beside the attention: the compressors' wkv and
		 * wgate, the indexer's too and its weights (decode: one GEMV) */
		if (lw->ratio == 4) {
			gl->iwq_b = put_mat(u, &lw->iwq_b);
			put_group(u, (const struct mat *[]){ &lw->cmp.wkv, &lw->cmp.wgate,
							     &lw->icmp.wkv, &lw->icmp.wgate,
							     &lw->iweights },
				  (struct fw_mat *[]){ &gl->cmp.wkv, &gl->cmp.wgate, &gl->icmp.wkv,
						       &gl->icmp.wgate, &gl->iweights },
				  5, &gl->wside);
			put_cmp(u, &lw->icmp, &gl->icmp);
		} else if (lw->ratio) {
			put_group(u, (const struct mat *[]){ &lw->cmp.wkv, &lw->cmp.wgate },
				  (struct fw_mat *[]){ &gl->cmp.wkv, &gl->cmp.wgate }, 2,
				  &gl->wside);
		}
		if (lw->ratio)
			put_cmp(u, &lw->cmp, &gl->cmp);
		gl->gate = put_mat(u, &lw->gate);
		gl->gate_bias = put_vec(u, lw->gate_bias, E);
		gl->tid2eid = 0;
		if (lw->tid2eid) {
			size_t n = (size_t)c->vocab_size * K;

			if (!u->dry) {
				t2e = t2e ? t2e : malloc(n * sizeof(*t2e));
				if (!t2e) {
					free(tab);
					return -ENOMEM;
				}
				for (size_t i = 0; i < n; i++) {
					int64_t v;

					if (lw->tid2eid_i64) {
						memcpy(&v, (const int64_t *)lw->tid2eid + i, sizeof(v));
					} else {
						int32_t v32;

						memcpy(&v32, (const int32_t *)lw->tid2eid + i, sizeof(v32));
						v = v32;
					}
					t2e[i] = v >= 0 && v < E ? (int32_t)v : -1;
				}
			}
			gl->tid2eid = put(u, t2e, n * sizeof(*t2e));
		}
		for (uint32_t e = 0; e < E; e++) {
			const struct mat *x[3] = { &lw->w1[e], &lw->w2[e], &lw->w3[e] };

			for (int j = 0; j < 3; j++) {
				/* streamed: shapes only; the GPU cache fills data in */
				tab[j * E + e] = gm->stream ?
					(struct fw_mat){ .fmt = (uint32_t)x[j]->fmt, .rows = x[j]->rows,
							 .cols = x[j]->cols,
							 .scale_f32 = (uint32_t)x[j]->scale_f32 } :
					put_mat(u, x[j]);
			}
		}
		if (gm->htab)
			memcpy(gm->htab + (size_t)L * 3 * E, tab, 3 * (size_t)E * sizeof(*tab));
		gl->e1 = tab[0];
		gl->e2 = tab[E];
		gl->w1tab = put(u, tab, E * sizeof(*tab));
		gl->w2tab = put(u, tab + E, E * sizeof(*tab));
		gl->w3tab = put(u, tab + 2 * E, E * sizeof(*tab));
		put_group(u, (const struct mat *[]){ &lw->sw1, &lw->sw3 },
			  (struct fw_mat *[]){ &gl->sw1, &gl->sw3 }, 2, &gl->sw13);
		gl->sw2 = put_mat(u, &lw->sw2);
	}
	free(tab);
	free(t2e);
	return 0;
}

static uint64_t al256(uint64_t v)
{
	return (v + 255) & ~255ull;
}

/*
 * Streamed experts: the CPU store's pinned cache registered with the
 * driver (pieces of at most 64 GiB), a GPU cache of expert slots, and a
 * non-blocking copy stream so that copies overlap the compute stream.
 */
static int stream_open(struct gpu_model *gm, char *err, size_t errlen)
{
	const struct dsv4_config *c = &gm->m->cfg;
	const struct layer_w *lw = &gm->m->layers[0];
	const struct cu_driver *cu = &gm->g->cu;
	uint32_t K = c->n_activated_experts, E = c->n_routed_experts;
	size_t free_b = 0, total_b = 0;
	uint64_t len, want;
	char *addr;
	CUresult r;

	store_region(gm->m->store, (void **)&addr, &len);
	for (uint64_t at = 0; at < len; at += 64ull << 30) {
		uint64_t n = len - at < (64ull << 30) ? len - at : 64ull << 30;

		if (gm->n_pinned == 64)
			break;
		r = cu->MemHostRegister(addr + at, n, 0);
		if (r)
			return dsv4_errf(err, errlen, -EIO,
					 "CUDA backend: cannot register the pinned expert cache "
					 "(%llu bytes at %llu): %s", (unsigned long long)n,
					 (unsigned long long)at, gpu_err(gm->g, r));
		gm->pinned[gm->n_pinned++] = addr + at;
	}
	gm->gslot_bytes = al256(mat_bytes(&lw->w1[0])) + al256(mat_bytes(&lw->w2[0])) +
			  al256(mat_bytes(&lw->w3[0])) + 3 * 256;
	cu->MemGetInfo(&free_b, &total_b);
	want = getenv("DSV4_GPU_EXPERT_SLOTS") ? strtoull(getenv("DSV4_GPU_EXPERT_SLOTS"), NULL, 10) :
	       2ull * K * c->n_layers;
	if (want > (uint64_t)E * c->n_layers)
		want = (uint64_t)E * c->n_layers;
	if (!getenv("DSV4_GPU_EXPERT_SLOTS") && want * gm->gslot_bytes > free_b / 2)
		want = free_b / 2 / gm->gslot_bytes;
	if (want < K)
		return dsv4_errf(err, errlen, -ENOMEM,
				 "CUDA backend: room for %llu expert slots on the GPU, %u needed",
				 (unsigned long long)want, K);
	gm->gslots = (uint32_t)want;
	r = cu->MemAlloc(&gm->gcache, gm->gslots * gm->gslot_bytes);
	if (r) {
		gm->gcache = 0;
		return dsv4_errf(err, errlen, -ENOMEM, "CUDA backend: %u expert slots: %s",
				 gm->gslots, gpu_err(gm->g, r));
	}
	gm->gwhere = malloc((size_t)c->n_layers * E * sizeof(*gm->gwhere));
	gm->gslot = calloc(gm->gslots, sizeof(*gm->gslot));
	if (!gm->gwhere || !gm->gslot)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	memset(gm->gwhere, 0xff, (size_t)c->n_layers * E * sizeof(*gm->gwhere));
	for (uint32_t i = 0; i < gm->gslots; i++)
		gm->gslot[i].layer = -1;
	r = cu->StreamCreate(&gm->copy, 1 /* non-blocking */);
	if (!r)
		r = cu->EventCreate(&gm->copied, 2 /* no timing */);
	if (r)
		return dsv4_errf(err, errlen, -EIO, "CUDA backend: copy stream: %s", gpu_err(gm->g, r));
	gm->st.slots = gm->gslots;
	gm->st.slot_bytes = gm->gslot_bytes;
	return 0;
}

int dsv4_model_gpu_stream_stats(const struct dsv4_model *m, struct dsv4_gpu_stream_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!m->gpu || !m->gpu->stream)
		return -ENOENT;
	*st = m->gpu->st;
	return 0;
}

int dsv4_model_gpu_graph_stats(const struct dsv4_model *m, uint64_t *captured,
			       uint64_t *replayed)
{
	*captured = m->gpu ? m->gpu->graph_builds : 0;
	*replayed = m->gpu ? m->gpu->graph_replays : 0;
	return m->gpu ? 0 : -ENOENT;
}

/* what the GPU forward does not do (yet): the CPU serves these */
static int unsupported(const struct dsv4_model *m, char *err, size_t errlen)
{
	const struct dsv4_model_options *o = &m->opt;

	uint32_t nope = m->cfg.head_dim - m->cfg.rope_head_dim;

	if (o->kv_main == DSV4_KV_MODEL1 &&
	    (m->cfg.rope_head_dim >= m->cfg.head_dim || nope % 64 || m->cfg.rope_head_dim % 2 ||
	     FW_MODEL1_BYTES(m->cfg.head_dim, m->cfg.rope_head_dim) !=
		     kv_main_bytes(m->cfg.head_dim, m->cfg.rope_head_dim)))
		return dsv4_errf(err, errlen, -ENOTSUP,
				 "CUDA backend: MODEL1 main entries need nope dims in whole 64-blocks "
				 "and even rope dims (head_dim %u, rope %u)",
				 m->cfg.head_dim, m->cfg.rope_head_dim);
	if (m->cfg.head_dim % 4 || m->cfg.head_dim > 1024 || m->cfg.index_head_dim > 1024)
		return dsv4_errf(err, errlen, -ENOTSUP, "CUDA backend: head_dim %u not supported",
				 m->cfg.head_dim);
	return 0;
}

/* gm->hstage: 64 KB of metadata (some 2000 rows) and logits for up to 4
 * rows (decode, a few sequences side by side); without it the copies are
 * pageable */
static void stage_open(struct gpu_model *gm)
{
	size_t meta = 64 * 1024, logits = (size_t)4 * gm->m->cfg.vocab_size * sizeof(float);
	size_t bytes = (meta + logits + 4095) / 4096 * 4096;
	uint8_t *p = aligned_alloc(4096, bytes);

	if (p && !gm->g->cu.MemHostRegister(p, bytes, 0)) {
		gm->hstage = p;
		gm->hstage_meta = meta;
		gm->hstage_logits = bytes - meta;
		return;
	}
	free(p);
}

int gpu_model_open(struct dsv4_model *m, int ordinal, struct gpu_model **out, char *err,
		   size_t errlen)
{
	struct gpu_model *gm;
	struct uploader u = { 0 };
	size_t free_b = 0, total_b = 0;
	CUresult r;
	int ret;

	*out = NULL;
	ret = unsupported(m, err, errlen);
	if (ret)
		return ret;
	gm = calloc(1, sizeof(*gm));
	if (!gm)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	gm->m = m;
	gm->layers = calloc(m->cfg.n_layers, sizeof(*gm->layers));
	if (!gm->layers) {
		free(gm);
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	}
	ret = dsv4_gpu_open(ordinal, NULL, &gm->g, err, errlen);
	if (ret)
		goto fail;
	gm->stream = m->store != NULL;
	if (gm->stream) {
		gm->htab = calloc((size_t)m->cfg.n_layers * 3 * m->cfg.n_routed_experts,
				  sizeof(*gm->htab));
		if (!gm->htab)
			goto oom;
	}
	u.gm = gm;
	u.dry = 1;
	ret = put_model(&u, m);
	if (ret)
		goto oom;
	gm->weight_bytes = u.used;
	gm->g->cu.MemGetInfo(&free_b, &total_b);
	r = gm->g->cu.MemAlloc(&gm->arena, u.used);
	if (r) {
		ret = dsv4_errf(err, errlen, -ENOMEM,
				"CUDA backend: the weights need %.2f GiB of GPU memory, %.2f GiB free "
				"(%s)", u.used / 1073741824.0, free_b / 1073741824.0,
				gpu_err(gm->g, r));
		gm->arena = 0;
		goto fail;
	}
	u.dry = 0;
	u.used = 0;
	ret = put_model(&u, m);
	if (ret)
		goto oom;
	if (u.r) {
		ret = dsv4_errf(err, errlen, -EIO, "CUDA backend: uploading the weights: %s",
				gpu_err(gm->g, u.r));
		goto fail;
	}
	/* split-K: at most 32 slices of matrices up to 8192 rows, per stream */
	r = 0;
	for (int i = 0; i < 3 && !r; i++) {
		r = gm->g->cu.MemAlloc(&gm->splitk_part[i], (size_t)32 * 8192 * sizeof(float));
		if (!r)
			r = gm->g->cu.MemAlloc(&gm->splitk_count[i], 256 * sizeof(uint32_t));
		if (!r)
			r = gm->g->cu.MemsetD32(gm->splitk_count[i], 0, 256);
	}
	if (!r)
		r = gm->g->cu.MemAlloc(&gm->attn_bar, ATTN_BAR_WORDS * sizeof(uint32_t));
	if (!r)
		r = gm->g->cu.MemsetD32(gm->attn_bar, 0, ATTN_BAR_WORDS);
	if (!r)
		r = gm->g->cu.StreamCreate(&gm->main, 0 /* blocking */);
	if (!r)
		r = gm->g->cu.StreamCreate(&gm->side, 1 /* non-blocking */);
	if (!r)
		r = gm->g->cu.EventCreate(&gm->fork, 2 /* no timing */);
	if (!r)
		r = gm->g->cu.EventCreate(&gm->join, 2);
	if (!r)
		r = gm->g->cu.StreamCreate(&gm->mhc, 1);
	if (!r)
		r = gm->g->cu.EventCreate(&gm->mhc_fork, 2);
	if (!r)
		r = gm->g->cu.EventCreate(&gm->mhc_join, 2);
	if (!r)
		r = gm->g->cu.StreamCreate(&gm->pf, 1);
	if (!r)
		r = gm->g->cu.EventCreate(&gm->pf_fork, 2);
	if (!r)
		r = gm->g->cu.EventCreate(&gm->pf_join, 2);
	if (!r)
		r = gm->g->cu.StreamCreate(&gm->ixs, 1);
	if (!r)
		r = gm->g->cu.EventCreate(&gm->ix_fork, 2);
	if (!r)
		r = gm->g->cu.EventCreate(&gm->ix_join, 2);
	if (!r)
		r = gm->g->cu.EventCreate(&gm->ix_inputs, 2);
	for (int i = 0; i < GPU_LOGIT_PIECES_MAX && !r; i++)
		r = gm->g->cu.EventCreate(&gm->logit_ev[i], 2);
	if (r) {
		ret = dsv4_errf(err, errlen, -ENOMEM, "CUDA backend: scratch: %s", gpu_err(gm->g, r));
		goto fail;
	}
	if (gm->stream) {
		ret = stream_open(gm, err, errlen);
		if (ret)
			goto fail;
	}
	gm->m1 = m->kv_main == KV_MAIN_MODEL1;
	gm->k8 = m->kv_index == KV_INDEX_FP8;
	if (m->opt.gpu_kv_spill) {
		struct dsv4_mem_options mo = { .allow_unlocked = 1 };

		ret = dsv4_mem_open(m->opt.kv_mem ? m->opt.kv_mem : &mo, &gm->kv_mem, err, errlen);
		if (ret)
			goto fail;
	}
	stage_open(gm);
	const char *prof = getenv("DSV4_GPU_PROFILE");

	gm->profile = prof && *prof == '1';
	gm->prof_graph = !prof ? PROF_GRAPH_OFF :
			 !strcmp(prof, "graph") ? PROF_GRAPH_LAUNCHES :
			 !strcmp(prof, "replay") ? PROF_GRAPH_REPLAY : PROF_GRAPH_OFF;
	gm->graphs = !env_off("DSV4_GPU_GRAPHS");
	gm->split_attn = !env_off("DSV4_GPU_SPLIT_ATTN");
	/* both opt-in until they have run on a GPU */
	gm->pv_shared = env_on("DSV4_GPU_PV_SHARED");
	if (env_on("DSV4_GPU_ATTN_FUSED")) {
		int per_sm = 0;
		CUfunction fused = gm->g->fn[gm->pv_shared ? K_ATTN_FUSED_SK : K_ATTN_FUSED];

		if (!gm->g->cu.OccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fused, 256, 0) &&
		    per_sm > 0)
			gm->attn_fused_fit = (uint32_t)per_sm * (uint32_t)gm->g->sms;
	}
	gm->ring_aside = !env_off("DSV4_GPU_RING_ASIDE");
	gm->mhc_stream = !env_off("DSV4_GPU_MHC_STREAM");
	gm->experts_mma = !env_off("DSV4_GPU_MMA");
	gm->fuse_mhc = !env_off("DSV4_GPU_FUSE");
	gm->fuse_qkv = !env_off("DSV4_GPU_FUSE_QKV");
	gm->fuse_route = !env_off("DSV4_GPU_FUSE_ROUTE");
	gm->fuse_glu = env_on("DSV4_GPU_FUSE_GLU");	/* opt-in until it has run on a GPU */
	gm->gemm_pipe = env_on("DSV4_GPU_GEMM_PIPE");	/* (likewise) */
	gm->prefill_split = env_on("DSV4_GPU_PREFILL_SPLIT");	/* (likewise) */
	gm->wqb_loop = env_upto("DSV4_GPU_WQB_LOOP", 16);	/* (likewise) */
	gm->linear_mma = !env_off("DSV4_GPU_LINEAR_MMA");
	gm->woa_mma = !env_off("DSV4_GPU_WOA_MMA");
	gm->index_ept = env_on("DSV4_GPU_INDEX_EPT") ? 1 : 2;
	gm->topk_parts = !env_off("DSV4_GPU_TOPK_PARTS");
	/* (FP8 keys are off the FP4 grid the tensor-core scores need) */
	gm->index_mma = gm->k8 || env_off("DSV4_GPU_INDEX_MMA") ? 0 :
			env_on("DSV4_GPU_INDEX_MMA") ? 2 : 1;
	gm->index_aside = !env_off("DSV4_GPU_INDEX_ASIDE");
	gm->index_mma8 = !env_off("DSV4_GPU_INDEX_MMA8");
	gm->icmp_side = !env_off("DSV4_GPU_ICMP_SIDE");
	gm->index_sblocks = getenv("DSV4_GPU_INDEX_SBLOCKS") ?
			    env_upto("DSV4_GPU_INDEX_SBLOCKS", 65535) : 2 * (uint32_t)gm->g->sms;
	{
		uint32_t ih = m->cfg.index_n_heads, ihd = m->cfg.index_head_dim;

		/* where gpu_forward.c's index_mma() and index_mma8() pick _mma8 */
		gm->icodes = !env_off("DSV4_GPU_ICODES") && gm->index_mma && gm->index_mma8 &&
			     m->opt.numerics == DSV4_NUMERICS_REFERENCE &&
			     (ih == 8 || ih == 16 || ih == 32 || ih == 64) && ihd % 32 == 0 &&
			     ihd <= 128;
		gm->codes_only = gm->icodes && env_on("DSV4_GPU_KEY_CODES_ONLY");
	}
	gm->l2pf_woa = env_upto("DSV4_GPU_L2PF_WOA", 100);
	gm->l2pf_wqb = env_upto("DSV4_GPU_L2PF_WQB", 100);
	gm->l2pf_shared = env_upto("DSV4_GPU_L2PF_SHARED", 100);
	gm->l2pf_last = (uint32_t)env_on("DSV4_GPU_L2PF_LAST");
	gm->l2pf_blocks = env_upto("DSV4_GPU_L2PF_BLOCKS", 1024);
	gm->pdl = !env_off("DSV4_GPU_PDL") && gm->g->cu.LaunchKernelEx && gm->g->cc_major >= 9;
	gm->pdl_skip = pdl_skip_mask(getenv("DSV4_GPU_PDL_SKIP"));
	gm->logit_pieces = 3;
	if (getenv("DSV4_GPU_LOGIT_PIECES")) {
		unsigned long p = strtoul(getenv("DSV4_GPU_LOGIT_PIECES"), NULL, 10);

		gm->logit_pieces = p < 1 ? 1 : p > GPU_LOGIT_PIECES_MAX ? GPU_LOGIT_PIECES_MAX : p;
	}
	if (gm->profile) {
		gm->prof_cap = 8192;
		gm->prof_ev = calloc(2 * (size_t)gm->prof_cap, sizeof(*gm->prof_ev));
		gm->prof_what = calloc(gm->prof_cap, sizeof(*gm->prof_what));
		for (uint32_t i = 0; gm->prof_ev && i < 2 * gm->prof_cap; i++)
			if (gm->g->cu.EventCreate(&gm->prof_ev[i], 0))
				gm->prof_ev[i] = NULL;
		if (!gm->prof_ev || !gm->prof_what)
			gm->profile = 0;
	}
	{
		/* dynamic shared memory: what the opt-in leaves beside the static */
		int stat = 0;

		gm->g->cu.FuncGetAttribute(&stat, 1 /* SHARED_SIZE_BYTES */, gm->g->fn[K_ATTENTION]);
		gm->attn_smem = 48 * 1024 - (uint32_t)stat;
		if (gm->g->smem_optin > 48 * 1024 &&
		    !gm->g->cu.FuncSetAttribute(gm->g->fn[K_ATTENTION], 8 /* MAX_DYNAMIC_SHARED */,
						gm->g->smem_optin - stat))
			gm->attn_smem = (uint32_t)(gm->g->smem_optin - stat);
	}
	*out = gm;
	return 0;
oom:
	ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
fail:
	gpu_model_close(gm);
	return ret;
}

void gpu_prof_collect(struct gpu_model *gm)
{
	const struct cu_driver *cu = &gm->g->cu;
	float ms;

	if (!gm->prof_used || cu->EventSynchronize(gm->prof_ev[2 * gm->prof_used - 1]))
		goto done;
	for (uint32_t i = 0; i < gm->prof_used; i++) {
		int what = gm->prof_what[i];

		if (cu->EventElapsedTime(&ms, gm->prof_ev[2 * i], gm->prof_ev[2 * i + 1]))
			continue;
		if (what >= K_COUNT) {
			gm->prof_lin[what - K_COUNT].s += ms * 1e-3;
			gm->prof_lin[what - K_COUNT].n++;
			what = K_LINEAR;
		}
		gm->prof_s[what] += ms * 1e-3;
		gm->prof_n[what]++;
	}
	if (!cu->EventElapsedTime(&ms, gm->prof_ev[0], gm->prof_ev[2 * gm->prof_used - 1]))
		gm->prof_span += ms * 1e-3;
	gm->prof_forwards++;
done:
	gm->prof_used = 0;
}

void gpu_model_close(struct gpu_model *gm)
{
	if (!gm)
		return;
	gpu_bind(gm->g);
	gpu_graph_profile_report(gm);
	if (gm->profile) {
		double total = 0;

		for (int k = 0; k < K_COUNT; k++)
			total += gm->prof_s[k];
		fprintf(stderr, "dsv4 GPU profile: %llu forwards, %.3f s in kernels, %.3f s from the "
			"first launch to the last (gaps: %.1f %%)\n",
			(unsigned long long)gm->prof_forwards, total, gm->prof_span,
			gm->prof_span > 0 ? 100 * (1 - total / gm->prof_span) : 0.0);
		for (int k = 0; k < K_COUNT; k++)
			if (gm->prof_n[k])
				fprintf(stderr, "  %-22s %9llu calls %9.3f ms %5.1f %%\n", gpu_kernel_name(k),
					(unsigned long long)gm->prof_n[k], gm->prof_s[k] * 1e3,
					100 * gm->prof_s[k] / total);
		fprintf(stderr, "  dsv4_linear by shape (rows x cols, format, input rows, split-K):\n");
		for (uint32_t i = 0; i < gm->n_prof_lin; i++) {
			const struct gpu_prof_lin *p = &gm->prof_lin[i];
			static const double elem[] = { [FW_F32] = 4, [FW_BF16] = 2,
						       [FW_FP8] = 1 + 1.0 / 16384,
						       [FW_FP4] = 0.5 + 1.0 / 32 };
			double us = p->s / p->n * 1e6;

			fprintf(stderr, "    %6u x %-6u fmt %u R %u ks %-2u %8llu calls %9.1f us/call %7.1f GB/s\n",
				p->rows, p->cols, p->fmt, p->nrows, p->ksplit,
				(unsigned long long)p->n, us,
				(double)p->rows * p->cols * elem[p->fmt & 3] / (us * 1e3));
		}
	}
	for (uint32_t i = 0; gm->prof_ev && i < 2 * gm->prof_cap; i++)
		if (gm->prof_ev[i])
			gm->g->cu.EventDestroy(gm->prof_ev[i]);
	free(gm->prof_ev);
	free(gm->prof_what);
	if (gm->g) {
		if (gm->hstage)
			gm->g->cu.MemHostUnregister(gm->hstage);
		for (uint32_t i = 0; i < gm->n_pinned; i++)
			gm->g->cu.MemHostUnregister(gm->pinned[i]);
		if (gm->copied)
			gm->g->cu.EventDestroy(gm->copied);
		if (gm->copy)
			gm->g->cu.StreamDestroy(gm->copy);
		if (gm->gcache)
			gm->g->cu.MemFree(gm->gcache);
		if (gm->scratch)
			gm->g->cu.MemFree(gm->scratch);
		if (gm->attn_bar)
			gm->g->cu.MemFree(gm->attn_bar);
		for (int i = 0; i < 3; i++) {
			if (gm->splitk_part[i])
				gm->g->cu.MemFree(gm->splitk_part[i]);
			if (gm->splitk_count[i])
				gm->g->cu.MemFree(gm->splitk_count[i]);
		}
		if (gm->fork)
			gm->g->cu.EventDestroy(gm->fork);
		if (gm->join)
			gm->g->cu.EventDestroy(gm->join);
		if (gm->mhc_fork)
			gm->g->cu.EventDestroy(gm->mhc_fork);
		if (gm->mhc_join)
			gm->g->cu.EventDestroy(gm->mhc_join);
		if (gm->mhc)
			gm->g->cu.StreamDestroy(gm->mhc);
		if (gm->pf_fork)
			gm->g->cu.EventDestroy(gm->pf_fork);
		if (gm->pf_join)
			gm->g->cu.EventDestroy(gm->pf_join);
		if (gm->pf)
			gm->g->cu.StreamDestroy(gm->pf);
		if (gm->ix_fork)
			gm->g->cu.EventDestroy(gm->ix_fork);
		if (gm->ix_join)
			gm->g->cu.EventDestroy(gm->ix_join);
		if (gm->ix_inputs)
			gm->g->cu.EventDestroy(gm->ix_inputs);
		if (gm->ixs)
			gm->g->cu.StreamDestroy(gm->ixs);
		for (int i = 0; i < GPU_LOGIT_PIECES_MAX; i++)
			if (gm->logit_ev[i])
				gm->g->cu.EventDestroy(gm->logit_ev[i]);
		if (gm->side)
			gm->g->cu.StreamDestroy(gm->side);
		if (gm->graph)
			gm->g->cu.GraphExecDestroy(gm->graph);
		if (gm->main)
			gm->g->cu.StreamDestroy(gm->main);
		if (gm->arena)
			gm->g->cu.MemFree(gm->arena);
		dsv4_gpu_close(gm->g);
	}
	dsv4_mem_close(gm->kv_mem);
	free(gm->hstage);
	free(gm->htab);
	free(gm->gwhere);
	free(gm->gslot);
	free(gm->layers);
	free(gm);
}

const char *gpu_model_describe(const struct gpu_model *gm, char *buf, size_t len)
{
	char d[700];

	snprintf(buf, len, "cuda: %s; %.2f GiB of weights resident%s%s%s%s%s",
		 dsv4_gpu_describe(gm->g, d, sizeof(d)), gm->weight_bytes / 1073741824.0,
		 gm->m1 ? "; MODEL1 main entries" : "", gm->k8 ? "; FP8 indexer keys" : "",
		 gm->kv_mem ? "; CSA entries in host memory (" : "",
		 gm->kv_mem ? dsv4_mem_provider_name(gm->kv_mem) : "", gm->kv_mem ? " provider)" : "");
	return buf;
}

uint64_t gpu_model_weight_bytes(const struct gpu_model *gm)
{
	return gm->weight_bytes;
}

/* ---- sequences ---- */

static CUresult dalloc(struct gpu_model *gm, uint64_t *p, size_t bytes)
{
	CUdeviceptr d = 0;
	CUresult r = gm->g->cu.MemAlloc(&d, bytes ? bytes : 4);

	*p = r ? 0 : d;
	return r;
}

/* a KV_SPILL buffer of @bytes from the provider, mapped into the GPU at *d */
static CUresult spill_alloc(struct gpu_model *gm, size_t bytes, struct dsv4_buf **out,
			    uint64_t *d)
{
	const struct cu_driver *cu = &gm->g->cu;
	struct dsv4_buf *b = NULL;
	CUdeviceptr dp = 0;
	char err[160];
	CUresult r;

	if (dsv4_mem_alloc(gm->kv_mem, (bytes + 4095) & ~(size_t)4095, DSV4_KIND_KV_SPILL,
			   DSV4_NUMA_LOCAL, -1, &b, err, sizeof(err)))
		return 2;	/* CUDA_ERROR_OUT_OF_MEMORY */
	r = cu->MemHostRegister(b->addr, b->size, 0x01 | 0x02);	/* PORTABLE | DEVICEMAP */
	if (!r) {
		r = cu->MemHostGetDevicePointer(&dp, b->addr, 0);
		if (r)
			cu->MemHostUnregister(b->addr);
	}
	if (r) {
		dsv4_mem_free(b);
		return r;
	}
	*out = b;
	*d = dp;
	return 0;
}

static void spill_free(struct gpu_model *gm, struct dsv4_buf *b)
{
	if (!b)
		return;
	gm->g->cu.MemHostUnregister(b->addr);
	dsv4_mem_free(b);
}

int gpu_seq_create(struct gpu_model *gm, struct gpu_seq **out)
{
	const struct dsv4_config *c = &gm->m->cfg;
	struct gpu_seq *gs = calloc(1, sizeof(*gs));
	CUresult r = 0;

	gpu_bind(gm->g);
	*out = NULL;
	if (!gs)
		return -ENOMEM;
	gs->h = calloc(c->n_layers, sizeof(*gs->h));
	gs->cap = calloc(3 * (size_t)c->n_layers, sizeof(*gs->cap));
	if (!gs->h || !gs->cap) {
		gpu_seq_free(gm, gs);
		return -ENOMEM;
	}
	gs->icap = gs->cap + c->n_layers;
	gs->ccap = gs->icap + c->n_layers;
	if (gm->kv_mem) {
		gs->spill = calloc(c->n_layers, sizeof(*gs->spill));
		if (!gs->spill) {
			gpu_seq_free(gm, gs);
			return -ENOMEM;
		}
	}
	for (uint32_t L = 0; L < c->n_layers && !r; L++) {
		struct fw_seq_layer *h = &gs->h[L];
		uint32_t ratio = c->compress_ratios[L], coff = ratio == 4 ? 2 : 1;

		r = dalloc(gm, &h->ring, (size_t)c->window_size * c->head_dim * 4);
		if (!r && ratio) {
			size_t n = (size_t)coff * ratio * coff * c->head_dim * 4;

			r = dalloc(gm, &h->cmp_kv, n);
			if (!r)
				r = dalloc(gm, &h->cmp_score, n);
		}
		if (!r && ratio == 4) {
			size_t n = (size_t)2 * 4 * 2 * c->index_head_dim * 4;

			r = dalloc(gm, &h->icmp_kv, n);
			if (!r)
				r = dalloc(gm, &h->icmp_score, n);
		}
	}
	if (!r)
		r = dalloc(gm, &gs->tab, (size_t)c->n_layers * sizeof(*gs->h));
	if (r || gpu_seq_reset(gm, gs)) {
		gpu_seq_free(gm, gs);
		return -ENOMEM;
	}
	*out = gs;
	return 0;
}

void gpu_seq_free(struct gpu_model *gm, struct gpu_seq *gs)
{
	if (!gs)
		return;
	gpu_bind(gm->g);
	for (uint32_t L = 0; gs->h && L < gm->m->cfg.n_layers; L++) {
		uint64_t *p = &gs->h[L].ring;

		if (gs->spill && gs->spill[L]) {
			spill_free(gm, gs->spill[L]);
			gs->h[L].cmp_ent = 0;
		}
		for (size_t i = 0; i < sizeof(gs->h[L]) / sizeof(uint64_t); i++)
			if (p[i])
				gm->g->cu.MemFree(p[i]);
	}
	free(gs->spill);
	if (gs->tab)
		gm->g->cu.MemFree(gs->tab);
	free(gs->h);
	free(gs->cap);
	free(gs);
}

int gpu_seq_reset(struct gpu_model *gm, struct gpu_seq *gs)
{
	const struct dsv4_config *c = &gm->m->cfg;
	const struct cu_driver *cu = &gm->g->cu;
	CUresult r = 0;

	gpu_bind(gm->g);
	for (uint32_t L = 0; L < c->n_layers && !r; L++) {
		const struct fw_seq_layer *h = &gs->h[L];
		uint32_t ratio = c->compress_ratios[L], coff = ratio == 4 ? 2 : 1;
		size_t n = (size_t)coff * ratio * coff * c->head_dim, ni = (size_t)16 * c->index_head_dim;

		if (ratio) {
			r = cu->MemsetD32(h->cmp_kv, 0, n);
			if (!r)	/* -inf: an empty slot weighs nothing in the softmax */
				r = cu->MemsetD32(h->cmp_score, 0xff800000u, n);
		}
		if (!r && ratio == 4) {
			r = cu->MemsetD32(h->icmp_kv, 0, ni);
			if (!r)
				r = cu->MemsetD32(h->icmp_score, 0xff800000u, ni);
		}
	}
	if (!r)
		r = cu->MemcpyHtoD(gs->tab, gs->h, (size_t)c->n_layers * sizeof(*gs->h));
	return r ? -EIO : 0;
}

/* the spilled entries of layer @L grown to @need (x2); the GPU is idle */
static CUresult grow_spill(struct gpu_model *gm, struct gpu_seq *gs, uint32_t L, uint32_t need,
			   uint32_t dim)
{
	struct dsv4_buf *nb;
	uint64_t d;
	CUresult r;

	if (need <= gs->cap[L])
		return 0;
	if (need < 2 * gs->cap[L])
		need = 2 * gs->cap[L];
	r = spill_alloc(gm, (size_t)need * dim * 4, &nb, &d);
	if (r)
		return r;
	if (gs->spill[L])
		memcpy(nb->addr, gs->spill[L]->addr, (size_t)gs->cap[L] * dim * 4);
	spill_free(gm, gs->spill[L]);
	gs->spill[L] = nb;
	gs->h[L].cmp_ent = d;
	gs->cap[L] = need;
	return 0;
}

/* a layer's main entry in 4-byte words: head_dim F32, or a CSA layer's
 * MODEL1 bytes (a multiple of 8) */
static uint32_t main_entry_words(const struct gpu_model *gm, uint32_t ratio)
{
	const struct dsv4_config *c = &gm->m->cfg;

	return gm->m1 && ratio == 4 ? FW_MODEL1_BYTES(c->head_dim, c->rope_head_dim) / 4 :
				      c->head_dim;
}

/* entries buffer at *p holding *cap entries of @dim words grown to @need (x2) */
static CUresult grow_one(struct gpu_model *gm, uint64_t *p, uint32_t *cap, uint32_t need,
			 uint32_t dim)
{
	uint64_t n = 0;
	CUresult r;

	if (need <= *cap)
		return 0;
	if (need < 2 * *cap)
		need = 2 * *cap;
	r = dalloc(gm, &n, (size_t)need * dim * 4);
	if (!r && *p)
		r = gm->g->cu.MemcpyDtoD(n, *p, (size_t)*cap * dim * 4);
	if (r) {
		if (n)
			gm->g->cu.MemFree(n);
		return r;
	}
	if (*p)
		gm->g->cu.MemFree(*p);
	*p = n;
	*cap = need;
	return 0;
}

int gpu_seq_grow(struct gpu_model *gm, struct gpu_seq *gs, uint32_t end_pos)
{
	const struct dsv4_config *c = &gm->m->cfg;
	int changed = 0;
	CUresult r = 0;

	for (uint32_t L = 0; L < c->n_layers && !r; L++) {
		uint32_t ratio = c->compress_ratios[L], need = ratio ? end_pos / ratio : 0;
		uint32_t edim = main_entry_words(gm, ratio);

		if (!ratio || (need <= gs->cap[L] && (ratio != 4 || ((gm->codes_only ||
								     need <= gs->icap[L]) &&
								    (!gm->icodes || need <= gs->ccap[L])))))
			continue;
		changed = 1;
		if (gs->spill && ratio == 4)
			r = grow_spill(gm, gs, L, need ? need : 1, edim);
		else
			r = grow_one(gm, &gs->h[L].cmp_ent, &gs->cap[L], need ? need : 1, edim);
		if (!r && ratio == 4 && !gm->codes_only)
			r = grow_one(gm, &gs->h[L].icmp_ent, &gs->icap[L], need ? need : 1,
				     c->index_head_dim);
		if (!r && ratio == 4 && gm->icodes)	/* FW_ICODE_BYTES, in floats */
			r = grow_one(gm, &gs->h[L].icmp_code, &gs->ccap[L], need ? need : 1,
				     FW_ICODE_BYTES(c->index_head_dim) / 4);
	}
	if (!r && changed)
		r = gm->g->cu.MemcpyHtoD(gs->tab, gs->h, (size_t)c->n_layers * sizeof(*gs->h));
	return r ? -ENOMEM : 0;
}

uint32_t gpu_index_key_bytes(const struct gpu_model *gm, uint32_t ihd)
{
	return gm && gm->icodes ? FW_ICODE_BYTES(ihd) : 4 * ihd;
}

/* the indexer's first @n keys of a layer (@h) made codes (icmp_code)
 * on the GPU, after they came from the host: from its F32 keys, or
 * without those (codes_only) from @keys on the host through a scratch
 * copy; the GPU is idle */
static CUresult icmp_codes(struct gpu_model *gm, const struct fw_seq_layer *h, uint32_t n,
			   const float *keys)
{
	const struct cu_driver *cu = &gm->g->cu;
	uint32_t ihd = gm->m->cfg.index_head_dim;
	uint64_t ent = h->icmp_ent, code = h->icmp_code, tmp = 0;
	void *a[] = { &ent, &code, &ihd };
	CUresult r = 0;

	if (!code || !n)
		return 0;
	if (!ent) {
		r = dalloc(gm, &tmp, (size_t)n * ihd * sizeof(float));
		if (!r)
			r = cu->MemcpyHtoD(tmp, keys, (size_t)n * ihd * sizeof(float));
		ent = tmp;
	}
	if (!r)
		r = cu->LaunchKernel(gm->g->fn[K_ICMP_CODES], n, 1, 1, 128, 1, 1, 0, gm->main, a,
				     NULL);
	if (!r)
		r = cu->StreamSynchronize(gm->main);
	if (tmp)
		cu->MemFree(tmp);
	return r;
}

/* codes_only: the indexer's @n keys of a layer from their codes (@code,
 * its icmp_code: abi.h's FW_ICODE layout: v / 2^e as int8, then each 32-value
 * block's 2^e) into keys [n, ihd] on the host, exactly (but for the sign of
 * a zero: code 0 comes back +0) */
static CUresult keys_from_codes(struct gpu_model *gm, uint64_t code, uint32_t n, float *keys)
{
	uint32_t ihd = gm->m->cfg.index_head_dim, cb = FW_ICODE_BYTES(ihd);
	uint8_t *codes = malloc((size_t)n * cb + 1);
	CUresult r = codes ? gm->g->cu.MemcpyDtoH(codes, code, (size_t)n * cb) :
		     2;	/* CUDA_ERROR_OUT_OF_MEMORY, as spill_alloc() */

	for (uint32_t w = 0; w < n && !r; w++) {
		const uint8_t *e = codes + (size_t)w * cb;

		for (uint32_t i = 0; i < ihd; i++) {
			float step;

			memcpy(&step, e + ihd + 4 * (i / 32), sizeof(step));
			keys[(size_t)w * ihd + i] = (float)(int8_t)e[i] * step;
		}
	}
	free(codes);
	return r;
}

/* how a compressor's entries are kept on the device: F32; in the host's
 * format (MODEL1 CSA entries: their bytes copied as they are); only as
 * the indexer's codes (codes_only: @dent is icmp_code; to the device the
 * caller makes codes of the F32 keys left in tmp) */
enum sync_form { SYNC_F32, SYNC_RAW, SYNC_CODES };

/* one compressor's state and its @n entries between host and device */
static CUresult sync_cmp(struct gpu_model *gm, struct cmp_state *st, uint64_t dkv, uint64_t dsc,
			 uint64_t dent, uint32_t ratio, uint32_t n, int to_host, float *tmp,
			 enum sync_form form)
{
	int raw = form == SYNC_RAW;
	const struct cu_driver *cu = &gm->g->cu;
	uint32_t coff = ratio == 4 ? 2 : 1;
	size_t sb = (size_t)coff * ratio * coff * st->dim * sizeof(float);
	size_t one = raw ? st->stride : st->dim * sizeof(float), eb = (size_t)n * one;
	uint8_t *tb = (uint8_t *)tmp;
	CUresult r;

	if (to_host) {
		r = cu->MemcpyDtoH(st->kv, dkv, sb);
		if (!r)
			r = cu->MemcpyDtoH(st->score, dsc, sb);
		if (!r && n)
			r = form == SYNC_CODES ? keys_from_codes(gm, dent, n, tmp) :
						 cu->MemcpyDtoH(tmp, dent, eb);
		for (uint32_t w = 0; w < n && !r; w++) {
			if (raw)
				memcpy(cmp_entry_addr(st, w), tb + w * one, one);
			else
				cmp_entry_put(st, w, tmp + (size_t)w * st->dim);
		}
		st->n_entries = n;
		return r;
	}
	for (uint32_t w = 0; w < n; w++) {
		if (raw)
			memcpy(tb + w * one, cmp_entry_addr(st, w), one);
		else
			cmp_entry_get(st, w, tmp + (size_t)w * st->dim);
	}
	r = cu->MemcpyHtoD(dkv, st->kv, sb);
	if (!r)
		r = cu->MemcpyHtoD(dsc, st->score, sb);
	if (!r && n && form != SYNC_CODES)
		r = cu->MemcpyHtoD(dent, tmp, eb);
	return r;
}

int gpu_seq_sync(struct dsv4_seq *s, int to_host)
{
	struct gpu_model *gm = s->m->gpu;
	struct gpu_seq *gs = s->gpu;
	const struct dsv4_config *c = &s->m->cfg;
	uint32_t most = s->pos / 4 + 1, dim = c->head_dim > c->index_head_dim ? c->head_dim :
					       c->index_head_dim;
	float *tmp;
	CUresult r = 0;
	int oom = 0;	/* the host's entries could not grow */

	if (!gs)
		return 0;
	gpu_bind(gm->g);
	if (!to_host && gpu_seq_grow(gm, gs, s->pos))
		return -ENOMEM;
	tmp = malloc((size_t)most * dim * sizeof(float));
	if (!tmp)
		return -ENOMEM;
	for (uint32_t L = 0; L < c->n_layers && !r; L++) {
		struct seq_layer *sl = &s->layers[L];
		const struct fw_seq_layer *h = &gs->h[L];
		uint32_t ratio = c->compress_ratios[L], n = ratio ? s->pos / ratio : 0;
		size_t rb = (size_t)c->window_size * c->head_dim * sizeof(float);

		r = to_host ? gm->g->cu.MemcpyDtoH(sl->ring, h->ring, rb) :
			      gm->g->cu.MemcpyHtoD(h->ring, sl->ring, rb);
		if (!r && ratio && to_host && cmp_state_grow(&sl->cmp, ratio, s->pos)) {
			oom = 1;
			break;
		}
		if (!r && ratio)
			r = sync_cmp(gm, &sl->cmp, h->cmp_kv, h->cmp_score, h->cmp_ent, ratio, n,
				     to_host, tmp, gm->m1 && ratio == 4 ? SYNC_RAW : SYNC_F32);
		if (!r && ratio == 4 && to_host && cmp_state_grow(&sl->icmp, 4, s->pos)) {
			oom = 1;
			break;
		}
		if (!r && ratio == 4)
			r = sync_cmp(gm, &sl->icmp, h->icmp_kv, h->icmp_score,
				     gm->codes_only ? h->icmp_code : h->icmp_ent, 4, n, to_host, tmp,
				     gm->codes_only ? SYNC_CODES : SYNC_F32);
		if (!r && ratio == 4 && !to_host)	/* (tmp: the keys, for codes_only) */
			r = icmp_codes(gm, h, n, tmp);
	}
	free(tmp);
	return oom ? -ENOMEM : r ? -EIO : 0;
}

/* the indexer's keys layer @L has room for on the GPU: F32 and codes, or
 * codes only */
static uint32_t index_keys_held(const struct gpu_model *gm, const struct gpu_seq *gs, uint32_t L)
{
	if (gm->codes_only)
		return gs->ccap[L];
	return gm->icodes && gs->ccap[L] < gs->icap[L] ? gs->ccap[L] : gs->icap[L];
}

/* *out: as many MODEL1 entries of 0.01f as the largest CSA layer holds */
static int model1_filler(const struct gpu_model *gm, const struct gpu_seq *gs, uint8_t **out)
{
	const struct dsv4_config *c = &gm->m->cfg;
	size_t one = (size_t)main_entry_words(gm, 4) * 4;
	uint32_t most = 1;
	float *e = malloc(c->head_dim * sizeof(*e));
	uint8_t *b;

	for (uint32_t L = 0; L < c->n_layers; L++)
		if (c->compress_ratios[L] == 4 && gs->cap[L] > most)
			most = gs->cap[L];
	b = malloc(most * one);
	if (!e || !b) {
		free(e);
		free(b);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < c->head_dim; i++)
		e[i] = 0.01f;
	kv_main_encode(e, c->head_dim, c->rope_head_dim, b);
	for (uint32_t w = 1; w < most; w++)
		memcpy(b + w * one, b, one);
	free(e);
	*out = b;
	return 0;
}

int dsv4_seq_assume_context(struct dsv4_seq *s, uint32_t ctx)
{
	struct gpu_model *gm = s->m->gpu;
	const struct dsv4_config *c = &s->m->cfg;
	CUresult r = 0;

	if (!gm || !s->gpu)
		return -ENOTSUP;
	gpu_bind(gm->g);
	if (ctx >= s->max_len)
		return -EINVAL;
	if (gpu_seq_grow(gm, s->gpu, ctx))
		return -ENOMEM;
	/* the indexer's keys pseudo-random, so that the top-k sees distinct
	 * scores as it would (an equal filler everywhere made every score
	 * equal, the radix select's worst case: every atomic on one bin) */
	size_t most = 0;
	float *keys;

	for (uint32_t L = 0; L < c->n_layers; L++) {
		/* (the F32 keys' room where they are kept, else the codes') */
		uint32_t room = gm->codes_only ? s->gpu->ccap[L] : s->gpu->icap[L];

		if (c->compress_ratios[L] == 4 && room > most)
			most = room;
	}
	most *= c->index_head_dim;
	keys = malloc((most ? most : 1) * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	uint64_t v = 12345;

	for (size_t i = 0; i < most; i++) {
		v = v * 6364136223846793005ull + 1442695040888963407ull;
		keys[i] = (float)((double)(v >> 40) / (double)(1ull << 24) - 0.5) * 0.1f;
	}
	/* on the FP4 grid, as the indexer's compressor leaves real keys with
	 * reference numerics (the tensor-core scores read them as codes) */
	if (s->m->opt.numerics == DSV4_NUMERICS_REFERENCE && c->index_head_dim % 32 == 0)
		dsv4_act_fakequant_fp4(keys, most, keys);
	/* ... and FP8 keys as that form keeps them (kvfmt.c's rounding) */
	for (size_t at = 0; gm->k8 && at < most; at += c->index_head_dim) {
		uint8_t k8[1024 + 4];	/* index_head_dim <= 1024 (unsupported()) */

		kv_index_encode(KV_INDEX_FP8, keys + at, c->index_head_dim, k8);
		kv_index_decode(KV_INDEX_FP8, k8, c->index_head_dim, keys + at);
	}
	/* small finite filler (0.01f) in the rings and the attention's
	 * entries (MODEL1 CSA entries: its encoding, ment), the keys above in
	 * the indexer's */
	uint8_t *ment = NULL;

	if (gm->m1 && model1_filler(gm, s->gpu, &ment)) {
		free(keys);
		return -ENOMEM;
	}
	for (uint32_t L = 0; L < c->n_layers && !r; L++) {
		const struct fw_seq_layer *h = &s->gpu->h[L];

		r = gm->g->cu.MemsetD32(h->ring, 0x3c23d70au, (size_t)c->window_size * c->head_dim);
		if (!r && h->cmp_ent && gm->m1 && c->compress_ratios[L] == 4)
			r = gm->g->cu.MemcpyHtoD(h->cmp_ent, ment, (size_t)s->gpu->cap[L] *
					main_entry_words(gm, 4) * 4);
		else if (!r && h->cmp_ent)
			r = gm->g->cu.MemsetD32(h->cmp_ent, 0x3c23d70au,
						(size_t)s->gpu->cap[L] * c->head_dim);
		if (!r && h->icmp_ent)
			r = gm->g->cu.MemcpyHtoD(h->icmp_ent, keys, (size_t)s->gpu->icap[L] *
						 c->index_head_dim * sizeof(*keys));
		if (!r && c->compress_ratios[L] == 4)
			r = icmp_codes(gm, h, index_keys_held(gm, s->gpu, L), keys);
	}
	free(keys);
	free(ment);
	if (r)
		return -EIO;
	s->pos = ctx;
	return 0;
}
