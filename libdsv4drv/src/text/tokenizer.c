// SPDX-License-Identifier: MIT
/*
 * A checkpoint's tokenizer.json, run as HF tokenizers runs it: added
 * tokens are matched first (leftmost, longest); the text between them goes
 * through the pre-tokenizer (pretok.c), then byte-level BPE: each piece's
 * characters start as symbols and the adjacent pair with the lowest merge
 * rank is merged (leftmost on ties) until no pair has a rank.
 *
 * Accepted: normalizer null (or an empty Sequence), model BPE without
 * dropout, byte fallback, subword prefixes or suffixes; added tokens
 * without lstrip / rstrip / single_word; decoder ByteLevel or null.
 * Anything else is refused with the key that holds it.
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

struct added {
	const char *text;	/* points into tok_str */
	size_t len;
	int32_t id;
	int special;
};

/* open addressing: string -> id (vocab form), pair -> merge */
struct str_slot {
	uint64_t hash;
	int32_t id;		/* -1: empty */
};

struct pair_slot {
	uint64_t key;		/* left << 32 | right; 0 with rank -1: empty */
	int32_t rank, merged;
};

struct dsv4_tokenizer {
	uint32_t size;		/* highest id + 1 */
	char **str;		/* per id: vocab form or added content (NUL-terminated) */
	uint32_t *str_len;
	char **bytes;		/* per id: what it decodes to */
	uint32_t *bytes_len;
	uint8_t *special;	/* per id: 1 special added, 2 other added */
	struct str_slot *vocab_tab;
	size_t vocab_mask;
	struct pair_slot *pair_tab;
	size_t pair_mask;
	struct added *added;	/* longest first */
	size_t n_added;
	size_t first_byte[257];	/* added tokens starting with byte b: [first_byte[b] ..) in by_byte */
	size_t *by_byte;
	struct pretok *pretok;
	int ignore_merges;
};

static uint64_t str_hash(const char *s, size_t len)
{
	return XXH3_64bits(s, len);
}

static size_t table_size(size_t n)
{
	size_t sz = 16;

	while (sz < n * 2)
		sz <<= 1;
	return sz;
}

static int32_t vocab_find(const struct dsv4_tokenizer *t, const char *s, size_t len)
{
	uint64_t h = str_hash(s, len);

	for (size_t i = h & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
		const struct str_slot *sl = &t->vocab_tab[i];

		if (sl->id < 0)
			return -1;
		if (sl->hash == h && t->str_len[sl->id] == len && !memcmp(t->str[sl->id], s, len) &&
		    t->special[sl->id] == 0)
			return sl->id;
	}
}

static void vocab_put(struct dsv4_tokenizer *t, int32_t id)
{
	uint64_t h = str_hash(t->str[id], t->str_len[id]);
	size_t i = h & t->vocab_mask;

	while (t->vocab_tab[i].id >= 0)
		i = (i + 1) & t->vocab_mask;
	t->vocab_tab[i].hash = h;
	t->vocab_tab[i].id = id;
}

static const struct pair_slot *pair_find(const struct dsv4_tokenizer *t, int32_t a, int32_t b)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	uint64_t h = XXH3_64bits(&key, sizeof(key));

	for (size_t i = h & t->pair_mask;; i = (i + 1) & t->pair_mask) {
		const struct pair_slot *sl = &t->pair_tab[i];

		if (sl->rank < 0)
			return NULL;
		if (sl->key == key)
			return sl;
	}
}

/* 0, or 1 when the pair already has a (lower) rank: HF keeps the first */
static int pair_put(struct dsv4_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	uint64_t h = XXH3_64bits(&key, sizeof(key));
	size_t i = h & t->pair_mask;

	while (t->pair_tab[i].rank >= 0) {
		if (t->pair_tab[i].key == key)
			return 1;
		i = (i + 1) & t->pair_mask;
	}
	t->pair_tab[i] = (struct pair_slot){ key, rank, merged };
	return 0;
}

void dsv4_tokenizer_free(struct dsv4_tokenizer *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; t->str && i < t->size; i++) {
		free(t->str[i]);
		free(t->bytes[i]);
	}
	free(t->str);
	free(t->str_len);
	free(t->bytes);
	free(t->bytes_len);
	free(t->special);
	free(t->vocab_tab);
	free(t->pair_tab);
	free(t->added);
	free(t->by_byte);
	pretok_free(t->pretok);
	free(t);
}

/* What a token decodes to: HF's ByteLevel decoder maps each character back
 * to its byte when every character is a mapped one, else keeps the text. */
static int token_bytes(struct dsv4_tokenizer *t, int32_t id, int byte_level)
{
	const char *s = t->str[id];
	size_t len = t->str_len[id], o = 0;
	char *out = malloc(len + 1);

	if (!out)
		return -ENOMEM;
	if (byte_level) {
		size_t i = 0;

		while (i < len) {
			uint32_t cp;
			size_t n = utf8_decode(s + i, len - i, &cp);
			int b = n ? char_byte(cp) : -1;

			if (b < 0)
				break;
			out[o++] = (char)b;
			i += n;
		}
		if (i < len)
			o = 0;	/* not all mapped: the text itself */
		else
			goto done;
	}
	memcpy(out, s, len);
	o = len;
done:
	out[o] = 0;
	t->bytes[id] = out;
	t->bytes_len[id] = (uint32_t)o;
	return 0;
}

static int set_token(struct dsv4_tokenizer *t, json_int_t id, const char *s, size_t len,
		     const char *what, char *err, size_t errlen)
{
	if (id < 0 || (uint64_t)id >= t->size)
		return dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: %s id %lld out of range",
				 what, (long long)id);
	if (t->str[id])
		return dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: %s id %lld used twice",
				 what, (long long)id);
	if (!len || memchr(s, 0, len))
		return dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: %s id %lld has an empty "
				 "or NUL-holding text", what, (long long)id);
	t->str[id] = malloc(len + 1);
	if (!t->str[id])
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	memcpy(t->str[id], s, len);
	t->str[id][len] = 0;
	t->str_len[id] = (uint32_t)len;
	return 0;
}

static int by_length_desc(const void *a, const void *b)
{
	const struct added *x = a, *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->id < y->id ? -1 : 1;
}

static int load_added(struct dsv4_tokenizer *t, const json_t *list, char *err, size_t errlen)
{
	size_t i, k = 0;
	json_t *e;

	t->added = calloc(json_array_size(list) + 1, sizeof(*t->added));
	t->by_byte = calloc(json_array_size(list) + 1, sizeof(*t->by_byte));
	if (!t->added || !t->by_byte)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	json_array_foreach(list, i, e) {
		const json_t *id = json_object_get(e, "id"), *c = json_object_get(e, "content");
		static const char *const unsupported[] = { "lstrip", "rstrip", "single_word" };

		if (!json_is_integer(id) || !json_is_string(c))
			return dsv4_errf(err, errlen, -EINVAL,
					 "tokenizer.json: added_tokens[%zu] needs an integer id and a "
					 "string content", i);
		for (int u = 0; u < 3; u++)
			if (json_is_true(json_object_get(e, unsupported[u])))
				return dsv4_errf(err, errlen, -ENOTSUP,
						 "tokenizer.json: added token '%s' sets %s, which is "
						 "not supported", json_string_value(c), unsupported[u]);
		json_int_t v = json_integer_value(id);

		if (v >= 0 && (uint64_t)v < t->size && t->str[v] && !t->special[v] &&
		    t->str_len[v] == json_string_length(c) &&
		    !memcmp(t->str[v], json_string_value(c), t->str_len[v])) {
			/* also in the vocab (BOS/EOS often are): one entry */
		} else {
			if (v >= 0 && (uint64_t)v < t->size && t->str[v] && !t->special[v]) {
				free(t->str[v]);
				t->str[v] = NULL;	/* the added content wins */
			}
			if (set_token(t, v, json_string_value(c), json_string_length(c),
				      "added token", err, errlen))
				return -EINVAL;
		}
		t->special[v] = json_is_true(json_object_get(e, "special")) ? 1 : 2;
		t->added[k++] = (struct added){ t->str[v], t->str_len[v], (int32_t)v,
						t->special[v] == 1 };
	}
	t->n_added = k;
	qsort(t->added, k, sizeof(*t->added), by_length_desc);
	/* an index by first byte, each bucket longest first */
	memset(t->first_byte, 0, sizeof(t->first_byte));
	for (size_t a = 0; a < k; a++)
		t->first_byte[(unsigned char)t->added[a].text[0] + 1]++;
	for (int b = 0; b < 256; b++)
		t->first_byte[b + 1] += t->first_byte[b];
	{
		size_t fill[256];

		memcpy(fill, t->first_byte, sizeof(fill));
		for (size_t a = 0; a < k; a++)
			t->by_byte[fill[(unsigned char)t->added[a].text[0]]++] = a;
	}
	return 0;
}

static int check_model(const json_t *m, char *err, size_t errlen)
{
	const char *type = json_string_value(json_object_get(m, "type"));
	static const char *const null_keys[] = { "dropout", "continuing_subword_prefix",
						 "end_of_word_suffix", "unk_token" };

	if (!type || strcmp(type, "BPE"))
		return dsv4_errf(err, errlen, -ENOTSUP, "tokenizer.json: model type '%s' is not "
				 "supported (BPE is)", type ? type : "");
	for (int i = 0; i < 4; i++) {
		const json_t *v = json_object_get(m, null_keys[i]);

		if (v && !json_is_null(v) && !(json_is_string(v) && !json_string_length(v)))
			return dsv4_errf(err, errlen, -ENOTSUP,
					 "tokenizer.json: model.%s is set; it is not supported",
					 null_keys[i]);
	}
	if (json_is_true(json_object_get(m, "byte_fallback")))
		return dsv4_errf(err, errlen, -ENOTSUP,
				 "tokenizer.json: model.byte_fallback is not supported");
	if (!json_is_object(json_object_get(m, "vocab")) ||
	    !json_is_array(json_object_get(m, "merges")))
		return dsv4_errf(err, errlen, -EINVAL,
				 "tokenizer.json: model needs a vocab object and a merges list");
	return 0;
}

static int load_merges(struct dsv4_tokenizer *t, const json_t *merges, char *err, size_t errlen)
{
	size_t i;
	json_t *e;
	char *buf = NULL;
	size_t cap = 0;
	int ret = 0;

	t->pair_mask = table_size(json_array_size(merges) + 1) - 1;
	t->pair_tab = malloc((t->pair_mask + 1) * sizeof(*t->pair_tab));
	if (!t->pair_tab)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	for (size_t s = 0; s <= t->pair_mask; s++)
		t->pair_tab[s] = (struct pair_slot){ 0, -1, -1 };
	json_array_foreach(merges, i, e) {
		const char *a, *b;
		size_t al, bl;
		int32_t ia, ib, im;

		if (json_is_array(e) && json_array_size(e) == 2 &&
		    json_is_string(json_array_get(e, 0)) && json_is_string(json_array_get(e, 1))) {
			a = json_string_value(json_array_get(e, 0));
			al = json_string_length(json_array_get(e, 0));
			b = json_string_value(json_array_get(e, 1));
			bl = json_string_length(json_array_get(e, 1));
		} else if (json_is_string(e) && strchr(json_string_value(e), ' ')) {
			a = json_string_value(e);
			b = strchr(a, ' ') + 1;
			al = (size_t)(b - 1 - a);
			bl = json_string_length(e) - al - 1;
		} else {
			ret = dsv4_errf(err, errlen, -EINVAL,
					"tokenizer.json: merges[%zu] is neither [\"a\", \"b\"] nor \"a b\"", i);
			break;
		}
		if (al + bl + 1 > cap) {
			char *grown = realloc(buf, cap = (al + bl + 1) * 2);

			if (!grown) {
				ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
				break;
			}
			buf = grown;
		}
		memcpy(buf, a, al);
		memcpy(buf + al, b, bl);
		ia = vocab_find(t, a, al);
		ib = vocab_find(t, b, bl);
		im = vocab_find(t, buf, al + bl);
		if (ia < 0 || ib < 0 || im < 0) {
			ret = dsv4_errf(err, errlen, -EINVAL,
					"tokenizer.json: merges[%zu] (\"%.*s\" \"%.*s\") names a token "
					"not in the vocab", i, (int)(al > 40 ? 40 : al), a,
					(int)(bl > 40 ? 40 : bl), b);
			break;
		}
		if (i > INT32_MAX - 1) {
			ret = dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: too many merges");
			break;
		}
		pair_put(t, ia, ib, (int32_t)i, im);
	}
	free(buf);
	return ret;
}

int dsv4_tokenizer_parse(const char *text, size_t len, struct dsv4_tokenizer **out, char *err,
			 size_t errlen)
{
	struct dsv4_tokenizer *t = NULL;
	json_error_t je;
	json_t *root, *model, *vocab, *added, *norm, *dec, *v;
	const char *key;
	json_int_t max_id = -1;
	size_t i;
	int ret = -EINVAL;

	*out = NULL;
	byte_level_init();
	root = json_loadb(text, len, 0, &je);
	if (!root)
		return dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: line %d: %s", je.line, je.text);
	if (!json_is_object(root)) {
		dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: not a JSON object");
		goto out;
	}
	model = json_object_get(root, "model");
	added = json_object_get(root, "added_tokens");
	norm = json_object_get(root, "normalizer");
	dec = json_object_get(root, "decoder");
	if (check_model(model, err, errlen))
		goto out;
	if (added && !json_is_array(added) && !json_is_null(added)) {
		dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: added_tokens is not a list");
		goto out;
	}
	if (norm && !json_is_null(norm) &&
	    !(!strcmp(json_string_value(json_object_get(norm, "type")) ?: "", "Sequence") &&
	      json_is_array(json_object_get(norm, "normalizers")) &&
	      !json_array_size(json_object_get(norm, "normalizers")))) {
		dsv4_errf(err, errlen, -ENOTSUP, "tokenizer.json: normalizer '%s' is not supported "
			  "(null is)", json_string_value(json_object_get(norm, "type")) ?: "?");
		goto out;
	}
	if (dec && !json_is_null(dec) &&
	    strcmp(json_string_value(json_object_get(dec, "type")) ?: "", "ByteLevel")) {
		dsv4_errf(err, errlen, -ENOTSUP, "tokenizer.json: decoder '%s' is not supported "
			  "(ByteLevel or null are)", json_string_value(json_object_get(dec, "type")) ?: "?");
		goto out;
	}
	vocab = json_object_get(model, "vocab");
	json_object_foreach(vocab, key, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) >= MAX_ID) {
			dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: vocab entry '%.40s' has no "
				  "valid id", key);
			goto out;
		}
		if (json_integer_value(v) > max_id)
			max_id = json_integer_value(v);
	}
	json_array_foreach(added, i, v) {
		json_t *id = json_object_get(v, "id");

		if (!json_is_integer(id) || json_integer_value(id) < 0 ||
		    json_integer_value(id) >= MAX_ID) {
			dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: added_tokens[%zu] has no "
				  "valid id", i);
			goto out;
		}
		if (json_integer_value(id) > max_id)
			max_id = json_integer_value(id);
	}
	if (max_id < 0) {
		dsv4_errf(err, errlen, -EINVAL, "tokenizer.json: the vocab is empty");
		goto out;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	t->size = (uint32_t)max_id + 1;
	t->str = calloc(t->size, sizeof(*t->str));
	t->str_len = calloc(t->size, sizeof(*t->str_len));
	t->bytes = calloc(t->size, sizeof(*t->bytes));
	t->bytes_len = calloc(t->size, sizeof(*t->bytes_len));
	t->special = calloc(t->size, 1);
	t->vocab_mask = table_size(json_object_size(vocab) + 1) - 1;
	t->vocab_tab = malloc((t->vocab_mask + 1) * sizeof(*t->vocab_tab));
	if (!t->str || !t->str_len || !t->bytes || !t->bytes_len || !t->special || !t->vocab_tab)
		goto nomem;
	for (size_t s = 0; s <= t->vocab_mask; s++)
		t->vocab_tab[s].id = -1;
	json_object_foreach(vocab, key, v) {
		ret = set_token(t, json_integer_value(v), key, strlen(key), "vocab", err, errlen);
		if (ret)
			goto out;
		vocab_put(t, (int32_t)json_integer_value(v));
	}
	t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
	ret = load_merges(t, json_object_get(model, "merges"), err, errlen);
	if (ret)
		goto out;
	ret = load_added(t, added, err, errlen);
	if (ret)
		goto out;
	ret = pretok_build(json_object_get(root, "pre_tokenizer"), &t->pretok, err, errlen);
	if (ret)
		goto out;
	for (uint32_t id = 0; id < t->size; id++) {
		if (!t->str[id]) {	/* a hole in the ids: decodes to nothing */
			t->str[id] = calloc(1, 1);
			if (!t->str[id])
				goto nomem;
		}
		if (token_bytes(t, (int32_t)id, dec && !json_is_null(dec)))
			goto nomem;
	}
	*out = t;
	t = NULL;
	ret = 0;
	goto out;
nomem:
	ret = dsv4_errf(err, errlen, -ENOMEM, "out of memory");
out:
	dsv4_tokenizer_free(t);
	json_decref(root);
	return ret;
}

int dsv4_tokenizer_load(const char *path, struct dsv4_tokenizer **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *text;
	long size;
	int ret;

	*out = NULL;
	if (!f)
		return dsv4_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return dsv4_errf(err, errlen, -EIO, "%s: cannot size it", path);
	}
	text = malloc((size_t)size + 1);
	if (!text) {
		fclose(f);
		return dsv4_errf(err, errlen, -ENOMEM, "%s: out of memory", path);
	}
	if (fread(text, 1, (size_t)size, f) != (size_t)size) {
		free(text);
		fclose(f);
		return dsv4_errf(err, errlen, -EIO, "%s: short read", path);
	}
	fclose(f);
	ret = dsv4_tokenizer_parse(text, (size_t)size, out, err, errlen);
	free(text);
	if (ret && err && errlen) {	/* say which file */
		char msg[512];

		snprintf(msg, sizeof(msg), "%s: %s", path, err);
		snprintf(err, errlen, "%s", msg);
	}
	return ret;
}

uint32_t dsv4_tokenizer_size(const struct dsv4_tokenizer *t)
{
	return t->size;
}

int32_t dsv4_token_lookup(const struct dsv4_tokenizer *t, const char *text)
{
	size_t len = strlen(text);

	for (size_t a = 0; a < t->n_added; a++)
		if (t->added[a].len == len && !memcmp(t->added[a].text, text, len))
			return t->added[a].id;
	return vocab_find(t, text, len);
}

int dsv4_token_is_special(const struct dsv4_tokenizer *t, int32_t id)
{
	return id >= 0 && (uint32_t)id < t->size && t->special[id] == 1;
}

const char *dsv4_token_bytes(const struct dsv4_tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || (uint32_t)id >= t->size) {
		*len = 0;
		return NULL;
	}
	*len = t->bytes_len[id];
	return t->bytes[id];
}

/* ---- encoding ---- */

struct ids {
	int32_t *v;
	size_t n, cap;
};

static int ids_push(struct ids *o, int32_t id)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		int32_t *grown = realloc(o->v, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		o->v = grown;
		o->cap = cap;
	}
	o->v[o->n++] = id;
	return 0;
}

struct heap_item {
	int32_t rank;
	uint32_t pos;		/* left symbol */
};

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
	struct heap_item top = h[0], last = h[--(*n)];
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

/* BPE over one piece (vocab-form text). */
static int bpe(const struct dsv4_tokenizer *t, const char *s, size_t len, struct ids *o)
{
	int32_t *sym;
	uint32_t *next, *prev;
	struct heap_item *heap;
	size_t n = 0, nh = 0;
	int ret = 0;

	if (t->ignore_merges) {
		int32_t whole = vocab_find(t, s, len);

		if (whole >= 0)
			return ids_push(o, whole);
	}
	sym = malloc(len * sizeof(*sym));
	next = malloc(len * sizeof(*next));
	prev = malloc(len * sizeof(*prev));
	/* n - 1 initial pairs plus at most two per merge (stale ones stay) */
	heap = malloc((3 * len + 1) * sizeof(*heap));
	if (!sym || !next || !prev || !heap) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t cl = utf8_decode(s + i, len - i, &cp);
		int32_t id;

		if (!cl)
			cl = 1;
		id = vocab_find(t, s + i, cl);
		i += cl;
		if (id < 0)
			continue;	/* no unk token: HF drops the character */
		sym[n] = id;
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		next[i] = (uint32_t)(i + 1);
		prev[i] = (uint32_t)(i ? i - 1 : UINT32_MAX);
	}
	for (size_t i = 0; i + 1 < n; i++) {
		const struct pair_slot *p = pair_find(t, sym[i], sym[i + 1]);

		if (p)
			heap_push(heap, &nh, (struct heap_item){ p->rank, (uint32_t)i });
	}
	while (nh) {
		struct heap_item it = heap_pop(heap, &nh);
		uint32_t a = it.pos, b = next[a];
		const struct pair_slot *p;

		if (sym[a] < 0 || b >= n)
			continue;
		p = pair_find(t, sym[a], sym[b]);
		if (!p || p->rank != it.rank)
			continue;	/* stale: a neighbour changed */
		sym[a] = p->merged;
		sym[b] = -1;
		next[a] = next[b];
		if (next[b] < n)
			prev[next[b]] = a;
		if (prev[a] != UINT32_MAX) {
			const struct pair_slot *q = pair_find(t, sym[prev[a]], sym[a]);

			if (q)
				heap_push(heap, &nh, (struct heap_item){ q->rank, prev[a] });
		}
		if (next[a] < n) {
			const struct pair_slot *q = pair_find(t, sym[a], sym[next[a]]);

			if (q)
				heap_push(heap, &nh, (struct heap_item){ q->rank, a });
		}
	}
	for (size_t i = 0; i < n && !ret; i = next[i])
		ret = ids_push(o, sym[i]);
out:
	free(sym);
	free(next);
	free(prev);
	free(heap);
	return ret;
}

/* Text between added tokens: pre-tokenize, then BPE each piece. */
static int encode_plain(const struct dsv4_tokenizer *t, const char *s, size_t len,
			struct pieces *pc, struct ids *o)
{
	int ret;

	if (!len)
		return 0;
	pieces_clear(pc);
	ret = pretok_run(t->pretok, s, len, pc);
	for (size_t i = 0; !ret && i < pc->n; i++)
		ret = bpe(t, pc->arena + pc->off[i], pc->len[i], o);
	return ret;
}

/* The longest active added token at s[0..len), or -1. */
static long added_at(const struct dsv4_tokenizer *t, const char *s, size_t len, unsigned flags)
{
	unsigned char b = (unsigned char)s[0];

	for (size_t k = t->first_byte[b]; k < t->first_byte[b + 1]; k++) {
		const struct added *a = &t->added[t->by_byte[k]];

		if (a->special && !(flags & DSV4_TOK_SPECIAL))
			continue;
		if (a->len <= len && !memcmp(a->text, s, a->len))
			return (long)t->by_byte[k];
	}
	return -1;
}

int dsv4_tokenize(const struct dsv4_tokenizer *t, const char *text, size_t len, unsigned flags,
		  int32_t **ids, size_t *n_ids, char *err, size_t errlen)
{
	struct pieces pc = { 0 };
	struct ids o = { 0 };
	size_t clean_len, start = 0, i = 0;
	char *clean;
	int ret = 0;

	*ids = NULL;
	*n_ids = 0;
	clean = dsv4_utf8_sanitize(text ? text : "", text ? len : 0, &clean_len);
	if (!clean)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	while (i < clean_len && !ret) {
		long a = t->n_added ? added_at(t, clean + i, clean_len - i, flags) : -1;

		if (a < 0) {
			i++;
			continue;
		}
		ret = encode_plain(t, clean + start, i - start, &pc, &o);
		if (!ret)
			ret = ids_push(&o, t->added[a].id);
		i += t->added[a].len;
		start = i;
	}
	if (!ret)
		ret = encode_plain(t, clean + start, clean_len - start, &pc, &o);
	free(clean);
	pieces_free(&pc);
	if (ret) {
		free(o.v);
		return dsv4_errf(err, errlen, ret, "tokenize: out of memory");
	}
	if (!o.v)
		o.v = malloc(sizeof(*o.v));	/* a valid pointer for zero ids */
	*ids = o.v;
	*n_ids = o.n;
	return o.v ? 0 : dsv4_errf(err, errlen, -ENOMEM, "out of memory");
}

int dsv4_detokenize(const struct dsv4_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
		    char **text, size_t *len, char *err, size_t errlen)
{
	size_t total = 0, o = 0;
	char *raw;

	*text = NULL;
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] < 0 || (uint32_t)ids[i] >= t->size)
			return dsv4_errf(err, errlen, -EINVAL, "token id %d at %zu is not below %u",
					 ids[i], i, t->size);
		total += t->bytes_len[ids[i]];
	}
	raw = malloc(total + 1);
	if (!raw)
		return dsv4_errf(err, errlen, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if ((flags & DSV4_DETOK_SKIP_SPECIAL) && t->special[ids[i]] == 1)
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
	return *text ? 0 : dsv4_errf(err, errlen, -ENOMEM, "out of memory");
}
