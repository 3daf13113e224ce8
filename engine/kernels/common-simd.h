/*
 * common-simd.h - the parts of the AVX2 and AVX-512 kernel tiers that are the
 * same in both, written once: the GPTQ bookkeeping (zero points, the panel
 * prefetch, output chunks), the dispatchers that turn run-time bit and token
 * counts into constants (q8_panel_any, f32_panel_any), the float-activation
 * product (matmul_f32) and activation quantization (quantize_act).  Private
 * to avx2.c and avx512.c, each of which includes it once and compiles it with
 * its own ISA flags; any thread.
 *
 * The including file defines, before the #include:
 *   TIER_WIDTH  outputs per register: 8 (AVX2) or 16 (AVX-512)
 *   TIER_NEXT   the kernel table that takes the outputs past the last whole
 *               register (kernels_scalar, kernels_avx2)
 * and, after it, the ISA's own q8_panel, f32_panel, float_rows, block_amax
 * and quantize_block, declared below with what each must do.  The code here
 * uses only AVX2 intrinsics, which every AVX-512 CPU also has.
 */
#ifndef QNEXT_COMMON_SIMD_H
#define QNEXT_COMMON_SIMD_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

#if !defined(TIER_WIDTH) || !defined(TIER_NEXT)
#error "define TIER_WIDTH and TIER_NEXT before including common-simd.h"
#endif

/* Tokens that share one pass over the weights (AVX2: two registers per token). */
#define TOK_TILE           4
/* Most QK blocks in one decode step (8 qweight rows of 2-bit weights). */
#define MAX_NB             4
/* Prefetch the next panel when one panel spans at most this many bytes. */
#define PANEL_PREFETCH_MAX (64 * 1024)

static size_t
zeros_stride(const struct qmat *W)
{
	return ((size_t)W->n_out * (size_t)W->bits + 31) / 32; /* as scalar.c */
}

/*
 * The zero points (stored value + zadd: 1 for GPTQ v1, 0 for auto_round) of
 * outputs o..o+7 as int32, from the group's qzeros row.  o need not be word
 * aligned; reads only the bytes holding those outputs.
 */
static inline __attribute__((always_inline)) __m256i
zeros8(const uint8_t *row, int o, const int bits, int zadd)
{
	const __m256i one = _mm256_set1_epi32(zadd);
	uint64_t v;
	uint32_t lo;
	size_t b0;

	if (bits == 8) {
		memcpy(&v, row + o, 8);
		return _mm256_add_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)v)), one);
	}
	if (bits == 4) {
		b0 = (size_t)o / 2;
		memcpy(&lo, row + b0, 4);
		v = lo;
		if (o & 1)
			v = (v | (uint64_t)row[b0 + 4] << 32) >> 4;
		return _mm256_add_epi32(
			_mm256_and_si256(
				_mm256_srlv_epi32(_mm256_set1_epi32((int)(uint32_t)v),
						  _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
				_mm256_set1_epi32(15)),
			one);
	}
	b0 = (size_t)o / 4;
	v = (uint64_t)row[b0] | (uint64_t)row[b0 + 1] << 8;
	if (o & 3)
		v = (v | (uint64_t)row[b0 + 2] << 16) >> (2 * (o & 3));
	return _mm256_add_epi32(
		_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)(uint32_t)v),
						   _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
				 _mm256_set1_epi32(3)),
		one);
}

/*
 * Walks the next panel (rows [row, row_end) of the output range) in address
 * order, one prefetch per 64 bytes, as fast as the current panel is consumed.
 * Addresses are kept as integers: the walk may step past the matrix.  Off
 * for prefill (nt > 1): its token tiles re-read each panel from L1.
 */
struct prefetch {
	uintptr_t p, seg_end; /* next line to fetch, end of its row's segment */
	size_t row_bytes, seg_bytes;
	int rows_left;
};

static void
prefetch_init(struct prefetch *p, const struct qmat *W, int row, int row_end, int o0, int o1,
	      int nt)
{
	p->row_bytes = (size_t)W->n_out * 4;
	p->seg_bytes = (size_t)(o1 - o0) * 4;
	p->p = (uintptr_t)W->qweight + (size_t)row * p->row_bytes + (size_t)o0 * 4;
	p->seg_end = p->p + p->seg_bytes;
	p->rows_left = row_end - row;
	if (nt > 1 || (size_t)p->rows_left * p->seg_bytes > PANEL_PREFETCH_MAX)
		p->rows_left = 0; /* big panels stream well on their own */
}

static inline void
prefetch_step(struct prefetch *p, int lines)
{
	for (; lines > 0 && p->rows_left > 0; lines--) {
		_mm_prefetch((const char *)p->p, _MM_HINT_T1);
		if ((p->p += 64) >= p->seg_end) {
			p->p = p->seg_end - p->seg_bytes + p->row_bytes;
			p->seg_end += p->row_bytes;
			p->rows_left--;
		}
	}
}

/*
 * Outputs per pass: all of them for decode; for prefill a chunk whose Y rows
 * for every token stay in L2 while each weight panel of the chunk, read once,
 * is applied from L1 to one token tile after another.
 */
static int
chunk_outputs(int n_tok, int n, int width)
{
	int c = (int)(kernels_chunk_y_bytes() / sizeof(float)) / n_tok;

	if (n_tok <= TOK_TILE)
		return n;
	c -= c % width;
	return MIN(MAX(c, width), n);
}

static void
zero_tile(float *Y, int ldy, int t0, int nt, int o0, int o1)
{
	int t;

	for (t = t0; t < t0 + nt; t++)
		memset(Y + (size_t)t * ldy + o0, 0, (size_t)(o1 - o0) * sizeof(float));
}

static inline __attribute__((always_inline)) float
load_w1(const void *w, size_t k, const enum wfmt fmt)
{
	if (fmt == WFMT_F16)
		return fp16_to_f32(((const uint16_t *)w)[k]);
	if (fmt == WFMT_BF16)
		return bf16_to_f32(((const uint16_t *)w)[k]);
	return ((const float *)w)[k];
}

/* Block b of x (n inputs), through pad when it is the short last one. */
static const float *
block_in(const float *x, int n, int b, float pad[QK])
{
	const float *xb = x + (size_t)b * QK;

	if (n - b * QK >= QK)
		return xb;
	memset(pad, 0, QK * sizeof(float));
	memcpy(pad, xb, (size_t)(n - b * QK) * sizeof(float));
	return pad;
}

/*
 * The start of q8_panel: the activations of blocks [b0, b0 + nb) for tokens
 * t0..t0+nt-1 as the int32 words their qweight rows need (aw: 4-bit from
 * the permuted copy, 2-bit regrouped so word 4r + s holds the inputs of
 * shift s in row r), and each block's sum and scale.
 */
static inline __attribute__((always_inline)) void
panel_acts(const struct qact *A, int t0, const int nt, int b0, const int nb, const int bits,
	   int32_t aw[MAX_NB][TOK_TILE][8], int32_t sb[MAX_NB][TOK_TILE],
	   float db[MAX_NB][TOK_TILE])
{
	const __m128i shuf2 = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
	const size_t stride = (size_t)A->n_blk * QK;
	int k, t, r;

	for (k = 0; k < nb; k++) {
		for (t = 0; t < nt; t++) {
			size_t qi = (size_t)(t0 + t) * stride + (size_t)(b0 + k) * QK;
			size_t bi = (size_t)(t0 + t) * A->n_blk + (size_t)(b0 + k);

			if (bits == 4) {
				memcpy(aw[k][t], A->qp + qi, QK);
			} else if (bits == 8) {
				memcpy(aw[k][t], A->q + qi, QK);
			} else {
				for (r = 0; r < 2; r++) {
					__m128i v = _mm_loadu_si128(
						(const __m128i *)(A->q + qi + 16 * r));

					_mm_storeu_si128((__m128i *)&aw[k][t][4 * r],
							 _mm_shuffle_epi8(v, shuf2));
				}
			}
			/* For z * sum by madd: the sum in each lane's low int16. */
			sb[k][t] = A->sum[bi] & 0xFFFF;
			db[k][t] = A->d[bi];
		}
	}
}

/*
 * Defined by the including tier (avx2.c's comments say what they compute).
 * q8_panel: blocks [b0, b0 + nb) of nr qweight rows each, tokens t0..t0+nt-1,
 * outputs [o0, o1) (a multiple of TIER_WIDTH), quantized activations.
 * f32_panel: qweight rows [r0, r0 + nr) of group g with float activations.
 * float_rows: row-major float weights (fmt a constant), all tokens.
 * block_amax, quantize_block: one QK block of quantize_act.
 */
static inline __attribute__((always_inline)) void
q8_panel(const struct qmat *W, const struct qact *A, int t0, const int nt, int b0, const int nb,
	 const int nr, float *Y, int ldy, int o0, int o1, const int bits);
static inline __attribute__((always_inline)) void f32_panel(const struct qmat *W, const float *X,
							    int t0, const int nt, int g, int r0,
							    int nr, float *Y, int ldy, int o0,
							    int o1, const int bits);
static inline __attribute__((always_inline)) void float_rows(const struct qmat *W, const float *X,
							     int n_tok, float *Y, int ldy, int o0,
							     int o1, const enum wfmt fmt);
static float block_amax(const float *x);
static void quantize_block(const float *x, float d, int8_t *q, int8_t *qp, float *d_out,
			   int32_t *sum_out);

/* The cases of q8_panel_any and f32_panel_any for B-bit weights, 1 to TOK_TILE tokens
 * (each defines PANEL_CASE(B, T) for its own call). */
#define PANEL_CASES(B)   \
	PANEL_CASE(B, 1) \
	PANEL_CASE(B, 2) \
	PANEL_CASE(B, 3) \
	PANEL_CASE(B, 4)

/*
 * q8_panel with bits, token, block and row counts as constants, so its loops
 * unroll.  A full block has `bits` rows; only the matrix's last can be short.
 */
static void
q8_panel_any(const struct qmat *W, const struct qact *A, int t0, int nt, int b0, int nb, float *Y,
	     int ldy, int o0, int o1)
{
	int nr = MIN(QK, W->n_in - b0 * QK) * W->bits / 32, t;

	if (nr != W->bits) {
		for (t = t0; t < t0 + nt; t++) {
			if (W->bits == 2)
				q8_panel(W, A, t, 1, b0, 1, nr, Y, ldy, o0, o1, 2);
			else if (W->bits == 4)
				q8_panel(W, A, t, 1, b0, 1, nr, Y, ldy, o0, o1, 4);
			else
				q8_panel(W, A, t, 1, b0, 1, nr, Y, ldy, o0, o1, 8);
		}
		return;
	}
	switch (W->bits * 8 + nt) {
#define PANEL_CASE(B, T)                                            \
	case (B)*8 + (T):                                           \
		q8_panel(W, A, t0, T, b0, 1, B, Y, ldy, o0, o1, B); \
		break;
		PANEL_CASES(2)
		PANEL_CASES(4)
		PANEL_CASES(8)
#undef PANEL_CASE
	}
}

static void
f32_panel_any(const struct qmat *W, const float *X, int t0, int nt, int g, int r0, int nr, float *Y,
	      int ldy, int o0, int o1)
{
	switch (W->bits * 8 + nt) {
#define PANEL_CASE(B, T)                                              \
	case (B)*8 + (T):                                             \
		f32_panel(W, X, t0, T, g, r0, nr, Y, ldy, o0, o1, B); \
		break;
		PANEL_CASES(2)
		PANEL_CASES(4)
		PANEL_CASES(8)
#undef PANEL_CASE
	}
}
#undef PANEL_CASES

static void
gptq_f32(const struct qmat *W, const float *X, int n_tok, float *Y, int ldy, int o0, int o1)
{
	int per = 32 / W->bits, ov1 = o0 + (o1 - o0) / TIER_WIDTH * TIER_WIDTH, chunk, oc, oe, t0,
	    g, r, re;

	if (ov1 > o0) {
		chunk = chunk_outputs(n_tok, ov1 - o0, TIER_WIDTH);
		for (oc = o0; oc < ov1; oc += chunk) {
			oe = MIN(oc + chunk, ov1);
			zero_tile(Y, ldy, 0, n_tok, oc, oe);
			for (g = 0; g < W->n_groups; g++) {
				re = MIN((g + 1) * W->group_size, W->n_in) / per;
				/* Panels of one QK block (bits rows), as matmul_q8. */
				for (r = g * W->group_size / per; r < re; r += W->bits)
					for (t0 = 0; t0 < n_tok; t0 += TOK_TILE)
						f32_panel_any(W, X, t0, MIN(TOK_TILE, n_tok - t0),
							      g, r, MIN(W->bits, re - r), Y, ldy,
							      oc, oe);
			}
		}
	}
	if (ov1 < o1)
		TIER_NEXT.matmul_f32(W, X, n_tok, Y, ldy, ov1, o1);
}

static void
matmul_f32(const struct qmat *W, const float *X, int n_tok, float *Y, int ldy, int o0, int o1)
{
	switch (W->fmt) {
	case WFMT_F32:
		float_rows(W, X, n_tok, Y, ldy, o0, o1, WFMT_F32);
		break;
	case WFMT_F16:
		float_rows(W, X, n_tok, Y, ldy, o0, o1, WFMT_F16);
		break;
	case WFMT_BF16:
		float_rows(W, X, n_tok, Y, ldy, o0, o1, WFMT_BF16);
		break;
	case WFMT_GPTQ:
		/* Group boundaries inside a qweight word: rare, leave to scalar. */
		if (W->group_size % (32 / W->bits) != 0)
			kernels_scalar.matmul_f32(W, X, n_tok, Y, ldy, o0, o1);
		else
			gptq_f32(W, X, n_tok, Y, ldy, o0, o1);
		break;
	}
}

static void
quantize_act(const float *X, int n_tok, int n, struct qact *A)
{
	int n_blk = (n + QK - 1) / QK, t, b, k;

	A->n = n;
	A->n_tok = n_tok;
	A->n_blk = n_blk;
	for (t = 0; t < n_tok; t++) {
		const float *x = X + (size_t)t * n;
		size_t qo = (size_t)t * n_blk * QK, bo = (size_t)t * n_blk;
		float pad[QK], d = 0;

		for (b = 0; b < n_blk; b++) {
			if (b % (QKS / QK) == 0) {
				float amax = 0;

				for (k = b; k < MIN(b + QKS / QK, n_blk); k++)
					amax = fmaxf(amax, block_amax(block_in(x, n, k, pad)));
				d = amax / 127.0f;
			}
			quantize_block(block_in(x, n, b, pad), d, A->q + qo + (size_t)b * QK,
				       A->qp + qo + (size_t)b * QK, A->d + bo + b, A->sum + bo + b);
		}
	}
}

#endif
