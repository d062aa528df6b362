/* SPDX-License-Identifier: MIT */
/* Internals shared by the tokenizer's files (tokenizer.c, pretok.c, utf8.c). */
#ifndef DSV4_TEXT_H
#define DSV4_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A piece of text: bytes [off, off + len) of some buffer. */
struct span {
	size_t off, len;
};

struct pretok;
/* Builds the pre-tokenizer from tokenizer.json's "pre_tokenizer" (absent or
 * null: the whole text is one piece). */
int pretok_build(const json_t *spec, struct pretok **out, char *err, size_t errlen);
void pretok_free(struct pretok *pt);

/* Scratch memory of one caller, reused from one pretok_run to the next
 * (the pre-tokenizer itself is read-only and may be shared by threads). */
struct pretok_work;
struct pretok_work *pretok_work_new(void);
void pretok_work_free(struct pretok_work *w);

/*
 * Splits valid UTF-8 @text into pieces, byte-level mapped when the
 * pipeline has a ByteLevel step.  On return the pieces are @n spans of
 * *base, which is @text itself or memory of @w, valid until the next run.
 * Errors (out of memory, a regex that hits PCRE2's match limit) are
 * negative errno with a message.
 */
int pretok_run(const struct pretok *pt, struct pretok_work *w, const char *text, size_t len,
	       const char **base, const struct span **pieces, size_t *n, char *err, size_t errlen);

/* GPT-2's byte <-> character mapping: byte b stands as code point
 * byte_char(b) in vocab strings; char_byte() is the inverse (-1: the code
 * point stands for no byte). */
uint32_t byte_char(unsigned char b);
int char_byte(uint32_t cp);

/* UTF-8: decodes the code point at s[0..len), returns its length (0 when
 * the bytes there are not one well-formed sequence). */
size_t utf8_decode(const char *s, size_t len, uint32_t *cp);

#endif /* DSV4_TEXT_H */
