/* SPDX-License-Identifier: MIT */
/*
 * What the host (libdsv4drv/src/gpu) and the kernels agree on: the layout
 * of the per-sequence state table and the weight formats.  Plain C, read
 * by gcc and nvcc alike; device addresses travel as uint64_t.
 */
#ifndef DSV4_FW_ABI_H
#define DSV4_FW_ABI_H

#include <stdint.h>

/* weight formats (the CPU engine's enum mat_fmt, same order) */
enum { FW_F32 = 0, FW_BF16 = 1, FW_FP8 = 2, FW_FP4 = 3 };

/* Rows per linear() launch: each lane keeps this many accumulators. */
#define FW_LINEAR_ROWS 8

/* dsv4_experts_mma: the most columns (x's FP8 codes in shared memory) */
#define FW_MMA_MAX_COLS 8192

/*
 * An F32 row split into e4m3 parts for the tensor cores (decode's wo_a,
 * dsv4_linear1_fp8_mmx): each 128-value block as FW_XSPLIT_PARTS code
 * vectors with a power-of-two scale each, block-major: codes [blocks,
 * parts, 128] bytes, scales [blocks, parts] F32.  The parts add up to the
 * block within 2^-32 of its largest |value| (mma.cuh's xsplit_block()).  dsv4_linear1_fp8_mmx takes
 * column slices of at most FW_XSPLIT_MAX_COLS.
 */
#define FW_XSPLIT_PARTS 8
#define FW_XSPLIT_MAX_COLS 2048

/* One layer of one sequence, in device memory (F32 throughout, but for
 * MODEL1 CSA entries): ring [window, head_dim]; compressor kv/score
 * [coff*ratio, coff*dim]; entries [cap, dim]; with reference numerics also the indexer's keys as
 * FP4-grid codes, icmp_code [cap, FW_ICODE_BYTES(index_head_dim)], what
 * decode's scores read.  Zero where the layer has no such part. */
struct fw_seq_layer {
	uint64_t ring;
	uint64_t cmp_kv, cmp_score, cmp_ent;
	uint64_t icmp_kv, icmp_score, icmp_ent;
	uint64_t icmp_code;
};

/*
 * An indexer key on the FP4 grid (ihd % 32 == 0) as codes: ihd int8
 * values v / 2^e, then each 32-value block's step 2^e as an F32 (e from
 * the block's amax, exact: every FP4-grid value is a whole multiple of
 * its block's step below 16 of them).  144 bytes for 128 dims, against
 * 512 as F32.
 */
#define FW_ICODE_BYTES(ihd) ((ihd) + (ihd) / 8)

/*
 * A main entry in FlashMLA's MODEL1 layout (libdsv4drv/src/engine/kvfmt.c's
 * kv_main_bytes; --kv-main model1): the nope dims as e4m3 codes, the rope
 * dims as BF16, then one ue8m0 scale per 64 nope dims and zero pad to 8
 * bytes; 584 bytes for head_dim 512 / rope 64.  On the GPU only CSA layers
 * keep their entries so (cmp_ent [cap, FW_MODEL1_BYTES]); HCA layers keep
 * F32 entries holding the same values.
 */
#define FW_MODEL1_BYTES(hd, rd) ((((hd) - (rd)) + 2 * (rd) + ((hd) - (rd)) / 64 + 7) & ~7u)

/* dsv4_cmp_push_packed's forms: main entries as MODEL1; the indexer's keys
 * rounded as FP8 keys keep them (--kv-index fp8; F32 on the GPU) */
enum { FW_FORM_MODEL1 = 1, FW_FORM_FP8_KEYS = 2 };

/* A weight matrix in device memory as the checkpoint stores it. */
struct fw_mat {
	uint64_t data, scale;
	uint32_t fmt, rows, cols, row0;	/* row0: a view into a larger matrix */
	uint32_t scale_f32, pad;
};

/*
 * The mHC post step (X_k <- post_k f + sum_j comb[j][k] X_j, per column)
 * done by the kernel that forms the sublayer's output f, in decode: X
 * [R, hc, D] in place, post [R, hc], comb [R, hc, hc]; X == 0: none.
 */
struct fw_hc_post {
	uint64_t X, post, comb;
	uint32_t hc, D;
};

/*
 * The SwiGLU folded into the GEMV after it (decode's w2 and the shared
 * expert's sw2, $DSV4_GPU_FUSE_GLU): x holds the gate's outputs g, u the
 * up projection's (same layout), and the GEMV's x is h = silu(min(g,
 * lim)) * clamp(u, -lim, lim) * w[row] (lim 0: no clamp; w 0: 1) before
 * its act quant, as dsv4_swiglu forms it.  u == 0: x as it is.
 */
struct fw_glu {
	uint64_t u, w;
	float lim;
	uint32_t pad;
};

/*
 * The router's operands for a kernel that routes for itself (decode's
 * dsv4_experts_mma): gate logits [R, E], bias [E] or 0, hash layers'
 * tid2eid [vocab, K] and the tokens [R] or 0; it writes idx and wts [R, K]
 * as dsv4_router does.  logits == 0: routed already (idx as given).
 */
struct fw_route {
	uint64_t logits, bias, tid2eid, tok, idx, wts;
	uint32_t E, hf;
	float scale;
};

/* decode attention split over key ranges (dsv4_attn_scores/pv/combine):
 * heads in groups of FW_SPLIT_HEADS, at most FW_SPLIT_RANGES ranges a row */
#define FW_SPLIT_HEADS 8
#define FW_SPLIT_RANGES 32

/* dsv4_hc_mix's per-slice sums of squares (doubles) in the split-K
 * scratch, after its partial mixes */
#define FW_HC_MIX_DSS 131072

/* the indexer's top-k over many entries in two steps: dsv4_topk_part
 * blocks each take FW_TOPK_PART entries (at most FW_TOPK_MAX_PARTS of
 * them a row), dsv4_topk_merge one row's parts' picks */
#define FW_TOPK_PART 4096
#define FW_TOPK_MAX_PARTS 256

#endif
