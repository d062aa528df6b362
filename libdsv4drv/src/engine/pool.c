// SPDX-License-Identifier: MIT
/*
 * A fixed pool of pinned worker threads.  pool_run() hands tasks out by an
 * atomic counter; the calling thread works too (as worker 0).  Workers are
 * pinned to the CPUs this process may use, ordered by NUMA node (libnuma)
 * so that consecutive workers share a node and its memory.
 */
#include <errno.h>
#include <numa.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "engine.h"

struct worker {
	struct pool *p;
	pthread_t thread;
	uint32_t id;
	int cpu;
};

struct pool {
	uint32_t n;			/* workers, the caller included */
	struct worker *w;
	pthread_mutex_t lock;
	pthread_cond_t go, done;
	atomic_uint_fast64_t generation;
	atomic_int quit;
	int sleepers;			/* under lock */
	/* the job in flight */
	task_fn fn;
	void *ctx;
	uint32_t n_tasks;
	atomic_uint next;
	atomic_uint busy;		/* workers still inside the job */
};

/* Decode steps of small models are many short jobs: waking a sleeping
 * thread costs more than the job, so workers and the caller spin a while
 * (about 50 us) before they sleep. */
#define SPIN 20000

static inline void relax(void)
{
#ifdef __x86_64__
	__builtin_ia32_pause();
#endif
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* best effort: a cgroup may forbid it, and results do not depend on it */
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void drain(struct pool *p, uint32_t worker)
{
	for (;;) {
		uint32_t i = atomic_fetch_add(&p->next, 1);

		if (i >= p->n_tasks)
			break;
		p->fn(p->ctx, i, worker);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->p;
	uint64_t seen = 0;

	pin(w->cpu);
	for (;;) {
		for (int i = 0; i < SPIN && atomic_load(&p->generation) == seen &&
		     !atomic_load(&p->quit); i++)
			relax();
		if (atomic_load(&p->generation) == seen && !atomic_load(&p->quit)) {
			pthread_mutex_lock(&p->lock);
			p->sleepers++;
			while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen)
				pthread_cond_wait(&p->go, &p->lock);
			p->sleepers--;
			pthread_mutex_unlock(&p->lock);
		}
		if (atomic_load(&p->quit))
			break;
		seen = atomic_load(&p->generation);
		drain(p, w->id);
		if (atomic_fetch_sub(&p->busy, 1) == 1) {
			pthread_mutex_lock(&p->lock);
			pthread_cond_signal(&p->done);
			pthread_mutex_unlock(&p->lock);
		}
	}
	return NULL;
}

/* The CPUs we may run on, grouped by NUMA node. */
static int cpu_order(int *cpus, int max)
{
	cpu_set_t set;
	int n = 0, numa = numa_available() >= 0;
	int maxnode = numa ? numa_max_node() : 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 0;
	for (int node = 0; node <= maxnode; node++)
		for (int c = 0; c < CPU_SETSIZE && n < max; c++)
			if (CPU_ISSET(c, &set) && (!numa || numa_node_of_cpu(c) == node ||
						   (node == 0 && numa_node_of_cpu(c) < 0)))
				cpus[n++] = c;
	return n;
}

int pool_create(uint32_t threads, struct pool **out)
{
	int cpus[1024];
	int ncpu = cpu_order(cpus, 1024);
	struct pool *p;

	if (threads == 0)
		threads = ncpu > 0 ? (uint32_t)ncpu : 1;
	if (threads > 1024)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->w = calloc(threads, sizeof(*p->w));
	if (!p->w) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	p->n = 1;
	for (uint32_t i = 0; i < threads; i++) {
		p->w[i] = (struct worker){ .p = p, .id = i,
					   .cpu = ncpu > 1 ? cpus[i % (uint32_t)ncpu] : -1 };
	}
	for (uint32_t i = 1; i < threads; i++) {
		if (pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i])) {
			pool_destroy(p);
			return -EAGAIN;
		}
		p->n++;
	}
	*out = p;
	return 0;
}

void pool_destroy(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->quit, 1);
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->lock);
	for (uint32_t i = 1; i < p->n; i++)
		pthread_join(p->w[i].thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	free(p->w);
	free(p);
}

uint32_t pool_threads(const struct pool *p)
{
	return p->n;
}

void pool_run(struct pool *p, task_fn fn, void *ctx, uint32_t n)
{
	if (n == 0)
		return;
	if (p->n == 1 || n == 1) {
		for (uint32_t i = 0; i < n; i++)
			fn(ctx, i, 0);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	p->n_tasks = n;
	atomic_store(&p->next, 0);
	atomic_store(&p->busy, p->n - 1);
	atomic_fetch_add(&p->generation, 1);	/* publishes the job */
	pthread_mutex_lock(&p->lock);
	if (p->sleepers)
		pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->lock);
	drain(p, 0);
	for (int i = 0; i < SPIN && atomic_load(&p->busy); i++)
		relax();
	if (atomic_load(&p->busy)) {
		pthread_mutex_lock(&p->lock);
		while (atomic_load(&p->busy))
			pthread_cond_wait(&p->done, &p->lock);
		pthread_mutex_unlock(&p->lock);
	}
}
