// SPDX-License-Identifier: MIT
/*
 * FP4 expert rows x an FP8-quantized activation with AVX512-BF16
 * (vdpbf16ps), for reference numerics.  There the activation was rounded
 * to e4m3 times a power of two, so it is exact in BF16; e2m1 weights are
 * exact in BF16 too, and vdpbf16ps forms each product exactly in FP32 and
 * sums in FP32: the same numbers as the FP32 path, in a different order.
 * Subnormals cannot occur (the smallest such activation is 2^-31).
 *
 * The activation is permuted once per matrix product so that one byte
 * load gives the weights in vdpbf16ps's pair order: per 64 values, first
 * (x[4i], x[4i+2]) for i < 16 (the low nibbles), then (x[4i+1], x[4i+3]).
 */
#ifdef __x86_64__
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
#include <immintrin.h>
#include <string.h>

#include "engine.h"

void fp4_bf16_perm_x(const float *x, uint32_t n, uint16_t *xp)
{
	for (uint32_t k = 0; k < n; k += 64)
		for (uint32_t i = 0; i < 16; i++) {
			xp[k + 2 * i] = bf16_bits(x[k + 4 * i]);
			xp[k + 2 * i + 1] = bf16_bits(x[k + 4 * i + 2]);
			xp[k + 32 + 2 * i] = bf16_bits(x[k + 4 * i + 1]);
			xp[k + 32 + 2 * i + 1] = bf16_bits(x[k + 4 * i + 3]);
		}
}

float fp4_bf16_row_dot(const struct mat *m, uint32_t r, const uint16_t *xp)
{
	/* e2m1 codes 0..15 as BF16: 0 .5 1 1.5 2 3 4 6, then negated */
	const __m512i lut = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		(short)0xc0c0, (short)0xc080, (short)0xc040, (short)0xc000, (short)0xbfc0,
		(short)0xbf80, (short)0xbf00, (short)0x8000,
		0x40c0, 0x4080, 0x4040, 0x4000, 0x3fc0, 0x3f80, 0x3f00, 0x0000);
	uint64_t row = (uint64_t)m->row0 + r;
	uint32_t n = m->cols;
	const uint8_t *s = (const uint8_t *)m->data + row * (n / 2);
	const uint8_t *sc = (const uint8_t *)m->scale + row * (n / 32);
	__m512 tot = _mm512_setzero_ps();

	for (uint32_t k = 0; k < n; k += 64) {
		/* shard pages are 4 KiB page cache: the hardware prefetcher stops
		 * at each page, so fetch ahead by hand */
		_mm_prefetch((const char *)s + k / 2 + 1024, _MM_HINT_T0);
		__m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(s + k / 2)));
		__m512i lo = _mm512_and_si512(w, _mm512_set1_epi16(15));
		__m512i hi = _mm512_srli_epi16(w, 4);
		__m512bh a = (__m512bh)_mm512_permutexvar_epi16(lo, lut);
		__m512bh b = (__m512bh)_mm512_permutexvar_epi16(hi, lut);
		__m512 acc = _mm512_dpbf16_ps(_mm512_setzero_ps(), a,
					      (__m512bh)_mm512_loadu_si512(xp + k));

		acc = _mm512_dpbf16_ps(acc, b, (__m512bh)_mm512_loadu_si512(xp + k + 32));
		__m512 scv = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(e8m0_lut[sc[k / 32]]),
						  _mm512_set1_ps(e8m0_lut[sc[k / 32 + 1]]));

		tot = _mm512_fmadd_ps(acc, scv, tot);
	}
	return _mm512_reduce_add_ps(tot);
}
#endif
