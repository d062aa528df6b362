// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * A generation request, shared between one HTTP connection thread and the
 * scheduler: the scheduler appends events, the connection takes them.
 * Whoever drops the last reference frees it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

uint64_t srv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct gen_request *gen_request_new(void)
{
	struct gen_request *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&r->refs, 1);
	atomic_init(&r->cancel, false);
	r->n_top = -1;
	return r;
}

static void event_clear(struct gen_event *ev)
{
	free(ev->text);
	free(ev->ids);
	free(ev->chosen);
	free(ev->top);
}

void gen_events_free(struct gen_event *ev, size_t n)
{
	for (size_t i = 0; i < n; i++)
		event_clear(&ev[i]);
	free(ev);
}

void gen_request_put(struct gen_request *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	for (size_t i = r->head; i < r->n_events; i++)
		event_clear(&r->events[i]);
	free(r->events);
	for (size_t i = 0; i < r->n_stop; i++)
		free(r->stop[i]);
	free(r->stop_hit);
	free(r->prompt);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

/* Takes @ev's contents (and frees @ev itself, which is malloc'd). */
void gen_request_push(struct gen_request *r, struct gen_event *ev)
{
	pthread_mutex_lock(&r->mu);
	if (r->n_events == r->cap_events && r->head) {
		/* taken events are dead: compact before growing */
		memmove(r->events, r->events + r->head,
			(r->n_events - r->head) * sizeof(*r->events));
		r->n_events -= r->head;
		r->head = 0;
	}
	if (r->n_events == r->cap_events) {
		size_t cap = r->cap_events ? r->cap_events * 2 : 16;
		struct gen_event *grown = realloc(r->events, cap * sizeof(*grown));

		if (!grown) {
			pthread_mutex_unlock(&r->mu);
			event_clear(ev);
			free(ev);
			return;
		}
		r->events = grown;
		r->cap_events = cap;
	}
	r->events[r->n_events++] = *ev;
	free(ev);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void gen_request_finish(struct gen_request *r, enum finish_reason why, const char *error)
{
	pthread_mutex_lock(&r->mu);
	if (!r->done) {
		r->done = true;
		r->finish = why;
		r->t_done_ns = srv_now_ns();
		if (error)
			snprintf(r->error, sizeof(r->error), "%s", error);
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

size_t gen_request_take(struct gen_request *r, struct gen_event **out, int timeout_ms)
{
	size_t n;

	*out = NULL;
	pthread_mutex_lock(&r->mu);
	if (r->head == r->n_events && !r->done && timeout_ms > 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	n = r->n_events - r->head;
	if (n) {
		*out = malloc(n * sizeof(**out));
		if (*out) {
			memcpy(*out, r->events + r->head, n * sizeof(**out));
			r->head = r->n_events;
		} else {
			n = 0;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}
