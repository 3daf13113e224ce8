/*
 * pool.h - the engine's persistent worker pool.
 *
 * n threads in all: the calling thread is worker 0 and n-1 threads wait for
 * work.  One pool_run() is one parallel step: a number of independent chunks
 * that the workers, the caller included, claim one at a time until none is
 * left; it returns when every chunk has completed.  So a worker that the OS
 * has descheduled costs the step at most the chunk it is running: the others
 * take the chunks it would have had, and a worker that arrives after they
 * are gone finds nothing to do and holds nobody up.  Chunks of one step may
 * run in any order and on any worker, at most one at a time per worker.
 *
 * Workers spin briefly between steps (a decoded token is a few hundred
 * steps, so waking through the kernel each time would cost more than the
 * work), then sleep, so an idle engine burns no CPU.  The caller likewise
 * spins briefly for the last chunks, then sleeps until they complete, so that
 * a descheduled worker can have its CPU.
 *
 * Thread affinity: one owner thread (the engine thread, or a CLI tool)
 * creates the pool and calls pool_run and pool_free; workers block all
 * signals and never see queue messages.
 */
#ifndef QNEXT_POOL_H
#define QNEXT_POOL_H

struct pool;

/*
 * Work function: run chunk `chunk` (0..n_chunks-1) of the step.  `worker`
 * (0..pool_size-1) names the thread running it, for per-thread scratch
 * memory; what the chunk computes must depend on `chunk` alone.
 */
typedef void pool_fn(void *arg, int chunk, int worker);

/* Start a pool of n_threads (>= 1, including the caller).  NULL + cause on failure. */
struct pool *pool_new(int n_threads, char **cause);

/* Stop and join the workers.  Accepts NULL. */
void pool_free(struct pool *p);

int pool_size(const struct pool *p);

/*
 * Run fn(arg, chunk, worker) once for every chunk in [0, n_chunks) and
 * return when all have completed; their writes are then visible to the
 * caller, and the caller's writes before the call are visible to them.
 * n_chunks <= 0 does nothing; a single chunk runs on the caller.
 */
void pool_run(struct pool *p, pool_fn *fn, void *arg, int n_chunks);

/*
 * Default thread count: $QNEXT_THREADS when set, else the number of physical
 * cores (distinct core ids in sysfs) among the CPUs this process may run on.
 */
int pool_default_threads(void);

#endif
