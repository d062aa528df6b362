/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dsv4.ko internals shared between the files of the module.
 */
#ifndef _DSV4_CORE_H
#define _DSV4_CORE_H

#include <linux/atomic.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/xarray.h>

#include "uapi/dsv4.h"

#define DSV4_MODULE_VERSION	"0.2.0"
#define DSV4_MAX_ID		((1U << (63 - DSV4_MMAP_SHIFT)) - 1)

struct file;
struct kobject;
struct mm_struct;
struct page;
struct vm_area_struct;

/* A physically contiguous piece of a region: one folio or pinned page. */
struct dsv4_chunk {
	struct page *page;
	unsigned long pgoff;	/* first page index within the region */
	unsigned int order;
};

struct dsv4_region {
	struct kref ref;
	u32 id;
	u64 size;
	unsigned long nr_pages;
	struct dsv4_chunk *chunks;	/* sorted by pgoff */
	unsigned long nr_chunks;
	u32 kind;
	u32 create_flags;
	int numa_node;
	bool imported;		/* pinned memfd pages, mapped as PFNMAP */
	kuid_t uid;
	kgid_t gid;
	umode_t mode;
	char name[DSV4_NAME_MAX];

	spinlock_t lock;	/* protects state and writers */
	u32 state;		/* DSV4_STATE_* */
	unsigned int writers;	/* writable mappings + RDWR dma-bufs */

	atomic_t handles;	/* open handles in files */
	atomic_t mappings;	/* live VMAs */
	atomic_t dmabufs;	/* live exported dma-bufs */

	/* Memlock charge: pages charged to acct_mm->pinned_vm (or none). */
	struct mm_struct *acct_mm;
	unsigned long acct_pages;

	u64 *node_bytes;	/* [nr_node_ids] */
	u64 huge_bytes;
	struct kobject *kobj;	/* /sys/kernel/dsv4/regions/<id> */
};

/* Per open file of /dev/dsv4. */
struct dsv4_file {
	struct mutex lock;
	struct xarray handles;	/* id -> region (holds a reference) */
};

/* dsv4_main.c: module parameters */
extern unsigned long dsv4_persistent_limit_mb;
extern unsigned int dsv4_max_regions;

/* dsv4_region.c */
struct dsv4_region_params {
	u64 size;
	int node;
	u32 kind;
	u32 flags;
	umode_t mode;
	const char *name;	/* may be empty */
};

int dsv4_regions_init(void);
void dsv4_regions_exit(void);
struct dsv4_region *dsv4_region_new(const struct dsv4_region_params *p);
int dsv4_region_alloc_pages(struct dsv4_region *r, bool huge, bool strict);
void dsv4_region_account_chunk(struct dsv4_region *r, struct page *page,
			       unsigned int order);
int dsv4_region_publish(struct dsv4_region *r);
void dsv4_region_discard(struct dsv4_region *r);
struct dsv4_region *dsv4_region_get_id(u32 id);
struct dsv4_region *dsv4_region_get_name(const char *name);
void dsv4_region_get(struct dsv4_region *r);
void dsv4_region_put(struct dsv4_region *r);
int dsv4_region_unpersist(struct dsv4_region *r);
void dsv4_region_mark_destroyed(struct dsv4_region *r);
bool dsv4_region_may_access(const struct dsv4_region *r, bool write);
bool dsv4_region_is_owner(const struct dsv4_region *r);
int dsv4_region_writer_get(struct dsv4_region *r);
void dsv4_region_writer_put(struct dsv4_region *r);
int dsv4_region_seal(struct dsv4_region *r);
u32 dsv4_region_state(struct dsv4_region *r);
u64 dsv4_region_node_mask(const struct dsv4_region *r);
struct page *dsv4_region_page(const struct dsv4_region *r, u64 offset);
unsigned long dsv4_chunk_pages_left(const struct dsv4_region *r, u64 offset);
typedef int (*dsv4_region_iter_fn)(struct dsv4_region *r, void *arg);
int dsv4_region_for_each(dsv4_region_iter_fn fn, void *arg);
const char *dsv4_kind_name(u32 kind);

/* Module-wide totals (sysfs). */
struct dsv4_stats {
	atomic64_t total_bytes;
	atomic64_t persistent_bytes;
	atomic64_t kind_bytes[DSV4_KIND_COUNT];
	atomic_t regions;
};

extern struct dsv4_stats dsv4_stats;
extern atomic64_t *dsv4_node_bytes;	/* [nr_node_ids] */

/* dsv4_account.c */
int dsv4_account_mm(struct dsv4_region *r, unsigned long pages);
void dsv4_unaccount(struct dsv4_region *r);
int dsv4_account_persistent(u64 bytes);
void dsv4_unaccount_persistent(u64 bytes);
u64 dsv4_persistent_limit_bytes(void);

/* dsv4_file.c: per-file handles */
int dsv4_file_add(struct dsv4_file *f, struct dsv4_region *r, bool writable);
struct dsv4_region *dsv4_file_get(struct dsv4_file *f, u32 id, bool *writable);
int dsv4_file_drop(struct dsv4_file *f, u32 id);
void dsv4_file_release_all(struct dsv4_file *f);

/* dsv4_ioctl.c */
long dsv4_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* dsv4_mmap.c */
int dsv4_mmap(struct file *file, struct vm_area_struct *vma);
int dsv4_region_mmap_range(struct dsv4_region *r, struct vm_area_struct *vma,
			   u64 offset);

/* dsv4_import.c */
int dsv4_import_memfd(struct dsv4_region *r, int memfd, u64 offset);

/* dsv4_dmabuf.c */
struct dma_buf;
struct dma_buf *dsv4_export_dmabuf(struct dsv4_region *r, u64 offset, u64 size,
				   u32 flags);
struct seq_file;
int dsv4_dmabuf_show(struct seq_file *m, void *unused);

/* dsv4_sysfs.c */
int dsv4_sysfs_init(void);
void dsv4_sysfs_exit(void);
int dsv4_sysfs_region_add(struct dsv4_region *r);
void dsv4_sysfs_region_del(struct dsv4_region *r);

/* dsv4_debugfs.c: fault injection and the region table */
void dsv4_debugfs_init(void);
void dsv4_debugfs_exit(void);
bool dsv4_should_fail_alloc(void);
bool dsv4_should_fail_pin(void);

#endif /* _DSV4_CORE_H */
