// SPDX-License-Identifier: MIT
/*
 * The tokenizer against HF tokenizers 0.23.2.
 *
 * tests/fixtures/tokenizer/ (expected.json from tools/tokenizer/expect.py):
 * every case's ids with and without special-token matching, every decode,
 * and random id sequences decoded (lossy UTF-8).  Then variants of the
 * fixture tokenizer (other pre-tokenizers, Split behaviours and regex
 * syntax, added tokens of both normalized kinds, ignore_merges, merges as
 * strings, unk_token): their ids below were produced by HF on the same
 * JSON.  Then the pre-tokenizer's pieces, UTF-8 handling, and malformed
 * tokenizer.json files refused with a reason.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsv4drv.h"
#include "../../libdsv4drv/src/text/text.h"
#include "kselftest_harness.h"

#define TOK DSV4_FIXTURES "/tokenizer/tokenizer.json"
#define CASES DSV4_FIXTURES "/tokenizer/cases.json"
#define EXPECTED DSV4_FIXTURES "/tokenizer/expected.json"

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

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

/* index of the first difference between ids and a JSON list, or -1 */
static long first_diff(const int32_t *ids, size_t n, json_t *want)
{
	size_t m = json_array_size(want);

	for (size_t i = 0; i < n && i < m; i++)
		if (ids[i] != json_integer_value(json_array_get(want, i)))
			return (long)i;
	return n == m ? -1 : (long)(n < m ? n : m);
}

/* index of the first differing byte, or -1 */
static long first_byte_diff(const char *a, size_t alen, const char *b, size_t blen)
{
	for (size_t i = 0; i < alen && i < blen; i++)
		if (a[i] != b[i])
			return (long)i;
	return alen == blen ? -1 : (long)(alen < blen ? alen : blen);
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
	size_t i, total = 0, bad = 0, compared = 0;
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
			json_t *want = json_object_get(e, keys[k]);
			int32_t *ids;
			size_t n;
			char err[256];
			long d;

			ASSERT_EQ(0, dsv4_tokenize(self->tok, text, len, k ? 0 : DSV4_TOK_SPECIAL,
						   &ids, &n, err, sizeof(err))) TH_LOG("%s: %s", name, err);
			d = first_diff(ids, n, want);
			if (d >= 0 && !bad++)
				TH_LOG("%s (%s): first difference at id %ld: got %d, HF %lld (%zu vs %zu ids)",
				       name, keys[k], d, d < (long)n ? ids[d] : -1,
				       (long long)json_integer_value(json_array_get(want, (size_t)d)), n,
				       json_array_size(want));
			total += n;
			compared++;
			free(ids);
		}
		free(text);
	}
	EXPECT_EQ(0, bad);
	TH_LOG("%zu encodings (%zu ids) of %zu cases equal HF's", compared, total,
	       json_array_size(cs));
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
		json_t *want = json_object_get(e, keys[k]);
		char *text, err[256];
		size_t len;
		long d;

		ASSERT_EQ(0, dsv4_detokenize(tok, ids, n, k ? DSV4_DETOK_SKIP_SPECIAL : 0, &text, &len,
					     err, sizeof(err))) TH_LOG("%s: %s", name, err);
		d = first_byte_diff(text, len, json_string_value(want), json_string_length(want));
		if (d >= 0 && !(*bad)++)
			TH_LOG("%s (%s): decode differs from HF's at byte %ld", name, keys[k], d);
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
	json_array_foreach(rnd, i, e) {
		char name[48];

		snprintf(name, sizeof(name), "random_decode[%zu]", i);
		check_decode(_metadata, self->tok, e, name, &bad);
	}
	EXPECT_EQ(0, bad);
	TH_LOG("%zu + %zu decodes, with and without specials, equal HF's", json_array_size(ex),
	       json_array_size(rnd));
}

/* Invalid UTF-8 becomes what Python's errors="replace" makes of it: HF's
 * decode of its ids gave that text back. */
TEST_F(hf, invalid_utf8_cases_replaced_as_python_does)
{
	json_t *cs = json_object_get(self->cases, "cases");
	json_t *ex = json_object_get(self->expected, "cases");
	size_t i, hex_cases = 0;
	json_t *c;

	json_array_foreach(cs, i, c) {
		json_t *want = json_object_get(json_array_get(ex, i), "decoded");
		size_t len, clean_len;
		char *raw, *clean;

		if (!json_object_get(c, "hex"))
			continue;
		raw = case_text(c, &len);
		clean = dsv4_utf8_sanitize(raw, len, &clean_len);
		ASSERT_NE(NULL, clean);
		EXPECT_EQ(-1, first_byte_diff(clean, clean_len, json_string_value(want),
					      json_string_length(want)))
			TH_LOG("%s", json_string_value(json_object_get(c, "name")));
		free(raw);
		free(clean);
		hex_cases++;
	}
	EXPECT_GE(hex_cases, 5);
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
		for (unsigned flags = 0; flags <= DSV4_TOK_SPECIAL; flags++) {
			ASSERT_EQ(0, dsv4_tokenize(self->tok, text, len, flags, &ids, &n, err,
						   sizeof(err)));
			ASSERT_EQ(0, dsv4_detokenize(self->tok, ids, n, 0, &back, &back_len, err,
						     sizeof(err)));
			EXPECT_EQ(-1, first_byte_diff(text, len, back, back_len))
				TH_LOG("%s", json_string_value(json_object_get(c, "name")));
			free(back);
			free(ids);
		}
		free(text);
	}
}

TEST_F(hf, lookups_and_specials)
{
	int32_t think = dsv4_token_lookup(self->tok, "</think>");
	size_t len;

	EXPECT_EQ(0, dsv4_token_lookup(self->tok, "<｜begin▁of▁sentence｜>"));
	EXPECT_EQ(1, dsv4_token_lookup(self->tok, "<｜end▁of▁sentence｜>"));
	EXPECT_EQ(8000, dsv4_token_lookup(self->tok, "<｜User｜>"));
	EXPECT_EQ(-1, dsv4_token_lookup(self->tok, "no such token at all"));
	EXPECT_EQ(526, dsv4_token_lookup(self->tok, "the"));	/* a vocab string */
	EXPECT_EQ(223, dsv4_token_lookup(self->tok, "Ġ"));	/* the space, in vocab form */
	EXPECT_TRUE(dsv4_token_is_special(self->tok, 1));
	EXPECT_TRUE(dsv4_token_is_special(self->tok, 8000));
	EXPECT_FALSE(dsv4_token_is_special(self->tok, think));
	EXPECT_FALSE(dsv4_token_is_special(self->tok, 526));
	EXPECT_FALSE(dsv4_token_is_special(self->tok, -1));
	EXPECT_FALSE(dsv4_token_is_special(self->tok, 8015));
	EXPECT_EQ(8015u, dsv4_tokenizer_size(self->tok));
	EXPECT_STREQ("</think>", dsv4_token_bytes(self->tok, think, &len));
	EXPECT_EQ(8u, len);
	ASSERT_NE(NULL, dsv4_token_bytes(self->tok, 223, &len));
	EXPECT_EQ(1u, len);
	EXPECT_EQ(' ', dsv4_token_bytes(self->tok, 223, &len)[0]);
	EXPECT_EQ(NULL, dsv4_token_bytes(self->tok, 8015, &len));
	EXPECT_EQ(NULL, dsv4_token_bytes(self->tok, -1, &len));
}

TEST_F(hf, decode_errors_and_raw_bytes)
{
	int32_t bad_ids[] = { 67, 8015 }, split[2];
	char *text, err[256];
	size_t len;

	EXPECT_EQ(-EINVAL, dsv4_detokenize(self->tok, bad_ids, 2, 0, &text, &len, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "8015 at 1")) TH_LOG("%s", err);
	EXPECT_EQ(NULL, text);
	/* '你' is e4 bd a0: its first byte alone is invalid UTF-8 */
	split[0] = dsv4_token_lookup(self->tok, "ä");	/* GPT-2's character for byte e4 */
	ASSERT_LE(0, split[0]);
	ASSERT_EQ(0, dsv4_detokenize(self->tok, split, 1, DSV4_DETOK_RAW, &text, &len, err,
				     sizeof(err)));
	EXPECT_EQ(1u, len);
	EXPECT_EQ((char)0xe4, text[0]);
	free(text);
	ASSERT_EQ(0, dsv4_detokenize(self->tok, split, 1, 0, &text, &len, err, sizeof(err)));
	EXPECT_STREQ("\xef\xbf\xbd", text);
	free(text);
	ASSERT_EQ(0, dsv4_detokenize(self->tok, split, 0, 0, &text, &len, err, sizeof(err)));
	EXPECT_EQ(0u, len);
	EXPECT_STREQ("", text);
	free(text);
}

TEST_F(hf, a_megabyte_of_mixed_text)
{
	json_t *cs = json_object_get(self->cases, "cases");
	size_t cap = 1 << 20, len = 0, n, i, back_len;
	char *big = malloc(cap), *back, err[256];
	int32_t *ids;
	json_t *c;
	struct timespec t0;

	for (int full = 0; !full;)
		json_array_foreach(cs, i, c) {
			const char *s = json_string_value(json_object_get(c, "text"));
			size_t l = json_string_length(json_object_get(c, "text"));

			if (len + l > cap) {
				full = 1;
				break;
			}
			memcpy(big + len, s ? s : "", l);
			len += l;
		}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, dsv4_tokenize(self->tok, big, len, DSV4_TOK_SPECIAL, &ids, &n, err, sizeof(err)));
	TH_LOG("%zu bytes -> %zu ids in %.3f s", len, n, seconds_since(&t0));
	EXPECT_GT(n, len / 8);
	ASSERT_EQ(0, dsv4_detokenize(self->tok, ids, n, 0, &back, &back_len, err, sizeof(err)));
	EXPECT_EQ(-1, first_byte_diff(big, len, back, back_len));
	free(back);
	free(ids);
	free(big);
}

/* One huge word and long runs: BPE with its heap, regexes over long pieces. */
TEST_F(hf, long_words_and_runs)
{
	static const char *const fills[] = { "a", " ", "7", "!?", "\n", "\xe4\xbd\xa0", "<", "x\xcc\x81" };
	size_t len = 100 * 1024;
	char *text = malloc(len + 1), *back, err[256];

	for (size_t f = 0; f < sizeof(fills) / sizeof(fills[0]); f++) {
		size_t fl = strlen(fills[f]), n, back_len, used = 0;
		struct timespec t0;
		int32_t *ids;

		while (used + fl <= len) {
			memcpy(text + used, fills[f], fl);
			used += fl;
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ASSERT_EQ(0, dsv4_tokenize(self->tok, text, used, DSV4_TOK_SPECIAL, &ids, &n, err,
					   sizeof(err))) TH_LOG("%s", err);
		TH_LOG("%zu bytes of '%s': %zu ids in %.3f s", used, f == 4 ? "\\n" : fills[f], n,
		       seconds_since(&t0));
		ASSERT_EQ(0, dsv4_detokenize(self->tok, ids, n, 0, &back, &back_len, err,
					     sizeof(err)));
		EXPECT_EQ(-1, first_byte_diff(text, used, back, back_len));
		free(back);
		free(ids);
	}
	free(text);
}

/* ---- variants of the fixture tokenizer, with HF's ids ---- */

static json_t *split_step(const char *pattern, int literal, const char *behavior, int invert)
{
	return json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern",
			 literal ? "String" : "Regex", pattern, "behavior", behavior, "invert", invert);
}

static json_t *byte_level_step(int prefix_space, int use_regex)
{
	return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space",
			 prefix_space, "trim_offsets", 1, "use_regex", use_regex);
}

/* Sequence [Split(...), ByteLevel without regex] */
static json_t *split_then_bytes(const char *pattern, int literal, const char *behavior, int invert)
{
	return json_pack("{s:s, s:[o, o]}", "type", "Sequence", "pretokenizers",
			 split_step(pattern, literal, behavior, invert), byte_level_step(0, 0));
}

static void add_token(json_t *root, json_int_t id, const char *content, int special, int normalized)
{
	json_array_append_new(json_object_get(root, "added_tokens"),
			      json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content",
					content, "single_word", 0, "lstrip", 0, "rstrip", 0,
					"normalized", normalized, "special", special));
}

/* The fixture's tokenizer.json changed as the variant @name says (the
 * same changes tools made for HF). */
static struct dsv4_tokenizer *variant(struct __test_metadata *_metadata, const char *name)
{
	json_t *root = json_load_file(TOK, 0, NULL), *model, *pre = NULL;
	struct dsv4_tokenizer *t = NULL;
	char err[512] = "", *text;

	if (!root)
		return NULL;
	model = json_object_get(root, "model");
	if (!strcmp(name, "gpt2") || !strcmp(name, "gpt2-noprefix"))
		pre = byte_level_step(!strcmp(name, "gpt2"), 1);
	else if (!strcmp(name, "split-ws-Removed-0") || !strcmp(name, "split-ws-Removed-1"))
		pre = split_then_bytes("\\s+", 0, "Removed", name[strlen(name) - 1] == '1');
	else if (!strcmp(name, "split-vowels-empty-MergedWithPrevious-1"))
		pre = split_then_bytes("[aeiou]*", 0, "MergedWithPrevious", 1);
	else if (!strcmp(name, "split-vowels-empty-MergedWithNext-0"))
		pre = split_then_bytes("[aeiou]*", 0, "MergedWithNext", 0);
	else if (!strcmp(name, "split-x-opt-MergedWithNext-0"))
		pre = split_then_bytes("x?", 0, "MergedWithNext", 0);
	else if (!strcmp(name, "split-lit-dot-Contiguous-1"))
		pre = split_then_bytes(".", 1, "Contiguous", 1);
	else if (!strcmp(name, "anchors"))
		pre = split_then_bytes("^[a-z]+|[a-z]+$|^$", 0, "Isolated", 0);
	else if (!strcmp(name, "look"))
		pre = json_pack("{s:s, s:[o, o, o]}", "type", "Sequence", "pretokenizers",
				split_step("\\s+(?!\\S)|\\s+", 0, "Isolated", 0),
				split_step("(?<=a)b|\\bx\\B", 0, "Isolated", 0), byte_level_step(0, 0));
	else if (!strncmp(name, "syn-", 4)) {
		static const char *const syn[][2] = {
			{ "syn-w", "\\w+" }, { "syn-bx", "\\bx" }, { "syn-Bx", "\\Bx" },
			{ "syn-brace", "x{,2}" }, { "syn-m-opt", "(?m:a.b)" }, { "syn-u-esc", "\\u0078+" },
			{ "syn-dollar", "b$" }, { "syn-caret", "^a" }, { "syn-pL", "\\pL+" },
		};

		for (size_t i = 0; i < sizeof(syn) / sizeof(syn[0]); i++)
			if (!strcmp(name, syn[i][0]))
				pre = split_then_bytes(syn[i][1], 0, "Isolated", 0);
	} else if (!strcmp(name, "ignore-merges")) {
		json_object_set_new(model, "ignore_merges", json_true());
	} else if (!strcmp(name, "legacy-version")) {
		json_t *merges = json_array(), *m;
		size_t i;

		json_array_append_new(merges, json_string("#version: 0.2"));
		json_array_foreach(json_object_get(model, "merges"), i, m) {
			char joined[256];

			snprintf(joined, sizeof(joined), "%s %s", json_string_value(json_array_get(m, 0)),
				 json_string_value(json_array_get(m, 1)));
			json_array_append_new(merges, json_string(joined));
		}
		json_object_set_new(model, "merges", merges);
	} else if (!strcmp(name, "added")) {
		/* after the vocab's 8000 and the 15 added: non-normalized ones match in
		 * the first pass, normalized ones in the gaps it leaves */
		add_token(root, 8015, "ab|", 0, 0);
		add_token(root, 8016, "<|ab|>", 1, 0);
		add_token(root, 8017, "xyz", 0, 1);
		add_token(root, 8018, "yz!", 0, 0);
		add_token(root, 8019, "<｜User｜>x", 0, 0);
		add_token(root, 8020, "User", 0, 0);
		add_token(root, 8021, "Us", 0, 1);
		add_token(root, 8022, "｜>", 0, 1);
		add_token(root, 526, "the", 0, 0);	/* in the vocab: its vocab id */
		add_token(root, 281, "ing", 0, 1);
	} else if (strcmp(name, "base")) {
		TH_LOG("no variant %s", name);
		json_decref(root);
		return NULL;
	}
	if (pre)
		json_object_set_new(root, "pre_tokenizer", pre);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text && dsv4_tokenizer_parse(text, strlen(text), &t, err, sizeof(err)))
		TH_LOG("%s: %s", name, err);
	free(text);
	return t;
}

#define IDS(...) (const int32_t[]){ __VA_ARGS__ }, sizeof((int32_t[]){ __VA_ARGS__ }) / sizeof(int32_t)
#define NONE NULL, 0
#define SAME NULL, (size_t)-1	/* specials as text: the same ids */

/* HF 0.23.2's ids for these texts under the variants above */
static const struct hf_vector {
	const char *variant, *text;
	size_t len;
	const int32_t *ids;	/* with specials matched */
	size_t n;
	const int32_t *plain;	/* with specials as text */
	size_t n_plain;
} hf_vectors[] = {
	/* U+180E is no space for Oniguruma */
	{ "base", "\xe1\xa0\x8e  \xe1\xa0\x8ethereUser", 17,
	  IDS(160, 257, 239, 223, 223, 160, 257, 239, 2953, 55, 1468), SAME },
	{ "look", "\xe1\xa0\x8e  \xe1\xa0\x8ethereUser", 17,
	  IDS(160, 257, 239, 223, 223, 160, 257, 239, 2953, 55, 1468), SAME },
	{ "split-ws-Removed-0", "\xe1\xa0\x8e#", 4, IDS(160, 257, 239, 5), SAME },
	{ "split-ws-Removed-1", "\xe1\xa0\x8e#", 4, NONE, SAME },
	{ "gpt2", "\xe1\xa0\x8e+\xe2\x91\xa0's12345\xe2\x80\x98\x0c}", 19,
	  IDS(223, 160, 257, 239, 13, 161, 242, 257, 332, 1893, 21, 4904, 161, 225, 249, 203, 95),
	  SAME },
	/* U+31350 (Unicode 15) is a letter for Oniguruma */
	{ "gpt2", "\xe2\x89\xa4\xf0\xb1\x8d\x90'd\x0a\x0a\xc2\xae", 13,
	  IDS(223, 161, 234, 100, 175, 112, 238, 241, 821, 201, 201, 129, 109), SAME },
	{ "gpt2-noprefix", "\xe2\x89\xa4\xf0\xb1\x8d\x90'd\x0a\x0a\xc2\xae", 13,
	  IDS(161, 234, 100, 175, 112, 238, 241, 821, 201, 201, 129, 109), SAME },
	/* empty matches, as the onig crate iterates them */
	{ "split-vowels-empty-MergedWithPrevious-1", "\xce\xb5" "don't", 7,
	  IDS(141, 116, 70, 265, 9, 86), SAME },
	{ "split-vowels-empty-MergedWithNext-0", "\xce\xb5" "don't", 7,
	  IDS(141, 116, 70, 265, 9, 86), SAME },
	{ "split-x-opt-MergedWithNext-0",
	  "A fair exterior is a silent recommendation.\x0a\x09\x09-- Publilius Syrus", 64,
	  IDS(35, 223, 72, 67, 75, 84, 223, 71, 1054, 71, 84, 75, 81, 84, 223, 75, 85, 223, 67, 223,
	      85, 75, 78, 71, 80, 86, 223, 84, 71, 69, 81, 79, 79, 71, 80, 70, 67, 86, 75, 81, 80, 16,
	      201, 200, 200, 15, 15, 223, 50, 87, 68, 78, 75, 78, 75, 87, 85, 223, 53, 91, 84, 87,
	      85), SAME },
	/* Contiguous joins runs of non-matches too (invert) */
	{ "split-lit-dot-Contiguous-1", "...xyz!\xe2\x88\x91\x00$var@user     the", 28,
	  IDS(490, 90, 91, 92, 3, 161, 233, 242, 191, 6, 88, 286, 34, 5123, 403, 266), SAME },
	/* ^ and $ at every line */
	{ "anchors", "\x0a\x0a", 2, IDS(201, 201), SAME },
	{ "syn-dollar", "a\x0a" "b\x0a\x0d\x0a", 6, IDS(67, 201, 68, 201, 204, 201), SAME },
	{ "syn-caret", "\x0a" "a\x0a" "b\xe3\x80\x80\xe0\xa2\x97\xc2\xa0", 12,
	  IDS(201, 67, 201, 68, 162, 225, 225, 159, 98, 248, 129, 257), SAME },
	/* Oniguruma syntax */
	{ "syn-w", "e\xcc\x81\xc2\xbd_", 6, IDS(71, 139, 226, 129, 124, 65), SAME },
	{ "syn-bx", "\xc3\xa9xx-", 5, IDS(130, 105, 90, 90, 15), SAME },
	{ "syn-Bx", "_xxx\xe3\x80\x80", 7, IDS(65, 90, 90, 90, 162, 225, 225), SAME },
	{ "syn-brace", "xxxb", 4, IDS(90, 90, 90, 68), SAME },
	{ "syn-m-opt", "a\x0a" "b\xf0\x90\xb5\x80", 7, IDS(67, 201, 68, 175, 241, 116, 225), SAME },
	{ "syn-u-esc", "\xe1\xb2\x89" "0xx\xf0\x9f\x98\x80\xe3\x82\xab", 13,
	  IDS(160, 113, 234, 18, 90, 90, 175, 256, 249, 225, 162, 227, 107), SAME },
	{ "syn-pL", "xxa\xe1\xa0\x8e", 6, IDS(90, 90, 67, 160, 257, 239), SAME },
	/* added tokens: the non-normalized pass first ("yz!" before "xyz") */
	{ "added", "xyz!", 4, IDS(90, 8018), SAME },
	/* a special kept as text is still matched: "User" inside it is not,
	 * but the normalized "Us" and "｜>" of the second pass are */
	{ "added", "<\xef\xbd\x9cUser\xef\xbd\x9c>", 12, IDS(8000),
	  IDS(30, 174, 124, 253, 8021, 263, 8022) },
	{ "added", "::12345\xcc\x81\xcc\x81<\xef\xbd\x9cUser\xef\xbd\x9c>xyz!", 27,
	  IDS(3972, 1893, 21, 4904, 139, 226, 139, 226, 8019, 8018), SAME },
	{ "added", "there", 5, IDS(526, 264), SAME },
	{ "ignore-merges", "::\xcc\x81hello~/\xc2\xa3!\xe2\x80\x94", 17,
	  IDS(3972, 139, 226, 260, 283, 81, 96, 17, 129, 99, 3, 161, 225, 245), SAME },
	{ "legacy-version", "Hello", 5, IDS(42, 5279), SAME },
};

TEST(variants_equal_hf)
{
	size_t n_vectors = sizeof(hf_vectors) / sizeof(hf_vectors[0]), bad = 0;

	for (size_t v = 0; v < n_vectors; v++) {
		const struct hf_vector *hv = &hf_vectors[v];
		struct dsv4_tokenizer *t = variant(_metadata, hv->variant);

		ASSERT_NE(NULL, t) TH_LOG("%s", hv->variant);
		for (int k = 0; k < 2; k++) {
			const int32_t *want = k && hv->n_plain != (size_t)-1 ? hv->plain : hv->ids;
			size_t want_n = k && hv->n_plain != (size_t)-1 ? hv->n_plain : hv->n, n, d = 0;
			int32_t *ids;
			char err[256];

			ASSERT_EQ(0, dsv4_tokenize(t, hv->text, hv->len, k ? 0 : DSV4_TOK_SPECIAL, &ids,
						   &n, err, sizeof(err))) TH_LOG("%s", err);
			while (d < n && d < want_n && ids[d] == want[d])
				d++;
			if (d < n || d < want_n) {
				bad++;
				TH_LOG("%s, vector %zu, specials %s: first difference at id %zu: got %d, "
				       "HF %d", hv->variant, v, k ? "as text" : "matched", d,
				       d < n ? ids[d] : -1, d < want_n ? want[d] : -1);
			}
			free(ids);
		}
		dsv4_tokenizer_free(t);
	}
	EXPECT_EQ(0, bad);
}

TEST(unk_token_and_fuse_unk)
{
	/* HF: "abthe" -> ab <unk> <unk> <unk>, or ab <unk> when fused */
	for (int fuse = 0; fuse < 2; fuse++) {
		char json[512], err[256];
		struct dsv4_tokenizer *t;
		int32_t *ids;
		size_t n;

		snprintf(json, sizeof(json),
			 "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": %s, "
			 "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"<unk>\": 3, \"x\": 4, \"ax\": 5}, "
			 "\"merges\": [[\"a\", \"b\"], [\"a\", \"x\"]]}}", fuse ? "true" : "false");
		ASSERT_EQ(0, dsv4_tokenizer_parse(json, strlen(json), &t, err, sizeof(err)))
			TH_LOG("%s", err);
		ASSERT_EQ(0, dsv4_tokenize(t, "abthe", 5, 0, &ids, &n, err, sizeof(err)));
		ASSERT_EQ(fuse ? 2u : 4u, n);
		EXPECT_EQ(2, ids[0]);
		for (size_t i = 1; i < n; i++)
			EXPECT_EQ(3, ids[i]);
		free(ids);
		/* an unknown character between two that merge keeps them apart */
		ASSERT_EQ(0, dsv4_tokenize(t, "a?x", 3, 0, &ids, &n, err, sizeof(err)));
		ASSERT_EQ(3u, n);
		EXPECT_EQ(3, ids[1]);
		free(ids);
		dsv4_tokenizer_free(t);
	}
}

/* ---- the pre-tokenizer's pieces ---- */

/* The pieces of @text under pre_tokenizer @spec, joined by '|'. */
static char *pieces_of(const char *spec, const char *text, char *err, size_t errlen)
{
	json_t *js = json_loads(spec, 0, NULL);
	struct pretok *pt = NULL;
	struct pretok_work *w = pretok_work_new();
	const struct span *p;
	const char *base;
	size_t n, o = 0;
	char *out = malloc(4 * strlen(text) + 2);

	if (!js || !w || !out || pretok_build(js, &pt, err, errlen) ||
	    pretok_run(pt, w, text, strlen(text), &base, &p, &n, err, errlen)) {
		free(out);
		out = NULL;
	} else {
		for (size_t i = 0; i < n; i++) {
			if (i)
				out[o++] = '|';
			memcpy(out + o, base + p[i].off, p[i].len);
			o += p[i].len;
		}
		out[o] = 0;
	}
	json_decref(js);
	pretok_free(pt);
	pretok_work_free(w);
	return out;
}

static void expect_pieces(struct __test_metadata *_metadata, const char *spec, const char *text,
			  const char *want)
{
	char err[256] = "", *got = pieces_of(spec, text, err, sizeof(err));

	ASSERT_NE(NULL, got) TH_LOG("%s: %s", spec, err);
	EXPECT_STREQ(want, got) TH_LOG("%s on '%s'", spec, text);
	free(got);
}

#define SPLIT(pat, beh, inv) \
	"{\"type\": \"Split\", \"pattern\": {\"Regex\": \"" pat "\"}, \"behavior\": \"" beh \
	"\", \"invert\": " inv "}"

TEST(split_pieces)
{
	static const struct {
		const char *spec, *text, *want;
	} cases[] = {
		/* the behaviours (HF's own test: "How are you doing?") */
		{ SPLIT("\\\\s+", "Removed", "false"), "How are  you", "How|are|you" },
		{ SPLIT("\\\\s+", "Isolated", "false"), "How are  you", "How| |are|  |you" },
		{ SPLIT("\\\\s+", "MergedWithPrevious", "false"), "How are  you", "How |are  |you" },
		{ SPLIT("\\\\s+", "MergedWithNext", "false"), "How are  you", "How| are|  you" },
		{ SPLIT("-", "Contiguous", "false"), "a-b--c", "a|-|b|--|c" },
		{ SPLIT("-", "Contiguous", "true"), "a-b--c", "a|-|b|--|c" },
		{ SPLIT("[^-]", "Contiguous", "true"), "a-b--c", "a|-|b|--|c" },
		{ SPLIT("\\\\.", "Contiguous", "true"), "...ab", "...|ab" },
		{ SPLIT("\\\\s+", "Removed", "true"), "How are  you", " |  " },
		/* empty matches: none right after a match, as the onig crate */
		{ SPLIT("x?", "Isolated", "false"), "ext", "e|x|t" },
		{ SPLIT("x?", "MergedWithNext", "false"), "ext", "e|xt" },
		{ SPLIT("x?", "MergedWithPrevious", "false"), "ext", "ex|t" },
		{ SPLIT("|b", "Isolated", "false"), "abc", "a|b|c" },
		{ SPLIT("", "MergedWithNext", "false"), "ab", "a|b" },
		/* Oniguruma's ^ and $ are line anchors */
		{ SPLIT("^a|b$", "Isolated", "false"), "ab\nab", "a|b|\n|a|b" },
		/* \s: White_Space, without U+180E; \S likewise */
		{ SPLIT("\\\\s+", "Isolated", "false"), "a\xe1\xa0\x8e\xc2\x85" "b", "a\xe1\xa0\x8e|\xc2\x85|b" },
		{ SPLIT("[\\\\S]+", "Isolated", "false"), "a\xe1\xa0\x8e b", "a\xe1\xa0\x8e| |b" },
		/* letters of Unicode 15/16 (U+31350, U+1C89) are \\p{L}; Latin-1's
		 * superscripts and fractions are \\w, and so are marks, not other
		 * numbers (\u2460) */
		{ SPLIT("\\\\p{L}+", "Removed", "false"), "1\xf0\xb1\x8d\x90\xe1\xb2\x89" "2", "1|2" },
		{ SPLIT("[^\\\\p{L}]+", "Removed", "false"), "1\xf0\xb1\x8d\x90" "2", "\xf0\xb1\x8d\x90" },
		{ SPLIT("\\\\w+", "Removed", "false"), "a\xc2\xb2\xc2\xbd-", "-" },
		{ SPLIT("\\\\bx", "Removed", "false"), "\xe2\x91\xa0x e\xcc\x81x",
		  "\xe2\x91\xa0| e\xcc\x81x" },
		/* \\pL is "pL", \\h a hex digit, \\u a code point, {,n} at most n */
		{ SPLIT("\\\\pL", "Removed", "false"), "apLb", "a|b" },
		{ SPLIT("\\\\h+", "Removed", "false"), "xfe0z", "x|z" },
		{ SPLIT("\\\\u0078", "Removed", "false"), "axb", "a|b" },
		{ SPLIT("x{,2}y", "Removed", "false"), "axxxyb", "ax|b" },
		/* option m: dot takes a newline */
		{ SPLIT("(?m:a.b)", "Removed", "false"), "1a\nb2", "1|2" },
		/* ByteLevel: a space in front of each piece, GPT-2's regex, bytes mapped */
		{ "{\"type\": \"Sequence\", \"pretokenizers\": [" SPLIT("-", "Removed", "false") ", "
		  "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}]}",
		  "it's-ok\n", "Ġit|'s|Ġok|Ċ" },
		{ "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}",
		  "a b\xe4\xbd\xa0", "aĠbä½ł" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_pieces(_metadata, cases[i].spec, cases[i].text, cases[i].want);
}

TEST(split_behaviours_through_bpe)
{
	/* a vocab of single characters, whose merges show which pieces stayed whole */
	static const char *const behaviours[] = { "Removed", "Isolated", "MergedWithPrevious",
						  "MergedWithNext", "Contiguous" };
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

TEST(merges_as_strings_duplicates_and_ignore_merges)
{
	static const char *const vocab =
		"\"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4, \"abc\": 5, \"cab\": 6}";
	static const struct {
		const char *merges, *extra;
		int32_t want[3];
	} cases[] = {
		{ "[[\"a\", \"b\"], [\"b\", \"c\"]]", "", { 3, 2, -1 } },
		{ "[\"a b\", \"b c\"]", "", { 3, 2, -1 } },
		{ "[\"#version: 0.2\", \"b c\", \"a b\"]", "", { 0, 4, -1 } },
		/* a pair listed twice keeps its last rank, as HF's map */
		{ "[[\"a\", \"b\"], [\"b\", \"c\"], [\"a\", \"b\"]]", "", { 0, 4, -1 } },
		/* ignore_merges: a word in the vocab is taken whole */
		{ "[[\"a\", \"b\"]]", ", \"ignore_merges\": true", { 5, -1 } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[512], err[256];
		struct dsv4_tokenizer *t;
		int32_t *ids;
		size_t n, k;

		snprintf(json, sizeof(json), "{\"model\": {\"type\": \"BPE\", %s, \"merges\": %s%s}}",
			 vocab, cases[i].merges, cases[i].extra);
		ASSERT_EQ(0, dsv4_tokenizer_parse(json, strlen(json), &t, err, sizeof(err)))
			TH_LOG("%s", err);
		ASSERT_EQ(0, dsv4_tokenize(t, "abc", 3, 0, &ids, &n, err, sizeof(err)));
		for (k = 0; cases[i].want[k] >= 0; k++)
			EXPECT_EQ(cases[i].want[k], k < n ? ids[k] : -1) TH_LOG("case %zu at %zu", i, k);
		EXPECT_EQ(k, n) TH_LOG("case %zu", i);
		free(ids);
		dsv4_tokenizer_free(t);
	}
}

TEST(regex_giving_up_is_an_error)
{
	static const char json[] =
		"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"c\": 1}, \"merges\": []}, "
		"\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a|aa)+$\"}, "
		"\"behavior\": \"Isolated\", \"invert\": false}}";
	struct dsv4_tokenizer *t;
	char text[64], err[256] = "";
	int32_t *ids;
	size_t n;

	ASSERT_EQ(0, dsv4_tokenizer_parse(json, strlen(json), &t, err, sizeof(err))) TH_LOG("%s", err);
	memset(text, 'a', 40);
	text[40] = 'c';
	EXPECT_EQ(-ERANGE, dsv4_tokenize(t, text, 41, 0, &ids, &n, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "match limit")) TH_LOG("%s", err);
	EXPECT_EQ(NULL, ids);
	dsv4_tokenizer_free(t);
}

/* ---- UTF-8 ---- */

TEST(utf8_replacement_per_maximal_subpart)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
		{ "abc\x80" "def", 7, "abc\xef\xbf\xbd" "def" },			/* lone continuation */
		{ "\x80\xbf", 2, "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "caf\xc3", 4, "caf\xef\xbf\xbd" },				/* truncated 2-byte */
		{ "\xe4\xbd", 2, "\xef\xbf\xbd" },				/* truncated 3-byte: one */
		{ "\xe4\xbd" "a", 3, "\xef\xbf\xbd" "a" },
		{ "\xf0\x9f\x98", 3, "\xef\xbf\xbd" },				/* truncated 4-byte: one */
		{ "\xf0\x9f\x98" "\xf0\x9f\x98\x80", 7, "\xef\xbf\xbd\xf0\x9f\x98\x80" },
		{ "\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd" },			/* overlong: two */
		{ "\xe0\x80\xaf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },	/* overlong 3-byte */
		{ "\xf0\x80\x80\xaf", 4,
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },	/* overlong 4-byte */
		{ "\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },	/* surrogate */
		{ "\xf4\x90\x80\x80", 4,
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },	/* above U+10FFFF */
		{ "\xf5\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xff\xfe", 2, "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xe1\x80\xe2\xf0\x91\x92\xf1\xbf\x41", 9,			/* Unicode's example */
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "A" },
		{ "ok \xe2\x82\xac \xf4\x8f\xbf\xbf", 11, "ok \xe2\x82\xac \xf4\x8f\xbf\xbf" },
		{ "", 0, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n;
		char *s = dsv4_utf8_sanitize(cases[i].in, cases[i].len, &n);

		ASSERT_NE(NULL, s);
		EXPECT_EQ(strlen(cases[i].out), n) TH_LOG("case %zu", i);
		EXPECT_EQ(0, memcmp(s, cases[i].out, n)) TH_LOG("case %zu", i);
		EXPECT_EQ(0, s[n]);
		free(s);
	}
}

TEST(utf8_complete_prefix)
{
	EXPECT_EQ(3u, dsv4_utf8_complete_prefix("abc", 3));
	EXPECT_EQ(0u, dsv4_utf8_complete_prefix("", 0));
	EXPECT_EQ(2u, dsv4_utf8_complete_prefix("ab\xe4\xbd", 4));	/* 你 unfinished */
	EXPECT_EQ(5u, dsv4_utf8_complete_prefix("ab\xe4\xbd\xa0", 5));
	EXPECT_EQ(1u, dsv4_utf8_complete_prefix("a\xf0\x9f\x98", 4));
	EXPECT_EQ(1u, dsv4_utf8_complete_prefix("a\xc3", 2));
	EXPECT_EQ(3u, dsv4_utf8_complete_prefix("a\xff" "b", 3));	/* bad stays bad */
	EXPECT_EQ(2u, dsv4_utf8_complete_prefix("a\x80", 2));
	EXPECT_EQ(3u, dsv4_utf8_complete_prefix("a\xe0\x80", 3));	/* can never complete */
	EXPECT_EQ(3u, dsv4_utf8_complete_prefix("a\xed\xa0", 3));	/* a surrogate's start */
	EXPECT_EQ(0u, dsv4_utf8_complete_prefix("\xe4", 1));
}

/* ---- tokenizer.json that is refused ---- */

static const char *bpe_model =
	"\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
	"\"merges\": [[\"a\", \"b\"]]}";

static void refused(struct __test_metadata *_metadata, const char *json, const char *why)
{
	struct dsv4_tokenizer *t = (struct dsv4_tokenizer *)1;
	char err[512] = "";

	EXPECT_NE(0, dsv4_tokenizer_parse(json, strlen(json), &t, err, sizeof(err)))
		TH_LOG("accepted: %s", json);
	EXPECT_EQ(NULL, t);
	EXPECT_NE(NULL, strstr(err, why)) TH_LOG("'%s' lacks '%s'", err, why);
	if (t != (struct dsv4_tokenizer *)1)
		dsv4_tokenizer_free(t);
}

/* refused() of bpe_model plus @extra */
static void refused_with(struct __test_metadata *_metadata, const char *extra, const char *why)
{
	char buf[2048];

	snprintf(buf, sizeof(buf), "{%s, %s}", bpe_model, extra);
	refused(_metadata, buf, why);
}

TEST(malformed_tokenizer_json_is_refused)
{
	char buf[1024];

	refused(_metadata, "", "tokenizer.json");
	refused(_metadata, "{\"model\": ", "line 1");
	refused(_metadata, "[1,2]", "not a JSON object");
	refused(_metadata, "{}", "no model");
	refused(_metadata, "{\"model\": {\"type\": \"WordPiece\"}}", "WordPiece");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}",
		"vocab object");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}", "merges list");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", "empty");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}",
		"valid id");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}, "
		"\"merges\": []}}", "valid id");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1e3}, \"merges\": []}}",
		"valid id");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 16000000}, "
		"\"merges\": []}}", "far beyond");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"0\"}, \"merges\": []}}",
		"valid id");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, "
		"\"merges\": []}}", "used twice");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
		"\"merges\": [[\"a\", \"q\"]]}}", "not in the vocab");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, "
		"\"merges\": [[\"a\", \"b\"]]}}", "not in the vocab");	/* "ab" missing */
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [5]}}",
		"merges[0]");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
		"\"merges\": [\"a\"]}}", "merges[0]");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"aa\": 1}, "
		"\"merges\": [[\"a\", \"a\"], \"a a a\"]}}", "merges[1]");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
		"\"merges\": [[\"a\", \"a\", \"a\"]]}}", "merges[0]");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {\"a\": 0}, "
		"\"merges\": []}}", "dropout");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, "
		"\"vocab\": {\"a\": 0}, \"merges\": []}}", "byte_fallback");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"continuing_subword_prefix\": \"##\", "
		"\"vocab\": {\"a\": 0}, \"merges\": []}}", "continuing_subword_prefix");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", "
		"\"vocab\": {\"a\": 0}, \"merges\": []}}", "unk_token '<unk>' is not in the vocab");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"ignore_merges\": 1, "
		"\"vocab\": {\"a\": 0}, \"merges\": []}}", "ignore_merges");

	refused_with(_metadata, "\"normalizer\": {\"type\": \"NFC\"}", "normalizer 'NFC'");
	refused_with(_metadata, "\"decoder\": {\"type\": \"WordPiece\"}", "decoder 'WordPiece'");
	refused_with(_metadata, "\"pre_tokenizer\": {\"type\": \"Whitespace\"}", "Whitespace");
	refused_with(_metadata, "\"pre_tokenizer\": [1]", "pre_tokenizer");
	refused_with(_metadata, "\"pre_tokenizer\": {\"type\": \"Sequence\"}", "pretokenizers");
	refused_with(_metadata, "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
		     "{\"Regex\": \"([a\"}, \"behavior\": \"Isolated\"}", "does not compile");
	refused_with(_metadata, "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
		     "{\"Regex\": \"a\"}, \"behavior\": \"Sideways\"}", "Sideways");
	refused_with(_metadata, "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
		     "{\"Regex\": \"a\"}, \"behavior\": \"Isolated\", \"invert\": \"no\"}", "invert");
	refused_with(_metadata, "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
		     "{\"Glob\": \"a\"}, \"behavior\": \"Isolated\"}", "pattern");
	refused_with(_metadata, "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
		     "{\"Regex\": \"[a[b]]\"}, \"behavior\": \"Isolated\"}", "nested");
	refused_with(_metadata, "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
		     "{\"Regex\": \"[a-z&&[^b]]\"}, \"behavior\": \"Isolated\"}", "intersection");
	refused_with(_metadata, "\"pre_tokenizer\": {\"type\": \"ByteLevel\", "
		     "\"add_prefix_space\": 0}", "add_prefix_space");

	/* added tokens */
	refused_with(_metadata, "\"added_tokens\": {}", "added_tokens is not a list");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": \"3\", \"content\": \"<x>\"}]",
		     "added_tokens[0]");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 3}]", "content");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 3, \"content\": \"\"}]", "non-empty");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", "
		     "\"special\": 1}]", "true or false");
	/* lstrip, rstrip and single_word are not implemented: refused */
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", "
		     "\"lstrip\": true}]", "lstrip");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", "
		     "\"rstrip\": true}]", "rstrip");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", "
		     "\"single_word\": true}]", "single_word");
	/* ids HF would not give: after the vocab, in order; the vocab's own */
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 4, \"content\": \"<x>\"}]",
		     "has id 4, but HF gives it 3");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\"}, "
		     "{\"id\": 5, \"content\": \"<y>\"}]", "has id 5, but HF gives it 4");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 0, \"content\": \"ab\"}]",
		     "its id in the vocab");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\"}, "
		     "{\"id\": 3, \"content\": \"<x>\"}]", "HF gives it 4");
	refused_with(_metadata, "\"added_tokens\": [{\"id\": 2, \"content\": \"ab\"}, "
		     "{\"id\": 2, \"content\": \"ab\"}]", "listed twice");
	refused(_metadata, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2}, "
		"\"merges\": []}, \"added_tokens\": [{\"id\": 2, \"content\": \"<x>\"}]}",
		"which the vocab's 'b' has");

	/* the reason names the file */
	{
		struct dsv4_tokenizer *t;
		char err[512];

		EXPECT_EQ(-ENOENT, dsv4_tokenizer_load("/nonexistent/tokenizer.json", &t, err,
						       sizeof(err)));
		EXPECT_NE(NULL, strstr(err, "/nonexistent/tokenizer.json"));
	}
	snprintf(buf, sizeof(buf), "{%s, \"normalizer\": {\"type\": \"Sequence\", "
		 "\"normalizers\": []}, \"decoder\": null, \"added_tokens\": null}", bpe_model);
	{
		struct dsv4_tokenizer *t;
		char err[512];

		EXPECT_EQ(0, dsv4_tokenizer_parse(buf, strlen(buf), &t, err, sizeof(err)))
			TH_LOG("%s", err);
		dsv4_tokenizer_free(t);
	}
}

TEST(minimal_tokenizer_and_added_tokens)
{
	char buf[1024], err[256];
	struct dsv4_tokenizer *t = NULL;
	int32_t *ids;
	size_t n;

	/* ids after the vocab's 3; "ab" is a vocab token made an added one */
	snprintf(buf, sizeof(buf), "{%s, \"added_tokens\": [{\"id\": 3, \"content\": \"<s>\", "
		 "\"special\": true}, {\"id\": 2, \"content\": \"ab\", \"special\": false}, "
		 "{\"id\": 4, \"content\": \"<s>x\", \"special\": false, \"normalized\": false}]}",
		 bpe_model);
	ASSERT_EQ(0, dsv4_tokenizer_parse(buf, strlen(buf), &t, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(5u, dsv4_tokenizer_size(t));
	EXPECT_EQ(2, dsv4_token_lookup(t, "ab"));
	EXPECT_EQ(3, dsv4_token_lookup(t, "<s>"));
	EXPECT_TRUE(dsv4_token_is_special(t, 3));
	EXPECT_FALSE(dsv4_token_is_special(t, 2));
	/* "aab<s>b<s>x": a ab <s> b <s>x (longest wins at one place; "ab",
	 * normalized by default, is found in the second pass) */
	ASSERT_EQ(0, dsv4_tokenize(t, "aab<s>b<s>x", 11, DSV4_TOK_SPECIAL, &ids, &n, err,
				   sizeof(err)));
	ASSERT_EQ(5u, n);
	EXPECT_EQ(0, ids[0]);
	EXPECT_EQ(2, ids[1]);
	EXPECT_EQ(3, ids[2]);
	EXPECT_EQ(1, ids[3]);
	EXPECT_EQ(4, ids[4]);
	free(ids);
	/* specials as text: "<s>" is plain text; '<', 's', '>' are not in the vocab
	 * and, with no unk_token, dropped as HF drops them: a and b then merge */
	ASSERT_EQ(0, dsv4_tokenize(t, "a<s>b", 5, 0, &ids, &n, err, sizeof(err)));
	ASSERT_EQ(1u, n);
	EXPECT_EQ(2, ids[0]);
	free(ids);
	ASSERT_EQ(0, dsv4_tokenize(t, "", 0, 0, &ids, &n, err, sizeof(err)));
	EXPECT_EQ(0u, n);
	EXPECT_NE(NULL, ids);
	free(ids);
	ASSERT_EQ(0, dsv4_tokenize(t, NULL, 0, 0, &ids, &n, err, sizeof(err)));
	EXPECT_EQ(0u, n);
	free(ids);
	dsv4_tokenizer_free(t);
}

TEST_HARNESS_MAIN
