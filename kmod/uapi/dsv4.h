/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dsv4 user API: the one header shared by dsv4.ko and userspace.
 *
 * Extensibility rule (every ioctl):
 *  - The ioctl number encodes the struct size (_IOWR).  The kernel reads
 *    the caller's size from the number, not from the struct.
 *  - A caller struct smaller than the kernel's is accepted as long as it is
 *    at least the size of the first ABI version of that struct
 *    (DSV4_*_SIZE_VER0); missing input fields read as zero and output is
 *    truncated to the caller's size.  Smaller than VER0: EINVAL.
 *  - A caller struct larger than the kernel's is accepted only if every byte
 *    past the kernel's size is zero; otherwise E2BIG.
 *  - Reserved fields and undefined flag bits must be zero; otherwise EINVAL.
 *  - Sizes are capped at 4 KiB; beyond that: E2BIG.
 */
#ifndef _UAPI_DSV4_H
#define _UAPI_DSV4_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define DSV4_DEVICE_NAME	"dsv4"
#define DSV4_ABI_VERSION	1
#define DSV4_IOC_MAGIC		0xD4
#define DSV4_NAME_MAX		64	/* including the terminating NUL */
#define DSV4_VERSION_LEN	32

/* Region mmap offsets: region id << DSV4_MMAP_SHIFT, so one region < 1 TiB. */
#define DSV4_MMAP_SHIFT		40
#define DSV4_REGION_MAX_SIZE	(1ULL << DSV4_MMAP_SHIFT)

/* dsv4_info.features */
#define DSV4_FEAT_REGIONS	(1ULL << 0)	/* REGION_CREATE/INFO/LIST/DESTROY */
#define DSV4_FEAT_PERSISTENT	(1ULL << 1)	/* PERSISTENT + OPEN + SEAL */
#define DSV4_FEAT_IMPORT_MEMFD	(1ULL << 2)
#define DSV4_FEAT_DMABUF	(1ULL << 3)
#define DSV4_FEAT_HUGE		(1ULL << 4)	/* 2 MiB folio backing */
#define DSV4_FEAT_FAULT_INJECT	(1ULL << 5)	/* debugfs fault injection */

struct dsv4_info {
	__u32 flags;		/* in: must be 0 */
	__u32 abi_version;	/* out: DSV4_ABI_VERSION */
	__u64 features;		/* out: DSV4_FEAT_* */
	__u32 page_size;	/* out: PAGE_SIZE */
	__u32 huge_size;	/* out: bytes of the largest folio used (PMD) */
	__u32 nr_online_nodes;	/* out */
	__u32 nr_node_ids;	/* out: highest possible node id + 1 */
	__u64 online_nodes[4];	/* out: bitmap of online nodes 0..255 */
	__u64 max_region_size;	/* out */
	char version[DSV4_VERSION_LEN];	/* out: module version, NUL-terminated */
};
#define DSV4_INFO_SIZE_VER0	104

/* Region kinds: what the memory holds (used for per-kind accounting). */
enum dsv4_region_kind {
	DSV4_KIND_GENERIC = 0,
	DSV4_KIND_ENGRAM_TABLE = 1,
	DSV4_KIND_EXPERT_STAGING = 2,
	DSV4_KIND_KV_SPILL = 3,
	DSV4_KIND_COUNT
};

/* dsv4_region_create.flags */
#define DSV4_REGION_HUGE	(1U << 0) /* prefer 2 MiB folios, fall back */
#define DSV4_REGION_PERSISTENT	(1U << 1) /* outlives the creator; needs name */
#define DSV4_REGION_PREFERRED	(1U << 2) /* numa_node is a preference */
#define DSV4_REGION_CREATE_FLAGS \
	(DSV4_REGION_HUGE | DSV4_REGION_PERSISTENT | DSV4_REGION_PREFERRED)

/* State bits reported in dsv4_region_info.state / dsv4_region_entry.state */
#define DSV4_STATE_SEALED	(1U << 0)
#define DSV4_STATE_PERSISTENT	(1U << 1)
#define DSV4_STATE_IMPORTED	(1U << 2)
#define DSV4_STATE_DESTROYED	(1U << 3) /* destroyed, alive through refs */

#define DSV4_NODE_ANY		(-1)

struct dsv4_region_create {
	__u64 size;		/* in: bytes, page aligned, > 0 */
	__s32 numa_node;	/* in: node id or DSV4_NODE_ANY (local) */
	__u32 kind;		/* in: enum dsv4_region_kind */
	__u32 flags;		/* in: DSV4_REGION_* */
	__u32 mode;		/* in: 0..0777 for named regions (0 = 0600) */
	char name[DSV4_NAME_MAX]; /* in: NUL-terminated, required if PERSISTENT */
	__u64 id;		/* out */
	__u64 mmap_offset;	/* out: pass to mmap() */
};
#define DSV4_REGION_CREATE_SIZE_VER0	104

struct dsv4_region_info {
	__u64 id;		/* in */
	__u64 nodes_ptr;	/* in: optional __u64[nodes_count] -> bytes per node */
	__u32 nodes_count;	/* in: capacity of nodes_ptr; out: nr_node_ids */
	__u32 flags;		/* in: must be 0 */
	__u64 size;		/* out */
	__u64 mmap_offset;	/* out */
	__u32 kind;		/* out */
	__u32 state;		/* out: DSV4_STATE_* */
	__s32 numa_node;	/* out: requested node (-1 = any) */
	__u32 create_flags;	/* out */
	__u32 uid;		/* out: owner */
	__u32 mode;		/* out */
	__u32 refs;		/* out: handles + mappings + dma-bufs + persistence */
	__u32 mappings;		/* out: live mmaps */
	__u64 huge_bytes;	/* out: bytes backed by 2 MiB folios */
	char name[DSV4_NAME_MAX]; /* out */
};
#define DSV4_REGION_INFO_SIZE_VER0	144

struct dsv4_region_entry {
	__u64 id;
	__u64 size;
	__u64 node_mask;	/* nodes 0..63 holding pages of the region */
	__u32 kind;
	__u32 state;
	__s32 numa_node;
	__u32 refs;
	__u32 uid;
	__u32 mode;
	char name[DSV4_NAME_MAX];
};
#define DSV4_REGION_ENTRY_SIZE_VER0	112

struct dsv4_region_list {
	__u64 entries_ptr;	/* in: struct dsv4_region_entry[capacity] */
	__u32 capacity;		/* in */
	__u32 entry_size;	/* in: sizeof(struct dsv4_region_entry) */
	__u32 count;		/* out: regions visible to the caller */
	__u32 flags;		/* in: must be 0 */
};
#define DSV4_REGION_LIST_SIZE_VER0	24

struct dsv4_region_id {
	__u64 id;		/* in */
	__u32 flags;		/* in: must be 0 */
	__u32 reserved;		/* in: must be 0 */
};
#define DSV4_REGION_ID_SIZE_VER0	16

struct dsv4_region_open {
	char name[DSV4_NAME_MAX]; /* in */
	__u32 flags;		/* in: DSV4_OPEN_* */
	__u32 kind;		/* out */
	__u64 id;		/* out */
	__u64 size;		/* out */
	__u64 mmap_offset;	/* out */
};
#define DSV4_REGION_OPEN_SIZE_VER0	96
#define DSV4_OPEN_WRITE		(1U << 0) /* need write access (mode w bit) */
#define DSV4_OPEN_FLAGS		(DSV4_OPEN_WRITE)

struct dsv4_region_import {
	__s32 memfd;		/* in: shmem or hugetlbfs memfd, O_RDWR */
	__u32 flags;		/* in: must be 0 */
	__u64 offset;		/* in: page aligned offset in the memfd */
	__u64 size;		/* in: page aligned, > 0 */
	__u32 kind;		/* in */
	__u32 reserved;		/* in: must be 0 */
	__u64 id;		/* out */
	__u64 mmap_offset;	/* out */
};
#define DSV4_REGION_IMPORT_SIZE_VER0	48

struct dsv4_region_export {
	__u64 id;		/* in */
	__u64 offset;		/* in: page aligned */
	__u64 size;		/* in: page aligned (0 = rest of region) */
	__u32 flags;		/* in: DSV4_EXPORT_* */
	__s32 fd;		/* out: dma-buf fd */
};
#define DSV4_REGION_EXPORT_SIZE_VER0	32
#define DSV4_EXPORT_CLOEXEC	(1U << 0)
#define DSV4_EXPORT_RDWR	(1U << 1)
#define DSV4_EXPORT_FLAGS	(DSV4_EXPORT_CLOEXEC | DSV4_EXPORT_RDWR)

#define DSV4_IOC_GET_INFO	_IOWR(DSV4_IOC_MAGIC, 0x00, struct dsv4_info)
#define DSV4_IOC_REGION_CREATE	_IOWR(DSV4_IOC_MAGIC, 0x01, struct dsv4_region_create)
#define DSV4_IOC_REGION_INFO	_IOWR(DSV4_IOC_MAGIC, 0x02, struct dsv4_region_info)
#define DSV4_IOC_REGION_LIST	_IOWR(DSV4_IOC_MAGIC, 0x03, struct dsv4_region_list)
#define DSV4_IOC_REGION_DESTROY	_IOWR(DSV4_IOC_MAGIC, 0x04, struct dsv4_region_id)
#define DSV4_IOC_REGION_OPEN	_IOWR(DSV4_IOC_MAGIC, 0x05, struct dsv4_region_open)
#define DSV4_IOC_REGION_SEAL	_IOWR(DSV4_IOC_MAGIC, 0x06, struct dsv4_region_id)
#define DSV4_IOC_REGION_IMPORT_MEMFD \
	_IOWR(DSV4_IOC_MAGIC, 0x07, struct dsv4_region_import)
#define DSV4_IOC_REGION_EXPORT_DMABUF \
	_IOWR(DSV4_IOC_MAGIC, 0x08, struct dsv4_region_export)
#define DSV4_IOC_REGION_CLOSE	_IOWR(DSV4_IOC_MAGIC, 0x09, struct dsv4_region_id)

#endif /* _UAPI_DSV4_H */
