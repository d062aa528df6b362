// SPDX-License-Identifier: MIT
/*
 * Routed-expert streaming (engine/store.c): logits bitwise equal to the
 * resident mode under every budget and I/O path; the cache evicts under a
 * tiny budget and counts hits and misses; prefetch of hash-routed experts
 * matches the tokens' tid2eid rows; an I/O error or a short read mid-run
 * fails the request with the file and offset and never hangs; without
 * io_uring (seccomp) the streamer warns and falls back to pread.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "../../libdsv4drv/src/engine/engine.h"
#include "kselftest_harness.h"

enum { P = 60, D = 12 };	/* prefill, then decode steps */

static const char *model(void)
{
	static char dir[128];

	if (!dir[0]) {
		char cmd[256];

		snprintf(dir, sizeof(dir), "/tmp/dsv4-stream-%d", (int)getpid());
		snprintf(cmd, sizeof(cmd), DSV4_BIN "/dsv4-mkmodel --preset tiny-b --seed 4 %s >/dev/null", dir);
		if (system(cmd))
			return NULL;
	}
	return dir;
}

static void cleanup(void) __attribute__((destructor));
static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf /tmp/dsv4-stream-%d", (int)getpid());
	if (system(cmd))
		return;
}

static char logbuf[512];

static void logger(void *ctx, const char *msg)
{
	(void)ctx;
	strncat(logbuf, msg, sizeof(logbuf) - strlen(logbuf) - 2);
	strcat(logbuf, "\n");
}

/* prefill P, then D single tokens; all logits into out [(P+D), V].
 * Returns 0, or the failing call's error (message in err). */
static int run(const struct dsv4_stream_options *so, float *out, struct dsv4_stream_stats *st,
	       char *err, size_t errlen)
{
	struct dsv4_model_options o = { .threads = 2, .stream = so };
	struct dsv4_model *m;
	struct dsv4_seq *s;
	int32_t tok[P + D];
	int ret;

	for (int i = 0; i < P + D; i++)
		tok[i] = (i * 37 + 11) % 384;
	ret = dsv4_model_load(model(), &o, &m, err, errlen);
	if (ret)
		return ret;
	uint32_t V = dsv4_model_config(m)->vocab_size;

	ret = dsv4_seq_create(m, P + D, &s);
	if (!ret)
		ret = dsv4_eval(s, tok, P, DSV4_LOGITS_ALL, out, err, errlen);
	for (int t = P; !ret && t < P + D; t++)
		ret = dsv4_eval(s, tok + t, 1, DSV4_LOGITS_LAST, out + (size_t)t * V, err, errlen);
	if (st)
		dsv4_model_stream_stats(m, st);
	dsv4_seq_free(s);
	dsv4_model_free(m);
	return ret;
}

static float *resident(void)
{
	static float *r;
	char err[256];

	if (!r) {
		r = malloc((size_t)(P + D) * 384 * sizeof(float));
		if (r && run(NULL, r, NULL, err, sizeof(err))) {
			free(r);
			r = NULL;
		}
	}
	return r;
}

TEST(streaming_is_bitwise_resident)
{
	static const struct { uint32_t experts; int pread, buffered, rings; } cases[] = {
		{ 0, 0, 0, 1 }, { 7, 0, 0, 1 }, { 1, 0, 0, 1 }, { 5, 1, 0, 1 }, { 3, 0, 1, 2 },
		{ 12, 0, 0, 0 },	/* per-layer slots: 5 layers x 2-3 */
	};
	float *ref = resident(), *got = malloc((size_t)(P + D) * 384 * sizeof(float));

	ASSERT_NE(NULL, model());
	ASSERT_NE(NULL, ref);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dsv4_stream_options so = { .mode = DSV4_EXPERTS_STREAM,
						  .cache_experts = cases[i].experts,
						  .no_io_uring = cases[i].pread,
						  .buffered = cases[i].buffered,
						  .rings = (uint32_t)cases[i].rings,
						  .numa = DSV4_NUMA_NODE, .numa_node = 0 };
		struct dsv4_stream_stats st;
		char err[256];

		ASSERT_EQ(0, run(&so, got, &st, err, sizeof(err))) TH_LOG("%s", err);
		EXPECT_EQ(cases[i].experts >= 10 || !cases[i].experts, st.per_layer);
		TH_LOG("budget %u%s via %s%s: %llu hits %llu misses %llu evictions, prefetch %llu/%llu",
		       st.slots, st.per_layer ? " per layer" : "", st.io, st.direct ? " O_DIRECT" : "",
		       (unsigned long long)st.hits,
		       (unsigned long long)st.misses, (unsigned long long)st.evictions,
		       (unsigned long long)st.prefetch_used, (unsigned long long)st.prefetch_issued);
		EXPECT_EQ(0, memcmp(ref, got, (size_t)(P + D) * 384 * sizeof(float)));
		EXPECT_EQ(0u, st.errors);
		EXPECT_LT(0u, st.bytes_read);
		if (cases[i].pread)
			EXPECT_STREQ("pread", st.io);
		if (cases[i].buffered)
			EXPECT_EQ(0, st.direct);
	}
	free(got);
}

TEST(tiny_budget_evicts_and_counts)
{
	struct dsv4_stream_options so = { .mode = DSV4_EXPERTS_STREAM, .cache_experts = 2,
					  .no_prefetch = 1 };
	struct dsv4_stream_stats st, big;
	float *got = malloc((size_t)(P + D) * 384 * sizeof(float));
	char err[256];

	ASSERT_EQ(0, run(&so, got, &st, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(2u, st.slots);
	EXPECT_LT(0u, st.evictions);
	EXPECT_LT(0u, st.misses);
	EXPECT_EQ(0u, st.prefetch_issued);
	/* every miss is a load; loads beyond the slots evict */
	EXPECT_EQ(st.misses - st.slots, st.evictions);
	so.cache_experts = 0;	/* everything fits: each expert read once */
	ASSERT_EQ(0, run(&so, got, &big, err, sizeof(err)));
	EXPECT_EQ(0u, big.evictions);
	EXPECT_EQ(st.hits + st.misses, big.hits + big.misses);
	EXPECT_GE(5u * 16u, big.misses);
	EXPECT_LT(big.hits, st.hits + st.misses);
	free(got);
}

TEST(hash_layer_prefetch_follows_tid2eid)
{
	struct dsv4_model_options o = { .threads = 1 };
	struct dsv4_stream_options so = { .mode = DSV4_EXPERTS_STREAM };
	struct dsv4_stream_stats a, b;
	struct dsv4_model *m;
	struct dsv4_seq *s;
	char err[256];
	float lg[384];
	int32_t tok = 77;

	o.stream = &so;
	ASSERT_EQ(0, dsv4_model_load(model(), &o, &m, err, sizeof(err))) TH_LOG("%s", err);
	const struct dsv4_config *c = dsv4_model_config(m);
	uint32_t want = 0;

	/* the distinct experts token 77 routes to in the hash layers */
	for (uint32_t L = 0; L < c->n_hash_layers; L++) {
		uint8_t seen[64] = { 0 };

		for (uint32_t j = 0; j < c->n_activated_experts; j++) {
			int64_t e;

			memcpy(&e, (const int64_t *)m->layers[L].tid2eid + tok * c->n_activated_experts + j,
			       sizeof(e));
			want += !seen[e];
			seen[e] = 1;
		}
	}
	ASSERT_LT(0u, c->n_hash_layers);
	ASSERT_EQ(0, dsv4_seq_create(m, 4, &s));
	dsv4_model_stream_stats(m, &a);
	ASSERT_EQ(0, dsv4_eval(s, &tok, 1, DSV4_LOGITS_LAST, lg, err, sizeof(err)));
	dsv4_model_stream_stats(m, &b);
	/* the hash layers' experts were all prefetched, and all used */
	EXPECT_LE(want, b.prefetch_issued - a.prefetch_issued);
	EXPECT_LE(want, b.prefetch_used - a.prefetch_used);
	TH_LOG("hash experts %u; prefetch issued %llu, used %llu (learned layers included)", want,
	       (unsigned long long)(b.prefetch_issued - a.prefetch_issued),
	       (unsigned long long)(b.prefetch_used - a.prefetch_used));
	/* the same token again: its hash-layer experts are cache hits now */
	ASSERT_EQ(0, dsv4_eval(s, &tok, 1, DSV4_LOGITS_LAST, lg, err, sizeof(err)));
	dsv4_model_stream_stats(m, &a);
	EXPECT_LE(want, a.hits - b.hits);
	dsv4_seq_free(s);
	dsv4_model_free(m);
}

TEST(io_errors_fail_the_request_by_file_and_offset)
{
	float *got = malloc((size_t)(P + D) * 384 * sizeof(float));
	struct dsv4_ckpt *ck;
	char err[512], name[96];
	int64_t e;

	/* inside the first expert the first token is hash-routed to (layer 0) */
	ASSERT_EQ(0, dsv4_ckpt_open(model(), &ck, err, sizeof(err))) TH_LOG("%s", err);
	const struct dsv4_ckpt_tensor *t2e = dsv4_ckpt_find(ck, "layers.0.ffn.gate.tid2eid");

	ASSERT_NE(NULL, t2e);
	memcpy(&e, (const char *)dsv4_ckpt_data(t2e) + 11 * ck->cfg.n_activated_experts * 8, 8);
	snprintf(name, sizeof(name), "layers.0.ffn.experts.%d.w2.weight", (int)e);
	const struct dsv4_ckpt_tensor *w = dsv4_ckpt_find(ck, name);

	ASSERT_NE(NULL, w);
	uint64_t at = w->st->offset + 100;

	dsv4_ckpt_close(ck);
	for (int shortread = 0; shortread < 2; shortread++)
		for (int pr = 0; pr < 2; pr++) {
			struct dsv4_stream_options so = { .mode = DSV4_EXPERTS_STREAM,
							  .fault_shard = 1, .fault_offset = at,
							  .fault_short = shortread, .no_io_uring = pr };
			struct dsv4_stream_stats st;

			err[0] = 0;
			int ret = run(&so, got, &st, err, sizeof(err));

			TH_LOG("%s", err);
			EXPECT_EQ(-EIO, ret);
			EXPECT_NE(NULL, strstr(err, "model.safetensors"));
			EXPECT_NE(NULL, strstr(err, "offset"));
			EXPECT_NE(NULL, strstr(err, shortread ? "short read" : "Input/output error"));
			EXPECT_NE(NULL, strstr(err, "reset"));
		}
	free(got);
}

TEST(no_io_uring_falls_back_to_pread_with_a_warning)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { .len = 4, .filter = f };
		struct dsv4_stream_options so = { .mode = DSV4_EXPERTS_STREAM, .cache_experts = 4,
						  .mem = { .log = logger } };
		struct dsv4_stream_stats st;
		float *ref = resident(), *got = malloc((size_t)(P + D) * 384 * sizeof(float));
		char err[256];

		if (!ref || !got || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(10);
		if (run(&so, got, &st, err, sizeof(err)))
			_exit(11);
		if (strcmp(st.io, "pread"))
			_exit(12);
		if (!strstr(logbuf, "io_uring unavailable"))
			_exit(13);
		_exit(memcmp(ref, got, (size_t)(P + D) * 384 * sizeof(float)) ? 14 : 0);
	}
	int status;

	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST(bad_stream_options_are_refused)
{
	struct dsv4_model_options o = { .threads = 1 };
	struct dsv4_stream_options so = { .mode = (enum dsv4_expert_mode)9 };
	struct dsv4_model *m;
	char err[256];

	o.stream = &so;
	EXPECT_EQ(-EINVAL, dsv4_model_load(model(), &o, &m, err, sizeof(err)));
	so.mode = DSV4_EXPERTS_STREAM;
	so.cache_bytes = 100;	/* below one expert */
	EXPECT_EQ(-EINVAL, dsv4_model_load(model(), &o, &m, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "budget"));
	so.cache_bytes = 0;
	so.mem.provider = DSV4_PROVIDER_KMOD;
	so.mem.dev_path = "/nonexistent/dsv4";
	EXPECT_GT(0, dsv4_model_load(model(), &o, &m, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "kmod provider"));
}

TEST_HARNESS_MAIN
