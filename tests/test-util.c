/*
 * test-util.c - file_write_atomic: the bytes and mode land whole, an old
 * file is replaced, no temporary file is left either way, and a failure
 * names the path and leaves errno for the caller.  Thread roles: a thread
 * plays every role until it says which, and a check of the wrong role aborts
 * naming the function and the thread.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "thread-role.h"
#include "util.h"

static int
entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d != NULL && (e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	if (d != NULL)
		closedir(d);
	return n;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = xcalloc(1, 4096);

	*len = f != NULL ? fread(buf, 1, 4095, f) : 0;
	if (f != NULL)
		fclose(f);
	return buf;
}

/* In a child: the UI thread calls what only the engine may; its stderr goes to errpath. */
static void
wrong_role_child(const char *errpath)
{
	if (freopen(errpath, "w", stderr) == NULL)
		_exit(3);
	thread_role_set(ROLE_UI);
	thread_role_check(ROLE_ENGINE, "session_reply");
	_exit(0);
}

static void
test_thread_roles(const char *dir)
{
	char *errpath = xasprintf("%s/role.err", dir), *got;
	size_t len;
	pid_t pid;
	int st = 0;

	T_EQ_INT(thread_role(), ROLE_ANY);
	thread_role_check(ROLE_ENGINE, "anything"); /* every role until one is said */
	thread_role_set(ROLE_ENGINE);
	thread_role_check(ROLE_ENGINE, "ctx_forward");
	thread_role_set(ROLE_ANY);
	fflush(NULL);
	if ((pid = fork()) == 0)
		wrong_role_child(errpath);
	T_ASSERT(pid > 0 && waitpid(pid, &st, 0) == pid);
	T_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	got = slurp(errpath, &len);
	T_STR_CONTAINS(got, "session_reply called on the ui thread");
	free(got);
	free(errpath);
}

int
main(void)
{
	char tmpl[] = "/tmp/qnext-test-util-XXXXXX";
	char *dir = mkdtemp(tmpl), *path, *bad, *cause = NULL, *got, *cmd;
	struct stat sb;
	size_t len;

	T_ASSERT(dir != NULL);
	path = xasprintf("%s/out.txt", dir);
	T_EQ_INT(file_write_atomic(path, "first\n", 6, 0640, &cause), 0);
	got = slurp(path, &len);
	T_EQ_INT(len, 6);
	T_ASSERT(memcmp(got, "first\n", 6) == 0);
	free(got);
	T_ASSERT(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0640);

	/* Replaced whole; binary bytes kept; nothing else left in the directory. */
	T_EQ_INT(file_write_atomic(path, "a\0b", 3, 0600, &cause), 0);
	got = slurp(path, &len);
	T_EQ_INT(len, 3);
	T_ASSERT(memcmp(got, "a\0b", 3) == 0);
	free(got);
	T_EQ_INT(entries(dir), 1);

	/* A directory that does not exist: the path named, errno kept. */
	bad = xasprintf("%s/missing/out.txt", dir);
	errno = 0;
	T_EQ_INT(file_write_atomic(bad, "x", 1, 0644, &cause), -1);
	T_EQ_INT(errno, ENOENT);
	T_STR_CONTAINS(cause, "cannot write ");
	T_STR_CONTAINS(cause, "/missing/out.txt: No such file or directory");

	/* A directory where the file should be: rename fails, the temporary goes. */
	free(bad);
	bad = xasprintf("%s/sub", dir);
	T_EQ_INT(mkdir(bad, 0700), 0);
	T_EQ_INT(file_write_atomic(bad, "x", 1, 0644, &cause), -1);
	T_EQ_INT(entries(dir), 2);

	test_thread_roles(dir);
	cmd = xasprintf("rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
	free(bad);
	free(path);
	free(cause);
	return t_done("test-util");
}
