/*
 * benchhw.h - `qnext bench-hw`: what this machine offers qnext.  Decode is
 * bound by memory bandwidth (docs/perf.md "Decode roofline"), so the figures that matter are the
 * streaming-read bandwidth of RAM on one thread and on every physical core,
 * the sequential read speed of the disk the model lives on (with the page
 * cache bypassed: that is what a model too big for RAM runs at), the CPU's
 * SIMD features and the kernel tier qnext picks, physical cores, RAM and
 * swap.  The record of the results and hw.json, where they are remembered
 * so that `qnext plan` can use them, are hwinfo.h's.
 *
 * Thread affinity: the CLI main thread runs the measurements (the memory
 * measurement starts and stops its own worker pool); benchhw_markdown is
 * pure: any thread.
 */
#ifndef QNEXT_BENCHHW_H
#define QNEXT_BENCHHW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hwinfo.h"

/* Memory measurement: a buffer of this many bytes, median of this many passes. */
#define BENCHHW_STREAM_BYTES ((size_t)1 << 30)
#define BENCHHW_STREAM_REPS  5

/* Disk measurement: read at most DISK_MAX bytes of the file; stop after DISK_MIN once
 * DISK_SEC seconds have gone by (a slow disk still finishes in seconds). */
#define BENCHHW_DISK_MAX ((uint64_t)4 << 30)
#define BENCHHW_DISK_MIN ((uint64_t)1 << 30)
#define BENCHHW_DISK_SEC 5.0

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
int benchhw_disk_read(const char *path, uint64_t max_bytes, struct hwinfo_disk *d, char **cause);

/*
 * One Markdown table row for a README hardware table:
 * | CPU | RAM | read GB/s 1T/all | predicted tok/s | measured tok/s |
 * with predicted/measured <= 0 shown as "–".  Malloc'd, without a newline.
 */
char *benchhw_markdown(const struct hwinfo *r, double predicted, double measured);

/* Entry point for `qnext bench-hw ARGS`; returns the process exit status. */
int benchhw_main(int argc, char **argv);

#endif
