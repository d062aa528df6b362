#!/usr/bin/env bash
# Kernel style: checkpatch.pl (from linux-source, see make deps) on every
# module source.  The compat header is the one place allowed to test
# LINUX_VERSION_CODE.  TAP on stdout.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cp=${BUILD:-$top/build}/checkpatch/checkpatch.pl
n=0
rc=0
cd "$top"
for f in kmod/*.c kmod/*.h kmod/uapi/*.h; do
	case $f in *.mod.c) continue ;; esac
	n=$((n + 1))
	ignore=
	[ "$f" = kmod/dsv4_compat.h ] && ignore=--ignore=LINUX_VERSION_CODE,CONSTANT_COMPARISON
	if out=$(perl "$cp" --no-tree --quiet --show-types $ignore -f "$f" 2>&1) && [ -z "$out" ]; then
		echo "ok $n checkpatch $f"
	else
		echo "not ok $n checkpatch $f"
		echo "$out" | sed 's/^/# /'
		rc=1
	fi
done
echo "1..$n"
exit $rc
