/*
 * engine.c - the engine thread (see engine.h).
 *
 * DESIGN: one loop takes messages from the inbound queue; it blocks only
 * when the read-ahead of the weights is finished, else it goes on with that
 * whenever the queue is empty.  Long work (read-ahead, prefill, decode)
 * polls the queue between steps without blocking; a message that is not for
 * the running job is kept in `pending` and handled when the job has
 * stopped.  Nothing here is shared with the UI except the two queues.
 *
 * Thread affinity: the engine thread, except engine_start/engine_join and
 * the ticker thread that repeats "opening" during session_open.
 */
#include "engine.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"
#include "model.h"
#include "queue.h"
#include "remote.h"
#include "safetensors.h"
#include "sampler.h" /* sampler_params_default: a remote model's defaults */
#include "session.h"
#include "sysinfo.h"
#include "thread-role.h"
#include "util.h"
#include "xcache.h"

/* Where the read-ahead of the weights stands (see warm()). */
struct warm_state {
	bool active; /* begun and not finished */
	bool paused; /* "paused" sent since it last ran */
	int shard;   /* next shard to read */
	size_t at;   /* next byte in it */
	uint64_t done, total;
};

/* A remote engine (`--remote`): where, and the connection once open. */
struct remote_side {
	bool on;
	char *url, *api_key, *model; /* owned copies of remote_opts */
	struct remote *r;
	const char *state; /* the last MSG_NET's */
	double sent_t;     /* and when it went */
};

struct engine {
	pthread_t th;
	struct queue *in, *out;
	struct session *s;     /* the local model, or NULL */
	struct remote_side rm; /* or the remote one (rm.on) */
	struct msg pending;    /* type 0 = none */
	struct msg models;     /* a MSG_MODELS that came during a job, answered after it; or 0 */
	bool quit;
	uint64_t turn; /* seq of the running turn */
	struct warm_state w;
};

/* An MSG_ERROR about turn seq (0: none); takes text. */
static void
send_error(struct engine *e, uint64_t seq, char *text)
{
	struct msg m = { .type = MSG_ERROR, .seq = seq, .u.error.text = text };

	queue_push(e->out, &m);
}

/* A seq-0 MSG_ERROR that is a notice about the model, not a failure; takes text. */
static void
send_notice(struct engine *e, char *text)
{
	struct msg m = { .type = MSG_ERROR, .u.error = { .text = text, .notice = true } };

	queue_push(e->out, &m);
}

/*
 * Look at the inbound queue without blocking.  Returns true when the
 * running job must stop: a cancel of this turn, a quit, or a new job (kept
 * in pending).  A MSG_MODELS waits for the job's end (the latest one kept).
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
		case MSG_MODELS:
			msg_free(&e->models);
			e->models = m;
			break;
		default:
			msg_free(&m);
			break;
		}
	}
	return false;
}

/* ---- loading -------------------------------------------------------------- */

/* Progress reports while reading: at least every REPORT_BYTES or REPORT_S. */
#define READ_STEP    ((size_t)16 << 20) /* a prompt waits for one step at most */
#define REPORT_BYTES ((uint64_t)64 << 20)
#define REPORT_S     0.25

static void
send_progress(struct engine *e, uint64_t read, uint64_t total, const char *phase)
{
	struct msg m = { .type = MSG_PROGRESS,
			 .u.progress = { .phase = xstrdup(phase),
					 .bytes_read = read,
					 .bytes_total = total,
					 .t = now_sec() } };

	queue_push(e->out, &m);
}

/*
 * While the engine thread is busy in session_open (seconds, cold), a
 * second thread repeats "opening" every REPORT_S so the UI never shows a
 * stale figure.  It only pushes to the outbound queue, which is thread-safe.
 */
struct ticker {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, started;
	struct engine *e;
	uint64_t total;
};

static void *
ticker_main(void *arg)
{
	struct ticker *tk = arg;
	struct timespec ts;

	thread_role_set(ROLE_IO);
	pthread_mutex_lock(&tk->mu);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(REPORT_S * 1e9);
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		while (!tk->stop && pthread_cond_timedwait(&tk->cv, &tk->mu, &ts) == 0)
			;
		if (tk->stop)
			break;
		pthread_mutex_unlock(&tk->mu);
		send_progress(tk->e, 0, tk->total, "opening");
		pthread_mutex_lock(&tk->mu);
	}
	pthread_mutex_unlock(&tk->mu);
	return NULL;
}

static void
ticker_start(struct ticker *tk, struct engine *e, uint64_t total)
{
	pthread_condattr_t ca;

	memset(tk, 0, sizeof(*tk));
	tk->e = e;
	tk->total = total;
	pthread_mutex_init(&tk->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&tk->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* Without it the load still works; only the repeats are missing. */
	tk->started = pthread_create(&tk->th, NULL, ticker_main, tk) == 0;
}

/* Stop and join: after this no "opening" can follow what we send next. */
static void
ticker_stop(struct ticker *tk)
{
	pthread_mutex_lock(&tk->mu);
	tk->stop = true;
	pthread_cond_signal(&tk->cv);
	pthread_mutex_unlock(&tk->mu);
	if (tk->started)
		pthread_join(tk->th, NULL);
	pthread_cond_destroy(&tk->cv);
	pthread_mutex_destroy(&tk->mu);
}

/*
 * Start the read-ahead of the open model, or say why there is none: the
 * weights do not fit in the memory available, so pages come and go on
 * demand and reading ahead would only evict them.
 */
static void
warm_begin(struct engine *e)
{
	const struct st_set *st = session_model(e->s)->st;
	struct sysinfo_mem mem;
	struct xcache_stats xs;

	memset(&e->w, 0, sizeof(e->w));
	for (int i = 0; i < st_shard_count(st); i++) {
		size_t len;

		st_shard_base(st, i, &len);
		e->w.total += len;
	}
	if (session_cache_stats(e->s, &xs)) {
		char b[32];

		/* Nothing to read ahead: the cache reads the every-token weights itself. */
		send_progress(e, 0, 0, "expert cache");
		send_notice(e, xasprintf("expert cache: %d of %d experts (%s) kept in memory, the "
					 "rest read from disk when routed",
					 xs.slots, xs.experts,
					 sysinfo_bytes((uint64_t)xs.slots * xs.slot_bytes, b,
						       sizeof(b))));
		return;
	}
	if (sysinfo_mem(&mem) == 0 && e->w.total > mem.available) {
		send_progress(e, 0, 0, "model larger than free memory: reading on demand");
		return;
	}
	e->w.active = true;
}

/*
 * Read the shards into the page cache in order, one sequential pass, so the
 * first answer does not wait on scattered page faults; report progress.
 * Runs while the engine has nothing else to do: it stops when a message
 * arrives and the main loop calls it again, to go on where it stopped, once
 * the queue is idle.  "done" at the end.
 */
static void
warm(struct engine *e)
{
	const struct st_set *st = session_model(e->s)->st;
	struct warm_state *w = &e->w;
	volatile unsigned char sink = 0;
	double t_sent = now_sec();
	uint64_t sent = w->done;

	w->paused = false;
	send_progress(e, w->done, w->total, "reading weights");
	while (w->shard < st_shard_count(st)) {
		size_t len, n;
		const unsigned char *p = st_shard_base(st, w->shard, &len);

		if (interrupted(e))
			return;
		if (w->at >= len) {
			w->shard++, w->at = 0;
			continue;
		}
		n = MIN(READ_STEP, len - w->at);
		madvise((void *)((uintptr_t)(p + w->at) & ~(uintptr_t)4095), n, MADV_WILLNEED);
		for (size_t k = 0; k < n; k += 4096)
			sink ^= p[w->at + k];
		w->at += n;
		w->done += n;
		if (w->done - sent >= REPORT_BYTES || now_sec() - t_sent >= REPORT_S) {
			send_progress(e, w->done, w->total, "reading weights");
			sent = w->done;
			t_sent = now_sec();
		}
	}
	(void)sink;
	w->active = false;
	send_progress(e, w->total, w->total, "done");
}

/*
 * A prompt is about to run before the read-ahead has finished (it stopped
 * the read-ahead, or came before it could start): say so, so the UI does
 * not show a stale "reading weights" figure for the whole turn.
 */
static void
warm_pause(struct engine *e)
{
	if (!e->w.active || e->w.paused)
		return;
	e->w.paused = true;
	send_progress(e, e->w.done, e->w.total, "paused");
}

/*
 * The model is usable: say so with what was resolved here and nowhere else,
 * the context length and the model's sampling defaults.
 */
static void
send_ready(struct engine *e)
{
	struct msg r = { .type = MSG_READY };

	r.u.ready.desc = model_describe(session_model(e->s));
	r.u.ready.n_ctx = session_n_ctx(e->s);
	r.u.ready.full_size = model_is_full_size(session_model(e->s));
	r.u.ready.defaults = session_gen_config(e->s)->p;
	queue_push(e->out, &r);
}

static void
do_load(struct engine *e, struct msg *m)
{
	const struct msg_load *l = &m->u.load;
	struct session_opts o = { .dir = l->dir,
				  .n_ctx = l->n_ctx,
				  .n_threads = l->threads,
				  .expert_cache = l->expert_cache,
				  .state_cache = l->state_cache };
	char *cause = NULL;
	struct ticker tk;
	uint64_t total;
	double t0 = now_sec();

	log_info("load %s: n_ctx %d, threads %d, expert cache %s", l->dir, l->n_ctx, l->threads,
		 l->expert_cache == XCACHE_AUTO ? "auto"
		 : l->expert_cache == 0         ? "off"
						: "a fixed size");
	session_close(e->s);
	e->s = NULL;
	memset(&e->w, 0, sizeof(e->w));
	/* Sized before anything is opened, so the first report has b. */
	total = model_files_bytes(l->dir);
	send_progress(e, 0, total, "opening");
	ticker_start(&tk, e, total);
	e->s = session_open(&o, &cause);
	ticker_stop(&tk);
	if (e->s == NULL) {
		send_error(e, 0, xasprintf("cannot load the model: %s", cause));
		free(cause);
		return;
	}
	log_info("loaded in %.2f s: %d positions", now_sec() - t0, session_n_ctx(e->s));
	if (session_notice(e->s) != NULL)
		send_notice(e, xstrdup(session_notice(e->s)));
	/* Usable now: the weights are mapped.  Reading them in is a bonus
	 * that prompts interrupt. */
	send_ready(e);
	warm_begin(e);
}

/* ---- a remote engine ----------------------------------------------------- */

/*
 * The request's state for the UI (MSG_NET): when it changed, else at most
 * every REPORT_S; force for the end of a turn.
 */
static void
send_net(struct engine *e, bool force)
{
	struct remote_stats ns;
	struct msg m = { .type = MSG_NET, .seq = e->turn };
	double now = now_sec();

	remote_net_stats(e->rm.r, &ns);
	if (!force && ns.state == e->rm.state && now - e->rm.sent_t < REPORT_S)
		return;
	e->rm.state = ns.state;
	e->rm.sent_t = now;
	m.u.net = (struct msg_net){ .state = xstrdup(ns.state),
				    .bytes_in = ns.bytes_in,
				    .ttft_s = ns.ttft_s,
				    .tok_s = ns.tok_s,
				    .t = now };
	queue_push(e->out, &m);
}

/*
 * "Load" a remote model: ask the server whether it answers and has the
 * model, then say MSG_READY with what it told (the context, when it lists
 * one) and the built-in sampling defaults, which every request sends.
 */
static void
do_load_remote(struct engine *e)
{
	struct remote_opts o = { .url = e->rm.url, .api_key = e->rm.api_key, .model = e->rm.model };
	struct msg r = { .type = MSG_READY };
	char *cause = NULL;

	log_info("remote engine: %s, model %s", e->rm.url, e->rm.model ? e->rm.model : "(first)");
	remote_close(e->rm.r);
	send_progress(e, 0, 0, "connecting");
	if ((e->rm.r = remote_open(&o, &cause)) == NULL) {
		send_error(e, 0, xasprintf("cannot use the remote engine: %s", cause));
		free(cause);
		return;
	}
	r.u.ready.desc = remote_describe(e->rm.r);
	r.u.ready.n_ctx = remote_n_ctx(e->rm.r);
	r.u.ready.full_size = true;
	sampler_params_default(&r.u.ready.defaults);
	queue_push(e->out, &r);
	send_progress(e, 0, 0, "done");
}

/* ---- a turn --------------------------------------------------------------- */

static bool
on_text(void *arg, enum think_part part, const char *text, size_t len)
{
	struct engine *e = arg;
	struct msg m = { .type = MSG_TOKEN, .seq = e->turn, .u.token.part = part };
	struct msg_token *k = &m.u.token;

	/* The UI's live speed comes from these, not from when messages arrive. */
	if (e->rm.on)
		remote_gen_progress(e->rm.r, &k->n, &k->t);
	else
		session_gen_progress(e->s, &k->n, &k->t);
	k->text = xmalloc(len + 1);
	memcpy(k->text, text, len);
	k->text[len] = '\0';
	queue_push(e->out, &m);
	if (e->rm.on)
		send_net(e, false);
	return true;
}

static bool
poll_in(void *arg)
{
	struct engine *e = arg;

	if (e->rm.on)
		send_net(e, false);
	return interrupted(e);
}

static void
on_progress(void *arg, int done, int total)
{
	struct engine *e = arg;
	struct msg m = { .type = MSG_PREFILL,
			 .seq = e->turn,
			 .u.prefill = { .done = done, .total = total, .t = now_sec() } };

	queue_push(e->out, &m);
}

static void
do_prompt(struct engine *e, struct msg *m)
{
	const struct msg_prompt *p = &m->u.prompt;
	struct gen_params gp = p->params;
	struct msg done = { .type = MSG_DONE, .seq = m->seq };
	char *cause = NULL;

	int rc;

	e->turn = m->seq;
	if (e->s == NULL && e->rm.r == NULL) {
		send_error(e, m->seq, xstrdup("the model is not loaded"));
		return;
	}
	gp.poll = poll_in;
	gp.progress = on_progress;
	gp.tools_json = p->tools_json;
	if (e->rm.on) {
		rc = remote_reply(e->rm.r, p->conv, (size_t)p->n_conv, &gp, on_text, e,
				  &done.u.done.stats, &cause);
		send_net(e, true);
	} else {
		rc = session_reply(e->s, p->conv, (size_t)p->n_conv, &gp, on_text, e,
				   &done.u.done.stats, &cause);
	}
	if (rc != 0) {
		struct msg err = { .type = MSG_ERROR, .seq = m->seq, .u.error.text = cause };

		/* session_reply counts the prompt before it refuses one the context cannot hold. */
		err.u.error.too_long =
			!e->rm.on && done.u.done.stats.prompt_tokens >= session_n_ctx(e->s);
		queue_push(e->out, &err);
		return;
	}
	queue_push(e->out, &done);
}

/*
 * The next message to handle: a kept one, else the queue's.  While the
 * read-ahead is unfinished the engine does not block: false means the
 * queue is idle and the read-ahead may go on.
 */
static bool
next_job(struct engine *e, struct msg *m)
{
	struct msg *kept = e->pending.type != 0  ? &e->pending
			   : e->models.type != 0 ? &e->models
						 : NULL;

	if (kept != NULL) {
		*m = *kept;
		memset(kept, 0, sizeof(*kept));
		return true;
	}
	if (e->s != NULL && e->w.active)
		return queue_pop(e->in, m);
	queue_wait(e->in, m);
	return true;
}

/* MSG_MODELS: the list, with the request's pick. */
static void
do_models(struct engine *e, const struct msg *m)
{
	struct msg r = { .type = MSG_MODELS_FOUND, .u.models.pick = m->u.models.pick };
	const char *const known[2] = { m->u.models.known[0], m->u.models.known[1] };

	if (m->u.models.find != NULL)
		r.u.models.found = m->u.models.find(known, 2, &r.u.models.n);
	queue_push(e->out, &r);
}

static void *
engine_main(void *arg)
{
	struct engine *e = arg;

	thread_role_set(ROLE_ENGINE);
	signals_block_async(NULL);
	while (!e->quit) {
		struct msg m;

		if (!next_job(e, &m)) {
			warm(e);
			continue;
		}
		switch (m.type) {
		case MSG_LOAD:
			if (e->rm.on)
				do_load_remote(e);
			else
				do_load(e, &m);
			break;
		case MSG_PROMPT:
			warm_pause(e);
			do_prompt(e, &m);
			break;
		case MSG_QUIT:
			e->quit = true;
			break;
		case MSG_MODELS:
			do_models(e, &m);
			break;
		default:
			break; /* a cancel of a turn that has ended */
		}
		msg_free(&m);
	}
	msg_free(&e->pending);
	msg_free(&e->models);
	session_close(e->s);
	e->s = NULL;
	remote_close(e->rm.r);
	e->rm.r = NULL;
	return NULL;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
engine_free(struct engine *e)
{
	free(e->rm.url), free(e->rm.api_key), free(e->rm.model);
	free(e);
}

struct engine *
engine_start(struct queue *in, struct queue *out, const struct remote_opts *remote, char **cause)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	sigset_t old;
	int err;

	e->in = in;
	e->out = out;
	if (remote != NULL) {
		e->rm.on = true;
		e->rm.url = xstrdup(remote->url);
		e->rm.api_key = dup_or_null(remote->api_key);
		e->rm.model = dup_or_null(remote->model);
	}
	/* Block signals before creating, so the thread never runs a handler,
	 * even before its first instruction. */
	signals_block_async(&old);
	err = pthread_create(&e->th, NULL, engine_main, e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		cause_set(cause, "cannot start the engine thread: %s", strerror(err));
		engine_free(e);
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
	engine_free(e);
}
