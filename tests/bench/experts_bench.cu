// SPDX-License-Identifier: MIT
/*
 * The routed experts' decode GEMV alone: firmware's dsv4_experts_mma (its
 * source compiled in) on Flash's shapes, six slots of random experts out
 * of --experts, as decode launches it for w1/w3 (2048 x 4096, FP4, two
 * matrices a launch) and for w2 (4096 x 2048).  Beside it, in the same
 * run:
 *   loads only:  the kernel's own loads (mma_load, the same steps in
 *                flight) with the math left out: what its access
 *                pattern reaches;
 *   contiguous:  the same experts' weight bytes read in long runs, 16
 *                bytes a lane (the kernel reads 32 bytes of each of 16
 *                rows in turn): the anchor for bytes this size;
 *   device copy: 1 GiB cuMemcpyDtoD, read + write counted (the roofline's
 *                anchor in gpu_bench).
 * Each as us a launch and GB/s of weight bytes, the kernel's as a ratio to
 * the contiguous read.  The experts rotate over 16 random sets so that L2
 * (50 MB) holds little of the next launch's.  A benchmark: it asserts
 * nothing about speed.
 *   experts_bench [--experts N] [--reps N]
 * Built with the firmware (nvcc) into build/bin/experts_bench, and into
 * the gpu-kit; run on the GPU machine.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../firmware/kernels/linear.cu"
#include "../../firmware/kernels/experts_mma.cu"

#define CHECK(x)                                                                            \
	do {                                                                                \
		cudaError_t e_ = (x);                                                       \
		if (e_ != cudaSuccess) {                                                    \
			fprintf(stderr, "experts_bench: %s: %s\n", #x, cudaGetErrorString(e_)); \
			exit(1);                                                            \
		}                                                                           \
	} while (0)

enum { SLOTS = 6, SETS = 16, D = 4096, I = 2048 };

/* every word of a step into one xor, so that no load is left out
 * (whatever words mma_step holds) */
static __device__ __forceinline__ uint32_t fold(const mma_step &t)
{
	const uint32_t *w = (const uint32_t *)&t;
	uint32_t r = 0;

#pragma unroll
	for (size_t i = 0; i < sizeof(t) / 4; i++)
		r ^= w[i];
	return r;
}

/* dsv4_experts_mma's loads (mma_load) with its two steps in flight, no math */
__global__ void __launch_bounds__(128)
loads_only(const fw_mat *__restrict__ tab_a, const fw_mat *__restrict__ tab_b,
	   const int32_t *__restrict__ idx, uint32_t *out)
{
	uint32_t s = blockIdx.y, g = threadIdx.x % 32 / 4, q = threadIdx.x % 4, r = 0;
	const fw_mat w = (blockIdx.z ? tab_b : tab_a)[idx[s]];
	uint32_t o0 = blockIdx.x * 64 + (threadIdx.x / 32) * 16, nch = w.cols / 128;
	uint32_t rg = o0 + g, rg8 = rg + 8;
	int on_g = rg < w.rows, on_g8 = rg8 < w.rows;
	const uint8_t *dg = (const uint8_t *)w.data + (size_t)rg * (w.cols / 2);
	const uint8_t *dg8 = (const uint8_t *)w.data + (size_t)rg8 * (w.cols / 2);
	const uint8_t *sg = (const uint8_t *)w.scale + (size_t)rg * (w.cols / 32);
	const uint8_t *sg8 = (const uint8_t *)w.scale + (size_t)rg8 * (w.cols / 32);
	mma_step A, B;

	mma_load(A, 0, nch, dg, dg8, sg, sg8, on_g, on_g8, q);
	for (uint32_t c0 = 0; c0 < nch; c0 += 8) {
		mma_load(B, c0 + 4, nch, dg, dg8, sg, sg8, on_g, on_g8, q);
		r ^= fold(A);
		mma_load(A, c0 + 8, nch, dg, dg8, sg, sg8, on_g, on_g8, q);
		r ^= fold(B);
	}
	if (r == 0x9e3779b9u)	/* never, in practice: keeps the loads */
		out[0] = r;
}

/* the same experts' weight bytes, each block @per bytes of one matrix,
 * 16 bytes a lane, eight loads in flight */
__global__ void __launch_bounds__(256)
contiguous(const fw_mat *__restrict__ tab_a, const fw_mat *__restrict__ tab_b,
	   const int32_t *__restrict__ idx, uint32_t per, uint32_t *out)
{
	const fw_mat w = (blockIdx.z ? tab_b : tab_a)[idx[blockIdx.y]];
	size_t at = (size_t)blockIdx.x * per, bytes = (size_t)w.rows * w.cols / 2;
	const uint4 *p = (const uint4 *)((const uint8_t *)w.data + at);
	uint32_t n = per / 16, r = 0;

	if (at >= bytes)
		return;
	for (uint32_t i = threadIdx.x; i < n; i += 8 * blockDim.x) {
		uint4 v[8];

#pragma unroll
		for (int u = 0; u < 8; u++)
			v[u] = i + u * blockDim.x < n ? __ldg(p + i + u * blockDim.x) :
							make_uint4(0, 0, 0, 0);
#pragma unroll
		for (int u = 0; u < 8; u++)
			r ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
	}
	if (r == 0x9e3779b9u)
		out[0] = r;
}

/* one expert's matrices: codes random, scales near 2^0 */
static void fill(uint8_t *dev, size_t codes, size_t scales, unsigned *seed)
{
	uint8_t *h = (uint8_t *)malloc(codes + scales);

	if (!h) {
		fprintf(stderr, "experts_bench: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < codes + scales; i++) {
		*seed = *seed * 1103515245u + 12345u;
		h[i] = i < codes ? (uint8_t)(*seed >> 16) : (uint8_t)(122 + (*seed >> 16) % 9);
	}
	CHECK(cudaMemcpy(dev, h, codes + scales, cudaMemcpyHostToDevice));
	free(h);
}

struct bench {
	fw_mat *t1, *t3, *t2;	/* device tables, one entry an expert */
	int32_t *idx;		/* SETS x SLOTS expert ids */
	float *x, *ya, *yb;
	uint32_t *out, reps;
	cudaEvent_t e0, e1;
};

/* us a launch of @launch(idx of the set), over the sets in turn */
template <typename F> static double time_us(const bench &b, F launch)
{
	float ms;

	for (uint32_t i = 0; i < SETS; i++)
		launch(b.idx + i * SLOTS);
	CHECK(cudaEventRecord(b.e0));
	for (uint32_t i = 0; i < b.reps; i++)
		launch(b.idx + i % SETS * SLOTS);
	CHECK(cudaEventRecord(b.e1));
	CHECK(cudaEventSynchronize(b.e1));
	CHECK(cudaGetLastError());
	CHECK(cudaEventElapsedTime(&ms, b.e0, b.e1));
	return ms * 1e3 / b.reps;
}

static void row(const char *what, double us, double mb, double anchor_us)
{
	printf("  %-34s %8.2f us %7.0f GB/s", what, us, mb / us * 1e3);
	if (anchor_us > 0)
		printf("  %.2f of the contiguous read", anchor_us / us);
	printf("\n");
}

/* the three at one shape: @nmat matrices (tab_a's, and tab_b's with two)
 * of rows x cols a slot, x per slot with one (w2's input is per slot) */
static void one_shape(const bench &b, const char *name, const fw_mat *ta, const fw_mat *tb,
		      uint32_t nmat, uint32_t rows, uint32_t cols)
{
	size_t codes = (size_t)rows * cols / 2, scales = (size_t)rows * cols / 32;
	double mb = (double)nmat * SLOTS * (codes + scales) / 1e6;
	uint32_t per_slot = nmat == 1;
	fw_route none = {};
	double a = time_us(b, [&](const int32_t *ix) {
		contiguous<<<dim3(codes / 16384, SLOTS, nmat), 256>>>(ta, tb, ix, 16384, b.out);
	});
	double k = time_us(b, [&](const int32_t *ix) {
		dsv4_experts_mma<<<dim3(rows / 64, SLOTS, nmat), 128>>>(ta, tb, ix, SLOTS, b.x, cols,
									per_slot, b.ya, b.yb, rows,
									none);
	});
	double l = time_us(b, [&](const int32_t *ix) {
		loads_only<<<dim3(rows / 64, SLOTS, nmat), 128>>>(ta, tb, ix, b.out);
	});

	printf("%s (%ux%u, FP4, %u a slot): %.1f MB a launch\n", name, rows, cols, nmat, mb);
	row("contiguous read (codes only)", a, mb * codes / (codes + scales), 0);
	row("dsv4_experts_mma", k, mb, a * (codes + scales) / codes);
	row("its loads only", l, mb, a * (codes + scales) / codes);
}

int main(int argc, char **argv)
{
	uint32_t E = 64, reps = 200;
	int bad = argc % 2 == 0;
	unsigned seed = 7;
	bench b;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--experts"))
			E = (uint32_t)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--reps"))
			reps = (uint32_t)strtoul(argv[i + 1], NULL, 10);
		else
			bad = 1;
	}
	if (bad || E < SLOTS || E > 512 || !reps) {
		fprintf(stderr, "usage: experts_bench [--experts %d..512] [--reps N]\n", SLOTS);
		return 2;
	}
	b.reps = reps;

	size_t c13 = (size_t)I * D / 2, s13 = (size_t)I * D / 32;	/* w1 or w3 */
	size_t c2 = (size_t)D * I / 2, s2 = (size_t)D * I / 32;
	size_t per = 2 * (c13 + s13) + c2 + s2;
	fw_mat *h1 = (fw_mat *)calloc(E, sizeof(fw_mat)), *h3 = (fw_mat *)calloc(E, sizeof(fw_mat));
	fw_mat *h2 = (fw_mat *)calloc(E, sizeof(fw_mat));
	uint8_t *pool;

	if (!h1 || !h3 || !h2) {
		fprintf(stderr, "experts_bench: out of memory\n");
		return 1;
	}
	CHECK(cudaMalloc(&pool, per * E));
	for (uint32_t e = 0; e < E; e++) {
		uint8_t *p = pool + per * e;
		fw_mat m = { 0, 0, FW_FP4, I, D, 0, 0, 0 };

		fill(p, c13, s13, &seed);
		fill(p + c13 + s13, c13, s13, &seed);
		fill(p + 2 * (c13 + s13), c2, s2, &seed);
		/* each matrix: codes, then its scales */
		m.data = (uint64_t)p;
		m.scale = (uint64_t)(p + c13);
		h1[e] = m;
		m.data = (uint64_t)(p + c13 + s13);
		m.scale = (uint64_t)(p + 2 * c13 + s13);
		h3[e] = m;
		m.data = (uint64_t)(p + 2 * (c13 + s13));
		m.scale = (uint64_t)(p + 2 * (c13 + s13) + c2);
		m.rows = D;
		m.cols = I;
		h2[e] = m;
	}
	CHECK(cudaMalloc(&b.t1, E * sizeof(fw_mat)));
	CHECK(cudaMalloc(&b.t3, E * sizeof(fw_mat)));
	CHECK(cudaMalloc(&b.t2, E * sizeof(fw_mat)));
	CHECK(cudaMemcpy(b.t1, h1, E * sizeof(fw_mat), cudaMemcpyHostToDevice));
	CHECK(cudaMemcpy(b.t3, h3, E * sizeof(fw_mat), cudaMemcpyHostToDevice));
	CHECK(cudaMemcpy(b.t2, h2, E * sizeof(fw_mat), cudaMemcpyHostToDevice));
	{
		int32_t hi[SETS * SLOTS];

		for (uint32_t i = 0; i < SETS; i++)
			for (uint32_t j = 0; j < SLOTS; j++) {
				int dup;

				do {	/* distinct experts in a set, as the router picks */
					seed = seed * 1103515245u + 12345u;
					hi[i * SLOTS + j] = (int32_t)((seed >> 16) % E);
					dup = 0;
					for (uint32_t k = 0; k < j; k++)
						dup |= hi[i * SLOTS + k] == hi[i * SLOTS + j];
				} while (dup);
			}
		CHECK(cudaMalloc(&b.idx, sizeof(hi)));
		CHECK(cudaMemcpy(b.idx, hi, sizeof(hi), cudaMemcpyHostToDevice));
	}
	{
		float *hx = (float *)malloc(SLOTS * D * sizeof(float));

		for (uint32_t i = 0; hx && i < SLOTS * D; i++)
			hx[i] = sinf(i * 0.37f) * (1 + i / 128 % 5);
		CHECK(cudaMalloc(&b.x, SLOTS * D * sizeof(float)));
		CHECK(hx ? cudaMemcpy(b.x, hx, SLOTS * D * sizeof(float), cudaMemcpyHostToDevice) :
			   cudaErrorMemoryAllocation);
		free(hx);
	}
	CHECK(cudaMalloc(&b.ya, SLOTS * D * sizeof(float)));
	CHECK(cudaMalloc(&b.yb, SLOTS * D * sizeof(float)));
	CHECK(cudaMalloc(&b.out, sizeof(uint32_t)));
	CHECK(cudaEventCreate(&b.e0));
	CHECK(cudaEventCreate(&b.e1));

	double copy_gbs;
	{
		size_t n = (size_t)1 << 30;
		void *src, *dst;
		float ms;

		CHECK(cudaMalloc(&src, n));
		CHECK(cudaMalloc(&dst, n));
		CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice));
		CHECK(cudaEventRecord(b.e0));
		for (int i = 0; i < 5; i++)
			CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice));
		CHECK(cudaEventRecord(b.e1));
		CHECK(cudaEventSynchronize(b.e1));
		CHECK(cudaEventElapsedTime(&ms, b.e0, b.e1));
		copy_gbs = 2.0 * n * 5 / (ms * 1e-3) / 1e9;
		CHECK(cudaFree(src));
		CHECK(cudaFree(dst));
	}
	cudaDeviceProp prop;

	CHECK(cudaGetDeviceProperties(&prop, 0));
	printf("experts_bench: %s (%d SMs), %u experts, %d slots a launch, %u launches each; "
	       "device copy %.0f GB/s\n", prop.name, prop.multiProcessorCount, E, SLOTS, reps,
	       copy_gbs);

	/* w1 and w3: one launch of both, as decode's (routed already); w2 */
	one_shape(b, "w1+w3", b.t1, b.t3, 2, I, D);
	one_shape(b, "w2", b.t2, b.t2, 1, D, I);
	return 0;
}
