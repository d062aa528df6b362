// SPDX-License-Identifier: MIT
/*
 * The MoE sub-block (spec §6): router scores sqrt(softplus(x W^T)),
 * hash routing by tid2eid on the first layers, else top-k of score + bias;
 * weights normalized and scaled by route_scale; routed experts with the
 * clamped SwiGLU, the routing weight applied before w2 (the official code)
 * or after it (HF); one shared expert, unclamped (official) or clamped (HF).
 * Rows routed to the same expert go through it together.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static float softplus(float x)
{
	return x > 20.0f ? x : log1pf(expf(x));	/* torch's threshold 20 */
}

static float silu(float x)
{
	return x / (1.0f + expf(-x));
}

/* Top @k of s + bias (bias only for the choice), higher first, lower index on ties. */
static void route_topk(const float *s, const float *bias, uint32_t n, uint32_t k, int32_t *idx)
{
	for (uint32_t j = 0; j < k; j++) {
		int32_t best = -1;
		float bv = -INFINITY;

		for (uint32_t e = 0; e < n; e++) {
			float v = s[e] + (bias ? bias[e] : 0);
			int taken = 0;

			for (uint32_t i = 0; i < j; i++)
				taken |= idx[i] == (int32_t)e;
			if (!taken && (best < 0 || v > bv)) {
				best = (int32_t)e;
				bv = v;
			}
		}
		idx[j] = best;
	}
}

/* SwiGLU over rows: h = silu(min(g, lim)) * clamp(u, -lim, lim) [* w]. */
static void swiglu(const float *g, const float *u, uint32_t rows, uint32_t I, float lim,
		   const float *w, float *h)
{
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t i = 0; i < I; i++) {
			float gv = g[(size_t)r * I + i], uv = u[(size_t)r * I + i];

			if (lim > 0) {
				uv = uv < -lim ? -lim : uv > lim ? lim : uv;
				gv = gv > lim ? lim : gv;
			}
			h[(size_t)r * I + i] = silu(gv) * uv * (w ? w[r] : 1.0f);
		}
}

static int32_t tid2eid_at(const struct layer_w *lw, size_t at, uint32_t E)
{
	int64_t v;

	if (lw->tid2eid_i64) {
		memcpy(&v, (const int64_t *)lw->tid2eid + at, sizeof(v));
	} else {
		int32_t v32;

		memcpy(&v32, (const int32_t *)lw->tid2eid + at, sizeof(v32));
		v = v32;
	}
	/* an entry out of range routes nowhere rather than outside the experts */
	return v >= 0 && v < E ? (int32_t)v : -1;
}

void moe_prefetch_hashed(struct dsv4_model *m, const int32_t *tok, uint32_t R)
{
	const struct dsv4_config *c = &m->cfg;
	uint32_t E = c->n_routed_experts, K = c->n_activated_experts;
	uint8_t *want = calloc(E, 1);
	int32_t *ex = malloc(E * sizeof(*ex));

	for (uint32_t L = 0; want && ex && L < c->n_hash_layers && L < c->n_layers; L++) {
		uint32_t n = 0;

		memset(want, 0, E);
		for (uint32_t r = 0; r < R; r++)
			for (uint32_t j = 0; j < K; j++) {
				int32_t e = tid2eid_at(&m->layers[L], (size_t)tok[r] * K + j, E);

				if (e >= 0)
					want[e] = 1;
			}
		for (uint32_t e = 0; e < E; e++)
			if (want[e])
				ex[n++] = (int32_t)e;
		store_prefetch(m->store, L, ex, n);
	}
	free(want);
	free(ex);
}

/*
 * Streaming: guess layer L's experts from this layer's input (its router
 * applied one layer early; the residual stream changes little between
 * neighbours) and start reading them while this layer computes.
 * @logits and @ex are scratch of R*E and E.
 */
static void prefetch_next(struct dsv4_model *m, uint32_t L, const float *x, uint32_t R,
			  float *logits, int32_t *ex)
{
	const struct dsv4_config *c = &m->cfg;
	const struct layer_w *lw = &m->layers[L];
	uint32_t E = c->n_routed_experts, K = c->n_activated_experts, n = 0;
	int32_t top[64];
	uint8_t *want = calloc(E, 1);

	if (!want)
		return;
	mat_mul(m, &lw->gate, x, c->dim, R, logits, E, 0);
	for (uint32_t r = 0; r < R; r++) {
		float *s = logits + (size_t)r * E;

		for (uint32_t e = 0; e < E; e++)
			s[e] = sqrtf(softplus(s[e]));
		route_topk(s, lw->gate_bias, E, K, top);
		for (uint32_t j = 0; j < K; j++)
			if (top[j] >= 0)
				want[top[j]] = 1;
	}
	for (uint32_t e = 0; e < E; e++)
		if (want[e])
			ex[n++] = (int32_t)e;
	store_prefetch(m->store, L, ex, n);
	free(want);
}

int moe_forward(struct dsv4_model *m, uint32_t L, const struct batch *b,
		const float *x, float *out)
{
	const struct dsv4_config *c = &m->cfg;
	const struct layer_w *lw = &m->layers[L];
	uint32_t R = b->rows, D = c->dim, E = c->n_routed_experts, K = c->n_activated_experts;
	uint32_t I = c->moe_inter_dim;
	int hf_after = !!(m->opt.flags & DSV4_MODEL_HF_WEIGHT_AFTER_DOWN);
	float lim = (float)c->swiglu_limit;
	float *logits = NULL, *wts, *xe, *g, *u, *ye, *rw;
	int32_t *idx = NULL, *ex = NULL;
	uint32_t *rows_of = NULL;
	struct mat *sw = NULL;
	int ret = 0;

	/* an expert gets at most R*K rows (a hash table may repeat one) */
	size_t RK = (size_t)R * K;

	logits = malloc(((size_t)R * E + RK + RK * D + 3 * RK * I + RK * D + RK) * sizeof(float));
	idx = malloc(RK * sizeof(*idx));
	rows_of = malloc(RK * sizeof(*rows_of));
	ex = malloc((size_t)E * sizeof(*ex));
	sw = malloc(3 * (size_t)E * sizeof(*sw));
	if (!logits || !idx || !rows_of || !ex || !sw) {
		ret = -ENOMEM;
		goto done;
	}
	wts = logits + (size_t)R * E;
	xe = wts + RK;
	g = xe + RK * D;
	u = g + RK * I;
	ye = u + 2 * RK * I;	/* h lives at u + RK*I */
	rw = ye + RK * D;

	/* router, FP32 on the BF16 gate */
	mat_mul(m, &lw->gate, x, D, R, logits, E, 0);
	for (uint32_t r = 0; r < R; r++) {
		float *s = logits + (size_t)r * E, sum = 0;
		int32_t *ix = idx + (size_t)r * K;

		for (uint32_t e = 0; e < E; e++)
			s[e] = sqrtf(softplus(s[e]));
		if (lw->tid2eid) {
			for (uint32_t j = 0; j < K; j++)
				ix[j] = tid2eid_at(lw, (size_t)b->tok[r] * K + j, E);
		} else {
			route_topk(s, lw->gate_bias, E, K, ix);
		}
		for (uint32_t j = 0; j < K; j++)
			sum += ix[j] >= 0 ? s[ix[j]] : 0;
		if (m->opt.flags & DSV4_MODEL_HF_WEIGHT_AFTER_DOWN)
			sum += 1e-20f;
		for (uint32_t j = 0; j < K; j++)
			wts[(size_t)r * K + j] = ix[j] >= 0 ?
				s[ix[j]] / sum * (float)c->route_scale : 0;
	}

	memset(out, 0, (size_t)R * D * sizeof(float));
	/* the experts with rows, ascending; streamed ones in groups the cache holds */
	uint32_t n_ex = 0;

	for (uint32_t e = 0; e < E; e++)
		for (uint32_t j = 0; j < (size_t)R * K; j++)
			if (idx[j] == (int32_t)e) {
				ex[n_ex++] = (int32_t)e;
				break;
			}
	uint32_t group = m->store ? store_capacity(m->store, L) : n_ex;

	for (uint32_t g0 = 0; g0 < n_ex && !ret; g0 += group) {
		uint32_t ng = n_ex - g0 < group ? n_ex - g0 : group;

		if (m->store) {
			ret = store_acquire(m->store, L, ex + g0, ng, sw + 0, sw + ng, sw + 2 * ng);
			if (ret)
				break;
		}
		for (uint32_t gi = 0; gi < ng; gi++) {
			uint32_t e = (uint32_t)ex[g0 + gi], n = 0;
			const struct mat *w1 = m->store ? &sw[gi] : &lw->w1[e];
			const struct mat *w2 = m->store ? &sw[ng + gi] : &lw->w2[e];
			const struct mat *w3 = m->store ? &sw[2 * ng + gi] : &lw->w3[e];

			for (uint32_t r = 0; r < R; r++)
				for (uint32_t j = 0; j < K; j++)
					if (idx[(size_t)r * K + j] == (int32_t)e) {
						rows_of[n] = r;
						rw[n] = wts[(size_t)r * K + j];
						memcpy(xe + (size_t)n * D, x + (size_t)r * D, D * sizeof(float));
						n++;
					}
			mat_mul(m, w1, xe, D, n, g, I, 1);
			mat_mul(m, w3, xe, D, n, u, I, 1);
			swiglu(g, u, n, I, lim, hf_after ? NULL : rw, u + (size_t)R * K * I);
			mat_mul(m, w2, u + (size_t)R * K * I, I, n, ye, D, 1);
			for (uint32_t i = 0; i < n; i++)
				m->k->axpy(hf_after ? rw[i] : 1.0f, ye + (size_t)i * D,
					   out + (size_t)rows_of[i] * D, D);
		}
		if (m->store)
			store_release(m->store, L, ex + g0, ng);
	}
	if (ret)
		goto done;
	if (m->store && L + 1 < c->n_layers && L + 1 >= c->n_hash_layers)
		prefetch_next(m, L + 1, x, R, logits, ex);
	/* shared expert */
	mat_mul(m, &lw->sw1, x, D, R, g, I, 1);
	mat_mul(m, &lw->sw3, x, D, R, u, I, 1);
	swiglu(g, u, R, I, m->opt.flags & DSV4_MODEL_HF_SHARED_CLAMP ? lim : 0, NULL,
	       u + RK * I);
	mat_mul(m, &lw->sw2, u + RK * I, I, R, ye, D, 1);
	for (uint32_t r = 0; r < R; r++)
		m->k->axpy(1.0f, ye + (size_t)r * D, out + (size_t)r * D, D);
done:
	free(logits);
	free(idx);
	free(rows_of);
	free(ex);
	free(sw);
	return ret;
}
