/*
 * screen.c - layout and drawing of the full-screen UI: the transcript with
 * its thinking panels, two status rows (htop-style memory gauges, then the
 * model, speed and context figures or the load progress), the input area
 * drawn from readline's buffer, and the overlays.
 *
 * Everything is drawn on stdscr and flushed with one refresh(), the input
 * area last so the cursor ends there.  Redraws are throttled to ~30 Hz:
 * screen_dirty() asks for one, and the app loop sleeps screen_wait() and
 * calls screen_tick(), which draws when one is due.
 *
 * The screen keeps its own state (struct screen, a->scr): sizes, colours,
 * the help overlay's scroll and the notice on the status row (ui_status).
 * It reads the app's state but calls nothing above it: the conversation list
 * overlay is drawn through the callback the app sets (screen_set_overlay).
 *
 * UI thread only.
 */
#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#include <curses.h>
#include <readline/readline.h>

#include "commands.h"
#include "log.h"
#include "markdown.h"
#include "sysinfo.h"
#include "thread-role.h"
#include "ui-int.h"
#include "util.h"
#include "wrap.h"

#define MIN_COLS       40
#define MIN_ROWS       10
#define STATUS_ROWS    2
#define MAX_INPUT_ROWS 6

/* What the screen shows besides the app's state; owned here (a->scr). */
struct screen {
	int rows, cols;
	bool too_small;
	bool dirty;       /* something changed since the last frame */
	double last_draw; /* when the last frame was drawn */
	bool color;
	bool italic;  /* the terminal has italics (else they are underlined) */
	int in_rows;  /* input area height */
	int help_top; /* first line the help overlay shows */
	/* The notice on the second status row, until status_until. */
	char *status;
	double status_until;
	bool status_error;
	/* Draws the conversation list overlay (browser.c), set by the app. */
	screen_overlay_fn *overlay;
	void *overlay_arg;
	/* The transcript as last drawn: its first line index, rows tall. */
	int tr_first, tr_rows;
};

enum pair {
	PAIR_USER = 1,
	PAIR_BOT,
	PAIR_THINK,
	PAIR_STATS,
	PAIR_ERROR,
	PAIR_BAR,
	PAIR_GAUGE_OK,
	PAIR_GAUGE_WARN,
	PAIR_GAUGE_BAD,
	PAIR_INFO,
	PAIR_MD, /* Markdown's roles (markdown.h's enum md_role) from here on */
};

/*
 * Markdown's colours: one pair per role.  Code blocks take a dark
 * background with light text of their own, so a light terminal theme keeps
 * them readable; with 256 colours the shades are softer.
 */
static void
init_md_colors(void)
{
	bool rich = COLORS >= 256;
	short bg = rich ? 236 : COLOR_BLACK, fg = rich ? 252 : COLOR_WHITE;
	static const struct {
		enum md_role role;
		short fg8, fg256;
		bool block; /* on the code block's background */
	} roles[] = {
		{ MD_HEADING, COLOR_YELLOW, 221, false },
		{ MD_CODE, COLOR_CYAN, 180, false },
		{ MD_BLOCK, -2, -2, true },
		{ MD_KEYWORD, COLOR_MAGENTA, 176, true },
		{ MD_STRING, COLOR_GREEN, 114, true },
		{ MD_COMMENT, COLOR_CYAN, 245, true },
		{ MD_NUMBER, COLOR_YELLOW, 179, true },
		{ MD_LANG, COLOR_CYAN, 245, true },
		{ MD_MARKER, COLOR_YELLOW, 221, false },
		{ MD_QUOTE, COLOR_BLUE, 67, false },
		{ MD_RULE, COLOR_BLUE, 67, false },
		{ MD_LINK, COLOR_BLUE, 75, false },
		{ MD_URL, COLOR_BLUE, 67, false },
	};

	for (size_t i = 0; i < ARRAY_LEN(roles); i++) {
		short f = rich ? roles[i].fg256 : roles[i].fg8;

		init_pair((short)(PAIR_MD + roles[i].role), f == -2 ? fg : f,
			  roles[i].block ? bg : -1);
	}
	if (rich) /* inline code: a lighter box of its own */
		init_pair(PAIR_MD + MD_CODE, 180, 236);
}

static void
init_colors(struct app *a)
{
	const char *sitm = tigetstr("sitm");

	a->scr->italic = sitm != NULL && sitm != (char *)-1;
	a->scr->color = has_colors() && getenv("NO_COLOR") == NULL;
	if (!a->scr->color)
		return;
	start_color();
	use_default_colors();
	init_pair(PAIR_USER, COLOR_CYAN, -1);
	init_pair(PAIR_BOT, COLOR_GREEN, -1);
	init_pair(PAIR_THINK, COLOR_MAGENTA, -1);
	init_pair(PAIR_STATS, COLOR_BLUE, -1);
	init_pair(PAIR_ERROR, COLOR_RED, -1);
	init_pair(PAIR_BAR, COLOR_BLACK, COLOR_WHITE);
	init_pair(PAIR_GAUGE_OK, COLOR_GREEN, -1);
	init_pair(PAIR_GAUGE_WARN, COLOR_YELLOW, -1);
	init_pair(PAIR_GAUGE_BAD, COLOR_RED, -1);
	init_pair(PAIR_INFO, COLOR_YELLOW, -1);
	init_md_colors();
}

/* An attribute: the colour pair when colours are on, else the fallback. */
static attr_t
att(const struct app *a, enum pair p, attr_t fallback)
{
	return a->scr->color ? (attr_t)COLOR_PAIR(p) : fallback;
}

/*
 * GLOBAL: what screen_emergency_restore() needs, prepared at start so the
 * restore itself only calls write(2) and tcsetattr(2): the terminal modes
 * before curses changed them, and the bytes that leave the alternate
 * screen, show the cursor, reset attributes and turn bracketed paste off.
 */
static struct termios saved_tty;
static bool saved_tty_ok;
static char restore_seq[256];
static size_t restore_len;

static void
restore_seq_add(const char *s)
{
	size_t n;

	if (s == NULL || s == (char *)-1)
		return;
	n = strlen(s);
	if (restore_len + n < sizeof(restore_seq)) {
		memcpy(restore_seq + restore_len, s, n);
		restore_len += n;
	}
}

static void
prepare_restore(void)
{
	restore_len = 0;
	restore_seq_add("\033[?2004l");
	restore_seq_add("\033[?1006l\033[?1000l"); /* mouse reporting off (screen_mouse) */
	restore_seq_add(tigetstr("sgr0"));
	restore_seq_add(tigetstr("cnorm"));
	restore_seq_add(tigetstr("rmcup"));
	restore_seq_add("\r\n");
}

void
screen_emergency_restore(void)
{
	int e = errno;

	if (!saved_tty_ok)
		return;
	saved_tty_ok = false; /* once: a second fatal signal must not loop here */
	if (write(STDOUT_FILENO, restore_seq, restore_len) < 0)
		(void)0; /* nothing better to do on the way down */
	tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	errno = e;
}

void
screen_init(struct app *a)
{
	assert_ui();
	a->scr = xcalloc(1, sizeof(*a->scr));
	saved_tty_ok = tcgetattr(STDIN_FILENO, &saved_tty) == 0;
	initscr();
	prepare_restore();
	raw();
	noecho();
	nonl();
	intrflush(stdscr, FALSE);
	leaveok(stdscr, FALSE);
	init_colors(a);
	a->scr->rows = LINES;
	a->scr->cols = COLS;
	a->scr->in_rows = 1;
}

void
screen_free(struct screen *s)
{
	if (s == NULL)
		return;
	free(s->status);
	free(s);
}

void
screen_set_overlay(struct app *a, screen_overlay_fn *fn, void *arg)
{
	assert_ui();
	a->scr->overlay = fn;
	a->scr->overlay_arg = arg;
}

int
screen_rows(const struct app *a)
{
	return a->scr->rows;
}

/* Redraws are throttled to ~30 a second: seconds until the next one may run. */
double
screen_wait(const struct app *a)
{
	return a->scr->dirty ? MAX(0.0, 1.0 / 30 - (now_sec() - a->scr->last_draw)) : 0.5;
}

void
screen_tick(struct app *a)
{
	assert_ui();
	if (a->scr->dirty && now_sec() - a->scr->last_draw >= 1.0 / 30)
		screen_draw(a);
}

void
ui_status(struct app *a, bool error, const char *fmt, ...)
{
	struct screen *s = a->scr;
	va_list ap;
	char buf[512];

	assert_ui();
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (error)
		log_warn("status: %s", buf);
	free(s->status);
	s->status = xstrdup(buf);
	s->status_error = error;
	s->status_until = now_sec() + (error ? 8 : 4);
	s->dirty = true;
}

void
ui_status_clear(struct app *a)
{
	a->scr->status_until = 0;
}

void
ui_info(struct app *a, const char *fmt, ...)
{
	va_list ap;
	char buf[4096];

	assert_ui();
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	transcript_add(&a->tr, ENTRY_INFO, buf);
	a->tr.scroll = 0;
	a->scr->dirty = true;
}

void
screen_end(void)
{
	if (!isendwin())
		endwin();
	saved_tty_ok = false; /* curses put the terminal back itself */
}

void
screen_resize(struct app *a)
{
	assert_ui();
	a->scr->rows = LINES;
	a->scr->cols = COLS;
	a->scr->too_small = a->scr->cols < MIN_COLS || a->scr->rows < MIN_ROWS;
	a->scr->dirty = true;
}

void
screen_dirty(struct app *a)
{
	a->scr->dirty = true;
}

/*
 * Curses sends the terminal's mouse mode (xterm's 1000 + SGR 1006 for
 * xterm-256color and tmux) and turns it off around endwin (suspend, the
 * editor, exit).  keys.c decodes the reports: they reach stdin, not getch.
 */
void
screen_mouse(struct app *a, bool on)
{
	assert_ui();
	a->mouse = on;
	mousemask(on ? BUTTON1_PRESSED | BUTTON4_PRESSED | BUTTON5_PRESSED : 0, NULL);
	fflush(stdout);
}

const struct line *
screen_line_at(const struct app *a, int y)
{
	assert_ui();
	if (y < 0 || y >= a->scr->tr_rows || a->scr->tr_first + y < 0)
		return NULL;
	return transcript_line(&a->tr, a->scr->tr_first + y);
}

/*
 * The view counts from the bottom, so the lines a panel adds or removes
 * below its own line would move that line up or down (out of view, near the
 * top); the scroll takes them up instead.
 */
void
screen_toggle_think(struct app *a, struct entry *e)
{
	int before;

	assert_ui();
	before = transcript_layout(&a->tr, a->scr->cols);
	e->think_open = !e->think_open;
	a->tr.scroll = MAX(0, a->tr.scroll + transcript_layout(&a->tr, a->scr->cols) - before);
}

/*
 * Draw one cluster of w columns: a tab as blanks, other control characters
 * as '?' (they never reach the terminal), the rest as it is.
 */
static void
put_cluster(const char *s, size_t n, int w)
{
	if (s[0] == '\t')
		for (int i = 0; i < w; i++)
			addch(' ');
	else if ((unsigned char)s[0] < 0x20 || s[0] == 0x7f)
		addch('?');
	else
		addnstr(s, (int)n);
}

/*
 * Draw at most `width` columns of s[0..len) at (y, x); returns columns used.
 * Tab stops count from x, as wrap_text() counts them from a line's start.
 */
static int
put(int y, int x, const char *s, size_t len, int width)
{
	size_t at = 0;
	int used = 0;

	move(y, x);
	while (at < len) {
		int w;
		size_t n = wrap_cluster(s + at, len - at, used, &w);

		if (n == 0 || used + w > width)
			break;
		put_cluster(s + at, n, w);
		used += w;
		at += n;
	}
	return used;
}

static int
put_str(int y, int x, const char *s, int width)
{
	return put(y, x, s, strlen(s), width);
}

/* ---- transcript ---------------------------------------------------------- */

static void
think_summary(const struct entry *e, char *buf, size_t n)
{
	const char *arrow = e->think_open ? "v" : ">",
		   *hint = e->think_open ? "" : "  (Ctrl-O shows it)";
	const char *s = e->think_tokens == 1 ? "" : "s";

	if (e->streaming && e->len == 0)
		snprintf(buf, n, "%s thinking... %d token%s, %.1f s", arrow, e->think_tokens, s,
			 e->t_think);
	else if (e->t_think > 0)
		snprintf(buf, n, "%s thought for %.1f s, %d token%s%s", arrow, e->t_think,
			 e->think_tokens, s, hint);
	else
		snprintf(buf, n, "%s thinking, %d token%s%s", arrow, e->think_tokens, s, hint);
}

/*
 * The curses attributes of a Markdown span: its own (italics underlined
 * where the terminal has none, strike-through dimmed) and its role's
 * colour pair; without colours, code stands out in bold and comments dim.
 * A line with the code block's fill keeps its markers on that background.
 */
static attr_t
md_attrs(const struct app *a, const struct md_span *sp, unsigned fill)
{
	attr_t at = 0;
	unsigned role = sp->role == MD_MARKER && fill == MD_BLOCK ? MD_LANG : sp->role;

	if (sp->attr & MD_BOLD)
		at |= A_BOLD;
	if (sp->attr & MD_ITALIC)
		at |= a->scr->italic ? A_ITALIC : A_UNDERLINE;
	if (sp->attr & MD_UNDERLINE)
		at |= A_UNDERLINE;
	if (sp->attr & (MD_DIM | MD_STRIKE))
		at |= A_DIM;
	if (a->scr->color && role != MD_TEXT)
		return at | (attr_t)COLOR_PAIR(PAIR_MD + role);
	return at | (role == MD_CODE ? A_BOLD : role == MD_COMMENT ? A_DIM : 0);
}

/* An answer's line laid out as Markdown: its spans, then the code block's fill. */
static void
draw_md_line(struct app *a, int y, const struct line *l)
{
	const struct md_doc *d = l->e->md;
	const struct md_line *ml = &d->lines[l->md];
	int x = TRANSCRIPT_INDENT, end = TRANSCRIPT_INDENT + transcript_text_cols(a->scr->cols);

	for (int i = ml->span; i < ml->span + ml->n_spans && x < end; i++) {
		attr_t at = md_attrs(a, &d->spans[i], ml->fill);

		attron(at);
		x += put(y, x, d->text + d->spans[i].off, d->spans[i].len, end - x);
		attroff(at);
	}
	if (ml->fill == MD_BLOCK && a->scr->color) {
		attron(COLOR_PAIR(PAIR_MD + MD_BLOCK));
		for (move(y, x); x < end; x++)
			addch(' ');
		attroff(COLOR_PAIR(PAIR_MD + MD_BLOCK));
	}
}

static void
draw_line(struct app *a, int y, const struct line *l)
{
	int text_cols = transcript_text_cols(a->scr->cols); /* what transcript_layout wrapped to */
	char buf[160];
	attr_t at;

	move(y, 0);
	clrtoeol();
	switch (l->kind) {
	case LINE_HEADER:
		at = l->e->kind == ENTRY_USER ? att(a, PAIR_USER, A_BOLD)
					      : att(a, PAIR_BOT, A_BOLD);
		attron(at | A_BOLD);
		put_str(y, 0, l->e->kind == ENTRY_USER ? "you" : "qnext", a->scr->cols);
		attroff(at | A_BOLD);
		if (l->e->n_sibs > 1) { /* one of several branches: Ctrl-X Left / Right */
			snprintf(buf, sizeof(buf), "< %d/%d >", l->e->sib_index + 1, l->e->n_sibs);
			attron(A_DIM);
			put_str(y, l->e->kind == ENTRY_USER ? 5 : 7, buf, a->scr->cols - 7);
			attroff(A_DIM);
		}
		break;
	case LINE_THINK:
		think_summary(l->e, buf, sizeof(buf));
		attron(att(a, PAIR_THINK, A_DIM));
		put_str(y, TRANSCRIPT_INDENT, buf, text_cols);
		attroff(att(a, PAIR_THINK, A_DIM));
		break;
	case LINE_REASON:
		attron(A_DIM);
		put(y, TRANSCRIPT_INDENT, l->base + l->off, l->len, text_cols);
		attroff(A_DIM);
		break;
	case LINE_STATS:
		attron(att(a, PAIR_STATS, A_DIM));
		put(y, TRANSCRIPT_INDENT, l->base + l->off, l->len, text_cols);
		attroff(att(a, PAIR_STATS, A_DIM));
		break;
	case LINE_TEXT:
		at = l->e->kind == ENTRY_ERROR  ? att(a, PAIR_ERROR, A_BOLD)
		     : l->e->kind == ENTRY_INFO ? att(a, PAIR_INFO, 0)
						: 0;
		attron(at);
		put(y, TRANSCRIPT_INDENT, l->base + l->off, l->len, text_cols);
		attroff(at);
		break;
	case LINE_MD:
		draw_md_line(a, y, l);
		break;
	case LINE_BLANK:
		break;
	}
}

/* Whether the chat on screen has a question or an answer yet. */
static bool
conversation_started(const struct app *a)
{
	for (int i = 0; i < a->tr.n; i++)
		if (a->tr.e[i]->kind == ENTRY_USER || a->tr.e[i]->kind == ENTRY_ASSISTANT)
			return true;
	return false;
}

/*
 * The start screen, above any notices, until the first message: what is
 * loaded and in what state, where help is, and a plain warning when the
 * weights are a random test model.
 */
/* Draw text wrapped to w columns from row *y on, below row max; advances *y. */
static void
put_wrapped(int *y, int x, const char *text, int w, int max)
{
	struct wrap_seg seg[8];
	size_t n = wrap_text(text, strlen(text), w, seg, 8);

	for (size_t i = 0; i < MIN(n, (size_t)8) && *y < max; i++)
		put((*y)++, x, text + seg[i].off, seg[i].len, w);
}

/*
 * The start screen, above any notices, until the first message: what is
 * loaded and in what state, where help is, and a plain warning when the
 * weights are a random test model.
 */
static void
draw_welcome(struct app *a, int rows)
{
	const struct gauge_view *g = gauges(a);
	char buf[512];
	int y = 1, x = TRANSCRIPT_INDENT, w = MAX(1, a->scr->cols - 2 * TRANSCRIPT_INDENT);

	attron(A_BOLD);
	put_wrapped(&y, x, "qnext " VERSION " - Qwen3-Next-80B-A3B-Thinking on the CPU", w, rows);
	attroff(A_BOLD);
	y++;
	snprintf(buf, sizeof(buf), "model  %s", a->model_dir);
	put_wrapped(&y, x, buf, w, rows);
	if (a->state == APP_LOADING)
		snprintf(buf, sizeof(buf), "state  loading (%s)",
			 g->load_phase ? g->load_phase : "starting");
	else if (a->state == APP_NO_MODEL)
		snprintf(buf, sizeof(buf), "state  not loaded (the reason is below)");
	else
		snprintf(buf, sizeof(buf), "state  ready: %s", a->model_desc ? a->model_desc : "");
	put_wrapped(&y, x, buf, w, rows);
	if (a->state != APP_LOADING && a->state != APP_NO_MODEL && a->test_model) {
		y++;
		attron(att(a, PAIR_ERROR, A_BOLD) | A_BOLD);
		put_wrapped(&y, x,
			    "This is a small test model with random weights: its answers are "
			    "gibberish.",
			    w, rows);
		attroff(att(a, PAIR_ERROR, A_BOLD) | A_BOLD);
		put_wrapped(&y, x,
			    "The real one: hf download "
			    "Intel/Qwen3-Next-80B-A3B-Thinking-int4-mixed-AutoRound",
			    w, rows);
	}
	y++;
	put_wrapped(&y, x,
		    "Type a message and press Enter.   F1 help   F2 conversations   "
		    "Ctrl-D quit",
		    w, rows);
}

static void
draw_transcript(struct app *a, int rows)
{
	int total = transcript_layout(&a->tr, a->scr->cols);
	bool welcome = total < rows && !conversation_started(a);
	int first;

	a->tr.scroll = MAX(0, MIN(a->tr.scroll, total - rows));
	first = total - rows - a->tr.scroll;
	a->scr->tr_first = first;
	a->scr->tr_rows = rows;
	if (welcome) {
		/* Notices stay at the bottom; the start screen takes the rows above. */
		for (int y = 0; y < rows - total; y++) {
			move(y, 0);
			clrtoeol();
		}
		draw_welcome(a, rows - total);
	}
	for (int y = 0; y < rows; y++) {
		const struct line *l = first + y >= 0 ? transcript_line(&a->tr, first + y) : NULL;

		if (l == NULL && welcome)
			continue; /* the start screen's row */
		if (l == NULL) {
			move(y, 0);
			clrtoeol();
			continue;
		}
		if (first + y == a->tr.search_hit)
			attron(A_REVERSE);
		draw_line(a, y, l);
		attroff(A_REVERSE);
	}
}

/* ---- status rows ---------------------------------------------------------- */

/* htop's bar: caption[|||||      text] with the text right-aligned inside. */
static void
gauge(struct app *a, int y, int x, int w, const char *cap, double frac, const char *text,
      enum pair p)
{
	int inner = w - (int)strlen(cap) - 2, fill, tl = (int)strlen(text);

	if (inner < 4)
		return;
	frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
	fill = (int)(frac * inner + 0.999);
	mvaddstr(y, x, cap);
	addch('[');
	for (int i = 0; i < inner; i++) {
		int ti = i - (inner - tl);

		if (ti >= 0 && ti < tl)
			addch((chtype)text[ti] | A_BOLD);
		else if (i < fill)
			addch('|' | att(a, p, A_BOLD));
		else
			addch(' ');
	}
	addch(']');
}

/*
 * A status row is a list of fields, each drawn whole or not at all: when
 * the row is too narrow the fields of least importance go first, and the
 * rest keep their order.  (htop drops meters the same way.)
 */
struct field {
	char text[160];
	int prio; /* 0 = most important */
	attr_t at;
	bool shown;
};

/* Choose what fits in width columns (sep between them); returns the width used. */
static int
fit_fields(struct field *f, int n, int width, const char *sep)
{
	int used = 0, k = 0, sw = (int)strlen(sep);

	for (int p = 0; p < 8; p++)
		for (int i = 0; i < n; i++) {
			int w;

			if (f[i].prio != p || f[i].text[0] == '\0')
				continue;
			w = wrap_width(f[i].text, strlen(f[i].text)) + (k > 0 ? sw : 0);
			if (used + w <= width) {
				f[i].shown = true;
				used += w;
				k++;
			}
		}
	return used;
}

/* Draw the shown fields from column x on, in their order; returns the column after. */
static int
draw_fields(const struct field *f, int n, int y, int x, const char *sep)
{
	bool first = true;

	for (int i = 0; i < n; i++) {
		if (!f[i].shown)
			continue;
		if (!first)
			x += put_str(y, x, sep, (int)strlen(sep));
		first = false;
		attron(f[i].at);
		x += put_str(y, x, f[i].text, 1 << 20);
		attroff(f[i].at);
	}
	return x;
}

static void field_set(struct field *f, int prio, attr_t at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
field_set(struct field *f, int prio, attr_t at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->text, sizeof(f->text), fmt, ap);
	va_end(ap);
	f->prio = prio;
	f->at = at;
	f->shown = false;
}

/* Columns a gauge needs at least: caption, brackets and its text plus a little bar. */
static int
gauge_min(const char *cap, const char *text)
{
	return (int)(strlen(cap) + strlen(text)) + 2 + 4;
}

/*
 * Row 1: Mem and Swp gauges, then qnext's own RSS, swap and major page
 * faults per second (the thrashing signal: it must never be the part cut).
 */
static void
draw_memory(struct app *a, int y)
{
	const struct gauge_view *g = gauges(a);
	struct sysinfo_mem m = { 0 };
	struct sysinfo_proc p = { 0 };
	struct field f[3] = { 0 };
	char t1[32], t2[32], mem[64], swp[64];
	double used = 0, frac = 0, sfrac = 0;
	int right, room, w;

	sysinfo_mem(&m);
	sysinfo_proc(&p);
	used = (double)(m.total - m.available);
	frac = m.total ? used / (double)m.total : 0;
	snprintf(mem, sizeof(mem), "%s/%s", sysinfo_bytes((uint64_t)used, t1, sizeof(t1)),
		 sysinfo_bytes(m.total, t2, sizeof(t2)));
	sfrac = m.swap_total ? (double)(m.swap_total - m.swap_free) / (double)m.swap_total : 0;
	snprintf(swp, sizeof(swp), "%s/%s",
		 sysinfo_bytes(m.swap_total - m.swap_free, t1, sizeof(t1)),
		 sysinfo_bytes(m.swap_total, t2, sizeof(t2)));
	field_set(&f[0], 1, 0, "qnext %s", sysinfo_bytes(p.rss, t1, sizeof(t1)));
	field_set(&f[1], 2, 0, "swap %s", sysinfo_bytes(p.swap, t1, sizeof(t1)));
	field_set(&f[2], 0, g->majflt_rate >= 100 ? att(a, PAIR_GAUGE_BAD, A_BOLD) : 0,
		  "flt %.0f/s", g->majflt_rate);
	move(y, 0);
	clrtoeol();
	/* The figures first, with what is left for the gauges' minimum; then the gauges. */
	right = fit_fields(f, 3, MAX(0, a->scr->cols - 1 - gauge_min("Mem", mem) - 1), "  ");
	room = a->scr->cols - 1 - right - (right > 0 ? 1 : 0);
	if (room >= gauge_min("Mem", mem) + 1 + gauge_min("Swp", swp)) {
		w = (room - 1) / 2;
		gauge(a, y, 0, w, "Mem", frac, mem,
		      frac > 0.9    ? PAIR_GAUGE_BAD
		      : frac > 0.75 ? PAIR_GAUGE_WARN
				    : PAIR_GAUGE_OK);
		gauge(a, y, w + 1, w, "Swp", sfrac, swp, PAIR_GAUGE_BAD);
		w = 2 * w + 1;
	} else {
		w = room;
		gauge(a, y, 0, w, "Mem", frac, mem,
		      frac > 0.9    ? PAIR_GAUGE_BAD
		      : frac > 0.75 ? PAIR_GAUGE_WARN
				    : PAIR_GAUGE_OK);
	}
	draw_fields(f, 3, y, w + 1, "  ");
}

/*
 * Row 1 with a remote engine, where this machine's memory and page faults
 * say nothing about the model: the server, the request's state, its time
 * to first token, speed and bytes received (MSG_NET).
 */
static void
draw_network(struct app *a, int y)
{
	const struct gauge_view *g = gauges(a);
	struct field f[5] = { 0 };
	char t1[32];

	field_set(&f[0], 0, A_BOLD, "Net %s", a->model_dir);
	field_set(&f[1], 1, 0, "%s", g->net_state != NULL ? g->net_state : "idle");
	if (g->net_ttft > 0)
		field_set(&f[2], 2, 0, "ttft %.2f s", g->net_ttft);
	if (g->net_tok_s > 0)
		field_set(&f[3], 2, 0, "%.1f tok/s", g->net_tok_s);
	if (g->net_bytes > 0)
		field_set(&f[4], 3, 0, "in %s", sysinfo_bytes(g->net_bytes, t1, sizeof(t1)));
	move(y, 0);
	clrtoeol();
	fit_fields(f, 5, a->scr->cols - 1, "  ");
	draw_fields(f, 5, y, 0, "  ");
}

static void
fmt_k(int n, char *buf, size_t len)
{
	if (n >= 1000)
		snprintf(buf, len, "%.1fk", n / 1000.0);
	else
		snprintf(buf, len, "%d", n);
}

/* Bytes per second the read-ahead achieves, 0 while unknown. */
static double
load_rate(const struct app *a)
{
	const struct gauge_view *g = gauges(a);

	return g->load_read_s > 0.2 ? (double)g->load_read_bytes / g->load_read_s : 0;
}

/* "1.2G/s, ETA 3 s" or "opening, 2.1 s": never a made-up figure. */
static void
load_figures(const struct app *a, char *buf, size_t n)
{
	const struct gauge_view *g = gauges(a);
	double rate = load_rate(a);
	char t1[32];

	if (rate > 0 && g->load_done < g->load_total)
		snprintf(buf, n, "%s/s, ETA %.0f s", sysinfo_bytes((uint64_t)rate, t1, sizeof(t1)),
			 (double)(g->load_total - g->load_done) / rate);
	else
		snprintf(buf, n, "%.1f s", now_sec() - g->load_t0);
}

/* While loading: Load[|||   1.2G/4.2G] reading weights, 1.2G/s, ETA 3 s */
static void
draw_loading(struct app *a, int y)
{
	const struct gauge_view *g = gauges(a);
	double frac = g->load_total ? (double)g->load_done / (double)g->load_total : 0;
	int w = MIN(a->scr->cols / 2, 50);
	char t1[32], t2[32], text[128], figs[64];

	if (g->load_total > 0)
		snprintf(text, sizeof(text), "%s/%s", sysinfo_bytes(g->load_done, t1, sizeof(t1)),
			 sysinfo_bytes(g->load_total, t2, sizeof(t2)));
	else
		text[0] = '\0'; /* no report from the engine yet: no made-up 0B/0B */
	gauge(a, y, 0, w, "Load", frac, text, PAIR_GAUGE_OK);
	load_figures(a, figs, sizeof(figs));
	snprintf(text, sizeof(text), " %s, %s", g->load_phase ? g->load_phase : "loading", figs);
	put_str(y, w, text, a->scr->cols - w - 1);
}

/* The turn's state: what the engine is doing now. */
static void
state_field(struct app *a, struct field *f)
{
	const struct gauge_view *g = gauges(a);
	struct entry *e = transcript_by_uid(&a->tr, a->turn_uid);

	if (a->quitting)
		field_set(f, 0, A_BOLD, "quitting: waiting for the engine to stop...");
	else if (a->state == APP_GENERATING && a->stopping)
		field_set(f, 0, A_BOLD, "stopping...");
	else if (a->state == APP_GENERATING && e != NULL && e->rlen + e->len == 0 && a->remote)
		field_set(f, 0, 0, "server: %s",
			  g->net_state != NULL ? g->net_state : "connecting");
	else if (a->state == APP_GENERATING && e != NULL && e->rlen + e->len == 0)
		field_set(f, 0, 0, "reading the prompt %d/%d", g->prefill_done, g->prefill_total);
	else if (a->state == APP_GENERATING)
		field_set(f, 0, 0, "generating %.1f tok/s", g->tok_rate);
	else if (a->state == APP_NO_MODEL)
		field_set(f, 0, att(a, PAIR_ERROR, A_BOLD), "no model");
	else
		f->text[0] = '\0';
}

/* The read-ahead after the model is usable: "weights 22%, 1.2G/s, ETA 3 s". */
static void
weights_field(struct app *a, struct field *f)
{
	const struct gauge_view *g = gauges(a);
	char figs[64];

	f->text[0] = '\0';
	if (g->load_total == 0 || g->load_done >= g->load_total || g->load_phase == NULL)
		return;
	load_figures(a, figs, sizeof(figs));
	if (strcmp(g->load_phase, "paused") == 0)
		field_set(f, 3, 0, "weights %.0f%% read (paused during the answer)",
			  100.0 * (double)g->load_done / (double)g->load_total);
	else
		field_set(f, 3, 0, "reading weights %.0f%%, %s",
			  100.0 * (double)g->load_done / (double)g->load_total, figs);
}

/*
 * With the expert cache (a model larger than RAM), the last turn's share of
 * chosen experts found in memory and the bytes read from disk per token:
 * "experts 87% in RAM, 64 MB/tok read"; "" without it.
 */
static const char *
cache_figures(const struct app *a, char *buf, size_t n)
{
	const struct gen_stats *st = &gauges(a)->last_stats;
	uint64_t used = st->cache_hits + st->cache_misses;
	int toks = st->gen_tokens + st->prompt_tokens - st->reused_tokens;

	buf[0] = '\0';
	if (st->cache_slots > 0 && used > 0 && toks > 0)
		snprintf(buf, n, "experts %.0f%% in RAM, %.0f MB/tok read",
			 100.0 * (double)st->cache_hits / (double)used,
			 (double)st->cache_read / toks / 1e6);
	return buf;
}

/*
 * Row 2: a notice while it lasts, the turn's state, the context gauge, the
 * read-ahead, the speed figures.
 */
static void
draw_figures(struct app *a, int y)
{
	const struct gauge_view *g = gauges(a);
	double frac = a->n_ctx ? (double)a->ctx_used / a->n_ctx : 0;
	enum pair p = frac >= 0.9 ? PAIR_GAUGE_BAD : frac >= 0.75 ? PAIR_GAUGE_WARN : PAIR_STATS;
	struct field f[6] = { 0 };
	char used[16], tot[16], cf[96];
	bool notice = a->scr->status != NULL && now_sec() < a->scr->status_until;

	fmt_k(a->ctx_used, used, sizeof(used));
	fmt_k(a->n_ctx, tot, sizeof(tot));
	if (notice)
		field_set(&f[0], 0,
			  a->scr->status_error ? att(a, PAIR_ERROR, A_BOLD) | A_BOLD
					       : att(a, PAIR_BAR, A_REVERSE),
			  "%s", a->scr->status);
	state_field(a, &f[1]);
	if (a->n_ctx > 0) /* 0: the engine has not said yet; no made-up length */
		field_set(&f[2], 2, att(a, p, frac >= 0.75 ? A_BOLD : 0), "ctx %s/%s %.0f%%", used,
			  tot, 100 * frac);
	weights_field(a, &f[3]);
	if (a->state == APP_GENERATING && g->prefill_tps > 0)
		field_set(&f[4], 4, 0, "prefill %.0f tok/s", g->prefill_tps);
	else if (a->remote && g->last_stats.gen_tokens > 0) /* no prefill speed over a network */
		field_set(&f[4], 4, 0, "decode %.1f tok/s, ttft %.2f s", g->decode_tps, g->ttft);
	else if (g->last_stats.gen_tokens > 0 || g->last_stats.prompt_tokens > 0) /* after a turn */
		field_set(&f[4], 4, 0, "prefill %.0f tok/s, decode %.1f tok/s, ttft %.2f s",
			  g->prefill_tps, g->decode_tps, g->ttft);
	if (a->state != APP_GENERATING && cache_figures(a, cf, sizeof(cf))[0] != '\0')
		field_set(&f[5], 3, 0, "%s", cf);
	/* A notice longer than the row is cut rather than dropped: it is why the row changed. */
	if (notice && wrap_width(f[0].text, strlen(f[0].text)) > a->scr->cols - 1) {
		attron(f[0].at);
		put_str(y, 0, f[0].text, a->scr->cols - 1);
		attroff(f[0].at);
		return;
	}
	fit_fields(f, 6, a->scr->cols - 1, " | ");
	draw_fields(f, 6, y, 0, " | ");
}

static void
draw_status(struct app *a, int y)
{
	if (a->remote)
		draw_network(a, y);
	else
		draw_memory(a, y);
	move(y + 1, 0);
	clrtoeol();
	if (a->overlay == OVERLAY_CONFIRM && a->confirm_text != NULL) {
		attron(A_BOLD);
		put_str(y + 1, 0, a->confirm_text, a->scr->cols - 1);
		attroff(A_BOLD);
		return;
	}
	if (a->state == APP_LOADING &&
	    !(a->scr->status != NULL && now_sec() < a->scr->status_until))
		draw_loading(a, y + 1);
	else
		draw_figures(a, y + 1);
}

/* ---- input ------------------------------------------------------------------ */

struct input_layout {
	int rows;
	int cur_row, cur_col;
};

/*
 * Lay out prompt + buffer: the prompt on the first row, continuation rows
 * indented by its width, wrapped at the screen width, '\n' starting a row.
 * With draw, also draw rows [skip, skip + max) at screen row y.
 */
static struct input_layout
input_layout(const char *prompt, const char *buf, int point, int cols, bool draw, int y, int skip,
	     int max)
{
	struct input_layout L = { 1, 0, 0 };
	int pw = wrap_width(prompt, strlen(prompt)), col = pw, row = 0;
	size_t len = strlen(buf), at = 0;

	if (draw && skip == 0)
		put_str(y, 0, prompt, cols - 1);
	while (at <= len) {
		int w = 0;
		size_t n = at < len ? wrap_cluster(buf + at, len - at, col, &w) : 0;

		if ((int)at == point)
			L.cur_row = row, L.cur_col = col;
		if (at == len)
			break;
		if (buf[at] == '\n' || col + w > cols - 1) {
			row++;
			col = pw;
			if (buf[at] == '\n') {
				at++;
				continue;
			}
		}
		if (draw && row >= skip && row < skip + max) {
			move(y + row - skip, col);
			put_cluster(buf + at, n, w);
		}
		col += w;
		at += n;
	}
	L.rows = row + 1;
	return L;
}

static void
draw_input(struct app *a, int y, int rows)
{
	const char *prompt = rl_display_prompt != NULL ? rl_display_prompt : "> ";
	const char *buf = rl_line_buffer != NULL ? rl_line_buffer : "";
	struct input_layout L = input_layout(prompt, buf, rl_point, a->scr->cols, false, 0, 0, 0);
	int skip = MAX(0, L.cur_row - rows + 1);

	for (int r = 0; r < rows; r++) {
		move(y + r, 0);
		clrtoeol();
	}
	input_layout(prompt, buf, rl_point, a->scr->cols, true, y, skip, rows);
	move(y + L.cur_row - skip, MIN(L.cur_col, a->scr->cols - 1));
}

/* Rows the input needs now (1 to MAX_INPUT_ROWS). */
static int
input_rows(struct app *a)
{
	const char *prompt = rl_display_prompt != NULL ? rl_display_prompt : "> ";
	const char *buf = rl_line_buffer != NULL ? rl_line_buffer : "";

	return MIN(MAX_INPUT_ROWS,
		   input_layout(prompt, buf, rl_point, a->scr->cols, false, 0, 0, 0).rows);
}

/* ---- overlays --------------------------------------------------------------- */

/* Blank rows [0, rows) across the whole width: an overlay hides the transcript. */
static void
clear_area(int rows)
{
	for (int y = 0; y < rows; y++) {
		move(y, 0);
		clrtoeol();
	}
}

/* A bar in reverse video across columns [x0, x0 + w) with text on it. */
static void
bar(int y, int x0, int w, const char *text)
{
	attron(A_REVERSE);
	move(y, x0);
	for (int x = 0; x < w; x++)
		addch(' ');
	put_str(y, x0 + 1, text, w - 2);
	attroff(A_REVERSE);
}

static const char *const help_keys[] = {
	"Enter send   Alt-Enter, Ctrl-J newline   Ctrl-X Ctrl-E edit in $EDITOR",
	"Ctrl-C, Esc stop the answer (Ctrl-C on an empty line: hint to quit)",
	"Ctrl-D (empty line), F10, /quit  quit      Ctrl-L redraw   Ctrl-Z suspend",
	"Ctrl-O show/hide thinking      F5 regenerate      F2 conversations",
	"Ctrl-X Left/Right previous/next branch (after F5 or /edit; < 2/3 > shows it)",
	"PgUp/PgDn scroll   Alt-PgUp/PgDn, Shift-Up/Down a few lines",
	"Alt-Home/Alt-End top/bottom    Ctrl-S, F3 search the transcript",
	"Alt-1..9 open recent conversation N      Up/Down, Ctrl-R input history",
	"Alt-M mouse on/off: wheel scrolls, click a \"> thought\" line or a list row",
	"Tab completes commands; in vi mode (~/.inputrc) all of these work too",
	"",
};

/* The help's lines: the keys, then the commands (n of them; *lens their lengths). */
static int
help_lines(const char **lines, int *lens, int max)
{
	const char *p = commands_help();
	int n = 0;

	for (size_t i = 0; i < ARRAY_LEN(help_keys) && n < max; i++, n++) {
		lines[n] = help_keys[i];
		lens[n] = (int)strlen(help_keys[i]);
	}
	while (*p != '\0' && n < max) {
		size_t len = strcspn(p, "\n");

		lines[n] = p;
		lens[n++] = (int)len;
		p += len + (p[len] == '\n');
	}
	return n;
}

/* The help over the transcript area (rows tall), scrolled to a->scr->help_top. */
static void
draw_help(struct app *a, int rows)
{
	const char *lines[128];
	int lens[128], n = help_lines(lines, lens, 128);
	int w = MIN(a->scr->cols, 90), x = (a->scr->cols - w) / 2, body = MAX(1, rows - 2);
	char foot[128];

	a->scr->help_top = MAX(0, MIN(a->scr->help_top, n - body));
	clear_area(rows);
	bar(0, x, w, "qnext help (man qnext for everything)");
	for (int i = 0; i < body && a->scr->help_top + i < n; i++)
		put(1 + i, x + 1, lines[a->scr->help_top + i], (size_t)lens[a->scr->help_top + i],
		    w - 2);
	snprintf(foot, sizeof(foot), "lines %d-%d of %d%s", a->scr->help_top + 1,
		 MIN(n, a->scr->help_top + body), n,
		 n > body ? "  Up/Down/PgUp/PgDn scroll, any other key closes"
			  : "  any key closes");
	bar(rows - 1, x, w, foot);
}

void
screen_help_open(struct app *a)
{
	assert_ui();
	a->overlay = OVERLAY_HELP;
	a->scr->help_top = 0;
}

/* The help overlay scrolls; any key but a moving one closes it. */
void
screen_help_key(struct app *a, int k)
{
	struct screen *s = a->scr;
	int page = MAX(1, s->rows - 6);

	assert_ui();
	switch (k) {
	case 'j':
	case KEY_DOWN:
		s->help_top++;
		break;
	case 'k':
	case KEY_UP:
		s->help_top--;
		break;
	case ' ':
	case KEY_NPAGE:
		s->help_top += page;
		break;
	case 'b':
	case KEY_PPAGE:
		s->help_top -= page;
		break;
	case 'g':
	case KEY_HOME:
		s->help_top = 0;
		break;
	case 'G':
	case KEY_END:
		s->help_top = 1 << 20;
		break;
	default:
		a->overlay = OVERLAY_NONE;
		return;
	}
	s->help_top = MAX(0, s->help_top); /* the far end is clamped when drawn */
}

/* ---- the frame ----------------------------------------------------------- */

void
screen_draw(struct app *a)
{
	int trows;

	assert_ui();
	a->scr->dirty = false;
	a->scr->last_draw = now_sec();
	if (a->scr->too_small) {
		erase();
		put_str(0, 0, "terminal too small", a->scr->cols - 1);
		put_str(1, 0, "(qnext needs 40x10)", a->scr->cols - 1);
		refresh();
		return;
	}
	a->scr->in_rows = input_rows(a);
	trows = a->scr->rows - STATUS_ROWS - a->scr->in_rows;
	draw_transcript(a, trows);
	draw_status(a, trows);
	if (a->overlay == OVERLAY_HELP)
		draw_help(a, trows);
	else if (a->overlay == OVERLAY_BROWSER && a->scr->overlay != NULL)
		a->scr->overlay(a->scr->overlay_arg, trows, a->scr->cols);
	draw_input(a, trows + STATUS_ROWS, a->scr->in_rows);
	if (a->overlay == OVERLAY_HELP || a->overlay == OVERLAY_BROWSER)
		curs_set(0);
	else
		curs_set(1);
	refresh();
}
