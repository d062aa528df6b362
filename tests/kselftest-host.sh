#!/usr/bin/env bash
# The kselftest suites as users run them on a host: `make install` lays out
# run_kselftest.sh + kselftest-list.txt; without /dev/dsv4 every program
# must exit 4 (KSFT_SKIP); with it, they run for real.  TAP on stdout.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
inst=$build/kselftest/install-test
rm -rf "$inst"
n=0
rc=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; rc=1; fi; }

make -s -C "$top/tests/kselftest/dsv4" OUTPUT="$build/kselftest/dsv4" \
	KSFT_INC="$build/kselftest" install INSTALL_PATH="$inst" >/dev/null
t $? "make install INSTALL_PATH=..."
[ -x "$inst/run_kselftest.sh" ]; t $? "run_kselftest.sh installed"
grep -qx 'dsv4:dsv4_info_test' "$inst/kselftest-list.txt"; t $? "kselftest-list.txt names dsv4:dsv4_info_test"
bad=$(grep -cvE '^dsv4:[a-z0-9_]+$' "$inst/kselftest-list.txt")
[ "$bad" = 0 ]; t $? "kselftest-list.txt has only collection:test lines"

for prog in $(sed 's/^dsv4://' "$inst/kselftest-list.txt"); do
	out=$("$inst/dsv4/$prog" 2>&1)
	s=$?
	if [ -e /dev/dsv4 ]; then
		[ $s = 0 ]; t $? "$prog on this host's /dev/dsv4 (exit $s)"
	else
		[ $s = 4 ] && grep -q '# SKIP' <<< "$out"
		t $? "$prog without /dev/dsv4 exits 4 with a SKIP line (exit $s)"
	fi
done
out=$("$inst/run_kselftest.sh" 2>&1)
s=$?
[ $s = 0 ] && grep -q '^ok 1 selftests: dsv4: dsv4_info_test' <<< "$out"
t $? "run_kselftest.sh runs the list and reports TAP"
echo "1..$n"
exit $rc
