// SPDX-License-Identifier: MIT
/*
 * The routed experts' FP4 GEMV with the weights staged in shared memory
 * by the TMA, against the register-fed form and a plain read, at the
 * w1+w3 launch's size (six slots of two 2048 x 4096 matrices: 24576 rows
 * of 4096 FP4 columns, per-32 ue8m0 scales).
 *
 * dsv4_experts_mma holds its bytes in flight in registers, so more warps
 * (shorter chains) meant fewer loads in flight (firmware/README.md,
 * twelfth session).  Here a producer warp streams each row block's
 * weights into 2-8 stages of shared memory over an mbarrier pipeline and
 * compute warps take them from there, so the bytes in flight cost no
 * registers.  The forms:
 *
 * - fp4_tma: 1-D cp.async.bulk, one 256-byte and one 16-byte copy a row
 *   and stage (measured at half the read: too many small copies);
 * - fp4_tmap: 2-D tensor maps (one box of codes, 128B swizzle, and one of
 *   scales a stage), with MATH: the firmware's e4m3 mma.sync, f16 mmas
 *   (weights through e4m3 and cvt, or by byte permute), or wgmma (native
 *   e4m3, A from registers, x as B in shared memory); SPLIT: 2 or 4 warps
 *   a 16-row group, each on part of a stage's columns; MODE: the math
 *   alone (no copies) or the copies alone (no math), to see which bounds.
 *
 * Each GEMV's y is checked against a CPU sum in double (|y - ref| /
 * sum|terms| < 1e-5); the times are us a launch and GB/s of code + scale
 * bytes, the matrix rotating over four copies so that L2 holds little of
 * the next launch's.  A benchmark: it asserts nothing about speed.  Built
 * with the firmware (nvcc, compute_90a) into build/bin and the gpu-kit;
 * run on the GPU machine: experts_tma.  Results:
 * tests/bench/results/gpu-ab-h100-2026-12-07-14.log.
 */
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include <cuda_runtime.h>
#include <cuda.h>
#include <cuda_fp16.h>
#include <cudaTypedefs.h>
#define CK(x)                                                                                      \
	do {                                                                                       \
		cudaError_t e = (x);                                                               \
		if (e) {                                                                           \
			printf("%s: %s\n", #x, cudaGetErrorString(e));                             \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* fp4x8_to_e4m3(), mma_e4m3() and e8m0() as dsv4_experts_mma has them */
#include "../../firmware/kernels/experts_mma.cu"

static __device__ __forceinline__ uint32_t sm(const void *p)
{
	return (uint32_t)__cvta_generic_to_shared(p);
}
static __device__ __forceinline__ void mb_init(uint64_t *b, uint32_t n)
{
	asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(sm(b)), "r"(n));
}
static __device__ __forceinline__ void mb_expect(uint64_t *b, uint32_t tx)
{
	asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(sm(b)), "r"(tx)
		     : "memory");
}
static __device__ __forceinline__ void mb_arrive(uint64_t *b)
{
	asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(sm(b)) : "memory");
}
static __device__ __forceinline__ void mb_wait(uint64_t *b, uint32_t par)
{
	asm volatile("{\n.reg .pred p;\nW: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], "
		     "%1;\n@!p bra W;\n}" ::"r"(sm(b)),
		     "r"(par)
		     : "memory");
}
static __device__ __forceinline__ void bulk(void *dst, const void *src, uint32_t n, uint64_t *b)
{
	asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], "
		     "[%1], %2, [%3];" ::"r"(sm(dst)),
		     "l"(src), "r"(n), "r"(sm(b))
		     : "memory");
}

/* the stages this block runs: its row blocks (blockIdx.x, + gridDim.x, ...) times @nst */
static __device__ __forceinline__ uint32_t stages_of(uint32_t nrb, uint32_t nst)
{
	uint32_t mine = blockIdx.x < nrb ? (nrb - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;

	return mine * nst;
}
/* the first row of stage @t's row block (@rb rows a block) */
static __device__ __forceinline__ uint32_t stage_row0(uint32_t t, uint32_t nst, uint32_t rb)
{
	return (blockIdx.x + (t / nst) * gridDim.x) * rb;
}
/* thread 0: each stage's full barrier (one arrival + the bytes) and empty one (@consumers) */
static __device__ __forceinline__ void pipe_init(uint64_t *full, uint64_t *empty, int nst,
						 uint32_t consumers)
{
	if (threadIdx.x == 0) {
		for (int s = 0; s < nst; s++) {
			mb_init(&full[s], 1);
			mb_init(&empty[s], consumers);
		}
		asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
	}
}

#define SCOLS 512 /* columns a stage (256 code bytes a row) */
#define PITCH 272 /* a stage row's bytes in smem: 256 + 16 (banks) */
/* y[r] = sum_c w[r,c] * x[c]: w FP4 (cols/2 bytes a row), scales one byte per 32 (cols/32 a row),
 * xq: x's e4m3 codes in the weights' [0 2 4 6 1 3 5 7] order, one x scale (1.0).  NCW compute
 * warps of 16 rows each + 1 producer warp; the block walks row blocks blockIdx.x, + gridDim.x, ...
 * with one stage sequence, so a persistent grid keeps its pipeline full across row blocks. */
template <int NCW, int NST>
__global__ void __launch_bounds__(32 * (NCW + 1))
    fp4_tma(const uint8_t *__restrict__ w, const uint8_t *__restrict__ sc,
	    const uint8_t *__restrict__ xqg, float *__restrict__ y, uint32_t rows, uint32_t cols)
{
	const uint32_t RB = NCW * 16;
	extern __shared__ __align__(128) uint8_t smem[];
	uint8_t *codes = smem;			 /* NST x RB x PITCH */
	uint8_t *scl = codes + NST * RB * PITCH; /* NST x RB x 16 */
	uint8_t *xq = scl + NST * RB * 16;	 /* cols */
	uint64_t *full = (uint64_t *)(xq + cols), *empty = full + NST;
	uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	uint32_t nst = cols / SCOLS, nrb = rows / RB;
	uint32_t total = stages_of(nrb, nst);
	pipe_init(full, empty, NST, NCW);
	for (uint32_t i = threadIdx.x * 16; i < cols; i += blockDim.x * 16)
		*(uint4 *)(xq + i) = *(const uint4 *)(xqg + i);
	__syncthreads();
	if (warp == NCW) {
		/* producer: stage t's RB rows x 256 code bytes and RB x 16 scale bytes */
		for (uint32_t t = 0; t < total; t++) {
			uint32_t s = t % NST, k = t % nst;
			uint32_t r0 = stage_row0(t, nst, RB);
			if (t >= NST)
				mb_wait(&empty[s], ((t / NST) - 1) & 1);
			if (lane == 0)
				mb_expect(&full[s], RB * (256 + 16));
			__syncwarp();
			for (uint32_t r = lane; r < RB; r += 32) {
				bulk(codes + (s * RB + r) * PITCH,
				     w + (size_t)(r0 + r) * (cols / 2) + k * 256, 256, &full[s]);
				bulk(scl + (s * RB + r) * 16,
				     sc + (size_t)(r0 + r) * (cols / 32) + k * 16, 16, &full[s]);
			}
		}
		return;
	}
	uint32_t g = lane / 4, q = lane % 4, rl = warp * 16 + g;
	float acc_g = 0.f, acc_g8 = 0.f;
	for (uint32_t t = 0; t < total; t++) {
		uint32_t s = t % NST, k = t % nst;
		mb_wait(&full[s], (t / NST) & 1);
		const uint8_t *cg = codes + (s * RB + rl) * PITCH, *cg8 = cg + 8 * PITCH;
		const uint8_t *sg = scl + (s * RB + rl) * 16, *sg8 = sg + 8 * 16;
#pragma unroll
		for (int c = 0; c < 4; c++) { /* 128-column chunks of the stage */
			uint32_t swg = *(const uint32_t *)(sg + c * 4),
				 swg8 = *(const uint32_t *)(sg8 + c * 4);
			float tg = 0.f, tg8 = 0.f;
#pragma unroll
			for (int blk = 0; blk < 4; blk++) {
				uint32_t a[4], bx[2];
				float d[4];
				uint32_t wg = *(const uint32_t *)(cg + c * 64 + blk * 16 + q * 4);
				uint32_t wg8 = *(const uint32_t *)(cg8 + c * 64 + blk * 16 + q * 4);
				uint2 xv = *(const uint2 *)(xq + (size_t)(k * 4 + c) * 128 +
							    blk * 32 + 8 * q);
				fp4x8_to_e4m3(wg, a[0], a[2]);
				fp4x8_to_e4m3(wg8, a[1], a[3]);
				bx[0] = xv.x;
				bx[1] = xv.y;
				mma_e4m3(d, a, bx);
				tg += d[0] * e8m0((uint8_t)(swg >> (8 * blk)));
				tg8 += d[2] * e8m0((uint8_t)(swg8 >> (8 * blk)));
			}
			acc_g += tg;
			acc_g8 += tg8;
		}
		__syncwarp();
		if (lane == 0)
			mb_arrive(&empty[s]);
		if (k == nst - 1) {
			uint32_t r0 = stage_row0(t, nst, RB);
			if (q == 0) {
				y[r0 + rl] = acc_g * 64.f;
				y[r0 + rl + 8] = acc_g8 * 64.f;
			}
			acc_g = acc_g8 = 0.f;
		}
	}
}
/* 2-D tensor maps: one cp.async.bulk.tensor a stage for the codes (two 128-byte-wide boxes,
 * 128B swizzle, so the lanes' reads below hit 32 banks) and one for the scales */
static __device__ __forceinline__ void tmap2d(void *dst, const CUtensorMap *m, int x, int y,
					      uint64_t *b)
{
	asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::"
		     "bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(sm(dst)),
		     "l"((uint64_t)m), "r"(x), "r"(y), "r"(sm(b))
		     : "memory");
}
/* a swizzled (128B) box of 128-byte rows: byte b of row r */
static __device__ __forceinline__ uint32_t swz(uint32_t r, uint32_t b)
{
	return r * 128 + ((((b >> 4) ^ r) & 7) << 4) + (b & 15);
}
/* d += A (16x16 f16) . B (16x8 f16), F32 */
static __device__ __forceinline__ void mma_f16(float *d, const uint32_t *a, uint32_t b0, uint32_t b1)
{
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
		     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
		     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* two e4m3 codes (the low 16 bits) as f16x2 */
static __device__ __forceinline__ uint32_t e4m3x2_f16x2(uint32_t v)
{
	uint32_t r;
	asm("{\n.reg .b16 t;\ncvt.u16.u32 t, %1;\ncvt.rn.f16x2.e4m3x2 %0, t;\n}" : "=r"(r) : "r"(v));
	return r;
}
/* eight e2m1 codes (element i in bits 4i..) as f16 times 2^-14, pairs (0,4) (1,5) (2,6) (3,7):
 * a code's f16 high byte is sign << 7 | magnitude << 1 (a byte permute from an 8-entry table)
 * and its low byte 0 */
static __device__ __forceinline__ void fp4x8_to_f16(uint32_t u, uint32_t *h)
{
	const uint32_t t0 = 0x06040200u, t1 = 0x0e0c0a08u;
	uint32_t v = __byte_perm(u, 0, 0x3120); /* bytes 0 2 1 3: nibbles 0 1 4 5 2 3 6 7 */
	h[0] = __byte_perm(t0, t1, (v << 4) & 0x7070u) | ((u << 12) & 0x80008000u);
	h[1] = __byte_perm(t0, t1, v & 0x7070u) | ((u << 8) & 0x80008000u);
	h[2] = __byte_perm(t0, t1, (v >> 12) & 0x7070u) | ((u << 4) & 0x80008000u);
	h[3] = __byte_perm(t0, t1, (v >> 16) & 0x7070u) | (u & 0x80008000u);
}
/* d = A (64x32 e4m3, this warp's 16 rows in a[], as mma.m16n8k32 holds them) . B (32x8 e4m3 in
 * shared memory at @desc); a warpgroup's four warps issue it together */
static __device__ __forceinline__ void wgmma_x8(float *d, const uint32_t *a, uint64_t desc)
{
	asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"
		     "wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 "
		     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, %8, p, 1, 1;\n}"
		     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc)
		     : "memory");
}
/* a no-swizzle descriptor: start, both core-matrix strides 128 bytes (B's two core matrices
 * along K are 128 bytes apart; N = 8 has one along N) */
static __device__ __forceinline__ uint64_t wg_desc(const void *p)
{
	return (uint64_t)((sm(p) >> 4) & 0x3fff) | ((uint64_t)(128 >> 4) << 16) |
	       ((uint64_t)(128 >> 4) << 32);
}
/* MATH 3: wgmma (native e4m3 on sm_90a) with A from registers, x as B in shared memory
 * (each 32-column block: two 8 x 16-byte core matrices, x in every row);
 * MATH 0: e4m3 mma (x as e4m3 codes); 1: f16 mma, the weights through e4m3 and cvt, x as f16
 * in [0 2 4 6 1 3 5 7] order; 2: f16 mma, the weights by fp4x8_to_f16, x as f16 in
 * [0 4 1 5 2 6 3 7] order.
 * MODE 0: the GEMV; 1: its math alone (no copies, no waits: y is garbage); 2: its copies
 * alone (the waits and arrivals, no math) */
/* SPLIT: warps a 16-row group, each taking 4 / SPLIT of a stage's four 128-column chunks; their
 * sums meet in shared memory at the end of the row block */
template <int NCW, int NST, int MODE = 0, int MATH = 0, int SPLIT = 1>
__global__ void __launch_bounds__(32 * (NCW + 1))
    fp4_tmap(const __grid_constant__ CUtensorMap mw, const __grid_constant__ CUtensorMap ms,
	     uint32_t row_base, const uint8_t *__restrict__ xqg, float *__restrict__ y,
	     uint32_t rows, uint32_t cols)
{
	const uint32_t RG = NCW / SPLIT, RB = RG * 16, CB = RB * 256, SB = RB * 16;
	__shared__ float red[SPLIT][RB];
	extern __shared__ __align__(1024) uint8_t smem_raw[];
	uint8_t *smem = (uint8_t *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
	uint8_t *codes = smem;		   /* NST x (2 boxes of RB x 128) */
	uint8_t *scl = codes + NST * CB;   /* NST x RB x 16 */
	uint8_t *xq = scl + NST * SB;	   /* xbytes: x's codes, halves or B blocks */
	uint32_t xbytes = MATH == 3 ? 8 * cols : MATH ? 2 * cols : cols;
	uint64_t *full = (uint64_t *)(xq + xbytes), *empty = full + NST;
	uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	uint32_t nst = cols / SCOLS, nrb = rows / RB;
	uint32_t total = stages_of(nrb, nst);
	pipe_init(full, empty, NST, NCW);
	if constexpr (MATH == 3) {
		/* byte k of row n of block b's B: x code in mma k order, from xqg's
		 * [0 2 4 6 1 3 5 7] layout */
		for (uint32_t i = threadIdx.x; i < 8 * cols; i += blockDim.x) {
			uint32_t b = i / 256, cm = (i / 128) % 2, k = i % 16;
			xq[i] = xqg[b * 32 + 8 * (k / 4) + 4 * cm + k % 4];
		}
		/* written by the threads, read by wgmma (the async proxy) */
		asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
	} else {
		for (uint32_t i = threadIdx.x * 16; i < xbytes; i += blockDim.x * 16)
			*(uint4 *)(xq + i) = *(const uint4 *)(xqg + i);
	}
	__syncthreads();
	if (warp == NCW) {
		if (lane == 0 && MODE != 1) {
			for (uint32_t t = 0; t < total; t++) {
				uint32_t s = t % NST, k = t % nst;
				int r0 = (int)(row_base + stage_row0(t, nst, RB));
				if (t >= NST)
					mb_wait(&empty[s], ((t / NST) - 1) & 1);
				mb_expect(&full[s], CB + SB);
				tmap2d(codes + s * CB, &mw, (int)k * 256, r0, &full[s]);
				tmap2d(codes + s * CB + CB / 2, &mw, (int)k * 256 + 128, r0, &full[s]);
				tmap2d(scl + s * SB, &ms, (int)k * 16, r0, &full[s]);
			}
		}
		return;
	}
	uint32_t g = lane / 4, q = lane % 4, part = warp / RG, rl = (warp % RG) * 16 + g;
	float acc_g = 0.f, acc_g8 = 0.f;
	for (uint32_t t = 0; t < total; t++) {
		uint32_t s = t % NST, k = t % nst;
		if (MODE != 1)
			mb_wait(&full[s], (t / NST) & 1);
		const uint8_t *sg = scl + (s * RB + rl) * 16, *sg8 = sg + 8 * 16;
#pragma unroll
		for (int cc = 0; cc < (MODE == 2 ? 0 : 4 / SPLIT); cc++) {
			/* 128-column chunks: box c / 2, bytes (c % 2) * 64 */
			uint32_t c = part * (4 / SPLIT) + cc;
			const uint8_t *box = codes + s * CB + (c / 2) * (CB / 2);
			uint32_t swg = *(const uint32_t *)(sg + c * 4),
				 swg8 = *(const uint32_t *)(sg8 + c * 4);
			float tg = 0.f, tg8 = 0.f;
			if constexpr (MATH == 3) {
				uint32_t a[4][4];
				float d[4][4];
#pragma unroll
				for (int blk = 0; blk < 4; blk++) {
					uint32_t b = (c % 2) * 64 + blk * 16 + q * 4;
					uint32_t wg = *(const uint32_t *)(box + swz(rl, b));
					uint32_t wg8 = *(const uint32_t *)(box + swz(rl + 8, b));
					fp4x8_to_e4m3(wg, a[blk][0], a[blk][2]);
					fp4x8_to_e4m3(wg8, a[blk][1], a[blk][3]);
					d[blk][0] = d[blk][1] = d[blk][2] = d[blk][3] = 0.f;
				}
				asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
				for (int blk = 0; blk < 4; blk++)
					wgmma_x8(d[blk], a[blk],
						   wg_desc(xq + (size_t)((k * 4 + c) * 4 + blk) * 256));
				asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
				asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
				/* the sums are read only after the wait */
#pragma unroll
				for (int blk = 0; blk < 4; blk++)
#pragma unroll
					for (int i = 0; i < 4; i++)
						asm volatile("" : "+f"(d[blk][i])::"memory");
#pragma unroll
				for (int blk = 0; blk < 4; blk++) {
					tg += d[blk][0] * e8m0((uint8_t)(swg >> (8 * blk)));
					tg8 += d[blk][2] * e8m0((uint8_t)(swg8 >> (8 * blk)));
				}
			} else
#pragma unroll
			for (int blk = 0; blk < 4; blk++) {
				uint32_t a[4], bx[2], b = (c % 2) * 64 + blk * 16 + q * 4;
				float d[4] = { 0.f, 0.f, 0.f, 0.f };
				uint32_t wg = *(const uint32_t *)(box + swz(rl, b));
				uint32_t wg8 = *(const uint32_t *)(box + swz(rl + 8, b));
				size_t xo = (size_t)(k * 4 + c) * 128 + blk * 32 + 8 * q;
				if constexpr (MATH == 0) {
					uint2 xv = *(const uint2 *)(xq + xo);
					fp4x8_to_e4m3(wg, a[0], a[2]);
					fp4x8_to_e4m3(wg8, a[1], a[3]);
					bx[0] = xv.x;
					bx[1] = xv.y;
					mma_e4m3(d, a, bx);
				} else if constexpr (MATH == 1) {
					uint4 xv = *(const uint4 *)(xq + 2 * xo);
					uint32_t ev, od, ev8, od8;
					fp4x8_to_e4m3(wg, ev, od);
					fp4x8_to_e4m3(wg8, ev8, od8);
					uint32_t a1[4] = { e4m3x2_f16x2(ev), e4m3x2_f16x2(ev8),
							   e4m3x2_f16x2(ev >> 16),
							   e4m3x2_f16x2(ev8 >> 16) };
					uint32_t a2[4] = { e4m3x2_f16x2(od), e4m3x2_f16x2(od8),
							   e4m3x2_f16x2(od >> 16),
							   e4m3x2_f16x2(od8 >> 16) };
					mma_f16(d, a1, xv.x, xv.y);
					mma_f16(d, a2, xv.z, xv.w);
				} else {
					uint4 xv = *(const uint4 *)(xq + 2 * xo);
					uint32_t h[4], h8[4];
					fp4x8_to_f16(wg, h);
					fp4x8_to_f16(wg8, h8);
					uint32_t a1[4] = { h[0], h8[0], h[1], h8[1] };
					uint32_t a2[4] = { h[2], h8[2], h[3], h8[3] };
					mma_f16(d, a1, xv.x, xv.y);
					mma_f16(d, a2, xv.z, xv.w);
				}
				tg += d[0] * e8m0((uint8_t)(swg >> (8 * blk)));
				tg8 += d[2] * e8m0((uint8_t)(swg8 >> (8 * blk)));
			}
			acc_g += tg;
			acc_g8 += tg8;
		}
		__syncwarp();
		if (lane == 0 && MODE != 1)
			mb_arrive(&empty[s]);
		if (k == nst - 1) {
			uint32_t r0 = stage_row0(t, nst, RB);
			const float back = MATH == 2 ? 16384.f : 64.f;
			if (SPLIT > 1) {
				if (q == 0) {
					red[part][rl] = acc_g;
					red[part][rl + 8] = acc_g8;
				}
				asm volatile("bar.sync 1, %0;" ::"r"(NCW * 32) : "memory");
				if (part == 0 && q == 0) {
					for (int p2 = 1; p2 < SPLIT; p2++) {
						acc_g += red[p2][rl];
						acc_g8 += red[p2][rl + 8];
					}
				}
				asm volatile("bar.sync 1, %0;" ::"r"(NCW * 32) : "memory");
			}
			if (part == 0 && q == 0) {
				y[r0 + rl] = acc_g * back;
				y[r0 + rl + 8] = acc_g8 * back;
			}
			acc_g = acc_g8 = 0.f;
		}
	}
}
/* a tensor-map-fed form for main()'s table, its fields read off the template arguments */
typedef void (*fp4_map_kernel)(const CUtensorMap, const CUtensorMap, uint32_t, const uint8_t *,
			       float *, uint32_t, uint32_t);
struct map_form {
	const char *tag;
	fp4_map_kernel k;
	int ncw, nst, math, split;
};
template <int NCW, int NST, int MODE = 0, int MATH = 0, int SPLIT = 1>
static map_form map_form_of(const char *tag)
{
	return { tag, fp4_tmap<NCW, NST, MODE, MATH, SPLIT>, NCW, NST, MATH, SPLIT };
}
/* the register-fed form: each lane loads its 4 bytes a block straight from global, 4 chunks a step,
 * 2 steps in flight */
__global__ void __launch_bounds__(128)
    fp4_reg(const uint8_t *__restrict__ w, const uint8_t *__restrict__ sc,
	    const uint8_t *__restrict__ xqg, float *__restrict__ y, uint32_t rows, uint32_t cols)
{
	__shared__ __align__(16) uint8_t xq[4096];
	for (uint32_t i = threadIdx.x * 16; i < cols; i += blockDim.x * 16)
		*(uint4 *)(xq + i) = *(const uint4 *)(xqg + i);
	__syncthreads();
	uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
	uint32_t rg = blockIdx.x * 64 + warp * 16 + g, nch = cols / 128;
	const uint8_t *dg = w + (size_t)rg * (cols / 2), *dg8 = dg + 8 * (size_t)(cols / 2);
	const uint8_t *sg = sc + (size_t)rg * (cols / 32), *sg8 = sg + 8 * (size_t)(cols / 32);
	float acc_g = 0.f, acc_g8 = 0.f;
	uint32_t A[4][4], A8[4][4], S[4], S8[4];
	auto load = [&](uint32_t c0) {
#pragma unroll
		for (int u = 0; u < 4; u++) {
#pragma unroll
			for (int b = 0; b < 4; b++) {
				A[u][b] = *(const uint32_t *)(dg + (c0 + u) * 64 + b * 16 + q * 4);
				A8[u][b] =
				    *(const uint32_t *)(dg8 + (c0 + u) * 64 + b * 16 + q * 4);
			}
			S[u] = *(const uint32_t *)(sg + (c0 + u) * 4);
			S8[u] = *(const uint32_t *)(sg8 + (c0 + u) * 4);
		}
	};
	load(0);
	for (uint32_t c0 = 0; c0 < nch; c0 += 4) {
		uint32_t B[4][4], B8[4][4], T[4], T8[4];
#pragma unroll
		for (int u = 0; u < 4; u++) {
			for (int b = 0; b < 4; b++) {
				B[u][b] = A[u][b];
				B8[u][b] = A8[u][b];
			}
			T[u] = S[u];
			T8[u] = S8[u];
		}
		if (c0 + 4 < nch)
			load(c0 + 4);
#pragma unroll
		for (int u = 0; u < 4; u++) {
			float tg = 0.f, tg8 = 0.f;
#pragma unroll
			for (int blk = 0; blk < 4; blk++) {
				uint32_t a[4], bx[2];
				float d[4];
				uint2 xv = *(const uint2 *)(xq + (size_t)(c0 + u) * 128 + blk * 32 +
							    8 * q);
				fp4x8_to_e4m3(B[u][blk], a[0], a[2]);
				fp4x8_to_e4m3(B8[u][blk], a[1], a[3]);
				bx[0] = xv.x;
				bx[1] = xv.y;
				mma_e4m3(d, a, bx);
				tg += d[0] * e8m0((uint8_t)(T[u] >> (8 * blk)));
				tg8 += d[2] * e8m0((uint8_t)(T8[u] >> (8 * blk)));
			}
			acc_g += tg;
			acc_g8 += tg8;
		}
	}
	if (q == 0) {
		y[rg] = acc_g * 64.f;
		y[rg + 8] = acc_g8 * 64.f;
	}
}
__global__ void rd(const uint4 *__restrict__ p, size_t n, uint32_t *out)
{
	size_t i = (size_t)blockIdx.x * blockDim.x * 4 + threadIdx.x,
	       stride = (size_t)gridDim.x * blockDim.x * 4;
	uint32_t acc = 0;
	for (; i < n; i += stride) {
		uint4 v[4];
#pragma unroll
		for (int u = 0; u < 4; u++) {
			size_t j = i + (size_t)u * blockDim.x;
			v[u] = j < n ? p[j] : make_uint4(0, 0, 0, 0);
		}
#pragma unroll
		for (int u = 0; u < 4; u++)
			acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
	}
	if (acc == 0x12345678u)
		out[0] = acc;
}
static float fp4v(int c)
{
	static const float m[8] = {0, .5f, 1, 1.5f, 2, 3, 4, 6};
	return (c & 8 ? -1 : 1) * m[c & 7];
}
int main(void)
{
	const uint32_t rows = 24576, cols = 4096; /* 6 slots x (w1 + w3) of 2048 x 4096 */
	size_t wb = (size_t)rows * cols / 2, sb = (size_t)rows * cols / 32;
	const int COPIES = 4; /* rotate so L2 holds nothing useful */
	std::vector<uint8_t> hw(wb), hs(sb), hxq(cols);
	std::vector<__half> hxh1(cols), hxh2(cols); /* x as f16 for MATH 1 and 2 */
	std::vector<float> hx(cols);
	srand(1);
	for (auto &b : hw)
		b = rand() & 255;
	for (auto &b : hs)
		b = 120 + rand() % 8;
	/* x on the e4m3 grid: k/8 for k in [-16, 16] (exact in e4m3) */
	for (uint32_t c = 0; c < cols; c++)
		hx[c] = (float)((rand() % 33) - 16) / 8.f;
	static const int perm[8] = {0, 2, 4, 6, 1, 3, 5, 7};
	for (uint32_t c = 0; c < cols; c += 8)
		for (int p = 0; p < 8; p++)
			hxq[c + p] = __nv_fp8_e4m3(hx[c + perm[p]]).__x;
	static const int perm2[8] = {0, 4, 1, 5, 2, 6, 3, 7};
	for (uint32_t c = 0; c < cols; c += 8)
		for (int p = 0; p < 8; p++) {
			hxh1[c + p] = __float2half(hx[c + perm[p]]);
			hxh2[c + p] = __float2half(hx[c + perm2[p]]);
		}
	uint8_t *w, *s, *xq;
	float *y;
	uint32_t *out;
	CK(cudaMalloc(&w, wb * COPIES));
	CK(cudaMalloc(&s, sb * COPIES));
	CK(cudaMalloc(&xq, cols));
	uint8_t *xh[4] = { xq, NULL, NULL, xq };
	CK(cudaMalloc(&xh[1], 2 * cols));
	CK(cudaMalloc(&xh[2], 2 * cols));
	CK(cudaMemcpy(xh[1], hxh1.data(), 2 * cols, cudaMemcpyHostToDevice));
	CK(cudaMemcpy(xh[2], hxh2.data(), 2 * cols, cudaMemcpyHostToDevice));
	CK(cudaMalloc(&y, rows * 4));
	CK(cudaMalloc(&out, 4));
	for (int i = 0; i < COPIES; i++) {
		CK(cudaMemcpy(w + i * wb, hw.data(), wb, cudaMemcpyHostToDevice));
		CK(cudaMemcpy(s + i * sb, hs.data(), sb, cudaMemcpyHostToDevice));
	}
	CK(cudaMemcpy(xq, hxq.data(), cols, cudaMemcpyHostToDevice));
	auto smem_of = [&](int ncw, int nst) {
		return (size_t)nst * ncw * 16 * (PITCH + 16) + cols + 2 * nst * 8;
	};
	typedef void (*fp4_kernel)(const uint8_t *, const uint8_t *, const uint8_t *, float *,
				   uint32_t, uint32_t);
	/* the TMA-fed form: compute warps, stages; one block a row block (the kernels also walk
	 * several, for persistent grids: measured slower, firmware/README.md) */
	const struct {
		const char *tag;
		fp4_kernel k;
		int ncw, nst;
	} staged[] = {
		{ "tma4x3", fp4_tma<4, 3>, 4, 3 },
	};
	for (const auto &t : staged)
		CK(cudaFuncSetAttribute(t.k, cudaFuncAttributeMaxDynamicSharedMemorySize,
					(int)smem_of(t.ncw, t.nst)));
	/* tensor maps over all COPIES (rows * COPIES rows), through the driver's entry point */
	PFN_cuTensorMapEncodeTiled_v12000 encode = NULL;
	cudaDriverEntryPointQueryResult qr;
	CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void **)&encode, 12000,
					    cudaEnableDefault, &qr));
	if (!encode) {
		printf("no cuTensorMapEncodeTiled\n");
		return 1;
	}
	auto mkmap = [&](CUtensorMap *m, void *base, uint64_t width, uint32_t box_w, uint32_t box_h,
			 CUtensorMapSwizzle sw) {
		cuuint64_t dims[2] = { width, (cuuint64_t)rows * COPIES }, strides[1] = { width };
		cuuint32_t box[2] = { box_w, box_h }, es[2] = { 1, 1 };
		return encode(m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, base, dims, strides, box, es,
			      CU_TENSOR_MAP_INTERLEAVE_NONE, sw, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
			      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
	};
	const map_form mapped[] = {
		map_form_of<4, 2>("map4x2"),
		map_form_of<4, 2, 1>("map4x2 math only"),
		map_form_of<4, 2, 0, 1>("map4x2 f16cvt"),
		map_form_of<8, 2, 0, 0, 2>("map8s2x2"),
		map_form_of<8, 2, 1, 0, 2>("map8s2x2 math only"),
		map_form_of<8, 3, 0, 0, 2>("map8s2x3"),
		map_form_of<8, 2, 0, 1, 2>("map8s2x2 f16cvt"),
		map_form_of<8, 3, 0, 1, 2>("map8s2x3 f16cvt"),
		map_form_of<16, 2, 0, 0, 4>("map16s4x2"),
		map_form_of<16, 3, 0, 0, 4>("map16s4x3"),
		map_form_of<16, 3, 0, 1, 4>("map16s4x3 f16cvt"),
		map_form_of<16, 3, 1, 0, 4>("map16s4x3 math only"),
		map_form_of<8, 3, 0, 0, 4>("map8s4x3"),
		map_form_of<8, 4, 0, 0, 2>("map8s2x4"),
		map_form_of<4, 2, 0, 3>("map4x2 wgmma"),
		map_form_of<4, 2, 1, 3>("map4x2 wgmma math only"),
		map_form_of<4, 3, 0, 3>("map4x3 wgmma"),
		map_form_of<8, 2, 0, 3, 2>("map8s2x2 wgmma"),
	};
	/* 1024 for the alignment, the stages, x in its largest form (MATH 3), the barriers */
	auto msmem_of = [&](int rgroups, int nst) {
		return (size_t)1024 + (size_t)nst * rgroups * 16 * (256 + 16) + 8 * cols +
		       2 * nst * 8;
	};
	for (const auto &t : mapped)
		CK(cudaFuncSetAttribute(t.k, cudaFuncAttributeMaxDynamicSharedMemorySize,
					(int)msmem_of(t.ncw / t.split, t.nst)));
	int sms;
	cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
	cudaEvent_t a, b;
	cudaEventCreate(&a);
	cudaEventCreate(&b);
	auto check = [&](const char *name) {
		std::vector<float> hy(rows);
		cudaMemcpy(hy.data(), y, rows * 4, cudaMemcpyDeviceToHost);
		double worst = 0;
		for (uint32_t r = 0; r < rows; r += 97) {
			double sum = 0, mag = 0;
			for (uint32_t c = 0; c < cols; c++) {
				uint8_t byte = hw[(size_t)r * (cols / 2) + c / 2];
				int code = c & 1 ? byte >> 4 : byte & 15;
				double t = fp4v(code) *
					   ldexp(1.0, hs[(size_t)r * (cols / 32) + c / 32] - 127) *
					   hx[c];
				sum += t;
				mag += fabs(t);
			}
			double e = fabs(hy[r] - sum) / (mag > 0 ? mag : 1);
			if (e > worst)
				worst = e;
		}
		printf("  check %-8s worst |y - ref| / sum|terms| = %.2e %s\n", name, worst,
		       worst < 1e-5 ? "ok" : "BAD");
	};
	auto T = [&](const char *name, auto fn) {
		float sum = 0;
		const int reps = 40;
		for (int r = 0; r < reps + 4; r++) {
			int i = r % COPIES;
			cudaEventRecord(a);
			fn(w + i * wb, s + i * sb);
			cudaEventRecord(b);
			cudaEventSynchronize(b);
			float ms;
			cudaEventElapsedTime(&ms, a, b);
			if (r >= 4)
				sum += ms;
		}
		cudaError_t e = cudaGetLastError();
		printf("%-40s %8.2f us  %7.1f GB/s %s\n", name, sum / reps * 1e3,
		       (wb + sb) / (sum / reps * 1e-3) * 1e-9, e ? cudaGetErrorString(e) : "");
	};
	for (int round = 0; round < 2; round++) {
		T("plain read (codes + scales bytes)", [&](const uint8_t *W, const uint8_t *) {
			rd<<<sms * 8, 256>>>((const uint4 *)W, (wb + sb) / 16, out);
		});
		T("register-fed (4 warps, 2 steps x 4 chunks)",
		  [&](const uint8_t *W, const uint8_t *S) {
			  fp4_reg<<<rows / 64, 128>>>(W, S, xq, y, rows, cols);
		  });
		if (!round)
			check("reg");
		for (const auto &t : staged) {
			uint32_t nrb = rows / (t.ncw * 16);
			char name[64];
			snprintf(name, sizeof(name), "TMA %d warps %d stages grid %u", t.ncw, t.nst, nrb);
			T(name, [&](const uint8_t *W, const uint8_t *S) {
				t.k<<<nrb, 32 * (t.ncw + 1), smem_of(t.ncw, t.nst)>>>(W, S, xq, y, rows,
										    cols);
			});
			if (!round)
				check(t.tag);
		}
		for (const auto &t : mapped) {
			uint32_t rb = (uint32_t)(t.ncw / t.split) * 16, nrb = rows / rb;
			CUtensorMap mw, ms; /* codes and scales, boxes rb rows high */
			if (mkmap(&mw, w, cols / 2, 128, rb, CU_TENSOR_MAP_SWIZZLE_128B) ||
			    mkmap(&ms, s, cols / 32, 16, rb, CU_TENSOR_MAP_SWIZZLE_NONE)) {
				printf("%s: cuTensorMapEncodeTiled failed\n", t.tag);
				continue;
			}
			char name[64];
			snprintf(name, sizeof(name), "%s grid %u", t.tag, nrb);
			T(name, [&](const uint8_t *W, const uint8_t *) {
				uint32_t base = (uint32_t)((W - w) / wb) * rows;
				t.k<<<nrb, 32 * (t.ncw + 1), msmem_of(t.ncw / t.split, t.nst)>>>(
				    mw, ms, base, xh[t.math], y, rows, cols);
			});
			if (!round && !strstr(t.tag, "only"))
				check(t.tag);
		}
	}
	return 0;
}
