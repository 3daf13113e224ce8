/*
 * app.c - the full-screen chat: start and end, the UI thread's event loop,
 * the engine's messages and the signals.  What the user does is elsewhere:
 * keys.c (the keyboard), inputline.c (the input line), slash.c (what a line
 * does), chat.c (turns and conversations); ui-int.h says who calls whom.
 *
 * DESIGN (docs/ui.md "Event loop"): the UI thread poll(2)s stdin, the engine queue's
 * eventfd and a signal self-pipe.  Bytes read from stdin are handed to
 * readline through rl_getc_function one key at a time (readline itself reads
 * further bytes of a key sequence or a bracketed paste from the same
 * buffer, falling back to a blocking read), except while an overlay (help,
 * conversation list, a y/n question) owns the keyboard.  curses runs in raw
 * mode, so Ctrl-C, Ctrl-Z and Ctrl-S arrive as keys.  The engine thread owns
 * the model; everything it says arrives as messages tagged with the turn's
 * seq, and anything from an older turn is dropped.
 *
 * UI thread only.
 */
#include "app.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <curses.h>
#include <readline/readline.h>

#include "engine.h"
#include "log.h"
#include "queue.h"
#include "sampler.h" /* sampler_seed_pick, sampler_params_json/default, sampler_fields_copy */
#include "session.h" /* gen_stop_name */
#include "store.h"
#include "thread-role.h"
#include "ui-int.h"
#include "util.h"

/* Save the answer so far this often while it streams. */
#define CHECKPOINT_S 2.0

/* ---- engine messages ------------------------------------------------------ */

static void
on_token(struct app *a, const struct msg_token *m)
{
	struct entry *e = chat_turn(a);
	double t = now_sec();

	if (e == NULL)
		return;
	if (m->part == THINK_REASONING) {
		entry_append(e, true, m->text, strlen(m->text));
		e->think_tokens++;
		e->t_think = m->t - e->t0; /* the engine's clock, as the speed is */
	} else {
		entry_append(e, false, m->text, strlen(m->text));
		e->answer_tokens++;
	}
	gauges_token(a, m->n, m->t);
	/* Save the answer so far every CHECKPOINT_S: a crash loses little, and
	 * the FTS index is not rebuilt per token. */
	if (t - a->last_checkpoint >= CHECKPOINT_S) {
		a->last_checkpoint = t;
		history_checkpoint(a, e);
	}
	screen_dirty(a);
}

static void
on_done(struct app *a, const struct msg_done *m)
{
	const struct gen_stats *s = &m->stats;
	struct entry *e = chat_turn(a);
	int new_tok = s->prompt_tokens - s->reused_tokens;

	if (e == NULL)
		return;
	gauges_done(a, s);
	a->ctx_used = s->prompt_tokens + s->gen_tokens;
	/* A continued answer counts every part of it; the figures are this part's. */
	e->gen_total = (a->turn_continues ? e->gen_total : 0) + s->gen_tokens;
	free(e->stats);
	e->stats = xasprintf("%d token%s%s, %.1f tok/s, first token %.2f s, prompt %d (%d new) - "
			     "%s, seed %llu",
			     e->gen_total, e->gen_total == 1 ? "" : "s",
			     a->turn_continues ? " (continued)" : "", gauges(a)->decode_tps,
			     s->ttft_s, s->prompt_tokens, new_tok, gen_stop_name(s->stop),
			     (unsigned long long)a->turn_sp.seed);
	chat_finish(a, s->stop == GEN_STOP_USER ? STORE_STOPPED : STORE_DONE, NULL, s);
	chat_ctx_check(a);
}

static void
on_error(struct app *a, uint64_t seq, const struct msg_error *m)
{
	char *text;

	if (seq == 0) {
		if (a->state == APP_LOADING) {
			if (!m->notice)
				a->state = APP_NO_MODEL;
			ui_info(a, "%s", m->text);
		}
		ui_status(a, true, "%s", m->text);
		return;
	}
	if (seq != a->seq || chat_turn(a) == NULL)
		return;
	text = chat_error_text(a, m->text, m->too_long); /* a prompt too long says what to do */
	transcript_add(&a->tr, ENTRY_ERROR, text);
	chat_finish(a, STORE_ERROR, m->text, NULL);
	ui_status(a, true, "%s", text);
	free(text);
}

/* The load and read-ahead reports (msg.h says what they carry). */
static void
on_progress(struct app *a, struct msg_progress *m)
{
	gauges_progress(a, m->phase, m->bytes_read, m->bytes_total, m->t);
	m->phase = NULL;
}

/* The model is usable, with the context length and defaults the engine resolved. */
static void
on_ready(struct app *a, struct msg_ready *m)
{
	a->state = a->state == APP_GENERATING ? a->state : APP_IDLE;
	free(a->model_desc);
	a->model_desc = m->desc;
	m->desc = NULL;
	if (a->remote) {
		/* Answers are saved under where they ran: "MODEL at URL (remote)". */
		free(a->model_dir);
		a->model_dir = xstrdup(a->model_desc);
	}
	a->n_ctx = m->n_ctx;
	a->test_model = !m->full_size;
	/* What the user chose stays; the rest is the model's. */
	sampler_fields_copy(&a->gp.sp, &m->defaults, ~a->sp_set);
	/* Short, so the read-ahead's progress stays beside it; the start
	 * screen and /show model describe the model. */
	ui_status(a, false, "ready in %.1f s", now_sec() - gauges(a)->load_t0);
}

static void
on_engine(struct app *a, struct msg *m)
{
	bool turn = m->seq == a->seq; /* about the current turn */

	switch (m->type) {
	case MSG_PROGRESS:
		on_progress(a, &m->u.progress);
		break;
	case MSG_READY:
		on_ready(a, &m->u.ready);
		break;
	case MSG_NET:
		if (turn)
			gauges_net(a, &m->u.net);
		break;
	case MSG_PREFILL:
		if (turn)
			gauges_prefill(a, m->u.prefill.done, m->u.prefill.total);
		break;
	case MSG_TOKEN:
		if (turn)
			on_token(a, &m->u.token);
		break;
	case MSG_DONE:
		if (turn)
			on_done(a, &m->u.done);
		break;
	case MSG_ERROR:
		on_error(a, m->seq, &m->u.error);
		break;
	case MSG_MODELS_FOUND:
		slash_models_found(a, &m->u.models);
		break;
	default:
		break;
	}
	screen_dirty(a);
}

static void
drain_engine(struct app *a)
{
	struct msg m;

	queue_ack(a->from_engine);
	while (queue_pop(a->from_engine, &m)) {
		on_engine(a, &m);
		msg_free(&m);
	}
}

/* ---- signals ------------------------------------------------------------------ */

/* GLOBAL: the self-pipe's write end, for the async-signal-safe handler. */
static int sig_write_fd = -1;

static void
on_signal(int sig)
{
	unsigned char b = (unsigned char)sig;
	int e = errno;

	if (write(sig_write_fd, &b, 1) < 0)
		(void)0; /* a full pipe already holds a wake-up */
	errno = e;
}

/* GLOBAL: the handlers the fatal ones replaced (the sanitizers' among them). */
static struct sigaction fatal_old[NSIG];

/*
 * A crash must not leave the shell in raw mode with no echo: put the
 * terminal back, then let the previous handler (ASan's report) or the
 * default action (a core) run, as htop does.
 */
static void
on_fatal_signal(int sig)
{
	screen_emergency_restore();
	sigaction(sig, &fatal_old[sig], NULL);
	raise(sig);
}

#if defined(__SANITIZE_ADDRESS__)
void __sanitizer_set_death_callback(void (*callback)(void));

#endif

static void
fatal_signals_init(void)
{
	static char altstack[64 * 1024]; /* a stack overflow still gets a handler */
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT, SIGTRAP, SIGSYS };
	struct sigaction sa;

	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_ONSTACK | SA_NODEFER;
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		sigaction(sigs[i], &sa, &fatal_old[sigs[i]]);
	fatal_set_hook(screen_emergency_restore);
#if defined(__SANITIZE_ADDRESS__)
	/* A sanitizer report ends the process with _exit: restore first. */
	__sanitizer_set_death_callback(screen_emergency_restore);
#endif
}

static void
signals_init(struct app *a)
{
	struct sigaction sa;
	int sigs[] = { SIGWINCH, SIGTERM, SIGHUP, SIGINT, SIGCONT };

	if (pipe(a->sig_pipe) != 0)
		fatal("pipe: %s", strerror(errno));
	fcntl(a->sig_pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(a->sig_pipe[1], F_SETFL, O_NONBLOCK);
	sig_write_fd = a->sig_pipe[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
}

static void
resize(struct app *a)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
		resize_term(ws.ws_row, ws.ws_col);
		rl_set_screen_size(ws.ws_row, ws.ws_col);
	}
	clearok(curscr, TRUE);
	screen_resize(a);
}

static void
on_signals(struct app *a)
{
	unsigned char b[64];
	ssize_t n;

	while ((n = read(a->sig_pipe[0], b, sizeof(b))) > 0)
		for (ssize_t i = 0; i < n; i++) {
			if (b[i] == SIGWINCH || b[i] == SIGCONT)
				resize(a);
			else if (b[i] == SIGINT)
				keys_interrupt(a);
			else
				a->quit = true; /* SIGTERM, SIGHUP: save and leave */
		}
}

/* ---- the loop ---------------------------------------------------------------- */

static void
loop(struct app *a)
{
	while (!a->quit) {
		struct pollfd p[3] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = queue_fd(a->from_engine), .events = POLLIN },
			{ .fd = a->sig_pipe[0], .events = POLLIN },
		};
		double wait = screen_wait(a);

		if (poll(p, 3, (int)(wait * 1000)) < 0 && errno != EINTR)
			break;
		if (p[2].revents & POLLIN)
			on_signals(a);
		if (p[1].revents & POLLIN)
			drain_engine(a);
		if (p[0].revents & (POLLIN | POLLHUP))
			keys_stdin(a);
		if (gauges_tick(a))
			screen_dirty(a);
		history_tick(a);
		screen_tick(a);
	}
}

/* ---- start and end -------------------------------------------------------------- */

/* Save an answer still running, stop the engine, restore the terminal. */
static void
shutdown_app(struct app *a)
{
	struct msg m = { .type = MSG_QUIT };
	int lost;

	if (a->state == APP_GENERATING)
		chat_finish(a, STORE_STOPPED, NULL, NULL);
	/* The engine stops within a layer; say what the exit waits for meanwhile. */
	a->quitting = true;
	screen_draw(a);
	queue_push(a->to_engine, &m);
	engine_join(a->engine);
	inputline_end(a);
	fputs("\033[?2004l", stdout);
	fflush(stdout);
	screen_end();
	lost = history_close(a);
	if (lost > 0)
		fprintf(stderr,
			"qnext: %d turn(s) could not be saved: the conversation database "
			"stayed locked by another process\n",
			lost);
}

static void
restore_terminal(void)
{
	if (!isendwin()) {
		fputs("\033[?2004l", stdout);
		endwin();
	}
}

static void
app_free(struct app *a)
{
	transcript_release(&a->tr);
	queue_free(a->to_engine);
	queue_free(a->from_engine);
	browser_free(a->br);
	history_free(a->hist);
	keys_free(a->keys);
	gauges_free(a->gauges);
	screen_free(a->scr);
	free(a->model_dir), free(a->model_desc), free(a->system);
	free(a->confirm_text), free(a->kept_line);
	close(a->sig_pipe[0]);
	close(a->sig_pipe[1]);
	free(a);
}

int
app_run(const struct app_opts *o)
{
	struct app *a = xcalloc(1, sizeof(*a));
	char *cause = NULL;

	/* This thread runs curses, readline and the store; the engine's is ROLE_ENGINE. */
	thread_role_set(ROLE_UI);
	assert_ui();
	a->br = browser_new();
	a->hist = history_new();
	a->keys = keys_new();
	a->gauges = gauges_new();
	transcript_init(&a->tr);
	/* NO_COLOR asks for plain output: the answers as written, like --raw. */
	a->tr.markdown = !o->raw && getenv("NO_COLOR") == NULL;
	a->model_dir = xstrdup(o->model_dir);
	a->n_ctx = o->n_ctx; /* 0: the engine's default, until MSG_READY says which */
	a->threads = o->threads;
	a->expert_cache = o->expert_cache;
	a->state_cache = o->state_cache;
	/* The built-in defaults until the engine reports the model's (MSG_READY). */
	a->gp = o->params;
	sampler_params_default(&a->gp.sp);
	sampler_fields_copy(&a->gp.sp, &o->params.sp, o->params_set);
	a->sp_set = o->params_set;
	a->from_flag = o->from_flag;
	a->from_conf = o->from_conf;
	a->think_default_open = o->think_open;
	a->system = o->system != NULL ? xstrdup(o->system) : NULL;
	a->remote = o->remote != NULL;
	if ((a->to_engine = queue_new(&cause)) == NULL ||
	    (a->from_engine = queue_new(&cause)) == NULL ||
	    (a->engine = engine_start(a->to_engine, a->from_engine, a->remote ? o->remote : NULL,
				      &cause)) == NULL) {
		fprintf(stderr, "qnext: %s\n", cause);
		free(cause);
		app_free(a);
		return 1;
	}
	signals_init(a);
	atexit(restore_terminal);
	screen_init(a);
	screen_set_overlay(a, browser_draw, a->br);
	fatal_signals_init();
	screen_resize(a);
	screen_mouse(a, o->mouse);
	inputline_init(a, slash_line, keys_init);
	fputs("\033[?2004h", stdout); /* bracketed paste: readline's own prep is off */
	fflush(stdout);
	history_open(a);
	log_info("full-screen chat: %dx%d, TERM=%s, model %s", COLS, LINES,
		 getenv("TERM") ? getenv("TERM") : "(unset)", a->model_dir);
	chat_load(a);
	screen_draw(a);
	loop(a);
	log_info("full-screen chat: quit");
	shutdown_app(a);
	app_free(a);
	return 0;
}
