// SPDX-License-Identifier: MIT
/*
 * dsv4-ckpt: opens a checkpoint directory the way the engine does and
 * reports what it holds, or exactly why it cannot be used.
 *   dsv4-ckpt DIR            summary; exit 1 with the error otherwise
 *   dsv4-ckpt --list DIR     also every tensor: name dtype shape file offset
 */
#include <stdio.h>
#include <string.h>

#include "dsv4drv.h"

static void print_tensor(const struct dsv4_ckpt_tensor *t)
{
	const char *file = strrchr(t->file->path, '/');

	printf("%-56s %-8s [", t->spec ? t->spec->name : t->stored_name,
	       dsv4_dtype_name(t->st->dtype));
	for (uint32_t d = 0; d < t->st->ndim; d++)
		printf("%s%llu", d ? ", " : "", (unsigned long long)t->st->shape[d]);
	printf("] %s @%llu\n", file ? file + 1 : t->file->path, (unsigned long long)t->st->offset);
}

int main(int argc, char **argv)
{
	int list = argc == 3 && !strcmp(argv[1], "--list");
	const char *dir = argv[argc - 1];
	struct dsv4_ckpt *ck;
	uint64_t bytes = 0;
	char err[1024];
	int ret;

	if (argc != 2 + list || dir[0] == '-') {
		fputs("usage: dsv4-ckpt [--list] CHECKPOINT_DIR\n", stderr);
		return 2;
	}
	ret = dsv4_ckpt_open(dir, &ck, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "dsv4-ckpt: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < ck->n_specs; i++)
		bytes += ck->tensors[i].st->nbytes;
	printf("%s: DeepSeek V4, %u layers, dim %u, %u experts (top %u), %s experts, %s names\n",
	       dir, ck->cfg.n_layers, ck->cfg.dim, ck->cfg.n_routed_experts,
	       ck->cfg.n_activated_experts,
	       ck->cfg.expert_dtype == DSV4_EXPERT_FP4 ? "FP4" :
	       ck->cfg.expert_dtype == DSV4_EXPERT_FP8 ? "FP8" : "BF16",
	       ck->hf_names ? "HF-transformers" : "official");
	printf("%zu tensors checked (%.3f GB) in %zu file%s; %zu extra tensor%s not used",
	       ck->n_specs, bytes / 1e9, ck->n_shards, ck->n_shards == 1 ? "" : "s",
	       ck->n_extras, ck->n_extras == 1 ? "" : "s");
	if (ck->n_extras)
		printf(" (first: %s)", ck->extras[0].stored_name);
	printf("\n");
	if (list) {
		for (size_t i = 0; i < ck->n_specs; i++)
			print_tensor(&ck->tensors[i]);
		for (size_t i = 0; i < ck->n_extras; i++)
			print_tensor(&ck->extras[i]);
	}
	dsv4_ckpt_close(ck);
	return 0;
}
