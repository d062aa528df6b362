#!/usr/bin/env bash
# dsv4ctl's argument handling on the host (no module needed): bad input is
# a clear error and a non-zero exit, never a crash.  TAP on stdout.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
ctl=${BUILD:-$top/build}/bin/dsv4ctl
n=0
rc=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; rc=1; fi; }
expect() {	# expect STATUS PATTERN ARGS...
	local want=$1 pat=$2 out s
	shift 2
	out=$("$ctl" "$@" 2>&1); s=$?
	[ "$s" = "$want" ] && grep -qE -- "$pat" <<< "$out"
	t $? "dsv4ctl $* -> exit $want /$pat/ (got $s: $(head -1 <<< "$out"))"
}
expect 2 usage
expect 2 usage --help
expect 2 usage --bogus info
expect 1 "No such file" --dev /nonexistent info
expect 1 "Inappropriate ioctl" --dev /dev/null info
expect 1 "Inappropriate ioctl" --dev /dev/null regions
expect 1 "Invalid argument" --kind nope info
expect 1 "Invalid argument" --node 1x info
expect 1 "Invalid argument" --mode 999 info
expect 1 "Invalid argument" --io mmap info
expect 0 "no DRM|/dev/dri|/dev/accel" devices
expect 0 '^\[' --json devices
expect 2 usage devices extra
if [ ! -e /dev/dsv4 ]; then
	expect 1 "/dev/dsv4: No such file" info
fi
echo "1..$n"
exit $rc
