// SPDX-License-Identifier: MIT
/*
 * Streaming safetensors writer: the header is computed from the specs and
 * written first, then tensor data is appended in order, so checkpoints
 * larger than memory can be written.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsv4drv.h"
#include "internal.h"

struct dsv4_st_writer {
	FILE *fp;
	char *path;
	uint64_t expected;	/* data bytes the header promises */
	uint64_t written;
	int failed;
};

uint64_t dsv4_spec_nbytes(const struct dsv4_tensor_spec *s)
{
	uint64_t n = dsv4_dtype_size(s->dtype);

	for (uint32_t i = 0; i < s->ndim; i++)
		n *= s->shape[i];
	return n;
}

int dsv4_st_writer_open(const char *path, const struct dsv4_tensor_spec *specs,
			size_t n, struct dsv4_st_writer **out, char *err, size_t errlen)
{
	json_t *root = json_object();
	struct dsv4_st_writer *w;
	uint64_t off = 0, hlen;
	char *text = NULL;
	size_t tlen, pad;
	uint8_t lenbuf[8];
	int ret = 0;

	*out = NULL;
	for (size_t i = 0; i < n && !ret; i++) {
		json_t *shape = json_array();
		uint64_t nb = dsv4_spec_nbytes(&specs[i]);

		for (uint32_t d = 0; d < specs[i].ndim; d++)
			json_array_append_new(shape, json_integer((json_int_t)specs[i].shape[d]));
		if (json_object_get(root, specs[i].name))
			ret = dsv4_errf(err, errlen, -EINVAL, "%s: tensor '%s' listed twice", path, specs[i].name);
		else
			json_object_set_new(root, specs[i].name,
					    json_pack("{s:s,s:o,s:[I,I]}", "dtype",
						      dsv4_dtype_name(specs[i].dtype), "shape", shape,
						      "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
		off += nb;
	}
	if (!ret) {
		text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
		if (!text)
			ret = -ENOMEM;
	}
	json_decref(root);
	if (ret)
		return ret;
	tlen = strlen(text);
	pad = (8 - (8 + tlen) % 8) % 8;	/* data starts 8-byte aligned */
	hlen = tlen + pad;
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t)(hlen >> (8 * i));

	w = calloc(1, sizeof(*w));
	if (!w || !(w->path = strdup(path))) {
		free(w);
		free(text);
		return -ENOMEM;
	}
	w->fp = fopen(path, "wbe");
	if (!w->fp) {
		ret = dsv4_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
		free(text);
		free(w->path);
		free(w);
		return ret;
	}
	w->expected = off;
	if (fwrite(lenbuf, 1, 8, w->fp) != 8 || fwrite(text, 1, tlen, w->fp) != tlen ||
	    fwrite("        ", 1, pad, w->fp) != pad)
		w->failed = errno ? errno : EIO;
	free(text);
	*out = w;
	return 0;
}

int dsv4_st_writer_write(struct dsv4_st_writer *w, const void *data, size_t len)
{
	if (w->failed)
		return -w->failed;
	if (len > w->expected - w->written) {
		w->failed = EOVERFLOW;
		return -EOVERFLOW;
	}
	if (fwrite(data, 1, len, w->fp) != len) {
		w->failed = errno ? errno : EIO;
		return -w->failed;
	}
	w->written += len;
	return 0;
}

int dsv4_st_writer_close(struct dsv4_st_writer *w, char *err, size_t errlen)
{
	int ret = 0;

	if (!w)
		return 0;
	if (fclose(w->fp) && !w->failed)
		w->failed = errno ? errno : EIO;
	if (w->failed)
		ret = dsv4_errf(err, errlen, -w->failed, "%s: write failed: %s", w->path,
				strerror(w->failed));
	else if (w->written != w->expected)
		ret = dsv4_errf(err, errlen, -EINVAL, "%s: %llu data bytes written, header promised %llu",
				w->path, (unsigned long long)w->written, (unsigned long long)w->expected);
	if (ret)
		unlink(w->path);	/* never leave a file that lies */
	free(w->path);
	free(w);
	return ret;
}
