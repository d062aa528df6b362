/* fuzz-srcs: libdsv4drv/src/text/tokenizer.c libdsv4drv/src/text/pretok.c libdsv4drv/src/text/utf8.c libdsv4drv/src/error.c ; fuzz-libs: -ljansson -lpcre2-8 -lxxhash */
// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the tokenizer: the first byte picks a mode.
 *   0: the rest is a tokenizer.json: refused cleanly, or loaded and used;
 *   1: text for the fixture tokenizer, 2: text for the fixture's vocab
 *      under GPT-2's pre-tokenizer (ByteLevel with its regex and a prefix
 *      space): encoded with and without specials and decoded again (for
 *      the fixture, the text comes back with invalid UTF-8 replaced), and
 *      the bytes read as ids decoded (unknown ids refused, not read);
 *   3: "pattern NUL text": a Split with that regex (behaviour and invert
 *      from the second byte) before ByteLevel, over a vocab of the 256
 *      byte characters: whatever the pattern, the pieces still cover the
 *      text (bar Removed), so decoding gives the text back.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"

#ifndef FIXTURES
#define FIXTURES "tests/fixtures"
#endif

static struct dsv4_tokenizer *fixture, *gpt2;
static json_t *byte_vocab;	/* GPT-2's 256 byte characters -> 0..255 */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dsv4_tokenizer *from_json(json_t *root)
{
	struct dsv4_tokenizer *t = NULL;
	char *text = json_dumps(root, JSON_COMPACT), err[512];

	if (!text || dsv4_tokenizer_parse(text, strlen(text), &t, err, sizeof(err))) {
		fprintf(stderr, "fuzz_tokenizer: %s\n", text ? err : "out of memory");
		exit(1);
	}
	free(text);
	return t;
}

static uint32_t gpt2_char(unsigned b)
{
	if (b <= 0x20)
		return 0x100 + b;
	if (b >= 0x7f && b <= 0xa0)
		return 0x100 + 33 + (b - 0x7f);
	return b == 0xad ? 0x100 + 67 : b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	json_t *root = json_load_file(FIXTURES "/tokenizer/tokenizer.json", 0, NULL);

	(void)argc;
	(void)argv;
	if (!root) {
		fprintf(stderr, "fuzz_tokenizer: cannot read the fixture tokenizer.json\n");
		exit(1);
	}
	fixture = from_json(root);
	json_object_set_new(root, "pre_tokenizer",
			    json_pack("{s:s, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
				      "use_regex", 1));
	gpt2 = from_json(root);
	json_decref(root);
	byte_vocab = json_object();
	for (unsigned b = 0; b < 256; b++) {
		uint32_t c = gpt2_char(b);
		char u[3] = { (char)c, 0, 0 };

		if (c >= 0x80) {
			u[0] = (char)(0xc0 | c >> 6);
			u[1] = (char)(0x80 | (c & 0x3f));
		}
		json_object_set_new(byte_vocab, u, json_integer(b));
	}
	return 0;
}

/* Encodes (specials matched, then as text) and decodes @text.  @must_match:
 * 1 the text comes back; 0 it does unless the tokenizer gives up (PCRE2's
 * match limit); -1 no check. */
static void round_trip(struct dsv4_tokenizer *t, const char *text, size_t len, int must_match)
{
	size_t clean_len, n, back_len;
	char *clean = dsv4_utf8_sanitize(text, len, &clean_len), *back, err[256];
	int32_t *ids;

	if (!clean)
		abort();
	for (unsigned flags = 0; flags <= DSV4_TOK_SPECIAL; flags++) {
		if (dsv4_tokenize(t, text, len, flags, &ids, &n, err, sizeof(err))) {
			if (must_match > 0)
				abort();
			continue;	/* a pattern may give up (PCRE2's match limit) */
		}
		if (dsv4_detokenize(t, ids, n, 0, &back, &back_len, err, sizeof(err)))
			abort();
		if (must_match >= 0 && (back_len != clean_len || memcmp(back, clean, clean_len)))
			abort();
		free(back);
		free(ids);
	}
	free(clean);
}

static void decode_bytes_as_ids(struct dsv4_tokenizer *t, const char *text, size_t len)
{
	size_t n = len / sizeof(int32_t), back_len;
	int32_t *ids = malloc((n + 1) * sizeof(*ids));
	char *back, err[256];

	if (!ids)
		return;
	memcpy(ids, text, n * sizeof(*ids));
	for (size_t i = 0; i < n; i++)	/* mostly in range, some just outside */
		ids[i] = (int32_t)((uint32_t)ids[i] % (dsv4_tokenizer_size(t) + 2)) - 1;
	for (unsigned flags = 0; flags < 4; flags++)
		if (!dsv4_detokenize(t, ids, n, flags, &back, &back_len, err, sizeof(err)))
			free(back);
	free(ids);
}

static void split_mode(const char *in, size_t len)
{
	static const char *const behaviours[] = { "Isolated", "MergedWithPrevious",
						  "MergedWithNext", "Contiguous", "Removed" };
	const char *nul = memchr(in, 0, len);
	size_t pat_len, text_len, clean_len;
	struct dsv4_tokenizer *t = NULL;
	char *pattern, *json, err[512];
	unsigned mode;
	json_t *root;

	if (len < 2 || !nul)
		return;
	mode = (unsigned char)in[0];
	in++;
	len--;
	pat_len = (size_t)(nul - in);
	text_len = len - pat_len - 1;
	if (pat_len > 64 || text_len > 256)
		return;	/* a bad pattern may take PCRE2's whole match limit per match */
	pattern = dsv4_utf8_sanitize(in, pat_len, &clean_len);
	root = json_pack("{s:{s:s, s:O, s:[]}, s:{s:s, s:[{s:s, s:{s:s%}, s:s, s:b}, "
			 "{s:s, s:b, s:b}]}, s:{s:s}}",
			 "model", "type", "BPE", "vocab", byte_vocab, "merges",
			 "pre_tokenizer", "type", "Sequence", "pretokenizers",
			 "type", "Split", "pattern", (mode & 8) ? "String" : "Regex", pattern,
			 clean_len, "behavior", behaviours[mode % 5], "invert", (mode & 16) != 0,
			 "type", "ByteLevel", "add_prefix_space", 0, "use_regex", (mode & 32) != 0,
			 "decoder", "type", "ByteLevel");
	free(pattern);
	json = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (json && !dsv4_tokenizer_parse(json, strlen(json), &t, err, sizeof(err))) {
		round_trip(t, nul + 1, text_len, mode % 5 == 4 ? -1 : 0);
		dsv4_tokenizer_free(t);
	}
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;

	if (!size)
		return 0;
	switch (data[0] % 4) {
	case 0: {
		struct dsv4_tokenizer *t = NULL;
		char err[256];

		if (!dsv4_tokenizer_parse(text, len, &t, err, sizeof(err))) {
			round_trip(t, text, len, -1);
			decode_bytes_as_ids(t, text, len);
			dsv4_token_lookup(t, "a");
			dsv4_tokenizer_free(t);
		}
		return 0;
	}
	case 1:
	case 2: {
		struct dsv4_tokenizer *t = data[0] % 4 == 1 ? fixture : gpt2;

		if (dsv4_utf8_complete_prefix(text, len) > len)
			abort();
		/* the prefix space GPT-2's pre-tokenizer adds comes back in the decode */
		round_trip(t, text, len, t == fixture ? 1 : -1);
		decode_bytes_as_ids(t, text, len);
		return 0;
	}
	default:
		split_mode(text, len);
		return 0;
	}
}
