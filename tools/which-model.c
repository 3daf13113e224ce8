/*
 * which-model.c - `qnext which-model`: the model directory qnext would use
 * (see which-model.h), found as the chat finds it (paths.h).
 *
 * Exit status: 0 found, 1 none (the message says how to get one), 2 usage
 * error.  Main thread only.
 */
#include "which-model.h"

#include <stdio.h>
#include <stdlib.h>

#include "paths.h"
#include "subcmd.h"

static void
which_usage(FILE *f)
{
	subcmd_usage(f, "which-model");
	fprintf(f, "Print the model directory qnext would use: DIR, else $QNEXT_MODEL, else the\n"
		   "newest Hugging Face cache snapshot; exit 1 saying how to get one if none.\n"
		   "  -m, --model DIR  check this directory\n");
}

int
which_model_main(int argc, char **argv)
{
	const char *model;
	char *cause = NULL, *dir;
	int rc = subcmd_model_only(argc, argv, which_usage, &model);

	if (rc >= 0)
		return rc;
	if ((dir = paths_find_model(model, &cause)) == NULL) {
		fprintf(stderr, "qnext: %s\n", cause);
		free(cause);
		return 1;
	}
	puts(dir);
	free(dir);
	return 0;
}
