/*
 * log.c - the bug-report log (see log.h).
 *
 * Any thread.  The descriptor is opened once before other threads start and
 * closed after they end; in between each line is formatted into a buffer on
 * the stack and written with one write(2), which O_APPEND keeps whole.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "paths.h"
#include "thread-role.h"

_Atomic int log_level_max = LOG_OFF;
static int log_fd = -1;
static char *log_file;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
log_level_parse(const char *s)
{
	if (strcmp(s, "off") == 0)
		return LOG_OFF;
	for (int i = 0; i < (int)ARRAY_LEN(level_names); i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -2;
}

int
log_open(int level, const char *path, char **cause)
{
	char *p, *slash;
	int fd;

	log_close();
	if (level == LOG_OFF)
		return 0;
	p = path != NULL ? xstrdup(path) : paths_state_file("qnext.log");
	/* The folder holding a named file; a failure shows as the open's error below. */
	if (path != NULL && (slash = strrchr(p, '/')) != NULL && slash != p) {
		*slash = '\0';
		paths_mkdirs(p, 0700, NULL);
		*slash = '/';
	}
	/* O_NONBLOCK: a FIFO put where the log goes must not hang the start. */
	fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600);
	if (fd < 0) {
		cause_set(cause, "log file %s: %s", p, strerror(errno));
		free(p);
		return -1;
	}
	log_fd = fd;
	log_file = p;
	atomic_store(&log_level_max, level);
	log_write(LOG_INFO, "log opened at level %s (qnext %s, pid %d)", level_names[level],
		  VERSION, (int)getpid());
	return 0;
}

int
log_open_env(int verbose, char **cause)
{
	const char *env = getenv("QNEXT_LOG");
	int level = verbose <= 0 ? LOG_OFF : verbose == 1 ? LOG_INFO : LOG_DEBUG;
	char *path = NULL;
	int rc;

	if (env != NULL && *env != '\0') {
		char *lv = xstrdup(env), *colon = strchr(lv, ':');
		int l;

		if (colon != NULL) {
			*colon = '\0';
			if (colon[1] != '\0')
				path = xstrdup(colon + 1);
		}
		if ((l = log_level_parse(lv)) == -2) {
			cause_set(cause,
				  "QNEXT_LOG=%s: the level must be off, error, warn, info or debug",
				  env);
			free(lv);
			free(path);
			return -1;
		}
		free(lv);
		level = MAX(level, l);
	}
	rc = log_open(level, path, cause);
	free(path);
	return rc;
}

void
log_close(void)
{
	atomic_store(&log_level_max, LOG_OFF);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	free(log_file);
	log_file = NULL;
}

const char *
log_path(void)
{
	return log_file;
}

static const char *
role_tag(void)
{
	int r = thread_role();

	if (r == ROLE_ANY)
		return "main";
	if (r & ROLE_UI)
		return "ui";
	if (r & ROLE_ENGINE)
		return "engine";
	return r & ROLE_WORKER ? "worker" : "io";
}

void
log_write(int level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;
	ssize_t w;
	int k;

	if (log_fd < 0 || level < 0 || level >= (int)ARRAY_LEN(level_names))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ", ts.tv_nsec / 1000000,
		     role_tag(), level_names[level]);
	n += k > 0 ? (size_t)k : 0;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* A longer line is cut; the newline always ends it. */
	n = k < 0 ? n : MIN(n + (size_t)k, sizeof(line) - 2);
	line[n++] = '\n';
	/* Best effort: a full disk loses log lines, never the chat. */
	w = write(log_fd, line, n);
	(void)w;
}
