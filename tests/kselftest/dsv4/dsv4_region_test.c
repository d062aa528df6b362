// SPDX-License-Identifier: GPL-2.0
/*
 * Region uAPI: create/info/list/destroy/open/seal/close, mmap, zeroing,
 * NUMA placement, persistence, permissions, memlock accounting, fault
 * injection, sysfs/debugfs/tracepoints and a threaded stress.
 */
#include <numaif.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>

#include "dsv4_test.h"

#define PAGE		4096UL
#define SYS		"/sys/kernel/dsv4/"
#define DBG		"/sys/kernel/debug/dsv4/"
#define PARAM		"/sys/module/dsv4/parameters/"
#define NOBODY		65534

FIXTURE(region) {
	int fd;
	long long base_regions;
	long long base_bytes;
};

FIXTURE_SETUP(region)
{
	self->fd = open(DSV4_DEV, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
	self->base_regions = dsv4_read_ll(SYS "nr_regions");
	self->base_bytes = dsv4_read_ll(SYS "total_bytes");
	ASSERT_LE(0, self->base_regions);
}

FIXTURE_TEARDOWN(region)
{
	close(self->fd);
	/* Every test leaves the module as it found it. */
	EXPECT_EQ(self->base_regions, dsv4_read_ll(SYS "nr_regions"));
	EXPECT_EQ(self->base_bytes, dsv4_read_ll(SYS "total_bytes"));
}

static void *map_region(int fd, const struct dsv4_region_create *c, int prot)
{
	void *p = mmap(NULL, c->size, prot, MAP_SHARED, fd, (off_t)c->mmap_offset);

	return p == MAP_FAILED ? NULL : p;
}

static int region_info(int fd, uint64_t id, struct dsv4_region_info *info,
		       uint64_t *nodes, uint32_t nnodes)
{
	memset(info, 0, sizeof(*info));
	info->id = id;
	info->nodes_ptr = (uintptr_t)nodes;
	info->nodes_count = nnodes;
	return dsv4_ioctl(fd, DSV4_IOC_REGION_INFO, info);
}

static int run_as_nobody(void (*fn)(void *), void *arg, rlim_t memlock)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		struct rlimit rl = { memlock, memlock };

		if (setrlimit(RLIMIT_MEMLOCK, &rl) || setgroups(0, NULL) || setgid(NOBODY) ||
		    setuid(NOBODY))
			_exit(99);
		fn(arg);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST_F(region, create_info_destroy)
{
	struct dsv4_region_create c;
	struct dsv4_region_info info;

	ASSERT_EQ(0, dsv4_create(self->fd, 4 * PAGE, DSV4_NODE_ANY,
				 DSV4_KIND_EXPERT_STAGING, 0, "staging0", &c));
	EXPECT_LT(0, c.id);
	EXPECT_EQ(c.id << DSV4_MMAP_SHIFT, c.mmap_offset);
	ASSERT_EQ(0, region_info(self->fd, c.id, &info, NULL, 0));
	EXPECT_EQ(4 * PAGE, info.size);
	EXPECT_EQ(DSV4_KIND_EXPERT_STAGING, info.kind);
	EXPECT_EQ(DSV4_NODE_ANY, info.numa_node);
	EXPECT_EQ(0u, info.state);
	EXPECT_EQ(0u, info.uid);
	EXPECT_EQ(0600u, info.mode);
	EXPECT_EQ(1u, info.refs);	/* the handle */
	EXPECT_STREQ("staging0", info.name);
	EXPECT_EQ(self->base_regions + 1, dsv4_read_ll(SYS "nr_regions"));
	EXPECT_EQ(self->base_bytes + 4 * PAGE, dsv4_read_ll(SYS "total_bytes"));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
	EXPECT_EQ(-ENOENT, region_info(self->fd, c.id, &info, NULL, 0));
}

TEST_F(region, kinds_are_accounted)
{
	static const char *const names[DSV4_KIND_COUNT] = {
		"generic", "engram_table", "expert_staging", "kv_spill",
	};
	struct dsv4_region_create c[DSV4_KIND_COUNT];
	long long before[DSV4_KIND_COUNT];
	char path[128];

	for (uint32_t k = 0; k < DSV4_KIND_COUNT; k++) {
		snprintf(path, sizeof(path), SYS "kinds/%s", names[k]);
		before[k] = dsv4_read_ll(path);
		ASSERT_EQ(0, dsv4_create(self->fd, (k + 1) * PAGE, -1, k, 0, NULL, &c[k]));
		EXPECT_EQ(before[k] + (long long)((k + 1) * PAGE), dsv4_read_ll(path));
	}
	for (uint32_t k = 0; k < DSV4_KIND_COUNT; k++) {
		snprintf(path, sizeof(path), SYS "kinds/%s", names[k]);
		ASSERT_EQ(0, dsv4_destroy(self->fd, c[k].id));
		EXPECT_EQ(before[k], dsv4_read_ll(path));
	}
}

TEST_F(region, create_struct_size_rule)
{
	struct {
		struct dsv4_region_create c;
		uint8_t tail[32];
	} big;

	memset(&big, 0, sizeof(big));
	big.c.size = PAGE;
	big.c.numa_node = -1;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd,
		DSV4_IOC_RESIZE(DSV4_IOC_REGION_CREATE, DSV4_REGION_CREATE_SIZE_VER0 - 8), &big));
	big.tail[5] = 1;
	EXPECT_EQ(-E2BIG, dsv4_ioctl(self->fd,
		DSV4_IOC_RESIZE(DSV4_IOC_REGION_CREATE, sizeof(big)), &big));
	big.tail[5] = 0;
	ASSERT_EQ(0, dsv4_ioctl(self->fd,
		DSV4_IOC_RESIZE(DSV4_IOC_REGION_CREATE, sizeof(big)), &big));
	EXPECT_LT(0, big.c.id);
	EXPECT_EQ(0, dsv4_destroy(self->fd, big.c.id));
}

TEST_F(region, create_rejects_bad_flags_kind_mode)
{
	struct dsv4_region_create c = { .size = PAGE, .numa_node = -1 };

	c.flags = 1u << 31;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, &c));
	c.flags = 1u << 3;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, &c));
	c.flags = 0;
	c.kind = DSV4_KIND_COUNT;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, &c));
	c.kind = 0;
	strcpy(c.name, "m");
	c.mode = 01000;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, &c));
	c.mode = 0644;
	c.name[0] = '\0';	/* a mode needs a name */
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, &c));
	c.mode = 0;
	c.flags = DSV4_REGION_PERSISTENT;	/* so does persistence */
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, &c));
}

TEST_F(region, create_rejects_bad_sizes)
{
	EXPECT_EQ(-EINVAL, dsv4_create(self->fd, 0, -1, 0, 0, NULL, NULL));
	EXPECT_EQ(-EINVAL, dsv4_create(self->fd, 1, -1, 0, 0, NULL, NULL));
	EXPECT_EQ(-EINVAL, dsv4_create(self->fd, PAGE + 1, -1, 0, 0, NULL, NULL));
	EXPECT_EQ(-EINVAL, dsv4_create(self->fd, UINT64_MAX, -1, 0, 0, NULL, NULL));
	EXPECT_EQ(-EFBIG, dsv4_create(self->fd, UINT64_MAX & ~(PAGE - 1), -1, 0, 0, NULL, NULL));
	EXPECT_EQ(-EFBIG, dsv4_create(self->fd, (1ULL << 40) + PAGE, -1, 0, 0, NULL, NULL));
	/* More than the machine has: a clean ENOMEM, never the OOM killer. */
	EXPECT_EQ(-ENOMEM, dsv4_create(self->fd, 1ULL << 39, -1, 0, 0, NULL, NULL));
}

TEST_F(region, create_rejects_bad_nodes)
{
	struct dsv4_info info = {};
	int offline = -1;

	EXPECT_EQ(-EINVAL, dsv4_create(self->fd, PAGE, -2, 0, 0, NULL, NULL));
	EXPECT_EQ(-EINVAL, dsv4_create(self->fd, PAGE, 1 << 20, 0, 0, NULL, NULL));
	EXPECT_EQ(-EINVAL, dsv4_create(self->fd, PAGE, INT32_MIN, 0, 0, NULL, NULL));
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_GET_INFO, &info));
	EXPECT_EQ(-EINVAL, dsv4_create(self->fd, PAGE, (int)info.nr_node_ids, 0, 0, NULL, NULL));
	/* A possible node id without memory: the VM boots one (node 2). */
	for (uint32_t n = 0; n < info.nr_node_ids && n < 256; n++) {
		char path[96];

		snprintf(path, sizeof(path), "/sys/devices/system/node/node%u/meminfo", n);
		if (!(info.online_nodes[n / 64] & (1ULL << (n % 64))) ||
		    dsv4_read_ll(path) < 0) {
			offline = (int)n;
			break;
		}
	}
	if (offline < 0) {
		char line[256] = "";
		FILE *f = fopen("/sys/devices/system/node/has_memory", "r");

		if (f) {
			if (!fgets(line, sizeof(line), f))
				line[0] = '\0';
			fclose(f);
		}
		for (uint32_t n = 0; n < info.nr_node_ids && offline < 0; n++) {
			char want[16];

			snprintf(want, sizeof(want), "%u", n);
			if (!strstr(line, want))
				offline = (int)n;
		}
	}
	if (offline < 0)
		SKIP(return, "every possible node has memory here");
	EXPECT_EQ(-ENODEV, dsv4_create(self->fd, PAGE, offline, 0, 0, NULL, NULL));
}

TEST_F(region, names)
{
	struct dsv4_region_create c = { .size = PAGE, .numa_node = -1 }, c2;

	memset(c.name, 'x', sizeof(c.name));	/* no NUL */
	EXPECT_EQ(-ENAMETOOLONG, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, &c));
	ASSERT_EQ(0, dsv4_create(self->fd, PAGE, -1, 0, 0, "dup", &c2));
	EXPECT_EQ(-EEXIST, dsv4_create(self->fd, PAGE, -1, 0, 0, "dup", NULL));
	EXPECT_EQ(-EEXIST, dsv4_create(self->fd, PAGE, -1, 0, DSV4_REGION_PERSISTENT, "dup", NULL));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c2.id));
	/* The name is free again once its region is destroyed. */
	ASSERT_EQ(0, dsv4_create(self->fd, PAGE, -1, 0, 0, "dup", &c2));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c2.id));
}

TEST_F(region, destroy_errors)
{
	struct dsv4_region_create c;
	struct dsv4_region_id a = {};

	EXPECT_EQ(-ENOENT, dsv4_destroy(self->fd, 0));
	EXPECT_EQ(-ENOENT, dsv4_destroy(self->fd, 999999));
	EXPECT_EQ(-ENOENT, dsv4_destroy(self->fd, UINT64_MAX));
	ASSERT_EQ(0, dsv4_create(self->fd, PAGE, -1, 0, 0, NULL, &c));
	a.id = c.id;
	a.flags = 1;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_DESTROY, &a));
	a.flags = 0;
	a.reserved = 1;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_DESTROY, &a));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
	EXPECT_EQ(-ENOENT, dsv4_destroy(self->fd, c.id));	/* double destroy */
	a.reserved = 0;
	EXPECT_EQ(-ENOENT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CLOSE, &a));
	EXPECT_EQ(-ENOENT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_SEAL, &a));
}

TEST_F(region, list)
{
	struct dsv4_region_create c[3];
	struct dsv4_region_entry e[16];
	struct dsv4_region_list l = { .entry_size = sizeof(e[0]) };
	int found = 0;

	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "list%d", i);
		ASSERT_EQ(0, dsv4_create(self->fd, (i + 1) * PAGE, i % 2, DSV4_KIND_KV_SPILL, 0, name, &c[i]));
	}
	/* capacity 0: only the count */
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_LIST, &l));
	EXPECT_LE(3u, l.count);
	l.capacity = 16;
	l.entries_ptr = (uintptr_t)e;
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_LIST, &l));
	for (uint32_t i = 0; i < l.count && i < 16; i++) {
		for (int j = 0; j < 3; j++) {
			if (e[i].id != c[j].id)
				continue;
			found++;
			EXPECT_EQ((j + 1) * PAGE, e[i].size);
			EXPECT_EQ(DSV4_KIND_KV_SPILL, e[i].kind);
			EXPECT_EQ(j % 2, e[i].numa_node);
			EXPECT_EQ(1ULL << (j % 2), e[i].node_mask);
			EXPECT_EQ(1u, e[i].refs);
			EXPECT_EQ(0, strncmp(e[i].name, "list", 4));
		}
	}
	EXPECT_EQ(3, found);
	/* entry_size too small / too large, bad pointer, flags */
	l.entry_size = 8;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_LIST, &l));
	l.entry_size = 4096;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_LIST, &l));
	l.entry_size = sizeof(e[0]);
	l.entries_ptr = 0;
	EXPECT_EQ(-EFAULT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_LIST, &l));
	l.entries_ptr = 16;
	EXPECT_EQ(-EFAULT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_LIST, &l));
	l.entries_ptr = (uintptr_t)e;
	l.flags = 2;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_LIST, &l));
	/* capacity * entry_size overflowing the user buffer is caught */
	l.flags = 0;
	l.capacity = UINT32_MAX;
	l.entry_size = 1024;
	EXPECT_EQ(-EFAULT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_LIST, &l));
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(0, dsv4_destroy(self->fd, c[i].id));
	}
}

TEST_F(region, info_nodes_and_errors)
{
	struct dsv4_region_create c;
	struct dsv4_region_info info;
	uint64_t nodes[8] = {};

	ASSERT_EQ(0, dsv4_create(self->fd, 8 * PAGE, 1, 0, 0, NULL, &c));
	ASSERT_EQ(0, region_info(self->fd, c.id, &info, nodes, 8));
	EXPECT_LE(2u, info.nodes_count);
	EXPECT_EQ(0u, nodes[0]);
	EXPECT_EQ(8 * PAGE, nodes[1]);
	EXPECT_EQ(-EFAULT, region_info(self->fd, c.id, &info, NULL, 4));
	EXPECT_EQ(-EFAULT, region_info(self->fd, c.id, &info, (uint64_t *)8, 4));
	memset(&info, 0, sizeof(info));
	info.id = c.id;
	info.flags = 1;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_INFO, &info));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
}

TEST_F(region, always_zeroed)
{
	const size_t size = 64 * PAGE;
	struct dsv4_region_create c;
	uint8_t *p;

	for (int round = 0; round < 3; round++) {
		ASSERT_EQ(0, dsv4_create(self->fd, size, -1, 0, round == 1 ? DSV4_REGION_HUGE : 0,
					 NULL, &c));
		p = map_region(self->fd, &c, PROT_READ | PROT_WRITE);
		ASSERT_NE(NULL, p);
		size_t nonzero = size;

		for (size_t i = 0; i < size && nonzero == size; i++)
			if (p[i])
				nonzero = i;
		ASSERT_EQ(size, nonzero) TH_LOG("round %d: byte %zu not zero", round, nonzero);
		memset(p, 0xA5, size);
		ASSERT_EQ(0, munmap(p, size));
		ASSERT_EQ(0, dsv4_destroy(self->fd, c.id));
	}
}

TEST_F(region, mmap_rules)
{
	struct dsv4_region_create c, other;
	uint8_t *p, *q;
	int fd2;

	ASSERT_EQ(0, dsv4_create(self->fd, 4 * PAGE, -1, 0, 0, NULL, &c));
	/* beyond the region, private, unknown id, no handle in this file */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, 5 * PAGE, PROT_READ, MAP_SHARED, self->fd, c.mmap_offset));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, self->fd,
				   c.mmap_offset + 3 * PAGE));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, self->fd, c.mmap_offset));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->fd, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->fd,
				   (c.id + 1000) << DSV4_MMAP_SHIFT));
	EXPECT_EQ(ENOENT, errno);
	fd2 = open(DSV4_DEV, O_RDWR);
	ASSERT_LE(0, fd2);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd2, c.mmap_offset));
	EXPECT_EQ(ENOENT, errno);
	ASSERT_EQ(0, dsv4_create(fd2, PAGE, -1, 0, 0, NULL, &other));
	close(fd2);	/* its region goes with it */

	/* A sub-range at an offset sees the same bytes. */
	p = map_region(self->fd, &c, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, p);
	q = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->fd, c.mmap_offset + 2 * PAGE);
	ASSERT_NE(MAP_FAILED, q);
	p[2 * PAGE + 7] = 42;
	EXPECT_EQ(42, q[7]);
	/* mremap: no growing, no moving */
	EXPECT_EQ(MAP_FAILED, mremap(p, 4 * PAGE, 8 * PAGE, 0));
	EXPECT_EQ(MAP_FAILED, mremap(p, 4 * PAGE, 8 * PAGE, MREMAP_MAYMOVE));
	void *spot = mmap(NULL, 4 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, spot);
	EXPECT_EQ(MAP_FAILED, mremap(p, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, spot));
	munmap(spot, 4 * PAGE);
	EXPECT_EQ(42, p[2 * PAGE + 7]);	/* still in place */
	/* MADV_DONTNEED zaps PTEs; the fault handler puts the same page back */
	EXPECT_EQ(0, madvise(p, 4 * PAGE, MADV_DONTNEED));
	EXPECT_EQ(42, p[2 * PAGE + 7]);
	munmap(q, PAGE);
	munmap(p, 4 * PAGE);
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
}

TEST_F(region, fork_child_cannot_see_mapping)
{
	struct dsv4_region_create c;
	volatile uint8_t *p;
	pid_t pid;
	int status;

	ASSERT_EQ(0, dsv4_create(self->fd, PAGE, -1, 0, 0, NULL, &c));
	p = map_region(self->fd, &c, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, p);
	p[0] = 1;
	pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		(void)p[0];	/* VM_DONTCOPY: not mapped here */
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGSEGV, WTERMSIG(status));
	munmap((void *)p, PAGE);
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
}

TEST_F(region, live_mapping_outlives_destroy_and_close)
{
	struct dsv4_region_create c;
	uint8_t *p;
	int fd = open(DSV4_DEV, O_RDWR);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, dsv4_create(fd, 16 * PAGE, -1, 0, 0, "outlive", &c));
	p = map_region(fd, &c, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, p);
	memset(p, 0x5a, 16 * PAGE);
	ASSERT_EQ(0, dsv4_destroy(fd, c.id));
	ASSERT_EQ(0, close(fd));
	/* Still mapped, still the same bytes, still counted. */
	for (size_t i = 0; i < 16 * PAGE; i += 512) {
		ASSERT_EQ(0x5a, p[i]);
	}
	p[100] = 1;
	EXPECT_EQ(self->base_regions + 1, dsv4_read_ll(SYS "nr_regions"));
	/* A destroyed name is free for a new region. */
	EXPECT_EQ(0, dsv4_create(self->fd, PAGE, -1, 0, 0, "outlive", &c));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
	ASSERT_EQ(0, munmap(p, 16 * PAGE));
}

static int page_nodes_are(void *p, size_t size, int node)
{
	void *pages[64];
	int status[64];
	size_t n = 0, step = size / PAGE / 64 ? size / PAGE / 64 : 1;

	/* Up to 64 pages spread over the whole range. */
	for (size_t pg = 0; pg < size / PAGE && n < 64; pg += step)
		pages[n++] = (uint8_t *)p + pg * PAGE;
	if (move_pages(0, n, pages, NULL, status, 0))
		return -errno;
	for (size_t i = 0; i < n; i++)
		if (status[i] != node)
			return status[i] < 0 ? status[i] : 1000 + status[i];
	return 0;
}

TEST_F(region, numa_placement_with_move_pages)
{
	struct dsv4_info info = {};

	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_GET_INFO, &info));
	if (info.nr_online_nodes < 2)
		SKIP(return, "needs 2 NUMA nodes (the VM has them)");
	for (int node = 0; node < 2; node++) {
		for (int flags = 0; flags < 2; flags++) {
			struct dsv4_region_create c;
			uint64_t nodes[4] = {};
			struct dsv4_region_info ri;
			uint8_t *p;
			uint32_t f = flags ? DSV4_REGION_HUGE : DSV4_REGION_PREFERRED;
			size_t size = flags ? (4UL << 20) : 32 * PAGE;

			ASSERT_EQ(0, dsv4_create(self->fd, size, node, 0, f, NULL, &c));
			p = map_region(self->fd, &c, PROT_READ | PROT_WRITE);
			ASSERT_NE(NULL, p);
			EXPECT_EQ(0, page_nodes_are(p, size, node)) TH_LOG("node %d flags %#x", node, f);
			ASSERT_EQ(0, region_info(self->fd, c.id, &ri, nodes, 4));
			EXPECT_EQ(size, nodes[node]);
			if (f & DSV4_REGION_HUGE) {
				EXPECT_LT(0u, ri.huge_bytes);
			}
			munmap(p, size);
			EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
		}
	}
}

TEST_F(region, persistent_outlives_creator)
{
	struct dsv4_region_create c;
	struct dsv4_region_open o;
	struct dsv4_region_info info;
	uint8_t *p;
	int fd = open(DSV4_DEV, O_RDWR);
	long long pbytes = dsv4_read_ll(SYS "persistent_bytes");

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, dsv4_create(fd, 4 * PAGE, 0, DSV4_KIND_ENGRAM_TABLE,
				 DSV4_REGION_PERSISTENT, "engram.test", &c));
	p = map_region(fd, &c, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, p);
	strcpy((char *)p, "table row 0");
	munmap(p, 4 * PAGE);
	close(fd);	/* the creator is gone */
	EXPECT_EQ(pbytes + 4 * (long long)PAGE, dsv4_read_ll(SYS "persistent_bytes"));

	memset(&o, 0, sizeof(o));
	strcpy(o.name, "engram.test");
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_OPEN, &o));
	EXPECT_EQ(c.id, o.id);
	EXPECT_EQ(4 * PAGE, o.size);
	EXPECT_EQ(DSV4_KIND_ENGRAM_TABLE, o.kind);
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_OPEN, &o));	/* again: same handle */
	ASSERT_EQ(0, region_info(self->fd, o.id, &info, NULL, 0));
	EXPECT_EQ(DSV4_STATE_PERSISTENT, info.state);
	EXPECT_EQ(2u, info.refs);	/* module + this handle */
	p = mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, self->fd, o.mmap_offset);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_STREQ("table row 0", (char *)p);
	munmap(p, 4 * PAGE);
	/* CLOSE drops the handle only; DESTROY ends persistence. */
	struct dsv4_region_id a = { .id = o.id };

	EXPECT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CLOSE, &a));
	EXPECT_EQ(0, region_info(self->fd, o.id, &info, NULL, 0));
	EXPECT_EQ(0, dsv4_destroy(self->fd, o.id));
	EXPECT_EQ(-ENOENT, dsv4_destroy(self->fd, o.id));
	EXPECT_EQ(-ENOENT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_OPEN, &o));
	EXPECT_EQ(pbytes, dsv4_read_ll(SYS "persistent_bytes"));
}

TEST_F(region, open_errors)
{
	struct dsv4_region_open o = {};

	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_OPEN, &o));	/* empty */
	strcpy(o.name, "no-such-region");
	EXPECT_EQ(-ENOENT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_OPEN, &o));
	o.flags = 1u << 7;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_OPEN, &o));
	o.flags = 0;
	memset(o.name, 'n', sizeof(o.name));
	EXPECT_EQ(-ENAMETOOLONG, dsv4_ioctl(self->fd, DSV4_IOC_REGION_OPEN, &o));
}

TEST_F(region, persistent_cap)
{
	char old[32] = "0";
	FILE *f = fopen(PARAM "persistent_limit_mb", "r");

	ASSERT_NE(NULL, f);
	ASSERT_NE(NULL, fgets(old, sizeof(old), f));
	fclose(f);
	ASSERT_EQ(0, dsv4_write_str(PARAM "persistent_limit_mb", "1"));
	EXPECT_EQ(1 << 20, dsv4_read_ll(SYS "persistent_limit_bytes"));
	EXPECT_EQ(-EDQUOT, dsv4_create(self->fd, 2 << 20, -1, 0, DSV4_REGION_PERSISTENT, "cap", NULL));
	ASSERT_EQ(0, dsv4_write_str(PARAM "persistent_limit_mb", old));
	/* Nothing was left behind by the refusal. */
	struct dsv4_region_create c;

	ASSERT_EQ(0, dsv4_create(self->fd, 2 << 20, -1, 0, DSV4_REGION_PERSISTENT, "cap", &c));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
}

TEST_F(region, max_regions_param)
{
	char val[32];
	struct dsv4_region_create c;

	snprintf(val, sizeof(val), "%lld", dsv4_read_ll(SYS "nr_regions") + 1);
	ASSERT_EQ(0, dsv4_write_str(PARAM "max_regions", val));
	ASSERT_EQ(0, dsv4_create(self->fd, PAGE, -1, 0, 0, NULL, &c));
	EXPECT_EQ(-ENOSPC, dsv4_create(self->fd, PAGE, -1, 0, 0, NULL, NULL));
	ASSERT_EQ(0, dsv4_write_str(PARAM "max_regions", "65536"));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
}

static int count_fds(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n += access(path, F_OK) == 0;
	}
	return n;
}

/*
 * A result that cannot be copied out (the argument lives in a read-only
 * page) undoes the call: no region, no handle, no persistent charge, no fd.
 */
TEST_F(region, uncopyable_result_leaves_nothing)
{
	struct dsv4_region_create *c;
	struct dsv4_region_export *ex;
	struct dsv4_region_create keep;
	long long pbytes = dsv4_read_ll(SYS "persistent_bytes");
	uint8_t *page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fds;

	ASSERT_NE(MAP_FAILED, page);
	c = (void *)page;
	*c = (struct dsv4_region_create){ .size = PAGE, .numa_node = -1,
					  .flags = DSV4_REGION_PERSISTENT };
	strcpy(c->name, "uncopyable");
	ASSERT_EQ(0, mprotect(page, PAGE, PROT_READ));
	EXPECT_EQ(-EFAULT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, c));
	EXPECT_EQ(self->base_regions, dsv4_read_ll(SYS "nr_regions"));
	EXPECT_EQ(pbytes, dsv4_read_ll(SYS "persistent_bytes"));
	/* the name is free again */
	ASSERT_EQ(0, dsv4_create(self->fd, PAGE, -1, 0, 0, "uncopyable", &keep));

	ASSERT_EQ(0, mprotect(page, PAGE, PROT_READ | PROT_WRITE));
	ex = (void *)page;
	*ex = (struct dsv4_region_export){ .id = keep.id, .flags = DSV4_EXPORT_RDWR };
	ASSERT_EQ(0, mprotect(page, PAGE, PROT_READ));
	fds = count_fds();
	EXPECT_EQ(-EFAULT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, ex));
	EXPECT_EQ(fds, count_fds());
	/* no dma-buf holds the region as a writer: it can be sealed */
	struct dsv4_region_id a = { .id = keep.id };

	EXPECT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_SEAL, &a));
	munmap(page, PAGE);
	EXPECT_EQ(0, dsv4_destroy(self->fd, keep.id));
}

/* ---- unprivileged callers ---- */

struct perm_ctx {
	uint64_t private_id;
	uint64_t shared_id;
};

static void nobody_checks(void *arg)
{
	struct perm_ctx *ctx = arg;
	struct dsv4_region_open o = {};
	struct dsv4_region_info info = { .id = ctx->private_id };
	int fd = open(DSV4_DEV, O_RDWR);

	if (fd < 0)
		_exit(10);
	strcpy(o.name, "perm.private");
	if (dsv4_ioctl(fd, DSV4_IOC_REGION_OPEN, &o) != -EACCES)
		_exit(11);
	if (dsv4_ioctl(fd, DSV4_IOC_REGION_INFO, &info) != -EACCES)
		_exit(12);
	strcpy(o.name, "perm.shared");
	if (dsv4_ioctl(fd, DSV4_IOC_REGION_OPEN, &o) != 0 || o.id != ctx->shared_id)
		_exit(13);
	o.flags = DSV4_OPEN_WRITE;
	if (dsv4_ioctl(fd, DSV4_IOC_REGION_OPEN, &o) != -EACCES)
		_exit(14);
	/* Read access maps read-only; owner-only operations are refused. */
	void *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, (off_t)o.mmap_offset);

	if (p == MAP_FAILED)
		_exit(15);
	if (!mprotect(p, PAGE, PROT_READ | PROT_WRITE) || errno != EACCES)
		_exit(30);
	munmap(p, PAGE);
	if (mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)o.mmap_offset) !=
	    MAP_FAILED || errno != EACCES)
		_exit(31);
	struct dsv4_region_export ex = { .id = o.id, .flags = DSV4_EXPORT_RDWR };

	if (dsv4_ioctl(fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex) != -EACCES)
		_exit(32);
	ex.flags = 0;
	if (dsv4_ioctl(fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex))
		_exit(33);
	close(ex.fd);
	if (dsv4_destroy(fd, ctx->shared_id) != -EPERM)
		_exit(16);
	struct dsv4_region_id a = { .id = ctx->shared_id };

	if (dsv4_ioctl(fd, DSV4_IOC_REGION_SEAL, &a) != -EPERM)
		_exit(17);
	/* LIST hides the private region from nobody. */
	struct dsv4_region_entry e[64];
	struct dsv4_region_list l = {
		.entries_ptr = (uintptr_t)e, .capacity = 64, .entry_size = sizeof(e[0]),
	};

	if (dsv4_ioctl(fd, DSV4_IOC_REGION_LIST, &l))
		_exit(18);
	for (uint32_t i = 0; i < l.count && i < 64; i++)
		if (e[i].id == ctx->private_id)
			_exit(19);
	close(fd);
}

TEST_F(region, open_permissions_unprivileged)
{
	struct dsv4_region_create c = { .size = PAGE, .numa_node = -1,
					.flags = DSV4_REGION_PERSISTENT };
	struct perm_ctx ctx;
	struct stat st;

	strcpy(c.name, "perm.private");
	c.mode = 0600;
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, &c));
	ctx.private_id = c.id;
	strcpy(c.name, "perm.shared");
	c.mode = 0644;
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_CREATE, &c));
	ctx.shared_id = c.id;
	/* The udev rule gives the dsv4 group access; here: open it up. */
	ASSERT_EQ(0, stat(DSV4_DEV, &st));
	ASSERT_EQ(0, chmod(DSV4_DEV, 0666));
	EXPECT_EQ(0, run_as_nobody(nobody_checks, &ctx, RLIM_INFINITY));
	chmod(DSV4_DEV, st.st_mode & 07777);
	EXPECT_EQ(0, dsv4_destroy(self->fd, ctx.private_id));
	EXPECT_EQ(0, dsv4_destroy(self->fd, ctx.shared_id));
}

static void nobody_memlock(void *arg)
{
	int fd = open(DSV4_DEV, O_RDWR);
	struct dsv4_region_create c;

	(void)arg;
	if (fd < 0)
		_exit(20);
	/* RLIMIT_MEMLOCK is 1 MiB: 2 MiB is refused cleanly. */
	if (dsv4_create(fd, 2 << 20, -1, 0, 0, NULL, NULL) != -ENOMEM)
		_exit(21);
	if (dsv4_create(fd, 512 << 10, -1, 0, 0, NULL, &c))
		_exit(22);
	if (dsv4_create(fd, 768 << 10, -1, 0, 0, NULL, NULL) != -ENOMEM)
		_exit(23);
	/* The charge is returned on destroy... */
	if (dsv4_destroy(fd, c.id) || dsv4_create(fd, 1 << 20, -1, 0, 0, NULL, &c))
		_exit(24);
	if (dsv4_destroy(fd, c.id))
		_exit(25);
	/* ...and on a failed allocation. */
	if (dsv4_write_str(DBG "fail_alloc", "1") != -EACCES)
		_exit(26);	/* nobody cannot inject faults */
	close(fd);
}

TEST_F(region, memlock_limit_unprivileged)
{
	struct stat st;

	ASSERT_EQ(0, stat(DSV4_DEV, &st));
	ASSERT_EQ(0, chmod(DSV4_DEV, 0666));
	EXPECT_EQ(0, run_as_nobody(nobody_memlock, NULL, 1 << 20));
	chmod(DSV4_DEV, st.st_mode & 07777);
}

TEST_F(region, seal)
{
	struct dsv4_region_create c;
	struct dsv4_region_open o = {};
	struct dsv4_region_id a = {};
	uint8_t *p;

	ASSERT_EQ(0, dsv4_create(self->fd, 2 * PAGE, -1, 0, 0, "sealme", &c));
	a.id = c.id;
	p = map_region(self->fd, &c, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, p);
	p[0] = 7;
	EXPECT_EQ(-EBUSY, dsv4_ioctl(self->fd, DSV4_IOC_REGION_SEAL, &a));	/* writer alive */
	munmap(p, 2 * PAGE);
	a.flags = 4;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_SEAL, &a));
	a.flags = 0;
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_SEAL, &a));
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_SEAL, &a));	/* idempotent */
	EXPECT_EQ(NULL, map_region(self->fd, &c, PROT_READ | PROT_WRITE));
	EXPECT_EQ(EPERM, errno);
	p = map_region(self->fd, &c, PROT_READ);
	ASSERT_NE(NULL, p);
	EXPECT_EQ(7, p[0]);
	EXPECT_EQ(-1, mprotect(p, 2 * PAGE, PROT_READ | PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
	munmap(p, 2 * PAGE);
	strcpy(o.name, "sealme");
	o.flags = DSV4_OPEN_WRITE;
	EXPECT_EQ(-EPERM, dsv4_ioctl(self->fd, DSV4_IOC_REGION_OPEN, &o));
	struct dsv4_region_export ex = { .id = c.id, .flags = DSV4_EXPORT_RDWR };

	EXPECT_EQ(-EPERM, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
}

TEST_F(region, fault_injection_alloc)
{
	struct dsv4_region_create c;
	long long bytes = dsv4_read_ll(SYS "total_bytes");

	/* One failed 64 KiB folio is not fatal: single pages take over. */
	ASSERT_EQ(0, dsv4_write_str(DBG "fail_alloc", "1"));
	ASSERT_EQ(0, dsv4_create(self->fd, 16 * PAGE, -1, 0, 0, "inj", &c));
	EXPECT_EQ(0, dsv4_read_ll(DBG "fail_alloc"));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
	/* Every allocation failing: ENOMEM, nothing left behind. */
	ASSERT_EQ(0, dsv4_write_str(DBG "fail_alloc", "1000"));
	EXPECT_EQ(-ENOMEM, dsv4_create(self->fd, 64 * PAGE, -1, 0, 0, "inj", NULL));
	ASSERT_EQ(0, dsv4_write_str(DBG "fail_alloc", "0"));
	EXPECT_EQ(bytes, dsv4_read_ll(SYS "total_bytes"));
	ASSERT_EQ(0, dsv4_create(self->fd, 16 * PAGE, -1, 0, 0, "inj", &c));	/* name free */
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
	/* Persistent charge is returned too. */
	long long pbytes = dsv4_read_ll(SYS "persistent_bytes");

	ASSERT_EQ(0, dsv4_write_str(DBG "fail_alloc", "1"));
	EXPECT_EQ(-ENOMEM, dsv4_create(self->fd, PAGE, -1, 0, DSV4_REGION_PERSISTENT, "inj", NULL));
	EXPECT_EQ(pbytes, dsv4_read_ll(SYS "persistent_bytes"));
}

TEST_F(region, sysfs_debugfs_views)
{
	struct dsv4_region_create c;
	char path[128], buf[4096] = "";
	FILE *f;
	size_t n;

	ASSERT_EQ(0, dsv4_create(self->fd, 3 * PAGE, 1, DSV4_KIND_KV_SPILL, 0, "viewme", &c));
	snprintf(path, sizeof(path), SYS "regions/%llu/size", (unsigned long long)c.id);
	EXPECT_EQ(3 * (long long)PAGE, dsv4_read_ll(path));
	snprintf(path, sizeof(path), SYS "regions/%llu/numa_node", (unsigned long long)c.id);
	EXPECT_EQ(1, dsv4_read_ll(path));
	snprintf(path, sizeof(path), SYS "regions/%llu/node_bytes", (unsigned long long)c.id);
	f = fopen(path, "r");
	ASSERT_NE(NULL, f);
	ASSERT_NE(NULL, fgets(buf, sizeof(buf), f));
	fclose(f);
	EXPECT_STREQ("1:12288\n", buf);
	f = fopen(DBG "regions", "r");
	ASSERT_NE(NULL, f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	EXPECT_NE(NULL, strstr(buf, "viewme"));
	EXPECT_NE(NULL, strstr(buf, "kv_spill"));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
	snprintf(path, sizeof(path), SYS "regions/%llu", (unsigned long long)c.id);
	EXPECT_NE(0, access(path, F_OK));
}

TEST_F(region, tracepoints)
{
	struct dsv4_region_create c;
	char buf[8192] = "", want[64];
	const char *tr = "/sys/kernel/tracing/";
	char path[128];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%sevents/dsv4/enable", tr);
	if (access(path, F_OK))
		SKIP(return, "tracefs not mounted");
	ASSERT_EQ(0, dsv4_write_str("/sys/kernel/tracing/trace", ""));
	ASSERT_EQ(0, dsv4_write_str(path, "1"));
	ASSERT_EQ(0, dsv4_create(self->fd, PAGE, -1, 0, 0, NULL, &c));
	struct dsv4_region_export ex = { .id = c.id };

	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	close(ex.fd);
	int memfd = memfd_create("trace", MFD_CLOEXEC);
	struct dsv4_region_import im = { .memfd = memfd, .size = PAGE };

	ASSERT_EQ(0, ftruncate(memfd, PAGE));
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_IMPORT_MEMFD, &im));
	close(memfd);
	ASSERT_EQ(0, dsv4_destroy(self->fd, im.id));
	ASSERT_EQ(0, dsv4_destroy(self->fd, c.id));
	ASSERT_EQ(0, dsv4_write_str(path, "0"));
	f = fopen("/sys/kernel/tracing/trace", "r");
	ASSERT_NE(NULL, f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	snprintf(want, sizeof(want), "dsv4_region_create: id=%llu size=4096", (unsigned long long)c.id);
	EXPECT_NE(NULL, strstr(buf, want)) TH_LOG("%s", buf);
	snprintf(want, sizeof(want), "dsv4_region_destroy: id=%llu", (unsigned long long)c.id);
	EXPECT_NE(NULL, strstr(buf, want));
	snprintf(want, sizeof(want), "dsv4_region_free: id=%llu", (unsigned long long)c.id);
	EXPECT_NE(NULL, strstr(buf, want));
	snprintf(want, sizeof(want), "dsv4_region_export: id=%llu offset=0 size=4096",
		 (unsigned long long)c.id);
	EXPECT_NE(NULL, strstr(buf, want));
	snprintf(want, sizeof(want), "dsv4_region_import: id=%llu size=4096",
		 (unsigned long long)im.id);
	EXPECT_NE(NULL, strstr(buf, want));
}

/* ---- threaded stress: create/map/destroy/close racing each other ---- */

struct stress_arg {
	int shared_fd;
	unsigned int seed;
	int errors;
};

static void *stress_thread(void *p)
{
	struct stress_arg *a = p;

	for (int i = 0; i < 150; i++) {
		int own = rand_r(&a->seed) % 2;
		int fd = own ? open(DSV4_DEV, O_RDWR) : a->shared_fd;
		size_t size = (1 + rand_r(&a->seed) % 8) * PAGE;
		struct dsv4_region_create c;
		uint8_t *m;

		if (fd < 0 || dsv4_create(fd, size, rand_r(&a->seed) % 3 - 1, rand_r(&a->seed) % 4,
					  rand_r(&a->seed) % 2 ? DSV4_REGION_PREFERRED : 0, NULL, &c)) {
			a->errors++;
			continue;
		}
		m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)c.mmap_offset);
		if (m == MAP_FAILED) {
			a->errors++;
		} else {
			if (m[size - 1] != 0)
				a->errors++;
			memset(m, i, size);
		}
		switch (rand_r(&a->seed) % 3) {
		case 0:	/* destroy, then unmap */
			if (dsv4_destroy(fd, c.id))
				a->errors++;
			if (m != MAP_FAILED)
				munmap(m, size);
			break;
		case 1:	/* unmap, then destroy */
			if (m != MAP_FAILED)
				munmap(m, size);
			if (dsv4_destroy(fd, c.id))
				a->errors++;
			break;
		default: /* leave it to close (own fd) or destroy later */
			if (m != MAP_FAILED)
				munmap(m, size);
			if (!own && dsv4_destroy(fd, c.id))
				a->errors++;
			break;
		}
		if (own)
			close(fd);
	}
	return NULL;
}

TEST_F(region, threaded_stress_no_leaks)
{
	pthread_t t[4];
	struct stress_arg a[4];

	for (int i = 0; i < 4; i++) {
		a[i] = (struct stress_arg){ .shared_fd = self->fd, .seed = 1234u + i };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, stress_thread, &a[i]));
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, a[i].errors);
	}
	/* teardown checks nr_regions and total_bytes are back to baseline */
	EXPECT_EQ(0, dsv4_read_ll(SYS "persistent_bytes"));
}

DSV4_TEST_MAIN
