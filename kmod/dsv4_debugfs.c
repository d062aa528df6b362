// SPDX-License-Identifier: GPL-2.0
/*
 * debugfs: /sys/kernel/debug/dsv4/
 *   regions     the region table, one line per region
 *   attachments dma-buf attachments and a CRC32 of what each importer mapped
 *   fail_alloc  fail the next N page allocations (fault injection)
 *   fail_pin    fail the next N memfd pin attempts (fault injection)
 * Debian kernels ship without CONFIG_FAULT_INJECTION, so dsv4 carries its
 * own counters.
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/uidgid.h>

#include "dsv4_core.h"

static struct dentry *dsv4_debugfs_dir;
static atomic_t dsv4_fail_alloc = ATOMIC_INIT(0);
static atomic_t dsv4_fail_pin = ATOMIC_INIT(0);

bool dsv4_should_fail_alloc(void)
{
	return atomic_add_unless(&dsv4_fail_alloc, -1, 0);
}

bool dsv4_should_fail_pin(void)
{
	return atomic_add_unless(&dsv4_fail_pin, -1, 0);
}

static int dsv4_show_region(struct dsv4_region *r, void *arg)
{
	struct seq_file *m = arg;

	seq_printf(m, "%6u %14llu %-14s %4d %#5x %#5x %4u %4d %4d %04o %6u %s\n",
		   r->id, r->size, dsv4_kind_name(r->kind), r->numa_node,
		   r->create_flags, dsv4_region_state(r),
		   kref_read(&r->ref) - 1, atomic_read(&r->mappings),
		   atomic_read(&r->dmabufs), r->mode,
		   from_kuid(&init_user_ns, r->uid), r->name);
	return 0;
}

static int dsv4_regions_show(struct seq_file *m, void *unused)
{
	seq_puts(m, "    id           size kind           node flags state refs maps bufs mode    uid name\n");
	return dsv4_region_for_each(dsv4_show_region, m);
}
DEFINE_SHOW_ATTRIBUTE(dsv4_regions);

static int dsv4_attachments_open(struct inode *inode, struct file *file)
{
	return single_open(file, dsv4_dmabuf_show, NULL);
}

static const struct file_operations dsv4_attachments_fops = {
	.owner = THIS_MODULE,
	.open = dsv4_attachments_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
};

static int dsv4_counter_get(void *data, u64 *val)
{
	*val = atomic_read((atomic_t *)data);
	return 0;
}

static int dsv4_counter_set(void *data, u64 val)
{
	if (val > INT_MAX)
		return -EINVAL;
	atomic_set((atomic_t *)data, (int)val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(dsv4_counter_fops, dsv4_counter_get,
			 dsv4_counter_set, "%llu\n");

void dsv4_debugfs_init(void)
{
	dsv4_debugfs_dir = debugfs_create_dir("dsv4", NULL);
	debugfs_create_file("regions", 0400, dsv4_debugfs_dir, NULL,
			    &dsv4_regions_fops);
	debugfs_create_file("attachments", 0400, dsv4_debugfs_dir, NULL,
			    &dsv4_attachments_fops);
	debugfs_create_file_unsafe("fail_alloc", 0600, dsv4_debugfs_dir,
				   &dsv4_fail_alloc, &dsv4_counter_fops);
	debugfs_create_file_unsafe("fail_pin", 0600, dsv4_debugfs_dir,
				   &dsv4_fail_pin, &dsv4_counter_fops);
}

void dsv4_debugfs_exit(void)
{
	debugfs_remove_recursive(dsv4_debugfs_dir);
}
