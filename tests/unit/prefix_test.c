// SPDX-License-Identifier: MIT
/*
 * The prefix cache: a repeated prompt resumes from its saved block
 * boundary and gives the logits (and the decode after) of a full
 * recomputation; a prompt sharing only the first blocks resumes from
 * those; snapshots survive a restart on disk; a corrupt, truncated or
 * foreign file is detected and ignored; budgets evict.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

static char dir[128], cache_dir[160];

static const char *model(const char *preset, int seed)
{
	static char path[2][160];
	int i = seed == 1 ? 0 : 1;
	char cmd[512];

	snprintf(dir, sizeof(dir), "/tmp/dsv4-prefix-%d", (int)getpid());
	snprintf(path[i], sizeof(path[i]), "%s/%s-%d", dir, preset, seed);
	if (access(path[i], F_OK)) {
		snprintf(cmd, sizeof(cmd), "mkdir -p %s && " DSV4_BIN "/dsv4-mkmodel --preset %s --seed %d %s >/dev/null",
			 dir, preset, seed, path[i]);
		if (system(cmd))
			return NULL;
	}
	return path[i];
}

static void cleanup(void) __attribute__((destructor));
static void cleanup(void)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf /tmp/dsv4-prefix-%d", (int)getpid());
	if (system(cmd))
		return;
}

static struct dsv4_model *load_as(const char *path, enum dsv4_numerics num)
{
	struct dsv4_model_options o = { .threads = 2, .numerics = num };
	struct dsv4_model *m = NULL;
	char err[256];

	if (dsv4_model_load(path, &o, &m, err, sizeof(err)))
		fprintf(stderr, "# %s\n", err);
	return m;
}

static struct dsv4_model *load(const char *path)
{
	return load_as(path, DSV4_NUMERICS_EXACT);
}

static double rel(const float *a, const float *b, uint32_t n)
{
	double d = 0, mx = 0;

	for (uint32_t i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		mx = fmax(mx, fabs(a[i]));
	}
	return d / mx;
}

enum { N = 300, V = 512, DEC = 5 };

/* prompt then DEC greedy-free decode tokens; logits [1 + DEC][V] */
static int run(struct dsv4_model *m, struct dsv4_prefix_cache *pc, const int32_t *tok, uint32_t n,
	       float *lg, uint32_t *cached)
{
	struct dsv4_seq *s;
	char err[256];
	int ret;

	if (dsv4_seq_create(m, n + DEC, &s))
		return -ENOMEM;
	*cached = 0;
	ret = pc ? dsv4_prefix_prefill(pc, s, tok, n, DSV4_LOGITS_LAST, lg, cached, err, sizeof(err))
		 : dsv4_eval(s, tok, n, DSV4_LOGITS_LAST, lg, err, sizeof(err));
	for (int i = 0; !ret && i < DEC; i++)
		ret = dsv4_eval(s, tok + n + i, 1, DSV4_LOGITS_LAST, lg + (size_t)(i + 1) * V, err,
				sizeof(err));
	if (ret)
		fprintf(stderr, "# %s\n", err);
	dsv4_seq_free(s);
	return ret;
}

static int32_t toks[N + 64];

static void make_tokens(void)
{
	for (int i = 0; i < N + 64; i++)
		toks[i] = (i * 131 + 7) % V;
}

TEST(repeated_and_shared_prompts_resume)
{
	struct dsv4_model *m;
	struct dsv4_prefix_cache *pc;
	struct dsv4_prefix_options o = { .dram_bytes = 64 << 20 };
	struct dsv4_prefix_stats st;
	float ref[(1 + DEC) * V], got[(1 + DEC) * V];
	uint32_t cached;
	char err[256];

	make_tokens();
	m = load(model("tiny-a", 1));
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, run(m, NULL, toks, N, ref, &cached));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));	/* first: computes, saves */
	EXPECT_EQ(0u, cached);
	EXPECT_GE(1e-6, rel(ref, got, (1 + DEC) * V));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));	/* repeated: resumes at 256 */
	EXPECT_EQ(256u, cached);
	TH_LOG("resumed at %u: prompt + decode logits within %.3g", cached, rel(ref, got, (1 + DEC) * V));
	EXPECT_GE(1e-3, rel(ref, got, (1 + DEC) * V));
	/* a prompt that shares the first two blocks only: resumes at 256 too,
	 * and matches its own full computation */
	int32_t other[N + 64];

	memcpy(other, toks, sizeof(other));
	other[280] = (other[280] + 1) % V;
	ASSERT_EQ(0, run(m, NULL, other, N, ref, &cached));
	ASSERT_EQ(0, run(m, pc, other, N, got, &cached));
	EXPECT_EQ(256u, cached);
	EXPECT_GE(1e-3, rel(ref, got, (1 + DEC) * V));
	/* a different first block: nothing to reuse */
	other[3] = (other[3] + 1) % V;
	ASSERT_EQ(0, run(m, pc, other, N, got, &cached));
	EXPECT_EQ(0u, cached);
	dsv4_prefix_get_stats(pc, &st);
	EXPECT_EQ(4u, st.lookups);
	EXPECT_EQ(2u, st.hits);
	EXPECT_EQ(512u, st.tokens_reused);
	/* bad calls */
	struct dsv4_seq *s;

	ASSERT_EQ(0, dsv4_seq_create(m, N, &s));
	EXPECT_EQ(-EINVAL, dsv4_prefix_prefill(pc, s, toks, N, DSV4_LOGITS_ALL, got, &cached, err,
					       sizeof(err)));
	ASSERT_EQ(0, dsv4_eval(s, toks, 3, DSV4_LOGITS_NONE, NULL, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_prefix_prefill(pc, s, toks, N, DSV4_LOGITS_LAST, got, &cached, err,
					       sizeof(err)));	/* not fresh */
	dsv4_seq_free(s);
	dsv4_prefix_close(pc);
	dsv4_model_free(m);
}

/*
 * With reference numerics a resumed prompt runs the same steps as the run
 * that saved its block (the block, then the rest): the same logits.  On
 * the CUDA backend the restored indexer keys are made codes again on the
 * GPU (what decode's scores read there), so a wrong code would move a
 * score, a top-k pick and the logits.
 */
TEST(reference_numerics_resume_as_saved)
{
	struct dsv4_model *m;
	struct dsv4_prefix_cache *pc;
	struct dsv4_prefix_options o = { .dram_bytes = 64 << 20 };
	float saved[(1 + DEC) * V], got[(1 + DEC) * V];
	uint32_t cached;
	char err[256];

	make_tokens();
	m = load_as(model("tiny-a", 1), DSV4_NUMERICS_REFERENCE);
	ASSERT_NE(NULL, m);
	TH_LOG("backend %s", dsv4_model_backend(m));
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, run(m, pc, toks, N, saved, &cached));
	EXPECT_EQ(0u, cached);
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	EXPECT_EQ(256u, cached);
	EXPECT_EQ(0, memcmp(saved, got, sizeof(got))) TH_LOG("worst %.3g", rel(saved, got,
										(1 + DEC) * V));
	dsv4_prefix_close(pc);
	dsv4_model_free(m);
}

static int count_files(const char *d, char *first, size_t n)
{
	DIR *dd = opendir(d);
	struct dirent *de;
	int c = 0;

	if (!dd)
		return 0;
	while ((de = readdir(dd)))
		if (strstr(de->d_name, ".kv") && !strstr(de->d_name, ".tmp")) {
			if (!c && first)
				snprintf(first, n, "%s/%s", d, de->d_name);
			c++;
		}
	closedir(dd);
	return c;
}

TEST(disk_snapshots_survive_restart_and_reject_garbage)
{
	struct dsv4_prefix_options o = { .dram_bytes = 64 << 20, .disk_bytes = 64 << 20 };
	struct dsv4_prefix_cache *pc;
	struct dsv4_prefix_stats st;
	float ref[(1 + DEC) * V], got[(1 + DEC) * V];
	char err[256], file[512];
	uint32_t cached;
	struct dsv4_model *m;

	make_tokens();
	ASSERT_NE(NULL, model("tiny-a", 1));
	snprintf(cache_dir, sizeof(cache_dir), "%s/kv", dir);
	o.disk_dir = cache_dir;
	m = load(model("tiny-a", 1));
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, run(m, NULL, toks, N, ref, &cached));
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	dsv4_prefix_close(pc);
	dsv4_model_free(m);
	ASSERT_EQ(1, count_files(cache_dir, file, sizeof(file)));

	/* "restart": a new model and cache over the same directory */
	m = load(model("tiny-a", 1));
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err)));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	EXPECT_EQ(256u, cached);
	EXPECT_GE(1e-3, rel(ref, got, (1 + DEC) * V));
	dsv4_prefix_close(pc);

	/* corrupt one byte of the payload: detected, ignored, recomputed */
	FILE *f = fopen(file, "r+b");

	ASSERT_NE(NULL, f);
	fseek(f, 4000, SEEK_SET);
	int ch = fgetc(f);

	fseek(f, 4000, SEEK_SET);
	fputc(ch ^ 0x5a, f);
	fclose(f);
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err)));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	EXPECT_EQ(0u, cached);
	dsv4_prefix_get_stats(pc, &st);
	EXPECT_EQ(1u, st.disk_rejected);
	EXPECT_GE(1e-6, rel(ref, got, (1 + DEC) * V));
	dsv4_prefix_close(pc);	/* the recomputation wrote a good file again */

	/* truncated */
	ASSERT_EQ(0, truncate(file, 1000));
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err)));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	EXPECT_EQ(0u, cached);
	dsv4_prefix_get_stats(pc, &st);
	EXPECT_EQ(1u, st.disk_rejected);
	dsv4_prefix_close(pc);
	dsv4_model_free(m);

	/* foreign: another model's snapshot under this model's file name */
	struct dsv4_model *m2 = load(model("tiny-a", 2));
	char dir2[200], file2[512], cmd[1200];

	ASSERT_NE(NULL, m2);
	snprintf(dir2, sizeof(dir2), "%s/kv2", dir);
	o.disk_dir = dir2;
	ASSERT_EQ(0, dsv4_prefix_open(m2, &o, &pc, err, sizeof(err)));
	ASSERT_EQ(0, run(m2, pc, toks, N, got, &cached));
	dsv4_prefix_close(pc);
	dsv4_model_free(m2);
	ASSERT_EQ(1, count_files(dir2, file2, sizeof(file2)));
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", file2, file);
	ASSERT_EQ(0, system(cmd));
	o.disk_dir = cache_dir;
	m = load(model("tiny-a", 1));
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err)));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	EXPECT_EQ(0u, cached);
	dsv4_prefix_get_stats(pc, &st);
	EXPECT_EQ(1u, st.disk_rejected);
	EXPECT_GE(1e-6, rel(ref, got, (1 + DEC) * V));
	dsv4_prefix_close(pc);
	dsv4_model_free(m);
}

TEST(budgets_evict)
{
	struct dsv4_prefix_options o = { .dram_bytes = 1 };	/* nothing fits */
	struct dsv4_prefix_cache *pc;
	struct dsv4_prefix_stats st;
	float got[(1 + DEC) * V];
	char err[256];
	uint32_t cached;
	struct dsv4_model *m;

	make_tokens();
	m = load(model("tiny-a", 1));
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err)));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	EXPECT_EQ(0u, cached);
	dsv4_prefix_get_stats(pc, &st);
	EXPECT_EQ(0u, st.dram_entries);
	dsv4_prefix_close(pc);
	/* room for one: the second prompt evicts the first */
	o.dram_bytes = 4 << 20;
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err)));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	dsv4_prefix_get_stats(pc, &st);
	TH_LOG("one snapshot: %llu bytes", (unsigned long long)st.dram_bytes);
	ASSERT_EQ(1u, st.dram_entries);
	dsv4_prefix_close(pc);
	o.dram_bytes = st.dram_bytes + st.dram_bytes / 2;
	ASSERT_EQ(0, dsv4_prefix_open(m, &o, &pc, err, sizeof(err)));
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	int32_t other[N + 64];

	memcpy(other, toks, sizeof(other));
	other[0] = (other[0] + 1) % V;
	ASSERT_EQ(0, run(m, pc, other, N, got, &cached));
	dsv4_prefix_get_stats(pc, &st);
	EXPECT_EQ(1u, st.dram_entries);
	ASSERT_EQ(0, run(m, pc, toks, N, got, &cached));
	EXPECT_EQ(0u, cached);	/* evicted */
	dsv4_prefix_close(pc);
	dsv4_model_free(m);
}

TEST_HARNESS_MAIN
