/*
 * safetensors.h - read-only access to Hugging Face safetensors checkpoints.
 *
 * A model directory holds either one `model.safetensors` or a
 * `model.safetensors.index.json` naming several shards.  Every shard is
 * mmapped read-only (PROT_READ, MAP_PRIVATE; the fd is closed right after
 * mapping) and tensors point straight into the mapping: nothing is copied.
 * Every header is validated before anything is handed out: header length
 * inside the file, JSON well formed, known dtype, shape x dtype size equal to
 * the byte range, byte ranges inside the data area and not overlapping.
 *
 * Thread affinity: opening happens on one thread (the engine thread or a CLI
 * tool); the returned set is immutable and may be read from any thread until
 * st_close().
 */
#ifndef QNEXT_SAFETENSORS_H
#define QNEXT_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum st_dtype {
	ST_F32,
	ST_F16,
	ST_BF16,
	ST_I32,
	ST_I64,
	ST_I16,
	ST_I8,
	ST_U8,
	ST_BOOL,
	ST_F64,
	ST_F8_E4M3,
	ST_F8_E5M2,
	/* A dtype qnext does not know (F4, U32, ...): the tensor is kept as
	 * opaque bytes, so a checkpoint whose unused tensors (mtp.*, extra
	 * shards) have one still loads; a tensor qnext needs is refused when bound. */
	ST_UNKNOWN,
};

#define ST_MAX_DIMS 8

struct st_tensor {
	const char *name; /* owned by the set */
	enum st_dtype dtype;
	int n_dims;
	int64_t shape[ST_MAX_DIMS]; /* shape[0] is the slowest-varying dimension */
	int64_t n_elems;            /* product of shape (1 for a scalar) */
	const void *data;           /* into the shard's mapping; never written */
	size_t n_bytes;
	int shard; /* index into the set's shard list */
};

struct st_set; /* opaque: the shards of one model directory */

/*
 * Open the checkpoint in directory `dir`: `model.safetensors.index.json` when
 * present (every shard it names is opened, every tensor it maps must exist in
 * the shard it names), else `model.safetensors`.  Returns NULL and sets *cause
 * (malloc'd, one line naming the file and, where relevant, the tensor) on any
 * problem.  Free with st_close().
 */
struct st_set *st_open_dir(const char *dir, char **cause);

/* Open a single safetensors file as a one-shard set (tests, golden files). */
struct st_set *st_open_file(const char *path, char **cause);

/* Release the mappings and all memory.  Accepts NULL. */
void st_close(struct st_set *set);

/*
 * Whether a mapped shard (of any set) has lost pages since start: the file
 * shrank while in use.  Its lost pages now read as zeros, so whatever was
 * computed from them is wrong.  Any thread.
 */
bool st_changed(void);

/* Look a tensor up by exact name; NULL when absent.  O(log n) or better. */
const struct st_tensor *st_find(const struct st_set *set, const char *name);

/* Number of tensors, and the i-th (0 <= i < st_count) in name order. */
size_t st_count(const struct st_set *set);
const struct st_tensor *st_at(const struct st_set *set, size_t i);

/* Shards: count, path of shard i, and its mapping (for madvise/prefetch). */
/* Does name look like Hugging Face's "model-00001-of-00009.safetensors"? */
bool st_is_shard_name(const char *name);
int st_shard_count(const struct st_set *set);
const char *st_shard_path(const struct st_set *set, int i);
const void *st_shard_base(const struct st_set *set, int i, size_t *len);

/* Total bytes of tensor data over all shards. */
uint64_t st_total_bytes(const struct st_set *set);

/* Element size in bytes of a dtype, and its safetensors spelling ("BF16"). */
size_t st_dtype_size(enum st_dtype dt);
const char *st_dtype_name(enum st_dtype dt);

/*
 * Parse and validate one safetensors header from memory: `buf` holds the whole
 * file (`len` bytes).  On success returns 0 and the number of tensors in
 * *n_tensors; on failure -1 with *cause naming the problem (prefixed by
 * `what`, normally the file name).  This is the function the fuzz harness
 * drives; st_open_* use it.
 */
int st_parse_check(const uint8_t *buf, size_t len, const char *what, size_t *n_tensors,
		   char **cause);

#endif
