/*
 * pool.h - the engine's persistent worker pool.
 *
 * n threads in all: the calling thread is worker 0 and n-1 threads wait for
 * work.  pool_run() hands the same function to every worker and returns when
 * all have finished, so one call is one parallel step with a barrier at its
 * end.  Workers spin briefly between steps (a decoded token is ~1000 steps,
 * so waking through the kernel each time would cost more than the work) and
 * then sleep on a condition variable, so an idle engine burns no CPU.
 *
 * Thread affinity: one owner thread (the engine thread) creates the pool and
 * calls pool_run; workers block all signals and never see queue messages.
 */
#ifndef QNEXT_POOL_H
#define QNEXT_POOL_H

struct pool;

/* Work function: called once per worker with its index (0..n-1). */
typedef void pool_fn(void *arg, int worker, int n_workers);

/* Start a pool of n_threads (>= 1, including the caller).  NULL + cause on failure. */
struct pool *pool_new(int n_threads, char **cause);

/* Stop and join the workers.  Accepts NULL. */
void pool_free(struct pool *p);

int pool_size(const struct pool *p);

/* Run fn(arg, i, n) on every worker i and wait for all of them. */
void pool_run(struct pool *p, pool_fn *fn, void *arg);

/*
 * Default thread count: $QNEXT_THREADS when set, else the number of physical
 * cores (distinct core ids in sysfs) among the CPUs this process may run on.
 */
int pool_default_threads(void);

/* Split [0, n) into n_workers ranges aligned to `align`; worker w gets [*b, *e). */
void pool_split(int n, int align, int worker, int n_workers, int *b, int *e);

#endif
