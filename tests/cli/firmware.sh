#!/usr/bin/env bash
# The firmware build (CI has nvcc, no GPU): dsv4.fatbin exists, is a fatbin
# holding sm_90 machine code and PTX for other GPUs, exports the kernels
# the backend looks up, and the backend without a driver says so.  The
# kernels themselves run in `make check-gpu` on a GPU machine.  TAP.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
fw=$build/firmware/dsv4.fatbin
n=0
rc=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; rc=1; fi; }

if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
	echo "ok 1 firmware # SKIP no nvcc on this machine"
	echo "1..1"
	exit 0
fi
[ -s "$fw" ]; t $? "built: $fw"
entries=$(node -e '
const b = require("fs").readFileSync(process.argv[1]);
if (b.readUInt32LE(0) !== 0xba55ed50) { console.log("not-a-fatbin"); process.exit(); }
let o = b.readUInt16LE(6);
const end = o + Number(b.readBigUInt64LE(8));
const out = [];
while (o < end) {
	const kind = b.readUInt16LE(o), hs = b.readUInt32LE(o + 4), ps = b.readUInt32LE(o + 8);
	out.push((kind === 2 ? "elf" : kind === 1 ? "ptx" : "kind" + kind) + "-sm" + b.readUInt32LE(o + 28));
	o += hs + ps;
}
console.log(out.join(" "));' "$fw" 2>&1)
grep -qw "elf-sm90" <<<"$entries"; t $? "Hopper machine code inside ($entries)"
grep -qw "ptx-sm90" <<<"$entries"; t $? "PTX for other GPUs inside"
grep -q "sm_90a" "$fw"; t $? "the machine code is sm_90a"
# every kernel the backend looks up (gpu.h's GPU_KERNELS list)
names=$(grep -o 'dsv4_[a-z0-9_]*' <<<"$(sed -n '/#define GPU_KERNELS/,/^$/p' "$top/libdsv4drv/src/gpu/gpu.h")" | sort -u)
[ "$(wc -w <<<"$names")" -ge 20 ]; t $? "the kernel list read from gpu.h ($(wc -w <<<"$names") kernels)"
missing=
for k in $names; do grep -q "$k" "$fw" || missing="$missing $k"; done
[ -z "$missing" ]; t $? "exports every kernel the backend looks up${missing:+ (missing:$missing)}"
echo "1..$n"
exit $rc
