// SPDX-License-Identifier: GPL-2.0
/*
 * Per-file region handles: what an open /dev/dsv4 may mmap, export and
 * destroy.  Each handle holds one region reference, dropped on
 * REGION_CLOSE/REGION_DESTROY or when the file is released.  A handle is
 * read-only or writable, like a file descriptor: only a writable handle
 * maps with write access or exports a RDWR dma-buf.
 */

#define DSV4_HANDLE_WRITABLE	XA_MARK_1
#include <linux/slab.h>

#include "dsv4_core.h"

/*
 * Adds a handle on @r.  If this file already has one, it stays (and is
 * made writable when @writable): -EEXIST tells the caller.
 */
int dsv4_file_add(struct dsv4_file *f, struct dsv4_region *r, bool writable)
{
	int ret;

	dsv4_region_get(r);
	mutex_lock(&f->lock);
	ret = xa_insert(&f->handles, r->id, r, GFP_KERNEL);
	if (!ret)
		atomic_inc(&r->handles);	/* before a CLOSE can see it */
	if ((!ret || ret == -EBUSY) && writable)
		xa_set_mark(&f->handles, r->id, DSV4_HANDLE_WRITABLE);
	mutex_unlock(&f->lock);
	if (ret) {
		dsv4_region_put(r);
		return ret == -EBUSY ? -EEXIST : ret;
	}
	return 0;
}

/*
 * A new reference to region @id if this file holds a handle on it;
 * *@writable (if not NULL) says whether the handle grants write access.
 */
struct dsv4_region *dsv4_file_get(struct dsv4_file *f, u32 id, bool *writable)
{
	struct dsv4_region *r;

	mutex_lock(&f->lock);
	r = xa_load(&f->handles, id);
	if (r) {
		dsv4_region_get(r);
		if (writable)
			*writable = xa_get_mark(&f->handles, id,
						DSV4_HANDLE_WRITABLE);
	}
	mutex_unlock(&f->lock);
	return r;
}

static void dsv4_handle_put(struct dsv4_region *r)
{
	/* The last handle of a private region ends its name's life. */
	if (atomic_dec_and_test(&r->handles) &&
	    !(r->create_flags & DSV4_REGION_PERSISTENT))
		dsv4_region_mark_destroyed(r);
	dsv4_region_put(r);
}

int dsv4_file_drop(struct dsv4_file *f, u32 id)
{
	struct dsv4_region *r;

	mutex_lock(&f->lock);
	r = xa_erase(&f->handles, id);
	mutex_unlock(&f->lock);
	if (!r)
		return -ENOENT;
	dsv4_handle_put(r);
	return 0;
}

void dsv4_file_release_all(struct dsv4_file *f)
{
	struct dsv4_region *r;
	unsigned long id;

	xa_for_each(&f->handles, id, r) {
		xa_erase(&f->handles, id);
		dsv4_handle_put(r);
	}
	xa_destroy(&f->handles);
}
