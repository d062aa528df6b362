// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The small endpoints: /health (503 while loading, as llama-server),
 * /metrics, /slots, /v1/models, /tokenize and /detokenize (llama-server's
 * shapes: {"content"} in, {"tokens"} out, and back).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

enum MHD_Result api_health(struct http_req *hr)
{
	switch (atomic_load(&hr->srv->state)) {
	case SRV_READY:
		return http_json(hr, 200, json_pack("{s:s}", "status", "ok"));
	case SRV_LOADING:
		return http_error(hr, 503, "unavailable_error", "loading", "Loading model");
	case SRV_FAILED:
		return http_error(hr, 503, "unavailable_error", "load_failed",
				  "the model failed to load: %s", hr->srv->load_error);
	default:
		return http_error(hr, 503, "unavailable_error", "stopping", "the server is stopping");
	}
}

enum MHD_Result api_metrics(struct http_req *hr)
{
	if (!hr->srv->opt.metrics)
		return http_error(hr, 501, "not_supported_error", "metrics_off",
				  "metrics are off (started with --no-metrics)");
	return http_text(hr, 200, "text/plain; version=0.0.4; charset=utf-8",
			 metrics_render(hr->srv->mx, hr->srv));
}

enum MHD_Result api_slots(struct http_req *hr)
{
	struct sched_stats st;

	sched_get_stats(hr->srv, &st);
	return http_json(hr, 200,
			 json_pack("{s:i, s:i, s:i, s:I, s:I, s:I, s:I}", "slots",
				   (int)hr->srv->opt.parallel, "running", (int)st.running,
				   "waiting", (int)st.waiting, "kv_tokens",
				   (json_int_t)st.kv.tokens, "kv_bytes",
				   (json_int_t)st.kv.total_bytes, "steps", (json_int_t)st.steps,
				   "ctx_size", (json_int_t)hr->srv->opt.ctx_size));
}

static json_t *model_json(struct server *srv)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:I}", "id", srv->opt.alias, "object", "model",
			 "created", (json_int_t)srv->created, "owned_by", "dsv4",
			 "context_length", (json_int_t)srv->opt.ctx_size);
}

enum MHD_Result api_models(struct http_req *hr, const char *id)
{
	struct server *srv = hr->srv;

	if (id) {
		if (strcmp(id, srv->opt.alias))
			return http_error(hr, 404, "invalid_request_error", "model_not_found",
					  "the model '%s' does not exist", id);
		return http_json(hr, 200, model_json(srv));
	}
	return http_json(hr, 200, json_pack("{s:s, s:[o]}", "object", "list", "data",
					    model_json(srv)));
}

static bool tokenizer_ready(struct http_req *hr, enum MHD_Result *answered)
{
	if (hr->srv->tok)
		return true;
	*answered = http_error(hr, 503, "unavailable_error", "loading", "Loading model");
	return false;
}

enum MHD_Result api_tokenize(struct http_req *hr)
{
	enum MHD_Result answered = MHD_NO;
	json_t *body = api_parse_body(hr, &answered), *c, *sp, *pieces, *out;
	int32_t *ids = NULL;
	size_t n = 0;
	char err[256] = "";

	if (!body)
		return answered;
	if (!tokenizer_ready(hr, &answered))
		goto out;
	c = json_object_get(body, "content");
	sp = json_object_get(body, "add_special");
	pieces = json_object_get(body, "with_pieces");
	if (!json_is_string(c) || (sp && !json_is_boolean(sp)) ||
	    (pieces && !json_is_boolean(pieces))) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				      "'content' must be a string ('add_special', 'with_pieces': "
				      "booleans)");
		goto out;
	}
	if (dsv4_tokenize(hr->srv->tok, json_string_value(c), json_string_length(c),
			  json_is_false(sp) ? 0 : DSV4_TOK_SPECIAL, &ids, &n, err, sizeof(err))) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_value", "%s", err);
		goto out;
	}
	out = json_array();
	for (size_t i = 0; i < n; i++) {
		if (json_is_true(pieces)) {
			size_t bl = 0, sl = 0;
			const char *b = dsv4_token_bytes(hr->srv->tok, ids[i], &bl);
			char *piece = dsv4_utf8_sanitize(b ? b : "", b ? bl : 0, &sl);

			json_array_append_new(out, json_pack("{s:i, s:s%}", "id", ids[i], "piece",
							     piece ? piece : "", piece ? sl : 0));
			free(piece);
		} else {
			json_array_append_new(out, json_integer(ids[i]));
		}
	}
	answered = http_json(hr, 200, json_pack("{s:o}", "tokens", out));
out:
	free(ids);
	json_decref(body);
	return answered;
}

enum MHD_Result api_detokenize(struct http_req *hr)
{
	enum MHD_Result answered = MHD_NO;
	json_t *body = api_parse_body(hr, &answered), *t, *id;
	int32_t *ids = NULL;
	char *text = NULL, err[256] = "";
	size_t n, i, len = 0;

	if (!body)
		return answered;
	if (!tokenizer_ready(hr, &answered))
		goto out;
	t = json_object_get(body, "tokens");
	if (!json_is_array(t)) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
				      "'tokens' must be an array of token ids");
		goto out;
	}
	n = json_array_size(t);
	ids = malloc((n ? n : 1) * sizeof(*ids));
	if (!ids) {
		answered = api_oom(hr);
		goto out;
	}
	json_array_foreach(t, i, id) {
		if (!json_is_integer(id) || json_integer_value(id) < 0 ||
		    json_integer_value(id) >= (json_int_t)dsv4_tokenizer_size(hr->srv->tok)) {
			answered = http_error(hr, 400, "invalid_request_error", "invalid_value",
					      "'tokens'[%zu] is not a token id below %u", i,
					      dsv4_tokenizer_size(hr->srv->tok));
			goto out;
		}
		ids[i] = (int32_t)json_integer_value(id);
	}
	if (dsv4_detokenize(hr->srv->tok, ids, n, 0, &text, &len, err, sizeof(err))) {
		answered = http_error(hr, 400, "invalid_request_error", "invalid_value", "%s", err);
		goto out;
	}
	answered = http_json(hr, 200, json_pack("{s:s%}", "content", text, len));
out:
	free(ids);
	free(text);
	json_decref(body);
	return answered;
}
