/*
 * test-config.c - engine/config.c on the two golden configs in tests/data
 * (the full_attention_interval form with top-level rope, and the layer_types
 * form with rope_parameters), on quantization_config lookups, and on inline
 * JSON that must parse or fail with a message naming the field.  Run from the
 * repository root.  Single-threaded.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "util.h"

/* A small valid config, one field per entry, so a test can drop or replace one. */
static const char *const base[] = {
	"\"model_type\": \"qwen3_next\"",
	"\"hidden_size\": 64",
	"\"num_hidden_layers\": 4",
	"\"vocab_size\": 100",
	"\"num_attention_heads\": 2",
	"\"num_key_value_heads\": 1",
	"\"head_dim\": 32",
	"\"partial_rotary_factor\": 0.5",
	"\"rope_theta\": 1000000.0",
	"\"linear_num_key_heads\": 1",
	"\"linear_num_value_heads\": 2",
	"\"linear_key_head_dim\": 16",
	"\"linear_value_head_dim\": 16",
	"\"linear_conv_kernel_dim\": 4",
	"\"num_experts\": 4",
	"\"num_experts_per_tok\": 2",
	"\"moe_intermediate_size\": 32",
	"\"eos_token_id\": 5",
};

/*
 * The base config without the fields whose keys are listed in `drop`
 * (space-separated), plus the text `add` (more "key": value pairs).
 */
static char *
make_json(const char *drop, const char *add)
{
	char *s = xstrdup("{"), *t;
	const char *sep = "";

	for (size_t i = 0; i < ARRAY_LEN(base); i++) {
		const char *key = base[i] + 1;
		size_t klen = strcspn(key, "\"");
		const char *d = drop;
		bool skip = false;

		while (d != NULL && *d != '\0') {
			size_t dlen = strcspn(d, " ");

			skip |= dlen == klen && strncmp(d, key, klen) == 0;
			d += dlen + (d[dlen] == ' ');
		}
		if (skip)
			continue;
		t = xasprintf("%s%s%s", s, sep, base[i]);
		free(s);
		s = t;
		sep = ", ";
	}
	t = xasprintf("%s%s%s}", s, add != NULL && *add != '\0' ? sep : "", add != NULL ? add : "");
	free(s);
	return t;
}

/* Parse base minus `drop` plus `add`; expect success. */
static int
parse_ok(struct model_config *c, const char *drop, const char *add)
{
	char *json = make_json(drop, add), *cause = NULL;
	int rc = config_parse(c, json, strlen(json), NULL, 0, "config.json", &cause);

	T_EQ_INT(rc, 0);
	if (rc != 0)
		fprintf(stderr, "  unexpected error: %s\n  for %s\n", cause, json);
	free(cause);
	free(json);
	return rc;
}

static void
parse_bad(const char *drop, const char *add, const char *needle)
{
	char *json = make_json(drop, add), *cause = NULL;
	struct model_config c;

	T_EQ_INT(config_parse(&c, json, strlen(json), NULL, 0, "config.json", &cause), -1);
	T_STR_CONTAINS(cause, needle);
	T_ASSERT(cause != NULL && strchr(cause, '\n') == NULL);
	T_ASSERT(c.layer_full == NULL && c.quant.overrides == NULL);
	free(cause);
	free(json);
}

static void
check_quant(const struct model_config *c, const char *module, int want_rc, int want_bits,
	    int want_gs)
{
	int bits = -7, gs = -7, rc = config_module_quant(c, module, &bits, &gs, NULL);

	T_EQ_INT(rc, want_rc);
	T_EQ_INT(bits, want_bits);
	if (want_gs != 0)
		T_EQ_INT(gs, want_gs);
	if (rc != want_rc || bits != want_bits)
		fprintf(stderr, "  for module %s\n", module);
}

static void
test_tiny_quant(const struct model_config *c)
{
	T_ASSERT(c->quant.present);
	T_ASSERT(strcmp(c->quant.quant_method, "auto-round") == 0);
	T_ASSERT(strcmp(c->quant.packing_format, "auto_round:auto_gptq") == 0);
	T_ASSERT(strcmp(c->quant.data_type, "int") == 0);
	T_EQ_INT(c->quant.bits, 4);
	T_EQ_INT(c->quant.group_size, 128);
	T_ASSERT(c->quant.sym);
	T_ASSERT(!c->quant.desc_act);
	T_EQ_INT(c->quant.n_overrides, 34);
	check_quant(c, "model.layers.0.linear_attn.in_proj_qkvz", 0, 8, 128);
	check_quant(c, "model.layers.0.linear_attn.in_proj_ba", 0, 16, 0);
	check_quant(c, "model.layers.3.mlp.shared_expert_gate", 0, 16, 0);
	check_quant(c, "model.embed_tokens", 0, 8, 128);
	check_quant(c, "model.layers.0.mlp.experts.3.up_proj", 1, 4, 128);
	check_quant(c, "model.layers.0.linear_attn", 1, 4, 128);
	check_quant(c, "", 1, 4, 128);
}

static void
test_tiny(void)
{
	struct model_config c;
	char *cause = NULL;
	static const bool full[4] = { false, false, false, true };

	T_EQ_INT(config_load(&c, "share/tiny", &cause), 0);
	if (cause != NULL) {
		fprintf(stderr, "  %s\n", cause);
		free(cause);
		return;
	}
	T_EQ_INT(c.hidden_size, 256);
	T_EQ_INT(c.n_layers, 4);
	T_EQ_INT(c.vocab_size, 1088);
	T_NEAR(c.rms_eps, 1e-6, 1e-12);
	T_EQ_INT(c.n_heads, 4);
	T_EQ_INT(c.n_kv_heads, 2);
	T_EQ_INT(c.head_dim, 64);
	T_EQ_INT(c.rotary_dim, 16);
	T_NEAR(c.rope_theta, 1e7, 0);
	T_EQ_INT(c.lin_n_k_heads, 2);
	T_EQ_INT(c.lin_n_v_heads, 4);
	T_EQ_INT(c.lin_k_dim, 32);
	T_EQ_INT(c.lin_v_dim, 32);
	T_EQ_INT(c.conv_kernel, 4);
	T_EQ_INT(c.n_experts, 16);
	T_EQ_INT(c.n_experts_per_tok, 4);
	T_EQ_INT(c.moe_inter, 128);
	T_EQ_INT(c.shared_inter, 128);
	T_ASSERT(c.norm_topk_prob);
	T_EQ_INT(c.intermediate_size, 1024);
	T_ASSERT(!c.tie_word_embeddings);
	for (int i = 0; i < 4; i++) {
		T_EQ_INT(c.layer_full[i], full[i]);
		T_ASSERT(c.layer_moe[i]);
	}
	T_EQ_INT(c.bos_token_id, 956);
	T_EQ_INT(c.n_eos, 1);
	T_EQ_INT(c.eos_token_id[0], 958);
	test_tiny_quant(&c);
	config_release(&c);
	config_release(&c); /* released twice is harmless */
	config_release(NULL);
}

static void
test_small(void)
{
	struct model_config c;
	char *cause = NULL;

	T_EQ_INT(config_load(&c, "tests/data/small", &cause), 0);
	if (cause != NULL) {
		fprintf(stderr, "  %s\n", cause);
		free(cause);
		return;
	}
	T_EQ_INT(c.n_layers, 8);
	for (int i = 0; i < 8; i++)
		T_EQ_INT(c.layer_full[i], i == 3 || i == 7);
	T_EQ_INT(c.n_heads, 8);
	T_EQ_INT(c.n_kv_heads, 1);
	T_EQ_INT(c.rotary_dim, 16);
	T_NEAR(c.rope_theta, 1e7, 0);
	T_EQ_INT(c.lin_n_k_heads, 8);
	T_EQ_INT(c.lin_n_v_heads, 16);
	T_EQ_INT(c.n_experts, 32);
	T_EQ_INT(c.n_experts_per_tok, 6);
	T_EQ_INT(c.moe_inter, 64);
	T_EQ_INT(c.shared_inter, 128);
	T_EQ_INT(c.vocab_size, 1920);
	T_EQ_INT(c.eos_token_id[0], 1758);
	T_EQ_INT(c.quant.bits, 4);
	T_EQ_INT(c.quant.group_size, 64);
	T_EQ_INT(c.quant.n_overrides, 43);
	check_quant(&c, "model.layers.7.mlp.gate", 0, 8, 64);
	check_quant(&c, "model.layers.7.mlp.shared_expert.up_proj", 1, 4, 64);
	config_release(&c);
}

static void
test_defaults(void)
{
	struct model_config c;
	int bits, gs;

	if (parse_ok(&c, NULL, NULL) == 0) {
		T_EQ_INT(c.rotary_dim, 16);
		T_NEAR(c.rope_theta, 1e6, 0);
		T_NEAR(c.rms_eps, 1e-6, 1e-12);
		T_EQ_INT(c.layer_full[3], 1);
		T_EQ_INT(c.layer_full[2], 0);
		T_EQ_INT(c.bos_token_id, -1);
		T_EQ_INT(c.shared_inter, 0);
		T_ASSERT(c.norm_topk_prob && !c.tie_word_embeddings && !c.quant.present);
		T_EQ_INT(config_module_quant(&c, "model.layers.0.mlp.gate", &bits, &gs, NULL), -1);
		T_EQ_INT(bits, 16);
		config_release(&c);
	}
	/* transformers' defaults: head_dim 256, partial_rotary_factor 0.25, theta 1e4 */
	if (parse_ok(&c, "head_dim partial_rotary_factor rope_theta eos_token_id", NULL) == 0) {
		T_EQ_INT(c.head_dim, 256);
		T_EQ_INT(c.rotary_dim, 64);
		T_NEAR(c.rope_theta, 10000, 0);
		T_EQ_INT(c.n_eos, 0);
		config_release(&c);
	}
	if (parse_ok(
		    &c, "model_type eos_token_id",
		    "\"architectures\": [\"Qwen3NextForCausalLM\"], \"full_attention_interval\": "
		    "2, "
		    "\"bos_token_id\": null, \"eos_token_id\": [7, 8, 9], \"tie_word_embeddings\": "
		    "true, \"rms_norm_eps\": 1e-5, \"torch_dtype\": \"bfloat16\"") == 0) {
		T_EQ_INT(c.layer_full[0] + 2 * c.layer_full[1] + 4 * c.layer_full[2] +
				 8 * c.layer_full[3],
			 10);
		T_EQ_INT(c.n_eos, 3);
		T_EQ_INT(c.eos_token_id[2], 9);
		T_EQ_INT(c.bos_token_id, -1);
		T_ASSERT(c.tie_word_embeddings);
		T_NEAR(c.rms_eps, 1e-5, 1e-12);
		config_release(&c);
	}
}

static void
test_rope_forms(void)
{
	struct model_config c;

	if (parse_ok(&c, "partial_rotary_factor rope_theta",
		     "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 500000, "
		     "\"partial_rotary_factor\": 0.25}") == 0) {
		T_EQ_INT(c.rotary_dim, 8);
		T_NEAR(c.rope_theta, 5e5, 0);
		config_release(&c);
	}
	if (parse_ok(&c, "partial_rotary_factor rope_theta",
		     "\"rope_scaling\": {\"type\": \"default\", \"rope_theta\": 2.5e5, "
		     "\"partial_rotary_factor\": 1}") == 0) {
		T_EQ_INT(c.rotary_dim, 32);
		T_NEAR(c.rope_theta, 2.5e5, 0);
		config_release(&c);
	}
	/* top level wins over rope_parameters; per-layer-type rope_parameters */
	if (parse_ok(&c, "partial_rotary_factor",
		     "\"rope_parameters\": {\"full_attention\": {\"rope_theta\": 7, "
		     "\"partial_rotary_factor\": 0.125}}") == 0) {
		T_EQ_INT(c.rotary_dim, 4);
		T_NEAR(c.rope_theta, 1e6, 0);
		config_release(&c);
	}
	parse_bad("rope_theta", "\"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4.0}",
		  "config.json: rope_parameters: rope_type 'yarn' is not supported");
	parse_bad(NULL, "\"rope_scaling\": 3", "rope_scaling: must be an object or null");
	parse_bad("rope_theta", "\"rope_theta\": \"big\"", "rope_theta: must be a number");
	parse_bad("rope_theta", "\"rope_theta\": -1", "rope_theta: must be a number above 0");
	parse_bad("partial_rotary_factor", "\"partial_rotary_factor\": 1.5",
		  "partial_rotary_factor: must be a number above 0 and at most 1");
	parse_bad("head_dim partial_rotary_factor",
		  "\"head_dim\": 30, \"partial_rotary_factor\": 0.1",
		  "partial_rotary_factor: head_dim 30 x 0.1 gives rotary dimension 3, which must "
		  "be even");
}

static void
test_layers(void)
{
	struct model_config c;

	if (parse_ok(&c, NULL,
		     "\"layer_types\": [\"full_attention\", \"linear_attention\", "
		     "\"linear_attention\", \"full_attention\"], \"full_attention_interval\": 3, "
		     "\"decoder_sparse_step\": 2, \"mlp_only_layers\": [1], "
		     "\"intermediate_size\": 128") == 0) {
		T_EQ_INT(c.layer_full[0], 1);
		T_EQ_INT(c.layer_full[1], 0);
		T_EQ_INT(c.layer_full[3], 1);
		T_EQ_INT(c.layer_moe[0], 0);
		T_EQ_INT(c.layer_moe[1], 0);
		T_EQ_INT(c.layer_moe[2], 0);
		T_EQ_INT(c.layer_moe[3], 1);
		config_release(&c);
	}
	if (parse_ok(&c, "num_experts num_experts_per_tok moe_intermediate_size",
		     "\"num_experts\": 0, \"intermediate_size\": 256") == 0) {
		T_EQ_INT(c.layer_moe[0] + c.layer_moe[1] + c.layer_moe[2] + c.layer_moe[3], 0);
		config_release(&c);
	}
	parse_bad(NULL, "\"layer_types\": [\"linear_attention\", \"full_attention\", \"x\"]",
		  "config.json: layer_types: has 3 entries but num_hidden_layers is 4");
	parse_bad(NULL,
		  "\"layer_types\": [\"linear_attention\", \"full_attention\", "
		  "\"linear_attention\", \"sliding_attention\"]",
		  "layer_types: entry 3: unknown layer type 'sliding_attention'");
	parse_bad(NULL, "\"layer_types\": [1, 2, 3, 4]", "entry 0: unknown layer type");
	parse_bad(NULL, "\"layer_types\": \"full\"", "layer_types: must be a list");
	parse_bad(NULL, "\"full_attention_interval\": 0",
		  "full_attention_interval: must be a positive integer");
	parse_bad(NULL, "\"mlp_only_layers\": [4]",
		  "mlp_only_layers: entry 0 is not a layer index");
	parse_bad(NULL, "\"mlp_only_layers\": [0]", "config.json: intermediate_size: missing");
	parse_bad(NULL, "\"decoder_sparse_step\": 0", "decoder_sparse_step: must be a positive");
	parse_bad("moe_intermediate_size", NULL, "config.json: moe_intermediate_size: missing");
	parse_bad("num_experts_per_tok", "\"num_experts_per_tok\": 0",
		  "num_experts_per_tok: must be a positive integer");
	parse_bad("num_experts_per_tok", "\"num_experts_per_tok\": 5",
		  "num_experts_per_tok: 5 is more than num_experts (4)");
}

static void
test_errors(void)
{
	char *cause = NULL;
	struct model_config c;

	T_EQ_INT(config_parse(&c, "{\"hidden_size\": ", 16, NULL, 0, "config.json", &cause), -1);
	T_STR_CONTAINS(cause, "config.json: not valid JSON");
	T_EQ_INT(config_parse(&c, "[1]", 3, NULL, 0, NULL, &cause), -1);
	T_STR_CONTAINS(cause, "config.json: not a JSON object");
	T_EQ_INT(config_parse(&c, "{}", 2, NULL, 0, "config.json", NULL), -1);
	free(cause);
	cause = NULL;
	T_EQ_INT(config_load(&c, "/nonexistent-qnext", &cause), -1);
	T_STR_CONTAINS(cause, "/nonexistent-qnext/config.json: No such file");
	free(cause);

	parse_bad("num_attention_heads", NULL, "config.json: num_attention_heads: missing");
	parse_bad("num_attention_heads", "\"num_attention_heads\": \"4\"",
		  "config.json: num_attention_heads: must be a positive integer");
	parse_bad("num_attention_heads", "\"num_attention_heads\": 0",
		  "num_attention_heads: must be a positive integer");
	parse_bad("num_attention_heads", "\"num_attention_heads\": 2.0",
		  "num_attention_heads: must be a positive integer");
	parse_bad("hidden_size", "\"hidden_size\": 99999999999",
		  "hidden_size: 99999999999 is too large");
	parse_bad("num_experts", "\"num_experts\": -1", "num_experts: must be a non-negative");
	parse_bad("model_type", "\"model_type\": \"llama\"",
		  "config.json: model_type: 'llama' is not qwen3_next");
	parse_bad("model_type", "\"architectures\": [\"LlamaForCausalLM\"]", "model_type: missing");
	parse_bad("num_attention_heads num_key_value_heads",
		  "\"num_attention_heads\": 3, \"num_key_value_heads\": 2",
		  "num_attention_heads: 3 is not a multiple of num_key_value_heads (2)");
	parse_bad("linear_num_value_heads linear_num_key_heads",
		  "\"linear_num_value_heads\": 3, "
		  "\"linear_num_key_heads\": 2",
		  "linear_num_value_heads: 3 is not a multiple of linear_num_key_heads (2)");
	parse_bad(NULL, "\"rms_norm_eps\": 0", "rms_norm_eps: must be a number above 0");
	parse_bad(NULL, "\"tie_word_embeddings\": 1", "tie_word_embeddings: must be true or false");
	parse_bad("eos_token_id", "\"eos_token_id\": 100",
		  "eos_token_id: must be a token id below vocab_size (100)");
	parse_bad("eos_token_id", "\"eos_token_id\": [1,2,3,4,5,6,7,8,9]",
		  "eos_token_id: has 9 entries (at most 8)");
	parse_bad("eos_token_id", "\"eos_token_id\": [1, \"2\"]", "eos_token_id: must be a token");
	parse_bad(NULL, "\"bos_token_id\": -3", "bos_token_id: must be a token id");
	parse_bad(NULL, "\"hidden_size\": 5", "duplicate");
}

/* A config with `qc` as its quantization_config object text. */
static int
quant_ok(struct model_config *c, const char *qc)
{
	char *add = xasprintf("\"quantization_config\": %s", qc);
	int rc = parse_ok(c, NULL, add);

	free(add);
	return rc;
}

static void
quant_bad(const char *qc, const char *needle)
{
	char *add = xasprintf("\"quantization_config\": %s", qc);

	parse_bad(NULL, add, needle);
	free(add);
}

static void
test_quant_regex(void)
{
	struct model_config c;

	if (quant_ok(&c, "{\"bits\": 4, \"group_size\": 32, \"extra_config\": {"
			 "\"model.layers.0.mlp.experts.0.up_proj\": {\"bits\": 2},"
			 "\"model\\\\.layers\\\\.[0-9]+\\\\.mlp\\\\.experts\\\\..*\": "
			 "{\"bits\": 8, \"group_size\": 64},"
			 "\"model.layers.[0-9].self_attn.(q|k)_proj\": {\"bits\": 16, "
			 "\"data_type\": \"float\"},"
			 "\"lm|lm_head\": {\"bits\": 8},"
			 "\"model.layers.*\": {\"bits\": 2, \"sym\": false},"
			 "\"a.b\": {\"group_size\": -1}}}") != 0)
		return;
	T_EQ_INT(c.quant.n_overrides, 6);
	T_ASSERT(!c.quant.overrides[0].is_regex && !c.quant.overrides[1].is_regex);
	T_ASSERT(c.quant.overrides[2].is_regex && c.quant.overrides[2].re != NULL);
	check_quant(&c, "model.layers.0.mlp.experts.0.up_proj", 0, 2, 32); /* exact wins */
	check_quant(&c, "model.layers.12.mlp.experts.5.down_proj", 0, 8, 64);
	check_quant(&c, "model.layers.3.self_attn.k_proj", 0, 16, 0);
	check_quant(&c, "model.layers.3.self_attn.v_proj", 0, 2, 32);       /* the catch-all */
	check_quant(&c, "model.layers.3.self_attn.q_proj_x", 0, 2, 32);     /* not (q|k)_proj */
	check_quant(&c, "lm_head", 0, 8, 32);                               /* end-anchored */
	check_quant(&c, "xmodel.layers.0.mlp.experts.0.up_proj", 1, 4, 32); /* start-anchored */
	check_quant(&c, "model.embed_tokens", 1, 4, 32);
	check_quant(&c, "a.b", 0, 4, 32);
	check_quant(&c, "aXb", 1, 4, 32); /* '.' alone is not a regex */
	config_release(&c);
	/* The 2026 re-upload's form: a list-valued block_name_to_quantize and
	 * routers declared 16-bit float by full name. */
	if (quant_ok(&c, "{\"bits\": 4, \"group_size\": 128, \"sym\": true, "
			 "\"packing_format\": \"auto_round:auto_gptq\", "
			 "\"block_name_to_quantize\": [\"model.layers\"], \"extra_config\": {"
			 "\"model.layers.0.mlp.gate\": {\"bits\": 16, \"data_type\": \"fp\"},"
			 "\"model.layers.0.linear_attn.in_proj_qkvz\": {\"bits\": 8}}}") == 0) {
		check_quant(&c, "model.layers.0.mlp.gate", 0, 16, 0);
		check_quant(&c, "model.layers.0.linear_attn.in_proj_qkvz", 0, 8, 128);
		check_quant(&c, "model.layers.0.mlp.experts.3.up_proj", 1, 4, 128);
		config_release(&c);
	}
	/* A catastrophic pattern is refused at its first costly module, quickly. */
	if (quant_ok(&c, "{\"bits\": 4, \"group_size\": 128, \"extra_config\": {"
			 "\"(.*.*)*x$\": {\"bits\": 8}}}") == 0) {
		char *cause = NULL;
		int bits, gs;
		double t = now_sec();

		T_EQ_INT(config_module_quant(&c, "model.layers.0.mlp.experts.0.up_proj", &bits, &gs,
					     &cause),
			 -2);
		T_STR_CONTAINS(cause, "extra_config regex '(.*.*)*x$' takes more than");
		T_ASSERT(now_sec() - t < 1.0);
		free(cause);
		config_release(&c);
	}
	quant_bad("{\"extra_config\": {\"model.layers.[0-9\": {\"bits\": 8}}}",
		  "extra_config: 'model.layers.[0-9': bad regular expression at offset");
}

static void
test_quant_errors(void)
{
	struct model_config c;

	quant_bad("{\"quant_method\": \"fp8\"}",
		  "config.json: quantization_config: quant_method 'fp8' is not supported "
		  "(qnext reads AutoRound int2/4/8 checkpoints)");
	quant_bad("{\"quant_method\": \"awq\", \"bits\": 4}",
		  "quant_method 'awq' is not supported");
	quant_bad("{\"packing_format\": \"auto_awq\"}",
		  "packing_format 'auto_awq' is not supported");
	/* What would compute wrong weights is refused (issue 10, item 4). */
	quant_bad("{\"packing_format\": \"auto_round:auto_awq\"}",
		  "packing_format 'auto_round:auto_awq' is not supported");
	quant_bad("{\"checkpoint_format\": \"gptq_v2\"}",
		  "checkpoint_format: 'gptq_v2' is not supported");
	quant_bad("{\"act_bits\": 8}", "act_bits: quantized activations are not supported");
	quant_bad("{\"transform_config\": {\"type\": \"hadamard\"}}",
		  "transform_config: weight transforms or rotations are not supported");
	quant_bad("{\"rotation\": true}", "rotation: weight transforms or rotations");
	quant_bad("{\"data_type\": \"mx_fp\"}", "quantization_config: data_type: 'mx_fp' is not");
	quant_bad("{\"bits\": 3}", "quantization_config: bits: 3 is not supported");
	quant_bad("{\"bits\": 5}", "bits: 5 is not one of 2, 4, 8, 16, 32");
	quant_bad("{\"bits\": \"4\"}", "bits: must be an integer");
	quant_bad("{\"group_size\": 0}", "group_size: must be positive or -1");
	quant_bad("{\"sym\": \"yes\"}", "sym: must be true or false");
	quant_bad("[4]", "config.json: quantization_config: must be an object");
	quant_bad("{\"extra_config\": [1]}", "extra_config: must be an object");
	quant_bad("{\"extra_config\": {\"m.x\": 8}}", "extra_config: 'm.x': must be an object");
	quant_bad("{\"extra_config\": {\"model.layers.0.mlp.gate\": {\"bits\": 3}}}",
		  "extra_config: 'model.layers.0.mlp.gate': bits: 3 is not supported");
	quant_bad("{\"extra_config\": {\"m.x\": {\"data_type\": \"fp\", \"bits\": 8}}}",
		  "'m.x': data_type: 'fp' with 8 bits (a floating-point quantization)");
	quant_bad("{\"extra_config\": {\"m.x\": {\"data_type\": \"nv_fp\", \"bits\": 4}}}",
		  "'m.x': data_type: 'nv_fp' is not supported");
	quant_bad("{\"extra_config\": {\"m.x\": {\"data_type\": \"int_but_far_too_long\"}}}",
		  "data_type: 'int_but_far_too_long' is not supported");

	if (quant_ok(&c, "{\"quant_method\": \"gptq\", \"desc_act\": true, \"group_size\": -1, "
			 "\"sym\": false, \"bits\": 8}") == 0) {
		T_ASSERT(c.quant.present && c.quant.desc_act && !c.quant.sym);
		T_EQ_INT(c.quant.group_size, -1);
		T_EQ_INT(c.quant.n_overrides, 0);
		check_quant(&c, "model.layers.0.mlp.gate", 1, 8, -1);
		config_release(&c);
	}
	if (quant_ok(&c, "{}") == 0) { /* AutoRound strips its defaults */
		T_ASSERT(c.quant.present && c.quant.sym);
		check_quant(&c, "m", 1, 4, 128);
		config_release(&c);
	}
}

/* quantization_config.json beside a config.json that has none. */
static void
test_quant_file(void)
{
	static const char q[] = "{\"quant_method\": \"auto-round\", \"bits\": 8, "
				"\"group_size\": 32, \"extra_config\": {\"x\": {\"bits\": 4}}}";
	char *json = make_json(NULL, NULL), *cause = NULL;
	char *json2 = make_json(NULL, "\"quantization_config\": null");
	char *json3 = make_json(NULL, "\"quantization_config\": {\"bits\": 2}");
	struct model_config c;

	T_EQ_INT(config_parse(&c, json, strlen(json), q, strlen(q), "config.json", &cause), 0);
	T_ASSERT(c.quant.present);
	check_quant(&c, "x", 0, 4, 32);
	check_quant(&c, "y", 1, 8, 32);
	config_release(&c);
	T_EQ_INT(config_parse(&c, json2, strlen(json2), q, strlen(q), NULL, &cause), 0);
	T_EQ_INT(c.quant.bits, 8);
	config_release(&c);
	/* config.json's own copy wins */
	T_EQ_INT(config_parse(&c, json3, strlen(json3), q, strlen(q), NULL, &cause), 0);
	T_EQ_INT(c.quant.bits, 2);
	config_release(&c);
	T_EQ_INT(config_parse(&c, json, strlen(json), "{\"bits\":", 8, NULL, &cause), -1);
	T_STR_CONTAINS(cause, "quantization_config.json: not valid JSON");
	T_EQ_INT(config_parse(&c, json, strlen(json), "{\"quant_method\": \"fp8\"}", 23, NULL,
			      &cause),
		 -1);
	T_STR_CONTAINS(cause, "quantization_config.json: quant_method 'fp8' is not supported");
	free(cause);
	free(json3);
	free(json2);
	free(json);
}

int
main(void)
{
	test_tiny();
	test_small();
	test_defaults();
	test_rope_forms();
	test_layers();
	test_errors();
	test_quant_regex();
	test_quant_errors();
	test_quant_file();
	return t_done("test-config");
}
