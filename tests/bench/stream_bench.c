// SPDX-License-Identifier: MIT
/*
 * Expert streamer benchmark (make bench-stream), in one run:
 *  1. the streamer reading N routed experts (batches of B in flight) vs
 *     fio --ioengine=io_uring on the same shard range, block size (the
 *     expert's read window), queue depth B and O_DIRECT setting: cold
 *     (page cache dropped, where allowed) and, buffered, warm;
 *  2. decode tokens/s on the checkpoint with the experts resident, and
 *     streamed with cache budgets of 100 %, 30 % and 10 % of the routed
 *     experts, with cache and prefetch hit rates.
 *
 *   dsv4-stream-bench --model DIR [--experts N] [--batch B] [--decode K]
 * Figures only; nothing is asserted.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "../../libdsv4drv/src/engine/engine.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int drop_caches(void)
{
	FILE *f;

	sync();
	f = fopen("/proc/sys/vm/drop_caches", "w");
	if (!f)
		return 0;
	fputs("3\n", f);
	return fclose(f) == 0;
}

/* fio's read bandwidth (bytes/s) from its JSON, or 0 */
static double fio_bw(const char *file, uint64_t offset, uint64_t size, uint64_t bs, uint32_t qd,
		     int direct)
{
	char cmd[1024], *out = NULL;
	size_t cap = 0, len = 0;
	FILE *p;
	double bw = 0;

	snprintf(cmd, sizeof(cmd),
		 "fio --name=anchor --filename='%s' --ioengine=io_uring --rw=read --bs=%llu "
		 "--iodepth=%u --direct=%d --offset=%llu --size=%llu --output-format=json 2>/dev/null",
		 file, (unsigned long long)bs, qd, direct, (unsigned long long)offset,
		 (unsigned long long)size);
	p = popen(cmd, "r");
	if (!p)
		return 0;
	for (;;) {
		if (len + 4096 > cap) {
			char *n = realloc(out, cap + 65536);

			if (!n)
				break;
			out = n;
			cap += 65536;
		}
		size_t got = fread(out + len, 1, cap - len - 1, p);

		if (!got)
			break;
		len += got;
	}
	pclose(p);
	if (!out)
		return 0;
	out[len] = 0;
	/* fio may print notes before the JSON */
	json_t *root = json_loads(strchr(out, '{') ? strchr(out, '{') : out, 0, NULL);
	json_t *jobs = root ? json_object_get(root, "jobs") : NULL;
	json_t *job = jobs ? json_array_get(jobs, 0) : NULL;
	json_t *read = job ? json_object_get(job, "read") : NULL;

	if (read)
		bw = json_number_value(json_object_get(read, "bw_bytes"));
	json_decref(root);
	free(out);
	return bw;
}

static struct dsv4_model *load(const char *dir, struct dsv4_stream_options *so)
{
	struct dsv4_model_options o = { .stream = so };
	struct dsv4_model *m;
	char err[256];

	if (dsv4_model_load(dir, &o, &m, err, sizeof(err))) {
		fprintf(stderr, "dsv4-stream-bench: %s\n", err);
		exit(1);
	}
	return m;
}

/* the streamer alone: N experts of layer 0, B at a time; bytes/s */
static double streamer(const char *dir, uint32_t N, uint32_t B, int buffered, int cold,
		       uint64_t *lo, uint64_t *hi, uint64_t *win, char **file, const char **io)
{
	struct dsv4_stream_options so = { .mode = DSV4_EXPERTS_STREAM, .cache_experts = N,
					  .buffered = buffered, .no_prefetch = 1,
					  .queue_depth = 2 * B };
	struct dsv4_model *m = load(dir, &so);
	struct dsv4_stream_stats st;
	struct mat w[3 * 64];
	int32_t ex[64];
	double t0;

	/* the file range these experts occupy, for fio */
	*lo = UINT64_MAX;
	*hi = 0;
	for (uint32_t e = 0; e < N; e++) {
		static const char *const t[] = { "w1.weight", "w1.scale", "w2.weight", "w2.scale",
						 "w3.weight", "w3.scale" };

		for (int i = 0; i < 6; i++) {
			char name[96];
			const struct dsv4_ckpt_tensor *ct;

			snprintf(name, sizeof(name), "layers.0.ffn.experts.%u.%s", e, t[i]);
			ct = dsv4_ckpt_find(m->ck, name);
			if (!ct)
				continue;
			*lo = ct->st->offset < *lo ? ct->st->offset : *lo;
			if (ct->st->offset + ct->st->nbytes > *hi)
				*hi = ct->st->offset + ct->st->nbytes;
			if (!*file)
				*file = strdup(ct->file->path);
		}
	}
	*lo &= ~4095ull;
	*hi = (*hi + 4095) & ~4095ull;
	*win = ((*hi - *lo) / N + 4095) & ~4095ull;	/* O_DIRECT wants aligned blocks */
	if (cold)
		drop_caches();
	t0 = now();
	for (uint32_t e = 0; e < N; e += B) {
		uint32_t n = N - e < B ? N - e : B;

		for (uint32_t i = 0; i < n; i++)
			ex[i] = (int32_t)(e + i);
		if (store_acquire(m->store, 0, ex, n, w, w + n, w + 2 * n)) {
			fprintf(stderr, "dsv4-stream-bench: %s\n", store_error(m->store));
			exit(1);
		}
		store_release(m->store, 0, ex, n);
	}
	double t = now() - t0;

	dsv4_model_stream_stats(m, &st);
	*io = st.io;
	dsv4_model_free(m);
	return st.bytes_read / t;
}

static void decode_run(const char *dir, const char *what, struct dsv4_stream_options *so,
		       uint32_t K)
{
	struct dsv4_model *m = load(dir, so);
	const struct dsv4_config *c = dsv4_model_config(m);
	struct dsv4_stream_stats a, b;
	struct dsv4_seq *s;
	float *lg = malloc(c->vocab_size * sizeof(float));
	int32_t tok[256];
	char err[256];

	srand(7);
	for (uint32_t i = 0; i < 16 + K && i < 256; i++)
		tok[i] = rand() % (int)c->vocab_size;
	if (!so || so->mode == DSV4_EXPERTS_RESIDENT) {
		/* resident: the mapped checkpoint in memory first, as in engine_bench */
		volatile uint8_t sink = 0;

		for (size_t i = 0; i < m->ck->n_shards; i++)
			for (uint64_t off = 0; off < m->ck->shards[i]->size; off += 4096)
				sink ^= ((const uint8_t *)m->ck->shards[i]->map)[off];
		(void)sink;
	}
	if (dsv4_seq_create(m, 16 + K, &s) ||
	    dsv4_eval(s, tok, 16, DSV4_LOGITS_LAST, lg, err, sizeof(err))) {
		fprintf(stderr, "dsv4-stream-bench: prefill failed\n");
		exit(1);
	}
	dsv4_model_stream_stats(m, &a);
	double t0 = now();

	for (uint32_t i = 0; i < K; i++)
		if (dsv4_eval(s, tok + 16 + i, 1, DSV4_LOGITS_LAST, lg, err, sizeof(err))) {
			fprintf(stderr, "dsv4-stream-bench: decode: %s\n", err);
			exit(1);
		}
	double t = now() - t0;

	dsv4_model_stream_stats(m, &b);
	uint64_t acc = (b.hits - a.hits) + (b.misses - a.misses);
	uint64_t pi = b.prefetch_issued - a.prefetch_issued, pu = b.prefetch_used - a.prefetch_used;
	uint64_t resident_hits = (b.hits - a.hits) - pu;	/* already cached, not prefetched */

	if (!so || so->mode == DSV4_EXPERTS_RESIDENT)
		printf("bench: decode %-22s %6.2f tokens/s\n", what, K / t);
	else
		printf("bench: decode %-22s %6.2f tokens/s, %u slots; of %llu expert uses: "
		       "%.0f %% cached, %.0f %% prefetched, %.0f %% read on demand; prefetches used "
		       "%.0f %% of %llu; %.0f MB read per token\n", what, K / t, b.slots,
		       (unsigned long long)acc, acc ? 100.0 * resident_hits / acc : 0,
		       acc ? 100.0 * pu / acc : 0, acc ? 100.0 * (b.misses - a.misses) / acc : 0,
		       pi ? 100.0 * pu / pi : 0, (unsigned long long)pi,
		       (b.bytes_read - a.bytes_read) / 1e6 / K);
	dsv4_seq_free(s);
	dsv4_model_free(m);
	free(lg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "experts", required_argument, NULL, 'n' },
		{ "batch", required_argument, NULL, 'b' },
		{ "decode", required_argument, NULL, 'd' },
		{ 0 }
	};
	const char *dir = NULL;
	uint32_t N = 64, B = 8, K = 8;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': dir = optarg; break;
		case 'n': N = (uint32_t)atoi(optarg); break;
		case 'b': B = (uint32_t)atoi(optarg); break;
		case 'd': K = (uint32_t)atoi(optarg); break;
		default: return 2;
		}
	}
	if (!dir || !N || !B || B > 64 || K > 200) {
		fprintf(stderr, "usage: dsv4-stream-bench --model DIR [--experts N] [--batch B<=64] [--decode K]\n");
		return 2;
	}
	int can_drop = drop_caches();

	printf("bench: %s; page cache %s\n", dir, can_drop ? "dropped for cold runs" :
	       "cannot be dropped here (cold runs are warm)");
	static const struct { const char *name; int buffered, cold; } runs[] = {
		{ "O_DIRECT, cold", 0, 1 }, { "buffered, cold", 1, 1 }, { "buffered, warm", 1, 0 },
	};
	for (size_t i = 0; i < 3; i++) {
		uint64_t lo, hi, win;
		char *file = NULL;
		const char *io;
		double mine = streamer(dir, N, B, runs[i].buffered, runs[i].cold, &lo, &hi, &win,
				       &file, &io);

		if (runs[i].cold)
			drop_caches();
		double anchor = fio_bw(file, lo, hi - lo, win, B, !runs[i].buffered);

		printf("bench: streamer %s: %u experts (%.1f MB each), %u in flight, via %s: %.2f GB/s; "
		       "fio io_uring same file/bs/qd: %.2f GB/s; ratio %.2fx (goal >= 0.95x)\n",
		       runs[i].name, N, win / 1e6, B, io, mine * 1e-9, anchor * 1e-9,
		       anchor > 0 ? mine / anchor : 0);
		free(file);
	}

	/* decode with budgets */
	struct dsv4_model *m = load(dir, NULL);
	uint32_t all = m->cfg.n_layers * m->cfg.n_routed_experts;

	dsv4_model_free(m);
	decode_run(dir, "resident (mapped)", NULL, K);
	static const int pct[] = { 100, 30, 10 };

	for (int i = 0; i < 3; i++) {
		struct dsv4_stream_options so = { .mode = DSV4_EXPERTS_STREAM,
						  .cache_experts = all * pct[i] / 100 };
		char what[64];

		snprintf(what, sizeof(what), "streamed, %d %% cache", pct[i]);
		drop_caches();
		decode_run(dir, what, &so, K);
	}
	return 0;
}
