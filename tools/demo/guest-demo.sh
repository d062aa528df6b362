#!/bin/sh
# Runs inside the demo VM (busybox): dsv4.ko is loaded; show it working.
set -e
step() { echo; echo "== $*"; }
step "dsv4ctl info"
dsv4ctl info
step "create a persistent Engram-table region: 64 MiB on NUMA node 1, 2 MiB folios"
dsv4ctl create engram.layer1 64M --kind engram_table --node 1 --huge
step "load a file into a sealed, persistent region with io_uring"
head -c 16777216 /dev/urandom > /tmp/table.bin
dsv4ctl load /tmp/table.bin engram.layer14 --kind engram_table --node 0
step "dsv4ctl regions"
dsv4ctl regions
step "per-node and per-kind totals (sysfs)"
for f in /sys/kernel/dsv4/nodes/node* /sys/kernel/dsv4/kinds/*; do
	echo "$f: $(cat "$f")"
done
step "a sealed region refuses writers"
dsv4ctl open engram.layer14 --write || echo "(refused, as it should be)"
step "drop both regions"
dsv4ctl drop engram.layer1
dsv4ctl drop engram.layer14
dsv4ctl regions
