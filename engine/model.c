/*
 * model.c - bind a Qwen3-Next checkpoint's tensors to the forward pass.
 *
 * Reads config.json, maps the shards, then walks the layers binding every
 * linear module (quantized when `M.qweight` exists, float when `M.weight`
 * does), converting the small per-layer vectors to float32.  Bits and group
 * size come from the tensor shapes, which are unambiguous; where
 * quantization_config says otherwise (overlapping regexes, GPTQ `dynamic`,
 * names with another prefix, a missing entry) the load goes on and
 * model_warning() says so in one line.  Shapes must agree with config.json.  Errors name the file
 * (or directory), tensor and problem, in one line.
 *
 * Thread affinity: model_open/model_close on one thread; the result is
 * read-only.
 */
#include "model.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"
#include "util.h"

/* Where a tensor lives, for error messages. */
static const char *
shard_of(const struct model *m, const struct st_tensor *t)
{
	const char *p = st_shard_path(m->st, t->shard);
	const char *slash = strrchr(p, '/');

	return slash != NULL ? slash + 1 : p;
}

static int
want_dims(const struct model *m, const struct st_tensor *t, int n_dims, int64_t d0, int64_t d1,
	  int64_t d2, char **cause)
{
	int64_t want[3] = { d0, d1, d2 };
	char got[128] = "", exp[96] = "";
	int ok = t->n_dims == n_dims;

	for (int i = 0; ok && i < n_dims; i++)
		ok = t->shape[i] == want[i];
	if (ok)
		return 0;
	for (int i = 0; i < t->n_dims; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%lld", i ? ", " : "",
			 (long long)t->shape[i]);
	for (int i = 0; i < n_dims; i++)
		snprintf(exp + strlen(exp), sizeof(exp) - strlen(exp), "%s%lld", i ? ", " : "",
			 (long long)want[i]);
	return cause_set(cause,
			 "%s: tensor '%s': shape [%s] does not match config.json (expected [%s])",
			 shard_of(m, t), t->name, got, exp);
}

/* Reject formats qnext cannot compute with, naming the tensor. */
static int
check_float_dtype(const struct model *m, const struct st_tensor *t, char **cause)
{
	switch (t->dtype) {
	case ST_F32:
	case ST_F16:
	case ST_BF16:
		return 0;
	case ST_F8_E4M3:
	case ST_F8_E5M2:
		return cause_set(cause,
				 "%s: tensor '%s': FP8 (%s) weights are not supported; use the "
				 "AutoRound int4/int8 checkpoint",
				 shard_of(m, t), t->name, st_dtype_name(t->dtype));
	case ST_UNKNOWN:
		return cause_set(cause, "%s: tensor '%s' has a dtype qnext does not read",
				 shard_of(m, t), t->name);
	default:
		return cause_set(
			cause, "%s: tensor '%s': dtype %s where a float (F32/F16/BF16) is expected",
			shard_of(m, t), t->name, st_dtype_name(t->dtype));
	}
}

static enum wfmt
wfmt_of(enum st_dtype dt)
{
	return dt == ST_F32 ? WFMT_F32 : dt == ST_F16 ? WFMT_F16 : WFMT_BF16;
}

static const struct st_tensor *
find2(const struct model *m, const char *module, const char *suffix)
{
	char name[256];

	snprintf(name, sizeof(name), "%s.%s", module, suffix);
	return st_find(m->st, name);
}

static int
missing(const struct model *m, const char *module, const char *suffix, char **cause)
{
	return cause_set(cause, "%s: missing tensor '%s.%s'", m->dir, module, suffix);
}

/* Shapes of the three AutoRound tensors → bits, n_in, n_out, n_groups. */
static int
gptq_shape(const struct model *m, const char *module, const struct st_tensor *qw,
	   const struct st_tensor *qz, const struct st_tensor *sc, struct qmat *W, char **cause)
{
	int64_t out, ngroups, bits;

	if (qw->dtype != ST_I32 || qw->n_dims != 2)
		return cause_set(cause, "%s: tensor '%s': qweight must be a 2-D I32 tensor",
				 shard_of(m, qw), qw->name);
	if (qz->dtype != ST_I32 || qz->n_dims != 2)
		return cause_set(cause, "%s: tensor '%s': qzeros must be a 2-D I32 tensor",
				 shard_of(m, qz), qz->name);
	if (sc->dtype != ST_F16 || sc->n_dims != 2)
		return cause_set(cause, "%s: tensor '%s': scales must be a 2-D F16 tensor (got %s)",
				 shard_of(m, sc), sc->name, st_dtype_name(sc->dtype));
	out = sc->shape[1];
	ngroups = sc->shape[0];
	/* Sizes past int are no checkpoint's (and 32 x a huge shape would overflow). */
	if (out > INT_MAX || ngroups > INT_MAX || qz->shape[1] > INT_MAX / 32 ||
	    qw->shape[0] > INT_MAX / 32)
		return cause_set(cause,
				 "%s: module '%s': qweight/qzeros/scales shapes are too large",
				 m->dir, module);
	if (out <= 0 || ngroups <= 0 || (32 * qz->shape[1]) % out != 0)
		return cause_set(cause, "%s: module '%s': qzeros shape does not fit scales", m->dir,
				 module);
	bits = 32 * qz->shape[1] / out;
	if (bits == 3)
		return cause_set(cause, "%s: module '%s': 3-bit AutoRound packing is not supported",
				 m->dir, module);
	if (bits != 2 && bits != 4 && bits != 8)
		return cause_set(cause, "%s: module '%s': unsupported bit width %lld", m->dir,
				 module, (long long)bits);
	if (qw->shape[1] != out || qz->shape[0] != ngroups)
		return cause_set(cause, "%s: module '%s': qweight/qzeros/scales shapes disagree",
				 m->dir, module);
	W->bits = (int)bits;
	W->n_out = (int)out;
	W->n_in = (int)(32 * qw->shape[0] / bits);
	W->n_groups = (int)ngroups;
	return 0;
}

/*
 * Remember that quantization_config disagrees with the tensors about a
 * module: the load goes on with what the shapes say (they are
 * unambiguous), and model_open turns the count and the first case into
 * one warning line.  note NULL: not recorded (model_bind_gptq's callers).
 */
static void
quant_disagrees(struct quant_note *note, const char *module, const char *what)
{
	if (note == NULL)
		return;
	if (note->n++ == 0)
		note->first = xasprintf("'%s' %s", module, what);
}

/* Pick the group size: quantization_config's when consistent with the shapes. */
static int
gptq_group(const struct model *m, const char *module, struct qmat *W, int cfg_bits, int cfg_gs,
	   int matched, struct quant_note *note, char **cause)
{
	int gs = cfg_gs;
	bool bits_differ = matched >= 0 && cfg_bits != W->bits;
	char what[96];

	if (gs <= 0 || (W->n_in + gs - 1) / gs != W->n_groups) {
		if (W->n_groups == 1)
			gs = W->n_in;
		else if (W->n_in % W->n_groups == 0)
			gs = W->n_in / W->n_groups;
		else
			return cause_set(cause,
					 "%s: module '%s': %d groups over %d inputs do not match "
					 "group_size %d",
					 m->dir, module, W->n_groups, W->n_in, cfg_gs);
	}
	if (bits_differ || (matched >= 0 && cfg_gs > 0 && gs != cfg_gs)) {
		if (bits_differ)
			snprintf(what, sizeof(what), "holds %d-bit weights, the config says %d",
				 W->bits, cfg_bits);
		else
			snprintf(what, sizeof(what), "has groups of %d, the config says %d", gs,
				 cfg_gs);
		quant_disagrees(note, module, what); /* once per module */
	}
	W->group_size = gs;
	return 0;
}

static int
bind_gptq(const struct model *m, const char *module, struct qmat *W, const struct st_tensor *qw,
	  struct quant_note *note, char **cause)
{
	const struct st_tensor *qz = find2(m, module, "qzeros"), *sc = find2(m, module, "scales");
	int cfg_bits = 16, cfg_gs = -1, matched;

	if (qz == NULL)
		return missing(m, module, "qzeros", cause);
	if (sc == NULL)
		return missing(m, module, "scales", cause);
	if (find2(m, module, "g_idx") != NULL)
		return cause_set(cause,
				 "%s: module '%s': act-order (g_idx) quantization is not supported",
				 m->dir, module);
	if (gptq_shape(m, module, qw, qz, sc, W, cause) != 0)
		return -1;
	matched = config_module_quant(&m->cfg, module, &cfg_bits, &cfg_gs, cause);
	if (matched == -2 || gptq_group(m, module, W, cfg_bits, cfg_gs, matched, note, cause) != 0)
		return -1;
	W->fmt = WFMT_GPTQ;
	W->zero_raw = strcmp(m->cfg.quant.packing_format, "auto_round") == 0;
	W->qweight = qw->data;
	W->qzeros = qz->data;
	W->scales = sc->data;
	return 0;
}

int
model_bind_gptq(const struct model *m, const char *module, struct qmat *W, char **cause)
{
	const struct st_tensor *qw = find2(m, module, "qweight");

	memset(W, 0, sizeof(*W));
	if (qw == NULL)
		return missing(m, module, "qweight", cause);
	return bind_gptq(m, module, W, qw, NULL, cause);
}

/* Bind linear module `module` expecting W [n_out][n_in]. */
/* A float module inside the quantized blocks that the config calls quantized. */
static int
float_disagrees(struct model *m, const char *module, const struct st_tensor *t, char **cause)
{
	int bits = 16, gs = -1, matched;
	char what[96];

	if (strncmp(module, "model.layers.", 13) != 0)
		return 0; /* embeddings and lm_head are outside AutoRound's blocks */
	if ((matched = config_module_quant(&m->cfg, module, &bits, &gs, cause)) == -2)
		return -1;
	if (matched >= 0 && bits < 16) {
		snprintf(what, sizeof(what), "holds %s weights, the config says %d bits",
			 st_dtype_name(t->dtype), bits);
		quant_disagrees(&m->qnote, module, what);
	}
	return 0;
}

static int
bind_linear(struct model *m, const char *module, int n_out, int n_in, struct qmat *W, char **cause)
{
	const struct st_tensor *t;

	memset(W, 0, sizeof(*W));
	if ((t = find2(m, module, "qweight")) != NULL) {
		if (bind_gptq(m, module, W, t, &m->qnote, cause) != 0)
			return -1;
		if (W->n_out != n_out || W->n_in != n_in)
			return cause_set(cause,
					 "%s: module '%s': quantized shape [%d, %d] does not match "
					 "config.json (expected [%d, %d])",
					 m->dir, module, W->n_out, W->n_in, n_out, n_in);
		return 0;
	}
	if ((t = find2(m, module, "weight")) == NULL)
		return missing(m, module, "weight", cause);
	if (find2(m, module, "weight_scale") != NULL ||
	    find2(m, module, "weight_scale_inv") != NULL ||
	    find2(m, module, "weight_packed") != NULL)
		return cause_set(cause,
				 "%s: module '%s': FP8/packed weight formats are not supported",
				 m->dir, module);
	if (check_float_dtype(m, t, cause) != 0 || want_dims(m, t, 2, n_out, n_in, 0, cause) != 0 ||
	    float_disagrees(m, module, t, cause) != 0)
		return -1;
	W->fmt = wfmt_of(t->dtype);
	W->n_out = n_out;
	W->n_in = n_in;
	W->w = t->data;
	return 0;
}

/* Convert a small float tensor of n elements (any 1-3-D shape with that
 * product, checked by the caller through d0..d2) to a float32 copy. */
static float *
bind_vec(const struct model *m, const char *name, int n_dims, int64_t d0, int64_t d1, int64_t d2,
	 char **cause)
{
	const struct st_tensor *t = st_find(m->st, name);
	float *v;

	if (t == NULL) {
		cause_set(cause, "%s: missing tensor '%s'", m->dir, name);
		return NULL;
	}
	if (check_float_dtype(m, t, cause) != 0 || want_dims(m, t, n_dims, d0, d1, d2, cause) != 0)
		return NULL;
	v = xmalloc((size_t)t->n_elems * sizeof(float));
	for (int64_t i = 0; i < t->n_elems; i++) {
		if (t->dtype == ST_F32)
			memcpy(&v[i], (const char *)t->data + 4 * i, 4);
		else {
			uint16_t h;

			memcpy(&h, (const char *)t->data + 2 * i, 2);
			v[i] = t->dtype == ST_F16 ? fp16_to_f32(h) : bf16_to_f32(h);
		}
	}
	return v;
}

static int
bind_attn(struct model *m, int i, struct layer_attn *a, char **cause)
{
	const struct model_config *c = &m->cfg;
	int qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
	char p[160], n[200];

	snprintf(p, sizeof(p), "model.layers.%d.self_attn", i);
#define MOD(s) (snprintf(n, sizeof(n), "%s.%s", p, s), n)
	if (bind_linear(m, MOD("q_proj"), 2 * qd, c->hidden_size, &a->q_proj, cause) != 0 ||
	    bind_linear(m, MOD("k_proj"), kd, c->hidden_size, &a->k_proj, cause) != 0 ||
	    bind_linear(m, MOD("v_proj"), kd, c->hidden_size, &a->v_proj, cause) != 0 ||
	    bind_linear(m, MOD("o_proj"), c->hidden_size, qd, &a->o_proj, cause) != 0)
		return -1;
	if ((a->q_norm = bind_vec(m, MOD("q_norm.weight"), 1, c->head_dim, 0, 0, cause)) == NULL ||
	    (a->k_norm = bind_vec(m, MOD("k_norm.weight"), 1, c->head_dim, 0, 0, cause)) == NULL)
		return -1;
#undef MOD
	return 0;
}

static int
bind_gdn(struct model *m, int i, struct layer_gdn *g, char **cause)
{
	const struct model_config *c = &m->cfg;
	int hv = c->lin_n_v_heads;
	char p[160], n[200];

	snprintf(p, sizeof(p), "model.layers.%d.linear_attn", i);
#define MOD(s) (snprintf(n, sizeof(n), "%s.%s", p, s), n)
	if (bind_linear(m, MOD("in_proj_qkvz"), m->qkvz_dim, c->hidden_size, &g->in_qkvz, cause) ||
	    bind_linear(m, MOD("in_proj_ba"), 2 * hv, c->hidden_size, &g->in_ba, cause) ||
	    bind_linear(m, MOD("out_proj"), c->hidden_size, m->value_dim, &g->out, cause))
		return -1;
	if ((g->conv = bind_vec(m, MOD("conv1d.weight"), 3, m->conv_dim, 1, c->conv_kernel,
				cause)) == NULL ||
	    (g->neg_exp_a = bind_vec(m, MOD("A_log"), 1, hv, 0, 0, cause)) == NULL ||
	    (g->dt_bias = bind_vec(m, MOD("dt_bias"), 1, hv, 0, 0, cause)) == NULL ||
	    (g->norm = bind_vec(m, MOD("norm.weight"), 1, c->lin_v_dim, 0, 0, cause)) == NULL)
		return -1;
#undef MOD
	/* The decay rate is used as -exp(A_log) everywhere; convert once. */
	for (int h = 0; h < hv; h++)
		g->neg_exp_a[h] = -expf(g->neg_exp_a[h]);
	return 0;
}

static int
bind_moe(struct model *m, int i, struct layer_moe *e, char **cause)
{
	const struct model_config *c = &m->cfg;
	int d = c->hidden_size, ne = c->n_experts, w = c->moe_inter;
	char p[64], n[200];

	snprintf(p, sizeof(p), "model.layers.%d.mlp", i);
#define MOD(s) (snprintf(n, sizeof(n), "%s.%s", p, s), n)
	if (bind_linear(m, MOD("gate"), ne, d, &e->router, cause) != 0)
		return -1;
	e->gate = xcalloc((size_t)ne, sizeof(struct qmat));
	e->up = xcalloc((size_t)ne, sizeof(struct qmat));
	e->down = xcalloc((size_t)ne, sizeof(struct qmat));
	for (int x = 0; x < ne; x++) {
		char q[128];

		snprintf(q, sizeof(q), "%s.experts.%d", p, x);
		snprintf(n, sizeof(n), "%s.gate_proj", q);
		if (bind_linear(m, n, w, d, &e->gate[x], cause) != 0)
			return -1;
		snprintf(n, sizeof(n), "%s.up_proj", q);
		if (bind_linear(m, n, w, d, &e->up[x], cause) != 0)
			return -1;
		snprintf(n, sizeof(n), "%s.down_proj", q);
		if (bind_linear(m, n, d, w, &e->down[x], cause) != 0)
			return -1;
	}
	e->has_shared = c->shared_inter > 0;
	if (e->has_shared &&
	    (bind_linear(m, MOD("shared_expert.gate_proj"), c->shared_inter, d, &e->sh_gate,
			 cause) ||
	     bind_linear(m, MOD("shared_expert.up_proj"), c->shared_inter, d, &e->sh_up, cause) ||
	     bind_linear(m, MOD("shared_expert.down_proj"), d, c->shared_inter, &e->sh_down,
			 cause) ||
	     bind_linear(m, MOD("shared_expert_gate"), 1, d, &e->sh_router, cause)))
		return -1;
#undef MOD
	return 0;
}

static int
bind_mlp(struct model *m, int i, struct layer_mlp *l, char **cause)
{
	const struct model_config *c = &m->cfg;
	char n[200];

	snprintf(n, sizeof(n), "model.layers.%d.mlp.gate_proj", i);
	if (bind_linear(m, n, c->intermediate_size, c->hidden_size, &l->gate, cause) != 0)
		return -1;
	snprintf(n, sizeof(n), "model.layers.%d.mlp.up_proj", i);
	if (bind_linear(m, n, c->intermediate_size, c->hidden_size, &l->up, cause) != 0)
		return -1;
	snprintf(n, sizeof(n), "model.layers.%d.mlp.down_proj", i);
	return bind_linear(m, n, c->hidden_size, c->intermediate_size, &l->down, cause);
}

static int
bind_layer(struct model *m, int i, char **cause)
{
	struct layer *l = &m->layers[i];
	int d = m->cfg.hidden_size;
	char n[160];

	l->full = m->cfg.layer_full[i];
	l->moe = m->cfg.layer_moe[i];
	snprintf(n, sizeof(n), "model.layers.%d.input_layernorm.weight", i);
	if ((l->in_norm = bind_vec(m, n, 1, d, 0, 0, cause)) == NULL)
		return -1;
	snprintf(n, sizeof(n), "model.layers.%d.post_attention_layernorm.weight", i);
	if ((l->post_norm = bind_vec(m, n, 1, d, 0, 0, cause)) == NULL)
		return -1;
	if (l->full ? bind_attn(m, i, &l->attn, cause) : bind_gdn(m, i, &l->gdn, cause))
		return -1;
	return l->moe ? bind_moe(m, i, &l->moe_w, cause) : bind_mlp(m, i, &l->mlp, cause);
}

/* Refuse checkpoints carrying FP8 tensors anywhere, before binding. */
static int
scan_dtypes(const struct model *m, char **cause)
{
	for (size_t i = 0; i < st_count(m->st); i++) {
		const struct st_tensor *t = st_at(m->st, i);

		if (strncmp(t->name, "mtp.", 4) == 0)
			continue; /* the multi-token-prediction block is never used */
		if (t->dtype == ST_F8_E4M3 || t->dtype == ST_F8_E5M2)
			return check_float_dtype(m, t, cause);
	}
	return 0;
}

uint64_t
qmat_bytes(const struct qmat *W)
{
	switch (W->fmt) {
	case WFMT_F32:
		return (uint64_t)W->n_out * W->n_in * 4;
	case WFMT_F16:
	case WFMT_BF16:
		return (uint64_t)W->n_out * W->n_in * 2;
	case WFMT_GPTQ:
		return (uint64_t)W->n_in * W->bits / 32 * W->n_out * 4 +
		       (uint64_t)W->n_groups * W->n_out * W->bits / 32 * 4 +
		       (uint64_t)W->n_groups * W->n_out * 2;
	}
	return 0;
}

/* Bytes of weights touched per decoded token: every non-expert matrix, the
 * top-k experts (assuming equal expert sizes), one embedding row, lm_head. */
static void
count_bytes(struct model *m)
{
	const struct model_config *c = &m->cfg;
	uint64_t all = qmat_bytes(&m->embed) + qmat_bytes(&m->lm_head), dec;

	dec = qmat_bytes(&m->lm_head) + qmat_bytes(&m->embed) / (uint64_t)c->vocab_size;
	for (int i = 0; i < c->n_layers; i++) {
		const struct layer *l = &m->layers[i];
		const struct qmat *mats[12];
		int n = 0;
		uint64_t b = 0;

		if (l->full) {
			mats[n++] = &l->attn.q_proj, mats[n++] = &l->attn.k_proj;
			mats[n++] = &l->attn.v_proj, mats[n++] = &l->attn.o_proj;
		} else {
			mats[n++] = &l->gdn.in_qkvz, mats[n++] = &l->gdn.in_ba;
			mats[n++] = &l->gdn.out;
		}
		if (l->moe) {
			const struct layer_moe *e = &l->moe_w;
			uint64_t ex = 0;

			mats[n++] = &e->router;
			if (e->has_shared) {
				mats[n++] = &e->sh_gate, mats[n++] = &e->sh_up;
				mats[n++] = &e->sh_down, mats[n++] = &e->sh_router;
			}
			for (int x = 0; x < c->n_experts; x++)
				ex += qmat_bytes(&e->gate[x]) + qmat_bytes(&e->up[x]) +
				      qmat_bytes(&e->down[x]);
			all += ex;
			dec += ex / (uint64_t)c->n_experts * (uint64_t)c->n_experts_per_tok;
		} else {
			mats[n++] = &l->mlp.gate, mats[n++] = &l->mlp.up, mats[n++] = &l->mlp.down;
		}
		for (int j = 0; j < n; j++)
			b += qmat_bytes(mats[j]);
		all += b;
		dec += b;
	}
	m->weight_bytes = all;
	m->decode_bytes = dec;
}

/*
 * Tensors the config says are not there: a layer past num_hidden_layers, a
 * shared expert when shared_expert_intermediate_size is 0.  Loading would
 * silently run a different model than the checkpoint holds.
 */
static int
check_config_covers(const struct model *m, char **cause)
{
	const struct model_config *c = &m->cfg;

	for (size_t i = 0; i < st_count(m->st); i++) {
		const struct st_tensor *t = st_at(m->st, i);
		char nm[96];
		int layer, at = 0;

		if (sscanf(t->name, "model.layers.%d.%n", &layer, &at) != 1 || at == 0)
			continue;
		if (layer >= c->n_layers)
			return cause_set(cause,
					 "%s: tensor '%s' is for layer %d, but config.json has "
					 "num_hidden_layers %d",
					 m->dir, str_show(nm, sizeof(nm), t->name), layer,
					 c->n_layers);
		if (c->shared_inter == 0 && strncmp(t->name + at, "mlp.shared_expert", 17) == 0)
			return cause_set(cause,
					 "%s: tensor '%s' is a shared expert, but config.json has "
					 "shared_expert_intermediate_size 0",
					 m->dir, str_show(nm, sizeof(nm), t->name));
	}
	return 0;
}

static int
bind_all(struct model *m, char **cause)
{
	const struct model_config *c = &m->cfg;

	if (scan_dtypes(m, cause) != 0 || check_config_covers(m, cause) != 0)
		return -1;
	if (bind_linear(m, "model.embed_tokens", c->vocab_size, c->hidden_size, &m->embed, cause))
		return -1;
	if (c->tie_word_embeddings && st_find(m->st, "lm_head.weight") == NULL &&
	    st_find(m->st, "lm_head.qweight") == NULL)
		m->lm_head = m->embed;
	else if (bind_linear(m, "lm_head", c->vocab_size, c->hidden_size, &m->lm_head, cause))
		return -1;
	if ((m->final_norm = bind_vec(m, "model.norm.weight", 1, c->hidden_size, 0, 0, cause)) ==
	    NULL)
		return -1;
	m->layers = xcalloc((size_t)c->n_layers, sizeof(struct layer));
	for (int i = 0; i < c->n_layers; i++) {
		if (bind_layer(m, i, cause) != 0)
			return -1;
		m->n_full += m->layers[i].full;
	}
	count_bytes(m);
	return 0;
}

struct model *
model_open(const char *dir, char **cause)
{
	struct model *m = xcalloc(1, sizeof(*m));
	const struct model_config *c = &m->cfg;

	m->dir = xstrdup(dir);
	if (config_load(&m->cfg, dir, cause) != 0)
		goto fail;
	m->key_dim = c->lin_n_k_heads * c->lin_k_dim;
	m->value_dim = c->lin_n_v_heads * c->lin_v_dim;
	m->conv_dim = 2 * m->key_dim + m->value_dim;
	m->qkvz_dim = 2 * m->key_dim + 2 * m->value_dim;
	if (c->quant.present && c->quant.desc_act) {
		cause_set(cause,
			  "%s/config.json: quantization_config: act-order (desc_act) is not "
			  "supported",
			  dir);
		goto fail;
	}
	if (c->conv_kernel < 1 || c->conv_kernel > 16) {
		cause_set(cause, "%s/config.json: linear_conv_kernel_dim: %d is not in 1..16", dir,
			  c->conv_kernel);
		goto fail;
	}
	if ((m->st = st_open_dir(dir, cause)) == NULL)
		goto fail;
	if (bind_all(m, cause) != 0)
		goto fail;
	if (m->qnote.n > 0)
		m->warning =
			xasprintf("%s/config.json: quantization_config disagrees with the tensors "
				  "for %d module%s (first: %s); using the tensors' bits and "
				  "group sizes",
				  dir, m->qnote.n, m->qnote.n == 1 ? "" : "s", m->qnote.first);
	return m;
fail:
	model_close(m);
	return NULL;
}

static uint64_t
file_bytes(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct stat sb;
	uint64_t n = stat(path, &sb) == 0 && S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0;

	free(path);
	return n;
}

uint64_t
model_files_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t total = 0;

	while (d != NULL && (e = readdir(d)) != NULL)
		if (st_is_shard_name(e->d_name))
			total += file_bytes(dir, e->d_name);
	if (d != NULL)
		closedir(d);
	return total > 0 ? total : file_bytes(dir, "model.safetensors");
}

static void
free_layer(struct layer *l)
{
	free(l->in_norm);
	free(l->post_norm);
	free(l->attn.q_norm);
	free(l->attn.k_norm);
	free(l->gdn.conv);
	free(l->gdn.neg_exp_a);
	free(l->gdn.dt_bias);
	free(l->gdn.norm);
	free(l->moe_w.gate);
	free(l->moe_w.up);
	free(l->moe_w.down);
}

void
model_close(struct model *m)
{
	if (m == NULL)
		return;
	if (m->layers != NULL)
		for (int i = 0; i < m->cfg.n_layers; i++)
			free_layer(&m->layers[i]);
	free(m->layers);
	free(m->final_norm);
	st_close(m->st);
	config_release(&m->cfg);
	free(m->qnote.first);
	free(m->warning);
	free(m->dir);
	free(m);
}

static const char *
fmt_name(const struct qmat *W, char *buf, size_t len)
{
	if (W->fmt == WFMT_GPTQ)
		snprintf(buf, len, "int%d g%d", W->bits, W->group_size);
	else
		snprintf(buf, len, "%s",
			 W->fmt == WFMT_F32   ? "f32"
			 : W->fmt == WFMT_F16 ? "f16"
					      : "bf16");
	return buf;
}

bool
model_is_full_size(const struct model *m)
{
	return m->cfg.n_layers == 48 && m->cfg.hidden_size == 2048 && m->cfg.n_experts == 512 &&
	       m->cfg.n_experts_per_tok == 10 && m->cfg.vocab_size >= 151643;
}

char *
model_describe(const struct model *m)
{
	const struct layer *l0 = &m->layers[0];
	const struct qmat *proj = l0->full ? &l0->attn.q_proj : &l0->gdn.in_qkvz;
	char a[32], b[32], c[32], d[32];

	return xasprintf("%d layers, dim %d, %d experts (top %d); experts %s, projections %s, "
			 "router %s, lm_head %s; %.2f GB of weights, %.2f GB read per token",
			 m->cfg.n_layers, m->cfg.hidden_size, m->cfg.n_experts,
			 m->cfg.n_experts_per_tok,
			 l0->moe ? fmt_name(&l0->moe_w.gate[0], a, sizeof(a)) : "-",
			 fmt_name(proj, b, sizeof(b)),
			 l0->moe ? fmt_name(&l0->moe_w.router, c, sizeof(c)) : "-",
			 fmt_name(&m->lm_head, d, sizeof(d)), (double)m->weight_bytes / 1e9,
			 (double)m->decode_bytes / 1e9);
}

const char *
model_warning(const struct model *m)
{
	return m->warning;
}
