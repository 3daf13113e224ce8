/*
 * test-forward.c - properties of the forward pass the golden comparison
 * (cli-verify.sh) does not show: ctx_forward allocates nothing once the
 * context exists, overflowing the context or passing a bad token id is a
 * clean error that leaves the state untouched, and reset really forgets.
 */
#include <malloc.h>
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

int
main(void)
{
	char *cause = NULL;
	struct model *m = model_open("tests/data/tiny", &cause);
	struct ctx_opts o = { .n_ctx = 64, .n_batch = 8, .n_threads = 2 };
	struct ctx *c;
	int32_t ids[40];
	float *a, *b;
	size_t before;
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

	/* Warm up, then count heap use across prefill and decode steps. */
	T_EQ_INT(ctx_forward(c, ids, 20, a, false, &cause), 0);
	before = heap_in_use();
	ctx_reset(c);
	T_EQ_INT(ctx_forward(c, ids, 20, a, false, &cause), 0);
	for (int i = 20; i < 30; i++)
		T_EQ_INT(ctx_forward(c, &ids[i], 1, a, false, &cause), 0);
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

	free(cause);
	free(a);
	free(b);
	ctx_free(c);
	model_close(m);
	return t_done("test-forward");
}
