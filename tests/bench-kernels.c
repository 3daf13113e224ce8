/*
 * bench-kernels.c - decode matvec speed of each kernel tier, in GB/s of
 * weights read, next to a plain streaming read measured in the same run.
 * Not part of `make check`; build and run by hand:
 *   make build/release/tests/bench-kernels
 *   OPENBLAS_NUM_THREADS=1 build/release/tests/bench-kernels
 *
 * Shapes (docs/model-format.md "Module shapes"): in_proj_qkvz 2048 -> 12288 at 8 bits, and ten
 * experts' gate_proj 2048 -> 512 at 4 bits.  Enough copies are cycled that
 * the weights come from DRAM, not the last-level cache.  Then a BF16
 * lm_head-like matvec and prefill products in GOP/s.  One thread.
 */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define WORKING_SET (768u << 20) /* bytes of weights cycled per shape */

struct shape {
	const char *what;
	int bits, n_in, n_out;
	int per_step; /* matrices per timed step (decode), or tokens (prefill) */
};

static uint64_t rng_state = 1;

static uint32_t
rng_u32(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng_state >> 32);
}

static size_t
gptq_bytes(const struct shape *s)
{
	size_t g = (size_t)(s->n_in + 127) / 128;

	return (size_t)s->n_in * s->bits / 8 * s->n_out + g * s->n_out * s->bits / 8 +
	       g * s->n_out * 2;
}

/* n matrices of one shape, symmetric like the checkpoint, random weights. */
static struct qmat *
make_mats(const struct shape *s, int n)
{
	struct qmat *m = xcalloc((size_t)n, sizeof(*m));
	int g = (s->n_in + 127) / 128, k;
	size_t nw = (size_t)s->n_in * s->bits / 32 * s->n_out,
	       nz = (size_t)g * s->n_out * s->bits / 32;
	size_t ns = (size_t)g * s->n_out, j;

	for (k = 0; k < n; k++) {
		uint32_t *qw = xmalloc(nw * 4), *qz = xmalloc(nz * 4);
		uint16_t *sc = xmalloc(ns * 2);

		for (j = 0; j < nw; j++)
			qw[j] = rng_u32();
		for (j = 0; j < nz; j++)
			qz[j] = s->bits == 8 ? 0x7F7F7F7Fu : 0x77777777u;
		for (j = 0; j < ns; j++)
			sc[j] = f32_to_fp16(0.01f);
		m[k] = (struct qmat){ .fmt = WFMT_GPTQ,
				      .n_in = s->n_in,
				      .n_out = s->n_out,
				      .bits = s->bits,
				      .group_size = 128,
				      .n_groups = g,
				      .qweight = qw,
				      .qzeros = qz,
				      .scales = sc };
	}
	return m;
}

static void
free_mats(struct qmat *m, int n)
{
	int k;

	for (k = 0; k < n; k++) {
		free((void *)m[k].qweight);
		free((void *)m[k].qzeros);
		free((void *)m[k].scales);
	}
	free(m);
}

/* Best-of-3 seconds for one pass over all n matrices with kernel kt. */
static double
time_pass(const struct kernels *kt, const struct qmat *m, int n, bool q8, const float *x,
	  struct qact *a, float *y)
{
	double best = 1e30;
	int rep, k;

	for (rep = 0; rep < 3; rep++) {
		double t0 = now_sec();

		for (k = 0; k < n; k++) {
			if (q8) {
				kt->quantize_act(x, 1, m[k].n_in, a);
				kt->matmul_q8(&m[k], a, y, m[k].n_out, 0, m[k].n_out);
			} else {
				kt->matmul_f32(&m[k], x, 1, y, m[k].n_out, 0, m[k].n_out);
			}
		}
		best = MIN(best, now_sec() - t0);
	}
	return best;
}

/* Streaming read of a buffer bigger than any cache, through the tier's dot. */
static double
stream_gbs(const struct kernels *kt)
{
	size_t n = WORKING_SET / sizeof(float) / 2, i;
	float *buf = xmalloc(2 * n * sizeof(float)), s = 0;
	double best = 1e30;
	int rep;

	for (i = 0; i < 2 * n; i++)
		buf[i] = 1e-3f * (float)(i & 1023);
	for (rep = 0; rep < 3; rep++) {
		double t0 = now_sec();

		s += kt->dot(buf, buf + n, (int)n);
		best = MIN(best, now_sec() - t0);
	}
	free(buf);
	if (s == 42)
		printf(" ");
	return 2.0 * n * sizeof(float) / best / 1e9;
}

/*
 * Best-of-3 seconds of one prefill product over n_tok tokens: path 0 is
 * quantize_act + matmul_q8, 1 matmul_f32, 2 the BLAS fallback.
 */
static double
time_prefill(const struct kernels *kt, int path, const struct qmat *m, const float *x, int n_tok,
	     struct qact *a, float *y, float *tmp)
{
	double best = 1e30, t0;
	int rep;

	for (rep = 0; rep < 3; rep++) {
		t0 = now_sec();
		if (path == 0) {
			kt->quantize_act(x, n_tok, m->n_in, a);
			kt->matmul_q8(m, a, y, m->n_out, 0, m->n_out);
		} else if (path == 1) {
			kt->matmul_f32(m, x, n_tok, y, m->n_out, 0, m->n_out);
		} else {
			kernels_matmul_blas(m, x, n_tok, y, m->n_out, 0, m->n_out, tmp);
		}
		best = MIN(best, now_sec() - t0);
	}
	return best;
}

/* Prefill GOP/s (2 per multiply-add) for a big 8-bit matrix and one expert. */
static void
prefill(void)
{
	static const struct shape shapes[] = {
		{ "prefill 2048->12288 8-bit", 8, 2048, 12288, 64 },
		{ "prefill 2048->512 4-bit", 4, 2048, 512, 16 },
	};
	static const char *names[] = { "avx2", "avx512" };
	size_t si, ti;
	int i;

	for (si = 0; si < ARRAY_LEN(shapes); si++) {
		const struct shape *s = &shapes[si];
		int n_tok = s->per_step;
		struct qmat *m = make_mats(s, 1);
		float *x = xmalloc((size_t)n_tok * s->n_in * sizeof(float));
		float *y = xmalloc((size_t)n_tok * s->n_out * sizeof(float));
		float *tmp = xmalloc((size_t)64 * s->n_in * sizeof(float));
		double ops = 2.0 * s->n_in * s->n_out * n_tok;
		struct qact a;

		for (i = 0; i < n_tok * s->n_in; i++)
			x[i] = (float)((int)(rng_u32() % 2001) - 1000) * 1e-3f;
		if (qact_init(&a, s->n_in, n_tok) != 0)
			return;
		for (ti = 0; ti < ARRAY_LEN(names); ti++) {
			const struct kernels *kt = kernels_tier(names[ti]);

			if (kt == NULL)
				continue;
			printf("%s, %d tok: %-7s q8 %6.1f GOP/s   f32 %6.1f GOP/s\n", s->what,
			       n_tok, names[ti],
			       ops / time_prefill(kt, 0, m, x, n_tok, &a, y, tmp) / 1e9,
			       ops / time_prefill(kt, 1, m, x, n_tok, &a, y, tmp) / 1e9);
		}
		printf("%s, %d tok: blas    %6.1f GOP/s\n", s->what, n_tok,
		       ops / time_prefill(NULL, 2, m, x, n_tok, &a, y, tmp) / 1e9);
		qact_release(&a);
		free_mats(m, 1);
		free(x);
		free(y);
		free(tmp);
	}
}

/* The BF16 lm_head shape (2048 inputs; rows cycled through the working set). */
static void
bf16_rows(const float *x)
{
	static const char *names[] = { "avx2", "avx512" };
	int n_in = 2048, n_out = (int)(WORKING_SET / 2 / (unsigned)n_in), i;
	uint16_t *w = xmalloc((size_t)n_in * n_out * 2);
	float *y = xmalloc((size_t)n_out * sizeof(float));
	struct qmat m = { .fmt = WFMT_BF16, .n_in = n_in, .n_out = n_out, .w = w };
	size_t ti, k;

	for (k = 0; k < (size_t)n_in * n_out; k++)
		w[k] = f32_to_bf16((float)(rng_u32() % 2001) * 1e-3f - 1.0f);
	for (ti = 0; ti < ARRAY_LEN(names); ti++) {
		const struct kernels *kt = kernels_tier(names[ti]);
		double best = 1e30, t0;

		if (kt == NULL)
			continue;
		for (i = 0; i < 3; i++) {
			t0 = now_sec();
			kt->matmul_f32(&m, x, 1, y, n_out, 0, n_out);
			best = MIN(best, now_sec() - t0);
		}
		printf("%-20s %-7s f32 %6.1f GB/s\n", "2048->N bf16 rows", names[ti],
		       (double)n_in * n_out * 2 / best / 1e9);
	}
	free(w);
	free(y);
}

int
main(void)
{
	static const struct shape shapes[] = {
		{ "2048->12288 8-bit", 8, 2048, 12288, 1 },
		{ "2048->512 x10 4-bit", 4, 2048, 512, 10 },
	};
	static const char *names[] = { "scalar", "avx2", "avx512" };
	float *x = xmalloc(2048 * sizeof(float)), *y = xmalloc(12288 * sizeof(float));
	struct qact a;
	size_t si, ti;
	int i;

	for (i = 0; i < 2048; i++)
		x[i] = (float)((int)(rng_u32() % 2001) - 1000) * 1e-3f;
	if (qact_init(&a, 2048, 1) != 0)
		return 1;
	printf("stream read (%s dot, %u MiB): %.1f GB/s\n", kernels_get()->name, WORKING_SET >> 20,
	       stream_gbs(kernels_get()));
	for (si = 0; si < ARRAY_LEN(shapes); si++) {
		const struct shape *s = &shapes[si];
		size_t bytes = gptq_bytes(s);
		int n_alloc = (int)(WORKING_SET / bytes), n = n_alloc - n_alloc % s->per_step;
		struct qmat *m = make_mats(s, n_alloc);

		for (ti = 0; ti < ARRAY_LEN(names); ti++) {
			const struct kernels *kt = kernels_tier(names[ti]);
			/* The scalar tier is slow: a few steps only. */
			int nn = ti == 0 ? s->per_step : n;
			double tq, tf;

			if (kt == NULL) {
				printf("%-20s %-7s skipped (CPU lacks it)\n", s->what, names[ti]);
				continue;
			}
			tq = time_pass(kt, m, nn, true, x, &a, y);
			tf = time_pass(kt, m, nn, false, x, &a, y);
			printf("%-20s %-7s q8 %6.1f GB/s (%7.1f us/step)   f32 %6.1f GB/s\n",
			       s->what, names[ti], bytes * (double)nn / tq / 1e9,
			       tq / nn * s->per_step * 1e6, bytes * (double)nn / tf / 1e9);
		}
		free_mats(m, n_alloc);
	}
	bf16_rows(x);
	prefill();
	qact_release(&a);
	free(x);
	free(y);
	return 0;
}
