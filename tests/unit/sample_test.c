// SPDX-License-Identifier: MIT
/* The server's sampler: greedy, seeded draws, the filters, penalties and
 * reported log-probabilities, each against what the definition says. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "kselftest_harness.h"

#define V 8

static void logits_of(const double *p, float *out)
{
	for (int i = 0; i < V; i++)
		out[i] = p[i] > 0 ? (float)log(p[i]) : -1e30f;
}

static const double probs[V] = { 0.40, 0.25, 0.15, 0.10, 0.05, 0.03, 0.015, 0.005 };

/* Draw counts over @n samples. */
static void draw(const struct sample_params *sp, int n, int *counts)
{
	struct sampler *s = sampler_new(sp, V);
	float l[V];

	memset(counts, 0, V * sizeof(int));
	for (int i = 0; i < n; i++) {
		logits_of(probs, l);
		counts[sampler_next(s, l, -1, NULL, NULL)]++;
	}
	sampler_free(s);
}

TEST(greedy_takes_the_argmax)
{
	struct sample_params sp = { .temperature = 0, .top_p = 1, .repetition_penalty = 1 };
	struct sampler *s = sampler_new(&sp, V);
	float l[V] = { 0, 3, 1, 3, -2, 0, 0, 0 };

	ASSERT_NE(NULL, s);
	EXPECT_EQ(1, sampler_next(s, l, -1, NULL, NULL));	/* first of equal maxima */
	sampler_free(s);
}

TEST(seed_reproduces_and_differs)
{
	struct sample_params sp = { .temperature = 1, .top_p = 1, .repetition_penalty = 1,
				    .seed = 42, .has_seed = true };
	int a[200], b[200], c[200], same = 0;

	for (int run = 0; run < 3; run++) {
		struct sampler *s;
		int *out = run == 0 ? a : run == 1 ? b : c;

		sp.seed = run == 2 ? 43 : 42;
		s = sampler_new(&sp, V);
		for (int i = 0; i < 200; i++) {
			float l[V];

			logits_of(probs, l);
			out[i] = sampler_next(s, l, -1, NULL, NULL);
		}
		sampler_free(s);
	}
	EXPECT_EQ(0, memcmp(a, b, sizeof(a)));
	for (int i = 0; i < 200; i++)
		same += a[i] == c[i];
	EXPECT_LT(same, 150);
}

TEST(draws_follow_the_distribution)
{
	struct sample_params sp = { .temperature = 1, .top_p = 1, .repetition_penalty = 1,
				    .seed = 7, .has_seed = true };
	int counts[V], n = 40000;

	draw(&sp, n, counts);
	for (int i = 0; i < V; i++) {
		double sd = sqrt(n * probs[i] * (1 - probs[i]));

		EXPECT_LT(fabs(counts[i] - n * probs[i]), 5 * sd + 1)
			TH_LOG("token %d: %d draws, expected %.0f", i, counts[i], n * probs[i]);
	}
}

TEST(temperature_sharpens)
{
	struct sample_params sp = { .temperature = 0.5f, .top_p = 1, .repetition_penalty = 1,
				    .seed = 9, .has_seed = true };
	int counts[V], n = 40000;
	double z = 0, p0;

	for (int i = 0; i < V; i++)
		z += probs[i] * probs[i];
	p0 = probs[0] * probs[0] / z;	/* p^(1/T) renormalized, T = 0.5 */
	draw(&sp, n, counts);
	EXPECT_LT(fabs(counts[0] - n * p0), 5 * sqrt(n * p0 * (1 - p0)));
}

TEST(top_k_top_p_min_p_filter)
{
	struct sample_params sp = { .temperature = 1, .top_p = 1, .repetition_penalty = 1,
				    .seed = 1, .has_seed = true };
	int counts[V];

	sp.top_k = 3;
	draw(&sp, 5000, counts);
	for (int i = 3; i < V; i++)
		EXPECT_EQ(0, counts[i]);
	EXPECT_GT(counts[2], 0);

	sp.top_k = 0;
	sp.top_p = 0.6f;	/* 0.40 + 0.25 reach it */
	draw(&sp, 5000, counts);
	EXPECT_GT(counts[1], 0);
	for (int i = 2; i < V; i++)
		EXPECT_EQ(0, counts[i]);

	sp.top_p = 1;
	sp.min_p = 0.3f;	/* keeps p >= 0.12 */
	draw(&sp, 5000, counts);
	EXPECT_GT(counts[2], 0);
	for (int i = 3; i < V; i++)
		EXPECT_EQ(0, counts[i]);
}

TEST(penalties)
{
	struct sample_params sp = { .temperature = 0, .top_p = 1, .repetition_penalty = 2,
				    .presence_penalty = 0.5f, .frequency_penalty = 0.25f };
	struct sampler *s = sampler_new(&sp, V);
	float l[V] = { 4, 3, -1, 0, 0, 0, 0, 0 };
	int32_t prompt[] = { 0, 2, 2 };

	ASSERT_NE(NULL, s);
	sampler_prompt(s, prompt, 3);
	sampler_accept(s, 1);
	sampler_accept(s, 1);
	sampler_next(s, l, -1, NULL, NULL);
	EXPECT_EQ(2.0f, l[0]);			/* 4 / 2: in the window once */
	EXPECT_EQ(-2.0f, l[2]);			/* -1 * 2 */
	/* token 1: 3 / 2 (window), then - 0.5 - 2 * 0.25 (generated twice) */
	EXPECT_EQ(0.5f, l[1]);
	sampler_free(s);
}

TEST(logprobs_are_the_model_distribution)
{
	struct sample_params sp = { .temperature = 0.7f, .top_p = 0.9f, .repetition_penalty = 1,
				    .seed = 3, .has_seed = true };
	struct sampler *s = sampler_new(&sp, V);
	struct token_logprob chosen, top[4];
	float l[V];
	int32_t t;

	ASSERT_NE(NULL, s);
	logits_of(probs, l);
	t = sampler_next(s, l, 4, &chosen, top);
	EXPECT_EQ(t, chosen.id);
	EXPECT_LT(fabs(chosen.logprob - log(probs[t])), 1e-5);
	for (int k = 0; k < 4; k++) {
		EXPECT_EQ(k, top[k].id);
		EXPECT_LT(fabs(top[k].logprob - log(probs[k])), 1e-5);
	}
	sampler_free(s);
}

TEST_HARNESS_MAIN
