// SPDX-License-Identifier: MIT
/*
 * The tokenizer against HF tokenizers 0.23.2 (tests/fixtures/tokenizer/:
 * expected.json from tools/tokenizer/expect.py on the GPU machine): every
 * case's ids with and without special-token matching, every decode, and
 * random id sequences decoded (lossy UTF-8).  Then UTF-8 handling, and
 * malformed tokenizer.json files refused with a reason.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

#define TOK DSV4_FIXTURES "/tokenizer/tokenizer.json"
#define CASES DSV4_FIXTURES "/tokenizer/cases.json"
#define EXPECTED DSV4_FIXTURES "/tokenizer/expected.json"

static char *case_text(json_t *c, size_t *len)
{
	const char *hex = json_string_value(json_object_get(c, "hex"));
	char *out;

	if (!hex) {
		*len = json_string_length(json_object_get(c, "text"));
		out = malloc(*len + 1);
		memcpy(out, json_string_value(json_object_get(c, "text")), *len + 1);
		return out;
	}
	*len = strlen(hex) / 2;
	out = malloc(*len + 1);
	for (size_t i = 0; i < *len; i++)
		sscanf(hex + 2 * i, "%2hhx", (unsigned char *)&out[i]);
	out[*len] = 0;
	return out;
}

/* index of the first difference, or -1 */
static long first_diff(const int32_t *ids, size_t n, json_t *want)
{
	size_t m = json_array_size(want);

	for (size_t i = 0; i < n && i < m; i++)
		if (ids[i] != json_integer_value(json_array_get(want, i)))
			return (long)i;
	return n == m ? -1 : (long)(n < m ? n : m);
}

FIXTURE(hf) {
	struct dsv4_tokenizer *tok;
	json_t *cases, *expected;
};

FIXTURE_SETUP(hf)
{
	char err[512] = "";

	ASSERT_EQ(0, dsv4_tokenizer_load(TOK, &self->tok, err, sizeof(err))) TH_LOG("%s", err);
	self->cases = json_load_file(CASES, JSON_ALLOW_NUL, NULL);
	self->expected = json_load_file(EXPECTED, JSON_ALLOW_NUL, NULL);
	ASSERT_NE(NULL, self->cases);
	ASSERT_NE(NULL, self->expected);
}

FIXTURE_TEARDOWN(hf)
{
	dsv4_tokenizer_free(self->tok);
	json_decref(self->cases);
	json_decref(self->expected);
}

TEST_F(hf, ids_equal_hf_for_every_case)
{
	json_t *cs = json_object_get(self->cases, "cases");
	json_t *ex = json_object_get(self->expected, "cases");
	size_t i, total = 0, bad = 0;
	json_t *c;

	ASSERT_EQ(json_array_size(cs), json_array_size(ex));
	ASSERT_GE(json_array_size(cs), 240);
	json_array_foreach(cs, i, c) {
		json_t *e = json_array_get(ex, i);
		const char *name = json_string_value(json_object_get(c, "name"));
		static const char *const keys[] = { "ids", "ids_nospecial" };
		size_t len;
		char *text = case_text(c, &len);

		ASSERT_STREQ(name, json_string_value(json_object_get(e, "name")));
		for (int k = 0; k < 2; k++) {
			int32_t *ids;
			size_t n;
			char err[256];
			long d;

			ASSERT_EQ(0, dsv4_tokenize(self->tok, text, len, k ? 0 : DSV4_TOK_SPECIAL,
						   &ids, &n, err, sizeof(err)));
			d = first_diff(ids, n, json_object_get(e, keys[k]));
			if (d >= 0) {
				bad++;
				TH_LOG("%s (%s): first difference at %ld: got %d, HF %lld (%zu vs %zu ids)",
				       name, keys[k], d, d < (long)n ? ids[d] : -1,
				       (long long)json_integer_value(json_array_get(
					       json_object_get(e, keys[k]), d)),
				       n, json_array_size(json_object_get(e, keys[k])));
			}
			total += n;
			free(ids);
		}
		free(text);
	}
	EXPECT_EQ(0, bad);
	TH_LOG("%zu ids over %zu cases equal HF's", total, json_array_size(cs));
}

static void check_decode(struct __test_metadata *_metadata, struct dsv4_tokenizer *tok, json_t *e,
			 const char *name, size_t *bad)
{
	json_t *want_ids = json_object_get(e, "ids");
	size_t n = json_array_size(want_ids);
	int32_t *ids = malloc((n + 1) * sizeof(*ids));
	static const char *const keys[] = { "decoded", "decoded_skip" };

	for (size_t i = 0; i < n; i++)
		ids[i] = (int32_t)json_integer_value(json_array_get(want_ids, i));
	for (int k = 0; k < 2; k++) {
		char *text, err[256];
		size_t len;
		json_t *want = json_object_get(e, keys[k]);

		ASSERT_EQ(0, dsv4_detokenize(tok, ids, n, k ? DSV4_DETOK_SKIP_SPECIAL : 0, &text, &len,
					     err, sizeof(err)));
		if (len != json_string_length(want) || memcmp(text, json_string_value(want), len)) {
			(*bad)++;
			TH_LOG("%s (%s): decode differs from HF's", name, keys[k]);
		}
		free(text);
	}
	free(ids);
}

TEST_F(hf, decode_equals_hf)
{
	json_t *ex = json_object_get(self->expected, "cases");
	json_t *rnd = json_object_get(self->expected, "random_decode");
	size_t i, bad = 0;
	json_t *e;

	json_array_foreach(ex, i, e)
		check_decode(_metadata, self->tok, e, json_string_value(json_object_get(e, "name")),
			     &bad);
	ASSERT_GE(json_array_size(rnd), 100);
	json_array_foreach(rnd, i, e)
		check_decode(_metadata, self->tok, e, "random ids", &bad);
	EXPECT_EQ(0, bad);
}

TEST_F(hf, round_trip_of_valid_text)
{
	json_t *cs = json_object_get(self->cases, "cases");
	size_t i;
	json_t *c;

	json_array_foreach(cs, i, c) {
		size_t len, n, back_len;
		char *text, *back, err[256];
		int32_t *ids;

		if (json_object_get(c, "hex"))
			continue;
		text = case_text(c, &len);
		ASSERT_EQ(0, dsv4_tokenize(self->tok, text, len, DSV4_TOK_SPECIAL, &ids, &n, err,
					   sizeof(err)));
		ASSERT_EQ(0, dsv4_detokenize(self->tok, ids, n, 0, &back, &back_len, err, sizeof(err)));
		EXPECT_EQ(len, back_len);
		EXPECT_EQ(0, memcmp(text, back, len)) TH_LOG("%s", json_string_value(json_object_get(c, "name")));
		free(text);
		free(back);
		free(ids);
	}
}

TEST_F(hf, lookups_and_specials)
{
	size_t len;

	EXPECT_EQ(0, dsv4_token_lookup(self->tok, "<｜begin▁of▁sentence｜>"));
	EXPECT_EQ(1, dsv4_token_lookup(self->tok, "<｜end▁of▁sentence｜>"));
	EXPECT_LE(0, dsv4_token_lookup(self->tok, "<｜User｜>"));
	EXPECT_EQ(-1, dsv4_token_lookup(self->tok, "no such token at all"));
	EXPECT_TRUE(dsv4_token_is_special(self->tok, 1));
	EXPECT_FALSE(dsv4_token_is_special(self->tok, dsv4_token_lookup(self->tok, "</think>")));
	EXPECT_EQ(8015u, dsv4_tokenizer_size(self->tok));
	EXPECT_STREQ("</think>", dsv4_token_bytes(self->tok, dsv4_token_lookup(self->tok, "</think>"),
						  &len));
	EXPECT_EQ(NULL, dsv4_token_bytes(self->tok, 8015, &len));
	EXPECT_EQ(NULL, dsv4_token_bytes(self->tok, -1, &len));
}

TEST_F(hf, a_megabyte_of_mixed_text)
{
	json_t *cs = json_object_get(self->cases, "cases");
	size_t cap = 1 << 20, len = 0, n, i;
	char *big = malloc(cap + 4096), err[256];
	int32_t *ids;
	json_t *c;
	struct timespec t0, t1;

	for (int full = 0; !full;)
		json_array_foreach(cs, i, c) {
			const char *s = json_string_value(json_object_get(c, "text"));
			size_t l = s ? strlen(s) : 0;

			if (len + l > cap) {
				full = 1;
				break;
			}
			memcpy(big + len, s ? s : "", l);
			len += l;
		}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, dsv4_tokenize(self->tok, big, len, DSV4_TOK_SPECIAL, &ids, &n, err, sizeof(err)));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TH_LOG("%zu bytes -> %zu ids in %.3f s (ASan build)", len, n,
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	EXPECT_GT(n, len / 8);
	free(ids);
	free(big);
}

TEST(utf8_replacement_per_maximal_subpart)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
		{ "abc\x80" "def", 7, "abc\xef\xbf\xbd" "def" },
		{ "caf\xc3", 4, "caf\xef\xbf\xbd" },
		{ "\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd" },			/* overlong: two */
		{ "\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },	/* surrogate */
		{ "\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xe4\xbd", 2, "\xef\xbf\xbd" },				/* one subpart */
		{ "\xf0\x9f\x98", 3, "\xef\xbf\xbd" },
		{ "\xe4\xbd" "a", 3, "\xef\xbf\xbd" "a" },
		{ "\xff\xfe", 2, "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "ok \xe2\x82\xac", 6, "ok \xe2\x82\xac" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n;
		char *s = dsv4_utf8_sanitize(cases[i].in, cases[i].len, &n);

		EXPECT_EQ(strlen(cases[i].out), n) TH_LOG("case %zu", i);
		EXPECT_EQ(0, memcmp(s, cases[i].out, n)) TH_LOG("case %zu", i);
		free(s);
	}
}

TEST(utf8_complete_prefix)
{
	EXPECT_EQ(3u, dsv4_utf8_complete_prefix("abc", 3));
	EXPECT_EQ(2u, dsv4_utf8_complete_prefix("ab\xe4\xbd", 4));	/* 你 unfinished */
	EXPECT_EQ(5u, dsv4_utf8_complete_prefix("ab\xe4\xbd\xa0", 5));
	EXPECT_EQ(1u, dsv4_utf8_complete_prefix("a\xf0\x9f\x98", 4));
	EXPECT_EQ(3u, dsv4_utf8_complete_prefix("a\xff" "b", 3));	/* bad stays bad */
	EXPECT_EQ(2u, dsv4_utf8_complete_prefix("a\x80", 2));
	EXPECT_EQ(0u, dsv4_utf8_complete_prefix("\xe4", 1));
}

static const char *bpe_model =
	"\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
	"\"merges\": [[\"a\", \"b\"]]}";

static void refused(struct __test_metadata *_metadata, const char *json, const char *why)
{
	struct dsv4_tokenizer *t = NULL;
	char err[512] = "";

	EXPECT_NE(0, dsv4_tokenizer_parse(json, strlen(json), &t, err, sizeof(err)))
		TH_LOG("accepted: %s", json);
	EXPECT_EQ(NULL, t);
	EXPECT_NE(NULL, strstr(err, why)) TH_LOG("'%s' lacks '%s'", err, why);
	dsv4_tokenizer_free(t);
}

TEST(malformed_tokenizer_json_is_refused)
{
	char buf[1024];
	struct dsv4_tokenizer *t = NULL;
	char err[256];
	int32_t *ids;
	size_t n;

	refused(_metadata, "", "tokenizer.json");
	refused(_metadata, "[1,2]", "not a JSON object");
	refused(_metadata, "{}", "model type");
	refused(_metadata, "{\"model\": {\"type\": \"WordPiece\"}}", "WordPiece");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}",
		"vocab object");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", "empty");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}",
		"valid id");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}, \"merges\": []}}",
		"valid id");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
		"used twice");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\", \"q\"]]}}",
		"not in the vocab");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [5]}}",
		"merges[0]");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {\"a\": 0}, \"merges\": []}}",
		"dropout");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0}, \"merges\": []}}",
		"byte_fallback");
	snprintf(buf, sizeof(buf), "{%s, \"normalizer\": {\"type\": \"NFC\"}}", bpe_model);
	refused(_metadata, buf, "NFC");
	snprintf(buf, sizeof(buf), "{%s, \"decoder\": {\"type\": \"WordPiece\"}}", bpe_model);
	refused(_metadata, buf, "decoder");
	snprintf(buf, sizeof(buf), "{%s, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", bpe_model);
	refused(_metadata, buf, "Whitespace");
	snprintf(buf, sizeof(buf), "{%s, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
		 "{\"Regex\": \"([a\"}, \"behavior\": \"Isolated\"}}", bpe_model);
	refused(_metadata, buf, "regex");
	snprintf(buf, sizeof(buf), "{%s, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
		 "{\"Regex\": \"a\"}, \"behavior\": \"Sideways\"}}", bpe_model);
	refused(_metadata, buf, "Sideways");
	snprintf(buf, sizeof(buf), "{%s, \"added_tokens\": [{\"id\": 7, \"content\": \"<x>\", "
		 "\"lstrip\": true}]}", bpe_model);
	refused(_metadata, buf, "lstrip");
	snprintf(buf, sizeof(buf), "{%s, \"added_tokens\": [{\"id\": \"7\", \"content\": \"<x>\"}]}",
		 bpe_model);
	refused(_metadata, buf, "added_tokens[0]");

	/* and a minimal valid one works: "aab" -> a, ab */
	snprintf(buf, sizeof(buf), "{%s, \"added_tokens\": [{\"id\": 3, \"content\": \"<s>\", "
		 "\"special\": true}]}", bpe_model);
	ASSERT_EQ(0, dsv4_tokenizer_parse(buf, strlen(buf), &t, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, dsv4_tokenize(t, "aab<s>b", 7, DSV4_TOK_SPECIAL, &ids, &n, err, sizeof(err)));
	ASSERT_EQ(4u, n);
	EXPECT_EQ(0, ids[0]);
	EXPECT_EQ(2, ids[1]);
	EXPECT_EQ(3, ids[2]);
	EXPECT_EQ(1, ids[3]);
	free(ids);
	dsv4_tokenizer_free(t);
}

TEST(split_behaviours)
{
	/* a vocab of single letters plus "-", no merges: the ids show the pieces
	 * only through BPE, so check pieces via merges that cross a boundary */
	static const char *const behaviours[] = { "Removed", "Isolated", "MergedWithPrevious",
						  "MergedWithNext", "Contiguous" };
	/* "a-b--c": which of "a-", "-b", "--" survive as whole pieces shows in
	 * whether the merges "a -", "- b", "- -" apply */
	static const int32_t want[5][8] = {
		{ 0, 1, 2, -1 },		/* Removed: a b c */
		{ 0, 3, 1, 3, 3, 2, -1 },	/* Isolated: a - b - - c */
		{ 4, 6, 3, 2, -1 },		/* MergedWithPrevious: a- b- - c */
		{ 0, 5, 3, 7, -1 },		/* MergedWithNext: a -b - -c */
		{ 0, 3, 1, 8, 2, -1 },		/* Contiguous: a - b -- c */
	};

	for (int b = 0; b < 5; b++) {
		char buf[1024], err[256];
		struct dsv4_tokenizer *t;
		int32_t *ids;
		size_t n;

		snprintf(buf, sizeof(buf),
			 "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, "
			 "\"-\": 3, \"a-\": 4, \"-b\": 5, \"b-\": 6, \"-c\": 7, \"--\": 8, \"b--\": 9}, "
			 "\"merges\": [[\"a\", \"-\"], [\"-\", \"b\"], [\"b\", \"-\"], [\"-\", \"c\"], "
			 "[\"-\", \"-\"]]}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
			 "{\"String\": \"-\"}, \"behavior\": \"%s\", \"invert\": false}}", behaviours[b]);
		ASSERT_EQ(0, dsv4_tokenizer_parse(buf, strlen(buf), &t, err, sizeof(err))) TH_LOG("%s", err);
		ASSERT_EQ(0, dsv4_tokenize(t, "a-b--c", 6, 0, &ids, &n, err, sizeof(err)));
		for (size_t i = 0; i < n || want[b][i] >= 0; i++) {
			EXPECT_EQ(want[b][i], i < n ? ids[i] : -1) TH_LOG("%s at %zu", behaviours[b], i);
			if (i >= n || want[b][i] < 0)
				break;
		}
		free(ids);
		dsv4_tokenizer_free(t);
	}
}

TEST_HARNESS_MAIN
