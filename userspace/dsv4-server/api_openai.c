// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * OpenAI API: POST /v1/chat/completions and /v1/completions, streaming
 * (SSE chunks, `data: [DONE]`, stream_options.include_usage) or not.
 * Chat requests are rendered with DeepSeek V4's encoding (chat.c); the
 * output is parsed back into content, reasoning_content and tool_calls.
 * DeepSeek's extensions are honoured: `thinking: {"type": "enabled"}`
 * (or chat_template_kwargs.thinking) and `reasoning_effort`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "chat.h"

#define KEEPALIVE_NS (15ull * 1000000000ull)

static json_t *usage_json(const struct gen_request *r, uint32_t reasoning_tokens)
{
	return json_pack("{s:I, s:I, s:I, s:{s:I}, s:{s:I}}",
			 "prompt_tokens", (json_int_t)r->n_prompt,
			 "completion_tokens", (json_int_t)r->n_generated,
			 "total_tokens", (json_int_t)(r->n_prompt + r->n_generated),
			 "prompt_tokens_details", "cached_tokens", (json_int_t)r->n_cached,
			 "completion_tokens_details", "reasoning_tokens",
			 (json_int_t)reasoning_tokens);
}

static uint32_t count_tokens(struct server *srv, const char *text, size_t len)
{
	int32_t *ids = NULL;
	size_t n = 0;

	if (!len || dsv4_tokenize(srv->tok, text, len, 0, &ids, &n, NULL, 0))
		return 0;
	free(ids);
	return (uint32_t)n;
}

static json_t *tool_calls_json(const struct chat_tool_call *calls, size_t n, bool streaming,
			       size_t first_index)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < n; i++) {
		char id[48];
		json_t *c;

		api_make_id(id, sizeof(id), "call_");
		c = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function", "function",
			      "name", calls[i].name, "arguments", calls[i].arguments);
		if (streaming)
			json_object_set_new(c, "index", json_integer((json_int_t)(first_index + i)));
		json_array_append_new(arr, c);
	}
	return arr;
}

/* ---- request fields shared by both endpoints ---- */

static bool common_fields(struct http_req *hr, json_t *body, struct gen_request *r, bool *stream,
			  bool *include_usage, enum MHD_Result *answered)
{
	json_t *v = json_object_get(body, "stream");

	*stream = false;
	*include_usage = false;
	if (v && !json_is_null(v)) {
		if (!json_is_boolean(v)) {
			*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
					       "'stream' must be a boolean");
			return false;
		}
		*stream = json_is_true(v);
	}
	v = json_object_get(body, "stream_options");
	if (v && !json_is_null(v)) {
		json_t *iu = json_object_get(v, "include_usage");

		if (!json_is_object(v) || (iu && !json_is_boolean(iu))) {
			*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
					       "'stream_options' must be an object with a boolean "
					       "'include_usage'");
			return false;
		}
		*include_usage = json_is_true(iu);
	}
	v = json_object_get(body, "n");
	if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) != 1)) {
		*answered = http_error(hr, 400, "invalid_request_error", "unsupported_value",
				       "'n' must be 1: one choice per request");
		return false;
	}
	return api_sampling(hr, body, r, false, answered);
}

/* ---- chat completions ---- */

struct chat_sse {
	struct server *srv;
	struct gen_request *r;
	struct chat_stream *cs;
	enum chat_mode mode;
	char id[48];
	time_t created;
	bool include_usage, role_sent, logprobs;
	int n_top;
	size_t n_calls;
	uint32_t reasoning_tokens;
	json_t *pending_lp;		/* logprob entries not yet attached */
	uint64_t last_send_ns;
};

/* NULL when out of memory (sse_event() then ends the stream) */
static json_t *chunk(struct chat_sse *st, json_t *delta, const char *finish)
{
	json_t *lp = json_null(), *choice, *c;

	/* the entries not yet sent go with this chunk, and a new list
	 * gathers the next ones (a shared list, cleared here, went out empty) */
	if (st->logprobs && json_array_size(st->pending_lp)) {
		json_t *next = json_array();

		if (!next) {
			json_decref(delta);
			return NULL;
		}
		lp = json_pack("{s:o}", "content", st->pending_lp);
		st->pending_lp = next;
	}
	choice = json_pack("{s:i, s:o, s:o, s:o}", "index", 0, "delta", delta, "logprobs", lp,
			   "finish_reason", finish ? json_string(finish) : json_null());
	c = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o]}", "id", st->id, "object",
		      "chat.completion.chunk", "created", (json_int_t)st->created, "model",
		      st->srv->opt.alias, "system_fingerprint", "dsv4", "choices", choice);
	if (c && st->include_usage)
		json_object_set_new(c, "usage", json_null());
	return c;
}

static void send_events(struct sse *s, struct chat_sse *st, struct chat_events *ce)
{
	if (ce->reasoning_len) {
		st->reasoning_tokens += count_tokens(st->srv, ce->reasoning, ce->reasoning_len);
		sse_event(s, NULL, chunk(st, json_pack("{s:s%}", "reasoning_content", ce->reasoning,
						       ce->reasoning_len), NULL));
	}
	if (ce->content_len)
		sse_event(s, NULL, chunk(st, json_pack("{s:s%}", "content", ce->content,
						       ce->content_len), NULL));
	if (ce->n_calls) {
		sse_event(s, NULL, chunk(st, json_pack("{s:o}", "tool_calls",
						       tool_calls_json(ce->calls, ce->n_calls,
								       true, st->n_calls)),
					 NULL));
		st->n_calls += ce->n_calls;
	}
	chat_events_clear(ce);
}

/* After a step that took @n events: whether the generation is over (a
 * keep-alive comment when it is not and the stream was quiet); a failed one
 * has its error event sent. */
static bool stream_over(struct sse *s, struct gen_request *r, size_t n, uint64_t *last_send_ns)
{
	switch (api_stream_state(r, n, last_send_ns, KEEPALIVE_NS)) {
	case API_STREAM_IDLE:
		sse_raw(s, ": keep-alive\n\n");
		return false;
	case API_STREAM_MORE:
		return false;
	case API_STREAM_DONE:
		break;
	}
	if (api_failed(r))
		sse_event(s, NULL, json_pack("{s:{s:s, s:s, s:s}}", "error", "message",
					     r->error[0] ? r->error : "generation failed", "type",
					     "server_error", "code", "generation_failed"));
	return true;
}

static int chat_produce(struct sse *s, void *state)
{
	struct chat_sse *st = state;
	struct gen_request *r = st->r;
	struct gen_event *ev;
	struct chat_events ce = { 0 };
	size_t n;

	if (!st->role_sent) {
		st->role_sent = true;
		sse_event(s, NULL, chunk(st, json_pack("{s:s, s:s}", "role", "assistant",
						       "content", ""), NULL));
		return 0;
	}
	n = gen_request_take(r, &ev, 1000);
	for (size_t i = 0; i < n; i++) {
		if (st->logprobs) {
			json_t *lp = api_logprobs_json(st->srv, &ev[i], 1, st->n_top);

			json_array_extend(st->pending_lp, lp);
			json_decref(lp);
		}
		if (ev[i].text_len && chat_stream_feed(st->cs, ev[i].text, ev[i].text_len, &ce) == 0)
			send_events(s, st, &ce);
	}
	gen_events_free(ev, n);
	if (!stream_over(s, r, n, &st->last_send_ns))
		return 0;
	if (api_failed(r)) {
		sse_raw(s, "data: [DONE]\n\n");
		return 1;
	}
	if (chat_stream_finish(st->cs, &ce) == 0)
		send_events(s, st, &ce);
	sse_event(s, NULL, chunk(st, json_object(), api_finish_openai(r, st->n_calls > 0)));
	if (st->include_usage) {
		json_t *u = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}", "id", st->id, "object",
				      "chat.completion.chunk", "created", (json_int_t)st->created,
				      "model", st->srv->opt.alias, "system_fingerprint", "dsv4",
				      "choices", "usage", usage_json(r, st->reasoning_tokens));

		sse_event(s, NULL, u);
	}
	sse_raw(s, "data: [DONE]\n\n");
	return 1;
}

static void chat_sse_free(void *state)
{
	struct chat_sse *st = state;

	atomic_store(&st->r->cancel, true);	/* no-op once finished */
	gen_request_put(st->r);
	chat_stream_free(st->cs);
	json_decref(st->pending_lp);
	free(st);
}

/* Reads thinking mode and effort; answers 400 on a bad value. */
static bool chat_mode_fields(struct http_req *hr, json_t *body, struct chat_opts *o,
			     enum MHD_Result *answered)
{
	json_t *th = json_object_get(body, "thinking");
	json_t *kw = json_object_get(body, "chat_template_kwargs");
	json_t *eff = json_object_get(body, "reasoning_effort");

	o->mode = api_default_thinking ? CHAT_MODE_THINKING : CHAT_MODE_CHAT;
	if (th && !json_is_null(th)) {
		const char *t = json_string_value(json_object_get(th, "type"));

		if (!json_is_object(th) || !t || (strcmp(t, "enabled") && strcmp(t, "disabled"))) {
			*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
					       "'thinking' must be {\"type\": \"enabled\"} or "
					       "{\"type\": \"disabled\"}");
			return false;
		}
		o->mode = strcmp(t, "enabled") ? CHAT_MODE_CHAT : CHAT_MODE_THINKING;
	} else if (json_is_object(kw)) {
		json_t *b = json_object_get(kw, "thinking");

		if (!b)
			b = json_object_get(kw, "enable_thinking");
		if (b && !json_is_boolean(b)) {
			*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
					       "'chat_template_kwargs.thinking' must be a boolean");
			return false;
		}
		if (b)
			o->mode = json_is_true(b) ? CHAT_MODE_THINKING : CHAT_MODE_CHAT;
	}
	o->effort = CHAT_EFFORT_NONE;
	if (eff && !json_is_null(eff)) {
		const char *e = json_string_value(eff);
		static const char *const high[] = { "minimal", "low", "medium", "high" };

		if (e && !strcmp(e, "max")) {
			o->effort = CHAT_EFFORT_MAX;
		} else {
			for (size_t i = 0; e && i < 4 && o->effort == CHAT_EFFORT_NONE; i++)
				if (!strcmp(e, high[i]))
					o->effort = CHAT_EFFORT_HIGH;
			if (o->effort == CHAT_EFFORT_NONE) {
				*answered = http_error(hr, 400, "invalid_request_error",
						       "invalid_value",
						       "'reasoning_effort' must be one of minimal, low, "
						       "medium, high, max");
				return false;
			}
		}
	}
	return true;
}

/* response_format json_object / json_schema goes to the system message,
 * where DeepSeek's renderer puts it. */
static bool attach_response_format(struct http_req *hr, json_t *body, json_t *messages,
				   enum MHD_Result *answered)
{
	json_t *rf = json_object_get(body, "response_format"), *first;
	const char *type;

	if (!rf || json_is_null(rf))
		return true;
	type = json_string_value(json_object_get(rf, "type"));
	if (!json_is_object(rf) || !type ||
	    (strcmp(type, "text") && strcmp(type, "json_object") && strcmp(type, "json_schema"))) {
		*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				       "'response_format.type' must be text, json_object or "
				       "json_schema");
		return false;
	}
	if (!strcmp(type, "text"))
		return true;
	first = json_array_get(messages, 0);
	if (!json_is_object(first) ||
	    strcmp(json_string_value(json_object_get(first, "role")) ?: "", "system")) {
		first = json_pack("{s:s, s:s}", "role", "system", "content", "");
		/* (on failure the array has released first) */
		if (json_array_insert_new(messages, 0, first))
			first = NULL;
	}
	if (!first || json_object_set(first, "response_format", rf)) {
		*answered = api_oom(hr);
		return false;
	}
	return true;
}

enum MHD_Result api_chat_completions(struct http_req *hr)
{
	struct server *srv = hr->srv;
	enum MHD_Result answered = MHD_NO;
	struct chat_opts co = { 0 };
	struct gen_request *r = NULL;
	json_t *body, *messages = NULL, *tools, *v;
	bool stream, include_usage, logprobs = false;
	char err[512] = "", *prompt = NULL;
	size_t n_ids = 0;

	body = api_parse_body(hr, &answered);
	if (!body)
		return answered;
	if (!api_check_model(hr, body, false, &answered))
		goto out;
	v = json_object_get(body, "messages");
	if (!json_is_array(v) || !json_array_size(v)) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				      "'messages' must be a non-empty array");
		goto out;
	}
	messages = json_deep_copy(v);
	if (!messages)
		goto oom;
	tools = json_object_get(body, "tools");
	if (tools && !json_is_null(tools) && !json_is_array(tools)) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				      "'tools' must be an array");
		goto out;
	}
	if (!json_array_size(tools) ||
	    !strcmp(json_string_value(json_object_get(body, "tool_choice")) ?: "", "none"))
		tools = NULL;
	if (!chat_mode_fields(hr, body, &co, &answered) ||
	    !attach_response_format(hr, body, messages, &answered))
		goto out;
	v = json_object_get(body, "logprobs");
	if (v && !json_is_null(v) && !json_is_boolean(v)) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				      "'logprobs' must be a boolean");
		goto out;
	}
	logprobs = json_is_true(v);
	r = gen_request_new();
	if (!r)
		goto oom;
	r->api = "openai";
	if (!common_fields(hr, body, r, &stream, &include_usage, &answered))
		goto out;
	v = json_object_get(body, "top_logprobs");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > SRV_MAX_TOP_LOGPROBS) {
			answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
					      "'top_logprobs' must be an integer from 0 to 20");
			goto out;
		}
		if (!logprobs) {
			answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
					      "'top_logprobs' needs 'logprobs': true");
			goto out;
		}
	}
	r->n_top = logprobs ? (int)json_integer_value(v) : -1;

	prompt = chat_render(messages, tools, &co, err, sizeof(err));
	if (!prompt) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_messages", "%s",
				      err);
		goto out;
	}
	if (dsv4_tokenize(srv->tok, prompt, strlen(prompt), DSV4_TOK_SPECIAL, &r->prompt, &n_ids,
			  err, sizeof(err))) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_messages",
				      "cannot tokenize the prompt: %s", err);
		goto out;
	}
	r->n_prompt = (uint32_t)n_ids;
	v = json_object_get(body, "max_completion_tokens");
	if (!v || json_is_null(v))
		v = json_object_get(body, "max_tokens");
	if (!api_check_context(hr, r, v, &answered) || !api_submit(hr, r, &answered))
		goto out;

	if (stream) {
		struct chat_sse *st = calloc(1, sizeof(*st));

		if (!st || !(st->cs = chat_stream_new(co.mode)) || !(st->pending_lp = json_array())) {
			if (st)
				chat_stream_free(st->cs);
			free(st);
			atomic_store(&r->cancel, true);
			goto oom;
		}
		st->srv = srv;
		st->r = r;
		st->mode = co.mode;
		st->include_usage = include_usage;
		st->logprobs = logprobs;
		st->n_top = r->n_top > 0 ? r->n_top : 0;
		st->created = time(NULL);
		st->last_send_ns = srv_now_ns();
		api_make_id(st->id, sizeof(st->id), "chatcmpl-");
		r = NULL;		/* the stream holds the reference now */
		answered = http_sse(hr, chat_produce, st, chat_sse_free);
		goto out;
	} else {
		struct gen_event *evs = NULL;
		size_t n_evs = 0, len;
		char *text = api_collect(hr, r, logprobs ? &evs : NULL, &n_evs, &len);
		struct chat_msg msg;
		json_t *message, *choice, *resp;
		char id[48];

		if (api_failed(r)) {
			answered = http_error(hr, api_failed_status(r), "server_error",
					      "generation_failed", "%s",
					      r->error[0] ? r->error : "generation failed");
			free(text);
			gen_events_free(evs, n_evs);
			goto out;
		}
		if (!text) {
			gen_events_free(evs, n_evs);
			goto oom;
		}
		chat_parse(text, len, co.mode, &msg);
		free(text);
		if (!msg.content || !msg.reasoning) {
			chat_msg_free(&msg);
			gen_events_free(evs, n_evs);
			goto oom;
		}
		message = json_pack("{s:s, s:s}", "role", "assistant", "content", msg.content);
		if (msg.n_calls && !msg.content[0])
			json_object_set_new(message, "content", json_null());
		if (co.mode == CHAT_MODE_THINKING)
			json_object_set_new(message, "reasoning_content",
					    json_string(msg.reasoning));
		if (msg.n_calls)
			json_object_set_new(message, "tool_calls",
					    tool_calls_json(msg.calls, msg.n_calls, false, 0));
		choice = json_pack("{s:i, s:o, s:o, s:s}", "index", 0, "message", message,
				   "logprobs", logprobs ?
				   json_pack("{s:o}", "content",
					     api_logprobs_json(srv, evs, n_evs, r->n_top)) :
				   json_null(),
				   "finish_reason", api_finish_openai(r, msg.n_calls > 0));
		api_make_id(id, sizeof(id), "chatcmpl-");
		resp = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o], s:o}", "id", id, "object",
				 "chat.completion", "created", (json_int_t)time(NULL), "model",
				 srv->opt.alias, "system_fingerprint", "dsv4", "choices", choice,
				 "usage", usage_json(r, count_tokens(srv, msg.reasoning,
								     strlen(msg.reasoning))));
		chat_msg_free(&msg);
		gen_events_free(evs, n_evs);
		answered = http_json(hr, 200, resp);
		goto out;
	}
oom:
	answered = api_oom(hr);
out:
	free(prompt);
	json_decref(messages);
	json_decref(body);
	gen_request_put(r);
	return answered;
}

/* ---- completions ---- */

struct text_sse {
	struct server *srv;
	struct gen_request *r;
	char id[48];
	time_t created;
	bool include_usage;
	char *echo;
	uint64_t last_send_ns;
};

static json_t *text_chunk(struct text_sse *st, const char *text, size_t len, const char *finish)
{
	json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:[{s:s%, s:i, s:n, s:o}]}", "id", st->id,
			      "object", "text_completion", "created", (json_int_t)st->created,
			      "model", st->srv->opt.alias, "choices", "text", text, len, "index", 0,
			      "logprobs", "finish_reason",
			      finish ? json_string(finish) : json_null());

	if (st->include_usage)
		json_object_set_new(c, "usage", json_null());
	return c;
}

static int text_produce(struct sse *s, void *state)
{
	struct text_sse *st = state;
	struct gen_request *r = st->r;
	struct gen_event *ev;
	size_t n;

	if (st->echo) {
		sse_event(s, NULL, text_chunk(st, st->echo, strlen(st->echo), NULL));
		free(st->echo);
		st->echo = NULL;
		return 0;
	}
	n = gen_request_take(r, &ev, 1000);
	for (size_t i = 0; i < n; i++)
		if (ev[i].text_len)
			sse_event(s, NULL, text_chunk(st, ev[i].text, ev[i].text_len, NULL));
	gen_events_free(ev, n);
	if (!stream_over(s, r, n, &st->last_send_ns))
		return 0;
	if (!api_failed(r)) {
		sse_event(s, NULL, text_chunk(st, "", 0, api_finish_openai(r, false)));
		if (st->include_usage)
			sse_event(s, NULL, json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", st->id,
						     "object", "text_completion", "created",
						     (json_int_t)st->created, "model",
						     st->srv->opt.alias, "choices", "usage",
						     usage_json(r, 0)));
	}
	sse_raw(s, "data: [DONE]\n\n");
	return 1;
}

static void text_sse_free(void *state)
{
	struct text_sse *st = state;

	atomic_store(&st->r->cancel, true);
	gen_request_put(st->r);
	free(st->echo);
	free(st);
}

/* The prompt: a string, a list of one string, a list of token ids, or a
 * list of one such list. */
static bool completion_prompt(struct http_req *hr, json_t *p, struct gen_request *r,
			      enum MHD_Result *answered)
{
	struct server *srv = hr->srv;
	char err[256] = "";
	size_t n = 0;

	if (json_is_array(p) && json_array_size(p) == 1 &&
	    (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0))))
		p = json_array_get(p, 0);
	if (json_is_string(p)) {
		if (dsv4_tokenize(srv->tok, json_string_value(p), json_string_length(p),
				  DSV4_TOK_SPECIAL, &r->prompt, &n, err, sizeof(err))) {
			*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
					       "cannot tokenize 'prompt': %s", err);
			return false;
		}
	} else if (json_is_array(p) && json_array_size(p)) {
		size_t i;
		json_t *t;

		n = json_array_size(p);
		r->prompt = malloc(n * sizeof(*r->prompt));
		if (!r->prompt) {
			*answered = api_oom(hr);
			return false;
		}
		json_array_foreach(p, i, t) {
			if (!json_is_integer(t) || json_integer_value(t) < 0 ||
			    json_integer_value(t) >= (json_int_t)dsv4_tokenizer_size(srv->tok) ||
			    json_integer_value(t) >= (json_int_t)srv->vocab) {
				*answered = http_error(hr, 400, "invalid_request_error",
						       "invalid_value",
						       "'prompt' token %zu is not a token id below %u", i,
						       srv->vocab);
				return false;
			}
			r->prompt[i] = (int32_t)json_integer_value(t);
		}
	} else {
		*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				       "'prompt' must be a string, a list of token ids, or a list "
				       "holding one of those (one prompt per request)");
		return false;
	}
	if (!n) {
		*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				       "'prompt' is empty");
		return false;
	}
	r->n_prompt = (uint32_t)n;
	return true;
}

enum MHD_Result api_completions(struct http_req *hr)
{
	struct server *srv = hr->srv;
	enum MHD_Result answered = MHD_NO;
	struct gen_request *r = NULL;
	json_t *body, *v;
	bool stream, include_usage, echo = false;

	body = api_parse_body(hr, &answered);
	if (!body)
		return answered;
	if (!api_check_model(hr, body, false, &answered))
		goto out;
	r = gen_request_new();
	if (!r) {
		answered = api_oom(hr);
		goto out;
	}
	r->api = "openai";
	r->skip_special = true;
	if (!common_fields(hr, body, r, &stream, &include_usage, &answered) ||
	    !completion_prompt(hr, json_object_get(body, "prompt"), r, &answered))
		goto out;
	v = json_object_get(body, "echo");
	if (v && !json_is_null(v) && !json_is_boolean(v)) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				      "'echo' must be a boolean");
		goto out;
	}
	echo = json_is_true(v);
	v = json_object_get(body, "suffix");
	if (v && !json_is_null(v)) {
		answered = http_error(hr, 400, "invalid_request_error", "unsupported_value",
				      "'suffix' (fill-in-the-middle) is not supported");
		goto out;
	}
	v = json_object_get(body, "logprobs");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 5) {
			answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
					      "'logprobs' must be an integer from 0 to 5");
			goto out;
		}
		r->n_top = (int)json_integer_value(v);
	}
	if (!api_check_context(hr, r, json_object_get(body, "max_tokens"), &answered) ||
	    !api_submit(hr, r, &answered))
		goto out;
	if (stream) {
		struct text_sse *st = calloc(1, sizeof(*st));
		char *echo_text = NULL;
		size_t el;

		if (!st || (echo && dsv4_detokenize(srv->tok, r->prompt, r->n_prompt, 0, &echo_text,
						    &el, NULL, 0))) {
			free(st);
			atomic_store(&r->cancel, true);
			answered = api_oom(hr);
			goto out;
		}
		st->srv = srv;
		st->r = r;
		st->echo = echo_text;
		st->include_usage = include_usage;
		st->created = time(NULL);
		st->last_send_ns = srv_now_ns();
		api_make_id(st->id, sizeof(st->id), "cmpl-");
		r = NULL;
		answered = http_sse(hr, text_produce, st, text_sse_free);
	} else {
		struct gen_event *evs = NULL;
		size_t n_evs = 0, len;
		char *text = api_collect(hr, r, r->n_top >= 0 ? &evs : NULL, &n_evs, &len);
		json_t *lp = json_null(), *resp;
		char id[48];

		if (api_failed(r)) {
			answered = http_error(hr, api_failed_status(r), "server_error",
					      "generation_failed", "%s",
					      r->error[0] ? r->error : "generation failed");
			free(text);
			gen_events_free(evs, n_evs);
			goto out;
		}
		if (!text) {
			answered = api_oom(hr);
			gen_events_free(evs, n_evs);
			goto out;
		}
		if (echo) {
			char *et = NULL, *joined;
			size_t el = 0;

			if (!dsv4_detokenize(srv->tok, r->prompt, r->n_prompt, 0, &et, &el, NULL, 0) &&
			    (joined = malloc(el + len + 1))) {
				memcpy(joined, et, el);
				memcpy(joined + el, text, len + 1);
				free(text);
				text = joined;
				len += el;
			}
			free(et);
		}
		if (r->n_top >= 0) {
			/* the legacy shape: parallel arrays */
			json_t *content = api_logprobs_json(srv, evs, n_evs, r->n_top), *e;
			json_t *tokens = json_array(), *lps = json_array(), *tops = json_array();
			size_t i;

			json_array_foreach(content, i, e) {
				json_t *top = json_object(), *t;
				size_t k;

				json_array_append(tokens, json_object_get(e, "token"));
				json_array_append(lps, json_object_get(e, "logprob"));
				json_array_foreach(json_object_get(e, "top_logprobs"), k, t)
					json_object_set(top, json_string_value(json_object_get(t, "token")),
							json_object_get(t, "logprob"));
				json_array_append_new(tops, top);
			}
			json_decref(content);
			lp = json_pack("{s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps,
				       "top_logprobs", tops);
		}
		api_make_id(id, sizeof(id), "cmpl-");
		resp = json_pack("{s:s, s:s, s:I, s:s, s:[{s:s%, s:i, s:o, s:s}], s:o}", "id", id,
				 "object", "text_completion", "created", (json_int_t)time(NULL),
				 "model", srv->opt.alias, "choices", "text", text, len, "index", 0,
				 "logprobs", lp, "finish_reason", api_finish_openai(r, false),
				 "usage", usage_json(r, 0));
		free(text);
		gen_events_free(evs, n_evs);
		answered = http_json(hr, 200, resp);
	}
out:
	json_decref(body);
	gen_request_put(r);
	return answered;
}
