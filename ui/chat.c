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
 *
 * UI thread only.
 */
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
				     .expert_cache = a->expert_cache } };

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

void
chat_send(struct app *a)
{
	struct msg m = { .type = MSG_PROMPT };
	struct chat_msg *c;
	struct entry *e;
	int n;

	assert_ui();
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
	gauges_turn_start(a);
	a->last_checkpoint = now_sec();
	a->tr.scroll = 0;
	queue_push(a->to_engine, &m);
	screen_dirty(a);
}

/* Save the turn's final text and figures; the app is idle after. */
void
chat_finish(struct app *a, enum store_status st, const char *error, const struct gen_stats *gs)
{
	struct entry *e = chat_turn(a);
	struct store_reply r = { .status = st, .error = error, .usage = STORE_USAGE_UNKNOWN };
	char *params;

	assert_ui();
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
