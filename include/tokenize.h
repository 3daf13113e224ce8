/*
 * tokenize.h - `qnext tokenize [-m DIR]`: the token ids of the text on stdin as a
 * JSON array, for debugging the tokenizer.  Main thread only.
 */
#ifndef QNEXT_TOKENIZE_H
#define QNEXT_TOKENIZE_H

/* Entry point for `qnext tokenize ARGS`; returns the process exit status. */
int tokenize_main(int argc, char **argv);

#endif
