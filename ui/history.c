/*
 * history.c - keeping chats.db in step with the screen when the database is
 * busy: what could not be saved stays in memory and is saved, in order,
 * once another process lets go of the file.
 *
 * Every store call the chat makes goes through a short busy timeout
 * (HISTORY_BUSY_MS), so a database that another process keeps locked costs
 * the UI at most that long per call instead of freezing it; a failed call
 * leaves the entry unsaved (db_id 0, or an assistant entry's final state in
 * entry.fin) and history_tick() tries again every HISTORY_RETRY_S.  An
 * entry is saved only after every entry above it, so the tree in the file
 * keeps the order on the screen.  A conversation left while turns are
 * unsaved is kept (its entries moved to a stash) until they are saved.  A
 * database that could not be opened because it was locked is opened again
 * the same way; one that is refused for any other reason (not ours, newer,
 * read-only) stays off.
 *
 * UI thread only (it is the only thread that touches the store).
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "thread-role.h"
#include "ui-int.h"
#include "util.h"

/* How long one store call may wait for another process's lock. */
#define HISTORY_BUSY_MS 100
/* How often unsaved turns, or a locked database, are tried again. */
#define HISTORY_RETRY_S 2.0
/* At exit, how long the last try may wait for the lock. */
#define HISTORY_EXIT_MS 3000

/* A conversation left with unsaved turns: its entries, until they are saved. */
struct stash {
	int64_t conv_id;
	char *system;
	struct entry **e;
	int n;
};

/* history.c's own state (a->hist). */
struct history {
	struct store *store; /* NULL when history is off or paused */
	char *error;         /* why it is off or paused, or NULL */
	bool retry;          /* paused: the database was locked; history_tick tries again */
	double next;         /* when history_tick next tries */
	struct stash *stash; /* conversations left with unsaved turns */
	int n_stash;
};

struct history *
history_new(void)
{
	return xcalloc(1, sizeof(struct history));
}

void
history_free(struct history *h)
{
	if (h == NULL)
		return;
	store_close(h->store);
	free(h->error);
	free(h);
}

struct store *
history_store(const struct app *a)
{
	assert_ui();
	return a->hist->store;
}

const char *
history_error(const struct app *a)
{
	assert_ui();
	return a->hist->error;
}

/* db_id: 0 not saved yet, -1 never to be saved (its conversation was deleted). */
static bool
needs_save(const struct entry *e)
{
	if (e->kind == ENTRY_USER)
		return e->db_id == 0;
	return e->kind == ENTRY_ASSISTANT && !e->streaming &&
	       (e->db_id == 0 || (e->db_id > 0 && e->fin != NULL));
}

static int
count_unsaved(struct entry *const *e, int n)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += needs_save(e[i]);
	return k;
}

static void
warn(struct app *a, char *cause)
{
	ui_status(a, true, "history not saved yet (kept; tried again every %.0f s): %s",
		  HISTORY_RETRY_S, cause != NULL ? cause : "?");
	free(cause);
}

/* Write an assistant entry's end (entry.fin) and forget it; false on failure. */
static bool
save_final(struct app *a, struct entry *e, char **cause)
{
	struct store_reply r = { .content = e->text,
				 .reasoning = e->rlen ? e->reason : NULL,
				 .status = e->fin->status,
				 .error = e->fin->error,
				 .usage = e->fin->usage,
				 .params_json = e->fin->params_json };

	if (store_msg_finish(a->hist->store, e->db_id, &r, cause) != 0)
		return false;
	entry_final_free(e->fin);
	e->fin = NULL;
	return true;
}

/* Save one entry under the conversation's head; false on failure. */
static bool
save_entry(struct app *a, int64_t conv_id, struct entry *e, char **cause)
{
	int64_t id;

	if (e->kind == ENTRY_USER) {
		if ((id = store_msg_add_user(a->hist->store, conv_id, e->text, cause)) <= 0)
			return false;
		e->db_id = id;
		return true;
	}
	if (e->db_id == 0) {
		id = e->regen_of > 0 ? store_msg_regenerate(a->hist->store, conv_id, e->regen_of,
							    a->model_dir, cause)
				     : store_msg_begin_assistant(a->hist->store, conv_id,
								 a->model_dir, cause);
		if (id <= 0)
			return false;
		e->db_id = id;
	}
	return e->fin == NULL || save_final(a, e, cause);
}

/*
 * Save what is unsaved of one conversation, in order, stopping at the first
 * failure (a later entry must not land above an earlier one).  *conv_id 0:
 * the conversation gets its row first.  True when nothing is left.
 */
static bool
sync_entries(struct app *a, int64_t *conv_id, const char *system, struct entry **e, int n,
	     char **cause)
{
	if (a->hist->store == NULL)
		return count_unsaved(e, n) == 0;
	for (int i = 0; i < n; i++) {
		if (!needs_save(e[i]))
			continue;
		if (*conv_id == 0 && (*conv_id = store_conv_create(a->hist->store, a->model_dir,
								   system, cause)) <= 0) {
			*conv_id = 0;
			return false;
		}
		if (!save_entry(a, *conv_id, e[i], cause))
			return false;
	}
	return true;
}

bool
history_sync(struct app *a)
{
	char *cause = NULL;
	bool ok = sync_entries(a, &a->conv_id, a->system, a->tr.e, a->tr.n, &cause);

	if (!ok && a->hist->store != NULL)
		warn(a, cause);
	else
		free(cause);
	return ok;
}

int
history_branch_ready(struct app *a)
{
	assert_ui();
	if (a->hist->store == NULL && !a->hist->retry)
		return 0;
	if (a->hist->store == NULL) {
		ui_status(a, true, "no branches until history is back: %s", a->hist->error);
		return -1;
	}
	/* A branch is the store's: what the store has not taken cannot be branched from. */
	if (count_unsaved(a->tr.e, a->tr.n) > 0 && !history_sync(a))
		return -1;
	return 1;
}

void
history_siblings(struct app *a, struct entry *e)
{
	int64_t *ids = NULL;
	size_t n = 0, at = 0;

	assert_ui();
	if (a->hist->store == NULL || e->db_id <= 0 || a->conv_id <= 0 ||
	    store_msg_siblings(a->hist->store, a->conv_id, e->db_id, &ids, &n, &at, NULL) != 0)
		return;
	e->n_sibs = (int)MIN(n, 1u << 30);
	e->sib_index = (int)MIN(at, 1u << 30);
	free(ids);
}

void
history_begin_turn(struct app *a, struct entry *e, int64_t regen_of)
{
	char *cause = NULL;
	int64_t id;

	e->regen_of = regen_of;
	/* Only below a saved conversation: else the answer is saved at its end. */
	if (a->hist->store == NULL || count_unsaved(a->tr.e, a->tr.n) > 0 || a->conv_id == 0)
		return;
	id = regen_of > 0
		     ? store_msg_regenerate(a->hist->store, a->conv_id, regen_of, a->model_dir,
					    &cause)
		     : store_msg_begin_assistant(a->hist->store, a->conv_id, a->model_dir, &cause);
	if (id <= 0) {
		warn(a, cause);
		return;
	}
	e->db_id = id;
	history_siblings(a, e); /* a regenerated answer shows "< 2/2 >" at once */
}

void
history_checkpoint(struct app *a, struct entry *e)
{
	char *cause = NULL;

	if (a->hist->store == NULL || e->db_id <= 0)
		return;
	if (store_msg_checkpoint(a->hist->store, e->db_id, e->text, e->rlen ? e->reason : NULL,
				 &cause) != 0)
		warn(a, cause);
}

void
history_end_turn(struct app *a, struct entry *e, const struct store_reply *r)
{
	e->fin = xcalloc(1, sizeof(*e->fin));
	e->fin->status = r->status;
	e->fin->error = r->error != NULL ? xstrdup(r->error) : NULL;
	e->fin->usage = r->usage;
	e->fin->params_json = r->params_json != NULL ? xstrdup(r->params_json) : NULL;
	e->streaming = false;
	if (e->db_id > 0 && a->hist->store != NULL) {
		char *cause = NULL;

		if (!save_final(a, e, &cause))
			warn(a, cause);
	}
	/* An answer that has no row yet (begin failed) is saved by the next sync. */
	if (e->db_id == 0)
		history_sync(a);
}

/* ---- conversations left with unsaved turns ------------------------------- */

void
history_leave(struct app *a)
{
	struct stash *s;

	if (count_unsaved(a->tr.e, a->tr.n) == 0 || (a->hist->store == NULL && !a->hist->retry) ||
	    history_sync(a))
		return;
	/* Keep the entries: the transcript gives them up and starts empty. */
	a->hist->stash =
		xrealloc(a->hist->stash, (size_t)(a->hist->n_stash + 1) * sizeof(*a->hist->stash));
	s = &a->hist->stash[a->hist->n_stash++];
	s->conv_id = a->conv_id;
	s->system = a->system != NULL ? xstrdup(a->system) : NULL;
	s->n = a->tr.n;
	s->e = xmalloc((size_t)MAX(1, s->n) * sizeof(*s->e));
	memcpy(s->e, a->tr.e, (size_t)s->n * sizeof(*s->e));
	a->tr.n = 0;
	ui_status(a, true,
		  "%d turn(s) of the last conversation are not saved yet: kept, and "
		  "saved when the database is free",
		  count_unsaved(s->e, s->n));
}

void
history_forget(struct app *a)
{
	for (int i = 0; i < a->tr.n; i++) {
		struct entry *e = a->tr.e[i];

		if (!needs_save(e))
			continue;
		e->db_id = -1; /* never to be saved */
		entry_final_free(e->fin);
		e->fin = NULL;
	}
}

static void
stash_free(struct stash *s)
{
	for (int i = 0; i < s->n; i++)
		entry_free(s->e[i]);
	free(s->e);
	free(s->system);
}

/* Save what the stash holds; drop the conversations that are done. */
static void
sync_stash(struct app *a)
{
	int k = 0;

	for (int i = 0; i < a->hist->n_stash; i++) {
		struct stash *s = &a->hist->stash[i];
		char *cause = NULL;

		if (sync_entries(a, &s->conv_id, s->system, s->e, s->n, &cause))
			stash_free(s);
		else
			a->hist->stash[k++] = *s;
		free(cause);
	}
	a->hist->n_stash = k;
}

/* ---- opening, retrying, closing ------------------------------------------- */

static bool
try_open(struct app *a, bool first, int busy_ms)
{
	struct store_options opt = { .busy_timeout_ms = busy_ms };
	char *path = store_default_path(), *cause = NULL;
	bool busy = false;

	opt.busy = &busy;
	if (path == NULL)
		cause = xstrdup("no home directory (set HOME or XDG_DATA_HOME)");
	else
		a->hist->store = store_open_with(path, &opt, &cause);
	free(path);
	if (a->hist->store != NULL) {
		free(a->hist->error);
		a->hist->error = NULL;
		a->hist->retry = false;
		if (store_recovered(a->hist->store) > 0)
			ui_info(a, "%d answer(s) interrupted last time were marked stopped",
				store_recovered(a->hist->store));
		if (!first)
			ui_status(a, false, "history is back: the database is free again");
		free(cause);
		return true;
	}
	a->hist->retry = busy;
	if (first || !busy) {
		free(a->hist->error);
		a->hist->error =
			busy ? xasprintf("history is paused: %s; trying again every %.0f s", cause,
					 HISTORY_RETRY_S)
			     : xasprintf("history is off: %s", cause);
		ui_info(a, "%s", a->hist->error);
	}
	free(cause);
	return false;
}

void
history_open(struct app *a)
{
	a->hist->next = now_sec() + HISTORY_RETRY_S;
	try_open(a, true, HISTORY_BUSY_MS);
}

void
history_tick(struct app *a)
{
	double t = now_sec();

	if (t < a->hist->next)
		return;
	a->hist->next = t + HISTORY_RETRY_S;
	if (a->hist->store == NULL && (!a->hist->retry || !try_open(a, false, HISTORY_BUSY_MS)))
		return;
	if (a->hist->n_stash > 0)
		sync_stash(a);
	if (a->state != APP_GENERATING && count_unsaved(a->tr.e, a->tr.n) > 0 && history_sync(a))
		ui_status(a, false, "history saved: the database is free again");
}

int
history_close(struct app *a)
{
	int lost = 0;

	if (a->hist->store == NULL && a->hist->retry)
		try_open(a, false, HISTORY_EXIT_MS);
	if (a->hist->store != NULL) {
		/* The last chance to save: wait for the lock a little longer. */
		store_set_busy_timeout(a->hist->store, HISTORY_EXIT_MS);
		history_sync(a);
		sync_stash(a);
	}
	lost = count_unsaved(a->tr.e, a->tr.n);
	for (int i = 0; i < a->hist->n_stash; i++) {
		lost += count_unsaved(a->hist->stash[i].e, a->hist->stash[i].n);
		stash_free(&a->hist->stash[i]);
	}
	free(a->hist->stash);
	a->hist->stash = NULL;
	a->hist->n_stash = 0;
	store_close(a->hist->store);
	a->hist->store = NULL;
	return lost;
}
