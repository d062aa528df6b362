#!/usr/bin/env bash
# Runs the host unit-test binaries (ASan+UBSan builds); their TAP goes to
# stdout.  Exit status: non-zero if any binary failed.
set -uo pipefail
rc=0
for t in "$@"; do
	echo "# unit: $(basename "$t")"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		"$t" || rc=1
done
exit $rc
