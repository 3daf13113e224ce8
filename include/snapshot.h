/*
 * snapshot.h - saved engine states on disk, so that reopening a long
 * conversation (another one, or after a restart) does not re-read its prompt.
 *
 * A snapshot is one context's saved state (ctx_save: the attention layers'
 * keys and values below the position and every DeltaNet state) for an exact
 * token prefix, in $XDG_CACHE_HOME/qnext/state/KEY.qsnap, where KEY is a
 * SHA-256 over the model's identity, the context's layout and the tokens.
 * Files are written whole or not at all, checked field by field and by a
 * checksum before use, and evicted least recently used first within a size
 * budget (docs/resume.md).
 *
 * Thread affinity: the thread that owns the context (the engine thread).
 */
#ifndef QNEXT_SNAPSHOT_H
#define QNEXT_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

struct ctx;
struct model;

/* The file format; a file of another version is ignored (and in time evicted). */
#define SNAPSHOT_VERSION 1

/* The budget for SNAPSHOT_AUTO (xcache_parse's "auto", UINT64_MAX): 8 GiB, or less when the
 * disk is short (docs/resume.md "Budget and eviction"). */
#define SNAPSHOT_AUTO           UINT64_MAX
#define SNAPSHOT_BUDGET_DEFAULT ((uint64_t)8 << 30)

struct snapshot_cache;

/*
 * The cache of states for model m as computed by context c (whose layout
 * every snapshot must match), in dir (NULL: $XDG_CACHE_HOME/qnext/state,
 * else ~/.cache/qnext/state), holding at most `budget` bytes (SNAPSHOT_AUTO:
 * SNAPSHOT_BUDGET_DEFAULT).  NULL with *cause when there is no such folder
 * and it cannot be made.  c must outlive the cache.
 */
struct snapshot_cache *snapshot_open(const struct model *m, const struct ctx *c, const char *dir,
				     uint64_t budget, char **cause);
void snapshot_close(struct snapshot_cache *sc); /* accepts NULL */

/* The file that holds (or would hold) the state after tokens[0..n).  malloc'd. */
char *snapshot_path(const struct snapshot_cache *sc, const int32_t *tokens, int n);

/*
 * Write c's saved state, which must be the state after tokens[0..n)
 * (n == ctx_saved_pos), unless a file for that prefix exists (its time of
 * use is then renewed); then evict the least recently used files over the
 * budget.  0, or -1 with *cause (nothing is left behind).
 */
int snapshot_save(struct snapshot_cache *sc, struct ctx *c, const int32_t *tokens, int n,
		  char **cause);

/*
 * Restore into c (as its saved state: the caller then ctx_restore()s) the
 * longest prefix tokens[0..cand[i]) with a good snapshot, trying the
 * candidate lengths cand[0..n_cand) (any order) longest first.  Returns
 * that length, or 0 when none (a missing, stale or damaged file is passed
 * over with a log line).  c's live state is lost whenever a file was read
 * (after a failed read it is reset).
 */
int snapshot_restore(struct snapshot_cache *sc, struct ctx *c, const int32_t *tokens,
		     const int *cand, int n_cand);

/*
 * For `qnext cache verify`: whether the file at path is a whole snapshot of
 * some model (header sane, size right, checksum good).  0, or -1 with *cause.
 */
int snapshot_verify_file(const char *path, char **cause);

/*
 * --state-cache's value: "auto" (SNAPSHOT_AUTO), "off" (0) or a size, as
 * --expert-cache takes them (xcache_parse).  0, or -1 with *cause
 * "--state-cache 'S': expected auto, off or a size such as 2G".  The chat's
 * flag and `qnext serve`'s share it.
 */
int snapshot_budget_parse(const char *s, uint64_t *out, char **cause);

#endif
