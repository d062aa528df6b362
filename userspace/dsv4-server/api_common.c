// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * What the OpenAI and Anthropic handlers share: body parsing, the model
 * check, sampling fields, context limits, submission and collection.
 * Every field is type-checked; a bad one is a 400 naming it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api.h"

bool api_default_thinking;

void api_make_id(char *out, size_t len, const char *prefix)
{
	unsigned char raw[12];
	size_t o;

	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		memset(raw, 0, sizeof(raw));
	o = (size_t)snprintf(out, len, "%s", prefix);
	for (size_t i = 0; i < sizeof(raw) && o + 2 < len; i++, o += 2)
		snprintf(out + o, len - o, "%02x", raw[i]);
}

json_t *api_parse_body(struct http_req *hr, enum MHD_Result *answered)
{
	json_error_t je;
	json_t *body;

	if (!hr->body || !hr->body_len) {
		*answered = http_error(hr, 400, "invalid_request_error", "invalid_json",
				       "the request needs a JSON body");
		return NULL;
	}
	/* jansson checks UTF-8 and refuses NUL in strings unless asked */
	body = json_loadb(hr->body, hr->body_len, JSON_REJECT_DUPLICATES, &je);
	if (!body) {
		*answered = http_error(hr, 400, "invalid_request_error", "invalid_json",
				       "malformed JSON at line %d column %d: %s", je.line,
				       je.column, je.text);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		*answered = http_error(hr, 400, "invalid_request_error", "invalid_json",
				       "the request body must be a JSON object");
		return NULL;
	}
	return body;
}

bool api_check_model(struct http_req *hr, json_t *body, bool required, enum MHD_Result *answered)
{
	json_t *m = json_object_get(body, "model");

	if (!m && !required)
		return true;
	if (!json_is_string(m)) {
		*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				       "'model' must be a string naming the model (\"%s\")",
				       hr->srv->opt.alias);
		return false;
	}
	if (strcmp(json_string_value(m), hr->srv->opt.alias)) {
		*answered = http_error(hr, 404, hr->kind == API_ANTHROPIC ? "not_found_error" :
				       "invalid_request_error", "model_not_found",
				       "the model '%s' does not exist; this server serves '%s'",
				       json_string_value(m), hr->srv->opt.alias);
		return false;
	}
	return true;
}

static bool bad(struct http_req *hr, enum MHD_Result *answered, const char *field,
		const char *want)
{
	*answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
			       "'%s' must be %s", field, want);
	return false;
}

/* A number field within [lo, hi] into *out; absent or null keeps *out. */
static bool num_field(struct http_req *hr, json_t *body, const char *field, double lo, double hi,
		      float *out, enum MHD_Result *answered)
{
	json_t *v = json_object_get(body, field);
	char want[96];
	double x;

	if (!v || json_is_null(v))
		return true;
	snprintf(want, sizeof(want), "a number from %g to %g", lo, hi);
	if (!json_is_number(v))
		return bad(hr, answered, field, want);
	x = json_number_value(v);
	if (!(x >= lo && x <= hi))
		return bad(hr, answered, field, want);
	*out = (float)x;
	return true;
}

static bool add_stop(struct http_req *hr, struct gen_request *r, json_t *s, const char *field,
		     enum MHD_Result *answered)
{
	size_t len;

	if (!json_is_string(s) || !(len = json_string_length(s)) || len > 512 ||
	    strlen(json_string_value(s)) != len)
		return bad(hr, answered, field, "a non-empty string (at most 512 bytes) or a list of them");
	if (r->n_stop == SRV_MAX_STOP)
		return bad(hr, answered, field, "at most 8 strings");
	r->stop[r->n_stop] = strdup(json_string_value(s));
	if (!r->stop[r->n_stop])
		return bad(hr, answered, field, "storable (out of memory)");
	r->n_stop++;
	return true;
}

bool api_sampling(struct http_req *hr, json_t *body, struct gen_request *r, bool anthropic,
		  enum MHD_Result *answered)
{
	const char *stop_field = anthropic ? "stop_sequences" : "stop";
	json_t *v;

	r->sp = (struct sample_params){ .temperature = 1.0f, .top_p = 1.0f,
					.repetition_penalty = 1.0f };
	if (!num_field(hr, body, "temperature", 0, anthropic ? 1 : 2, &r->sp.temperature, answered) ||
	    !num_field(hr, body, "top_p", 0, 1, &r->sp.top_p, answered) ||
	    !num_field(hr, body, "min_p", 0, 1, &r->sp.min_p, answered))
		return false;
	if (!anthropic &&
	    (!num_field(hr, body, "presence_penalty", -2, 2, &r->sp.presence_penalty, answered) ||
	     !num_field(hr, body, "frequency_penalty", -2, 2, &r->sp.frequency_penalty, answered) ||
	     !num_field(hr, body, "repetition_penalty", 0.01, 10, &r->sp.repetition_penalty,
			answered)))
		return false;
	v = json_object_get(body, "top_k");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 1000000)
			return bad(hr, answered, "top_k", "a non-negative integer");
		r->sp.top_k = (int)json_integer_value(v);
	}
	v = json_object_get(body, "seed");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v))
			return bad(hr, answered, "seed", "an integer");
		r->sp.seed = (uint64_t)json_integer_value(v);
		r->sp.has_seed = true;
	}
	v = json_object_get(body, stop_field);
	if (v && !json_is_null(v)) {
		if (json_is_array(v) && !anthropic && json_array_size(v) > SRV_MAX_STOP)
			return bad(hr, answered, stop_field, "at most 8 strings");
		if (json_is_array(v)) {
			size_t i;
			json_t *s;

			json_array_foreach(v, i, s)
				if (!add_stop(hr, r, s, stop_field, answered))
					return false;
		} else if (anthropic || !add_stop(hr, r, v, stop_field, answered)) {
			return anthropic ? bad(hr, answered, stop_field, "a list of strings") : false;
		}
	}
	return true;
}

bool api_check_context(struct http_req *hr, struct gen_request *r, json_t *max_tokens,
		       enum MHD_Result *answered)
{
	uint32_t ctx = hr->srv->opt.ctx_size;
	uint32_t room;

	if (r->n_prompt >= ctx) {
		*answered = http_error(hr, 400, "invalid_request_error", "context_length_exceeded",
				       "this model's context is %u tokens; the prompt has %u tokens, "
				       "leaving no room to generate", ctx, r->n_prompt);
		return false;
	}
	room = ctx - r->n_prompt;
	if (max_tokens && !json_is_null(max_tokens)) {
		json_int_t want;

		if (!json_is_integer(max_tokens) || json_integer_value(max_tokens) < 1)
			return bad(hr, answered, "max_tokens", "a positive integer");
		want = json_integer_value(max_tokens);
		if (want > room) {
			*answered = http_error(hr, 400, "invalid_request_error",
					       "context_length_exceeded",
					       "this model's context is %u tokens; you asked for %lld "
					       "(%u in the prompt, %lld to generate)", ctx,
					       (long long)(want + r->n_prompt), r->n_prompt,
					       (long long)want);
			return false;
		}
		r->max_tokens = (uint32_t)want;
	} else {
		r->max_tokens = hr->srv->opt.default_max_tokens &&
				hr->srv->opt.default_max_tokens < room ?
				hr->srv->opt.default_max_tokens : room;
	}
	return true;
}

enum MHD_Result api_oom(struct http_req *hr)
{
	if (hr->kind == API_ANTHROPIC)
		return http_error(hr, 500, "api_error", NULL, "out of memory");
	return http_error(hr, 500, "server_error", "out_of_memory", "out of memory");
}

bool api_submit(struct http_req *hr, struct gen_request *r, enum MHD_Result *answered)
{
	int ret;

	if (atomic_load(&hr->srv->state) != SRV_READY) {
		*answered = http_error(hr, 503, hr->kind == API_ANTHROPIC ? "api_error" :
				       "unavailable_error", "model_loading", "the model is loading");
		return false;
	}
	ret = sched_submit(hr->srv, r);
	if (ret == -EAGAIN) {
		metrics_rejected(hr->srv->mx, "queue_full");
		if (hr->kind == API_ANTHROPIC)
			*answered = http_error(hr, 529, "overloaded_error", NULL,
					       "the server is overloaded; retry later");
		else
			*answered = http_error(hr, 429, "rate_limit_error", "overloaded",
					       "the server is overloaded (%u requests queued); retry later",
					       hr->srv->opt.queue_max);
		return false;
	}
	if (ret) {
		*answered = http_error(hr, 503, hr->kind == API_ANTHROPIC ? "api_error" :
				       "unavailable_error", "stopping", "the server is stopping");
		return false;
	}
	hr->gen = r;
	return true;
}

char *api_collect(struct http_req *hr, struct gen_request *r, struct gen_event **all,
		  size_t *n_all, size_t *text_len)
{
	char *text = NULL;
	size_t len = 0, n = 0;
	struct gen_event *acc = NULL;
	bool done = false;

	while (!done) {
		struct gen_event *ev;
		size_t got = gen_request_take(r, &ev, 500);

		for (size_t i = 0; i < got; i++) {
			if (ev[i].text_len) {
				char *grown = realloc(text, len + ev[i].text_len + 1);

				if (grown) {
					memcpy(grown + len, ev[i].text, ev[i].text_len);
					len += ev[i].text_len;
					grown[len] = 0;
					text = grown;
				}
			}
		}
		if (all && got) {
			struct gen_event *grown = realloc(acc, (n + got) * sizeof(*acc));

			if (grown) {
				memcpy(grown + n, ev, got * sizeof(*ev));
				acc = grown;
				n += got;
				free(ev);
				ev = NULL;
				got = 0;
			}
		}
		gen_events_free(ev, got);
		pthread_mutex_lock(&r->mu);
		done = r->done && r->head == r->n_events;
		pthread_mutex_unlock(&r->mu);
		if (!done && http_client_gone(hr->fd)) {
			atomic_store(&r->cancel, true);
			/* the scheduler frees the sequence at its next step */
		}
	}
	if (all) {
		*all = acc;
		*n_all = n;
	}
	if (!text)
		text = strdup("");
	*text_len = len;
	return text;
}

json_t *api_logprobs_json(struct server *srv, const struct gen_event *ev, size_t n_ev, int n_top)
{
	json_t *content = json_array();

	for (size_t e = 0; e < n_ev; e++) {
		for (uint32_t t = 0; t < ev[e].n_tokens && ev[e].chosen; t++) {
			json_t *top = json_array(), *bytes = json_array(), *item;
			size_t blen = 0;
			const char *b = dsv4_token_bytes(srv->tok, ev[e].chosen[t].id, &blen);
			char *tok = dsv4_utf8_sanitize(b ? b : "", b ? blen : 0, NULL);

			for (size_t i = 0; i < blen; i++)
				json_array_append_new(bytes, json_integer((unsigned char)b[i]));
			for (int k = 0; k < n_top && ev[e].top; k++) {
				const struct token_logprob *tp = &ev[e].top[(size_t)t * n_top + k];
				size_t tl = 0;
				const char *tb = dsv4_token_bytes(srv->tok, tp->id, &tl);
				char *ts = dsv4_utf8_sanitize(tb ? tb : "", tb ? tl : 0, NULL);
				json_t *tbytes = json_array();

				for (size_t i = 0; i < tl; i++)
					json_array_append_new(tbytes, json_integer((unsigned char)tb[i]));
				json_array_append_new(top, json_pack("{s:s, s:f, s:o}", "token",
								     ts ? ts : "", "logprob",
								     (double)tp->logprob, "bytes",
								     tbytes));
				free(ts);
			}
			item = json_pack("{s:s, s:f, s:o, s:o}", "token", tok ? tok : "", "logprob",
					 (double)ev[e].chosen[t].logprob, "bytes", bytes,
					 "top_logprobs", top);
			free(tok);
			json_array_append_new(content, item);
		}
	}
	return content;
}

const char *api_finish_openai(const struct gen_request *r, bool tool_calls)
{
	switch (r->finish) {
	case FINISH_LENGTH:
		return "length";
	case FINISH_STOP:
		return tool_calls ? "tool_calls" : "stop";
	default:
		return "stop";
	}
}

bool api_failed(const struct gen_request *r)
{
	return r->finish == FINISH_ERROR || r->finish == FINISH_CANCELLED;
}

unsigned api_failed_status(const struct gen_request *r)
{
	/* 499: the client left (nginx's code); 500: the engine failed */
	return r->finish == FINISH_CANCELLED ? 499 : 500;
}

enum api_stream_state api_stream_state(struct gen_request *r, size_t n_taken,
				       uint64_t *last_send_ns, uint64_t idle_ns)
{
	bool done;

	pthread_mutex_lock(&r->mu);
	done = r->done && r->head == r->n_events;
	pthread_mutex_unlock(&r->mu);
	if (n_taken)
		*last_send_ns = srv_now_ns();
	if (done)
		return API_STREAM_DONE;
	if (!n_taken && srv_now_ns() - *last_send_ns > idle_ns) {
		*last_send_ns = srv_now_ns();
		return API_STREAM_IDLE;
	}
	return API_STREAM_MORE;
}
