/*
 * config.c - parse a Qwen3-Next config.json and its AutoRound
 * quantization_config into struct model_config.
 *
 * The order below follows the file: model type, the integer sizes (one table),
 * the real-valued and boolean fields, rope (top level, `rope_parameters` or
 * `rope_scaling`), which layers are full attention and which are MoE, the
 * special tokens, then quantization_config with its extra_config overrides
 * (exact module names, or regular expressions compiled once with PCRE2), and
 * last config_module_quant, which answers "how is module M quantized".
 *
 * Defaults for absent optional fields are transformers' Qwen3NextConfig
 * defaults (head_dim 256, partial_rotary_factor 0.25, rope_theta 10000,
 * full_attention_interval 4), so a file means here what it means there.
 * A 3-bit width anywhere in quantization_config is refused at parse time with
 * the module named: 3-bit GPTQ packing straddles words and no kernel reads it.
 *
 * Any thread: there is no global state; each call works on the caller's
 * struct, which is plain data and immutable once config_load() returns.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util.h"

/* Strings from the file quoted in messages are cut to this many bytes. */
#define SHOW       96
/* int_field.def for keys that must be present. */
#define REQUIRED   INT_MIN
/* An extra_config key holding any of these is a regular expression.  '.' is
 * not among them: every module name has dots. */
#define REGEX_META "*+?[](){}|\\^$"

struct int_field {
	const char *key;
	size_t off;   /* offsetof(struct model_config, the field) */
	int min, max; /* accepted range */
	int def;      /* value when absent or null; REQUIRED: must be present */
};

#define OFF(f) offsetof(struct model_config, f)
/*
 * The bounds are far above the real model (hidden 2048, head_dim 256, vocab
 * 151936, 512 experts) and keep products of two sizes well inside 64 bits.
 * MoE sizes default to 0 here and are demanded later only when a layer is MoE.
 */
/* clang-format off */
static const struct int_field int_fields[] = {
	{ "hidden_size",                     OFF(hidden_size),       1, 1 << 16, REQUIRED },
	{ "num_hidden_layers",               OFF(n_layers),          1, 1024,    REQUIRED },
	{ "vocab_size",                      OFF(vocab_size),        1, 1 << 22, REQUIRED },
	{ "num_attention_heads",             OFF(n_heads),           1, 1024,    REQUIRED },
	{ "num_key_value_heads",             OFF(n_kv_heads),        1, 1024,    REQUIRED },
	{ "head_dim",                        OFF(head_dim),          1, 4096,    256 },
	{ "linear_num_key_heads",            OFF(lin_n_k_heads),     1, 1024,    REQUIRED },
	{ "linear_num_value_heads",          OFF(lin_n_v_heads),     1, 1024,    REQUIRED },
	{ "linear_key_head_dim",             OFF(lin_k_dim),         1, 4096,    REQUIRED },
	{ "linear_value_head_dim",           OFF(lin_v_dim),         1, 4096,    REQUIRED },
	{ "linear_conv_kernel_dim",          OFF(conv_kernel),       1, 64,      REQUIRED },
	{ "num_experts",                     OFF(n_experts),         0, 1 << 14, REQUIRED },
	{ "num_experts_per_tok",             OFF(n_experts_per_tok), 0, 1 << 14, 0 },
	{ "moe_intermediate_size",           OFF(moe_inter),         0, 1 << 20, 0 },
	{ "shared_expert_intermediate_size", OFF(shared_inter),      0, 1 << 20, 0 },
	{ "intermediate_size",               OFF(intermediate_size), 0, 1 << 20, 0 },
};
/* clang-format on */

/* "<what>: <field>: <message>", always -1. */
static int field_error(char **cause, const char *what, const char *field, const char *fmt, ...)
	PRINTF_LIKE(4, 5);

static int
field_error(char **cause, const char *what, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cause_set(cause, "%s: %s: %s", what, field, msg);
}

/* The value of `key`, or NULL when absent or JSON null (transformers' None). */
static json_t *
get(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_null(v) ? NULL : v;
}

static int
get_int(json_t *o, const char *key, int min, int max, int def, const char *what, int *out,
	char **cause)
{
	json_t *v = get(o, key);
	json_int_t x;

	if (v == NULL) {
		if (def == REQUIRED)
			return field_error(cause, what, key, "missing");
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || (x = json_integer_value(v)) < min)
		return field_error(cause, what, key, "must be a %s integer",
				   min > 0 ? "positive" : "non-negative");
	if (x > max)
		return field_error(cause, what, key, "%lld is too large (at most %d)", (long long)x,
				   max);
	*out = (int)x;
	return 0;
}

/* A number (integer or real) in (lo, hi]. */
static int
get_real(json_t *o, const char *key, double lo, double hi, double def, const char *what,
	 double *out, char **cause)
{
	json_t *v = get(o, key);
	double x;

	if (v == NULL) {
		*out = def;
		return 0;
	}
	x = json_number_value(v);
	if (!json_is_number(v) || !isfinite(x) || x <= lo || x > hi)
		return field_error(cause, what, key, "must be a number above %g and at most %g", lo,
				   hi);
	*out = x;
	return 0;
}

static int
get_bool(json_t *o, const char *key, bool def, const char *what, bool *out, char **cause)
{
	json_t *v = get(o, key);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return field_error(cause, what, key, "must be true or false");
	*out = json_is_true(v);
	return 0;
}

static int
check_model_type(json_t *root, const char *what, char **cause)
{
	json_t *mt = get(root, "model_type"), *arch = get(root, "architectures"), *a;
	size_t i;
	char s[SHOW];

	if (json_is_string(mt) && strcmp(json_string_value(mt), "qwen3_next") == 0)
		return 0;
	json_array_foreach(arch, i, a)
	{
		if (json_is_string(a) && strcmp(json_string_value(a), "Qwen3NextForCausalLM") == 0)
			return 0;
	}
	if (mt == NULL)
		return field_error(cause, what, "model_type",
				   "missing, and architectures does not name Qwen3NextForCausalLM");
	if (!json_is_string(mt))
		return field_error(cause, what, "model_type", "must be a string");
	str_show(s, sizeof(s), json_string_value(mt));
	return field_error(cause, what, "model_type", "'%s' is not qwen3_next", s);
}

static int
parse_scalars(struct model_config *c, json_t *root, const char *what, char **cause)
{
	double eps;

	for (size_t i = 0; i < ARRAY_LEN(int_fields); i++) {
		const struct int_field *f = &int_fields[i];

		if (get_int(root, f->key, f->min, f->max, f->def, what, (int *)((char *)c + f->off),
			    cause) != 0)
			return -1;
	}
	if (get_real(root, "rms_norm_eps", 0, 1, 1e-6, what, &eps, cause) != 0 ||
	    get_bool(root, "norm_topk_prob", true, what, &c->norm_topk_prob, cause) != 0 ||
	    get_bool(root, "tie_word_embeddings", false, what, &c->tie_word_embeddings, cause) != 0)
		return -1;
	c->rms_eps = (float)eps;
	return 0;
}

/*
 * Where the rope fields live: top level (original Qwen config), or in
 * `rope_parameters` (transformers >= 4.57 re-saves; possibly keyed by layer
 * type), or in an old-style `rope_scaling` object.  Scaled rope (YaRN and
 * friends) is refused rather than silently computed as plain rope.
 */
static int
rope_homes(json_t *root, json_t *homes[2], const char *what, char **cause)
{
	static const char *const names[2] = { "rope_parameters", "rope_scaling" };
	char s[SHOW];

	for (int i = 0; i < 2; i++) {
		json_t *h = get(root, names[i]), *t;

		homes[i] = NULL;
		if (h == NULL)
			continue;
		if (!json_is_object(h))
			return field_error(cause, what, names[i], "must be an object or null");
		if (json_is_object(get(h, "full_attention")))
			h = get(h, "full_attention");
		if ((t = get(h, "rope_type")) == NULL)
			t = get(h, "type");
		if (t != NULL &&
		    (!json_is_string(t) || strcmp(json_string_value(t), "default") != 0)) {
			str_show(s, sizeof(s), json_is_string(t) ? json_string_value(t) : "?");
			return field_error(cause, what, names[i],
					   "rope_type '%s' is not supported (only default rope)",
					   s);
		}
		homes[i] = h;
	}
	return 0;
}

/* Look `key` up at top level first, then in the rope objects. */
static json_t *
rope_holder(json_t *root, json_t *homes[2], const char *key)
{
	if (get(root, key) != NULL)
		return root;
	for (int i = 0; i < 2; i++) {
		if (homes[i] != NULL && get(homes[i], key) != NULL)
			return homes[i];
	}
	return root;
}

static int
parse_rope(struct model_config *c, json_t *root, const char *what, char **cause)
{
	json_t *homes[2];
	double factor, rd;

	if (rope_homes(root, homes, what, cause) != 0 ||
	    get_real(rope_holder(root, homes, "rope_theta"), "rope_theta", 0, 1e30, 10000.0, what,
		     &c->rope_theta, cause) != 0 ||
	    get_real(rope_holder(root, homes, "partial_rotary_factor"), "partial_rotary_factor", 0,
		     1, 0.25, what, &factor, cause) != 0)
		return -1;
	rd = (double)c->head_dim * factor;
	c->rotary_dim = (int)rd;
	if (c->rotary_dim <= 0 || c->rotary_dim % 2 != 0)
		return field_error(cause, what, "partial_rotary_factor",
				   "head_dim %d x %g gives rotary dimension %d, which must be "
				   "even and positive",
				   c->head_dim, factor, c->rotary_dim);
	return 0;
}

static int
parse_layer_types(struct model_config *c, json_t *root, const char *what, char **cause)
{
	json_t *lt = get(root, "layer_types");
	int interval;
	char s[SHOW];

	c->layer_full = xcalloc((size_t)c->n_layers, sizeof(*c->layer_full));
	if (lt == NULL) {
		if (get_int(root, "full_attention_interval", 1, 1 << 20, 4, what, &interval,
			    cause) != 0)
			return -1;
		for (int i = 0; i < c->n_layers; i++)
			c->layer_full[i] = (i + 1) % interval == 0;
		return 0;
	}
	if (!json_is_array(lt))
		return field_error(cause, what, "layer_types", "must be a list");
	if (json_array_size(lt) != (size_t)c->n_layers)
		return field_error(cause, what, "layer_types",
				   "has %zu entries but num_hidden_layers is %d",
				   json_array_size(lt), c->n_layers);
	for (int i = 0; i < c->n_layers; i++) {
		const char *t = json_string_value(json_array_get(lt, (size_t)i));

		if (t != NULL && strcmp(t, "full_attention") == 0)
			c->layer_full[i] = true;
		else if (t == NULL || strcmp(t, "linear_attention") != 0) {
			str_show(s, sizeof(s), t != NULL ? t : "(not a string)");
			return field_error(cause, what, "layer_types",
					   "entry %d: unknown layer type '%s'", i, s);
		}
	}
	return 0;
}

/* transformers: MoE iff not in mlp_only_layers, num_experts > 0, (i+1) % step == 0. */
static int
parse_moe_layers(struct model_config *c, json_t *root, const char *what, char **cause)
{
	json_t *mlp = get(root, "mlp_only_layers"), *v;
	int step;
	size_t k;

	if (get_int(root, "decoder_sparse_step", 1, 1 << 20, 1, what, &step, cause) != 0)
		return -1;
	c->layer_moe = xcalloc((size_t)c->n_layers, sizeof(*c->layer_moe));
	for (int i = 0; i < c->n_layers; i++)
		c->layer_moe[i] = c->n_experts > 0 && (i + 1) % step == 0;
	if (mlp != NULL && !json_is_array(mlp))
		return field_error(cause, what, "mlp_only_layers", "must be a list");
	json_array_foreach(mlp, k, v)
	{
		json_int_t x = json_integer_value(v);

		if (!json_is_integer(v) || x < 0 || x >= c->n_layers)
			return field_error(cause, what, "mlp_only_layers",
					   "entry %zu is not a layer index below %d", k,
					   c->n_layers);
		c->layer_moe[x] = false;
	}
	return 0;
}

/* A size that the layer mix makes necessary: missing and <= 0 are both errors. */
static int
need_positive(json_t *root, const char *key, int value, const char *what, char **cause)
{
	if (value > 0)
		return 0;
	return field_error(cause, what, key, "%s",
			   get(root, key) == NULL ? "missing" : "must be a positive integer");
}

/* The relations between sizes that the forward pass relies on. */
static int
check_dims(struct model_config *c, json_t *root, const char *what, char **cause)
{
	bool any_moe = false, any_dense = false;

	for (int i = 0; i < c->n_layers; i++) {
		any_moe |= c->layer_moe[i];
		any_dense |= !c->layer_moe[i];
	}
	if (c->n_heads % c->n_kv_heads != 0)
		return field_error(cause, what, "num_attention_heads",
				   "%d is not a multiple of num_key_value_heads (%d)", c->n_heads,
				   c->n_kv_heads);
	if (c->lin_n_v_heads % c->lin_n_k_heads != 0)
		return field_error(cause, what, "linear_num_value_heads",
				   "%d is not a multiple of linear_num_key_heads (%d)",
				   c->lin_n_v_heads, c->lin_n_k_heads);
	if (any_dense &&
	    need_positive(root, "intermediate_size", c->intermediate_size, what, cause) != 0)
		return -1;
	if (!any_moe)
		return 0;
	if (need_positive(root, "moe_intermediate_size", c->moe_inter, what, cause) != 0 ||
	    need_positive(root, "num_experts_per_tok", c->n_experts_per_tok, what, cause) != 0)
		return -1;
	if (c->n_experts_per_tok > c->n_experts)
		return field_error(cause, what, "num_experts_per_tok",
				   "%d is more than num_experts (%d)", c->n_experts_per_tok,
				   c->n_experts);
	return 0;
}

static int
get_token(json_t *v, const struct model_config *c, const char *what, const char *key, int *out,
	  char **cause)
{
	json_int_t x = json_integer_value(v);

	if (!json_is_integer(v) || x < 0 || x >= c->vocab_size)
		return field_error(cause, what, key, "must be a token id below vocab_size (%d)",
				   c->vocab_size);
	*out = (int)x;
	return 0;
}

/* bos is optional (-1); eos is an id, a list of ids, or absent (none). */
static int
parse_tokens(struct model_config *c, json_t *root, const char *what, char **cause)
{
	json_t *bos = get(root, "bos_token_id"), *eos = get(root, "eos_token_id"), *v;
	size_t i;

	c->bos_token_id = -1;
	if (bos != NULL && get_token(bos, c, what, "bos_token_id", &c->bos_token_id, cause) != 0)
		return -1;
	if (eos == NULL)
		return 0;
	if (!json_is_array(eos)) {
		c->n_eos = 1;
		return get_token(eos, c, what, "eos_token_id", &c->eos_token_id[0], cause);
	}
	if (json_array_size(eos) > CONFIG_MAX_EOS)
		return field_error(cause, what, "eos_token_id", "has %zu entries (at most %d)",
				   json_array_size(eos), CONFIG_MAX_EOS);
	json_array_foreach(eos, i, v)
	{
		if (get_token(v, c, what, "eos_token_id", &c->eos_token_id[i], cause) != 0)
			return -1;
		c->n_eos++;
	}
	return 0;
}

static int
parse_model(struct model_config *c, json_t *root, const char *what, char **cause)
{
	if (check_model_type(root, what, cause) != 0 || parse_scalars(c, root, what, cause) != 0 ||
	    parse_rope(c, root, what, cause) != 0 || parse_layer_types(c, root, what, cause) != 0 ||
	    parse_moe_layers(c, root, what, cause) != 0 || check_dims(c, root, what, cause) != 0 ||
	    parse_tokens(c, root, what, cause) != 0)
		return -1;
	return 0;
}

/*
 * Bit widths: 2, 4 and 8 are packed integers; 16 and 32 mean "left in
 * floating point".  3 would be legal AutoRound but its packing straddles
 * words, so it is refused here where the module can still be named.
 */
static int
check_bits(json_int_t b, const char *where, char **cause)
{
	if (b == 2 || b == 4 || b == 8 || b == 16 || b == 32)
		return 0;
	if (b == 3)
		return field_error(cause, where, "bits",
				   "3 is not supported (qnext reads 2, 4 and 8-bit packing)");
	return field_error(cause, where, "bits", "%lld is not one of 2, 4, 8, 16, 32",
			   (long long)b);
}

/* "int", "int_sym", ...: integer quantization. */
static bool
is_int_type(const char *dt)
{
	return strncmp(dt, "int", 3) == 0;
}

/* Spellings AutoRound uses for "not quantized". */
static bool
is_float_type(const char *dt)
{
	static const char *const names[] = { "float", "fp", "fp16", "bf16", "float16", "bfloat16" };

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		if (strcmp(dt, names[i]) == 0)
			return true;
	}
	return false;
}

/* Copy string field `key` of o into dst[size]; absent leaves dst alone. */
static int
get_str(json_t *o, const char *key, char *dst, size_t size, const char *where, char **cause)
{
	json_t *v = get(o, key);
	char s[SHOW];

	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return field_error(cause, where, key, "must be a string");
	if (json_string_length(v) >= size) {
		str_show(s, sizeof(s), json_string_value(v));
		return field_error(cause, where, key, "'%s' is not supported", s);
	}
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* An optional integer: 1 and *out when present, 0 when absent, -1 on a wrong type. */
static int
get_opt_int(json_t *o, const char *key, const char *where, json_int_t *out, char **cause)
{
	json_t *v = get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v))
		return field_error(cause, where, key, "must be an integer");
	*out = json_integer_value(v);
	return 1;
}

static int
compile_key(struct quant_override *ov, const char *where, char **cause)
{
	PCRE2_UCHAR msg[128];
	PCRE2_SIZE off;
	int err;

	/* Anchored at both ends: AutoRound matches regex keys against the whole name. */
	ov->re = pcre2_compile((PCRE2_SPTR)ov->key, PCRE2_ZERO_TERMINATED,
			       PCRE2_ANCHORED | PCRE2_ENDANCHORED, &err, &off, NULL);
	if (ov->re != NULL)
		return 0;
	pcre2_get_error_message(err, msg, sizeof(msg));
	return cause_set(cause, "%s: bad regular expression at offset %zu: %s", where, (size_t)off,
			 (const char *)msg);
}

/*
 * Bits, group size and sym (-1 absent, 0, 1) of a quantization_config or
 * extra_config object; absent keys leave the outputs alone.
 */
static int
parse_widths(json_t *o, int *bits, int *group_size, int *sym, const char *where, char **cause)
{
	json_int_t x = 0;
	int rc;
	bool b = true;

	if ((rc = get_opt_int(o, "bits", where, &x, cause)) < 0 ||
	    (rc > 0 && check_bits(x, where, cause) != 0))
		return -1;
	if (rc > 0)
		*bits = (int)x;
	/* -1 is GPTQ's "one group per row"; the loader then reads it off the shapes. */
	if ((rc = get_opt_int(o, "group_size", where, &x, cause)) < 0)
		return -1;
	if (rc > 0 && (x == 0 || x < -1 || x > INT_MAX))
		return field_error(cause, where, "group_size", "must be positive or -1");
	if (rc > 0)
		*group_size = (int)x;
	if (get(o, "sym") == NULL)
		return 0;
	if (get_bool(o, "sym", true, where, &b, cause) != 0)
		return -1;
	*sym = b;
	return 0;
}

static int
parse_override(struct quant_config *q, struct quant_override *ov, const char *key, json_t *v,
	       const char *where, char **cause)
{
	char w[SHOW + 256], k[SHOW], d[SHOW];
	const char *dt;
	int bits;

	str_show(k, sizeof(k), key);
	snprintf(w, sizeof(w), "%s: extra_config: '%s'", where, k);
	ov->key = xstrdup(key);
	ov->bits = ov->group_size = ov->sym = -1;
	if (!json_is_object(v))
		return cause_set(cause, "%s: must be an object", w);
	if (parse_widths(v, &ov->bits, &ov->group_size, &ov->sym, w, cause) != 0 ||
	    get_str(v, "data_type", ov->data_type, sizeof(ov->data_type), w, cause) != 0)
		return -1;
	dt = ov->data_type[0] != '\0' ? ov->data_type : q->data_type;
	bits = ov->bits >= 0 ? ov->bits : q->bits;
	str_show(d, sizeof(d), dt);
	if (!is_int_type(dt) && !is_float_type(dt))
		return field_error(cause, w, "data_type", "'%s' is not supported", d);
	if (is_float_type(dt) && bits < 16)
		return field_error(cause, w, "data_type",
				   "'%s' with %d bits (a floating-point quantization) is not "
				   "supported",
				   d, bits);
	ov->is_regex = strpbrk(key, REGEX_META) != NULL;
	return ov->is_regex ? compile_key(ov, w, cause) : 0;
}

static int
override_cmp(const void *a, const void *b)
{
	const struct quant_override *x = a, *y = b;

	return strcmp(x->key, y->key);
}

/* Exact keys first, sorted for bsearch; regex keys after, in file order. */
static void
sort_overrides(struct quant_config *q)
{
	struct quant_override *tmp = xcalloc((size_t)q->n_overrides, sizeof(*tmp));
	int n = 0;

	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < q->n_overrides; i++) {
			if (q->overrides[i].is_regex == (pass == 1))
				tmp[n++] = q->overrides[i];
		}
		if (pass == 0 && n > 1)
			qsort(tmp, (size_t)n, sizeof(*tmp), override_cmp);
	}
	free(q->overrides);
	q->overrides = tmp;
}

static int
parse_extra(struct quant_config *q, json_t *ex, const char *where, char **cause)
{
	const char *key;
	json_t *v;

	if (ex == NULL)
		return 0;
	if (!json_is_object(ex))
		return field_error(cause, where, "extra_config", "must be an object");
	if (json_object_size(ex) == 0)
		return 0;
	if (json_object_size(ex) > INT_MAX / 2)
		return field_error(cause, where, "extra_config", "too many entries");
	q->overrides = xcalloc(json_object_size(ex), sizeof(*q->overrides));
	json_object_foreach(ex, key, v)
	{
		/* Counted first so that config_release frees a half-parsed entry. */
		if (parse_override(q, &q->overrides[q->n_overrides++], key, v, where, cause) != 0)
			return -1;
	}
	sort_overrides(q);
	return 0;
}

static int
check_method(struct quant_config *q, json_t *qc, const char *where, char **cause)
{
	static const char *const methods[] = { "auto-round", "autoround", "intel/auto-round",
					       "gptq" };
	/* "auto_round" stores zero points without GPTQ's minus one: the
	 * loader marks its matrices (qmat.zero_raw) so none is one step off. */
	static const char *const packings[] = { "auto_round:auto_gptq", "auto_gptq", "auto_round" };
	json_t *m = get(qc, "quant_method"), *p = get(qc, "packing_format");
	char s[SHOW];
	size_t i;
	int rc;

	for (i = 0; m != NULL && i < ARRAY_LEN(methods); i++) {
		if (json_is_string(m) && strcmp(json_string_value(m), methods[i]) == 0)
			break;
	}
	if (m != NULL && i == ARRAY_LEN(methods)) {
		str_show(s, sizeof(s), json_is_string(m) ? json_string_value(m) : "(not a string)");
		return cause_set(cause,
				 "%s: quant_method '%s' is not supported (qnext reads AutoRound "
				 "int2/4/8 checkpoints)",
				 where, s);
	}
	for (i = 0; p != NULL && i < ARRAY_LEN(packings); i++) {
		if (json_is_string(p) && strcmp(json_string_value(p), packings[i]) == 0)
			break;
	}
	if (p != NULL && i == ARRAY_LEN(packings)) {
		str_show(s, sizeof(s), json_is_string(p) ? json_string_value(p) : "(not a string)");
		return cause_set(cause,
				 "%s: packing_format '%s' is not supported (qnext reads "
				 "auto_round:auto_gptq and auto_round)",
				 where, s);
	}
	rc = get_str(qc, "quant_method", q->quant_method, sizeof(q->quant_method), where, cause);
	if (rc == 0)
		rc = get_str(qc, "packing_format", q->packing_format, sizeof(q->packing_format),
			     where, cause);
	return rc;
}

/*
 * Settings that change what the stored integers mean, which qnext does not
 * implement: refused by name rather than computed wrong.
 */
static int
check_unsupported(json_t *qc, const char *where, char **cause)
{
	static const char *const transforms[] = { "transform_config", "transforms", "rotation",
						  "rotations", "hadamard" };
	json_t *v = get(qc, "checkpoint_format");
	char s[SHOW];

	if (json_is_string(v) && strcmp(json_string_value(v), "gptq") != 0) {
		str_show(s, sizeof(s), json_string_value(v));
		return field_error(cause, where, "checkpoint_format",
				   "'%s' is not supported (qnext reads GPTQ v1 zero points)", s);
	}
	v = get(qc, "act_bits");
	if (v != NULL && (!json_is_number(v) || json_number_value(v) < 16))
		return field_error(cause, where, "act_bits",
				   "quantized activations are not supported (qnext reads "
				   "weight-only checkpoints, act_bits 16 or more)");
	for (size_t i = 0; i < ARRAY_LEN(transforms); i++) {
		v = get(qc, transforms[i]);
		if (v != NULL && !json_is_false(v) &&
		    !((json_is_object(v) && json_object_size(v) == 0) ||
		      (json_is_array(v) && json_array_size(v) == 0)))
			return field_error(cause, where, transforms[i],
					   "weight transforms or rotations are not supported");
	}
	return 0;
}

/*
 * The top level.  AutoRound strips keys equal to its defaults, so absent
 * means bits 4, group_size 128, sym, data_type "int".
 */
static int
parse_quant(struct quant_config *q, json_t *qc, const char *where, char **cause)
{
	char s[SHOW];
	int sym = 1;

	if (!json_is_object(qc))
		return cause_set(cause, "%s: must be an object", where);
	q->present = true;
	q->bits = 4;
	q->group_size = 128;
	strcpy(q->data_type, "int");
	if (check_method(q, qc, where, cause) != 0 || check_unsupported(qc, where, cause) != 0 ||
	    get_str(qc, "data_type", q->data_type, sizeof(q->data_type), where, cause) != 0)
		return -1;
	if (!is_int_type(q->data_type)) {
		str_show(s, sizeof(s), q->data_type);
		return field_error(cause, where, "data_type",
				   "'%s' is not supported (qnext reads integer quantization)", s);
	}
	if (parse_widths(qc, &q->bits, &q->group_size, &sym, where, cause) != 0 ||
	    get_bool(qc, "desc_act", false, where, &q->desc_act, cause) != 0)
		return -1;
	q->sym = sym != 0;
	return parse_extra(q, get(qc, "extra_config"), where, cause);
}

/* quantization_config from config.json, else from quantization_config.json. */
static int
parse_quant_source(struct model_config *c, json_t *root, const char *qjson, size_t qlen,
		   const char *what, const char *qwhat, char **cause)
{
	json_t *qc = get(root, "quantization_config"), *qroot;
	char *where;
	int rc;

	if (qc != NULL) {
		where = xasprintf("%s: quantization_config", what);
		rc = parse_quant(&c->quant, qc, where, cause);
		free(where);
		return rc;
	}
	if (qjson == NULL)
		return 0;
	if ((qroot = json_parse_object(qjson, qlen, qwhat, SHOW, cause)) == NULL)
		return -1;
	rc = parse_quant(&c->quant, qroot, qwhat, cause);
	json_decref(qroot);
	return rc;
}

static int
parse_all(struct model_config *c, const char *json, size_t len, const char *qjson, size_t qlen,
	  const char *what, const char *qwhat, char **cause)
{
	json_t *root;
	int rc;

	memset(c, 0, sizeof(*c));
	if ((root = json_parse_object(json, len, what, SHOW, cause)) == NULL)
		return -1;
	rc = parse_model(c, root, what, cause);
	if (rc == 0)
		rc = parse_quant_source(c, root, qjson, qlen, what, qwhat, cause);
	json_decref(root);
	if (rc != 0)
		config_release(c);
	return rc;
}

int
config_parse(struct model_config *c, const char *json, size_t len, const char *qjson, size_t qlen,
	     const char *what, char **cause)
{
	return parse_all(c, json, len, qjson, qlen, what != NULL ? what : "config.json",
			 "quantization_config.json", cause);
}

int
config_load(struct model_config *c, const char *dir, char **cause)
{
	char *path = xasprintf("%s/config.json", dir);
	char *qpath = xasprintf("%s/quantization_config.json", dir);
	char *json, *qjson = NULL;
	size_t len, qlen = 0;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	if ((json = read_file_max(path, READ_MAX_CONFIG, &len, cause)) == NULL)
		goto out;
	/* Read even when config.json has its own copy; parse_all then ignores it. */
	if (access(qpath, F_OK) == 0 &&
	    (qjson = read_file_max(qpath, READ_MAX_CONFIG, &qlen, cause)) == NULL)
		goto out;
	rc = parse_all(c, json, len, qjson, qlen, path, qpath, cause);
out:
	free(qjson);
	free(json);
	free(qpath);
	free(path);
	return rc;
}

void
config_release(struct model_config *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < c->quant.n_overrides; i++) {
		free(c->quant.overrides[i].key);
		pcre2_code_free(c->quant.overrides[i].re);
	}
	free(c->quant.overrides);
	free(c->layer_full);
	free(c->layer_moe);
	memset(c, 0, sizeof(*c));
}

/*
 * Backtracking steps one extra_config regex may take on one module name.
 * Real keys ('.*mlp.gate$' and the like) take a few hundred; a
 * catastrophic pattern such as (a|a)*b hit PCRE2's default of ten million
 * on every module and made a load 250x slower.
 */
#define REGEX_MATCH_LIMIT 100000

/* 1: o's regex matches module, 0: it does not, -1: it is too costly to tell. */
static int
regex_match(const struct quant_override *o, const char *module)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(o->re, NULL);
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	int rc;

	if (md == NULL || mc == NULL)
		fatal("out of memory matching extra_config regex");
	pcre2_set_match_limit(mc, REGEX_MATCH_LIMIT);
	pcre2_set_depth_limit(mc, REGEX_MATCH_LIMIT);
	rc = pcre2_match(o->re, (PCRE2_SPTR)module, strlen(module), 0, 0, md, mc);
	pcre2_match_data_free(md);
	pcre2_match_context_free(mc);
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT)
		return -1;
	return rc >= 0;
}

static int
key_cmp(const void *key, const void *elem)
{
	const struct quant_override *o = elem;

	return strcmp(key, o->key);
}

/* The override for module, NULL for none; *costly: the regex that hit the limit. */
static const struct quant_override *
find_override(const struct quant_config *q, const char *module,
	      const struct quant_override **costly)
{
	const struct quant_override *o = NULL;
	int n_exact = q->n_overrides;

	*costly = NULL;
	while (n_exact > 0 && q->overrides[n_exact - 1].is_regex)
		n_exact--;
	if (n_exact > 0)
		o = bsearch(module, q->overrides, (size_t)n_exact, sizeof(*o), key_cmp);
	for (int i = n_exact; o == NULL && i < q->n_overrides; i++) {
		int r = regex_match(&q->overrides[i], module);

		if (r < 0) {
			*costly = &q->overrides[i];
			return NULL;
		}
		if (r > 0)
			o = &q->overrides[i];
	}
	return o;
}

int
config_module_quant(const struct model_config *c, const char *module, int *bits, int *group_size,
		    char **cause)
{
	const struct quant_config *q = &c->quant;
	const struct quant_override *o, *costly;
	const char *dt;
	int b;

	if (!q->present) {
		*bits = 16;
		*group_size = 0;
		return -1;
	}
	o = find_override(q, module, &costly);
	if (costly != NULL) {
		char key[96];

		cause_set(cause,
			  "quantization_config: extra_config regex '%s' takes more than %d "
			  "backtracking steps on '%s'; refusing it",
			  str_show(key, sizeof(key), costly->key), REGEX_MATCH_LIMIT, module);
		return -2;
	}
	b = o != NULL && o->bits >= 0 ? o->bits : q->bits;
	dt = o != NULL && o->data_type[0] != '\0' ? o->data_type : q->data_type;
	*bits = b >= 16 || is_float_type(dt) ? 16 : b;
	*group_size = o != NULL && o->group_size > 0 ? o->group_size : q->group_size;
	return o != NULL ? 0 : 1;
}
