/*
 * paths.h - where qnext finds things: the model directory.
 * Any thread (pure lookups in the environment and the file system).
 */
#ifndef QNEXT_PATHS_H
#define QNEXT_PATHS_H

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
