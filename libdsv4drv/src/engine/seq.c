// SPDX-License-Identifier: MIT
/*
 * Per-sequence state: for each layer the sliding-window KV ring (slot =
 * pos % window), and for compressed layers the compressor's decode state
 * machine plus the entries it has emitted (main KV, and the indexer's keys
 * on CSA layers).  State is reset per sequence (the official code never
 * resets it, spec §4.3 quirk).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "engine.h"
#include "../gpu/gpu.h"

static void give_back(struct cmp_state *s)
{
	for (uint32_t i = 0; s->pool && i < s->n_blocks; i++)
		kv_pool_put(s->pool, s->blocks[i]);
	s->n_blocks = 0;
}

int cmp_state_init(struct cmp_state *s, uint32_t ratio, uint32_t head_dim, uint32_t rope_dim,
		   int fmt)
{
	uint32_t coff = ratio == 4 ? 2 : 1;
	size_t n = (size_t)coff * ratio * coff * head_dim;

	s->fmt = fmt;
	s->dim = head_dim;
	s->rope_dim = rope_dim;
	s->stride = fmt == KV_MAIN_MODEL1 ? kv_main_bytes(head_dim, rope_dim) :
		    kv_index_bytes((enum kv_index_fmt)fmt, head_dim);
	s->kv = malloc(n * sizeof(float));
	s->score = malloc(n * sizeof(float));
	if (!s->kv || !s->score)
		return -ENOMEM;
	cmp_state_reset(s, ratio, head_dim);
	return 0;
}

void cmp_state_reset(struct cmp_state *s, uint32_t ratio, uint32_t head_dim)
{
	uint32_t coff = ratio == 4 ? 2 : 1;
	size_t n = (size_t)coff * ratio * coff * head_dim;

	for (size_t i = 0; i < n; i++) {
		s->kv[i] = 0;
		s->score[i] = -INFINITY;
	}
	s->n_entries = 0;
	give_back(s);	/* the spill tier's blocks go back to the pool */
}

void cmp_state_free(struct cmp_state *s)
{
	give_back(s);
	free(s->blocks);
	free(s->kv);
	free(s->score);
	free(s->data);
}

/* Room for the entries a sequence emits up to position @end_pos. */
int cmp_state_grow(struct cmp_state *s, uint32_t ratio, uint32_t end_pos)
{
	uint32_t need = end_pos / ratio;
	uint8_t *e;

	if (s->pool) {
		uint32_t nb = (need + s->per_block - 1) / s->per_block;
		uint32_t *b;

		if (nb <= s->n_blocks)
			return 0;
		b = realloc(s->blocks, nb * sizeof(*b));
		if (!b)
			return -ENOMEM;
		s->blocks = b;
		if (kv_pool_reserve(s->pool, nb - s->n_blocks))
			return -ENOMEM;
		while (s->n_blocks < nb)
			s->blocks[s->n_blocks++] = kv_pool_get(s->pool);
		return 0;
	}
	if (need <= s->cap)
		return 0;
	if (need < 2 * s->cap)
		need = 2 * s->cap;
	e = realloc(s->data, (size_t)need * s->stride);
	if (!e)
		return -ENOMEM;
	s->data = e;
	s->cap = need;
	return 0;
}

int dsv4_seq_create(struct dsv4_model *m, uint32_t max_len, struct dsv4_seq **out)
{
	const struct dsv4_config *c = &m->cfg;
	struct dsv4_seq *s;

	if (max_len == 0 || max_len > c->max_position_embeddings)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->max_len = max_len;
	s->layers = calloc(c->n_layers, sizeof(*s->layers));
	if (!s->layers)
		goto oom;
	for (uint32_t L = 0; L < c->n_layers; L++) {
		struct seq_layer *sl = &s->layers[L];
		uint32_t r = c->compress_ratios[L];

		sl->ring = calloc((size_t)c->window_size * c->head_dim, sizeof(float));
		if (!sl->ring)
			goto oom;
		if (r && cmp_state_init(&sl->cmp, r, c->head_dim, c->rope_head_dim, m->kv_main))
			goto oom;
		if (r == 4 && m->kv_pool) {	/* CSA main entries spill */
			sl->cmp.pool = m->kv_pool;
			sl->cmp.per_block = kv_pool_block_bytes(m->kv_pool) / sl->cmp.stride;
		}
		if (r == 4 && cmp_state_init(&sl->icmp, 4, c->index_head_dim, c->rope_head_dim,
					     m->kv_index))
			goto oom;
	}
	if (m->gpu && gpu_seq_create(m->gpu, &s->gpu))
		goto oom;
	*out = s;
	return 0;
oom:
	dsv4_seq_free(s);
	return -ENOMEM;
}

void dsv4_seq_reset(struct dsv4_seq *s)
{
	const struct dsv4_config *c = &s->m->cfg;

	for (uint32_t L = 0; L < c->n_layers; L++) {
		uint32_t r = c->compress_ratios[L];

		if (r)
			cmp_state_reset(&s->layers[L].cmp, r, c->head_dim);
		if (r == 4)
			cmp_state_reset(&s->layers[L].icmp, 4, c->index_head_dim);
	}
	if (s->gpu)
		gpu_seq_reset(s->m->gpu, s->gpu);
	s->pos = 0;
}

void dsv4_seq_free(struct dsv4_seq *s)
{
	if (!s)
		return;
	if (s->gpu)
		gpu_seq_free(s->m->gpu, s->gpu);
	if (s->layers) {
		for (uint32_t L = 0; L < s->m->cfg.n_layers; L++) {
			free(s->layers[L].ring);
			cmp_state_free(&s->layers[L].cmp);
			cmp_state_free(&s->layers[L].icmp);
		}
	}
	free(s->layers);
	free(s);
}

uint32_t dsv4_seq_pos(const struct dsv4_seq *s)
{
	return s->pos;
}
