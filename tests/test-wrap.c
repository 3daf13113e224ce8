/*
 * test-wrap.c - display widths and line wrapping: ASCII, CJK, combining
 * marks, emoji sequences, invalid bytes, tabs, tiny widths, a property check
 * over random UTF-8, and the rewrap speed of a 200 KB transcript.
 */
#include <locale.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "util.h"
#include "wrap.h"

#define E_ACUTE "e\xcc\x81"                /* e + U+0301 */
#define HEART   "\xe2\x9d\xa4\xef\xb8\x8f" /* U+2764 U+FE0F */
#define FAMILY  "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7"
#define THUMB   "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd" /* U+1F44D U+1F3FD */
#define FLAG_US "\xf0\x9f\x87\xba\xf0\x9f\x87\xb8" /* U+1F1FA U+1F1F8 */
#define FLAG_DE "\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa"
#define ZHONG   "\xe4\xb8\xad" /* U+4E2D, 2 columns */
#define WEN     "\xe6\x96\x87" /* U+6587 */
#define ZI      "\xe5\xad\x97" /* U+5B57 */

/* Wrap s and join the lines with '|', widths as "w,w,..." in *widths (both static). */
static const char *
wrapped(const char *s, int cols, const char **widths)
{
	static char out[1024], ws[256];
	struct wrap_seg segs[64];
	size_t n, len = strlen(s), at = 0, wat = 0;

	n = wrap_text(s, len, cols, segs, ARRAY_LEN(segs));
	T_EQ_INT(wrap_text(s, len, cols, NULL, 0), n);
	out[0] = ws[0] = '\0';
	for (size_t i = 0; i < n && i < ARRAY_LEN(segs); i++) {
		at += (size_t)snprintf(out + at, sizeof(out) - at, "%s%.*s", i ? "|" : "",
				       (int)segs[i].len, s + segs[i].off);
		wat += (size_t)snprintf(ws + wat, sizeof(ws) - wat, "%s%d", i ? "," : "",
					segs[i].width);
	}
	if (widths != NULL)
		*widths = ws;
	return out;
}

#define T_WRAP(s, cols, want) T_ASSERT(strcmp(wrapped((s), (cols), NULL), (want)) == 0)
#define T_WRAPW(s, cols, want, wid)                                        \
	do {                                                               \
		const char *t_w;                                           \
		T_ASSERT(strcmp(wrapped((s), (cols), &t_w), (want)) == 0); \
		T_ASSERT(strcmp(t_w, (wid)) == 0);                         \
	} while (0)

static int
width(const char *s)
{
	return wrap_width(s, strlen(s));
}

static void
test_width(void)
{
	int w;

	T_EQ_INT(width(""), 0);
	T_EQ_INT(width("hello"), 5);
	T_EQ_INT(width(ZHONG WEN), 4);
	T_EQ_INT(width("a" ZHONG), 3);
	T_EQ_INT(width(E_ACUTE), 1);
	T_EQ_INT(width("caf" E_ACUTE), 4);
	T_EQ_INT(width("\xcc\x81"), 0);   /* a lone combining mark */
	T_EQ_INT(width("\xff"), 1);       /* invalid byte */
	T_EQ_INT(width("ab\xe4\xb8"), 4); /* truncated sequence: one column per byte */
	T_EQ_INT(width("\xc0\x80"), 2);   /* overlong NUL */
	T_EQ_INT(width("\x01\x7f"), 2);   /* controls show as replacements */
	T_EQ_INT(width("\xc2\x85"), 1);   /* C1 control U+0085 */
	T_EQ_INT(width("\t"), 8);
	T_EQ_INT(width("a\tb"), 9);
	T_EQ_INT(width("abcdefgh\t"), 16);
	T_EQ_INT(wrap_width_at("\t", 1, 3), 5);
	T_EQ_INT(wrap_width_at("\t", 1, 8), 8);
	T_EQ_INT(wrap_width_at("ab\tc", 4, 5), 4); /* tab at 7 takes 1 */
	T_EQ_INT(width(FLAG_US), 2);

	T_EQ_INT(wrap_cluster("abc", 3, 0, &w), 1);
	T_EQ_INT(w, 1);
	T_EQ_INT(wrap_cluster(E_ACUTE "x", 4, 0, &w), 3);
	T_EQ_INT(w, 1);
	T_EQ_INT(wrap_cluster(HEART, strlen(HEART), 0, &w), strlen(HEART));
	T_EQ_INT(wrap_cluster(FAMILY "x", strlen(FAMILY) + 1, 0, &w), strlen(FAMILY));
	T_EQ_INT(w, 6); /* what curses will place: 2 + 2 + 2 */
	T_EQ_INT(wrap_cluster(THUMB, strlen(THUMB), 0, &w), strlen(THUMB));
	T_EQ_INT(wrap_cluster(FLAG_US FLAG_DE, 16, 0, &w), 8);
	T_EQ_INT(w, 2);
	T_EQ_INT(wrap_cluster("\n\xcc\x81", 3, 0, &w), 1); /* a newline takes no marks */
	T_EQ_INT(wrap_cluster("\t\xcc\x81", 3, 6, &w), 1); /* nor does a tab */
	T_EQ_INT(w, 2);
	T_EQ_INT(wrap_cluster(ZHONG, 2, 0, &w), 1); /* cut short: one byte */
	T_EQ_INT(w, 1);
}

static void
test_ascii(void)
{
	T_WRAPW("hello world", 5, "hello|world", "5,5");
	T_WRAPW("hello world", 6, "hello|world", "5,5");
	T_WRAPW("hello world", 11, "hello world", "11");
	T_WRAPW("hello world", 80, "hello world", "11");
	T_WRAP("the quick brown fox jumps over the lazy dog", 10,
	       "the quick|brown fox|jumps over|the lazy|dog");
	T_WRAP("a   b", 2, "a|b"); /* the whole blank run goes */
	T_WRAP("a   b", 4, "a|b"); /* break at the blanks, not after them */
	T_WRAP("ab  cd", 3, "ab|cd");
	T_WRAP("ab \ncd", 3, "ab |cd"); /* a hard break keeps blanks that fit */
	T_WRAP("  indented text", 10, "  indented|text");
	T_WRAP("x  ", 1, "x"); /* blanks at the very end vanish at a break */
}

static void
test_exact_fit(void)
{
	T_WRAPW("abcd", 4, "abcd", "4");
	T_WRAP("abcd\nef", 4, "abcd|ef"); /* no empty line after an exact fit */
	T_WRAP("abcd efgh", 4, "abcd|efgh");
	T_WRAP("abcd \nefgh", 4, "abcd|efgh"); /* blank and newline both eaten by one break */
	T_WRAP("abcd \n\nefgh", 4, "abcd||efgh");
	T_WRAP("abcd ", 4, "abcd");
	T_WRAP("abcd \n", 4, "abcd|");
}

static void
test_long_words(void)
{
	T_WRAPW("abcdefghij", 4, "abcd|efgh|ij", "4,4,2");
	T_WRAP("hi abcdefghij", 4, "hi|abcd|efgh|ij");
	T_WRAP("see https://example.com/a/very/long/path ok", 12,
	       "see|https://exam|ple.com/a/ve|ry/long/path|ok");
}

static void
test_cjk(void)
{
	T_WRAPW("a" ZHONG WEN ZI, 4, "a" ZHONG "|" WEN ZI, "3,4");
	T_WRAPW("a" ZHONG WEN ZI, 5, "a" ZHONG WEN "|" ZI, "5,2");
	T_WRAPW(ZHONG WEN ZI, 5, ZHONG WEN "|" ZI, "4,2");
	T_WRAPW("ab" ZHONG, 3, "ab|" ZHONG, "2,2");
	T_WRAPW(ZHONG " " WEN, 3, ZHONG "|" WEN, "2,2");
}

static void
test_combining(void)
{
	struct wrap_seg segs[4];

	T_WRAPW("caf" E_ACUTE " ok", 4, "caf" E_ACUTE "|ok", "4,2");
	T_WRAPW("abc" E_ACUTE, 3, "abc|" E_ACUTE, "3,1");
	T_EQ_INT(wrap_text("abc" E_ACUTE, 6, 3, segs, 4), 2);
	T_EQ_INT(segs[1].off, 3);
	T_EQ_INT(segs[1].len, 3);
	T_WRAP(E_ACUTE E_ACUTE E_ACUTE, 1, E_ACUTE "|" E_ACUTE "|" E_ACUTE);
	T_WRAP("\xcc\x81"
	       "ab",
	       1,
	       "\xcc\x81"
	       "a|b");                          /* a lone mark has no width */
	T_WRAP(" \xcc\x81x", 1, " \xcc\x81|x"); /* a marked space is no blank */
}

static void
test_emoji(void)
{
	T_WRAPW("ab" HEART "c", 3, "ab" HEART "|c", "3,1");
	T_WRAPW("a" FAMILY "b", 4, "a|" FAMILY "|b", "1,6,1"); /* too wide: a line alone */
	T_WRAPW("x" THUMB, 3, "x|" THUMB, "1,4");
	T_WRAPW(FLAG_US FLAG_DE, 3, FLAG_US "|" FLAG_DE, "2,2");
	T_WRAPW(FLAG_US FLAG_DE, 4, FLAG_US FLAG_DE, "4");
}

static void
test_invalid(void)
{
	T_WRAPW("\xff\xff\xff", 2, "\xff\xff|\xff", "2,1");
	T_WRAPW("ab\xe4\xb8", 3, "ab\xe4|\xb8", "3,1");
	T_WRAPW("\x80" E_ACUTE, 1, "\x80|" E_ACUTE, "1,1");
}

static void
test_tabs(void)
{
	T_WRAPW("a\tb", 20, "a\tb", "9");
	T_WRAPW("abcdefgh\tx", 10, "abcdefgh|x", "8,1");
	T_WRAPW("ab\tcd", 9, "ab|cd", "2,2");
	T_WRAPW("\tx", 4, "\t|x", "4,1"); /* an indenting tab clipped at the edge */
	T_WRAPW("\t\tx", 12, "\t\t|x", "12,1");
	T_WRAPW("abc\tdef", 10, "abc|def", "3,3"); /* tab to 8 is clipped to 10 */
}

static void
test_empty_lines(void)
{
	T_WRAPW("", 10, "", "0");
	T_WRAPW("\n", 10, "|", "0,0");
	T_WRAP("a\n\nb", 10, "a||b");
	T_WRAP("a\n", 10, "a|");
	T_WRAP("\n\n", 10, "||");
}

static void
test_tiny(void)
{
	struct wrap_seg segs[3];

	T_WRAP("ab", 1, "a|b");
	T_WRAP("a b", 1, "a|b");
	T_WRAPW(ZHONG, 1, ZHONG, "2");
	T_WRAPW("a" ZHONG "b", 1, "a|" ZHONG "|b", "1,2,1");
	T_WRAPW(ZHONG " x", 1, ZHONG "|x", "2,1");
	T_WRAPW(ZHONG "\nx", 1, ZHONG "|x", "2,1");
	T_WRAPW(ZHONG ZHONG, 2, ZHONG "|" ZHONG, "2,2");
	T_WRAPW("a" ZHONG, 2, "a|" ZHONG, "1,2");
	T_WRAP("ab", 0, "a|b");
	T_WRAP("ab", -5, "a|b");
	T_WRAP("\tx", 1, "\t|x");

	/* More lines than room: the count is still right and nothing overflows. */
	segs[2].off = 12345;
	T_EQ_INT(wrap_text("abcde", 5, 1, segs, 2), 5);
	T_EQ_INT(segs[1].off, 1);
	T_EQ_INT(segs[2].off, 12345);
}

/* ---- property check ---- */

static unsigned long long rng = 0x9e3779b97f4a7c15ull;

static unsigned
rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static size_t
random_text(char *buf, size_t cap)
{
	static const char *const pieces[] = {
		"a",
		"b",
		"word",
		"longerword",
		" ",
		" ",
		"  ",
		"\t",
		"\n",
		"\n\n",
		"\xc3\xa9",
		E_ACUTE,
		ZHONG,
		WEN,
		HEART,
		FAMILY,
		THUMB,
		FLAG_US,
		"\xf0\x9f\x87\xba",
		"\xe2\x80\x8d",
		"\xef\xb8\x8f",
		"\xcc\x81",
		"\xff",
		"\x80",
		"\xe4\xb8",
		"\x01",
		"\xf0\x9f\x98\x80",
		"\xe1\x84\x80\xe1\x85\xa1", /* jamo L + V */
	};
	size_t n = 0, want = rnd((unsigned)cap - 16);

	if (rnd(8) == 0) { /* plain random bytes */
		for (; n < want; n++)
			buf[n] = (char)rnd(256);
		return n;
	}
	while (n < want) {
		const char *p = pieces[rnd(ARRAY_LEN(pieces))];
		size_t k = strlen(p);

		memcpy(buf + n, p, k);
		n += k;
	}
	return n;
}

static bool
has_tab(const char *s, size_t len)
{
	return memchr(s, '\t', len) != NULL;
}

/* Clusters with a width in s (zero-width ones cannot be split from the next either). */
static int
visible_clusters(const char *s, size_t len)
{
	int n = 0, w;

	for (size_t i = 0; i < len;) {
		i += wrap_cluster(s + i, len - i, 0, &w);
		n += w > 0;
	}
	return n;
}

/* In check_props: note the first failed condition's line and stop checking. */
#define PROP(c)                          \
	do {                             \
		if (ok && !(c)) {        \
			ok = false;      \
			line = __LINE__; \
		}                        \
	} while (0)

/* Check every promise wrap.h makes about one text and width. */
static bool
check_props(const char *s, size_t len, int cols)
{
	static struct wrap_seg segs[1024];
	static bool boundary[600];
	static char rebuilt[600];
	size_t n, at = 0, i, j, end;
	int w;
	bool ok = true;
	int line = 0;

	memset(boundary, 0, sizeof(boundary));
	for (i = 0; i < len; i += wrap_cluster(s + i, len - i, 0, &w))
		boundary[i] = true;
	boundary[len] = true;

	n = wrap_text(s, len, cols, segs, ARRAY_LEN(segs));
	PROP(n >= 1 && n <= ARRAY_LEN(segs) && n == wrap_text(s, len, cols, NULL, 0));
	PROP(segs[0].off == 0);
	for (i = 0; ok && i < n; i++) {
		const struct wrap_seg *g = &segs[i];
		size_t next = i + 1 < n ? segs[i + 1].off : len;
		bool nl = false;

		end = g->off + g->len;
		PROP(end <= next && next <= len);
		PROP(boundary[g->off] && boundary[end]);
		PROP(memchr(s + g->off, '\n', g->len) == NULL);
		/* Widths: exact unless a tab was clipped; <= cols unless one cluster alone. */
		if (has_tab(s + g->off, g->len))
			PROP(g->width <= wrap_width(s + g->off, g->len));
		else
			PROP(g->width == wrap_width(s + g->off, g->len));
		if (g->width > cols)
			PROP(visible_clusters(s + g->off, g->len) == 1);
		/* A line starts with a blank only at a paragraph start (indentation). */
		if (g->len > 0 && (s[g->off] == ' ' || s[g->off] == '\t') &&
		    wrap_cluster(s + g->off, g->len, 0, &w) == 1)
			PROP(g->off == 0 || s[g->off - 1] == '\n');
		/* The gap: blanks, then at most one newline. */
		for (j = end; j < next; j++) {
			PROP(!nl && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n'));
			nl = s[j] == '\n';
		}
		/* A break inside a word happens only when the next cluster did not fit. */
		if (next == end && i + 1 < n) {
			PROP(end < len);
			wrap_cluster(s + end, len - end, g->width, &w);
			PROP(g->width + w > cols);
		}
		memcpy(rebuilt + at, s + g->off, next - g->off);
		at += next - g->off;
	}
	PROP(at == len && memcmp(rebuilt, s, len) == 0);
	if (!ok)
		fprintf(stderr,
			"test-wrap.c:%d: property failed: cols %d, %zu bytes, segment %zu\n", line,
			cols, len, i);
	return ok;
}

static void
test_random(void)
{
	char buf[512];
	int bad = 0;

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = random_text(buf, sizeof(buf));
		int cols = 1 + (int)rnd(iter % 2 ? 12 : 60);

		if (!check_props(buf, len, cols) && ++bad > 5)
			break;
	}
	T_EQ_INT(bad, 0);
}

/* Rewrap a 200 KB transcript the way a resize does and report MB/s. */
static void
test_speed(void)
{
	static const char *const para[] = {
		"The quick brown fox jumps over the lazy dog; this is a sentence of plain English "
		"text "
		"that a model might write in an answer, with some punctuation, numbers (42) and so "
		"on. ",
		"\tif (x == NULL)\n\t\treturn -1;\n",
		ZHONG WEN ZI ZHONG WEN ZI ZHONG WEN ZI " " ZHONG WEN ZI ZHONG WEN ZI ZHONG WEN ZI
						       "\n",
		"Caf" E_ACUTE " na\xc3\xafve r\xc3\xa9sum\xc3\xa9 " HEART " " THUMB " done.\n\n",
	};
	size_t cap = 200 * 1024, n = 0, lines = 0;
	char *text = xmalloc(cap);
	double t0, dt;
	int rounds = 50;

	while (n < cap) {
		const char *p = para[rnd(ARRAY_LEN(para))];
		size_t k = MIN(strlen(p), cap - n);

		memcpy(text + n, p, k);
		n += k;
	}
	t0 = now_sec();
	for (int r = 0; r < rounds; r++)
		lines += wrap_text(text, n, 60 + r % 40, NULL, 0);
	dt = now_sec() - t0;
	printf("wrap: %.1f MB/s over %zu KB (%zu lines per wrap, %.2f ms per wrap)\n",
	       (double)n * rounds / dt / 1e6, n / 1024, lines / (size_t)rounds, dt * 1e3 / rounds);
	T_ASSERT(lines > 0);
	free(text);
}

int
main(void)
{
	if (setlocale(LC_ALL, "C.UTF-8") == NULL) {
		fprintf(stderr, "test-wrap: no C.UTF-8 locale\n");
		return 1;
	}
	test_width();
	test_ascii();
	test_exact_fit();
	test_long_words();
	test_cjk();
	test_combining();
	test_emoji();
	test_invalid();
	test_tabs();
	test_empty_lines();
	test_tiny();
	test_random();
	test_speed();
	return t_done("test-wrap");
}
