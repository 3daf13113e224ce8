/*
 * t.h - the test harness: a few assertion macros that record file and line,
 * and t_done(), which prints "N passed, N failed" (the line CI parses) and
 * returns the exit status.  Header-only; include once per test program.
 */
#ifndef QNEXT_T_H
#define QNEXT_T_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int t_pass, t_fail;

#define T_ASSERT(c)                                                                   \
	do {                                                                          \
		if (c)                                                                \
			t_pass++;                                                     \
		else {                                                                \
			t_fail++;                                                     \
			fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #c); \
		}                                                                     \
	} while (0)

#define T_EQ_INT(a, b)                                                                      \
	do {                                                                                \
		long long t_a = (long long)(a), t_b = (long long)(b);                       \
		if (t_a == t_b)                                                             \
			t_pass++;                                                           \
		else {                                                                      \
			t_fail++;                                                           \
			fprintf(stderr, "%s:%d: FAIL: %s == %s (%lld vs %lld)\n", __FILE__, \
				__LINE__, #a, #b, t_a, t_b);                                \
		}                                                                           \
	} while (0)

#define T_NEAR(a, b, tol)                                                                          \
	do {                                                                                       \
		double t_a = (double)(a), t_b = (double)(b);                                       \
		if (fabs(t_a - t_b) <= (tol))                                                      \
			t_pass++;                                                                  \
		else {                                                                             \
			t_fail++;                                                                  \
			fprintf(stderr, "%s:%d: FAIL: %s ~ %s (%.9g vs %.9g, tol %g)\n", __FILE__, \
				__LINE__, #a, #b, t_a, t_b, (double)(tol));                        \
		}                                                                                  \
	} while (0)

#define T_STR_CONTAINS(hay, needle)                                                                \
	do {                                                                                       \
		const char *t_h = (hay);                                                           \
		if (t_h != NULL && strstr(t_h, (needle)) != NULL)                                  \
			t_pass++;                                                                  \
		else {                                                                             \
			t_fail++;                                                                  \
			fprintf(stderr, "%s:%d: FAIL: \"%s\" does not contain \"%s\"\n", __FILE__, \
				__LINE__, t_h ? t_h : "(null)", (needle));                         \
		}                                                                                  \
	} while (0)

static inline int
t_done(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, t_pass, t_fail);
	return t_fail != 0;
}

#endif
