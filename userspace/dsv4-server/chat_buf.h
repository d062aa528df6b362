/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * A growing byte string for chat.c, chat_parse.c and pyjson.c (private).
 * Always NUL-terminated once anything was put.  After a failed allocation
 * it stops growing and keeps ->failed set, so a builder checks once at
 * the end instead of after every piece.
 */
#ifndef DSV4_SERVER_CHAT_BUF_H
#define DSV4_SERVER_CHAT_BUF_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct chat_buf {
	char *s;
	size_t len, cap;
	bool failed;
};

static inline void cbuf_put(struct chat_buf *b, const char *p, size_t n)
{
	if (b->failed || !n)
		return;
	if (n > (size_t)-1 / 4 - b->len) {
		b->failed = true;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *grown = realloc(b->s, cap);

		if (!grown) {
			b->failed = true;
			return;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = 0;
}

static inline void cbuf_add(struct chat_buf *b, const char *s)
{
	cbuf_put(b, s, strlen(s));
}

/* Appends @s and frees it; NULL (a failed allocation upstream) fails @b. */
static inline void cbuf_add_free(struct chat_buf *b, char *s)
{
	if (!s)
		b->failed = true;
	else
		cbuf_add(b, s);
	free(s);
}

/* The string, now the caller's (malloc'd, "" when nothing was put), or
 * NULL after a failed allocation; @b is left empty either way. */
static inline char *cbuf_take(struct chat_buf *b)
{
	char *s = b->s;

	if (b->failed) {
		free(s);
		s = NULL;
	} else if (!s) {
		s = strdup("");
	}
	memset(b, 0, sizeof(*b));
	return s;
}

#endif /* DSV4_SERVER_CHAT_BUF_H */
