/*
 * mkmodel.h - `qnext mkmodel`: write a random checkpoint in the real
 * Qwen3-Next AutoRound layout (docs/model-format.md "Checkpoint tensors": int4 routed experts, int8
 * attention, DeltaNet and shared-expert projections, BF16 router, shared
 * expert gate, embeddings and lm_head), so load time and speed can be
 * measured without the 43 GB download.  Main thread of the CLI only.
 */
#ifndef QNEXT_MKMODEL_H
#define QNEXT_MKMODEL_H

#include <stdbool.h>

/* Entry point for `qnext mkmodel ARGS`; returns the process exit status. */
int mkmodel_main(int argc, char **argv);

/*
 * Make the checkpoint directory dir, or accept it when it exists and is
 * empty; a non-empty one only with force, after removing the files a
 * checkpoint consists of (shards, index, configuration and tokenizer files,
 * qnext-sha256.txt; other files stay).  0, or -1 and *cause (one line naming
 * dir).  Also used by `qnext dequant`.
 */
int mkmodel_prepare_dir(const char *dir, bool force, char **cause);

/* Copy the file from to the file to (small files: read whole).  0, or -1 and *cause. */
int mkmodel_copy_file(const char *from, const char *to, char **cause);

#endif
