/*
 * cache.h - `qnext cache list|clear|verify`: what qnext keeps under
 * $XDG_CACHE_HOME/qnext (hardware measurements for `plan`, checksum
 * manifests of read-only model directories, saved engine states of
 * conversations in state/: snapshot.h).
 *
 * qnext computes straight from the checkpoint's own mapping (zero-copy; see
 * docs/load-path.md), so there is no repacked-weights cache to build, bind
 * to a checkpoint or invalidate; these commands only show and tidy the
 * files above.  CLI main thread only.
 */
#ifndef QNEXT_CACHE_H
#define QNEXT_CACHE_H

/* Entry point for `qnext cache ARGS`; returns the process exit status. */
int cache_main(int argc, char **argv);

#endif
