/*
 * store.h - the conversation store: chats.db, an SQLite file holding
 * conversations as trees of messages (docs/ui.md "Conversation store").
 *
 * UI thread only: one struct store owns the only sqlite3 connection and its
 * prepared statements.  Every failure is an int -1 (or NULL, or an id of -1)
 * with a malloc'd one-line *cause that the caller frees; nothing here exits
 * or aborts on a bad file, so a caller whose store_open() fails simply runs
 * without saving.  Strings handed in are borrowed; strings and arrays handed
 * out are malloc'd and freed by the matching *_free / *_release function.
 * Times are milliseconds since the Unix epoch, UTC.
 */
#ifndef QNEXT_STORE_H
#define QNEXT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chat_msg;
struct store;

/* Search snippets mark the matched words with these bytes, for the UI to highlight. */
#define STORE_MARK_START "\x01"
#define STORE_MARK_END   "\x02"

enum store_status {
	STORE_STREAMING, /* being generated, or its writer died while it was */
	STORE_DONE,
	STORE_STOPPED, /* cut short by the user, or recovered from a crash */
	STORE_ERROR,
};

enum store_format {
	STORE_MARKDOWN,
	STORE_JSON,
};

/* Token counts and timings of one reply; a negative field is unknown (NULL in the file). */
struct store_usage {
	int64_t prompt_tokens;    /* tokens of context the reply was conditioned on */
	int64_t cached_tokens;    /* of those, reused from the KV cache */
	int64_t output_tokens;    /* generated, reasoning included */
	int64_t reasoning_tokens; /* generated inside <think> */
	int64_t prefill_ms;
	int64_t decode_ms;
	int64_t ttft_ms; /* request to first token */
};

/* clang-format off */
#define STORE_USAGE_UNKNOWN { -1, -1, -1, -1, -1, -1, -1 }
/* clang-format on */

/* What ends a streaming assistant message (store_msg_finish). */
struct store_reply {
	const char *content;      /* the answer; NULL means "" */
	const char *reasoning;    /* the <think> text, or NULL */
	enum store_status status; /* STORE_DONE, STORE_STOPPED or STORE_ERROR */
	const char *error;        /* why, for STORE_ERROR; else NULL */
	struct store_usage usage;
	const char *params_json; /* the sampling settings used, seed included (a JSON object), or
				    NULL */
};

/* One row of the conversation list. */
struct store_conv_item {
	int64_t id;
	char *title; /* the title, else the first question's first line, else "(untitled)" */
	int64_t updated_at;
	int64_t n_messages; /* messages on the current branch (what opening it shows) */
	bool pinned;
};

/* One conversation's header (store_conv_get). */
struct store_conv {
	int64_t id;
	char *uuid;          /* random v4 UUID, for export and merging */
	char *title;         /* as set by store_conv_rename, or NULL */
	char *display_title; /* title with the list's fallback applied; never NULL */
	char *system_prompt; /* or NULL */
	char *model;
	int64_t current_leaf_id; /* head of the visible branch; 0 when empty */
	int64_t created_at;
	int64_t updated_at;
	bool pinned;
	bool archived;
};

/* One message of a loaded branch. */
struct store_message {
	int64_t id;
	int64_t parent_id;        /* 0 for the first message */
	char *role;               /* "user", "assistant", "system" or "tool" */
	char *content;            /* never NULL */
	char *reasoning;          /* or NULL */
	enum store_status status; /* user messages are STORE_DONE */
	char *error;              /* or NULL */
	char *model;              /* assistant messages: the model that wrote it; else NULL */
	struct store_usage usage;
	int64_t created_at;
	char *params_json; /* assistant messages: the sampling settings used (JSON), or NULL */
	int n_siblings;    /* messages with this parent, this one included: 2 in "< 1/2 >" */
	int sibling_index; /* 0-based rank among them, oldest first: 0 in "< 1/2 >" */
};

/* One search result. */
struct store_hit {
	int64_t conv_id;
	int64_t msg_id;
	char *title;   /* the conversation's display title */
	char *snippet; /* one line; matches between STORE_MARK_START and STORE_MARK_END */
};

/* Settings of store_open_with(); zero fields take the defaults. */
struct store_options {
	int busy_timeout_ms; /* wait this long for another process's lock; default 5000 */
	bool read_only;      /* read, never write or create (export, list): works on a file
				this user may not write; the schema must be this build's */
	bool *busy;          /* OUT, optional: store_open_with failed only because another
				process held a lock for longer than the busy timeout, so a
				later try may succeed */
};

/*
 * $XDG_DATA_HOME/qnext/chats.db, else ~/.local/share/qnext/chats.db (HOME,
 * else the password database).  Returns a malloc'd path, or NULL when no home
 * directory can be found.
 */
char *store_default_path(void);

/*
 * Open (creating it and its missing parent directories) the store at path,
 * or at ":memory:" for a private in-memory one, and bring its schema up to
 * date in one transaction.  Refuses with a cause, and leaves the file as it
 * was: another program's SQLite file, a file from a newer qnext, a file that
 * is not a database, a read-only file, and a database another process keeps
 * locked for longer than the busy timeout (opening is retried meanwhile:
 * SQLite reports some lock conflicts at once rather than waiting).  Messages left 'streaming' by a
 * process that is gone become 'stopped' (store_recovered() counts them);
 * those another process (or another store in this one) is still writing
 * are left alone (see store_msg_begin_assistant), and so are all of them
 * when the side file that tells cannot be read.
 * Returns the store (free with store_close), or NULL with *cause set.
 */
struct store *store_open(const char *path, char **cause);
struct store *store_open_with(const char *path, const struct store_options *opt, char **cause);

/* Checkpoint the WAL into the main file and close.  NULL is a no-op. */
void store_close(struct store *s);

/* How long later calls wait for another process's lock (store_options.busy_timeout_ms). */
void store_set_busy_timeout(struct store *s, int ms);

/* Number of messages store_open() found 'streaming' and marked 'stopped'. */
int store_recovered(const struct store *s);

/* The schema version this build writes (PRAGMA user_version). */
int store_schema_version(void);

/*
 * New empty conversation for model, with system_prompt (NULL for none) and a
 * fresh random UUID.  Returns its id (> 0), or -1 with *cause set.
 */
int64_t store_conv_create(struct store *s, const char *model, const char *system_prompt,
			  char **cause);

/*
 * Set the title to title's first line, surrounding blanks trimmed; NULL or a
 * blank one removes it, so the list falls back to the first question.
 */
int store_conv_rename(struct store *s, int64_t conv_id, const char *title, char **cause);
/* Set the system prompt (NULL for none); later turns use it, past ones are not rewritten. */
int store_conv_set_system(struct store *s, int64_t conv_id, const char *system_prompt,
			  char **cause);
int store_conv_set_pinned(struct store *s, int64_t conv_id, bool pinned, char **cause);
int store_conv_set_archived(struct store *s, int64_t conv_id, bool archived, char **cause);

/* Delete a conversation with all its messages and their search index entries. */
int store_conv_delete(struct store *s, int64_t conv_id, char **cause);

/*
 * The conversations that are not archived, pinned ones first, then the most
 * recently active.  Returns 0 with OUT: *items (free with store_conv_list_free;
 * NULL when *n is 0) and *n, or -1 with *cause set.
 */
int store_conv_list(struct store *s, struct store_conv_item **items, size_t *n, char **cause);
void store_conv_list_free(struct store_conv_item *items, size_t n);

/*
 * Conversation conv_id.  Returns 0 with OUT: *c filled (release with
 * store_conv_release), or -1 with *cause set (also when there is no such id)
 * and *c zeroed, so releasing it anyway is harmless.
 */
int store_conv_get(struct store *s, int64_t conv_id, struct store_conv *c, char **cause);
void store_conv_release(struct store_conv *c);

/*
 * Append a user message under the visible branch's head; it becomes the head.
 * Returns the message id, or -1 with *cause set.
 */
int64_t store_msg_add_user(struct store *s, int64_t conv_id, const char *content, char **cause);

/*
 * Insert an empty assistant message with status 'streaming' under the
 * visible branch's head, written by model; it becomes the head.  End it with
 * store_msg_finish.  Until then (or store_close, or this process's end) the
 * store holds an open-file-description write lock on byte <message id> of
 * the side file "<db path>-live" (created 0600 next to the database; none
 * for ":memory:"), which tells any other store_open, in this process or
 * another, that the answer is live.  Returns the message id, or -1 with
 * *cause set.
 */
int64_t store_msg_begin_assistant(struct store *s, int64_t conv_id, const char *model,
				  char **cause);

/*
 * Regenerate: like store_msg_begin_assistant, but the new message is a
 * sibling of msg_id (same parent), which stays in the tree as another
 * branch.  Returns the new message id, or -1 with *cause set.
 */
int64_t store_msg_regenerate(struct store *s, int64_t conv_id, int64_t msg_id, const char *model,
			     char **cause);

/*
 * Edit a user message: a new user message with this content becomes a
 * sibling of msg_id and the head; the old one and its replies stay as
 * another branch.  Returns the new message id, or -1 with *cause set.
 */
int64_t store_msg_edit_user(struct store *s, int64_t conv_id, int64_t msg_id, const char *content,
			    char **cause);

/*
 * Save the text generated so far of a still-streaming message, so a crash
 * loses little.  Each call re-indexes the message for search: call it every
 * few seconds, not per token, and only between begin and finish.
 * Returns 0, or -1 with *cause set.
 */
int store_msg_checkpoint(struct store *s, int64_t msg_id, const char *content,
			 const char *reasoning, char **cause);

/*
 * End an assistant message with one UPDATE and drop its lock (even when
 * the UPDATE fails: nobody writes the row any more, so a later open may
 * recover it).  Returns 0, or -1 with *cause set.
 */
int store_msg_finish(struct store *s, int64_t msg_id, const struct store_reply *r, char **cause);

/*
 * Show another branch: move from msg_id to the sibling delta places away
 * (-1 the previous, +1 the next, clamped to the ends) and make the newest
 * path below that sibling the visible branch.  Returns 0, or -1 with *cause.
 */
int store_branch_switch(struct store *s, int64_t conv_id, int64_t msg_id, int delta, char **cause);

/*
 * The siblings of message msg_id of conv_id (the messages with its parent, it
 * included), oldest first: OUT *ids (malloc'd, caller frees), *n, and
 * *index, msg_id's place among them (0-based: "< 2/3 >" is index 1 of 3).
 * Returns 0, or -1 with *cause set (*ids NULL).
 */
int store_msg_siblings(struct store *s, int64_t conv_id, int64_t msg_id, int64_t **ids, size_t *n,
		       size_t *index, char **cause);

/*
 * The visible branch of conv_id, oldest message first.  Returns 0 with OUT:
 * *msgs (free with store_branch_free; NULL when *n is 0) and *n, or -1 with
 * *cause set.
 */
int store_branch_load(struct store *s, int64_t conv_id, struct store_message **msgs, size_t *n,
		      char **cause);
void store_branch_free(struct store_message *msgs, size_t n);

/*
 * The model's view of a loaded branch: system_prompt first (when not NULL or
 * ""), then each message's role and content.  Reasoning is never included:
 * it is not re-sent to the model.  Messages still streaming or ended by an
 * error are skipped, since they are not a real reply.  Returns a malloc'd
 * array (caller frees with free(3)) of *n_out entries whose strings borrow
 * from msgs and system_prompt.
 */
struct chat_msg *store_branch_to_chat(const struct store_message *msgs, size_t n,
				      const char *system_prompt, size_t *n_out);

/*
 * Turn what the user typed into an FTS5 query that cannot be a syntax error:
 * every whitespace-separated word becomes a quoted string (inner '"'
 * doubled), all of them required.  Returns a malloc'd query, or NULL when
 * query holds no words.
 */
char *store_fts_query(const char *query);

/*
 * Full-text search over message content and reasoning (reasoning weighs
 * less), best first, at most 50 hits.  A blank query gives no hits.
 * Returns 0 with OUT: *hits (free with store_hits_free; NULL when *n is 0)
 * and *n, or -1 with *cause set.
 */
int store_search(struct store *s, const char *query, struct store_hit **hits, size_t *n,
		 char **cause);
void store_hits_free(struct store_hit *hits, size_t n);

/*
 * The visible branch of conv_id as Markdown (title, system prompt, a "## User"
 * or "## Assistant" section per message, reasoning folded in <details>) or
 * as JSON ({"uuid", "title", "model", "created_at", "updated_at", "system",
 * "messages": [{"role", "content", "reasoning_content"?, "status",
 * "error"?, "model"?, "usage": {...}}]}).  Returns a malloc'd string
 * (caller frees), or NULL with *cause set.
 */
char *store_export(struct store *s, int64_t conv_id, enum store_format fmt, char **cause);

/* store_export() written to path (replaced atomically).  Returns 0, or -1 with *cause set. */
int store_export_file(struct store *s, int64_t conv_id, enum store_format fmt, const char *path,
		      char **cause);

#endif
