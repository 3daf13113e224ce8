/*
 * ops.h - the numerical building blocks of the Qwen3-Next forward pass that
 * are not matrix products: the two RMSNorm conventions, l2 normalisation,
 * partial NeoX rotary, MoE routing and one step of the gated delta rule.
 * Pulled out of forward.c so each can be tested on its own against the
 * formulas of docs/model-format.md "Forward pass".
 *
 * Any thread; pure functions of caller memory, no allocation.
 */
#ifndef QNEXT_OPS_H
#define QNEXT_OPS_H

#include <math.h>
#include <stdbool.h>

struct kernels;

static inline float
ops_silu(float x)
{
	return x / (1.0f + expf(-x));
}

static inline float
ops_sigmoid(float x)
{
	return 1.0f / (1.0f + expf(-x));
}

/* PyTorch's softplus: log(1 + e^x), x itself above 20. */
static inline float
ops_softplus(float x)
{
	return x > 20.0f ? x : log1pf(expf(x));
}

/* Zero-centred RMSNorm (Qwen3NextRMSNorm): y = x / rms(x) * (1 + w).  y may be x. */
void ops_rmsnorm_zc(float *y, const float *x, const float *w, int n, float eps);

/*
 * Gated RMSNorm in place: o = o / rms(o) * w * silu(z) (weight used directly).
 * z is overwritten with silu(z), taken by k's silu (the SIMD tiers' one exp
 * polynomial: the same for a row in decode and prefill).
 */
void ops_rmsnorm_gated(const struct kernels *k, float *o, const float *w, float *z, int n,
		       float eps);

/* x = x / sqrt(sum x^2 + eps) * scale (FLA's l2norm). */
void ops_l2norm(float *x, int n, float eps, float scale);

/* inv_freq[i] = theta^(-2i / rotary_dim), i < rotary_dim / 2. */
void ops_rope_freqs(double *inv_freq, int rotary_dim, double theta);

/* Rotate the first rotary_dim dims of x for position pos, pairing dim i
 * with i + rotary_dim/2 (rotate_half / NeoX); the rest pass through. */
void ops_rope(float *x, int rotary_dim, int pos, const double *inv_freq);

/* The indices of the k largest of x[0..n) (k <= n), largest first, ties to the lower index. */
void ops_top_k(const float *x, int n, int k, int *out);

/*
 * MoE routing: softmax over all n_experts logits (in place: p becomes the
 * probabilities), then the top_k largest (ties to the lower index) into
 * sel[top_k] with weights w[top_k], renormalised to sum 1 when norm.
 */
void ops_moe_route(float *p, int n_experts, int top_k, bool norm, int *sel, float *w);

/*
 * One token of the gated delta rule for one value head (docs/model-format.md "Gated DeltaNet",
 * step 6), state S [dv][dk] (one dk-row per value channel):
 *   S = decay * S;  delta = beta * (v - S k);  S += delta k^T;  o = S q.
 * k and q are already l2-normalised (q scaled by 1/sqrt(dk)).
 */
void ops_delta_step(const struct kernels *k, float *S, int dk, int dv, const float *q,
		    const float *kk, const float *v, float beta, float decay, float *o);

#endif
