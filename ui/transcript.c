/*
 * transcript.c - the conversation on screen as entries (user turns,
 * answers with their reasoning, notices) and their wrapped display lines.
 *
 * Lines are cached per entry and rebuilt only when the width, the entry's
 * text or its thinking panel changes, so streaming a token rewraps one
 * entry, and a resize rewraps from the source text (never from old lines).
 *
 * UI thread only (pure data; no curses here).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "markdown.h"
#include "ui-int.h"
#include "util.h"
#include "wrap.h"

void
transcript_init(struct transcript *t)
{
	memset(t, 0, sizeof(*t));
	t->search_hit = -1;
}

void
entry_final_free(struct entry_final *f)
{
	if (f == NULL)
		return;
	free(f->error);
	free(f->params_json);
	free(f);
}

void
entry_free(struct entry *e)
{
	entry_final_free(e->fin);
	free(e->text);
	free(e->reason);
	free(e->stats);
	free(e->lines);
	if (e->md != NULL)
		md_doc_free(e->md);
	free(e->md);
	free(e);
}

void
transcript_clear(struct transcript *t)
{
	for (int i = 0; i < t->n; i++)
		entry_free(t->e[i]);
	t->n = 0;
	t->scroll = 0;
	t->total_lines = 0;
	t->search_hit = -1;
}

void
transcript_release(struct transcript *t)
{
	transcript_clear(t);
	free(t->e);
	free(t->search);
	memset(t, 0, sizeof(*t));
}

void
transcript_pop(struct transcript *t)
{
	if (t->n > 0)
		entry_free(t->e[--t->n]);
}

static void
grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	*cap = MAX(need, *cap * 2 + 256);
	*buf = xrealloc(*buf, *cap);
}

void
entry_append(struct entry *e, bool reasoning, const char *text, size_t len)
{
	char **buf = reasoning ? &e->reason : &e->text;
	size_t *n = reasoning ? &e->rlen : &e->len, *cap = reasoning ? &e->rcap : &e->cap;

	grow(buf, cap, *n + len + 1);
	memcpy(*buf + *n, text, len);
	*n += len;
	(*buf)[*n] = '\0';
}

struct entry *
transcript_add(struct transcript *t, enum entry_kind kind, const char *text)
{
	struct entry *e = xcalloc(1, sizeof(*e));

	e->uid = ++t->next_uid;
	e->kind = kind;
	entry_append(e, false, text != NULL ? text : "", text != NULL ? strlen(text) : 0);
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 32;
		t->e = xrealloc(t->e, (size_t)t->cap * sizeof(*t->e));
	}
	t->e[t->n++] = e;
	return e;
}

struct entry *
transcript_last(struct transcript *t, enum entry_kind kind)
{
	for (int i = t->n - 1; i >= 0; i--)
		if (t->e[i]->kind == kind)
			return t->e[i];
	return NULL;
}

struct entry *
transcript_by_uid(struct transcript *t, uint64_t uid)
{
	/* Newest first: the turn being generated is the last entry or close to it. */
	for (int i = t->n - 1; uid != 0 && i >= 0; i--)
		if (t->e[i]->uid == uid)
			return t->e[i];
	return NULL;
}

/* ---- wrapping ------------------------------------------------------------ */

static void
push_line(struct entry *e, enum line_kind kind, const char *base, size_t off, size_t len)
{
	if (e->n_lines == e->cap_lines) {
		e->cap_lines = e->cap_lines ? 2 * e->cap_lines : 16;
		e->lines = xrealloc(e->lines, (size_t)e->cap_lines * sizeof(*e->lines));
	}
	e->lines[e->n_lines++] = (struct line){ kind, e, base, off, len, 0 };
}

/* Wrap text into lines of kind, cols wide. */
static void
wrap_into(struct entry *e, enum line_kind kind, const char *text, size_t len, int cols)
{
	size_t n = wrap_text(text, len, cols, NULL, 0);
	struct wrap_seg *segs;

	if (n == 0)
		return;
	segs = xmalloc(n * sizeof(*segs));
	wrap_text(text, len, cols, segs, n);
	for (size_t i = 0; i < n; i++)
		push_line(e, kind, text, segs[i].off, segs[i].len);
	free(segs);
}

/*
 * An answer laid out as Markdown, at display time only: e->text stays the
 * raw Markdown that /copy, export and the model see.  The whole answer is
 * laid out again as it grows (an unclosed fence or table changes what the
 * lines above it are), which is linear in its length and done at most once
 * a frame.
 */
static void
markdown_into(struct entry *e, int cols)
{
	if (e->md == NULL)
		e->md = xcalloc(1, sizeof(*e->md));
	md_render(e->md, e->text, e->len, cols);
	for (int i = 0; i < e->md->n_lines; i++) {
		push_line(e, LINE_MD, e->md->text, e->md->lines[i].off, e->md->lines[i].len);
		e->lines[e->n_lines - 1].md = i;
	}
	if (e->md->n_lines == 0) /* as wrap_into gives an empty text: one empty line */
		push_line(e, LINE_TEXT, e->text, 0, 0);
}

static bool
entry_md(const struct entry *e, bool markdown)
{
	return markdown && e->kind == ENTRY_ASSISTANT;
}

static bool
entry_stale(const struct entry *e, int cols, bool markdown)
{
	return e->wrap_md != entry_md(e, markdown) || e->wrap_cols != cols ||
	       e->wrap_len != e->len || e->wrap_rlen != e->rlen || e->wrap_open != e->think_open ||
	       e->wrap_streaming != e->streaming || e->wrap_stats != (e->stats != NULL);
}

static void
entry_layout(struct entry *e, int cols, bool markdown)
{
	int w = transcript_text_cols(cols); /* the one width the screen draws them at */

	e->n_lines = 0;
	if (e->kind == ENTRY_USER || e->kind == ENTRY_ASSISTANT)
		push_line(e, LINE_HEADER, "", 0, 0);
	if (e->kind == ENTRY_ASSISTANT && (e->rlen > 0 || e->streaming)) {
		push_line(e, LINE_THINK, "", 0, 0);
		if (e->think_open)
			wrap_into(e, LINE_REASON, e->reason, e->rlen, w);
	}
	if (entry_md(e, markdown))
		markdown_into(e, w);
	else
		wrap_into(e, LINE_TEXT, e->text, e->len, w);
	if (e->stats != NULL)
		wrap_into(e, LINE_STATS, e->stats, strlen(e->stats), w);
	push_line(e, LINE_BLANK, "", 0, 0);
	e->wrap_cols = cols;
	e->wrap_len = e->len;
	e->wrap_rlen = e->rlen;
	e->wrap_open = e->think_open;
	e->wrap_streaming = e->streaming;
	e->wrap_stats = e->stats != NULL;
	e->wrap_md = entry_md(e, markdown);
}

int
transcript_layout(struct transcript *t, int cols)
{
	int total = 0;

	for (int i = 0; i < t->n; i++) {
		if (entry_stale(t->e[i], cols, t->markdown))
			entry_layout(t->e[i], cols, t->markdown);
		total += t->e[i]->n_lines;
	}
	t->total_lines = total;
	return total;
}

const struct line *
transcript_line(const struct transcript *t, int i)
{
	for (int k = 0; k < t->n; k++) {
		if (i < t->e[k]->n_lines)
			return &t->e[k]->lines[i];
		i -= t->e[k]->n_lines;
	}
	return NULL;
}

/* Case-insensitive (ASCII) substring test of a line's text. */
static bool
line_has(const struct line *l, const char *term)
{
	size_t n = strlen(term);

	if (n == 0 || l->len < n)
		return false;
	for (size_t i = 0; i + n <= l->len; i++) {
		size_t k = 0;

		while (k < n && tolower((unsigned char)l->base[l->off + i + k]) ==
					tolower((unsigned char)term[k]))
			k++;
		if (k == n)
			return true;
	}
	return false;
}

int
transcript_find(const struct transcript *t, const char *term, int from)
{
	for (int i = MIN(from, t->total_lines) - 1; i >= 0; i--) {
		const struct line *l = transcript_line(t, i);

		if (l != NULL && line_has(l, term))
			return i;
	}
	return -1;
}
