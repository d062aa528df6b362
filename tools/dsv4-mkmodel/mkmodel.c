// SPDX-License-Identifier: MIT
/*
 * dsv4-mkmodel: writes a synthetic DeepSeek V4 checkpoint in the release's
 * exact format (config.json, FP8 e4m3 linears with E8M0 128x128 block
 * scales, FP4 experts with per-32 E8M0 scales, BF16 norms/compressors/
 * router, F32 mHC/ape/sinks, I64 tid2eid), random but non-degenerate and
 * deterministic by --seed.  Tensors are generated and written one at a
 * time, so checkpoints larger than memory can be written.
 *
 *   dsv4-mkmodel --preset tiny-a|tiny-b|tiny-c|flash|pro [--layers N]
 *                [--config FILE] [--seed S] [--shard-size BYTES] OUTDIR
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsv4drv.h"

/* ---- deterministic randomness: one stream per tensor name ---- */

struct rng {
	uint64_t s;
	int have_spare;		/* Box-Muller's second value */
	float spare;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double rng_uniform(struct rng *r)	/* (0, 1) */
{
	return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

/* Box-Muller, using both values of each pair. */
static float rng_normal(struct rng *r)
{
	double rad, ang;

	if (r->have_spare) {
		r->have_spare = 0;
		return r->spare;
	}
	rad = sqrt(-2.0 * log(rng_uniform(r)));
	ang = 6.283185307179586 * rng_uniform(r);
	r->spare = (float)(rad * sin(ang));
	r->have_spare = 1;
	return (float)(rad * cos(ang));
}

static struct rng rng_for(uint64_t seed, const char *name)
{

	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	return (struct rng){ .s = seed ^ h };
}

static int ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && !strcmp(s + a - b, tail);
}

/* Never exactly zero: a zero ape/sink/base/bias would hide a missing term. */
static float nonzero(float x)
{
	return x == 0.0f ? 1e-3f : x;
}

/* The value distribution of a float tensor, by its role. */
static void fill(const struct dsv4_tensor_spec *s, struct rng *r, float *out, uint64_t n)
{
	uint64_t in = s->ndim == 2 ? s->shape[1] : 1;
	float std = 1.0f / sqrtf((float)(in ? in : 1));

	if (ends_with(s->name, "norm.weight")) {
		for (uint64_t i = 0; i < n; i++)
			out[i] = 1.0f + 0.1f * rng_normal(r);
	} else if (!strcmp(s->name, "embed.weight")) {
		for (uint64_t i = 0; i < n; i++)
			out[i] = nonzero(rng_normal(r));
	} else if (ends_with(s->name, "_scale")) {	/* hc scales: positive, O(0.1) */
		for (uint64_t i = 0; i < n; i++)
			out[i] = 0.05f + 0.1f * fabsf(rng_normal(r));
	} else if (ends_with(s->name, "_base") || ends_with(s->name, "gate.bias") ||
		   ends_with(s->name, ".ape")) {
		for (uint64_t i = 0; i < n; i++)
			out[i] = nonzero(0.1f * rng_normal(r));
	} else if (ends_with(s->name, "attn_sink")) {
		for (uint64_t i = 0; i < n; i++)
			out[i] = nonzero(0.5f * rng_normal(r));
	} else if (ends_with(s->name, "_fn")) {	/* hc mixing projections */
		for (uint64_t i = 0; i < n; i++)
			out[i] = nonzero(0.1f * std * rng_normal(r));
	} else {	/* linear weights */
		for (uint64_t i = 0; i < n; i++)
			out[i] = nonzero(std * rng_normal(r));
	}
}

/*
 * @rows x @cols values of @s, in 128-row chunks that each have their own
 * random stream, so chunks fill in parallel and the result does not depend
 * on the thread count.
 */
static void fill_rows(const struct dsv4_tensor_spec *s, uint64_t seed, float *out,
		      uint64_t rows, uint64_t cols)
{
#pragma omp parallel for schedule(dynamic)
	for (uint64_t rb = 0; rb < rows; rb += 128) {
		struct rng r = rng_for(seed ^ (rb * 0x9e3779b97f4a7c15ULL), s->name);
		uint64_t n = (rows - rb < 128 ? rows - rb : 128) * cols;

		fill(s, &r, out + rb * cols, n);
	}
}

static uint16_t f32_to_bf16(float f)	/* round to nearest even */
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	if ((u & 0x7fffffff) > 0x7f800000)
		return 0x7fc0;
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

/* ---- one tensor (or a weight + its scale) into the writer ---- */

struct gen {
	const struct dsv4_config *cfg;
	uint64_t seed;
	uint8_t *pending_scale;	/* scale computed with the preceding weight */
	uint64_t pending_bytes;
	char pending_name[96];
};

static int emit(struct dsv4_st_writer *w, const void *buf, uint64_t n)
{
	const uint8_t *p = buf;

	/* The writer takes size_t chunks; 1 GiB at a time is plenty. */
	while (n) {
		size_t chunk = n > (1ULL << 30) ? (size_t)(1ULL << 30) : (size_t)n;
		int ret = dsv4_st_writer_write(w, p, chunk);

		if (ret)
			return ret;
		p += chunk;
		n -= chunk;
	}
	return 0;
}

static int gen_tensor(struct gen *g, const struct dsv4_tensor_spec *s,
		      const struct dsv4_tensor_spec *next, struct dsv4_st_writer *w)
{
	uint64_t n = 1, nb = dsv4_spec_nbytes(s);
	struct rng r = rng_for(g->seed, s->name);
	void *buf = NULL;
	float *f = NULL;
	int ret = 0;

	for (uint32_t i = 0; i < s->ndim; i++)
		n *= s->shape[i];
	if (ends_with(s->name, ".scale")) {	/* made with its weight */
		if (!g->pending_scale || strcmp(g->pending_name, s->name) || g->pending_bytes != nb)
			return -EPROTO;
		ret = emit(w, g->pending_scale, nb);
		free(g->pending_scale);
		g->pending_scale = NULL;
		return ret;
	}
	buf = malloc(nb ? nb : 1);
	if (!buf)
		return -ENOMEM;
	switch (s->dtype) {
	case DSV4_DT_I64: {	/* tid2eid: distinct valid experts per token */
		int64_t *ids = buf;
		uint32_t E = g->cfg->n_routed_experts, k = (uint32_t)s->shape[1];
		uint32_t *perm = malloc(E * sizeof(*perm));

		for (uint64_t row = 0; perm && row < s->shape[0]; row++) {
			for (uint32_t e = 0; e < E; e++)
				perm[e] = e;
			for (uint32_t j = 0; j < k; j++) {
				uint32_t pick = j + (uint32_t)(rng_next(&r) % (E - j));
				uint32_t t = perm[j];

				perm[j] = perm[pick];
				perm[pick] = t;
				ids[row * k + j] = perm[j];
			}
		}
		ret = perm ? 0 : -ENOMEM;
		free(perm);
		break;
	}
	case DSV4_DT_F32:
		fill_rows(s, g->seed, buf, s->shape[0], n / (s->shape[0] ? s->shape[0] : 1));
		break;
	case DSV4_DT_BF16: {
		uint16_t *h = buf;

		f = malloc(n * sizeof(*f));
		if (!f) {
			ret = -ENOMEM;
			break;
		}
		fill_rows(s, g->seed, f, s->shape[0], n / (s->shape[0] ? s->shape[0] : 1));
#pragma omp parallel for
		for (uint64_t i = 0; i < n; i++)
			h[i] = f32_to_bf16(f[i]);
		break;
	}
	case DSV4_DT_F8_E4M3:
	case DSV4_DT_I8: {	/* FP8 block-scaled or packed FP4: real quantizations */
		uint64_t rows = s->shape[0], cols = s->dtype == DSV4_DT_I8 ? s->shape[1] * 2 : s->shape[1];
		uint64_t scale_bytes;

		if (!next || !ends_with(next->name, ".scale")) {
			ret = -EPROTO;
			break;
		}
		scale_bytes = dsv4_spec_nbytes(next);
		f = malloc(rows * cols * sizeof(*f));
		g->pending_scale = malloc(scale_bytes);
		if (!f || !g->pending_scale) {
			ret = -ENOMEM;
			break;
		}
		fill_rows(s, g->seed, f, rows, cols);
		/* 128-row slices quantize independently (FP8 tiles are 128 rows). */
#pragma omp parallel for schedule(dynamic)
		for (uint64_t rb = 0; rb < rows; rb += 128) {
			uint64_t nr = rows - rb < 128 ? rows - rb : 128;
			uint8_t *q = (uint8_t *)buf;

			if (s->dtype == DSV4_DT_I8)
				dsv4_quant_fp4_rows(f + rb * cols, nr, cols, q + rb * cols / 2,
						    g->pending_scale + rb * (cols / 32));
			else
				dsv4_quant_fp8_blocks(f + rb * cols, nr, cols, 128, q + rb * cols,
						      g->pending_scale + (rb / 128) * ((cols + 127) / 128));
		}
		g->pending_bytes = scale_bytes;
		snprintf(g->pending_name, sizeof(g->pending_name), "%s", next->name);
		break;
	}
	default:
		ret = -EINVAL;
	}
	if (!ret)
		ret = emit(w, buf, nb);
	free(f);
	free(buf);
	return ret;
}

/* ---- configs ---- */

static json_t *preset(const char *name, int layers)
{
	/* tiny configs: >= 16 indexer heads (spec §11a), short windows, dims
	 * that satisfy FP8 (x128) and FP4 (x32) blocking */
	static const struct {
		const char *name;
		int dim, layers, heads, head_dim, q_lora, o_groups, o_lora, window;
		int ih, ihd, topk, experts, act, inter, hash, hc, vocab;
		int ratios[8];
	} tiny[] = {
		{ "tiny-a", 256, 4, 4, 128, 128, 2, 64, 16, 16, 64, 8, 8, 2, 128, 1, 4, 512,
		  { 0, 4, 128, 4, 0, -1 } },
		{ "tiny-b", 256, 5, 2, 128, 256, 2, 128, 8, 16, 64, 4, 16, 4, 128, 2, 2, 384,
		  { 128, 4, 0, 4, 128, 0, -1 } },
		{ "tiny-c", 384, 3, 8, 192, 128, 4, 64, 32, 32, 64, 16, 6, 3, 256, 1, 4, 512,
		  { 4, 128, 4, 0, -1 } },
	};
	json_t *c = NULL, *ratios = json_array();

	for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++) {
		if (strcmp(name, tiny[i].name))
			continue;
		int n = layers > 0 ? layers : tiny[i].layers;

		for (int L = 0; L < n; L++)
			json_array_append_new(ratios, json_integer(tiny[i].ratios[L % tiny[i].layers]));
		json_array_append_new(ratios, json_integer(0));	/* the MTP block */
		c = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:o}",
			      "architectures", "DeepseekV4ForCausalLM", "model_type", "deepseek_v4",
			      "vocab_size", tiny[i].vocab, "hidden_size", tiny[i].dim,
			      "num_hidden_layers", n, "num_attention_heads", tiny[i].heads,
			      "num_key_value_heads", 1, "head_dim", tiny[i].head_dim,
			      "qk_rope_head_dim", 64, "q_lora_rank", tiny[i].q_lora,
			      "o_groups", tiny[i].o_groups, "o_lora_rank", tiny[i].o_lora,
			      "sliding_window", tiny[i].window, "compress_ratios", ratios);
		json_object_update(c, json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
			      "index_n_heads", tiny[i].ih, "index_head_dim", tiny[i].ihd,
			      "index_topk", tiny[i].topk, "n_routed_experts", tiny[i].experts,
			      "n_shared_experts", 1, "num_experts_per_tok", tiny[i].act,
			      "moe_intermediate_size", tiny[i].inter, "num_hash_layers", tiny[i].hash,
			      "hc_mult", tiny[i].hc));
		json_object_set_new(c, "max_position_embeddings", json_integer(65536));
		json_object_set_new(c, "rope_scaling", json_pack("{s:s,s:i,s:i,s:i,s:i}", "type", "yarn",
			      "factor", 16, "original_max_position_embeddings", 64, "beta_fast", 32,
			      "beta_slow", 1));
		break;
	}
	if (!c && (!strcmp(name, "flash") || !strcmp(name, "pro"))) {
		int pro = !strcmp(name, "pro");
		int n = layers > 0 ? layers : pro ? 61 : 43;

		for (int L = 0; L < n; L++) {
			int r = pro ? (L < 2 ? 128 : L % 2 ? 128 : 4) : (L < 2 ? 0 : L % 2 ? 128 : 4);

			json_array_append_new(ratios, json_integer(L == n - 1 && n > 2 ? 4 : r));
		}
		json_array_append_new(ratios, json_integer(0));
		c = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:o}",
			      "architectures", "DeepseekV4ForCausalLM", "model_type", "deepseek_v4",
			      "vocab_size", 129280, "hidden_size", pro ? 7168 : 4096,
			      "num_hidden_layers", n, "num_attention_heads", pro ? 128 : 64,
			      "num_key_value_heads", 1, "head_dim", 512, "qk_rope_head_dim", 64,
			      "q_lora_rank", pro ? 1536 : 1024, "o_groups", pro ? 16 : 8,
			      "o_lora_rank", 1024, "sliding_window", 128, "compress_ratios", ratios);
		json_object_update(c, json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
			      "index_n_heads", 64, "index_head_dim", 128, "index_topk", pro ? 1024 : 512,
			      "n_routed_experts", pro ? 384 : 256, "n_shared_experts", 1,
			      "num_experts_per_tok", 6, "moe_intermediate_size", pro ? 3072 : 2048,
			      "num_hash_layers", n < 3 ? n : 3, "hc_mult", 4));
		json_object_set_new(c, "max_position_embeddings", json_integer(1048576));
		json_object_set_new(c, "rope_scaling", json_pack("{s:s,s:i,s:i,s:i,s:i}", "type", "yarn",
			      "factor", 16, "original_max_position_embeddings", 65536, "beta_fast", 32,
			      "beta_slow", 1));
	}
	if (!c) {
		json_decref(ratios);
		return NULL;
	}
	json_object_update(c, json_pack("{s:s,s:s,s:b,s:f,s:f,s:i,s:i,s:f,s:f,s:i,s:i,s:f,s:f}",
		      "scoring_func", "sqrtsoftplus", "topk_method", "noaux_tc", "norm_topk_prob", 1,
		      "routed_scaling_factor", 1.5, "swiglu_limit", 10.0,
		      "num_nextn_predict_layers", 1, "hc_sinkhorn_iters", 20, "hc_eps", 1e-6,
		      "rms_norm_eps", 1e-6, "rope_theta", 10000, "compress_rope_theta", 160000,
		      "initializer_range", 0.02, "attention_dropout", 0.0));
	json_object_set_new(c, "quantization_config",
			    json_pack("{s:s,s:s,s:s,s:s,s:[i,i]}", "quant_method", "fp8", "fmt", "e4m3",
				      "activation_scheme", "dynamic", "scale_fmt", "ue8m0",
				      "weight_block_size", 128, 128));
	json_object_update(c, json_pack("{s:s,s:b,s:s,s:i,s:i}", "expert_dtype", "fp4",
		      "tie_word_embeddings", 0, "torch_dtype", "bfloat16", "bos_token_id", 0,
		      "eos_token_id", 1));
	return c;
}

/* ---- output ---- */

static int write_index(const char *dir, const struct dsv4_tensor_spec *s, size_t n,
		       const int *shard_of, int shards, uint64_t total)
{
	char path[4096], file[64];
	json_t *map = json_object();
	int ret;

	for (size_t i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "model-%05d-of-%05d.safetensors", shard_of[i] + 1, shards);
		json_object_set_new(map, s[i].name, json_string(file));
	}
	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	ret = json_dump_file(json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total,
				       "weight_map", map),
			     path, JSON_INDENT(2) | JSON_SORT_KEYS);
	return ret ? -EIO : 0;
}

static int copy_file(const char *from, const char *dir, const char *name)
{
	char path[4096], buf[65536];
	FILE *in = fopen(from, "rb"), *out;
	size_t got;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out = in ? fopen(path, "wb") : NULL;
	if (!out) {
		if (in)
			fclose(in);
		return -1;
	}
	while ((got = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, got, out) != got)
			ret = -1;
	if (ferror(in))
		ret = -1;
	fclose(in);
	if (fclose(out))
		ret = -1;
	return ret;
}

static int usage(void)
{
	fputs("usage: dsv4-mkmodel (--preset tiny-a|tiny-b|tiny-c|flash|pro | --config FILE)\n"
	      "                    [--layers N] [--vocab N] [--tokenizer FILE] [--seed S]\n"
	      "                    [--shard-size BYTES] OUTDIR\n"
	      "  --vocab N         override vocab_size (e.g. to fit a tokenizer)\n"
	      "  --experts N       override n_routed_experts (a decode step's work stays the\n"
	      "                    same; benchmarks need not write every expert)\n"
	      "  --tokenizer FILE  copy FILE into OUTDIR/tokenizer.json\n", stderr);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "preset", required_argument, NULL, 'p' }, { "config", required_argument, NULL, 'c' },
		{ "layers", required_argument, NULL, 'l' }, { "seed", required_argument, NULL, 's' },
		{ "shard-size", required_argument, NULL, 'z' }, { "help", no_argument, NULL, 'h' },
		{ "vocab", required_argument, NULL, 'v' }, { "experts", required_argument, NULL, 'e' }, { "tokenizer", required_argument, NULL, 't' },
		{ 0 }
	};
	const char *preset_name = NULL, *config_file = NULL, *dir, *tokenizer = NULL;
	long vocab = 0, experts = 0;
	uint64_t seed = 0, shard_size = 5ULL << 30, total = 0, in_shard = 0;
	struct dsv4_tensor_spec *specs;
	struct dsv4_config cfg;
	struct gen g = { &cfg, 0, NULL, 0, "" };
	char err[4700], path[4096], *text;
	int layers = 0, c, ret, shards = 1, *shard_of;
	size_t n;
	json_t *conf;

	while ((c = getopt_long(argc, argv, "p:c:l:s:z:v:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': preset_name = optarg; break;
		case 'c': config_file = optarg; break;
		case 'l': layers = atoi(optarg); if (layers < 1 || layers > DSV4_MAX_LAYERS) return usage(); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'z': if (dsv4_parse_size(optarg, &shard_size) || !shard_size) return usage(); break;
		case 'v': vocab = strtol(optarg, NULL, 10); if (vocab < 16 || vocab > 1 << 20) return usage(); break;
		case 'e': experts = strtol(optarg, NULL, 10); if (experts < 1 || experts > 4096) return usage(); break;
		case 't': tokenizer = optarg; break;
		default: return usage();
		}
	}
	if (optind != argc - 1 || !!preset_name == !!config_file)
		return usage();
	dir = argv[optind];
	if (config_file) {
		json_error_t jerr;

		conf = json_load_file(config_file, JSON_REJECT_DUPLICATES, &jerr);
		if (!conf) {
			fprintf(stderr, "dsv4-mkmodel: %s: %s\n", config_file, jerr.text);
			return 1;
		}
	} else if (!(conf = preset(preset_name, layers))) {
		fprintf(stderr, "dsv4-mkmodel: unknown preset '%s'\n", preset_name);
		return 2;
	}
	if (vocab)
		json_object_set_new(conf, "vocab_size", json_integer(vocab));
	if (experts)
		json_object_set_new(conf, "n_routed_experts", json_integer(experts));
	text = json_dumps(conf, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	ret = dsv4_config_parse(text, strlen(text), &cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "dsv4-mkmodel: %s\n", err);
		return 1;
	}
	if (cfg.fp8 && (cfg.weight_block[0] != 128 || cfg.weight_block[1] != 128)) {
		fprintf(stderr, "dsv4-mkmodel: only 128x128 FP8 weight blocks are generated\n");
		return 1;
	}
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "dsv4-mkmodel: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	FILE *cf = fopen(path, "w");

	if (!cf || fprintf(cf, "%s\n", text) < 0 || fclose(cf)) {
		fprintf(stderr, "dsv4-mkmodel: %s: %s\n", path, strerror(errno));
		return 1;
	}
	free(text);
	json_decref(conf);

	ret = dsv4_schema_build(&cfg, &specs, &n);
	if (ret)
		return 1;
	shard_of = calloc(n, sizeof(*shard_of));
	/* Shards: consecutive tensors up to --shard-size (a weight and its
	 * scale stay together). */
	for (size_t i = 0; i < n; i++) {
		uint64_t nb = dsv4_spec_nbytes(&specs[i]);

		if (in_shard && in_shard + nb > shard_size && !ends_with(specs[i].name, ".scale")) {
			shards++;
			in_shard = 0;
		}
		shard_of[i] = shards - 1;
		in_shard += nb;
		total += nb;
	}
	g.seed = seed;
	for (int sh = 0; sh < shards && !ret; sh++) {
		size_t first = 0, count = 0;
		struct dsv4_st_writer *w;

		while (shard_of[first] != sh)
			first++;
		while (first + count < n && shard_of[first + count] == sh)
			count++;
		if (shards == 1)
			snprintf(path, sizeof(path), "%s/model.safetensors", dir);
		else
			snprintf(path, sizeof(path), "%s/model-%05d-of-%05d.safetensors", dir, sh + 1, shards);
		ret = dsv4_st_writer_open(path, specs + first, count, &w, err, sizeof(err));
		for (size_t i = first; !ret && i < first + count; i++)
			ret = gen_tensor(&g, &specs[i], i + 1 < n ? &specs[i + 1] : NULL, w);
		if (ret) {
			snprintf(err, sizeof(err), "%s: generating: %s", path, strerror(-ret));
			dsv4_st_writer_close(w, NULL, 0);
		} else {
			ret = dsv4_st_writer_close(w, err, sizeof(err));
		}
	}
	if (!ret && shards > 1)
		ret = write_index(dir, specs, n, shard_of, shards, total);
	if (ret) {
		fprintf(stderr, "dsv4-mkmodel: %s\n", err);
		return 1;
	}
	if (tokenizer && copy_file(tokenizer, dir, "tokenizer.json")) {
		fprintf(stderr, "dsv4-mkmodel: cannot copy %s into %s: %s\n", tokenizer, dir,
			strerror(errno));
		return 1;
	}
	printf("wrote %s: %zu tensors, %.3f GB in %d file%s (seed %llu)\n", dir, n, total / 1e9,
	       shards, shards > 1 ? "s" : "", (unsigned long long)seed);
	free(shard_of);
	free(specs);
	free(g.pending_scale);
	return 0;
}
