// SPDX-License-Identifier: GPL-2.0
/*
 * Pinned-memory accounting.
 *
 * Regions that belong to a process are charged to its mm->pinned_vm and
 * checked against RLIMIT_MEMLOCK unless the caller has CAP_IPC_LOCK (the
 * rule amdxdna, iommufd and io_uring follow).  The mm is held with
 * mmgrab() so the charge is undone at release even after the process is
 * gone.  Persistent regions outlive every process, so they are charged to
 * a module-wide cap instead (persistent_limit_mb).
 */
#include <linux/capability.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>

#include "dsv4_core.h"

int dsv4_account_mm(struct dsv4_region *r, unsigned long pages)
{
	struct mm_struct *mm = current->mm;
	unsigned long limit, pinned;

	if (WARN_ON(r->acct_mm) || !mm)
		return -EINVAL;
	limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	pinned = atomic64_add_return(pages, &mm->pinned_vm);
	if (pinned > limit && !capable(CAP_IPC_LOCK)) {
		atomic64_sub(pages, &mm->pinned_vm);
		return -ENOMEM;
	}
	mmgrab(mm);
	r->acct_mm = mm;
	r->acct_pages = pages;
	return 0;
}

void dsv4_unaccount(struct dsv4_region *r)
{
	if (!r->acct_mm)
		return;
	atomic64_sub(r->acct_pages, &r->acct_mm->pinned_vm);
	mmdrop(r->acct_mm);
	r->acct_mm = NULL;
	r->acct_pages = 0;
}

u64 dsv4_persistent_limit_bytes(void)
{
	if (dsv4_persistent_limit_mb)
		return (u64)dsv4_persistent_limit_mb << 20;
	return ((u64)totalram_pages() << PAGE_SHIFT) / 2;	/* default */
}

int dsv4_account_persistent(u64 bytes)
{
	u64 now = atomic64_add_return(bytes, &dsv4_stats.persistent_bytes);

	if (now > dsv4_persistent_limit_bytes()) {
		atomic64_sub(bytes, &dsv4_stats.persistent_bytes);
		return -EDQUOT;
	}
	return 0;
}

void dsv4_unaccount_persistent(u64 bytes)
{
	atomic64_sub(bytes, &dsv4_stats.persistent_bytes);
}
