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
#include "subcmd.h"
#include "util.h"

/* Who the option errors name. */
#define WHO "qnext verify"

/*
 * --paths bounds (--max-kl, --max-hidden): mean KL divergence of the int8
 * path's next-token distribution from float32's, and the relative RMS
 * error of its residual stream after any layer.  Measured on the goldens
 * and the real-width model (docs/model-format.md); the bounds sit a few
 * times above the largest measurement, far below what a broken kernel or
 * a wrong scale gives.
 */
#define PATHS_MAX_KL     2e-3
#define PATHS_MAX_HIDDEN 0.08

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
	bool paths;           /* --paths: the int8 path measured against the float32 one */
	unsigned float_parts; /* --float: products kept in float activations */
	double max_kl, max_hidden;
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
		return cause_set(cause,
				 "%s: logits shapes do not match the prompt and vocabulary %d",
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
			       l == 0                  ? "embedding"
			       : m->layers[l - 1].full ? "attention"
						       : "deltanet",
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

/* n pseudo-random token ids below V, the same every run. */
static int32_t *
random_ids(int n, int V)
{
	int32_t *ids = xmalloc((size_t)n * sizeof(int32_t));

	srand(7);
	for (int i = 0; i < n; i++)
		ids[i] = rand() % V;
	return ids;
}

/*
 * --self: no reference data (a synthetic checkpoint); random ids fed whole,
 * one at a time and in uneven chunks must give the same logits.
 */
static int
verify_self(struct ctx *c, const struct model *m, const struct vopts *o)
{
	struct golden g = { .T = o->tokens, .V = m->cfg.vocab_size };
	int32_t *ids = random_ids(g.T, g.V);
	float *ref = xmalloc((size_t)g.T * g.V * sizeof(float));
	float *got = xmalloc((size_t)g.T * g.V * sizeof(float));
	double worst = 0;
	int rc = 1;

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
		printf("%-24s max err %.3e x logit_abs_max vs the whole prompt\n", scheds[k].name,
		       e);
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

/* ---- --paths: the int8 path against the float32 path ------------------ */

/*
 * KL(P || Q) in nats of the next-token distributions softmax(ref) = P and
 * softmax(got) = Q, in double.  The reference comes first, as in
 * llama.cpp's --kl-divergence, so a token the reference finds likely and
 * the int8 path does not costs the most.
 */
static double
kl_div(const float *ref, const float *got, int V)
{
	double mr = ref[0], mg = got[0], zr = 0, zg = 0, kl = 0;

	if (count_nonfinite(ref, (size_t)V) + count_nonfinite(got, (size_t)V) != 0)
		return NAN; /* fmax below would skip a NaN */
	for (int i = 1; i < V; i++) {
		mr = fmax(mr, ref[i]);
		mg = fmax(mg, got[i]);
	}
	for (int i = 0; i < V; i++) {
		zr += exp(ref[i] - mr);
		zg += exp(got[i] - mg);
	}
	mr += log(zr);
	mg += log(zg);
	for (int i = 0; i < V; i++) {
		double lp = ref[i] - mr, lq = got[i] - mg;

		kl += exp(lp) * (lp - lq);
	}
	return fmax(kl, 0); /* rounding can make a zero slightly negative */
}

/* Mean and largest KL over T rows, and how many rows share the top-1 token. */
struct kl_stats {
	double mean, max;
	int top1;
};

static struct kl_stats
kl_rows(const float *ref, const float *got, int T, int V)
{
	struct kl_stats k = { 0 };

	for (int t = 0; t < T; t++) {
		const float *r = ref + (size_t)t * V, *q = got + (size_t)t * V;
		double d = kl_div(r, q, V);

		k.mean += d / T; /* NaN stays NaN */
		k.max = isnan(d) || d > k.max ? d : k.max;
		k.top1 += argmax_f32(r, V) == argmax_f32(q, V);
	}
	return k;
}

/* ||a - b|| / ||b|| over n values: the relative RMS error of a hidden state. */
static double
rel_rms(const float *a, const float *b, size_t n)
{
	double e = 0, r = 0;

	for (size_t i = 0; i < n; i++) {
		double d = (double)a[i] - b[i];

		e += d * d;
		r += (double)b[i] * b[i];
	}
	return r > 0 ? sqrt(e / r) : sqrt(e);
}

/* One path's logits [T][V] and residual stream [L+1][T][dim] over ids. */
static int
run_path(const struct model *m, const struct vopts *o, bool f32, const int32_t *ids, int T,
	 float *logits, float *hidden, char **cause)
{
	struct ctx_opts co = { .n_ctx = T,
			       .n_batch = T,
			       .n_threads = o->threads,
			       .f32 = f32,
			       .float_parts = o->float_parts };
	struct ctx *c;
	int rc;

	co.kernels = o->isa != NULL ? kernels_tier(o->isa) : NULL;
	if ((c = ctx_new(m, &co, cause)) == NULL)
		return -1;
	ctx_capture_hidden(c, hidden, T);
	rc = ctx_forward(c, ids, T, logits, true, cause);
	ctx_free(c);
	return rc == 0 ? 0 : -1;
}

/* The float_parts names --float accepts, as printed. */
static const char *
float_names(unsigned parts, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", parts & FLOAT_ROUTER ? "router " : "",
		 parts & FLOAT_BA ? "in_proj_ba " : "",
		 parts & FLOAT_SHGATE ? "shared_expert_gate " : "",
		 parts & FLOAT_ALL_SMALL ? "" : "none");
	return buf;
}

/* Per layer: the int8 path's hidden error against float32 (and float32's against the golden). */
static double
paths_hidden(const struct model *m, const struct golden *g, int T, const float *h8,
	     const float *h32)
{
	size_t per = (size_t)T * m->cfg.hidden_size;
	double worst = 0;

	for (int l = 0; l <= m->cfg.n_layers; l++) {
		double e = rel_rms(h8 + l * per, h32 + l * per, per);

		worst = isnan(e) || e > worst ? e : worst;
		printf("  hidden %-2d (%-9s) int8 vs float32 %.3e", l,
		       l == 0                  ? "embedding"
		       : m->layers[l - 1].full ? "attention"
					       : "deltanet",
		       e);
		if (g != NULL && g->hidden != NULL && l < g->L1 && g->T == T)
			printf(", float32 vs golden %.3e, int8 vs golden %.3e",
			       rel_rms(h32 + l * per, g->hidden + l * per, per),
			       rel_rms(h8 + l * per, g->hidden + l * per, per));
		printf("\n");
	}
	return worst;
}

/*
 * --paths: feed the same tokens (the golden prompt, else --tokens random
 * ids) through the float32 and the int8 path and measure how far the int8
 * path's next-token distributions and residual stream land from float32's.
 * The float32 path is the one checked against the float64 goldens, so it is
 * the reference here; with a golden, both are also measured against it.
 */
static int
verify_paths(const struct model *m, const struct golden *g, const struct vopts *o)
{
	int T = g->T, V = m->cfg.vocab_size, L1 = m->cfg.n_layers + 1;
	size_t nh = (size_t)L1 * T * m->cfg.hidden_size;
	float *l32 = xmalloc((size_t)T * V * sizeof(float)),
	      *l8 = xmalloc((size_t)T * V * sizeof(float));
	float *h32 = xmalloc(nh * sizeof(float)), *h8 = xmalloc(nh * sizeof(float));
	char *cause = NULL, names[80];
	struct kl_stats k;
	double hid;
	int rc = 1;

	if (run_path(m, o, true, g->ids, T, l32, h32, &cause) != 0 ||
	    run_path(m, o, false, g->ids, T, l8, h8, &cause) != 0) {
		fprintf(stderr, "qnext verify: %s\n", cause);
		goto out;
	}
	printf("float activations on the int8 path: %s\n",
	       float_names(o->float_parts, names, sizeof(names)));
	hid = paths_hidden(m, g->logits != NULL ? g : NULL, T, h8, h32);
	k = kl_rows(l32, l8, T, V);
	printf("int8 vs float32: mean KL %.3e nats, max %.3e, top-1 agreement %d/%d (%.1f%%), "
	       "max hidden error %.3e\n",
	       k.mean, k.max, k.top1, T, 100.0 * k.top1 / T, hid);
	if (g->logits != NULL) {
		struct kl_stats k32 = kl_rows(g->logits, l32, T, V),
				kg8 = kl_rows(g->logits, l8, T, V);

		printf("against the golden: float32 mean KL %.3e (top-1 %d/%d), int8 mean KL %.3e "
		       "(top-1 %d/%d)\n",
		       k32.mean, k32.top1, T, kg8.mean, kg8.top1, T);
	}
	rc = isnan(k.mean) || isnan(hid) || k.mean > o->max_kl || hid > o->max_hidden;
	printf("%s: mean KL must be <= %.1e nats and every layer's hidden error <= %.1e\n",
	       rc ? "FAIL" : "PASS", o->max_kl, o->max_hidden);
out:
	free(cause);
	free(l32);
	free(l8);
	free(h32);
	free(h8);
	return rc;
}

/* --paths on the golden prompt, or with --self on --tokens random ids. */
static int
paths_main(const struct model *m, struct golden *g, const struct vopts *o)
{
	int32_t *ids = NULL;
	char *desc;
	int rc;

	if (o->self) {
		g->T = o->tokens;
		ids = random_ids(o->tokens, m->cfg.vocab_size);
		g->ids = ids;
	}
	desc = model_describe(m);
	printf("model: %s\nkernels: %s, %d tokens (%s)\n", desc,
	       o->isa != NULL ? o->isa : kernels_get()->name, g->T,
	       o->self ? "random ids" : "the golden prompt");
	free(desc);
	rc = verify_paths(m, g, o);
	free(ids);
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
	if (model_warning(m) != NULL)
		fprintf(stderr, "qnext verify: note: %s\n", model_warning(m));
	if (o->paths) {
		rc = paths_main(m, &g, o);
		goto out;
	}
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

/* --float LIST: comma-separated router, ba, shgate, or all, or none. */
static int
parse_float_parts(const char *arg, unsigned *parts)
{
	char *copy = xstrdup(arg), *save = NULL;
	int rc = 0;

	*parts = 0;
	for (char *w = strtok_r(copy, ",", &save); w != NULL; w = strtok_r(NULL, ",", &save)) {
		if (strcmp(w, "router") == 0)
			*parts |= FLOAT_ROUTER;
		else if (strcmp(w, "ba") == 0)
			*parts |= FLOAT_BA;
		else if (strcmp(w, "shgate") == 0)
			*parts |= FLOAT_SHGATE;
		else if (strcmp(w, "all") == 0)
			*parts |= FLOAT_ALL_SMALL;
		else if (strcmp(w, "none") != 0) {
			fprintf(stderr,
				WHO ": --float: '%s' is not router, ba, shgate, all or none\n", w);
			rc = -1;
		}
	}
	if (*parts == 0)
		*parts = FLOAT_NONE;
	free(copy);
	return rc;
}

static void
usage(FILE *f)
{
	subcmd_usage(f, "verify");
}

int
verify_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "golden", required_argument, NULL, 'g' },
		{ "f32", no_argument, NULL, 'f' },
		{ "hidden", no_argument, NULL, 'H' },
		{ "tol", required_argument, NULL, 't' },
		{ "min-top1", required_argument, NULL, 'k' },
		{ "threads", required_argument, NULL, 'j' },
		{ "isa", required_argument, NULL, 'i' },
		{ "self", no_argument, NULL, 's' },
		{ "tokens", required_argument, NULL, 'T' },
		{ "kv-bits", required_argument, NULL, 'K' },
		{ "paths", no_argument, NULL, 'P' },
		{ "float", required_argument, NULL, 'F' },
		{ "max-kl", required_argument, NULL, 'L' },
		{ "max-hidden", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vopts o = { .tol = 2e-3,
			   .min_top1 = 0.6,
			   .tokens = 100,
			   .float_parts = FLOAT_DEFAULT,
			   .max_kl = PATHS_MAX_KL,
			   .max_hidden = PATHS_MAX_HIDDEN };
	int ch, rc = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "m:g:fHt:k:j:i:sT:K:PF:L:D:h", longopts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'm':
			o.model = optarg;
			break;
		case 'g':
			o.golden = optarg;
			break;
		case 'f':
			o.f32 = true;
			break;
		case 'H':
			o.hidden = true;
			break;
		case 't':
			rc = arg_double(WHO, "--tol", optarg, 1e-12, 1e6, &o.tol);
			break;
		case 'k':
			rc = arg_double(WHO, "--min-top1", optarg, 0, 1, &o.min_top1);
			break;
		case 'j':
			rc = arg_int(WHO, "--threads", optarg, 1, 1024, &o.threads);
			break;
		case 'i':
			o.isa = optarg;
			break;
		case 's':
			o.self = true;
			break;
		case 'T':
			rc = arg_int(WHO, "--tokens", optarg, 2, 1 << 20, &o.tokens);
			break;
		case 'K':
			if (arg_int(WHO, "--kv-bits", optarg, 16, 32, &o.kv_bits) != 0 ||
			    (o.kv_bits != 16 && o.kv_bits != 32)) {
				fprintf(stderr, "qnext verify: --kv-bits must be 16 or 32\n");
				return 2;
			}
			break;
		case 'P':
			o.paths = true;
			break;
		case 'F':
			rc = parse_float_parts(optarg, &o.float_parts);
			break;
		case 'L':
			rc = arg_double(WHO, "--max-kl", optarg, 0, 1e6, &o.max_kl);
			break;
		case 'D':
			rc = arg_double(WHO, "--max-hidden", optarg, 0, 1e6, &o.max_hidden);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
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
