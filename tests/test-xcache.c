/*
 * test-xcache.c - the expert cache (xcache.h): the logits of a prompt and
 * of tokens decoded one by one are bit for bit those of the mapped model
 * on the tiny and small goldens, with a cache of a few experts (most reads
 * miss, groups smaller than a step's chosen experts) and a roomy one, on
 * both activation paths; the counters add up; a hot expert survives a
 * stream of one-off ones; shrinking gives slots back; a failed read (EIO)
 * and a shard changed underneath are one-line errors from ctx_forward, and
 * the context works again once reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forward.h"
#include "model.h"
#include "t.h"
#include "util.h"
#include "xcache.h"

#define N_PROMPT 12
#define N_DECODE 10

/* Logits of a prompt (batch 4) and then N_DECODE tokens one at a time. */
static float *
run(const struct model *m, const struct ctx_opts *o, struct xcache_stats *st)
{
	int V = m->cfg.vocab_size, n = N_PROMPT + N_DECODE;
	float *out = xcalloc((size_t)n * (size_t)V, sizeof(float));
	int32_t ids[N_PROMPT + N_DECODE];
	char *cause = NULL;
	struct ctx *c = ctx_new(m, o, &cause);

	if (c == NULL) {
		fprintf(stderr, "ctx_new: %s\n", cause);
		free(cause);
		free(out);
		return NULL;
	}
	for (int i = 0; i < n; i++)
		ids[i] = (i * 53 + 7) % V;
	T_EQ_INT(ctx_forward(c, ids, N_PROMPT, out, true, &cause), 0);
	for (int i = N_PROMPT; i < n; i++)
		T_EQ_INT(ctx_forward(c, ids + i, 1, out + (size_t)i * V, true, &cause), 0);
	if (st != NULL)
		T_ASSERT(ctx_cache_stats(c, st));
	ctx_free(c);
	return out;
}

static void
same_logits(const char *dir, bool f32)
{
	char *cause = NULL;
	struct model *m = model_open(dir, &cause);
	struct ctx_opts o = {
		.n_ctx = 64, .n_batch = 4, .n_threads = 2, .f32 = f32, .expert_fixed = true
	};
	uint64_t xb;
	size_t n;
	float *ref, *few, *roomy;
	struct xcache_stats a, b;

	if (m == NULL) {
		fprintf(stderr, "%s: %s\n", dir, cause);
		t_fail++;
		return;
	}
	xb = xcache_expert_bytes(m);
	T_ASSERT(xb > 0);
	n = (size_t)(N_PROMPT + N_DECODE) * (size_t)m->cfg.vocab_size * sizeof(float);
	ref = run(m, &o, NULL);
	o.expert_cache = 3 * ((xb + 4095) / 4096 * 4096); /* three slots: groups of two */
	few = run(m, &o, &a);
	o.expert_cache = 1ull << 30;
	roomy = run(m, &o, &b);
	T_ASSERT(ref != NULL && few != NULL && roomy != NULL);
	if (ref != NULL && few != NULL && roomy != NULL) {
		T_ASSERT(memcmp(ref, few, n) == 0);
		T_ASSERT(memcmp(ref, roomy, n) == 0);
	}
	/* Three slots: nearly every choice is a read; the counters add up. */
	T_EQ_INT(a.slots, 3);
	T_ASSERT(a.used <= 3);
	T_ASSERT(a.misses > a.hits);
	T_ASSERT(a.bytes_read >= a.misses * xb);
	/* Roomy: each expert read at most once, so misses <= experts and the rest hit. */
	T_ASSERT(b.misses + b.spec_issued <= (uint64_t)b.experts);
	T_ASSERT(b.hits + b.late > 0);
	T_EQ_INT(b.evictions, 0);
	T_ASSERT(b.predicted > 0 && b.predicted_ok <= b.predicted);
	printf("%s %s: few slots %llu hits %llu misses; roomy %llu hits %llu late %llu misses, "
	       "%llu of %llu guesses right\n",
	       dir, f32 ? "f32" : "int8", (unsigned long long)a.hits, (unsigned long long)a.misses,
	       (unsigned long long)b.hits, (unsigned long long)b.late, (unsigned long long)b.misses,
	       (unsigned long long)b.predicted_ok, (unsigned long long)b.predicted);
	free(ref);
	free(few);
	free(roomy);
	model_close(m);
}

/* Pin, wait and unpin expert x of layer 0; whether it was a hit. */
static bool
use(struct xcache *xc, int x)
{
	struct xcache_stats s0, s1;
	char *cause = NULL;
	int h;

	xcache_stats(xc, &s0);
	h = xcache_pin(xc, 0, x);
	T_ASSERT(xcache_wait(xc, h, &cause) != NULL);
	xcache_unpin(xc, h);
	xcache_stats(xc, &s1);
	return s1.hits > s0.hits;
}

static void
replacement(void)
{
	char *cause = NULL;
	struct model *m = model_open("share/tiny", &cause);
	struct xcache_opts o = { .budget = 4 * ((xcache_expert_bytes(m) + 4095) / 4096 * 4096) };
	struct xcache *xc = xcache_new(m, &o, &cause);
	struct xcache_stats s;
	int hot_hits = 0;

	T_ASSERT(xc != NULL);
	if (xc == NULL)
		return;
	T_EQ_INT(xcache_capacity(xc), 4);
	for (int i = 0; i < 8; i++)
		use(xc, 0);
	/* A stream of one-off experts; the hot one stays. */
	for (int x = 1; x < 16; x++) {
		T_ASSERT(!use(xc, x));
		hot_hits += use(xc, 0);
	}
	T_EQ_INT(hot_hits, 15);
	xcache_stats(xc, &s);
	T_ASSERT(s.evictions >= 11);
	/* Shrinking gives slots back and the cache still works. */
	xcache_set_slots(xc, 2);
	xcache_stats(xc, &s);
	T_EQ_INT(s.slots, 2);
	T_ASSERT(s.used <= 2);
	use(xc, 5);
	use(xc, 6);
	T_ASSERT(use(xc, 6));
	xcache_free(xc);
	/* With the memory watcher running beside (nothing to shrink here): pins go on. */
	o.watch_memory = true;
	xc = xcache_new(m, &o, &cause);
	T_ASSERT(xc != NULL);
	{
		bool all = xc != NULL;

		for (double t0 = now_sec(); xc != NULL && now_sec() - t0 < 0.3;)
			for (int x = 0; x < 16; x++) {
				int h = xcache_pin(xc, 0, x);

				all &= xcache_wait(xc, h, &cause) != NULL;
				xcache_unpin(xc, h);
			}
		T_ASSERT(all);
	}
	xcache_free(xc);
	o.watch_memory = false;
	/* Too small a budget is refused with a reason. */
	o.budget = 4096;
	T_ASSERT(xcache_new(m, &o, &cause) == NULL);
	T_STR_CONTAINS(cause, "fewer than two experts");
	free(cause);
	model_close(m);
}

/* Atomic: the cache's I/O threads read it, and a read the failed step left in flight may
 * still be running when the main thread clears it. */
static atomic_bool fail_reads;

static ssize_t
flaky_pread(int fd, void *buf, size_t n, off_t off)
{
	if (fail_reads) {
		errno = EIO;
		return -1;
	}
	return pread(fd, buf, n, off);
}

static void
read_errors(void)
{
	char *cause = NULL, dir[] = "/tmp/qnext-xcache-XXXXXX", *cmd, *shard;
	struct model *m;
	struct ctx_opts o = { .n_ctx = 64,
			      .n_batch = 4,
			      .n_threads = 2,
			      .expert_fixed = true,
			      .expert_read = flaky_pread };
	struct ctx *c;
	int32_t ids[4] = { 1, 2, 3, 4 };

	T_ASSERT(mkdtemp(dir) != NULL);
	cmd = xasprintf("cp share/tiny/* %s/", dir);
	T_EQ_INT(system(cmd), 0);
	free(cmd);
	m = model_open(dir, &cause);
	T_ASSERT(m != NULL);
	o.expert_cache = 3 * ((xcache_expert_bytes(m) + 4095) / 4096 * 4096);
	c = ctx_new(m, &o, &cause);
	T_ASSERT(c != NULL);

	fail_reads = true;
	T_EQ_INT(ctx_forward(c, ids, 4, NULL, false, &cause), -1);
	T_STR_CONTAINS(cause, "Input/output error");
	T_STR_CONTAINS(cause, ".safetensors");
	T_ASSERT(strchr(cause, '\n') == NULL);
	free(cause);
	cause = NULL;
	fail_reads = false;
	/* Torn until reset; then the failed experts are read again. */
	T_ASSERT(ctx_forward(c, ids, 4, NULL, false, &cause) == -1);
	free(cause);
	cause = NULL;
	ctx_reset(c);
	T_EQ_INT(ctx_forward(c, ids, 4, NULL, false, &cause), 0);
	if (cause != NULL)
		fprintf(stderr, "after reset: %s\n", cause);
	free(cause);
	cause = NULL;

	/* A shard rewritten underneath (new mtime) is noticed at the next read. */
	shard = xasprintf("%s/model-00001-of-00002.safetensors", dir);
	T_EQ_INT(utimensat(AT_FDCWD, shard, (struct timespec[]){ { 1, 0 }, { 1, 0 } }, 0), 0);
	shard[strlen(shard) - 13] = '2';
	T_EQ_INT(utimensat(AT_FDCWD, shard, (struct timespec[]){ { 1, 0 }, { 1, 0 } }, 0), 0);
	ctx_reset(c);
	T_EQ_INT(ctx_forward(c, ids, 4, NULL, false, &cause), -1);
	T_STR_CONTAINS(cause, "changed while the model was open");
	free(cause);
	free(shard);
	ctx_free(c);
	model_close(m);
	cmd = xasprintf("rm -rf %s", dir);
	T_EQ_INT(system(cmd), 0);
	free(cmd);
}

/* The residency arithmetic and --expert-cache's values. */
static void
budget_and_parse(void)
{
	uint64_t G = 1000000000ull, v = 1;
	char *cause = NULL;

	/* 43 GB on 24 GB: what is left after 2.5 GB resident, 1 GB of context, 3 % reserve. */
	T_EQ_INT(xcache_budget(43 * G, 25 * G / 10, G, 23 * G, 24 * G),
		 23 * G - 25 * G / 10 - G - 24 * G / 33);
	/* Fits: no cache.  Nothing beside the every-token weights: none either. */
	T_EQ_INT(xcache_budget(8 * G, 3 * G, G, 23 * G, 24 * G), 0);
	T_EQ_INT(xcache_budget(43 * G, 25 * G / 10, G, 4 * G, 24 * G), 0);
	/* A small machine: the reserve is at least 512 MB. */
	T_EQ_INT(xcache_budget(43 * G, G, 0, 4 * G, 4 * G), 3 * G - (512ull << 20));

	T_EQ_INT(xcache_parse("auto", &v, &cause), 0);
	T_ASSERT(v == XCACHE_AUTO);
	T_EQ_INT(xcache_parse("off", &v, &cause), 0);
	T_EQ_INT(v, 0);
	T_EQ_INT(xcache_parse("0", &v, &cause), 0);
	T_EQ_INT(v, 0);
	T_EQ_INT(xcache_parse("12G", &v, &cause), 0);
	T_EQ_INT(v, 12 * G);
	T_EQ_INT(xcache_parse("1.5GiB", &v, &cause), 0);
	T_EQ_INT(v, 1610612736ull);
	T_EQ_INT(xcache_parse("800M", &v, &cause), 0);
	T_EQ_INT(v, 800000000ull);
	const char *bad[] = { "", "12", "-1G", "12X", "G", "1e300G", "auto ", "nan" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		T_EQ_INT(xcache_parse(bad[i], &v, &cause), -1);
		T_STR_CONTAINS(cause, "--expert-cache");
		free(cause);
		cause = NULL;
	}
}

int
main(void)
{
	budget_and_parse();
	same_logits("share/tiny", false);
	same_logits("share/tiny", true);
	same_logits("tests/data/small", false);
	replacement();
	read_errors();
	return t_done("test-xcache");
}
