/*
 * xcache.h - the expert cache: routed experts read from the checkpoint
 * files into anonymous memory on demand, for models larger than RAM.
 *
 * Without it a model that does not fit leaves everything to the page cache,
 * which evicts by page recency and faults one 4 KiB page at a time in the
 * middle of a matrix product.  With it, the unit of caching is one expert of
 * one layer (gate, up and down: every tensor of the three), read whole with
 * pread(2) by a small pool of I/O threads as soon as the router has chosen
 * it, while the experts already in memory are computed.  Replacement keeps
 * the frequently and recently used ones (LFU with ageing, victims chosen
 * among a random sample as Redis does).  The page cache keeps what every
 * token reads (xcache_new starts a background read of it).
 *
 * The files are opened again (the mapping's fds are closed at load) and
 * checked on every read: a shard whose size or mtime changed since the
 * cache opened it, a short read or a read error fails that expert with one
 * line naming the shard, and ctx_forward returns it.
 *
 * Thread affinity: one owner thread (the one that calls ctx_forward) calls
 * everything here; the I/O threads are internal; worker threads only read
 * the qmats of experts the owner has pinned.
 */
#ifndef QNEXT_XCACHE_H
#define QNEXT_XCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct model;
struct qmat;

/* ctx_opts.expert_cache: decide from MemAvailable at ctx_new (xcache_auto). */
#define XCACHE_AUTO UINT64_MAX

/* pread(2) or a stand-in that tests use to inject faults. */
typedef ssize_t xcache_read_fn(int fd, void *buf, size_t n, off_t off);

struct xcache_opts {
	uint64_t budget;      /* bytes of experts to hold (rounded down to whole experts) */
	int io_threads;       /* concurrent reads; 0 = 4 */
	bool keep_resident;   /* read the every-token weights in the background at start */
	bool watch_memory;    /* a watcher thread shrinks the cache under memory pressure */
	xcache_read_fn *read; /* NULL = pread */
};

struct xcache_stats {
	int slots;           /* experts the cache may hold now */
	int slots_max;       /* at the budget it was made with */
	int used;            /* holding an expert */
	int experts;         /* routed experts in the model (layers x experts) */
	uint64_t slot_bytes; /* bytes of one expert */
	uint64_t hits;       /* demanded and already in memory */
	uint64_t late;       /* demanded while a prefetch of it was still reading */
	uint64_t misses;     /* demanded and read then */
	uint64_t bytes_read; /* from the files, demand and prefetch */
	uint64_t evictions;
	uint64_t spec_issued;  /* speculative prefetches started */
	uint64_t spec_used;    /* ... whose expert was then demanded */
	uint64_t predicted;    /* experts predicted for the next layer */
	uint64_t predicted_ok; /* ... that its router then chose */
	uint64_t shrinks;      /* times memory pressure took slots away */
	double wait_s;         /* time the owner waited for reads */
};

struct xcache;

/*
 * Make a cache for m's routed experts.  NULL + *cause when the model has
 * none, a shard cannot be opened, or the budget holds fewer than two
 * experts.  The budget is taken as it is: callers decide it (xcache_budget).
 */
struct xcache *xcache_new(const struct model *m, const struct xcache_opts *o, char **cause);
void xcache_free(struct xcache *xc); /* accepts NULL; waits for reads in flight */

/*
 * Pin expert x of layer l and start reading it if it is not in memory;
 * demand reads go ahead of prefetches.  Returns a handle for xcache_wait
 * and xcache_unpin.  Waits only when every slot is pinned or being read.
 * At most xcache_capacity() - 1 experts may be pinned at once.
 */
int xcache_pin(struct xcache *xc, int l, int x);

/* Whether a pinned expert's bytes are in memory now. */
bool xcache_ready(struct xcache *xc, int h);

/*
 * The pinned expert's gate, up and down ([3]), waiting for its read; a
 * failed read is tried once more (it may have been started before the pin,
 * in a turn that failed); NULL and *cause (one line naming the shard) when
 * that fails too.
 */
const struct qmat *xcache_wait(struct xcache *xc, int h, char **cause);

void xcache_unpin(struct xcache *xc, int h);

/*
 * Read the experts xs[0..n) of layer l behind every demand read, if slots
 * can be had without evicting anything pinned: a guess at what the router
 * of layer l will choose.  Remembers the guess to score it (xcache_score).
 */
void xcache_speculate(struct xcache *xc, int l, const int *xs, int n);

/* Score the last guess for layer l against what its router chose. */
void xcache_score(struct xcache *xc, int l, const int *xs, int n);

/* Experts the cache may hold now. */
int xcache_capacity(const struct xcache *xc);

/*
 * Once per decoded token (or prompt step): age the use counts (halved every
 * 64 ticks).  Memory pressure is not looked at here but by the watcher
 * thread (xcache_opts.watch_memory), every 100 ms: it shrinks the cache when
 * MemAvailable less the every-token weights falls below half the reserve of
 * xcache_budget, or /proc/pressure/memory's some avg10 passes 10 %, and grows
 * it back, up to the budget, once pressure is gone.
 */
void xcache_tick(struct xcache *xc);

/* Set the number of slots (tests; the watcher does this from memory pressure). */
void xcache_set_slots(struct xcache *xc, int slots);

void xcache_stats(const struct xcache *xc, struct xcache_stats *s);

/* Bytes of one expert of m (gate, up and down), 0 when m has no routed experts. */
uint64_t xcache_expert_bytes(const struct model *m);

/* Bytes of the checkpoint every token reads: all but the routed experts and, unless
 * lm_head shares it, the embedding table (one row per token). */
uint64_t xcache_resident_bytes(const struct model *m);

/* Bytes of all routed experts of m (what the cache chooses among). */
uint64_t xcache_all_experts_bytes(const struct model *m);

/*
 * The residency plan for m now, from /proc/meminfo, with ctx_bytes of
 * context: xcache_budget over the checkpoint files' size, the bytes that
 * are not routed experts (resident) and MemAvailable.  0 = no cache.
 */
uint64_t xcache_auto(const struct model *m, uint64_t ctx_bytes);

/*
 * Parse --expert-cache's value: "auto" (XCACHE_AUTO), "off" or "0" (0), or
 * a size with a unit: 800M, 12G, 1.5GiB (decimal K/M/G/T, binary KiB/MiB/GiB/TiB).
 * 0, or -1 with *cause naming the value.
 */
int xcache_parse(const char *s, uint64_t *out, char **cause);

/*
 * The residency plan: bytes of experts to cache for m when the model does
 * not fit, given MemAvailable (avail), the bytes every token reads
 * (resident), the context's own allocation (ctx_bytes).  Leaves a reserve
 * of 512 MB or 3 % of MemTotal, whichever is more.  0 = plain mmap is better:
 * the whole checkpoint fits.
 */
uint64_t xcache_budget(uint64_t model_bytes, uint64_t resident, uint64_t ctx_bytes, uint64_t avail,
		       uint64_t total);

#endif
