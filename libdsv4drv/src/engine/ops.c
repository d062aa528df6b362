// SPDX-License-Identifier: MIT
/*
 * Small numerics of the V4 forward pass, written to round where DeepSeek's
 * official inference/model.py rounds (spec §3): RMSNorm in FP32, RoPE
 * frequencies and angles in FP32 (torch.outer then polar), the orthonormal
 * Sylvester Hadamard transform, and the activation fake-quantizers.
 */
#include <math.h>
#include <string.h>

#include "engine.h"

void rmsnorm(const float *x, const float *w, uint32_t n, float eps, float *out)
{
	double ss = 0;	/* the sum in double: summation order cannot matter */

	for (uint32_t i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float r = 1.0f / sqrtf((float)(ss / n) + eps);

	for (uint32_t i = 0; i < n; i++)
		out[i] = w ? w[i] * (x[i] * r) : x[i] * r;
}

void rope_freqs(float *freqs, uint32_t rd, double theta, int yarn, const struct dsv4_config *c)
{
	uint32_t half = rd / 2;

	for (uint32_t i = 0; i < half; i++)
		freqs[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)rd);
	if (!yarn || !c->rope_original_max_pos)
		return;
	/* find_correction_range(beta_fast, beta_slow) of the official code */
	double L0 = c->rope_original_max_pos;
	double lo = floor(rd * log(L0 / (c->rope_beta_fast * 2 * M_PI)) / (2 * log(theta)));
	double hi = ceil(rd * log(L0 / (c->rope_beta_slow * 2 * M_PI)) / (2 * log(theta)));

	if (lo < 0)
		lo = 0;
	if (hi > rd - 1)
		hi = rd - 1;
	float flo = (float)lo, fhi = (float)hi;

	if (flo == fhi)
		fhi += 0.001f;
	for (uint32_t i = 0; i < half; i++) {
		float ramp = ((float)i - flo) / (fhi - flo);

		ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
		float smooth = 1 - ramp;

		freqs[i] = freqs[i] / (float)c->rope_factor * (1 - smooth) + freqs[i] * smooth;
	}
}

void rope_cs(const float *freqs, uint32_t rd, uint32_t pos, float *cs)
{
	for (uint32_t i = 0; i < rd / 2; i++) {
		float ang = (float)pos * freqs[i];

		cs[2 * i] = cosf(ang);
		cs[2 * i + 1] = sinf(ang);
	}
}

void rope_apply(float *x, const float *cs, uint32_t rd, int inverse)
{
	for (uint32_t i = 0; i < rd / 2; i++) {
		float a = x[2 * i], b = x[2 * i + 1];
		float c = cs[2 * i], s = inverse ? -cs[2 * i + 1] : cs[2 * i + 1];

		x[2 * i] = a * c - b * s;
		x[2 * i + 1] = a * s + b * c;
	}
}

void hadamard(float *x, uint32_t n)
{
	for (uint32_t h = 1; h < n; h *= 2)
		for (uint32_t i = 0; i < n; i += 2 * h)
			for (uint32_t j = i; j < i + h; j++) {
				float a = x[j], b = x[j + h];

				x[j] = a + b;
				x[j + h] = a - b;
			}
	float s = 1.0f / sqrtf((float)n);

	for (uint32_t i = 0; i < n; i++)
		x[i] *= s;
}

void fakequant_fp8(float *x, uint32_t n, uint32_t block)
{
	uint8_t q[128];
	float s;

	for (uint32_t b = 0; b < n; b += block) {
		dsv4_act_quant_fp8(x + b, block, block, q, &s);
		for (uint32_t i = 0; i < block; i++)
			x[b + i] = dsv4_e4m3_to_f32(q[i]) * s;
	}
}

void fakequant_fp4(float *x, uint32_t n)
{
	dsv4_act_fakequant_fp4(x, n, x);
}

float bf16_round(float x)
{
	uint32_t u;

	memcpy(&u, &x, sizeof(u));
	if ((u & 0x7fffffff) > 0x7f800000)
		return x;	/* NaN */
	u += 0x7fff + ((u >> 16) & 1);
	u &= 0xffff0000u;
	memcpy(&x, &u, sizeof(u));
	return x;
}

uint16_t bf16_bits(float x)
{
	float r = bf16_round(x);
	uint32_t u;

	memcpy(&u, &r, sizeof(u));
	return (uint16_t)(u >> 16);
}
