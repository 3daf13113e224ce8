/*
 * engine.c - the engine thread (see engine.h).
 *
 * DESIGN: one loop blocks on the inbound queue.  Long work (reading the
 * model into memory, prefill, decode) polls the queue between steps without
 * blocking; a message that is not for the running job is kept in `pending`
 * and handled when the job has stopped.  Nothing here is shared with the UI
 * except the two queues.
 *
 * Thread affinity: the engine thread, except engine_start/engine_join.
 */
#include "engine.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model.h"
#include "queue.h"
#include "safetensors.h"
#include "session.h"
#include "sysinfo.h"
#include "util.h"

struct engine {
	pthread_t th;
	struct queue *in, *out;
	struct session *s;
	struct msg pending; /* type 0 = none */
	bool quit;
	uint64_t turn;      /* seq of the running turn */
};

static void
send_msg(struct engine *e, enum msg_type type, uint64_t seq, char *text)
{
	struct msg m = { .type = type, .seq = seq, .text = text };

	queue_push(e->out, &m);
}

/*
 * Look at the inbound queue without blocking.  Returns true when the
 * running job must stop: a cancel of this turn, a quit, or a new job (kept
 * in pending).
 */
static bool
interrupted(struct engine *e)
{
	struct msg m;

	if (e->quit || e->pending.type != 0)
		return true;
	while (queue_pop(e->in, &m)) {
		switch (m.type) {
		case MSG_CANCEL:
			if (m.seq == e->turn) {
				msg_free(&m);
				return true;
			}
			msg_free(&m); /* stale */
			break;
		case MSG_QUIT:
			e->quit = true;
			msg_free(&m);
			return true;
		case MSG_LOAD:
		case MSG_PROMPT:
			e->pending = m;
			return true;
		default:
			msg_free(&m);
			break;
		}
	}
	return false;
}

/* ---- loading -------------------------------------------------------------- */

/*
 * Read the shards into the page cache in order, one sequential pass, so the
 * first answer does not wait on scattered page faults; report progress.
 * Skipped when the weights do not fit in the memory available: then pages
 * come and go on demand and reading ahead would only evict them.
 */
static void
warm(struct engine *e)
{
	const struct st_set *st = session_model(e->s)->st;
	struct sysinfo_mem mem;
	uint64_t total = 0, done = 0;
	volatile unsigned char sink = 0;

	for (int i = 0; i < st_shard_count(st); i++) {
		size_t len;

		st_shard_base(st, i, &len);
		total += len;
	}
	if (sysinfo_mem(&mem) == 0 && total > mem.available) {
		send_msg(e, MSG_PROGRESS, 0, xstrdup("model larger than free memory: reading on demand"));
		return;
	}
	for (int i = 0; i < st_shard_count(st) && !interrupted(e); i++) {
		size_t len;
		const unsigned char *p = st_shard_base(st, i, &len);

		for (size_t at = 0; at < len && !interrupted(e); at += (size_t)64 << 20) {
			size_t n = MIN((size_t)64 << 20, len - at);
			struct msg m = { .type = MSG_PROGRESS, .a = done + n, .b = total };

			madvise((void *)((uintptr_t)(p + at) & ~(uintptr_t)4095), n, MADV_WILLNEED);
			for (size_t k = 0; k < n; k += 4096)
				sink ^= p[at + k];
			done += n;
			m.text = xstrdup("reading weights");
			queue_push(e->out, &m);
		}
	}
	(void)sink;
}

static void
do_load(struct engine *e, struct msg *m)
{
	struct session_opts o = { .dir = m->text, .n_ctx = m->n, .n_threads = m->n2 };
	char *cause = NULL, *desc;
	struct msg r = { .type = MSG_READY };

	session_close(e->s);
	send_msg(e, MSG_PROGRESS, 0, xstrdup("opening"));
	if ((e->s = session_open(&o, &cause)) == NULL) {
		send_msg(e, MSG_ERROR, 0, xasprintf("cannot load the model: %s", cause));
		free(cause);
		return;
	}
	if (session_notice(e->s) != NULL)
		send_msg(e, MSG_ERROR, 0, xstrdup(session_notice(e->s)));
	/* Usable now: the weights are mapped.  Reading them in is a bonus
	 * that the first prompt interrupts. */
	desc = model_describe(session_model(e->s));
	r.text = desc;
	r.n = session_n_ctx(e->s);
	queue_push(e->out, &r);
	warm(e);
}

/* ---- a turn --------------------------------------------------------------- */

static bool
on_text(void *arg, enum think_part part, const char *text, size_t len)
{
	struct engine *e = arg;
	struct msg m = { .type = MSG_TOKEN, .seq = e->turn, .part = part };

	/* The UI's live speed comes from these, not from when messages arrive. */
	session_gen_progress(e->s, &m.n, &m.t);
	m.text = xmalloc(len + 1);
	memcpy(m.text, text, len);
	m.text[len] = '\0';
	queue_push(e->out, &m);
	return true;
}

static bool
poll_in(void *arg)
{
	return interrupted(arg);
}

static void
on_progress(void *arg, int done, int total)
{
	struct engine *e = arg;
	struct msg m = { .type = MSG_PREFILL, .seq = e->turn, .a = (uint64_t)done,
			 .b = (uint64_t)total, .t = now_sec() };

	queue_push(e->out, &m);
}

static void
do_prompt(struct engine *e, struct msg *m)
{
	struct gen_params gp = m->params;
	struct msg done = { .type = MSG_DONE, .seq = m->seq };
	char *cause = NULL;

	e->turn = m->seq;
	if (e->s == NULL) {
		send_msg(e, MSG_ERROR, m->seq, xstrdup("the model is not loaded"));
		return;
	}
	gp.poll = poll_in;
	gp.progress = on_progress;
	if (session_reply(e->s, m->conv, (size_t)m->n_conv, &gp, on_text, e, &done.stats,
			  &cause) != 0) {
		send_msg(e, MSG_ERROR, m->seq, cause);
		return;
	}
	queue_push(e->out, &done);
}

static void *
engine_main(void *arg)
{
	struct engine *e = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!e->quit) {
		struct msg m;

		if (e->pending.type != 0) {
			m = e->pending;
			memset(&e->pending, 0, sizeof(e->pending));
		} else
			queue_wait(e->in, &m);
		if (m.type == MSG_LOAD)
			do_load(e, &m);
		else if (m.type == MSG_PROMPT)
			do_prompt(e, &m);
		else if (m.type == MSG_QUIT)
			e->quit = true;
		msg_free(&m);
	}
	msg_free(&e->pending);
	session_close(e->s);
	e->s = NULL;
	return NULL;
}

struct engine *
engine_start(struct queue *in, struct queue *out, char **cause)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	sigset_t all, old;
	int err;

	e->in = in;
	e->out = out;
	/* Block signals before creating, so the thread never runs a handler,
	 * even before its first instruction. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&e->th, NULL, engine_main, e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		cause_set(cause, "cannot start the engine thread: %s", strerror(err));
		free(e);
		return NULL;
	}
	return e;
}

void
engine_join(struct engine *e)
{
	if (e == NULL)
		return;
	pthread_join(e->th, NULL);
	free(e);
}
