/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The HTTP side: one struct http_req per request; handlers parse the body,
 * validate it, and answer with a JSON document, an error in their API's
 * own shape, or an SSE stream fed by a generation request.
 */
#ifndef DSV4_SERVER_API_H
#define DSV4_SERVER_API_H

#include <jansson.h>
#include <microhttpd.h>

#include "server.h"

enum api_kind { API_OPENAI, API_ANTHROPIC };

struct http_req {
	struct server *srv;
	struct MHD_Connection *conn;
	enum api_kind kind;		/* error shape */
	const char *endpoint;		/* metrics label */
	char *body;
	size_t body_len;
	char *path_tail;		/* what follows a prefix route */
	bool too_big;
	unsigned status;		/* what was answered */
	int fd;				/* the client socket, to notice it leave */
	struct gen_request *gen;	/* the request being generated, if any */
};

/* ---- answers (http.c); each returns MHD_YES/MHD_NO for the handler ---- */
enum MHD_Result http_json(struct http_req *hr, unsigned status, json_t *body);	/* steals */
enum MHD_Result http_text(struct http_req *hr, unsigned status, const char *type, char *text);
/* An error in the API's shape: OpenAI {"error":{message,type,param,code}},
 * Anthropic {"type":"error","error":{type,message}}. */
enum MHD_Result http_error(struct http_req *hr, unsigned status, const char *type,
			   const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* SSE: @produce appends events to the stream's buffer and returns 0 while
 * more may come, 1 when the stream is complete.  It may block (this is
 * the connection's own thread), and should return at least once a second
 * so that a client that left is noticed. */
struct sse;
typedef int (*sse_produce_fn)(struct sse *s, void *state);
enum MHD_Result http_sse(struct http_req *hr, sse_produce_fn produce, void *state,
			 void (*free_state)(void *state));
/* Appends "event: NAME\n" (when NAME) and "data: JSON\n\n"; steals @data. */
void sse_event(struct sse *s, const char *name, json_t *data);
void sse_raw(struct sse *s, const char *text);
/* The stream's client left (the connection is going away). */
bool sse_client_gone(struct sse *s);

/* The client socket saw EOF or an error (non-blocking check). */
bool http_client_gone(int fd);

/* ---- shared helpers (api_common.c) ---- */
/* Random id "PREFIX<24 hex>" into @out. */
void api_make_id(char *out, size_t len, const char *prefix);
/* Parses the body as a JSON object; on failure answers 400 and returns NULL
 * with *answered set. */
json_t *api_parse_body(struct http_req *hr, enum MHD_Result *answered);
/* The "model" field: must name the served model (404 otherwise). */
bool api_check_model(struct http_req *hr, json_t *body, bool required, enum MHD_Result *answered);
/* Sampling and stop fields shared by the APIs into @r; answers 400 and
 * returns false on a bad value.  @anthropic: stop_sequences, no penalties. */
bool api_sampling(struct http_req *hr, json_t *body, struct gen_request *r, bool anthropic,
		  enum MHD_Result *answered);
/* Prompt length and max_tokens against --ctx-size: answers 400 with the
 * limits when they do not fit. */
bool api_check_context(struct http_req *hr, struct gen_request *r, json_t *max_tokens,
		       enum MHD_Result *answered);
/* The 500 of an allocation that failed, in the request's API's shape. */
enum MHD_Result api_oom(struct http_req *hr);
/* Submits: answers 429 (OpenAI) / 529 (Anthropic) when the queue is full,
 * 503 when not ready. */
bool api_submit(struct http_req *hr, struct gen_request *r, enum MHD_Result *answered);
/* Waits for the whole generation (non-streaming), cancelling when the
 * client leaves; returns the concatenated text (malloc'd; NULL when out
 * of memory) and the events' ids/logprobs through @all (may be NULL). */
char *api_collect(struct http_req *hr, struct gen_request *r, struct gen_event **all,
		  size_t *n_all, size_t *text_len);
/* The JSON of OpenAI logprobs "content" entries for @ev. */
json_t *api_logprobs_json(struct server *srv, const struct gen_event *ev, size_t n_ev, int n_top);
const char *api_finish_openai(const struct gen_request *r, bool tool_calls);
/* The generation failed or was cancelled (r->error says why). */
bool api_failed(const struct gen_request *r);
/* The HTTP status of a generation that did not finish. */
unsigned api_failed_status(const struct gen_request *r);
/* Where a stream stands after a step that took @n_taken events: finished
 * (every event taken), quiet for longer than @idle_ns (time for the API's
 * keep-alive; the clock restarts), or more to come.  @last_send_ns is the
 * stream's last write, moved on when events were taken. */
enum api_stream_state { API_STREAM_MORE, API_STREAM_IDLE, API_STREAM_DONE };
enum api_stream_state api_stream_state(struct gen_request *r, size_t n_taken,
				       uint64_t *last_send_ns, uint64_t idle_ns);

/* ---- handlers ---- */
enum MHD_Result api_chat_completions(struct http_req *hr);
enum MHD_Result api_completions(struct http_req *hr);
enum MHD_Result api_models(struct http_req *hr, const char *id);
enum MHD_Result api_messages(struct http_req *hr);
enum MHD_Result api_count_tokens(struct http_req *hr);
enum MHD_Result api_tokenize(struct http_req *hr);
enum MHD_Result api_detokenize(struct http_req *hr);
enum MHD_Result api_health(struct http_req *hr);
enum MHD_Result api_metrics(struct http_req *hr);
enum MHD_Result api_slots(struct http_req *hr);

/* Default chat mode for requests that do not say (--think). */
extern bool api_default_thinking;

/* ---- the daemon (http.c) ---- */
struct MHD_Daemon *http_start(struct server *srv, char *err, size_t errlen);

#endif /* DSV4_SERVER_API_H */
