/*
 * check.h - `qnext check`: verify a model directory's files against
 * reference SHA-256 hashes (the blob names of a Hugging Face cache snapshot,
 * or a qnext-sha256.txt manifest that `qnext check --write` recorded), then
 * run the structural checks (every shard header, every tensor bound).
 *
 * Thread affinity: CLI main thread; it starts and joins its own hashing
 * threads, which share nothing with the rest of the program.
 */
#ifndef QNEXT_CHECK_H
#define QNEXT_CHECK_H

/* The manifest's file name inside a model directory (sha256sum format). */
#define CHECK_MANIFEST_NAME "qnext-sha256.txt"

/*
 * Entry point for `qnext check ARGS`; returns the process exit status:
 * 0 every file verified (or nothing to verify against) and the structure is
 * sound, 1 anything failed or the directory is unusable, 2 usage error.
 */
int check_main(int argc, char **argv);

#endif
