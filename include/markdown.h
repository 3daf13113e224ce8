/*
 * markdown.h - Markdown laid out for a terminal: text in, styled display lines out.
 *
 * md_render() turns an answer's Markdown (as much of it as has streamed in)
 * into display lines no wider than the width asked for, each a run of spans
 * with attributes and a colour role; it never calls curses, so the screen
 * (ui/screen.c) maps roles to colour pairs, or to attributes alone without
 * colours.  What is understood: ATX headings, paragraphs with *italic*,
 * _italic_, **bold**, ~~strike~~, `code` and [links](url), bullet and
 * numbered lists (hanging indent), block quotes (a bar per level),
 * horizontal rules, GitHub tables (columns sized from their content by
 * display width, shrunk and wrapped to fit, one wrapped line per row when
 * even that cannot fit), and fenced code blocks (``` or ~~~, with a
 * language), coloured by a small table-driven lexer for C/C++, Python,
 * shell, JavaScript/TypeScript, JSON, Rust and Go; an unterminated fence
 * is code to the end, as while the answer streams.
 *
 * The output text is sanitized: control characters (C0, DEL, C1, an
 * escape sequence's ESC), characters wcwidth(3) calls nonprintable and
 * invalid UTF-8 become U+FFFD, tabs become spaces, so nothing in it can
 * move the cursor or restyle the terminal.  The source text is never
 * changed; what /copy and export give stays the raw Markdown.  Runs in
 * time linear in the text (tables: in their cells), whatever the input.
 *
 * Widths are wrap.h's (the current LC_CTYPE must be UTF-8 for non-ASCII).
 * Pure functions; any thread (the UI thread uses them).  A struct md_doc
 * owns its arrays; md_doc_free releases them.
 */
#ifndef QNEXT_MARKDOWN_H
#define QNEXT_MARKDOWN_H

#include <stdbool.h>
#include <stddef.h>

/* Attributes of a span, or'ed. */
enum md_attr {
	MD_BOLD = 1,
	MD_ITALIC = 2,
	MD_UNDERLINE = 4,
	MD_DIM = 8,
	MD_STRIKE = 16,
};

/* What a span is, for its colour. */
enum md_role {
	MD_TEXT,    /* plain text */
	MD_HEADING, /* a heading's text */
	MD_CODE,    /* `inline code` */
	MD_BLOCK,   /* code block text (the block's background) */
	MD_KEYWORD, /* in a code block: a keyword */
	MD_STRING,  /* a string or character literal */
	MD_COMMENT, /* a comment */
	MD_NUMBER,  /* a number */
	MD_LANG,    /* the code block's language label */
	MD_MARKER,  /* a list's bullet or number; the code wrap marker */
	MD_QUOTE,   /* a block quote's bar */
	MD_RULE,    /* table borders, horizontal rules */
	MD_LINK,    /* a link's text */
	MD_URL,     /* a link's target */
	MD_ROLES
};

/* Bytes [off, off + len) of md_doc.text, drawn with attr and role. */
struct md_span {
	size_t off, len;
	unsigned char attr; /* enum md_attr */
	unsigned char role; /* enum md_role */
};

/*
 * One display line: text [off, off + len) of md_doc.text (the spans'
 * bytes, in order, contiguous), spans [span, span + n_spans), `width`
 * columns.  fill: MD_BLOCK when the rest of the row takes the code block's
 * background, else MD_TEXT.
 */
struct md_line {
	size_t off, len;
	int span, n_spans;
	int width;
	unsigned char fill;
};

struct md_doc {
	char *text; /* every line's text, one after the other (no '\n') */
	size_t len, cap;
	struct md_span *spans;
	int n_spans, cap_spans;
	struct md_line *lines;
	int n_lines, cap_lines;
};

/* Lay text[0..len) out in lines of at most width columns (< 1 counts as 1) into *d,
 * replacing what d held (d zeroed, or from an earlier call). */
void md_render(struct md_doc *d, const char *text, size_t len, int width);
void md_doc_free(struct md_doc *d); /* leaves *d empty and reusable */

/*
 * The last fenced code block of text[0..len): its content's bytes (the lines between
 * the fences, each with its final '\n', the fence's indentation removed)
 * into a malloc'd NUL-terminated string (caller frees), or NULL when there is none.
 * An unterminated last fence counts, up to the end of the text.
 */
char *md_last_code(const char *text, size_t len);

#endif
