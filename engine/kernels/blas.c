/*
 * blas.c - the OpenBLAS paths: a dequantizing matmul for big prefill batches
 * (weights expanded to float 64 output rows at a time, then sgemm) and a
 * plain sgemm for attention over long prompts.  The only file that includes
 * <cblas.h>.
 *
 * Any thread; OpenBLAS's own thread pool should stay off
 * (OPENBLAS_NUM_THREADS=1) because callers already split the rows.
 */
#include "kernels.h"

#include <cblas.h>

#include "util.h"

#define TILE_ROWS 64

/*
 * Rows [o0, o0 + n) of a GPTQ matrix into tmp [n][n_in].  Walks qweight in
 * address order (rows of words across outputs) and writes each output's row
 * 32 / bits floats at a time.
 */
static void
dequant_gptq(const struct qmat *W, int o0, int n, float *tmp)
{
	int per = 32 / W->bits, mask = (1 << W->bits) - 1, zs = (W->n_out * W->bits + 31) / 32;
	float s[TILE_ROWS];
	int z[TILE_ROWS], g = -1, r, k, j;

	for (r = 0; r < W->n_in / per; r++) {
		const uint32_t *wr = W->qweight + (size_t)r * W->n_out + o0;

		if ((r * per) / W->group_size != g) {
			g = (r * per) / W->group_size;
			for (k = 0; k < n; k++) {
				int o = o0 + k;
				uint32_t zw = W->qzeros[(size_t)g * zs + (size_t)(o / per)];

				z[k] = (int)((zw >> ((o % per) * W->bits)) & (uint32_t)mask) +
				       gptq_zadd(W);
				s[k] = fp16_to_f32(W->scales[(size_t)g * W->n_out + o]);
			}
		}
		for (k = 0; k < n; k++) {
			float *dst = tmp + (size_t)k * W->n_in + (size_t)r * per;
			uint32_t w = wr[k];

			for (j = 0; j < per; j++)
				dst[j] = s[k] *
					 (float)((int)((w >> (j * W->bits)) & (uint32_t)mask) -
						 z[k]);
		}
	}
}

void
kernels_matmul_blas(const struct qmat *W, const float *X, int n_tok, float *Y, int ldy, int o0,
		    int o1, float *tmp)
{
	int o, n, k;

	if (n_tok <= 0)
		return;
	for (o = o0; o < o1; o += TILE_ROWS) {
		const float *B = tmp;

		n = MIN(TILE_ROWS, o1 - o);
		if (W->fmt == WFMT_F32)
			B = (const float *)W->w + (size_t)o * W->n_in;
		else if (W->fmt == WFMT_GPTQ && W->group_size % (32 / W->bits) == 0)
			dequant_gptq(W, o, n, tmp);
		else
			for (k = 0; k < n; k++)
				qmat_row_f32(W, o + k, tmp + (size_t)k * W->n_in);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, n, W->n_in, 1.0f, X,
			    W->n_in, B, W->n_in, 0.0f, Y + o, ldy);
	}
}

void
kernels_sgemm_nt(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float *C,
		 int ldc, bool accumulate)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, A, lda, B, ldb,
		    accumulate ? 1.0f : 0.0f, C, ldc);
}

void
kernels_blas_init(void)
{
	openblas_set_num_threads(1);
}
