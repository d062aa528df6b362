// SPDX-License-Identifier: MIT
/*
 * A checkpoint's tokenizer.json, run as HF tokenizers (0.23) runs it.
 *
 * Encoding: invalid UTF-8 becomes U+FFFD; added tokens are cut out first,
 * in HF's two passes: those with normalized=false over the whole text,
 * then those with normalized=true over each stretch of text between the
 * first pass's matches (leftmost match, longest at that place).  Without
 * DSV4_TOK_SPECIAL a special token is still matched but kept as text, as
 * HF's encode_special_tokens does, so no other added token is found inside
 * it.  The remaining text goes through the pre-tokenizer (pretok.c), and
 * every piece through BPE: its characters start as symbols and the
 * adjacent pair with the lowest merge rank is merged (leftmost on ties)
 * until no pair has a rank.
 *
 * Decoding: each token's text through the ByteLevel decoder (every
 * character mapped back to its byte when all of them are GPT-2
 * characters, else the text as it is), joined, then invalid UTF-8 as
 * U+FFFD unless DSV4_DETOK_RAW.
 *
 * Accepted: model BPE (merges as ["a", "b"] or "a b"; ignore_merges;
 * unk_token with fuse_unk); normalizer null; pre_tokenizer as pretok.c
 * says; decoder ByteLevel or null (null decodes as ByteLevel too, where HF
 * would join the tokens' raw text with spaces); added tokens without
 * lstrip, rstrip or single_word.  Refused, naming the key: other model
 * types, dropout, byte_fallback, subword prefixes and suffixes, other
 * normalizers and decoders, lstrip / rstrip / single_word, and added
 * token ids other than the ones HF would give (HF takes the vocab's id for
 * content in the vocab and numbers the rest after the vocab, in order,
 * whatever the file says).  post_processor, truncation and padding are
 * ignored: dsv4_tokenize is HF's encode(add_special_tokens=False).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../internal.h"
#include "dsv4drv.h"
#include "text.h"

#define MAX_ID (1u << 24)
#define SMALL_CHARS 0x800	/* code points with a direct char -> id table */
#define SHORT_WORD 32		/* words up to this many symbols: BPE without a heap */

enum kind { TOK_NONE, TOK_VOCAB, TOK_ADDED, TOK_SPECIAL };

/* ---- hash tables (open addressing, power-of-two sizes) ---- */

struct str_slot {
	uint64_t hash;
	const char *s;		/* NULL: empty slot */
	uint32_t len;
	int32_t val;
};

struct str_table {
	struct str_slot *slot;
	size_t mask;
};

struct int_slot {
	uint64_t key;		/* INT_EMPTY: empty slot */
	int32_t a, b;
};

struct int_table {
	struct int_slot *slot;
	size_t mask;
};

#define INT_EMPTY UINT64_MAX

static size_t table_slots(size_t n)
{
	size_t sz = 16;

	while (sz / 2 < n) {
		if (sz > SIZE_MAX / 4)
			return 0;
		sz <<= 1;
	}
	return sz;
}

static int strtab_init(struct str_table *t, size_t n)
{
	size_t sz = table_slots(n);

	t->slot = sz ? calloc(sz, sizeof(*t->slot)) : NULL;
	t->mask = sz - 1;
	return t->slot ? 0 : -ENOMEM;
}

static int32_t strtab_get(const struct str_table *t, const char *s, size_t len)
{
	uint64_t h = XXH3_64bits(s, len);

	for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
		const struct str_slot *sl = &t->slot[i];

		if (!sl->s)
			return -1;
		if (sl->hash == h && sl->len == len && !memcmp(sl->s, s, len))
			return sl->val;
	}
}

/* Adds s -> val unless s is there; returns the value s already had, or -1. */
static int32_t strtab_add(struct str_table *t, const char *s, size_t len, int32_t val)
{
	uint64_t h = XXH3_64bits(s, len);
	size_t i = h & t->mask;

	for (; t->slot[i].s; i = (i + 1) & t->mask)
		if (t->slot[i].hash == h && t->slot[i].len == len && !memcmp(t->slot[i].s, s, len))
			return t->slot[i].val;
	t->slot[i] = (struct str_slot){ h, s, (uint32_t)len, val };
	return -1;
}

static uint64_t mix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

static int inttab_init(struct int_table *t, size_t n)
{
	size_t sz = table_slots(n);

	t->slot = sz ? malloc(sz * sizeof(*t->slot)) : NULL;
	if (!t->slot)
		return -ENOMEM;
	for (size_t i = 0; i < sz; i++)
		t->slot[i].key = INT_EMPTY;
	t->mask = sz - 1;
	return 0;
}

static const struct int_slot *inttab_get(const struct int_table *t, uint64_t key)
{
	for (size_t i = mix64(key) & t->mask;; i = (i + 1) & t->mask) {
		const struct int_slot *sl = &t->slot[i];

		if (sl->key == key)
			return sl;
		if (sl->key == INT_EMPTY)
			return NULL;
	}
}

/* Sets key -> (a, b), replacing what the key had. */
static void inttab_set(struct int_table *t, uint64_t key, int32_t a, int32_t b)
{
	size_t i = mix64(key) & t->mask;

	while (t->slot[i].key != INT_EMPTY && t->slot[i].key != key)
		i = (i + 1) & t->mask;
	t->slot[i] = (struct int_slot){ key, a, b };
}

static uint64_t pair_key(int32_t left, int32_t right)
{
	return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

/* ---- the tokenizer ---- */

struct added {
	const char *text;	/* content, in the text arena */
	uint32_t len;
	int32_t id;
	uint8_t special, normalized;
};

/* Added tokens by content, one trie per pass: [0] normalized=false, [1] true. */
struct trie {
	int32_t root[256];	/* node of each first byte, -1: none */
};

struct dsv4_tokenizer {
	uint32_t size;			/* highest id + 1 */
	uint8_t *kind;			/* per id: enum kind */
	const char **text;		/* per id: vocab string or added content (arena) */
	uint32_t *text_len;
	const char **bytes;		/* per id: what it decodes to (arena); NULL: no token */
	uint32_t *bytes_len;
	char *text_arena, *bytes_arena;

	struct str_table vocab;		/* the model's vocab: string -> id */
	struct str_table added_by_text;	/* content -> index in added */
	struct int_table merges;	/* (left, right) -> (rank, merged id) */
	int32_t small_char[SMALL_CHARS];	/* one-character vocab strings, by code point */

	struct added *added;
	size_t n_added;
	struct trie trie[2];
	struct int_table edges;		/* (node << 8 | byte) -> child node */
	int32_t *node_added;		/* per trie node: index in added that ends there, or -1 */
	size_t n_nodes;

	struct pretok *pretok;
	int ignore_merges;
	int32_t unk;			/* unk_token's id, or -1 */
	int fuse_unk;
};

void dsv4_tokenizer_free(struct dsv4_tokenizer *t)
{
	if (!t)
		return;
	free(t->kind);
	free(t->text);
	free(t->text_len);
	free(t->bytes);
	free(t->bytes_len);
	free(t->text_arena);
	free(t->bytes_arena);
	free(t->vocab.slot);
	free(t->added_by_text.slot);
	free(t->merges.slot);
	free(t->added);
	free(t->edges.slot);
	free(t->node_added);
	pretok_free(t->pretok);
	free(t);
}

/* ---- loading ---- */

#define BAD(...) dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: " __VA_ARGS__)
#define UNSUPPORTED(...) dsv4_errf(err, errlen, -ENOTSUP, "tokenizer.json: " __VA_ARGS__)

static const char *type_of(const json_t *obj)
{
	const char *type = json_string_value(json_object_get(obj, "type"));

	return type ? type : "(no type)";
}

static int check_model(const json_t *m, char *err, size_t errlen)
{
	static const char *const no_affix[] = { "continuing_subword_prefix", "end_of_word_suffix" };
	const json_t *v;

	if (!json_is_object(m))
		return BAD("no model object");
	if (strcmp(type_of(m), "BPE"))
		return UNSUPPORTED("model type '%s' is not supported (BPE is)", type_of(m));
	for (int i = 0; i < 2; i++) {
		v = json_object_get(m, no_affix[i]);
		if (v && !json_is_null(v) && !(json_is_string(v) && !json_string_length(v)))
			return UNSUPPORTED("model.%s is set; it is not supported", no_affix[i]);
	}
	v = json_object_get(m, "dropout");
	if (v && !json_is_null(v) && !(json_is_number(v) && json_number_value(v) == 0))
		return UNSUPPORTED("model.dropout is set; random merges are not supported");
	v = json_object_get(m, "byte_fallback");
	if (v && !json_is_false(v) && !json_is_null(v))
		return UNSUPPORTED("model.byte_fallback is not supported");
	for (int i = 0; i < 2; i++) {
		v = json_object_get(m, i ? "fuse_unk" : "ignore_merges");
		if (v && !json_is_boolean(v) && !json_is_null(v))
			return BAD("model.%s is not true or false", i ? "fuse_unk" : "ignore_merges");
	}
	v = json_object_get(m, "unk_token");
	if (v && !json_is_null(v) && !json_is_string(v))
		return BAD("model.unk_token is not a string");
	if (!json_is_object(json_object_get(m, "vocab")))
		return BAD("model needs a vocab object");
	if (!json_is_array(json_object_get(m, "merges")))
		return BAD("model needs a merges list");
	return 0;
}

static int check_others(const json_t *root, char *err, size_t errlen)
{
	const json_t *norm = json_object_get(root, "normalizer");
	const json_t *dec = json_object_get(root, "decoder");
	const json_t *added = json_object_get(root, "added_tokens");

	/* an empty Sequence normalizes nothing either */
	if (norm && !json_is_null(norm) &&
	    !(!strcmp(type_of(norm), "Sequence") &&
	      json_is_array(json_object_get(norm, "normalizers")) &&
	      !json_array_size(json_object_get(norm, "normalizers"))))
		return UNSUPPORTED("normalizer '%s' is not supported (only null is)", type_of(norm));
	if (dec && !json_is_null(dec) && strcmp(type_of(dec), "ByteLevel"))
		return UNSUPPORTED("decoder '%s' is not supported (ByteLevel or null are)",
				   type_of(dec));
	if (added && !json_is_null(added) && !json_is_array(added))
		return BAD("added_tokens is not a list");
	return 0;
}

/* The vocab: ids, strings into the text arena, the string -> id table. */
static int load_vocab(struct dsv4_tokenizer *t, const json_t *vocab, char **arena_at,
		      char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (strtab_init(&t->vocab, json_object_size(vocab)))
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	json_object_foreach((json_t *)vocab, key, v) {
		int32_t id = (int32_t)json_integer_value(v);
		size_t len = strlen(key);

		if (t->text[id])
			return BAD("vocab id %d is used twice ('%.40s' and '%.40s')", id, t->text[id],
				   key);
		memcpy(*arena_at, key, len + 1);
		t->text[id] = *arena_at;
		t->text_len[id] = (uint32_t)len;
		t->kind[id] = TOK_VOCAB;
		*arena_at += len + 1;
		if (strtab_add(&t->vocab, t->text[id], len, id) >= 0)
			return BAD("vocab string '%.40s' is there twice", key);
	}
	return 0;
}

/* One merge's two strings, from ["a", "b"] or "a b"; 1 to skip it
 * ("#version" lines of the old text form), 0, or -1 when malformed. */
static int merge_parts(const json_t *e, const char **a, size_t *al, const char **b, size_t *bl)
{
	if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
	    json_is_string(json_array_get(e, 1))) {
		*a = json_string_value(json_array_get(e, 0));
		*al = json_string_length(json_array_get(e, 0));
		*b = json_string_value(json_array_get(e, 1));
		*bl = json_string_length(json_array_get(e, 1));
		return 0;
	}
	if (json_is_string(e)) {
		const char *s = json_string_value(e), *space = strchr(s, ' ');
		size_t len = json_string_length(e);

		if (!strncmp(s, "#version", 8))
			return 1;
		if (!space || memchr(space + 1, ' ', len - (size_t)(space + 1 - s)))
			return -1;	/* HF wants exactly two parts */
		*a = s;
		*al = (size_t)(space - s);
		*b = space + 1;
		*bl = len - *al - 1;
		return 0;
	}
	return -1;
}

static int load_merges(struct dsv4_tokenizer *t, const json_t *merges, char *err, size_t errlen)
{
	char *joined = NULL;
	size_t cap = 0, i;
	int32_t rank = 0;
	json_t *e;
	int ret = 0;

	if (inttab_init(&t->merges, json_array_size(merges)))
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	json_array_foreach(merges, i, e) {
		const char *a, *b;
		size_t al, bl;
		int32_t left, right, merged;
		int parts = merge_parts(e, &a, &al, &b, &bl);

		if (parts > 0)
			continue;
		if (parts < 0) {
			ret = BAD("merges[%zu] is neither [\"a\", \"b\"] nor \"a b\"", i);
			break;
		}
		if (al + bl + 1 > cap) {
			char *grown = realloc(joined, cap = (al + bl + 1) * 2);

			if (!grown) {
				ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
				break;
			}
			joined = grown;
		}
		memcpy(joined, a, al);
		memcpy(joined + al, b, bl);
		left = strtab_get(&t->vocab, a, al);
		right = strtab_get(&t->vocab, b, bl);
		merged = strtab_get(&t->vocab, joined, al + bl);
		if (left < 0 || right < 0 || merged < 0) {
			ret = BAD("merges[%zu] (\"%.*s\" \"%.*s\") names a token not in the vocab", i,
				  (int)(al > 40 ? 40 : al), a, (int)(bl > 40 ? 40 : bl), b);
			break;
		}
		if (rank == INT32_MAX) {
			ret = BAD("too many merges");
			break;
		}
		/* a pair listed twice keeps its last rank, as HF's map does */
		inttab_set(&t->merges, pair_key(left, right), rank++, merged);
	}
	free(joined);
	return ret;
}

/* An added token's boolean field, absent: @dflt; -1 when not a boolean. */
static int added_flag(const json_t *e, const char *key, int dflt)
{
	const json_t *v = json_object_get(e, key);

	if (!v)
		return dflt;
	return json_is_boolean(v) ? json_is_true(v) : -1;
}

/*
 * Added tokens, checked against the ids HF gives them: content in the
 * vocab takes the vocab's id, other content the ids after the vocab in
 * the order listed.  (HF ignores the file's ids; a file whose ids differ
 * would make us disagree with it, so it is refused.)
 */
static int load_added(struct dsv4_tokenizer *t, const json_t *list, size_t vocab_n,
		      char **arena_at, char *err, size_t errlen)
{
	size_t i, next_id = vocab_n;
	json_t *e;

	t->added = calloc(json_array_size(list) + 1, sizeof(*t->added));
	if (!t->added || strtab_init(&t->added_by_text, json_array_size(list)))
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	json_array_foreach(list, i, e) {
		const json_t *c = json_object_get(e, "content");
		const char *content = json_string_value(c);
		size_t len = json_string_length(c);
		int32_t id = (int32_t)json_integer_value(json_object_get(e, "id"));
		int32_t in_vocab, want;
		int special = added_flag(e, "special", 0);
		int normalized = added_flag(e, "normalized", !special);
		static const char *const unsupported[] = { "lstrip", "rstrip", "single_word" };
		struct added *a = &t->added[t->n_added];

		if (!content || !len)
			return BAD("added_tokens[%zu] needs a non-empty string content", i);
		if (special < 0 || normalized < 0)
			return BAD("added_tokens[%zu] ('%.40s'): special and normalized must be true or "
				   "false", i, content);
		for (int u = 0; u < 3; u++) {
			int on = added_flag(e, unsupported[u], 0);

			if (on < 0)
				return BAD("added_tokens[%zu] ('%.40s'): %s must be true or false", i,
					   content, unsupported[u]);
			if (on)	/* HF would widen the match over spaces or check word edges */
				return UNSUPPORTED("added token '%.40s' sets %s, which is not supported",
						   content, unsupported[u]);
		}
		in_vocab = strtab_get(&t->vocab, content, len);
		want = in_vocab >= 0 ? in_vocab : (int32_t)next_id;
		if (id != want)
			return BAD("added token '%.40s' has id %d, but HF gives it %d (%s)", content,
				   id, want, in_vocab >= 0 ? "its id in the vocab" :
				   "the ids after the vocab, in order");
		if (in_vocab < 0) {
			if (t->kind[id] != TOK_NONE)
				return BAD("added token '%.40s' takes id %d, which the vocab's '%.40s' has",
					   content, id, t->text[id]);
			next_id++;
			memcpy(*arena_at, content, len + 1);
			t->text[id] = *arena_at;
			t->text_len[id] = (uint32_t)len;
			*arena_at += len + 1;
		}
		t->kind[id] = special ? TOK_SPECIAL : TOK_ADDED;
		*a = (struct added){ t->text[id], (uint32_t)len, id, (uint8_t)special,
				     (uint8_t)normalized };
		if (strtab_add(&t->added_by_text, a->text, len, (int32_t)t->n_added) >= 0)
			return BAD("added token '%.40s' is listed twice", content);
		t->n_added++;
	}
	return 0;
}

/* The two tries of added tokens' contents (byte-wise). */
static int build_tries(struct dsv4_tokenizer *t, char *err, size_t errlen)
{
	size_t total = 0;

	for (size_t k = 0; k < t->n_added; k++)
		total += t->added[k].len;
	t->node_added = malloc((total + 1) * sizeof(*t->node_added));
	if (!t->node_added || inttab_init(&t->edges, total + 1))
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	for (int r = 0; r < 2; r++)
		for (int b = 0; b < 256; b++)
			t->trie[r].root[b] = -1;
	for (size_t k = 0; k < t->n_added; k++) {
		const struct added *a = &t->added[k];
		const unsigned char *s = (const unsigned char *)a->text;
		int32_t *first = &t->trie[a->normalized].root[s[0]];
		int32_t node;

		if (*first < 0) {
			*first = (int32_t)t->n_nodes;
			t->node_added[t->n_nodes++] = -1;
		}
		node = *first;
		for (size_t i = 1; i < a->len; i++) {
			uint64_t key = (uint64_t)node << 8 | s[i];
			const struct int_slot *edge = inttab_get(&t->edges, key);

			if (!edge) {
				inttab_set(&t->edges, key, (int32_t)t->n_nodes, 0);
				t->node_added[t->n_nodes++] = -1;
				node = (int32_t)t->n_nodes - 1;
			} else {
				node = edge->a;
			}
		}
		t->node_added[node] = (int32_t)k;
	}
	return 0;
}

/* What each id decodes to: HF's ByteLevel decoder maps every character
 * back to its byte when all of them are GPT-2 characters, else keeps the
 * text as it is. */
static void decode_forms(struct dsv4_tokenizer *t)
{
	char *at = t->bytes_arena;

	for (uint32_t id = 0; id < t->size; id++) {
		const char *s = t->text[id];
		size_t len = t->text_len[id], i = 0, o = 0;

		if (!s)
			continue;
		while (i < len) {
			uint32_t cp;
			size_t n = utf8_decode(s + i, len - i, &cp);
			int b = n ? char_byte(cp) : -1;

			if (b < 0)
				break;
			at[o++] = (char)b;
			i += n;
		}
		if (i < len) {
			memcpy(at, s, len);
			o = len;
		}
		t->bytes[id] = at;
		t->bytes_len[id] = (uint32_t)o;
		at += o;
	}
}

static void small_chars(struct dsv4_tokenizer *t)
{
	for (uint32_t cp = 0; cp < SMALL_CHARS; cp++) {
		char u[2];
		size_t n = 1;

		if (cp < 0x80) {
			u[0] = (char)cp;
		} else {
			u[0] = (char)(0xc0 | cp >> 6);
			u[1] = (char)(0x80 | (cp & 0x3f));
			n = 2;
		}
		t->small_char[cp] = strtab_get(&t->vocab, u, n);
	}
}

/* Highest id named by the vocab and the added tokens, checking each. */
static int max_id(const json_t *vocab, const json_t *added, json_int_t *max, char *err,
		  size_t errlen)
{
	const char *key;
	json_t *v;
	size_t i;

	*max = -1;
	json_object_foreach((json_t *)vocab, key, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) >= (json_int_t)MAX_ID)
			return BAD("vocab entry '%.40s' has no valid id (an integer below %u)", key,
				   MAX_ID);
		if (json_integer_value(v) > *max)
			*max = json_integer_value(v);
	}
	json_array_foreach(added, i, v) {
		json_t *id = json_object_get(v, "id");

		if (!json_is_object(v) || !json_is_integer(id) || json_integer_value(id) < 0 ||
		    json_integer_value(id) >= (json_int_t)MAX_ID)
			return BAD("added_tokens[%zu] has no valid id (an integer below %u)", i, MAX_ID);
		if (json_integer_value(id) > *max)
			*max = json_integer_value(id);
	}
	if (*max < 0)
		return BAD("the vocab is empty");
	/* per-id tables are sized by the highest id: keep that near the count */
	if ((size_t)*max >= 4 * (json_object_size(vocab) + json_array_size(added)) + 65536)
		return BAD("id %lld is far beyond the %zu tokens listed (ids this sparse are not "
			   "supported)", (long long)*max,
			   json_object_size(vocab) + json_array_size(added));
	return 0;
}

/* Bytes the text arena needs: every vocab string and added content, NUL-terminated. */
static int arena_size(const json_t *vocab, const json_t *added, size_t *size, char *err,
		      size_t errlen)
{
	const char *key;
	json_t *v;
	size_t i, total = 0;

	json_object_foreach((json_t *)vocab, key, v) {
		size_t len = strlen(key);

		if (len >= UINT32_MAX || len + 1 > SIZE_MAX - total)
			return BAD("vocab string too long");
		total += len + 1;
	}
	json_array_foreach(added, i, v) {
		size_t len = json_string_length(json_object_get(v, "content"));

		if (len >= UINT32_MAX || len + 1 > SIZE_MAX - total)
			return BAD("added token too long");
		total += len + 1;
	}
	*size = total;
	return 0;
}

static int build(struct dsv4_tokenizer *t, const json_t *root, char *err, size_t errlen)
{
	const json_t *model = json_object_get(root, "model");
	const json_t *vocab = json_object_get(model, "vocab");
	const json_t *added = json_object_get(root, "added_tokens");
	const json_t *unk = json_object_get(model, "unk_token");
	json_int_t max = -1;
	size_t arena_len = 0;
	char *arena_at;
	int ret;

	if ((ret = check_model(model, err, errlen)) || (ret = check_others(root, err, errlen)) ||
	    (ret = max_id(vocab, added, &max, err, errlen)) ||
	    (ret = arena_size(vocab, added, &arena_len, err, errlen)))
		return ret;
	t->size = (uint32_t)max + 1;
	t->kind = calloc(t->size, sizeof(*t->kind));
	t->text = calloc(t->size, sizeof(*t->text));
	t->text_len = calloc(t->size, sizeof(*t->text_len));
	t->bytes = calloc(t->size, sizeof(*t->bytes));
	t->bytes_len = calloc(t->size, sizeof(*t->bytes_len));
	t->text_arena = malloc(arena_len + 1);
	t->bytes_arena = malloc(arena_len + 1);	/* a decoded form is never longer */
	if (!t->kind || !t->text || !t->text_len || !t->bytes || !t->bytes_len || !t->text_arena ||
	    !t->bytes_arena)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	arena_at = t->text_arena;
	if ((ret = load_vocab(t, vocab, &arena_at, err, errlen)) ||
	    (ret = load_merges(t, json_object_get(model, "merges"), err, errlen)) ||
	    (ret = load_added(t, added, json_object_size(vocab), &arena_at, err, errlen)) ||
	    (ret = build_tries(t, err, errlen)) ||
	    (ret = pretok_build(json_object_get(root, "pre_tokenizer"), &t->pretok, err, errlen)))
		return ret;
	t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
	t->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
	t->unk = -1;
	if (json_is_string(unk)) {
		t->unk = strtab_get(&t->vocab, json_string_value(unk), json_string_length(unk));
		if (t->unk < 0)
			return BAD("model.unk_token '%.40s' is not in the vocab",
				   json_string_value(unk));
	}
	decode_forms(t);
	small_chars(t);
	return 0;
}

int dsv4_tokenizer_parse(const char *json, size_t len, struct dsv4_tokenizer **out, char *err,
			 size_t errlen)
{
	struct dsv4_tokenizer *t;
	json_error_t je;
	json_t *root;
	int ret;

	*out = NULL;
	root = json_loadb(json, len, 0, &je);
	if (!root)
		return BAD("line %d column %d: %s", je.line, je.column, je.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return BAD("not a JSON object");
	}
	t = calloc(1, sizeof(*t));
	ret = t ? build(t, root, err, errlen) : dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	json_decref(root);
	if (ret) {
		dsv4_tokenizer_free(t);
		return ret;
	}
	*out = t;
	return 0;
}

int dsv4_tokenizer_load(const char *path, struct dsv4_tokenizer **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *json;
	long size;
	int ret;

	*out = NULL;
	if (!f)
		return dsv4_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return dsv4_errf(err, errlen, -EIO, "%s: cannot tell its size", path);
	}
	json = malloc((size_t)size + 1);
	if (!json) {
		fclose(f);
		return dsv4_errf(err, errlen, -ENOMEM, "%s: out of memory", path);
	}
	if (fread(json, 1, (size_t)size, f) != (size_t)size) {
		free(json);
		fclose(f);
		return dsv4_errf(err, errlen, -EIO, "%s: short read", path);
	}
	fclose(f);
	ret = dsv4_tokenizer_parse(json, (size_t)size, out, err, errlen);
	free(json);
	if (ret && err && errlen) {	/* say which file */
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", err);
		snprintf(err, errlen, "%s: %s", path, msg);
	}
	return ret;
}

/* ---- lookups ---- */

uint32_t dsv4_tokenizer_size(const struct dsv4_tokenizer *t)
{
	return t->size;
}

int32_t dsv4_token_lookup(const struct dsv4_tokenizer *t, const char *text)
{
	size_t len = strlen(text);
	int32_t k = strtab_get(&t->added_by_text, text, len);

	return k >= 0 ? t->added[k].id : strtab_get(&t->vocab, text, len);
}

int dsv4_token_is_special(const struct dsv4_tokenizer *t, int32_t id)
{
	return id >= 0 && (uint32_t)id < t->size && t->kind[id] == TOK_SPECIAL;
}

const char *dsv4_token_bytes(const struct dsv4_tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || (uint32_t)id >= t->size || !t->bytes[id]) {
		*len = 0;
		return NULL;
	}
	*len = t->bytes_len[id];
	return t->bytes[id];
}

/* ---- encoding ---- */

struct heap_item {
	int32_t rank;
	uint32_t pos;		/* the pair's left symbol */
};

/* One dsv4_tokenize call's state and scratch memory. */
struct encoder {
	const struct dsv4_tokenizer *t;
	unsigned flags;
	struct pretok_work *work;
	int32_t *ids;
	size_t n_ids, ids_cap;
	/* BPE over one word: symbols linked in a list, candidate merges in a heap */
	int32_t *sym;
	uint32_t *next, *prev;
	struct heap_item *heap;
	size_t word_cap;
	char *err;
	size_t errlen;
};

static int push_id(struct encoder *e, int32_t id)
{
	if (e->n_ids == e->ids_cap) {
		size_t cap = e->ids_cap ? e->ids_cap * 2 : 256;
		int32_t *grown;

		if (cap > SIZE_MAX / sizeof(*grown))
			return -ENOMEM;
		grown = realloc(e->ids, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		e->ids = grown;
		e->ids_cap = cap;
	}
	e->ids[e->n_ids++] = id;
	return 0;
}

static int word_reserve(struct encoder *e, size_t len)
{
	if (len <= e->word_cap)
		return 0;
	if (len > SIZE_MAX / 8 / sizeof(*e->heap) || len > UINT32_MAX / 4)
		return -ENOMEM;
	free(e->sym);
	free(e->next);
	free(e->prev);
	free(e->heap);
	e->sym = malloc(len * sizeof(*e->sym));
	e->next = malloc(len * sizeof(*e->next));
	e->prev = malloc(len * sizeof(*e->prev));
	/* n - 1 first pairs, then at most two per merge: stale ones stay queued */
	e->heap = malloc(3 * len * sizeof(*e->heap));
	e->word_cap = e->sym && e->next && e->prev && e->heap ? len : 0;
	return e->word_cap ? 0 : -ENOMEM;
}

static int heap_less(const struct heap_item *a, const struct heap_item *b)
{
	return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct heap_item *h, size_t *n, struct heap_item it)
{
	size_t i = (*n)++;

	while (i && heap_less(&it, &h[(i - 1) / 2])) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = it;
}

static struct heap_item heap_pop(struct heap_item *h, size_t *n)
{
	struct heap_item top = h[0], last = h[--*n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= *n)
			break;
		if (c + 1 < *n && heap_less(&h[c + 1], &h[c]))
			c++;
		if (!heap_less(&h[c], &last))
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = last;
	return top;
}

static void queue_pair(const struct dsv4_tokenizer *t, struct encoder *e, size_t *nh,
		       uint32_t left)
{
	const struct int_slot *m = inttab_get(&t->merges, pair_key(e->sym[left],
								   e->sym[e->next[left]]));

	if (m)
		heap_push(e->heap, nh, (struct heap_item){ m->a, left });
}

/* The id of the one character at s[0..n). */
static int32_t char_id(const struct dsv4_tokenizer *t, const char *s, size_t n, uint32_t cp)
{
	return cp < SMALL_CHARS ? t->small_char[cp] : strtab_get(&t->vocab, s, n);
}

/*
 * BPE over the n symbols of a short word: the pair ranks in an array,
 * scanned for the lowest (leftmost on ties) at each merge.  Quadratic, but
 * cheaper than the heap for the few symbols most words have.
 */
static int bpe_short(struct encoder *e, size_t n)
{
	const struct dsv4_tokenizer *t = e->t;
	int32_t sym[SHORT_WORD], merged[SHORT_WORD], rank[SHORT_WORD];

	for (size_t i = 0; i < n; i++)
		sym[i] = e->sym[i];
	for (size_t i = 0; i + 1 < n; i++) {
		const struct int_slot *m = inttab_get(&t->merges, pair_key(sym[i], sym[i + 1]));

		rank[i] = m ? m->a : -1;
		merged[i] = m ? m->b : -1;
	}
	for (;;) {
		size_t best = n;

		for (size_t i = 0; i + 1 < n; i++)
			if (rank[i] >= 0 && (best == n || rank[i] < rank[best]))
				best = i;
		if (best == n)
			break;
		/* symbols best and best + 1 become one; the arrays close up */
		sym[best] = merged[best];
		for (size_t i = best + 1; i + 1 < n; i++) {
			sym[i] = sym[i + 1];
			rank[i] = rank[i + 1];
			merged[i] = merged[i + 1];
		}
		n--;
		for (size_t i = best ? best - 1 : 0; i <= best && i + 1 < n; i++) {
			const struct int_slot *m = inttab_get(&t->merges, pair_key(sym[i], sym[i + 1]));

			rank[i] = m ? m->a : -1;
			merged[i] = m ? m->b : -1;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (push_id(e, sym[i]))
			return -ENOMEM;
	return 0;
}

/* BPE over one piece (in vocab form), as HF's merge_word + merge_all. */
static int bpe(struct encoder *e, const char *s, size_t len)
{
	const struct dsv4_tokenizer *t = e->t;
	size_t n = 0, nh = 0;
	int pending_unk = 0;

	if (t->ignore_merges) {
		int32_t whole = strtab_get(&t->vocab, s, len);

		if (whole >= 0)
			return push_id(e, whole);
	}
	if (word_reserve(e, len))
		return -ENOMEM;
	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t cl = utf8_decode(s + i, len - i, &cp);
		int32_t id;

		if (!cl)	/* cannot happen: pieces are valid UTF-8 */
			cl = 1;
		id = char_id(t, s + i, cl, cp);
		i += cl;
		if (id < 0) {
			/* not in the vocab: unk_token (one for a run when fuse_unk), or
			 * with none, the character is dropped, as HF does */
			if (t->unk >= 0 && (!pending_unk || !t->fuse_unk)) {
				e->sym[n++] = t->unk;
				pending_unk = 1;
			}
			continue;
		}
		pending_unk = 0;
		e->sym[n++] = id;
	}
	if (n == 1)
		return push_id(e, e->sym[0]);
	if (n <= SHORT_WORD)
		return bpe_short(e, n);
	for (size_t i = 0; i < n; i++) {
		e->next[i] = (uint32_t)(i + 1);
		e->prev[i] = i ? (uint32_t)(i - 1) : UINT32_MAX;
	}
	for (size_t i = 0; i + 1 < n; i++)
		queue_pair(t, e, &nh, (uint32_t)i);
	while (nh) {
		struct heap_item it = heap_pop(e->heap, &nh);
		uint32_t a = it.pos, b = e->next[a];
		const struct int_slot *m;

		if (e->sym[a] < 0 || b >= n)
			continue;	/* merged away, or the last symbol now */
		m = inttab_get(&t->merges, pair_key(e->sym[a], e->sym[b]));
		if (!m || m->a != it.rank)
			continue;	/* stale: a neighbour changed since it was queued */
		e->sym[a] = m->b;
		e->sym[b] = -1;
		e->next[a] = e->next[b];
		if (e->next[a] < n)
			e->prev[e->next[a]] = a;
		if (e->prev[a] != UINT32_MAX)
			queue_pair(t, e, &nh, e->prev[a]);
		if (e->next[a] < n)
			queue_pair(t, e, &nh, a);
	}
	for (size_t i = 0; i < n; i = e->next[i])
		if (push_id(e, e->sym[i]))
			return -ENOMEM;
	return 0;
}

/* Text with no added tokens left in it: pre-tokenize, then BPE each piece. */
static int encode_plain(struct encoder *e, const char *s, size_t len)
{
	const struct span *pieces;
	const char *base;
	size_t n;
	int ret;

	if (!len)
		return 0;
	ret = pretok_run(e->t->pretok, e->work, s, len, &base, &pieces, &n, e->err, e->errlen);
	for (size_t i = 0; !ret && i < n; i++)
		if (bpe(e, base + pieces[i].off, pieces[i].len))
			ret = dsv4_errf(e->err, e->errlen, -ENOMEM, "tokenize: out of memory");
	return ret;
}

/* The longest added token of trie @r at s[0..len): its index, or -1. */
static int32_t longest_added(const struct dsv4_tokenizer *t, int r, const unsigned char *s,
			     size_t len, size_t *mlen)
{
	int32_t node = t->trie[r].root[s[0]], best = -1;

	for (size_t depth = 1; node >= 0; depth++) {
		const struct int_slot *edge;

		if (t->node_added[node] >= 0) {
			best = t->node_added[node];
			*mlen = depth;
		}
		if (depth == len)
			break;
		edge = inttab_get(&t->edges, (uint64_t)node << 8 | s[depth]);
		node = edge ? edge->a : -1;
	}
	return best;
}

/*
 * Cuts the added tokens of pass @r out of s[0..len) (leftmost, longest
 * there) and hands the text between them to the next pass.  A special
 * token when specials are off is matched all the same and stays text.
 */
static int encode_pass(struct encoder *e, int r, const char *s, size_t len)
{
	const struct dsv4_tokenizer *t = e->t;
	size_t start = 0, i = 0, mlen = 0;
	int ret;

	while (i < len) {
		int32_t k = longest_added(t, r, (const unsigned char *)s + i, len - i, &mlen);

		if (k < 0) {
			i++;
			continue;
		}
		if (t->added[k].special && !(e->flags & DSV4_TOK_SPECIAL)) {
			i += mlen;
			continue;
		}
		ret = r ? encode_plain(e, s + start, i - start) : encode_pass(e, 1, s + start, i - start);
		if (ret)
			return ret;
		if (push_id(e, t->added[k].id))
			return dsv4_errf(e->err, e->errlen, -ENOMEM, "tokenize: out of memory");
		i += mlen;
		start = i;
	}
	return r ? encode_plain(e, s + start, len - start) : encode_pass(e, 1, s + start, len - start);
}

int dsv4_tokenize(const struct dsv4_tokenizer *t, const char *text, size_t len, unsigned flags,
		  int32_t **ids, size_t *n_ids, char *err, size_t errlen)
{
	struct encoder e = { .t = t, .flags = flags, .err = err, .errlen = errlen };
	size_t clean_len;
	char *clean;
	int ret;

	*ids = NULL;
	*n_ids = 0;
	clean = dsv4_utf8_sanitize(text ? text : "", text ? len : 0, &clean_len);
	e.work = pretok_work_new();
	e.ids_cap = 256;	/* allocated up front: a valid pointer even for no ids */
	e.ids = malloc(e.ids_cap * sizeof(*e.ids));
	if (!clean || !e.work || !e.ids)
		ret = dsv4_errf(err, errlen, -ENOMEM, "tokenize: out of memory");
	else
		ret = encode_pass(&e, 0, clean, clean_len);
	free(clean);
	pretok_work_free(e.work);
	free(e.sym);
	free(e.next);
	free(e.prev);
	free(e.heap);
	if (ret) {
		free(e.ids);
		return ret;
	}
	*ids = e.ids;
	*n_ids = e.n_ids;
	return 0;
}

/* ---- decoding ---- */

int dsv4_detokenize(const struct dsv4_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
		    char **text, size_t *len, char *err, size_t errlen)
{
	size_t total = 0, o = 0;
	char *raw;

	*text = NULL;
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] < 0 || (uint32_t)ids[i] >= t->size || !t->bytes[ids[i]])
			return dsv4_errf(err, errlen, -EINVAL, "detokenize: id %d at %zu names no token "
					 "(the tokenizer has %u ids)", ids[i], i, t->size);
		if (t->bytes_len[ids[i]] > SIZE_MAX - 1 - total)
			return dsv4_errf(err, errlen, -ENOMEM, "detokenize: too long");
		total += t->bytes_len[ids[i]];
	}
	raw = malloc(total + 1);
	if (!raw)
		return dsv4_errf(err, errlen, -ENOMEM, "detokenize: out of memory");
	for (size_t i = 0; i < n; i++) {
		if ((flags & DSV4_DETOK_SKIP_SPECIAL) && t->kind[ids[i]] == TOK_SPECIAL)
			continue;
		memcpy(raw + o, t->bytes[ids[i]], t->bytes_len[ids[i]]);
		o += t->bytes_len[ids[i]];
	}
	raw[o] = 0;
	if (flags & DSV4_DETOK_RAW) {
		*text = raw;
		*len = o;
		return 0;
	}
	*text = dsv4_utf8_sanitize(raw, o, len);
	free(raw);
	return *text ? 0 : dsv4_errf(err, errlen, -ENOMEM, "detokenize: out of memory");
}
