/*
 * bench.h - `qnext bench`: prefill and decode speed of a model next to the
 * streaming-read bandwidth measured in the same run.  Main thread of the CLI.
 */
#ifndef QNEXT_BENCH_H
#define QNEXT_BENCH_H

/* Entry point for `qnext bench ARGS`; returns the process exit status. */
int bench_main(int argc, char **argv);

#endif
