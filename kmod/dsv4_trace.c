// SPDX-License-Identifier: GPL-2.0
/* Instantiates the tracepoints declared in dsv4_trace.h. */
#define CREATE_TRACE_POINTS
#include "dsv4_trace.h"
