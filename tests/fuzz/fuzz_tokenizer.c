/* fuzz-srcs: libdsv4drv/src/text/tokenizer.c libdsv4drv/src/text/pretok.c libdsv4drv/src/text/utf8.c libdsv4drv/src/error.c ; fuzz-libs: -ljansson -lpcre2-8 -lxxhash -lpthread */
// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the tokenizer: the first byte picks a mode.
 *   0: the input is a tokenizer.json (must be refused cleanly or load);
 *   1..: the input is text for the fixture tokenizer: encode (with and
 *        without special tokens), decode the ids back (valid UTF-8 must
 *        round-trip), decode the raw bytes as ids, and the UTF-8 helpers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"

#ifndef FIXTURES
#define FIXTURES "tests/fixtures"
#endif

static struct dsv4_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	if (dsv4_tokenizer_load(FIXTURES "/tokenizer/tokenizer.json", &tok, err, sizeof(err))) {
		fprintf(stderr, "fuzz_tokenizer: %s\n", err);
		exit(1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 1;
	size_t len = size ? size - 1 : 0, n, back_len, clean_len;
	char err[256], *back, *clean;
	int32_t *ids;

	if (!size)
		return 0;
	if (data[0] % 4 == 0) {
		struct dsv4_tokenizer *t = NULL;

		if (!dsv4_tokenizer_parse(text, len, &t, err, sizeof(err))) {
			if (!dsv4_tokenize(t, text, len, DSV4_TOK_SPECIAL, &ids, &n, err, sizeof(err)))
				free(ids);
			dsv4_tokenizer_free(t);
		}
		return 0;
	}
	clean = dsv4_utf8_sanitize(text, len, &clean_len);
	if (!clean)
		return 0;
	if (dsv4_utf8_complete_prefix(text, len) > len)
		abort();
	for (unsigned flags = 0; flags <= DSV4_TOK_SPECIAL; flags++) {
		if (dsv4_tokenize(tok, text, len, flags, &ids, &n, err, sizeof(err)))
			abort();
		if (dsv4_detokenize(tok, ids, n, 0, &back, &back_len, err, sizeof(err)))
			abort();
		/* what went in, with invalid UTF-8 replaced, comes back */
		if (back_len != clean_len || memcmp(back, clean, clean_len))
			abort();
		free(back);
		free(ids);
	}
	/* the bytes as ids: out-of-range ones are refused, not read */
	n = len / sizeof(int32_t);
	ids = malloc((n + 1) * sizeof(*ids));
	if (ids) {
		memcpy(ids, text, n * sizeof(*ids));
		for (size_t i = 0; i < n; i++)
			ids[i] = (int32_t)((uint32_t)ids[i] % (dsv4_tokenizer_size(tok) + 2)) - 1;
		if (!dsv4_detokenize(tok, ids, n, DSV4_DETOK_SKIP_SPECIAL, &back, &back_len, err,
				     sizeof(err)))
			free(back);
		free(ids);
	}
	free(clean);
	return 0;
}
