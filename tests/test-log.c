/*
 * test-log.c - the bug-report log: levels filter, lines carry time, role and
 * level, two threads' lines stay whole, QNEXT_LOG is parsed (and a bad value
 * named), a FIFO in the log's place fails instead of hanging.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "t.h"
#include "thread-role.h"
#include "util.h"

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = xcalloc(1, 1 << 20);
	size_t n;

	if (f == NULL)
		return buf;
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void *
engine_side(void *arg)
{
	thread_role_set(ROLE_ENGINE);
	for (int i = 0; i < 500; i++)
		log_info("engine line %d %s", i, (const char *)arg);
	return NULL;
}

static void
test_levels_and_threads(const char *dir)
{
	char *path = xasprintf("%s/a/b/qnext.log", dir), *cause = NULL, *text;
	static char xs[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	pthread_t th;

	T_EQ_INT(log_open(LOG_INFO, path, &cause), 0);
	T_ASSERT(log_path() != NULL && strcmp(log_path(), path) == 0);
	log_debug("not written %d", 1);
	log_warn("written %d", 2);
	thread_role_set(ROLE_UI);
	pthread_create(&th, NULL, engine_side, xs);
	for (int i = 0; i < 500; i++)
		log_info("ui line %d", i);
	pthread_join(th, NULL);
	thread_role_set(ROLE_ANY);
	log_close();
	log_info("after close");
	text = slurp(path);
	T_EQ_INT(count(text, "not written"), 0);
	T_EQ_INT(count(text, "main warn: written 2\n"), 1);
	T_EQ_INT(count(text, " ui info: ui line "), 500);
	T_EQ_INT(count(text, " engine info: engine line "), 500);
	/* Every line is whole: the long ones end with their 50 x's and a newline. */
	T_EQ_INT(count(text, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"), 500);
	T_EQ_INT(count(text, "\n"), 1 + 1 + 1000);
	T_EQ_INT(count(text, "after close"), 0);
	T_ASSERT(strncmp(text, "20", 2) == 0 && text[10] == 'T' &&
		 strstr(text, "Z main info") != NULL);
	free(text);
	free(path);
	free(cause);
}

static void
test_env(const char *dir)
{
	char *path = xasprintf("%s/env.log", dir), *env = xasprintf("debug:%s", path);
	char *cause = NULL, *text;

	T_EQ_INT(log_level_parse("warn"), LOG_WARN);
	T_EQ_INT(log_level_parse("off"), LOG_OFF);
	T_EQ_INT(log_level_parse("loud"), -2);

	unsetenv("QNEXT_LOG");
	T_EQ_INT(log_open_env(0, &cause), 0);
	T_ASSERT(log_path() == NULL);

	setenv("QNEXT_LOG", "loud", 1);
	T_EQ_INT(log_open_env(0, &cause), -1);
	T_STR_CONTAINS(cause, "QNEXT_LOG=loud");

	setenv("QNEXT_LOG", env, 1);
	T_EQ_INT(log_open_env(0, &cause), 0);
	log_debug("debug via env");
	log_close();
	text = slurp(path);
	T_EQ_INT(count(text, "debug via env"), 1);
	free(text);

	/* -v alone: info, not debug. */
	setenv("XDG_STATE_HOME", dir, 1);
	unsetenv("QNEXT_LOG");
	T_EQ_INT(log_open_env(1, &cause), 0);
	T_STR_CONTAINS(log_path(), "/qnext/qnext.log");
	log_debug("hidden");
	log_info("shown");
	free(path);
	path = xstrdup(log_path());
	log_close();
	text = slurp(path);
	T_EQ_INT(count(text, "hidden"), 0);
	T_EQ_INT(count(text, "shown"), 1);
	free(text);
	free(path);
	free(env);
	free(cause);
}

static void
test_fifo(const char *dir)
{
	char *path = xasprintf("%s/fifo.log", dir), *cause = NULL;

	T_EQ_INT(mkfifo(path, 0600), 0);
	/* No reader: the open fails at once (ENXIO) rather than blocking. */
	T_EQ_INT(log_open(LOG_INFO, path, &cause), -1);
	T_STR_CONTAINS(cause, "fifo.log");
	T_ASSERT(log_path() == NULL);
	free(path);
	free(cause);
}

int
main(void)
{
	char tmpl[] = "/tmp/qnext-test-log-XXXXXX";
	char *dir = mkdtemp(tmpl), *cmd;

	T_ASSERT(dir != NULL);
	test_levels_and_threads(dir);
	test_env(dir);
	test_fifo(dir);
	cmd = xasprintf("rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
	return t_done("test-log");
}
