// SPDX-License-Identifier: MIT
/*
 * safetensors: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then
 * the data area.  The header is parsed with jansson (duplicate keys and
 * invalid UTF-8 rejected) and every entry is checked before use: known
 * dtype, shape x element size == byte length without overflow, offsets
 * inside the data area, no two tensors overlapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "internal.h"

#define ST_HEADER_MAX	(100ULL << 20)	/* the format's own limit */

static int cmp_name(const void *a, const void *b)
{
	const struct dsv4_st_tensor *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static int cmp_offset(const void *a, const void *b)
{
	const struct dsv4_st_tensor *x = *(const struct dsv4_st_tensor *const *)a;
	const struct dsv4_st_tensor *y = *(const struct dsv4_st_tensor *const *)b;

	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* A JSON integer in [0, INT64_MAX], or -1. */
static long long json_uint(const json_t *v)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	return json_integer_value(v);
}

static int parse_entry(const char *name, json_t *v, uint64_t data_size,
		       struct dsv4_st_tensor *t, char *err, size_t errlen)
{
	json_t *dtype, *shape, *offs, *x;
	const char *key;
	uint64_t count = 1, nbytes;
	long long begin, end;
	size_t i;

	if (!json_is_object(v))
		return dsv4_errf(err, errlen, -EINVAL, "tensor '%s': entry is not an object", name);
	json_object_foreach(v, key, x) {
		if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
			return dsv4_errf(err, errlen, -EINVAL,
					 "tensor '%s': unknown field '%s'", name, key);
	}
	dtype = json_object_get(v, "dtype");
	shape = json_object_get(v, "shape");
	offs = json_object_get(v, "data_offsets");
	if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offs))
		return dsv4_errf(err, errlen, -EINVAL,
				 "tensor '%s': needs string dtype, array shape and data_offsets", name);
	if (dsv4_dtype_from_name(json_string_value(dtype), &t->dtype))
		return dsv4_errf(err, errlen, -EINVAL, "tensor '%s': unknown dtype '%s'",
				 name, json_string_value(dtype));
	if (json_array_size(shape) > DSV4_MAX_DIMS)
		return dsv4_errf(err, errlen, -EINVAL, "tensor '%s': %zu dimensions (max %d)",
				 name, json_array_size(shape), DSV4_MAX_DIMS);
	t->ndim = (uint32_t)json_array_size(shape);
	json_array_foreach(shape, i, x) {
		long long d = json_uint(x);

		if (d < 0)
			return dsv4_errf(err, errlen, -EINVAL,
					 "tensor '%s': shape[%zu] is not a non-negative integer", name, i);
		t->shape[i] = (uint64_t)d;
		if (__builtin_mul_overflow(count, (uint64_t)d, &count))
			return dsv4_errf(err, errlen, -EOVERFLOW, "tensor '%s': shape overflows", name);
	}
	if (__builtin_mul_overflow(count, (uint64_t)dsv4_dtype_size(t->dtype), &nbytes))
		return dsv4_errf(err, errlen, -EOVERFLOW, "tensor '%s': byte size overflows", name);
	if (json_array_size(offs) != 2)
		return dsv4_errf(err, errlen, -EINVAL, "tensor '%s': data_offsets needs 2 values", name);
	begin = json_uint(json_array_get(offs, 0));
	end = json_uint(json_array_get(offs, 1));
	if (begin < 0 || end < 0 || end < begin)
		return dsv4_errf(err, errlen, -EINVAL, "tensor '%s': bad data_offsets", name);
	if ((uint64_t)end > data_size)
		return dsv4_errf(err, errlen, -ERANGE,
				 "tensor '%s': data_offsets end %lld beyond the data area (%llu bytes)",
				 name, end, (unsigned long long)data_size);
	if ((uint64_t)(end - begin) != nbytes)
		return dsv4_errf(err, errlen, -EINVAL,
				 "tensor '%s': %s shape needs %llu bytes, data_offsets give %lld",
				 name, dsv4_dtype_name(t->dtype), (unsigned long long)nbytes, end - begin);
	t->offset = (uint64_t)begin;	/* made absolute by the caller */
	t->nbytes = nbytes;
	t->count = count;
	return 0;
}

static int check_metadata(json_t *meta, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(meta))
		return dsv4_errf(err, errlen, -EINVAL, "__metadata__ is not an object");
	json_object_foreach(meta, key, v) {
		if (!json_is_string(v))
			return dsv4_errf(err, errlen, -EINVAL, "__metadata__ '%s' is not a string", key);
	}
	return 0;
}

int dsv4_st_parse(const void *file_head, size_t avail, uint64_t file_size,
		  struct dsv4_st_header *out, char *err, size_t errlen)
{
	const uint8_t *p = file_head;
	struct dsv4_st_tensor **by_off = NULL;
	uint64_t hlen = 0, data_size;
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	size_t n = 0;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (file_size < 8 || avail < 8)
		return dsv4_errf(err, errlen, -EINVAL, "file of %llu bytes has no header",
				 (unsigned long long)file_size);
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | p[i];
	if (hlen < 2 || hlen > file_size - 8 || hlen > ST_HEADER_MAX)
		return dsv4_errf(err, errlen, -EINVAL,
				 "header length %llu does not fit a file of %llu bytes",
				 (unsigned long long)hlen, (unsigned long long)file_size);
	if (hlen > avail - 8)
		return dsv4_errf(err, errlen, -EINVAL, "header truncated");
	data_size = file_size - 8 - hlen;

	root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return dsv4_errf(err, errlen, -EINVAL, "header JSON: %s (line %d, column %d)",
				 jerr.text, jerr.line, jerr.column);
	if (!json_is_object(root)) {
		ret = dsv4_errf(err, errlen, -EINVAL, "header is not a JSON object");
		goto out;
	}
	out->tensors = calloc(json_object_size(root) + 1, sizeof(*out->tensors));
	if (!out->tensors) {
		ret = -ENOMEM;
		goto out;
	}
	json_object_foreach(root, key, v) {
		struct dsv4_st_tensor *t = &out->tensors[n];

		if (!strcmp(key, "__metadata__")) {
			ret = check_metadata(v, err, errlen);
			if (ret)
				goto out;
			continue;
		}
		if (!key[0]) {
			ret = dsv4_errf(err, errlen, -EINVAL, "empty tensor name");
			goto out;
		}
		ret = parse_entry(key, v, data_size, t, err, errlen);
		if (ret)
			goto out;
		t->name = strdup(key);
		if (!t->name) {
			ret = -ENOMEM;
			goto out;
		}
		n++;
	}
	out->count = n;
	out->data_offset = 8 + hlen;

	/* No two non-empty tensors may share bytes. */
	by_off = calloc(n + 1, sizeof(*by_off));
	if (!by_off) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		by_off[i] = &out->tensors[i];
	qsort(by_off, n, sizeof(*by_off), cmp_offset);
	for (size_t i = 1; i < n; i++) {
		const struct dsv4_st_tensor *a = by_off[i - 1], *b = by_off[i];

		if (a->nbytes && b->nbytes && b->offset < a->offset + a->nbytes) {
			ret = dsv4_errf(err, errlen, -EINVAL, "tensors '%s' and '%s' overlap",
					a->name, b->name);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++)
		out->tensors[i].offset += out->data_offset;
	qsort(out->tensors, n, sizeof(*out->tensors), cmp_name);
out:
	free(by_off);
	json_decref(root);
	if (ret)
		dsv4_st_header_free(out);
	return ret;
}

void dsv4_st_header_free(struct dsv4_st_header *h)
{
	if (!h->tensors)
		return;
	for (size_t i = 0; h->tensors[i].name; i++)	/* NULL-terminated */
		free(h->tensors[i].name);
	free(h->tensors);
	memset(h, 0, sizeof(*h));
}

const struct dsv4_st_tensor *dsv4_st_find(const struct dsv4_st_header *h,
					  const char *name)
{
	struct dsv4_st_tensor key = { .name = (char *)name };

	if (!h->count)
		return NULL;
	return bsearch(&key, h->tensors, h->count, sizeof(key), cmp_name);
}

int dsv4_st_open(const char *path, struct dsv4_st_file **out, char *err,
		 size_t errlen)
{
	struct dsv4_st_file *f;
	struct stat st;
	int ret;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		ret = dsv4_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(f->fd, &st) || !S_ISREG(st.st_mode)) {
		ret = dsv4_errf(err, errlen, -EINVAL, "%s: not a regular file", path);
		goto fail;
	}
	f->size = (uint64_t)st.st_size;
	if (f->size) {
		f->map = mmap(NULL, f->size, PROT_READ, MAP_SHARED, f->fd, 0);
		if (f->map == MAP_FAILED) {
			f->map = NULL;
			ret = dsv4_errf(err, errlen, -errno, "%s: mmap: %s", path, strerror(errno));
			goto fail;
		}
	}
	ret = dsv4_st_parse(f->map, f->size, f->size, &f->header, err, errlen);
	if (ret) {
		/* Prefix the file name to the parser's message. */
		char msg[384];

		snprintf(msg, sizeof(msg), "%s", err ? err : "");
		dsv4_errf(err, errlen, ret, "%s: %s", path, msg);
		goto fail;
	}
	f->path = strdup(path);
	if (!f->path) {
		ret = -ENOMEM;
		goto fail;
	}
	*out = f;
	return 0;
fail:
	dsv4_st_close(f);
	return ret;
}

void dsv4_st_close(struct dsv4_st_file *f)
{
	if (!f)
		return;
	dsv4_st_header_free(&f->header);
	if (f->map)
		munmap(f->map, f->size);
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f);
}

const void *dsv4_st_data(const struct dsv4_st_file *f, const struct dsv4_st_tensor *t)
{
	return (const uint8_t *)f->map + t->offset;
}
