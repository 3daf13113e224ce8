/*
 * safetensors.c - validate and map Hugging Face safetensors shards, and look
 * tensors up by name.
 *
 * A shard is an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}
 * and a data area that the offsets index.  Each shard is mapped whole,
 * read-only; the header is parsed with jansson and every entry is checked
 * before a pointer into the mapping is handed out, because a checkpoint is
 * untrusted input and a bad offset would otherwise become a wild read deep in
 * a kernel.  The tensors of all shards then go into one array sorted by name,
 * so st_find is a bsearch.
 *
 * Opening runs on one thread (engine thread or a CLI tool).  The finished set
 * is immutable, so any thread may read it until st_close().
 *
 * A shard that shrinks while mapped turns reads past its new end into
 * SIGBUS, in whichever thread touches them.  The guard below (installed with
 * the first mapping) replaces the lost pages with zero pages, notes the
 * change for st_changed() and lets the read go on; the engine checks after
 * each step and fails it ("the model file changed or shrank while in use").
 * A SIGBUS outside the mappings goes to the handler that was there before.
 */
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "thread-role.h"
#include "util.h"

/* The reference implementation refuses headers over 100 MB; so do we. */
#define HEADER_MAX  100000000u
#define INDEX_NAME  "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
/* Names quoted in error messages are cut to this many bytes. */
#define NAME_SHOW   96

struct st_shard {
	char *path;
	const uint8_t *base; /* the whole file, mapped; never written */
	size_t len;          /* file size in bytes, >= 8 */
};

struct st_set {
	struct st_shard *shards; /* [n_shards] */
	int n_shards;
	struct st_tensor *tensors; /* [n_tensors], sorted by name; names owned */
	size_t n_tensors;
	uint64_t total_bytes;
};

/* One tensor's byte range inside the data area, for the overlap check. */
struct span {
	uint64_t begin, end;
	size_t i; /* index into hdr.t */
};

/* One shard's header while it is being parsed. */
struct hdr {
	const char *what;    /* file name for messages */
	const uint8_t *data; /* start of the data area */
	uint64_t data_len;   /* bytes in the data area */
	int shard;
	struct st_tensor *t; /* [n]; names malloc'd */
	struct span *spans;  /* [n] */
	size_t n;
};

/* clang-format off */
static const struct {
	const char *name;
	size_t size;
} dtypes[] = {
	[ST_F32]     = { "F32", 4 },
	[ST_F16]     = { "F16", 2 },
	[ST_BF16]    = { "BF16", 2 },
	[ST_I32]     = { "I32", 4 },
	[ST_I64]     = { "I64", 8 },
	[ST_I16]     = { "I16", 2 },
	[ST_I8]      = { "I8", 1 },
	[ST_U8]      = { "U8", 1 },
	[ST_BOOL]    = { "BOOL", 1 },
	[ST_F64]     = { "F64", 8 },
	[ST_F8_E4M3] = { "F8_E4M3", 1 },
	[ST_F8_E5M2] = { "F8_E5M2", 1 },
	[ST_UNKNOWN] = { "an unknown dtype", 1 },
};
/* clang-format on */

size_t
st_dtype_size(enum st_dtype dt)
{
	if ((size_t)dt >= ARRAY_LEN(dtypes))
		return 0;
	return dtypes[dt].size;
}

const char *
st_dtype_name(enum st_dtype dt)
{
	if ((size_t)dt >= ARRAY_LEN(dtypes))
		return "?";
	return dtypes[dt].name;
}

static int tensor_error(char **cause, const char *what, const char *name, const char *fmt, ...)
	PRINTF_LIKE(4, 5);

static int
tensor_error(char **cause, const char *what, const char *name, const char *fmt, ...)
{
	char msg[512], nm[NAME_SHOW];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	str_show(nm, sizeof(nm), name);
	return cause_set(cause, "%s: tensor '%s': %s", what, nm, msg);
}

/* "[153, 1088]" into buf. */
static void
format_shape(char *buf, size_t size, const struct st_tensor *t)
{
	size_t n = 0;

	n += (size_t)snprintf(buf, size, "[");
	for (int i = 0; i < t->n_dims && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, i ? ", " : "", t->shape[i]);
	if (n < size)
		snprintf(buf + n, size - n, "]");
}

static int
parse_dtype(struct hdr *h, const char *name, json_t *v, struct st_tensor *t, char **cause)
{
	const char *s;
	char show[NAME_SHOW];

	if (!json_is_string(v))
		return tensor_error(cause, h->what, name, "dtype is missing or not a string");
	s = json_string_value(v);
	for (size_t i = 0; i < ST_UNKNOWN; i++) {
		if (strcmp(s, dtypes[i].name) == 0) {
			t->dtype = (enum st_dtype)i;
			return 0;
		}
	}
	/* Safetensors names its dtypes with capitals, digits and '_'. */
	if (*s == '\0' || strlen(s) > 16 ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(s)) {
		str_show(show, sizeof(show), s);
		return tensor_error(cause, h->what, name, "dtype '%s' is not a safetensors dtype",
				    show);
	}
	t->dtype = ST_UNKNOWN;
	return 0;
}

/*
 * Shape and element count.  A zero dimension makes the product 0 even when
 * the other dimensions would overflow, so overflow is only an error when no
 * dimension is 0.
 */
static int
parse_shape(struct hdr *h, const char *name, json_t *v, struct st_tensor *t, char **cause)
{
	int64_t prod = 1;
	bool zero = false, overflow = false;

	if (!json_is_array(v))
		return tensor_error(cause, h->what, name, "shape is missing or not an array");
	if (json_array_size(v) > ST_MAX_DIMS)
		return tensor_error(cause, h->what, name, "shape has %zu dimensions (at most %d)",
				    json_array_size(v), ST_MAX_DIMS);
	t->n_dims = (int)json_array_size(v);
	for (int i = 0; i < t->n_dims; i++) {
		json_t *d = json_array_get(v, (size_t)i);
		json_int_t x;

		if (!json_is_integer(d) || (x = json_integer_value(d)) < 0)
			return tensor_error(cause, h->what, name,
					    "shape is not a list of non-negative integers");
		t->shape[i] = x;
		if (x == 0)
			zero = true;
		else if (overflow || prod > INT64_MAX / x)
			overflow = true;
		else
			prod *= x;
	}
	if (overflow && !zero)
		return tensor_error(cause, h->what, name, "shape element count overflows");
	t->n_elems = zero ? 0 : prod;
	if ((uint64_t)t->n_elems > (uint64_t)INT64_MAX / st_dtype_size(t->dtype) ||
	    (uint64_t)t->n_elems > SIZE_MAX / st_dtype_size(t->dtype))
		return tensor_error(cause, h->what, name, "shape byte size overflows");
	t->n_bytes = (size_t)t->n_elems * st_dtype_size(t->dtype);
	return 0;
}

static int
parse_offsets(struct hdr *h, const char *name, json_t *v, struct span *sp, char **cause)
{
	json_t *b = json_array_get(v, 0), *e = json_array_get(v, 1);

	if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(b) ||
	    !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
		return tensor_error(cause, h->what, name,
				    "data_offsets is not a pair of non-negative integers");
	sp->begin = (uint64_t)json_integer_value(b);
	sp->end = (uint64_t)json_integer_value(e);
	if (sp->begin > sp->end)
		return tensor_error(cause, h->what, name,
				    "data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
				    sp->begin, sp->end);
	if (sp->end > h->data_len)
		return tensor_error(cause, h->what, name,
				    "data_offsets [%" PRIu64 ", %" PRIu64
				    "] are past the end of the data area (%" PRIu64 " bytes)",
				    sp->begin, sp->end, h->data_len);
	return 0;
}

/* Validate entry `name` of the header and fill h->t[h->n], h->spans[h->n]. */
static int
parse_tensor(struct hdr *h, const char *name, json_t *v, char **cause)
{
	struct st_tensor *t = &h->t[h->n];
	struct span *sp = &h->spans[h->n];
	char shape[256];

	if (!json_is_object(v))
		return tensor_error(cause, h->what, name, "entry is not an object");
	if (parse_dtype(h, name, json_object_get(v, "dtype"), t, cause) != 0 ||
	    parse_shape(h, name, json_object_get(v, "shape"), t, cause) != 0 ||
	    parse_offsets(h, name, json_object_get(v, "data_offsets"), sp, cause) != 0)
		return -1;
	if (t->dtype == ST_UNKNOWN) /* element size unknown: the range is the tensor */
		t->n_bytes = (size_t)(sp->end - sp->begin);
	if (sp->end - sp->begin != t->n_bytes) {
		format_shape(shape, sizeof(shape), t);
		return tensor_error(cause, h->what, name,
				    "data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
				    " bytes but %s %s needs %zu",
				    sp->begin, sp->end, sp->end - sp->begin,
				    st_dtype_name(t->dtype), shape, t->n_bytes);
	}
	/* Kernels and loaders read elements in place: an element that straddles
	 * its alignment is undefined behaviour in C (and a fault on some CPUs).
	 * Writers pad the header to a multiple of 8 so that this never happens. */
	if (t->n_bytes > 0 && (uintptr_t)(h->data + sp->begin) % st_dtype_size(t->dtype) != 0)
		return tensor_error(cause, h->what, name,
				    "data at offset %" PRIu64 " is not aligned to its %zu-byte "
				    "elements (the header is not padded to a multiple of 8 bytes)",
				    sp->begin, st_dtype_size(t->dtype));
	t->name = xstrdup(name);
	t->data = h->data + sp->begin;
	t->shard = h->shard;
	sp->i = h->n++;
	return 0;
}

/* "__metadata__" carries free-form strings ("format": "pt"); nothing else is allowed. */
static int
check_metadata(struct hdr *h, json_t *v, char **cause)
{
	const char *key;
	json_t *val;

	if (!json_is_object(v))
		return cause_set(cause, "%s: __metadata__ is not an object", h->what);
	json_object_foreach(v, key, val)
	{
		if (!json_is_string(val))
			return cause_set(cause, "%s: __metadata__ value is not a string", h->what);
	}
	return 0;
}

static int
span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/*
 * No two tensors may share a byte, or a write-through bug elsewhere would be
 * the least of it: one tensor's data would silently be another's.  Empty
 * tensors own no bytes and are skipped.  Gaps are allowed.
 */
static int
check_overlap(struct hdr *h, char **cause)
{
	const struct span *last = NULL;

	if (h->n < 2)
		return 0;
	qsort(h->spans, h->n, sizeof(*h->spans), span_cmp);
	for (size_t k = 0; k < h->n; k++) {
		const struct span *s = &h->spans[k];
		char other[NAME_SHOW];

		if (s->begin == s->end)
			continue;
		if (last != NULL && s->begin < last->end) {
			str_show(other, sizeof(other), h->t[last->i].name);
			return tensor_error(cause, h->what, h->t[s->i].name,
					    "data_offsets [%" PRIu64 ", %" PRIu64
					    "] overlap tensor '%s'",
					    s->begin, s->end, other);
		}
		if (last == NULL || s->end > last->end)
			last = s;
	}
	return 0;
}

static void
hdr_release(struct hdr *h)
{
	for (size_t i = 0; i < h->n; i++)
		free((char *)h->t[i].name);
	free(h->t);
	free(h->spans);
	h->t = NULL;
	h->spans = NULL;
	h->n = 0;
}

/* The 8-byte length prefix: the header must lie inside the file. */
static int
read_prefix(const uint8_t *buf, size_t len, const char *what, uint64_t *hlen, char **cause)
{
	uint64_t n = 0;

	if (len < 8)
		return cause_set(cause,
				 "%s: file is %zu bytes, too short for a safetensors header "
				 "(truncated?)",
				 what, len);
	for (int i = 7; i >= 0; i--)
		n = n << 8 | buf[i];
	if (n > len - 8)
		return cause_set(cause,
				 "%s: header length %" PRIu64 " is past the end of the file "
				 "(%zu bytes; truncated?)",
				 what, n, len);
	if (n > HEADER_MAX)
		return cause_set(cause, "%s: header length %" PRIu64 " is absurdly large", what, n);
	*hlen = n;
	return 0;
}

static json_t *
load_header(const uint8_t *buf, uint64_t hlen, const char *what, char **cause)
{
	json_error_t err;
	json_t *root;
	char text[NAME_SHOW];

	root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		str_show(text, sizeof(text), err.text);
		cause_set(cause, "%s: header is not valid JSON: %s (line %d, column %d)", what,
			  text, err.line, err.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		cause_set(cause, "%s: header is not a JSON object", what);
		return NULL;
	}
	return root;
}

static int
parse_entries(struct hdr *h, json_t *root, char **cause)
{
	const char *key;
	json_t *val;
	size_t n = json_object_size(root);

	if (n > 0) {
		h->t = xcalloc(n, sizeof(*h->t));
		h->spans = xcalloc(n, sizeof(*h->spans));
	}
	json_object_foreach(root, key, val)
	{
		if (strcmp(key, "__metadata__") == 0) {
			if (check_metadata(h, val, cause) != 0)
				return -1;
		} else if (parse_tensor(h, key, val, cause) != 0)
			return -1;
	}
	return check_overlap(h, cause);
}

/* Parse and check the header of the file in buf; on success h holds its tensors. */
static int
parse_header(const uint8_t *buf, size_t len, const char *what, int shard, struct hdr *h,
	     char **cause)
{
	uint64_t hlen = 0;
	json_t *root;
	int rc;

	memset(h, 0, sizeof(*h));
	h->what = what;
	h->shard = shard;
	if (read_prefix(buf, len, what, &hlen, cause) != 0)
		return -1;
	h->data = buf + 8 + hlen;
	h->data_len = len - 8 - hlen;
	if ((root = load_header(buf, hlen, what, cause)) == NULL)
		return -1;
	rc = parse_entries(h, root, cause);
	json_decref(root);
	if (rc != 0)
		hdr_release(h);
	return rc;
}

int
st_parse_check(const uint8_t *buf, size_t len, const char *what, size_t *n_tensors, char **cause)
{
	struct hdr h;

	if (what == NULL)
		what = "safetensors";
	if (parse_header(buf, len, what, 0, &h, cause) != 0)
		return -1;
	if (n_tensors != NULL)
		*n_tensors = h.n;
	hdr_release(&h);
	return 0;
}

/* ---- the SIGBUS guard --------------------------------------------------- */

/* Mappings the guard knows; a checkpoint has tens of shards, a process few sets. */
#define GUARD_SLOTS 1024

/* GLOBAL: the live shard mappings (base 0: a free slot), read by the signal
 * handler in any thread, written by map_file/unmap_file. */
static struct {
	_Atomic uintptr_t base;
	_Atomic size_t len;
} guard_maps[GUARD_SLOTS];
/* GLOBAL: set by the handler when a mapped shard lost pages. */
static atomic_bool guard_changed;
/* GLOBAL: the SIGBUS action before ours, and the page size (set once). */
static struct sigaction guard_old;
static size_t guard_page;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static void
on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	(void)uc;
	for (int i = 0; si->si_code > 0 && i < GUARD_SLOTS; i++) {
		uintptr_t b = atomic_load(&guard_maps[i].base),
			  p = a & ~(uintptr_t)(guard_page - 1);
		size_t l = atomic_load(&guard_maps[i].len);

		/* From the faulting page to the mapping's end: zero pages (mmap is a
		 * plain system call on Linux, safe here in practice). */
		if (b != 0 && a >= b && a < b + l &&
		    mmap((void *)p, b + l - p, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) != MAP_FAILED) {
			atomic_store(&guard_changed, true);
			return; /* the read is retried and gets zeros */
		}
	}
	/* Not ours: the previous action, on the same fault once this returns. */
	sigaction(sig, &guard_old, NULL);
}

static void
guard_install(void)
{
	struct sigaction sa;

	guard_page = (size_t)sysconf(_SC_PAGESIZE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigaction(SIGBUS, &sa, &guard_old);
}

static void
guard_add(const void *base, size_t len)
{
	pthread_once(&guard_once, guard_install);
	for (int i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t free_slot = 0;

		/* Claim the slot, then give it a length: until then it matches
		 * nothing (a free slot's length is 0). */
		if (atomic_compare_exchange_strong(&guard_maps[i].base, &free_slot,
						   (uintptr_t)base)) {
			atomic_store(&guard_maps[i].len, len);
			return;
		}
	}
	/* All slots taken: this mapping is unguarded (a SIGBUS kills, as before). */
}

/* Unmap a shard mapped by map_file. */
static void
unmap_file(const void *base, size_t len)
{
	for (int i = 0; i < GUARD_SLOTS; i++)
		if (atomic_load(&guard_maps[i].base) == (uintptr_t)base) {
			atomic_store(&guard_maps[i].len, 0);
			atomic_store(&guard_maps[i].base, 0);
			break;
		}
	munmap((void *)base, len);
}

bool
st_changed(void)
{
	return atomic_load(&guard_changed);
}

/* Map the whole file read-only; the fd is closed before returning. */
static int
map_file(const char *path, const uint8_t **base, size_t *len, char **cause)
{
	struct stat sb;
	void *p;
	int fd;

	/* O_NONBLOCK: a FIFO named like a shard is refused below, not waited on. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) == -1)
		return cause_set(cause, "%s: %s", path, strerror(errno));
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) || (uintmax_t)sb.st_size > SIZE_MAX) {
		close(fd);
		return cause_set(cause, "%s: not a regular file", path);
	}
	if (sb.st_size < 8) {
		close(fd);
		return cause_set(cause,
				 "%s: file is %jd bytes, too short for a safetensors header "
				 "(truncated?)",
				 path, (intmax_t)sb.st_size);
	}
	p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return cause_set(cause, "%s: mmap: %s", path, strerror(errno));
#ifdef MADV_DONTDUMP
	/* Tens of gigabytes of weights in a core file help nobody. */
	madvise(p, (size_t)sb.st_size, MADV_DONTDUMP);
#endif
	guard_add(p, (size_t)sb.st_size);
	*base = p;
	*len = (size_t)sb.st_size;
	return 0;
}

/* One shard mapped and its header parsed, not yet part of a set. */
struct shard_job {
	const char *path;
	int index;
	const uint8_t *base;
	size_t len;
	struct hdr h;
	char *cause;
	int rc;
};

static void *
shard_load(void *arg)
{
	struct shard_job *j = arg;

	memset(&j->h, 0, sizeof(j->h));
	j->rc = map_file(j->path, &j->base, &j->len, &j->cause);
	if (j->rc == 0)
		j->rc = parse_header(j->base, j->len, j->path, j->index, &j->h, &j->cause);
	return NULL;
}

/* shard_load on a thread of its own; it also runs inline, on the caller's thread. */
static void *
shard_thread(void *arg)
{
	thread_role_set(ROLE_IO);
	return shard_load(arg);
}

/* Append a loaded shard (mapping and tensors) to the set; the set owns them after. */
static void
set_add_job(struct st_set *set, struct shard_job *j)
{
	struct st_shard *sh;

	set->shards = xrealloc(set->shards, (size_t)(set->n_shards + 1) * sizeof(*set->shards));
	sh = &set->shards[set->n_shards++];
	memset(sh, 0, sizeof(*sh));
	sh->base = j->base;
	sh->len = j->len;
	sh->path = xstrdup(j->path);
	if (j->h.n > 0) {
		set->tensors =
			xrealloc(set->tensors, (set->n_tensors + j->h.n) * sizeof(*set->tensors));
		memcpy(set->tensors + set->n_tensors, j->h.t, j->h.n * sizeof(*j->h.t));
		set->n_tensors += j->h.n;
	}
	free(j->h.t); /* the names moved into the set */
	free(j->h.spans);
	memset(&j->h, 0, sizeof(j->h));
}

/* Map `path`, check its header and append its tensors to the set. */
static int
set_add_file(struct st_set *set, const char *path, char **cause)
{
	struct shard_job j = { .path = path, .index = set->n_shards };

	shard_load(&j);
	if (j.rc != 0) {
		if (j.base != NULL)
			unmap_file(j.base, j.len);
		hdr_release(&j.h);
		cause_set(cause, "%s", j.cause);
		free(j.cause);
		return -1;
	}
	set_add_job(set, &j);
	return 0;
}

/* Shards being loaded side by side: one thread per shard. */
struct shard_batch {
	struct shard_job *j; /* [n] */
	pthread_t *th;       /* [n] */
	bool *started;       /* [n] a thread runs j[i] */
	bool *taken;         /* [n] j[i] was handed to a set */
	int n;
};

static struct shard_batch *
batch_start(const char *dir, const char *const *files, int n, int first_index)
{
	struct shard_batch *b = xcalloc(1, sizeof(*b));

	b->n = n;
	b->j = xcalloc((size_t)MAX(n, 1), sizeof(*b->j));
	b->th = xcalloc((size_t)MAX(n, 1), sizeof(*b->th));
	b->started = xcalloc((size_t)MAX(n, 1), sizeof(*b->started));
	b->taken = xcalloc((size_t)MAX(n, 1), sizeof(*b->taken));
	for (int i = 0; i < n; i++) {
		b->j[i].path = xasprintf("%s/%s", dir, files[i]);
		b->j[i].index = first_index + i;
		b->started[i] =
			n > 1 && pthread_create(&b->th[i], NULL, shard_thread, &b->j[i]) == 0;
		if (!b->started[i])
			shard_load(&b->j[i]);
	}
	return b;
}

static void
batch_join(struct shard_batch *b)
{
	for (int i = 0; i < b->n; i++)
		if (b->started[i]) {
			pthread_join(b->th[i], NULL);
			b->started[i] = false;
		}
}

/* Release what no set took (mappings, headers) and the batch.  Accepts NULL. */
static void
batch_free(struct shard_batch *b)
{
	if (b == NULL)
		return;
	batch_join(b);
	for (int i = 0; i < b->n; i++) {
		if (!b->taken[i]) {
			if (b->j[i].base != NULL)
				unmap_file(b->j[i].base, b->j[i].len);
			hdr_release(&b->j[i].h);
		}
		free(b->j[i].cause);
		free((char *)b->j[i].path);
	}
	free(b->j), free(b->th), free(b->started), free(b->taken);
	free(b);
}

/* The job loading file name `f` (the last path component), or NULL. */
static struct shard_job *
batch_find(struct shard_batch *b, const char *f, int *at)
{
	for (int i = 0; i < b->n; i++) {
		const char *p = strrchr(b->j[i].path, '/');

		if (strcmp(p != NULL ? p + 1 : b->j[i].path, f) == 0) {
			*at = i;
			return &b->j[i];
		}
	}
	return NULL;
}

/*
 * Hand the batch's shards to the set in the order `files` names them
 * (messages and shard numbers then do not depend on timing).  -1 with the
 * first failing shard's cause.
 */
static int
batch_take(struct st_set *set, struct shard_batch *b, const char *const *files, int n, char **cause)
{
	batch_join(b);
	for (int i = 0; i < n; i++) {
		int at;
		struct shard_job *j = batch_find(b, files[i], &at);

		if (j == NULL)
			return cause_set(cause, "%s: shard was not loaded", files[i]);
		if (j->rc != 0)
			return cause_set(cause, "%s", j->cause);
		j->index = set->n_shards; /* tensors carry the set's shard number */
		for (size_t k = 0; k < j->h.n; k++)
			j->h.t[k].shard = set->n_shards;
		set_add_job(set, j);
		b->taken[at] = true;
	}
	return 0;
}

static int
set_add_files(struct st_set *set, const char *dir, const char **files, int n, char **cause)
{
	struct shard_batch *b = batch_start(dir, files, n, set->n_shards);
	int rc = batch_take(set, b, files, n, cause);

	batch_free(b);
	return rc;
}

bool
st_is_shard_name(const char *name)
{
	size_t n = strlen(name), sfx = strlen(".safetensors");

	return strncmp(name, "model-", 6) == 0 && strstr(name, "-of-") != NULL && n > sfx &&
	       strcmp(name + n - sfx, ".safetensors") == 0;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files in dir named like shards, sorted; *names malloc'd (free with free_names). */
static int
list_shards(const char *dir, char ***names)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0, cap = 0;

	*names = NULL;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (!st_is_shard_name(e->d_name))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			*names = xrealloc(*names, (size_t)cap * sizeof(**names));
		}
		(*names)[n++] = xstrdup(e->d_name);
	}
	if (d != NULL)
		closedir(d);
	if (n > 1)
		qsort(*names, (size_t)n, sizeof(**names), str_cmp);
	return n;
}

static void
free_names(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Whether the index names exactly the shards found in the directory. */
static bool
same_files(char **found, int n_found, const char **files, int n)
{
	if (n != n_found)
		return false;
	for (int i = 0; i < n; i++)
		if (bsearch(&files[i], found, (size_t)n_found, sizeof(*found), str_cmp) == NULL)
			return false;
	return true;
}

static int
tensor_cmp(const void *a, const void *b)
{
	const struct st_tensor *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Sort by name, refuse a name that two shards both define, sum the sizes. */
static int
set_finish(struct st_set *set, char **cause)
{
	char nm[NAME_SHOW];

	if (set->n_tensors > 1)
		qsort(set->tensors, set->n_tensors, sizeof(*set->tensors), tensor_cmp);
	for (size_t i = 0; i < set->n_tensors; i++) {
		const struct st_tensor *t = &set->tensors[i];

		if (i > 0 && strcmp(t[-1].name, t->name) == 0) {
			str_show(nm, sizeof(nm), t->name);
			return cause_set(cause, "tensor '%s' is defined in both %s and %s", nm,
					 set->shards[t[-1].shard].path, set->shards[t->shard].path);
		}
		set->total_bytes += t->n_bytes;
	}
	return 0;
}

void
st_close(struct st_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n_tensors; i++)
		free((char *)set->tensors[i].name);
	free(set->tensors);
	for (int i = 0; i < set->n_shards; i++) {
		unmap_file(set->shards[i].base, set->shards[i].len);
		free(set->shards[i].path);
	}
	free(set->shards);
	free(set);
}

struct st_set *
st_open_file(const char *path, char **cause)
{
	struct st_set *set = xcalloc(1, sizeof(*set));

	if (set_add_file(set, path, cause) != 0 || set_finish(set, cause) != 0) {
		st_close(set);
		return NULL;
	}
	return set;
}

/*
 * The index names shards by bare file name; anything that could climb out of
 * the model directory is refused.
 */
static int
check_shard_name(const char *idx, const char *tensor, const char *file, char **cause)
{
	char nm[NAME_SHOW], fn[NAME_SHOW];

	if (*file != '\0' && strchr(file, '/') == NULL && strstr(file, "..") == NULL)
		return 0;
	str_show(nm, sizeof(nm), tensor);
	str_show(fn, sizeof(fn), file);
	return cause_set(cause, "%s: tensor '%s': shard name '%s' is not a plain file name", idx,
			 nm, fn);
}

/* The index's weight_map, checked for shape: an object of name -> shard file. */
static json_t *
load_weight_map(const char *idx, json_t **root, char **cause)
{
	json_error_t err;
	json_t *map;
	const char *key;
	json_t *val;
	char nm[NAME_SHOW];

	size_t len;
	char *text = read_file(idx, &len, cause);

	/* json_loadb on the whole file: json_load_file reads it a byte at a time. */
	if (text == NULL)
		return NULL;
	*root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	free(text);
	if (*root == NULL) {
		str_show(nm, sizeof(nm), err.text);
		cause_set(cause, "%s: %s (line %d, column %d)", idx, nm, err.line, err.column);
		return NULL;
	}
	map = json_is_object(*root) ? json_object_get(*root, "weight_map") : NULL;
	if (!json_is_object(map) || json_object_size(map) == 0) {
		cause_set(cause, "%s: weight_map is missing, empty or not an object", idx);
		return NULL;
	}
	json_object_foreach(map, key, val)
	{
		if (!json_is_string(val)) {
			str_show(nm, sizeof(nm), key);
			cause_set(cause, "%s: weight_map: value for '%s' is not a string", idx, nm);
			return NULL;
		}
		if (check_shard_name(idx, key, json_string_value(val), cause) != 0)
			return NULL;
	}
	return map;
}

/* Shard file names in order of first mention; *files is [*n_files], strings borrowed. */
static void
distinct_files(json_t *map, const char ***files, int *n_files)
{
	const char *key;
	json_t *val;

	*files = xcalloc(json_object_size(map), sizeof(**files));
	*n_files = 0;
	json_object_foreach(map, key, val)
	{
		const char *f = json_string_value(val);
		int i;

		for (i = 0; i < *n_files && strcmp((*files)[i], f) != 0; i++)
			;
		if (i == *n_files)
			(*files)[(*n_files)++] = f;
	}
}

/* Every tensor the index maps must be in the shard it names. */
static int
check_map(const struct st_set *set, const char *idx, json_t *map, char **cause)
{
	const char *key;
	json_t *val;

	json_object_foreach(map, key, val)
	{
		const struct st_tensor *t = st_find(set, key);
		const char *f = json_string_value(val);
		const char *p = t != NULL ? strrchr(set->shards[t->shard].path, '/') : NULL;
		char nm[NAME_SHOW], fn[NAME_SHOW];

		if (t != NULL && strcmp(p != NULL ? p + 1 : set->shards[t->shard].path, f) == 0)
			continue;
		str_show(nm, sizeof(nm), key);
		str_show(fn, sizeof(fn), f);
		return cause_set(cause, "%s: tensor '%s' mapped to '%s' but not found there", idx,
				 nm, fn);
	}
	return 0;
}

/*
 * DESIGN: parsing the index (20 MB of JSON for the 80B model) and the shard
 * headers are the bulk of opening a checkpoint.  The shards the directory
 * holds under Hugging Face's usual names start loading at once, while this
 * thread parses the index; when the index names exactly those files the work
 * is kept, else it is dropped and the shards the index names are loaded.
 */
static struct st_set *
open_index(const char *dir, const char *idx, char **cause)
{
	struct st_set *set = xcalloc(1, sizeof(*set));
	json_t *root = NULL, *map;
	const char **files = NULL;
	char **found = NULL;
	int n_files = 0, n_found = list_shards(dir, &found);
	struct shard_batch *spec = NULL;

	if (n_found > 0)
		spec = batch_start(dir, (const char *const *)found, n_found, 0);
	if ((map = load_weight_map(idx, &root, cause)) == NULL)
		goto fail;
	distinct_files(map, &files, &n_files);
	if (spec != NULL && same_files(found, n_found, files, n_files)) {
		if (batch_take(set, spec, files, n_files, cause) != 0)
			goto fail;
	} else if (set_add_files(set, dir, files, n_files, cause) != 0)
		goto fail;
	if (set_finish(set, cause) != 0 || check_map(set, idx, map, cause) != 0)
		goto fail;
	batch_free(spec);
	free_names(found, n_found);
	free(files);
	json_decref(root);
	return set;
fail:
	batch_free(spec);
	free_names(found, n_found);
	free(files);
	json_decref(root);
	st_close(set);
	return NULL;
}

struct st_set *
st_open_dir(const char *dir, char **cause)
{
	struct st_set *set = NULL;
	struct stat sb;
	char *idx = xasprintf("%s/%s", dir, INDEX_NAME);
	char *one = xasprintf("%s/%s", dir, SINGLE_NAME);

	if (stat(dir, &sb) == -1)
		cause_set(cause, "%s: %s", dir, strerror(errno));
	else if (!S_ISDIR(sb.st_mode))
		cause_set(cause, "%s: not a directory", dir);
	else if (stat(idx, &sb) == 0 || errno != ENOENT)
		set = open_index(dir, idx, cause);
	else if (stat(one, &sb) == 0 || errno != ENOENT)
		set = st_open_file(one, cause);
	else
		cause_set(cause, "%s: no %s or %s in this directory", dir, INDEX_NAME, SINGLE_NAME);
	free(one);
	free(idx);
	return set;
}

static int
find_cmp(const void *key, const void *elem)
{
	const struct st_tensor *t = elem;

	return strcmp(key, t->name);
}

const struct st_tensor *
st_find(const struct st_set *set, const char *name)
{
	if (set == NULL || set->n_tensors == 0)
		return NULL;
	return bsearch(name, set->tensors, set->n_tensors, sizeof(*set->tensors), find_cmp);
}

size_t
st_count(const struct st_set *set)
{
	return set->n_tensors;
}

const struct st_tensor *
st_at(const struct st_set *set, size_t i)
{
	return i < set->n_tensors ? &set->tensors[i] : NULL;
}

int
st_shard_count(const struct st_set *set)
{
	return set->n_shards;
}

const char *
st_shard_path(const struct st_set *set, int i)
{
	return i >= 0 && i < set->n_shards ? set->shards[i].path : NULL;
}

const void *
st_shard_base(const struct st_set *set, int i, size_t *len)
{
	if (i < 0 || i >= set->n_shards)
		return NULL;
	if (len != NULL)
		*len = set->shards[i].len;
	return set->shards[i].base;
}

uint64_t
st_total_bytes(const struct st_set *set)
{
	return set->total_bytes;
}
