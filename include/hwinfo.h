/*
 * hwinfo.h - what this machine is and what `qnext bench-hw` measured on it:
 * the CPU (name, the SIMD features that pick a kernel tier, physical cores),
 * RAM and swap, the streaming-read bandwidth of RAM and the sequential read
 * speed of the disk.  The measurements are remembered in
 * $XDG_CACHE_HOME/qnext/hw.json (default ~/.cache/qnext/hw.json): bench-hw
 * writes the file, `qnext plan` reads it.
 *
 * Thread affinity: any thread; the parsers are pure and the hw.json
 * functions touch only their own files.
 */
#ifndef QNEXT_HWINFO_H
#define QNEXT_HWINFO_H

#include <stdbool.h>
#include <stdint.h>

#define HWINFO_NAME_LEN 128
#define HWINFO_PATH_LEN 1024

/* The CPU as /proc/cpuinfo and sysfs describe it. */
struct hwinfo_cpu {
	char name[HWINFO_NAME_LEN];     /* "model name" of the first CPU; "unknown" */
	char features[HWINFO_NAME_LEN]; /* the flags qnext cares about that are present,
					 * space separated in a fixed order ("avx2 fma f16c") */
	char kernels[16];               /* kernel tier qnext uses (kernels_get()->name) */
	int n_cores;                    /* physical cores this process may run on */
	int n_cpus;                     /* logical CPUs this process may run on */
};

/* A sequential read of a file with the page cache bypassed. */
struct hwinfo_disk {
	char path[HWINFO_PATH_LEN]; /* the file read */
	uint64_t bytes;             /* bytes read */
	double gbs;                 /* GB/s (1e9 bytes per second) */
	bool direct;                /* O_DIRECT; false: posix_fadvise(DONTNEED) + read() */
	double cached_before;       /* fallback only: fraction of the range that was still
				     * in the page cache when reading began (makes gbs
				     * optimistic); 0 for O_DIRECT */
};

/* Everything bench-hw measures and remembers.  Speeds in GB/s, 0 = not measured. */
struct hwinfo {
	struct hwinfo_cpu cpu;
	uint64_t mem_total;      /* bytes, MemTotal */
	uint64_t swap_total;     /* bytes, SwapTotal */
	double read_1t;          /* streaming read, one thread */
	double read_all;         /* streaming read, n_threads threads */
	int n_threads;           /* threads of read_all */
	struct hwinfo_disk disk; /* disk.gbs == 0: not measured */
	int64_t when;            /* seconds since the epoch of the measurement */
};

/*
 * Parse the text of /proc/cpuinfo (NUL-terminated): the first "model name"
 * (else "unknown") into cpu->name and the relevant flags of the first
 * "flags" line into cpu->features (OUT; other fields untouched).  Never fails.
 */
void hwinfo_parse_cpuinfo(const char *text, struct hwinfo_cpu *cpu);

/* Fill *cpu (OUT) from /proc/cpuinfo, sysfs, the affinity mask and kernels_get(). */
void hwinfo_cpu(struct hwinfo_cpu *cpu);

/* The cache directory ($XDG_CACHE_HOME/qnext, else $HOME/.cache/qnext), made when
 * missing.  Malloc'd, or NULL with *cause. */
char *hwinfo_cache_dir_made(char **cause);

/*
 * Where the results are remembered: $XDG_CACHE_HOME/qnext/hw.json (when absolute), else
 * $HOME/.cache/qnext/hw.json.  Malloc'd; NULL when neither variable is set.
 */
char *hwinfo_cache_path(void);

/* Write r to the cache file (directories made, replaced atomically).  0, or -1 with *cause. */
int hwinfo_save(const struct hwinfo *r, char **cause);

/* Read the cache file into *r (OUT, zeroed first).  0, or -1 with *cause when it is
 * missing or malformed (then nothing has been measured). */
int hwinfo_load(struct hwinfo *r, char **cause);

/* r as one JSON object (the hw.json format), malloc'd text without a newline. */
char *hwinfo_json(const struct hwinfo *r);

#endif
