/*
 * serve.c - `qnext serve` (see serve.h): libmicrohttpd in front of the
 * engine thread.
 *
 * DESIGN: libmicrohttpd runs a thread per connection, so a handler may
 * block.  The engine answers one prompt at a time, so requests take turns
 * in arrival order (a ticket each; at most --queue waiting, the rest get
 * 503).  The connection whose turn it is speaks to the engine through the
 * same two queues and messages as the chat (msg.h): it pushes MSG_PROMPT,
 * then pumps the engine's messages into its reply, dropping any of an
 * older turn by seq.  While it waits it also polls its client's socket for
 * a hang-up, and then sends MSG_CANCEL and waits for that turn to end, so a
 * client that goes away stops its generation within a layer.  The engine
 * keeps the context of the last conversation, so a request that extends the
 * previous one re-reads only what is new, as in the chat.
 *
 * Reading order: options, the turn (tickets), the pump, the replies, the
 * HTTP handler, start and stop.
 *
 * Threads: serve_main on the main thread, which only waits for SIGINT or
 * SIGTERM; the handlers on libmicrohttpd's connection threads, sharing
 * struct server under its mutex (the queues are thread-safe and only the
 * turn's holder pops the engine's); the engine thread.
 */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "engine.h"
#include "log.h"
#include "oai.h"
#include "paths.h"
#include "queue.h"
#include "sampler.h"
#include "session.h" /* gen_stop_name */
#include "snapshot.h"
#include "subcmd.h"
#include "util.h"
#include "xcache.h"

#define BODY_MAX      (8u << 20) /* request bytes at most */
#define QUEUE_DEFAULT 16
#define PORT_DEFAULT  8080
#define CANCEL_WAIT_S 60.0 /* a cancelled turn ends within a layer; this is a backstop */

struct serve_opts {
	const char *model, *host, *api_key, *name;
	int port, queue_max, n_ctx, threads, max_tokens;
	uint64_t expert_cache;
	uint64_t state_cache; /* --state-cache: 0 (off, the default), SNAPSHOT_AUTO or bytes */
	bool quiet;
};

/* Shared by the connection threads; mu guards the turn fields and seq. */
struct server {
	struct serve_opts o;
	struct queue *to_engine, *from_engine;
	struct engine *engine;
	char *model_id;
	int n_ctx;
	struct sampler_params defaults; /* the model's (MSG_READY) */
	long long started;              /* Unix seconds: the model's "created" */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t next_ticket, serving; /* the ticket whose turn it is */
	int waiting;                   /* tickets taken and not yet served */
	uint64_t seq;                  /* of the latest MSG_PROMPT */
	bool stopping;                 /* SIGINT/SIGTERM: end every wait */
};

/* A growing byte buffer. */
struct buf {
	char *p;
	size_t len, cap;
};

/* One HTTP request, from its first byte to the end of its reply. */
struct request {
	struct server *sv;
	struct MHD_Connection *conn;
	char method[8], url[64]; /* for the log line; longer URLs are cut */
	struct buf body;
	bool too_big;
	double t0;

	struct oai_request rq;
	struct oai_reply rp;
	bool has_turn;            /* holds the engine; released by turn_end */
	uint64_t seq;             /* of its MSG_PROMPT */
	bool turn_over;           /* MSG_DONE or MSG_ERROR of seq arrived */
	bool got_output;          /* a token or the end arrived */
	bool stop_hit;            /* a stop string ended the answer */
	bool cancelled;           /* MSG_CANCEL sent */
	struct buf answer;        /* answer text let through */
	struct buf thought;       /* reasoning text let through */
	struct buf pending;       /* text held back while it may begin a stop string */
	struct oai_toolscan scan; /* the answer's tool calls, when the request has tools */
	char **calls;             /* [n_calls] oai_tool_call's JSON */
	int n_calls;
	enum think_part pending_part; /* which part pending is (the reply starts reasoning) */
	struct gen_stats st;          /* MSG_DONE's */
	char *error;                  /* MSG_ERROR's text */
	bool too_long;                /* and whether the prompt did not fit the context */

	/* Streaming: SSE bytes produced and not yet handed to the library. */
	struct buf out;
	size_t out_off;
	bool stream_ended; /* "data: [DONE]" is in out */
	int status;        /* the reply's status, for the log */
};

static void
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = MAX(2 * b->cap, b->len + n + 1);
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static const char *
buf_str(const struct buf *b)
{
	return b->p != NULL ? b->p : "";
}

/* ---- options -------------------------------------------------------------------- */

static void
usage(FILE *f)
{
	subcmd_usage(f, "serve");
	fprintf(f,
		"Serve the model over an OpenAI-compatible HTTP API: POST /v1/chat/completions\n"
		"(\"stream\": true for Server-Sent Events; the reasoning in reasoning_content),\n"
		"GET /v1/models, GET /health.  One request generates at a time; others wait.\n"
		"  -m, --model DIR      the model (default: the one `qnext which-model` finds)\n"
		"  --host ADDR          address to listen on (default 127.0.0.1; 0.0.0.0 = all)\n"
		"  --port N             port (default %d; 0 = any free one, printed)\n"
		"  --api-key KEY        require \"Authorization: Bearer KEY\" on /v1/ (default:\n"
		"                       $QNEXT_API_KEY; none = open to whoever can connect)\n"
		"  --name NAME          the model id clients see (default: the directory's name)\n"
		"  --queue N            requests waiting at most, then 503 (default %d)\n"
		"  --max-tokens N       tokens per reply when a request gives none (default "
		"32768)\n"
		"  --ctx N, --threads N, --expert-cache auto|off|SIZE   as for the chat\n"
		"  --state-cache off|auto|SIZE   save each conversation's state on disk, so\n"
		"                       one sent again after a restart reads only what is new\n"
		"                       (default off: a state is written after every reply)\n"
		"  -q, --quiet          no line per request on stderr\n",
		PORT_DEFAULT, QUEUE_DEFAULT);
}

static int
parse_opt(void *opts, int ch, const char *arg)
{
	struct serve_opts *o = opts;
	char *cause = NULL;

	switch (ch) {
	case 'm':
		o->model = arg;
		return 0;
	case 'H':
		o->host = arg;
		return 0;
	case 'p':
		return arg_int("qnext serve", "--port", arg, 0, 65535, &o->port);
	case 'k':
		o->api_key = arg;
		return 0;
	case 'N':
		o->name = arg;
		return 0;
	case 'Q':
		return arg_int("qnext serve", "--queue", arg, 0, 1000, &o->queue_max);
	case 'M':
		return arg_int("qnext serve", "--max-tokens", arg, 1, 1000000000, &o->max_tokens);
	case 'c':
		return arg_int("qnext serve", "--ctx", arg, 16, 1 << 24, &o->n_ctx);
	case 't':
		return arg_int("qnext serve", "--threads", arg, 1, 1024, &o->threads);
	case 'x':
		if (xcache_parse(arg, &o->expert_cache, &cause) == 0)
			return 0;
		fprintf(stderr, "qnext serve: %s\n", cause);
		free(cause);
		return -1;
	case 'S':
		if (snapshot_budget_parse(arg, &o->state_cache, &cause) == 0)
			return 0;
		fprintf(stderr, "qnext serve: %s\n", cause);
		free(cause);
		return -1;
	case 'q':
		o->quiet = true;
		return 0;
	case 'h':
		return 1;
	default:
		return 2;
	}
}

/* ---- the turn: one request at a time on the engine ------------------------------ */

/*
 * Whether the client has gone: its socket reports a hang-up.  POLLRDHUP
 * only, so bytes a client sends early (the next pipelined request) do not
 * count.
 */
static bool
client_gone(struct request *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct pollfd p;

	if (ci == NULL)
		return false;
	p.fd = ci->connect_fd;
	p.events = POLLRDHUP;
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* Take a ticket: false when --queue requests already wait (503). */
static bool
turn_enter(struct request *r, uint64_t *ticket)
{
	struct server *sv = r->sv;
	bool ok;

	pthread_mutex_lock(&sv->mu);
	ok = sv->waiting <= sv->o.queue_max && !sv->stopping;
	if (ok) {
		*ticket = sv->next_ticket++;
		sv->waiting++;
	}
	pthread_mutex_unlock(&sv->mu);
	return ok;
}

/* Hand the engine to the next ticket. */
static void
turn_pass(struct server *sv)
{
	pthread_mutex_lock(&sv->mu);
	sv->serving++;
	sv->waiting--;
	pthread_cond_broadcast(&sv->cv);
	pthread_mutex_unlock(&sv->mu);
}

/*
 * Wait for the ticket's turn, checking the client twice a second.  False
 * when the client went or the server stops first (the ticket is then used
 * up at once, in order, so the line keeps moving).
 */
static bool
turn_wait(struct request *r, uint64_t ticket)
{
	struct server *sv = r->sv;
	bool gone = false;

	pthread_mutex_lock(&sv->mu);
	while (sv->serving != ticket) {
		struct timespec ts;

		if (!gone && (sv->stopping || client_gone(r)))
			gone = true;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500000000;
		if (ts.tv_nsec >= 1000000000)
			ts.tv_sec++, ts.tv_nsec -= 1000000000;
		pthread_cond_timedwait(&sv->cv, &sv->mu, &ts);
	}
	if (!gone)
		gone = sv->stopping;
	if (!gone)
		r->seq = ++sv->seq;
	pthread_mutex_unlock(&sv->mu);
	if (gone) {
		turn_pass(sv);
		return false;
	}
	r->has_turn = true;
	return true;
}

/* The sampling and limits of the request over the model's defaults. */
static struct gen_params
request_params(const struct request *r)
{
	struct gen_params gp = { .max_tokens = r->rq.max_tokens > 0 ? r->rq.max_tokens
								    : r->sv->o.max_tokens };

	gp.ignore_eos = r->rq.ignore_eos;
	gp.think_budget = r->rq.think_budget;
	gp.continue_last = r->rq.continue_final;
	gp.sp = r->sv->defaults;
	sampler_fields_copy(&gp.sp, &r->rq.sp, r->rq.sp_set);
	/* No seed asked: a fresh one for every reply, as OpenAI does. */
	gp.sp.seed = sampler_seed_pick((r->rq.sp_set & SP_SEED) ? gp.sp.seed : SAMPLER_SEED_RANDOM);
	return gp;
}

static void
send_prompt(struct request *r)
{
	struct msg m = { .type = MSG_PROMPT, .seq = r->seq };

	m.u.prompt.conv = msg_conv_copy(r->rq.msgs, (int)r->rq.n_msgs);
	m.u.prompt.n_conv = (int)r->rq.n_msgs;
	m.u.prompt.params = request_params(r);
	if (r->rq.tools_json != NULL)
		m.u.prompt.tools_json = xstrdup(r->rq.tools_json);
	/* A continued answer's thought so far, which msg_conv_copy leaves out (msg.h). */
	if (r->rq.continue_final && r->rq.msgs[r->rq.n_msgs - 1].reasoning != NULL)
		m.u.prompt.conv[r->rq.n_msgs - 1].reasoning =
			xstrdup(r->rq.msgs[r->rq.n_msgs - 1].reasoning);
	queue_push(r->sv->to_engine, &m);
}

static void
send_cancel(struct request *r)
{
	struct msg m = { .type = MSG_CANCEL, .seq = r->seq };

	if (!r->cancelled && !r->turn_over)
		queue_push(r->sv->to_engine, &m);
	r->cancelled = true;
}

/* ---- the pump: engine messages into the reply ------------------------------------ */

static void
sse_add(struct request *r, char *json)
{
	buf_add(&r->out, "data: ", 6);
	buf_add(&r->out, json, strlen(json));
	buf_add(&r->out, "\n\n", 2);
	free(json);
}

/* Text of a part that goes out: kept for the whole reply, or streamed. */
static void
text_out(struct request *r, enum think_part part, const char *p, size_t n)
{
	char *text;

	buf_add(part == THINK_REASONING ? &r->thought : &r->answer, p, n);
	if (r->rq.stream) {
		text = xmalloc(n + 1);
		memcpy(text, p, n);
		text[n] = '\0';
		sse_add(r, oai_chunk_json(&r->rp, NULL, part, text, NULL));
		free(text);
	}
}

/* What the tool call scanner hands on: answer text, or a call (text when it is not one). */
static void
on_piece(void *arg, enum oai_piece kind, const char *p, size_t n)
{
	struct request *r = arg;
	char *call;

	if (kind == OAI_TEXT) {
		text_out(r, THINK_ANSWER, p, n);
	} else if ((call = oai_tool_call(p, n)) == NULL) {
		text_out(r, THINK_ANSWER, "<tool_call>", 11);
		text_out(r, THINK_ANSWER, p, n);
		text_out(r, THINK_ANSWER, "</tool_call>", 12);
	} else {
		if (r->rq.stream)
			sse_add(r, oai_tool_chunk_json(&r->rp, r->n_calls, call));
		r->calls = xrealloc(r->calls, (size_t)(r->n_calls + 1) * sizeof(*r->calls));
		r->calls[r->n_calls++] = call;
	}
}

/* Held text that no stop string can withhold any more: keep it and stream it. */
static void
text_release(struct request *r, size_t n)
{
	if (n == 0)
		return;
	if (r->pending_part == THINK_ANSWER && r->rq.tools_json != NULL)
		oai_toolscan_feed(&r->scan, r->pending.p, n, on_piece, r);
	else
		text_out(r, r->pending_part, r->pending.p, n);
	memmove(r->pending.p, r->pending.p + n, r->pending.len - n + 1);
	r->pending.len -= n;
}

/* How the reply ended, as finish_reason says it: a call ends the turn as "tool_calls". */
static const char *
finish_reason(const struct request *r)
{
	if (r->stop_hit)
		return "stop";
	if (r->n_calls > 0 && r->st.stop == GEN_STOP_EOS)
		return "tool_calls";
	return oai_finish_reason(r->st.stop);
}

/*
 * Generated text, reasoning or answer.  Stop strings apply to all of it, as
 * vLLM applies them to the whole output, but not across the end of the
 * reasoning: the part held back is sent when the part changes.
 */
static void
on_token(struct request *r, const struct msg_token *k)
{
	size_t n = strlen(k->text), safe;
	bool hit;

	r->got_output = true;
	if (r->stop_hit || n == 0)
		return;
	if (k->part != r->pending_part) {
		text_release(r, r->pending.len);
		r->pending_part = k->part;
	}
	buf_add(&r->pending, k->text, n);
	safe = oai_stop_scan(r->rq.stop, r->rq.n_stop, r->pending.p, r->pending.len, &hit);
	text_release(r, safe);
	if (hit) {
		/* Done: the rest is not wanted, nor is more of it made. */
		r->stop_hit = true;
		r->pending.len = 0;
		send_cancel(r);
	}
}

/* The turn ended: the rest of the stream, or nothing (the whole reply is built later). */
static void
on_turn_over(struct request *r)
{
	const char *finish;

	r->turn_over = r->got_output = true;
	if (!r->stop_hit && r->error == NULL)
		text_release(r, r->pending.len);
	if (r->error == NULL)
		oai_toolscan_finish(&r->scan, on_piece, r);
	finish = finish_reason(r);
	if (!r->rq.stream)
		return;
	if (r->error != NULL) {
		/* Headers are gone already: the error travels as an event, as vLLM sends it. */
		sse_add(r, oai_error_json(r->error, "server_error", NULL, NULL));
	} else {
		sse_add(r, oai_chunk_json(&r->rp, NULL, THINK_ANSWER, NULL, finish));
		if (r->rq.include_usage)
			sse_add(r, oai_usage_chunk_json(&r->rp, &r->st));
	}
	buf_add(&r->out, "data: [DONE]\n\n", 14);
	r->stream_ended = true;
}

/* One engine message: those of another turn are stale and dropped. */
static void
on_engine_msg(struct request *r, struct msg *m)
{
	if (m->type == MSG_ERROR && m->seq == 0)
		log_info("serve: engine: %s", m->u.error.text);
	if (m->seq != r->seq || r->turn_over)
		return;
	switch (m->type) {
	case MSG_TOKEN:
		on_token(r, &m->u.token);
		break;
	case MSG_DONE:
		r->st = m->u.done.stats;
		on_turn_over(r);
		break;
	case MSG_ERROR:
		r->error = m->u.error.text;
		r->too_long = m->u.error.too_long;
		m->u.error.text = NULL;
		on_turn_over(r);
		break;
	default:
		break;
	}
}

/*
 * Pump the engine's messages until the turn is over, or (until_output)
 * until something arrived to send.  Polls the client's socket meanwhile;
 * -1 when the client went or the server stops (the turn is then cancelled,
 * not yet over).
 */
static int
pump(struct request *r, bool until_output)
{
	struct queue *q = r->sv->from_engine;

	r->got_output = false;
	while (!r->turn_over && !(until_output && r->got_output)) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct pollfd p[2] = { { .fd = queue_fd(q), .events = POLLIN },
				       { .fd = ci != NULL ? ci->connect_fd : -1,
					 .events = POLLRDHUP } };
		struct msg m;

		queue_ack(q);
		while (!r->turn_over && queue_pop(q, &m)) {
			on_engine_msg(r, &m);
			msg_free(&m);
		}
		if (r->turn_over || (until_output && r->got_output))
			break;
		if (r->sv->stopping)
			return -1;
		if (poll(p, 2, 500) > 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
			return -1;
	}
	return 0;
}

/*
 * The turn ends early (client gone, server stopping): cancel it and wait
 * for the engine to say it stopped, so the next request starts on a quiet
 * engine.
 */
static void
turn_abort(struct request *r)
{
	struct queue *q = r->sv->from_engine;
	double t0 = now_sec();

	send_cancel(r);
	while (!r->turn_over && now_sec() - t0 < CANCEL_WAIT_S) {
		struct pollfd p = { .fd = queue_fd(q), .events = POLLIN };
		struct msg m;

		queue_ack(q);
		while (!r->turn_over && queue_pop(q, &m)) {
			on_engine_msg(r, &m);
			msg_free(&m);
		}
		if (!r->turn_over)
			poll(&p, 1, 200);
	}
}

/* Give the engine to the next request (once). */
static void
turn_end(struct request *r)
{
	if (!r->has_turn)
		return;
	if (!r->turn_over)
		turn_abort(r);
	r->has_turn = false;
	turn_pass(r->sv);
}

/* ---- replies ----------------------------------------------------------------------- */

static enum MHD_Result
reply_json(struct request *r, unsigned status, char *json)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	MHD_add_response_header(resp, "Content-Type", "application/json");
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->status = (int)status;
	return ret;
}

static enum MHD_Result
reply_error(struct request *r, unsigned status, const char *message, const char *type,
	    const char *param, const char *code)
{
	return reply_json(r, status, oai_error_json(message, type, param, code));
}

/* The engine's error before any output: the client's fault when its prompt is too long. */
static enum MHD_Result
reply_engine_error(struct request *r)
{
	/* A prompt over the context is the one engine error a client causes. */
	if (r->too_long)
		return reply_error(r, 400, r->error, "invalid_request_error", "messages",
				   "context_length_exceeded");
	return reply_error(r, 500, r->error, "server_error", NULL, NULL);
}

/* libmicrohttpd asks for more of the stream; blocks until there is some. */
static ssize_t
stream_read(void *cls, uint64_t pos, char *dst, size_t max)
{
	struct request *r = cls;
	size_t n;

	(void)pos;
	while (r->out_off == r->out.len) {
		if (r->stream_ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (pump(r, true) != 0)
			return MHD_CONTENT_READER_END_WITH_ERROR; /* turn_end cancels */
		if (r->turn_over)
			turn_end(r);
	}
	n = MIN(max, r->out.len - r->out_off);
	memcpy(dst, r->out.p + r->out_off, n);
	r->out_off += n;
	if (r->out_off == r->out.len)
		r->out.len = r->out_off = 0;
	return (ssize_t)n;
}

static enum MHD_Result
reply_stream(struct request *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, r, NULL);
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	r->status = MHD_HTTP_OK;
	return ret;
}

/*
 * POST /v1/chat/completions once the body is in: parse, wait for the turn,
 * prompt the engine, then the whole reply or the stream.
 */
static enum MHD_Result
chat_completions(struct request *r)
{
	char *param = NULL, *cause = NULL;
	uint64_t ticket;
	enum MHD_Result ret;

	if (r->too_big)
		return reply_error(r, 413, "the request body is over 8 MiB",
				   "invalid_request_error", NULL, NULL);
	if (oai_request_parse(buf_str(&r->body), r->body.len, &r->rq, &param, &cause) != 0) {
		ret = reply_error(r, 400, cause, "invalid_request_error", param, NULL);
		free(param), free(cause);
		return ret;
	}
	if (!turn_enter(r, &ticket))
		return reply_error(r, 503,
				   "the server is busy: too many requests are waiting (--queue)",
				   "server_error", NULL, "server_busy");
	if (!turn_wait(r, ticket))
		return MHD_NO; /* the client went (or the server stops): close */
	oai_reply_init(&r->rp, r->sv->model_id);
	send_prompt(r);
	/* Wait for the first output, so that an early error still gets its status. */
	if (pump(r, r->rq.stream) != 0)
		return MHD_NO; /* the completion callback cancels the turn */
	if (r->turn_over && (r->error != NULL || !r->rq.stream)) {
		turn_end(r);
		if (r->error != NULL)
			return reply_engine_error(r);
		return reply_json(r, MHD_HTTP_OK,
				  oai_completion_json(&r->rp, buf_str(&r->answer),
						      buf_str(&r->thought), r->calls, r->n_calls,
						      finish_reason(r), &r->st));
	}
	/* Streaming: the role chunk goes before what has arrived so far. */
	{
		struct buf early = r->out;

		memset(&r->out, 0, sizeof(r->out));
		sse_add(r, oai_chunk_json(&r->rp, "assistant", THINK_ANSWER, "", NULL));
		buf_add(&r->out, buf_str(&early), early.len);
		free(early.p);
	}
	if (r->turn_over)
		turn_end(r);
	return reply_stream(r);
}

/* ---- the HTTP handler ------------------------------------------------------------ */

/* Whether the request carries the key (constant time in the key's bytes). */
static bool
authorized(struct request *r)
{
	const char *key = r->sv->o.api_key;
	const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
	size_t n;

	if (key == NULL)
		return true;
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	n = strlen(key);
	return strlen(h) == n && CRYPTO_memcmp(h, key, n) == 0;
}

static enum MHD_Result
route(struct request *r, const char *method, const char *url)
{
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

	if (strcmp(url, "/health") == 0 || strcmp(url, "/v1/health") == 0)
		return get ? reply_json(r, MHD_HTTP_OK, xstrdup("{\"status\":\"ok\"}"))
			   : reply_error(r, 405, "use GET", "invalid_request_error", NULL, NULL);
	if (strncmp(url, "/v1/", 4) == 0 && !authorized(r))
		return reply_error(r, 401,
				   "incorrect or missing API key (send \"Authorization: Bearer "
				   "KEY\")",
				   "invalid_request_error", NULL, "invalid_api_key");
	if (strcmp(url, "/v1/models") == 0)
		return get ? reply_json(
				     r, MHD_HTTP_OK,
				     oai_models_json(r->sv->model_id, r->sv->started, r->sv->n_ctx))
			   : reply_error(r, 405, "use GET", "invalid_request_error", NULL, NULL);
	if (strcmp(url, "/v1/chat/completions") == 0)
		return post ? chat_completions(r)
			    : reply_error(r, 405, "use POST", "invalid_request_error", NULL, NULL);
	return reply_error(r, 404, "no such endpoint (/v1/chat/completions, /v1/models, /health)",
			   "invalid_request_error", NULL, "not_found");
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	   const char *version, const char *data, size_t *data_size, void **con_cls)
{
	struct request *r = *con_cls;

	(void)version;
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->sv = cls;
		r->conn = conn;
		r->t0 = now_sec();
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->url, sizeof(r->url), "%s", url);
		*con_cls = r;
		return MHD_YES;
	}
	if (*data_size > 0) {
		if (r->body.len + *data_size > BODY_MAX)
			r->too_big = true;
		else
			buf_add(&r->body, data, *data_size);
		*data_size = 0;
		return MHD_YES;
	}
	return route(r, method, url);
}

/* The log line of a finished request (unless -q). */
static void
log_request(struct request *r, enum MHD_RequestTerminationCode toe)
{
	const struct gen_stats *st = &r->st;
	char line[512], show[80];

	str_show(show, sizeof(show), r->url);
	if (r->seq == 0)
		snprintf(line, sizeof(line), "%s %s %d", r->method, show, r->status);
	else
		snprintf(line, sizeof(line),
			 "%s %s %d%s%s: prompt %d tokens (%d reused), %d generated, %.2f s, %s%s",
			 r->method, show, r->status, r->rq.stream ? " stream" : "",
			 r->rq.continue_final ? " continued" : "", st->prompt_tokens,
			 st->reused_tokens, st->gen_tokens, now_sec() - r->t0,
			 r->error != NULL ? "error"
			 : r->stop_hit    ? "stop string"
					  : gen_stop_name(st->stop),
			 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (client gone)");
	log_info("serve: %s", line);
	if (!r->sv->o.quiet)
		fprintf(stderr, "qnext serve: %s\n", line);
}

/* The connection is done with the request (replied, or the client went). */
static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;

	(void)cls, (void)conn;
	if (r == NULL)
		return;
	turn_end(r);
	log_request(r, toe);
	oai_request_free(&r->rq);
	free(r->body.p), free(r->answer.p), free(r->pending.p), free(r->thought.p);
	free(r->scan.held);
	for (int i = 0; i < r->n_calls; i++)
		free(r->calls[i]);
	free(r->calls);
	free(r->out.p), free(r->error);
	free(r);
	*con_cls = NULL;
}

/* ---- start and stop ---------------------------------------------------------------- */

static bool
is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/*
 * The listening socket for host:port, made here rather than by the library
 * so a busy port or a bad address gets its own message.  *loopback says
 * whether only this machine can connect; *bound the port (for --port 0).
 */
static int
listen_on(const char *host, int port, bool *loopback, int *bound, char **cause)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ps[16];
	int fd, one = 1, err;

	snprintf(ps, sizeof(ps), "%d", port);
	if ((err = getaddrinfo(host, ps, &hints, &ai)) != 0)
		return cause_set(cause, "--host %s: %s", host, gai_strerror(err));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
		err = errno;
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return cause_set(cause, "cannot listen on %s port %d: %s%s", host, port,
				 strerror(err),
				 err == EADDRINUSE ? " (another server has it: pick --port)" : "");
	}
	*loopback = is_loopback(ai->ai_addr);
	freeaddrinfo(ai);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* The last component of dir: the model id clients see by default. */
static const char *
dir_name(const char *dir)
{
	static char name[256]; /* GLOBAL: main thread, before the server starts */
	size_t n = strlen(dir);
	const char *slash;

	while (n > 1 && dir[n - 1] == '/')
		n--;
	snprintf(name, sizeof(name), "%.*s", (int)n, dir);
	slash = strrchr(name, '/');
	return slash != NULL && slash[1] != '\0' ? slash + 1 : name;
}

/* Load the model on the engine thread and wait for MSG_READY; -1 after a message. */
static int
load_model(struct server *sv, const char *dir)
{
	struct msg m = { .type = MSG_LOAD };

	m.u.load.dir = xstrdup(dir);
	m.u.load.n_ctx = sv->o.n_ctx;
	m.u.load.threads = sv->o.threads;
	m.u.load.expert_cache = sv->o.expert_cache;
	m.u.load.state_cache = sv->o.state_cache;
	queue_push(sv->to_engine, &m);
	for (;;) {
		queue_wait(sv->from_engine, &m);
		if (m.type == MSG_READY) {
			sv->n_ctx = m.u.ready.n_ctx;
			sv->defaults = m.u.ready.defaults;
			if (!sv->o.quiet)
				fprintf(stderr, "qnext serve: %s, context %d tokens\n",
					m.u.ready.desc, sv->n_ctx);
			msg_free(&m);
			return 0;
		}
		if (m.type == MSG_ERROR && m.u.error.notice) {
			fprintf(stderr, "qnext serve: note: %s\n", m.u.error.text);
		} else if (m.type == MSG_ERROR) {
			fprintf(stderr, "qnext serve: %s\n", m.u.error.text);
			msg_free(&m);
			return -1;
		}
		msg_free(&m);
	}
}

/* The library's own complaints go to the log, not over the terminal. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_info("serve: libmicrohttpd: %s", line);
}

static struct MHD_Daemon *
http_start(struct server *sv, int fd)
{
	return MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, sv, MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, sv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
		NULL,
		/* Waiting requests hold a thread each; past these, refuse. */
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)(sv->o.queue_max + 16), MHD_OPTION_END);
}

/* Wait for SIGINT or SIGTERM (blocked in every thread, so only this takes them). */
static void
wait_for_signal(const sigset_t *set)
{
	int sig;

	while (sigwait(set, &sig) != 0)
		;
	log_info("serve: signal %d: stopping", sig);
}

/* Stop: end every wait, cancel the running turn, join the connections, then the engine. */
static void
server_stop(struct server *sv, struct MHD_Daemon *d)
{
	struct msg q = { .type = MSG_QUIT };

	pthread_mutex_lock(&sv->mu);
	sv->stopping = true;
	pthread_cond_broadcast(&sv->cv);
	pthread_mutex_unlock(&sv->mu);
	if (d != NULL)
		MHD_stop_daemon(d);
	queue_push(sv->to_engine, &q);
	engine_join(sv->engine);
}

static int
serve_run(struct server *sv)
{
	char *cause = NULL, *dir = paths_find_model(sv->o.model, &cause);
	struct MHD_Daemon *d = NULL;
	bool loopback = true;
	int fd = -1, port = 0, rc = 1;
	sigset_t set;

	if (dir == NULL)
		goto fail;
	/* Listen first: a busy port is said before a model loads for nothing. */
	if ((fd = listen_on(sv->o.host, sv->o.port, &loopback, &port, &cause)) < 0)
		goto fail;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts */
	if ((sv->to_engine = queue_new(&cause)) == NULL ||
	    (sv->from_engine = queue_new(&cause)) == NULL ||
	    (sv->engine = engine_start(sv->to_engine, sv->from_engine, NULL, &cause)) == NULL)
		goto fail;
	if (load_model(sv, dir) != 0) {
		server_stop(sv, NULL);
		goto out;
	}
	sv->model_id = xstrdup(sv->o.name != NULL ? sv->o.name : dir_name(dir));
	sv->started = (long long)time(NULL);
	if ((d = http_start(sv, fd)) == NULL) {
		server_stop(sv, NULL);
		cause = xstrdup("cannot start the HTTP server (libmicrohttpd)");
		goto fail;
	}
	fd = -1; /* the daemon's now */
	if (!loopback && sv->o.api_key == NULL)
		fprintf(stderr,
			"qnext serve: warning: listening on %s without an API key: anyone "
			"who can reach this address can use the model (set --api-key or "
			"QNEXT_API_KEY)\n",
			sv->o.host);
	printf("qnext serve: %s on http://%s%s%s:%d/v1 (Ctrl-C stops)\n", sv->model_id,
	       strchr(sv->o.host, ':') ? "[" : "", sv->o.host, strchr(sv->o.host, ':') ? "]" : "",
	       port);
	fflush(stdout);
	wait_for_signal(&set);
	server_stop(sv, d);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "qnext serve: %s\n", cause);
out:
	if (fd >= 0)
		close(fd);
	free(cause);
	free(dir);
	return rc;
}

int
serve_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "api-key", required_argument, NULL, 'k' },
		{ "name", required_argument, NULL, 'N' },
		{ "queue", required_argument, NULL, 'Q' },
		{ "max-tokens", required_argument, NULL, 'M' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "expert-cache", required_argument, NULL, 'x' },
		{ "state-cache", required_argument, NULL, 'S' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct server sv = { .o = { .host = "127.0.0.1",
				    .port = PORT_DEFAULT,
				    .queue_max = QUEUE_DEFAULT,
				    .max_tokens = 32768,
				    .expert_cache = XCACHE_AUTO,
				    .api_key = getenv("QNEXT_API_KEY") } };
	int rc = subcmd_getopt(argc, argv, "serve", "m:qh", longopts, parse_opt, &sv.o, usage);

	if (rc >= 0)
		return rc;
	if (sv.o.api_key != NULL && sv.o.api_key[0] == '\0')
		sv.o.api_key = NULL;
	pthread_mutex_init(&sv.mu, NULL);
	pthread_cond_init(&sv.cv, NULL);
	rc = serve_run(&sv);
	queue_free(sv.to_engine);
	queue_free(sv.from_engine);
	free(sv.model_id);
	pthread_cond_destroy(&sv.cv);
	pthread_mutex_destroy(&sv.mu);
	return rc;
}
