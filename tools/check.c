/*
 * check.c - `qnext check [-m DIR] [--write] [--threads N] [-q]` (see check.h).
 *
 * A run has four steps, and the file follows them in order:
 *  1. Gather the files: every *.safetensors and *.json in the directory, the
 *     shards the index names and the files the manifest lists.  Each gets its
 *     reference hashes: the blob name when it is a link into a Hugging Face
 *     cache (blobs/<sha256>: for LFS files the name is the content's SHA-256;
 *     small files kept in git have 40-hex git SHA-1 names, which are not
 *     compared: such a JSON file only has to parse) and the manifest's entry.
 *  2. Peek at every shard's header, so that a download cut short is reported
 *     as TRUNCATED with the size its header implies instead of as a hash
 *     mismatch, and is not hashed at all.
 *  3. Hash the rest with OpenSSL's SHA-256 on a few threads, one file per
 *     thread at a time, in name order (the shards are of a size, so nothing
 *     is gained by a cleverer order).  Each file is read front to back in
 *     8 MiB blocks: sequential read-ahead keeps a disk streaming, and memory
 *     stays at one block per thread whatever the size of the model.  The main
 *     thread reports the files in name order as they are done and draws the
 *     progress bar meanwhile.
 *  4. The structural checks (st_open_dir, then model_open), the manifest
 *     write (--write, only when nothing failed) and the summary.
 *
 * Results go to stdout, one line per file; progress goes to stderr.
 *
 * Thread affinity: check_main runs on the CLI main thread.  The hashing
 * threads touch only the struct hasher queue (under its mutex), its byte
 * counter (atomic) and the struct file each one took from the queue, which
 * the main thread reads only after the worker has handed it back.
 */
#include "check.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "model.h"
#include "paths.h"
#include "pool.h"
#include "safetensors.h"
#include "subcmd.h"
#include "util.h"

#define INDEX_NAME   "model.safetensors.index.json"
#define BLOCK_LEN    ((size_t)8 << 20)     /* bytes per read(2) */
#define PEEK_MAX     ((uint64_t)16 << 20)  /* larger headers are left to st_open_dir */
#define HEADER_MAX   ((uint64_t)100000000) /* safetensors' own limit on a header */
#define TICK_TTY     0.2                   /* seconds between redraws of the bar */
#define TICK_PLAIN   10.0                  /* seconds between progress lines otherwise */
#define NAME_COL_MAX 40                    /* the name column is at most this wide */
#define BAR_WIDTH    24

/* Why a file must exist. */
enum check_expect {
	EXPECT_INDEX = 1 << 0,    /* the index names it as a shard */
	EXPECT_MANIFEST = 1 << 1, /* the manifest lists it */
	EXPECT_LINK = 1 << 2,     /* a link with its name is in the directory */
};

/* One file to check. */
struct file {
	char *name;           /* plain file name inside the directory */
	char *path;           /* dir/name */
	int expect;           /* enum check_expect bits */
	bool present;         /* a regular file, after following links */
	uint64_t size;        /* bytes, when present */
	char blob[65];        /* cache blob name it links to, "" when none (64 hex: SHA-256) */
	char *blob_path;      /* that blob's path, for hints; NULL when not a cache link */
	char want[65];        /* the manifest's SHA-256 in lowercase hex, "" when not listed */
	uint64_t header_size; /* the size the safetensors header implies; 0 unknown */
	bool at_least;        /* header_size is a lower bound: the header itself is cut */
	/* Set by the hashing thread that took the file, read after it hands it back. */
	unsigned char md[32]; /* SHA-256 of the contents */
	bool hashed;          /* md is valid */
	char *err;            /* why it could not be read (malloc'd), or NULL */
};

struct check {
	/* Options. */
	const char *dir;
	bool write, quiet;
	int threads;
	/* The files, sorted by name once gathered. */
	struct file *files; /* [n_files] */
	int n_files, cap;
	int name_w;        /* width of the name column */
	char *manifest;    /* the manifest that was read, or NULL */
	bool bad_manifest; /* it could not be read or parsed */
	bool hf;           /* some file links into a Hugging Face cache */
	bool any_ref;      /* some file has a reference hash */
	char *repo;        /* repository the download hints name */
	bool tty;          /* stderr is a terminal: draw a bar */
	bool bar_shown;    /* the bar is on screen and must be erased before a line */
	bool structure_ok;
	/* Tallies for the summary. */
	int n_ok, n_bad, n_missing, n_trunc, n_err, n_noref, n_skip, n_unlisted;
	uint64_t hashed_bytes;
	double hash_sec;
};

/* ---- small helpers ------------------------------------------------------ */

static bool
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool
is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* A name that stays inside the directory: no slash, not "." or "..", no control characters. */
static bool
plain_name(const char *s)
{
	if (*s == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (; *s != '\0'; s++)
		if (*s == '/' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

static void
to_hex(const unsigned char *md, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[2 * n] = '\0';
}

/* "5.00 GB", "12.3 MB", "4.3 kB", "201 B": decimal units, as download sizes are quoted. */
static const char *
fmt_size(uint64_t n, char *buf, size_t len)
{
	if (n >= 1000000000)
		snprintf(buf, len, "%.2f GB", (double)n / 1e9);
	else if (n >= 1000000)
		snprintf(buf, len, "%.1f MB", (double)n / 1e6);
	else if (n >= 1000)
		snprintf(buf, len, "%.1f kB", (double)n / 1e3);
	else
		snprintf(buf, len, "%" PRIu64 " B", n);
	return buf;
}

static const char *
fmt_secs(double s, char *buf, size_t len)
{
	long t = (long)(s + 0.5);

	if (t >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
	return buf;
}

/* strerror for the hashing threads, where the shared buffer would race. */
static char *
errstr(int e, char *buf, size_t len)
{
	return strerror_r(e, buf, len);
}

static int
pread_full(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n, off += n, len -= (size_t)n;
	}
	return 0;
}

/* ---- output ------------------------------------------------------------- */

static void
bar_clear(struct check *c)
{
	if (c->bar_shown) {
		fputs("\r\033[K", stderr);
		c->bar_shown = false;
	}
}

/* One result line on stdout; the bar is erased first so the two never share a line. */
static void say(struct check *c, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
say(struct check *c, const char *fmt, ...)
{
	va_list ap;

	bar_clear(c);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* How to get a good copy of f back: the last clause of every failure line. */
static char *
download_hint(const struct check *c, const struct file *f, bool present)
{
	char *dl, *hint;

	if (c->hf)
		dl = xasprintf("hf download %s --include %s", c->repo, f->name);
	else
		dl = xasprintf("hf download %s --include %s --local-dir %s", c->repo, f->name,
			       c->dir);
	if (!present)
		hint = xasprintf("download it (%s)", dl);
	else if (f->blob_path != NULL)
		/* The cache would serve the bad blob again, so it has to go too. */
		hint = xasprintf("delete the blob it links to (%s) and download it again (%s)",
				 f->blob_path, dl);
	else
		hint = xasprintf("delete it and download it again (%s)", dl);
	free(dl);
	return hint;
}

/* ---- 1. gathering the files --------------------------------------------- */

static struct file *
file_get(struct check *c, const char *name)
{
	struct file *f;

	for (int i = 0; i < c->n_files; i++)
		if (strcmp(c->files[i].name, name) == 0)
			return &c->files[i];
	if (c->n_files == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 32;
		c->files = xrealloc(c->files, (size_t)c->cap * sizeof(*c->files));
	}
	f = &c->files[c->n_files++];
	memset(f, 0, sizeof(*f));
	f->name = xstrdup(name);
	f->path = xasprintf("%s/%s", c->dir, name);
	return f;
}

/* The model's own files: weights and JSON.  Anything else in the directory is not ours. */
static int
gather_dir(struct check *c, char **cause)
{
	DIR *d = opendir(c->dir);
	struct dirent *e;

	if (d == NULL)
		return cause_set(cause, "%s: %s", c->dir, strerror(errno));
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' &&
		    (has_suffix(e->d_name, ".safetensors") || has_suffix(e->d_name, ".json")))
			file_get(c, e->d_name);
	closedir(d);
	return 0;
}

/*
 * The shards the index names must all be there.  A broken index is left to
 * st_open_dir, which names the problem precisely.
 */
static void
gather_index(struct check *c)
{
	char *path = xasprintf("%s/%s", c->dir, INDEX_NAME);
	json_t *root = json_read_file(path, READ_MAX_BIG, NULL);
	json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
	const char *key;
	json_t *val;

	json_object_foreach(map, key, val)
	{
		if (json_is_string(val) && plain_name(json_string_value(val)))
			file_get(c, json_string_value(val))->expect |= EXPECT_INDEX;
	}
	json_decref(root);
	free(path);
}

/* $XDG_CACHE_HOME/qnext/manifests, or NULL when there is no home to put it in. */
static char *
cache_dir(void)
{
	char *dir = paths_xdg_dir("XDG_CACHE_HOME", ".cache"), *m;

	if (dir == NULL)
		return NULL;
	m = xasprintf("%s/manifests", dir);
	free(dir);
	return m;
}

/*
 * Where the manifest of a read-only directory lives: the directory's last
 * name (for people looking in the cache) and a hash of its absolute path
 * (so that two models called "snapshot" do not share one).
 */
static char *
manifest_cache_path(const char *dir)
{
	char *abs = realpath(dir, NULL), *cdir, *base, *path, hex[17];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	const char *slash;

	if (abs == NULL || (cdir = cache_dir()) == NULL) {
		free(abs);
		return NULL;
	}
	if (EVP_Digest(abs, strlen(abs), md, &md_len, EVP_sha256(), NULL) != 1) {
		free(cdir);
		free(abs);
		return NULL;
	}
	to_hex(md, 8, hex);
	slash = strrchr(abs, '/');
	base = xstrdup(slash != NULL && slash[1] != '\0' ? slash + 1 : "root");
	for (char *p = base; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
			*p = '_';
	if (strlen(base) > 64)
		base[64] = '\0';
	path = xasprintf("%s/%s-%s.txt", cdir, base, hex);
	free(base);
	free(cdir);
	free(abs);
	return path;
}

/* Read sha256sum lines ("<hex>  <name>" or "<hex> *<name>"); blank lines and # comments pass. */
static int
manifest_parse(struct check *c, const char *path, char **cause)
{
	size_t len;
	char *text = read_file(path, &len, cause), *line, *next;
	int lineno = 0, rc = 0;

	if (text == NULL)
		return -1;
	if (strlen(text) != len)
		rc = cause_set(cause, "%s: contains a NUL byte", path);
	for (line = text; rc == 0 && line != NULL && *line != '\0'; line = next) {
		struct file *f;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		lineno++;
		line[strcspn(line, "\r")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (strlen(line) < 67 || !is_hex(line, 64) || line[64] != ' ' ||
		    (line[65] != ' ' && line[65] != '*') || !plain_name(line + 66)) {
			rc = cause_set(cause, "%s:%d: not a '<sha256>  <file name>' line", path,
				       lineno);
			break;
		}
		f = file_get(c, line + 66);
		if (f->want[0] != '\0') {
			rc = cause_set(cause, "%s:%d: %s is listed twice", path, lineno, f->name);
			break;
		}
		for (int i = 0; i < 64; i++)
			f->want[i] = (char)tolower((unsigned char)line[i]);
		f->want[64] = '\0';
		f->expect |= EXPECT_MANIFEST;
	}
	free(text);
	return rc;
}

/* The directory's own manifest wins; a read-only directory's lives in the cache. */
static void
gather_manifest(struct check *c)
{
	char *path = xasprintf("%s/%s", c->dir, CHECK_MANIFEST_NAME), *cause = NULL;
	struct stat sb;

	if (stat(path, &sb) != 0) {
		free(path);
		if ((path = manifest_cache_path(c->dir)) == NULL || stat(path, &sb) != 0) {
			free(path);
			return;
		}
	}
	c->manifest = path;
	if (manifest_parse(c, path, &cause) != 0) {
		say(c, "BAD %s\n", cause);
		c->bad_manifest = true;
	}
	free(cause);
}

/* When f is a link into a Hugging Face cache (.../blobs/NAME), note NAME and the blob's path. */
static void
note_link(struct check *c, struct file *f)
{
	char target[4096], *last, *prev;
	struct stat sb;
	ssize_t n;

	if (lstat(f->path, &sb) != 0 || !S_ISLNK(sb.st_mode))
		return;
	f->expect |= EXPECT_LINK;
	if ((n = readlink(f->path, target, sizeof(target) - 1)) <= 0)
		return;
	target[n] = '\0';
	if ((last = strrchr(target, '/')) == NULL)
		return;
	*last++ = '\0';
	prev = strrchr(target, '/');
	prev = prev != NULL ? prev + 1 : target;
	if (strcmp(prev, "blobs") != 0 || (strlen(last) != 64 && strlen(last) != 40) ||
	    !is_hex(last, strlen(last)))
		return;
	snprintf(f->blob, sizeof(f->blob), "%s", last);
	for (char *p = f->blob; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if ((f->blob_path = realpath(f->path, NULL)) == NULL)
		f->blob_path = target[0] == '/' ? xasprintf("%s/%s", target, last)
						: xasprintf("%s/%s/%s", c->dir, target, last);
	c->hf = true;
}

static void
stat_file(struct check *c, struct file *f)
{
	char eb[128];
	struct stat sb;

	note_link(c, f);
	if (stat(f->path, &sb) != 0) {
		if (errno != ENOENT)
			f->err = xasprintf("%s", errstr(errno, eb, sizeof(eb)));
	} else if (!S_ISREG(sb.st_mode))
		f->err = xstrdup("not a regular file");
	else {
		f->present = true;
		f->size = (uint64_t)sb.st_size;
	}
	if (strlen(f->blob) == 64 || f->want[0] != '\0')
		c->any_ref = true;
}

static int
file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct file *)a)->name, ((const struct file *)b)->name);
}

/* The repository a cache directory holds (hub/models--OWNER--NAME/...), else the default. */
static char *
repo_name(const struct check *c)
{
	char *abs = realpath(c->dir, NULL), *p, *end, *sep, *repo = NULL;

	if (c->hf && abs != NULL && (p = strstr(abs, "/models--")) != NULL) {
		p += strlen("/models--");
		if ((end = strchr(p, '/')) != NULL)
			*end = '\0';
		if ((sep = strstr(p, "--")) != NULL && sep != p && sep[2] != '\0') {
			*sep = '\0';
			repo = xasprintf("%s/%s", p, sep + 2);
		}
	}
	free(abs);
	return repo != NULL ? repo : xstrdup(PATHS_HF_REPO);
}

static int
gather(struct check *c, char **cause)
{
	if (gather_dir(c, cause) != 0)
		return -1;
	gather_index(c);
	gather_manifest(c);
	for (int i = 0; i < c->n_files; i++)
		stat_file(c, &c->files[i]);
	qsort(c->files, (size_t)c->n_files, sizeof(*c->files), file_cmp);
	for (int i = 0; i < c->n_files; i++)
		c->name_w = MAX(c->name_w, (int)MIN(strlen(c->files[i].name), NAME_COL_MAX));
	c->repo = repo_name(c);
	return 0;
}

/* ---- 2. headers: truncated downloads ------------------------------------ */

/* The end of the data area the header describes; false when the header is not usable. */
static bool
data_end(json_t *root, uint64_t *end)
{
	const char *key;
	json_t *val;

	*end = 0;
	if (!json_is_object(root))
		return false;
	json_object_foreach(root, key, val)
	{
		json_t *off = json_object_get(val, "data_offsets");
		json_int_t e;

		if (strcmp(key, "__metadata__") == 0)
			continue;
		if (!json_is_array(off) || json_array_size(off) != 2 ||
		    !json_is_integer(json_array_get(off, 1)))
			return false;
		if ((e = json_integer_value(json_array_get(off, 1))) < 0)
			return false;
		*end = MAX(*end, (uint64_t)e);
	}
	return true;
}

/*
 * The size a safetensors file should have: 8 + header + data area.  When the
 * file is too short to hold even its header, the header's end is a lower
 * bound.  Anything odd is left for st_open_dir to describe.
 */
static void
peek_header(struct file *f)
{
	uint8_t len8[8];
	uint64_t hlen = 0, end;
	char *text;
	json_t *root;
	int fd;

	if (!f->present || !has_suffix(f->name, ".safetensors"))
		return;
	if (f->size < 8) {
		f->header_size = 8;
		f->at_least = true;
		return;
	}
	if ((fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return; /* the hashing step reports it */
	if (pread_full(fd, len8, 8, 0) != 0)
		goto out;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | len8[i];
	if (hlen > HEADER_MAX)
		goto out;
	if (hlen > f->size - 8) {
		f->header_size = 8 + hlen;
		f->at_least = true;
		goto out;
	}
	if (hlen > PEEK_MAX)
		goto out;
	text = xmalloc(hlen + 1);
	if (pread_full(fd, text, hlen, 8) == 0 &&
	    (root = json_loadb(text, hlen, 0, NULL)) != NULL) {
		if (data_end(root, &end))
			f->header_size = 8 + hlen + end;
		json_decref(root);
	}
	free(text);
out:
	close(fd);
}

static bool
truncated(const struct file *f)
{
	return f->present && f->header_size > f->size;
}

/* Files that cannot be hashed are reported before the hashing starts. */
static void
report_unhashable(struct check *c, struct file *f)
{
	char *hint;

	if (f->err != NULL) {
		say(c, "ERROR %s: %s\n", f->name, f->err);
		c->n_err++;
		return;
	}
	hint = download_hint(c, f, f->present);
	if (!f->present) {
		if (f->blob_path != NULL)
			say(c, "MISSING %s: it links to a blob that is not there (%s); %s\n",
			    f->name, f->blob_path, hint);
		else if (f->expect & EXPECT_INDEX)
			say(c, "MISSING %s: %s names it but it is not in the directory; %s\n",
			    f->name, INDEX_NAME, hint);
		else if (f->expect & EXPECT_MANIFEST)
			say(c, "MISSING %s: %s lists it but it is not in the directory; %s\n",
			    f->name, c->manifest, hint);
		else
			say(c, "MISSING %s: it is a link to nowhere; %s\n", f->name, hint);
		c->n_missing++;
	} else {
		say(c,
		    "TRUNCATED %s (size %" PRIu64 ", header says %s%" PRIu64
		    "): the download did not finish; %s\n",
		    f->name, f->size, f->at_least ? "at least " : "", f->header_size, hint);
		c->n_trunc++;
	}
	free(hint);
}

/* ---- 3. hashing --------------------------------------------------------- */

/* The work queue the hashing threads share with the main thread. */
struct hasher {
	struct file **queue; /* [n] in name order; each taken by exactly one thread */
	int n;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* signalled when a file is done */
	int next;               /* next queue index to take; under mu */
	bool *done;             /* [n] queue[i] is hashed (or failed); under mu */
	int n_done;             /* under mu */
	double t_end;           /* now_sec() when the last file was done; under mu */
	_Atomic uint64_t bytes; /* bytes hashed so far, all files: the progress bar's */
};

static void
hash_file(struct hasher *h, struct file *f, unsigned char *buf, EVP_MD_CTX *ctx)
{
	uint64_t got = 0;
	unsigned int md_len = 0;
	char eb[128];
	ssize_t n;
	int fd;

	if ((fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		f->err = xasprintf("cannot open it: %s", errstr(errno, eb, sizeof(eb)));
		return;
	}
	/* Larger read-ahead: the drive streams instead of seeking between threads' files. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		f->err = xstrdup("OpenSSL could not start a SHA-256");
		goto out;
	}
	while ((n = read(fd, buf, BLOCK_LEN)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			f->err = xasprintf("read error after %" PRIu64 " bytes: %s", got,
					   errstr(errno, eb, sizeof(eb)));
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			f->err = xstrdup("OpenSSL SHA-256 failed");
			goto out;
		}
		got += (uint64_t)n;
		atomic_fetch_add_explicit(&h->bytes, (uint64_t)n, memory_order_relaxed);
	}
	if (got != f->size)
		f->err = xasprintf("it changed while being read (%" PRIu64 " bytes, then %" PRIu64
				   ")",
				   f->size, got);
	else if (EVP_DigestFinal_ex(ctx, f->md, &md_len) != 1 || md_len != sizeof(f->md))
		f->err = xstrdup("OpenSSL SHA-256 failed");
	else
		f->hashed = true;
out:
	close(fd);
}

static void *
hash_worker(void *arg)
{
	struct hasher *h = arg;
	/*
	 * Page-aligned: the kernel copies into a misaligned buffer several times
	 * slower on some CPUs (measured on AMD Zen 3: 0.8 s of system time per
	 * 1.5 GB against 0.2 s).
	 */
	unsigned char *buf = aligned_alloc(4096, BLOCK_LEN);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (buf == NULL || ctx == NULL)
		fatal("out of memory for a hashing thread's buffers");
	for (;;) {
		int i;

		pthread_mutex_lock(&h->mu);
		i = h->next < h->n ? h->next++ : -1;
		pthread_mutex_unlock(&h->mu);
		if (i < 0)
			break;
		hash_file(h, h->queue[i], buf, ctx);
		pthread_mutex_lock(&h->mu);
		h->done[i] = true;
		if (++h->n_done == h->n)
			h->t_end = now_sec();
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
	}
	EVP_MD_CTX_free(ctx);
	free(buf);
	return NULL;
}

static void
progress(struct check *c, uint64_t done, uint64_t total, double t0)
{
	double el = now_sec() - t0, rate = el > 0 ? (double)done / el : 0;
	char a[32], b[32], eta[32] = "-";
	int fill = total > 0 ? (int)((double)done / (double)total * BAR_WIDTH) : 0;
	char bar[BAR_WIDTH + 1];

	if (rate > 0)
		fmt_secs((double)(total - done) / rate, eta, sizeof(eta));
	fmt_size(done, a, sizeof(a));
	fmt_size(total, b, sizeof(b));
	if (!c->tty) {
		fprintf(stderr, "qnext check: %s of %s hashed (%.0f%%), %.2f GB/s, %s left\n", a, b,
			total > 0 ? 100.0 * (double)done / (double)total : 100.0, rate / 1e9, eta);
		return;
	}
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[BAR_WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %s / %s  %.2f GB/s  ETA %s\033[K", bar, a, b, rate / 1e9, eta);
	fflush(stderr);
	c->bar_shown = true;
}

static void report_hashed(struct check *c, struct file *f);

/* Start the threads with every signal blocked, so Ctrl-C and friends go to the main thread. */
static int
start_threads(struct hasher *h, pthread_t *tids, int n)
{
	sigset_t all, old;
	int started = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (started < n && pthread_create(&tids[started], NULL, hash_worker, h) == 0)
		started++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started;
}

static void
abs_time(double t, struct timespec *ts)
{
	ts->tv_sec = (time_t)t;
	ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
}

/*
 * Main thread: report each file once it and all before it are done, so the
 * lines come out in name order; redraw the progress now and then.
 */
static void
hash_wait(struct check *c, struct hasher *h, uint64_t total, double t0)
{
	double tick = c->tty ? TICK_TTY : TICK_PLAIN, next_draw = t0 + tick;
	int reported = 0;
	struct timespec ts;

	pthread_mutex_lock(&h->mu);
	while (reported < h->n) {
		if (!h->done[reported]) {
			abs_time(c->quiet ? now_sec() + 3600 : next_draw, &ts);
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		}
		while (reported < h->n && h->done[reported]) {
			struct file *f = h->queue[reported++];

			pthread_mutex_unlock(&h->mu);
			report_hashed(c, f);
			pthread_mutex_lock(&h->mu);
		}
		if (!c->quiet && reported < h->n && now_sec() >= next_draw) {
			pthread_mutex_unlock(&h->mu);
			progress(c, atomic_load(&h->bytes), total, t0);
			next_draw = now_sec() + tick;
			pthread_mutex_lock(&h->mu);
		}
	}
	pthread_mutex_unlock(&h->mu);
}

static void
hash_all(struct check *c)
{
	struct hasher h = { .n = 0 };
	pthread_condattr_t ca;
	pthread_t *tids;
	uint64_t total = 0;
	int n_threads, started;
	double t0;

	h.queue = xcalloc((size_t)c->n_files + 1, sizeof(*h.queue));
	for (int i = 0; i < c->n_files; i++) {
		struct file *f = &c->files[i];

		if (f->present && f->err == NULL && !truncated(f)) {
			h.queue[h.n++] = f;
			total += f->size;
		}
	}
	if (h.n == 0) {
		free(h.queue);
		return;
	}
	h.done = xcalloc((size_t)h.n, sizeof(*h.done));
	atomic_init(&h.bytes, 0);
	pthread_mutex_init(&h.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* now_sec()'s clock */
	pthread_cond_init(&h.cv, &ca);
	pthread_condattr_destroy(&ca);
	n_threads = MAX(1, MIN(c->threads, h.n));
	tids = xcalloc((size_t)n_threads, sizeof(*tids));
	t0 = now_sec();
	if ((started = start_threads(&h, tids, n_threads)) == 0)
		hash_worker(&h); /* no thread to be had: hash here, report afterwards */
	hash_wait(c, &h, total, t0);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	/* Not now: the main thread may have spent a while reporting after the last file. */
	c->hash_sec = h.t_end - t0;
	c->hashed_bytes = atomic_load(&h.bytes);
	bar_clear(c);
	pthread_cond_destroy(&h.cv);
	pthread_mutex_destroy(&h.mu);
	free(tids);
	free(h.done);
	free(h.queue);
}

/* A JSON file that no hash vouches for must at least parse: NULL when it does, else why not. */
static char *
json_problem(const struct file *f)
{
	json_error_t err;
	json_t *j;
	char *text, *cause = NULL;
	size_t len;

	if (!has_suffix(f->name, ".json"))
		return NULL;
	/* Whole file, then json_loadb: json_load_file reads with getc, several times slower. */
	if ((text = read_file(f->path, &len, &cause)) == NULL)
		return cause;
	j = json_loadb(text, len, 0, &err);
	free(text);
	if (j != NULL) {
		json_decref(j);
		return NULL;
	}
	return xasprintf("not valid JSON (line %d, column %d: %s)", err.line, err.column, err.text);
}

/* Compare f's hash with its references and say what came out. */
static void
report_hashed(struct check *c, struct file *f)
{
	const char *expected = NULL, *source = NULL;
	char got[65], size[32], *hint, *problem = NULL;
	bool checked = false;

	if (!f->hashed) {
		say(c, "ERROR %s: %s\n", f->name, f->err);
		c->n_err++;
		return;
	}
	to_hex(f->md, sizeof(f->md), got);
	fmt_size(f->size, size, sizeof(size));
	if (strlen(f->blob) == 64) {
		checked = true;
		if (strcmp(got, f->blob) != 0)
			expected = f->blob, source = "the name of the cache blob";
	}
	if (expected == NULL && f->want[0] != '\0') {
		checked = true;
		if (strcmp(got, f->want) != 0)
			expected = f->want, source = c->manifest;
	}
	if (expected != NULL) {
		hint = download_hint(c, f, true);
		say(c,
		    "BAD %s: SHA-256 mismatch (expected %.12s... from %s, got %.12s...); the "
		    "file is corrupt: %s\n",
		    f->name, expected, source, got, hint);
		free(hint);
		c->n_bad++;
	} else if (checked) {
		if (!c->quiet)
			say(c, "ok  %-*s  %8s\n", c->name_w, f->name, size);
		c->n_ok++;
	} else if ((problem = json_problem(f)) != NULL) {
		hint = download_hint(c, f, true);
		say(c, "BAD %s: %s; the file is corrupt: %s\n", f->name, problem, hint);
		free(hint);
		free(problem);
		c->n_bad++;
	} else if (strlen(f->blob) == 40) {
		/* Small files kept in git: the cache names them by git's SHA-1, not SHA-256. */
		if (!c->quiet)
			say(c,
			    "--  %-*s  %8s  not hashed: stored in git, its blob name is not a "
			    "SHA-256; parsed only\n",
			    c->name_w, f->name, size);
		c->n_skip++;
	} else {
		if (!c->quiet)
			say(c, "??  %-*s  %8s  sha256 %s\n", c->name_w, f->name, size, got);
		c->n_noref++;
		if (c->manifest != NULL)
			c->n_unlisted++;
	}
}

/* ---- 4. structure, manifest, summary ------------------------------------ */

static void
check_structure(struct check *c)
{
	char *cause = NULL, *desc, size[32];
	struct st_set *st;
	struct model *m;

	c->structure_ok = false;
	if ((st = st_open_dir(c->dir, &cause)) == NULL) {
		say(c, "BAD structure: %s\n", cause);
		free(cause);
		return;
	}
	if (!c->quiet)
		say(c, "ok  structure: %d shards, %zu tensors, %s of tensor data\n",
		    st_shard_count(st), st_count(st),
		    fmt_size(st_total_bytes(st), size, sizeof(size)));
	st_close(st);
	if ((m = model_open(c->dir, &cause)) == NULL) {
		say(c, "BAD model: %s\n", cause);
		free(cause);
		return;
	}
	desc = model_describe(m);
	if (!c->quiet)
		say(c, "ok  model: %s\n", desc);
	if (model_warning(m) != NULL)
		say(c, "note: %s\n", model_warning(m));
	free(desc);
	model_close(m);
	c->structure_ok = true;
}

/* Write the lines to a temporary file in `dir` and rename it over `dir`/`name`. */
static int
manifest_put(const struct check *c, const char *dir, const char *name, int *n_lines, int *err,
	     char **cause)
{
	char *path = xasprintf("%s/%s", dir, name), *text = NULL;
	char hex[65];
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	int rc;

	if (fp == NULL)
		fatal("manifest_put: out of memory");
	*n_lines = 0;
	for (int i = 0; i < c->n_files; i++) {
		if (!c->files[i].hashed)
			continue;
		to_hex(c->files[i].md, sizeof(c->files[i].md), hex);
		fprintf(fp, "%s  %s\n", hex, c->files[i].name);
		++*n_lines;
	}
	if (fclose(fp) != 0)
		fatal("manifest_put: out of memory");
	rc = file_write_atomic(path, text, len, 0644, cause);
	*err = rc != 0 ? errno : 0;
	free(text);
	free(path);
	return rc;
}

/* Record the hashes in the directory, or in the cache when the directory is read-only. */
static int
manifest_write(struct check *c, char **where, int *n_lines, char **cause)
{
	char *cpath, *slash;
	int err;

	if (manifest_put(c, c->dir, CHECK_MANIFEST_NAME, n_lines, &err, cause) == 0) {
		*where = xasprintf("%s/%s", c->dir, CHECK_MANIFEST_NAME);
		return 0;
	}
	/* Only a directory we may not write to sends the manifest to the cache. */
	if (err != EACCES && err != EROFS && err != EPERM)
		return -1;
	if ((cpath = manifest_cache_path(c->dir)) == NULL)
		return cause_set(cause,
				 "%s is read-only and there is no cache directory "
				 "($XDG_CACHE_HOME or $HOME) to put the manifest in",
				 c->dir);
	slash = strrchr(cpath, '/');
	*slash = '\0';
	if (paths_mkdirs(cpath, 0755, cause) != 0) {
		free(cpath);
		return -1;
	}
	if (manifest_put(c, cpath, slash + 1, n_lines, &err, cause) != 0) {
		free(cpath);
		return -1;
	}
	*slash = '/';
	*where = cpath;
	return 0;
}

static bool
failed(const struct check *c)
{
	return c->n_bad + c->n_missing + c->n_trunc + c->n_err > 0 || c->bad_manifest ||
	       !c->structure_ok;
}

static void
write_or_advise(struct check *c)
{
	char *where = NULL, *cause = NULL;
	int n;

	if (c->write && failed(c)) {
		say(c,
		    "not recording hashes: a corrupt or incomplete checkpoint must not become "
		    "the reference; fix the problems above first%s\n",
		    c->n_bad > 0 && c->manifest != NULL
			    ? " (if a file changed on purpose, delete the manifest and run --write "
			      "again)"
			    : "");
	} else if (c->write) {
		if (manifest_write(c, &where, &n, &cause) != 0) {
			say(c, "ERROR cannot write the manifest: %s\n", cause);
			c->n_err++;
		} else
			say(c, "wrote %d hashes to %s\n", n, where);
	} else if (c->manifest == NULL && !c->any_ref && c->n_noref > 0 && !failed(c)) {
		say(c,
		    "note: nothing to compare against: %s has no %s and no links to Hugging "
		    "Face cache blobs named by SHA-256; record the hashes with `qnext check -m "
		    "%s --write` and later runs will verify against them\n",
		    c->dir, CHECK_MANIFEST_NAME, c->dir);
	} else if (c->n_unlisted > 0) {
		say(c,
		    "note: %d file%s not in %s (marked ?\?); `qnext check -m %s --write` "
		    "records them\n",
		    c->n_unlisted, c->n_unlisted == 1 ? " is" : "s are", c->manifest, c->dir);
	}
	free(where);
	free(cause);
}

static void appendf(char *buf, size_t len, size_t *k, const char *fmt, ...) PRINTF_LIKE(4, 5);

static void
appendf(char *buf, size_t len, size_t *k, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*k >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *k, len - *k, fmt, ap);
	va_end(ap);
	if (n > 0)
		*k += (size_t)n;
}

static void
summary(struct check *c)
{
	char size[32], what[256] = "";
	size_t k = 0, w = sizeof(what);

	appendf(what, w, &k, "%d verified", c->n_ok);
	if (c->n_bad > 0)
		appendf(what, w, &k, ", %d BAD", c->n_bad);
	if (c->n_missing > 0)
		appendf(what, w, &k, ", %d missing", c->n_missing);
	if (c->n_trunc > 0)
		appendf(what, w, &k, ", %d truncated", c->n_trunc);
	if (c->n_err > 0)
		appendf(what, w, &k, ", %d unreadable", c->n_err);
	if (c->n_noref > 0)
		appendf(what, w, &k, ", %d without a reference hash", c->n_noref);
	if (c->n_skip > 0)
		appendf(what, w, &k, ", %d git-stored (parsed only)", c->n_skip);
	say(c, "check: %s: %d file%s, %s hashed in %.1f s (%.2f GB/s): %s; structure %s\n",
	    failed(c) ? "FAILED" : "ok", c->n_files, c->n_files == 1 ? "" : "s",
	    fmt_size(c->hashed_bytes, size, sizeof(size)), c->hash_sec,
	    c->hash_sec > 0 ? (double)c->hashed_bytes / c->hash_sec / 1e9 : 0.0, what,
	    c->structure_ok ? "ok" : "FAILED");
}

static int
check_run(struct check *c)
{
	char *cause = NULL;
	struct stat sb;

	if (stat(c->dir, &sb) != 0) {
		fprintf(stderr, "qnext check: %s: %s\n", c->dir, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "qnext check: %s: not a directory\n", c->dir);
		return 1;
	}
	c->tty = isatty(STDERR_FILENO);
	if (gather(c, &cause) != 0) {
		fprintf(stderr, "qnext check: %s\n", cause);
		free(cause);
		return 1;
	}
	for (int i = 0; i < c->n_files; i++) {
		peek_header(&c->files[i]);
		if (c->files[i].err != NULL || !c->files[i].present || truncated(&c->files[i]))
			report_unhashable(c, &c->files[i]);
	}
	hash_all(c);
	check_structure(c);
	write_or_advise(c);
	summary(c);
	return failed(c) ? 1 : 0;
}

static void
check_free(struct check *c)
{
	for (int i = 0; i < c->n_files; i++) {
		free(c->files[i].name);
		free(c->files[i].path);
		free(c->files[i].blob_path);
		free(c->files[i].err);
	}
	free(c->files);
	free(c->manifest);
	free(c->repo);
}

static void
usage(FILE *f)
{
	subcmd_usage(f, "check");
}

int
check_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },   { "write", no_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 't' }, { "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
	};
	struct check c = { .threads = 0 };
	const char *model = NULL;
	char *dir, *cause = NULL, *end;
	long v;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "m:t:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			model = optarg;
			break;
		case 'w':
			c.write = true;
			break;
		case 't':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || v < 1 || v > 1024) {
				fprintf(stderr,
					"qnext check: --threads: '%s' is not a number in "
					"[1, 1024]\n",
					optarg);
				return 2;
			}
			c.threads = (int)v;
			break;
		case 'q':
			c.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "qnext check: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if ((dir = paths_find_model(model, &cause)) == NULL) {
		fprintf(stderr, "qnext check: %s\n", cause);
		free(cause);
		return 1;
	}
	/* "dir/" would make every path in the messages "dir//file". */
	for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
		dir[n - 1] = '\0';
	if (c.threads == 0)
		c.threads = pool_default_threads();
	c.dir = dir;
	rc = check_run(&c);
	check_free(&c);
	free(dir);
	return rc;
}
