/*
 * markdown.c - Markdown laid out for a terminal (see markdown.h).
 *
 * Reading order: runs (styled, sanitized inline text), the line builder
 * (appends clusters to the line being built and never lets it grow past
 * its limit), the inline parser (emphasis, code spans, links), the code
 * lexer (a table of languages), the blocks (paragraphs, headings, lists,
 * quotes, rules, fences, tables) and md_render's loop over the source lines.
 *
 * The block parser is a line classifier in the spirit of CommonMark, not
 * a conforming one: a chat answer needs headings, lists, quotes, tables and
 * code to look right while they stream in, and the rest to stay readable.
 * Every structure that could make the work quadratic on hostile input
 * (searches for a closing delimiter) remembers what it has already found,
 * so a render is linear in the text.
 *
 * Pure functions; any thread (the UI thread uses them).
 */
#include "markdown.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wchar.h>

#include "util.h"
#include "wrap.h"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD, what an unsafe character shows as */
#define ELLIPSIS    "\xe2\x80\xa6" /* U+2026: the rest of a cell did not fit */
#define BAR         "\xe2\x94\x82" /* U+2502: quote bars, table columns */
#define HLINE       "\xe2\x94\x80" /* U+2500: rules */
#define CROSS       "\xe2\x94\xbc" /* U+253C */
#define WRAPMARK    "\xe2\x86\xa9" /* U+21A9: a code line goes on below */
#define CODE_TAB    4              /* tab stops in code blocks */
#define CODE_TICKS  16             /* longest backtick run that opens a code span */
#define NEST_SHOWN  8              /* quote or list levels drawn at most */
#define MIN_CELL    5              /* a table column is shrunk to no less (unless narrower) */
#define MAX_LEVELS  64             /* list levels tracked */

/* ---- runs: styled inline text ------------------------------------------- */

struct runs {
	char *s;
	size_t len, cap;
	struct md_span *sp; /* off into s */
	int n, cap_sp;
};

static void
runs_free(struct runs *r)
{
	free(r->s);
	free(r->sp);
	memset(r, 0, sizeof(*r));
}

/* Append bytes known to be safe, merging with the last span when the style is the same. */
static void
runs_raw(struct runs *r, const char *s, size_t n, unsigned attr, unsigned role)
{
	struct md_span *last = r->n > 0 ? &r->sp[r->n - 1] : NULL;

	if (n == 0)
		return;
	if (r->len + n + 1 > r->cap) {
		r->cap = MAX(r->len + n + 1, 2 * r->cap + 64);
		r->s = xrealloc(r->s, r->cap);
	}
	memcpy(r->s + r->len, s, n);
	if (last != NULL && last->attr == attr && last->role == role &&
	    last->off + last->len == r->len) {
		last->len += n;
	} else {
		if (r->n == r->cap_sp) {
			r->cap_sp = r->cap_sp ? 2 * r->cap_sp : 16;
			r->sp = xrealloc(r->sp, (size_t)r->cap_sp * sizeof(*r->sp));
		}
		r->sp[r->n++] =
			(struct md_span){ r->len, n, (unsigned char)attr, (unsigned char)role };
	}
	r->len += n;
	r->s[r->len] = '\0';
}

/*
 * Append text, made safe for a terminal: blanks (tab, CR, LF) become a
 * space, and control characters, nonprintable ones and invalid UTF-8 the
 * replacement character, so no escape sequence survives.
 */
static void
runs_add(struct runs *r, const char *s, size_t n, unsigned attr, unsigned role)
{
	size_t i = 0, start = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		const char *sub = NULL;
		size_t k = 1;

		if (c >= 0x20 && c < 0x7f) {
			i++;
			continue;
		}
		if (c == '\t' || c == '\n' || c == '\r') {
			sub = " ";
		} else if (c < 0x80) {
			sub = REPLACEMENT; /* C0 controls (ESC among them) and DEL */
		} else {
			mbstate_t st;
			wchar_t wc;

			memset(&st, 0, sizeof(st));
			k = mbrtowc(&wc, s + i, n - i, &st);
			if (k == (size_t)-1 || k == (size_t)-2 || k == 0)
				sub = REPLACEMENT, k = 1;
			else if (wcwidth(wc) < 0)
				sub = REPLACEMENT; /* C1 controls, unassigned characters */
		}
		if (sub != NULL) {
			runs_raw(r, s + start, i - start, attr, role);
			runs_raw(r, sub, strlen(sub), attr, role);
			start = i + k;
		}
		i += k;
	}
	runs_raw(r, s + start, i - start, attr, role);
}

/* The first span that ends after byte off (binary search). */
static int
runs_span_at(const struct runs *r, size_t off)
{
	int lo = 0, hi = r->n;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (r->sp[mid].off + r->sp[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- the renderer's state and the line builder ----------------------------- */

/* A language the code lexer knows. */
struct lang {
	const char *names;    /* " name name ... " */
	const char *keywords; /* " kw kw ... " */
	const char *line_comment;
	bool hash_after_blank; /* the line comment starts only at a line start or after a blank */
	const char *block_open, *block_close;
	const char *quotes;  /* characters that start a string */
	bool triple;         /* """ and ''' strings span lines */
	bool backtick_lines; /* `strings` span lines */
	bool rust_chars;     /* ' starts a character literal only as 'x' or '\x' */
	bool directives;     /* #word at a line's start is a keyword (the C preprocessor) */
};

enum lex_state { LEX_NONE, LEX_COMMENT, LEX_TRIPLE2, LEX_TRIPLE1, LEX_BACKTICK };

struct md {
	struct md_doc *d;
	int width;
	const char *src;
	/* The line being built: its first byte and span in d, its width so far. */
	size_t l_off;
	int l_span, l_col;
	/* The open paragraph (a list item's, maybe): raw text joined by spaces. */
	bool p_open;
	char *p;
	size_t p_len, p_cap;
	int p_depth;     /* quote level */
	int p_level;     /* list level, -1: not in a list */
	char p_mark[16]; /* the item's marker ("• ", "3. "), "" for a continuation */
	bool blank;      /* a blank line came before what comes next */
	int lst[MAX_LEVELS];
	int n_lst; /* list indents, outermost first */
	/* The open fence. */
	bool fence;
	char f_ch;
	size_t f_len;
	int f_ind, f_depth, f_level;
	const struct lang *f_lang;
	enum lex_state f_state;
	/* Scratch. */
	struct runs r, pre1, pre2;
	struct wrap_seg *segs;
	size_t cap_segs;
	char *tmp;
	size_t cap_tmp;
};

static void
doc_text(struct md_doc *d, const char *s, size_t n)
{
	if (d->len + n + 1 > d->cap) {
		d->cap = MAX(d->len + n + 1, 2 * d->cap + 256);
		d->text = xrealloc(d->text, d->cap);
	}
	memcpy(d->text + d->len, s, n);
	d->len += n;
	d->text[d->len] = '\0';
}

static void
line_begin(struct md *m)
{
	m->l_off = m->d->len;
	m->l_span = m->d->n_spans;
	m->l_col = 0;
}

static void
line_end(struct md *m, unsigned fill)
{
	struct md_doc *d = m->d;

	if (d->n_lines == d->cap_lines) {
		d->cap_lines = d->cap_lines ? 2 * d->cap_lines : 64;
		d->lines = xrealloc(d->lines, (size_t)d->cap_lines * sizeof(*d->lines));
	}
	d->lines[d->n_lines++] =
		(struct md_line){ m->l_off, d->len - m->l_off,  m->l_span, d->n_spans - m->l_span,
				  m->l_col, (unsigned char)fill };
}

static void
line_span(struct md *m, size_t n, unsigned attr, unsigned role)
{
	struct md_doc *d = m->d;
	struct md_span *last = d->n_spans > m->l_span ? &d->spans[d->n_spans - 1] : NULL;

	if (last != NULL && last->attr == attr && last->role == role &&
	    last->off + last->len == d->len) {
		last->len += n;
		return;
	}
	if (d->n_spans == d->cap_spans) {
		d->cap_spans = d->cap_spans ? 2 * d->cap_spans : 64;
		d->spans = xrealloc(d->spans, (size_t)d->cap_spans * sizeof(*d->spans));
	}
	d->spans[d->n_spans++] =
		(struct md_span){ d->len, n, (unsigned char)attr, (unsigned char)role };
}

/*
 * Append safe text to the line up to column limit: a cluster that would
 * cross it becomes an ellipsis when one column is left, and ends the put.
 * This is the one place text enters a line, so no line is ever wider than
 * the limits its builders pass (never more than the width).
 */
static void
line_put(struct md *m, const char *s, size_t n, unsigned attr, unsigned role, int limit)
{
	size_t at = 0;

	limit = MIN(limit, m->width);
	while (at < n) {
		int w;
		size_t k = wrap_cluster(s + at, n - at, 0, &w);

		if (m->l_col + w > limit) {
			if (m->l_col + 1 <= limit) {
				line_span(m, strlen(ELLIPSIS), attr, role);
				doc_text(m->d, ELLIPSIS, strlen(ELLIPSIS));
				m->l_col++;
			}
			return;
		}
		line_span(m, k, attr, role);
		doc_text(m->d, s + at, k);
		m->l_col += w;
		at += k;
	}
}

static void
line_pad(struct md *m, int to, unsigned attr, unsigned role)
{
	while (m->l_col < MIN(to, m->width))
		line_put(m, " ", 1, attr, role, to);
}

/* Put bytes [off, off + n) of r, with their styles. */
static void
line_runs(struct md *m, const struct runs *r, size_t off, size_t n, int limit)
{
	for (int i = runs_span_at(r, off); i < r->n && n > 0; i++) {
		const struct md_span *sp = &r->sp[i];
		size_t a = MAX(off, sp->off), b = MIN(off + n, sp->off + sp->len);

		if (a >= b)
			break;
		line_put(m, r->s + a, b - a, sp->attr, sp->role, limit);
	}
}

static void
tmp_reserve(struct md *m, size_t n)
{
	if (n > m->cap_tmp) {
		m->cap_tmp = MAX(n, 2 * m->cap_tmp);
		m->tmp = xrealloc(m->tmp, m->cap_tmp);
	}
}

static size_t
wrap_runs(struct md *m, const struct runs *r, int cols)
{
	size_t n = wrap_text(r->s != NULL ? r->s : "", r->len, cols, NULL, 0);

	if (n > m->cap_segs) {
		m->cap_segs = MAX(n, 2 * m->cap_segs);
		m->segs = xrealloc(m->segs, m->cap_segs * sizeof(*m->segs));
	}
	wrap_text(r->s != NULL ? r->s : "", r->len, cols, m->segs, n);
	return n;
}

static int
runs_width(const struct runs *r)
{
	return r->len ? wrap_width(r->s, r->len) : 0;
}

/*
 * Wrap r into lines of the width left after the prefixes: pre1 before the
 * first line, pre2 before the others (a list's hanging indent).
 */
static void
emit_runs(struct md *m, const struct runs *r, const struct runs *pre1, const struct runs *pre2)
{
	int pw = MAX(runs_width(pre1), runs_width(pre2));
	size_t n = wrap_runs(m, r, MAX(1, m->width - pw));

	for (size_t i = 0; i < n; i++) {
		const struct runs *pre = i == 0 ? pre1 : pre2;

		line_begin(m);
		line_runs(m, pre, 0, pre->len, m->width);
		line_pad(m, pw, 0, MD_TEXT);
		line_runs(m, r, m->segs[i].off, m->segs[i].len, m->width);
		line_end(m, MD_TEXT);
	}
}

static void
emit_blank(struct md *m)
{
	line_begin(m);
	line_end(m, MD_TEXT);
}

/*
 * The prefixes of a block at quote level depth and list level (-1: none)
 * with marker mark: pre1 for its first line, pre2 for the rest.  Deep
 * nesting is drawn to NEST_SHOWN levels and never takes more than half the
 * width, so the text always keeps the other half.
 */
static void
prefixes(struct md *m, int depth, int level, const char *mark)
{
	int q = MIN(depth, NEST_SHOWN), l = MIN(level, NEST_SHOWN);
	int mw = mark != NULL ? wrap_width(mark, strlen(mark)) : 0;

	while (2 * q + (level >= 0 ? 2 * l + mw : 0) > m->width / 2 && l > 0)
		l--;
	while (2 * q + (level >= 0 ? 2 * l + mw : 0) > m->width / 2 && q > 0)
		q--;
	if (2 * q + (level >= 0 ? 2 * l + mw : 0) > m->width / 2)
		level = -1; /* no room even for the marker */
	m->pre1.len = m->pre2.len = 0;
	m->pre1.n = m->pre2.n = 0;
	for (int i = 0; i < q; i++) {
		runs_raw(&m->pre1, BAR " ", strlen(BAR " "), 0, MD_QUOTE);
		runs_raw(&m->pre2, BAR " ", strlen(BAR " "), 0, MD_QUOTE);
	}
	if (level < 0)
		return;
	for (int i = 0; i < 2 * l + mw; i++) {
		runs_raw(&m->pre2, " ", 1, 0, MD_TEXT);
		if (i < 2 * l)
			runs_raw(&m->pre1, " ", 1, 0, MD_TEXT);
	}
	runs_raw(&m->pre1, mark, strlen(mark), MD_BOLD, MD_MARKER);
}

/* ---- inline: emphasis, code spans, links ------------------------------------- */

/* Where the inline parser is; the caches keep each search linear. */
struct inl {
	const char *s;
	size_t n;
	/* The last run of each delimiter that can close: [char: * _ ~][length 1..3]. */
	size_t last_close[3][4];
	size_t no_ticks[CODE_TICKS + 1]; /* from here on no closing run of that length */
	size_t rb_from, rb_at;           /* searched from rb_from: the next ']' is at rb_at */
	size_t rp_from, rp_at;           /* the same for ')' */
	bool bold, ital, strike;
	char bold_ch, ital_ch;
};

static int
delim_index(char c)
{
	return c == '*' ? 0 : c == '_' ? 1 : 2;
}

static bool
is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t
run_len(const char *s, size_t n, size_t i)
{
	size_t j = i;

	while (j < n && s[j] == s[i])
		j++;
	return j - i;
}

/* Whether the delimiter run [i, i + len) may open or close emphasis. */
static void
flanking(const char *s, size_t n, size_t i, size_t len, bool *open, bool *close)
{
	unsigned char prev = i > 0 ? (unsigned char)s[i - 1] : ' ';
	unsigned char next = i + len < n ? (unsigned char)s[i + len] : ' ';

	*open = !is_blank(next);
	*close = !is_blank(prev);
	if (s[i] == '_') { /* never inside a word: snake_case_names */
		*open = *open && !isalnum(prev);
		*close = *close && !isalnum(next);
	}
}

static void
inl_scan(struct inl *p)
{
	memset(p->last_close, 0, sizeof(p->last_close));
	for (size_t i = 0; i < p->n;) {
		char c = p->s[i];
		size_t len;
		bool open, close;

		if (c == '\\') {
			i += 2;
			continue;
		}
		if (c != '*' && c != '_' && c != '~') {
			i++;
			continue;
		}
		len = run_len(p->s, p->n, i);
		flanking(p->s, p->n, i, len, &open, &close);
		if (close && len <= 3)
			for (size_t k = 1; k <= len; k++)
				p->last_close[delim_index(c)][k] = i + 1; /* +1: 0 means none */
		i += len;
	}
}

/* The next c at or after i, or n; linear over all calls with increasing i. */
static size_t
find_next(const char *s, size_t n, size_t i, char c, size_t *from, size_t *at)
{
	if (*at != 0 && i >= *from && i <= *at - 1)
		return *at - 1;
	*from = i;
	while (i < n && s[i] != c)
		i++;
	*at = i + 1;
	return i;
}

static unsigned
inl_attr(const struct inl *p, unsigned attr0)
{
	return attr0 | (p->bold ? MD_BOLD : 0) | (p->ital ? MD_ITALIC : 0) |
	       (p->strike ? MD_STRIKE : 0);
}

static void inline_parse(struct runs *r, const char *s, size_t n, unsigned attr0, unsigned role0);

/* A code span at i (a run of len backticks); returns the bytes used, 0 if it is none. */
static size_t
code_span(struct inl *p, struct runs *r, size_t i, size_t len, unsigned attr0)
{
	size_t j = i + len, a, b;

	if (len > CODE_TICKS || (p->no_ticks[len] != 0 && i >= p->no_ticks[len] - 1))
		return 0;
	while (j < p->n) {
		if (p->s[j] != '`') {
			j++;
			continue;
		}
		if (run_len(p->s, p->n, j) == len)
			break;
		j += run_len(p->s, p->n, j);
	}
	if (j >= p->n) {
		p->no_ticks[len] = i + 1;
		return 0;
	}
	a = i + len, b = j;
	if (b - a >= 2 && p->s[a] == ' ' && p->s[b - 1] == ' ')
		a++, b--;
	runs_add(r, p->s + a, b - a, attr0, MD_CODE);
	return j + len - i;
}

/* [text](url) at i; returns the bytes used, 0 if it is none. */
static size_t
link_span(struct inl *p, struct runs *r, size_t i, unsigned attr0)
{
	size_t rb = find_next(p->s, p->n, i + 1, ']', &p->rb_from, &p->rb_at), rp;

	if (rb + 1 >= p->n || p->s[rb + 1] != '(')
		return 0;
	rp = find_next(p->s, p->n, rb + 2, ')', &p->rp_from, &p->rp_at);
	if (rp >= p->n)
		return 0;
	inline_parse(r, p->s + i + 1, rb - i - 1, inl_attr(p, attr0) | MD_UNDERLINE, MD_LINK);
	if (rp > rb + 2 &&
	    (rp - rb - 2 != rb - i - 1 || memcmp(p->s + rb + 2, p->s + i + 1, rp - rb - 2) != 0)) {
		runs_raw(r, " (", 2, MD_DIM, MD_URL);
		runs_add(r, p->s + rb + 2, rp - rb - 2, MD_DIM, MD_URL);
		runs_raw(r, ")", 1, MD_DIM, MD_URL);
	}
	return rp + 1 - i;
}

/*
 * At '<' in i: <br>, <br/> or <br /> (any case) is a line break, which
 * models write in table cells and the wrap honours ('\n' kept raw); an
 * autolink <scheme:target> shows its target as a link.  Returns the bytes
 * used, 0 when it is neither (other HTML stays text).
 */
static size_t
angle_span(struct inl *p, struct runs *r, size_t i, unsigned attr0, unsigned role0)
{
	const char *s = p->s + i;
	size_t n = p->n - i, k = 3;

	if (n >= 4 && strncasecmp(s, "<br", 3) == 0) {
		while (k < n && s[k] == ' ')
			k++;
		k += k < n && s[k] == '/';
		if (k < n && s[k] == '>') {
			runs_raw(r, "\n", 1, inl_attr(p, attr0), role0);
			for (k++; k < n && s[k] == ' ';) /* the next line starts at its text */
				k++;
			return k;
		}
	}
	/* A scheme of 2 to 32 characters (CommonMark's), then anything but blanks and angles. */
	for (k = 1;
	     k < n && k <= 32 && (isalnum((unsigned char)s[k]) || (k > 1 && strchr("+.-", s[k])));
	     k++)
		;
	if (k < 3 || k >= n || s[k] != ':' || !isalpha((unsigned char)s[1]))
		return 0;
	for (size_t e = k + 1; e < n; e++) {
		if (s[e] == '>') {
			runs_add(r, s + 1, e - 1, inl_attr(p, attr0) | MD_UNDERLINE, MD_LINK);
			return e + 1;
		}
		if ((unsigned char)s[e] <= ' ' || s[e] == '<')
			return 0;
	}
	return 0;
}

/* Emphasis delimiters at i (a run of len); returns true when they were markup. */
static bool
emphasis(struct inl *p, size_t i, size_t len)
{
	char c = p->s[i];
	int d = delim_index(c);
	bool open, close, later;

	flanking(p->s, p->n, i, len, &open, &close);
	if (len > 3 || (c == '~' && len != 2))
		return false;
	later = p->last_close[d][len] > i + 1;
	if (c == '~') {
		if (p->strike && close)
			p->strike = false;
		else if (!p->strike && open && later)
			p->strike = true;
		else
			return false;
		return true;
	}
	if (close && ((len != 1 && p->bold && p->bold_ch == c) ||
		      (len != 2 && p->ital && p->ital_ch == c))) {
		if (len != 1 && p->bold_ch == c)
			p->bold = false;
		if (len != 2 && p->ital_ch == c)
			p->ital = false;
		return true;
	}
	if (!open || !later || (len != 1 && p->bold) || (len != 2 && p->ital))
		return false;
	if (len != 1)
		p->bold = true, p->bold_ch = c;
	if (len != 2)
		p->ital = true, p->ital_ch = c;
	return true;
}

/* Parse s[0..n) (one paragraph's text) into r with attr0 and role0 under its own styles. */
static void
inline_parse(struct runs *r, const char *s, size_t n, unsigned attr0, unsigned role0)
{
	struct inl p = { .s = s, .n = n };
	size_t i = 0;

	inl_scan(&p);
	while (i < n) {
		size_t j = i, len, used = 0;
		char c;

		while (j < n && (s[j] == '\0' || strchr("\\`*_~[<", s[j]) == NULL))
			j++;
		runs_add(r, s + i, j - i, inl_attr(&p, attr0), role0);
		if ((i = j) >= n)
			break;
		c = s[i];
		len = run_len(s, n, i);
		if (c == '\\' && i + 1 < n && ispunct((unsigned char)s[i + 1])) {
			runs_add(r, s + i + 1, 1, inl_attr(&p, attr0), role0);
			i += 2;
			continue;
		}
		if (c == '`')
			used = code_span(&p, r, i, len, inl_attr(&p, attr0));
		else if (c == '[')
			used = link_span(&p, r, i, attr0);
		else if (c == '<')
			used = angle_span(&p, r, i, attr0, role0);
		else if (c != '\\' && emphasis(&p, i, len))
			used = len;
		if (used == 0) { /* literal */
			used = c == '\\' || c == '[' || c == '<' ? 1 : len;
			runs_add(r, s + i, used, inl_attr(&p, attr0), role0);
		}
		i += used;
	}
}

/* ---- code: a table-driven lexer ------------------------------------------------ */

static const struct lang langs[] = {
	{ " c h cpp c++ cc cxx hpp hh hxx objc cuda ",
	  " auto break case char const continue default do double else enum extern float for "
	  "goto if inline int long register restrict return short signed sizeof static struct "
	  "switch typedef union unsigned void volatile while bool true false NULL nullptr class "
	  "namespace template typename public private protected virtual override new delete "
	  "this using try catch throw constexpr noexcept operator friend explicit mutable "
	  "static_cast const_cast dynamic_cast reinterpret_cast size_t uint8_t uint16_t uint32_t "
	  "uint64_t int8_t int16_t int32_t int64_t std #include #define #ifdef #ifndef #endif "
	  "#if #else #elif #pragma ",
	  .line_comment = "//", .block_open = "/*", .block_close = "*/", .quotes = "\"'",
	  .directives = true },
	{ " python py python3 py3 ",
	  " False None True and as assert async await break class continue def del elif else "
	  "except finally for from global if import in is lambda nonlocal not or pass raise "
	  "return try while with yield self print len range int str float list dict set tuple ",
	  .line_comment = "#", .quotes = "\"'", .triple = true },
	{ " sh bash shell zsh ksh dash console shellsession ",
	  " if then else elif fi for while until do done case esac in function return local "
	  "export echo exit set unset shift source alias cd printf read test trap eval exec ",
	  .line_comment = "#", .hash_after_blank = true, .quotes = "\"'" },
	{ " js javascript jsx ts typescript tsx mjs cjs node ",
	  " break case catch class const continue debugger default delete do else export "
	  "extends finally for function if import in instanceof let new return super switch "
	  "this throw try typeof var void while with yield async await of static get set true "
	  "false null undefined interface type enum implements private public readonly ",
	  .line_comment = "//", .block_open = "/*", .block_close = "*/", .quotes = "\"'`",
	  .backtick_lines = true },
	{ " json jsonc json5 ", " true false null ", .quotes = "\"" },
	{ " rust rs ",
	  " as async await break const continue crate dyn else enum extern false fn for if impl "
	  "in let loop match mod move mut pub ref return self Self static struct super trait "
	  "true type unsafe use where while Some None Ok Err Box Vec String Option Result i8 "
	  "i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str ",
	  .line_comment = "//", .block_open = "/*", .block_close = "*/", .quotes = "\"'",
	  .rust_chars = true },
	{ " go golang ",
	  " break case chan const continue default defer else fallthrough for func go goto if "
	  "import interface map package range return select struct switch type var true false "
	  "nil iota int int8 int16 int32 int64 uint uint8 uint16 uint32 uint64 float32 float64 "
	  "string byte rune bool error make new len cap append panic recover ",
	  .line_comment = "//", .block_open = "/*", .block_close = "*/", .quotes = "\"'`",
	  .backtick_lines = true },
};

/* The language a fence's info string names (its first word, any case), or NULL. */
static const struct lang *
lang_find(const char *s, size_t n)
{
	char key[24];
	size_t k = 0;

	key[k++] = ' ';
	for (size_t i = 0; i < n && k < sizeof(key) - 2; i++) {
		if (is_blank((unsigned char)s[i]) || s[i] == '{' || s[i] == ',')
			break;
		key[k++] = (char)tolower((unsigned char)s[i]);
	}
	key[k++] = ' ';
	key[k] = '\0';
	if (k <= 2)
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(langs); i++)
		if (strstr(langs[i].names, key) != NULL)
			return &langs[i];
	return NULL;
}

static bool
is_keyword(const struct lang *l, const char *s, size_t n)
{
	char key[40];

	if (n + 3 > sizeof(key))
		return false;
	key[0] = ' ';
	memcpy(key + 1, s, n);
	key[n + 1] = ' ';
	key[n + 2] = '\0';
	return strstr(l->keywords, key) != NULL;
}

static bool
is_ident(unsigned char c)
{
	return isalnum(c) || c == '_' || c >= 0x80;
}

static bool
starts(const char *s, size_t n, size_t i, const char *w)
{
	size_t k = w != NULL ? strlen(w) : 0;

	return k > 0 && i + k <= n && memcmp(s + i, w, k) == 0;
}

/*
 * The end of a string or comment that opened before i and closes with q:
 * just after q, or n when the line ends first (*closed false).  A backslash
 * escapes the next character in strings (esc).
 */
static size_t
close_at(const char *s, size_t n, size_t i, const char *q, bool esc, bool *closed)
{
	size_t k = strlen(q);

	*closed = false;
	while (i < n) {
		if (esc && s[i] == '\\') {
			i += 2;
			continue;
		}
		if (starts(s, n, i, q)) {
			*closed = true;
			return i + k;
		}
		i++;
	}
	return n;
}

/* A string or comment carried from the line above: where it ends on this line. */
static size_t
lex_carry(const struct lang *l, enum lex_state *st, const char *s, size_t n, struct runs *r)
{
	bool comment = *st == LEX_COMMENT, closed;
	const char *q = comment              ? l->block_close
			: *st == LEX_TRIPLE2 ? "\"\"\""
			: *st == LEX_TRIPLE1 ? "'''"
					     : "`";
	size_t e = close_at(s, n, 0, q, !comment, &closed);

	if (closed)
		*st = LEX_NONE;
	runs_add(r, s, e, 0, comment ? MD_COMMENT : MD_STRING);
	return e;
}

/* Colour one code line (tabs already expanded) into r; *st carries across lines. */
static void
lex_line(const struct lang *l, enum lex_state *st, const char *s, size_t n, struct runs *r)
{
	size_t i = 0, plain = 0, lead_end = 0;

	while (lead_end < n && s[lead_end] == ' ')
		lead_end++;
	if (l == NULL) {
		runs_add(r, s, n, 0, MD_BLOCK);
		return;
	}
	if (*st != LEX_NONE)
		i = plain = lex_carry(l, st, s, n, r);
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t e = i + 1;
		unsigned role = MD_BLOCK;
		bool closed, lead = i == lead_end;

		if (starts(s, n, i, l->line_comment) &&
		    (!l->hash_after_blank || i == 0 || is_blank((unsigned char)s[i - 1]))) {
			e = n, role = MD_COMMENT;
		} else if (starts(s, n, i, l->block_open)) {
			e = close_at(s, n, i + strlen(l->block_open), l->block_close, false,
				     &closed);
			*st = closed ? LEX_NONE : LEX_COMMENT;
			role = MD_COMMENT;
		} else if (l->triple && (starts(s, n, i, "\"\"\"") || starts(s, n, i, "'''"))) {
			e = close_at(s, n, i + 3, s[i] == '"' ? "\"\"\"" : "'''", true, &closed);
			if (!closed)
				*st = s[i] == '"' ? LEX_TRIPLE2 : LEX_TRIPLE1;
			role = MD_STRING;
		} else if (strchr(l->quotes, c) != NULL && c != '\0' &&
			   !(l->rust_chars && c == '\'' && !(i + 1 < n && s[i + 1] == '\\') &&
			     !(i + 2 < n && s[i + 2] == '\''))) {
			char q[2] = { (char)c, '\0' };

			e = close_at(s, n, i + 1, q, true, &closed);
			if (c == '`' && l->backtick_lines && !closed)
				*st = LEX_BACKTICK;
			role = MD_STRING;
		} else if (isdigit(c) && (i == 0 || !is_ident((unsigned char)s[i - 1]))) {
			while (e < n && (is_ident((unsigned char)s[e]) || s[e] == '.'))
				e++;
			role = MD_NUMBER;
		} else if (is_ident(c) || (c == '#' && l->directives && lead)) {
			while (e < n && is_ident((unsigned char)s[e]))
				e++;
			role = is_keyword(l, s + i, e - i) ? MD_KEYWORD : MD_BLOCK;
		}
		if (role != MD_BLOCK) {
			runs_add(r, s + plain, i - plain, 0, MD_BLOCK);
			runs_add(r, s + i, e - i, role == MD_KEYWORD ? MD_BOLD : 0, role);
			plain = e;
		}
		i = e;
	}
	runs_add(r, s + plain, n - plain, 0, MD_BLOCK);
}

/* Expand tabs to CODE_TAB stops into m->tmp; returns its length. */
static size_t
expand_tabs(struct md *m, const char *s, size_t n)
{
	size_t k = 0, col = 0;

	tmp_reserve(m, n * CODE_TAB + 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\t') {
			do
				m->tmp[k++] = ' ';
			while (++col % CODE_TAB != 0);
			continue;
		}
		m->tmp[k++] = s[i];
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			col++;
	}
	return k;
}

/*
 * Where to cut a code line that is wider than cols: after the last token
 * (a span's end or a blank) that fits, else after the last cluster that
 * fits; never 0 bytes.
 */
static size_t
code_cut(const struct runs *r, size_t from, int cols)
{
	size_t at = from, good = 0;
	int col = 0, sp = runs_span_at(r, from);

	while (at < r->len) {
		int w;
		size_t k = wrap_cluster(r->s + at, r->len - at, col, &w);

		if (col + w > cols)
			break;
		col += w;
		at += k;
		while (sp < r->n && r->sp[sp].off + r->sp[sp].len <= at)
			sp++;
		if (r->s[at - 1] == ' ' || (sp < r->n && r->sp[sp].off == at))
			good = at;
	}
	if (at == from) /* one cluster wider than the line: it goes alone (the builder cuts it) */
		at += wrap_cluster(r->s + at, r->len - at, 0, &col);
	return good > from && at < r->len ? good : at;
}

/* One line of the open fence, coloured, cut into display lines with a marker. */
static void
code_line(struct md *m, const char *s, size_t n)
{
	size_t len = expand_tabs(m, s, n), at = 0;
	int pw, cols, rest;

	m->r.len = 0, m->r.n = 0;
	lex_line(m->f_lang, &m->f_state, m->tmp, len, &m->r);
	prefixes(m, m->f_depth, m->f_level, "  ");
	pw = runs_width(&m->pre2) + 1; /* a blank of the block's colour before the code */
	cols = MAX(1, m->width - pw);
	rest = runs_width(&m->r); /* kept up to date: measuring each rest anew is quadratic */
	do {
		bool more = rest > cols;
		size_t cut = more ? code_cut(&m->r, at, MAX(1, cols - 1)) : m->r.len;

		line_begin(m);
		line_runs(m, &m->pre2, 0, m->pre2.len, m->width);
		line_put(m, " ", 1, 0, MD_BLOCK, m->width);
		line_runs(m, &m->r, at, cut - at, m->width - (more ? 1 : 0));
		if (more) {
			line_pad(m, m->width - 1, 0, MD_BLOCK);
			line_put(m, WRAPMARK, strlen(WRAPMARK), MD_DIM, MD_MARKER, m->width);
		}
		line_end(m, MD_BLOCK);
		rest -= wrap_width(m->r.s + at, cut - at);
		at = cut;
	} while (at < m->r.len);
}

/* ---- blocks ------------------------------------------------------------------- */

/* A line of the source: bytes [off, off + len), no '\n', no final '\r'. */
struct src_line {
	size_t off, len;
};

/* Leading spaces of s as columns (a tab to the next multiple of 4) and bytes. */
static int
indent_of(const char *s, size_t n, size_t *bytes)
{
	int col = 0;
	size_t i = 0;

	for (; i < n && (s[i] == ' ' || s[i] == '\t'); i++)
		col = s[i] == '\t' ? (col / 4 + 1) * 4 : col + 1;
	*bytes = i;
	return col;
}

/* Strip block quote markers: the quote level into *depth, the offset of the rest returned. */
static size_t
strip_quotes(const char *s, size_t n, int *depth)
{
	size_t i = 0;

	*depth = 0;
	for (;;) {
		size_t k = i;

		while (k < n && k - i < 3 && s[k] == ' ')
			k++;
		if (k >= n || s[k] != '>')
			return i;
		(*depth)++;
		i = k + 1;
		if (i < n && s[i] == ' ')
			i++;
	}
}

static bool
is_blank_line(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_blank((unsigned char)s[i]))
			return false;
	return true;
}

static void
para_add(struct md *m, const char *s, size_t n)
{
	while (n > 0 && is_blank((unsigned char)s[n - 1]))
		n--;
	if (m->p_len + n + 2 > m->p_cap) {
		m->p_cap = MAX(m->p_len + n + 2, 2 * m->p_cap + 256);
		m->p = xrealloc(m->p, m->p_cap);
	}
	if (m->p_len > 0)
		m->p[m->p_len++] = ' ';
	memcpy(m->p + m->p_len, s, n);
	m->p_len += n;
}

static void
para_flush(struct md *m)
{
	if (!m->p_open)
		return;
	m->p_open = false;
	m->r.len = 0, m->r.n = 0;
	inline_parse(&m->r, m->p, m->p_len, 0, MD_TEXT);
	prefixes(m, m->p_depth, m->p_level, m->p_mark);
	emit_runs(m, &m->r, &m->pre1, &m->pre2);
}

/* A new block starts: the blank line before it, if the source had one. */
static void
block_begin(struct md *m)
{
	para_flush(m);
	if (m->blank && m->d->n_lines > 0)
		emit_blank(m);
	m->blank = false;
}

static void
para_start(struct md *m, int depth, int level, const char *mark, const char *s, size_t n)
{
	m->p_open = true;
	m->p_len = 0;
	m->p_depth = depth;
	m->p_level = level;
	snprintf(m->p_mark, sizeof(m->p_mark), "%s", mark);
	para_add(m, s, n);
}

/* A heading of level 1..6 from text s[0..n). */
static void
heading(struct md *m, int depth, int level, const char *s, size_t n)
{
	unsigned attr = MD_BOLD | (level <= 2 ? MD_UNDERLINE : 0);

	m->r.len = 0, m->r.n = 0;
	inline_parse(&m->r, s, n, attr, MD_HEADING);
	prefixes(m, depth, -1, NULL);
	emit_runs(m, &m->r, &m->pre1, &m->pre2);
}

/* A rule across the width after the prefix pre1. */
static void
rule_line(struct md *m)
{
	line_begin(m);
	line_runs(m, &m->pre1, 0, m->pre1.len, m->width);
	while (m->l_col < m->width)
		line_put(m, HLINE, strlen(HLINE), 0, MD_RULE, m->width);
	line_end(m, MD_TEXT);
}

static void
rule(struct md *m, int depth)
{
	prefixes(m, depth, -1, NULL);
	rule_line(m);
}

/* "# Title": its level (0: not a heading) and the text's offset and length. */
static int
atx(const char *s, size_t n, size_t *t_off, size_t *t_len)
{
	size_t h = 0, a, e;

	while (h < n && s[h] == '#')
		h++;
	if (h == 0 || h > 6 || (h < n && s[h] != ' ' && s[h] != '\t'))
		return 0;
	e = n;
	while (e > h && is_blank((unsigned char)s[e - 1]))
		e--;
	a = e;
	while (a > h && s[a - 1] == '#')
		a--;
	if (a == h || is_blank((unsigned char)s[a - 1]))
		e = a; /* a closing run of #s; "# C#" keeps its # */
	while (e > h && is_blank((unsigned char)s[e - 1]))
		e--;
	for (a = h; a < e && is_blank((unsigned char)s[a]);)
		a++;
	*t_off = a;
	*t_len = e > a ? e - a : 0;
	return (int)h;
}

/* "---", "* * *", "___": a horizontal rule. */
static bool
is_rule(const char *s, size_t n)
{
	int k = 0;
	char c = n > 0 ? s[0] : 0;

	if (c != '-' && c != '*' && c != '_')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == c)
			k++;
		else if (!is_blank((unsigned char)s[i]))
			return false;
	}
	return k >= 3;
}

/* A setext underline ("===" or "---"): 1 or 2, else 0. */
static int
setext(const char *s, size_t n)
{
	size_t k = n > 0 ? run_len(s, n, 0) : 0;

	if (k < 3 || (s[0] != '=' && s[0] != '-') || !is_blank_line(s + k, n - k))
		return 0;
	return s[0] == '=' ? 1 : 2;
}

/* A list item's marker: its length with the blank after it (0: none) and *mark. */
static size_t
list_marker(const char *s, size_t n, char *mark, size_t cap, int level)
{
	static const char *const bullets[] = { "\xe2\x80\xa2", "\xe2\x97\xa6",
					       "\xe2\x96\xaa" }; /* U+2022 U+25E6 U+25AA */
	size_t k = 0;

	if (n > 0 && (s[0] == '-' || s[0] == '*' || s[0] == '+')) {
		k = 1;
		snprintf(mark, cap, "%s ", bullets[level % 3]);
	} else {
		while (k < n && k < 9 && isdigit((unsigned char)s[k]))
			k++;
		if (k == 0 || k >= n || (s[k] != '.' && s[k] != ')'))
			return 0;
		k++;
		snprintf(mark, cap, "%.*s ", (int)k, s);
	}
	if (k < n && s[k] != ' ' && s[k] != '\t')
		return 0;
	while (k < n && (s[k] == ' ' || s[k] == '\t'))
		k++;
	return k;
}

/* The list level of an item indented ind columns (pushing it). */
static int
list_level(struct md *m, int ind)
{
	while (m->n_lst > 0 && m->lst[m->n_lst - 1] >= ind)
		m->n_lst--;
	if (m->n_lst < MAX_LEVELS)
		m->lst[m->n_lst++] = ind;
	return m->n_lst - 1;
}

/* ---- tables ------------------------------------------------------------------ */

struct cell {
	size_t off, len; /* into the source, trimmed */
};

struct table {
	struct cell *c; /* [n_rows][n_cols] */
	int n_rows, n_cols;
	char *align; /* [n_cols]: 'l', 'c', 'r' */
	int *w;      /* [n_cols] widths */
};

/* Split a row's text into at most max cells (into cells; NULL to count); returns how many. */
static int
split_row(const char *src, size_t off, size_t n, struct cell *cells, int max)
{
	const char *s = src + off;
	size_t a = 0, b = n;
	int k = 0;

	while (a < b && is_blank((unsigned char)s[a]))
		a++;
	while (b > a && is_blank((unsigned char)s[b - 1]))
		b--;
	if (a < b && s[a] == '|')
		a++;
	if (b > a && s[b - 1] == '|' && (b < 2 || s[b - 2] != '\\'))
		b--;
	for (size_t i = a, start = a; i <= b; i++) {
		size_t x, y;

		if (i < b && s[i] == '\\') {
			i++;
			continue;
		}
		if (i < b && s[i] != '|')
			continue;
		x = start, y = i;
		while (x < y && is_blank((unsigned char)s[x]))
			x++;
		while (y > x && is_blank((unsigned char)s[y - 1]))
			y--;
		if (cells != NULL && k < max)
			cells[k] = (struct cell){ off + x, y - x };
		k++;
		start = i + 1;
	}
	return k;
}

/* A delimiter row ("|---|:--:|") of exactly n_cols cells: their alignments into align. */
static bool
delim_row(const char *src, struct src_line l, int n_cols, char *align)
{
	int n = split_row(src, l.off, l.len, NULL, 0);
	struct cell *c;
	bool ok = n == n_cols && memchr(src + l.off, '-', l.len) != NULL;

	if (!ok)
		return false;
	c = xmalloc((size_t)n * sizeof(*c));
	split_row(src, l.off, l.len, c, n);
	for (int i = 0; i < n && ok; i++) {
		const char *s = src + c[i].off;
		size_t len = c[i].len, a = 0, b = len;
		bool left = len > 0 && s[0] == ':', right = len > 0 && s[len - 1] == ':';

		a += left, b -= right && b > a;
		ok = b > a && run_len(s, b, a) == b - a && s[a] == '-';
		if (align != NULL)
			align[i] = left && right ? 'c' : right ? 'r' : 'l';
	}
	free(c);
	return ok;
}

static void
cell_runs(struct md *m, const struct table *t, int row, int col)
{
	const struct cell *c = &t->c[(size_t)row * (size_t)t->n_cols + (size_t)col];

	m->r.len = 0, m->r.n = 0;
	inline_parse(&m->r, m->src + c->off, c->len, row == 0 ? MD_BOLD : 0, MD_TEXT);
}

/* The widest word (run of non-blanks) of r, in columns. */
static int
longest_word(const struct runs *r)
{
	int best = 0, cur = 0;

	for (size_t at = 0; at < r->len;) {
		int w;
		size_t k = wrap_cluster(r->s + at, r->len - at, 0, &w);

		cur = r->s[at] == ' ' ? 0 : cur + w;
		best = MAX(best, cur);
		at += k;
	}
	return best;
}

/* Share out *extra columns evenly among the columns below their target, none above it. */
static void
fill_to(int *w, const int *target, int n, int *extra)
{
	while (*extra > 0) {
		int want = 0, share;

		for (int c = 0; c < n; c++)
			want += w[c] < target[c];
		if (want == 0)
			return;
		share = MAX(1, *extra / want);
		for (int c = 0; c<n && * extra> 0; c++) {
			int g = MIN(MIN(share, target[c] - w[c]), *extra);

			if (g > 0)
				w[c] += g, *extra -= g;
		}
	}
}

/*
 * Column widths for `avail` columns of cells: each column's natural width
 * when they all fit; else every column starts from min(natural, MIN_CELL),
 * the room left goes first to make each column as wide as its longest word
 * (so words are not broken when that can be helped), then towards the
 * natural widths, evenly.  False when even the minimums do not fit.
 */
static bool
table_widths(struct md *m, struct table *t, int avail)
{
	int *nat = xcalloc(2 * (size_t)t->n_cols, sizeof(int)), *word = nat + t->n_cols;
	int sum_min = 0, sum_nat = 0, extra;

	for (int r = 0; r < t->n_rows; r++)
		for (int c = 0; c < t->n_cols; c++) {
			cell_runs(m, t, r, c);
			nat[c] = MAX(nat[c], runs_width(&m->r));
			word[c] = MAX(word[c], longest_word(&m->r));
		}
	for (int c = 0; c < t->n_cols; c++) {
		nat[c] = MAX(nat[c], 1);
		t->w[c] = MIN(nat[c], MIN_CELL);
		word[c] = MAX(MIN(word[c], nat[c]), t->w[c]);
		sum_min += t->w[c];
		sum_nat += nat[c];
	}
	extra = avail - sum_min;
	if (sum_nat <= avail)
		memcpy(t->w, nat, (size_t)t->n_cols * sizeof(int));
	else if (extra >= 0)
		fill_to(t->w, word, t->n_cols, &extra), fill_to(t->w, nat, t->n_cols, &extra);
	free(nat);
	return sum_min <= avail;
}

/* The separator under the header: ─ per column, ┼ between. */
static void
table_rule(struct md *m, const struct table *t)
{
	line_begin(m);
	line_runs(m, &m->pre1, 0, m->pre1.len, m->width);
	for (int c = 0; c < t->n_cols; c++) {
		/* Under " │ " and the cell: ┼ under the bar, ─ to the cell's end (and the
		 * blank after it unless it is the last). */
		int to = m->l_col + t->w[c] + (c > 0 ? 2 : 0) + (c + 1 < t->n_cols ? 1 : 0);

		if (c > 0)
			line_put(m, CROSS, strlen(CROSS), 0, MD_RULE, m->width);
		while (m->l_col < MIN(to, m->width))
			line_put(m, HLINE, strlen(HLINE), 0, MD_RULE, m->width);
	}
	line_end(m, MD_TEXT);
}

/* One row, its cells wrapped to their columns, side by side. */
static void
table_row(struct md *m, const struct table *t, int row)
{
	struct runs *cr = xcalloc((size_t)t->n_cols, sizeof(*cr));
	struct wrap_seg **segs = xcalloc((size_t)t->n_cols, sizeof(*segs));
	size_t *ns = xcalloc((size_t)t->n_cols, sizeof(*ns)), height = 1;

	for (int c = 0; c < t->n_cols; c++) {
		cell_runs(m, t, row, c);
		cr[c] = m->r; /* take the buffers; m->r starts afresh */
		memset(&m->r, 0, sizeof(m->r));
		ns[c] = wrap_text(cr[c].s != NULL ? cr[c].s : "", cr[c].len, t->w[c], NULL, 0);
		segs[c] = xmalloc(ns[c] * sizeof(**segs));
		wrap_text(cr[c].s != NULL ? cr[c].s : "", cr[c].len, t->w[c], segs[c], ns[c]);
		height = MAX(height, ns[c]);
	}
	for (size_t k = 0; k < height; k++) {
		line_begin(m);
		line_runs(m, &m->pre1, 0, m->pre1.len, m->width);
		for (int c = 0; c < t->n_cols; c++) {
			int x0, room;

			if (c > 0)
				line_put(m, " " BAR " ", strlen(" " BAR " "), 0, MD_RULE, m->width);
			x0 = m->l_col;
			if (k < ns[c]) {
				room = t->w[c] - MIN(segs[c][k].width, t->w[c]);
				line_pad(m,
					 x0 + (t->align[c] == 'r'   ? room
					       : t->align[c] == 'c' ? room / 2
								    : 0),
					 0, MD_TEXT);
				line_runs(m, &cr[c], segs[c][k].off, segs[c][k].len, x0 + t->w[c]);
			}
			if (c + 1 < t->n_cols)
				line_pad(m, x0 + t->w[c], 0, MD_TEXT);
		}
		line_end(m, MD_TEXT);
	}
	for (int c = 0; c < t->n_cols; c++) {
		runs_free(&cr[c]);
		free(segs[c]);
	}
	free(cr);
	free(segs);
	free(ns);
}

/* Too many columns for the width: each row is one wrapped paragraph, cells split by bars. */
static void
table_rows_wrapped(struct md *m, const struct table *t)
{
	struct runs row = { 0 };

	for (int r = 0; r < t->n_rows; r++) {
		row.len = 0, row.n = 0;
		for (int c = 0; c < t->n_cols; c++) {
			const struct cell *x = &t->c[(size_t)r * (size_t)t->n_cols + (size_t)c];

			if (c > 0)
				runs_raw(&row, " " BAR " ", strlen(" " BAR " "), 0, MD_RULE);
			inline_parse(&row, m->src + x->off, x->len, r == 0 ? MD_BOLD : 0, MD_TEXT);
		}
		emit_runs(m, &row, &m->pre2, &m->pre2);
		if (r == 0)
			rule_line(m);
	}
	runs_free(&row);
}

/*
 * A table whose header is line i (the delimiter row is i + 1); returns the
 * index of the first line after it.
 */
static int
table(struct md *m, const struct src_line *lines, int n_lines, int i, int depth)
{
	struct table t = { 0 };
	int end = i + 2, pw, cap_rows;

	t.n_cols = split_row(m->src, lines[i].off, lines[i].len, NULL, 0);
	while (end < n_lines) {
		int q;
		size_t off = strip_quotes(m->src + lines[end].off, lines[end].len, &q);
		const char *s = m->src + lines[end].off + off;
		size_t n = lines[end].len - off;

		if (q != depth || is_blank_line(s, n) || memchr(s, '|', n) == NULL)
			break;
		end++;
	}
	t.n_rows = end - i - 1; /* the header and the body, not the delimiter row */
	cap_rows = t.n_rows;
	t.c = xcalloc((size_t)cap_rows * (size_t)t.n_cols, sizeof(*t.c));
	t.align = xcalloc((size_t)t.n_cols, 1);
	t.w = xcalloc((size_t)t.n_cols, sizeof(int));
	for (int r = 0, l = i; r < t.n_rows; r++, l += r == 1 ? 2 : 1) {
		int q;
		size_t off = strip_quotes(m->src + lines[l].off, lines[l].len, &q);

		split_row(m->src, lines[l].off + off, lines[l].len - off,
			  t.c + (size_t)r * (size_t)t.n_cols, t.n_cols);
		if (r == 0) {
			struct src_line dl = lines[i + 1];
			size_t doff = strip_quotes(m->src + dl.off, dl.len, &q);

			dl.off += doff, dl.len -= doff;
			delim_row(m->src, dl, t.n_cols, t.align);
		}
	}
	prefixes(m, depth, -1, NULL);
	pw = runs_width(&m->pre1);
	if (table_widths(m, &t, m->width - pw - 3 * (t.n_cols - 1))) {
		for (int r = 0; r < t.n_rows; r++) {
			table_row(m, &t, r);
			if (r == 0)
				table_rule(m, &t);
		}
	} else {
		table_rows_wrapped(m, &t);
	}
	free(t.c);
	free(t.align);
	free(t.w);
	return end;
}

/* Whether line i starts a table: a row with '|' over a matching delimiter row. */
static bool
table_starts(struct md *m, const struct src_line *lines, int n_lines, int i, int depth,
	     const char *s, size_t n)
{
	int q, cols;
	struct src_line dl;
	size_t off;

	if (i + 1 >= n_lines || memchr(s, '|', n) == NULL)
		return false;
	dl = lines[i + 1];
	off = strip_quotes(m->src + dl.off, dl.len, &q);
	dl.off += off, dl.len -= off;
	if (q != depth || memchr(m->src + dl.off, '|', dl.len) == NULL)
		return false;
	cols = split_row(m->src, (size_t)(s - m->src), n, NULL, 0);
	return delim_row(m->src, dl, cols, NULL);
}

/* ---- fences -------------------------------------------------------------------- */

/* A fence at s (after up to 3 spaces): ``` or ~~~ and more; its length, 0 if none. */
static size_t
fence_len(const char *s, size_t n)
{
	size_t k = n > 0 ? run_len(s, n, 0) : 0;

	if (k < 3 || (s[0] != '`' && s[0] != '~'))
		return 0;
	if (s[0] == '`' && memchr(s + k, '`', n - k) != NULL)
		return 0; /* an info string never holds a backtick */
	return k;
}

static void
fence_open(struct md *m, int depth, int ind, const char *s, size_t n, size_t k)
{
	size_t a = k, label;

	while (a < n && is_blank((unsigned char)s[a]))
		a++;
	m->fence = true;
	m->f_ch = s[0];
	m->f_len = k;
	m->f_ind = ind;
	m->f_depth = depth;
	m->f_level = m->n_lst > 0 && ind >= 2 ? m->n_lst - 1 : -1;
	m->f_lang = lang_find(s + a, n - a);
	m->f_state = LEX_NONE;
	/* The label line: the language as written, on the block's colour. */
	prefixes(m, depth, m->f_level, "  ");
	line_begin(m);
	line_runs(m, &m->pre2, 0, m->pre2.len, m->width);
	line_put(m, " ", 1, 0, MD_BLOCK, m->width);
	for (label = a; label < n && strchr(" \t{,", s[label]) == NULL;)
		label++;
	m->r.len = 0, m->r.n = 0;
	runs_add(&m->r, s + a, label - a, MD_ITALIC, MD_LANG);
	line_runs(m, &m->r, 0, m->r.len, m->width);
	line_end(m, MD_BLOCK);
}

/* A line inside the fence: the closing fence (true), or a code line. */
static bool
fence_line(struct md *m, const char *s, size_t n)
{
	int q;
	size_t off = m->f_depth > 0 ? strip_quotes(s, n, &q) : 0, sp = 0, k;

	s += off, n -= off;
	while (sp < n && sp < 3 && s[sp] == ' ')
		sp++;
	k = run_len(s + sp, n - sp, 0);
	if (sp < n && s[sp] == m->f_ch && k >= m->f_len && is_blank_line(s + sp + k, n - sp - k)) {
		m->fence = false;
		return true;
	}
	for (sp = 0; sp < n && (int)sp < m->f_ind && s[sp] == ' ';)
		sp++;
	code_line(m, s + sp, n - sp);
	return false;
}

/* ---- the loop over lines ------------------------------------------------------------ */

static struct src_line *
split_lines(const char *text, size_t len, int *n)
{
	struct src_line *l;
	int k = 1;

	for (size_t i = 0; i < len; i++)
		k += text[i] == '\n';
	l = xmalloc((size_t)k * sizeof(*l));
	*n = 0;
	for (size_t i = 0, start = 0; i <= len; i++) {
		if (i < len && text[i] != '\n')
			continue;
		l[*n] = (struct src_line){ start, i - start };
		if (l[*n].len > 0 && text[i - 1] == '\r')
			l[*n].len--;
		(*n)++;
		start = i + 1;
	}
	return l;
}

/* One source line outside a fence; returns the index of the next line to read. */
static int
block_line(struct md *m, const struct src_line *lines, int n_lines, int i)
{
	int depth, ind, lvl, hl;
	size_t off = strip_quotes(m->src + lines[i].off, lines[i].len, &depth), ib, k, ho, hn;
	const char *s = m->src + lines[i].off + off;
	size_t n = lines[i].len - off;
	char mark[16];

	if (is_blank_line(s, n)) {
		para_flush(m);
		m->blank = true;
		return i + 1;
	}
	if (m->p_open && depth != m->p_depth)
		para_flush(m);
	ind = indent_of(s, n, &ib);
	s += ib, n -= ib;
	if (ind < 4 || m->n_lst > 0) {
		if ((k = fence_len(s, n)) > 0) {
			block_begin(m);
			fence_open(m, depth, ind, s, n, k);
			return i + 1;
		}
		if ((hl = atx(s, n, &ho, &hn)) > 0) {
			block_begin(m);
			m->n_lst = 0;
			heading(m, depth, hl, s + ho, hn);
			return i + 1;
		}
		if (m->p_open && m->p_level < 0 && (hl = setext(s, n)) > 0) {
			m->p_open = false;
			heading(m, m->p_depth, hl, m->p, m->p_len);
			return i + 1;
		}
		if (is_rule(s, n)) {
			block_begin(m);
			rule(m, depth);
			return i + 1;
		}
		if (table_starts(m, lines, n_lines, i, depth, s, n)) {
			block_begin(m);
			m->n_lst = 0;
			return table(m, lines, n_lines, i, depth);
		}
		if ((k = list_marker(s, n, mark, sizeof(mark), 0)) > 0) {
			block_begin(m);
			lvl = list_level(m, ind);
			list_marker(s, n, mark, sizeof(mark), lvl);
			para_start(m, depth, lvl, mark, s + k, n - k);
			return i + 1;
		}
	}
	if (m->p_open) {
		para_add(m, s, n);
		return i + 1;
	}
	block_begin(m);
	if (m->n_lst > 0 && ind >= 2) { /* a later paragraph of the last item */
		para_start(m, depth, m->n_lst - 1, "  ", s, n);
	} else {
		m->n_lst = 0;
		para_start(m, depth, -1, "", s, n);
	}
	return i + 1;
}

void
md_render(struct md_doc *d, const char *text, size_t len, int width)
{
	struct md m = { .d = d, .width = MAX(width, 1), .src = text };
	struct src_line *lines;
	int n_lines;

	d->len = 0;
	d->n_spans = 0;
	d->n_lines = 0;
	lines = split_lines(text, len, &n_lines);
	for (int i = 0; i < n_lines;) {
		if (m.fence) {
			fence_line(&m, text + lines[i].off, lines[i].len);
			i++;
		} else {
			i = block_line(&m, lines, n_lines, i);
		}
	}
	para_flush(&m);
	free(lines);
	free(m.p);
	free(m.segs);
	free(m.tmp);
	runs_free(&m.r);
	runs_free(&m.pre1);
	runs_free(&m.pre2);
}

void
md_doc_free(struct md_doc *d)
{
	free(d->text);
	free(d->spans);
	free(d->lines);
	memset(d, 0, sizeof(*d));
}

char *
md_last_code(const char *text, size_t len)
{
	int n_lines, first = -1, end = -1, ind = 0;
	struct src_line *lines = split_lines(text, len, &n_lines);
	bool in = false;
	char ch = 0;
	size_t flen = 0, out_len = 0;
	char *out;

	for (int i = 0; i < n_lines; i++) {
		const char *s = text + lines[i].off;
		size_t n = lines[i].len, ib, k;
		int col = indent_of(s, n, &ib);

		k = fence_len(s + ib, n - ib);
		if (!in && k > 0) {
			in = true, ch = s[ib], flen = k, ind = col;
			first = i + 1, end = n_lines;
		} else if (in && k >= flen && s[ib] == ch && col < ind + 4 &&
			   is_blank_line(s + ib + k, n - ib - k)) {
			in = false;
			end = i;
		}
	}
	if (first < 0) {
		free(lines);
		return NULL;
	}
	out = xmalloc(len + (size_t)(end - first) + 1);
	for (int i = first; i < end; i++) {
		const char *s = text + lines[i].off;
		size_t n = lines[i].len, sp = 0;

		while (sp < n && (int)sp < ind && s[sp] == ' ')
			sp++;
		memcpy(out + out_len, s + sp, n - sp);
		out_len += n - sp;
		if (i + 1 < n_lines) /* a '\n' followed the line */
			out[out_len++] = '\n';
	}
	out[out_len] = '\0';
	free(lines);
	return out;
}
