// SPDX-License-Identifier: MIT
/* Quantizers: exact on the grid, round-to-nearest-even between, scales
 * rounded up to powers of two as the official kernel.py does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

TEST(e4m3_round_trips_every_code)
{
	for (int c = 0; c < 256; c++) {
		float v = dsv4_e4m3_to_f32((uint8_t)c);

		if (isnan(v))
			continue;
		EXPECT_EQ(c, dsv4_f32_to_e4m3(v)) TH_LOG("code %#x value %a", c, v);
	}
}

TEST(e4m3_ties_to_even_and_saturates)
{
	/* 1.0 (0x38) and 1.125 (0x39): the midpoint goes to the even code */
	EXPECT_EQ(0x38, dsv4_f32_to_e4m3(1.0625f));
	EXPECT_EQ(0x3a, dsv4_f32_to_e4m3(1.1875f));	/* 1.125|1.25 -> 1.25 (even) */
	EXPECT_EQ(0x39, dsv4_f32_to_e4m3(1.1f));
	/* subnormals: multiples of 2^-9 */
	EXPECT_EQ(0x00, dsv4_f32_to_e4m3(0x1p-10f));	/* half of the smallest: to 0 (even) */
	EXPECT_EQ(0x02, dsv4_f32_to_e4m3(0x1.8p-9f));	/* 1.5 units -> 2 */
	EXPECT_EQ(0x08, dsv4_f32_to_e4m3(0x1.fp-7f));	/* rounds up into the first normal */
	EXPECT_EQ(0x7e, dsv4_f32_to_e4m3(448.0f));
	EXPECT_EQ(0x7e, dsv4_f32_to_e4m3(460.0f));
	EXPECT_EQ(0xfe, dsv4_f32_to_e4m3(-1e9f));
	EXPECT_EQ(0x80, dsv4_f32_to_e4m3(-0.0f));
	EXPECT_EQ(0x7f, dsv4_f32_to_e4m3(NAN));
}

TEST(e2m1_grid_and_ties)
{
	/* spec §11a: 0.25->0, 0.75->1, 1.25->1, 5->4 */
	EXPECT_EQ(0, dsv4_f32_to_e2m1(0.25f));
	EXPECT_EQ(2, dsv4_f32_to_e2m1(0.75f));
	EXPECT_EQ(2, dsv4_f32_to_e2m1(1.25f));
	EXPECT_EQ(4, dsv4_f32_to_e2m1(1.75f));
	EXPECT_EQ(4, dsv4_f32_to_e2m1(2.5f));
	EXPECT_EQ(6, dsv4_f32_to_e2m1(3.5f));
	EXPECT_EQ(6, dsv4_f32_to_e2m1(5.0f));
	EXPECT_EQ(7, dsv4_f32_to_e2m1(5.5f));
	EXPECT_EQ(15, dsv4_f32_to_e2m1(-6.0f));
	for (uint8_t c = 0; c < 16; c++) {
		if (c == 8)
			continue;	/* -0 */
		EXPECT_EQ(c, dsv4_f32_to_e2m1(dsv4_fp4_to_f32(c)));
	}
}

TEST(e8m0_scale_rounds_up)
{
	EXPECT_EQ(127, dsv4_e8m0_ceil(448.0f, 1.0f / 448.0f, 1e-4f));	/* exactly 1 */
	EXPECT_EQ(128, dsv4_e8m0_ceil(449.0f, 1.0f / 448.0f, 1e-4f));	/* just over: 2 */
	EXPECT_EQ(127, dsv4_e8m0_ceil(5.0f, 1.0f / 6.0f, 6.0f * 0x1p-126f));	/* 0.83 -> 1 */
	/* the floor keeps an all-zero block's scale finite */
	EXPECT_EQ(dsv4_e8m0_ceil(1e-4f, 1.0f / 448.0f, 1e-4f), dsv4_e8m0_ceil(0, 1.0f / 448.0f, 1e-4f));
}

TEST(fp8_blocks_reconstruct)
{
	enum { R = 200, C = 300 };
	float *w = malloc(R * C * sizeof(float));
	uint8_t *q = malloc(R * C), s[2 * 3];
	double worst = 0;

	srand(7);
	for (int i = 0; i < R * C; i++)
		w[i] = ((float)rand() / RAND_MAX - 0.5f) * (i % 977 == 0 ? 40.0f : 1.0f);
	dsv4_quant_fp8_blocks(w, R, C, 128, q, s);
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++) {
			float back = dsv4_e4m3_to_f32(q[r * C + c]) * dsv4_e8m0_to_f32(s[(r / 128) * 3 + c / 128]);
			float amax_tile = 448.0f * dsv4_e8m0_to_f32(s[(r / 128) * 3 + c / 128]);

			worst = fmax(worst, fabs(back - w[r * C + c]) / amax_tile);
		}
	/* e4m3 has 3 mantissa bits: error <= 1/16 of the value, far less of the tile's range */
	EXPECT_GT(0.04, worst);
	free(w);
	free(q);
}

TEST(fp4_rows_pack_low_nibble_first)
{
	float w[64];
	uint8_t packed[32], scales[2];
	float back[64];

	for (int i = 0; i < 64; i++)
		w[i] = (i % 7) - 3.0f;	/* amax 3 per block -> scale 2^ceil(log2(0.5)) = 0.5 */
	dsv4_quant_fp4_rows(w, 1, 64, packed, scales);
	EXPECT_EQ(126, scales[0]);
	dsv4_fp4_unpack(packed, 64, back);
	for (int i = 0; i < 64; i++) {
		EXPECT_EQ(w[i], back[i] * dsv4_e8m0_to_f32(scales[i / 32])) TH_LOG("element %d", i);
	}
}

/* Bit for bit against the official numerics on the same inputs (fixture). */
TEST(matches_official_quantizers)
{
	struct dsv4_st_file *f;
	char err[512];
	const struct dsv4_st_tensor *tx, *tq, *ts, *t4, *ei, *eo;

	ASSERT_EQ(0, dsv4_st_open(DSV4_FIXTURES "/quant.safetensors", &f, err, sizeof(err))) TH_LOG("%s", err);
	tx = dsv4_st_find(&f->header, "x");
	tq = dsv4_st_find(&f->header, "fp8.q");
	ts = dsv4_st_find(&f->header, "fp8.scale");
	t4 = dsv4_st_find(&f->header, "fp4.dequant");
	ei = dsv4_st_find(&f->header, "e4m3.in");
	eo = dsv4_st_find(&f->header, "e4m3.out");
	ASSERT_TRUE(tx && tq && ts && t4 && ei && eo);
	uint64_t rows = tx->shape[0], cols = tx->shape[1];
	float *x = malloc(tx->nbytes), *s8 = malloc(ts->nbytes), *d4 = malloc(t4->nbytes);
	const uint8_t *q8 = dsv4_st_data(f, tq);
	size_t bad_q = 0, bad_s = 0, bad_4 = 0;

	memcpy(x, dsv4_st_data(f, tx), tx->nbytes);
	memcpy(s8, dsv4_st_data(f, ts), ts->nbytes);
	memcpy(d4, dsv4_st_data(f, t4), t4->nbytes);
	uint8_t *q = malloc(cols);
	float *sc = malloc(cols / 128 * sizeof(float)), *back = malloc(cols * sizeof(float));

	for (uint64_t r = 0; r < rows; r++) {
		dsv4_act_quant_fp8(x + r * cols, cols, 128, q, sc);
		for (uint64_t b = 0; b < cols / 128; b++)
			bad_s += sc[b] != s8[r * (cols / 128) + b];
		for (uint64_t i = 0; i < cols; i++)
			bad_q += q[i] != q8[r * cols + i];
		dsv4_act_fakequant_fp4(x + r * cols, cols, back);
		for (uint64_t i = 0; i < cols; i++) {
			if (back[i] != d4[r * cols + i] && bad_4++ < 5)
				TH_LOG("fp4 row %llu col %llu: x %a -> dsv4 %a, official %a",
				       (unsigned long long)r, (unsigned long long)i, x[r * cols + i], back[i],
				       d4[r * cols + i]);
		}
	}
	free(q);
	free(sc);
	free(back);
	EXPECT_EQ(0u, bad_s);
	EXPECT_EQ(0u, bad_q);
	EXPECT_EQ(0u, bad_4);
	for (uint64_t i = 0; i < ei->count; i++) {
		float in;

		memcpy(&in, (const uint8_t *)dsv4_st_data(f, ei) + 4 * i, 4);
		EXPECT_EQ(((const uint8_t *)dsv4_st_data(f, eo))[i],
			  dsv4_f32_to_e4m3(fminf(fmaxf(in, -448.0f), 448.0f))) TH_LOG("e4m3(%a)", in);
	}
	free(x);
	free(s8);
	free(d4);
	dsv4_st_close(f);
}

TEST_HARNESS_MAIN
