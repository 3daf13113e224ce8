/*
 * forward.h - the Qwen3-Next forward pass over a loaded model.
 *
 * A context holds everything that changes while a sequence is processed:
 * the KV cache of the full-attention layers, the Gated DeltaNet conv and
 * recurrent states, and every scratch buffer, all sized in ctx_new() so that
 * ctx_forward() allocates nothing.  ctx_forward() feeds any number of tokens
 * at the current position and always continues from the stored state: a
 * prompt fed whole, one token at a time or in uneven chunks gives the same
 * logits (up to float rounding).
 *
 * Thread affinity: a context is owned by one thread (the engine thread or a
 * CLI tool), which calls everything here; the worker pool it creates is
 * internal.
 */
#ifndef QNEXT_FORWARD_H
#define QNEXT_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xcache.h"

struct model;
struct kernels;

/*
 * The context length when none is asked for (ctx_opts.n_ctx, session_opts.n_ctx,
 * the chat's --ctx): the one place it is decided.  The chat reports the
 * length it got back to the UI (MSG_READY).
 */
#define CTX_N_CTX_DEFAULT 40960

struct ctx_opts {
	int n_ctx;     /* maximum positions (KV cache length); 0 = CTX_N_CTX_DEFAULT */
	int n_batch;   /* tokens per internal step (prefill chunk); >= 1; at least 1024
			  (within n_ctx) when an expert cache is made */
	int n_threads; /* worker threads including the caller; 0 = physical cores */
	bool f32;      /* float32 activations everywhere (reference path); else int8
			  activations for quantized matrices */
	int kv_bits;   /* keys and values cached as 16 (IEEE half) or 32-bit floats;
			  0: 16 on the int8 path, 32 on the float32 reference path */
	const struct kernels *kernels; /* NULL = kernels_get() */
	unsigned float_parts;          /* on the int8 path, FLOAT_* products that keep float32
					  activations; 0 = FLOAT_DEFAULT, FLOAT_NONE = none */
	/* Bytes of routed experts to hold in an expert cache (xcache.h), read from the
	 * files as the router chooses them; 0 = none: the mapping and the page cache
	 * serve them (the fastest way when the model fits in RAM). */
	uint64_t expert_cache;
	bool expert_fixed;           /* keep that size: do not follow memory pressure */
	xcache_read_fn *expert_read; /* tests inject read faults; NULL = pread */
};

/*
 * Small products whose outputs steer the rest of the layer (which experts
 * run, how fast DeltaNet forgets, how much the shared expert adds) and
 * that read few weights, so float32 activations cost little there.
 * FLOAT_DEFAULT is what measurement chose (docs/model-format.md, "int8
 * activations"); `qnext verify --paths --float LIST` measures the others.
 */
enum {
	FLOAT_ROUTER = 1u << 0, /* mlp.gate, the MoE router */
	FLOAT_BA = 1u << 1,     /* linear_attn.in_proj_ba: DeltaNet's beta and decay gates */
	FLOAT_SHGATE = 1u << 2, /* mlp.shared_expert_gate */
	FLOAT_ALL_SMALL = FLOAT_ROUTER | FLOAT_BA | FLOAT_SHGATE,
	FLOAT_NONE = 1u << 31,
	/* Measured: no gain beyond routing noise, so every quantized product
	 * takes int8 activations (docs/model-format.md, "Which products"). */
	FLOAT_DEFAULT = FLOAT_NONE,
};

struct ctx;

/* Create a context; NULL + cause when memory for the requested context cannot be had. */
struct ctx *ctx_new(const struct model *m, const struct ctx_opts *o, char **cause);

/* What ctx_new allocates for a context, by kind (ctx_plan).  Bytes. */
struct ctx_plan {
	int n_ctx, n_batch, n_threads; /* the options as ctx_new fills in their defaults */
	uint64_t kv;       /* K and V of every full-attention layer (half floats, or float32) */
	uint64_t state;    /* every DeltaNet layer's conv window and recurrent state */
	uint64_t snapshot; /* ctx_save's copy of those states */
	uint64_t scratch;  /* per-step activations, attention scores, MoE rows, routing counts */
	uint64_t qact;     /* int8 activation buffers (kernels' qact_init) */
	uint64_t total;    /* all of it: ctx_bytes() of the context, plus qact */
};

/*
 * Fill *p (OUT) with what ctx_new(m, o) would allocate, without allocating
 * it: the same code runs, counting instead of allocating, so the two cannot
 * drift.  The expert cache (o->expert_cache) is not counted.  Any thread.
 */
void ctx_plan(const struct model *m, const struct ctx_opts *o, struct ctx_plan *p);
void ctx_free(struct ctx *c); /* accepts NULL */

/* How the routers chose since the context was made (all MoE layers). */
struct ctx_routing {
	uint64_t choices;   /* (token, layer, expert) choices */
	uint64_t experts;   /* MoE layers x experts */
	uint64_t used;      /* of which chosen at least once */
	double top10_share; /* share of the choices that went to each layer's most chosen 10 % */
	double reuse;       /* share of a token's choices that the token before made too */
};
void ctx_routing(const struct ctx *c, struct ctx_routing *r);

/* The expert cache's counters into *s; false (s untouched) when c has no cache. */
bool ctx_cache_stats(const struct ctx *c, struct xcache_stats *s);

/* Forget the sequence: position 0, zero states. */
void ctx_reset(struct ctx *c);

/* Tokens processed so far (the next token's position). */
int ctx_pos(const struct ctx *c);

/* Bytes the context allocated (KV cache, states, scratch). */
uint64_t ctx_bytes(const struct ctx *c);

/*
 * Extend the context by n positions of synthetic history, for measuring
 * decode speed at long context (qnext bench --context): every attention
 * layer's cache gets pseudo-random keys and values of unit scale at those
 * positions; the DeltaNet states are left as they are.  What the model
 * says afterwards means nothing; what it costs to read the cache is real.
 * 0, or -1 + cause when n does not fit in the context.
 */
int ctx_fill_synthetic(struct ctx *c, int n, char **cause);

/* Bytes of keys and values one position holds across all attention layers
 * (what a decode step reads per position of context). */
uint64_t ctx_kv_bytes_per_pos(const struct ctx *c);

/*
 * Where the forward pass spends its time, by part of the layer: for finding
 * where a decode step loses memory bandwidth (`qnext bench --phases`).  Time
 * is wall time on the owner thread, so a phase includes its wait at the
 * barrier that ends each parallel step.
 */
enum fwd_phase {
	FWD_GLUE,    /* embedding row, norms, residual adds, routing and gathering */
	FWD_ATTN,    /* gated attention: projections, scores, output projection */
	FWD_GDN,     /* Gated DeltaNet: projections, conv, recurrence, output projection */
	FWD_ROUTER,  /* the MoE router's matrix product */
	FWD_EXPERTS, /* the routed experts' gate/up and down products */
	FWD_SHARED,  /* the shared expert */
	FWD_MLP,     /* dense MLP layers (none in Qwen3-Next) */
	FWD_HEAD,    /* final norm and lm_head */
	FWD_PHASES,
};

struct ctx_profile {
	double seconds[FWD_PHASES];
	uint64_t bytes[FWD_PHASES]; /* weight bytes the phase's products read */
	uint64_t barriers;          /* parallel steps (each ends in one barrier) */
	uint64_t tokens;            /* tokens fed through the decoder */
};

const char *ctx_phase_name(enum fwd_phase p);

/* Copy what ctx_forward calls spent since the last take into *p, and start over. */
void ctx_profile_take(struct ctx *c, struct ctx_profile *p);

/*
 * Feed tokens[0..n) at the current position.  logits: NULL for none, else
 * [n][vocab] when all_logits, or [vocab] for the last token only.  Returns 0,
 * or -1 with *cause when the context would overflow, a token id is out of
 * range (nothing is processed then) or the context is torn (below), or 1
 * when the abort callback said stop.  After 1 the context is torn: some
 * layers have taken in tokens that others have not, so ctx_forward refuses
 * and ctx_save does nothing until ctx_restore() or ctx_reset().  The saved
 * snapshot stays good (later tokens never overwrite the KV cache below it).
 */
int ctx_forward(struct ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
		char **cause);

/*
 * Let ctx_forward stop part-way: fn(arg) is called on the owner thread
 * before every layer of every step and between the parts of a layer (after
 * the attention or DeltaNet block, between the experts' two halves), and a
 * true return abandons the call at once; fn is not asked again in that call.
 * So a stop waits for at most one part of one layer, not a whole step.
 * fn NULL: never stop (the default).
 */
void ctx_set_abort(struct ctx *c, bool (*fn)(void *arg), void *arg);

/*
 * Remember the sequence state at the current position (the recurrent
 * DeltaNet states and the position; the KV cache below the position is never
 * overwritten by later tokens), into a buffer allocated by ctx_new.  A later
 * ctx_restore() returns to it, so a conversation that grows by appending
 * only prefills its new tokens.  One snapshot is kept.
 */
void ctx_save(struct ctx *c);

/* Return to the saved state; -1 when nothing was saved since the last reset. */
int ctx_restore(struct ctx *c);

/* Position of the saved state, or -1. */
int ctx_saved_pos(const struct ctx *c);

/*
 * What a saved state's bytes depend on besides the model's weights and the
 * tokens (a snapshot file records it and refuses a context that differs):
 * the cache's element size, the activation path and the shapes.
 */
struct ctx_state_layout {
	int kv_bits;          /* 16 (IEEE half) or 32 */
	bool f32;             /* float32 activations (ctx_opts.f32) */
	unsigned float_parts; /* ctx_opts.float_parts as resolved */
	int n_ctx;            /* positions the context holds (a state must be shorter) */
	int n_full, n_kv_heads, head_dim; /* the KV cache: slots, heads, floats per head */
	int n_gdn;                        /* DeltaNet layers */
	uint64_t gdn_floats;              /* floats of one DeltaNet layer's conv window + state */
};
void ctx_state_layout(const struct ctx *c, struct ctx_state_layout *l);

/* Bytes of a saved state of n_pos positions: their keys and values, every DeltaNet state. */
uint64_t ctx_state_bytes(const struct ctx *c, int n_pos);

/* Moves len bytes to (export) or from (import) buf; 0, or nonzero to stop. */
typedef int ctx_io_fn(void *arg, void *buf, size_t len);

/*
 * The saved state (ctx_save) as bytes, for a snapshot file (snapshot.h):
 * fn gets, in order, for each attention layer and KV head the keys then the
 * values of positions [0, ctx_saved_pos) in the cache's own format (so a
 * restore is bit-exact), then every DeltaNet layer's conv window and
 * recurrent state as float32; ctx_state_bytes(c, ctx_saved_pos(c)) in all.
 * Returns 0, fn's nonzero return, or -1 when nothing is saved.  The context
 * is not changed (a torn one still has a good snapshot).
 */
int ctx_state_export(struct ctx *c, ctx_io_fn *fn, void *arg);

/*
 * The reverse: fill the saved state of n_pos positions (1 <= n_pos < n_ctx)
 * from fn in the same order, as if ctx_save had been called there; the
 * caller then ctx_restore()s.  The live state is lost either way.  Returns
 * 0, or fn's nonzero return (or -1 for a bad n_pos) after ctx_reset().
 */
int ctx_state_import(struct ctx *c, int n_pos, ctx_io_fn *fn, void *arg);

/*
 * Capture the residual stream during the next ctx_forward calls into
 * buf [n_layers + 1][n_total][dim] (after the embedding and after each
 * layer), for token positions counted from the current one.  NULL stops.
 */
void ctx_capture_hidden(struct ctx *c, float *buf, int n_total);

#endif
