/*
 * subcmd.h - the row of the subcommand table and what every subcommand
 * shares: its usage forms, printed from the table, and the checks of its
 * arguments that print them.
 *
 * The table itself is main.c's (name, entry point, synopsis of every
 * command, in the order `qnext --help` lists them); main registers it with
 * subcmd_table_set before it runs a command, and the commands print their
 * usage through subcmd_usage, so the synopsis is written once.  tests/
 * cli-help.sh checks that the man page's SYNOPSIS shows the same forms.
 *
 * Main thread only.
 */
#ifndef QNEXT_SUBCMD_H
#define QNEXT_SUBCMD_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

struct subcmd {
	const char *name; /* argv[1]; NULL for `qnext [options]` (the chat, or one question) */
	int (*run)(int argc, char **argv); /* argv[0] is the name; returns the exit status */
	/*
	 * The usage forms after "qnext NAME", one per line, each unwrapped:
	 * "[-m DIR] [--json]\n--version | --help".  "" for a command without
	 * operands.
	 */
	const char *synopsis;
};

/* Prints a command's usage (its forms, then what it says about its options). */
typedef void subcmd_usage_fn(FILE *f);

/* Register the table (n rows, kept by reference); main() does it first. */
void subcmd_table_set(const struct subcmd *table, size_t n);

/* The row named name (NULL: the default row), or NULL when there is none. */
const struct subcmd *subcmd_find(const char *name);

/*
 * "usage: qnext NAME FORM" and the command's other forms under it, each
 * wrapped before 80 columns between bracketed groups.
 */
void subcmd_usage(FILE *f, const char *name);

/* Every command's forms, the default's first: `qnext --help`. */
void subcmd_usage_all(FILE *f);

/*
 * After getopt: 0 when no operands are left; else "qnext: unexpected
 * argument 'X'" and usage on stderr, and 2 (the status of a usage error).
 */
int subcmd_no_operands(int argc, char **argv, subcmd_usage_fn *usage);

/*
 * One option into opts: 0 to go on, 1 for --help, 2 for an unknown option
 * (usage follows), -1 for a bad value (the parser said why).
 */
typedef int subcmd_opt_fn(void *opts, int ch, const char *arg);

/*
 * The option loop of a command whose options are all parsed by one
 * subcmd_opt_fn: getopt_long over argv, then no operands allowed ("qnext
 * NAME: unexpected argument 'X'").  -1 to go on, else the exit status
 * after usage on stdout (--help, 0) or stderr (2).
 */
int subcmd_getopt(int argc, char **argv, const char *name, const char *shortopts,
		  const struct option *longopts, subcmd_opt_fn *parse, void *opts,
		  subcmd_usage_fn *usage);

/*
 * Option parsing for the commands that take only -m DIR (and --help):
 * -1 to go on with *model (OUT; NULL when not given), else the exit status
 * after usage on stdout (--help, 0) or stderr (2).
 */
int subcmd_model_only(int argc, char **argv, subcmd_usage_fn *usage, const char **model);

#endif
