#!/usr/bin/env bash
# Installs, idempotently, every Debian package that dsv4's build and tests
# need, then extracts the kselftest headers and checkpatch from the
# linux-source package into build/.  A second run only checks and returns.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${BUILD:-$top/build}

packages=(
	# build
	build-essential pkg-config
	liburing-dev libnuma-dev libdrm-dev libjansson-dev zlib1g-dev libxxhash-dev
	# the server: HTTP, the tokenizer's regexes; curl for the shell tests
	libmicrohttpd-dev libpcre2-dev curl
	# libFuzzer targets
	clang libclang-rt-14-dev
	# kernel module: Debian 6.1 and 6.12 kernels (generic flavour: vgem,
	# udmabuf) with their headers; pahole for 6.12's BTF step
	linux-image-amd64 linux-headers-amd64
	linux-image-6.12-amd64 linux-headers-6.12-amd64
	pahole kmod
	# kselftest headers and checkpatch come from the kernel source
	linux-source-6.12
	# QEMU test harness
	qemu-system-x86 busybox-static cpio xz-utils zstd
	# checkpatch.pl, gzip for the initramfs
	perl gzip
	# benchmarks: the streamer's anchor
	fio
)

# The API client tests use the official npm SDKs; Debian's nodejs and npm
# unless a node is already installed (e.g. from NodeSource).
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
	case $p in \#*) continue ;; esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done 2>/dev/null || true

if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
	echo "deps: not a Debian system; install the equivalents of:" >&2
	printf '  %s\n' "${packages[@]}" >&2
	exit 1
fi

if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	sudo=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || {
			echo "deps: need root to install: ${missing[*]}" >&2
			exit 1
		}
		sudo=sudo
	fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
		>"${TMPDIR:-/tmp}/dsv4-apt.log" 2>&1 || {
		tail -30 "${TMPDIR:-/tmp}/dsv4-apt.log" >&2
		echo "deps: apt-get install failed" >&2
		exit 1
	}
fi

# kselftest headers and checkpatch.pl from the newest linux-source tarball.
ks=$out/kselftest
cp_dir=$out/checkpatch
if [ ! -f "$ks/kselftest_harness.h" ] || [ ! -f "$cp_dir/checkpatch.pl" ]; then
	src=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -1)
	[ -n "$src" ] || { echo "deps: no /usr/src/linux-source-*.tar.xz" >&2; exit 1; }
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	tar -xJf "$src" -C "$tmp" --wildcards \
		'*/tools/testing/selftests/kselftest.h' \
		'*/tools/testing/selftests/kselftest_harness.h' \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
	mkdir -p "$ks" "$cp_dir"
	cp "$tmp"/*/tools/testing/selftests/kselftest.h \
	   "$tmp"/*/tools/testing/selftests/kselftest_harness.h "$ks/"
	cp "$tmp"/*/scripts/checkpatch.pl "$tmp"/*/scripts/spelling.txt \
	   "$tmp"/*/scripts/const_structs.checkpatch "$cp_dir/"
	echo "deps: kselftest headers and checkpatch from $(basename "$src")"
fi
# npm test clients (tests/server/clients), pinned by package-lock.json.
clients=$top/tests/server/clients
if [ -f "$clients/package-lock.json" ] && [ ! -f "$clients/node_modules/.package-lock.json" ]; then
	(cd "$clients" && npm ci --no-audit --no-fund --loglevel=error) >&2 ||
		{ echo "deps: npm ci in tests/server/clients failed" >&2; exit 1; }
	echo "deps: npm test clients installed"
fi
echo "deps: ok"
