/* SPDX-License-Identifier: MIT */
/* The GPU model's layout, shared by gpu_model.c and gpu_forward.c. */
#ifndef DSV4_GPU_MODEL_H
#define DSV4_GPU_MODEL_H

#include "gpu.h"

/* decode's logits in at most this many pieces (gpu_model.logit_pieces) */
#define GPU_LOGIT_PIECES_MAX 3
/* dsv4_attn_fused's wait words: two for each head group of each row
 * (gpu_forward.c launches it where they suffice) */
#define ATTN_BAR_WORDS 2048

struct gcmp {
	struct fw_mat wkv, wgate;
	CUdeviceptr ape, norm;
};

struct glayer {
	CUdeviceptr attn_norm, ffn_norm, hc_base[2], hc_scale[2], attn_sink, q_norm, kv_norm;
	CUdeviceptr gate_bias, tid2eid;
	struct fw_mat hc_fn[2], wq_a, wq_b, wkv, wo_a, wo_b, iwq_b, iweights, gate;
	struct fw_mat wqkv_a;			/* wq_a and wkv as one (data 0: apart) */
	/* the compressors' wkv, wgate (then the indexer's, and iweights) as
	 * one, in that order (data 0: apart) */
	struct fw_mat wside;
	struct fw_mat sw1, sw2, sw3;
	struct fw_mat sw13;			/* sw1 and sw3 as one (data 0: apart) */
	struct gcmp cmp, icmp;
	CUdeviceptr w1tab, w2tab, w3tab;	/* fw_mat [n_routed_experts] */
	struct fw_mat e1, e2;			/* expert 0's w1 and w2: formats, shapes */
};

struct gpu_model {
	struct dsv4_gpu *g;
	struct dsv4_model *m;
	CUdeviceptr arena;		/* every weight */
	uint64_t weight_bytes;
	struct glayer *layers;
	struct fw_mat embed, head, hc_head;
	CUdeviceptr norm, hc_head_base, hc_head_scale, freqs_swa, freqs_cmp;
	CUdeviceptr scratch;		/* per-call activations, grown as needed */
	size_t scratch_cap;
	/* pinned host staging for steps of few rows: their metadata goes up
	 * and their logits come back asynchronously on the main stream (a
	 * pageable copy of one row of logits held the GPU idle for tens of
	 * microseconds each decode step); NULL where it could not be pinned */
	uint8_t *hstage;
	size_t hstage_meta, hstage_logits;	/* bytes: metadata room, then logits room */
	/* streamed experts: a GPU cache of expert slots, filled from the CPU
	 * store's pinned cache over PCIe on the copy stream */
	int stream;
	struct fw_mat *htab;		/* [layer][3][E]: the tables, host copy */
	CUdeviceptr gcache;
	uint32_t gslots;
	uint64_t gslot_bytes;
	int32_t *gwhere;		/* [layer][E] -> slot or -1 */
	struct gslot { int32_t layer, expert; uint64_t tick; } *gslot;
	uint64_t gtick;
	void *pinned[64];		/* registered pieces of the store's cache */
	uint32_t n_pinned;
	CUstream copy;
	CUevent copied;
	struct dsv4_gpu_stream_stats st;
	/* the forward's stream (blocking: ordered with the legacy stream's
	 * copies); decode's independent branches (compressors, the shared
	 * expert) run on a second stream, ordered by events */
	CUstream main;
	CUstream side;
	CUevent fork, join;
	/* decode's Sinkhorn (dsv4_hc_pre's post and comb) on a third stream,
	 * so that the side branch does not queue behind it ($DSV4_GPU_MHC_
	 * STREAM=0: on the side stream) */
	CUstream mhc;
	CUevent mhc_fork, mhc_join;
	int mhc_stream;
	/* decode's L2 prefetch (dsv4_l2_prefetch) on a stream of its own:
	 * the percentage of wo_a's weights pulled into L2 while the attention
	 * runs ($DSV4_GPU_L2PF_WOA), of wq_b's while wq_a and wkv run
	 * ($DSV4_GPU_L2PF_WQB), of the shared expert's w1/w3 while the gate
	 * and the Sinkhorn run ($DSV4_GPU_L2PF_SHARED); 0: none; at L2's
	 * evict_last priority with $DSV4_GPU_L2PF_LAST=1; over about
	 * $DSV4_GPU_L2PF_BLOCKS blocks of 32 threads (0: 64 KB a thread in
	 * blocks of 128) */
	CUstream pf;
	CUevent pf_fork, pf_join;
	/* decode's indexer (CSA layers) on a stream of its own from qr on,
	 * beside wq_b; the indexer's compressor push first on the side stream
	 * after its GEMV, the scores waiting for it (ix_inputs)
	 * ($DSV4_GPU_ICMP_SIDE=0: the push on ixs once the GEMV is done);
	 * $DSV4_GPU_INDEX_ASIDE=0: in line on the main stream */
	CUstream ixs;
	CUevent ix_fork, ix_join, ix_inputs;
	int index_aside, icmp_side;
	uint32_t l2pf_woa, l2pf_wqb, l2pf_shared, l2pf_last, l2pf_blocks;
	/* the indexer's top-k in parts where a row has many entries
	 * (dsv4_topk_part + dsv4_topk_merge; $DSV4_GPU_TOPK_PARTS=0: one
	 * block always) */
	int topk_parts;
	/* FP4 experts with reference numerics on the tensor cores
	 * (dsv4_experts_mma; $DSV4_GPU_MMA=0: the CUDA-core form) */
	int experts_mma;
	/* dsv4_linear's split-K scratch, one per stream: [0] main, [1] side,
	 * [2] ixs */
	CUdeviceptr splitk_part[3], splitk_count[3];
	/* one-token decode, captured as a CUDA graph and replayed while what
	 * its launches bake in (key) stays the same; $DSV4_GPU_GRAPHS=0: off */
	int graphs;
	int split_attn;		/* $DSV4_GPU_SPLIT_ATTN=0: no split decode attention */
	/* dsv4_attn_fused: its blocks that fit on the GPU at once (0: never
	 * launched; it is only with $DSV4_GPU_ATTN_FUSED=1) and its groups'
	 * wait words, zero */
	uint32_t attn_fused_fit;
	CUdeviceptr attn_bar;
	/* the split attention's P.V with the keys read once per head group
	 * into shared memory (dsv4_attn_pv_sk, dsv4_attn_fused_sk);
	 * $DSV4_GPU_PV_SHARED=1, off until it has run on a GPU */
	int pv_shared;
	int ring_aside;		/* $DSV4_GPU_RING_ASIDE=0: decode's ring store on the main stream */
	/* one-row mHC steps fused into their neighbours (dsv4_hc_mix,
	 * wo_b's dsv4_linear1_*, dsv4_moe_combine); $DSV4_GPU_FUSE=0: off */
	int fuse_mhc;
	/* decode's wq_a and wkv as one GEMV, the q and kv norms in one
	 * launch, q's norm and RoPE inside dsv4_attn_scores; the side
	 * branch's matrices (wside) and the shared expert's sw1 and sw3 as
	 * one GEMV each; $DSV4_GPU_FUSE_QKV=0: apart */
	int fuse_qkv;
	/* decode's router inside the w1/w3 launch of resident tensor-core
	 * experts; $DSV4_GPU_FUSE_ROUTE=0: its own launch */
	int fuse_route;
	/* the SwiGLU folded into the GEMV after it where that runs on the
	 * tensor cores (routed w2: dsv4_experts_mma_glu; the shared expert's
	 * sw2 in decode: dsv4_linear1_fp8_mma_glu); $DSV4_GPU_FUSE_GLU=1, off
	 * until it has run on a GPU */
	int fuse_glu;
	/* $DSV4_GPU_GEMM_PIPE=1: prefill's tensor-core GEMMs by dsv4_gemm_pipe /
	 * dsv4_gemm_experts_pipe (the next step's loads in flight during this
	 * step's products; X's small parts skipped where zero); opt-in until
	 * it has run on a GPU */
	int gemm_pipe;
	/* $DSV4_GPU_PREFILL_SPLIT=1: prefill's attention (more than 8 rows) by
	 * decode's split kernels in batches of 32 rows, each key read once for
	 * a group of 8 heads instead of once a head by dsv4_attention; opt-in
	 * until it has run on a GPU */
	int prefill_split;
	/* decode's wq_b in CSA layers with the indexer on its own stream:
	 * each block takes this many row blocks in turn
	 * (dsv4_linear1_fp8_mma_loop), so that the indexer's chain finds SMs
	 * free beside it; $DSV4_GPU_WQB_LOOP=N, off (0 or 1) until it has
	 * run on a GPU */
	uint32_t wqb_loop;
	/* decode's FP8 GEMVs with the act quant on the tensor cores
	 * (dsv4_linear1_fp8_mma); $DSV4_GPU_LINEAR_MMA=0: dsv4_linear1_fp8 */
	int linear_mma;
	/* decode's wo_a on the tensor cores too, on o split into e4m3 parts
	 * (dsv4_linear1_fp8_mmx); $DSV4_GPU_WOA_MMA=0: dsv4_linear1_fp8 */
	int woa_mma;
	/* decode graphs with programmatic dependent launch: a kernel that
	 * follows another on its stream starts while that one ends (see
	 * launch_as()), where the driver has it; $DSV4_GPU_PDL=0: off */
	int pdl;
	/* kernels launched the plain way even so ($DSV4_GPU_PDL_SKIP: their
	 * names, comma-separated; for measuring), bit k for kernel k */
	uint64_t pdl_skip;
	/* one row's logits out in pieces: the head as logit_pieces launches,
	 * each piece copied into hstage on the side stream while the next is
	 * formed (logit_ev[i]: piece i is there), and on to the caller while
	 * the GPU goes on; $DSV4_GPU_LOGIT_PIECES=1: one copy at the end */
	uint32_t logit_pieces;
	CUevent logit_ev[GPU_LOGIT_PIECES_MAX];
	CUgraphExec graph;
	struct gpu_graph_key {
		CUdeviceptr scratch;
		uint32_t maxe, maxkeys;
	} graph_key;
	uint64_t graph_builds, graph_replays;
	uint32_t attn_smem;		/* the attention kernel's dynamic shared memory limit */
	/* entries a thread of dsv4_index_scores_tiled at long contexts (2;
	 * $DSV4_GPU_INDEX_EPT=1: one, for measuring) */
	uint32_t index_ept;
	/* reference numerics: the indexer's scores on the tensor cores, exact
	 * integer sums of FP4-grid codes (dsv4_index_scores_mma8/_mma): 1 by
	 * default, everywhere with _mma8, with _mma only where the tiled form
	 * would not slice its heads (past about 17K tokens; below, its eight
	 * head slices are faster than _mma), 2 everywhere
	 * ($DSV4_GPU_INDEX_MMA=1, for the tests), 0 never (=0) */
	int index_mma;
	/* ... and there by dsv4_index_scores_mma8, a warp a head tile
	 * ($DSV4_GPU_INDEX_MMA8=0: dsv4_index_scores_mma, a warp all heads) */
	int index_mma8;
	/* ... on the keys' stored codes (fw_seq_layer.icmp_code, which
	 * dsv4_cmp_push fills beside the F32 keys): 144 bytes an entry read
	 * instead of 512 converted in every block.  Set where _mma8 is what
	 * the scores run ($DSV4_GPU_ICODES=0: never) */
	int icodes;
	/* ... and where a row has more entry groups than this many blocks,
	 * dsv4_index_scores_mma8s: that many blocks take them in turn, the
	 * next group's codes loaded while one is multiplied (two a SM;
	 * $DSV4_GPU_INDEX_SBLOCKS=N: N, 0 never) */
	uint32_t index_sblocks;
	/* ... and with icodes, no F32 copy of the keys in GPU memory (their
	 * codes are all the scores read; the host's copy is made from the
	 * codes): 144 bytes an entry of 128 dims instead of 656
	 * ($DSV4_GPU_KEY_CODES_ONLY=1, opt-in until it has run on a GPU) */
	int codes_only;
	/* --kv-main model1: CSA layers' main entries kept as MODEL1
	 * (FW_MODEL1_BYTES each, written by dsv4_cmp_push_packed, decoded into the
	 * attention's gather buffer by dsv4_gather_model1), HCA layers' as F32
	 * holding the same values (a thirty-second of the entries) */
	int m1;
	/* --kv-index fp8: the indexer's keys rounded as V3.2's FP8 keys keep
	 * them (per-key scale amax / 448), held as F32; their scores on the
	 * CUDA cores (off the FP4 grid: no codes, no tensor-core scores) */
	int k8;
	/* opt.gpu_kv_spill: CSA main entries in KV_SPILL buffers of this
	 * provider, registered and mapped into the GPU's address space */
	struct dsv4_mem *kv_mem;
	/* $DSV4_GPU_PROFILE: events around each launch, summed per kernel at
	 * the end of each forward; span: first to last event (kernels + gaps) */
	int profile;
	double prof_s[K_COUNT], prof_span;
	uint64_t prof_n[K_COUNT], prof_forwards;
	CUevent *prof_ev;		/* [2 * prof_cap] */
	int16_t *prof_what;		/* [prof_cap]: kernel, or K_COUNT + shape */
	uint32_t prof_cap, prof_used;
	/* and dsv4_linear per shape: where the weight bytes go */
	struct gpu_prof_lin {
		uint32_t rows, cols, fmt, nrows, ksplit;
		double s;
		uint64_t n;
	} prof_lin[64];
	uint32_t n_prof_lin;
	/* $DSV4_GPU_PROFILE=graph (gpu_profile.c): each decode graph, once
	 * captured, captured again without each launch in turn; =replay:
	 * only the whole graph's replays timed */
	enum { PROF_GRAPH_OFF, PROF_GRAPH_LAUNCHES, PROF_GRAPH_REPLAY } prof_graph;
	double prof_graph_s;
	uint64_t prof_graphs;
	struct gpu_prof_node {
		uint32_t kernel, grid[3], order;
		double s;
		uint64_t n;
	} prof_node[128];
	uint32_t n_prof_node;
};

/* one launch of a forward, as the graph profile records it */
struct gpu_launch_rec {
	uint32_t kernel, grid[3];
};

/* the profile's events of one forward, added up (after its last sync) */
void gpu_prof_collect(struct gpu_model *gm);

/* gpu_profile.c: seconds per replay of @exec on @s (-1: an error); the
 * graph profile's whole-step time and each launch's cost, added up; and
 * their report, at close */
double gpu_replay_s(struct gpu_model *gm, CUgraphExec exec, CUstream s);
void gpu_graph_profile_base(struct gpu_model *gm, double s);
void gpu_graph_profile_add(struct gpu_model *gm, const struct gpu_launch_rec *l, double s);
void gpu_graph_profile_report(struct gpu_model *gm);

struct gpu_seq {
	CUdeviceptr tab;		/* fw_seq_layer [n_layers] on the device */
	struct fw_seq_layer *h;		/* the host's copy */
	uint32_t *cap, *icap, *ccap;	/* entries allocated, per layer (ccap: icmp_code) */
	struct dsv4_buf **spill;	/* per layer: CSA main entries in host memory */
};

/* room for the entries emitted up to position @end_pos (the caller has bound the context) */
int gpu_seq_grow(struct gpu_model *gm, struct gpu_seq *gs, uint32_t end_pos);

#endif
