/*
 * store.c - the conversation store in SQLite (see store.h and docs/ui.md "Conversation store").
 *
 * Reading order: the schema, as a list of migration steps; the connection
 * and its prepared statements; the locks that mark answers being written;
 * opening (directories, checks on what the file is, pragmas, the migration
 * transaction, crash recovery); conversations; messages; the visible branch;
 * search; export.
 *
 * DESIGN
 * - The file is identified before anything is written to it: another
 *   program's database (application_id), a qnext file from the future
 *   (user_version above what we know) or garbage is refused while still
 *   untouched, so a user who points qnext at the wrong file loses nothing.
 * - Migrations run in one BEGIN IMMEDIATE transaction together with the
 *   user_version bump (user_version and application_id live in the file
 *   header, which is transactional), so a failing step leaves the file at
 *   the old version.  BEGIN IMMEDIATE also serialises two qnext processes
 *   starting at once, and it is where a database someone else keeps locked
 *   shows up, after the busy timeout, as a clear error.
 * - A message row exists from the moment generation starts (status
 *   'streaming'); the text arrives with one UPDATE at the end, because every
 *   UPDATE re-indexes the row for full-text search through the triggers.
 * - Several processes share the file (the chat, `qnext list`, a second
 *   chat), so a 'streaming' row at open may be another process's live
 *   answer.  Its writer holds a lock on <db>-live until it finishes; only
 *   rows nobody holds count as crashed (see "Answers being written").
 * - The schema is our own file's, so trusted_schema stays on: the FTS
 *   triggers need it.  DEFENSIVE mode still keeps SQL from editing the
 *   schema behind SQLite's back, and cell_size_check catches some damage
 *   early.  Every query result is treated as untrusted: a damaged file may
 *   hold a parent chain that loops, strings that are not UTF-8, or NULLs
 *   where the schema says there are none.
 *
 * UI thread only.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "chat-types.h"
#include "paths.h"
#include "util.h"

#define APP_ID          0x514E5854 /* 'QNXT', PRAGMA application_id */
#define BUSY_TIMEOUT_MS 5000
#define TITLE_MAX       60 /* code points of a title made from the first question */
#define SEARCH_LIMIT    "50"

/*
 * Milliseconds since the epoch as an SQL expression: unixepoch('subsec')
 * would be simpler but needs SQLite 3.42, and Debian 12 ships 3.40.
 */
#define NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

/*
 * migrations[i] takes a file from schema version i to i + 1; the version
 * number itself is set by migrate().  Steps are only ever appended, never
 * edited once released: schema 2 is a new string at the end.
 */
static const char *const migrations[] = {
	/* 1: docs/ui.md "Conversation store". */
	"CREATE TABLE conversation ("
	"  id              INTEGER PRIMARY KEY,"
	"  uuid            TEXT NOT NULL UNIQUE,"
	"  title           TEXT,"
	"  system_prompt   TEXT,"
	"  model           TEXT NOT NULL,"
	"  params_json     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params_json)),"
	"  current_leaf_id INTEGER REFERENCES message(id) ON DELETE SET NULL,"
	"  pinned          INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0,1)),"
	"  archived        INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0,1)),"
	"  created_at      INTEGER NOT NULL DEFAULT (" NOW_MS "),"
	"  updated_at      INTEGER NOT NULL DEFAULT (" NOW_MS ")"
	") STRICT;"
	"CREATE TABLE message ("
	"  id               INTEGER PRIMARY KEY,"
	"  conversation_id  INTEGER NOT NULL REFERENCES conversation(id) ON DELETE CASCADE,"
	"  parent_id        INTEGER REFERENCES message(id) ON DELETE CASCADE,"
	"  role             TEXT NOT NULL CHECK (role IN ('system','user','assistant','tool')),"
	"  content          TEXT NOT NULL DEFAULT '',"
	"  reasoning        TEXT,"
	"  status           TEXT NOT NULL DEFAULT 'done'"
	"                   CHECK (status IN ('streaming','done','stopped','error')),"
	"  error            TEXT,"
	"  model            TEXT,"
	"  params_json      TEXT CHECK (params_json IS NULL OR json_valid(params_json)),"
	"  prompt_tokens    INTEGER, cached_tokens INTEGER, output_tokens INTEGER,"
	"  reasoning_tokens INTEGER,"
	"  prefill_ms       INTEGER, decode_ms INTEGER, ttft_ms INTEGER,"
	"  created_at       INTEGER NOT NULL DEFAULT (" NOW_MS "),"
	"  updated_at       INTEGER NOT NULL DEFAULT (" NOW_MS ")"
	") STRICT;"
	"CREATE INDEX message_conv_parent  ON message(conversation_id, parent_id);"
	"CREATE INDEX message_conv_created ON message(conversation_id, created_at);"
	"CREATE INDEX conversation_list    ON conversation(archived, pinned DESC, updated_at DESC);"
	/*
	 * Two more indexes: the foreign keys' ON DELETE actions look rows up by
	 * parent_id and current_leaf_id: deleting a 200-message conversation
	 * among 100k messages took 2.9 s without these indexes, 35 ms with them.
	 */
	"CREATE INDEX message_parent       ON message(parent_id);"
	"CREATE INDEX conversation_leaf    ON conversation(current_leaf_id);"
	"CREATE VIRTUAL TABLE message_fts USING fts5(content, reasoning,"
	"  content='message', content_rowid='id', tokenize='unicode61 remove_diacritics 2');"
	"CREATE TRIGGER message_fts_ai AFTER INSERT ON message BEGIN"
	"  INSERT INTO message_fts(rowid, content, reasoning)"
	"    VALUES (new.id, new.content, new.reasoning); END;"
	"CREATE TRIGGER message_fts_ad AFTER DELETE ON message BEGIN"
	"  INSERT INTO message_fts(message_fts, rowid, content, reasoning)"
	"    VALUES ('delete', old.id, old.content, old.reasoning); END;"
	"CREATE TRIGGER message_fts_au AFTER UPDATE OF content, reasoning ON message BEGIN"
	"  INSERT INTO message_fts(message_fts, rowid, content, reasoning)"
	"    VALUES ('delete', old.id, old.content, old.reasoning);"
	"  INSERT INTO message_fts(rowid, content, reasoning)"
	"    VALUES (new.id, new.content, new.reasoning); END;"
	"CREATE TRIGGER message_touch_conv AFTER INSERT ON message BEGIN"
	"  UPDATE conversation SET updated_at = new.created_at WHERE id = new.conversation_id; END;"
	"CREATE TABLE input_history (id INTEGER PRIMARY KEY, line TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL) STRICT;",
};

/* The prepared statements, made once at open. */
enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_CONV_CREATE,
	ST_CONV_RENAME,
	ST_CONV_SET_SYSTEM,
	ST_CONV_SET_PINNED,
	ST_CONV_SET_ARCHIVED,
	ST_CONV_DELETE,
	ST_CONV_LIST,
	ST_CONV_GET,
	ST_CONV_LEAF,
	ST_CONV_SET_LEAF,
	ST_MSG_INSERT,
	ST_MSG_PARENT,
	ST_MSG_CHECKPOINT,
	ST_MSG_FINISH,
	ST_SIBLINGS,
	ST_NEWEST_BELOW,
	ST_BRANCH,
	ST_SEARCH,
	ST_COUNT
};

/* A conversation's first question, clipped: the raw material of its fallback title. */
#define FIRST_USER                                            \
	"(SELECT substr(u.content, 1, 400) FROM message u"    \
	" WHERE u.conversation_id = c.id AND u.role = 'user'" \
	" ORDER BY u.created_at, u.id LIMIT 1)"

/* Message columns in the order read_message() reads them. */
#define MSG_COLUMNS                                                                      \
	"m.id, m.parent_id, m.role, m.content, m.reasoning, m.status, m.error, m.model," \
	" m.prompt_tokens, m.cached_tokens, m.output_tokens, m.reasoning_tokens,"        \
	" m.prefill_ms, m.decode_ms, m.ttft_ms, m.created_at, m.params_json"

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_CONV_CREATE] =
		"INSERT INTO conversation(uuid, model, system_prompt) VALUES (?1, ?2, ?3)",
	[ST_CONV_RENAME] = "UPDATE conversation SET title = ?2 WHERE id = ?1",
	[ST_CONV_SET_SYSTEM] = "UPDATE conversation SET system_prompt = ?2 WHERE id = ?1",
	[ST_CONV_SET_PINNED] = "UPDATE conversation SET pinned = ?2 WHERE id = ?1",
	[ST_CONV_SET_ARCHIVED] = "UPDATE conversation SET archived = ?2 WHERE id = ?1",
	[ST_CONV_DELETE] = "DELETE FROM conversation WHERE id = ?1",
	[ST_CONV_LIST] =
		"SELECT c.id, c.title, " FIRST_USER ", c.updated_at,"
		/* The messages on the current branch: what opening it shows. */
		" (WITH RECURSIVE b(id) AS (SELECT c.current_leaf_id UNION ALL"
		"  SELECT m.parent_id FROM message m JOIN b ON m.id = b.id"
		"  WHERE m.parent_id IS NOT NULL) SELECT count(*) FROM b WHERE id IS NOT NULL),"
		" c.pinned FROM conversation c WHERE c.archived = 0"
		" ORDER BY c.pinned DESC, c.updated_at DESC, c.id DESC",
	[ST_CONV_GET] = "SELECT c.uuid, c.title, " FIRST_USER ", c.system_prompt, c.model,"
			" c.current_leaf_id, c.created_at, c.updated_at, c.pinned, c.archived"
			" FROM conversation c WHERE c.id = ?1",
	[ST_CONV_LEAF] = "SELECT current_leaf_id FROM conversation WHERE id = ?1",
	[ST_CONV_SET_LEAF] = "UPDATE conversation SET current_leaf_id = ?2 WHERE id = ?1",
	[ST_MSG_INSERT] = "INSERT INTO message(conversation_id, parent_id, role, content, status,"
			  " model) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_MSG_PARENT] = "SELECT parent_id, role FROM message"
			  " WHERE id = ?2 AND conversation_id = ?1",
	[ST_MSG_CHECKPOINT] = "UPDATE message SET content = ?2, reasoning = ?3,"
			      " updated_at = " NOW_MS " WHERE id = ?1",
	[ST_MSG_FINISH] = "UPDATE message SET content = ?2, reasoning = ?3, status = ?4,"
			  " error = ?5, prompt_tokens = ?6, cached_tokens = ?7,"
			  " output_tokens = ?8, reasoning_tokens = ?9, prefill_ms = ?10,"
			  " decode_ms = ?11, ttft_ms = ?12, params_json = ?13,"
			  " updated_at = " NOW_MS " WHERE id = ?1",
	[ST_SIBLINGS] = "SELECT id FROM message WHERE conversation_id = ?1 AND parent_id IS ?2"
			" ORDER BY id",
	/*
	 * Follow the newest child down from ?2.  The depth bound (the number of
	 * messages) stops a loop that only a damaged file can hold.
	 */
	[ST_NEWEST_BELOW] =
		"WITH RECURSIVE d(id, depth) AS (SELECT ?2, 0 UNION ALL"
		" SELECT (SELECT max(m.id) FROM message m"
		"   WHERE m.conversation_id = ?1 AND m.parent_id = d.id), d.depth + 1"
		" FROM d WHERE d.id IS NOT NULL"
		"   AND d.depth < (SELECT count(*) FROM message WHERE conversation_id = ?1))"
		" SELECT id FROM d WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1",
	/* The visible branch, root first, bounded the same way; see branch_check(). */
	[ST_BRANCH] =
		"WITH RECURSIVE path(id, depth) AS ("
		" SELECT current_leaf_id, 0 FROM conversation"
		"   WHERE id = ?1 AND current_leaf_id IS NOT NULL"
		" UNION ALL SELECT m.parent_id, p.depth + 1"
		"   FROM path p JOIN message m ON m.id = p.id"
		"   WHERE m.parent_id IS NOT NULL"
		"   AND p.depth < (SELECT count(*) FROM message WHERE conversation_id = ?1))"
		" SELECT " MSG_COLUMNS ","
		" (SELECT count(*) FROM message s"
		"   WHERE s.conversation_id = ?1 AND s.parent_id IS m.parent_id),"
		" (SELECT count(*) FROM message s"
		"   WHERE s.conversation_id = ?1 AND s.parent_id IS m.parent_id AND s.id < m.id)"
		" FROM path p JOIN message m ON m.id = p.id AND m.conversation_id = ?1"
		" ORDER BY p.depth DESC",
	[ST_SEARCH] = "SELECT m.conversation_id, m.id, c.title, " FIRST_USER ","
		      " snippet(message_fts, -1, char(1), char(2), '…', 12)"
		      " FROM message_fts JOIN message m ON m.id = message_fts.rowid"
		      " JOIN conversation c ON c.id = m.conversation_id"
		      " WHERE message_fts MATCH ?1 ORDER BY bm25(message_fts, 1.0, 0.2)"
		      " LIMIT " SEARCH_LIMIT,
};

struct store {
	sqlite3 *db;
	char *path; /* as given to store_open, for causes */
	sqlite3_stmt *stmt[ST_COUNT];
	int recovered;   /* 'streaming' messages store_open marked 'stopped' */
	bool ready;      /* schema current: store_close may checkpoint */
	char *live_path; /* <db>-live, whose locks mark answers being written; NULL in memory */
	int live_fd;     /* open on live_path, or -1 */
	bool busy;       /* the last failure was another connection's lock (store_busy) */
};

/* ---- Errors and statement helpers ---------------------------------------------------------- */

/* Causes and snippets are one line: a damaged file can put anything in a message. */
static void
flatten(char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if (*s == '\n' || *s == '\r' || *s == '\t' || *s == '\v' || *s == '\f')
			*s = ' ';
}

/* Set *cause to "what: SQLite's reason", with a hint where the reason is terse; returns -1. */
static int
db_cause(struct store *s, const char *what, char **cause)
{
	const char *hint = "";

	s->busy = false;
	switch (sqlite3_errcode(s->db) & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		hint = " (another process is using it; is another qnext running?)";
		s->busy = true;
		break;
	case SQLITE_CANTOPEN:
		hint = " (check the permissions of the file and of its directory)";
		break;
	case SQLITE_READONLY:
		hint = " (check the permissions of the file and of its directory)";
		break;
	}
	cause_set(cause, "%s: %s%s", what, sqlite3_errmsg(s->db), hint);
	if (cause != NULL)
		flatten(*cause);
	return -1;
}

/* The statement id, reset and with no bindings. */
static sqlite3_stmt *
use(struct store *s, enum stmt id)
{
	sqlite3_stmt *st = s->stmt[id];

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

/* Run st to the end (a write, or a read whose rows do not matter) and reset it. */
static int
run(struct store *s, sqlite3_stmt *st, const char *what, char **cause)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		continue;
	if (rc != SQLITE_DONE)
		db_cause(s, what, cause);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The strings a caller hands in are bound without copying; use() clears them. */
static void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Optional ids (0 = none) and counts (negative = unknown) are NULL in the file. */
static void
bind_id(sqlite3_stmt *st, int i, int64_t v)
{
	if (v <= 0)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, v);
}

static void
bind_count(sqlite3_stmt *st, int i, int64_t v)
{
	if (v < 0)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, v);
}

/* A malloc'd copy of a text column, or NULL for SQL NULL. */
static char *
col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *v = sqlite3_column_text(st, i);

	return v == NULL ? NULL : xstrdup((const char *)v);
}

static int64_t
col_count(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static int
tx_begin(struct store *s, const char *what, char **cause)
{
	return run(s, use(s, ST_BEGIN), what, cause);
}

static int
tx_commit(struct store *s, const char *what, char **cause)
{
	return run(s, use(s, ST_COMMIT), what, cause);
}

/* Some errors (a full disk, say) already rolled back: only roll back what is still open. */
static void
tx_rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		run(s, use(s, ST_ROLLBACK), "rollback", NULL);
}

/* ---- Paths ---------------------------------------------------------------------------------- */

char *
store_default_path(void)
{
	const char *v = getenv("XDG_DATA_HOME");
	struct passwd *pw;

	/* The XDG spec says to ignore a relative value. */
	if (v != NULL && v[0] == '/')
		return xasprintf("%s/qnext/chats.db", v);
	if ((v = getenv("HOME")) == NULL || v[0] == '\0') {
		if ((pw = getpwuid(getuid())) == NULL || pw->pw_dir == NULL ||
		    pw->pw_dir[0] == '\0')
			return NULL;
		v = pw->pw_dir;
	}
	return xasprintf("%s/.local/share/qnext/chats.db", v);
}

/* mkdir -p of the directory holding path; new directories are private (chats are). */
static int
make_parents(const char *path, char **cause)
{
	char *dir = xstrdup(path), *p;
	struct stat st;
	int ret = -1;

	if ((p = strrchr(dir, '/')) == NULL || p == dir) {
		free(dir);
		return 0; /* the current or the root directory */
	}
	*p = '\0';
	if (paths_mkdirs(dir, 0700, cause) != 0)
		goto out;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		cause_set(cause, "%s is not a directory", dir);
		goto out;
	}
	ret = 0;
out:
	free(dir);
	return ret;
}

/* Create a missing database file as 0600 ourselves: SQLite would honour the umask (0644). */
static int
precreate(const char *path, char **cause)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	struct stat st;

	if (fd >= 0)
		return close(fd);
	if (errno != EEXIST)
		return cause_set(cause, "cannot create %s: %s", path, strerror(errno));
	/* SQLite's own word for this case is "unable to open database file". */
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return cause_set(cause, "%s is a directory", path);
	return 0;
}

/* ---- Answers being written ------------------------------------------------------------------ */

/*
 * A 'streaming' row is either an answer some process is writing now or one
 * whose writer died.  The writer holds a write lock on byte <message id> of
 * <db>-live, taken inside the transaction that inserts the row (so no other
 * process ever sees the row unlocked) and dropped by store_msg_finish(), by
 * store_close() or by the kernel when the process dies; recovery stops only
 * the rows whose byte nobody holds.
 *
 * These are open file description (OFD) locks, not classic POSIX ones.
 * POSIX locks belong to the process: they never conflict with another store
 * of the same process, and closing any descriptor of the file (that other
 * store's store_close) drops them all.  For the same reason they are not
 * taken on the database file, whose POSIX locks are SQLite's.
 */

/* Open the side file once; without create, a missing file is ENOENT. */
static int
live_open(struct store *s, bool create)
{
	if (s->live_fd >= 0)
		return 0;
	if (s->live_path == NULL) {
		errno = ENOENT;
		return -1;
	}
	s->live_fd =
		open(s->live_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
	return s->live_fd >= 0 ? 0 : -1;
}

/* A message's byte: its id is the offset (ids are positive). */
static struct flock
live_byte(int64_t msg_id, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = msg_id, .l_len = 1 };

	return fl; /* l_pid stays 0, as OFD requests must have it */
}

static int
live_set(struct store *s, int64_t msg_id, short type)
{
	struct flock fl = live_byte(msg_id, type);

	return fcntl(s->live_fd, F_OFD_SETLK, &fl);
}

/*
 * Mark msg_id as being written by this store.  A failure (a side file we
 * may not create) is not reported: saving the answer matters more, and the
 * worst that follows is another process's open taking it for crashed.
 */
static void
live_lock(struct store *s, int64_t msg_id)
{
	if (live_open(s, true) == 0)
		live_set(s, msg_id, F_WRLCK);
}

static void
live_unlock(struct store *s, int64_t msg_id)
{
	if (s->live_fd >= 0)
		live_set(s, msg_id, F_UNLCK);
}

/* 1 when someone (another process, or another store here) writes msg_id, 0 if not, -1 unknown. */
static int
live_held(struct store *s, int64_t msg_id)
{
	struct flock fl = live_byte(msg_id, F_WRLCK);

	if (live_open(s, false) != 0)
		return errno == ENOENT ? 0 : -1; /* no side file: nobody ever locked a row */
	if (fcntl(s->live_fd, F_OFD_GETLK, &fl) != 0)
		return -1;
	return fl.l_type != F_UNLCK;
}

/* ---- Opening -------------------------------------------------------------------------------- */

int
store_schema_version(void)
{
	return (int)ARRAY_LEN(migrations);
}

static int
exec(struct store *s, const char *sql, const char *what, char **cause)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_cause(s, what, cause);
	return 0;
}

/* Run a one-value query (a pragma, a count); *out gets the value, or 0 when there is no row. */
static int
query1(struct store *s, const char *sql, int64_t *out, const char *what, char **cause)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_cause(s, what, cause);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_cause(s, what, cause);
		sqlite3_finalize(st);
		return -1;
	}
	if (out != NULL)
		*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
}

/*
 * Refuse a file that is not ours or is newer than us, before anything is
 * written to it.  A file with neither our application_id nor any schema is
 * new (SQLite creates it empty) and becomes ours.
 */
static int
identify(struct store *s, int64_t *version, char **cause)
{
	int64_t app, n_objects;

	if (query1(s, "PRAGMA application_id", &app, s->path, cause) != 0 ||
	    query1(s, "PRAGMA user_version", version, s->path, cause) != 0 ||
	    query1(s, "SELECT count(*) FROM sqlite_master", &n_objects, s->path, cause) != 0)
		return -1;
	if (app != APP_ID && app != 0)
		return cause_set(cause,
				 "%s is not a qnext database (it belongs to another program: "
				 "application_id 0x%08llx)",
				 s->path, (unsigned long long)(uint32_t)app);
	if (app == 0 && (*version != 0 || n_objects != 0))
		return cause_set(cause, "%s is not a qnext database (it holds other data)",
				 s->path);
	if (*version > store_schema_version())
		return cause_set(cause,
				 "%s was written by a newer qnext (schema %lld, this one knows %d)",
				 s->path, (long long)*version, store_schema_version());
	if (*version < 0)
		return cause_set(cause, "%s has an impossible schema version %lld", s->path,
				 (long long)*version);
	return 0;
}

/*
 * identify() before anything is written, in one read transaction: its three
 * reads must see one state of the file.  Read one at a time, they could see
 * a new file before and after another process's first migration committed
 * (application_id still 0, but tables already there) and call it "not a
 * qnext database".
 */
static int
identify_once(struct store *s, int64_t *version, char **cause)
{
	int rc;

	if (exec(s, "BEGIN", s->path, cause) != 0)
		return -1;
	rc = identify(s, version, cause);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL); /* only read: nothing to lose */
	return rc;
}

/* Per-connection settings (docs/ui.md "Connection settings").
 * journal_mode is the first write to the file. */
static int
configure(struct store *s, char **cause)
{
	static const char *const pragmas[] = {
		/* WAL may be refused (a network file system): rollback journaling still works. */
		"PRAGMA journal_mode = WAL",
		"PRAGMA synchronous = NORMAL",
		"PRAGMA foreign_keys = ON",
		"PRAGMA cell_size_check = ON",
	};

	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	for (size_t i = 0; i < ARRAY_LEN(pragmas); i++)
		if (query1(s, pragmas[i], NULL, s->path, cause) != 0)
			return -1;
	return 0;
}

/* Apply the steps after version `from`, then tag the file as ours at the new version. */
static int
apply_steps(struct store *s, int64_t from, char **cause)
{
	char *sql, *what;
	int rc;

	for (int64_t v = from; v < store_schema_version(); v++) {
		what = xasprintf("%s: cannot upgrade to schema %lld", s->path, (long long)v + 1);
		sql = xasprintf("PRAGMA user_version = %lld", (long long)v + 1);
		rc = exec(s, migrations[v], what, cause) != 0 || exec(s, sql, what, cause) != 0;
		free(sql);
		free(what);
		if (rc != 0)
			return -1;
	}
	if (from < store_schema_version()) {
		sql = xasprintf("PRAGMA application_id = %d", APP_ID);
		rc = exec(s, sql, s->path, cause);
		free(sql);
		return rc;
	}
	return 0;
}

/* OUT: *ids (malloc'd, or NULL when *n is 0) and *n: the rows still 'streaming'. */
static int
streaming_rows(struct store *s, int64_t **ids, size_t *n, char **cause)
{
	static const char sql[] = "SELECT id FROM message WHERE status = 'streaming'";
	sqlite3_stmt *st;
	int rc;

	*ids = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_cause(s, s->path, cause);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*ids = xrealloc(*ids, (*n + 1) * sizeof(**ids));
		(*ids)[(*n)++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE)
		db_cause(s, s->path, cause);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Mark 'stopped' the 'streaming' rows whose writer is gone.  A row whose
 * lock cannot be read is left alone: a dead answer still shown as
 * streaming is a smaller harm than a live one marked stopped.
 */
static int
recover(struct store *s, char **cause)
{
	static const char sql[] = "UPDATE message SET status = 'stopped', updated_at = " NOW_MS
				  " WHERE id = ?1 AND status = 'streaming'";
	sqlite3_stmt *st = NULL;
	int64_t *ids;
	size_t n;
	int rc = 0;

	if (streaming_rows(s, &ids, &n, cause) != 0)
		return -1;
	if (n > 0 && sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		rc = db_cause(s, s->path, cause);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (live_held(s, ids[i]) != 0)
			continue;
		sqlite3_bind_int64(st, 1, ids[i]);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_cause(s, s->path, cause);
		else
			s->recovered += sqlite3_changes(s->db);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	free(ids);
	return rc;
}

/*
 * Bring the schema up to date and recover crashed replies, all in one
 * transaction.  The version is read again inside it: another qnext may have
 * migrated the file since identify().
 */
static int
migrate(struct store *s, char **cause)
{
	int64_t version;

	if (exec(s, "BEGIN IMMEDIATE", s->path, cause) != 0)
		return -1;
	if (identify(s, &version, cause) != 0 || apply_steps(s, version, cause) != 0 ||
	    recover(s, cause) != 0)
		goto fail;
	if (exec(s, "COMMIT", s->path, cause) != 0)
		goto fail;
	return 0;
fail:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/*
 * The side file's path, from SQLite's absolute name of the file so that a
 * chdir() between open and the first answer changes nothing; NULL for a
 * database in memory, which no other process can see.
 */
static char *
live_path(sqlite3 *db)
{
	const char *f = sqlite3_db_filename(db, "main");

	return f == NULL || f[0] == '\0' ? NULL : xasprintf("%s-live", f);
}

static int
prepare_all(struct store *s, char **cause)
{
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &s->stmt[i], NULL) != SQLITE_OK) {
			char *what = xasprintf("%s: damaged schema", s->path);

			db_cause(s, what, cause);
			free(what);
			return -1;
		}
	}
	return 0;
}

struct store *
store_open(const char *path, char **cause)
{
	return store_open_with(path, NULL, cause);
}

/*
 * For reading only (qnext export, list): no file is created, nothing is
 * written, the schema must already be this build's, and a file this user may
 * not write is fine.  Answers left 'streaming' are shown as they are.
 */
static struct store *
open_read_only(struct store *s, int busy_ms, bool *busy, char **cause)
{
	int64_t version;
	int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READONLY, NULL);

	if (rc != SQLITE_OK) {
		if (s->db == NULL)
			cause_set(cause, "%s: %s", s->path, sqlite3_errstr(rc));
		else
			db_cause(s, s->path, cause);
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, busy_ms);
	if (identify_once(s, &version, cause) != 0)
		goto fail;
	if (version != store_schema_version()) {
		cause_set(cause,
			  "%s has schema %lld and this qnext reads %d: open it once with write "
			  "access to upgrade it",
			  s->path, (long long)version, store_schema_version());
		goto fail;
	}
	if (prepare_all(s, cause) != 0)
		goto fail;
	return s; /* not ready: store_close does not checkpoint */
fail:
	*busy = s->busy;
	store_close(s);
	return NULL;
}

/* One try at opening; *busy says whether a failure was only another connection's lock. */
static struct store *
open_once(const char *path, int busy_ms, bool ro, bool *busy, char **cause)
{
	struct store *s = xcalloc(1, sizeof(*s));
	int64_t version;
	int rc;

	*busy = false;
	s->path = xstrdup(path);
	s->live_fd = -1;
	if (ro)
		return open_read_only(s, busy_ms, busy, cause);
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		if (s->db == NULL)
			cause_set(cause, "%s: %s", path, sqlite3_errstr(rc));
		else
			db_cause(s, path, cause);
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* SQLite quietly opens a file it may not write read-only; we want to save or say so. */
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		cause_set(cause, "%s is read-only", path);
		goto fail;
	}
	sqlite3_busy_timeout(s->db, busy_ms);
	s->live_path = live_path(s->db);
	if (identify_once(s, &version, cause) != 0 || configure(s, cause) != 0 ||
	    migrate(s, cause) != 0 || prepare_all(s, cause) != 0)
		goto fail;
	s->ready = true;
	return s;
fail:
	*busy = s->busy;
	store_close(s);
	return NULL;
}

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/*
 * Open, retrying while another connection's lock is the only obstacle and
 * the busy timeout lasts.  SQLite answers some lock conflicts at once,
 * without its busy handler (a read transaction that would have to become a
 * write one, changing the journal mode of a file others have open), and a
 * new file that several processes open together meets them all.
 */
struct store *
store_open_with(const char *path, const struct store_options *opt, char **cause)
{
	int busy_ms =
		opt != NULL && opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : BUSY_TIMEOUT_MS;
	double until = mono_ms() + busy_ms;
	unsigned seed = (unsigned)getpid();
	struct store *s;
	bool busy;

	if (opt != NULL && opt->busy != NULL)
		*opt->busy = false;
	bool ro = opt != NULL && opt->read_only;

	if (strcmp(path, ":memory:") != 0 && !ro &&
	    (make_parents(path, cause) != 0 || precreate(path, cause) != 0))
		return NULL;
	for (;;) {
		char *why = NULL;
		double left = until - mono_ms();

		if ((s = open_once(path, left > 1 ? (int)left : 1, ro, &busy, &why)) != NULL ||
		    !busy || left <= 0) {
			if (s == NULL && cause != NULL)
				*cause = why;
			else
				free(why);
			break;
		}
		free(why);
		/* 5-25 ms apart, so racing processes do not retry in step. */
		usleep(5000 + 1000 * (rand_r(&seed) % 20));
	}
	if (s == NULL && opt != NULL && opt->busy != NULL)
		*opt->busy = busy;
	return s;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->ready) {
		/* Fold the WAL into the file, but never make quitting wait on another process. */
		sqlite3_busy_timeout(s->db, 0);
		sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	}
	sqlite3_close(s->db);
	if (s->live_fd >= 0)
		close(s->live_fd); /* drops the locks of answers left unfinished */
	free(s->live_path);
	free(s->path);
	free(s);
}

void
store_set_busy_timeout(struct store *s, int ms)
{
	sqlite3_busy_timeout(s->db, ms);
}

int
store_recovered(const struct store *s)
{
	return s->recovered;
}

/* ---- Conversations -------------------------------------------------------------------------- */

/* A random (version 4) UUID from /dev/urandom, else from SQLite's own generator. */
static void
make_uuid(char out[37])
{
	unsigned char b[16];
	ssize_t got = -1;
	int fd;

	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) >= 0) {
		got = read(fd, b, sizeof(b));
		close(fd);
	}
	if (got != (ssize_t)sizeof(b))
		sqlite3_randomness(sizeof(b), b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

/* The first line of s with surrounding blanks trimmed: *len bytes from the return value. */
static const char *
first_line(const char *s, size_t *len)
{
	size_t n;

	*len = 0;
	if (s == NULL)
		return NULL;
	s += strspn(s, " \t\r\n\v\f");
	n = strcspn(s, "\r\n");
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\v' || s[n - 1] == '\f'))
		n--;
	*len = n;
	return s;
}

/*
 * What the list shows: the title, else the first line of the first question
 * cut to TITLE_MAX code points, else "(untitled)".
 */
static char *
display_title(const char *title, const char *first_user)
{
	const char *p;
	size_t len, end, n_cp = 0;
	char *t;

	p = first_line(title, &len);
	if (len == 0)
		p = first_line(first_user, &len);
	if (len == 0)
		return xstrdup("(untitled)");
	for (end = 0; end < len; end++) {
		if (((unsigned char)p[end] & 0xc0) != 0x80 && n_cp++ == TITLE_MAX)
			break;
	}
	t = xmalloc(end + sizeof("…"));
	memcpy(t, p, end);
	strcpy(t + end, end < len ? "…" : "");
	flatten(t);
	return t;
}

/*
 * The id of the row just inserted, which the caller's transaction keeps only
 * when it is positive: ids of 0 and below mean "none" and "failed" here, yet
 * SQLite hands out max(id) + 1, which a damaged file can make any number.
 */
static int64_t
new_id(struct store *s, const char *what, char **cause)
{
	int64_t id = sqlite3_last_insert_rowid(s->db);

	if (id <= 0)
		return cause_set(cause, "%s: %s is damaged (new row id %lld)", what, s->path,
				 (long long)id);
	return id;
}

int64_t
store_conv_create(struct store *s, const char *model, const char *system_prompt, char **cause)
{
	const char *what = "cannot create the conversation";
	sqlite3_stmt *st;
	char uuid[37];
	int64_t id;

	if (tx_begin(s, what, cause) != 0)
		return -1;
	make_uuid(uuid);
	st = use(s, ST_CONV_CREATE);
	bind_text(st, 1, uuid);
	bind_text(st, 2, model != NULL ? model : "");
	bind_text(st, 3, system_prompt != NULL && system_prompt[0] != '\0' ? system_prompt : NULL);
	if (run(s, st, what, cause) != 0 || (id = new_id(s, what, cause)) < 0 ||
	    tx_commit(s, what, cause) != 0) {
		tx_rollback(s);
		return -1;
	}
	return id;
}

/* Run st, whose ?1 is the conversation id, and complain when no such conversation exists. */
static int
conv_update(struct store *s, sqlite3_stmt *st, int64_t conv_id, const char *what, char **cause)
{
	sqlite3_bind_int64(st, 1, conv_id);
	if (run(s, st, what, cause) != 0)
		return -1;
	if (sqlite3_changes(s->db) == 0)
		return cause_set(cause, "%s: no conversation %lld", what, (long long)conv_id);
	return 0;
}

int
store_conv_rename(struct store *s, int64_t conv_id, const char *title, char **cause)
{
	sqlite3_stmt *st = use(s, ST_CONV_RENAME);
	size_t len;
	const char *t = first_line(title, &len); /* a title is one line, no stray blanks */

	if (len == 0)
		sqlite3_bind_null(st, 2);
	else
		sqlite3_bind_text(st, 2, t, (int)len, SQLITE_TRANSIENT);
	return conv_update(s, st, conv_id, "cannot rename the conversation", cause);
}

int
store_conv_set_system(struct store *s, int64_t conv_id, const char *system_prompt, char **cause)
{
	sqlite3_stmt *st = use(s, ST_CONV_SET_SYSTEM);

	bind_text(st, 2, system_prompt != NULL && system_prompt[0] != '\0' ? system_prompt : NULL);
	return conv_update(s, st, conv_id, "cannot set the system prompt", cause);
}

int
store_conv_set_pinned(struct store *s, int64_t conv_id, bool pinned, char **cause)
{
	sqlite3_stmt *st = use(s, ST_CONV_SET_PINNED);

	sqlite3_bind_int(st, 2, pinned);
	return conv_update(s, st, conv_id, "cannot pin the conversation", cause);
}

int
store_conv_set_archived(struct store *s, int64_t conv_id, bool archived, char **cause)
{
	sqlite3_stmt *st = use(s, ST_CONV_SET_ARCHIVED);

	sqlite3_bind_int(st, 2, archived);
	return conv_update(s, st, conv_id, "cannot archive the conversation", cause);
}

/* Foreign keys cascade to the messages, and their delete trigger to the search index. */
int
store_conv_delete(struct store *s, int64_t conv_id, char **cause)
{
	return conv_update(s, use(s, ST_CONV_DELETE), conv_id, "cannot delete the conversation",
			   cause);
}

int
store_conv_list(struct store *s, struct store_conv_item **items, size_t *n, char **cause)
{
	sqlite3_stmt *st = use(s, ST_CONV_LIST);
	struct store_conv_item *v = NULL, *it;
	size_t len = 0, cap = 0;
	int rc;

	*items = NULL;
	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		it = &v[len++];
		it->id = sqlite3_column_int64(st, 0);
		it->title = display_title((const char *)sqlite3_column_text(st, 1),
					  (const char *)sqlite3_column_text(st, 2));
		it->updated_at = sqlite3_column_int64(st, 3);
		it->n_messages = sqlite3_column_int64(st, 4);
		it->pinned = sqlite3_column_int64(st, 5) != 0;
	}
	if (rc != SQLITE_DONE) {
		db_cause(s, "cannot list conversations", cause);
		sqlite3_reset(st);
		store_conv_list_free(v, len);
		return -1;
	}
	sqlite3_reset(st);
	*items = v;
	*n = len;
	return 0;
}

void
store_conv_list_free(struct store_conv_item *items, size_t n)
{
	for (size_t i = 0; items != NULL && i < n; i++)
		free(items[i].title);
	free(items);
}

int
store_conv_get(struct store *s, int64_t conv_id, struct store_conv *c, char **cause)
{
	sqlite3_stmt *st = use(s, ST_CONV_GET);
	const char *model;
	int rc;

	memset(c, 0, sizeof(*c));
	sqlite3_bind_int64(st, 1, conv_id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			cause_set(cause, "no conversation %lld", (long long)conv_id);
		else
			db_cause(s, "cannot read the conversation", cause);
		sqlite3_reset(st);
		return -1;
	}
	c->id = conv_id;
	c->uuid = col_str(st, 0);
	c->title = col_str(st, 1);
	c->display_title = display_title(c->title, (const char *)sqlite3_column_text(st, 2));
	c->system_prompt = col_str(st, 3);
	model = (const char *)sqlite3_column_text(st, 4);
	c->model = xstrdup(model != NULL ? model : "");
	c->current_leaf_id = sqlite3_column_int64(st, 5);
	c->created_at = sqlite3_column_int64(st, 6);
	c->updated_at = sqlite3_column_int64(st, 7);
	c->pinned = sqlite3_column_int64(st, 8) != 0;
	c->archived = sqlite3_column_int64(st, 9) != 0;
	if (c->uuid == NULL)
		c->uuid = xstrdup("");
	sqlite3_reset(st);
	return 0;
}

void
store_conv_release(struct store_conv *c)
{
	if (c == NULL)
		return;
	free(c->uuid);
	free(c->title);
	free(c->display_title);
	free(c->system_prompt);
	free(c->model);
	memset(c, 0, sizeof(*c));
}

/* ---- Messages ------------------------------------------------------------------------------- */

static const char *
status_name(enum store_status st)
{
	switch (st) {
	case STORE_STREAMING:
		return "streaming";
	case STORE_DONE:
		return "done";
	case STORE_STOPPED:
		return "stopped";
	case STORE_ERROR:
		return "error";
	}
	return "error";
}

static enum store_status
status_parse(const char *s)
{
	if (s == NULL)
		return STORE_ERROR;
	if (strcmp(s, "done") == 0)
		return STORE_DONE;
	if (strcmp(s, "streaming") == 0)
		return STORE_STREAMING;
	if (strcmp(s, "stopped") == 0)
		return STORE_STOPPED;
	return STORE_ERROR;
}

/* OUT: *leaf the visible branch's head (0 when the conversation is empty). */
static int
conv_leaf(struct store *s, int64_t conv_id, int64_t *leaf, const char *what, char **cause)
{
	sqlite3_stmt *st = use(s, ST_CONV_LEAF);
	int rc;

	sqlite3_bind_int64(st, 1, conv_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*leaf = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		cause_set(cause, "%s: no conversation %lld", what, (long long)conv_id);
	else
		db_cause(s, what, cause);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int
conv_set_leaf(struct store *s, int64_t conv_id, int64_t leaf, const char *what, char **cause)
{
	sqlite3_stmt *st = use(s, ST_CONV_SET_LEAF);

	bind_id(st, 2, leaf);
	return conv_update(s, st, conv_id, what, cause);
}

/*
 * OUT: *parent the parent of message msg_id of conv_id (0 for a first
 * message).  With role not NULL, the message must have that role.
 */
static int
msg_parent(struct store *s, int64_t conv_id, int64_t msg_id, const char *role, int64_t *parent,
	   const char *what, char **cause)
{
	sqlite3_stmt *st = use(s, ST_MSG_PARENT);
	const char *r;
	int rc, ret = -1;

	sqlite3_bind_int64(st, 1, conv_id);
	sqlite3_bind_int64(st, 2, msg_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = (const char *)sqlite3_column_text(st, 1);
		*parent = sqlite3_column_int64(st, 0);
		if (role != NULL && (r == NULL || strcmp(r, role) != 0))
			cause_set(cause, "%s: message %lld is not a%s %s message", what,
				  (long long)msg_id, role[0] == 'a' ? "n" : "", role);
		else
			ret = 0;
	} else if (rc == SQLITE_DONE) {
		cause_set(cause, "%s: no message %lld in conversation %lld", what,
			  (long long)msg_id, (long long)conv_id);
	} else {
		db_cause(s, what, cause);
	}
	sqlite3_reset(st);
	return ret;
}

/*
 * Insert a message and make it the visible head, in one transaction.  Its
 * parent is the current head, or with sibling_of > 0 the parent of that
 * message (which must have the same role).
 */
static int64_t
append_msg(struct store *s, int64_t conv_id, int64_t sibling_of, const char *role,
	   const char *content, enum store_status status, const char *model, char **cause)
{
	const char *what = "cannot save the message";
	sqlite3_stmt *st;
	int64_t parent, id;
	int rc;

	if (tx_begin(s, what, cause) != 0)
		return -1;
	if (sibling_of > 0)
		rc = msg_parent(s, conv_id, sibling_of, role, &parent, what, cause);
	else
		rc = conv_leaf(s, conv_id, &parent, what, cause);
	if (rc != 0)
		goto fail;
	st = use(s, ST_MSG_INSERT);
	sqlite3_bind_int64(st, 1, conv_id);
	bind_id(st, 2, parent);
	bind_text(st, 3, role);
	bind_text(st, 4, content != NULL ? content : "");
	bind_text(st, 5, status_name(status));
	bind_text(st, 6, model);
	if (run(s, st, what, cause) != 0)
		goto fail;
	if ((id = new_id(s, what, cause)) < 0 || conv_set_leaf(s, conv_id, id, what, cause) != 0)
		goto fail;
	/* Before the commit: no other process may see the row streaming and unlocked. */
	if (status == STORE_STREAMING)
		live_lock(s, id);
	if (tx_commit(s, what, cause) != 0) {
		if (status == STORE_STREAMING)
			live_unlock(s, id);
		goto fail;
	}
	return id;
fail:
	tx_rollback(s);
	return -1;
}

int64_t
store_msg_add_user(struct store *s, int64_t conv_id, const char *content, char **cause)
{
	return append_msg(s, conv_id, 0, "user", content, STORE_DONE, NULL, cause);
}

int64_t
store_msg_begin_assistant(struct store *s, int64_t conv_id, const char *model, char **cause)
{
	return append_msg(s, conv_id, 0, "assistant", "", STORE_STREAMING, model, cause);
}

int64_t
store_msg_regenerate(struct store *s, int64_t conv_id, int64_t msg_id, const char *model,
		     char **cause)
{
	if (msg_id <= 0)
		return cause_set(cause, "cannot regenerate: no message %lld", (long long)msg_id);
	return append_msg(s, conv_id, msg_id, "assistant", "", STORE_STREAMING, model, cause);
}

int64_t
store_msg_edit_user(struct store *s, int64_t conv_id, int64_t msg_id, const char *content,
		    char **cause)
{
	if (msg_id <= 0)
		return cause_set(cause, "cannot edit: no message %lld", (long long)msg_id);
	return append_msg(s, conv_id, msg_id, "user", content, STORE_DONE, NULL, cause);
}

/* Run an UPDATE of message ?1 and complain when there is no such message. */
static int
msg_update(struct store *s, sqlite3_stmt *st, int64_t msg_id, const char *what, char **cause)
{
	sqlite3_bind_int64(st, 1, msg_id);
	if (run(s, st, what, cause) != 0)
		return -1;
	if (sqlite3_changes(s->db) == 0)
		return cause_set(cause, "%s: no message %lld", what, (long long)msg_id);
	return 0;
}

int
store_msg_checkpoint(struct store *s, int64_t msg_id, const char *content, const char *reasoning,
		     char **cause)
{
	sqlite3_stmt *st = use(s, ST_MSG_CHECKPOINT);

	bind_text(st, 2, content != NULL ? content : "");
	bind_text(st, 3, reasoning);
	return msg_update(s, st, msg_id, "cannot save the reply so far", cause);
}

int
store_msg_finish(struct store *s, int64_t msg_id, const struct store_reply *r, char **cause)
{
	sqlite3_stmt *st;
	int rc;

	if (r->status == STORE_STREAMING)
		return cause_set(cause, "cannot save the reply: it is still streaming");
	st = use(s, ST_MSG_FINISH);
	bind_text(st, 2, r->content != NULL ? r->content : "");
	bind_text(st, 3, r->reasoning);
	bind_text(st, 4, status_name(r->status));
	bind_text(st, 5, r->error);
	bind_count(st, 6, r->usage.prompt_tokens);
	bind_count(st, 7, r->usage.cached_tokens);
	bind_count(st, 8, r->usage.output_tokens);
	bind_count(st, 9, r->usage.reasoning_tokens);
	bind_count(st, 10, r->usage.prefill_ms);
	bind_count(st, 11, r->usage.decode_ms);
	bind_count(st, 12, r->usage.ttft_ms);
	bind_text(st, 13, r->params_json);
	rc = msg_update(s, st, msg_id, "cannot save the reply", cause);
	/* Also after a failure: nobody will write this row any more, recovery may stop it. */
	live_unlock(s, msg_id);
	return rc;
}

/* ---- The visible branch --------------------------------------------------------------------- */

/* OUT: *ids (malloc'd, oldest first) and *n: the children of parent (0 = the roots). */
static int
siblings(struct store *s, int64_t conv_id, int64_t parent, int64_t **ids, size_t *n,
	 const char *what, char **cause)
{
	sqlite3_stmt *st = use(s, ST_SIBLINGS);
	size_t cap = 0;
	int rc;

	*ids = NULL;
	*n = 0;
	sqlite3_bind_int64(st, 1, conv_id);
	bind_id(st, 2, parent);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			*ids = xrealloc(*ids, cap * sizeof(**ids));
		}
		(*ids)[(*n)++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		db_cause(s, what, cause);
		free(*ids);
		*ids = NULL;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* OUT: *leaf the end of the path that takes the newest child at each step down from top. */
static int
newest_below(struct store *s, int64_t conv_id, int64_t top, int64_t *leaf, const char *what,
	     char **cause)
{
	sqlite3_stmt *st = use(s, ST_NEWEST_BELOW);
	int rc;

	sqlite3_bind_int64(st, 1, conv_id);
	sqlite3_bind_int64(st, 2, top);
	*leaf = top;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*leaf = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		db_cause(s, what, cause);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int
store_branch_switch(struct store *s, int64_t conv_id, int64_t msg_id, int delta, char **cause)
{
	const char *what = "cannot switch branch";
	int64_t parent, leaf, *ids = NULL;
	size_t n, i;
	long long k;
	int ret = -1;

	if (msg_parent(s, conv_id, msg_id, NULL, &parent, what, cause) != 0 ||
	    siblings(s, conv_id, parent, &ids, &n, what, cause) != 0)
		return -1;
	for (i = 0; i < n && ids[i] != msg_id; i++)
		continue;
	if (i == n) {
		/* Only a damaged file can hide a message from its parent's children. */
		cause_set(cause, "%s: message %lld is not in the tree", what, (long long)msg_id);
		goto out;
	}
	k = (long long)i + delta;
	k = k < 0 ? 0 : k >= (long long)n ? (long long)n - 1 : k;
	if (newest_below(s, conv_id, ids[k], &leaf, what, cause) == 0 &&
	    conv_set_leaf(s, conv_id, leaf, what, cause) == 0)
		ret = 0;
out:
	free(ids);
	return ret;
}

int
store_msg_siblings(struct store *s, int64_t conv_id, int64_t msg_id, int64_t **ids, size_t *n,
		   size_t *index, char **cause)
{
	const char *what = "cannot list the branches";
	int64_t parent;
	size_t i;

	*ids = NULL;
	*n = *index = 0;
	if (msg_parent(s, conv_id, msg_id, NULL, &parent, what, cause) != 0 ||
	    siblings(s, conv_id, parent, ids, n, what, cause) != 0)
		return -1;
	for (i = 0; i < *n && (*ids)[i] != msg_id; i++)
		continue;
	if (i == *n) {
		/* As in store_branch_switch: only a damaged file hides a message from its parent.
		 */
		free(*ids);
		*ids = NULL;
		*n = 0;
		return cause_set(cause, "%s: message %lld is not in the tree", what,
				 (long long)msg_id);
	}
	*index = i;
	return 0;
}

/* One row of ST_BRANCH into *m (MSG_COLUMNS, then the two sibling counts). */
static void
read_message(sqlite3_stmt *st, struct store_message *m)
{
	memset(m, 0, sizeof(*m));
	m->id = sqlite3_column_int64(st, 0);
	m->parent_id = sqlite3_column_int64(st, 1);
	m->role = col_str(st, 2);
	m->content = col_str(st, 3);
	m->reasoning = col_str(st, 4);
	m->status = status_parse((const char *)sqlite3_column_text(st, 5));
	m->error = col_str(st, 6);
	m->model = col_str(st, 7);
	m->usage.prompt_tokens = col_count(st, 8);
	m->usage.cached_tokens = col_count(st, 9);
	m->usage.output_tokens = col_count(st, 10);
	m->usage.reasoning_tokens = col_count(st, 11);
	m->usage.prefill_ms = col_count(st, 12);
	m->usage.decode_ms = col_count(st, 13);
	m->usage.ttft_ms = col_count(st, 14);
	m->created_at = sqlite3_column_int64(st, 15);
	m->params_json = col_str(st, 16);
	m->n_siblings = (int)MIN(sqlite3_column_int64(st, 17), 1 << 30);
	m->sibling_index = (int)MIN(sqlite3_column_int64(st, 18), 1 << 30);
	/* The schema forbids these NULLs; a damaged file may still hold them. */
	if (m->role == NULL)
		m->role = xstrdup("user");
	if (m->content == NULL)
		m->content = xstrdup("");
}

/*
 * A sound branch starts at a first message and each message's parent is the
 * one before it.  Anything else (a parent in another conversation, a missing
 * parent, a loop cut by the depth bound) can only come from a damaged file.
 */
static bool
branch_ok(const struct store_message *m, size_t n)
{
	if (n > 0 && m[0].parent_id != 0)
		return false;
	for (size_t i = 1; i < n; i++)
		if (m[i].parent_id != m[i - 1].id)
			return false;
	return true;
}

int
store_branch_load(struct store *s, int64_t conv_id, struct store_message **msgs, size_t *n,
		  char **cause)
{
	sqlite3_stmt *st = use(s, ST_BRANCH);
	struct store_message *v = NULL;
	size_t len = 0, cap = 0;
	int rc;

	*msgs = NULL;
	*n = 0;
	sqlite3_bind_int64(st, 1, conv_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		read_message(st, &v[len++]);
	}
	if (rc != SQLITE_DONE)
		db_cause(s, "cannot load the conversation", cause);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE && !branch_ok(v, len)) {
		cause_set(cause, "cannot load the conversation: conversation %lld is damaged",
			  (long long)conv_id);
		rc = SQLITE_CORRUPT;
	}
	if (rc != SQLITE_DONE) {
		store_branch_free(v, len);
		return -1;
	}
	*msgs = v;
	*n = len;
	return 0;
}

void
store_branch_free(struct store_message *msgs, size_t n)
{
	for (size_t i = 0; msgs != NULL && i < n; i++) {
		free(msgs[i].role);
		free(msgs[i].content);
		free(msgs[i].reasoning);
		free(msgs[i].error);
		free(msgs[i].model);
		free(msgs[i].params_json);
	}
	free(msgs);
}

struct chat_msg *
store_branch_to_chat(const struct store_message *msgs, size_t n, const char *system_prompt,
		     size_t *n_out)
{
	struct chat_msg *out = xcalloc(n + 1, sizeof(*out));
	size_t k = 0;

	if (system_prompt != NULL && system_prompt[0] != '\0') {
		out[k].role = "system";
		out[k++].content = system_prompt;
	}
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].status == STORE_STREAMING || msgs[i].status == STORE_ERROR)
			continue;
		/* Role and content only: reasoning and tool calls stay NULL on purpose. */
		out[k].role = msgs[i].role;
		out[k++].content = msgs[i].content;
	}
	*n_out = k;
	return out;
}

/* ---- Search --------------------------------------------------------------------------------- */

/*
 * Quoting every word turns FTS5 operators (AND, NEAR(, *, -, :, ^) into
 * plain text; the tokenizer then drops the punctuation inside the quotes,
 * and a word that is all punctuation matches nothing instead of failing.
 */
char *
store_fts_query(const char *query)
{
	static const char ws[] = " \t\r\n\v\f";
	char *out, *o;
	size_t len;

	if (query == NULL || query[strspn(query, ws)] == '\0')
		return NULL;
	/* Worst case: every byte a doubled quote, plus quotes and a space per word. */
	len = strlen(query);
	o = out = xmalloc(len * 4 + 1);
	for (const char *p = query + strspn(query, ws); *p != '\0'; p += strspn(p, ws)) {
		if (o != out)
			*o++ = ' ';
		*o++ = '"';
		for (; *p != '\0' && strchr(ws, *p) == NULL; p++) {
			if (*p == '"')
				*o++ = '"';
			*o++ = *p;
		}
		*o++ = '"';
	}
	*o = '\0';
	return out;
}

int
store_search(struct store *s, const char *query, struct store_hit **hits, size_t *n, char **cause)
{
	char *q = store_fts_query(query);
	struct store_hit *v = NULL, *h;
	size_t len = 0, cap = 0;
	sqlite3_stmt *st;
	int rc;

	*hits = NULL;
	*n = 0;
	if (q == NULL)
		return 0;
	st = use(s, ST_SEARCH);
	bind_text(st, 1, q);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		h = &v[len++];
		h->conv_id = sqlite3_column_int64(st, 0);
		h->msg_id = sqlite3_column_int64(st, 1);
		h->title = display_title((const char *)sqlite3_column_text(st, 2),
					 (const char *)sqlite3_column_text(st, 3));
		if ((h->snippet = col_str(st, 4)) == NULL)
			h->snippet = xstrdup("");
		flatten(h->snippet);
	}
	if (rc != SQLITE_DONE)
		db_cause(s, "search failed", cause);
	sqlite3_reset(st);
	free(q);
	if (rc != SQLITE_DONE) {
		store_hits_free(v, len);
		return -1;
	}
	*hits = v;
	*n = len;
	return 0;
}

void
store_hits_free(struct store_hit *hits, size_t n)
{
	for (size_t i = 0; hits != NULL && i < n; i++) {
		free(hits[i].title);
		free(hits[i].snippet);
	}
	free(hits);
}

/* ---- Export --------------------------------------------------------------------------------- */

static const char *
role_heading(const char *role)
{
	if (strcmp(role, "user") == 0)
		return "User";
	if (strcmp(role, "assistant") == 0)
		return "Assistant";
	if (strcmp(role, "system") == 0)
		return "System";
	if (strcmp(role, "tool") == 0)
		return "Tool";
	return role;
}

/* "YYYY-MM-DD HH:MM UTC" for ms since the epoch, into buf[32]. */
static const char *
format_time(int64_t ms, char *buf)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, 32, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		strcpy(buf, "?");
	return buf;
}

/* Whether line (up to its newline) opens or closes a code fence. */
static bool
md_fence(const char *line)
{
	line += strspn(line, " ") <= 3 ? strspn(line, " ") : 0;
	return strncmp(line, "```", 3) == 0 || strncmp(line, "~~~", 3) == 0;
}

/* Whether line is an ATX heading of level 1 or 2 (qnext's role headings). */
static bool
md_top_heading(const char *line)
{
	size_t sp = strspn(line, " "), h = strspn(line + sp, "#");

	return sp <= 3 && (h == 1 || h == 2) && strchr(" \t\n", line[sp + h]) != NULL;
}

/*
 * Message text into the Markdown export so that it cannot forge the
 * export's own structure: a level 1 or 2 heading outside code fences (a
 * fake "## User") gets a backslash, and a details or summary tag (which
 * would close the Thinking block early) has its '<' written as "&lt;".
 * Everything else is written as it is.
 */
static void
md_text(FILE *f, const char *s)
{
	bool fenced = false;

	while (*s != '\0') {
		size_t n = strcspn(s, "\n");

		if (md_fence(s))
			fenced = !fenced;
		else if (!fenced && md_top_heading(s))
			fputc('\\', f);
		for (size_t i = 0; i < n; i++) {
			if (s[i] == '<' && (strncasecmp(s + i + 1, "details", 7) == 0 ||
					    strncasecmp(s + i + 1, "/details", 8) == 0 ||
					    strncasecmp(s + i + 1, "summary", 7) == 0 ||
					    strncasecmp(s + i + 1, "/summary", 8) == 0))
				fputs("&lt;", f);
			else
				fputc(s[i], f);
		}
		s += n;
		if (*s == '\n')
			fputc(*s++, f);
	}
}

static void
md_message(FILE *f, const struct store_message *m)
{
	fprintf(f, "## %s\n\n", role_heading(m->role));
	if (m->reasoning != NULL && m->reasoning[0] != '\0') {
		fputs("<details><summary>Thinking</summary>\n\n", f);
		md_text(f, m->reasoning);
		fputs("\n\n</details>\n\n", f);
	}
	if (m->content[0] != '\0') {
		md_text(f, m->content);
		fputs("\n\n", f);
	}
	switch (m->status) {
	case STORE_DONE:
		break;
	case STORE_STREAMING:
		fputs("*(incomplete)*\n\n", f);
		break;
	case STORE_STOPPED:
		fputs("*(stopped)*\n\n", f);
		break;
	case STORE_ERROR:
		fprintf(f, "*(error%s%s)*\n\n", m->error != NULL ? ": " : "",
			m->error != NULL ? m->error : "");
		break;
	}
}

static char *
export_md(const struct store_conv *c, const struct store_message *m, size_t n, char **cause)
{
	char *buf = NULL, when[32];
	size_t len = 0;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL) {
		cause_set(cause, "cannot export: %s", strerror(errno));
		return NULL;
	}
	fprintf(f, "# %s\n\n", c->display_title);
	fprintf(f, "Model: %s  \nCreated: %s  \nID: %s\n\n", c->model,
		format_time(c->created_at, when), c->uuid);
	if (c->system_prompt != NULL)
		fprintf(f, "## System\n\n%s\n\n", c->system_prompt);
	for (size_t i = 0; i < n; i++)
		md_message(f, &m[i]);
	if (fclose(f) != 0) {
		cause_set(cause, "cannot export: %s", strerror(errno));
		free(buf);
		return NULL;
	}
	return buf;
}

/* Length of the well-formed UTF-8 sequence at p, or 0 (p is NUL-terminated). */
static size_t
utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))
			return 0; /* overlong, or a UTF-16 surrogate */
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
			return 0;
		if ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
			return 0; /* overlong, or above U+10FFFF */
		return 4;
	}
	return 0;
}

/*
 * A JSON string for s, or null for NULL.  jansson refuses text that is not
 * UTF-8, which a damaged file (or a model emitting a broken byte) can hold:
 * such bytes become U+FFFD.
 */
static json_t *
jstr(const char *s)
{
	const unsigned char *p;
	char *fixed, *o;
	json_t *j;
	size_t k;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	o = fixed = xmalloc(strlen(s) * 3 + 1);
	for (p = (const unsigned char *)s; *p != '\0'; p += k ? k : 1) {
		if ((k = utf8_len(p)) != 0) {
			memcpy(o, p, k);
			o += k;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
		}
	}
	*o = '\0';
	j = json_string(fixed);
	free(fixed);
	return j;
}

static json_t *
json_usage(const struct store_usage *u)
{
	const struct {
		const char *key;
		int64_t v;
	} f[] = {
		{ "prompt_tokens", u->prompt_tokens },
		{ "cached_tokens", u->cached_tokens },
		{ "output_tokens", u->output_tokens },
		{ "reasoning_tokens", u->reasoning_tokens },
		{ "prefill_ms", u->prefill_ms },
		{ "decode_ms", u->decode_ms },
		{ "ttft_ms", u->ttft_ms },
	};
	json_t *o = json_object();

	for (size_t i = 0; i < ARRAY_LEN(f); i++)
		if (f[i].v >= 0)
			json_object_set_new(o, f[i].key, json_integer(f[i].v));
	return o;
}

static json_t *
json_message(const struct store_message *m)
{
	json_t *o = json_object(), *params;

	json_object_set_new(o, "role", jstr(m->role));
	json_object_set_new(o, "content", jstr(m->content));
	if (m->reasoning != NULL)
		json_object_set_new(o, "reasoning_content", jstr(m->reasoning));
	json_object_set_new(o, "status", json_string(status_name(m->status)));
	if (m->error != NULL)
		json_object_set_new(o, "error", jstr(m->error));
	if (m->model != NULL)
		json_object_set_new(o, "model", jstr(m->model));
	json_object_set_new(o, "created_at", json_integer(m->created_at));
	json_object_set_new(o, "usage", json_usage(&m->usage));
	if (m->params_json != NULL && (params = json_loads(m->params_json, 0, NULL)) != NULL)
		json_object_set_new(o, "params",
				    params); /* the seed: how to get this answer again */
	return o;
}

static char *
export_json(const struct store_conv *c, const struct store_message *m, size_t n, char **cause)
{
	json_t *root = json_object(), *msgs = json_array();
	char *text, *out;

	json_object_set_new(root, "uuid", jstr(c->uuid));
	json_object_set_new(root, "title", jstr(c->title));
	json_object_set_new(root, "model", jstr(c->model));
	json_object_set_new(root, "created_at", json_integer(c->created_at));
	json_object_set_new(root, "updated_at", json_integer(c->updated_at));
	json_object_set_new(root, "system", jstr(c->system_prompt));
	for (size_t i = 0; i < n; i++)
		json_array_append_new(msgs, json_message(&m[i]));
	json_object_set_new(root, "messages", msgs);
	text = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (text == NULL) {
		cause_set(cause, "cannot export: JSON encoding failed");
		return NULL;
	}
	out = xasprintf("%s\n", text);
	free(text);
	return out;
}

char *
store_export(struct store *s, int64_t conv_id, enum store_format fmt, char **cause)
{
	struct store_message *m;
	struct store_conv c;
	char *out = NULL;
	size_t n;

	if (fmt != STORE_MARKDOWN && fmt != STORE_JSON) {
		cause_set(cause, "cannot export: unknown format %d", (int)fmt);
		return NULL;
	}
	if (store_conv_get(s, conv_id, &c, cause) != 0)
		return NULL;
	if (store_branch_load(s, conv_id, &m, &n, cause) == 0) {
		switch (fmt) {
		case STORE_MARKDOWN:
			out = export_md(&c, m, n, cause);
			break;
		case STORE_JSON:
			out = export_json(&c, m, n, cause);
			break;
		}
		store_branch_free(m, n);
	}
	store_conv_release(&c);
	return out;
}

/* Written beside path and renamed over it, so a failed export never leaves half a file. */
int
store_export_file(struct store *s, int64_t conv_id, enum store_format fmt, const char *path,
		  char **cause)
{
	char *text;
	int ret;

	if ((text = store_export(s, conv_id, fmt, cause)) == NULL)
		return -1;
	/* 0600, as the conversations' own database. */
	ret = file_write_atomic(path, text, strlen(text), 0600, cause);
	free(text);
	return ret;
}
