/*
 * settings.c - the settings file (see settings.h): parse `key = value`
 * lines into a struct settings, and write one key back with every other
 * line kept.
 *
 * One table drives parsing, formatting and the documentation's key list:
 * each key's kind (a number, a whole number, a string, on/off, show/hide)
 * and its range, the same as the command-line flag's.  Comments are whole
 * lines only, so a value (a path, a system prompt) may hold '#'.
 *
 * Any thread: the parser is pure; settings_load and settings_save touch
 * only the file they are given.
 */
#include "settings.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paths.h"
#include "util.h"

#define QUOTE_MAX    40                 /* at most this much of a bad value is echoed */
#define SETTINGS_MAX ((size_t)64 << 10) /* a settings file is a few hundred bytes */

enum kind {
	K_NUM,   /* a finite number */
	K_WHOLE, /* a whole number */
	K_STR,   /* the rest of the line */
	K_ONOFF, /* on|off (also yes/no, true/false, 1/0) */
	K_SHOW,  /* show|hide */
};

static const struct key_def {
	const char *name;
	enum kind kind;
	double lo, hi;
	const char *range; /* in words, for messages */
} key_defs[SET_N] = {
	[SET_MODEL] = { "model", K_STR, 0, 0, "a model directory" },
	[SET_TEMP] = { "temp", K_NUM, 0, 100, "0 to 100" },
	[SET_TOP_K] = { "top_k", K_WHOLE, 0, 1e9, "0 or more" },
	[SET_TOP_P] = { "top_p", K_NUM, 0, 1, "0 to 1" },
	[SET_MIN_P] = { "min_p", K_NUM, 0, 1, "0 to 1" },
	[SET_PRESENCE] = { "presence_penalty", K_NUM, -10, 10, "-10 to 10" },
	[SET_REPEAT] = { "repeat_penalty", K_NUM, 0.01, 10, "0.01 to 10" },
	[SET_SEED] = { "seed", K_WHOLE, -1, 9007199254740991.0, "-1 or 0 to 2^53-1" },
	[SET_MAX_TOKENS] = { "max_tokens", K_WHOLE, 1, 1e9, "1 or more" },
	[SET_CTX] = { "ctx", K_WHOLE, 16, 16777216, "16 to 16777216" },
	[SET_THREADS] = { "threads", K_WHOLE, 1, 1024, "1 to 1024" },
	[SET_EXPERT_CACHE] = { "expert_cache", K_STR, 0, 0, "auto, off or a size" },
	[SET_SYSTEM] = { "system", K_STR, 0, 0, "a system prompt" },
	[SET_MOUSE] = { "mouse", K_ONOFF, 0, 1, "on or off" },
	[SET_THINKING] = { "thinking", K_SHOW, 0, 1, "show or hide" },
	[SET_THINK_BUDGET] = { "think_budget", K_WHOLE, 0, 1e9, "0 (no limit) or more" },
	[SET_MARKDOWN] = { "markdown", K_ONOFF, 0, 1, "on or off" },
};

const char *
settings_key_name(enum setting_key k)
{
	return (unsigned)k < SET_N ? key_defs[k].name : NULL;
}

int
settings_key_find(const char *name)
{
	for (int k = 0; k < SET_N; k++)
		if (strcmp(name, key_defs[k].name) == 0)
			return k;
	return -1;
}

const char *
settings_src_name(enum setting_src s)
{
	static const char *const names[] = {
		[SRC_DEFAULT] = "default", [SRC_MODEL] = "model default",   [SRC_CONFIG] = "config",
		[SRC_FLAG] = "flag",       [SRC_CHAT] = "this chat (/set)",
	};

	return (unsigned)s < ARRAY_LEN(names) ? names[s] : "?";
}

void
settings_release(struct settings *s)
{
	if (s == NULL)
		return;
	for (int k = 0; k < SET_N; k++)
		free(s->str[k]);
	memset(s, 0, sizeof(*s));
}

/* ---- parsing ---- */

static bool
blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* A span of the text; trim cuts blanks off both ends. */
struct span {
	const char *s;
	size_t n;
};

static struct span
trim(const char *s, size_t n)
{
	while (n > 0 && blank(*s))
		s++, n--;
	while (n > 0 && blank(s[n - 1]))
		n--;
	return (struct span){ s, n };
}

static bool
span_is(struct span w, const char *word)
{
	return strlen(word) == w.n && strncmp(w.s, word, w.n) == 0;
}

/* on/off or show/hide words into *v (1/0); -1 for another word. */
static int
parse_switch(const struct key_def *d, struct span v, double *out)
{
	static const char *const on[] = { "on", "yes", "true", "1" };
	static const char *const off[] = { "off", "no", "false", "0" };

	if (d->kind == K_SHOW) {
		*out = span_is(v, "show") ? 1 : 0;
		return span_is(v, "show") || span_is(v, "hide") ? 0 : -1;
	}
	for (size_t i = 0; i < ARRAY_LEN(on); i++) {
		if (span_is(v, on[i]) || span_is(v, off[i])) {
			*out = span_is(v, on[i]) ? 1 : 0;
			return 0;
		}
	}
	return -1;
}

/* A numeric value in the key's range: "'2x' is not a number" otherwise. */
static int
parse_number(const struct key_def *d, struct span v, double *out, const char *at, char **cause)
{
	char buf[64], *end;
	int q = (int)MIN(v.n, QUOTE_MAX);

	if (v.n >= sizeof(buf))
		return cause_set(cause, "%s: %s: '%.*s...' is not a number", at, d->name, q, v.s);
	memcpy(buf, v.s, v.n);
	buf[v.n] = '\0';
	errno = 0;
	*out = strtod(buf, &end);
	if (v.n == 0 || *end != '\0' || !isfinite(*out))
		return cause_set(cause, "%s: %s: '%.*s' is not a number", at, d->name, q, v.s);
	if (d->kind == K_WHOLE && *out != floor(*out))
		return cause_set(cause, "%s: %s: '%.*s' is not a whole number", at, d->name, q,
				 v.s);
	if (*out < d->lo || *out > d->hi)
		return cause_set(cause, "%s: %s: %.*s is out of range (%s)", at, d->name, q, v.s,
				 d->range);
	if (*out == 0.0)
		*out = 0.0; /* no -0 */
	return 0;
}

/* One value into s for key k; at is "PATH:LINE" for messages. */
static int
parse_value(struct settings *s, int k, struct span v, const char *at, char **cause)
{
	const struct key_def *d = &key_defs[k];

	if (v.n == 0)
		return cause_set(cause, "%s: %s: expected a value (%s)", at, d->name, d->range);
	switch (d->kind) {
	case K_STR:
		free(s->str[k]);
		s->str[k] = strndup(v.s, v.n);
		if (s->str[k] == NULL)
			fatal("out of memory");
		return 0;
	case K_ONOFF:
	case K_SHOW:
		if (parse_switch(d, v, &s->num[k]) == 0)
			return 0;
		return cause_set(cause, "%s: %s: '%.*s' is not %s", at, d->name,
				 (int)MIN(v.n, QUOTE_MAX), v.s, d->range);
	default:
		return parse_number(d, v, &s->num[k], at, cause);
	}
}

/* One line (no newline in it); lineno counts from 1. */
static int
parse_line(struct settings *s, const char *line, size_t n, const char *path, int lineno,
	   char **cause)
{
	struct span l = trim(line, n), key;
	const char *eq;
	char at[512], name[32];
	int k;

	if (l.n == 0 || l.s[0] == '#')
		return 0;
	snprintf(at, sizeof(at), "%s:%d", path, lineno);
	if ((eq = memchr(l.s, '=', l.n)) == NULL)
		return cause_set(cause, "%s: expected KEY = VALUE, got '%.*s'", at,
				 (int)MIN(l.n, QUOTE_MAX), l.s);
	key = trim(l.s, (size_t)(eq - l.s));
	if (key.n == 0 || key.n >= sizeof(name))
		return cause_set(cause, "%s: expected KEY = VALUE, got '%.*s'", at,
				 (int)MIN(l.n, QUOTE_MAX), l.s);
	memcpy(name, key.s, key.n);
	name[key.n] = '\0';
	if ((k = settings_key_find(name)) < 0)
		return cause_set(cause, "%s: unknown key '%s' (man qnext, FILES, lists them)", at,
				 name);
	if (parse_value(s, k, trim(eq + 1, (size_t)(l.s + l.n - eq - 1)), at, cause) != 0)
		return -1;
	s->set |= 1u << k;
	s->line[k] = lineno;
	return 0;
}

int
settings_parse(struct settings *s, const char *text, size_t len, const char *path, char **cause)
{
	const char *p = text, *end = text + len;
	int lineno = 0;

	memset(s, 0, sizeof(*s));
	if (memchr(text, '\0', len) != NULL)
		return cause_set(cause, "%s: not a text file (it holds a NUL byte)", path);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		if (parse_line(s, p, n, path, ++lineno, cause) != 0) {
			settings_release(s);
			return -1;
		}
		p += n + (nl != NULL);
	}
	return 0;
}

char *
settings_format(const struct settings *s, enum setting_key k)
{
	const struct key_def *d;

	if ((unsigned)k >= SET_N || !(s->set & (1u << k)))
		return NULL;
	d = &key_defs[k];
	switch (d->kind) {
	case K_STR:
		return xstrdup(s->str[k] != NULL ? s->str[k] : "");
	case K_ONOFF:
		return xstrdup(s->num[k] != 0 ? "on" : "off");
	case K_SHOW:
		return xstrdup(s->num[k] != 0 ? "show" : "hide");
	case K_WHOLE:
		return xasprintf("%.0f", s->num[k]);
	default:
		return xasprintf("%.9g", s->num[k]);
	}
}

/* ---- the file ---- */

char *
settings_path(void)
{
	char *dir = paths_xdg_dir("XDG_CONFIG_HOME", ".config"), *p;

	if (dir == NULL)
		return NULL;
	p = xasprintf("%s/config", dir);
	free(dir);
	return p;
}

char *
settings_display_path(const char *path)
{
	const char *home = getenv("HOME");
	size_t n = home != NULL ? strlen(home) : 0;

	if (n > 1 && strncmp(path, home, n) == 0 && path[n] == '/')
		return xasprintf("~%s", path + n);
	return xstrdup(path);
}

int
settings_load(struct settings *s, const char *path, char **cause)
{
	char *text, *shown, *why = NULL;
	size_t len;
	int rc;

	memset(s, 0, sizeof(*s));
	if ((text = read_file_max(path, SETTINGS_MAX, &len, &why)) == NULL) {
		/* No file: nothing set.  Anything else (a directory, too big) is said. */
		if (access(path, F_OK) != 0 && errno == ENOENT) {
			free(why);
			return 0;
		}
		cause_set(cause, "%s", why);
		free(why);
		return -1;
	}
	shown = settings_display_path(path);
	rc = settings_parse(s, text, len, shown, cause);
	free(shown);
	free(text);
	return rc;
}

/* Where the last line setting key starts in text, and its length; false if none. */
static bool
find_key_line(const char *text, size_t len, const char *key, size_t *at, size_t *n)
{
	const char *p = text, *end = text + len;
	bool found = false;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ln = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		struct span l = trim(p, ln);
		const char *eq = memchr(l.s, '=', l.n);

		if (l.n > 0 && l.s[0] != '#' && eq != NULL &&
		    span_is(trim(l.s, (size_t)(eq - l.s)), key)) {
			*at = (size_t)(p - text);
			*n = ln;
			found = true;
		}
		p += ln + (nl != NULL);
	}
	return found;
}

char *
settings_update(const char *text, size_t len, const char *key, const char *value, size_t *len_out)
{
	static const char head[] = "# qnext settings: KEY = VALUE, one a line; lines starting "
				   "with # are comments.\n# The keys are in man qnext, FILES; "
				   "command-line flags override them.\n";
	char *line = xasprintf("%s = %s", key, value), *out;
	size_t at, n, ll = strlen(line), olen;

	if (find_key_line(text, len, key, &at, &n)) {
		olen = len - n + ll;
		out = xmalloc(olen + 1);
		memcpy(out, text, at);
		memcpy(out + at, line, ll);
		memcpy(out + at + ll, text + at + n, len - at - n);
	} else {
		const char *pre = len == 0 ? head : text[len - 1] == '\n' ? "" : "\n";
		size_t pl = len == 0 ? sizeof(head) - 1 : strlen(pre);

		olen = len + pl + ll + 1;
		out = xmalloc(olen + 1);
		memcpy(out, text, len);
		memcpy(out + len, pre, pl);
		memcpy(out + len + pl, line, ll);
		out[olen - 1] = '\n';
	}
	out[olen] = '\0';
	free(line);
	if (len_out != NULL)
		*len_out = olen;
	return out;
}

/* The folder of path, made when missing. */
static int
make_parent(const char *path, char **cause)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int rc = 0;

	if (slash != NULL && slash != dir) {
		*slash = '\0';
		rc = paths_mkdirs(dir, 0700, cause);
	}
	free(dir);
	return rc;
}

int
settings_save(const char *path, const char *key, const char *value, char **cause)
{
	struct settings s;
	char *text, *out, *why = NULL, *shown;
	size_t len = 0, olen;
	int rc;

	if (strchr(value, '\n') != NULL)
		return cause_set(cause, "%s: a value must fit on one line", key);
	if ((text = read_file_max(path, SETTINGS_MAX, &len, &why)) == NULL) {
		if (access(path, F_OK) == 0 || errno != ENOENT) {
			cause_set(cause, "%s", why);
			free(why);
			return -1;
		}
		free(why);
		text = xstrdup("");
		len = 0;
	}
	out = settings_update(text, len, key, value, &olen);
	shown = settings_display_path(path);
	rc = settings_parse(&s, out, olen, shown, cause);
	settings_release(&s);
	if (rc == 0 && (rc = make_parent(path, cause)) == 0)
		rc = file_write_atomic(path, out, olen, 0600, cause);
	free(shown);
	free(out);
	free(text);
	return rc;
}
