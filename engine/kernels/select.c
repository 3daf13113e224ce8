/*
 * select.c - picks the kernel tier once at start-up: the best one the CPU
 * supports (AVX-512 with VNNI, else AVX2 with FMA and F16C, else scalar), or
 * the one the environment variable QNEXT_ISA names.
 *
 * kernels_get() must first be called before threads start; afterwards the
 * choice is read-only and any thread may call both functions.
 */
#include "kernels.h"

#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* The most bytes kernels_chunk_y_bytes() returns. */
#define CHUNK_Y_MAX ((size_t)2 << 20)

/* GLOBAL: the tier in use, written once by the first kernels_get() (before
 * any worker thread exists) and only read afterwards. */
static const struct kernels *chosen;
/* GLOBAL: kernels_chunk_y_bytes(), written once with `chosen`. */
static size_t chunk_y_bytes = 128 * 1024;

/*
 * CPUID plus XGETBV (did the OS enable the AVX / AVX-512 register state?).
 * Read directly because clang 14's __builtin_cpu_supports() knows no "f16c".
 */
static uint64_t
xcr0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

static bool
cpu_has_avx2(void)
{
	unsigned int a, b, c, d;
	/* ECX: 12 FMA, 27 OSXSAVE, 28 AVX, 29 F16C. */
	uint32_t need = 1u << 12 | 1u << 27 | 1u << 28 | 1u << 29;

	/* XCR0 bits 1-2: the OS saves the SSE and AVX state. */
	if (!__get_cpuid(1, &a, &b, &c, &d) || (c & need) != need || (xcr0() & 0x6) != 0x6)
		return false;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	return (b & (1u << 5)) != 0; /* AVX2 */
}

static bool
cpu_has_avx512(void)
{
	unsigned int a, b, c, d;
	/* EBX: 16 F, 17 DQ, 30 BW, 31 VL (avx512.c is built with all four). */
	uint32_t need = 1u << 16 | 1u << 17 | 1u << 30 | 1u << 31;

	if (!cpu_has_avx2() || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	/* ECX bit 11: VNNI; XCR0 bits 5-7: opmask and the upper ZMM state. */
	return (b & need) == need && (c & (1u << 11)) != 0 && (xcr0() & 0xe6) == 0xe6;
}

size_t
kernels_chunk_y_bytes(void)
{
	return chunk_y_bytes;
}

/* Per thread: the buffer kernels_use_y_scratch() lent, and its size. */
static _Thread_local float *y_scratch;
static _Thread_local size_t y_scratch_bytes;

void
kernels_use_y_scratch(float *buf, size_t bytes)
{
	y_scratch = buf;
	y_scratch_bytes = buf != NULL ? bytes : 0;
}

float *
kernels_y_scratch(size_t *bytes)
{
	*bytes = y_scratch_bytes;
	return y_scratch;
}

/* Half of L2: the rest is for the weight panel and the activations. */
static size_t
l2_half(void)
{
	long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);

	if (l2 <= 0)
		return 128 * 1024; /* unknown: small enough for any x86 core */
	return MIN(MAX((size_t)l2 / 2, (size_t)128 * 1024), (size_t)CHUNK_Y_MAX);
}

const struct kernels *
kernels_tier(const char *name)
{
	if (name == NULL)
		return NULL;
	if (strcmp(name, "scalar") == 0)
		return &kernels_scalar;
	if (strcmp(name, "avx2") == 0)
		return cpu_has_avx2() ? &kernels_avx2 : NULL;
	if (strcmp(name, "avx512") == 0)
		return cpu_has_avx512() ? &kernels_avx512 : NULL;
	return NULL;
}

const struct kernels *
kernels_get(void)
{
	const struct kernels *best;
	const char *env;

	if (chosen != NULL)
		return chosen;
	kernels_blas_init();
	chunk_y_bytes = l2_half();
	if (cpu_has_avx512())
		best = &kernels_avx512;
	else if (cpu_has_avx2())
		best = &kernels_avx2;
	else
		best = &kernels_scalar;
	chosen = best;
	env = getenv("QNEXT_ISA");
	if (env != NULL && *env != '\0') {
		if ((chosen = kernels_tier(env)) == NULL) {
			/* Runs once: later calls return above. */
			fprintf(stderr,
				"qnext: QNEXT_ISA=%s is unknown or not supported by this CPU; "
				"using %s\n",
				env, best->name);
			chosen = best;
		}
	}
	return chosen;
}
