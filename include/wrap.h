/*
 * wrap.h - display width and line wrapping of UTF-8 text for a terminal.
 *
 * Widths come from wcwidth(3) after mbrtowc(3) under the current LC_CTYPE,
 * which must be a UTF-8 locale for anything but ASCII to be measured right
 * (main calls setlocale before initscr).  The unit of layout is a cluster:
 * one character plus whatever must stay with it, i.e. zero-width characters
 * (combining marks, variation selectors, ZWJ, conjoining jamo), the
 * character after a ZWJ, an emoji skin-tone modifier, and the second half of
 * a regional-indicator flag.  A cluster's width is the sum of its
 * characters' widths, which is how curses places them (a terminal that draws
 * a ZWJ sequence as one glyph disagrees; docs/ui.md "Display width").
 *
 * Characters wcwidth calls nonprintable (-1) and bytes that are not valid
 * UTF-8 count 1 column each: the UI shows them as one replacement
 * character.  A tab reaches the next multiple of 8 columns.
 *
 * Pure functions, no allocation; any thread (the UI thread uses them).
 */
#ifndef QNEXT_WRAP_H
#define QNEXT_WRAP_H

#include <stddef.h>

#define WRAP_TAB 8 /* tab stops every WRAP_TAB columns */

/* One display line: bytes [off, off + len) of the text, `width` columns wide. */
struct wrap_seg {
	size_t off;
	size_t len;
	int width;
};

/* Columns that s[0..len) takes on a line of its own (starting at column 0). */
int wrap_width(const char *s, size_t len);

/*
 * Columns that s[0..len) takes when it starts at column col (only tabs
 * care: a tab at column c takes WRAP_TAB - c % WRAP_TAB).  col >= 0.
 */
int wrap_width_at(const char *s, size_t len, int col);

/*
 * Measure the cluster that starts at s (len > 0 bytes are available) when
 * drawn at column col.  Returns its length in bytes (>= 1, never splitting a
 * UTF-8 sequence) and stores its width in *width (OUT; may be 0 for a lone
 * combining mark).  A '\n' (1 column) and a tab are clusters of their own.  Lets the
 * UI draw or place a cursor cluster by cluster with the same rules.
 */
size_t wrap_cluster(const char *s, size_t len, int col, int *width);

/*
 * Split s[0..len) into display lines no wider than cols columns (cols < 1
 * counts as 1) and store up to max of them in segs (OUT; segs may be NULL
 * with max 0 to count).  Returns how many lines the text needs, which may be
 * more than max: call again with a bigger array then.
 *
 * - A '\n' ends a line and is in no segment.  An empty text, and the end of a
 *   text that ends in '\n', give an empty line, so n newlines give n + 1
 *   lines when nothing else wraps.
 * - Lines break after a space or tab when one is on the line; the run of
 *   spaces and tabs at the break (and one '\n' right after it) is dropped.
 *   Spaces and tabs at the start of a paragraph are kept (indentation).
 * - A word longer than a line is broken between clusters.  A cluster wider
 *   than cols (a wide character when cols == 1) gets a line of its own
 *   (shared only with zero-width characters that have no base before them).
 * - A tab that would cross the right edge is cut short at it (the UI draws it
 *   clipped), so a segment's width never exceeds cols except for that single
 *   too-wide cluster.
 *
 * Segments are in order and do not overlap; the bytes between one segment's
 * end and the next one's start are dropped whitespace and at most one '\n'.
 * Runs in one pass, O(len).
 */
size_t wrap_text(const char *s, size_t len, int cols, struct wrap_seg *segs, size_t max);

#endif
