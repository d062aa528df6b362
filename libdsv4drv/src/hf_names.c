// SPDX-License-Identifier: MIT
/*
 * HF-transformers tensor names -> the release's names (transformers'
 * deepseek_v4 conversion mapping, read 2026-11; `weights_proj` moved under
 * `scorer.` in later releases, both are accepted).  FP8 scales are
 * `*.weight_scale_inv` in HF and `*.scale` in the release.  Stacked routed
 * experts (`mlp.experts.gate_up_proj` [E, 2I, H], gate rows first, and
 * `mlp.experts.down_proj` [E, H, I]) are not one-to-one: checkpoint.c
 * splits them into per-expert views.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dsv4drv.h"

struct rule {
	const char *hf;		/* after "model.layers.L." (or the whole name) */
	const char *official;	/* after "layers.L." */
	int linear;		/* .weight / .weight_scale_inv -> .weight / .scale */
};

static const struct rule layer_rules[] = {
	{ "input_layernorm.weight", "attn_norm.weight", 0 },
	{ "post_attention_layernorm.weight", "ffn_norm.weight", 0 },
	{ "attn_hc.fn", "hc_attn_fn", 0 },
	{ "attn_hc.base", "hc_attn_base", 0 },
	{ "attn_hc.scale", "hc_attn_scale", 0 },
	{ "ffn_hc.fn", "hc_ffn_fn", 0 },
	{ "ffn_hc.base", "hc_ffn_base", 0 },
	{ "ffn_hc.scale", "hc_ffn_scale", 0 },
	{ "self_attn.q_a_proj", "attn.wq_a", 1 },
	{ "self_attn.q_a_norm.weight", "attn.q_norm.weight", 0 },
	{ "self_attn.q_b_proj", "attn.wq_b", 1 },
	{ "self_attn.kv_proj", "attn.wkv", 1 },
	{ "self_attn.kv_norm.weight", "attn.kv_norm.weight", 0 },
	{ "self_attn.o_a_proj", "attn.wo_a", 1 },
	{ "self_attn.o_b_proj", "attn.wo_b", 1 },
	{ "self_attn.sinks", "attn.attn_sink", 0 },
	{ "self_attn.compressor.kv_proj.weight", "attn.compressor.wkv.weight", 0 },
	{ "self_attn.compressor.gate_proj.weight", "attn.compressor.wgate.weight", 0 },
	{ "self_attn.compressor.position_bias", "attn.compressor.ape", 0 },
	{ "self_attn.compressor.kv_norm.weight", "attn.compressor.norm.weight", 0 },
	{ "self_attn.compressor.indexer.kv_proj.weight", "attn.indexer.compressor.wkv.weight", 0 },
	{ "self_attn.compressor.indexer.gate_proj.weight", "attn.indexer.compressor.wgate.weight", 0 },
	{ "self_attn.compressor.indexer.position_bias", "attn.indexer.compressor.ape", 0 },
	{ "self_attn.compressor.indexer.kv_norm.weight", "attn.indexer.compressor.norm.weight", 0 },
	{ "self_attn.compressor.indexer.q_b_proj", "attn.indexer.wq_b", 1 },
	{ "self_attn.compressor.indexer.weights_proj.weight", "attn.indexer.weights_proj.weight", 0 },
	{ "self_attn.compressor.indexer.scorer.weights_proj.weight", "attn.indexer.weights_proj.weight", 0 },
	{ "mlp.gate.weight", "ffn.gate.weight", 0 },
	{ "mlp.gate.e_score_correction_bias", "ffn.gate.bias", 0 },
	{ "mlp.gate.tid2eid", "ffn.gate.tid2eid", 0 },
	{ "mlp.shared_experts.gate_proj", "ffn.shared_experts.w1", 1 },
	{ "mlp.shared_experts.up_proj", "ffn.shared_experts.w3", 1 },
	{ "mlp.shared_experts.down_proj", "ffn.shared_experts.w2", 1 },
};

static const struct rule global_rules[] = {
	{ "model.embed_tokens.weight", "embed.weight", 0 },
	{ "lm_head.weight", "head.weight", 0 },
	{ "model.norm.weight", "norm.weight", 0 },
	{ "model.hc_head.hc_fn", "hc_head_fn", 0 },
	{ "model.hc_head.hc_base", "hc_head_base", 0 },
	{ "model.hc_head.hc_scale", "hc_head_scale", 0 },
};

/* @rest against @r: 1 and the official suffix in @suffix, or 0. */
static int match(const struct rule *r, const char *rest, const char **suffix)
{
	size_t n = strlen(r->hf);

	if (strncmp(rest, r->hf, n))
		return 0;
	if (!r->linear) {
		*suffix = "";
		return rest[n] == '\0';
	}
	if (!strcmp(rest + n, ".weight"))
		*suffix = ".weight";
	else if (!strcmp(rest + n, ".weight_scale_inv"))
		*suffix = ".scale";
	else
		return 0;
	return 1;
}

static int emit(char *out, size_t len, const char *a, const char *b)
{
	return (size_t)snprintf(out, len, "%s%s", a, b) < len ? 0 : -ENAMETOOLONG;
}

int dsv4_hf_name_to_official(const char *hf, char *out, size_t len)
{
	const char *suffix, *rest;
	unsigned int layer;
	int used = 0;
	char prefix[32];

	for (size_t i = 0; i < sizeof(global_rules) / sizeof(global_rules[0]); i++)
		if (match(&global_rules[i], hf, &suffix))
			return emit(out, len, global_rules[i].official, suffix);
	if (sscanf(hf, "model.layers.%u.%n", &layer, &used) != 1 || !used)
		return -ENOENT;
	rest = hf + used;
	snprintf(prefix, sizeof(prefix), "layers.%u.", layer);
	for (size_t i = 0; i < sizeof(layer_rules) / sizeof(layer_rules[0]); i++) {
		if (match(&layer_rules[i], rest, &suffix)) {
			char tail[96];

			snprintf(tail, sizeof(tail), "%s%s", layer_rules[i].official, suffix);
			return emit(out, len, prefix, tail);
		}
	}
	return -ENOENT;
}
