/*
 * benchhw.c - `qnext bench-hw`: the machine figures decode speed depends on.
 *
 * In order: the memory measurement (a 1 GiB buffer written once, then read
 * by a worker pool with the kernels' dot product, median of 5 passes: one
 * sequential stream per worker, which is how the GEMVs read weights), the disk
 * measurement (O_DIRECT sequential reads into an aligned buffer, so the page
 * cache neither helps nor hides the device; a posix_fadvise fallback where
 * O_DIRECT is refused), the Markdown form, and the command itself.  The CPU
 * probe and hw.json are hwinfo.c's.
 *
 * CLI main thread; the measurement's worker pool lives only inside
 * benchhw_stream_read().
 */
#include "benchhw.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "kernels.h"
#include "model.h"
#include "plan.h"
#include "pool.h"
#include "safetensors.h"
#include "subcmd.h"
#include "sysinfo.h"
#include "util.h"

#define DISK_CHUNK     ((size_t)16 << 20)  /* bytes per read(): big enough to keep a device busy */
#define DISK_ALIGN     4096                /* O_DIRECT buffer, offset and size alignment */
#define TMP_FILE_BYTES ((uint64_t)1 << 30) /* the file written when there is no model */

/* ---- memory streaming read ----------------------------------------------- */

struct stream_job {
	const float *buf;
	size_t n;
	int n_threads; /* chunks: one stream each */
	const struct kernels *k;
	float sink[256]; /* keeps the sums alive so the reads are not optimized away */
};

/* Chunk i of n_threads: one sequential stream, normally one per worker. */
static void
stream_chunk(void *arg, int i, int worker)
{
	struct stream_job *j = arg;
	size_t per = j->n / (size_t)j->n_threads, b = per * (size_t)i;
	float acc = 0;

	/* dot(x, x) reads each element once. */
	for (size_t at = b; at < b + per; at += 1 << 20)
		acc += j->k->dot(j->buf + at, j->buf + at, (int)MIN((size_t)1 << 20, b + per - at));
	j->sink[i % 256] = acc;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
benchhw_stream_read(size_t bytes, int n_threads, int reps)
{
	size_t n = bytes / sizeof(float);
	struct stream_job j = { 0 };
	struct pool *p;
	float *buf;
	double v[16];

	reps = MAX(1, MIN(reps, 16));
	if (n == 0 || n_threads < 1)
		return 0;
	p = pool_new(n_threads, NULL);
	buf = malloc(n * sizeof(float));
	if (buf == NULL || p == NULL) {
		free(buf);
		pool_free(p);
		return 0;
	}
	/* Written once so every page is backed before the clock starts. */
	for (size_t i = 0; i < n; i++)
		buf[i] = (float)(i & 7) * 0.125f;
	j.buf = buf;
	j.n = n;
	j.n_threads = n_threads;
	j.k = kernels_get();
	for (int r = 0; r < reps; r++) {
		double t = now_sec();

		pool_run(p, stream_chunk, &j, n_threads);
		v[r] = (double)(n / (size_t)n_threads * (size_t)n_threads) * sizeof(float) /
		       (now_sec() - t) / 1e9;
	}
	pool_free(p);
	free(buf);
	qsort(v, (size_t)reps, sizeof(double), cmp_double);
	return reps % 2 ? v[reps / 2] : 0.5 * (v[reps / 2 - 1] + v[reps / 2]);
}

/* ---- disk sequential read ------------------------------------------------ */

/*
 * Read fd from offset 0 into buf (DISK_CHUNK bytes, aligned) until EOF,
 * max_bytes, or the time limit.  Sizes are rounded up to DISK_ALIGN so the
 * same loop serves O_DIRECT.  0, or -1 with errno.
 */
static int
read_seq(int fd, void *buf, uint64_t max_bytes, uint64_t *got, double *sec)
{
	uint64_t n = 0;
	double t0 = now_sec();

	while (n < max_bytes) {
		size_t want = (size_t)MIN((uint64_t)DISK_CHUNK, max_bytes - n);
		ssize_t r;

		want = (want + DISK_ALIGN - 1) / DISK_ALIGN * DISK_ALIGN;
		r = pread(fd, buf, want, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (uint64_t)r;
		if ((size_t)r < want)
			break; /* end of file */
		if (n >= BENCHHW_DISK_MIN && now_sec() - t0 >= BENCHHW_DISK_SEC)
			break;
	}
	*sec = now_sec() - t0;
	*got = n;
	return 0;
}

/* Fraction of the first len bytes of fd that sit in the page cache. */
static double
cached_fraction(int fd, uint64_t len)
{
	void *p;
	double f;

	if (len == 0 || (p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
		return 0;
	f = (double)sysinfo_resident(p, (size_t)len) / (double)len;
	munmap(p, (size_t)len);
	return f;
}

int
benchhw_disk_read(const char *path, uint64_t max_bytes, struct hwinfo_disk *d, char **cause)
{
	struct stat st;
	void *buf = NULL;
	uint64_t got = 0;
	double sec = 0;
	int fd, err, rc = -1;

	memset(d, 0, sizeof(*d));
	snprintf(d->path, sizeof(d->path), "%s", path);
	if (posix_memalign(&buf, DISK_ALIGN, DISK_CHUNK) != 0)
		return cause_set(cause, "out of memory for a %zu-byte read buffer", DISK_CHUNK);
	d->direct = true;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT)) >= 0) {
		if (read_seq(fd, buf, max_bytes, &got, &sec) == 0)
			goto done;
		err = errno;
		close(fd);
		fd = -1;
	} else {
		err = errno;
	}
	/* EINVAL, at open or at the first read, is the file system refusing O_DIRECT. */
	if (err != EINVAL) {
		cause_set(cause, "%s: %s", path, strerror(err));
		goto out;
	}
	/* Drop the file's clean cached pages instead, and say how many were still
	 * resident, since those make the figure optimistic. */
	d->direct = false;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		cause_set(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		d->cached_before = cached_fraction(fd, MIN((uint64_t)st.st_size, max_bytes));
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (read_seq(fd, buf, max_bytes, &got, &sec) != 0) {
		cause_set(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
done:
	if (got == 0) {
		cause_set(cause, "%s: empty file", path);
		goto out;
	}
	d->bytes = got;
	d->gbs = sec > 0 ? (double)got / sec / 1e9 : 0;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* Write `bytes` of incompressible data to a new file at path, synced.  0, or -1 with *cause. */
static int
write_tmp_file(const char *path, uint64_t bytes, char **cause)
{
	uint32_t *buf = malloc(DISK_CHUNK), x = 2463534242u;
	int fd, rc = -1;

	if (buf == NULL)
		return cause_set(cause, "out of memory for a %zu-byte write buffer", DISK_CHUNK);
	for (size_t i = 0; i < DISK_CHUNK / 4; i++) {
		x ^= x << 13, x ^= x >> 17,
			x ^= x << 5; /* xorshift: defeats compressing file systems */
		buf[i] = x;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		cause_set(cause, "%s: %s", path, strerror(errno));
		free(buf);
		return -1;
	}
	for (uint64_t n = 0; n < bytes;) {
		ssize_t w = write(fd, buf, (size_t)MIN((uint64_t)DISK_CHUNK, bytes - n));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			cause_set(cause, "%s: %s", path, w < 0 ? strerror(errno) : "short write");
			goto out;
		}
		n += (uint64_t)w;
	}
	if (fsync(fd) != 0) {
		cause_set(cause, "%s: fsync: %s", path, strerror(errno));
		goto out;
	}
	/* Written pages stay cached; drop them so the fallback path measures the disk. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	rc = 0;
out:
	close(fd);
	free(buf);
	if (rc != 0)
		unlink(path);
	return rc;
}

/* ---- output ---------------------------------------------------------------- */

static void
speed_cell(char *buf, size_t n, double v)
{
	if (v <= 0)
		snprintf(buf, n, "–");
	else
		snprintf(buf, n, "%.1f", v);
}

char *
benchhw_markdown(const struct hwinfo *r, double predicted, double measured)
{
	char name[HWINFO_NAME_LEN], pred[32], meas[32];

	/* A '|' in the CPU name would split the cell. */
	snprintf(name, sizeof(name), "%s", r->cpu.name);
	for (char *p = name; *p != '\0'; p++)
		if (*p == '|')
			*p = '/';
	speed_cell(pred, sizeof(pred), predicted);
	speed_cell(meas, sizeof(meas), measured);
	return xasprintf("| %s (%d cores, %s) | %.0f GiB | %.1f / %.1f | %s | %s |", name,
			 r->cpu.n_cores, r->cpu.kernels[0] != '\0' ? r->cpu.kernels : "?",
			 (double)r->mem_total / (1 << 30), r->read_1t, r->read_all, pred, meas);
}

/* ---- the command ------------------------------------------------------------ */

struct hwopts {
	const char *model;
	bool json, markdown;
	int threads;
	double measured;
};

#define MAX_NOTES 8

struct hwrun {
	struct hwinfo r;
	char *notes[MAX_NOTES]; /* malloc'd, printed after the figures */
	int n_notes;
	struct model *m;
	struct plan_model pm;
	struct plan_machine mc;
	struct plan_result pr;
	bool have_plan;
	char *saved; /* hw.json path when saved */
};

static void
note(struct hwrun *h, char *text)
{
	if (h->n_notes < MAX_NOTES)
		h->notes[h->n_notes++] = text;
	else
		free(text);
}

static void
progress(const char *what)
{
	/* Only for a person watching: the measurements take several seconds. */
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "bench-hw: %s...\n", what);
}

/* The model's largest shard (the longest sequential read available); NULL when none. */
static const char *
largest_shard(const struct model *m)
{
	const char *best = NULL;
	off_t best_size = -1;
	struct stat st;

	for (int i = 0; i < st_shard_count(m->st); i++) {
		const char *p = st_shard_path(m->st, i);

		if (stat(p, &st) == 0 && st.st_size > best_size) {
			best = p;
			best_size = st.st_size;
		}
	}
	return best;
}

static void
measure_disk(struct hwrun *h, const struct hwopts *o)
{
	char *cause = NULL, *dir = NULL, *tmp = NULL;
	struct statvfs vfs;

	if (h->m != NULL) {
		const char *p = largest_shard(h->m);

		if (p == NULL) {
			note(h, xasprintf("disk not measured: no shard file to read"));
			return;
		}
		progress("disk read (largest shard, O_DIRECT)");
		if (benchhw_disk_read(p, BENCHHW_DISK_MAX, &h->r.disk, &cause) != 0)
			goto fail;
	} else {
		/* No model: write a scratch file where the cache lives, which is
		 * normally the disk the home directory (and the HF cache) is on. */
		if ((dir = hwinfo_cache_dir_made(&cause)) == NULL)
			goto fail;
		if (statvfs(dir, &vfs) == 0 &&
		    (uint64_t)vfs.f_bavail * vfs.f_frsize < 2 * TMP_FILE_BYTES) {
			note(h, xasprintf("disk not measured: less than %.1f GB free in %s",
					  2 * (double)TMP_FILE_BYTES / 1e9, dir));
			goto out;
		}
		tmp = xasprintf("%s/bench-hw.%ld.tmp", dir, (long)getpid());
		progress("disk read (writing a 1 GiB scratch file first)");
		if (write_tmp_file(tmp, TMP_FILE_BYTES, &cause) != 0)
			goto fail;
		progress("disk read (O_DIRECT)");
		if (benchhw_disk_read(tmp, TMP_FILE_BYTES, &h->r.disk, &cause) != 0) {
			unlink(tmp);
			goto fail;
		}
		unlink(tmp);
		/* The file is gone: name its directory instead. */
		snprintf(h->r.disk.path, sizeof(h->r.disk.path), "%s", dir);
	}
	if (!h->r.disk.direct)
		note(h, xasprintf("O_DIRECT was refused on %s; read after "
				  "posix_fadvise(DONTNEED), %.0f%% still cached",
				  h->r.disk.path, 100 * h->r.disk.cached_before));
	if (h->r.disk.bytes < BENCHHW_DISK_MIN)
		note(h, xasprintf("disk read of only %.1f MB (the whole file): a small read "
				  "understates the device's speed",
				  (double)h->r.disk.bytes / 1e6));
	goto out;
fail:
	note(h, xasprintf("disk not measured: %s", cause != NULL ? cause : "no cache directory"));
out:
	free(cause);
	free(tmp);
	free(dir);
}

static int
measure(struct hwrun *h, const struct hwopts *o, char **cause)
{
	struct sysinfo_mem mem;
	int threads;

	hwinfo_cpu(&h->r.cpu);
	if (sysinfo_mem(&mem) == 0) {
		h->r.mem_total = mem.total;
		h->r.swap_total = mem.swap_total;
	}
	threads = o->threads > 0 ? o->threads : h->r.cpu.n_cores;
	if (o->model != NULL && (h->m = model_open(o->model, cause)) == NULL)
		return -1;
	progress("memory read, 1 thread");
	h->r.read_1t = benchhw_stream_read(BENCHHW_STREAM_BYTES, 1, BENCHHW_STREAM_REPS);
	if (threads > 1) {
		char what[64];

		snprintf(what, sizeof(what), "memory read, %d threads", threads);
		progress(what);
		h->r.read_all =
			benchhw_stream_read(BENCHHW_STREAM_BYTES, threads, BENCHHW_STREAM_REPS);
	} else {
		h->r.read_all = h->r.read_1t;
	}
	h->r.n_threads = threads;
	if (h->r.read_1t <= 0 || h->r.read_all <= 0)
		return cause_set(cause, "out of memory for the %zu MiB read buffer",
				 BENCHHW_STREAM_BYTES >> 20);
	measure_disk(h, o);
	h->r.when = (int64_t)time(NULL);
	return 0;
}

/*
 * A disk figure from a small file (a test model's shard) mostly measures
 * latency; do not let it replace a remembered one read from at least
 * BENCHHW_DISK_MIN bytes.
 */
static void
keep_disk(struct hwrun *h)
{
	struct hwinfo old;
	char a[32], b[32];

	if (h->r.disk.bytes >= BENCHHW_DISK_MIN || hwinfo_load(&old, NULL) != 0 ||
	    old.disk.bytes < BENCHHW_DISK_MIN || !(old.disk.gbs > 0))
		return;
	note(h, xasprintf("kept the remembered disk figure (%.2f GB/s, %s of %s): this run read "
			  "only %s of %s",
			  old.disk.gbs, plan_bytes(old.disk.bytes, a, sizeof(a)), old.disk.path,
			  plan_bytes(h->r.disk.bytes, b, sizeof(b)), h->r.disk.path));
	h->r.disk = old.disk;
}

static void
predict(struct hwrun *h, char **cause)
{
	if (h->m == NULL)
		return;
	if (plan_model_init(&h->pm, h->m, PLAN_DEFAULT_CTX, h->r.n_threads, cause) != 0) {
		note(h, xasprintf("no prediction: %s", *cause));
		return;
	}
	plan_machine_probe(h->m->dir, &h->mc);
	plan_machine_from_hw(&h->mc, &h->r);
	plan_compute(&h->pm, &h->mc, &h->pr);
	h->have_plan = true;
}

/* The speed a README table should quote: in RAM, else disk-bound. */
static double
predicted(const struct hwrun *h)
{
	if (!h->have_plan)
		return 0;
	return h->pr.fit == PLAN_FITS ? h->pr.tok_s : h->pr.tok_s_disk;
}

static void
print_json(const struct hwrun *h, const struct hwopts *o)
{
	char *s = hwinfo_json(&h->r);
	/* The hw.json object, with the notes and the prediction added. */
	json_t *j = json_loads(s, 0, NULL), *notes = json_array();

	free(s);
	if (j == NULL)
		fatal("bench-hw: hwinfo_json gave no JSON object");
	for (int i = 0; i < h->n_notes; i++)
		json_array_append_new(notes, json_string(h->notes[i]));
	json_object_set_new(j, "notes", notes);
	json_object_set_new(j, "saved", h->saved != NULL ? json_string(h->saved) : json_null());
	if (h->have_plan) {
		const struct plan_result *p = &h->pr;

		json_object_set_new(
			j, "model",
			json_pack("{s:s, s:I, s:I, s:s, s:f, s:o}", "dir", o->model, "decode_bytes",
				  (json_int_t)h->pm.decode_bytes, "mapped_bytes",
				  (json_int_t)h->pm.mapped_bytes, "fit",
				  p->fit == PLAN_FITS        ? "fits"
				  : p->fit == PLAN_FITS_BUSY ? "busy"
							     : "no",
				  "predicted_tok_s", p->tok_s, "disk_bound_tok_s",
				  p->fit == PLAN_FITS ? json_null() : json_real(p->tok_s_disk)));
	}
	if (o->measured > 0)
		json_object_set_new(j, "measured_tok_s", json_real(o->measured));
	s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("%s\n", s);
	free(s);
	json_decref(j);
}

static void
print_text(const struct hwrun *h, const struct hwopts *o)
{
	const struct hwinfo *r = &h->r;
	char a[32], b[32];

	printf("CPU          %s; %s; kernels %s\n", r->cpu.name,
	       r->cpu.features[0] != '\0' ? r->cpu.features : "no AVX2", r->cpu.kernels);
	printf("cores        %d physical, %d logical\n", r->cpu.n_cores, r->cpu.n_cpus);
	printf("RAM          %.1f GB (%.1f GiB); swap ", (double)r->mem_total / 1e9,
	       (double)r->mem_total / (1 << 30));
	if (r->swap_total > 0)
		printf("%.1f GB\n", (double)r->swap_total / 1e9);
	else
		printf("none\n");
	printf("memory read  %.2f GB/s on 1 thread, %.2f GB/s on %d thread%s "
	       "(median of %d passes over %zu MiB)\n",
	       r->read_1t, r->read_all, r->n_threads, r->n_threads == 1 ? "" : "s",
	       BENCHHW_STREAM_REPS, BENCHHW_STREAM_BYTES >> 20);
	if (r->disk.gbs > 0)
		printf("disk read    %.2f GB/s sequential, %s, %s of %s\n", r->disk.gbs,
		       r->disk.direct ? "O_DIRECT" : "page cache dropped",
		       plan_bytes(r->disk.bytes, a, sizeof(a)), r->disk.path);
	else
		printf("disk read    not measured\n");
	if (h->have_plan) {
		const struct plan_result *p = &h->pr;

		printf("model        %s: %s mapped, %s of weights read per token\n", o->model,
		       plan_bytes(h->pm.mapped_bytes, a, sizeof(a)),
		       plan_bytes(h->pm.decode_bytes, b, sizeof(b)));
		printf("predicted    %.1f tok/s decode ceiling (%.2f GB/s / %s per token)\n",
		       p->tok_s, r->read_all, b);
		if (p->fit != PLAN_FITS)
			printf("disk-bound   %.1f tok/s: the model needs %s, %s; %s per token from "
			       "disk at %.2f GB/s (see qnext plan)\n",
			       p->tok_s_disk, plan_bytes(p->need_bytes, a, sizeof(a)),
			       p->fit == PLAN_NO_FIT ? "more than the RAM"
						     : "more than is available now",
			       plan_bytes(p->miss_bytes, b, sizeof(b)), p->disk_gbs);
	}
	if (o->measured > 0)
		printf("measured     %.2f tok/s (given)\n", o->measured);
	for (int i = 0; i < h->n_notes; i++)
		printf("note: %s\n", h->notes[i]);
	if (h->saved != NULL)
		printf("saved        %s\n", h->saved);
}

static void
usage(FILE *f)
{
	subcmd_usage(f, "bench-hw");
}

int
benchhw_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'J' },
		{ "markdown", no_argument, NULL, 'M' },
		{ "threads", required_argument, NULL, 'j' },
		{ "measured", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct hwopts o = { 0 };
	struct hwrun h = { 0 };
	char *cause = NULL, *end;
	int ch, rc = 1;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "m:j:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			o.model = optarg;
			break;
		case 'J':
			o.json = true;
			break;
		case 'M':
			o.markdown = true;
			break;
		case 'j':
			o.threads = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || o.threads < 1 || o.threads > 1024) {
				usage(stderr);
				return 2;
			}
			break;
		case 'x':
			o.measured = strtod(optarg, &end);
			if (*end != '\0' || !(o.measured > 0)) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (o.json && o.markdown)) {
		usage(stderr);
		return 2;
	}
	if (measure(&h, &o, &cause) != 0)
		goto out;
	keep_disk(&h);
	if (hwinfo_save(&h.r, &cause) == 0)
		h.saved = hwinfo_cache_path();
	else
		note(&h, xasprintf("results not saved: %s", cause));
	free(cause);
	cause = NULL;
	predict(&h, &cause);
	free(cause);
	cause = NULL;
	if (o.json) {
		print_json(&h, &o);
	} else if (o.markdown) {
		char *row = benchhw_markdown(&h.r, predicted(&h), o.measured);

		printf("%s\n", row);
		free(row);
		for (int i = 0; i < h.n_notes; i++)
			fprintf(stderr, "qnext bench-hw: %s\n", h.notes[i]);
	} else {
		print_text(&h, &o);
	}
	rc = 0;
out:
	if (cause != NULL)
		fprintf(stderr, "qnext bench-hw: %s\n", cause);
	free(cause);
	for (int i = 0; i < h.n_notes; i++)
		free(h.notes[i]);
	free(h.saved);
	model_close(h.m);
	return rc;
}
