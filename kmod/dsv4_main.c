// SPDX-License-Identifier: GPL-2.0
/*
 * dsv4.ko: /dev/dsv4, the memory authority of the dsv4 DeepSeek V4 stack.
 *
 * It hands out pinned, zeroed, NUMA-placed DRAM regions (Engram tables,
 * expert staging, spilled KV) that userspace maps with real struct pages,
 * so io_uring fixed buffers and cudaHostRegister can pin them, and that
 * DRM/accel devices import as dma-bufs.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "dsv4_compat.h"
#include "dsv4_core.h"

unsigned long dsv4_persistent_limit_mb;
module_param_named(persistent_limit_mb, dsv4_persistent_limit_mb, ulong, 0644);
MODULE_PARM_DESC(persistent_limit_mb,
		 "Cap on all persistent regions in MiB (0 = half of RAM)");

unsigned int dsv4_max_regions = 65536;
module_param_named(max_regions, dsv4_max_regions, uint, 0644);
MODULE_PARM_DESC(max_regions, "Maximum number of live regions");

static int dsv4_open(struct inode *inode, struct file *file)
{
	struct dsv4_file *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	mutex_init(&f->lock);
	xa_init(&f->handles);
	file->private_data = f;
	return 0;
}

static int dsv4_release(struct inode *inode, struct file *file)
{
	struct dsv4_file *f = file->private_data;

	dsv4_file_release_all(f);
	mutex_destroy(&f->lock);
	kfree(f);
	return 0;
}

static const struct file_operations dsv4_fops = {
	.owner = THIS_MODULE,
	.open = dsv4_open,
	.release = dsv4_release,
	.unlocked_ioctl = dsv4_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = dsv4_mmap,
};

static struct miscdevice dsv4_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = DSV4_DEVICE_NAME,
	.fops = &dsv4_fops,
	.mode = 0660,
};

static int __init dsv4_init(void)
{
	int ret;

	ret = dsv4_regions_init();
	if (ret)
		return ret;
	ret = dsv4_sysfs_init();
	if (ret)
		goto err_regions;
	dsv4_debugfs_init();
	ret = misc_register(&dsv4_misc);
	if (ret)
		goto err_sysfs;
	pr_info("dsv4: /dev/%s ready, version %s, ABI %d\n", DSV4_DEVICE_NAME,
		DSV4_MODULE_VERSION, DSV4_ABI_VERSION);
	return 0;

err_sysfs:
	dsv4_debugfs_exit();
	dsv4_sysfs_exit();
err_regions:
	dsv4_regions_exit();
	return ret;
}

static void __exit dsv4_exit(void)
{
	misc_deregister(&dsv4_misc);
	dsv4_regions_exit();	/* frees the persistent regions */
	dsv4_debugfs_exit();
	dsv4_sysfs_exit();
	pr_info("dsv4: unloaded\n");
}

module_init(dsv4_init);
module_exit(dsv4_exit);

MODULE_DESCRIPTION("dsv4: pinned DRAM regions for DeepSeek V4 serving");
MODULE_AUTHOR("dsv4 developers");
MODULE_LICENSE("GPL");
MODULE_VERSION(DSV4_MODULE_VERSION);
DSV4_IMPORT_NS_DMA_BUF();
