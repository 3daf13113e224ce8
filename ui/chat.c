/*
 * chat.c - the conversation on screen and its turns: asking the engine to
 * load the model, sending a prompt, stopping, regenerating, and starting,
 * opening or dropping a conversation (the only way the transcript is
 * emptied: a running turn ends first, see clear_transcript); editing an
 * earlier question and switching between sibling branches.
 *
 * The transcript is a view of the store's visible branch: each entry holds
 * its message's id and its place among its siblings, and whatever moves the
 * branch (opening, an edit, a switch) asks the store first, then re-reads
 * the branch from it (load_branch).  Branches are never switched or forked
 * while an answer streams: the user stops it first (docs/ui.md "Branches").
 *
 * It talks to the engine only by pushing messages (msg.h); the answers come
 * back through app.c's loop, which calls chat_finish when a turn ends.
 * Keeping a long conversation inside the context is here too: /continue,
 * /drop, /compact, the 90% warning (docs/ui.md "Context management").
 *
 * UI thread only.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "sampler.h" /* sampler_seed_pick, sampler_params_json */
#include "store.h"
#include "thread-role.h"
#include "ui-int.h"
#include "util.h"

void
chat_load(struct app *a)
{
	struct msg m = { .type = MSG_LOAD,
			 .u.load = { .dir = xstrdup(a->model_dir),
				     .n_ctx = a->n_ctx,
				     .threads = a->threads,
				     .expert_cache = a->expert_cache,
				     .state_cache = a->state_cache } };

	assert_ui();
	a->state = APP_LOADING;
	gauges_load_start(a);
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

		if (e->dropped)
			continue;
		if (e->kind == ENTRY_USER)
			c[k++] = (struct chat_msg){ .role = "user", .content = e->text };
		else if (e->kind == ENTRY_ASSISTANT && e->len > 0 && !e->streaming)
			c[k++] = (struct chat_msg){ .role = "assistant", .content = e->text };
	}
	*n = k;
	return c;
}

void
chat_store_warn(struct app *a, char *cause)
{
	assert_ui();
	ui_status(a, true, "history not saved: %s", cause != NULL ? cause : "?");
	free(cause);
}

/* Make sure the conversation has a row before its first message. */
bool
chat_ensure_conv(struct app *a)
{
	char *cause = NULL;

	assert_ui();
	if (history_store(a) == NULL)
		return false;
	if (a->conv_id == 0 && (a->conv_id = store_conv_create(history_store(a), a->model_dir,
							       a->system, &cause)) <= 0) {
		a->conv_id = 0;
		chat_store_warn(a, cause);
		return false;
	}
	return true;
}

struct entry *
chat_turn(struct app *a)
{
	assert_ui();
	return transcript_by_uid(&a->tr, a->turn_uid);
}

/* Send the conversation c[0..n) (freed here) for the turn that streams into e. */
static void
push_turn(struct app *a, struct chat_msg *c, int n, struct entry *e, bool cont)
{
	struct msg m = { .type = MSG_PROMPT };

	ui_status_clear(a); /* a new turn: old notices are done with */
	m.u.prompt.conv = msg_conv_copy(c, n);
	m.u.prompt.n_conv = n;
	if (cont && c[n - 1].reasoning != NULL) /* the continued answer's thought so far */
		m.u.prompt.conv[n - 1].reasoning = xstrdup(c[n - 1].reasoning);
	free(c);
	m.u.prompt.params = a->gp;
	m.u.prompt.params.continue_last = cont;
	/* A fresh seed per answer unless one is fixed; saved with the answer. */
	m.u.prompt.params.sp.seed = sampler_seed_pick(a->gp.sp.seed);
	a->turn_sp = m.u.prompt.params.sp;
	m.seq = ++a->seq;
	a->turn_uid = e->uid;
	a->turn_continues = cont;
	e->streaming = true;
	a->state = APP_GENERATING;
	gauges_turn_start(a);
	a->last_checkpoint = now_sec();
	a->tr.scroll = 0;
	queue_push(a->to_engine, &m);
	screen_dirty(a);
}

void
chat_send(struct app *a)
{
	struct chat_msg *c;
	struct entry *e;
	int n;

	assert_ui();
	c = build_conv(a, &n);
	e = transcript_add(&a->tr, ENTRY_ASSISTANT, "");
	e->think_open = a->think_default_open;
	e->t0 = now_sec();
	e->streaming = true; /* before history_begin_turn: a streaming entry is not "unsaved" */
	history_begin_turn(a, e, a->regen_of);
	a->regen_of = 0;
	push_turn(a, c, n, e, false);
}

static void compact_finish(struct app *a, struct entry *e, enum gen_stop stop);

/* Save the turn's final text and figures; the app is idle after. */
void
chat_finish(struct app *a, enum store_status st, const char *error, const struct gen_stats *gs)
{
	struct entry *e = chat_turn(a);
	struct store_reply r = { .status = st, .error = error, .usage = STORE_USAGE_UNKNOWN };
	char *params;

	bool compacting = a->compacting;

	assert_ui();
	a->turn_uid = 0;
	a->state = APP_IDLE;
	a->stopping = false;
	a->compacting = false;
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
		r.usage.output_tokens = e->gen_total; /* on_done added the turn's */
		r.usage.reasoning_tokens = e->think_tokens;
		r.usage.prefill_ms = (int64_t)(gs->prefill_s * 1000);
		r.usage.decode_ms = (int64_t)(gs->decode_s * 1000);
		r.usage.ttft_ms = (int64_t)(gs->ttft_s * 1000);
	}
	history_end_turn(a, e, &r);
	free(params);
	if (compacting && gs != NULL)
		compact_finish(a, e, gs->stop);
}

void
chat_stop(struct app *a)
{
	struct msg m = { .type = MSG_CANCEL };

	assert_ui();
	if (a->state != APP_GENERATING)
		return;
	m.seq = a->seq;
	queue_push(a->to_engine, &m);
	a->stopping = true;
	screen_dirty(a);
}

/* Drop the last answer and ask again (the stored one stays as a sibling). */
void
chat_regen(struct app *a)
{
	struct entry *last = a->tr.n > 0 ? a->tr.e[a->tr.n - 1] : NULL;
	struct entry *user = transcript_last(&a->tr, ENTRY_USER);

	assert_ui();
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
	chat_send(a);
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
	chat_stop(a);
	chat_finish(a, STORE_STOPPED, NULL, NULL);
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
chat_drop(struct app *a)
{
	assert_ui();
	abandon_turn(a);
	history_forget(a);
	chat_new(a);
}

void
chat_new(struct app *a)
{
	assert_ui();
	clear_transcript(a);
	a->conv_id = 0;
	free(a->system);
	a->system = NULL;
	a->ctx_used = 0;
	a->ctx_warned = a->too_long = false;
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
	/* At least 1 ms: the figures are whole milliseconds, and a thought that took less
	 * (a fast model, a reused prompt) is still a timed one, shown as 0.0 s. */
	return MAX(1.0, u->ttft_ms + (double)u->decode_ms * (double)(u->reasoning_tokens - 1) /
					     (double)MAX(1, u->output_tokens - 1)) /
	       1000.0;
}

/* The transcript becomes the branch msgs[n] (the store's, oldest first). */
static void
show_branch(struct app *a, const struct store_message *msgs, size_t n)
{
	clear_transcript(a);
	for (size_t i = 0; i < n; i++) {
		const struct store_message *m = &msgs[i];
		struct entry *e;

		if (strcmp(m->role, "user") != 0 && strcmp(m->role, "assistant") != 0)
			continue;
		e = transcript_add(&a->tr, m->role[0] == 'u' ? ENTRY_USER : ENTRY_ASSISTANT,
				   m->content);
		e->db_id = m->id;
		e->n_sibs = m->n_siblings;
		e->sib_index = m->sibling_index;
		if (m->reasoning != NULL) {
			entry_append(e, true, m->reasoning, strlen(m->reasoning));
			e->think_tokens = (int)MAX(0, m->usage.reasoning_tokens);
			e->t_think = think_seconds(&m->usage);
		}
		e->gen_total = (int)MAX(0, m->usage.output_tokens);
		e->think_open = a->think_default_open;
	}
}

/* Re-read the conversation's visible branch after the store moved it; false with a notice. */
static bool
load_branch(struct app *a)
{
	struct store_message *msgs = NULL;
	size_t n = 0;
	char *cause = NULL;

	if (store_branch_load(history_store(a), a->conv_id, &msgs, &n, &cause) != 0) {
		ui_status(a, true, "cannot show the branch: %s", cause);
		free(cause);
		return false;
	}
	show_branch(a, msgs, n);
	store_branch_free(msgs, n);
	screen_dirty(a);
	return true;
}

void
chat_open(struct app *a, int64_t id)
{
	struct store *st = history_store(a);
	struct store_message *msgs = NULL;
	struct store_conv conv;
	size_t n = 0;
	char *cause = NULL;

	assert_ui();
	if (st == NULL || store_conv_get(st, id, &conv, &cause) != 0 ||
	    store_branch_load(st, id, &msgs, &n, &cause) != 0) {
		ui_status(a, true, "cannot open conversation %lld: %s", (long long)id,
			  cause != NULL ? cause : "history is off");
		free(cause);
		return;
	}
	show_branch(a, msgs, n);
	free(a->system);
	a->system = conv.system_prompt != NULL ? xstrdup(conv.system_prompt) : NULL;
	a->conv_id = id;
	a->ctx_used = 0;
	a->ctx_warned = a->too_long = false;
	ui_status(a, false, "opened \"%s\" (%d message%s)", conv.display_title, a->tr.n,
		  a->tr.n == 1 ? "" : "s");
	store_conv_release(&conv);
	store_branch_free(msgs, n);
}

/* ---- branches: editing a question, switching between siblings ------------ */

/* Branches change the conversation under the turn: not while one streams. */
static bool
can_branch(struct app *a, const char *what)
{
	if (a->state == APP_IDLE)
		return true;
	ui_status(a, true, "%s: %s", what,
		  a->state == APP_GENERATING ? "an answer is being generated; stop it first (Esc)"
		  : a->state == APP_LOADING  ? "the model is still loading"
					     : "no model is loaded");
	return false;
}

/*
 * The deepest message of the branch that has a sibling in direction delta:
 * below it the branch is the newest path, so that is the choice a user
 * most likely wants to revisit; the ones above are reached once it is at
 * its end.
 */
static struct entry *
branch_point(struct app *a, int delta)
{
	for (int i = a->tr.n - 1; i >= 0; i--) {
		struct entry *e = a->tr.e[i];

		if (e->db_id > 0 && e->n_sibs > 1 &&
		    (delta < 0 ? e->sib_index > 0 : e->sib_index < e->n_sibs - 1))
			return e;
	}
	return NULL;
}

void
chat_branch(struct app *a, int delta)
{
	struct entry *e;
	char *cause = NULL;
	int to, of;

	assert_ui();
	/* A switch sends the engine nothing, so only a streaming answer stands in its way. */
	if (a->state == APP_GENERATING) {
		can_branch(a, "cannot switch branches");
		return;
	}
	if (history_branch_ready(a) != 1) {
		if (history_store(a) == NULL && history_error(a) != NULL)
			ui_status(a, true, "no branches are kept: %s", history_error(a));
		return;
	}
	if ((e = branch_point(a, delta)) == NULL) {
		ui_status(a, false, "no %s branch", delta < 0 ? "earlier" : "later");
		return;
	}
	/* load_branch frees e: what the notice says is read now. */
	to = e->sib_index + (delta < 0 ? -1 : 1) + 1;
	of = e->n_sibs;
	if (store_branch_switch(history_store(a), a->conv_id, e->db_id, delta < 0 ? -1 : 1,
				&cause) != 0) {
		ui_status(a, true, "%s", cause);
		free(cause);
		return;
	}
	if (load_branch(a))
		ui_status(a, false, "branch %d/%d (Ctrl-X Left, Ctrl-X Right switch)", to, of);
}

/* The text typed at the "edit N: " prompt: a new sibling of that question, answered. */
static void
edit_line(struct app *a, const char *line)
{
	struct entry *e = transcript_by_uid(&a->tr, a->edit_uid);
	char *cause = NULL;
	int ready;

	a->edit_uid = 0;
	if (line[strspn(line, " \t\r\n")] == '\0') {
		ui_status(a, false, "edit cancelled");
		return;
	}
	/* The conversation may have changed while the prompt was up (Alt-1, F5). */
	if (e == NULL || e->kind != ENTRY_USER || !can_branch(a, "cannot fork now")) {
		if (e == NULL || e->kind != ENTRY_USER)
			ui_status(a, true,
				  "the message edited is no longer shown: your text is kept");
		free(a->kept_line);
		a->kept_line = xstrdup(line);
		return;
	}
	if ((ready = history_branch_ready(a)) < 0) {
		free(a->kept_line);
		a->kept_line = xstrdup(line);
		return;
	}
	if (ready == 1) {
		if (e->db_id <= 0 || store_msg_edit_user(history_store(a), a->conv_id, e->db_id,
							 line, &cause) <= 0) {
			chat_store_warn(a, cause);
			return;
		}
		if (!load_branch(a))
			return;
	} else {
		/* History is off: the fork lives on screen only, the old branch goes. */
		while (a->tr.n > 0 && a->tr.e[a->tr.n - 1] != e)
			transcript_pop(&a->tr);
		e->len = 0;
		entry_append(e, false, line, strlen(line));
		e->wrap_cols = 0; /* same length, other text: rewrap */
	}
	a->regen_of = 0;
	chat_send(a);
}

void
chat_edit(struct app *a, int n)
{
	struct entry *e = NULL;
	char prompt[32];
	int k = 0, at = 0;

	assert_ui();
	if (!can_branch(a, "cannot edit"))
		return;
	for (int i = 0; i < a->tr.n; i++) {
		if (a->tr.e[i]->kind != ENTRY_USER)
			continue;
		if (++k == n || n == 0) {
			e = a->tr.e[i];
			at = k;
		}
	}
	if (e == NULL) {
		if (k == 0)
			ui_status(a, true, "nothing to edit: no message of yours yet");
		else
			ui_status(a, true, "/edit %d: there are %d messages of yours (1 to %d)", n,
				  k, k);
		return;
	}
	a->edit_uid = e->uid;
	snprintf(prompt, sizeof(prompt), "edit %d: ", at);
	/* Typed at the chat's prompt, so readline empties the line once this returns: the
	 * text goes in as a kept line (keys.c puts it back after the handler). */
	inputline_ask(a, prompt, NULL, edit_line);
	free(a->kept_line);
	a->kept_line = xstrdup(e->text);
	ui_status(a, false, "Enter: a new branch from message %d (an empty line cancels)", at);
}

/* ---- context management (docs/ui.md "Context management") ---------------- */

/* What /compact asks the model for. */
#define COMPACT_PROMPT                                                                        \
	"Summarize our conversation so far for a fresh start: the facts, decisions and open " \
	"questions the rest of it needs, in a few short paragraphs. Write only the summary."

/* The last answer, when only notices follow it; NULL when a question does. */
static struct entry *
last_answer(struct app *a)
{
	for (int i = a->tr.n; i-- > 0;) {
		struct entry *e = a->tr.e[i];

		if (e->kind == ENTRY_ASSISTANT)
			return e;
		if (e->kind == ENTRY_USER)
			return NULL;
	}
	return NULL;
}

/* Why a command that starts a turn cannot run now, or NULL when it can. */
static const char *
busy(const struct app *a)
{
	if (a->state == APP_GENERATING)
		return "an answer is being generated";
	if (a->state == APP_LOADING)
		return "the model is still loading";
	return a->state == APP_NO_MODEL ? "no model is loaded" : NULL;
}

/*
 * The conversation with the last answer as its last message, reasoning
 * included: the engine renders it left open and the model goes on with it.
 */
void
chat_continue(struct app *a)
{
	struct entry *e = last_answer(a);
	struct chat_msg *c;
	int n;

	assert_ui();
	if (busy(a) != NULL || e == NULL || (e->len == 0 && e->rlen == 0)) {
		ui_status(a, true, "/continue: %s",
			  busy(a) ? busy(a) : "the last entry is not an answer to go on with");
		return;
	}
	c = build_conv(a, &n);
	if (e->len == 0) /* build_conv leaves out an answer with no text yet */
		c[n++] = (struct chat_msg){ .role = "assistant", .content = "" };
	c[n - 1].reasoning = e->rlen > 0 ? e->reason : NULL;
	free(e->stats);
	e->stats = NULL;
	e->t0 = now_sec() - e->t_think; /* the thinking time goes on from where it was */
	push_turn(a, c, n, e, true);
}

void
chat_drop_turns(struct app *a, int n)
{
	int last_user = -1, done = 0;

	assert_ui();
	if (a->state == APP_GENERATING) {
		ui_status(a, true, "/drop: an answer is being generated");
		return;
	}
	for (int i = 0; i < a->tr.n; i++)
		if (a->tr.e[i]->kind == ENTRY_USER && !a->tr.e[i]->dropped)
			last_user = i;
	/* A turn is a question and what follows it; the last question always stays. */
	for (int i = 0; i < last_user; i++) {
		struct entry *e = a->tr.e[i];

		if (e->dropped || (e->kind != ENTRY_USER && e->kind != ENTRY_ASSISTANT))
			continue;
		if (e->kind == ENTRY_USER && done++ == n)
			break;
		e->dropped = true;
	}
	done = MIN(done, n);
	if (done == 0) {
		ui_status(a, true, "/drop: only the last turn is left");
		return;
	}
	ui_info(a,
		"the %d oldest turn%s left out of the context from now on (still shown and "
		"saved; the system prompt stays)",
		done, done == 1 ? " is" : "s are");
	if (a->too_long && a->state == APP_IDLE) {
		a->too_long = false;
		chat_regen(a); /* the question that did not fit, again */
	}
}

void
chat_compact(struct app *a)
{
	assert_ui();
	if (busy(a) != NULL || transcript_last(&a->tr, ENTRY_USER) == NULL) {
		ui_status(a, true, "/compact: %s", busy(a) ? busy(a) : "nothing to summarize yet");
		return;
	}
	transcript_add(&a->tr, ENTRY_USER, COMPACT_PROMPT);
	history_sync(a);
	chat_send(a);
	a->compacting = true;
	ui_status(a, false, "/compact: the model summarizes this chat; a new chat starts from it");
}

/* The summary is written: a new chat whose system prompt holds it. */
static void
compact_finish(struct app *a, struct entry *e, enum gen_stop stop)
{
	char *summary, *system;

	if (stop == GEN_STOP_USER || e->len == 0) {
		ui_status(a, true, "/compact: %s; this chat goes on",
			  stop == GEN_STOP_USER ? "stopped" : "the summary came back empty");
		return;
	}
	summary = xstrdup(e->text);
	system = a->system != NULL ? xasprintf("%s\n\nSummary of an earlier conversation:\n%s",
					       a->system, summary)
				   : xasprintf("Summary of an earlier conversation:\n%s", summary);
	chat_new(a);
	a->system = system;
	chat_ensure_conv(a);
	ui_info(a, "a new chat from the summary of the last one, which is its system prompt "
		   "(/system shows it; F2 lists the old chat)");
	ui_status(a, false, "compacted: a new chat from a summary (%zu bytes)", strlen(summary));
	free(summary);
}

void
chat_ctx_check(struct app *a)
{
	int pct;

	assert_ui();
	if (a->ctx_warned || a->n_ctx <= 0 || (int64_t)a->ctx_used * 10 < (int64_t)a->n_ctx * 9)
		return;
	a->ctx_warned = true;
	pct = (int)((int64_t)a->ctx_used * 100 / a->n_ctx);
	ui_info(a,
		"this chat fills %d%% of the context (%d of %d tokens). /compact goes on in a "
		"new chat from a summary; /drop N leaves the N oldest turns out; /new starts over",
		pct, a->ctx_used, a->n_ctx);
	ui_status(a, true, "context %d%% full: /compact or /drop N (see above)", pct);
}

char *
chat_error_text(struct app *a, const char *text, bool too_long)
{
	assert_ui();
	a->too_long = too_long;
	if (!a->too_long)
		return xstrdup(text);
	return xasprintf(
		"%.*s: /drop N leaves the N oldest turns out and asks again, /compact goes "
		"on in a new chat from a summary, /new starts over, or start qnext with a "
		"larger --ctx",
		(int)(strstr(text, " (") ? strstr(text, " (") - text : (ptrdiff_t)strlen(text)),
		text);
}
