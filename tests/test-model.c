/*
 * test-model.c - the loader on the golden checkpoints and on broken copies
 * of them: every unsupported or inconsistent checkpoint must stop the load
 * with one line naming the file or module and the problem, never crash.
 *
 * Broken copies are made by rewriting a shard's JSON header (the data area
 * is copied unchanged) or config.json in a temporary directory.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "kernels.h"
#include "model.h"
#include "safetensors.h"
#include "t.h"
#include "util.h"

#define TINY   "share/tiny"
#define SHARD1 "model-00001-of-00002.safetensors"

static char tmpdir[64];

static void
copy_file(const char *from, const char *to)
{
	size_t len;
	char *buf = read_file(from, &len, NULL);
	FILE *f = fopen(to, "wb");

	if (buf == NULL || f == NULL || fwrite(buf, 1, len, f) != len)
		fatal("cannot copy %s to %s", from, to);
	fclose(f);
	free(buf);
}

/* Fresh copy of the tiny model in tmpdir. */
static void
fresh_copy(void)
{
	DIR *d = opendir(TINY);
	struct dirent *e;

	while ((e = readdir(d)) != NULL) {
		char a[512], b[512];

		if (e->d_name[0] == '.')
			continue;
		snprintf(a, sizeof(a), "%s/%s", TINY, e->d_name);
		snprintf(b, sizeof(b), "%s/%s", tmpdir, e->d_name);
		copy_file(a, b);
	}
	closedir(d);
}

typedef void edit_fn(json_t *hdr);

/* Rewrite tmpdir/SHARD1's header through fn, keeping the data area. */
static void
edit_shard(edit_fn *fn)
{
	char path[512];
	size_t len;
	char *buf, *js;
	uint64_t hl;
	json_t *hdr;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, SHARD1);
	buf = read_file(path, &len, NULL);
	memcpy(&hl, buf, 8);
	hdr = json_loadb(buf + 8, hl, 0, NULL);
	fn(hdr);
	js = json_dumps(hdr, JSON_COMPACT);
	f = fopen(path, "wb");
	hl = (strlen(js) + 7) / 8 * 8; /* padded with spaces, as writers do */
	fwrite(&hl, 8, 1, f);
	fwrite(js, 1, strlen(js), f);
	for (size_t i = strlen(js); i < hl; i++)
		fputc(' ', f);
	fwrite(buf + 8 + (size_t) * (uint64_t *)buf, 1, len - 8 - *(uint64_t *)buf, f);
	fclose(f);
	free(js);
	free(buf);
	json_decref(hdr);
}

/* Replace `key` (a path into config.json) by value. */
static void
edit_config(const char *key, json_t *value)
{
	char path[512];
	json_t *cfg;

	snprintf(path, sizeof(path), "%s/config.json", tmpdir);
	cfg = json_load_file(path, 0, NULL);
	json_object_set_new(cfg, key, value);
	json_dump_file(cfg, path, 0);
	json_decref(cfg);
}

/* Drop a tensor from model.safetensors.index.json's weight_map. */
static void
unmap_index(const char *name)
{
	char path[512];
	json_t *idx;

	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", tmpdir);
	idx = json_load_file(path, 0, NULL);
	json_object_del(json_object_get(idx, "weight_map"), name);
	json_dump_file(idx, path, 0);
	json_decref(idx);
}

static void
expect_fail(const char *what, const char *needle)
{
	char *cause = NULL;
	struct model *m = model_open(tmpdir, &cause);

	T_ASSERT(m == NULL);
	T_STR_CONTAINS(cause, needle);
	if (cause != NULL && strchr(cause, '\n') != NULL)
		T_ASSERT(!"cause is one line");
	printf("  %-28s -> %s\n", what, cause ? cause : "(loaded!)");
	free(cause);
	model_close(m);
}

/* The model loads, with the tensors' bits (qkvz of layer 0: want_bits) and a warning. */
static void
expect_warning(const char *what, int want_bits, const char *needle)
{
	char *cause = NULL;
	struct model *m = model_open(tmpdir, &cause);

	T_ASSERT(m != NULL);
	if (m != NULL) {
		T_STR_CONTAINS(model_warning(m), needle);
		T_EQ_INT(m->layers[0].gdn.in_qkvz.bits, want_bits);
		printf("  %-28s -> warning: %s\n", what, model_warning(m));
	}
	free(cause);
	model_close(m);
}

static void
rename_qkvz(json_t *h)
{
	json_t *t = json_object_get(h, "model.layers.0.linear_attn.in_proj_qkvz.scales");

	json_object_set(h, "model.layers.0.linear_attn.in_proj_qkvz.scalez", t);
	json_object_del(h, "model.layers.0.linear_attn.in_proj_qkvz.scales");
}

static void
fp8_norm(json_t *h)
{
	/* 256 BF16 values = 512 bytes = 512 F8 values: consistent sizes, wrong format. */
	json_t *t = json_object_get(h, "model.layers.0.input_layernorm.weight");

	json_object_set_new(t, "dtype", json_string("F8_E4M3"));
	json_object_set_new(t, "shape", json_pack("[i]", 512));
}

static void
add_gidx(json_t *h)
{
	const char *k;
	json_t *v;
	json_int_t end = 0;

	/* An empty I32 tensor at the end of the data area overlaps nothing. */
	json_object_foreach(h, k, v)
	{
		json_t *off = json_object_get(v, "data_offsets");

		if (off != NULL && json_integer_value(json_array_get(off, 1)) > end)
			end = json_integer_value(json_array_get(off, 1));
	}
	json_object_set_new(h, "model.layers.0.linear_attn.out_proj.g_idx",
			    json_pack("{s:s, s:[i], s:[I, I]}", "dtype", "I32", "shape", 0,
				      "data_offsets", end, end));
}

static void
scales_f32(json_t *h)
{
	json_t *t = json_object_get(h, "model.layers.0.linear_attn.out_proj.scales");

	/* [1, 256] F16 = 512 bytes; as F32 [1, 128] the size still matches. */
	json_object_set_new(t, "dtype", json_string("F32"));
	json_object_set_new(t, "shape", json_pack("[ii]", 1, 128));
}

static void
norm_f4(json_t *h)
{
	/* A needed tensor in a dtype qnext does not know (same bytes). */
	json_object_set_new(json_object_get(h, "model.layers.0.input_layernorm.weight"), "dtype",
			    json_string("F4"));
}

static void
add_mtp_f4(json_t *h)
{
	/* An unused tensor in a dtype qnext does not know, empty so nothing moves. */
	json_object_set_new(h, "mtp.fc.weight",
			    json_pack("{s:s, s:[i], s:[i, i]}", "dtype", "F4", "shape", 0,
				      "data_offsets", 0, 0));
}

static void
huge_qzeros(json_t *h)
{
	json_t *t = json_object_get(h, "model.layers.0.linear_attn.out_proj.qzeros");
	json_t *off = json_object_get(t, "data_offsets");
	json_int_t at = json_integer_value(json_array_get(off, 0));

	/* Empty, so the shard is consistent, but 32 x 2^60 overflows int64. */
	json_object_set_new(t, "shape", json_pack("[iI]", 0, (json_int_t)1 << 60));
	json_object_set_new(t, "data_offsets", json_pack("[II]", at, at));
}

static void
test_good(void)
{
	char *cause = NULL;
	struct model *m = model_open(TINY, &cause);
	char *d;

	T_ASSERT(m != NULL);
	if (m == NULL) {
		fprintf(stderr, "tiny: %s\n", cause);
		free(cause);
		return;
	}
	T_EQ_INT(m->n_full, 1);
	T_EQ_INT(m->embed.fmt, WFMT_GPTQ);
	T_EQ_INT(m->embed.bits, 8);
	T_EQ_INT(m->lm_head.fmt, WFMT_BF16);
	T_EQ_INT(m->layers[0].gdn.in_qkvz.bits, 8);
	T_EQ_INT(m->layers[0].gdn.in_qkvz.group_size, 128);
	T_EQ_INT(m->layers[0].gdn.in_ba.fmt, WFMT_BF16);
	T_EQ_INT(m->layers[0].moe_w.gate[5].bits, 4);
	T_EQ_INT(m->layers[0].moe_w.down[5].n_in, 128);
	T_EQ_INT(m->layers[3].attn.q_proj.n_out, 512);
	d = model_describe(m);
	T_STR_CONTAINS(d, "experts int4 g128");
	free(d);
	model_close(m);
	m = model_open("tests/data/small", &cause);
	T_ASSERT(m != NULL);
	if (m != NULL) {
		T_EQ_INT(m->layers[7].full, 1);
		T_EQ_INT(m->layers[0].moe_w.router.bits, 8);
		T_EQ_INT(m->layers[0].moe_w.sh_gate.bits, 4);
		T_EQ_INT(m->layers[0].moe_w.sh_gate.group_size, 64);
	}
	model_close(m);
	free(cause);
}

/* Rows of every matrix of a and b that differ (both models of one shape). */
static int
rows_differ(const struct qmat *a, const struct qmat *b, int *n_gptq)
{
	float *ra = xmalloc((size_t)a->n_in * sizeof(float)), *rb;
	int bad = 0;

	rb = xmalloc((size_t)a->n_in * sizeof(float));
	*n_gptq += a->fmt == WFMT_GPTQ;
	for (int o = 0; o < a->n_out; o++) {
		qmat_row_f32(a, o, ra);
		qmat_row_f32(b, o, rb);
		bad += memcmp(ra, rb, (size_t)a->n_in * sizeof(float)) != 0;
	}
	free(ra);
	free(rb);
	return bad;
}

static int
models_differ(const struct model *a, const struct model *b, int *n_gptq)
{
	int bad = rows_differ(&a->embed, &b->embed, n_gptq) +
		  rows_differ(&a->lm_head, &b->lm_head, n_gptq);

	for (int l = 0; l < a->cfg.n_layers; l++) {
		const struct layer *x = &a->layers[l], *y = &b->layers[l];

		if (x->full)
			bad += rows_differ(&x->attn.q_proj, &y->attn.q_proj, n_gptq) +
			       rows_differ(&x->attn.o_proj, &y->attn.o_proj, n_gptq);
		else
			bad += rows_differ(&x->gdn.in_qkvz, &y->gdn.in_qkvz, n_gptq) +
			       rows_differ(&x->gdn.out, &y->gdn.out, n_gptq);
		for (int e = 0; e < a->cfg.n_experts; e++)
			bad += rows_differ(&x->moe_w.gate[e], &y->moe_w.gate[e], n_gptq) +
			       rows_differ(&x->moe_w.down[e], &y->moe_w.down[e], n_gptq);
		bad += rows_differ(&x->moe_w.sh_up, &y->moe_w.sh_up, n_gptq);
	}
	return bad;
}

/* packing_format in config.json's quantization_config and in quantization_config.json. */
static void
set_packing(const char *packing)
{
	char path[512];
	json_t *cfg;

	snprintf(path, sizeof(path), "%s/config.json", tmpdir);
	cfg = json_load_file(path, 0, NULL);
	json_object_set_new(json_object_get(cfg, "quantization_config"), "packing_format",
			    json_string(packing));
	json_dump_file(cfg, path, 0);
	json_decref(cfg);
	snprintf(path, sizeof(path), "%s/quantization_config.json", tmpdir);
	cfg = json_load_file(path, 0, NULL);
	if (cfg != NULL) {
		json_object_set_new(cfg, "packing_format", json_string(packing));
		json_dump_file(cfg, path, 0);
		json_decref(cfg);
	}
}

/* Every stored zero point of the copy's qzeros plus one, in place; returns the overflows. */
static int
raise_zeros(void)
{
	char *cause = NULL;
	struct st_set *st = st_open_dir(tmpdir, &cause);
	int over = 0;

	T_ASSERT(st != NULL);
	for (size_t i = 0; st != NULL && i < st_count(st); i++) {
		const struct st_tensor *t = st_at(st, i), *sc;
		size_t nl = strlen(t->name), len;
		char name[256];
		uint32_t *w;
		int bits, fd;
		off_t at;

		if (nl < 7 || strcmp(t->name + nl - 7, ".qzeros") != 0)
			continue;
		snprintf(name, sizeof(name), "%.*s.scales", (int)(nl - 7), t->name);
		sc = st_find(st, name);
		bits = (int)(32 * t->shape[1] / sc->shape[1]);
		w = xmalloc(t->n_bytes);
		memcpy(w, t->data, t->n_bytes);
		for (size_t k = 0; k < t->n_bytes / 4; k++) {
			uint32_t out = 0, mask = (1u << bits) - 1;

			for (int f = 0; f < 32; f += bits) {
				uint32_t v = (w[k] >> f) & mask;

				over += v == mask;
				out |= ((v + 1) & mask) << f;
			}
			w[k] = out;
		}
		at = (const char *)t->data - (const char *)st_shard_base(st, t->shard, &len);
		fd = open(st_shard_path(st, t->shard), O_WRONLY);
		T_ASSERT(fd >= 0 && pwrite(fd, w, t->n_bytes, at) == (ssize_t)t->n_bytes);
		close(fd);
		free(w);
	}
	st_close(st);
	free(cause);
	return over;
}

/*
 * auto-round's `auto_round` packing stores each zero point itself, not
 * minus one: tiny with every stored zero raised by one and the config
 * saying `auto_round` must give bit-identical weights to tiny (so the
 * golden logits hold for it), and the same bytes read as auto_gptq must not.
 */
static void
test_auto_round_packing(void)
{
	char *cause = NULL;
	struct model *ref = model_open(TINY, &cause), *m;
	int n = 0, bad;

	fresh_copy();
	T_EQ_INT(raise_zeros(), 0); /* tiny is symmetric: no zero point at the top */
	set_packing("auto_round");
	m = model_open(tmpdir, &cause);
	T_ASSERT(m != NULL && ref != NULL);
	if (m != NULL && ref != NULL) {
		bad = models_differ(ref, m, &n);
		T_EQ_INT(bad, 0);
		T_ASSERT(n > 100);
		T_ASSERT(m->layers[0].gdn.in_qkvz.zero_raw);
		printf("  auto_round packing: %d quantized matrices identical to tiny's\n", n);
	}
	model_close(m);
	set_packing("auto_round:auto_gptq");
	m = model_open(tmpdir, &cause);
	T_ASSERT(m != NULL);
	if (m != NULL && ref != NULL)
		T_ASSERT(models_differ(ref, m, &n) > 0);
	model_close(m);
	model_close(ref);
	free(cause);
}

int
main(void)
{
	char cmd[128];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/qnext-model-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		fatal("mkdtemp failed");
	test_good();
	test_auto_round_packing();
	fresh_copy();
	edit_shard(rename_qkvz);
	expect_fail("index names absent tensor", "mapped to 'model-00001-of-00002.safetensors'");
	unmap_index("model.layers.0.linear_attn.in_proj_qkvz.scales");
	expect_fail("missing tensor",
		    "missing tensor 'model.layers.0.linear_attn.in_proj_qkvz.scales'");
	fresh_copy();
	edit_shard(fp8_norm);
	expect_fail("FP8 tensor", "FP8");
	fresh_copy();
	edit_shard(add_gidx);
	expect_fail("act-order g_idx", "g_idx");
	fresh_copy();
	edit_shard(scales_f32);
	expect_fail("scales not F16", "scales must be a 2-D F16 tensor");
	fresh_copy();
	edit_shard(norm_f4);
	expect_fail("needed tensor in an unknown dtype", "has a dtype qnext does not read");
	fresh_copy();
	edit_shard(add_mtp_f4);
	{
		char *cause = NULL;
		struct model *m = model_open(tmpdir, &cause);

		T_ASSERT(m != NULL); /* mtp.* in F4: ignored */
		if (m == NULL)
			fprintf(stderr, "  mtp F4: %s\n", cause);
		model_close(m);
		free(cause);
	}
	fresh_copy();
	edit_shard(huge_qzeros);
	expect_fail("qzeros [0, 2^60]", "shapes are too large");
	fresh_copy();
	edit_config("hidden_size", json_integer(128));
	expect_fail("shape vs config", "does not match config.json");
	fresh_copy();
	edit_config("num_hidden_layers", json_integer(3));
	expect_fail("fewer layers in config.json than in the shards",
		    "is for layer 3, but config.json has num_hidden_layers 3");
	fresh_copy();
	edit_config("shared_expert_intermediate_size", json_integer(0));
	expect_fail("shared expert tensors with a size of 0",
		    "is a shared expert, but config.json has shared_expert_intermediate_size 0");
	fresh_copy();
	edit_config("moe_intermediate_size", json_integer(64));
	expect_fail("expert width vs config", "model.layers.0.mlp.experts.0.gate_proj");
	{
		/* Tensors hold 8-bit qkvz; claim 4 bits in quantization_config. */
		char path[512];
		json_t *cfg, *ec;

		fresh_copy();
		snprintf(path, sizeof(path), "%s/config.json", tmpdir);
		cfg = json_load_file(path, 0, NULL);
		ec = json_object_get(json_object_get(cfg, "quantization_config"), "extra_config");
		json_object_set_new(json_object_get(ec, "model.layers.0.linear_attn.in_proj_qkvz"),
				    "bits", json_integer(4));
		json_dump_file(cfg, path, 0);
		json_decref(cfg);
		expect_warning(
			"bits vs quantization_config", 8,
			"for 1 module (first: 'model.layers.0.linear_attn.in_proj_qkvz' holds "
			"8-bit weights, the config says 4)");
	}
	fresh_copy();
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/%s", tmpdir, SHARD1);
		T_ASSERT(truncate(path, 100000) == 0);
		expect_fail("truncated shard", SHARD1);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	T_ASSERT(system(cmd) == 0);
	return t_done("test-model");
}
