/*
 * sysinfo.h - machine and process memory figures for the htop-style gauges
 * (docs/ui.md "Gauges"): RAM and swap from /proc/meminfo, this process's resident set
 * and swap from /proc/self/statm and /proc/self/status, the major-fault rate
 * that shows swap or page-cache thrashing, and how much of a mapping (the
 * model) is resident, which is the real progress of an mmap load.
 *
 * The /proc parsers take the file's text so tests can feed fixed samples.
 * They never fail: a field that is missing or malformed reads as 0.  Sizes
 * are bytes.
 *
 * Thread affinity: any thread; nothing is shared (a struct sysinfo_rate
 * belongs to its caller, the UI thread's gauge refresh).
 */
#ifndef QNEXT_SYSINFO_H
#define QNEXT_SYSINFO_H

#include <stddef.h>
#include <stdint.h>

/* The machine: /proc/meminfo, in bytes. */
struct sysinfo_mem {
	uint64_t total;      /* MemTotal */
	uint64_t available;  /* MemAvailable: what can be had without swapping */
	uint64_t cached;     /* Cached: page cache, which holds a mapped model's pages */
	uint64_t swap_total; /* SwapTotal */
	uint64_t swap_free;  /* SwapFree */
};

/* This process. */
struct sysinfo_proc {
	uint64_t rss;    /* resident set, bytes (statm; VmRSS when statm is missing) */
	uint64_t swap;   /* VmSwap: bytes of this process in swap */
	uint64_t majflt; /* major page faults so far (getrusage ru_majflt) */
};

#define SYSINFO_RATE_TAU 2.0 /* seconds: time constant of the fault-rate smoothing */

/* State for sysinfo_majflt_rate(); zero it (or `= { 0 }`) before the first sample. */
struct sysinfo_rate {
	uint64_t last;    /* fault count at the last sample */
	double last_time; /* seconds, of the last sample */
	double rate;      /* smoothed faults per second */
	int primed;       /* a first sample has been taken */
};

/*
 * Read /proc/meminfo into *m (OUT).  Returns 0, or -1 with *m zeroed when
 * the file cannot be read.
 */
int sysinfo_mem(struct sysinfo_mem *m);

/*
 * This process's memory cgroup (v1 or v2): its limit and the anonymous
 * memory charged to it (page cache, also charged, can be reclaimed).
 * 0, or -1 when there is no cgroup limit or it cannot be read.
 */
int sysinfo_cgroup_mem(uint64_t *limit, uint64_t *anon);

/*
 * sysinfo_mem with a memory cgroup's limit applied: total = the limit and
 * available = at most the limit less the cgroup's anonymous memory, when
 * that limit is below MemTotal.  What a process may really use.
 */
int sysinfo_mem_effective(struct sysinfo_mem *m);

/*
 * Read this process's figures into *p (OUT).  Returns 0, or -1 when neither
 * /proc/self/statm nor /proc/self/status could be read (what could be read
 * is still filled in, the rest is 0).
 */
int sysinfo_proc(struct sysinfo_proc *p);

/* Parse the text of /proc/meminfo (NUL-terminated) into *m (OUT). */
void sysinfo_parse_meminfo(const char *text, struct sysinfo_mem *m);

/* Resident bytes from the text of /proc/self/statm (its 2nd field, in pages of page_size). */
uint64_t sysinfo_parse_statm(const char *text, uint64_t page_size);

/*
 * Parse the text of /proc/self/status: VmSwap into p->swap and VmRSS into
 * p->rss (OUT; p->majflt is left alone).
 */
void sysinfo_parse_status(const char *text, struct sysinfo_proc *p);

/*
 * Feed the cumulative fault count `majflt` sampled at time `now` (seconds,
 * any monotonic clock, e.g. now_sec()) and get the faults per second,
 * smoothed over about SYSINFO_RATE_TAU seconds so a gauge refreshed at
 * 1-2 Hz does not flicker.  The first sample returns 0.  A counter that goes
 * backwards (a different process's figures) starts over; a sample no later
 * than the last one returns the current rate unchanged.
 */
double sysinfo_majflt_rate(struct sysinfo_rate *r, uint64_t majflt, double now);

/*
 * Bytes of [addr, addr + len) that are resident in RAM, by mincore(2) over
 * the pages the range touches, in chunks (so a 40 GB mapping needs no
 * 10 MB vector).  The result counts whole pages but never exceeds len.
 * Pages mincore cannot report on (not mapped) count as not resident, and
 * the rest of the range is still counted.
 */
uint64_t sysinfo_resident(const void *addr, size_t len);

/*
 * Format b the way the gauges show sizes: binary units, one decimal below
 * 100 and none from there on ("41.2G", "812M", "3.0K", "512B").  The unit
 * is the smallest that keeps the number under 1000.  Writes at most n bytes
 * to buf and returns buf.
 */
char *sysinfo_bytes(uint64_t b, char *buf, size_t n);

/*
 * The same in the unit sysinfo_bytes() would pick for ref, so that a pair
 * reads alike: used 0.3 GiB of ref 8 GiB gives "0.3G" (for "0.3G/8.0G").
 */
char *sysinfo_bytes_as(uint64_t b, uint64_t ref, char *buf, size_t n);

/*
 * Physical cores (distinct package and core ids in sysfs) among the CPUs
 * this process may run on; *n_cpus (OUT, may be NULL) the logical ones.
 * At least 1 each.
 */
int sysinfo_cores(int *n_cpus);

#endif
