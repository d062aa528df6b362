/* SPDX-License-Identifier: MIT */
/* libdsv4drv internals shared between its source files (not installed). */
#ifndef DSV4DRV_INTERNAL_H
#define DSV4DRV_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

/* Formats an error message into @err (may be NULL); returns @ret. */
int dsv4_errf(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
