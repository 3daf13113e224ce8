/*
 * test-kernels.c - the kernel tiers against each other and against math
 * written straight from docs/model-format.md "AutoRound packing".
 *
 * The scalar tier is checked against a dead-simple dequantizer and double
 * precision dot products; every SIMD tier the CPU supports is checked against
 * the scalar tier on random GPTQ and float matrices of odd shapes (ragged
 * groups, output ranges off the vector width, unaligned activations, 1 to 8
 * tokens, negative scales, random zero points, both zero-point packings).  Tiers the CPU lacks are
 * reported as skipped and count nothing.
 */
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "util.h"

#define SENTINEL 1e30f

/* splitmix64: reproducible across runs and compilers. */
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t
rng_u64(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int
rng_int(int n)
{
	return (int)(rng_u64() % (uint64_t)n);
}

static float
rng_uniform(float lo, float hi)
{
	return lo + (hi - lo) * (float)(rng_u64() >> 40) / (float)(1 << 24);
}

/* A test matrix owning its buffers, plus its dense float expansion. */
struct tmat {
	struct qmat m;
	void *buf[4];
	float *dense; /* [n_out][n_in] */
};

static void
tmat_free(struct tmat *t)
{
	int k;

	for (k = 0; k < 4; k++)
		free(t->buf[k]);
	free(t->dense);
	memset(t, 0, sizeof(*t));
}

/*
 * W[o][i] exactly as docs/model-format.md "AutoRound packing" writes it, with nothing
 * shared with the kernels: q from qweight[i*b/32][o], z from qzeros[i/gs][o*b/32] plus one.
 * (qzeros rows are ceil(n_out * b / 32) words so odd n_out can be tested.)
 */
static float
ref_weight(const struct qmat *W, int o, int i)
{
	int b = W->bits, per = 32 / b, g = i / W->group_size;
	uint32_t mask = (1u << b) - 1, zs = (uint32_t)(W->n_out * b + 31) / 32;
	uint32_t q = (W->qweight[(size_t)(i * b / 32) * W->n_out + o] >> ((i % per) * b)) & mask;
	uint32_t z =
		((W->qzeros[(size_t)g * zs + (size_t)(o * b / 32)] >> ((o % per) * b)) & mask) +
		(W->zero_raw ? 0 : 1); /* auto_round packing stores z itself */

	return fp16_to_f32(W->scales[(size_t)g * W->n_out + o]) * ((float)q - (float)z);
}

static void
tmat_gptq(struct tmat *t, int bits, int n_in, int n_out, int gs)
{
	int n_groups = (n_in + gs - 1) / gs, zs = (n_out * bits + 31) / 32, o, i;
	size_t nw = (size_t)n_in * bits / 32 * n_out, k;
	uint32_t *qw, *qz;
	uint16_t *sc;

	memset(t, 0, sizeof(*t));
	qw = t->buf[0] = xmalloc(nw * 4);
	qz = t->buf[1] = xmalloc((size_t)n_groups * zs * 4);
	sc = t->buf[2] = xmalloc((size_t)n_groups * n_out * 2);
	for (k = 0; k < nw; k++)
		qw[k] = (uint32_t)rng_u64();
	for (k = 0; k < (size_t)n_groups * zs; k++)
		qz[k] = (uint32_t)rng_u64();
	for (k = 0; k < (size_t)n_groups * n_out; k++)
		sc[k] = f32_to_fp16(rng_uniform(0.002f, 0.05f) * (rng_int(2) ? -1.0f : 1.0f));
	t->m = (struct qmat){ .fmt = WFMT_GPTQ,
			      .n_in = n_in,
			      .n_out = n_out,
			      .bits = bits,
			      .group_size = gs,
			      .n_groups = n_groups,
			      .qweight = qw,
			      .qzeros = qz,
			      .scales = sc };
	t->dense = xmalloc((size_t)n_in * n_out * sizeof(float));
	for (o = 0; o < n_out; o++)
		for (i = 0; i < n_in; i++)
			t->dense[(size_t)o * n_in + i] = ref_weight(&t->m, o, i);
}

/* The same bytes read as auto-round's `auto_round` packing (zero points without the minus one). */
static void
tmat_raw(struct tmat *t)
{
	t->m.zero_raw = true;
	for (int o = 0; o < t->m.n_out; o++)
		for (int i = 0; i < t->m.n_in; i++)
			t->dense[(size_t)o * t->m.n_in + i] = ref_weight(&t->m, o, i);
}

static void
tmat_float(struct tmat *t, enum wfmt fmt, int n_in, int n_out)
{
	size_t n = (size_t)n_in * n_out, k;

	memset(t, 0, sizeof(*t));
	t->dense = xmalloc(n * sizeof(float));
	t->buf[0] = xmalloc(n * (fmt == WFMT_F32 ? 4 : 2));
	for (k = 0; k < n; k++) {
		float v = rng_uniform(-1, 1);

		if (fmt == WFMT_F32) {
			((float *)t->buf[0])[k] = v;
		} else if (fmt == WFMT_F16) {
			((uint16_t *)t->buf[0])[k] = f32_to_fp16(v);
			v = fp16_to_f32(((uint16_t *)t->buf[0])[k]);
		} else {
			((uint16_t *)t->buf[0])[k] = f32_to_bf16(v);
			v = bf16_to_f32(((uint16_t *)t->buf[0])[k]);
		}
		t->dense[k] = v;
	}
	t->m = (struct qmat){ .fmt = fmt, .n_in = n_in, .n_out = n_out, .w = t->buf[0] };
}

/* Hand-built 4- and 8-bit matrices with negative scales and known values. */
static void
test_dequant_known(void)
{
	uint32_t qw4[2][8], qz4[2][1] = { { 0x77777777u }, { 0x76543210u } }, qw8[2][4];
	uint32_t qz8[2][1] = { { 0x7F7F7F7Fu }, { 0xFF801000u } };
	uint16_t sc4[2][8], sc8[2][4];
	struct qmat w4 = { .fmt = WFMT_GPTQ,
			   .n_in = 16,
			   .n_out = 8,
			   .bits = 4,
			   .group_size = 8,
			   .n_groups = 2,
			   .qweight = &qw4[0][0],
			   .qzeros = &qz4[0][0],
			   .scales = &sc4[0][0] };
	struct qmat w8 = { .fmt = WFMT_GPTQ,
			   .n_in = 8,
			   .n_out = 4,
			   .bits = 8,
			   .group_size = 4,
			   .n_groups = 2,
			   .qweight = &qw8[0][0],
			   .qzeros = &qz8[0][0],
			   .scales = &sc8[0][0] };
	float row[16];
	int r, o, j, i, bad;

	/* 4-bit: input i = 8r + j of output o holds (o + j + r) % 16. */
	for (r = 0; r < 2; r++)
		for (o = 0; o < 8; o++) {
			qw4[r][o] = 0;
			for (j = 0; j < 8; j++)
				qw4[r][o] |= (uint32_t)((o + j + r) % 16) << (4 * j);
			sc4[r][o] = f32_to_fp16(r == 0 ? -0.5f : 0.25f);
		}
	for (o = 0, bad = 0; o < 8; o++) {
		qmat_row_f32(&w4, o, row);
		for (i = 0; i < 16; i++) {
			int q = (o + i % 8 + i / 8) % 16;
			/* group 0: zero 7 + 1 for all; group 1: stored o, zero o + 1 */
			float want = i < 8 ? -0.5f * (float)(q - 8) : 0.25f * (float)(q - (o + 1));

			bad += row[i] != want || ref_weight(&w4, o, i) != want;
		}
	}
	T_EQ_INT(bad, 0);

	/* 8-bit: input i = 4r + j of output o holds (37o + 11j + 3r) & 255. */
	for (r = 0; r < 2; r++)
		for (o = 0; o < 4; o++) {
			qw8[r][o] = 0;
			for (j = 0; j < 4; j++)
				qw8[r][o] |= (uint32_t)((37 * o + 11 * j + 3 * r) & 255) << (8 * j);
			sc8[r][o] = f32_to_fp16(r == 0 ? -0.125f : 0.0625f);
		}
	for (o = 0, bad = 0; o < 4; o++) {
		static const int z1[4] = { 1, 17, 129, 256 }; /* stored 0x00 0x10 0x80 0xFF */

		qmat_row_f32(&w8, o, row);
		for (i = 0; i < 8; i++) {
			int q = (37 * o + 11 * (i % 4) + 3 * (i / 4)) & 255;
			float want =
				i < 4 ? -0.125f * (float)(q - 128) : 0.0625f * (float)(q - z1[o]);

			bad += row[i] != want || ref_weight(&w8, o, i) != want;
		}
	}
	T_EQ_INT(bad, 0);
}

/* Double-precision references: y = W x and the magnitude sum |W| |x|. */
static void
ref_product(const struct tmat *t, const float *X, int n_tok, double *y, double *mag)
{
	int n_in = t->m.n_in, n_out = t->m.n_out, tk, o, i;

	for (tk = 0; tk < n_tok; tk++)
		for (o = 0; o < n_out; o++) {
			double s = 0, m = 0;

			for (i = 0; i < n_in; i++) {
				double p = (double)t->dense[(size_t)o * n_in + i] *
					   X[(size_t)tk * n_in + i];

				s += p;
				m += fabs(p);
			}
			y[(size_t)tk * n_out + o] = s;
			mag[(size_t)tk * n_out + o] = m;
		}
}

static void
fill(float *p, size_t n, float v)
{
	size_t k;

	for (k = 0; k < n; k++)
		p[k] = v;
}

/*
 * Count outputs of Y [n_tok][ldy] that break |Y - want| <= tol * mag inside
 * [o0, o1), or that changed outside it.
 */
static int
count_bad(const float *Y, int ldy, int n_tok, int n_out, int o0, int o1, const float *want,
	  const double *mag, double tol)
{
	int bad = 0, tk, o;

	for (tk = 0; tk < n_tok; tk++)
		for (o = 0; o < ldy; o++) {
			float y = Y[(size_t)tk * ldy + o];

			if (o < o0 || o >= o1) {
				bad += y != SENTINEL;
				continue;
			}
			if (!(fabs((double)y - want[(size_t)tk * n_out + o]) <=
			      tol * mag[(size_t)tk * n_out + o] + 1e-30)) {
				if (bad < 3)
					fprintf(stderr, "  t %d o %d: %.9g vs %.9g (mag %g)\n", tk,
						o, (double)y, (double)want[(size_t)tk * n_out + o],
						mag[(size_t)tk * n_out + o]);
				bad++;
			}
		}
	return bad;
}

/* The supported SIMD tiers; prints the skipped ones once. */
static const struct kernels *tiers[2];
static int n_tiers;

static void
find_tiers(void)
{
	static const char *names[] = { "avx2", "avx512" };
	size_t k;

	for (k = 0; k < ARRAY_LEN(names); k++) {
		const struct kernels *kt = kernels_tier(names[k]);

		if (kt != NULL)
			tiers[n_tiers++] = kt;
		else
			printf("skipped: %s (CPU lacks it)\n", names[k]);
	}
}

static bool
same_qact(const struct qact *a, const struct qact *b)
{
	size_t nq = (size_t)a->n_tok * a->n_blk * QK, nb = (size_t)a->n_tok * a->n_blk;

	return a->n == b->n && a->n_tok == b->n_tok && a->n_blk == b->n_blk &&
	       memcmp(a->q, b->q, nq) == 0 && memcmp(a->qp, b->qp, nq) == 0 &&
	       memcmp(a->d, b->d, nb * sizeof(float)) == 0 &&
	       memcmp(a->sum, b->sum, nb * sizeof(int32_t)) == 0;
}

/*
 * One matrix against every path: scalar f32 vs double, SIMD f32 vs scalar,
 * BLAS vs scalar, and (when qmat_q8_ok) the int8 paths.
 */
static void
check_matrix(struct tmat *t, int n_tok, int o0, int o1)
{
	const struct qmat *W = &t->m;
	int n_in = W->n_in, n_out = W->n_out, ldy = n_out + 3, k, tk, o, i;
	size_t ny = (size_t)n_tok * n_out, nY = (size_t)n_tok * ldy;
	float *xbuf = xmalloc(((size_t)n_tok * n_in + 1) * sizeof(float));
	float *X = xbuf + 1; /* deliberately not 32-byte aligned */
	float *Y = xmalloc(nY * sizeof(float)), *ys = xmalloc(ny * sizeof(float));
	float *tmp = xmalloc((size_t)64 * n_in * sizeof(float));
	double *yref = xmalloc(ny * sizeof(double)), *mag = xmalloc(ny * sizeof(double));
	float *yref_f = xmalloc(ny * sizeof(float));

	/* qmat_row_f32 must reproduce the independent expansion exactly. */
	for (o = 0, k = 0; o < n_out; o++) {
		qmat_row_f32(W, o, tmp);
		k += memcmp(tmp, t->dense + (size_t)o * n_in, (size_t)n_in * sizeof(float)) != 0;
	}
	T_EQ_INT(k, 0);
	for (k = 0; k < n_tok * n_in; k++)
		X[k] = rng_uniform(-1, 1);
	ref_product(t, X, n_tok, yref, mag);
	for (k = 0; k < (int)ny; k++)
		yref_f[k] = (float)yref[k];

	/* Scalar against double: float sums over n_in terms, so 1e-4. */
	fill(Y, nY, SENTINEL);
	kernels_scalar.matmul_f32(W, X, n_tok, Y, ldy, o0, o1);
	T_EQ_INT(count_bad(Y, ldy, n_tok, n_out, o0, o1, yref_f, mag, 1e-4), 0);
	for (tk = 0; tk < n_tok; tk++)
		for (o = 0; o < n_out; o++)
			ys[(size_t)tk * n_out + o] = Y[(size_t)tk * ldy + o];

	for (k = 0; k < n_tiers; k++) {
		fill(Y, nY, SENTINEL);
		tiers[k]->matmul_f32(W, X, n_tok, Y, ldy, o0, o1);
		T_EQ_INT(count_bad(Y, ldy, n_tok, n_out, o0, o1, ys, mag, 1e-5), 0);
	}
	fill(Y, nY, SENTINEL);
	kernels_matmul_blas(W, X, n_tok, Y, ldy, o0, o1, tmp);
	T_EQ_INT(count_bad(Y, ldy, n_tok, n_out, o0, o1, ys, mag, 1e-5), 0);

	if (qmat_q8_ok(W)) {
		struct qact A, At;
		double *yhat = xmalloc(ny * sizeof(double)), *mhat = xmalloc(ny * sizeof(double));
		double *bound = xmalloc(ny * sizeof(double));
		float *yhat_f = xmalloc(ny * sizeof(float));

		T_EQ_INT(qact_init(&A, n_in + 5, n_tok + 1), 0);
		T_EQ_INT(qact_init(&At, n_in, n_tok), 0);
		kernels_scalar.quantize_act(X, n_tok, n_in, &A);
		/*
		 * The int8 product is exactly W x^ with x^_i = d_b q_i, and
		 * round to nearest leaves |x_i - x^_i| <= d_b / 2, so
		 * |W x^ - W x| <= sum_i |W_oi| d_b(i) / 2: the error bound.
		 */
		for (tk = 0; tk < n_tok; tk++)
			for (o = 0; o < n_out; o++) {
				double s = 0, m = 0, e = 0;

				for (i = 0; i < n_in; i++) {
					size_t bi = (size_t)tk * A.n_blk + (size_t)(i / QK);
					double w = t->dense[(size_t)o * n_in + i];
					double xh = (double)A.d[bi] *
						    A.q[(size_t)tk * A.n_blk * QK + (size_t)i];

					s += w * xh;
					m += fabs(w * xh);
					e += fabs(w) * A.d[bi] / 2;
				}
				yhat[(size_t)tk * n_out + o] = s;
				yhat_f[(size_t)tk * n_out + o] = (float)s;
				mhat[(size_t)tk * n_out + o] = m;
				bound[(size_t)tk * n_out + o] =
					e * (1 + 1e-6) + 1e-5 * mag[(size_t)tk * n_out + o];
			}
		fill(Y, nY, SENTINEL);
		kernels_scalar.matmul_q8(W, &A, Y, ldy, o0, o1);
		T_EQ_INT(count_bad(Y, ldy, n_tok, n_out, o0, o1, yhat_f, mhat, 1e-5), 0);
		T_EQ_INT(count_bad(Y, ldy, n_tok, n_out, o0, o1, yref_f, bound, 1), 0);
		for (tk = 0; tk < n_tok; tk++)
			for (o = 0; o < n_out; o++)
				ys[(size_t)tk * n_out + o] = Y[(size_t)tk * ldy + o];
		for (k = 0; k < n_tiers; k++) {
			tiers[k]->quantize_act(X, n_tok, n_in, &At);
			T_ASSERT(same_qact(&A, &At));
			fill(Y, nY, SENTINEL);
			tiers[k]->matmul_q8(W, &At, Y, ldy, o0, o1);
			T_EQ_INT(count_bad(Y, ldy, n_tok, n_out, o0, o1, ys, mhat, 1e-5), 0);
		}
		qact_release(&A);
		qact_release(&At);
		free(yhat);
		free(yhat_f);
		free(mhat);
		free(bound);
	}
	free(xbuf);
	free(Y);
	free(ys);
	free(tmp);
	free(yref);
	free(yref_f);
	free(mag);
}

/* An output range: everything, or one starting and ending off the vector width. */
static void
pick_range(int n_out, int which, int *o0, int *o1)
{
	*o0 = 0;
	*o1 = n_out;
	if (which == 1 && n_out > 2) {
		*o0 = 1 + rng_int(MAX(1, n_out / 4));
		*o1 = n_out - rng_int(MAX(1, n_out / 4));
		if (*o1 <= *o0)
			*o1 = *o0 + 1;
	}
}

static void
test_gptq(void)
{
	static const int bitss[] = { 2, 4, 8 }, n_ins[] = { 32, 96, 200, 256, 2048 };
	static const int gss[] = { 32, 64, 128 }, n_outs[] = { 8, 13, 64, 100, 512 };
	static const int n_toks[] = { 1, 3, 5, 8 };
	/* Group sizes that are not multiples of QK: matmul_f32 and BLAS only. */
	static const int odd[][4] = { { 4, 96, 24, 37 },
				      { 8, 96, 20, 19 },
				      { 4, 200, 20, 40 },
				      { 2, 64, 24, 48 },
				      { 8, 200, 40, 16 } };
	/* bits, n_in, group size, n_out, n_tok */
	static const int big[][5] = { { 4, 2048, 128, 512, 37 },
				      { 8, 2048, 128, 4096, 6 },
				      { 4, 512, 128, 2048, 70 },
				      { 8, 256, 128, 48, 9 },
				      { 4, 256, 64, 512, 100 },
				      { 8, 96, 32, 300, 130 },
				      /* span tiles of 8 and 7 tokens, a 16-output tail */
				      { 8, 512, 128, 272, 15 },
				      { 4, 1024, 128, 208, 12 },
				      /* Y over 2 MiB: more than one chunk at any L2 size */
				      { 8, 128, 128, 4096, 130 },
				      { 2, 128, 128, 256, 170 },
				      /* several chunks of several spans: packed partial sums */
				      { 8, 512, 128, 2048, 140 },
				      { 4, 256, 128, 4096, 70 } };
	size_t bi, ni, gi, oi;
	int run = 0, o0, o1;
	float *scratch;

	for (bi = 0; bi < ARRAY_LEN(bitss); bi++)
		for (ni = 0; ni < ARRAY_LEN(n_ins); ni++)
			for (gi = 0; gi < ARRAY_LEN(gss); gi++)
				for (oi = 0; oi < ARRAY_LEN(n_outs); oi++) {
					struct tmat t;
					int n_tok = n_toks[run % 4];

					if (n_ins[ni] % (32 / bitss[bi]) != 0)
						continue; /* not representable */
					/* Keep the biggest shapes cheap for the sanitizer run. */
					if (n_ins[ni] == 2048 && n_outs[oi] == 512)
						n_tok = n_toks[run % 2];
					tmat_gptq(&t, bitss[bi], n_ins[ni], n_outs[oi], gss[gi]);
					if (run % 3 == 2)
						tmat_raw(&t);
					pick_range(n_outs[oi], run % 2, &o0, &o1);
					check_matrix(&t, n_tok, o0, o1);
					tmat_free(&t);
					run++;
				}
	/* Prefill batches big enough that the SIMD tiers split outputs in chunks,
	 * with a scratch buffer lent as the engine lends one (the shapes above
	 * ran without: sums straight in Y). */
	scratch = xmalloc((size_t)2 << 20);
	kernels_use_y_scratch(scratch, (size_t)2 << 20);
	for (bi = 0; bi < ARRAY_LEN(big); bi++) {
		struct tmat t;

		tmat_gptq(&t, big[bi][0], big[bi][1], big[bi][3], big[bi][2]);
		if (bi % 2)
			tmat_raw(&t);
		check_matrix(&t, big[bi][4], 1, big[bi][3] - 1);
		tmat_free(&t);
		run++;
	}
	kernels_use_y_scratch(NULL, 0);
	free(scratch);
	for (bi = 0; bi < ARRAY_LEN(odd); bi++) {
		struct tmat t;

		tmat_gptq(&t, odd[bi][0], odd[bi][1], odd[bi][3], odd[bi][2]);
		T_ASSERT(!qmat_q8_ok(&t.m));
		pick_range(odd[bi][3], (int)bi % 2, &o0, &o1);
		check_matrix(&t, 1 + (int)bi, o0, o1);
		tmat_free(&t);
		run++;
	}
	printf("gptq: %d matrices x %d SIMD tiers\n", run, n_tiers);
}

static void
test_float(void)
{
	static const enum wfmt fmts[] = { WFMT_F32, WFMT_F16, WFMT_BF16 };
	static const int n_ins[] = { 1, 7, 33, 200, 2048 }, n_outs[] = { 1, 13, 64 };
	size_t fi, ni, oi;
	int run = 0, o0, o1;

	for (fi = 0; fi < ARRAY_LEN(fmts); fi++)
		for (ni = 0; ni < ARRAY_LEN(n_ins); ni++)
			for (oi = 0; oi < ARRAY_LEN(n_outs); oi++) {
				struct tmat t;

				tmat_float(&t, fmts[fi], n_ins[ni], n_outs[oi]);
				T_ASSERT(!qmat_q8_ok(&t.m));
				pick_range(n_outs[oi], run % 2, &o0, &o1);
				check_matrix(&t, 1 + run % 8, o0, o1);
				tmat_free(&t);
				run++;
			}
}

static void
test_q8_ok(void)
{
	struct qmat w = { .fmt = WFMT_GPTQ,
			  .n_in = 2048,
			  .n_out = 512,
			  .bits = 4,
			  .group_size = 128,
			  .n_groups = 16 };

	T_ASSERT(qmat_q8_ok(&w));
	w.n_in = 200; /* ragged last group, short last block of one word */
	T_ASSERT(qmat_q8_ok(&w));
	w.bits = 2; /* 200 inputs are not whole 2-bit words */
	T_ASSERT(!qmat_q8_ok(&w));
	w.bits = 8;
	T_ASSERT(qmat_q8_ok(&w));
	w.group_size = 48;
	T_ASSERT(!qmat_q8_ok(&w));
	w.group_size = 128;
	w.bits = 3;
	T_ASSERT(!qmat_q8_ok(&w));
	w.bits = 4;
	w.fmt = WFMT_BF16;
	T_ASSERT(!qmat_q8_ok(&w));
}

static void
test_quantize(void)
{
	int n = 200, n_tok = 3, n_blk = (n + QK - 1) / QK, tk, b, i, k, bad = 0;
	float *X = xmalloc((size_t)n * n_tok * sizeof(float));
	struct qact A, At;

	for (i = 0; i < n * n_tok; i++)
		X[i] = rng_uniform(-3, 3) * (i % 7 == 0 ? 10.0f : 1.0f);
	for (i = QKS; i < n; i++)
		X[i] = 0; /* token 0, super-block 1: all zero, d = 0 */
	X[n + 5] = 0.5f;  /* ties land on exact halves of d = 127/127 */
	X[n + 6] = 127.0f;
	X[n + 7] = -2.5f;
	T_EQ_INT(qact_init(&A, n, n_tok), 0);
	T_EQ_INT(qact_init(&At, n + 100, n_tok + 2), 0);
	kernels_scalar.quantize_act(X, n_tok, n, &A);
	T_EQ_INT(A.n, n);
	T_EQ_INT(A.n_tok, n_tok);
	T_EQ_INT(A.n_blk, n_blk);
	T_NEAR(A.d[n_blk], 1.0, 0);
	/* round half to even: 0.5 -> 0, -2.5 -> -2 */
	T_EQ_INT(A.q[n_blk * QK + 5], 0);
	T_EQ_INT(A.q[n_blk * QK + 7], -2);
	T_ASSERT(A.d[QKS / QK] == 0.0f && A.d[n_blk - 1] == 0.0f);
	for (tk = 0; tk < n_tok; tk++)
		for (b = 0; b < n_blk; b++) {
			const int8_t *q = A.q + ((size_t)tk * n_blk + b) * QK;
			const int8_t *qp = A.qp + ((size_t)tk * n_blk + b) * QK;
			float d = A.d[tk * n_blk + b], amax = 0;
			int32_t sum = 0;

			/* One scale per QKS super-block: max |x| over it / 127. */
			for (i = b / (QKS / QK) * QKS; i < MIN(b / (QKS / QK) * QKS + QKS, n); i++)
				amax = fmaxf(amax, fabsf(X[tk * n + i]));
			bad += d != amax / 127.0f;

			for (i = 0; i < QK; i++) {
				int idx = b * QK + i;

				sum += q[i];
				if (idx >= n)
					bad += q[i] != 0; /* zero padding */
				else
					bad += !(fabsf(X[tk * n + idx] - d * q[i]) <=
						 d / 2 * (1 + 1e-6f) + 1e-30f);
				bad += q[i] < -127; /* never -128: maddubs relies on it */
			}
			bad += sum != A.sum[tk * n_blk + b];
			/* qp: each run of 8 in the order 0 2 4 6 1 3 5 7 */
			for (i = 0; i < QK; i += 8)
				for (k = 0; k < 4; k++)
					bad += qp[i + k] != q[i + 2 * k] ||
					       qp[i + 4 + k] != q[i + 2 * k + 1];
		}
	T_EQ_INT(bad, 0);
	for (k = 0; k < n_tiers; k++) {
		tiers[k]->quantize_act(X, n_tok, n, &At);
		T_ASSERT(same_qact(&A, &At));
		tiers[k]->quantize_act(X, 1, 17, &At); /* a single short block */
		kernels_scalar.quantize_act(X, 1, 17, &A);
		T_ASSERT(same_qact(&A, &At));
		kernels_scalar.quantize_act(X, n_tok, n, &A);
	}
	qact_release(&A);
	qact_release(&At);
	qact_release(&At); /* a released (zeroed) struct is accepted */
	free(X);
}

static void
test_vector(void)
{
	static const int lens[] = { 0, 1, 7, 8, 15, 16, 31, 33, 63, 64, 65, 100, 1001 };
	size_t li;
	int k, i;

	for (li = 0; li < ARRAY_LEN(lens); li++) {
		int n = lens[li];
		float *buf = xmalloc((size_t)(3 * n + 3) * sizeof(float));
		float *a = buf + 1, *b = a + n + 1, *y = b + n + 1; /* unaligned */
		float *y0 = xmalloc((size_t)(n + 1) * sizeof(float));
		uint16_t *h = xmalloc((size_t)(n + 1) * sizeof(uint16_t));

		for (i = 0; i < n; i++) {
			a[i] = rng_uniform(-1, 1);
			b[i] = rng_uniform(-1, 1);
			y0[i] = rng_uniform(-1, 1);
		}
		for (k = -1; k < n_tiers; k++) {
			const struct kernels *kt = k < 0 ? &kernels_scalar : tiers[k];
			double s = 0, m = 0;
			int bad = 0;

			for (i = 0; i < n; i++) {
				s += (double)a[i] * b[i];
				m += fabs((double)a[i] * b[i]);
			}
			T_NEAR(kt->dot(a, b, n), s, 1e-5 * m + 1e-30);
			memcpy(y, y0, (size_t)n * sizeof(float));
			kt->axpy(y, 0.75f, a, n);
			for (i = 0; i < n; i++)
				bad += !(fabsf(y[i] - (y0[i] + 0.75f * a[i])) <=
					 1e-6f * (fabsf(y0[i]) + fabsf(a[i])));
			memcpy(y, y0, (size_t)n * sizeof(float));
			kt->scale(y, -1.25f, n);
			for (i = 0; i < n; i++)
				bad += y[i] != y0[i] * -1.25f;
			/* Half vectors: rounding equal to f32_to_fp16, dot and axpy
			 * equal to the float ones on the rounded values. */
			kt->to_half(h, a, n);
			for (i = 0, s = 0, m = 0; i < n; i++) {
				bad += h[i] != f32_to_fp16(a[i]);
				s += (double)b[i] * fp16_to_f32(h[i]);
				m += fabs((double)b[i] * fp16_to_f32(h[i]));
			}
			T_NEAR(kt->dot_h(b, h, n), s, 1e-5 * m + 1e-30);
			memcpy(y, y0, (size_t)n * sizeof(float));
			kt->axpy_h(y, 0.75f, h, n);
			for (i = 0; i < n; i++)
				bad += !(fabsf(y[i] - (y0[i] + 0.75f * fp16_to_f32(h[i]))) <=
					 1e-6f * (fabsf(y0[i]) + fabsf(fp16_to_f32(h[i]))));
			T_EQ_INT(bad, 0);
		}
		free(buf);
		free(y0);
		free(h);
	}
}

/* Bad entries of tier kt's scores_h against the scalar tier's sc0. */
static int
attn_scores_bad(const struct kernels *kt, const float *q, int ldq, int ng, const uint16_t *k,
		int np, int n, const float *sc0, float *sc, size_t ld)
{
	int bad = 0;

	memcpy(sc, sc0, (size_t)ng * ld * sizeof(float));
	for (int g = 0; g < ng; g++)
		for (int s = 0; s < np; s++)
			sc[g * ld + s] = NAN;
	kt->scores_h(q, ldq, ng, k, np, n, 0.0625f, sc, ld);
	for (int g = 0; g < ng; g++) {
		for (int s = 0; s < np; s++) {
			double m = 0;

			for (int i = 0; i < n; i++)
				m += fabs(q[g * ldq + i] * fp16_to_f32(k[s * n + i]));
			bad += !(fabs(sc[g * ld + s] - sc0[g * ld + s]) <=
				 0.0625 * 1e-5 * m + 1e-30);
		}
		bad += sc[g * ld + np] != sc0[g * ld + np]; /* past the positions: untouched */
	}
	return bad;
}

/* Bad entries of tier kt's mix_h against a double-precision reference. */
static int
attn_mix_bad(const struct kernels *kt, const float *p, size_t ld, int ng, const uint16_t *v, int np,
	     int n, const float *o0, float *o, int ldo)
{
	int bad = 0;

	memcpy(o, o0, (size_t)ng * ldo * sizeof(float));
	kt->mix_h(o, ldo, ng, p, ld, v, np, n);
	for (int g = 0; g < ng; g++) {
		for (int i = n; i < ldo; i++) /* padding untouched */
			bad += o[g * ldo + i] != o0[g * ldo + i];
		for (int i = 0; i < n; i++) {
			double r = o0[g * ldo + i], m = fabs(r);

			for (int s = 0; s < np; s++) {
				double t = p[g * ld + s] * fp16_to_f32(v[s * n + i]);

				r += t;
				m += fabs(t);
			}
			bad += !(fabs(o[g * ldo + i] - r) <= 1e-6 * m);
		}
	}
	return bad;
}

/* One shape of test_attn_h: n-wide rows, ng heads, np positions. */
static void
attn_shape(int n, int ng, int np)
{
	int ldq = 2 * n + 1, ldo = n + 3, bad = 0;
	size_t ld = (size_t)np + 2;
	float *q = xmalloc((size_t)ng * ldq * sizeof(float));
	float *p = xmalloc((size_t)ng * ld * sizeof(float));
	float *sc0 = xcalloc((size_t)ng * ld, sizeof(float));
	float *sc = xcalloc((size_t)ng * ld, sizeof(float));
	float *o0 = xmalloc((size_t)ng * ldo * sizeof(float));
	float *o = xmalloc((size_t)ng * ldo * sizeof(float));
	float *f = xmalloc((size_t)np * n * sizeof(float));
	uint16_t *k = xmalloc((size_t)np * n * sizeof(uint16_t));
	uint16_t *v = xmalloc((size_t)np * n * sizeof(uint16_t));

	for (int i = 0; i < ng * ldq; i++)
		q[i] = rng_uniform(-1, 1);
	for (size_t i = 0; i < (size_t)ng * ld; i++)
		p[i] = rng_uniform(0, 1);
	for (int i = 0; i < np * n; i++)
		f[i] = rng_uniform(-2, 2);
	kernels_scalar.to_half(k, f, np * n);
	for (int i = 0; i < np * n; i++)
		f[i] = rng_uniform(-2, 2);
	kernels_scalar.to_half(v, f, np * n);
	for (int i = 0; i < ng * ldo; i++)
		o0[i] = rng_uniform(-1, 1);
	kernels_scalar.scores_h(q, ldq, ng, k, np, n, 0.0625f, sc0, ld);
	for (int t = -1; t < n_tiers; t++) {
		const struct kernels *kt = t < 0 ? &kernels_scalar : tiers[t];

		bad += attn_scores_bad(kt, q, ldq, ng, k, np, n, sc0, sc, ld);
		bad += attn_mix_bad(kt, p, ld, ng, v, np, n, o0, o, ldo);
	}
	T_EQ_INT(bad, 0);
	free(q);
	free(p);
	free(sc0);
	free(sc);
	free(o0);
	free(o);
	free(f);
	free(k);
	free(v);
}

/*
 * scores_h of every tier against the scalar tier, mix_h against a double
 * reference, on the model's head width (256), smaller ones and widths no
 * SIMD tier handles, with head and position counts around the 8- and 4-wide
 * blocking.
 */
static void
test_attn_h(void)
{
	static const int widths[] = { 256, 128, 24, 16, 7 };
	static const int heads[] = { 1, 3, 4, 8, 13 };
	static const int positions[] = { 1, 3, 4, 5, 37 };

	for (size_t wi = 0; wi < ARRAY_LEN(widths); wi++)
		for (size_t hi = 0; hi < ARRAY_LEN(heads); hi++)
			for (size_t pi = 0; pi < ARRAY_LEN(positions); pi++)
				attn_shape(widths[wi], heads[hi], positions[pi]);
}

static void
test_sgemm(void)
{
	int m = 5, n = 7, k = 33, lda = 35, ldb = 34, ldc = 9, i, j, p, acc, bad = 0;
	float *A = xmalloc((size_t)m * lda * sizeof(float)), *B = xmalloc((size_t)n * ldb * 4);
	float *C = xmalloc((size_t)m * ldc * sizeof(float)), *C0 = xmalloc((size_t)m * ldc * 4);

	for (i = 0; i < m * lda; i++)
		A[i] = rng_uniform(-1, 1);
	for (i = 0; i < n * ldb; i++)
		B[i] = rng_uniform(-1, 1);
	for (i = 0; i < m * ldc; i++)
		C0[i] = rng_uniform(-1, 1);
	for (acc = 0; acc < 2; acc++) {
		memcpy(C, C0, (size_t)m * ldc * sizeof(float));
		kernels_sgemm_nt(m, n, k, A, lda, B, ldb, C, ldc, acc);
		for (i = 0; i < m; i++)
			for (j = 0; j < ldc; j++) {
				double s = acc ? C0[i * ldc + j] : 0;

				if (j >= n) {
					bad += C[i * ldc + j] != C0[i * ldc + j];
					continue;
				}
				for (p = 0; p < k; p++)
					s += (double)A[i * lda + p] * B[j * ldb + p];
				bad += !(fabs(C[i * ldc + j] - s) <= 1e-5 * (k + 1));
			}
	}
	T_EQ_INT(bad, 0);
	free(A);
	free(B);
	free(C);
	free(C0);
}

static void
test_select(void)
{
	const struct kernels *k = kernels_get();

	T_ASSERT(k != NULL);
	T_ASSERT(k == kernels_get());
	T_ASSERT(kernels_tier("scalar") == &kernels_scalar);
	T_ASSERT(kernels_tier("sse9") == NULL);
	T_ASSERT(kernels_tier(NULL) == NULL);
	printf("kernels_get: %s\n", k->name);
}

/*
 * silu in every tier against a double-precision SiLU over [-100, 100] (the
 * clamped tails included), and each element the same whether it is computed
 * alone or inside a longer array (vector lanes and tails alike).
 */
static void
test_silu(void)
{
	enum { N = 203 };
	const struct kernels *all[3] = { &kernels_scalar };
	float x[N], y[N], one;
	int n_all = 1, bad = 0, moved = 0;

	for (int k = 0; k < n_tiers; k++)
		all[n_all++] = tiers[k];
	for (int i = 0; i < N; i++)
		x[i] = i < 3 ? (float)(100 * (i - 1))
			     : (float)(i - N / 2) * (i % 5 == 0 ? 0.9f : 0.013f);
	for (int k = 0; k < n_all; k++) {
		all[k]->silu(x, y, N);
		for (int i = 0; i < N; i++) {
			double ref = x[i] / (1.0 + exp(-(double)x[i]));

			if (fabs(y[i] - ref) > 3e-7 * fabs(ref) + 1e-30)
				bad++;
			all[k]->silu(x + i, &one, 1);
			if (one != y[i])
				moved++;
		}
		all[k]->silu(x, x + 0, 0); /* n = 0 touches nothing */
	}
	T_EQ_INT(bad, 0);
	T_EQ_INT(moved, 0);
}

/* ---- real shapes, activations with outlier channels ------------------- */

/*
 * A GPTQ matrix of the model's real shapes without the dense expansion (up
 * to 12288 x 4096): rows are expanded on demand with ref_weight.
 */
static void
tmat_gptq_lean(struct tmat *t, int bits, int n_in, int n_out)
{
	int gs = 128, n_groups = n_in / gs, zs = n_out * bits / 32;
	size_t nw = (size_t)n_in * bits / 32 * n_out, nz = (size_t)n_groups * zs;
	uint32_t *qw = xmalloc(nw * 4), *qz = xmalloc(nz * 4);
	uint16_t *sc = xmalloc((size_t)n_groups * n_out * 2);

	memset(t, 0, sizeof(*t));
	for (size_t k = 0; k < nw; k++)
		qw[k] = (uint32_t)rng_u64();
	for (size_t k = 0; k < nz; k++)
		qz[k] = (uint32_t)rng_u64();
	for (size_t k = 0; k < (size_t)n_groups * n_out; k++)
		sc[k] = f32_to_fp16(rng_uniform(0.002f, 0.05f) * (rng_int(2) ? -1.0f : 1.0f));
	t->buf[0] = qw;
	t->buf[1] = qz;
	t->buf[2] = sc;
	t->m = (struct qmat){ .fmt = WFMT_GPTQ,
			      .n_in = n_in,
			      .n_out = n_out,
			      .bits = bits,
			      .group_size = gs,
			      .n_groups = n_groups,
			      .qweight = qw,
			      .qzeros = qz,
			      .scales = sc };
}

/*
 * Activations like a transformer's: roughly unit-RMS values plus a few
 * fixed outlier channels at 50 to 500 times the RMS, the same channels in
 * every token (as real outlier features are).
 */
static void
outlier_acts(float *X, int n_tok, int n_in, bool outliers)
{
	static const int ch[] = { 37, 700, 1101, 1902, 3001 };
	static const float mag[] = { 50, -120, 250, -500, 300 };

	for (size_t k = 0; k < (size_t)n_tok * n_in; k++)
		X[k] = rng_uniform(-1.7f, 1.7f) + rng_uniform(-0.3f, 0.3f) * (float)(k % 7);
	for (int t = 0; t < n_tok && outliers; t++)
		for (size_t c = 0; c < ARRAY_LEN(ch); c++)
			if (ch[c] < n_in)
				X[(size_t)t * n_in + ch[c]] = mag[c] * rng_uniform(0.8f, 1.2f);
}

/*
 * What llama.cpp's Q8_K would give: x quantized to int8 in blocks of 256
 * with one scale each (max |x| / 127, round to nearest), then an exact
 * product with the row w.
 */
static double
q8k_dot(const double *w, const float *x, int n)
{
	double s = 0;

	for (int b = 0; b < n; b += 256) {
		double amax = 0, d;

		for (int i = b; i < b + 256 && i < n; i++)
			amax = fabs(x[i]) > amax ? fabs(x[i]) : amax;
		d = amax / 127;
		for (int i = b; i < b + 256 && i < n; i++)
			s += w[i] * (d > 0 ? d * nearbyint(x[i] / d) : 0);
	}
	return s;
}

/* Root-mean-square error of each int8 tier and of Q8_K over R outputs from o0. */
struct shape_err {
	double tier[3], q8k; /* scalar, then the SIMD tiers */
};

static struct shape_err
shape_errors(const struct tmat *t, const float *X, int n_tok, int o0, int R)
{
	const struct qmat *W = &t->m;
	int n_in = W->n_in, ldy = W->n_out;
	const struct kernels *all[3] = { &kernels_scalar, tiers[0], tiers[1] };
	double *w = xmalloc((size_t)R * n_in * sizeof(double)),
	       *ref = xmalloc((size_t)n_tok * R * sizeof(double));
	float *Y = xmalloc((size_t)n_tok * ldy * sizeof(float));
	float *scratch = xmalloc((size_t)64 * n_in * sizeof(float));
	struct shape_err e = { { 0 }, 0 }; /* a tier not run stays 0 */
	struct qact A;

	for (int r = 0; r < R; r++)
		for (int i = 0; i < n_in; i++)
			w[(size_t)r * n_in + i] = ref_weight(W, o0 + r, i);
	for (int tk = 0; tk < n_tok; tk++)
		for (int r = 0; r < R; r++) {
			const float *x = X + (size_t)tk * n_in;
			double s = 0, d;

			for (int i = 0; i < n_in; i++)
				s += w[(size_t)r * n_in + i] * x[i];
			ref[(size_t)tk * R + r] = s;
			d = q8k_dot(w + (size_t)r * n_in, x, n_in) - s;
			e.q8k += d * d;
		}
	e.q8k = sqrt(e.q8k / ((double)n_tok * R));
	T_EQ_INT(qact_init(&A, n_in, n_tok), 0);
	kernels_use_y_scratch(scratch, (size_t)64 * n_in * sizeof(float));
	/* The scalar tier is slow; at 256 tokens the SIMD tiers speak for it
	 * (they equal it bit for bit on the smaller cases above). */
	for (int k = n_tok > 10 && n_tiers > 0 ? 1 : 0; k < 1 + n_tiers; k++) {
		double s = 0;

		all[k]->quantize_act(X, n_tok, n_in, &A);
		all[k]->matmul_q8(W, &A, Y, ldy, o0, o0 + R);
		for (int tk = 0; tk < n_tok; tk++)
			for (int r = 0; r < R; r++) {
				double d = Y[(size_t)tk * ldy + o0 + r] - ref[(size_t)tk * R + r];

				s += d * d;
			}
		e.tier[k] = sqrt(s / ((double)n_tok * R));
	}
	kernels_use_y_scratch(NULL, 0);
	qact_release(&A);
	free(w);
	free(ref);
	free(Y);
	free(scratch);
	return e;
}

/*
 * Every product shape of the 80B (n_in 2048 and 4096; n_out 512 to 12288;
 * 4- and 8-bit, group 128; 1, 10 and 256 tokens), with outlier channels:
 * the int8 path's error against a double-precision product must be no
 * worse than Q8_K's (int8 blocks of 256) on the same inputs, in every tier.
 * Without outliers the two tie (within 5 %, sampling noise).  64 output
 * rows per shape (32 at 256 tokens), at an offset, keep the double
 * reference cheap.
 */
static void
test_real_shapes(void)
{
	static const int n_ins[] = { 2048, 4096 }, n_outs[] = { 512, 2048, 4096, 8192, 12288 };
	static const int toks[] = { 1, 10, 256 }, bitss[] = { 4, 8 };
	float *X = xmalloc((size_t)256 * 4096 * sizeof(float));
	double worst = 0, worst_plain = 0;
	int worse = 0;

	for (size_t a = 0; a < ARRAY_LEN(n_ins); a++)
		for (size_t b = 0; b < ARRAY_LEN(n_outs); b++)
			for (size_t c = 0; c < ARRAY_LEN(bitss); c++) {
				struct tmat t;
				int o0 = 8 * rng_int(n_outs[b] / 8 - 8);

				tmat_gptq_lean(&t, bitss[c], n_ins[a], n_outs[b]);
				for (size_t d = 0; d < ARRAY_LEN(toks) + 1; d++) {
					bool plain = d == ARRAY_LEN(toks); /* no outliers */
					int nt = plain ? 10 : toks[d];
					struct shape_err e;

					outlier_acts(X, nt, n_ins[a], !plain);
					e = shape_errors(&t, X, nt, o0, nt > 10 ? 32 : 64);
					for (int k = 0; k < 1 + n_tiers; k++) {
						double r = e.tier[k] / e.q8k;

						/* Without outliers 128- and 256-blocks tie
						 * up to sampling noise. */
						worse += !(r <= (plain ? 1.05 : 1.0));
						if (plain)
							worst_plain = fmax(worst_plain, r);
						else
							worst = fmax(worst, r);
						if (!(r <= (plain ? 1.05 : 1.0)))
							fprintf(stderr,
								"  %dx%d %d-bit %d tok tier %d: "
								"rms err %.4g vs Q8_K %.4g\n",
								n_outs[b], n_ins[a], bitss[c], nt,
								k, e.tier[k], e.q8k);
					}
				}
				tmat_free(&t);
			}
	T_EQ_INT(worse, 0);
	printf("real shapes: int8 path rms error / Q8_K's at most %.3f with outlier channels, "
	       "%.3f without\n",
	       worst, worst_plain);
	free(X);
}

int
main(void)
{
	find_tiers();
	test_silu();
	test_select();
	test_dequant_known();
	test_q8_ok();
	test_quantize();
	test_vector();
	test_attn_h();
	test_sgemm();
	test_float();
	test_gptq();
	test_real_shapes();
	return t_done("test-kernels");
}
