/*
 * models.c - the model directories qnext can find, each with its size and
 * the plan's verdict (see models.h).  Candidates come from the caller and
 * from the places paths.c looks; each is resolved with realpath so a model
 * reached twice (a symlink, $QNEXT_MODEL naming the cache) is listed once.
 *
 * Main or UI thread (it opens models and probes the machine).
 */
#include "models.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "paths.h"
#include "plan.h"
#include "util.h"

/* The list being built, and the resolved paths already in it. */
struct found {
	struct model_found *v;
	char **real;
	size_t n, cap;
};

/* "fits in RAM, about 9.1 tok/s": plan_compute's verdict in a few words. */
static char *
verdict(const char *dir, uint64_t *size)
{
	struct plan_model pm;
	struct plan_machine mc;
	struct plan_result r;
	struct model *m;
	char *cause = NULL, *v;
	double tok_s;

	*size = model_files_bytes(dir);
	if ((m = model_open(dir, &cause)) == NULL || plan_model_init(&pm, m, 0, 0, &cause) != 0) {
		v = xasprintf("cannot be opened: %s", cause);
		free(cause);
		model_close(m);
		return v;
	}
	plan_machine_probe(dir, &mc);
	plan_compute(&pm, &mc, &r);
	model_close(m);
	tok_s = r.fit == PLAN_NO_FIT ? r.xc_tok_s : r.tok_s;
	v = xstrdup(r.fit == PLAN_FITS        ? "fits in RAM"
		    : r.fit == PLAN_FITS_BUSY ? "fits once other programs free memory"
					      : "larger than RAM: experts read from disk");
	if (tok_s > 0) {
		char *t = xasprintf("%s, about %.1f tok/s", v, tok_s);

		free(v);
		v = t;
	}
	return v;
}

static void
add(struct found *f, const char *dir)
{
	char real[PATH_MAX];

	if (dir == NULL || *dir == '\0' || !paths_is_model_dir(dir) || realpath(dir, real) == NULL)
		return;
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->real[i], real) == 0)
			return;
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 8;
		f->v = xrealloc(f->v, f->cap * sizeof(*f->v));
		f->real = xrealloc(f->real, f->cap * sizeof(*f->real));
	}
	f->real[f->n] = xstrdup(real);
	f->v[f->n].dir = xstrdup(dir);
	f->v[f->n].verdict = verdict(dir, &f->v[f->n].size);
	f->n++;
}

struct model_found *
models_find(const char *const *known, size_t n_known, size_t *n)
{
	struct found f = { 0 };
	char *hub;

	for (size_t i = 0; i < n_known; i++)
		add(&f, known[i]);
	add(&f, getenv("QNEXT_MODEL"));
	/* With $QNEXT_MODEL unset this is the Hugging Face cache's snapshot. */
	if ((hub = paths_find_model(NULL, NULL)) != NULL)
		add(&f, hub);
	free(hub);
	add(&f, DATADIR "/tiny");
	add(&f, "share/tiny");
	for (size_t i = 0; i < f.n; i++)
		free(f.real[i]);
	free(f.real);
	*n = f.n;
	return f.v;
}

void
models_free(struct model_found *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].dir);
		free(v[i].verdict);
	}
	free(v);
}
