// SPDX-License-Identifier: MIT
/*
 * The CPU engine against DeepSeek's official code and HF transformers
 * (fixtures from tools/reference/, see tests/fixtures/README.md):
 *  - exact numerics: prefill and decode logits within 1e-3 of the official
 *    exact-mode run at every position, argmax equal away from ties,
 *    compressed entries, indexer keys and top-k sets equal;
 *  - HF semantics switches vs HF transformers' logits;
 *  - reference numerics: each layer with teacher forcing, and end to end
 *    inside the envelope the official code shows under 1e-6 perturbations;
 *  - chunked prefill = one-shot prefill, batched = single sequences,
 *    every kernel set gives the same logits, reset really resets;
 *  - bad calls are refused and change nothing.
 * Models come from dsv4-mkmodel --preset tiny-X --seed 1 (as the fixtures).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"
#include "../../libdsv4drv/src/engine/engine.h"
#include "../../libdsv4drv/src/gpu/gpu.h"
#include "kselftest_harness.h"

static const char *const presets[] = { "tiny-a", "tiny-b", "tiny-c" };

static const char *model_dir(const char *preset)
{
	static char dir[3][128];
	static int made[3];

	for (int i = 0; i < 3; i++) {
		if (strcmp(preset, presets[i]))
			continue;
		snprintf(dir[i], sizeof(dir[i]), "/tmp/dsv4-engine-%s-%d", preset, (int)getpid());
		if (!made[i]) {
			char cmd[512];

			snprintf(cmd, sizeof(cmd), DSV4_BIN "/dsv4-mkmodel --preset %s --seed 1 %s >/dev/null",
				 preset, dir[i]);
			if (system(cmd))
				return NULL;
			made[i] = 1;
		}
		return dir[i];
	}
	return NULL;
}

static void cleanup_models(void) __attribute__((destructor));
static void cleanup_models(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf /tmp/dsv4-engine-*-%d", (int)getpid());
	if (system(cmd))
		return;
}

/* A fixture tensor copied out (shard data need not be aligned). */
static void *fx_get(const char *file, const char *name, enum dsv4_dtype want, uint64_t *shape)
{
	char path[256], err[256];
	struct dsv4_st_file *f;
	const struct dsv4_st_tensor *t;
	void *out = NULL;

	snprintf(path, sizeof(path), DSV4_FIXTURES "/%s", file);
	if (dsv4_st_open(path, &f, err, sizeof(err)))
		return NULL;
	t = dsv4_st_find(&f->header, name);
	if (t && t->dtype == want) {
		out = malloc(t->nbytes ? t->nbytes : 1);
		if (out)
			memcpy(out, dsv4_st_data(f, t), t->nbytes);
		if (shape) {
			shape[0] = t->shape[0];
			shape[1] = t->ndim > 1 ? t->shape[1] : 1;
		}
	}
	dsv4_st_close(f);
	return out;
}

static int32_t *fx_tokens(const char *file, uint32_t *n)
{
	uint64_t shape[2];
	int64_t *t = fx_get(file, "tokens", DSV4_DT_I64, shape);
	int32_t *v;

	if (!t)
		return NULL;
	v = malloc(shape[0] * sizeof(*v));
	for (uint64_t i = 0; v && i < shape[0]; i++)
		v[i] = (int32_t)t[i];
	*n = (uint32_t)shape[0];
	free(t);
	return v;
}

/* auto: the GPU where there is one (tests/gpu/run-gpu-tests.sh), else the CPU */
static enum dsv4_backend test_backend = DSV4_BACKEND_AUTO;

static struct dsv4_model *load(const char *preset, enum dsv4_numerics num, uint32_t flags,
			       const char *kernels, const struct dsv4_model_hooks *hooks)
{
	struct dsv4_model_options o = { .threads = 2, .numerics = num, .flags = flags,
					.kernels = kernels, .hooks = hooks, .backend = test_backend };
	struct dsv4_model *m = NULL;
	char err[256];
	const char *dir = model_dir(preset);

	if (!dir || dsv4_model_load(dir, &o, &m, err, sizeof(err))) {
		fprintf(stderr, "# load %s: %s\n", preset, dir ? err : "mkmodel failed");
		return NULL;
	}
	if (dsv4_model_on_gpu(m))
		fprintf(stderr, "# %s on %s\n", preset, dsv4_model_backend(m));
	return m;
}

struct cmp {
	double worst;		/* max over positions of max|d| / max|ref| */
	uint32_t over, argmax_bad, ties;
};

/* Per position: max|d|/max|ref| <= tol; argmax equal unless the reference's
 * top two are within 2e-3 (relative), which counts as a tie. */
static struct cmp compare(const float *ref, const float *got, uint32_t rows, uint32_t V, double tol)
{
	struct cmp c = { 0 };

	for (uint32_t r = 0; r < rows; r++) {
		const float *a = ref + (size_t)r * V, *b = got + (size_t)r * V;
		double mx = 0, d = 0;
		uint32_t ia = 0, ib = 0, i2 = UINT32_MAX;

		for (uint32_t v = 0; v < V; v++) {
			mx = fmax(mx, fabs(a[v]));
			d = fmax(d, fabs((double)a[v] - b[v]));
			if (a[v] > a[ia])
				ia = v;
			if (b[v] > b[ib])
				ib = v;
		}
		for (uint32_t v = 0; v < V; v++)
			if (v != ia && (i2 == UINT32_MAX || a[v] > a[i2]))
				i2 = v;
		d /= mx;
		c.worst = fmax(c.worst, d);
		c.over += d > tol;
		if (ia != ib) {
			if (a[ia] - a[i2] <= 2e-3 * mx)
				c.ties++;
			else
				c.argmax_bad++;
		}
	}
	return c;
}

static float *prefill(struct dsv4_model *m, const int32_t *tok, uint32_t n, uint32_t chunk)
{
	uint32_t V = dsv4_model_config(m)->vocab_size;
	float *lg = malloc((size_t)n * V * sizeof(float));
	struct dsv4_seq *s;
	char err[256];

	if (!lg || dsv4_seq_create(m, n, &s)) {
		free(lg);
		return NULL;
	}
	for (uint32_t at = 0; at < n;) {
		uint32_t k = chunk && n - at > chunk ? chunk : n - at;

		if (dsv4_eval(s, tok + at, k, DSV4_LOGITS_ALL, lg + (size_t)at * V, err, sizeof(err))) {
			fprintf(stderr, "# eval: %s\n", err);
			free(lg);
			lg = NULL;
			break;
		}
		at += k;
	}
	dsv4_seq_free(s);
	return lg;
}

TEST(exact_prefill_and_decode_match_official)
{
	for (int p = 0; p < 3; p++) {
		char file[64];
		uint32_t N, V;
		uint64_t ps[2], ds[2];

		snprintf(file, sizeof(file), "official-%s.safetensors", presets[p]);
		int32_t *tok = fx_tokens(file, &N);
		float *pre = fx_get(file, "exact.prefill.logits", DSV4_DT_F32, ps);
		float *dec = fx_get(file, "exact.decode.logits", DSV4_DT_F32, ds);
		struct dsv4_model *m = load(presets[p], DSV4_NUMERICS_EXACT, 0, NULL, NULL);

		ASSERT_NE(NULL, tok);
		ASSERT_NE(NULL, pre);
		ASSERT_NE(NULL, dec);
		ASSERT_NE(NULL, m);
		V = dsv4_model_config(m)->vocab_size;
		ASSERT_EQ(V, ps[1]);

		float *lg = prefill(m, tok, N, 0);

		ASSERT_NE(NULL, lg);
		struct cmp c = compare(pre, lg, N, V, 1e-3);

		TH_LOG("%s exact prefill: worst %.3g, %u over 1e-3, %u argmax differ, %u ties",
		       presets[p], c.worst, c.over, c.argmax_bad, c.ties);
		EXPECT_EQ(0u, c.over);
		EXPECT_EQ(0u, c.argmax_bad);

		/* decode: prefill K tokens, then one at a time (the fixture's path) */
		uint32_t K = N - (uint32_t)ds[0];
		struct dsv4_seq *s;
		char err[256];
		float *dl = malloc((size_t)ds[0] * V * sizeof(float));

		ASSERT_EQ(0, dsv4_seq_create(m, N, &s));
		ASSERT_EQ(0, dsv4_eval(s, tok, K, DSV4_LOGITS_NONE, NULL, err, sizeof(err))) TH_LOG("%s", err);
		for (uint32_t t = K; t < N; t++)
			ASSERT_EQ(0, dsv4_eval(s, tok + t, 1, DSV4_LOGITS_LAST, dl + (size_t)(t - K) * V,
					       err, sizeof(err))) TH_LOG("%s", err);
		EXPECT_EQ(N, dsv4_seq_pos(s));
		c = compare(dec, dl, (uint32_t)ds[0], V, 1e-3);
		TH_LOG("%s exact decode: worst %.3g, %u over 1e-3, %u argmax differ, %u ties",
		       presets[p], c.worst, c.over, c.argmax_bad, c.ties);
		EXPECT_EQ(0u, c.over);
		EXPECT_EQ(0u, c.argmax_bad);
		dsv4_seq_free(s);
		free(dl);
		free(lg);
		free(tok);
		free(pre);
		free(dec);
		dsv4_model_free(m);
	}
}

/* top-k sets seen through the hook, [layer][pos] -> sorted entries */
struct topk_log {
	uint32_t n_layers, n_pos, k;
	int32_t *idx;		/* [n_layers][n_pos][k], -1 padded */
};

static void topk_hook(void *ctx, uint32_t layer, uint32_t pos, const int32_t *idx, uint32_t n)
{
	struct topk_log *t = ctx;
	int32_t *dst;

	if (layer >= t->n_layers || pos >= t->n_pos || n > t->k)
		return;
	dst = t->idx + ((size_t)layer * t->n_pos + pos) * t->k;
	for (uint32_t i = 0; i < t->k; i++)
		dst[i] = i < n ? idx[i] : -1;
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

static double rel_max(const float *ref, const float *got, size_t n)
{
	double d = 0, m = 0;

	for (size_t i = 0; i < n; i++) {
		d = fmax(d, fabs((double)ref[i] - got[i]));
		m = fmax(m, fabs(ref[i]));
	}
	return m > 0 ? d / m : d;
}

/* Compressed entries, indexer keys and top-k sets after a one-shot prefill. */
static void check_internals(struct __test_metadata *_metadata, const char *file,
			    const char *mode, enum dsv4_numerics num, const char *preset,
			    double entry_tol, uint32_t *topk_mismatch)
{
	uint32_t N;
	int32_t *tok = fx_tokens(file, &N);
	struct topk_log tl = { 0 };
	struct dsv4_model_hooks hooks = { .ctx = &tl, .topk = topk_hook };
	struct dsv4_model *m = load(preset, num, 0, NULL, &hooks);
	const struct dsv4_config *c;
	struct dsv4_seq *s;
	char err[256], name[96];

	ASSERT_NE(NULL, tok);
	ASSERT_NE(NULL, m);
	c = dsv4_model_config(m);
	tl.n_layers = c->n_layers;
	tl.n_pos = N;
	tl.k = c->index_topk;
	tl.idx = malloc((size_t)tl.n_layers * N * tl.k * sizeof(int32_t));
	ASSERT_NE(NULL, tl.idx);
	ASSERT_EQ(0, dsv4_seq_create(m, N, &s));
	ASSERT_EQ(0, dsv4_eval(s, tok, N, DSV4_LOGITS_NONE, NULL, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, gpu_seq_sync(s, 1));	/* the CUDA backend's state, where it runs */
	*topk_mismatch = 0;
	for (uint32_t L = 0; L < c->n_layers; L++) {
		uint32_t r = c->compress_ratios[L];
		uint64_t sh[2];

		if (!r || N / r == 0)
			continue;	/* nothing emitted (and nothing in the fixture) */
		snprintf(name, sizeof(name), "%s.layer.%u.compressed", mode, L);
		float *ce = fx_get(file, name, DSV4_DT_F32, sh);

		ASSERT_NE(NULL, ce) TH_LOG("%s missing", name);
		ASSERT_EQ(N / r, s->layers[L].cmp.n_entries);
		ASSERT_EQ(sh[0], N / r);
		float *mine = malloc(sh[0] * sh[1] * sizeof(float));

		for (uint64_t w = 0; w < sh[0]; w++)
			cmp_entry_get(&s->layers[L].cmp, (uint32_t)w, mine + w * sh[1]);
		double d = rel_max(ce, mine, sh[0] * sh[1]);

		EXPECT_GE(entry_tol, d) TH_LOG("%s layer %u compressed entries: %.3g", preset, L, d);
		free(mine);
		free(ce);
		if (r != 4)
			continue;
		snprintf(name, sizeof(name), "%s.layer.%u.index_keys", mode, L);
		float *ik = fx_get(file, name, DSV4_DT_F32, sh);

		ASSERT_NE(NULL, ik);
		float *keys = malloc(sh[0] * sh[1] * sizeof(float));

		for (uint64_t w = 0; w < sh[0]; w++)
			cmp_entry_get(&s->layers[L].icmp, (uint32_t)w, keys + w * sh[1]);
		d = rel_max(ik, keys, sh[0] * sh[1]);
		EXPECT_GE(entry_tol, d) TH_LOG("%s layer %u index keys: %.3g", preset, L, d);
		if (num == DSV4_NUMERICS_REFERENCE) {
			/* Hadamard + FP4 grid: the keys are bit-exact unless an
			 * input sat on a rounding boundary */
			uint64_t n = sh[0] * sh[1], differ = 0;

			for (uint64_t i = 0; i < n; i++)
				differ += ik[i] != keys[i];	/* FP4 storage: exact */
			TH_LOG("%s layer %u: %llu of %llu index-key values not bit-exact", preset, L,
			       (unsigned long long)differ, (unsigned long long)n);
			EXPECT_GE(n / 100, differ);
		}
		free(keys);
		free(ik);

		snprintf(name, sizeof(name), "%s.layer.%u.topk", mode, L);
		int32_t *tk = fx_get(file, name, DSV4_DT_I32, sh);

		ASSERT_NE(NULL, tk) TH_LOG("%s missing", name);
		ASSERT_EQ(N, sh[0]);
		/* the official top-k is min(index_topk, N/4) wide in a prefill */
		ASSERT_GE(tl.k, sh[1]);
		ASSERT_GE(4096u, tl.k);
		for (uint32_t t = 0; t < N; t++) {
			int32_t want[4096], *got = tl.idx + ((size_t)L * N + t) * tl.k;

			/* the fixture holds KV-cache positions: entry + N (the prefill's raw KV first) */
			for (uint32_t i = 0; i < tl.k; i++) {
				int32_t v = i < sh[1] ? tk[(size_t)t * sh[1] + i] : -1;

				want[i] = v < 0 ? -1 : v - (int32_t)N;
			}
			qsort(want, tl.k, sizeof(int32_t), cmp_i32);
			qsort(got, tl.k, sizeof(int32_t), cmp_i32);
			if (memcmp(want, got, tl.k * sizeof(int32_t)))
				(*topk_mismatch)++;
		}
		free(tk);
	}
	dsv4_seq_free(s);
	dsv4_model_free(m);
	free(tl.idx);
	free(tok);
}

TEST(exact_entries_keys_and_topk_match_official)
{
	for (int p = 0; p < 3; p++) {
		char file[64];
		uint32_t bad;

		snprintf(file, sizeof(file), "official-%s.safetensors", presets[p]);
		check_internals(_metadata, file, "exact", DSV4_NUMERICS_EXACT, presets[p], 1e-4, &bad);
		EXPECT_EQ(0u, bad) TH_LOG("%s: %u positions with a different top-k set", presets[p], bad);
	}
}

TEST(hf_semantics_match_transformers)
{
	for (int p = 0; p < 3; p++) {
		char file[64], err[256];
		uint32_t N, V;
		uint64_t ps[2], ds[2];

		snprintf(file, sizeof(file), "hf-%s.safetensors", presets[p]);
		int32_t *tok = fx_tokens(file, &N);
		float *pre = fx_get(file, "hf.prefill.logits", DSV4_DT_F32, ps);
		float *dec = fx_get(file, "hf.decode.logits", DSV4_DT_F32, ds);
		struct dsv4_model *m = load(presets[p], DSV4_NUMERICS_EXACT, DSV4_MODEL_HF_SEMANTICS,
					    NULL, NULL);

		ASSERT_NE(NULL, tok);
		ASSERT_NE(NULL, pre);
		ASSERT_NE(NULL, dec);
		ASSERT_NE(NULL, m);
		V = dsv4_model_config(m)->vocab_size;
		float *lg = prefill(m, tok, N, 0);

		ASSERT_NE(NULL, lg);
		struct cmp c = compare(pre, lg, N, V, 1e-3);

		TH_LOG("%s vs HF prefill: worst %.3g, %u argmax differ, %u ties", presets[p], c.worst,
		       c.argmax_bad, c.ties);
		EXPECT_EQ(0u, c.over);
		EXPECT_EQ(0u, c.argmax_bad);

		/* HF's decode: prefill K, then one token at a time on its cache */
		uint32_t K = N - (uint32_t)ds[0];
		struct dsv4_seq *s;
		float *dl = malloc((size_t)ds[0] * V * sizeof(float));

		ASSERT_EQ(0, dsv4_seq_create(m, N, &s));
		ASSERT_EQ(0, dsv4_eval(s, tok, K, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
		for (uint32_t t = K; t < N; t++)
			ASSERT_EQ(0, dsv4_eval(s, tok + t, 1, DSV4_LOGITS_LAST, dl + (size_t)(t - K) * V,
					       err, sizeof(err)));
		c = compare(dec, dl, (uint32_t)ds[0], V, 1e-3);
		TH_LOG("%s vs HF decode: worst %.3g, %u argmax differ", presets[p], c.worst, c.argmax_bad);
		EXPECT_EQ(0u, c.over);
		EXPECT_EQ(0u, c.argmax_bad);
		dsv4_seq_free(s);
		free(dl);
		free(lg);
		free(tok);
		free(pre);
		free(dec);
		dsv4_model_free(m);
	}
}

/* Teacher forcing: compare block L's output with the reference, then hand
 * the next block the reference's streams. */
struct forcing {
	float *ref[64];
	uint32_t rows, width, n_layers;
	uint32_t over[64];
	double worst[64];
};

static void force_hook(void *ctx, uint32_t layer, float *X, uint32_t rows, uint32_t width)
{
	struct forcing *f = ctx;

	if (layer >= f->n_layers || rows != f->rows || width != f->width || !f->ref[layer])
		return;
	for (uint32_t r = 0; r < rows; r++) {
		double d = rel_max(f->ref[layer] + (size_t)r * width, X + (size_t)r * width, width);

		f->worst[layer] = fmax(f->worst[layer], d);
		f->over[layer] += d > 1e-3;
	}
	memcpy(X, f->ref[layer], (size_t)rows * width * sizeof(float));
}

TEST(reference_layers_with_teacher_forcing)
{
	for (int p = 0; p < 3; p++) {
		char file[64], name[64], err[256];
		struct forcing f = { 0 };
		struct dsv4_model_hooks hooks = { .ctx = &f, .layer_out = force_hook };
		uint32_t N;

		snprintf(file, sizeof(file), "official-%s-layers.safetensors", presets[p]);
		int32_t *tok = fx_tokens(file, &N);
		struct dsv4_model *m = load(presets[p], DSV4_NUMERICS_REFERENCE, 0, NULL, &hooks);

		ASSERT_NE(NULL, tok);
		ASSERT_NE(NULL, m);
		const struct dsv4_config *c = dsv4_model_config(m);

		f.rows = N;
		f.width = c->hc_mult * c->dim;
		f.n_layers = c->n_layers;
		for (uint32_t L = 0; L < c->n_layers; L++) {
			uint64_t sh[2];

			snprintf(name, sizeof(name), "reference.layer.%u.out", L);
			f.ref[L] = fx_get(file, name, DSV4_DT_F32, sh);
			ASSERT_NE(NULL, f.ref[L]);
			ASSERT_EQ(f.width, sh[1]);
		}
		struct dsv4_seq *s;

		ASSERT_EQ(0, dsv4_seq_create(m, N, &s));
		ASSERT_EQ(0, dsv4_eval(s, tok, N, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
		for (uint32_t L = 0; L < c->n_layers; L++) {
			TH_LOG("%s layer %u (ratio %u): worst %.3g, %u of %u positions over 1e-3",
			       presets[p], L, c->compress_ratios[L], f.worst[L], f.over[L], N);
			/* a flipped rounding boundary moves one position; allow 2 of 32 */
			EXPECT_GE(2u, f.over[L]);
			EXPECT_GE(0.05, f.worst[L]);
			free(f.ref[L]);
		}
		dsv4_seq_free(s);
		dsv4_model_free(m);
		free(tok);
	}
}

TEST(reference_end_to_end_inside_the_envelope)
{
	char *env = NULL;
	size_t envlen = 0;
	FILE *ef = fopen(DSV4_FIXTURES "/envelope.json", "r");

	ASSERT_NE(NULL, ef);
	ASSERT_EQ(0, getdelim(&env, &envlen, '\0', ef) < 0);
	fclose(ef);
	for (int p = 0; p < 3; p++) {
		char file[64], key[64];
		uint32_t N, V, bad;
		uint64_t ps[2];
		const char *at;
		double envelope;

		snprintf(key, sizeof(key), "\"%s\"", presets[p]);
		at = strstr(env, key);
		ASSERT_NE(NULL, at);
		at = strstr(at, "\"max_rel\":");
		ASSERT_NE(NULL, at);
		envelope = strtod(at + strlen("\"max_rel\":"), NULL);
		ASSERT_LT(0.0, envelope);

		snprintf(file, sizeof(file), "official-%s-layers.safetensors", presets[p]);
		int32_t *tok = fx_tokens(file, &N);
		float *pre = fx_get(file, "reference.prefill.logits", DSV4_DT_F32, ps);
		struct dsv4_model *m = load(presets[p], DSV4_NUMERICS_REFERENCE, 0, NULL, NULL);

		ASSERT_NE(NULL, m);
		ASSERT_NE(NULL, pre);
		V = dsv4_model_config(m)->vocab_size;
		float *lg = prefill(m, tok, N, 0);

		ASSERT_NE(NULL, lg);
		struct cmp c = compare(pre, lg, N, V, 1e-3);

		TH_LOG("%s reference end to end: worst %.3g (official envelope %.3g), %u argmax differ",
		       presets[p], c.worst, envelope, c.argmax_bad);
		EXPECT_GE(envelope, c.worst);
		dsv4_model_free(m);
		free(lg);
		free(pre);
		free(tok);
		/* the reference-mode entries and top-k sets, with the same allowance */
		check_internals(_metadata, file, "reference", DSV4_NUMERICS_REFERENCE, presets[p],
				envelope, &bad);
		TH_LOG("%s reference: %u positions with a different top-k set", presets[p], bad);
		EXPECT_GE(2u, bad);
	}
	free(env);
}

TEST(chunked_prefill_equals_one_shot)
{
	static const uint32_t chunks[] = { 1, 7, 37, 128 };
	uint32_t N;
	int32_t *tok = fx_tokens("official-tiny-b.safetensors", &N);

	ASSERT_NE(NULL, tok);
	N = 260;	/* two HCA windows; keeps the one-token chunks quick under ASan */
	for (int num = 0; num < 2; num++) {
		struct dsv4_model *m = load("tiny-b", num ? DSV4_NUMERICS_EXACT : DSV4_NUMERICS_REFERENCE,
					    0, NULL, NULL);
		uint32_t V;

		ASSERT_NE(NULL, m);
		V = dsv4_model_config(m)->vocab_size;
		float *one = prefill(m, tok, N, 0);

		ASSERT_NE(NULL, one);
		for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
			float *ch = prefill(m, tok, N, chunks[i]);

			ASSERT_NE(NULL, ch);
			struct cmp c = compare(one, ch, N, V, 1e-3);

			TH_LOG("%s chunk %u: worst %.3g", num ? "exact" : "reference", chunks[i], c.worst);
			if (num) {	/* exact: tight */
				EXPECT_EQ(0u, c.over);
				EXPECT_EQ(0u, c.argmax_bad);
			}
			free(ch);
		}
		free(one);
		dsv4_model_free(m);
	}
	free(tok);
}

TEST(batched_sequences_equal_single_ones)
{
	uint32_t N;
	int32_t *tok = fx_tokens("official-tiny-c.safetensors", &N);
	struct dsv4_model *m = load("tiny-c", DSV4_NUMERICS_EXACT, 0, NULL, NULL);
	enum { S = 3, P = 150, D = 40 };
	struct dsv4_seq *seq[S];
	char err[256];
	uint32_t V;

	ASSERT_NE(NULL, tok);
	ASSERT_NE(NULL, m);
	V = dsv4_model_config(m)->vocab_size;
	/* sequence i: the fixture's tokens from offset 50*i; single runs first */
	float *single = malloc((size_t)S * (P + D) * V * sizeof(float));
	float *batch = malloc((size_t)S * (P + D) * V * sizeof(float));

	ASSERT_NE(NULL, single);
	ASSERT_NE(NULL, batch);
	for (int i = 0; i < S; i++) {
		float *lg = prefill(m, tok + 50 * i, P + D, 0);

		ASSERT_NE(NULL, lg);
		memcpy(single + (size_t)i * (P + D) * V, lg, (size_t)(P + D) * V * sizeof(float));
		free(lg);
		ASSERT_EQ(0, dsv4_seq_create(m, P + D, &seq[i]));
	}
	/* batch: the prefills side by side (different lengths), then decode
	 * steps for all three in one pass each */
	struct dsv4_eval_req rq[S];

	for (int i = 0; i < S; i++)
		rq[i] = (struct dsv4_eval_req){ .seq = seq[i], .tokens = tok + 50 * i,
						.n_tokens = P - 10 * i, .want = DSV4_LOGITS_ALL,
						.logits = batch + (size_t)i * (P + D) * V };
	ASSERT_EQ(0, dsv4_eval_many(m, rq, S, err, sizeof(err))) TH_LOG("%s", err);
	/* the shorter ones catch up with one mixed batch (a chunk beside decodes) */
	for (int i = 0; i < S; i++) {
		uint32_t at = dsv4_seq_pos(seq[i]);

		rq[i] = (struct dsv4_eval_req){ .seq = seq[i], .tokens = tok + 50 * i + at,
						.n_tokens = P + 1 - at, .want = DSV4_LOGITS_ALL,
						.logits = batch + ((size_t)i * (P + D) + at) * V };
	}
	ASSERT_EQ(0, dsv4_eval_many(m, rq, S, err, sizeof(err))) TH_LOG("%s", err);
	for (uint32_t t = P + 1; t < P + D; t++) {
		for (int i = 0; i < S; i++)
			rq[i] = (struct dsv4_eval_req){ .seq = seq[i], .tokens = tok + 50 * i + t,
							.n_tokens = 1, .want = DSV4_LOGITS_LAST,
							.logits = batch + ((size_t)i * (P + D) + t) * V };
		ASSERT_EQ(0, dsv4_eval_many(m, rq, S, err, sizeof(err))) TH_LOG("%s", err);
	}
	for (int i = 0; i < S; i++) {
		struct cmp c = compare(single + (size_t)i * (P + D) * V, batch + (size_t)i * (P + D) * V,
				       P + D, V, 1e-3);

		TH_LOG("sequence %d batched vs alone: worst %.3g", i, c.worst);
		EXPECT_EQ(0u, c.over);
		EXPECT_EQ(0u, c.argmax_bad);
		EXPECT_EQ((uint32_t)(P + D), dsv4_seq_pos(seq[i]));
		dsv4_seq_free(seq[i]);
	}
	free(single);
	free(batch);
	free(tok);
	dsv4_model_free(m);
}

TEST(kernel_sets_agree)
{
	static const char *const ks[] = { "scalar", "avx2", "avx512", "avx512-bf16" };
	uint32_t N;
	int32_t *tok = fx_tokens("official-tiny-a.safetensors", &N);
	float *base = NULL;

	ASSERT_NE(NULL, tok);
	N = 200;
	for (int i = 0; i < 4; i++) {
		struct dsv4_model *m = load("tiny-a", DSV4_NUMERICS_EXACT, 0, ks[i], NULL);

		if (!m) {
			TH_LOG("%s kernels not available on this CPU", ks[i]);
			continue;
		}
		EXPECT_STREQ(ks[i], dsv4_model_kernels(m));
		float *lg = prefill(m, tok, N, 0);

		ASSERT_NE(NULL, lg);
		if (!base) {
			base = lg;
		} else {
			struct cmp c = compare(base, lg, N, dsv4_model_config(m)->vocab_size, 1e-5);

			TH_LOG("%s vs scalar: worst %.3g", ks[i], c.worst);
			EXPECT_EQ(0u, c.over);
			free(lg);
		}
		dsv4_model_free(m);
	}
	free(base);
	free(tok);
}

/* Every kernel set against the portable one, on each stored format, with
 * rows offset into a larger matrix (the grouped wo_a) and odd sizes. */
TEST(kernels_match_scalar_on_every_format)
{
	enum { ROWS = 300, COLS = 640 };
	uint8_t *fp8 = malloc(ROWS * COLS), *fp4 = malloc(ROWS * COLS / 2);
	uint8_t *s8 = malloc(3 * 5), *s4 = malloc(ROWS * COLS / 32);
	uint16_t *bf = malloc(ROWS * COLS * 2), *xp = malloc(COLS * 2);
	float *f32 = malloc(ROWS * COLS * 4), *x = malloc(COLS * 4), *dec = malloc(8 * COLS * 4);
	float *ref = malloc(8 * COLS * 4);
	const struct kernels *sets[3] = { &kernels_scalar, kernels_pick("avx2"), kernels_pick("avx512") };

	srand(7);
	for (int i = 0; i < ROWS * COLS; i++) {
		fp8[i] = (uint8_t)(rand() & 0xff);
		if ((fp8[i] & 0x7f) == 0x7f)
			fp8[i] = 0x11;	/* not NaN */
		f32[i] = (float)rand() / RAND_MAX - 0.5f;
		bf[i] = (uint16_t)(0x3c00 + rand() % 0x0800) | (uint16_t)(rand() & 1) << 15;
	}
	for (int i = 0; i < ROWS * COLS / 2; i++)
		fp4[i] = (uint8_t)(rand() & 0xff);
	for (int i = 0; i < 15; i++)
		s8[i] = (uint8_t)(118 + rand() % 12);
	for (int i = 0; i < ROWS * COLS / 32; i++)
		s4[i] = (uint8_t)(120 + rand() % 10);
	for (int i = 0; i < COLS; i++)
		x[i] = ((float)rand() / RAND_MAX - 0.5f) * 8;
	struct mat mats[4] = {
		{ .fmt = MAT_FP8, .rows = ROWS - 100, .cols = COLS, .row0 = 100, .data = fp8, .scale = s8 },
		{ .fmt = MAT_FP4, .rows = ROWS, .cols = COLS, .data = fp4, .scale = s4 },
		{ .fmt = MAT_BF16, .rows = ROWS - 3, .cols = COLS, .row0 = 3, .data = bf },
		{ .fmt = MAT_F32, .rows = ROWS, .cols = COLS, .data = f32 },
	};

	for (int f = 0; f < 4; f++) {
		const struct mat *w = &mats[f];

		for (int k = 1; k < 3; k++) {
			double worst = 0, scale = 1e-3;

			if (!sets[k])
				continue;
			for (uint32_t r = 0; r < w->rows; r++)
				scale = fmax(scale, fabs(kernels_scalar.row_dot(w, r, x)));
			for (uint32_t r = 0; r < w->rows; r += 7) {
				float a = kernels_scalar.row_dot(w, r, x), b = sets[k]->row_dot(w, r, x);
				float y[4];

				worst = fmax(worst, fabs(a - b) / scale);
				if (r + 8 > w->rows)
					continue;
				kernels_scalar.decode_rows(w, r, 8, ref);
				sets[k]->decode_rows(w, r, 8, dec);
				uint32_t differ = 0;	/* == : the FP4 code for -0 may decode as +0 */

				for (uint32_t i = 0; i < 8 * COLS; i++)
					differ += ref[i] != dec[i];
				EXPECT_EQ(0u, differ)
					TH_LOG("%s decode_rows, format %d, row %u", sets[k]->name, f, r);
				sets[k]->dot4(dec, x, COLS, y);
				worst = fmax(worst, fabs(y[0] - kernels_scalar.row_dot(w, r, x)) / scale);
			}
			TH_LOG("%s format %d: worst relative %.3g", sets[k]->name, f, worst);
			EXPECT_GE(1e-5, worst);
		}
	}
	/* FP4 through AVX512-BF16 on an FP8-quantized activation */
	if (cpu_has_avx512bf16()) {
		double worst = 0, scale = 1e-3;

		fakequant_fp8(x, COLS, 128);
		for (uint32_t r = 0; r < ROWS; r++)
			scale = fmax(scale, fabs(kernels_scalar.row_dot(&mats[1], r, x)));
		fp4_bf16_perm_x(x, COLS, xp);
		for (uint32_t r = 0; r < ROWS; r++) {
			float a = kernels_scalar.row_dot(&mats[1], r, x);
			float b = fp4_bf16_row_dot(&mats[1], r, xp);

			worst = fmax(worst, fabs(a - b) / scale);
		}
		TH_LOG("FP4 avx512-bf16: worst relative %.3g", worst);
		EXPECT_GE(1e-5, worst);
	}
	free(fp8);
	free(fp4);
	free(s8);
	free(s4);
	free(bf);
	free(xp);
	free(f32);
	free(x);
	free(dec);
	free(ref);
}

/* The 584-byte MODEL1 layout and the FP4/FP8 key formats on the official
 * reference-numerics entries: nope dims and FP4 keys round-trip exactly
 * (they are on those grids), rope dims come back as their BF16 rounding. */
TEST(kv_formats_round_trip_official_entries)
{
	EXPECT_EQ(584u, kv_main_bytes(512, 64));
	EXPECT_EQ(68u, kv_index_bytes(KV_INDEX_FP4, 128));
	EXPECT_EQ(132u, kv_index_bytes(KV_INDEX_FP8, 128));
	for (int p = 0; p < 3; p++) {
		char file[64], name[64];
		uint64_t sh[2];
		struct dsv4_config cfg;
		char err[256], path[128];

		snprintf(path, sizeof(path), "%s/config.json", model_dir(presets[p]));
		ASSERT_EQ(0, dsv4_config_load(path, &cfg, err, sizeof(err)));
		snprintf(file, sizeof(file), "official-%s-layers.safetensors", presets[p]);
		for (uint32_t L = 0; L < cfg.n_layers; L++) {
			if (cfg.compress_ratios[L] != 4)
				continue;
			uint32_t hd = cfg.head_dim, rd = cfg.rope_head_dim, ihd = cfg.index_head_dim;

			snprintf(name, sizeof(name), "reference.layer.%u.compressed", L);
			float *ce = fx_get(file, name, DSV4_DT_F32, sh);
			uint8_t buf[1200];
			float back[1024];
			uint64_t nope_bad = 0, rope_bad = 0, key_bad = 0, fp8_far = 0;

			ASSERT_NE(NULL, ce);
			for (uint64_t w = 0; w < sh[0]; w++) {
				kv_main_encode(ce + w * hd, hd, rd, buf);
				kv_main_decode(buf, hd, rd, back);
				for (uint32_t i = 0; i < hd; i++) {
					float v = ce[w * hd + i];

					if (i < hd - rd)
						nope_bad += back[i] != v;
					else
						rope_bad += back[i] != bf16_round(v);
				}
			}
			free(ce);
			snprintf(name, sizeof(name), "reference.layer.%u.index_keys", L);
			float *ik = fx_get(file, name, DSV4_DT_F32, sh);

			ASSERT_NE(NULL, ik);
			for (uint64_t w = 0; w < sh[0]; w++) {
				float amax = 0;

				kv_index_encode(KV_INDEX_FP4, ik + w * ihd, ihd, buf);
				kv_index_decode(KV_INDEX_FP4, buf, ihd, back);
				for (uint32_t i = 0; i < ihd; i++) {
					key_bad += back[i] != ik[w * ihd + i];
					amax = fmaxf(amax, fabsf(ik[w * ihd + i]));
				}
				kv_index_encode(KV_INDEX_FP8, ik + w * ihd, ihd, buf);
				kv_index_decode(KV_INDEX_FP8, buf, ihd, back);
				for (uint32_t i = 0; i < ihd; i++)
					fp8_far += fabsf(back[i] - ik[w * ihd + i]) > amax / 16;
			}
			free(ik);
			TH_LOG("%s layer %u: MODEL1 %llu nope / %llu rope values off; FP4 keys %llu off; "
			       "FP8 keys %llu far", presets[p], L, (unsigned long long)nope_bad,
			       (unsigned long long)rope_bad, (unsigned long long)key_bad,
			       (unsigned long long)fp8_far);
			EXPECT_EQ(0u, nope_bad);
			EXPECT_EQ(0u, rope_bad);
			EXPECT_EQ(0u, key_bad);
			EXPECT_EQ(0u, fp8_far);
		}
	}
}

/* MODEL1 storage in the engine: the first compressed layer's entries (its
 * input is the same) equal the official ones in nope dims, BF16 in rope. */
TEST(kv_model1_storage_in_the_engine)
{
	uint32_t N;
	int32_t *tok = fx_tokens("official-tiny-a-layers.safetensors", &N);
	struct dsv4_model_options o = { .threads = 2, .kv_main = DSV4_KV_MODEL1 };
	struct dsv4_model *m;
	struct dsv4_seq *s;
	char err[256];

	ASSERT_NE(NULL, tok);
	ASSERT_EQ(0, dsv4_model_load(model_dir("tiny-a"), &o, &m, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, dsv4_seq_create(m, N, &s));
	ASSERT_EQ(0, dsv4_eval(s, tok, N, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
	uint64_t sh[2];
	float *ce = fx_get("official-tiny-a-layers.safetensors", "reference.layer.1.compressed",
			   DSV4_DT_F32, sh);
	float back[1024];
	uint64_t off = 0;

	ASSERT_NE(NULL, ce);
	ASSERT_EQ(KV_MAIN_MODEL1, s->layers[1].cmp.fmt);
	EXPECT_EQ(kv_main_bytes(128, 64), s->layers[1].cmp.stride);
	for (uint64_t w = 0; w < sh[0]; w++) {
		cmp_entry_get(&s->layers[1].cmp, (uint32_t)w, back);
		for (uint32_t i = 0; i < 128; i++)
			off += back[i] != (i < 64 ? ce[w * 128 + i] : bf16_round(ce[w * 128 + i]));
	}
	EXPECT_EQ(0u, off);
	free(ce);
	dsv4_seq_free(s);
	dsv4_model_free(m);
	free(tok);
	o = (struct dsv4_model_options){ .threads = 2 };
	/* bad combinations */
	o.kv_index = DSV4_KV_MODEL1;
	EXPECT_EQ(-EINVAL, dsv4_model_load(model_dir("tiny-a"), &o, &m, err, sizeof(err)));
	o.kv_index = DSV4_KV_AUTO;
	o.kv_main = DSV4_KV_FP4;
	EXPECT_EQ(-EINVAL, dsv4_model_load(model_dir("tiny-a"), &o, &m, err, sizeof(err)));
}

/* The format's bytes per token against the spec's formula (§4.6): Flash
 * 3,514 B (3.43 GiB at 2^20 tokens) with FP4 keys, 3,850 with FP8; Pro
 * 5,031 / 5,511.  And a sequence's usage adds up. */
TEST(kv_bytes_per_token_follow_the_format)
{
	struct dsv4_config c;
	char err[256];

	ASSERT_EQ(0, dsv4_config_load(DSV4_FIXTURES "/config-flash.json", &c, err, sizeof(err)))
		TH_LOG("%s", err);
	double b = dsv4_kv_bytes_per_token(&c, DSV4_KV_MODEL1, DSV4_KV_FP4);

	EXPECT_EQ(3514.25, b);
	EXPECT_EQ(3850.25, dsv4_kv_bytes_per_token(&c, DSV4_KV_MODEL1, DSV4_KV_FP8));
	TH_LOG("Flash: %.2f B/token, %.3f GiB at 2^20 tokens", b, b * 1048576 / (1 << 30));
	EXPECT_GT(0.005, fabs(b * 1048576 / (1 << 30) - 3.43));
	/* Pro: 61 layers, [128,128] + [4,128]*29 + [4] */
	c.n_layers = 61;
	for (uint32_t L = 0; L < 61; L++)
		c.compress_ratios[L] = L < 2 ? 128 : L % 2 ? 128 : 4;
	b = dsv4_kv_bytes_per_token(&c, DSV4_KV_MODEL1, DSV4_KV_FP4);
	TH_LOG("Pro: %.2f B/token, %.3f GiB at 2^20 tokens", b, b * 1048576 / (1 << 30));
	EXPECT_GT(1.0, fabs(b - 5031));
	EXPECT_GT(1.0, fabs(dsv4_kv_bytes_per_token(&c, DSV4_KV_MODEL1, DSV4_KV_FP8) - 5511));
	EXPECT_GT(0.005, fabs(b * 1048576 / (1 << 30) - 4.91));

	/* a tiny sequence's usage: entries x stride, per layer */
	uint32_t N;
	int32_t *tok = fx_tokens("official-tiny-a.safetensors", &N);
	struct dsv4_model *m = load("tiny-a", DSV4_NUMERICS_REFERENCE, 0, NULL, NULL);
	struct dsv4_seq *s;
	struct dsv4_kv_usage u;

	ASSERT_NE(NULL, m);
	const struct dsv4_config *tc = dsv4_model_config(m);

	ASSERT_EQ(0, dsv4_seq_create(m, N, &s));
	ASSERT_EQ(0, dsv4_eval(s, tok, 256, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
	dsv4_seq_kv_usage(s, &u);
	EXPECT_EQ(256u, u.tokens);
	double want = dsv4_kv_bytes_per_token(tc, DSV4_KV_F32, DSV4_KV_FP4) * 256;

	EXPECT_EQ(want, (double)(u.main_bytes + u.index_bytes + u.spill_used_bytes));
	EXPECT_EQ(u.window_bytes + u.state_bytes + u.main_bytes + u.index_bytes + u.spill_bytes,
		  u.total_bytes);
	EXPECT_LT(0u, u.spill_bytes);
	TH_LOG("tiny-a after 256 tokens: hot: window %llu, state %llu, HCA %llu, keys %llu; "
	       "spill: %llu of %llu bytes", (unsigned long long)u.window_bytes,
	       (unsigned long long)u.state_bytes, (unsigned long long)u.main_bytes,
	       (unsigned long long)u.index_bytes, (unsigned long long)u.spill_used_bytes,
	       (unsigned long long)u.spill_bytes);
	dsv4_seq_free(s);
	dsv4_model_free(m);
	free(tok);
}

/* The firmware's MODEL1 entry size (abi.h, what dsv4_cmp_push_packed
 * writes and dsv4_gather_model1 reads) is the CPU's (kvfmt.c), so the
 * entries' bytes can go between host and GPU as they are: tiny, Flash and
 * Pro head dims, and a few others. */
TEST(firmware_model1_entries_are_the_cpus)
{
	static const uint32_t dims[][2] = { { 128, 64 }, { 512, 64 }, { 576, 64 },
					    { 1024, 128 }, { 192, 64 } };

	for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++) {
		uint32_t hd = dims[i][0], rd = dims[i][1];

		EXPECT_EQ(kv_main_bytes(hd, rd), FW_MODEL1_BYTES(hd, rd))
			TH_LOG("head_dim %u, rope %u", hd, rd);
	}
	EXPECT_EQ(584u, FW_MODEL1_BYTES(512, 64));
}

/* The decode roofline's KV bytes count MODEL1 main entries at their 584
 * (tiny: 136) bytes where they are kept so: every compressed layer on the
 * CPU, the CSA layers on the GPU (HCA layers keep F32 there). */
TEST(decode_bytes_count_model1_entries)
{
	struct dsv4_model_options o = { .threads = 2, .backend = test_backend };
	struct dsv4_model *f32, *m1;
	double wf, kf, wm, km, want = 0;
	char err[256];

	ASSERT_EQ(0, dsv4_model_load(model_dir("tiny-a"), &o, &f32, err, sizeof(err))) TH_LOG("%s", err);
	o.kv_main = DSV4_KV_MODEL1;
	ASSERT_EQ(0, dsv4_model_load(model_dir("tiny-a"), &o, &m1, err, sizeof(err))) TH_LOG("%s", err);
	const struct dsv4_config *c = dsv4_model_config(m1);
	double saved = c->head_dim * 4.0 - kv_main_bytes(c->head_dim, c->rope_head_dim);

	for (uint32_t L = 0; L < c->n_layers; L++) {
		uint32_t r = c->compress_ratios[L];

		if (r == 4)
			want += (4096 / 4 < c->index_topk ? 4096 / 4 : c->index_topk) * saved;
		else if (r && !dsv4_model_on_gpu(m1))
			want += (double)(4096 / r) * saved;
	}
	EXPECT_LT(0.0, want);
	dsv4_model_decode_bytes(f32, 4096, &wf, &kf);
	dsv4_model_decode_bytes(m1, 4096, &wm, &km);
	EXPECT_EQ(wf, wm);
	EXPECT_EQ(want, kf - km);
	dsv4_model_free(m1);
	dsv4_model_free(f32);
}

/* The spill pool is shared: blocks come back when a sequence is reset or
 * freed, and the next sequences reuse them instead of growing the pool. */
TEST(kv_spill_pool_is_shared_and_recycled)
{
	uint32_t N;
	int32_t *tok = fx_tokens("official-tiny-a.safetensors", &N);
	struct dsv4_kv_pool_stats a, b, c;
	struct dsv4_model *m;

	test_backend = DSV4_BACKEND_CPU;	/* the CPU's spill tier */
	m = load("tiny-a", DSV4_NUMERICS_EXACT, 0, NULL, NULL);
	test_backend = DSV4_BACKEND_AUTO;
	struct dsv4_seq *s[4];
	char err[256];

	ASSERT_NE(NULL, m);
	dsv4_model_kv_pool_stats(m, &a);
	ASSERT_NE(NULL, a.provider);
	EXPECT_STREQ("host", a.provider);	/* no /dev/dsv4 on this host */
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(0, dsv4_seq_create(m, N, &s[i]));
		ASSERT_EQ(0, dsv4_eval(s[i], tok, 300, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
	}
	dsv4_model_kv_pool_stats(m, &b);
	EXPECT_LT(0u, b.blocks);
	EXPECT_GT(b.blocks, b.free_blocks);
	for (int i = 0; i < 4; i++)
		dsv4_seq_free(s[i]);
	dsv4_model_kv_pool_stats(m, &c);
	EXPECT_EQ(c.blocks, c.free_blocks);	/* every block came back */
	/* again: the same blocks serve, the pool does not grow */
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(0, dsv4_seq_create(m, N, &s[i]));
		ASSERT_EQ(0, dsv4_eval(s[i], tok, 300, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
	}
	dsv4_model_kv_pool_stats(m, &c);
	EXPECT_EQ(b.blocks, c.blocks);
	dsv4_seq_reset(s[0]);
	dsv4_model_kv_pool_stats(m, &a);
	EXPECT_LT(c.free_blocks, a.free_blocks);	/* reset gave its blocks back */
	for (int i = 0; i < 4; i++)
		dsv4_seq_free(s[i]);
	TH_LOG("pool: %llu blocks of %u bytes (%s memory)", (unsigned long long)b.blocks,
	       b.block_bytes, b.provider);
	dsv4_model_free(m);
	free(tok);
}

TEST(reset_starts_over)
{
	uint32_t N;
	int32_t *tok = fx_tokens("official-tiny-a.safetensors", &N);
	struct dsv4_model *m = load("tiny-a", DSV4_NUMERICS_EXACT, 0, NULL, NULL);
	struct dsv4_seq *s;
	char err[256];
	uint32_t V;

	ASSERT_NE(NULL, m);
	V = dsv4_model_config(m)->vocab_size;
	float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float));

	ASSERT_EQ(0, dsv4_seq_create(m, N, &s));
	ASSERT_EQ(0, dsv4_eval(s, tok, 3, DSV4_LOGITS_LAST, a, err, sizeof(err)));
	ASSERT_EQ(0, dsv4_eval(s, tok + 100, 200, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
	dsv4_seq_reset(s);
	EXPECT_EQ(0u, dsv4_seq_pos(s));
	/* a prompt shorter than a CSA window after a long one (the official
	 * code's stale-state quirk) */
	ASSERT_EQ(0, dsv4_eval(s, tok, 3, DSV4_LOGITS_LAST, b, err, sizeof(err)));
	EXPECT_EQ(0, memcmp(a, b, V * sizeof(float)));
	dsv4_seq_free(s);
	free(a);
	free(b);
	free(tok);
	dsv4_model_free(m);
}

TEST(bad_calls_are_refused_and_change_nothing)
{
	struct dsv4_model *m = load("tiny-a", DSV4_NUMERICS_EXACT, 0, NULL, NULL), *m2;
	struct dsv4_model_options o = { 0 };
	struct dsv4_seq *s, *s2;
	char err[256];
	int32_t ok[4] = { 1, 2, 3, 4 }, bad[2] = { 1, 512 }, neg[1] = { -1 };
	float lg[512 * 4];

	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, dsv4_seq_create(m, 8, &s));
	ASSERT_EQ(0, dsv4_eval(s, ok, 2, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_eval(s, bad, 2, DSV4_LOGITS_LAST, lg, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "vocabulary"));
	EXPECT_EQ(-EINVAL, dsv4_eval(s, neg, 1, DSV4_LOGITS_LAST, lg, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_eval(s, ok, 0, DSV4_LOGITS_LAST, lg, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_eval(s, NULL, 1, DSV4_LOGITS_LAST, lg, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_eval(s, ok, 1, DSV4_LOGITS_ALL, NULL, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_eval(s, ok, 1, (enum dsv4_logits)7, lg, err, sizeof(err)));
	ASSERT_EQ(0, dsv4_eval(s, ok, 4, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
	EXPECT_EQ(-ENOSPC, dsv4_eval(s, ok, 4, DSV4_LOGITS_LAST, lg, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_eval(NULL, ok, 1, DSV4_LOGITS_LAST, lg, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_eval_many(m, NULL, 0, err, sizeof(err)));
	/* the same sequence twice in one batch */
	struct dsv4_eval_req rq[2] = {
		{ .seq = s, .tokens = ok, .n_tokens = 1 },
		{ .seq = s, .tokens = ok, .n_tokens = 1 },
	};

	EXPECT_EQ(-EINVAL, dsv4_eval_many(m, rq, 2, err, sizeof(err)));
	/* a sequence of another model */
	m2 = load("tiny-a", DSV4_NUMERICS_EXACT, 0, NULL, NULL);
	ASSERT_NE(NULL, m2);
	ASSERT_EQ(0, dsv4_seq_create(m2, 8, &s2));
	rq[1].seq = s2;
	EXPECT_EQ(-EINVAL, dsv4_eval_many(m, rq, 2, err, sizeof(err)));
	dsv4_seq_free(s2);
	dsv4_model_free(m2);
	/* nothing moved: only the two good calls advanced it */
	EXPECT_EQ(6u, dsv4_seq_pos(s));
	dsv4_seq_free(s);
	EXPECT_EQ(-EINVAL, dsv4_seq_create(m, 0, &s));
	EXPECT_EQ(-EINVAL, dsv4_seq_create(m, UINT32_MAX, &s));
	dsv4_model_free(m);

	/* options and checkpoints */
	o.numerics = (enum dsv4_numerics)5;
	EXPECT_EQ(-EINVAL, dsv4_model_load(model_dir("tiny-a"), &o, &m, err, sizeof(err)));
	o.numerics = DSV4_NUMERICS_EXACT;
	o.flags = 1u << 9;
	EXPECT_EQ(-EINVAL, dsv4_model_load(model_dir("tiny-a"), &o, &m, err, sizeof(err)));
	o.flags = 0;
	o.kernels = "avx9000";
	EXPECT_EQ(-ENOTSUP, dsv4_model_load(model_dir("tiny-a"), &o, &m, err, sizeof(err)));
	o.kernels = NULL;
	o.threads = 100000;
	EXPECT_EQ(-EINVAL, dsv4_model_load(model_dir("tiny-a"), &o, &m, err, sizeof(err)));
	o.threads = 1;
	EXPECT_GT(0, dsv4_model_load("/nonexistent/dsv4", &o, &m, err, sizeof(err)));
	EXPECT_NE(0u, strlen(err));
}

TEST(load_free_cycles_and_one_thread)
{
	/* LeakSanitizer (part of ASan here) fails the run on any leak */
	for (int i = 0; i < 3; i++) {
		struct dsv4_model_options o = { .threads = (uint32_t)i + 1,
						.numerics = DSV4_NUMERICS_EXACT };
		struct dsv4_model *m;
		struct dsv4_seq *s;
		char err[256];
		int32_t t[3] = { 5, 6, 7 };
		float lg[512];

		ASSERT_EQ(0, dsv4_model_load(model_dir("tiny-c"), &o, &m, err, sizeof(err))) TH_LOG("%s", err);
		ASSERT_EQ(0, dsv4_seq_create(m, 16, &s));
		ASSERT_EQ(0, dsv4_eval(s, t, 3, DSV4_LOGITS_LAST, lg, err, sizeof(err)));
		dsv4_seq_free(s);
		dsv4_model_free(m);
	}
}

TEST_HARNESS_MAIN
