/* fuzz-srcs: userspace/dsv4-server/api_common.c userspace/dsv4-server/api_openai.c userspace/dsv4-server/api_anthropic.c userspace/dsv4-server/api_misc.c userspace/dsv4-server/request.c userspace/dsv4-server/chat.c userspace/dsv4-server/chat_parse.c userspace/dsv4-server/pyjson.c libdsv4drv/src/text/tokenizer.c libdsv4drv/src/text/pretok.c libdsv4drv/src/text/utf8.c libdsv4drv/src/error.c ; fuzz-libs: -ljansson -lpcre2-8 -lxxhash -lpthread -lm ; fuzz-cflags: -Iuserspace/dsv4-server -I/usr/include/libdrm */
// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the server's request parsing: a body, sent to one of
 * the JSON endpoints (chosen by the first byte), goes through the real
 * handlers (JSON, field validation, DeepSeek V4 chat rendering, the
 * fixture tokenizer).  The HTTP layer and the scheduler are replaced:
 * answers are checked to be valid JSON and dropped; a submitted request
 * "generates" the rest of the input as its text, which then goes through
 * the output parsers and the SSE producers.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#ifndef FIXTURES
#define FIXTURES "tests/fixtures"
#endif

static struct server srv;
static const uint8_t *gen_text;
static size_t gen_len;
/* set by oom_request.c, which fails allocations on purpose: an answer or
 * an event that cannot be formed is then what the real HTTP layer makes
 * of it (a static 500, the stream's end), not a bug */
bool fuzz_request_oom;

/* ---- the HTTP side, replaced ---- */
enum MHD_Result http_json(struct http_req *hr, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	if (!text && !fuzz_request_oom)
		abort();	/* every answer must serialize */
	hr->status = text ? status : 500;
	free(text);
	json_decref(body);
	return MHD_YES;
}

enum MHD_Result http_text(struct http_req *hr, unsigned status, const char *type, char *text)
{
	(void)type;
	hr->status = status;
	free(text);
	return MHD_YES;
}

enum MHD_Result http_error(struct http_req *hr, unsigned status, const char *type,
			   const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	(void)type;
	(void)code;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status < 400)
		abort();
	hr->status = status;
	return MHD_YES;
}

struct sse {
	char *buf;
	size_t len;
	bool failed;
};

void sse_event(struct sse *s, const char *name, json_t *data)
{
	char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;

	(void)name;
	if (!text && fuzz_request_oom) {
		json_decref(data);
		s->failed = true;	/* http.c ends the stream */
		return;
	}
	if (!text)
		abort();
	s->len += strlen(text);
	free(text);
	json_decref(data);
}

void sse_raw(struct sse *s, const char *text)
{
	s->len += strlen(text);
}

bool sse_client_gone(struct sse *s)
{
	(void)s;
	return false;
}

bool http_client_gone(int fd)
{
	(void)fd;
	return false;
}

enum MHD_Result http_sse(struct http_req *hr, sse_produce_fn produce, void *state,
			 void (*free_state)(void *state))
{
	struct sse s = { 0 };
	int rounds = 0;

	hr->status = 200;
	while (!s.failed && !produce(&s, state))
		if (++rounds > 100000)
			abort();	/* a stream that never ends */
	free_state(state);
	return MHD_YES;
}

/* ---- the scheduler, replaced: the request "generates" gen_text ---- */
int sched_submit(struct server *s, struct gen_request *r)
{
	struct gen_event *ev;

	(void)s;
	if (gen_len && gen_text[0] == 'Q')
		return -EAGAIN;		/* queue full */
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	/* the scheduler only ever sends valid UTF-8 */
	ev->text = dsv4_utf8_sanitize((const char *)gen_text, gen_len, &ev->text_len);
	if (!ev->text) {
		free(ev);
		return -ENOMEM;
	}
	ev->n_tokens = 1;
	ev->ids = calloc(1, sizeof(*ev->ids));
	if (r->n_top >= 0) {
		ev->chosen = calloc(1, sizeof(*ev->chosen));
		ev->top = calloc((size_t)r->n_top + 1, sizeof(*ev->top));
	}
	atomic_fetch_add(&r->refs, 1);
	r->n_generated = 1;
	gen_request_push(r, ev);
	gen_request_finish(r, FINISH_STOP, NULL);
	gen_request_put(r);	/* the scheduler's reference, dropped at once */
	return 0;
}

void sched_get_stats(struct server *s, struct sched_stats *st)
{
	(void)s;
	memset(st, 0, sizeof(*st));
}

char *metrics_render(struct metrics *mx, struct server *s)
{
	(void)mx;
	(void)s;
	return strdup("");
}

void metrics_rejected(struct metrics *mx, const char *reason)
{
	(void)mx;
	(void)reason;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	if (dsv4_tokenizer_load(FIXTURES "/tokenizer/tokenizer.json", &srv.tok, err, sizeof(err))) {
		fprintf(stderr, "fuzz_request: %s\n", err);
		exit(1);
	}
	srv.opt.alias = "tiny";
	srv.opt.ctx_size = 4096;
	srv.opt.queue_max = 4;
	srv.opt.parallel = 1;
	srv.vocab = dsv4_tokenizer_size(srv.tok);
	srv.eos = 1;
	atomic_init(&srv.state, SRV_READY);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static enum MHD_Result (*const handlers[])(struct http_req *) = {
		api_chat_completions, api_completions, api_messages, api_count_tokens,
		api_tokenize, api_detokenize,
	};
	struct http_req hr = { .srv = &srv, .fd = -1 };
	const uint8_t *split;
	size_t body_len;

	if (size < 1)
		return 0;
	hr.kind = data[0] % 6 == 2 || data[0] % 6 == 3 ? API_ANTHROPIC : API_OPENAI;
	/* body up to the first 0xff byte; the rest is the "generated" text */
	split = memchr(data + 1, 0xff, size - 1);
	body_len = split ? (size_t)(split - data - 1) : size - 1;
	gen_text = split ? split + 1 : (const uint8_t *)"";
	gen_len = split ? size - (size_t)(split - data) - 1 : 0;
	hr.body = malloc(body_len + 1);
	if (!hr.body)
		return 0;
	memcpy(hr.body, data + 1, body_len);
	hr.body[body_len] = 0;
	hr.body_len = body_len;
	handlers[data[0] % 6](&hr);
	if (!hr.status)
		abort();	/* every request is answered */
	free(hr.body);
	return 0;
}
