// SPDX-License-Identifier: MIT
/*
 * Compressed-KV storage formats (spec §4.6).
 *
 * Main entries, FlashMLA "MODEL1": the nope dims as e4m3 with one ue8m0
 * scale per 64, the rope dims as BF16, then the scales and padding: for
 * head_dim 512 / rope 64 that is 448 + 128 + 7 + 1 = 584 bytes.  The scale
 * of a block is the power of two the official FP8 quantizer picks (amax
 * floored at 1e-4, over 448, rounded up), so an entry already on that grid
 * (reference numerics) round-trips exactly in its nope dims.
 *
 * Indexer keys: FP4 e2m1 with one ue8m0 scale per 32 (64 + 4 bytes for
 * 128 dims), exact for keys on the FP4 grid; or FP8 e4m3 with one F32
 * scale per key (128 + 4 bytes), V3.2's layout.
 */
#include <math.h>
#include <string.h>

#include "engine.h"
#include "../gpu/gpu.h"

uint32_t kv_main_bytes(uint32_t head_dim, uint32_t rope_dim)
{
	uint32_t nope = head_dim - rope_dim;

	return (nope + 2 * rope_dim + nope / 64 + 7) & ~7u;
}

uint32_t kv_index_bytes(enum kv_index_fmt fmt, uint32_t dim)
{
	return fmt == KV_INDEX_FP4 ? dim / 2 + dim / 32 : fmt == KV_INDEX_FP8 ? dim + 4 : 4 * dim;
}

void kv_main_encode(const float *e, uint32_t head_dim, uint32_t rope_dim, uint8_t *out)
{
	uint32_t nope = head_dim - rope_dim;
	uint8_t *sc = out + nope + 2 * rope_dim;

	/* the official FP8 rule per 64 (a one-row matrix in 1x64 blocks) */
	dsv4_quant_fp8_blocks(e, 1, nope, 64, out, sc);
	for (uint32_t i = 0; i < rope_dim; i++) {
		uint16_t v = bf16_bits(e[nope + i]);

		memcpy(out + nope + 2 * i, &v, 2);
	}
	memset(sc + nope / 64, 0, kv_main_bytes(head_dim, rope_dim) - (nope + 2 * rope_dim + nope / 64));
}

void kv_main_decode(const uint8_t *in, uint32_t head_dim, uint32_t rope_dim, float *e)
{
	uint32_t nope = head_dim - rope_dim;
	const uint8_t *sc = in + nope + 2 * rope_dim;

	for (uint32_t i = 0; i < nope; i++)
		e[i] = dsv4_e4m3_to_f32(in[i]) * dsv4_e8m0_to_f32(sc[i / 64]);
	for (uint32_t i = 0; i < rope_dim; i++) {
		uint16_t v;

		memcpy(&v, in + nope + 2 * i, 2);
		e[nope + i] = dsv4_bf16_to_f32(v);
	}
}

void kv_index_encode(enum kv_index_fmt fmt, const float *k, uint32_t dim, uint8_t *out)
{
	if (fmt == KV_INDEX_F32) {
		memcpy(out, k, 4 * (size_t)dim);
	} else if (fmt == KV_INDEX_FP4) {
		dsv4_quant_fp4_rows(k, 1, dim, out, out + dim / 2);
	} else {
		float amax = 0, s;

		for (uint32_t i = 0; i < dim; i++)
			amax = fmaxf(amax, fabsf(k[i]));
		s = amax > 0 ? amax / 448.0f : 1.0f;
		for (uint32_t i = 0; i < dim; i++)
			out[i] = dsv4_f32_to_e4m3(fminf(fmaxf(k[i] / s, -448.0f), 448.0f));
		memcpy(out + dim, &s, 4);
	}
}

uint8_t *cmp_entry_addr(const struct cmp_state *st, uint32_t w)
{
	if (st->pool)
		return kv_pool_addr(st->pool, st->blocks[w / st->per_block]) +
		       (size_t)(w % st->per_block) * st->stride;
	return st->data + (size_t)w * st->stride;
}

void cmp_entry_put(struct cmp_state *st, uint32_t w, const float *e)
{
	uint8_t *dst = cmp_entry_addr(st, w);

	if (st->fmt == KV_MAIN_MODEL1)
		kv_main_encode(e, st->dim, st->rope_dim, dst);
	else
		kv_index_encode((enum kv_index_fmt)st->fmt, e, st->dim, dst);
}

void cmp_entry_get(const struct cmp_state *st, uint32_t w, float *e)
{
	const uint8_t *src = cmp_entry_addr(st, w);

	if (st->fmt == KV_MAIN_MODEL1)
		kv_main_decode(src, st->dim, st->rope_dim, e);
	else
		kv_index_decode((enum kv_index_fmt)st->fmt, src, st->dim, e);
}

void kv_index_decode(enum kv_index_fmt fmt, const uint8_t *in, uint32_t dim, float *k)
{
	if (fmt == KV_INDEX_F32) {
		memcpy(k, in, 4 * (size_t)dim);
	} else if (fmt == KV_INDEX_FP4) {
		dsv4_fp4_unpack(in, dim, k);
		for (uint32_t i = 0; i < dim; i++)
			k[i] *= dsv4_e8m0_to_f32(in[dim / 2 + i / 32]);
	} else {
		float s;

		memcpy(&s, in + dim, 4);
		for (uint32_t i = 0; i < dim; i++)
			k[i] = dsv4_e4m3_to_f32(in[i]) * s;
	}
}

/* ---- accounting ---- */

static int main_fmt(enum dsv4_kv_format f)
{
	return f == DSV4_KV_MODEL1 ? KV_MAIN_MODEL1 : KV_INDEX_F32;
}

static int index_fmt(enum dsv4_kv_format f)
{
	return f == DSV4_KV_FP4 ? KV_INDEX_FP4 : f == DSV4_KV_FP8 ? KV_INDEX_FP8 : KV_INDEX_F32;
}

static uint32_t entry_bytes(int fmt, uint32_t dim, uint32_t rope)
{
	return fmt == KV_MAIN_MODEL1 ? kv_main_bytes(dim, rope) : kv_index_bytes((enum kv_index_fmt)fmt, dim);
}

double dsv4_kv_bytes_per_token(const struct dsv4_config *c, enum dsv4_kv_format main,
			       enum dsv4_kv_format index)
{
	double b = 0;

	for (uint32_t L = 0; L < c->n_layers; L++) {
		uint32_t r = c->compress_ratios[L];

		if (!r)
			continue;
		b += (double)entry_bytes(main_fmt(main), c->head_dim, c->rope_head_dim) / r;
		if (r == 4)
			b += (double)entry_bytes(index_fmt(index), c->index_head_dim, c->rope_head_dim) / 4;
	}
	return b;
}

void dsv4_seq_kv_usage(const struct dsv4_seq *s, struct dsv4_kv_usage *u)
{
	const struct dsv4_config *c = &s->m->cfg;

	memset(u, 0, sizeof(*u));
	/* the CUDA backend: the host structures mirror the GPU state on demand */
	gpu_seq_sync((struct dsv4_seq *)s, 1);
	u->tokens = s->pos;
	for (uint32_t L = 0; L < c->n_layers; L++) {
		const struct seq_layer *sl = &s->layers[L];
		uint32_t r = c->compress_ratios[L];

		u->window_bytes += (uint64_t)c->window_size * c->head_dim * sizeof(float);
		if (!r)
			continue;
		uint32_t co = r == 4 ? 2 : 1;

		u->state_bytes += 2ull * co * r * co * c->head_dim * sizeof(float);
		if (sl->cmp.pool) {	/* whole blocks are what the tier holds */
			u->spill_bytes += (uint64_t)sl->cmp.n_blocks * sl->cmp.per_block * sl->cmp.stride;
			u->spill_used_bytes += (uint64_t)sl->cmp.n_entries * sl->cmp.stride;
		}
		else
			u->main_bytes += (uint64_t)sl->cmp.n_entries * sl->cmp.stride;
		if (r == 4) {
			u->state_bytes += 2ull * 2 * 4 * 2 * c->index_head_dim * sizeof(float);
			u->index_bytes += (uint64_t)sl->icmp.n_entries * sl->icmp.stride;
		}
	}
	u->total_bytes = u->window_bytes + u->state_bytes + u->main_bytes + u->index_bytes +
			 u->spill_bytes;
	u->format_bytes_per_token = dsv4_kv_bytes_per_token(c,
		s->m->kv_main == KV_MAIN_MODEL1 ? DSV4_KV_MODEL1 : DSV4_KV_F32,
		s->m->kv_index == KV_INDEX_FP4 ? DSV4_KV_FP4 :
		s->m->kv_index == KV_INDEX_FP8 ? DSV4_KV_FP8 : DSV4_KV_F32);
}
