/*
 * commands.h - the chat's slash commands (docs/ui.md "Slash commands"): parse a line into a
 * struct command, complete a partial one for Tab, and give the help text.
 *
 * docs/ui.md "Slash commands" lists them, and those left out (/read, /set ctx,
 * /think budget) because nothing is behind them yet.
 * Parsing only checks and splits: what a command does is up to the UI.
 * Names are case-insensitive; arguments are separated by blanks.  A line
 * that does not start with '/' (after leading blanks) is a message, and so
 * is one starting with "//", which is how a message that starts with a
 * slash is typed (the caller sends it without its first '/').
 *
 * Thread affinity: any thread (pure functions; the UI thread uses them).
 * Ownership: struct command owns its arg and path (command_free);
 * completion arrays and their strings are malloc'd for the caller (readline
 * frees them, or commands_complete_free).
 */
#ifndef QNEXT_COMMANDS_H
#define QNEXT_COMMANDS_H

#include <stdbool.h>

enum command_id {
	CMD_HELP,     /* /help [command], /?: arg = the command asked about, or NULL */
	CMD_NEW,      /* /new, /clear: a new chat; the old one stays in the history */
	CMD_REGEN,    /* /regen: regenerate the last answer */
	CMD_EDIT,     /* /edit [N]: fork from your N-th message (number; 0 = the last) */
	CMD_SYSTEM,   /* /system [text]: arg NULL shows the prompt, "" clears it */
	CMD_SET,      /* /set [--save] <param> <value>: param, value and save */
	CMD_SHOW,     /* /show [params|system|model|stats]: show */
	CMD_THINK,    /* /think [show|hide]: think (THINK_TOGGLE when bare) */
	CMD_CHATS,    /* /chats: the conversation browser */
	CMD_SEARCH,   /* /search <query>: arg */
	CMD_RENAME,   /* /rename [title]: arg, or NULL for the UI to ask for one */
	CMD_DELETE,   /* /delete: this chat (the UI confirms) */
	CMD_EXPORT,   /* /export [md|json] [path]: format, and path or NULL */
	CMD_COPY,     /* /copy [last|all|code]: copy */
	CMD_QUIT,     /* /quit, /exit, /bye */
	CMD_CONTINUE, /* /continue: go on with the last answer */
	CMD_DROP, /* /drop [N]: value = N (1 when not given), turns to leave out of the context */
	CMD_COMPACT, /* /compact: a new chat from a summary of this one */
	CMD_MODEL,   /* /model [N|DIR]: arg NULL lists the models found */
};

/* /set parameters; the parser checks the ranges. */
enum command_param {
	PARAM_TEMP,         /* temp: 0 to 5 */
	PARAM_TOP_P,        /* top_p: 0 to 1 */
	PARAM_TOP_K,        /* top_k: whole, >= 0 (0: off) */
	PARAM_MIN_P,        /* min_p: 0 to 1 */
	PARAM_SEED,         /* seed: whole, 0 to 2^53 (what a double holds exactly) */
	PARAM_MAX_TOKENS,   /* max_tokens: whole, >= 1 */
	PARAM_PRESENCE,     /* presence: presence penalty, -2 to 2 (0: off) */
	PARAM_REPEAT,       /* repeat: repetition penalty, above 0 up to 10 (1: off) */
	PARAM_THINK_BUDGET, /* think_budget: reasoning tokens, whole, >= 0 ("off" = 0: no limit) */
	PARAM_MOUSE,        /* mouse: on (1) or off (0) */
	PARAM_MARKDOWN,     /* markdown: on (1, rendered) or off (0, as written) */
};

enum command_show {
	SHOW_PARAMS, /* the default */
	SHOW_SYSTEM,
	SHOW_MODEL,
	SHOW_STATS,
};

enum command_think {
	THINK_TOGGLE, /* no argument */
	THINK_SHOW,
	THINK_HIDE,
};

enum command_format {
	EXPORT_MD, /* the default, and for a path not ending in .json */
	EXPORT_JSON,
};

enum command_copy {
	COPY_LAST, /* the default: the last answer */
	COPY_ALL,  /* the whole chat */
	COPY_CODE, /* the last code block */
};

/* A parsed command.  Fields that do not apply to id are 0 / NULL. */
struct command {
	enum command_id id;
	char *arg;                  /* malloc'd text of /system /search /rename /help, or NULL */
	enum command_param param;   /* CMD_SET */
	double value;               /* CMD_SET, CMD_DROP */
	bool save;                  /* CMD_SET: --save, also into the settings file */
	enum command_show show;     /* CMD_SHOW */
	enum command_think think;   /* CMD_THINK */
	enum command_format format; /* CMD_EXPORT */
	char *path;                 /* CMD_EXPORT: malloc'd file name, or NULL for the default */
	enum command_copy copy;     /* CMD_COPY */
	int number;                 /* CMD_EDIT: which of your messages, 1 = the first; 0 = last */
};

/*
 * Parse line (NUL-terminated; may hold newlines, as /system text can).
 * Returns 0 with *out (OUT) filled, 1 when the line is a message rather than
 * a command (*out zeroed), or -1 with a one-line, malloc'd *cause such as
 * "unknown command /foo; /help lists them" or "/set temp: expected a
 * number, got 'hot'" (*out zeroed).  Free *out with command_free either way.
 */
int commands_parse(const char *line, struct command *out, char **cause);

/* Free what a struct command owns and zero it.  Accepts NULL. */
void command_free(struct command *c);

/* "/help", "/set"...: the canonical name of a command. */
const char *commands_name(enum command_id id);

/* "temp", "top_p"...: the name /set uses for a parameter. */
const char *commands_param_name(enum command_param p);

/*
 * Tab completion, in the form readline's rl_attempted_completion_function
 * returns (so the UI can return it as is): the word being completed is
 * line[start..] up to the next blank (line = rl_line_buffer, start =
 * readline's start; '/' must not be a word-break character).  Returns NULL
 * when nothing matches, else a NULL-terminated, malloc'd array of malloc'd
 * strings: [0] is the text to put in place of the word (the one candidate,
 * or the longest prefix all candidates share), then, when there are several,
 * the candidates in sorted order.  Matching ignores case.
 * Command names (with their '/') complete the first word; the first argument
 * completes for /set (parameters), /show, /think, /export (md, json), /copy
 * and /help (command names).  File names are not completed: see
 * commands_complete_path.
 */
char **commands_complete(const char *line, int start);

/*
 * True when the word at line[start..] is a file name (/export md|json
 * <path>), so the UI can let readline complete file names there.
 */
bool commands_complete_path(const char *line, int start);

/* Free an array from commands_complete.  Accepts NULL. */
void commands_complete_free(char **list);

/*
 * The help text: every command with a one-line description, lines of at
 * most 78 columns ending in '\n'.  The help overlay shows it; man/qnext.1
 * mirrors it.  Static storage.
 */
const char *commands_help(void);

/*
 * The help text's lines about one command (name with or without its '/',
 * any of its spellings), malloc'd; NULL when no such command.
 */
char *commands_help_topic(const char *name);

#endif
