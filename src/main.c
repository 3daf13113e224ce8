/*
 * main.c - qnext's entry point: dispatch to a subcommand, or to the chat.
 *
 * To understand the engine, start at engine/forward.c; the loader is
 * engine/model.c, the reply loop engine/session.c.  Only main() (and the
 * functions it returns from) ends the process.
 */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "benchhw.h"
#include "cache.h"
#include "check.h"
#include "cli.h"
#include "dequant.h"
#include "kernels.h"
#include "mkmodel.h"
#include "plan.h"
#include "verify.h"

struct command {
	const char *name;
	int (*main)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "chat", cli_chat_main },
	{ "tokenize", cli_tokenize_main },
	{ "render", cli_render_main },
	{ "verify", verify_main },
	{ "bench", bench_main },
	{ "mkmodel", mkmodel_main },
	{ "which-model", cli_which_main },
	{ "export", cli_export_main },
	{ "list", cli_list_main },
	{ "cache", cache_main },
	{ "plan", plan_main },
	{ "bench-hw", benchhw_main },
	{ "check", check_main },
	{ "dequant", dequant_main },
};

int
main(int argc, char **argv)
{
	/* Wide characters on screen and in readline need the user's locale. */
	setlocale(LC_ALL, "");
	/* ...but numbers are read and written the C way (JSON, flags, figures). */
	setlocale(LC_NUMERIC, "C");
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("qnext %s (kernels: %s)\n", VERSION, kernels_get()->name);
		return 0;
	}
	for (size_t i = 0; argc >= 2 && i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].main(argc - 1, argv + 1);
	if (argc >= 2 && argv[1][0] != '-') {
		fprintf(stderr, "qnext: unknown command '%s'\n", argv[1]);
		cli_usage(stderr);
		return 2;
	}
	return cli_main(argc, argv);
}
