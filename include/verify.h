/*
 * verify.h - `qnext verify`: run the engine on a golden prompt and compare
 * logits, greedy continuation and (optionally) hidden states with reference
 * values computed outside qnext.  Main thread of the CLI only.
 */
#ifndef QNEXT_VERIFY_H
#define QNEXT_VERIFY_H

/* Entry point for `qnext verify ARGS`; returns the process exit status
 * (0 pass, 1 mismatch or runtime error, 2 usage error). */
int verify_main(int argc, char **argv);

#endif
