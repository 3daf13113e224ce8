/*
 * sysinfo.c - memory figures for the gauges: /proc readers and parsers, the
 * smoothed major-fault rate, mincore() residency, and size formatting.
 *
 * /proc files are read with one open/read into a stack buffer (they are a
 * few KB and change between reads, so there is nothing to cache).  Parsers
 * walk the text once and saturate instead of overflowing.
 *
 * Any thread; no shared state.
 */
#include "sysinfo.h"

#include <sys/mman.h>
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define PROC_BUF      16384 /* /proc/self/status is ~1.5 KB; its tail may be cut */
#define MINCORE_PAGES 16384 /* pages per mincore() call: 64 MB of 4 KB pages */

/* Read a /proc file into buf (NUL-terminated).  Returns 0, or -1 when it cannot be read. */
static int
read_proc(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return len > 0 ? 0 : -1;
}

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	if (b != 0 && a > UINT64_MAX / b)
		return UINT64_MAX;
	return a * b;
}

/*
 * The number at p after optional blanks, saturating; 0 when there is none.
 * *end (OUT) receives the first character after it.
 */
static uint64_t
parse_num(const char *p, const char **end)
{
	uint64_t v = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*end = p;
	return v;
}

/* The value after "Key:" in a /proc line, in bytes when it says kB. */
static uint64_t
parse_field(const char *p)
{
	uint64_t v = parse_num(p, &p);

	while (*p == ' ' || *p == '\t')
		p++;
	if (p[0] == 'k' && p[1] == 'B')
		v = sat_mul(v, 1024);
	return v;
}

/* One "Key:" the parsers look for and where its value goes. */
struct field {
	const char *key;
	uint64_t *value;
};

/* Fill the fields found at line starts in text; the others are left alone. */
static void
parse_fields(const char *text, const struct field *f, size_t n)
{
	const char *line = text;

	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		const char *colon =
			memchr(line, ':', nl != NULL ? (size_t)(nl - line) : strlen(line));

		if (colon != NULL) {
			size_t klen = (size_t)(colon - line);

			for (size_t i = 0; i < n; i++) {
				if (strlen(f[i].key) == klen && memcmp(line, f[i].key, klen) == 0) {
					*f[i].value = parse_field(colon + 1);
					break;
				}
			}
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
}

void
sysinfo_parse_meminfo(const char *text, struct sysinfo_mem *m)
{
	const struct field f[] = {
		{ "MemTotal", &m->total },     { "MemAvailable", &m->available },
		{ "Cached", &m->cached },      { "SwapTotal", &m->swap_total },
		{ "SwapFree", &m->swap_free },
	};

	memset(m, 0, sizeof(*m));
	parse_fields(text, f, ARRAY_LEN(f));
}

void
sysinfo_parse_status(const char *text, struct sysinfo_proc *p)
{
	const struct field f[] = {
		{ "VmRSS", &p->rss },
		{ "VmSwap", &p->swap },
	};

	p->rss = p->swap = 0;
	parse_fields(text, f, ARRAY_LEN(f));
}

uint64_t
sysinfo_parse_statm(const char *text, uint64_t page_size)
{
	const char *p;

	parse_num(text, &p); /* size */
	if (*p != ' ')
		return 0;
	return sat_mul(parse_num(p, &p), page_size);
}

int
sysinfo_mem(struct sysinfo_mem *m)
{
	char buf[PROC_BUF];

	memset(m, 0, sizeof(*m));
	if (read_proc("/proc/meminfo", buf, sizeof(buf)) == -1)
		return -1;
	sysinfo_parse_meminfo(buf, m);
	return 0;
}

/* The first number in file path into *v; -1 when unreadable or "max". */
static int
read_u64(const char *path, uint64_t *v)
{
	char buf[64];
	unsigned long long x;

	if (read_proc(path, buf, sizeof(buf)) == -1 || sscanf(buf, "%llu", &x) != 1)
		return -1;
	*v = x;
	return 0;
}

/* Value of `key` (followed by a space) in a memory.stat text, or 0. */
static uint64_t
stat_field(const char *text, const char *key)
{
	size_t n = strlen(key);
	unsigned long long v = 0;

	for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, key, n) == 0 && p[n] == ' ' && sscanf(p + n + 1, "%llu", &v) == 1)
			return v;
	return 0;
}

int
sysinfo_cgroup_mem(uint64_t *limit, uint64_t *anon)
{
	char cg[PROC_BUF], path[PROC_BUF + 64], stat[PROC_BUF];
	const char *line;

	if (read_proc("/proc/self/cgroup", cg, sizeof(cg)) == -1)
		return -1;
	/* v2: "0::/path"; v1: "N:memory:/path" (or with other controllers joined by commas). */
	if ((line = strstr(cg, ":memory:")) != NULL) {
		int n = (int)strcspn(line + 8, "\n");

		snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%.*s/memory.limit_in_bytes", n,
			 line + 8);
		if (read_u64(path, limit) != 0)
			return -1;
		snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%.*s/memory.stat", n, line + 8);
		*anon = read_proc(path, stat, sizeof(stat)) == 0 ? stat_field(stat, "total_rss")
								 : 0;
	} else if ((line = strstr(cg, "0::")) != NULL && (line == cg || line[-1] == '\n')) {
		int n = (int)strcspn(line + 3, "\n");

		snprintf(path, sizeof(path), "/sys/fs/cgroup%.*s/memory.max", n, line + 3);
		if (read_u64(path, limit) != 0)
			return -1;
		snprintf(path, sizeof(path), "/sys/fs/cgroup%.*s/memory.stat", n, line + 3);
		*anon = read_proc(path, stat, sizeof(stat)) == 0 ? stat_field(stat, "anon") : 0;
	} else {
		return -1;
	}
	return *limit >= ((uint64_t)1 << 60) ? -1 : 0; /* v1 says "no limit" with a huge number */
}

int
sysinfo_mem_effective(struct sysinfo_mem *m)
{
	uint64_t limit, anon;

	if (sysinfo_mem(m) != 0)
		return -1;
	if (sysinfo_cgroup_mem(&limit, &anon) == 0 && limit < m->total) {
		uint64_t avail = limit > anon ? limit - anon : 0;

		m->total = limit;
		m->available = MIN(m->available, avail);
	}
	return 0;
}

int
sysinfo_proc(struct sysinfo_proc *p)
{
	char buf[PROC_BUF];
	struct rusage ru;
	uint64_t statm_rss = 0;
	int have_statm, have_status;

	memset(p, 0, sizeof(*p));
	have_statm = read_proc("/proc/self/statm", buf, sizeof(buf)) == 0;
	if (have_statm)
		statm_rss = sysinfo_parse_statm(buf, (uint64_t)sysconf(_SC_PAGESIZE));
	have_status = read_proc("/proc/self/status", buf, sizeof(buf)) == 0;
	if (have_status)
		sysinfo_parse_status(buf, p);
	/* statm is one number to read and is what htop shows; VmRSS is the fallback. */
	if (have_statm)
		p->rss = statm_rss;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		p->majflt = (uint64_t)ru.ru_majflt;
	return have_statm || have_status ? 0 : -1;
}

double
sysinfo_majflt_rate(struct sysinfo_rate *r, uint64_t majflt, double now)
{
	double dt, inst;

	if (!r->primed || majflt < r->last) {
		r->last = majflt;
		r->last_time = now;
		r->rate = 0.0;
		r->primed = 1;
		return 0.0;
	}
	dt = now - r->last_time;
	if (!(dt > 0.0))
		return r->rate;
	inst = (double)(majflt - r->last) / dt;
	/* An EMA whose weight follows the real interval, so late refreshes do not skew it. */
	r->rate += (1.0 - exp(-dt / SYSINFO_RATE_TAU)) * (inst - r->rate);
	r->last = majflt;
	r->last_time = now;
	return r->rate;
}

/*
 * Resident pages among n (<= MINCORE_PAGES) pages at start.  mincore fails
 * for the whole call when any page is unmapped, so a failing range is split
 * in halves until the holes are single pages, which count as not resident.
 */
static uint64_t
resident_pages(uintptr_t start, size_t n, uintptr_t page, unsigned char *vec)
{
	uint64_t count = 0;

	if (mincore((void *)start, n * page, vec) == 0) {
		for (size_t i = 0; i < n; i++)
			count += vec[i] & 1;
		return count;
	}
	if (n == 1)
		return 0;
	return resident_pages(start, n / 2, page, vec) +
	       resident_pages(start + n / 2 * page, n - n / 2, page, vec);
}

uint64_t
sysinfo_resident(const void *addr, size_t len)
{
	unsigned char vec[MINCORE_PAGES];
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)addr & ~(page - 1), end = (uintptr_t)addr + len;
	uint64_t pages = 0;
	size_t n, k;

	if (len == 0 || end < start)
		return 0;
	/* Round the end up to a page, stopping short of wrapping past the top. */
	end = end > UINTPTR_MAX - (page - 1) ? UINTPTR_MAX & ~(page - 1)
					     : (end + page - 1) & ~(page - 1);
	n = (end - start) / page;
	for (size_t done = 0; done < n; done += k) {
		k = MIN(n - done, (size_t)MINCORE_PAGES);
		pages += resident_pages(start + done * page, k, page, vec);
	}
	return MIN(sat_mul(pages, page), (uint64_t)len);
}

/* Shown value of b in unit u (1024^u), rounded the way it will print. */
static double
shown(uint64_t b, int u)
{
	double v = ldexp((double)b, -10 * u);

	if (u == 0 || v >= 99.95)
		return round(v);
	return round(v * 10.0) / 10.0;
}

/* The smallest unit that keeps the printed number under 1000. */
static int
pick_unit(uint64_t b)
{
	int u = 0;

	while (u < 6 && shown(b, u) >= 1000.0)
		u++;
	return u;
}

static char *
format_in(uint64_t b, int u, char *buf, size_t n)
{
	static const char units[] = "BKMGTPE";
	double v = ldexp((double)b, -10 * u);

	if (u == 0)
		snprintf(buf, n, "%lluB", (unsigned long long)b);
	else if (v < 99.95)
		snprintf(buf, n, "%.1f%c", v, units[u]);
	else
		snprintf(buf, n, "%.0f%c", v, units[u]);
	return buf;
}

char *
sysinfo_bytes(uint64_t b, char *buf, size_t n)
{
	return format_in(b, pick_unit(b), buf, n);
}

char *
sysinfo_bytes_as(uint64_t b, uint64_t ref, char *buf, size_t n)
{
	return format_in(b, pick_unit(ref), buf, n);
}

static int
read_int_file(const char *path, int fallback)
{
	FILE *f = fopen(path, "r");
	int v = fallback;

	if (f == NULL)
		return fallback;
	if (fscanf(f, "%d", &v) != 1)
		v = fallback;
	fclose(f);
	return v;
}

int
sysinfo_cores(int *n_cpus)
{
	cpu_set_t set;
	int pkg[1024], core[1024], n = 0, logical = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0) {
		if (n_cpus != NULL)
			*n_cpus = 1;
		return 1;
	}
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		char path[128];
		int p, c, dup = 0;

		if (!CPU_ISSET(cpu, &set))
			continue;
		logical++;
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
		c = read_int_file(path, cpu);
		snprintf(path, sizeof(path),
			 "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
		p = read_int_file(path, 0);
		for (int i = 0; i < n && !dup; i++)
			dup = pkg[i] == p && core[i] == c;
		if (!dup && n < (int)ARRAY_LEN(pkg)) {
			pkg[n] = p;
			core[n] = c;
			n++;
		}
	}
	if (n_cpus != NULL)
		*n_cpus = MAX(logical, 1);
	return MAX(n, 1);
}
