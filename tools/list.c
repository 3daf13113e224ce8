/*
 * list.c - `qnext list`: the saved conversations, pinned first, then the
 * most recently active (see list.h).  Opens the store read-only and never
 * creates it.
 *
 * Exit status: 0 success (also when nothing is saved), 1 runtime error,
 * 2 usage error.  Main thread only.
 */
#include "list.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "subcmd.h"
#include "util.h"

static void
list_usage(FILE *f)
{
	subcmd_usage(f, "list");
	fprintf(f, "Print the saved conversations, pinned ones first, then the most recently\n"
		   "active: ID, last activity (local time), messages, title.  `qnext export ID`\n"
		   "prints one.  The database is $XDG_DATA_HOME/qnext/chats.db.\n");
}

/* A title on one line: the terminal must not act on its control characters. */
static void
put_title(const char *t)
{
	for (; *t != '\0'; t++)
		putchar((unsigned char)*t < 0x20 || *t == 0x7f ? ' ' : *t);
	putchar('\n');
}

static void
print_conv_list(const struct store_conv_item *it, size_t n)
{
	char when[32], digits[32];
	int w = 2;

	for (size_t i = 0; i < n; i++)
		w = MAX(w, snprintf(digits, sizeof(digits), "%lld", (long long)it[i].id));
	printf("%*s  %-16s  %5s  %s\n", w, "ID", "UPDATED", "MSGS", "TITLE");
	for (size_t i = 0; i < n; i++) {
		time_t t = (time_t)(it[i].updated_at / 1000);
		struct tm tm;

		if (localtime_r(&t, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm) == 0)
			snprintf(when, sizeof(when), "?");
		printf("%*lld  %-16s  %5lld  ", w, (long long)it[i].id, when,
		       (long long)it[i].n_messages);
		put_title(it[i].title);
	}
}

/* `qnext list`: the saved conversations, so `qnext export ID` can be used. */
int
list_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_conv_item *items = NULL;
	struct store *s = NULL;
	const struct store_options ro = { .read_only = true };
	char *path, *cause = NULL;
	size_t n = 0;
	int ch, rc = 1;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		list_usage(ch == 'h' ? stdout : stderr);
		return ch == 'h' ? 0 : 2;
	}
	if (subcmd_no_operands(argc, argv, list_usage) != 0)
		return 2;
	if ((path = store_default_path()) == NULL) {
		fprintf(stderr, "qnext: no home directory for the conversation database "
				"(set HOME or XDG_DATA_HOME)\n");
		return 1;
	}
	/* Listing must not create the database (store_open would). */
	if (access(path, F_OK) != 0) {
		fprintf(stderr, "qnext: no saved conversations (%s does not exist)\n", path);
		free(path);
		return 0;
	}
	if ((s = store_open_with(path, &ro, &cause)) == NULL ||
	    store_conv_list(s, &items, &n, &cause) != 0)
		goto done;
	if (n == 0)
		fprintf(stderr, "qnext: no saved conversations in %s\n", path);
	else
		print_conv_list(items, n);
	rc = 0;
done:
	if (cause != NULL)
		fprintf(stderr, "qnext: %s\n", cause);
	free(cause);
	free(path);
	store_conv_list_free(items, n);
	store_close(s);
	return rc;
}
