/*
 * scalar.c - the portable reference tier of the compute kernels, plus the
 * helpers every tier shares: struct qact allocation, qmat_q8_ok() and
 * qmat_row_f32().
 *
 * The code here is written for clarity, not speed: it is what the AVX2 and
 * AVX-512 tiers are tested against (tests/test-kernels.c), and the fallback
 * for shapes those tiers do not handle (output tails, odd group sizes).  It
 * also fixes the layout of struct qact, which every tier shares:
 *
 *   q, qp   [n_tok][n_blk * QK] int8, token stride n_blk * QK, zero padded
 *           after the last input;
 *   d, sum  [n_tok][n_blk], token stride n_blk.
 *
 * qp holds each run of 8 inputs in the order 0 2 4 6 1 3 5 7: one GPTQ
 * 4-bit word carries inputs 8r..8r+7 with input 8r+j in nibble j, so
 * (w & 0x0F0F0F0F) yields the even inputs 0 2 4 6 in its four bytes and
 * (w >> 4 & 0x0F0F0F0F) the odd ones 1 3 5 7; with qp those two byte
 * quadruples meet their activations as the int32 words qp32[2r] and
 * qp32[2r + 1].  2- and 8-bit kernels read q (8-bit words hold inputs in
 * natural order; 2-bit kernels shuffle per block).
 *
 * Quantization rounds half to even (nearbyintf, the SIMD round instruction),
 * so every tier produces the same bytes.  Any thread.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Output channels per packed 32-bit word (and inputs per qweight word). */
static int
per_word(int bits)
{
	return 32 / bits;
}

/*
 * Words per qzeros row.  Real checkpoints have n_out a multiple of 32, so this
 * is n_out * bits / 32; rounding up lets tests use any n_out.
 */
static size_t
zeros_stride(const struct qmat *W)
{
	return ((size_t)W->n_out * (size_t)W->bits + 31) / 32;
}

static int
gptq_q(const struct qmat *W, int i, int o)
{
	int per = per_word(W->bits);
	uint32_t w = W->qweight[(size_t)(i / per) * (size_t)W->n_out + (size_t)o];

	return (int)((w >> ((i % per) * W->bits)) & ((1u << W->bits) - 1));
}

/* Zero point of group g for output o: the stored value plus one (GPTQ v1),
 * or the stored value itself (auto_round packing, qmat.zero_raw). */
static int
gptq_zero(const struct qmat *W, int g, int o)
{
	int per = per_word(W->bits);
	uint32_t w = W->qzeros[(size_t)g * zeros_stride(W) + (size_t)(o / per)];

	return (int)((w >> ((o % per) * W->bits)) & ((1u << W->bits) - 1)) + gptq_zadd(W);
}

static float
gptq_scale(const struct qmat *W, int g, int o)
{
	return fp16_to_f32(W->scales[(size_t)g * (size_t)W->n_out + (size_t)o]);
}

/* The sizes of qact_init's four arrays: q and qp, then d and sum. */
static void
qact_sizes(int n_max, int n_tok_max, size_t *nq, size_t *nb)
{
	size_t n_blk = ((size_t)n_max + QK - 1) / QK;

	*nq = (size_t)n_tok_max * n_blk * QK;
	*nb = (size_t)n_tok_max * n_blk;
}

size_t
qact_bytes(int n_max, int n_tok_max)
{
	size_t nq, nb;

	qact_sizes(n_max, n_tok_max, &nq, &nb);
	return 2 * nq +
	       nb * (sizeof(((struct qact *)0)->d[0]) + sizeof(((struct qact *)0)->sum[0]));
}

int
qact_init(struct qact *a, int n_max, int n_tok_max)
{
	size_t nq, nb;

	memset(a, 0, sizeof(*a));
	if (n_max <= 0 || n_tok_max <= 0)
		return -1;
	qact_sizes(n_max, n_tok_max, &nq, &nb);
	a->q = malloc(nq);
	a->qp = malloc(nq);
	a->d = malloc(nb * sizeof(*a->d));
	a->sum = malloc(nb * sizeof(*a->sum));
	if (a->q == NULL || a->qp == NULL || a->d == NULL || a->sum == NULL) {
		qact_release(a);
		return -1;
	}
	a->n_max = n_max;
	a->n_tok_max = n_tok_max;
	return 0;
}

void
qact_release(struct qact *a)
{
	free(a->q);
	free(a->qp);
	free(a->d);
	free(a->sum);
	memset(a, 0, sizeof(*a));
}

void
qact_gather(struct qact *dst, int at, const struct qact *src, const int *rows, int n)
{
	size_t row = (size_t)src->n_blk * QK, nb = (size_t)src->n_blk;

	for (int i = 0; i < n; i++) {
		size_t s = (size_t)rows[i], t = (size_t)(at + i);

		memcpy(dst->q + t * row, src->q + s * row, row);
		memcpy(dst->qp + t * row, src->qp + s * row, row);
		memcpy(dst->d + t * nb, src->d + s * nb, nb * sizeof(*dst->d));
		memcpy(dst->sum + t * nb, src->sum + s * nb, nb * sizeof(*dst->sum));
	}
}

bool
qmat_q8_ok(const struct qmat *W)
{
	if (W->fmt != WFMT_GPTQ || (W->bits != 2 && W->bits != 4 && W->bits != 8))
		return false;
	/* A QK block must never straddle two groups, and the last (short)
	 * block must end on a whole qweight word. */
	return W->group_size > 0 && W->group_size % QK == 0 && W->n_in > 0 &&
	       W->n_in % per_word(W->bits) == 0;
}

int
qmat_q8_span(const struct qmat *W)
{
	if (W->group_size % QKS == 0)
		return QKS;
	if (QKS % W->group_size == 0)
		return W->group_size;
	return QK;
}

void
qmat_row_f32(const struct qmat *W, int o, float *out)
{
	size_t base = (size_t)o * (size_t)W->n_in;
	int i, g;

	switch (W->fmt) {
	case WFMT_F32:
		memcpy(out, (const float *)W->w + base, (size_t)W->n_in * sizeof(float));
		break;
	case WFMT_F16:
		for (i = 0; i < W->n_in; i++)
			out[i] = fp16_to_f32(((const uint16_t *)W->w)[base + (size_t)i]);
		break;
	case WFMT_BF16:
		for (i = 0; i < W->n_in; i++)
			out[i] = bf16_to_f32(((const uint16_t *)W->w)[base + (size_t)i]);
		break;
	case WFMT_GPTQ:
		for (g = 0; g < W->n_groups; g++) {
			int i0 = g * W->group_size, i1 = MIN(i0 + W->group_size, W->n_in);
			int z = gptq_zero(W, g, o);
			float s = gptq_scale(W, g, o);

			for (i = i0; i < i1; i++)
				out[i] = s * (float)(gptq_q(W, i, o) - z);
		}
		break;
	}
}

/* Weight (o, i) of a float-format matrix. */
static float
float_weight(const struct qmat *W, int o, int i)
{
	size_t k = (size_t)o * (size_t)W->n_in + (size_t)i;

	switch (W->fmt) {
	case WFMT_F16:
		return fp16_to_f32(((const uint16_t *)W->w)[k]);
	case WFMT_BF16:
		return bf16_to_f32(((const uint16_t *)W->w)[k]);
	default:
		return ((const float *)W->w)[k];
	}
}

/*
 * y[o] = sum_g scale[g][o] * sum_{i in g} (q[i][o] - z[g][o]) * x[i]: the
 * group sum in float, then one multiply by the group's scale.
 */
static void
matmul_f32(const struct qmat *W, const float *X, int n_tok, float *Y, int ldy, int o0, int o1)
{
	int t, o, g, i;

	for (t = 0; t < n_tok; t++) {
		const float *x = X + (size_t)t * (size_t)W->n_in;

		for (o = o0; o < o1; o++) {
			float y = 0;

			if (W->fmt != WFMT_GPTQ) {
				for (i = 0; i < W->n_in; i++)
					y += float_weight(W, o, i) * x[i];
			} else {
				for (g = 0; g < W->n_groups; g++) {
					int i0 = g * W->group_size;
					int i1 = MIN(i0 + W->group_size, W->n_in);
					int z = gptq_zero(W, g, o);
					float acc = 0;

					for (i = i0; i < i1; i++)
						acc += (float)(gptq_q(W, i, o) - z) * x[i];
					y += gptq_scale(W, g, o) * acc;
				}
			}
			Y[(size_t)t * (size_t)ldy + (size_t)o] = y;
		}
	}
}

/*
 * y[o] = sum_s d_s * scale[g(s)][o] * (sum_{i in s} q[i][o] * a_i - z * sum_s)
 * over the spans s of qmat_q8_span: exact int32 inside a span, float across
 * spans, in span order (the SIMD tiers add in the same order).
 */
static void
matmul_q8(const struct qmat *W, const struct qact *A, float *Y, int ldy, int o0, int o1)
{
	int n_blk = A->n_blk, span = qmat_q8_span(W), t, o, i0, i;

	for (t = 0; t < A->n_tok; t++) {
		const int8_t *a = A->q + (size_t)t * (size_t)n_blk * QK;
		const float *d = A->d + (size_t)t * (size_t)n_blk;
		const int32_t *sum = A->sum + (size_t)t * (size_t)n_blk;

		for (o = o0; o < o1; o++) {
			float y = 0;

			for (i0 = 0; i0 < W->n_in; i0 += span) {
				int i1 = MIN(i0 + span, W->n_in), g = i0 / W->group_size, b;
				int32_t dot = 0, s = 0;

				for (i = i0; i < i1; i++)
					dot += gptq_q(W, i, o) * a[i];
				for (b = i0 / QK; b * QK < i1; b++)
					s += sum[b];
				dot -= gptq_zero(W, g, o) * s;
				y += d[i0 / QK] * gptq_scale(W, g, o) * (float)dot;
			}
			Y[(size_t)t * (size_t)ldy + (size_t)o] = y;
		}
	}
}

/* max |x| over one QKS super-block starting at i0, divided by 127. */
static float
super_scale(const float *x, int i0, int n)
{
	float amax = 0;
	int i;

	for (i = i0; i < MIN(i0 + QKS, n); i++)
		amax = fmaxf(amax, fabsf(x[i]));
	return amax / 127.0f;
}

static void
quantize_act(const float *X, int n_tok, int n, struct qact *A)
{
	int n_blk = (n + QK - 1) / QK, t, b, i;

	A->n = n;
	A->n_tok = n_tok;
	A->n_blk = n_blk;
	for (t = 0; t < n_tok; t++) {
		const float *x = X + (size_t)t * (size_t)n;
		int8_t *q = A->q + (size_t)t * (size_t)n_blk * QK;
		int8_t *qp = A->qp + (size_t)t * (size_t)n_blk * QK;
		float d = 0;

		for (b = 0; b < n_blk; b++) {
			int i0 = b * QK, len = MIN(QK, n - i0);
			int32_t sum = 0;

			if (i0 % QKS == 0)
				d = super_scale(x, i0, n);
			for (i = 0; i < QK; i++) {
				float v = 0;

				if (i < len && d != 0) {
					v = nearbyintf(x[i0 + i] / d);
					/* Only NaN/inf inputs get here out of range. */
					v = v > 127 ? 127 : v < -127 ? -127 : v == v ? v : 0;
				}
				q[i0 + i] = (int8_t)v;
				sum += (int8_t)v;
			}
			for (i = 0; i < QK; i += 8) {
				int j;

				for (j = 0; j < 4; j++) {
					qp[i0 + i + j] = q[i0 + i + 2 * j];
					qp[i0 + i + 4 + j] = q[i0 + i + 2 * j + 1];
				}
			}
			A->d[(size_t)t * (size_t)n_blk + (size_t)b] = d;
			A->sum[(size_t)t * (size_t)n_blk + (size_t)b] = sum;
		}
	}
}

static float
dot(const float *a, const float *b, int n)
{
	float s = 0;
	int i;

	for (i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void
axpy(float *y, float a, const float *x, int n)
{
	int i;

	for (i = 0; i < n; i++)
		y[i] += a * x[i];
}

static void
scale(float *y, float a, int n)
{
	int i;

	for (i = 0; i < n; i++)
		y[i] *= a;
}

static float
dot_h(const float *a, const uint16_t *x, int n)
{
	float s = 0;

	for (int i = 0; i < n; i++)
		s += a[i] * fp16_to_f32(x[i]);
	return s;
}

static void
axpy_h(float *y, float a, const uint16_t *x, int n)
{
	for (int i = 0; i < n; i++)
		y[i] += a * fp16_to_f32(x[i]);
}

/* Reference for the attention kernels: one dot or axpy per head and row. */
static void
scores_h(const float *q, int ldq, int ng, const uint16_t *k, int np, int n, float scale, float *sc,
	 size_t ldsc)
{
	for (int s = 0; s < np; s++)
		for (int g = 0; g < ng; g++)
			sc[g * ldsc + s] = scale * dot_h(q + (size_t)g * ldq, k + (size_t)s * n, n);
}

static void
mix_h(float *o, int ldo, int ng, const float *p, size_t ldp, const uint16_t *v, int np, int n)
{
	for (int s = 0; s < np; s++)
		for (int g = 0; g < ng; g++)
			axpy_h(o + (size_t)g * ldo, p[g * ldp + s], v + (size_t)s * n, n);
}

static void
to_half(uint16_t *y, const float *x, int n)
{
	for (int i = 0; i < n; i++)
		y[i] = f32_to_fp16(x[i]);
}

/* The reference: four passes over each row, in the order of the formula. */
static void
delta_step(float *S, int dk, int dv, const float *q, const float *k, const float *v, float beta,
	   float decay, float *o)
{
	for (int j = 0; j < dv; j++) {
		float *row = S + (size_t)j * dk, delta;

		scale(row, decay, dk);
		delta = beta * (v[j] - dot(row, k, dk));
		axpy(row, delta, k, dk);
		o[j] = dot(row, q, dk);
	}
}

static void
silu(const float *x, float *y, int n)
{
	for (int i = 0; i < n; i++)
		y[i] = x[i] / (1.0f + expf(-x[i]));
}

const struct kernels kernels_scalar = {
	.name = "scalar",
	.matmul_f32 = matmul_f32,
	.matmul_q8 = matmul_q8,
	.quantize_act = quantize_act,
	.dot = dot,
	.axpy = axpy,
	.scale = scale,
	.dot_h = dot_h,
	.axpy_h = axpy_h,
	.to_half = to_half,
	.scores_h = scores_h,
	.mix_h = mix_h,
	.delta_step = delta_step,
	.silu = silu,
};
