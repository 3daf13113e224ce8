/*
 * cli.h - the line-mode front ends: one question (`qnext -p`), a plain
 * readline chat (`qnext chat --plain`), and the tokenizer-only debugging
 * commands (`qnext tokenize`, `qnext render`).  Main thread only; these
 * modes run the engine on the main thread (there is no UI thread).
 */
#ifndef QNEXT_CLI_H
#define QNEXT_CLI_H

#include <stdio.h>

/* `qnext [options]` (one question, or the chat when no prompt is given). */
int cli_main(int argc, char **argv);

/* `qnext chat [--plain] [options]`. */
int cli_chat_main(int argc, char **argv);

/* `qnext tokenize [-m DIR]`: text on stdin, JSON array of ids on stdout. */
int cli_tokenize_main(int argc, char **argv);

/* `qnext render [-m DIR]`: {"messages": [...], "tools": [...]} on stdin, prompt on stdout. */
int cli_render_main(int argc, char **argv);

/* `qnext list`: one row per saved conversation (ID, updated, messages, title). */
int cli_list_main(int argc, char **argv);

/* `qnext export ID [--format md|json] [-o FILE]`. */
int cli_export_main(int argc, char **argv);

/* `qnext which-model`: print the model directory qnext would use. */
int cli_which_main(int argc, char **argv);

/* Print the usage synopsis (mirrors the man page). */
void cli_usage(FILE *f);

#endif
