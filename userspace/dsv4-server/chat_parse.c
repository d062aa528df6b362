// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The model's output back to reasoning, content and tool calls, as the
 * official parse_message_from_completion_text reads it, but incremental:
 * chat_stream_feed takes text as it is decoded and reports what is certain
 * so far; chat_parse runs the same machine over a whole text.
 *
 * The official parser is a chain of "read until the first of these
 * markers" steps.  Each step here is decided only once the text that
 * settles it has arrived: a marker found stays the first one, because none
 * of the markers searched for together can begin inside another (each has
 * its '<' or '/' only at its start, and "\n\n<" cannot overlap "</think>").
 * So every way of cutting the text into feeds gives the same result, and
 * content streams out at once except for a tail that may begin a marker.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* memmem, strndup */
#endif
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "chat_buf.h"

#define TOOLS_START "\n\n<" CHAT_DSML "tool_calls"
#define TOOLS_END "</" CHAT_DSML "tool_calls>"
#define INVOKE "<" CHAT_DSML "invoke"
#define INVOKE_END "</" CHAT_DSML "invoke"
#define PARAM "<" CHAT_DSML "parameter"
#define PARAM_END "/" CHAT_DSML "parameter"

enum phase {
	PH_REASONING,	/* thinking mode, before </think> */
	PH_CONTENT,
	PH_BLOCK,	/* inside the tool-call block */
	PH_AFTER,	/* after the block: only EOS may follow */
	PH_RAW,		/* a broken block: the rest is content */
	PH_DONE,	/* after EOS: the rest is ignored */
};

/* Where the block reader is, in the official parse_tool_calls' loops. */
enum step {
	ST_SEP,		/* ">\n", then an invoke or the block's end tag */
	ST_NAME,	/* an invoke's ' name="...">\n' */
	ST_PARAM,	/* a parameter, up to its end tag */
	ST_PARAM_SEP,	/* ">\n", then another parameter or the invoke's end */
};

enum verdict { V_MORE, V_COMPLETE, V_BROKEN, V_NOMEM };

struct param {
	size_t at, len;		/* the name, in the stream's buffer */
	uint64_t hash;
};

struct chat_stream {
	enum chat_mode mode;
	enum phase phase;
	struct chat_buf buf;	/* all the text fed */
	size_t pos;		/* the first byte not consumed */
	size_t scan;		/* where the search for the current markers resumes */
	size_t span_at;		/* start of the reasoning or content being read */
	bool malformed, nomem;
	/* the tool-call block */
	size_t block_at;	/* where "\n\n<｜DSML｜tool_calls" starts */
	enum step step;
	char *name;		/* the invoke being read */
	struct chat_buf args;	/* its arguments' JSON so far */
	struct param *params;
	size_t n_params, cap_params;
	struct chat_tool_call *calls;	/* complete invokes, out when the block closes */
	size_t n_calls;
};

static void calls_free(struct chat_tool_call *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].arguments);
	}
	free(v);
}

static const char *text_of(const struct chat_stream *s)
{
	return s->buf.s ? s->buf.s : "";
}

/*
 * _read_until_stop: the earliest of @stops at or after s->pos, its index
 * in *which and its position returned; *which = -1 when none is there yet.
 * The search resumes where the last one left off (s->scan; 0 = s->pos), so
 * text fed piece by piece is searched once.
 */
static size_t find_stop(struct chat_stream *s, const char *const *stops, int n, int *which)
{
	const char *t = text_of(s);
	size_t len = s->buf.len, from = s->scan > s->pos ? s->scan : s->pos;
	size_t best = SIZE_MAX, maxl = 0;

	*which = -1;
	for (int i = 0; i < n; i++) {
		size_t sl = strlen(stops[i]);
		const char *hit = from < len ? memmem(t + from, len - from, stops[i], sl) : NULL;

		maxl = sl > maxl ? sl : maxl;
		if (hit && (size_t)(hit - t) < best) {
			best = (size_t)(hit - t);
			*which = i;
		}
	}
	if (*which < 0)	/* a marker can only still start in the last maxl-1 bytes */
		s->scan = len >= maxl ? len - maxl + 1 : 0;
	return best;
}

/* Bytes at the end of t[from..len) that could begin one of @stops. */
static size_t hold(const char *t, size_t from, size_t len, const char *const *stops, int n)
{
	size_t h = 0;

	for (int i = 0; i < n; i++) {
		size_t sl = strlen(stops[i]);

		for (size_t k = sl - 1 < len - from ? sl - 1 : len - from; k > h; k--)
			if (!memcmp(t + len - k, stops[i], k)) {
				h = k;
				break;
			}
	}
	return h;
}

/* Bytes at the end of t[from..end) that start a UTF-8 sequence not yet
 * complete: held back so that what is emitted stays valid UTF-8. */
static size_t utf8_partial(const char *t, size_t from, size_t end)
{
	for (size_t k = 1; k <= 3 && k <= end - from; k++) {
		unsigned char c = (unsigned char)t[end - k];
		size_t need;

		if ((c & 0xc0) == 0x80)
			continue;
		need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		return need > k ? k : 0;
	}
	return 0;
}

/* Where emission may stop in t[from..len): all of it at the end of the
 * text, else short of a possible marker start or a partial character. */
static size_t emit_end(const char *t, size_t from, size_t len, const char *const *stops, int n,
		       bool final)
{
	size_t end;

	if (final)
		return len;
	end = len - hold(t, from, len, stops, n);
	/* a held marker starts with an ASCII byte: nothing partial before it */
	if (end == len)
		end -= utf8_partial(t, from, end);
	return end;
}

static void emit(struct chat_stream *s, struct chat_events *ev, bool reasoning, size_t from,
		 size_t to)
{
	char **dst = reasoning ? &ev->reasoning : &ev->content;
	size_t *dlen = reasoning ? &ev->reasoning_len : &ev->content_len;
	char *grown;

	if (to <= from || s->nomem)
		return;
	grown = realloc(*dst, *dlen + (to - from) + 1);
	if (!grown) {
		s->nomem = true;
		return;
	}
	memcpy(grown + *dlen, text_of(s) + from, to - from);
	*dlen += to - from;
	grown[*dlen] = 0;
	*dst = grown;
}

/* The official parser's last check: no special token in reasoning or
 * content. */
static bool has_special(const char *t, size_t n)
{
	static const char *const sp[] = { CHAT_BOS, CHAT_EOS, CHAT_THINK_START, CHAT_THINK_END,
					  CHAT_DSML };

	for (int i = 0; i < 5; i++)
		if (memmem(t, n, sp[i], strlen(sp[i])))
			return true;
	return false;
}

/* Length of the Python str.isspace() character at s[0..n), or 0. */
static size_t py_space(const unsigned char *s, size_t n)
{
	if (!n)
		return 0;
	if ((s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x20))
		return 1;
	if (n >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0))
		return 2;
	if (n < 3)
		return 0;
	if ((s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) ||
	    (s[0] == 0xe2 && s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 ||
					      s[2] == 0xa9 || s[2] == 0xaf)) ||
	    (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) ||
	    (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80))
		return 3;
	return 0;
}

/*
 * ^\s*name="(.*?)">\n$ over an invoke's head (re.DOTALL; Python's $ also
 * matches before a final "\n", so the head may end '">\n' or '">\n\n').
 * 0 with the name (malloc'd) in *name, -EINVAL, or -ENOMEM.
 */
static int match_name(const char *s, size_t n, char **name)
{
	size_t i = 0, k, sp;

	while ((sp = py_space((const unsigned char *)s + i, n - i)))
		i += sp;
	if (n - i < 6 || memcmp(s + i, "name=\"", 6))
		return -EINVAL;
	i += 6;
	if (n >= i + 3 && !memcmp(s + n - 3, "\">\n", 3))
		k = n - 3;
	else if (n >= i + 4 && !memcmp(s + n - 4, "\">\n\n", 4))
		k = n - 4;
	else
		return -EINVAL;
	*name = strndup(s + i, k - i);
	return *name ? 0 : -ENOMEM;
}

/*
 * ^ name="(.*?)" string="(true|false)">(.*?)<$ over a parameter (re.DOTALL):
 * the name ends at the first '" string="true">' or '" string="false">'; the
 * value runs to the final '<' (or the '<' before a final "\n").
 */
static bool match_param(const char *s, size_t n, size_t *name_len, bool *is_str,
			size_t *val_at, size_t *val_len)
{
	static const char *const marks[] = { "\" string=\"true\">", "\" string=\"false\">" };
	size_t e;

	if (n >= 1 && s[n - 1] == '<')
		e = n - 1;
	else if (n >= 2 && s[n - 2] == '<' && s[n - 1] == '\n')
		e = n - 2;
	else
		return false;
	if (e < 7 || memcmp(s, " name=\"", 7))
		return false;
	for (size_t k = 7; k < e; k++) {
		if (s[k] != '"')
			continue;
		for (int m = 0; m < 2; m++) {
			size_t ml = strlen(marks[m]);

			if (k + ml <= e && !memcmp(s + k, marks[m], ml)) {
				*name_len = k - 7;
				*is_str = m == 0;
				*val_at = k + ml;
				*val_len = e - k - ml;
				return true;
			}
		}
	}
	return false;
}

/* Could t[0..n) still grow into ">\n" followed by one of @stops? */
static bool sep_may_follow(const char *t, size_t n, const char *const *stops, int ns)
{
	for (int i = 0; i < ns; i++) {
		size_t sl = strlen(stops[i]);
		size_t m1 = n < 2 ? n : 2, m2 = n > 2 ? n - 2 : 0;

		if (m2 > sl)
			m2 = sl;
		if (!memcmp(t, ">\n", m1) && !memcmp(t + m1, stops[i], m2))
			return true;
	}
	return false;
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

static int param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* An invoke's end: its parameter names must differ (the official code
 * raises on a repeat); the call joins those held for the block's end. */
static enum verdict finish_invoke(struct chat_stream *s)
{
	const char *t = text_of(s);
	struct chat_tool_call *grown;

	if (s->n_params > 1)
		qsort(s->params, s->n_params, sizeof(*s->params), param_cmp);
	for (size_t i = 0; i < s->n_params; i++)
		for (size_t j = i + 1; j < s->n_params && !param_cmp(&s->params[i], &s->params[j]);
		     j++)
			if (!memcmp(t + s->params[i].at, t + s->params[j].at, s->params[i].len))
				return V_BROKEN;
	cbuf_add(&s->args, "}");
	if (s->args.failed)
		return V_NOMEM;
	grown = realloc(s->calls, (s->n_calls + 1) * sizeof(*grown));
	if (!grown)
		return V_NOMEM;
	s->calls = grown;
	s->calls[s->n_calls].name = s->name;
	s->calls[s->n_calls++].arguments = cbuf_take(&s->args);
	s->name = NULL;
	s->n_params = 0;
	return V_COMPLETE;
}

/* One parameter: its name and value into the arguments, as
 * decode_dsml_to_arguments writes them (string values JSON-quoted,
 * others copied as they are). */
static enum verdict add_param(struct chat_stream *s, size_t at, size_t n)
{
	const char *t = text_of(s);
	size_t name_len, val_at, val_len;
	bool is_str;

	if (!match_param(t + at, n, &name_len, &is_str, &val_at, &val_len))
		return V_BROKEN;
	if (s->n_params == s->cap_params) {
		size_t cap = s->cap_params ? s->cap_params * 2 : 8;
		struct param *grown = realloc(s->params, cap * sizeof(*grown));

		if (!grown)
			return V_NOMEM;
		s->params = grown;
		s->cap_params = cap;
	}
	s->params[s->n_params++] = (struct param){ at + 7, name_len, fnv1a(t + at + 7, name_len) };
	if (s->n_params > 1)
		cbuf_add(&s->args, ", ");
	cbuf_add_free(&s->args, chat_json_string(t + at + 7, name_len));
	cbuf_add(&s->args, ": ");
	if (is_str)
		cbuf_add_free(&s->args, chat_json_string(t + at + val_at, val_len));
	else
		cbuf_put(&s->args, t + at + val_at, val_len);
	return s->args.failed ? V_NOMEM : V_MORE;
}

/* parse_tool_calls, resumable: V_MORE until the text settles it.  At the
 * end of the text (@final) a marker not found means "to the end", as in
 * the official code, which accepts a block cut right after an invoke. */
static enum verdict block_step(struct chat_stream *s, bool final)
{
	static const char *const sep_stops[] = { INVOKE, TOOLS_END };
	static const char *const name_stops[] = { PARAM, INVOKE_END };
	static const char *const param_stops[] = { PARAM_END };

	for (;;) {
		const char *t = text_of(s);
		size_t len = s->buf.len, at, next;
		enum verdict v;
		int which;

		switch (s->step) {
		case ST_SEP:
		case ST_PARAM_SEP: {
			bool sep = s->step == ST_SEP;
			const char *const *stops = sep ? sep_stops : name_stops;

			if (sep && s->pos == len)	/* while index < len(text) */
				return final ? V_COMPLETE : V_MORE;
			at = find_stop(s, stops, 2, &which);
			if (which < 0) {
				if (!final)
					return sep_may_follow(t + s->pos, len - s->pos, stops, 2) ?
					       V_MORE : V_BROKEN;
				if (sep)
					return V_BROKEN;	/* "Missing special token" */
				at = next = len;
			} else {
				next = at + strlen(stops[which]);
			}
			if (at - s->pos != 2 || memcmp(t + s->pos, ">\n", 2))
				return V_BROKEN;
			s->pos = next;
			s->scan = 0;
			if (sep && which == 1)
				return V_COMPLETE;
			if (sep) {
				s->step = ST_NAME;
			} else if (which == 0) {
				s->step = ST_PARAM;
			} else {
				v = finish_invoke(s);
				if (v != V_COMPLETE)
					return v;
				s->step = ST_SEP;
			}
			break;
		}
		case ST_NAME: {
			int ret;

			at = find_stop(s, name_stops, 2, &which);
			if (which < 0) {
				if (!final)
					return V_MORE;
				at = next = len;
			} else {
				next = at + strlen(name_stops[which]);
			}
			free(s->name);
			s->name = NULL;
			ret = match_name(t + s->pos, at - s->pos, &s->name);
			if (ret)
				return ret == -ENOMEM ? V_NOMEM : V_BROKEN;
			free(s->args.s);
			memset(&s->args, 0, sizeof(s->args));
			cbuf_add(&s->args, "{");
			s->n_params = 0;
			s->pos = next;
			s->scan = 0;
			if (which == 0) {
				s->step = ST_PARAM;
			} else {
				v = finish_invoke(s);
				if (v != V_COMPLETE)
					return v;
				s->step = ST_SEP;
			}
			break;
		}
		case ST_PARAM:
			at = find_stop(s, param_stops, 1, &which);
			if (which < 0) {
				if (!final)
					return V_MORE;
				at = next = len;
			} else {
				next = at + strlen(PARAM_END);
			}
			v = add_param(s, s->pos, at - s->pos);
			if (v != V_MORE)
				return v;
			s->pos = next;
			s->scan = 0;
			s->step = ST_PARAM_SEP;
			break;
		}
	}
}

static void block_reset(struct chat_stream *s)
{
	calls_free(s->calls, s->n_calls);
	s->calls = NULL;
	s->n_calls = 0;
	free(s->name);
	s->name = NULL;
	free(s->args.s);
	memset(&s->args, 0, sizeof(s->args));
	s->n_params = 0;
}

/* Moves the block's calls into @ev. */
static void hand_calls(struct chat_stream *s, struct chat_events *ev)
{
	struct chat_tool_call *grown;

	if (!s->n_calls)
		return;
	grown = realloc(ev->calls, (ev->n_calls + s->n_calls) * sizeof(*grown));
	if (!grown) {
		s->nomem = true;
		return;
	}
	memcpy(grown + ev->n_calls, s->calls, s->n_calls * sizeof(*grown));
	ev->calls = grown;
	ev->n_calls += s->n_calls;
	free(s->calls);
	s->calls = NULL;
	s->n_calls = 0;
}

static void advance(struct chat_stream *s, struct chat_events *ev, bool final)
{
	static const char *const r_stops[] = { CHAT_THINK_END, TOOLS_START, CHAT_EOS };
	static const char *const c_stops[] = { TOOLS_START, CHAT_EOS };
	static const char *const a_stops[] = { CHAT_EOS };

	while (!s->nomem) {
		const char *t = text_of(s);
		size_t len = s->buf.len, at, end;
		enum verdict v;
		int which;

		switch (s->phase) {
		case PH_REASONING:
		case PH_CONTENT: {
			bool r = s->phase == PH_REASONING;
			const char *const *stops = r ? r_stops : c_stops;
			int n = r ? 3 : 2;

			at = find_stop(s, stops, n, &which);
			if (which < 0) {
				end = emit_end(t, s->pos, len, stops, n, final);
				emit(s, ev, r, s->pos, end);
				s->pos = end;
				if (final) {
					/* reasoning without </think>: official rejects */
					s->malformed |= r || has_special(t + s->span_at,
									 len - s->span_at);
					s->phase = PH_DONE;
				}
				return;
			}
			emit(s, ev, r, s->pos, at);
			s->malformed |= has_special(t + s->span_at, at - s->span_at);
			s->pos = at + strlen(stops[which]);
			s->scan = 0;
			if (!strcmp(stops[which], CHAT_THINK_END)) {
				s->phase = PH_CONTENT;
				s->span_at = s->pos;
			} else if (!strcmp(stops[which], TOOLS_START)) {
				s->malformed |= r;	/* calls before </think> */
				s->block_at = at;
				s->step = ST_SEP;
				s->phase = PH_BLOCK;
			} else {
				s->malformed |= r;	/* EOS before </think> */
				s->phase = PH_DONE;
			}
			break;
		}
		case PH_BLOCK:
			v = block_step(s, final);
			if (v == V_MORE)
				return;
			if (v == V_NOMEM) {
				s->nomem = true;
				return;
			}
			s->scan = 0;
			if (v == V_COMPLETE) {
				hand_calls(s, ev);
				s->phase = PH_AFTER;
			} else {	/* a broken block is text, as it came */
				block_reset(s);
				s->malformed = true;
				s->pos = s->block_at;
				s->phase = PH_RAW;
			}
			break;
		case PH_AFTER:
			at = find_stop(s, a_stops, 1, &which);
			end = which < 0 ? emit_end(t, s->pos, len, a_stops, 1, final) : at;
			if (end > s->pos) {	/* only EOS may follow the block */
				s->malformed = true;
				emit(s, ev, false, s->pos, end);
			}
			s->pos = which < 0 ? end : at + strlen(CHAT_EOS);
			s->scan = 0;
			if (which < 0 && !final)
				return;
			s->phase = PH_DONE;
			break;
		case PH_RAW:
			end = final ? len : len - utf8_partial(t, s->pos, len);
			emit(s, ev, false, s->pos, end);
			s->pos = end;
			return;
		case PH_DONE:
			if (s->pos < len)	/* text after EOS: official rejects; ignored */
				s->malformed = true;
			s->pos = len;
			return;
		}
	}
}

struct chat_stream *chat_stream_new(enum chat_mode mode)
{
	struct chat_stream *s = calloc(1, sizeof(*s));

	if (s) {
		s->mode = mode;
		s->phase = mode == CHAT_MODE_THINKING ? PH_REASONING : PH_CONTENT;
	}
	return s;
}

void chat_stream_free(struct chat_stream *s)
{
	if (!s)
		return;
	block_reset(s);
	free(s->params);
	free(s->buf.s);
	free(s);
}

void chat_events_clear(struct chat_events *ev)
{
	free(ev->reasoning);
	free(ev->content);
	calls_free(ev->calls, ev->n_calls);
	memset(ev, 0, sizeof(*ev));
}

int chat_stream_feed(struct chat_stream *s, const char *text, size_t len, struct chat_events *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (s->nomem)
		return -1;
	cbuf_put(&s->buf, text, len);
	if (s->buf.failed)
		s->nomem = true;
	else
		advance(s, ev, false);
	if (s->nomem) {
		chat_events_clear(ev);
		return -1;
	}
	return 0;
}

int chat_stream_finish(struct chat_stream *s, struct chat_events *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (!s->nomem)
		advance(s, ev, true);
	if (s->nomem) {
		chat_events_clear(ev);
		return -1;
	}
	return 0;
}

static char *join(const char *a, size_t al, const char *b, size_t bl)
{
	char *s = malloc(al + bl + 1);

	if (s) {
		memcpy(s, a ? a : "", al);
		memcpy(s + al, b ? b : "", bl);
		s[al + bl] = 0;
	}
	return s;
}

void chat_parse(const char *text, size_t len, enum chat_mode mode, struct chat_msg *out)
{
	struct chat_stream *s = chat_stream_new(mode);
	struct chat_events a = { 0 }, b = { 0 };
	bool ok = s && !chat_stream_feed(s, text, len, &a) && !chat_stream_finish(s, &b);

	memset(out, 0, sizeof(*out));
	if (ok) {
		out->reasoning = join(a.reasoning, a.reasoning_len, b.reasoning, b.reasoning_len);
		out->content = join(a.content, a.content_len, b.content, b.content_len);
		out->n_calls = a.n_calls + b.n_calls;
		out->calls = out->n_calls ? malloc(out->n_calls * sizeof(*out->calls)) : NULL;
		ok = out->reasoning && out->content && (out->calls || !out->n_calls);
		if (out->calls) {
			if (a.n_calls)
				memcpy(out->calls, a.calls, a.n_calls * sizeof(*a.calls));
			if (b.n_calls)
				memcpy(out->calls + a.n_calls, b.calls, b.n_calls * sizeof(*b.calls));
			free(a.calls);	/* the strings moved to out */
			free(b.calls);
			a.calls = b.calls = NULL;
			a.n_calls = b.n_calls = 0;
		} else {
			out->n_calls = 0;
		}
		out->well_formed = !s->malformed;
	}
	if (!ok) {	/* out of memory: an empty, not well-formed message */
		chat_msg_free(out);
		out->content = strdup("");
		out->reasoning = strdup("");
	}
	chat_events_clear(&a);
	chat_events_clear(&b);
	chat_stream_free(s);
}

void chat_msg_free(struct chat_msg *m)
{
	free(m->content);
	free(m->reasoning);
	calls_free(m->calls, m->n_calls);
	memset(m, 0, sizeof(*m));
}
