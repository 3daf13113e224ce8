/*
 * test-pool.c - the worker pool's contract (pool.h): every chunk of every
 * step runs exactly once, with the step's own function and argument, and a
 * step is over only when all its chunks have completed; a worker stalled
 * inside a chunk costs the step that chunk, not its share, and a worker that
 * comes late never runs a chunk of the next step.  Also run under TSan
 * (make tsan-test).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"
#include "t.h"
#include "util.h"

static void
sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* ---- every chunk once, any size ---------------------------------------- */

struct count_step {
	atomic_int *runs; /* [n_chunks] */
	atomic_int bad_worker;
	int n_workers;
};

static void
count_chunk(void *arg, int chunk, int worker)
{
	struct count_step *st = arg;

	atomic_fetch_add(&st->runs[chunk], 1);
	if (worker < 0 || worker >= st->n_workers)
		atomic_fetch_add(&st->bad_worker, 1);
}

static void
test_counts(int n_threads)
{
	static const int sizes[] = { 0, 1, 2, 3, 7, 64, 1000 };
	struct pool *p = pool_new(n_threads, NULL);
	struct count_step st = { .n_workers = n_threads };

	T_ASSERT(p != NULL);
	T_EQ_INT(pool_size(p), n_threads);
	st.runs = xcalloc(1000, sizeof(*st.runs));
	for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
		int wrong = 0;

		for (int i = 0; i < 1000; i++)
			atomic_store(&st.runs[i], 0);
		pool_run(p, count_chunk, &st, sizes[s]);
		for (int i = 0; i < 1000; i++)
			wrong += atomic_load(&st.runs[i]) != (i < sizes[s]);
		T_EQ_INT(wrong, 0);
	}
	T_EQ_INT(atomic_load(&st.bad_worker), 0);
	free(st.runs);
	pool_free(p);
}

/* ---- a stalled worker ---------------------------------------------------- */

/*
 * Worker 1 sleeps 100 ms in the first chunk it takes; the owner waits (a
 * bounded time) for that to have begun before it runs any chunk, so the
 * stall surely happens inside the step.  The owner must then run every
 * other chunk, long before the stalled one ends, and pool_run must still
 * return only after it.
 */
struct stall_step {
	atomic_bool w1_started;
	atomic_int runs[64];
	atomic_int by_owner;
	double owner_last; /* when the owner's last chunk ended (owner only) */
	double stall_end;  /* written by worker 1, read after pool_run */
};

static void
stall_chunk(void *arg, int chunk, int worker)
{
	struct stall_step *st = arg;

	if (worker == 1 && !atomic_load(&st->w1_started)) {
		atomic_store(&st->w1_started, true);
		sleep_us(100 * 1000);
		st->stall_end = now_sec();
	} else if (worker == 0) {
		double t0 = now_sec();

		while (!atomic_load(&st->w1_started) && now_sec() - t0 < 5)
			sched_yield();
		atomic_fetch_add(&st->by_owner, 1);
		st->owner_last = now_sec();
	}
	atomic_fetch_add(&st->runs[chunk], 1);
}

static void
test_stall(void)
{
	struct pool *p = pool_new(2, NULL);
	struct stall_step *st = xcalloc(1, sizeof(*st));
	int wrong = 0;
	double t0, t1;

	T_ASSERT(p != NULL);
	t0 = now_sec();
	pool_run(p, stall_chunk, st, 64);
	t1 = now_sec();
	T_ASSERT(atomic_load(&st->w1_started));
	for (int i = 0; i < 64; i++)
		wrong += atomic_load(&st->runs[i]) != 1;
	T_EQ_INT(wrong, 0);
	/* The step lasted the stall, and ended after the stalled chunk... */
	T_ASSERT(t1 - t0 >= 0.099);
	T_ASSERT(st->stall_end > 0 && t1 >= st->stall_end);
	/* ...while the owner took all 63 other chunks without waiting for it. */
	T_EQ_INT(atomic_load(&st->by_owner), 63);
	T_ASSERT(st->owner_last < st->stall_end - 0.05);
	free(st);
	pool_free(p);
}

/* ---- many short steps, late workers ------------------------------------- */

/*
 * Each step has its own function (one of four) and its own array; a chunk
 * checks that the argument it was given belongs to its function and counts
 * itself.  Chunks sleep or yield now and then, so workers arrive late, while
 * the next steps are already running.
 */
#define N_STEPS    3000
#define MAX_CHUNKS 9

struct tagged_step {
	int fn_id;
	int n_chunks;
	atomic_int runs[MAX_CHUNKS];
	atomic_int wrong_fn;
};

static void
tagged_run(struct tagged_step *st, int fn_id, int chunk, int worker)
{
	if (st->fn_id != fn_id || chunk < 0 || chunk >= st->n_chunks) {
		atomic_fetch_add(&st->wrong_fn, 1);
		return;
	}
	atomic_fetch_add(&st->runs[chunk], 1);
	if ((chunk * 7 + worker + fn_id) % 5 == 0)
		sched_yield();
	else if ((chunk * 13 + st->n_chunks) % 23 == 0)
		sleep_us(50);
}

static void
tagged0(void *arg, int chunk, int worker)
{
	tagged_run(arg, 0, chunk, worker);
}

static void
tagged1(void *arg, int chunk, int worker)
{
	tagged_run(arg, 1, chunk, worker);
}

static void
tagged2(void *arg, int chunk, int worker)
{
	tagged_run(arg, 2, chunk, worker);
}

static void
tagged3(void *arg, int chunk, int worker)
{
	tagged_run(arg, 3, chunk, worker);
}

static void
test_late_workers(int n_threads)
{
	static pool_fn *const fns[4] = { tagged0, tagged1, tagged2, tagged3 };
	struct pool *p = pool_new(n_threads, NULL);
	struct tagged_step *steps = xcalloc(N_STEPS, sizeof(*steps));
	int wrong_count = 0, wrong_fn = 0;

	T_ASSERT(p != NULL);
	for (int s = 0; s < N_STEPS; s++) {
		struct tagged_step *st = &steps[s];

		st->fn_id = s % 4;
		st->n_chunks = 1 + (s * 5) % MAX_CHUNKS;
		pool_run(p, fns[st->fn_id], st, st->n_chunks);
		/* Complete when pool_run returns: nothing may come later. */
		for (int i = 0; i < st->n_chunks; i++)
			wrong_count += atomic_load(&st->runs[i]) != 1;
	}
	pool_free(p); /* joins every worker: what they did is visible now */
	for (int s = 0; s < N_STEPS; s++) {
		for (int i = 0; i < MAX_CHUNKS; i++)
			wrong_count += atomic_load(&steps[s].runs[i]) != (i < steps[s].n_chunks);
		wrong_fn += atomic_load(&steps[s].wrong_fn);
	}
	T_EQ_INT(wrong_count, 0);
	T_EQ_INT(wrong_fn, 0);
	free(steps);
}

/* ---- sleeping workers and owner ----------------------------------------- */

/* Steps far apart (workers asleep) and chunks slower than the owner's spin. */
static void
slow_chunk(void *arg, int chunk, int worker)
{
	atomic_int *runs = arg;

	if (worker != 0)
		sleep_us(2000);
	atomic_fetch_add(&runs[chunk], 1);
}

static void
test_sleepers(void)
{
	struct pool *p = pool_new(3, NULL);
	atomic_int runs[16];
	int wrong = 0;

	T_ASSERT(p != NULL);
	for (int r = 0; r < 5; r++) {
		for (int i = 0; i < 16; i++)
			atomic_store(&runs[i], 0);
		sleep_us(20 * 1000); /* longer than the workers spin */
		pool_run(p, slow_chunk, runs, 16);
		for (int i = 0; i < 16; i++)
			wrong += atomic_load(&runs[i]) != 1;
	}
	T_EQ_INT(wrong, 0);
	pool_free(p);
	pool_free(NULL);
}

int
main(void)
{
	for (int n = 1; n <= 4; n++)
		test_counts(n);
	test_stall();
	test_late_workers(2);
	test_late_workers(4);
	test_sleepers();
	return t_done("test-pool");
}
