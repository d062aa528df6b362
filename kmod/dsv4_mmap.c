// SPDX-License-Identifier: GPL-2.0
/*
 * mmap of a region through /dev/dsv4.
 *
 * Own regions are mapped with real struct pages (vm_insert_pages,
 * VM_MIXEDMAP), never VM_PFNMAP, so GUP can pin the mapping: io_uring
 * fixed buffers (kernel >= 6.5) and cudaHostRegister work on it.  All PTEs
 * are installed at mmap time, so access after mmap takes no page fault;
 * the fault handler only refills PTEs that madvise(MADV_DONTNEED) zapped.
 *
 * Imported regions are pages of someone else's memfd: they are mapped by
 * pfn (VM_PFNMAP) so the memfd's own rmap is never confused; pin the
 * memfd's own mapping instead.
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/slab.h>

#include "dsv4_compat.h"
#include "dsv4_core.h"

#define DSV4_INSERT_BATCH	512

static bool dsv4_vma_counts_writer(const struct vm_area_struct *vma)
{
	return (vma->vm_flags & (VM_SHARED | VM_MAYWRITE)) ==
	       (VM_SHARED | VM_MAYWRITE);
}

static void dsv4_vm_open(struct vm_area_struct *vma)
{
	struct dsv4_region *r = vma->vm_private_data;

	dsv4_region_get(r);
	atomic_inc(&r->mappings);
	if (dsv4_vma_counts_writer(vma)) {
		/* A split of a writable VMA: sealing must wait for both. */
		spin_lock(&r->lock);
		r->writers++;
		spin_unlock(&r->lock);
	}
}

static void dsv4_vm_close(struct vm_area_struct *vma)
{
	struct dsv4_region *r = vma->vm_private_data;

	if (dsv4_vma_counts_writer(vma))
		dsv4_region_writer_put(r);
	atomic_dec(&r->mappings);
	dsv4_region_put(r);
}

static int dsv4_vm_mremap(struct vm_area_struct *vma)
{
	return -EINVAL;	/* regions stay where they were mapped */
}

/* The region offset of @addr: the low vm_pgoff bits are the offset. */
static u64 dsv4_vma_offset(struct vm_area_struct *vma, unsigned long addr)
{
	u64 base = vma->vm_pgoff &
		   ((1ULL << (DSV4_MMAP_SHIFT - PAGE_SHIFT)) - 1);

	return (base << PAGE_SHIFT) + (addr - vma->vm_start);
}

static vm_fault_t dsv4_vm_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct dsv4_region *r = vma->vm_private_data;
	unsigned long addr = vmf->address & PAGE_MASK;
	struct page *page = dsv4_region_page(r, dsv4_vma_offset(vma, addr));

	if (!page)
		return VM_FAULT_SIGBUS;
	if (r->imported)
		return vmf_insert_pfn(vma, addr, page_to_pfn(page));
	return vmf_insert_page(vma, addr, page);
}

static const struct vm_operations_struct dsv4_vm_ops = {
	.open = dsv4_vm_open,
	.close = dsv4_vm_close,
	.mremap = dsv4_vm_mremap,
	.fault = dsv4_vm_fault,
};

/*
 * Install PTEs for the whole VMA from region byte @offset on.  Shared with
 * the dma-buf mmap path; the caller checked the range.
 */
int dsv4_region_mmap_range(struct dsv4_region *r, struct vm_area_struct *vma,
			   u64 offset)
{
	unsigned long addr = vma->vm_start, chunk_left;
	struct page **batch, *page;
	int ret = 0;

	if (r->imported) {
		for (; addr < vma->vm_end; addr += PAGE_SIZE) {
			struct page *page = dsv4_region_page(r, offset);

			ret = remap_pfn_range(vma, addr, page_to_pfn(page),
					      PAGE_SIZE, vma->vm_page_prot);
			if (ret)
				return ret;
			offset += PAGE_SIZE;
		}
		return 0;
	}

	vm_flags_set(vma, VM_MIXEDMAP);
	batch = kmalloc_array(DSV4_INSERT_BATCH, sizeof(*batch), GFP_KERNEL);
	if (!batch)
		return -ENOMEM;
	/* Walk the chunks in order: one lookup, then sequential pages. */
	page = dsv4_region_page(r, offset);
	chunk_left = dsv4_chunk_pages_left(r, offset);
	while (addr < vma->vm_end) {
		unsigned long n = min_t(unsigned long, DSV4_INSERT_BATCH,
					(vma->vm_end - addr) >> PAGE_SHIFT);
		unsigned long i, left = n;

		for (i = 0; i < n; i++) {
			if (!chunk_left) {
				u64 at = offset + ((u64)i << PAGE_SHIFT);

				page = dsv4_region_page(r, at);
				chunk_left = dsv4_chunk_pages_left(r, at);
			}
			batch[i] = page++;
			chunk_left--;
		}
		ret = vm_insert_pages(vma, addr, batch, &left);
		if (ret)
			break;
		addr += n << PAGE_SHIFT;
		offset += (u64)n << PAGE_SHIFT;
		cond_resched();
	}
	kfree(batch);
	return ret;
}

int dsv4_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct dsv4_file *f = file->private_data;
	u64 id = vma->vm_pgoff >> (DSV4_MMAP_SHIFT - PAGE_SHIFT);
	u64 len = vma->vm_end - vma->vm_start;
	struct dsv4_region *r;
	bool writer = false, writable;
	u64 offset, end;
	int ret;

	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;	/* no private COW copies of pinned memory */
	if (!id || id > DSV4_MAX_ID)
		return -EINVAL;
	r = dsv4_file_get(f, id, &writable);
	if (!r)
		return -ENOENT;
	offset = dsv4_vma_offset(vma, vma->vm_start);
	if (check_add_overflow(offset, len, &end) || end > r->size) {
		ret = -EINVAL;
		goto err_put;
	}
	if (!writable) {	/* a read-only handle (OPEN without WRITE) */
		if (vma->vm_flags & VM_WRITE) {
			ret = -EACCES;
			goto err_put;
		}
		vm_flags_clear(vma, VM_MAYWRITE);	/* no mprotect later */
	}
	if (dsv4_region_state(r) & DSV4_STATE_SEALED) {
		if (vma->vm_flags & VM_WRITE) {
			ret = -EPERM;
			goto err_put;
		}
		vm_flags_clear(vma, VM_MAYWRITE);
	}
	if (dsv4_vma_counts_writer(vma)) {
		ret = dsv4_region_writer_get(r);	/* races with SEAL */
		if (ret)
			goto err_put;
		writer = true;
	}

	vm_flags_set(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_private_data = r;
	ret = dsv4_region_mmap_range(r, vma, offset);
	if (ret)
		goto err_writer;
	vma->vm_ops = &dsv4_vm_ops;
	atomic_inc(&r->mappings);
	return 0;	/* the VMA keeps the reference; vm_close drops it */

err_writer:
	/* The mm unmaps what was inserted; vm_close never runs for it. */
	if (writer)
		dsv4_region_writer_put(r);
err_put:
	dsv4_region_put(r);
	return ret;
}
