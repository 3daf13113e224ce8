/*
 * benchhw.h - `qnext bench-hw`: what this machine offers qnext.  Decode is
 * bound by memory bandwidth (docs/perf.md "Decode roofline"), so the figures that matter are the
 * streaming-read bandwidth of RAM on one thread and on every physical core,
 * the sequential read speed of the disk the model lives on (with the page
 * cache bypassed: that is what a model too big for RAM runs at), the CPU's
 * SIMD features and the kernel tier qnext picks, physical cores, RAM and
 * swap.  The results are remembered in $XDG_CACHE_HOME/qnext/hw.json
 * (default ~/.cache/qnext/hw.json) so that `qnext plan` can use them.
 *
 * Thread affinity: the CLI main thread runs the measurements (the memory
 * measurement starts and stops its own worker pool).  The parsers and the
 * hw.json functions are pure or touch only their own files: any thread.
 */
#ifndef QNEXT_BENCHHW_H
#define QNEXT_BENCHHW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCHHW_NAME_LEN 128
#define BENCHHW_PATH_LEN 1024

/* Memory measurement: a buffer of this many bytes, median of this many passes. */
#define BENCHHW_STREAM_BYTES ((size_t)1 << 30)
#define BENCHHW_STREAM_REPS  5

/* Disk measurement: read at most DISK_MAX bytes of the file; stop after DISK_MIN once
 * DISK_SEC seconds have gone by (a slow disk still finishes in seconds). */
#define BENCHHW_DISK_MAX ((uint64_t)4 << 30)
#define BENCHHW_DISK_MIN ((uint64_t)1 << 30)
#define BENCHHW_DISK_SEC 5.0

/* The CPU as /proc/cpuinfo and sysfs describe it. */
struct benchhw_cpu {
	char name[BENCHHW_NAME_LEN];     /* "model name" of the first CPU; "unknown" */
	char features[BENCHHW_NAME_LEN]; /* the flags qnext cares about that are present,
					  * space separated in a fixed order ("avx2 fma f16c") */
	char kernels[16];                /* kernel tier qnext uses (kernels_get()->name) */
	int n_cores;                     /* physical cores this process may run on */
	int n_cpus;                      /* logical CPUs this process may run on */
};

/* A sequential read of a file with the page cache bypassed. */
struct benchhw_disk {
	char path[BENCHHW_PATH_LEN]; /* the file read */
	uint64_t bytes;              /* bytes read */
	double gbs;                  /* GB/s (1e9 bytes per second) */
	bool direct;                 /* O_DIRECT; false: posix_fadvise(DONTNEED) + read() */
	double cached_before;        /* fallback only: fraction of the range that was still
				      * in the page cache when reading began (makes gbs
				      * optimistic); 0 for O_DIRECT */
};

/* Everything bench-hw measures and remembers.  Speeds in GB/s, 0 = not measured. */
struct benchhw_result {
	struct benchhw_cpu cpu;
	uint64_t mem_total;       /* bytes, MemTotal */
	uint64_t swap_total;      /* bytes, SwapTotal */
	double read_1t;           /* streaming read, one thread */
	double read_all;          /* streaming read, n_threads threads */
	int n_threads;            /* threads of read_all */
	struct benchhw_disk disk; /* disk.gbs == 0: not measured */
	int64_t when;             /* seconds since the epoch of the measurement */
};

/*
 * Parse the text of /proc/cpuinfo (NUL-terminated): the first "model name"
 * (else "unknown") into cpu->name and the relevant flags of the first
 * "flags" line into cpu->features (OUT; other fields untouched).  Never fails.
 */
void benchhw_parse_cpuinfo(const char *text, struct benchhw_cpu *cpu);

/* Fill *cpu (OUT) from /proc/cpuinfo, sysfs, the affinity mask and kernels_get(). */
void benchhw_cpu(struct benchhw_cpu *cpu);

/* Physical cores (distinct package and core ids) among the CPUs this process may use; >= 1. */
int benchhw_physical_cores(void);

/*
 * Streaming-read bandwidth in GB/s: `reps` passes (at most 16) of n_threads
 * workers each reading its share of a buffer of `bytes` (written once
 * before, so every page is backed) with the kernels' dot product; the median
 * pass.  Returns 0 when the buffer or the pool cannot be had.
 */
double benchhw_stream_read(size_t bytes, int n_threads, int reps);

/*
 * Read `path` sequentially from its start, at most max_bytes (stopping
 * after BENCHHW_DISK_MIN once BENCHHW_DISK_SEC have passed), with O_DIRECT
 * and an aligned buffer; where O_DIRECT is refused (tmpfs, some network
 * file systems), drop the file's cached pages with posix_fadvise(DONTNEED)
 * and read normally (d->direct false, d->cached_before says how well the
 * drop worked).  Fills *d (OUT).  0, or -1 with *cause.
 */
int benchhw_disk_read(const char *path, uint64_t max_bytes, struct benchhw_disk *d, char **cause);

/*
 * Where the results are remembered: $XDG_CACHE_HOME/qnext/hw.json (when absolute), else
 * $HOME/.cache/qnext/hw.json.  Malloc'd; NULL when neither variable is set.
 */
char *benchhw_cache_path(void);

/* Write r to the cache file (directories made, replaced atomically).  0, or -1 with *cause. */
int benchhw_save(const struct benchhw_result *r, char **cause);

/* Read the cache file into *r (OUT, zeroed first).  0, or -1 with *cause when it is
 * missing or malformed (then nothing has been measured). */
int benchhw_load(struct benchhw_result *r, char **cause);

/* r as one JSON object (the hw.json format), malloc'd text without a newline. */
char *benchhw_json(const struct benchhw_result *r);

/*
 * One Markdown table row for a README hardware table:
 * | CPU | RAM | read GB/s 1T/all | predicted tok/s | measured tok/s |
 * with predicted/measured <= 0 shown as "–".  Malloc'd, without a newline.
 */
char *benchhw_markdown(const struct benchhw_result *r, double predicted, double measured);

/* Entry point for `qnext bench-hw ARGS`; returns the process exit status. */
int benchhw_main(int argc, char **argv);

#endif
