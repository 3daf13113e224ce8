/*
 * test-sampler.c - sampling distributions and settings: greedy equivalences,
 * seeded repeatability, top-k / top-p / min-p exclusions, the frequencies of
 * an untruncated draw against the softmax, penalties, padding rows, and
 * generation_config.json reading.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sampler.h"
#include "t.h"
#include "util.h"

#define V 1000

static void
random_logits(float *x, int n, unsigned seed)
{
	srand(seed);
	for (int i = 0; i < n; i++)
		x[i] = (float)rand() / RAND_MAX * 8 - 4;
}

static int32_t
draw(struct sampler *s, const float *logits, int n)
{
	float tmp[V];

	memcpy(tmp, logits, (size_t)n * sizeof(float));
	return sampler_sample(s, tmp);
}

static void
test_greedy(void)
{
	struct sampler_params p;
	float x[V];
	int best = 0;

	sampler_params_default(&p);
	random_logits(x, V, 1);
	for (int i = 1; i < V; i++)
		if (x[i] > x[best])
			best = i;
	p.top_k = 1;
	{
		struct sampler *s = sampler_new(&p, V, V);

		for (int i = 0; i < 20; i++)
			T_EQ_INT(draw(s, x, V), best);
		sampler_free(s);
	}
	p.top_k = 20;
	p.temperature = 0;
	{
		struct sampler *s = sampler_new(&p, V, V);

		T_EQ_INT(draw(s, x, V), best);
		sampler_free(s);
	}
}

static void
test_seed(void)
{
	struct sampler_params p;
	struct sampler *a, *b, *c;
	float x[V];
	int same = 1, diff = 0;

	sampler_params_default(&p);
	p.top_k = 0;
	p.top_p = 1;
	p.temperature = 1;
	random_logits(x, V, 2);
	p.seed = 42;
	a = sampler_new(&p, V, V);
	b = sampler_new(&p, V, V);
	p.seed = 43;
	c = sampler_new(&p, V, V);
	for (int i = 0; i < 200; i++) {
		int ta = draw(a, x, V), tb = draw(b, x, V), tc = draw(c, x, V);

		same &= ta == tb;
		diff += ta != tc;
	}
	T_ASSERT(same);
	T_ASSERT(diff > 100);
	sampler_reset(a); /* reset re-seeds: the sequence starts over */
	sampler_reset(b);
	same = 1;
	for (int i = 0; i < 50; i++)
		same &= draw(a, x, V) == draw(b, x, V);
	T_ASSERT(same);
	sampler_free(a);
	sampler_free(b);
	sampler_free(c);
}

/* A fixed seed passes through; the random one is fresh each time and fits 2^53. */
static void
test_seed_pick(void)
{
	uint64_t a = sampler_seed_pick(SAMPLER_SEED_RANDOM),
		 b = sampler_seed_pick(SAMPLER_SEED_RANDOM);

	T_ASSERT(sampler_seed_pick(0) == 0);
	T_ASSERT(sampler_seed_pick(12345) == 12345);
	T_ASSERT(a <= SAMPLER_SEED_MAX && b <= SAMPLER_SEED_MAX);
	T_ASSERT(a != b); /* 2^-53 chance of a false failure */
}

/* probs 0.5 0.3 0.15 0.05 (as logs), then the rest very unlikely. */
static void
four_way(float *x)
{
	for (int i = 0; i < V; i++)
		x[i] = -1e9f;
	x[10] = logf(0.5f), x[20] = logf(0.3f), x[30] = logf(0.15f), x[40] = logf(0.05f);
}

static void
count(struct sampler_params *p, int *hist, int n)
{
	struct sampler *s = sampler_new(p, V, V);
	float x[V];

	four_way(x);
	memset(hist, 0, V * sizeof(int));
	for (int i = 0; i < n; i++)
		hist[draw(s, x, V)]++;
	sampler_free(s);
}

static void
test_truncation(void)
{
	struct sampler_params p;
	int h[V], n = 20000;

	sampler_params_default(&p);
	p.temperature = 1;
	p.top_k = 0;
	p.top_p = 1;
	count(&p, h, n);
	/* Untruncated: frequencies follow the probabilities (4 sigma). */
	T_NEAR(h[10] / (double)n, 0.5, 4 * sqrt(0.25 / n));
	T_NEAR(h[20] / (double)n, 0.3, 4 * sqrt(0.21 / n));
	T_NEAR(h[30] / (double)n, 0.15, 4 * sqrt(0.1275 / n));
	T_NEAR(h[40] / (double)n, 0.05, 4 * sqrt(0.0475 / n));
	p.top_p = 0.75f; /* 0.5 + 0.3 passes 0.75: the tail goes */
	count(&p, h, n);
	T_EQ_INT(h[30] + h[40], 0);
	T_NEAR(h[10] / (double)n, 0.5 / 0.8, 4 * sqrt(0.25 / n));
	p.top_p = 1;
	p.top_k = 2;
	count(&p, h, n);
	T_EQ_INT(h[10] + h[20], n);
	p.top_k = 0;
	p.min_p = 0.4f; /* floor 0.2: keeps 0.5 and 0.3 */
	count(&p, h, n);
	T_EQ_INT(h[10] + h[20], n);
	T_ASSERT(h[20] > 0);
	p.min_p = 0;
	p.temperature = 0.25f; /* sharper: the top token dominates */
	count(&p, h, n);
	T_ASSERT(h[10] > 0.8 * n);
}

static void
test_penalties(void)
{
	struct sampler_params p;
	struct sampler *s;
	float x[V] = { 0 };

	sampler_params_default(&p);
	p.temperature = 0;
	p.repetition_penalty = 2.0f;
	x[5] = 3.0f, x[6] = 2.0f;
	s = sampler_new(&p, V, V);
	T_EQ_INT(draw(s, x, V), 5);
	sampler_accept(s, 5); /* 3 / 2 = 1.5 < 2 */
	T_EQ_INT(draw(s, x, V), 6);
	sampler_free(s);
	p.repetition_penalty = 1;
	p.presence_penalty = 0.5f;
	s = sampler_new(&p, V, V);
	sampler_accept(s, 5);
	x[6] = 2.6f; /* 3 - 0.5 < 2.6 */
	T_EQ_INT(draw(s, x, V), 6);
	sampler_reset(s); /* history gone */
	T_EQ_INT(draw(s, x, V), 5);
	sampler_free(s);
	/* Padding rows (>= n_valid) are never chosen. */
	p.presence_penalty = 0;
	s = sampler_new(&p, V, 900);
	x[950] = 100;
	T_EQ_INT(draw(s, x, V), 5);
	sampler_free(s);
}

static void
test_gen_config(void)
{
	struct gen_config g;
	char *cause = NULL;
	char dir[] = "/tmp/qnext-gen-XXXXXX", path[64];
	FILE *f;

	T_EQ_INT(gen_config_load(&g, "share/tiny", &cause), 0);
	T_EQ_INT(g.n_eos, 2);
	T_EQ_INT(g.eos[0], 958);
	T_EQ_INT(g.eos[1], 956);
	T_NEAR(g.p.temperature, 0.6, 1e-6);
	T_EQ_INT(g.p.top_k, 20);
	T_NEAR(g.p.top_p, 0.95, 1e-6);
	T_ASSERT(mkdtemp(dir) != NULL);
	T_EQ_INT(gen_config_load(&g, dir, &cause), 0); /* no file: built-in defaults */
	T_EQ_INT(g.eos[0], 151645);
	T_EQ_INT(g.eos[1], 151643);
	snprintf(path, sizeof(path), "%s/generation_config.json", dir);
	f = fopen(path, "w");
	fputs("{\"temperature\": \"hot\"}", f);
	fclose(f);
	T_EQ_INT(gen_config_load(&g, dir, &cause), -1);
	T_STR_CONTAINS(cause, "temperature: must be a number");
	f = fopen(path, "w");
	fputs("{\"do_sample\": false, \"eos_token_id\": 7", f);
	fclose(f);
	T_EQ_INT(gen_config_load(&g, dir, &cause), -1);
	T_STR_CONTAINS(cause, "generation_config.json:1");
	f = fopen(path, "w");
	fputs("{\"do_sample\": false, \"eos_token_id\": 7}", f);
	fclose(f);
	T_EQ_INT(gen_config_load(&g, dir, &cause), 0);
	T_NEAR(g.p.temperature, 0, 0);
	T_EQ_INT(g.n_eos, 1);
	T_EQ_INT(g.eos[0], 7);
	unlink(path);
	rmdir(dir);
	free(cause);
}

int
main(void)
{
	test_greedy();
	test_seed();
	test_seed_pick();
	test_truncation();
	test_penalties();
	test_gen_config();
	return t_done("test-sampler");
}
