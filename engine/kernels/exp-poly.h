/*
 * exp-poly.h - the constants of the exp used by silu in avx2.c and avx512.c,
 * kept in one place so both tiers compute the same function.  Private to
 * those files; any thread.
 *
 * exp(t), t clamped to [EXP_MIN, EXP_MAX] (so 2^n stays a normal float):
 * n = round(t log2 e), r = t - n ln2 with ln2 in two parts (Cephes' expf),
 * exp(r) ~ 1 + r + r^2 (EXP_C[0] r^5 + ... + EXP_C[5]) by Horner, times 2^n.
 * About 1 ulp over the range.
 */
#ifndef QNEXT_EXP_POLY_H
#define QNEXT_EXP_POLY_H

#define EXP_MIN    (-87.0f)
#define EXP_MAX    88.0f
#define EXP_LOG2E  1.44269504089f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO (-2.12194440e-4f)
#define EXP_N_C    6

static const float EXP_C[EXP_N_C] = { 1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
				      4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f };

#endif
