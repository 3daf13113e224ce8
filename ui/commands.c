/*
 * commands.c - slash-command parsing, Tab completion and help.
 *
 * Three tables drive everything: the command names (aliases are rows of
 * their own), the /set parameters with their ranges, and the keyword lists
 * of the commands that take one (/show, /think, /export, /copy).  Parsing
 * looks the first word up, then hands the rest of the line to a small
 * per-command function.  Completion uses the same tables, so a new row is
 * parsed and completed at once; the help text is written out by hand and a
 * test checks that it names every row.
 *
 * Pure functions; any thread (used by the UI thread).
 */
#include "commands.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sampler.h"
#include "util.h"

#define QUOTE_MAX 40 /* at most this much of the user's text is echoed in a cause */
#define SEED_MAX  ((double)SAMPLER_SEED_MAX) /* 2^53 - 1: every seed a double holds exactly */
#define WHOLE_MAX 2147483647.0

static const char *const show_words[] = { "params", "system", "model", "stats", NULL };
static const char *const think_words[] = { "show", "hide", NULL };
static const char *const format_words[] = { "md", "json", NULL };
static const char *const copy_words[] = { "last", "all", "code", NULL };

static const struct command_def {
	const char *name; /* without the '/' */
	enum command_id id;
	const char *const *words; /* first-argument keywords to complete, or NULL */
} command_defs[] = {
	{ "help", CMD_HELP, NULL }, /* completes command names */
	{ "?", CMD_HELP, NULL },
	{ "new", CMD_NEW, NULL },
	{ "clear", CMD_NEW, NULL },
	{ "regen", CMD_REGEN, NULL },
	{ "edit", CMD_EDIT, NULL },
	{ "system", CMD_SYSTEM, NULL },
	{ "set", CMD_SET, NULL }, /* completes parameter names */
	{ "show", CMD_SHOW, show_words },
	{ "think", CMD_THINK, think_words },
	{ "chats", CMD_CHATS, NULL },
	{ "search", CMD_SEARCH, NULL },
	{ "rename", CMD_RENAME, NULL },
	{ "delete", CMD_DELETE, NULL },
	{ "export", CMD_EXPORT, format_words },
	{ "copy", CMD_COPY, copy_words },
	{ "quit", CMD_QUIT, NULL },
	{ "exit", CMD_QUIT, NULL },
	{ "bye", CMD_QUIT, NULL },
	{ "continue", CMD_CONTINUE, NULL },
	{ "drop", CMD_DROP, NULL },
	{ "compact", CMD_COMPACT, NULL },
	{ "model", CMD_MODEL, NULL },
};

static const struct param_def {
	const char *name;
	enum command_param param;
	double min, max;
	bool min_open;     /* the value must be above min, not equal to it */
	bool whole;        /* a whole number */
	const char *range; /* the range in words, for the error message */
} param_defs[] = {
	{ "temp", PARAM_TEMP, 0, 5, false, false, "0 to 5" },
	{ "top_p", PARAM_TOP_P, 0, 1, false, false, "0 to 1" },
	{ "top_k", PARAM_TOP_K, 0, WHOLE_MAX, false, true, "0 or more" },
	{ "min_p", PARAM_MIN_P, 0, 1, false, false, "0 to 1" },
	{ "seed", PARAM_SEED, -1, SEED_MAX, false, true,
	  "-1 (a fresh one per answer) or 0 to 2^53-1" },
	{ "max_tokens", PARAM_MAX_TOKENS, 1, WHOLE_MAX, false, true, "1 or more" },
	{ "presence", PARAM_PRESENCE, -2, 2, false, false, "-2 to 2" },
	{ "repeat", PARAM_REPEAT, 0, 10, true, false, "above 0, up to 10" },
	{ "think_budget", PARAM_THINK_BUDGET, 0, WHOLE_MAX, false, true,
	  "0 or off (no limit), or more" },
	{ "mouse", PARAM_MOUSE, 0, 1, false, true, "on or off" },
	{ "markdown", PARAM_MARKDOWN, 0, 1, false, true, "on or off" },
};

/* Other spellings /set accepts (not completed, so the list stays short). */
static const struct {
	const char *name;
	enum command_param param;
} param_aliases[] = {
	{ "temperature", PARAM_TEMP },
	{ "presence_penalty", PARAM_PRESENCE },
	{ "repeat_penalty", PARAM_REPEAT },
	{ "repetition_penalty", PARAM_REPEAT },
};

#define PARAM_LIST                                                                             \
	"temp, top_p, top_k, min_p, seed, max_tokens, presence, repeat, think_budget, mouse, " \
	"markdown"

/* ---- words ---- */

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A word of the line: where it starts and how long it is. */
struct word {
	const char *s;
	size_t len;
};

/* The next blank-separated word at *p, advancing *p past it; len 0 at the end. */
static struct word
next_word(const char **p)
{
	struct word w;
	const char *s = *p;

	while (is_space(*s))
		s++;
	w.s = s;
	while (*s != '\0' && !is_space(*s))
		s++;
	w.len = (size_t)(s - w.s);
	*p = s;
	return w;
}

static bool
word_is(struct word w, const char *name)
{
	return strlen(name) == w.len && strncasecmp(w.s, name, w.len) == 0;
}

/* The rest of the line with the blanks at both ends cut off; len 0 when none. */
static struct word
rest_of(const char *p)
{
	struct word w;
	size_t n;

	while (is_space(*p))
		p++;
	n = strlen(p);
	while (n > 0 && is_space(p[n - 1]))
		n--;
	w.s = p;
	w.len = n;
	return w;
}

static char *
word_dup(struct word w)
{
	char *s = xmalloc(w.len + 1);

	memcpy(s, w.s, w.len);
	s[w.len] = '\0';
	return s;
}

/* Index of w in a NULL-terminated keyword list, or -1. */
static int
keyword(struct word w, const char *const *words)
{
	for (int i = 0; words[i] != NULL; i++)
		if (word_is(w, words[i]))
			return i;
	return -1;
}

/* ---- lookups ---- */

static const struct command_def *
find_command(struct word w)
{
	for (size_t i = 0; i < ARRAY_LEN(command_defs); i++)
		if (word_is(w, command_defs[i].name))
			return &command_defs[i];
	return NULL;
}

static const struct param_def *
find_param(struct word w)
{
	for (size_t i = 0; i < ARRAY_LEN(param_defs); i++)
		if (word_is(w, param_defs[i].name))
			return &param_defs[i];
	for (size_t i = 0; i < ARRAY_LEN(param_aliases); i++)
		if (word_is(w, param_aliases[i].name))
			return &param_defs[param_aliases[i].param];
	return NULL;
}

const char *
commands_name(enum command_id id)
{
	static const char *const names[] = {
		[CMD_HELP] = "/help",     [CMD_NEW] = "/new",         [CMD_REGEN] = "/regen",
		[CMD_SYSTEM] = "/system", [CMD_SET] = "/set",         [CMD_SHOW] = "/show",
		[CMD_THINK] = "/think",   [CMD_CHATS] = "/chats",     [CMD_SEARCH] = "/search",
		[CMD_RENAME] = "/rename", [CMD_DELETE] = "/delete",   [CMD_EXPORT] = "/export",
		[CMD_COPY] = "/copy",     [CMD_QUIT] = "/quit",       [CMD_CONTINUE] = "/continue",
		[CMD_DROP] = "/drop",     [CMD_COMPACT] = "/compact", [CMD_EDIT] = "/edit",
		[CMD_MODEL] = "/model",
	};

	if ((size_t)id >= ARRAY_LEN(names) || names[id] == NULL)
		return "/?";
	return names[id];
}

const char *
commands_param_name(enum command_param p)
{
	if ((size_t)p >= ARRAY_LEN(param_defs))
		return "?";
	return param_defs[p].name;
}

/* ---- parsing, one function per kind of argument ---- */

/* A number as the user typed it: the whole word, finite. */
static int
parse_number(struct word w, double *v)
{
	char buf[64], *end;

	if (w.len == 0 || w.len >= sizeof(buf))
		return -1;
	memcpy(buf, w.s, w.len);
	buf[w.len] = '\0';
	*v = strtod(buf, &end);
	return *end == '\0' && isfinite(*v) ? 0 : -1;
}

/* Check and store a /set value. */
static int
parse_value(const struct param_def *pd, const char *what, struct word w, double *v, char **cause)
{
	if (w.len == 0)
		return cause_set(cause, "%s: expected a value (%s)", what, pd->range);
	if (parse_number(w, v) == -1)
		return cause_set(cause, "%s: expected %s, got '%.*s'", what,
				 pd->whole ? "a whole number" : "a number",
				 (int)MIN(w.len, QUOTE_MAX), w.s);
	if (pd->whole && *v != floor(*v))
		return cause_set(cause, "%s: expected a whole number, got '%.*s'", what,
				 (int)MIN(w.len, QUOTE_MAX), w.s);
	if (*v < pd->min || *v > pd->max || (pd->min_open && *v == pd->min))
		return cause_set(cause, "%s: %.*s is out of range (%s)", what,
				 (int)MIN(w.len, QUOTE_MAX), w.s, pd->range);
	if (*v == 0.0)
		*v = 0.0; /* no -0 */
	return 0;
}

static int
no_more(const char *p, const char *what, char **cause)
{
	struct word w = next_word(&p);

	if (w.len == 0)
		return 0;
	return cause_set(cause, "%s: unexpected '%.*s'", what, (int)MIN(w.len, QUOTE_MAX), w.s);
}

static int
parse_set(const char *p, struct command *c, char **cause)
{
	struct word name = next_word(&p), value;
	const struct param_def *pd;
	char what[64];

	if (word_is(name, "--save")) {
		c->save = true;
		name = next_word(&p);
	}
	if (name.len == 0)
		return cause_set(cause, "/set: expected a parameter and a value; parameters: %s",
				 PARAM_LIST);
	if ((pd = find_param(name)) == NULL)
		return cause_set(cause, "/set: unknown parameter '%.*s'; parameters: %s",
				 (int)MIN(name.len, QUOTE_MAX), name.s, PARAM_LIST);
	snprintf(what, sizeof(what), "/set %s", pd->name);
	value = next_word(&p);
	if (pd->param == PARAM_THINK_BUDGET && word_is(value, "off"))
		value = (struct word){ "0", 1 };
	/* on and off are the switches' words; 1 and 0 work too. */
	if ((pd->param == PARAM_MOUSE || pd->param == PARAM_MARKDOWN) &&
	    (word_is(value, "on") || word_is(value, "off"))) {
		c->value = word_is(value, "on") ? 1 : 0;
		c->param = pd->param;
		return no_more(p, what, cause);
	}
	if (parse_value(pd, what, value, &c->value, cause) == -1)
		return -1;
	c->param = pd->param;
	return no_more(p, what, cause);
}

/* An optional keyword from words; *index gets -1 when there is none. */
static int
parse_keyword(const char *p, const char *what, const char *const *words, const char *expect,
	      int *index, const char **rest, char **cause)
{
	struct word w = next_word(&p);

	*rest = p;
	*index = -1;
	if (w.len == 0)
		return 0;
	if ((*index = keyword(w, words)) == -1)
		return cause_set(cause, "%s: expected %s, got '%.*s'", what, expect,
				 (int)MIN(w.len, QUOTE_MAX), w.s);
	return 0;
}

static int
parse_show(const char *p, struct command *c, char **cause)
{
	static const enum command_show map[] = { SHOW_PARAMS, SHOW_SYSTEM, SHOW_MODEL, SHOW_STATS };
	int i;

	if (parse_keyword(p, "/show", show_words, "params, system, model or stats", &i, &p,
			  cause) == -1)
		return -1;
	c->show = i == -1 ? SHOW_PARAMS : map[i];
	return no_more(p, "/show", cause);
}

static int
parse_think(const char *p, struct command *c, char **cause)
{
	static const enum command_think map[] = { THINK_SHOW, THINK_HIDE };
	int i;

	if (parse_keyword(p, "/think", think_words, "show or hide", &i, &p, cause) == -1)
		return -1;
	c->think = i == -1 ? THINK_TOGGLE : map[i];
	return no_more(p, "/think", cause);
}

static int
parse_copy(const char *p, struct command *c, char **cause)
{
	static const enum command_copy map[] = { COPY_LAST, COPY_ALL, COPY_CODE };
	int i;

	if (parse_keyword(p, "/copy", copy_words, "last, all or code", &i, &p, cause) == -1)
		return -1;
	c->copy = i == -1 ? COPY_LAST : map[i];
	return no_more(p, "/copy", cause);
}

/* EXPORT_MD or EXPORT_JSON for a format word, -1 for anything else. */
static int
parse_format(struct word w)
{
	if (word_is(w, "md") || word_is(w, "markdown"))
		return EXPORT_MD;
	if (word_is(w, "json"))
		return EXPORT_JSON;
	return -1;
}

static bool
ends_with(struct word w, const char *suffix)
{
	size_t n = strlen(suffix);

	return w.len >= n && strncasecmp(w.s + w.len - n, suffix, n) == 0;
}

/*
 * /export [md|json] [path]: a first word with a '.' or '/' in it is already
 * the path, and then its extension names the format.
 */
static int
parse_export(const char *p, struct command *c, char **cause)
{
	const char *after = p;
	struct word w = next_word(&after), path;
	int f = parse_format(w);

	if (f != -1) {
		c->format = (enum command_format)f;
		p = after;
	} else if (w.len > 0 && memchr(w.s, '.', w.len) == NULL &&
		   memchr(w.s, '/', w.len) == NULL) {
		return cause_set(cause, "/export: expected md or json, got '%.*s'",
				 (int)MIN(w.len, QUOTE_MAX), w.s);
	}
	path = rest_of(p); /* a path may hold blanks */
	if (path.len > 0) {
		c->path = word_dup(path);
		if (f == -1)
			c->format = ends_with(path, ".json") ? EXPORT_JSON : EXPORT_MD;
	}
	return 0;
}

/* /drop [N]: how many of the oldest turns, 1 when not given. */
static int
parse_drop(const char *p, struct command *c, char **cause)
{
	static const struct param_def turns = { "N", 0, 1, WHOLE_MAX, false, true, "1 or more" };
	struct word w = next_word(&p);

	c->value = 1;
	if (w.len > 0 && parse_value(&turns, "/drop", w, &c->value, cause) == -1)
		return -1;
	return no_more(p, "/drop", cause);
}

/* /system text: """...""" may wrap text over several lines, and "" clears. */
static int
parse_system(const char *p, struct command *c, char **cause)
{
	struct word t = rest_of(p);

	if (t.len == 0)
		return 0;
	if (t.len >= 3 && strncmp(t.s, "\"\"\"", 3) == 0) {
		if (t.len < 6 || strncmp(t.s + t.len - 3, "\"\"\"", 3) != 0)
			return cause_set(cause, "/system: missing the closing \"\"\"");
		t.s += 3;
		t.len -= 6;
		while (t.len > 0 && is_space(t.s[0])) {
			t.s++;
			t.len--;
		}
		while (t.len > 0 && is_space(t.s[t.len - 1]))
			t.len--;
	} else if (t.len == 2 && strncmp(t.s, "\"\"", 2) == 0) {
		t.len = 0;
	}
	c->arg = word_dup(t);
	return 0;
}

/* /edit [N]: an optional whole number from 1 (which of the user's messages). */
static int
parse_edit(const char *p, struct command *c, char **cause)
{
	struct word w = next_word(&p);
	double v;

	if (w.len == 0)
		return 0;
	if (parse_number(w, &v) == -1 || v != floor(v) || v < 1 || v > WHOLE_MAX)
		return cause_set(cause,
				 "/edit: expected the number of one of your messages, got '%.*s'",
				 (int)MIN(w.len, QUOTE_MAX), w.s);
	c->number = (int)v;
	return no_more(p, "/edit", cause);
}

/* The text after a command into arg; expect NULL makes it optional. */
static int
parse_text(const char *p, struct command *c, const char *what, const char *expect, char **cause)
{
	struct word t = rest_of(p);

	if (t.len == 0)
		return expect == NULL ? 0 : cause_set(cause, "%s: expected %s", what, expect);
	c->arg = word_dup(t);
	return 0;
}

int
commands_parse(const char *line, struct command *out, char **cause)
{
	const struct command_def *def;
	const char *p = line;
	struct word w;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	while (*p == ' ' || *p == '\t')
		p++;
	if (p[0] != '/' || p[1] == '/')
		return 1;
	p++;
	if (*p == '\0' || is_space(*p))
		return cause_set(cause, "a command name must follow '/'; /help lists them");
	w = next_word(&p);
	if ((def = find_command(w)) == NULL)
		return cause_set(cause, "unknown command /%.*s; /help lists them",
				 (int)MIN(w.len, QUOTE_MAX), w.s);
	out->id = def->id;
	switch (def->id) {
	case CMD_HELP:
		w = rest_of(p);
		if (w.len > 0) {
			if (w.s[0] == '/' && w.len > 1) {
				w.s++;
				w.len--;
			}
			out->arg = word_dup(w);
		}
		break;
	case CMD_SYSTEM:
		rc = parse_system(p, out, cause);
		break;
	case CMD_SET:
		rc = parse_set(p, out, cause);
		break;
	case CMD_SHOW:
		rc = parse_show(p, out, cause);
		break;
	case CMD_THINK:
		rc = parse_think(p, out, cause);
		break;
	case CMD_SEARCH:
		rc = parse_text(p, out, "/search", "a query", cause);
		break;
	case CMD_RENAME:
		rc = parse_text(p, out, "/rename", NULL, cause);
		break;
	case CMD_EXPORT:
		rc = parse_export(p, out, cause);
		break;
	case CMD_COPY:
		rc = parse_copy(p, out, cause);
		break;
	case CMD_MODEL:
		rc = parse_text(p, out, "/model", NULL, cause);
		break;
	case CMD_EDIT:
		rc = parse_edit(p, out, cause);
		break;
	case CMD_DROP:
		rc = parse_drop(p, out, cause);
		break;
	case CMD_CONTINUE:
	case CMD_COMPACT:
	case CMD_NEW:
	case CMD_REGEN:
	case CMD_CHATS:
	case CMD_DELETE:
	case CMD_QUIT:
		if (rest_of(p).len > 0)
			rc = cause_set(cause, "%s takes no arguments", commands_name(def->id));
		break;
	}
	if (rc == -1)
		command_free(out);
	return rc;
}

void
command_free(struct command *c)
{
	if (c == NULL)
		return;
	free(c->arg);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

/* ---- completion ---- */

/* Candidates, kept from v[1] on so v[0] is free for readline's substitution text. */
struct list {
	char **v;
	size_t n, cap; /* n counts the candidates, cap the slots */
};

static void
list_add(struct list *l, const char *s)
{
	if (l->n + 3 > l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[++l->n] = xstrdup(s);
	l->v[l->n + 1] = NULL;
}

/* Add prefix + name when it starts with the word being completed. */
static void
add_match(struct list *l, struct word w, const char *prefix, const char *name)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%s%s", prefix, name);
	if (strlen(buf) >= w.len && strncasecmp(buf, w.s, w.len) == 0)
		list_add(l, buf);
}

static int
compare_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Readline's form: one candidate moves to v[0]; several are sorted after
 * v[0] = the prefix they share.
 */
static char **
list_finish(struct list *l)
{
	size_t k;

	if (l->n == 0)
		return NULL;
	if (l->n == 1) {
		l->v[0] = l->v[1];
		l->v[1] = NULL;
		return l->v;
	}
	qsort(l->v + 1, l->n, sizeof(*l->v), compare_str);
	for (k = 0; l->v[1][k] != '\0'; k++) {
		size_t i;

		for (i = 2; i <= l->n && l->v[i][k] == l->v[1][k]; i++)
			;
		if (i <= l->n)
			break;
	}
	l->v[0] = xmalloc(k + 1);
	memcpy(l->v[0], l->v[1], k);
	l->v[0][k] = '\0';
	return l->v;
}

/* Count the words in line[0..end) and return the first one. */
static int
words_before(const char *line, int end, struct word *first)
{
	const char *p = line, *stop = line + end;
	int n = 0;

	first->s = line;
	first->len = 0;
	for (;;) {
		struct word w;

		while (p < stop && is_space(*p))
			p++;
		if (p >= stop)
			return n;
		w.s = p;
		while (p < stop && !is_space(*p))
			p++;
		w.len = (size_t)(p - w.s);
		if (n++ == 0)
			*first = w;
	}
}

/* The command the line starts with, when the cursor word is its n-th argument. */
static const struct command_def *
command_of(const char *line, int start, int *n)
{
	struct word first;

	*n = words_before(line, start, &first);
	if (*n == 0 || first.len < 2 || first.s[0] != '/')
		return NULL;
	first.s++;
	first.len--;
	return find_command(first);
}

char **
commands_complete(const char *line, int start)
{
	struct list l = { NULL, 0, 0 };
	const struct command_def *def;
	struct word w;
	int n;

	if (start < 0 || (size_t)start > strlen(line))
		return NULL;
	w.s = line + start;
	for (w.len = 0; w.s[w.len] != '\0' && !is_space(w.s[w.len]); w.len++)
		;
	def = command_of(line, start, &n);
	if (n == 0) {
		if (w.len > 0 && w.s[0] != '/')
			return NULL; /* a message */
		for (size_t i = 0; i < ARRAY_LEN(command_defs); i++)
			add_match(&l, w, "/", command_defs[i].name);
		return list_finish(&l);
	}
	if (def == NULL || n != 1)
		return NULL;
	if (def->id == CMD_SET) {
		for (size_t i = 0; i < ARRAY_LEN(param_defs); i++)
			add_match(&l, w, "", param_defs[i].name);
	} else if (def->id == CMD_HELP) {
		for (size_t i = 0; i < ARRAY_LEN(command_defs); i++)
			if (command_defs[i].name[0] != '?')
				add_match(&l, w, "", command_defs[i].name);
	} else if (def->words != NULL) {
		for (size_t i = 0; def->words[i] != NULL; i++)
			add_match(&l, w, "", def->words[i]);
	}
	return list_finish(&l);
}

bool
commands_complete_path(const char *line, int start)
{
	const struct command_def *def;
	const char *p = line;
	int n;

	if (start < 0 || (size_t)start > strlen(line))
		return false;
	if ((def = command_of(line, start, &n)) == NULL || def->id != CMD_EXPORT || n != 2)
		return false;
	next_word(&p); /* /export */
	return parse_format(next_word(&p)) != -1;
}

void
commands_complete_free(char **list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; list[i] != NULL; i++)
		free(list[i]);
	free(list);
}

/* ---- help ---- */

const char *
commands_help(void)
{
	return "Commands (Tab completes them; // starts a message with a slash):\n"
	       "  /help [command], /?     this help\n"
	       "  /new, /clear            start a new chat (the old one stays in /chats)\n"
	       "  /regen                  regenerate the last answer\n"
	       "  /edit [N]               edit your last message (N: your N-th) and send it\n"
	       "                          as a new branch; Ctrl-X Left/Right switch branches\n"
	       "  /continue               go on with the last answer (stopped, or cut off\n"
	       "                          by max_tokens) in the same entry\n"
	       "  /drop [N]               leave the N oldest turns (default 1) out of what\n"
	       "                          the model sees; the system prompt stays\n"
	       "  /compact                the model summarizes this chat, and a new chat\n"
	       "                          starts with the summary as its system prompt\n"
	       "  /system [text]          show the system prompt, or set it for this chat;\n"
	       "                          \"\" clears it, \"\"\"...\"\"\" spans lines\n"
	       "  /set [--save] <param> <value>\n"
	       "                          change a setting for this chat; --save also\n"
	       "                          writes it to the settings file for next time:\n"
	       "      temp 0-5, top_p 0-1, top_k >= 0 (0 = off), min_p 0-1,\n"
	       "      seed 0 to 2^53-1 (-1 = a fresh one per answer, the default),\n"
	       "      max_tokens >= 1, presence -2 to 2 (0 = off),\n"
	       "      repeat (repetition penalty) > 0 up to 10 (1 = off),\n"
	       "      think_budget: reasoning tokens, then the answer (0 or off = no limit)\n"
	       "      mouse on|off, markdown on|off (off: answers as written, as --raw)\n"
	       "  /show [params|system|model|stats]\n"
	       "                          show the settings and where each came from\n"
	       "                          (default), the system prompt, the model, or the\n"
	       "                          last turn's speed figures\n"
	       "  /model [N|DIR]          list the models found (size, will it fit), or\n"
	       "                          load the N-th of the list or the one in DIR\n"
	       "  /think [show|hide]      show or hide the reasoning (no argument: toggle)\n"
	       "  /chats                  browse past chats\n"
	       "  /search <query>         search all chats\n"
	       "  /rename [title]         rename this chat (asks when no title is given)\n"
	       "  /delete                 delete this chat (asks first)\n"
	       "  /export [md|json] [path]\n"
	       "                          save this chat as Markdown (default) or JSON;\n"
	       "                          a path ending in .json picks JSON\n"
	       "  /copy [last|all|code]   copy the last answer (default), the whole chat,\n"
	       "                          or the last code block\n"
	       "  /quit, /exit, /bye      quit\n";
}

/* Does the help line `line` (a block's first) name /name[0..n)? */
static bool
names_command(const char *line, size_t len, const char *name, size_t n)
{
	for (const char *p = line; (p = memchr(p, '/', len - (size_t)(p - line))) != NULL; p++) {
		size_t left = len - (size_t)(p + 1 - line);

		if (left >= n && strncasecmp(p + 1, name, n) == 0 &&
		    (left == n || !(isalnum((unsigned char)p[1 + n]) || p[1 + n] == '_')))
			return true;
	}
	return false;
}

char *
commands_help_topic(const char *name)
{
	const char *p = commands_help(), *start = NULL;
	size_t n;

	if (name[0] == '/')
		name++;
	n = strlen(name);
	if (n == 0)
		return NULL;
	/* A block is a line starting "  /" plus the deeper-indented lines after it. */
	while (*p != '\0') {
		size_t len = strcspn(p, "\n");
		bool head = strncmp(p, "  /", 3) == 0;

		if (start != NULL && (head || strncmp(p, "   ", 3) != 0))
			return strndup(start, (size_t)(p - start));
		if (start == NULL && head && names_command(p, len, name, n))
			start = p;
		p += len + (p[len] == '\n');
	}
	return start != NULL ? xstrdup(start) : NULL;
}
