/*
 * remote.h - the client side of an OpenAI-compatible chat server (vLLM,
 * llama-server, ollama, SGLang, `qnext serve`): the same chat as a local
 * session, generated elsewhere.
 *
 * remote_open() asks GET {base}/v1/models whether the server answers, the
 * key is accepted and the model is there; remote_reply() POSTs the
 * conversation to {base}/v1/chat/completions with "stream": true and hands
 * each piece of reasoning and answer to the callback as the server-sent
 * events arrive, exactly as session_reply() does for a local model
 * (docs/remote.md "What qnext sends", "What qnext reads").
 *
 * The stream's bytes are untrusted: the pure part below the HTTP side
 * (remote_sse_*: bytes in any split to events; remote_stream_*: events to
 * text and figures) bounds every buffer and turns anything malformed into
 * one line of *cause.  The tests and the fuzz harness drive it directly.
 *
 * Thread affinity: one owner thread (the engine thread in the full-screen
 * UI, the main thread in line mode) calls everything on a struct remote.
 * A struct remote_stream or remote_sse is plain state owned by its caller.
 * Strings returned by remote_model() and remote_base() belong to the
 * struct remote; remote_describe() returns a malloc'd string the caller
 * frees.
 */
#ifndef QNEXT_REMOTE_H
#define QNEXT_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat-types.h" /* chat_msg, gen_params, gen_stats, think_part */
#include "session.h"    /* session_cb: remote_reply takes the same callback */
#include "think.h"

struct remote_opts {
	/* The base URL: "http://host:port" or ".../v1" (both accepted, a trailing / too). */
	const char *url;
	const char *api_key; /* bearer token, or NULL */
	const char *model;   /* model id to request, or NULL = the first the server lists */
};

struct remote;

/*
 * GET {base}/v1/models: checks the server answers (and the key is
 * accepted), picks the model.  NULL with a one-line *cause naming the URL:
 * "http://127.0.0.1:9/v1/models: Failed to connect to ...",
 * "http://h/v1/models: HTTP 401: <the server's error.message>",
 * "...: the server lists no model NAME (it has: a, b)".  A URL without a
 * scheme is taken as http://.
 */
struct remote *remote_open(const struct remote_opts *o, char **cause);
void remote_close(struct remote *r); /* accepts NULL */

const char *remote_model(const struct remote *r); /* the model id used */
const char *remote_base(const struct remote *r);  /* the normalized base URL, without /v1 */
char *remote_describe(const struct remote *r);    /* malloc'd: "MODEL at URL (remote)" */
/* max_model_len (vLLM, SGLang) or meta.n_ctx_train (llama-server) from /v1/models, else 0. */
int remote_n_ctx(const struct remote *r);

/*
 * One streamed reply, with session_reply's contract: cb(arg, part, text,
 * len) gets each piece of reasoning and answer text (false = stop);
 * gp->poll(arg) is asked at least every REMOTE_POLL_MS and per chunk, and
 * true aborts the request (the connection is closed, so the server stops
 * generating): st->stop = GEN_STOP_USER and 0.  gp->progress is not used.
 * Fills *st: prompt_tokens and gen_tokens from the stream's `usage` (else
 * gen_tokens = chunks with text), reused_tokens from
 * usage.prompt_tokens_details.cached_tokens or llama-server's
 * timings.cache_n, ttft_s = request start to first text, prefill_s =
 * ttft_s, decode_s = first text to the end, stop from finish_reason
 * ("length": GEN_STOP_LENGTH, else GEN_STOP_EOS); the cache fields stay 0.
 * Returns 0, or -1 with *cause "URL: what" (no connection, "HTTP 503:
 * <error.message or the body's first line>", the server's error event, a
 * malformed stream, a message that is not UTF-8).
 */
int remote_reply(struct remote *r, const struct chat_msg *msgs, size_t n,
		 const struct gen_params *gp, session_cb *cb, void *arg, struct gen_stats *st,
		 char **cause);

/* How often remote_reply asks gp->poll while no byte arrives. */
#define REMOTE_POLL_MS 100

/*
 * Like session_gen_progress, for the callback: chunks with text so far in
 * the reply (a chunk is one token on most servers, a few with speculative
 * decoding) and the now_sec() when the latest arrived.
 */
void remote_gen_progress(const struct remote *r, int *n, double *t);

/* Network figures for the UI's gauges, of the reply running or the last one. */
struct remote_stats {
	double ttft_s;     /* request start to the first text; 0 before it */
	double tok_s;      /* tokens after the first per second (usage's count once it came) */
	uint64_t bytes_in; /* bytes of the answer's body */
	/* "idle", "connecting", "waiting for first token", "streaming", "done", "failed";
	 * a static string */
	const char *state;
};
void remote_net_stats(const struct remote *r, struct remote_stats *out);

/* ---- The pure part: server-sent events ---- */

/* The most an event (and any one line of the stream) may hold. */
#define REMOTE_EVENT_MAX ((size_t)1 << 20)

/*
 * Receives each event's data (its data: lines joined by '\n', not
 * NUL-terminated); 0 to go on, 1 to stop reading (later bytes are ignored),
 * -1 with *cause.
 */
typedef int remote_event_fn(void *arg, const char *data, size_t len, char **cause);

/*
 * An incremental server-sent-events reader: lines end in LF, CRLF or CR;
 * "data:" with or without the space; several data lines joined by '\n';
 * lines starting with ':' and every other field ignored; a blank line ends
 * an event; `data: [DONE]` ends the stream.
 * docs/remote.md "Server-sent events"
 */
struct remote_sse {
	char *line; /* the line being read; [n_line], at most REMOTE_EVENT_MAX */
	size_t n_line, cap_line;
	char *data; /* the event's data; [n_data], at most REMOTE_EVENT_MAX */
	size_t n_data, cap_data;
	bool has_data; /* a data line came in this event (an empty one counts) */
	bool after_cr; /* the last byte ended a line with CR: a LF next is part of it */
	bool done;     /* [DONE] came or the callback said stop */
	int n_events;  /* events handed on */
};

void remote_sse_init(struct remote_sse *p);
/* Feed n bytes: 0, 1 once done (then later bytes are ignored), -1 with *cause
 * ("event N: a line or event over 1 MiB", or what fn said); not again after -1. */
int remote_sse_feed(struct remote_sse *p, const char *bytes, size_t n, remote_event_fn *fn,
		    void *arg, char **cause);
/* The body ended: an event not closed by a blank line is handed on too. */
int remote_sse_finish(struct remote_sse *p, remote_event_fn *fn, void *arg, char **cause);
void remote_sse_release(struct remote_sse *p);

/* ---- The pure part: the chat.completion.chunk events ---- */

/* How the stream's content is read (docs/remote.md "How thinking is split"). */
enum remote_content {
	REMOTE_CONTENT_UNDECIDED, /* no content yet: it may begin with "<think>" */
	REMOTE_CONTENT_SPLIT,     /* split at `</think>` by think.h */
	REMOTE_CONTENT_ANSWER,    /* a reasoning field came: content is the answer */
};

/*
 * One reply's stream: events in, text to the callback, figures out.  The
 * fields up to `done` are the caller's to read; the rest is internal.
 */
struct remote_stream {
	int prompt_tokens;      /* usage.prompt_tokens; -1 until a usage came */
	int completion_tokens;  /* usage.completion_tokens; -1 until a usage came */
	int cached_tokens;      /* prompt_tokens_details.cached_tokens or timings.cache_n; -1 */
	int text_chunks;        /* chunks that carried reasoning or answer text */
	double t_first, t_last; /* now_sec() of the first and the latest of them; 0 before */
	bool finished;          /* a finish_reason came */
	bool length;            /* ... and it was "length" */
	bool saw_reasoning;     /* a reasoning field came */
	bool stopped;           /* the callback returned false */
	bool done;              /* data: [DONE] came */

	session_cb *cb;
	void *arg;
	bool think_guess; /* the model id says it thinks: content starts as reasoning */
	enum remote_content content;
	struct think_split ts;
	char lead[8]; /* content held while it may still be "<think>" */
	size_t n_lead;
	bool started[2];  /* a part has had text: newlines that open it are dropped until then */
	bool answer_only; /* continuing an answer: any reasoning field is the answer's text */
	struct remote_sse sse;
};

/*
 * Start reading a reply for model id `model` (it says whether content
 * without tags starts as reasoning: a "think" in it, any case) that hands
 * text to cb(arg, ...).
 */
void remote_stream_init(struct remote_stream *s, const char *model, session_cb *cb, void *arg);
/*
 * The reply goes on with `last`, the conversation's last message (gen_params.continue_last):
 * its parts so far count as started (their newlines are kept), and the text goes on in the
 * part it ended in.  Going on with an answer, a reasoning field is taken as the answer's too:
 * the thought closed before it, and a server's reasoning parser that never sees a </think>
 * labels everything reasoning.  Call after remote_stream_init.
 */
void remote_stream_continues(struct remote_stream *s, const struct chat_msg *last);
/*
 * Feed n bytes of the body: 0 for more, 1 when the stream is over ([DONE]
 * came or the callback said stop), -1 with *cause "event N: what" (not
 * valid JSON, the server's error event, a line or event over 1 MiB).
 */
int remote_stream_feed(struct remote_stream *s, const char *bytes, size_t n, char **cause);
/*
 * The body ended (or the reply was stopped): the last event and any held
 * text are handed on.  0, or -1 with *cause when nothing says the reply
 * was complete (no finish_reason, no [DONE], and the callback did not stop).
 */
int remote_stream_finish(struct remote_stream *s, char **cause);
void remote_stream_release(struct remote_stream *s);

/*
 * The one-line reason in an error answer's body[len]: error.message (an
 * OpenAI-style error object), error as a string (vLLM's key check),
 * message or detail at the top, else the body's first line; control bytes
 * shown as '?', cut to cap (>= 4) bytes.  Returns buf.
 */
const char *remote_error_text(const char *body, size_t len, char *buf, size_t cap);

#endif
