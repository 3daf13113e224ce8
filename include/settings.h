/*
 * settings.h - the settings file, $XDG_CONFIG_HOME/qnext/config (default
 * ~/.config/qnext/config): `key = value` lines, whole-line `#` comments and
 * blank lines (docs/ui.md "Settings file").  Parsed into a struct settings
 * that records which keys the file sets and on which line; written back one
 * key at a time, the other lines and comments kept as they were.
 *
 * Command-line flags override the file and the file overrides the built-in
 * and the model's defaults; the callers (tools/prompt.c, the UI) apply that
 * order, this module only reads and writes the file.  An unknown key or a
 * bad value is an error naming the file, the line and the key, so a typo
 * never passes silently.
 *
 * Any thread (pure functions, plus settings_load and settings_save, which
 * touch only the file they are given).  Ownership: struct settings owns its
 * strings (settings_release); returned strings are malloc'd for the caller.
 */
#ifndef QNEXT_SETTINGS_H
#define QNEXT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The keys, in the order the file's documentation and /show list them. */
enum setting_key {
	SET_MODEL,        /* model directory (string) */
	SET_TEMP,         /* 0 to 100 */
	SET_TOP_K,        /* whole, 0 or more (0: off) */
	SET_TOP_P,        /* 0 to 1 */
	SET_MIN_P,        /* 0 to 1 */
	SET_PRESENCE,     /* presence_penalty: -10 to 10 */
	SET_REPEAT,       /* repeat_penalty: 0.01 to 10 */
	SET_SEED,         /* whole, -1 (fresh per reply) or 0 to 2^53-1 */
	SET_MAX_TOKENS,   /* whole, 1 or more */
	SET_CTX,          /* whole, 16 to 2^24 */
	SET_THREADS,      /* whole, 1 to 1024 */
	SET_EXPERT_CACHE, /* auto|off|SIZE: a string the caller checks (xcache_parse) */
	SET_SYSTEM,       /* system prompt (string, the rest of the line) */
	SET_MOUSE,        /* on|off */
	SET_THINKING,     /* show|hide: the thinking panels open or closed */
	SET_THINK_BUDGET, /* whole, 0 (no limit) or more: reasoning tokens before the answer */
	SET_MARKDOWN,     /* on|off: answers rendered from Markdown, or as written (--raw) */
	SET_N,
};

/* Where a setting's value came from (what /show says). */
enum setting_src {
	SRC_DEFAULT, /* built in */
	SRC_MODEL,   /* the model's generation_config.json */
	SRC_CONFIG,  /* the settings file */
	SRC_FLAG,    /* the command line */
	SRC_CHAT,    /* /set, this chat only */
};

struct settings {
	unsigned set;      /* 1 << enum setting_key for each key the file sets */
	int line[SET_N];   /* the line that set it (the last one when repeated) */
	double num[SET_N]; /* numeric keys; on/off and show/hide are 1/0 */
	char *str[SET_N];  /* string keys (model, expert_cache, system), or NULL */
};

/* "temp", "presence_penalty"...: the key's name in the file; NULL out of range. */
const char *settings_key_name(enum setting_key k);

/* The key called name (exact, lower case), or -1. */
int settings_key_find(const char *name);

/* "flag", "config", "model default"...: for /show. */
const char *settings_src_name(enum setting_src s);

/*
 * Parse a file's text (len bytes, NUL bytes refused) into *s (OUT, zeroed
 * first); path is only for messages.  0, or -1 with *s released and *cause
 * "PATH:LINE: temp: '2x' is not a number" (or "...: unknown key 'tmep'",
 * "...: expected KEY = VALUE").
 */
int settings_parse(struct settings *s, const char *text, size_t len, const char *path,
		   char **cause);

/* Free what *s owns and zero it.  Accepts NULL. */
void settings_release(struct settings *s);

/*
 * The value of key k as the file would hold it ("0.6", "40", "on", the
 * string), malloc'd; NULL when s does not set k.
 */
char *settings_format(const struct settings *s, enum setting_key k);

/*
 * The settings file's path: $XDG_CONFIG_HOME/qnext/config, else
 * ~/.config/qnext/config; malloc'd, NULL without either variable.
 */
char *settings_path(void);

/*
 * The path for messages: $HOME's part written "~" (malloc'd).
 */
char *settings_display_path(const char *path);

/*
 * Read and parse the file at path into *s (OUT).  A missing file is no
 * error (nothing set).  0, or -1 with *cause as settings_parse words it.
 */
int settings_load(struct settings *s, const char *path, char **cause);

/*
 * text (len bytes) with key's line replaced by "key = value" (the last such
 * line when the key is repeated) or appended; every other line and comment
 * is kept.  Empty text gets a comment that says what the file is first.
 * malloc'd; *len_out (optional) its length.
 */
char *settings_update(const char *text, size_t len, const char *key, const char *value,
		      size_t *len_out);

/*
 * Set key = value in the file at path and write it atomically (its folder
 * made when missing).  The file as it would be written is parsed first, so
 * a bad value, or a file already broken, is refused and the file left as
 * it was.  0, or -1 with *cause.
 */
int settings_save(const char *path, const char *key, const char *value, char **cause);

#endif
