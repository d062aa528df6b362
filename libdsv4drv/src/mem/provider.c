// SPDX-License-Identifier: MIT
/*
 * Pinned memory for the driver, from one of two providers:
 *  - kmod: regions of /dev/dsv4 (zeroed, NUMA-placed, huge-folio backed,
 *    memlock-accounted by the module), mmapped;
 *  - host: a memfd (hugetlb when asked and available, else shmem), mbind
 *    for placement, faulted in, then mlock.  memfd rather than anonymous
 *    memory because 6.1's io_uring registers only anonymous, shmem or
 *    hugetlbfs memory as fixed buffers, and the module can import a memfd.
 * AUTO picks $DSV4_PROVIDER if set, else kmod when the device opens, else
 * host, and says why once through the log callback.  Interleave on the
 * kmod provider maps one region per node back to back into one range.
 */
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../internal.h"
#include "dsv4drv.h"

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26)	/* MFD_HUGE_SHIFT 26, log2(2 MiB) */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define HUGE_2M (2ull << 20)
#define MAX_STRIPES 64

struct dsv4_mem {
	enum dsv4_provider kind;
	int fd;				/* /dev/dsv4 (kmod) */
	struct dsv4_mem_options opt;
	char why[160];
	uint64_t bytes, peak, buffers, unlocked;
};

struct buf_priv {
	struct dsv4_buf pub;
	uint64_t map_len;		/* host: mapped length (huge-rounded) */
	uint32_t n_regions;		/* kmod: one, or one per node (interleave) */
	uint64_t region_id[MAX_STRIPES];
	uint64_t stripe_len[MAX_STRIPES];
};

static void say(const struct dsv4_mem_options *o, const char *msg)
{
	if (o->log)
		o->log(o->log_ctx, msg);
}

int dsv4_mem_open(const struct dsv4_mem_options *opt, struct dsv4_mem **out, char *err,
		  size_t errlen)
{
	struct dsv4_mem *m = calloc(1, sizeof(*m));
	const char *env = getenv("DSV4_PROVIDER");
	enum dsv4_provider want;
	char msg[256];

	if (!m)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	if (opt)
		m->opt = *opt;
	want = m->opt.provider;
	m->fd = -1;
	if (want > DSV4_PROVIDER_HOST) {
		free(m);
		return dsv4_errf(err, errlen, -EINVAL, "provider %d unknown", want);
	}
	if (want == DSV4_PROVIDER_AUTO && env && *env) {
		if (!strcmp(env, "kmod")) {
			want = DSV4_PROVIDER_KMOD;
		} else if (!strcmp(env, "host")) {
			want = DSV4_PROVIDER_HOST;
		} else if (strcmp(env, "auto")) {
			free(m);
			return dsv4_errf(err, errlen, -EINVAL,
					 "DSV4_PROVIDER=%s: expected kmod, host or auto", env);
		}
		snprintf(m->why, sizeof(m->why), "DSV4_PROVIDER=%s", env);
	}
	if (want != DSV4_PROVIDER_HOST) {
		m->fd = dsv4_kdev_open(m->opt.dev_path);
		if (m->fd >= 0) {
			m->kind = DSV4_PROVIDER_KMOD;
			if (!m->why[0])
				snprintf(m->why, sizeof(m->why), "%s opened",
					 m->opt.dev_path ? m->opt.dev_path : DSV4_KDEV_PATH);
		} else if (want == DSV4_PROVIDER_KMOD) {
			int ret = m->fd;

			free(m);
			return dsv4_errf(err, errlen, ret, "kmod provider: %s: %s",
					 opt && opt->dev_path ? opt->dev_path : DSV4_KDEV_PATH,
					 strerror(-ret));
		} else {
			snprintf(m->why, sizeof(m->why), "%s: %s; host compatibility memory",
				 m->opt.dev_path ? m->opt.dev_path : DSV4_KDEV_PATH, strerror(-m->fd));
			m->kind = DSV4_PROVIDER_HOST;
		}
	} else {
		m->kind = DSV4_PROVIDER_HOST;
		if (!m->why[0])
			snprintf(m->why, sizeof(m->why), "host provider requested");
	}
	snprintf(msg, sizeof(msg), "dsv4: memory provider %s (%s)", dsv4_mem_provider_name(m), m->why);
	say(&m->opt, msg);
	*out = m;
	return 0;
}

void dsv4_mem_close(struct dsv4_mem *m)
{
	if (!m)
		return;
	if (m->fd >= 0)
		close(m->fd);
	free(m);
}

const char *dsv4_mem_provider_name(const struct dsv4_mem *m)
{
	return m->kind == DSV4_PROVIDER_KMOD ? "kmod" : "host";
}

void dsv4_mem_get_stats(const struct dsv4_mem *m, struct dsv4_mem_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->provider = dsv4_mem_provider_name(m);
	st->why = m->why;
	st->bytes = m->bytes;
	st->peak_bytes = m->peak;
	st->buffers = m->buffers;
	st->unlocked_buffers = m->unlocked;
}

/* Nodes with memory that we may use, ascending. */
static int mem_nodes(int *nodes, int max)
{
	int n = 0;

	if (numa_available() < 0) {
		nodes[0] = 0;
		return 1;
	}
	struct bitmask *allowed = numa_get_mems_allowed();

	for (int i = 0; i <= numa_max_node() && n < max; i++) {
		long long free_b;

		if (numa_bitmask_isbitset(allowed, (unsigned int)i) &&
		    numa_node_size64(i, &free_b) > 0)
			nodes[n++] = i;
	}
	numa_bitmask_free(allowed);
	if (!n)
		nodes[n++] = 0;
	return n;
}

static int check_placement_args(enum dsv4_numa_policy policy, int node, char *err, size_t errlen)
{
	if (policy > DSV4_NUMA_NODE)
		return dsv4_errf(err, errlen, -EINVAL, "NUMA policy %d unknown", policy);
	if (policy == DSV4_NUMA_NODE) {
		if (node < 0 || (numa_available() >= 0 ? node > numa_max_node() : node != 0))
			return dsv4_errf(err, errlen, -EINVAL, "NUMA node %d does not exist", node);
	}
	return 0;
}

/* MemAvailable from /proc/meminfo, in bytes (0 if unknown) */
static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	unsigned long long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}

/* A shared mapping of a fresh memfd: hugetlb if @huge and it works, else shmem. */
static void *host_map(uint64_t size, int huge, int *fd_out, uint64_t *len_out, int *huge_out)
{
	for (int try_huge = huge; try_huge >= 0; try_huge--) {
		uint64_t len = try_huge ? (size + HUGE_2M - 1) & ~(HUGE_2M - 1) : (size + 4095) & ~4095ull;
		int fd = memfd_create("dsv4", MFD_CLOEXEC | (try_huge ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
		void *p;

		if (fd < 0)
			continue;
		if (ftruncate(fd, (off_t)len)) {
			close(fd);
			continue;
		}
		/* hugetlb without reserved pages fails here; fall back to shmem */
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			close(fd);
			continue;
		}
		*fd_out = fd;
		*len_out = len;
		*huge_out = try_huge;
		return p;
	}
	return NULL;
}

static int host_alloc(struct dsv4_mem *m, struct buf_priv *b, uint64_t size,
		      enum dsv4_numa_policy policy, int node, char *err, size_t errlen)
{
	int fd = -1, huge = 0;
	uint64_t len = 0, avail = mem_available();
	void *p;

	/* memfds are sparse: refuse up front what faulting in could not hold */
	if (avail && size > avail)
		return dsv4_errf(err, errlen, -ENOMEM, "%llu bytes asked, %llu available",
				 (unsigned long long)size, (unsigned long long)avail);
	p = host_map(size, m->opt.huge, &fd, &len, &huge);
	if (!p)
		return dsv4_errf(err, errlen, -errno ? -errno : -ENOMEM,
				 "host memory of %llu bytes: %s", (unsigned long long)size,
				 strerror(errno ? errno : ENOMEM));
	if (!huge)
		(void)madvise(p, len, MADV_HUGEPAGE);	/* THP for shmem, where enabled */
	if (policy != DSV4_NUMA_LOCAL && numa_available() >= 0) {
		int nodes[MAX_STRIPES], n = mem_nodes(nodes, MAX_STRIPES);
		unsigned long mask[16] = { 0 };
		int mode = policy == DSV4_NUMA_INTERLEAVE ? MPOL_INTERLEAVE : MPOL_BIND;

		if (policy == DSV4_NUMA_NODE)
			mask[node / 64] |= 1ul << (node % 64);
		else
			for (int i = 0; i < n; i++)
				mask[nodes[i] / 64] |= 1ul << (nodes[i] % 64);
		if (mbind(p, len, mode, mask, 16 * 64, MPOL_MF_STRICT)) {
			int e = errno;

			munmap(p, len);
			close(fd);
			return dsv4_errf(err, errlen, -e, "mbind to %s: %s",
					 policy == DSV4_NUMA_NODE ? "the node" : "all nodes", strerror(e));
		}
	}
	/* fault in under the policy (zeroed memory either way) */
	if (madvise(p, len, MADV_POPULATE_WRITE)) {
		int e = errno;

		if (e != EINVAL) {	/* EINVAL: a kernel before 5.14 */
			munmap(p, len);
			close(fd);
			return dsv4_errf(err, errlen, -e, "faulting in %llu bytes: %s",
					 (unsigned long long)len, strerror(e));
		}
		memset(p, 0, len);
	}
	b->pub.locked = mlock(p, len) == 0;
	if (!b->pub.locked && !m->opt.allow_unlocked) {
		int e = errno;

		munmap(p, len);
		close(fd);
		return dsv4_errf(err, errlen, e == EPERM || e == EAGAIN ? -ENOMEM : -e,
				 "mlock of %llu bytes refused (%s): raise RLIMIT_MEMLOCK, or allow "
				 "unlocked memory", (unsigned long long)len, strerror(e));
	}
	b->pub.addr = p;
	b->pub.memfd = fd;
	b->pub.huge = huge;
	b->map_len = len;
	return 0;
}

static void kmod_release(struct dsv4_mem *m, struct buf_priv *b)
{
	for (uint32_t i = 0; i < b->n_regions; i++)
		dsv4_kdev_destroy(m->fd, b->region_id[i]);
	b->n_regions = 0;
}

static int kmod_alloc(struct dsv4_mem *m, struct buf_priv *b, uint64_t size, uint32_t kind,
		      enum dsv4_numa_policy policy, int node, char *err, size_t errlen)
{
	int nodes[MAX_STRIPES], n = 1, ret;
	uint64_t len = (size + 4095) & ~4095ull, at = 0;
	char *base;

	if (policy == DSV4_NUMA_INTERLEAVE)
		n = mem_nodes(nodes, MAX_STRIPES);
	/* reserve one range; each region is mapped over its part of it */
	base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return dsv4_errf(err, errlen, -errno, "address space for %llu bytes: %s",
				 (unsigned long long)len, strerror(errno));
	for (int i = 0; i < n; i++) {
		struct dsv4_region_create rc = { 0 };
		uint64_t part = policy == DSV4_NUMA_INTERLEAVE ?
			((len / n + HUGE_2M - 1) & ~(HUGE_2M - 1)) : len;

		if (at + part > len || i == n - 1)
			part = len - at;
		if (!part)
			break;
		rc.size = part;
		rc.kind = kind;
		rc.numa_node = policy == DSV4_NUMA_NODE ? node :
			       policy == DSV4_NUMA_INTERLEAVE ? nodes[i] : DSV4_NODE_ANY;
		rc.flags = m->opt.huge ? DSV4_REGION_HUGE : 0;
		ret = dsv4_kdev_create(m->fd, &rc);
		if (ret) {
			kmod_release(m, b);
			munmap(base, len);
			return dsv4_errf(err, errlen, ret, "/dev/dsv4 region of %llu bytes on node %d: %s",
					 (unsigned long long)part, rc.numa_node, strerror(-ret));
		}
		b->region_id[b->n_regions] = rc.id;
		b->stripe_len[b->n_regions++] = part;
		if (mmap(base + at, part, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, m->fd,
			 (off_t)rc.mmap_offset) == MAP_FAILED) {
			ret = -errno;
			kmod_release(m, b);
			munmap(base, len);
			return dsv4_errf(err, errlen, ret, "mmap of a /dev/dsv4 region: %s",
					 strerror(-ret));
		}
		at += part;
	}
	b->pub.addr = base;
	b->pub.locked = 1;
	b->pub.memfd = -1;
	b->map_len = len;
	return 0;
}

int dsv4_mem_alloc(struct dsv4_mem *m, uint64_t size, uint32_t kind,
		   enum dsv4_numa_policy policy, int node, struct dsv4_buf **out,
		   char *err, size_t errlen)
{
	struct buf_priv *b;
	int ret;

	if (!size || size > DSV4_REGION_MAX_SIZE)
		return dsv4_errf(err, errlen, -EINVAL, "buffer size %llu out of range",
				 (unsigned long long)size);
	if (kind >= DSV4_KIND_COUNT)
		return dsv4_errf(err, errlen, -EINVAL, "region kind %u unknown", kind);
	ret = check_placement_args(policy, node, err, errlen);
	if (ret)
		return ret;
	b = calloc(1, sizeof(*b));
	if (!b)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	b->pub.mem = m;
	b->pub.size = size;
	b->pub.kind = kind;
	b->pub.policy = policy;
	b->pub.node = policy == DSV4_NUMA_NODE ? node : -1;
	ret = m->kind == DSV4_PROVIDER_KMOD ?
	      kmod_alloc(m, b, size, kind, policy, node, err, errlen) :
	      host_alloc(m, b, size, policy, node, err, errlen);
	if (ret) {
		free(b);
		return ret;
	}
	m->bytes += b->map_len;
	m->peak = m->bytes > m->peak ? m->bytes : m->peak;
	m->buffers++;
	m->unlocked += !b->pub.locked;
	*out = &b->pub;
	return 0;
}

void dsv4_mem_free(struct dsv4_buf *pub)
{
	struct buf_priv *b = (struct buf_priv *)pub;
	struct dsv4_mem *m;

	if (!pub)
		return;
	m = pub->mem;
	munmap(pub->addr, b->map_len);
	if (m->kind == DSV4_PROVIDER_KMOD)
		kmod_release(m, b);	/* with the mapping gone, the region goes */
	if (pub->memfd >= 0)
		close(pub->memfd);
	m->bytes -= b->map_len;
	m->buffers--;
	m->unlocked -= !pub->locked;
	free(b);
}

int dsv4_buf_placement(const struct dsv4_buf *pub, uint64_t *bytes_per_node, uint32_t max_nodes)
{
	const struct buf_priv *b = (const struct buf_priv *)pub;
	struct dsv4_mem *m = pub->mem;

	memset(bytes_per_node, 0, max_nodes * sizeof(*bytes_per_node));
	if (m->kind == DSV4_PROVIDER_KMOD) {
		uint64_t per[1024];

		for (uint32_t i = 0; i < b->n_regions; i++) {
			struct dsv4_region_info ri = { .id = b->region_id[i],
						       .nodes_ptr = (uintptr_t)per,
						       .nodes_count = 1024 };
			int ret = dsv4_kdev_region_info(m->fd, &ri);

			if (ret)
				return ret;
			for (uint32_t n = 0; n < ri.nodes_count && n < max_nodes && n < 1024; n++)
				bytes_per_node[n] += per[n];
		}
		return 0;
	}
	/* host: ask the kernel where each page is */
	uint64_t page = pub->huge ? HUGE_2M : 4096, count = b->map_len / page;
	void **pages = malloc(4096 * sizeof(void *));
	int *status = malloc(4096 * sizeof(int));

	if (!pages || !status) {
		free(pages);
		free(status);
		return -ENOMEM;
	}
	for (uint64_t at = 0; at < count; at += 4096) {
		unsigned long n = count - at < 4096 ? (unsigned long)(count - at) : 4096;

		for (unsigned long i = 0; i < n; i++)
			pages[i] = (char *)pub->addr + (at + i) * page;
		if (move_pages(0, n, pages, NULL, status, 0)) {
			int e = errno;

			free(pages);
			free(status);
			return -e;
		}
		for (unsigned long i = 0; i < n; i++)
			if (status[i] >= 0 && (uint32_t)status[i] < max_nodes)
				bytes_per_node[status[i]] += page;
	}
	free(pages);
	free(status);
	return 0;
}
