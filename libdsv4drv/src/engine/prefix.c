// SPDX-License-Identifier: MIT
/*
 * Prefix cache: a prompt is cut into 128-token blocks (a multiple of both
 * compression ratios, so no compressor window straddles a boundary); the
 * hash of block i chains the hash of block i-1 with the block's tokens
 * (XXH3-128).  After a prefill, the sequence state at the prompt's last
 * block boundary before its end is saved: window rings, compressor states,
 * emitted entries and keys.  A later prompt that starts with the same
 * blocks resumes from the longest saved boundary and computes only the
 * rest.  Snapshots live in DRAM (LRU within a byte budget) and, with a
 * directory, on disk (oldest files removed past a byte budget), where
 * they survive restarts.  Files carry a header with the model's identity
 * (config, shard sizes, sampled weight bytes, numerics, KV formats) and a
 * checksum of the payload; a corrupt or foreign file is ignored.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "../internal.h"
#include "engine.h"
#include "../gpu/gpu.h"

#define MAGIC "DSV4PFX1"
#define BLOCK DSV4_PREFIX_BLOCK

struct snap_hdr {
	char magic[8];
	uint32_t version, n_tokens;
	uint64_t model_id;
	uint64_t hash_lo, hash_hi;	/* the prefix's chained hash */
	uint64_t payload_len;
	uint64_t payload_sum;		/* XXH3-64 of the payload */
};

struct dram_snap {
	XXH128_hash_t hash;
	uint8_t *buf;			/* header + payload */
	uint64_t len, tick;
};

struct dsv4_prefix_cache {
	struct dsv4_model *m;
	struct dsv4_prefix_options o;
	char *dir;
	uint64_t model_id, tick;
	struct dram_snap *snaps;
	uint32_t n_snaps, cap;
	struct dsv4_prefix_stats st;
};

/* ---- identity ---- */

static uint64_t model_identity(const struct dsv4_model *m)
{
	XXH3_state_t *h = XXH3_createState();
	uint64_t id;

	XXH3_64bits_reset(h);
	XXH3_64bits_update(h, &m->cfg, sizeof(m->cfg));
	XXH3_64bits_update(h, &m->opt.numerics, sizeof(m->opt.numerics));
	XXH3_64bits_update(h, &m->opt.flags, sizeof(m->opt.flags));
	XXH3_64bits_update(h, &m->kv_main, sizeof(m->kv_main));
	XXH3_64bits_update(h, &m->kv_index, sizeof(m->kv_index));
	for (size_t i = 0; i < m->ck->n_shards; i++) {
		const struct dsv4_st_file *f = m->ck->shards[i];

		XXH3_64bits_update(h, &f->size, sizeof(f->size));
		/* 16 samples of 4 KiB across the shard: weights tell models apart */
		for (int k = 0; k < 16; k++) {
			uint64_t at = f->size / 16 * k, len = f->size - at < 4096 ? f->size - at : 4096;

			XXH3_64bits_update(h, (const uint8_t *)f->map + at, len);
		}
	}
	id = XXH3_64bits_digest(h);
	XXH3_freeState(h);
	return id;
}

static XXH128_hash_t chain(XXH128_hash_t prev, const int32_t *tok)
{
	uint8_t buf[16 + BLOCK * 4];

	memcpy(buf, &prev, 16);
	memcpy(buf + 16, tok, BLOCK * 4);
	return XXH3_128bits(buf, sizeof(buf));
}

/* ---- snapshots ---- */

static size_t state_floats(const struct cmp_state *st, uint32_t ratio)
{
	uint32_t co = ratio == 4 ? 2 : 1;

	return (size_t)co * ratio * co * st->dim;
}

/* A sequence's state into @out, or (out NULL) its size. */
static uint64_t payload(const struct dsv4_seq *s, uint8_t *out)
{
	const struct dsv4_config *c = &s->m->cfg;
	uint64_t at = 0;

#define PUT(ptr, len) do { if (out) memcpy(out + at, (ptr), (len)); at += (len); } while (0)
	for (uint32_t L = 0; L < c->n_layers; L++) {
		const struct seq_layer *sl = &s->layers[L];
		uint32_t r = c->compress_ratios[L];

		PUT(sl->ring, (size_t)c->window_size * c->head_dim * sizeof(float));
		for (int k = 0; k < (r == 4 ? 2 : r ? 1 : 0); k++) {
			const struct cmp_state *st = k ? &sl->icmp : &sl->cmp;

			PUT(st->kv, state_floats(st, r) * sizeof(float));
			PUT(st->score, state_floats(st, r) * sizeof(float));
			PUT(&st->n_entries, sizeof(st->n_entries));
			for (uint32_t w = 0; w < st->n_entries; w++)
				PUT(cmp_entry_addr(st, w), st->stride);
		}
	}
#undef PUT
	return at;
}

static int restore(struct dsv4_seq *s, const uint8_t *in, uint64_t len, uint32_t pos)
{
	const struct dsv4_config *c = &s->m->cfg;
	uint64_t at = 0;

#define GET(ptr, n) do { if (at + (n) > len) return -EINVAL; memcpy((ptr), in + at, (n)); at += (n); } while (0)
	for (uint32_t L = 0; L < c->n_layers; L++) {
		struct seq_layer *sl = &s->layers[L];
		uint32_t r = c->compress_ratios[L];

		GET(sl->ring, (size_t)c->window_size * c->head_dim * sizeof(float));
		for (int k = 0; k < (r == 4 ? 2 : r ? 1 : 0); k++) {
			struct cmp_state *st = k ? &sl->icmp : &sl->cmp;
			uint32_t n;

			GET(st->kv, state_floats(st, r) * sizeof(float));
			GET(st->score, state_floats(st, r) * sizeof(float));
			GET(&n, sizeof(n));
			if (n != pos / r || cmp_state_grow(st, r, pos))
				return -EINVAL;
			for (uint32_t w = 0; w < n; w++)
				GET(cmp_entry_addr(st, w), st->stride);
			st->n_entries = n;
		}
	}
#undef GET
	if (at != len)
		return -EINVAL;
	s->pos = pos;
	return 0;
}

static uint8_t *make_snapshot(struct dsv4_prefix_cache *pc, const struct dsv4_seq *s,
			      XXH128_hash_t hash, uint64_t *len)
{
	uint64_t plen = payload(s, NULL);
	struct snap_hdr h = { .version = 1, .n_tokens = s->pos, .model_id = pc->model_id,
			      .hash_lo = hash.low64, .hash_hi = hash.high64, .payload_len = plen };
	uint8_t *buf = malloc(sizeof(h) + plen);

	if (!buf)
		return NULL;
	memcpy(h.magic, MAGIC, 8);
	payload(s, buf + sizeof(h));
	h.payload_sum = XXH3_64bits(buf + sizeof(h), plen);
	memcpy(buf, &h, sizeof(h));
	*len = sizeof(h) + plen;
	return buf;
}

/* A snapshot buffer fit for this model and prefix? */
static int valid(const struct dsv4_prefix_cache *pc, const uint8_t *buf, uint64_t len,
		 XXH128_hash_t hash, uint32_t pos)
{
	struct snap_hdr h;

	if (len < sizeof(h))
		return 0;
	memcpy(&h, buf, sizeof(h));
	return !memcmp(h.magic, MAGIC, 8) && h.version == 1 && h.model_id == pc->model_id &&
	       h.hash_lo == hash.low64 && h.hash_hi == hash.high64 && h.n_tokens == pos &&
	       h.payload_len == len - sizeof(h) &&
	       XXH3_64bits(buf + sizeof(h), h.payload_len) == h.payload_sum;
}

/* ---- DRAM tier ---- */

static void dram_trim(struct dsv4_prefix_cache *pc)
{
	while (pc->st.dram_bytes > pc->o.dram_bytes && pc->n_snaps) {
		uint32_t lru = 0;

		for (uint32_t i = 1; i < pc->n_snaps; i++)
			if (pc->snaps[i].tick < pc->snaps[lru].tick)
				lru = i;
		pc->st.dram_bytes -= pc->snaps[lru].len;
		free(pc->snaps[lru].buf);
		pc->snaps[lru] = pc->snaps[--pc->n_snaps];
	}
	pc->st.dram_entries = pc->n_snaps;
}

static void dram_put(struct dsv4_prefix_cache *pc, XXH128_hash_t hash, uint8_t *buf, uint64_t len)
{
	for (uint32_t i = 0; i < pc->n_snaps; i++)
		if (XXH128_isEqual(pc->snaps[i].hash, hash)) {
			free(buf);	/* already there */
			pc->snaps[i].tick = ++pc->tick;
			return;
		}
	if (len > pc->o.dram_bytes) {
		free(buf);
		return;
	}
	if (pc->n_snaps == pc->cap) {
		uint32_t cap = pc->cap ? 2 * pc->cap : 16;
		struct dram_snap *n = realloc(pc->snaps, cap * sizeof(*n));

		if (!n) {
			free(buf);
			return;
		}
		pc->snaps = n;
		pc->cap = cap;
	}
	pc->snaps[pc->n_snaps++] = (struct dram_snap){ hash, buf, len, ++pc->tick };
	pc->st.dram_bytes += len;
	dram_trim(pc);
}

/* ---- disk tier ---- */

static void file_name(const struct dsv4_prefix_cache *pc, XXH128_hash_t hash, char *out, size_t n)
{
	snprintf(out, n, "%s/%016llx-%016llx%016llx.kv", pc->dir, (unsigned long long)pc->model_id,
		 (unsigned long long)hash.high64, (unsigned long long)hash.low64);
}

static void disk_trim(struct dsv4_prefix_cache *pc)
{
	for (;;) {
		DIR *d = opendir(pc->dir);
		struct dirent *de;
		uint64_t total = 0, files = 0;
		time_t oldest = 0;
		char victim[4352] = "", path[4352];

		if (!d)
			return;
		while ((de = readdir(d))) {
			struct stat stt;
			size_t l = strlen(de->d_name);

			if (l < 4 || strcmp(de->d_name + l - 3, ".kv"))
				continue;
			snprintf(path, sizeof(path), "%s/%s", pc->dir, de->d_name);
			if (stat(path, &stt))
				continue;
			total += (uint64_t)stt.st_size;
			files++;
			if (!victim[0] || stt.st_mtime < oldest) {
				oldest = stt.st_mtime;
				snprintf(victim, sizeof(victim), "%s", path);
			}
		}
		closedir(d);
		pc->st.disk_bytes = total;
		pc->st.disk_files = files;
		if (total <= pc->o.disk_bytes || !victim[0])
			return;
		unlink(victim);
	}
}

static void disk_put(struct dsv4_prefix_cache *pc, XXH128_hash_t hash, const uint8_t *buf,
		     uint64_t len)
{
	char path[4352], tmp[4400];
	int fd;

	if (!pc->dir || len > pc->o.disk_bytes)
		return;
	file_name(pc, hash, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, buf, len) != (ssize_t)len || fsync(fd)) {
		close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	if (rename(tmp, path))	/* whole files only: a crash leaves a .tmp */
		unlink(tmp);
	disk_trim(pc);
}

static uint8_t *disk_get(struct dsv4_prefix_cache *pc, XXH128_hash_t hash, uint32_t pos,
			 uint64_t *len)
{
	char path[4352];
	struct stat stt;
	uint8_t *buf;
	int fd;

	if (!pc->dir)
		return NULL;
	file_name(pc, hash, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &stt) || stt.st_size < (off_t)sizeof(struct snap_hdr) ||
	    !(buf = malloc((size_t)stt.st_size))) {
		close(fd);
		pc->st.disk_rejected++;
		return NULL;
	}
	if (pread(fd, buf, (size_t)stt.st_size, 0) != stt.st_size ||
	    !valid(pc, buf, (uint64_t)stt.st_size, hash, pos)) {
		close(fd);
		free(buf);
		pc->st.disk_rejected++;	/* corrupt, truncated or foreign: ignored */
		return NULL;
	}
	close(fd);
	*len = (uint64_t)stt.st_size;
	return buf;
}

/* ---- API ---- */

int dsv4_prefix_open(struct dsv4_model *m, const struct dsv4_prefix_options *o,
		     struct dsv4_prefix_cache **out, char *err, size_t errlen)
{
	struct dsv4_prefix_cache *pc = calloc(1, sizeof(*pc));

	if (!pc)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	pc->m = m;
	if (o)
		pc->o = *o;
	if (o && o->disk_dir) {
		if (mkdir(o->disk_dir, 0700) && errno != EEXIST) {
			int e = errno;

			free(pc);
			return dsv4_errf(err, errlen, -e, "%s: %s", o->disk_dir, strerror(e));
		}
		pc->dir = strdup(o->disk_dir);
		if (!pc->dir) {
			free(pc);
			return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
		}
	}
	pc->model_id = model_identity(m);
	if (pc->dir)
		disk_trim(pc);
	*out = pc;
	return 0;
}

void dsv4_prefix_close(struct dsv4_prefix_cache *pc)
{
	if (!pc)
		return;
	for (uint32_t i = 0; i < pc->n_snaps; i++)
		free(pc->snaps[i].buf);
	free(pc->snaps);
	free(pc->dir);
	free(pc);
}

void dsv4_prefix_get_stats(const struct dsv4_prefix_cache *pc, struct dsv4_prefix_stats *st)
{
	*st = pc->st;
}

/* Chained block hashes h[0..nb] of tokens[0 .. nb*BLOCK); malloc'd. */
static XXH128_hash_t *block_hashes(const int32_t *tokens, uint32_t nb)
{
	XXH128_hash_t *h = malloc(((size_t)nb + 1) * sizeof(*h));

	if (!h)
		return NULL;
	h[0] = (XXH128_hash_t){ 0x64737634, 0 };
	for (uint32_t b = 1; b <= nb; b++)
		h[b] = chain(h[b - 1], tokens + (size_t)(b - 1) * BLOCK);
	return h;
}

int dsv4_prefix_restore(struct dsv4_prefix_cache *pc, struct dsv4_seq *s, const int32_t *tokens,
			uint32_t n, uint32_t *cached, char *err, size_t errlen)
{
	uint32_t nb = n ? (n - 1) / BLOCK : 0;	/* boundaries before the last token */
	XXH128_hash_t *h;
	uint32_t from = 0;

	*cached = 0;
	if (!pc || !s || s->m != pc->m || s->pos)
		return dsv4_errf(err, errlen, -EINVAL, "prefix restore needs a fresh sequence of this model");
	if (!tokens || n < 2 || n > s->max_len)
		return 0;
	h = block_hashes(tokens, nb);
	if (!h)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	pc->st.lookups++;
	/* the longest saved boundary, DRAM first, then disk */
	for (uint32_t b = nb; b >= 1 && !from; b--) {
		uint8_t *buf = NULL;
		uint64_t len = 0;
		int own = 0;

		for (uint32_t i = 0; i < pc->n_snaps; i++)
			if (XXH128_isEqual(pc->snaps[i].hash, h[b]) &&
			    valid(pc, pc->snaps[i].buf, pc->snaps[i].len, h[b], b * BLOCK)) {
				buf = pc->snaps[i].buf;
				len = pc->snaps[i].len;
				pc->snaps[i].tick = ++pc->tick;
				break;
			}
		if (!buf) {
			buf = disk_get(pc, h[b], b * BLOCK, &len);
			own = buf != NULL;
		}
		/* the CUDA backend: the restored state goes on to the GPU */
		if (buf && !restore(s, buf + sizeof(struct snap_hdr), len - sizeof(struct snap_hdr),
				    b * BLOCK) && !gpu_seq_sync(s, 0)) {
			from = b * BLOCK;
			if (own)	/* promote to DRAM */
				dram_put(pc, h[b], buf, len);
		} else {
			if (buf)
				dsv4_seq_reset(s);	/* a half restore never stays */
			if (own)
				free(buf);
		}
	}
	if (from) {
		pc->st.hits++;
		pc->st.tokens_reused += from;
	}
	*cached = from;
	free(h);
	return 0;
}

uint32_t dsv4_prefix_save_point(uint32_t n)
{
	return n ? (n - 1) / BLOCK * BLOCK : 0;
}

int dsv4_prefix_save(struct dsv4_prefix_cache *pc, struct dsv4_seq *s, const int32_t *tokens,
		     char *err, size_t errlen)
{
	uint32_t nb = s->pos / BLOCK;
	XXH128_hash_t *h;
	uint64_t len;
	uint8_t *buf;

	if (!pc || s->m != pc->m || !nb || s->pos % BLOCK)
		return dsv4_errf(err, errlen, -EINVAL, "prefix save needs a sequence at a block boundary");
	if (gpu_seq_sync(s, 1))	/* the CUDA backend: the state comes from the GPU */
		return dsv4_errf(err, errlen, -EIO, "prefix save: cannot read the GPU state");
	h = block_hashes(tokens, nb);
	if (!h)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	buf = make_snapshot(pc, s, h[nb], &len);
	if (buf) {
		disk_put(pc, h[nb], buf, len);
		dram_put(pc, h[nb], buf, len);
		pc->st.saved++;
	}
	free(h);
	return 0;
}

int dsv4_prefix_prefill(struct dsv4_prefix_cache *pc, struct dsv4_seq *s, const int32_t *tokens,
			uint32_t n, enum dsv4_logits want, float *logits, uint32_t *cached,
			char *err, size_t errlen)
{
	uint32_t save_at = dsv4_prefix_save_point(n);
	uint32_t from;
	int ret;

	*cached = 0;
	if (!pc || !s || s->m != pc->m || s->pos)
		return dsv4_errf(err, errlen, -EINVAL, "prefix prefill needs a fresh sequence of this model");
	if (want == DSV4_LOGITS_ALL)
		return dsv4_errf(err, errlen, -EINVAL, "prefix prefill gives the last logits only");
	if (!tokens || !n || n > s->max_len)
		return dsv4_eval(s, tokens, n, want, logits, err, errlen);	/* its errors */
	ret = dsv4_prefix_restore(pc, s, tokens, n, cached, err, errlen);
	if (ret)
		return ret;
	from = *cached;
	/* compute to the last boundary, save it, then the rest */
	if (save_at > from) {
		ret = dsv4_eval(s, tokens + from, save_at - from, DSV4_LOGITS_NONE, NULL, err, errlen);
		if (!ret)
			dsv4_prefix_save(pc, s, tokens, NULL, 0);
	}
	if (!ret)
		ret = dsv4_eval(s, tokens + save_at, n - save_at, want, logits, err, errlen);
	return ret;
}
