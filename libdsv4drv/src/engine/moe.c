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

int moe_forward(struct dsv4_model *m, uint32_t L, const struct batch *b,
		const float *x, float *out)
{
	const struct dsv4_config *c = &m->cfg;
	const struct layer_w *lw = &m->layers[L];
	uint32_t R = b->rows, D = c->dim, E = c->n_routed_experts, K = c->n_activated_experts;
	uint32_t I = c->moe_inter_dim;
	int hf_after = !!(m->opt.flags & DSV4_MODEL_HF_WEIGHT_AFTER_DOWN);
	float lim = (float)c->swiglu_limit;
	float *logits, *wts, *xe, *g, *u, *ye, *rw;
	int32_t *idx;
	uint32_t *rows_of;

	logits = malloc(((size_t)R * E + (size_t)R * K + (size_t)R * D + 3 * (size_t)R * I +
			 (size_t)R * D + R) * sizeof(float));
	idx = malloc((size_t)R * K * sizeof(*idx));
	rows_of = malloc((size_t)R * sizeof(*rows_of));
	if (!logits || !idx || !rows_of) {
		free(logits);
		free(idx);
		free(rows_of);
		return -ENOMEM;
	}
	wts = logits + (size_t)R * E;
	xe = wts + (size_t)R * K;
	g = xe + (size_t)R * D;
	u = g + (size_t)R * I;
	ye = u + 2 * (size_t)R * I;	/* h lives at u + R*I */
	rw = ye + (size_t)R * D;

	/* router, FP32 on the BF16 gate */
	mat_mul(m, &lw->gate, x, D, R, logits, E, 0);
	for (uint32_t r = 0; r < R; r++) {
		float *s = logits + (size_t)r * E, sum = 0;
		int32_t *ix = idx + (size_t)r * K;

		for (uint32_t e = 0; e < E; e++)
			s[e] = sqrtf(softplus(s[e]));
		if (lw->tid2eid) {
			for (uint32_t j = 0; j < K; j++) {
				size_t at = (size_t)b->tok[r] * K + j;
				int64_t v;

				if (lw->tid2eid_i64) {
					memcpy(&v, (const int64_t *)lw->tid2eid + at, sizeof(v));
				} else {
					int32_t v32;

					memcpy(&v32, (const int32_t *)lw->tid2eid + at, sizeof(v32));
					v = v32;
				}
				/* a table entry out of range routes nowhere rather than
				 * reading outside the expert array */
				ix[j] = v >= 0 && v < E ? (int32_t)v : -1;
			}
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
	for (uint32_t e = 0; e < E; e++) {
		uint32_t n = 0;

		for (uint32_t r = 0; r < R; r++)
			for (uint32_t j = 0; j < K; j++)
				if (idx[(size_t)r * K + j] == (int32_t)e) {
					rows_of[n] = r;
					rw[n] = wts[(size_t)r * K + j];
					memcpy(xe + (size_t)n * D, x + (size_t)r * D, D * sizeof(float));
					n++;
				}
		if (!n)
			continue;
		mat_mul(m, &lw->w1[e], xe, D, n, g, I, 1);
		mat_mul(m, &lw->w3[e], xe, D, n, u, I, 1);
		swiglu(g, u, n, I, lim, hf_after ? NULL : rw, u + (size_t)R * I);
		mat_mul(m, &lw->w2[e], u + (size_t)R * I, I, n, ye, D, 1);
		for (uint32_t i = 0; i < n; i++)
			m->k->axpy(hf_after ? rw[i] : 1.0f, ye + (size_t)i * D,
				   out + (size_t)rows_of[i] * D, D);
	}
	/* shared expert */
	mat_mul(m, &lw->sw1, x, D, R, g, I, 1);
	mat_mul(m, &lw->sw3, x, D, R, u, I, 1);
	swiglu(g, u, R, I, m->opt.flags & DSV4_MODEL_HF_SHARED_CLAMP ? lim : 0, NULL,
	       u + (size_t)R * I);
	mat_mul(m, &lw->sw2, u + (size_t)R * I, I, R, ye, D, 1);
	for (uint32_t r = 0; r < R; r++)
		m->k->axpy(1.0f, ye + (size_t)r * D, out + (size_t)r * D, D);
	free(logits);
	free(idx);
	free(rows_of);
	return 0;
}
