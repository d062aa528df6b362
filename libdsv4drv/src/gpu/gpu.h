/* SPDX-License-Identifier: MIT */
/*
 * The CUDA backend's internals (not installed): the driver API table
 * (libcuda.so.1 through dlopen), the firmware's kernels, and the model
 * and sequence state the GPU forward pass keeps in device memory.
 */
#ifndef DSV4_GPU_H
#define DSV4_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "dsv4drv.h"
#include "../../../firmware/kernels/abi.h"

/* The few driver API types we use, as cuda.h defines them. */
typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef uint64_t CUdeviceptr;	/* cuda.h: unsigned long long, the same 64 bits */

/* cuLaunchKernelEx's arguments, laid out as cuda.h's CUlaunchAttribute
 * and CUlaunchConfig; only programmatic stream serialization is used */
#define CU_LAUNCH_ATTR_PROGRAMMATIC_SERIALIZATION 6
struct cu_launch_attr {
	int id;
	char pad[4];
	union {
		char bytes[64];
		int programmatic_serialization_allowed;
	} value;
};

struct cu_launch_config {
	unsigned int grid[3], block[3], smem;
	CUstream stream;
	struct cu_launch_attr *attrs;
	unsigned int nattrs;
};
_Static_assert(sizeof(struct cu_launch_attr) == 72 &&
		       offsetof(struct cu_launch_config, stream) == 32 &&
		       offsetof(struct cu_launch_config, nattrs) == 48,
	       "cuda.h's launch structs");

struct cu_driver {
	CUresult (*Init)(unsigned int);
	CUresult (*DriverGetVersion)(int *);
	CUresult (*DeviceGetCount)(int *);
	CUresult (*DeviceGet)(CUdevice *, int);
	CUresult (*DeviceGetName)(char *, int, CUdevice);
	CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
	CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
	CUresult (*DevicePrimaryCtxRelease)(CUdevice);
	CUresult (*CtxSetCurrent)(CUcontext);
	CUresult (*CtxSynchronize)(void);
	CUresult (*ModuleLoadData)(CUmodule *, const void *);
	CUresult (*ModuleUnload)(CUmodule);
	CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
	CUresult (*FuncSetAttribute)(CUfunction, int, int);
	CUresult (*FuncGetAttribute)(int *, int, CUfunction);
	CUresult (*OccupancyMaxActiveBlocksPerMultiprocessor)(int *, CUfunction, int, size_t);
	CUresult (*MemAlloc)(CUdeviceptr *, size_t);
	CUresult (*MemFree)(CUdeviceptr);
	CUresult (*MemGetInfo)(size_t *, size_t *);
	CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
	CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
	CUresult (*MemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
	CUresult (*MemsetD32)(CUdeviceptr, unsigned int, size_t);
	CUresult (*MemHostRegister)(void *, size_t, unsigned int);
	CUresult (*MemHostUnregister)(void *);
	CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
	CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
	CUresult (*StreamCreate)(CUstream *, unsigned int);
	CUresult (*StreamDestroy)(CUstream);
	CUresult (*StreamSynchronize)(CUstream);
	CUresult (*EventCreate)(CUevent *, unsigned int);
	CUresult (*EventDestroy)(CUevent);
	CUresult (*EventRecord)(CUevent, CUstream);
	CUresult (*EventRecordWithFlags)(CUevent, CUstream, unsigned int);
	CUresult (*StreamWaitEvent)(CUstream, CUevent, unsigned int);
	CUresult (*EventSynchronize)(CUevent);
	CUresult (*MemHostGetDevicePointer)(CUdeviceptr *, void *, unsigned int);
	CUresult (*EventElapsedTime)(float *, CUevent, CUevent);
	CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
				 unsigned, unsigned, CUstream, void **, void **);
	CUresult (*GetErrorString)(CUresult, const char **);
	CUresult (*MemsetD32Async)(CUdeviceptr, unsigned int, size_t, CUstream);
	CUresult (*MemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
	CUresult (*StreamBeginCapture)(CUstream, int);
	CUresult (*StreamEndCapture)(CUstream, CUgraph *);
	CUresult (*GraphInstantiateWithFlags)(CUgraphExec *, CUgraph, unsigned long long);
	CUresult (*GraphLaunch)(CUgraphExec, CUstream);
	CUresult (*GraphExecDestroy)(CUgraphExec);
	CUresult (*GraphDestroy)(CUgraph);
	/* optional (NULL where the driver lacks it): programmatic dependent
	 * launch, $DSV4_GPU_PDL */
	CUresult (*LaunchKernelEx)(const struct cu_launch_config *, CUfunction, void **, void **);
};

/* the firmware's kernels, by name (cuda.c looks every one up at open) */
#define GPU_KERNELS(X) \
	X(GEMV_FP8, dsv4_gemv_fp8) X(LINEAR, dsv4_linear) \
	X(LINEAR_EXPERTS, dsv4_linear_experts) X(EMBED, dsv4_embed) X(HC_PRE, dsv4_hc_pre) \
	X(HC_POST, dsv4_hc_post) X(HC_HEAD, dsv4_hc_head) X(RMSNORM, dsv4_rmsnorm) \
	X(HEAD_PREP, dsv4_head_prep) X(ACT_QUANT, dsv4_act_quant) X(ROUTER, dsv4_router) \
	X(SWIGLU, dsv4_swiglu) X(MOE_COMBINE, dsv4_moe_combine) X(ATTENTION, dsv4_attention) \
	X(RING_STORE, dsv4_ring_store) X(CMP_PUSH, dsv4_cmp_push) X(INDEX_Q, dsv4_index_q) \
	X(INDEX_SCORES, dsv4_index_scores) X(TOPK, dsv4_topk) X(GEMM, dsv4_gemm) \
	X(EXPERT_TILES, dsv4_expert_tiles) X(GEMM_EXPERTS, dsv4_gemm_experts) \
	X(GATHER_ENTRIES, dsv4_gather_entries) X(INDEX_SCORES_TILED, dsv4_index_scores_tiled) \
	X(INDEX_SCORES_MMA, dsv4_index_scores_mma) X(INDEX_SCORES_MMA8, dsv4_index_scores_mma8) \
	X(ATTN_SCORES, dsv4_attn_scores) X(ATTN_PV, dsv4_attn_pv) X(ATTN_COMBINE, dsv4_attn_combine) \
	X(EXPERTS_MMA, dsv4_experts_mma) X(HC_MIX, dsv4_hc_mix) X(QKV_PREP, dsv4_qkv_prep) \
	X(LINEAR1_F32, dsv4_linear1_f32) X(LINEAR1_BF16, dsv4_linear1_bf16) \
	X(LINEAR1_FP8, dsv4_linear1_fp8) X(LINEAR1_FP4, dsv4_linear1_fp4) \
	X(LINEAR1_FP8_MMA, dsv4_linear1_fp8_mma) X(LINEAR1_FP8_MMX, dsv4_linear1_fp8_mmx) \
	X(XSPLIT, dsv4_xsplit) X(L2_PREFETCH, dsv4_l2_prefetch) \
	X(TOPK_PART, dsv4_topk_part) X(TOPK_MERGE, dsv4_topk_merge) \
	X(INDEX_SCORES_MMA8C, dsv4_index_scores_mma8c) X(ICMP_CODES, dsv4_icmp_codes) \
	X(INDEX_SCORES_MMA8S, dsv4_index_scores_mma8s) X(ATTN_FUSED, dsv4_attn_fused) \
	X(EXPERTS_MMA_GLU, dsv4_experts_mma_glu) X(LINEAR1_FP8_MMA_GLU, dsv4_linear1_fp8_mma_glu) \
	X(ATTN_PV_SK, dsv4_attn_pv_sk) X(ATTN_FUSED_SK, dsv4_attn_fused_sk) \
	X(LINEAR1_FP8_MMA_LOOP, dsv4_linear1_fp8_mma_loop) \
	X(CMP_PUSH_PACKED, dsv4_cmp_push_packed) X(GATHER_MODEL1, dsv4_gather_model1) X(GEMM_PIPE, dsv4_gemm_pipe) \
	X(GEMM_EXPERTS_PIPE, dsv4_gemm_experts_pipe)

#define GPU_KID(id, name) K_##id,
enum gpu_kernel { GPU_KERNELS(GPU_KID) K_COUNT };
#undef GPU_KID
/* dsv4_linear1_<format>: K_LINEAR1_F32 + FW_<format> */
_Static_assert(K_LINEAR1_FP4 - K_LINEAR1_F32 == FW_FP4 && K_LINEAR1_FP8 - K_LINEAR1_F32 == FW_FP8 &&
		       K_LINEAR1_BF16 - K_LINEAR1_F32 == FW_BF16,
	       "dsv4_linear1 kernels in format order");

struct dsv4_gpu {
	void *lib;
	struct cu_driver cu;
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;
	CUfunction fn[K_COUNT];
	char name[128];
	char firmware[512];
	int cc_major, cc_minor, sms, driver_version, smem_optin;
};

const char *gpu_err(const struct dsv4_gpu *g, CUresult r);
/* a kernel's name in the fatbin (enum gpu_kernel), "?" out of range */
const char *gpu_kernel_name(unsigned int k);

/* bytes of the codes of @n weights stored as @fmt (FW_F32 .. FW_FP4) */
static inline size_t fw_code_bytes(uint32_t fmt, size_t n)
{
	return fmt == FW_F32 ? 4 * n : fmt == FW_BF16 ? 2 * n : fmt == FW_FP8 ? n : n / 2;
}

/* the indexer top-k's parts a row for @entries entries (the scores'
 * width), or 0 for the one-block dsv4_topk: from 8192 entries (32K
 * tokens), where one block's passes grow long */
static inline uint32_t gpu_topk_parts(uint32_t entries)
{
	uint32_t parts = (entries + FW_TOPK_PART - 1) / FW_TOPK_PART;

	return entries > 2 * FW_TOPK_PART && parts <= FW_TOPK_MAX_PARTS ? parts : 0;
}

/* the context current on the calling thread: a server evaluates on its
 * scheduler thread, not the one that loaded the model */
static inline void gpu_bind(const struct dsv4_gpu *g)
{
	if (g)
		g->cu.CtxSetCurrent(g->ctx);
}

/* ---- the model in device memory (gpu_model.c) ---- */

struct dsv4_model;
struct dsv4_seq;
struct dsv4_eval_req;
struct gpu_model;

/* Uploads the model's weights (all resident) and readies the kernels;
 * fails with a message when the model or an option is beyond the GPU
 * backend, or the weights do not fit. */
int gpu_model_open(struct dsv4_model *m, int ordinal, struct gpu_model **out, char *err,
		   size_t errlen);
void gpu_model_close(struct gpu_model *gm);
const char *gpu_model_describe(const struct gpu_model *gm, char *buf, size_t len);
uint64_t gpu_model_weight_bytes(const struct gpu_model *gm);
/* the bytes decode's index scores read of one indexer key (@gm NULL: the
 * CPU's F32) */
uint32_t gpu_index_key_bytes(const struct gpu_model *gm, uint32_t ihd);

/* a sequence's device state: rings, compressor states, entries */
struct gpu_seq;
int gpu_seq_create(struct gpu_model *gm, struct gpu_seq **out);
void gpu_seq_free(struct gpu_model *gm, struct gpu_seq *gs);
int gpu_seq_reset(struct gpu_model *gm, struct gpu_seq *gs);

/* Copies a sequence's GPU state into its host structures (to_host: for
 * snapshots and inspection) or back (after a snapshot was restored). */
int gpu_seq_sync(struct dsv4_seq *s, int to_host);

/* dsv4_eval_many on the GPU (requests already validated) */
int gpu_eval_many(struct dsv4_model *m, struct dsv4_eval_req *reqs, uint32_t n, char *err,
		  size_t errlen);

#endif
