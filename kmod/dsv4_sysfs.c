// SPDX-License-Identifier: GPL-2.0
/*
 * sysfs: /sys/kernel/dsv4/
 *   nr_regions, total_bytes, persistent_bytes, persistent_limit_bytes
 *   kinds/<kind>           bytes per region kind
 *   nodes/node<N>          bytes per NUMA node
 *   regions/<id>/          one directory per region: size kind name
 *                          numa_node state refs mappings dmabufs node_bytes
 */
#include <linux/kobject.h>
#include <linux/nodemask.h>
#include <linux/slab.h>
#include <linux/sysfs.h>

#include "dsv4_core.h"

static struct kobject *dsv4_kobj, *dsv4_regions_kobj, *dsv4_nodes_kobj;
static struct kobj_attribute *dsv4_node_attrs;
static struct attribute **dsv4_node_attr_list;
static struct attribute_group dsv4_node_group;

static ssize_t nr_regions_show(struct kobject *k, struct kobj_attribute *a,
			    char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&dsv4_stats.regions));
}

static ssize_t total_bytes_show(struct kobject *k, struct kobj_attribute *a,
				char *buf)
{
	return sysfs_emit(buf, "%lld\n",
			  (long long)atomic64_read(&dsv4_stats.total_bytes));
}

static ssize_t persistent_bytes_show(struct kobject *k,
				     struct kobj_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%lld\n",
			  (long long)atomic64_read(&dsv4_stats.persistent_bytes));
}

static ssize_t persistent_limit_bytes_show(struct kobject *k,
					   struct kobj_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%llu\n", dsv4_persistent_limit_bytes());
}

static struct kobj_attribute dsv4_attr_regions = __ATTR_RO(nr_regions);
static struct kobj_attribute dsv4_attr_total = __ATTR_RO(total_bytes);
static struct kobj_attribute dsv4_attr_persistent =
	__ATTR_RO(persistent_bytes);
static struct kobj_attribute dsv4_attr_limit =
	__ATTR_RO(persistent_limit_bytes);

static struct attribute *dsv4_top_attrs[] = {
	&dsv4_attr_regions.attr,
	&dsv4_attr_total.attr,
	&dsv4_attr_persistent.attr,
	&dsv4_attr_limit.attr,
	NULL,
};

static const struct attribute_group dsv4_top_group = {
	.attrs = dsv4_top_attrs,
};

/* kinds/<name>: the attribute's name is the kind's name. */
static ssize_t dsv4_kind_show(struct kobject *k, struct kobj_attribute *a,
			      char *buf)
{
	u32 kind;

	for (kind = 0; kind < DSV4_KIND_COUNT; kind++)
		if (!strcmp(a->attr.name, dsv4_kind_name(kind)))
			return sysfs_emit(buf, "%lld\n", (long long)
				atomic64_read(&dsv4_stats.kind_bytes[kind]));
	return -EINVAL;
}

#define DSV4_KIND_ATTR(_name) \
	static struct kobj_attribute dsv4_kind_##_name = \
		__ATTR(_name, 0444, dsv4_kind_show, NULL)
DSV4_KIND_ATTR(generic);
DSV4_KIND_ATTR(engram_table);
DSV4_KIND_ATTR(expert_staging);
DSV4_KIND_ATTR(kv_spill);

static struct attribute *dsv4_kind_attrs[] = {
	&dsv4_kind_generic.attr,
	&dsv4_kind_engram_table.attr,
	&dsv4_kind_expert_staging.attr,
	&dsv4_kind_kv_spill.attr,
	NULL,
};

static const struct attribute_group dsv4_kind_group = {
	.name = "kinds",
	.attrs = dsv4_kind_attrs,
};

static ssize_t dsv4_node_show(struct kobject *k, struct kobj_attribute *a,
			      char *buf)
{
	long nid = a - dsv4_node_attrs;

	return sysfs_emit(buf, "%lld\n",
			  (long long)atomic64_read(&dsv4_node_bytes[nid]));
}

static int dsv4_sysfs_nodes_init(void)
{
	unsigned int nid;

	dsv4_nodes_kobj = kobject_create_and_add("nodes", dsv4_kobj);
	if (!dsv4_nodes_kobj)
		return -ENOMEM;
	dsv4_node_attrs = kcalloc(nr_node_ids, sizeof(*dsv4_node_attrs),
				  GFP_KERNEL);
	dsv4_node_attr_list = kcalloc(nr_node_ids + 1,
				      sizeof(*dsv4_node_attr_list), GFP_KERNEL);
	if (!dsv4_node_attrs || !dsv4_node_attr_list)
		return -ENOMEM;
	for (nid = 0; nid < nr_node_ids; nid++) {
		struct kobj_attribute *a = &dsv4_node_attrs[nid];

		sysfs_attr_init(&a->attr);
		a->attr.name = kasprintf(GFP_KERNEL, "node%u", nid);
		if (!a->attr.name)
			return -ENOMEM;
		a->attr.mode = 0444;
		a->show = dsv4_node_show;
		dsv4_node_attr_list[nid] = &a->attr;
	}
	dsv4_node_group.attrs = dsv4_node_attr_list;
	return sysfs_create_group(dsv4_nodes_kobj, &dsv4_node_group);
}

static void dsv4_sysfs_nodes_exit(void)
{
	unsigned int nid;

	kobject_put(dsv4_nodes_kobj);	/* removes its files */
	dsv4_nodes_kobj = NULL;
	if (dsv4_node_attrs)
		for (nid = 0; nid < nr_node_ids; nid++)
			kfree(dsv4_node_attrs[nid].attr.name);
	kfree(dsv4_node_attrs);
	kfree(dsv4_node_attr_list);
	dsv4_node_attrs = NULL;
	dsv4_node_attr_list = NULL;
}

int dsv4_sysfs_init(void)
{
	int ret;

	dsv4_kobj = kobject_create_and_add("dsv4", kernel_kobj);
	if (!dsv4_kobj)
		return -ENOMEM;
	ret = sysfs_create_group(dsv4_kobj, &dsv4_top_group);
	if (!ret)
		ret = sysfs_create_group(dsv4_kobj, &dsv4_kind_group);
	if (!ret)
		ret = dsv4_sysfs_nodes_init();
	if (!ret) {
		dsv4_regions_kobj = kobject_create_and_add("regions",
							   dsv4_kobj);
		if (!dsv4_regions_kobj)
			ret = -ENOMEM;
	}
	if (ret)
		dsv4_sysfs_exit();
	return ret;
}

void dsv4_sysfs_exit(void)
{
	kobject_put(dsv4_regions_kobj);
	dsv4_regions_kobj = NULL;
	dsv4_sysfs_nodes_exit();
	kobject_put(dsv4_kobj);	/* removes the groups with the directory */
	dsv4_kobj = NULL;
}

/* Per-region directory. */
struct dsv4_region_kobj {
	struct kobject kobj;
	struct dsv4_region *r;
};

#define to_region(k) (container_of(k, struct dsv4_region_kobj, kobj)->r)

static ssize_t size_show(struct kobject *k, struct kobj_attribute *a,
			 char *buf)
{
	return sysfs_emit(buf, "%llu\n", to_region(k)->size);
}

static ssize_t kind_show(struct kobject *k, struct kobj_attribute *a,
			 char *buf)
{
	return sysfs_emit(buf, "%s\n", dsv4_kind_name(to_region(k)->kind));
}

static ssize_t name_show(struct kobject *k, struct kobj_attribute *a,
			 char *buf)
{
	return sysfs_emit(buf, "%s\n", to_region(k)->name);
}

static ssize_t numa_node_show(struct kobject *k, struct kobj_attribute *a,
			      char *buf)
{
	return sysfs_emit(buf, "%d\n", to_region(k)->numa_node);
}

static ssize_t state_show(struct kobject *k, struct kobj_attribute *a,
			  char *buf)
{
	return sysfs_emit(buf, "%#x\n", dsv4_region_state(to_region(k)));
}

static ssize_t refs_show(struct kobject *k, struct kobj_attribute *a,
			 char *buf)
{
	return sysfs_emit(buf, "%u\n", kref_read(&to_region(k)->ref));
}

static ssize_t mappings_show(struct kobject *k, struct kobj_attribute *a,
			     char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&to_region(k)->mappings));
}

static ssize_t dmabufs_show(struct kobject *k, struct kobj_attribute *a,
			    char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&to_region(k)->dmabufs));
}

/* "node:bytes" pairs for the nodes that hold pages of the region. */
static ssize_t node_bytes_show(struct kobject *k, struct kobj_attribute *a,
			       char *buf)
{
	struct dsv4_region *r = to_region(k);
	unsigned int nid;
	int len = 0;

	for (nid = 0; nid < nr_node_ids; nid++)
		if (r->node_bytes[nid])
			len += sysfs_emit_at(buf, len, "%s%u:%llu",
					     len ? " " : "", nid,
					     r->node_bytes[nid]);
	len += sysfs_emit_at(buf, len, "\n");
	return len;
}

static struct kobj_attribute dsv4_r_size = __ATTR_RO(size);
static struct kobj_attribute dsv4_r_kind = __ATTR_RO(kind);
static struct kobj_attribute dsv4_r_name = __ATTR_RO(name);
static struct kobj_attribute dsv4_r_node = __ATTR_RO(numa_node);
static struct kobj_attribute dsv4_r_state = __ATTR_RO(state);
static struct kobj_attribute dsv4_r_refs = __ATTR_RO(refs);
static struct kobj_attribute dsv4_r_maps = __ATTR_RO(mappings);
static struct kobj_attribute dsv4_r_bufs = __ATTR_RO(dmabufs);
static struct kobj_attribute dsv4_r_nodes = __ATTR_RO(node_bytes);

static struct attribute *dsv4_region_attrs[] = {
	&dsv4_r_size.attr, &dsv4_r_kind.attr, &dsv4_r_name.attr,
	&dsv4_r_node.attr, &dsv4_r_state.attr, &dsv4_r_refs.attr,
	&dsv4_r_maps.attr, &dsv4_r_bufs.attr, &dsv4_r_nodes.attr,
	NULL,
};
ATTRIBUTE_GROUPS(dsv4_region);

static void dsv4_region_kobj_release(struct kobject *kobj)
{
	kfree(container_of(kobj, struct dsv4_region_kobj, kobj));
}

static const struct kobj_type dsv4_region_ktype = {
	.release = dsv4_region_kobj_release,
	.sysfs_ops = &kobj_sysfs_ops,
	.default_groups = dsv4_region_groups,
};

int dsv4_sysfs_region_add(struct dsv4_region *r)
{
	struct dsv4_region_kobj *rk;
	int ret;

	rk = kzalloc(sizeof(*rk), GFP_KERNEL);
	if (!rk)
		return -ENOMEM;
	rk->r = r;
	ret = kobject_init_and_add(&rk->kobj, &dsv4_region_ktype,
				   dsv4_regions_kobj, "%u", r->id);
	if (ret) {
		kobject_put(&rk->kobj);
		return ret;
	}
	r->kobj = &rk->kobj;
	return 0;
}

/* After this returns no show() runs any more, so @r may be freed. */
void dsv4_sysfs_region_del(struct dsv4_region *r)
{
	if (!r->kobj)
		return;
	kobject_del(r->kobj);
	kobject_put(r->kobj);
	r->kobj = NULL;
}
