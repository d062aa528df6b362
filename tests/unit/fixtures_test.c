// SPDX-License-Identifier: MIT
/*
 * The committed reference fixtures are what the engine tests will read:
 * they open with our own loader, their shapes agree with the dsv4-mkmodel
 * preset they were made from, and the official code's exact-numerics
 * prefill and decode paths agree in them (a broken fixture fails here,
 * not later in an engine test).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

static double rel_diff(const float *a, const float *b, size_t n)
{
	double d = 0, m = 0;

	for (size_t i = 0; i < n; i++) {
		float x, y;

		memcpy(&x, &a[i], sizeof(x));
		memcpy(&y, &b[i], sizeof(y));
		d = fmax(d, fabs((double)x - y));
		m = fmax(m, fabs((double)x));
	}
	return m > 0 ? d / m : INFINITY;
}

TEST(official_fixtures_are_consistent)
{
	static const char *const presets[] = { "tiny-a", "tiny-b", "tiny-c" };

	for (size_t p = 0; p < 3; p++) {
		char path[256], cmd[256], err[512] = "";
		struct dsv4_st_file *f, *lf;
		struct dsv4_config cfg;

		snprintf(cmd, sizeof(cmd), DSV4_BIN "/dsv4-mkmodel --preset %s --seed 1 /tmp/dsv4-fx-%s >/dev/null",
			 presets[p], presets[p]);
		ASSERT_EQ(0, system(cmd));
		snprintf(path, sizeof(path), "/tmp/dsv4-fx-%s/config.json", presets[p]);
		ASSERT_EQ(0, dsv4_config_load(path, &cfg, err, sizeof(err))) TH_LOG("%s", err);

		snprintf(path, sizeof(path), DSV4_FIXTURES "/official-%s.safetensors", presets[p]);
		ASSERT_EQ(0, dsv4_st_open(path, &f, err, sizeof(err))) TH_LOG("%s", err);
		const struct dsv4_st_tensor *tok = dsv4_st_find(&f->header, "tokens");
		const struct dsv4_st_tensor *pre = dsv4_st_find(&f->header, "exact.prefill.logits");
		const struct dsv4_st_tensor *dec = dsv4_st_find(&f->header, "exact.decode.logits");

		ASSERT_NE(NULL, tok);
		ASSERT_NE(NULL, pre);
		ASSERT_NE(NULL, dec);

		EXPECT_EQ(DSV4_DT_I64, tok->dtype);
		EXPECT_EQ(DSV4_DT_F32, pre->dtype);
		EXPECT_EQ(cfg.vocab_size, pre->shape[1]) TH_LOG("%s: fixture and preset differ", presets[p]);
		EXPECT_EQ(tok->count, pre->shape[0]);
		/* >= 3 HCA windows (ratio 128) */
		EXPECT_LE(3u * 128u, tok->count);
		const int64_t *ids = dsv4_st_data(f, tok);
		uint64_t bad = 0;

		for (uint64_t i = 0; i < tok->count; i++) {
			int64_t v;

			memcpy(&v, &ids[i], sizeof(v));
			bad += v < 0 || v >= cfg.vocab_size;
		}
		EXPECT_EQ(0u, bad);
		/* decode rows are the last positions of the prefill */
		uint64_t k = pre->shape[0] - dec->shape[0], V = pre->shape[1];
		const float *pl = dsv4_st_data(f, pre), *dl = dsv4_st_data(f, dec);

		EXPECT_GT(1e-5, rel_diff(pl + k * V, dl, dec->count)) TH_LOG("%s exact prefill vs decode", presets[p]);

		/* indexer top-k sets of every CSA layer, over all 400 positions */
		for (uint32_t L = 0; L < cfg.n_layers; L++) {
			char name[64];
			const struct dsv4_st_tensor *t;

			snprintf(name, sizeof(name), "exact.layer.%u.topk", L);
			t = dsv4_st_find(&f->header, name);
			if (cfg.compress_ratios[L] != 4) {
				EXPECT_EQ(NULL, t) TH_LOG("%s: %s on a non-CSA layer", presets[p], name);
				continue;
			}
			ASSERT_NE(NULL, t) TH_LOG("%s: %s", presets[p], name);
			EXPECT_EQ(DSV4_DT_I32, t->dtype);
			EXPECT_EQ(tok->count, t->shape[0]);
			EXPECT_EQ(cfg.index_topk, t->shape[1]);
			/* more compressed entries than the top-k keeps */
			EXPECT_LT(cfg.index_topk, tok->count / 4);
		}

		snprintf(path, sizeof(path), DSV4_FIXTURES "/official-%s-layers.safetensors", presets[p]);
		ASSERT_EQ(0, dsv4_st_open(path, &lf, err, sizeof(err))) TH_LOG("%s", err);
		ASSERT_NE(NULL, dsv4_st_find(&lf->header, "reference.prefill.logits"));
		for (uint32_t L = 0; L < cfg.n_layers; L++) {
			char name[64];
			const struct dsv4_st_tensor *h;

			snprintf(name, sizeof(name), "reference.layer.%u.out", L);
			h = dsv4_st_find(&lf->header, name);
			ASSERT_NE(NULL, h) TH_LOG("%s: %s", presets[p], name);
			EXPECT_EQ((uint64_t)cfg.hc_mult * cfg.dim, h->shape[1]);
		}
		dsv4_st_close(lf);
		dsv4_st_close(f);
		snprintf(cmd, sizeof(cmd), "rm -rf /tmp/dsv4-fx-%s", presets[p]);
		if (system(cmd))
			TH_LOG("cleanup failed");
	}
}

TEST_HARNESS_MAIN
