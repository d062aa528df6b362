// SPDX-License-Identifier: MIT
/*
 * Device discovery: the list works with or without DRM devices, a backend
 * that registers itself appears once (re-registration updates it), bad
 * registrations and PRIME imports into missing nodes are clear errors.
 * The vgem listing and a real PRIME import run in the QEMU guests
 * (tests/vm/guest/dsv4ctl.sh).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

static int count_node(const struct dsv4_device *d, size_t n, const char *node)
{
	int c = 0;

	for (size_t i = 0; i < n; i++)
		c += !strcmp(d[i].node, node);
	return c;
}

TEST(list_and_register)
{
	struct dsv4_device *d, be = { .node = "cuda:0", .kind = "gpu", .driver = "nvidia",
				       .bus = "pci:0000:01:00.0", .backend = "cuda" };
	size_t n0, n;

	ASSERT_EQ(0, dsv4_devices_list(&d, &n0));
	EXPECT_EQ(0, count_node(d, n0, "cuda:0"));
	for (size_t i = 0; i < n0; i++) {
		EXPECT_NE(0, d[i].node[0]);
		EXPECT_NE(0, d[i].backend[0]);
	}
	free(d);
	ASSERT_EQ(0, dsv4_device_register(&be));
	strcpy(be.driver, "nvidia-open");
	ASSERT_EQ(0, dsv4_device_register(&be));
	ASSERT_EQ(0, dsv4_devices_list(&d, &n));
	EXPECT_EQ(n0 + 1, n);
	EXPECT_EQ(1, count_node(d, n, "cuda:0"));
	EXPECT_STREQ("nvidia-open", d[n - 1].driver);
	free(d);
	EXPECT_EQ(-EINVAL, dsv4_device_register(NULL));
	struct dsv4_device empty = { 0 };

	EXPECT_EQ(-EINVAL, dsv4_device_register(&empty));
}

TEST(prime_import_errors)
{
	char err[256];
	int drm = -1;
	uint32_t h;

	EXPECT_EQ(-ENOENT, dsv4_device_prime_import("/nonexistent/renderD128", 0, &drm, &h, err,
						    sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "/nonexistent/renderD128"));
	/* a node that is not DRM: the import fails, and the fd is not leaked */
	EXPECT_GT(0, dsv4_device_prime_import("/dev/null", 0, &drm, &h, err, sizeof(err)));
	EXPECT_EQ(-1, drm);
}

TEST_HARNESS_MAIN
