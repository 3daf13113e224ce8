/*
 * test-ops.c - the forward pass's building blocks against docs/model-format.md "Forward pass":
 * both RMSNorm conventions, partial NeoX rotary, MoE routing, and the gated
 * delta rule token by token versus the chunked (WY) form computed here
 * independently in double precision.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ops.h"
#include "t.h"

static double
frand(void)
{
	return (double)rand() / RAND_MAX * 2.0 - 1.0;
}

static void
test_norms(void)
{
	float x[7] = { 1, -2, 3, -4, 5, -6, 7 }, w0[7] = { 0 }, y[7], z[7], w1[7];
	double ss = 0;

	ops_rmsnorm_zc(y, x, w0, 7, 0);
	for (int i = 0; i < 7; i++)
		ss += (double)y[i] * y[i];
	T_NEAR(ss / 7, 1.0, 1e-6); /* zero weight means scale 1 + 0 */
	for (int i = 0; i < 7; i++)
		w1[i] = 0.5f, z[i] = 0;
	ops_rmsnorm_zc(y, x, w1, 7, 0);
	T_NEAR(y[0] / x[0], 1.5 / sqrt(140.0 / 7), 1e-6);
	/* Gated: weight applied directly; silu(0) = 0 zeroes everything. */
	memcpy(y, x, sizeof(x));
	ops_rmsnorm_gated(kernels_get(), y, w1, z, 7, 0);
	T_NEAR(y[3], 0, 1e-9);
	for (int i = 0; i < 7; i++)
		z[i] = 2;
	memcpy(y, x, sizeof(x));
	ops_rmsnorm_gated(kernels_get(), y, w1, z, 7, 1e-6f);
	T_NEAR(y[6], 7 / sqrt(140.0 / 7 + 1e-6) * 0.5 * (2 / (1 + exp(-2.0))), 1e-5);
	memcpy(y, x, sizeof(x));
	ops_l2norm(y, 7, 0, 2.0f);
	T_NEAR(y[1], -2 * 2 / sqrt(140.0), 1e-6);
}

static void
test_rope(void)
{
	enum { HD = 16, RD = 8 };
	double inv[RD / 2];
	float q[HD], k[HD], a[HD], b[HD], c[HD], d[HD];
	double n0 = 0, n1 = 0, d1 = 0, d2 = 0;

	ops_rope_freqs(inv, RD, 1e7);
	T_NEAR(inv[0], 1.0, 0);
	T_NEAR(inv[1], pow(1e7, -2.0 / RD), 1e-15);
	for (int i = 0; i < HD; i++)
		q[i] = (float)frand(), k[i] = (float)frand();
	/* Explicit formula for pair (m, m + RD/2) at position 5. */
	memcpy(a, q, sizeof(q));
	ops_rope(a, RD, 5, inv);
	for (int m = 0; m < RD / 2; m++) {
		double ang = 5 * pow(1e7, -2.0 * m / RD);

		T_NEAR(a[m], q[m] * cos(ang) - q[m + RD / 2] * sin(ang), 1e-6);
		T_NEAR(a[m + RD / 2], q[m + RD / 2] * cos(ang) + q[m] * sin(ang), 1e-6);
	}
	for (int i = RD; i < HD; i++)
		T_NEAR(a[i], q[i], 0); /* dims past rotary_dim pass through */
	for (int i = 0; i < HD; i++)
		n0 += (double)q[i] * q[i], n1 += (double)a[i] * a[i];
	T_NEAR(n0, n1, 1e-5);
	/* Relative position: <R(p)q, R(p')k> = <R(p-p')q, k>. */
	memcpy(b, k, sizeof(k));
	ops_rope(b, RD, 2, inv);
	memcpy(c, q, sizeof(q));
	ops_rope(c, RD, 3, inv);
	memcpy(d, k, sizeof(k));
	for (int i = 0; i < HD; i++)
		d1 += (double)a[i] * b[i], d2 += (double)c[i] * d[i];
	T_NEAR(d1, d2, 1e-5);
}

/*
 * Far positions at the real model's shape (head 256, rotary 64 = partial
 * factor 0.25, theta 1e7): near 2 x 10^5 tokens (the context Qwen3-Next
 * supports without scaling is 262,144) the angle of the fastest pair is
 * 2 x 10^5 radians, where a float angle would be off by ~0.01 rad.  The
 * rotation must match a float64 evaluation of the formula to float
 * rounding.
 */
static void
test_rope_far(void)
{
	enum { HD = 256, RD = 64 };
	static const int pos[] = { 131071, 199999, 200000, 262143 };
	double inv[RD / 2], worst = 0;
	float q[HD], a[HD];

	ops_rope_freqs(inv, RD, 1e7);
	for (int i = 0; i < HD; i++)
		q[i] = (float)frand();
	for (size_t p = 0; p < sizeof(pos) / sizeof(pos[0]); p++) {
		memcpy(a, q, sizeof(q));
		ops_rope(a, RD, pos[p], inv);
		for (int m = 0; m < RD / 2; m++) {
			double ang = (double)pos[p] * pow(1e7, -2.0 * m / RD);
			double y0 = q[m] * cos(ang) - q[m + RD / 2] * sin(ang);
			double y1 = q[m + RD / 2] * cos(ang) + q[m] * sin(ang);

			worst = fmax(worst, fmax(fabs(a[m] - y0), fabs(a[m + RD / 2] - y1)));
		}
	}
	T_NEAR(worst, 0, 1e-6);
}

static void
test_route(void)
{
	float p[5] = { 1, 3, 2, 3, 0 }, w[5];
	int sel[5];
	double z = exp(1) + 2 * exp(3) + exp(2) + 1;

	ops_moe_route(p, 5, 2, true, sel, w);
	T_EQ_INT(sel[0], 1); /* tie between 1 and 3 goes to the lower index */
	T_EQ_INT(sel[1], 3);
	T_NEAR(w[0], 0.5, 1e-6);
	T_NEAR(w[1], 0.5, 1e-6);
	T_NEAR(p[2], exp(2) / z, 1e-6); /* p holds the softmax over all experts */
	{
		float q[5] = { 1, 3, 2, 3, 0 };

		ops_moe_route(q, 5, 3, false, sel, w);
		T_EQ_INT(sel[2], 2);
		T_NEAR(w[2], exp(2) / z, 1e-6); /* not renormalised */
		T_NEAR(w[0] + w[1] + w[2], (2 * exp(3) + exp(2)) / z, 1e-6);
	}
	{
		float q[4] = { -1, -1, -1, -1 };

		ops_moe_route(q, 4, 4, true, sel, w);
		T_ASSERT(sel[0] == 0 && sel[1] == 1 && sel[2] == 2 && sel[3] == 3);
		T_NEAR(w[3], 0.25, 1e-6);
	}
}

/*
 * The chunked gated delta rule of docs/model-format.md "Gated DeltaNet" for one head, double
 * precision, state S [dk][dv] (HF layout), chunk size C, zero padding.
 */
static void
chunked(int T, int dk, int dv, int C, const double *q, const double *k, const double *v,
	const double *beta, const double *g, double *S, double *out)
{
	int nc = (T + C - 1) / C;
	double *A = calloc((size_t)C * C, sizeof(double)), *G = calloc((size_t)C, sizeof(double));
	double *U = calloc((size_t)C * dv, sizeof(double)),
	       *W = calloc((size_t)C * dk, sizeof(double));
	double *Vn = calloc((size_t)C * dv, sizeof(double));

	for (int ch = 0; ch < nc; ch++) {
		int t0 = ch * C;
#define IN(t)   ((t0 + (t)) < T)
#define Q(t, i) (IN(t) ? q[(size_t)(t0 + (t)) * dk + (i)] : 0)
#define K(t, i) (IN(t) ? k[(size_t)(t0 + (t)) * dk + (i)] : 0)
#define V(t, i) (IN(t) ? v[(size_t)(t0 + (t)) * dv + (i)] : 0)
#define B(t)    (IN(t) ? beta[t0 + (t)] : 0)
#define D(i, j) ((j) <= (i) ? exp(G[i] - G[j]) : 0)
		for (int i = 0; i < C; i++)
			G[i] = (i ? G[i - 1] : 0) + (IN(i) ? g[t0 + i] : 0);
		for (int i = 0; i < C; i++)
			for (int j = 0; j < C; j++) {
				double s = 0;

				for (int x = 0; x < dk; x++)
					s += B(i) * K(i, x) * K(j, x);
				A[i * C + j] = j < i ? -s * D(i, j) : 0;
			}
		for (int i = 1; i < C; i++) {
			double row[256];

			for (int m = 0; m < i; m++) {
				row[m] = A[i * C + m];
				for (int j = 0; j < i; j++)
					row[m] += A[i * C + j] * A[j * C + m];
			}
			for (int m = 0; m < i; m++)
				A[i * C + m] = row[m];
		}
		for (int i = 0; i < C; i++)
			A[i * C + i] += 1; /* T = A + I */
		for (int i = 0; i < C; i++) {
			for (int y = 0; y < dv; y++) {
				double s = 0;

				for (int j = 0; j < C; j++)
					s += A[i * C + j] * B(j) * V(j, y);
				U[i * dv + y] = s;
			}
			for (int x = 0; x < dk; x++) {
				double s = 0;

				for (int j = 0; j < C; j++)
					s += A[i * C + j] * B(j) * K(j, x) * exp(G[j]);
				W[i * dk + x] = s;
			}
		}
		for (int i = 0; i < C; i++)
			for (int y = 0; y < dv; y++) {
				double s = 0;

				for (int x = 0; x < dk; x++)
					s += W[i * dk + x] * S[x * dv + y];
				Vn[i * dv + y] = U[i * dv + y] - s;
			}
		for (int i = 0; i < C && IN(i); i++)
			for (int y = 0; y < dv; y++) {
				double s = 0;

				for (int x = 0; x < dk; x++)
					s += Q(i, x) * exp(G[i]) * S[x * dv + y];
				for (int j = 0; j <= i; j++) {
					double qk = 0;

					for (int x = 0; x < dk; x++)
						qk += Q(i, x) * K(j, x);
					s += qk * D(i, j) * Vn[j * dv + y];
				}
				out[(size_t)(t0 + i) * dv + y] = s;
			}
		for (int x = 0; x < dk; x++)
			for (int y = 0; y < dv; y++) {
				double s = exp(G[C - 1]) * S[x * dv + y];

				for (int j = 0; j < C; j++)
					s += K(j, x) * exp(G[C - 1] - G[j]) * Vn[j * dv + y];
				S[x * dv + y] = s;
			}
#undef IN
#undef Q
#undef K
#undef V
#undef B
#undef D
	}
	free(A), free(G), free(U), free(W), free(Vn);
}

static void
unit(double *x, int n, double scale)
{
	double ss = 0;

	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	for (int i = 0; i < n; i++)
		x[i] *= scale / sqrt(ss + 1e-6);
}

static void
test_delta(const struct kernels *kern, int T, int C, int DK, int DV)
{
	size_t nq = (size_t)T * DK, nv = (size_t)T * DV;
	double *q = calloc(nq, sizeof(double)), *k = calloc(nq, sizeof(double));
	double *v = calloc(nv, sizeof(double)), *ref = calloc(nv, sizeof(double));
	double *beta = calloc((size_t)T, sizeof(double)), *g = calloc((size_t)T, sizeof(double));
	double *S = calloc((size_t)DK * DV, sizeof(double)), err = 0, serr = 0;
	float *Sf = calloc((size_t)DK * DV, sizeof(float)), *o = calloc((size_t)DV, sizeof(float));
	float *qf = calloc((size_t)DK, sizeof(float)), *kf = calloc((size_t)DK, sizeof(float));
	float *vf = calloc((size_t)DV, sizeof(float));

	for (int t = 0; t < T; t++) {
		for (int i = 0; i < DK; i++)
			q[t * DK + i] = frand(), k[t * DK + i] = frand();
		for (int i = 0; i < DV; i++)
			v[t * DV + i] = frand();
		unit(q + t * DK, DK, 1 / sqrt(DK));
		unit(k + t * DK, DK, 1);
		beta[t] = 1 / (1 + exp(-frand() * 3));
		g[t] = -exp(frand()) * log1p(exp(frand()));
	}
	chunked(T, DK, DV, C, q, k, v, beta, g, S, ref);
	for (int t = 0; t < T; t++) {
		for (int i = 0; i < DK; i++)
			qf[i] = (float)q[t * DK + i], kf[i] = (float)k[t * DK + i];
		for (int i = 0; i < DV; i++)
			vf[i] = (float)v[t * DV + i];
		ops_delta_step(kern, Sf, DK, DV, qf, kf, vf, (float)beta[t], (float)exp(g[t]), o);
		for (int i = 0; i < DV; i++)
			err = fmax(err, fabs(o[i] - ref[t * DV + i]));
	}
	/* Final state: recurrent layout is [dv][dk], chunked is [dk][dv]. */
	for (int x = 0; x < DK; x++)
		for (int y = 0; y < DV; y++)
			serr = fmax(serr, fabs(Sf[y * DK + x] - S[x * DV + y]));
	T_ASSERT(err == err && serr == serr); /* not NaN */
	T_NEAR(err, 0, 2e-5);
	T_NEAR(serr, 0, 2e-5);
	free(q), free(k), free(v), free(ref), free(beta), free(g), free(S);
	free(Sf), free(o), free(qf), free(kf), free(vf);
}

int
main(void)
{
	const struct kernels *k = &kernels_scalar;

	srand(7);
	test_norms();
	test_rope();
	test_rope_far();
	test_route();
	test_delta(k, 1, 4, 16, 12);
	test_delta(k, 13, 4, 16, 12);  /* ragged last chunk */
	test_delta(k, 37, 64, 16, 12); /* one padded chunk, as HF runs a short prompt */
	/* Every tier: the model's head size (128 x 128), and odd sizes that
	 * take the fallbacks. */
	for (int i = 0; i < 3; i++) {
		static const char *const tiers[] = { "scalar", "avx2", "avx512" };
		const struct kernels *kt = kernels_tier(tiers[i]);

		if (kt == NULL)
			continue;
		test_delta(kt, 29, 8, 128, 128);
		test_delta(kt, 9, 4, 16, 12);
		test_delta(kt, 9, 4, 20, 7);
		test_delta(kt, 5, 4, 256, 8);
	}
	return t_done("test-ops");
}
