// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl dispatch and argument validation (see the extensibility rule in
 * uapi/dsv4.h; every errno is listed in kmod/README.md).
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/dma-buf.h>
#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/nodemask.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "dsv4_core.h"
#include "dsv4_trace.h"

#define DSV4_ARG_MAX		4096
#define DSV4_ENTRY_SIZE_MAX	1024

/*
 * What an ioctl leaves for after its result reached userspace: an fd to
 * install (never before: a failed copy would leak it), or a new handle
 * to take back if the copy fails.
 */
struct dsv4_ioctl_ctx {
	struct dma_buf *install_buf;
	int install_fd;
	u32 undo_id;
};

struct dsv4_ioctl_desc {
	size_t ksize;	/* the kernel's struct size */
	size_t minsize;	/* DSV4_*_SIZE_VER0 */
	int (*fn)(struct dsv4_file *f, void *arg, struct dsv4_ioctl_ctx *ctx);
};

static int dsv4_get_info(struct dsv4_file *f, void *arg,
			 struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_info *info = arg;
	unsigned int nid;

	if (info->flags)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	info->abi_version = DSV4_ABI_VERSION;
	info->features = DSV4_FEAT_REGIONS | DSV4_FEAT_PERSISTENT |
			 DSV4_FEAT_IMPORT_MEMFD | DSV4_FEAT_DMABUF |
			 DSV4_FEAT_HUGE | DSV4_FEAT_FAULT_INJECT;
	info->page_size = PAGE_SIZE;
	info->huge_size = PAGE_SIZE << HPAGE_PMD_ORDER;
	info->nr_online_nodes = num_online_nodes();
	info->nr_node_ids = nr_node_ids;
	for_each_online_node(nid)
		if (nid < 256)
			info->online_nodes[nid / 64] |= 1ULL << (nid % 64);
	info->max_region_size = DSV4_REGION_MAX_SIZE;
	strscpy(info->version, DSV4_MODULE_VERSION, sizeof(info->version));
	return 0;
}

/* A name field must be NUL-terminated within DSV4_NAME_MAX. */
static int dsv4_check_name(const char *name)
{
	return strnlen(name, DSV4_NAME_MAX) < DSV4_NAME_MAX ? 0 : -ENAMETOOLONG;
}

static int dsv4_check_node(int node)
{
	if (node == DSV4_NODE_ANY)
		return 0;
	if (node < 0 || node >= nr_node_ids)
		return -EINVAL;
	if (!node_online(node) || !node_state(node, N_MEMORY))
		return -ENODEV;
	return 0;
}

static int dsv4_check_size(u64 size)
{
	if (!size || !PAGE_ALIGNED(size))
		return -EINVAL;
	if (size > DSV4_REGION_MAX_SIZE)
		return -EFBIG;
	if ((size >> PAGE_SHIFT) > totalram_pages())
		return -ENOMEM;
	return 0;
}

static u64 dsv4_mmap_offset(const struct dsv4_region *r)
{
	return (u64)r->id << DSV4_MMAP_SHIFT;
}

static int dsv4_region_create(struct dsv4_file *f, void *arg,
			      struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region_create *c = arg;
	bool persistent = c->flags & DSV4_REGION_PERSISTENT;
	struct dsv4_region_params p;
	struct dsv4_region *r;
	int ret;

	if (c->flags & ~DSV4_REGION_CREATE_FLAGS)
		return -EINVAL;
	if (c->kind >= DSV4_KIND_COUNT || c->mode & ~0777)
		return -EINVAL;
	ret = dsv4_check_name(c->name);
	if (ret)
		return ret;
	if ((persistent || c->mode) && !c->name[0])
		return -EINVAL;	/* persistence and mode need a name */
	ret = dsv4_check_size(c->size);
	if (ret)
		return ret;
	ret = dsv4_check_node(c->numa_node);
	if (ret)
		return ret;

	p = (struct dsv4_region_params){
		.size = c->size, .node = c->numa_node, .kind = c->kind,
		.flags = c->flags, .mode = c->mode ? c->mode : 0600,
		.name = c->name,
	};
	r = dsv4_region_new(&p);
	if (!r)
		return -ENOMEM;

	/* Charge before allocating: a limit is a clear errno, never an OOM. */
	if (persistent)
		ret = dsv4_account_persistent(c->size);
	else
		ret = dsv4_account_mm(r, r->nr_pages);
	if (ret)
		goto err_discard;
	ret = dsv4_region_alloc_pages(r, c->flags & DSV4_REGION_HUGE,
				      c->numa_node != DSV4_NODE_ANY &&
				      !(c->flags & DSV4_REGION_PREFERRED));
	if (ret)
		goto err_unaccount;
	ret = dsv4_region_publish(r);
	if (ret)
		goto err_unaccount;
	ret = dsv4_file_add(f, r, true);
	/* From here the handle and, if persistent, the module hold it. */
	if (!ret) {
		trace_dsv4_region_create(r->id, r->size, r->kind,
					 r->numa_node, r->create_flags);
		c->id = r->id;
		c->mmap_offset = dsv4_mmap_offset(r);
		ctx->undo_id = r->id;
	} else if (persistent) {
		dsv4_region_unpersist(r);	/* nobody could reach it */
	}
	dsv4_region_put(r);
	return ret;

err_unaccount:
	if (persistent)
		dsv4_unaccount_persistent(c->size);
err_discard:
	dsv4_region_discard(r);
	return ret;
}

static bool dsv4_region_visible(const struct dsv4_region *r)
{
	return dsv4_region_is_owner(r) || dsv4_region_may_access(r, false);
}

/* A handle of this file, or else any region the caller may read. */
static struct dsv4_region *dsv4_lookup(struct dsv4_file *f, u64 id)
{
	struct dsv4_region *r;

	if (!id || id > DSV4_MAX_ID)
		return ERR_PTR(-ENOENT);
	r = dsv4_file_get(f, id, NULL);
	if (r)
		return r;
	r = dsv4_region_get_id(id);
	if (!r)
		return ERR_PTR(-ENOENT);
	if (!dsv4_region_visible(r)) {
		dsv4_region_put(r);
		return ERR_PTR(-EACCES);
	}
	return r;
}

static int dsv4_region_info(struct dsv4_file *f, void *arg,
			    struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region_info *info = arg;
	u64 __user *nodes = u64_to_user_ptr(info->nodes_ptr);
	struct dsv4_region *r;
	u32 n;
	int ret = 0;

	if (info->flags)
		return -EINVAL;
	if (info->nodes_count && !info->nodes_ptr)
		return -EFAULT;
	r = dsv4_lookup(f, info->id);
	if (IS_ERR(r))
		return PTR_ERR(r);

	n = min_t(u32, info->nodes_count, nr_node_ids);
	if (n && copy_to_user(nodes, r->node_bytes, n * sizeof(u64))) {
		ret = -EFAULT;
		goto out;
	}
	info->nodes_count = nr_node_ids;
	info->size = r->size;
	info->mmap_offset = dsv4_mmap_offset(r);
	info->kind = r->kind;
	info->state = dsv4_region_state(r);
	info->numa_node = r->numa_node;
	info->create_flags = r->create_flags;
	info->uid = from_kuid_munged(current_user_ns(), r->uid);
	info->mode = r->mode;
	info->refs = kref_read(&r->ref) - 1;	/* minus this lookup */
	info->mappings = atomic_read(&r->mappings);
	info->huge_bytes = r->huge_bytes;
	memcpy(info->name, r->name, sizeof(info->name));
out:
	dsv4_region_put(r);
	return ret;
}

struct dsv4_list_ctx {
	struct dsv4_region_list *list;
	u8 __user *dst;
};

static int dsv4_list_one(struct dsv4_region *r, void *arg)
{
	struct dsv4_list_ctx *ctx = arg;
	struct dsv4_region_list *l = ctx->list;
	struct dsv4_region_entry e = {};
	u8 __user *dst;

	if (!dsv4_region_visible(r))
		return 0;
	if (l->count < l->capacity) {
		e.id = r->id;
		e.size = r->size;
		e.node_mask = dsv4_region_node_mask(r);
		e.kind = r->kind;
		e.state = dsv4_region_state(r);
		e.numa_node = r->numa_node;
		e.refs = kref_read(&r->ref) - 1;	/* minus the walk's */
		e.uid = from_kuid_munged(current_user_ns(), r->uid);
		e.mode = r->mode;
		memcpy(e.name, r->name, sizeof(e.name));
		dst = ctx->dst + (size_t)l->count * l->entry_size;
		if (copy_to_user(dst, &e, min_t(size_t, l->entry_size, sizeof(e))))
			return -EFAULT;
		/* Entry fields this kernel does not know read as zero. */
		if (l->entry_size > sizeof(e) &&
		    clear_user(dst + sizeof(e), l->entry_size - sizeof(e)))
			return -EFAULT;
	}
	l->count++;
	return 0;
}

static int dsv4_region_list(struct dsv4_file *f, void *arg,
			    struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region_list *l = arg;
	struct dsv4_list_ctx lc = { .list = l };
	size_t bytes;

	if (l->flags)
		return -EINVAL;
	if (l->capacity && (l->entry_size < DSV4_REGION_ENTRY_SIZE_VER0 ||
			    l->entry_size > DSV4_ENTRY_SIZE_MAX))
		return -EINVAL;
	if (check_mul_overflow((size_t)l->capacity, (size_t)l->entry_size,
			       &bytes))
		return -EOVERFLOW;
	lc.dst = u64_to_user_ptr(l->entries_ptr);
	if (l->capacity && (!l->entries_ptr || !access_ok(lc.dst, bytes)))
		return -EFAULT;
	l->count = 0;
	return dsv4_region_for_each(dsv4_list_one, &lc);
}

/* The region a struct dsv4_region_id names, after checking its MBZ fields. */
static struct dsv4_region *dsv4_lookup_id_arg(struct dsv4_file *f,
					      const struct dsv4_region_id *a)
{
	if (a->flags || a->reserved)
		return ERR_PTR(-EINVAL);
	return dsv4_lookup(f, a->id);
}

static int dsv4_region_destroy(struct dsv4_file *f, void *arg,
			       struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region *r = dsv4_lookup_id_arg(f, arg);
	int ret;

	if (IS_ERR(r))
		return PTR_ERR(r);
	if (dsv4_region_state(r) & DSV4_STATE_PERSISTENT) {
		if (!dsv4_region_is_owner(r)) {
			ret = -EPERM;
			goto out;
		}
		dsv4_file_drop(f, r->id);	/* no handle here is fine */
		ret = dsv4_region_unpersist(r);
	} else {
		ret = dsv4_file_drop(f, r->id);
		if (!ret && dsv4_region_is_owner(r))
			dsv4_region_mark_destroyed(r);
	}
	if (!ret)
		trace_dsv4_region_destroy(r->id);
out:
	dsv4_region_put(r);
	return ret;
}

static int dsv4_region_close(struct dsv4_file *f, void *arg,
			     struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region_id *a = arg;

	if (a->flags || a->reserved)
		return -EINVAL;
	if (!a->id || a->id > DSV4_MAX_ID)
		return -ENOENT;
	return dsv4_file_drop(f, a->id);
}

static int dsv4_region_open(struct dsv4_file *f, void *arg,
			    struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region_open *o = arg;
	bool write = o->flags & DSV4_OPEN_WRITE;
	struct dsv4_region *r;
	int ret;

	if (o->flags & ~DSV4_OPEN_FLAGS)
		return -EINVAL;
	ret = dsv4_check_name(o->name);
	if (ret)
		return ret;
	if (!o->name[0])
		return -EINVAL;
	r = dsv4_region_get_name(o->name);
	if (!r)
		return -ENOENT;
	if (!dsv4_region_may_access(r, write)) {
		ret = -EACCES;
		goto out;
	}
	if (write && (dsv4_region_state(r) & DSV4_STATE_SEALED)) {
		ret = -EPERM;
		goto out;
	}
	ret = dsv4_file_add(f, r, write);
	if (ret == -EEXIST)
		ret = 0;	/* already open in this file: same handle */
	if (ret)
		goto out;
	o->id = r->id;
	o->kind = r->kind;
	o->size = r->size;
	o->mmap_offset = dsv4_mmap_offset(r);
out:
	dsv4_region_put(r);
	return ret;
}

static int dsv4_region_seal_ioctl(struct dsv4_file *f, void *arg,
				  struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region *r = dsv4_lookup_id_arg(f, arg);
	int ret;

	if (IS_ERR(r))
		return PTR_ERR(r);
	ret = dsv4_region_is_owner(r) ? dsv4_region_seal(r) : -EPERM;
	dsv4_region_put(r);
	return ret;
}

static int dsv4_region_import(struct dsv4_file *f, void *arg,
			      struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region_import *im = arg;
	struct dsv4_region_params p = {};
	struct dsv4_region *r;
	u64 end;
	int ret;

	if (im->flags || im->reserved || im->kind >= DSV4_KIND_COUNT)
		return -EINVAL;
	if (!PAGE_ALIGNED(im->offset))
		return -EINVAL;
	ret = dsv4_check_size(im->size);
	if (ret)
		return ret;
	if (check_add_overflow(im->offset, im->size, &end) ||
	    end > (u64)MAX_LFS_FILESIZE)
		return -EOVERFLOW;

	p.size = im->size;
	p.node = DSV4_NODE_ANY;
	p.kind = im->kind;
	p.mode = 0600;
	r = dsv4_region_new(&p);
	if (!r)
		return -ENOMEM;
	r->imported = true;
	ret = dsv4_account_mm(r, r->nr_pages);
	if (ret)
		goto err;
	ret = dsv4_import_memfd(r, im->memfd, im->offset);
	if (ret)
		goto err;
	ret = dsv4_region_publish(r);
	if (ret)
		goto err;
	ret = dsv4_file_add(f, r, true);
	if (!ret) {
		trace_dsv4_region_import(r->id, r->size, im->memfd);
		im->id = r->id;
		im->mmap_offset = dsv4_mmap_offset(r);
		ctx->undo_id = r->id;
	}
	dsv4_region_put(r);
	return ret;
err:
	dsv4_region_discard(r);
	return ret;
}

static int dsv4_region_export(struct dsv4_file *f, void *arg,
			      struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region_export *ex = arg;
	struct dsv4_region *r;
	struct dma_buf *buf;
	bool writable;
	u64 end;
	int ret;

	if (ex->flags & ~DSV4_EXPORT_FLAGS)
		return -EINVAL;
	if (!PAGE_ALIGNED(ex->offset) || !PAGE_ALIGNED(ex->size))
		return -EINVAL;
	if (!ex->id || ex->id > DSV4_MAX_ID)
		return -ENOENT;
	r = dsv4_file_get(f, ex->id, &writable);
	if (!r)
		return -ENOENT;
	if ((ex->flags & DSV4_EXPORT_RDWR) && !writable) {
		ret = -EACCES;	/* a read-only handle */
		goto out;
	}
	if (ex->offset >= r->size ||
	    check_add_overflow(ex->offset, ex->size, &end) || end > r->size) {
		ret = -EINVAL;
		goto out;
	}
	if (!ex->size)
		ex->size = r->size - ex->offset;
	buf = dsv4_export_dmabuf(r, ex->offset, ex->size, ex->flags);
	if (IS_ERR(buf)) {
		ret = PTR_ERR(buf);
		goto out;
	}
	ret = get_unused_fd_flags(ex->flags & DSV4_EXPORT_CLOEXEC ? O_CLOEXEC : 0);
	if (ret < 0) {
		dma_buf_put(buf);
		goto out;
	}
	ex->fd = ret;
	ctx->install_buf = buf;	/* installed once the result is copied out */
	ctx->install_fd = ret;
	trace_dsv4_region_export(r->id, ex->offset, ex->size, ex->flags);
	ret = 0;
out:
	dsv4_region_put(r);
	return ret;
}

#define DSV4_IOCTL(_cmd, _type, _ver0, _fn) \
	[_IOC_NR(_cmd)] = { .ksize = sizeof(_type), .minsize = _ver0, \
			    .fn = _fn }

static const struct dsv4_ioctl_desc dsv4_ioctls[] = {
	DSV4_IOCTL(DSV4_IOC_GET_INFO, struct dsv4_info, DSV4_INFO_SIZE_VER0,
		   dsv4_get_info),
	DSV4_IOCTL(DSV4_IOC_REGION_CREATE, struct dsv4_region_create,
		   DSV4_REGION_CREATE_SIZE_VER0, dsv4_region_create),
	DSV4_IOCTL(DSV4_IOC_REGION_INFO, struct dsv4_region_info,
		   DSV4_REGION_INFO_SIZE_VER0, dsv4_region_info),
	DSV4_IOCTL(DSV4_IOC_REGION_LIST, struct dsv4_region_list,
		   DSV4_REGION_LIST_SIZE_VER0, dsv4_region_list),
	DSV4_IOCTL(DSV4_IOC_REGION_DESTROY, struct dsv4_region_id,
		   DSV4_REGION_ID_SIZE_VER0, dsv4_region_destroy),
	DSV4_IOCTL(DSV4_IOC_REGION_OPEN, struct dsv4_region_open,
		   DSV4_REGION_OPEN_SIZE_VER0, dsv4_region_open),
	DSV4_IOCTL(DSV4_IOC_REGION_SEAL, struct dsv4_region_id,
		   DSV4_REGION_ID_SIZE_VER0, dsv4_region_seal_ioctl),
	DSV4_IOCTL(DSV4_IOC_REGION_IMPORT_MEMFD, struct dsv4_region_import,
		   DSV4_REGION_IMPORT_SIZE_VER0, dsv4_region_import),
	DSV4_IOCTL(DSV4_IOC_REGION_EXPORT_DMABUF, struct dsv4_region_export,
		   DSV4_REGION_EXPORT_SIZE_VER0, dsv4_region_export),
	DSV4_IOCTL(DSV4_IOC_REGION_CLOSE, struct dsv4_region_id,
		   DSV4_REGION_ID_SIZE_VER0, dsv4_region_close),
};

/* The result could not be copied out: take back what the ioctl made. */
static void dsv4_ioctl_undo(struct dsv4_file *f, struct dsv4_ioctl_ctx *ctx)
{
	struct dsv4_region *r;

	if (ctx->install_buf) {
		put_unused_fd(ctx->install_fd);
		dma_buf_put(ctx->install_buf);
	}
	if (!ctx->undo_id)
		return;
	r = dsv4_file_get(f, ctx->undo_id, NULL);
	if (!r)
		return;
	if (r->create_flags & DSV4_REGION_PERSISTENT)
		dsv4_region_unpersist(r);
	dsv4_file_drop(f, ctx->undo_id);
	dsv4_region_put(r);
}

long dsv4_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct dsv4_ioctl_ctx ctx = {};
	const struct dsv4_ioctl_desc *d;
	void __user *uarg = (void __user *)arg;
	size_t usize = _IOC_SIZE(cmd);
	u8 kbuf[256] __aligned(8);
	int ret;

	BUILD_BUG_ON(sizeof(struct dsv4_region_info) > sizeof(kbuf));
	BUILD_BUG_ON(sizeof(struct dsv4_region_entry) !=
		     DSV4_REGION_ENTRY_SIZE_VER0);
	if (_IOC_TYPE(cmd) != DSV4_IOC_MAGIC ||
	    _IOC_NR(cmd) >= ARRAY_SIZE(dsv4_ioctls))
		return -ENOTTY;
	d = &dsv4_ioctls[_IOC_NR(cmd)];
	if (!d->fn || _IOC_DIR(cmd) != (_IOC_READ | _IOC_WRITE))
		return -ENOTTY;
	if (usize < d->minsize)
		return -EINVAL;
	if (usize > DSV4_ARG_MAX)
		return -E2BIG;

	/* Zero-fills a short struct; E2BIG on a non-zero unknown tail. */
	ret = copy_struct_from_user(kbuf, d->ksize, uarg, usize);
	if (ret)
		return ret;
	ret = d->fn(file->private_data, kbuf, &ctx);
	if (ret)
		return ret;
	if (copy_to_user(uarg, kbuf, min(usize, d->ksize))) {
		dsv4_ioctl_undo(file->private_data, &ctx);
		return -EFAULT;
	}
	if (ctx.install_buf)
		fd_install(ctx.install_fd, ctx.install_buf->file);
	return 0;
}
