// SPDX-License-Identifier: MIT
/*
 * AVX2 + FMA + F16C matrix kernels (picked at run time by kernels.c).
 *
 * e4m3 -> float goes through half precision: the sign-extended byte
 * shifted left by 7, with bit 14 cleared, is an f16 with the same sign and
 * mantissa and an exponent 8 lower, so vcvtph2ps then a multiply by 2^8
 * (folded into the block scale) is exact, subnormals included.  e2m1 -> float is a byte shuffle from a table of
 * 2*value (all integers) and a multiply by scale/2.
 */
#ifdef __x86_64__
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
#include <string.h>

#include "engine.h"


static inline __m256 fp8x8(const uint8_t *p)
{
	/* sign-extended byte << 7, bit 14 cleared: the f16 (see top) */
	__m128i b = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)p));

	return _mm256_cvtph_ps(_mm_and_si128(_mm_slli_epi16(b, 7), _mm_set1_epi16((short)0xbfff)));
}

static inline __m256 bf16x8(const uint16_t *p)
{
	__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* 16 packed bytes -> 32 e2m1 values as 2*value, in element order */
static inline void fp4x32(const uint8_t *p, __m256 out[4])
{
	const __m128i lut = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
	__m128i b = _mm_loadu_si128((const __m128i *)p);
	__m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(b, _mm_set1_epi8(0x0f)));
	__m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f)));
	__m128i e0 = _mm_unpacklo_epi8(lo, hi);	/* elements 0..15 */
	__m128i e1 = _mm_unpackhi_epi8(lo, hi);	/* elements 16..31 */

	out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(e0));
	out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(e0, 8)));
	out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(e1));
	out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(e1, 8)));
}

static inline float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static void decode_row(const struct mat *m, uint32_t r, float *dst)
{
	uint64_t row = (uint64_t)m->row0 + r;
	uint32_t n = m->cols, k = 0;

	switch (m->fmt) {
	case MAT_F32:
		memcpy(dst, (const float *)m->data + row * n, n * sizeof(float));
		return;
	case MAT_BF16: {
		const uint16_t *s = (const uint16_t *)m->data + row * n;

		for (; k + 8 <= n; k += 8)
			_mm256_storeu_ps(dst + k, bf16x8(s + k));
		for (; k < n; k++)
			dst[k] = ld_bf16(s + k);
		return;
	}
	case MAT_FP8: {
		const uint8_t *s = (const uint8_t *)m->data + row * n;

		for (; k < n; k += 128) {
			float sc = mat_fp8_scale(m, r, k / 128);
			__m256 vs = _mm256_set1_ps(sc * 256.0f);
			uint32_t e = k + 128 < n ? k + 128 : n, j = k;

			for (; j + 8 <= e; j += 8)
				_mm256_storeu_ps(dst + j, _mm256_mul_ps(fp8x8(s + j), vs));
			for (; j < e; j++)
				dst[j] = dsv4_e4m3_to_f32(s[j]) * sc;
		}
		return;
	}
	case MAT_FP4: {
		const uint8_t *s = (const uint8_t *)m->data + row * (n / 2);
		const uint8_t *sc = (const uint8_t *)m->scale + row * (n / 32);
		__m256 v[4];

		for (; k < n; k += 32) {
			__m256 vs = _mm256_set1_ps(e8m0_lut[sc[k / 32]] * 0.5f);

			fp4x32(s + k / 2, v);
			for (int i = 0; i < 4; i++)
				_mm256_storeu_ps(dst + k + 8 * i, _mm256_mul_ps(v[i], vs));
		}
		return;
	}
	}
}

static void avx2_decode_rows(const struct mat *m, uint32_t r0, uint32_t n, float *dst)
{
	for (uint32_t i = 0; i < n; i++)
		decode_row(m, r0 + i, dst + (uint64_t)i * m->cols);
}

static void avx2_dot4(const float *w, const float *x, uint32_t cols, float *y)
{
	const float *w0 = w, *w1 = w + cols, *w2 = w + 2 * (uint64_t)cols,
		    *w3 = w + 3 * (uint64_t)cols;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	uint32_t k = 0;

	for (; k + 8 <= cols; k += 8) {
		__m256 xv = _mm256_loadu_ps(x + k);

		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), xv, a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k), xv, a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), xv, a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k), xv, a3);
	}
	y[0] = hsum(a0);
	y[1] = hsum(a1);
	y[2] = hsum(a2);
	y[3] = hsum(a3);
	for (; k < cols; k++) {
		y[0] += w0[k] * x[k];
		y[1] += w1[k] * x[k];
		y[2] += w2[k] * x[k];
		y[3] += w3[k] * x[k];
	}
}

static float avx2_row_dot(const struct mat *m, uint32_t r, const float *x)
{
	uint64_t row = (uint64_t)m->row0 + r;
	uint32_t n = m->cols, k = 0;
	__m256 acc = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps();
	float tail = 0;

	switch (m->fmt) {
	case MAT_F32: {
		const float *s = (const float *)m->data + row * n;

		for (; k + 8 <= n; k += 8)
			acc = _mm256_fmadd_ps(_mm256_loadu_ps(s + k), _mm256_loadu_ps(x + k), acc);
		for (; k < n; k++)
			tail += ld_f32(s + k) * x[k];
		break;
	}
	case MAT_BF16: {
		const uint16_t *s = (const uint16_t *)m->data + row * n;

		for (; k + 16 <= n; k += 16) {
			/* 4 KiB page-cache pages stop the hardware prefetcher */
			_mm_prefetch((const char *)(s + k) + 2048, _MM_HINT_T0);
			acc = _mm256_fmadd_ps(bf16x8(s + k), _mm256_loadu_ps(x + k), acc);
			acc2 = _mm256_fmadd_ps(bf16x8(s + k + 8), _mm256_loadu_ps(x + k + 8), acc2);
		}
		for (; k < n; k++)
			tail += ld_bf16(s + k) * x[k];
		break;
	}
	case MAT_FP8: {
		const uint8_t *s = (const uint8_t *)m->data + row * n;

		for (; k < n; k += 128) {
			uint32_t e = k + 128 < n ? k + 128 : n, j = k;
			float sc = mat_fp8_scale(m, r, k / 128);
			__m256 b0 = _mm256_setzero_ps(), b1 = b0;
			float bt = 0;

			for (; j + 16 <= e; j += 16) {
				_mm_prefetch((const char *)s + j + 1024, _MM_HINT_T0);
				b0 = _mm256_fmadd_ps(fp8x8(s + j), _mm256_loadu_ps(x + j), b0);
				b1 = _mm256_fmadd_ps(fp8x8(s + j + 8), _mm256_loadu_ps(x + j + 8), b1);
			}
			for (; j < e; j++)
				bt += dsv4_e4m3_to_f32(s[j]) * x[j];
			acc = _mm256_fmadd_ps(_mm256_add_ps(b0, b1), _mm256_set1_ps(sc * 256.0f), acc);
			tail += bt * sc;
		}
		break;
	}
	case MAT_FP4: {
		const uint8_t *s = (const uint8_t *)m->data + row * (n / 2);
		const uint8_t *sc = (const uint8_t *)m->scale + row * (n / 32);
		__m256 v[4];

		for (; k < n; k += 32) {
			__m256 b;

			_mm_prefetch((const char *)s + k / 2 + 1024, _MM_HINT_T0);
			fp4x32(s + k / 2, v);
			b = _mm256_mul_ps(v[0], _mm256_loadu_ps(x + k));
			b = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(x + k + 8), b);
			b = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(x + k + 16), b);
			b = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(x + k + 24), b);
			acc = _mm256_fmadd_ps(b, _mm256_set1_ps(e8m0_lut[sc[k / 32]] * 0.5f), acc);
		}
		break;
	}
	}
	return hsum(_mm256_add_ps(acc, acc2)) + tail;
}

static float avx2_dot(const float *a, const float *b, uint32_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;
	uint32_t i = 0;
	float t = 0;

	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i < n; i++)
		t += a[i] * b[i];
	return hsum(_mm256_add_ps(s0, s1)) + t;
}

static void avx2_axpy(float a, const float *x, float *y, uint32_t n)
{
	__m256 va = _mm256_set1_ps(a);
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i),
							_mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

const struct kernels kernels_avx2 = {
	.dot = avx2_dot,
	.axpy = avx2_axpy,
	.name = "avx2",
	.decode_rows = avx2_decode_rows,
	.dot4 = avx2_dot4,
	.row_dot = avx2_row_dot,
};
#endif
