// SPDX-License-Identifier: MIT
/*
 * The CUDA backend's host side: the driver API from libcuda.so.1 through
 * dlopen (so that libdsv4drv builds and runs where there is no NVIDIA
 * driver), and the firmware fatbin loaded with cuModuleLoadData.  Every
 * failure is an error that says what is missing; callers fall back to the
 * CPU backend.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../internal.h"
#include "dsv4drv.h"
#include "gpu.h"

#ifndef DSV4_TREE_FIRMWARE
#define DSV4_TREE_FIRMWARE "build/firmware/dsv4.fatbin"
#endif
#define INSTALLED_FIRMWARE "/lib/firmware/dsv4/dsv4.fatbin"

enum { CU_ATTR_CC_MAJOR = 75, CU_ATTR_CC_MINOR = 76, CU_ATTR_SM_COUNT = 16,
       CU_ATTR_SMEM_OPTIN = 97 };

static const char *const kernel_names[K_COUNT] = {
#define GPU_KNAME(id, name) #name,
	GPU_KERNELS(GPU_KNAME)
#undef GPU_KNAME
};

const char *gpu_kernel_name(unsigned int k)
{
	return k < K_COUNT ? kernel_names[k] : "?";
}

const char *gpu_err(const struct dsv4_gpu *g, CUresult r)
{
	const char *s = NULL;

	if (g->cu.GetErrorString)
		g->cu.GetErrorString(r, &s);
	return s ? s : "unknown CUDA error";
}

static int load_driver(struct dsv4_gpu *g, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
#define SYM(field, name) { name, offsetof(struct cu_driver, field) }
		SYM(Init, "cuInit"), SYM(DriverGetVersion, "cuDriverGetVersion"),
		SYM(DeviceGetCount, "cuDeviceGetCount"), SYM(DeviceGet, "cuDeviceGet"),
		SYM(DeviceGetName, "cuDeviceGetName"), SYM(DeviceGetAttribute, "cuDeviceGetAttribute"),
		SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
		SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
		SYM(CtxSetCurrent, "cuCtxSetCurrent"), SYM(CtxSynchronize, "cuCtxSynchronize"),
		SYM(ModuleLoadData, "cuModuleLoadData"), SYM(ModuleUnload, "cuModuleUnload"),
		SYM(ModuleGetFunction, "cuModuleGetFunction"), SYM(MemAlloc, "cuMemAlloc_v2"),
		SYM(MemFree, "cuMemFree_v2"), SYM(MemcpyHtoD, "cuMemcpyHtoD_v2"),
		SYM(MemcpyDtoH, "cuMemcpyDtoH_v2"), SYM(LaunchKernel, "cuLaunchKernel"),
		SYM(FuncSetAttribute, "cuFuncSetAttribute"),
		SYM(FuncGetAttribute, "cuFuncGetAttribute"), SYM(MemGetInfo, "cuMemGetInfo_v2"),
		SYM(OccupancyMaxActiveBlocksPerMultiprocessor,
		    "cuOccupancyMaxActiveBlocksPerMultiprocessor"),
		SYM(MemcpyDtoD, "cuMemcpyDtoD_v2"), SYM(MemsetD32, "cuMemsetD32_v2"),
		SYM(MemHostRegister, "cuMemHostRegister_v2"),
		SYM(MemHostUnregister, "cuMemHostUnregister"),
		SYM(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
		SYM(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"), SYM(StreamCreate, "cuStreamCreate"),
		SYM(StreamDestroy, "cuStreamDestroy_v2"),
		SYM(StreamSynchronize, "cuStreamSynchronize"), SYM(EventCreate, "cuEventCreate"),
		SYM(EventDestroy, "cuEventDestroy_v2"), SYM(EventRecord, "cuEventRecord"),
		SYM(EventRecordWithFlags, "cuEventRecordWithFlags"),
		SYM(StreamWaitEvent, "cuStreamWaitEvent"),
		SYM(EventSynchronize, "cuEventSynchronize"),
		SYM(MemHostGetDevicePointer, "cuMemHostGetDevicePointer_v2"),
		SYM(EventElapsedTime, "cuEventElapsedTime"),
		SYM(GetErrorString, "cuGetErrorString"),
		SYM(MemsetD32Async, "cuMemsetD32Async"),
		SYM(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
		SYM(StreamBeginCapture, "cuStreamBeginCapture_v2"),
		SYM(StreamEndCapture, "cuStreamEndCapture"),
		SYM(GraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"),
		SYM(GraphLaunch, "cuGraphLaunch"), SYM(GraphExecDestroy, "cuGraphExecDestroy"),
		SYM(GraphDestroy, "cuGraphDestroy"),
#undef SYM
	};

	g->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!g->lib)
		return dsv4_errf(err, errlen, -ENOENT,
				 "CUDA: cannot load libcuda.so.1 (no NVIDIA driver here?): %s",
				 dlerror());
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(g->lib, syms[i].name);

		if (!p)
			return dsv4_errf(err, errlen, -ENOSYS,
					 "CUDA: libcuda.so.1 lacks %s (driver too old)", syms[i].name);
		memcpy((char *)&g->cu + syms[i].off, &p, sizeof(p));
	}
	*(void **)&g->cu.LaunchKernelEx = dlsym(g->lib, "cuLaunchKernelEx");
	return 0;
}

/* The firmware: @path, else $DSV4_FIRMWARE, else installed, else the
 * build tree's.  Returns the malloc'd bytes. */
static void *read_firmware(struct dsv4_gpu *g, const char *path, char *err, size_t errlen)
{
	const char *tries[4] = { path, getenv("DSV4_FIRMWARE"), INSTALLED_FIRMWARE,
				 DSV4_TREE_FIRMWARE };

	for (int i = 0; i < 4; i++) {
		FILE *f;
		long size;
		void *buf;

		if (!tries[i] || !tries[i][0])
			continue;
		f = fopen(tries[i], "rb");
		if (!f) {
			if (i < 2) {	/* named explicitly: say so */
				dsv4_errf(err, errlen, -errno, "CUDA firmware %s: %s", tries[i],
					  strerror(errno));
				return NULL;
			}
			continue;
		}
		if (fseek(f, 0, SEEK_END) || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) ||
		    !(buf = malloc((size_t)size)) || fread(buf, 1, (size_t)size, f) != (size_t)size) {
			fclose(f);
			dsv4_errf(err, errlen, -EIO, "CUDA firmware %s: unreadable", tries[i]);
			return NULL;
		}
		fclose(f);
		snprintf(g->firmware, sizeof(g->firmware), "%s", tries[i]);
		return buf;
	}
	dsv4_errf(err, errlen, -ENOENT, "CUDA firmware dsv4.fatbin not found (in $DSV4_FIRMWARE, "
		  INSTALLED_FIRMWARE " or " DSV4_TREE_FIRMWARE "; build it with nvcc: make)");
	return NULL;
}

void dsv4_gpu_close(struct dsv4_gpu *g)
{
	if (!g)
		return;
	if (g->mod)
		g->cu.ModuleUnload(g->mod);
	if (g->ctx)
		g->cu.DevicePrimaryCtxRelease(g->dev);
	if (g->lib)
		dlclose(g->lib);
	free(g);
}

int dsv4_gpu_open(int ordinal, const char *firmware, struct dsv4_gpu **out, char *err,
		  size_t errlen)
{
	struct dsv4_gpu *g = calloc(1, sizeof(*g));
	int count = 0, ret;
	void *image = NULL;
	CUresult r;

	*out = NULL;
	if (!g)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	ret = load_driver(g, err, errlen);
	if (ret)
		goto fail;
	r = g->cu.Init(0);
	if (r) {
		ret = dsv4_errf(err, errlen, -ENODEV, "CUDA: cuInit failed: %s", gpu_err(g, r));
		goto fail;
	}
	g->cu.DriverGetVersion(&g->driver_version);
	g->cu.DeviceGetCount(&count);
	if (ordinal < 0 || ordinal >= count) {
		ret = dsv4_errf(err, errlen, -ENODEV, "CUDA: no GPU %d (%d present)", ordinal, count);
		goto fail;
	}
	g->cu.DeviceGet(&g->dev, ordinal);
	g->cu.DeviceGetName(g->name, sizeof(g->name), g->dev);
	g->cu.DeviceGetAttribute(&g->cc_major, CU_ATTR_CC_MAJOR, g->dev);
	g->cu.DeviceGetAttribute(&g->cc_minor, CU_ATTR_CC_MINOR, g->dev);
	g->cu.DeviceGetAttribute(&g->sms, CU_ATTR_SM_COUNT, g->dev);
	g->cu.DeviceGetAttribute(&g->smem_optin, CU_ATTR_SMEM_OPTIN, g->dev);
	r = g->cu.DevicePrimaryCtxRetain(&g->ctx, g->dev);
	if (!r)
		r = g->cu.CtxSetCurrent(g->ctx);
	if (r) {
		ret = dsv4_errf(err, errlen, -ENODEV, "CUDA: no context on %s: %s", g->name,
				gpu_err(g, r));
		goto fail;
	}
	image = read_firmware(g, firmware, err, errlen);
	if (!image) {
		ret = -ENOENT;
		goto fail;
	}
	r = g->cu.ModuleLoadData(&g->mod, image);
	free(image);
	if (r) {
		ret = dsv4_errf(err, errlen, -ENOEXEC,
				"CUDA: %s does not load on %s (sm_%d%d, driver %d): %s", g->firmware,
				g->name, g->cc_major, g->cc_minor, g->driver_version, gpu_err(g, r));
		g->mod = NULL;
		goto fail;
	}
	for (int k = 0; k < K_COUNT; k++) {
		r = g->cu.ModuleGetFunction(&g->fn[k], g->mod, kernel_names[k]);
		if (r) {
			ret = dsv4_errf(err, errlen, -ENOEXEC,
					"CUDA: %s lacks %s (firmware older than this library): %s",
					g->firmware, kernel_names[k], gpu_err(g, r));
			goto fail;
		}
	}
	*out = g;
	return 0;
fail:
	dsv4_gpu_close(g);
	return ret;
}

const char *dsv4_gpu_describe(const struct dsv4_gpu *g, char *buf, size_t len)
{
	snprintf(buf, len, "%s (sm_%d%d, %d SMs), driver %d.%d, firmware %s", g->name, g->cc_major,
		 g->cc_minor, g->sms, g->driver_version / 1000, g->driver_version % 1000 / 10,
		 g->firmware);
	return buf;
}

/*
 * The single-kernel checks' buffers: dev_put() makes *d a device buffer of
 * @n bytes holding @h's (@h NULL: left as it comes) unless an earlier
 * step failed (@r, passed on); dev_free() frees those of @d[0..n) made.
 */
static CUresult dev_put(struct dsv4_gpu *g, CUresult r, CUdeviceptr *d, const void *h, size_t n)
{
	if (!r)
		r = g->cu.MemAlloc(d, n);
	if (!r && h)
		r = g->cu.MemcpyHtoD(*d, h, n);
	return r;
}

/* @n bytes of @d into @h, chained as dev_put() (nothing once @r is an error) */
static CUresult dev_get(struct dsv4_gpu *g, CUresult r, void *h, CUdeviceptr d, size_t n)
{
	if (!r)
		r = g->cu.MemcpyDtoH(h, d, n);
	return r;
}

static void dev_free(struct dsv4_gpu *g, const CUdeviceptr *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (d[i])
			g->cu.MemFree(d[i]);
}

int dsv4_gpu_gemv_fp8(struct dsv4_gpu *g, const uint8_t *w, const uint8_t *scale, uint32_t rows,
		      uint32_t cols, const float *x, float *y, char *err, size_t errlen)
{
	size_t wb = (size_t)rows * cols, sb = (size_t)((rows + 127) / 128) * ((cols + 127) / 128);
	CUdeviceptr dw = 0, ds = 0, dx = 0, dy = 0;
	CUresult r;
	void *args[6] = { &dw, &ds, &dx, &dy, &rows, &cols };

	if (!rows || !cols)
		return dsv4_errf(err, errlen, -EINVAL, "gemv: empty matrix");
	r = dev_put(g, 0, &dw, w, wb);
	r = dev_put(g, r, &ds, scale, sb);
	r = dev_put(g, r, &dx, x, (size_t)cols * sizeof(float));
	r = dev_put(g, r, &dy, NULL, (size_t)rows * sizeof(float));
	if (!r)	/* 8 rows (warps) per 256-thread block */
		r = g->cu.LaunchKernel(g->fn[K_GEMV_FP8], (rows + 7) / 8, 1, 1, 256, 1, 1, 0, NULL, args,
				       NULL);
	if (!r)
		r = g->cu.CtxSynchronize();
	r = dev_get(g, r, y, dy, (size_t)rows * sizeof(float));
	dev_free(g, (CUdeviceptr[]){ dw, ds, dx, dy }, 4);
	return r ? dsv4_errf(err, errlen, -EIO, "CUDA gemv_fp8: %s", gpu_err(g, r)) : 0;
}

int dsv4_gpu_experts_fp4(struct dsv4_gpu *g, const uint8_t *codes, const uint8_t *scales,
			 uint32_t rows, uint32_t cols, const float *x, float *y_mma,
			 float *y_cores, char *err, size_t errlen)
{
	size_t cb = (size_t)rows * cols / 2, sb = (size_t)rows * cols / 32;
	CUdeviceptr dc = 0, ds = 0, dt = 0, di = 0, dx = 0, dy = 0, dz = 0;
	struct fw_mat m = { .fmt = FW_FP4, .rows = rows, .cols = cols };
	uint32_t one = 1, zero = 0, ldx = cols, ldy = rows;
	int32_t expert = 0;
	CUresult r;

	if (!rows || !cols || cols % 128 || cols > FW_MMA_MAX_COLS)
		return dsv4_errf(err, errlen, -EINVAL, "experts_fp4: %ux%u (columns a multiple "
				 "of 128, at most %u)", rows, cols, FW_MMA_MAX_COLS);
	r = dev_put(g, 0, &dc, codes, cb);
	r = dev_put(g, r, &ds, scales, sb);
	m.data = dc;
	m.scale = ds;
	r = dev_put(g, r, &dt, &m, sizeof(m));
	r = dev_put(g, r, &di, &expert, sizeof(expert));
	r = dev_put(g, r, &dx, x, (size_t)cols * sizeof(float));
	r = dev_put(g, r, &dy, NULL, (size_t)rows * sizeof(float));
	r = dev_put(g, r, &dz, NULL, (size_t)rows * sizeof(float));
	{
		/* one slot, expert 0, as experts() launches them for w2 (the
		 * CUDA-core kernel quantizes x itself: on the grid it stays) */
		struct fw_route routed = { 0 };
		void *am[] = { &dt, &dt, &di, &one, &dx, &ldx, &zero, &dy, &dy, &ldy, &routed };
		void *ac[] = { &dt, &dt, &di, &one, &dx, &ldx, &zero, &dz, &dz, &ldy, &one };

		if (!r)
			r = g->cu.LaunchKernel(g->fn[K_EXPERTS_MMA], (rows + 63) / 64, 1, 1, 128, 1,
					       1, 0, NULL, am, NULL);
		if (!r)
			r = g->cu.LaunchKernel(g->fn[K_LINEAR_EXPERTS], (rows + 31) / 32, 1, 1, 128,
					       1, 1, 0, NULL, ac, NULL);
	}
	if (!r)
		r = g->cu.CtxSynchronize();
	r = dev_get(g, r, y_mma, dy, (size_t)rows * sizeof(float));
	r = dev_get(g, r, y_cores, dz, (size_t)rows * sizeof(float));
	dev_free(g, (CUdeviceptr[]){ dc, ds, dt, di, dx, dy, dz }, 7);
	return r ? dsv4_errf(err, errlen, -EIO, "CUDA experts_fp4: %s", gpu_err(g, r)) : 0;
}

int dsv4_gpu_topk(struct dsv4_gpu *g, const float *scores, uint32_t n, uint32_t nz, uint32_t k,
		  int32_t *sel, uint32_t *nsel, char *err, size_t errlen)
{
	/* one row at position 4 n - 1: dsv4_topk takes (pos + 1) / 4 entries;
	 * in parts as decode takes them (unless $DSV4_GPU_TOPK_PARTS=0) */
	const char *env = getenv("DSV4_GPU_TOPK_PARTS");
	uint32_t pos = 4 * n - 1, parts = nz == 1 && !(env && *env == '0') ? gpu_topk_parts(n) : 0;
	CUdeviceptr ds = 0, dp = 0, dsel = 0, dn = 0, pk = 0, pi = 0, pn = 0;
	void *args[] = { &ds, &n, &dp, &k, &dsel, &dn, &nz };
	void *ap[] = { &ds, &n, &dp, &k, &pk, &pi, &pn };
	void *am[] = { &pk, &pi, &pn, &parts, &k, &dsel, &dn };
	CUresult r;

	*nsel = 0;
	if (!n || n > UINT32_MAX / 4 || !k || !nz || nz > 8)
		return dsv4_errf(err, errlen, -EINVAL, "topk: %u entries in %u slices, k %u "
				 "(1..2^30 entries, 1..8 slices)", n, nz, k);
	r = dev_put(g, 0, &ds, scores, (size_t)nz * n * sizeof(float));
	r = dev_put(g, r, &dp, &pos, sizeof(pos));
	r = dev_put(g, r, &dsel, NULL, (size_t)k * sizeof(int32_t));
	r = dev_put(g, r, &dn, NULL, sizeof(uint32_t));
	if (parts) {
		r = dev_put(g, r, &pk, NULL, (size_t)parts * k * sizeof(uint32_t));
		r = dev_put(g, r, &pi, NULL, (size_t)parts * k * sizeof(int32_t));
		r = dev_put(g, r, &pn, NULL, (size_t)parts * sizeof(uint32_t));
		if (!r)
			r = g->cu.LaunchKernel(g->fn[K_TOPK_PART], 1, parts, 1, 1024, 1, 1, 0, NULL,
					       ap, NULL);
		if (!r)
			r = g->cu.LaunchKernel(g->fn[K_TOPK_MERGE], 1, 1, 1, 1024, 1, 1, 0, NULL, am,
					       NULL);
	} else if (!r) {
		r = g->cu.LaunchKernel(g->fn[K_TOPK], 1, 1, 1, 1024, 1, 1, 0, NULL, args, NULL);
	}
	if (!r)
		r = g->cu.CtxSynchronize();
	r = dev_get(g, r, nsel, dn, sizeof(uint32_t));
	r = dev_get(g, r, sel, dsel, (size_t)(*nsel < k ? *nsel : k) * sizeof(int32_t));
	dev_free(g, (CUdeviceptr[]){ ds, dp, dsel, dn, pk, pi, pn }, 7);
	return r ? dsv4_errf(err, errlen, -EIO, "CUDA topk: %s", gpu_err(g, r)) : 0;
}

int dsv4_gpu_index_codes(struct dsv4_gpu *g, const float *keys, uint32_t n, uint32_t ihd,
			 uint8_t *codes, char *err, size_t errlen)
{
	CUdeviceptr dk = 0, dc = 0;
	void *args[] = { &dk, &dc, &ihd };
	size_t cb = (size_t)n * FW_ICODE_BYTES(ihd);
	CUresult r;

	if (!n || n > INT32_MAX || !ihd || ihd % 32 || ihd > 1024)
		return dsv4_errf(err, errlen, -EINVAL, "index_codes: %u keys of %u (1..2^31-1 "
				 "keys, a multiple of 32 up to 1024 values)", n, ihd);
	r = dev_put(g, 0, &dk, keys, (size_t)n * ihd * sizeof(float));
	r = dev_put(g, r, &dc, NULL, cb);
	if (!r)
		r = g->cu.LaunchKernel(g->fn[K_ICMP_CODES], n, 1, 1, 128, 1, 1, 0, NULL, args, NULL);
	if (!r)
		r = g->cu.CtxSynchronize();
	r = dev_get(g, r, codes, dc, cb);
	dev_free(g, (CUdeviceptr[]){ dk, dc }, 2);
	return r ? dsv4_errf(err, errlen, -EIO, "CUDA index_codes: %s", gpu_err(g, r)) : 0;
}

int dsv4_gpu_linear_fp8(struct dsv4_gpu *g, const uint8_t *codes, const uint8_t *scales,
			uint32_t rows, uint32_t cols, uint32_t ks, const float *x, float *y_mma,
			float *y_cores, char *err, size_t errlen)
{
	uint32_t gx = (rows + 63) / 64, one = 1, zero = 0;
	size_t cb = (size_t)rows * cols, sb = (size_t)(rows + 127) / 128 * (cols / 128);
	CUdeviceptr dc = 0, ds = 0, dx = 0, dy = 0, dz = 0, dp = 0, dn = 0;
	struct fw_mat m = { .fmt = FW_FP8, .rows = rows, .cols = cols };
	struct fw_hc_post none = { 0 };
	CUresult r;

	if (!rows || !cols || !ks || ks > 32 || cols % (128 * ks) || cols / ks > FW_MMA_MAX_COLS)
		return dsv4_errf(err, errlen, -EINVAL, "linear_fp8: %ux%u in %u slices (columns a "
				 "multiple of 128 a slice, at most %u a slice)", rows, cols, ks,
				 FW_MMA_MAX_COLS);
	r = dev_put(g, 0, &dc, codes, cb);
	r = dev_put(g, r, &ds, scales, sb);
	r = dev_put(g, r, &dx, x, (size_t)cols * sizeof(float));
	r = dev_put(g, r, &dy, NULL, (size_t)rows * sizeof(float));
	r = dev_put(g, r, &dz, NULL, (size_t)rows * sizeof(float));
	r = dev_put(g, r, &dp, NULL, (size_t)ks * rows * sizeof(float));
	r = dev_put(g, r, &dn, NULL, (size_t)gx * sizeof(uint32_t));
	if (!r)	/* split-K's counts start at zero */
		r = g->cu.MemsetD32(dn, 0, gx);
	m.data = dc;
	m.scale = ds;
	{
		/* as lin1() launches them: one group, the act quant inside */
		void *am[] = { &m, &dx, &dy, &dp, &dn, &one, &zero, &zero, &none };
		void *ac[] = { &m, &dx, &dz, &dp, &dn, &one, &zero, &zero, &none };

		if (!r)
			r = g->cu.LaunchKernel(g->fn[K_LINEAR1_FP8_MMA], gx, ks, 1, 128, 1, 1, 0,
					       NULL, am, NULL);
		if (!r)
			r = g->cu.LaunchKernel(g->fn[K_LINEAR1_FP8], (rows + 31) / 32, 1, 1, 256, 1,
					       1, 0, NULL, ac, NULL);
	}
	if (!r)
		r = g->cu.CtxSynchronize();
	r = dev_get(g, r, y_mma, dy, (size_t)rows * sizeof(float));
	r = dev_get(g, r, y_cores, dz, (size_t)rows * sizeof(float));
	dev_free(g, (CUdeviceptr[]){ dc, ds, dx, dy, dz, dp, dn }, 7);
	return r ? dsv4_errf(err, errlen, -EIO, "CUDA linear_fp8: %s", gpu_err(g, r)) : 0;
}

int dsv4_gpu_linear_fp8_split(struct dsv4_gpu *g, const uint8_t *codes, const uint8_t *scales,
			      uint32_t rows, uint32_t cols, uint32_t ks, const float *x,
			      uint8_t *parts, float *pscales, int given, float *y_mmx,
			      float *y_cores, char *err, size_t errlen)
{
	uint32_t gx = (rows + 63) / 64, zero = 0, nb = cols / 128;
	size_t cb = (size_t)rows * cols, sb = (size_t)(rows + 127) / 128 * nb;
	CUdeviceptr dc = 0, ds = 0, dx = 0, dy = 0, dz = 0, dp = 0, dn = 0, dq = 0, dqs = 0;
	struct fw_mat m = { .fmt = FW_FP8, .rows = rows, .cols = cols };
	struct fw_hc_post none = { 0 };
	CUresult r;

	if (!rows || !cols || !ks || ks > 32 || cols % (128 * ks) ||
	    cols / ks > FW_XSPLIT_MAX_COLS)
		return dsv4_errf(err, errlen, -EINVAL, "linear_fp8_split: %ux%u in %u slices "
				 "(columns a multiple of 128 a slice, at most %u a slice)", rows,
				 cols, ks, FW_XSPLIT_MAX_COLS);
	r = dev_put(g, 0, &dc, codes, cb);
	r = dev_put(g, r, &ds, scales, sb);
	r = dev_put(g, r, &dx, x, (size_t)cols * sizeof(float));
	r = dev_put(g, r, &dy, NULL, (size_t)rows * sizeof(float));
	r = dev_put(g, r, &dz, NULL, (size_t)rows * sizeof(float));
	r = dev_put(g, r, &dp, NULL, (size_t)ks * rows * sizeof(float));
	r = dev_put(g, r, &dn, NULL, (size_t)gx * sizeof(uint32_t));
	r = dev_put(g, r, &dq, given ? parts : NULL, (size_t)cols * FW_XSPLIT_PARTS);
	r = dev_put(g, r, &dqs, given ? pscales : NULL,
		    (size_t)nb * FW_XSPLIT_PARTS * sizeof(float));
	if (!r)	/* split-K's counts start at zero */
		r = g->cu.MemsetD32(dn, 0, gx);
	m.data = dc;
	m.scale = ds;
	{
		/* x split as dsv4_attn_combine splits o, then one group as
		 * attention() launches wo_a; the CUDA-core GEMV on x as it is */
		void *aq[] = { &dx, &dq, &dqs };
		void *am[] = { &m, &dq, &dqs, &dy, &dp, &dn, &zero, &zero };
		void *ac[] = { &m, &dx, &dz, &dp, &dn, &zero, &zero, &zero, &none };

		if (!r && !given)
			r = g->cu.LaunchKernel(g->fn[K_XSPLIT], nb, 1, 1, 128, 1, 1, 0, NULL, aq,
					       NULL);
		if (!r)
			r = g->cu.LaunchKernel(g->fn[K_LINEAR1_FP8_MMX], gx, ks, 1, 128, 1, 1, 0,
					       NULL, am, NULL);
		if (!r)
			r = g->cu.LaunchKernel(g->fn[K_LINEAR1_FP8], (rows + 31) / 32, 1, 1, 256, 1,
					       1, 0, NULL, ac, NULL);
	}
	if (!r)
		r = g->cu.CtxSynchronize();
	r = dev_get(g, r, y_mmx, dy, (size_t)rows * sizeof(float));
	r = dev_get(g, r, y_cores, dz, (size_t)rows * sizeof(float));
	if (!given) {
		r = dev_get(g, r, parts, dq, (size_t)cols * FW_XSPLIT_PARTS);
		r = dev_get(g, r, pscales, dqs, (size_t)nb * FW_XSPLIT_PARTS * sizeof(float));
	}
	dev_free(g, (CUdeviceptr[]){ dc, ds, dx, dy, dz, dp, dn, dq, dqs }, 9);
	return r ? dsv4_errf(err, errlen, -EIO, "CUDA linear_fp8_split: %s", gpu_err(g, r)) : 0;
}

static double secs(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) + (b->tv_nsec - a->tv_nsec) * 1e-9;
}

/* pinned host -> device: a registered 256 MiB buffer, copied 8 times */
static CUresult htod_bandwidth(struct dsv4_gpu *g, CUdeviceptr dst, double *out)
{
	size_t n = (size_t)256 << 20;
	void *h = aligned_alloc(4096, n);
	struct timespec t0, t1;
	CUresult r;

	if (!h)
		return 2;	/* CUDA_ERROR_OUT_OF_MEMORY */
	memset(h, 1, n);
	r = g->cu.MemHostRegister(h, n, 0);
	if (!r)
		r = g->cu.MemcpyHtoD(dst, h, n);	/* warm */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 8 && !r; i++)
		r = g->cu.MemcpyHtoDAsync(dst, h, n, NULL);
	if (!r)
		r = g->cu.CtxSynchronize();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	g->cu.MemHostUnregister(h);
	free(h);
	*out = 8.0 * n / secs(&t0, &t1);
	return r;
}

int dsv4_gpu_bandwidth(struct dsv4_gpu *g, double *bytes_per_s, double *htod, char *err,
		       size_t errlen)
{
	size_t n = (size_t)1 << 30;
	CUdeviceptr a = 0, b = 0;
	struct timespec t0, t1;
	CUresult r;
	int reps = 10;

	r = g->cu.MemAlloc(&a, n);
	if (!r)
		r = g->cu.MemAlloc(&b, n);
	if (!r)
		r = g->cu.MemsetD32(a, 0, n / 4);
	if (!r)
		r = g->cu.MemcpyDtoD(b, a, n);	/* warm */
	if (!r)
		r = g->cu.CtxSynchronize();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < reps && !r; i++)
		r = g->cu.MemcpyDtoD(i & 1 ? a : b, i & 1 ? b : a, n);
	if (!r)
		r = g->cu.CtxSynchronize();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!r)
		r = htod_bandwidth(g, a, htod);
	if (a)
		g->cu.MemFree(a);
	if (b)
		g->cu.MemFree(b);
	if (r)
		return dsv4_errf(err, errlen, -EIO, "CUDA bandwidth: %s", gpu_err(g, r));
	*bytes_per_s = 2.0 * n * reps / secs(&t0, &t1);
	return 0;
}
