/*
 * pool.c - persistent worker pool (see pool.h).
 *
 * DESIGN: a step is published by bumping `gen` under the mutex after storing
 * fn/arg; workers notice the new generation either while spinning (the common
 * case inside a token) or when woken from the condition variable after they
 * gave up spinning.  Each worker increments `done` when finished and the
 * owner spins until done == n-1.  The release/acquire pairs on gen and done
 * order the fn/arg stores and the workers' output writes.
 *
 * Thread affinity: pool_new/pool_run/pool_free from the owner thread only.
 */
#include "pool.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Spins before a worker sleeps; ~50-100 us on current CPUs. */
#define POOL_SPINS 20000

struct pool {
	int n;              /* workers including the owner */
	pthread_t *threads; /* [n - 1] */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_uint gen;    /* step number; odd/even has no meaning */
	atomic_int done;    /* workers finished with the current step */
	atomic_int sleepers;
	atomic_bool quit;
	pool_fn *fn;
	void *arg;
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

static unsigned
wait_gen(struct pool *p, unsigned seen)
{
	unsigned g;

	for (int i = 0; i < POOL_SPINS; i++) {
		g = atomic_load_explicit(&p->gen, memory_order_acquire);
		if (g != seen)
			return g;
		cpu_relax();
	}
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add(&p->sleepers, 1);
	while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
		pthread_cond_wait(&p->cv, &p->mu);
	atomic_fetch_sub(&p->sleepers, 1);
	pthread_mutex_unlock(&p->mu);
	return g;
}

static void *
worker_main(void *v)
{
	struct worker_arg wa = *(struct worker_arg *)v;
	struct pool *p = wa.p;
	unsigned seen = 0;
	sigset_t all;

	free(v);
	/* Signals belong to the UI thread (STYLE.md §2.7). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		seen = wait_gen(p, seen);
		if (atomic_load(&p->quit))
			break;
		p->fn(p->arg, wa.idx, p->n);
		atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
	}
	return NULL;
}

struct pool *
pool_new(int n_threads, char **cause)
{
	struct pool *p;
	int err;

	if (n_threads < 1)
		n_threads = 1;
	p = xcalloc(1, sizeof(*p));
	p->n = n_threads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
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
			return NULL;
		}
	}
	return p;
}

static void
publish(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	if (atomic_load(&p->sleepers) > 0)
		pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void
pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	atomic_store(&p->quit, true);
	publish(p);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->threads[i - 1], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->threads);
	free(p);
}

int
pool_size(const struct pool *p)
{
	return p->n;
}

void
pool_run(struct pool *p, pool_fn *fn, void *arg)
{
	if (p->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	publish(p);
	fn(arg, 0, p->n);
	while (atomic_load_explicit(&p->done, memory_order_acquire) != p->n - 1)
		cpu_relax();
}

void
pool_split(int n, int align, int worker, int n_workers, int *b, int *e)
{
	int n_units = (n + align - 1) / align;
	int per = n_units / n_workers, extra = n_units % n_workers;
	int ub = worker * per + MIN(worker, extra);
	int ue = ub + per + (worker < extra ? 1 : 0);

	*b = MIN(ub * align, n);
	*e = MIN(ue * align, n);
}

/* Count distinct (package, core) pairs among the CPUs in our affinity mask. */
static int
physical_cores(void)
{
	cpu_set_t set;
	int seen_pkg[256], seen_core[256], n_seen = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		char path[128];
		int pkg = 0, core = cpu, dup = 0;
		FILE *f;

		if (!CPU_ISSET(cpu, &set))
			continue;
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
		if ((f = fopen(path, "r")) != NULL) {
			if (fscanf(f, "%d", &core) != 1)
				core = cpu;
			fclose(f);
		}
		snprintf(path, sizeof(path),
			 "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
		if ((f = fopen(path, "r")) != NULL) {
			if (fscanf(f, "%d", &pkg) != 1)
				pkg = 0;
			fclose(f);
		}
		for (int i = 0; i < n_seen; i++)
			if (seen_pkg[i] == pkg && seen_core[i] == core)
				dup = 1;
		if (!dup && n_seen < (int)ARRAY_LEN(seen_pkg)) {
			seen_pkg[n_seen] = pkg;
			seen_core[n_seen] = core;
			n_seen++;
		}
	}
	return n_seen > 0 ? n_seen : 1;
}

int
pool_default_threads(void)
{
	const char *env = getenv("QNEXT_THREADS");

	if (env != NULL && atoi(env) > 0)
		return MIN(atoi(env), 256);
	return physical_cores();
}
