// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * libmicrohttpd glue: one thread per connection (so a handler may block
 * while its request generates), bounded by --max-connections and an idle
 * timeout; bodies are capped at --max-body (413, answered before the body
 * is read when Content-Length says so); --api-key checked on every route
 * but /health; errors in the calling API's shape.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api.h"

/* ---- answers ---- */

static enum MHD_Result queue(struct http_req *hr, unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	hr->status = status;
	/* counted when queued, so a client that saw the answer sees the count */
	metrics_request(hr->srv->mx, hr->kind == API_ANTHROPIC ? "anthropic" : "openai",
			hr->endpoint, status);
	MHD_add_response_header(resp, "Server", "dsv4-server");
	ret = MHD_queue_response(hr->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result http_text(struct http_req *hr, unsigned status, const char *type, char *text)
{
	struct MHD_Response *resp;

	if (!text)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	return queue(hr, status, resp);
}

/* what goes out when an answer could not be formed (out of memory) */
static const char oom_openai[] =
	"{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
	"\"param\":null,\"code\":\"out_of_memory\"}}";
static const char oom_anthropic[] =
	"{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"out of memory\"}}";

enum MHD_Result http_json(struct http_req *hr, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	const char *oom = hr->kind == API_ANTHROPIC ? oom_anthropic : oom_openai;
	struct MHD_Response *resp;

	json_decref(body);
	if (text)
		return http_text(hr, status, "application/json", text);
	/* a static body: nothing more to allocate */
	resp = MHD_create_response_from_buffer(strlen(oom), (void *)oom, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	return queue(hr, 500, resp);
}

static json_t *error_body(const struct http_req *hr, const char *type, const char *code,
			  const char *msg)
{
	if (hr->kind == API_ANTHROPIC)
		return json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type,
				 "message", msg);
	return json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", msg, "type", type,
			 "param", "code", code);
}

enum MHD_Result http_error(struct http_req *hr, unsigned status, const char *type,
			   const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *body;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* a character that the cut left incomplete goes: jansson refuses
	 * invalid UTF-8, and the answer would not go out at all */
	if (len < 0)
		msg[0] = 0;
	else if ((size_t)len >= sizeof(msg))
		msg[dsv4_utf8_complete_prefix(msg, strlen(msg))] = 0;
	body = error_body(hr, type, code, msg);
	if (!body)	/* a message that is not UTF-8 still gets its status */
		body = error_body(hr, type, code, "(the error message is not valid UTF-8)");
	return http_json(hr, status, body);
}

/* ---- server-sent events ---- */

struct sse {
	struct http_req *hr;
	sse_produce_fn produce;
	void *state;
	void (*free_state)(void *state);
	char *buf;
	size_t len, off, cap;
	bool complete;
	bool failed;			/* out of memory: end the stream */
};

static void sse_append(struct sse *s, const char *text, size_t n)
{
	if (s->failed)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = (s->len + n + 1) * 2;
		char *grown = realloc(s->buf, cap);

		if (!grown) {
			s->failed = true;
			return;
		}
		s->buf = grown;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, text, n);
	s->len += n;
}

void sse_raw(struct sse *s, const char *text)
{
	sse_append(s, text, strlen(text));
}

void sse_event(struct sse *s, const char *name, json_t *data)
{
	char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;

	json_decref(data);
	if (!text) {
		s->failed = true;
		return;
	}
	if (name) {
		sse_raw(s, "event: ");
		sse_raw(s, name);
		sse_raw(s, "\n");
	}
	sse_raw(s, "data: ");
	sse_raw(s, text);
	sse_raw(s, "\n\n");
	free(text);
}

bool http_client_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	char c;

	if (fd < 0)
		return false;
	if (poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL))
		return true;
	/* readable: EOF, or a pipelined request (not a departure) */
	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

bool sse_client_gone(struct sse *s)
{
	return http_client_gone(s->hr->fd);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	size_t n;

	(void)pos;
	while (s->off == s->len) {
		if (s->complete || s->failed)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (sse_client_gone(s))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		s->off = s->len = 0;
		s->complete = s->produce(s, s->state) != 0;
	}
	n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(buf, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static void sse_free(void *cls)
{
	struct sse *s = cls;

	if (s->free_state)
		s->free_state(s->state);
	free(s->buf);
	free(s);
}

enum MHD_Result http_sse(struct http_req *hr, sse_produce_fn produce, void *state,
			 void (*free_state)(void *state))
{
	struct sse *s = calloc(1, sizeof(*s));
	struct MHD_Response *resp;

	if (!s) {
		if (free_state)
			free_state(state);
		return MHD_NO;
	}
	s->hr = hr;
	s->produce = produce;
	s->state = state;
	s->free_state = free_state;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, s, sse_free);
	if (!resp) {
		sse_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return queue(hr, 200, resp);
}

/* ---- routing ---- */

struct route {
	const char *method, *path;
	enum api_kind kind;
	bool prefix;			/* path is a prefix (/v1/models/<id>) */
	bool public;			/* no API key needed */
	bool has_body;
	enum MHD_Result (*fn)(struct http_req *hr);
};

static enum MHD_Result models_list(struct http_req *hr)
{
	return api_models(hr, NULL);
}

static enum MHD_Result models_one(struct http_req *hr)
{
	return api_models(hr, hr->path_tail);
}

static const struct route routes[] = {
	{ "GET", "/health", API_OPENAI, false, true, false, api_health },
	{ "GET", "/v1/health", API_OPENAI, false, true, false, api_health },
	{ "GET", "/metrics", API_OPENAI, false, false, false, api_metrics },
	{ "GET", "/slots", API_OPENAI, false, false, false, api_slots },
	{ "GET", "/v1/models", API_OPENAI, false, false, false, models_list },
	{ "GET", "/models", API_OPENAI, false, false, false, models_list },
	{ "GET", "/v1/models/", API_OPENAI, true, false, false, models_one },
	{ "POST", "/v1/chat/completions", API_OPENAI, false, false, true, api_chat_completions },
	{ "POST", "/chat/completions", API_OPENAI, false, false, true, api_chat_completions },
	{ "POST", "/v1/completions", API_OPENAI, false, false, true, api_completions },
	{ "POST", "/completions", API_OPENAI, false, false, true, api_completions },
	{ "POST", "/v1/messages", API_ANTHROPIC, false, false, true, api_messages },
	{ "POST", "/v1/messages/count_tokens", API_ANTHROPIC, false, false, true, api_count_tokens },
	{ "POST", "/tokenize", API_OPENAI, false, false, true, api_tokenize },
	{ "POST", "/detokenize", API_OPENAI, false, false, true, api_detokenize },
};

static const struct route *route_find(const char *url, const char *method, bool *path_known)
{
	*path_known = false;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *r = &routes[i];
		bool match = r->prefix ? !strncmp(url, r->path, strlen(r->path)) && url[strlen(r->path)]
				       : !strcmp(url, r->path);

		if (!match)
			continue;
		*path_known = true;
		if (!strcmp(method, r->method))
			return r;
	}
	return NULL;
}

/* Constant time in the key's length: no early exit on the first mismatch. */
static bool key_equal(const char *given, const char *key)
{
	size_t gl = strlen(given), kl = strlen(key);
	unsigned char diff = gl != kl;

	for (size_t i = 0; i < kl; i++)
		diff |= (unsigned char)(key[i] ^ (i < gl ? given[i] : 0));
	return !diff;
}

static bool authorized(struct server *srv, struct MHD_Connection *c)
{
	const char *auth, *xkey;

	if (!srv->opt.api_key)
		return true;
	auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (auth && !strncasecmp(auth, "Bearer ", 7) && key_equal(auth + 7, srv->opt.api_key))
		return true;
	xkey = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
	return xkey && key_equal(xkey, srv->opt.api_key);
}

struct conn_ctx {
	struct http_req hr;
	const struct route *route;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_size, void **con_cls)
{
	struct server *srv = cls;
	struct conn_ctx *cx = *con_cls;
	struct http_req *hr;
	enum MHD_Result ret;

	(void)version;
	if (!cx) {
		const union MHD_ConnectionInfo *ci;
		const char *clen;
		bool known;

		cx = calloc(1, sizeof(*cx));
		if (!cx)
			return MHD_NO;
		*con_cls = cx;
		hr = &cx->hr;
		hr->srv = srv;
		hr->conn = c;
		hr->fd = -1;
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci)
			hr->fd = ci->connect_fd;
		cx->route = route_find(url, method, &known);
		hr->kind = !strncmp(url, "/v1/messages", 12) ? API_ANTHROPIC : API_OPENAI;
		hr->endpoint = cx->route ? cx->route->path : "other";
		if (!cx->route) {
			if (known)
				return http_error(hr, 405, "invalid_request_error", "method_not_allowed",
						  "%s is not allowed on %s", method, url);
			return http_error(hr, 404, hr->kind == API_ANTHROPIC ? "not_found_error" :
					  "invalid_request_error", "not_found", "no route %s %s",
					  method, url);
		}
		if (!cx->route->public && !authorized(srv, c))
			return http_error(hr, 401, hr->kind == API_ANTHROPIC ? "authentication_error" :
					  "invalid_request_error", "invalid_api_key",
					  "missing or invalid API key (Authorization: Bearer or x-api-key)");
		if (cx->route->prefix) {
			hr->path_tail = strdup(url + strlen(cx->route->path));
			if (!hr->path_tail)
				return MHD_NO;
		}
		clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (clen && strtoull(clen, NULL, 10) > srv->opt.max_body)
			return http_error(hr, 413, hr->kind == API_ANTHROPIC ? "request_too_large" :
					  "invalid_request_error", "request_too_large",
					  "request body of %s bytes is over the limit of %llu", clen,
					  (unsigned long long)srv->opt.max_body);
		return MHD_YES;
	}
	hr = &cx->hr;
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (hr->too_big || hr->status)
			return MHD_YES;
		if (hr->body_len + n > srv->opt.max_body) {
			hr->too_big = true;
			free(hr->body);
			hr->body = NULL;
			hr->body_len = 0;
			return MHD_YES;
		}
		char *grown = realloc(hr->body, hr->body_len + n + 1);

		if (!grown)
			return MHD_NO;
		memcpy(grown + hr->body_len, upload, n);
		hr->body = grown;
		hr->body_len += n;
		hr->body[hr->body_len] = 0;
		return MHD_YES;
	}
	if (hr->status)		/* answered already (an early error) */
		return MHD_YES;
	if (hr->too_big)
		return http_error(hr, 413, hr->kind == API_ANTHROPIC ? "request_too_large" :
				  "invalid_request_error", "request_too_large",
				  "request body is over the limit of %llu bytes",
				  (unsigned long long)srv->opt.max_body);
	ret = cx->route->fn(hr);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn_ctx *cx = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (!cx)
		return;
	free(cx->hr.body);
	free(cx->hr.path_tail);
	free(cx);
	*con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	struct server *srv = cls;

	if (srv->opt.quiet)
		return;
	fprintf(stderr, "dsv4-server: http: ");
	vfprintf(stderr, fmt, ap);
}

struct MHD_Daemon *http_start(struct server *srv, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	struct MHD_Daemon *d;
	char port[16];
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_ERROR_LOG;
	int gai;

	snprintf(port, sizeof(port), "%u", srv->opt.port);
	gai = getaddrinfo(srv->opt.host, port, &hints, &ai);
	if (gai) {
		snprintf(err, errlen, "--host %s: %s (give a numeric address, e.g. 127.0.0.1 or ::1)",
			 srv->opt.host, gai_strerror(gai));
		return NULL;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	d = MHD_start_daemon(flags, (uint16_t)srv->opt.port, NULL, NULL, on_request, srv,
			     MHD_OPTION_EXTERNAL_LOGGER, on_log, srv,
			     MHD_OPTION_SOCK_ADDR, ai->ai_addr,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->opt.max_connections,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->opt.timeout_s,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
			     MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!d)
		snprintf(err, errlen, "cannot listen on %s:%u: %s", srv->opt.host, srv->opt.port,
			 strerror(errno));
	return d;
}
