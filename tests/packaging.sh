#!/usr/bin/env bash
# make install / install-dkms into a scratch DESTDIR: every file lands where
# the packaging docs say, and the DKMS tree builds dsv4.ko.  TAP on stdout.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dest=${BUILD:-$top/build}/install-test
rm -rf "$dest"
n=0
rc=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; rc=1; fi; }
make -s -C "$top" install install-dkms DESTDIR="$dest" PREFIX=/usr >/dev/null 2>&1
t $? "make install install-dkms DESTDIR=..."
for f in usr/bin/dsv4ctl usr/bin/dsv4-server etc/systemd/system/dsv4-server.service \
	etc/default/dsv4-server usr/include/dsv4drv.h usr/include/dsv4.h usr/lib/libdsv4drv.a \
	etc/udev/rules.d/60-dsv4.rules etc/modprobe.d/dsv4.conf; do
	[ -e "$dest/$f" ]; t $? "installed /$f"
done
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/kmod/packaging/dkms.conf")
mod=$(sed -n 's/^#define DSV4_MODULE_VERSION[[:space:]]*"\(.*\)"/\1/p' "$top/kmod/dsv4_core.h")
[ -n "$ver" ] && [ "$ver" = "$mod" ]; t $? "dkms.conf version $ver matches the module's ($mod)"
src=$dest/usr/src/dsv4-$ver
[ -f "$src/dkms.conf" ] && [ -f "$src/Kbuild" ] && [ -f "$src/kmod/uapi/dsv4.h" ]
t $? "DKMS source tree /usr/src/dsv4-$ver"
kver=$("$top/tools/build/kvers.sh" | tail -1)
if [ -n "$kver" ]; then
	# What dkms runs: make -C <kernel> M=<tree> modules
	make -s -C "/lib/modules/$kver/build" M="$src" modules >/dev/null 2>&1 &&
		[ -f "$src/kmod/dsv4.ko" ]
	t $? "the DKMS tree builds dsv4.ko for $kver"
fi
grep -q 'GROUP="dsv4", MODE="0660"' "$dest/etc/udev/rules.d/60-dsv4.rules"
t $? "udev rule grants group dsv4 mode 0660"
unit=$dest/etc/systemd/system/dsv4-server.service
grep -q '^ExecStart=/usr/bin/dsv4-server ' "$unit" && grep -q '^User=dsv4' "$unit" &&
	grep -q '^LimitMEMLOCK=infinity' "$unit" && grep -q '^ProtectSystem=strict' "$unit" &&
	grep -q '^DeviceAllow=/dev/dsv4 rw' "$unit"
t $? "systemd unit: dsv4 user, LimitMEMLOCK, ProtectSystem, /dev/dsv4 only"
if command -v systemd-analyze >/dev/null; then
	cp "$dest/usr/bin/dsv4-server" /tmp/dsv4-server-verify.$$ 2>/dev/null
	sed "s|/usr/bin/dsv4-server|/tmp/dsv4-server-verify.$$|" "$unit" >"$dest/verify.service"
	out=$(systemd-analyze verify "$dest/verify.service" 2>&1 | grep -v -E 'Failed to|not found|/dev/dsv4')
	[ -z "$out" ]; t $? "systemd-analyze verify: no complaints${out:+ ($out)}"
	rm -f /tmp/dsv4-server-verify.$$
fi
"$dest/usr/bin/dsv4-server" --help | grep -q -- '--ctx-size'
t $? "dsv4-server --help documents its flags"
[ -f "$dest/usr/share/dsv4/models/fortune-v4/model.safetensors" ] &&
	grep -q '^DSV4_MODEL=/usr/share/dsv4/models/fortune-v4$' "$dest/etc/default/dsv4-server"
t $? "the embedded model installed, and the service's default points at it"
echo "1..$n"
exit $rc
