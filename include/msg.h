/*
 * msg.h - the messages between the UI thread and the engine thread.
 *
 * Messages are values: a struct copied into the queue, a type tag and the
 * payload of that type (a tagged union, as Redis's bio.c keeps its jobs),
 * owning its strings and conversation (the receiver frees them with
 * msg_free).  Made of the plain data in chat-types.h only, so speaking to
 * the engine takes no engine header (the UI still includes session.h and
 * sampler.h for a few pure helpers: gen_stop_name, gen_stats_*_tps,
 * sampler_params_default/json, sampler_seed_pick, sampler_fields_copy).  Every message about
 * a turn carries that turn's seq; the UI bumps seq for each prompt and drops
 * anything carrying an older one, so tokens still in flight after a stop
 * never reach the screen.  Types are numbered in blocks by direction, as
 * tmux numbers its protocol.
 *
 * Any thread (plain data).
 */
#ifndef QNEXT_MSG_H
#define QNEXT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat-types.h"

enum msg_type {
	/* UI -> engine. */
	MSG_LOAD = 100, /* u.load: open a model */
	MSG_PROMPT,     /* seq, u.prompt: generate the assistant's reply */
	MSG_CANCEL,     /* seq: stop that turn (no payload) */
	MSG_QUIT,       /* stop whatever runs and end the thread (no payload) */
	MSG_MODELS,     /* u.models: find the model directories (does not stop a turn) */

	/* Engine -> UI. */
	MSG_PROGRESS = 200, /* u.progress: how the load goes (below) */
	MSG_READY,          /* u.ready: the model is usable, and what the engine resolved */
	MSG_PREFILL,        /* seq, u.prefill: the prompt being read */
	MSG_TOKEN,          /* seq, u.token: text of the reply (below) */
	MSG_DONE,           /* seq, u.done: the turn ended */
	MSG_NET,            /* seq, u.net: a remote engine's request (below) */
	MSG_ERROR,          /* seq (0 = no turn: the load, or a notice), u.error */
	MSG_MODELS_FOUND,   /* u.models: what MSG_MODELS found */
};

/* MSG_LOAD: open the model in dir (closing any open one). */
struct msg_load {
	char *dir;             /* owned */
	int n_ctx;             /* context length; 0 = the engine's default (MSG_READY says) */
	int threads;           /* worker threads; 0 = physical cores */
	uint64_t expert_cache; /* session_opts.expert_cache: 0 none, XCACHE_AUTO, or bytes */
	uint64_t state_cache;  /* session_opts.state_cache: 0 none, SNAPSHOT_AUTO, or bytes */
};

/* MSG_PROMPT: the conversation to answer and how. */
struct msg_prompt {
	struct chat_msg *conv; /* owned deep copy [n_conv] (role, content; reasoning: NULL, or
				  owned for the message continue_last continues) */
	int n_conv;
	char *tools_json;         /* owned, or NULL: what params.tools_json points at */
	struct gen_params params; /* poll, progress and tools_json are ignored */
};

/*
 * MSG_PROGRESS (seq 0), about the model being loaded: bytes_read = bytes of
 * weights read into memory so far, bytes_total = bytes of the weight files in
 * all, t = the engine's now_sec() when sent; phase:
 *   "opening"          bytes_read = 0 and bytes_total > 0 from the first
 *                      message (the files are sized before anything is
 *                      opened; bytes_total = 0 only when no file is named like
 *                      weights), again every 0.25 s until MSG_READY or
 *                      MSG_ERROR.
 *   "reading weights"  after MSG_READY, the read-ahead: at least every 64 MiB
 *                      or 0.25 s.
 *   "paused"           a prompt runs first; the read-ahead goes on (a
 *                      "reading weights" with the same bytes_read) once the
 *                      turn has ended and no message waits.  Once per turn.
 *   "done"             bytes_read == bytes_total: all read.  The last
 *                      MSG_PROGRESS of the load.
 *   "model larger than free memory: reading on demand"
 *                      bytes_read == bytes_total == 0: no read-ahead (pages
 *                      come as used).  The last MSG_PROGRESS of the load.
 * Within a load bytes_read never decreases and stays <= bytes_total, and
 * bytes_total stays the same, except that the first "reading weights"
 * corrects it should the index name other files than the ones found by name
 * (and the on-demand notice's 0).  A new MSG_LOAD starts over with "opening".
 */
struct msg_progress {
	char *phase; /* owned */
	uint64_t bytes_read, bytes_total;
	double t;
};

/*
 * MSG_READY: the model is open and usable, with what the engine resolved
 * where the UI left the choice to it: the context length (MSG_LOAD's 0
 * becomes the default) and the model's sampling defaults
 * (generation_config.json, else the built-in ones).  The UI shows and uses
 * these; it never reads the model's files itself.
 */
struct msg_ready {
	char *desc;     /* owned: one line describing the model */
	int n_ctx;      /* context length in tokens */
	bool full_size; /* the full-size model, not a test-sized one (random weights) */
	struct sampler_params defaults; /* the model's; seed is not meaningful */
};

/* MSG_PREFILL: done of total prompt tokens processed; t = the engine's now_sec(). */
struct msg_prefill {
	int done, total;
	double t;
};

/*
 * MSG_TOKEN: the text of one token (sometimes of several, or none: see
 * session_gen_progress) in one part.  n = tokens generated so far in the
 * turn, reasoning and answer alike, counting the latest sampled one; t = the
 * engine's now_sec() when that n-th token was sampled.  So the live speed is
 * (n - n0) / (t - t0) between two MSG_TOKENs of the turn, whenever they
 * reach the UI.  n never decreases and goes up by one or more per message;
 * it repeats only when one token's text ends the reasoning and starts the
 * answer (two messages, one per part) and for the held-back text sent when
 * the turn ends.  The last n equals MSG_DONE's stats.gen_tokens unless the
 * last tokens showed no text (a final `</think>`).
 */
struct msg_token {
	char *text; /* owned */
	enum think_part part;
	int n;
	double t;
};

/* MSG_DONE: the turn's figures. */
struct msg_done {
	struct gen_stats stats;
};

/*
 * MSG_NET (remote engine only, `qnext --remote`): how the turn's HTTP
 * request goes, for the gauges that replace the local model's: when the
 * state changes, and at most every 0.25 s while bytes arrive.  state is
 * "connecting", "waiting for first token", "streaming", "done" or "failed";
 * ttft_s is 0 until the first text came; tok_s is the decode speed so far.
 */
struct msg_net {
	char *state; /* owned */
	uint64_t bytes_in;
	double ttft_s, tok_s;
	double t;
};

/*
 * MSG_ERROR: what went wrong, one line.  With seq 0 and notice false, the
 * load failed; notice true is something the user should know about a model
 * that works (its chat template differs, the expert cache is on), sent
 * before or after MSG_READY.
 */
struct msg_error {
	char *text; /* owned */
	bool notice;
	bool too_long; /* a turn's: its prompt does not fit the context (SESSION_TOO_LONG) */
};

/*
 * MSG_MODELS asks for the model directories qnext can find, each with the
 * plan's verdict (models_find: the known ones first); MSG_MODELS_FOUND
 * answers with found[n] and the request's pick.  Opening each model's
 * headers takes up to about a second on the full-size checkpoint, so the
 * engine does it: after the running turn, if any, which the request does
 * not stop.  pick is the UI's, carried back as it was: 0 = show the list,
 * N = load the N-th.  The lister (models_find) lives on the tools floor,
 * above the engine's, so the request names it for the engine to run.
 */
typedef struct model_found *msg_models_fn(const char *const *known, size_t n_known, size_t *n);

struct msg_models {
	msg_models_fn *find;       /* MSG_MODELS: what lists them (models_find) */
	char *known[2];            /* owned, or NULL: MSG_MODELS's first candidates */
	struct model_found *found; /* owned [n]: MSG_MODELS_FOUND's */
	size_t n;
	long pick;
};

/* One message: type says which member of u is meant. */
struct msg {
	enum msg_type type;
	uint64_t seq; /* the turn a message is about; 0 for none */
	union {
		struct msg_load load;
		struct msg_prompt prompt;
		struct msg_progress progress;
		struct msg_ready ready;
		struct msg_prefill prefill;
		struct msg_token token;
		struct msg_done done;
		struct msg_net net;
		struct msg_error error;
		struct msg_models models;
	} u;
};

/* Free what m owns (its payload's strings and conversation) and zero it.
 * Accepts a zeroed message. */
void msg_free(struct msg *m);

/* Deep copy of role, content and tool calls of n messages (reasoning is not sent: the one
 * exception, an answer continued with gen_params.continue_last, has its reasoning set by the
 * caller). */
struct chat_msg *msg_conv_copy(const struct chat_msg *m, int n);

#endif
