// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dsv4-server: OpenAI and Anthropic APIs over the dsv4 engine.
 *
 * It listens first (GET /health answers 503 while the model loads, as
 * llama-server does), then loads the checkpoint and its tokenizer.json,
 * starts the scheduler, and serves until SIGINT/SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"

#ifndef DSV4_INSTALLED_MODEL
#define DSV4_INSTALLED_MODEL "/usr/local/share/dsv4/models/fortune-v4"
#endif
#ifndef DSV4_TREE_MODEL
#define DSV4_TREE_MODEL "userspace/models/fortune-v4"
#endif

static void usage(FILE *f)
{
	fputs("usage: dsv4-server [--model DIR] [options]\n"
	      "\n"
	      "Serves a DeepSeek V4 checkpoint (DeepSeek's release layout, with its\n"
	      "tokenizer.json) over HTTP: OpenAI /v1/chat/completions, /v1/completions,\n"
	      "/v1/models; Anthropic /v1/messages, /v1/messages/count_tokens; /health,\n"
	      "/metrics (Prometheus), /slots, /tokenize, /detokenize.\n"
	      "\n"
	      "  -m, --model DIR          checkpoint directory (config.json, *.safetensors);\n"
	      "                           default: the embedded fortune-v4 model\n"
	      "      --tokenizer FILE     tokenizer.json (default: DIR/tokenizer.json)\n"
	      "  -a, --alias NAME         the model id clients send (default: DIR's name)\n"
	      "      --host ADDR          numeric address to bind (default 127.0.0.1;\n"
	      "                           0.0.0.0 or :: for every interface)\n"
	      "      --port N             (default 8080)\n"
	      "  -t, --threads N          engine threads (default: online CPUs)\n"
	      "  -c, --ctx-size N         tokens per sequence, prompt + output (default 8192,\n"
	      "                           at most the model's max_position_embeddings)\n"
	      "  -np, --parallel N        sequences decoded together (default 4)\n"
	      "      --batch-tokens N     prompt tokens per scheduler step (default 256):\n"
	      "                           long prompts are cut so others keep decoding\n"
	      "      --queue N            requests waiting for a slot before 429/529 (default 64)\n"
	      "  -n, --max-tokens N       default output limit when a request sets none\n"
	      "                           (default: what the context leaves)\n"
	      "      --api-key KEY        require 'Authorization: Bearer KEY' or 'x-api-key: KEY'\n"
	      "                           on every route but /health\n"
	      "      --api-key-file FILE  the same, read from FILE (first line)\n"
	      "      --metrics            /metrics on (the default)\n"
	      "      --no-metrics         /metrics off\n"
	      "      --max-body BYTES     request body limit, 413 above (default 16M)\n"
	      "      --max-connections N  concurrent connections (default 256)\n"
	      "      --timeout SECONDS    idle connection timeout (default 60)\n"
	      "      --think              thinking mode for requests that do not choose\n"
	      "      --provider auto|kmod|host   pinned memory: /dev/dsv4 or host memory\n"
	      "      --experts resident|stream   routed experts in memory or streamed\n"
	      "      --cache-bytes BYTES  expert cache budget when streaming\n"
	      "      --prefix-cache BYTES prefix-cache DRAM budget (default 1G; 0: off)\n"
	      "      --prefix-dir DIR     also keep prefix snapshots on disk in DIR\n"
	      "      --prefix-disk BYTES  disk budget for them (default 16G)\n"
	      "      --numerics reference|exact   (default reference: DeepSeek's roundings)\n"
	      "      --kernels NAME       scalar|avx2|avx512|avx512-bf16 (default: best)\n"
	      "      --backend auto|cpu|cuda   where the model runs (default auto: the GPU\n"
	      "                           when it can, else the CPU, said in the log)\n"
	      "      --gpu N              CUDA device ordinal (default 0)\n"
	      "      --gpu-kv-spill       CSA KV entries in pinned host memory, not GPU memory\n"
	      "  -q, --quiet              no log lines\n"
	      "      --test-forced-output FILE   tests only: every answer is FILE's text\n"
	      "      --test-load-delay MS        tests only: wait before loading\n"
	      "      --test-fail-after N  tests only: every generation fails, as on an engine\n"
	      "                           error, once it has N tokens\n"
	      "  -h, --help\n", f);
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static char *read_key_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];

	if (!f)
		return NULL;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return NULL;
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = 0;
	return line[0] ? strdup(line) : NULL;
}

enum {
	OPT_HOST = 1000, OPT_PORT, OPT_TOKENIZER, OPT_BATCH, OPT_QUEUE, OPT_KEY, OPT_KEY_FILE,
	OPT_METRICS, OPT_NO_METRICS, OPT_MAX_BODY, OPT_MAX_CONN, OPT_TIMEOUT, OPT_THINK,
	OPT_PROVIDER, OPT_EXPERTS, OPT_CACHE, OPT_PREFIX, OPT_PREFIX_DIR, OPT_PREFIX_DISK,
	OPT_NUMERICS, OPT_KERNELS, OPT_PARALLEL, OPT_TEST_FORCED, OPT_TEST_DELAY, OPT_TEST_FAIL,
	OPT_BACKEND, OPT_GPU, OPT_GPU_KV_SPILL,
};

static int parse_args(int argc, char **argv, struct srv_options *o, char **key_owned)
{
	static const struct option longs[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "tokenizer", required_argument, NULL, OPT_TOKENIZER },
		{ "alias", required_argument, NULL, 'a' },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "threads", required_argument, NULL, 't' },
		{ "ctx-size", required_argument, NULL, 'c' },
		{ "parallel", required_argument, NULL, OPT_PARALLEL },
		{ "np", required_argument, NULL, OPT_PARALLEL },
		{ "batch-tokens", required_argument, NULL, OPT_BATCH },
		{ "queue", required_argument, NULL, OPT_QUEUE },
		{ "max-tokens", required_argument, NULL, 'n' },
		{ "api-key", required_argument, NULL, OPT_KEY },
		{ "api-key-file", required_argument, NULL, OPT_KEY_FILE },
		{ "metrics", no_argument, NULL, OPT_METRICS },
		{ "no-metrics", no_argument, NULL, OPT_NO_METRICS },
		{ "max-body", required_argument, NULL, OPT_MAX_BODY },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "think", no_argument, NULL, OPT_THINK },
		{ "provider", required_argument, NULL, OPT_PROVIDER },
		{ "experts", required_argument, NULL, OPT_EXPERTS },
		{ "cache-bytes", required_argument, NULL, OPT_CACHE },
		{ "prefix-cache", required_argument, NULL, OPT_PREFIX },
		{ "prefix-dir", required_argument, NULL, OPT_PREFIX_DIR },
		{ "prefix-disk", required_argument, NULL, OPT_PREFIX_DISK },
		{ "numerics", required_argument, NULL, OPT_NUMERICS },
		{ "kernels", required_argument, NULL, OPT_KERNELS },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "gpu", required_argument, NULL, OPT_GPU },
		{ "gpu-kv-spill", no_argument, NULL, OPT_GPU_KV_SPILL },
		{ "quiet", no_argument, NULL, 'q' },
		{ "test-forced-output", required_argument, NULL, OPT_TEST_FORCED },
		{ "test-load-delay", required_argument, NULL, OPT_TEST_DELAY },
		{ "test-fail-after", required_argument, NULL, OPT_TEST_FAIL },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	uint32_t u;
	int c;

	while ((c = getopt_long_only(argc, argv, "m:a:t:c:n:qh", longs, NULL)) != -1) {
		const char *bad = NULL;

		switch (c) {
		case 'm': o->model_dir = optarg; break;
		case OPT_TOKENIZER: o->tokenizer_path = optarg; break;
		case 'a': o->alias = optarg; break;
		case OPT_HOST: o->host = optarg; break;
		case OPT_PORT:
			if (parse_u32(optarg, 1, 65535, &u))
				bad = "--port";
			o->port = u;
			break;
		case 't':
			if (parse_u32(optarg, 1, 4096, &o->threads))
				bad = "--threads";
			break;
		case 'c':
			if (parse_u32(optarg, 16, 1u << 24, &o->ctx_size))
				bad = "--ctx-size";
			break;
		case OPT_PARALLEL:
			if (parse_u32(optarg, 1, 256, &u))
				bad = "--parallel";
			o->parallel = u;
			break;
		case OPT_BATCH:
			if (parse_u32(optarg, 1, 1u << 20, &o->batch_tokens))
				bad = "--batch-tokens";
			break;
		case OPT_QUEUE:
			if (parse_u32(optarg, 1, 1u << 20, &u))
				bad = "--queue";
			o->queue_max = u;
			break;
		case 'n':
			if (parse_u32(optarg, 1, 1u << 24, &o->default_max_tokens))
				bad = "--max-tokens";
			break;
		case OPT_KEY: o->api_key = optarg; break;
		case OPT_KEY_FILE:
			*key_owned = read_key_file(optarg);
			if (!*key_owned) {
				fprintf(stderr, "dsv4-server: --api-key-file %s: cannot read a key\n",
					optarg);
				return -1;
			}
			o->api_key = *key_owned;
			break;
		case OPT_METRICS: o->metrics = true; break;
		case OPT_NO_METRICS: o->metrics = false; break;
		case OPT_MAX_BODY:
			if (dsv4_parse_size(optarg, &o->max_body) || o->max_body < 1024)
				bad = "--max-body";
			break;
		case OPT_MAX_CONN:
			if (parse_u32(optarg, 1, 65536, &u))
				bad = "--max-connections";
			o->max_connections = u;
			break;
		case OPT_TIMEOUT:
			if (parse_u32(optarg, 1, 86400, &u))
				bad = "--timeout";
			o->timeout_s = u;
			break;
		case OPT_THINK: api_default_thinking = true; break;
		case OPT_PROVIDER:
			if (!strcmp(optarg, "auto"))
				o->provider = DSV4_PROVIDER_AUTO;
			else if (!strcmp(optarg, "kmod"))
				o->provider = DSV4_PROVIDER_KMOD;
			else if (!strcmp(optarg, "host"))
				o->provider = DSV4_PROVIDER_HOST;
			else
				bad = "--provider";
			break;
		case OPT_EXPERTS:
			if (!strcmp(optarg, "resident"))
				o->experts = DSV4_EXPERTS_RESIDENT;
			else if (!strcmp(optarg, "stream"))
				o->experts = DSV4_EXPERTS_STREAM;
			else
				bad = "--experts";
			break;
		case OPT_CACHE:
			if (dsv4_parse_size(optarg, &o->expert_cache_bytes))
				bad = "--cache-bytes";
			break;
		case OPT_PREFIX:
			if (dsv4_parse_size(optarg, &o->prefix_dram_bytes))
				bad = "--prefix-cache";
			break;
		case OPT_PREFIX_DIR: o->prefix_disk_dir = optarg; break;
		case OPT_PREFIX_DISK:
			if (dsv4_parse_size(optarg, &o->prefix_disk_bytes))
				bad = "--prefix-disk";
			break;
		case OPT_NUMERICS:
			if (!strcmp(optarg, "reference"))
				o->numerics = DSV4_NUMERICS_REFERENCE;
			else if (!strcmp(optarg, "exact"))
				o->numerics = DSV4_NUMERICS_EXACT;
			else
				bad = "--numerics";
			break;
		case OPT_KERNELS: o->kernels = optarg; break;
		case OPT_BACKEND:
			if (dsv4_backend_from_name(optarg, &o->backend))
				bad = "--backend";
			break;
		case OPT_GPU:
			if (parse_u32(optarg, 0, 1023, &u))
				bad = "--gpu";
			else
				o->gpu = (int)u;
			break;
		case OPT_GPU_KV_SPILL: o->gpu_kv_spill = 1; break;
		case 'q': o->quiet = true; break;
		case OPT_TEST_FORCED: o->test_forced_output = optarg; break;
		case OPT_TEST_DELAY:
			if (parse_u32(optarg, 0, 600000, &o->test_load_delay_ms))
				bad = "--test-load-delay";
			break;
		case OPT_TEST_FAIL:
			if (parse_u32(optarg, 1, 1u << 20, &o->test_fail_after))
				bad = "--test-fail-after";
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (bad) {
			fprintf(stderr, "dsv4-server: bad value for %s: '%s' (see --help)\n", bad,
				optarg);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "dsv4-server: unexpected arguments (see --help)\n");
		return -1;
	}
	if (!o->model_dir) {	/* the embedded default: installed, else this build's tree */
		static const char *const dirs[] = { DSV4_INSTALLED_MODEL, DSV4_TREE_MODEL };

		for (int i = 0; i < 2 && !o->model_dir; i++) {
			char cfg[PATH_MAX];

			snprintf(cfg, sizeof(cfg), "%s/config.json", dirs[i]);
			if (!access(cfg, R_OK))
				o->model_dir = dirs[i];
		}
		if (!o->model_dir) {
			fprintf(stderr, "dsv4-server: no --model, and the embedded model is in neither "
				"%s nor %s\n", DSV4_INSTALLED_MODEL, DSV4_TREE_MODEL);
			return -1;
		}
	}
	return 0;
}

static void logf_(const struct server *srv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_(const struct server *srv, const char *fmt, ...)
{
	va_list ap;

	if (srv->opt.quiet)
		return;
	va_start(ap, fmt);
	fputs("dsv4-server: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int forced_tokens(struct server *srv, char *err, size_t errlen)
{
	FILE *f = fopen(srv->opt.test_forced_output, "rb");
	char *text = NULL;
	size_t len = 0, n = 0;
	int ret;

	if (!f) {
		snprintf(err, errlen, "%s: %s", srv->opt.test_forced_output, strerror(errno));
		return -1;
	}
	text = malloc(1 << 20);
	len = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (!text)
		return -1;
	ret = dsv4_tokenize(srv->tok, text, len, DSV4_TOK_SPECIAL, &srv->forced, &n, err, errlen);
	srv->n_forced = (uint32_t)n;
	free(text);
	logf_(srv, "test mode: every answer is the %u tokens of %s", srv->n_forced,
	      srv->opt.test_forced_output);
	return ret ? -1 : 0;
}

/* Loads the model, the tokenizer and the prefix cache; SRV_READY after. */
static int load(struct server *srv, char *err, size_t errlen)
{
	struct dsv4_stream_options so = { 0 };
	struct dsv4_model_options mo = { 0 };
	struct dsv4_mem_options kv_mem = { .provider = srv->opt.provider, .allow_unlocked = 1 };
	char tokpath[PATH_MAX];
	const struct dsv4_config *cfg;
	uint64_t t0 = srv_now_ns();

	snprintf(tokpath, sizeof(tokpath), "%s/tokenizer.json", srv->opt.model_dir);
	if (dsv4_tokenizer_load(srv->opt.tokenizer_path ? srv->opt.tokenizer_path : tokpath,
				&srv->tok, err, errlen))
		return -1;
	srv->bos = dsv4_token_lookup(srv->tok, "<｜begin▁of▁sentence｜>");
	srv->eos = dsv4_token_lookup(srv->tok, "<｜end▁of▁sentence｜>");
	if (srv->eos < 0) {
		snprintf(err, errlen, "the tokenizer has no <｜end▁of▁sentence｜> token");
		return -1;
	}
	if (srv->opt.test_forced_output && forced_tokens(srv, err, errlen))
		return -1;
	mo.threads = srv->opt.threads;
	mo.numerics = srv->opt.numerics;
	mo.kernels = srv->opt.kernels;
	mo.backend = srv->opt.backend;
	mo.gpu = srv->opt.gpu;
	mo.gpu_kv_spill = srv->opt.gpu_kv_spill;
	if (srv->opt.experts == DSV4_EXPERTS_STREAM) {
		so.mode = DSV4_EXPERTS_STREAM;
		so.cache_bytes = srv->opt.expert_cache_bytes;
		so.mem.provider = srv->opt.provider;
		mo.stream = &so;
	}
	mo.kv_mem = &kv_mem;
	if (dsv4_model_load(srv->opt.model_dir, &mo, &srv->model, err, errlen))
		return -1;
	cfg = dsv4_model_config(srv->model);
	srv->vocab = cfg->vocab_size;
	if (dsv4_tokenizer_size(srv->tok) > cfg->vocab_size) {
		snprintf(err, errlen, "the tokenizer has %u tokens but the model only %u",
			 dsv4_tokenizer_size(srv->tok), cfg->vocab_size);
		return -1;
	}
	if (srv->opt.ctx_size > cfg->max_position_embeddings) {
		logf_(srv, "--ctx-size %u is over the model's %llu positions: using that",
		      srv->opt.ctx_size, (unsigned long long)cfg->max_position_embeddings);
		srv->opt.ctx_size = (uint32_t)cfg->max_position_embeddings;
	}
	if (srv->opt.prefix_dram_bytes || srv->opt.prefix_disk_dir) {
		struct dsv4_prefix_options po = { .dram_bytes = srv->opt.prefix_dram_bytes,
						  .disk_dir = srv->opt.prefix_disk_dir,
						  .disk_bytes = srv->opt.prefix_disk_bytes };

		if (dsv4_prefix_open(srv->model, &po, &srv->prefix, err, errlen))
			return -1;
	}
	logf_(srv, "model %s loaded in %.1f s: %u layers, vocab %u, %s kernels, ctx %u, %u slots; %s",
	      srv->opt.alias, (double)(srv_now_ns() - t0) / 1e9, cfg->n_layers, cfg->vocab_size,
	      dsv4_model_kernels(srv->model), srv->opt.ctx_size, srv->opt.parallel,
	      dsv4_model_backend(srv->model));
	return 0;
}

static const char *base_name(const char *dir)
{
	static char name[256];
	size_t len = strlen(dir);
	const char *slash;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	snprintf(name, sizeof(name), "%.*s", (int)len, dir);
	slash = strrchr(name, '/');
	return slash && slash[1] ? slash + 1 : name;
}

int main(int argc, char **argv)
{
	struct server srv = { 0 };
	struct MHD_Daemon *d;
	char err[512] = "", *key_owned = NULL;
	sigset_t sigs;
	int sig = 0, rc = 1;

	srv.opt = (struct srv_options){
		.host = "127.0.0.1", .port = 8080, .ctx_size = 8192, .parallel = 4,
		.queue_max = 64, .max_connections = 256, .batch_tokens = 256,
		.max_body = 16ull << 20, .timeout_s = 60, .metrics = true,
		.prefix_dram_bytes = 1ull << 30, .prefix_disk_bytes = 16ull << 30,
	};
	if (parse_args(argc, argv, &srv.opt, &key_owned))
		return 2;
	if (!srv.opt.alias)
		srv.opt.alias = base_name(srv.opt.model_dir);
	srv.created = time(NULL);
	srv.mx = metrics_new();
	if (!srv.mx)
		return 1;
	atomic_init(&srv.state, SRV_LOADING);

	/* SIGINT/SIGTERM are taken by sigwait below; every thread inherits
	 * the mask.  SIGPIPE: a client that left must not kill us. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	d = http_start(&srv, err, sizeof(err));
	if (!d) {
		fprintf(stderr, "dsv4-server: %s\n", err);
		goto out;
	}
	logf_(&srv, "listening on http://%s%s%s:%u/ (loading %s)",
	      strchr(srv.opt.host, ':') ? "[" : "", srv.opt.host,
	      strchr(srv.opt.host, ':') ? "]" : "", srv.opt.port, srv.opt.model_dir);
	if (srv.opt.test_load_delay_ms)
		usleep(srv.opt.test_load_delay_ms * 1000u);
	if (load(&srv, err, sizeof(err)) || sched_start(&srv, err, sizeof(err))) {
		snprintf(srv.load_error, sizeof(srv.load_error), "%s", err);
		atomic_store(&srv.state, SRV_FAILED);
		fprintf(stderr, "dsv4-server: %s\n", err);
		MHD_stop_daemon(d);
		goto out;
	}
	atomic_store(&srv.state, SRV_READY);
	logf_(&srv, "ready");
	fflush(stderr);
	if (sigwait(&sigs, &sig) == 0)
		logf_(&srv, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	atomic_store(&srv.state, SRV_STOPPING);
	sched_stop(&srv);		/* ends every generation: streams finish */
	MHD_stop_daemon(d);
	rc = 0;
out:
	sched_free(&srv);
	if (srv.prefix)
		dsv4_prefix_close(srv.prefix);
	dsv4_model_free(srv.model);
	dsv4_tokenizer_free(srv.tok);
	free(srv.forced);
	metrics_free(srv.mx);
	free(key_owned);
	return rc;
}
