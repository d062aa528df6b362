// SPDX-License-Identifier: MIT
/* The one translation unit nvcc turns into dsv4.fatbin: every kernel. */
#include "kernels/gemv_fp8.cu"
#include "kernels/linear.cu"
#include "kernels/gemm.cu"
#include "kernels/rows.cu"
#include "kernels/attention.cu"
#include "kernels/indexer.cu"
#include "kernels/experts_mma.cu"
#include "kernels/linear_mma.cu"
#include "kernels/prefetch.cu"
