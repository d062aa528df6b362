// SPDX-License-Identifier: MIT
/*
 * Hybrid attention of one layer over a batch of rows (spec §4): low-rank q
 * with weighted and per-head RMSNorm, one shared K=V head, partial RoPE,
 * the sliding window, the compressors (HCA: ratio 128, one series; CSA:
 * ratio 4, two overlapping series), the lightning indexer's top-k on CSA
 * layers, attention with per-head sinks, inverse RoPE of the output and
 * the grouped low-rank output projection.
 *
 * Rows of one sequence are consecutive positions (a chunk).  Compressors
 * run token by token as the official decode state machine does, so a
 * prefill chunk of any length gives the entries a one-shot prefill gives;
 * a query at position t sees entry w iff w < (t+1)/ratio.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static int reference(const struct dsv4_model *m)
{
	return m->opt.numerics == DSV4_NUMERICS_REFERENCE;
}

static const float *layer_freqs(const struct dsv4_model *m, uint32_t L)
{
	return m->cfg.compress_ratios[L] ? m->freqs_cmp : m->freqs_swa;
}

/* ---- compressors ---- */

/* Norm, RoPE at the window's first position, then the storage rounding. */
static void cmp_finish(const struct dsv4_model *m, const struct compressor_w *cw, int indexer,
		       uint32_t w, float *e)
{
	uint32_t hd = cw->head_dim, rd = m->cfg.rope_head_dim;
	float cs[256];

	rmsnorm(e, cw->norm, hd, (float)m->cfg.norm_eps, e);
	rope_cs(m->freqs_cmp, rd, w * cw->ratio, cs);
	rope_apply(e + hd - rd, cs, rd, 0);
	if (indexer) {
		hadamard(e, hd);
		if (reference(m))
			fakequant_fp4(e, hd);
	} else if (reference(m)) {
		fakequant_fp8(e, hd - rd, 64);
	}
}

/* One token into the state; emits entry pos/ratio when its window completes. */
static void cmp_push(const struct dsv4_model *m, const struct compressor_w *cw,
		     struct cmp_state *st, int indexer, const float *a, const float *z,
		     uint32_t pos)
{
	uint32_t r = cw->ratio, hd = cw->head_dim, width = cw->coff * hd;
	uint32_t slot = (cw->coff == 2 ? r : 0) + pos % r;
	const float *ape = cw->ape + (size_t)(pos % r) * width;
	float *kv = st->kv + (size_t)slot * width, *sc = st->score + (size_t)slot * width;

	for (uint32_t d = 0; d < width; d++) {
		kv[d] = a[d];
		sc[d] = z[d] + ape[d];
	}
	if ((pos + 1) % r)
		return;

	uint32_t w = pos / r, nslots = cw->coff * r;
	float e[1024];		/* head_dim <= 1024 (model.c checks) */

	/* softmax over the slots, independently per channel d; with overlap,
	 * slots [0, r) give their first-half channels, [r, 2r) the second half */
	for (uint32_t d = 0; d < hd; d++) {
		float mx = -INFINITY, sum = 0, acc = 0;

		for (uint32_t s = 0; s < nslots; s++) {
			uint32_t ch = cw->coff == 2 && s >= r ? hd + d : d;
			float v = st->score[(size_t)s * width + ch];

			mx = v > mx ? v : mx;
		}
		for (uint32_t s = 0; s < nslots; s++) {
			uint32_t ch = cw->coff == 2 && s >= r ? hd + d : d;
			float p = expf(st->score[(size_t)s * width + ch] - mx);

			sum += p;
			acc += p * st->kv[(size_t)s * width + ch];
		}
		e[d] = acc / sum;
	}
	if (cw->coff == 2) {
		memcpy(st->kv, st->kv + (size_t)r * width, (size_t)r * width * sizeof(float));
		memcpy(st->score, st->score + (size_t)r * width, (size_t)r * width * sizeof(float));
	}
	st->n_entries = w + 1;
	cmp_finish(m, cw, indexer, w, e);
	cmp_entry_put(st, w, e);
}

/* a = wkv x, z = wgate x for every row, then each row through its state. */
static int compress_rows(struct dsv4_model *m, const struct compressor_w *cw, uint32_t L,
			 int indexer, const struct batch *b, const float *x)
{
	uint32_t width = cw->coff * cw->head_dim, R = b->rows;
	float *a = malloc((size_t)R * width * 2 * sizeof(float));

	if (!a)
		return -ENOMEM;
	float *z = a + (size_t)R * width;

	mat_mul(m, &cw->wkv, x, m->cfg.dim, R, a, width, 0);
	mat_mul(m, &cw->wgate, x, m->cfg.dim, R, z, width, 0);
	for (uint32_t r = 0; r < R; r++) {
		struct seq_layer *sl = &b->seq[r]->layers[L];

		cmp_push(m, cw, indexer ? &sl->icmp : &sl->cmp, indexer, a + (size_t)r * width,
			 z + (size_t)r * width, b->pos[r]);
	}
	free(a);
	return 0;
}

/* ---- lightning indexer (CSA layers) ---- */

struct idx_task {
	uint32_t r0, r1;	/* rows of one sequence's chunk */
	uint32_t first;		/* first key of the block */
};

struct idx_ctx {
	struct dsv4_model *m;
	const struct batch *b;
	uint32_t L;
	const float *qi, *wi;	/* [R, ih*ihd], [R, ih] */
	float *scores;		/* [R, max_entries] */
	uint32_t max_entries, block;
	const struct idx_task *tasks;
};

/*
 * One block of a sequence's keys against every row of its chunk: keys are
 * decoded once and reused by all rows (a prefill chunk is a small GEMM),
 * four at a time through dot4.  score = sum_h w_h relu(q_h . k).
 */
static void idx_block_task(void *ctx, uint32_t t, uint32_t worker)
{
	struct idx_ctx *c = ctx;
	const struct idx_task *tk = &c->tasks[t];
	const struct dsv4_config *cfg = &c->m->cfg;
	const struct kernels *k = c->m->k;
	uint32_t ih = cfg->index_n_heads, ihd = cfg->index_head_dim;
	const struct cmp_state *st = &c->b->seq[tk->r0]->layers[c->L].icmp;
	uint32_t most = (c->b->pos[tk->r1 - 1] + 1) / 4;	/* positions ascend in a chunk */
	uint32_t n = most - tk->first < c->block ? most - tk->first : c->block;
	float *keys = c->m->scratch[worker].buf;	/* sized by mat_mul_reserve() */
	float y[4];

	for (uint32_t j = 0; j < n; j++)
		cmp_entry_get(st, tk->first + j, keys + (size_t)j * ihd);
	for (uint32_t r = tk->r0; r < tk->r1; r++) {
		uint32_t nvis = (c->b->pos[r] + 1) / 4;

		if (nvis <= tk->first)
			continue;
		uint32_t m = nvis - tk->first < n ? nvis - tk->first : n;
		const float *q = c->qi + (size_t)r * ih * ihd, *w = c->wi + (size_t)r * ih;
		float *sc = c->scores + (size_t)r * c->max_entries + tk->first;

		memset(sc, 0, m * sizeof(float));
		for (uint32_t h = 0; h < ih; h++) {
			const float *qh = q + (size_t)h * ihd;
			uint32_t j = 0;

			for (; j + 4 <= m; j += 4) {
				k->dot4(keys + (size_t)j * ihd, qh, ihd, y);
				for (int i = 0; i < 4; i++)
					sc[j + i] += w[h] * (y[i] > 0 ? y[i] : 0);
			}
			for (; j < m; j++) {
				float d = k->dot(qh, keys + (size_t)j * ihd, ihd);

				sc[j] += w[h] * (d > 0 ? d : 0);
			}
		}
	}
}

/* better(i, j): higher score, then lower index (a deterministic top-k) */
static int better(const float *sc, int32_t i, int32_t j)
{
	return sc[i] > sc[j] || (sc[i] == sc[j] && i < j);
}

/* The k best of sc[0..n) into sel (ascending entry order); a heap of k,
 * then a pass over @mark (n bytes, zero on entry and on return) to order
 * them without a sort. */
static uint32_t topk_select(const float *sc, uint32_t n, uint32_t k, int32_t *sel, uint8_t *mark)
{
	uint32_t h = 0;

	if (k >= n) {
		for (uint32_t i = 0; i < n; i++)
			sel[i] = (int32_t)i;
		return n;
	}
	for (uint32_t i = 0; i < n; i++) {
		int32_t v = (int32_t)i;
		uint32_t j;

		if (h < k) {	/* sift up into a min-heap (worst at the root) */
			j = h++;
			while (j && better(sc, sel[(j - 1) / 2], v)) {
				sel[j] = sel[(j - 1) / 2];
				j = (j - 1) / 2;
			}
			sel[j] = v;
			continue;
		}
		if (!better(sc, v, sel[0]))
			continue;
		j = 0;		/* replace the root, sift down */
		for (;;) {
			uint32_t l = 2 * j + 1, rr = l + 1, w = j;
			int32_t wv = v;

			if (l < k && better(sc, wv, sel[l]))
				w = l, wv = sel[l];
			if (rr < k && better(sc, wv, sel[rr]))
				w = rr;
			if (w == j)
				break;
			sel[j] = sel[w];
			j = w;
		}
		sel[j] = v;
	}
	for (uint32_t i = 0; i < k; i++)
		mark[sel[i]] = 1;
	for (uint32_t i = 0, j = 0; i < n; i++)
		if (mark[i]) {
			sel[j++] = (int32_t)i;
			mark[i] = 0;
		}
	return k;
}

struct sel_ctx {
	const struct batch *b;
	const float *scores;
	uint32_t max_entries, k;
	int32_t *sel;
	uint32_t *nsel;
	uint8_t *mark;		/* per worker, max_entries bytes, zero */
};

static void sel_task(void *ctx, uint32_t r, uint32_t worker)
{
	struct sel_ctx *c = ctx;

	c->nsel[r] = topk_select(c->scores + (size_t)r * c->max_entries, (c->b->pos[r] + 1) / 4,
				 c->k, c->sel + (size_t)r * c->k,
				 c->mark + (size_t)worker * c->max_entries);
}

/* Top-k compressed entries for each row into sel [R, topk], counts in nsel. */
static int indexer_rows(struct dsv4_model *m, uint32_t L, const struct batch *b,
			const float *x, const float *qr, int32_t *sel, uint32_t *nsel)
{
	const struct dsv4_config *c = &m->cfg;
	const struct layer_w *lw = &m->layers[L];
	uint32_t R = b->rows, ih = c->index_n_heads, ihd = c->index_head_dim, rd = c->rope_head_dim;
	uint32_t max_entries = 1;
	float *qi, *wi, *scores;
	int ret;

	for (uint32_t r = 0; r < R; r++)
		if ((b->pos[r] + 1) / 4 > max_entries)
			max_entries = (b->pos[r] + 1) / 4;
	qi = malloc(((size_t)R * ih * ihd + (size_t)R * ih) * sizeof(float));
	scores = malloc((size_t)R * max_entries * sizeof(float));
	if (!qi || !scores) {
		free(qi);
		free(scores);
		return -ENOMEM;
	}
	wi = qi + (size_t)R * ih * ihd;

	mat_mul(m, &lw->iwq_b, qr, c->q_lora_rank, R, qi, ih * ihd, 1);
	mat_mul(m, &lw->iweights, x, c->dim, R, wi, ih, 0);
	for (uint32_t r = 0; r < R; r++) {
		float cs[256];

		rope_cs(m->freqs_cmp, rd, b->pos[r], cs);
		for (uint32_t h = 0; h < ih; h++) {
			float *q = qi + ((size_t)r * ih + h) * ihd;

			rope_apply(q + ihd - rd, cs, rd, 0);
			hadamard(q, ihd);
			if (reference(m))
				fakequant_fp4(q, ihd);
		}
		for (uint32_t h = 0; h < ih; h++)
			wi[(size_t)r * ih + h] *= (float)(1.0 / sqrt((double)ihd) / sqrt((double)ih));
	}
	ret = compress_rows(m, &lw->icmp, L, 1, b, x);
	if (!ret) {
		struct idx_ctx ic = { .m = m, .b = b, .L = L, .qi = qi, .wi = wi, .scores = scores,
				      .max_entries = max_entries };
		uint32_t block = (uint32_t)((size_t)MM_TILE * m->max_cols / ihd) & ~3u, n_tasks = 0;
		struct idx_task *tasks;

		ic.block = block > 256 ? 256 : block;
		tasks = malloc(((size_t)R + (size_t)R * (max_entries / ic.block + 1)) * sizeof(*tasks));
		if (!tasks) {
			free(qi);
			free(scores);
			return -ENOMEM;
		}
		/* per sequence chunk, the key blocks its last row can see */
		for (uint32_t r0 = 0; r0 < R;) {
			uint32_t r1 = r0 + 1;

			while (r1 < R && b->chunk_start[r1] == r0)
				r1++;
			/* a chunk whose rows all see <= top-k entries takes them all:
			 * no scores needed */
			if ((b->pos[r1 - 1] + 1) / 4 > c->index_topk)
				for (uint32_t f = 0; f < (b->pos[r1 - 1] + 1) / 4; f += ic.block)
					tasks[n_tasks++] = (struct idx_task){ r0, r1, f };
			r0 = r1;
		}
		ic.tasks = tasks;
		pool_run(m->pool, idx_block_task, &ic, n_tasks);
		free(tasks);
		struct sel_ctx sc = { .b = b, .scores = scores, .max_entries = max_entries,
				      .k = c->index_topk, .sel = sel, .nsel = nsel };
		uint8_t *mark = calloc((size_t)pool_threads(m->pool) * max_entries, 1);

		sc.mark = mark;
		if (mark)
			pool_run(m->pool, sel_task, &sc, R);
		for (uint32_t r = 0; r < R && mark; r++)
			if (m->opt.hooks && m->opt.hooks->topk)
				m->opt.hooks->topk(m->opt.hooks->ctx, L, b->pos[r],
						   sel + (size_t)r * c->index_topk, nsel[r]);
		if (!mark)
			ret = -ENOMEM;
		free(mark);
	}
	free(qi);
	free(scores);
	return ret;
}

/* ---- attention proper ---- */

struct attn_ctx {
	struct dsv4_model *m;
	const struct batch *b;
	uint32_t L;
	const float *q, *kv;	/* [R, H*hd], [R, hd] (this call's raw KV) */
	const int32_t *sel;	/* CSA: [R, topk] */
	const uint32_t *nsel;
	float *o;		/* [R, H*hd] */
	uint32_t r0;		/* first row of this pass */
	const float *ck;	/* compressed keys decoded for the pass's rows */
	const size_t *ck_off;	/* [R] a row's first key in ck (floats) */
};

/* Compressed entries a row attends to: CSA the top-k, HCA all visible. */
static uint32_t row_entries(const struct attn_ctx *a, uint32_t r, uint32_t i)
{
	uint32_t ratio = a->m->layers[a->L].ratio;

	return ratio == 4 ? (uint32_t)a->sel[(size_t)r * a->m->cfg.index_topk + i] : i;
}

static uint32_t row_count(const struct attn_ctx *a, uint32_t r)
{
	uint32_t ratio = a->m->layers[a->L].ratio;

	return ratio == 4 ? a->nsel[r] : ratio ? (a->b->pos[r] + 1) / ratio : 0;
}

/* a row's compressed keys decoded once for all its heads */
static void decode_task(void *ctx, uint32_t task, uint32_t worker)
{
	struct attn_ctx *a = ctx;
	uint32_t r = a->r0 + task, hd = a->m->cfg.head_dim;
	const struct cmp_state *st = &a->b->seq[r]->layers[a->L].cmp;
	float *dst = (float *)a->ck + a->ck_off[r];

	(void)worker;
	for (uint32_t i = 0; i < row_count(a, r); i++)
		cmp_entry_get(st, row_entries(a, r, i), dst + (size_t)i * hd);
}

static void attn_task(void *ctx, uint32_t task, uint32_t worker)
{
	struct attn_ctx *a = ctx;
	struct dsv4_model *m = a->m;
	const struct dsv4_config *c = &m->cfg;
	const struct layer_w *lw = &m->layers[a->L];
	uint32_t H = c->n_heads, hd = c->head_dim, win = c->window_size, ratio = lw->ratio;
	uint32_t r = a->r0 + task / H, h = task % H, pos = a->b->pos[r];
	uint32_t row0 = a->b->chunk_start[r], start = a->b->pos[row0];
	const struct seq_layer *sl = &a->b->seq[r]->layers[a->L];
	const float *q = a->q + ((size_t)r * H + h) * hd;
	float *o = a->o + ((size_t)r * H + h) * hd;
	float *sc = m->ascratch[worker].buf;
	const float **keys = m->kscratch[worker].buf;
	uint32_t n = 0, first = pos + 1 > win ? pos + 1 - win : 0;
	float scale = 1.0f / sqrtf((float)hd), mx = -INFINITY, denom = 0;

	for (uint32_t p = first; p <= pos; p++)
		keys[n++] = p >= start ? a->kv + (size_t)(row0 + p - start) * hd
				       : sl->ring + (size_t)(p % win) * hd;
	for (uint32_t i = 0; ratio && i < row_count(a, r); i++)
		keys[n++] = sl->cmp.fmt == KV_INDEX_F32 ?
			    (const float *)cmp_entry_addr(&sl->cmp, row_entries(a, r, i)) :
			    a->ck + a->ck_off[r] + (size_t)i * hd;
	for (uint32_t j = 0; j < n; j++) {
		sc[j] = m->k->dot(q, keys[j], hd) * scale;
		mx = sc[j] > mx ? sc[j] : mx;
	}
	memset(o, 0, hd * sizeof(float));
	for (uint32_t j = 0; j < n; j++) {
		float p = expf(sc[j] - mx);

		denom += p;
		if (reference(m))
			p = bf16_round(p);	/* the kernel's P is BF16 before P.V */
		m->k->axpy(p, keys[j], o, hd);
	}
	/* the sink only in the denominator */
	denom += expf(lw->attn_sink[h] - mx);
	for (uint32_t d = 0; d < hd; d++)
		o[d] /= denom;

	float cs[256];

	rope_cs(layer_freqs(m, a->L), c->rope_head_dim, pos, cs);
	rope_apply(o + hd - c->rope_head_dim, cs, c->rope_head_dim, 1);
}

/* Rows in passes whose decoded compressed keys fit a bounded buffer (F32
 * storage is read in place). */
static int attend(struct dsv4_model *m, struct attn_ctx *ac, uint32_t R)
{
	const struct cmp_state *st0 = m->layers[ac->L].ratio ? &ac->b->seq[0]->layers[ac->L].cmp : NULL;
	int decode = st0 && st0->fmt != KV_INDEX_F32;
	size_t budget = (size_t)64 << 20, hd = m->cfg.head_dim;	/* floats: 256 MiB */
	size_t *off = NULL;
	float *ck = NULL;

	if (decode) {
		off = malloc((size_t)R * sizeof(*off));
		if (!off)
			return -ENOMEM;
	}
	ac->ck_off = off;
	for (uint32_t r0 = 0; r0 < R;) {
		uint32_t r1 = r0;
		size_t total = 0;

		/* at least one row per pass, then as many as fit */
		while (r1 < R && (r1 == r0 || !decode ||
				  total + row_count(ac, r1) * hd <= budget)) {
			if (decode) {
				off[r1] = total;
				total += row_count(ac, r1) * hd;
			}
			r1++;
		}
		if (decode) {
			float *n = realloc(ck, (total ? total : 1) * sizeof(float));

			if (!n) {
				free(ck);
				free(off);
				return -ENOMEM;
			}
			ck = n;
			ac->ck = ck;
			ac->r0 = r0;
			pool_run(m->pool, decode_task, ac, r1 - r0);
		}
		ac->r0 = r0;
		pool_run(m->pool, attn_task, ac, (r1 - r0) * m->cfg.n_heads);
		r0 = r1;
	}
	free(ck);
	free(off);
	return 0;
}

int attention_forward(struct dsv4_model *m, uint32_t L, const struct batch *b,
		      const float *x, float *out)
{
	const struct dsv4_config *c = &m->cfg;
	const struct layer_w *lw = &m->layers[L];
	uint32_t R = b->rows, H = c->n_heads, hd = c->head_dim, rd = c->rope_head_dim;
	uint32_t nope = hd - rd, qlr = c->q_lora_rank, G = c->o_groups, olr = c->o_lora_rank;
	float eps = (float)c->norm_eps;
	size_t nq = (size_t)R * H * hd;
	float *qr, *q, *kv, *o, *z;
	int32_t *sel = NULL;
	uint32_t *nsel = NULL;
	int ret = 0;

	qr = malloc(((size_t)R * qlr + 2 * nq + (size_t)R * hd + (size_t)R * G * olr) *
		    sizeof(float));
	if (!qr)
		return -ENOMEM;
	q = qr + (size_t)R * qlr;
	o = q + nq;
	kv = o + nq;
	z = kv + (size_t)R * hd;

	/* q: wq_a -> q_norm -> wq_b -> per-head RMS -> RoPE */
	mat_mul(m, &lw->wq_a, x, c->dim, R, qr, qlr, 1);
	for (uint32_t r = 0; r < R; r++)
		rmsnorm(qr + (size_t)r * qlr, lw->q_norm, qlr, eps, qr + (size_t)r * qlr);
	mat_mul(m, &lw->wq_b, qr, qlr, R, q, H * hd, 1);
	/* kv: wkv -> kv_norm -> RoPE -> FP8 grid on the nope dims */
	mat_mul(m, &lw->wkv, x, c->dim, R, kv, hd, 1);
	for (uint32_t r = 0; r < R; r++) {
		float cs[256], *k = kv + (size_t)r * hd;

		rope_cs(layer_freqs(m, L), rd, b->pos[r], cs);
		for (uint32_t h = 0; h < H; h++) {
			float *qh = q + ((size_t)r * H + h) * hd;

			rmsnorm(qh, NULL, hd, eps, qh);
			rope_apply(qh + nope, cs, rd, 0);
		}
		rmsnorm(k, lw->kv_norm, hd, eps, k);
		rope_apply(k + nope, cs, rd, 0);
		if (reference(m))
			fakequant_fp8(k, nope, 64);
	}
	if (lw->ratio == 4) {
		sel = malloc((size_t)R * c->index_topk * sizeof(*sel));
		nsel = malloc((size_t)R * sizeof(*nsel));
		uint64_t t0 = now_ns();

		ret = sel && nsel ? indexer_rows(m, L, b, x, qr, sel, nsel) : -ENOMEM;
		m->times.indexer_ns += now_ns() - t0;
	}
	if (!ret && lw->ratio)
		ret = compress_rows(m, &lw->cmp, L, 0, b, x);
	if (!ret) {
		struct attn_ctx ac = { .m = m, .b = b, .L = L, .q = q, .kv = kv, .sel = sel,
				       .nsel = nsel, .o = o };

		ret = attend(m, &ac, R);
		/* the window ring takes each chunk's last positions, after every
		 * query of the chunk has read the older ones */
		for (uint32_t r = 0; r < R; r++) {
			struct seq_layer *sl = &b->seq[r]->layers[L];

			memcpy(sl->ring + (size_t)(b->pos[r] % c->window_size) * hd,
			       kv + (size_t)r * hd, hd * sizeof(float));
		}
		/* grouped low-rank output: wo_a per group (BF16 math, no act
		 * quant in the official code), then wo_b */
		for (uint32_t g = 0; g < G; g++) {
			struct mat v = lw->wo_a;

			v.row0 = g * olr;
			v.rows = olr;
			mat_mul(m, &v, o + (size_t)g * (H / G) * hd, H * hd, R, z + (size_t)g * olr,
				G * olr, 0);
		}
		mat_mul(m, &lw->wo_b, z, G * olr, R, out, c->dim, 1);
	}
	free(sel);
	free(nsel);
	free(qr);
	return ret;
}

/* Keys a query may gather at most in this batch (window + compressed). */
uint32_t attention_max_keys(const struct dsv4_model *m, const struct batch *b)
{
	const struct dsv4_config *c = &m->cfg;
	uint32_t most = 0;

	for (uint32_t L = 0; L < c->n_layers; L++) {
		uint32_t r = c->compress_ratios[L];

		for (uint32_t i = 0; i < b->rows && r; i++) {
			uint32_t n = (b->pos[i] + 1) / r;

			if (r == 4 && n > c->index_topk)
				n = c->index_topk;
			most = n > most ? n : most;
		}
	}
	return c->window_size + most;
}
