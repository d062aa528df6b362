/* SPDX-License-Identifier: MIT */
/*
 * libdsv4drv: the dsv4 userspace accelerator driver.  This is its one
 * public header.
 *
 * Conventions: functions return 0 (or a non-negative count) on success and
 * a negative errno on failure; nothing here prints.  Memory a function
 * allocates for the caller is named in its comment, with the call that
 * frees it.
 */
#ifndef DSV4DRV_H
#define DSV4DRV_H

#include <stddef.h>
#include <stdint.h>

#include "dsv4.h"	/* kmod/uapi/dsv4.h: the kernel uAPI, unchanged */

#ifdef __cplusplus
extern "C" {
#endif

#define DSV4_KDEV_PATH "/dev/" DSV4_DEVICE_NAME

/* ---- /dev/dsv4: thin, errno-returning wrappers over the ioctls ---- */

/* Opens the device (path NULL = DSV4_KDEV_PATH); returns an fd or -errno. */
int dsv4_kdev_open(const char *path);
int dsv4_kdev_info(int fd, struct dsv4_info *info);
int dsv4_kdev_create(int fd, struct dsv4_region_create *create);
int dsv4_kdev_region_info(int fd, struct dsv4_region_info *info);
int dsv4_kdev_destroy(int fd, uint64_t id);
int dsv4_kdev_close_region(int fd, uint64_t id);
int dsv4_kdev_seal(int fd, uint64_t id);
int dsv4_kdev_open_region(int fd, const char *name, uint32_t flags,
			  struct dsv4_region_open *out);
int dsv4_kdev_import_memfd(int fd, struct dsv4_region_import *import);
/* Returns a dma-buf fd or -errno. */
int dsv4_kdev_export_dmabuf(int fd, uint64_t id, uint64_t offset,
			    uint64_t size, uint32_t flags);
/*
 * All regions the caller may see.  On success *entries is a malloc'd array
 * of *count entries (free() it); returns 0 or -errno.
 */
int dsv4_kdev_list(int fd, struct dsv4_region_entry **entries,
		   uint32_t *count);
/* mmap of a region (MAP_SHARED); returns the address or NULL with errno. */
void *dsv4_kdev_map(int fd, uint64_t mmap_offset, uint64_t size, int prot);

/* ---- small parsers shared by the tools ---- */

/* "4096", "64K", "2M", "1G", "1T" (binary units); rejects garbage/overflow. */
int dsv4_parse_size(const char *text, uint64_t *bytes);
/* Region kind names as the module spells them ("engram_table", ...). */
const char *dsv4_kind_to_name(uint32_t kind);
int dsv4_kind_from_name(const char *name, uint32_t *kind);
/* Human-readable state flags, e.g. "sealed,persistent"; buf >= 64 bytes. */
const char *dsv4_state_to_string(uint32_t state, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* DSV4DRV_H */
