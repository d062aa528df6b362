// SPDX-License-Identifier: MIT
/*
 * gpu_timeline: a CUDA injection library (CUDA_INJECTION64_PATH) that
 * records every kernel's start and end with CUPTI's activity API and, at
 * exit, prints the timeline of one replay of each CUDA graph that was
 * replayed a few times: when each kernel ran, on which stream, and the
 * gaps where the GPU ran nothing.  The graph profile
 * (DSV4_GPU_PROFILE=graph) says what each launch costs on the critical
 * path; this says where the step's time goes between them.
 *
 *   CUDA_INJECTION64_PATH=build/gpu-kit/libgpu_timeline.so \
 *   DSV4_TIMELINE=out.txt gpu_bench --model M --contexts 4096 --steps 16
 *
 * The replay shown is the one whose span is the median of its graph's.
 * For benchmarks only: CUPTI's timestamps add a little to each kernel.
 *
 * DSV4_TIMELINE_API=1 also lists the host's driver calls around the
 * median gap between replays, to show their order.  Not their cost:
 * traced, cuGraphLaunch itself took about 200 us, where the step's time
 * less the back-to-back replay time (DSV4_GPU_PROFILE=replay) says the
 * host adds about 20 us between replays untraced.
 */
#include <cupti.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kernel_rec {
	uint64_t start, end;
	uint32_t stream, corr, graph;
	int32_t gx, gy, gz;
	const char *name;	/* interned: names[] */
};

static struct kernel_rec *recs;
static size_t nrecs, caprecs;
static char **names;
static size_t nnames;
static int dropped;
/* copies: start, end, bytes, kind (1 HtoD, 2 DtoH, ...) */
struct copy_rec {
	uint64_t start, end, bytes;
	int kind;
};
static struct copy_rec *copies;
static size_t ncopies, capcopies;
/* driver API calls (DSV4_TIMELINE_API=1): what the host did in the gaps */
struct api_rec {
	uint64_t start, end;
	const char *name;	/* interned */
};
static struct api_rec *apis;
static size_t napis, capapis;

static const char *intern(const char *s)
{
	for (size_t i = 0; i < nnames; i++)
		if (!strcmp(names[i], s))
			return names[i];
	char **n = realloc(names, (nnames + 1) * sizeof(*n));

	if (!n)
		return "?";
	names = n;
	names[nnames] = strdup(s ? s : "?");
	return names[nnames] ? names[nnames++] : "?";
}

static void CUPTIAPI buffer_requested(uint8_t **buf, size_t *size, size_t *max_records)
{
	*size = 8u << 20;
	*buf = aligned_alloc(8, *size);
	*max_records = 0;
}

/* @arr with room for element @n (*cap elements of @size, doubled from
 * @first when full), or NULL with @arr as it was and the record that
 * wanted the room counted as dropped */
static void *room(void *arr, size_t n, size_t *cap, size_t size, size_t first)
{
	size_t c = *cap ? 2 * *cap : first;
	void *r;

	if (n < *cap)
		return arr;
	r = realloc(arr, c * size);
	if (r)
		*cap = c;
	else
		dropped++;
	return r;
}

static void keep(const CUpti_ActivityKernel10 *k)
{
	struct kernel_rec *r = room(recs, nrecs, &caprecs, sizeof(*r), 1 << 16);

	if (!r)
		return;
	recs = r;
	recs[nrecs++] = (struct kernel_rec){ k->start, k->end, k->streamId, k->correlationId,
					     k->graphId, k->gridX, k->gridY, k->gridZ,
					     intern(k->name) };
}

static void keep_copy(const CUpti_ActivityMemcpy6 *c)
{
	struct copy_rec *r = room(copies, ncopies, &capcopies, sizeof(*r), 1 << 12);

	if (!r)
		return;
	copies = r;
	copies[ncopies++] = (struct copy_rec){ c->start, c->end, c->bytes, c->copyKind };
}

static void keep_api(const CUpti_ActivityAPI *a)
{
	struct api_rec *r = room(apis, napis, &capapis, sizeof(*r), 1 << 12);
	const char *name = NULL;

	if (!r)
		return;
	apis = r;
	cuptiGetCallbackName(CUPTI_CB_DOMAIN_DRIVER_API, a->cbid, &name);
	apis[napis++] = (struct api_rec){ a->start, a->end, intern(name) };
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buf, size_t size,
				      size_t valid)
{
	CUpti_Activity *rec = NULL;

	(void)ctx;
	(void)stream;
	(void)size;
	while (cuptiActivityGetNextRecord(buf, valid, &rec) == CUPTI_SUCCESS)
		if (rec->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL ||
		    rec->kind == CUPTI_ACTIVITY_KIND_KERNEL)
			keep((const CUpti_ActivityKernel10 *)rec);
		else if (rec->kind == CUPTI_ACTIVITY_KIND_MEMCPY)
			keep_copy((const CUpti_ActivityMemcpy6 *)rec);
		else if (rec->kind == CUPTI_ACTIVITY_KIND_DRIVER)
			keep_api((const CUpti_ActivityAPI *)rec);
	free(buf);
}

static int by_start(const void *a, const void *b)
{
	const struct kernel_rec *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static int by_corr(const void *a, const void *b)
{
	const struct kernel_rec *x = a, *y = b;

	if (x->graph != y->graph)
		return x->graph < y->graph ? -1 : 1;
	if (x->corr != y->corr)
		return x->corr < y->corr ? -1 : 1;
	return by_start(a, b);
}

static uint64_t span_of(const struct kernel_rec *r, size_t n)
{
	uint64_t lo = r[0].start, hi = 0;

	for (size_t i = 0; i < n; i++)
		hi = r[i].end > hi ? r[i].end : hi;
	return hi - lo;
}

static int by_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* one replay: each kernel, and where nothing ran (gaps over 0.3 us) */
static void print_replay(FILE *f, const struct kernel_rec *r, size_t n, size_t replays,
			 uint64_t median)
{
	uint64_t t0 = r[0].start, busy_end = r[0].start, idle = 0, busy = 0;
	uint32_t main_stream = r[0].stream;

	fprintf(f, "graph %u: %zu replays of %zu kernels, median span %.1f us; that replay:\n",
		r[0].graph, replays, n, median / 1e3);
	fprintf(f, "  %9s %8s %8s %6s  %-28s %s\n", "start_us", "dur_us", "idle_us", "stream",
		"kernel", "grid");
	for (size_t i = 0; i < n; i++) {
		uint64_t gap = r[i].start > busy_end ? r[i].start - busy_end : 0;

		idle += gap;
		if (r[i].end > busy_end) {
			busy += r[i].end - (r[i].start > busy_end ? r[i].start : busy_end);
			busy_end = r[i].end;
		}
		fprintf(f, "  %9.2f %8.2f %8.2f %6s  %-28.28s %dx%dx%d\n", (r[i].start - t0) / 1e3,
			(r[i].end - r[i].start) / 1e3, gap / 1e3,
			r[i].stream == main_stream ? "main" : "side", r[i].name, r[i].gx, r[i].gy,
			r[i].gz);
	}
	fprintf(f, "  span %.1f us: kernels running %.1f us, nothing running %.1f us\n",
		(busy_end - t0) / 1e3, busy / 1e3, idle / 1e3);
	/* per kernel name and grid: time on the GPU in this replay */
	fprintf(f, "  by kernel (durations, this replay):\n");
	for (size_t i = 0; i < n; i++) {
		size_t j, cnt = 0;
		uint64_t sum = 0;

		for (j = 0; j < i; j++)
			if (r[j].name == r[i].name && r[j].gx == r[i].gx && r[j].gy == r[i].gy &&
			    r[j].gz == r[i].gz)
				break;
		if (j < i)
			continue;
		for (j = i; j < n; j++)
			if (r[j].name == r[i].name && r[j].gx == r[i].gx && r[j].gy == r[i].gy &&
			    r[j].gz == r[i].gz) {
				sum += r[j].end - r[j].start;
				cnt++;
			}
		fprintf(f, "    %-28.28s %5dx%dx%-3d %3zu x %7.2f = %8.1f us\n", r[i].name, r[i].gx,
			r[i].gy, r[i].gz, cnt, sum / 1e3 / cnt, sum / 1e3);
	}
}

/* one replay of a graph: its kernels recs[at, at + n), and when it ran */
struct replay {
	uint64_t start, end;
	size_t at, n;
};

static int by_replay_start(const void *a, const void *b)
{
	const struct replay *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * between one replay's last kernel and the next one's first (@rp in time
 * order): the host's part of a step (the copies in that gap are listed,
 * as in the median gap)
 */
static void print_gaps(FILE *f, const struct replay *rp, size_t nrep)
{
	uint64_t *gaps = malloc(nrep * sizeof(*gaps)), med;
	size_t ng = 0, i, at = 0;

	if (!gaps || nrep < 3) {
		free(gaps);
		return;
	}
	for (i = 0; i + 1 < nrep; i++)
		gaps[ng++] = rp[i + 1].start - rp[i].end;
	qsort(gaps, ng, sizeof(*gaps), by_u64);
	med = gaps[ng / 2];
	for (i = 0; i + 1 < nrep; i++)
		if (rp[i + 1].start - rp[i].end == med)
			at = i;
	fprintf(f, "  between replays: median %.1f us (min %.1f, max %.1f); in that gap:\n",
		med / 1e3, gaps[0] / 1e3, gaps[ng - 1] / 1e3);
	for (i = 0; i < ncopies; i++)
		if (copies[i].start >= rp[at].end && copies[i].end <= rp[at + 1].start)
			fprintf(f, "    copy kind %d, %llu bytes: starts %.2f us after the replay, "
				"%.2f us long\n", copies[i].kind, (unsigned long long)copies[i].bytes,
				(copies[i].start - rp[at].end) / 1e3,
				(copies[i].end - copies[i].start) / 1e3);
	/* the host's calls from the replay's last 100 us to the next one's start */
	for (i = 0; i < napis; i++)
		if (apis[i].end + 100000 >= rp[at].end && apis[i].start <= rp[at + 1].start)
			fprintf(f, "    host %-26.26s %8.2f us after the replay, %7.2f us long\n",
				apis[i].name, ((double)apis[i].start - (double)rp[at].end) / 1e3,
				(apis[i].end - apis[i].start) / 1e3);
	free(gaps);
}

static void report(void)
{
	const char *path = getenv("DSV4_TIMELINE");
	FILE *f = path ? fopen(path, "w") : stderr;

	cuptiActivityFlushAll(1);
	if (!f)
		f = stderr;
	qsort(recs, nrecs, sizeof(*recs), by_corr);
	fprintf(f, "gpu_timeline: %zu kernels recorded%s\n", nrecs, dropped ? " (some dropped)" : "");
	for (size_t g0 = 0; g0 < nrecs;) {
		size_t g1 = g0, nrep = 0, i, k;
		struct replay *rp;
		uint64_t *spans;

		while (g1 < nrecs && recs[g1].graph == recs[g0].graph)
			g1++;
		if (!recs[g0].graph) {
			g0 = g1;
			continue;
		}
		/* replays of this graph: runs of one correlation id */
		rp = malloc((g1 - g0) * sizeof(*rp));
		spans = malloc((g1 - g0) * sizeof(*spans));
		for (i = g0; rp && spans && i < g1; i = k, nrep++) {
			for (k = i; k < g1 && recs[k].corr == recs[i].corr; k++)
				;
			spans[nrep] = span_of(recs + i, k - i);
			rp[nrep] = (struct replay){ recs[i].start, recs[i].start + spans[nrep], i, k - i };
		}
		if (rp && spans && nrep >= 3) {
			uint64_t med;

			qsort(spans, nrep, sizeof(*spans), by_u64);
			med = spans[nrep / 2];
			for (i = 0; i < nrep; i++)
				if (rp[i].end - rp[i].start == med) {
					print_replay(f, recs + rp[i].at, rp[i].n, nrep, med);
					break;
				}
			qsort(rp, nrep, sizeof(*rp), by_replay_start);
			print_gaps(f, rp, nrep);
		}
		free(rp);
		free(spans);
		g0 = g1;
	}
	if (f != stderr)
		fclose(f);
}

int InitializeInjection(void);

int InitializeInjection(void)
{
	if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
	    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS ||
	    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY) != CUPTI_SUCCESS) {
		fprintf(stderr, "gpu_timeline: CUPTI activity tracing unavailable\n");
		return 0;
	}
	if (getenv("DSV4_TIMELINE_API") && atoi(getenv("DSV4_TIMELINE_API")) &&
	    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_DRIVER) != CUPTI_SUCCESS)
		fprintf(stderr, "gpu_timeline: no driver API records\n");
	atexit(report);
	return 1;
}
