# dsv4 top-level Makefile.  `make help` lists the targets.
#
# On a fresh Debian 12 machine, as root:
#   make demo     build, load the module (or boot it in a VM), show it working
#   make check    install what is needed, build, run every test suite
#
# Kernel module builds go to build/kmod/<kver>/ (one per kernel whose headers
# are installed, or KVER=<ver> for one); `make -C /lib/modules/<ver>/build
# M=$PWD` from the repository root also works (in-tree objects).

SHELL := /bin/bash
TOP := $(CURDIR)
BUILD := $(TOP)/build
KVERS := $(if $(KVER),$(KVER),$(shell $(TOP)/tools/build/kvers.sh))
VM_KVERS := $(if $(KVER),$(KVER),$(shell $(TOP)/tools/build/vm-kvers.sh))
PREFIX ?= /usr/local
DESTDIR ?=

CC ?= gcc
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) \
	-I$(TOP)/kmod/uapi -I$(TOP)/libdsv4drv/include -I/usr/include/libdrm \
	-DDSV4_TREE_FIRMWARE='"$(BUILD)/firmware/dsv4.fatbin"'
SAN_CFLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
KSFT_INC := $(BUILD)/kselftest

LIB_SRCS := $(wildcard libdsv4drv/src/*.c libdsv4drv/src/engine/*.c libdsv4drv/src/mem/*.c \
	libdsv4drv/src/text/*.c libdsv4drv/src/gpu/*.c)
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
LIB_SAN_OBJS := $(patsubst %.c,$(BUILD)/obj-san/%.o,$(LIB_SRCS))
LIB := $(BUILD)/lib/libdsv4drv.a
LIB_SAN := $(BUILD)/lib/libdsv4drv-san.a
TOOL_LIBS := -luring -ljansson -lnuma -ldrm -lxxhash -lpcre2-8 -lpthread -lm
STATIC_LIBS := -luring -ljansson -lnuma -ldrm -lxxhash -lpcre2-8 -lpthread -lm

# dsv4-server: everything but main.c also goes into an internal archive the
# unit tests and the fuzz target link.
SRV_SRCS := $(filter-out userspace/dsv4-server/main.c,$(wildcard userspace/dsv4-server/*.c))
SRV_HDRS := $(wildcard userspace/dsv4-server/*.h)
SRV_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(SRV_SRCS))
SRV_SAN_OBJS := $(patsubst %.c,$(BUILD)/obj-san/%.o,$(SRV_SRCS))
SRV_LIB := $(BUILD)/lib/libdsv4srv.a
SRV_LIB_SAN := $(BUILD)/lib/libdsv4srv-san.a
SRV_LIBS := -lmicrohttpd

UNIT_SRCS := $(wildcard tests/unit/*_test.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))

KMOD_SRCS := $(wildcard kmod/*.c kmod/*.h kmod/uapi/*.h) kmod/Kbuild Kbuild

.PHONY: all help deps userspace modules kselftests unit check check-vm firmware check-gpu bench-gpu gpu-kit \
	check-unit demo bench bench-engine bench-stream bench-long fuzz install install-dkms uninstall clean
.DEFAULT_GOAL := all

all: userspace modules kselftests firmware

# ---- firmware: CUDA kernels into one fatbin (sm_90a code + compute_90 PTX) ----
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
FW := $(BUILD)/firmware/dsv4.fatbin
FW_SRCS := firmware/dsv4.cu $(wildcard firmware/kernels/*.cu firmware/kernels/*.cuh firmware/kernels/*.h)

# (and tests/bench/gemv_chain, experts_bench and experts_tma, CUDA runtime benchmarks: built
# wherever nvcc is, so that CI catches their build breaks; they run on the GPU
# machine from the gpu-kit)
GEMV_CHAIN := $(BUILD)/bin/gemv_chain
EXPERTS_BENCH := $(BUILD)/bin/experts_bench
EXPERTS_TMA := $(BUILD)/bin/experts_tma

firmware:
	@if [ -n "$(NVCC)" ]; then $(MAKE) --no-print-directory $(FW) $(GEMV_CHAIN) $(EXPERTS_BENCH) \
		$(EXPERTS_TMA); \
	else echo "firmware: no nvcc here, the CUDA kernels are not built (CPU backend only)"; fi

$(FW): $(FW_SRCS)
	@mkdir -p $(dir $@)
	$(NVCC) -fatbin -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a \
		-gencode=arch=compute_90,code=compute_90 -o $@ firmware/dsv4.cu

$(GEMV_CHAIN): tests/bench/gemv_chain.cu
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 -arch=sm_90a -o $@ $<

# (the firmware's kernel sources compiled in; for compute_90a, so that sm_90a-only code
# such as wgmma assembles and is what they measure)
$(EXPERTS_BENCH) $(EXPERTS_TMA): $(BUILD)/bin/%: tests/bench/%.cu $(FW_SRCS)
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o $@ $<

# The GPU suite, on a machine with an NVIDIA GPU and driver (not in make check)
# The GPU machine's kit: the tools and the GPU-capable tests linked
# dynamically without sanitizers (a static binary cannot dlopen libcuda),
# with the Debian shared libraries they need beside them.
KIT := $(BUILD)/gpu-kit
# CUDA's CUPTI, for tests/bench/gpu_timeline.c (built where nvcc is)
CUDA_DIR = $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
KIT_CFLAGS := $(BASE_CFLAGS) -Wno-missing-prototypes -Wno-unused-parameter -Wno-sign-compare \
	-Wno-clobbered -DDSV4_FIXTURES='"tests/fixtures"' -DDSV4_BIN='"build/gpu-kit"' -I$(KSFT_INC) \
	-Iuserspace/dsv4-server
gpu-kit: firmware $(LIB) $(SRV_LIB) $(KSFT_INC)/kselftest_harness.h $(BUILD)/bin/static/dsv4-mkmodel
	@mkdir -p $(KIT)/lib
	$(CC) $(KIT_CFLAGS) -o $(KIT)/engine_test tests/unit/engine_test.c $(SRV_LIB) $(LIB) $(SRV_LIBS) $(TOOL_LIBS)
	$(CC) $(KIT_CFLAGS) -o $(KIT)/gpu_test tests/unit/gpu_test.c $(LIB) $(TOOL_LIBS)
	$(CC) $(KIT_CFLAGS) -o $(KIT)/prefix_test tests/unit/prefix_test.c $(LIB) $(TOOL_LIBS)
	$(CC) $(KIT_CFLAGS) -o $(KIT)/dsv4-run userspace/dsv4-run/dsv4-run.c $(LIB) $(TOOL_LIBS)
	$(CC) $(KIT_CFLAGS) -o $(KIT)/gpu_bench tests/bench/gpu_bench.c $(LIB) $(TOOL_LIBS)
	$(CC) $(KIT_CFLAGS) $(MODEL_DIRS) -o $(KIT)/dsv4-server userspace/dsv4-server/main.c \
		$(SRV_LIB) $(LIB) $(SRV_LIBS) $(TOOL_LIBS)
	cp $(BUILD)/bin/static/dsv4-mkmodel $(KIT)/
	@if [ -n "$(NVCC)" ] && [ -f $(CUDA_DIR)/include/cupti.h ]; then \
		$(CC) $(KIT_CFLAGS) -shared -fPIC -I$(CUDA_DIR)/include -o $(KIT)/libgpu_timeline.so \
			tests/bench/gpu_timeline.c -L$(CUDA_DIR)/lib -L$(CUDA_DIR)/lib64 -lcupti && \
		cp -L $$(ls $(CUDA_DIR)/lib/libcupti.so.* $(CUDA_DIR)/lib64/libcupti.so.* 2>/dev/null | head -1) \
			$(KIT)/lib/; fi
	@for b in $(GEMV_CHAIN) $(EXPERTS_BENCH) $(EXPERTS_TMA); do \
		if [ -f $$b ]; then cp $$b $(KIT)/; fi; done
	@for b in $(KIT)/engine_test $(KIT)/gpu_test $(KIT)/dsv4-run $(KIT)/dsv4-server; do \
		ldd $$b | awk '/=> \// { print $$3 }'; done | sort -u | \
		grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' | xargs -r cp -L -t $(KIT)/lib

# the CUDA backend's suite and benchmark (GPU machine; see firmware/README.md)
check-gpu: gpu-kit
	tests/gpu/run-gpu-tests.sh

bench-gpu: gpu-kit
	tests/bench/run-gpu-bench.sh

help:
	@echo "make            userspace, dsv4.ko for: $(KVERS), kselftests"
	@echo "make deps       install Debian packages and kselftest headers (idempotent)"
	@echo "make check      deps + build + every suite; ends with 'N passed, N failed'"
	@echo "make check-vm KVER=<ver>   the module suites in one QEMU-booted kernel"
	@echo "make check-gpu  the CUDA backend's suite, on a machine with an NVIDIA GPU"
	@echo "make bench-gpu  the CUDA backend's benchmark (ratios vs HBM, PCIe, HF eager)"
	@echo "make demo       the main job, end to end"
	@echo "make fuzz       libFuzzer targets, 10 minutes each (FUZZ_SECONDS=...)"
	@echo "make bench      region benchmark inside the VM (ratio vs hugetlb+mlock), then bench-engine"
	@echo "make bench-engine   CPU engine on a 2-layer Flash-shaped checkpoint (ratio vs copy bandwidth)"
	@echo "make bench-stream   expert streamer vs fio, decode with 100/30/10 % expert caches"
	@echo "make bench-long     4K / 64K / 1M-token contexts on a small model; prefix-cache TTFT"
	@echo "make install    dsv4.ko (running kernel), dsv4ctl, dsv4-server + systemd unit,"
	@echo "                headers, udev rule, modprobe.d"
	@echo "make install-dkms   module sources + dkms.conf under /usr/src/dsv4-<version>"

deps:
	@$(TOP)/tools/build/deps.sh

# ---- userspace ----
userspace: $(LIB) $(BUILD)/bin/dsv4ctl $(BUILD)/bin/static/dsv4ctl \
	$(BUILD)/bin/dsv4-mkmodel $(BUILD)/bin/static/dsv4-mkmodel $(BUILD)/bin/dsv4-ckpt \
	$(BUILD)/bin/dsv4-run $(BUILD)/bin/dsv4-engine-bench $(BUILD)/bin/dsv4-stream-bench \
	$(BUILD)/bin/dsv4-server

# every header the library's objects may include (no generated deps: a
# changed struct must rebuild all of its users)
LIB_HDRS := $(wildcard libdsv4drv/include/*.h libdsv4drv/src/*.h libdsv4drv/src/*/*.h) \
	kmod/uapi/dsv4.h firmware/kernels/abi.h

$(BUILD)/obj/%.o: %.c $(LIB_HDRS) $(SRV_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -fPIC -c -o $@ $<

$(BUILD)/obj-san/%.o: %.c $(LIB_HDRS) $(SRV_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(LIB_SAN): $(LIB_SAN_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(SRV_LIB): $(SRV_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(SRV_LIB_SAN): $(SRV_SAN_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

MODEL_DIRS := -DDSV4_INSTALLED_MODEL='"$(PREFIX)/share/dsv4/models/fortune-v4"' \
	-DDSV4_TREE_MODEL='"$(TOP)/userspace/models/fortune-v4"'

$(BUILD)/bin/dsv4-server: userspace/dsv4-server/main.c $(SRV_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(MODEL_DIRS) -Iuserspace/dsv4-server -o $@ $< $(SRV_LIB) $(LIB) \
		$(SRV_LIBS) $(TOOL_LIBS)

# The server with ASan+UBSan, for the bad-input suite.
$(BUILD)/bin/dsv4-server-san: userspace/dsv4-server/main.c $(SRV_LIB_SAN) $(LIB_SAN)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_CFLAGS) $(MODEL_DIRS) -Iuserspace/dsv4-server -o $@ $< \
		$(SRV_LIB_SAN) $(LIB_SAN) \
		$(SRV_LIBS) $(TOOL_LIBS)

$(BUILD)/bin/dsv4ctl: tools/dsv4ctl/dsv4ctl.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $< $(LIB) $(TOOL_LIBS)

$(BUILD)/bin/dsv4-mkmodel: tools/dsv4-mkmodel/mkmodel.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -fopenmp -o $@ $< $(LIB) $(TOOL_LIBS)

# A static dsv4-mkmodel carried to the GPU machine for reference runs.
$(BUILD)/bin/static/dsv4-mkmodel: tools/dsv4-mkmodel/mkmodel.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -fopenmp -static -o $@ $< $(LIB) $(STATIC_LIBS)

$(BUILD)/bin/dsv4-ckpt: tools/dsv4-ckpt/ckpt.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $< $(LIB) $(TOOL_LIBS)

$(BUILD)/bin/dsv4-run: userspace/dsv4-run/dsv4-run.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $< $(LIB) $(TOOL_LIBS)

$(BUILD)/bin/dsv4-engine-bench: tests/bench/engine_bench.c $(LIB) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $< $(LIB) $(TOOL_LIBS)

$(BUILD)/bin/dsv4-stream-bench: tests/bench/stream_bench.c $(LIB) $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $< $(LIB) $(TOOL_LIBS)

# A static dsv4-run: the engine in the QEMU guests (kmod-provider memory),
# and on the GPU machine's many cores for long runs.
$(BUILD)/bin/static/dsv4-run: userspace/dsv4-run/dsv4-run.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -static -o $@ $< $(LIB) $(STATIC_LIBS)

# Static copies run inside the test VM's busybox initramfs.
$(BUILD)/bin/static/dsv4ctl: tools/dsv4ctl/dsv4ctl.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -static -o $@ $< $(LIB) $(STATIC_LIBS)

# ---- kernel module, one build folder per kernel ----
modules: $(foreach v,$(KVERS),$(BUILD)/kmod/$(v)/kmod/dsv4.ko)

$(BUILD)/kmod/%/kmod/dsv4.ko: $(KMOD_SRCS)
	@mkdir -p $(BUILD)/kmod/$*
	@cp -p Kbuild $(BUILD)/kmod/$*/Kbuild
	@cp -rp kmod $(BUILD)/kmod/$*/
	@echo "  KMOD    dsv4.ko for $*"
	@$(MAKE) -s -C /lib/modules/$*/build M=$(BUILD)/kmod/$* W=1 modules \
		> $(BUILD)/kmod/$*/build.log 2>&1 || { cat $(BUILD)/kmod/$*/build.log; exit 1; }
	@! grep -E 'warning:|error:' $(BUILD)/kmod/$*/build.log || \
		{ echo "dsv4.ko: W=1 warnings on $*"; exit 1; }

# ---- tests ----
kselftests: $(KSFT_INC)/kselftest_harness.h $(BUILD)/bin/static/dsv4-provider-test \
	$(BUILD)/bin/static/dsv4-run
	@$(MAKE) -s -C tests/kselftest/dsv4 OUTPUT=$(BUILD)/kselftest/dsv4 KSFT_INC=$(KSFT_INC)

# The memory provider suite, static, for the QEMU guests (both providers there)
$(BUILD)/bin/static/dsv4-provider-test: tests/unit/provider_test.c $(LIB) $(KSFT_INC)/kselftest_harness.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Wno-missing-prototypes -Wno-unused-parameter -Wno-sign-compare \
		-I$(KSFT_INC) -static -o $@ $< $(LIB) $(STATIC_LIBS)

$(KSFT_INC)/kselftest_harness.h:
	@$(TOP)/tools/build/deps.sh

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_SAN) $(SRV_LIB_SAN) $(KSFT_INC)/kselftest_harness.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_CFLAGS) -Wno-missing-prototypes -Wno-unused-parameter -Wno-sign-compare -Wno-clobbered \
		-DDSV4_FIXTURES='"$(TOP)/tests/fixtures"' -DDSV4_BIN='"$(BUILD)/bin"' -I$(KSFT_INC) \
		-Iuserspace/dsv4-server -o $@ $< $(SRV_LIB_SAN) $(LIB_SAN) $(SRV_LIBS) $(TOOL_LIBS)

unit: $(UNIT_BINS) $(BUILD)/bin/dsv4-mkmodel $(BUILD)/bin/dsv4-server-san

check-unit: unit
	@tests/run-unit.sh $(UNIT_BINS)

check-vm: modules kselftests userspace
	@for v in $(VM_KVERS); do tests/vm/run-vm.sh $$v || exit 1; done

check: deps
	@$(MAKE) --no-print-directory all unit
	@tests/run-all.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@tools/demo.sh

fuzz: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-600} tests/fuzz/run-fuzz.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@tests/bench/run-bench.sh $(firstword $(VM_KVERS))
	@tests/bench/run-engine-bench.sh
	@tests/bench/run-stream-bench.sh
	@tests/bench/run-long-context.sh

bench-long: userspace
	@tests/bench/run-long-context.sh

bench-engine: userspace
	@tests/bench/run-engine-bench.sh

bench-stream: userspace
	@tests/bench/run-stream-bench.sh

# ---- install ----
SRV_PKG := userspace/dsv4-server/packaging

install: userspace
	install -D -m 0755 $(BUILD)/bin/dsv4ctl $(DESTDIR)$(PREFIX)/bin/dsv4ctl
	install -D -m 0755 $(BUILD)/bin/dsv4-server $(DESTDIR)$(PREFIX)/bin/dsv4-server
	@[ ! -e $(FW) ] || install -D -m 0644 $(FW) $(DESTDIR)/lib/firmware/dsv4/dsv4.fatbin
	install -d $(DESTDIR)$(PREFIX)/share/dsv4/models/fortune-v4
	install -m 0644 userspace/models/fortune-v4/*.json userspace/models/fortune-v4/*.safetensors \
		userspace/models/fortune-v4/README.md $(DESTDIR)$(PREFIX)/share/dsv4/models/fortune-v4/
	install -d $(DESTDIR)/etc/systemd/system
	sed 's|@BINDIR@|$(PREFIX)/bin|g' $(SRV_PKG)/dsv4-server.service \
		> $(DESTDIR)/etc/systemd/system/dsv4-server.service
	[ -e $(DESTDIR)/etc/default/dsv4-server ] || { install -d $(DESTDIR)/etc/default && \
		sed 's|@MODELDIR@|$(PREFIX)/share/dsv4/models/fortune-v4|' $(SRV_PKG)/dsv4-server.default \
		> $(DESTDIR)/etc/default/dsv4-server; }
	install -D -m 0644 libdsv4drv/include/dsv4drv.h $(DESTDIR)$(PREFIX)/include/dsv4drv.h
	install -D -m 0644 kmod/uapi/dsv4.h $(DESTDIR)$(PREFIX)/include/dsv4.h
	install -D -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libdsv4drv.a
	install -D -m 0644 kmod/packaging/60-dsv4.rules $(DESTDIR)/etc/udev/rules.d/60-dsv4.rules
	install -D -m 0644 kmod/packaging/dsv4.conf $(DESTDIR)/etc/modprobe.d/dsv4.conf
	@v=$$(uname -r); if [ -e $(BUILD)/kmod/$$v/kmod/dsv4.ko ]; then \
		install -D -m 0644 $(BUILD)/kmod/$$v/kmod/dsv4.ko \
			$(DESTDIR)/lib/modules/$$v/updates/dsv4.ko; \
		[ -n "$(DESTDIR)" ] || depmod -a $$v || true; \
	else echo "install: no dsv4.ko for the running kernel $$v (use dkms: kmod/README.md)"; fi
	@getent group dsv4 >/dev/null || [ -n "$(DESTDIR)" ] || groupadd --system dsv4 || true
	@getent passwd dsv4 >/dev/null || [ -n "$(DESTDIR)" ] || \
		useradd --system --gid dsv4 --home-dir /var/lib/dsv4 --no-create-home \
			--shell /usr/sbin/nologin dsv4 || true
	@[ -n "$(DESTDIR)" ] || ! command -v systemctl >/dev/null || systemctl daemon-reload || true

DKMS_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' kmod/packaging/dkms.conf)
DKMS_SRC := $(DESTDIR)/usr/src/dsv4-$(DKMS_VERSION)

install-dkms:
	install -d $(DKMS_SRC)/kmod/uapi
	install -m 0644 Kbuild $(DKMS_SRC)/Kbuild
	install -m 0644 kmod/packaging/dkms.conf $(DKMS_SRC)/dkms.conf
	install -m 0644 kmod/Kbuild kmod/*.c kmod/*.h $(DKMS_SRC)/kmod/
	install -m 0644 kmod/uapi/dsv4.h $(DKMS_SRC)/kmod/uapi/
	@echo "now: dkms install dsv4/$(DKMS_VERSION)"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/dsv4ctl $(DESTDIR)$(PREFIX)/include/dsv4drv.h \
		$(DESTDIR)$(PREFIX)/bin/dsv4-server $(DESTDIR)/etc/systemd/system/dsv4-server.service \
		-r $(DESTDIR)$(PREFIX)/share/dsv4 \
		$(DESTDIR)$(PREFIX)/include/dsv4.h $(DESTDIR)$(PREFIX)/lib/libdsv4drv.a \
		$(DESTDIR)/etc/udev/rules.d/60-dsv4.rules $(DESTDIR)/etc/modprobe.d/dsv4.conf \
		$(DESTDIR)/lib/modules/$$(uname -r)/updates/dsv4.ko
	rm -rf $(DKMS_SRC)

clean:
	rm -rf $(BUILD)/obj $(BUILD)/obj-san $(BUILD)/lib $(BUILD)/bin $(BUILD)/kmod \
		$(BUILD)/tests $(BUILD)/vm $(BUILD)/kselftest/dsv4 $(BUILD)/fuzz
