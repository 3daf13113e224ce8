/*
 * test-forward.c - properties of the forward pass the golden comparison
 * (cli-verify.sh) does not show: ctx_forward allocates nothing once the
 * context exists, overflowing the context or passing a bad token id is a
 * clean error that leaves the state untouched, reset really forgets, and
 * the abort callback is asked within every layer, stops at once and leaves
 * a context that refuses work until it is restored or reset.
 */
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "model.h"
#include "t.h"
#include "util.h"

static size_t
heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* Watches a one-step forward through the hidden-state capture. */
struct probe {
	float *cap; /* [n_layers + 1][n_tok][dim], NaN where not yet written */
	int n_layers, n_tok, dim;
	int calls, stop_at;
	int done_at[256]; /* layers complete when call i came */
};

/* Layers whose output the capture holds (slot l + 1 = after layer l). */
static int
layers_done(const struct probe *p)
{
	int n = 0;

	for (int l = 1; l <= p->n_layers; l++)
		n += !isnan(p->cap[(size_t)l * p->n_tok * p->dim]);
	return n;
}

static bool
probe_poll(void *arg)
{
	struct probe *p = arg;

	if (p->calls < (int)ARRAY_LEN(p->done_at))
		p->done_at[p->calls] = layers_done(p);
	return ++p->calls == p->stop_at;
}

static void
probe_reset(struct probe *p, struct ctx *c, int stop_at)
{
	size_t n = (size_t)(p->n_layers + 1) * p->n_tok * p->dim;

	for (size_t i = 0; i < n; i++)
		p->cap[i] = NAN;
	p->calls = 0;
	p->stop_at = stop_at;
	ctx_capture_hidden(c, p->cap, p->n_tok);
	ctx_set_abort(c, probe_poll, p);
}

/*
 * A stop asked for at any poll ends the step there: no layer completes
 * after it, the poll is not asked again, and the context refuses to go on
 * until reset; then it computes what an uninterrupted context does.
 */
static void
test_abort(const struct model *m, struct ctx *c, const int32_t *ids, float *a, float *b)
{
	struct probe p = { .n_layers = m->cfg.n_layers, .n_tok = 8, .dim = m->cfg.hidden_size };
	size_t V = (size_t)m->cfg.vocab_size;
	char *cause = NULL;
	int total;

	p.cap = xmalloc((size_t)(p.n_layers + 1) * p.n_tok * p.dim * sizeof(float));
	ctx_reset(c);
	probe_reset(&p, c, 0);
	T_EQ_INT(ctx_forward(c, ids, 8, a, false, &cause), 0);
	total = p.calls;
	/* Asked at least once while each layer l was the next to finish. */
	T_ASSERT(total >= p.n_layers && total <= (int)ARRAY_LEN(p.done_at));
	for (int l = 0; l < p.n_layers; l++) {
		bool seen = false;

		for (int i = 0; i < total; i++)
			seen |= p.done_at[i] == l;
		T_ASSERT(seen);
	}
	for (int k = 1; k <= total; k++) {
		ctx_reset(c);
		probe_reset(&p, c, k);
		T_EQ_INT(ctx_forward(c, ids, 8, b, false, &cause), 1);
		T_EQ_INT(p.calls, k);
		T_EQ_INT(layers_done(&p), p.done_at[k - 1]);
		T_EQ_INT(ctx_forward(c, ids, 8, b, false, &cause), -1);
		T_STR_CONTAINS(cause, "stopped in the middle");
		ctx_reset(c);
		ctx_set_abort(c, NULL, NULL);
		T_EQ_INT(ctx_forward(c, ids, 8, b, false, &cause), 0);
		T_ASSERT(memcmp(a, b, V * sizeof(float)) == 0);
	}

	/* Stopped after a snapshot: save is ignored, restore gives the snapshot back. */
	ctx_capture_hidden(c, NULL, 0);
	ctx_reset(c);
	T_EQ_INT(ctx_forward(c, ids, 12, NULL, false, &cause), 0);
	ctx_save(c);
	T_EQ_INT(ctx_forward(c, ids + 12, 7, a, false, &cause), 0);
	T_EQ_INT(ctx_restore(c), 0);
	p.calls = 0;
	p.stop_at = 3;
	ctx_set_abort(c, probe_poll, &p);
	T_EQ_INT(ctx_forward(c, ids + 20, 8, b, false, &cause), 1);
	ctx_save(c);
	T_EQ_INT(ctx_saved_pos(c), 12);
	T_EQ_INT(ctx_restore(c), 0);
	ctx_set_abort(c, NULL, NULL);
	T_EQ_INT(ctx_forward(c, ids + 12, 7, b, false, &cause), 0);
	T_ASSERT(memcmp(a, b, V * sizeof(float)) == 0);
	ctx_reset(c);
	free(p.cap);
	free(cause);
}

/*
 * The profile of one decoded token: its products read exactly the bytes
 * the model says a token reads, and it counts one barrier per parallel
 * step: 3 per attention layer (q/k/v, heads, o_proj), 3 per DeltaNet layer
 * (projections, per-head work, out_proj), 3 per MoE block (router with the
 * shared expert's gate/up, the experts' gate/up, their down with the shared
 * down), 2 per dense MLP, 1 for lm_head.
 */
static void
test_profile(const struct model *m, struct ctx *c, const int32_t *ids, float *logits)
{
	struct ctx_profile p;
	uint64_t bytes = 0, barriers = 1;
	char *cause = NULL;
	double secs = 0;

	for (int i = 0; i < m->cfg.n_layers; i++) {
		const struct layer *l = &m->layers[i];

		barriers += 3;
		barriers += l->moe ? 3 : 2;
	}
	ctx_profile_take(c, &p); /* what the tests before did */
	ctx_reset(c);
	T_EQ_INT(ctx_forward(c, ids, 5, NULL, false, &cause), 0);
	ctx_profile_take(c, &p); /* the prompt's, discarded */
	T_EQ_INT(p.tokens, 5);
	T_EQ_INT(ctx_forward(c, ids + 5, 1, logits, false, &cause), 0);
	ctx_profile_take(c, &p);
	for (int k = 0; k < FWD_PHASES; k++) {
		bytes += p.bytes[k];
		secs += p.seconds[k];
		T_ASSERT(p.seconds[k] >= 0);
	}
	T_EQ_INT(p.tokens, 1);
	T_EQ_INT(bytes, m->decode_bytes);
	T_EQ_INT(p.barriers, barriers);
	T_ASSERT(secs > 0);
	T_ASSERT(p.bytes[FWD_EXPERTS] > 0 && p.bytes[FWD_HEAD] == qmat_bytes(&m->lm_head));
	T_ASSERT(strcmp(ctx_phase_name(FWD_EXPERTS), "experts") == 0);
	ctx_profile_take(c, &p);
	T_EQ_INT(p.tokens, 0); /* a take starts over */
	T_EQ_INT(p.barriers, 0);
}

int
main(void)
{
	char *cause = NULL;
	struct model *m = model_open("share/tiny", &cause);
	struct ctx_opts o = { .n_ctx = 64, .n_batch = 8, .n_threads = 2 };
	struct ctx *c;
	int32_t ids[40];
	float *a, *b;
	size_t before = 0;
	int V;

	if (m == NULL) {
		fprintf(stderr, "%s\n", cause);
		return 1;
	}
	V = m->cfg.vocab_size;
	c = ctx_new(m, &o, &cause);
	T_ASSERT(c != NULL);
	a = xmalloc((size_t)V * sizeof(float));
	b = xmalloc((size_t)V * sizeof(float));
	for (int i = 0; i < 40; i++)
		ids[i] = (i * 37 + 11) % V;

	/*
	 * Warm up with the same prefill and decode steps, twice: which worker
	 * runs which chunk varies from run to run, and a thread's first pass
	 * through a path may allocate once inside libc (656 bytes, seen only
	 * with another process on the CPUs when the warm-up was a prefill
	 * alone).  Then count heap use across the same steps.
	 */
	for (int r = 0; r < 3; r++) {
		if (r == 2)
			before = heap_in_use();
		ctx_reset(c);
		T_EQ_INT(ctx_forward(c, ids, 20, a, false, &cause), 0);
		for (int i = 20; i < 30; i++)
			T_EQ_INT(ctx_forward(c, &ids[i], 1, a, false, &cause), 0);
	}
	T_EQ_INT(heap_in_use(), before);
	T_EQ_INT(ctx_pos(c), 30);

	/* Errors leave the position where it was. */
	T_EQ_INT(ctx_forward(c, ids, 40, a, false, &cause), -1);
	T_STR_CONTAINS(cause, "context full");
	T_EQ_INT(ctx_pos(c), 30);
	ids[35] = V + 5;
	T_EQ_INT(ctx_forward(c, &ids[30], 10, a, false, &cause), -1);
	T_STR_CONTAINS(cause, "out of range");
	T_EQ_INT(ctx_pos(c), 30);
	ids[35] = 3;

	/* Reset forgets: the same prompt gives the same logits again. */
	ctx_reset(c);
	T_EQ_INT(ctx_forward(c, ids, 12, a, false, &cause), 0);
	ctx_forward(c, ids, 7, b, false, &cause);
	ctx_reset(c);
	T_EQ_INT(ctx_forward(c, ids, 12, b, false, &cause), 0);
	T_ASSERT(memcmp(a, b, (size_t)V * sizeof(float)) == 0);
	T_EQ_INT(ctx_forward(c, ids, 0, a, false, &cause), -1);

	/* Snapshot: continue, come back, continue again the same way. */
	ctx_reset(c);
	T_EQ_INT(ctx_restore(c), -1);
	ctx_forward(c, ids, 12, NULL, false, &cause);
	ctx_save(c);
	T_EQ_INT(ctx_saved_pos(c), 12);
	ctx_forward(c, ids + 12, 7, a, false, &cause);
	T_EQ_INT(ctx_restore(c), 0);
	T_EQ_INT(ctx_pos(c), 12);
	ctx_forward(c, ids + 20, 3, b, false, &cause); /* a different continuation */
	T_EQ_INT(ctx_restore(c), 0);
	ctx_forward(c, ids + 12, 7, b, false, &cause);
	T_ASSERT(memcmp(a, b, (size_t)V * sizeof(float)) == 0);
	ctx_reset(c);
	T_EQ_INT(ctx_saved_pos(c), -1);
	test_profile(m, c, ids, a);

	test_abort(m, c, ids, a, b);

	free(cause);
	free(a);
	free(b);
	ctx_free(c);
	model_close(m);
	return t_done("test-forward");
}
