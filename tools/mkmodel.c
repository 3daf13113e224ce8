/*
 * mkmodel.c - write a synthetic Qwen3-Next checkpoint (see mkmodel.h).
 *
 * The tensor list is planned first (names, dtypes, shapes), split into
 * shards of at most --shard-gb, and each shard is written as one safetensors
 * header followed by the tensors' bytes, generated on the fly with a fast
 * seeded PRNG.  Quantized linears get random nibbles/bytes, symmetric zero
 * points (0x77777777 / 0x7F7F7F7F) and random scales of both signs sized so
 * activations stay O(1); float tensors get small random values.  The
 * dimensions are the real model's unless overridden.
 *
 * CLI main thread only.
 */
#include "mkmodel.h"

#include <dirent.h>
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

#include "subcmd.h"
#include "util.h"

enum gen {
	GEN_QWEIGHT,     /* random packed ints */
	GEN_QZEROS,      /* symmetric zero points */
	GEN_SCALES,      /* fp16 scales, random sign */
	GEN_BF16,        /* small random bf16 */
	GEN_ZERO_BF16,   /* zero-centred norm weights: zeros */
	GEN_ONE_BF16,    /* gated norm weight: ones */
	GEN_ALOG,        /* A_log */
	GEN_EMBED_SKEW,  /* embeddings with channel 0 held at SKEW_CHANNEL (--router-skew) */
	GEN_ROUTER_SKEW, /* router rows whose channel-0 weight ranks the experts (--router-skew) */
};

/*
 * --router-skew S: every embedding row carries SKEW_CHANNEL in channel 0,
 * so the normed router input has a component h0 common to all tokens, and
 * the router row of the expert of popularity rank r (a per-layer
 * permutation) gets w0 = -SKEW_BETA * S * ln(r + 1) / SKEW_H0.  With the
 * rest of the logit random (the random part of h against random rows:
 * about Gaussian, std 0.58, so about Gumbel with scale 0.45), the chance of
 * rank r then falls as (r + 1)^-S: a Zipf law of exponent S for top-1, and
 * close to it for top-k.  docs/expert-cache.md has what was measured.
 */
#define SKEW_CHANNEL 1.0
#define SKEW_H0      1.7 /* channel 0 after the layer norm: 1 / rms of the row */
#define SKEW_BETA    0.45

struct plan_t {
	char *name;
	const char *dtype;
	int n_dims;
	int64_t shape[3];
	enum gen gen;
	int bits;     /* for qweight/qzeros/scales */
	int layer;    /* GEN_ROUTER_SKEW: whose permutation */
	double scale; /* magnitude for scales / bf16 */
	int64_t bytes;
	int shard;
};

struct mkopts {
	const char *out;
	const char *tokenizer; /* directory with tokenizer.json, or NULL = search */
	int hidden, layers, experts, top_k, vocab, heads, kv_heads, head_dim;
	int lk_heads, lv_heads, lk_dim, lv_dim, moe_inter, shared_inter, group;
	double shard_gb;
	uint64_t seed;
	double router_skew; /* --router-skew S: Zipf exponent of expert popularity; 0 = uniform */
	bool force;         /* replace the checkpoint in a non-empty -o directory */
};

struct plan {
	struct plan_t *t;
	int n, cap, n_shards;
};

static void
plan_add(struct plan *p, const char *name, const char *dtype, int n_dims, int64_t d0, int64_t d1,
	 int64_t d2, enum gen gen, int bits, double scale)
{
	struct plan_t *t;
	int64_t n = d0 * (n_dims > 1 ? d1 : 1) * (n_dims > 2 ? d2 : 1);

	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 1024;
		p->t = xrealloc(p->t, (size_t)p->cap * sizeof(*p->t));
	}
	t = &p->t[p->n++];
	t->name = xstrdup(name);
	t->dtype = dtype;
	t->n_dims = n_dims;
	t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2;
	t->gen = gen;
	t->bits = bits;
	t->scale = scale;
	t->bytes = n * (strcmp(dtype, "I32") == 0 ? 4 : 2);
}

/* A linear layer [out][in]: bits 16 = BF16 weight, else AutoRound packing. */
static void
plan_linear(struct plan *p, const char *mod, int out, int in, int bits, int gs)
{
	char n[256];
	int groups = (in + gs - 1) / gs;
	double sd = 1.0 / sqrt((double)in);

	if (bits == 16) {
		snprintf(n, sizeof(n), "%s.weight", mod);
		plan_add(p, n, "BF16", 2, out, in, 0, GEN_BF16, 16, sd);
		return;
	}
	snprintf(n, sizeof(n), "%s.qweight", mod);
	plan_add(p, n, "I32", 2, (int64_t)in * bits / 32, out, 0, GEN_QWEIGHT, bits, 0);
	snprintf(n, sizeof(n), "%s.qzeros", mod);
	plan_add(p, n, "I32", 2, groups, (int64_t)out * bits / 32, 0, GEN_QZEROS, bits, 0);
	snprintf(n, sizeof(n), "%s.scales", mod);
	/* Uniform q - z has std ~ 2^b / sqrt(12): aim W at std 1/sqrt(in). */
	plan_add(p, n, "F16", 2, groups, out, 0, GEN_SCALES, bits,
		 sd / (pow(2, bits) / sqrt(12.0)));
}

static void
plan_layer(struct plan *p, const struct mkopts *o, int i)
{
	char pre[128], n[256];
	int full = (i + 1) % 4 == 0, kd = o->lk_heads * o->lk_dim, vd = o->lv_heads * o->lv_dim;

	snprintf(pre, sizeof(pre), "model.layers.%d", i);
#define NAME(fmt) (snprintf(n, sizeof(n), "%s." fmt, pre), n)
	plan_add(p, NAME("input_layernorm.weight"), "BF16", 1, o->hidden, 0, 0, GEN_ZERO_BF16, 0,
		 0);
	plan_add(p, NAME("post_attention_layernorm.weight"), "BF16", 1, o->hidden, 0, 0,
		 GEN_ZERO_BF16, 0, 0);
	if (full) {
		int qd = o->heads * o->head_dim, kvd = o->kv_heads * o->head_dim;

		plan_linear(p, NAME("self_attn.q_proj"), 2 * qd, o->hidden, 8, o->group);
		plan_linear(p, NAME("self_attn.k_proj"), kvd, o->hidden, 8, o->group);
		plan_linear(p, NAME("self_attn.v_proj"), kvd, o->hidden, 8, o->group);
		plan_linear(p, NAME("self_attn.o_proj"), o->hidden, qd, 8, o->group);
		plan_add(p, NAME("self_attn.q_norm.weight"), "BF16", 1, o->head_dim, 0, 0,
			 GEN_ZERO_BF16, 0, 0);
		plan_add(p, NAME("self_attn.k_norm.weight"), "BF16", 1, o->head_dim, 0, 0,
			 GEN_ZERO_BF16, 0, 0);
	} else {
		plan_linear(p, NAME("linear_attn.in_proj_qkvz"), 2 * kd + 2 * vd, o->hidden, 8,
			    o->group);
		plan_linear(p, NAME("linear_attn.in_proj_ba"), 2 * o->lv_heads, o->hidden, 8,
			    o->group);
		plan_add(p, NAME("linear_attn.conv1d.weight"), "BF16", 3, 2 * kd + vd, 1, 4,
			 GEN_BF16, 16, 0.5);
		plan_add(p, NAME("linear_attn.dt_bias"), "BF16", 1, o->lv_heads, 0, 0, GEN_BF16, 16,
			 0.5);
		plan_add(p, NAME("linear_attn.A_log"), "BF16", 1, o->lv_heads, 0, 0, GEN_ALOG, 16,
			 0);
		plan_add(p, NAME("linear_attn.norm.weight"), "BF16", 1, o->lv_dim, 0, 0,
			 GEN_ONE_BF16, 0, 0);
		plan_linear(p, NAME("linear_attn.out_proj"), o->hidden, vd, 8, o->group);
	}
	plan_linear(p, NAME("mlp.gate"), o->experts, o->hidden, 16, o->group);
	if (o->router_skew > 0) {
		p->t[p->n - 1].gen = GEN_ROUTER_SKEW;
		p->t[p->n - 1].layer = i;
	}
	for (int e = 0; e < o->experts; e++) {
		char m[200];

		snprintf(m, sizeof(m), "%s.mlp.experts.%d.gate_proj", pre, e);
		plan_linear(p, m, o->moe_inter, o->hidden, 4, o->group);
		snprintf(m, sizeof(m), "%s.mlp.experts.%d.up_proj", pre, e);
		plan_linear(p, m, o->moe_inter, o->hidden, 4, o->group);
		snprintf(m, sizeof(m), "%s.mlp.experts.%d.down_proj", pre, e);
		plan_linear(p, m, o->hidden, o->moe_inter, 4, o->group);
	}
	plan_linear(p, NAME("mlp.shared_expert.gate_proj"), o->shared_inter, o->hidden, 8,
		    o->group);
	plan_linear(p, NAME("mlp.shared_expert.up_proj"), o->shared_inter, o->hidden, 8, o->group);
	plan_linear(p, NAME("mlp.shared_expert.down_proj"), o->hidden, o->shared_inter, 8,
		    o->group);
	plan_linear(p, NAME("mlp.shared_expert_gate"), 1, o->hidden, 16, o->group);
#undef NAME
}

static void
plan_model(struct plan *p, const struct mkopts *o)
{
	int64_t limit = (int64_t)(o->shard_gb * 1e9), acc = 0;

	plan_add(p, "model.embed_tokens.weight", "BF16", 2, o->vocab, o->hidden, 0,
		 o->router_skew > 0 ? GEN_EMBED_SKEW : GEN_BF16, 16, 1.0);
	for (int i = 0; i < o->layers; i++)
		plan_layer(p, o, i);
	plan_add(p, "model.norm.weight", "BF16", 1, o->hidden, 0, 0, GEN_ZERO_BF16, 0, 0);
	plan_add(p, "lm_head.weight", "BF16", 2, o->vocab, o->hidden, 0, GEN_BF16, 16,
		 1.0 / sqrt((double)o->hidden));
	p->n_shards = 1;
	for (int i = 0; i < p->n; i++) {
		if (acc > 0 && acc + p->t[i].bytes > limit) {
			p->n_shards++;
			acc = 0;
		}
		p->t[i].shard = p->n_shards - 1;
		acc += p->t[i].bytes;
	}
}

/* ---- writing ----------------------------------------------------------- */

static uint64_t
rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	return *s = x;
}

static float
rnd_sym(uint64_t *s)
{
	return (float)((double)(rnd(s) >> 11) * 0x1.0p-53 * 2 - 1);
}

/* Popularity rank of each of n experts in layer l: a permutation from the layer. */
static int *
skew_ranks(int n, int l)
{
	int *rank = xmalloc((size_t)n * sizeof(int));
	uint64_t s = 0x9E3779B97F4A7C15ull ^ ((uint64_t)l * 0xBF58476D1CE4E5B9ull + 1);

	for (int i = 0; i < n; i++)
		rank[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(rnd(&s) % (uint64_t)(i + 1)), tmp = rank[i];

		rank[i] = rank[j];
		rank[j] = tmp;
	}
	return rank;
}

static void
fill(const struct plan_t *t, const struct mkopts *o, void *buf, uint64_t *s)
{
	int64_t n = t->bytes / (strcmp(t->dtype, "I32") == 0 ? 4 : 2), cols = t->shape[1];
	uint32_t *u32 = buf;
	uint16_t *u16 = buf;
	int *rank = t->gen == GEN_ROUTER_SKEW ? skew_ranks((int)t->shape[0], t->layer) : NULL;

	for (int64_t i = 0; i < n; i++) {
		switch (t->gen) {
		case GEN_QWEIGHT:
			u32[i] = (uint32_t)rnd(s);
			break;
		case GEN_QZEROS:
			u32[i] = t->bits == 4   ? 0x77777777u
				 : t->bits == 8 ? 0x7F7F7F7Fu
						: 0x55555555u;
			break;
		case GEN_SCALES:
			u16[i] = f32_to_fp16((float)(t->scale * (0.5 + 0.5 * fabs(rnd_sym(s))) *
						     (rnd(s) & 1 ? 1 : -1)));
			break;
		case GEN_BF16:
			u16[i] = f32_to_bf16((float)(t->scale * rnd_sym(s)));
			break;
		case GEN_ZERO_BF16:
			u16[i] = 0;
			break;
		case GEN_ONE_BF16:
			u16[i] = f32_to_bf16(1.0f);
			break;
		case GEN_ALOG:
			u16[i] = f32_to_bf16((float)log(1 + 15 * fabs(rnd_sym(s))));
			break;
		case GEN_EMBED_SKEW:
			u16[i] = f32_to_bf16(
				(float)(i % cols == 0 ? SKEW_CHANNEL : t->scale * rnd_sym(s)));
			break;
		case GEN_ROUTER_SKEW:
			u16[i] = f32_to_bf16(
				(float)(i % cols == 0 ? -SKEW_BETA * o->router_skew *
								log(rank[i / cols] + 1.0) / SKEW_H0
						      : t->scale * rnd_sym(s)));
			break;
		}
	}
	free(rank);
}

static char *
shard_name(const struct plan *p, int k)
{
	if (p->n_shards == 1)
		return xstrdup("model.safetensors");
	return xasprintf("model-%05d-of-%05d.safetensors", k + 1, p->n_shards);
}

static json_t *
shard_header(const struct plan *p, int k)
{
	json_t *h = json_object();
	int64_t off = 0;

	json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
	for (int i = 0; i < p->n; i++) {
		const struct plan_t *t = &p->t[i];
		json_t *shape;

		if (t->shard != k)
			continue;
		shape = json_array();
		for (int d = 0; d < t->n_dims; d++)
			json_array_append_new(shape, json_integer(t->shape[d]));
		json_object_set_new(h, t->name,
				    json_pack("{s:s, s:o, s:[I, I]}", "dtype", t->dtype, "shape",
					      shape, "data_offsets", (json_int_t)off,
					      (json_int_t)(off + t->bytes)));
		off += t->bytes;
	}
	return h;
}

static int
write_shard(const struct plan *p, const struct mkopts *o, int k, uint64_t *s, char **cause)
{
	char *name = shard_name(p, k), *path = xasprintf("%s/%s", o->out, name);
	json_t *hdr = shard_header(p, k);
	char *js = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
	size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
	uint64_t len = hl + pad;
	FILE *f = fopen(path, "wb");
	int rc = -1;

	json_decref(hdr);
	if (f == NULL) {
		cause_set(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* Pad the header with spaces so tensor data starts 8-byte aligned. */
	fwrite(&len, 8, 1, f);
	fwrite(js, 1, hl, f);
	fwrite("        ", 1, pad, f);
	for (int i = 0; i < p->n; i++) {
		const struct plan_t *t = &p->t[i];
		void *buf;

		if (t->shard != k)
			continue;
		buf = xmalloc((size_t)t->bytes);
		fill(t, o, buf, s);
		if (fwrite(buf, 1, (size_t)t->bytes, f) != (size_t)t->bytes) {
			free(buf);
			cause_set(cause, "%s: write failed: %s", path, strerror(errno));
			goto out;
		}
		free(buf);
	}
	if (fclose(f) != 0) {
		f = NULL;
		cause_set(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
	f = NULL;
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	free(js);
	free(path);
	free(name);
	return rc;
}

static json_t *
extra_config(const struct mkopts *o)
{
	json_t *ec = json_object();
	const char *gdn[] = { "linear_attn.in_proj_qkvz", "linear_attn.in_proj_ba",
			      "linear_attn.out_proj" };
	const char *att[] = { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
			      "self_attn.o_proj" };
	const char *sh[] = { "mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj",
			     "mlp.shared_expert.down_proj" };
	char k[200];

	for (int i = 0; i < o->layers; i++) {
		int full = (i + 1) % 4 == 0;

		for (size_t j = 0; j < (full ? ARRAY_LEN(att) : ARRAY_LEN(gdn)); j++) {
			snprintf(k, sizeof(k), "model.layers.%d.%s", i, full ? att[j] : gdn[j]);
			json_object_set_new(ec, k, json_pack("{s:i}", "bits", 8));
		}
		for (size_t j = 0; j < ARRAY_LEN(sh); j++) {
			snprintf(k, sizeof(k), "model.layers.%d.%s", i, sh[j]);
			json_object_set_new(ec, k, json_pack("{s:i}", "bits", 8));
		}
		snprintf(k, sizeof(k), "model.layers.%d.mlp.gate", i);
		json_object_set_new(ec, k,
				    json_pack("{s:i, s:s}", "bits", 16, "data_type", "float"));
		snprintf(k, sizeof(k), "model.layers.%d.mlp.shared_expert_gate", i);
		json_object_set_new(ec, k,
				    json_pack("{s:i, s:s}", "bits", 16, "data_type", "float"));
	}
	return ec;
}

static int
write_json(const char *dir, const char *file, json_t *j, char **cause)
{
	char *path = xasprintf("%s/%s", dir, file);
	int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (rc != 0)
		cause_set(cause, "%s: cannot write", path);
	free(path);
	json_decref(j);
	return rc == 0 ? 0 : -1;
}

static int
write_config(const struct mkopts *o, char **cause)
{
	json_t *q = json_pack("{s:s, s:i, s:s, s:i, s:s, s:s, s:b, s:o}", "autoround_version",
			      "0.7.0", "bits", 4, "data_type", "int", "group_size", o->group,
			      "packing_format", "auto_round:auto_gptq", "quant_method",
			      "auto-round", "sym", 1, "extra_config", extra_config(o));
	json_t *c = json_pack(
		"{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, "
		"s:i, s:i, s:i, s:f, s:f, s:f, s:b, s:b, s:i, s:I, s:i, s:i, s:s}",
		"architectures", "Qwen3NextForCausalLM", "model_type", "qwen3_next", "hidden_size",
		o->hidden, "num_hidden_layers", o->layers, "num_attention_heads", o->heads,
		"num_key_value_heads", o->kv_heads, "head_dim", o->head_dim, "linear_num_key_heads",
		o->lk_heads, "linear_num_value_heads", o->lv_heads, "linear_key_head_dim",
		o->lk_dim, "linear_value_head_dim", o->lv_dim, "linear_conv_kernel_dim", 4,
		"num_experts", o->experts, "num_experts_per_tok", o->top_k, "moe_intermediate_size",
		o->moe_inter, "shared_expert_intermediate_size", o->shared_inter, "vocab_size",
		o->vocab, "full_attention_interval", 4, "rms_norm_eps", 1e-6,
		"partial_rotary_factor", 0.25, "rope_theta", 1e7, "norm_topk_prob", 1,
		"tie_word_embeddings", 0, "intermediate_size", 5120, "max_position_embeddings",
		(json_int_t)262144, "bos_token_id", o->vocab > 151645 ? 151643 : o->vocab - 2,
		"eos_token_id", o->vocab > 151645 ? 151645 : o->vocab - 1, "torch_dtype",
		"bfloat16");

	json_object_set(c, "quantization_config", q);
	if (write_json(o->out, "config.json", c, cause) != 0)
		return -1;
	return write_json(o->out, "quantization_config.json", q, cause);
}

static int
write_index(const struct plan *p, const struct mkopts *o, char **cause)
{
	json_t *map = json_object();
	int64_t total = 0;

	if (p->n_shards == 1) {
		json_decref(map);
		return 0;
	}
	for (int i = 0; i < p->n; i++) {
		char *s = shard_name(p, p->t[i].shard);

		json_object_set_new(map, p->t[i].name, json_string(s));
		total += p->t[i].bytes;
		free(s);
	}
	return write_json(o->out, "model.safetensors.index.json",
			  json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total,
				    "weight_map", map),
			  cause);
}

int
mkmodel_copy_file(const char *from, const char *to, char **cause)
{
	size_t n;
	char *buf = read_file(from, &n, cause);
	FILE *f;
	int rc = -1;

	if (buf == NULL)
		return -1;
	if ((f = fopen(to, "wb")) == NULL || fwrite(buf, 1, n, f) != n)
		cause_set(cause, "%s: %s", to, strerror(errno));
	else
		rc = 0;
	if (f != NULL && fclose(f) != 0 && rc == 0)
		rc = cause_set(cause, "%s: %s", to, strerror(errno));
	free(buf);
	return rc;
}

/* The Qwen3 tokenizer next to the checkpoint, so the model can chat (gibberish). */
static int
write_tokenizer(const struct mkopts *o, char **cause)
{
	const char *cand[] = { o->tokenizer, DATADIR "/qwen3-tokenizer", "share/qwen3-tokenizer" };
	const char *files[] = { "tokenizer.json", "tokenizer_config.json" };
	json_t *gen = json_pack("{s:[i, i], s:i, s:b, s:f, s:i, s:f}", "eos_token_id", 151645,
				151643, "bos_token_id", 151643, "do_sample", 1, "temperature", 0.6,
				"top_k", 20, "top_p", 0.95);

	if (write_json(o->out, "generation_config.json", gen, cause) != 0)
		return -1;
	for (size_t i = 0; i < ARRAY_LEN(cand); i++) {
		char *probe;
		FILE *f;

		if (cand[i] == NULL)
			continue;
		probe = xasprintf("%s/tokenizer.json", cand[i]);
		f = fopen(probe, "rb");
		free(probe);
		if (f == NULL)
			continue;
		fclose(f);
		if (o->vocab < 151669) {
			fprintf(stderr,
				"vocabulary %d is smaller than Qwen3's: no tokenizer copied\n",
				o->vocab);
			return 0;
		}
		for (size_t k = 0; k < ARRAY_LEN(files); k++) {
			char *a = xasprintf("%s/%s", cand[i], files[k]);
			char *b = xasprintf("%s/%s", o->out, files[k]);
			int rc = mkmodel_copy_file(a, b, cause);

			free(a);
			free(b);
			if (rc != 0)
				return -1;
		}
		return 0;
	}
	fprintf(stderr, "no Qwen3 tokenizer found (--tokenizer DIR): the model has no tokenizer\n");
	return 0;
}

/* ---- the output directory ------------------------------------------------ */

/*
 * What --force removes: every file mkmodel writes, whatever its shard count
 * was, and the files that would contradict the new checkpoint if left: the
 * other Hugging Face tokenizer files and `qnext check`'s hash manifest.
 * Without this an old tokenizer.json (vocabulary 151k) survived a --tiny
 * run (vocabulary 1024) and every prompt failed with "token id out of range".
 */
static bool
ours(const char *name)
{
	static const char *names[] = {
		"config.json",
		"quantization_config.json",
		"generation_config.json",
		"model.safetensors",
		"model.safetensors.index.json",
		"tokenizer.json",
		"tokenizer_config.json",
		"vocab.json",
		"merges.txt",
		"special_tokens_map.json",
		"added_tokens.json",
		"qnext-sha256.txt",
		"chat_template.jinja",
	};
	size_t n = strlen(name), sfx = strlen(".safetensors");

	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	/* Shards of any earlier split: model-00001-of-00003.safetensors. */
	return strncmp(name, "model-", 6) == 0 && strstr(name, "-of-") != NULL && n > sfx &&
	       strcmp(name + n - sfx, ".safetensors") == 0;
}

int
mkmodel_prepare_dir(const char *dir, bool force, char **cause)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	bool full = false;

	if (mkdir(dir, 0755) == 0)
		return 0;
	if (errno != EEXIST)
		return cause_set(cause, "%s: %s", dir, strerror(errno));
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return cause_set(cause, "%s exists and is not a directory", dir);
	if ((d = opendir(dir)) == NULL)
		return cause_set(cause, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		char *path;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		full = true;
		if (!force)
			break;
		if (!ours(e->d_name))
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		if (unlink(path) != 0) {
			cause_set(cause, "cannot remove %s: %s", path, strerror(errno));
			free(path);
			closedir(d);
			return -1;
		}
		free(path);
	}
	closedir(d);
	if (full && !force)
		return cause_set(cause, "%s is not empty; --force replaces the checkpoint in it",
				 dir);
	return 0;
}

static int
mkmodel_run(const struct mkopts *o)
{
	struct plan p = { 0 };
	uint64_t s = o->seed * 2654435761u + 88172645463325252ull, total = 0;
	char *cause = NULL;
	double t0 = now_sec();
	int rc = 1;

	if (mkmodel_prepare_dir(o->out, o->force, &cause) != 0) {
		fprintf(stderr, "qnext mkmodel: %s\n", cause);
		free(cause);
		return 1;
	}
	plan_model(&p, o);
	for (int i = 0; i < p.n; i++)
		total += (uint64_t)p.t[i].bytes;
	fprintf(stderr, "writing %d tensors, %.2f GB in %d shard(s) to %s\n", p.n, total / 1e9,
		p.n_shards, o->out);
	if (write_config(o, &cause) != 0 || write_index(&p, o, &cause) != 0 ||
	    write_tokenizer(o, &cause) != 0)
		goto out;
	for (int k = 0; k < p.n_shards; k++)
		if (write_shard(&p, o, k, &s, &cause) != 0)
			goto out;
	fprintf(stderr, "done in %.1f s\n", now_sec() - t0);
	rc = 0;
out:
	if (cause != NULL)
		fprintf(stderr, "qnext mkmodel: %s\n", cause);
	free(cause);
	for (int i = 0; i < p.n; i++)
		free(p.t[i].name);
	free(p.t);
	return rc;
}

/* Test-sized dimensions with the same layout (a few MB): --tiny. */
static void
tiny_dims(struct mkopts *o)
{
	o->hidden = 256, o->layers = 4, o->experts = 16, o->top_k = 4, o->vocab = 1024;
	o->heads = 4, o->kv_heads = 2, o->head_dim = 64, o->lk_heads = 2, o->lv_heads = 4;
	o->lk_dim = 32, o->lv_dim = 32, o->moe_inter = 128, o->shared_inter = 128;
}

static void
usage(FILE *f)
{
	subcmd_usage(f, "mkmodel");
}

/* One option into o; 0 ok, -1 bad value (after a message), 1 help, 2 unknown. */
static int
parse_opt(void *opts, int ch, const char *arg)
{
	struct mkopts *o = opts;
	char *end;

	switch (ch) {
	case 'o':
		o->out = arg;
		return 0;
	case 'e':
		return arg_int("qnext mkmodel", "--experts", arg, 1, 65536, &o->experts);
	case 'l':
		return arg_int("qnext mkmodel", "--layers", arg, 1, 1000, &o->layers);
	case 'd':
		return arg_int("qnext mkmodel", "--hidden", arg, 128, 65536, &o->hidden);
	case 'v':
		return arg_int("qnext mkmodel", "--vocab", arg, 2, 1 << 22, &o->vocab);
	case 's':
		errno = 0;
		o->shard_gb = strtod(arg, &end);
		if (errno != 0 || end == arg || *end != '\0' || !(o->shard_gb > 0)) {
			fprintf(stderr,
				"qnext mkmodel: --shard-gb: '%s' is not a positive number\n", arg);
			return -1;
		}
		return 0;
	case 'S':
		errno = 0;
		o->seed = strtoull(arg, &end, 10);
		if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-') {
			fprintf(stderr, "qnext mkmodel: --seed: '%s' is not an integer >= 0\n",
				arg);
			return -1;
		}
		return 0;
	case 'k':
		errno = 0;
		o->router_skew = strtod(arg, &end);
		if (errno != 0 || end == arg || *end != '\0' || !(o->router_skew >= 0) ||
		    o->router_skew > 10) {
			fprintf(stderr,
				"qnext mkmodel: --router-skew: '%s' is not a number in "
				"[0, 10]\n",
				arg);
			return -1;
		}
		return 0;
	case 't':
		o->tokenizer = arg;
		return 0;
	case 'T':
		tiny_dims(o);
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

/* The dimensions together; 0, or -1 after a message naming the values. */
static int
check_dims(const struct mkopts *o)
{
	if (o->out == NULL) {
		fprintf(stderr, "qnext mkmodel: -o DIR is required\n");
		return -1;
	}
	if (o->experts < o->top_k) {
		fprintf(stderr,
			"qnext mkmodel: --experts %d is fewer than the %d experts each "
			"token is routed to (top-k); use at least %d\n",
			o->experts, o->top_k, o->top_k);
		return -1;
	}
	if (o->hidden % o->group != 0) {
		fprintf(stderr,
			"qnext mkmodel: --hidden %d is not a multiple of the quantization "
			"group size %d\n",
			o->hidden, o->group);
		return -1;
	}
	return 0;
}

int
mkmodel_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "experts", required_argument, NULL, 'e' },
		{ "layers", required_argument, NULL, 'l' },
		{ "hidden", required_argument, NULL, 'd' },
		{ "vocab", required_argument, NULL, 'v' },
		{ "shard-gb", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "tokenizer", required_argument, NULL, 't' },
		{ "tiny", no_argument, NULL, 'T' },
		{ "force", no_argument, NULL, 'f' },
		{ "router-skew", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	/* The real model's dimensions (docs/model-format.md "Dimensions"). */
	struct mkopts o = { .hidden = 2048,
			    .layers = 48,
			    .experts = 512,
			    .top_k = 10,
			    .vocab = 151936,
			    .heads = 16,
			    .kv_heads = 2,
			    .head_dim = 256,
			    .lk_heads = 16,
			    .lv_heads = 32,
			    .lk_dim = 128,
			    .lv_dim = 128,
			    .moe_inter = 512,
			    .shared_inter = 512,
			    .group = 128,
			    .shard_gb = 5.0,
			    .seed = 1 };
	int rc;

	if ((rc = subcmd_getopt(argc, argv, "mkmodel", "o:e:l:d:v:s:S:t:Tfh", longopts, parse_opt,
				&o, usage)) >= 0)
		return rc;
	if (check_dims(&o) != 0)
		return 2;
	return mkmodel_run(&o);
}
