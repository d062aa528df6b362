// SPDX-License-Identifier: MIT
/*
 * The safetensors parser and dtype decoders: every dtype decodes to what
 * PyTorch reads from the same file (tests/fixtures/dtypes*.safetensors),
 * and hostile headers are rejected with a clear error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

/* A safetensors image: length, @json, then @data_len zero bytes. */
static uint8_t *image(const char *json, size_t data_len, size_t *len)
{
	size_t hlen = strlen(json);
	uint8_t *b = calloc(1, 8 + hlen + data_len);

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
	memcpy(b + 8, json, hlen);
	*len = 8 + hlen + data_len;
	return b;
}

static int parse(const char *json, size_t data_len, char *err)
{
	struct dsv4_st_header h;
	size_t len;
	uint8_t *b = image(json, data_len, &len);
	int ret = dsv4_st_parse(b, len, len, &h, err, 256);

	if (!ret)
		dsv4_st_header_free(&h);
	free(b);
	return ret;
}

TEST(valid_header)
{
	const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
		"\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
		"\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
		"\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[24,24]}}";
	struct dsv4_st_header h;
	const struct dsv4_st_tensor *t;
	char err[256] = "";
	size_t len;
	uint8_t *b = image(json, 32, &len);

	ASSERT_EQ(0, dsv4_st_parse(b, len, len, &h, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(3u, h.count);
	EXPECT_EQ(8 + strlen(json), h.data_offset);
	t = dsv4_st_find(&h, "a");
	ASSERT_NE(NULL, t);
	EXPECT_EQ(DSV4_DT_F32, t->dtype);
	EXPECT_EQ(2u, t->ndim);
	EXPECT_EQ(3u, t->shape[1]);
	EXPECT_EQ(6u, t->count);
	EXPECT_EQ(h.data_offset, t->offset);
	t = dsv4_st_find(&h, "b");
	ASSERT_NE(NULL, t);
	EXPECT_EQ(h.data_offset + 24, t->offset);
	EXPECT_EQ(8u, t->nbytes);
	EXPECT_EQ(NULL, dsv4_st_find(&h, "c"));
	EXPECT_EQ(NULL, dsv4_st_find(&h, "__metadata__"));
	dsv4_st_header_free(&h);
	free(b);
}

struct bad_case {
	const char *json;
	size_t data;
	int err;
	const char *says;
};

TEST(hostile_headers_rejected)
{
	static const struct bad_case cases[] = {
		{ "not json", 0, -EINVAL, "header JSON" },
		{ "[1,2]", 0, -EINVAL, "not a JSON object" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -EINVAL, "duplicate" },
		{ "{\"\xff\xfe\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -EINVAL, "header JSON" },
		{ "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -EINVAL, "unknown dtype" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -EINVAL, "shape[0]" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, -EINVAL, "shape[0]" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, -EINVAL, "dimensions" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, -EINVAL, "2 values" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, -EINVAL, "bad data_offsets" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 3, -ERANGE, "beyond the data area" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, -EINVAL, "needs 8 bytes" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, -EOVERFLOW, "overflows" },
		{ "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,4]}}", 4, -EOVERFLOW, "overflows" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 4, -EINVAL, "header JSON" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -EINVAL, "overlap" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, -EINVAL, "unknown field" },
		{ "{\"a\":[1]}", 0, -EINVAL, "not an object" },
		{ "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -EINVAL, "string dtype" },
		{ "{\"__metadata__\":{\"k\":1}}", 0, -EINVAL, "not a string" },
		{ "{\"__metadata__\":[]}", 0, -EINVAL, "not an object" },
		{ "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -EINVAL, "empty tensor name" },
		{ "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -EINVAL, "header JSON" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";

		EXPECT_EQ(cases[i].err, parse(cases[i].json, cases[i].data, err)) {
			TH_LOG("case %zu: %s -> %s", i, cases[i].json, err);
		}
		EXPECT_NE(NULL, strstr(err, cases[i].says)) {
			TH_LOG("case %zu: message '%s' lacks '%s'", i, err, cases[i].says);
		}
	}
}

TEST(bad_lengths_rejected)
{
	struct dsv4_st_header h;
	char err[256];
	uint8_t b[64] = { 0 };
	size_t len;
	uint8_t *img;

	EXPECT_EQ(-EINVAL, dsv4_st_parse(b, 5, 5, &h, err, sizeof(err)));	/* < 8 bytes */
	EXPECT_EQ(-EINVAL, dsv4_st_parse(b, 64, 64, &h, err, sizeof(err)));	/* length 0 */
	b[0] = 100;	/* header of 100 bytes in a 64-byte file */
	EXPECT_EQ(-EINVAL, dsv4_st_parse(b, 64, 64, &h, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "does not fit"));
	memset(b, 0xff, 8);	/* 2^64 - 1 */
	EXPECT_EQ(-EINVAL, dsv4_st_parse(b, 64, 64, &h, err, sizeof(err)));
	img = image("{}", 0, &len);	/* valid, no tensors */
	ASSERT_EQ(0, dsv4_st_parse(img, len, len, &h, err, sizeof(err)));
	EXPECT_EQ(0u, h.count);
	EXPECT_EQ(NULL, dsv4_st_find(&h, "x"));
	dsv4_st_header_free(&h);
	/* The caller has fewer bytes than the header claims: refused. */
	EXPECT_EQ(-EINVAL, dsv4_st_parse(img, 9, len, &h, err, sizeof(err)));
	free(img);
}

TEST(open_errors_name_the_file)
{
	struct dsv4_st_file *f = (void *)1;
	char err[512], path[] = "/tmp/dsv4-st-XXXXXX";
	int fd;

	EXPECT_EQ(-ENOENT, dsv4_st_open("/nonexistent/model.safetensors", &f, err, sizeof(err)));
	EXPECT_EQ(NULL, f);
	EXPECT_NE(NULL, strstr(err, "/nonexistent/model.safetensors"));
	EXPECT_EQ(-EINVAL, dsv4_st_open("/tmp", &f, err, sizeof(err)));
	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	ASSERT_EQ(11, write(fd, "\x03\0\0\0\0\0\0\0{}x", 11));
	close(fd);
	EXPECT_EQ(-EINVAL, dsv4_st_open(path, &f, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, path)) TH_LOG("%s", err);
	EXPECT_NE(NULL, strstr(err, "header JSON"));
	unlink(path);
}

/* Decodes @name from the fixture and compares with PyTorch's float32. */
static int compare_with_torch(struct __test_metadata *_metadata,
			      struct dsv4_st_file *f, struct dsv4_st_file *want,
			      const char *name)
{
	char wname[128];
	const struct dsv4_st_tensor *t = dsv4_st_find(&f->header, name), *w;
	float *got;
	const float *ref;
	size_t n, bad = 0;

	snprintf(wname, sizeof(wname), "%s.f32", name);
	w = dsv4_st_find(&want->header, wname);
	if (!t || !w || w->dtype != DSV4_DT_F32)
		return -1;
	n = !strcmp(name, "fp4.all") ? t->count * 2 : t->count;
	if (w->count != n)
		return -2;
	got = calloc(n, sizeof(*got));
	if (!strcmp(name, "fp4.all"))
		dsv4_fp4_unpack(dsv4_st_data(f, t), n, got);
	else if (dsv4_decode_f32(t->dtype, dsv4_st_data(f, t), n, got))
		return -3;
	ref = dsv4_st_data(want, w);
	for (size_t i = 0; i < n; i++) {
		float r;

		memcpy(&r, &ref[i], sizeof(r));	/* mmap offsets need not be aligned */
		/* Same value, same NaN-ness, same sign of zero. */
		if (isnan(r) ? !isnan(got[i]) :
		    (memcmp(&r, &got[i], sizeof(r)) && r != got[i])) {
			if (bad++ < 5)
				TH_LOG("%s[%zu]: torch %a, dsv4 %a", name, i, r, got[i]);
		}
		if (!isnan(r) && r == 0 && signbit(r) != signbit(got[i]) && bad++ < 5)
			TH_LOG("%s[%zu]: sign of zero differs", name, i);
	}
	free(got);
	return (int)bad;
}

TEST(dtypes_decode_like_pytorch)
{
	static const char *const names[] = {
		"e4m3.all", "e8m0.all", "bf16.sample", "f16.sample", "f32.randn",
		"i8.all", "u8.all", "i64.tid2eid", "i32.vals", "f64.randn",
		"bool.vals", "fp4.all",
	};
	struct dsv4_st_file *f, *want;
	char err[512];

	ASSERT_EQ(0, dsv4_st_open(DSV4_FIXTURES "/dtypes.safetensors", &f, err, sizeof(err)))
		TH_LOG("%s", err);
	ASSERT_EQ(0, dsv4_st_open(DSV4_FIXTURES "/dtypes-expected.safetensors", &want, err, sizeof(err)))
		TH_LOG("%s", err);
	EXPECT_EQ(sizeof(names) / sizeof(names[0]), f->header.count);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		EXPECT_EQ(0, compare_with_torch(_metadata, f, want, names[i])) {
			TH_LOG("%s differs from PyTorch", names[i]);
		}
	}
	dsv4_st_close(f);
	dsv4_st_close(want);
}

TEST(decoder_spot_values)
{
	EXPECT_EQ(448.0f, dsv4_e4m3_to_f32(0x7e));
	EXPECT_EQ(-448.0f, dsv4_e4m3_to_f32(0xfe));
	EXPECT_TRUE(isnan(dsv4_e4m3_to_f32(0x7f)));
	EXPECT_EQ(0x1p-9f, dsv4_e4m3_to_f32(0x01));	/* smallest subnormal */
	EXPECT_EQ(1.0f, dsv4_e8m0_to_f32(127));
	EXPECT_EQ(0x1p-127f, dsv4_e8m0_to_f32(0));
	EXPECT_TRUE(isnan(dsv4_e8m0_to_f32(0xff)));
	EXPECT_EQ(6.0f, dsv4_fp4_to_f32(7));
	EXPECT_EQ(-0.5f, dsv4_fp4_to_f32(9));
	EXPECT_EQ(-2.0f, dsv4_bf16_to_f32(0xc000));
	EXPECT_EQ(65504.0f, dsv4_f16_to_f32(0x7bff));
	EXPECT_EQ(-EINVAL, dsv4_decode_f32(DSV4_DT_COUNT, "", 1, NULL));
	EXPECT_EQ(0u, dsv4_dtype_size(DSV4_DT_COUNT));
}

TEST_HARNESS_MAIN
