/*
 * wrap.c - display width and line wrapping of UTF-8 text.
 *
 * Everything is built on one step, cluster(): measure the character at a
 * position plus whatever must stay with it.  ASCII takes a fast path (one
 * byte, one column, and an ASCII byte never joins the cluster before it);
 * everything else goes through mbrtowc(3) and wcwidth(3).  wrap_text() is a
 * single greedy pass over the clusters that remembers the last run of blanks
 * on the line as the place to break.
 *
 * Pure functions; any thread (used by the UI thread).
 */
#include "wrap.h"

#include <stdbool.h>
#include <string.h>
#include <wchar.h>

#define ZWJ 0x200d

/*
 * Decode the character at s (len > 0).  Returns its length in bytes; *ok is
 * false for a byte that does not start a valid sequence (or starts one cut
 * off by the end of the text), which is then consumed alone.
 */
static size_t
decode(const char *s, size_t len, wchar_t *wc, bool *ok)
{
	unsigned char c = (unsigned char)s[0];
	mbstate_t st;
	size_t n;

	*ok = true;
	if (c < 0x80) {
		*wc = c;
		return 1;
	}
	memset(&st, 0, sizeof(st));
	n = mbrtowc(wc, s, len, &st);
	if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
		*ok = false;
		*wc = 0;
		return 1;
	}
	return n;
}

/* Width of a character that starts a cluster: nonprintable shows as one replacement. */
static int
base_width(wchar_t wc)
{
	int w;

	if (wc < 0x80)
		return 1; /* printable ASCII, and controls (incl. NUL) drawn as a replacement */
	w = wcwidth(wc);
	return w < 0 ? 1 : w;
}

static bool
is_regional(wchar_t wc)
{
	return wc >= 0x1f1e6 && wc <= 0x1f1ff;
}

static bool
is_skin_tone(wchar_t wc)
{
	return wc >= 0x1f3fb && wc <= 0x1f3ff;
}

/*
 * Length in bytes of the cluster at s and its width at column col.  A '\n'
 * and a tab stand alone (a mark cannot sit on either).  Following
 * characters join the cluster when they are zero width, follow a ZWJ, are a
 * skin-tone modifier, or complete a flag (two regional indicators); an
 * invalid byte never joins.
 */
static size_t
cluster(const char *s, size_t len, int col, int *width)
{
	wchar_t wc, prev;
	size_t n, k;
	bool ok, lone_regional;
	int w, nw;

	if (s[0] == '\n' || s[0] == '\t') {
		*width = s[0] == '\t' ? WRAP_TAB - col % WRAP_TAB : 1;
		return 1;
	}
	n = decode(s, len, &wc, &ok);
	w = ok ? base_width(wc) : 1;
	prev = ok ? wc : 0;
	lone_regional = ok && is_regional(wc);
	while (n < len && (unsigned char)s[n] >= 0x80) {
		k = decode(s + n, len - n, &wc, &ok);
		if (!ok)
			break;
		nw = wcwidth(wc);
		if (nw == 0 || prev == ZWJ || is_skin_tone(wc)) {
			w += nw < 0 ? 1 : nw;
		} else if (lone_regional && is_regional(wc)) {
			w += nw;
			lone_regional = false;
		} else {
			break;
		}
		n += k;
		prev = wc;
	}
	*width = w;
	return n;
}

size_t
wrap_cluster(const char *s, size_t len, int col, int *width)
{
	return cluster(s, len, col, width);
}

int
wrap_width_at(const char *s, size_t len, int col)
{
	size_t i = 0;
	int c = col, w;

	while (i < len) {
		i += cluster(s + i, len - i, c, &w);
		c += w;
	}
	return c - col;
}

int
wrap_width(const char *s, size_t len)
{
	return wrap_width_at(s, len, 0);
}

/* Where wrap_text stores its lines: the caller's array, then only a count. */
struct out {
	struct wrap_seg *segs;
	size_t max;
	size_t n;
};

static void
emit(struct out *o, size_t off, size_t len, int width)
{
	if (o->segs != NULL && o->n < o->max) {
		o->segs[o->n].off = off;
		o->segs[o->n].len = len;
		o->segs[o->n].width = width;
	}
	o->n++;
}

/* A space or tab that carries no mark (a marked space is a visible character). */
static bool
is_blank(const char *s, size_t len, size_t pos)
{
	int w;

	if (s[pos] == '\t')
		return true;
	return s[pos] == ' ' && cluster(s + pos, len - pos, 0, &w) == 1;
}

/*
 * Skip the blanks at a soft break and one '\n' right after them (the break
 * already ended the line, so that newline must not add an empty one).
 * *nl tells whether a newline was consumed.
 */
static size_t
skip_break(const char *s, size_t len, size_t pos, bool *nl)
{
	while (pos < len && is_blank(s, len, pos))
		pos++;
	*nl = pos < len && s[pos] == '\n';
	return *nl ? pos + 1 : pos;
}

size_t
wrap_text(const char *s, size_t len, int cols, struct wrap_seg *segs, size_t max)
{
	struct out o = { segs, max, 0 };
	size_t pos = 0, line, k;
	size_t run = 0, brk = 0, brk_end = 0; /* blank run on this line; break candidate */
	int col, cw, run_col = 0, brk_col = 0;
	bool in_run, have_brk, after_nl = true; /* the text's start counts as a line start */

	if (cols < 1)
		cols = 1;
	for (;;) {
		line = pos;
		col = 0;
		in_run = have_brk = false;
		for (;;) {
			if (pos == len) {
				/* A soft break right at the end leaves no empty line behind. */
				if (pos > line || after_nl)
					emit(&o, line, pos - line, col);
				return o.n;
			}
			if (s[pos] == '\n') {
				emit(&o, line, pos - line, col);
				pos++;
				after_nl = true;
				break;
			}
			k = cluster(s + pos, len - pos, col, &cw);
			if (k == 1 && (s[pos] == ' ' || s[pos] == '\t')) {
				if (!in_run) {
					in_run = true;
					run = pos;
					run_col = col;
				}
				if (s[pos] == '\t' && col < cols && col + cw > cols)
					cw = cols - col; /* clipped at the edge */
				if (col + cw > cols) {
					/* Break in this run; indentation filling the line stays. */
					if (run > line)
						emit(&o, line, run - line, run_col);
					else
						emit(&o, line, pos - line, col);
					pos = skip_break(s, len, pos, &after_nl);
					break;
				}
				col += cw;
				pos += k;
				continue;
			}
			if (in_run) {
				in_run = false;
				if (run > line) {
					have_brk = true;
					brk = run;
					brk_col = run_col;
					brk_end = pos;
				}
			}
			if (col > 0 && col + cw > cols) {
				if (have_brk) {
					emit(&o, line, brk - line, brk_col);
					pos = brk_end;
				} else {
					/* A word longer than the line. */
					emit(&o, line, pos - line, col);
				}
				after_nl = false;
				break;
			}
			/* At column 0 a cluster always goes in, even one wider than the line. */
			col += cw;
			pos += k;
		}
	}
}
