/*
 * avx2.c - the AVX2 + FMA + F16C tier of the compute kernels (Haswell and
 * later, Zen).  Same results as scalar.c to float rounding; avx512.c is the
 * same algorithm with 16-wide registers, and what the two share to the letter
 * is written once in common-simd.h.  Any thread.
 *
 * GPTQ matrices are read in place (zero-copy).  qweight[K * bits / 32][N]
 * puts the words of consecutive output channels side by side, so one 256-bit
 * load is 8 outputs x 32 / bits inputs.  A "panel" is a few qweight rows
 * (8 for decode: one QK block of 8-bit weights, two of 4-bit, four of 2-bit;
 * one block per panel for prefill) swept across the whole output range
 * [o0, o1), 8 outputs per step; each step adds its blocks into Y.  Memory
 * thus sees a handful of neighbouring sequential streams.  Walking all inputs
 * for a narrow strip of outputs instead hops a whole qweight row per load;
 * that measured 3-5x slower from DRAM.  When a panel is small (narrow
 * matrices such as the 512-output experts) the hardware prefetchers lose
 * track of its short streams, so each step also prefetches the next panel in
 * address order (2048 -> 512: +70% here, 2x on a Xeon).
 *
 * matmul_q8 multiplies unsigned weight bytes by int8 activations with maddubs:
 * 4- and 2-bit weights are masked out of the word as bytes 0..15 / 0..3 (a
 * block leaves 16 products of at most 15 * 127 in each int16); 8-bit would
 * saturate maddubs, so they are shifted to q - 128 and multiplied with the
 * sign trick (abs of the weight, activation negated where the weight is), and
 * the zero point is corrected with (z - 128) * sum(a) instead of z * sum(a).
 * Activations are never -128, so neither trick overflows.  Each block ends
 * in int32, is scaled by d_b in float, and each step does one fma with the
 * group scale into Y.
 *
 * Matrices whose weight group holds whole spans of QKS inputs (4- and 8-bit,
 * group 128 or a multiple: the model's) keep each span's products exact in
 * int32 and convert once per span (q8_span, q8_span_dec); the rest goes
 * block by block (q8_panel).
 *
 * Prefill (several tokens) works on output chunks whose Y (all tokens) fits
 * L2; each weight panel of a chunk is read once and applied to one tile of 4
 * tokens after another from L1, and inside a tile every loaded and unpacked
 * weight vector serves all 4 tokens.  Output counts that are not a multiple
 * of 8 end with the scalar tier.
 */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "exp-poly.h"
#include "prefetch-rows.h"
#include "util.h"

/* For common-simd.h: 8 outputs per register; outputs past the last 8 go to the scalar tier. */
#define TIER_WIDTH 8
#define TIER_NEXT  kernels_scalar
#include "common-simd.h"

static float
hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static inline __m256
scales8(const uint16_t *row, int o)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + o)));
}

/*
 * Blocks [b0, b0 + nb) (nr qweight rows each, all in one group) for tokens
 * t0..t0+nt-1, outputs [o0, o1) (a multiple of 8):
 * Y += scale * sum_b d_b * (sum q * a - z * sum_b).
 * matmul_q8 uses it for what the span path (q8_spans) does not take, one
 * block at a time for any token count: merging blocks in decode alone
 * summed in another order than prefill, and the int8 path
 * amplifies last-bit differences (a prompt fed whole or token by token gave
 * logits 4e-2 x logit_abs_max apart on the small golden).  W's
 * fields are copied to locals: the intrinsics' vector types may alias
 * anything, so the compiler would otherwise reload them after each Y store.
 */
static inline __attribute__((always_inline)) void
q8_panel(const struct qmat *W, const struct qact *A, int t0, const int nt, int b0, const int nb,
	 const int nr, float *Y, int ldy, int o0, int o1, const int bits)
{
	const __m256i ones16 = _mm256_set1_epi16(1);
	const __m256i mask = _mm256_set1_epi8(bits == 4 ? 0x0F : 0x03);
	const __m256i x80 = _mm256_set1_epi8((char)0x80);
	const size_t n_out = (size_t)W->n_out;
	const int r0 = b0 * QK * bits / 32, g = b0 * QK / W->group_size;
	const uint32_t *qw = W->qweight + (size_t)r0 * n_out;
	const uint8_t *zrow = (const uint8_t *)(W->qzeros + (size_t)g * zeros_stride(W));
	const uint16_t *srow = W->scales + (size_t)g * n_out;
	int32_t aw[MAX_NB][TOK_TILE][8], sb[MAX_NB][TOK_TILE];
	float db[MAX_NB][TOK_TILE], *yt[TOK_TILE];
	struct prefetch pf;
	int k, t, o, r, s;

	panel_acts(A, t0, nt, b0, nb, bits, aw, sb, db);
	for (t = 0; t < nt; t++)
		yt[t] = Y + (size_t)(t0 + t) * ldy;
	prefetch_init(&pf, W, r0 + nb * nr, MIN(r0 + 2 * nb * nr, W->n_in * bits / 32), o0, o1, nt);

	for (o = o0; o < o1; o += 8) {
		__m256i zv = zeros8(zrow, o, bits, gptq_zadd(W)), acc[MAX_NB][TOK_TILE];
		__m256 f[TOK_TILE];

		if (bits == 8)
			zv = _mm256_sub_epi32(zv, _mm256_set1_epi32(128));
#pragma GCC unroll 4
		for (k = 0; k < nb; k++)
#pragma GCC unroll 4
			for (t = 0; t < nt; t++)
				acc[k][t] = _mm256_setzero_si256();
#pragma GCC unroll 4
		for (k = 0; k < nb; k++) {
#pragma GCC unroll 8
			for (r = 0; r < nr; r++) {
				const uint32_t *wp = qw + (size_t)(k * nr + r) * n_out + o;
				__m256i w = _mm256_loadu_si256((const __m256i *)wp);

				if (bits == 4) {
					__m256i lo = _mm256_and_si256(w, mask);
					__m256i hi =
						_mm256_and_si256(_mm256_srli_epi32(w, 4), mask);
#pragma GCC unroll 4
					for (t = 0; t < nt; t++) {
						__m256i p = _mm256_maddubs_epi16(
							lo, _mm256_set1_epi32(aw[k][t][2 * r]));
						__m256i q = _mm256_maddubs_epi16(
							hi, _mm256_set1_epi32(aw[k][t][2 * r + 1]));

						acc[k][t] = _mm256_add_epi16(
							acc[k][t], _mm256_add_epi16(p, q));
					}
				} else if (bits == 8) {
					__m256i ws = _mm256_xor_si256(w, x80);
					__m256i wa = _mm256_abs_epi8(ws);
#pragma GCC unroll 4
					for (t = 0; t < nt; t++) {
						__m256i a = _mm256_sign_epi8(
							_mm256_set1_epi32(aw[k][t][r]), ws);

						acc[k][t] = _mm256_add_epi32(
							acc[k][t],
							_mm256_madd_epi16(
								_mm256_maddubs_epi16(wa, a),
								ones16));
					}
				} else {
#pragma GCC unroll 4
					for (s = 0; s < 4; s++) {
						__m256i c = _mm256_and_si256(
							_mm256_srli_epi32(w, 2 * s), mask);
#pragma GCC unroll 4
						for (t = 0; t < nt; t++) {
							__m256i a = _mm256_set1_epi32(
								aw[k][t][4 * r + s]);

							acc[k][t] = _mm256_add_epi16(
								acc[k][t],
								_mm256_maddubs_epi16(c, a));
						}
					}
				}
			}
		}
#pragma GCC unroll 4
		for (t = 0; t < nt; t++) {
#pragma GCC unroll 4
			for (k = 0; k < nb; k++) {
				__m256i dot = bits == 8 ? acc[k][t]
							: _mm256_madd_epi16(acc[k][t], ones16);
				__m256 v;

				dot = _mm256_sub_epi32(
					dot, _mm256_madd_epi16(zv, _mm256_set1_epi32(sb[k][t])));
				v = _mm256_cvtepi32_ps(dot);
				if (k == 0)
					f[t] = _mm256_mul_ps(v, _mm256_set1_ps(db[k][t]));
				else
					f[t] = _mm256_fmadd_ps(v, _mm256_set1_ps(db[k][t]), f[t]);
			}
			_mm256_storeu_ps(yt[t] + o, _mm256_fmadd_ps(scales8(srow, o), f[t],
								    _mm256_loadu_ps(yt[t] + o)));
		}
		prefetch_step(&pf, (nb * nr + 1) / 2);
	}
}

/*
 * One qweight row's products for 8 outputs, the shared step of q8_span and
 * q8_span_dec.  4-bit: the even inputs' nibbles times a_even and the odd
 * ones' times a_odd (4 activations each, as qp holds them), two products
 * per int16 lane, at most 2 x 2 x 15 x 127.  8-bit: q - 128 by the sign
 * trick (see the top of this file), widened to int32.
 */
static inline __attribute__((always_inline)) __m256i
row4_i16(__m256i w, int32_t a_even, int32_t a_odd)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);

	return _mm256_add_epi16(
		_mm256_maddubs_epi16(_mm256_and_si256(w, m4), _mm256_set1_epi32(a_even)),
		_mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi32(w, 4), m4),
				     _mm256_set1_epi32(a_odd)));
}

static inline __attribute__((always_inline)) __m256i
row8_i32(__m256i w, int32_t a)
{
	const __m256i ws = _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80));

	return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(ws),
						      _mm256_sign_epi8(_mm256_set1_epi32(a), ws)),
				 _mm256_set1_epi16(1));
}

/*
 * One span of QKS inputs from i0 (QKS * bits / 32 qweight rows, one weight
 * group, one activation scale per token; 4- and 8-bit) for tokens
 * t0..t0+nt-1 and outputs [o0, o1) (a multiple of 8).  The products stay
 * exact integers over the whole span (4-bit: int16 for a block of 4 rows,
 * at most 8 x 15 x 127 x 2 per lane, then widened to int32), then one
 * zero-point correction, one conversion and one fma with scale * d per 8
 * outputs and token: the block-by-block panel pays those, and a load and
 * store of Y, four times per group.  Every token count sums the same way,
 * so a prompt fed whole and token by token still agree bit for bit.
 */
static inline __attribute__((always_inline)) void
q8_span(const struct qmat *W, const struct qact *A, int t0, const int nt, int i0, float *Y, int ldy,
	int o0, int o1, const int bits)
{
	const int nr = QKS * bits / 32;
	const __m256i ones16 = _mm256_set1_epi16(1);
	const size_t stride = (size_t)A->n_blk * QK, n_out = (size_t)W->n_out;
	const int g = i0 / W->group_size, b0 = i0 / QK;
	const uint32_t *qw = W->qweight + (size_t)(i0 * bits / 32) * n_out;
	const uint8_t *zrow = (const uint8_t *)(W->qzeros + (size_t)g * zeros_stride(W));
	const uint16_t *srow = W->scales + (size_t)g * n_out;
	int32_t aw[TOK_TILE][QKS / 4], st[TOK_TILE];
	float dt[TOK_TILE], *yt[TOK_TILE];
	int t, o, r, k;

	for (t = 0; t < nt; t++) {
		const int32_t *sum = A->sum + (size_t)(t0 + t) * A->n_blk + b0;

		memcpy(aw[t], (bits == 4 ? A->qp : A->q) + (size_t)(t0 + t) * stride + (size_t)i0,
		       QKS);
		/* z * sum is taken by madd: |sum| <= 128 * 127 fits the low int16. */
		for (st[t] = 0, k = 0; k < QKS / QK; k++)
			st[t] += sum[k];
		st[t] &= 0xFFFF;
		dt[t] = A->d[(size_t)(t0 + t) * A->n_blk + b0];
		yt[t] = Y + (size_t)(t0 + t) * ldy;
	}
	for (o = o0; o < o1; o += 8) {
		__m256i acc[TOK_TILE], zv;
		__m256 sc;

#pragma GCC unroll 4
		for (t = 0; t < nt; t++)
			acc[t] = _mm256_setzero_si256();
		if (bits == 4) {
#pragma GCC unroll 4
			for (k = 0; k < QKS / QK; k++) {
				__m256i a16[TOK_TILE];

#pragma GCC unroll 4
				for (t = 0; t < nt; t++)
					a16[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
				for (r = 4 * k; r < 4 * k + 4; r++) {
					__m256i w = _mm256_loadu_si256(
						(const __m256i *)(qw + (size_t)r * n_out + o));

#pragma GCC unroll 4
					for (t = 0; t < nt; t++)
						a16[t] = _mm256_add_epi16(
							a16[t], row4_i16(w, aw[t][2 * r],
									 aw[t][2 * r + 1]));
				}
#pragma GCC unroll 4
				for (t = 0; t < nt; t++)
					acc[t] = _mm256_add_epi32(
						acc[t], _mm256_madd_epi16(a16[t], ones16));
			}
		} else {
#pragma GCC unroll 32
			for (r = 0; r < nr; r++) {
				__m256i w = _mm256_loadu_si256(
					(const __m256i *)(qw + (size_t)r * n_out + o));

#pragma GCC unroll 4
				for (t = 0; t < nt; t++)
					acc[t] = _mm256_add_epi32(acc[t], row8_i32(w, aw[t][r]));
			}
		}
		zv = zeros8(zrow, o, bits, gptq_zadd(W));
		if (bits == 8)
			zv = _mm256_sub_epi32(zv, _mm256_set1_epi32(128));
		sc = scales8(srow, o);
#pragma GCC unroll 4
		for (t = 0; t < nt; t++) {
			__m256i dot = _mm256_sub_epi32(
				acc[t], _mm256_madd_epi16(zv, _mm256_set1_epi32(st[t])));

			_mm256_storeu_ps(yt[t] + o,
					 _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot),
							 _mm256_mul_ps(sc, _mm256_set1_ps(dt[t])),
							 _mm256_loadu_ps(yt[t] + o)));
		}
	}
}

/* Outputs per decode pass: their int32 partial sums stay on the stack (16 KiB), and each
 * qweight row is read in segments of 16 KiB, long enough to stream well. */
#define DEC_COLS 4096

/*
 * Decode (one token) of one span from i0, outputs [o0, o1) (a multiple of 8,
 * at most DEC_COLS): the same integers and the same final arithmetic as
 * q8_span with one token, so a prompt fed whole or token by token agrees bit
 * for bit, but swept one block (4 or 8 qweight rows) at a time with the
 * int32 sums of the blocks before kept in part[].  Reading all 16 or 32 rows
 * of a span side by side, as q8_span does, measured 10-20 % slower than the
 * block-by-block panel here: the hardware prefetchers do not follow that
 * many streams.  This way measured 11-18 % faster than the panel (in-process
 * A/B, best and median of 15, 8-bit 2048 -> 12288 and 4-bit 2048 -> 512).
 */
static inline __attribute__((always_inline)) void
q8_span_dec(const struct qmat *W, const struct qact *A, int i0, float *Y, int o0, int o1,
	    const int bits)
{
	const int nr = QK * bits / 32; /* rows per block */
	const __m256i ones16 = _mm256_set1_epi16(1);
	const size_t n_out = (size_t)W->n_out;
	const int g = i0 / W->group_size, b0 = i0 / QK;
	const uint8_t *zrow = (const uint8_t *)(W->qzeros + (size_t)g * zeros_stride(W));
	const uint16_t *srow = W->scales + (size_t)g * n_out;
	const int total_rows = W->n_in * bits / 32;
	int32_t aw[QKS / 4], st = 0;
	__m256i part[DEC_COLS / 8];
	__m256 dv;
	struct prefetch pf;
	int o, r, k;

	memcpy(aw, (bits == 4 ? A->qp : A->q) + (size_t)i0, QKS);
	for (k = 0; k < QKS / QK; k++)
		st += A->sum[b0 + k];
	st &= 0xFFFF; /* z * sum is taken by madd: |sum| <= 128 * 127 fits the low int16 */
	dv = _mm256_set1_ps(A->d[b0]);
	for (k = 0; k < QKS / QK; k++) {
		const int rb = (i0 + k * QK) * bits / 32;
		const uint32_t *qw = W->qweight + (size_t)rb * n_out;

		prefetch_init(&pf, W, rb + nr, MIN(rb + 2 * nr, total_rows), o0, o1, 1);
		for (o = o0; o < o1; o += 8) {
			__m256i dot = _mm256_setzero_si256();

			if (bits == 4) {
#pragma GCC unroll 4
				for (r = 0; r < nr; r++) {
					const int R = k * nr + r;

					dot = _mm256_add_epi16(
						dot,
						row4_i16(
							_mm256_loadu_si256((
								const __m256i *)(qw +
										 (size_t)r * n_out +
										 o)),
							aw[2 * R], aw[2 * R + 1]));
				}
				dot = _mm256_madd_epi16(dot, ones16);
			} else {
#pragma GCC unroll 8
				for (r = 0; r < nr; r++)
					dot = _mm256_add_epi32(
						dot,
						row8_i32(
							_mm256_loadu_si256((
								const __m256i *)(qw +
										 (size_t)r * n_out +
										 o)),
							aw[k * nr + r]));
			}
			if (k > 0)
				dot = _mm256_add_epi32(dot, part[(o - o0) / 8]);
			if (k < QKS / QK - 1) {
				part[(o - o0) / 8] = dot;
			} else {
				__m256i zv = zeros8(zrow, o, bits, gptq_zadd(W));

				if (bits == 8)
					zv = _mm256_sub_epi32(zv, _mm256_set1_epi32(128));
				dot = _mm256_sub_epi32(
					dot, _mm256_madd_epi16(zv, _mm256_set1_epi32(st)));
				_mm256_storeu_ps(
					Y + o, _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot),
							       _mm256_mul_ps(scales8(srow, o), dv),
							       _mm256_loadu_ps(Y + o)));
			}
			prefetch_step(&pf, (nr + 1) / 2);
		}
	}
}

/* q8_span with the bits and token count as constants. */
static void
q8_span_any(const struct qmat *W, const struct qact *A, int t0, int nt, int i0, float *Y, int ldy,
	    int o0, int o1)
{
	switch ((W->bits == 8) * 4 + nt - 1) {
#define SPAN_CASE(B, T)                                      \
	case ((B) == 8) * 4 + (T)-1:                         \
		q8_span(W, A, t0, T, i0, Y, ldy, o0, o1, B); \
		break;
#define SPAN_CASES(B)   \
	SPAN_CASE(B, 1) \
	SPAN_CASE(B, 2) \
	SPAN_CASE(B, 3) \
	SPAN_CASE(B, 4)
		SPAN_CASES(4)
		SPAN_CASES(8)
#undef SPAN_CASES
#undef SPAN_CASE
	}
}

/* Outputs per q8_span call in prefill: the span's rows of them stay in L1 across token tiles. */
#define SPAN_COLS 256

/*
 * Outputs [oc, oe) of all tokens over the n_spans whole spans.  Decode
 * goes block by block with int32 partials (q8_span_dec); prefill takes
 * SPAN_COLS outputs at a time, so a span's weights for them (16 KiB of
 * 4-bit, 32 of 8-bit) are read from memory once and reused from L1 by every
 * token tile.  Both give the same bits.
 */
static void
q8_spans(const struct qmat *W, const struct qact *A, int n_spans, float *Y, int ldy, int oc, int oe)
{
	const int n_tok = A->n_tok;
	int s, t0, c0;

	for (s = 0; s < n_spans; s++) {
		if (n_tok == 1) {
			for (c0 = oc; c0 < oe; c0 += DEC_COLS) {
				if (W->bits == 4)
					q8_span_dec(W, A, s * QKS, Y, c0, MIN(c0 + DEC_COLS, oe),
						    4);
				else
					q8_span_dec(W, A, s * QKS, Y, c0, MIN(c0 + DEC_COLS, oe),
						    8);
			}
			continue;
		}
		for (c0 = oc; c0 < oe; c0 += SPAN_COLS)
			for (t0 = 0; t0 < n_tok; t0 += TOK_TILE)
				q8_span_any(W, A, t0, MIN(TOK_TILE, n_tok - t0), s * QKS, Y, ldy,
					    c0, MIN(c0 + SPAN_COLS, oe));
	}
}

static void
matmul_q8(const struct qmat *W, const struct qact *A, float *Y, int ldy, int o0, int o1)
{
	int ov1 = o0 + (o1 - o0) / 8 * 8, chunk, oc, oe, t0, b, n_spans = 0;

	/* Whole QKS spans take the span path; the rest (other group sizes,
	 * 2-bit weights, a short last span) goes block by block. */
	if ((W->bits == 4 || W->bits == 8) && qmat_q8_span(W) == QKS)
		n_spans = W->n_in / QKS;
	if (ov1 > o0) {
		chunk = chunk_outputs(A->n_tok, ov1 - o0, 8);
		for (oc = o0; oc < ov1; oc += chunk) {
			oe = MIN(oc + chunk, ov1);
			zero_tile(Y, ldy, 0, A->n_tok, oc, oe);
			q8_spans(W, A, n_spans, Y, ldy, oc, oe);
			for (b = n_spans * (QKS / QK); b < A->n_blk; b++) {
				for (t0 = 0; t0 < A->n_tok; t0 += TOK_TILE)
					q8_panel_any(W, A, t0, MIN(TOK_TILE, A->n_tok - t0), b, 1,
						     Y, ldy, oc, oe);
			}
		}
	}
	if (ov1 < o1)
		kernels_scalar.matmul_q8(W, A, Y, ldy, ov1, o1);
}

/*
 * GPTQ rows [r0, r0 + nr) (inside group g) with float activations, tokens
 * t0..t0+nt-1, outputs [o0, o1): Y += scale * sum (q - z) * x.
 */
static inline __attribute__((always_inline)) void
f32_panel(const struct qmat *W, const float *X, int t0, const int nt, int g, int r0, int nr,
	  float *Y, int ldy, int o0, int o1, const int bits)
{
	const int per = 32 / bits;
	const __m256i mask = _mm256_set1_epi32((1 << bits) - 1);
	const size_t n_out = (size_t)W->n_out;
	const uint32_t *qw = W->qweight + (size_t)r0 * n_out;
	const uint8_t *zrow = (const uint8_t *)(W->qzeros + (size_t)g * zeros_stride(W));
	const uint16_t *srow = W->scales + (size_t)g * n_out;
	const float *xt[TOK_TILE];
	float *yt[TOK_TILE];
	struct prefetch pf;
	int t, o, r, j;

	for (t = 0; t < nt; t++) {
		xt[t] = X + (size_t)(t0 + t) * W->n_in + (size_t)r0 * per;
		yt[t] = Y + (size_t)(t0 + t) * ldy;
	}
	prefetch_init(&pf, W, r0 + nr, MIN(r0 + 2 * nr, W->n_in * bits / 32), o0, o1, nt);
	for (o = o0; o < o1; o += 8) {
		__m256i zv = zeros8(zrow, o, bits, gptq_zadd(W));
		__m256 sc = scales8(srow, o), acc[TOK_TILE];

#pragma GCC unroll 4
		for (t = 0; t < nt; t++)
			acc[t] = _mm256_setzero_ps();
		for (r = 0; r < nr; r++) {
			__m256i w = _mm256_loadu_si256((const __m256i *)(qw + r * n_out + o));

#pragma GCC unroll 16
			for (j = 0; j < per; j++) {
				__m256 q = _mm256_cvtepi32_ps(_mm256_sub_epi32(
					_mm256_and_si256(_mm256_srli_epi32(w, j * bits), mask),
					zv));

#pragma GCC unroll 4
				for (t = 0; t < nt; t++)
					acc[t] = _mm256_fmadd_ps(
						q, _mm256_broadcast_ss(xt[t] + r * per + j),
						acc[t]);
			}
		}
#pragma GCC unroll 4
		for (t = 0; t < nt; t++)
			_mm256_storeu_ps(yt[t] + o,
					 _mm256_fmadd_ps(sc, acc[t], _mm256_loadu_ps(yt[t] + o)));
		prefetch_step(&pf, (nr + 1) / 2);
	}
}

/* 8 weights of a row-major float-format matrix as float. */
static inline __attribute__((always_inline)) __m256
load_w8(const void *w, size_t k, const enum wfmt fmt)
{
	if (fmt == WFMT_F16)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + k)));
	if (fmt == WFMT_BF16)
		return _mm256_castsi256_ps(
			_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(
						  (const __m128i *)((const uint16_t *)w + k))),
					  16));
	return _mm256_loadu_ps((const float *)w + k);
}

/*
 * Decode with row-major float weights: one row from each quarter of [o0, o1)
 * at a time, so memory sees four sequential streams (a single stream reads
 * about 30% slower on the machines measured) and each x vector serves four
 * rows.  Returns the first row left over (fewer than 4).
 */
static inline __attribute__((always_inline)) int
float_rows4(const struct qmat *W, const float *x, float *y, int o0, int o1, const enum wfmt fmt)
{
	int n = W->n_in, n8 = n / 8 * 8, h = (o1 - o0) / 4, o, i, k;

	for (o = o0; o < o0 + h; o++) {
		size_t row[4];
		__m256 acc[4];
		float tail[4] = { 0 };

		for (k = 0; k < 4; k++) {
			row[k] = (size_t)(o + k * h) * n;
			acc[k] = _mm256_setzero_ps();
		}
		for (i = 0; i < n8; i += 8) {
			__m256 xv = _mm256_loadu_ps(x + i);

#pragma GCC unroll 4
			for (k = 0; k < 4; k++)
				acc[k] =
					_mm256_fmadd_ps(load_w8(W->w, row[k] + i, fmt), xv, acc[k]);
		}
		for (; i < n; i++)
			for (k = 0; k < 4; k++)
				tail[k] += load_w1(W->w, row[k] + i, fmt) * x[i];
		for (k = 0; k < 4; k++)
			y[o + k * h] = hsum(acc[k]) + tail[k];
	}
	return o0 + 4 * h;
}

/* Row-major float weights: rows in order, each read once per token tile. */
static inline __attribute__((always_inline)) void
float_rows(const struct qmat *W, const float *X, int n_tok, float *Y, int ldy, int o0, int o1,
	   const enum wfmt fmt)
{
	int n = W->n_in, n8 = n / 8 * 8, t0, nt, t, o, i;

	if (n_tok == 1)
		o0 = float_rows4(W, X, Y, o0, o1, fmt);
	for (t0 = 0; t0 < n_tok; t0 += TOK_TILE) {
		nt = MIN(TOK_TILE, n_tok - t0);
		for (o = o0; o < o1; o++) {
			size_t row = (size_t)o * n;
			const float *x = X + (size_t)t0 * n;
			__m256 acc[TOK_TILE];
			float tail[TOK_TILE] = { 0 };

			for (t = 0; t < nt; t++)
				acc[t] = _mm256_setzero_ps();
			for (i = 0; i < n8; i += 8) {
				__m256 w = load_w8(W->w, row + i, fmt);

				for (t = 0; t < nt; t++)
					acc[t] = _mm256_fmadd_ps(
						w, _mm256_loadu_ps(x + (size_t)t * n + i), acc[t]);
			}
			for (; i < n; i++) {
				float w = load_w1(W->w, row + i, fmt);

				for (t = 0; t < nt; t++)
					tail[t] += w * x[(size_t)t * n + i];
			}
			for (t = 0; t < nt; t++)
				Y[(size_t)(t0 + t) * ldy + o] = hsum(acc[t]) + tail[t];
		}
	}
}

/* max |x| over one QK block (NaN ignored, as fmaxf in scalar.c). */
static float
block_amax(const float *x)
{
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	__m256 v[4], m;
	int k;

	for (k = 0; k < 4; k++)
		v[k] = _mm256_and_ps(_mm256_loadu_ps(x + 8 * k), absmask);
	m = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
	m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
	m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
	m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
	return _mm256_cvtss_f32(m);
}

/*
 * One QK block with its super-block's scale d: q = x / d rounded half to
 * even (exactly as scalar.c, so tiers agree bit for bit), the sum, and the
 * permuted copy (order 0 2 4 6 1 3 5 7 in each run of 8, see scalar.c).
 */
static void
quantize_block(const float *x, float d, int8_t *q, int8_t *qp, float *d_out, int32_t *sum_out)
{
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	const __m256i shuf = _mm256_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15,
					      0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
	__m256 v[4];
	__m256i iv[4], s, p;
	int k;

	for (k = 0; k < 4; k++)
		v[k] = _mm256_loadu_ps(x + 8 * k);
	*d_out = d;
	if (d == 0) {
		memset(q, 0, QK);
		memset(qp, 0, QK);
		*sum_out = 0;
		return;
	}
	for (k = 0; k < 4; k++) {
		__m256 r = _mm256_round_ps(_mm256_div_ps(v[k], _mm256_set1_ps(d)),
					   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);

		r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-127)), _mm256_set1_ps(127));
		iv[k] = _mm256_cvttps_epi32(r);
	}
	s = _mm256_add_epi32(_mm256_add_epi32(iv[0], iv[1]), _mm256_add_epi32(iv[2], iv[3]));
	s = _mm256_hadd_epi32(s, s);
	s = _mm256_hadd_epi32(s, s);
	*sum_out = _mm256_extract_epi32(s, 0) + _mm256_extract_epi32(s, 4);
	/* packs work per 128-bit lane; the permute puts the dwords back in order. */
	p = _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
	p = _mm256_permutevar8x32_epi32(p, perm);
	_mm256_storeu_si256((__m256i *)q, p);
	_mm256_storeu_si256((__m256i *)qp, _mm256_shuffle_epi8(p, shuf));
}

static float
dot(const float *a, const float *b, int n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	float s;
	int i = 0;

	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void
axpy(float *y, float a, const float *x, int n)
{
	__m256 va = _mm256_set1_ps(a);
	int i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(
			y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

static void
scale(float *y, float a, int n)
{
	__m256 va = _mm256_set1_ps(a);
	int i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] *= a;
}

static float
dot_h(const float *a, const uint16_t *x, int n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;
	float s;
	int i = 0;

	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i),
				     _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
				     s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
				     _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8))),
				     s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i),
				     _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
				     s0);
	s = hsum(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += a[i] * fp16_to_f32(x[i]);
	return s;
}

static void
axpy_h(float *y, float a, const uint16_t *x, int n)
{
	__m256 va = _mm256_set1_ps(a);
	int i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(
			y + i,
			_mm256_fmadd_ps(va,
					_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
					_mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * fp16_to_f32(x[i]);
}

static void
to_half(uint16_t *y, const float *x, int n)
{
	int i = 0;

	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i),
								     _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		y[i] = f32_to_fp16(x[i]);
}

/*
 * Scores of 4 heads at a time: each key row is converted once per 4 heads and
 * the 4 sums stay in registers.  n not a multiple of 8: the scalar tier.
 */
static void
scores_h(const float *q, int ldq, int ng, const uint16_t *k, int np, int n, float scale, float *sc,
	 size_t ldsc)
{
	if (n % 8 != 0) {
		kernels_scalar.scores_h(q, ldq, ng, k, np, n, scale, sc, ldsc);
		return;
	}
	for (int s = 0; s < np; s++) {
		const uint16_t *kr = k + (size_t)s * n;
		int g = 0;

		PREFETCH_ROWS(kr, n, n, s, np);

		for (; g + 4 <= ng; g += 4) {
			const float *q0 = q + (size_t)g * ldq, *q1 = q0 + ldq, *q2 = q1 + ldq,
				    *q3 = q2 + ldq;
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

			for (int i = 0; i < n; i += 8) {
				__m256 kv = _mm256_cvtph_ps(
					_mm_loadu_si128((const __m128i *)((kr + i))));

				a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i), kv, a0);
				a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i), kv, a1);
				a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + i), kv, a2);
				a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q3 + i), kv, a3);
			}
			sc[(size_t)g * ldsc + s] = scale * hsum(a0);
			sc[(size_t)(g + 1) * ldsc + s] = scale * hsum(a1);
			sc[(size_t)(g + 2) * ldsc + s] = scale * hsum(a2);
			sc[(size_t)(g + 3) * ldsc + s] = scale * hsum(a3);
		}
		for (; g < ng; g++)
			sc[(size_t)g * ldsc + s] = scale * dot_h(q + (size_t)g * ldq, kr, n);
	}
}

/*
 * o += p V, 4 positions at a time: the 4 value rows are converted once per
 * 8 columns and serve every head, whose output vector is loaded and stored
 * once per 4 positions.  n not a multiple of 8: the scalar tier.
 */
static void
mix_h(float *o, int ldo, int ng, const float *p, size_t ldp, const uint16_t *v, int np, int n)
{
	int s = 0;

	if (n % 8 != 0) {
		kernels_scalar.mix_h(o, ldo, ng, p, ldp, v, np, n);
		return;
	}
	for (; s + 4 <= np; s += 4) {
		const uint16_t *v0 = v + (size_t)s * n, *v1 = v0 + n, *v2 = v1 + n, *v3 = v2 + n;

		PREFETCH_ROWS(v0, 4 * n, n, s, np);

		for (int i = 0; i < n; i += 8) {
			__m256 x0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((v0 + i))));
			__m256 x1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((v1 + i))));
			__m256 x2 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((v2 + i))));
			__m256 x3 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((v3 + i))));

			for (int g = 0; g < ng; g++) {
				const float *pg = p + g * ldp + s;
				float *og = o + (size_t)g * ldo + i;
				__m256 acc = _mm256_loadu_ps(og);

				acc = _mm256_fmadd_ps(_mm256_set1_ps(pg[0]), x0, acc);
				acc = _mm256_fmadd_ps(_mm256_set1_ps(pg[1]), x1, acc);
				acc = _mm256_fmadd_ps(_mm256_set1_ps(pg[2]), x2, acc);
				acc = _mm256_fmadd_ps(_mm256_set1_ps(pg[3]), x3, acc);
				_mm256_storeu_ps(og, acc);
			}
		}
	}
	for (; s < np; s++)
		for (int g = 0; g < ng; g++)
			axpy_h(o + (size_t)g * ldo, p[g * ldp + s], v + (size_t)s * n, n);
}

/*
 * The delta rule in one pass per row (see avx512.c's delta_step for the
 * algebra), DELTA_ROWS rows at a time with their chains interleaved (why:
 * the same place); k and q are read from L1 for every row.  dk not a
 * multiple of 8 takes the scalar tier.
 */
#define DELTA_ROWS 4

static inline __attribute__((always_inline)) void
delta_rows(float *S, int dk, const int nr, const float *q, const float *k, const float *v,
	   float beta, float decay, float kq, float *o)
{
	__m256 ak[DELTA_ROWS], aq[DELTA_ROWS], dec = _mm256_set1_ps(decay);
	int i, r;

#pragma GCC unroll 4
	for (r = 0; r < nr; r++)
		ak[r] = aq[r] = _mm256_setzero_ps();
	for (i = 0; i < dk; i += 8) {
		__m256 kk = _mm256_loadu_ps(k + i), qq = _mm256_loadu_ps(q + i);

#pragma GCC unroll 4
		for (r = 0; r < nr; r++) {
			__m256 x = _mm256_loadu_ps(S + (size_t)r * dk + i);

			ak[r] = _mm256_fmadd_ps(x, kk, ak[r]);
			aq[r] = _mm256_fmadd_ps(x, qq, aq[r]);
		}
	}
#pragma GCC unroll 4
	for (r = 0; r < nr; r++) {
		float *row = S + (size_t)r * dk, rk, rq, delta;
		__m256 d8;

		rk = decay * hsum(ak[r]);
		rq = decay * hsum(aq[r]);
		delta = beta * (v[r] - rk);
		o[r] = rq + delta * kq;
		d8 = _mm256_set1_ps(delta);
		for (i = 0; i < dk; i += 8)
			_mm256_storeu_ps(
				row + i,
				_mm256_fmadd_ps(_mm256_loadu_ps(k + i), d8,
						_mm256_mul_ps(_mm256_loadu_ps(row + i), dec)));
	}
}

static void
delta_step(float *S, int dk, int dv, const float *q, const float *k, const float *v, float beta,
	   float decay, float *o)
{
	int j;
	float kq;

	if (dk % 8 != 0) {
		kernels_scalar.delta_step(S, dk, dv, q, k, v, beta, decay, o);
		return;
	}
	kq = dot(k, q, dk);
	for (j = 0; j + DELTA_ROWS <= dv; j += DELTA_ROWS)
		delta_rows(S + (size_t)j * dk, dk, DELTA_ROWS, q, k, v + j, beta, decay, kq, o + j);
	for (; j < dv; j++)
		delta_rows(S + (size_t)j * dk, dk, 1, q, k, v + j, beta, decay, kq, o + j);
}

/* exp(t) as avx512.c's exp16, 2^n built in the exponent bits. */
static inline __m256
exp8(__m256 t)
{
	__m256 n, r, p;
	__m256i e;

	t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(EXP_MIN)), _mm256_set1_ps(EXP_MAX));
	n = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(EXP_LOG2E)),
			    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), t);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
	p = _mm256_set1_ps(EXP_C[0]);
	for (int i = 1; i < EXP_N_C; i++)
		p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C[i]));
	p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	/* n is in [-126, 127] after the clamp: 2^n is (n + 127) << 23. */
	e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256
silu8(__m256 v)
{
	return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f),
					      exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
}

/* The tail goes through the same vector code, from a padded copy. */
static void
silu(const float *x, float *y, int n)
{
	float pad[8] = { 0 };
	int i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, silu8(_mm256_loadu_ps(x + i)));
	if (i < n) {
		memcpy(pad, x + i, (size_t)(n - i) * sizeof(float));
		_mm256_storeu_ps(pad, silu8(_mm256_loadu_ps(pad)));
		memcpy(y + i, pad, (size_t)(n - i) * sizeof(float));
	}
}

const struct kernels kernels_avx2 = {
	.name = "avx2",
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
