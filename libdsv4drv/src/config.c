// SPDX-License-Identifier: MIT
/*
 * DeepSeek V4 configuration from an HF config.json (model_type
 * "deepseek_v4"), as DeepSeek ships it: field names are HF's, values are
 * checked for type and range, and an error names the offending key.
 * Per-layer attention types come from `compress_ratios` (official) or,
 * failing that, from HF's `layer_types` names.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "internal.h"

enum kind { U32, U64, F64 };

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	int required;
	double min, max;
	double def;
};

#define K(n, k, field, req, lo, hi, d) \
	{ n, k, offsetof(struct dsv4_config, field), req, lo, hi, d }

static const struct key keys[] = {
	K("vocab_size", U32, vocab_size, 1, 1, 1 << 24, 0),
	K("hidden_size", U32, dim, 1, 1, 1 << 16, 0),
	K("num_hidden_layers", U32, n_layers, 1, 1, DSV4_MAX_LAYERS, 0),
	K("num_attention_heads", U32, n_heads, 1, 1, 1024, 0),
	K("head_dim", U32, head_dim, 1, 2, 4096, 0),
	K("qk_rope_head_dim", U32, rope_head_dim, 1, 2, 4096, 0),
	K("q_lora_rank", U32, q_lora_rank, 1, 1, 1 << 16, 0),
	K("o_groups", U32, o_groups, 1, 1, 1024, 0),
	K("o_lora_rank", U32, o_lora_rank, 1, 1, 1 << 16, 0),
	K("sliding_window", U32, window_size, 1, 1, 1 << 20, 0),
	K("index_n_heads", U32, index_n_heads, 1, 1, 1024, 0),
	K("index_head_dim", U32, index_head_dim, 1, 2, 4096, 0),
	K("index_topk", U32, index_topk, 1, 1, 1 << 20, 0),
	K("n_routed_experts", U32, n_routed_experts, 1, 1, 1 << 16, 0),
	K("n_shared_experts", U32, n_shared_experts, 0, 0, 16, 1),
	K("num_experts_per_tok", U32, n_activated_experts, 1, 1, 1 << 16, 0),
	K("moe_intermediate_size", U32, moe_inter_dim, 1, 1, 1 << 20, 0),
	K("num_hash_layers", U32, n_hash_layers, 0, 0, DSV4_MAX_LAYERS, 0),
	K("num_nextn_predict_layers", U32, n_mtp_layers, 0, 0, 16, 0),
	K("hc_mult", U32, hc_mult, 1, 1, 64, 0),
	K("hc_sinkhorn_iters", U32, hc_sinkhorn_iters, 1, 0, 1000, 0),
	K("bos_token_id", U32, bos_token_id, 0, 0, 1 << 24, 0),
	K("eos_token_id", U32, eos_token_id, 0, 0, 1 << 24, 1),
	K("max_position_embeddings", U64, max_position_embeddings, 1, 1, 1ULL << 40, 0),
	K("hc_eps", F64, hc_eps, 1, 0, 1, 0),
	K("rms_norm_eps", F64, norm_eps, 1, 0, 1, 0),
	K("rope_theta", F64, rope_theta, 1, 1, 1e12, 0),
	K("compress_rope_theta", F64, compress_rope_theta, 1, 1, 1e12, 0),
	K("routed_scaling_factor", F64, route_scale, 1, 0, 1e6, 0),
	K("swiglu_limit", F64, swiglu_limit, 0, 0, 1e6, 0),
};

static int get_number(json_t *v, double *out)
{
	if (json_is_integer(v))
		*out = (double)json_integer_value(v);
	else if (json_is_real(v))
		*out = json_real_value(v);
	else
		return -1;
	return isfinite(*out) ? 0 : -1;
}

static int set_key(const struct key *k, json_t *v, struct dsv4_config *cfg,
		   char *err, size_t errlen)
{
	char *base = (char *)cfg + k->off;
	double d;

	if (get_number(v, &d))
		return dsv4_errf(err, errlen, -EINVAL, "config: '%s' is not a number", k->name);
	if (k->kind != F64 && (!json_is_integer(v) && d != floor(d)))
		return dsv4_errf(err, errlen, -EINVAL, "config: '%s' must be an integer", k->name);
	if (d < k->min || d > k->max)
		return dsv4_errf(err, errlen, -ERANGE, "config: '%s' = %g is outside [%g, %g]",
				 k->name, d, k->min, k->max);
	switch (k->kind) {
	case U32: *(uint32_t *)base = (uint32_t)d; break;
	case U64: *(uint64_t *)base = (uint64_t)d; break;
	case F64: *(double *)base = d; break;
	}
	return 0;
}

static int layer_type_ratio(const char *name, uint32_t *ratio)
{
	if (!strcmp(name, "sliding_attention"))
		*ratio = 0;
	else if (!strcmp(name, "compressed_sparse_attention"))
		*ratio = 4;
	else if (!strcmp(name, "heavily_compressed_attention"))
		*ratio = 128;
	else
		return -1;
	return 0;
}

static int parse_ratios(json_t *root, struct dsv4_config *cfg, char *err, size_t errlen)
{
	json_t *arr = json_object_get(root, "compress_ratios"), *v;
	int from_types = 0;
	size_t i;

	if (!arr) {
		arr = json_object_get(root, "layer_types");
		from_types = 1;
	}
	if (!json_is_array(arr))
		return dsv4_errf(err, errlen, -EINVAL,
				 "config: needs a 'compress_ratios' (or 'layer_types') array");
	if (json_array_size(arr) < cfg->n_layers || json_array_size(arr) > DSV4_MAX_LAYERS)
		return dsv4_errf(err, errlen, -EINVAL,
				 "config: '%s' has %zu entries for %u layers",
				 from_types ? "layer_types" : "compress_ratios",
				 json_array_size(arr), cfg->n_layers);
	json_array_foreach(arr, i, v) {
		double d;

		if (from_types) {
			if (!json_is_string(v) ||
			    layer_type_ratio(json_string_value(v), &cfg->compress_ratios[i]))
				return dsv4_errf(err, errlen, -EINVAL,
						 "config: layer_types[%zu] is not a known layer type", i);
			continue;
		}
		if (!json_is_integer(v) || get_number(v, &d) || d < 0 || d > 4096 || d == 1)
			return dsv4_errf(err, errlen, -EINVAL,
					 "config: compress_ratios[%zu] must be 0 or an integer in [2, 4096]", i);
		cfg->compress_ratios[i] = (uint32_t)d;
	}
	cfg->n_ratios = (uint32_t)json_array_size(arr);
	return 0;
}

static int parse_rope_scaling(json_t *root, struct dsv4_config *cfg, char *err, size_t errlen)
{
	json_t *rs = json_object_get(root, "rope_scaling"), *t;
	const char *type;

	if (!rs || json_is_null(rs)) {
		cfg->rope_factor = 1;	/* no YaRN */
		return 0;
	}
	t = json_object_get(rs, "type");
	if (!t)
		t = json_object_get(rs, "rope_type");
	type = json_string_value(t);
	if (!json_is_object(rs) || !type || strcmp(type, "yarn"))
		return dsv4_errf(err, errlen, -EINVAL, "config: rope_scaling must be a yarn object");
	if (get_number(json_object_get(rs, "factor"), &cfg->rope_factor) || cfg->rope_factor < 1)
		return dsv4_errf(err, errlen, -EINVAL, "config: rope_scaling.factor must be >= 1");
	double omp;

	if (get_number(json_object_get(rs, "original_max_position_embeddings"), &omp) ||
	    omp < 1 || omp > 1 << 30 || omp != floor(omp))
		return dsv4_errf(err, errlen, -EINVAL,
				 "config: rope_scaling.original_max_position_embeddings must be a positive integer");
	cfg->rope_original_max_pos = (uint32_t)omp;
	cfg->rope_beta_fast = 32;
	cfg->rope_beta_slow = 1;
	if (json_object_get(rs, "beta_fast") &&
	    get_number(json_object_get(rs, "beta_fast"), &cfg->rope_beta_fast))
		return dsv4_errf(err, errlen, -EINVAL, "config: rope_scaling.beta_fast is not a number");
	if (json_object_get(rs, "beta_slow") &&
	    get_number(json_object_get(rs, "beta_slow"), &cfg->rope_beta_slow))
		return dsv4_errf(err, errlen, -EINVAL, "config: rope_scaling.beta_slow is not a number");
	return 0;
}

static int parse_quant(json_t *root, struct dsv4_config *cfg, char *err, size_t errlen)
{
	json_t *q = json_object_get(root, "quantization_config"), *v;
	const char *ed = json_string_value(json_object_get(root, "expert_dtype"));

	cfg->weight_block[0] = cfg->weight_block[1] = 128;
	if (q && !json_is_null(q)) {
		const char *m = json_string_value(json_object_get(q, "quant_method"));
		const char *fmt = json_string_value(json_object_get(q, "fmt"));
		const char *sf = json_string_value(json_object_get(q, "scale_fmt"));

		if (!json_is_object(q) || !m || strcmp(m, "fp8"))
			return dsv4_errf(err, errlen, -EINVAL,
					 "config: quantization_config.quant_method must be \"fp8\"");
		if (fmt && strcmp(fmt, "e4m3"))
			return dsv4_errf(err, errlen, -EINVAL,
					 "config: quantization_config.fmt '%s' is not supported (e4m3 only)", fmt);
		cfg->fp8 = 1;
		cfg->scale_ue8m0 = sf && !strcmp(sf, "ue8m0");
		v = json_object_get(q, "weight_block_size");
		if (v) {
			double a, b;

			if (!json_is_array(v) || json_array_size(v) != 2 ||
			    get_number(json_array_get(v, 0), &a) || get_number(json_array_get(v, 1), &b) ||
			    a < 1 || b < 1 || a > 65536 || b > 65536)
				return dsv4_errf(err, errlen, -EINVAL,
						 "config: quantization_config.weight_block_size must be [rows, cols]");
			cfg->weight_block[0] = (uint32_t)a;
			cfg->weight_block[1] = (uint32_t)b;
		}
	}
	cfg->expert_dtype_given = ed != NULL;
	/* The HF config.json of the release omits it (the FP4 experts are only
	 * named in inference/config.json); dsv4_ckpt_open() then reads it off
	 * the stored expert weights.  Without a checkpoint: FP8 if quantized. */
	if (!ed)
		cfg->expert_dtype = cfg->fp8 ? DSV4_EXPERT_FP8 : DSV4_EXPERT_BF16;
	else if (!strcmp(ed, "fp4"))
		cfg->expert_dtype = DSV4_EXPERT_FP4;
	else if (!strcmp(ed, "fp8"))
		cfg->expert_dtype = DSV4_EXPERT_FP8;
	else if (!strcmp(ed, "bf16"))
		cfg->expert_dtype = DSV4_EXPERT_BF16;
	else
		return dsv4_errf(err, errlen, -EINVAL, "config: expert_dtype '%s' is not fp4, fp8 or bf16", ed);
	return 0;
}

/* Relations between values that the shapes depend on. */
static int check_relations(const struct dsv4_config *c, char *err, size_t errlen)
{
	if (c->rope_head_dim >= c->head_dim || c->rope_head_dim % 2)
		return dsv4_errf(err, errlen, -EINVAL,
				 "config: qk_rope_head_dim %u must be even and below head_dim %u",
				 c->rope_head_dim, c->head_dim);
	if (c->n_heads % c->o_groups)
		return dsv4_errf(err, errlen, -EINVAL,
				 "config: num_attention_heads %u is not a multiple of o_groups %u",
				 c->n_heads, c->o_groups);
	if (c->n_activated_experts > c->n_routed_experts)
		return dsv4_errf(err, errlen, -EINVAL,
				 "config: num_experts_per_tok %u > n_routed_experts %u",
				 c->n_activated_experts, c->n_routed_experts);
	if (c->n_hash_layers > c->n_layers)
		return dsv4_errf(err, errlen, -EINVAL, "config: num_hash_layers %u > num_hidden_layers %u",
				 c->n_hash_layers, c->n_layers);
	if (c->index_head_dim % 2 || c->index_head_dim < c->rope_head_dim)
		return dsv4_errf(err, errlen, -EINVAL,
				 "config: index_head_dim %u must be even and >= qk_rope_head_dim", c->index_head_dim);
	if (c->fp8) {
		/* FP8 linears quantize their input per weight_block[1] columns */
		static const char *const what[] = {
			"hidden_size", "q_lora_rank", "moe_intermediate_size",
			"o_groups * o_lora_rank", "num_attention_heads * head_dim / o_groups",
		};
		uint64_t in[] = {
			c->dim, c->q_lora_rank, c->moe_inter_dim,
			(uint64_t)c->o_groups * c->o_lora_rank,
			(uint64_t)c->n_heads * c->head_dim / c->o_groups,
		};

		for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
			if (in[i] % c->weight_block[1])
				return dsv4_errf(err, errlen, -EINVAL,
						 "config: FP8 weights need %s (%llu) in multiples of %u",
						 what[i], (unsigned long long)in[i], c->weight_block[1]);
	}
	if (c->expert_dtype == DSV4_EXPERT_FP4 && (c->dim % 32 || c->moe_inter_dim % 32))
		return dsv4_errf(err, errlen, -EINVAL,
				 "config: FP4 experts need hidden_size and moe_intermediate_size in multiples of 32");
	return 0;
}

static int parse_root(json_t *root, struct dsv4_config *cfg, char *err, size_t errlen)
{
	const char *mt = json_string_value(json_object_get(root, "model_type"));
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	if (!json_is_object(root))
		return dsv4_errf(err, errlen, -EINVAL, "config: not a JSON object");
	if (!mt || strcmp(mt, "deepseek_v4"))
		return dsv4_errf(err, errlen, -EINVAL, "config: model_type is '%s', not 'deepseek_v4'",
				 mt ? mt : "(missing)");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct key *k = &keys[i];
		json_t *v = json_object_get(root, k->name);

		if (!v || json_is_null(v)) {
			if (k->required)
				return dsv4_errf(err, errlen, -EINVAL, "config: missing '%s'", k->name);
			switch (k->kind) {
			case U32: *(uint32_t *)((char *)cfg + k->off) = (uint32_t)k->def; break;
			case U64: *(uint64_t *)((char *)cfg + k->off) = (uint64_t)k->def; break;
			case F64: *(double *)((char *)cfg + k->off) = k->def; break;
			}
			continue;
		}
		ret = set_key(k, v, cfg, err, errlen);
		if (ret)
			return ret;
	}
	cfg->tie_word_embeddings = json_is_true(json_object_get(root, "tie_word_embeddings"));
	ret = parse_ratios(root, cfg, err, errlen);
	if (!ret)
		ret = parse_rope_scaling(root, cfg, err, errlen);
	if (!ret)
		ret = parse_quant(root, cfg, err, errlen);
	if (!ret)
		ret = check_relations(cfg, err, errlen);
	return ret;
}

int dsv4_config_parse(const char *json, size_t len, struct dsv4_config *cfg,
		      char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	int ret;

	if (!root)
		return dsv4_errf(err, errlen, -EINVAL, "config: JSON: %s (line %d, column %d)",
				 jerr.text, jerr.line, jerr.column);
	ret = parse_root(root, cfg, err, errlen);
	json_decref(root);
	return ret;
}

int dsv4_config_load(const char *path, struct dsv4_config *cfg, char *err,
		     size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	int ret;

	if (access(path, R_OK))
		return dsv4_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return dsv4_errf(err, errlen, -EINVAL, "%s: %s (line %d)", path, jerr.text, jerr.line);
	ret = parse_root(root, cfg, err, errlen);
	json_decref(root);
	if (ret && err) {
		char msg[384];

		snprintf(msg, sizeof(msg), "%s", err);
		dsv4_errf(err, errlen, ret, "%s: %s", path, msg);
	}
	return ret;
}
