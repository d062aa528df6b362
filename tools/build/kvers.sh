#!/bin/sh
# Prints the kernel versions to build dsv4.ko for: every /lib/modules/<ver>
# with a build/ (headers) directory.
for d in /lib/modules/*/build; do
	[ -e "$d/Makefile" ] || continue
	v=${d#/lib/modules/}
	echo "${v%/build}"
done | sort -V
