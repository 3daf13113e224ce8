/*
 * cache.c - `qnext cache list|clear|verify` (see cache.h).
 *
 * The cache directory holds hw.json (bench-hw results), manifests/NAME.txt
 * (sha256sum-format manifests written by `qnext check --write` for model
 * directories that are not writable) and state/KEY.qsnap (saved engine states
 * of conversations, snapshot.h; docs/resume.md "File format").  `verify`
 * parses each one: a damaged hw.json would mislead `plan`, a damaged manifest
 * would fail `check`; a damaged state would be passed over (its header and
 * checksum are checked without reading it whole into memory).
 *
 * CLI main thread only.
 */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "paths.h"
#include "snapshot.h"
#include "subcmd.h"
#include "util.h"

typedef int file_fn(const char *path, const char *rel, void *arg);

/* Call fn for every regular file under dir (one level of subdirectories). */
static int
walk(const char *dir, const char *rel, file_fn *fn, void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int bad = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char *p, *r;
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		r = rel != NULL ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && rel == NULL)
			bad += walk(p, r, fn, arg);
		else if (S_ISREG(st.st_mode))
			bad += fn(p, r, arg);
		free(p);
		free(r);
	}
	closedir(d);
	return bad;
}

static int
list_one(const char *path, const char *rel, void *arg)
{
	struct stat st;
	unsigned long long *total = arg;

	if (stat(path, &st) != 0)
		return 0;
	printf("%10lld  %s\n", (long long)st.st_size, rel);
	*total += (unsigned long long)st.st_size;
	return 0;
}

static int
clear_one(const char *path, const char *rel, void *arg)
{
	(void)arg;
	if (unlink(path) != 0) {
		fprintf(stderr, "qnext: cannot remove %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("removed %s\n", rel);
	return 0;
}

/* A manifest line: 64 hex digits, two spaces, a file name. */
static bool
manifest_ok(const char *text)
{
	for (const char *l = text; *l != '\0'; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
		size_t n = strcspn(l, "\n"), i;

		if (n == 0)
			continue;
		for (i = 0; i < 64 && i < n && strchr("0123456789abcdef", l[i]) != NULL; i++)
			;
		if (i != 64 || n < 67 || l[64] != ' ' || l[65] != ' ')
			return false;
	}
	return true;
}

/* Whether rel is a saved state (state/KEY.qsnap). */
static bool
is_state(const char *rel)
{
	size_t n = strlen(rel);

	return strncmp(rel, "state/", 6) == 0 && n > 6 && strcmp(rel + n - 6, ".qsnap") == 0;
}

static int
verify_one(const char *path, const char *rel, void *arg)
{
	char *text = NULL, *cause = NULL;
	bool ok = false;

	(void)arg;
	if (is_state(rel)) {
		ok = snapshot_verify_file(path, &cause) == 0;
		free(cause);
		printf("%s  %s\n", ok ? "ok " : "BAD", rel);
		return ok ? 0 : 1;
	}
	text = read_file(path, NULL, NULL);
	if (text != NULL && strcmp(rel, "hw.json") == 0) {
		json_t *j = json_loads(text, 0, NULL);

		ok = json_is_object(j);
		json_decref(j);
	} else if (text != NULL && strncmp(rel, "manifests/", 10) == 0)
		ok = manifest_ok(text);
	else if (text != NULL)
		ok = true; /* not ours to judge */
	printf("%s  %s\n", ok ? "ok " : "BAD", rel);
	free(text);
	return ok ? 0 : 1;
}

static void
usage(FILE *f)
{
	subcmd_usage(f, "cache");
}

int
cache_main(int argc, char **argv)
{
	char *dir = paths_xdg_dir("XDG_CACHE_HOME", ".cache");
	unsigned long long total = 0;
	int bad = 0;

	if (argc != 2 || (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "clear") != 0 &&
			  strcmp(argv[1], "verify") != 0)) {
		usage(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		free(dir);
		return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	if (dir == NULL) {
		fprintf(stderr, "qnext: no cache directory (set HOME or XDG_CACHE_HOME)\n");
		return 1;
	}
	printf("%s\n", dir);
	if (strcmp(argv[1], "list") == 0) {
		walk(dir, NULL, list_one, &total);
		printf("%llu bytes in all (qnext uses the checkpoint in place: no weights are "
		       "cached; state/ holds saved conversations, --state-cache)\n",
		       total);
	} else if (strcmp(argv[1], "clear") == 0)
		bad = walk(dir, NULL, clear_one, NULL);
	else
		bad = walk(dir, NULL, verify_one, NULL);
	free(dir);
	return bad ? 1 : 0;
}
