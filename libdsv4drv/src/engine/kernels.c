// SPDX-License-Identifier: MIT
/*
 * Matrix kernels, portable C, and the runtime choice between them and the
 * x86 SIMD versions (kernels_avx2.c, kernels_avx512.c).  Weights stay in
 * their stored formats and are dequantized on the fly: FP8 e4m3 with one
 * e8m0 (or F32) scale per 128x128 block, FP4 e2m1 with one e8m0 scale per
 * 32 values of a row, BF16, F32.
 */
#include <string.h>

#include "engine.h"

float mat_fp8_scale(const struct mat *m, uint32_t r, uint32_t kb)
{
	uint32_t sc = (m->cols + 127) / 128;
	uint64_t i = (uint64_t)((m->row0 + r) / 128) * sc + kb;

	if (m->scale_f32) {
		float f;

		memcpy(&f, (const float *)m->scale + i, sizeof(f));
		return f;
	}
	return e8m0_lut[((const uint8_t *)m->scale)[i]];
}


float e8m0_lut[256];
static float e4m3_lut[256];
static float fp4_lut[16];

static void luts_init(void)
{
	for (int i = 0; i < 256; i++)
		e4m3_lut[i] = dsv4_e4m3_to_f32((uint8_t)i);
	for (int i = 0; i < 16; i++)
		fp4_lut[i] = dsv4_fp4_to_f32((uint8_t)i);
	for (int i = 0; i < 256; i++)
		e8m0_lut[i] = dsv4_e8m0_to_f32((uint8_t)i);
}

static void scalar_decode_row(const struct mat *m, uint32_t r, float *dst)
{
	uint64_t row = (uint64_t)m->row0 + r;
	uint32_t n = m->cols;

	switch (m->fmt) {
	case MAT_F32:
		memcpy(dst, (const float *)m->data + row * n, n * sizeof(float));
		break;
	case MAT_BF16: {
		const uint16_t *s = (const uint16_t *)m->data + row * n;

		for (uint32_t k = 0; k < n; k++)
			dst[k] = ld_bf16(s + k);
		break;
	}
	case MAT_FP8: {
		const uint8_t *s = (const uint8_t *)m->data + row * n;

		for (uint32_t k = 0; k < n; k += 128) {
			float sc = mat_fp8_scale(m, r, k / 128);
			uint32_t e = k + 128 < n ? k + 128 : n;

			for (uint32_t j = k; j < e; j++)
				dst[j] = e4m3_lut[s[j]] * sc;
		}
		break;
	}
	case MAT_FP4: {
		const uint8_t *s = (const uint8_t *)m->data + row * (n / 2);
		const uint8_t *sc = (const uint8_t *)m->scale + row * (n / 32);

		for (uint32_t k = 0; k < n; k += 32) {
			float f = e8m0_lut[sc[k / 32]];

			for (uint32_t j = 0; j < 32; j += 2) {
				uint8_t b = s[(k + j) / 2];

				dst[k + j] = fp4_lut[b & 15] * f;
				dst[k + j + 1] = fp4_lut[b >> 4] * f;
			}
		}
		break;
	}
	}
}

static void scalar_decode_rows(const struct mat *m, uint32_t r0, uint32_t n, float *dst)
{
	for (uint32_t i = 0; i < n; i++)
		scalar_decode_row(m, r0 + i, dst + (uint64_t)i * m->cols);
}

static void scalar_dot4(const float *w, const float *x, uint32_t cols, float *y)
{
	for (int j = 0; j < 4; j++) {
		const float *wr = w + (uint64_t)j * cols;
		float a = 0;

		for (uint32_t k = 0; k < cols; k++)
			a += wr[k] * x[k];
		y[j] = a;
	}
}

static float scalar_row_dot(const struct mat *m, uint32_t r, const float *x)
{
	uint64_t row = (uint64_t)m->row0 + r;
	uint32_t n = m->cols;
	float acc = 0;

	switch (m->fmt) {
	case MAT_F32: {
		const float *s = (const float *)m->data + row * n;

		for (uint32_t k = 0; k < n; k++)
			acc += ld_f32(s + k) * x[k];
		break;
	}
	case MAT_BF16: {
		const uint16_t *s = (const uint16_t *)m->data + row * n;

		for (uint32_t k = 0; k < n; k++)
			acc += ld_bf16(s + k) * x[k];
		break;
	}
	case MAT_FP8: {
		const uint8_t *s = (const uint8_t *)m->data + row * n;

		for (uint32_t k = 0; k < n; k += 128) {
			uint32_t e = k + 128 < n ? k + 128 : n;
			float blk = 0;

			for (uint32_t j = k; j < e; j++)
				blk += e4m3_lut[s[j]] * x[j];
			acc += blk * mat_fp8_scale(m, r, k / 128);
		}
		break;
	}
	case MAT_FP4: {
		const uint8_t *s = (const uint8_t *)m->data + row * (n / 2);
		const uint8_t *sc = (const uint8_t *)m->scale + row * (n / 32);

		for (uint32_t k = 0; k < n; k += 32) {
			float blk = 0;

			for (uint32_t j = 0; j < 32; j += 2) {
				uint8_t v = s[(k + j) / 2];

				blk += fp4_lut[v & 15] * x[k + j] + fp4_lut[v >> 4] * x[k + j + 1];
			}
			acc += blk * e8m0_lut[sc[k / 32]];
		}
		break;
	}
	}
	return acc;
}

static float scalar_dot(const float *a, const float *b, uint32_t n)
{
	float acc = 0;

	for (uint32_t i = 0; i < n; i++)
		acc += a[i] * b[i];
	return acc;
}

static void scalar_axpy(float a, const float *x, float *y, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

const struct kernels kernels_scalar = {
	.dot = scalar_dot,
	.axpy = scalar_axpy,
	.name = "scalar",
	.decode_rows = scalar_decode_rows,
	.dot4 = scalar_dot4,
	.row_dot = scalar_row_dot,
};

#ifdef __x86_64__
int cpu_has_avx512bf16(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512bf16");
}
#endif

const struct kernels *kernels_pick(const char *force)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, luts_init);
#ifdef __x86_64__
	__builtin_cpu_init();
	int has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		     __builtin_cpu_supports("avx512vl");
	int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		   __builtin_cpu_supports("f16c");

	if (force && *force) {
		if (!strcmp(force, "scalar"))
			return &kernels_scalar;
		if (!strcmp(force, "avx2"))
			return has2 ? &kernels_avx2 : NULL;
		if (!strcmp(force, "avx512") || !strcmp(force, "avx512-bf16"))
			return has512 && has2 ? &kernels_avx512 : NULL;
		return NULL;
	}
	if (has512 && has2)
		return &kernels_avx512;
	if (has2)
		return &kernels_avx2;
#else
	if (force && *force && strcmp(force, "scalar"))
		return NULL;
#endif
	return &kernels_scalar;
}
