// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Prometheus metrics (text format 0.0.4), names under dsv4_ in the style
 * of vLLM's vllm: and llama-server's llamacpp: families.  Counters are
 * updated by the HTTP threads and the scheduler under one mutex; engine
 * gauges come from the scheduler's last published snapshot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const double ttft_bounds[] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
static const double itl_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
				     2.5 };
static const double e2e_bounds[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 };

#define MAX_BUCKETS 16
#define MAX_SERIES 64

struct histogram {
	const double *bounds;
	size_t n;
	uint64_t counts[MAX_BUCKETS];	/* per bucket, not cumulative */
	uint64_t total;
	double sum;
};

struct series {
	char api[16], endpoint[40], label[16];
	uint64_t value;
};

struct metrics {
	pthread_mutex_t mu;
	struct series requests[MAX_SERIES];
	size_t n_requests;
	struct series rejected[8];
	size_t n_rejected;
	uint64_t prompt_tokens, cached_tokens, generated_tokens, finished;
	struct histogram ttft, itl, e2e;
};

struct metrics *metrics_new(void)
{
	struct metrics *mx = calloc(1, sizeof(*mx));

	if (!mx)
		return NULL;
	pthread_mutex_init(&mx->mu, NULL);
	mx->ttft.bounds = ttft_bounds;
	mx->ttft.n = sizeof(ttft_bounds) / sizeof(double);
	mx->itl.bounds = itl_bounds;
	mx->itl.n = sizeof(itl_bounds) / sizeof(double);
	mx->e2e.bounds = e2e_bounds;
	mx->e2e.n = sizeof(e2e_bounds) / sizeof(double);
	return mx;
}

void metrics_free(struct metrics *mx)
{
	if (!mx)
		return;
	pthread_mutex_destroy(&mx->mu);
	free(mx);
}

static void observe(struct metrics *mx, struct histogram *h, double v)
{
	size_t b = 0;

	while (b < h->n && v > h->bounds[b])
		b++;
	pthread_mutex_lock(&mx->mu);
	h->counts[b]++;
	h->total++;
	h->sum += v;
	pthread_mutex_unlock(&mx->mu);
}

void metrics_ttft(struct metrics *mx, double s)
{
	observe(mx, &mx->ttft, s);
}

void metrics_itl(struct metrics *mx, double s)
{
	observe(mx, &mx->itl, s);
}

void metrics_e2e(struct metrics *mx, double s)
{
	observe(mx, &mx->e2e, s);
}

void metrics_request(struct metrics *mx, const char *api, const char *endpoint, unsigned status)
{
	char code[16];
	size_t i;

	snprintf(code, sizeof(code), "%u", status);
	pthread_mutex_lock(&mx->mu);
	for (i = 0; i < mx->n_requests; i++)
		if (!strcmp(mx->requests[i].api, api) && !strcmp(mx->requests[i].endpoint, endpoint) &&
		    !strcmp(mx->requests[i].label, code))
			break;
	if (i == mx->n_requests && i < MAX_SERIES) {
		snprintf(mx->requests[i].api, sizeof(mx->requests[i].api), "%s", api);
		snprintf(mx->requests[i].endpoint, sizeof(mx->requests[i].endpoint), "%s", endpoint);
		snprintf(mx->requests[i].label, sizeof(mx->requests[i].label), "%s", code);
		mx->n_requests++;
	}
	if (i < MAX_SERIES)
		mx->requests[i].value++;
	pthread_mutex_unlock(&mx->mu);
}

void metrics_rejected(struct metrics *mx, const char *reason)
{
	size_t i;

	pthread_mutex_lock(&mx->mu);
	for (i = 0; i < mx->n_rejected; i++)
		if (!strcmp(mx->rejected[i].label, reason))
			break;
	if (i == mx->n_rejected && i < 8) {
		snprintf(mx->rejected[i].label, sizeof(mx->rejected[i].label), "%s", reason);
		mx->n_rejected++;
	}
	if (i < 8)
		mx->rejected[i].value++;
	pthread_mutex_unlock(&mx->mu);
}

void metrics_tokens(struct metrics *mx, uint64_t prompt, uint64_t cached, uint64_t generated)
{
	pthread_mutex_lock(&mx->mu);
	mx->prompt_tokens += prompt;
	mx->cached_tokens += cached;
	mx->generated_tokens += generated;
	mx->finished++;
	pthread_mutex_unlock(&mx->mu);
}

static void histogram_out(FILE *f, const char *name, const char *help, const struct histogram *h)
{
	uint64_t acc = 0;

	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t b = 0; b < h->n; b++) {
		acc += h->counts[b];
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[b], (unsigned long long)acc);
	}
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->total);
	fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
		(unsigned long long)h->total);
}

static void gauge(FILE *f, const char *name, const char *help, double v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
		(unsigned long long)v);
}

char *metrics_render(struct metrics *mx, struct server *srv)
{
	struct sched_stats st;
	struct metrics snap;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	sched_get_stats(srv, &st);
	pthread_mutex_lock(&mx->mu);
	snap = *mx;
	pthread_mutex_unlock(&mx->mu);
	f = open_memstream(&text, &len);
	if (!f)
		return NULL;

	fprintf(f, "# HELP dsv4_requests_total HTTP requests answered, by API, endpoint and status.\n"
		   "# TYPE dsv4_requests_total counter\n");
	for (size_t i = 0; i < snap.n_requests; i++)
		fprintf(f, "dsv4_requests_total{api=\"%s\",endpoint=\"%s\",status=\"%s\"} %llu\n",
			snap.requests[i].api, snap.requests[i].endpoint, snap.requests[i].label,
			(unsigned long long)snap.requests[i].value);
	fprintf(f, "# HELP dsv4_requests_rejected_total Requests refused before generation.\n"
		   "# TYPE dsv4_requests_rejected_total counter\n");
	for (size_t i = 0; i < snap.n_rejected; i++)
		fprintf(f, "dsv4_requests_rejected_total{reason=\"%s\"} %llu\n",
			snap.rejected[i].label, (unsigned long long)snap.rejected[i].value);
	counter(f, "dsv4_generations_total", "Generations finished (any reason).", snap.finished);
	counter(f, "dsv4_prompt_tokens_total", "Prompt tokens of finished generations.",
		snap.prompt_tokens);
	counter(f, "dsv4_prompt_tokens_cached_total",
		"Prompt tokens taken from the prefix cache.", snap.cached_tokens);
	counter(f, "dsv4_generation_tokens_total", "Tokens generated.", snap.generated_tokens);
	histogram_out(f, "dsv4_time_to_first_token_seconds",
		      "From submission to the first generated token.", &snap.ttft);
	histogram_out(f, "dsv4_inter_token_latency_seconds",
		      "Between consecutive tokens of one generation.", &snap.itl);
	histogram_out(f, "dsv4_e2e_request_latency_seconds",
		      "From submission to the end of generation.", &snap.e2e);

	gauge(f, "dsv4_requests_running", "Sequences in the running batch.", st.running);
	gauge(f, "dsv4_requests_waiting", "Requests queued for a slot.", st.waiting);
	gauge(f, "dsv4_slots_total", "Sequences that can run at once (--parallel).",
	      srv->opt.parallel);
	counter(f, "dsv4_scheduler_steps_total", "Batched engine passes.", st.steps);
	counter(f, "dsv4_scheduler_rows_total", "Token rows evaluated in those passes.",
		st.batched_rows);

	fprintf(f, "# HELP dsv4_kv_cache_bytes KV cache held by running sequences, by tier.\n"
		   "# TYPE dsv4_kv_cache_bytes gauge\n");
	fprintf(f, "dsv4_kv_cache_bytes{tier=\"window\"} %llu\n",
		(unsigned long long)st.kv.window_bytes);
	fprintf(f, "dsv4_kv_cache_bytes{tier=\"compressor_state\"} %llu\n",
		(unsigned long long)st.kv.state_bytes);
	fprintf(f, "dsv4_kv_cache_bytes{tier=\"hot_main\"} %llu\n",
		(unsigned long long)st.kv.main_bytes);
	fprintf(f, "dsv4_kv_cache_bytes{tier=\"hot_index\"} %llu\n",
		(unsigned long long)st.kv.index_bytes);
	fprintf(f, "dsv4_kv_cache_bytes{tier=\"spill\"} %llu\n",
		(unsigned long long)st.kv.spill_bytes);
	gauge(f, "dsv4_kv_cache_tokens", "Tokens held by running sequences.", (double)st.kv.tokens);
	gauge(f, "dsv4_kv_spill_blocks_free", "Free KV_SPILL blocks in the pool.",
	      (double)st.pool.free_blocks);
	gauge(f, "dsv4_kv_spill_blocks", "KV_SPILL blocks in the pool.", (double)st.pool.blocks);

	gauge(f, "dsv4_prefix_cache_enabled", "1 when the prefix cache is on.", st.prefix_on);
	counter(f, "dsv4_prefix_cache_queries_total", "Prefix-cache lookups.", st.prefix.lookups);
	counter(f, "dsv4_prefix_cache_hits_total", "Lookups that resumed from a saved prefix.",
		st.prefix.hits);
	counter(f, "dsv4_prefix_cache_tokens_reused_total", "Prompt tokens not recomputed.",
		st.prefix.tokens_reused);
	gauge(f, "dsv4_prefix_cache_bytes", "Prefix snapshots held in DRAM.",
	      (double)st.prefix.dram_bytes);

	gauge(f, "dsv4_experts_streamed", "1 when routed experts stream from storage.",
	      st.experts == DSV4_EXPERTS_STREAM);
	counter(f, "dsv4_expert_cache_hits_total", "Expert loads served by the cache.",
		st.stream.hits);
	counter(f, "dsv4_expert_cache_misses_total", "Expert loads read from storage.",
		st.stream.misses);
	counter(f, "dsv4_expert_read_bytes_total", "Bytes read for experts.", st.stream.bytes_read);

	fprintf(f, "# HELP dsv4_info The model and memory provider in use.\n"
		   "# TYPE dsv4_info gauge\n"
		   "dsv4_info{model=\"%s\",provider=\"%s\",kernels=\"%s\"} 1\n",
		srv->opt.alias, st.pool.provider ? st.pool.provider : "none",
		srv->model ? dsv4_model_kernels(srv->model) : "none");
	gauge(f, "dsv4_ready", "1 once the model is loaded.",
	      atomic_load(&srv->state) == SRV_READY);
	fclose(f);
	return text;
}
