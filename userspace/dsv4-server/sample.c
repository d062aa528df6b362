// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The sampler: penalties, then temperature, top-k, top-p and min-p, then a
 * draw from a seeded generator.  A request with a seed draws the same
 * tokens every time (for the same logits).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "server.h"

#define PENALTY_WINDOW 64

struct sampler {
	struct sample_params p;
	uint32_t vocab;
	uint64_t rng[4];		/* xoshiro256** */
	uint32_t *counts;		/* generated occurrences per token */
	int32_t recent[PENALTY_WINDOW];	/* last tokens, prompt included */
	uint32_t n_recent, recent_head;
	uint32_t *order;		/* scratch: candidate ids */
	float *prob;			/* scratch: their probabilities */
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(uint64_t *s)
{
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

/* uniform in [0, 1) */
static double next_unit(uint64_t *s)
{
	return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

struct sampler *sampler_new(const struct sample_params *p, uint32_t vocab)
{
	struct sampler *s = calloc(1, sizeof(*s));
	uint64_t seed = p->seed;

	if (!s)
		return NULL;
	s->p = *p;
	s->vocab = vocab;
	s->counts = calloc(vocab, sizeof(*s->counts));
	s->order = malloc(vocab * sizeof(*s->order));
	s->prob = malloc(vocab * sizeof(*s->prob));
	if (!s->counts || !s->order || !s->prob) {
		sampler_free(s);
		return NULL;
	}
	if (!p->has_seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)(uintptr_t)s ^ 0x5eed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix(&seed);
	return s;
}

void sampler_free(struct sampler *s)
{
	if (!s)
		return;
	free(s->counts);
	free(s->order);
	free(s->prob);
	free(s);
}

static void remember(struct sampler *s, int32_t t)
{
	s->recent[s->recent_head] = t;
	s->recent_head = (s->recent_head + 1) % PENALTY_WINDOW;
	if (s->n_recent < PENALTY_WINDOW)
		s->n_recent++;
}

void sampler_prompt(struct sampler *s, const int32_t *tokens, uint32_t n)
{
	uint32_t from = n > PENALTY_WINDOW ? n - PENALTY_WINDOW : 0;

	for (uint32_t i = from; i < n; i++)
		remember(s, tokens[i]);
}

void sampler_accept(struct sampler *s, int32_t t)
{
	if (t >= 0 && (uint32_t)t < s->vocab)
		s->counts[t]++;
	remember(s, t);
}

static void penalize(struct sampler *s, float *logits)
{
	const struct sample_params *p = &s->p;

	if (p->repetition_penalty != 1.0f && p->repetition_penalty > 0) {
		/* once per distinct token in the window (llama.cpp, HF) */
		for (uint32_t i = 0; i < s->n_recent; i++) {
			int32_t t = s->recent[i];
			bool seen = false;

			if (t < 0 || (uint32_t)t >= s->vocab)
				continue;
			for (uint32_t j = 0; j < i && !seen; j++)
				seen = s->recent[j] == t;
			if (seen)
				continue;
			if (logits[t] > 0)
				logits[t] /= p->repetition_penalty;
			else
				logits[t] *= p->repetition_penalty;
		}
	}
	if (p->presence_penalty != 0 || p->frequency_penalty != 0)
		for (uint32_t t = 0; t < s->vocab; t++)
			if (s->counts[t])
				logits[t] -= p->presence_penalty +
					     p->frequency_penalty * (float)s->counts[t];
}

static uint32_t argmax(const float *x, uint32_t n)
{
	uint32_t best = 0;

	for (uint32_t i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

static void report(const float *logits, uint32_t vocab, int32_t chosen_id, int n_top,
		   struct token_logprob *chosen, struct token_logprob *top)
{
	float mx = logits[argmax(logits, vocab)];
	double sum = 0;
	float lse;

	for (uint32_t i = 0; i < vocab; i++)
		sum += exp((double)(logits[i] - mx));
	lse = mx + (float)log(sum);
	if (chosen) {
		chosen->id = chosen_id;
		chosen->logprob = logits[chosen_id] - lse;
	}
	/* n_top is small: a partial selection, highest first */
	for (int k = 0; k < n_top && top; k++) {
		int32_t best = -1;

		for (uint32_t i = 0; i < vocab; i++) {
			bool taken = false;

			for (int j = 0; j < k && !taken; j++)
				taken = top[j].id == (int32_t)i;
			if (!taken && (best < 0 || logits[i] > logits[best]))
				best = (int32_t)i;
		}
		top[k].id = best;
		top[k].logprob = logits[best] - lse;
	}
}

static int by_prob_desc(const void *a, const void *b, void *ctx)
{
	const float *prob = ctx;
	float pa = prob[*(const uint32_t *)a], pb = prob[*(const uint32_t *)b];

	if (pa != pb)
		return pa > pb ? -1 : 1;
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

int32_t sampler_next(struct sampler *s, float *logits, int n_top, struct token_logprob *chosen,
		     struct token_logprob *top)
{
	const struct sample_params *p = &s->p;
	uint32_t n = s->vocab, keep;
	float mx, *prob = s->prob;
	double sum, r, acc;
	int32_t pick;

	penalize(s, logits);
	if (p->temperature <= 0 || p->top_k == 1) {
		pick = (int32_t)argmax(logits, n);
		goto out;
	}
	/* probabilities at this temperature, over all tokens */
	mx = logits[argmax(logits, n)];
	sum = 0;
	for (uint32_t i = 0; i < n; i++) {
		prob[i] = expf((logits[i] - mx) / p->temperature);
		sum += prob[i];
	}
	/* Sort only tokens within e^-30 of the best: the rest hold < 1e-8 of
	 * the mass in total, and sorting 129K ids every step would cost more
	 * than a small model's forward pass. */
	keep = 0;
	for (uint32_t i = 0; i < n; i++) {
		prob[i] = (float)(prob[i] / sum);
		if ((logits[i] - mx) / p->temperature > -30.0f)
			s->order[keep++] = i;
	}
	qsort_r(s->order, keep, sizeof(*s->order), by_prob_desc, prob);
	if (p->top_k > 0 && (uint32_t)p->top_k < keep)
		keep = (uint32_t)p->top_k;
	if (p->top_p > 0 && p->top_p < 1) {
		acc = 0;
		for (uint32_t i = 0; i < keep; i++) {
			acc += prob[s->order[i]];
			if (acc >= p->top_p) {
				keep = i + 1;
				break;
			}
		}
	}
	if (p->min_p > 0) {
		float floor = prob[s->order[0]] * p->min_p;

		for (uint32_t i = 1; i < keep; i++)
			if (prob[s->order[i]] < floor) {
				keep = i;
				break;
			}
	}
	sum = 0;
	for (uint32_t i = 0; i < keep; i++)
		sum += prob[s->order[i]];
	r = next_unit(s->rng) * sum;
	acc = 0;
	pick = (int32_t)s->order[keep - 1];
	for (uint32_t i = 0; i < keep; i++) {
		acc += prob[s->order[i]];
		if (r < acc) {
			pick = (int32_t)s->order[i];
			break;
		}
	}
out:
	if (n_top >= 0)
		report(logits, n, pick, n_top, chosen, top);
	return pick;
}
