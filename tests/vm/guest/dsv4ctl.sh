#!/bin/sh
# dsv4ctl against the real module, inside the test VM (busybox sh).
# TAP on stdout; exit status non-zero if any check failed.
n=0
rc=0
t() {	# t STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n dsv4ctl: $2"; else echo "not ok $n dsv4ctl: $2"; rc=1; fi
}
has() { echo "$1" | grep -q -- "$2"; }

out=$(dsv4ctl info); t $? "info"
has "$out" "online NUMA nodes (3): 0 1 2"; t $? "info lists the VM's 3 nodes"
out=$(dsv4ctl --json info); t $? "info --json"
has "$out" '"abi_version": 1'; t $? "info --json has abi_version"

out=$(dsv4ctl create ctl.a 4M --kind expert_staging --node 1 --huge); t $? "create ctl.a"
has "$out" "created region"; t $? "create prints the id"
dsv4ctl create ctl.a 4M >/dev/null 2>&1; [ $? = 1 ]; t $? "duplicate name refused (exit 1)"
err=$(dsv4ctl create ctl.b 4097 2>&1); [ $? = 1 ] && has "$err" "Invalid argument"; t $? "unaligned size: clear error"
err=$(dsv4ctl create ctl.b 4M --node 7 2>&1); [ $? = 1 ] && has "$err" "Invalid argument"; t $? "node out of range: clear error"
err=$(dsv4ctl create ctl.b 4M --node 2 2>&1); [ $? = 1 ] && has "$err" "No such device"; t $? "memoryless node: ENODEV"
err=$(dsv4ctl create ctl.b 1Z 2>&1); [ $? = 1 ] && has "$err" "SIZE"; t $? "garbage size: clear error"

out=$(dsv4ctl regions); t $? "regions"
has "$out" "ctl.a .*expert_staging .*4194304 .*1 1 .*persistent"; t $? "regions shows ctl.a on node 1"
out=$(dsv4ctl --json regions); t $? "regions --json"
has "$out" '"name": "ctl.a"'; t $? "regions --json names ctl.a"
[ "$(cat /sys/kernel/dsv4/persistent_bytes)" = 4194304 ]; t $? "sysfs persistent_bytes = 4 MiB"

head -c 3000000 /dev/urandom > /tmp/table.bin
out=$(dsv4ctl load /tmp/table.bin ctl.table --kind engram_table); t $? "load (io_uring)"
has "$out" "io_uring"; t $? "load used io_uring"
out=$(dsv4ctl load /tmp/table.bin ctl.table2 --io read); t $? "load --io read"
out=$(dsv4ctl regions)
has "$out" "ctl.table .*engram_table .*3002368 .*sealed,persistent"; t $? "loaded region is sealed, page-rounded"
dsv4ctl open ctl.table >/dev/null; t $? "open sealed region for reading"
dsv4ctl open ctl.table --write >/dev/null 2>&1; [ $? = 1 ]; t $? "open sealed region for writing refused"
err=$(dsv4ctl load /tmp/missing ctl.x 2>&1); [ $? = 1 ] && has "$err" "No such file"; t $? "load of a missing file: clear error"
: > /tmp/empty
dsv4ctl load /tmp/empty ctl.x >/dev/null 2>&1; [ $? = 1 ]; t $? "load of an empty file refused"
out=$(dsv4ctl regions); ! has "$out" "ctl.x"; t $? "a failed load leaves no region behind"

# device discovery (libdrm) and PRIME import of a region into vgem, where loaded
out=$(dsv4ctl devices); t $? "devices"
if [ -d /sys/module/vgem ]; then
	has "$out" "vgem"; t $? "devices lists vgem"
	node=$(echo "$out" | grep vgem | head -1 | cut -d' ' -f1)
	out=$(dsv4ctl prime-import ctl.a "$node" --write); t $? "prime-import ctl.a into $node"
	has "$out" "GEM handle"; t $? "PRIME import gave a GEM handle"
	err=$(dsv4ctl prime-import ctl.a "$node" 2>&1); [ $? = 1 ] && has "$err" "Permission denied"
	t $? "a read-only export refuses vgem's read-write mapping"
	err=$(dsv4ctl prime-import ctl.nope "$node" 2>&1); [ $? = 1 ]; t $? "prime-import of a missing region: exit 1"
fi
out=$(dsv4ctl --json devices); t $? "devices --json"

dsv4ctl seal ctl.a >/dev/null; t $? "seal ctl.a"
for r in ctl.a ctl.table ctl.table2; do dsv4ctl drop $r >/dev/null; t $? "drop $r"; done
dsv4ctl drop ctl.a >/dev/null 2>&1; [ $? = 1 ]; t $? "drop twice refused"
[ "$(cat /sys/kernel/dsv4/nr_regions)" = 0 ]; t $? "no regions left"
echo "1..$n"
exit $rc
