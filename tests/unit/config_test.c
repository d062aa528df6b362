// SPDX-License-Identifier: MIT
/* config.json parsing: the Flash config reads as the spec says; every bad
 * value is refused with an error that names the key. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

#define FLASH DSV4_FIXTURES "/config-flash.json"

TEST(flash_config)
{
	struct dsv4_config c;
	char err[512] = "";

	ASSERT_EQ(0, dsv4_config_load(FLASH, &c, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(129280u, c.vocab_size);
	EXPECT_EQ(4096u, c.dim);
	EXPECT_EQ(43u, c.n_layers);
	EXPECT_EQ(64u, c.n_heads);
	EXPECT_EQ(512u, c.head_dim);
	EXPECT_EQ(64u, c.rope_head_dim);
	EXPECT_EQ(1024u, c.q_lora_rank);
	EXPECT_EQ(8u, c.o_groups);
	EXPECT_EQ(128u, c.window_size);
	EXPECT_EQ(512u, c.index_topk);
	EXPECT_EQ(256u, c.n_routed_experts);
	EXPECT_EQ(6u, c.n_activated_experts);
	EXPECT_EQ(2048u, c.moe_inter_dim);
	EXPECT_EQ(3u, c.n_hash_layers);
	EXPECT_EQ(1u, c.n_mtp_layers);
	EXPECT_EQ(4u, c.hc_mult);
	EXPECT_EQ(20u, c.hc_sinkhorn_iters);
	EXPECT_EQ(1.5, c.route_scale);
	EXPECT_EQ(10.0, c.swiglu_limit);
	EXPECT_EQ(160000.0, c.compress_rope_theta);
	EXPECT_EQ(16.0, c.rope_factor);
	EXPECT_EQ(65536u, c.rope_original_max_pos);
	EXPECT_EQ(1, c.fp8);
	EXPECT_EQ(1, c.scale_ue8m0);
	EXPECT_EQ(DSV4_EXPERT_FP4, c.expert_dtype);
	EXPECT_EQ(44u, c.n_ratios);	/* 43 layers + the MTP block */
	EXPECT_EQ(0u, c.compress_ratios[1]);
	EXPECT_EQ(4u, c.compress_ratios[2]);
	EXPECT_EQ(128u, c.compress_ratios[3]);
	EXPECT_EQ(4u, c.compress_ratios[42]);
	EXPECT_EQ(0u, c.compress_ratios[43]);
}

/* The Flash config with one edit applied, parsed. */
static int edited(const char *key, json_t *value, char *err, size_t errlen)
{
	json_t *root = json_load_file(FLASH, 0, NULL);
	struct dsv4_config c;
	char *text;
	int ret;

	if (value)
		json_object_set_new(root, key, value);
	else
		json_object_del(root, key);
	text = json_dumps(root, 0);
	ret = dsv4_config_parse(text, strlen(text), &c, err, errlen);
	free(text);
	json_decref(root);
	return ret;
}

TEST(missing_required_keys_named)
{
	static const char *const required[] = {
		"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
		"head_dim", "qk_rope_head_dim", "q_lora_rank", "o_groups", "o_lora_rank",
		"sliding_window", "index_n_heads", "index_head_dim", "index_topk",
		"n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
		"hc_mult", "hc_sinkhorn_iters", "hc_eps", "rms_norm_eps", "rope_theta",
		"compress_rope_theta", "routed_scaling_factor", "max_position_embeddings",
		"model_type", "compress_ratios",
	};

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		char err[512] = "";

		EXPECT_EQ(-EINVAL, edited(required[i], NULL, err, sizeof(err)));
		EXPECT_NE(NULL, strstr(err, strcmp(required[i], "model_type") ? required[i] : "model_type")) {
			TH_LOG("'%s' missing -> '%s'", required[i], err);
		}
	}
}

TEST(bad_values_refused)
{
	struct { const char *key; json_t *v; int err; const char *says; } cases[] = {
		{ "hidden_size", json_string("4096"), -EINVAL, "hidden_size" },
		{ "hidden_size", json_real(4096.5), -EINVAL, "integer" },
		{ "hidden_size", json_integer(-1), -ERANGE, "hidden_size" },
		{ "hidden_size", json_integer(0), -ERANGE, "hidden_size" },
		{ "num_hidden_layers", json_integer(100000), -ERANGE, "num_hidden_layers" },
		{ "vocab_size", json_integer(1LL << 40), -ERANGE, "vocab_size" },
		{ "rms_norm_eps", json_true(), -EINVAL, "rms_norm_eps" },
		{ "model_type", json_string("deepseek_v3"), -EINVAL, "deepseek_v3" },
		{ "qk_rope_head_dim", json_integer(512), -EINVAL, "qk_rope_head_dim" },
		{ "qk_rope_head_dim", json_integer(63), -EINVAL, "even" },
		{ "o_groups", json_integer(7), -EINVAL, "o_groups" },
		{ "num_experts_per_tok", json_integer(300), -EINVAL, "num_experts_per_tok" },
		{ "num_hash_layers", json_integer(44), -EINVAL, "num_hash_layers" },
		{ "compress_ratios", json_pack("[i,i]", 0, 4), -EINVAL, "2 entries for 43 layers" },
		{ "compress_ratios", json_string("0,4"), -EINVAL, "compress_ratios" },
		{ "expert_dtype", json_string("int4"), -EINVAL, "expert_dtype" },
		{ "moe_intermediate_size", json_integer(96), -EINVAL, "moe_intermediate_size (96) in multiples of 128" },
		{ "o_lora_rank", json_integer(8), -EINVAL, "o_groups * o_lora_rank" },
		{ "rope_scaling", json_pack("{s:s}", "type", "linear"), -EINVAL, "yarn" },
		{ "rope_scaling", json_pack("{s:s,s:f}", "type", "yarn", "factor", 16.0), -EINVAL,
		  "original_max_position_embeddings" },
		{ "quantization_config", json_pack("{s:s}", "quant_method", "awq"), -EINVAL, "fp8" },
		{ "quantization_config", json_pack("{s:s,s:[i]}", "quant_method", "fp8",
						   "weight_block_size", 128), -EINVAL, "weight_block_size" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512] = "";

		EXPECT_EQ(cases[i].err, edited(cases[i].key, cases[i].v, err, sizeof(err))) {
			TH_LOG("case %zu (%s): %s", i, cases[i].key, err);
		}
		EXPECT_NE(NULL, strstr(err, cases[i].says)) {
			TH_LOG("case %zu: '%s' lacks '%s'", i, err, cases[i].says);
		}
	}
}

TEST(compress_ratio_entries)
{
	char err[512] = "";
	json_t *r = json_load_file(FLASH, 0, NULL);
	json_t *ratios = json_object_get(r, "compress_ratios");

	json_array_set_new(ratios, 5, json_integer(1));
	EXPECT_EQ(-EINVAL, edited("compress_ratios", json_deep_copy(ratios), err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "compress_ratios[5]"));
	json_array_set_new(ratios, 5, json_integer(-4));
	EXPECT_EQ(-EINVAL, edited("compress_ratios", json_deep_copy(ratios), err, sizeof(err)));
	json_array_set_new(ratios, 5, json_integer(16));	/* any HCA ratio */
	EXPECT_EQ(0, edited("compress_ratios", json_deep_copy(ratios), err, sizeof(err))) TH_LOG("%s", err);
	json_decref(r);
}

TEST(hf_layer_types_accepted)
{
	json_t *root = json_load_file(FLASH, 0, NULL), *types = json_array();
	struct dsv4_config c;
	char err[512] = "", *text;

	for (int i = 0; i < 43; i++)
		json_array_append_new(types, json_string(i < 2 ? "sliding_attention" :
			i % 2 ? "heavily_compressed_attention" : "compressed_sparse_attention"));
	json_object_del(root, "compress_ratios");
	json_object_set_new(root, "layer_types", types);
	text = json_dumps(root, 0);
	ASSERT_EQ(0, dsv4_config_parse(text, strlen(text), &c, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(43u, c.n_ratios);
	EXPECT_EQ(0u, c.compress_ratios[0]);
	EXPECT_EQ(4u, c.compress_ratios[2]);
	EXPECT_EQ(128u, c.compress_ratios[3]);
	json_array_set_new(types, 7, json_string("full_attention"));
	free(text);
	text = json_dumps(root, 0);
	EXPECT_EQ(-EINVAL, dsv4_config_parse(text, strlen(text), &c, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "layer_types[7]"));
	free(text);
	json_decref(root);
}

TEST(garbage_files)
{
	struct dsv4_config c;
	char err[512] = "";

	EXPECT_EQ(-ENOENT, dsv4_config_load("/nonexistent/config.json", &c, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "/nonexistent/config.json"));
	EXPECT_EQ(-EINVAL, dsv4_config_parse("{", 1, &c, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_config_parse("[]", 2, &c, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_config_parse("{\"a\":1,\"a\":2}", 13, &c, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_config_parse("\xff\xfe", 2, &c, err, sizeof(err)));
}

TEST_HARNESS_MAIN
