// SPDX-License-Identifier: MIT
/*
 * Device discovery: DRM render/primary nodes through libdrm
 * (drmGetDevices2, driver name from drmGetVersion), accel nodes from
 * /dev/accel and sysfs (libdrm 2.4.114 does not list them), and compute
 * backends that register themselves (the CUDA backend, issue 9).  Plus
 * PRIME import of a dma-buf (a region's export) into a DRM device.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xf86drm.h>

#include "internal.h"
#include "dsv4drv.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dsv4_device registered[16];
static size_t n_registered;

int dsv4_device_register(const struct dsv4_device *d)
{
	int ret = -ENOSPC;

	if (!d || !d->node[0])
		return -EINVAL;
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < n_registered; i++)
		if (!strcmp(registered[i].node, d->node)) {
			registered[i] = *d;	/* re-registration updates */
			ret = 0;
			goto out;
		}
	if (n_registered < sizeof(registered) / sizeof(registered[0])) {
		registered[n_registered++] = *d;
		ret = 0;
	}
out:
	pthread_mutex_unlock(&reg_lock);
	return ret;
}

static int push(struct dsv4_device **v, size_t *n, size_t *cap, const struct dsv4_device *d)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		struct dsv4_device *nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = *d;
	return 0;
}

static void bus_name(const drmDevicePtr dev, char *out, size_t len)
{
	switch (dev->bustype) {
	case DRM_BUS_PCI:
		snprintf(out, len, "pci:%04x:%02x:%02x.%u", dev->businfo.pci->domain,
			 dev->businfo.pci->bus, dev->businfo.pci->dev, dev->businfo.pci->func);
		break;
	case DRM_BUS_USB:
		snprintf(out, len, "usb:%u:%u", dev->businfo.usb->bus, dev->businfo.usb->dev);
		break;
	case DRM_BUS_PLATFORM:
		snprintf(out, len, "platform:%.54s", dev->businfo.platform->fullname);
		break;
	case DRM_BUS_HOST1X:
		snprintf(out, len, "host1x:%.56s", dev->businfo.host1x->fullname);
		break;
	default:
		snprintf(out, len, "virtual");
	}
}

static void driver_of_node(const char *node, char *out, size_t len)
{
	int fd = open(node, O_RDWR | O_CLOEXEC);
	drmVersionPtr v;

	snprintf(out, len, "?");
	if (fd < 0)
		return;
	v = drmGetVersion(fd);
	if (v) {
		snprintf(out, len, "%s", v->name);
		drmFreeVersion(v);
	}
	close(fd);
}

static int list_drm(struct dsv4_device **v, size_t *n, size_t *cap)
{
	drmDevicePtr devs[64];
	int cnt = drmGetDevices2(0, devs, 64), ret = 0;

	if (cnt < 0)
		return cnt == -ENOENT ? 0 : cnt;	/* no /dev/dri: none */
	for (int i = 0; i < cnt && !ret; i++) {
		static const int kinds[] = { DRM_NODE_RENDER, DRM_NODE_PRIMARY };

		for (int k = 0; k < 2 && !ret; k++) {
			struct dsv4_device d = { 0 };

			if (!(devs[i]->available_nodes & (1 << kinds[k])))
				continue;
			snprintf(d.node, sizeof(d.node), "%s", devs[i]->nodes[kinds[k]]);
			snprintf(d.kind, sizeof(d.kind), "%s", kinds[k] == DRM_NODE_RENDER ? "render" : "primary");
			snprintf(d.backend, sizeof(d.backend), "drm");
			bus_name(devs[i], d.bus, sizeof(d.bus));
			driver_of_node(d.node, d.driver, sizeof(d.driver));
			ret = push(v, n, cap, &d);
		}
	}
	drmFreeDevices(devs, cnt);
	return ret;
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* The last component of a symlink's target ("?" if unreadable). */
static const char *link_name(const char *link, char *buf, size_t len)
{
	ssize_t l = readlink(link, buf, len - 1);

	if (l <= 0)
		return "?";
	buf[l] = 0;
	return basename_of(buf);
}

static int list_accel(struct dsv4_device **v, size_t *n, size_t *cap)
{
	DIR *dir = opendir("/dev/accel");
	struct dirent *de;
	int ret = 0;

	if (!dir)
		return 0;
	while (!ret && (de = readdir(dir))) {
		struct dsv4_device d = { 0 };
		char link[PATH_MAX], target[PATH_MAX];

		if (strncmp(de->d_name, "accel", 5))
			continue;
		snprintf(d.node, sizeof(d.node), "/dev/accel/%.40s", de->d_name);
		snprintf(d.kind, sizeof(d.kind), "accel");
		snprintf(d.backend, sizeof(d.backend), "accel");
		snprintf(link, sizeof(link), "/sys/class/accel/%s/device/driver", de->d_name);
		snprintf(d.driver, sizeof(d.driver), "%.31s", link_name(link, target, sizeof(target)));
		snprintf(link, sizeof(link), "/sys/class/accel/%s/device", de->d_name);
		snprintf(d.bus, sizeof(d.bus), "%.63s", link_name(link, target, sizeof(target)));
		ret = push(v, n, cap, &d);
	}
	closedir(dir);
	return ret;
}

int dsv4_devices_list(struct dsv4_device **out, size_t *count)
{
	struct dsv4_device *v = NULL;
	size_t n = 0, cap = 0;
	int ret = list_drm(&v, &n, &cap);

	if (!ret)
		ret = list_accel(&v, &n, &cap);
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; !ret && i < n_registered; i++)
		ret = push(&v, &n, &cap, &registered[i]);
	pthread_mutex_unlock(&reg_lock);
	if (ret) {
		free(v);
		return ret;
	}
	*out = v;
	*count = n;
	return 0;
}

int dsv4_device_prime_import(const char *node, int dmabuf_fd, int *drm_fd, uint32_t *handle,
			     char *err, size_t errlen)
{
	int fd = open(node, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return dsv4_errf(err, errlen, -errno, "%s: %s", node, strerror(errno));
	if (drmPrimeFDToHandle(fd, dmabuf_fd, handle)) {
		int e = errno;

		close(fd);
		return dsv4_errf(err, errlen, -e, "%s: PRIME import: %s", node, strerror(e));
	}
	*drm_fd = fd;
	return 0;
}
