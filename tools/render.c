/*
 * render.c - `qnext render`: a conversation as JSON on stdin, the prompt
 * the built-in Qwen3 Thinking chat template renders for it on stdout (see
 * render.h), for comparing with the model's own Jinja template.
 *
 * Exit status: 0 success, 1 runtime error, 2 usage error.
 * Main thread only.
 */
#include "render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat-template.h"
#include "subcmd.h"
#include "util.h"

static void
render_usage(FILE *f)
{
	subcmd_usage(f, "render");
	fprintf(f, "Read {\"messages\": [...], \"tools\": [...]} on standard input and print the\n"
		   "prompt the Qwen3 Thinking chat template renders, generation prompt included.\n"
		   "  -m, --model DIR  accepted and ignored: the template is built in\n");
}

int
render_main(int argc, char **argv)
{
	const char *model;
	char *cause = NULL, *json, *out = NULL;
	size_t n;
	int rc = subcmd_model_only(argc, argv, render_usage, &model);

	if (rc >= 0)
		return rc;
	if ((json = read_fd(STDIN_FILENO, "stdin", READ_MAX_BIG, &n, &cause)) == NULL ||
	    chat_template_render_json(json, n, &out, &cause) != 0) {
		fprintf(stderr, "qnext: %s\n", cause);
		free(cause);
		free(json);
		return 1;
	}
	term_write(stdout, out, strlen(out));
	free(out);
	free(json);
	return 0;
}
