/*
 * inputline.c - the input line: readline in callback mode.  keys.c hands it
 * the bytes read from stdin one key at a time (rl_getc_function); the line
 * it returns goes to a special prompt's handler (inputline_ask: search,
 * rename...) or to the chat's line handler given at start (slash.c's, a
 * callback so the two files do not call each other); Tab completes slash
 * commands; the input history lives in $XDG_STATE_HOME/qnext/history.
 *
 * UI thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "commands.h"
#include "paths.h"
#include "thread-role.h"
#include "ui-int.h"
#include "util.h"

/* GLOBAL: the one app, for readline's callbacks, which take no argument. */
static struct app *rl_app;

/* GLOBAL: what a line typed at the chat's own prompt is for (slash.c). */
static app_line_fn *chat_line;

static void on_line(char *line);

/* GLOBAL: what the next line typed at a special prompt is for (search,
 * rename...); readline's line handler takes no context argument. */
static app_line_fn *line_action;

static void
inputline_redisplay(void)
{
	if (rl_app != NULL && rl_line_buffer != NULL)
		screen_draw(rl_app);
}

/* Switch the input line to prompt p, sending the next line to fn (NULL = chat). */
void
inputline_ask(struct app *a, const char *p, const char *initial, app_line_fn *fn)
{
	assert_ui();
	line_action = fn;
	rl_callback_handler_remove();
	rl_callback_handler_install(p, on_line);
	if (initial != NULL) {
		rl_insert_text(initial);
		rl_point = rl_end;
	}
	screen_dirty(a);
}

static char **
complete(const char *text, int start, int end)
{
	char **m;

	(void)end;
	rl_attempted_completion_over = 1; /* never fall back to file names */
	if (rl_line_buffer[0] != '/')
		return NULL;
	m = commands_complete(rl_line_buffer, start);
	(void)text;
	return m;
}

/* Readline lists ambiguous completions on rl_outstream (/dev/null here): show them as a notice. */
static void
show_matches(char **matches, int n, int longest)
{
	char buf[512];
	size_t len = 0;

	(void)longest;
	buf[0] = '\0';
	for (int i = 1; i <= n && len + 2 < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i > 1 ? "  " : "",
					matches[i]);
	ui_status(rl_app, false, "%s", buf);
}

/*
 * Whether the input history file may be read and written: absent, or a
 * regular file.  readline opens it without O_NONBLOCK, so a FIFO there would
 * hang the start (and the exit) for good.
 */
static bool
history_file_ok(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		return errno == ENOENT;
	if (S_ISREG(sb.st_mode))
		return true;
	ui_status(rl_app, true, "%s is not a regular file: the input history is not kept", path);
	return false;
}

void
inputline_init(struct app *a, app_line_fn *line, void (*bind_keys)(void))
{
	char *hist = paths_state_file("history");

	assert_ui();
	rl_app = a;
	chat_line = line;
	rl_readline_name = "qnext";
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	rl_change_environment = 0;
	rl_prep_term_function = NULL;
	rl_deprep_term_function = NULL;
	rl_outstream = fopen("/dev/null", "w");
	rl_redisplay_function = inputline_redisplay;
	rl_attempted_completion_function = complete;
	rl_completion_display_matches_hook = show_matches;
	rl_variable_bind("keyseq-timeout", "50");
	rl_variable_bind("enable-bracketed-paste", "on");
	rl_variable_bind("show-all-if-ambiguous", "on"); /* one Tab lists the candidates */
	using_history();
	/* A message can span lines: with timestamps the history file marks
	 * where each entry starts, so multi-line entries come back whole. */
	history_write_timestamps = 1;
	history_multiline_entries = 1;
	history_comment_char = '#';
	if (history_file_ok(hist))
		read_history(hist);
	free(hist);
	rl_initialize(); /* reads ~/.inputrc now, so the application's keys win over it */
	bind_keys();
	rl_callback_handler_install("> ", on_line);
}

static void
on_line(char *line)
{
	struct app *a = rl_app;
	app_line_fn *fn = line_action;

	if (fn != NULL) {
		inputline_ask(a, "> ", NULL, NULL);
		if (line != NULL)
			fn(a, line);
		free(line);
		return;
	}
	if (line == NULL) { /* Ctrl-D on an empty line */
		chat_line(a, NULL);
		return;
	}
	if (line[strspn(line, " \t\r\n")] != '\0') {
		add_history(line);
		chat_line(a, line);
	}
	free(line);
	screen_dirty(a);
}

/* Save the input history and let go of the terminal's line. */
void
inputline_end(struct app *a)
{
	char *hist = paths_state_file("history");

	assert_ui();
	if (history_file_ok(hist))
		write_history(hist);
	free(hist);
	rl_callback_handler_remove();
	rl_app = NULL;
}

struct app *
inputline_app(void)
{
	return rl_app;
}
