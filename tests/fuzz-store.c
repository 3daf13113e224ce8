/*
 * fuzz-store.c - libFuzzer harness for the conversation store (src/store.c).
 * The input is written as chats.db into a private temporary directory and
 * opened; a store that opens is listed, each listed conversation (a few) is
 * loaded, turned into chat messages and exported both ways, a few searches
 * run, and a turn is written, regenerated and deleted.  Every failure must
 * come with a cause.  Built by `make fuzz`; single-threaded.
 *
 * The seeds in tests/fuzz/fuzz-store/ were made with store_open and the
 * sqlite3 shell, VACUUMed with 512-byte pages to stay small: a store holding
 * a branched conversation with a streaming reply (and the same file in
 * rollback-journal mode), an empty file, a newer schema, another program's
 * file and a half-migrated one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat-template.h"
#include "store.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* GLOBAL: the temporary directory, made on the first input and removed at exit. */
static char *dir;

static const char *const queries[] = { "the", "c++ \"x", "NEAR( -a :b *", "café" };

/* A failure without a cause would leave the user guessing: treat it as a crash. */
static void
check(int failed, char **cause)
{
	if (failed && *cause == NULL)
		abort();
	free(*cause);
	*cause = NULL;
}

static void
remove_files(void)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal", "-live" };
	char *p;

	for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
		p = xasprintf("%s/chats.db%s", dir, suffixes[i]);
		unlink(p);
		free(p);
	}
}

static void
cleanup(void)
{
	remove_files();
	rmdir(dir);
	free(dir);
}

static void
read_conversation(struct store *s, int64_t id)
{
	struct store_conv c;
	struct store_message *m;
	struct chat_msg *cm;
	char *cause = NULL, *text;
	size_t n, k;
	int rc;

	rc = store_conv_get(s, id, &c, &cause);
	check(rc != 0, &cause);
	store_conv_release(&c);
	rc = store_branch_load(s, id, &m, &n, &cause);
	check(rc != 0, &cause);
	if (rc == 0) {
		cm = store_branch_to_chat(m, n, "system", &k);
		for (size_t i = 0; i < k; i++)
			if (cm[i].role == NULL || cm[i].content == NULL || cm[i].reasoning != NULL)
				abort();
		free(cm);
		if (n > 0) {
			rc = store_branch_switch(s, id, m[n - 1].id, -1, &cause);
			check(rc != 0, &cause);
		}
		store_branch_free(m, n);
	}
	for (int fmt = STORE_MARKDOWN; fmt <= STORE_JSON; fmt++) {
		text = store_export(s, id, (enum store_format)fmt, &cause);
		check(text == NULL, &cause);
		free(text);
	}
}

/* A turn written into whatever the file holds, then taken out again. */
static void
write_turn(struct store *s)
{
	struct store_reply r = { "answer", "thought", STORE_DONE, NULL, STORE_USAGE_UNKNOWN, NULL };
	char *cause = NULL;
	int64_t conv, id;

	conv = store_conv_create(s, "fuzz", "sys", &cause);
	check(conv < 0, &cause);
	if (conv < 0)
		return;
	check(store_msg_add_user(s, conv, "question", &cause) < 0, &cause);
	id = store_msg_begin_assistant(s, conv, "fuzz", &cause);
	check(id < 0, &cause);
	if (id > 0) {
		check(store_msg_finish(s, id, &r, &cause) != 0, &cause);
		id = store_msg_regenerate(s, conv, id, "fuzz", &cause);
		check(id < 0, &cause);
	}
	check(store_conv_delete(s, conv, &cause) != 0, &cause);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_options opt = { .busy_timeout_ms = 10 };
	struct store_conv_item *items;
	struct store_hit *hits;
	char *path, *cause = NULL;
	struct store *s;
	FILE *f;
	size_t n;
	int rc;

	if (dir == NULL) {
		/* tmpfs when there is one: SQLite syncs, and disk syncs would set the pace. */
		dir = xstrdup(access("/dev/shm", W_OK) == 0 ? "/dev/shm/fuzz-store-XXXXXX"
							    : "/tmp/fuzz-store-XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
		atexit(cleanup);
	}
	remove_files();
	path = xasprintf("%s/chats.db", dir);
	if ((f = fopen(path, "wb")) == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	s = store_open_with(path, &opt, &cause);
	check(s == NULL, &cause);
	free(path);
	if (s == NULL)
		return 0;
	rc = store_conv_list(s, &items, &n, &cause);
	check(rc != 0, &cause);
	for (size_t i = 0; rc == 0 && i < n && i < 4; i++)
		read_conversation(s, items[i].id);
	if (rc == 0)
		store_conv_list_free(items, n);
	for (size_t i = 0; i < ARRAY_LEN(queries); i++) {
		rc = store_search(s, queries[i], &hits, &n, &cause);
		check(rc != 0, &cause);
		store_hits_free(hits, n);
	}
	write_turn(s);
	store_close(s);
	return 0;
}
