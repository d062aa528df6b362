// SPDX-License-Identifier: MIT
/*
 * The pre-tokenizer as HF tokenizers runs it: a Sequence of steps, each
 * splitting every piece the previous step made.
 *
 * Split runs a regex on the piece alone (so that lookaheads end with it)
 * and keeps matches and gaps per its behaviour, as NormalizedString::split
 * does.  HF compiles its patterns with Oniguruma (6.9.10: Unicode 16); we
 * use PCRE2 (UTF + UCP) and close the gaps between the two:
 *   - matches are iterated as the onig crate's find_iter does: an empty
 *     match right where the previous match ended is skipped by stepping
 *     one character on (this decides how empty matches cut a piece);
 *   - ^ and $ are line anchors (Oniguruma's default: PCRE2_MULTILINE);
 *   - the pattern is rewritten where the two read the same text
 *     differently: \s \S are Unicode White_Space exactly (PCRE2's \s also
 *     takes U+180E); \w \W \b \B use Oniguruma's word characters; \p{L}
 *     \p{M} \p{N} \p{P} \p{S} and \d also take the characters Unicode 15
 *     and 16 added to them (PCRE2 10.42 knows Unicode 14); \h \H are hex
 *     digits; \uHHHH is a code point; {,n} is {0,n}; the option letter m
 *     means "dot matches newline" (PCRE2's s); \pL without braces is the
 *     letters "pL".  Oniguruma-only class syntax (a class nested in a
 *     class, && intersections) is refused.
 * What remains different: other properties and scripts (\p{Lu}, \p{Han},
 * POSIX classes) and the complements \P{..}, \D, \W inside a class follow
 * PCRE2's tables.
 *
 * ByteLevel prepends a space to each piece that lacks one (add_prefix_space),
 * splits with GPT-2's regex (use_regex), and maps every byte to GPT-2's
 * printable character for it.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "text.h"

#define MAX_STEPS 32

static const char gpt2_regex[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum behavior { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

static const char *const behavior_names[] = {
	[B_REMOVED] = "Removed", [B_ISOLATED] = "Isolated", [B_MERGED_PREV] = "MergedWithPrevious",
	[B_MERGED_NEXT] = "MergedWithNext", [B_CONTIGUOUS] = "Contiguous",
};

struct step {
	int byte_level;			/* else a Split */
	int prefix_space;		/* ByteLevel add_prefix_space */
	pcre2_code *re;			/* Split pattern, or ByteLevel's GPT-2 regex (use_regex) */
	enum behavior behavior;
	int invert;
	char shown[48];			/* the pattern's start, for messages */
};

struct pretok {
	struct step steps[MAX_STEPS];
	int n;
};

/* ---- GPT-2's byte <-> character map ---- */

/*
 * Printable bytes ('!'..'~', 0xa1..0xac, 0xae..0xff) stand for themselves;
 * the other 68 take U+0100 onward in byte order: 0x00..0x20, 0x7f..0xa0, 0xad.
 */
uint32_t byte_char(unsigned char b)
{
	if (b <= 0x20)
		return 0x100 + b;
	if (b >= 0x7f && b <= 0xa0)
		return 0x100 + 33 + (b - 0x7f);
	if (b == 0xad)
		return 0x100 + 33 + 34;
	return b;
}

int char_byte(uint32_t cp)
{
	if (cp < 0x100)
		return cp > 0x20 && !(cp >= 0x7f && cp <= 0xa0) && cp != 0xad ? (int)cp : -1;
	if (cp < 0x100 + 33)
		return (int)(cp - 0x100);
	if (cp < 0x100 + 33 + 34)
		return (int)(cp - 0x100 - 33 + 0x7f);
	return cp == 0x100 + 33 + 34 ? 0xad : -1;
}

/* ---- Oniguruma pattern -> PCRE2 pattern ---- */

struct strbuf {
	char *s;
	size_t len, cap;
	int oom;
};

static void sb_put(struct strbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (n > SIZE_MAX / 2 - b->len) {
		b->oom = 1;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *grown = realloc(b->s, cap);

		if (!grown) {
			b->oom = 1;
			return;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = 0;
}

static void sb_puts(struct strbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Unicode White_Space (Oniguruma's \s) and its complement, as class items */
static const char space_items[] =
	"\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
	"\\x{202f}\\x{205f}\\x{3000}";
static const char nonspace_items[] =
	"\\x{0}-\\x{8}\\x{e}-\\x{1f}\\x{21}-\\x{84}\\x{86}-\\x{9f}\\x{a1}-\\x{167f}"
	"\\x{1681}-\\x{1fff}\\x{200b}-\\x{2027}\\x{202a}-\\x{202e}\\x{2030}-\\x{205e}"
	"\\x{2060}-\\x{2fff}\\x{3001}-\\x{10ffff}";
static const char hex_items[] = "0-9A-Fa-f";
static const char nonhex_items[] = "\\x{0}-\\x{2f}\\x{3a}-\\x{40}\\x{47}-\\x{60}\\x{67}-\\x{10ffff}";

enum { CAT_L, CAT_M, CAT_N, CAT_P, CAT_S, CAT_ND, N_CATS };

/*
 * Code points that Unicode 15.0 to 16.0 put in these general categories
 * (Oniguruma 6.9.10's tables, which HF's onig build uses), where PCRE2
 * 10.42's Unicode 14 tables say unassigned.  Added to \p{L} and the like;
 * a newer PCRE2 that has them loses nothing by it.
 */
static const char *const new_cat_items[N_CATS] = {
	[CAT_L] = "\\x{1c89}-\\x{1c8a}\\x{a7cb}-\\x{a7cd}\\x{a7da}-\\x{a7dc}\\x{105c0}-\\x{105f3}"
		"\\x{10d4a}-\\x{10d65}\\x{10d6f}-\\x{10d85}\\x{10ec2}-\\x{10ec4}"
		"\\x{1123f}-\\x{11240}\\x{11380}-\\x{11389}\\x{1138b}\\x{1138e}"
		"\\x{11390}-\\x{113b5}\\x{113b7}\\x{113d1}\\x{113d3}\\x{11bc0}-\\x{11be0}"
		"\\x{11f02}\\x{11f04}-\\x{11f10}\\x{11f12}-\\x{11f33}\\x{1342f}"
		"\\x{13441}-\\x{13446}\\x{13460}-\\x{143fa}\\x{16100}-\\x{1611d}"
		"\\x{16d40}-\\x{16d6c}\\x{18cff}\\x{1b132}\\x{1b155}\\x{1df25}-\\x{1df2a}"
		"\\x{1e030}-\\x{1e06d}\\x{1e4d0}-\\x{1e4eb}\\x{1e5d0}-\\x{1e5ed}\\x{1e5f0}"
		"\\x{2b739}\\x{2ebf0}-\\x{2ee5d}\\x{31350}-\\x{323af}",
	[CAT_M] = "\\x{897}\\x{cf3}\\x{ece}\\x{10d69}-\\x{10d6d}\\x{10efc}-\\x{10eff}\\x{11241}"
		"\\x{113b8}-\\x{113c0}\\x{113c2}\\x{113c5}\\x{113c7}-\\x{113ca}"
		"\\x{113cc}-\\x{113d0}\\x{113d2}\\x{113e1}-\\x{113e2}\\x{11f00}-\\x{11f01}"
		"\\x{11f03}\\x{11f34}-\\x{11f3a}\\x{11f3e}-\\x{11f42}\\x{11f5a}\\x{13440}"
		"\\x{13447}-\\x{13455}\\x{1611e}-\\x{1612f}\\x{1e08f}\\x{1e4ec}-\\x{1e4ef}"
		"\\x{1e5ee}-\\x{1e5ef}",
	[CAT_N] = "\\x{10d40}-\\x{10d49}\\x{116d0}-\\x{116e3}\\x{11bf0}-\\x{11bf9}"
		"\\x{11f50}-\\x{11f59}\\x{16130}-\\x{16139}\\x{16d70}-\\x{16d79}"
		"\\x{1ccf0}-\\x{1ccf9}\\x{1d2c0}-\\x{1d2d3}\\x{1e4f0}-\\x{1e4f9}"
		"\\x{1e5f1}-\\x{1e5fa}",
	[CAT_P] = "\\x{1b4e}-\\x{1b4f}\\x{1b7f}\\x{10d6e}\\x{113d4}-\\x{113d5}\\x{113d7}-\\x{113d8}"
		"\\x{11b00}-\\x{11b09}\\x{11be1}\\x{11f43}-\\x{11f4f}\\x{16d6d}-\\x{16d6f}"
		"\\x{1e5ff}",
	[CAT_S] = "\\x{2427}-\\x{2429}\\x{2ffc}-\\x{2fff}\\x{31e4}-\\x{31e5}\\x{31ef}"
		"\\x{10d8e}-\\x{10d8f}\\x{1cc00}-\\x{1ccef}\\x{1cd00}-\\x{1ceb3}\\x{1f6dc}"
		"\\x{1f774}-\\x{1f776}\\x{1f77b}-\\x{1f77f}\\x{1f7d9}\\x{1f8b2}-\\x{1f8bb}"
		"\\x{1f8c0}-\\x{1f8c1}\\x{1fa75}-\\x{1fa77}\\x{1fa87}-\\x{1fa89}\\x{1fa8f}"
		"\\x{1faad}-\\x{1faaf}\\x{1fabb}-\\x{1fabf}\\x{1fac6}\\x{1face}-\\x{1facf}"
		"\\x{1fada}-\\x{1fadc}\\x{1fadf}\\x{1fae8}-\\x{1fae9}\\x{1faf7}-\\x{1faf8}"
		"\\x{1fbcb}-\\x{1fbef}",
	[CAT_ND] = "\\x{10d40}-\\x{10d49}\\x{116d0}-\\x{116e3}\\x{11bf0}-\\x{11bf9}"
		"\\x{11f50}-\\x{11f59}\\x{16130}-\\x{16139}\\x{16d70}-\\x{16d79}"
		"\\x{1ccf0}-\\x{1ccf9}\\x{1e4f0}-\\x{1e4f9}\\x{1e5f1}-\\x{1e5fa}",
};

/* The general category a \p{name} names, among those above; -1: another. */
static int category_of(const char *name, size_t len)
{
	static const struct {
		const char *name;
		int cat;
	} names[] = {
		{ "l", CAT_L }, { "letter", CAT_L }, { "m", CAT_M }, { "mark", CAT_M },
		{ "combiningmark", CAT_M }, { "n", CAT_N }, { "number", CAT_N }, { "p", CAT_P },
		{ "punct", CAT_P }, { "punctuation", CAT_P }, { "s", CAT_S }, { "symbol", CAT_S },
		{ "nd", CAT_ND }, { "decimalnumber", CAT_ND }, { "digit", CAT_ND },
	};
	char loose[32];
	size_t n = 0;

	/* Oniguruma ignores case, spaces, '-' and '_' in property names */
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (c == ' ' || c == '-' || c == '_')
			continue;
		if (n + 1 == sizeof(loose))
			return -1;
		loose[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	loose[n] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(loose, names[i].name))
			return names[i].cat;
	return -1;
}

/* Oniguruma's \w as class items: Alphabetic, marks, decimal digits and
 * connector punctuation, and below U+0100 its own table's word bytes,
 * which add superscript digits and fractions (PCRE2's \w is letters, all
 * numbers and '_'). */
static void put_word_items(struct strbuf *out)
{
	sb_puts(out, "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{b2}\\x{b3}\\x{b9}\\x{bc}-\\x{be}");
	sb_puts(out, new_cat_items[CAT_L]);
	sb_puts(out, new_cat_items[CAT_M]);
	sb_puts(out, new_cat_items[CAT_ND]);
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static size_t char_len_at(const char *s, size_t len)
{
	uint32_t cp;
	size_t n = utf8_decode(s, len, &cp);

	return n ? n : 1;
}

/*
 * A class escape of Oniguruma at p[0..len) (p[0] is the backslash) that
 * PCRE2 reads differently, written to @out as PCRE2 class items (bare
 * when @in_class, else as a class of its own); its length, or 0 when it
 * is not one of those.
 */
static size_t class_escape(const char *p, size_t len, int in_class, struct strbuf *out)
{
	char e = p[1];
	const char *name, *items = NULL;
	size_t name_len, used;
	int negate = 0, cat;

	switch (e) {
	case 's':
	case 'S':
	case 'h':
	case 'H':
		negate = e == 'S' || e == 'H';
		items = e == 's' || e == 'S' ? space_items : hex_items;
		if (negate && in_class) {	/* the complement's items */
			items = e == 'S' ? nonspace_items : nonhex_items;
			negate = 0;
		}
		if (!in_class)
			sb_puts(out, negate ? "[^" : "[");
		sb_puts(out, items);
		if (!in_class)
			sb_puts(out, "]");
		return 2;
	case 'd':
	case 'D':
	case 'w':
	case 'W':
		negate = e == 'D' || e == 'W';
		if (negate && in_class)
			return 0;	/* no complement to add to: PCRE2's own */
		if (!in_class)
			sb_puts(out, negate ? "[^" : "[");
		if (e == 'd' || e == 'D') {
			sb_puts(out, "\\d");
			sb_puts(out, new_cat_items[CAT_ND]);
		} else {
			put_word_items(out);
		}
		if (!in_class)
			sb_puts(out, "]");
		return 2;
	case 'p':
	case 'P':
		if (len < 3 || p[2] != '{') {
			/* Oniguruma 6.9.10 has no \pL form: the letter itself */
			sb_put(out, &p[1], 1);
			return 2;
		}
		{
			const char *close = memchr(p + 3, '}', len - 3);

			if (!close)
				return 0;
			name = p + 3;
			name_len = (size_t)(close - name);
			used = (size_t)(close + 1 - p);
		}
		negate = e == 'P';
		if (name_len && name[0] == '^') {
			negate = !negate;
			name++;
			name_len--;
		}
		cat = category_of(name, name_len);
		if (cat < 0 || (negate && in_class))
			return 0;
		if (!in_class)
			sb_puts(out, negate ? "[^" : "[");
		sb_puts(out, "\\p{");
		sb_put(out, name, name_len);
		sb_puts(out, "}");
		sb_puts(out, new_cat_items[cat]);
		if (!in_class)
			sb_puts(out, "]");
		return used;
	}
	return 0;
}

/* \b and \B on Oniguruma's word characters */
static void word_boundary(int not, struct strbuf *out)
{
	static const char *const parts[2][4] = {
		{ "(?:(?<=[", "])(?![", "])|(?<![", "])(?=[" },		/* \b */
		{ "(?:(?<=[", "])(?=[", "])|(?<![", "])(?![" },		/* \B */
	};

	for (int i = 0; i < 4; i++) {
		sb_puts(out, parts[not][i]);
		put_word_items(out);
	}
	sb_puts(out, "]))");
}

/*
 * Rewrites Oniguruma pattern @p into @out for PCRE2 (see the top comment).
 * Returns 0, or -EINVAL with @why set for syntax we refuse.
 */
static int onig_to_pcre2(const char *p, size_t len, struct strbuf *out, const char **why)
{
	int in_class = 0;
	size_t class_body = 0;	/* where the current class's items begin */

	for (size_t i = 0; i < len;) {
		char c = p[i];

		if (c == '\\' && i + 1 < len) {
			size_t used = class_escape(p + i, len - i, in_class, out), n;

			if (used) {
				i += used;
				continue;
			}
			if (!in_class && (p[i + 1] == 'b' || p[i + 1] == 'B')) {
				word_boundary(p[i + 1] == 'B', out);
				i += 2;
				continue;
			}
			if (p[i + 1] == 'u' && i + 6 <= len && is_hex(p[i + 2]) && is_hex(p[i + 3]) &&
			    is_hex(p[i + 4]) && is_hex(p[i + 5])) {
				sb_puts(out, "\\x{");
				sb_put(out, p + i + 2, 4);
				sb_puts(out, "}");
				i += 6;
				continue;
			}
			/* any other escape: the backslash and the whole character after it */
			n = 1 + char_len_at(p + i + 1, len - i - 1);
			sb_put(out, p + i, n);
			i += n;
			continue;
		}
		if (in_class) {
			if (c == '[' && i + 1 < len && p[i + 1] == ':') {
				const char *end = memmem(p + i + 2, len - i - 2, ":]", 2);

				if (end) {	/* a POSIX bracket like [:alpha:] */
					sb_put(out, p + i, (size_t)(end + 2 - (p + i)));
					i = (size_t)(end + 2 - p);
					continue;
				}
			} else if (c == '[') {
				*why = "a class nested in a class (Oniguruma-only syntax)";
				return -EINVAL;
			} else if (c == '&' && i + 1 < len && p[i + 1] == '&') {
				*why = "a class intersection && (Oniguruma-only syntax)";
				return -EINVAL;
			} else if (c == ']' && i != class_body) {
				in_class = 0;
			}
			sb_put(out, &c, 1);
			i++;
			continue;
		}
		if (c == '[') {
			in_class = 1;
			sb_put(out, "[", 1);
			i++;
			if (i < len && p[i] == '^') {
				sb_put(out, "^", 1);
				i++;
			}
			class_body = i;
			continue;
		}
		if (c == '{' && i + 1 < len && p[i + 1] == ',') {
			size_t j = i + 2;

			while (j < len && p[j] >= '0' && p[j] <= '9')
				j++;
			if (j > i + 2 && j < len && p[j] == '}') {	/* {,n}: at most n */
				sb_puts(out, "{0,");
				i += 2;
				continue;
			}
		}
		if (c == '(' && i + 2 < len && p[i + 1] == '?') {
			size_t j = i + 2;

			while (j < len && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-'))
				j++;
			if (j > i + 2 && j < len && (p[j] == ':' || p[j] == ')')) {
				sb_puts(out, "(?");
				for (size_t k = i + 2; k < j; k++)
					sb_put(out, p[k] == 'm' ? "s" : &p[k], 1);
				i = j;
				continue;
			}
		}
		sb_put(out, &c, 1);
		i++;
	}
	return 0;
}

/* ---- building ---- */

static int compile(struct step *st, const char *pattern, size_t len, int literal,
		   char *err, size_t errlen)
{
	struct strbuf rewritten = { 0 };
	pcre2_compile_context *cc;
	const char *why = NULL;
	int code = 0, ret = 0;
	PCRE2_SIZE where = 0;

	snprintf(st->shown, sizeof(st->shown), "%.*s", (int)(len > 40 ? 40 : len), pattern);
	if (!literal) {
		if (onig_to_pcre2(pattern, len, &rewritten, &why)) {
			free(rewritten.s);
			return dsv4_errf(err, errlen, -EINVAL,
					 "tokenizer.json: pre_tokenizer regex /%s/ uses %s",
					 st->shown, why);
		}
		if (rewritten.oom)
			ret = -ENOMEM;
	}
	cc = pcre2_compile_context_create(NULL);
	if (ret || !cc || pcre2_set_newline(cc, PCRE2_NEWLINE_LF)) {
		free(rewritten.s);
		pcre2_compile_context_free(cc);
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	}
	if (literal)
		st->re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_LITERAL, &code,
				       &where, cc);
	else
		st->re = pcre2_compile((PCRE2_SPTR)(rewritten.s ? rewritten.s : ""), rewritten.len,
				       PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &code, &where, cc);
	pcre2_compile_context_free(cc);
	free(rewritten.s);
	if (!st->re) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(code, msg, sizeof(msg));
		return dsv4_errf(err, errlen, -EINVAL,
				 "tokenizer.json: pre_tokenizer regex /%s/ does not compile: %s",
				 st->shown, (const char *)msg);
	}
	/* JIT when the platform has it; the interpreter otherwise */
	pcre2_jit_compile(st->re, PCRE2_JIT_COMPLETE);
	return 0;
}

/* An optional boolean field: 0 or 1, or -1 (and a message) when it is not one. */
static int opt_bool(const json_t *obj, const char *key, int dflt, const char *what, char *err,
		    size_t errlen)
{
	const json_t *v = json_object_get(obj, key);

	if (!v)
		return dflt;
	if (!json_is_boolean(v)) {
		dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: %s.%s is not true or false", what,
			  key);
		return -1;
	}
	return json_is_true(v);
}

static int add_step(struct pretok *pt, const json_t *spec, int depth, char *err, size_t errlen)
{
	const char *type = json_string_value(json_object_get(spec, "type"));
	struct step *st;

	if (!json_is_object(spec) || !type)
		return dsv4_errf(err, errlen, -EINVAL,
				 "tokenizer.json: a pre_tokenizer that is not an object with a type");
	if (!strcmp(type, "Sequence")) {
		const json_t *list = json_object_get(spec, "pretokenizers"), *e;
		size_t i;

		if (!json_is_array(list))
			return dsv4_errf(err, errlen, -EINVAL,
					 "tokenizer.json: pre_tokenizer Sequence needs a pretokenizers list");
		if (depth > 8)
			return dsv4_errf(err, errlen, -EINVAL,
					 "tokenizer.json: pre_tokenizer Sequences nest too deep");
		json_array_foreach(list, i, e) {
			int ret = add_step(pt, e, depth + 1, err, errlen);

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
		/* HF's defaults where a key is missing: add_prefix_space and use_regex true */
		int prefix = opt_bool(spec, "add_prefix_space", 1, "ByteLevel", err, errlen);
		int use_regex = opt_bool(spec, "use_regex", 1, "ByteLevel", err, errlen);

		if (prefix < 0 || use_regex < 0)
			return -EINVAL;
		st->byte_level = 1;
		st->prefix_space = prefix;
		st->behavior = B_ISOLATED;
		pt->n++;	/* counted now so that pretok_free releases the regex */
		if (use_regex)
			return compile(st, gpt2_regex, sizeof(gpt2_regex) - 1, 0, err, errlen);
		return 0;
	}
	if (!strcmp(type, "Split")) {
		const json_t *pat = json_object_get(spec, "pattern");
		const json_t *rx = json_object_get(pat, "Regex"), *lit = json_object_get(pat, "String");
		const json_t *beh = json_object_get(spec, "behavior");
		int b = -1, invert = opt_bool(spec, "invert", 0, "Split", err, errlen);

		if (invert < 0)
			return -EINVAL;
		for (int i = 0; json_is_string(beh) && i < 5; i++)
			if (!strcmp(json_string_value(beh), behavior_names[i]))
				b = i;
		if (b < 0)
			return dsv4_errf(err, errlen, -EINVAL,
					 "tokenizer.json: Split behavior '%s' is none of Removed, "
					 "Isolated, MergedWithPrevious, MergedWithNext, Contiguous",
					 json_is_string(beh) ? json_string_value(beh) : "?");
		if (!json_is_object(pat) || json_object_size(pat) != 1 ||
		    (!json_is_string(rx) && !json_is_string(lit)))
			return dsv4_errf(err, errlen, -EINVAL,
					 "tokenizer.json: Split needs a pattern {\"Regex\": ...} or "
					 "{\"String\": ...}");
		st->behavior = (enum behavior)b;
		st->invert = invert;
		pt->n++;
		return compile(st, json_string_value(rx ? rx : lit), json_string_length(rx ? rx : lit),
			       !rx, err, errlen);
	}
	return dsv4_errf(err, errlen, -ENOTSUP,
			 "tokenizer.json: pre_tokenizer type '%s' is not supported "
			 "(Sequence, Split and ByteLevel are)", type);
}

int pretok_build(const json_t *spec, struct pretok **out, char *err, size_t errlen)
{
	struct pretok *pt = calloc(1, sizeof(*pt));
	int ret;

	*out = NULL;
	if (!pt)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	ret = spec && !json_is_null(spec) ? add_step(pt, spec, 0, err, errlen) : 0;
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
	for (int i = 0; i < pt->n; i++)
		pcre2_code_free(pt->steps[i].re);
	free(pt);
}

/* ---- running ---- */

/* A gap or a match of one Split, before the behaviour is applied. */
struct seg {
	size_t start, end;
	int is_match;
};

struct span_list {
	struct span *v;
	size_t n, cap;
};

struct pretok_work {
	char *buf[2];			/* text made by ByteLevel steps */
	size_t buf_cap[2];
	struct span_list list[2];	/* pieces before / after a step */
	struct seg *seg, *acc;
	size_t seg_cap;
	pcre2_match_data *md;
};

struct pretok_work *pretok_work_new(void)
{
	struct pretok_work *w = calloc(1, sizeof(*w));

	if (w && !(w->md = pcre2_match_data_create(1, NULL))) {
		free(w);
		w = NULL;
	}
	return w;
}

void pretok_work_free(struct pretok_work *w)
{
	if (!w)
		return;
	for (int i = 0; i < 2; i++) {
		free(w->buf[i]);
		free(w->list[i].v);
	}
	free(w->seg);
	free(w->acc);
	pcre2_match_data_free(w->md);
	free(w);
}

static int span_push(struct span_list *l, size_t off, size_t len)
{
	if (!len)
		return 0;	/* HF drops empty pieces */
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct span *grown;

		if (cap > SIZE_MAX / sizeof(*grown))
			return -ENOMEM;
		grown = realloc(l->v, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		l->v = grown;
		l->cap = cap;
	}
	l->v[l->n++] = (struct span){ off, len };
	return 0;
}

static int seg_reserve(struct pretok_work *w, size_t n)
{
	struct seg *s, *a;

	if (n <= w->seg_cap)
		return 0;
	if (n > SIZE_MAX / 2 / sizeof(struct seg))
		return -ENOMEM;
	n *= 2;
	s = realloc(w->seg, n * sizeof(*s));
	if (!s)
		return -ENOMEM;
	w->seg = s;
	a = realloc(w->acc, n * sizeof(*a));
	if (!a)
		return -ENOMEM;
	w->acc = a;
	w->seg_cap = n;
	return 0;
}

static int buf_reserve(struct pretok_work *w, int which, size_t n)
{
	char *grown;

	if (n <= w->buf_cap[which])
		return 0;
	grown = realloc(w->buf[which], n);
	if (!grown)
		return -ENOMEM;
	w->buf[which] = grown;
	w->buf_cap[which] = n;
	return 0;
}

/* The next match of @st in s[0..len) at or after @from: 1 (with its
 * bounds), 0 for none, or negative errno with a message. */
static int find(const struct step *st, struct pretok_work *w, const char *s, size_t len,
		size_t from, size_t *ms, size_t *me, char *err, size_t errlen)
{
	int rc = pcre2_match(st->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, w->md, NULL);
	PCRE2_SIZE *ov;

	if (rc == PCRE2_ERROR_JIT_STACKLIMIT)	/* the interpreter keeps its stack on the heap */
		rc = pcre2_match(st->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
				 w->md, NULL);
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc < 0) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(rc, msg, sizeof(msg));
		return dsv4_errf(err, errlen, -ERANGE,
				 "tokenize: pre_tokenizer regex /%s/ failed on a %zu-byte piece: %s",
				 st->shown, len, (const char *)msg);
	}
	ov = pcre2_get_ovector_pointer(w->md);
	if (ov[1] < ov[0])	/* \K in a lookaround can do this; Oniguruma cannot */
		return dsv4_errf(err, errlen, -ERANGE,
				 "tokenize: pre_tokenizer regex /%s/ gave a match that ends before it "
				 "starts", st->shown);
	*ms = ov[0];
	*me = ov[1];
	return 1;
}

/*
 * One Split over the piece @p of @base: its pieces go to @out.  Matches
 * and the gaps between them alternate (invert swaps which is which), then
 * the behaviour merges or drops matches, as HF's NormalizedString::split.
 */
static int split_piece(const struct step *st, struct pretok_work *w, const char *base,
		       struct span p, struct span_list *out, char *err, size_t errlen)
{
	const char *s = base + p.off;
	size_t len = p.len, n = 0, na = 0, prev = 0, last_end = 0, last_match_end = 0, ms, me;
	int have_match = 0, prev_match = 0, ret;
	struct seg *acc;

	while (last_end <= len) {
		ret = find(st, w, s, len, last_end, &ms, &me, err, errlen);
		if (ret < 0)
			return ret;
		if (!ret)
			break;
		if (ms == me && have_match && last_match_end == me) {
			/* the onig crate's rule against looping on empty matches */
			last_end += last_end < len ? char_len_at(s + last_end, len - last_end) : 1;
			continue;
		}
		last_end = me;
		last_match_end = me;
		have_match = 1;
		if (seg_reserve(w, n + 3))
			return dsv4_errf(err, errlen, -ENOMEM, "tokenize: out of memory");
		if (prev != ms)
			w->seg[n++] = (struct seg){ prev, ms, 0 };
		w->seg[n++] = (struct seg){ ms, me, 1 };
		prev = me;
	}
	if (seg_reserve(w, n + 1))
		return dsv4_errf(err, errlen, -ENOMEM, "tokenize: out of memory");
	if (prev != len)
		w->seg[n++] = (struct seg){ prev, len, 0 };
	for (size_t i = 0; i < n; i++)
		w->seg[i].is_match ^= st->invert;
	acc = w->acc;
	switch (st->behavior) {
	case B_ISOLATED:
		memcpy(acc, w->seg, n * sizeof(*acc));
		na = n;
		break;
	case B_REMOVED:
		for (size_t i = 0; i < n; i++)
			if (!w->seg[i].is_match)
				acc[na++] = w->seg[i];
		break;
	case B_CONTIGUOUS:	/* runs of the same kind become one piece */
		for (size_t i = 0; i < n; i++) {
			if (w->seg[i].is_match == prev_match && na)
				acc[na - 1].end = w->seg[i].end;
			else
				acc[na++] = w->seg[i];
			prev_match = w->seg[i].is_match;
		}
		break;
	case B_MERGED_PREV:
		for (size_t i = 0; i < n; i++) {
			if (w->seg[i].is_match && !prev_match && na)
				acc[na - 1].end = w->seg[i].end;
			else
				acc[na++] = w->seg[i];
			prev_match = w->seg[i].is_match;
		}
		break;
	case B_MERGED_NEXT:	/* HF walks from the end, then reverses */
		for (size_t i = n; i-- > 0;) {
			if (w->seg[i].is_match && !prev_match && na)
				acc[na - 1].start = w->seg[i].start;
			else
				acc[na++] = w->seg[i];
			prev_match = w->seg[i].is_match;
		}
		for (size_t i = 0; i < na / 2; i++) {
			struct seg t = acc[i];

			acc[i] = acc[na - 1 - i];
			acc[na - 1 - i] = t;
		}
		break;
	}
	for (size_t i = 0; i < na; i++)
		if (span_push(out, p.off + acc[i].start, acc[i].end - acc[i].start))
			return dsv4_errf(err, errlen, -ENOMEM, "tokenize: out of memory");
	return 0;
}

/* ByteLevel's add_prefix_space: each piece copied into buffer @to, with a
 * space in front when it does not start with one. */
static int prefix_spaces(struct pretok_work *w, int to, const char *base,
			 const struct span_list *in, struct span_list *out)
{
	size_t need = 0, o = 0;

	for (size_t k = 0; k < in->n; k++) {
		if (in->v[k].len > SIZE_MAX - 2 - need)
			return -ENOMEM;
		need += in->v[k].len + 1;
	}
	if (buf_reserve(w, to, need + 1))
		return -ENOMEM;
	for (size_t k = 0; k < in->n; k++) {
		const char *s = base + in->v[k].off;
		size_t start = o;

		if (s[0] != ' ')
			w->buf[to][o++] = ' ';
		memcpy(w->buf[to] + o, s, in->v[k].len);
		o += in->v[k].len;
		if (span_push(out, start, o - start))
			return -ENOMEM;
	}
	return 0;
}

/* ByteLevel's mapping: each byte as the UTF-8 of its GPT-2 character. */
static int map_bytes(struct pretok_work *w, int to, const char *base,
		     const struct span_list *in, struct span_list *out)
{
	size_t need = 0, o = 0;

	for (size_t k = 0; k < in->n; k++) {
		if (in->v[k].len > (SIZE_MAX - 1 - need) / 2)
			return -ENOMEM;
		need += in->v[k].len * 2;	/* every mapped character is below U+0800 */
	}
	if (buf_reserve(w, to, need + 1))
		return -ENOMEM;
	for (size_t k = 0; k < in->n; k++) {
		const unsigned char *s = (const unsigned char *)base + in->v[k].off;
		char *d = w->buf[to];
		size_t start = o;

		for (size_t i = 0; i < in->v[k].len; i++) {
			uint32_t c = byte_char(s[i]);

			if (c < 0x80) {
				d[o++] = (char)c;
			} else {
				d[o++] = (char)(0xc0 | c >> 6);
				d[o++] = (char)(0x80 | (c & 0x3f));
			}
		}
		if (span_push(out, start, o - start))
			return -ENOMEM;
	}
	return 0;
}

int pretok_run(const struct pretok *pt, struct pretok_work *w, const char *text, size_t len,
	       const char **base, const struct span **pieces, size_t *n, char *err, size_t errlen)
{
	const char *cur_base = text;
	int cur_buf = -1;	/* which of w->buf holds cur_base's text; -1: @text */
	int cur = 0, ret = 0;

	w->list[0].n = 0;
	if (span_push(&w->list[0], 0, len))
		return dsv4_errf(err, errlen, -ENOMEM, "tokenize: out of memory");
	for (int i = 0; i < pt->n && !ret; i++) {
		const struct step *st = &pt->steps[i];
		struct span_list *in, *out;
		int to;

		if (st->byte_level && st->prefix_space) {
			to = cur_buf == 0 ? 1 : 0;
			in = &w->list[cur];
			out = &w->list[!cur];
			out->n = 0;
			if (prefix_spaces(w, to, cur_base, in, out))
				return dsv4_errf(err, errlen, -ENOMEM, "tokenize: out of memory");
			cur_base = w->buf[to];
			cur_buf = to;
			cur = !cur;
		}
		if (st->re) {
			in = &w->list[cur];
			out = &w->list[!cur];
			out->n = 0;
			for (size_t k = 0; k < in->n && !ret; k++)
				ret = split_piece(st, w, cur_base, in->v[k], out, err, errlen);
			cur = !cur;
		}
		if (st->byte_level && !ret) {
			to = cur_buf == 0 ? 1 : 0;
			in = &w->list[cur];
			out = &w->list[!cur];
			out->n = 0;
			if (map_bytes(w, to, cur_base, in, out))
				return dsv4_errf(err, errlen, -ENOMEM, "tokenize: out of memory");
			cur_base = w->buf[to];
			cur_buf = to;
			cur = !cur;
		}
	}
	if (ret)
		return ret;
	*base = cur_base;
	*pieces = w->list[cur].v;
	*n = w->list[cur].n;
	return 0;
}
