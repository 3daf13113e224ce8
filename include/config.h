/*
 * config.h - the model's config.json (Qwen3-Next) and its AutoRound
 * quantization_config, parsed into plain data.
 *
 * Accepts every form docs/model-format.md "Configuration" lists: explicit `layer_types` or
 * `full_attention_interval`; rope fields (`rope_theta`,
 * `partial_rotary_factor`) at top level or inside `rope_parameters` /
 * `rope_scaling`; `dtype` or `torch_dtype`; `eos_token_id` scalar or list.
 * `quantization_config` comes from config.json, or from
 * quantization_config.json beside it when config.json lacks one.
 *
 * Any thread; the struct is plain data, immutable after config_load().
 */
#ifndef QNEXT_CONFIG_H
#define QNEXT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_MAX_EOS 8

/* One extra_config entry: a module name (or a regex when is_regex) and the
 * keys it overrides (-1 / empty when not given). */
struct quant_override {
	char *key;
	bool is_regex;
	int bits;           /* -1 when absent; 16 or 32 with data_type float means unquantized */
	int group_size;     /* -1 when absent */
	int sym;            /* -1 absent, 0 false, 1 true */
	char data_type[16]; /* "" when absent */
	void *re;           /* the compiled regex (pcre2_code *) when is_regex, else NULL;
			     * opaque so this header needs no <pcre2.h>; owned */
};

struct quant_config {
	bool present;            /* a quantization_config was found */
	char quant_method[32];   /* "auto-round" */
	char packing_format[64]; /* "auto_round:auto_gptq" */
	char data_type[16];      /* "int" */
	int bits;                /* default bits for quantized linears */
	int group_size;
	bool sym;
	bool desc_act; /* act-order (g_idx); unsupported */
	int n_overrides;
	struct quant_override *overrides; /* [n_overrides]: exact keys sorted by name,
					   * then regex keys in file order */
};

struct model_config {
	int hidden_size; /* dim */
	int n_layers;
	int vocab_size;
	float rms_eps;

	/* Gated attention ("full_attention" layers). */
	int n_heads, n_kv_heads, head_dim;
	int rotary_dim; /* (int)(head_dim * partial_rotary_factor), even */
	double rope_theta;

	/* Gated DeltaNet ("linear_attention" layers). */
	int lin_n_k_heads, lin_n_v_heads; /* Hk, Hv; Hv % Hk == 0 */
	int lin_k_dim, lin_v_dim;         /* dk, dv */
	int conv_kernel;                  /* Kc */

	/* MoE. */
	int n_experts, n_experts_per_tok;
	int moe_inter;    /* routed expert width */
	int shared_inter; /* shared expert width; 0 = no shared expert */
	bool norm_topk_prob;
	int intermediate_size; /* dense MLP width (layers that are not MoE) */

	bool tie_word_embeddings;
	bool *layer_full; /* [n_layers] true = full attention, false = DeltaNet */
	bool *layer_moe;  /* [n_layers] true = sparse MoE, false = dense MLP */

	int bos_token_id; /* -1 when absent */
	int n_eos;
	int eos_token_id[CONFIG_MAX_EOS];

	struct quant_config quant;
};

/*
 * Parse `dir`/config.json (and quantization_config.json when needed) into *c.
 * Returns 0, or -1 with *cause naming the file and field ("config.json:
 * num_attention_heads: missing", "... must be a positive integer", ...).
 * Validates what the forward pass relies on (positive sizes, Hv % Hk == 0,
 * rotary_dim even and <= head_dim, layer_types length and values, known
 * architecture / model_type "qwen3_next").
 */
int config_load(struct model_config *c, const char *dir, char **cause);

/* Same, from a JSON text already in memory (tests, fuzzing).  `qjson` is the
 * optional quantization_config.json text (NULL when absent). */
int config_parse(struct model_config *c, const char *json, size_t len, const char *qjson,
		 size_t qlen, const char *what, char **cause);

/* Free what config_load allocated; the struct may be reused.  Accepts NULL. */
void config_release(struct model_config *c);

/*
 * Bits and group size that quantization_config gives for linear module
 * `module` (e.g. "model.layers.0.linear_attn.in_proj_qkvz"): an exact
 * extra_config key wins, then the first matching regex key (full match),
 * then the top-level values.  *bits is 16 for modules declared unquantized
 * (bits >= 16 or data_type "float"/"fp").  Returns 0 when an override matched,
 * 1 when the top-level defaults were used, -1 when there is no
 * quantization_config at all (then *bits = 16), -2 with cause set when a
 * regex key is too costly to match (a catastrophic pattern).
 */
int config_module_quant(const struct model_config *c, const char *module, int *bits,
			int *group_size, char **cause);

#endif
