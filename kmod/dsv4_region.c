// SPDX-License-Identifier: GPL-2.0
/*
 * Regions: pinned, zeroed, node-placed memory owned by the module.
 *
 * Lifetime: a region is reference counted.  References are held by file
 * handles, by each VMA mapping it, by each exported dma-buf and, for
 * persistent regions, by the module itself until REGION_DESTROY.  The
 * global table holds no reference: the last put removes the region from
 * the table under dsv4_regions_lock and frees its pages.
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/nodemask.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "dsv4_core.h"
#include "dsv4_trace.h"

static DEFINE_MUTEX(dsv4_regions_lock);
static DEFINE_XARRAY_ALLOC1(dsv4_regions);
static u32 dsv4_next_id;

struct dsv4_stats dsv4_stats;
atomic64_t *dsv4_node_bytes;

static const char *const dsv4_kind_names[DSV4_KIND_COUNT] = {
	[DSV4_KIND_GENERIC] = "generic",
	[DSV4_KIND_ENGRAM_TABLE] = "engram_table",
	[DSV4_KIND_EXPERT_STAGING] = "expert_staging",
	[DSV4_KIND_KV_SPILL] = "kv_spill",
};

const char *dsv4_kind_name(u32 kind)
{
	return kind < DSV4_KIND_COUNT ? dsv4_kind_names[kind] : "unknown";
}

int dsv4_regions_init(void)
{
	dsv4_node_bytes = kcalloc(nr_node_ids, sizeof(*dsv4_node_bytes),
				  GFP_KERNEL);
	return dsv4_node_bytes ? 0 : -ENOMEM;
}

void dsv4_regions_exit(void)
{
	struct dsv4_region *r;
	unsigned long id;

	/*
	 * Open files, mappings and dma-bufs pin the module, so only
	 * persistent regions can remain here.
	 */
	xa_for_each(&dsv4_regions, id, r)
		dsv4_region_unpersist(r);
	WARN_ON(!xa_empty(&dsv4_regions));
	xa_destroy(&dsv4_regions);
	kfree(dsv4_node_bytes);
}

struct dsv4_region *dsv4_region_new(const struct dsv4_region_params *p)
{
	struct dsv4_region *r;

	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return NULL;
	r->node_bytes = kcalloc(nr_node_ids, sizeof(*r->node_bytes),
				GFP_KERNEL);
	if (!r->node_bytes) {
		kfree(r);
		return NULL;
	}
	kref_init(&r->ref);
	spin_lock_init(&r->lock);
	r->size = p->size;
	r->nr_pages = p->size >> PAGE_SHIFT;
	r->kind = p->kind;
	r->create_flags = p->flags;
	r->numa_node = p->node;
	r->uid = current_fsuid();
	r->gid = current_fsgid();
	r->mode = p->mode;
	if (p->name)
		strscpy(r->name, p->name, sizeof(r->name));
	return r;
}

void dsv4_region_account_chunk(struct dsv4_region *r, struct page *page,
			       unsigned int order)
{
	u64 bytes = PAGE_SIZE << order;

	r->node_bytes[page_to_nid(page)] += bytes;
	if (order >= HPAGE_PMD_ORDER)
		r->huge_bytes += bytes;
}

static struct page *dsv4_alloc_chunk(int node, unsigned int order,
				     bool strict, bool account)
{
	gfp_t gfp = GFP_HIGHUSER | __GFP_ZERO | __GFP_NOWARN;

	if (dsv4_should_fail_alloc())
		return NULL;
	if (account)
		gfp |= __GFP_ACCOUNT;	/* the creator's memcg pays */
	if (strict)
		gfp |= __GFP_THISNODE;
	if (order)
		gfp |= __GFP_COMP | __GFP_NORETRY;
	else
		gfp |= __GFP_RETRY_MAYFAIL;	/* fail rather than OOM-kill */
	return alloc_pages_node(node, gfp, order);
}

/* Room for more chunks: the array grows by doubling, up to nr_pages. */
static int dsv4_chunks_grow(struct dsv4_region *r, unsigned long *cap)
{
	unsigned long ncap = min(*cap * 2, r->nr_pages);
	struct dsv4_chunk *n;

	n = kvmalloc_array(ncap, sizeof(*n), GFP_KERNEL | __GFP_NOWARN);
	if (!n)
		return -ENOMEM;
	memcpy(n, r->chunks, r->nr_chunks * sizeof(*n));
	kvfree(r->chunks);
	r->chunks = n;
	*cap = ncap;
	return 0;
}

/*
 * Fill the region with zeroed pages from its node (only that node when
 * @strict).  With @huge, 2 MiB folios are tried first; every region then
 * tries 64 KiB folios and single pages, stepping down only when an order
 * fails or does not fit.  The chunk array starts at the size the first
 * order needs and grows only if allocations fall back.
 */
int dsv4_region_alloc_pages(struct dsv4_region *r, bool huge, bool strict)
{
	static const unsigned int orders[] = { HPAGE_PMD_ORDER, 4, 0 };
	unsigned int oi = huge ? 0 : 1;
	int node = r->numa_node < 0 ? numa_node_id() : r->numa_node;
	bool account = !(r->create_flags & DSV4_REGION_PERSISTENT);
	unsigned long done = 0, cap;

	cap = min(r->nr_pages, (r->nr_pages >> orders[oi]) + 16);
	r->chunks = kvmalloc_array(cap, sizeof(*r->chunks),
				   GFP_KERNEL | __GFP_NOWARN);
	if (!r->chunks)
		return -ENOMEM;

	while (done < r->nr_pages) {
		unsigned int order = orders[oi];
		struct dsv4_chunk *c;
		struct page *page;

		if (fatal_signal_pending(current))
			return -EINTR;
		if ((1UL << order) > r->nr_pages - done) {
			oi++;
			continue;
		}
		if (r->nr_chunks == cap && dsv4_chunks_grow(r, &cap))
			return -ENOMEM;
		page = dsv4_alloc_chunk(node, order, strict, account);
		if (!page) {
			if (order == 0)
				return -ENOMEM;
			oi++;
			continue;
		}
		c = &r->chunks[r->nr_chunks++];
		c->page = page;
		c->order = order;
		c->pgoff = done;
		dsv4_region_account_chunk(r, page, order);
		done += 1UL << order;
		cond_resched();
	}
	return 0;
}

static void dsv4_region_free_pages(struct dsv4_region *r)
{
	unsigned long i;

	for (i = 0; i < r->nr_chunks; i++) {
		struct dsv4_chunk *c = &r->chunks[i];

		if (r->imported)
			unpin_user_pages_dirty_lock(&c->page, 1, true);
		else
			__free_pages(c->page, c->order);
		if ((i & 1023) == 1023)
			cond_resched();
	}
	kvfree(r->chunks);
	r->chunks = NULL;
	r->nr_chunks = 0;
}

/* Free a region that is no longer (or never was) in the table. */
void dsv4_region_discard(struct dsv4_region *r)
{
	if (r->chunks)
		dsv4_region_free_pages(r);
	dsv4_unaccount(r);
	kfree(r->node_bytes);
	kfree(r);
}

static void dsv4_stats_add(struct dsv4_region *r, int sign)
{
	s64 bytes = sign * (s64)r->size;
	unsigned int nid;

	atomic64_add(bytes, &dsv4_stats.total_bytes);
	atomic64_add(bytes, &dsv4_stats.kind_bytes[r->kind]);
	for (nid = 0; nid < nr_node_ids; nid++)
		if (r->node_bytes[nid])
			atomic64_add(sign * (s64)r->node_bytes[nid],
				     &dsv4_node_bytes[nid]);
	if (sign > 0)
		atomic_inc(&dsv4_stats.regions);
	else
		atomic_dec(&dsv4_stats.regions);
}

static bool dsv4_name_taken(const char *name)
{
	struct dsv4_region *r;
	unsigned long id;

	lockdep_assert_held(&dsv4_regions_lock);
	xa_for_each(&dsv4_regions, id, r) {
		if (!(r->state & DSV4_STATE_DESTROYED) &&
		    !strcmp(r->name, name))
			return true;
	}
	return false;
}

/* Give the region an id and a name; after this it is visible to all. */
int dsv4_region_publish(struct dsv4_region *r)
{
	struct xa_limit limit = XA_LIMIT(1, DSV4_MAX_ID);
	int ret;

	mutex_lock(&dsv4_regions_lock);
	if (atomic_read(&dsv4_stats.regions) >= dsv4_max_regions) {
		ret = -ENOSPC;
		goto out;
	}
	if (r->name[0] && dsv4_name_taken(r->name)) {
		ret = -EEXIST;
		goto out;
	}
	ret = xa_alloc_cyclic(&dsv4_regions, &r->id, r, limit, &dsv4_next_id,
			      GFP_KERNEL);
	if (ret < 0)
		goto out;
	ret = 0;
	if (r->create_flags & DSV4_REGION_PERSISTENT) {
		r->state |= DSV4_STATE_PERSISTENT;
		kref_get(&r->ref);	/* the module's reference */
	}
	if (r->imported)
		r->state |= DSV4_STATE_IMPORTED;
	dsv4_stats_add(r, 1);
out:
	mutex_unlock(&dsv4_regions_lock);
	if (!ret)
		dsv4_sysfs_region_add(r);	/* best effort, not fatal */
	return ret;
}

static void dsv4_region_release(struct kref *ref)
	__releases(&dsv4_regions_lock)
{
	struct dsv4_region *r = container_of(ref, struct dsv4_region, ref);

	xa_erase(&dsv4_regions, r->id);
	dsv4_stats_add(r, -1);
	mutex_unlock(&dsv4_regions_lock);

	trace_dsv4_region_free(r->id, r->size);
	dsv4_sysfs_region_del(r);
	if (r->create_flags & DSV4_REGION_PERSISTENT)
		dsv4_unaccount_persistent(r->size);
	dsv4_region_discard(r);
}

void dsv4_region_get(struct dsv4_region *r)
{
	kref_get(&r->ref);
}

void dsv4_region_put(struct dsv4_region *r)
{
	kref_put_mutex(&r->ref, dsv4_region_release, &dsv4_regions_lock);
}

struct dsv4_region *dsv4_region_get_id(u32 id)
{
	struct dsv4_region *r;

	mutex_lock(&dsv4_regions_lock);
	r = xa_load(&dsv4_regions, id);
	if (r && !kref_get_unless_zero(&r->ref))
		r = NULL;
	mutex_unlock(&dsv4_regions_lock);
	return r;
}

struct dsv4_region *dsv4_region_get_name(const char *name)
{
	struct dsv4_region *r, *found = NULL;
	unsigned long id;

	mutex_lock(&dsv4_regions_lock);
	xa_for_each(&dsv4_regions, id, r) {
		if (!(r->state & DSV4_STATE_DESTROYED) && r->name[0] &&
		    !strcmp(r->name, name) && kref_get_unless_zero(&r->ref)) {
			found = r;
			break;
		}
	}
	mutex_unlock(&dsv4_regions_lock);
	return found;
}

void dsv4_region_mark_destroyed(struct dsv4_region *r)
{
	mutex_lock(&dsv4_regions_lock);
	spin_lock(&r->lock);
	r->state |= DSV4_STATE_DESTROYED;
	spin_unlock(&r->lock);
	mutex_unlock(&dsv4_regions_lock);
}

/* Drop the module's reference of a persistent region (REGION_DESTROY). */
int dsv4_region_unpersist(struct dsv4_region *r)
{
	bool drop = false;

	mutex_lock(&dsv4_regions_lock);
	spin_lock(&r->lock);
	if (r->state & DSV4_STATE_PERSISTENT) {
		r->state &= ~DSV4_STATE_PERSISTENT;
		r->state |= DSV4_STATE_DESTROYED;
		drop = true;
	}
	spin_unlock(&r->lock);
	mutex_unlock(&dsv4_regions_lock);
	if (!drop)
		return -ENOENT;
	dsv4_region_put(r);
	return 0;
}

bool dsv4_region_is_owner(const struct dsv4_region *r)
{
	return uid_eq(current_fsuid(), r->uid) || capable(CAP_SYS_ADMIN);
}

/* File-like permission check against the region's owner, group and mode. */
bool dsv4_region_may_access(const struct dsv4_region *r, bool write)
{
	umode_t need = write ? 06 : 04;
	umode_t mode = r->mode;

	if (capable(CAP_SYS_ADMIN))
		return true;
	if (uid_eq(current_fsuid(), r->uid))
		mode >>= 6;
	else if (in_group_p(r->gid))
		mode >>= 3;
	return (mode & need) == need;
}

int dsv4_region_writer_get(struct dsv4_region *r)
{
	int ret = 0;

	spin_lock(&r->lock);
	if (r->state & DSV4_STATE_SEALED)
		ret = -EPERM;
	else
		r->writers++;
	spin_unlock(&r->lock);
	return ret;
}

void dsv4_region_writer_put(struct dsv4_region *r)
{
	spin_lock(&r->lock);
	WARN_ON(!r->writers);
	r->writers--;
	spin_unlock(&r->lock);
}

/* A long-term pin (io_uring fixed buffer, cudaHostRegister) on any page. */
static bool dsv4_region_dma_pinned(struct dsv4_region *r)
{
	unsigned long i;

	for (i = 0; i < r->nr_chunks; i++) {
		if (folio_maybe_dma_pinned(page_folio(r->chunks[i].page)))
			return true;
		if ((i & 1023) == 1023)
			cond_resched();
	}
	return false;
}

/*
 * Read-only for everyone.  Sealed first, so no new writable mapping (and
 * so no new writable pin) can appear; then a writer that outlived its
 * mapping as a DMA pin undoes the seal, as memfd's F_SEAL_WRITE refuses.
 * Imported regions stay writable through their memfd: seal that instead.
 */
int dsv4_region_seal(struct dsv4_region *r)
{
	bool was_sealed;

	if (r->imported)
		return -EINVAL;
	spin_lock(&r->lock);
	if (r->writers) {
		spin_unlock(&r->lock);
		return -EBUSY;
	}
	was_sealed = r->state & DSV4_STATE_SEALED;
	r->state |= DSV4_STATE_SEALED;
	spin_unlock(&r->lock);
	if (!was_sealed && dsv4_region_dma_pinned(r)) {
		spin_lock(&r->lock);
		r->state &= ~DSV4_STATE_SEALED;
		spin_unlock(&r->lock);
		return -EBUSY;
	}
	return 0;
}

u32 dsv4_region_state(struct dsv4_region *r)
{
	u32 state;

	spin_lock(&r->lock);
	state = r->state;
	spin_unlock(&r->lock);
	return state;
}

u64 dsv4_region_node_mask(const struct dsv4_region *r)
{
	u64 mask = 0;
	unsigned int nid;

	for (nid = 0; nid < nr_node_ids && nid < 64; nid++)
		if (r->node_bytes[nid])
			mask |= 1ULL << nid;
	return mask;
}

/* The chunk holding page index @pg (binary search on pgoff), or NULL. */
static const struct dsv4_chunk *dsv4_region_chunk(const struct dsv4_region *r,
						  unsigned long pg)
{
	unsigned long lo = 0, hi = r->nr_chunks;

	if (pg >= r->nr_pages || !r->nr_chunks)
		return NULL;
	while (hi - lo > 1) {
		unsigned long mid = lo + (hi - lo) / 2;

		if (r->chunks[mid].pgoff <= pg)
			lo = mid;
		else
			hi = mid;
	}
	return &r->chunks[lo];
}

/* The page backing byte @offset of the region. */
struct page *dsv4_region_page(const struct dsv4_region *r, u64 offset)
{
	unsigned long pg = offset >> PAGE_SHIFT;
	const struct dsv4_chunk *c = dsv4_region_chunk(r, pg);

	return c ? c->page + (pg - c->pgoff) : NULL;
}

/* Pages from byte @offset to the end of its chunk (0 past the end). */
unsigned long dsv4_chunk_pages_left(const struct dsv4_region *r, u64 offset)
{
	unsigned long pg = offset >> PAGE_SHIFT;
	const struct dsv4_chunk *c = dsv4_region_chunk(r, pg);

	return c ? (1UL << c->order) - (pg - c->pgoff) : 0;
}

/*
 * Call @fn on every region in the table, with a reference held and the
 * table lock dropped, so @fn may sleep.  Stops at the first non-zero return.
 */
int dsv4_region_for_each(dsv4_region_iter_fn fn, void *arg)
{
	unsigned long id = 0;
	struct dsv4_region *r;
	int ret = 0;

	for (;;) {
		mutex_lock(&dsv4_regions_lock);
		r = xa_find(&dsv4_regions, &id, ULONG_MAX, XA_PRESENT);
		while (r && !kref_get_unless_zero(&r->ref))
			r = xa_find_after(&dsv4_regions, &id, ULONG_MAX,
					  XA_PRESENT);
		mutex_unlock(&dsv4_regions_lock);
		if (!r)
			break;
		ret = fn(r, arg);
		dsv4_region_put(r);
		if (ret)
			break;
		id++;
	}
	return ret;
}
