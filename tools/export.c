/*
 * export.c - `qnext export ID`: a saved conversation from the store, read
 * only, as Markdown or JSON, to stdout or a file (see export.h).
 *
 * Exit status: 0 success, 1 runtime error, 2 usage error.
 * Main thread only.
 */
#include "export.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "subcmd.h"
#include "util.h"

static void
export_usage(FILE *f)
{
	subcmd_usage(f, "export");
	fprintf(f, "Print saved conversation ID (`qnext list` shows the IDs).\n"
		   "  -f, --format md|json  Markdown (default) or JSON\n"
		   "  -o, --output FILE     write to FILE instead of standard output\n");
}

int
export_main(int argc, char **argv)
{
	static const struct option eo[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = "md", *out = NULL;
	char *path, *cause = NULL, *text = NULL, *end;
	struct store *s = NULL;
	const struct store_options ro = { .read_only = true };
	long long id;
	int ch, rc = 1;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "f:o:h", eo, NULL)) != -1) {
		if (ch == 'f')
			fmt = optarg;
		else if (ch == 'o')
			out = optarg;
		else {
			export_usage(ch == 'h' ? stdout : stderr);
			return ch == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1 || (id = strtoll(argv[optind], &end, 10)) <= 0 || *end != '\0' ||
	    (strcmp(fmt, "md") != 0 && strcmp(fmt, "json") != 0)) {
		fprintf(stderr, "qnext: export needs a conversation id and --format md or json\n");
		return 2;
	}
	path = store_default_path();
	if (path == NULL)
		cause = xstrdup("no home directory for the conversation database "
				"(set HOME or XDG_DATA_HOME)");
	else if (access(path, F_OK) != 0)
		cause = xasprintf("no saved conversations (%s does not exist)", path);
	if (cause != NULL || (s = store_open_with(path, &ro, &cause)) == NULL ||
	    (text = store_export(s, id, fmt[0] == 'j' ? STORE_JSON : STORE_MARKDOWN, &cause)) ==
		    NULL)
		goto done;
	if (out == NULL)
		term_write(stdout, text, strlen(text));
	else if (store_export_file(s, id, fmt[0] == 'j' ? STORE_JSON : STORE_MARKDOWN, out,
				   &cause) != 0)
		goto done;
	rc = 0;
done:
	if (cause != NULL)
		fprintf(stderr, "qnext: %s\n", cause);
	free(cause);
	free(text);
	free(path);
	store_close(s);
	return rc;
}
