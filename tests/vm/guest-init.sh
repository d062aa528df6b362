#!/bin/sh
# /init of the dsv4 test initramfs (busybox).  Loads the module, runs the
# kselftest suites and the guest scripts, unloads the module, dumps dmesg
# and reports pass/fail through isa-debug-exit (port 0xf4).
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /tmp && mount -t tmpfs tmp /tmp
mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages
echo 1 > /proc/sys/kernel/printk_ratelimit_burst 2>/dev/null
for n in /sys/devices/system/node/node*; do
	echo 24 > "$n/hugepages/hugepages-2048kB/nr_hugepages"
done

fails=0
n=0
tap() {	# tap ok|notok description
	n=$((n + 1))
	if [ "$1" = ok ]; then echo "ok $n guest: $2"
	else echo "not ok $n guest: $2"; fails=$((fails + 1)); fi
}

echo "DSV4-VM-START kernel=$(uname -r) nodes=$(ls -d /sys/devices/system/node/node* | wc -l) cpus=$(nproc)"

# vgem (and its DRM deps) for the dma-buf import tests, where the kernel has it
if [ -s /modules/vgem.list ]; then
	ok=ok
	while read -r m; do insmod "/modules/$m" || ok=notok; done < /modules/vgem.list
	tap $ok "insmod vgem and deps"
fi

if insmod /modules/dsv4.ko; then tap ok "insmod dsv4.ko"; else tap notok "insmod dsv4.ko"; fi
[ -c /dev/dsv4 ] && tap ok "/dev/dsv4 exists" || tap notok "/dev/dsv4 exists"

for t in /tests/*_test; do
	[ -x "$t" ] || continue
	echo "# running $t"
	"$t"
	rc=$?
	case $rc in
	0) tap ok "$(basename "$t") exit 0" ;;
	4) n=$((n + 1)); echo "ok $n guest: $(basename "$t") # SKIP exit 4" ;;
	*) tap notok "$(basename "$t") exit $rc" ;;
	esac
done

for s in /tests/*.sh; do
	[ -f "$s" ] || continue
	echo "# running $s"
	sh "$s"
	rc=$?
	[ $rc = 0 ] && tap ok "$(basename "$s") exit 0" || tap notok "$(basename "$s") exit $rc"
done

if [ -f /bench/run.sh ]; then
	sh /bench/run.sh
fi

sleep 0.2
regions=$(cat /sys/kernel/dsv4/nr_regions 2>/dev/null)
[ "$regions" = 0 ] && tap ok "no regions left ($regions)" || tap notok "no regions left ($regions)"
if rmmod dsv4; then tap ok "rmmod dsv4"; else tap notok "rmmod dsv4"; fi
[ ! -e /dev/dsv4 ] && tap ok "/dev/dsv4 gone after rmmod" || tap notok "/dev/dsv4 gone after rmmod"

echo "DSV4-TAINT $(cat /proc/sys/kernel/tainted)"
echo "DSV4-DMESG-BEGIN"
dmesg
echo "DSV4-DMESG-END"
echo "DSV4-VM-DONE fails=$fails"
sync
# isa-debug-exit: qemu exits with (value << 1) | 1
if [ $fails = 0 ]; then printf '\000' > /tmp/x; else printf '\001' > /tmp/x; fi
dd if=/tmp/x of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
