// SPDX-License-Identifier: MIT
/*
 * The CUDA backend.  Without a driver or GPU (the CI machine), opening it
 * must fail with a message that says what is missing, and nothing else
 * runs (SKIP).  On a GPU (make check-gpu, DSV4_REQUIRE_GPU=1 makes a
 * missing GPU a failure) the FP8 GEMV kernel is compared with the CPU's
 * dequantize-and-sum on Flash's shapes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

static struct dsv4_gpu *open_or_skip(struct __test_metadata *_metadata, char *err, size_t len)
{
	struct dsv4_gpu *g = NULL;
	int ret = dsv4_gpu_open(0, NULL, &g, err, len);

	if (ret) {
		/* the message names the missing piece */
		EXPECT_TRUE(strstr(err, "libcuda") || strstr(err, "cuInit") || strstr(err, "GPU") ||
			    strstr(err, "firmware")) TH_LOG("%s", err);
		EXPECT_EQ(NULL, g);
	}
	return g;
}

/* @n random e4m3 codes, none of them NaN */
static void random_e4m3(uint8_t *w, size_t n, unsigned *seed)
{
	for (size_t i = 0; i < n; i++) {
		*seed = *seed * 1103515245u + 12345u;
		w[i] = (uint8_t)(*seed >> 16);
		if ((w[i] & 0x7f) == 0x7f)
			w[i] ^= 1;
	}
}

/* the larger of @worst and |got - ref| over the sum of the terms' |.| */
static double worse(double worst, float got, double ref, double mag)
{
	double e = fabs(got - ref) / (mag + 1e-30);

	return e > worst ? e : worst;
}

/* one shape's buffers for the two tensor-core GEMV checks: weight codes
 * and scales, x (filled: a smooth ramp of five magnitudes per 128), its
 * FP8 codes and scales, and the two kernels' outputs */
struct gemv_check {
	uint8_t *codes, *sc, *xq;
	float *x, *xs, *ym, *yc;
};

static void gemv_check_free(struct gemv_check *k)
{
	free(k->codes);
	free(k->sc);
	free(k->xq);
	free(k->x);
	free(k->xs);
	free(k->ym);
	free(k->yc);
}

/* 0, or -1 with nothing held */
static int gemv_check_alloc(struct gemv_check *k, size_t ncodes, size_t nsc, uint32_t rows,
			    uint32_t cols)
{
	*k = (struct gemv_check){ malloc(ncodes), malloc(nsc), malloc(cols),
				  malloc(cols * sizeof(float)), malloc(cols / 128 * sizeof(float)),
				  malloc(rows * sizeof(float)), malloc(rows * sizeof(float)) };
	if (!k->codes || !k->sc || !k->xq || !k->x || !k->xs || !k->ym || !k->yc) {
		gemv_check_free(k);
		return -1;
	}
	for (uint32_t c = 0; c < cols; c++)
		k->x[c] = sinf((float)c * 0.37f) * (float)(1 + c / 128 % 5);
	return 0;
}

/* an FP8 matrix's random codes and its 128x128 blocks' scales (2^-9..2^-1) */
static void fp8_fill(struct gemv_check *k, uint32_t rows, uint32_t cols, unsigned *seed)
{
	size_t nsc = (size_t)(rows + 127) / 128 * (cols / 128);

	random_e4m3(k->codes, (size_t)rows * cols, seed);
	for (size_t i = 0; i < nsc; i++)
		k->sc[i] = (uint8_t)(118 + i % 9);
}

/* weight (r, c) of that matrix, decoded */
static double fp8_w(const struct gemv_check *k, uint32_t cols, uint32_t r, uint32_t c)
{
	return (double)dsv4_e4m3_to_f32(k->codes[(size_t)r * cols + c]) *
	       dsv4_e8m0_to_f32(k->sc[(size_t)(r / 128) * (cols / 128) + c / 128]);
}

TEST(open_says_what_is_missing)
{
	char err[512] = "", desc[512];
	struct dsv4_gpu *g = open_or_skip(_metadata, err, sizeof(err));

	if (!g) {
		if (getenv("DSV4_REQUIRE_GPU"))
			ASSERT_TRUE(0) TH_LOG("a GPU is required: %s", err);
		SKIP(return, "no GPU here: %s", err);
	}
	TH_LOG("%s", dsv4_gpu_describe(g, desc, sizeof(desc)));
	dsv4_gpu_close(g);
}

TEST(named_firmware_that_is_missing_is_an_error)
{
	struct dsv4_gpu *g = NULL;
	char err[512] = "";

	ASSERT_NE(0, dsv4_gpu_open(0, "/nonexistent/dsv4.fatbin", &g, err, sizeof(err)));
	EXPECT_EQ(NULL, g);
	EXPECT_NE(0, strlen(err));
}

TEST(gemv_fp8_matches_the_cpu)
{
	static const uint32_t shapes[][2] = { { 1024, 4096 }, { 4096, 1024 }, { 576, 4096 },
					      { 8, 256 }, { 100, 48 } };
	char err[512] = "";
	struct dsv4_gpu *g = open_or_skip(_metadata, err, sizeof(err));
	unsigned seed = 7;

	if (!g)
		SKIP(return, "no GPU here: %s", err);
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		uint32_t rows = shapes[s][0], cols = shapes[s][1];
		uint32_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
		uint8_t *w = malloc((size_t)rows * cols), *sb = malloc((size_t)sr * sc);
		float *x = malloc(cols * sizeof(float)), *y = malloc(rows * sizeof(float));
		double worst = 0;

		random_e4m3(w, (size_t)rows * cols, &seed);
		for (size_t i = 0; i < (size_t)sr * sc; i++)
			sb[i] = (uint8_t)(120 + i % 8);
		for (uint32_t c = 0; c < cols; c++)
			x[c] = sinf((float)c * 0.37f);
		ASSERT_EQ(0, dsv4_gpu_gemv_fp8(g, w, sb, rows, cols, x, y, err, sizeof(err)))
			TH_LOG("%s", err);
		for (uint32_t r = 0; r < rows; r++) {
			double ref = 0, mag = 0;

			for (uint32_t c = 0; c < cols; c++) {
				double v = (double)dsv4_e4m3_to_f32(w[(size_t)r * cols + c]) *
					   dsv4_e8m0_to_f32(sb[(r / 128) * sc + c / 128]) * x[c];

				ref += v;
				mag += fabs(v);
			}
			worst = worse(worst, y[r], ref, mag);
		}
		TH_LOG("%ux%u: worst |gpu - cpu| / sum|terms| = %.2e", rows, cols, worst);
		EXPECT_LT(worst, 1e-5);
		free(w);
		free(sb);
		free(x);
		free(y);
	}
	dsv4_gpu_close(g);
}


/*
 * The routed experts' FP4 GEMV on the tensor cores against the CUDA-core
 * kernel and the CPU, on one x already on the FP8 grid (the kernels' own
 * quant leaves it as it is): the two kernels sum in other orders, so they
 * agree to rounding, and a wrong tile or scale is far off.  (The model-level check
 * in run-gpu-tests.sh is loose: one FP8 rounding downstream moves with
 * the sum order.)
 */
TEST(experts_fp4_tensor_cores_match_cuda_cores)
{
	static const uint32_t shapes[][2] = { { 2048, 4096 }, { 4096, 2048 }, { 64, 256 },
					      { 100, 128 } };
	char err[512] = "";
	struct dsv4_gpu *g = open_or_skip(_metadata, err, sizeof(err));
	unsigned seed = 11;

	if (!g)
		SKIP(return, "no GPU here: %s", err);
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		uint32_t rows = shapes[s][0], cols = shapes[s][1];
		struct gemv_check k;
		double worst_m = 0, worst_c = 0;

		ASSERT_EQ(0, gemv_check_alloc(&k, (size_t)rows * cols / 2, (size_t)rows * cols / 32,
					      rows, cols));
		for (size_t i = 0; i < (size_t)rows * cols / 2; i++) {
			seed = seed * 1103515245u + 12345u;
			k.codes[i] = (uint8_t)(seed >> 16);
		}
		for (size_t i = 0; i < (size_t)rows * cols / 32; i++)
			k.sc[i] = (uint8_t)(122 + i % 9);
		/* x through the official activation quant, as the experts see it */
		dsv4_act_quant_fp8(k.x, cols, 128, k.xq, k.xs);
		for (uint32_t c = 0; c < cols; c++)
			k.x[c] = dsv4_e4m3_to_f32(k.xq[c]) * k.xs[c / 128];
		ASSERT_EQ(0, dsv4_gpu_experts_fp4(g, k.codes, k.sc, rows, cols, k.x, k.ym, k.yc,
						  err, sizeof(err)))
			TH_LOG("%s", err);
		for (uint32_t r = 0; r < rows; r++) {
			double ref = 0, mag = 0;

			for (uint32_t c = 0; c < cols; c++) {
				uint8_t b = k.codes[((size_t)r * cols + c) / 2];
				double v = (double)dsv4_fp4_to_f32(c & 1 ? b >> 4 : b & 15) *
					   dsv4_e8m0_to_f32(k.sc[((size_t)r * cols + c) / 32]) * k.x[c];

				ref += v;
				mag += fabs(v);
			}
			worst_m = worse(worst_m, k.ym[r], ref, mag);
			worst_c = worse(worst_c, k.yc[r], ref, mag);
		}
		TH_LOG("%ux%u: worst |gpu - cpu| / sum|terms|: tensor cores %.2e, CUDA cores %.2e",
		       rows, cols, worst_m, worst_c);
		EXPECT_LT(worst_m, 1e-5);
		EXPECT_LT(worst_c, 1e-5);
		gemv_check_free(&k);
	}
	dsv4_gpu_close(g);
}

/*
 * Decode's FP8 GEMV with the act quant on the tensor cores
 * (dsv4_linear1_fp8_mma) and on the CUDA cores (dsv4_linear1_fp8) against
 * the CPU in double, at the model's shapes (wq_b, wo_b in 8 slices, wqkv_a,
 * sw2) and a ragged one, x put on the FP8 grid by the kernels (the CPU
 * quantizes it the same way): only the sum order may differ.
 */
TEST(linear_fp8_tensor_cores_match_cuda_cores)
{
	static const uint32_t shapes[][3] = { { 32768, 1024, 1 }, { 4096, 8192, 8 },
					      { 1536, 4096, 8 }, { 4096, 2048, 4 },
					      { 100, 256, 2 } };
	char err[512] = "";
	struct dsv4_gpu *g = open_or_skip(_metadata, err, sizeof(err));
	unsigned seed = 7;

	if (!g)
		SKIP(return, "no GPU here: %s", err);
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		uint32_t rows = shapes[s][0], cols = shapes[s][1], ks = shapes[s][2];
		size_t nsc = (size_t)(rows + 127) / 128 * (cols / 128);
		struct gemv_check k;
		double worst_m = 0, worst_c = 0;

		ASSERT_EQ(0, gemv_check_alloc(&k, (size_t)rows * cols, nsc, rows, cols));
		fp8_fill(&k, rows, cols, &seed);
		ASSERT_EQ(0, dsv4_gpu_linear_fp8(g, k.codes, k.sc, rows, cols, ks, k.x, k.ym, k.yc,
						 err, sizeof(err)))
			TH_LOG("%s", err);
		dsv4_act_quant_fp8(k.x, cols, 128, k.xq, k.xs);
		for (uint32_t r = 0; r < rows; r++) {
			double ref = 0, mag = 0;

			for (uint32_t c = 0; c < cols; c++) {
				double v = fp8_w(&k, cols, r, c) * dsv4_e4m3_to_f32(k.xq[c]) *
					   k.xs[c / 128];

				ref += v;
				mag += fabs(v);
			}
			worst_m = worse(worst_m, k.ym[r], ref, mag);
			worst_c = worse(worst_c, k.yc[r], ref, mag);
		}
		TH_LOG("%ux%u in %u slices: worst |gpu - cpu| / sum|terms|: tensor cores %.2e, "
		       "CUDA cores %.2e", rows, cols, ks, worst_m, worst_c);
		EXPECT_LT(worst_m, 1e-5);
		EXPECT_LT(worst_c, 1e-5);
		gemv_check_free(&k);
	}
	dsv4_gpu_close(g);
}

/*
 * Decode's wo_a (FP8 weights, no act quant, an F32 x) on the tensor cores
 * with x split into e4m3 parts (dsv4_xsplit, dsv4_linear1_fp8_mmx) and on
 * the CUDA cores, against the CPU in double on the F32 x: one wo_a group
 * (1024 x 4096 in 4 slices), 2 slices of 2048, one slice, a ragged shape.
 * Every seventh value 2^-20 smaller: a block's small values ride in its
 * later parts.  The split itself must add back up to x within 2^-32 of
 * each block's amax (the later parts matter too little in the GEMV's sum
 * to show there).
 */
TEST(linear_fp8_split_x_tensor_cores_match_cuda_cores)
{
	static const uint32_t shapes[][3] = { { 1024, 4096, 4 }, { 1024, 4096, 2 },
					      { 256, 1024, 1 }, { 100, 256, 2 } };
	char err[512] = "";
	struct dsv4_gpu *g = open_or_skip(_metadata, err, sizeof(err));
	unsigned seed = 11;

	if (!g)
		SKIP(return, "no GPU here: %s", err);
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		uint32_t rows = shapes[s][0], cols = shapes[s][1], ks = shapes[s][2];
		size_t nsc = (size_t)(rows + 127) / 128 * (cols / 128);
		uint8_t *parts = malloc((size_t)cols * 8);
		float *ps = malloc(cols / 128 * 8 * sizeof(float));
		struct gemv_check k;
		double worst_m = 0, worst_c = 0, worst_s = 0;

		ASSERT_TRUE(parts && ps);
		ASSERT_EQ(0, gemv_check_alloc(&k, (size_t)rows * cols, nsc, rows, cols));
		fp8_fill(&k, rows, cols, &seed);
		for (uint32_t c = 0; c < cols; c += 7)
			k.x[c] *= 0x1p-20f;
		ASSERT_EQ(0, dsv4_gpu_linear_fp8_split(g, k.codes, k.sc, rows, cols, ks, k.x, parts,
						       ps, 0, k.ym, k.yc, err, sizeof(err)))
			TH_LOG("%s", err);
		for (uint32_t b = 0; b < cols / 128; b++) {
			double amax = 0;

			for (uint32_t t = 0; t < 128; t++)
				amax = fmax(amax, fabs(k.x[b * 128 + t]));
			for (uint32_t t = 0; t < 128; t++) {
				double sum = 0;

				for (uint32_t j = 0; j < 8; j++)
					sum += (double)dsv4_e4m3_to_f32(parts[(b * 8 + j) * 128 + t]) *
					       ps[b * 8 + j];
				worst_s = fmax(worst_s, fabs(sum - k.x[b * 128 + t]) / amax);
			}
		}
		for (uint32_t r = 0; r < rows; r++) {
			double ref = 0, mag = 0;

			for (uint32_t c = 0; c < cols; c++) {
				double v = fp8_w(&k, cols, r, c) * k.x[c];

				ref += v;
				mag += fabs(v);
			}
			worst_m = worse(worst_m, k.ym[r], ref, mag);
			worst_c = worse(worst_c, k.yc[r], ref, mag);
		}
		TH_LOG("%ux%u in %u slices: parts' sum off by %.2e of a block's amax; worst |gpu - "
		       "cpu| / sum|terms|: tensor cores on x's parts %.2e, CUDA cores %.2e", rows,
		       cols, ks, worst_s, worst_m, worst_c);
		EXPECT_LE(worst_s, 0x1p-32);
		EXPECT_LT(worst_m, 1e-5);
		EXPECT_LT(worst_c, 1e-5);
		gemv_check_free(&k);
		free(parts);
		free(ps);
	}
	dsv4_gpu_close(g);
}

/*
 * dsv4_linear1_fp8_mmx on parts given as they are (random codes, every
 * part's scale within 2^2 of the others), so that each part, each lane's
 * two columns of B, weighs as much as x's first: against the CPU in
 * double on the parts themselves.  A part misplaced or scaled by another
 * part's scale is off by a large fraction of the sum.
 */
TEST(linear_fp8_mmx_weighs_every_part)
{
	static const uint32_t shapes[][3] = { { 1024, 4096, 4 }, { 100, 256, 2 } };
	char err[512] = "";
	struct dsv4_gpu *g = open_or_skip(_metadata, err, sizeof(err));
	unsigned seed = 13;

	if (!g)
		SKIP(return, "no GPU here: %s", err);
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		uint32_t rows = shapes[s][0], cols = shapes[s][1], ks = shapes[s][2];
		uint32_t nb = cols / 128;
		size_t nsc = (size_t)(rows + 127) / 128 * nb;
		uint8_t *parts = malloc((size_t)cols * 8);
		float *ps = malloc(nb * 8 * sizeof(float));
		struct gemv_check k;
		double worst_m = 0;

		ASSERT_TRUE(parts && ps);
		ASSERT_EQ(0, gemv_check_alloc(&k, (size_t)rows * cols, nsc, rows, cols));
		fp8_fill(&k, rows, cols, &seed);
		random_e4m3(parts, (size_t)cols * 8, &seed);
		for (uint32_t i = 0; i < nb * 8; i++)
			ps[i] = ldexpf(1.0f, -8 - (int)(i % 3));
		for (uint32_t c = 0; c < cols; c++) {
			double v = 0;

			for (uint32_t j = 0; j < 8; j++)
				v += (double)dsv4_e4m3_to_f32(parts[(c / 128 * 8 + j) * 128 + c % 128]) *
				     ps[c / 128 * 8 + j];
			k.x[c] = (float)v;	/* (for the CUDA-core run only) */
		}
		ASSERT_EQ(0, dsv4_gpu_linear_fp8_split(g, k.codes, k.sc, rows, cols, ks, k.x, parts,
						       ps, 1, k.ym, k.yc, err, sizeof(err)))
			TH_LOG("%s", err);
		for (uint32_t r = 0; r < rows; r++) {
			double ref = 0, mag = 0;

			for (uint32_t c = 0; c < cols; c++) {
				double w = fp8_w(&k, cols, r, c);

				for (uint32_t j = 0; j < 8; j++) {
					double v = w * dsv4_e4m3_to_f32(parts[(c / 128 * 8 + j) * 128 +
									      c % 128]) *
						   ps[c / 128 * 8 + j];

					ref += v;
					mag += fabs(v);
				}
			}
			worst_m = worse(worst_m, k.ym[r], ref, mag);
		}
		TH_LOG("%ux%u in %u slices, eight parts of equal weight: worst |gpu - cpu| / "
		       "sum|terms| %.2e", rows, cols, ks, worst_m);
		EXPECT_LT(worst_m, 1e-5);
		gemv_check_free(&k);
		free(parts);
		free(ps);
	}
	dsv4_gpu_close(g);
}

/* a model load with these options: 0 and on_gpu/backend text, or the error */
static int load_fortune(enum dsv4_backend be, int *on_gpu, char *text, size_t len)
{
	struct dsv4_model_options o = { .threads = 1, .backend = be };
	struct dsv4_model *m = NULL;
	int ret = dsv4_model_load("userspace/models/fortune-v4", &o, &m, text, len);

	if (!ret) {
		*on_gpu = dsv4_model_on_gpu(m);
		snprintf(text, len, "%s", dsv4_model_backend(m));
		dsv4_model_free(m);
	}
	return ret;
}

/* the kernel's order: -0 as 0, then the float's bits made to sort as
 * unsigned */
static uint32_t topk_key(float f)
{
	uint32_t u;

	if (f == 0.f)
		f = 0.f;
	memcpy(&u, &f, sizeof(u));
	return u & 0x80000000u ? ~u : u | 0x80000000u;
}

static const uint32_t *topk_keys;

/* by key, highest first, then by index */
static int topk_cmp(const void *a, const void *b)
{
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;

	if (topk_keys[i] != topk_keys[j])
		return topk_keys[i] > topk_keys[j] ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* @n scores of kind @kind into slice z of @s ([nz, n]) */
static void topk_fill(float *s, uint32_t n, uint32_t nz, int kind, unsigned *seed)
{
	for (size_t i = 0; i < (size_t)nz * n; i++) {
		*seed = *seed * 1103515245u + 12345u;
		uint32_t u = *seed >> 8;

		switch (kind) {
		case 0:	/* both signs, several magnitudes */
			s[i] = ((float)(u % 200001) - 60000.f) * 1e-4f * (float)(1 + u % 7);
			break;
		case 1:	/* one sign and magnitude: the top bits shared */
			s[i] = 10.f + (float)(u % 100000) * 1e-6f;
			break;
		case 2:	/* seven values, 0 and -0 among them: ties at the threshold */
			s[i] = u % 7 == 3 ? (u & 1 ? -0.f : 0.f) : (float)(u % 7) - 3.f;
			break;
		case 3:	/* all equal */
			s[i] = 1.5f;
			break;
		default: {	/* keys that differ in their low six bits only */
			float f = 1.f;
			uint32_t b;

			memcpy(&b, &f, sizeof(b));
			b += u % 64;
			memcpy(&s[i], &b, sizeof(b));
		}
		}
	}
}

/*
 * The indexer's top-k against a sort on the CPU: the same entries in
 * index order (ties at the threshold to the lower index), for the
 * context sizes decode meets (1K sliced sums at 4K, 32768 at 128K, 262144
 * at 1M), key distributions of one sign and magnitude, of both, with ties
 * at the threshold and all equal, slices summed in shared memory or in
 * slice 0; in one block ($DSV4_GPU_TOPK_PARTS=0), and from 8192
 * entries in parts (dsv4_topk_part, some with fewer entries than k, and
 * dsv4_topk_merge, also where the parts' picks are k or fewer).
 */
TEST(topk_matches_the_cpu)
{
	static const struct {
		uint32_t n, nz, k;
		int kind;
	} cases[] = {
		{ 32768, 1, 512, 0 }, { 32768, 1, 512, 1 }, { 32768, 1, 512, 2 },
		{ 32768, 1, 512, 3 }, { 32768, 1, 512, 4 }, { 1024, 8, 512, 0 },
		{ 1024, 8, 512, 2 },  { 600, 3, 512, 0 },   { 5000, 2, 512, 0 },
		{ 262144, 1, 512, 0 }, { 300, 1, 512, 0 },  { 2048, 1, 1024, 1 },
		{ 4096, 1, 1, 0 },    { 4096, 1, 1, 2 },   { 70000, 1, 1024, 4 },
		{ 8292, 1, 512, 0 },  { 12288, 1, 512, 2 }, { 32768, 1, 4096, 0 },
		{ 9000, 1, 10000, 0 },
	};
	char err[512] = "";
	struct dsv4_gpu *g = open_or_skip(_metadata, err, sizeof(err));
	unsigned seed = 11;

	if (!g)
		SKIP(return, "no GPU here: %s", err);
	for (size_t c = 0; c < 2 * sizeof(cases) / sizeof(cases[0]); c++) {
		uint32_t half = sizeof(cases) / sizeof(cases[0]), one = c >= half;
		uint32_t n = cases[c % half].n, nz = cases[c % half].nz, k = cases[c % half].k;
		uint32_t want = n < k ? n : k;
		int kind = cases[c % half].kind;
		float *s = malloc((size_t)nz * n * sizeof(float));
		uint32_t *keys = malloc(n * sizeof(uint32_t)), *idx = malloc(n * sizeof(uint32_t));
		int32_t *sel = malloc(k * sizeof(int32_t));
		unsigned char *taken = calloc(n, 1);
		uint32_t nsel = 0, mism = 0;

		ASSERT_TRUE(s && keys && idx && sel && taken);
		topk_fill(s, n, nz, kind, &seed);
		for (uint32_t i = 0; i < n; i++) {
			float sum = 0.f;

			for (uint32_t z = 0; z < nz; z++)
				sum += s[(size_t)z * n + i];
			keys[i] = topk_key(sum);
			idx[i] = i;
		}
		topk_keys = keys;
		qsort(idx, n, sizeof(idx[0]), topk_cmp);
		for (uint32_t i = 0; i < want; i++)
			taken[idx[i]] = 1;
		setenv("DSV4_GPU_TOPK_PARTS", one ? "0" : "1", 1);
		ASSERT_EQ(0, dsv4_gpu_topk(g, s, n, nz, k, sel, &nsel, err, sizeof(err)))
			TH_LOG("%s", err);
		ASSERT_EQ(want, nsel) TH_LOG("case %zu", c);
		/* the taken entries in index order */
		for (uint32_t i = 0, j = 0; i < n && j < want; i++) {
			if (!taken[i])
				continue;
			mism += sel[j] != (int32_t)i;
			j++;
		}
		EXPECT_EQ(0, mism) TH_LOG("case %zu (n %u, nz %u, k %u, kind %d, %s): %u of %u "
					  "differ", c % half, n, nz, k, kind,
					  one ? "one block" : "in parts", mism, want);
		free(s);
		free(keys);
		free(idx);
		free(sel);
		free(taken);
	}
	unsetenv("DSV4_GPU_TOPK_PARTS");
	EXPECT_EQ(-EINVAL, dsv4_gpu_topk(g, NULL, 0, 1, 512, NULL, &(uint32_t){ 0 }, err,
					 sizeof(err)));
	dsv4_gpu_close(g);
}

/*
 * The indexer's keys as stored codes (dsv4_icmp_codes, what
 * dsv4_cmp_push writes and decode's index scores read): against codes
 * formed here from each 32-value block's amax, and each code times its
 * step gives the key back exactly.  Keys on the FP4 grid over a wide
 * range of scales, with blocks of zeros and of one value.
 */
TEST(index_key_codes_match_the_cpu)
{
	const uint32_t n = 300, ihd = 128, nb = ihd / 32, bytes = ihd + ihd / 8;
	char err[512] = "";
	struct dsv4_gpu *g = open_or_skip(_metadata, err, sizeof(err));
	float *keys = malloc((size_t)n * ihd * sizeof(float));
	uint8_t *got = malloc((size_t)n * bytes);
	unsigned seed = 21;
	uint32_t bad = 0, inexact = 0;

	ASSERT_TRUE(keys && got);
	if (!g) {
		free(keys);
		free(got);
		SKIP(return, "no GPU here: %s", err);
	}
	for (uint32_t i = 0; i < n * nb; i++) {
		int sc = (int)(rand_r(&seed) % 121) - 60, kind = (int)(i % 7);

		for (uint32_t j = 0; j < 32; j++) {
			float v = ldexpf((float)rand_r(&seed) / (float)RAND_MAX - 0.5f, sc);

			keys[32 * i + j] = kind == 3 ? 0.f : kind == 5 && j ? 0.f : v;
		}
	}
	dsv4_act_fakequant_fp4(keys, (size_t)n * ihd, keys);
	ASSERT_EQ(0, dsv4_gpu_index_codes(g, keys, n, ihd, got, err, sizeof(err))) TH_LOG("%s", err);
	for (uint32_t k = 0; k < n; k++) {
		const uint8_t *row = got + (size_t)k * bytes;

		for (uint32_t b = 0; b < nb; b++) {
			const float *x = keys + (size_t)k * ihd + 32 * b;
			float amax = 0.f, step;
			int e = 0;

			for (uint32_t j = 0; j < 32; j++)
				amax = fmaxf(amax, fabsf(x[j]));
			if (amax > 0.f)
				e = ilogbf(amax) - 3;
			memcpy(&step, row + ihd + 4 * b, sizeof(step));
			bad += step != ldexpf(1.f, e);
			for (uint32_t j = 0; j < 32; j++) {
				int8_t c = (int8_t)row[32 * b + j];

				bad += c != (int8_t)lrintf(ldexpf(x[j], -e));
				inexact += (float)c * step != x[j] || c > 15 || c < -15;
			}
		}
	}
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, inexact);
	EXPECT_EQ(-EINVAL, dsv4_gpu_index_codes(g, keys, n, 100, got, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_gpu_index_codes(g, keys, 0, ihd, got, err, sizeof(err)));
	free(keys);
	free(got);
	dsv4_gpu_close(g);
}

/*
 * AUTO takes the GPU when it can and otherwise runs on the CPU, saying why;
 * CUDA demanded without a usable GPU is an error naming what is missing;
 * a firmware file that is not there counts as "cannot"; $DSV4_BACKEND
 * decides where the program left it open, and a bad value is an error.
 */
TEST(backend_auto_falls_back_cuda_demanded_fails)
{
	char err[512] = "", text[1024];
	struct dsv4_gpu *g = NULL;
	const char *fw = getenv("DSV4_FIRMWARE");
	char *saved = fw ? strdup(fw) : NULL;
	int have = !dsv4_gpu_open(0, NULL, &g, err, sizeof(err)), on = -1;
	enum dsv4_backend be;

	dsv4_gpu_close(g);
	unsetenv("DSV4_BACKEND");
	ASSERT_EQ(0, load_fortune(DSV4_BACKEND_AUTO, &on, text, sizeof(text))) TH_LOG("%s", text);
	EXPECT_EQ(have, on) TH_LOG("%s", text);
	if (!have)
		EXPECT_NE(NULL, strstr(text, "cpu (CUDA not used: ")) TH_LOG("%s", text);
	if (have) {
		EXPECT_EQ(0, load_fortune(DSV4_BACKEND_CUDA, &on, text, sizeof(text)));
		EXPECT_EQ(1, on);
	} else {
		EXPECT_NE(0, load_fortune(DSV4_BACKEND_CUDA, &on, text, sizeof(text)));
		EXPECT_NE(NULL, strstr(text, "CUDA")) TH_LOG("%s", text);
	}
	/* the firmware missing: AUTO falls back, CUDA fails */
	setenv("DSV4_FIRMWARE", "/nonexistent/dsv4.fatbin", 1);
	ASSERT_EQ(0, load_fortune(DSV4_BACKEND_AUTO, &on, text, sizeof(text)));
	EXPECT_EQ(0, on);
	EXPECT_NE(NULL, strstr(text, "CUDA not used")) TH_LOG("%s", text);
	EXPECT_NE(0, load_fortune(DSV4_BACKEND_CUDA, &on, text, sizeof(text)));
	if (saved)
		setenv("DSV4_FIRMWARE", saved, 1);
	else
		unsetenv("DSV4_FIRMWARE");
	free(saved);
	/* the operator's environment */
	setenv("DSV4_BACKEND", "cpu", 1);
	ASSERT_EQ(0, load_fortune(DSV4_BACKEND_AUTO, &on, text, sizeof(text)));
	EXPECT_EQ(0, on);
	EXPECT_EQ(0, strcmp(text, "cpu")) TH_LOG("%s", text);
	setenv("DSV4_BACKEND", "gpu", 1);
	EXPECT_EQ(-EINVAL, load_fortune(DSV4_BACKEND_AUTO, &on, text, sizeof(text)));
	EXPECT_NE(NULL, strstr(text, "DSV4_BACKEND")) TH_LOG("%s", text);
	/* a program's explicit choice wins over the environment */
	EXPECT_EQ(0, load_fortune(DSV4_BACKEND_CPU, &on, text, sizeof(text)));
	unsetenv("DSV4_BACKEND");
	EXPECT_EQ(0, dsv4_backend_from_name("cuda", &be));
	EXPECT_EQ(DSV4_BACKEND_CUDA, be);
	EXPECT_EQ(0, dsv4_backend_from_name("auto", &be));
	EXPECT_EQ(DSV4_BACKEND_AUTO, be);
	EXPECT_EQ(-EINVAL, dsv4_backend_from_name("CUDA", &be));
	EXPECT_EQ(-EINVAL, dsv4_backend_from_name("", &be));
	EXPECT_EQ(-EINVAL, dsv4_backend_from_name(NULL, &be));
}

TEST_HARNESS_MAIN
