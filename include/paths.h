/*
 * paths.h - where qnext finds things: the model directory.
 * Any thread (pure lookups in the environment and the file system).
 */
#ifndef QNEXT_PATHS_H
#define QNEXT_PATHS_H

#include <stdbool.h>

/*
 * qnext's folder under an XDG base directory: $VAR/qnext when VAR holds an
 * absolute path (the XDG spec says to ignore a relative one), else
 * $HOME/HOME_REL/qnext.  malloc'd; NULL when neither is set.
 * paths_xdg_dir("XDG_STATE_HOME", ".local/state") is ~/.local/state/qnext.
 */
char *paths_xdg_dir(const char *var, const char *home_rel);

/*
 * $XDG_STATE_HOME/qnext/NAME (else ~/.local/state/qnext/NAME, else
 * ./.local/state/qnext/NAME without a home), its folder made when missing
 * (a failure shows when the file is opened).  malloc'd.
 */
char *paths_state_file(const char *name);

/*
 * mkdir -p: dir and every missing parent, new ones with mode.  0, or -1
 * with *cause "cannot create directory D: reason".
 */
int paths_mkdirs(const char *dir, unsigned mode, char **cause);

/* Whether dir holds a config.json (a regular file): where a model can be. */
bool paths_is_model_dir(const char *dir);

/* The Hugging Face repository qnext is made for. */
#define PATHS_HF_REPO "Intel/Qwen3-Next-80B-A3B-Thinking-int4-mixed-AutoRound"

/*
 * The model directory to use: `arg` (from -m) when given, else $QNEXT_MODEL,
 * else the newest snapshot of PATHS_HF_REPO in the Hugging Face cache
 * ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub).
 * Returns a malloc'd path, or NULL with *cause saying how to get a model.
 */
char *paths_find_model(const char *arg, char **cause);

#endif
