// SPDX-License-Identifier: MIT
/*
 * DeepSeek V4 chat encoding (userspace/dsv4-server/chat.c) against the
 * official encoder: tests/fixtures/chat/goldens.json, written by
 * tools/reference/chat_goldens.py running DeepSeek's encoding_dsv4.py.
 * Renderings byte for byte, errors where it raises, parses of model
 * output (rejected ones flagged not well formed), Python json.dumps, the
 * streaming parser at every split point, and random DSML garbage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "kselftest_harness.h"

#define GOLDENS DSV4_FIXTURES "/chat/goldens.json"

static json_t *goldens(void)
{
	json_error_t je;
	json_t *g = json_load_file(GOLDENS, JSON_ALLOW_NUL, &je);

	if (!g)
		fprintf(stderr, "%s: %s\n", GOLDENS, je.text);
	return g;
}

TEST(render_equals_official)
{
	json_t *g = goldens(), *c;
	size_t i, bad = 0, n_ok = 0, n_err = 0;

	ASSERT_NE(NULL, g);
	json_array_foreach(json_object_get(g, "render"), i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *mode = json_string_value(json_object_get(c, "mode"));
		const char *eff = json_string_value(json_object_get(c, "reasoning_effort"));
		struct chat_opts o = {
			.mode = !strcmp(mode, "thinking") ? CHAT_MODE_THINKING : CHAT_MODE_CHAT,
			.effort = !eff ? CHAT_EFFORT_NONE : !strcmp(eff, "max") ? CHAT_EFFORT_MAX :
				  CHAT_EFFORT_HIGH,
			.keep_thinking = !json_is_true(json_object_get(c, "drop_thinking")),
			.no_bos = !json_is_true(json_object_get(c, "add_bos")),
		};
		json_t *tools = json_object_get(c, "tools");
		json_t *want = json_object_get(c, "prompt");
		char err[256] = "";
		char *got = chat_render(json_object_get(c, "messages"), json_is_null(tools) ? NULL : tools,
					&o, err, sizeof(err));

		if (!want) {
			n_err++;
			if (got) {
				bad++;
				TH_LOG("%s: rendered, but the official code raises %s", name,
				       json_string_value(json_object_get(c, "error")));
			} else if (!err[0]) {
				bad++;
				TH_LOG("%s: refused without a message", name);
			}
		} else if (!got) {
			bad++;
			TH_LOG("%s: refused (%s)", name, err);
		} else if (strcmp(got, json_string_value(want))) {
			size_t k = 0;
			const char *w = json_string_value(want);

			while (got[k] && got[k] == w[k])
				k++;
			bad++;
			TH_LOG("%s: differs at byte %zu: ours '%.40s' official '%.40s'", name, k, got + k,
			       w + k);
		} else {
			n_ok++;
		}
		free(got);
	}
	EXPECT_EQ(0, bad);
	TH_LOG("%zu renderings equal, %zu refusals as the official code's", n_ok, n_err);
	EXPECT_GE(n_ok + n_err, 50);
	json_decref(g);
}

/* Compares a parse with the golden; returns 1 when it matches. */
static int parse_matches(struct __test_metadata *_metadata, const struct chat_msg *m, json_t *c)
{
	json_t *exp = json_object_get(c, "expected"), *calls, *tc;
	const char *rej = json_string_value(json_object_get(c, "rejected"));
	const char *name = json_string_value(json_object_get(c, "name"));
	size_t i;

	if (!exp) {
		/* our end of text counts as EOS (the server never feeds EOS) */
		if (rej && strstr(rej, "missing EOS"))
			return m->well_formed;
		if (m->well_formed)
			TH_LOG("%s: well formed, but the official parser says %s", name, rej);
		return !m->well_formed;
	}
	if (!m->well_formed) {
		TH_LOG("%s: not well formed", name);
		return 0;
	}
	if (strcmp(m->content, json_string_value(json_object_get(exp, "content"))) ||
	    strcmp(m->reasoning, json_string_value(json_object_get(exp, "reasoning_content")))) {
		TH_LOG("%s: content '%s' reasoning '%s'", name, m->content, m->reasoning);
		return 0;
	}
	calls = json_object_get(exp, "tool_calls");
	if (json_array_size(calls) != m->n_calls) {
		TH_LOG("%s: %zu calls, official %zu", name, m->n_calls, json_array_size(calls));
		return 0;
	}
	json_array_foreach(calls, i, tc)
		if (strcmp(m->calls[i].name, json_string_value(json_object_get(tc, "name"))) ||
		    strcmp(m->calls[i].arguments, json_string_value(json_object_get(tc, "arguments")))) {
			TH_LOG("%s: call %zu is %s(%s)", name, i, m->calls[i].name, m->calls[i].arguments);
			return 0;
		}
	return 1;
}

TEST(parse_equals_official)
{
	json_t *g = goldens(), *c;
	size_t i, bad = 0;

	ASSERT_NE(NULL, g);
	json_array_foreach(json_object_get(g, "parse"), i, c) {
		const char *text = json_string_value(json_object_get(c, "text"));
		size_t len = json_string_length(json_object_get(c, "text"));
		enum chat_mode mode = strcmp(json_string_value(json_object_get(c, "mode")), "thinking") ?
				      CHAT_MODE_CHAT : CHAT_MODE_THINKING;
		struct chat_msg m;

		chat_parse(text, len, mode, &m);
		bad += !parse_matches(_metadata, &m, c);
		chat_msg_free(&m);
		/* the same without the final EOS (how the server calls it) */
		if (json_object_get(c, "expected") && len >= strlen(CHAT_EOS) &&
		    !strcmp(text + len - strlen(CHAT_EOS), CHAT_EOS)) {
			chat_parse(text, len - strlen(CHAT_EOS), mode, &m);
			bad += !parse_matches(_metadata, &m, c);
			chat_msg_free(&m);
		}
	}
	EXPECT_EQ(0, bad);
	json_decref(g);
}

TEST(json_dumps_equals_python)
{
	json_t *g = goldens(), *c;
	size_t i, n = 0;

	ASSERT_NE(NULL, g);
	json_array_foreach(json_object_get(g, "dumps"), i, c) {
		json_t *v = json_loads(json_string_value(json_object_get(c, "json")),
				       JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		char *got;

		if (!v)
			continue;	/* beyond jansson (integers over 64 bits) */
		got = chat_json_dumps(v);
		EXPECT_STREQ(json_string_value(json_object_get(c, "python")), got)
			TH_LOG("from %s", json_string_value(json_object_get(c, "json")));
		free(got);
		json_decref(v);
		n++;
	}
	EXPECT_GE(n, 30);
	json_decref(g);
}

struct collected {
	char *reasoning, *content;
	size_t rl, cl;
	struct chat_tool_call calls[16];
	size_t n_calls;
};

static void collect(struct collected *col, struct chat_events *ev)
{
	col->reasoning = realloc(col->reasoning, col->rl + ev->reasoning_len + 1);
	memcpy(col->reasoning + col->rl, ev->reasoning ? ev->reasoning : "", ev->reasoning_len);
	col->rl += ev->reasoning_len;
	col->reasoning[col->rl] = 0;
	col->content = realloc(col->content, col->cl + ev->content_len + 1);
	memcpy(col->content + col->cl, ev->content ? ev->content : "", ev->content_len);
	col->cl += ev->content_len;
	col->content[col->cl] = 0;
	for (size_t i = 0; i < ev->n_calls && col->n_calls < 16; i++) {
		col->calls[col->n_calls].name = strdup(ev->calls[i].name);
		col->calls[col->n_calls++].arguments = strdup(ev->calls[i].arguments);
	}
	chat_events_clear(ev);
}

/* Streams @text in pieces cut at @cuts (or every @step bytes); 1 when the
 * result equals chat_parse's. */
static int stream_agrees(const char *text, size_t len, enum chat_mode mode, size_t step,
			 size_t cut)
{
	struct chat_stream *s = chat_stream_new(mode);
	struct collected col = { 0 };
	struct chat_events ev;
	struct chat_msg m;
	int ok;

	if (step) {
		for (size_t p = 0; p < len; p += step) {
			chat_stream_feed(s, text + p, p + step > len ? len - p : step, &ev);
			collect(&col, &ev);
		}
	} else {
		chat_stream_feed(s, text, cut, &ev);
		collect(&col, &ev);
		chat_stream_feed(s, text + cut, len - cut, &ev);
		collect(&col, &ev);
	}
	chat_stream_finish(s, &ev);
	collect(&col, &ev);
	chat_stream_free(s);
	chat_parse(text, len, mode, &m);
	ok = !strcmp(m.reasoning, col.reasoning ? col.reasoning : "") &&
	     !strcmp(m.content, col.content ? col.content : "") && m.n_calls == col.n_calls;
	for (size_t i = 0; ok && i < m.n_calls; i++)
		ok = !strcmp(m.calls[i].name, col.calls[i].name) &&
		     !strcmp(m.calls[i].arguments, col.calls[i].arguments);
	for (size_t i = 0; i < col.n_calls; i++) {
		free(col.calls[i].name);
		free(col.calls[i].arguments);
	}
	free(col.reasoning);
	free(col.content);
	chat_msg_free(&m);
	return ok;
}

TEST(stream_equals_whole_parse_at_every_split)
{
	json_t *g = goldens(), *c;
	size_t i, bad = 0, runs = 0;

	ASSERT_NE(NULL, g);
	json_array_foreach(json_object_get(g, "parse"), i, c) {
		const char *text = json_string_value(json_object_get(c, "text"));
		size_t len = json_string_length(json_object_get(c, "text"));
		enum chat_mode mode = strcmp(json_string_value(json_object_get(c, "mode")), "thinking") ?
				      CHAT_MODE_CHAT : CHAT_MODE_THINKING;

		for (size_t cut = 0; cut <= len; cut++, runs++)
			if (!stream_agrees(text, len, mode, 0, cut)) {
				bad++;
				TH_LOG("%s: split at %zu disagrees", json_string_value(json_object_get(c, "name")),
				       cut);
				break;
			}
		for (size_t step = 1; step <= 7; step++, runs++)
			if (!stream_agrees(text, len, mode, step, 0)) {
				bad++;
				TH_LOG("%s: %zu-byte chunks disagree",
				       json_string_value(json_object_get(c, "name")), step);
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

	ASSERT_EQ(0, chat_stream_feed(s, "Let me think </thi", 18, &ev));
	EXPECT_STREQ("Let me think ", ev.reasoning);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, "nk>Answer\n", 10, &ev));
	EXPECT_EQ(NULL, ev.reasoning);
	EXPECT_STREQ("Answer", ev.content);	/* "\n" may start the tool block */
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_feed(s, "ok", 2, &ev));
	EXPECT_STREQ("\nok", ev.content);
	chat_events_clear(&ev);
	ASSERT_EQ(0, chat_stream_finish(s, &ev));
	EXPECT_EQ(0u, ev.content_len);
	chat_events_clear(&ev);
	chat_stream_free(s);
}

TEST(random_dsml_garbage_is_survived)
{
	static const char *const frags[] = {
		"\n\n<｜DSML｜tool_calls", ">\n", "<｜DSML｜invoke", " name=\"f\"", "</｜DSML｜invoke",
		"<｜DSML｜parameter", " name=\"a\" string=\"true\">", " string=\"false\">", "/｜DSML｜parameter",
		"</｜DSML｜tool_calls>", "<", "\n", "\"", "x", "</think>", "<think>", CHAT_EOS, "你",
		"\xe4", "{\"k\": 1}", " name=\"", "\">\n",
	};
	unsigned seed = 12345;

	for (int run = 0; run < 3000; run++) {
		char text[512];
		size_t len = 0;
		int n = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 24;

		for (int k = 0; k < n; k++) {
			const char *f = frags[((seed = seed * 1103515245u + 12345u) >> 16) %
					      (sizeof(frags) / sizeof(frags[0]))];
			size_t fl = strlen(f);

			if (len + fl >= sizeof(text))
				break;
			memcpy(text + len, f, fl);
			len += fl;
		}
		for (int mode = 0; mode < 2; mode++)
			ASSERT_TRUE(stream_agrees(text, len, mode ? CHAT_MODE_THINKING : CHAT_MODE_CHAT,
						  1 + run % 5, 0)) TH_LOG("run %d: %.*s", run, (int)len, text);
	}
}

TEST_HARNESS_MAIN
