/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints: events/dsv4/ in tracefs.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM dsv4

#if !defined(_DSV4_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _DSV4_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(dsv4_region_create,
	TP_PROTO(u32 id, u64 size, u32 kind, int node, u32 flags),
	TP_ARGS(id, size, kind, node, flags),
	TP_STRUCT__entry(
		__field(u32, id)
		__field(u64, size)
		__field(u32, kind)
		__field(int, node)
		__field(u32, flags)
	),
	TP_fast_assign(
		__entry->id = id;
		__entry->size = size;
		__entry->kind = kind;
		__entry->node = node;
		__entry->flags = flags;
	),
	TP_printk("id=%u size=%llu kind=%u node=%d flags=0x%x", __entry->id,
		  __entry->size, __entry->kind, __entry->node, __entry->flags)
);

TRACE_EVENT(dsv4_region_destroy,
	TP_PROTO(u32 id),
	TP_ARGS(id),
	TP_STRUCT__entry(__field(u32, id)),
	TP_fast_assign(__entry->id = id;),
	TP_printk("id=%u", __entry->id)
);

TRACE_EVENT(dsv4_region_free,
	TP_PROTO(u32 id, u64 size),
	TP_ARGS(id, size),
	TP_STRUCT__entry(
		__field(u32, id)
		__field(u64, size)
	),
	TP_fast_assign(
		__entry->id = id;
		__entry->size = size;
	),
	TP_printk("id=%u size=%llu", __entry->id, __entry->size)
);

TRACE_EVENT(dsv4_region_import,
	TP_PROTO(u32 id, u64 size, int memfd),
	TP_ARGS(id, size, memfd),
	TP_STRUCT__entry(
		__field(u32, id)
		__field(u64, size)
		__field(int, memfd)
	),
	TP_fast_assign(
		__entry->id = id;
		__entry->size = size;
		__entry->memfd = memfd;
	),
	TP_printk("id=%u size=%llu memfd=%d", __entry->id, __entry->size,
		  __entry->memfd)
);

TRACE_EVENT(dsv4_region_export,
	TP_PROTO(u32 id, u64 offset, u64 size, u32 flags),
	TP_ARGS(id, offset, size, flags),
	TP_STRUCT__entry(
		__field(u32, id)
		__field(u64, offset)
		__field(u64, size)
		__field(u32, flags)
	),
	TP_fast_assign(
		__entry->id = id;
		__entry->offset = offset;
		__entry->size = size;
		__entry->flags = flags;
	),
	TP_printk("id=%u offset=%llu size=%llu flags=0x%x", __entry->id,
		  __entry->offset, __entry->size, __entry->flags)
);

#endif /* _DSV4_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE dsv4_trace
#include <trace/define_trace.h>
