// SPDX-License-Identifier: MIT
/*
 * The forward pass over a batch of requests (spec §2, §5): embedding ->
 * hc_mult equal streams -> per block hc_pre / norm / attention / hc_post /
 * hc_pre / norm / MoE / hc_post -> hc_head -> norm -> head (FP32 logits).
 * Rows of all requests go through each weight once (batched decode shares
 * one weight pass); attention state stays per sequence.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "engine.h"
#include "../gpu/gpu.h"

static float sigmoid(float x)
{
	return 1.0f / (1.0f + expf(-x));
}

/* mix = (fn . flatten(X)) * rsqrt(mean(X^2) + eps), for every row */
static void hc_mixes(struct dsv4_model *m, const struct mat *fn, const float *X, uint32_t R,
		     float *mix)
{
	uint32_t W = m->cfg.hc_mult * m->cfg.dim;

	mat_mul(m, fn, X, W, R, mix, fn->rows, 0);
	for (uint32_t r = 0; r < R; r++) {
		const float *x = X + (size_t)r * W;
		double ss = 0;

		for (uint32_t i = 0; i < W; i++)
			ss += (double)x[i] * x[i];
		float rs = 1.0f / sqrtf((float)(ss / W) + (float)m->cfg.norm_eps);

		for (uint32_t j = 0; j < fn->rows; j++)
			mix[(size_t)r * fn->rows + j] *= rs;
	}
}

/* out = sum_i pre_i X_i over the hc streams of one row */
static void collapse(const float *pre, const float *Xr, uint32_t hc, uint32_t D, float *out)
{
	for (uint32_t d = 0; d < D; d++) {
		float acc = 0;

		for (uint32_t i = 0; i < hc; i++)
			acc += pre[i] * Xr[(size_t)i * D + d];
		out[d] = acc;
	}
}

/* Each of the hc lines of M (rows: line stride hc, element stride 1;
 * columns: 1 and hc) divided by its sum + eps. */
static void normalize_lines(float *M, uint32_t hc, uint32_t line, uint32_t elem, float eps)
{
	for (uint32_t j = 0; j < hc; j++) {
		float *v = M + j * line, s = 0;

		for (uint32_t k = 0; k < hc; k++)
			s += v[k * elem];
		for (uint32_t k = 0; k < hc; k++)
			v[k * elem] /= s + eps;
	}
}

/* hc_pre: pre/post weights and the Sinkhorn-normalized comb, and the
 * collapsed input x = sum_i pre_i X_i (spec §5.1) */
static void hc_pre(struct dsv4_model *m, const struct layer_w *lw, int br, const float *X,
		   uint32_t R, float *mix, float *x, float *post, float *comb)
{
	const struct dsv4_config *c = &m->cfg;
	uint32_t hc = c->hc_mult, D = c->dim, nmix = (2 + hc) * hc;
	float eps = (float)c->hc_eps;
	const float *scale = lw->hc_scale[br], *base = lw->hc_base[br];

	hc_mixes(m, &lw->hc_fn_mat[br], X, R, mix);
	for (uint32_t r = 0; r < R; r++) {
		const float *mx = mix + (size_t)r * nmix;
		float pre[16], *P = post + (size_t)r * hc, *M = comb + (size_t)r * hc * hc;

		for (uint32_t i = 0; i < hc; i++) {
			pre[i] = sigmoid(mx[i] * scale[0] + base[i]) + eps;
			P[i] = 2 * sigmoid(mx[hc + i] * scale[1] + base[hc + i]);
		}
		for (uint32_t j = 0; j < hc; j++) {
			float *row = M + j * hc, rmax = -INFINITY, sum = 0;

			for (uint32_t k = 0; k < hc; k++) {
				row[k] = mx[2 * hc + j * hc + k] * scale[2] + base[2 * hc + j * hc + k];
				rmax = row[k] > rmax ? row[k] : rmax;
			}
			for (uint32_t k = 0; k < hc; k++) {
				row[k] = expf(row[k] - rmax);
				sum += row[k];
			}
			for (uint32_t k = 0; k < hc; k++)
				row[k] = row[k] / sum + eps;
		}
		for (uint32_t it = 0; it < c->hc_sinkhorn_iters; it++) {
			if (it)	/* rows, except before the first column pass */
				normalize_lines(M, hc, hc, 1, eps);
			normalize_lines(M, hc, 1, hc, eps);
		}
		collapse(pre, X + (size_t)r * hc * D, hc, D, x + (size_t)r * D);
	}
}

/* X'_k = post_k f + sum_j comb[j][k] X_j  (comb consumed transposed) */
static void hc_post(const struct dsv4_config *c, float *X, const float *f, const float *post,
		    const float *comb, uint32_t R, float *tmp)
{
	uint32_t hc = c->hc_mult, D = c->dim;

	for (uint32_t r = 0; r < R; r++) {
		float *Xr = X + (size_t)r * hc * D;
		const float *fr = f + (size_t)r * D, *P = post + (size_t)r * hc;
		const float *M = comb + (size_t)r * hc * hc;

		for (uint32_t k = 0; k < hc; k++)
			for (uint32_t d = 0; d < D; d++) {
				float acc = P[k] * fr[d];

				for (uint32_t j = 0; j < hc; j++)
					acc += M[j * hc + k] * Xr[(size_t)j * D + d];
				tmp[(size_t)k * D + d] = acc;
			}
		memcpy(Xr, tmp, (size_t)hc * D * sizeof(float));
	}
}

struct work {
	float *X, *mix, *x, *xn, *f, *post, *comb, *tmp;
	uint32_t *pos, *chunk_start;
	int32_t *tok;
	struct dsv4_seq **seq;
};

static void work_free(struct work *w)
{
	free(w->X);
	free(w->pos);
	free(w->tok);
	free(w->seq);
}

static int work_alloc(struct work *w, const struct dsv4_config *c, uint32_t R)
{
	size_t hcD = (size_t)c->hc_mult * c->dim, nmix = (2 + c->hc_mult) * c->hc_mult;

	memset(w, 0, sizeof(*w));
	w->X = malloc((R * (hcD + nmix + 3 * (size_t)c->dim + c->hc_mult +
			    (size_t)c->hc_mult * c->hc_mult) + hcD) * sizeof(float));
	w->pos = malloc(2 * (size_t)R * sizeof(uint32_t));
	w->tok = malloc((size_t)R * sizeof(int32_t));
	w->seq = malloc((size_t)R * sizeof(*w->seq));
	if (!w->X || !w->pos || !w->tok || !w->seq) {
		work_free(w);
		return -ENOMEM;
	}
	w->mix = w->X + R * hcD;
	w->x = w->mix + R * nmix;
	w->xn = w->x + (size_t)R * c->dim;
	w->f = w->xn + (size_t)R * c->dim;
	w->post = w->f + (size_t)R * c->dim;
	w->comb = w->post + (size_t)R * c->hc_mult;
	w->tmp = w->comb + (size_t)R * c->hc_mult * c->hc_mult;
	w->chunk_start = w->pos + R;
	return 0;
}

static int reserve_scratch(struct dsv4_model *m, const struct batch *b)
{
	uint32_t keys = attention_max_keys(m, b);

	if (mat_mul_reserve(m, b->rows))
		return -ENOMEM;
	for (uint32_t i = 0; i < pool_threads(m->pool); i++) {
		struct scratch *a = &m->ascratch[i];
		struct kscratch *k = &m->kscratch[i];

		a->buf = buf_reserve(a->buf, &a->cap, keys, sizeof(float));
		k->buf = buf_reserve(k->buf, &k->cap, keys, sizeof(*k->buf));
		if (!a->buf || !k->buf)
			return -ENOMEM;
	}
	return 0;
}

static int validate(struct dsv4_model *m, struct dsv4_eval_req *reqs, uint32_t n,
		    uint64_t *rows, char *err, size_t errlen)
{
	const struct dsv4_config *c = &m->cfg;

	*rows = 0;
	if (!reqs || n == 0)
		return dsv4_errf(err, errlen, -EINVAL, "no requests");
	for (uint32_t i = 0; i < n; i++) {
		const struct dsv4_eval_req *q = &reqs[i];

		if (!q->seq || q->seq->m != m)
			return dsv4_errf(err, errlen, -EINVAL, "request %u: no sequence of this model", i);
		for (uint32_t j = 0; j < i; j++)
			if (reqs[j].seq == q->seq)
				return dsv4_errf(err, errlen, -EINVAL,
						 "request %u: sequence already in this batch", i);
		if (!q->tokens || q->n_tokens == 0)
			return dsv4_errf(err, errlen, -EINVAL, "request %u: no tokens", i);
		if ((uint64_t)q->seq->pos + q->n_tokens > q->seq->max_len)
			return dsv4_errf(err, errlen, -ENOSPC,
					 "request %u: %u + %u tokens exceed the sequence's %u",
					 i, q->seq->pos, q->n_tokens, q->seq->max_len);
		if (q->want > DSV4_LOGITS_ALL || (q->want != DSV4_LOGITS_NONE && !q->logits))
			return dsv4_errf(err, errlen, -EINVAL, "request %u: bad logits request", i);
		for (uint32_t t = 0; t < q->n_tokens; t++)
			if (q->tokens[t] < 0 || (uint32_t)q->tokens[t] >= c->vocab_size)
				return dsv4_errf(err, errlen, -EINVAL,
						 "request %u: token %d at %u outside the vocabulary (%u)",
						 i, q->tokens[t], t, c->vocab_size);
		*rows += q->n_tokens;
	}
	if (*rows > (1u << 20))
		return dsv4_errf(err, errlen, -E2BIG, "%llu tokens in one call (at most %u)",
				 (unsigned long long)*rows, 1u << 20);
	return 0;
}

static int grow_caches(struct dsv4_model *m, struct dsv4_eval_req *reqs, uint32_t n)
{
	const struct dsv4_config *c = &m->cfg;

	for (uint32_t i = 0; i < n; i++) {
		struct dsv4_seq *s = reqs[i].seq;
		uint32_t end = s->pos + reqs[i].n_tokens;

		for (uint32_t L = 0; L < c->n_layers; L++) {
			uint32_t r = c->compress_ratios[L];

			if (r && cmp_state_grow(&s->layers[L].cmp, r, end))
				return -ENOMEM;
			if (r == 4 && cmp_state_grow(&s->layers[L].icmp, 4, end))
				return -ENOMEM;
		}
	}
	return 0;
}

/* logits for the rows in @sel (n of them) into out [n, vocab] */
static int head_rows(struct dsv4_model *m, const float *X, const uint32_t *sel, uint32_t n,
		     float *out)
{
	const struct dsv4_config *c = &m->cfg;
	uint32_t hc = c->hc_mult, D = c->dim;
	size_t W = (size_t)hc * D;
	float *Xs = malloc((size_t)n * (W + hc + D) * sizeof(float));

	if (!Xs)
		return -ENOMEM;
	float *mix = Xs + (size_t)n * W, *y = mix + (size_t)n * hc;

	for (uint32_t i = 0; i < n; i++)
		memcpy(Xs + i * W, X + (size_t)sel[i] * W, W * sizeof(float));
	hc_mixes(m, &m->hc_head_mat, Xs, n, mix);
	for (uint32_t i = 0; i < n; i++) {
		float pre[16], *yr = y + (size_t)i * D;

		for (uint32_t k = 0; k < hc; k++)
			pre[k] = sigmoid(mix[(size_t)i * hc + k] * m->hc_head_scale[0] +
					 m->hc_head_base[k]) + (float)c->hc_eps;
		collapse(pre, Xs + i * W, hc, D, yr);
		rmsnorm(yr, m->norm, D, (float)c->norm_eps, yr);
	}
	mat_mul(m, &m->head, y, D, n, out, c->vocab_size, 0);
	free(Xs);
	return 0;
}

void eval_reset_all(struct dsv4_eval_req *reqs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		dsv4_seq_reset(reqs[i].seq);
}

/* how many logits rows request @q wants: its last this many rows */
static uint32_t rows_wanted(const struct dsv4_eval_req *q)
{
	return q->want == DSV4_LOGITS_ALL ? q->n_tokens : q->want == DSV4_LOGITS_LAST ? 1 : 0;
}

void eval_deliver(struct dsv4_eval_req *reqs, uint32_t n, const float *logits, uint32_t vocab)
{
	size_t row = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = rows_wanted(&reqs[i]);

		if (k && logits)	/* (NULL: the backend delivered them) */
			memcpy(reqs[i].logits, logits + row * vocab, (size_t)k * vocab * sizeof(float));
		row += k;
		reqs[i].seq->pos += reqs[i].n_tokens;
	}
}

uint32_t eval_logit_rows(const struct dsv4_eval_req *reqs, uint32_t n, uint32_t *lrows)
{
	uint32_t nl = 0;

	for (uint32_t i = 0, r = 0; i < n; r += reqs[i].n_tokens, i++) {
		uint32_t first = reqs[i].n_tokens - rows_wanted(&reqs[i]);

		for (uint32_t t = first; t < reqs[i].n_tokens; t++, nl++)
			if (lrows)
				lrows[nl] = r + t;
	}
	return nl;
}

int dsv4_eval_many(struct dsv4_model *m, struct dsv4_eval_req *reqs, uint32_t n,
		   char *err, size_t errlen)
{
	const struct dsv4_config *c = &m->cfg;
	uint32_t hc = c->hc_mult, D = c->dim, R, nl = 0;
	uint32_t *lrows = NULL;
	float *logits = NULL;
	struct work w;
	struct batch b;
	uint64_t rows;
	int ret;

	uint64_t t_start = now_ns();

	ret = validate(m, reqs, n, &rows, err, errlen);
	if (ret)
		return ret;
	if (m->gpu)
		return gpu_eval_many(m, reqs, n, err, errlen);
	R = (uint32_t)rows;
	if (work_alloc(&w, c, R))
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory for %u rows", R);
	for (uint32_t i = 0, r = 0; i < n; i++) {
		for (uint32_t t = 0; t < reqs[i].n_tokens; t++, r++) {
			w.pos[r] = reqs[i].seq->pos + t;
			w.tok[r] = reqs[i].tokens[t];
			w.seq[r] = reqs[i].seq;
			w.chunk_start[r] = r - t;
		}
	}
	nl = eval_logit_rows(reqs, n, NULL);
	b = (struct batch){ .rows = R, .pos = w.pos, .tok = w.tok, .seq = w.seq,
			    .chunk_start = w.chunk_start };
	lrows = malloc(((size_t)nl + 1) * sizeof(*lrows));
	logits = malloc(((size_t)nl * c->vocab_size + 1) * sizeof(float));
	if (!lrows || !logits || reserve_scratch(m, &b) || grow_caches(m, reqs, n)) {
		ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory for %u rows", R);
		goto out;
	}
	eval_logit_rows(reqs, n, lrows);

	if (m->store)	/* the hash layers' experts are known from the tokens */
		moe_prefetch_hashed(m, w.tok, R);
	for (uint32_t r = 0; r < R; r++) {
		float *Xr = w.X + (size_t)r * hc * D;

		m->k->decode_rows(&m->embed, (uint32_t)w.tok[r], 1, Xr);
		for (uint32_t k = 1; k < hc; k++)
			memcpy(Xr + (size_t)k * D, Xr, D * sizeof(float));
	}
	for (uint32_t L = 0; L < c->n_layers; L++) {
		const struct layer_w *lw = &m->layers[L];

		for (int br = 0; br < 2 && !ret; br++) {
			hc_pre(m, lw, br, w.X, R, w.mix, w.x, w.post, w.comb);
			for (uint32_t r = 0; r < R; r++)
				rmsnorm(w.x + (size_t)r * D, br ? lw->ffn_norm : lw->attn_norm, D,
					(float)c->norm_eps, w.xn + (size_t)r * D);
			uint64_t t0 = now_ns();

			ret = br ? moe_forward(m, L, &b, w.xn, w.f) :
				   attention_forward(m, L, &b, w.xn, w.f);
			*(br ? &m->times.moe_ns : &m->times.attention_ns) += now_ns() - t0;
			if (!ret)
				hc_post(c, w.X, w.f, w.post, w.comb, R, w.tmp);
		}
		if (ret) {
			/* part of the batch's state has moved: start those sequences over */
			eval_reset_all(reqs, n);
			if (m->store && ret != -ENOMEM && store_error(m->store)[0])
				dsv4_errf(err, errlen, ret, "layer %u: %s; the batch's sequences were reset",
					  L, store_error(m->store));
			else
				dsv4_errf(err, errlen, ret, "layer %u: %s; the batch's sequences were reset",
					  L, strerror(-ret));
			goto out;
		}
		if (m->opt.hooks && m->opt.hooks->layer_out)
			m->opt.hooks->layer_out(m->opt.hooks->ctx, L, w.X, R, hc * D);
	}

	uint64_t t_head = now_ns();

	if (nl && head_rows(m, w.X, lrows, nl, logits)) {
		eval_reset_all(reqs, n);
		ret = dsv4_errf(err, errlen, -ENOMEM, "head: out of memory; the batch's sequences were reset");
		goto out;
	}
	eval_deliver(reqs, n, logits, c->vocab_size);
	m->times.head_ns += now_ns() - t_head;
	m->times.total_ns += now_ns() - t_start;
	m->times.rows += R;
out:
	free(lrows);
	free(logits);
	work_free(&w);
	return ret;
}

int dsv4_eval(struct dsv4_seq *s, const int32_t *tokens, uint32_t n, enum dsv4_logits want,
	      float *logits, char *err, size_t errlen)
{
	struct dsv4_eval_req q = { .seq = s, .tokens = tokens, .n_tokens = n, .want = want,
				   .logits = logits };

	if (!s)
		return dsv4_errf(err, errlen, -EINVAL, "no sequence");
	return dsv4_eval_many(s->m, &q, 1, err, errlen);
}
