/*
 * log.h - a small log for bug reports: levelled lines appended to a file.
 *
 * Off unless asked for: `-v` (info; `-vv` debug) or QNEXT_LOG=LEVEL[:PATH]
 * (LEVEL one of error, warn, info, debug).  The file is PATH, else
 * $XDG_STATE_HOME/qnext/qnext.log (~/.local/state/qnext/qnext.log).  Each
 * line says when, which thread role, and the level:
 *   2026-12-03T22:31:05.123Z engine info: model loaded in 0.84 s
 * The log never writes to the terminal: the full-screen UI owns it.
 *
 * Any thread: log_open/log_close once from main(); log_msg from anywhere
 * (one write(2) per line on an O_APPEND descriptor, so lines of different
 * threads never interleave).  A disabled level costs one load and a branch.
 */
#ifndef QNEXT_LOG_H
#define QNEXT_LOG_H

#include <stdatomic.h>

#include "util.h"

enum log_level {
	LOG_OFF = -1,
	LOG_ERROR = 0,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

/* The most verbose level written; LOG_OFF until log_open succeeds. */
extern _Atomic int log_level_max;

/*
 * Start the log at level (LOG_OFF: keep it off) into path (NULL: the
 * default file above, its directory made if missing).  Returns 0, or -1 with
 * *cause when the file cannot be opened (the log then stays off).
 */
int log_open(int level, const char *path, char **cause);
/*
 * The level and path QNEXT_LOG asks for, raised to at least `verbose`
 * (-v count: 1 info, 2 or more debug), and log_open them.  Returns what
 * log_open returns; 0 with the log off when neither asks for it.  A bad
 * QNEXT_LOG value is an error naming it.
 */
int log_open_env(int verbose, char **cause);
void log_close(void);
/* The file being written, or NULL when the log is off. */
const char *log_path(void);

/* Parse "error", "warn", "info", "debug" (or "off"); -2 when it is none. */
int log_level_parse(const char *s);

void log_write(int level, const char *fmt, ...) PRINTF_LIKE(2, 3);

#define log_msg(level, ...)                                                                \
	do {                                                                               \
		if ((level) <= atomic_load_explicit(&log_level_max, memory_order_relaxed)) \
			log_write((level), __VA_ARGS__);                                   \
	} while (0)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
