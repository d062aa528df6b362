// SPDX-License-Identifier: MIT
/*
 * Checkpoint directories: the schema derived from config.json, single-file
 * and sharded layouts, and errors that name the tensor, the file and what
 * was expected.  Checkpoints are written with the library's own streaming
 * safetensors writer into a temporary directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

#define TINY DSV4_FIXTURES "/config-tiny.json"

/* Each tensor's bytes: its index in the file and position, so content is checkable. */
static int write_file(const char *path, const struct dsv4_tensor_spec *s, size_t n)
{
	struct dsv4_st_writer *w;
	char err[256];
	int ret = dsv4_st_writer_open(path, s, n, &w, err, sizeof(err));

	if (ret)
		return ret;
	for (size_t i = 0; i < n && !ret; i++) {
		uint64_t nb = dsv4_spec_nbytes(&s[i]);
		uint8_t *buf = malloc(nb + 1);

		for (uint64_t b = 0; b < nb; b++)
			buf[b] = (uint8_t)(i * 7 + b);
		ret = dsv4_st_writer_write(w, buf, nb);
		free(buf);
	}
	return ret ? (dsv4_st_writer_close(w, NULL, 0), ret) : dsv4_st_writer_close(w, err, sizeof(err));
}

static void copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	char buf[4096];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
		fwrite(buf, 1, n, b);
	fclose(a);
	fclose(b);
}

FIXTURE(ckpt) {
	char dir[64];
	struct dsv4_config cfg;
	struct dsv4_tensor_spec *specs;
	size_t n;
};

FIXTURE_SETUP(ckpt)
{
	char path[128], err[512] = "";

	strcpy(self->dir, "/tmp/dsv4-ckpt-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(path, sizeof(path), "%s/config.json", self->dir);
	copy_file(TINY, path);
	ASSERT_EQ(0, dsv4_config_load(path, &self->cfg, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, dsv4_schema_build(&self->cfg, &self->specs, &self->n));
}

FIXTURE_TEARDOWN(ckpt)
{
	char cmd[128];

	free(self->specs);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", self->dir);
	if (system(cmd))
		TH_LOG("cleanup of %s failed", self->dir);
}

static int write_single(const char *dir, const struct dsv4_tensor_spec *s, size_t n)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	return write_file(path, s, n);
}

static int open_err(const char *dir, char *err, size_t len)
{
	struct dsv4_ckpt *ck;
	int ret = dsv4_ckpt_open(dir, &ck, err, len);

	dsv4_ckpt_close(ck);
	return ret;
}

TEST(flash_schema_counts)
{
	struct dsv4_config c;
	struct dsv4_tensor_spec *s;
	size_t n, per[3] = { 0 };
	char err[256];

	ASSERT_EQ(0, dsv4_config_load(DSV4_FIXTURES "/config-flash.json", &c, err, sizeof(err)));
	ASSERT_EQ(0, dsv4_schema_build(&c, &s, &n));
	for (size_t i = 0; i < n; i++) {
		unsigned int L;

		/* Flash: layer 0 is SWA, 2 is CSA, 3 is HCA */
		if (sscanf(s[i].name, "layers.%u.", &L) == 1 && (L == 0 || L == 2 || L == 3))
			per[L == 0 ? 0 : L == 2 ? 1 : 2]++;
	}
	/* Spec §8: SWA 1565, CSA 1576, HCA 1569 tensors; 67,606 + 6 global. */
	EXPECT_EQ(1565u, per[0]);
	EXPECT_EQ(1576u, per[1]);
	EXPECT_EQ(1569u, per[2]);
	EXPECT_EQ(67606u + 6u, n);
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(s[i].name, "layers.3.attn.wo_a.scale")) {
			EXPECT_EQ(DSV4_DT_F8_E8M0, s[i].dtype);
			EXPECT_EQ(64u, s[i].shape[0]);
			EXPECT_EQ(32u, s[i].shape[1]);
		}
		if (!strcmp(s[i].name, "layers.5.ffn.experts.255.w2.weight")) {
			EXPECT_EQ(DSV4_DT_I8, s[i].dtype);
			EXPECT_EQ(4096u, s[i].shape[0]);
			EXPECT_EQ(1024u, s[i].shape[1]);
		}
		if (!strcmp(s[i].name, "layers.2.attn.compressor.ape")) {
			EXPECT_EQ(4u, s[i].shape[0]);
			EXPECT_EQ(1024u, s[i].shape[1]);
		}
		if (!strcmp(s[i].name, "layers.3.attn.compressor.ape")) {
			EXPECT_EQ(128u, s[i].shape[0]);
			EXPECT_EQ(512u, s[i].shape[1]);
		}
		if (!strcmp(s[i].name, "layers.1.hc_ffn_fn")) {
			EXPECT_EQ(24u, s[i].shape[0]);
			EXPECT_EQ(16384u, s[i].shape[1]);
		}
	}
	free(s);
}

TEST_F(ckpt, single_file_opens_zero_copy)
{
	struct dsv4_tensor_spec *s = malloc((self->n + 1) * sizeof(*s));
	const struct dsv4_ckpt_tensor *t;
	struct dsv4_ckpt *ck;
	char err[512] = "";

	memcpy(s, self->specs, self->n * sizeof(*s));
	/* An MTP tensor: reported as an extra, not refused. */
	s[self->n] = (struct dsv4_tensor_spec){ "mtp.0.norm.weight", DSV4_DT_BF16, 1, { 256 } };
	ASSERT_EQ(0, write_single(self->dir, s, self->n + 1));
	ASSERT_EQ(0, dsv4_ckpt_open(self->dir, &ck, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(self->n, ck->n_specs);
	EXPECT_EQ(1u, ck->n_extras);
	EXPECT_STREQ("mtp.0.norm.weight", ck->extras[0].stored_name);
	EXPECT_EQ(1u, ck->n_shards);
	EXPECT_EQ(0, ck->hf_names);
	t = dsv4_ckpt_find(ck, "layers.1.attn.indexer.wq_b.scale");
	ASSERT_NE(NULL, t);
	EXPECT_EQ(DSV4_DT_F8_E8M0, t->st->dtype);
	/* Data is in place in the mapping, at the offset the header gives. */
	for (size_t i = 0; i < self->n; i++) {
		if (strcmp(s[i].name, "layers.2.ffn.experts.3.w2.weight"))
			continue;
		t = dsv4_ckpt_find(ck, s[i].name);
		ASSERT_NE(NULL, t);
		EXPECT_EQ((uint8_t)(i * 7 + 5), ((const uint8_t *)dsv4_ckpt_data(t))[5]);
		EXPECT_EQ(0u, t->file->header.data_offset % 8);	/* data area aligned */
	}
	EXPECT_EQ(NULL, dsv4_ckpt_find(ck, "layers.0.attn.compressor.ape"));	/* SWA layer */
	dsv4_ckpt_close(ck);
	free(s);
}

TEST_F(ckpt, missing_wrong_dtype_wrong_shape)
{
	struct dsv4_tensor_spec *s = malloc(self->n * sizeof(*s));
	char err[512] = "";
	size_t k;

	for (k = 0; strcmp(self->specs[k].name, "layers.2.attn.wo_b.weight"); k++)
		;
	/* missing */
	memcpy(s, self->specs, self->n * sizeof(*s));
	s[k] = s[self->n - 1];
	ASSERT_EQ(0, write_single(self->dir, s, self->n - 1));
	EXPECT_EQ(-EINVAL, open_err(self->dir, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "layers.2.attn.wo_b.weight: missing (expected F8_E4M3 [256, 128])"))
		TH_LOG("%s", err);
	/* wrong dtype */
	memcpy(s, self->specs, self->n * sizeof(*s));
	s[k].dtype = DSV4_DT_BF16;
	ASSERT_EQ(0, write_single(self->dir, s, self->n));
	EXPECT_EQ(-EINVAL, open_err(self->dir, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "expected F8_E4M3 [256, 128], found BF16 [256, 128]")) TH_LOG("%s", err);
	EXPECT_NE(NULL, strstr(err, "model.safetensors"));
	/* wrong shape */
	memcpy(s, self->specs, self->n * sizeof(*s));
	s[k].shape[1] = 64;
	ASSERT_EQ(0, write_single(self->dir, s, self->n));
	EXPECT_EQ(-EINVAL, open_err(self->dir, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "found F8_E4M3 [256, 64]")) TH_LOG("%s", err);
	free(s);
}

static int write_index(const char *dir, const char *body)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "{\"metadata\":{},\"weight_map\":{%s}}", body);
	return fclose(f);
}

/* Writes two shards (first half, second half) and a matching index. */
static int write_sharded(const char *dir, const struct dsv4_tensor_spec *s, size_t n,
			 const char *extra_entry)
{
	size_t half = n / 2, len = 0, cap = n * 128 + 256;
	char *body = malloc(cap), path[128];
	int ret;

	snprintf(path, sizeof(path), "%s/model-00001-of-00002.safetensors", dir);
	ret = write_file(path, s, half);
	snprintf(path, sizeof(path), "%s/model-00002-of-00002.safetensors", dir);
	if (!ret)
		ret = write_file(path, s + half, n - half);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(body + len, cap - len, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"",
					i ? "," : "", s[i].name, i < half ? 1 : 2);
	if (extra_entry)
		snprintf(body + len, cap - len, ",%s", extra_entry);
	if (!ret)
		ret = write_index(dir, body);
	free(body);
	return ret;
}

TEST_F(ckpt, sharded_with_index)
{
	struct dsv4_ckpt *ck;
	char err[512] = "";

	ASSERT_EQ(0, write_sharded(self->dir, self->specs, self->n, NULL));
	ASSERT_EQ(0, dsv4_ckpt_open(self->dir, &ck, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(2u, ck->n_shards);
	EXPECT_EQ(0u, ck->n_extras);
	EXPECT_NE(NULL, dsv4_ckpt_find(ck, "hc_head_scale"));
	dsv4_ckpt_close(ck);
}

TEST_F(ckpt, bad_indexes)
{
	char err[512] = "";

	/* the index names a tensor its shard lacks */
	ASSERT_EQ(0, write_sharded(self->dir, self->specs, self->n,
				   "\"ghost\":\"model-00001-of-00002.safetensors\""));
	EXPECT_EQ(-ENOENT, open_err(self->dir, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "'ghost'")) TH_LOG("%s", err);
	/* a shard outside the directory */
	ASSERT_EQ(0, write_sharded(self->dir, self->specs, self->n, "\"x\":\"../etc/passwd\""));
	EXPECT_EQ(-EINVAL, open_err(self->dir, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "outside the directory")) TH_LOG("%s", err);
	/* a shard that does not exist */
	ASSERT_EQ(0, write_sharded(self->dir, self->specs, self->n, "\"x\":\"model-9.safetensors\""));
	EXPECT_EQ(-ENOENT, open_err(self->dir, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "model-9.safetensors")) TH_LOG("%s", err);
	/* not JSON / no weight_map */
	ASSERT_EQ(0, write_index(self->dir, "\"a\":"));
	EXPECT_EQ(-EINVAL, open_err(self->dir, err, sizeof(err)));
	/* a tensor in a shard the index does not list */
	ASSERT_EQ(0, write_sharded(self->dir, self->specs, self->n, NULL));
	char path[128];

	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", self->dir);
	FILE *f = fopen(path, "w");

	fprintf(f, "{\"weight_map\":{\"embed.weight\":\"model-00001-of-00002.safetensors\"}}");
	fclose(f);
	EXPECT_EQ(-EINVAL, open_err(self->dir, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "not in the index")) TH_LOG("%s", err);
}

TEST_F(ckpt, missing_files_named)
{
	char err[512] = "", path[128];

	EXPECT_EQ(-ENOENT, open_err(self->dir, err, sizeof(err)));	/* no weights at all */
	EXPECT_NE(NULL, strstr(err, "model.safetensors")) TH_LOG("%s", err);
	snprintf(path, sizeof(path), "%s/config.json", self->dir);
	unlink(path);
	EXPECT_EQ(-ENOENT, open_err(self->dir, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "config.json")) TH_LOG("%s", err);
}

TEST(hf_names_map_to_official)
{
	/* From transformers' deepseek_v4 conversion mapping (2026-11). */
	static const char *const pairs[][2] = {
		{ "model.embed_tokens.weight", "embed.weight" },
		{ "lm_head.weight", "head.weight" },
		{ "model.norm.weight", "norm.weight" },
		{ "model.hc_head.hc_fn", "hc_head_fn" },
		{ "model.hc_head.hc_scale", "hc_head_scale" },
		{ "model.layers.7.input_layernorm.weight", "layers.7.attn_norm.weight" },
		{ "model.layers.7.post_attention_layernorm.weight", "layers.7.ffn_norm.weight" },
		{ "model.layers.0.attn_hc.fn", "layers.0.hc_attn_fn" },
		{ "model.layers.0.ffn_hc.base", "layers.0.hc_ffn_base" },
		{ "model.layers.3.self_attn.q_a_proj.weight", "layers.3.attn.wq_a.weight" },
		{ "model.layers.3.self_attn.q_a_proj.weight_scale_inv", "layers.3.attn.wq_a.scale" },
		{ "model.layers.3.self_attn.q_a_norm.weight", "layers.3.attn.q_norm.weight" },
		{ "model.layers.3.self_attn.kv_proj.weight", "layers.3.attn.wkv.weight" },
		{ "model.layers.3.self_attn.o_a_proj.weight", "layers.3.attn.wo_a.weight" },
		{ "model.layers.3.self_attn.sinks", "layers.3.attn.attn_sink" },
		{ "model.layers.3.self_attn.compressor.position_bias", "layers.3.attn.compressor.ape" },
		{ "model.layers.3.self_attn.compressor.kv_norm.weight", "layers.3.attn.compressor.norm.weight" },
		{ "model.layers.2.self_attn.compressor.indexer.q_b_proj.weight_scale_inv", "layers.2.attn.indexer.wq_b.scale" },
		{ "model.layers.2.self_attn.compressor.indexer.weights_proj.weight", "layers.2.attn.indexer.weights_proj.weight" },
		{ "model.layers.2.self_attn.compressor.indexer.scorer.weights_proj.weight", "layers.2.attn.indexer.weights_proj.weight" },
		{ "model.layers.2.self_attn.compressor.indexer.gate_proj.weight", "layers.2.attn.indexer.compressor.wgate.weight" },
		{ "model.layers.4.mlp.gate.e_score_correction_bias", "layers.4.ffn.gate.bias" },
		{ "model.layers.0.mlp.gate.tid2eid", "layers.0.ffn.gate.tid2eid" },
		{ "model.layers.4.mlp.shared_experts.up_proj.weight", "layers.4.ffn.shared_experts.w3.weight" },
		{ "model.layers.4.mlp.shared_experts.down_proj.weight_scale_inv", "layers.4.ffn.shared_experts.w2.scale" },
	};
	static const char *const not_hf[] = {
		"layers.3.attn.wq_a.weight", "model.layers.3.self_attn.q_a_proj.bias",
		"model.layers.x.input_layernorm.weight", "model.layers.3.self_attn.sinks.extra",
		"mtp.0.norm.weight", "model.layers.3.mlp.experts.gate_up_proj", "",
	};
	char out[128];

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		ASSERT_EQ(0, dsv4_hf_name_to_official(pairs[i][0], out, sizeof(out))) TH_LOG("%s", pairs[i][0]);
		EXPECT_STREQ(pairs[i][1], out);
	}
	for (size_t i = 0; i < sizeof(not_hf) / sizeof(not_hf[0]); i++) {
		EXPECT_EQ(-ENOENT, dsv4_hf_name_to_official(not_hf[i], out, sizeof(out))) TH_LOG("%s", not_hf[i]);
	}
	EXPECT_EQ(-ENAMETOOLONG, dsv4_hf_name_to_official("model.embed_tokens.weight", out, 5));
}

/*
 * HF layout: some tensors under HF names, routed experts stacked as
 * gate_up_proj [E, 2I, H] / down_proj [E, H, I] (BF16 experts here).
 */
TEST_F(ckpt, hf_layout_with_stacked_experts)
{
	char path[128], err[512] = "";
	struct dsv4_tensor_spec *s;
	struct dsv4_config c = self->cfg;
	struct dsv4_ckpt *ck;
	size_t n = 0;

	/* BF16 experts: config.json with expert_dtype "bf16" */
	json_t *cj = json_load_file(TINY, 0, NULL);

	ASSERT_NE(NULL, cj);
	json_object_set_new(cj, "expert_dtype", json_string("bf16"));
	snprintf(path, sizeof(path), "%s/config.json", self->dir);
	ASSERT_EQ(0, json_dump_file(cj, path, 0));
	json_decref(cj);
	c.expert_dtype = DSV4_EXPERT_BF16;
	free(self->specs);
	ASSERT_EQ(0, dsv4_schema_build(&c, &self->specs, &self->n));
	s = calloc(self->n, sizeof(*s));
	for (size_t i = 0; i < self->n; i++) {
		unsigned int L, e;
		const char *nm = self->specs[i].name;

		if (sscanf(nm, "layers.%u.ffn.experts.%u.", &L, &e) == 2) {
			if (e == 0 && strstr(nm, ".w1.weight")) {
				s[n] = (struct dsv4_tensor_spec){ "", DSV4_DT_BF16, 3,
					{ c.n_routed_experts, 2 * c.moe_inter_dim, c.dim } };
				snprintf(s[n++].name, sizeof(s[0].name), "model.layers.%u.mlp.experts.gate_up_proj", L);
				s[n] = (struct dsv4_tensor_spec){ "", DSV4_DT_BF16, 3,
					{ c.n_routed_experts, c.dim, c.moe_inter_dim } };
				snprintf(s[n++].name, sizeof(s[0].name), "model.layers.%u.mlp.experts.down_proj", L);
			}
			continue;
		}
		s[n] = self->specs[i];
		if (!strcmp(nm, "embed.weight"))
			strcpy(s[n].name, "model.embed_tokens.weight");
		else if (!strcmp(nm, "layers.1.attn.wq_a.weight"))
			strcpy(s[n].name, "model.layers.1.self_attn.q_a_proj.weight");
		else if (!strcmp(nm, "layers.1.attn.wq_a.scale"))
			strcpy(s[n].name, "model.layers.1.self_attn.q_a_proj.weight_scale_inv");
		n++;
	}
	ASSERT_EQ(0, write_single(self->dir, s, n));
	ASSERT_EQ(0, dsv4_ckpt_open(self->dir, &ck, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(1, ck->hf_names);
	EXPECT_EQ(0u, ck->n_extras);
	/* Expert 3's w3 is rows [I, 2I) of gate_up_proj[3]; w2 is down_proj[3]. */
	for (unsigned int L = 0; L < c.n_layers; L++) {
		char name[96];
		const struct dsv4_ckpt_tensor *w3, *w2;
		uint64_t I = c.moe_inter_dim, H = c.dim;

		snprintf(name, sizeof(name), "layers.%u.ffn.experts.3.w3.weight", L);
		w3 = dsv4_ckpt_find(ck, name);
		snprintf(name, sizeof(name), "layers.%u.ffn.experts.3.w2.weight", L);
		w2 = dsv4_ckpt_find(ck, name);
		ASSERT_NE(NULL, w3);
		ASSERT_NE(NULL, w2);
		EXPECT_EQ(I, w3->st->shape[0]);
		EXPECT_EQ(H, w3->st->shape[1]);
		EXPECT_EQ(H, w2->st->shape[0]);
		/* offsets: gate_up base + (3 * 2I + I) * H * 2 bytes */
		snprintf(name, sizeof(name), "layers.%u.ffn.experts.0.w1.weight", L);
		const struct dsv4_ckpt_tensor *w1_0 = dsv4_ckpt_find(ck, name);

		ASSERT_NE(NULL, w1_0);
		EXPECT_EQ(w1_0->st->offset + (3 * 2 * I + I) * H * 2, w3->st->offset);
		EXPECT_EQ(w1_0->file, w3->file);
	}
	EXPECT_NE(NULL, dsv4_ckpt_find(ck, "embed.weight"));
	EXPECT_STREQ("model.layers.1.self_attn.q_a_proj.weight_scale_inv",
		     dsv4_ckpt_find(ck, "layers.1.attn.wq_a.scale")->stored_name);
	dsv4_ckpt_close(ck);

	/* A stacked tensor with the wrong expert count is refused by name. */
	for (size_t i = 0; i < n; i++)
		if (strstr(s[i].name, "layers.2.mlp.experts.down_proj"))
			s[i].shape[0] = c.n_routed_experts - 1;
	ASSERT_EQ(0, write_single(self->dir, s, n));
	EXPECT_EQ(-EINVAL, open_err(self->dir, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "model.layers.2.mlp.experts.down_proj")) TH_LOG("%s", err);
	free(s);
}

/* The release's HF config.json has no expert_dtype: the loader looks. */
TEST_F(ckpt, expert_dtype_read_from_weights)
{
	char path[128], err[512] = "";
	json_t *cj = json_load_file(TINY, 0, NULL);
	struct dsv4_ckpt *ck;

	ASSERT_EQ(0, json_object_del(cj, "expert_dtype"));
	snprintf(path, sizeof(path), "%s/config.json", self->dir);
	ASSERT_EQ(0, json_dump_file(cj, path, 0));
	json_decref(cj);
	ASSERT_EQ(0, write_single(self->dir, self->specs, self->n));	/* FP4 experts */
	ASSERT_EQ(0, dsv4_ckpt_open(self->dir, &ck, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(0, ck->cfg.expert_dtype_given);
	EXPECT_EQ(DSV4_EXPERT_FP4, ck->cfg.expert_dtype);
	dsv4_ckpt_close(ck);
}

TEST(writer_refuses_wrong_byte_counts)
{
	struct dsv4_tensor_spec s[2] = {
		{ "a", DSV4_DT_F32, 1, { 4 } }, { "b", DSV4_DT_BF16, 2, { 2, 2 } },
	};
	struct dsv4_st_writer *w;
	char err[256], path[] = "/tmp/dsv4-w-XXXXXX";
	uint8_t buf[32] = { 0 };
	int fd = mkstemp(path);

	close(fd);
	ASSERT_EQ(0, dsv4_st_writer_open(path, s, 2, &w, err, sizeof(err)));
	EXPECT_EQ(0, dsv4_st_writer_write(w, buf, 16));
	EXPECT_EQ(-EOVERFLOW, dsv4_st_writer_write(w, buf, 9));
	EXPECT_EQ(-EOVERFLOW, dsv4_st_writer_close(w, err, sizeof(err)));
	EXPECT_NE(0, access(path, F_OK));	/* removed, never left lying */
	ASSERT_EQ(0, dsv4_st_writer_open(path, s, 2, &w, err, sizeof(err)));
	EXPECT_EQ(0, dsv4_st_writer_write(w, buf, 16));
	EXPECT_EQ(-EINVAL, dsv4_st_writer_close(w, err, sizeof(err)));	/* short */
	EXPECT_NE(NULL, strstr(err, "16 data bytes written, header promised 24"));
	s[1] = s[0];
	EXPECT_EQ(-EINVAL, dsv4_st_writer_open(path, s, 2, &w, err, sizeof(err)));	/* dup */
}

TEST_HARNESS_MAIN
