/*
 * export.h - `qnext export ID [--format md|json] [-o FILE]`: print a saved
 * conversation from the store, as Markdown or JSON.  Main thread only.
 */
#ifndef QNEXT_EXPORT_H
#define QNEXT_EXPORT_H

/* Entry point for `qnext export ARGS`; returns the process exit status. */
int export_main(int argc, char **argv);

#endif
