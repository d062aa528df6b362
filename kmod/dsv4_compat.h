/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Version shims: the only place where dsv4 looks at LINUX_VERSION_CODE.
 * Supported: Debian 12's 6.1 and 6.12 kernels (and mainline in between).
 */
#ifndef _DSV4_COMPAT_H
#define _DSV4_COMPAT_H

#include <linux/version.h>
#include <linux/mm.h>
#include <linux/module.h>

/* 6.3 made vma->vm_flags read-only behind vm_flags_set()/vm_flags_clear(). */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags |= flags;
}

static inline void vm_flags_clear(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags &= ~flags;
}
#endif

/* 6.13 turned MODULE_IMPORT_NS() into a string argument. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 13, 0)
#define DSV4_IMPORT_NS_DMA_BUF() MODULE_IMPORT_NS(DMA_BUF)
#else
#define DSV4_IMPORT_NS_DMA_BUF() MODULE_IMPORT_NS("DMA_BUF")
#endif

#endif /* _DSV4_COMPAT_H */
