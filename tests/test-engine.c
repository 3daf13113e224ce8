/*
 * test-engine.c - the engine thread through its queues only, on the tiny
 * golden model: load with progress then ready, a greedy turn that streams
 * the golden continuation and ends with its stats, a cancel that stops a
 * long turn early, stale cancels ignored, /model's MSG_MODELS answered after
 * the turn it came during, a failed load reported without
 * killing the thread, and a clean quit.  Runs under ThreadSanitizer.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine.h"
#include "model.h"
#include "models.h"
#include "queue.h"
#include "safetensors.h"
#include "sampler.h"
#include "t.h"
#include "tokenizer.h"
#include "util.h"

static struct queue *in, *out;

/* Next engine message within 60 s (type 0 on timeout). */
static struct msg
next(void)
{
	struct msg m = { 0 };

	for (int i = 0; i < 600; i++) {
		struct pollfd p = { .fd = queue_fd(out), .events = POLLIN };

		if (queue_pop(out, &m))
			return m;
		if (poll(&p, 1, 100) > 0)
			queue_ack(out);
	}
	return m;
}

/* Skip to the first message of `type`, freeing the others; counts tokens. */
static struct msg
until(enum msg_type type, uint64_t seq, int *n_tokens, char *text, size_t cap)
{
	for (;;) {
		struct msg m = next();

		if (m.type == 0 || (m.type == type && m.seq == seq) ||
		    (m.type == MSG_ERROR && m.seq == seq && seq != 0))
			return m;
		if (m.type == MSG_TOKEN && m.seq == seq && n_tokens != NULL) {
			(*n_tokens)++;
			if (text != NULL && strlen(text) + strlen(m.u.token.text) < cap)
				strcat(text, m.u.token.text);
		}
		if (m.type == MSG_ERROR)
			fprintf(stderr, "engine error: %s\n", m.u.error.text);
		msg_free(&m);
	}
}

/*
 * What one turn's messages said, up to its MSG_DONE: MSG_TOKEN's n only
 * grows (a repeat needs a change of part, or is the turn's last message), t
 * never goes back, and every t lies between the prompt's push and now.
 */
struct turn {
	double t_push;
	int n_tok, n_prefill, last_n, repeat_at;
	enum think_part last_part;
	double last_t;
	bool bad_n, bad_t;
	char text[8192];
};

static struct msg
run_turn(uint64_t seq, struct turn *tr)
{
	for (;;) {
		struct msg m = next();

		if (m.type == 0 || (m.seq == seq && (m.type == MSG_DONE || m.type == MSG_ERROR)))
			return m;
		if (m.seq != seq) {
			msg_free(&m);
			continue;
		}
		if (m.type == MSG_PREFILL) {
			tr->n_prefill++;
			tr->bad_t |= m.u.prefill.t < tr->t_push || m.u.prefill.t > now_sec();
		}
		if (m.type == MSG_TOKEN) {
			const struct msg_token *k = &m.u.token;

			tr->bad_n |= k->n < 1 || k->n < tr->last_n;
			if (k->n == tr->last_n && k->part == tr->last_part)
				tr->repeat_at = tr->n_tok;
			tr->bad_t |= k->t < tr->t_push || k->t < tr->last_t || k->t > now_sec();
			tr->last_n = k->n;
			tr->last_t = k->t;
			tr->last_part = k->part;
			tr->n_tok++;
			if (strlen(tr->text) + strlen(k->text) < sizeof(tr->text))
				strcat(tr->text, k->text);
		}
		msg_free(&m);
	}
}

static void
check_turn(const struct turn *tr, const struct msg *done)
{
	T_ASSERT(tr->n_tok >= 1);
	T_ASSERT(!tr->bad_n);
	T_ASSERT(!tr->bad_t);
	T_ASSERT(tr->repeat_at < 0 || tr->repeat_at == tr->n_tok - 1);
	T_ASSERT(tr->last_n <= done->u.done.stats.gen_tokens);
}

/*
 * What a load's messages said, up to the read-ahead's "done" (and the
 * MSG_DONE of turn `seq` when nonzero): every MSG_PROGRESS has the same
 * b > 0, a never goes back and stays <= b, t never goes back.
 */
struct load {
	int n_progress, ready_n, ready_top_k, paused_at, turn_at, done_at, at;
	uint64_t b, last_a, paused_a;
	double last_t;
	bool ready, four_layers, first_opening, paused, done, turn_done, bad;
};

static void
push_load(void)
{
	struct msg m = { .type = MSG_LOAD,
			 .u.load = { .dir = xstrdup("share/tiny"), .n_ctx = 1024, .threads = 2 } };

	queue_push(in, &m);
}

static void
watch_load(struct load *l, uint64_t seq, double t_push)
{
	while (!l->done || (seq != 0 && !l->turn_done)) {
		struct msg m = next();

		if (m.type == 0)
			return;
		l->at++;
		if (m.type == MSG_READY) {
			l->ready = true;
			l->ready_n = m.u.ready.n_ctx;
			l->ready_top_k = m.u.ready.defaults.top_k;
			l->four_layers = strstr(m.u.ready.desc, "4 layers") != NULL;
		}
		if (m.type == MSG_DONE && m.seq == seq)
			l->turn_done = true, l->turn_at = l->at;
		if (m.type == MSG_PROGRESS) {
			const struct msg_progress *p = &m.u.progress;

			if (l->n_progress++ == 0) {
				l->b = p->bytes_total;
				l->first_opening = strcmp(p->phase, "opening") == 0;
			}
			l->bad |= p->bytes_total != l->b || p->bytes_total == 0 ||
				  p->bytes_read < l->last_a || p->bytes_read > p->bytes_total;
			l->bad |= p->t < t_push || p->t < l->last_t || p->t > now_sec();
			l->last_a = p->bytes_read;
			l->last_t = p->t;
			if (strcmp(p->phase, "paused") == 0 && !l->paused)
				l->paused = true, l->paused_a = p->bytes_read, l->paused_at = l->at;
			if (strcmp(p->phase, "done") == 0)
				l->done = p->bytes_read == p->bytes_total, l->done_at = l->at;
		}
		msg_free(&m);
	}
}

/* A user message of about n tokens (several prefill chunks). */
static char *
long_text(int n)
{
	char *s = xcalloc((size_t)n, 6);

	for (int i = 0; i < n; i++)
		strcat(s, "word ");
	return s;
}

static void
push_prompt(uint64_t seq, const char *user, int max_tokens)
{
	struct chat_msg c = { .role = "user", .content = user };
	struct msg m = { .type = MSG_PROMPT, .seq = seq };

	m.u.prompt.conv = msg_conv_copy(&c, 1);
	m.u.prompt.n_conv = 1;
	sampler_params_default(&m.u.prompt.params.sp);
	m.u.prompt.params.sp.temperature = 0;
	m.u.prompt.params.max_tokens = max_tokens;
	queue_push(in, &m);
}

int
main(void)
{
	struct engine *e;
	struct msg m;
	char text[8192] = "";

	in = queue_new(NULL);
	out = queue_new(NULL);
	e = engine_start(in, out, NULL, NULL);
	T_ASSERT(e != NULL);

	/* Load: sized from the first report, ready, then read ahead to the end. */
	{
		struct load l = { 0 };
		double t_push = now_sec(); /* before the push: the engine may answer at once */

		push_load();
		watch_load(&l, 0, t_push);
		T_ASSERT(l.ready);
		T_EQ_INT(l.ready_n, 1024);
		T_EQ_INT(l.ready_top_k,
			 20); /* the model's generation_config.json, read by the engine */
		T_ASSERT(l.four_layers);
		T_ASSERT(l.n_progress >= 3);
		T_ASSERT(l.first_opening);
		T_ASSERT(!l.bad);
		T_ASSERT(l.b == model_files_bytes("share/tiny") && l.b > 1000000);
		T_ASSERT(l.done && !l.paused);
	}

	/*
	 * A prompt sent with the load finds the read-ahead running (it starts
	 * at once and the load takes far longer than two pushes): the read-ahead
	 * says "paused", the turn runs, and the read-ahead then ends with a == b.
	 * Tried again should the pushes ever lose that race.
	 */
	{
		struct load l = { 0 };

		for (int i = 0; i < 3 && !l.paused; i++) {
			double t_push = now_sec();

			memset(&l, 0, sizeof(l));
			push_load();
			push_prompt(30 + (uint64_t)i, "Hi", 3);
			watch_load(&l, 30 + (uint64_t)i, t_push);
		}
		T_ASSERT(l.paused);
		T_ASSERT(l.paused_a < l.b);
		T_ASSERT(l.done && l.turn_done);
		T_ASSERT(l.paused_at < l.turn_at && l.turn_at < l.done_at);
		T_ASSERT(!l.bad);
	}

	/* A full greedy turn, its tokens numbered and timed by the engine. */
	{
		struct turn tr = { .t_push = now_sec(), .repeat_at = -1 };

		push_prompt(1, "Hello", 20);
		m = run_turn(1, &tr);
		T_EQ_INT(m.type, MSG_DONE);
		T_EQ_INT(m.u.done.stats.gen_tokens, 20);
		T_EQ_INT(m.u.done.stats.stop, GEN_STOP_LENGTH);
		check_turn(&tr, &m);
		T_EQ_INT(tr.last_n, 20);
		T_EQ_INT(tr.n_prefill, 2);
		T_ASSERT(strlen(tr.text) > 0);
		strcpy(text, tr.text);
		msg_free(&m);
	}

	/* The same turn again gives the same text (greedy, reused prefix). */
	{
		char again[8192] = "";
		int n2 = 0;

		push_prompt(2, "Hello", 20);
		m = until(MSG_DONE, 2, &n2, again, sizeof(again));
		T_ASSERT(strcmp(text, again) == 0);
		msg_free(&m);
	}

	/* Cancel a long turn after its first token; a stale cancel does nothing. */
	m = (struct msg){ .type = MSG_CANCEL, .seq = 1 };
	queue_push(in, &m);
	push_prompt(3, "Tell me a long story", 100000);
	m = until(MSG_TOKEN, 3, NULL, NULL, 0);
	T_EQ_INT(m.type, MSG_TOKEN);
	msg_free(&m);
	m = (struct msg){ .type = MSG_CANCEL, .seq = 3 };
	queue_push(in, &m);
	m = until(MSG_DONE, 3, NULL, NULL, 0);
	T_EQ_INT(m.type, MSG_DONE);
	T_EQ_INT(m.u.done.stats.stop, GEN_STOP_USER);
	T_ASSERT(m.u.done.stats.gen_tokens < 100000);
	msg_free(&m);

	/* Cancel during a long prefill: the turn stops (whether the cancel
	 * came mid-chunk or, on a fast machine, after the prefill), and the
	 * next reply is what it was before, though the context was left torn. */
	{
		char *user = long_text(200), again[8192] = "";
		int n2 = 0;

		push_prompt(10, user, 100000);
		m = until(MSG_PREFILL, 10, NULL, NULL, 0);
		T_EQ_INT(m.type, MSG_PREFILL);
		T_ASSERT(m.u.prefill.done < m.u.prefill.total);
		msg_free(&m);
		m = (struct msg){ .type = MSG_CANCEL, .seq = 10 };
		queue_push(in, &m);
		m = until(MSG_DONE, 10, NULL, NULL, 0);
		T_EQ_INT(m.u.done.stats.stop, GEN_STOP_USER);
		msg_free(&m);
		push_prompt(11, "Hello", 20);
		m = until(MSG_DONE, 11, &n2, again, sizeof(again));
		T_ASSERT(strcmp(text, again) == 0);
		msg_free(&m);
		free(user);
	}

	/* A new prompt while one runs replaces it. */
	push_prompt(4, "One", 100000);
	push_prompt(5, "Two", 3);
	m = until(MSG_DONE, 5, NULL, NULL, 0);
	T_EQ_INT(m.type, MSG_DONE);
	T_EQ_INT(m.u.done.stats.gen_tokens, 3);
	msg_free(&m);

	/* /model's request during a turn: the turn runs to its end, then the list comes. */
	{
		bool done_first = false;

		push_prompt(7, "Hello", 20);
		m = (struct msg){ .type = MSG_MODELS,
				  .u.models = { .find = models_find, .pick = 2 } };
		m.u.models.known[0] = xstrdup("share/tiny");
		queue_push(in, &m);
		for (m = next(); m.type != 0 && m.type != MSG_MODELS_FOUND; m = next()) {
			if (m.type == MSG_DONE && m.seq == 7) {
				T_EQ_INT(m.u.done.stats.gen_tokens, 20);
				done_first = true;
			}
			msg_free(&m);
		}
		T_ASSERT(done_first);
		T_EQ_INT(m.type, MSG_MODELS_FOUND);
		T_ASSERT(m.u.models.n >= 1 && strcmp(m.u.models.found[0].dir, "share/tiny") == 0);
		if (m.u.models.n >= 1)
			T_STR_CONTAINS(m.u.models.found[0].verdict, "fits");
		T_EQ_INT(m.u.models.pick, 2);
		msg_free(&m);
	}

	/* A failed load is an error message; the thread lives on. */
	m = (struct msg){ .type = MSG_LOAD, .u.load.dir = xstrdup("/nonexistent/model") };
	queue_push(in, &m);
	m = until(MSG_ERROR, 0, NULL, NULL, 0);
	T_EQ_INT(m.type, MSG_ERROR);
	T_STR_CONTAINS(m.u.error.text, "/nonexistent/model");
	msg_free(&m);
	push_prompt(6, "Anyone?", 3);
	m = until(MSG_ERROR, 6, NULL, NULL, 0);
	T_STR_CONTAINS(m.u.error.text, "not loaded");
	msg_free(&m);

	/* Quit during a long prefill ends the turn as stopped, then the thread. */
	{
		char *user = long_text(200);

		push_load();
		m = until(MSG_READY, 0, NULL, NULL, 0);
		msg_free(&m);
		push_prompt(20, user, 100000);
		m = until(MSG_PREFILL, 20, NULL, NULL, 0);
		T_EQ_INT(m.type, MSG_PREFILL);
		msg_free(&m);
		m = (struct msg){ .type = MSG_QUIT };
		queue_push(in, &m);
		engine_join(e);
		m = until(MSG_DONE, 20, NULL, NULL, 0);
		T_EQ_INT(m.type, MSG_DONE);
		T_EQ_INT(m.u.done.stats.stop, GEN_STOP_USER);
		msg_free(&m);
		free(user);
	}
	queue_free(in);
	queue_free(out);
	return t_done("test-engine");
}
