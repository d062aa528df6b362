// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/dsv4 basics: open/close, GET_INFO contents, unknown ioctls and the
 * struct-size extensibility rule.
 */
#include <sys/utsname.h>

#include "dsv4_test.h"

FIXTURE(dev) {
	int fd;
};

FIXTURE_SETUP(dev)
{
	self->fd = open(DSV4_DEV, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", DSV4_DEV, strerror(errno));
}

FIXTURE_TEARDOWN(dev)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST(open_close_many)
{
	int i;

	for (i = 0; i < 64; i++) {
		int fd = open(DSV4_DEV, O_RDWR);

		ASSERT_LE(0, fd);
		ASSERT_EQ(0, close(fd));
	}
}

TEST_F(dev, get_info_contents)
{
	struct dsv4_info info = {};
	long nodes = 0;
	int i;

	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_GET_INFO, &info));
	EXPECT_EQ(DSV4_ABI_VERSION, info.abi_version);
	EXPECT_EQ((uint32_t)sysconf(_SC_PAGESIZE), info.page_size);
	EXPECT_EQ(2u << 20, info.huge_size);
	EXPECT_NE(0, info.features & DSV4_FEAT_REGIONS);
	EXPECT_NE(0, info.version[0]);
	EXPECT_GT(sizeof(info.version), strnlen(info.version, sizeof(info.version)));
	EXPECT_EQ(1ULL << 40, info.max_region_size);
	for (i = 0; i < 4; i++)
		nodes += __builtin_popcountll(info.online_nodes[i]);
	EXPECT_EQ(info.nr_online_nodes, nodes);
	EXPECT_LE(1, info.nr_online_nodes);
	EXPECT_LE(info.nr_online_nodes, info.nr_node_ids);
	/* The node count agrees with sysfs. */
	for (i = 0, nodes = 0; i < 256; i++) {
		char p[64];

		snprintf(p, sizeof(p), "/sys/devices/system/node/node%d", i);
		nodes += access(p, F_OK) == 0;
	}
	if (nodes) {
		EXPECT_EQ(nodes, info.nr_online_nodes);
	}
}

TEST_F(dev, get_info_flags_must_be_zero)
{
	struct dsv4_info info = { .flags = 1 };

	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_GET_INFO, &info));
}

TEST_F(dev, unknown_ioctl_is_enotty)
{
	char buf[64] = {};

	EXPECT_EQ(-ENOTTY, dsv4_ioctl(self->fd, _IOWR(DSV4_IOC_MAGIC, 0x7f, buf), buf));
	EXPECT_EQ(-ENOTTY, dsv4_ioctl(self->fd, _IOWR('x', 0x00, struct dsv4_info), buf));
	/* Right number, wrong direction. */
	EXPECT_EQ(-ENOTTY, dsv4_ioctl(self->fd, _IOR(DSV4_IOC_MAGIC, 0x00, struct dsv4_info), buf));
	EXPECT_EQ(-ENOTTY, dsv4_ioctl(self->fd, _IO(DSV4_IOC_MAGIC, 0x00), NULL));
}

TEST_F(dev, struct_smaller_than_ver0_is_einval)
{
	struct dsv4_info info = {};
	unsigned long cmd = DSV4_IOC_RESIZE(DSV4_IOC_GET_INFO,
					    DSV4_INFO_SIZE_VER0 - 8);

	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, cmd, &info));
}

TEST_F(dev, struct_larger_with_zero_tail_ok)
{
	struct {
		struct dsv4_info info;
		uint8_t tail[64];
	} big;

	memset(&big, 0, sizeof(big));
	ASSERT_EQ(0, dsv4_ioctl(self->fd,
				DSV4_IOC_RESIZE(DSV4_IOC_GET_INFO, sizeof(big)),
				&big));
	EXPECT_EQ(DSV4_ABI_VERSION, big.info.abi_version);
	/* The kernel writes only what it knows. */
	for (size_t i = 0; i < sizeof(big.tail); i++) {
		ASSERT_EQ(0, big.tail[i]);
	}
}

TEST_F(dev, struct_larger_with_nonzero_tail_e2big)
{
	struct {
		struct dsv4_info info;
		uint8_t tail[64];
	} big;

	memset(&big, 0, sizeof(big));
	big.tail[63] = 1;
	EXPECT_EQ(-E2BIG, dsv4_ioctl(self->fd,
				     DSV4_IOC_RESIZE(DSV4_IOC_GET_INFO, sizeof(big)),
				     &big));
}

TEST_F(dev, struct_far_too_large_e2big)
{
	static uint8_t huge[8192];

	EXPECT_EQ(-E2BIG, dsv4_ioctl(self->fd,
				     DSV4_IOC_RESIZE(DSV4_IOC_GET_INFO, 8000),
				     huge));
}

TEST_F(dev, bad_user_pointer_efault)
{
	EXPECT_EQ(-EFAULT, dsv4_ioctl(self->fd, DSV4_IOC_GET_INFO, (void *)8));
}

TEST(module_params_in_sysfs)
{
	EXPECT_LE(0, dsv4_read_ll("/sys/module/dsv4/parameters/persistent_limit_mb"));
	EXPECT_LT(0, dsv4_read_ll("/sys/module/dsv4/parameters/max_regions"));
}

DSV4_TEST_MAIN
