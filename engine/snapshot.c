/*
 * snapshot.c - saved engine states on disk (see snapshot.h; the design is
 * docs/resume.md).
 *
 * Reading order: the model's identity and the key, the header and its
 * checks, save (write to a temporary file, rename), restore (every header
 * field against what this context expects, then the payload straight into
 * the context while it is hashed), eviction, verify.
 *
 * Thread affinity: the context's owner thread (snapshot_verify_file: any).
 */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "forward.h"
#include "log.h"
#include "model.h"
#include "paths.h"
#include "safetensors.h"
#include "thread-role.h"
#include "util.h"
#include "xcache.h"

#define MAGIC       "QNXTSNAP"
#define SNAP_ORDER  0x01020304u /* as the writing host stores it: another order is refused */
#define SUFFIX      ".qsnap"
/* Bytes of each shard's head and tail that go into the model's identity. */
#define ID_SAMPLE   4096
/* A temporary file older than this was left by a process that died while writing. */
#define TMP_STALE_S 3600
/* Files looked at per eviction, at most (a folder of junk must not stall a reply). */
#define MAX_FILES   100000

/* The file's first bytes; the payload follows (docs/resume.md "File format"). */
struct header {
	char magic[8];
	uint32_t version;
	uint32_t byte_order;
	uint32_t header_bytes; /* sizeof(struct header) */
	uint32_t n_tok;        /* positions of the state: tokens in the prefix */
	uint8_t model[32];     /* the model's identity (model_id) */
	/* struct ctx_state_layout, less n_ctx (any longer context takes the state). */
	uint32_t kv_bits, f32, float_parts, n_full, n_kv_heads, head_dim, n_gdn, pad;
	uint64_t gdn_floats;
	uint64_t payload; /* bytes after the header: tokens, keys and values, DeltaNet states */
	uint8_t sum[32];  /* SHA-256 of the payload */
};

struct snapshot_cache {
	char *dir;
	uint64_t budget;
	const struct ctx *c;
	struct header want; /* the fields every file must have (n_tok, payload, sum aside) */
};

/* ---- identity and key ---------------------------------------------------- */

static void
sha_update(EVP_MD_CTX *md, const void *p, size_t n)
{
	if (EVP_DigestUpdate(md, p, n) != 1)
		fatal("SHA-256 update failed");
}

static void
sha_final(EVP_MD_CTX *md, uint8_t out[32])
{
	unsigned n = 0;

	if (EVP_DigestFinal_ex(md, out, &n) != 1 || n != 32)
		fatal("SHA-256 final failed");
}

static EVP_MD_CTX *
sha_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		fatal("SHA-256 init failed");
	return md;
}

/*
 * What tells this checkpoint from another, cheaply: config.json, the weight
 * bytes, and each shard's name, size, head (its tensor table) and tail (weights,
 * so that regenerated random weights of the same shapes differ).
 */
static void
model_id(const struct model *m, uint8_t out[32])
{
	EVP_MD_CTX *md = sha_new();
	char *path = xasprintf("%s/config.json", m->dir);
	size_t len = 0;
	char *cfg = read_file_max(path, READ_MAX_CONFIG, &len, NULL);
	uint64_t total = st_total_bytes(m->st);

	sha_update(md, "qnext-model", 12);
	if (cfg != NULL)
		sha_update(md, cfg, len);
	sha_update(md, &total, sizeof(total));
	for (int i = 0; i < st_shard_count(m->st); i++) {
		const char *p = st_shard_path(m->st, i), *base = strrchr(p, '/');
		size_t n = 0;
		const unsigned char *b = st_shard_base(m->st, i, &n);
		uint64_t n64 = n;

		base = base != NULL ? base + 1 : p;
		sha_update(md, base, strlen(base) + 1);
		sha_update(md, &n64, sizeof(n64));
		if (b != NULL) {
			sha_update(md, b, MIN(n, (size_t)ID_SAMPLE));
			sha_update(md, b + n - MIN(n, (size_t)ID_SAMPLE),
				   MIN(n, (size_t)ID_SAMPLE));
		}
	}
	sha_final(md, out);
	EVP_MD_CTX_free(md);
	free(cfg);
	free(path);
}

/* The digest state after everything of the key but the tokens. */
static EVP_MD_CTX *
key_start(const struct snapshot_cache *sc)
{
	EVP_MD_CTX *md = sha_new();

	sha_update(md, "qnext-state", 12);
	sha_update(md, &sc->want, offsetof(struct header, payload));
	return md;
}

static char *
key_path(const struct snapshot_cache *sc, EVP_MD_CTX *md)
{
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	uint8_t k[32];
	char hex[65];

	if (copy == NULL || EVP_MD_CTX_copy_ex(copy, md) != 1)
		fatal("SHA-256 copy failed");
	sha_final(copy, k);
	EVP_MD_CTX_free(copy);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", k[i]);
	return xasprintf("%s/%s%s", sc->dir, hex, SUFFIX);
}

char *
snapshot_path(const struct snapshot_cache *sc, const int32_t *tokens, int n)
{
	EVP_MD_CTX *md = key_start(sc);
	char *p;

	sha_update(md, tokens, (size_t)n * sizeof(int32_t));
	p = key_path(sc, md);
	EVP_MD_CTX_free(md);
	return p;
}

struct snapshot_cache *
snapshot_open(const struct model *m, const struct ctx *c, const char *dir, uint64_t budget,
	      char **cause)
{
	struct snapshot_cache *sc = xcalloc(1, sizeof(*sc));
	struct ctx_state_layout l;
	char *base = NULL;

	if (dir != NULL)
		sc->dir = xstrdup(dir);
	else if ((base = paths_xdg_dir("XDG_CACHE_HOME", ".cache")) != NULL)
		sc->dir = xasprintf("%s/state", base);
	free(base);
	if (sc->dir == NULL) {
		cause_set(cause, "no cache directory (set HOME or XDG_CACHE_HOME)");
		goto fail;
	}
	if (paths_mkdirs(sc->dir, 0700, cause) != 0)
		goto fail;
	sc->budget = budget == SNAPSHOT_AUTO ? SNAPSHOT_BUDGET_DEFAULT : budget;
	sc->c = c;
	ctx_state_layout(c, &l);
	memcpy(sc->want.magic, MAGIC, 8);
	sc->want.version = SNAPSHOT_VERSION;
	sc->want.byte_order = SNAP_ORDER;
	sc->want.header_bytes = sizeof(struct header);
	model_id(m, sc->want.model);
	sc->want.kv_bits = (uint32_t)l.kv_bits;
	sc->want.f32 = l.f32;
	sc->want.float_parts = l.float_parts;
	sc->want.n_full = (uint32_t)l.n_full;
	sc->want.n_kv_heads = (uint32_t)l.n_kv_heads;
	sc->want.head_dim = (uint32_t)l.head_dim;
	sc->want.n_gdn = (uint32_t)l.n_gdn;
	sc->want.gdn_floats = l.gdn_floats;
	return sc;
fail:
	snapshot_close(sc);
	return NULL;
}

void
snapshot_close(struct snapshot_cache *sc)
{
	if (sc == NULL)
		return;
	free(sc->dir);
	free(sc);
}

/* ---- reading and writing ------------------------------------------------- */

struct io {
	int fd;
	EVP_MD_CTX *md; /* hashes what passes */
};

static int
io_write(void *arg, void *buf, size_t len)
{
	struct io *io = arg;
	const char *p = buf;

	sha_update(io->md, buf, len);
	while (len > 0) {
		ssize_t n = write(io->fd, p, MIN(len, (size_t)1 << 30));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n, len -= (size_t)n;
	}
	return 0;
}

static int
io_read(void *arg, void *buf, size_t len)
{
	struct io *io = arg;
	char *p = buf;
	size_t left = len;

	while (left > 0) {
		ssize_t n = read(io->fd, p, MIN(left, (size_t)1 << 30));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1; /* error or a file shorter than its header said */
		p += n, left -= (size_t)n;
	}
	sha_update(io->md, buf, len);
	return 0;
}

/* Bytes of the payload of a state of n_tok positions with h's layout; 0 when absurd. */
static uint64_t
payload_bytes(const struct header *h, uint64_t n_tok)
{
	uint64_t per_pos = (uint64_t)h->n_full * h->n_kv_heads * h->head_dim * 2 * (h->kv_bits / 8);

	/* Every factor is bounded by header_sane, so none of this overflows. */
	return n_tok * sizeof(int32_t) + n_tok * per_pos +
	       (uint64_t)h->n_gdn * h->gdn_floats * sizeof(float);
}

/* Fields in ranges no real model leaves (the file is untrusted); a one-line cause. */
static const char *
header_sane(const struct header *h)
{
	if (memcmp(h->magic, MAGIC, 8) != 0)
		return "not a qnext state";
	if (h->version != SNAPSHOT_VERSION)
		return "another format version";
	if (h->byte_order != SNAP_ORDER || h->header_bytes != sizeof(*h))
		return "another byte order or header size";
	if ((h->kv_bits != 16 && h->kv_bits != 32) || h->f32 > 1 || h->n_full > 4096 ||
	    h->n_kv_heads > 4096 || h->head_dim > 65536 || h->n_gdn > 4096 ||
	    h->gdn_floats > ((uint64_t)1 << 36) || h->n_tok < 1 || h->n_tok > (1u << 24))
		return "a size out of range";
	if (h->payload != payload_bytes(h, h->n_tok))
		return "the payload size does not match the shapes";
	return NULL;
}

/* Write c's saved state for tokens[0..n) to the open file fd.  0, or -1. */
static int
write_state(const struct snapshot_cache *sc, struct ctx *c, int fd, const int32_t *tokens, int n)
{
	struct header h = sc->want;
	struct io io = { .fd = fd, .md = sha_new() };
	int rc = -1;

	h.n_tok = (uint32_t)n;
	h.payload = (uint64_t)n * sizeof(int32_t) + ctx_state_bytes(c, n);
	if (lseek(fd, sizeof(h), SEEK_SET) != (off_t)sizeof(h) ||
	    io_write(&io, (void *)tokens, (size_t)n * sizeof(int32_t)) != 0 ||
	    ctx_state_export(c, io_write, &io) != 0)
		goto out;
	sha_final(io.md, h.sum);
	if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(io.md);
	return rc;
}

static void evict(const struct snapshot_cache *sc, uint64_t limit);
static uint64_t limit_for(const struct snapshot_cache *sc, uint64_t *ours);

int
snapshot_save(struct snapshot_cache *sc, struct ctx *c, const int32_t *tokens, int n, char **cause)
{
	char *path, *tmp = NULL;
	uint64_t need =
		(uint64_t)n * sizeof(int32_t) + ctx_state_bytes(c, n) + sizeof(struct header);
	uint64_t ours, limit;
	int fd = -1, rc = -1, r;
	double t0 = now_sec();

	assert_engine();
	if (n < 1 || ctx_saved_pos(c) != n)
		return cause_set(cause, "no saved state of %d tokens to write", n);
	path = snapshot_path(sc, tokens, n);
	if (access(path, F_OK) == 0) { /* the same prefix again: only renew its time of use */
		utimensat(AT_FDCWD, path, NULL, 0);
		free(path);
		return 0;
	}
	if (need > (limit = limit_for(sc, &ours))) {
		cause_set(cause, "a state of %llu MB is over the budget of %llu MB",
			  (unsigned long long)(need >> 20), (unsigned long long)(limit >> 20));
		goto out;
	}
	evict(sc, limit - need); /* room first, so the disk never holds more than the budget */
	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    write_state(sc, c, fd, tokens, n) != 0) {
		cause_set(cause, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	r = close(fd);
	fd = -1;
	if (r != 0 || rename(tmp, path) != 0) {
		cause_set(cause, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	log_info("state of %d tokens saved: %llu MB in %.2f s", n, (unsigned long long)(need >> 20),
		 now_sec() - t0);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0 && tmp != NULL)
		unlink(tmp);
	free(tmp);
	free(path);
	return rc;
}

/*
 * Read the snapshot at path for tokens[0..n) into c.  1 restored; 0 not
 * there or not usable, c untouched; -1 the payload was bad after c's state
 * was overwritten (c is reset).
 */
static int
restore_one(const struct snapshot_cache *sc, struct ctx *c, const char *path, const int32_t *tokens,
	    int n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;
	struct header h;
	struct io io = { .fd = fd };
	struct stat st;
	int32_t *ids = NULL;
	uint8_t sum[32];
	const char *bad = NULL, *drop = NULL; /* drop: a file of ours gone bad, removed */

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    read(fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
		bad = "shorter than a header";
	else if ((bad = header_sane(&h)) != NULL)
		;
	else if (memcmp(h.model, sc->want.model, 32) != 0)
		bad = "made with another model";
	else if (memcmp(&h.kv_bits, &sc->want.kv_bits,
			offsetof(struct header, payload) - offsetof(struct header, kv_bits)) != 0)
		bad = "made with another context layout";
	else if (h.n_tok != (uint32_t)n)
		bad = "of another length";
	else if ((uint64_t)st.st_size != sizeof(h) + h.payload)
		bad = drop = "truncated or overlong";
	if (bad != NULL)
		goto out;
	io.md = sha_new();
	ids = xmalloc((size_t)n * sizeof(int32_t));
	if (io_read(&io, ids, (size_t)n * sizeof(int32_t)) != 0 ||
	    memcmp(ids, tokens, (size_t)n * sizeof(int32_t)) != 0) {
		bad = "of other tokens";
		goto out;
	}
	r = -1;
	if (ctx_state_import(c, n, io_read, &io) != 0) {
		bad = "unreadable";
		goto out;
	}
	sha_final(io.md, sum);
	if (memcmp(sum, h.sum, 32) != 0) {
		bad = drop = "damaged (checksum)";
		ctx_reset(c);
		goto out;
	}
	futimens(fd, NULL); /* recently used: evicted last */
	r = 1;
out:
	if (bad != NULL)
		log_info("state %s not used: %s%s", path, bad, drop != NULL ? " (removed)" : "");
	if (drop != NULL)
		unlink(path);
	if (io.md != NULL)
		EVP_MD_CTX_free(io.md);
	free(ids);
	close(fd);
	return r;
}

static int
cmp_int(const void *a, const void *b)
{
	return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

int
snapshot_restore(struct snapshot_cache *sc, struct ctx *c, const int32_t *tokens, const int *cand,
		 int n_cand)
{
	struct ctx_state_layout l;
	int *len = xmalloc((size_t)MAX(n_cand, 1) * sizeof(int)), n = 0, got = 0, done = 0;
	char **paths;
	EVP_MD_CTX *md;
	double t0 = now_sec();

	assert_engine();
	ctx_state_layout(c, &l);
	for (int i = 0; i < n_cand; i++)
		if (cand[i] >= 1 && cand[i] < l.n_ctx)
			len[n++] = cand[i];
	if (n > 0)
		qsort(len, (size_t)n, sizeof(int), cmp_int);
	/* One pass over the tokens gives every candidate's key. */
	paths = xcalloc((size_t)MAX(n, 1), sizeof(char *));
	md = key_start(sc);
	for (int i = 0; i < n; i++) {
		sha_update(md, tokens + done, (size_t)(len[i] - done) * sizeof(int32_t));
		done = len[i];
		paths[i] = key_path(sc, md);
	}
	EVP_MD_CTX_free(md);
	for (int i = n - 1; i >= 0 && got == 0; i--) {
		int r = (i + 1 < n && len[i + 1] == len[i])
				? 0
				: restore_one(sc, c, paths[i], tokens, len[i]);

		if (r == 1) {
			got = len[i];
			log_info("state of %d tokens restored in %.2f s", got, now_sec() - t0);
		}
	}
	for (int i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	free(len);
	return got;
}

/* ---- budget and eviction ------------------------------------------------- */

struct entry {
	char *path;
	uint64_t size;
	struct timespec used;
};

static bool
is_ours(const char *name, bool *tmp)
{
	size_t n = strlen(name), s = strlen(SUFFIX);

	*tmp = strstr(name, SUFFIX ".tmp.") != NULL;
	return *tmp || (n > s && strcmp(name + n - s, SUFFIX) == 0);
}

/* Our files in the folder (stale temporaries removed on the way), and their bytes. */
static struct entry *
list_files(const struct snapshot_cache *sc, int *n_out, uint64_t *total)
{
	DIR *d = opendir(sc->dir);
	struct dirent *e;
	struct entry *v = NULL;
	int n = 0, cap = 0;
	time_t now = time(NULL);

	*total = 0;
	while (d != NULL && n < MAX_FILES && (e = readdir(d)) != NULL) {
		struct stat st;
		bool tmp;
		char *p;

		if (!is_ours(e->d_name, &tmp))
			continue;
		p = xasprintf("%s/%s", sc->dir, e->d_name);
		if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(p);
			continue;
		}
		if (tmp && now - st.st_mtime > TMP_STALE_S)
			unlink(p);
		if (tmp) {
			free(p);
			continue;
		}
		if (n == cap)
			v = xrealloc(v, (size_t)(cap = 2 * cap + 16) * sizeof(*v));
		v[n++] = (struct entry){ p, (uint64_t)st.st_size, st.st_mtim };
		*total += (uint64_t)st.st_size;
	}
	if (d != NULL)
		closedir(d);
	*n_out = n;
	return v;
}

/* The budget, but never more than half of the disk that is free or ours. */
static uint64_t
limit_for(const struct snapshot_cache *sc, uint64_t *ours)
{
	struct statvfs vfs;
	int n;
	struct entry *v = list_files(sc, &n, ours);
	uint64_t limit = sc->budget;

	for (int i = 0; i < n; i++)
		free(v[i].path);
	free(v);
	if (statvfs(sc->dir, &vfs) == 0)
		limit = MIN(limit, (*ours + (uint64_t)vfs.f_bavail * vfs.f_frsize) / 2);
	return limit;
}

static int
cmp_used(const void *a, const void *b)
{
	const struct timespec *x = &((const struct entry *)a)->used;
	const struct timespec *y = &((const struct entry *)b)->used;

	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	return (x->tv_nsec > y->tv_nsec) - (x->tv_nsec < y->tv_nsec);
}

/* Remove the least recently used files until ours take at most limit bytes. */
static void
evict(const struct snapshot_cache *sc, uint64_t limit)
{
	int n;
	uint64_t total;
	struct entry *v = list_files(sc, &n, &total);

	if (n > 0)
		qsort(v, (size_t)n, sizeof(*v), cmp_used);
	for (int i = 0; i < n; i++) {
		if (total > limit && unlink(v[i].path) == 0) {
			total -= v[i].size;
			log_info("state %s evicted (%llu MB)", v[i].path,
				 (unsigned long long)(v[i].size >> 20));
		}
		free(v[i].path);
	}
	free(v);
}

/* ---- verify -------------------------------------------------------------- */

int
snapshot_verify_file(const char *path, char **cause)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct header h;
	struct stat st;
	struct io io = { .fd = fd };
	uint8_t sum[32];
	char *buf = NULL;
	const char *bad = NULL;
	uint64_t left;

	if (fd < 0)
		return cause_set(cause, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || read(fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
		bad = "shorter than a header";
	else if ((bad = header_sane(&h)) == NULL && (uint64_t)st.st_size != sizeof(h) + h.payload)
		bad = "truncated or overlong";
	if (bad == NULL) {
		io.md = sha_new();
		buf = xmalloc((size_t)1 << 20);
		for (left = h.payload; left > 0 && bad == NULL;
		     left -= MIN(left, (uint64_t)1 << 20))
			if (io_read(&io, buf, (size_t)MIN(left, (uint64_t)1 << 20)) != 0)
				bad = "unreadable";
		if (bad == NULL) {
			sha_final(io.md, sum);
			if (memcmp(sum, h.sum, 32) != 0)
				bad = "damaged (checksum)";
		}
		EVP_MD_CTX_free(io.md);
	}
	free(buf);
	close(fd);
	return bad != NULL ? cause_set(cause, "%s: %s", path, bad) : 0;
}

int
snapshot_budget_parse(const char *s, uint64_t *out, char **cause)
{
	char *why = NULL;

	if (xcache_parse(s, out, &why) == 0)
		return 0;
	free(why);
	return cause_set(cause, "--state-cache '%s': expected auto, off or a size such as 2G", s);
}
