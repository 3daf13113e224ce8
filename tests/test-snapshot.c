/*
 * test-snapshot.c - saved engine states on disk (snapshot.h), on the tiny
 * model and the small golden model, int8 path (half-float KV cache) and
 * float32 reference path.
 *
 * A state saved by one context and restored into a fresh one (a new cache
 * object on the same folder: a restart) continues with logits bit for bit
 * those of a context that never stopped (the file holds the cache's own
 * bits), and within rounding of one full prefill of the same tokens
 * (docs/resume.md "Exactness"); a truncated file, another version, another
 * model's state and a flipped payload byte are each passed over, and the
 * full prefill that follows is right.  Eviction keeps the budget, least
 * recently used first.  Through the session: a conversation's second turn in
 * a fresh session (same XDG_CACHE_HOME) reuses the first turn's prompt and
 * answers as a session without the cache does, and a live context that
 * holds only the first turn gives way to the second turn's longer state.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forward.h"
#include "model.h"
#include "session.h"
#include "snapshot.h"
#include "t.h"
#include "util.h"

#define N1 100 /* the saved prefix */
#define N2 37  /* tokens after it */

static char tmp[] = "/tmp/qnext-snapshot-XXXXXX";
static int32_t toks[N1 + N2];

static struct ctx *
new_ctx(const struct model *m, bool f32)
{
	struct ctx_opts o = { .n_ctx = 256, .n_batch = 64, .n_threads = 2, .f32 = f32 };
	char *cause = NULL;
	struct ctx *c = ctx_new(m, &o, &cause);

	if (c == NULL)
		fprintf(stderr, "%s\n", cause);
	free(cause);
	return c;
}

/* logits [vocab] after tokens[0..N1) then tokens[N1..N1+N2) fed to c from empty. */
static void
split_prefill(struct ctx *c, float *logits)
{
	ctx_reset(c);
	T_EQ_INT(ctx_forward(c, toks, N1, NULL, false, NULL), 0);
	T_EQ_INT(ctx_forward(c, toks + N1, N2, logits, false, NULL), 0);
}

static void
copy_file(const char *from, const char *to)
{
	size_t n = 0;
	char *b = read_file_max(from, (size_t)1 << 30, &n, NULL);

	T_ASSERT(b != NULL && file_write_atomic(to, b, n, 0600, NULL) == 0);
	free(b);
}

/* Change the byte at off (from the end when off < 0) of path. */
static void
poke(const char *path, long off, unsigned char xor)
{
	int fd = open(path, O_RDWR);
	struct stat st;
	unsigned char b = 0;

	T_ASSERT(fd >= 0 && fstat(fd, &st) == 0);
	if (off < 0)
		off += st.st_size;
	T_ASSERT(pread(fd, &b, 1, off) == 1);
	b ^= xor;
	T_ASSERT(pwrite(fd, &b, 1, off) == 1);
	close(fd);
}

/*
 * A restore of the damaged file at path is refused and the context left
 * empty, and the full prefill after it gives ref exactly.
 */
static void
refused(struct snapshot_cache *sc, struct ctx *c, float *logits, const float *ref, size_t vocab)
{
	int cand[] = { N1 };

	T_EQ_INT(snapshot_restore(sc, c, toks, cand, 1), 0);
	T_ASSERT(ctx_saved_pos(c) < 0 || ctx_saved_pos(c) == N1); /* untouched or reset */
	split_prefill(c, logits);
	T_ASSERT(memcmp(logits, ref, vocab * sizeof(float)) == 0);
}

/* The engine tests for model dir; other: a state another model saved for toks[0..N1). */
static char *
test_model(const char *dir, bool f32, const char *other)
{
	char *cause = NULL, *path, *keep = NULL;
	struct model *m = model_open(dir, &cause);
	struct ctx *a, *b;
	struct snapshot_cache *sc;
	size_t vocab;
	float *ref, *full, *got;
	double worst = 0, scale = 0;
	int cand[] = { 40, N1, N1 + 10, 0, 9999 };

	T_ASSERT(m != NULL);
	if (m == NULL) {
		fprintf(stderr, "%s\n", cause);
		free(cause);
		return NULL;
	}
	vocab = (size_t)m->cfg.vocab_size;
	for (int i = 0; i < N1 + N2; i++)
		toks[i] = (int32_t)((i * 7919 + 13) % MIN(m->cfg.vocab_size, 1000));
	ref = xcalloc(vocab, sizeof(float));
	full = xcalloc(vocab, sizeof(float));
	got = xcalloc(vocab, sizeof(float));

	/* The reference: the same split, one context; and one full prefill. */
	a = new_ctx(m, f32);
	T_ASSERT(a != NULL);
	split_prefill(a, ref);
	ctx_reset(a);
	T_EQ_INT(ctx_forward(a, toks, N1 + N2, full, false, NULL), 0);

	/* Save after N1 (then the context goes on: the file is the state at N1). */
	sc = snapshot_open(m, a, tmp, SNAPSHOT_AUTO, &cause);
	T_ASSERT(sc != NULL);
	ctx_reset(a);
	T_EQ_INT(ctx_forward(a, toks, N1, NULL, false, NULL), 0);
	ctx_save(a);
	T_EQ_INT(ctx_forward(a, toks + N1, N2, NULL, false, NULL), 0);
	T_EQ_INT(snapshot_save(sc, a, toks, N1, &cause), 0);
	T_EQ_INT(snapshot_save(sc, a, toks, N1 - 1, &cause), -1); /* not the saved position */
	free(cause), cause = NULL;
	path = snapshot_path(sc, toks, N1);
	T_EQ_INT(access(path, R_OK), 0);
	T_EQ_INT(snapshot_verify_file(path, NULL), 0);
	snapshot_close(sc);
	ctx_free(a);

	/* A restart: a fresh context and cache on the same folder. */
	b = new_ctx(m, f32);
	sc = snapshot_open(m, b, tmp, SNAPSHOT_AUTO, &cause);
	T_ASSERT(b != NULL && sc != NULL);
	T_EQ_INT(snapshot_restore(sc, b, toks, cand, 5), N1);
	T_EQ_INT(ctx_restore(b), 0);
	T_EQ_INT(ctx_pos(b), N1);
	T_EQ_INT(ctx_forward(b, toks + N1, N2, got, false, NULL), 0);
	T_ASSERT(memcmp(got, ref, vocab * sizeof(float)) == 0);
	for (size_t i = 0; i < vocab; i++) {
		worst = MAX(worst, fabs((double)got[i] - full[i]));
		scale = MAX(scale, fabs((double)full[i]));
	}
	/* docs/resume.md "Exactness": a split prefill differs from a whole one by rounding. */
	T_ASSERT(worst <= 1e-3 * MAX(scale, 1.0));
	printf("%s (%s): restored logits equal the split prefill's; %.3g from one full "
	       "prefill (max |logit| %.3g)\n",
	       dir, f32 ? "f32" : "int8", worst, scale);

	/* Other tokens of the same length: no file, nothing read. */
	{
		int32_t keep0 = toks[0];

		toks[0] = keep0 + 1;
		T_EQ_INT(snapshot_restore(sc, b, toks, cand, 5), 0);
		toks[0] = keep0;
	}

	/* Damage, one kind at a time, on a copy of the good file. */
	keep = xasprintf("%s.good", path);
	copy_file(path, keep);
	T_EQ_INT(truncate(path, 4000), 0);
	refused(sc, b, got, ref, vocab);
	T_ASSERT(access(path, F_OK) != 0); /* a file cut short is removed */
	copy_file(keep, path);
	T_EQ_INT(truncate(path, 10), 0);
	refused(sc, b, got, ref, vocab);
	copy_file(keep, path);
	poke(path, 8, 0x01); /* version */
	refused(sc, b, got, ref, vocab);
	copy_file(keep, path);
	poke(path, -1, 0x40); /* the last byte of the DeltaNet states */
	T_EQ_INT(snapshot_verify_file(path, NULL), -1);
	refused(sc, b, got, ref, vocab);
	T_ASSERT(access(path, F_OK) != 0); /* so is a damaged one */
	copy_file(keep, path);
	poke(path, 400, 0x10); /* a token */
	refused(sc, b, got, ref, vocab);
	copy_file(keep, path);
	poke(path, 30, 0x80); /* the model's identity */
	refused(sc, b, got, ref, vocab);
	copy_file(keep, path);
	poke(path, 20, 0x7f); /* n_tok */
	refused(sc, b, got, ref, vocab);
	if (other != NULL) {
		copy_file(other, path);
		refused(sc, b, got, ref, vocab);
	}
	copy_file(keep, path);
	T_EQ_INT(snapshot_restore(sc, b, toks, cand, 5), N1); /* whole again: used again */

	snapshot_close(sc);
	ctx_free(b);
	model_close(m);
	free(ref), free(full), free(got), free(path);
	return keep;
}

/* Budget: the least recently used go first, and the total stays under it. */
static void
test_evict(const char *dir)
{
	char *cause = NULL, *p[3];
	struct model *m = model_open(dir, &cause);
	struct ctx *c = new_ctx(m, false);
	uint64_t one = N1 * 4 + 200 + ctx_state_bytes(c, N1);
	char *edir = xasprintf("%s/evict", tmp);
	struct snapshot_cache *sc = snapshot_open(m, c, edir, one * 5 / 2, &cause);

	T_ASSERT(sc != NULL);
	for (int k = 0; k < 3; k++) {
		struct timespec t[2] = { { 1000000 + k, 0 }, { 1000000 + k, 0 } };

		toks[0] = 500 + k;
		ctx_reset(c);
		T_EQ_INT(ctx_forward(c, toks, N1, NULL, false, NULL), 0);
		ctx_save(c);
		T_EQ_INT(snapshot_save(sc, c, toks, N1, &cause), 0);
		p[k] = snapshot_path(sc, toks, N1);
		if (k == 0) /* the first is used again later: the second is older */
			t[0].tv_sec = t[1].tv_sec = 1000005;
		T_EQ_INT(utimensat(AT_FDCWD, p[k], t, 0), 0);
	}
	T_EQ_INT(access(p[0], F_OK), 0);
	T_ASSERT(access(p[1], F_OK) != 0);
	T_EQ_INT(access(p[2], F_OK), 0);
	for (int k = 0; k < 3; k++)
		free(p[k]);
	snapshot_close(sc);
	ctx_free(c);
	model_close(m);
	free(edir);
}

static bool
ignore(void *arg, enum think_part part, const char *text, size_t len)
{
	(void)arg, (void)part, (void)text, (void)len;
	return true;
}

static int
greedy(struct session *s, const struct chat_msg *m, size_t n, struct gen_stats *st)
{
	struct gen_params gp = { .max_tokens = 12 };
	char *cause = NULL;
	int rc;

	sampler_params_default(&gp.sp);
	gp.sp.temperature = 0;
	rc = session_reply(s, m, n, &gp, ignore, NULL, st, &cause);
	if (rc != 0)
		fprintf(stderr, "%s\n", cause);
	free(cause);
	return rc;
}

/* The second turn of a conversation in a fresh session reads only what is new. */
static void
test_session(const char *dir)
{
	struct session_opts o = { .dir = dir, .n_ctx = 1024, .n_threads = 2 };
	struct chat_msg conv[] = {
		{ .role = "system", .content = "You are a careful assistant who answers briefly." },
		{ .role = "user",
		  .content = "Name three rivers of Europe and say where each "
			     "one rises and where it reaches the sea." },
		{ .role = "assistant", .content = "The Rhine, the Danube and the Loire." },
		{ .role = "user", .content = "Which is longest?" },
	};
	struct gen_stats st, st2;
	struct session *s;
	char *cache = xasprintf("%s/xdg-%s", tmp, strrchr(dir, '/') + 1), *cause = NULL;
	int32_t want[64];
	const int32_t *ids;
	int n_want, n, base1;

	setenv("XDG_CACHE_HOME", cache, 1);
	/* Without the cache: the reference answer to the whole conversation. */
	s = session_open(&o, &cause);
	T_ASSERT(s != NULL);
	T_EQ_INT(greedy(s, conv, 4, &st), 0);
	T_EQ_INT(st.reused_tokens, 0);
	ids = session_last_ids(s, &n_want);
	memcpy(want, ids, (size_t)n_want * sizeof(int32_t));
	session_close(s);

	/* With it: the first turn, then "quit". */
	o.state_cache = SNAPSHOT_AUTO;
	s = session_open(&o, &cause);
	T_EQ_INT(greedy(s, conv, 2, &st), 0);
	T_EQ_INT(st.reused_tokens, 0);
	session_close(s);
	/* The first turn again after a restart: all of its base is read from disk. */
	s = session_open(&o, &cause);
	T_EQ_INT(greedy(s, conv, 2, &st2), 0);
	base1 = st2.reused_tokens;
	T_ASSERT(base1 > 20 && base1 < st2.prompt_tokens);
	session_close(s);
	/* The second turn after a restart: the first turn's prompt is not read again. */
	s = session_open(&o, &cause);
	T_EQ_INT(greedy(s, conv, 4, &st), 0);
	T_EQ_INT(st.reused_tokens, base1);
	ids = session_last_ids(s, &n);
	T_EQ_INT(n, n_want);
	T_ASSERT(n == n_want && memcmp(ids, want, (size_t)n * sizeof(int32_t)) == 0);
	/* And in the same session, a third request of it is the live context's. */
	T_EQ_INT(greedy(s, conv, 4, &st), 0);
	T_ASSERT(st.reused_tokens > base1);
	session_close(s);
	/* A live context holding only the first turn: the longer state on disk wins over it. */
	s = session_open(&o, &cause);
	T_EQ_INT(greedy(s, conv, 2, &st2), 0);
	T_EQ_INT(st2.reused_tokens, base1);
	T_EQ_INT(greedy(s, conv, 4, &st2), 0);
	T_EQ_INT(st2.reused_tokens, st.reused_tokens);
	ids = session_last_ids(s, &n);
	T_ASSERT(n == n_want && memcmp(ids, want, (size_t)n * sizeof(int32_t)) == 0);
	session_close(s);
	printf("%s: second turn after a restart reused %d of %d prompt tokens\n", dir, base1,
	       st.prompt_tokens);
	unsetenv("XDG_CACHE_HOME");
	free(cause);
	free(cache);
}

int
main(void)
{
	char *tiny_file, *small_file;

	T_ASSERT(mkdtemp(tmp) != NULL);
	tiny_file = test_model("share/tiny", false, NULL);
	small_file = test_model("tests/data/small", false, tiny_file);
	free(test_model("share/tiny", true, small_file));
	free(test_model("tests/data/small", true, NULL));
	free(tiny_file), free(small_file);
	test_evict("share/tiny");
	test_session("share/tiny");
	test_session("tests/data/small");
	{
		char *cmd = xasprintf("rm -rf %s", tmp);

		T_EQ_INT(system(cmd), 0);
		free(cmd);
	}
	return t_done("test-snapshot");
}
