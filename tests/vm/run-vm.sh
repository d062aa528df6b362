#!/usr/bin/env bash
# Boots one Debian kernel under QEMU/TCG with dsv4.ko and the kselftest
# suites in an initramfs, and turns the serial log into TAP on stdout.
#   tests/vm/run-vm.sh KVER            (KVER as in /lib/modules/KVER)
# Environment: BUILD (default build/), VM_TIMEOUT (s, default 300),
# VM_BENCH=1 also runs the in-guest benchmark, VM_GUEST_DIR=dir of guest
# *.sh scripts (default tests/vm/guest), VM_NO_KSFT=1 leaves the kselftest
# programs out, VM_SHOW=1 prints the guest's console output first.
set -euo pipefail

kver=${1:?usage: run-vm.sh KVER}
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$top/build}
work=$build/vm/$kver
timeout_s=${VM_TIMEOUT:-300}
vmlinuz=/boot/vmlinuz-$kver
ko=$build/kmod/$kver/kmod/dsv4.ko

[ -r "$vmlinuz" ] || { echo "not ok 1 vm $kver: no $vmlinuz"; exit 1; }
[ -r "$ko" ] || { echo "not ok 1 vm $kver: module not built ($ko)"; exit 1; }

rm -rf "$work"
mkdir -p "$work/root"/{bin,sbin,dev,proc,sys,tmp,modules,tests,bench}
root=$work/root
cp /bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do
	[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
done
install -m 0755 "$top/tests/vm/guest-init.sh" "$root/init"
cp "$ko" "$root/modules/dsv4.ko"

# vgem and its dependencies, deepest first, as busybox insmod needs them.
moddir=/lib/modules/$kver
vgem=$(awk -F: '$1 ~ /\/vgem\.ko/ {print $1}' "$moddir/modules.dep" | head -1)
if [ -n "$vgem" ]; then
	declare -A seen=()
	order=()
	add_mod() {
		local m=$1 deps d
		[ -n "${seen[$m]:-}" ] && return
		seen[$m]=1
		deps=$(awk -F: -v m="$m" '$1 == m {print $2}' "$moddir/modules.dep")
		for d in $deps; do add_mod "$d"; done
		order+=("$m")
	}
	add_mod "$vgem"
	: > "$root/modules/vgem.list"
	for m in "${order[@]}"; do
		base=$(basename "$m")
		case $base in
		*.xz) xz -dc "$moddir/$m" > "$root/modules/${base%.xz}"; base=${base%.xz} ;;
		*.zst) zstd -qdc "$moddir/$m" > "$root/modules/${base%.zst}"; base=${base%.zst} ;;
		*) cp "$moddir/$m" "$root/modules/$base" ;;
		esac
		echo "$base" >> "$root/modules/vgem.list"
	done
fi

if [ "${VM_NO_KSFT:-0}" != 1 ]; then
	for t in "$build"/kselftest/dsv4/*_test; do
		[ -x "$t" ] && cp "$t" "$root/tests/"
	done
fi
for s in "${VM_GUEST_DIR:-$top/tests/vm/guest}"/*.sh; do
	[ -f "$s" ] && cp "$s" "$root/tests/"
done
for b in "$build"/bin/static/*; do
	[ -x "$b" ] && cp "$b" "$root/bin/"
done
if [ "${VM_BENCH:-0}" = 1 ]; then
	cp "$top/tests/bench/guest-bench.sh" "$root/bench/run.sh"
	cp "$build"/bench/static/* "$root/bench/" 2>/dev/null || true
fi

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.cpio.gz"

log=$work/serial.log
set +e
# one TCG thread for the three vCPUs: with a thread each (MTTCG) a guest
# once died of "Oops: int3" in urandom_read_iter during make demo, the
# int3 of a kernel text patch (likely the crng-ready static key) seen by
# another vCPU after the patcher was done; on this 2-core host one thread
# is as fast (44 s vs 46 s for make check-vm)
timeout "$timeout_s" qemu-system-x86_64 -accel tcg,thread=single -m 1024M \
	-smp 3,sockets=3,cores=1,threads=1 \
	-object memory-backend-ram,id=m0,size=512M \
	-object memory-backend-ram,id=m1,size=512M \
	-numa node,nodeid=0,cpus=0,memdev=m0 \
	-numa node,nodeid=1,cpus=1,memdev=m1 \
	-numa node,nodeid=2,cpus=2 \
	-kernel "$vmlinuz" -initrd "$work/initramfs.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1 oops=panic" \
	-nographic -no-reboot -nic none \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null >"$log" 2>&1
qrc=$?
set -e

if [ "${VM_SHOW:-0}" = 1 ]; then
	sed -n '/DSV4-VM-START/,/DSV4-DMESG-BEGIN/p' "$log" | tr -d '\r' |
		grep -vE '^(ok|not ok) |^DSV4-|^# running'
fi

# The guest's own TAP, renumbered into one stream.
n=0
fails=0
emit() {	# emit ok|notok text
	n=$((n + 1))
	if [ "$1" = ok ]; then echo "ok $n $kver: $2"
	else echo "not ok $n $kver: $2"; fails=$((fails + 1)); fi
}
body=$(sed -n '/DSV4-VM-START/,/DSV4-DMESG-BEGIN/p' "$log" | tr -d '\r')
while IFS= read -r line; do
	text=$(sed -E 's/^(not )?ok [0-9]+ //' <<< "$line")
	case $line in
	"ok "*"# SKIP"*|"ok "*"# skip"*)
		n=$((n + 1)); echo "ok $n $kver: $text" ;;
	"ok "*) emit ok "$text" ;;
	"not ok "*) emit notok "$text" ;;
	"#"*) echo "$line" ;;
	esac
done <<< "$body"

grep -q 'DSV4-VM-START' "$log" && emit ok "guest init started" ||
	emit notok "guest init started"
grep -q 'DSV4-VM-DONE' "$log" && emit ok "guest reached the end (sentinel)" ||
	emit notok "guest reached the end (sentinel)"
bad=$(sed -n '/DSV4-DMESG-BEGIN/,/DSV4-DMESG-END/p' "$log" |
	grep -E 'BUG:|WARNING:|Oops|general protection|UBSAN|Call Trace|kernel BUG' || true)
[ -z "$bad" ] && emit ok "dmesg free of BUG/WARNING/Oops/UBSAN" || {
	emit notok "dmesg free of BUG/WARNING/Oops/UBSAN"
	echo "$bad" | head -20 | sed 's/^/# /'
}
taint=$(sed -n 's/.*DSV4-TAINT \([0-9]*\).*/\1/p' "$log" | tr -d '\r')
if [ -n "$taint" ] && [ $((taint & ~12288)) = 0 ]; then
	emit ok "kernel taint $taint (only out-of-tree/unsigned)"
else
	emit notok "kernel taint '${taint}' has bits beyond 12288"
fi
[ "$qrc" = 1 ] && emit ok "qemu exit code 1 (guest reported pass)" ||
	emit notok "qemu exit code $qrc (1 = pass, 3 = fail, 124 = timeout)"

if [ "$fails" != 0 ]; then
	echo "# serial log: $log (last lines below)"
	tail -40 "$log" | sed 's/^/# /'
fi
echo "1..$n"
exit $((fails != 0))
