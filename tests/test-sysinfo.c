/*
 * test-sysinfo.c - the /proc parsers on fixed samples and on bad input, the
 * real /proc, the fault-rate smoothing, mincore() residency of a half-touched
 * mapping, and size formatting.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "sysinfo.h"
#include "t.h"
#include "util.h"

#define KB 1024ull
#define MB (1024ull * KB)
#define GB (1024ull * MB)

static const char meminfo_sample[] = "MemTotal:       65755400 kB\n"
				     "MemFree:         1203804 kB\n"
				     "MemAvailable:   20515320 kB\n"
				     "Buffers:            2344 kB\n"
				     "Cached:         43101240 kB\n"
				     "SwapCached:        12345 kB\n"
				     "Active(anon):       1608 kB\n"
				     "SwapTotal:       8388604 kB\n"
				     "SwapFree:        8080000 kB\n"
				     "HugePages_Total:       0\n"
				     "Hugepagesize:       2048 kB\n";

static const char status_sample[] = "Name:\tqnext\n"
				    "Umask:\t0022\n"
				    "State:\tR (running)\n"
				    "VmPeak:\t48001232 kB\n"
				    "VmSize:\t48001232 kB\n"
				    "VmHWM:\t42000000 kB\n"
				    "VmRSS:\t41234567 kB\n"
				    "VmSwap:\t  314572 kB\n"
				    "Threads:\t17\n";

static void
test_meminfo(void)
{
	struct sysinfo_mem m;

	sysinfo_parse_meminfo(meminfo_sample, &m);
	T_EQ_INT(m.total, 65755400 * KB);
	T_EQ_INT(m.available, 20515320 * KB);
	T_EQ_INT(m.cached, 43101240 * KB); /* not SwapCached */
	T_EQ_INT(m.swap_total, 8388604 * KB);
	T_EQ_INT(m.swap_free, 8080000 * KB);

	/* Missing and malformed fields read as 0; nothing crashes. */
	sysinfo_parse_meminfo("", &m);
	T_EQ_INT(m.total, 0);
	sysinfo_parse_meminfo("MemTotal:", &m);
	T_EQ_INT(m.total, 0);
	sysinfo_parse_meminfo("MemTotal: lots kB\nMemAvailable: -5 kB\nCached 7 kB\n:\n::\n", &m);
	T_EQ_INT(m.total, 0);
	T_EQ_INT(m.available, 0);
	T_EQ_INT(m.cached, 0);
	sysinfo_parse_meminfo("MemTotal: 99999999999999999999999 kB", &m); /* no newline either */
	T_EQ_INT(m.total == UINT64_MAX, 1);
	sysinfo_parse_meminfo(" MemTotal: 5 kB\nXMemTotal: 6 kB\nMemTotal : 7 kB\nSwapFree:3", &m);
	T_EQ_INT(m.total, 0); /* keys match at a line start and exactly */
	T_EQ_INT(m.swap_free, 3);
	sysinfo_parse_meminfo("MemTotal:\t12 kB\r\nCached: 4 MB\n", &m);
	T_EQ_INT(m.total, 12 * KB);
	T_EQ_INT(m.cached, 4); /* an unknown unit is taken as is */
}

static void
test_status(void)
{
	struct sysinfo_proc p = { .majflt = 77 };

	sysinfo_parse_status(status_sample, &p);
	T_EQ_INT(p.rss, 41234567 * KB);
	T_EQ_INT(p.swap, 314572 * KB);
	T_EQ_INT(p.majflt, 77);
	sysinfo_parse_status("Name:\tx\nVmSwap:\n", &p);
	T_EQ_INT(p.rss, 0);
	T_EQ_INT(p.swap, 0);

	T_EQ_INT(sysinfo_parse_statm("11718555 10308641 5 6 0 7 0\n", 4096), 10308641ull * 4096);
	T_EQ_INT(sysinfo_parse_statm("765 404 376 5 0 123 0", 16384), 404ull * 16384);
	T_EQ_INT(sysinfo_parse_statm("", 4096), 0);
	T_EQ_INT(sysinfo_parse_statm("765", 4096), 0);
	T_EQ_INT(sysinfo_parse_statm("765 x", 4096), 0);
}

static void
test_real_proc(void)
{
	struct sysinfo_mem m;
	struct sysinfo_proc p;

	T_EQ_INT(sysinfo_mem(&m), 0);
	T_ASSERT(m.total > m.available);
	T_ASSERT(m.available > 0);
	T_ASSERT(m.swap_free <= m.swap_total);
	T_EQ_INT(sysinfo_proc(&p), 0);
	T_ASSERT(p.rss > 0);
	T_ASSERT(p.rss < m.total);
}

static void
test_rate(void)
{
	struct sysinfo_rate r = { 0 };
	double t = 100.0, rate = 0.0;
	uint64_t f = 5000;

	T_NEAR(sysinfo_majflt_rate(&r, f, t), 0.0, 0.0);
	/* A steady 200 faults/s sampled at 2 Hz converges on 200. */
	for (int i = 0; i < 40; i++) {
		t += 0.5;
		f += 100;
		rate = sysinfo_majflt_rate(&r, f, t);
	}
	T_NEAR(rate, 200.0, 0.5);
	T_NEAR(sysinfo_majflt_rate(&r, f, t), rate, 0.0); /* no time passed: unchanged */
	/* Faults stop: the rate decays, about 1/e after one time constant. */
	t += SYSINFO_RATE_TAU;
	rate = sysinfo_majflt_rate(&r, f, t);
	T_NEAR(rate, 200.0 / exp(1.0), 0.5);
	/* Smoothing: one burst does not jump the gauge straight to the burst rate. */
	t += 0.5;
	f += 1000;
	rate = sysinfo_majflt_rate(&r, f, t);
	T_ASSERT(rate > 100.0 && rate < 2000.0);
	/* A counter going backwards starts over. */
	T_NEAR(sysinfo_majflt_rate(&r, 3, t + 1.0), 0.0, 0.0);
	T_NEAR(sysinfo_majflt_rate(&r, 13, t + 2.0), 10.0 * (1.0 - exp(-1.0 / SYSINFO_RATE_TAU)),
	       1e-9);
}

static void
test_resident(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 64 * MB;
	unsigned char *p;
	double frac;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_ASSERT(p != MAP_FAILED);
	if (p == MAP_FAILED)
		return;
	/* Huge pages would fault in 2 MB at a time and blur the half mark. */
	madvise(p, len, MADV_NOHUGEPAGE);
	T_EQ_INT(sysinfo_resident(p, len), 0);
	for (size_t i = 0; i < len / 2; i += page)
		p[i] = 1;
	frac = (double)sysinfo_resident(p, len) / (double)len;
	printf("resident after touching half of 64 MB: %.3f\n", frac);
	T_NEAR(frac, 0.5, 0.02);
	/* Unaligned start and length: whole pages, but never more than asked. */
	T_EQ_INT(sysinfo_resident(p + 1, 10), 10);
	T_EQ_INT(sysinfo_resident(p + page - 1, 2), 2);
	T_EQ_INT(sysinfo_resident(p + len / 2 + 5, page), 0);
	T_EQ_INT(sysinfo_resident(p, 0), 0);
	T_EQ_INT(sysinfo_resident(p + len / 2 - page, 2 * page), page);
	/* Holes in the range count as not resident; the rest is still counted. */
	munmap(p + len / 2, len / 2);
	T_EQ_INT(sysinfo_resident(p, len), len / 2);
	munmap(p + 3 * page, page);
	T_EQ_INT(sysinfo_resident(p, len), len / 2 - page);
	munmap(p, len / 2);
	T_EQ_INT(sysinfo_resident(p, len), 0);
}

/* A model-sized mapping: many chunks, all fast, nothing resident until touched. */
static void
test_resident_big(void)
{
	size_t len = 40 * GB, page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *p;
	double t0;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		 0);
	if (p == MAP_FAILED) {
		printf("40 GB mapping refused; big mincore case skipped\n");
		return;
	}
	madvise(p, len, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < 100; i++)
		p[i * 97 * MB + i * page] = 1; /* 100 pages spread over the first 9.5 GB */
	t0 = now_sec();
	T_EQ_INT(sysinfo_resident(p, len), 100 * page);
	printf("mincore over 40 GB: %.1f ms\n", (now_sec() - t0) * 1e3);
	munmap(p, len);
}

static void
test_bytes(void)
{
	static const struct {
		uint64_t b;
		const char *want;
	} cases[] = {
		{ 0, "0B" },
		{ 512, "512B" },
		{ 999, "999B" },
		{ 1000, "1.0K" },
		{ 3 * KB, "3.0K" },
		{ 812 * MB, "812M" },
		{ 812 * MB + 400 * KB, "812M" },
		{ 99 * MB + 900 * KB, "99.9M" },
		{ 99 * MB + 980 * KB, "100M" },  /* 99.96 would print as 100.0 */
		{ 999 * MB + 600 * KB, "1.0G" }, /* 999.6 would print as 1000 */
		{ (uint64_t)(41.2 * GB), "41.2G" },
		{ (uint64_t)(62.7 * GB), "62.7G" },
		{ 100 * GB, "100G" },
		{ 1024 * GB, "1.0T" },
		{ UINT64_MAX, "16.0E" },
	};
	char buf[16];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sysinfo_bytes(cases[i].b, buf, sizeof(buf));
		if (strcmp(buf, cases[i].want) != 0)
			fprintf(stderr, "sysinfo_bytes(%llu) = %s, want %s\n",
				(unsigned long long)cases[i].b, buf, cases[i].want);
		T_ASSERT(strcmp(buf, cases[i].want) == 0);
	}
	T_ASSERT(strcmp(sysinfo_bytes_as((uint64_t)(0.3 * GB), 8 * GB, buf, sizeof(buf)), "0.3G") ==
		 0);
	T_ASSERT(strcmp(sysinfo_bytes_as(8 * GB, 8 * GB, buf, sizeof(buf)), "8.0G") == 0);
	T_ASSERT(strcmp(sysinfo_bytes_as(0, 8 * GB, buf, sizeof(buf)), "0.0G") == 0);
	T_ASSERT(strcmp(sysinfo_bytes_as(300, 999, buf, sizeof(buf)), "300B") == 0);
	T_ASSERT(strcmp(sysinfo_bytes_as(300, 1000, buf, sizeof(buf)), "0.3K") == 0);
	T_ASSERT(strcmp(sysinfo_bytes(41 * GB, buf, 3), "41") == 0); /* cut short, terminated */
}

int
main(void)
{
	test_meminfo();
	test_status();
	test_real_proc();
	test_rate();
	test_resident();
	test_resident_big();
	test_bytes();
	{
		/* Physical cores never exceed the logical CPUs this process may use. */
		int n_cpus = 0, cores = sysinfo_cores(&n_cpus);

		T_ASSERT(cores >= 1 && n_cpus >= cores);
		T_EQ_INT(sysinfo_cores(NULL), cores);
		T_ASSERT(n_cpus <= sysconf(_SC_NPROCESSORS_ONLN));
	}
	return t_done("test-sysinfo");
}
