// SPDX-License-Identifier: MIT
/*
 * Unit tests of libdsv4drv's parsers and /dev/dsv4 wrappers that need no
 * module: bad input must give a clean error.  Built with ASan + UBSan.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "kselftest_harness.h"

TEST(parse_size_units)
{
	uint64_t v;

	ASSERT_EQ(0, dsv4_parse_size("4096", &v));
	EXPECT_EQ(4096u, v);
	ASSERT_EQ(0, dsv4_parse_size("64K", &v));
	EXPECT_EQ(64u << 10, v);
	ASSERT_EQ(0, dsv4_parse_size("2M", &v));
	EXPECT_EQ(2u << 20, v);
	ASSERT_EQ(0, dsv4_parse_size("3g", &v));
	EXPECT_EQ(3ull << 30, v);
	ASSERT_EQ(0, dsv4_parse_size("1TiB", &v));
	EXPECT_EQ(1ull << 40, v);
	ASSERT_EQ(0, dsv4_parse_size("0", &v));
	EXPECT_EQ(0u, v);
}

TEST(parse_size_rejects_garbage)
{
	static const char *const bad[] = {
		"", " 1", "-1", "+1", "1X", "M", "1MM", "1 M", "0x10", "1.5G",
		"1B", "12ab", "K1",
	};
	uint64_t v = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, dsv4_parse_size(bad[i], &v)) TH_LOG("'%s'", bad[i]);
	}
	EXPECT_EQ(-EINVAL, dsv4_parse_size(NULL, &v));
	EXPECT_EQ(7u, v);	/* untouched on error */
}

TEST(parse_size_overflow)
{
	uint64_t v = 7;

	EXPECT_EQ(-ERANGE, dsv4_parse_size("18446744073709551616", &v));
	EXPECT_EQ(-ERANGE, dsv4_parse_size("16777216T", &v));
	EXPECT_EQ(-ERANGE, dsv4_parse_size("17179869184G", &v));
	ASSERT_EQ(0, dsv4_parse_size("16777215T", &v));
	EXPECT_EQ(16777215ull << 40, v);
	ASSERT_EQ(0, dsv4_parse_size("18446744073709551615", &v));
	EXPECT_EQ(UINT64_MAX, v);
}

TEST(kind_names_round_trip)
{
	for (uint32_t k = 0; k < DSV4_KIND_COUNT; k++) {
		uint32_t back = 99;

		ASSERT_EQ(0, dsv4_kind_from_name(dsv4_kind_to_name(k), &back));
		EXPECT_EQ(k, back);
	}
	uint32_t kind = 5;

	EXPECT_EQ(-EINVAL, dsv4_kind_from_name("engram", &kind));
	EXPECT_EQ(-EINVAL, dsv4_kind_from_name("", &kind));
	EXPECT_EQ(5u, kind);
	EXPECT_STREQ("unknown", dsv4_kind_to_name(DSV4_KIND_COUNT));
}

TEST(state_strings)
{
	char buf[64];

	EXPECT_STREQ("-", dsv4_state_to_string(0, buf, sizeof(buf)));
	EXPECT_STREQ("sealed,persistent",
		     dsv4_state_to_string(DSV4_STATE_SEALED | DSV4_STATE_PERSISTENT,
					  buf, sizeof(buf)));
	/* A short buffer truncates, never overflows. */
	char small[8];

	dsv4_state_to_string(0xf, small, sizeof(small));
	EXPECT_GT(sizeof(small), strlen(small));
}

TEST(kdev_open_missing_device)
{
	EXPECT_EQ(-ENOENT, dsv4_kdev_open("/nonexistent/dsv4"));
}

TEST(kdev_calls_on_wrong_device_enotty)
{
	struct dsv4_info info;
	struct dsv4_region_entry *e = (void *)1;
	uint32_t n = 9;
	int fd = open("/dev/null", O_RDWR);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-ENOTTY, dsv4_kdev_info(fd, &info));
	EXPECT_EQ(-ENOTTY, dsv4_kdev_list(fd, &e, &n));
	EXPECT_EQ(NULL, e);
	EXPECT_EQ(0u, n);
	EXPECT_EQ(-ENOTTY, dsv4_kdev_destroy(fd, 1));
	close(fd);
	EXPECT_EQ(-EBADF, dsv4_kdev_seal(fd, 1));
}

TEST(kdev_open_region_name_too_long)
{
	struct dsv4_region_open op;
	char name[DSV4_NAME_MAX + 1];

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	EXPECT_EQ(-ENAMETOOLONG, dsv4_kdev_open_region(-1, name, 0, &op));
}

/* The uAPI is frozen: its first-version sizes and layout never change. */
TEST(uapi_layout_frozen)
{
	EXPECT_EQ((size_t)DSV4_INFO_SIZE_VER0, sizeof(struct dsv4_info));
	EXPECT_EQ((size_t)DSV4_REGION_CREATE_SIZE_VER0, sizeof(struct dsv4_region_create));
	EXPECT_EQ((size_t)DSV4_REGION_INFO_SIZE_VER0, sizeof(struct dsv4_region_info));
	EXPECT_EQ((size_t)DSV4_REGION_ENTRY_SIZE_VER0, sizeof(struct dsv4_region_entry));
	EXPECT_EQ((size_t)DSV4_REGION_LIST_SIZE_VER0, sizeof(struct dsv4_region_list));
	EXPECT_EQ((size_t)DSV4_REGION_ID_SIZE_VER0, sizeof(struct dsv4_region_id));
	EXPECT_EQ((size_t)DSV4_REGION_OPEN_SIZE_VER0, sizeof(struct dsv4_region_open));
	EXPECT_EQ((size_t)DSV4_REGION_IMPORT_SIZE_VER0, sizeof(struct dsv4_region_import));
	EXPECT_EQ((size_t)DSV4_REGION_EXPORT_SIZE_VER0, sizeof(struct dsv4_region_export));
	EXPECT_EQ(16u, offsetof(struct dsv4_region_create, flags));
	EXPECT_EQ(88u, offsetof(struct dsv4_region_create, id));
	EXPECT_EQ(80u, offsetof(struct dsv4_region_info, name));
	/* The ioctl numbers encode those sizes. */
	EXPECT_EQ(sizeof(struct dsv4_region_create), _IOC_SIZE(DSV4_IOC_REGION_CREATE));
	EXPECT_EQ(0xD4u, _IOC_TYPE(DSV4_IOC_GET_INFO));
}

TEST_HARNESS_MAIN
