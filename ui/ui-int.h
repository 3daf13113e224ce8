/*
 * ui-int.h - state shared by the full-screen UI's files.  Private to ui/.
 *
 * The files call one another in one direction only, from the top down:
 *   app.c (loop, engine messages, signals) -> keys.c -> slash.c -> inputline.c,
 *   chat.c -> history.c -> screen.c, browser.c -> gauges.c, transcript.c, wrap.c
 * (slash.c also calls browser.c and chat.c; browser.c calls screen.c for
 * notices).  Where a lower file must reach up, it is handed a callback:
 * inputline.c's line handler (slash_line), screen.c's overlay (browser_draw).
 *
 * UI thread only: every function declared here touches curses, readline or
 * the store, and asserts it runs on the UI thread.
 */
#ifndef QNEXT_UI_INT_H
#define QNEXT_UI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat-types.h"
#include "store.h"

struct store;
struct queue;
struct engine;
struct screen;
struct browser;
struct history;
struct keys;
struct gauges;
struct msg_net;
struct msg_models;
struct md_doc;

/* ---- transcript -------------------------------------------------------- */

enum entry_kind {
	ENTRY_USER,
	ENTRY_ASSISTANT,
	ENTRY_INFO, /* command output, notices */
	ENTRY_ERROR,
};

enum line_kind {
	LINE_HEADER, /* "you" / "qnext" */
	LINE_TEXT,   /* user text, answer, info */
	LINE_THINK,  /* the thinking panel's summary line */
	LINE_REASON, /* reasoning text (panel expanded) */
	LINE_STATS,  /* per-turn figures */
	LINE_BLANK,
	LINE_MD, /* an answer's line laid out as Markdown: md_doc line `md` (markdown.h) */
};

struct line {
	enum line_kind kind;
	struct entry *e;
	const char *base; /* text the line shows: base[off, off + len) */
	size_t off, len;
	int md; /* LINE_MD: the line's index in e->md */
};

/* How an answer ended, kept until the store has it (history.c). */
struct entry_final {
	enum store_status status;
	char *error; /* or NULL */
	struct store_usage usage;
	char *params_json; /* or NULL */
};

struct entry {
	uint64_t uid; /* unique in the program's life: how the app names a turn */
	enum entry_kind kind;
	char *text; /* user text / answer / info (NUL-terminated) */
	size_t len, cap;
	char *reason; /* reasoning (assistant) */
	size_t rlen, rcap;
	bool think_open; /* panel expanded */
	bool streaming;
	int think_tokens, answer_tokens;
	double t0, t_think; /* turn start; seconds spent thinking */
	char *stats;        /* one-line summary once done, or NULL */
	int64_t db_id;      /* store row, 0 = not saved, -1 = never to be saved */
	int64_t regen_of;   /* assistant, unsaved: the stored answer it is a sibling of */
	/* Its place in the store's tree: "< sib_index + 1/n_sibs >" beside it when n_sibs > 1
	 * (0: not known, as for a turn saved late). */
	int n_sibs, sib_index;
	int gen_total;           /* assistant: tokens generated, over every /continue of it */
	bool dropped;            /* left out of what the model sees (/drop) */
	struct entry_final *fin; /* assistant: its end, until the store has it; or NULL */
	/* Wrapped lines, valid for wrap_cols and the lengths recorded. */
	struct line *lines;
	int n_lines, cap_lines;
	int wrap_cols;
	size_t wrap_len, wrap_rlen;
	bool wrap_open, wrap_streaming;
	bool wrap_stats;
	bool wrap_md;      /* the answer was laid out as Markdown, into md */
	struct md_doc *md; /* or NULL; owned */
};

struct transcript {
	struct entry **e;
	int n, cap;
	int scroll;        /* lines above the bottom; 0 = follow the end */
	int total_lines;   /* after the last layout */
	uint64_t next_uid; /* for the next entry */
	char *search;      /* last search term */
	int search_hit;    /* line index of the last hit, -1 */
	bool markdown;     /* answers laid out as Markdown (not --raw) */
};

/* Text lines are indented by this many columns and use the rest of the row. */
#define TRANSCRIPT_INDENT 2
static inline int
transcript_text_cols(int cols)
{
	return cols - TRANSCRIPT_INDENT > 1 ? cols - TRANSCRIPT_INDENT : 1;
}

void transcript_init(struct transcript *t);
void entry_free(struct entry *e);
void entry_final_free(struct entry_final *f); /* accepts NULL */
void transcript_release(struct transcript *t);
void transcript_clear(struct transcript *t);
struct entry *transcript_add(struct transcript *t, enum entry_kind kind, const char *text);
void entry_append(struct entry *e, bool reasoning, const char *text, size_t len);
struct entry *transcript_last(struct transcript *t, enum entry_kind kind);
/* The entry with that uid, or NULL once it was cleared or removed. */
struct entry *transcript_by_uid(struct transcript *t, uint64_t uid);
/* Remove and free the last entry. */
void transcript_pop(struct transcript *t);
/* Rewrap as needed for cols; returns the total number of lines. */
int transcript_layout(struct transcript *t, int cols);
/* The i-th display line after transcript_layout (0 = first). */
const struct line *transcript_line(const struct transcript *t, int i);
/* Search upward from the line above `from` for term (case-insensitive); -1 if none. */
int transcript_find(const struct transcript *t, const char *term, int from);

/* ---- the application --------------------------------------------------- */

enum app_state {
	APP_LOADING,
	APP_IDLE,
	APP_GENERATING,
	APP_NO_MODEL, /* load failed; commands still work */
};

enum overlay {
	OVERLAY_NONE,
	OVERLAY_HELP,
	OVERLAY_BROWSER,
	OVERLAY_CONFIRM, /* y/n question in the status line */
};

struct app {
	enum app_state state;
	enum overlay overlay;
	bool quit;
	bool quitting; /* waiting for the engine to stop before exiting */
	struct queue *to_engine, *from_engine;
	struct engine *engine;
	char *model_dir; /* the model directory; remote: the server's URL, then after
			    MSG_READY "MODEL at URL (remote)", which answers are saved under */
	char *model_desc;
	bool remote;     /* a remote engine (--remote): network gauges, no load or faults */
	bool test_model; /* not the full-size model: random weights, gibberish answers */
	int n_ctx;       /* context length: asked for (0 = default), then MSG_READY's */
	int threads;
	uint64_t expert_cache; /* app_opts.expert_cache, passed on with MSG_LOAD */
	uint64_t state_cache;  /* app_opts.state_cache, likewise */

	/* The conversation on screen. */
	struct transcript tr;
	int64_t conv_id; /* store conversation, 0 = not saved yet */
	char *system;    /* system prompt, or NULL */
	struct gen_params gp;
	unsigned sp_set; /* enum sampler_field: gp.sp's fields the user chose (the rest: MSG_READY)
			  */
	uint64_t seq;    /* current turn */
	/* The assistant entry being generated, by uid (0 = none): the
	 * transcript can be cleared under a turn, so no pointer is kept. */
	uint64_t turn_uid;
	struct sampler_params turn_sp; /* what the turn samples with, its seed resolved */
	bool stopping;                 /* a cancel was sent for the turn */
	int64_t regen_of;  /* stored answer the next turn regenerates (a sibling), or 0 */
	uint64_t edit_uid; /* the user entry an "edit: " prompt is editing, by uid, or 0 */
	bool think_default_open;
	/* Where each setting came from (1 << enum setting_key): flag, settings
	 * file, /set in this chat; the rest are defaults (settings.h). */
	unsigned from_flag, from_conf, from_chat;
	bool mouse;             /* the terminal reports clicks and the wheel (screen_mouse) */
	int ctx_used;           /* tokens of the last prompt + reply */
	bool turn_continues;    /* the turn goes on with its entry's answer (/continue) */
	bool compacting;        /* the turn writes the summary /compact starts a new chat from */
	bool ctx_warned;        /* the 90% warning was given in this conversation */
	bool too_long;          /* the last prompt did not fit the context: /drop asks again */
	double last_checkpoint; /* when the streaming answer was last saved */

	struct history *hist; /* history.c's own state: the store, unsaved turns kept */

	struct gauges *gauges; /* gauges.c's own state: the status rows' figures */

	struct browser *br; /* browser.c's own state: the conversation list */
	/* Confirmation: what to do on 'y'. */
	void (*confirm_fn)(struct app *a);
	char *confirm_text;

	struct screen *scr; /* screen.c's own state */

	struct keys *keys; /* keys.c's own state: the bytes read from stdin */
	int sig_pipe[2];
	char *kept_line; /* a line Enter could not send, to put back in the input */
};

/* A handler for one line typed at a prompt (inputline_ask, slash_line). */
typedef void app_line_fn(struct app *a, const char *line);

/* ---- history.c: saving to chats.db, and again when it was busy ---------- */

struct history *history_new(void);
void history_free(struct history *h); /* accepts NULL; closes a store still open */
/* The store, or NULL when history is off or paused. */
struct store *history_store(const struct app *a);
/* Why history is off or paused (a notice), or NULL. */
const char *history_error(const struct app *a);
/* Open the store at start (paused, not off, when another process holds a lock). */
void history_open(struct app *a);
/* From the main loop: retry a paused open, save what could not be saved. */
void history_tick(struct app *a);
/* Save the transcript's unsaved entries in order; true when none is left. */
bool history_sync(struct app *a);
/*
 * Can the conversation branch in the store now: 1 yes (the store is open and
 * every entry saved, so the transcript is the store's branch), 0 history is
 * off (branch in memory only), -1 not now (paused, or turns unsaved: a notice
 * says so).
 */
int history_branch_ready(struct app *a);
/* Fill e's n_sibs and sib_index from the store (e saved); nothing on failure. */
void history_siblings(struct app *a, struct entry *e);
/* A turn starts: give its assistant entry a row when everything above is saved. */
void history_begin_turn(struct app *a, struct entry *e, int64_t regen_of);
/* Save the streaming answer so far (every few seconds). */
void history_checkpoint(struct app *a, struct entry *e);
/* A turn ended: save how (or keep it for later). */
void history_end_turn(struct app *a, struct entry *e, const struct store_reply *r);
/* The transcript is about to be emptied: keep its unsaved turns for later. */
void history_leave(struct app *a);
/* Its conversation was deleted: its unsaved turns are dropped. */
void history_forget(struct app *a);
/* Last try, then close; returns the turns that could not be saved. */
int history_close(struct app *a);

/* ---- browser.c: the conversation list ---------------------------------- */

/* What a key in the list asks of its caller. */
enum browser_act {
	BROWSER_STAY,   /* nothing (the list moved, or closed) */
	BROWSER_OPEN,   /* open conversation id (the list has closed) */
	BROWSER_SEARCH, /* ask for a search (browser_search_line takes it) */
	BROWSER_RENAME, /* ask for id's new title (browser_rename_line takes it) */
	BROWSER_DELETE, /* ask whether to delete id (browser_target) */
	BROWSER_EXPORT, /* export id as Markdown */
};

struct browser *browser_new(void);
void browser_free(struct browser *b); /* accepts NULL */
/* Show the saved conversations, or the search hits for query (non-empty). */
void browser_open(struct app *a, const char *query);
void browser_close(struct app *a);
/* A key while the browser is shown (bytes already decoded to a key code); *id and
 * *title (caller frees; NULL when none) name the selected conversation. */
enum browser_act browser_key(struct app *a, int key, int64_t *id, char **title);
/* A click on screen row y of the list: selects that row; true when it was
 * selected already (the caller opens it, as Enter would). */
bool browser_click(struct app *a, int y);
/* The conversation the last BROWSER_RENAME or BROWSER_DELETE was about. */
int64_t browser_target(const struct app *a);
/* Line handlers for BROWSER_SEARCH and BROWSER_RENAME's questions. */
void browser_search_line(struct app *a, const char *line);
void browser_rename_line(struct app *a, const char *line);
/* Over the transcript area, rows tall (a screen_overlay_fn; arg: a->br). */
void browser_draw(void *arg, int rows, int cols);

/* ---- gauges.c: the figures the status rows show --------------------------- */

/* What the gauges show: gauges.c writes it, the others read gauges(a). */
struct gauge_view {
	uint64_t load_done, load_total; /* the engine's last MSG_PROGRESS */
	double load_t0;                 /* when the load was asked for */
	char *load_phase; /* its text: "opening", "reading weights", "paused", "done" */
	/* The read-ahead's speed: bytes and seconds between two of its reports. */
	uint64_t load_read_bytes;
	double load_read_s;
	int prefill_done, prefill_total;      /* the turn's prompt, read so far */
	double tok_rate;                      /* the turn's live decode tok/s */
	double prefill_tps, decode_tps, ttft; /* the last turn's */
	struct gen_stats last_stats;
	double majflt_rate; /* major page faults a second */
	/* A remote engine's request (MSG_NET): state, bytes in, time to first token, tok/s. */
	char *net_state;
	uint64_t net_bytes;
	double net_ttft, net_tok_s, net_t;
};

struct gauges *gauges_new(void);
void gauges_free(struct gauges *g); /* accepts NULL */
const struct gauge_view *gauges(const struct app *a);
/* The load was asked for. */
void gauges_load_start(struct app *a);
/* A load or read-ahead report (msg.h's MSG_PROGRESS); phase (or NULL) is taken. */
void gauges_progress(struct app *a, char *phase, uint64_t bytes_read, uint64_t bytes_total,
		     double t);
/* A turn was sent: its figures start from nothing. */
void gauges_turn_start(struct app *a);
/* The turn's prompt: done of total tokens read. */
void gauges_prefill(struct app *a, int done, int total);
/* The turn's token count n at the engine's time t. */
void gauges_token(struct app *a, int n, double t);
/* The turn's final figures. */
void gauges_done(struct app *a, const struct gen_stats *s);
/* A remote engine's report about the turn's request (msg.h's MSG_NET); state is taken. */
void gauges_net(struct app *a, struct msg_net *m);
/* From the main loop: the page-fault rate, once a second; true when it changed. */
bool gauges_tick(struct app *a);

/* ---- screen.c: layout and drawing -------------------------------------- */

/* Draws an overlay over the transcript area, rows by cols. */
typedef void screen_overlay_fn(void *arg, int rows, int cols);

/* Make a->scr and take over the terminal. */
void screen_init(struct app *a);
void screen_end(void);
void screen_free(struct screen *s); /* accepts NULL */
/* fn draws the OVERLAY_BROWSER overlay. */
void screen_set_overlay(struct app *a, screen_overlay_fn *fn, void *arg);
/* Terminal rows (for page sizes). */
int screen_rows(const struct app *a);
/* Seconds the loop may sleep before the next frame is due. */
double screen_wait(const struct app *a);
/* Draw when a frame is due. */
void screen_tick(struct app *a);
/* A notice on the status row for a few seconds (longer for an error). */
void ui_status(struct app *a, bool error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Drop the notice (a new turn: old notices are done with). */
void ui_status_clear(struct app *a);
/* A line of information in the transcript. */
void ui_info(struct app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Show the help overlay from its top; a key while it is shown. */
void screen_help_open(struct app *a);
void screen_help_key(struct app *a, int key);
/*
 * Put the terminal back as it was before screen_init (modes, main screen,
 * cursor, bracketed paste off) without curses: for fatal signals and
 * fatal().  Async-signal-safe, any thread; does nothing after screen_end.
 */
void screen_emergency_restore(void);
void screen_resize(struct app *a);
/* Redraw everything now. */
void screen_draw(struct app *a);
/* Redraw soon (at most ~30 times a second). */
void screen_dirty(struct app *a);
/* Mouse reporting on (clicks, wheel) or off (the terminal's own selection). */
void screen_mouse(struct app *a, bool on);
/* The transcript line drawn on screen row y (0 = top) at the last draw, or NULL. */
const struct line *screen_line_at(const struct app *a, int y);
/* Open or close e's thinking panel, the line that says so staying on its screen row. */
void screen_toggle_think(struct app *a, struct entry *e);

/* ---- chat.c: the conversation on screen and its turns ------------------- */

/* Ask the engine to load a->model_dir. */
void chat_load(struct app *a);
/* The assistant entry being generated, or NULL. */
struct entry *chat_turn(struct app *a);
/* Send the conversation to the engine; the answer streams into a new entry. */
void chat_send(struct app *a);
/* The turn ended (gs: its figures, or NULL): save it; the app is idle after. */
void chat_finish(struct app *a, enum store_status st, const char *error,
		 const struct gen_stats *gs);
void chat_stop(struct app *a);
void chat_regen(struct app *a);
/* /edit: put user message n (1 = the first, 0 = the last) in the input; Enter forks there. */
void chat_edit(struct app *a, int n);
/* Ctrl-X Left / Right: show the previous (delta -1) or next (+1) sibling branch. */
void chat_branch(struct app *a, int delta);
void chat_new(struct app *a);
/* The conversation on screen was deleted: a new one, its unsaved turns dropped. */
void chat_drop(struct app *a);
/* /continue: the last answer goes on, in its entry (docs/ui.md "Context management"). */
void chat_continue(struct app *a);
/* /drop N: leave the n oldest turns out of what the model sees; asks again after a too-long
 * prompt. */
void chat_drop_turns(struct app *a, int n);
/* /compact: ask for a summary; when it is written, a new chat starts from it. */
void chat_compact(struct app *a);
/* A turn ended at a->ctx_used tokens: warn once per conversation past 90% of the context. */
void chat_ctx_check(struct app *a);
/* The line to show for an engine error about a turn (caller frees): what to do about a
 * prompt that does not fit (too_long: msg_error's). */
char *chat_error_text(struct app *a, const char *text, bool too_long);
void chat_open(struct app *a, int64_t id);
/* Make sure the conversation has a row in the store; false (with a notice) if not. */
bool chat_ensure_conv(struct app *a);
/* A notice that the history was not saved, with cause (freed). */
void chat_store_warn(struct app *a, char *cause);

/* ---- inputline.c: the input line (readline in callback mode) ---------------- */

/* Set readline up for a: lines at the chat's prompt go to line; bind_keys binds
 * the application's keys once ~/.inputrc is read. */
void inputline_init(struct app *a, app_line_fn *line, void (*bind_keys)(void));
/* Save the input history and remove the line handler. */
void inputline_end(struct app *a);
/* Ask for one line at a special prompt, prefilled with initial (may be NULL); fn gets it (not
 * called on Ctrl-D).  fn NULL: back to the chat's prompt. */
void inputline_ask(struct app *a, const char *prompt, const char *initial, app_line_fn *fn);
/* The app, for readline's callbacks (they take no argument). */
struct app *inputline_app(void);

/* ---- slash.c: what a typed line does ----------------------------------- */

/* A line typed at the chat's prompt (NULL: Ctrl-D on an empty line). */
void slash_line(struct app *a, const char *line);
/* /help: the overlay (topic NULL), or one command's lines in the transcript. */
void slash_help(struct app *a, const char *topic);
/* Search the transcript for line (empty: the last term again), from the last hit up. */
void slash_search_line(struct app *a, const char *line);
/* A key while the conversation list is shown, and what it asks for. */
void slash_browser_key(struct app *a, int key);
/* Ask y/n in the status line; fn runs on 'y'. */
void slash_confirm(struct app *a, const char *question, void (*fn)(struct app *a));
/* Export conversation id as Markdown (md) or JSON to path (NULL: ./qnext-ID.md). */
void slash_export(struct app *a, int64_t id, bool json, const char *path);
/* The engine's answer to /model's MSG_MODELS: the list shown, or the picked model loaded. */
void slash_models_found(struct app *a, const struct msg_models *f);

/* ---- keys.c: the keyboard ----------------------------------------------- */

struct keys *keys_new(void);
void keys_free(struct keys *k); /* accepts NULL */
/* Bind the application's keys in every keymap; be readline's byte source. */
void keys_init(void);
/* Read stdin and hand the keys to the overlay shown or to readline. */
void keys_stdin(struct app *a);
/* Ctrl-C (a key or SIGINT): stop the answer, else empty the line, else a hint. */
void keys_interrupt(struct app *a);

#endif
