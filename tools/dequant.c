/*
 * dequant.c - write a dequantized float copy of a checkpoint (see dequant.h).
 *
 * The checkpoint is opened as the engine opens it (model_open: every module
 * bound and checked against config.json), then every tensor of its shards is
 * planned into the copy: a module's qweight becomes `<module>.weight`
 * [n_out][n_in] in the chosen dtype, its qzeros and scales go, and every other
 * tensor keeps its dtype and bytes.  Those are the float tensors (norms,
 * router, embeddings, conv kernels, A_log): copying them loses nothing, and
 * llama.cpp's converter picks their GGUF types itself whatever they arrive in.
 *
 * Shards of at most --shard-gb are written one tensor at a time, a quantized
 * one row by row through qmat_row_f32 (the scalar dequantizer every kernel
 * tier is tested against), so memory stays at two rows whatever the model's
 * size: W[o][i] = scale[g][o] * (q[i][o] - zero[g][o]) in float32, exact, then
 * rounded to BF16 or F16 unless F32 was asked for.  config.json loses its
 * quantization_config; the tokenizer and generation files are copied; the
 * copy is opened again at the end as the engine would open it.
 *
 * CLI main thread only.
 */
#include "dequant.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kernels.h"
#include "mkmodel.h"
#include "model.h"
#include "safetensors.h"
#include "subcmd.h"
#include "util.h"

enum out_dtype {
	OUT_BF16,
	OUT_F16,
	OUT_F32,
};

struct dqopts {
	const char *model; /* the AutoRound checkpoint */
	const char *out;   /* the directory the copy goes to */
	enum out_dtype dtype;
	double shard_gb; /* largest shard, in 1e9 bytes (one bigger tensor gets its own) */
	bool force;      /* replace the checkpoint in a non-empty out */
};

struct out_tensor {
	char *name;                  /* name in the copy */
	const struct st_tensor *src; /* copied as is, or the module's qweight */
	bool quant;                  /* dequantized from W, else src copied */
	struct qmat W;               /* when quant: bound as the loader binds it */
	int64_t bytes;               /* bytes in the copy */
	int shard;
};

struct dqplan {
	struct out_tensor *t; /* [n] in the source's name order */
	int n, cap, n_shards, n_quant;
	uint64_t total; /* bytes of tensor data in the copy */
};

static const char *
dtype_st(enum out_dtype d)
{
	switch (d) {
	case OUT_BF16:
		return "BF16";
	case OUT_F16:
		return "F16";
	case OUT_F32:
		return "F32";
	}
	return "?";
}

static size_t
dtype_size(enum out_dtype d)
{
	return d == OUT_F32 ? 4 : 2;
}

/* Whether name ends in "." suffix; *len gets the length of the part before the dot. */
static bool
has_suffix(const char *name, const char *suffix, size_t *len)
{
	size_t n = strlen(name), s = strlen(suffix);

	if (n <= s + 1 || name[n - s - 1] != '.' || strcmp(name + n - s, suffix) != 0)
		return false;
	*len = n - s - 1;
	return true;
}

/* ---- planning ------------------------------------------------------------ */

static struct out_tensor *
plan_push(struct dqplan *p)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 1024;
		p->t = xrealloc(p->t, (size_t)p->cap * sizeof(*p->t));
	}
	memset(&p->t[p->n], 0, sizeof(p->t[0]));
	return &p->t[p->n++];
}

/* Is t the qzeros, scales or g_idx of a module whose qweight is in the set? */
static bool
quant_companion(const struct st_set *st, const char *name)
{
	static const char *sfx[] = { "qzeros", "scales", "g_idx" };
	size_t len;

	for (size_t i = 0; i < ARRAY_LEN(sfx); i++) {
		if (has_suffix(name, sfx[i], &len)) {
			char *q = xasprintf("%.*s.qweight", (int)len, name);
			bool found = st_find(st, q) != NULL;

			free(q);
			return found;
		}
	}
	return false;
}

/* The module of qweight tensor t, bound, as one output tensor. */
static int
plan_quant(const struct model *m, struct dqplan *p, const struct st_tensor *t, size_t len,
	   enum out_dtype dtype, char **cause)
{
	char *module = xasprintf("%.*s", (int)len, t->name);
	char *name = xasprintf("%s.weight", module);
	struct out_tensor *o;
	struct qmat W;

	if (model_bind_gptq(m, module, &W, cause) != 0)
		goto fail;
	if (st_find(m->st, name) != NULL) {
		cause_set(cause, "%s: module '%s' has both a qweight and a weight tensor", m->dir,
			  module);
		goto fail;
	}
	o = plan_push(p);
	o->name = name;
	o->src = t;
	o->quant = true;
	o->W = W;
	o->bytes = (int64_t)W.n_out * W.n_in * (int64_t)dtype_size(dtype);
	p->n_quant++;
	free(module);
	return 0;
fail:
	free(name);
	free(module);
	return -1;
}

/* Every tensor of m's shards into p, then the split into shards. */
static int
plan_copy(const struct model *m, const struct dqopts *opt, struct dqplan *p, char **cause)
{
	int64_t limit = (int64_t)(opt->shard_gb * 1e9), acc = 0;

	for (size_t i = 0; i < st_count(m->st); i++) {
		const struct st_tensor *t = st_at(m->st, i);
		struct out_tensor *o;
		size_t len;

		if (has_suffix(t->name, "qweight", &len)) {
			if (plan_quant(m, p, t, len, opt->dtype, cause) != 0)
				return -1;
			continue;
		}
		if (quant_companion(m->st, t->name))
			continue;
		o = plan_push(p);
		o->name = xstrdup(t->name);
		o->src = t;
		o->bytes = (int64_t)t->n_bytes;
	}
	p->n_shards = 1;
	for (int i = 0; i < p->n; i++) {
		if (acc > 0 && acc + p->t[i].bytes > limit) {
			p->n_shards++;
			acc = 0;
		}
		p->t[i].shard = p->n_shards - 1;
		acc += p->t[i].bytes;
		p->total += (uint64_t)p->t[i].bytes;
	}
	return 0;
}

static void
plan_release(struct dqplan *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->t[i].name);
	free(p->t);
}

/* ---- writing ------------------------------------------------------------- */

static char *
shard_name(const struct dqplan *p, int k)
{
	if (p->n_shards == 1)
		return xstrdup("model.safetensors");
	return xasprintf("model-%05d-of-%05d.safetensors", k + 1, p->n_shards);
}

/* The safetensors header of shard k, as compact JSON; caller frees. */
static char *
shard_header(const struct dqplan *p, int k, enum out_dtype dtype)
{
	json_t *h = json_object();
	int64_t off = 0;
	char *js;

	json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
	for (int i = 0; i < p->n; i++) {
		const struct out_tensor *t = &p->t[i];
		json_t *shape;

		if (t->shard != k)
			continue;
		shape = json_array();
		if (t->quant) {
			json_array_append_new(shape, json_integer(t->W.n_out));
			json_array_append_new(shape, json_integer(t->W.n_in));
		} else {
			for (int d = 0; d < t->src->n_dims; d++)
				json_array_append_new(shape, json_integer(t->src->shape[d]));
		}
		json_object_set_new(
			h, t->name,
			json_pack("{s:s, s:o, s:[I, I]}", "dtype",
				  t->quant ? dtype_st(dtype) : st_dtype_name(t->src->dtype),
				  "shape", shape, "data_offsets", (json_int_t)off,
				  (json_int_t)(off + t->bytes)));
		off += t->bytes;
	}
	js = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(h);
	return js;
}

/* Round row[n] into buf in dtype; -1 when a value does not fit F16. */
static int
convert_row(const float *row, int n, enum out_dtype dtype, void *buf)
{
	uint16_t *h = buf;

	switch (dtype) {
	case OUT_F32:
		memcpy(buf, row, (size_t)n * sizeof(float));
		return 0;
	case OUT_BF16:
		for (int i = 0; i < n; i++)
			h[i] = f32_to_bf16(row[i]);
		return 0;
	case OUT_F16:
		for (int i = 0; i < n; i++) {
			if (fabsf(row[i]) > 65504.0f)
				return -1;
			h[i] = f32_to_fp16(row[i]);
		}
		return 0;
	}
	return 0;
}

/* One dequantized module, row by row. */
static int
write_quant(FILE *f, const char *path, const struct out_tensor *t, enum out_dtype dtype,
	    char **cause)
{
	size_t n = (size_t)t->W.n_in, rb = n * dtype_size(dtype);
	float *row = xmalloc(n * sizeof(float));
	void *buf = xmalloc(rb);
	int rc = 0;

	for (int o = 0; o < t->W.n_out && rc == 0; o++) {
		qmat_row_f32(&t->W, o, row);
		if (convert_row(row, t->W.n_in, dtype, buf) != 0)
			rc = cause_set(cause,
				       "%s: tensor '%s', row %d: a weight exceeds the F16 range; "
				       "use --dtype bf16 or f32",
				       path, t->name, o);
		else if (fwrite(buf, 1, rb, f) != rb)
			rc = cause_set(cause, "%s: write failed: %s", path, strerror(errno));
	}
	free(buf);
	free(row);
	return rc;
}

static int
write_tensor(FILE *f, const char *path, const struct out_tensor *t, enum out_dtype dtype,
	     char **cause)
{
	if (t->quant)
		return write_quant(f, path, t, dtype, cause);
	if (fwrite(t->src->data, 1, t->src->n_bytes, f) != t->src->n_bytes)
		return cause_set(cause, "%s: write failed: %s", path, strerror(errno));
	return 0;
}

/* Shard k: header padded with spaces so the data starts 8-byte aligned, then the data. */
static int
write_shard(const struct dqplan *p, const struct dqopts *opt, int k, char **cause)
{
	char *name = shard_name(p, k), *path = xasprintf("%s/%s", opt->out, name);
	char *js = shard_header(p, k, opt->dtype);
	size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
	uint64_t len = hl + pad, bytes = 0;
	double t0 = now_sec();
	FILE *f = fopen(path, "wb");
	int rc = -1;

	if (f == NULL) {
		cause_set(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 22);
	if (fwrite(&len, 8, 1, f) != 1 || fwrite(js, 1, hl, f) != hl ||
	    fwrite("        ", 1, pad, f) != pad) {
		cause_set(cause, "%s: write failed: %s", path, strerror(errno));
		goto out;
	}
	for (int i = 0; i < p->n; i++) {
		if (p->t[i].shard != k)
			continue;
		if (write_tensor(f, path, &p->t[i], opt->dtype, cause) != 0)
			goto out;
		bytes += (uint64_t)p->t[i].bytes;
	}
	rc = fclose(f) == 0 ? 0 : cause_set(cause, "%s: %s", path, strerror(errno));
	f = NULL;
	if (rc == 0)
		fprintf(stderr, "  %s  %.2f GB in %.1f s\n", name, bytes / 1e9, now_sec() - t0);
out:
	if (f != NULL)
		fclose(f);
	if (rc != 0)
		unlink(path); /* no shard that looks whole but is not */
	free(js);
	free(path);
	free(name);
	return rc;
}

static int
write_json(const char *dir, const char *file, json_t *j, char **cause)
{
	char *path = xasprintf("%s/%s", dir, file);
	int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (rc != 0)
		cause_set(cause, "%s: cannot write: %s", path, strerror(errno));
	free(path);
	json_decref(j);
	return rc == 0 ? 0 : -1;
}

static int
write_index(const struct dqplan *p, const struct dqopts *opt, char **cause)
{
	json_t *map;

	if (p->n_shards == 1)
		return 0;
	map = json_object();
	for (int i = 0; i < p->n; i++) {
		char *s = shard_name(p, p->t[i].shard);

		json_object_set_new(map, p->t[i].name, json_string(s));
		free(s);
	}
	return write_json(opt->out, "model.safetensors.index.json",
			  json_pack("{s:{s:I}, s:o}", "metadata", "total_size",
				    (json_int_t)p->total, "weight_map", map),
			  cause);
}

/* config.json without quantization_config: what a float checkpoint's says. */
static int
write_config(const struct dqopts *opt, char **cause)
{
	static const char *torch[] = {
		[OUT_BF16] = "bfloat16", [OUT_F16] = "float16", [OUT_F32] = "float32"
	};
	char *path = xasprintf("%s/config.json", opt->model);
	json_t *c = json_read_file(path, READ_MAX_CONFIG, cause);

	if (c == NULL || !json_is_object(c)) {
		if (c != NULL)
			cause_set(cause, "%s: not a JSON object", path);
		json_decref(c);
		free(path);
		return -1;
	}
	free(path);
	json_object_del(c, "quantization_config");
	json_object_set_new(c, "torch_dtype", json_string(torch[opt->dtype]));
	return write_json(opt->out, "config.json", c, cause);
}

/* The tokenizer and generation files that exist beside the model. */
static int
copy_side_files(const struct dqopts *opt, char **cause)
{
	static const char *files[] = {
		"tokenizer.json",
		"tokenizer_config.json",
		"generation_config.json",
		"vocab.json",
		"merges.txt",
		"special_tokens_map.json",
		"added_tokens.json",
		"chat_template.jinja",
	};

	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		char *a = xasprintf("%s/%s", opt->model, files[i]);
		char *b = xasprintf("%s/%s", opt->out, files[i]);
		int rc = access(a, F_OK) == 0 ? mkmodel_copy_file(a, b, cause) : 0;

		free(a);
		free(b);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* The copy, opened as the engine opens it: every module bound. */
static int
check_copy(const struct dqopts *opt, char **cause)
{
	struct model *m = model_open(opt->out, cause);
	char *d;

	if (m == NULL)
		return -1;
	d = model_describe(m);
	fprintf(stderr, "the copy loads: %s\n", d);
	free(d);
	model_close(m);
	return 0;
}

/* ---- the command ---------------------------------------------------------- */

/* Refuse -o naming the model's own directory (--force would delete its shards). */
static int
same_dir(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

static int
dequant_run(const struct dqopts *opt)
{
	struct dqplan p = { 0 };
	struct model *m;
	char *cause = NULL;
	double t0 = now_sec();
	int rc = 1;

	if ((m = model_open(opt->model, &cause)) == NULL)
		goto out;
	if (same_dir(opt->model, opt->out)) {
		cause_set(&cause, "%s is the model's own directory; write the copy elsewhere",
			  opt->out);
		goto out;
	}
	if (plan_copy(m, opt, &p, &cause) != 0)
		goto out;
	if (p.n_quant == 0) {
		cause_set(&cause, "%s: no quantized (qweight) tensors: nothing to dequantize",
			  opt->model);
		goto out;
	}
	if (mkmodel_prepare_dir(opt->out, opt->force, &cause) != 0)
		goto out;
	fprintf(stderr,
		"dequantizing %d modules to %s, copying %d tensors: %.2f GB in %d shard(s) "
		"to %s\n",
		p.n_quant, dtype_st(opt->dtype), p.n - p.n_quant, p.total / 1e9, p.n_shards,
		opt->out);
	if (write_config(opt, &cause) != 0 || write_index(&p, opt, &cause) != 0 ||
	    copy_side_files(opt, &cause) != 0)
		goto out;
	for (int k = 0; k < p.n_shards; k++)
		if (write_shard(&p, opt, k, &cause) != 0)
			goto out;
	if (check_copy(opt, &cause) != 0)
		goto out;
	fprintf(stderr, "done in %.1f s\n", now_sec() - t0);
	rc = 0;
out:
	if (cause != NULL)
		fprintf(stderr, "qnext dequant: %s\n", cause);
	free(cause);
	plan_release(&p);
	model_close(m);
	return rc;
}

static void
usage(FILE *f)
{
	subcmd_usage(f, "dequant");
	fprintf(f, "Write a float copy of the AutoRound checkpoint in -m DIR to -o DIR: each\n"
		   "quantized module's qweight/qzeros/scales becomes <module>.weight\n"
		   "[n_out][n_in], other tensors are copied unchanged, config.json loses its\n"
		   "quantization_config, tokenizer files are copied.\n"
		   "  -m, --model DIR    the quantized checkpoint\n"
		   "  -o, --out DIR      where the copy goes (created, or empty)\n"
		   "  --dtype T          bf16 (default), f16, or f32 (exact)\n"
		   "  --shard-gb X       largest shard in GB (default 4)\n"
		   "  --force            replace the checkpoint in a non-empty -o DIR\n");
}

/* One option into o; 0 ok, -1 bad value (after a message), 1 help, 2 unknown. */
static int
parse_opt(void *opts, int ch, const char *arg)
{
	struct dqopts *o = opts;
	char *end;

	switch (ch) {
	case 'm':
		o->model = arg;
		return 0;
	case 'o':
		o->out = arg;
		return 0;
	case 'd':
		if (strcmp(arg, "bf16") == 0)
			o->dtype = OUT_BF16;
		else if (strcmp(arg, "f16") == 0)
			o->dtype = OUT_F16;
		else if (strcmp(arg, "f32") == 0)
			o->dtype = OUT_F32;
		else {
			fprintf(stderr, "qnext dequant: --dtype: '%s' is not bf16, f16 or f32\n",
				arg);
			return -1;
		}
		return 0;
	case 's':
		errno = 0;
		o->shard_gb = strtod(arg, &end);
		if (errno != 0 || end == arg || *end != '\0' || !(o->shard_gb > 0)) {
			fprintf(stderr,
				"qnext dequant: --shard-gb: '%s' is not a positive number\n", arg);
			return -1;
		}
		return 0;
	case 'f':
		o->force = true;
		return 0;
	case 'h':
		return 1;
	default:
		return 2;
	}
}

int
dequant_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "out", required_argument, NULL, 'o' },
		{ "dtype", required_argument, NULL, 'd' },
		{ "shard-gb", required_argument, NULL, 's' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct dqopts o = { .dtype = OUT_BF16, .shard_gb = 4.0 };
	int rc;

	rc = subcmd_getopt(argc, argv, "dequant", "m:o:h", longopts, parse_opt, &o, usage);
	if (rc >= 0)
		return rc;
	if (o.model == NULL || o.out == NULL) {
		fprintf(stderr, "qnext dequant: %s is required\n",
			o.model == NULL ? "-m DIR" : "-o DIR");
		usage(stderr);
		return 2;
	}
	return dequant_run(&o);
}
