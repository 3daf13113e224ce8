/*
 * test-safetensors.c - engine/safetensors.c against the two golden
 * checkpoints in tests/data, then against malformed files written to a
 * temporary directory: each must give a clean one-line error that names the
 * problem.  Run from the repository root.  Single-threaded.
 */
#include "safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "util.h"

/* GLOBAL: the scratch directory and what was written there, removed at the end. */
static char tmpdir[] = "/tmp/test-safetensors-XXXXXX";
static char *made[64];
static int n_made;

static char *
tmp_path(const char *name)
{
	char *p = xasprintf("%s/%s", tmpdir, name);
	int i;

	for (i = 0; i < n_made && strcmp(made[i], p) != 0; i++)
		;
	if (i == n_made && n_made < (int)ARRAY_LEN(made))
		made[n_made++] = xstrdup(p);
	return p;
}

static void
write_bytes(const char *name, const void *buf, size_t len)
{
	char *p = tmp_path(name);
	FILE *f = fopen(p, "wb");

	if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
		fatal("cannot write %s", p);
	free(p);
}

/* A safetensors file: 8-byte length, `header`, then data_len zero bytes. */
/* A shard with this header, padded with spaces to 8 bytes as writers do
 * unless pad is false, and data_len zero bytes of data. */
static void
write_st_pad(const char *name, const char *header, size_t data_len, bool pad)
{
	size_t hlen = strlen(header), plen = pad ? (hlen + 7) / 8 * 8 : hlen;
	size_t len = 8 + plen + data_len;
	uint8_t *buf = xcalloc(1, len);

	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)((uint64_t)plen >> (8 * i));
	memset(buf + 8, ' ', plen);
	memcpy(buf + 8, header, hlen);
	write_bytes(name, buf, len);
	free(buf);
}

static void
write_st(const char *name, const char *header, size_t data_len)
{
	write_st_pad(name, header, data_len, true);
}

static void
check_tensor(const struct st_set *s, const char *name, enum st_dtype dt, int n_dims, int64_t d0,
	     int64_t d1, uint32_t first_word)
{
	const struct st_tensor *t = st_find(s, name);
	uint32_t w;

	T_ASSERT(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "  missing tensor %s\n", name);
		return;
	}
	T_ASSERT(strcmp(t->name, name) == 0);
	T_EQ_INT(t->dtype, dt);
	T_EQ_INT(t->n_dims, n_dims);
	T_EQ_INT(t->shape[0], d0);
	if (n_dims > 1)
		T_EQ_INT(t->shape[1], d1);
	T_EQ_INT(t->n_elems, d0 * (n_dims > 1 ? d1 : 1));
	T_EQ_INT(t->n_bytes, (size_t)t->n_elems * st_dtype_size(dt));
	memcpy(&w, t->data, sizeof(w));
	T_EQ_INT(w, first_word);
}

/* Every tensor lies inside its shard's mapping, and st_at runs in name order. */
static void
check_layout(const struct st_set *s)
{
	int bad = 0;

	for (size_t i = 0; i < st_count(s); i++) {
		const struct st_tensor *t = st_at(s, i);
		size_t len;
		const uint8_t *base = st_shard_base(s, t->shard, &len);
		const uint8_t *p = t->data;

		if (p < base + 8 || p + t->n_bytes > base + len)
			bad++;
		if (i > 0 && strcmp(st_at(s, i - 1)->name, t->name) >= 0)
			bad++;
		if (st_find(s, t->name) != t)
			bad++;
	}
	T_EQ_INT(bad, 0);
	T_ASSERT(st_at(s, st_count(s)) == NULL);
}

static void
test_tiny(void)
{
	char *cause = NULL;
	struct st_set *s = st_open_dir("share/tiny", &cause);

	T_ASSERT(s != NULL);
	if (s == NULL) {
		fprintf(stderr, "  %s\n", cause);
		free(cause);
		return;
	}
	T_EQ_INT(st_count(s), 680);
	T_EQ_INT(st_shard_count(s), 2);
	T_STR_CONTAINS(st_shard_path(s, 0), "share/tiny/model-00001-of-00002.safetensors");
	T_ASSERT(st_shard_path(s, 2) == NULL);
	T_EQ_INT(st_total_bytes(s), 5242224); /* the index's metadata.total_size */
	check_tensor(s, "model.layers.0.linear_attn.in_proj_qkvz.qweight", ST_I32, 2, 64, 384,
		     0x8bc79d22);
	check_tensor(s, "lm_head.weight", ST_BF16, 2, 1088, 256, 0xbd2dbe68);
	check_tensor(s, "model.norm.weight", ST_BF16, 1, 256, 0, 0xbd263d60);
	check_tensor(s, "model.layers.3.self_attn.q_proj.scales", ST_F16, 2, 2, 512, 0x1499155b);
	check_tensor(s, "model.layers.0.mlp.experts.3.up_proj.qzeros", ST_I32, 2, 2, 16,
		     0x77777777);
	T_EQ_INT(st_find(s, "model.layers.0.linear_attn.in_proj_qkvz.qweight")->shard, 0);
	T_EQ_INT(st_find(s, "lm_head.weight")->shard, 1);
	T_ASSERT(st_find(s, "lm_head.weigh") == NULL);
	T_ASSERT(st_find(s, "") == NULL);
	T_ASSERT(st_find(s, "zzz") == NULL);
	check_layout(s);
	st_close(s);
}

static void
test_small(void)
{
	char *cause = NULL;
	struct st_set *s = st_open_dir("tests/data/small", &cause);

	T_ASSERT(s != NULL);
	if (s == NULL) {
		fprintf(stderr, "  %s\n", cause);
		free(cause);
		return;
	}
	T_EQ_INT(st_count(s), 2535);
	T_EQ_INT(st_shard_count(s), 2);
	T_EQ_INT(st_total_bytes(s), 13072896);
	check_tensor(s, "model.layers.0.linear_attn.in_proj_qkvz.qweight", ST_I32, 2, 64, 1536,
		     0x5e0053a4);
	check_tensor(s, "lm_head.weight", ST_BF16, 2, 1920, 256, 0xbe693ca9);
	check_tensor(s, "model.layers.3.self_attn.q_proj.scales", ST_F16, 2, 4, 1024, 0x14e71515);
	check_layout(s);
	st_close(s);
}

static void
test_golden(void)
{
	char *cause = NULL;
	struct st_set *s = st_open_file("share/tiny/golden.safetensors", &cause);
	const struct st_tensor *t;
	float f;

	T_ASSERT(s != NULL);
	if (s == NULL) {
		fprintf(stderr, "  %s\n", cause);
		free(cause);
		return;
	}
	T_EQ_INT(st_count(s), 5);
	T_EQ_INT(st_shard_count(s), 1);
	t = st_find(s, "logits");
	T_ASSERT(t != NULL && t->dtype == ST_F32 && t->n_dims == 2);
	T_ASSERT(t != NULL && t->shape[0] == 153 && t->shape[1] == 1088);
	if (t != NULL) {
		memcpy(&f, t->data, sizeof(f));
		T_NEAR(f, -4.034426689, 1e-6);
	}
	t = st_find(s, "hidden");
	T_ASSERT(t != NULL && t->n_dims == 3 && t->n_elems == 5 * 153 * 256);
	check_layout(s);
	st_close(s);
}

static void
test_dtypes(void)
{
	T_EQ_INT(st_dtype_size(ST_BF16), 2);
	T_EQ_INT(st_dtype_size(ST_I64), 8);
	T_EQ_INT(st_dtype_size(ST_F8_E5M2), 1);
	T_ASSERT(strcmp(st_dtype_name(ST_F8_E4M3), "F8_E4M3") == 0);
	T_ASSERT(strcmp(st_dtype_name(ST_BOOL), "BOOL") == 0);
}

/* Write `header` + data_len bytes, open it, expect failure mentioning `needle`. */
static void
expect_bad(const char *header, size_t data_len, const char *needle)
{
	char *cause = NULL, *p = tmp_path("bad.safetensors");
	struct st_set *s;

	write_st("bad.safetensors", header, data_len);
	s = st_open_file(p, &cause);
	T_ASSERT(s == NULL);
	T_STR_CONTAINS(cause, needle);
	T_STR_CONTAINS(cause, "bad.safetensors: ");
	T_ASSERT(cause != NULL && strchr(cause, '\n') == NULL);
	st_close(s);
	free(cause);
	free(p);
}

static void
expect_ok(const char *header, size_t data_len, size_t n_tensors)
{
	char *cause = NULL, *p = tmp_path("ok.safetensors");
	struct st_set *s;

	write_st("ok.safetensors", header, data_len);
	s = st_open_file(p, &cause);
	T_ASSERT(s != NULL);
	if (s == NULL)
		fprintf(stderr, "  unexpected: %s\n", cause);
	else
		T_EQ_INT(st_count(s), n_tensors);
	st_close(s);
	free(cause);
	free(p);
}

static void
test_bad_headers(void)
{
	expect_bad("{\"a\": ", 0, "not valid JSON");
	expect_bad("[1, 2]", 0, "header is not a JSON object");
	expect_bad("{\"a\": {\"dtype\": \"q4!\", \"shape\": [2], \"data_offsets\": [0, 2]}}", 2,
		   "tensor 'a': dtype 'q4!' is not a safetensors dtype");
	/* A dtype qnext does not know is kept as opaque bytes (an mtp.* tensor). */
	expect_ok("{\"mtp.a\": {\"dtype\": \"F4\", \"shape\": [2, 8], \"data_offsets\": [0, 8]}}",
		  8, 1);
	expect_bad("{\"a\": {\"dtype\": 7, \"shape\": [2], \"data_offsets\": [0, 2]}}", 2,
		   "tensor 'a': dtype is missing or not a string");
	expect_bad("{\"a\": {\"shape\": [2], \"data_offsets\": [0, 2]}}", 2, "dtype is missing");
	expect_bad("{\"a\": 5}", 0, "tensor 'a': entry is not an object");
	expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": 2, \"data_offsets\": [0, 2]}}", 2,
		   "shape is missing or not an array");
	expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [-2], \"data_offsets\": [0, 2]}}", 2,
		   "non-negative integers");
	expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [2.5], \"data_offsets\": [0, 2]}}", 2,
		   "non-negative integers");
	expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], "
		   "\"data_offsets\": [0, 1]}}",
		   1, "9 dimensions (at most 8)");
	expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [4294967296, 4294967296], "
		   "\"data_offsets\": [0, 0]}}",
		   0, "element count overflows");
	expect_bad("{\"a\": {\"dtype\": \"F64\", \"shape\": [2305843009213693952], "
		   "\"data_offsets\": [0, 0]}}",
		   0, "byte size overflows");
	expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0]}}", 2,
		   "data_offsets is not a pair");
	expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, -2]}}", 2,
		   "data_offsets is not a pair");
	expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [4, 2]}}", 4,
		   "data_offsets [4, 2] end before they begin");
	expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}, "
		   "\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [2, 4]}}",
		   4, "duplicate");
	expect_bad("{\"__metadata__\": [1]}", 0, "__metadata__ is not an object");
	expect_bad("{\"__metadata__\": {\"format\": 1}}", 0, "__metadata__ value is not a string");
	expect_bad("{\"a\\nb\": {\"dtype\": \"x\", \"shape\": [], \"data_offsets\": [0, 1]}}", 1,
		   "tensor 'a?b': dtype 'x' is not a safetensors dtype");
}

static void
test_bad_ranges(void)
{
	/* An unpadded header (45 bytes) leaves I32 data at file offset 53. */
	{
		char *cause = NULL, *p = tmp_path("odd.safetensors");
		struct st_set *s;

		write_st_pad("odd.safetensors",
			     "{\"q\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
			     false);
		s = st_open_file(p, &cause);
		T_ASSERT(s == NULL);
		T_STR_CONTAINS(cause, "tensor 'q': data at offset 0 is not aligned to its 4-byte");
		st_close(s);
		free(cause);
		free(p);
	}
	/* shape x dtype != byte length */
	expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 8]}}", 16,
		   "tensor 'w': data_offsets [0, 8] hold 8 bytes but F32 [2, 2] needs 16");
	/* out of range */
	expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", 16,
		   "tensor 'w': data_offsets [8, 24] are past the end of the data area (16 bytes)");
	/* overlapping */
	expect_bad(
		"{\"x.weight\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, "
		"\"y.weight\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [12, 28]}}",
		32, "tensor 'y.weight': data_offsets [12, 28] overlap tensor 'x.weight'");
	/* one tensor inside another, listed first */
	expect_bad("{\"in\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [4, 6]}, "
		   "\"out\": {\"dtype\": \"U8\", \"shape\": [10], \"data_offsets\": [0, 10]}}",
		   10, "tensor 'in': data_offsets [4, 6] overlap tensor 'out'");
	/* identical ranges */
	expect_bad("{\"p\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}, "
		   "\"q\": {\"dtype\": \"I16\", \"shape\": [1], \"data_offsets\": [0, 2]}}",
		   2, "overlap tensor");
	/* adjacent, empty, gapped and scalar tensors are all fine */
	expect_ok("{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}, "
		  "\"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [2, 4]}, "
		  "\"e\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [1, 1]}, "
		  "\"z\": {\"dtype\": \"I64\", \"shape\": [4611686018427387904, 4, 0], "
		  "\"data_offsets\": [4, 4]}, "
		  "\"s\": {\"dtype\": \"I32\", \"shape\": [], \"data_offsets\": [8, 12]}, "
		  "\"__metadata__\": {\"format\": \"pt\"}}",
		  12, 5);
}

static void
test_bad_files(void)
{
	static const uint8_t short_file[5] = { 1, 2, 3, 4, 5 };
	static const uint8_t past_eof[12] = { 0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ' };
	static const uint8_t empty[10] = { 2, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
	static const uint8_t huge[16] = { 0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}' };
	char *cause = NULL, *p = tmp_path("bad.safetensors");
	size_t n = 99;

	write_bytes("bad.safetensors", short_file, sizeof(short_file));
	T_ASSERT(st_open_file(p, &cause) == NULL);
	T_STR_CONTAINS(cause, "file is 5 bytes, too short");
	write_bytes("bad.safetensors", "", 0);
	T_ASSERT(st_open_file(p, &cause) == NULL);
	T_STR_CONTAINS(cause, "file is 0 bytes");
	write_bytes("bad.safetensors", past_eof, sizeof(past_eof));
	T_ASSERT(st_open_file(p, &cause) == NULL);
	T_STR_CONTAINS(cause, "header length 1000 is past the end of the file (12 bytes");
	write_bytes("bad.safetensors", huge, sizeof(huge));
	T_ASSERT(st_open_file(p, &cause) == NULL);
	T_STR_CONTAINS(cause, "header length 9223372036854775808 is past the end");
	T_ASSERT(st_open_file("/nonexistent/x.safetensors", &cause) == NULL);
	T_STR_CONTAINS(cause, "/nonexistent/x.safetensors: No such file");
	T_ASSERT(st_open_file("/tmp", &cause) == NULL);
	T_STR_CONTAINS(cause, "/tmp: not a regular file");

	/* A truncated shard: the header promises more data than the file holds. */
	write_st("bad.safetensors",
		 "{\"w\": {\"dtype\": \"BF16\", \"shape\": [8], \"data_offsets\": [0, 16]}}", 10);
	T_ASSERT(st_open_file(p, &cause) == NULL);
	T_STR_CONTAINS(cause, "past the end of the data area (10 bytes)");

	/* The memory entry point, without a cause and with one. */
	T_EQ_INT(st_parse_check(short_file, sizeof(short_file), "mem", &n, NULL), -1);
	T_EQ_INT(st_parse_check(past_eof, sizeof(past_eof), "mem", &n, &cause), -1);
	T_STR_CONTAINS(cause, "mem: header length 1000");
	T_EQ_INT(st_parse_check(empty, sizeof(empty), "mem", &n, &cause), 0);
	T_EQ_INT(n, 0);
	free(cause);
	free(p);

	/* An empty header and a file that is nothing but a header. */
	expect_ok("{}", 0, 0);
	expect_ok("{\"e\": {\"dtype\": \"BOOL\", \"shape\": [0], \"data_offsets\": [0, 0]}}", 0, 1);
}

/* Write an index whose weight_map is `map` (the JSON object text). */
static void
write_index(const char *map)
{
	char *text = xasprintf("{\"metadata\": {\"total_size\": 0}, \"weight_map\": %s}", map);

	write_bytes("model.safetensors.index.json", text, strlen(text));
	free(text);
}

static void
expect_dir_bad(const char *needle)
{
	char *cause = NULL;
	struct st_set *s = st_open_dir(tmpdir, &cause);

	T_ASSERT(s == NULL);
	T_STR_CONTAINS(cause, needle);
	st_close(s);
	free(cause);
}

static void
test_dirs(void)
{
	char *cause = NULL;
	struct st_set *s;

	expect_dir_bad("no model.safetensors.index.json or model.safetensors");
	T_ASSERT(st_open_dir("/nonexistent-qnext-dir", &cause) == NULL);
	T_STR_CONTAINS(cause, "/nonexistent-qnext-dir: No such file");
	free(cause);
	cause = NULL;

	/* Without an index, model.safetensors alone. */
	write_st("model.safetensors",
		 "{\"w\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [0, 3]}}", 3);
	s = st_open_dir(tmpdir, &cause);
	T_ASSERT(s != NULL && st_count(s) == 1 && st_find(s, "w") != NULL);
	st_close(s);

	write_st("model-1.safetensors",
		 "{\"a\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [0, 3]}, "
		 "\"extra\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [3, 4]}}",
		 4);
	write_st("model-2.safetensors",
		 "{\"b\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4);
	write_index("{\"a\": \"model-1.safetensors\", \"b\": \"model-2.safetensors\"}");
	s = st_open_dir(tmpdir, &cause);
	T_ASSERT(s != NULL);
	if (s != NULL) {
		T_EQ_INT(st_count(s), 3);
		T_EQ_INT(st_shard_count(s), 2);
		T_ASSERT(st_find(s, "extra") != NULL); /* in a shard, not in the map */
		T_EQ_INT(st_find(s, "b")->shard, 1);
		T_EQ_INT(st_total_bytes(s), 8);
	}
	st_close(s);
}

/* Needs the shards test_dirs wrote. */
static void
test_bad_dirs(void)
{
	char *p;

	write_index("{\"a\": \"model-1.safetensors\", \"zz\": \"model-2.safetensors\"}");
	expect_dir_bad("model.safetensors.index.json: tensor 'zz' mapped to "
		       "'model-2.safetensors' but not found there");
	write_index("{\"a\": \"model-2.safetensors\", \"b\": \"model-2.safetensors\"}");
	expect_dir_bad("tensor 'a' mapped to 'model-2.safetensors' but not found there");
	write_index("{\"a\": \"model-1.safetensors\", \"b\": \"model-3.safetensors\"}");
	expect_dir_bad("model-3.safetensors: No such file or directory");
	write_index("{\"a\": \"../model-1.safetensors\"}");
	expect_dir_bad("shard name '../model-1.safetensors' is not a plain file name");
	write_index("{\"a\": \"/etc/passwd\"}");
	expect_dir_bad("is not a plain file name");
	write_index("{}");
	expect_dir_bad("weight_map is missing, empty or not an object");
	write_index("{\"a\": 3}");
	expect_dir_bad("weight_map: value for 'a' is not a string");
	write_bytes("model.safetensors.index.json", "{\"weight_map\": {", 16);
	expect_dir_bad("model.safetensors.index.json: ");

	/* The same name in two shards. */
	write_st("model-2.safetensors",
		 "{\"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4);
	write_index("{\"a\": \"model-1.safetensors\", \"extra\": \"model-2.safetensors\"}");
	expect_dir_bad("tensor 'a' is defined in both");

	/* A malformed shard named by the index is reported with its file name. */
	write_st("model-2.safetensors", "{\"a\": ", 0);
	expect_dir_bad("model-2.safetensors: header is not valid JSON");

	p = tmp_path("model.safetensors.index.json");
	unlink(p);
	free(p);
}

static void
cleanup(void)
{
	for (int i = 0; i < n_made; i++) {
		unlink(made[i]);
		free(made[i]);
	}
	rmdir(tmpdir);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL)
		fatal("mkdtemp failed");
	test_dtypes();
	test_tiny();
	test_small();
	test_golden();
	test_bad_headers();
	test_bad_ranges();
	test_bad_files();
	test_dirs();
	test_bad_dirs();
	cleanup();
	return t_done("test-safetensors");
}
