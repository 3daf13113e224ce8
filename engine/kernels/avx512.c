/*
 * avx512.c - the AVX-512 (F/BW/VL/DQ + VNNI) tier of the compute kernels
 * (Ice Lake, Sapphire Rapids, Zen 4 and later).  The same algorithm as
 * avx2.c, line for line, with 16 output channels per register; read avx2.c's
 * header for the why (what is the same to the letter is in common-simd.h).
 * The differences:
 *
 *   - vpdpbusd multiplies unsigned weight bytes by int8 activations straight
 *     into int32 without saturating, so 8-bit weights need no sign trick and
 *     4-bit blocks no int16 stage;
 *   - output counts that are not a multiple of 16 end with the AVX2 tier
 *     (every VNNI CPU has AVX2), which ends with the scalar one;
 *   - 4- and 8-bit matrices whose groups are a multiple of QKS inputs (the
 *     checkpoint's 128) take a faster path, q8_spans: one activation scale
 *     covers a whole span of QKS inputs, so products stay int32 across the
 *     span and a tile of outputs x tokens is converted and scaled once per
 *     span instead of once per QK block, and Y is read and written once per
 *     span.  Measured against the block path in one interleaved run (best
 *     of 40, one thread): prefill products 1.2-1.6x faster (2048 -> 512
 *     4-bit, 16 and 64 tokens: 1.51x, 1.57x; 2048 -> 2048 8-bit, 64 tokens:
 *     1.18x), decode within noise of it (0.9-1.16x on a busy machine).
 *
 * Any thread.
 */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "exp-poly.h"
#include "prefetch-rows.h"
#include "util.h"

/* For common-simd.h: 16 outputs per register; outputs past the last 16 go to the AVX2 tier
 * (every VNNI CPU has AVX2), which ends with the scalar one. */
#define TIER_WIDTH 16
#define TIER_NEXT  kernels_avx2
#include "common-simd.h"

/*
 * Tokens that share one pass over a span's weights on the span path: 8
 * rather than 4 halves the weight bytes each vpdpbusd pulls from L1/L2
 * (prefill products 1.1-1.4x, best of 60, one thread, 2026-12-03).
 */
#define SPAN_TOK 8

/* The zero points (stored value + zadd: 1 for GPTQ v1, 0 for auto_round) of outputs o..o+15 from a
 * qzeros row. */
static inline __attribute__((always_inline)) __m512i
zeros16(const uint8_t *row, int o, const int bits, int zadd)
{
	if (bits == 8)
		return _mm512_add_epi32(
			_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(row + o))),
			_mm512_set1_epi32(zadd));
	return _mm512_inserti64x4(_mm512_castsi256_si512(zeros8(row, o, bits, zadd)),
				  zeros8(row, o + 8, bits, zadd), 1);
}

static inline __m512
scales16(const uint16_t *row, int o)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + o)));
}

/*
 * Blocks [b0, b0 + nb) (nr qweight rows each, all in one group) for tokens
 * t0..t0+nt-1, outputs [o0, o1) (a multiple of 16):
 * Y += scale * sum_b d_b * (sum q * a - z * sum_b).  As avx2.c's q8_panel.
 */
static inline __attribute__((always_inline)) void
q8_panel(const struct qmat *W, const struct qact *A, int t0, const int nt, int b0, const int nb,
	 const int nr, float *Y, int ldy, int o0, int o1, const int bits)
{
	const __m512i mask = _mm512_set1_epi8(bits == 4 ? 0x0F : 0x03);
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

	for (o = o0; o < o1; o += 16) {
		__m512i zv = zeros16(zrow, o, bits, gptq_zadd(W)), acc[MAX_NB][TOK_TILE];
		__m512 f[TOK_TILE];

#pragma GCC unroll 4
		for (k = 0; k < nb; k++)
#pragma GCC unroll 4
			for (t = 0; t < nt; t++)
				acc[k][t] = _mm512_setzero_si512();
#pragma GCC unroll 4
		for (k = 0; k < nb; k++) {
#pragma GCC unroll 8
			for (r = 0; r < nr; r++) {
				const uint32_t *wp = qw + (size_t)(k * nr + r) * n_out + o;
				__m512i w = _mm512_loadu_si512((const void *)wp);

				if (bits == 4) {
					__m512i lo = _mm512_and_si512(w, mask);
					__m512i hi =
						_mm512_and_si512(_mm512_srli_epi32(w, 4), mask);
#pragma GCC unroll 4
					for (t = 0; t < nt; t++) {
						acc[k][t] = _mm512_dpbusd_epi32(
							acc[k][t], lo,
							_mm512_set1_epi32(aw[k][t][2 * r]));
						acc[k][t] = _mm512_dpbusd_epi32(
							acc[k][t], hi,
							_mm512_set1_epi32(aw[k][t][2 * r + 1]));
					}
				} else if (bits == 8) {
#pragma GCC unroll 4
					for (t = 0; t < nt; t++)
						acc[k][t] = _mm512_dpbusd_epi32(
							acc[k][t], w,
							_mm512_set1_epi32(aw[k][t][r]));
				} else {
#pragma GCC unroll 4
					for (s = 0; s < 4; s++) {
						__m512i c = _mm512_and_si512(
							_mm512_srli_epi32(w, 2 * s), mask);
#pragma GCC unroll 4
						for (t = 0; t < nt; t++)
							acc[k][t] = _mm512_dpbusd_epi32(
								acc[k][t], c,
								_mm512_set1_epi32(
									aw[k][t][4 * r + s]));
					}
				}
			}
		}
#pragma GCC unroll 4
		for (t = 0; t < nt; t++) {
#pragma GCC unroll 4
			for (k = 0; k < nb; k++) {
				__m512i dot = _mm512_sub_epi32(
					acc[k][t],
					_mm512_madd_epi16(zv, _mm512_set1_epi32(sb[k][t])));
				__m512 v = _mm512_cvtepi32_ps(dot);

				if (k == 0)
					f[t] = _mm512_mul_ps(v, _mm512_set1_ps(db[k][t]));
				else
					f[t] = _mm512_fmadd_ps(v, _mm512_set1_ps(db[k][t]), f[t]);
			}
			_mm512_storeu_ps(yt[t] + o, _mm512_fmadd_ps(scales16(srow, o), f[t],
								    _mm512_loadu_ps(yt[t] + o)));
		}
		prefetch_step(&pf, nb * nr);
	}
}

/*
 * Where a span's sums go: row t of the output for output o is at
 * out + t * ldo + (o - col0), and the sums of the spans before it are read
 * from in + t * ldi + (o - col0) (in is NULL for the first span: store).
 * A prefill chunk keeps its partial sums in packed scratch rows and writes
 * Y only from its last span (q8_spans).
 */
struct span_io {
	float *out;
	const float *in;
	size_t ldo, ldi;
	int col0;
};

/*
 * The fast path: one span of QKS inputs from input i0 (nr = QKS * bits / 32
 * qweight rows, one weight group, one activation scale per token) for outputs
 * [o0, o1) (a multiple of 16 * nv) and tokens t0..t0+nt-1.  Products stay
 * int32 over the whole span; then per token and output vector one
 * zero-point correction, one conversion and one fma with scale * d, added to
 * the sums of the spans before (io).  pf, when given,
 * prefetches the next span as this one is consumed (decode).
 *
 * 4-bit words are split as w & 0x0F (even inputs) and w & 0xF0 (odd inputs
 * times 16: vpdpbusd takes the byte as unsigned, at most 240 * 127 * 4 per
 * lane and step, 2.0e6 over a span), so each loaded vector costs two logic
 * operations; the odd sums are shifted down once per span (exact: they are
 * multiples of 16).  That needs two accumulators per output vector and
 * token; a tile of 2 vectors x more than 4 tokens has no registers for them,
 * so it shifts each word instead ((w >> 4) & 0x0F, one more operation per
 * loaded vector, shared by 8 tokens) and keeps one.  8-bit rows of small
 * tiles alternate between two accumulators so the dependency chains stay
 * short; big tiles have chains enough.
 */
static inline __attribute__((always_inline)) void
q8_span(const struct qmat *W, const struct qact *A, int t0, const int nt, int i0,
	const struct span_io *io, int o0, int o1, const int nv, const int bits, struct prefetch *pf)
{
	const int nr = QKS * bits / 32;
	const size_t n_out = (size_t)W->n_out, stride = (size_t)A->n_blk * QK;
	const int g = i0 / W->group_size, b0 = i0 / QK;
	const uint32_t *qw = W->qweight + (size_t)(i0 * bits / 32) * n_out;
	const uint8_t *zrow = (const uint8_t *)(W->qzeros + (size_t)g * zeros_stride(W));
	const uint16_t *srow = W->scales + (size_t)g * n_out;
	const __m512i m4 = _mm512_set1_epi8(0x0F);
	/* 8-bit: a second accumulator per tile only when the tile has too few
	 * independent chains to hide vpdpbusd's latency. */
	const bool split8 = nv * nt < 8;
	/* 4-bit: odd inputs kept x16 in their own accumulators (one logic
	 * operation per weight vector) while registers allow; big tiles shift. */
	const bool split4 = nv * nt <= 8;
	const int8_t *act[SPAN_TOK];
	int32_t st[SPAN_TOK];
	float dt[SPAN_TOK], *yt[SPAN_TOK];
	const float *pt[SPAN_TOK];
	int t, v, r, k, o;

	for (t = 0; t < nt; t++) {
		const int32_t *sum = A->sum + (size_t)(t0 + t) * A->n_blk + b0;

		act[t] = (bits == 4 ? A->qp : A->q) + (size_t)(t0 + t) * stride + (size_t)i0;
		/* z * sum is taken by madd: |sum| <= 128 * 127 fits the low int16. */
		for (st[t] = 0, k = 0; k < QKS / QK; k++)
			st[t] += sum[k];
		st[t] &= 0xFFFF;
		dt[t] = A->d[(size_t)(t0 + t) * A->n_blk + b0];
		yt[t] = io->out + (size_t)(t0 + t) * io->ldo;
		pt[t] = io->in + (size_t)(t0 + t) * io->ldi; /* unused when in is NULL */
	}
	for (o = o0; o < o1; o += 16 * nv) {
		__m512i acc[2][SPAN_TOK], odd[2][SPAN_TOK];

#pragma GCC unroll 4
		for (v = 0; v < nv; v++)
#pragma GCC unroll 8
			for (t = 0; t < nt; t++)
				acc[v][t] = odd[v][t] = _mm512_setzero_si512();
#pragma GCC unroll 32
		for (r = 0; r < nr; r++) {
			__m512i w[2], lo[2], hi[2];

#pragma GCC unroll 4
			for (v = 0; v < nv; v++) {
				w[v] = _mm512_loadu_si512(
					(const void *)(qw + (size_t)r * n_out + o + 16 * v));
				if (bits == 4) {
					lo[v] = _mm512_and_si512(w[v], m4);
					hi[v] = split4 ? _mm512_andnot_si512(m4, w[v])
						       : _mm512_and_si512(
								 _mm512_srli_epi32(w[v], 4), m4);
				}
			}
#pragma GCC unroll 8
			for (t = 0; t < nt; t++) {
				int32_t a0, a1;

				if (bits == 4) {
					memcpy(&a0, act[t] + 8 * r, 4);
					memcpy(&a1, act[t] + 8 * r + 4, 4);
#pragma GCC unroll 4
					for (v = 0; v < nv; v++) {
						acc[v][t] = _mm512_dpbusd_epi32(
							acc[v][t], lo[v], _mm512_set1_epi32(a0));
						if (split4)
							odd[v][t] = _mm512_dpbusd_epi32(
								odd[v][t], hi[v],
								_mm512_set1_epi32(a1));
						else
							acc[v][t] = _mm512_dpbusd_epi32(
								acc[v][t], hi[v],
								_mm512_set1_epi32(a1));
					}
				} else {
					memcpy(&a0, act[t] + 4 * r, 4);
#pragma GCC unroll 4
					for (v = 0; v < nv; v++) {
						if ((r & 1) && split8)
							odd[v][t] = _mm512_dpbusd_epi32(
								odd[v][t], w[v],
								_mm512_set1_epi32(a0));
						else
							acc[v][t] = _mm512_dpbusd_epi32(
								acc[v][t], w[v],
								_mm512_set1_epi32(a0));
					}
				}
			}
		}
#pragma GCC unroll 4
		for (v = 0; v < nv; v++) {
			__m512i zv = zeros16(zrow, o + 16 * v, bits, gptq_zadd(W));
			__m512 sc = scales16(srow, o + 16 * v);

#pragma GCC unroll 8
			for (t = 0; t < nt; t++) {
				size_t c = (size_t)(o - io->col0) + 16 * (size_t)v;
				__m512i dot = acc[v][t];

				if (bits == 4 && split4)
					dot = _mm512_add_epi32(dot,
							       _mm512_srai_epi32(odd[v][t], 4));
				else if (bits == 8 && split8)
					dot = _mm512_add_epi32(dot, odd[v][t]);

				dot = _mm512_sub_epi32(
					dot, _mm512_madd_epi16(zv, _mm512_set1_epi32(st[t])));
				_mm512_storeu_ps(
					yt[t] + c,
					_mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
							_mm512_mul_ps(sc, _mm512_set1_ps(dt[t])),
							io->in == NULL
								? _mm512_setzero_ps()
								: _mm512_loadu_ps(pt[t] + c)));
			}
		}
		if (pf != NULL)
			prefetch_step(pf, nr * nv);
	}
}

/* q8_span with the bits, token and vector counts as constants. */
static void
q8_span_any(const struct qmat *W, const struct qact *A, int t0, int nt, int i0,
	    const struct span_io *io, int o0, int o1, int nv, struct prefetch *pf)
{
	switch ((W->bits == 8) * 16 + (nv - 1) * 8 + (nt - 1)) {
#define SPAN_CASE(B, V, T)                                      \
	case ((B) == 8) * 16 + ((V)-1) * 8 + ((T)-1):           \
		q8_span(W, A, t0, T, i0, io, o0, o1, V, B, pf); \
		break;
#define SPAN_CASES(B, V)   \
	SPAN_CASE(B, V, 1) \
	SPAN_CASE(B, V, 2) \
	SPAN_CASE(B, V, 3) \
	SPAN_CASE(B, V, 4) \
	SPAN_CASE(B, V, 5) \
	SPAN_CASE(B, V, 6) \
	SPAN_CASE(B, V, 7) \
	SPAN_CASE(B, V, 8)
		SPAN_CASES(4, 1)
		SPAN_CASES(4, 2)
		SPAN_CASES(8, 1)
		SPAN_CASES(8, 2)
#undef SPAN_CASES
#undef SPAN_CASE
	}
}

/*
 * Outputs [oc, oe) (a multiple of 16), all tokens, over the n_spans whole
 * spans: span by span, token tile by token tile, 32 outputs at a time (16 at
 * the end).  The sums stay in Y, or with S in S's packed rows (oe - oc floats
 * apart) until the last span writes Y.  A prefill chunk is revisited once per
 * span, and Y's own rows are ldy apart: at ldy = 12288 (DeltaNet's input
 * projection) a 1 MiB chunk of them fell on a quarter of L2's sets and went
 * to L3 every span.  Decode prefetches the next span as it goes.
 */
static void
q8_spans(const struct qmat *W, const struct qact *A, int n_spans, float *Y, int ldy, float *S,
	 int oc, int oe)
{
	const int nr = QKS * W->bits / 32, n_tok = A->n_tok;
	/* Two output vectors per step when tokens share each weight load;
	 * decode streams better (measured) with one. */
	const int nv = n_tok == 1 ? 1 : 2;
	const int o2 = oc + (oe - oc) / (16 * nv) * (16 * nv);
	struct prefetch pf;
	int s, t0, nt;

	for (s = 0; s < n_spans; s++) {
		struct span_io io = { Y + oc, Y + oc, (size_t)ldy, (size_t)ldy, oc };

		if (S != NULL && s > 0) {
			io.in = S;
			io.ldi = (size_t)(oe - oc);
		}
		if (S != NULL && s < n_spans - 1) {
			io.out = S;
			io.ldo = (size_t)(oe - oc);
		}
		if (s == 0)
			io.in = NULL;
		prefetch_init(&pf, W, (s + 1) * nr, MIN((s + 2) * nr, W->n_in * W->bits / 32), oc,
			      oe, n_tok);
		for (t0 = 0; t0 < n_tok; t0 += SPAN_TOK) {
			nt = MIN(SPAN_TOK, n_tok - t0);
			if (o2 > oc)
				q8_span_any(W, A, t0, nt, s * QKS, &io, oc, o2, nv, &pf);
			if (oe > o2)
				q8_span_any(W, A, t0, nt, s * QKS, &io, o2, oe, 1, &pf);
		}
	}
}

static void
matmul_q8(const struct qmat *W, const struct qact *A, float *Y, int ldy, int o0, int o1)
{
	int ov1 = o0 + (o1 - o0) / 16 * 16, chunk, oc, oe, t0, b, n_spans = 0;
	float *S = NULL;
	size_t sb;

	/* Whole QKS spans take the fast path; the rest (other group sizes,
	 * 2-bit weights, a short last span) goes block by block. */
	if ((W->bits == 4 || W->bits == 8) && qmat_q8_span(W) == QKS)
		n_spans = W->n_in / QKS;
	if (ov1 > o0) {
		chunk = chunk_outputs(A->n_tok, ov1 - o0, 32);
		/* Packed sums when a chunk's rows of Y are not contiguous and the
		 * thread was lent a scratch buffer that holds them. */
		if (n_spans * QKS == W->n_in && A->n_tok > TOK_TILE && chunk < ldy &&
		    (S = kernels_y_scratch(&sb)) != NULL &&
		    (size_t)chunk * (size_t)A->n_tok * sizeof(float) > sb)
			S = NULL;
		for (oc = o0; oc < ov1; oc += chunk) {
			oe = MIN(oc + chunk, ov1);
			if (n_spans > 0)
				q8_spans(W, A, n_spans, Y, ldy, S, oc, oe);
			else
				zero_tile(Y, ldy, 0, A->n_tok, oc, oe);
			for (b = n_spans * (QKS / QK); b < A->n_blk; b++) {
				for (t0 = 0; t0 < A->n_tok; t0 += TOK_TILE)
					q8_panel_any(W, A, t0, MIN(TOK_TILE, A->n_tok - t0), b, 1,
						     Y, ldy, oc, oe);
			}
		}
	}
	if (ov1 < o1)
		kernels_avx2.matmul_q8(W, A, Y, ldy, ov1, o1);
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
	const __m512i mask = _mm512_set1_epi32((1 << bits) - 1);
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
	for (o = o0; o < o1; o += 16) {
		__m512i zv = zeros16(zrow, o, bits, gptq_zadd(W));
		__m512 sc = scales16(srow, o), acc[TOK_TILE];

#pragma GCC unroll 4
		for (t = 0; t < nt; t++)
			acc[t] = _mm512_setzero_ps();
		for (r = 0; r < nr; r++) {
			__m512i w = _mm512_loadu_si512((const void *)(qw + r * n_out + o));

#pragma GCC unroll 16
			for (j = 0; j < per; j++) {
				__m512 q = _mm512_cvtepi32_ps(_mm512_sub_epi32(
					_mm512_and_si512(_mm512_srli_epi32(w, j * bits), mask),
					zv));

#pragma GCC unroll 4
				for (t = 0; t < nt; t++)
					acc[t] = _mm512_fmadd_ps(
						q, _mm512_set1_ps(xt[t][r * per + j]), acc[t]);
			}
		}
#pragma GCC unroll 4
		for (t = 0; t < nt; t++)
			_mm512_storeu_ps(yt[t] + o,
					 _mm512_fmadd_ps(sc, acc[t], _mm512_loadu_ps(yt[t] + o)));
		prefetch_step(&pf, nr);
	}
}

/* 16 weights of a row-major float-format matrix as float. */
static inline __attribute__((always_inline)) __m512
load_w16(const void *w, size_t k, const enum wfmt fmt)
{
	if (fmt == WFMT_F16)
		return _mm512_cvtph_ps(
			_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k)));
	if (fmt == WFMT_BF16)
		return _mm512_castsi512_ps(
			_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
						  (const __m256i *)((const uint16_t *)w + k))),
					  16));
	return _mm512_loadu_ps((const float *)w + k);
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
	int n = W->n_in, n16 = n / 16 * 16, h = (o1 - o0) / 4, o, i, k;

	for (o = o0; o < o0 + h; o++) {
		size_t row[4];
		__m512 acc[4];
		float tail[4] = { 0 };

		for (k = 0; k < 4; k++) {
			row[k] = (size_t)(o + k * h) * n;
			acc[k] = _mm512_setzero_ps();
		}
		for (i = 0; i < n16; i += 16) {
			__m512 xv = _mm512_loadu_ps(x + i);

#pragma GCC unroll 4
			for (k = 0; k < 4; k++)
				acc[k] = _mm512_fmadd_ps(load_w16(W->w, row[k] + i, fmt), xv,
							 acc[k]);
		}
		for (; i < n; i++)
			for (k = 0; k < 4; k++)
				tail[k] += load_w1(W->w, row[k] + i, fmt) * x[i];
		for (k = 0; k < 4; k++)
			y[o + k * h] = _mm512_reduce_add_ps(acc[k]) + tail[k];
	}
	return o0 + 4 * h;
}

/* Row-major float weights: rows in order, each read once per token tile. */
static inline __attribute__((always_inline)) void
float_rows(const struct qmat *W, const float *X, int n_tok, float *Y, int ldy, int o0, int o1,
	   const enum wfmt fmt)
{
	int n = W->n_in, n16 = n / 16 * 16, t0, nt, t, o, i;

	if (n_tok == 1)
		o0 = float_rows4(W, X, Y, o0, o1, fmt);
	for (t0 = 0; t0 < n_tok; t0 += TOK_TILE) {
		nt = MIN(TOK_TILE, n_tok - t0);
		for (o = o0; o < o1; o++) {
			size_t row = (size_t)o * n;
			const float *x = X + (size_t)t0 * n;
			__m512 acc[TOK_TILE];
			float tail[TOK_TILE] = { 0 };

			for (t = 0; t < nt; t++)
				acc[t] = _mm512_setzero_ps();
			for (i = 0; i < n16; i += 16) {
				__m512 w = load_w16(W->w, row + i, fmt);

				for (t = 0; t < nt; t++)
					acc[t] = _mm512_fmadd_ps(
						w, _mm512_loadu_ps(x + (size_t)t * n + i), acc[t]);
			}
			for (; i < n; i++) {
				float w = load_w1(W->w, row + i, fmt);

				for (t = 0; t < nt; t++)
					tail[t] += w * x[(size_t)t * n + i];
			}
			for (t = 0; t < nt; t++)
				Y[(size_t)(t0 + t) * ldy + o] =
					_mm512_reduce_add_ps(acc[t]) + tail[t];
		}
	}
}

/* max |x| over one QK block (NaN ignored, as fmaxf in scalar.c). */
static float
block_amax(const float *x)
{
	return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x)),
						  _mm512_abs_ps(_mm512_loadu_ps(x + 16))));
}

/*
 * One QK block with its super-block's scale d: q = x / d rounded half to
 * even (exactly as scalar.c, so tiers agree bit for bit), the sum, and the
 * permuted copy (order 0 2 4 6 1 3 5 7 in each run of 8, see scalar.c).
 */
static void
quantize_block(const float *x, float d, int8_t *q, int8_t *qp, float *d_out, int32_t *sum_out)
{
	const __m128i shuf = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
	__m512 v[2];
	__m512i iv[2];
	int k;

	for (k = 0; k < 2; k++)
		v[k] = _mm512_loadu_ps(x + 16 * k);
	*d_out = d;
	if (d == 0) {
		memset(q, 0, QK);
		memset(qp, 0, QK);
		*sum_out = 0;
		return;
	}
	for (k = 0; k < 2; k++) {
		__m512 r = _mm512_roundscale_ps(_mm512_div_ps(v[k], _mm512_set1_ps(d)),
						_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
		__m128i b;

		r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-127)), _mm512_set1_ps(127));
		iv[k] = _mm512_cvttps_epi32(r);
		/* vpmovdb truncates; the values already fit int8. */
		b = _mm512_cvtepi32_epi8(iv[k]);
		_mm_storeu_si128((__m128i *)(q + 16 * k), b);
		_mm_storeu_si128((__m128i *)(qp + 16 * k), _mm_shuffle_epi8(b, shuf));
	}
	*sum_out = _mm512_reduce_add_epi32(_mm512_add_epi32(iv[0], iv[1]));
}

static float
dot(const float *a, const float *b, int n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	float s;
	int i = 0;

	for (; i + 64 <= n; i += 64) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
		s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
		s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
	}
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
	s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void
axpy(float *y, float a, const float *x, int n)
{
	__m512 va = _mm512_set1_ps(a);
	int i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(
			y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

static void
scale(float *y, float a, int n)
{
	__m512 va = _mm512_set1_ps(a);
	int i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_mul_ps(va, _mm512_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] *= a;
}

static float
dot_h(const float *a, const uint16_t *x, int n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0;
	float s;
	int i = 0;

	for (; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i),
				     _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))),
				     s0);
		s1 = _mm512_fmadd_ps(
			_mm512_loadu_ps(a + i + 16),
			_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16))), s1);
	}
	s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
	if (i < n)
		s += kernels_avx2.dot_h(a + i, x + i, n - i);
	return s;
}

static void
axpy_h(float *y, float a, const uint16_t *x, int n)
{
	__m512 va = _mm512_set1_ps(a);
	int i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_fmadd_ps(va,
							_mm512_cvtph_ps(_mm256_loadu_si256(
								(const __m256i *)(x + i))),
							_mm512_loadu_ps(y + i)));
	if (i < n)
		kernels_avx2.axpy_h(y + i, a, x + i, n - i);
}

static void
to_half(uint16_t *y, const float *x, int n)
{
	int i = 0;

	for (; i + 16 <= n; i += 16)
		_mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i),
									_MM_FROUND_TO_NEAREST_INT));
	if (i < n)
		kernels_avx2.to_half(y + i, x + i, n - i);
}

/* The 8 horizontal sums of a0..a7, in order, in one vector. */
static inline __m256
hsum8(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5, __m512 a6, __m512 a7)
{
	/* Pairs of 256-bit halves, then 128-bit quarters: one 128-bit lane per
	 * vector (c0: a0..a3, c4: a4..a7), then within the lanes. */
	__m512 b01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44),
				   _mm512_shuffle_f32x4(a0, a1, 0xEE));
	__m512 b23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44),
				   _mm512_shuffle_f32x4(a2, a3, 0xEE));
	__m512 b45 = _mm512_add_ps(_mm512_shuffle_f32x4(a4, a5, 0x44),
				   _mm512_shuffle_f32x4(a4, a5, 0xEE));
	__m512 b67 = _mm512_add_ps(_mm512_shuffle_f32x4(a6, a7, 0x44),
				   _mm512_shuffle_f32x4(a6, a7, 0xEE));
	__m512 c0 = _mm512_add_ps(_mm512_shuffle_f32x4(b01, b23, 0x88),
				  _mm512_shuffle_f32x4(b01, b23, 0xDD));
	__m512 c4 = _mm512_add_ps(_mm512_shuffle_f32x4(b45, b67, 0x88),
				  _mm512_shuffle_f32x4(b45, b67, 0xDD));
	/* Lane j: [a_j, a_j+4, a_j, a_j+4] partial sums, then complete. */
	__m512 d = _mm512_add_ps(_mm512_unpacklo_ps(c0, c4), _mm512_unpackhi_ps(c0, c4));
	__m512 e = _mm512_add_ps(d, _mm512_permute_ps(d, 0x4E));
	const __m512i idx = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 13, 9, 5, 1, 12, 8, 4, 0);

	return _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, e));
}

/*
 * Scores of nh heads (8 or 4; q: rows ldq apart) over all np key rows: each
 * 16 halves of a row converted once for the nh heads, the sums in registers
 * (nh is a constant at both call sites, so a[] is unrolled into them), for 8
 * heads one transposing reduction per row.
 */
static inline __attribute__((always_inline)) void
scores_rows(const float *q, int ldq, const int nh, const uint16_t *k, int np, int n, float scale,
	    float *sc, size_t ldsc)
{
	for (int s = 0; s < np; s++) {
		const uint16_t *kr = k + (size_t)s * n;
		__m512 a[8];

		PREFETCH_ROWS(kr, n, n, s, np);
#pragma GCC unroll 8
		for (int j = 0; j < nh; j++)
			a[j] = _mm512_setzero_ps();
		for (int i = 0; i < n; i += 16) {
			__m512 kv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kr + i)));

#pragma GCC unroll 8
			for (int j = 0; j < nh; j++)
				a[j] = _mm512_fmadd_ps(_mm512_loadu_ps(q + (size_t)j * ldq + i), kv,
						       a[j]);
		}
		if (nh == 8) {
			float t[8];

			_mm256_storeu_ps(t, _mm256_mul_ps(hsum8(a[0], a[1], a[2], a[3], a[4], a[5],
								a[6], a[7]),
							  _mm256_set1_ps(scale)));
			for (int j = 0; j < 8; j++)
				sc[(size_t)j * ldsc + s] = t[j];
		} else {
#pragma GCC unroll 8
			for (int j = 0; j < nh; j++)
				sc[(size_t)j * ldsc + s] = scale * _mm512_reduce_add_ps(a[j]);
		}
	}
}

/*
 * Blocks of 8 heads (the model's group), then of 4, then single heads, each
 * block one pass over the key rows.  n not a multiple of 16: the scalar tier.
 */
static void
scores_h(const float *q, int ldq, int ng, const uint16_t *k, int np, int n, float scale, float *sc,
	 size_t ldsc)
{
	int g = 0;

	if (n % 16 != 0) {
		kernels_scalar.scores_h(q, ldq, ng, k, np, n, scale, sc, ldsc);
		return;
	}
	for (; g + 8 <= ng; g += 8)
		scores_rows(q + (size_t)g * ldq, ldq, 8, k, np, n, scale, sc + g * ldsc, ldsc);
	for (; g + 4 <= ng; g += 4)
		scores_rows(q + (size_t)g * ldq, ldq, 4, k, np, n, scale, sc + g * ldsc, ldsc);
	for (; g < ng; g++)
		for (int s = 0; s < np; s++)
			sc[g * ldsc + s] = scale * dot_h(q + (size_t)g * ldq, k + (size_t)s * n, n);
}

/*
 * o += p V, 8 positions at a time: the 8 value rows are converted once per
 * 16 columns and serve every head, whose output vector is loaded and stored
 * once per 8 positions; two chains of 4 fma each keep the latency hidden.
 * n not a multiple of 16: the scalar tier.
 */
static void
mix_h(float *o, int ldo, int ng, const float *p, size_t ldp, const uint16_t *v, int np, int n)
{
	int s = 0;

	if (n % 16 != 0) {
		kernels_scalar.mix_h(o, ldo, ng, p, ldp, v, np, n);
		return;
	}
	for (; s + 8 <= np; s += 8) {
		const uint16_t *v0 = v + (size_t)s * n;

		PREFETCH_ROWS(v0, 8 * n, n, s, np);
		for (int i = 0; i < n; i += 16) {
			__m512 x[8];

#pragma GCC unroll 8
			for (int j = 0; j < 8; j++)
				x[j] = _mm512_cvtph_ps(_mm256_loadu_si256(
					(const __m256i *)(v0 + (size_t)j * n + i)));
			for (int g = 0; g < ng; g++) {
				const float *pg = p + g * ldp + s;
				float *og = o + (size_t)g * ldo + i;
				__m512 a = _mm512_mul_ps(_mm512_set1_ps(pg[0]), x[0]);
				__m512 b = _mm512_mul_ps(_mm512_set1_ps(pg[1]), x[1]);

				a = _mm512_fmadd_ps(_mm512_set1_ps(pg[2]), x[2], a);
				b = _mm512_fmadd_ps(_mm512_set1_ps(pg[3]), x[3], b);
				a = _mm512_fmadd_ps(_mm512_set1_ps(pg[4]), x[4], a);
				b = _mm512_fmadd_ps(_mm512_set1_ps(pg[5]), x[5], b);
				a = _mm512_fmadd_ps(_mm512_set1_ps(pg[6]), x[6], a);
				b = _mm512_fmadd_ps(_mm512_set1_ps(pg[7]), x[7], b);
				_mm512_storeu_ps(og, _mm512_add_ps(_mm512_loadu_ps(og),
								   _mm512_add_ps(a, b)));
			}
		}
	}
	for (; s < np; s++)
		for (int g = 0; g < ng; g++)
			axpy_h(o + (size_t)g * ldo, p[g * ldp + s], v + (size_t)s * n, n);
}

/*
 * The delta rule in one pass per row: with r the old row, S q and S k of the
 * decayed row are decay (r q) and decay (r k), and after the update
 * o = decay (r q) + delta (k q).  k and q stay in registers for dk <= 128;
 * other sizes take the AVX2 tier.
 *
 * A row is one long dependency chain (dk / 16 fma, two horizontal sums, the
 * delta, the update): one row at a time ran at about 75 cycles per row, the
 * chain's latency, because the scheduler fills before the next row's
 * independent work is reached.  So rows go DELTA_ROWS at a time, their
 * chains interleaved in the code; each row's operations and their order are
 * unchanged, so the results are too.
 */
#define DELTA_ROWS 4

static inline __attribute__((always_inline)) void
delta_rows(float *S, int dk, const int nr, const __m512 *kv, const __m512 *qv, const float *v,
	   float beta, float decay, float kq, float *o)
{
	const int n = dk / 16;
	__m512 ak[DELTA_ROWS], aq[DELTA_ROWS], dec = _mm512_set1_ps(decay);
	int i, r;

#pragma GCC unroll 4
	for (r = 0; r < nr; r++)
		ak[r] = aq[r] = _mm512_setzero_ps();
	for (i = 0; i < n; i++)
#pragma GCC unroll 4
		for (r = 0; r < nr; r++) {
			__m512 x = _mm512_loadu_ps(S + (size_t)r * dk + 16 * i);

			ak[r] = _mm512_fmadd_ps(x, kv[i], ak[r]);
			aq[r] = _mm512_fmadd_ps(x, qv[i], aq[r]);
		}
#pragma GCC unroll 4
	for (r = 0; r < nr; r++) {
		float *row = S + (size_t)r * dk, rk, rq, delta;
		__m512 dv16;

		rk = decay * _mm512_reduce_add_ps(ak[r]);
		rq = decay * _mm512_reduce_add_ps(aq[r]);
		delta = beta * (v[r] - rk);
		o[r] = rq + delta * kq;
		dv16 = _mm512_set1_ps(delta);
		for (i = 0; i < n; i++)
			_mm512_storeu_ps(
				row + 16 * i,
				_mm512_fmadd_ps(kv[i], dv16,
						_mm512_mul_ps(_mm512_loadu_ps(row + 16 * i), dec)));
	}
}

static void
delta_step(float *S, int dk, int dv, const float *q, const float *k, const float *v, float beta,
	   float decay, float *o)
{
	__m512 kv[8], qv[8];
	int n = dk / 16, i, j;
	float kq;

	if (dk % 16 != 0 || n > 8) {
		kernels_avx2.delta_step(S, dk, dv, q, k, v, beta, decay, o);
		return;
	}
	for (i = 0; i < n; i++) {
		kv[i] = _mm512_loadu_ps(k + 16 * i);
		qv[i] = _mm512_loadu_ps(q + 16 * i);
	}
	kq = dot(k, q, dk);
	for (j = 0; j + DELTA_ROWS <= dv; j += DELTA_ROWS)
		delta_rows(S + (size_t)j * dk, dk, DELTA_ROWS, kv, qv, v + j, beta, decay, kq,
			   o + j);
	for (; j < dv; j++)
		delta_rows(S + (size_t)j * dk, dk, 1, kv, qv, v + j, beta, decay, kq, o + j);
}

/*
 * exp(t) as exp-poly.h describes, 2^n applied by scalef.
 */
static inline __m512
exp16(__m512 t)
{
	__m512 n, r, p;

	t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(EXP_MIN)), _mm512_set1_ps(EXP_MAX));
	n = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(EXP_LOG2E)),
				 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), t);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
	p = _mm512_set1_ps(EXP_C[0]);
	for (int i = 1; i < EXP_N_C; i++)
		p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C[i]));
	p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
	return _mm512_scalef_ps(p, n);
}

static void
silu(const float *x, float *y, int n)
{
	const __m512 one = _mm512_set1_ps(1.0f);

	for (int i = 0; i < n; i += 16) {
		__mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
		__m512 v = _mm512_maskz_loadu_ps(m, x + i);

		_mm512_mask_storeu_ps(
			y + i, m,
			_mm512_div_ps(v, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(),
										v)))));
	}
}

const struct kernels kernels_avx512 = {
	.name = "avx512",
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
