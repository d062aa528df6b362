// SPDX-License-Identifier: GPL-2.0
/*
 * REGION_EXPORT_DMABUF: a dma-buf over a page range of a region, the path
 * through which DRM/accel devices import dsv4 memory.  The dma-buf holds a
 * region reference until it is released.
 */
#include <linux/crc32.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/fcntl.h>
#include <linux/iosys-map.h>
#include <linux/highmem.h>
#include <linux/scatterlist.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "dsv4_compat.h"
#include "dsv4_core.h"

struct dsv4_dmabuf {
	struct list_head node;	/* in dsv4_dmabufs */
	struct dsv4_region *region;
	u64 offset;
	u64 size;
	bool writable;
	struct mutex lock;	/* protects attachments */
	struct list_head attachments;
};

/* Live exports, for the debugfs view of what importers mapped. */
static LIST_HEAD(dsv4_dmabufs);
static DEFINE_MUTEX(dsv4_dmabufs_lock);

struct dsv4_attachment {
	struct device *dev;
	struct sg_table *sgt;	/* while mapped */
	struct list_head node;
};

static int dsv4_db_attach(struct dma_buf *dmabuf,
			  struct dma_buf_attachment *attach)
{
	struct dsv4_dmabuf *db = dmabuf->priv;
	struct dsv4_attachment *a;

	a = kzalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	a->dev = attach->dev;
	attach->priv = a;
	mutex_lock(&db->lock);
	list_add(&a->node, &db->attachments);
	mutex_unlock(&db->lock);
	return 0;
}

static void dsv4_db_detach(struct dma_buf *dmabuf,
			   struct dma_buf_attachment *attach)
{
	struct dsv4_dmabuf *db = dmabuf->priv;
	struct dsv4_attachment *a = attach->priv;

	mutex_lock(&db->lock);
	list_del(&a->node);
	mutex_unlock(&db->lock);
	kfree(a);
}

/*
 * Bytes of physically contiguous memory from region byte @off on, at most
 * @max_seg (the importing device's segment limit).  Walks chunks, not
 * pages: one lookup per chunk.
 */
static unsigned int dsv4_db_run(struct dsv4_dmabuf *db, u64 off,
				unsigned int max_seg, struct page **first)
{
	struct dsv4_region *r = db->region;
	u64 end = db->offset + db->size;
	struct page *p = dsv4_region_page(r, off);
	u64 len = 0;

	*first = p;
	while (off < end && len + PAGE_SIZE <= max_seg) {
		u64 n = (u64)dsv4_chunk_pages_left(r, off) << PAGE_SHIFT;

		if (dsv4_region_page(r, off) != p)
			break;	/* the next chunk is not adjacent */
		n = min3(n, end - off, (u64)max_seg - len);
		n &= PAGE_MASK;
		if (!n)
			break;
		len += n;
		off += n;
		p += n >> PAGE_SHIFT;
	}
	return (unsigned int)len;
}

/* One scatterlist entry per physically contiguous run of the range. */
static struct sg_table *dsv4_db_sgt(struct dsv4_dmabuf *db, unsigned int max_seg)
{
	u64 off, end = db->offset + db->size;
	unsigned int nents = 0;
	struct scatterlist *sg;
	struct sg_table *sgt;
	struct page *first;
	int ret;

	max_seg = max_t(unsigned int, round_down(max_seg, PAGE_SIZE), PAGE_SIZE);
	for (off = db->offset; off < end; nents++) {
		off += dsv4_db_run(db, off, max_seg, &first);
		cond_resched();
	}
	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt)
		return ERR_PTR(-ENOMEM);
	ret = sg_alloc_table(sgt, nents, GFP_KERNEL);
	if (ret) {
		kfree(sgt);
		return ERR_PTR(ret);
	}
	sg = sgt->sgl;
	for (off = db->offset; off < end; sg = sg_next(sg)) {
		unsigned int len = dsv4_db_run(db, off, max_seg, &first);

		sg_set_page(sg, first, len, 0);
		off += len;
	}
	return sgt;
}

static struct sg_table *dsv4_db_map(struct dma_buf_attachment *attach,
				    enum dma_data_direction dir)
{
	struct dsv4_dmabuf *db = attach->dmabuf->priv;
	struct dsv4_attachment *a = attach->priv;
	struct sg_table *sgt;
	int ret;

	/* A read-only export: the device may read, never write. */
	if (!db->writable && dir != DMA_TO_DEVICE)
		return ERR_PTR(-EACCES);
	sgt = dsv4_db_sgt(db, dma_get_max_seg_size(attach->dev));
	if (IS_ERR(sgt))
		return sgt;
	ret = dma_map_sgtable(attach->dev, sgt, dir, 0);
	if (ret) {
		sg_free_table(sgt);
		kfree(sgt);
		return ERR_PTR(ret);
	}
	mutex_lock(&db->lock);
	a->sgt = sgt;	/* cache_sgt_mapping: mapped once per attachment */
	mutex_unlock(&db->lock);
	return sgt;
}

static void dsv4_db_unmap(struct dma_buf_attachment *attach,
			  struct sg_table *sgt, enum dma_data_direction dir)
{
	struct dsv4_dmabuf *db = attach->dmabuf->priv;
	struct dsv4_attachment *a = attach->priv;

	mutex_lock(&db->lock);	/* CPU-access syncs and debugfs read a->sgt */
	if (a->sgt == sgt)
		a->sgt = NULL;
	mutex_unlock(&db->lock);
	dma_unmap_sgtable(attach->dev, sgt, dir, 0);
	sg_free_table(sgt);
	kfree(sgt);
}

/* Syncs every mapped attachment towards the CPU or back to its device. */
static int dsv4_db_sync(struct dma_buf *dmabuf, enum dma_data_direction dir,
			bool for_cpu)
{
	struct dsv4_dmabuf *db = dmabuf->priv;
	struct dsv4_attachment *a;

	mutex_lock(&db->lock);
	list_for_each_entry(a, &db->attachments, node) {
		if (!a->sgt)
			continue;
		if (for_cpu)
			dma_sync_sgtable_for_cpu(a->dev, a->sgt, dir);
		else
			dma_sync_sgtable_for_device(a->dev, a->sgt, dir);
	}
	mutex_unlock(&db->lock);
	return 0;
}

static int dsv4_db_begin_cpu(struct dma_buf *dmabuf,
			     enum dma_data_direction dir)
{
	return dsv4_db_sync(dmabuf, dir, true);
}

static int dsv4_db_end_cpu(struct dma_buf *dmabuf,
			   enum dma_data_direction dir)
{
	return dsv4_db_sync(dmabuf, dir, false);
}

/* Refills PTEs that MADV_DONTNEED zapped; the dma-buf file keeps @db. */
static vm_fault_t dsv4_db_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct dsv4_dmabuf *db = vma->vm_private_data;
	unsigned long addr = vmf->address & PAGE_MASK;
	u64 off = ((u64)vma->vm_pgoff << PAGE_SHIFT) + (addr - vma->vm_start);
	struct page *page;

	if (off >= db->size)
		return VM_FAULT_SIGBUS;
	page = dsv4_region_page(db->region, db->offset + off);
	if (db->region->imported)
		return vmf_insert_pfn(vma, addr, page_to_pfn(page));
	return vmf_insert_page(vma, addr, page);
}

static const struct vm_operations_struct dsv4_db_vm_ops = {
	.fault = dsv4_db_fault,
};

static int dsv4_db_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	struct dsv4_dmabuf *db = dmabuf->priv;

	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if ((vma->vm_flags & VM_WRITE) && !db->writable)
		return -EPERM;
	if (!db->writable)
		vm_flags_clear(vma, VM_MAYWRITE);
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_private_data = db;
	vma->vm_ops = &dsv4_db_vm_ops;
	/* dma_buf_mmap_internal() checked the range against db->size. */
	return dsv4_region_mmap_range(db->region, vma,
				      db->offset +
				      ((u64)vma->vm_pgoff << PAGE_SHIFT));
}

static int dsv4_db_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct dsv4_dmabuf *db = dmabuf->priv;
	unsigned long i, n = db->size >> PAGE_SHIFT;
	struct page **pages;
	void *vaddr;

	pages = kvmalloc_array(n, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		pages[i] = dsv4_region_page(db->region,
					    db->offset + ((u64)i << PAGE_SHIFT));
		if ((i & 4095) == 4095)
			cond_resched();
	}
	vaddr = vmap(pages, n, VM_MAP, PAGE_KERNEL);
	kvfree(pages);
	if (!vaddr)
		return -ENOMEM;
	iosys_map_set_vaddr(map, vaddr);
	return 0;
}

static void dsv4_db_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	vunmap(map->vaddr);
}

static void dsv4_db_release(struct dma_buf *dmabuf)
{
	struct dsv4_dmabuf *db = dmabuf->priv;
	struct dsv4_region *r = db->region;

	mutex_lock(&dsv4_dmabufs_lock);
	list_del(&db->node);
	mutex_unlock(&dsv4_dmabufs_lock);
	if (db->writable)
		dsv4_region_writer_put(r);
	atomic_dec(&r->dmabufs);
	dsv4_region_put(r);
	mutex_destroy(&db->lock);
	kfree(db);
}

static const struct dma_buf_ops dsv4_dmabuf_ops = {
	.cache_sgt_mapping = true,
	.attach = dsv4_db_attach,
	.detach = dsv4_db_detach,
	.map_dma_buf = dsv4_db_map,
	.unmap_dma_buf = dsv4_db_unmap,
	.begin_cpu_access = dsv4_db_begin_cpu,
	.end_cpu_access = dsv4_db_end_cpu,
	.mmap = dsv4_db_mmap,
	.vmap = dsv4_db_vmap,
	.vunmap = dsv4_db_vunmap,
	.release = dsv4_db_release,
};

/* Returns the new dma-buf (the caller gives it an fd) or an ERR_PTR. */
struct dma_buf *dsv4_export_dmabuf(struct dsv4_region *r, u64 offset, u64 size,
				   u32 flags)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	bool writable = flags & DSV4_EXPORT_RDWR;
	struct dsv4_dmabuf *db;
	struct dma_buf *dmabuf;
	int ret;

	db = kzalloc(sizeof(*db), GFP_KERNEL);
	if (!db)
		return ERR_PTR(-ENOMEM);
	if (writable) {
		ret = dsv4_region_writer_get(r);	/* EPERM when sealed */
		if (ret)
			goto err_free;
	}
	dsv4_region_get(r);
	db->region = r;
	db->offset = offset;
	db->size = size;
	db->writable = writable;
	mutex_init(&db->lock);
	INIT_LIST_HEAD(&db->attachments);

	exp.ops = &dsv4_dmabuf_ops;
	exp.size = size;
	exp.flags = writable ? O_RDWR : O_RDONLY;
	exp.priv = db;
	dmabuf = dma_buf_export(&exp);
	if (IS_ERR(dmabuf)) {
		ret = PTR_ERR(dmabuf);
		goto err_put;
	}
	atomic_inc(&r->dmabufs);
	mutex_lock(&dsv4_dmabufs_lock);
	list_add_tail(&db->node, &dsv4_dmabufs);
	mutex_unlock(&dsv4_dmabufs_lock);
	return dmabuf;	/* dma_buf_put() undoes all of the above */

err_put:
	mutex_destroy(&db->lock);
	if (writable)
		dsv4_region_writer_put(r);
	dsv4_region_put(r);
err_free:
	kfree(db);
	return ERR_PTR(ret);
}

/* CRC32 (zlib's) of the bytes an importer's mapped sg table points at. */
static u32 dsv4_sgt_crc(struct sg_table *sgt)
{
	struct scatterlist *sg;
	u32 crc = ~0U;
	int i;

	for_each_sgtable_sg(sgt, sg, i) {
		unsigned int done;

		for (done = 0; done < sg->length; done += PAGE_SIZE) {
			struct page *page = sg_page(sg) + (done >> PAGE_SHIFT);
			void *va = kmap_local_page(page);

			crc = crc32_le(crc, va, min_t(unsigned int, PAGE_SIZE,
						      sg->length - done));
			kunmap_local(va);
			cond_resched();
		}
	}
	return ~crc;
}

/*
 * debugfs "attachments": one line per mapped attachment of every export,
 * with a checksum of what the importing device was given, so tests can
 * check it against the region's bytes.
 */
int dsv4_dmabuf_show(struct seq_file *m, void *unused)
{
	struct dsv4_attachment *a;
	struct dsv4_dmabuf *db;

	mutex_lock(&dsv4_dmabufs_lock);
	list_for_each_entry(db, &dsv4_dmabufs, node) {
		mutex_lock(&db->lock);
		list_for_each_entry(a, &db->attachments, node) {
			seq_printf(m, "region=%u offset=%llu size=%llu dev=%s",
				   db->region->id, db->offset, db->size,
				   dev_name(a->dev));
			if (a->sgt)
				seq_printf(m, " nents=%u crc32=%08x\n",
					   a->sgt->orig_nents, dsv4_sgt_crc(a->sgt));
			else
				seq_puts(m, " unmapped\n");
		}
		mutex_unlock(&db->lock);
	}
	mutex_unlock(&dsv4_dmabufs_lock);
	return 0;
}
