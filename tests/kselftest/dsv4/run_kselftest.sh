#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs the tests named in kselftest-list.txt ("collection:test" lines), as
# the kernel's run_kselftest.sh does, and prints TAP with each program's
# own output indented as "# " lines.
#   ./run_kselftest.sh                      every test
#   ./run_kselftest.sh -t dsv4:dsv4_info_test
BASE_DIR=$(cd "$(dirname "$0")" && pwd)
list="$BASE_DIR/kselftest-list.txt"
if [ "${1:-}" = "-t" ]; then
	tests=$(grep -x "$2" "$list")
else
	tests=$(grep -v '^#' "$list")
fi
echo "TAP version 13"
echo "1..$(echo "$tests" | grep -c .)"
status=$(mktemp)
i=0
rc=0
for t in $tests; do
	i=$((i + 1))
	dir=${t%%:*}
	prog=${t#*:}
	echo "# selftests: $dir: $prog"
	{ (cd "$BASE_DIR/$dir" && "./$prog" 2>&1); echo $? > "$status"; } | sed 's/^/# /'
	s=$(cat "$status")
	if [ "$s" = 0 ]; then
		echo "ok $i selftests: $dir: $prog"
	elif [ "$s" = 4 ]; then
		echo "ok $i selftests: $dir: $prog # SKIP"
	else
		echo "not ok $i selftests: $dir: $prog # exit=$s"
		rc=1
	fi
done
rm -f "$status"
exit $rc
