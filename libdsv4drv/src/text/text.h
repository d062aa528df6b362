/* SPDX-License-Identifier: MIT */
/* Internals shared by the tokenizer's files. */
#ifndef DSV4_TEXT_H
#define DSV4_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Pieces of text: (offset, length) into a byte arena that may grow. */
struct pieces {
	char *arena;
	size_t arena_len, arena_cap;
	size_t *off, *len;
	size_t n, cap;
};

void pieces_clear(struct pieces *p);
void pieces_free(struct pieces *p);
int pieces_add(struct pieces *p, const char *s, size_t len);	/* copies into the arena */

struct pretok;
/* Builds the pre-tokenizer from tokenizer.json's "pre_tokenizer" (NULL or
 * null: the whole text is one piece). */
int pretok_build(const json_t *spec, struct pretok **out, char *err, size_t errlen);
void pretok_free(struct pretok *pt);
/* Splits valid UTF-8 @text into @out (appended), byte-level mapped when
 * the pre-tokenizer has a ByteLevel step. */
int pretok_run(const struct pretok *pt, const char *text, size_t len, struct pieces *out);
/* Whether the pipeline maps bytes to GPT-2's printable characters. */
int pretok_byte_level(const struct pretok *pt);

/* GPT-2's byte <-> character mapping: byte b is the UTF-8 of code point
 * byte_char[b]; char_byte() is the inverse (-1: not a mapped character). */
extern uint16_t byte_char[256];
void byte_level_init(void);
int char_byte(uint32_t cp);
/* Appends the byte-level form of @s to @out's arena as one piece. */
int byte_level_map(const char *s, size_t len, struct pieces *out);

/* UTF-8: decodes one code point at s[0..len), returns its length (0 when
 * the bytes are not well formed). */
size_t utf8_decode(const char *s, size_t len, uint32_t *cp);

#endif /* DSV4_TEXT_H */
