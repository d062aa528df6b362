/* fuzz-srcs: libdsv4drv/src/safetensors.c libdsv4drv/src/dtype.c libdsv4drv/src/error.c ; fuzz-libs: -ljansson -lm */
// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: arbitrary bytes as a whole safetensors file.  The
 * parser must return 0 or -errno, never crash, leak or read out of bounds
 * (built with ASan + UBSan); on success every tensor lies inside the file.
 */
#include <stdint.h>
#include <stdlib.h>

#include "dsv4drv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dsv4_st_header h;
	char err[256];

	if (dsv4_st_parse(data, size, size, &h, err, sizeof(err)))
		return 0;
	for (size_t i = 0; i < h.count; i++) {
		const struct dsv4_st_tensor *t = &h.tensors[i];

		if (t->offset < h.data_offset || t->offset + t->nbytes > size ||
		    dsv4_st_find(&h, t->name) != t)
			abort();
	}
	dsv4_st_header_free(&h);
	return 0;
}
