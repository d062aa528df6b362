/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * DeepSeek V4 chat encoding: OpenAI-shaped messages to the prompt text the
 * model was trained on, and the model's output text back to content,
 * reasoning_content and tool calls.  Behaves as DeepSeek's official
 * encoding/encoding_dsv4.py (encode_messages, parse_message_from_completion_text);
 * tests/unit/chat_test.c checks it against goldens that script produced.
 */
#ifndef DSV4_SERVER_CHAT_H
#define DSV4_SERVER_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#define CHAT_BOS "<｜begin▁of▁sentence｜>"
#define CHAT_EOS "<｜end▁of▁sentence｜>"
#define CHAT_USER "<｜User｜>"
#define CHAT_ASSISTANT "<｜Assistant｜>"
#define CHAT_THINK_START "<think>"
#define CHAT_THINK_END "</think>"
#define CHAT_DSML "｜DSML｜"

enum chat_mode { CHAT_MODE_CHAT, CHAT_MODE_THINKING };
enum chat_effort { CHAT_EFFORT_NONE, CHAT_EFFORT_HIGH, CHAT_EFFORT_MAX };

struct chat_opts {
	enum chat_mode mode;
	enum chat_effort effort;
	bool keep_thinking;	/* official drop_thinking=False */
	bool no_bos;		/* official add_default_bos_token=False */
};

/*
 * Renders @messages (a JSON array in the OpenAI chat shape: role system,
 * developer, user, assistant, tool, latest_reminder; content a string, null
 * or an array of {"type":"text","text":...} parts; assistant
 * reasoning_content and tool_calls; tool tool_call_id) with @tools (an
 * OpenAI tools array, or NULL) attached to the first message when it is a
 * system message, else to a system message put in front.  Returns the
 * prompt, malloc'd, or NULL with a message in @err for input the official
 * renderer rejects or cannot render (unknown role, developer without
 * content, tool call arguments not a string, ...).
 */
char *chat_render(const json_t *messages, const json_t *tools, const struct chat_opts *o,
		  char *err, size_t errlen);

/* Python json.dumps(v, ensure_ascii=False) text of @v (separators ", " and
 * ": ", floats as Python's repr), malloc'd; the renderer uses it for tool
 * schemas and non-string DSML parameters. */
char *chat_json_dumps(const json_t *v);
/* json.dumps of one string of @len bytes, malloc'd. */
char *chat_json_string(const char *s, size_t len);

struct chat_tool_call {
	char *name;
	char *arguments;	/* JSON object text, as the official decoder builds it */
};

struct chat_msg {
	char *content;
	char *reasoning;	/* "" in chat mode */
	struct chat_tool_call *calls;
	size_t n_calls;
	bool well_formed;	/* false: the official parser would have rejected it */
};

/*
 * Parses a whole completion (the text the model produced after the prompt,
 * EOS included or not).  Well-formed text gives what the official parser
 * gives.  Malformed text (cut by max_tokens, a broken DSML block) is not an
 * error: what can be read is returned and the rest kept as content (or as
 * reasoning when </think> never came), with well_formed false.
 */
void chat_parse(const char *text, size_t len, enum chat_mode mode, struct chat_msg *out);
void chat_msg_free(struct chat_msg *m);

/* Incremental parse for streaming: feed decoded text as it arrives; each
 * call appends to @ev what can be said for sure so far.  Text that may be
 * the start of a marker (</think>, the tool-call block) is held back until
 * the next feed or chat_stream_finish. */
struct chat_events {
	char *reasoning;	/* new reasoning text (malloc'd, may be NULL) */
	size_t reasoning_len;
	char *content;		/* new content text */
	size_t content_len;
	struct chat_tool_call *calls;	/* tool calls completed in this feed */
	size_t n_calls;
};

struct chat_stream;
struct chat_stream *chat_stream_new(enum chat_mode mode);
void chat_stream_free(struct chat_stream *s);
/* 0, or -1 on allocation failure. */
int chat_stream_feed(struct chat_stream *s, const char *text, size_t len, struct chat_events *ev);
/* End of generation: flushes what was held back (a tool block left open
 * becomes content, as chat_parse would). */
int chat_stream_finish(struct chat_stream *s, struct chat_events *ev);
void chat_events_clear(struct chat_events *ev);

#endif /* DSV4_SERVER_CHAT_H */
