/*
 * bench-tokenizer.c - how long the real Qwen3 tokenizer.json takes to load
 * and how fast encode runs: English prose, mixed text (code, CJK, emoji,
 * numbers) and made-up words that defeat the per-call word cache.  Each text
 * is about 2 MB; figures are the median of 5 runs, by the wall clock and by
 * this thread's CPU time (steadier on a busy machine).  Not part of `make check`;
 * build with `make build/release/tests/bench-tokenizer` and run it from the
 * repository root.  Single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"
#include "util.h"

#define RUNS   5
#define TARGET (2u << 20)

static const char *const prose[] = {
	"The history of the lighthouse is, in many ways, the history of coastal trade itself. "
	"Long before electric lamps, keepers trimmed wicks through the night, climbing narrow "
	"stairs every few hours to polish the lenses and wind the clockwork that turned them. "
	"A single missed rotation could send a ship onto the rocks, so the work was slow, "
	"repetitive and never finished.\n\n",
	"She opened the letter at the kitchen table, read the first line twice, and then "
	"folded it again without finishing. Outside, the rain had stopped; somewhere down the "
	"street a dog was barking at nothing in particular. \"Not today,\" she said to nobody, "
	"and went to put the kettle on.\n\n",
	"Researchers measured the growth of 214 seedlings over eleven weeks. Plants that "
	"received filtered light grew about 18% taller than the control group, although the "
	"difference shrank once temperatures rose above 30 degrees. The authors caution that "
	"the sample came from a single greenhouse and may not generalize.\n\n",
	"If you have ever tried to assemble flat-pack furniture without the instructions, you "
	"know the particular despair of holding a leftover screw. Was it important? Will the "
	"shelf collapse next Tuesday? Nobody can say, and the little bag of spare parts only "
	"deepens the mystery.\n\n",
	"The committee's report, published on Thursday, recommends that the city double its "
	"investment in public transport, extend night bus services, and review parking fees "
	"in the centre. Critics argue the plan is too expensive; supporters say the cost of "
	"doing nothing is higher.\n\n",
};

static const char *const mixed[] = {
	"static int\nparse(const char *s, size_t n)\n{\n\tfor (size_t i = 0; i < n; i++)\n"
	"\t\tif (s[i] == '\\n')\n\t\t\treturn (int)i;\n\treturn -1;\n}\n\n",
	"def mean(xs: list[float]) -> float:\n    return sum(xs) / len(xs) if xs else 0.0\n\n",
	"机器学习是人工智能的一个分支，它使计算机能够从数据中学习。"
	"今天的天气很好，我们去公园散步吧。\n",
	"東京は日本の首都です。週末に友達と映画を見に行きました。\n",
	"Prices rose 3.75% in Q3 2024 (from $1,249.99 to $1,296.86); order #A-77812 ships "
	"on 2025-01-15 at 09:30.\n",
	"Great job 🎉🎉 see you soon 😀👍🏽 — "
	"café, naïve, Ünïcödé ✓ → ∑ x² ≤ π\n",
	"안녕하세요, 만나서 반갑습니다. Привет, как дела? مرحبا بالعالم\n",
};

/* Repeat the paragraphs in turn until the text reaches TARGET bytes. */
static char *
repeat(const char *const *parts, size_t n_parts, size_t *len)
{
	char *s = xmalloc(TARGET + 4096);
	size_t n = 0, i = 0, k;

	while (n < TARGET) {
		k = strlen(parts[i++ % n_parts]);
		memcpy(s + n, parts[(i - 1) % n_parts], k);
		n += k;
	}
	s[n] = '\0';
	*len = n;
	return s;
}

/* Random words from random syllables: almost every word is new, so the
 * word cache rarely hits and each word is merged from bytes. */
static char *
made_up(size_t *len)
{
	static const char *const syl[] = { "ka",  "lo",   "mer", "tis", "an", "qu",  "ei",  "ro",
					   "bra", "ston", "vel", "ix",  "un", "dor", "pha", "ze" };
	char *s = xmalloc(TARGET + 64);
	size_t n = 0, k, w;
	uint32_t x = 1;

	while (n < TARGET) {
		s[n++] = ' ';
		for (w = 2 + (x >> 7) % 4; w > 0; w--) {
			x = x * 1664525u + 1013904223u;
			k = strlen(syl[(x >> 24) % ARRAY_LEN(syl)]);
			memcpy(s + n, syl[(x >> 24) % ARRAY_LEN(syl)], k);
			n += k;
		}
	}
	s[n] = '\0';
	*len = n;
	return s;
}

static double
cpu_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
bench(const struct tokenizer *t, const char *name, const char *text, size_t len)
{
	double sec[RUNS], cpu[RUNS], t0, c0;
	int32_t *ids;
	size_t n = 0;
	char *cause = NULL;
	int r;

	for (r = 0; r < RUNS; r++) {
		t0 = now_sec();
		c0 = cpu_sec();
		if (tokenizer_encode(t, text, len, &ids, &n, &cause) < 0) {
			fprintf(stderr, "bench-tokenizer: %s\n", cause);
			free(cause);
			return;
		}
		sec[r] = now_sec() - t0;
		cpu[r] = cpu_sec() - c0;
		free(ids);
	}
	qsort(sec, RUNS, sizeof(*sec), dbl_cmp);
	qsort(cpu, RUNS, sizeof(*cpu), dbl_cmp);
	printf("encode %-8s %.2f MB, %zu tokens (%.2f bytes/token): %6.1f MB/s wall, %6.1f MB/s "
	       "cpu\n",
	       name, len / 1e6, n, (double)len / (double)n, len / 1e6 / sec[RUNS / 2],
	       len / 1e6 / cpu[RUNS / 2]);
}

int
main(void)
{
	double sec[RUNS], cpu[RUNS], t0, c0;
	struct tokenizer *t = NULL;
	char *cause = NULL, *text;
	size_t len;
	int r;

	for (r = 0; r < RUNS; r++) {
		tokenizer_free(t);
		t0 = now_sec();
		c0 = cpu_sec();
		if ((t = tokenizer_load("share/qwen3-tokenizer", &cause)) == NULL) {
			fprintf(stderr, "bench-tokenizer: %s\n", cause);
			free(cause);
			return 1;
		}
		sec[r] = now_sec() - t0;
		cpu[r] = cpu_sec() - c0;
	}
	qsort(sec, RUNS, sizeof(*sec), dbl_cmp);
	qsort(cpu, RUNS, sizeof(*cpu), dbl_cmp);
	printf("load tokenizer.json: median %.3f s wall (min %.3f, max %.3f), %.3f s cpu\n",
	       sec[RUNS / 2], sec[0], sec[RUNS - 1], cpu[RUNS / 2]);
	text = repeat(prose, ARRAY_LEN(prose), &len);
	bench(t, "prose", text, len);
	free(text);
	text = repeat(mixed, ARRAY_LEN(mixed), &len);
	bench(t, "mixed", text, len);
	free(text);
	text = made_up(&len);
	bench(t, "made-up", text, len);
	free(text);
	tokenizer_free(t);
	return 0;
}
