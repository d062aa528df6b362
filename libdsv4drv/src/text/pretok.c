// SPDX-License-Identifier: MIT
/*
 * The pre-tokenizer as HF tokenizers runs it: a Sequence of steps, each
 * splitting every piece the previous step made.  Split runs a regex
 * (PCRE2, UTF + UCP, on the piece alone so that lookaheads end with it)
 * and keeps matches and gaps per its behaviour; ByteLevel maps bytes to
 * GPT-2's printable characters (and splits with GPT-2's regex when
 * use_regex is set).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "text.h"

#define MAX_STEPS 16

static const char gpt2_regex[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum behavior { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

struct step {
	int byte_level;			/* else a Split */
	int prefix_space;		/* ByteLevel add_prefix_space */
	pcre2_code *re;			/* Split pattern, or ByteLevel's regex */
	enum behavior behavior;
	int invert;
};

struct pretok {
	struct step steps[MAX_STEPS];
	int n;
	int byte_level;
};

/* ---- pieces ---- */

void pieces_clear(struct pieces *p)
{
	p->n = 0;
	p->arena_len = 0;
}

void pieces_free(struct pieces *p)
{
	free(p->arena);
	free(p->off);
	free(p->len);
	memset(p, 0, sizeof(*p));
}

static int arena_put(struct pieces *p, const char *s, size_t len, size_t *at)
{
	if (p->arena_len + len + 1 > p->arena_cap) {
		size_t cap = (p->arena_len + len + 1) * 2;
		char *grown;

		if (cap < p->arena_len)
			return -ENOMEM;
		grown = realloc(p->arena, cap);
		if (!grown)
			return -ENOMEM;
		p->arena = grown;
		p->arena_cap = cap;
	}
	memcpy(p->arena + p->arena_len, s, len);
	*at = p->arena_len;
	p->arena_len += len;
	return 0;
}

static int pieces_ref(struct pieces *p, size_t off, size_t len)
{
	if (!len)
		return 0;	/* HF drops empty pieces */
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		size_t *o = realloc(p->off, cap * sizeof(*o)), *l;

		if (!o)
			return -ENOMEM;
		p->off = o;
		l = realloc(p->len, cap * sizeof(*l));
		if (!l)
			return -ENOMEM;
		p->len = l;
		p->cap = cap;
	}
	p->off[p->n] = off;
	p->len[p->n++] = len;
	return 0;
}

int pieces_add(struct pieces *p, const char *s, size_t len)
{
	size_t at;

	if (!len)
		return 0;
	if (arena_put(p, s, len, &at))
		return -ENOMEM;
	return pieces_ref(p, at, len);
}

/* ---- byte level ---- */

uint16_t byte_char[256];	/* filled once by byte_level_init */
static int16_t char_to_byte[324];
static pthread_once_t byte_once = PTHREAD_ONCE_INIT;

static void byte_level_setup(void)
{
	uint16_t *map = byte_char;
	uint16_t next = 256;

	for (int b = 0; b < 256; b++) {
		int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) ||
				(b >= 0xae && b <= 0xff);

		map[b] = printable ? (uint16_t)b : next++;
	}
	for (size_t i = 0; i < sizeof(char_to_byte) / sizeof(char_to_byte[0]); i++)
		char_to_byte[i] = -1;
	for (int b = 0; b < 256; b++)
		char_to_byte[map[b]] = (int16_t)b;
}

void byte_level_init(void)
{
	pthread_once(&byte_once, byte_level_setup);
}

int char_byte(uint32_t cp)
{
	return cp < sizeof(char_to_byte) / sizeof(char_to_byte[0]) ? char_to_byte[cp] : -1;
}

int byte_level_map(const char *s, size_t len, struct pieces *out)
{
	size_t start = out->arena_len, at;
	char buf[2];

	for (size_t i = 0; i < len; i++) {
		uint16_t c = byte_char[(unsigned char)s[i]];
		size_t n;

		if (c < 0x80) {
			buf[0] = (char)c;
			n = 1;
		} else {	/* all mapped characters are below U+0800 */
			buf[0] = (char)(0xc0 | c >> 6);
			buf[1] = (char)(0x80 | (c & 0x3f));
			n = 2;
		}
		if (arena_put(out, buf, n, &at))
			return -ENOMEM;
	}
	return pieces_ref(out, start, out->arena_len - start);
}

/* ---- building ---- */

static int compile(const char *pattern, size_t len, int literal, pcre2_code **re, char *err,
		   size_t errlen)
{
	int code;
	PCRE2_SIZE where;

	*re = pcre2_compile((PCRE2_SPTR)pattern, len,
			    PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP), &code, &where,
			    NULL);
	if (!*re) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(code, msg, sizeof(msg));
		return dsv4_errf(err, errlen, -EINVAL,
				 "tokenizer.json: pre_tokenizer regex /%.*s/ at %zu: %s",
				 (int)(len > 80 ? 80 : len), pattern, (size_t)where, msg);
	}
	pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE);	/* interpreted when JIT is refused */
	return 0;
}

static int add_step(struct pretok *pt, const json_t *s, char *err, size_t errlen)
{
	const char *type = json_string_value(json_object_get(s, "type"));
	struct step *st;

	if (!type)
		return dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: a pre_tokenizer without a type");
	if (!strcmp(type, "Sequence")) {
		const json_t *list = json_object_get(s, "pretokenizers"), *e;
		size_t i;

		if (!json_is_array(list))
			return dsv4_errf(err, errlen, -EINVAL,
					 "tokenizer.json: Sequence needs a pretokenizers list");
		json_array_foreach(list, i, e) {
			int ret = add_step(pt, e, err, errlen);

			if (ret)
				return ret;
		}
		return 0;
	}
	if (pt->n == MAX_STEPS)
		return dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: over %d pre_tokenizer steps",
				 MAX_STEPS);
	st = &pt->steps[pt->n];
	memset(st, 0, sizeof(*st));
	if (!strcmp(type, "ByteLevel")) {
		const json_t *aps = json_object_get(s, "add_prefix_space");
		const json_t *ur = json_object_get(s, "use_regex");

		st->byte_level = 1;
		st->prefix_space = json_is_true(aps);
		st->behavior = B_ISOLATED;
		if ((!ur || json_is_true(ur)) &&
		    compile(gpt2_regex, sizeof(gpt2_regex) - 1, 0, &st->re, err, errlen))
			return -EINVAL;
		pt->byte_level = 1;
	} else if (!strcmp(type, "Split")) {
		const json_t *pat = json_object_get(s, "pattern");
		const char *beh = json_string_value(json_object_get(s, "behavior"));
		const json_t *rx = json_object_get(pat, "Regex"), *lit = json_object_get(pat, "String");
		static const char *const names[] = { "Removed", "Isolated", "MergedWithPrevious",
						     "MergedWithNext", "Contiguous" };
		int b = -1;

		for (int i = 0; beh && i < 5; i++)
			if (!strcmp(beh, names[i]))
				b = i;
		if (b < 0)
			return dsv4_errf(err, errlen, -EINVAL,
					 "tokenizer.json: Split behavior '%s' unknown", beh ? beh : "");
		if (!json_is_string(rx) && !json_is_string(lit))
			return dsv4_errf(err, errlen, -EINVAL,
					 "tokenizer.json: Split needs a pattern {Regex} or {String}");
		st->behavior = (enum behavior)b;
		st->invert = json_is_true(json_object_get(s, "invert"));
		if (compile(json_string_value(rx ? rx : lit), json_string_length(rx ? rx : lit),
			    !rx, &st->re, err, errlen))
			return -EINVAL;
	} else {
		return dsv4_errf(err, errlen, -ENOTSUP,
				 "tokenizer.json: pre_tokenizer type '%s' is not supported "
				 "(Sequence, Split, ByteLevel are)", type);
	}
	pt->n++;
	return 0;
}

int pretok_build(const json_t *spec, struct pretok **out, char *err, size_t errlen)
{
	struct pretok *pt = calloc(1, sizeof(*pt));
	int ret;

	byte_level_init();
	if (!pt)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	ret = spec && !json_is_null(spec) ? add_step(pt, spec, err, errlen) : 0;
	if (ret) {
		pretok_free(pt);
		return ret;
	}
	*out = pt;
	return 0;
}

void pretok_free(struct pretok *pt)
{
	if (!pt)
		return;
	for (int i = 0; i < MAX_STEPS; i++)
		pcre2_code_free(pt->steps[i].re);
	free(pt);
}

int pretok_byte_level(const struct pretok *pt)
{
	return pt->byte_level;
}

/* ---- running ---- */

struct seg {
	size_t start, end;
	int delim;
};

/*
 * One Split over one piece s[0..len): appends the resulting pieces, as HF's
 * NormalizedString::split does: the pattern cuts the piece into gaps and
 * matches (invert swaps which are delimiters), then the behaviour merges
 * or drops delimiters, then empty pieces go.
 */
static int split_piece(const struct step *st, pcre2_match_data *md, const char *s, size_t len,
		       struct pieces *out)
{
	struct seg *seg = NULL, *acc = NULL;
	size_t n = 0, cap = 0, na = 0, pos = 0, prev = 0, base;
	int ret = 0, prev_delim = 0;

	/* the piece may live in @out's arena, which may move: copy it first */
	if (arena_put(out, s, len, &base))
		return -ENOMEM;
	s = out->arena + base;
	cap = 16;
	seg = malloc(cap * sizeof(*seg));
	if (!seg)
		return -ENOMEM;
	while (pos <= len) {
		int rc = pcre2_match(st->re, (PCRE2_SPTR)out->arena + base, len, pos,
				     PCRE2_NO_UTF_CHECK, md, NULL);
		PCRE2_SIZE *ov;

		if (rc < 0)
			break;
		ov = pcre2_get_ovector_pointer(md);
		if (n + 2 > cap) {
			struct seg *grown = realloc(seg, (cap *= 2) * sizeof(*seg));

			if (!grown) {
				ret = -ENOMEM;
				goto out;
			}
			seg = grown;
		}
		if (prev != ov[0])
			seg[n++] = (struct seg){ prev, ov[0], 0 };
		seg[n++] = (struct seg){ ov[0], ov[1], 1 };
		prev = ov[1];
		if (ov[1] == ov[0]) {	/* empty match: step one character on */
			uint32_t cp;
			size_t step = pos < len ? utf8_decode(out->arena + base + pos, len - pos, &cp) : 1;

			pos = ov[1] + (step ? step : 1);
		} else {
			pos = ov[1];
		}
	}
	if (n + 1 > cap) {
		struct seg *grown = realloc(seg, (cap + 1) * sizeof(*seg));

		if (!grown) {
			ret = -ENOMEM;
			goto out;
		}
		seg = grown;
	}
	if (prev < len || !n)
		seg[n++] = (struct seg){ prev, len, 0 };
	acc = malloc(n * sizeof(*acc));
	if (!acc) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct seg c = seg[i];

		c.delim ^= st->invert;
		switch (st->behavior) {
		case B_REMOVED:
			if (!c.delim)
				acc[na++] = c;
			break;
		case B_ISOLATED:
			acc[na++] = c;
			break;
		case B_CONTIGUOUS:
			if (prev_delim && c.delim && na)
				acc[na - 1].end = c.end;
			else
				acc[na++] = c;
			break;
		case B_MERGED_PREV:
			if (c.delim && !prev_delim && na)
				acc[na - 1].end = c.end;
			else
				acc[na++] = c;
			break;
		case B_MERGED_NEXT:
			break;	/* below, from the end */
		}
		prev_delim = c.delim;
	}
	if (st->behavior == B_MERGED_NEXT) {
		prev_delim = 0;
		for (size_t i = n; i-- > 0;) {
			struct seg c = seg[i];

			c.delim ^= st->invert;
			if (c.delim && !prev_delim && na)
				acc[na - 1].start = c.start;
			else
				acc[na++] = c;
			prev_delim = c.delim;
		}
		for (size_t i = 0; i < na / 2; i++) {
			struct seg t = acc[i];

			acc[i] = acc[na - 1 - i];
			acc[na - 1 - i] = t;
		}
	}
	for (size_t i = 0; !ret && i < na; i++)
		ret = pieces_ref(out, base + acc[i].start, acc[i].end - acc[i].start);
out:
	free(seg);
	free(acc);
	return ret;
}

int pretok_run(const struct pretok *pt, const char *text, size_t len, struct pieces *out)
{
	struct pieces a = { 0 }, b = { 0 }, t = { 0 }, *cur = &a, *next = &b, *tmp;
	pcre2_match_data *md = NULL;
	int ret;

	if (!pt->n)
		return pieces_add(out, text, len);
	ret = pieces_add(cur, text, len);
	md = pcre2_match_data_create(4, NULL);
	if (!md)
		ret = -ENOMEM;
	for (int i = 0; !ret && i < pt->n; i++) {
		const struct step *st = &pt->steps[i];
		struct pieces *stage = st->byte_level ? &t : next;

		pieces_clear(next);
		pieces_clear(&t);
		for (size_t k = 0; !ret && k < cur->n; k++) {
			const char *s = cur->arena + cur->off[k];
			size_t l = cur->len[k];
			char *copy = NULL;

			if (st->byte_level && st->prefix_space && s[0] != ' ') {
				/* HF prepends a space to every piece that lacks one */
				copy = malloc(l + 1);
				if (!copy) {
					ret = -ENOMEM;
					break;
				}
				copy[0] = ' ';
				memcpy(copy + 1, s, l);
				s = copy;
				l++;
			}
			ret = st->re ? split_piece(st, md, s, l, stage) : pieces_add(stage, s, l);
			free(copy);
		}
		/* ByteLevel maps each piece's bytes to GPT-2's characters */
		for (size_t k = 0; !ret && st->byte_level && k < t.n; k++)
			ret = byte_level_map(t.arena + t.off[k], t.len[k], next);
		tmp = cur;
		cur = next;
		next = tmp;
	}
	for (size_t k = 0; !ret && k < cur->n; k++)
		ret = pieces_add(out, cur->arena + cur->off[k], cur->len[k]);
	pcre2_match_data_free(md);
	pieces_free(&a);
	pieces_free(&b);
	pieces_free(&t);
	return ret;
}
