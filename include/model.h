/*
 * model.h - a loaded Qwen3-Next checkpoint: config plus every weight bound
 * to its place in the forward pass.
 *
 * model_open() maps the shards (safetensors.h), parses config.json
 * (config.h) and binds each linear layer as a struct qmat that points into
 * the mapping: quantized (AutoRound GPTQ) or float, decided per module by
 * which tensors exist, with bits and group size read from the shapes (a
 * quantization_config that disagrees gives a warning, model_warning).  Only small vectors (norms,
 * conv kernels, A, dt_bias) are converted to float32 copies; matrices are
 * never copied.  Any unsupported format stops the load with one line naming
 * the file, tensor and problem.
 *
 * Thread affinity: opened and closed on one thread (the engine thread or a
 * CLI tool); immutable afterwards, readable from the engine's workers.
 */
#ifndef QNEXT_MODEL_H
#define QNEXT_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "kernels.h"

struct layer_attn {
	struct qmat q_proj; /* [n_heads * head_dim * 2][dim], per head: query then gate */
	struct qmat k_proj; /* [n_kv_heads * head_dim][dim] */
	struct qmat v_proj; /* [n_kv_heads * head_dim][dim] */
	struct qmat o_proj; /* [dim][n_heads * head_dim] */
	float *q_norm;      /* [head_dim] zero-centred (applied as 1 + w) */
	float *k_norm;      /* [head_dim] */
};

struct layer_gdn {
	struct qmat in_qkvz; /* [2*key_dim + 2*value_dim][dim], grouped by key head */
	struct qmat in_ba;   /* [2*Hv][dim], grouped by key head */
	struct qmat out;     /* [dim][value_dim] */
	float *conv;         /* [conv_dim][conv_kernel] depthwise kernel */
	float *neg_exp_a;    /* [Hv] -exp(A_log) */
	float *dt_bias;      /* [Hv] */
	float *norm;         /* [dv] gated RMSNorm weight, applied directly */
};

struct layer_moe {
	struct qmat router; /* [n_experts][dim] */
	struct qmat *gate;  /* [n_experts] each [moe_inter][dim] */
	struct qmat *up;    /* [n_experts] each [moe_inter][dim] */
	struct qmat *down;  /* [n_experts] each [dim][moe_inter] */
	bool has_shared;
	struct qmat sh_gate, sh_up; /* [shared_inter][dim] */
	struct qmat sh_down;        /* [dim][shared_inter] */
	struct qmat sh_router;      /* shared_expert_gate [1][dim] */
};

struct layer_mlp {            /* dense SwiGLU for layers that are not MoE */
	struct qmat gate, up; /* [intermediate][dim] */
	struct qmat down;     /* [dim][intermediate] */
};

struct layer {
	bool full;              /* full attention (else Gated DeltaNet) */
	bool moe;               /* sparse MoE (else dense MLP) */
	float *in_norm;         /* [dim] zero-centred */
	float *post_norm;       /* [dim] zero-centred */
	struct layer_attn attn; /* when full */
	struct layer_gdn gdn;   /* when !full */
	struct layer_moe moe_w; /* when moe */
	struct layer_mlp mlp;   /* when !moe */
};

/* Modules whose tensors disagree with quantization_config (model_warning). */
struct quant_note {
	int n;
	char *first; /* "'MODULE' holds 4-bit weights, the config says 8" */
};

struct model {
	struct model_config cfg;
	struct st_set *st; /* owns the mappings every qmat points into */
	char *dir;
	struct qmat embed;    /* [vocab][dim]; row t is token t's embedding */
	struct qmat lm_head;  /* [vocab][dim] */
	float *final_norm;    /* [dim] zero-centred */
	struct layer *layers; /* [n_layers] */
	/* Derived sizes. */
	int key_dim, value_dim, conv_dim, qkvz_dim;
	int n_full;            /* full-attention layers (KV cache slots) */
	uint64_t weight_bytes; /* bytes of every bound matrix */
	uint64_t decode_bytes; /* bytes read per decoded token (active experts only) */
	struct quant_note qnote;
	char *warning; /* model_warning() */
};

/* Load the model in `dir`.  NULL + *cause (one line) on failure. */
struct model *model_open(const char *dir, char **cause);

/*
 * One line for the user when the load went on despite a disagreement
 * (quantization_config against the tensors' bits or group sizes), or NULL.
 */
const char *model_warning(const struct model *m);

/* Unmap and free.  Accepts NULL. */
void model_close(struct model *m);

/*
 * Bytes of the weight files in dir, found by name as the loader finds them
 * (every model-*-of-*.safetensors, else model.safetensors) and sized with
 * stat(2) without opening them, so a load can say how much it will read
 * before it starts.  0 when there are none.
 */
uint64_t model_files_bytes(const char *dir);

/*
 * Bind the AutoRound module `module` of m (its qweight, qzeros and scales,
 * which may belong to no layer the forward pass uses) as a GPTQ matrix, with
 * the loader's checks: shapes, bits and group size against
 * quantization_config, no act-order g_idx.  0, or -1 and *cause (one line).
 */
int model_bind_gptq(const struct model *m, const char *module, struct qmat *W, char **cause);

/* Bytes a matrix occupies in the checkpoint (qweight + qzeros + scales, or w). */
uint64_t qmat_bytes(const struct qmat *W);

/* One-line description of the layout ("experts int4 g128, attention int8, lm_head bf16"). */
char *model_describe(const struct model *m);

/*
 * Whether m has Qwen3-Next-80B-A3B's shape (48 layers, dim 2048, 512
 * experts, top 10, the full vocabulary).  Anything else is a test or
 * synthetic checkpoint, whose random weights answer gibberish: the UI says so.
 */
bool model_is_full_size(const struct model *m);

#endif
