#!/usr/bin/env bash
# make bench: the region benchmark inside a QEMU-booted Debian kernel (the
# only place dsv4.ko loads here).  Under TCG absolute times are emulated;
# the ratio against the anchor measured in the same run is the figure.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
kver=${1:-$("$top/tools/build/vm-kvers.sh" | tail -1)}
mkdir -p "$build/bench/static" "$build/bench/empty"
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -static -I"$top/kmod/uapi" \
	-o "$build/bench/static/region_bench" "$top/tests/bench/region_bench.c"
VM_BENCH=1 VM_NO_KSFT=1 VM_GUEST_DIR=$build/bench/empty \
	"$top/tests/vm/run-vm.sh" "$kver" >/dev/null || true
grep -a '^bench:' "$build/vm/$kver/serial.log" | tr -d '\r' | sed "s/^/[$kver] /"
grep -aq 'bench:   2 MiB' "$build/vm/$kver/serial.log" || {
	echo "bench: failed; see $build/vm/$kver/serial.log" >&2
	exit 1
}
