/*
 * cli.h - the chat from the command line: `qnext chat` (full screen, or the
 * line-mode readline chat with --plain or without a terminal) and `qnext
 * [options]`, which is the chat on a terminal and one question otherwise
 * (prompt.h).  Main thread only; the line modes run the engine on the main
 * thread (there is no UI thread).
 */
#ifndef QNEXT_CLI_H
#define QNEXT_CLI_H

/* `qnext [options]` (one question, or the chat when no prompt is given). */
int cli_main(int argc, char **argv);

/* `qnext chat [--plain] [options]`. */
int cli_chat_main(int argc, char **argv);

#endif
