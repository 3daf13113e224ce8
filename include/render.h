/*
 * render.h - `qnext render`: {"messages": [...], "tools": [...]} on stdin, the
 * prompt the built-in chat template renders on stdout.  Main thread only.
 */
#ifndef QNEXT_RENDER_H
#define QNEXT_RENDER_H

/* Entry point for `qnext render ARGS`; returns the process exit status. */
int render_main(int argc, char **argv);

#endif
