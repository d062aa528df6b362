// SPDX-License-Identifier: MIT
/*
 * The question behind the CUDA backend's decode gap (firmware/README.md,
 * "Not done"): decode is a chain of dependent kernels, and its weight
 * GEMVs reach half the bandwidth the head reaches with the same code.  Is
 * the kernel boundary what costs, and would one persistent kernel that
 * streams the next matrix while it waits win it back?
 *
 * A chain of one-row FP8 GEMVs with Flash's shapes (per layer: 1024x4096,
 * 32768x1024, 1024x32768, 8192x1024, 4096x8192, 2048x4096, 4096x2048; each
 * matrix's input the previous one's output), run three ways:
 *   launches:   a kernel per matrix, replayed from a CUDA graph (as decode);
 *   persistent: one cooperative kernel, a grid barrier between matrices;
 *   prefetch:   the same, each warp's first weights of the next matrix
 *               loaded before it waits at the barrier.
 * Each against the HBM roofline (weight bytes / device copy bandwidth,
 * measured in the same run), and the three outputs compared (the same
 * sums in the same order: equal to the bit).  A benchmark: it asserts
 * nothing about speed.
 *   gemv_chain [--layers N] [--reps N]
 * Built by `make gpu-kit` into build/gpu-kit/gemv_chain (nvcc, CUDA
 * runtime linked statically); run on the GPU machine.
 */
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                          \
	do {                                                                              \
		cudaError_t e_ = (x);                                                     \
		if (e_ != cudaSuccess) {                                                  \
			fprintf(stderr, "gemv_chain: %s: %s\n", #x, cudaGetErrorString(e_)); \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

enum { PIECES = 4, MAX_MATS = 64 };

struct mat {
	const uint8_t *w;	/* FP8 e4m3 [rows, cols] */
	float scale;		/* keeps the chain's values near 1 */
	uint32_t rows, cols;
};

struct chain {
	struct mat m[MAX_MATS];
	const float *in[MAX_MATS];
	float *out[MAX_MATS];
	uint32_t n;
};

static __device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o; o /= 2)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* the weights of @row a lane loads first: PIECES pieces of 16 bytes */
static __device__ __forceinline__ void first_pieces(const mat &m, uint32_t row, uint4 *q)
{
	uint32_t lane = threadIdx.x % 32, pieces = m.cols / 16;
	const uint4 *w = (const uint4 *)(m.w + (size_t)row * m.cols);

#pragma unroll
	for (int p = 0; p < PIECES; p++) {
		uint32_t c = lane + 32 * p;

		q[p] = c < pieces ? w[c] : make_uint4(0, 0, 0, 0);
	}
}

/* y[row] = scale * W[row] . x by one warp, @q: its first pieces, loaded */
static __device__ __forceinline__ void row_dot(const mat &m, uint32_t row, const float *x,
					       float *y, uint4 *q)
{
	uint32_t lane = threadIdx.x % 32, pieces = m.cols / 16;
	const uint4 *w = (const uint4 *)(m.w + (size_t)row * m.cols);
	float acc = 0.f;

	for (uint32_t base = 0; base < pieces; base += 32 * PIECES) {
		if (base) {
#pragma unroll
			for (int p = 0; p < PIECES; p++) {
				uint32_t c = base + lane + 32 * p;

				q[p] = c < pieces ? w[c] : make_uint4(0, 0, 0, 0);
			}
		}
#pragma unroll
		for (int p = 0; p < PIECES; p++) {
			uint32_t c = base + lane + 32 * p;
			const uint32_t u[4] = { q[p].x, q[p].y, q[p].z, q[p].w };

			if (c >= pieces)
				continue;
#pragma unroll
			for (int k = 0; k < 8; k++) {
				__half2_raw h = __nv_cvt_fp8x2_to_halfraw2(
					(__nv_fp8x2_storage_t)(u[k / 2] >> (16 * (k % 2))), __NV_E4M3);
				float2 f = __half22float2(*(const __half2 *)&h);
				float2 xv = *(const float2 *)(x + (size_t)c * 16 + 2 * k);

				acc += f.x * xv.x;
				acc += f.y * xv.y;
			}
		}
	}
	acc = warp_sum(acc);
	if (lane == 0)
		y[row] = acc * m.scale;
}

/* launches: grid ceil(rows / 8), 256 threads, a row per warp */
__global__ void __launch_bounds__(256) gemv_one(mat m, const float *x, float *y)
{
	uint32_t row = blockIdx.x * 8 + threadIdx.x / 32;
	uint4 q[PIECES];

	if (row >= m.rows)
		return;
	first_pieces(m, row, q);
	row_dot(m, row, x, y, q);
}

/* every block of the grid arrives before any leaves (thread 0 spins on
 * a generation word; a cooperative launch keeps the whole grid resident) */
static __device__ void grid_barrier(unsigned int *count, volatile unsigned int *gen)
{
	__syncthreads();
	if (threadIdx.x == 0) {
		unsigned int g = *gen;

		__threadfence();
		if (atomicAdd(count, 1u) == gridDim.x - 1) {
			atomicExch(count, 0u);
			__threadfence();
			atomicAdd((unsigned int *)gen, 1u);
		} else {
			while (*gen == g)
				;
		}
		__threadfence();
	}
	__syncthreads();
}

/* persistent: the whole chain, warps striding over each matrix's rows */
__global__ void __launch_bounds__(256) gemv_chain(const chain *ch, unsigned int *bar,
						 int prefetch)
{
	uint32_t warps = gridDim.x * 8, warp = blockIdx.x * 8 + threadIdx.x / 32;
	uint4 q[PIECES];
	int have = 0;

	for (uint32_t i = 0; i < ch->n; i++) {
		const mat m = ch->m[i];

		for (uint32_t row = warp; row < m.rows; row += warps) {
			if (!have)
				first_pieces(m, row, q);
			have = 0;
			row_dot(m, row, ch->in[i], ch->out[i], q);
		}
		if (i + 1 == ch->n)
			break;
		/* the weights do not depend on the barrier: start on them */
		if (prefetch && warp < ch->m[i + 1].rows) {
			first_pieces(ch->m[i + 1], warp, q);
			have = 1;
		}
		grid_barrier(bar, bar + 1);
	}
}

/* every vector but the chain's input to NaN (bytes 0xff) */
static void poison(float *const *vec, uint32_t n, size_t bytes, cudaStream_t st)
{
	for (uint32_t i = 1; i <= n; i++)
		CHECK(cudaMemsetAsync(vec[i], 0xff, bytes, st));
}

static double now_ms(cudaEvent_t a, cudaEvent_t b)
{
	float ms = 0;

	CHECK(cudaEventElapsedTime(&ms, a, b));
	return ms;
}

int main(int argc, char **argv)
{
	static const uint32_t shape[][2] = { { 1024, 4096 }, { 32768, 1024 }, { 1024, 32768 },
					     { 8192, 1024 },  { 4096, 8192 },  { 2048, 4096 },
					     { 4096, 2048 } };
	const uint32_t per = sizeof(shape) / sizeof(shape[0]);
	uint32_t layers = 5, reps = 20;
	cudaDeviceProp prop;
	chain h;
	size_t bytes = 0;

	int bad = argc % 2 == 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--layers"))
			layers = (uint32_t)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--reps"))
			reps = (uint32_t)strtoul(argv[i + 1], NULL, 10);
		else
			bad = 1;
	}
	if (bad || !layers || layers > MAX_MATS / per || !reps) {
		fprintf(stderr, "usage: gemv_chain [--layers 1..%u] [--reps N]\n", MAX_MATS / per);
		return 2;
	}
	CHECK(cudaGetDeviceProperties(&prop, 0));

	/* the anchor: device-to-device copy of 1 GiB, read + write counted */
	double bw;
	{
		size_t n = (size_t)1 << 30;
		void *a, *b;
		cudaEvent_t e0, e1;

		CHECK(cudaMalloc(&a, n));
		CHECK(cudaMalloc(&b, n));
		CHECK(cudaMemset(a, 1, n));
		CHECK(cudaEventCreate(&e0));
		CHECK(cudaEventCreate(&e1));
		CHECK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
		CHECK(cudaEventRecord(e0));
		for (int i = 0; i < 5; i++)
			CHECK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
		CHECK(cudaEventRecord(e1));
		CHECK(cudaEventSynchronize(e1));
		bw = 2.0 * n * 5 / (now_ms(e0, e1) * 1e-3);
		CHECK(cudaFree(a));
		CHECK(cudaFree(b));
	}

	/* weights: e4m3 codes of magnitude 0.5 .. 7.5, random signs */
	memset(&h, 0, sizeof(h));
	h.n = layers * per;
	float *vec[MAX_MATS + 1];
	size_t maxv = 0;

	for (uint32_t i = 0; i < h.n; i++) {
		uint32_t r = shape[i % per][0], c = shape[i % per][1];
		uint8_t *w = (uint8_t *)malloc((size_t)r * c), *dw;
		uint32_t s = 2463534242u + i;

		if (!w)
			return 1;
		for (size_t k = 0; k < (size_t)r * c; k++) {
			s ^= s << 13;
			s ^= s >> 17;
			s ^= s << 5;
			w[k] = (uint8_t)((s & 0x80) | (0x30 + (s >> 8) % 0x20));
		}
		CHECK(cudaMalloc(&dw, (size_t)r * c));
		CHECK(cudaMemcpy(dw, w, (size_t)r * c, cudaMemcpyHostToDevice));
		free(w);
		h.m[i] = mat{ dw, 1.0f / (3.0f * sqrtf((float)c)), r, c };
		bytes += (size_t)r * c;
		if (r > maxv)
			maxv = r;
		if (c > maxv)
			maxv = c;
	}
	for (uint32_t i = 0; i <= h.n; i++) {
		CHECK(cudaMalloc(&vec[i], maxv * sizeof(float)));
		CHECK(cudaMemset(vec[i], 0, maxv * sizeof(float)));
	}
	{
		float *x0 = (float *)malloc(4096 * sizeof(float));

		for (int k = 0; k < 4096; k++)
			x0[k] = (float)((k * 2654435761u) % 2001) / 1000.0f - 1.0f;
		CHECK(cudaMemcpy(vec[0], x0, 4096 * sizeof(float), cudaMemcpyHostToDevice));
		free(x0);
	}
	for (uint32_t i = 0; i < h.n; i++) {
		h.in[i] = vec[i];
		h.out[i] = vec[i + 1];
	}
	double roof = bytes / bw * 1e3;

	printf("device: %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
	printf("anchor: device copy bandwidth %.1f GB/s (1 GiB cudaMemcpy, read + write)\n",
	       bw * 1e-9);
	printf("chain: %u layers x %u one-row FP8 GEMVs, %.1f MB of weights: roofline %.3f ms\n",
	       layers, per, bytes * 1e-6, roof);

	cudaStream_t st;
	cudaEvent_t e0, e1;
	cudaGraph_t g;
	cudaGraphExec_t ge;
	size_t vb = maxv * sizeof(float);
	float *res[3];

	/* a blocking stream: the setup's copies and memsets on the legacy
	 * stream are done before its kernels start */
	CHECK(cudaStreamCreate(&st));
	CHECK(cudaDeviceSynchronize());
	CHECK(cudaEventCreate(&e0));
	CHECK(cudaEventCreate(&e1));
	for (int k = 0; k < 3; k++)
		res[k] = (float *)malloc(vb);

	/* launches, from a graph */
	CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
	for (uint32_t i = 0; i < h.n; i++)
		gemv_one<<<(h.m[i].rows + 7) / 8, 256, 0, st>>>(h.m[i], h.in[i], h.out[i]);
	CHECK(cudaStreamEndCapture(st, &g));
	CHECK(cudaGraphInstantiate(&ge, g, 0));
	poison(vec, h.n, vb, st);
	CHECK(cudaGraphLaunch(ge, st));
	CHECK(cudaStreamSynchronize(st));
	CHECK(cudaMemcpy(res[0], vec[h.n], vb, cudaMemcpyDeviceToHost));
	CHECK(cudaEventRecord(e0, st));
	for (uint32_t r = 0; r < reps; r++)
		CHECK(cudaGraphLaunch(ge, st));
	CHECK(cudaEventRecord(e1, st));
	CHECK(cudaEventSynchronize(e1));
	double t_launch = now_ms(e0, e1) / reps;

	/* persistent, without and with the prefetch */
	chain *dch;
	unsigned int *bar;
	int per_sm = 0;
	double t_pers[2];

	CHECK(cudaMalloc(&dch, sizeof(h)));
	CHECK(cudaMemcpy(dch, &h, sizeof(h), cudaMemcpyHostToDevice));
	CHECK(cudaMalloc(&bar, 2 * sizeof(unsigned int)));
	CHECK(cudaMemset(bar, 0, 2 * sizeof(unsigned int)));
	CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv_chain, 256, 0));
	unsigned int blocks = (unsigned int)(per_sm * prop.multiProcessorCount);

	for (int pf = 0; pf < 2; pf++) {
		void *args[] = { &dch, &bar, &pf };

		/* the checked run starts from NaN everywhere but the input: a
		 * matrix read before its input was written shows */
		CHECK(cudaMemset(bar, 0, 2 * sizeof(unsigned int)));
		poison(vec, h.n, vb, st);
		CHECK(cudaLaunchCooperativeKernel((void *)gemv_chain, blocks, 256, args, 0, st));
		CHECK(cudaStreamSynchronize(st));
		CHECK(cudaMemcpy(res[1 + pf], vec[h.n], vb, cudaMemcpyDeviceToHost));
		CHECK(cudaEventRecord(e0, st));
		for (uint32_t r = 0; r < reps; r++)
			CHECK(cudaLaunchCooperativeKernel((void *)gemv_chain, blocks, 256, args, 0,
							  st));
		CHECK(cudaEventRecord(e1, st));
		CHECK(cudaEventSynchronize(e1));
		t_pers[pf] = now_ms(e0, e1) / reps;
	}

	uint32_t nout = h.m[h.n - 1].rows;
	double worst = 0, big = 0;
	int same = 1;

	for (uint32_t k = 0; k < nout; k++) {
		double a = res[0][k];

		if (isnan(a))
			same = 0;
		big = fabs(a) > big ? fabs(a) : big;
		for (int v = 1; v < 3; v++)
			worst = fabs(res[v][k] - a) > worst ? fabs(res[v][k] - a) : worst;
	}
	for (int v = 1; v < 3; v++)
		same &= !memcmp(res[v], res[0], (size_t)nout * sizeof(float));
	printf("| mode | ms per chain | GB/s | ratio to the roofline |\n|---|---|---|---|\n");
	printf("| launches (graph, %u kernels) | %.3f | %.0f | %.2f |\n", h.n, t_launch,
	       bytes / (t_launch * 1e6), roof / t_launch);
	printf("| persistent (%u blocks, grid barriers) | %.3f | %.0f | %.2f |\n", blocks,
	       t_pers[0], bytes / (t_pers[0] * 1e6), roof / t_pers[0]);
	printf("| persistent, next weights before the barrier | %.3f | %.0f | %.2f |\n", t_pers[1],
	       bytes / (t_pers[1] * 1e6), roof / t_pers[1]);
	printf("outputs: largest difference %.3g (largest value %.3g): %s\n", worst, big,
	       same ? "equal to the bit, no NaN" : "DIFFER (or NaN)");
	return same ? 0 : 1;
}
