// SPDX-License-Identifier: GPL-2.0
/*
 * REGION_IMPORT_MEMFD: pin the pages of a shmem or hugetlbfs memfd into a
 * region (the udmabuf model).  On 6.1, io_uring only accepts anonymous,
 * shmem or hugetlbfs memory as fixed buffers, so a pool that must be both
 * a fixed buffer and a dsv4 region is allocated by userspace as a memfd and
 * imported here.
 *
 * The pages are pinned long-term through a temporary shared mapping of
 * the memfd in the caller's mm (pin_user_pages_fast + FOLL_LONGTERM).  This
 * works the same on every supported kernel (memfd_pin_folios() is 6.10+),
 * faults in missing pages and migrates them out of ZONE_MOVABLE/CMA.  The
 * pins, not the memfd, keep the memory alive: truncating the memfd later
 * does not free it.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/slab.h>

#include "dsv4_core.h"

#define DSV4_PIN_BATCH	(1UL << 16)

static int dsv4_check_memfd(struct file *file, u64 end)
{
	struct inode *inode = file_inode(file);
	unsigned long magic = inode->i_sb->s_magic;

	/* memfds live on tmpfs or hugetlbfs; devtmpfs nodes are not regular */
	if ((magic != TMPFS_MAGIC && magic != HUGETLBFS_MAGIC) ||
	    !S_ISREG(inode->i_mode))
		return -EINVAL;
	if (!(file->f_mode & FMODE_WRITE) || !(file->f_mode & FMODE_READ))
		return -EACCES;
	if (end > (u64)i_size_read(inode))
		return -EINVAL;
	return 0;
}

static int dsv4_pin_range(struct dsv4_region *r, unsigned long addr,
			  struct page **pages)
{
	unsigned long done = 0;

	while (done < r->nr_pages) {
		unsigned long n = min(r->nr_pages - done, DSV4_PIN_BATCH);
		int got;

		if (dsv4_should_fail_pin())
			got = -ENOMEM;
		else
			got = pin_user_pages_fast(addr + (done << PAGE_SHIFT),
						  n, FOLL_WRITE | FOLL_LONGTERM,
						  pages + done);
		if (got <= 0) {
			unpin_user_pages(pages, done);
			return got ? got : -EFAULT;
		}
		done += got;
	}
	return 0;
}

int dsv4_import_memfd(struct dsv4_region *r, int memfd, u64 offset)
{
	struct page **pages = NULL;
	unsigned long addr, i;
	struct file *file;
	int ret;

	file = fget(memfd);
	if (!file)
		return -EBADF;
	ret = dsv4_check_memfd(file, offset + r->size);
	if (ret)
		goto out_fput;

	pages = kvmalloc_array(r->nr_pages, sizeof(*pages),
			       GFP_KERNEL | __GFP_NOWARN);
	r->chunks = kvcalloc(r->nr_pages, sizeof(*r->chunks),
			     GFP_KERNEL | __GFP_NOWARN);
	if (!pages || !r->chunks) {
		ret = -ENOMEM;
		goto out_free;
	}

	addr = vm_mmap(file, 0, r->size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       offset);
	if (IS_ERR_VALUE(addr)) {
		ret = (int)addr;
		goto out_free;
	}
	ret = dsv4_pin_range(r, addr, pages);
	vm_munmap(addr, r->size);
	if (ret)
		goto out_free;

	for (i = 0; i < r->nr_pages; i++) {
		r->chunks[i].page = pages[i];
		r->chunks[i].pgoff = i;
		dsv4_region_account_chunk(r, pages[i], 0);
	}
	r->nr_chunks = r->nr_pages;
out_free:
	kvfree(pages);
	if (ret) {
		kvfree(r->chunks);
		r->chunks = NULL;
	}
out_fput:
	fput(file);
	return ret;
}
