/*
 * tokenize.c - `qnext tokenize`: text on stdin, its token ids as a JSON
 * array on stdout (see tokenize.h).  Only the model's tokenizer is loaded.
 *
 * Exit status: 0 success, 1 runtime error, 2 usage error.
 * Main thread only.
 */
#include "tokenize.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "paths.h"
#include "subcmd.h"
#include "tokenizer.h"
#include "util.h"

static void
tokenize_usage(FILE *f)
{
	subcmd_usage(f, "tokenize");
	fprintf(f, "Print the token ids of the text on standard input as a JSON array.\n"
		   "  -m, --model DIR  directory with tokenizer.json (default: the model\n"
		   "                   `qnext which-model` prints)\n");
}

int
tokenize_main(int argc, char **argv)
{
	const char *model;
	char *dir, *cause = NULL, *text;
	struct tokenizer *t = NULL;
	int32_t *ids = NULL;
	size_t n = 0;
	int rc = subcmd_model_only(argc, argv, tokenize_usage, &model);

	if (rc >= 0)
		return rc;
	rc = 1;
	if ((dir = paths_find_model(model, &cause)) == NULL ||
	    (t = tokenizer_load(dir, &cause)) == NULL)
		goto out;
	text = read_fd(STDIN_FILENO, "stdin", READ_MAX_BIG, &n, &cause);
	if (text == NULL || tokenizer_encode(t, text, n, &ids, &n, &cause) != 0) {
		free(text);
		goto out;
	}
	putchar('[');
	for (size_t i = 0; i < n; i++)
		printf("%s%d", i ? ", " : "", ids[i]);
	puts("]");
	free(text);
	rc = 0;
out:
	if (cause != NULL)
		fprintf(stderr, "qnext: %s\n", cause);
	free(cause);
	free(ids);
	free(dir);
	tokenizer_free(t);
	return rc;
}
