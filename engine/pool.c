/*
 * pool.c - persistent worker pool (see pool.h).
 *
 * DESIGN: a step is published as one 64-bit word, `step` = gen << 32 |
 * left: the step's generation number and how many of its chunks are still
 * unclaimed.  A thread claims a chunk by a compare-and-swap of (gen, left)
 * to (gen, left - 1), which gives it chunk n_chunks - left; it then runs
 * the chunk and adds one to `done`.  The step is over when done == n_chunks
 * (every chunk completed), whoever was or was not there: the owner waits on
 * that count, never on the workers themselves.
 *
 * Why a late worker cannot run a chunk of the wrong step: the claim names
 * the generation, so a thread holding an old snapshot of the word fails its
 * CAS once the owner has published the next step (the generation differs,
 * and it only repeats after 2^32 steps).  The bound, left > 0, is part of the
 * word too, so no separately read count can be stale.  And fn, arg and
 * n_chunks are read only after a successful claim: the owner rewrites them
 * only after done == n_chunks, which cannot happen while a claimed chunk is
 * still running, so the claimer reads the fields of the step it claimed.
 *
 * Memory ordering:
 *  - Owner, publishing: plain stores of fn/arg/n_chunks, a relaxed store of
 *    done = 0, then a seq_cst (hence release) store of `step`.  A claim is an
 *    acquire CAS; every successful CAS is a read-modify-write, so it
 *    continues the release sequence of the owner's store and the claimer
 *    sees fn/arg/n_chunks, done = 0 and all the owner wrote before the step
 *    (its inputs).  Its increment of done therefore comes after the reset.
 *  - Completing: fetch_add(done, release) after the chunk's writes; the
 *    owner's acquire load that reads n_chunks reads the end of a chain of
 *    read-modify-writes, so it synchronizes with every completer and sees
 *    every chunk's output, and every read the workers made of fn/arg happens
 *    before the owner overwrites them for the next step.
 *  - Sleeping workers: a worker announces itself in `sleepers`, then
 *    re-reads `step` under the mutex before waiting; the owner stores `step`,
 *    then reads `sleepers`.  All four are seq_cst, so either the worker sees
 *    the new step or the owner sees the sleeper and broadcasts under the
 *    mutex (which the worker holds from its check until it waits).
 *  - Quitting: `quit` is stored before the last `step`, and a worker reads
 *    `step` with acquire (or seq_cst) before it looks at `quit`.
 *  - The sleeping owner: `owner_asleep` and the final check of done happen
 *    under the mutex, and the worker that completes the last chunk takes the
 *    mutex to signal, so the wake-up cannot be lost.
 *
 * Thread affinity: pool_new/pool_run/pool_free from the owner thread only.
 */
#include "pool.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sysinfo.h"
#include "thread-role.h"
#include "util.h"

/*
 * How long a worker polls for the next step before it sleeps.  The gap
 * between steps is the owner's glue (about 10 us on average in decode)
 * unless the owner runs a step alone or was descheduled; then polling only
 * burns CPU time that, on a busy machine, comes out of the owner's share (the
 * kernel's autogroups share a session's CPU time among its threads).  Decode
 * of the 64-expert model at 2 threads, 3 interleaved rounds, tok/s (the
 * first round quiet, the others beside another session's work): 20 us 5.29,
 * 3.24, 3.00; 150 us 5.06, 3.77, 2.65; 400 us 5.24, 2.57, 2.61.
 */
#ifndef POOL_SPIN_US
#define POOL_SPIN_US 20
#endif
/*
 * How long the owner polls for the last chunks of a step before it sleeps:
 * they take microseconds unless their worker was descheduled, and then the
 * owner had better give up its CPU, which that worker may be waiting for.
 * Sleeping too soon costs a futex wake-up (tens of microseconds) on the
 * critical path of a step whose last chunk was merely late.  Decode of the
 * 64-expert model at 2 threads (Xeon, AVX-512), interleaved, median tok/s
 * of 4 quiet rounds / 3 rounds beside a busy loop: 10 us 4.53 / 3.15;
 * 200 us 4.74 / 3.34; 200 us here and 200 us in POOL_SPIN_US 4.81 / 2.96.
 * Both are -D overridable for such A/B builds.
 */
#ifndef POOL_WAIT_US
#define POOL_WAIT_US 200
#endif
/* Polls between looks at the clock. */
#define POOL_POLLS 64

struct pool {
	int n;              /* workers including the owner */
	pthread_t *threads; /* [n - 1] */
	uint32_t gen;       /* owner's copy of the current generation */

	/* The current step: written by the owner before it publishes `step`,
	 * read by a thread only after it has claimed one of the step's chunks. */
	pool_fn *fn;
	void *arg;
	int n_chunks;

	/* Claimed by every thread at every chunk: a cache line of its own. */
	alignas(64) _Atomic uint64_t step; /* gen << 32 | chunks not yet claimed */
	alignas(64) atomic_int done;       /* chunks of this step completed */
	atomic_int sleepers;               /* workers waiting on `wake` */
	atomic_bool quit;

	pthread_mutex_t mu;
	pthread_cond_t wake;     /* workers: a step was published, or quit */
	pthread_cond_t finished; /* owner: the last chunk completed */
	bool owner_asleep;       /* under mu */
};

struct worker_arg {
	struct pool *p;
	int idx;
};

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Whether `us` microseconds have passed since *t0 (0: not started; set it). */
static bool
spun_out(double *t0, int us)
{
	double t = now_sec();

	if (*t0 == 0) {
		*t0 = t;
		return false;
	}
	return t - *t0 > us * 1e-6;
}

static inline uint32_t
step_gen(uint64_t w)
{
	return (uint32_t)(w >> 32);
}

static inline uint32_t
step_left(uint64_t w)
{
	return (uint32_t)w;
}

/* The last chunk of the step completed on a worker: wake the owner if it sleeps. */
static void
wake_owner(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->owner_asleep)
		pthread_cond_signal(&p->finished);
	pthread_mutex_unlock(&p->mu);
}

/*
 * Claim and run chunks of generation gen until none is left or a later step
 * has replaced it (see DESIGN).
 */
static void
run_chunks(struct pool *p, uint32_t gen, int worker)
{
	uint64_t w = atomic_load_explicit(&p->step, memory_order_relaxed);

	for (;;) {
		int n;

		if (step_gen(w) != gen || step_left(w) == 0)
			return;
		if (!atomic_compare_exchange_weak_explicit(
			    &p->step, &w, w - 1, memory_order_acquire, memory_order_relaxed))
			continue; /* w now holds the current word */
		n = p->n_chunks;
		p->fn(p->arg, n - (int)step_left(w), worker);
		if (atomic_fetch_add_explicit(&p->done, 1, memory_order_release) + 1 == n &&
		    worker != 0)
			wake_owner(p);
		w = atomic_load_explicit(&p->step, memory_order_relaxed);
	}
}

/* Wait for a generation other than seen; returns the step word that has it. */
static uint64_t
wait_step(struct pool *p, uint32_t seen)
{
	uint64_t w;
	double t0 = 0;

	do {
		for (int i = 0; i < POOL_POLLS; i++) {
			w = atomic_load_explicit(&p->step, memory_order_acquire);
			if (step_gen(w) != seen)
				return w;
			cpu_relax();
		}
	} while (!spun_out(&t0, POOL_SPIN_US));
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add(&p->sleepers, 1);
	while (step_gen(w = atomic_load(&p->step)) == seen)
		pthread_cond_wait(&p->wake, &p->mu);
	atomic_fetch_sub(&p->sleepers, 1);
	pthread_mutex_unlock(&p->mu);
	return w;
}

static void *
worker_main(void *v)
{
	struct worker_arg wa = *(struct worker_arg *)v;
	struct pool *p = wa.p;
	uint32_t seen = 0;

	thread_role_set(ROLE_WORKER);
	free(v);
	/* Signals go to the UI thread, faults to the thread (docs/style.md "Threading rule"). */
	signals_block_async(NULL);
	for (;;) {
		seen = step_gen(wait_step(p, seen));
		if (atomic_load_explicit(&p->quit, memory_order_acquire))
			break;
		run_chunks(p, seen, wa.idx);
	}
	return NULL;
}

struct pool *
pool_new(int n_threads, char **cause)
{
	struct pool *p;
	void *mem;
	int err;

	if (n_threads < 1)
		n_threads = 1;
	/* Aligned so that `step` and `done` really sit on cache lines of their own. */
	if (posix_memalign(&mem, 64, sizeof(*p)) != 0)
		fatal("out of memory");
	p = memset(mem, 0, sizeof(*p));
	p->n = n_threads;
	atomic_init(&p->step, 0);
	atomic_init(&p->done, 0);
	atomic_init(&p->sleepers, 0);
	atomic_init(&p->quit, false);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->finished, NULL);
	if (n_threads > 1)
		p->threads = xcalloc((size_t)n_threads - 1, sizeof(pthread_t));
	for (int i = 1; i < n_threads; i++) {
		struct worker_arg *wa = xmalloc(sizeof(*wa));

		wa->p = p;
		wa->idx = i;
		if ((err = pthread_create(&p->threads[i - 1], NULL, worker_main, wa)) != 0) {
			free(wa);
			p->n = i; /* join only the started ones */
			pool_free(p);
			cause_set(cause, "cannot start worker thread: %s", strerror(err));
			log_error("pool: cannot start worker thread: %s", strerror(err));
			return NULL;
		}
	}
	log_info("pool: %d threads", n_threads);
	return p;
}

/* Make generation gen + 1 with n_chunks unclaimed chunks current and wake sleepers. */
static void
publish(struct pool *p, int n_chunks)
{
	p->gen++;
	atomic_store(&p->step, (uint64_t)p->gen << 32 | (uint32_t)n_chunks);
	if (atomic_load(&p->sleepers) > 0) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->wake);
		pthread_mutex_unlock(&p->mu);
	}
}

void
pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	atomic_store_explicit(&p->quit, true, memory_order_release);
	publish(p, 0);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->threads[i - 1], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->finished);
	free(p->threads);
	free(p);
}

int
pool_size(const struct pool *p)
{
	return p->n;
}

/* Wait until all n chunks of the step have completed: spin, then sleep. */
static void
wait_done(struct pool *p, int n)
{
	double t0 = 0;

	do {
		for (int i = 0; i < POOL_POLLS; i++) {
			if (atomic_load_explicit(&p->done, memory_order_acquire) == n)
				return;
			cpu_relax();
		}
	} while (!spun_out(&t0, POOL_WAIT_US));
	pthread_mutex_lock(&p->mu);
	p->owner_asleep = true;
	while (atomic_load_explicit(&p->done, memory_order_acquire) != n)
		pthread_cond_wait(&p->finished, &p->mu);
	p->owner_asleep = false;
	pthread_mutex_unlock(&p->mu);
}

void
pool_run(struct pool *p, pool_fn *fn, void *arg, int n_chunks)
{
	if (n_chunks <= 0)
		return;
	if (p->n == 1 || n_chunks == 1) {
		for (int i = 0; i < n_chunks; i++)
			fn(arg, i, 0);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	p->n_chunks = n_chunks;
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	publish(p, n_chunks);
	run_chunks(p, p->gen, 0);
	wait_done(p, n_chunks);
}

int
pool_default_threads(void)
{
	const char *env = getenv("QNEXT_THREADS");

	if (env != NULL && atoi(env) > 0)
		return MIN(atoi(env), 256);
	return sysinfo_cores(NULL);
}
