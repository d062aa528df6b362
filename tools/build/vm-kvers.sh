#!/bin/sh
# Prints the kernels of the VM test matrix: the newest installed Debian
# 6.1 and 6.12 generic (amd64) kernels that have both an image and headers.
# Never hard-coded: bookworm-security replaces the ABI numbers.
for series in 6.1 6.12; do
	for v in $(ls /boot 2>/dev/null | sed -n "s/^vmlinuz-\($series[.].*-amd64\)\$/\1/p" |
		grep -v cloud | sort -V); do
		[ -e "/lib/modules/$v/build/Makefile" ] && echo "$v"
	done | tail -1
done
