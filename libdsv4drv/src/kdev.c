// SPDX-License-Identifier: MIT
/* /dev/dsv4 wrappers: every call returns 0 or -errno, never prints. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dsv4drv.h"

static int kdev_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

int dsv4_kdev_open(const char *path)
{
	int fd = open(path ? path : DSV4_KDEV_PATH, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int dsv4_kdev_info(int fd, struct dsv4_info *info)
{
	memset(info, 0, sizeof(*info));
	return kdev_ioctl(fd, DSV4_IOC_GET_INFO, info);
}

int dsv4_kdev_create(int fd, struct dsv4_region_create *create)
{
	return kdev_ioctl(fd, DSV4_IOC_REGION_CREATE, create);
}

int dsv4_kdev_region_info(int fd, struct dsv4_region_info *info)
{
	return kdev_ioctl(fd, DSV4_IOC_REGION_INFO, info);
}

static int kdev_id_op(int fd, unsigned long cmd, uint64_t id)
{
	struct dsv4_region_id arg = { .id = id };

	return kdev_ioctl(fd, cmd, &arg);
}

int dsv4_kdev_destroy(int fd, uint64_t id)
{
	return kdev_id_op(fd, DSV4_IOC_REGION_DESTROY, id);
}

int dsv4_kdev_close_region(int fd, uint64_t id)
{
	return kdev_id_op(fd, DSV4_IOC_REGION_CLOSE, id);
}

int dsv4_kdev_seal(int fd, uint64_t id)
{
	return kdev_id_op(fd, DSV4_IOC_REGION_SEAL, id);
}

int dsv4_kdev_open_region(int fd, const char *name, uint32_t flags,
			  struct dsv4_region_open *out)
{
	memset(out, 0, sizeof(*out));
	if (strlen(name) >= sizeof(out->name))
		return -ENAMETOOLONG;
	strcpy(out->name, name);
	out->flags = flags;
	return kdev_ioctl(fd, DSV4_IOC_REGION_OPEN, out);
}

int dsv4_kdev_import_memfd(int fd, struct dsv4_region_import *import)
{
	return kdev_ioctl(fd, DSV4_IOC_REGION_IMPORT_MEMFD, import);
}

int dsv4_kdev_export_dmabuf(int fd, uint64_t id, uint64_t offset,
			    uint64_t size, uint32_t flags)
{
	struct dsv4_region_export ex = {
		.id = id, .offset = offset, .size = size, .flags = flags,
	};
	int ret = kdev_ioctl(fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex);

	return ret ? ret : ex.fd;
}

int dsv4_kdev_list(int fd, struct dsv4_region_entry **entries,
		   uint32_t *count)
{
	struct dsv4_region_list list = {
		.entry_size = sizeof(struct dsv4_region_entry),
	};
	struct dsv4_region_entry *buf = NULL;
	int ret;

	*entries = NULL;
	*count = 0;
	/* Regions may appear between the two calls: retry until it fits. */
	for (;;) {
		ret = kdev_ioctl(fd, DSV4_IOC_REGION_LIST, &list);
		if (ret)
			break;
		if (list.count <= list.capacity) {
			*entries = buf;
			*count = list.count;
			return 0;
		}
		free(buf);
		list.capacity = list.count + 8;
		buf = calloc(list.capacity, sizeof(*buf));
		if (!buf)
			return -ENOMEM;
		list.entries_ptr = (uintptr_t)buf;
	}
	free(buf);
	return ret;
}

void *dsv4_kdev_map(int fd, uint64_t mmap_offset, uint64_t size, int prot)
{
	void *p = mmap(NULL, size, prot, MAP_SHARED, fd, (off_t)mmap_offset);

	return p == MAP_FAILED ? NULL : p;
}
