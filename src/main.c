/*
 * main.c - qnext's entry point: dispatch to a subcommand.
 *
 * To understand the engine, start at engine/forward.c; the loader is
 * engine/model.c.  Only main() ends the process.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "kernels.h"
#include "mkmodel.h"
#include "verify.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: qnext verify --model DIR --golden FILE [--f32] [--hidden] [--tol X]\n"
		   "                    [--min-top1 F] [--threads N] [--isa TIER]\n"
		   "       qnext bench -m DIR [--prompt N] [--gen N] [--reps N] [--threads N] "
		   "[--f32] [--json]\n"
		   "       qnext mkmodel -o DIR [--experts N] [--layers N] [--hidden N] [--vocab N]\n"
		   "                    [--shard-gb X] [--seed N]\n"
		   "       qnext --version | --help\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("qnext %s (kernels: %s)\n", VERSION, kernels_get()->name);
		return 0;
	}
	if (strcmp(argv[1], "verify") == 0)
		return verify_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "bench") == 0)
		return bench_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "mkmodel") == 0)
		return mkmodel_main(argc - 1, argv + 1);
	fprintf(stderr, "qnext: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
