/*
 * verify.c - `qnext verify --model DIR --golden FILE`.
 *
 * Feeds the golden prompt through the engine under several schedules (whole
 * prompt in one step, one token at a time, uneven chunks 1, 5, 64, 65, rest),
 * each from a fresh state, and compares the logits at every position with the
 * golden ones.  Then continues greedily from the prompt, feeding the golden
 * continuation (so one early miss does not cascade) and checking that each
 * argmax is the golden next token and each logit row matches.  Errors are
 * reported relative to the golden `logit_abs_max` (from golden.json beside
 * the golden file, else the largest golden logit).
 *
 * Pass criteria: float32 path (--f32): every logit within --tol (2e-3) x
 * logit_abs_max and the greedy ids identical.  Default (int8 activation)
 * path: golden top-1 token reproduced at >= --min-top1 of prompt positions
 * in every schedule.  On either path a logit that is NaN or infinite, the
 * engine's or the golden's, is a failure.
 *
 * CLI main thread only.
 */
#include "verify.h"

#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "forward.h"
#include "kernels.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

/* Who the option errors name. */
#define WHO "qnext verify"

struct golden {
	struct st_set *st;
	const int32_t *ids;    /* [T] */
	const float *logits;   /* [T][V] */
	const float *hidden;   /* [L+1][T][dim] or NULL */
	const int32_t *greedy; /* [N] */
	const float *glogits;  /* [N][V] */
	int T, V, N, L1, dim;
	double abs_max;
};

struct vopts {
	const char *model, *golden;
	bool f32, hidden, self;
	int kv_bits; /* --kv-bits: 0 (the path's default), 16 or 32 */
	int tokens;
	double tol, min_top1;
	int threads;
	const char *isa;
};

static const struct st_tensor *
need(const struct st_set *st, const char *file, const char *name, enum st_dtype dt, char **cause)
{
	const struct st_tensor *t = st_find(st, name);

	if (t == NULL)
		cause_set(cause, "%s: missing tensor '%s'", file, name);
	else if (t->dtype != dt) {
		cause_set(cause, "%s: tensor '%s' has dtype %s, expected %s", file, name,
			  st_dtype_name(t->dtype), st_dtype_name(dt));
		t = NULL;
	}
	return t;
}

/* logit_abs_max from golden.json next to the golden file, when present. */
static double
golden_abs_max(const char *file)
{
	char *copy = xstrdup(file), *path = xasprintf("%s/golden.json", dirname(copy));
	json_t *j = json_read_file(path, READ_MAX_CONFIG, NULL);
	double v = 0;

	if (j != NULL && json_is_number(json_object_get(j, "logit_abs_max")))
		v = json_number_value(json_object_get(j, "logit_abs_max"));
	json_decref(j);
	free(path);
	free(copy);
	return v;
}

/*
 * Max |a - b| over n values; NaN when either side has a NaN or an infinity
 * (fmax would drop a NaN, and a broken row would then pass).
 */
static double
max_err(const float *a, const float *b, size_t n)
{
	double e = 0;

	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);

		if (!isfinite(a[i]) || !isfinite(b[i]))
			return NAN;
		e = d > e ? d : e;
	}
	return e;
}

/* How many of n values are NaN or infinite. */
static size_t
count_nonfinite(const float *a, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += !isfinite(a[i]);
	return k;
}

static int
golden_open(struct golden *g, const char *file, int vocab, int dim, char **cause)
{
	const struct st_tensor *ids, *lg, *hid, *gi, *gl;
	size_t bad;

	memset(g, 0, sizeof(*g));
	if ((g->st = st_open_file(file, cause)) == NULL)
		return -1;
	if ((ids = need(g->st, file, "input_ids", ST_I32, cause)) == NULL ||
	    (lg = need(g->st, file, "logits", ST_F32, cause)) == NULL ||
	    (gi = need(g->st, file, "greedy_ids", ST_I32, cause)) == NULL ||
	    (gl = need(g->st, file, "greedy_logits", ST_F32, cause)) == NULL)
		return -1;
	g->T = (int)ids->n_elems;
	g->N = (int)gi->n_elems;
	g->V = vocab;
	g->dim = dim;
	if (g->T < 1 || lg->n_dims != 2 || lg->shape[0] != g->T || lg->shape[1] != vocab ||
	    gl->n_dims != 2 || gl->shape[0] != g->N || gl->shape[1] != vocab)
		return cause_set(cause, "%s: logits shapes do not match the prompt and vocabulary %d",
				 file, vocab);
	g->ids = ids->data;
	g->logits = lg->data;
	g->greedy = gi->data;
	g->glogits = gl->data;
	hid = st_find(g->st, "hidden");
	if (hid != NULL && hid->dtype == ST_F32 && hid->n_dims == 3 && hid->shape[1] == g->T &&
	    hid->shape[2] == dim) {
		g->hidden = hid->data;
		g->L1 = (int)hid->shape[0];
	}
	if ((bad = count_nonfinite(g->logits, (size_t)lg->n_elems)) != 0 ||
	    (bad = count_nonfinite(g->glogits, (size_t)gl->n_elems)) != 0)
		return cause_set(cause, "%s: %zu golden logits are NaN or infinite", file, bad);
	g->abs_max = golden_abs_max(file);
	if (g->abs_max <= 0)
		for (int64_t i = 0; i < lg->n_elems; i++)
			g->abs_max = fmax(g->abs_max, fabs(g->logits[i]));
	return 0;
}

/* Feed the prompt by the chunk sizes in sched (0-terminated; the last
 * chunk repeats), collecting all logits. */
static int
feed(struct ctx *c, const struct golden *g, const int *sched, float *logits, char **cause)
{
	int at = 0, i = 0;

	ctx_reset(c);
	while (at < g->T) {
		int n = MIN(sched[i] > 0 ? sched[i] : g->T, g->T - at);

		if (ctx_forward(c, g->ids + at, n, logits + (size_t)at * g->V, true, cause) != 0)
			return -1;
		at += n;
		if (sched[i] > 0 && sched[i + 1] != 0)
			i++;
	}
	return 0;
}

/*
 * Greedy continuation after the prompt; returns the number of matching ids.
 * err: the largest logit error (NaN if a logit was not finite), bad: how
 * many logits were not finite.
 */
static int
greedy(struct ctx *c, const struct golden *g, const float *last, float *buf, double *err,
       size_t *bad, char **cause)
{
	int ok = 0;

	*err = 0;
	*bad = 0;
	for (int i = 0; i < g->N; i++) {
		int want = g->greedy[i], got = argmax_f32(i == 0 ? last : buf, g->V);
		double e;

		ok += got == want;
		if (ctx_forward(c, &g->greedy[i], 1, buf, false, cause) != 0)
			return -1;
		*bad += count_nonfinite(buf, (size_t)g->V);
		e = max_err(buf, g->glogits + (size_t)i * g->V, (size_t)g->V);
		*err = isnan(e) || e > *err ? e : *err;
	}
	return ok;
}

static void
report_hidden(struct ctx *c, const struct golden *g, const struct model *m, float *logits)
{
	size_t per = (size_t)g->T * g->dim;
	float *h = xmalloc((size_t)g->L1 * per * sizeof(float));
	int whole[] = { 0, 0 };

	ctx_capture_hidden(c, h, g->T);
	if (feed(c, g, whole, logits, NULL) == 0)
		for (int l = 0; l < g->L1 && l <= m->cfg.n_layers; l++) {
			double amax = 0;

			for (size_t i = 0; i < per; i++)
				amax = fmax(amax, fabs(g->hidden[l * per + i]));
			printf("  hidden %-2d (%s): max err %.3e (%.3e of its max %.3f)\n", l,
			       l == 0 ? "embedding" : m->layers[l - 1].full ? "attention" : "deltanet",
			       max_err(h + l * per, g->hidden + l * per, per),
			       max_err(h + l * per, g->hidden + l * per, per) / amax, amax);
		}
	ctx_capture_hidden(c, NULL, 0);
	free(h);
}

struct sched {
	const char *name;
	int chunks[6];
};

static const struct sched scheds[] = {
	{ "whole prompt", { 0, 0 } },
	{ "one token at a time", { 1, 0 } },
	{ "chunks 1,5,64,65,rest", { 1, 5, 64, 65, 100000, 0 } },
};

/* One schedule: prompt logits, then greedy.  Returns 0 on pass. */
static int
run_sched(struct ctx *c, const struct golden *g, const struct sched *s, const struct vopts *o,
	  float *logits, float *buf, char **cause)
{
	double err, gerr, rel;
	size_t bad, gbad;
	int top1 = 0, gok;

	if (feed(c, g, s->chunks, logits, cause) != 0)
		return -1;
	err = max_err(logits, g->logits, (size_t)g->T * g->V);
	bad = count_nonfinite(logits, (size_t)g->T * g->V);
	for (int t = 0; t < g->T; t++)
		top1 += argmax_f32(logits + (size_t)t * g->V, g->V) ==
			argmax_f32(g->logits + (size_t)t * g->V, g->V);
	gok = greedy(c, g, logits + (size_t)(g->T - 1) * g->V, buf, &gerr, &gbad, cause);
	if (gok < 0)
		return -1;
	rel = isnan(err) || isnan(gerr) ? NAN : fmax(err, gerr) / g->abs_max;
	printf("%-24s max err %.3e x logit_abs_max (prompt %.3e, greedy %.3e), top-1 %d/%d "
	       "(%.1f%%), greedy ids %d/%d\n",
	       s->name, rel, err / g->abs_max, gerr / g->abs_max, top1, g->T, 100.0 * top1 / g->T,
	       gok, g->N);
	if (bad + gbad != 0) {
		printf("%-24s %zu logits are NaN or infinite (%zu in the prompt, %zu greedy)\n",
		       s->name, bad + gbad, bad, gbad);
		return 1; /* broken numbers fail on either path */
	}
	if (o->f32)
		return rel <= o->tol && gok == g->N ? 0 : 1;
	return (double)top1 / g->T >= o->min_top1 ? 0 : 1;
}

/*
 * --self: no reference data (a synthetic checkpoint); random ids fed whole,
 * one at a time and in uneven chunks must give the same logits.
 */
static int
verify_self(struct ctx *c, const struct model *m, const struct vopts *o)
{
	struct golden g = { .T = o->tokens, .V = m->cfg.vocab_size };
	int32_t *ids = xmalloc((size_t)g.T * sizeof(int32_t));
	float *ref = xmalloc((size_t)g.T * g.V * sizeof(float));
	float *got = xmalloc((size_t)g.T * g.V * sizeof(float));
	double worst = 0;
	int rc = 1;

	srand(7);
	for (int i = 0; i < g.T; i++)
		ids[i] = rand() % g.V;
	g.ids = ids;
	if (feed(c, &g, scheds[0].chunks, ref, NULL) != 0)
		goto out;
	for (int64_t i = 0; i < (int64_t)g.T * g.V; i++)
		g.abs_max = fmax(g.abs_max, fabs(ref[i]));
	for (size_t k = 1; k < ARRAY_LEN(scheds); k++) {
		double e;

		if (feed(c, &g, scheds[k].chunks, got, NULL) != 0)
			goto out;
		/* NaN when a logit of either run is not finite: fails below. */
		e = max_err(got, ref, (size_t)g.T * g.V) / g.abs_max;
		worst = isnan(e) || e > worst ? e : worst;
		printf("%-24s max err %.3e x logit_abs_max vs the whole prompt\n", scheds[k].name, e);
	}
	rc = worst <= o->tol ? 0 : 1;
	printf("%s: %d random tokens, schedules agree within %.1e x logit_abs_max (%.4f)\n",
	       rc ? "FAIL" : "PASS", g.T, o->tol, g.abs_max);
out:
	free(ids);
	free(ref);
	free(got);
	return rc;
}

static int
verify_run(const struct vopts *o)
{
	struct model *m = NULL;
	struct ctx *c = NULL;
	struct golden g = { 0 };
	struct ctx_opts co = { 0 };
	float *logits = NULL, *buf = NULL;
	char *cause = NULL, *desc;
	int fails = 0, rc = 1;

	if ((m = model_open(o->model, &cause)) == NULL ||
	    (!o->self &&
	     golden_open(&g, o->golden, m->cfg.vocab_size, m->cfg.hidden_size, &cause) != 0))
		goto out;
	co.n_ctx = o->self ? o->tokens : g.T + g.N;
	co.n_batch = o->self ? o->tokens : g.T;
	co.n_threads = o->threads;
	co.f32 = o->f32;
	co.kv_bits = o->kv_bits;
	co.kernels = o->isa != NULL ? kernels_tier(o->isa) : NULL;
	if (o->isa != NULL && co.kernels == NULL) {
		cause = xasprintf("--isa %s: unknown or not supported by this CPU", o->isa);
		goto out;
	}
	if ((c = ctx_new(m, &co, &cause)) == NULL)
		goto out;
	desc = model_describe(m);
	printf("model: %s\nkernels: %s, path: %s, golden: %d prompt tokens, %d greedy\n", desc,
	       co.kernels ? co.kernels->name : kernels_get()->name,
	       o->f32 ? "float32 activations" : "int8 activations", g.T, g.N);
	free(desc);
	if (o->self) {
		rc = verify_self(c, m, o);
		goto out;
	}
	logits = xmalloc((size_t)g.T * g.V * sizeof(float));
	buf = xmalloc((size_t)g.V * sizeof(float));
	for (size_t i = 0; i < ARRAY_LEN(scheds); i++) {
		int r = run_sched(c, &g, &scheds[i], o, logits, buf, &cause);

		if (r < 0)
			goto out;
		fails += r;
	}
	if (o->hidden && g.hidden != NULL)
		report_hidden(c, &g, m, logits);
	if (o->f32)
		printf("%s: tolerance %.1e x logit_abs_max (%.4f), greedy ids must match\n",
		       fails ? "FAIL" : "PASS", o->tol, g.abs_max);
	else
		printf("%s: top-1 agreement must be >= %.0f%% in every schedule\n",
		       fails ? "FAIL" : "PASS", 100 * o->min_top1);
	rc = fails ? 1 : 0;
out:
	if (cause != NULL)
		fprintf(stderr, "qnext verify: %s\n", cause);
	free(cause);
	free(logits);
	free(buf);
	ctx_free(c);
	st_close(g.st);
	model_close(m);
	return rc;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: qnext verify --model DIR --golden FILE [--f32] [--hidden] [--tol X]\n"
		   "                    [--min-top1 F] [--threads N] [--isa scalar|avx2|avx512]\n"
		   "                    [--kv-bits 16|32]\n"
		   "       qnext verify --model DIR --self [--tokens N] [--f32] [--tol X]\n");
}

int
verify_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' }, { "golden", required_argument, NULL, 'g' },
		{ "f32", no_argument, NULL, 'f' },         { "hidden", no_argument, NULL, 'H' },
		{ "tol", required_argument, NULL, 't' },   { "min-top1", required_argument, NULL, 'k' },
		{ "threads", required_argument, NULL, 'j' }, { "isa", required_argument, NULL, 'i' },
		{ "self", no_argument, NULL, 's' },        { "tokens", required_argument, NULL, 'T' },
		{ "kv-bits", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },        { NULL, 0, NULL, 0 },
	};
	struct vopts o = { .tol = 2e-3, .min_top1 = 0.6, .tokens = 100 };
	int ch, rc = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "m:g:fHt:k:j:i:sT:K:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm': o.model = optarg; break;
		case 'g': o.golden = optarg; break;
		case 'f': o.f32 = true; break;
		case 'H': o.hidden = true; break;
		case 't': rc = arg_double(WHO, "--tol", optarg, 1e-12, 1e6, &o.tol); break;
		case 'k': rc = arg_double(WHO, "--min-top1", optarg, 0, 1, &o.min_top1); break;
		case 'j': rc = arg_int(WHO, "--threads", optarg, 1, 1024, &o.threads); break;
		case 'i': o.isa = optarg; break;
		case 's': o.self = true; break;
		case 'T': rc = arg_int(WHO, "--tokens", optarg, 2, 1 << 20, &o.tokens); break;
		case 'K':
			if (arg_int(WHO, "--kv-bits", optarg, 16, 32, &o.kv_bits) != 0 ||
			    (o.kv_bits != 16 && o.kv_bits != 32)) {
				fprintf(stderr, "qnext verify: --kv-bits must be 16 or 32\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (rc != 0)
			return 2;
	}
	if (o.model == NULL || (o.golden == NULL) == !o.self || optind != argc || o.tol <= 0 ||
	    o.tokens < 2) {
		usage(stderr);
		return 2;
	}
	return verify_run(&o);
}
