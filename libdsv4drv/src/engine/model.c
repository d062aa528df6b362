// SPDX-License-Identifier: MIT
/*
 * The V4 model on the CPU: weight views over the mmapped checkpoint, the
 * threaded matrix product, sequences, and the top-level forward pass
 * (embedding -> hc_mult streams -> blocks with mHC -> hc_head -> norm ->
 * head), spec §2 and §5.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../internal.h"
#include "engine.h"
#include "../gpu/gpu.h"

/* ---- loading ---- */

struct loader {
	struct dsv4_model *m;
	char *err;
	size_t errlen;
	int ret;
};

static const struct dsv4_ckpt_tensor *need(struct loader *ld, const char *name)
{
	const struct dsv4_ckpt_tensor *t = dsv4_ckpt_find(ld->m->ck, name);

	if (!t && !ld->ret)
		ld->ret = dsv4_errf(ld->err, ld->errlen, -ENOENT, "%s: not in the checkpoint", name);
	return t;
}

/* A matrix from "<prefix>.weight" (+ ".scale" for FP8/FP4). */
static struct mat load_mat_(struct loader *ld, const char *prefix);
static struct mat load_mat(struct loader *ld, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static struct mat load_mat(struct loader *ld, const char *fmt, ...)
{
	char prefix[128];
	struct mat m;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	m = load_mat_(ld, prefix);
	if (m.cols > ld->m->max_cols)
		ld->m->max_cols = m.cols;
	return m;
}

static struct mat load_mat_(struct loader *ld, const char *prefix)
{
	struct mat m = { 0 };
	char name[160];
	const struct dsv4_ckpt_tensor *w, *s;

	snprintf(name, sizeof(name), "%s.weight", prefix);
	w = need(ld, name);
	if (!w)
		return m;
	if (w->st->ndim != 2 || !w->st->shape[0] || !w->st->shape[1] ||
	    w->st->shape[0] > UINT32_MAX / 2 || w->st->shape[1] > UINT32_MAX / 4) {
		if (!ld->ret)
			ld->ret = dsv4_errf(ld->err, ld->errlen, -EINVAL, "%s: not a matrix", name);
		return m;
	}
	m.rows = (uint32_t)w->st->shape[0];
	m.cols = (uint32_t)w->st->shape[1];
	m.data = dsv4_ckpt_data(w);
	switch (w->st->dtype) {
	case DSV4_DT_F32:
		m.fmt = MAT_F32;
		return m;
	case DSV4_DT_BF16:
		m.fmt = MAT_BF16;
		return m;
	case DSV4_DT_F8_E4M3:
	case DSV4_DT_I8:
	case DSV4_DT_U8:
		break;
	default:
		if (!ld->ret)
			ld->ret = dsv4_errf(ld->err, ld->errlen, -EINVAL, "%s: dtype %s not supported",
					    name, dsv4_dtype_name(w->st->dtype));
		return m;
	}
	snprintf(name, sizeof(name), "%s.scale", prefix);
	s = need(ld, name);
	if (!s)
		return m;
	m.scale = dsv4_ckpt_data(s);
	m.scale_f32 = s->st->dtype == DSV4_DT_F32;
	if (w->st->dtype == DSV4_DT_F8_E4M3) {
		m.fmt = MAT_FP8;
		if (s->st->count != (uint64_t)((m.rows + 127) / 128) * ((m.cols + 127) / 128))
			ld->ret = ld->ret ? ld->ret : dsv4_errf(ld->err, ld->errlen, -EINVAL,
						"%s: %llu scales for [%u, %u]", name,
						(unsigned long long)s->st->count, m.rows, m.cols);
	} else {
		m.fmt = MAT_FP4;
		m.cols *= 2;	/* two e2m1 values per byte */
		if (s->st->dtype != DSV4_DT_F8_E8M0 || m.cols % 32 ||
		    s->st->count != (uint64_t)m.rows * (m.cols / 32))
			ld->ret = ld->ret ? ld->ret : dsv4_errf(ld->err, ld->errlen, -EINVAL,
						"%s: FP4 scales do not fit [%u, %u]",
						name, m.rows, m.cols);
	}
	return m;
}

/* An owned float copy of a BF16/F32 tensor of @count elements. */
static float *load_vec(struct loader *ld, uint64_t count, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static float *load_vec(struct loader *ld, uint64_t count, const char *fmt, ...)
{
	struct dsv4_model *m = ld->m;
	const struct dsv4_ckpt_tensor *t;
	char name[160];
	va_list ap;
	float *v;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	t = need(ld, name);
	if (!t)
		return NULL;
	if (t->st->count != count || (t->st->dtype != DSV4_DT_F32 && t->st->dtype != DSV4_DT_BF16)) {
		if (!ld->ret)
			ld->ret = dsv4_errf(ld->err, ld->errlen, -EINVAL,
					    "%s: expected %llu BF16/F32 values", name,
					    (unsigned long long)count);
		return NULL;
	}
	if (m->owned_used + count > m->owned_cap) {
		if (!ld->ret)
			ld->ret = dsv4_errf(ld->err, ld->errlen, -ENOMEM, "%s: vector space", name);
		return NULL;
	}
	v = m->owned + m->owned_used;
	m->owned_used += (count + 15) & ~15ull;	/* keep 64-byte alignment */
	dsv4_decode_f32(t->st->dtype, dsv4_ckpt_data(t), count, v);
	return v;
}

static uint64_t vec_space(const struct dsv4_config *c)
{
	uint64_t D = c->dim, hc = c->hc_mult, mix = (2 + hc) * hc, total = 0;
	uint64_t pad = 16;

	total += D + pad + hc * hc * D + pad + hc + pad + 1 + pad;	/* norm, hc_head */
	for (uint32_t L = 0; L < c->n_layers; L++) {
		uint64_t r = c->compress_ratios[L], hd = c->head_dim, ihd = c->index_head_dim;

		total += 2 * (D + pad) + 2 * (mix * hc * D + mix + 3 + 3 * pad);
		total += c->n_heads + c->q_lora_rank + hd + 3 * pad;
		total += c->n_routed_experts + pad;
		if (r)
			total += r * 2 * hd + hd + 2 * pad;
		if (r == 4)
			total += 4 * 2 * ihd + ihd + 2 * pad;
	}
	return total;
}

static void load_compressor(struct loader *ld, struct compressor_w *cw, uint32_t L,
			    const char *which, uint32_t ratio, uint32_t head_dim)
{
	cw->ratio = ratio;
	cw->head_dim = head_dim;
	cw->coff = ratio == 4 ? 2 : 1;
	cw->ape = load_vec(ld, (uint64_t)ratio * cw->coff * head_dim,
			   "layers.%u.attn.%s.ape", L, which);
	cw->wkv = load_mat(ld, "layers.%u.attn.%s.wkv", L, which);
	cw->wgate = load_mat(ld, "layers.%u.attn.%s.wgate", L, which);
	cw->norm = load_vec(ld, head_dim, "layers.%u.attn.%s.norm.weight", L, which);
}

static void load_layer(struct loader *ld, uint32_t L)
{
	struct dsv4_model *m = ld->m;
	const struct dsv4_config *c = &m->cfg;
	struct layer_w *lw = &m->layers[L];
	uint64_t D = c->dim, hc = c->hc_mult, mix = (2 + hc) * hc;
	const char *br[2] = { "attn", "ffn" };
	char name[128];

	lw->ratio = c->compress_ratios[L];
	lw->attn_norm = load_vec(ld, D, "layers.%u.attn_norm.weight", L);
	lw->ffn_norm = load_vec(ld, D, "layers.%u.ffn_norm.weight", L);
	for (int b = 0; b < 2; b++) {
		float *fn = load_vec(ld, mix * hc * D, "layers.%u.hc_%s_fn", L, br[b]);

		lw->hc_fn[b] = fn;
		lw->hc_fn_mat[b] = (struct mat){ .fmt = MAT_F32, .rows = (uint32_t)mix,
						 .cols = (uint32_t)(hc * D), .data = fn };
		lw->hc_base[b] = load_vec(ld, mix, "layers.%u.hc_%s_base", L, br[b]);
		lw->hc_scale[b] = load_vec(ld, 3, "layers.%u.hc_%s_scale", L, br[b]);
	}
	lw->attn_sink = load_vec(ld, c->n_heads, "layers.%u.attn.attn_sink", L);
	lw->wq_a = load_mat(ld, "layers.%u.attn.wq_a", L);
	lw->q_norm = load_vec(ld, c->q_lora_rank, "layers.%u.attn.q_norm.weight", L);
	lw->wq_b = load_mat(ld, "layers.%u.attn.wq_b", L);
	lw->wkv = load_mat(ld, "layers.%u.attn.wkv", L);
	lw->kv_norm = load_vec(ld, c->head_dim, "layers.%u.attn.kv_norm.weight", L);
	lw->wo_a = load_mat(ld, "layers.%u.attn.wo_a", L);
	lw->wo_b = load_mat(ld, "layers.%u.attn.wo_b", L);
	if (lw->ratio)
		load_compressor(ld, &lw->cmp, L, "compressor", lw->ratio, c->head_dim);
	if (lw->ratio == 4) {
		lw->iwq_b = load_mat(ld, "layers.%u.attn.indexer.wq_b", L);
		lw->iweights = load_mat(ld, "layers.%u.attn.indexer.weights_proj", L);
		load_compressor(ld, &lw->icmp, L, "indexer.compressor", 4, c->index_head_dim);
	}
	lw->gate = load_mat(ld, "layers.%u.ffn.gate", L);
	if (L < c->n_hash_layers) {
		const struct dsv4_ckpt_tensor *t;

		snprintf(name, sizeof(name), "layers.%u.ffn.gate.tid2eid", L);
		t = need(ld, name);
		if (t) {
			lw->tid2eid = dsv4_ckpt_data(t);
			lw->tid2eid_i64 = t->st->dtype == DSV4_DT_I64;
			if ((t->st->dtype != DSV4_DT_I64 && t->st->dtype != DSV4_DT_I32) ||
			    t->st->count != (uint64_t)c->vocab_size * c->n_activated_experts)
				ld->ret = ld->ret ? ld->ret :
					dsv4_errf(ld->err, ld->errlen, -EINVAL,
						  "%s: expected [vocab, %u] integers", name,
						  c->n_activated_experts);
		}
	} else {
		lw->gate_bias = load_vec(ld, c->n_routed_experts, "layers.%u.ffn.gate.bias", L);
	}
	lw->w1 = calloc(3 * (size_t)c->n_routed_experts, sizeof(struct mat));
	if (!lw->w1) {
		ld->ret = ld->ret ? ld->ret : -ENOMEM;
		return;
	}
	lw->w2 = lw->w1 + c->n_routed_experts;
	lw->w3 = lw->w2 + c->n_routed_experts;
	for (uint32_t e = 0; e < c->n_routed_experts && !ld->ret; e++) {
		lw->w1[e] = load_mat(ld, "layers.%u.ffn.experts.%u.w1", L, e);
		lw->w2[e] = load_mat(ld, "layers.%u.ffn.experts.%u.w2", L, e);
		lw->w3[e] = load_mat(ld, "layers.%u.ffn.experts.%u.w3", L, e);
	}
	lw->sw1 = load_mat(ld, "layers.%u.ffn.shared_experts.w1", L);
	lw->sw2 = load_mat(ld, "layers.%u.ffn.shared_experts.w2", L);
	lw->sw3 = load_mat(ld, "layers.%u.ffn.shared_experts.w3", L);
}

/* Shapes the forward pass relies on, beyond what the schema checked. */
static int check_config(const struct dsv4_config *c, char *err, size_t errlen)
{
	if (c->n_shared_experts != 1)
		return dsv4_errf(err, errlen, -EINVAL, "n_shared_experts %u: only 1 is supported",
				 c->n_shared_experts);
	if (c->head_dim > 1024 || c->index_head_dim > 1024)
		return dsv4_errf(err, errlen, -EINVAL, "head_dim/index_head_dim above 1024");
	if (c->rope_head_dim % 2 || c->rope_head_dim > 256 || c->rope_head_dim > c->head_dim ||
	    c->rope_head_dim > c->index_head_dim)
		return dsv4_errf(err, errlen, -EINVAL, "qk_rope_head_dim %u does not fit",
				 c->rope_head_dim);
	if ((c->head_dim - c->rope_head_dim) % 64)
		return dsv4_errf(err, errlen, -EINVAL,
				 "head_dim - qk_rope_head_dim must be a multiple of 64 (FP8 KV blocks)");
	if (c->index_head_dim & (c->index_head_dim - 1) || c->index_head_dim % 32)
		return dsv4_errf(err, errlen, -EINVAL,
				 "index_head_dim %u: a power of two, multiple of 32", c->index_head_dim);
	if (c->n_heads % c->o_groups)
		return dsv4_errf(err, errlen, -EINVAL, "o_groups %u does not divide %u heads",
				 c->o_groups, c->n_heads);
	if (c->n_activated_experts > c->n_routed_experts || c->n_activated_experts > 64)
		return dsv4_errf(err, errlen, -EINVAL, "num_experts_per_tok %u out of range",
				 c->n_activated_experts);
	/* (16: the CUDA kernels hold a row's mHC streams in arrays of 16) */
	if (c->hc_mult == 0 || c->hc_mult > 16 || c->window_size == 0)
		return dsv4_errf(err, errlen, -EINVAL, "hc_mult/sliding_window out of range");
	for (uint32_t L = 0; L < c->n_layers; L++)
		if (c->compress_ratios[L] > 4096)
			return dsv4_errf(err, errlen, -EINVAL, "layer %u: compress ratio %u", L,
					 c->compress_ratios[L]);
	return 0;
}

int dsv4_backend_from_name(const char *name, enum dsv4_backend *out)
{
	static const char *const names[] = { "auto", "cpu", "cuda" };

	for (uint32_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i])) {
			*out = (enum dsv4_backend)i;
			return 0;
		}
	return -EINVAL;
}

int dsv4_model_load(const char *dir, const struct dsv4_model_options *opt,
		    struct dsv4_model **out, char *err, size_t errlen)
{
	struct dsv4_model *m = calloc(1, sizeof(*m));
	struct loader ld = { .m = m, .err = err, .errlen = errlen };
	const struct dsv4_config *c;
	int ret;

	struct dsv4_model_options o = { 0 };
	const struct kernels *k = NULL;

	if (opt)
		o = *opt;
	/* the operator's choice, where the program left it open */
	if (o.backend == DSV4_BACKEND_AUTO && getenv("DSV4_BACKEND") &&
	    dsv4_backend_from_name(getenv("DSV4_BACKEND"), &o.backend))
		ret = dsv4_errf(err, errlen, -EINVAL,
				"DSV4_BACKEND=\"%s\": not auto, cpu or cuda", getenv("DSV4_BACKEND"));
	else if (o.numerics != DSV4_NUMERICS_REFERENCE && o.numerics != DSV4_NUMERICS_EXACT)
		ret = dsv4_errf(err, errlen, -EINVAL, "numerics mode %d unknown", o.numerics);
	else if (o.backend > DSV4_BACKEND_CUDA)
		ret = dsv4_errf(err, errlen, -EINVAL, "backend %d unknown", o.backend);
	else if (o.flags & ~DSV4_MODEL_HF_SEMANTICS)
		ret = dsv4_errf(err, errlen, -EINVAL, "unknown model flags 0x%x", o.flags);
	else if (!(k = kernels_pick(o.kernels)))
		ret = dsv4_errf(err, errlen, -ENOTSUP, "kernels \"%s\": unknown or not on this CPU",
				o.kernels);
	else if (o.kv_main > DSV4_KV_MODEL1 || o.kv_index > DSV4_KV_FP8 ||
		 o.kv_main == DSV4_KV_FP4 || o.kv_main == DSV4_KV_FP8 || o.kv_index == DSV4_KV_MODEL1)
		ret = dsv4_errf(err, errlen, -EINVAL, "KV storage format not valid there");
	else if (o.threads > 1024)
		ret = dsv4_errf(err, errlen, -EINVAL, "%u threads: at most 1024", o.threads);
	else if (!m)
		ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	else
		ret = 0;
	if (ret) {
		free(m);
		return ret;
	}
	m->opt = o;
	m->k = k;
	/* entry storage: FP4 indexer keys where the numerics put them on that
	 * grid (reference); main entries FP32 unless MODEL1 is asked for, since
	 * its BF16 rope dims round what FP32 activations keep (see the header) */
	m->kv_main = o.kv_main == DSV4_KV_MODEL1 ? KV_MAIN_MODEL1 : KV_INDEX_F32;
	m->kv_index = o.kv_index ? (o.kv_index == DSV4_KV_FP4 ? KV_INDEX_FP4 :
				    o.kv_index == DSV4_KV_FP8 ? KV_INDEX_FP8 : KV_INDEX_F32) :
		      o.numerics == DSV4_NUMERICS_REFERENCE ? KV_INDEX_FP4 : KV_INDEX_F32;
#ifdef __x86_64__
	/* AVX512-BF16 for FP4 rows: when picking freely, or when asked for */
	m->fp4_bf16 = m->k == &kernels_avx512 && cpu_has_avx512bf16() &&
		      (!o.kernels || !*o.kernels || !strcmp(o.kernels, "avx512-bf16"));
	if (o.kernels && !strcmp(o.kernels, "avx512-bf16") && !m->fp4_bf16) {
		free(m);
		return dsv4_errf(err, errlen, -ENOTSUP, "kernels \"avx512-bf16\": not on this CPU");
	}
#endif
	ret = dsv4_ckpt_open(dir, &m->ck, err, errlen);
	if (ret) {
		free(m);
		return ret;
	}
	m->cfg = m->ck->cfg;
	c = &m->cfg;
	ret = check_config(c, err, errlen);
	if (ret)
		goto fail;
	m->owned_cap = vec_space(c);
	m->owned = aligned_alloc(64, ((m->owned_cap * sizeof(float)) + 63) & ~(size_t)63);
	m->layers = calloc(c->n_layers, sizeof(*m->layers));
	m->freqs_swa = calloc(2 * (size_t)c->rope_head_dim, sizeof(float));
	if (!m->owned || !m->layers || !m->freqs_swa) {
		ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	m->freqs_cmp = m->freqs_swa + c->rope_head_dim;
	rope_freqs(m->freqs_swa, c->rope_head_dim, c->rope_theta, 0, c);
	rope_freqs(m->freqs_cmp, c->rope_head_dim, c->compress_rope_theta, 1, c);

	m->embed = load_mat(&ld, "embed");
	m->head = load_mat(&ld, "head");
	m->norm = load_vec(&ld, c->dim, "norm.weight");
	m->hc_head_fn = load_vec(&ld, (uint64_t)c->hc_mult * c->hc_mult * c->dim, "hc_head_fn");
	m->hc_head_base = load_vec(&ld, c->hc_mult, "hc_head_base");
	m->hc_head_scale = load_vec(&ld, 1, "hc_head_scale");
	m->hc_head_mat = (struct mat){ .fmt = MAT_F32, .rows = c->hc_mult,
				       .cols = c->hc_mult * c->dim, .data = m->hc_head_fn };
	for (uint32_t L = 0; L < c->n_layers && !ld.ret; L++)
		load_layer(&ld, L);
	if (ld.ret) {
		ret = ld.ret;
		goto fail;
	}
	if (m->max_cols < c->hc_mult * c->dim)
		m->max_cols = c->hc_mult * c->dim;
	if (m->embed.fmt != MAT_BF16 && m->embed.fmt != MAT_F32) {
		ret = dsv4_errf(err, errlen, -EINVAL, "embed.weight: BF16 or F32 expected");
		goto fail;
	}
	for (uint32_t L = 0; L < c->n_layers; L++) {
		struct dsv4_mem_options def = { .allow_unlocked = 1 };
		uint32_t stride;

		if (c->compress_ratios[L] != 4)
			continue;
		/* CSA main entries spill into KV_SPILL blocks of 64 entries */
		stride = m->kv_main == KV_MAIN_MODEL1 ? kv_main_bytes(c->head_dim, c->rope_head_dim) :
			 4 * c->head_dim;
		ret = kv_pool_open(o.kv_mem ? o.kv_mem : &def, 64 * stride, &m->kv_pool, err, errlen);
		if (ret)
			goto fail;
		break;
	}
	if (o.stream && o.stream->mode == DSV4_EXPERTS_STREAM) {
		ret = store_open(m, o.stream, &m->store, err, errlen);
		if (ret)
			goto fail;
	} else if (o.stream && o.stream->mode != DSV4_EXPERTS_RESIDENT) {
		ret = dsv4_errf(err, errlen, -EINVAL, "expert mode %d unknown", o.stream->mode);
		goto fail;
	}
	ret = pool_create(m->opt.threads, &m->pool);
	if (ret) {
		dsv4_errf(err, errlen, ret, "cannot start %u threads", m->opt.threads);
		goto fail;
	}
	m->scratch = calloc(pool_threads(m->pool), sizeof(*m->scratch));
	m->ascratch = calloc(pool_threads(m->pool), sizeof(*m->ascratch));
	m->kscratch = calloc(pool_threads(m->pool), sizeof(*m->kscratch));
	if (!m->scratch || !m->ascratch || !m->kscratch) {
		ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	snprintf(m->backend, sizeof(m->backend), "cpu");
	if (o.backend != DSV4_BACKEND_CPU) {
		char why[512] = "";

		ret = gpu_model_open(m, o.gpu, &m->gpu, why, sizeof(why));
		if (ret && o.backend == DSV4_BACKEND_CUDA) {
			dsv4_errf(err, errlen, ret, "%s", why);
			goto fail;
		}
		if (ret)
			snprintf(m->backend, sizeof(m->backend), "cpu (CUDA not used: %s)", why);
		else
			gpu_model_describe(m->gpu, m->backend, sizeof(m->backend));
		ret = 0;
	}
	*out = m;
	return 0;
fail:
	dsv4_model_free(m);
	return ret;
}

void dsv4_model_free(struct dsv4_model *m)
{
	if (!m)
		return;
	if (m->layers)
		for (uint32_t L = 0; L < m->cfg.n_layers; L++)
			free(m->layers[L].w1);
	for (uint32_t i = 0; m->pool && i < pool_threads(m->pool); i++) {
		if (m->scratch)
			free(m->scratch[i].buf);
		if (m->ascratch)
			free(m->ascratch[i].buf);
		if (m->kscratch)
			free(m->kscratch[i].buf);
	}
	free(m->ascratch);
	free(m->kscratch);
	free(m->xq.buf);
	free(m->xp.buf);
	free(m->scratch);
	pool_destroy(m->pool);
	gpu_model_close(m->gpu);
	store_close(m->store);
	kv_pool_close(m->kv_pool);
	free(m->layers);
	free(m->freqs_swa);
	free(m->owned);
	dsv4_ckpt_close(m->ck);
	free(m);
}

const struct dsv4_config *dsv4_model_config(const struct dsv4_model *m)
{
	return &m->cfg;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void dsv4_model_time_stats(struct dsv4_model *m, struct dsv4_time_stats *st, int reset)
{
	*st = m->times;
	if (reset)
		memset(&m->times, 0, sizeof(m->times));
}

enum dsv4_expert_mode dsv4_model_stream_stats(const struct dsv4_model *m,
					      struct dsv4_stream_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!m->store)
		return DSV4_EXPERTS_RESIDENT;
	store_stats(m->store, st);
	return DSV4_EXPERTS_STREAM;
}

void dsv4_model_kv_pool_stats(const struct dsv4_model *m, struct dsv4_kv_pool_stats *st)
{
	kv_pool_stats(m->kv_pool, st);
}

size_t mat_bytes(const struct mat *m)
{
	size_t n = (size_t)m->rows * m->cols;

	switch (m->fmt) {
	case MAT_F32:
		return 4 * n;
	case MAT_BF16:
		return 2 * n;
	case MAT_FP8:
		return n + (size_t)((m->rows + 127) / 128) * ((m->cols + 127) / 128) *
			   (m->scale_f32 ? 4 : 1);
	default:
		return n / 2 + n / 32;
	}
}

void dsv4_model_decode_bytes(const struct dsv4_model *m, uint64_t ctx, double *weight_bytes,
			     double *kv_bytes)
{
	const struct dsv4_config *c = &m->cfg;
	double w = mat_bytes(&m->head) + (double)c->dim * 2, kv = 0;
	/* a main entry read: MODEL1's bytes where kept so (the CUDA backend
	 * keeps HCA layers' as F32) */
	double m1 = m->kv_main == KV_MAIN_MODEL1 ? kv_main_bytes(c->head_dim, c->rope_head_dim) : 0;
	double csa_entry = m1 ? m1 : c->head_dim * 4.0;
	double hca_entry = m1 && !m->gpu ? m1 : c->head_dim * 4.0;

	for (uint32_t L = 0; L < c->n_layers; L++) {
		const struct layer_w *lw = &m->layers[L];
		uint64_t r = lw->ratio, win = ctx < c->window_size ? ctx : c->window_size;
		const struct mat *dense[] = { &lw->hc_fn_mat[0], &lw->hc_fn_mat[1], &lw->wq_a,
					      &lw->wq_b, &lw->wkv, &lw->wo_a, &lw->wo_b, &lw->gate,
					      &lw->sw1, &lw->sw2, &lw->sw3, &lw->cmp.wkv,
					      &lw->cmp.wgate, &lw->icmp.wkv, &lw->icmp.wgate,
					      &lw->iwq_b, &lw->iweights };

		for (size_t i = 0; i < sizeof(dense) / sizeof(dense[0]); i++)
			if (dense[i]->data)
				w += mat_bytes(dense[i]);
		w += (double)c->n_activated_experts *
		     (mat_bytes(&lw->w1[0]) + mat_bytes(&lw->w2[0]) + mat_bytes(&lw->w3[0]));
		kv += (double)win * c->head_dim * 4;
		if (r == 4)
			kv += (double)(ctx / 4 < c->index_topk ? ctx / 4 : c->index_topk) * csa_entry +
			      (double)(ctx / 4) * gpu_index_key_bytes(m->gpu, c->index_head_dim);
		else if (r)
			kv += (double)(ctx / r) * hca_entry;
	}
	*weight_bytes = w;
	*kv_bytes = kv;
}

const char *dsv4_model_backend(const struct dsv4_model *m)
{
	return m->backend;
}

int dsv4_model_on_gpu(const struct dsv4_model *m)
{
	return m->gpu != NULL;
}

const char *dsv4_model_kernels(const struct dsv4_model *m)
{
	return m->fp4_bf16 ? "avx512-bf16" : m->k->name;
}

/* ---- the matrix product ---- */

struct mm {
	struct dsv4_model *m;
	const struct mat *w;
	const float *x;
	const uint16_t *xp;	/* FP4 + AVX512-BF16: permuted BF16 rows, else NULL */
	uint32_t ldx, rows;
	float *y;
	uint32_t ldy, per_task;
};

void *buf_reserve(void *buf, size_t *cap, size_t count, size_t elem)
{
	if (buf && *cap >= count)
		return buf;
	free(buf);
	buf = aligned_alloc(64, (count * elem + 63) & ~(size_t)63);
	*cap = buf ? count : 0;
	return buf;
}

static int scratch_reserve(struct scratch *s, size_t floats)
{
	s->buf = buf_reserve(s->buf, &s->cap, floats, sizeof(float));
	return s->buf ? 0 : -ENOMEM;
}

int mat_mul_reserve(struct dsv4_model *m, uint32_t rows)
{
	for (uint32_t i = 0; i < pool_threads(m->pool); i++)
		if (scratch_reserve(&m->scratch[i], (size_t)MM_TILE * m->max_cols))
			return -ENOMEM;
	if (m->fp4_bf16 && scratch_reserve(&m->xp, (size_t)3 * m->max_cols / 2 + 32))
		return -ENOMEM;
	return scratch_reserve(&m->xq, (size_t)rows * m->max_cols);
}

/* few input rows: each weight row is decoded straight into its dots */
static void mm_rows_task(void *ctx, uint32_t task, uint32_t worker)
{
	struct mm *a = ctx;
	uint32_t o0 = task * a->per_task, o1 = o0 + a->per_task;

	(void)worker;
	if (o1 > a->w->rows)
		o1 = a->w->rows;
#ifdef __x86_64__
	if (a->xp) {
		for (uint32_t o = o0; o < o1; o++)
			for (uint32_t r = 0; r < a->rows; r++)
				a->y[(uint64_t)r * a->ldy + o] =
					fp4_bf16_row_dot(a->w, o, a->xp + (uint64_t)r * a->w->cols);
		return;
	}
#endif
	for (uint32_t o = o0; o < o1; o++)
		for (uint32_t r = 0; r < a->rows; r++)
			a->y[(uint64_t)r * a->ldy + o] =
				a->m->k->row_dot(a->w, o, a->x + (uint64_t)r * a->ldx);
}

/* many input rows: decode MM_TILE weight rows once, use them for every input row */
static void mm_tile_task(void *ctx, uint32_t task, uint32_t worker)
{
	struct mm *a = ctx;
	const struct kernels *k = a->m->k;
	uint32_t cols = a->w->cols, o0 = task * MM_TILE;
	uint32_t n = a->w->rows - o0 < MM_TILE ? a->w->rows - o0 : MM_TILE;
	float *buf = a->m->scratch[worker].buf;	/* sized by mat_mul_reserve() */
	float y[4];

	k->decode_rows(a->w, o0, n, buf);
	if (n % 4)
		memset(buf + (uint64_t)n * cols, 0, (size_t)(4 - n % 4) * cols * sizeof(float));
	for (uint32_t r = 0; r < a->rows; r++) {
		const float *x = a->x + (uint64_t)r * a->ldx;
		float *yr = a->y + (uint64_t)r * a->ldy + o0;

		for (uint32_t j = 0; j < n; j += 4) {
			k->dot4(buf + (uint64_t)j * cols, x, cols, y);
			for (uint32_t i = 0; i < 4 && j + i < n; i++)
				yr[j + i] = y[i];
		}
	}
}

void mat_mul(struct dsv4_model *m, const struct mat *w, const float *x, uint32_t ldx,
	     uint32_t rows, float *y, uint32_t ldy, int act_quant)
{
	struct mm a = { .m = m, .w = w, .x = x, .ldx = ldx, .rows = rows, .y = y, .ldy = ldy };
	float *xq = NULL;
	uint32_t threads = pool_threads(m->pool);

	if (act_quant && m->opt.numerics == DSV4_NUMERICS_REFERENCE &&
	    (w->fmt == MAT_FP8 || w->fmt == MAT_FP4) && w->cols % 128 == 0) {
		/* the official linear(): FP8 per-128 activation quant before the GEMM */
		xq = m->xq.buf;	/* sized by mat_mul_reserve() */
		for (uint32_t r = 0; r < rows; r++) {
			memcpy(xq + (uint64_t)r * w->cols, x + (uint64_t)r * ldx,
			       w->cols * sizeof(float));
			fakequant_fp8(xq + (uint64_t)r * w->cols, w->cols, 128);
		}
		a.x = xq;
		a.ldx = w->cols;
	}
	if (rows <= 3) {
#ifdef __x86_64__
		if (xq && m->fp4_bf16 && w->fmt == MAT_FP4 && w->cols % 64 == 0) {
			uint16_t *xp = (uint16_t *)m->xp.buf;	/* sized by mat_mul_reserve() */

			for (uint32_t r = 0; r < rows; r++)
				fp4_bf16_perm_x(xq + (uint64_t)r * w->cols, w->cols,
						xp + (uint64_t)r * w->cols);
			a.xp = xp;
		}
#endif
		uint32_t per = (w->rows + threads * 4 - 1) / (threads * 4);

		a.per_task = per < 4 ? 4 : per;
		pool_run(m->pool, mm_rows_task, &a, (w->rows + a.per_task - 1) / a.per_task);
	} else {
		pool_run(m->pool, mm_tile_task, &a, (w->rows + MM_TILE - 1) / MM_TILE);
	}
}
