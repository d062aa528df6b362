// SPDX-License-Identifier: MIT
/*
 * The spill tier of the compressed KV: CSA main entries (the one part of
 * the KV that grows with every 4 tokens and is read only through the
 * indexer's top-k) live in fixed-size blocks of KV_SPILL memory from the
 * memory provider (kmod regions, or the host compatibility provider).
 * Blocks come from a free list shared by every sequence of the model;
 * each sequence keeps a block table per layer and gives its blocks back
 * when it is reset or freed.  The pool grows by chunks, before a pass
 * starts, so a pass never fails half way for want of a block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "engine.h"

#define CHUNK_BLOCKS 256

struct kv_pool {
	struct dsv4_mem *mem;
	uint32_t block_bytes;
	struct dsv4_buf **chunks;
	uint32_t n_chunks;
	uint32_t *free_list, n_free, n_blocks;
};

int kv_pool_open(const struct dsv4_mem_options *mo, uint32_t block_bytes, struct kv_pool **out,
		 char *err, size_t errlen)
{
	struct kv_pool *p = calloc(1, sizeof(*p));
	int ret;

	if (!p)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	p->block_bytes = (block_bytes + 4095) & ~4095u;
	ret = dsv4_mem_open(mo, &p->mem, err, errlen);
	if (ret) {
		free(p);
		return ret;
	}
	*out = p;
	return 0;
}

void kv_pool_close(struct kv_pool *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->n_chunks; i++)
		dsv4_mem_free(p->chunks[i]);
	free(p->chunks);
	free(p->free_list);
	dsv4_mem_close(p->mem);
	free(p);
}

/* At least @n free blocks (0 or -ENOMEM). */
int kv_pool_reserve(struct kv_pool *p, uint32_t n)
{
	while (p->n_free < n) {
		struct dsv4_buf **c = realloc(p->chunks, (p->n_chunks + 1) * sizeof(*c));
		uint32_t *fl;
		char err[128];

		if (!c)
			return -ENOMEM;
		p->chunks = c;
		fl = realloc(p->free_list, (p->n_blocks + CHUNK_BLOCKS) * sizeof(*fl));
		if (!fl)
			return -ENOMEM;
		p->free_list = fl;
		if (dsv4_mem_alloc(p->mem, (uint64_t)CHUNK_BLOCKS * p->block_bytes, DSV4_KIND_KV_SPILL,
				   DSV4_NUMA_LOCAL, -1, &p->chunks[p->n_chunks], err, sizeof(err)))
			return -ENOMEM;
		p->n_chunks++;
		for (uint32_t i = 0; i < CHUNK_BLOCKS; i++)
			p->free_list[p->n_free++] = p->n_blocks + CHUNK_BLOCKS - 1 - i;
		p->n_blocks += CHUNK_BLOCKS;
	}
	return 0;
}

uint32_t kv_pool_block_bytes(const struct kv_pool *p)
{
	return p->block_bytes;
}

uint32_t kv_pool_get(struct kv_pool *p)
{
	return p->free_list[--p->n_free];	/* kv_pool_reserve() made room */
}

void kv_pool_put(struct kv_pool *p, uint32_t block)
{
	p->free_list[p->n_free++] = block;
}

uint8_t *kv_pool_addr(const struct kv_pool *p, uint32_t block)
{
	return (uint8_t *)p->chunks[block / CHUNK_BLOCKS]->addr +
	       (size_t)(block % CHUNK_BLOCKS) * p->block_bytes;
}

void kv_pool_stats(const struct kv_pool *p, struct dsv4_kv_pool_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!p)
		return;
	st->provider = dsv4_mem_provider_name(p->mem);
	st->block_bytes = p->block_bytes;
	st->blocks = p->n_blocks;
	st->free_blocks = p->n_free;
}
