/*
 * prefetch-rows.h - PREFETCH_ROWS, the software prefetch of the attention
 * kernels (scores_h, mix_h) in avx2.c and avx512.c.  Private to those files;
 * any thread.
 *
 * Ask for the cached rows PF_ROWS positions ahead of row s (n halves from r:
 * pass a multiple of the row width row_n to cover several rows).  The
 * attention kernels do about 4 fma per byte read, and without this the loads
 * and the arithmetic did not overlap: 32k positions x 256 x 8 heads of scores
 * took twice as long as reading the keys alone (docs/BENCHMARKS.md, "Long
 * context").
 *
 * A macro, not a function: GCC takes a function that only prefetches for one
 * without side effects and deletes the calls (seen with GCC 12, inline or not).
 */
#ifndef QNEXT_PREFETCH_ROWS_H
#define QNEXT_PREFETCH_ROWS_H

#include <immintrin.h>
#include <stddef.h>

#define PF_ROWS 8

#define PREFETCH_ROWS(r, n, row_n, s, np)                                                       \
	do {                                                                                    \
		if ((s) + PF_ROWS < (np))                                                       \
			for (int pf_i = 0; pf_i < (n); pf_i += 32)                              \
				_mm_prefetch(                                                   \
					(const char *)((r) + (size_t)PF_ROWS * (row_n) + pf_i), \
					_MM_HINT_T0);                                           \
	} while (0)

#endif
