// SPDX-License-Identifier: MIT
/*
 * UTF-8 checks: well-formed sequences per Unicode Table 3-7, replacement of
 * ill-formed input by U+FFFD one per maximal subpart (what Python's
 * errors="replace" and Rust's from_utf8_lossy do), and the longest prefix
 * that holds only whole sequences (for streaming text out).
 */
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"
#include "text.h"

/* How many bytes of s[0..len) form a valid prefix of one sequence, and
 * the length the whole sequence needs (0: invalid lead byte). */
static size_t valid_prefix(const unsigned char *s, size_t len, size_t *need)
{
	unsigned char b = s[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (b < 0x80) {
		*need = 1;
		return 1;
	}
	if (b >= 0xc2 && b <= 0xdf)
		n = 2;
	else if (b >= 0xe0 && b <= 0xef)
		n = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		n = 4;
	else {
		*need = 0;
		return 0;
	}
	if (b == 0xe0)
		lo = 0xa0;
	else if (b == 0xed)
		hi = 0x9f;
	else if (b == 0xf0)
		lo = 0x90;
	else if (b == 0xf4)
		hi = 0x8f;
	*need = n;
	for (i = 1; i < n && i < len; i++) {
		unsigned char c = s[i];

		if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xbf))
			break;
	}
	return i;
}

size_t utf8_decode(const char *s, size_t len, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t need, got = valid_prefix(u, len, &need);

	if (!need || got != need)
		return 0;
	switch (need) {
	case 1: *cp = u[0]; break;
	case 2: *cp = (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f); break;
	case 3: *cp = (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
		break;
	default:
		*cp = (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3f) << 12 |
		      (uint32_t)(u[2] & 0x3f) << 6 | (u[3] & 0x3f);
	}
	return need;
}

char *dsv4_utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
	const unsigned char *u = (const unsigned char *)s;
	char *out;
	size_t o = 0, i = 0;

	/* each bad byte may become 3 bytes */
	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	while (i < len) {
		size_t need, got = valid_prefix(u + i, len - i, &need);

		if (need && got == need) {
			memcpy(out + o, u + i, got);
			o += got;
			i += got;
			continue;
		}
		memcpy(out + o, "\xef\xbf\xbd", 3);
		o += 3;
		i += got ? got : 1;
	}
	out[o] = 0;
	if (out_len)
		*out_len = o;
	return out;
}

size_t dsv4_utf8_complete_prefix(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t need, got = valid_prefix(u + i, len - i, &need);

		if (need && got == need) {
			i += got;
		} else if (need && i + got == len) {
			return i;	/* a sequence the next bytes may finish */
		} else {
			i += got ? got : 1;	/* ill-formed: final as it is */
		}
	}
	return len;
}
