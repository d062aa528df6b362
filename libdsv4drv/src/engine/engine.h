/* SPDX-License-Identifier: MIT */
/*
 * The CPU compute engine's internals (not installed): weight views in their
 * stored formats, the matrix kernels, the thread pool, the per-layer model
 * and per-sequence state.  The math follows DeepSeek's official
 * inference/model.py; see docs in libdsv4drv/README.md and spec §2-§7.
 */
#ifndef DSV4_ENGINE_H
#define DSV4_ENGINE_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "dsv4drv.h"

/* ---- weights, used where they lie (mmapped shards) ---- */

enum mat_fmt { MAT_F32, MAT_BF16, MAT_FP8, MAT_FP4 };

/* A [rows, cols] matrix view.  FP8: e4m3 bytes plus [ceil(rows/128),
 * ceil(cols/128)] scales; FP4: packed e2m1 [rows, cols/2] plus [rows,
 * cols/32] e8m0 scales.  row0 offsets the view into a larger matrix (the
 * grouped wo_a), so scale rows are (row0 + r) / 128. */
struct mat {
	enum mat_fmt fmt;
	uint32_t rows, cols;
	uint32_t row0;
	const void *data;	/* row 0 of the underlying matrix */
	const void *scale;
	int scale_f32;		/* FP8 scales stored as F32, not e8m0 */
};

/* Dequantizes rows [r0, r0+n) of @m into dst [n, cols] (float). */
typedef void (*decode_rows_fn)(const struct mat *m, uint32_t r0, uint32_t n, float *dst);
/* y[j] = dot(w + j*cols, x) for j < 4 (four weight rows, one input row) */
typedef void (*dot4_fn)(const float *w, const float *x, uint32_t cols, float *y);
/* One FP4/FP8/BF16 weight row against one input row, decoded on the fly. */
typedef float (*row_dot_fn)(const struct mat *m, uint32_t r, const float *x);

struct kernels {
	const char *name;	/* "avx512", "avx2", "scalar" */
	decode_rows_fn decode_rows;
	dot4_fn dot4;
	row_dot_fn row_dot;
	float (*dot)(const float *a, const float *b, uint32_t n);
	void (*axpy)(float a, const float *x, float *y, uint32_t n);	/* y += a x */
};

const struct kernels *kernels_pick(const char *force);
#ifdef __x86_64__
/* kernels_bf16.c: FP4 rows on an exactly-BF16 activation (AVX512-BF16) */
int cpu_has_avx512bf16(void);
void fp4_bf16_perm_x(const float *x, uint32_t n, uint16_t *xp);
float fp4_bf16_row_dot(const struct mat *m, uint32_t r, const uint16_t *xp);
#endif
extern const struct kernels kernels_scalar;
#ifdef __x86_64__
extern const struct kernels kernels_avx2;
extern const struct kernels kernels_avx512;
#endif
/* Shard data need not be aligned (safetensors packs tensors): load by memcpy. */
static inline float ld_bf16(const uint16_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return dsv4_bf16_to_f32(v);
}

static inline float ld_f32(const float *p)
{
	float v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* shared helpers of the kernel files: e8m0 byte -> float, filled by kernels_pick() */
extern float e8m0_lut[256];
float mat_fp8_scale(const struct mat *m, uint32_t r, uint32_t kb);

/* ---- thread pool (pool.c): pinned workers, tasks handed out by counter ---- */

struct pool;
typedef void (*task_fn)(void *ctx, uint32_t task, uint32_t worker);
int pool_create(uint32_t threads, struct pool **out);
void pool_destroy(struct pool *p);
uint32_t pool_threads(const struct pool *p);
/* Runs fn(ctx, i, worker) for i < n across the workers and waits. */
void pool_run(struct pool *p, task_fn fn, void *ctx, uint32_t n);

/* ---- small numerics (ops.c) ---- */

void rmsnorm(const float *x, const float *w, uint32_t n, float eps, float *out);
/* RoPE frequencies f_i (rd/2 of them), YaRN-blended when @yarn (spec §3) */
void rope_freqs(float *freqs, uint32_t rd, double theta, int yarn, const struct dsv4_config *c);
/* cos/sin of pos*f_i as the official code rounds them: cs[2i], cs[2i+1] */
void rope_cs(const float *freqs, uint32_t rd, uint32_t pos, float *cs);
/* Interleaved pairs over x[0..rd); inverse rotates by the conjugate. */
void rope_apply(float *x, const float *cs, uint32_t rd, int inverse);
void hadamard(float *x, uint32_t n);
void fakequant_fp8(float *x, uint32_t n, uint32_t block);	/* in place */
void fakequant_fp4(float *x, uint32_t n);			/* in place, block 32 */
float bf16_round(float x);
uint16_t bf16_bits(float x);	/* the BF16 code of bf16_round(x) */

/* ---- the model ---- */

struct compressor_w {
	uint32_t ratio, head_dim, coff;
	const float *ape;	/* [ratio, coff*head_dim] */
	struct mat wkv, wgate;	/* [coff*head_dim, dim] BF16 */
	float *norm;		/* [head_dim] */
};

struct layer_w {
	uint32_t ratio;
	float *attn_norm, *ffn_norm;
	const float *hc_fn[2], *hc_base[2], *hc_scale[2];	/* attn, ffn */
	struct mat hc_fn_mat[2];
	const float *attn_sink;
	struct mat wq_a, wq_b, wkv, wo_a, wo_b;
	float *q_norm, *kv_norm;
	struct compressor_w cmp, icmp;	/* icmp: the indexer's (ratio 4) */
	struct mat iwq_b, iweights;
	struct mat gate;
	const float *gate_bias;
	const void *tid2eid;
	int tid2eid_i64;
	struct mat *w1, *w2, *w3;	/* [n_routed_experts] */
	struct mat sw1, sw2, sw3;
	float *freqs;		/* [max_pos_table, rd/2] angles' frequencies */
};

struct scratch {
	float *buf;
	size_t cap;	/* floats */
};

struct store;
struct gpu_model;
struct gpu_seq;

struct kscratch {
	const float **buf;
	size_t cap;
};

struct dsv4_model {
	struct dsv4_ckpt *ck;
	struct dsv4_config cfg;
	struct dsv4_model_options opt;
	const struct kernels *k;
	struct pool *pool;
	struct mat embed, head;
	float *norm;
	const float *hc_head_fn, *hc_head_base, *hc_head_scale;
	struct mat hc_head_mat;
	struct layer_w *layers;
	float *freqs_swa, *freqs_cmp;	/* [rd/2] rope frequencies */
	float *owned;			/* BF16 vectors converted to float */
	size_t owned_used, owned_cap;
	uint32_t max_cols;		/* widest matrix input */
	struct scratch *scratch;	/* per worker: decoded weight tiles */
	struct scratch xq;		/* activation fake-quant copies */
	struct scratch xp;		/* the same as permuted BF16 (fp4_bf16_*) */
	int fp4_bf16;			/* FP4 x quantized activation through AVX512-BF16 */
	struct scratch *ascratch;	/* per worker: attention scores */
	struct kscratch *kscratch;	/* per worker: the keys a query gathers */
	struct store *store;		/* routed experts streamed, or NULL (resident) */
	int kv_main, kv_index;		/* entry storage formats (enum kv_index_fmt) */
	struct kv_pool *kv_pool;	/* spill tier for CSA main entries, or NULL */
	struct dsv4_time_stats times;
	struct gpu_model *gpu;		/* the CUDA backend runs the forward, or NULL */
	char backend[768];		/* dsv4_model_backend() */
};

/* bytes of a matrix as stored (codes plus scales) */
size_t mat_bytes(const struct mat *m);

/* Storage of emitted entries (kvfmt.c).  F32/FP4/FP8 serve indexer keys
 * and F32 main entries; MODEL1 is the 584-byte main-entry layout. */
enum kv_index_fmt { KV_INDEX_F32 = 0, KV_INDEX_FP4 = 1, KV_INDEX_FP8 = 2, KV_MAIN_MODEL1 = 3 };

/* Compressor state of one sequence for one compressor (FP32), and the
 * entries it emitted in their storage format. */
struct kv_pool;

struct cmp_state {
	float *kv, *score;	/* [coff*ratio, coff*head_dim] */
	uint8_t *data;		/* emitted entries [cap, stride] (hot tier) */
	uint32_t n_entries, cap;
	uint32_t stride, dim, rope_dim;
	int fmt;		/* enum kv_index_fmt */
	/* spill tier (CSA main entries): blocks of the model's pool instead */
	struct kv_pool *pool;
	uint32_t *blocks, n_blocks, per_block;
};

/* kvpool.c: the spill tier, fixed-size blocks of KV_SPILL memory */
int kv_pool_open(const struct dsv4_mem_options *mo, uint32_t block_bytes, struct kv_pool **out,
		 char *err, size_t errlen);
void kv_pool_close(struct kv_pool *p);
int kv_pool_reserve(struct kv_pool *p, uint32_t n);
uint32_t kv_pool_get(struct kv_pool *p);
uint32_t kv_pool_block_bytes(const struct kv_pool *p);
void kv_pool_put(struct kv_pool *p, uint32_t block);
uint8_t *kv_pool_addr(const struct kv_pool *p, uint32_t block);
void kv_pool_stats(const struct kv_pool *p, struct dsv4_kv_pool_stats *st);
/* where entry w lives */
uint8_t *cmp_entry_addr(const struct cmp_state *st, uint32_t w);

uint32_t kv_main_bytes(uint32_t head_dim, uint32_t rope_dim);
uint32_t kv_index_bytes(enum kv_index_fmt fmt, uint32_t dim);
void kv_main_encode(const float *e, uint32_t head_dim, uint32_t rope_dim, uint8_t *out);
void kv_main_decode(const uint8_t *in, uint32_t head_dim, uint32_t rope_dim, float *e);
void kv_index_encode(enum kv_index_fmt fmt, const float *k, uint32_t dim, uint8_t *out);
void kv_index_decode(enum kv_index_fmt fmt, const uint8_t *in, uint32_t dim, float *k);
void cmp_entry_put(struct cmp_state *st, uint32_t w, const float *e);
void cmp_entry_get(const struct cmp_state *st, uint32_t w, float *e);

struct seq_layer {
	float *ring;		/* [window, head_dim]; slot = pos % window */
	struct cmp_state cmp, icmp;
};

struct dsv4_seq {
	struct dsv4_model *m;
	uint32_t max_len;
	uint32_t pos;		/* tokens evaluated so far */
	struct seq_layer *layers;
	struct gpu_seq *gpu;	/* the state on the GPU (CUDA backend) */
};

uint64_t now_ns(void);

/* model.c helpers used by the layer code */
enum { MM_TILE = 16 };
/* @buf holding at least @count elements of @elem bytes (64-byte aligned;
 * contents not kept); NULL with *cap 0 when out of memory. */
void *buf_reserve(void *buf, size_t *cap, size_t count, size_t elem);
/* Sizes every buffer mat_mul needs for @rows input rows (0 or -ENOMEM). */
int mat_mul_reserve(struct dsv4_model *m, uint32_t rows);
/* y[r, o] = sum_k w[o, k] x[r, k]; act_quant: FP8 activation quant first
 * (reference numerics, FP8/FP4 weights), as the official linear() does. */
void mat_mul(struct dsv4_model *m, const struct mat *w, const float *x, uint32_t ldx,
	     uint32_t rows, float *y, uint32_t ldy, int act_quant);

/* attention.c / moe.c: one sub-block over a batch of rows */
struct batch {
	uint32_t rows;
	const uint32_t *pos;		/* [rows] absolute position */
	const int32_t *tok;		/* [rows] token ids */
	struct dsv4_seq *const *seq;	/* [rows] owning sequence */
	const uint32_t *chunk_start;	/* [rows] first row of this row's chunk */
};

/* forward.c, shared with the CUDA backend's forward: the batch rows whose
 * logits @reqs want, request by request, into @lrows (NULL: only counted);
 * returns how many */
uint32_t eval_logit_rows(const struct dsv4_eval_req *reqs, uint32_t n, uint32_t *lrows);
/* a failed pass resets
 * the batch's sequences; a done one hands each request its logits rows
 * (@logits: the rows wanted, request by request) and moves it on */
void eval_reset_all(struct dsv4_eval_req *reqs, uint32_t n);
void eval_deliver(struct dsv4_eval_req *reqs, uint32_t n, const float *logits, uint32_t vocab);
int attention_forward(struct dsv4_model *m, uint32_t L, const struct batch *b,
		      const float *x, float *out);
uint32_t attention_max_keys(const struct dsv4_model *m, const struct batch *b);
/* streaming: start reading the hash layers' experts for these tokens */
void moe_prefetch_hashed(struct dsv4_model *m, const int32_t *tok, uint32_t R);
int moe_forward(struct dsv4_model *m, uint32_t L, const struct batch *b,
		const float *x, float *out);
int cmp_state_init(struct cmp_state *s, uint32_t ratio, uint32_t head_dim, uint32_t rope_dim,
		   int fmt);
void cmp_state_reset(struct cmp_state *s, uint32_t ratio, uint32_t head_dim);
void cmp_state_free(struct cmp_state *s);
int cmp_state_grow(struct cmp_state *s, uint32_t ratio, uint32_t end_pos);

/* store.c: routed experts streamed into a pinned cache */
int store_open(struct dsv4_model *m, const struct dsv4_stream_options *o, struct store **out,
	       char *err, size_t errlen);
void store_close(struct store *s);
void store_stats(const struct store *s, struct dsv4_stream_stats *st);
const char *store_error(const struct store *s);
uint32_t store_capacity(const struct store *s, uint32_t L);	/* experts at once */
void store_prefetch(struct store *s, uint32_t L, const int32_t *experts, uint32_t n);
/* Experts ex[0..n) of layer L resident and pinned; w1/w2/w3[i] point at them. */
int store_acquire(struct store *s, uint32_t L, const int32_t *ex, uint32_t n,
		  struct mat *w1, struct mat *w2, struct mat *w3);
void store_release(struct store *s, uint32_t L, const int32_t *ex, uint32_t n);
/* the pinned cache's memory (for registering it with a GPU driver) */
void store_region(const struct store *s, void **addr, uint64_t *len);

#endif
