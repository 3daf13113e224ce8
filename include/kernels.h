/*
 * kernels.h - the compute kernels: matrix products on AutoRound (GPTQ-packed)
 * and float weights, activation quantization, small vector helpers.
 *
 * Every kernel exists as a portable scalar reference (engine/kernels/scalar.c)
 * and as AVX2 and AVX-512 versions (avx2.c, avx512.c) chosen once at start-up
 * (select.c) from what the CPU supports; QNEXT_ISA=scalar|avx2|avx512 forces a
 * lower tier.  Kernels are pure functions of caller memory, work on an output
 * row range [o0, o1) so the worker pool can split a matrix between threads, and
 * never allocate.  Any thread.
 *
 * Weight layout (docs/model-format.md "AutoRound packing"), a linear layer
 * y = W x with W [n_out][n_in]:
 *   WFMT_F32/F16/BF16  w [n_out][n_in] row-major (safetensors order)
 *   WFMT_GPTQ          qweight [n_in*bits/32][n_out] (bits packed along the
 *                      input, LSB first), qzeros [n_groups][n_out*bits/32]
 *                      (packed along the output, stored value = zero - 1),
 *                      scales fp16 [n_groups][n_out];
 *                      W[o][i] = scale[i/gs][o] * (q[i][o] - zero[i/gs][o]).
 *                      Scales may be negative.  The last group may be short.
 */
#ifndef QNEXT_KERNELS_H
#define QNEXT_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum wfmt {
	WFMT_F32,
	WFMT_F16,
	WFMT_BF16,
	WFMT_GPTQ,
};

/* A weight matrix borrowed from the checkpoint mapping (never written). */
struct qmat {
	enum wfmt fmt;
	int n_in, n_out;
	const void *w;            /* float formats: [n_out][n_in] */
	int bits;                 /* GPTQ: 2, 4 or 8 */
	int group_size, n_groups; /* GPTQ: n_groups = ceil(n_in / group_size) */
	const uint32_t *qweight;  /* GPTQ: [n_in * bits / 32][n_out] */
	const uint32_t *qzeros;   /* GPTQ: [n_groups][n_out * bits / 32] */
	const uint16_t *scales;   /* GPTQ: IEEE half [n_groups][n_out] */
	bool zero_raw;            /* GPTQ: qzeros hold the zero points themselves (auto-round's
				     `auto_round` packing), not minus one (GPTQ v1, the default) */
};

/* What a GPTQ matrix adds to each stored zero point: 1 (GPTQ v1) or 0 (auto_round). */
static inline int
gptq_zadd(const struct qmat *W)
{
	return W->zero_raw ? 0 : 1;
}

/*
 * Activation quantization: int8 in blocks of QK inputs (each with its sum),
 * one float scale shared by the QK blocks of a super-block of QKS inputs.
 * Sharing the scale lets the SIMD kernels keep exact int32 sums across a
 * whole span of the weights' group (qmat_q8_span) and convert to float once
 * per span; 128 inputs per scale is finer than llama.cpp's Q8_K (256).
 */
#define QK  32
#define QKS 128

/*
 * Activations of n_tok tokens quantized to int8, ready for matmul_q8.  The
 * layout of the buffers is private to the kernels (they may hold permuted
 * copies for the 2- and 4-bit unpacking); callers only init, fill through
 * quantize_act, pass and release.
 */
struct qact {
	int n;                /* inputs per token (last quantize_act) */
	int n_tok;            /* tokens (last quantize_act) */
	int n_max, n_tok_max; /* capacity */
	int n_blk;            /* ceil(n / QK) */
	int8_t *q;            /* [n_tok_max][n_blk*QK] natural order, zero padded */
	int8_t *qp;           /* [n_tok_max][n_blk*QK] permuted copy for nibble unpacking */
	float *d;     /* [n_tok_max][n_blk] scale: x ~= d * q (equal within a QKS super-block) */
	int32_t *sum; /* [n_tok_max][n_blk] sum of q over the block */
};

/* Allocate buffers for up to n_tok_max tokens of n_max inputs.  0 or -1 (OOM). */
int qact_init(struct qact *a, int n_max, int n_tok_max);
/* The bytes qact_init(a, n_max, n_tok_max) allocates. */
size_t qact_bytes(int n_max, int n_tok_max);
void qact_release(struct qact *a); /* accepts a zeroed struct */

/*
 * Copy rows rows[0..n) of src (as quantize_act left it) to rows [at, at + n)
 * of dst: the same as quantizing those tokens' inputs there, for a tenth of
 * the bytes of gathering the floats.  The caller gives dst src's n and n_blk
 * and its own n_tok; dst must hold at + n rows of src->n inputs.  Any thread
 * (disjoint row ranges of one dst may be filled concurrently).
 */
void qact_gather(struct qact *dst, int at, const struct qact *src, const int *rows, int n);

/* Whether matmul_q8 accepts W: GPTQ with group_size % QK == 0 (and n_in % QK == 0
 * or a short last group that is still a multiple of 32/bits). */
bool qmat_q8_ok(const struct qmat *W);

/*
 * Inputs over which matmul_q8 sums int32 products before one float step: a
 * run that lies in one weight group and one activation super-block (QKS when
 * the group size is a multiple of it, the group when it divides QKS, else QK).
 */
int qmat_q8_span(const struct qmat *W);

/* Dequantize row o of W (all n_in inputs) into out[n_in] (scalar; embeddings,
 * tests, the BLAS fallback). */
void qmat_row_f32(const struct qmat *W, int o, float *out);

struct kernels {
	const char *name; /* "scalar", "avx2", "avx512" */

	/*
	 * Y[t*ldy + o] = sum_i W[o][i] * X[t*W->n_in + i] for t < n_tok, o0 <= o < o1,
	 * activations in float32.  Every fmt.  The reference path: results agree
	 * with the scalar tier to float rounding (relative 1e-5 of sum |W||x|).
	 */
	void (*matmul_f32)(const struct qmat *W, const float *X, int n_tok, float *Y, int ldy,
			   int o0, int o1);

	/*
	 * The same product with activations A quantized by quantize_act (A->n ==
	 * W->n_in).  Only when qmat_q8_ok(W).  Integer dot products inside each
	 * qmat_q8_span; agrees with the scalar tier's matmul_q8 to float rounding.
	 */
	void (*matmul_q8)(const struct qmat *W, const struct qact *A, float *Y, int ldy, int o0,
			  int o1);

	/* Quantize X [n_tok][n] into A (symmetric, one scale per QKS super-block,
	 * round half to even; every tier writes the same bytes). */
	void (*quantize_act)(const float *X, int n_tok, int n, struct qact *A);

	/* Vector helpers for attention and the delta rule. */
	float (*dot)(const float *a, const float *b, int n);
	void (*axpy)(float *y, float a, const float *x, int n); /* y += a * x */
	void (*scale)(float *y, float a, int n);                /* y *= a */

	/* The same on IEEE half vectors (the 16-bit KV cache): a . x, y += a * x,
	 * and y = x rounded to half (nearest even, as f32_to_fp16). */
	float (*dot_h)(const float *a, const uint16_t *x, int n);
	void (*axpy_h)(float *y, float a, const uint16_t *x, int n);
	void (*to_half)(uint16_t *y, const float *x, int n);

	/*
	 * Attention over the 16-bit KV cache for ng query heads sharing one KV
	 * head, cached positions [0, np), rows of n halves:
	 *   scores_h: sc[g*ldsc + s] = scale * (q[g*ldq ...] . k[s*n ...])
	 *   mix_h:    o[g*ldo + i] += sum_s p[g*ldp + s] * v[s*n + i]
	 * The SIMD tiers convert each cached row from half once for several heads
	 * (dot_h/axpy_h per head converted it ng times, which made a 32k-token
	 * context compute-bound), and mix_h adds 4 positions per load and store
	 * of the output.  Equal to the scalar tier to float rounding.
	 */
	void (*scores_h)(const float *q, int ldq, int ng, const uint16_t *k, int np, int n,
			 float scale, float *sc, size_t ldsc);
	void (*mix_h)(float *o, int ldo, int ng, const float *p, size_t ldp, const uint16_t *v,
		      int np, int n);

	/*
	 * One token of the gated delta rule for one value head, S [dv][dk]:
	 *   S = decay * S;  delta = beta * (v - S k);  S += delta k^T;  o = S q.
	 * The SIMD tiers make one pass over each row of S (both dot products of
	 * the decayed row at once, o from S q = decay (S_old q) + delta (k q)),
	 * equal to the scalar tier's four passes to float rounding.
	 */
	void (*delta_step)(float *S, int dk, int dv, const float *q, const float *k, const float *v,
			   float beta, float decay, float *o);

	/*
	 * y[i] = x[i] * sigmoid(x[i]) for n floats (y may be x).  The scalar tier
	 * calls expf; the SIMD ones use one exp polynomial (within 3e-7 relative
	 * of a double-precision SiLU) for every element, tails included, so an
	 * element's result does not depend on where it sits in the array.
	 */
	void (*silu)(const float *x, float *y, int n);
};

/*
 * The kernel table in use: the best tier the CPU and OS support, or the one
 * QNEXT_ISA names (a tier the CPU cannot run is refused with a warning on
 * stderr and the best supported one is used).  Chosen on first call; call it
 * once before starting threads.
 */
const struct kernels *kernels_get(void);

/*
 * Bytes of output rows (all tokens of a batch) that a prefill product keeps
 * hot while it applies each weight panel to one token tile after another:
 * half the core's L2 as the OS reports it (clamped to 128 KiB .. 2 MiB), or
 * 128 KiB before kernels_get() has run.  Any thread.
 */
size_t kernels_chunk_y_bytes(void);

/*
 * Lend the calling thread a buffer of `bytes` (float-aligned) where a
 * prefill product may keep a chunk's partial sums (NULL: none, the sums stay
 * in Y).  The caller owns it and must not use it during the thread's
 * products; the engine lends each worker its scratch row before each
 * product.  kernels_y_scratch returns what was lent.  Any thread, for
 * itself.
 */
void kernels_use_y_scratch(float *buf, size_t bytes);
float *kernels_y_scratch(size_t *bytes);

/* A specific tier by name, or NULL when unknown or not supported by this CPU. */
const struct kernels *kernels_tier(const char *name);

/* Tier tables (defined in scalar.c, avx2.c, avx512.c). */
extern const struct kernels kernels_scalar;
extern const struct kernels kernels_avx2;
extern const struct kernels kernels_avx512;

/*
 * Dequantizing fallback for big prefill batches through OpenBLAS sgemm:
 * dequantizes W in tiles of 64 output rows into tmp [64 * n_in] and calls
 * cblas_sgemm.  Same contract as matmul_f32.  Faster than matmul_f32 only for
 * large n_tok; the caller decides (see kernels_blas_min_tokens).
 */
void kernels_matmul_blas(const struct qmat *W, const float *X, int n_tok, float *Y, int ldy, int o0,
			 int o1, float *tmp);

/* One-time OpenBLAS setup: its own thread pool is turned off, since qnext's
 * workers already split every product (kernels_get calls this). */
void kernels_blas_init(void);

/* Plain sgemm C[m][n] = A[m][k] * B[n][k]^T (+ C when accumulate), row-major,
 * for attention over long prompts. */
void kernels_sgemm_nt(int m, int n, int k, const float *A, int lda, const float *B, int ldb,
		      float *C, int ldc, bool accumulate);

#endif
