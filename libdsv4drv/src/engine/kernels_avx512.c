// SPDX-License-Identifier: MIT
/*
 * AVX-512 (F/BW/VL) matrix kernels; the same conversions as
 * kernels_avx2.c, 16 lanes wide.  Row decoding for the tiled path is
 * shared with the AVX2 file's approach but written here at 16 lanes.
 */
#ifdef __x86_64__
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#include <immintrin.h>
#include <string.h>

#include "engine.h"


static inline __m512 fp8x16(const uint8_t *p)
{
	/* sign-extended byte << 7: the sign lands in bit 15 (and 14), the
	 * exponent and mantissa in 13..7; clearing bit 14 leaves the f16 */
	__m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));

	return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(b, 7),
						_mm256_set1_epi16((short)0xbfff)));
}

static inline __m512 bf16x16(const uint16_t *p)
{
	__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));

	return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

/* 16 packed bytes -> 32 e2m1 values as 2*value */
static inline void fp4x32(const uint8_t *p, __m512 *o0, __m512 *o1)
{
	const __m128i lut = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
	__m128i b = _mm_loadu_si128((const __m128i *)p);
	__m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(b, _mm_set1_epi8(0x0f)));
	__m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f)));

	*o0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_unpacklo_epi8(lo, hi)));
	*o1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_unpackhi_epi8(lo, hi)));
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

		for (; k + 16 <= n; k += 16)
			_mm512_storeu_ps(dst + k, bf16x16(s + k));
		for (; k < n; k++)
			dst[k] = ld_bf16(s + k);
		return;
	}
	case MAT_FP8: {
		const uint8_t *s = (const uint8_t *)m->data + row * n;

		for (; k < n; k += 128) {
			float sc = mat_fp8_scale(m, r, k / 128);
			__m512 vs = _mm512_set1_ps(sc * 256.0f);
			uint32_t e = k + 128 < n ? k + 128 : n, j = k;

			for (; j + 16 <= e; j += 16)
				_mm512_storeu_ps(dst + j, _mm512_mul_ps(fp8x16(s + j), vs));
			for (; j < e; j++)
				dst[j] = dsv4_e4m3_to_f32(s[j]) * sc;
		}
		return;
	}
	case MAT_FP4: {
		const uint8_t *s = (const uint8_t *)m->data + row * (n / 2);
		const uint8_t *sc = (const uint8_t *)m->scale + row * (n / 32);
		__m512 v0, v1;

		for (; k < n; k += 32) {
			__m512 vs = _mm512_set1_ps(e8m0_lut[sc[k / 32]] * 0.5f);

			fp4x32(s + k / 2, &v0, &v1);
			_mm512_storeu_ps(dst + k, _mm512_mul_ps(v0, vs));
			_mm512_storeu_ps(dst + k + 16, _mm512_mul_ps(v1, vs));
		}
		return;
	}
	}
}

static void avx512_decode_rows(const struct mat *m, uint32_t r0, uint32_t n, float *dst)
{
	for (uint32_t i = 0; i < n; i++)
		decode_row(m, r0 + i, dst + (uint64_t)i * m->cols);
}

static void avx512_dot4(const float *w, const float *x, uint32_t cols, float *y)
{
	const float *w0 = w, *w1 = w + cols, *w2 = w + 2 * (uint64_t)cols,
		    *w3 = w + 3 * (uint64_t)cols;
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	uint32_t k = 0;

	for (; k + 16 <= cols; k += 16) {
		__m512 xv = _mm512_loadu_ps(x + k);

		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + k), xv, a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + k), xv, a1);
		a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + k), xv, a2);
		a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + k), xv, a3);
	}
	y[0] = _mm512_reduce_add_ps(a0);
	y[1] = _mm512_reduce_add_ps(a1);
	y[2] = _mm512_reduce_add_ps(a2);
	y[3] = _mm512_reduce_add_ps(a3);
	for (; k < cols; k++) {
		y[0] += w0[k] * x[k];
		y[1] += w1[k] * x[k];
		y[2] += w2[k] * x[k];
		y[3] += w3[k] * x[k];
	}
}

static float avx512_row_dot(const struct mat *m, uint32_t r, const float *x)
{
	uint64_t row = (uint64_t)m->row0 + r;
	uint32_t n = m->cols, k = 0;
	__m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
	float tail = 0;

	switch (m->fmt) {
	case MAT_F32: {
		const float *s = (const float *)m->data + row * n;

		for (; k + 16 <= n; k += 16)
			acc = _mm512_fmadd_ps(_mm512_loadu_ps(s + k), _mm512_loadu_ps(x + k), acc);
		for (; k < n; k++)
			tail += ld_f32(s + k) * x[k];
		break;
	}
	case MAT_BF16: {
		const uint16_t *s = (const uint16_t *)m->data + row * n;

		for (; k + 32 <= n; k += 32) {
			_mm_prefetch((const char *)(s + k) + 2048, _MM_HINT_T0);
			acc = _mm512_fmadd_ps(bf16x16(s + k), _mm512_loadu_ps(x + k), acc);
			acc2 = _mm512_fmadd_ps(bf16x16(s + k + 16), _mm512_loadu_ps(x + k + 16), acc2);
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
			__m512 b0 = _mm512_setzero_ps(), b1 = b0;
			float bt = 0;

			for (; j + 32 <= e; j += 32) {
				_mm_prefetch((const char *)s + j + 1024, _MM_HINT_T0);
				b0 = _mm512_fmadd_ps(fp8x16(s + j), _mm512_loadu_ps(x + j), b0);
				b1 = _mm512_fmadd_ps(fp8x16(s + j + 16), _mm512_loadu_ps(x + j + 16), b1);
			}
			for (; j < e; j++)
				bt += dsv4_e4m3_to_f32(s[j]) * x[j];
			acc = _mm512_fmadd_ps(_mm512_add_ps(b0, b1), _mm512_set1_ps(sc * 256.0f), acc);
			tail += bt * sc;
		}
		break;
	}
	case MAT_FP4: {
		const uint8_t *s = (const uint8_t *)m->data + row * (n / 2);
		const uint8_t *sc = (const uint8_t *)m->scale + row * (n / 32);
		__m512 v0, v1;

		for (; k < n; k += 32) {
			__m512 b;

			_mm_prefetch((const char *)s + k / 2 + 1024, _MM_HINT_T0);
			fp4x32(s + k / 2, &v0, &v1);
			b = _mm512_mul_ps(v0, _mm512_loadu_ps(x + k));
			b = _mm512_fmadd_ps(v1, _mm512_loadu_ps(x + k + 16), b);
			acc = _mm512_fmadd_ps(b, _mm512_set1_ps(e8m0_lut[sc[k / 32]] * 0.5f), acc);
		}
		break;
	}
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(acc, acc2)) + tail;
}

static float avx512_dot(const float *a, const float *b, uint32_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0;
	uint32_t i = 0;
	float t = 0;

	for (; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
	}
	for (; i < n; i++)
		t += a[i] * b[i];
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) + t;
}

static void avx512_axpy(float a, const float *x, float *y, uint32_t n)
{
	__m512 va = _mm512_set1_ps(a);
	uint32_t i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i),
							_mm512_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

const struct kernels kernels_avx512 = {
	.dot = avx512_dot,
	.axpy = avx512_axpy,
	.name = "avx512",
	.decode_rows = avx512_decode_rows,
	.dot4 = avx512_dot4,
	.row_dot = avx512_row_dot,
};
#endif
