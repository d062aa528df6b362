// SPDX-License-Identifier: MIT
/*
 * DeepSeek V4 chat encoding (userspace/dsv4-server/chat.c, chat_parse.c,
 * pyjson.c) against the official encoder: tests/fixtures/chat/goldens.json,
 * written by tools/reference/chat_goldens.py running DeepSeek's
 * encoding_dsv4.py on our cases.  Renderings byte for byte, refusals where
 * it raises (or the server's API types refuse), parses of model output
 * (rejected ones flagged not well formed), Python's json.dumps and float
 * repr, the streaming parser at every split point, and garbage.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "kselftest_harness.h"

#define GOLDENS DSV4_FIXTURES "/chat/goldens.json"
#define DSML "｜DSML｜"
#define TOOLS_OPEN "\n\n<" DSML "tool_calls>\n"
#define TOOLS_CLOSE "</" DSML "tool_calls>"

static json_t *goldens(void)
{
	json_error_t je;
	json_t *g = json_load_file(GOLDENS, JSON_ALLOW_NUL, &je);

	if (!g)
		fprintf(stderr, "%s: %s\n", GOLDENS, je.text);
	return g;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static enum chat_mode mode_of(const char *m)
{
	return m && !strcmp(m, "thinking") ? CHAT_MODE_THINKING : CHAT_MODE_CHAT;
}

/* ---- rendering ---- */

TEST(render_equals_official)
{
	json_t *g = goldens(), *c;
	size_t i, bad = 0, n_ok = 0, n_err = 0;

	ASSERT_NE(NULL, g);
	json_array_foreach(json_object_get(g, "render"), i, c) {
		const json_t *opt = json_object_get(c, "options");
		const char *eff = str(opt, "reasoning_effort");
		struct chat_opts o = {
			.mode = mode_of(str(opt, "thinking_mode")),
			.effort = !eff ? CHAT_EFFORT_NONE : !strcmp(eff, "max") ? CHAT_EFFORT_MAX :
				  CHAT_EFFORT_HIGH,
			.keep_thinking = !json_is_true(json_object_get(opt, "drop_thinking")),
			.no_bos = !json_is_true(json_object_get(opt, "add_default_bos_token")),
		};
		const char *name = str(c, "name"), *want = str(c, "prompt");
		json_t *tools = json_object_get(c, "tools");
		char err[256] = "x";
		char *got = chat_render(json_object_get(c, "messages"), json_is_null(tools) ? NULL : tools,
					&o, err, sizeof(err));

		if (!want) {
			n_err++;
			if (got) {
				bad++;
				TH_LOG("%s: rendered, but refused by the %s: %s", name,
				       str(c, "error_source"), str(c, "error"));
			} else if (!err[0] || !strcmp(err, "x")) {
				bad++;
				TH_LOG("%s: refused without a message", name);
			}
		} else if (!got) {
			bad++;
			TH_LOG("%s: refused (%s)", name, err);
		} else if (strcmp(got, want)) {
			size_t k = 0;

			while (got[k] && got[k] == want[k])
				k++;
			bad++;
			TH_LOG("%s: differs at byte %zu: ours '%.60s' official '%.60s'", name, k, got + k,
			       want + k);
		} else {
			n_ok++;
			if (err[0]) {
				TH_LOG("%s: err not cleared on success", name);
				bad++;
			}
		}
		free(got);
	}
	EXPECT_EQ(0, bad);
	TH_LOG("%zu renderings equal, %zu refusals as the goldens'", n_ok, n_err);
	EXPECT_GE(n_ok, 40);
	EXPECT_GE(n_err, 10);
	json_decref(g);
}

static char *render_text(const char *messages_json, const char *tools_json, enum chat_mode mode,
			 char *err, size_t errlen)
{
	json_t *m = json_loads(messages_json, 0, NULL);
	json_t *t = tools_json ? json_loads(tools_json, JSON_DECODE_ANY, NULL) : NULL;
	struct chat_opts o = { .mode = mode };
	char *p = chat_render(m, t, &o, err, errlen);

	json_decref(m);
	json_decref(t);
	return p;
}

TEST(render_api_edges)
{
	char err[256];
	char *p;

	/* an empty tools list is no tools: no system message put in front */
	p = render_text("[{\"role\":\"user\",\"content\":\"q\"}]", "[]", CHAT_MODE_CHAT, err,
			sizeof(err));
	ASSERT_NE(NULL, p);
	EXPECT_STREQ(CHAT_BOS CHAT_USER "q" CHAT_ASSISTANT CHAT_THINK_END, p);
	free(p);
	/* tools of the wrong type */
	p = render_text("[{\"role\":\"user\",\"content\":\"q\"}]", "{\"a\":1}", CHAT_MODE_CHAT, err,
			sizeof(err));
	EXPECT_EQ(NULL, p);
	EXPECT_NE(NULL, strstr(err, "tools"));
	/* not a list of messages */
	p = render_text("{\"role\":\"user\"}", NULL, CHAT_MODE_CHAT, err, sizeof(err));
	EXPECT_EQ(NULL, p);
	EXPECT_NE(0, err[0]);
	EXPECT_EQ(NULL, chat_render(NULL, NULL, &(struct chat_opts){ 0 }, NULL, 0));
	/* a short error buffer is cut, not overrun */
	p = render_text("[{\"role\":\"wizard\"}]", NULL, CHAT_MODE_CHAT, err, 8);
	EXPECT_EQ(NULL, p);
	EXPECT_EQ(7u, strlen(err));
}

/* NUL in text would cut the C-string prompt: refused */
TEST(render_refuses_nul)
{
	char err[256];

	{
		json_t *m = json_pack("[{s:s, s:s%}]", "role", "user", "content", "a\0b", (size_t)3);
		json_t *a = json_pack("[{s:s, s:s}, {s:s, s:[{s:{s:s, s:s%}}]}]", "role", "user",
				      "content", "q", "role", "assistant", "tool_calls", "function",
				      "name", "f", "arguments", "{\"x\": \"\\u0000\"}", (size_t)15);
		struct chat_opts o = { .no_bos = true };

		EXPECT_EQ(NULL, chat_render(m, NULL, &o, err, sizeof(err)));
		EXPECT_NE(NULL, strstr(err, "NUL"));
		EXPECT_EQ(NULL, chat_render(a, NULL, &o, err, sizeof(err)));
		EXPECT_NE(NULL, strstr(err, "NUL"));
		json_decref(m);
		json_decref(a);
	}
}

/* Random message lists from plausible and broken pieces: rendered or
 * refused with a message, never a crash or a leak. */
TEST(render_survives_random_messages)
{
	static const char *const roles[] = { "system", "user", "assistant", "tool", "developer",
					     "latest_reminder", "wizard", NULL };
	static const char *const contents[] = {
		"\"text\"", "\"\"", "null", "5", "[]", "[{\"type\":\"text\",\"text\":\"p\"}]",
		"[{\"type\":\"image\"}]", "{\"a\":1}", "[\"x\"]", "[{\"type\":\"text\"}]",
	};
	static const char *const extras[] = {
		"", ",\"reasoning_content\":\"r\"", ",\"reasoning_content\":7",
		",\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]",
		",\"tool_calls\":[{\"id\":\"b\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]",
		",\"tool_calls\":[{\"function\":{\"name\":\"g\",\"arguments\":{\"y\":[true]}}}]",
		",\"tool_calls\":{}", ",\"tool_calls\":\"x\"", ",\"tool_call_id\":\"a\"",
		",\"tool_call_id\":\"b\"", ",\"task\":\"action\"", ",\"task\":\"title\"",
		",\"task\":\"nope\"", ",\"wo_eos\":true", ",\"response_format\":{\"type\":\"json\"}",
		",\"tools\":[{\"function\":{\"name\":\"t\"}}]", ",\"tools\":[1]",
	};
	unsigned seed = 4242;
	size_t rendered = 0, refused = 0;

	for (int run = 0; run < 3000; run++) {
		char buf[8192];
		size_t o = 0;
		int n = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 7;
		struct chat_opts opt = {
			.mode = run & 1 ? CHAT_MODE_THINKING : CHAT_MODE_CHAT,
			.effort = (enum chat_effort)(run % 3),
			.keep_thinking = run & 2,
			.no_bos = run & 4,
		};
		json_t *m, *tools = NULL;
		char err[128];
		char *p;

		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "[");
		for (int k = 0; k < n; k++) {
			/* every other run from the pieces that render */
			static const int good_c[] = { 0, 1, 4, 5 }, good_x[] = { 0, 1, 3, 5, 8, 9,
										  11, 13, 14, 15 };
			bool clean = run & 1;
			unsigned rr = (seed = seed * 1103515245u + 12345u) >> 16;
			unsigned rc = (seed = seed * 1103515245u + 12345u) >> 16;
			unsigned rx = (seed = seed * 1103515245u + 12345u) >> 16;
			const char *role = roles[rr % (clean ? 6 : 8)];
			const char *c = contents[clean ? good_c[rc % 4] : (int)(rc % 10)];
			const char *x = extras[clean ? good_x[rx % 10] :
					       (int)(rx % (sizeof(extras) / sizeof(extras[0])))];

			if (role)
				o += (size_t)snprintf(buf + o, sizeof(buf) - o,
						      "%s{\"role\":\"%s\",\"content\":%s%s}", k ? "," : "",
						      role, c, x);
			else
				o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", k ? "," : "", c);
		}
		snprintf(buf + o, sizeof(buf) - o, "]");
		m = json_loads(buf, JSON_DECODE_ANY, NULL);
		ASSERT_NE(NULL, m) TH_LOG("%s", buf);
		if (run % 5 == 0)
			tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", 0,
					   NULL);
		err[0] = 0;
		p = chat_render(m, tools, &opt, err, sizeof(err));
		if (p) {
			rendered++;
			EXPECT_EQ(0, strncmp(p, CHAT_BOS, opt.no_bos ? 0 : strlen(CHAT_BOS)));
		} else {
			refused++;
			EXPECT_NE(0, err[0]) TH_LOG("%s", buf);
		}
		free(p);
		json_decref(m);
		json_decref(tools);
	}
	TH_LOG("%zu rendered, %zu refused", rendered, refused);
	EXPECT_GT(rendered, 100);
	EXPECT_GT(refused, 100);
}

/* ---- parsing ---- */

/* Compares a parse with an official result ({"expected": ...} or
 * {"rejected": ...}); 1 when they agree. */
static int parse_matches(struct __test_metadata *_metadata, const char *name,
			 const struct chat_msg *m, const json_t *off)
{
	const json_t *exp = json_object_get(off, "expected"), *calls, *tc;
	size_t i;

	if (!exp) {
		if (m->well_formed)
			TH_LOG("%s: well formed, but the official parser says %s", name,
			       str(off, "rejected"));
		return !m->well_formed;
	}
	if (!m->well_formed) {
		TH_LOG("%s: not well formed", name);
		return 0;
	}
	if (strcmp(m->content, str(exp, "content")) ||
	    strcmp(m->reasoning, str(exp, "reasoning_content"))) {
		TH_LOG("%s: content '%s' reasoning '%s'", name, m->content, m->reasoning);
		return 0;
	}
	calls = json_object_get(exp, "tool_calls");
	if (json_array_size(calls) != m->n_calls) {
		TH_LOG("%s: %zu calls, official %zu", name, m->n_calls, json_array_size(calls));
		return 0;
	}
	json_array_foreach(calls, i, tc)
		if (strcmp(m->calls[i].name, str(tc, "name")) ||
		    strcmp(m->calls[i].arguments, str(tc, "arguments"))) {
			TH_LOG("%s: call %zu is %s(%s), official %s(%s)", name, i, m->calls[i].name,
			       m->calls[i].arguments, str(tc, "name"), str(tc, "arguments"));
			return 0;
		}
	return 1;
}

/*
 * What we must give for a golden: the official parse of the text when it
 * accepts it; else, for a text without EOS, its parse with EOS appended
 * (the server passes completions without EOS); else not well formed.
 */
static const json_t *our_target(const json_t *c)
{
	const json_t *w = json_object_get(c, "with_eos");

	if (json_object_get(c, "expected") || !w || !json_object_get(w, "expected"))
		return c;
	return w;
}

TEST(parse_equals_official)
{
	json_t *g = goldens(), *c;
	size_t i, bad = 0, n_ok = 0, n_rej = 0;
	const size_t eos = strlen(CHAT_EOS);

	ASSERT_NE(NULL, g);
	json_array_foreach(json_object_get(g, "parse"), i, c) {
		const char *text = str(c, "text"), *name = str(c, "name");
		size_t len = json_string_length(json_object_get(c, "text"));
		enum chat_mode mode = mode_of(str(c, "mode"));
		const json_t *target = our_target(c);
		struct chat_msg m;

		chat_parse(text, len, mode, &m);
		if (parse_matches(_metadata, name, &m, target))
			json_object_get(target, "expected") ? n_ok++ : n_rej++;
		else
			bad++;
		chat_msg_free(&m);
		/* an accepted text ending in EOS reads the same without it */
		if (json_object_get(c, "expected") && len >= eos && !strcmp(text + len - eos, CHAT_EOS)) {
			chat_parse(text, len - eos, mode, &m);
			bad += !parse_matches(_metadata, name, &m, c);
			chat_msg_free(&m);
		}
	}
	EXPECT_EQ(0, bad);
	TH_LOG("%zu parses equal, %zu rejections flagged", n_ok, n_rej);
	EXPECT_GE(n_ok + n_rej, 25);
	json_decref(g);
}

/* What a malformed text gives: the readable part, and the rest as text. */
TEST(parse_malformed_keeps_text)
{
	struct chat_msg m;
	const char *cut = "Sure." TOOLS_OPEN "<" DSML "invoke name=\"f\">\n<" DSML
			  "parameter name=\"a\" string=\"true\">1";

	chat_parse(cut, strlen(cut), CHAT_MODE_CHAT, &m);
	EXPECT_FALSE(m.well_formed);
	EXPECT_STREQ(cut, m.content);	/* the broken block stays text */
	EXPECT_EQ(0u, m.n_calls);
	chat_msg_free(&m);

	chat_parse("thinking, cut", 13, CHAT_MODE_THINKING, &m);
	EXPECT_FALSE(m.well_formed);
	EXPECT_STREQ("thinking, cut", m.reasoning);
	EXPECT_STREQ("", m.content);
	chat_msg_free(&m);

	/* a block before </think>: its calls are read */
	{
		const char *t = "hmm" TOOLS_OPEN "<" DSML "invoke name=\"f\">\n</" DSML "invoke>\n"
				TOOLS_CLOSE;

		chat_parse(t, strlen(t), CHAT_MODE_THINKING, &m);
		EXPECT_FALSE(m.well_formed);
		EXPECT_STREQ("hmm", m.reasoning);
		ASSERT_EQ(1u, m.n_calls);
		EXPECT_STREQ("f", m.calls[0].name);
		EXPECT_STREQ("{}", m.calls[0].arguments);
		chat_msg_free(&m);
	}
	/* text after the block is content; after EOS it is dropped */
	{
		const char *t = TOOLS_OPEN "<" DSML "invoke name=\"f\">\n</" DSML "invoke>\n"
				TOOLS_CLOSE "tail" CHAT_EOS "gone";

		chat_parse(t, strlen(t), CHAT_MODE_CHAT, &m);
		EXPECT_FALSE(m.well_formed);
		EXPECT_STREQ("tail", m.content);
		EXPECT_EQ(1u, m.n_calls);
		chat_msg_free(&m);
	}
	chat_parse("", 0, CHAT_MODE_CHAT, &m);
	EXPECT_TRUE(m.well_formed);
	EXPECT_STREQ("", m.content);
	chat_msg_free(&m);
}

/* ---- json.dumps ---- */

TEST(json_dumps_equals_python)
{
	json_t *g = goldens(), *c, *floats, *x;
	size_t i, n = 0, bad = 0;

	ASSERT_NE(NULL, g);
	json_array_foreach(json_object_get(g, "dumps"), i, c) {
		json_t *v = json_loads(str(c, "json"), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		char *got;

		if (!v) {	/* beyond jansson: integers over 64 bits */
			EXPECT_EQ(strlen(str(c, "json")), strspn(str(c, "json"), "0123456789"));
			continue;
		}
		got = chat_json_dumps(v);
		EXPECT_STREQ(str(c, "python"), got) TH_LOG("from %s", str(c, "json"));
		free(got);
		json_decref(v);
		n++;
	}
	EXPECT_GE(n, 40);
	floats = json_object_get(g, "floats");
	json_array_foreach(json_object_get(floats, "pow2"), i, x) {
		json_t *v = json_real(ldexp(1.0, (int)i - 1074));
		char *got = chat_json_dumps(v);

		if (strcmp(got, json_string_value(x))) {
			TH_LOG("2^%d: %s, Python %s", (int)i - 1074, got, json_string_value(x));
			bad++;
		}
		free(got);
		json_decref(v);
		n++;
	}
	json_array_foreach(json_object_get(floats, "bits"), i, x) {
		uint64_t bits = strtoull(json_string_value(json_array_get(x, 0)), NULL, 16);
		double d;
		json_t *v;
		char *got;

		memcpy(&d, &bits, sizeof(d));
		v = json_real(d);
		got = chat_json_dumps(v);
		if (strcmp(got, json_string_value(json_array_get(x, 1)))) {
			TH_LOG("%016llx: %s, Python %s", (unsigned long long)bits, got,
			       json_string_value(json_array_get(x, 1)));
			bad++;
		}
		free(got);
		json_decref(v);
		n++;
	}
	EXPECT_EQ(0, bad);
	EXPECT_GE(n, 2500);
	json_decref(g);
}

static void dumps_is(struct __test_metadata *_metadata, json_t *v, const char *want)
{
	char *got = chat_json_dumps(v);

	EXPECT_STREQ(want, got);
	free(got);
	json_decref(v);
}

TEST(json_dumps_direct)
{
	char *s;

	dumps_is(_metadata, json_real(0.5), "0.5");
	dumps_is(_metadata, json_real(1e-05), "1e-05");
	dumps_is(_metadata, json_real(1e-4), "0.0001");
	dumps_is(_metadata, json_real(1.234e-5), "1.234e-05");
	dumps_is(_metadata, json_real(1e16), "1e+16");
	dumps_is(_metadata, json_real(1e15), "1000000000000000.0");
	dumps_is(_metadata, json_real(9999999999999998.0), "9999999999999998.0");
	dumps_is(_metadata, json_real(100.0), "100.0");
	dumps_is(_metadata, json_real(1.5e20), "1.5e+20");
	dumps_is(_metadata, json_real(-2.5e-7), "-2.5e-07");
	dumps_is(_metadata, json_real(1e300), "1e+300");
	dumps_is(_metadata, json_real(-0.0), "-0.0");
	dumps_is(_metadata, json_real(0.0), "0.0");
	dumps_is(_metadata, json_real(0.1 + 0.2), "0.30000000000000004");
	dumps_is(_metadata, json_real(123456789.125), "123456789.125");
	dumps_is(_metadata, json_real(5e-324), "5e-324");
	dumps_is(_metadata, json_real(DBL_MAX), "1.7976931348623157e+308");
	dumps_is(_metadata, json_real(DBL_MIN), "2.2250738585072014e-308");
	dumps_is(_metadata, json_real(ldexp(1.0, -1017)), "7.120236347223045e-307");
	dumps_is(_metadata, json_real(9007199254740993.0), "9007199254740992.0");
	dumps_is(_metadata, json_integer(0), "0");
	dumps_is(_metadata, json_integer(-42), "-42");
	dumps_is(_metadata, json_integer(INT64_MIN), "-9223372036854775808");
	dumps_is(_metadata, json_integer(INT64_MAX), "9223372036854775807");
	dumps_is(_metadata, json_true(), "true");
	dumps_is(_metadata, json_false(), "false");
	dumps_is(_metadata, json_null(), "null");
	dumps_is(_metadata, json_string("\t\n\r\b\f\"\\/"), "\"\\t\\n\\r\\b\\f\\\"\\\\/\"");
	dumps_is(_metadata, json_string("\x01\x1f\x7f"), "\"\\u0001\\u001f\x7f\"");
	dumps_is(_metadata, json_string("é 😀 \u2028 東京"), "\"é 😀 \u2028 東京\"");
	dumps_is(_metadata, json_stringn("a\0b", 3), "\"a\\u0000b\"");
	dumps_is(_metadata, json_pack("{s:i, s:[n, b, f], s:{}, s:[]}", "z", 1, "a", 1, 0.5, "m",
				      "e"),
		 "{\"z\": 1, \"a\": [null, true, 0.5], \"m\": {}, \"e\": []}");
	dumps_is(_metadata, json_pack("{s:{s:{s:[i, {s:s}]}}}", "k\"\n", "é", "x", 1, "y", "z"),
		 "{\"k\\\"\\n\": {\"é\": {\"x\": [1, {\"y\": \"z\"}]}}}");
	s = chat_json_string("raw \xff bytes", 11);	/* not re-encoded */
	EXPECT_STREQ("\"raw \xff bytes\"", s);
	free(s);
	s = chat_json_string("", 0);
	EXPECT_STREQ("\"\"", s);
	free(s);
	EXPECT_EQ(NULL, chat_json_dumps(NULL));
}

/* ---- streaming ---- */

static bool utf8_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
			   (c & 0xf8) == 0xf0 ? 4 : 0;

		if (!k || i + k > n)
			return false;
		for (size_t j = 1; j < k; j++)
			if (((unsigned char)s[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

struct collected {
	char *reasoning, *content;
	size_t rl, cl;
	struct chat_tool_call *calls;
	size_t n_calls;
	bool split_utf8;	/* an event cut a UTF-8 sequence */
};

static void append(char **dst, size_t *dl, const char *s, size_t n)
{
	*dst = realloc(*dst, *dl + n + 1);
	memcpy(*dst + *dl, s ? s : "", n);
	*dl += n;
	(*dst)[*dl] = 0;
}

/* Takes @ev's events (and clears it). */
static void collect(struct collected *col, struct chat_events *ev)
{
	col->split_utf8 |= !utf8_valid(ev->reasoning, ev->reasoning_len) ||
			   !utf8_valid(ev->content, ev->content_len);
	append(&col->reasoning, &col->rl, ev->reasoning, ev->reasoning_len);
	append(&col->content, &col->cl, ev->content, ev->content_len);
	col->calls = realloc(col->calls, (col->n_calls + ev->n_calls + 1) * sizeof(*col->calls));
	for (size_t i = 0; i < ev->n_calls; i++) {
		col->calls[col->n_calls++] = ev->calls[i];	/* the strings move */
		ev->calls[i].name = ev->calls[i].arguments = NULL;
	}
	chat_events_clear(ev);
}

static void collected_free(struct collected *col)
{
	for (size_t i = 0; i < col->n_calls; i++) {
		free(col->calls[i].name);
		free(col->calls[i].arguments);
	}
	free(col->calls);
	free(col->reasoning);
	free(col->content);
}

/*
 * Streams @text cut at the @n ascending positions in @cuts and compares the
 * concatenated events with chat_parse.  Returns 1 when they agree (and, for
 * valid UTF-8 input, no event split a character).
 */
static int stream_agrees(const char *text, size_t len, enum chat_mode mode, const size_t *cuts,
			 size_t n)
{
	struct chat_stream *s = chat_stream_new(mode);
	struct collected col = { 0 };
	struct chat_events ev;
	struct chat_msg m;
	size_t at = 0;
	int ok = 1;

	for (size_t i = 0; i <= n; i++) {
		size_t to = i < n ? cuts[i] : len;

		ok &= chat_stream_feed(s, text + at, to - at, &ev) == 0;
		collect(&col, &ev);
		at = to;
	}
	ok &= chat_stream_finish(s, &ev) == 0;
	collect(&col, &ev);
	chat_stream_free(s);
	chat_parse(text, len, mode, &m);
	ok &= !strcmp(m.reasoning, col.reasoning) && !strcmp(m.content, col.content) &&
	      m.n_calls == col.n_calls;
	for (size_t i = 0; ok && i < m.n_calls; i++)
		ok = !strcmp(m.calls[i].name, col.calls[i].name) &&
		     !strcmp(m.calls[i].arguments, col.calls[i].arguments);
	if (utf8_valid(text, len))
		ok &= !col.split_utf8;
	collected_free(&col);
	chat_msg_free(&m);
	return ok;
}

static int stream_in_steps(const char *text, size_t len, enum chat_mode mode, size_t step)
{
	size_t n = len / step + 1, k = 0;
	size_t *cuts = malloc(n * sizeof(*cuts));
	int ok;

	for (size_t p = step; p < len; p += step)
		cuts[k++] = p;
	ok = stream_agrees(text, len, mode, cuts, k);
	free(cuts);
	return ok;
}

TEST(stream_equals_whole_parse_at_every_split)
{
	json_t *g = goldens(), *c;
	size_t i, bad = 0, runs = 0;

	ASSERT_NE(NULL, g);
	json_array_foreach(json_object_get(g, "parse"), i, c) {
		const char *text = str(c, "text"), *name = str(c, "name");
		size_t len = json_string_length(json_object_get(c, "text"));
		enum chat_mode mode = mode_of(str(c, "mode"));

		for (size_t cut = 0; cut <= len; cut++, runs++)
			if (!stream_agrees(text, len, mode, &cut, 1)) {
				bad++;
				TH_LOG("%s: split at %zu disagrees", name, cut);
				break;
			}
		for (size_t a = 0; a < len; a += 5)	/* two cuts */
			for (size_t b = a; b <= len; b += len > 200 ? 23 : 7, runs++) {
				size_t cuts[2] = { a, b };

				if (!stream_agrees(text, len, mode, cuts, 2)) {
					bad++;
					TH_LOG("%s: splits at %zu, %zu disagree", name, a, b);
					a = b = len + 1;
				}
			}
		for (size_t step = 1; step <= 9; step++, runs++)
			if (!stream_in_steps(text, len, mode, step)) {
				bad++;
				TH_LOG("%s: %zu-byte chunks disagree", name, step);
			}
	}
	EXPECT_EQ(0, bad);
	TH_LOG("%zu streamed runs", runs);
	json_decref(g);
}

TEST(stream_holds_back_only_marker_prefixes)
{
	struct chat_stream *s = chat_stream_new(CHAT_MODE_THINKING);
	struct chat_events ev;

	ASSERT_NE(NULL, s);
	ASSERT_EQ(0, chat_stream_feed(s, "Let me think </thi", 18, &ev));
	EXPECT_STREQ("Let me think ", ev.reasoning);
	EXPECT_EQ(NULL, ev.content);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, "nk>Answer\n", 10, &ev));
	EXPECT_EQ(NULL, ev.reasoning);
	EXPECT_STREQ("Answer", ev.content);	/* "\n" may start the tool block */
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, "\n", 1, &ev));
	EXPECT_EQ(0u, ev.content_len);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, "- item <b>", 10, &ev));
	EXPECT_STREQ("\n\n- item <b>", ev.content);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, " and <", 6, &ev));	/* may start EOS */
	EXPECT_STREQ(" and ", ev.content);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, "｜", strlen("｜"), &ev));
	EXPECT_EQ(0u, ev.content_len);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, "x", 1, &ev));
	EXPECT_STREQ("<｜x", ev.content);
	chat_events_clear(&ev);
	/* a character cut between feeds comes out whole */
	ASSERT_EQ(0, chat_stream_feed(s, "\xe4\xbd", 2, &ev));
	EXPECT_EQ(0u, ev.content_len);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, "\xa0", 1, &ev));
	EXPECT_STREQ("你", ev.content);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_finish(s, &ev));
	EXPECT_EQ(0u, ev.content_len);
	EXPECT_EQ(0u, ev.n_calls);
	chat_events_clear(&ev);
	chat_stream_free(s);

	/* chat mode starts in content */
	s = chat_stream_new(CHAT_MODE_CHAT);
	ASSERT_EQ(0, chat_stream_feed(s, "Hi", 2, &ev));
	EXPECT_STREQ("Hi", ev.content);
	EXPECT_EQ(NULL, ev.reasoning);
	chat_events_clear(&ev);
	/* a cut multibyte character at the end is flushed by finish */
	ASSERT_EQ(0, chat_stream_feed(s, "\xe4", 1, &ev));
	EXPECT_EQ(0u, ev.content_len);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_finish(s, &ev));
	EXPECT_STREQ("\xe4", ev.content);
	chat_events_clear(&ev);
	chat_stream_free(s);
}

TEST(stream_gives_calls_when_the_block_closes)
{
	static const char *const parts[] = {
		"Checking.", "\n\n<" DSML "tool_calls>\n<" DSML "invoke name=\"get_weather\">\n<" DSML
		"parameter name=\"city\" string=\"true\">Par", "is</" DSML "parameter>\n</" DSML "invoke",
		">\n</" DSML "tool_calls", ">",
	};
	struct chat_stream *s = chat_stream_new(CHAT_MODE_CHAT);
	struct chat_events ev;

	ASSERT_EQ(0, chat_stream_feed(s, parts[0], strlen(parts[0]), &ev));
	EXPECT_STREQ("Checking.", ev.content);
	chat_events_clear(&ev);
	for (int i = 1; i < 4; i++) {
		ASSERT_EQ(0, chat_stream_feed(s, parts[i], strlen(parts[i]), &ev));
		EXPECT_EQ(0u, ev.content_len + ev.reasoning_len + ev.n_calls);
		chat_events_clear(&ev);
	}
	ASSERT_EQ(0, chat_stream_feed(s, parts[4], strlen(parts[4]), &ev));
	ASSERT_EQ(1u, ev.n_calls);
	EXPECT_STREQ("get_weather", ev.calls[0].name);
	EXPECT_STREQ("{\"city\": \"Paris\"}", ev.calls[0].arguments);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_finish(s, &ev));
	EXPECT_EQ(0u, ev.content_len + ev.n_calls);
	chat_events_clear(&ev);
	chat_stream_free(s);

	/* a block that cannot be DSML any more streams on as content */
	s = chat_stream_new(CHAT_MODE_CHAT);
	ASSERT_EQ(0, chat_stream_feed(s, "x\n\n<" DSML "tool_calls> oops", strlen("x\n\n<" DSML
										     "tool_calls> oops"),
				      &ev));
	EXPECT_STREQ("x\n\n<" DSML "tool_calls> oops", ev.content);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, " more", 5, &ev));
	EXPECT_STREQ(" more", ev.content);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_finish(s, &ev));
	chat_events_clear(&ev);
	chat_stream_free(s);
}

/* A long parameter value fed a few bytes at a time: linear, not quadratic
 * (this would take minutes if every feed searched the block again). */
TEST(stream_long_argument)
{
	const size_t big = 1 << 20;
	const char *head = TOOLS_OPEN "<" DSML "invoke name=\"write\">\n<" DSML
			   "parameter name=\"text\" string=\"true\">";
	const char *tail = "</" DSML "parameter>\n</" DSML "invoke>\n" TOOLS_CLOSE;
	size_t hl = strlen(head), tl = strlen(tail), len = hl + big + tl, n_calls = 0;
	char *text = malloc(len);
	struct chat_stream *s = chat_stream_new(CHAT_MODE_CHAT);
	struct chat_events ev;

	memcpy(text, head, hl);
	for (size_t i = 0; i < big; i++)
		text[hl + i] = "ab<\n/｜ "[i % 7];	/* pieces of markers, never whole */
	memcpy(text + hl + big, tail, tl);
	for (size_t p = 0; p < len; p += 3) {
		ASSERT_EQ(0, chat_stream_feed(s, text + p, p + 3 > len ? len - p : 3, &ev));
		n_calls += ev.n_calls;
		if (ev.n_calls)
			EXPECT_EQ(big + strlen("{\"text\": \"\"}") + big / 7 + (big % 7 > 3),
				  strlen(ev.calls[0].arguments));	/* "\n" escaped */
		EXPECT_EQ(0u, ev.content_len);
		chat_events_clear(&ev);
	}
	ASSERT_EQ(0, chat_stream_finish(s, &ev));
	chat_events_clear(&ev);
	EXPECT_EQ(1u, n_calls);
	chat_stream_free(s);
	free(text);
}

/* ---- garbage ---- */

static unsigned next_rand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

/*
 * Random mixtures of DSML fragments, markers, random bytes, huge names and
 * nested blocks: chat_parse and the stream (cut at random places) must
 * agree, and nothing may crash or leak.  Fixed seed, at most a few seconds.
 */
TEST(random_dsml_garbage_is_survived)
{
	static const char *const frags[] = {
		"\n\n<" DSML "tool_calls", ">\n", "<" DSML "invoke", " name=\"f\"", "</" DSML "invoke",
		"<" DSML "parameter", " name=\"a\" string=\"true\">", " string=\"false\">",
		"/" DSML "parameter", "</" DSML "tool_calls>", "<", "\n", "\"", "x", "</think>",
		"<think>", CHAT_EOS, CHAT_BOS, "你", "\xe4", "\xbd", "{\"k\": 1}", " name=\"", "\">\n",
		"\">\n\n", "<\n", "\u3000", "｜", DSML, " ",
	};
	const size_t nf = sizeof(frags) / sizeof(frags[0]);
	unsigned seed = 12345;
	clock_t t0 = clock();
	size_t runs = 0, with_calls = 0, well = 0;
	char *text = malloc(1 << 17);

	for (int run = 0; run < 20000 && clock() - t0 < 4 * CLOCKS_PER_SEC; run++, runs++) {
		size_t len = 0, cuts[8], nc = 0;
		int n = 1 + (int)(next_rand(&seed) % 40);
		int kind = run % 10;

		for (int k = 0; k < n; k++) {
			unsigned r = next_rand(&seed);

			if (kind == 0 && r % 5 == 0) {	/* random bytes */
				for (unsigned j = 0; j < r % 9; j++)
					text[len++] = (char)next_rand(&seed);
			} else if (kind == 1 && k == n / 2) {	/* a huge name or value */
				size_t big = 20000 + next_rand(&seed) % 40000;

				memset(text + len, 'n', big);
				len += big;
			} else if (kind == 2 && r % 3 == 0) {	/* a well-formed call, maybe nested */
				const char *call = TOOLS_OPEN "<" DSML "invoke name=\"g\">\n<" DSML
						   "parameter name=\"p\" string=\"false\">[1]</" DSML
						   "parameter>\n</" DSML "invoke>\n" TOOLS_CLOSE;

				memcpy(text + len, call, strlen(call));
				len += strlen(call);
			} else {
				const char *f = frags[r % nf];

				memcpy(text + len, f, strlen(f));
				len += strlen(f);
			}
		}
		while (nc < 1 + run % 8 && len) {
			size_t c = next_rand(&seed) % (len + 1);
			size_t k = nc++;

			while (k > 0 && cuts[k - 1] > c) {	/* keep them ascending */
				cuts[k] = cuts[k - 1];
				k--;
			}
			cuts[k] = c;
		}
		for (int mode = 0; mode < 2; mode++) {
			enum chat_mode md = mode ? CHAT_MODE_THINKING : CHAT_MODE_CHAT;
			struct chat_msg m;

			ASSERT_TRUE(stream_agrees(text, len, md, cuts, nc))
				TH_LOG("run %d: %.*s", run, (int)(len < 400 ? len : 400), text);
			if (run % 16 == 0)
				ASSERT_TRUE(stream_in_steps(text, len, md, 1 + run % 3));
			chat_parse(text, len, md, &m);
			with_calls += m.n_calls > 0;
			well += m.well_formed;
			chat_msg_free(&m);
		}
	}
	free(text);
	TH_LOG("%zu garbage texts, %zu parses with calls, %zu well formed", runs, with_calls, well);
	EXPECT_GT(runs, 500);
	EXPECT_GT(with_calls, 10);
}

TEST_HARNESS_MAIN
