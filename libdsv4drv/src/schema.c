// SPDX-License-Identifier: MIT
/*
 * The tensor schema of a DeepSeek V4 checkpoint, derived from its config,
 * in the release's names and storage formats (architecture spec §8):
 * FP8 e4m3 linear weights with [ceil(out/128), ceil(in/128)] E8M0 scales,
 * FP4 experts as I8 [out, in/2] with [out, in/32] E8M0 scales, BF16 norms,
 * compressors and router, F32 mHC/ape/sinks, I64 tid2eid.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "dsv4drv.h"

struct builder {
	struct dsv4_tensor_spec *v;
	size_t n, cap;
	int oom;
};

static struct dsv4_tensor_spec *add(struct builder *b, enum dsv4_dtype dt,
				    uint32_t ndim, const uint64_t *shape,
				    const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static struct dsv4_tensor_spec *add(struct builder *b, enum dsv4_dtype dt,
				    uint32_t ndim, const uint64_t *shape,
				    const char *fmt, ...)
{
	struct dsv4_tensor_spec *s;
	va_list ap;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct dsv4_tensor_spec *v = realloc(b->v, cap * sizeof(*v));

		if (!v) {
			b->oom = 1;
			return NULL;
		}
		b->v = v;
		b->cap = cap;
	}
	s = &b->v[b->n++];
	va_start(ap, fmt);
	vsnprintf(s->name, sizeof(s->name), fmt, ap);
	va_end(ap);
	s->dtype = dt;
	s->ndim = ndim;
	for (uint32_t i = 0; i < 4; i++)
		s->shape[i] = i < ndim ? shape[i] : 0;
	return s;
}

#define SHAPE(...) (const uint64_t[]){ __VA_ARGS__ }

static uint64_t cdiv(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

/* A linear layer [out, in] in the release's main-weight format. */
static void linear(struct builder *b, const struct dsv4_config *c,
		   const char *prefix, uint64_t out, uint64_t in)
{
	if (!c->fp8) {
		add(b, DSV4_DT_BF16, 2, SHAPE(out, in), "%s.weight", prefix);
		return;
	}
	add(b, DSV4_DT_F8_E4M3, 2, SHAPE(out, in), "%s.weight", prefix);
	add(b, c->scale_ue8m0 ? DSV4_DT_F8_E8M0 : DSV4_DT_F32, 2,
	    SHAPE(cdiv(out, c->weight_block[0]), cdiv(in, c->weight_block[1])),
	    "%s.scale", prefix);
}

/* A routed expert's projection in expert_dtype. */
static void expert_linear(struct builder *b, const struct dsv4_config *c,
			  const char *prefix, uint64_t out, uint64_t in)
{
	switch (c->expert_dtype) {
	case DSV4_EXPERT_FP4:
		add(b, DSV4_DT_I8, 2, SHAPE(out, in / 2), "%s.weight", prefix);
		add(b, DSV4_DT_F8_E8M0, 2, SHAPE(out, in / 32), "%s.scale", prefix);
		break;
	case DSV4_EXPERT_FP8:
		linear(b, c, prefix, out, in);
		break;
	case DSV4_EXPERT_BF16:
		add(b, DSV4_DT_BF16, 2, SHAPE(out, in), "%s.weight", prefix);
		break;
	}
}

static void compressor(struct builder *b, const char *prefix, uint32_t ratio,
		       uint64_t head_dim, uint64_t dim)
{
	uint64_t coff = ratio == 4 ? 2 : 1;	/* CSA pools two overlapping series */

	add(b, DSV4_DT_F32, 2, SHAPE(ratio, coff * head_dim), "%s.ape", prefix);
	add(b, DSV4_DT_BF16, 2, SHAPE(coff * head_dim, dim), "%s.wkv.weight", prefix);
	add(b, DSV4_DT_BF16, 2, SHAPE(coff * head_dim, dim), "%s.wgate.weight", prefix);
	add(b, DSV4_DT_BF16, 1, SHAPE(head_dim), "%s.norm.weight", prefix);
}

static void layer(struct builder *b, const struct dsv4_config *c, uint32_t L)
{
	uint64_t D = c->dim, H = c->n_heads, hd = c->head_dim, hc = c->hc_mult;
	uint64_t mix = (2 + hc) * hc;	/* pre, post, and the hc x hc comb */
	uint32_t ratio = c->compress_ratios[L];
	char p[96];

	add(b, DSV4_DT_BF16, 1, SHAPE(D), "layers.%u.attn_norm.weight", L);
	add(b, DSV4_DT_BF16, 1, SHAPE(D), "layers.%u.ffn_norm.weight", L);
	for (int f = 0; f < 2; f++) {
		const char *which = f ? "ffn" : "attn";

		add(b, DSV4_DT_F32, 2, SHAPE(mix, hc * D), "layers.%u.hc_%s_fn", L, which);
		add(b, DSV4_DT_F32, 1, SHAPE(mix), "layers.%u.hc_%s_base", L, which);
		add(b, DSV4_DT_F32, 1, SHAPE(3), "layers.%u.hc_%s_scale", L, which);
	}
	add(b, DSV4_DT_F32, 1, SHAPE(H), "layers.%u.attn.attn_sink", L);
	snprintf(p, sizeof(p), "layers.%u.attn.wq_a", L);
	linear(b, c, p, c->q_lora_rank, D);
	add(b, DSV4_DT_BF16, 1, SHAPE(c->q_lora_rank), "layers.%u.attn.q_norm.weight", L);
	snprintf(p, sizeof(p), "layers.%u.attn.wq_b", L);
	linear(b, c, p, H * hd, c->q_lora_rank);
	snprintf(p, sizeof(p), "layers.%u.attn.wkv", L);
	linear(b, c, p, hd, D);
	add(b, DSV4_DT_BF16, 1, SHAPE(hd), "layers.%u.attn.kv_norm.weight", L);
	snprintf(p, sizeof(p), "layers.%u.attn.wo_a", L);
	linear(b, c, p, (uint64_t)c->o_groups * c->o_lora_rank, H * hd / c->o_groups);
	snprintf(p, sizeof(p), "layers.%u.attn.wo_b", L);
	linear(b, c, p, D, (uint64_t)c->o_groups * c->o_lora_rank);
	if (ratio) {
		snprintf(p, sizeof(p), "layers.%u.attn.compressor", L);
		compressor(b, p, ratio, hd, D);
	}
	if (ratio == 4) {
		uint64_t ih = c->index_n_heads, id = c->index_head_dim;

		snprintf(p, sizeof(p), "layers.%u.attn.indexer.wq_b", L);
		linear(b, c, p, ih * id, c->q_lora_rank);
		add(b, DSV4_DT_BF16, 2, SHAPE(ih, D), "layers.%u.attn.indexer.weights_proj.weight", L);
		snprintf(p, sizeof(p), "layers.%u.attn.indexer.compressor", L);
		compressor(b, p, 4, id, D);
	}

	add(b, DSV4_DT_BF16, 2, SHAPE(c->n_routed_experts, D), "layers.%u.ffn.gate.weight", L);
	if (L < c->n_hash_layers)
		add(b, DSV4_DT_I64, 2, SHAPE(c->vocab_size, c->n_activated_experts),
		    "layers.%u.ffn.gate.tid2eid", L);
	else
		add(b, DSV4_DT_F32, 1, SHAPE(c->n_routed_experts), "layers.%u.ffn.gate.bias", L);
	for (uint32_t e = 0; e < c->n_routed_experts; e++) {
		uint64_t I = c->moe_inter_dim;

		snprintf(p, sizeof(p), "layers.%u.ffn.experts.%u.w1", L, e);
		expert_linear(b, c, p, I, D);
		snprintf(p, sizeof(p), "layers.%u.ffn.experts.%u.w2", L, e);
		expert_linear(b, c, p, D, I);
		snprintf(p, sizeof(p), "layers.%u.ffn.experts.%u.w3", L, e);
		expert_linear(b, c, p, I, D);
	}
	if (c->n_shared_experts) {
		uint64_t I = (uint64_t)c->moe_inter_dim * c->n_shared_experts;

		snprintf(p, sizeof(p), "layers.%u.ffn.shared_experts.w1", L);
		linear(b, c, p, I, D);
		snprintf(p, sizeof(p), "layers.%u.ffn.shared_experts.w2", L);
		linear(b, c, p, D, I);
		snprintf(p, sizeof(p), "layers.%u.ffn.shared_experts.w3", L);
		linear(b, c, p, I, D);
	}
}

int dsv4_schema_build(const struct dsv4_config *c,
		      struct dsv4_tensor_spec **specs, size_t *count)
{
	struct builder b = { 0 };
	uint64_t D = c->dim, hc = c->hc_mult;

	add(&b, DSV4_DT_BF16, 2, SHAPE(c->vocab_size, D), "embed.weight");
	add(&b, DSV4_DT_BF16, 2, SHAPE(c->vocab_size, D), "head.weight");
	add(&b, DSV4_DT_BF16, 1, SHAPE(D), "norm.weight");
	add(&b, DSV4_DT_F32, 2, SHAPE(hc, hc * D), "hc_head_fn");
	add(&b, DSV4_DT_F32, 1, SHAPE(hc), "hc_head_base");
	add(&b, DSV4_DT_F32, 1, SHAPE(1), "hc_head_scale");
	for (uint32_t L = 0; L < c->n_layers; L++)
		layer(&b, c, L);
	if (b.oom) {
		free(b.v);
		return -ENOMEM;
	}
	*specs = b.v;
	*count = b.n;
	return 0;
}
