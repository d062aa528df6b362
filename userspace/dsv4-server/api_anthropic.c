// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Anthropic Messages API: POST /v1/messages (content blocks, thinking,
 * tool_use / tool_result; SSE message_start, content_block_start/delta/
 * stop, message_delta, message_stop, ping) and /v1/messages/count_tokens.
 * Messages are converted to the OpenAI shape that chat_render takes:
 * thinking blocks become reasoning_content, tool_use blocks tool_calls,
 * tool_result blocks role "tool" messages (DeepSeek's renderer turns those
 * back into <tool_result> blocks in the user turn, in call order).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "chat.h"

#define PING_NS (10ull * 1000000000ull)

static bool fail(struct http_req *hr, enum MHD_Result *answered, const char *fmt, const char *a)
{
	*answered = http_error(hr, 400, "invalid_request_error", NULL, fmt, a);
	return false;
}

/* Text of a string or of a list of text blocks (joined by "\n"). */
static char *block_text(json_t *c, const char *what, bool *ok)
{
	size_t i;
	json_t *b;
	char *out = NULL;
	size_t len = 0;

	*ok = true;
	if (json_is_string(c))
		return strdup(json_string_value(c));
	if (!json_is_array(c)) {
		*ok = false;
		return NULL;
	}
	json_array_foreach(c, i, b) {
		const char *type = json_string_value(json_object_get(b, "type"));
		const char *t = json_string_value(json_object_get(b, "text"));
		size_t tl;
		char *grown;

		if (!type || strcmp(type, "text") || !t) {
			*ok = false;
			free(out);
			return NULL;
		}
		tl = strlen(t);
		grown = realloc(out, len + tl + 2);
		if (!grown) {
			free(out);
			*ok = false;
			return NULL;
		}
		out = grown;
		if (len)
			out[len++] = '\n';
		memcpy(out + len, t, tl + 1);
		len += tl;
	}
	(void)what;
	return out ? out : strdup("");
}

static bool user_blocks(struct http_req *hr, json_t *blocks, json_t *out, enum MHD_Result *answered)
{
	size_t i;
	json_t *b;
	char *text = NULL;
	size_t len = 0;

	json_array_foreach(blocks, i, b) {
		const char *type = json_string_value(json_object_get(b, "type"));

		if (!json_is_object(b) || !type) {
			free(text);
			return fail(hr, answered, "each content block needs a 'type'%s", "");
		}
		if (!strcmp(type, "text")) {
			const char *t = json_string_value(json_object_get(b, "text"));
			size_t tl;
			char *grown;

			if (!t) {
				free(text);
				return fail(hr, answered, "a text block needs a string 'text'%s", "");
			}
			tl = strlen(t);
			grown = realloc(text, len + tl + 2);
			if (!grown) {
				free(text);
				return fail(hr, answered, "out of memory%s", "");
			}
			text = grown;
			if (len)
				text[len++] = '\n';
			memcpy(text + len, t, tl + 1);
			len += tl;
		} else if (!strcmp(type, "tool_result")) {
			const char *id = json_string_value(json_object_get(b, "tool_use_id"));
			json_t *c = json_object_get(b, "content");
			bool ok = true;
			char *ct = c ? block_text(c, "tool_result", &ok) : strdup("");

			if (!id || !ok || !ct) {
				free(ct);
				free(text);
				return fail(hr, answered, "a tool_result block needs 'tool_use_id' "
					    "and text content%s", "");
			}
			if (text) {	/* text before the result stays before it */
				json_array_append_new(out, json_pack("{s:s, s:s}", "role", "user",
								     "content", text));
				free(text);
				text = NULL;
				len = 0;
			}
			json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "role", "tool",
							     "tool_call_id", id, "content", ct));
			free(ct);
		} else {
			free(text);
			return fail(hr, answered, "content blocks of type '%s' are not supported "
				    "(text and tool_result are)", type);
		}
	}
	if (text || !json_array_size(blocks))
		json_array_append_new(out, json_pack("{s:s, s:s}", "role", "user", "content",
						     text ? text : ""));
	free(text);
	return true;
}

static bool assistant_blocks(struct http_req *hr, json_t *blocks, json_t *out,
			     enum MHD_Result *answered)
{
	json_t *calls = json_array(), *msg, *b;
	char *text = strdup(""), *reasoning = NULL;
	size_t i;
	bool ok = true;

	json_array_foreach(blocks, i, b) {
		const char *type = json_string_value(json_object_get(b, "type"));
		const char *add = NULL;
		char **into = NULL;

		if (!type) {
			ok = fail(hr, answered, "each content block needs a 'type'%s", "");
			break;
		}
		if (!strcmp(type, "text")) {
			add = json_string_value(json_object_get(b, "text"));
			into = &text;
		} else if (!strcmp(type, "thinking")) {
			add = json_string_value(json_object_get(b, "thinking"));
			into = &reasoning;
		} else if (!strcmp(type, "redacted_thinking")) {
			continue;
		} else if (!strcmp(type, "tool_use")) {
			const char *id = json_string_value(json_object_get(b, "id"));
			const char *name = json_string_value(json_object_get(b, "name"));
			json_t *input = json_object_get(b, "input");
			char *args;

			if (!id || !name || !json_is_object(input)) {
				ok = fail(hr, answered, "a tool_use block needs 'id', 'name' and an "
					  "object 'input'%s", "");
				break;
			}
			args = chat_json_dumps(input);
			json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id,
							       "type", "function", "function",
							       "name", name, "arguments",
							       args ? args : "{}"));
			free(args);
			continue;
		} else {
			ok = fail(hr, answered, "assistant blocks of type '%s' are not supported", type);
			break;
		}
		if (!add) {
			ok = fail(hr, answered, "a '%s' block is missing its text", type);
			break;
		}
		{
			size_t ol = *into ? strlen(*into) : 0, al = strlen(add);
			char *grown = realloc(*into, ol + al + 1);

			if (!grown) {
				ok = fail(hr, answered, "out of memory%s", "");
				break;
			}
			memcpy(grown + ol, add, al + 1);
			*into = grown;
		}
	}
	if (ok) {
		msg = json_pack("{s:s, s:s}", "role", "assistant", "content", text ? text : "");
		if (reasoning)
			json_object_set_new(msg, "reasoning_content", json_string(reasoning));
		if (json_array_size(calls))
			json_object_set(msg, "tool_calls", calls);
		json_array_append_new(out, msg);
	}
	json_decref(calls);
	free(text);
	free(reasoning);
	return ok;
}

/* Anthropic request to OpenAI-shaped messages and tools. */
static bool convert(struct http_req *hr, json_t *body, json_t **messages, json_t **tools,
		    enum MHD_Result *answered)
{
	json_t *in = json_object_get(body, "messages"), *sys = json_object_get(body, "system");
	json_t *tl = json_object_get(body, "tools"), *m, *t;
	size_t i;

	*messages = json_array();
	*tools = NULL;
	if (!json_is_array(in) || !json_array_size(in))
		return fail(hr, answered, "'messages' must be a non-empty array%s", "");
	if (sys && !json_is_null(sys)) {
		bool ok;
		char *st = block_text(sys, "system", &ok);

		if (!ok || !st)
			return fail(hr, answered, "'system' must be a string or a list of text "
				    "blocks%s", "");
		json_array_append_new(*messages, json_pack("{s:s, s:s}", "role", "system",
							   "content", st));
		free(st);
	}
	json_array_foreach(in, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content");

		if (!role || (strcmp(role, "user") && strcmp(role, "assistant")))
			return fail(hr, answered, "each message needs 'role' user or assistant%s", "");
		if (json_is_string(c)) {
			json_array_append_new(*messages, json_pack("{s:s, s:O}", "role", role,
								   "content", c));
		} else if (json_is_array(c)) {
			if (!strcmp(role, "user") ? !user_blocks(hr, c, *messages, answered) :
			    !assistant_blocks(hr, c, *messages, answered))
				return false;
		} else {
			return fail(hr, answered, "'content' must be a string or a list of "
				    "blocks%s", "");
		}
	}
	if (tl && !json_is_null(tl)) {
		if (!json_is_array(tl))
			return fail(hr, answered, "'tools' must be an array%s", "");
		*tools = json_array();
		json_array_foreach(tl, i, t) {
			const char *name = json_string_value(json_object_get(t, "name"));
			json_t *schema = json_object_get(t, "input_schema"), *fn;

			if (!name || !json_is_object(schema))
				return fail(hr, answered, "each tool needs 'name' and an object "
					    "'input_schema'%s", "");
			fn = json_pack("{s:s}", "name", name);
			if (json_is_string(json_object_get(t, "description")))
				json_object_set(fn, "description", json_object_get(t, "description"));
			json_object_set(fn, "parameters", schema);
			json_array_append_new(*tools, json_pack("{s:s, s:o}", "type", "function",
								"function", fn));
		}
		if (!json_array_size(*tools)) {
			json_decref(*tools);
			*tools = NULL;
		}
	}
	return true;
}

static bool thinking_mode(struct http_req *hr, json_t *body, enum chat_mode *mode,
			  enum MHD_Result *answered)
{
	json_t *th = json_object_get(body, "thinking");
	const char *t;

	*mode = api_default_thinking ? CHAT_MODE_THINKING : CHAT_MODE_CHAT;
	if (!th || json_is_null(th))
		return true;
	t = json_string_value(json_object_get(th, "type"));
	if (!json_is_object(th) || !t || (strcmp(t, "enabled") && strcmp(t, "disabled")))
		return fail(hr, answered, "'thinking.type' must be enabled or disabled%s", "");
	*mode = strcmp(t, "enabled") ? CHAT_MODE_CHAT : CHAT_MODE_THINKING;
	return true;
}

/* Renders and tokenizes; the shared part of both endpoints. */
static bool prompt_ids(struct http_req *hr, json_t *body, enum chat_mode mode, int32_t **ids,
		       size_t *n, enum MHD_Result *answered)
{
	struct chat_opts co = { .mode = mode };
	json_t *messages = NULL, *tools = NULL;
	char err[512] = "", *prompt;
	bool ok;

	if (!convert(hr, body, &messages, &tools, answered)) {
		json_decref(messages);
		json_decref(tools);
		return false;
	}
	if (!strcmp(json_string_value(json_object_get(json_object_get(body, "tool_choice"),
						      "type")) ?: "", "none")) {
		json_decref(tools);
		tools = NULL;
	}
	prompt = chat_render(messages, tools, &co, err, sizeof(err));
	json_decref(messages);
	json_decref(tools);
	if (!prompt)
		return fail(hr, answered, "%s", err);
	ok = !dsv4_tokenize(hr->srv->tok, prompt, strlen(prompt), DSV4_TOK_SPECIAL, ids, n, err,
			    sizeof(err));
	free(prompt);
	if (!ok)
		return fail(hr, answered, "cannot tokenize the prompt: %s", err);
	return true;
}

enum MHD_Result api_count_tokens(struct http_req *hr)
{
	enum MHD_Result answered = MHD_NO;
	enum chat_mode mode;
	int32_t *ids = NULL;
	size_t n = 0;
	json_t *body = api_parse_body(hr, &answered);

	if (!body)
		return answered;
	if (api_check_model(hr, body, false, &answered) && thinking_mode(hr, body, &mode, &answered) &&
	    prompt_ids(hr, body, mode, &ids, &n, &answered))
		answered = http_json(hr, 200, json_pack("{s:I}", "input_tokens", (json_int_t)n));
	free(ids);
	json_decref(body);
	return answered;
}

static const char *stop_reason(const struct gen_request *r, bool tool_use)
{
	if (r->finish == FINISH_LENGTH)
		return "max_tokens";
	if (r->stop_hit)
		return "stop_sequence";
	return tool_use ? "tool_use" : "end_turn";
}

static json_t *usage(const struct gen_request *r)
{
	return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens",
			 (json_int_t)(r->n_prompt - r->n_cached), "output_tokens",
			 (json_int_t)r->n_generated, "cache_creation_input_tokens", (json_int_t)0,
			 "cache_read_input_tokens", (json_int_t)r->n_cached);
}

static json_t *tool_use_block(const struct chat_tool_call *c, bool empty_input)
{
	char id[48];
	json_t *input = empty_input ? json_object() : json_loads(c->arguments, 0, NULL);

	api_make_id(id, sizeof(id), "toolu_");
	if (!json_is_object(input)) {
		json_decref(input);
		input = json_pack("{s:s}", "arguments", c->arguments);
	}
	return json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name", c->name,
			 "input", input);
}

/* ---- streaming ---- */

struct msg_sse {
	struct server *srv;
	struct gen_request *r;
	struct chat_stream *cs;
	char id[48];
	bool started;
	int block;			/* index of the open block, -1: none */
	const char *open_type;		/* "thinking" or "text" */
	int next_index;
	bool tool_use;
	uint64_t last_send_ns;
};

static void close_block(struct sse *s, struct msg_sse *st)
{
	if (st->block < 0)
		return;
	if (!strcmp(st->open_type, "thinking"))
		sse_event(s, "content_block_delta",
			  json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_delta",
				    "index", st->block, "delta", "type", "signature_delta",
				    "signature", ""));
	sse_event(s, "content_block_stop", json_pack("{s:s, s:i}", "type", "content_block_stop",
						     "index", st->block));
	st->block = -1;
}

static void delta(struct sse *s, struct msg_sse *st, const char *type, const char *text,
		  size_t len)
{
	bool thinking = !strcmp(type, "thinking");

	if (!len)
		return;
	if (st->block >= 0 && strcmp(st->open_type, type))
		close_block(s, st);
	if (st->block < 0) {
		st->block = st->next_index++;
		st->open_type = thinking ? "thinking" : "text";
		sse_event(s, "content_block_start",
			  thinking ?
			  json_pack("{s:s, s:i, s:{s:s, s:s, s:s}}", "type", "content_block_start",
				    "index", st->block, "content_block", "type", "thinking",
				    "thinking", "", "signature", "") :
			  json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_start",
				    "index", st->block, "content_block", "type", "text", "text", ""));
	}
	sse_event(s, "content_block_delta",
		  json_pack("{s:s, s:i, s:{s:s, s:s%}}", "type", "content_block_delta", "index",
			    st->block, "delta", "type", thinking ? "thinking_delta" : "text_delta",
			    thinking ? "thinking" : "text", text, len));
}

static void send_msg_events(struct sse *s, struct msg_sse *st, struct chat_events *ce)
{
	delta(s, st, "thinking", ce->reasoning, ce->reasoning_len);
	delta(s, st, "text", ce->content, ce->content_len);
	for (size_t i = 0; i < ce->n_calls; i++) {
		json_t *blk = tool_use_block(&ce->calls[i], true);
		int idx;

		close_block(s, st);
		idx = st->next_index++;
		sse_event(s, "content_block_start",
			  json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index", idx,
				    "content_block", blk));
		sse_event(s, "content_block_delta",
			  json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_delta",
				    "index", idx, "delta", "type", "input_json_delta",
				    "partial_json", ce->calls[i].arguments));
		sse_event(s, "content_block_stop", json_pack("{s:s, s:i}", "type",
							     "content_block_stop", "index", idx));
		st->tool_use = true;
	}
	chat_events_clear(ce);
}

static int msg_produce(struct sse *s, void *state)
{
	struct msg_sse *st = state;
	struct gen_request *r = st->r;
	struct chat_events ce = { 0 };
	struct gen_event *ev;
	size_t n;

	if (!st->started) {
		json_t *u = usage(r);

		json_object_set_new(u, "output_tokens", json_integer(0));
		st->started = true;
		sse_event(s, "message_start",
			  json_pack("{s:s, s:{s:s, s:s, s:s, s:[], s:s, s:n, s:n, s:o}}", "type",
				    "message_start", "message", "id", st->id, "type", "message",
				    "role", "assistant", "content", "model", st->srv->opt.alias,
				    "stop_reason", "stop_sequence", "usage", u));
		sse_event(s, "ping", json_pack("{s:s}", "type", "ping"));
		return 0;
	}
	n = gen_request_take(r, &ev, 1000);
	for (size_t i = 0; i < n; i++)
		if (ev[i].text_len && chat_stream_feed(st->cs, ev[i].text, ev[i].text_len, &ce) == 0)
			send_msg_events(s, st, &ce);
	gen_events_free(ev, n);
	switch (api_stream_state(r, n, &st->last_send_ns, PING_NS)) {
	case API_STREAM_IDLE:
		sse_event(s, "ping", json_pack("{s:s}", "type", "ping"));
		return 0;
	case API_STREAM_MORE:
		return 0;
	case API_STREAM_DONE:
		break;
	}
	if (api_failed(r)) {
		sse_event(s, "error", json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error",
						"type", "api_error", "message",
						r->error[0] ? r->error : "generation failed"));
		return 1;
	}
	if (chat_stream_finish(st->cs, &ce) == 0)
		send_msg_events(s, st, &ce);
	close_block(s, st);
	sse_event(s, "message_delta",
		  json_pack("{s:s, s:{s:s, s:o}, s:o}", "type", "message_delta", "delta",
			    "stop_reason", stop_reason(r, st->tool_use), "stop_sequence",
			    r->stop_hit ? json_string(r->stop_hit) : json_null(), "usage",
			    usage(r)));
	sse_event(s, "message_stop", json_pack("{s:s}", "type", "message_stop"));
	return 1;
}

static void msg_sse_free(void *state)
{
	struct msg_sse *st = state;

	atomic_store(&st->r->cancel, true);
	gen_request_put(st->r);
	chat_stream_free(st->cs);
	free(st);
}

enum MHD_Result api_messages(struct http_req *hr)
{
	struct server *srv = hr->srv;
	enum MHD_Result answered = MHD_NO;
	struct gen_request *r = NULL;
	enum chat_mode mode;
	json_t *body, *v;
	size_t n_ids = 0;
	bool stream = false;

	body = api_parse_body(hr, &answered);
	if (!body)
		return answered;
	if (!api_check_model(hr, body, true, &answered) ||
	    !thinking_mode(hr, body, &mode, &answered))
		goto out;
	v = json_object_get(body, "max_tokens");
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		answered = http_error(hr, 400, "invalid_request_error", NULL,
				      "'max_tokens' is required: a positive integer");
		goto out;
	}
	v = json_object_get(body, "stream");
	if (v && !json_is_null(v) && !json_is_boolean(v)) {
		answered = http_error(hr, 400, "invalid_request_error", NULL,
				      "'stream' must be a boolean");
		goto out;
	}
	stream = json_is_true(v);
	r = gen_request_new();
	if (!r) {
		answered = api_oom(hr);
		goto out;
	}
	r->api = "anthropic";
	if (!api_sampling(hr, body, r, true, &answered) ||
	    !prompt_ids(hr, body, mode, &r->prompt, &n_ids, &answered))
		goto out;
	r->n_prompt = (uint32_t)n_ids;
	if (!api_check_context(hr, r, json_object_get(body, "max_tokens"), &answered) ||
	    !api_submit(hr, r, &answered))
		goto out;
	if (stream) {
		struct msg_sse *st = calloc(1, sizeof(*st));

		if (!st || !(st->cs = chat_stream_new(mode))) {
			free(st);
			atomic_store(&r->cancel, true);
			answered = api_oom(hr);
			goto out;
		}
		st->srv = srv;
		st->r = r;
		st->block = -1;
		st->last_send_ns = srv_now_ns();
		api_make_id(st->id, sizeof(st->id), "msg_");
		r = NULL;
		answered = http_sse(hr, msg_produce, st, msg_sse_free);
	} else {
		size_t len;
		char *text = api_collect(hr, r, NULL, NULL, &len);
		struct chat_msg msg;
		json_t *content = json_array();
		char id[48];

		if (api_failed(r)) {
			answered = http_error(hr, api_failed_status(r), "api_error", NULL, "%s",
					      r->error[0] ? r->error : "generation failed");
			free(text);
			json_decref(content);
			goto out;
		}
		if (!text) {
			json_decref(content);
			answered = api_oom(hr);
			goto out;
		}
		chat_parse(text, len, mode, &msg);
		free(text);
		if (!msg.content || !msg.reasoning) {
			chat_msg_free(&msg);
			json_decref(content);
			answered = api_oom(hr);
			goto out;
		}
		if (mode == CHAT_MODE_THINKING && msg.reasoning[0])
			json_array_append_new(content, json_pack("{s:s, s:s, s:s}", "type",
								 "thinking", "thinking",
								 msg.reasoning, "signature", ""));
		if (msg.content[0] || !msg.n_calls)
			json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text",
								 msg.content));
		for (size_t i = 0; i < msg.n_calls; i++)
			json_array_append_new(content, tool_use_block(&msg.calls[i], false));
		api_make_id(id, sizeof(id), "msg_");
		answered = http_json(hr, 200,
				     json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:o}", "id", id,
					       "type", "message", "role", "assistant", "model",
					       srv->opt.alias, "content", content, "stop_reason",
					       stop_reason(r, msg.n_calls > 0), "stop_sequence",
					       r->stop_hit ? json_string(r->stop_hit) : json_null(),
					       "usage", usage(r)));
		chat_msg_free(&msg);
	}
out:
	json_decref(body);
	gen_request_put(r);
	return answered;
}
