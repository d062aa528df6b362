// SPDX-License-Identifier: MIT
/*
 * $DSV4_GPU_PROFILE=graph: what each launch of the decode graph costs the
 * step (=replay: only the whole graph's replay time).  Events around each
 * launch (DSV4_GPU_PROFILE=1) add microseconds to every kernel and need
 * the graph off; here gpu_forward.c captures the step again without each
 * launch in turn, and the replay time saved is that launch's cost on the
 * critical path (a kernel on the side stream, beside a longer branch, may
 * cost nothing).  Each variant is timed
 * right after the whole step: timed once at the start, the whole step
 * came out about 14 us (1 %) faster than the variants all along (the
 * clocks settling under the load, probably), which swamps small kernels.
 *
 * For benchmarks only: the replays advance the sequence's state, and the
 * launches left out leave stale values in it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "gpu_model.h"

enum { WARMUP = 3, REPLAYS = 20 };

double gpu_replay_s(struct gpu_model *gm, CUgraphExec exec, CUstream s)
{
	const struct cu_driver *cu = &gm->g->cu;
	CUevent e0 = NULL, e1 = NULL;
	float ms = -1;
	int ok = 0;

	if (cu->EventCreate(&e0, 0) || cu->EventCreate(&e1, 0))
		goto out;
	for (int i = 0; i < WARMUP; i++)
		if (cu->GraphLaunch(exec, s))
			goto out;
	if (cu->EventRecord(e0, s))
		goto out;
	for (int i = 0; i < REPLAYS; i++)
		if (cu->GraphLaunch(exec, s))
			goto out;
	ok = !cu->EventRecord(e1, s) && !cu->EventSynchronize(e1) &&
	     !cu->EventElapsedTime(&ms, e0, e1);
out:
	if (e0)
		cu->EventDestroy(e0);
	if (e1)
		cu->EventDestroy(e1);
	return ok ? ms * 1e-3 / REPLAYS : -1;
}

void gpu_graph_profile_base(struct gpu_model *gm, double s)
{
	gm->prof_graph_s += s;
	gm->prof_graphs++;
}

/* the bucket of a launch: its kernel and grid */
void gpu_graph_profile_add(struct gpu_model *gm, const struct gpu_launch_rec *l, double s)
{
	uint32_t i;

	for (i = 0; i < gm->n_prof_node; i++)
		if (gm->prof_node[i].kernel == l->kernel && gm->prof_node[i].grid[0] == l->grid[0] &&
		    gm->prof_node[i].grid[1] == l->grid[1] && gm->prof_node[i].grid[2] == l->grid[2])
			break;
	if (i == gm->n_prof_node) {
		if (i == sizeof(gm->prof_node) / sizeof(gm->prof_node[0]))
			return;
		gm->prof_node[i] = (struct gpu_prof_node){
			.kernel = l->kernel, .grid = { l->grid[0], l->grid[1], l->grid[2] }, .order = i
		};
		gm->n_prof_node++;
	}
	gm->prof_node[i].s += s;
	gm->prof_node[i].n++;
}

static int by_cost(const void *pa, const void *pb)
{
	const struct gpu_prof_node *a = pa, *b = pb;

	return a->s < b->s ? 1 : a->s > b->s ? -1 : (int)a->order - (int)b->order;
}

void gpu_graph_profile_report(struct gpu_model *gm)
{
	double sum = 0, per = 1.0 / (gm->prof_graphs ? gm->prof_graphs : 1);

	if (!gm->prof_graphs)
		return;
	if (gm->prof_graph == PROF_GRAPH_REPLAY) {
		fprintf(stderr, "dsv4 GPU graph replay: %llu graphs, %.1f us per replay, back to "
			"back\n", (unsigned long long)gm->prof_graphs,
			gm->prof_graph_s * per * 1e6);
		return;
	}
	qsort(gm->prof_node, gm->n_prof_node, sizeof(gm->prof_node[0]), by_cost);
	for (uint32_t i = 0; i < gm->n_prof_node; i++)
		sum += gm->prof_node[i].s;
	fprintf(stderr, "dsv4 GPU graph profile: %llu graphs, %.1f us per replay, %.1f us of it "
		"accounted for by single launches (each: the replay time saved without it)\n",
		(unsigned long long)gm->prof_graphs, gm->prof_graph_s * per * 1e6, sum * per * 1e6);
	fprintf(stderr, "  %-26s %-14s %9s %11s %9s\n", "kernel", "grid", "launches", "us/replay",
		"us/launch");
	for (uint32_t i = 0; i < gm->n_prof_node; i++) {
		const struct gpu_prof_node *p = &gm->prof_node[i];
		char grid[40];

		snprintf(grid, sizeof(grid), "%ux%ux%u", p->grid[0], p->grid[1], p->grid[2]);
		fprintf(stderr, "  %-26s %-14s %9.1f %11.1f %9.2f\n",
			gpu_kernel_name(p->kernel), grid, p->n * per,
			p->s * per * 1e6, p->n ? p->s / p->n * 1e6 : 0.0);
	}
}
