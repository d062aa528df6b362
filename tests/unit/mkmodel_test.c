// SPDX-License-Identifier: MIT
/*
 * dsv4-mkmodel's output: every preset opens through the loader, values are
 * non-degenerate, tid2eid rows are distinct valid experts, output is
 * deterministic by seed, and sharding produces an index the loader follows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

#define MKMODEL DSV4_BIN "/dsv4-mkmodel"

static int run(const char *args)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), MKMODEL " %s >/dev/null 2>&1", args);
	return WEXITSTATUS(system(cmd));
}

static void rm_rf(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "rm -rf %s failed\n", dir);
}

static int files_equal(const char *a, const char *b)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "cmp -s %s %s", a, b);
	return system(cmd) == 0;
}

static float *as_f32(const struct dsv4_ckpt_tensor *t)
{
	float *v = malloc(t->st->count * sizeof(*v));

	dsv4_decode_f32(t->st->dtype, dsv4_ckpt_data(t), t->st->count, v);
	return v;
}

TEST(presets_load_and_are_not_degenerate)
{
	static const char *const presets[] = { "tiny-a", "tiny-b", "tiny-c" };

	for (size_t p = 0; p < 3; p++) {
		char dir[64], args[128], err[512] = "";
		struct dsv4_ckpt *ck;

		snprintf(dir, sizeof(dir), "/tmp/dsv4-mk-%s", presets[p]);
		snprintf(args, sizeof(args), "--preset %s --seed 3 %s", presets[p], dir);
		ASSERT_EQ(0, run(args));
		ASSERT_EQ(0, dsv4_ckpt_open(dir, &ck, err, sizeof(err))) TH_LOG("%s: %s", presets[p], err);
		EXPECT_LE(16u, ck->cfg.index_n_heads);
		for (size_t i = 0; i < ck->n_specs; i++) {
			const struct dsv4_ckpt_tensor *t = &ck->tensors[i];
			const char *n = t->spec->name;

			if (strstr(n, ".ape") || strstr(n, "attn_sink") || strstr(n, "_base") ||
			    strstr(n, "gate.bias") || strstr(n, "_scale")) {
				float *v = as_f32(t);
				uint64_t zeros = 0;

				for (uint64_t k = 0; k < t->st->count; k++)
					zeros += v[k] == 0.0f || !isfinite(v[k]);
				EXPECT_EQ(0u, zeros) TH_LOG("%s has zero or non-finite values", n);
				free(v);
			}
			if (strstr(n, "tid2eid")) {
				const int64_t *ids = dsv4_ckpt_data(t);
				uint64_t k = t->st->shape[1], bad = 0;

				for (uint64_t r = 0; r < t->st->shape[0]; r++)
					for (uint64_t a = 0; a < k; a++) {
						int64_t e;

						memcpy(&e, &ids[r * k + a], sizeof(e));
						bad += e < 0 || e >= ck->cfg.n_routed_experts;
						for (uint64_t b = 0; b < a; b++) {
							int64_t f;

							memcpy(&f, &ids[r * k + b], sizeof(f));
							bad += e == f;
						}
					}
				EXPECT_EQ(0u, bad) TH_LOG("%s has invalid or repeated experts", n);
			}
			if (t->st->dtype == DSV4_DT_F8_E4M3) {	/* real quantization: uses the range */
				const uint8_t *q = dsv4_ckpt_data(t);
				int top = 0;

				for (uint64_t k = 0; k < t->st->count; k++)
					top |= (q[k] & 0x7f) >= 0x70;	/* |v| >= 256 in some block */
				EXPECT_TRUE(top) TH_LOG("%s never reaches the top of the e4m3 range", n);
			}
		}
		dsv4_ckpt_close(ck);
		rm_rf(dir);
	}
}

TEST(deterministic_by_seed_and_sharded)
{
	char err[512] = "";
	struct dsv4_ckpt *ck;

	ASSERT_EQ(0, run("--preset tiny-a --seed 9 /tmp/dsv4-mk-s1"));
	ASSERT_EQ(0, run("--preset tiny-a --seed 9 /tmp/dsv4-mk-s2"));
	ASSERT_EQ(0, run("--preset tiny-a --seed 10 /tmp/dsv4-mk-s3"));
	EXPECT_TRUE(files_equal("/tmp/dsv4-mk-s1/model.safetensors", "/tmp/dsv4-mk-s2/model.safetensors"));
	EXPECT_FALSE(files_equal("/tmp/dsv4-mk-s1/model.safetensors", "/tmp/dsv4-mk-s3/model.safetensors"));
	ASSERT_EQ(0, run("--preset tiny-a --seed 9 --shard-size 1M /tmp/dsv4-mk-sh"));
	ASSERT_EQ(0, dsv4_ckpt_open("/tmp/dsv4-mk-sh", &ck, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_LT(1u, ck->n_shards);
	/* Same bytes as the single-file checkpoint, tensor by tensor. */
	struct dsv4_ckpt *one;

	ASSERT_EQ(0, dsv4_ckpt_open("/tmp/dsv4-mk-s1", &one, err, sizeof(err)));
	for (size_t i = 0; i < ck->n_specs; i++) {
		EXPECT_EQ(0, memcmp(dsv4_ckpt_data(&ck->tensors[i]), dsv4_ckpt_data(&one->tensors[i]),
				    ck->tensors[i].st->nbytes)) TH_LOG("%s", ck->specs[i].name);
	}
	dsv4_ckpt_close(one);
	dsv4_ckpt_close(ck);
	rm_rf("/tmp/dsv4-mk-s1 /tmp/dsv4-mk-s2 /tmp/dsv4-mk-s3 /tmp/dsv4-mk-sh");
}

TEST(bad_arguments)
{
	EXPECT_EQ(2, run("/tmp/dsv4-mk-x"));	/* neither preset nor config */
	EXPECT_EQ(2, run("--preset nope /tmp/dsv4-mk-x"));
	EXPECT_EQ(2, run("--preset tiny-a --layers 0 /tmp/dsv4-mk-x"));
	EXPECT_EQ(2, run("--preset tiny-a --shard-size 1Q /tmp/dsv4-mk-x"));
	EXPECT_EQ(1, run("--config /nonexistent.json /tmp/dsv4-mk-x"));
	EXPECT_EQ(1, run("--config " DSV4_FIXTURES "/dtypes.safetensors /tmp/dsv4-mk-x"));
	EXPECT_EQ(1, run("--preset tiny-a /proc/dsv4-no-such-dir/x"));
	rm_rf("/tmp/dsv4-mk-x");
}

TEST_HARNESS_MAIN
