// SPDX-License-Identifier: MIT
/*
 * The memory provider suite, run once per provider (fixture variants):
 * "host" everywhere, "kmod" where /dev/dsv4 exists (the QEMU guests run a
 * static build of this file, see tests/vm/guest/provider.sh).  Buffers are
 * zeroed, writable, pinned and accounted; placement policies land where
 * asked and the achieved placement is reported; bad arguments are refused
 * and allocate nothing; the buffer can be an io_uring fixed buffer where
 * the kernel allows it (host memfd: always; kmod mapping: kernels >= 6.5).
 */
#include <errno.h>
#include <liburing.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

FIXTURE(prov) {
	struct dsv4_mem *m;
	char log[256];
};

FIXTURE_VARIANT(prov) {
	enum dsv4_provider kind;
};

FIXTURE_VARIANT_ADD(prov, host) { .kind = DSV4_PROVIDER_HOST };
FIXTURE_VARIANT_ADD(prov, kmod) { .kind = DSV4_PROVIDER_KMOD };

static void logger(void *ctx, const char *msg)
{
	snprintf(ctx, 256, "%s", msg);
}

FIXTURE_SETUP(prov)
{
	struct dsv4_mem_options o = { .provider = variant->kind, .log = logger,
				      .log_ctx = self->log };
	char err[256];
	int ret;

	self->m = NULL;
	ret = dsv4_mem_open(&o, &self->m, err, sizeof(err));
	if (variant->kind == DSV4_PROVIDER_KMOD && ret)
		SKIP(return, "no /dev/dsv4 here: %s", err);
	ASSERT_EQ(0, ret) TH_LOG("%s", err);
	ASSERT_NE(NULL, strstr(self->log, dsv4_mem_provider_name(self->m)));
}

FIXTURE_TEARDOWN(prov)
{
	dsv4_mem_close(self->m);
}

TEST_F(prov, zeroed_writable_pinned_and_counted)
{
	struct dsv4_buf *b[3];
	struct dsv4_mem_stats st;
	char err[256];
	uint64_t sizes[3] = { 4096, 3 << 20, 12345 };

	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, dsv4_mem_alloc(self->m, sizes[i], DSV4_KIND_EXPERT_STAGING,
					    DSV4_NUMA_LOCAL, -1, &b[i], err, sizeof(err))) TH_LOG("%s", err);
		const uint8_t *p = b[i]->addr;
		uint64_t nz = 0;

		for (uint64_t j = 0; j < sizes[i]; j++)
			nz += p[j] != 0;
		EXPECT_EQ(0u, nz);
		memset(b[i]->addr, 0xa5, sizes[i]);
		EXPECT_EQ(sizes[i], b[i]->size);
		EXPECT_EQ(DSV4_KIND_EXPERT_STAGING, b[i]->kind);
		EXPECT_EQ(1, b[i]->locked);
	}
	dsv4_mem_get_stats(self->m, &st);
	EXPECT_STREQ(dsv4_mem_provider_name(self->m), st.provider);
	EXPECT_EQ(3u, st.buffers);
	EXPECT_LE(sizes[0] + sizes[1] + sizes[2], st.bytes);
	EXPECT_EQ(0u, st.unlocked_buffers);
	for (int i = 0; i < 3; i++)
		dsv4_mem_free(b[i]);
	dsv4_mem_get_stats(self->m, &st);
	EXPECT_EQ(0u, st.buffers);
	EXPECT_EQ(0u, st.bytes);
	EXPECT_LT(0u, st.peak_bytes);
}

TEST_F(prov, placement_is_what_was_asked)
{
	uint64_t per[64];
	struct dsv4_buf *b;
	char err[256];
	int nodes = 0, first = -1, second = -1;

	for (int n = 0; numa_available() >= 0 && n <= numa_max_node() && n < 64; n++) {
		long long fr;

		if (numa_node_size64(n, &fr) > 0) {
			nodes++;
			if (first < 0)
				first = n;
			else if (second < 0)
				second = n;
		}
	}
	if (first < 0)
		first = 0;
	ASSERT_EQ(0, dsv4_mem_alloc(self->m, 8 << 20, DSV4_KIND_GENERIC, DSV4_NUMA_NODE, first, &b,
				    err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, dsv4_buf_placement(b, per, 64));
	EXPECT_EQ(8u << 20, per[first]) TH_LOG("node %d holds %llu", first, (unsigned long long)per[first]);
	dsv4_mem_free(b);
	if (second >= 0) {
		ASSERT_EQ(0, dsv4_mem_alloc(self->m, 8 << 20, DSV4_KIND_GENERIC, DSV4_NUMA_NODE,
					    second, &b, err, sizeof(err))) TH_LOG("%s", err);
		ASSERT_EQ(0, dsv4_buf_placement(b, per, 64));
		EXPECT_EQ(8u << 20, per[second]);
		dsv4_mem_free(b);
		ASSERT_EQ(0, dsv4_mem_alloc(self->m, 16 << 20, DSV4_KIND_KV_SPILL,
					    DSV4_NUMA_INTERLEAVE, -1, &b, err, sizeof(err))) TH_LOG("%s", err);
		ASSERT_EQ(0, dsv4_buf_placement(b, per, 64));
		TH_LOG("interleave over %d nodes: %llu / %llu bytes", nodes,
		       (unsigned long long)per[first], (unsigned long long)per[second]);
		EXPECT_LT(0u, per[first]);
		EXPECT_LT(0u, per[second]);
		EXPECT_EQ(16u << 20, per[first] + per[second]);
		dsv4_mem_free(b);
	}
	/* a node without memory or out of range */
	EXPECT_EQ(-EINVAL, dsv4_mem_alloc(self->m, 4096, 0, DSV4_NUMA_NODE, 1000, &b, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_mem_alloc(self->m, 4096, 0, DSV4_NUMA_NODE, -1, &b, err, sizeof(err)));
}

TEST_F(prov, bad_arguments_allocate_nothing)
{
	struct dsv4_buf *b = NULL;
	struct dsv4_mem_stats st;
	char err[256];

	EXPECT_EQ(-EINVAL, dsv4_mem_alloc(self->m, 0, 0, DSV4_NUMA_LOCAL, -1, &b, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_mem_alloc(self->m, DSV4_REGION_MAX_SIZE + 1, 0, DSV4_NUMA_LOCAL, -1,
					  &b, err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_mem_alloc(self->m, 4096, DSV4_KIND_COUNT, DSV4_NUMA_LOCAL, -1, &b,
					  err, sizeof(err)));
	EXPECT_EQ(-EINVAL, dsv4_mem_alloc(self->m, 4096, 0, (enum dsv4_numa_policy)9, -1, &b,
					  err, sizeof(err)));
	EXPECT_NE(0u, strlen(err));
	/* more than RAM: refused, not overcommitted */
	EXPECT_GT(0, dsv4_mem_alloc(self->m, 1ull << 39, 0, DSV4_NUMA_LOCAL, -1, &b, err, sizeof(err)));
	EXPECT_EQ(NULL, b);
	dsv4_mem_get_stats(self->m, &st);
	EXPECT_EQ(0u, st.buffers);
	EXPECT_EQ(0u, st.bytes);
}

TEST_F(prov, huge_pages_when_asked)
{
	struct dsv4_mem_options o = { .provider = variant->kind, .huge = 1 };
	struct dsv4_mem *hm;
	struct dsv4_buf *b;
	char err[256];

	ASSERT_EQ(0, dsv4_mem_open(&o, &hm, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, dsv4_mem_alloc(hm, 5 << 20, 0, DSV4_NUMA_LOCAL, -1, &b, err, sizeof(err)))
		TH_LOG("%s", err);
	memset(b->addr, 1, 5 << 20);
	TH_LOG("%s: hugetlb %d", dsv4_mem_provider_name(hm), b->huge);
	dsv4_mem_free(b);
	dsv4_mem_close(hm);
}

TEST_F(prov, io_uring_fixed_buffer_where_the_kernel_allows)
{
	struct io_uring ring;
	struct dsv4_buf *b;
	struct iovec iov;
	struct utsname u;
	char err[256];
	int maj = 0, min = 0, ret;

	uname(&u);
	sscanf(u.release, "%d.%d", &maj, &min);
	if (variant->kind == DSV4_PROVIDER_KMOD && (maj < 6 || (maj == 6 && min < 5)))
		SKIP(return, "io_uring cannot pin a char-device mapping before 6.5 (%s)", u.release);
	ASSERT_EQ(0, dsv4_mem_alloc(self->m, 2 << 20, DSV4_KIND_EXPERT_STAGING, DSV4_NUMA_LOCAL, -1,
				    &b, err, sizeof(err))) TH_LOG("%s", err);
	ret = io_uring_queue_init(4, &ring, 0);
	if (ret)
		SKIP(dsv4_mem_free(b); return, "io_uring unavailable: %s", strerror(-ret));
	iov.iov_base = b->addr;
	iov.iov_len = b->size;
	ret = io_uring_register_buffers(&ring, &iov, 1);
	EXPECT_EQ(0, ret) TH_LOG("register: %s", strerror(-ret));
	io_uring_queue_exit(&ring);
	dsv4_mem_free(b);
}

TEST(auto_selection_and_its_override)
{
	struct dsv4_mem_options o = { .dev_path = "/nonexistent/dsv4" };
	struct dsv4_mem *m;
	char err[256];

	setenv("DSV4_PROVIDER", "host", 1);
	ASSERT_EQ(0, dsv4_mem_open(NULL, &m, err, sizeof(err)));
	EXPECT_STREQ("host", dsv4_mem_provider_name(m));
	dsv4_mem_close(m);
	setenv("DSV4_PROVIDER", "bogus", 1);
	EXPECT_EQ(-EINVAL, dsv4_mem_open(NULL, &m, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "DSV4_PROVIDER"));
	unsetenv("DSV4_PROVIDER");
	/* no device: auto falls back to host and says why */
	ASSERT_EQ(0, dsv4_mem_open(&o, &m, err, sizeof(err)));
	EXPECT_STREQ("host", dsv4_mem_provider_name(m));
	struct dsv4_mem_stats st;

	dsv4_mem_get_stats(m, &st);
	EXPECT_NE(NULL, strstr(st.why, "/nonexistent/dsv4"));
	dsv4_mem_close(m);
	/* asking for kmod without the device is an error, not a silent fallback */
	o.provider = DSV4_PROVIDER_KMOD;
	EXPECT_EQ(-ENOENT, dsv4_mem_open(&o, &m, err, sizeof(err)));
	o.provider = (enum dsv4_provider)7;
	EXPECT_EQ(-EINVAL, dsv4_mem_open(&o, &m, err, sizeof(err)));
}

TEST_HARNESS_MAIN
