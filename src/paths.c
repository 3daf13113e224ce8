/*
 * paths.c - model discovery (see paths.h).
 *
 * The Hugging Face cache keeps a repository under
 * models--OWNER--NAME/snapshots/REVISION/, with refs/main naming the
 * revision a plain `hf download` fetched; that one wins, else any snapshot
 * holding a config.json.
 */
#include "paths.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

char *
paths_xdg_dir(const char *var, const char *home_rel)
{
	const char *x = getenv(var), *home = getenv("HOME");

	if (x != NULL && x[0] == '/')
		return xasprintf("%s/qnext", x);
	if (home != NULL && home[0] != '\0')
		return xasprintf("%s/%s/qnext", home, home_rel);
	return NULL;
}

int
paths_mkdirs(const char *dir, unsigned mode, char **cause)
{
	char *p = xstrdup(dir), c;

	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		c = *s;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
			cause_set(cause, "cannot create directory %s: %s", p, strerror(errno));
			free(p);
			return -1;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return 0;
}

char *
paths_state_file(const char *name)
{
	char *dir = paths_xdg_dir("XDG_STATE_HOME", ".local/state"), *p;

	if (dir == NULL)
		dir = xstrdup("./.local/state/qnext");
	paths_mkdirs(dir, 0700, NULL);
	p = xasprintf("%s/%s", dir, name);
	free(dir);
	return p;
}

bool
paths_is_model_dir(const char *dir)
{
	char *p = xasprintf("%s/config.json", dir);
	struct stat st;
	bool ok = stat(p, &st) == 0 && S_ISREG(st.st_mode);

	free(p);
	return ok;
}

static char *
hub_dir(void)
{
	const char *v;

	if ((v = getenv("HF_HUB_CACHE")) != NULL && *v != '\0')
		return xstrdup(v);
	if ((v = getenv("HF_HOME")) != NULL && *v != '\0')
		return xasprintf("%s/hub", v);
	if ((v = getenv("HOME")) != NULL && *v != '\0')
		return xasprintf("%s/.cache/huggingface/hub", v);
	return NULL;
}

/* The snapshot refs/main names, when it has a config.json. */
static char *
snapshot_main(const char *repo)
{
	/* A commit hash and a newline; 4 KiB is plenty. */
	char *ref = xasprintf("%s/refs/main", repo), *rev = read_file_max(ref, 4096, NULL, NULL);
	char *dir = NULL;

	free(ref);
	if (rev == NULL)
		return NULL;
	rev[strcspn(rev, "\r\n")] = '\0';
	if (rev[0] != '\0' && strchr(rev, '/') == NULL) {
		dir = xasprintf("%s/snapshots/%s", repo, rev);
		if (!paths_is_model_dir(dir)) {
			free(dir);
			dir = NULL;
		}
	}
	free(rev);
	return dir;
}

static char *
snapshot_any(const char *repo)
{
	char *snaps = xasprintf("%s/snapshots", repo), *found = NULL;
	DIR *d = opendir(snaps);
	struct dirent *e;

	while (d != NULL && found == NULL && (e = readdir(d)) != NULL) {
		char *dir;

		if (e->d_name[0] == '.')
			continue;
		dir = xasprintf("%s/%s", snaps, e->d_name);
		if (paths_is_model_dir(dir))
			found = dir;
		else
			free(dir);
	}
	if (d != NULL)
		closedir(d);
	free(snaps);
	return found;
}

static char *
from_hub(void)
{
	char *hub = hub_dir(), *repo, *dir, owner[64];
	const char *name = strchr(PATHS_HF_REPO, '/') + 1;

	if (hub == NULL)
		return NULL;
	/* OWNER/NAME is cached as models--OWNER--NAME. */
	snprintf(owner, sizeof(owner), "%.*s", (int)(name - 1 - PATHS_HF_REPO), PATHS_HF_REPO);
	repo = xasprintf("%s/models--%s--%s", hub, owner, name);
	if ((dir = snapshot_main(repo)) == NULL)
		dir = snapshot_any(repo);
	free(repo);
	free(hub);
	return dir;
}

char *
paths_find_model(const char *arg, char **cause)
{
	const char *env = getenv("QNEXT_MODEL");
	char *dir;

	if (arg != NULL)
		return xstrdup(arg);
	if (env != NULL && *env != '\0')
		return xstrdup(env);
	if ((dir = from_hub()) != NULL)
		return dir;
	cause_set(cause,
		  "no model found (looked at -m, $QNEXT_MODEL and the Hugging Face cache).\n"
		  "Download it (about 43 GB) with:\n"
		  "    hf download %s\n"
		  "or point -m DIR or QNEXT_MODEL at a model directory.  To try qnext without it,\n"
		  "use the tiny test model (random weights, so the text is gibberish):\n"
		  "    qnext -m %s/tiny\n"
		  "(share/tiny in the source tree)",
		  PATHS_HF_REPO, DATADIR);
	return NULL;
}
