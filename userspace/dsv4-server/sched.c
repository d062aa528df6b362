// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The scheduler: one thread that owns the model and runs continuous
 * batching.  Each step evaluates, in one dsv4_eval_many pass over the
 * weights, one token for every decoding sequence plus prompt chunks for
 * sequences still in prefill, within --batch-tokens; so a long prompt is
 * cut into chunks and never stalls the others' decoding.  Requests wait in
 * a bounded FIFO until a slot (--parallel) frees.  A cancelled request's
 * sequence is freed at the next step.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct slot {
	struct gen_request *r;		/* NULL: free */
	struct dsv4_seq *seq;
	struct sampler *smp;
	float *logits;
	uint32_t prefilled;		/* prompt tokens in the sequence */
	uint32_t save_at;		/* prefix-cache save point (0: none) */
	int32_t last;			/* the token to feed next when decoding */
	bool decoding;
	uint64_t t_last_ns;
	char *pending;			/* text not sent yet: an unfinished UTF-8
					 * sequence or a possible stop-string start */
	size_t pending_len, pending_cap;
};

struct sched {
	struct server *srv;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	struct gen_request **queue;	/* ring of opt.queue_max */
	size_t q_head, q_len;
	struct slot *slots;
	unsigned n_slots;
	struct sched_stats stats;
	struct dsv4_eval_req *reqs;
	unsigned *req_slot;
	uint32_t *req_chunk;
};

int sched_submit(struct server *srv, struct gen_request *r)
{
	struct sched *s = srv->sched;
	int ret = 0;

	pthread_mutex_lock(&s->mu);
	if (s->stopping) {
		ret = -ESHUTDOWN;
	} else if (s->q_len >= s->srv->opt.queue_max) {
		ret = -EAGAIN;
	} else {
		atomic_fetch_add(&r->refs, 1);
		r->t_submit_ns = srv_now_ns();
		s->queue[(s->q_head + s->q_len) % s->srv->opt.queue_max] = r;
		s->q_len++;
		s->stats.waiting = (unsigned)s->q_len;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return ret;
}

void sched_get_stats(struct server *srv, struct sched_stats *st)
{
	struct sched *s = srv->sched;

	if (!s) {
		memset(st, 0, sizeof(*st));
		return;
	}
	pthread_mutex_lock(&s->mu);
	*st = s->stats;
	pthread_mutex_unlock(&s->mu);
}

static void slot_release(struct sched *s, struct slot *sl, enum finish_reason why,
			 const char *error)
{
	struct gen_request *r = sl->r;

	/* metrics first: a client that saw the end sees them counted */
	metrics_tokens(s->srv->mx, r->n_prompt, r->n_cached, r->n_generated);
	metrics_e2e(s->srv->mx, (double)(srv_now_ns() - r->t_submit_ns) / 1e9);
	gen_request_finish(r, why, error);
	dsv4_seq_free(sl->seq);
	sampler_free(sl->smp);
	free(sl->logits);
	free(sl->pending);
	gen_request_put(r);
	memset(sl, 0, sizeof(*sl));
}

static int slot_start(struct sched *s, struct slot *sl, struct gen_request *r)
{
	struct server *srv = s->srv;
	char err[256] = "";
	uint32_t cached = 0;

	memset(sl, 0, sizeof(*sl));
	sl->r = r;
	if (dsv4_seq_create(srv->model, srv->opt.ctx_size, &sl->seq)) {
		slot_release(s, sl, FINISH_ERROR, "cannot create a sequence");
		return -1;
	}
	sl->smp = sampler_new(&r->sp, srv->vocab);
	sl->logits = malloc((size_t)srv->vocab * sizeof(float));
	if (!sl->smp || !sl->logits) {
		slot_release(s, sl, FINISH_ERROR, "out of memory");
		return -1;
	}
	sampler_prompt(sl->smp, r->prompt, r->n_prompt);
	if (srv->prefix) {
		if (dsv4_prefix_restore(srv->prefix, sl->seq, r->prompt, r->n_prompt, &cached,
					err, sizeof(err))) {
			slot_release(s, sl, FINISH_ERROR, err);
			return -1;
		}
		sl->save_at = dsv4_prefix_save_point(r->n_prompt);
		if (sl->save_at <= cached)
			sl->save_at = 0;
	}
	sl->prefilled = cached;
	r->n_cached = cached;
	return 0;
}

static bool pending_reserve(struct slot *sl, size_t more)
{
	size_t need = sl->pending_len + more + 1;
	char *grown;

	if (need <= sl->pending_cap)
		return true;
	grown = realloc(sl->pending, need * 2);
	if (!grown)
		return false;
	sl->pending = grown;
	sl->pending_cap = need * 2;
	return true;
}

/* How many trailing bytes of @text might begin a stop string. */
static size_t stop_hold(const struct gen_request *r, const char *text, size_t len)
{
	size_t hold = 0;

	for (size_t i = 0; i < r->n_stop; i++) {
		size_t sl = strlen(r->stop[i]);

		for (size_t k = sl - 1 < len ? sl - 1 : len; k > hold; k--)
			if (!memcmp(text + len - k, r->stop[i], k)) {
				hold = k;
				break;
			}
	}
	return hold;
}

/* The first stop string in @text: its offset, or -1. */
static long stop_find(const struct gen_request *r, const char *text, size_t len, size_t *which)
{
	long best = -1;

	for (size_t i = 0; i < r->n_stop; i++) {
		const char *hit = memmem(text, len, r->stop[i], strlen(r->stop[i]));

		if (hit && (best < 0 || hit - text < best)) {
			best = hit - text;
			*which = i;
		}
	}
	return best;
}

/* Sends pending text: all of it when @final (invalid UTF-8 replaced), else
 * what can no longer change. */
static void emit(struct slot *sl, struct gen_event *ev, bool final)
{
	size_t n = sl->pending_len;

	if (!final) {
		size_t whole = dsv4_utf8_complete_prefix(sl->pending, n);
		size_t hold = stop_hold(sl->r, sl->pending, n);

		n = whole < n - hold ? whole : n - hold;
	}
	if (n) {
		ev->text = dsv4_utf8_sanitize(sl->pending, n, &ev->text_len);
		memmove(sl->pending, sl->pending + n, sl->pending_len - n);
		sl->pending_len -= n;
	}
	if (ev->text || ev->n_tokens || final)
		gen_request_push(sl->r, ev);
	else
		free(ev);
}

/* A sampled token: text, stop checks, the event to the client.  Returns
 * true when the request is finished (the slot is released). */
static bool take_token(struct sched *s, struct slot *sl, int32_t tok,
		       struct token_logprob *chosen, struct token_logprob *top)
{
	struct server *srv = s->srv;
	struct gen_request *r = sl->r;
	struct gen_event *ev = calloc(1, sizeof(*ev));
	uint64_t now = srv_now_ns();
	enum finish_reason why = FINISH_NONE;
	size_t which = 0;
	long at;

	if (!ev) {
		slot_release(s, sl, FINISH_ERROR, "out of memory");
		return true;
	}
	if (!r->n_generated) {
		r->t_first_ns = now;
		metrics_ttft(srv->mx, (double)(now - r->t_submit_ns) / 1e9);
	} else {
		metrics_itl(srv->mx, (double)(now - sl->t_last_ns) / 1e9);
	}
	sl->t_last_ns = now;
	r->n_generated++;
	sampler_accept(sl->smp, tok);

	if (tok == srv->eos) {
		why = FINISH_STOP;
	} else {
		size_t blen = 0;
		const char *bytes = dsv4_token_bytes(srv->tok, tok, &blen);

		if (r->skip_special && dsv4_token_is_special(srv->tok, tok))
			blen = 0;
		ev->n_tokens = 1;
		ev->ids = malloc(sizeof(*ev->ids));
		if (ev->ids)
			ev->ids[0] = tok;
		if (r->n_top >= 0) {
			ev->chosen = malloc(sizeof(*ev->chosen));
			ev->top = r->n_top ? malloc((size_t)r->n_top * sizeof(*ev->top)) : NULL;
			if (ev->chosen)
				*ev->chosen = *chosen;
			if (ev->top)
				memcpy(ev->top, top, (size_t)r->n_top * sizeof(*top));
		}
		if (bytes && blen) {
			if (!pending_reserve(sl, blen)) {
				gen_events_free(ev, 1);
				slot_release(s, sl, FINISH_ERROR, "out of memory");
				return true;
			}
			memcpy(sl->pending + sl->pending_len, bytes, blen);
			sl->pending_len += blen;
		}
		at = stop_find(r, sl->pending, sl->pending_len, &which);
		if (at >= 0) {
			sl->pending_len = (size_t)at;
			r->stop_hit = strdup(r->stop[which]);
			why = FINISH_STOP;
		} else if (r->n_generated >= r->max_tokens ||
			   dsv4_seq_pos(sl->seq) + 1 >= srv->opt.ctx_size) {
			why = FINISH_LENGTH;
		}
	}
	emit(sl, ev, why != FINISH_NONE);
	if (why != FINISH_NONE) {
		slot_release(s, sl, why, NULL);
		return true;
	}
	sl->last = tok;
	sl->decoding = true;
	return false;
}

static void publish_stats(struct sched *s)
{
	struct server *srv = s->srv;
	struct sched_stats st;

	pthread_mutex_lock(&s->mu);
	st = s->stats;
	pthread_mutex_unlock(&s->mu);
	st.running = 0;
	memset(&st.kv, 0, sizeof(st.kv));
	for (unsigned i = 0; i < s->n_slots; i++) {
		struct dsv4_kv_usage u;

		if (!s->slots[i].r)
			continue;
		st.running++;
		dsv4_seq_kv_usage(s->slots[i].seq, &u);
		st.kv.tokens += u.tokens;
		st.kv.window_bytes += u.window_bytes;
		st.kv.state_bytes += u.state_bytes;
		st.kv.main_bytes += u.main_bytes;
		st.kv.index_bytes += u.index_bytes;
		st.kv.spill_bytes += u.spill_bytes;
		st.kv.spill_used_bytes += u.spill_used_bytes;
		st.kv.total_bytes += u.total_bytes;
		st.kv.format_bytes_per_token = u.format_bytes_per_token;
	}
	dsv4_model_kv_pool_stats(srv->model, &st.pool);
	st.experts = dsv4_model_stream_stats(srv->model, &st.stream);
	st.prefix_on = srv->prefix != NULL;
	if (srv->prefix)
		dsv4_prefix_get_stats(srv->prefix, &st.prefix);
	pthread_mutex_lock(&s->mu);
	st.waiting = (unsigned)s->q_len;
	s->stats = st;
	pthread_mutex_unlock(&s->mu);
}

/* Fills free slots from the queue; drops cancelled requests.  Returns the
 * number of busy slots; waits while there is nothing to do. */
static int admit(struct sched *s)
{
	struct gen_request *take[64];
	unsigned n_take = 0, busy = 0;

	for (unsigned i = 0; i < s->n_slots; i++)
		busy += s->slots[i].r != NULL;
	pthread_mutex_lock(&s->mu);
	while (!s->stopping && !busy && !s->q_len)
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	while (s->q_len && busy + n_take < s->n_slots && n_take < 64) {
		take[n_take++] = s->queue[s->q_head];
		s->q_head = (s->q_head + 1) % s->srv->opt.queue_max;
		s->q_len--;
	}
	s->stats.waiting = (unsigned)s->q_len;
	pthread_mutex_unlock(&s->mu);

	for (unsigned k = 0; k < n_take; k++) {
		struct gen_request *r = take[k];

		if (atomic_load(&r->cancel)) {
			gen_request_finish(r, FINISH_CANCELLED, NULL);
			gen_request_put(r);
			continue;
		}
		for (unsigned i = 0; i < s->n_slots; i++)
			if (!s->slots[i].r) {
				if (!slot_start(s, &s->slots[i], r))
					busy++;
				break;
			}
	}
	return (int)busy;
}

static void step(struct sched *s)
{
	struct server *srv = s->srv;
	uint32_t budget = srv->opt.batch_tokens;
	unsigned n = 0;
	char err[256] = "";

	/* cancelled: free the sequence now */
	for (unsigned i = 0; i < s->n_slots; i++)
		if (s->slots[i].r && atomic_load(&s->slots[i].r->cancel))
			slot_release(s, &s->slots[i], FINISH_CANCELLED, NULL);
	/* decoding sequences first: one token each */
	for (unsigned i = 0; i < s->n_slots; i++) {
		struct slot *sl = &s->slots[i];

		if (!sl->r || !sl->decoding)
			continue;
		s->reqs[n] = (struct dsv4_eval_req){ sl->seq, &sl->last, 1, DSV4_LOGITS_LAST,
						     sl->logits };
		s->req_slot[n] = i;
		s->req_chunk[n++] = 1;
		budget = budget > 1 ? budget - 1 : 0;
	}
	/* then prompt chunks, oldest slot order, within the budget */
	for (unsigned i = 0; i < s->n_slots && budget; i++) {
		struct slot *sl = &s->slots[i];
		uint32_t left, chunk;

		if (!sl->r || sl->decoding)
			continue;
		left = sl->r->n_prompt - sl->prefilled;
		chunk = left < budget ? left : budget;
		if (sl->save_at > sl->prefilled && sl->prefilled + chunk > sl->save_at)
			chunk = sl->save_at - sl->prefilled;
		s->reqs[n] = (struct dsv4_eval_req){
			sl->seq, sl->r->prompt + sl->prefilled, chunk,
			sl->prefilled + chunk == sl->r->n_prompt ? DSV4_LOGITS_LAST : DSV4_LOGITS_NONE,
			sl->logits };
		s->req_slot[n] = i;
		s->req_chunk[n++] = chunk;
		budget -= chunk;
	}
	if (!n)
		return;
	if (dsv4_eval_many(srv->model, s->reqs, n, err, sizeof(err))) {
		for (unsigned k = 0; k < n; k++)
			slot_release(s, &s->slots[s->req_slot[k]], FINISH_ERROR, err);
		return;
	}
	pthread_mutex_lock(&s->mu);
	s->stats.steps++;
	for (unsigned k = 0; k < n; k++)
		s->stats.batched_rows += s->req_chunk[k];
	pthread_mutex_unlock(&s->mu);

	for (unsigned k = 0; k < n; k++) {
		struct slot *sl = &s->slots[s->req_slot[k]];
		struct token_logprob chosen, top[SRV_MAX_TOP_LOGPROBS];
		int32_t tok;

		if (!sl->decoding) {
			sl->prefilled += s->req_chunk[k];
			if (srv->prefix && sl->save_at && sl->prefilled == sl->save_at)
				dsv4_prefix_save(srv->prefix, sl->seq, sl->r->prompt, NULL, 0);
			if (sl->prefilled < sl->r->n_prompt)
				continue;
		}
		/* --test-fail-after: the path an engine error takes mid-stream */
		if (srv->opt.test_fail_after && sl->r->n_generated >= srv->opt.test_fail_after) {
			slot_release(s, sl, FINISH_ERROR,
				     "injected engine failure (--test-fail-after)");
			continue;
		}
		tok = sampler_next(sl->smp, sl->logits, sl->r->n_top, &chosen, top);
		if (srv->forced) {
			tok = sl->r->n_generated < srv->n_forced ? srv->forced[sl->r->n_generated] :
			      srv->eos;
			chosen.id = tok;
		}
		take_token(s, sl, tok, &chosen, top);
	}
}

static void *sched_main(void *arg)
{
	struct sched *s = arg;

	for (;;) {
		int busy = admit(s);

		if (busy < 0)
			break;
		if (busy)
			step(s);
		publish_stats(s);
	}
	for (unsigned i = 0; i < s->n_slots; i++)
		if (s->slots[i].r)
			slot_release(s, &s->slots[i], FINISH_CANCELLED, "server stopping");
	return NULL;
}

int sched_start(struct server *srv, char *err, size_t errlen)
{
	struct sched *s = calloc(1, sizeof(*s));
	unsigned n = srv->opt.parallel;

	if (!s)
		goto nomem;
	s->srv = srv;
	s->n_slots = n;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->queue = calloc(srv->opt.queue_max, sizeof(*s->queue));
	s->slots = calloc(n, sizeof(*s->slots));
	s->reqs = calloc(n, sizeof(*s->reqs));
	s->req_slot = calloc(n, sizeof(*s->req_slot));
	s->req_chunk = calloc(n, sizeof(*s->req_chunk));
	if (!s->queue || !s->slots || !s->reqs || !s->req_slot || !s->req_chunk)
		goto nomem;
	srv->sched = s;
	if (pthread_create(&s->thread, NULL, sched_main, s)) {
		srv->sched = NULL;
		snprintf(err, errlen, "cannot start the scheduler thread");
		goto fail;
	}
	s->started = true;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	if (s) {
		free(s->queue);
		free(s->slots);
		free(s->reqs);
		free(s->req_slot);
		free(s->req_chunk);
		free(s);
	}
	return -1;
}

void sched_stop(struct server *srv)
{
	struct sched *s = srv->sched;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->started)
		pthread_join(s->thread, NULL);
	s->started = false;
	pthread_mutex_lock(&s->mu);
	while (s->q_len) {
		struct gen_request *r = s->queue[s->q_head];

		s->q_head = (s->q_head + 1) % srv->opt.queue_max;
		s->q_len--;
		gen_request_finish(r, FINISH_CANCELLED, "server stopping");
		gen_request_put(r);
	}
	pthread_mutex_unlock(&s->mu);
}

void sched_free(struct server *srv)
{
	struct sched *s = srv->sched;

	if (!s)
		return;
	free(s->queue);
	free(s->slots);
	free(s->reqs);
	free(s->req_slot);
	free(s->req_chunk);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	srv->sched = NULL;
}
