/*
 * app.c - the full-screen chat: the UI thread's event loop, readline in
 * callback mode, the engine's messages, slash commands and saving.
 *
 * DESIGN (UI.md §3): the UI thread poll(2)s stdin, the engine queue's
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curses.h>
#include <openssl/evp.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "commands.h"
#include "engine.h"
#include "paths.h"
#include "queue.h"
#include "sampler.h" /* sampler_seed_pick, sampler_params_json, sampler_params_default */
#include "session.h" /* gen_stop_name */
#include "store.h"
#include "sysinfo.h"
#include "ui-int.h"
#include "util.h"

/* Save the answer so far this often while it streams. */
#define CHECKPOINT_S 2.0

struct app *app_g;

/* GLOBAL: what the next line typed at a special prompt is for (search,
 * rename...); readline's line handler takes no context argument. */
static app_line_fn *line_action;

static void on_line(char *line);

/* ---- readline plumbing --------------------------------------------------- */

/* readline's byte source: the bytes the loop read, else a blocking read. */
static int
app_getc(FILE *f)
{
	struct app *a = app_g;
	unsigned char c;

	(void)f;
	if (a->in_pos < a->in_len)
		return a->inbuf[a->in_pos++];
	for (;;) {
		ssize_t n = read(STDIN_FILENO, &c, 1);

		if (n == 1)
			return c;
		if (n == 0)
			return EOF;
		if (errno != EINTR && errno != EAGAIN)
			return EOF;
		if (errno == EAGAIN) {
			struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };

			poll(&p, 1, 100);
		}
	}
}

static void
app_redisplay(void)
{
	if (app_g != NULL && rl_line_buffer != NULL)
		screen_draw(app_g);
}

/* Switch the input line to prompt p, sending the next line to fn (NULL = chat). */
void
app_ask(struct app *a, const char *p, const char *initial, app_line_fn *fn)
{
	line_action = fn;
	rl_callback_handler_remove();
	rl_callback_handler_install(p, on_line);
	if (initial != NULL) {
		rl_insert_text(initial);
		rl_point = rl_end;
	}
	screen_dirty(a);
}

/* ---- talking to the engine ----------------------------------------------- */

static void
load_model(struct app *a)
{
	struct msg m = { .type = MSG_LOAD,
			 .u.load = { .dir = xstrdup(a->model_dir),
				     .n_ctx = a->n_ctx,
				     .threads = a->threads,
				     .expert_cache = a->expert_cache } };

	a->state = APP_LOADING;
	a->load_t0 = now_sec();
	queue_push(a->to_engine, &m);
}

/* The conversation the model sees: system prompt, user turns, answers. */
static struct chat_msg *
build_conv(struct app *a, int *n)
{
	struct chat_msg *c = xcalloc((size_t)a->tr.n + 2, sizeof(*c));
	int k = 0;

	if (a->system != NULL && a->system[0] != '\0')
		c[k++] = (struct chat_msg){ .role = "system", .content = a->system };
	for (int i = 0; i < a->tr.n; i++) {
		const struct entry *e = a->tr.e[i];

		if (e->kind == ENTRY_USER)
			c[k++] = (struct chat_msg){ .role = "user", .content = e->text };
		else if (e->kind == ENTRY_ASSISTANT && e->len > 0 && !e->streaming)
			c[k++] = (struct chat_msg){ .role = "assistant", .content = e->text };
	}
	*n = k;
	return c;
}

static void
store_warn(struct app *a, char *cause)
{
	ui_status(a, true, "history not saved: %s", cause != NULL ? cause : "?");
	free(cause);
}

/* Make sure the conversation has a row before its first message. */
static bool
ensure_conv(struct app *a)
{
	char *cause = NULL;

	if (a->store == NULL)
		return false;
	if (a->conv_id == 0 &&
	    (a->conv_id = store_conv_create(a->store, a->model_dir, a->system, &cause)) <= 0) {
		a->conv_id = 0;
		store_warn(a, cause);
		return false;
	}
	return true;
}

struct entry *
app_turn(struct app *a)
{
	return transcript_by_uid(&a->tr, a->turn_uid);
}

void
app_send_prompt(struct app *a)
{
	struct msg m = { .type = MSG_PROMPT };
	struct chat_msg *c;
	struct entry *e;
	int n;

	ui_status_clear(a); /* a new turn: old notices are done with */
	c = build_conv(a, &n);
	m.u.prompt.conv = msg_conv_copy(c, n);
	m.u.prompt.n_conv = n;
	free(c);
	m.u.prompt.params = a->gp;
	/* A fresh seed per answer unless one is fixed; saved with the answer. */
	m.u.prompt.params.sp.seed = sampler_seed_pick(a->gp.sp.seed);
	a->turn_sp = m.u.prompt.params.sp;
	m.seq = ++a->seq;
	e = transcript_add(&a->tr, ENTRY_ASSISTANT, "");
	a->turn_uid = e->uid;
	e->streaming = true;
	e->think_open = a->think_default_open;
	e->t0 = now_sec();
	history_begin_turn(a, e, a->regen_of);
	a->regen_of = 0;
	a->state = APP_GENERATING;
	a->tok_n0 = 0;
	a->tok_rate = 0;
	a->last_checkpoint = now_sec();
	a->decode_tps = 0;
	a->prefill_done = a->prefill_total = 0;
	a->tr.scroll = 0;
	queue_push(a->to_engine, &m);
	screen_dirty(a);
}

/* Save the turn's final text and figures; the app is idle after. */
static void
finish_turn(struct app *a, enum store_status st, const char *error, const struct gen_stats *gs)
{
	struct entry *e = app_turn(a);
	struct store_reply r = { .status = st, .error = error, .usage = STORE_USAGE_UNKNOWN };
	char *params;

	a->turn_uid = 0;
	a->state = APP_IDLE;
	a->stopping = false;
	screen_dirty(a);
	if (e == NULL)
		return;
	r.content = e->text;
	r.reasoning = e->rlen ? e->reason : NULL;
	r.params_json = params = sampler_params_json(&a->turn_sp);
	e->streaming = false;
	if (e->len == 0 && e->t_think == 0)
		e->t_think = now_sec() - e->t0;
	if (gs != NULL) {
		r.usage.prompt_tokens = gs->prompt_tokens;
		r.usage.cached_tokens = gs->reused_tokens;
		r.usage.output_tokens = gs->gen_tokens;
		r.usage.reasoning_tokens = e->think_tokens;
		r.usage.prefill_ms = (int64_t)(gs->prefill_s * 1000);
		r.usage.decode_ms = (int64_t)(gs->decode_s * 1000);
		r.usage.ttft_ms = (int64_t)(gs->ttft_s * 1000);
	}
	history_end_turn(a, e, &r);
	free(params);
}

void
app_stop(struct app *a)
{
	struct msg m = { .type = MSG_CANCEL };

	if (a->state != APP_GENERATING)
		return;
	m.seq = a->seq;
	queue_push(a->to_engine, &m);
	a->stopping = true;
	screen_dirty(a);
}

/* Drop the last answer and ask again (the stored one stays as a sibling). */
void
app_regen(struct app *a)
{
	struct entry *last = a->tr.n > 0 ? a->tr.e[a->tr.n - 1] : NULL;
	struct entry *user = transcript_last(&a->tr, ENTRY_USER);

	if (a->state != APP_IDLE || user == NULL) {
		ui_status(a, true,
			  a->state == APP_GENERATING ? "an answer is being generated"
						     : "nothing to regenerate");
		return;
	}
	while (last != NULL && last != user) {
		if (last->kind == ENTRY_ASSISTANT && last->db_id > 0)
			a->regen_of = last->db_id; /* the new answer becomes its sibling */
		transcript_pop(&a->tr);
		last = a->tr.n > 0 ? a->tr.e[a->tr.n - 1] : NULL;
	}
	app_send_prompt(a);
}

/*
 * End the running turn now, because the conversation under it is about to
 * change: the engine is told to stop, the answer so far is saved as
 * stopped, and anything the engine still sends for the turn is dropped
 * (seq moves on).
 */
static void
abandon_turn(struct app *a)
{
	if (a->state != APP_GENERATING)
		return;
	app_stop(a);
	finish_turn(a, STORE_STOPPED, NULL, NULL);
	a->seq++;
}

/*
 * The only way the UI empties the transcript: a running turn ends first,
 * and turns the store could not take yet are kept for later (history.c).
 */
static void
clear_transcript(struct app *a)
{
	abandon_turn(a);
	history_leave(a);
	transcript_clear(&a->tr);
}

void
app_drop_conversation(struct app *a)
{
	abandon_turn(a);
	history_forget(a);
	app_new_conversation(a);
}

void
app_new_conversation(struct app *a)
{
	clear_transcript(a);
	a->conv_id = 0;
	free(a->system);
	a->system = NULL;
	a->ctx_used = 0;
	ui_status(a, false, "new conversation (the old one is kept: F2 lists them)");
}

/*
 * How long a saved answer thought: the first token's wait plus its share of
 * the decode time (tokens come at an even pace); 0 when not recorded.
 */
static double
think_seconds(const struct store_usage *u)
{
	if (u->ttft_ms < 0 || u->decode_ms < 0 || u->reasoning_tokens <= 0 || u->output_tokens <= 0)
		return 0;
	return (u->ttft_ms + (double)u->decode_ms * (double)(u->reasoning_tokens - 1) /
				     (double)MAX(1, u->output_tokens - 1)) /
	       1000.0;
}

void
app_open_conversation(struct app *a, int64_t id)
{
	struct store_message *msgs = NULL;
	struct store_conv conv;
	size_t n = 0;
	char *cause = NULL;

	if (a->store == NULL || store_conv_get(a->store, id, &conv, &cause) != 0 ||
	    store_branch_load(a->store, id, &msgs, &n, &cause) != 0) {
		ui_status(a, true, "cannot open conversation %lld: %s", (long long)id,
			  cause != NULL ? cause : "history is off");
		free(cause);
		return;
	}
	clear_transcript(a);
	for (size_t i = 0; i < n; i++) {
		struct entry *e;

		if (strcmp(msgs[i].role, "user") != 0 && strcmp(msgs[i].role, "assistant") != 0)
			continue;
		e = transcript_add(&a->tr, msgs[i].role[0] == 'u' ? ENTRY_USER : ENTRY_ASSISTANT,
				   msgs[i].content);
		e->db_id = msgs[i].id;
		if (msgs[i].reasoning != NULL) {
			entry_append(e, true, msgs[i].reasoning, strlen(msgs[i].reasoning));
			e->think_tokens = (int)MAX(0, msgs[i].usage.reasoning_tokens);
			e->t_think = think_seconds(&msgs[i].usage);
		}
		e->think_open = a->think_default_open;
	}
	free(a->system);
	a->system = conv.system_prompt != NULL ? xstrdup(conv.system_prompt) : NULL;
	a->conv_id = id;
	ui_status(a, false, "opened \"%s\" (%d message%s)", conv.display_title, a->tr.n,
		  a->tr.n == 1 ? "" : "s");
	store_conv_release(&conv);
	store_branch_free(msgs, n);
}

/* ---- engine messages ------------------------------------------------------ */

/* Copy the fields named in `fields` (enum sampler_field) from src to dst. */
static void
sampler_fields_copy(struct sampler_params *dst, const struct sampler_params *src, unsigned fields)
{
	if (fields & SP_TEMPERATURE)
		dst->temperature = src->temperature;
	if (fields & SP_TOP_K)
		dst->top_k = src->top_k;
	if (fields & SP_TOP_P)
		dst->top_p = src->top_p;
	if (fields & SP_MIN_P)
		dst->min_p = src->min_p;
	if (fields & SP_PRESENCE)
		dst->presence_penalty = src->presence_penalty;
	if (fields & SP_REPEAT)
		dst->repetition_penalty = src->repetition_penalty;
	if (fields & SP_SEED)
		dst->seed = src->seed;
}

/*
 * The decode speed so far, from the engine's own count and clock: tokens
 * reach this thread in batches, so arrival times say nothing about speed.
 * Averaged from the turn's first token, as the final figure is.
 */
static void
live_rate(struct app *a, int n, double t)
{
	if (a->tok_n0 == 0 || n < a->tok_n0) {
		a->tok_n0 = n;
		a->tok_t0 = t;
	} else if (n > a->tok_n0 && t > a->tok_t0)
		a->tok_rate = (n - a->tok_n0) / (t - a->tok_t0);
}

static void
on_token(struct app *a, const struct msg_token *m)
{
	struct entry *e = app_turn(a);
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
	live_rate(a, m->n, m->t);
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
	struct entry *e = app_turn(a);
	double tg = s->gen_tokens > 1 && s->decode_s > 0 ? (s->gen_tokens - 1) / s->decode_s : 0;
	int new_tok = s->prompt_tokens - s->reused_tokens;

	if (e == NULL)
		return;
	a->prefill_tps = s->prefill_s > 0 && new_tok > 0 ? new_tok / s->prefill_s : 0;
	a->decode_tps = tg;
	a->ttft = s->ttft_s;
	a->ctx_used = s->prompt_tokens + s->gen_tokens;
	a->last_stats = *s;
	e->stats = xasprintf("%d token%s, %.1f tok/s, first token %.2f s, prompt %d (%d new) - %s, "
			     "seed %llu",
			     s->gen_tokens, s->gen_tokens == 1 ? "" : "s", tg, s->ttft_s,
			     s->prompt_tokens, new_tok, gen_stop_name(s->stop),
			     (unsigned long long)a->turn_sp.seed);
	finish_turn(a, s->stop == GEN_STOP_USER ? STORE_STOPPED : STORE_DONE, NULL, s);
}

static void
on_error(struct app *a, uint64_t seq, const struct msg_error *m)
{
	if (seq == 0) {
		if (a->state == APP_LOADING) {
			a->state = APP_NO_MODEL;
			ui_info(a, "%s", m->text);
		}
		ui_status(a, true, "%s", m->text);
		return;
	}
	if (seq != a->seq || app_turn(a) == NULL)
		return;
	transcript_add(&a->tr, ENTRY_ERROR, m->text);
	finish_turn(a, STORE_ERROR, m->text, NULL);
	ui_status(a, true, "%s", m->text);
}

/* The load and read-ahead reports (msg.h says what they carry). */
static void
on_progress(struct app *a, struct msg_progress *m)
{
	bool reading = m->phase != NULL && strcmp(m->phase, "reading weights") == 0;

	if (reading && a->load_reading && m->t > a->load_last_t && m->bytes_read >= a->load_done) {
		a->load_read_s += m->t - a->load_last_t;
		a->load_read_bytes += m->bytes_read - a->load_done;
	}
	a->load_reading = reading;
	a->load_last_t = m->t;
	a->load_done = m->bytes_read;
	a->load_total = m->bytes_total;
	free(a->load_phase);
	a->load_phase = m->phase;
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
	a->n_ctx = m->n_ctx;
	a->test_model = !m->full_size;
	/* What the user chose stays; the rest is the model's. */
	sampler_fields_copy(&a->gp.sp, &m->defaults, ~a->sp_set);
	/* Short, so the read-ahead's progress stays beside it; the start
	 * screen and /show model describe the model. */
	ui_status(a, false, "ready in %.1f s", now_sec() - a->load_t0);
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
	case MSG_PREFILL:
		if (turn)
			a->prefill_done = m->u.prefill.done, a->prefill_total = m->u.prefill.total;
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

/* ---- commands ---------------------------------------------------------------- */

static void do_search_line(struct app *a, const char *line);

/* "random" or the number (static buffer: use at once). */
static const char *
seed_str(uint64_t seed)
{
	static char buf[32];

	if (seed == SAMPLER_SEED_RANDOM)
		return "random (a fresh one per answer)";
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)seed);
	return buf;
}

static void
show(struct app *a, const struct command *c)
{
	const struct sampler_params *p = &a->gp.sp;

	if (c->show == SHOW_SYSTEM)
		ui_info(a, "system prompt: %s", a->system != NULL ? a->system : "(none)");
	else if (c->show == SHOW_MODEL)
		ui_info(a, "model: %s\n%s", a->model_dir,
			a->model_desc != NULL ? a->model_desc : "(not loaded)");
	else if (c->show == SHOW_STATS)
		ui_info(a,
			"last turn: prompt %d tokens (%d reused), %d generated, prefill %.0f "
			"tok/s, decode %.1f tok/s, first token %.2f s",
			a->last_stats.prompt_tokens, a->last_stats.reused_tokens,
			a->last_stats.gen_tokens, a->prefill_tps, a->decode_tps, a->ttft);
	else
		ui_info(a,
			"temp %.2f  top_k %d  top_p %.2f  min_p %.2f  presence %.2f  repeat "
			"%.2f  seed %s  max_tokens %d",
			p->temperature, p->top_k, p->top_p, p->min_p, p->presence_penalty,
			p->repetition_penalty, seed_str(p->seed), a->gp.max_tokens);
}

static void
set_param(struct app *a, const struct command *c)
{
	struct sampler_params *p = &a->gp.sp;

	/* A choice of the user's: a model loaded later does not undo it. */
	switch (c->param) {
	case PARAM_TEMP:
		p->temperature = (float)c->value, a->sp_set |= SP_TEMPERATURE;
		break;
	case PARAM_TOP_P:
		p->top_p = (float)c->value, a->sp_set |= SP_TOP_P;
		break;
	case PARAM_TOP_K:
		p->top_k = (int)c->value, a->sp_set |= SP_TOP_K;
		break;
	case PARAM_MIN_P:
		p->min_p = (float)c->value, a->sp_set |= SP_MIN_P;
		break;
	case PARAM_SEED:
		p->seed = c->value < 0 ? SAMPLER_SEED_RANDOM : (uint64_t)c->value;
		a->sp_set |= SP_SEED;
		break;
	case PARAM_MAX_TOKENS:
		a->gp.max_tokens = (int)c->value;
		break;
	case PARAM_PRESENCE:
		p->presence_penalty = (float)c->value, a->sp_set |= SP_PRESENCE;
		break;
	case PARAM_REPEAT:
		p->repetition_penalty = (float)c->value, a->sp_set |= SP_REPEAT;
		break;
	}
	ui_status(a, false, "set");
}

/* The current chat's title for editing, or NULL (static buffer: use at once). */
static const char *
current_title(struct app *a)
{
	static char buf[256];
	struct store_conv c;

	if (a->store == NULL || a->conv_id <= 0 ||
	    store_conv_get(a->store, a->conv_id, &c, NULL) != 0)
		return NULL;
	snprintf(buf, sizeof(buf), "%s", c.title != NULL ? c.title : "");
	store_conv_release(&c);
	return buf;
}

static void
rename_line(struct app *a, const char *line)
{
	char *cause = NULL;

	if (line[0] == '\0')
		return;
	if (!ensure_conv(a) || store_conv_rename(a->store, a->conv_id, line, &cause) != 0)
		store_warn(a, cause);
	else
		ui_status(a, false, "renamed to \"%s\"", line);
}

static void
delete_current(struct app *a)
{
	char *cause = NULL;

	if (a->store != NULL && a->conv_id > 0 &&
	    store_conv_delete(a->store, a->conv_id, &cause) != 0) {
		store_warn(a, cause);
		return;
	}
	app_drop_conversation(a);
	ui_status(a, false, "conversation deleted");
}

void
app_confirm(struct app *a, const char *question, void (*fn)(struct app *))
{
	free(a->confirm_text);
	a->confirm_text = xasprintf("%s (y/n)", question);
	a->confirm_fn = fn;
	a->overlay = OVERLAY_CONFIRM;
	screen_dirty(a);
}

void
app_export(struct app *a, int64_t id, bool json, const char *path)
{
	enum store_format fmt = json ? STORE_JSON : STORE_MARKDOWN;
	char *cause = NULL, *def = NULL;

	if (a->store == NULL || id <= 0) {
		ui_status(a, true, "nothing saved to export");
		return;
	}
	if (path == NULL)
		path = def = xasprintf("qnext-%lld.%s", (long long)id, json ? "json" : "md");
	if (store_export_file(a->store, id, fmt, path, &cause) != 0)
		ui_status(a, true, "export failed: %s", cause);
	else
		ui_status(a, false, "exported to %s", path);
	free(cause);
	free(def);
}

/*
 * Copy text to the terminal's clipboard with OSC 52.  Plain, also under
 * tmux: tmux takes it into its buffer and the outer clipboard with
 * `set-clipboard on`, while the passthrough wrapping is dropped unless
 * `allow-passthrough` is on (off by default).
 */
static void
osc52(struct app *a, const char *text)
{
	size_t n = strlen(text);
	unsigned char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock(b64, (const unsigned char *)text, (int)n);
	printf("\033]52;c;%s\a", b64);
	fflush(stdout);
	free(b64);
	ui_status(a, false, "copied %zu bytes (through the terminal: OSC 52)", n);
}

static void
copy(struct app *a, enum command_copy what)
{
	struct entry *e = transcript_last(&a->tr, ENTRY_ASSISTANT);
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (what == COPY_ALL) {
		for (int i = 0; i < a->tr.n; i++) {
			const struct entry *x = a->tr.e[i];
			const char *who = x->kind == ENTRY_USER ? "## you\n\n" : "## qnext\n\n";

			if (x->kind != ENTRY_USER && x->kind != ENTRY_ASSISTANT)
				continue;
			cap = len + strlen(who) + x->len + 3;
			buf = xrealloc(buf, cap);
			len += (size_t)sprintf(buf + len, "%s%s\n\n", who, x->text);
		}
	} else if (e != NULL && what == COPY_CODE) {
		/* The last fenced code block of the last answer. */
		const char *end = NULL, *start = NULL, *p = e->text;

		while ((p = strstr(p, "```")) != NULL) {
			if (start == NULL || end != NULL)
				start = p, end = NULL;
			else
				end = p;
			p += 3;
		}
		if (start != NULL && end != NULL) {
			start += strcspn(start, "\n") + 1;
			buf = start < end ? strndup(start, (size_t)(end - start)) : NULL;
		}
	} else if (e != NULL)
		buf = xstrdup(e->text);
	if (buf == NULL || buf[0] == '\0') {
		ui_status(a, true, "nothing to copy: %s",
			  what == COPY_CODE               ? "no code block in the last answer"
			  : e == NULL && what != COPY_ALL ? "no answer yet"
							  : "it is empty");
		free(buf);
		return;
	}
	osc52(a, buf);
	free(buf);
}

static void
set_system(struct app *a, const char *text)
{
	char *cause = NULL;

	free(a->system);
	a->system = text != NULL && text[0] != '\0' ? xstrdup(text) : NULL;
	if (a->store != NULL && a->conv_id > 0 &&
	    store_conv_set_system(a->store, a->conv_id, a->system, &cause) != 0)
		store_warn(a, cause);
	ui_status(a, false, a->system ? "system prompt set" : "system prompt cleared");
}

static void
think_all(struct app *a, enum command_think t)
{
	bool open = t == THINK_SHOW || (t == THINK_TOGGLE && !a->think_default_open);

	a->think_default_open = open;
	for (int i = 0; i < a->tr.n; i++)
		a->tr.e[i]->think_open = open;
	screen_dirty(a);
}

/* /help: the overlay, or one command's lines in the transcript. */
static void
help(struct app *a, const char *topic)
{
	char *t;

	if (topic == NULL) {
		screen_help_open(a);
	} else if ((t = commands_help_topic(topic)) == NULL)
		ui_status(a, true, "no command /%s; /help lists them",
			  topic[0] == '/' ? topic + 1 : topic);
	else {
		ui_info(a, "%s", t);
		free(t);
	}
}

static void
run_command(struct app *a, const struct command *c)
{
	switch (c->id) {
	case CMD_HELP:
		help(a, c->arg);
		break;
	case CMD_NEW:
		app_new_conversation(a);
		break;
	case CMD_REGEN:
		app_regen(a);
		break;
	case CMD_SYSTEM:
		if (c->arg == NULL)
			ui_info(a, "system prompt: %s", a->system ? a->system : "(none)");
		else
			set_system(a, c->arg);
		break;
	case CMD_SET:
		set_param(a, c);
		break;
	case CMD_SHOW:
		show(a, c);
		break;
	case CMD_THINK:
		think_all(a, c->think);
		break;
	case CMD_CHATS:
		browser_open(a, NULL);
		break;
	case CMD_SEARCH:
		browser_open(a, c->arg);
		break;
	case CMD_RENAME:
		if (c->arg != NULL)
			rename_line(a, c->arg);
		else
			app_ask(a, "new title: ", current_title(a), rename_line);
		break;
	case CMD_DELETE:
		app_confirm(a, "delete this conversation?", delete_current);
		break;
	case CMD_EXPORT:
		app_export(a, a->conv_id, c->format == EXPORT_JSON, c->path);
		break;
	case CMD_COPY:
		copy(a, c->copy);
		break;
	case CMD_QUIT:
		a->quit = true;
		break;
	}
	screen_dirty(a);
}

static void
user_line(struct app *a, const char *line)
{
	struct command c;
	char *cause = NULL;
	int r;

	if ((r = commands_parse(line, &c, &cause)) == 0) {
		run_command(a, &c);
		command_free(&c);
		return;
	}
	if (r < 0) {
		ui_status(a, true, "%s", cause);
		free(cause);
		return;
	}
	if (a->state != APP_IDLE) {
		ui_status(a, true, "%s: your text is kept, Enter sends it then%s",
			  a->state == APP_GENERATING ? "an answer is being generated"
			  : a->state == APP_LOADING  ? "the model is still loading"
						     : "no model is loaded (see above)",
			  a->state == APP_GENERATING ? " (Ctrl-C stops the answer)" : "");
		free(a->kept_line);
		a->kept_line = xstrdup(line);
		return;
	}
	if (line[0] == '/' && line[1] == '/')
		line++; /* "//text" is a message that starts with a slash */
	transcript_add(&a->tr, ENTRY_USER, line);
	history_sync(a); /* the question, and anything still unsaved above it */
	app_send_prompt(a);
}

static void
quit_confirmed(struct app *a)
{
	a->quit = true;
}

static void
on_line(char *line)
{
	struct app *a = app_g;
	app_line_fn *fn = line_action;

	if (fn != NULL) {
		app_ask(a, "> ", NULL, NULL);
		if (line != NULL)
			fn(a, line);
		free(line);
		return;
	}
	if (line == NULL) { /* Ctrl-D on an empty line */
		if (a->state == APP_GENERATING)
			app_confirm(a, "an answer is being generated: quit anyway?",
				    quit_confirmed);
		else
			a->quit = true;
		return;
	}
	if (line[strspn(line, " \t\r\n")] != '\0') {
		add_history(line);
		user_line(a, line);
	}
	free(line);
	screen_dirty(a);
}

/* ---- key bindings ---------------------------------------------------------- */

static int
key_ctrl_c(int count, int key)
{
	struct app *a = app_g;

	(void)count, (void)key;
	if (a->state == APP_GENERATING)
		app_stop(a);
	else if (rl_end > 0) {
		rl_replace_line("", 0);
		rl_point = 0;
	} else
		ui_status(a, false, "Ctrl-D or /quit to exit");
	screen_dirty(a);
	return 0;
}

static int
key_newline(int count, int key)
{
	(void)count, (void)key;
	rl_insert_text("\n");
	return 0;
}

static int
key_think(int count, int key)
{
	struct entry *e = transcript_last(&app_g->tr, ENTRY_ASSISTANT);

	(void)count, (void)key;
	if (e != NULL)
		e->think_open = !e->think_open;
	screen_dirty(app_g);
	return 0;
}

static int
scroll_by(int lines)
{
	struct app *a = app_g;

	a->tr.scroll = MAX(0, a->tr.scroll + lines);
	screen_dirty(a);
	return 0;
}

static int
key_pgup(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(MAX(1, screen_rows(app_g) - 6));
}

static int
key_pgdn(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(-MAX(1, screen_rows(app_g) - 6));
}

static int
key_up3(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(3);
}

static int
key_down3(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(-3);
}

static int
key_top(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(1 << 28);
}

static int
key_bottom(int c, int k)
{
	(void)c, (void)k;
	app_g->tr.scroll = 0;
	screen_dirty(app_g);
	return 0;
}

static int
key_help(int c, int k)
{
	(void)c, (void)k;
	help(app_g, NULL);
	screen_dirty(app_g);
	return 0;
}

static int
key_chats(int c, int k)
{
	(void)c, (void)k;
	browser_open(app_g, NULL);
	return 0;
}

static int
key_regen(int c, int k)
{
	(void)c, (void)k;
	app_regen(app_g);
	return 0;
}

static int
key_quit(int c, int k)
{
	(void)c, (void)k;
	app_g->quit = true;
	return 0;
}

static int
key_redraw(int c, int k)
{
	(void)c, (void)k;
	clearok(curscr, TRUE);
	screen_draw(app_g);
	return 0;
}

static void
do_search_line(struct app *a, const char *line)
{
	int from;

	if (line[0] != '\0') {
		free(a->tr.search);
		a->tr.search = xstrdup(line);
	}
	if (a->tr.search == NULL)
		return;
	from = a->tr.search_hit >= 0 ? a->tr.search_hit : a->tr.total_lines;
	a->tr.search_hit = transcript_find(&a->tr, a->tr.search, from);
	if (a->tr.search_hit < 0 && from < a->tr.total_lines) /* wrap around */
		a->tr.search_hit = transcript_find(&a->tr, a->tr.search, a->tr.total_lines);
	if (a->tr.search_hit < 0) {
		ui_status(a, true, "not found: %s", a->tr.search);
		return;
	}
	/* Put the hit in the middle of the transcript area. */
	a->tr.scroll = MAX(0, a->tr.total_lines - a->tr.search_hit - (screen_rows(a) - 4) / 2);
	ui_status(a, false, "found \"%s\" (Ctrl-S, Enter: next)", a->tr.search);
}

static int
key_search(int c, int k)
{
	(void)c, (void)k;
	app_ask(app_g, "search: ", NULL, do_search_line);
	return 0;
}

/* Ctrl-X Ctrl-E: edit the input in $VISUAL or $EDITOR. */
static int
key_editor(int c, int k)
{
	const char *ed = getenv("VISUAL") ? getenv("VISUAL") : getenv("EDITOR");
	char path[] = "/tmp/qnext-input-XXXXXX", *cmd, *text;
	int fd = mkstemp(path);
	size_t n;

	(void)c, (void)k;
	if (fd < 0)
		return 0;
	if (write(fd, rl_line_buffer, (size_t)rl_end) < 0)
		ui_status(app_g, true, "cannot write %s", path);
	close(fd);
	cmd = xasprintf("%s %s", ed != NULL ? ed : "vi", path);
	def_prog_mode();
	fputs("\033[?2004l", stdout);
	endwin();
	if (system(cmd) != 0)
		ui_status(app_g, true, "the editor failed: %s", cmd);
	reset_prog_mode();
	fputs("\033[?2004h", stdout);
	fflush(stdout);
	clearok(curscr, TRUE);
	if ((text = read_file(path, &n, NULL)) != NULL) {
		while (n > 0 && text[n - 1] == '\n')
			text[--n] = '\0';
		rl_replace_line(text, 0);
		rl_point = rl_end;
		free(text);
	}
	unlink(path);
	free(cmd);
	screen_dirty(app_g);
	return 0;
}

/* Ctrl-Z: raw mode delivers it as a key; suspend like a shell job would. */
static int
key_suspend(int c, int k)
{
	(void)c, (void)k;
	def_prog_mode();
	fputs("\033[?2004l", stdout);
	endwin();
	signal(SIGTSTP, SIG_DFL);
	kill(0, SIGTSTP);
	reset_prog_mode();
	fputs("\033[?2004h", stdout);
	fflush(stdout);
	clearok(curscr, TRUE);
	screen_dirty(app_g);
	return 0;
}

static int
key_alt_digit(int c, int k)
{
	struct store_conv_item *items = NULL;
	size_t n = 0;
	int idx = k - '1';

	(void)c;
	if (app_g->store == NULL || store_conv_list(app_g->store, &items, &n, NULL) != 0)
		return 0;
	if (idx >= 0 && (size_t)idx < n)
		app_open_conversation(app_g, items[idx].id);
	store_conv_list_free(items, n);
	return 0;
}

static char **
complete(const char *text, int start, int end)
{
	char **m;

	(void)end;
	rl_attempted_completion_over = 1; /* never fall back to file names */
	if (rl_line_buffer[0] != '/')
		return NULL;
	m = commands_complete(rl_line_buffer, start);
	(void)text;
	return m;
}

/*
 * Bind in every keymap a user can be in: emacs, and vi's insert and command
 * maps (with `set editing-mode vi` in ~/.inputrc the emacs map is never
 * used, so keys bound only there do nothing).
 */
/* Readline lists ambiguous completions on rl_outstream (/dev/null here): show them as a notice. */
static void
show_matches(char **matches, int n, int longest)
{
	char buf[512];
	size_t len = 0;

	(void)longest;
	buf[0] = '\0';
	for (int i = 1; i <= n && len + 2 < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i > 1 ? "  " : "",
					matches[i]);
	ui_status(app_g, false, "%s", buf);
}

static void
bind(const char *seq, rl_command_func_t *fn)
{
	Keymap maps[] = { emacs_standard_keymap, vi_insertion_keymap, vi_movement_keymap };

	for (size_t i = 0; i < ARRAY_LEN(maps); i++)
		rl_bind_keyseq_in_map(seq, fn, maps[i]);
}

static void
bind_keys(void)
{
	char alt[4] = "\\e1";

	bind("\\C-c", key_ctrl_c);
	bind("\\e\\C-m", key_newline);
	bind("\\e\\C-j", key_newline);
	bind("\\C-j", key_newline);
	bind("\\C-o", key_think);
	bind("\\e[5~", key_pgup);
	bind("\\e[6~", key_pgdn);
	bind("\\e[5;3~", key_up3);
	bind("\\e[6;3~", key_down3);
	bind("\\e\\e[5~", key_up3);
	bind("\\e\\e[6~", key_down3);
	bind("\\e[1;2A", key_up3);
	bind("\\e[1;2B", key_down3);
	bind("\\e[1;3H", key_top);
	bind("\\e[1;3F", key_bottom);
	bind("\\eOP", key_help);
	bind("\\e[11~", key_help);
	bind("\\eOQ", key_chats);
	bind("\\e[12~", key_chats);
	bind("\\eOR", key_search);
	bind("\\e[13~", key_search);
	bind("\\C-s", key_search);
	bind("\\e[15~", key_regen);
	bind("\\e[21~", key_quit);
	bind("\\C-l", key_redraw);
	bind("\\C-z", key_suspend);
	bind("\\C-x\\C-e", key_editor);
	for (char d = '1'; d <= '9'; d++) {
		alt[2] = d;
		bind(alt, key_alt_digit);
	}
}

static char *
state_path(const char *file)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *dir = x != NULL && *x ? xasprintf("%s/qnext", x)
				    : xasprintf("%s/.local/state/qnext", home ? home : ".");
	char *p = xasprintf("%s/%s", dir, file);

	/* mkdir -p; when it fails there is simply no history file. */
	for (char *s = dir + 1; *s != '\0'; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(dir, 0700);
			*s = '/';
		}
	mkdir(dir, 0700);
	free(dir);
	return p;
}

/*
 * Whether the input history file may be read and written: absent, or a
 * regular file.  readline opens it without O_NONBLOCK, so a FIFO there would
 * hang the start (and the exit) for good.
 */
static bool
history_file_ok(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		return errno == ENOENT;
	if (S_ISREG(sb.st_mode))
		return true;
	ui_status(app_g, true, "%s is not a regular file: the input history is not kept", path);
	return false;
}

static void
readline_init(void)
{
	char *hist = state_path("history");

	rl_readline_name = "qnext";
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	rl_change_environment = 0;
	rl_prep_term_function = NULL;
	rl_deprep_term_function = NULL;
	rl_outstream = fopen("/dev/null", "w");
	rl_getc_function = app_getc;
	rl_redisplay_function = app_redisplay;
	rl_attempted_completion_function = complete;
	rl_completion_display_matches_hook = show_matches;
	rl_variable_bind("keyseq-timeout", "50");
	rl_variable_bind("enable-bracketed-paste", "on");
	rl_variable_bind("show-all-if-ambiguous", "on"); /* one Tab lists the candidates */
	using_history();
	/* A message can span lines: with timestamps the history file marks
	 * where each entry starts, so multi-line entries come back whole. */
	history_write_timestamps = 1;
	history_multiline_entries = 1;
	history_comment_char = '#';
	if (history_file_ok(hist))
		read_history(hist);
	free(hist);
	rl_initialize(); /* reads ~/.inputrc now, so the application's keys win over it */
	bind_keys();
	rl_callback_handler_install("> ", on_line);
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
				key_ctrl_c(1, 3);
			else
				a->quit = true; /* SIGTERM, SIGHUP: save and leave */
		}
}

/* ---- keyboard ----------------------------------------------------------------- */

/*
 * Bytes of the escape sequence at p (n > 0 bytes there): a CSI or SS3
 * sequence up to its final byte, Alt plus a key, or a lone Esc; 0 when p
 * does not start with Esc.
 */
static size_t
esc_seq_len(const unsigned char *p, size_t n)
{
	size_t k = 2;

	if (p[0] != 0x1b)
		return 0;
	if (n == 1)
		return 1;
	if (p[1] == 0x1b) /* Alt with a key that is a sequence itself */
		return 1 + esc_seq_len(p + 1, n - 1);
	if (p[1] == 'O')
		return MIN(3, n);
	if (p[1] != '[')
		return 2;
	while (k < n && !(p[k] >= 0x40 && p[k] <= 0x7e))
		k++;
	return MIN(k + 1, n);
}

/* The key a CSI/SS3 sequence p[0..n) names, for the overlays; -1 if none of theirs. */
static int
seq_key(const unsigned char *p, size_t n)
{
	int num = n > 3 ? atoi((const char *)p + 2) : 0;

	switch (p[n - 1]) {
	case 'A':
		return KEY_UP;
	case 'B':
		return KEY_DOWN;
	case 'H':
		return KEY_HOME;
	case 'F':
		return KEY_END;
	case '~': /* vt220 keypad: 1 and 7 Home, 4 and 8 End (screen, tmux, rxvt) */
		return num == 5               ? KEY_PPAGE
		       : num == 6             ? KEY_NPAGE
		       : num == 1 || num == 7 ? KEY_HOME
		       : num == 4 || num == 8 ? KEY_END
					      : -1;
	default:
		return -1;
	}
}

/* Decode one key from the input bytes for the overlays; 0 when none. */
static int
next_key(struct app *a)
{
	unsigned char *p = a->inbuf + a->in_pos;
	size_t n = a->in_len - a->in_pos, k;

	if (n == 0)
		return 0;
	k = esc_seq_len(p, n);
	if (k >= 3 && p[1] != 0x1b) {
		a->in_pos += k;
		return seq_key(p, k);
	}
	a->in_pos++;
	return p[0];
}

static void
browser_delete_confirmed(struct app *a)
{
	char *cause = NULL;
	int64_t id = browser_target(a);

	if (store_conv_delete(a->store, id, &cause) != 0) {
		ui_status(a, true, "delete failed: %s", cause);
		free(cause);
	} else {
		if (id == a->conv_id)
			app_drop_conversation(a);
		ui_status(a, false, "conversation deleted");
	}
	browser_open(a, NULL);
}

/* A key in the conversation list, and what it asks for. */
static void
browser_action(struct app *a, int k)
{
	int64_t id;
	char *title, *q;

	switch (browser_key(a, k, &id, &title)) {
	case BROWSER_OPEN:
		app_open_conversation(a, id);
		break;
	case BROWSER_SEARCH:
		app_ask(a, "search chats: ", NULL, browser_search_line);
		break;
	case BROWSER_RENAME:
		app_ask(a, "new title: ", title, browser_rename_line);
		break;
	case BROWSER_DELETE:
		q = xasprintf("delete #%lld \"%s\"?", (long long)id, title);
		app_confirm(a, q, browser_delete_confirmed);
		free(q);
		break;
	case BROWSER_EXPORT:
		app_export(a, id, false, NULL);
		break;
	case BROWSER_STAY:
		break;
	}
	free(title);
}

static void
overlay_keys(struct app *a)
{
	int k;

	while ((k = next_key(a)) != 0) {
		if (a->overlay == OVERLAY_HELP) {
			screen_help_key(a, k);
		} else if (a->overlay == OVERLAY_CONFIRM) {
			a->overlay = OVERLAY_NONE;
			if ((k == 'y' || k == 'Y') && a->confirm_fn != NULL)
				a->confirm_fn(a);
			else
				ui_status(a, false, "cancelled");
		} else if (a->overlay == OVERLAY_BROWSER) {
			browser_action(a, k);
		}
		screen_dirty(a);
		if (a->overlay == OVERLAY_NONE)
			break; /* the rest goes to readline */
	}
}

/* A lone Esc while generating stops the answer (readline would wait for more). */
static bool
lone_escape(struct app *a)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };

	if (a->state != APP_GENERATING || a->in_len - a->in_pos != 1 || a->inbuf[a->in_pos] != 0x1b)
		return false;
	if (poll(&p, 1, 30) > 0)
		return false;
	a->in_pos++;
	app_stop(a);
	return true;
}

/*
 * Put a line that could not be sent back in the input.  Not from the line
 * handler itself: readline empties the line after the handler returns.
 */
static void
restore_kept_line(struct app *a)
{
	if (a->kept_line == NULL)
		return;
	rl_replace_line(a->kept_line, 0);
	rl_point = rl_end;
	free(a->kept_line);
	a->kept_line = NULL;
	screen_dirty(a);
}

static void
on_stdin(struct app *a)
{
	ssize_t n = read(STDIN_FILENO, a->inbuf, sizeof(a->inbuf));

	if (n <= 0) {
		if (n == 0)
			a->quit = true; /* the terminal went away */
		return;
	}
	a->in_len = (size_t)n;
	a->in_pos = 0;
	if (a->overlay != OVERLAY_NONE)
		overlay_keys(a);
	if (lone_escape(a))
		return;
	while (a->in_pos < a->in_len && a->overlay == OVERLAY_NONE && !a->quit) {
		size_t k = esc_seq_len(a->inbuf + a->in_pos, a->in_len - a->in_pos);

		/* An escape sequence goes to readline as pushed input: vi mode
		 * takes an Esc as "command mode" unless it sees the rest of the
		 * key already pending, and it looks there, not in our buffer. */
		while (k-- > 0)
			rl_stuff_char(a->inbuf[a->in_pos++]);
		rl_callback_read_char();
		restore_kept_line(a);
	}
	if (a->overlay != OVERLAY_NONE)
		overlay_keys(a);
	a->in_len = a->in_pos = 0;
}

/* ---- the loop ---------------------------------------------------------------- */

static void
gauges_tick(struct app *a)
{
	struct rusage ru;
	double t = now_sec();

	if (t - a->last_gauge_t < 1.0)
		return;
	getrusage(RUSAGE_SELF, &ru);
	if (a->last_gauge_t > 0)
		a->majflt_rate =
			((double)ru.ru_majflt - (double)a->last_majflt) / (t - a->last_gauge_t);
	a->last_majflt = (uint64_t)ru.ru_majflt;
	a->last_gauge_t = t;
	screen_dirty(a);
}

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
			on_stdin(a);
		gauges_tick(a);
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
	char *hist = state_path("history");
	int lost;

	if (a->state == APP_GENERATING)
		finish_turn(a, STORE_STOPPED, NULL, NULL);
	/* The engine stops within a layer; say what the exit waits for meanwhile. */
	a->quitting = true;
	screen_draw(a);
	queue_push(a->to_engine, &m);
	engine_join(a->engine);
	if (history_file_ok(hist))
		write_history(hist);
	free(hist);
	rl_callback_handler_remove();
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
	screen_free(a->scr);
	free(a->model_dir), free(a->model_desc), free(a->system);
	free(a->store_error), free(a->load_phase), free(a->confirm_text), free(a->kept_line);
	close(a->sig_pipe[0]);
	close(a->sig_pipe[1]);
	free(a);
}

int
app_run(const struct app_opts *o)
{
	struct app *a = xcalloc(1, sizeof(*a));
	char *cause = NULL;

	app_g = a;
	a->br = browser_new();
	transcript_init(&a->tr);
	a->model_dir = xstrdup(o->model_dir);
	a->n_ctx = o->n_ctx; /* 0: the engine's default, until MSG_READY says which */
	a->threads = o->threads;
	a->expert_cache = o->expert_cache;
	/* The built-in defaults until the engine reports the model's (MSG_READY). */
	a->gp = o->params;
	sampler_params_default(&a->gp.sp);
	sampler_fields_copy(&a->gp.sp, &o->params.sp, o->params_set);
	a->sp_set = o->params_set;
	a->system = o->system != NULL ? xstrdup(o->system) : NULL;
	if ((a->to_engine = queue_new(&cause)) == NULL ||
	    (a->from_engine = queue_new(&cause)) == NULL ||
	    (a->engine = engine_start(a->to_engine, a->from_engine, &cause)) == NULL) {
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
	readline_init();
	fputs("\033[?2004h", stdout); /* bracketed paste: readline's own prep is off */
	fflush(stdout);
	history_open(a);
	load_model(a);
	screen_draw(a);
	loop(a);
	shutdown_app(a);
	app_free(a);
	app_g = NULL;
	return 0;
}
