#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs the tests named in kselftest-list.txt ("collection:test" lines),
# as the kernel's run_kselftest.sh does, and prints TAP.
#   ./run_kselftest.sh           all tests
#   ./run_kselftest.sh -t dsv4:dsv4_info_test
BASE_DIR=$(cd "$(dirname "$0")" && pwd)
list="$BASE_DIR/kselftest-list.txt"
want=
[ "${1:-}" = "-t" ] && want=$2
tests=$(grep -v '^#' "$list" | { [ -n "$want" ] && grep -x "$want" || cat; })
n=$(echo "$tests" | grep -c .)
echo "TAP version 13"
echo "1..$n"
i=0
rc=0
for t in $tests; do
	i=$((i + 1))
	dir=${t%%:*}
	prog=${t#*:}
	echo "# selftests: $dir: $prog"
	(cd "$BASE_DIR/$dir" && "./$prog" 2>&1 | sed 's/^/# /')
	# POSIX sh has no PIPESTATUS: rerun status via a marker file
	if (cd "$BASE_DIR/$dir" && "./$prog" >/dev/null 2>&1); then
		echo "ok $i selftests: $dir: $prog"
	else
		s=$?
		if [ "$s" = 4 ]; then
			echo "ok $i selftests: $dir: $prog # SKIP"
		else
			echo "not ok $i selftests: $dir: $prog # exit=$s"
			rc=1
		fi
	fi
done
exit $rc
