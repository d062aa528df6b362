// SPDX-License-Identifier: MIT
/*
 * The CUDA backend's benchmark (GPU machine; see firmware/README.md):
 *   gpu_bench --model DIR [--contexts 4096,131072] [--steps 16] [--prefill 1024]
 *             [--stream-slots N] [--kv-spill] [--kv-main model1]
 * On a Flash-shaped checkpoint of a few layers (dsv4-mkmodel --preset flash
 * --layers N): the device's copy bandwidth measured in the same run, the
 * prefill rate, and decode per context: ms per token and per layer, tokens/s
 * projected to 43 layers, and the ratio to the HBM roofline (weight + KV
 * bytes one token must read / measured bandwidth).  Long contexts are set
 * up with dsv4_seq_assume_context (filler state, the same work per step).
 * With --stream-slots N the routed experts are also streamed (CPU store
 * holding all of them in pinned memory, a GPU cache of N expert slots):
 * decode at the first context against the PCIe roofline of the bytes that
 * crossed (measured pinned host-to-device bandwidth, same run).  With
 * --kv-spill the CSA main entries live in mapped host memory (the decode
 * rows then include their PCIe gathers; the roofline stays HBM's).  With
 * --kv-main model1 the main entries are kept as MODEL1 (CSA layers' 584
 * bytes an entry, decoded by the attention's gather; the roofline counts
 * those bytes).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsv4drv.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* decode with streamed experts at @ctx: ms per token and bytes crossing */
static void stream_bench(const char *model, uint32_t slots, uint32_t ctx, uint32_t steps,
			 double resident_ms, double htod, const int32_t *tok, uint32_t ntok)
{
	struct dsv4_stream_options so = { .mode = DSV4_EXPERTS_STREAM,
					  .mem = { .allow_unlocked = 1 } };
	struct dsv4_model_options mo = { .backend = DSV4_BACKEND_CUDA, .stream = &so };
	struct dsv4_gpu_stream_stats a, b;
	struct dsv4_model *m = NULL;
	struct dsv4_seq *s = NULL;
	char err[512], n[32];
	double *t = malloc(steps * sizeof(double));
	float *logits;

	snprintf(n, sizeof(n), "%u", slots);
	setenv("DSV4_GPU_EXPERT_SLOTS", n, 1);
	if (!t || dsv4_model_load(model, &mo, &m, err, sizeof(err))) {
		fprintf(stderr, "gpu_bench: streamed: %s\n", t ? err : "out of memory");
		free(t);
		return;
	}
	logits = malloc((size_t)dsv4_model_config(m)->vocab_size * sizeof(float));
	if (!logits || dsv4_seq_create(m, 1u << 20, &s) || dsv4_seq_assume_context(s, ctx)) {
		fprintf(stderr, "gpu_bench: streamed: no sequence\n");
		goto out;
	}
	/* a prefill brings most experts into the host cache (from disk), so
	 * that decode then measures the host-to-GPU path */
	for (uint32_t at = 0; at + 256 <= ntok && at < 1024; at += 256)
		if (dsv4_eval(s, tok + at, 256, DSV4_LOGITS_LAST, logits, err, sizeof(err))) {
			fprintf(stderr, "gpu_bench: streamed prefill: %s\n", err);
			goto out;
		}
	dsv4_seq_reset(s);
	if (dsv4_seq_assume_context(s, ctx))
		goto out;
	for (uint32_t i = 0; i < steps + 4; i++) {
		double a0 = now_s();

		if (i == 4)
			dsv4_model_gpu_stream_stats(m, &a);
		if (dsv4_eval(s, tok + i % ntok, 1, DSV4_LOGITS_LAST, logits, err, sizeof(err))) {
			fprintf(stderr, "gpu_bench: streamed decode: %s\n", err);
			goto out;
		}
		if (i >= 4)
			t[i - 4] = now_s() - a0;
	}
	dsv4_model_gpu_stream_stats(m, &b);
	qsort(t, steps, sizeof(*t), cmp_d);
	double ms = t[steps / 2] * 1e3, bytes = (double)(b.bytes_copied - a.bytes_copied) / steps;
	double roof = bytes / htod * 1e3;

	printf("streamed experts (%u GPU slots of %.1f MB): context %u: %.3f ms/token (resident %.3f), "
	       "%.1f MB/token crossed (%.2f misses/token), PCIe roofline %.3f ms, ratio %.2f\n",
	       b.slots, b.slot_bytes * 1e-6, ctx, ms, resident_ms, bytes * 1e-6,
	       (double)(b.misses - a.misses) / steps, roof, roof / ms);
out:
	dsv4_seq_free(s);
	dsv4_model_free(m);
	free(logits);
	free(t);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "contexts", required_argument, NULL, 'c' },
		{ "steps", required_argument, NULL, 's' },
		{ "prefill", required_argument, NULL, 'p' },
		{ "stream-slots", required_argument, NULL, 'S' },
		{ "kv-spill", no_argument, NULL, 'K' },
		{ "kv-main", required_argument, NULL, 'M' },
		{ 0 }
	};
	const char *model = NULL, *contexts = "4096,131072";
	uint32_t steps = 16, prefill = 1024, slots = 0;
	struct dsv4_model_options mo = { .backend = DSV4_BACKEND_CUDA };
	struct dsv4_model *m = NULL;
	struct dsv4_gpu *g = NULL;
	char err[512], desc[700];
	double bw = 0, htod = 0, first_ms = 0;
	uint32_t first_ctx = 0;
	int c, bad = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'm')
			model = optarg;
		else if (c == 'c')
			contexts = optarg;
		else if (c == 's')
			steps = (uint32_t)atoi(optarg);
		else if (c == 'p')
			prefill = (uint32_t)atoi(optarg);
		else if (c == 'S')
			slots = (uint32_t)atoi(optarg);
		else if (c == 'K')
			mo.gpu_kv_spill = 1;
		else if (c == 'M' && !strcmp(optarg, "model1"))
			mo.kv_main = DSV4_KV_MODEL1;
		else if (c == 'M' && !strcmp(optarg, "f32"))
			mo.kv_main = DSV4_KV_F32;
		else if (c == 'M')
			bad = 1;	/* (the usage line below) */
		else
			return 2;
	}
	if (!model || bad || !steps || steps > 4096 || !prefill) {
		fprintf(stderr, "usage: gpu_bench --model DIR [--contexts N,..] [--steps N] [--prefill N] "
				"[--stream-slots N] [--kv-spill] [--kv-main f32|model1]\n");
		return 2;
	}
	if (dsv4_gpu_open(0, NULL, &g, err, sizeof(err)) ||
	    dsv4_gpu_bandwidth(g, &bw, &htod, err, sizeof(err))) {
		fprintf(stderr, "gpu_bench: %s\n", err);
		return 1;
	}
	printf("device: %s\n", dsv4_gpu_describe(g, desc, sizeof(desc)));
	printf("anchor: device copy bandwidth %.1f GB/s (1 GiB cuMemcpyDtoD, read + write); "
	       "pinned host to device %.1f GB/s\n", bw * 1e-9, htod * 1e-9);
	dsv4_gpu_close(g);
	double t0 = now_s();

	if (dsv4_model_load(model, &mo, &m, err, sizeof(err))) {
		fprintf(stderr, "gpu_bench: %s\n", err);
		return 1;
	}
	const struct dsv4_config *cfg = dsv4_model_config(m);
	uint32_t V = cfg->vocab_size, L = cfg->n_layers;
	float *logits = malloc((size_t)V * sizeof(float));
	int32_t *tok = malloc((size_t)prefill * sizeof(*tok));
	struct dsv4_seq *s = NULL;

	printf("model: %s, %u layers (ratios", model, L);
	for (uint32_t i = 0; i < L; i++)
		printf(" %u", cfg->compress_ratios[i]);
	printf("), loaded in %.1f s; %s\n", now_s() - t0, dsv4_model_backend(m));
	for (uint32_t i = 0, x = 7; i < prefill; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		tok[i] = (int32_t)(x % V);
	}
	/* prefill: chunks of 256 after one warm-up chunk */
	if (dsv4_seq_create(m, 1u << 20, &s) ||
	    dsv4_eval(s, tok, 256 < prefill ? 256 : prefill, DSV4_LOGITS_LAST, logits, err, sizeof(err))) {
		fprintf(stderr, "gpu_bench: prefill: %s\n", err);
		return 1;
	}
	dsv4_seq_reset(s);
	t0 = now_s();
	for (uint32_t at = 0; at < prefill; at += 256) {
		uint32_t n = prefill - at < 256 ? prefill - at : 256;

		if (dsv4_eval(s, tok + at, n, DSV4_LOGITS_LAST, logits, err, sizeof(err))) {
			fprintf(stderr, "gpu_bench: prefill: %s\n", err);
			return 1;
		}
	}
	double tp = now_s() - t0;

	printf("prefill: %u tokens in %.3f s: %.0f tokens/s on %u layers, %.0f projected to 43\n",
	       prefill, tp, prefill / tp, L, prefill / tp * L / 43.0);
	printf("| context | ms/token | ms/layer | tok/s at 43 layers | weights MB | KV MB | roofline ms | ratio |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (const char *p = contexts; p && *p;) {
		uint32_t ctx = (uint32_t)strtoul(p, NULL, 10);
		double *t = malloc(steps * sizeof(double)), wb, kb;

		p = strchr(p, ',');
		p = p ? p + 1 : NULL;
		dsv4_seq_reset(s);
		if (dsv4_seq_assume_context(s, ctx)) {
			fprintf(stderr, "gpu_bench: context %u not possible\n", ctx);
			return 1;
		}
		for (uint32_t i = 0; i < steps + 2; i++) {
			double a = now_s();

			if (dsv4_eval(s, tok + i % prefill, 1, DSV4_LOGITS_LAST, logits, err, sizeof(err))) {
				fprintf(stderr, "gpu_bench: decode at %u: %s\n", ctx, err);
				return 1;
			}
			if (i >= 2)	/* two warm-up steps */
				t[i - 2] = now_s() - a;
		}
		qsort(t, steps, sizeof(*t), cmp_d);
		double ms = t[steps / 2] * 1e3;

		dsv4_model_decode_bytes(m, ctx, &wb, &kb);
		double roof = (wb + kb) / bw * 1e3;	/* bw: bytes moved per second */

		if (!first_ctx) {
			first_ctx = ctx;
			first_ms = ms;
		}
		/* the ratio to four places: two made 0.5997 read as 0.60 */
		printf("| %u | %.3f | %.3f | %.1f | %.1f | %.1f | %.4f | %.4f |\n", ctx, ms, ms / L,
		       1e3 / (ms / L * 43), wb * 1e-6, kb * 1e-6, roof, roof / ms);
		free(t);
	}
	dsv4_seq_free(s);
	dsv4_model_free(m);
	if (slots && first_ctx)
		stream_bench(model, slots, first_ctx, steps, first_ms, htod, tok, prefill);
	free(logits);
	free(tok);
	return 0;
}
