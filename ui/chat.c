/*
 * chat.c - the conversation on screen and its turns: asking the engine to
 * load the model, sending a prompt, stopping, regenerating, and starting,
 * opening or dropping a conversation (the only way the transcript is
 * emptied: a running turn ends first, see clear_transcript).
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
	return (u->ttft_ms + (double)u->decode_ms * (double)(u->reasoning_tokens - 1) /
				     (double)MAX(1, u->output_tokens - 1)) /
	       1000.0;
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
