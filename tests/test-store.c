/*
 * test-store.c - the conversation store (src/store.c) on real files in a
 * fresh mkdtemp directory under /tmp: schema creation and migration, the
 * files it must refuse (another program's, a newer qnext's, garbage,
 * read-only, locked), crash recovery, conversations, branches, search with
 * hostile input, cascading deletes and export.  A second sqlite3 connection
 * plays the other process and edits files behind the store's back; for
 * recovery while an answer is live, a forked child is the other process.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "chat-template.h"
#include "store.h"
#include "t.h"
#include "util.h"

static char tmpdir[] = "/tmp/test-store-XXXXXX";
static int n_files;

/* A new path in the temporary directory. */
static char *
tpath(const char *name)
{
	return xasprintf("%s/%d-%s", tmpdir, n_files++, name);
}

static void
pause_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* Run sql on path through a connection of our own, the way another program would. */
static int
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	int rc;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "raw_exec: %s: %s\n", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* The first column of the first row of sql as text (malloc'd), or NULL. */
static char *
raw_text(const char *path, const char *sql)
{
	sqlite3_stmt *st;
	sqlite3 *db;
	char *v = NULL;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
			v = xstrdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return v;
}

static long long
raw_int(const char *path, const char *sql)
{
	char *v = raw_text(path, sql);
	long long n = v != NULL ? atoll(v) : -999;

	free(v);
	return n;
}

static bool
one_line(const char *s)
{
	return s != NULL && s[0] != '\0' && strchr(s, '\n') == NULL;
}

/* store_open on path must fail with a one-line cause holding want. */
static void
expect_refused(const char *path, const struct store_options *opt, const char *want)
{
	char *cause = NULL;
	struct store *s = store_open_with(path, opt, &cause);

	T_ASSERT(s == NULL);
	T_ASSERT(one_line(cause));
	T_STR_CONTAINS(cause, want);
	store_close(s);
	free(cause);
}

static struct store *
open_ok(const char *path)
{
	char *cause = NULL;
	struct store *s = store_open(path, &cause);

	if (s == NULL)
		fprintf(stderr, "store_open(%s): %s\n", path, cause);
	T_ASSERT(s != NULL);
	free(cause);
	return s;
}

/* A conversation with a user question and a finished answer. */
static int64_t
make_turn(struct store *s, int64_t conv, const char *q, const char *a, const char *reasoning)
{
	struct store_reply r = { a, reasoning, STORE_DONE, NULL, STORE_USAGE_UNKNOWN, NULL };
	int64_t id;

	T_ASSERT(store_msg_add_user(s, conv, q, NULL) > 0);
	id = store_msg_begin_assistant(s, conv, "qwen3-next", NULL);
	T_ASSERT(id > 0);
	T_EQ_INT(store_msg_finish(s, id, &r, NULL), 0);
	return id;
}

static void
test_paths(void)
{
	char *old_xdg = getenv("XDG_DATA_HOME"), *old_home = getenv("HOME"), *p;

	old_xdg = old_xdg != NULL ? xstrdup(old_xdg) : NULL;
	old_home = old_home != NULL ? xstrdup(old_home) : NULL;
	setenv("XDG_DATA_HOME", "/data", 1);
	p = store_default_path();
	T_ASSERT(p != NULL && strcmp(p, "/data/qnext/chats.db") == 0);
	free(p);
	setenv("XDG_DATA_HOME", "relative", 1); /* ignored, as the spec says */
	setenv("HOME", "/home/u", 1);
	p = store_default_path();
	T_ASSERT(p != NULL && strcmp(p, "/home/u/.local/share/qnext/chats.db") == 0);
	free(p);
	unsetenv("XDG_DATA_HOME");
	p = store_default_path();
	T_ASSERT(p != NULL && strcmp(p, "/home/u/.local/share/qnext/chats.db") == 0);
	free(p);
	if (old_xdg != NULL)
		setenv("XDG_DATA_HOME", old_xdg, 1);
	if (old_home != NULL)
		setenv("HOME", old_home, 1);
	free(old_xdg);
	free(old_home);
}

/* A new file in new directories gets the whole schema; reopening it migrates nothing. */
static void
test_create_and_reopen(void)
{
	char *dir = tpath("a"), *path = xasprintf("%s/b/c/chats.db", dir), *v;
	struct store_conv_item *items = NULL;
	struct stat st;
	struct store *s;
	int64_t conv;
	size_t n = 0;

	s = open_ok(path);
	T_EQ_INT(store_recovered(s), 0);
	conv = store_conv_create(s, "qwen3-next", NULL, NULL);
	T_ASSERT(conv > 0);
	store_close(s);
	T_EQ_INT(raw_int(path, "PRAGMA user_version"), store_schema_version());
	T_EQ_INT(store_schema_version(), 1);
	T_EQ_INT(raw_int(path, "PRAGMA application_id"), 0x514E5854);
	v = raw_text(path, "PRAGMA journal_mode");
	T_ASSERT(v != NULL && strcmp(v, "wal") == 0);
	free(v);
	T_EQ_INT(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN ('conversation',"
			       " 'message', 'message_fts', 'input_history', 'message_fts_ai',"
			       " 'message_fts_ad', 'message_fts_au', 'message_touch_conv',"
			       " 'message_parent', 'conversation_leaf')"),
		 10);
	T_EQ_INT(raw_int(path, "SELECT strict FROM pragma_table_list WHERE name = 'message'"), 1);
	T_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	v = xasprintf("%s/b", dir);
	T_ASSERT(stat(v, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	free(v);

	/* Reopening would fail on CREATE TABLE if it migrated again. */
	s = open_ok(path);
	T_ASSERT(s != NULL && store_conv_list(s, &items, &n, NULL) == 0 && n == 1);
	if (n == 1)
		T_EQ_INT(items[0].id, conv);
	store_conv_list_free(items, n);
	store_close(s);
	T_EQ_INT(raw_int(path, "PRAGMA user_version"), 1);

	/* An empty file is a new database, not a broken one. */
	free(path);
	path = tpath("empty.db");
	T_EQ_INT(raw_exec(path, "SELECT 1"), 0); /* creates a 0-byte file */
	store_close(open_ok(path));

	s = open_ok(":memory:");
	T_ASSERT(s != NULL && store_conv_create(s, "m", NULL, NULL) > 0);
	store_close(s);
	free(path);
	free(dir);
}

static void
test_refusals(void)
{
	char *path = tpath("newer.db"), *v;
	int fd;

	/* A newer qnext's file. */
	store_close(open_ok(path));
	T_EQ_INT(raw_exec(path, "PRAGMA user_version = 99"), 0);
	expect_refused(path, NULL, "was written by a newer qnext (schema 99, this one knows 1)");
	T_EQ_INT(raw_int(path, "PRAGMA user_version"), 99);
	free(path);

	/* Another program's file, tagged and untagged: refused untouched. */
	path = tpath("other-app.db");
	T_EQ_INT(raw_exec(path, "PRAGMA application_id = 305419896; CREATE TABLE t(x);"), 0);
	expect_refused(path, NULL, "belongs to another program: application_id 0x12345678");
	free(path);
	path = tpath("other.db");
	T_EQ_INT(raw_exec(path, "CREATE TABLE notes(x); INSERT INTO notes VALUES (1);"), 0);
	expect_refused(path, NULL, "is not a qnext database");
	v = raw_text(path, "PRAGMA journal_mode");
	T_ASSERT(v != NULL && strcmp(v, "delete") == 0);
	free(v);
	T_EQ_INT(raw_int(path, "SELECT count(*) FROM sqlite_master"), 1);
	T_EQ_INT(raw_int(path, "PRAGMA application_id"), 0);
	free(path);

	/* Garbage. */
	path = tpath("garbage.db");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	for (int i = 0; i < 256; i++)
		T_ASSERT(write(fd, "this is not an SQLite file! ", 28) == 28);
	close(fd);
	expect_refused(path, NULL, "file is not a database");
	free(path);

	/* A damaged schema page: SQLite's header is intact, page 1's b-tree is not. */
	path = tpath("damaged.db");
	store_close(open_ok(path));
	fd = open(path, O_WRONLY);
	T_ASSERT(fd >= 0 && pwrite(fd, "\x0d\xff\xff\xff\xff\xff\xff\xff", 8, 100) == 8);
	close(fd);
	expect_refused(path, NULL, path);
	free(path);

	/* A directory where the file should be, and a file where a directory should be. */
	path = tpath("dir.db");
	T_EQ_INT(mkdir(path, 0700), 0);
	expect_refused(path, NULL, path);
	free(path);
	path = tpath("file");
	T_EQ_INT(raw_exec(path, "SELECT 1"), 0);
	v = xasprintf("%s/sub/chats.db", path);
	expect_refused(v, NULL, "cannot create directory");
	free(v);
	free(path);
}

/*
 * The first migration fails half way (a table named like ours is in the
 * way): the transaction leaves the file exactly as it was.
 */
static void
test_migration_atomic(void)
{
	char *path = tpath("half.db"), *v;

	T_EQ_INT(raw_exec(path, "PRAGMA application_id = 1364088916; CREATE TABLE message(x);"
				"INSERT INTO message VALUES ('keep');"),
		 0);
	expect_refused(path, NULL, "cannot upgrade to schema 1");
	expect_refused(path, NULL, "already exists");
	T_EQ_INT(raw_int(path, "PRAGMA user_version"), 0);
	T_EQ_INT(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'conversation'"),
		 0);
	T_EQ_INT(raw_int(path, "SELECT count(*) FROM sqlite_master"), 1);
	T_EQ_INT(raw_int(path, "SELECT count(*) FROM message WHERE x = 'keep'"), 1);
	v = raw_text(path, "PRAGMA integrity_check");
	T_ASSERT(v != NULL && strcmp(v, "ok") == 0);
	free(v);
	free(path);
}

/* chmod cannot stop root: then say so and count nothing. */
static bool
root_can_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	if (fd < 0)
		return false;
	close(fd);
	printf("test-store: skipped read-only check of %s (root ignores chmod)\n", path);
	return true;
}

static void
test_read_only(void)
{
	char *path = tpath("ro.db"), *dir = tpath("ro-dir"), *in_dir;

	store_close(open_ok(path));
	T_EQ_INT(chmod(path, 0444), 0);
	if (!root_can_write(path))
		expect_refused(path, NULL, "read-only");
	chmod(path, 0600);

	/* Reading needs no write access: export and list from a 0444 file in
	 * a 0500 directory (issue 10, item 12). */
	{
		struct store_options ro = { .read_only = true };
		struct store *w = open_ok(path), *r;
		int64_t conv = store_conv_create(w, "m", NULL, NULL);
		char *text, *cause = NULL, *ro_dir = tpath("ro-export"), *ro_path;
		char *never = tpath("never-made.db");

		store_msg_add_user(w, conv, "kept while read-only", NULL);
		store_close(w);
		T_EQ_INT(mkdir(ro_dir, 0700), 0);
		ro_path = xasprintf("%s/chats.db", ro_dir);
		T_EQ_INT(rename(path, ro_path), 0);
		T_EQ_INT(chmod(ro_path, 0444), 0);
		T_EQ_INT(chmod(ro_dir, 0500), 0);
		r = store_open_with(ro_path, &ro, &cause);
		T_ASSERT(r != NULL);
		text = r != NULL ? store_export(r, conv, STORE_MARKDOWN, &cause) : NULL;
		T_STR_CONTAINS(text, "kept while read-only");
		free(text);
		store_close(r);
		free(cause);
		cause = NULL;
		T_ASSERT(store_open_with(never, &ro, &cause) == NULL);
		T_ASSERT(one_line(cause));
		T_ASSERT(access(never, F_OK) != 0); /* not created */
		free(never);
		chmod(ro_dir, 0700);
		chmod(ro_path, 0600);
		free(cause);
		free(ro_path);
		free(ro_dir);
	}

	T_EQ_INT(mkdir(dir, 0500), 0);
	in_dir = xasprintf("%s/chats.db", dir);
	if (access(dir, W_OK) != 0)
		expect_refused(in_dir, NULL, "Permission denied");
	else
		printf("test-store: skipped read-only directory check (root ignores chmod)\n");
	chmod(dir, 0700);
	free(in_dir);
	free(dir);
	free(path);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Another process holds the write lock: opening and writing fail after the busy timeout. */
static void
test_locked(void)
{
	struct store_options opt = { .busy_timeout_ms = 200 };
	char *path = tpath("locked.db"), *cause = NULL;
	struct store *s;
	sqlite3 *other;
	int64_t conv;
	double t0;

	store_close(open_ok(path));
	T_EQ_INT(sqlite3_open(path, &other), SQLITE_OK);
	T_EQ_INT(sqlite3_exec(other,
			      "BEGIN EXCLUSIVE;"
			      "INSERT INTO input_history(line, created_at) VALUES ('x', 0);",
			      NULL, NULL, NULL),
		 SQLITE_OK);
	t0 = now();
	expect_refused(path, &opt, "database is locked");
	T_ASSERT(now() - t0 >= 0.15 && now() - t0 < 3.0);
	sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);

	/* Open first, then the other process locks: the first write says why it failed. */
	s = store_open_with(path, &opt, NULL);
	T_ASSERT(s != NULL);
	conv = store_conv_create(s, "m", NULL, NULL);
	sqlite3_exec(other, "BEGIN EXCLUSIVE; DELETE FROM input_history;", NULL, NULL, NULL);
	T_EQ_INT(store_msg_add_user(s, conv, "hello", &cause), -1);
	T_ASSERT(one_line(cause));
	T_STR_CONTAINS(cause, "database is locked");
	sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
	T_ASSERT(store_msg_add_user(s, conv, "hello", NULL) > 0);
	store_close(s);

	/* Without WAL an exclusive lock keeps out readers too: identifying the file fails. */
	T_EQ_INT(sqlite3_exec(other,
			      "PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE;"
			      "DELETE FROM input_history;",
			      NULL, NULL, NULL),
		 SQLITE_OK);
	t0 = now();
	expect_refused(path, &opt, "database is locked");
	T_ASSERT(now() - t0 < 3.0);
	sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(other);
	free(cause);
	free(path);
}

/* A reply that was streaming when the program died is 'stopped' at the next start. */
static void
test_recovery(void)
{
	char *path = tpath("crash.db");
	struct store_message *m;
	struct store *s = open_ok(path);
	int64_t conv, id;
	size_t n;

	conv = store_conv_create(s, "m", NULL, NULL);
	T_ASSERT(store_msg_add_user(s, conv, "tell me a story", NULL) > 0);
	id = store_msg_begin_assistant(s, conv, "m", NULL);
	T_EQ_INT(store_msg_checkpoint(s, id, "Once upon", "plot first", NULL), 0);
	T_EQ_INT(store_branch_load(s, conv, &m, &n, NULL), 0);
	T_ASSERT(n == 2 && m[1].status == STORE_STREAMING);
	store_branch_free(m, n);
	store_close(s); /* no finish: the "crash" */

	s = open_ok(path);
	T_EQ_INT(store_recovered(s), 1);
	T_EQ_INT(store_branch_load(s, conv, &m, &n, NULL), 0);
	T_EQ_INT(n, 2);
	if (n == 2) {
		T_EQ_INT(m[1].id, id);
		T_EQ_INT(m[1].status, STORE_STOPPED);
		T_ASSERT(strcmp(m[1].content, "Once upon") == 0);
		T_ASSERT(m[1].reasoning != NULL && strcmp(m[1].reasoning, "plot first") == 0);
	}
	store_branch_free(m, n);
	store_close(s);
	s = open_ok(path);
	T_EQ_INT(store_recovered(s), 0);
	store_close(s);
	free(path);
}

/* The status of message id in conv as an open store sees it, or -1. */
static int
status_of(struct store *s, int64_t conv, int64_t id)
{
	struct store_message *m;
	int st = -1;
	size_t n;

	if (store_branch_load(s, conv, &m, &n, NULL) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (m[i].id == id)
			st = (int)m[i].status;
	store_branch_free(m, n);
	return st;
}

/*
 * Two stores of one process: POSIX record locks would not conflict between
 * them, and the second store's close would drop the first one's locks.
 */
static void
test_recovery_same_process(void)
{
	char *path = tpath("two.db"), *live = xasprintf("%s-live", path);
	struct store *writer = open_ok(path), *s;
	struct stat st;
	int64_t conv, id;

	conv = store_conv_create(writer, "m", NULL, NULL);
	T_ASSERT(store_msg_add_user(writer, conv, "q", NULL) > 0);
	id = store_msg_begin_assistant(writer, conv, "m", NULL);
	T_ASSERT(id > 0);
	T_ASSERT(stat(live, &st) == 0 && (st.st_mode & 0777) == 0600);
	for (int i = 0; i < 2; i++) {
		s = open_ok(path);
		T_EQ_INT(store_recovered(s), 0);
		T_EQ_INT(status_of(s, conv, id), STORE_STREAMING);
		store_close(s);
	}
	store_close(writer); /* unfinished: its lock goes with it */
	s = open_ok(path);
	T_EQ_INT(store_recovered(s), 1);
	T_EQ_INT(status_of(s, conv, id), STORE_STOPPED);
	store_close(s);

	/* A store in memory has no side file, yet streams and finishes as before. */
	s = open_ok(":memory:");
	conv = store_conv_create(s, "m", NULL, NULL);
	id = store_msg_begin_assistant(s, conv, "m", NULL);
	T_ASSERT(id > 0 && access(":memory:-live", F_OK) != 0);
	store_close(s);
	free(live);
	free(path);
}

/*
 * The child side of test_recovery_live: open path, write a turn and begin
 * an answer (a regenerated one when regen), send its conversation and
 * message ids on out, then obey commands from in: 'f' finishes the answer
 * and acknowledges, anything else or EOF ends the process without closing
 * anything.  Never returns.
 */
static void
live_child(const char *path, bool regen, int in, int out)
{
	struct store_reply r = { "full answer", NULL, STORE_DONE, NULL, STORE_USAGE_UNKNOWN, NULL };
	int64_t ids[2] = { -1, -1 };
	struct store *s;
	char c;

	if ((s = store_open(path, NULL)) != NULL &&
	    (ids[0] = store_conv_create(s, "m", NULL, NULL)) > 0 &&
	    store_msg_add_user(s, ids[0], "q", NULL) > 0) {
		ids[1] = store_msg_begin_assistant(s, ids[0], "m", NULL);
		if (regen && ids[1] > 0 && store_msg_finish(s, ids[1], &r, NULL) == 0)
			ids[1] = store_msg_regenerate(s, ids[0], ids[1], "m", NULL);
		if (ids[1] > 0 && store_msg_checkpoint(s, ids[1], "partial", NULL, NULL) != 0)
			ids[1] = -1;
	}
	if (write(out, ids, sizeof(ids)) != (ssize_t)sizeof(ids))
		_exit(1);
	while (read(in, &c, 1) == 1 && c == 'f') {
		c = s != NULL && store_msg_finish(s, ids[1], &r, NULL) == 0 ? 'd' : 'e';
		if (write(out, &c, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

/* Whether some process holds byte id of the side file, asked the way store_open asks. */
static bool
live_byte_held(const char *path, int64_t id)
{
	char *live = xasprintf("%s-live", path);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = id, .l_len = 1 };
	int fd = open(live, O_RDONLY | O_CLOEXEC);
	bool held = fd >= 0 && fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;

	if (fd >= 0)
		close(fd);
	free(live);
	return held;
}

/*
 * Another process streams an answer (the full-screen chat) while this one
 * opens the file (`qnext list`, `qnext export`, a second chat): the answer
 * must stay 'streaming'; once its writer is killed the next open stops it;
 * a normal finish releases it at once.  regen writes the answer through
 * store_msg_regenerate instead of store_msg_begin_assistant.
 */
static void
test_recovery_live(bool regen)
{
	char *path = tpath(regen ? "live-regen.db" : "live.db"), c;
	int to_child[2], from_child[2], status, want_recovered, want_status;
	int64_t ids[2] = { -1, -1 };
	struct store *s;
	pid_t pid;

	store_close(open_ok(path)); /* the schema exists before the child starts */
	T_ASSERT(pipe(to_child) == 0 && pipe(from_child) == 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		close(to_child[1]);
		close(from_child[0]);
		live_child(path, regen, to_child[0], from_child[1]);
	}
	T_ASSERT(pid > 0);
	close(to_child[0]);
	close(from_child[1]);
	T_ASSERT(read(from_child[0], ids, sizeof(ids)) == (ssize_t)sizeof(ids));
	T_ASSERT(ids[0] > 0 && ids[1] > 0);
	T_ASSERT(live_byte_held(path, ids[1]));

	/* Opened twice: the first store's close must not disturb the writer either. */
	for (int i = 0; i < 2; i++) {
		s = open_ok(path);
		T_EQ_INT(store_recovered(s), 0);
		T_EQ_INT(status_of(s, ids[0], ids[1]), STORE_STREAMING);
		store_close(s);
	}

	if (regen) {
		/* Finished: the lock goes at once, the child still running. */
		T_ASSERT(write(to_child[1], "f", 1) == 1);
		T_ASSERT(read(from_child[0], &c, 1) == 1 && c == 'd');
		T_ASSERT(!live_byte_held(path, ids[1]));
		s = open_ok(path);
		T_EQ_INT(store_recovered(s), 0);
		T_EQ_INT(status_of(s, ids[0], ids[1]), STORE_DONE);
		store_close(s);
		close(to_child[1]); /* EOF: the child ends */
	} else {
		kill(pid, SIGKILL); /* dies mid-answer */
	}
	T_ASSERT(waitpid(pid, &status, 0) == pid);
	close(from_child[0]);
	if (!regen)
		close(to_child[1]);

	/* Gone: a killed writer's answer is recovered, a finished one stays done. */
	want_recovered = regen ? 0 : 1;
	want_status = regen ? STORE_DONE : STORE_STOPPED;
	s = open_ok(path);
	T_EQ_INT(store_recovered(s), want_recovered);
	T_EQ_INT(status_of(s, ids[0], ids[1]), want_status);
	store_close(s);
	free(path);
}

static bool
is_uuid_v4(const char *u)
{
	if (strlen(u) != 36 || u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-')
		return false;
	if (u[14] != '4' || strchr("89ab", u[19]) == NULL)
		return false;
	for (int i = 0; i < 36; i++)
		if (u[i] != '-' && strchr("0123456789abcdef", u[i]) == NULL)
			return false;
	return true;
}

static void
test_conversations(void)
{
	struct store *s = open_ok(":memory:");
	struct store_conv_item *it;
	struct store_conv c, c2;
	int64_t a, b, d, e;
	char *cause = NULL;
	size_t n;

	a = store_conv_create(s, "qwen3-next", "Be brief.", NULL);
	pause_ms(3);
	b = store_conv_create(s, "qwen3-next", "", NULL);
	pause_ms(3);
	d = store_conv_create(s, "qwen3-next", NULL, NULL);
	pause_ms(3);
	e = store_conv_create(s, "qwen3-next", NULL, NULL);
	T_ASSERT(a > 0 && b > a && d > b && e > d);
	pause_ms(3);
	T_EQ_INT(store_msg_add_user(s, a, "  \n\t How do I sort a list in C?  \nWith qsort?",
				    NULL) > 0,
		 1);
	/* 70 two-byte code points: the fallback title keeps 60 and adds an ellipsis. */
	{
		char long_q[200] = "";

		for (int i = 0; i < 70; i++)
			strcat(long_q, "é");
		pause_ms(3);
		T_ASSERT(store_msg_add_user(s, d, long_q, NULL) > 0);
	}
	T_EQ_INT(store_conv_rename(s, e, "Groceries", NULL), 0);
	T_EQ_INT(store_conv_set_pinned(s, b, true, NULL), 0);
	T_EQ_INT(store_conv_list(s, &it, &n, NULL), 0);
	T_EQ_INT(n, 4);
	if (n == 4) {
		/* Pinned first, then by last activity: d got a message after a did. */
		T_EQ_INT(it[0].id, b);
		T_ASSERT(it[0].pinned && strcmp(it[0].title, "(untitled)") == 0);
		T_EQ_INT(it[1].id, d);
		T_EQ_INT(strlen(it[1].title), 60 * 2 + strlen("…"));
		T_EQ_INT(it[2].id, a);
		T_ASSERT(strcmp(it[2].title, "How do I sort a list in C?") == 0);
		T_EQ_INT(it[2].n_messages, 1);
		T_ASSERT(it[2].updated_at > 1600000000000LL);
		T_EQ_INT(it[3].id, e);
		T_ASSERT(strcmp(it[3].title, "Groceries") == 0);
	}
	store_conv_list_free(it, n);

	T_EQ_INT(store_conv_set_archived(s, d, true, NULL), 0);
	T_EQ_INT(store_conv_rename(s, e, "", NULL), 0); /* back to the fallback */
	T_EQ_INT(store_conv_list(s, &it, &n, NULL), 0);
	T_EQ_INT(n, 3);
	if (n == 3)
		T_ASSERT(strcmp(it[2].title, "(untitled)") == 0);
	store_conv_list_free(it, n);

	T_EQ_INT(store_conv_get(s, a, &c, NULL), 0);
	T_ASSERT(is_uuid_v4(c.uuid));
	T_ASSERT(c.title == NULL && strcmp(c.display_title, "How do I sort a list in C?") == 0);
	T_ASSERT(c.system_prompt != NULL && strcmp(c.system_prompt, "Be brief.") == 0);
	T_ASSERT(strcmp(c.model, "qwen3-next") == 0);
	T_ASSERT(c.current_leaf_id > 0 && !c.pinned && !c.archived);
	T_EQ_INT(store_conv_set_system(s, a, "Be verbose.", NULL), 0);
	T_EQ_INT(store_conv_get(s, b, &c2, NULL), 0);
	T_ASSERT(c2.system_prompt == NULL && c2.current_leaf_id == 0 && c2.pinned);
	T_ASSERT(strcmp(c.uuid, c2.uuid) != 0);
	store_conv_release(&c);
	store_conv_release(&c2);
	T_EQ_INT(store_conv_get(s, a, &c, NULL), 0);
	T_ASSERT(c.system_prompt != NULL && strcmp(c.system_prompt, "Be verbose.") == 0);
	store_conv_release(&c);

	T_EQ_INT(store_conv_rename(s, 999, "x", &cause), -1);
	T_STR_CONTAINS(cause, "no conversation 999");
	T_EQ_INT(store_conv_get(s, 999, &c, &cause), -1);
	T_STR_CONTAINS(cause, "no conversation 999");
	T_EQ_INT(store_msg_add_user(s, 999, "x", &cause), -1);
	T_STR_CONTAINS(cause, "no conversation 999");
	free(cause);
	store_close(s);
}

/* OUT: the ids of the visible branch, joined by spaces, into buf. */
static const char *
branch_ids(struct store *s, int64_t conv, char *buf, size_t size)
{
	struct store_message *m;
	size_t n, len = 0;

	buf[0] = '\0';
	if (store_branch_load(s, conv, &m, &n, NULL) != 0)
		return "error";
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, size - MIN(len, size), "%s%lld", i ? " " : "",
					(long long)m[i].id);
	store_branch_free(m, n);
	return buf;
}

/*
 * The list counts what opening a chat shows (the current branch), not
 * regenerated siblings; a title is stored as one trimmed line.
 */
static void
test_list_counts_branch(void)
{
	struct store *s = open_ok(":memory:");
	struct store_conv_item *it = NULL;
	struct store_message *m = NULL;
	struct store_conv c;
	int64_t conv, a1;
	size_t n = 0, nb = 0;

	conv = store_conv_create(s, "m", NULL, NULL);
	a1 = make_turn(s, conv, "q", "first", NULL);
	T_ASSERT(store_msg_regenerate(s, conv, a1, "m", NULL) > a1);
	T_EQ_INT(store_branch_load(s, conv, &m, &nb, NULL), 0);
	T_EQ_INT(store_conv_list(s, &it, &n, NULL), 0);
	T_EQ_INT(n, 1);
	if (n == 1) {
		T_EQ_INT(it[0].n_messages, 2);
		T_EQ_INT(it[0].n_messages, (int64_t)nb);
	}
	store_conv_list_free(it, n);
	store_branch_free(m, nb);
	T_EQ_INT(store_conv_rename(s, conv, "  Trip plans \t\nsecond line", NULL), 0);
	T_EQ_INT(store_conv_get(s, conv, &c, NULL), 0);
	T_ASSERT(c.title != NULL && strcmp(c.title, "Trip plans") == 0);
	store_conv_release(&c);
	T_EQ_INT(store_conv_rename(s, conv, " \t ", NULL), 0);
	T_EQ_INT(store_conv_get(s, conv, &c, NULL), 0);
	T_ASSERT(c.title == NULL);
	store_conv_release(&c);
	store_close(s);
}

static void
test_branches(void)
{
	struct store_reply r = {
		"hello", "greet back", STORE_DONE, NULL, { 12, 3, 7, 2, 40, 90, 55 }, NULL
	};
	struct store *s = open_ok(":memory:");
	int64_t conv, u1, a1, a2, u2, u1b;
	struct store_message *m;
	char want[64], buf[128], *cause = NULL;
	size_t n;

	conv = store_conv_create(s, "m", NULL, NULL);
	u1 = store_msg_add_user(s, conv, "hi", NULL);
	a1 = store_msg_begin_assistant(s, conv, "m", NULL);
	T_EQ_INT(store_msg_finish(s, a1, &r, NULL), 0);
	T_EQ_INT(store_branch_load(s, conv, &m, &n, NULL), 0);
	T_EQ_INT(n, 2);
	if (n == 2) {
		T_EQ_INT(m[0].id, u1);
		T_EQ_INT(m[0].parent_id, 0);
		T_ASSERT(strcmp(m[0].role, "user") == 0 && m[0].model == NULL);
		T_EQ_INT(m[1].parent_id, u1);
		T_ASSERT(strcmp(m[1].role, "assistant") == 0 && strcmp(m[1].model, "m") == 0);
		T_ASSERT(strcmp(m[1].content, "hello") == 0);
		T_EQ_INT(m[1].status, STORE_DONE);
		T_EQ_INT(m[1].usage.prompt_tokens, 12);
		T_EQ_INT(m[1].usage.cached_tokens, 3);
		T_EQ_INT(m[1].usage.output_tokens, 7);
		T_EQ_INT(m[1].usage.reasoning_tokens, 2);
		T_EQ_INT(m[1].usage.prefill_ms, 40);
		T_EQ_INT(m[1].usage.decode_ms, 90);
		T_EQ_INT(m[1].usage.ttft_ms, 55);
		T_EQ_INT(m[0].usage.ttft_ms, -1);
		T_EQ_INT(m[1].n_siblings, 1);
	}
	store_branch_free(m, n);

	/* Regenerate: a sibling under the same question becomes the head. */
	a2 = store_msg_regenerate(s, conv, a1, "m", NULL);
	T_ASSERT(a2 > a1);
	r.content = "hello again";
	r.usage = (struct store_usage)STORE_USAGE_UNKNOWN;
	T_EQ_INT(store_msg_finish(s, a2, &r, NULL), 0);
	T_EQ_INT(store_branch_load(s, conv, &m, &n, NULL), 0);
	T_EQ_INT(n, 2);
	if (n == 2) {
		T_EQ_INT(m[1].id, a2);
		T_EQ_INT(m[1].n_siblings, 2);
		T_EQ_INT(m[1].sibling_index, 1);
		T_EQ_INT(m[1].usage.prompt_tokens, -1);
		T_ASSERT(strcmp(m[1].content, "hello again") == 0);
	}
	store_branch_free(m, n);
	u2 = store_msg_add_user(s, conv, "next", NULL);
	snprintf(want, sizeof(want), "%lld %lld %lld", (long long)u1, (long long)a2, (long long)u2);
	T_ASSERT(strcmp(branch_ids(s, conv, buf, sizeof(buf)), want) == 0);

	/* < 1/2 >: back to the first answer, then forward to the newest path below the second. */
	T_EQ_INT(store_branch_switch(s, conv, a2, -1, NULL), 0);
	snprintf(want, sizeof(want), "%lld %lld", (long long)u1, (long long)a1);
	T_ASSERT(strcmp(branch_ids(s, conv, buf, sizeof(buf)), want) == 0);
	T_EQ_INT(store_branch_switch(s, conv, a1, +1, NULL), 0);
	snprintf(want, sizeof(want), "%lld %lld %lld", (long long)u1, (long long)a2, (long long)u2);
	T_ASSERT(strcmp(branch_ids(s, conv, buf, sizeof(buf)), want) == 0);
	T_EQ_INT(store_branch_switch(s, conv, a2, +5, NULL), 0); /* clamped */
	T_ASSERT(strcmp(branch_ids(s, conv, buf, sizeof(buf)), want) == 0);

	/* The siblings of one message, with its place among them. */
	{
		int64_t *ids = NULL;
		size_t k = 9, at = 9;

		T_EQ_INT(store_msg_siblings(s, conv, a2, &ids, &k, &at, NULL), 0);
		T_ASSERT(k == 2 && at == 1 && ids != NULL && ids[0] == a1 && ids[1] == a2);
		free(ids);
		T_EQ_INT(store_msg_siblings(s, conv, a1, &ids, &k, &at, NULL), 0);
		T_ASSERT(k == 2 && at == 0 && ids[0] == a1);
		free(ids);
		T_EQ_INT(store_msg_siblings(s, conv, u2, &ids, &k, &at, NULL), 0);
		T_ASSERT(k == 1 && at == 0 && ids[0] == u2);
		free(ids);
		T_EQ_INT(store_msg_siblings(s, conv, 99999, &ids, &k, &at, &cause), -1);
		T_ASSERT(ids == NULL && k == 0);
		T_STR_CONTAINS(cause, "no message 99999");
		free(cause);
		cause = NULL;
	}

	/* Editing the first question starts a new root. */
	u1b = store_msg_edit_user(s, conv, u1, "hi there", NULL);
	T_ASSERT(u1b > u2);
	T_EQ_INT(store_branch_load(s, conv, &m, &n, NULL), 0);
	T_ASSERT(n == 1 && m[0].id == u1b && m[0].n_siblings == 2 && m[0].sibling_index == 1);
	store_branch_free(m, n);
	/* Roots are siblings too (parent NULL): back to the old question's branch, whole. */
	T_EQ_INT(store_branch_switch(s, conv, u1b, -1, NULL), 0);
	snprintf(want, sizeof(want), "%lld %lld %lld", (long long)u1, (long long)a2, (long long)u2);
	T_ASSERT(strcmp(branch_ids(s, conv, buf, sizeof(buf)), want) == 0);
	{
		int64_t *ids = NULL;
		size_t k = 0, at = 9;

		T_EQ_INT(store_msg_siblings(s, conv, u1, &ids, &k, &at, NULL), 0);
		T_ASSERT(k == 2 && at == 0 && ids[1] == u1b);
		free(ids);
	}
	T_EQ_INT(store_branch_switch(s, conv, u1, +1, NULL), 0);
	snprintf(want, sizeof(want), "%lld", (long long)u1b);
	T_ASSERT(strcmp(branch_ids(s, conv, buf, sizeof(buf)), want) == 0);

	T_EQ_INT(store_msg_regenerate(s, conv, u1, "m", &cause), -1);
	T_STR_CONTAINS(cause, "is not an assistant message");
	T_EQ_INT(store_msg_edit_user(s, conv, a1, "x", &cause), -1);
	T_STR_CONTAINS(cause, "is not a user message");
	T_EQ_INT(store_msg_regenerate(s, conv + 1, a1, "m", &cause), -1);
	T_STR_CONTAINS(cause, "no message");
	T_EQ_INT(store_msg_finish(s, 12345, &r, &cause), -1);
	T_STR_CONTAINS(cause, "no message 12345");
	r.status = STORE_STREAMING;
	T_EQ_INT(store_msg_finish(s, a1, &r, &cause), -1);
	free(cause);
	store_close(s);
}

/* The model sees role and content; reasoning, unfinished and failed replies never. */
static void
test_chat_conversion(void)
{
	struct store_reply err = {
		"", NULL, STORE_ERROR, "out of memory", STORE_USAGE_UNKNOWN, NULL
	};
	struct store *s = open_ok(":memory:");
	struct store_message *m;
	struct chat_msg *cm;
	char *prompt, *cause = NULL;
	int64_t conv, id;
	size_t n, k;

	conv = store_conv_create(s, "m", NULL, NULL);
	make_turn(s, conv, "What is 2+2?", "4", "SECRET-REASONING adds two and two");
	T_ASSERT(store_msg_add_user(s, conv, "And 3+3?", NULL) > 0);
	id = store_msg_begin_assistant(s, conv, "m", NULL);
	T_EQ_INT(store_msg_finish(s, id, &err, NULL), 0);
	T_ASSERT(store_msg_add_user(s, conv, "Try again: 3+3?", NULL) > 0);
	T_ASSERT(store_msg_begin_assistant(s, conv, "m", NULL) > 0); /* streaming now */
	T_EQ_INT(store_branch_load(s, conv, &m, &n, NULL), 0);
	T_EQ_INT(n, 6);
	cm = store_branch_to_chat(m, n, "Be brief.", &k);
	T_EQ_INT(k, 5);
	if (k == 5) {
		T_ASSERT(strcmp(cm[0].role, "system") == 0 &&
			 strcmp(cm[0].content, "Be brief.") == 0);
		T_ASSERT(strcmp(cm[1].role, "user") == 0 &&
			 strcmp(cm[1].content, "What is 2+2?") == 0);
		T_ASSERT(strcmp(cm[2].role, "assistant") == 0 && strcmp(cm[2].content, "4") == 0);
		T_ASSERT(strcmp(cm[3].content, "And 3+3?") == 0);
		T_ASSERT(strcmp(cm[4].content, "Try again: 3+3?") == 0);
	}
	for (size_t i = 0; i < k; i++)
		T_ASSERT(cm[i].reasoning == NULL && cm[i].tool_calls_json == NULL);
	prompt = chat_template_render(cm, k, NULL, true, &cause);
	T_ASSERT(prompt != NULL);
	T_ASSERT(prompt != NULL && strstr(prompt, "SECRET-REASONING") == NULL);
	T_STR_CONTAINS(prompt, "What is 2+2?");
	free(prompt);
	free(cm);
	cm = store_branch_to_chat(m, n, NULL, &k);
	T_EQ_INT(k, 4);
	free(cm);
	store_branch_free(m, n);
	free(cause);
	store_close(s);
}

static size_t
count_hits(struct store *s, const char *query, int *rc)
{
	struct store_hit *h;
	char *cause = NULL;
	size_t n = 0;

	*rc = store_search(s, query, &h, &n, &cause);
	if (*rc != 0)
		fprintf(stderr, "search %s: %s\n", query, cause);
	store_hits_free(h, n);
	free(cause);
	return n;
}

static void
test_search(void)
{
	static const char *const hostile[] = {
		"\"",
		"\"\"",
		"AND",
		"OR",
		"NOT",
		"NEAR(",
		"NEAR(a b",
		"*",
		"-x",
		":",
		"a:b",
		"content:x",
		"(",
		")",
		"^",
		"{a b}",
		"c++ AND",
		"\"unterminated",
		"'",
		"\\",
		"+",
		"a AND OR b",
		"NEAR(\"x\" \"y\", 2)",
		"\xff\xfe",
		"🎉",
		"日本語",
		"\xe2\x80\x8b",
	};
	struct store *s = open_ok(":memory:");
	struct store_hit *h;
	char *q, *cause = NULL;
	int64_t c1, c2, content_hit;
	size_t n;
	int rc;

	q = store_fts_query("c++");
	T_ASSERT(q != NULL && strcmp(q, "\"c++\"") == 0);
	free(q);
	q = store_fts_query("  say \"hi\"\t-x ");
	T_ASSERT(q != NULL && strcmp(q, "\"say\" \"\"\"hi\"\"\" \"-x\"") == 0);
	free(q);
	T_ASSERT(store_fts_query(" \t\n ") == NULL);
	T_ASSERT(store_fts_query("") == NULL);

	c1 = store_conv_create(s, "m", NULL, NULL);
	c2 = store_conv_create(s, "m", NULL, NULL);
	T_EQ_INT(store_conv_rename(s, c2, "Coffee chat", NULL), 0);
	make_turn(s, c1, "Why is C++ template code hard?", "Because of foo-bar rules.",
		  "quokka appears in the reasoning only");
	content_hit = make_turn(s, c2, "I like café au lait", "A quokka would too.", NULL);
	make_turn(s, c2, "日本語のテキスト", "Ünïcödé", NULL);

	T_EQ_INT(count_hits(s, "cafe", &rc), 1);
	T_EQ_INT(count_hits(s, "CAFÉ", &rc), 1);
	T_EQ_INT(count_hits(s, "unicode", &rc), 1);
	T_EQ_INT(count_hits(s, "c++", &rc), 1);
	T_EQ_INT(count_hits(s, "foo-bar", &rc), 1);
	T_EQ_INT(count_hits(s, "template foo-bar", &rc), 0); /* words of two messages */
	T_EQ_INT(count_hits(s, "template code", &rc), 1);
	T_EQ_INT(count_hits(s, "", &rc), 0);
	T_EQ_INT(rc, 0);
	T_EQ_INT(count_hits(s, "   ", &rc), 0);
	T_EQ_INT(rc, 0);
	for (size_t i = 0; i < ARRAY_LEN(hostile); i++) {
		count_hits(s, hostile[i], &rc);
		if (rc != 0)
			fprintf(stderr, "hostile query %zu failed\n", i);
		T_EQ_INT(rc, 0);
	}
	T_EQ_INT(count_hits(s, "\"", &rc), 0);
	T_EQ_INT(count_hits(s, "*", &rc), 0);

	/* Content outranks reasoning; the snippet marks the word; the title falls back. */
	T_EQ_INT(store_search(s, "Quokka", &h, &n, &cause), 0);
	T_EQ_INT(n, 2);
	if (n == 2) {
		T_EQ_INT(h[0].msg_id, content_hit);
		T_EQ_INT(h[0].conv_id, c2);
		T_ASSERT(strcmp(h[0].title, "Coffee chat") == 0);
		T_STR_CONTAINS(h[0].snippet, STORE_MARK_START "quokka" STORE_MARK_END);
		T_EQ_INT(h[1].conv_id, c1);
		T_ASSERT(strcmp(h[1].title, "Why is C++ template code hard?") == 0);
		T_STR_CONTAINS(h[1].snippet, "reasoning");
	}
	store_hits_free(h, n);

	for (int i = 0; i < 60; i++)
		T_ASSERT(store_msg_add_user(s, c1, "bulk line\nwith a newline", NULL) > 0);
	T_EQ_INT(store_search(s, "bulk", &h, &n, &cause), 0);
	T_EQ_INT(n, 50);
	if (n > 0)
		T_ASSERT(strchr(h[0].snippet, '\n') == NULL);
	store_hits_free(h, n);
	free(cause);
	store_close(s);
}

static void
test_delete(void)
{
	char *path = tpath("delete.db"), *cause = NULL, *v;
	struct store *s = open_ok(path);
	int64_t keep, gone;
	int rc;

	keep = store_conv_create(s, "m", NULL, NULL);
	gone = store_conv_create(s, "m", NULL, NULL);
	make_turn(s, keep, "zebra one", "stripes", NULL);
	make_turn(s, gone, "zebra two", "zebra stripes", "zebra thoughts");
	T_ASSERT(store_msg_add_user(s, gone, "more", NULL) > 0);
	T_ASSERT(store_msg_regenerate(s, gone, store_msg_begin_assistant(s, gone, "m", NULL), "m",
				      NULL) > 0);
	T_EQ_INT(count_hits(s, "zebra", &rc), 3);
	T_EQ_INT(store_conv_delete(s, gone, NULL), 0);
	T_EQ_INT(count_hits(s, "zebra", &rc), 1);
	T_EQ_INT(count_hits(s, "thoughts", &rc), 0);
	T_EQ_INT(store_conv_delete(s, gone, &cause), -1);
	T_STR_CONTAINS(cause, "no conversation");
	store_close(s);
	T_EQ_INT(raw_int(path, "SELECT count(*) FROM message"), 2);
	v = raw_text(path, "PRAGMA integrity_check");
	T_ASSERT(v != NULL && strcmp(v, "ok") == 0);
	free(v);
	T_EQ_INT(raw_exec(path, "INSERT INTO message_fts(message_fts, rank)"
				" VALUES ('integrity-check', 1)"),
		 0);
	T_EQ_INT(raw_int(path, "PRAGMA foreign_key_check") == -999, 1); /* no rows */
	free(cause);
	free(path);
}

/* Ids of 0 and below mean "none" and "failed": a file that would hand them out is damaged. */
static void
test_damaged_ids(void)
{
	char *path = tpath("ids.db"), *cause = NULL;
	struct store_conv_item *it;
	struct store *s;
	size_t n;

	store_close(open_ok(path));
	T_EQ_INT(raw_exec(path, "INSERT INTO conversation(id, uuid, model) VALUES (-5, 'u', 'm')"),
		 0);
	s = open_ok(path);
	T_EQ_INT(store_conv_create(s, "m", NULL, &cause), -1);
	T_STR_CONTAINS(cause, "is damaged (new row id -4)");
	T_ASSERT(store_msg_add_user(s, -5, "hi", NULL) > 0); /* what is there stays usable */
	T_EQ_INT(store_conv_list(s, &it, &n, NULL), 0);
	T_EQ_INT(n, 1); /* the failed create was rolled back */
	store_conv_list_free(it, n);
	store_close(s);
	free(cause);
	free(path);
}

static int
count_str(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void
test_export(void)
{
	struct store_reply r = { "4", "Add them.", STORE_DONE, NULL, { 20, 0, 5, 3, -1, 80, 30 },
				 NULL };
	char *path = tpath("export.md"), *md, *js, *file, *cause = NULL;
	struct store *s = open_ok(":memory:");
	json_t *root, *msgs, *m1, *u;
	struct store_conv c;
	int64_t conv, id;

	conv = store_conv_create(s, "qwen3-next", "You are terse.", NULL);
	T_EQ_INT(store_conv_rename(s, conv, "Export test", NULL), 0);
	T_ASSERT(store_msg_add_user(s, conv, "What is 2+2?", NULL) > 0);
	id = store_msg_begin_assistant(s, conv, "qwen3-next", NULL);
	T_EQ_INT(store_msg_finish(s, id, &r, NULL), 0);
	T_ASSERT(store_msg_add_user(s, conv, "bad \xff byte", NULL) > 0);

	md = store_export(s, conv, STORE_MARKDOWN, &cause);
	T_ASSERT(md != NULL);
	T_STR_CONTAINS(md, "# Export test\n");
	T_STR_CONTAINS(md, "## System\n\nYou are terse.\n");
	T_STR_CONTAINS(md, "## User\n\nWhat is 2+2?\n");
	T_STR_CONTAINS(md, "## Assistant\n\n<details><summary>Thinking</summary>\n\nAdd them.\n\n"
			   "</details>\n\n4\n");
	T_STR_CONTAINS(md, "Model: qwen3-next");
	T_EQ_INT(count_str(md, "## User"), 2);
	T_EQ_INT(count_str(md, "## Assistant"), 1);

	js = store_export(s, conv, STORE_JSON, &cause);
	T_ASSERT(js != NULL);
	root = json_loads(js != NULL ? js : "", 0, NULL);
	T_ASSERT(json_is_object(root));
	T_EQ_INT(store_conv_get(s, conv, &c, NULL), 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(root, "uuid")), c.uuid) == 0);
	store_conv_release(&c);
	T_ASSERT(strcmp(json_string_value(json_object_get(root, "title")), "Export test") == 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(root, "model")), "qwen3-next") == 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(root, "system")), "You are terse.") == 0);
	T_ASSERT(json_integer_value(json_object_get(root, "created_at")) > 1600000000000LL);
	msgs = json_object_get(root, "messages");
	T_EQ_INT(json_array_size(msgs), 3);
	T_ASSERT(strcmp(json_string_value(json_object_get(json_array_get(msgs, 0), "role")),
			"user") == 0);
	T_ASSERT(json_object_get(json_array_get(msgs, 0), "reasoning_content") == NULL);
	m1 = json_array_get(msgs, 1);
	T_ASSERT(strcmp(json_string_value(json_object_get(m1, "role")), "assistant") == 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(m1, "content")), "4") == 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(m1, "reasoning_content")), "Add them.") ==
		 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(m1, "status")), "done") == 0);
	u = json_object_get(m1, "usage");
	T_EQ_INT(json_integer_value(json_object_get(u, "output_tokens")), 5);
	T_EQ_INT(json_integer_value(json_object_get(u, "cached_tokens")), 0);
	T_ASSERT(json_object_get(u, "prefill_ms") == NULL);
	T_STR_CONTAINS(json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
		       "bad \xef\xbf\xbd byte");
	json_decref(root);

	T_EQ_INT(store_export_file(s, conv, STORE_MARKDOWN, path, &cause), 0);
	file = read_file(path, NULL, NULL);
	T_ASSERT(file != NULL && md != NULL && strcmp(file, md) == 0);
	free(file);
	free(path);
	path = xasprintf("%s/no/such/dir/x.json", tmpdir);
	T_EQ_INT(store_export_file(s, conv, STORE_JSON, path, &cause), -1);
	T_STR_CONTAINS(cause, "cannot write");
	T_ASSERT(store_export(s, 999, STORE_JSON, &cause) == NULL);
	T_STR_CONTAINS(cause, "no conversation 999");
	free(md);
	free(js);
	free(path);
	free(cause);
	store_close(s);
}

/*
 * Text of a chat cannot forge the Markdown export's structure (issue 10):
 * a level 1-2 heading line is escaped outside code fences, details and
 * summary tags lose their '<'; a level 3 heading and a fenced "## User" are
 * left as they are.
 */
static void
test_export_forgery(void)
{
	struct store_reply r = { "## User\n\nforged\n\n### Fine\n\n```\n## User\n```",
				 "think </details> done\n# Top\n<SUMMARY>x",
				 STORE_DONE,
				 NULL,
				 { 20, 0, 5, 3, -1, 80, 30 },
				 NULL };
	struct store *s = open_ok(":memory:");
	char *md, *cause = NULL;
	int64_t conv, id;

	conv = store_conv_create(s, "qwen3-next", NULL, NULL);
	T_ASSERT(store_msg_add_user(s, conv, "  ## Assistant\nhi", NULL) > 0);
	id = store_msg_begin_assistant(s, conv, "qwen3-next", NULL);
	T_EQ_INT(store_msg_finish(s, id, &r, NULL), 0);
	md = store_export(s, conv, STORE_MARKDOWN, &cause);
	T_ASSERT(md != NULL);
	if (md == NULL)
		return;
	T_EQ_INT(count_str(md, "\n## User\n\n"), 1); /* the real one, not the fenced */
	T_EQ_INT(count_str(md, "\n## Assistant\n"), 1);
	T_STR_CONTAINS(md, "\\  ## Assistant\nhi");
	T_STR_CONTAINS(md, "\n\\## User\n\nforged\n\n### Fine\n\n```\n## User\n```");
	T_STR_CONTAINS(md, "think &lt;/details> done\n\\# Top\n&lt;SUMMARY>x\n\n</details>");
	T_EQ_INT(count_str(md, "</details>"), 1);
	free(md);
	free(cause);
	store_close(s);
}

/*
 * `qnext export` to a terminal shows a chat's control characters instead of
 * sending them (an OSC 2 would retitle the window); to a pipe it writes the
 * bytes as saved.  Runs the binary under script(1) on a database of its own.
 */
static void
test_export_terminal(void)
{
	const char *bin = getenv("QNEXT_BIN") ? getenv("QNEXT_BIN") : "./qnext";
	char *dir = xasprintf("%s/xdg", tmpdir), *db = xasprintf("%s/qnext/chats.db", dir);
	char *cmd, *log, *raw;
	struct store *s;
	int64_t conv;

	cmd = xasprintf("mkdir -p %s/qnext", dir);
	T_EQ_INT(system(cmd), 0);
	free(cmd);
	s = open_ok(db);
	conv = store_conv_create(s, "qwen3-next", NULL, NULL);
	T_ASSERT(store_msg_add_user(s, conv, "a \033]2;PWNED\a title \x7f \xc2\x9b", NULL) > 0);
	store_close(s);
	cmd = xasprintf("XDG_DATA_HOME=%s TERM=xterm script -qec '%s export %lld' %s/tty.log "
			"</dev/null >/dev/null 2>&1; XDG_DATA_HOME=%s %s export %lld >%s/pipe.md",
			dir, bin, (long long)conv, tmpdir, dir, bin, (long long)conv, tmpdir);
	T_EQ_INT(system(cmd), 0);
	free(cmd);
	cmd = xasprintf("%s/tty.log", tmpdir);
	log = read_file(cmd, NULL, NULL);
	free(cmd);
	cmd = xasprintf("%s/pipe.md", tmpdir);
	raw = read_file(cmd, NULL, NULL);
	T_ASSERT(log != NULL && raw != NULL);
	if (log != NULL && raw != NULL) {
		T_ASSERT(strstr(log, "\033]2;") == NULL);
		T_STR_CONTAINS(log, "a ^[]2;PWNED^G title ^? ?");
		T_STR_CONTAINS(raw, "a \033]2;PWNED\a title \x7f \xc2\x9b");
	}
	free(cmd);
	free(log);
	free(raw);
	free(db);
	free(dir);
}

/*
 * Processes that open one new database at the same moment: every one must
 * get a working store (issue 10, item 12: 12 of 300 racing starts once
 * read the half-made file as "not a qnext database").  ROUNDS rounds of
 * KIDS children released together by a pipe.
 */
static void
test_racing_create(void)
{
	enum { ROUNDS = 25, KIDS = 6 };
	int failed = 0;

	for (int r = 0; r < ROUNDS; r++) {
		char *path = xasprintf("%s/race-%d.db", tmpdir, r);
		int go[2];
		pid_t pids[KIDS];

		T_EQ_INT(pipe(go), 0);
		for (int k = 0; k < KIDS; k++) {
			if ((pids[k] = fork()) == 0) {
				struct store_options opt = { .busy_timeout_ms = 5000 };
				char c, *cause = NULL;
				struct store *st;

				close(go[1]);
				if (read(go[0], &c, 1) < 0)
					_exit(3);
				st = store_open_with(path, &opt, &cause);
				if (st == NULL)
					fprintf(stderr, "  racing open: %s\n", cause);
				else if (store_conv_create(st, "m", NULL, &cause) <= 0) {
					fprintf(stderr, "  racing write: %s\n", cause);
					st = NULL;
				}
				_exit(st == NULL);
			}
		}
		close(go[0]);
		close(go[1]); /* EOF releases every child at once */
		for (int k = 0; k < KIDS; k++) {
			int status = 0;

			waitpid(pids[k], &status, 0);
			failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		}
		free(path);
	}
	T_EQ_INT(failed, 0);
}

int
main(void)
{
	char *cmd;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_paths();
	test_create_and_reopen();
	test_refusals();
	test_migration_atomic();
	test_read_only();
	test_locked();
	test_racing_create();
	test_recovery();
	test_recovery_same_process();
	test_recovery_live(false);
	test_recovery_live(true);
	test_conversations();
	test_list_counts_branch();
	test_branches();
	test_chat_conversion();
	test_search();
	test_delete();
	test_damaged_ids();
	test_export();
	test_export_forgery();
	test_export_terminal();
	cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "test-store: could not remove %s\n", tmpdir);
	free(cmd);
	return t_done("test-store");
}
