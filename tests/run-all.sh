#!/usr/bin/env bash
# Runs every test suite, prints their TAP, per-suite totals and, as the very
# last line, "N passed, N failed" summed over all suites (skips are listed
# in the totals above it, and are not failures).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
results=$build/results
rm -rf "$results"
mkdir -p "$results"

vm_kvers=${VM_KVERS:-$("$top/tools/build/vm-kvers.sh")}
sum_pass=0
sum_fail=0
sum_skip=0
summary=()

run_suite() {	# run_suite NAME COMMAND...
	local name=$1 log=$results/$1.tap rc pass fail skip
	shift
	echo "# ==== suite $name ===="
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	skip=$(grep -cE '^ok .*# *(SKIP|skip)' "$log")
	pass=$(( $(grep -c '^ok ' "$log") - skip ))
	fail=$(grep -c '^not ok ' "$log")
	if [ "$rc" != 0 ] && [ "$fail" = 0 ]; then
		echo "not ok - suite $name exited with status $rc"
		fail=1
	fi
	if [ $((pass + fail + skip)) = 0 ]; then
		echo "not ok - suite $name reported no results"
		fail=1
	fi
	sum_pass=$((sum_pass + pass))
	sum_fail=$((sum_fail + fail))
	sum_skip=$((sum_skip + skip))
	summary+=("$(printf '%-28s %4d passed, %3d failed, %3d skipped' "$name" "$pass" "$fail" "$skip")")
}

start=$(date +%s)
run_suite unit "$top/tests/run-unit.sh" "$build"/tests/unit/*
run_suite checkpatch "$top/tests/checkpatch.sh"
run_suite fuzz "$top/tests/fuzz/run-fuzz.sh"
run_suite kselftest-host "$top/tests/kselftest-host.sh"
run_suite cli-host "$top/tests/cli/dsv4ctl-host.sh"
run_suite cli-run "$top/tests/cli/dsv4-run.sh"
run_suite cli-long "$top/tests/cli/long-context.sh"
run_suite server "$top/tests/server/run-server-tests.sh"
run_suite model "$top/tests/cli/fortune-model.sh"
run_suite firmware "$top/tests/cli/firmware.sh"
run_suite packaging "$top/tests/packaging.sh"
for v in $vm_kvers; do
	run_suite "vm-$v" "$top/tests/vm/run-vm.sh" "$v"
done
[ -n "$vm_kvers" ] || {
	echo "not ok - no Debian 6.1/6.12 kernel installed for the VM suites (make deps)"
	sum_fail=$((sum_fail + 1))
}

echo "# ==== totals ($(( $(date +%s) - start )) s) ===="
for line in "${summary[@]}"; do echo "# $line"; done
echo "# skipped: $sum_skip"
echo "$sum_pass passed, $sum_fail failed"
[ "$sum_fail" = 0 ]
