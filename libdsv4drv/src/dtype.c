// SPDX-License-Identifier: MIT
/*
 * Checkpoint element types and their decoding to float: BF16, F16, F32,
 * F8_E4M3 (e4m3fn), F8_E8M0 (ue8m0 scales), FP4 e2m1 packed two per byte
 * in I8/U8 (low nibble = even element), integers.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "dsv4drv.h"

static const struct {
	const char *name;
	size_t size;
} dtypes[DSV4_DT_COUNT] = {
	[DSV4_DT_BOOL] = { "BOOL", 1 },
	[DSV4_DT_U8] = { "U8", 1 },
	[DSV4_DT_I8] = { "I8", 1 },
	[DSV4_DT_F8_E4M3] = { "F8_E4M3", 1 },
	[DSV4_DT_F8_E8M0] = { "F8_E8M0", 1 },
	[DSV4_DT_I16] = { "I16", 2 },
	[DSV4_DT_U16] = { "U16", 2 },
	[DSV4_DT_F16] = { "F16", 2 },
	[DSV4_DT_BF16] = { "BF16", 2 },
	[DSV4_DT_I32] = { "I32", 4 },
	[DSV4_DT_U32] = { "U32", 4 },
	[DSV4_DT_F32] = { "F32", 4 },
	[DSV4_DT_I64] = { "I64", 8 },
	[DSV4_DT_U64] = { "U64", 8 },
	[DSV4_DT_F64] = { "F64", 8 },
};

const char *dsv4_dtype_name(enum dsv4_dtype dt)
{
	return (unsigned int)dt < DSV4_DT_COUNT ? dtypes[dt].name : "?";
}

size_t dsv4_dtype_size(enum dsv4_dtype dt)
{
	return (unsigned int)dt < DSV4_DT_COUNT ? dtypes[dt].size : 0;
}

int dsv4_dtype_from_name(const char *name, enum dsv4_dtype *dt)
{
	for (unsigned int i = 0; i < DSV4_DT_COUNT; i++) {
		if (!strcmp(name, dtypes[i].name)) {
			*dt = (enum dsv4_dtype)i;
			return 0;
		}
	}
	return -EINVAL;
}

static float bits_to_f32(uint32_t bits)
{
	float f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

float dsv4_bf16_to_f32(uint16_t v)
{
	return bits_to_f32((uint32_t)v << 16);
}

float dsv4_f16_to_f32(uint16_t v)
{
	uint32_t sign = (uint32_t)(v >> 15) << 31;
	uint32_t exp = (v >> 10) & 0x1f, man = v & 0x3ff;

	if (exp == 0x1f)
		return bits_to_f32(sign | 0x7f800000u | (man << 13));
	if (exp == 0)	/* zero or subnormal: man * 2^-24 */
		return (sign ? -1.0f : 1.0f) * ldexpf((float)man, -24);
	return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* e4m3fn: bias 7, no infinities, S.1111.111 = NaN, max 448. */
float dsv4_e4m3_to_f32(uint8_t v)
{
	float sign = (v & 0x80) ? -1.0f : 1.0f;
	unsigned int exp = (v >> 3) & 0xf, man = v & 0x7;

	if (exp == 0xf && man == 0x7)
		return NAN;
	if (exp == 0)
		return sign * ldexpf((float)man, -9);	/* man/8 * 2^-6 */
	return sign * ldexpf((float)(8 + man), (int)exp - 10);
}

/* ue8m0: 2^(e-127); 0xff is NaN.  e == 0 is 2^-127 (a normal scale). */
float dsv4_e8m0_to_f32(uint8_t v)
{
	if (v == 0xff)
		return NAN;
	return ldexpf(1.0f, (int)v - 127);
}

float dsv4_fp4_to_f32(uint8_t nibble)
{
	static const float table[16] = {
		0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
		-0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f,
	};

	return table[nibble & 0xf];
}

int dsv4_decode_f32(enum dsv4_dtype dt, const void *src, size_t count,
		    float *dst)
{
	const uint8_t *b = src;

	for (size_t i = 0; i < count; i++) {
		const uint8_t *e = b + i * dsv4_dtype_size(dt);
		uint16_t u16;
		uint32_t u32;
		uint64_t u64;
		double f64;

		switch (dt) {
		case DSV4_DT_BOOL: dst[i] = e[0] ? 1.0f : 0.0f; break;
		case DSV4_DT_U8: dst[i] = (float)e[0]; break;
		case DSV4_DT_I8: dst[i] = (float)(int8_t)e[0]; break;
		case DSV4_DT_F8_E4M3: dst[i] = dsv4_e4m3_to_f32(e[0]); break;
		case DSV4_DT_F8_E8M0: dst[i] = dsv4_e8m0_to_f32(e[0]); break;
		case DSV4_DT_I16: memcpy(&u16, e, 2); dst[i] = (float)(int16_t)u16; break;
		case DSV4_DT_U16: memcpy(&u16, e, 2); dst[i] = (float)u16; break;
		case DSV4_DT_F16: memcpy(&u16, e, 2); dst[i] = dsv4_f16_to_f32(u16); break;
		case DSV4_DT_BF16: memcpy(&u16, e, 2); dst[i] = dsv4_bf16_to_f32(u16); break;
		case DSV4_DT_I32: memcpy(&u32, e, 4); dst[i] = (float)(int32_t)u32; break;
		case DSV4_DT_U32: memcpy(&u32, e, 4); dst[i] = (float)u32; break;
		case DSV4_DT_F32: memcpy(&dst[i], e, 4); break;
		case DSV4_DT_I64: memcpy(&u64, e, 8); dst[i] = (float)(int64_t)u64; break;
		case DSV4_DT_U64: memcpy(&u64, e, 8); dst[i] = (float)u64; break;
		case DSV4_DT_F64: memcpy(&f64, e, 8); dst[i] = (float)f64; break;
		default: return -EINVAL;
		}
	}
	return 0;
}

void dsv4_fp4_unpack(const uint8_t *src, size_t count, float *dst)
{
	for (size_t i = 0; i < count; i++) {
		uint8_t byte = src[i / 2];

		dst[i] = dsv4_fp4_to_f32(i % 2 ? byte >> 4 : byte & 0xf);
	}
}
