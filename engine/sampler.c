/*
 * sampler.c - next-token choice (see sampler.h).
 *
 * Candidates are kept as (id, logit) pairs; top-k uses a partial selection
 * (quickselect) so the common top-k 20 over a 152k vocabulary costs one pass,
 * and only the survivors are sorted.  The RNG is xoshiro256** seeded through
 * splitmix64, so a seed gives the same sequence on every machine.
 *
 * Thread affinity: the owning thread only.
 */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "util.h"

struct cand {
	int32_t id;
	float v; /* logit, then probability */
};

struct sampler {
	struct sampler_params p;
	int n_vocab, n_valid;
	uint8_t *seen;     /* [n_vocab] 1 when the token occurred */
	struct cand *cand; /* [n_valid] */
	uint64_t rng[4];
};

void
sampler_params_default(struct sampler_params *p)
{
	p->temperature = 0.6f;
	p->top_k = 20;
	p->top_p = 0.95f;
	p->min_p = 0.0f;
	p->presence_penalty = 0.0f;
	p->repetition_penalty = 1.0f;
	p->seed = 0;
}

uint64_t
sampler_seed_pick(uint64_t seed)
{
	uint64_t r;

	if (seed != SAMPLER_SEED_RANDOM)
		return seed;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		/* No entropy yet (early boot): the clock still differs per turn. */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		r = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec * 2654435761u;
	}
	return r & SAMPLER_SEED_MAX;
}

void
sampler_fields_copy(struct sampler_params *dst, const struct sampler_params *src, unsigned fields)
{
	if (fields & SP_TEMPERATURE)
		dst->temperature = src->temperature;
	if (fields & SP_TOP_K)
		dst->top_k = src->top_k;
	if (fields & SP_TOP_P)
		dst->top_p = src->top_p;
	if (fields & SP_MIN_P)
		dst->min_p = src->min_p;
	if (fields & SP_PRESENCE)
		dst->presence_penalty = src->presence_penalty;
	if (fields & SP_REPEAT)
		dst->repetition_penalty = src->repetition_penalty;
	if (fields & SP_SEED)
		dst->seed = src->seed;
}

char *
sampler_params_json(const struct sampler_params *p)
{
	json_t *o = json_pack("{s:f, s:i, s:f, s:f, s:f, s:f, s:I}", "temperature",
			      (double)p->temperature, "top_k", p->top_k, "top_p", (double)p->top_p,
			      "min_p", (double)p->min_p, "presence_penalty",
			      (double)p->presence_penalty, "repetition_penalty",
			      (double)p->repetition_penalty, "seed", (json_int_t)p->seed);
	char *r = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));

	json_decref(o);
	if (r == NULL)
		fatal("sampler_params_json: out of memory");
	return r;
}

static int
num_field(json_t *j, const char *key, float *out, const char *path, char **cause)
{
	json_t *v = json_object_get(j, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return cause_set(cause, "%s: %s: must be a number", path, key);
	*out = (float)json_number_value(v);
	return 0;
}

static int
eos_field(struct gen_config *g, json_t *v, const char *path, char **cause)
{
	size_t i;
	json_t *e;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		g->eos[0] = (int32_t)json_integer_value(v);
		g->n_eos = 1;
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > SAMPLER_MAX_EOS)
		return cause_set(cause, "%s: eos_token_id: must be an integer or a short list",
				 path);
	g->n_eos = 0;
	json_array_foreach(v, i, e)
	{
		if (!json_is_integer(e))
			return cause_set(cause, "%s: eos_token_id[%zu]: must be an integer", path,
					 i);
		g->eos[g->n_eos++] = (int32_t)json_integer_value(e);
	}
	return 0;
}

int
gen_config_load(struct gen_config *g, const char *dir, char **cause)
{
	char *path = xasprintf("%s/generation_config.json", dir);
	json_t *j;
	float k = -1;
	int rc = -1;

	memset(g, 0, sizeof(*g));
	sampler_params_default(&g->p);
	g->n_eos = 2;
	g->eos[0] = 151645; /* <|im_end|> */
	g->eos[1] = 151643; /* <|endoftext|> */
	if (access(path, F_OK) != 0) {
		free(path); /* none: the defaults */
		return 0;
	}
	if ((j = json_read_file(path, READ_MAX_CONFIG, cause)) == NULL) {
		free(path);
		return -1;
	}
	if (!json_is_object(j)) {
		cause_set(cause, "%s: not a JSON object", path);
		goto out;
	}
	if (num_field(j, "temperature", &g->p.temperature, path, cause) != 0 ||
	    num_field(j, "top_p", &g->p.top_p, path, cause) != 0 ||
	    num_field(j, "min_p", &g->p.min_p, path, cause) != 0 ||
	    num_field(j, "repetition_penalty", &g->p.repetition_penalty, path, cause) != 0 ||
	    num_field(j, "top_k", &k, path, cause) != 0 ||
	    eos_field(g, json_object_get(j, "eos_token_id"), path, cause) != 0)
		goto out;
	if (k >= 0)
		g->p.top_k = (int)k;
	if (json_is_false(json_object_get(j, "do_sample")))
		g->p.temperature = 0; /* greedy, as transformers does */
	rc = 0;
out:
	json_decref(j);
	free(path);
	return rc;
}

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: a uniform double in [0, 1). */
static double
rng_uniform(struct sampler *s)
{
	uint64_t *r = s->rng, res = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;

	r[2] ^= r[0];
	r[3] ^= r[1];
	r[1] ^= r[2];
	r[0] ^= r[3];
	r[2] ^= t;
	r[3] = rotl(r[3], 45);
	return (double)(res >> 11) * 0x1.0p-53;
}

struct sampler *
sampler_new(const struct sampler_params *p, int n_vocab, int n_valid)
{
	struct sampler *s = xcalloc(1, sizeof(*s));

	s->p = *p;
	s->n_vocab = n_vocab;
	s->n_valid = n_valid > 0 && n_valid < n_vocab ? n_valid : n_vocab;
	s->seen = xcalloc((size_t)n_vocab, 1);
	s->cand = xcalloc((size_t)s->n_valid, sizeof(struct cand));
	sampler_reset(s);
	return s;
}

void
sampler_free(struct sampler *s)
{
	if (s == NULL)
		return;
	free(s->seen);
	free(s->cand);
	free(s);
}

void
sampler_reset(struct sampler *s)
{
	uint64_t x = s->p.seed;

	memset(s->seen, 0, (size_t)s->n_vocab);
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
}

void
sampler_accept(struct sampler *s, int32_t id)
{
	if (id >= 0 && id < s->n_vocab)
		s->seen[id] = 1;
}

static void
penalize(struct sampler *s, float *logits)
{
	float rp = s->p.repetition_penalty, pp = s->p.presence_penalty;

	if (rp == 1.0f && pp == 0.0f)
		return;
	for (int i = 0; i < s->n_valid; i++) {
		if (!s->seen[i])
			continue;
		if (rp != 1.0f && rp > 0)
			logits[i] = logits[i] > 0 ? logits[i] / rp : logits[i] * rp;
		logits[i] -= pp;
	}
}

static int
cand_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->v != y->v)
		return x->v < y->v ? 1 : -1;
	return x->id - y->id;
}

/* Move the k largest candidates to the front (unordered), Hoare-style quickselect. */
static void
select_top(struct cand *c, int n, int k)
{
	int lo = 0, hi = n - 1;

	while (lo < hi) {
		float pivot = c[(lo + hi) / 2].v;
		int i = lo, j = hi;

		while (i <= j) {
			while (c[i].v > pivot)
				i++;
			while (c[j].v < pivot)
				j--;
			if (i <= j) {
				struct cand t = c[i];

				c[i++] = c[j];
				c[j--] = t;
			}
		}
		if (k - 1 <= j)
			hi = j;
		else if (k - 1 >= i)
			lo = i;
		else
			break;
	}
}

/* Softmax over c[0..n) in place; returns n. */
static void
softmax(struct cand *c, int n)
{
	double sum = 0;
	float mx = c[0].v;

	for (int i = 1; i < n; i++)
		mx = c[i].v > mx ? c[i].v : mx;
	for (int i = 0; i < n; i++) {
		c[i].v = expf(c[i].v - mx);
		sum += c[i].v;
	}
	for (int i = 0; i < n; i++)
		c[i].v = (float)(c[i].v / sum);
}

/* Candidates sorted by probability after temperature, top-k and softmax. */
static int
candidates(struct sampler *s, const float *logits)
{
	int n = s->n_valid, k = s->p.top_k;

	for (int i = 0; i < n; i++) {
		s->cand[i].id = i;
		s->cand[i].v = logits[i] / s->p.temperature;
	}
	if (k > 0 && k < n) {
		select_top(s->cand, n, k);
		n = k;
	}
	qsort(s->cand, (size_t)n, sizeof(struct cand), cand_desc);
	softmax(s->cand, n);
	return n;
}

int32_t
sampler_sample(struct sampler *s, float *logits)
{
	double r, acc = 0, kept = 0;
	int n;

	penalize(s, logits);
	if (s->p.temperature <= 0 || s->p.top_k == 1)
		return argmax_f32(logits, s->n_valid);
	n = candidates(s, logits);
	/* top-p: the smallest prefix whose mass reaches top_p (at least one). */
	if (s->p.top_p < 1.0f) {
		int m = 0;

		for (double cum = 0; m < n && (m == 0 || cum < s->p.top_p); m++)
			cum += s->cand[m].v;
		n = m;
	}
	/* min-p: drop tokens below min_p x the best probability. */
	if (s->p.min_p > 0) {
		float floor_p = s->p.min_p * s->cand[0].v;

		while (n > 1 && s->cand[n - 1].v < floor_p)
			n--;
	}
	for (int i = 0; i < n; i++)
		kept += s->cand[i].v;
	r = rng_uniform(s) * kept;
	for (int i = 0; i < n; i++) {
		acc += s->cand[i].v;
		if (r < acc)
			return s->cand[i].id;
	}
	return s->cand[n - 1].id;
}
