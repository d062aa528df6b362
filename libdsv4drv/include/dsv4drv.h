/* SPDX-License-Identifier: MIT */
/*
 * libdsv4drv: the dsv4 userspace accelerator driver.  This is its one
 * public header.
 *
 * Conventions: functions return 0 (or a non-negative count) on success and
 * a negative errno on failure; nothing here prints.  Memory a function
 * allocates for the caller is named in its comment, with the call that
 * frees it.
 */
#ifndef DSV4DRV_H
#define DSV4DRV_H

#include <stddef.h>
#include <stdint.h>

#include "dsv4.h"	/* kmod/uapi/dsv4.h: the kernel uAPI, unchanged */

#ifdef __cplusplus
extern "C" {
#endif

#define DSV4_KDEV_PATH "/dev/" DSV4_DEVICE_NAME

/* ---- /dev/dsv4: thin, errno-returning wrappers over the ioctls ---- */

/* Opens the device (path NULL = DSV4_KDEV_PATH); returns an fd or -errno. */
int dsv4_kdev_open(const char *path);
int dsv4_kdev_info(int fd, struct dsv4_info *info);
int dsv4_kdev_create(int fd, struct dsv4_region_create *create);
int dsv4_kdev_region_info(int fd, struct dsv4_region_info *info);
int dsv4_kdev_destroy(int fd, uint64_t id);
int dsv4_kdev_close_region(int fd, uint64_t id);
int dsv4_kdev_seal(int fd, uint64_t id);
int dsv4_kdev_open_region(int fd, const char *name, uint32_t flags,
			  struct dsv4_region_open *out);
int dsv4_kdev_import_memfd(int fd, struct dsv4_region_import *import);
/* Returns a dma-buf fd or -errno. */
int dsv4_kdev_export_dmabuf(int fd, uint64_t id, uint64_t offset,
			    uint64_t size, uint32_t flags);
/*
 * All regions the caller may see.  On success *entries is a malloc'd array
 * of *count entries (free() it); returns 0 or -errno.
 */
int dsv4_kdev_list(int fd, struct dsv4_region_entry **entries,
		   uint32_t *count);
/* mmap of a region (MAP_SHARED); returns the address or NULL with errno. */
void *dsv4_kdev_map(int fd, uint64_t mmap_offset, uint64_t size, int prot);

/* ---- small parsers shared by the tools ---- */

/* "4096", "64K", "2M", "1G", "1T" (binary units); rejects garbage/overflow. */
int dsv4_parse_size(const char *text, uint64_t *bytes);
/* Region kind names as the module spells them ("engram_table", ...). */
const char *dsv4_kind_to_name(uint32_t kind);
int dsv4_kind_from_name(const char *name, uint32_t *kind);
/* Human-readable state flags, e.g. "sealed,persistent"; buf >= 64 bytes. */
const char *dsv4_state_to_string(uint32_t state, char *buf, size_t len);

/* ---- element types (dtype.c) ---- */

enum dsv4_dtype {
	DSV4_DT_BOOL, DSV4_DT_U8, DSV4_DT_I8, DSV4_DT_F8_E4M3, DSV4_DT_F8_E8M0,
	DSV4_DT_I16, DSV4_DT_U16, DSV4_DT_F16, DSV4_DT_BF16,
	DSV4_DT_I32, DSV4_DT_U32, DSV4_DT_F32, DSV4_DT_I64, DSV4_DT_U64,
	DSV4_DT_F64,
	DSV4_DT_COUNT
};

/* safetensors dtype strings ("BF16", "F8_E4M3", ...) */
const char *dsv4_dtype_name(enum dsv4_dtype dt);
int dsv4_dtype_from_name(const char *name, enum dsv4_dtype *dt);
size_t dsv4_dtype_size(enum dsv4_dtype dt);
float dsv4_bf16_to_f32(uint16_t v);
float dsv4_f16_to_f32(uint16_t v);
float dsv4_e4m3_to_f32(uint8_t v);	/* e4m3fn; 0x7f/0xff = NaN */
float dsv4_e8m0_to_f32(uint8_t v);	/* 2^(v-127); 0xff = NaN */
float dsv4_fp4_to_f32(uint8_t nibble);	/* e2m1 */
/* @count elements of @dt at @src to float (-EINVAL for unknown dt). */
int dsv4_decode_f32(enum dsv4_dtype dt, const void *src, size_t count, float *dst);
/* @count FP4 values packed two per byte, low nibble first. */
void dsv4_fp4_unpack(const uint8_t *src, size_t count, float *dst);

/* ---- quantizers in the release's formats (quant.c) ---- */

uint8_t dsv4_f32_to_e4m3(float x);	/* RNE, saturating at +-448 */
uint8_t dsv4_f32_to_e2m1(float x);	/* nearest, ties to even; +-6 max */
/* ue8m0 byte of 2^ceil(log2(max(amax, floor) * inv_max)) */
uint8_t dsv4_e8m0_ceil(float amax, float inv_max, float floor_amax);
/*
 * [rows, cols] float -> e4m3 bytes with one e8m0 scale per block x block
 * tile ([ceil(rows/block), ceil(cols/block)]), as the release stores FP8.
 */
void dsv4_quant_fp8_blocks(const float *w, uint64_t rows, uint64_t cols, uint32_t block,
			   uint8_t *q, uint8_t *scales);
/* [rows, cols] float (cols % 32 == 0) -> packed e2m1 [rows, cols/2] + e8m0 [rows, cols/32] */
void dsv4_quant_fp4_rows(const float *w, uint64_t rows, uint64_t cols,
			 uint8_t *packed, uint8_t *scales);
/*
 * Activation quantization as the official code does it before FP8/FP4
 * GEMMs: per @block values (n % block == 0) an e4m3 code and a power-of-two
 * scale; and FP4 quant-dequant per 32 values (n % 32 == 0).
 */
void dsv4_act_quant_fp8(const float *x, size_t n, uint32_t block, uint8_t *q, float *scales);
void dsv4_act_fakequant_fp4(const float *x, size_t n, float *out);

/* ---- safetensors (safetensors.c) ---- */

#define DSV4_MAX_DIMS 8

struct dsv4_st_tensor {
	char *name;
	enum dsv4_dtype dtype;
	uint32_t ndim;
	uint64_t shape[DSV4_MAX_DIMS];
	uint64_t count;		/* elements */
	uint64_t offset;	/* absolute byte offset in the file */
	uint64_t nbytes;
};

struct dsv4_st_header {
	struct dsv4_st_tensor *tensors;	/* sorted by name */
	size_t count;
	uint64_t data_offset;	/* 8 + header length */
};

/*
 * Parses and validates the header at the start of a safetensors file of
 * @file_size bytes, of which @avail are at @file_head.  On error returns
 * -errno and describes the problem in @err (may be NULL).  Free the
 * result with dsv4_st_header_free().
 */
int dsv4_st_parse(const void *file_head, size_t avail, uint64_t file_size,
		  struct dsv4_st_header *out, char *err, size_t errlen);
void dsv4_st_header_free(struct dsv4_st_header *h);
const struct dsv4_st_tensor *dsv4_st_find(const struct dsv4_st_header *h,
					  const char *name);

/* A shard, mmapped read-only: tensor data is used in place. */
struct dsv4_st_file {
	char *path;
	int fd;
	void *map;
	uint64_t size;
	struct dsv4_st_header header;
};

int dsv4_st_open(const char *path, struct dsv4_st_file **out, char *err,
		 size_t errlen);
void dsv4_st_close(struct dsv4_st_file *f);
const void *dsv4_st_data(const struct dsv4_st_file *f,
			 const struct dsv4_st_tensor *t);

/* ---- model configuration: HF config.json (config.c) ---- */

#define DSV4_MAX_LAYERS 128

enum dsv4_expert_dtype { DSV4_EXPERT_FP4, DSV4_EXPERT_FP8, DSV4_EXPERT_BF16 };

struct dsv4_config {
	uint32_t vocab_size;
	uint32_t dim;			/* hidden_size */
	uint32_t n_layers;		/* num_hidden_layers (main layers) */
	uint32_t n_heads;		/* num_attention_heads */
	uint32_t head_dim;
	uint32_t rope_head_dim;		/* qk_rope_head_dim */
	uint32_t q_lora_rank;
	uint32_t o_groups;
	uint32_t o_lora_rank;
	uint32_t window_size;		/* sliding_window */
	uint32_t index_n_heads;
	uint32_t index_head_dim;
	uint32_t index_topk;
	uint32_t n_routed_experts;
	uint32_t n_shared_experts;
	uint32_t n_activated_experts;	/* num_experts_per_tok */
	uint32_t moe_inter_dim;		/* moe_intermediate_size */
	uint32_t n_hash_layers;		/* num_hash_layers */
	uint32_t n_mtp_layers;		/* num_nextn_predict_layers */
	uint32_t hc_mult;
	uint32_t hc_sinkhorn_iters;
	uint32_t bos_token_id;
	uint32_t eos_token_id;
	uint64_t max_position_embeddings;
	double hc_eps;
	double norm_eps;		/* rms_norm_eps */
	double rope_theta;
	double compress_rope_theta;
	double route_scale;		/* routed_scaling_factor */
	double swiglu_limit;
	/* rope_scaling (yarn; applied only with compress_rope_theta) */
	double rope_factor;
	uint32_t rope_original_max_pos;	/* original_max_position_embeddings */
	double rope_beta_fast;
	double rope_beta_slow;
	/* quantization_config */
	int fp8;			/* quant_method fp8: linear weights e4m3 */
	uint32_t weight_block[2];	/* [128, 128] */
	int scale_ue8m0;		/* scale_fmt ue8m0 */
	enum dsv4_expert_dtype expert_dtype;
	int expert_dtype_given;		/* 0: not in config.json (the HF release's case) */
	int tie_word_embeddings;
	/* per layer: 0 = sliding window only, 4 = CSA, else HCA ratio */
	uint32_t compress_ratios[DSV4_MAX_LAYERS];
	uint32_t n_ratios;		/* n_layers (+ MTP entries if listed) */
};

/*
 * Reads a DeepSeek V4 HF config.json (model_type "deepseek_v4").  Every
 * value is checked; an error names the key.  Returns 0 or -errno.
 */
int dsv4_config_load(const char *path, struct dsv4_config *cfg, char *err,
		     size_t errlen);
/* Same, from a JSON text of @len bytes. */
int dsv4_config_parse(const char *json, size_t len, struct dsv4_config *cfg,
		      char *err, size_t errlen);

/* ---- safetensors writer (st_writer.c): header first, data streamed ---- */

struct dsv4_tensor_spec;
struct dsv4_st_writer;

/*
 * Creates @path with a header for @specs[0..n) laid out in that order;
 * the caller then appends each tensor's bytes in the same order with
 * dsv4_st_writer_write() and finishes with dsv4_st_writer_close(), which
 * fails if the byte count is not exactly what the header promised.
 */
int dsv4_st_writer_open(const char *path, const struct dsv4_tensor_spec *specs,
			size_t n, struct dsv4_st_writer **out, char *err, size_t errlen);
int dsv4_st_writer_write(struct dsv4_st_writer *w, const void *data, size_t len);
int dsv4_st_writer_close(struct dsv4_st_writer *w, char *err, size_t errlen);
uint64_t dsv4_spec_nbytes(const struct dsv4_tensor_spec *spec);

/* ---- checkpoints: config + shards + the tensor schema (checkpoint.c) ---- */

/* One tensor the model needs, as DeepSeek's release names and stores it. */
struct dsv4_tensor_spec {
	char name[96];			/* official name, e.g. layers.3.attn.wq_a.weight */
	enum dsv4_dtype dtype;
	uint32_t ndim;
	uint64_t shape[4];
};

/*
 * The tensors a checkpoint for @cfg must hold (main layers; MTP blocks
 * are optional extras).  *specs is malloc'd (free() it).
 */
int dsv4_schema_build(const struct dsv4_config *cfg,
		      struct dsv4_tensor_spec **specs, size_t *count);

struct dsv4_ckpt_tensor {
	const struct dsv4_tensor_spec *spec;	/* NULL for extras */
	const char *stored_name;		/* name in the shard */
	struct dsv4_st_file *file;
	const struct dsv4_st_tensor *st;	/* offset/nbytes in that file */
};

struct dsv4_ckpt {
	char *dir;
	struct dsv4_config cfg;
	struct dsv4_tensor_spec *specs;
	size_t n_specs;
	struct dsv4_ckpt_tensor *tensors;	/* [n_specs], same order as specs */
	struct dsv4_ckpt_tensor *extras;	/* present but not in the schema */
	size_t n_extras;
	struct dsv4_st_file **shards;
	size_t n_shards;
	int hf_names;			/* names were HF-transformers style */
	/* per-expert views into HF's stacked expert tensors (owned here) */
	struct dsv4_st_tensor **view_blocks;
	size_t n_view_blocks;
};

/*
 * Opens a checkpoint directory: config.json plus model.safetensors.index.json
 * and its shards, or a single model.safetensors.  Every tensor of the schema
 * is checked for presence, dtype and shape; an error names the tensor, the
 * file and what was expected.  Shards stay mmapped until dsv4_ckpt_close().
 */
/*
 * HF-transformers tensor name -> the release's name; -ENOENT when @hf is
 * not an HF-style name that maps one to one.
 */
int dsv4_hf_name_to_official(const char *hf, char *out, size_t len);

int dsv4_ckpt_open(const char *dir, struct dsv4_ckpt **out, char *err,
		   size_t errlen);
void dsv4_ckpt_close(struct dsv4_ckpt *ck);
const struct dsv4_ckpt_tensor *dsv4_ckpt_find(const struct dsv4_ckpt *ck,
					      const char *name);
static inline const void *dsv4_ckpt_data(const struct dsv4_ckpt_tensor *t)
{
	return dsv4_st_data(t->file, t->st);
}

/* ---- device discovery (devices.c) ---- */

struct dsv4_device {
	char node[64];		/* /dev/dri/renderD128, /dev/accel/accel0, or a backend's name */
	char kind[16];		/* "render", "primary", "accel", or the backend's */
	char driver[32];	/* the kernel driver ("amdgpu", "vgem", ...) */
	char bus[64];		/* "pci:0000:01:00.0", "platform:...", "virtual" */
	char backend[16];	/* "drm", "accel", "cuda" */
};

/* DRM (libdrm), accel nodes and registered backends; free(*out). */
int dsv4_devices_list(struct dsv4_device **out, size_t *count);
/* A compute backend adds itself to the list (at most 16). */
int dsv4_device_register(const struct dsv4_device *d);
/* Imports a dma-buf into the DRM device at @node (PRIME); on success the
 * caller owns *drm_fd, and *handle is a GEM handle in it. */
int dsv4_device_prime_import(const char *node, int dmabuf_fd, int *drm_fd, uint32_t *handle,
			     char *err, size_t errlen);

/* ---- pinned memory providers (mem/provider.c) ---- */

enum dsv4_provider { DSV4_PROVIDER_AUTO, DSV4_PROVIDER_KMOD, DSV4_PROVIDER_HOST };
/* LOCAL: first touch by the caller; INTERLEAVE: over the nodes with memory
 * (kmod: one region per node, back to back); NODE: that node only */
enum dsv4_numa_policy { DSV4_NUMA_LOCAL, DSV4_NUMA_INTERLEAVE, DSV4_NUMA_NODE };

struct dsv4_mem_options {
	enum dsv4_provider provider;	/* AUTO: $DSV4_PROVIDER (kmod|host|auto), else
					 * kmod when the device opens, else host */
	const char *dev_path;		/* NULL: /dev/dsv4 */
	int huge;			/* 2 MiB pages (kmod: huge folios; host: hugetlb) */
	int allow_unlocked;		/* host: keep a buffer mlock refused (counted) */
	void (*log)(void *ctx, const char *msg);	/* the provider choice, once */
	void *log_ctx;
};

struct dsv4_mem;

/* A pinned, zeroed buffer.  Freed with dsv4_mem_free(). */
struct dsv4_buf {
	void *addr;
	uint64_t size;
	uint32_t kind;			/* enum dsv4_region_kind */
	enum dsv4_numa_policy policy;
	int node;			/* NODE policy: the node, else -1 */
	int locked;			/* pinned (kmod always; host if mlock took) */
	int huge;			/* host: hugetlb pages */
	int memfd;			/* host: the backing memfd, else -1 */
	struct dsv4_mem *mem;
};

struct dsv4_mem_stats {
	const char *provider;		/* "kmod" or "host" */
	const char *why;		/* how it was chosen */
	uint64_t bytes, peak_bytes, buffers, unlocked_buffers;
};

int dsv4_mem_open(const struct dsv4_mem_options *opt, struct dsv4_mem **out, char *err,
		  size_t errlen);
void dsv4_mem_close(struct dsv4_mem *m);	/* after every buffer is freed */
const char *dsv4_mem_provider_name(const struct dsv4_mem *m);
void dsv4_mem_get_stats(const struct dsv4_mem *m, struct dsv4_mem_stats *st);
int dsv4_mem_alloc(struct dsv4_mem *m, uint64_t size, uint32_t kind,
		   enum dsv4_numa_policy policy, int node, struct dsv4_buf **out,
		   char *err, size_t errlen);
void dsv4_mem_free(struct dsv4_buf *b);
/* The placement achieved: bytes on each node, for nodes < max_nodes. */
int dsv4_buf_placement(const struct dsv4_buf *b, uint64_t *bytes_per_node, uint32_t max_nodes);

/* ---- the model on the CPU backend (engine/) ---- */

/*
 * "reference" simulates what DeepSeek's official code rounds: FP8
 * activation quantization (per 128, power-of-two scales) before FP8/FP4
 * GEMMs, the FP8 grid for the KV nope dims, Hadamard + FP4 for indexer
 * keys and queries, BF16 attention probabilities before P.V.  "exact"
 * skips those roundings; weights always keep their stored values.
 * Activations are FP32 in both.
 */
enum dsv4_numerics { DSV4_NUMERICS_REFERENCE = 0, DSV4_NUMERICS_EXACT = 1 };

/* HF transformers' variants of two MoE details (spec §6) */
#define DSV4_MODEL_HF_SHARED_CLAMP	(1u << 0)	/* swiglu_limit on the shared expert */
#define DSV4_MODEL_HF_WEIGHT_AFTER_DOWN	(1u << 1)	/* routing weight after w2 */
#define DSV4_MODEL_HF_SEMANTICS \
	(DSV4_MODEL_HF_SHARED_CLAMP | DSV4_MODEL_HF_WEIGHT_AFTER_DOWN)

struct dsv4_model_hooks {
	void *ctx;
	/*
	 * After block @layer, with its output streams X [rows, hc*dim] for the
	 * rows of this call (in call order).  X may be changed: the next block
	 * reads it (teacher forcing in tests).
	 */
	void (*layer_out)(void *ctx, uint32_t layer, float *X, uint32_t rows,
			  uint32_t width);
	/* The compressed entries a CSA query selected (entry numbers). */
	void (*topk)(void *ctx, uint32_t layer, uint32_t pos, const int32_t *idx,
		     uint32_t n);
};

/*
 * Routed experts: RESIDENT uses them where the checkpoint is mapped;
 * STREAM reads them with io_uring into a cache of pinned memory (kind
 * EXPERT_STAGING) as the router asks for them.  Logits are bitwise the same.
 */
enum dsv4_expert_mode { DSV4_EXPERTS_RESIDENT, DSV4_EXPERTS_STREAM };

struct dsv4_stream_options {
	enum dsv4_expert_mode mode;
	uint64_t cache_bytes;		/* budget; 0: use cache_experts */
	uint32_t cache_experts;		/* budget in experts; 0 with 0 bytes: all */
	uint32_t queue_depth;		/* per ring; 0: 64 */
	uint32_t rings;			/* 0: one per storage device of the shards */
	int buffered;			/* never O_DIRECT */
	int no_io_uring;		/* pread instead (also the fallback) */
	int no_prefetch;
	int shared_cache;		/* one pool, not per-layer slots */
	enum dsv4_numa_policy numa;	/* where the cache lives */
	int numa_node;			/* for DSV4_NUMA_NODE */
	struct dsv4_mem_options mem;	/* where the cache lives; its log also
					 * gets the streamer's warnings */
	/* test-only fault injection: a read whose file range covers this
	 * offset of shard fault_shard (+1; 0 = off) fails with EIO, or comes
	 * back short when fault_short is set (a truncated file) */
	uint32_t fault_shard;
	uint64_t fault_offset;
	int fault_short;
};

struct dsv4_stream_stats {
	const char *provider;		/* memory provider of the cache */
	const char *io;			/* "io_uring+fixed", "io_uring", "pread" */
	int direct;			/* O_DIRECT on every shard */
	uint32_t slots, slot_bytes, rings;
	int per_layer;			/* slots partitioned by layer */
	uint64_t hits, misses, evictions, bytes_read, reads;
	uint64_t prefetch_issued, prefetch_used;
	uint64_t errors;
};

/*
 * Compressed-KV storage.  MODEL1 is FlashMLA's main-entry layout (584
 * bytes at head_dim 512: e4m3 nope with ue8m0 scales per 64, BF16 rope);
 * the nope dims round-trip exactly in reference numerics (they are on that
 * grid), the rope dims are rounded to BF16 as the official code's BF16
 * activations have them, which moves results against the FP32-activation
 * reference, so main entries default to FP32.  Indexer keys: FP4 (68 bytes
 * at 128 dims) is exact in reference numerics and the default there; FP8
 * (132 bytes) is approximate; exact numerics store FP32.
 */
enum dsv4_kv_format { DSV4_KV_AUTO, DSV4_KV_F32, DSV4_KV_MODEL1, DSV4_KV_FP4, DSV4_KV_FP8 };

/* Where the forward pass runs.  AUTO: the CUDA backend when a GPU, its
 * driver and the firmware are there and the options are ones it serves,
 * else the CPU (dsv4_model_backend says why); CUDA: the GPU or an error. */
enum dsv4_backend { DSV4_BACKEND_AUTO = 0, DSV4_BACKEND_CPU = 1, DSV4_BACKEND_CUDA = 2 };
/* "auto", "cpu" or "cuda" (as flags and $DSV4_BACKEND spell them); -EINVAL else */
int dsv4_backend_from_name(const char *name, enum dsv4_backend *out);

struct dsv4_model_options {
	uint32_t threads;		/* 0: one per CPU we may run on */
	enum dsv4_backend backend;
	int gpu;			/* CUDA device ordinal */
	enum dsv4_kv_format kv_main;	/* AUTO, F32 or MODEL1 */
	enum dsv4_kv_format kv_index;	/* AUTO, F32, FP4 or FP8 */
	/* the spill tier's memory (NULL: auto provider, unlocked allowed) */
	const struct dsv4_mem_options *kv_mem;
	enum dsv4_numerics numerics;
	uint32_t flags;			/* DSV4_MODEL_HF_* */
	const char *kernels;		/* NULL: best for this CPU; "scalar", "avx2", "avx512" */
	const struct dsv4_model_hooks *hooks;
	const struct dsv4_stream_options *stream;	/* NULL: resident */
	/* CUDA: CSA main entries (the KV part that grows with the context and
	 * is read only through the indexer's top-k) in pinned KV_SPILL buffers
	 * of the kv_mem provider, mapped into the GPU and gathered from there
	 * over PCIe, instead of GPU memory.  The CPU backend spills them always. */
	int gpu_kv_spill;
};

struct dsv4_model;
struct dsv4_seq;

/* Opens a checkpoint directory (dsv4_ckpt_open) and readies the engine. */
int dsv4_model_load(const char *dir, const struct dsv4_model_options *opt,
		    struct dsv4_model **out, char *err, size_t errlen);
void dsv4_model_free(struct dsv4_model *m);
const struct dsv4_config *dsv4_model_config(const struct dsv4_model *m);
/* "avx512", "avx2" or "scalar": the kernels in use */
const char *dsv4_model_kernels(const struct dsv4_model *m);
/* The backend in use, in words: "cuda: <GPU>, ..." or "cpu" (with AUTO,
 * "cpu (CUDA not used: <why>)"). */
const char *dsv4_model_backend(const struct dsv4_model *m);
/* 1 when the forward pass runs on the GPU */
int dsv4_model_on_gpu(const struct dsv4_model *m);
/* The CUDA backend with streamed experts: its GPU expert cache of
 * $DSV4_GPU_EXPERT_SLOTS slots (default: two layers' worth of the
 * activated experts per layer, within half the free GPU memory) filled
 * from the pinned host cache. */
struct dsv4_gpu_stream_stats {
	uint32_t slots;
	uint64_t slot_bytes;
	uint64_t hits, misses;
	uint64_t bytes_copied;		/* host -> GPU */
	uint64_t copy_ns;		/* host time waiting for copies */
};
int dsv4_model_gpu_stream_stats(const struct dsv4_model *m, struct dsv4_gpu_stream_stats *st);
/* One-token decode steps on the CUDA backend run as a CUDA graph, captured
 * again only when the context outgrows it ($DSV4_GPU_GRAPHS=0 turns that
 * off): how many were captured and replayed.  -ENOENT off the GPU. */
int dsv4_model_gpu_graph_stats(const struct dsv4_model *m, uint64_t *captured,
			       uint64_t *replayed);
/* Bytes one decode token must read at context @ctx (for rooflines): the
 * weights (dense, head, the activated experts' share of the routed ones)
 * and the KV state attention reads (window, selected/visible entries,
 * indexer keys; F32 as the GPU keeps them, but the indexer's keys as the
 * codes decode's scores read where the CUDA backend keeps those: 144
 * bytes an entry of 128 dims; with MODEL1 main entries, 584 bytes an entry
 * of 512 dims, on the GPU for CSA layers only). */
void dsv4_model_decode_bytes(const struct dsv4_model *m, uint64_t ctx, double *weight_bytes,
			     double *kv_bytes);
/* Benchmarks only: the sequence (CUDA backend) is made @ctx tokens long
 * with filler state (the indexer's keys pseudo-random, so that its top-k
 * sees distinct scores), so that a decode step costs what it costs at
 * @ctx without prefilling it.  Its outputs mean nothing afterwards. */
int dsv4_seq_assume_context(struct dsv4_seq *s, uint32_t ctx);

/* Where evaluation time went, since load or the last reset (ns). */
struct dsv4_time_stats {
	uint64_t total_ns;		/* dsv4_eval_many */
	uint64_t attention_ns;		/* attention sub-blocks, indexer included */
	uint64_t indexer_ns;		/* the lightning indexer (scores, top-k) */
	uint64_t moe_ns;
	uint64_t head_ns;
	uint64_t rows;			/* tokens evaluated */
};
void dsv4_model_time_stats(struct dsv4_model *m, struct dsv4_time_stats *st, int reset);

/* Streaming counters (all zero in resident mode); returns the mode. */
enum dsv4_expert_mode dsv4_model_stream_stats(const struct dsv4_model *m,
					      struct dsv4_stream_stats *st);

/* Bytes the compressed KV grows by per token, over all layers, in these
 * formats (main: F32 or MODEL1; index: F32, FP4 or FP8); spec §4.6. */
double dsv4_kv_bytes_per_token(const struct dsv4_config *c, enum dsv4_kv_format main,
			       enum dsv4_kv_format index);

/* What a sequence holds now, per tier.  Hot (process memory): window
 * rings, compressor states, indexer keys, HCA entries.  Spill (KV_SPILL
 * blocks from the memory provider, shared pool): CSA main entries. */
struct dsv4_kv_usage {
	uint64_t tokens;
	uint64_t window_bytes;		/* sliding-window rings (FP32) */
	uint64_t state_bytes;		/* compressor states (FP32) */
	uint64_t main_bytes;		/* HCA main entries (hot) */
	uint64_t index_bytes;		/* indexer keys (hot) */
	uint64_t spill_bytes;		/* CSA main entries: whole blocks held */
	uint64_t spill_used_bytes;	/* of which entries written */
	uint64_t total_bytes;
	double format_bytes_per_token;	/* dsv4_kv_bytes_per_token in this model's formats */
};

struct dsv4_kv_pool_stats {
	const char *provider;		/* "kmod" or "host"; NULL without CSA layers */
	uint32_t block_bytes;
	uint64_t blocks, free_blocks;
};
void dsv4_model_kv_pool_stats(const struct dsv4_model *m, struct dsv4_kv_pool_stats *st);
void dsv4_seq_kv_usage(const struct dsv4_seq *s, struct dsv4_kv_usage *u);

/* A sequence: KV window, compressed entries and compressor state. */
int dsv4_seq_create(struct dsv4_model *m, uint32_t max_len, struct dsv4_seq **out);
void dsv4_seq_reset(struct dsv4_seq *s);	/* back to position 0 */
void dsv4_seq_free(struct dsv4_seq *s);
uint32_t dsv4_seq_pos(const struct dsv4_seq *s);

enum dsv4_logits { DSV4_LOGITS_NONE, DSV4_LOGITS_LAST, DSV4_LOGITS_ALL };

/* Tokens for one sequence; they continue it at dsv4_seq_pos(). */
struct dsv4_eval_req {
	struct dsv4_seq *seq;
	const int32_t *tokens;
	uint32_t n_tokens;
	enum dsv4_logits want;
	float *logits;		/* [1 or n_tokens, vocab] as @want asks */
};

/*
 * Evaluates several sequences in one pass over the weights (batched
 * decode, or prefill chunks side by side); each sequence at most once.
 * On error no sequence has advanced.
 */
int dsv4_eval_many(struct dsv4_model *m, struct dsv4_eval_req *reqs, uint32_t n,
		   char *err, size_t errlen);
/* One sequence: prefill of any length, or one decode token. */
int dsv4_eval(struct dsv4_seq *s, const int32_t *tokens, uint32_t n,
	      enum dsv4_logits want, float *logits, char *err, size_t errlen);

/*
 * Prefix cache (engine/prefix.c).  Prompts are cut into 128-token blocks
 * with chained hashes; after a prefill the state at the prompt's last block
 * boundary is saved (DRAM, LRU within dram_bytes; and files in disk_dir
 * within disk_bytes, which survive restarts).  A prompt starting with
 * saved blocks resumes from the longest one.
 */
#define DSV4_PREFIX_BLOCK 128

struct dsv4_prefix_options {
	uint64_t dram_bytes;
	const char *disk_dir;		/* NULL: DRAM only */
	uint64_t disk_bytes;
};

struct dsv4_prefix_stats {
	uint64_t lookups, hits, tokens_reused, saved;
	uint64_t dram_entries, dram_bytes;
	uint64_t disk_files, disk_bytes, disk_rejected;	/* rejected: corrupt or foreign */
};

struct dsv4_prefix_cache;
int dsv4_prefix_open(struct dsv4_model *m, const struct dsv4_prefix_options *o,
		     struct dsv4_prefix_cache **out, char *err, size_t errlen);
void dsv4_prefix_close(struct dsv4_prefix_cache *pc);	/* before the model */
void dsv4_prefix_get_stats(const struct dsv4_prefix_cache *pc, struct dsv4_prefix_stats *st);
/* Prefill into a fresh sequence through the cache; *cached = tokens reused.
 * @want: NONE or LAST. */
int dsv4_prefix_prefill(struct dsv4_prefix_cache *pc, struct dsv4_seq *s, const int32_t *tokens,
			uint32_t n, enum dsv4_logits want, float *logits, uint32_t *cached,
			char *err, size_t errlen);
/*
 * The same in steps, for a scheduler that prefills in chunks: restore the
 * longest saved prefix of @tokens into a fresh sequence (*cached tokens,
 * possibly 0); evaluate up to dsv4_prefix_save_point(n) and call
 * dsv4_prefix_save there (the sequence at a block boundary, @tokens its
 * prompt); then the rest.
 */
int dsv4_prefix_restore(struct dsv4_prefix_cache *pc, struct dsv4_seq *s, const int32_t *tokens,
			uint32_t n, uint32_t *cached, char *err, size_t errlen);
uint32_t dsv4_prefix_save_point(uint32_t n);
int dsv4_prefix_save(struct dsv4_prefix_cache *pc, struct dsv4_seq *s, const int32_t *tokens,
		     char *err, size_t errlen);


/*
 * Tokenizer (text/tokenizer.c): a checkpoint's tokenizer.json, byte-level
 * BPE as HF `tokenizers` runs it: added tokens matched first, then the
 * pre-tokenizer (Sequence of Split regexes and ByteLevel, PCRE2 in UTF+UCP
 * mode), then BPE merges by rank.  Results equal HF's encode/decode.
 */
struct dsv4_tokenizer;

int dsv4_tokenizer_load(const char *path, struct dsv4_tokenizer **out, char *err, size_t errlen);
/* The same from tokenizer.json text in memory. */
int dsv4_tokenizer_parse(const char *json, size_t len, struct dsv4_tokenizer **out,
			 char *err, size_t errlen);
void dsv4_tokenizer_free(struct dsv4_tokenizer *t);
/* Highest token id + 1 (vocab and added tokens). */
uint32_t dsv4_tokenizer_size(const struct dsv4_tokenizer *t);
/* The id of a token by its exact text (vocab form or added-token content); -1 if none. */
int32_t dsv4_token_lookup(const struct dsv4_tokenizer *t, const char *text);
/* 1 for added tokens marked special (BOS, EOS, <｜User｜>, ...). */
int dsv4_token_is_special(const struct dsv4_tokenizer *t, int32_t id);

#define DSV4_TOK_SPECIAL	0x1u	/* match special added tokens in the text */

/*
 * Text to ids.  Invalid UTF-8 is replaced by U+FFFD first (one per maximal
 * ill-formed subsequence, as Python's errors="replace").  *ids is malloc'd.
 */
int dsv4_tokenize(const struct dsv4_tokenizer *t, const char *text, size_t len, unsigned flags,
		  int32_t **ids, size_t *n_ids, char *err, size_t errlen);

/* The bytes one token stands for (byte-level decoded; added tokens: their
 * content); NULL for an unknown id.  Not NUL-terminated.  Bytes of a
 * token may be part of a UTF-8 sequence that the next token completes. */
const char *dsv4_token_bytes(const struct dsv4_tokenizer *t, int32_t id, size_t *len);

#define DSV4_DETOK_SKIP_SPECIAL	0x1u	/* leave special tokens out */
#define DSV4_DETOK_RAW		0x2u	/* keep invalid UTF-8 (default: U+FFFD, as HF) */

/* Ids to text, NUL-terminated, malloc'd; unknown ids are an error. */
int dsv4_detokenize(const struct dsv4_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
		    char **text, size_t *len, char *err, size_t errlen);

/* Valid UTF-8 copy of @len bytes (U+FFFD replacement as above), malloc'd. */
char *dsv4_utf8_sanitize(const char *s, size_t len, size_t *out_len);
/* Length of the longest prefix of @s that holds only whole UTF-8 sequences
 * (for streaming: hold back a sequence a later token completes). */
size_t dsv4_utf8_complete_prefix(const char *s, size_t len);


/*
 * CUDA backend (gpu/cuda.c): libcuda.so.1 through dlopen, kernels from the
 * firmware fatbin (firmware/): @firmware, else $DSV4_FIRMWARE, else
 * /lib/firmware/dsv4/dsv4.fatbin, else the build tree's.  Fails with a
 * message naming what is missing (driver, GPU, firmware, a fatbin without
 * code for this GPU); callers then use the CPU backend.
 */
struct dsv4_gpu;
int dsv4_gpu_open(int ordinal, const char *firmware, struct dsv4_gpu **out, char *err,
		  size_t errlen);
void dsv4_gpu_close(struct dsv4_gpu *g);
/* "NVIDIA H100 ... (sm_90, 132 SMs), driver 13.0, firmware PATH" into @buf */
const char *dsv4_gpu_describe(const struct dsv4_gpu *g, char *buf, size_t len);
/* y = W x for one FP8 e4m3 matrix with ue8m0 128x128 block scales (host
 * buffers in and out): the first kernel, checked against the CPU. */
int dsv4_gpu_gemv_fp8(struct dsv4_gpu *g, const uint8_t *w, const uint8_t *scale, uint32_t rows,
		      uint32_t cols, const float *x, float *y, char *err, size_t errlen);
/* y = W x for one FP4 e2m1 matrix with ue8m0 scales per 32 columns (the
 * routed experts' format; codes [rows, cols/2], scales [rows, cols/32]),
 * x on the FP8 grid, twice: by the tensor-core expert kernel into y_mma
 * and by the CUDA-core one into y_cores (cols % 128 == 0, at most 8192). */
int dsv4_gpu_experts_fp4(struct dsv4_gpu *g, const uint8_t *codes, const uint8_t *scales,
			 uint32_t rows, uint32_t cols, const float *x, float *y_mma,
			 float *y_cores, char *err, size_t errlen);
/* y = W x for one FP8 e4m3 matrix with ue8m0 128x128 block scales and
 * the official FP8 activation quant of x, as decode's one-row GEMV runs
 * it, twice: on the tensor cores (dsv4_linear1_fp8_mma, in @ks column
 * slices) into y_mma and on the CUDA cores (dsv4_linear1_fp8) into
 * y_cores (cols % (128 ks) == 0, cols / ks at most 8192, ks <= 32). */
int dsv4_gpu_linear_fp8(struct dsv4_gpu *g, const uint8_t *codes, const uint8_t *scales,
			uint32_t rows, uint32_t cols, uint32_t ks, const float *x, float *y_mma,
			float *y_cores, char *err, size_t errlen);
/* y = W x for one FP8 e4m3 matrix with ue8m0 128x128 block scales on an
 * F32 x without act quant, as decode's wo_a runs it, twice: x as its e4m3
 * parts on the tensor cores (dsv4_linear1_fp8_mmx, in @ks column slices)
 * into y_mmx, and x on the CUDA cores (dsv4_linear1_fp8) into y_cores
 * (cols % (128 ks) == 0, cols / ks at most 2048, ks <= 32).  The parts
 * (8 a 128-value block: codes [cols / 128, 8, 128], scales [cols / 128,
 * 8]) are @parts / @pscales as given when @given, else x split by
 * dsv4_xsplit, and then left there. */
int dsv4_gpu_linear_fp8_split(struct dsv4_gpu *g, const uint8_t *codes, const uint8_t *scales,
			      uint32_t rows, uint32_t cols, uint32_t ks, const float *x,
			      uint8_t *parts, float *pscales, int given, float *y_mmx,
			      float *y_cores, char *err, size_t errlen);
/* The indexer's top-k (dsv4_topk) on one row of @n scores given as @nz
 * slices [nz, n] (added in slice order, as dsv4_index_scores_tiled's Z
 * leaves them; nz 1..8): the k highest in index order, ties to the lower
 * index, into sel[0..*nsel) (all n when n <= k).  From 8192 entries (one
 * slice) in parts (dsv4_topk_part + dsv4_topk_merge), as decode runs it,
 * unless $DSV4_GPU_TOPK_PARTS=0. */
int dsv4_gpu_topk(struct dsv4_gpu *g, const float *scores, uint32_t n, uint32_t nz, uint32_t k,
		  int32_t *sel, uint32_t *nsel, char *err, size_t errlen);
/* The indexer's keys [n, ihd] (on the FP4 grid, ihd % 32 == 0, at most
 * 1024) as the codes decode's index scores read (dsv4_icmp_codes, what
 * dsv4_cmp_push stores beside each key): per key ihd int8 codes v / 2^e,
 * then each 32-value block's step 2^e as an F32 (e = floor(log2 amax) -
 * 3; 0 for a block of zeros), ihd + ihd / 8 bytes, into @codes. */
int dsv4_gpu_index_codes(struct dsv4_gpu *g, const float *keys, uint32_t n, uint32_t ihd,
			 uint8_t *codes, char *err, size_t errlen);
/* Bandwidths (bytes/s): device memory (read + write of a 1 GiB device
 * copy) and host to device from pinned memory (256 MiB copies). */
int dsv4_gpu_bandwidth(struct dsv4_gpu *g, double *device, double *htod, char *err,
		       size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* DSV4DRV_H */
