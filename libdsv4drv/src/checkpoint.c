// SPDX-License-Identifier: MIT
/*
 * A checkpoint directory as DeepSeek publishes it: config.json, then
 * model.safetensors.index.json + shards, or a single model.safetensors.
 * Tensor names may be the release's own or HF-transformers' (mapped by
 * dsv4_hf_name_to_official()); every tensor of the schema must be present
 * with the exact dtype and shape.  Tensors outside the schema (MTP blocks,
 * DSpark) are kept as extras and reported, not refused.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "internal.h"

#define MAX_SHARDS 4096

static int spec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dsv4_tensor_spec *)a)->name,
		      ((const struct dsv4_tensor_spec *)b)->name);
}

static const struct dsv4_tensor_spec *spec_find(const struct dsv4_ckpt *ck, const char *name)
{
	struct dsv4_tensor_spec key;

	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, ck->specs, ck->n_specs, sizeof(key), spec_cmp);
}

static int open_shard(struct dsv4_ckpt *ck, const char *file, struct dsv4_st_file **out,
		      char *err, size_t errlen)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < ck->n_shards; i++) {
		const char *base = strrchr(ck->shards[i]->path, '/');

		if (!strcmp(base ? base + 1 : ck->shards[i]->path, file)) {
			*out = ck->shards[i];
			return 0;
		}
	}
	if (strchr(file, '/') || !strcmp(file, "..") || !file[0])
		return dsv4_errf(err, errlen, -EINVAL, "index names a shard outside the directory: '%s'", file);
	if (ck->n_shards == MAX_SHARDS)
		return dsv4_errf(err, errlen, -E2BIG, "more than %d shards", MAX_SHARDS);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", ck->dir, file) >= sizeof(path))
		return dsv4_errf(err, errlen, -ENAMETOOLONG, "shard path too long: %s", file);
	if (!ck->shards) {
		ck->shards = calloc(MAX_SHARDS, sizeof(*ck->shards));
		if (!ck->shards)
			return -ENOMEM;
	}
	int ret = dsv4_st_open(path, out, err, errlen);

	if (!ret)
		ck->shards[ck->n_shards++] = *out;
	return ret;
}

static int place_as(struct dsv4_ckpt *ck, struct dsv4_st_file *f, const struct dsv4_st_tensor *st,
		    const char *name, char *err, size_t errlen);

/*
 * HF stacks routed experts: gate_up_proj [E, 2I, H] (gate rows first) and
 * down_proj [E, H, I], scales as *_scale_inv alike.  Each expert's slice is
 * contiguous, so it becomes a view: a tensor with its own offset and shape
 * inside the same mapping, still readable in place or with io_uring.
 */
static int place_stacked(struct dsv4_ckpt *ck, struct dsv4_st_file *f,
			 const struct dsv4_st_tensor *st, unsigned int layer,
			 const char *what, char *err, size_t errlen)
{
	int gate_up = !strncmp(what, "gate_up_proj", 12);
	int scale = strstr(what, "_scale_inv") != NULL;
	uint32_t E = ck->cfg.n_routed_experts, per = gate_up ? 2 : 1;
	struct dsv4_st_tensor *views, **blocks;
	uint64_t rows, cols, elt = dsv4_dtype_size(st->dtype);
	int ret = 0;

	if (st->ndim != 3 || st->shape[0] != E || (gate_up && st->shape[1] % 2))
		return dsv4_errf(err, errlen, -EINVAL,
				 "%s (%s): expected [%u, %s, *] stacked experts", st->name, f->path, E,
				 gate_up ? "2 x rows" : "rows");
	rows = gate_up ? st->shape[1] / 2 : st->shape[1];
	cols = st->shape[2];
	views = calloc((size_t)E * per, sizeof(*views));
	blocks = realloc(ck->view_blocks, (ck->n_view_blocks + 1) * sizeof(*blocks));
	if (!views || !blocks) {
		free(views);
		if (blocks)
			ck->view_blocks = blocks;
		return -ENOMEM;
	}
	ck->view_blocks = blocks;
	ck->view_blocks[ck->n_view_blocks++] = views;
	for (uint32_t e = 0; e < E && !ret; e++) {
		for (uint32_t k = 0; k < per && !ret; k++) {
			struct dsv4_st_tensor *v = &views[e * per + k];
			char name[128];

			*v = *st;
			v->ndim = 2;
			v->shape[0] = rows;
			v->shape[1] = cols;
			v->count = rows * cols;
			v->nbytes = v->count * elt;
			v->offset = st->offset + ((uint64_t)e * per + k) * v->nbytes;
			snprintf(name, sizeof(name), "layers.%u.ffn.experts.%u.%s%s", layer, e,
				 gate_up ? (k ? "w3" : "w1") : "w2", scale ? ".scale" : ".weight");
			ret = place_as(ck, f, v, name, err, errlen);
		}
	}
	ck->hf_names = 1;
	return ret;
}

/* Records stored tensor @st of @f under its official name. */
static int place(struct dsv4_ckpt *ck, struct dsv4_st_file *f, const struct dsv4_st_tensor *st,
		 char *err, size_t errlen)
{
	char official[128], what[32];
	unsigned int layer;
	int used = 0;

	if (sscanf(st->name, "model.layers.%u.mlp.experts.%31s%n", &layer, what, &used) == 2 &&
	    !st->name[used] && (!strcmp(what, "gate_up_proj") || !strcmp(what, "down_proj") ||
				!strcmp(what, "gate_up_proj_scale_inv") ||
				!strcmp(what, "down_proj_scale_inv")))
		return place_stacked(ck, f, st, layer, what, err, errlen);
	if (!dsv4_hf_name_to_official(st->name, official, sizeof(official))) {
		ck->hf_names = 1;
		return place_as(ck, f, st, official, err, errlen);
	}
	return place_as(ck, f, st, st->name, err, errlen);
}

static int place_as(struct dsv4_ckpt *ck, struct dsv4_st_file *f, const struct dsv4_st_tensor *st,
		    const char *name, char *err, size_t errlen)
{
	const struct dsv4_tensor_spec *spec = spec_find(ck, name);
	struct dsv4_ckpt_tensor *slot;

	if (!spec) {
		struct dsv4_ckpt_tensor *x = realloc(ck->extras, (ck->n_extras + 1) * sizeof(*x));

		if (!x)
			return -ENOMEM;
		ck->extras = x;
		x[ck->n_extras++] = (struct dsv4_ckpt_tensor){ NULL, st->name, f, st };
		return 0;
	}
	slot = &ck->tensors[spec - ck->specs];
	if (slot->st)
		return dsv4_errf(err, errlen, -EINVAL, "%s: stored twice (as '%s' in %s and '%s' in %s)",
				 spec->name, slot->stored_name, slot->file->path, st->name, f->path);
	*slot = (struct dsv4_ckpt_tensor){ spec, st->name, f, st };
	return 0;
}

struct stored {
	struct dsv4_st_file *file;
	const struct dsv4_st_tensor *st;
};

struct stored_list {
	struct stored *v;
	size_t n;
};

static int stored_add(struct stored_list *l, struct dsv4_st_file *f, const struct dsv4_st_tensor *st)
{
	struct stored *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	l->v = v;
	l->v[l->n++] = (struct stored){ f, st };
	return 0;
}

static int load_index(struct dsv4_ckpt *ck, const char *index_path, struct stored_list *out,
		      char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &jerr), *map, *v;
	const char *name;
	int ret = 0;

	if (!root)
		return dsv4_errf(err, errlen, -EINVAL, "%s: %s (line %d)", index_path, jerr.text, jerr.line);
	map = json_object_get(root, "weight_map");
	if (!json_is_object(map)) {
		ret = dsv4_errf(err, errlen, -EINVAL, "%s: no weight_map object", index_path);
		goto out;
	}
	json_object_foreach(map, name, v) {
		struct dsv4_st_file *f;
		const struct dsv4_st_tensor *st;

		if (!json_is_string(v)) {
			ret = dsv4_errf(err, errlen, -EINVAL, "%s: weight_map['%s'] is not a file name",
					index_path, name);
			goto out;
		}
		ret = open_shard(ck, json_string_value(v), &f, err, errlen);
		if (ret)
			goto out;
		st = dsv4_st_find(&f->header, name);
		if (!st) {
			ret = dsv4_errf(err, errlen, -ENOENT, "%s: index puts '%s' in %s, which lacks it",
					index_path, name, f->path);
			goto out;
		}
		ret = stored_add(out, f, st);
		if (ret)
			goto out;
	}
	/* A tensor in a shard that the index does not list is an error. */
	for (size_t s = 0; s < ck->n_shards; s++) {
		struct dsv4_st_file *f = ck->shards[s];

		for (size_t i = 0; i < f->header.count; i++)
			if (!json_object_get(map, f->header.tensors[i].name)) {
				ret = dsv4_errf(err, errlen, -EINVAL, "%s: '%s' is in %s but not in the index",
						index_path, f->header.tensors[i].name, f->path);
				goto out;
			}
	}
out:
	json_decref(root);
	return ret;
}

/* The release's HF config.json does not say how experts are stored: look. */
static void probe_expert_dtype(struct dsv4_config *cfg, const struct stored_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct dsv4_st_tensor *st = l->v[i].st;

		if (strcmp(st->name, "layers.0.ffn.experts.0.w1.weight") &&
		    strcmp(st->name, "model.layers.0.mlp.experts.gate_up_proj"))
			continue;
		if (st->dtype == DSV4_DT_I8 || st->dtype == DSV4_DT_U8)
			cfg->expert_dtype = DSV4_EXPERT_FP4;
		else if (st->dtype == DSV4_DT_F8_E4M3)
			cfg->expert_dtype = DSV4_EXPERT_FP8;
		else if (st->dtype == DSV4_DT_BF16)
			cfg->expert_dtype = DSV4_EXPERT_BF16;
		return;
	}
}

static int shape_str(char *buf, size_t len, enum dsv4_dtype dt, uint32_t ndim, const uint64_t *shape)
{
	int n = snprintf(buf, len, "%s [", dsv4_dtype_name(dt));

	for (uint32_t i = 0; i < ndim && n > 0 && (size_t)n < len; i++)
		n += snprintf(buf + n, len - (size_t)n, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
	if (n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "]");
	return 0;
}

/* Presence, dtype and shape of every schema tensor. */
static int check_schema(const struct dsv4_ckpt *ck, char *err, size_t errlen)
{
	size_t missing = 0, bad = 0;
	char first[512] = "";

	for (size_t i = 0; i < ck->n_specs; i++) {
		const struct dsv4_tensor_spec *s = &ck->specs[i];
		const struct dsv4_ckpt_tensor *t = &ck->tensors[i];
		char want[96], got[96];
		int ok = 1;

		shape_str(want, sizeof(want), s->dtype, s->ndim, s->shape);
		if (!t->st) {
			if (!missing++ && !bad)
				snprintf(first, sizeof(first), "%s: missing (expected %s)", s->name, want);
			continue;
		}
		if (t->st->dtype != s->dtype || t->st->ndim != s->ndim)
			ok = 0;
		for (uint32_t d = 0; ok && d < s->ndim; d++)
			ok = t->st->shape[d] == s->shape[d];
		if (!ok) {
			shape_str(got, sizeof(got), t->st->dtype, t->st->ndim, t->st->shape);
			if (!bad++ && !missing)
				snprintf(first, sizeof(first), "%s ('%s' in %s): expected %s, found %s",
					 s->name, t->stored_name, t->file->path, want, got);
		}
	}
	if (missing || bad)
		return dsv4_errf(err, errlen, -EINVAL, "%s (%zu missing, %zu wrong dtype/shape)",
				 first, missing, bad);
	return 0;
}

int dsv4_ckpt_open(const char *dir, struct dsv4_ckpt **out, char *err, size_t errlen)
{
	struct stored_list stored = { 0 };
	struct dsv4_ckpt *ck;
	char path[PATH_MAX];
	int ret;

	*out = NULL;
	ck = calloc(1, sizeof(*ck));
	if (!ck || !(ck->dir = strdup(dir))) {
		free(ck);
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	ret = dsv4_config_load(path, &ck->cfg, err, errlen);
	if (ret)
		goto fail;

	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	if (!access(path, F_OK)) {
		ret = load_index(ck, path, &stored, err, errlen);
	} else {
		struct dsv4_st_file *f;

		ret = open_shard(ck, "model.safetensors", &f, err, errlen);
		for (size_t i = 0; !ret && i < f->header.count; i++)
			ret = stored_add(&stored, f, &f->header.tensors[i]);
	}
	if (ret)
		goto fail;
	if (!ck->cfg.expert_dtype_given)
		probe_expert_dtype(&ck->cfg, &stored);

	ret = dsv4_schema_build(&ck->cfg, &ck->specs, &ck->n_specs);
	if (ret)
		goto fail;
	qsort(ck->specs, ck->n_specs, sizeof(*ck->specs), spec_cmp);
	ck->tensors = calloc(ck->n_specs, sizeof(*ck->tensors));
	if (!ck->tensors) {
		ret = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; !ret && i < stored.n; i++)
		ret = place(ck, stored.v[i].file, stored.v[i].st, err, errlen);
	if (!ret)
		ret = check_schema(ck, err, errlen);
	if (ret)
		goto fail;
	free(stored.v);
	*out = ck;
	return 0;
fail:
	free(stored.v);
	dsv4_ckpt_close(ck);
	return ret;
}

void dsv4_ckpt_close(struct dsv4_ckpt *ck)
{
	if (!ck)
		return;
	for (size_t i = 0; i < ck->n_shards; i++)
		dsv4_st_close(ck->shards[i]);
	free(ck->shards);
	for (size_t i = 0; i < ck->n_view_blocks; i++)
		free(ck->view_blocks[i]);
	free(ck->view_blocks);
	free(ck->tensors);
	free(ck->extras);
	free(ck->specs);
	free(ck->dir);
	free(ck);
}

const struct dsv4_ckpt_tensor *dsv4_ckpt_find(const struct dsv4_ckpt *ck, const char *name)
{
	const struct dsv4_tensor_spec *s = spec_find(ck, name);

	return s && ck->tensors[s - ck->specs].st ? &ck->tensors[s - ck->specs] : NULL;
}
