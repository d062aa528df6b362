// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Python's json.dumps(v, ensure_ascii=False) for what jansson holds: the
 * text DeepSeek's encoder puts in prompts (tool schemas, non-string tool
 * arguments), so it must match byte for byte.  Separators ", " and ": ";
 * strings escape only '"', '\\' and control characters; floats as Python's
 * repr (shortest round-trip digits).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

struct sbuf {
	char *s;
	size_t len, cap;
	int failed;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *grown = realloc(b->s, cap);

		if (!grown) {
			b->failed = 1;
			return;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = 0;
}

static void puts_(struct sbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void string_out(struct sbuf *b, const char *s, size_t n)
{
	size_t run = 0;

	put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[8];

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			if (c < 0x20) {
				snprintf(u, sizeof(u), "\\u%04x", c);
				esc = u;
			}
		}
		if (!esc)
			continue;
		put(b, s + run, i - run);
		puts_(b, esc);
		run = i + 1;
	}
	put(b, s + run, n - run);
	put(b, "\"", 1);
}

/* Python's float repr: the shortest digits that read back the same;
 * fixed notation for 1e-4 <= |x| < 1e16 (with ".0" when integral), else
 * d.ddde+XX. */
static void real_out(struct sbuf *b, double x)
{
	char digits[40], out[64];
	int prec, exp10;
	char *e;

	if (x == 0) {
		puts_(b, signbit(x) ? "-0.0" : "0.0");
		return;
	}
	for (prec = 1; prec <= 17; prec++) {
		snprintf(digits, sizeof(digits), "%.*e", prec - 1, x);
		if (strtod(digits, NULL) == x)
			break;
	}
	/* digits: [-]d[.ddd]e[+-]XX */
	e = strchr(digits, 'e');
	exp10 = atoi(e + 1);
	*e = 0;
	if (exp10 >= -4 && exp10 < 16) {
		const char *p = digits;
		size_t m = 0, o = 0;
		char mant[24];

		if (*p == '-')
			out[o++] = *p++;
		for (; *p; p++)
			if (*p != '.')
				mant[m++] = *p;
		if (exp10 >= 0) {
			size_t ip = (size_t)exp10 + 1;

			for (size_t i = 0; i < ip; i++)
				out[o++] = i < m ? mant[i] : '0';
			out[o++] = '.';
			if (m <= ip)
				out[o++] = '0';
			for (size_t i = ip; i < m; i++)
				out[o++] = mant[i];
		} else {
			out[o++] = '0';
			out[o++] = '.';
			for (int i = 0; i < -exp10 - 1; i++)
				out[o++] = '0';
			for (size_t i = 0; i < m; i++)
				out[o++] = mant[i];
		}
		out[o] = 0;
		puts_(b, out);
		return;
	}
	snprintf(out, sizeof(out), "%se%c%02d", digits, exp10 < 0 ? '-' : '+', abs(exp10));
	puts_(b, out);
}

static void value_out(struct sbuf *b, const json_t *v)
{
	char num[32];

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *val;
		int first = 1;

		put(b, "{", 1);
		json_object_foreach((json_t *)v, key, val) {
			if (!first)
				put(b, ", ", 2);
			first = 0;
			string_out(b, key, strlen(key));
			put(b, ": ", 2);
			value_out(b, val);
		}
		put(b, "}", 1);
		break;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *val;

		put(b, "[", 1);
		json_array_foreach(v, i, val) {
			if (i)
				put(b, ", ", 2);
			value_out(b, val);
		}
		put(b, "]", 1);
		break;
	}
	case JSON_STRING:
		string_out(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		puts_(b, num);
		break;
	case JSON_REAL:
		real_out(b, json_real_value(v));
		break;
	case JSON_TRUE:
		puts_(b, "true");
		break;
	case JSON_FALSE:
		puts_(b, "false");
		break;
	default:
		puts_(b, "null");
	}
}

char *chat_json_dumps(const json_t *v)
{
	struct sbuf b = { 0 };

	value_out(&b, v);
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s ? b.s : strdup("");
}

char *chat_json_string(const char *s, size_t len)
{
	struct sbuf b = { 0 };

	string_out(&b, s, len);
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}
