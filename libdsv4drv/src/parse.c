// SPDX-License-Identifier: MIT
/* Small parsers and names shared by the tools. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsv4drv.h"

int dsv4_parse_size(const char *text, uint64_t *bytes)
{
	unsigned long long value;
	unsigned int shift = 0;
	char *end;

	if (!text || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' && shift)
		end++;		/* "64Mi" */
	if (*end == 'B' && shift)
		end++;		/* "64MB", "64MiB": binary units regardless */
	if (*end != '\0')
		return -EINVAL;
	if (shift && value > (UINT64_MAX >> shift))
		return -ERANGE;
	*bytes = (uint64_t)value << shift;
	return 0;
}

static const char *const kind_names[DSV4_KIND_COUNT] = {
	[DSV4_KIND_GENERIC] = "generic",
	[DSV4_KIND_ENGRAM_TABLE] = "engram_table",
	[DSV4_KIND_EXPERT_STAGING] = "expert_staging",
	[DSV4_KIND_KV_SPILL] = "kv_spill",
};

const char *dsv4_kind_to_name(uint32_t kind)
{
	return kind < DSV4_KIND_COUNT ? kind_names[kind] : "unknown";
}

int dsv4_kind_from_name(const char *name, uint32_t *kind)
{
	for (uint32_t k = 0; k < DSV4_KIND_COUNT; k++) {
		if (!strcmp(name, kind_names[k])) {
			*kind = k;
			return 0;
		}
	}
	return -EINVAL;
}

const char *dsv4_state_to_string(uint32_t state, char *buf, size_t len)
{
	static const struct { uint32_t bit; const char *name; } names[] = {
		{ DSV4_STATE_SEALED, "sealed" },
		{ DSV4_STATE_PERSISTENT, "persistent" },
		{ DSV4_STATE_IMPORTED, "imported" },
		{ DSV4_STATE_DESTROYED, "destroyed" },
	};
	size_t used = 0;

	if (!len)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(state & names[i].bit))
			continue;
		int n = snprintf(buf + used, len - used, "%s%s",
				 used ? "," : "", names[i].name);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	if (!used)
		snprintf(buf, len, "-");
	return buf;
}
