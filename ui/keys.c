/*
 * keys.c - the keyboard: the key bindings readline runs (Ctrl-C, F-keys,
 * scrolling, the editor, suspend...), and the decoding of stdin's bytes,
 * which go to the overlay that owns the keyboard (help, conversation list,
 * a y/n question) or else to readline, one key at a time: keys.c is
 * readline's byte source (rl_getc_function), and owns the bytes read
 * (struct keys, a->keys).
 *
 * Readline's key functions and byte source take no context: they find the
 * app with inputline_app().
 *
 * UI thread only.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curses.h>
#include <readline/readline.h>

#include "store.h"
#include "thread-role.h"
#include "ui-int.h"
#include "util.h"

/* keys.c's own state (a->keys): the bytes read from stdin, handed to readline
 * one key at a time. */
struct keys {
	unsigned char buf[4096];
	size_t len, pos; /* buf[pos, len): not handed on yet */
};

struct keys *
keys_new(void)
{
	return xcalloc(1, sizeof(struct keys));
}

void
keys_free(struct keys *k)
{
	free(k);
}

/* readline's byte source: the bytes keys_stdin read, else a blocking read. */
static int
keys_getc(FILE *f)
{
	struct keys *ks = inputline_app()->keys;
	unsigned char c;

	(void)f;
	if (ks->pos < ks->len)
		return ks->buf[ks->pos++];
	for (;;) {
		ssize_t n = read(STDIN_FILENO, &c, 1);

		if (n == 1)
			return c;
		if (n == 0)
			return EOF;
		if (errno != EINTR && errno != EAGAIN)
			return EOF;
		if (errno == EAGAIN) {
			struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };

			poll(&p, 1, 100);
		}
	}
}

/* Ctrl-C, as a key or as SIGINT: stop the answer, else empty the line, else a hint. */
void
keys_interrupt(struct app *a)
{
	assert_ui();
	if (a->state == APP_GENERATING)
		chat_stop(a);
	else if (rl_end > 0) {
		rl_replace_line("", 0);
		rl_point = 0;
	} else
		ui_status(a, false, "Ctrl-D or /quit to exit");
	screen_dirty(a);
}

static int
key_ctrl_c(int count, int key)
{
	(void)count, (void)key;
	keys_interrupt(inputline_app());
	return 0;
}

static int
key_newline(int count, int key)
{
	(void)count, (void)key;
	rl_insert_text("\n");
	return 0;
}

static int
key_think(int count, int key)
{
	struct entry *e = transcript_last(&inputline_app()->tr, ENTRY_ASSISTANT);

	(void)count, (void)key;
	if (e != NULL)
		e->think_open = !e->think_open;
	screen_dirty(inputline_app());
	return 0;
}

static int
scroll_by(int lines)
{
	struct app *a = inputline_app();

	a->tr.scroll = MAX(0, a->tr.scroll + lines);
	screen_dirty(a);
	return 0;
}

static int
key_pgup(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(MAX(1, screen_rows(inputline_app()) - 6));
}

static int
key_pgdn(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(-MAX(1, screen_rows(inputline_app()) - 6));
}

static int
key_up3(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(3);
}

static int
key_down3(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(-3);
}

static int
key_top(int c, int k)
{
	(void)c, (void)k;
	return scroll_by(1 << 28);
}

static int
key_bottom(int c, int k)
{
	(void)c, (void)k;
	inputline_app()->tr.scroll = 0;
	screen_dirty(inputline_app());
	return 0;
}

static int
key_help(int c, int k)
{
	(void)c, (void)k;
	slash_help(inputline_app(), NULL);
	screen_dirty(inputline_app());
	return 0;
}

static int
key_chats(int c, int k)
{
	(void)c, (void)k;
	browser_open(inputline_app(), NULL);
	return 0;
}

static int
key_regen(int c, int k)
{
	(void)c, (void)k;
	chat_regen(inputline_app());
	return 0;
}

/* Ctrl-X Left / Right: the previous / next sibling branch (chat_branch picks which). */
static int
key_branch_prev(int c, int k)
{
	(void)c, (void)k;
	chat_branch(inputline_app(), -1);
	return 0;
}

static int
key_branch_next(int c, int k)
{
	(void)c, (void)k;
	chat_branch(inputline_app(), +1);
	return 0;
}

static int
key_quit(int c, int k)
{
	(void)c, (void)k;
	inputline_app()->quit = true;
	return 0;
}

static int
key_redraw(int c, int k)
{
	(void)c, (void)k;
	clearok(curscr, TRUE);
	screen_draw(inputline_app());
	return 0;
}

static int
key_search(int c, int k)
{
	(void)c, (void)k;
	inputline_ask(inputline_app(), "search: ", NULL, slash_search_line);
	return 0;
}

/* Ctrl-X Ctrl-E: edit the input in $VISUAL or $EDITOR. */
static int
key_editor(int c, int k)
{
	const char *ed = getenv("VISUAL") ? getenv("VISUAL") : getenv("EDITOR");
	char path[] = "/tmp/qnext-input-XXXXXX", *cmd, *text;
	int fd = mkstemp(path);
	size_t n;

	(void)c, (void)k;
	if (fd < 0)
		return 0;
	if (write(fd, rl_line_buffer, (size_t)rl_end) < 0)
		ui_status(inputline_app(), true, "cannot write %s", path);
	close(fd);
	cmd = xasprintf("%s %s", ed != NULL ? ed : "vi", path);
	def_prog_mode();
	fputs("\033[?2004l", stdout);
	endwin();
	if (system(cmd) != 0)
		ui_status(inputline_app(), true, "the editor failed: %s", cmd);
	reset_prog_mode();
	fputs("\033[?2004h", stdout);
	fflush(stdout);
	clearok(curscr, TRUE);
	if ((text = read_file(path, &n, NULL)) != NULL) {
		while (n > 0 && text[n - 1] == '\n')
			text[--n] = '\0';
		rl_replace_line(text, 0);
		rl_point = rl_end;
		free(text);
	}
	unlink(path);
	free(cmd);
	screen_dirty(inputline_app());
	return 0;
}

/* Ctrl-Z: raw mode delivers it as a key; suspend like a shell job would. */
static int
key_suspend(int c, int k)
{
	(void)c, (void)k;
	def_prog_mode();
	fputs("\033[?2004l", stdout);
	endwin();
	signal(SIGTSTP, SIG_DFL);
	kill(0, SIGTSTP);
	reset_prog_mode();
	fputs("\033[?2004h", stdout);
	fflush(stdout);
	clearok(curscr, TRUE);
	screen_dirty(inputline_app());
	return 0;
}

/* Alt-M: mouse reporting on or off (WeeChat's key; docs/ui.md "Mouse"). */
static int
key_mouse(int c, int k)
{
	struct app *a = inputline_app();

	(void)c, (void)k;
	screen_mouse(a, !a->mouse);
	ui_status(a, false, "mouse %s",
		  a->mouse ? "on: wheel scrolls, clicks act" : "off: the terminal selects text");
	return 0;
}

static int
key_alt_digit(int c, int k)
{
	struct store *st = history_store(inputline_app());
	struct store_conv_item *items = NULL;
	size_t n = 0;
	int idx = k - '1';

	(void)c;
	if (st == NULL || store_conv_list(st, &items, &n, NULL) != 0)
		return 0;
	if (idx >= 0 && (size_t)idx < n)
		chat_open(inputline_app(), items[idx].id);
	store_conv_list_free(items, n);
	return 0;
}

/*
 * Bind in every keymap a user can be in: emacs, and vi's insert and command
 * maps (with `set editing-mode vi` in ~/.inputrc the emacs map is never
 * used, so keys bound only there do nothing).
 */
static void
bind(const char *seq, rl_command_func_t *fn)
{
	Keymap maps[] = { emacs_standard_keymap, vi_insertion_keymap, vi_movement_keymap };

	for (size_t i = 0; i < ARRAY_LEN(maps); i++)
		rl_bind_keyseq_in_map(seq, fn, maps[i]);
}

void
keys_init(void)
{
	char alt[4] = "\\e1";

	assert_ui();
	rl_getc_function = keys_getc;
	bind("\\C-c", key_ctrl_c);
	bind("\\e\\C-m", key_newline);
	bind("\\e\\C-j", key_newline);
	bind("\\C-j", key_newline);
	bind("\\C-o", key_think);
	bind("\\e[5~", key_pgup);
	bind("\\e[6~", key_pgdn);
	bind("\\e[5;3~", key_up3);
	bind("\\e[6;3~", key_down3);
	bind("\\e\\e[5~", key_up3);
	bind("\\e\\e[6~", key_down3);
	bind("\\e[1;2A", key_up3);
	bind("\\e[1;2B", key_down3);
	bind("\\e[1;3H", key_top);
	bind("\\e[1;3F", key_bottom);
	bind("\\eOP", key_help);
	bind("\\e[11~", key_help);
	bind("\\eOQ", key_chats);
	bind("\\e[12~", key_chats);
	bind("\\eOR", key_search);
	bind("\\e[13~", key_search);
	bind("\\C-s", key_search);
	bind("\\e[15~", key_regen);
	bind("\\e[21~", key_quit);
	bind("\\C-l", key_redraw);
	bind("\\C-z", key_suspend);
	bind("\\C-x\\C-e", key_editor);
	bind("\\C-x\\e[D", key_branch_prev); /* Ctrl-X then Left, normal and application mode */
	bind("\\C-x\\eOD", key_branch_prev);
	bind("\\C-x\\e[C", key_branch_next);
	bind("\\C-x\\eOC", key_branch_next);
	bind("\\em", key_mouse);
	for (char d = '1'; d <= '9'; d++) {
		alt[2] = d;
		bind(alt, key_alt_digit);
	}
}

/*
 * Bytes of the escape sequence at p (n > 0 bytes there): a CSI or SS3
 * sequence up to its final byte, Alt plus a key, or a lone Esc; 0 when p
 * does not start with Esc.
 */
static size_t
esc_seq_len(const unsigned char *p, size_t n)
{
	size_t k = 2;

	if (p[0] != 0x1b)
		return 0;
	if (n == 1)
		return 1;
	if (p[1] == 0x1b) /* Alt with a key that is a sequence itself */
		return 1 + esc_seq_len(p + 1, n - 1);
	if (p[1] == 'O')
		return MIN(3, n);
	if (p[1] != '[')
		return 2;
	while (k < n && !(p[k] >= 0x40 && p[k] <= 0x7e))
		k++;
	return MIN(k + 1, n);
}

/* The key a CSI/SS3 sequence p[0..n) names, for the overlays; -1 if none of theirs. */
static int
seq_key(const unsigned char *p, size_t n)
{
	int num = n > 3 ? atoi((const char *)p + 2) : 0;

	switch (p[n - 1]) {
	case 'A':
		return KEY_UP;
	case 'B':
		return KEY_DOWN;
	case 'H':
		return KEY_HOME;
	case 'F':
		return KEY_END;
	case '~': /* vt220 keypad: 1 and 7 Home, 4 and 8 End (screen, tmux, rxvt) */
		return num == 5               ? KEY_PPAGE
		       : num == 6             ? KEY_NPAGE
		       : num == 1 || num == 7 ? KEY_HOME
		       : num == 4 || num == 8 ? KEY_END
					      : -1;
	default:
		return -1;
	}
}

/*
 * A mouse report at the read position: SGR (ESC [ < B ; X ; Y M, or m on a
 * release) or the old X10 form (ESC [ M and three bytes, each + 32).
 * Consumes it and returns true with the button and 0-based cell; false
 * (nothing consumed) when the bytes there are something else.
 */
static bool
take_mouse(struct keys *ks, int *button, int *x, int *y, bool *release)
{
	unsigned char *p = ks->buf + ks->pos;
	size_t n = ks->len - ks->pos, k;

	if (n >= 6 && p[0] == 0x1b && p[1] == '[' && p[2] == 'M') {
		*button = p[3] - 32, *x = p[4] - 33, *y = p[5] - 33;
		*release = (*button & 3) == 3;
		ks->pos += 6;
		return true;
	}
	if (n < 9 || p[0] != 0x1b || p[1] != '[' || p[2] != '<')
		return false;
	k = esc_seq_len(p, n);
	if (p[k - 1] != 'M' && p[k - 1] != 'm')
		return false;
	if (sscanf((const char *)p + 3, "%d;%d;%d", button, x, y) != 3)
		return false;
	*release = p[k - 1] == 'm';
	(*x)--, (*y)--;
	ks->pos += k;
	return true;
}

/* What a click or a wheel turn does: scroll, open a thinking panel, pick a list row. */
static void
mouse_event(struct app *a, int button, int y)
{
	const struct line *l;

	if (button == 64 || button == 65) { /* the wheel: up, down */
		if (a->overlay == OVERLAY_BROWSER)
			slash_browser_key(a, button == 64 ? KEY_UP : KEY_DOWN);
		else if (a->overlay == OVERLAY_NONE)
			a->tr.scroll = MAX(0, a->tr.scroll + (button == 64 ? 3 : -3));
	} else if (button == 0 && a->overlay == OVERLAY_BROWSER) {
		if (browser_click(a, y))
			slash_browser_key(a, '\r');
	} else if (button == 0 && a->overlay == OVERLAY_NONE &&
		   (l = screen_line_at(a, y)) != NULL && l->kind == LINE_THINK) {
		screen_toggle_think(a, l->e);
	}
	screen_dirty(a);
}

/* Handle the mouse reports at the read position; true when there was one. */
static bool
mouse_reports(struct app *a)
{
	int button, x, y;
	bool release, any = false;

	while (take_mouse(a->keys, &button, &x, &y, &release)) {
		if (!release && a->mouse)
			mouse_event(a, button, y);
		any = true;
	}
	return any;
}

/* Decode one key from the input bytes for the overlays; 0 when none. */
static int
next_key(struct app *a)
{
	struct keys *ks = a->keys;
	unsigned char *p = ks->buf + ks->pos;
	size_t n = ks->len - ks->pos, k;

	if (n == 0)
		return 0;
	k = esc_seq_len(p, n);
	if (k >= 3 && p[1] != 0x1b) {
		ks->pos += k;
		return seq_key(p, k);
	}
	ks->pos++;
	return p[0];
}

static void
overlay_keys(struct app *a)
{
	int k;

	for (;;) {
		if (mouse_reports(a)) {
			if (a->overlay == OVERLAY_NONE)
				break;
			continue;
		}
		if ((k = next_key(a)) == 0)
			break;
		if (a->overlay == OVERLAY_HELP) {
			screen_help_key(a, k);
		} else if (a->overlay == OVERLAY_CONFIRM) {
			a->overlay = OVERLAY_NONE;
			if ((k == 'y' || k == 'Y') && a->confirm_fn != NULL)
				a->confirm_fn(a);
			else
				ui_status(a, false, "cancelled");
		} else if (a->overlay == OVERLAY_BROWSER) {
			slash_browser_key(a, k);
		}
		screen_dirty(a);
		if (a->overlay == OVERLAY_NONE)
			break; /* the rest goes to readline */
	}
}

/* A lone Esc while generating stops the answer (readline would wait for more). */
static bool
lone_escape(struct app *a)
{
	struct keys *ks = a->keys;
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };

	if (a->state != APP_GENERATING || ks->len - ks->pos != 1 || ks->buf[ks->pos] != 0x1b)
		return false;
	if (poll(&p, 1, 30) > 0)
		return false;
	ks->pos++;
	chat_stop(a);
	return true;
}

/*
 * Put a line that could not be sent back in the input.  Not from the line
 * handler itself: readline empties the line after the handler returns.
 */
static void
restore_kept_line(struct app *a)
{
	if (a->kept_line == NULL)
		return;
	rl_replace_line(a->kept_line, 0);
	rl_point = rl_end;
	free(a->kept_line);
	a->kept_line = NULL;
	screen_dirty(a);
}

void
keys_stdin(struct app *a)
{
	struct keys *ks = a->keys;
	ssize_t n;

	assert_ui();
	n = read(STDIN_FILENO, ks->buf, sizeof(ks->buf));
	if (n <= 0) {
		if (n == 0)
			a->quit = true; /* the terminal went away */
		return;
	}
	ks->len = (size_t)n;
	ks->pos = 0;
	if (a->overlay != OVERLAY_NONE)
		overlay_keys(a);
	if (lone_escape(a))
		return;
	while (ks->pos < ks->len && a->overlay == OVERLAY_NONE && !a->quit) {
		size_t k;

		if (mouse_reports(a))
			continue; /* never to readline, which would insert them as text */
		k = esc_seq_len(ks->buf + ks->pos, ks->len - ks->pos);

		/* An escape sequence goes to readline as pushed input: vi mode
		 * takes an Esc as "command mode" unless it sees the rest of the
		 * key already pending, and it looks there, not in our buffer. */
		while (k-- > 0)
			rl_stuff_char(ks->buf[ks->pos++]);
		rl_callback_read_char();
		restore_kept_line(a);
	}
	if (a->overlay != OVERLAY_NONE)
		overlay_keys(a);
	ks->len = ks->pos = 0;
}
