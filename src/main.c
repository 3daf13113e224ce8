/*
 * main.c - qnext's entry point: the table of subcommands, and the dispatch
 * to one of them or to the chat.
 *
 * To understand the engine, start at engine/forward.c; the loader is
 * engine/model.c, the reply loop engine/session.c.  Only main() (and the
 * functions it returns from) ends the process.
 *
 * Main thread only.
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "benchhw.h"
#include "cache.h"
#include "check.h"
#include "cli.h"
#include "dequant.h"
#include "export.h"
#include "kernels.h"
#include "list.h"
#include "log.h"
#include "mkmodel.h"
#include "plan.h"
#include "render.h"
#include "serve.h"
#include "subcmd.h"
#include "tokenize.h"
#include "verify.h"
#include "which-model.h"

/*
 * Every command: `qnext --help` prints these forms in this order, each
 * command's usage message its own, and the man page's SYNOPSIS shows the
 * same (tests/cli-help.sh).  A new subcommand is one row here; see
 * subcmd.h for the synopsis format.
 */
static const struct subcmd commands[] = {
	{ NULL, cli_main,
	  "[-v | -vv] [-m DIR] [-p PROMPT | -p -] [--system TEXT] [--messages FILE] [--temp X] "
	  "[--top-k N] "
	  "[--top-p X] [--min-p X] [--presence-penalty X] [--repeat-penalty X] [--seed N] "
	  "[--max-tokens N] [--think-budget N] [--ctx N] [--threads N] [--thinking] [-q] [--f32] "
	  "[--dry-run] [--raw] "
	  "[--expert-cache auto|off|SIZE] [--state-cache auto|off|SIZE] [--remote URL] "
	  "[--api-key KEY]\n"
	  "--version | --help" },
	{ "chat", cli_chat_main, "[--plain] [--raw] [-m DIR] [options]" },
	{ "serve", serve_main,
	  "[-m DIR] [--host ADDR] [--port N] [--api-key KEY] [--name NAME] [--queue N] "
	  "[--max-tokens N] [--ctx N] [--threads N] [--expert-cache auto|off|SIZE] "
	  "[--state-cache off|auto|SIZE] [-q]" },
	{ "list", list_main, "" },
	{ "export", export_main, "ID [--format md|json] [-o FILE]" },
	{ "tokenize", tokenize_main, "[-m DIR] < text" },
	{ "render", render_main, "[-m DIR] < conversation.json" },
	{ "which-model", which_model_main, "[-m DIR]" },
	{ "cache", cache_main, "list | clear | verify" },
	{ "verify", verify_main,
	  "--model DIR --golden FILE [--f32] [--hidden] [--tol X] [--min-top1 F] [--threads N] "
	  "[--isa scalar|avx2|avx512] [--kv-bits 16|32]\n"
	  "--model DIR --self [--tokens N] [--f32] [--tol X]\n"
	  "--model DIR --paths (--golden FILE | --self [--tokens N]) "
	  "[--float router,ba,shgate|all|none] [--max-kl X] [--max-hidden X]" },
	{ "bench", bench_main,
	  "-m DIR [--prompt N] [--gen N] [--reps N] [--threads N] [--context N] "
	  "[--kv-bits 16|32] [--f32] [--json] [--phases] [--expert-cache auto|off|SIZE]" },
	{ "plan", plan_main, "[-m DIR] [--ctx N] [--json]" },
	{ "bench-hw", benchhw_main, "[-m DIR] [--json | --markdown] [--threads N] [--measured X]" },
	{ "mkmodel", mkmodel_main,
	  "-o DIR [--experts N] [--layers N] [--hidden N] [--vocab N] [--shard-gb X] [--seed N] "
	  "[--router-skew S] [--tokenizer DIR] [--force]\n"
	  "-o DIR --tiny [--shard-gb X] [--force]" },
	{ "check", check_main, "[-m DIR] [--write] [--threads N] [-q]" },
	{ "dequant", dequant_main,
	  "-m DIR -o DIR [--dtype bf16|f16|f32] [--shard-gb X] [--force]" },
};

/*
 * Leading -v, -vv or --verbose (before any command or option of the chat):
 * remove them from argv and count them.  Only leading ones, so that an
 * option's value such as `--system -v` is never taken for the flag.
 */
static int
take_verbose(int *argc, char **argv)
{
	int v = 0;

	while (*argc >= 2) {
		const char *a = argv[1];

		if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
			v++;
		else if (strcmp(a, "-vv") == 0)
			v += 2;
		else
			break;
		memmove(argv + 1, argv + 2, (size_t)(*argc - 1) * sizeof(*argv));
		(*argc)--;
	}
	return v;
}

/* The log (-v, QNEXT_LOG); a log that cannot start is said once and not kept. */
static void
start_log(int verbose)
{
	char *cause = NULL;

	if (log_open_env(verbose, &cause) != 0) {
		fprintf(stderr, "qnext: %s\n", cause);
		free(cause);
	} else if (verbose > 0) {
		fprintf(stderr, "qnext: logging to %s\n", log_path());
	}
}

static int
dispatch(int argc, char **argv)
{
	const struct subcmd *c;

	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("qnext %s (kernels: %s)\n", VERSION, kernels_get()->name);
		return 0;
	}
	/* The default row gets the whole argv: its options follow "qnext". */
	if (argc < 2 || argv[1][0] == '-')
		return subcmd_find(NULL)->run(argc, argv);
	if ((c = subcmd_find(argv[1])) == NULL) {
		fprintf(stderr, "qnext: unknown command '%s'\n", argv[1]);
		subcmd_usage_all(stderr);
		return 2;
	}
	return c->run(argc - 1, argv + 1);
}

int
main(int argc, char **argv)
{
	int rc;

	/* Wide characters on screen and in readline need the user's locale. */
	setlocale(LC_ALL, "");
	/* ...but numbers are read and written the C way (JSON, flags, figures). */
	setlocale(LC_NUMERIC, "C");
	subcmd_table_set(commands, sizeof(commands) / sizeof(commands[0]));
	start_log(take_verbose(&argc, argv));
	log_info("command: %s", argc >= 2 && argv[1][0] != '-' ? argv[1] : "(chat or -p)");
	rc = dispatch(argc, argv);
	log_info("exit status %d", rc);
	log_close();
	return rc;
}
