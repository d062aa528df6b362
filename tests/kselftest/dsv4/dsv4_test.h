/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the dsv4 kselftests.
 */
#ifndef DSV4_TEST_H
#define DSV4_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dsv4.h"
#include "kselftest_harness.h"

#define DSV4_DEV "/dev/" DSV4_DEVICE_NAME

/* ioctl number of @cmd with the struct size replaced by @size. */
#define DSV4_IOC_RESIZE(cmd, size) \
	_IOC(_IOC_DIR(cmd), _IOC_TYPE(cmd), _IOC_NR(cmd), (size))

/* Returns 0 or -errno, so EXPECT_EQ(-EINVAL, ...) reads naturally. */
static inline int dsv4_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

static inline int dsv4_create(int fd, uint64_t size, int node, uint32_t kind,
			      uint32_t flags, const char *name,
			      struct dsv4_region_create *out)
{
	struct dsv4_region_create c = {
		.size = size, .numa_node = node, .kind = kind, .flags = flags,
	};
	int ret;

	if (name)
		snprintf(c.name, sizeof(c.name), "%s", name);
	ret = dsv4_ioctl(fd, DSV4_IOC_REGION_CREATE, &c);
	if (out)
		*out = c;
	return ret;
}

static inline int dsv4_destroy(int fd, uint64_t id)
{
	struct dsv4_region_id a = { .id = id };

	return dsv4_ioctl(fd, DSV4_IOC_REGION_DESTROY, &a);
}

/* A whole sysfs/debugfs file as a number, or -1. */
static inline long long dsv4_read_ll(const char *path)
{
	char buf[64] = "";
	long long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f))
		v = strtoll(buf, NULL, 0);
	fclose(f);
	return v;
}

static inline int dsv4_write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* Run the harness, or exit with KSFT_SKIP (4) when the module is absent. */
#define DSV4_TEST_MAIN							\
	int main(int argc, char **argv)					\
	{								\
		if (access(DSV4_DEV, F_OK)) {				\
			ksft_print_header();				\
			ksft_exit_skip(DSV4_DEV " not present: load dsv4.ko\n"); \
		}							\
		return test_harness_run(argc, argv);			\
	}

#endif /* DSV4_TEST_H */
