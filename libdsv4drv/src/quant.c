// SPDX-License-Identifier: MIT
/*
 * Quantizers in DeepSeek V4's formats: e4m3fn with round-to-nearest-even,
 * e2m1 (FP4) rounded to nearest with ties to the even mantissa, and
 * power-of-two (ue8m0) block scales rounded up, as the official
 * kernel.py does: s = amax * float(1/max), then up to the next power of
 * two through the exponent bits.
 */
#include <math.h>
#include <string.h>

#include "dsv4drv.h"

static uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

uint8_t dsv4_f32_to_e4m3(float x)
{
	uint8_t sign = signbit(x) ? 0x80 : 0;
	float a = fabsf(x);
	int e;

	if (isnan(x))
		return 0x7f;
	if (a >= 464.0f)	/* beyond the rounding range of 448: saturate */
		return sign | 0x7e;
	if (a < 0x1p-6f) {
		/* subnormal: multiples of 2^-9, RNE on the integer count */
		float m = nearbyintf(a * 512.0f);	/* FE_TONEAREST: ties to even */

		return sign | (uint8_t)m;		/* m == 8 is the first normal */
	}
	frexpf(a, &e);		/* a = f * 2^e, f in [0.5, 1) */
	e -= 1;			/* a = 1.xxx * 2^e */
	float m = nearbyintf(ldexpf(a, 3 - e));	/* 8..16 */

	if (m == 16.0f) {
		m = 8.0f;
		e++;
	}
	if (e + 7 > 15 || (e + 7 == 15 && m > 14.0f))
		return sign | 0x7e;
	return sign | (uint8_t)((e + 7) << 3) | (uint8_t)(m - 8.0f);
}

uint8_t dsv4_f32_to_e2m1(float x)
{
	static const float grid[8] = { 0, 0.5f, 1, 1.5f, 2, 3, 4, 6 };
	uint8_t sign = signbit(x) ? 8 : 0;
	float a = fabsf(x);
	uint8_t best = 0;

	if (isnan(x))
		return 0;
	for (uint8_t i = 1; i < 8; i++) {
		float d = fabsf(a - grid[i]), db = fabsf(a - grid[best]);

		/* ties go to the even code (even mantissa) */
		if (d < db || (d == db && !(i & 1)))
			best = i;
	}
	return sign | best;
}

uint8_t dsv4_e8m0_ceil(float amax, float inv_max, float floor_amax)
{
	float s = fmaxf(amax, floor_amax) * inv_max;
	uint32_t u = f32_bits(s);
	int exp = (int)((u >> 23) & 0xff);

	if (u & 0x7fffff)
		exp++;		/* not a power of two: round up */
	if (exp > 254)
		exp = 254;
	return (uint8_t)exp;	/* e8m0 byte = biased exponent */
}

void dsv4_quant_fp8_blocks(const float *w, uint64_t rows, uint64_t cols, uint32_t block,
			   uint8_t *q, uint8_t *scales)
{
	uint64_t sc = (cols + block - 1) / block;

	for (uint64_t br = 0; br < rows; br += block) {
		for (uint64_t bc = 0; bc < cols; bc += block) {
			uint64_t r_end = br + block < rows ? br + block : rows;
			uint64_t c_end = bc + block < cols ? bc + block : cols;
			float amax = 0;

			for (uint64_t r = br; r < r_end; r++)
				for (uint64_t c = bc; c < c_end; c++)
					amax = fmaxf(amax, fabsf(w[r * cols + c]));
			uint8_t e = dsv4_e8m0_ceil(amax, 1.0f / 448.0f, 1e-4f);
			float inv = 1.0f / dsv4_e8m0_to_f32(e);

			scales[(br / block) * sc + bc / block] = e;
			for (uint64_t r = br; r < r_end; r++)
				for (uint64_t c = bc; c < c_end; c++) {
					float v = fminf(fmaxf(w[r * cols + c] * inv, -448.0f), 448.0f);

					q[r * cols + c] = dsv4_f32_to_e4m3(v);
				}
		}
	}
}

static float absmax(const float *x, size_t n)
{
	float amax = 0;

	for (size_t i = 0; i < n; i++)
		amax = fmaxf(amax, fabsf(x[i]));
	return amax;
}

/* The e8m0 scale of one 32-value FP4 block, and the e2m1 code of x/scale. */
static uint8_t fp4_block_scale(const float *x)
{
	return dsv4_e8m0_ceil(absmax(x, 32), 1.0f / 6.0f, 6.0f * 0x1p-126f);
}

static uint8_t fp4_code(float x, float inv)
{
	return dsv4_f32_to_e2m1(fminf(fmaxf(x * inv, -6.0f), 6.0f));
}

void dsv4_quant_fp4_rows(const float *w, uint64_t rows, uint64_t cols,
			 uint8_t *packed, uint8_t *scales)
{
	for (uint64_t r = 0; r < rows; r++) {
		for (uint64_t bc = 0; bc < cols; bc += 32) {
			const float *x = w + r * cols + bc;
			uint8_t e = fp4_block_scale(x);
			float inv = 1.0f / dsv4_e8m0_to_f32(e);

			scales[r * (cols / 32) + bc / 32] = e;
			for (int i = 0; i < 32; i += 2)
				packed[(r * cols + bc + (uint64_t)i) / 2] =
					(uint8_t)(fp4_code(x[i], inv) | fp4_code(x[i + 1], inv) << 4);
		}
	}
}

void dsv4_act_quant_fp8(const float *x, size_t n, uint32_t block, uint8_t *q, float *scales)
{
	for (size_t b = 0; b < n; b += block) {
		float s = dsv4_e8m0_to_f32(dsv4_e8m0_ceil(absmax(x + b, block), 1.0f / 448.0f, 1e-4f));

		scales[b / block] = s;
		for (size_t i = b; i < b + block; i++)
			q[i] = dsv4_f32_to_e4m3(fminf(fmaxf(x[i] / s, -448.0f), 448.0f));
	}
}

void dsv4_act_fakequant_fp4(const float *x, size_t n, float *out)
{
	for (size_t b = 0; b < n; b += 32) {
		float s = dsv4_e8m0_to_f32(fp4_block_scale(x + b));
		float inv = 1.0f / s;

		for (size_t i = b; i < b + 32; i++)
			out[i] = dsv4_fp4_to_f32(fp4_code(x[i], inv)) * s;
	}
}
