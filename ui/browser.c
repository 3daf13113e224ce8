/*
 * browser.c - the conversation list overlay (F2, /chats, /search): saved
 * conversations newest first, or full-text search hits with their snippet;
 * j/k or arrows move, Enter opens, / searches, R renames, d deletes (after a
 * y/n question), x exports Markdown, q or Esc closes.
 *
 * The list is the browser's own state (struct browser, a->br).  What a key
 * asks of the rest of the UI (open, ask a question, export) it returns to
 * its caller instead of doing it, so it calls nothing above it.
 *
 * UI thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curses.h>
#include <readline/readline.h>

#include "store.h"
#include "thread-role.h"
#include "ui-int.h"
#include "util.h"

struct browser_item {
	int64_t conv_id;
	char *title;
	char *detail; /* date and size, or a search snippet */
};

struct browser {
	struct browser_item *items;
	int n_items, sel, top;
	char *query;    /* the search shown, or NULL for the list */
	int64_t target; /* conversation a rename or delete question is about */
};

struct browser *
browser_new(void)
{
	return xcalloc(1, sizeof(struct browser));
}

static void
clear_items(struct browser *b)
{
	for (int i = 0; i < b->n_items; i++) {
		free(b->items[i].title);
		free(b->items[i].detail);
	}
	free(b->items);
	b->items = NULL;
	b->n_items = b->sel = b->top = 0;
}

static char *
when(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];

	localtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm);
	return xstrdup(buf);
}

/* Replace the store's match markers by brackets for display. */
static char *
snippet(const char *s)
{
	char *r = xstrdup(s);

	for (char *p = r; *p != '\0'; p++)
		if (*p == STORE_MARK_START[0])
			*p = '[';
		else if (*p == STORE_MARK_END[0])
			*p = ']';
		else if (*p == '\n' || *p == '\t')
			*p = ' ';
	return r;
}

static int
load_list(struct app *a, struct browser *b)
{
	struct store_conv_item *it = NULL;
	size_t n = 0;
	char *cause = NULL;

	if (store_conv_list(history_store(a), &it, &n, &cause) != 0) {
		ui_status(a, true, "cannot list conversations: %s", cause);
		free(cause);
		return -1;
	}
	b->items = xcalloc(n + 1, sizeof(*b->items));
	for (size_t i = 0; i < n; i++) {
		char *w = when(it[i].updated_at);

		b->items[i].conv_id = it[i].id;
		b->items[i].title = xstrdup(it[i].title);
		b->items[i].detail =
			xasprintf("#%lld  %s, %lld message%s", (long long)it[i].id, w,
				  (long long)it[i].n_messages, it[i].n_messages == 1 ? "" : "s");
		free(w);
	}
	b->n_items = (int)n;
	store_conv_list_free(it, n);
	return 0;
}

static int
load_search(struct app *a, struct browser *b, const char *q)
{
	struct store_hit *h = NULL;
	size_t n = 0;
	char *cause = NULL;

	if (store_search(history_store(a), q, &h, &n, &cause) != 0) {
		ui_status(a, true, "search failed: %s", cause);
		free(cause);
		return -1;
	}
	b->items = xcalloc(n + 1, sizeof(*b->items));
	for (size_t i = 0; i < n; i++) {
		b->items[i].conv_id = h[i].conv_id;
		char *snip = snippet(h[i].snippet);

		b->items[i].title = xstrdup(h[i].title);
		b->items[i].detail = xasprintf("#%lld  %s", (long long)h[i].conv_id, snip);
		free(snip);
	}
	b->n_items = (int)n;
	store_hits_free(h, n);
	return 0;
}

void
browser_free(struct browser *b)
{
	if (b == NULL)
		return;
	clear_items(b);
	free(b->query);
	free(b);
}

void
browser_open(struct app *a, const char *query)
{
	struct browser *b = a->br;

	assert_ui();
	if (history_store(a) == NULL) {
		ui_status(a, true, "%s", history_error(a) ? history_error(a) : "history is off");
		return;
	}
	clear_items(b);
	free(b->query);
	b->query = query != NULL && *query ? xstrdup(query) : NULL;
	if ((b->query ? load_search(a, b, b->query) : load_list(a, b)) != 0)
		return;
	a->overlay = OVERLAY_BROWSER;
	screen_dirty(a);
}

void
browser_close(struct app *a)
{
	struct browser *b = a->br;

	assert_ui();
	clear_items(b);
	free(b->query);
	b->query = NULL;
	if (a->overlay == OVERLAY_BROWSER)
		a->overlay = OVERLAY_NONE;
}

void
browser_search_line(struct app *a, const char *line)
{
	assert_ui();
	browser_open(a, line);
}

/* Reopen the list (or search) with the cursor on conversation id when it is there. */
static void
reopen_at(struct app *a, int64_t id)
{
	struct browser *b = a->br;

	browser_open(a, b->query);
	for (int i = 0; i < b->n_items; i++)
		if (b->items[i].conv_id == id)
			b->sel = i;
}

void
browser_rename_line(struct app *a, const char *line)
{
	char *cause = NULL;
	int64_t id = a->br->target;

	assert_ui();
	if (id > 0 && line[0] != '\0' &&
	    store_conv_rename(history_store(a), id, line, &cause) != 0) {
		ui_status(a, true, "rename failed: %s", cause);
		free(cause);
	}
	reopen_at(a, id);
}

int64_t
browser_target(const struct app *a)
{
	return a->br->target;
}

/* Move the selection for a key; false when the key is not a moving one. */
static bool
move_key(struct browser *b, int key)
{
	int last = MAX(b->n_items - 1, 0);

	switch (key) {
	case 'j':
	case KEY_DOWN:
		b->sel = MIN(b->sel + 1, last);
		return true;
	case 'k':
	case KEY_UP:
		b->sel = MAX(b->sel - 1, 0);
		return true;
	case 'g':
	case KEY_HOME:
		b->sel = 0;
		return true;
	case 'G':
	case KEY_END:
		b->sel = last;
		return true;
	case KEY_NPAGE:
	case ' ':
		b->sel = MIN(b->sel + 10, last);
		return true;
	case KEY_PPAGE:
	case 'b':
		b->sel = MAX(b->sel - 10, 0);
		return true;
	default:
		return false;
	}
}

/* What a key asks for, after the list did its own part (moving, closing). */
static enum browser_act
act_key(struct app *a, int key, int64_t id)
{
	struct browser *b = a->br;

	switch (key) {
	case '\r':
	case '\n':
		browser_close(a);
		return id > 0 ? BROWSER_OPEN : BROWSER_STAY;
	case '/':
		browser_close(a);
		return BROWSER_SEARCH;
	case 'R':
	case 'd':
		if (id <= 0)
			return BROWSER_STAY;
		b->target = id;
		browser_close(a);
		return key == 'R' ? BROWSER_RENAME : BROWSER_DELETE;
	case 'x':
		return id > 0 ? BROWSER_EXPORT : BROWSER_STAY;
	case 'q':
	case 0x1b:
	case 'Q':
		browser_close(a);
		return BROWSER_STAY;
	default:
		return BROWSER_STAY;
	}
}

enum browser_act
browser_key(struct app *a, int key, int64_t *id, char **title)
{
	struct browser *b = a->br;
	enum browser_act act = BROWSER_STAY;

	assert_ui();
	*id = b->n_items > 0 ? b->items[b->sel].conv_id : 0;
	*title = *id > 0 ? xstrdup(b->items[b->sel].title) : NULL;
	if (!move_key(b, key))
		act = act_key(a, key, *id);
	screen_dirty(a);
	return act;
}

bool
browser_click(struct app *a, int y)
{
	struct browser *b = a->br;
	int idx = b->top + (y - 1) / 2; /* rows of two lines below the title (browser_draw) */

	assert_ui();
	if (y < 1 || idx >= b->n_items)
		return false;
	screen_dirty(a);
	if (idx == b->sel)
		return true;
	b->sel = idx;
	return false;
}

void
browser_draw(void *arg, int h, int cols)
{
	struct browser *b = arg; /* its scroll follows the selection */
	int w = cols, x = 0, rows = MAX(1, (h - 1) / 2);
	char title[256];

	if (b->sel < b->top)
		b->top = b->sel;
	if (b->sel >= b->top + rows)
		b->top = b->sel - rows + 1;
	snprintf(title, sizeof(title),
		 "%s - Enter open, / search, R rename, d delete, x export, q close",
		 b->query ? "search results" : "conversations");
	for (int y = 0; y < h; y++) {
		move(y, x);
		for (int i = 0; i < w; i++)
			addch(' ');
	}
	attron(A_REVERSE);
	mvaddnstr(0, x, title, w);
	attroff(A_REVERSE);
	if (b->n_items == 0)
		mvaddnstr(2, x + 1, b->query ? "no matches" : "no saved conversations", w - 2);
	for (int i = 0; i < rows && b->top + i < b->n_items; i++) {
		const struct browser_item *it = &b->items[b->top + i];
		int y = 1 + 2 * i;

		if (b->top + i == b->sel)
			attron(A_REVERSE);
		mvaddnstr(y, x + 1, it->title, w - 2);
		attroff(A_REVERSE);
		attron(A_DIM);
		mvaddnstr(y + 1, x + 3, it->detail, w - 4);
		attroff(A_DIM);
	}
}
