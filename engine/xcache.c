/*
 * xcache.c - the expert cache (see xcache.h).
 *
 * DESIGN: every routed expert (layer, x) has a record that outlives its
 * residence: its use count (aged by halving every AGE_TICKS ticks), the
 * tick of its last use, and the slot holding it or -1.  A slot is a fixed
 * stretch of one anonymous mapping, big enough for the largest expert, in
 * one of four states: FREE, LOADING (queued or being read), READY, FAILED.
 * One mutex guards records, slots and the read queue; the I/O threads hold
 * it only to take a job and to publish its result, never across pread.
 * Beside them, a watcher thread looks at memory every WATCH_MS and resizes
 * (resize never waits: slots it gives back go when unpinned or read).
 *
 * An expert's tensors (qweight, qzeros, scales of gate, up and down) are
 * read as one span of the file when they lie together in one shard (the
 * usual case: safetensors writers keep a module's tensors side by side),
 * else tensor by tensor.  The span lands at the same offset modulo 64 as in
 * the file, so pointers into the slot are aligned as the mapping's were.
 * After a read the file range is dropped from the page cache
 * (POSIX_FADV_DONTNEED): the copy in the slot is the one that counts, and a
 * second copy would only push out the every-token weights.
 *
 * Replacement: a victim is the slot with the lowest (use count, last use)
 * among SAMPLE random unpinned READY or FAILED slots, which is within a few
 * percent of exact LFU at O(1) per miss (Redis's approximated LFU).  Records
 * keep their counts while the expert is out, so an expert that was popular
 * comes back ahead of a one-off.
 */
#include "xcache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels.h"
#include "log.h"
#include "model.h"
#include "safetensors.h"
#include "sysinfo.h"
#include "thread-role.h"
#include "util.h"

#define MAX_PARTS      12          /* tensors per expert: 3 matrices x (qweight, qzeros, scales) */
#define SAMPLE         16          /* slots looked at per eviction */
#define IO_THREADS     4           /* reads in flight by default */
#define AGE_TICKS      64          /* use counts halve this often */
#define SPAN_SLACK     (64u << 10) /* read one span if the gaps add at most this */
#define WATCH_MS       100         /* between memory-pressure looks (the watcher thread) */
#define PSI_SHRINK     10.0        /* some avg10 (%) above which the cache gives memory back */
/* Memory left to everything else: 512 MB or 3 % of RAM.  The watcher shrinks the cache
 * when other programs take more. */
#define RESERVE(total) MAX((uint64_t)512 << 20, (total) / 33)

enum slot_state { FREE, LOADING, READY, FAILED };

struct part {
	int shard;
	uint64_t off; /* in the file */
	size_t len;
	size_t dst;      /* in the slot */
	const void *src; /* in the mapping: what the qmat pointed at */
};

struct expert {
	int slot;      /* -1: not in memory */
	uint32_t uses; /* aged use count */
	uint32_t last; /* tick of the last use */
	uint8_t n_parts;
	bool span; /* one read covers every part */
	struct part parts[MAX_PARTS];
};

struct slot {
	enum slot_state state;
	int expert; /* record index, -1 when FREE */
	int pins;
	bool spec; /* read on a guess, not yet demanded */
	char *err; /* FAILED: one line */
	struct qmat q[3];
};

struct shard_file {
	int fd;
	const char *path;
	off_t size;
	struct timespec mtime;
};

struct xcache {
	const struct model *m;
	struct xcache_opts o;
	int n_layers, n_exp; /* records: [n_layers][n_exp]; non-MoE layers unused */
	struct expert *ex;
	struct shard_file *files;
	int n_files;

	uint8_t *mem; /* slots_max * stride bytes, anonymous */
	size_t stride;
	struct slot *slots;
	int slots_max, n_slots;
	int *free_stack, n_free;

	int *queue, q_head, q_len; /* ring of slot indices to read */

	pthread_mutex_t mu;
	pthread_cond_t work, done;
	pthread_cond_t quit_cv; /* wakes the watcher to quit */
	pthread_t *io;
	int n_io;
	bool quit;

	pthread_t warm;
	bool warm_started;
	pthread_t watch;
	bool watch_started;
	int min_slots; /* the watcher shrinks no further: 4 x top-k (at least 2) */
	atomic_bool warm_stop;

	uint32_t tick;
	uint64_t rng;
	int guess_layer, guess_n, guess[64];
	uint64_t resident; /* bytes of every-token weights the page cache should keep */
	struct xcache_stats st;
};

/* ---- layout of an expert in the files ---------------------------------- */

static int
cmp_ptr(const void *a, const void *b)
{
	const struct st_tensor *x = *(const struct st_tensor *const *)a;
	const struct st_tensor *y = *(const struct st_tensor *const *)b;

	return (uintptr_t)x->data < (uintptr_t)y->data ? -1
						       : (uintptr_t)x->data > (uintptr_t)y->data;
}

/* The tensor whose bytes begin at p (by[] sorted by data), or NULL. */
static const struct st_tensor *
tensor_at(const struct st_tensor **by, size_t n, const void *p)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if ((uintptr_t)by[mid]->data < (uintptr_t)p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && by[lo]->data == p ? by[lo] : NULL;
}

static int
add_part(struct xcache *xc, struct expert *e, const struct st_tensor **by, size_t n, const void *p,
	 char **cause)
{
	const struct st_tensor *t;
	struct part *pt;
	size_t len;

	if (p == NULL)
		return 0;
	if ((t = tensor_at(by, n, p)) == NULL)
		return cause_set(cause, "expert cache: a weight is not the start of a tensor");
	if (e->n_parts == MAX_PARTS)
		return cause_set(cause, "expert cache: too many tensors in one expert");
	pt = &e->parts[e->n_parts++];
	pt->shard = t->shard;
	pt->off = (uint64_t)((const char *)t->data -
			     (const char *)st_shard_base(xc->m->st, t->shard, &len));
	pt->len = t->n_bytes;
	pt->src = t->data;
	return 0;
}

/* The tensors of one matrix: qweight, qzeros and scales, or its float weights. */
static int
add_mat(struct xcache *xc, struct expert *e, const struct st_tensor **by, size_t n,
	const struct qmat *q, char **cause)
{
	if (q->fmt != WFMT_GPTQ)
		return add_part(xc, e, by, n, q->w, cause);
	if (add_part(xc, e, by, n, q->qweight, cause) != 0 ||
	    add_part(xc, e, by, n, q->qzeros, cause) != 0)
		return -1;
	return add_part(xc, e, by, n, q->scales, cause);
}

static int
cmp_part(const void *a, const void *b)
{
	const struct part *x = a, *y = b;

	if (x->shard != y->shard)
		return x->shard - y->shard;
	return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * Lay the expert out in its slot: one span of the file when its parts lie
 * together, else packed on 64-byte boundaries.  Returns the bytes needed.
 */
static size_t
plan_expert(struct expert *e)
{
	size_t sum = 0, at = 0, span;
	const struct part *a = &e->parts[0], *z = &e->parts[e->n_parts - 1];

	qsort(e->parts, e->n_parts, sizeof(e->parts[0]), cmp_part);
	for (int i = 0; i < e->n_parts; i++)
		sum += e->parts[i].len;
	span = (size_t)(z->off + z->len - a->off);
	e->span = a->shard == z->shard && span <= sum + SPAN_SLACK;
	for (int i = 0; i < e->n_parts; i++) {
		struct part *p = &e->parts[i];

		if (e->span) {
			p->dst = (size_t)(a->off % 64 + (p->off - a->off));
		} else {
			at = (at + 63) / 64 * 64;
			p->dst = at + (size_t)(p->off % 64);
			at = p->dst + p->len;
		}
	}
	return e->span ? (size_t)(a->off % 64) + span : at;
}

static int
layout(struct xcache *xc, char **cause)
{
	const struct model *m = xc->m;
	size_t n = st_count(m->st), need = 0;
	const struct st_tensor **by = xmalloc(n * sizeof(*by));
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		by[i] = st_at(m->st, i);
	qsort(by, n, sizeof(*by), cmp_ptr);
	for (int l = 0; l < xc->n_layers && rc == 0; l++) {
		const struct layer_moe *w = &m->layers[l].moe_w;

		if (!m->layers[l].moe)
			continue;
		for (int x = 0; x < xc->n_exp && rc == 0; x++) {
			struct expert *e = &xc->ex[l * xc->n_exp + x];
			const struct qmat *q[3] = { &w->gate[x], &w->up[x], &w->down[x] };

			for (int k = 0; k < 3 && rc == 0; k++)
				rc = add_mat(xc, e, by, n, q[k], cause);
			if (rc == 0)
				need = MAX(need, plan_expert(e));
		}
	}
	free(by);
	xc->stride = (need + 4095) / 4096 * 4096;
	return rc;
}

/* The qmats of expert record i, pointing into slot s's memory. */
static void
bind_slot(struct xcache *xc, int s, int i)
{
	const struct layer_moe *w = &xc->m->layers[i / xc->n_exp].moe_w;
	const struct expert *e = &xc->ex[i];
	uint8_t *base = xc->mem + (size_t)s * xc->stride;
	struct qmat *q = xc->slots[s].q;
	int x = i % xc->n_exp;

	q[0] = w->gate[x];
	q[1] = w->up[x];
	q[2] = w->down[x];
	for (int k = 0; k < 3; k++)
		for (int p = 0; p < e->n_parts; p++) {
			const void *src = e->parts[p].src, *dst = base + e->parts[p].dst;

			if (q[k].qweight == src)
				q[k].qweight = dst;
			if (q[k].qzeros == src)
				q[k].qzeros = dst;
			if (q[k].scales == src)
				q[k].scales = dst;
			if (q[k].w == src)
				q[k].w = dst;
		}
}

/* ---- reading ------------------------------------------------------------- */

static int
read_full(struct xcache *xc, int f, void *buf, size_t len, uint64_t off, char **cause)
{
	const struct shard_file *sf = &xc->files[f];
	struct stat sb;
	size_t got = 0;

	if (fstat(sf->fd, &sb) != 0 || sb.st_size != sf->size ||
	    sb.st_mtim.tv_sec != sf->mtime.tv_sec || sb.st_mtim.tv_nsec != sf->mtime.tv_nsec)
		return cause_set(cause,
				 "%s: the file changed while the model was open "
				 "(restart qnext to load it again)",
				 sf->path);
	while (got < len) {
		ssize_t r = xc->o.read(sf->fd, (char *)buf + got, len - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return cause_set(cause, "%s: read of %zu bytes at offset %llu failed: %s",
					 sf->path, len - got, (unsigned long long)(off + got),
					 strerror(errno));
		if (r == 0)
			return cause_set(cause, "%s: file ends before offset %llu (it shrank?)",
					 sf->path, (unsigned long long)(off + got));
		got += (size_t)r;
	}
	posix_fadvise(sf->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	return 0;
}

/* Read expert record i into slot s (no lock held).  0, or -1 and *cause. */
static int
read_expert(struct xcache *xc, int i, int s, uint64_t *bytes, char **cause)
{
	const struct expert *e = &xc->ex[i];
	uint8_t *base = xc->mem + (size_t)s * xc->stride;

	if (e->span) {
		const struct part *a = &e->parts[0], *z = &e->parts[e->n_parts - 1];
		size_t len = (size_t)(z->off + z->len - a->off);

		*bytes = len;
		return read_full(xc, a->shard, base + a->dst, len, a->off, cause);
	}
	*bytes = 0;
	for (int p = 0; p < e->n_parts; p++) {
		if (read_full(xc, e->parts[p].shard, base + e->parts[p].dst, e->parts[p].len,
			      e->parts[p].off, cause) != 0)
			return -1;
		*bytes += e->parts[p].len;
	}
	return 0;
}

static void trim(struct xcache *xc, int s);

static void *
io_main(void *arg)
{
	struct xcache *xc = arg;

	thread_role_set(ROLE_IO);
	pthread_mutex_lock(&xc->mu);
	for (;;) {
		int s, i, rc;
		uint64_t bytes = 0;
		char *err = NULL;

		while (xc->q_len == 0 && !xc->quit)
			pthread_cond_wait(&xc->work, &xc->mu);
		if (xc->quit)
			break;
		s = xc->queue[xc->q_head];
		xc->q_head = (xc->q_head + 1) % xc->slots_max;
		xc->q_len--;
		i = xc->slots[s].expert;
		pthread_mutex_unlock(&xc->mu);
		rc = read_expert(xc, i, s, &bytes, &err);
		if (rc != 0)
			log_warn("expert cache: %s", err ? err : "read failed");
		pthread_mutex_lock(&xc->mu);
		xc->st.bytes_read += bytes;
		if (rc == 0) {
			bind_slot(xc, s, i);
			xc->slots[s].state = READY;
		} else {
			xc->slots[s].state = FAILED;
			free(xc->slots[s].err);
			xc->slots[s].err = err;
		}
		trim(xc, s);
		pthread_cond_broadcast(&xc->done);
	}
	pthread_mutex_unlock(&xc->mu);
	return NULL;
}

static void
enqueue(struct xcache *xc, int s, bool front)
{
	if (front) {
		xc->q_head = (xc->q_head + xc->slots_max - 1) % xc->slots_max;
		xc->queue[xc->q_head] = s;
	} else {
		xc->queue[(xc->q_head + xc->q_len) % xc->slots_max] = s;
	}
	xc->q_len++;
	pthread_cond_signal(&xc->work);
}

/* ---- slots ---------------------------------------------------------------- */

static uint32_t
rng_next(struct xcache *xc)
{
	xc->rng = xc->rng * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(xc->rng >> 33);
}

static bool
evictable(const struct xcache *xc, int s)
{
	const struct slot *sl = &xc->slots[s];

	return sl->pins == 0 && (sl->state == READY || sl->state == FAILED);
}

/* Whether slot a's expert is worth less than slot b's. */
static bool
colder(const struct xcache *xc, int a, int b)
{
	const struct expert *x = &xc->ex[xc->slots[a].expert], *y = &xc->ex[xc->slots[b].expert];

	return x->uses != y->uses ? x->uses < y->uses : (int32_t)(x->last - y->last) < 0;
}

static void
evict(struct xcache *xc, int s)
{
	struct slot *sl = &xc->slots[s];

	xc->ex[sl->expert].slot = -1;
	sl->expert = -1;
	sl->state = FREE;
	sl->spec = false;
	free(sl->err);
	sl->err = NULL;
	xc->st.evictions++;
}

/* A slot to read into: a free one, else the coldest of a sample.  -1: none now. */
static int
take_slot(struct xcache *xc)
{
	int best = -1;

	if (xc->n_free > 0)
		return xc->free_stack[--xc->n_free];
	for (int k = 0; k < SAMPLE; k++) {
		int s = (int)(rng_next(xc) % (uint32_t)xc->n_slots);

		if (evictable(xc, s) && (best < 0 || colder(xc, s, best)))
			best = s;
	}
	for (int s = 0; best < 0 && s < xc->n_slots; s++)
		if (evictable(xc, s))
			best = s;
	/* Every slot pinned or being read just after a shrink: borrow one beyond the
	 * size (the next trim gives it back) rather than wait for our own pins. */
	for (int s = xc->n_slots; best < 0 && s < xc->slots_max; s++)
		if (xc->slots[s].state == FREE || evictable(xc, s))
			best = s;
	if (best >= 0 && xc->slots[best].state != FREE)
		evict(xc, best);
	return best;
}

static void
start_read(struct xcache *xc, int i, int s, bool front)
{
	struct slot *sl = &xc->slots[s];

	sl->expert = i;
	sl->state = LOADING;
	xc->ex[i].slot = s;
	enqueue(xc, s, front);
}

int
xcache_pin(struct xcache *xc, int l, int x)
{
	int i = l * xc->n_exp + x, s;
	struct expert *e = &xc->ex[i];

	pthread_mutex_lock(&xc->mu);
	e->uses++;
	e->last = xc->tick;
	if ((s = e->slot) >= 0) {
		struct slot *sl = &xc->slots[s];

		if (sl->state == READY)
			xc->st.hits++;
		else if (sl->state == LOADING)
			xc->st.late++;
		if (sl->spec)
			xc->st.spec_used++;
		sl->spec = false;
		if (sl->state == FAILED && sl->pins == 0) { /* try again */
			xc->st.misses++;
			sl->state = LOADING;
			enqueue(xc, s, true);
		}
	} else {
		double t0 = now_sec();

		xc->st.misses++;
		while ((s = take_slot(xc)) < 0)
			pthread_cond_wait(&xc->done, &xc->mu);
		xc->st.wait_s += now_sec() - t0;
		start_read(xc, i, s, true);
	}
	xc->slots[s].pins++;
	pthread_mutex_unlock(&xc->mu);
	return s;
}

bool
xcache_ready(struct xcache *xc, int h)
{
	bool r;

	pthread_mutex_lock(&xc->mu);
	r = xc->slots[h].state == READY;
	pthread_mutex_unlock(&xc->mu);
	return r;
}

const struct qmat *
xcache_wait(struct xcache *xc, int h, char **cause)
{
	struct slot *sl = &xc->slots[h];
	const struct qmat *q = NULL;
	double t0 = now_sec();

	pthread_mutex_lock(&xc->mu);
	for (int tries = 0;; tries++) {
		while (sl->state == LOADING)
			pthread_cond_wait(&xc->done, &xc->mu);
		if (sl->state != FAILED || tries == 1)
			break;
		/* Once more: the read may have been started before this pin, in a turn that
		 * failed, and a fault may have passed since. */
		sl->state = LOADING;
		enqueue(xc, h, true);
	}
	xc->st.wait_s += now_sec() - t0;
	if (sl->state == READY)
		q = sl->q;
	else
		cause_set(cause, "%s", sl->err != NULL ? sl->err : "expert cache: read failed");
	pthread_mutex_unlock(&xc->mu);
	return q;
}

void
xcache_unpin(struct xcache *xc, int h)
{
	pthread_mutex_lock(&xc->mu);
	if (--xc->slots[h].pins == 0)
		trim(xc, h);
	pthread_mutex_unlock(&xc->mu);
}

void
xcache_speculate(struct xcache *xc, int l, const int *xs, int n)
{
	pthread_mutex_lock(&xc->mu);
	/* A guess of a token's choices is scored; a prompt's whole-layer read-ahead is not. */
	xc->guess_layer = n <= (int)(sizeof(xc->guess) / sizeof(xc->guess[0])) ? l : -1;
	xc->guess_n = xc->guess_layer >= 0 ? n : 0;
	memcpy(xc->guess, xs, (size_t)xc->guess_n * sizeof(int));
	for (int k = 0; k < n; k++) {
		int i = l * xc->n_exp + xs[k], s;

		if (xc->ex[i].slot >= 0)
			continue;
		/* A guess may only take a slot that is free or holds something colder than
		 * the hottest expert it would push out; take_slot's sample decides. */
		if ((s = take_slot(xc)) < 0)
			break;
		xc->slots[s].spec = true;
		xc->st.spec_issued++;
		start_read(xc, i, s, false);
	}
	pthread_mutex_unlock(&xc->mu);
}

void
xcache_score(struct xcache *xc, int l, const int *xs, int n)
{
	pthread_mutex_lock(&xc->mu);
	if (xc->guess_layer == l) {
		xc->st.predicted += (uint64_t)xc->guess_n;
		for (int a = 0; a < xc->guess_n; a++)
			for (int b = 0; b < n; b++)
				xc->st.predicted_ok += xc->guess[a] == xs[b];
		xc->guess_layer = -1;
	}
	pthread_mutex_unlock(&xc->mu);
}

int
xcache_capacity(const struct xcache *xc)
{
	struct xcache *w = (struct xcache *)xc; /* the lock is not part of the value */
	int n;

	pthread_mutex_lock(&w->mu);
	n = xc->n_slots;
	pthread_mutex_unlock(&w->mu);
	return n;
}

/* Evict slot s and return its memory, if it lies beyond n_slots and nobody needs it now. */
static void
trim(struct xcache *xc, int s)
{
	struct slot *sl = &xc->slots[s];

	if (s < xc->n_slots || sl->pins > 0 || sl->state == LOADING)
		return;
	if (sl->state != FREE)
		evict(xc, s);
	madvise(xc->mem + (size_t)s * xc->stride, xc->stride, MADV_DONTNEED);
}

/*
 * Hold n slots from now on (lock held).  Slots beyond n that are pinned or
 * being read are given back when they are unpinned or their read ends
 * (trim): resize never waits, so the watcher cannot wait on the owner while
 * the owner waits for a slot.
 */
static void
resize(struct xcache *xc, int n)
{
	int old = xc->n_slots;

	n = MAX(2, MIN(n, xc->slots_max));
	xc->n_slots = n;
	for (int s = n; s < old; s++)
		trim(xc, s);
	xc->n_free = 0;
	for (int s = n - 1; s >= 0; s--)
		if (xc->slots[s].state == FREE)
			xc->free_stack[xc->n_free++] = s;
}

void
xcache_set_slots(struct xcache *xc, int slots)
{
	pthread_mutex_lock(&xc->mu);
	resize(xc, slots);
	pthread_mutex_unlock(&xc->mu);
}

/* some avg10 of /proc/pressure/memory in percent, or 0 when absent. */
static double
psi_some10(void)
{
	char buf[256];
	double v = 0;
	FILE *f = fopen("/proc/pressure/memory", "re");

	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL)
		sscanf(buf, "some avg10=%lf", &v);
	fclose(f);
	return v;
}

/*
 * MemAvailable counts the page cache that holds the every-token weights as
 * free, but evicting it would cost a disk read per page on the next token:
 * what is really free is MemAvailable less those weights.
 */
static void
watch_memory(struct xcache *xc)
{
	struct sysinfo_mem mi;
	uint64_t reserve, sb = xc->stride, free_b, step;
	double psi;
	int n;

	if (sysinfo_mem_effective(&mi) != 0 || mi.total == 0)
		return;
	reserve = RESERVE(mi.total);
	free_b = mi.available > xc->resident ? mi.available - xc->resident : 0;
	psi = psi_some10();
	pthread_mutex_lock(&xc->mu);
	n = xc->n_slots;
	/* Another program is taking memory, maybe fast (a build, a browser): give back what
	 * brings the reserve back and 512 MB or 5 % of the cache more, so that the next
	 * look, 100 ms on, finds room again rather than the OOM killer's choice. */
	step = MAX((uint64_t)512 << 20, (uint64_t)n * sb / 20);
	if (free_b < reserve / 2)
		n -= (int)((reserve - free_b + step) / sb) + 1;
	else if (psi > PSI_SHRINK)
		n -= (int)(step / sb) + 1;
	else if (n < xc->slots_max && free_b > reserve + ((uint64_t)1 << 30))
		n += (int)MIN((uint64_t)(xc->slots_max - n),
			      (free_b - reserve - ((uint64_t)1 << 30)) / 2 / sb);
	n = MAX(n, MIN(xc->n_slots, xc->min_slots));
	if (n != xc->n_slots) {
		log_info("expert cache: %d -> %d slots (free %llu MB, reserve %llu MB, psi %.1f%%)",
			 xc->n_slots, n, (unsigned long long)(free_b >> 20),
			 (unsigned long long)(reserve >> 20), psi);
		if (n < xc->n_slots)
			xc->st.shrinks++;
		resize(xc, n);
	}
	pthread_mutex_unlock(&xc->mu);
}

/* The memory-pressure watcher: every WATCH_MS, whatever the owner is doing (it may be
 * waiting for a read, or between turns). */
static void *
watch_main(void *arg)
{
	struct xcache *xc = arg;

	thread_role_set(ROLE_IO);
	pthread_mutex_lock(&xc->mu);
	while (!xc->quit) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += WATCH_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&xc->quit_cv, &xc->mu, &until);
		if (xc->quit)
			break;
		pthread_mutex_unlock(&xc->mu);
		watch_memory(xc);
		pthread_mutex_lock(&xc->mu);
	}
	pthread_mutex_unlock(&xc->mu);
	return NULL;
}

void
xcache_tick(struct xcache *xc)
{
	pthread_mutex_lock(&xc->mu);
	if (++xc->tick % AGE_TICKS == 0)
		for (int i = 0; i < xc->n_layers * xc->n_exp; i++)
			xc->ex[i].uses /= 2;
	pthread_mutex_unlock(&xc->mu);
}

void
xcache_stats(const struct xcache *xc, struct xcache_stats *s)
{
	struct xcache *w = (struct xcache *)xc; /* the lock is not part of the value */

	pthread_mutex_lock(&w->mu);
	*s = xc->st;
	s->slots = xc->n_slots;
	s->slots_max = xc->slots_max;
	s->used = 0;
	for (int i = 0; i < xc->n_slots; i++)
		s->used += xc->slots[i].state != FREE;
	s->slot_bytes = xc->stride;
	pthread_mutex_unlock(&w->mu);
}

/* ---- every-token weights -------------------------------------------------- */

static bool
embed_tied(const struct model *m)
{
	return m->embed.w != NULL && m->embed.w == m->lm_head.w;
}

/*
 * Read everything but the routed experts once, so the first tokens do not
 * fault it in page by page; afterwards every token touches it and the page
 * cache keeps it.
 */
static void *
warm_main(void *arg)
{
	struct xcache *xc = arg;
	const struct st_set *set = xc->m->st;
	long page = sysconf(_SC_PAGESIZE);

	thread_role_set(ROLE_IO);
	for (size_t i = 0; i < st_count(set) && !xc->warm_stop; i++) {
		const struct st_tensor *t = st_at(set, i);
		uintptr_t a = (uintptr_t)t->data & ~(uintptr_t)(page - 1);
		uintptr_t z = (uintptr_t)t->data + t->n_bytes;
		volatile const char *p;
		char sink = 0;

		if (strstr(t->name, ".mlp.experts.") != NULL || t->n_bytes == 0 ||
		    (strstr(t->name, "embed_tokens") != NULL && !embed_tied(xc->m)))
			continue;
		madvise((void *)a, z - a, MADV_WILLNEED);
		for (p = (const char *)t->data; (uintptr_t)p < z && !xc->warm_stop; p += page)
			sink ^= *p;
		(void)sink;
	}
	return NULL;
}

/* ---- lifetime -------------------------------------------------------------- */

uint64_t
xcache_expert_bytes(const struct model *m)
{
	for (int l = 0; l < m->cfg.n_layers; l++)
		if (m->layers[l].moe && m->cfg.n_experts > 0) {
			const struct layer_moe *w = &m->layers[l].moe_w;

			return qmat_bytes(&w->gate[0]) + qmat_bytes(&w->up[0]) +
			       qmat_bytes(&w->down[0]);
		}
	return 0;
}

uint64_t
xcache_budget(uint64_t model_bytes, uint64_t resident, uint64_t ctx_bytes, uint64_t avail,
	      uint64_t total)
{
	uint64_t reserve = RESERVE(total);

	if (model_bytes + ctx_bytes + reserve <= avail)
		return 0;
	if (resident + ctx_bytes + reserve >= avail)
		return 0;
	return avail - resident - ctx_bytes - reserve;
}

uint64_t
xcache_all_experts_bytes(const struct model *m)
{
	int n = 0;

	for (int l = 0; l < m->cfg.n_layers; l++)
		n += m->layers[l].moe;
	return xcache_expert_bytes(m) * (uint64_t)n * (uint64_t)MAX(m->cfg.n_experts, 0);
}

uint64_t
xcache_resident_bytes(const struct model *m)
{
	uint64_t files = model_files_bytes(m->dir), cold = xcache_all_experts_bytes(m);

	/* A token reads one row of the embedding table, unless lm_head is the same matrix. */
	if (!embed_tied(m))
		cold += qmat_bytes(&m->embed);
	return files > cold ? files - cold : 0;
}

uint64_t
xcache_auto(const struct model *m, uint64_t ctx_bytes)
{
	struct sysinfo_mem mi;

	if (xcache_all_experts_bytes(m) == 0 || sysinfo_mem_effective(&mi) != 0 || mi.total == 0)
		return 0;
	return xcache_budget(model_files_bytes(m->dir), xcache_resident_bytes(m), ctx_bytes,
			     mi.available, mi.total);
}

int
xcache_parse(const char *s, uint64_t *out, char **cause)
{
	static const struct {
		const char *unit;
		double mult;
	} units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "K", 1e3 },
		{ "KB", 1e3 },
		{ "KiB", 1024.0 },
		{ "M", 1e6 },
		{ "MB", 1e6 },
		{ "MiB", 1048576.0 },
		{ "G", 1e9 },
		{ "GB", 1e9 },
		{ "GiB", 1073741824.0 },
		{ "T", 1e12 },
		{ "TB", 1e12 },
		{ "TiB", 1099511627776.0 },
	};
	char *end;
	double v;

	if (strcmp(s, "auto") == 0) {
		*out = XCACHE_AUTO;
		return 0;
	}
	if (strcmp(s, "off") == 0) {
		*out = 0;
		return 0;
	}
	errno = 0;
	v = strtod(s, &end);
	if (end != s && errno == 0 && v >= 0 && v < 1e15)
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strcmp(end, units[i].unit) == 0 && (v == 0 || *end != '\0')) {
				*out = (uint64_t)(v * units[i].mult);
				return 0;
			}
	return cause_set(cause,
			 "--expert-cache '%s': expected auto, off or a size such as "
			 "800M or 12G",
			 s);
}

static int
open_files(struct xcache *xc, char **cause)
{
	xc->n_files = st_shard_count(xc->m->st);
	xc->files = xcalloc((size_t)xc->n_files, sizeof(*xc->files));
	for (int f = 0; f < xc->n_files; f++) {
		struct shard_file *sf = &xc->files[f];
		struct stat sb;

		sf->path = st_shard_path(xc->m->st, f);
		if ((sf->fd = open(sf->path, O_RDONLY | O_CLOEXEC)) < 0)
			return cause_set(cause, "%s: %s", sf->path, strerror(errno));
		if (fstat(sf->fd, &sb) != 0)
			return cause_set(cause, "%s: %s", sf->path, strerror(errno));
		sf->size = sb.st_size;
		sf->mtime = sb.st_mtim;
	}
	return 0;
}

static int
start_threads(struct xcache *xc, char **cause)
{
	xc->n_io = xc->o.io_threads > 0 ? xc->o.io_threads : IO_THREADS;
	xc->io = xcalloc((size_t)xc->n_io, sizeof(*xc->io));
	for (int k = 0; k < xc->n_io; k++)
		if (pthread_create(&xc->io[k], NULL, io_main, xc) != 0) {
			xc->n_io = k;
			return cause_set(cause, "expert cache: cannot start an I/O thread");
		}
	if (xc->o.keep_resident && pthread_create(&xc->warm, NULL, warm_main, xc) == 0)
		xc->warm_started = true;
	if (xc->o.watch_memory && pthread_create(&xc->watch, NULL, watch_main, xc) == 0)
		xc->watch_started = true;
	return 0;
}

struct xcache *
xcache_new(const struct model *m, const struct xcache_opts *o, char **cause)
{
	struct xcache *xc;
	bool any = false;

	for (int l = 0; l < m->cfg.n_layers; l++)
		any |= m->layers[l].moe && m->cfg.n_experts > 0;
	if (!any) {
		cause_set(cause, "expert cache: the model has no routed experts");
		return NULL;
	}
	xc = xcalloc(1, sizeof(*xc));
	xc->m = m;
	xc->o = *o;
	if (xc->o.read == NULL)
		xc->o.read = pread;
	xc->n_layers = m->cfg.n_layers;
	xc->n_exp = m->cfg.n_experts;
	xc->ex = xcalloc((size_t)xc->n_layers * (size_t)xc->n_exp, sizeof(*xc->ex));
	for (int i = 0; i < xc->n_layers * xc->n_exp; i++)
		xc->ex[i].slot = -1;
	xc->guess_layer = -1;
	xc->rng = 0x9E3779B97F4A7C15ull;
	pthread_mutex_init(&xc->mu, NULL);
	pthread_cond_init(&xc->work, NULL);
	pthread_cond_init(&xc->done, NULL);
	pthread_cond_init(&xc->quit_cv, NULL);
	if (layout(xc, cause) != 0 || open_files(xc, cause) != 0)
		goto fail;
	xc->slots_max = (int)MIN(o->budget / xc->stride, (uint64_t)xc->n_layers * xc->n_exp);
	if (xc->slots_max < 2) {
		cause_set(cause,
			  "expert cache: %llu bytes hold fewer than two experts of %zu bytes",
			  (unsigned long long)o->budget, xc->stride);
		goto fail;
	}
	xc->mem = mmap(NULL, (size_t)xc->slots_max * xc->stride, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (xc->mem == MAP_FAILED) {
		xc->mem = NULL;
		cause_set(cause, "expert cache: cannot map %zu bytes: %s",
			  (size_t)xc->slots_max * xc->stride, strerror(errno));
		goto fail;
	}
	xc->slots = xcalloc((size_t)xc->slots_max, sizeof(*xc->slots));
	xc->free_stack = xcalloc((size_t)xc->slots_max, sizeof(int));
	xc->queue = xcalloc((size_t)xc->slots_max, sizeof(int));
	for (int s = 0; s < xc->slots_max; s++)
		xc->slots[s].expert = -1;
	xc->min_slots = MIN(xc->slots_max, MAX(2, 4 * m->cfg.n_experts_per_tok));
	xc->n_slots = xc->slots_max;
	resize(xc, xc->slots_max);
	xc->st.experts = 0;
	for (int l = 0; l < m->cfg.n_layers; l++)
		xc->st.experts += m->layers[l].moe ? xc->n_exp : 0;
	xc->resident = xcache_resident_bytes(m);
	if (start_threads(xc, cause) != 0)
		goto fail;
	log_info("expert cache: %d slots of %zu bytes (%llu MB), %d experts", xc->slots_max,
		 xc->stride, (unsigned long long)((uint64_t)xc->slots_max * xc->stride >> 20),
		 xc->st.experts);
	return xc;
fail:
	log_error("expert cache: %s", cause && *cause ? *cause : "cannot start");
	xcache_free(xc);
	return NULL;
}

void
xcache_free(struct xcache *xc)
{
	if (xc == NULL)
		return;
	pthread_mutex_lock(&xc->mu);
	xc->quit = true;
	pthread_cond_broadcast(&xc->work);
	pthread_cond_broadcast(&xc->quit_cv);
	pthread_mutex_unlock(&xc->mu);
	for (int k = 0; k < xc->n_io; k++)
		pthread_join(xc->io[k], NULL);
	if (xc->warm_started) {
		xc->warm_stop = true;
		pthread_join(xc->warm, NULL);
	}
	if (xc->watch_started)
		pthread_join(xc->watch, NULL);
	for (int f = 0; f < xc->n_files; f++)
		if (xc->files[f].fd > 0)
			close(xc->files[f].fd);
	for (int s = 0; s < xc->slots_max && xc->slots != NULL; s++)
		free(xc->slots[s].err);
	if (xc->mem != NULL)
		munmap(xc->mem, (size_t)xc->slots_max * xc->stride);
	pthread_mutex_destroy(&xc->mu);
	pthread_cond_destroy(&xc->work);
	pthread_cond_destroy(&xc->done);
	pthread_cond_destroy(&xc->quit_cv);
	free(xc->io);
	free(xc->files);
	free(xc->slots);
	free(xc->free_stack);
	free(xc->queue);
	free(xc->ex);
	free(xc);
}
