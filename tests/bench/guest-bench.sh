#!/bin/sh
# Runs inside the VM (see run-bench.sh): enough huge pages for the anchor,
# then the region benchmark.
echo 48 > /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages
echo "bench: huge pages on node 0: $(cat /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages)"
/bench/region_bench 64 9
