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
 * reasoning_content and tool_calls; tool tool_call_id; DeepSeek's own
 * task, wo_eos and response_format fields) with @tools (an OpenAI tools
 * array, or NULL) as the official encode_messages(messages, thinking_mode,
 * drop_thinking=!keep_thinking, add_default_bos_token=!no_bos,
 * reasoning_effort) does.  Returns the prompt (malloc'd, the caller frees)
 * or NULL with a message in @err.
 *
 * Decisions the official code leaves to its caller (as vLLM's deepseek_v4
 * tokenizer mode makes them, and as tools/reference/chat_goldens.py applies
 * them before running the official code):
 *  - request @tools go to the first message when it is a system message
 *    (replacing tools of its own), else to an empty system message put in
 *    front; an empty @tools array is no tools;
 *  - a content array is joined: its text parts with "\n" between them
 *    (other part types are refused).  A tool message's array is left to
 *    the official rule (text parts joined by "\n\n", others shown as
 *    "[Unsupported <type>]").
 * Refused, as the official code raises: unknown role (unless thinking mode
 * drops it first: before the last user turn it is dropped, as developer
 * turns are), developer without content, user content null, a message
 * not an object, malformed tools or tool_calls, tool call arguments that
 * parse to JSON other than an object, an invalid task on a turn's end.
 * Refused by the API's types where the official code would print Python's
 * str() of the value: content other than string/null/text-part array,
 * non-string reasoning_content, tool_call_id or tool call name, an empty
 * message list; and text with a NUL character (the prompt is a C string).  Arguments that are not JSON (or not a string) become one
 * parameter "arguments", as in the official code.  Known gap: jansson
 * cannot read arguments holding integers beyond 64 bits, NaN/Infinity or
 * "\u0000" in a key; those are rendered as the non-JSON case.
 */
char *chat_render(const json_t *messages, const json_t *tools, const struct chat_opts *o,
		  char *err, size_t errlen);

/* Python json.dumps(v, ensure_ascii=False) text of @v (separators ", " and
 * ": ", keys in insertion order, floats as Python's repr: the shortest
 * digits that read back), malloc'd, NULL on allocation failure; the
 * renderer uses it for tool schemas and non-string DSML parameters. */
char *chat_json_dumps(const json_t *v);
/* json.dumps of one string of @len bytes (raw UTF-8 kept), malloc'd. */
char *chat_json_string(const char *s, size_t len);

struct chat_tool_call {
	char *name;
	char *arguments;	/* JSON object text, as the official decoder builds it */
};

/* Everything in it is malloc'd and freed by chat_msg_free. */
struct chat_msg {
	char *content;
	char *reasoning;	/* "" in chat mode */
	struct chat_tool_call *calls;
	size_t n_calls;
	bool well_formed;	/* false: the official parser would have rejected it */
};

/*
 * Parses a whole completion: the text the model produced after the prompt,
 * EOS included or not (the server stops at the EOS token and does not pass
 * it).  Text the official parser accepts as it is, or with EOS appended,
 * gives what the official parser gives: content, reasoning (thinking mode:
 * the text before </think>), and the calls of a trailing DSML tool-call
 * block.  Malformed text (cut by max_tokens, a broken DSML block, special
 * tokens in the text) is not an error: what can be read is returned with
 * well_formed false.  No </think> in thinking mode: all of it is reasoning.
 * A tool block before </think>: its calls are read.  A broken tool block:
 * its text, and everything after it, is content.  Text between the block
 * and EOS is content; text after EOS is ignored.  On allocation failure
 * content and reasoning are "" (NULL where even that failed) and
 * well_formed is false.
 */
void chat_parse(const char *text, size_t len, enum chat_mode mode, struct chat_msg *out);
void chat_msg_free(struct chat_msg *m);

/*
 * Incremental parse for streaming: feed decoded text as it arrives; each
 * call fills @ev with what is certain so far.  Concatenated over all feeds
 * and chat_stream_finish, the events equal chat_parse of the whole text,
 * however it was cut.  Held back until the next feed or finish: a tail that
 * may begin </think>, "\n\n<｜DSML｜tool_calls" or EOS, an incomplete UTF-8
 * sequence at the end, and the tool block, whose calls come out together
 * once its closing tag has been read (or at finish, for a block the
 * official parser accepts unclosed).
 */
struct chat_events {
	char *reasoning;	/* new reasoning text (malloc'd, NULL when none) */
	size_t reasoning_len;
	char *content;		/* new content text (malloc'd, NULL when none) */
	size_t content_len;
	struct chat_tool_call *calls;	/* tool calls completed in this feed */
	size_t n_calls;
};

struct chat_stream;
/* NULL on allocation failure; chat_stream_free releases it. */
struct chat_stream *chat_stream_new(enum chat_mode mode);
void chat_stream_free(struct chat_stream *s);
/* 0, or -1 on allocation failure (then the stream is unusable).  @ev is
 * overwritten, not appended to: clear it (chat_events_clear) after use. */
int chat_stream_feed(struct chat_stream *s, const char *text, size_t len, struct chat_events *ev);
/* End of generation: flushes what was held back, as chat_parse ends (a
 * tool block left open gives its calls where the official parser accepts
 * the text cut there, else its text as content). */
int chat_stream_finish(struct chat_stream *s, struct chat_events *ev);
/* Frees what @ev holds and zeroes it. */
void chat_events_clear(struct chat_events *ev);

#endif /* DSV4_SERVER_CHAT_H */
