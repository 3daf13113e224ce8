/*
 * subcmd.c - usage forms from the subcommand table (see subcmd.h).
 *
 * A form is stored on one line and wrapped here, between the groups that
 * are bracketed at the top level, so "[--top-k N]" never splits across
 * lines; a continued line starts under the first group.
 *
 * Main thread only.
 */
#include "subcmd.h"

#include <getopt.h>
#include <string.h>

#define USAGE_WIDTH 80 /* longest line printed */

/* GLOBAL: main()'s table, registered once before any command runs; read-only after. */
static const struct subcmd *table;
static size_t n_table;

void
subcmd_table_set(const struct subcmd *t, size_t n)
{
	table = t;
	n_table = n;
}

const struct subcmd *
subcmd_find(const char *name)
{
	for (size_t i = 0; i < n_table; i++) {
		const char *n = table[i].name;

		if (n == name || (n != NULL && name != NULL && strcmp(n, name) == 0))
			return &table[i];
	}
	return NULL;
}

/* Length of the group at s: up to the first space outside brackets. */
static size_t
group_len(const char *s, const char *end)
{
	const char *p = s;
	int depth = 0;

	for (; p < end && (*p != ' ' || depth > 0); p++)
		depth += (*p == '[' || *p == '(') - (*p == ']' || *p == ')');
	return (size_t)(p - s);
}

/* One form [s, end) after lead ("usage: qnext NAME"), wrapped. */
static void
put_form(FILE *f, const char *lead, const char *s, const char *end)
{
	size_t indent = strlen(lead) + 1, col = strlen(lead);

	fputs(lead, f);
	while (s < end) {
		size_t n = group_len(s, end);

		if (col + 1 + n > USAGE_WIDTH && col > indent) {
			fprintf(f, "\n%*s", (int)indent - 1, "");
			col = indent - 1;
		}
		fprintf(f, " %.*s", (int)n, s);
		col += 1 + n;
		s += n;
		while (s < end && *s == ' ')
			s++;
	}
	fputc('\n', f);
}

/* Every form of c; the first after "usage: " when first, else under it. */
static void
put_forms(FILE *f, const struct subcmd *c, int first)
{
	const char *s = c->synopsis;
	char lead[64];

	do {
		const char *eol = strchr(s, '\n');
		const char *end = eol != NULL ? eol : s + strlen(s);

		snprintf(lead, sizeof(lead), "%sqnext%s%s", first ? "usage: " : "       ",
			 c->name != NULL ? " " : "", c->name != NULL ? c->name : "");
		put_form(f, lead, s, end);
		first = 0;
		s = eol != NULL ? eol + 1 : end;
	} while (*s != '\0');
}

void
subcmd_usage(FILE *f, const char *name)
{
	const struct subcmd *c = subcmd_find(name);

	if (c != NULL)
		put_forms(f, c, 1);
	else /* no table (a test calling a command directly): the name alone */
		fprintf(f, "usage: qnext %s\n", name != NULL ? name : "");
}

void
subcmd_usage_all(FILE *f)
{
	for (size_t i = 0; i < n_table; i++)
		put_forms(f, &table[i], i == 0);
}

int
subcmd_getopt(int argc, char **argv, const char *name, const char *shortopts,
	      const struct option *longopts, subcmd_opt_fn *parse, void *opts,
	      subcmd_usage_fn *usage)
{
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if ((r = parse(opts, ch, optarg)) == 1) {
			usage(stdout);
			return 0;
		}
		if (r != 0) {
			if (r == 2)
				usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "qnext %s: unexpected argument '%s'\n", name, argv[optind]);
		usage(stderr);
		return 2;
	}
	return -1;
}

int
subcmd_no_operands(int argc, char **argv, subcmd_usage_fn *usage)
{
	if (optind == argc)
		return 0;
	fprintf(stderr, "qnext: unexpected argument '%s'\n", argv[optind]);
	usage(stderr);
	return 2;
}

int
subcmd_model_only(int argc, char **argv, subcmd_usage_fn *usage, const char **model)
{
	static const struct option mo[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*model = NULL;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "m:h", mo, NULL)) != -1) {
		if (ch == 'm')
			*model = optarg;
		else {
			usage(ch == 'h' ? stdout : stderr);
			return ch == 'h' ? 0 : 2;
		}
	}
	if (subcmd_no_operands(argc, argv, usage) != 0)
		return 2;
	return -1;
}
