// SPDX-License-Identifier: MIT
/*
 * Routed-expert streaming: a cache of expert slots in pinned memory (kind
 * EXPERT_STAGING, from the memory provider), filled from the checkpoint
 * shards with io_uring.
 *
 * Reads: each expert's tensors (w1/w2/w3 and their scales) are grouped
 * into windows of nearby file ranges, widened to 4 KiB so the shards can
 * be opened O_DIRECT (buffered where the filesystem refuses, e.g. tmpfs);
 * the tensor then starts inside its window, so nothing is copied.  The
 * cache is registered as io_uring fixed buffers where the kernel allows it
 * (in chunks of whole slots up to 1 GiB), else plain reads; without
 * io_uring, pread.
 *
 * Slots: per layer (an equal share each) once every layer can have two,
 * so a burst in one layer never evicts another layer's hot experts; else
 * one shared pool.
 *
 * Policy: segmented LRU.  A new expert enters the probation segment; a
 * second use promotes it to the protected segment (at most 3/4 of the
 * slots; its LRU end demotes back).  Victims come from probation first.
 * Routing is skewed and the same hot experts recur across tokens; a scan
 * of one-off experts (a prefill batch, a mispredicted prefetch) then
 * evicts only other one-off experts, not the hot set.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../internal.h"
#include "engine.h"

#define ALIGN 4096ull
#define MAX_T 6			/* w1, w2, w3 and their scales */
#define GAP (64ull << 10)	/* tensors closer than this share a window */
#define CHUNK (1ull << 30)	/* io_uring fixed buffers are at most 1 GiB */

struct win {
	uint32_t file;
	uint64_t start, len;	/* aligned file range */
	uint64_t need;		/* bytes from start that hold tensor data */
	uint64_t slot_off;	/* where the window lands in the slot */
};

struct expert_desc {
	uint32_t n_win;
	struct win win[MAX_T];
	uint64_t t_off[MAX_T];	/* each tensor's data offset in the slot */
	int has_scale;
};

enum { EMPTY, LOADING, READY };

struct slot {
	int32_t layer, expert;
	uint8_t state, seg, prefetched, failed;
	uint32_t pins, pending;
	uint64_t tick;
};

struct store {
	struct dsv4_model *m;
	struct dsv4_stream_options o;
	struct dsv4_mem *mem;
	struct dsv4_buf *buf;
	uint32_t n_files;
	int *fds;
	uint32_t *file_ring;		/* auto rings: the ring of the file's device */
	uint32_t n_devices;
	int all_direct;
	uint32_t n_layers, n_experts;
	struct expert_desc *desc;	/* [layer][expert] */
	int32_t *where;			/* [layer][expert] -> slot, -1 */
	uint32_t n_slots, per_chunk;
	/* partitions: one per layer (per-layer slots) or one shared */
	uint32_t n_parts, *part_first, *part_count, *protected_max, *n_protected;
	uint64_t slot_bytes;
	struct slot *slots;
	struct io_uring *rings;
	uint32_t n_rings, *inflight, next_ring;
	int fixed;
	uint64_t tick;
	struct dsv4_stream_stats st;
	char err[256];
};

static const char *const tname[MAX_T] = { "w1.weight", "w1.scale", "w2.weight", "w2.scale",
					  "w3.weight", "w3.scale" };

static int cmp_u64(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Windows for one expert; returns its slot size. */
static int describe(struct store *s, uint32_t L, uint32_t e, struct expert_desc *d,
		    char *err, size_t errlen)
{
	struct dsv4_ckpt *ck = s->m->ck;
	uint64_t ent[MAX_T][4];	/* offset, len, file, tensor */
	uint32_t n = 0;

	memset(d, 0, sizeof(*d));
	for (uint32_t t = 0; t < MAX_T; t++) {
		char name[128];
		const struct dsv4_ckpt_tensor *ct;
		uint32_t f;

		snprintf(name, sizeof(name), "layers.%u.ffn.experts.%u.%s", L, e, tname[t]);
		ct = dsv4_ckpt_find(ck, name);
		if (!ct) {
			if (t % 2)
				continue;	/* BF16 experts have no scales */
			return dsv4_errf(err, errlen, -ENOENT, "%s: not in the checkpoint", name);
		}
		for (f = 0; f < ck->n_shards && ck->shards[f] != ct->file; f++)
			;
		ent[n][0] = ct->st->offset;
		ent[n][1] = ct->st->nbytes;
		ent[n][2] = f;
		ent[n][3] = t;
		n++;
		d->has_scale |= t % 2;
	}
	qsort(ent, n, sizeof(ent[0]), cmp_u64);
	uint64_t at = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = ent[i][0], end = off + ent[i][1];
		struct win *w = d->n_win ? &d->win[d->n_win - 1] : NULL;

		if (!w || w->file != ent[i][2] || off > w->start + w->need + GAP) {
			at += w ? w->len : 0;
			w = &d->win[d->n_win++];
			w->file = (uint32_t)ent[i][2];
			w->start = off & ~(ALIGN - 1);
			w->slot_off = at;
		}
		if (end - w->start > w->need)
			w->need = end - w->start;
		w->len = (w->need + ALIGN - 1) & ~(ALIGN - 1);
		d->t_off[ent[i][3]] = w->slot_off + (off - w->start);
	}
	return 0;
}

static uint64_t desc_bytes(const struct expert_desc *d)
{
	const struct win *w = &d->win[d->n_win - 1];

	return w->slot_off + w->len;
}

static void say(struct store *s, const char *msg)
{
	if (s->o.mem.log)
		s->o.mem.log(s->o.mem.log_ctx, msg);
}

static int open_files(struct store *s, char *err, size_t errlen)
{
	struct dsv4_ckpt *ck = s->m->ck;

	dev_t devs[256];

	s->n_files = (uint32_t)ck->n_shards;
	s->fds = malloc(s->n_files * sizeof(int));
	s->file_ring = calloc(s->n_files, sizeof(*s->file_ring));
	if (!s->fds || !s->file_ring)
		return -ENOMEM;
	s->all_direct = !s->o.buffered;
	for (uint32_t f = 0; f < s->n_files; f++) {
		int fd = -1;

		if (!s->o.buffered)
			fd = open(ck->shards[f]->path, O_RDONLY | O_CLOEXEC | O_DIRECT);
		if (fd < 0) {
			s->all_direct = 0;	/* e.g. tmpfs refuses O_DIRECT */
			fd = open(ck->shards[f]->path, O_RDONLY | O_CLOEXEC);
		}
		if (fd < 0) {
			int e = errno;

			while (f--)
				close(s->fds[f]);
			free(s->fds);
			s->fds = NULL;
			return dsv4_errf(err, errlen, -e, "%s: %s", ck->shards[f]->path, strerror(e));
		}
		s->fds[f] = fd;
		/* one ring per storage device (by st_dev) unless told otherwise */
		struct stat stt;
		uint32_t d = 0;

		if (!fstat(fd, &stt)) {
			while (d < s->n_devices && devs[d] != stt.st_dev)
				d++;
			if (d == s->n_devices && d < 256)
				devs[s->n_devices++] = stt.st_dev;
		}
		s->file_ring[f] = d < 256 ? d : 0;
	}
	if (!s->n_devices)
		s->n_devices = 1;
	return 0;
}

static int setup_io(struct store *s)
{
	char msg[256];
	uint32_t qd = s->o.queue_depth ? s->o.queue_depth : 64;

	s->n_rings = s->o.rings ? s->o.rings : s->n_devices;
	if (s->o.no_io_uring) {
		s->n_rings = 0;
		s->st.io = "pread";
		return 0;
	}
	s->rings = calloc(s->n_rings, sizeof(*s->rings));
	s->inflight = calloc(s->n_rings, sizeof(*s->inflight));
	if (!s->rings || !s->inflight)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->n_rings; i++) {
		int ret = io_uring_queue_init(qd, &s->rings[i], 0);

		if (ret) {
			while (i--)
				io_uring_queue_exit(&s->rings[i]);
			free(s->rings);
			s->rings = NULL;
			s->n_rings = 0;
			s->st.io = "pread";
			snprintf(msg, sizeof(msg),
				 "dsv4: io_uring unavailable (%s); expert reads fall back to pread",
				 strerror(-ret));
			say(s, msg);
			return 0;
		}
	}
	/* fixed buffers: chunks of whole slots, each at most 1 GiB */
	uint32_t n_chunks = (s->n_slots + s->per_chunk - 1) / s->per_chunk;
	struct iovec *iov = calloc(n_chunks, sizeof(*iov));
	int ok = iov != NULL;

	for (uint32_t c = 0; ok && c < n_chunks; c++) {
		uint32_t first = c * s->per_chunk;
		uint32_t cnt = s->n_slots - first < s->per_chunk ? s->n_slots - first : s->per_chunk;

		iov[c].iov_base = (char *)s->buf->addr + first * s->slot_bytes;
		iov[c].iov_len = cnt * s->slot_bytes;
	}
	for (uint32_t i = 0; ok && i < s->n_rings; i++)
		ok = io_uring_register_buffers(&s->rings[i], iov, n_chunks) == 0;
	free(iov);
	s->fixed = ok;
	s->st.io = ok ? "io_uring+fixed" : "io_uring";
	return 0;
}

int store_open(struct dsv4_model *m, const struct dsv4_stream_options *o, struct store **out,
	       char *err, size_t errlen)
{
	const struct dsv4_config *c = &m->cfg;
	struct store *s = calloc(1, sizeof(*s));
	uint64_t want;
	int ret;

	if (!s)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	s->m = m;
	s->o = *o;
	s->n_layers = c->n_layers;
	s->n_experts = c->n_routed_experts;
	s->desc = calloc((size_t)s->n_layers * s->n_experts, sizeof(*s->desc));
	s->where = malloc((size_t)s->n_layers * s->n_experts * sizeof(*s->where));
	if (!s->desc || !s->where) {
		ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	for (uint32_t L = 0; L < s->n_layers; L++)
		for (uint32_t e = 0; e < s->n_experts; e++) {
			struct expert_desc *d = &s->desc[(size_t)L * s->n_experts + e];

			ret = describe(s, L, e, d, err, errlen);
			if (ret)
				goto fail;
			if (desc_bytes(d) > s->slot_bytes)
				s->slot_bytes = desc_bytes(d);
			s->where[(size_t)L * s->n_experts + e] = -1;
		}
	want = (uint64_t)s->n_layers * s->n_experts;
	if (o->cache_bytes)
		want = o->cache_bytes / s->slot_bytes;
	else if (o->cache_experts)
		want = o->cache_experts;
	if (want > (uint64_t)s->n_layers * s->n_experts)
		want = (uint64_t)s->n_layers * s->n_experts;
	if (want < 1) {
		ret = dsv4_errf(err, errlen, -EINVAL, "cache budget below one expert (%llu bytes)",
				(unsigned long long)s->slot_bytes);
		goto fail;
	}
	s->n_slots = (uint32_t)want;
	/* per-layer slots, so that one layer's burst cannot evict another
	 * layer's hot experts, once every layer can get two; else shared */
	s->n_parts = o->shared_cache || s->n_slots < 2 * s->n_layers ? 1 : s->n_layers;
	s->part_first = calloc(4 * (size_t)s->n_parts, sizeof(uint32_t));
	if (!s->part_first) {
		ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	s->part_count = s->part_first + s->n_parts;
	s->protected_max = s->part_count + s->n_parts;
	s->n_protected = s->protected_max + s->n_parts;
	for (uint32_t p = 0, at = 0; p < s->n_parts; p++) {
		uint32_t cnt = s->n_slots / s->n_parts + (p < s->n_slots % s->n_parts);

		s->part_first[p] = at;
		s->part_count[p] = cnt;
		s->protected_max[p] = cnt * 3 / 4;
		at += cnt;
	}
	s->per_chunk = s->slot_bytes >= CHUNK ? 1 : (uint32_t)(CHUNK / s->slot_bytes);
	s->slots = calloc(s->n_slots, sizeof(*s->slots));
	if (!s->slots) {
		ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	ret = dsv4_mem_open(&o->mem, &s->mem, err, errlen);
	if (ret)
		goto fail;
	ret = dsv4_mem_alloc(s->mem, (uint64_t)s->n_slots * s->slot_bytes, DSV4_KIND_EXPERT_STAGING,
			     o->numa, o->numa_node, &s->buf, err, errlen);
	if (ret)
		goto fail;
	ret = open_files(s, err, errlen);
	if (ret)
		goto fail;
	ret = setup_io(s);
	if (ret) {
		ret = dsv4_errf(err, errlen, ret, "io setup: %s", strerror(-ret));
		goto fail;
	}
	s->st.provider = dsv4_mem_provider_name(s->mem);
	s->st.direct = s->all_direct;
	s->st.slots = s->n_slots;
	s->st.per_layer = s->n_parts > 1;
	s->st.rings = s->n_rings;
	s->st.slot_bytes = (uint32_t)s->slot_bytes;
	*out = s;
	return 0;
fail:
	store_close(s);
	return ret;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; s->rings && i < s->n_rings; i++)
		io_uring_queue_exit(&s->rings[i]);
	free(s->rings);
	free(s->inflight);
	for (uint32_t f = 0; s->fds && f < s->n_files; f++)
		close(s->fds[f]);
	free(s->fds);
	free(s->file_ring);
	dsv4_mem_free(s->buf);
	dsv4_mem_close(s->mem);
	free(s->slots);
	free(s->part_first);
	free(s->desc);
	free(s->where);
	free(s);
}

void store_stats(const struct store *s, struct dsv4_stream_stats *st)
{
	*st = s->st;
}

const char *store_error(const struct store *s)
{
	return s->err;
}

/* ---- reads ---- */

static const struct expert_desc *desc_of(const struct store *s, const struct slot *sl)
{
	return &s->desc[(size_t)sl->layer * s->n_experts + sl->expert];
}

static char *slot_addr(const struct store *s, uint32_t i)
{
	return (char *)s->buf->addr + (uint64_t)i * s->slot_bytes;
}

/* A finished window read (one per window; splitting buffered reads into
 * 1 MiB pieces measured no better): short or failed reads fail the slot,
 * by name. */
static void window_done(struct store *s, uint32_t si, uint32_t wi, int64_t res)
{
	struct slot *sl = &s->slots[si];
	const struct win *w = &desc_of(s, sl)->win[wi];

	if (s->o.fault_shard == w->file + 1 && s->o.fault_offset >= w->start &&
	    s->o.fault_offset < w->start + w->len && res > 0)
		res = s->o.fault_short ? (int64_t)(s->o.fault_offset - w->start) : -EIO;
	s->st.reads++;
	if (res < 0 || (uint64_t)res < w->need) {
		sl->failed = 1;
		s->st.errors++;
		if (!s->err[0])
			snprintf(s->err, sizeof(s->err),
				 "%s: reading %llu bytes at offset %llu (layer %d expert %d): %s",
				 s->m->ck->shards[w->file]->path, (unsigned long long)w->need,
				 (unsigned long long)w->start, sl->layer, sl->expert,
				 res < 0 ? strerror((int)-res) : "short read; file truncated?");
	} else {
		s->st.bytes_read += w->need;
	}
	if (--sl->pending == 0)
		sl->state = sl->failed ? EMPTY : READY;
	if (sl->state == EMPTY && sl->failed) {
		s->where[(size_t)sl->layer * s->n_experts + sl->expert] = -1;
		sl->layer = sl->expert = -1;
	}
}

static void reap(struct store *s, uint32_t r, int wait)
{
	struct io_uring_cqe *cqe;

	if (wait && s->inflight[r]) {
		if (io_uring_wait_cqe(&s->rings[r], &cqe))
			return;
	}
	while (s->inflight[r] && io_uring_peek_cqe(&s->rings[r], &cqe) == 0) {
		uint64_t ud = io_uring_cqe_get_data64(cqe);

		window_done(s, (uint32_t)(ud >> 8), (uint32_t)(ud & 0xff), cqe->res);
		io_uring_cqe_seen(&s->rings[r], cqe);
		s->inflight[r]--;
	}
}

static void issue(struct store *s, uint32_t si)
{
	struct slot *sl = &s->slots[si];
	const struct expert_desc *d = desc_of(s, sl);

	sl->state = LOADING;
	sl->failed = 0;
	sl->pending = d->n_win;
	for (uint32_t wi = 0; wi < d->n_win; wi++) {
		const struct win *w = &d->win[wi];
		char *dst = slot_addr(s, si) + w->slot_off;

		if (!s->n_rings) {	/* pread, to EOF or error */
			uint64_t got = 0;

			while (got < w->len) {
				ssize_t n = pread(s->fds[w->file], dst + got, w->len - got,
						  (off_t)(w->start + got));

				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0) {
					if (n < 0 && !got)
						got = (uint64_t)-errno;
					break;
				}
				got += (uint64_t)n;
			}
			window_done(s, si, wi, (int64_t)got);
			continue;
		}
		uint32_t r = s->o.rings ? s->next_ring++ % s->n_rings :
			     s->file_ring[w->file] % s->n_rings;
		struct io_uring_sqe *sqe;

		while (s->inflight[r] >= s->rings[r].sq.ring_entries - 1 ||
		       !(sqe = io_uring_get_sqe(&s->rings[r]))) {
			io_uring_submit(&s->rings[r]);
			reap(s, r, 1);
		}
		if (s->fixed)
			io_uring_prep_read_fixed(sqe, s->fds[w->file], dst, (unsigned int)w->len,
						 w->start, (int)(si / s->per_chunk));
		else
			io_uring_prep_read(sqe, s->fds[w->file], dst, (unsigned int)w->len, w->start);
		io_uring_sqe_set_data64(sqe, (uint64_t)si << 8 | wi);
		s->inflight[r]++;
	}
}

/* ---- the cache ---- */

static void submit_all(struct store *s);

static void touch(struct store *s, struct slot *sl)
{
	sl->tick = ++s->tick;
}

static uint32_t part_of(const struct store *s, uint32_t L)
{
	return s->n_parts == 1 ? 0 : L;
}

static int victim(struct store *s, uint32_t L)
{
	uint32_t p = part_of(s, L), first = s->part_first[p], end = first + s->part_count[p];
	int best = -1;

	for (int seg = 0; seg < 2 && best < 0; seg++)
		for (uint32_t i = first; i < end; i++) {
			struct slot *sl = &s->slots[i];

			if (sl->state == EMPTY)
				return (int)i;
			if (sl->state != READY || sl->pins || sl->seg != seg)
				continue;
			if (best < 0 || sl->tick < s->slots[best].tick)
				best = (int)i;
		}
	return best;
}

/* Starts loading (L, e) unless present; returns its slot or -1 (no room). */
static int start(struct store *s, uint32_t L, uint32_t e, int prefetch)
{
	int32_t *wp = &s->where[(size_t)L * s->n_experts + e];
	int v;

	if (*wp >= 0)
		return *wp;
	v = victim(s, L);
	if (v < 0 && prefetch)
		return -1;	/* a prefetch never waits for room */
	if (v < 0) {
		/* slots still loading (prefetches) become victims once read */
		submit_all(s);
		for (uint32_t r = 0; r < s->n_rings; r++)
			while (s->inflight[r])
				reap(s, r, 1);
		v = victim(s, L);
	}
	if (v < 0)
		return -1;
	struct slot *sl = &s->slots[v];

	if (sl->state == READY) {
		s->where[(size_t)sl->layer * s->n_experts + sl->expert] = -1;
		s->n_protected[part_of(s, L)] -= sl->seg;
		s->st.evictions++;
	}
	*sl = (struct slot){ .layer = (int32_t)L, .expert = (int32_t)e, .prefetched = (uint8_t)prefetch };
	touch(s, sl);
	*wp = v;
	issue(s, (uint32_t)v);
	return v;
}

static void submit_all(struct store *s)
{
	for (uint32_t r = 0; r < s->n_rings; r++)
		io_uring_submit(&s->rings[r]);
}

static void wait_slot(struct store *s, struct slot *sl)
{
	while (sl->state == LOADING)
		for (uint32_t r = 0; r < s->n_rings; r++)
			reap(s, r, s->inflight[r] > 0);
}

void store_prefetch(struct store *s, uint32_t L, const int32_t *experts, uint32_t n)
{
	if (s->o.no_prefetch)
		return;
	for (uint32_t i = 0; i < n; i++) {
		if (experts[i] < 0 || (uint32_t)experts[i] >= s->n_experts)
			continue;
		if (s->where[(size_t)L * s->n_experts + experts[i]] >= 0)
			continue;
		if (start(s, L, (uint32_t)experts[i], 1) >= 0)
			s->st.prefetch_issued++;
	}
	submit_all(s);
	for (uint32_t r = 0; r < s->n_rings; r++)
		reap(s, r, 0);
}

uint32_t store_capacity(const struct store *s, uint32_t L)
{
	return s->part_count[part_of(s, L)];
}

static void fill(const struct store *s, uint32_t si, const struct mat *proto, int t, struct mat *out)
{
	const struct expert_desc *d = desc_of(s, &s->slots[si]);

	*out = *proto;
	out->row0 = 0;
	out->data = slot_addr(s, si) + d->t_off[t];
	out->scale = d->has_scale ? slot_addr(s, si) + d->t_off[t + 1] : NULL;
}

int store_acquire(struct store *s, uint32_t L, const int32_t *ex, uint32_t n,
		  struct mat *w1, struct mat *w2, struct mat *w3)
{
	const struct layer_w *lw = &s->m->layers[L];
	int ret = 0;

	s->err[0] = 0;
	/* hits first, pinned, so that loading the misses cannot evict them */
	for (uint32_t i = 0; i < n; i++) {
		int32_t si = s->where[(size_t)L * s->n_experts + ex[i]];

		if (si < 0)
			continue;
		struct slot *sl = &s->slots[si];

		s->st.hits++;
		if (sl->prefetched) {
			s->st.prefetch_used++;
			sl->prefetched = 0;
		} else if (!sl->seg) {	/* second use: protect it */
			uint32_t p = part_of(s, L), first = s->part_first[p];

			if (s->n_protected[p] >= s->protected_max[p]) {
				int lru = -1;

				for (uint32_t j = first; j < first + s->part_count[p]; j++)
					if (s->slots[j].seg && (lru < 0 ||
					    s->slots[j].tick < s->slots[lru].tick))
						lru = (int)j;
				if (lru >= 0) {
					s->slots[lru].seg = 0;
					s->n_protected[p]--;
				}
			}
			if (s->n_protected[p] < s->protected_max[p]) {
				sl->seg = 1;
				s->n_protected[p]++;
			}
		}
		touch(s, sl);
		sl->pins++;
	}
	for (uint32_t i = 0; i < n; i++) {
		int32_t si = s->where[(size_t)L * s->n_experts + ex[i]];

		if (si >= 0)
			continue;
		s->st.misses++;
		si = start(s, L, (uint32_t)ex[i], 0);
		if (si < 0) {
			snprintf(s->err, sizeof(s->err),
				 "expert cache of %u slots cannot hold %u experts at once",
				 s->n_slots, n);
			ret = -ENOSPC;
			continue;
		}
		s->slots[si].pins++;
	}
	submit_all(s);
	for (uint32_t i = 0; i < n; i++) {
		int32_t si = s->where[(size_t)L * s->n_experts + ex[i]];

		if (si >= 0)
			wait_slot(s, &s->slots[si]);
		si = s->where[(size_t)L * s->n_experts + ex[i]];
		if (si < 0 || s->slots[si].state != READY) {
			ret = -EIO;
			continue;
		}
		fill(s, (uint32_t)si, &lw->w1[ex[i]], 0, &w1[i]);
		fill(s, (uint32_t)si, &lw->w2[ex[i]], 2, &w2[i]);
		fill(s, (uint32_t)si, &lw->w3[ex[i]], 4, &w3[i]);
	}
	if (ret) {
		store_release(s, L, ex, n);
		if (!s->err[0])
			snprintf(s->err, sizeof(s->err), "expert read failed");
	}
	return ret;
}

void store_release(struct store *s, uint32_t L, const int32_t *ex, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		int32_t si = s->where[(size_t)L * s->n_experts + ex[i]];

		if (si >= 0 && s->slots[si].pins)
			s->slots[si].pins--;
	}
}

void store_region(const struct store *s, void **addr, uint64_t *len)
{
	*addr = s->buf->addr;
	*len = (uint64_t)s->n_slots * s->slot_bytes;
}
