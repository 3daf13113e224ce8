/*
 * ops.c - norms, rotary, routing and the delta-rule step (see ops.h).
 * Sums of squares are accumulated in double: they set the scale of whole
 * vectors, and the cost is nothing next to the matrix products.
 * Any thread.
 */
#include "ops.h"

#include <math.h>

#include "kernels.h"

void
ops_rmsnorm_zc(float *y, const float *x, const float *w, int n, float eps)
{
	double ss = 0;
	float r;

	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	r = (float)(1.0 / sqrt(ss / n + eps));
	for (int i = 0; i < n; i++)
		y[i] = x[i] * r * (1.0f + w[i]);
}

void
ops_rmsnorm_gated(const struct kernels *k, float *o, const float *w, float *z, int n, float eps)
{
	double ss = 0;
	float r;

	for (int i = 0; i < n; i++)
		ss += (double)o[i] * o[i];
	r = (float)(1.0 / sqrt(ss / n + eps));
	k->silu(z, z, n);
	for (int i = 0; i < n; i++)
		o[i] = o[i] * r * w[i] * z[i];
}

void
ops_l2norm(float *x, int n, float eps, float scale)
{
	double ss = 0;
	float r;

	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	r = (float)(scale / sqrt(ss + eps));
	for (int i = 0; i < n; i++)
		x[i] *= r;
}

void
ops_rope_freqs(double *inv_freq, int rotary_dim, double theta)
{
	for (int i = 0; i < rotary_dim / 2; i++)
		inv_freq[i] = pow(theta, -2.0 * i / rotary_dim);
}

void
ops_rope(float *x, int rotary_dim, int pos, const double *inv_freq)
{
	int half = rotary_dim / 2;

	for (int i = 0; i < half; i++) {
		double a = pos * inv_freq[i];
		float cs = (float)cos(a), sn = (float)sin(a);
		float x0 = x[i], x1 = x[i + half];

		x[i] = x0 * cs - x1 * sn;
		x[i + half] = x1 * cs + x0 * sn;
	}
}

void
ops_top_k(const float *x, int n, int k, int *out)
{
	for (int i = 0; i < k; i++) {
		int best = -1;

		/* Repeated max: k is small (10 of 512). */
		for (int j = 0; j < n; j++) {
			bool taken = false;

			for (int a = 0; a < i && !taken; a++)
				taken = out[a] == j;
			if (!taken && (best < 0 || x[j] > x[best]))
				best = j;
		}
		out[i] = best;
	}
}

void
ops_moe_route(float *p, int n_experts, int top_k, bool norm, int *sel, float *w)
{
	float mx = -INFINITY, sum = 0, wsum = 0;

	for (int e = 0; e < n_experts; e++)
		mx = p[e] > mx ? p[e] : mx;
	for (int e = 0; e < n_experts; e++) {
		p[e] = expf(p[e] - mx);
		sum += p[e];
	}
	for (int e = 0; e < n_experts; e++)
		p[e] /= sum;
	ops_top_k(p, n_experts, top_k, sel);
	for (int i = 0; i < top_k; i++) {
		w[i] = p[sel[i]];
		wsum += w[i];
	}
	if (norm)
		for (int i = 0; i < top_k; i++)
			w[i] /= wsum;
}

void
ops_delta_step(const struct kernels *k, float *S, int dk, int dv, const float *q, const float *kk,
	       const float *v, float beta, float decay, float *o)
{
	k->delta_step(S, dk, dv, q, kk, v, beta, decay, o);
}
