/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * dsv4-server internals: the generation request that the HTTP side hands
 * to the scheduler, the sampler, the metrics registry and the options.
 *
 * Threads: libmicrohttpd runs one thread per connection (bounded by
 * --max-connections); one scheduler thread owns the model and every
 * sequence.  A request is shared by the two sides through a reference
 * count; tokens travel from the scheduler to the HTTP thread as events in
 * the request's queue.
 */
#ifndef DSV4_SERVER_H
#define DSV4_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsv4drv.h"

/* ---- options (main.c) ---- */
struct srv_options {
	const char *model_dir;
	const char *alias;		/* the model id clients name */
	const char *host;
	unsigned port;
	unsigned threads;
	uint32_t ctx_size;
	unsigned parallel;		/* sequences decoded together */
	unsigned queue_max;		/* waiting requests before 429/529 */
	unsigned max_connections;
	uint32_t batch_tokens;		/* prompt tokens per scheduler step */
	uint64_t max_body;		/* request body bytes before 413 */
	unsigned timeout_s;		/* idle connection timeout (slow clients) */
	const char *api_key;
	bool metrics;
	uint32_t default_max_tokens;
	enum dsv4_provider provider;
	enum dsv4_expert_mode experts;
	uint64_t expert_cache_bytes;
	uint64_t prefix_dram_bytes;
	const char *prefix_disk_dir;
	uint64_t prefix_disk_bytes;
	enum dsv4_numerics numerics;
	const char *kernels;
	enum dsv4_backend backend;
	int gpu;
	int gpu_kv_spill;
	const char *tokenizer_path;	/* default: <model>/tokenizer.json */
	bool quiet;
	/* tests only: every generation emits this file's text (tokenized with
	 * specials) then EOS, whatever the model says; the model still runs.
	 * Lets the protocol tests see reasoning, tool calls and stops from a
	 * model with random weights.  And a pause before loading (503 test). */
	const char *test_forced_output;
	unsigned test_load_delay_ms;
	unsigned test_fail_after;	/* 0: off; else generations fail at this many tokens */
};

/* ---- sampling (sample.c) ---- */
#define SRV_MAX_STOP 8
#define SRV_MAX_TOP_LOGPROBS 20

struct sample_params {
	float temperature;		/* 0: greedy */
	float top_p;			/* 1: off */
	int top_k;			/* 0: off */
	float min_p;			/* 0: off */
	float repetition_penalty;	/* 1: off; over the last 64 tokens */
	float presence_penalty;		/* OpenAI: over generated tokens */
	float frequency_penalty;
	uint64_t seed;
	bool has_seed;
};

struct sampler;
/* @vocab entries per logits row; NULL when out of memory. */
struct sampler *sampler_new(const struct sample_params *p, uint32_t vocab);
void sampler_free(struct sampler *s);
/* Tokens seen before generation (the prompt), for the repetition penalty. */
void sampler_prompt(struct sampler *s, const int32_t *tokens, uint32_t n);

struct token_logprob {
	int32_t id;
	float logprob;
};

/*
 * Picks the next token from @logits (modified in place: penalties, then
 * temperature and filters).  With @n_top >= 0 also reports the chosen
 * token's log-probability and the @n_top most likely tokens, from the
 * distribution after the penalties and before temperature and filters
 * (the model's view, as OpenAI reports it).
 */
int32_t sampler_next(struct sampler *s, float *logits, int n_top, struct token_logprob *chosen,
		     struct token_logprob *top);
/* Records a token as generated (penalties). */
void sampler_accept(struct sampler *s, int32_t token);

/* ---- requests (request.c) ---- */
enum finish_reason { FINISH_NONE, FINISH_STOP, FINISH_LENGTH, FINISH_CANCELLED, FINISH_ERROR };

/* One step of output: new text (whole UTF-8 sequences), and per token its
 * id and log-probabilities when asked. */
struct gen_event {
	char *text;
	size_t text_len;
	uint32_t n_tokens;
	int32_t *ids;
	struct token_logprob *chosen;	/* [n_tokens] or NULL */
	struct token_logprob *top;	/* [n_tokens * n_top] or NULL */
};

struct gen_request {
	/* set by the HTTP side before submit, read-only afterwards */
	int32_t *prompt;
	uint32_t n_prompt;
	uint32_t max_tokens;
	struct sample_params sp;
	char *stop[SRV_MAX_STOP];
	size_t n_stop;
	int n_top;			/* -1: no logprobs */
	bool skip_special;		/* leave special tokens out of the text */
	const char *api;		/* "openai" or "anthropic": metrics label */

	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct gen_event *events;
	size_t n_events, cap_events, head;
	bool done;
	enum finish_reason finish;
	char *stop_hit;			/* the stop string that ended it */
	char error[256];
	uint32_t n_generated;
	uint32_t n_cached;		/* prompt tokens from the prefix cache */
	uint64_t t_submit_ns, t_first_ns, t_done_ns;

	atomic_bool cancel;		/* client gone: free the sequence now */
	atomic_int refs;
};

struct gen_request *gen_request_new(void);
void gen_request_put(struct gen_request *r);	/* drops one reference */
/* Waits until an event, done, or @timeout_ms; returns the number of
 * events taken into *out (caller frees them with gen_event_free). */
size_t gen_request_take(struct gen_request *r, struct gen_event **out, int timeout_ms);
void gen_events_free(struct gen_event *ev, size_t n);
/* Scheduler side: appends an event (takes ownership) or marks done. */
void gen_request_push(struct gen_request *r, struct gen_event *ev);
void gen_request_finish(struct gen_request *r, enum finish_reason why, const char *error);

/* ---- the scheduler (sched.c) ---- */
struct server;

struct sched_stats {
	unsigned running, waiting;
	uint64_t steps, batched_rows;
	struct dsv4_kv_usage kv;	/* summed over running sequences */
	struct dsv4_kv_pool_stats pool;
	struct dsv4_prefix_stats prefix;
	struct dsv4_stream_stats stream;
	enum dsv4_expert_mode experts;
	bool prefix_on;
};

int sched_start(struct server *srv, char *err, size_t errlen);
/* Ends every generation and the thread; submissions fail from then on. */
void sched_stop(struct server *srv);
void sched_free(struct server *srv);	/* after the HTTP daemon stopped */
/* 0, -EAGAIN when the queue is full, -ESHUTDOWN when stopping.  Takes a
 * reference on success. */
int sched_submit(struct server *srv, struct gen_request *r);
void sched_get_stats(struct server *srv, struct sched_stats *st);

/* ---- metrics (metrics.c) ---- */
struct metrics;
struct metrics *metrics_new(void);
void metrics_free(struct metrics *mx);
void metrics_request(struct metrics *mx, const char *api, const char *endpoint, unsigned status);
void metrics_tokens(struct metrics *mx, uint64_t prompt, uint64_t cached, uint64_t generated);
void metrics_ttft(struct metrics *mx, double seconds);
void metrics_itl(struct metrics *mx, double seconds);
void metrics_e2e(struct metrics *mx, double seconds);
void metrics_rejected(struct metrics *mx, const char *reason);
/* The Prometheus text, malloc'd. */
char *metrics_render(struct metrics *mx, struct server *srv);

/* ---- the server (main.c owns it) ---- */
struct server {
	struct srv_options opt;
	atomic_int state;		/* SRV_LOADING, SRV_READY, SRV_FAILED, SRV_STOPPING */
	char load_error[512];
	struct dsv4_model *model;
	struct dsv4_tokenizer *tok;
	struct dsv4_prefix_cache *prefix;
	int32_t bos, eos;
	int32_t *forced;		/* --test-forced-output tokens */
	uint32_t n_forced;
	uint32_t vocab;			/* logits per row */
	time_t created;
	struct metrics *mx;
	struct sched *sched;
	atomic_uint connections;
};

enum { SRV_LOADING, SRV_READY, SRV_FAILED, SRV_STOPPING };

uint64_t srv_now_ns(void);

#endif /* DSV4_SERVER_H */
