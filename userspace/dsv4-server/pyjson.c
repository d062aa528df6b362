// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Python's json.dumps(v, ensure_ascii=False) for what jansson holds: the
 * text DeepSeek's encoder puts in prompts (tool schemas, non-string tool
 * arguments, response formats) and in parsed tool-call arguments, so it
 * must match byte for byte.  Separators ", " and ": "; object keys in
 * insertion order; strings escape only '"', '\\' and control characters
 * (non-ASCII stays raw); floats as Python's repr.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "chat_buf.h"

static void string_out(struct chat_buf *b, const char *s, size_t n)
{
	size_t run = 0;

	cbuf_put(b, "\"", 1);
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
		cbuf_put(b, s + run, i - run);
		cbuf_add(b, esc);
		run = i + 1;
	}
	cbuf_put(b, s + run, n - run);
	cbuf_put(b, "\"", 1);
}

/*
 * The shortest decimal digits that read back as @x (> 0), and of those the
 * closest: what Python's repr gets from dtoa mode 0.  The correctly rounded
 * p-digit string is the closest p-digit one; when it does not read back but
 * a p-digit string does (at a power of two the gap below x is half the gap
 * above), that string is one of its two neighbours.  Writes the digits
 * (no dot, no trailing zeros) to @d and returns the power of ten of the
 * first one.
 */
static int shortest_digits(double x, char d[24])
{
	char tmp[48];

	for (int p = 1; p <= 17; p++) {
		uint64_t m = 0;
		int e10;
		char *e;

		snprintf(tmp, sizeof(tmp), "%.*e", p - 1, x);
		e = strchr(tmp, 'e');
		e10 = atoi(e + 1);
		for (const char *c = tmp; c < e; c++)
			if (*c != '.')
				m = m * 10 + (uint64_t)(*c - '0');
		for (int k = 0; k < 3; k++) {
			uint64_t cand = k == 0 ? m : k == 1 ? m - 1 : m + 1;
			int n;

			if (!cand)
				continue;
			snprintf(tmp, sizeof(tmp), "%" PRIu64 "e%d", cand, e10 - (p - 1));
			if (strtod(tmp, NULL) != x)
				continue;
			n = snprintf(d, 24, "%" PRIu64, cand);
			/* 10^p after a carry, 99..9 after a borrow: one digit more
			 * or less than p */
			e10 += n - p;
			while (n > 1 && d[n - 1] == '0')
				d[--n] = 0;
			return e10;
		}
	}
	/* not reached: 17 significant digits always read back */
	snprintf(d, 24, "0");
	return 0;
}

/* Python's float repr: fixed notation when -4 <= exponent < 16 (with ".0"
 * when integral), else d[.ddd]e+XX with at least two exponent digits. */
static void real_out(struct chat_buf *b, double x)
{
	char d[24], out[64];
	size_t o = 0, nd;
	int e10;

	if (x == 0) {
		cbuf_add(b, signbit(x) ? "-0.0" : "0.0");
		return;
	}
	if (!isfinite(x)) {	/* jansson cannot hold these; Python's spelling */
		cbuf_add(b, isnan(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (x < 0)
		out[o++] = '-';
	e10 = shortest_digits(fabs(x), d);
	nd = strlen(d);
	if (e10 >= -4 && e10 < 16) {
		if (e10 >= 0) {
			size_t ip = (size_t)e10 + 1;

			for (size_t i = 0; i < ip; i++)
				out[o++] = i < nd ? d[i] : '0';
			out[o++] = '.';
			if (nd <= ip)
				out[o++] = '0';
			for (size_t i = ip; i < nd; i++)
				out[o++] = d[i];
		} else {
			out[o++] = '0';
			out[o++] = '.';
			for (int i = 0; i < -e10 - 1; i++)
				out[o++] = '0';
			for (size_t i = 0; i < nd; i++)
				out[o++] = d[i];
		}
		out[o] = 0;
	} else {
		out[o++] = d[0];
		if (nd > 1) {
			out[o++] = '.';
			for (size_t i = 1; i < nd; i++)
				out[o++] = d[i];
		}
		snprintf(out + o, sizeof(out) - o, "e%c%02d", e10 < 0 ? '-' : '+', abs(e10));
	}
	cbuf_add(b, out);
}

static void value_out(struct chat_buf *b, const json_t *v)
{
	char num[32];

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *val;
		int first = 1;

		cbuf_put(b, "{", 1);
		json_object_foreach((json_t *)v, key, val) {
			if (!first)
				cbuf_put(b, ", ", 2);
			first = 0;
			string_out(b, key, strlen(key));
			cbuf_put(b, ": ", 2);
			value_out(b, val);
		}
		cbuf_put(b, "}", 1);
		break;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *val;

		cbuf_put(b, "[", 1);
		json_array_foreach(v, i, val) {
			if (i)
				cbuf_put(b, ", ", 2);
			value_out(b, val);
		}
		cbuf_put(b, "]", 1);
		break;
	}
	case JSON_STRING:
		string_out(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		cbuf_add(b, num);
		break;
	case JSON_REAL:
		real_out(b, json_real_value(v));
		break;
	case JSON_TRUE:
		cbuf_add(b, "true");
		break;
	case JSON_FALSE:
		cbuf_add(b, "false");
		break;
	default:
		cbuf_add(b, "null");
	}
}

char *chat_json_dumps(const json_t *v)
{
	struct chat_buf b = { 0 };

	if (!v)
		return NULL;
	value_out(&b, v);
	return cbuf_take(&b);
}

char *chat_json_string(const char *s, size_t len)
{
	struct chat_buf b = { 0 };

	string_out(&b, s, len);
	return cbuf_take(&b);
}
