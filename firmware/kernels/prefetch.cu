// SPDX-License-Identifier: MIT
/*
 * dsv4_l2_prefetch: bytes [p, p + bytes) pulled from HBM into L2 by the
 * SMs' TMA units (cp.async.bulk.prefetch.L2), a thread issuing
 * one @chunk-byte request and ending at once: nothing waits for the data.
 * Decode launches it on a stream of its own while latency-bound kernels
 * leave HBM idle, so that a GEMV after them finds its weights in L2
 * ($DSV4_GPU_L2PF_*, gpu_forward.c's l2_prefetch()); @last: at L2's
 * evict_last priority.  p 16-byte aligned, bytes and chunk multiples of
 * 16.  A hint only: results never depend on it.
 */
#include "common.cuh"

FW_KERNEL void dsv4_l2_prefetch(const uint8_t *p, uint64_t bytes, uint32_t chunk, uint32_t last)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	uint64_t off = ((uint64_t)blockIdx.x * blockDim.x + threadIdx.x) * chunk;

	if (off >= bytes)
		return;
	uint32_t n = bytes - off < chunk ? (uint32_t)(bytes - off) : chunk;

	if (last) {	/* kept over the normal lines that stream past meanwhile */
		uint64_t pol;

		asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(pol));
		asm volatile("cp.async.bulk.prefetch.L2.global.L2::cache_hint [%0], %1, %2;"
			     ::"l"(p + off), "r"(n), "l"(pol) : "memory");
	} else {
		asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p + off), "r"(n)
			     : "memory");
	}
#endif
}
