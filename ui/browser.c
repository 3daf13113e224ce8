/*
 * browser.c - the conversation list overlay (F2, /chats, /search): saved
 * conversations newest first, or full-text search hits with their snippet;
 * j/k or arrows move, Enter opens, / searches, R renames, d deletes (after a
 * y/n question), x exports Markdown, q or Esc closes.
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
#include "ui-int.h"
#include "util.h"

static void
clear_items(struct app *a)
{
	for (int i = 0; i < a->n_items; i++) {
		free(a->items[i].title);
		free(a->items[i].detail);
	}
	free(a->items);
	a->items = NULL;
	a->n_items = a->sel = a->top = 0;
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
load_list(struct app *a)
{
	struct store_conv_item *it = NULL;
	size_t n = 0;
	char *cause = NULL;

	if (store_conv_list(a->store, &it, &n, &cause) != 0) {
		app_set_status(a, true, "cannot list conversations: %s", cause);
		free(cause);
		return -1;
	}
	a->items = xcalloc(n + 1, sizeof(*a->items));
	for (size_t i = 0; i < n; i++) {
		char *w = when(it[i].updated_at);

		a->items[i].conv_id = it[i].id;
		a->items[i].title = xstrdup(it[i].title);
		a->items[i].detail =
			xasprintf("#%lld  %s, %lld message%s", (long long)it[i].id, w,
				  (long long)it[i].n_messages, it[i].n_messages == 1 ? "" : "s");
		free(w);
	}
	a->n_items = (int)n;
	store_conv_list_free(it, n);
	return 0;
}

static int
load_search(struct app *a, const char *q)
{
	struct store_hit *h = NULL;
	size_t n = 0;
	char *cause = NULL;

	if (store_search(a->store, q, &h, &n, &cause) != 0) {
		app_set_status(a, true, "search failed: %s", cause);
		free(cause);
		return -1;
	}
	a->items = xcalloc(n + 1, sizeof(*a->items));
	for (size_t i = 0; i < n; i++) {
		a->items[i].conv_id = h[i].conv_id;
		char *snip = snippet(h[i].snippet);

		a->items[i].title = xstrdup(h[i].title);
		a->items[i].detail = xasprintf("#%lld  %s", (long long)h[i].conv_id, snip);
		free(snip);
	}
	a->n_items = (int)n;
	store_hits_free(h, n);
	return 0;
}

void
browser_open(struct app *a, const char *query)
{
	if (a->store == NULL) {
		app_set_status(a, true, "%s", a->store_error ? a->store_error : "history is off");
		return;
	}
	clear_items(a);
	free(a->browser_query);
	a->browser_query = query != NULL && *query ? xstrdup(query) : NULL;
	if ((a->browser_query ? load_search(a, a->browser_query) : load_list(a)) != 0)
		return;
	a->overlay = OVERLAY_BROWSER;
	screen_dirty(a);
}

void
browser_close(struct app *a)
{
	clear_items(a);
	free(a->browser_query);
	a->browser_query = NULL;
	if (a->overlay == OVERLAY_BROWSER)
		a->overlay = OVERLAY_NONE;
}

static void
search_line(struct app *a, const char *line)
{
	browser_open(a, line);
}

/* Reopen the list (or search) with the cursor on conversation id when it is there. */
static void
reopen_at(struct app *a, int64_t id)
{
	browser_open(a, a->browser_query);
	for (int i = 0; i < a->n_items; i++)
		if (a->items[i].conv_id == id)
			a->sel = i;
}

static void
rename_line(struct app *a, const char *line)
{
	char *cause = NULL;
	int64_t id = a->browser_target;

	if (id > 0 && line[0] != '\0' && store_conv_rename(a->store, id, line, &cause) != 0) {
		app_set_status(a, true, "rename failed: %s", cause);
		free(cause);
	}
	reopen_at(a, id);
}

static void
delete_confirmed(struct app *a)
{
	char *cause = NULL;

	if (store_conv_delete(a->store, a->browser_target, &cause) != 0) {
		app_set_status(a, true, "delete failed: %s", cause);
		free(cause);
	} else {
		if (a->browser_target == a->conv_id)
			app_drop_conversation(a);
		app_set_status(a, false, "conversation deleted");
	}
	browser_open(a, a->browser_query);
}

static void
ask_line(struct app *a, const char *prompt, const char *initial, app_line_fn *fn)
{
	browser_close(a);
	app_ask(a, prompt, initial, fn);
}

void
browser_key(struct app *a, int key)
{
	int64_t id = a->n_items > 0 ? a->items[a->sel].conv_id : 0;
	char *title = id > 0 ? xstrdup(a->items[a->sel].title) : NULL, *q;

	switch (key) {
	case 'j':
	case KEY_DOWN:
		a->sel = MIN(a->sel + 1, MAX(a->n_items - 1, 0));
		break;
	case 'k':
	case KEY_UP:
		a->sel = MAX(a->sel - 1, 0);
		break;
	case 'g':
	case KEY_HOME:
		a->sel = 0;
		break;
	case 'G':
	case KEY_END:
		a->sel = MAX(a->n_items - 1, 0);
		break;
	case KEY_NPAGE:
	case ' ':
		a->sel = MIN(a->sel + 10, MAX(a->n_items - 1, 0));
		break;
	case KEY_PPAGE:
	case 'b':
		a->sel = MAX(a->sel - 10, 0);
		break;
	case '\r':
	case '\n':
		browser_close(a);
		if (id > 0)
			app_open_conversation(a, id);
		break;
	case '/':
		ask_line(a, "search chats: ", NULL, search_line);
		break;
	case 'R':
		if (id > 0) {
			a->browser_target = id;
			ask_line(a, "new title: ", title, rename_line);
		}
		break;
	case 'd':
		if (id > 0) {
			a->browser_target = id;
			browser_close(a);
			q = xasprintf("delete #%lld \"%s\"?", (long long)id, title);
			app_confirm(a, q, delete_confirmed);
			free(q);
		}
		break;
	case 'x':
		if (id > 0)
			app_export(a, id, false, NULL);
		break;
	case 'q':
	case 0x1b:
	case 'Q':
		browser_close(a);
		break;
	default:
		break;
	}
	free(title);
	screen_dirty(a);
}

void
browser_draw(struct app *a, int h)
{
	int w = a->cols, x = 0, rows = MAX(1, (h - 1) / 2);
	char title[256];

	if (a->sel < a->top)
		a->top = a->sel;
	if (a->sel >= a->top + rows)
		a->top = a->sel - rows + 1;
	snprintf(title, sizeof(title),
		 "%s - Enter open, / search, R rename, d delete, x export, q close",
		 a->browser_query ? "search results" : "conversations");
	for (int y = 0; y < h; y++) {
		move(y, x);
		for (int i = 0; i < w; i++)
			addch(' ');
	}
	attron(A_REVERSE);
	mvaddnstr(0, x, title, w);
	attroff(A_REVERSE);
	if (a->n_items == 0)
		mvaddnstr(2, x + 1, a->browser_query ? "no matches" : "no saved conversations",
			  w - 2);
	for (int i = 0; i < rows && a->top + i < a->n_items; i++) {
		const struct browser_item *it = &a->items[a->top + i];
		int y = 1 + 2 * i;

		if (a->top + i == a->sel)
			attron(A_REVERSE);
		mvaddnstr(y, x + 1, it->title, w - 2);
		attroff(A_REVERSE);
		attron(A_DIM);
		mvaddnstr(y + 1, x + 3, it->detail, w - 4);
		attroff(A_DIM);
	}
}
