// SPDX-License-Identifier: MIT
/*
 * dsv4-run: prefill + greedy decode on the CPU engine or the CUDA backend.
 *
 *   dsv4-run --model DIR --tokens 0,17,5,... [--n-predict K]
 *            [--dump-logits FILE] [--threads N] [--numerics reference|exact]
 *            [--chunk N] [--hf-semantics] [--kernels scalar|avx2|avx512|avx512-bf16]
 *            [--experts resident|stream] [--cache-experts N] [--cache-bytes SIZE]
 *            [--provider auto|kmod|host] [--io pread|io_uring] [--stats]
 *            [--kv-main f32|model1] [--kv-index f32|fp4|fp8]
 *            [--random-prompt N [--seed S]] [--kv-disk-dir DIR]
 *
 * Prints the generated token ids on one line.  --dump-logits writes the
 * float32 logits of every evaluated position: a one-line text header
 * "dsv4-logits rows <R> vocab <V>\n", then R*V little-endian float32,
 * row-major [positions, vocab].  The positions are the prompt's, then each
 * generated token fed back (R = prompt + K - 1 for K >= 1).  This
 * interface is how the engine is checked from outside; keep it stable.
 * --chunk N prefills in chunks of N tokens (default: all at once).
 * --experts stream reads routed experts into a pinned cache as they are
 * routed to (budget --cache-experts or --cache-bytes; default all);
 * --stats prints the streaming counters to stderr at the end.
 * --kv-disk-dir DIR prefills through the prefix cache with snapshots in
 * DIR (16 GiB budget): a prompt sharing 128-token blocks with an earlier
 * run resumes from them (not with --dump-logits or --chunk).
 * --backend picks the CPU or the CUDA backend (auto: CUDA when it can);
 * --gpu-kv-spill keeps the CSA main entries in mapped host memory (KV_SPILL
 * buffers of --provider) instead of GPU memory.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsv4drv.h"

static void usage(FILE *f)
{
	fputs("usage: dsv4-run --model DIR --tokens ID,ID,... [--n-predict K]\n"
	      "                [--dump-logits FILE] [--threads N] [--numerics reference|exact]\n"
	      "                [--chunk N] [--hf-semantics] [--kernels scalar|avx2|avx512|avx512-bf16]\n"
	      "                [--backend auto|cpu|cuda] [--gpu N] [--gpu-kv-spill]\n"
	      "                [--experts resident|stream] [--cache-experts N] [--cache-bytes SIZE]\n"
	      "                [--provider auto|kmod|host] [--io pread|io_uring] [--stats]\n"
	      "                [--kv-main f32|model1] [--kv-index f32|fp4|fp8]\n"
	      "                [--random-prompt N [--seed S]] (instead of --tokens)\n"
	      "                [--kv-disk-dir DIR]\n", f);
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_tokens(const char *s, int32_t **out, uint32_t *n)
{
	uint32_t cap = 16, cnt = 0;
	int32_t *v = malloc(cap * sizeof(*v));
	const char *p = s;

	if (!v)
		return -ENOMEM;
	while (*p) {
		char *end;
		long t;

		errno = 0;
		t = strtol(p, &end, 10);
		if (errno || end == p || t < 0 || t > INT32_MAX || (*end && *end != ','))
			goto bad;
		if (cnt == cap) {
			int32_t *nv = realloc(v, 2 * cap * sizeof(*v));

			if (!nv)
				goto bad;
			v = nv;
			cap *= 2;
		}
		v[cnt++] = (int32_t)t;
		p = *end ? end + 1 : end;
		if (*end && !*p)
			goto bad;	/* trailing comma */
	}
	if (!cnt)
		goto bad;
	*out = v;
	*n = cnt;
	return 0;
bad:
	free(v);
	return -EINVAL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void log_stderr(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s\n", msg);
}

static uint32_t argmax(const float *x, uint32_t n)
{
	uint32_t best = 0;

	for (uint32_t i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "tokens", required_argument, NULL, 't' },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "dump-logits", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 'j' },
		{ "numerics", required_argument, NULL, 'q' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "hf-semantics", no_argument, NULL, 'H' },
		{ "kernels", required_argument, NULL, 'k' },
		{ "experts", required_argument, NULL, 'X' },
		{ "cache-experts", required_argument, NULL, 'E' },
		{ "cache-bytes", required_argument, NULL, 'B' },
		{ "provider", required_argument, NULL, 'P' },
		{ "io", required_argument, NULL, 'I' },
		{ "stats", no_argument, NULL, 'S' },
		{ "kv-main", required_argument, NULL, 'K' },
		{ "kv-index", required_argument, NULL, 'J' },
		{ "random-prompt", required_argument, NULL, 'R' },
		{ "seed", required_argument, NULL, 'Z' },
		{ "kv-disk-dir", required_argument, NULL, 'D' },
		{ "backend", required_argument, NULL, 'G' },
		{ "gpu", required_argument, NULL, 'g' },
		{ "gpu-kv-spill", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct dsv4_model_options mo = { 0 };
	struct dsv4_stream_options so = { .mem = { .log = log_stderr } };
	int stats = 0;
	uint32_t random_n = 0, seed = 1, cached = 0;
	const char *kv_dir = NULL;
	struct dsv4_prefix_cache *pc = NULL;
	const char *model = NULL, *dump = NULL;
	uint32_t n_predict = 0, chunk = 0, n_tok = 0, vocab, rows;
	int32_t *tokens = NULL;
	struct dsv4_model *m = NULL;
	struct dsv4_seq *s = NULL;
	float *logits = NULL;
	FILE *df = NULL;
	char err[256];
	int c, ret = 1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model = optarg;
			break;
		case 't':
			free(tokens);
			if (parse_tokens(optarg, &tokens, &n_tok)) {
				fprintf(stderr, "dsv4-run: --tokens: comma-separated ids expected\n");
				return 2;
			}
			break;
		case 'n':
			if (parse_u32(optarg, 1u << 20, &n_predict))
				goto badarg;
			break;
		case 'd':
			dump = optarg;
			break;
		case 'j':
			if (parse_u32(optarg, 1024, &mo.threads))
				goto badarg;
			break;
		case 'q':
			if (!strcmp(optarg, "reference"))
				mo.numerics = DSV4_NUMERICS_REFERENCE;
			else if (!strcmp(optarg, "exact"))
				mo.numerics = DSV4_NUMERICS_EXACT;
			else
				goto badarg;
			break;
		case 'c':
			if (parse_u32(optarg, 1u << 20, &chunk) || !chunk)
				goto badarg;
			break;
		case 'H':
			mo.flags |= DSV4_MODEL_HF_SEMANTICS;
			break;
		case 'k':
			mo.kernels = optarg;
			break;
		case 'X':
			if (!strcmp(optarg, "stream"))
				so.mode = DSV4_EXPERTS_STREAM;
			else if (strcmp(optarg, "resident"))
				goto badarg;
			mo.stream = &so;
			break;
		case 'E':
			if (parse_u32(optarg, UINT32_MAX, &so.cache_experts) || !so.cache_experts)
				goto badarg;
			break;
		case 'B':
			if (dsv4_parse_size(optarg, &so.cache_bytes) || !so.cache_bytes)
				goto badarg;
			break;
		case 'P':
			if (!strcmp(optarg, "kmod"))
				so.mem.provider = DSV4_PROVIDER_KMOD;
			else if (!strcmp(optarg, "host"))
				so.mem.provider = DSV4_PROVIDER_HOST;
			else if (strcmp(optarg, "auto"))
				goto badarg;
			break;
		case 'I':
			if (!strcmp(optarg, "pread"))
				so.no_io_uring = 1;
			else if (strcmp(optarg, "io_uring"))
				goto badarg;
			break;
		case 'S':
			stats = 1;
			break;
		case 'D':
			kv_dir = optarg;
			break;
		case 'V':
			mo.gpu_kv_spill = 1;
			mo.kv_mem = &so.mem;	/* --provider picks it */
			break;
		case 'G':
			if (dsv4_backend_from_name(optarg, &mo.backend))
				goto badarg;
			break;
		case 'g': {
			uint32_t gpu;

			if (parse_u32(optarg, 1024, &gpu))
				goto badarg;
			mo.gpu = (int)gpu;
			break;
		}
		case 'R':
			if (parse_u32(optarg, 1u << 24, &random_n) || !random_n)
				goto badarg;
			break;
		case 'Z':
			if (parse_u32(optarg, UINT32_MAX, &seed))
				goto badarg;
			break;
		case 'K':
			if (!strcmp(optarg, "f32"))
				mo.kv_main = DSV4_KV_F32;
			else if (!strcmp(optarg, "model1"))
				mo.kv_main = DSV4_KV_MODEL1;
			else
				goto badarg;
			break;
		case 'J':
			if (!strcmp(optarg, "f32"))
				mo.kv_index = DSV4_KV_F32;
			else if (!strcmp(optarg, "fp4"))
				mo.kv_index = DSV4_KV_FP4;
			else if (!strcmp(optarg, "fp8"))
				mo.kv_index = DSV4_KV_FP8;
			else
				goto badarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!model || (!tokens == !random_n) || optind != argc || (kv_dir && (dump || chunk))) {
		usage(stderr);
		free(tokens);
		return 2;
	}
	ret = dsv4_model_load(model, &mo, &m, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "dsv4-run: %s\n", err);
		free(tokens);
		return 1;
	}
	ret = 1;
	/* a GPU that is there but cannot serve is worth a warning; no driver at all is not */
	if (strstr(dsv4_model_backend(m), "CUDA not used") &&
	    !strstr(dsv4_model_backend(m), "libcuda.so.1"))
		fprintf(stderr, "dsv4-run: warning: backend %s\n", dsv4_model_backend(m));
	if (stats)
		fprintf(stderr, "backend: %s\n", dsv4_model_backend(m));
	vocab = dsv4_model_config(m)->vocab_size;
	if (random_n) {	/* a reproducible prompt (xorshift32) for long-context runs */
		tokens = malloc((size_t)random_n * sizeof(*tokens));
		if (!tokens) {
			fprintf(stderr, "dsv4-run: out of memory for %u tokens\n", random_n);
			goto out;
		}
		for (uint32_t i = 0, x = seed ? seed : 1; i < random_n; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			tokens[i] = (int32_t)(x % vocab);
		}
		n_tok = random_n;
	}
	rows = n_tok + (n_predict ? n_predict - 1 : 0);
	if (dsv4_seq_create(m, rows, &s)) {
		fprintf(stderr, "dsv4-run: %u positions: more than the model takes or out of memory\n",
			rows);
		goto out;
	}
	logits = malloc((size_t)(dump ? rows : 1) * vocab * sizeof(float));
	if (!logits) {
		fprintf(stderr, "dsv4-run: out of memory for logits\n");
		goto out;
	}
	if (dump) {
		df = fopen(dump, "wb");
		if (!df) {
			fprintf(stderr, "dsv4-run: %s: %s\n", dump, strerror(errno));
			goto out;
		}
		fprintf(df, "dsv4-logits rows %u vocab %u\n", rows, vocab);
	}
	/* prefill, in chunks if asked, or through the prefix cache */
	double prefill_s = now_s(), decode_s = 0;

	if (kv_dir) {
		struct dsv4_prefix_options po = { .dram_bytes = 1ull << 30, .disk_dir = kv_dir,
						  .disk_bytes = 16ull << 30 };

		if (dsv4_prefix_open(m, &po, &pc, err, sizeof(err)) ||
		    dsv4_prefix_prefill(pc, s, tokens, n_tok, DSV4_LOGITS_LAST, logits, &cached, err,
					sizeof(err))) {
			fprintf(stderr, "dsv4-run: prefix cache: %s\n", err);
			goto out;
		}
	}
	for (uint32_t at = kv_dir ? n_tok : 0; at < n_tok;) {
		uint32_t n = chunk && n_tok - at > chunk ? chunk : n_tok - at;
		float *dst = dump ? logits + (size_t)at * vocab : logits;

		if (dsv4_eval(s, tokens + at, n, dump ? DSV4_LOGITS_ALL : DSV4_LOGITS_LAST,
			      dst, err, sizeof(err))) {
			fprintf(stderr, "dsv4-run: prefill: %s\n", err);
			goto out;
		}
		at += n;
	}
	prefill_s = now_s() - prefill_s;
	const float *last = logits + (size_t)(dump ? n_tok - 1 : 0) * vocab;

	decode_s = now_s();

	for (uint32_t i = 0; i < n_predict; i++) {
		int32_t next = (int32_t)argmax(last, vocab);

		printf(i ? ",%d" : "%d", next);
		if (i + 1 == n_predict)
			break;
		float *dst = dump ? logits + (size_t)(n_tok + i) * vocab : logits;

		if (dsv4_eval(s, &next, 1, DSV4_LOGITS_LAST, dst, err, sizeof(err))) {
			fprintf(stderr, "dsv4-run: decode: %s\n", err);
			goto out;
		}
		last = dst;
	}
	decode_s = now_s() - decode_s;
	if (n_predict)
		printf("\n");
	if (stats) {
		struct dsv4_stream_stats st;
		struct dsv4_kv_usage u;
		struct dsv4_time_stats ts;

		dsv4_model_time_stats(m, &ts, 0);
		if (kv_dir)
			fprintf(stderr, "dsv4-run: prefix cache: %u of %u prompt tokens reused\n", cached,
				n_tok);
		fprintf(stderr, "dsv4-run: decode: %u steps, %.3f ms/step; prefill %u tokens in %.2f s; "
			"time in attention %.0f %% (indexer %.0f %%), MoE %.0f %%\n",
			n_predict ? n_predict - 1 : 0, decode_s * 1e3 / (n_predict > 1 ? n_predict - 1 : 1),
			n_tok, prefill_s,
			ts.total_ns ? 100.0 * ts.attention_ns / ts.total_ns : 0,
			ts.total_ns ? 100.0 * ts.indexer_ns / ts.total_ns : 0,
			ts.total_ns ? 100.0 * ts.moe_ns / ts.total_ns : 0);

		struct dsv4_gpu_stream_stats gs;

		if (!dsv4_model_gpu_stream_stats(m, &gs))
			fprintf(stderr, "dsv4-run: GPU expert cache: %u slots of %llu bytes, %llu hits, "
				"%llu misses, %llu bytes copied, %.1f ms waiting for copies\n", gs.slots,
				(unsigned long long)gs.slot_bytes, (unsigned long long)gs.hits,
				(unsigned long long)gs.misses, (unsigned long long)gs.bytes_copied,
				gs.copy_ns * 1e-6);
		uint64_t captured, replayed;

		if (!dsv4_model_gpu_graph_stats(m, &captured, &replayed))
			fprintf(stderr, "dsv4-run: GPU decode graphs: %llu captured, %llu replayed\n",
				(unsigned long long)captured, (unsigned long long)replayed);
		dsv4_seq_kv_usage(s, &u);
		fprintf(stderr, "dsv4-run: KV after %llu tokens: hot %llu bytes (window %llu, "
			"compressor state %llu, HCA entries %llu, indexer keys %llu), spill %llu bytes "
			"(%llu used); entries+keys %.2f B/token, the format's %.2f\n",
			(unsigned long long)u.tokens,
			(unsigned long long)(u.window_bytes + u.state_bytes + u.main_bytes + u.index_bytes),
			(unsigned long long)u.window_bytes, (unsigned long long)u.state_bytes,
			(unsigned long long)u.main_bytes, (unsigned long long)u.index_bytes,
			(unsigned long long)u.spill_bytes, (unsigned long long)u.spill_used_bytes,
			u.tokens ? (double)(u.main_bytes + u.index_bytes + u.spill_used_bytes) / u.tokens : 0,
			u.format_bytes_per_token);

		if (dsv4_model_stream_stats(m, &st) == DSV4_EXPERTS_STREAM)
			fprintf(stderr, "dsv4-run: experts streamed via %s%s into %u slots of %u bytes "
				"(%s memory): %llu hits, %llu misses, %llu evictions, %llu reads, "
				"%llu bytes; prefetch %llu issued, %llu used\n", st.io,
				st.direct ? " (O_DIRECT)" : "", st.slots, st.slot_bytes, st.provider,
				(unsigned long long)st.hits, (unsigned long long)st.misses,
				(unsigned long long)st.evictions, (unsigned long long)st.reads,
				(unsigned long long)st.bytes_read,
				(unsigned long long)st.prefetch_issued,
				(unsigned long long)st.prefetch_used);
		else
			fprintf(stderr, "dsv4-run: experts resident (mapped checkpoint)\n");
	}
	if (df && (fwrite(logits, sizeof(float), (size_t)rows * vocab, df) != (size_t)rows * vocab ||
		   fclose(df))) {
		df = NULL;
		fprintf(stderr, "dsv4-run: %s: write failed\n", dump);
		goto out;
	}
	df = NULL;
	ret = 0;
out:
	if (df)
		fclose(df);
	free(logits);
	free(tokens);
	dsv4_prefix_close(pc);
	dsv4_seq_free(s);
	dsv4_model_free(m);
	return ret;
badarg:
	fprintf(stderr, "dsv4-run: bad option value: %s\n", optarg);
	free(tokens);
	return 2;
}
