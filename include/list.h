/*
 * list.h - `qnext list`: one row per saved conversation (ID, last activity,
 * messages, title), so `qnext export ID` can be used.  Main thread only.
 */
#ifndef QNEXT_LIST_H
#define QNEXT_LIST_H

/* Entry point for `qnext list ARGS`; returns the process exit status. */
int list_main(int argc, char **argv);

#endif
