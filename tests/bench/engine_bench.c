// SPDX-License-Identifier: MIT
/*
 * CPU engine benchmark (make bench).  In one run:
 *  - the anchor: a STREAM-like copy (bytes read + written per second) and
 *    a read-only sweep, on buffers far larger than the caches, same threads;
 *  - decode: per-layer time (through the layer hook), weight bytes touched
 *    per token (computed from the matrices the token uses), achieved
 *    bytes/s, and its ratio to the copy bandwidth;
 *  - prefill: tokens/s and achieved GFLOP/s (2 * MACs of the matrix
 *    products plus attention scores and P.V).
 *
 *   dsv4-engine-bench --model DIR [--threads N] [--prefill P] [--decode K]
 *                     [--numerics reference|exact] [--kernels K]
 * Speed is measured here, never asserted in tests.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsv4drv.h"
#include "../../libdsv4drv/src/engine/engine.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the anchor ---- */

struct sweep {
	char *src, *dst;
	size_t len;
	int copy;
	double sum;
};

static void *sweep_main(void *arg)
{
	struct sweep *s = arg;

	if (s->copy) {
		memcpy(s->dst, s->src, s->len);
	} else {
		const uint64_t *p = (const uint64_t *)s->src;
		uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;

		/* eight independent lanes: the compiler vectorizes this */
		for (size_t i = 0; i < s->len / 8; i += 8) {
			a0 |= p[i];
			a1 |= p[i + 1];
			a2 |= p[i + 2];
			a3 |= p[i + 3];
			a4 |= p[i + 4];
			a5 |= p[i + 5];
			a6 |= p[i + 6];
			a7 |= p[i + 7];
		}
		s->sum = (double)(a0 | a1 | a2 | a3 | a4 | a5 | a6 | a7);
	}
	return NULL;
}

/* best of 5: bytes moved per second by @threads threads */
static double bandwidth(char *src, char *dst, size_t len, uint32_t threads, int copy)
{
	pthread_t th[256];
	struct sweep sw[256];
	double best = 0;

	for (int rep = 0; rep < 5; rep++) {
		double t0 = now();

		for (uint32_t i = 0; i < threads; i++) {
			size_t part = len / threads & ~(size_t)63;

			sw[i] = (struct sweep){ src + i * part, dst + i * part, part, copy, 0 };
			pthread_create(&th[i], NULL, sweep_main, &sw[i]);
		}
		for (uint32_t i = 0; i < threads; i++)
			pthread_join(th[i], NULL);
		double bytes = (double)(len / threads & ~(size_t)63) * threads * (copy ? 2 : 1);
		double bw = bytes / (now() - t0);

		best = bw > best ? bw : best;
	}
	return best;
}

/* ---- what a token touches ---- */

/* the library's mat_bytes() as a double, for layer_cost() */
static double mat_size(const struct mat *m)
{
	return (double)mat_bytes(m);
}

static double mat_macs(const struct mat *m)
{
	return (double)m->rows * m->cols;
}

/* bytes (or MACs) of layer L for one token, the experts counted K times */
static double layer_cost(const struct dsv4_model *m, uint32_t L, double (*f)(const struct mat *))
{
	const struct layer_w *lw = &m->layers[L];
	const struct dsv4_config *c = &m->cfg;
	double v = f(&lw->hc_fn_mat[0]) + f(&lw->hc_fn_mat[1]);

	v += f(&lw->wq_a) + f(&lw->wq_b) + f(&lw->wkv) + f(&lw->wo_a) + f(&lw->wo_b);
	if (lw->ratio)
		v += f(&lw->cmp.wkv) + f(&lw->cmp.wgate);
	if (lw->ratio == 4)
		v += f(&lw->iwq_b) + f(&lw->iweights) + f(&lw->icmp.wkv) + f(&lw->icmp.wgate);
	v += f(&lw->gate) + f(&lw->sw1) + f(&lw->sw2) + f(&lw->sw3);
	v += c->n_activated_experts * (f(&lw->w1[0]) + f(&lw->w2[0]) + f(&lw->w3[0]));
	return v;
}

/* ---- timing hook ---- */

struct stamps {
	double t[DSV4_MAX_LAYERS + 1];
	double sum[DSV4_MAX_LAYERS + 1];
	int on;
};

static void stamp(void *ctx, uint32_t layer, float *X, uint32_t rows, uint32_t width)
{
	struct stamps *s = ctx;

	(void)X;
	(void)rows;
	(void)width;
	if (layer < DSV4_MAX_LAYERS)
		s->t[layer + 1] = now();
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 'j' },
		{ "prefill", required_argument, NULL, 'p' },
		{ "decode", required_argument, NULL, 'd' },
		{ "numerics", required_argument, NULL, 'q' },
		{ "kernels", required_argument, NULL, 'k' },
		{ 0 }
	};
	struct stamps st = { 0 };
	struct dsv4_model_hooks hooks = { .ctx = &st, .layer_out = stamp };
	struct dsv4_model_options o = { .hooks = &hooks };
	const char *dir = NULL;
	uint32_t P = 128, K = 8;
	struct dsv4_model *m;
	struct dsv4_seq *s;
	char err[256];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			dir = optarg;
			break;
		case 'j':
			o.threads = (uint32_t)atoi(optarg);
			break;
		case 'p':
			P = (uint32_t)atoi(optarg);
			break;
		case 'd':
			K = (uint32_t)atoi(optarg);
			break;
		case 'q':
			o.numerics = strcmp(optarg, "exact") ? DSV4_NUMERICS_REFERENCE : DSV4_NUMERICS_EXACT;
			break;
		case 'k':
			o.kernels = optarg;
			break;
		default:
			return 2;
		}
	}
	if (!dir || P < 1 || K < 1 || o.threads > 256) {
		fprintf(stderr, "usage: dsv4-engine-bench --model DIR [--threads N] [--prefill P] [--decode K]\n");
		return 2;
	}
	if (dsv4_model_load(dir, &o, &m, err, sizeof(err))) {
		fprintf(stderr, "dsv4-engine-bench: %s\n", err);
		return 1;
	}
	const struct dsv4_config *cfg = dsv4_model_config(m);
	uint32_t threads = pool_threads(m->pool), nl = cfg->n_layers;

	/* anchor: 1 GiB buffers, faulted in first */
	size_t len = (size_t)1 << 30;
	char *src = malloc(len), *dst = malloc(len);

	if (!src || !dst)
		return 1;
	memset(src, 1, len);
	memset(dst, 2, len);
	double copy_bw = bandwidth(src, dst, len, threads, 1);
	double read_bw = bandwidth(src, dst, len, threads, 0);

	free(src);
	free(dst);

	/* weights into the page cache and the page tables */
	double t0 = now(), wsum = 0;

	for (size_t i = 0; i < m->ck->n_shards; i++) {
		const volatile uint8_t *p = m->ck->shards[i]->map;

		for (uint64_t off = 0; off < m->ck->shards[i]->size; off += 4096)
			wsum += p[off];
	}
	printf("bench: model %s: %u layers, dim %u, kernels %s, %u threads, numerics %s "
	       "(weights faulted in %.1f s)\n", dir, nl, cfg->dim, dsv4_model_kernels(m), threads,
	       o.numerics == DSV4_NUMERICS_EXACT ? "exact" : "reference", now() - t0 + wsum * 0);

	int32_t *tok = malloc((P + K) * sizeof(*tok));
	float *logits = malloc((size_t)cfg->vocab_size * sizeof(float));

	srand(1);
	for (uint32_t i = 0; i < P + K; i++)
		tok[i] = rand() % (int)cfg->vocab_size;
	if (dsv4_seq_create(m, P + K, &s))
		return 1;

	/* prefill */
	double macs = 0, win = cfg->window_size < P ? cfg->window_size : P;

	for (uint32_t L = 0; L < nl; L++)
		macs += layer_cost(m, L, mat_macs);
	macs *= P;
	/* attention: scores and P.V over the window (and compressed entries) */
	macs += (double)nl * P * cfg->n_heads * cfg->head_dim * 2 * win;
	macs += mat_macs(&m->head) + mat_macs(&m->hc_head_mat);	/* last position only */
	t0 = now();
	if (dsv4_eval(s, tok, P, DSV4_LOGITS_LAST, logits, err, sizeof(err))) {
		fprintf(stderr, "dsv4-engine-bench: prefill: %s\n", err);
		return 1;
	}
	double tp = now() - t0;

	printf("bench: prefill %u tokens: %.2f s, %.1f tokens/s, %.1f GFLOP/s\n", P, tp, P / tp,
	       2 * macs / tp * 1e-9);

	/* one matrix of each stored format, one input row (the decode shape) */
	{
		const struct layer_w *l0 = &m->layers[0];
		const struct { const char *what; const struct mat *w; } one[] = {
			{ "FP8 attn.wq_b", &l0->wq_b }, { "FP4 expert w1 x8", &l0->w1[0] },
			{ "BF16 head", &m->head }, { "F32 hc_attn_fn", &l0->hc_fn_mat[0] },
		};
		float *x = calloc(m->max_cols, sizeof(float)), *y = malloc(cfg->vocab_size * sizeof(float));

		for (uint32_t i = 0; i < m->max_cols; i++)
			x[i] = (float)(i % 7) - 3;
		mat_mul_reserve(m, 1);
		for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
			int reps = one[i].w->fmt == MAT_FP4 ? 8 : 3;
			double best = 1e9;

			for (int r = 0; r < reps; r++) {
				const struct mat *w = one[i].w->fmt == MAT_FP4 ? &l0->w1[r] : one[i].w;

				t0 = now();
				mat_mul(m, w, x, w->cols, 1, y, w->rows, 1);
				best = now() - t0 < best ? now() - t0 : best;
			}
			printf("bench: matrix x vector, %s [%u x %u]: %.2f GB/s\n", one[i].what,
			       one[i].w->rows, one[i].w->cols, mat_bytes(one[i].w) / best * 1e-9);
		}
		free(x);
		free(y);
	}

	/* decode */
	double bytes = mat_bytes(&m->head) + mat_bytes(&m->hc_head_mat) + 2.0 * cfg->dim;
	double dsum = 0, head = 0;

	for (uint32_t L = 0; L < nl; L++)
		bytes += layer_cost(m, L, mat_size);
	for (uint32_t i = 0; i < K; i++) {
		st.t[0] = now();
		if (dsv4_eval(s, tok + P + i, 1, DSV4_LOGITS_LAST, logits, err, sizeof(err))) {
			fprintf(stderr, "dsv4-engine-bench: decode: %s\n", err);
			return 1;
		}
		double end = now();

		for (uint32_t L = 0; L < nl; L++)
			st.sum[L] += st.t[L + 1] - st.t[L];
		head += end - st.t[nl];
		dsum += end - st.t[0];
	}
	for (uint32_t L = 0; L < nl; L++)
		printf("bench: decode layer %u (ratio %u): %.2f ms, %.1f MB of weights\n", L,
		       cfg->compress_ratios[L], st.sum[L] / K * 1e3, layer_cost(m, L, mat_size) * 1e-6);
	printf("bench: decode head (hc_head, norm, %u x %u BF16): %.2f ms\n", cfg->vocab_size,
	       cfg->dim, head / K * 1e3);
	double tok_s = dsum / K, achieved = bytes / tok_s;

	printf("bench: decode %.1f ms/token, %.1f MB of weights per token, %.2f GB/s\n",
	       tok_s * 1e3, bytes * 1e-6, achieved * 1e-9);
	printf("bench: anchor: STREAM-style copy %.2f GB/s (read+write counted; %.2f GB/s copied), "
	       "read-only sweep %.2f GB/s, %u threads\n", copy_bw * 1e-9, copy_bw * 0.5e-9,
	       read_bw * 1e-9, threads);
	printf("bench: decode weight bytes/s vs copy bandwidth: %.2fx (goal >= 0.7x); vs read sweep: %.2fx\n",
	       achieved / copy_bw, achieved / read_bw);
	dsv4_seq_free(s);
	free(tok);
	free(logits);
	dsv4_model_free(m);
	return 0;
}
