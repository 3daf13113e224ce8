/*
 * mkmodel.h - `qnext mkmodel`: write a random checkpoint in the real
 * Qwen3-Next AutoRound layout (MODEL.md §3-4: int4 routed experts, int8
 * attention, DeltaNet and shared-expert projections, BF16 router, shared
 * expert gate, embeddings and lm_head), so load time and speed can be
 * measured without the 43 GB download.  Main thread of the CLI only.
 */
#ifndef QNEXT_MKMODEL_H
#define QNEXT_MKMODEL_H

/* Entry point for `qnext mkmodel ARGS`; returns the process exit status. */
int mkmodel_main(int argc, char **argv);

#endif
