/*
 * remote.c - the client side of an OpenAI-compatible chat server (see
 * remote.h; the wire format is docs/remote.md).
 *
 * Reading order: server-sent events (bytes to events), the chunks (events
 * to text and figures), error bodies, then the HTTP side: one libcurl easy
 * handle per struct remote, reused so the connection is kept, driven by a
 * multi handle so that a stop is seen within REMOTE_POLL_MS even while no
 * byte arrives (a long prefill on the server); remote_open, remote_reply.
 *
 * Thread affinity: one owner thread per struct remote; the stream parser
 * is plain state of its caller.
 */
#include "remote.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "thread-role.h"
#include "util.h"

/* ---- Server-sent events: docs/remote.md "Server-sent events" ---- */

void
remote_sse_init(struct remote_sse *p)
{
	memset(p, 0, sizeof(*p));
}

void
remote_sse_release(struct remote_sse *p)
{
	free(p->line);
	free(p->data);
	memset(p, 0, sizeof(*p));
}

/* Append s[n] to buf[*len] (capacity *cap); -1 when it would pass REMOTE_EVENT_MAX. */
static int
append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	size_t c;

	if (n > REMOTE_EVENT_MAX - *len)
		return -1;
	if (*len + n > *cap) {
		for (c = *cap != 0 ? *cap : 256; c < *len + n; c *= 2)
			;
		*buf = xrealloc(*buf, c);
		*cap = c;
	}
	if (n > 0)
		memcpy(*buf + *len, s, n);
	*len += n;
	return 0;
}

static int
too_big(struct remote_sse *p, char **cause)
{
	p->done = true;
	return cause_set(cause, "event %d: a line or event over %zu MiB", p->n_events + 1,
			 REMOTE_EVENT_MAX >> 20);
}

/* A blank line: hand the event's data on, unless it is [DONE]. */
static int
dispatch(struct remote_sse *p, remote_event_fn *fn, void *arg, char **cause)
{
	int rc = 0;

	if (p->has_data) {
		if (p->n_data == 6 && memcmp(p->data, "[DONE]", 6) == 0) {
			rc = 1;
		} else {
			p->n_events++;
			rc = fn(arg, p->data != NULL ? p->data : "", p->n_data, cause);
		}
	}
	p->n_data = 0;
	p->has_data = false;
	if (rc != 0)
		p->done = true;
	return rc;
}

/* One whole line: a data field is kept, a blank line ends the event, the rest is ignored. */
static int
take_line(struct remote_sse *p, remote_event_fn *fn, void *arg, char **cause)
{
	const char *l = p->line, *v;
	size_t n = p->n_line, nv;

	p->n_line = 0;
	if (n == 0)
		return dispatch(p, fn, arg, cause);
	if (n < 4 || memcmp(l, "data", 4) != 0 || (n > 4 && l[4] != ':'))
		return 0;  /* a comment (':'), event:, id:, retry:, or an unknown field */
	v = l + MIN(n, 5); /* after "data:", or "data" alone: an empty value */
	nv = n - MIN(n, 5);
	if (nv > 0 && *v == ' ')
		v++, nv--;
	if ((p->has_data && append(&p->data, &p->n_data, &p->cap_data, "\n", 1) != 0) ||
	    append(&p->data, &p->n_data, &p->cap_data, v, nv) != 0)
		return too_big(p, cause);
	p->has_data = true;
	return 0;
}

int
remote_sse_feed(struct remote_sse *p, const char *bytes, size_t n, remote_event_fn *fn, void *arg,
		char **cause)
{
	size_t i = 0, j;
	int rc;

	while (i < n && !p->done) {
		if (p->after_cr) {
			p->after_cr = false;
			if (bytes[i] == '\n') {
				i++;
				continue;
			}
		}
		for (j = i; j < n && bytes[j] != '\n' && bytes[j] != '\r'; j++)
			;
		if (append(&p->line, &p->n_line, &p->cap_line, bytes + i, j - i) != 0)
			return too_big(p, cause);
		if (j == n)
			break;
		p->after_cr = bytes[j] == '\r';
		i = j + 1;
		if ((rc = take_line(p, fn, arg, cause)) != 0)
			return rc;
	}
	return p->done ? 1 : 0;
}

int
remote_sse_finish(struct remote_sse *p, remote_event_fn *fn, void *arg, char **cause)
{
	int rc;

	if (p->done)
		return 1;
	if (p->n_line > 0 && (rc = take_line(p, fn, arg, cause)) != 0)
		return rc;
	return dispatch(p, fn, arg, cause);
}

/* ---- The chunks: docs/remote.md "What qnext reads" ---- */

static const char THINK_OPEN[] = "<think>";
#define THINK_OPEN_LEN (sizeof(THINK_OPEN) - 1)

/* Hand text of a part to the callback; newlines that would open a part are dropped. */
static void
deliver(struct remote_stream *s, enum think_part part, const char *text, size_t len)
{
	if (!s->started[part])
		while (len > 0 && *text == '\n')
			text++, len--;
	if (len == 0 || s->stopped)
		return;
	s->started[part] = true;
	if (!s->cb(s->arg, part, text, len))
		s->stopped = true;
}

static void
think_out(void *arg, enum think_part part, const char *text, size_t len)
{
	deliver(arg, part, text, len);
}

/* Content is split at </think> from now on, starting as reasoning or as the answer. */
static void
content_split(struct remote_stream *s, bool thinking)
{
	think_init(&s->ts, -1, -1, thinking);
	s->content = REMOTE_CONTENT_SPLIT;
	think_feed(&s->ts, -1, s->lead, s->n_lead, think_out, s);
	s->n_lead = 0;
}

/* docs/remote.md "How thinking is split" */
static void
on_content(struct remote_stream *s, const char *text, size_t len)
{
	size_t k;

	if (s->content == REMOTE_CONTENT_ANSWER) {
		deliver(s, THINK_ANSWER, text, len);
		return;
	}
	if (s->content == REMOTE_CONTENT_UNDECIDED) {
		k = MIN(len, THINK_OPEN_LEN - s->n_lead);
		memcpy(s->lead + s->n_lead, text, k);
		s->n_lead += k;
		text += k, len -= k;
		if (memcmp(s->lead, THINK_OPEN, s->n_lead) != 0)
			content_split(s, s->think_guess);
		else if (s->n_lead == THINK_OPEN_LEN)
			content_split(s, true);
		else
			return; /* still the start of "<think>": all of text is held */
	}
	think_feed(&s->ts, -1, text, len, think_out, s);
}

/* A reasoning field: from now on content is the answer as it comes. */
static void
on_reasoning(struct remote_stream *s, const char *text, size_t len)
{
	if (s->answer_only) {
		deliver(s, THINK_ANSWER, text, len);
		return;
	}
	if (s->content == REMOTE_CONTENT_SPLIT)
		think_flush(&s->ts, think_out, s);
	else if (s->content == REMOTE_CONTENT_UNDECIDED)
		deliver(s, THINK_ANSWER, s->lead, s->n_lead);
	s->n_lead = 0;
	s->content = REMOTE_CONTENT_ANSWER;
	s->saw_reasoning = true;
	deliver(s, THINK_REASONING, text, len);
}

/* Text held back (a tag's possible start) goes out: the reply is over. */
static void
flush_held(struct remote_stream *s)
{
	if (s->content == REMOTE_CONTENT_UNDECIDED && s->n_lead > 0)
		content_split(s, s->think_guess);
	if (s->content == REMOTE_CONTENT_SPLIT)
		think_flush(&s->ts, think_out, s);
}

/* A JSON count as an int (at most INT_MAX), or -1 when j is not a count. */
static int
count_of(const json_t *j)
{
	json_int_t v;

	if (!json_is_integer(j) || (v = json_integer_value(j)) < 0)
		return -1;
	return v > INT_MAX ? INT_MAX : (int)v;
}

/* The token counts: usage (the last chunk with include_usage), llama-server's timings. */
static void
on_usage(struct remote_stream *s, const json_t *root)
{
	const json_t *u = json_object_get(root, "usage");
	int v;

	v = count_of(json_object_get(json_object_get(root, "timings"), "cache_n"));
	if (v >= 0)
		s->cached_tokens = v;
	if (!json_is_object(u))
		return;
	if ((v = count_of(json_object_get(u, "prompt_tokens"))) >= 0)
		s->prompt_tokens = v;
	if ((v = count_of(json_object_get(u, "completion_tokens"))) >= 0)
		s->completion_tokens = v;
	v = count_of(json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
	if (v >= 0)
		s->cached_tokens = v;
}

/* An error's message: a string, or an object's "message"; NULL when neither. */
static const char *
error_message(const json_t *e)
{
	if (json_is_string(e))
		return json_string_value(e);
	return json_string_value(json_object_get(e, "message"));
}

/* An error event: {"error": ...}, or vLLM's older {"object": "error", "message": ...}. */
static int
chunk_error(const json_t *root, const char *what, char **cause)
{
	const json_t *e = json_object_get(root, "error");
	const char *obj = json_string_value(json_object_get(root, "object"));
	const char *msg;
	char buf[240];

	if (e == NULL || json_is_null(e)) {
		if (obj == NULL || strcmp(obj, "error") != 0)
			return 0;
		e = root;
	}
	msg = error_message(e);
	return cause_set(cause, "%s: the server reports an error: %s", what,
			 str_show(buf, sizeof(buf), msg != NULL ? msg : "(no message)"));
}

/* A non-empty string field of obj, or NULL. */
static const char *
text_field(const json_t *obj, const char *key, size_t *len)
{
	const json_t *j = json_object_get(obj, key);

	*len = json_is_string(j) ? json_string_length(j) : 0;
	return *len > 0 ? json_string_value(j) : NULL;
}

/* The delta of choices[0]: reasoning (under either name, once), then content. */
static void
on_delta(struct remote_stream *s, const json_t *delta)
{
	size_t nr, nc;
	const char *r = text_field(delta, "reasoning_content", &nr);
	const char *c = text_field(delta, "content", &nc);

	if (r == NULL)
		r = text_field(delta, "reasoning", &nr);
	if (r == NULL && c == NULL)
		return;
	s->t_last = now_sec();
	if (s->text_chunks++ == 0)
		s->t_first = s->t_last;
	if (r != NULL)
		on_reasoning(s, r, nr);
	if (c != NULL)
		on_content(s, c, nc);
}

/* remote_event_fn: one chat.completion.chunk. */
static int
on_chunk(void *arg, const char *data, size_t len, char **cause)
{
	struct remote_stream *s = arg;
	const json_t *choice, *fr;
	char what[32];
	json_t *root;

	snprintf(what, sizeof(what), "event %d", s->sse.n_events);
	if ((root = json_parse_object(data, len, what, 120, cause)) == NULL)
		return -1;
	if (chunk_error(root, what, cause) != 0) {
		json_decref(root);
		return -1;
	}
	on_usage(s, root);
	choice = json_array_get(json_object_get(root, "choices"), 0);
	on_delta(s, json_object_get(choice, "delta"));
	if (json_is_string(fr = json_object_get(choice, "finish_reason"))) {
		s->finished = true;
		s->length = strcmp(json_string_value(fr), "length") == 0;
	}
	json_decref(root);
	return s->stopped ? 1 : 0;
}

void
remote_stream_init(struct remote_stream *s, const char *model, session_cb *cb, void *arg)
{
	memset(s, 0, sizeof(*s));
	s->prompt_tokens = s->completion_tokens = s->cached_tokens = -1;
	s->cb = cb;
	s->arg = arg;
	s->think_guess = model != NULL && strcasestr(model, "think") != NULL;
	remote_sse_init(&s->sse);
}

void
remote_stream_continues(struct remote_stream *s, const struct chat_msg *last)
{
	bool in_thought = last->content == NULL || last->content[0] == '\0';

	s->started[THINK_REASONING] = last->reasoning != NULL && last->reasoning[0] != '\0';
	s->started[THINK_ANSWER] = !in_thought;
	s->think_guess = in_thought;
	if (!in_thought) {
		s->content = REMOTE_CONTENT_ANSWER;
		s->answer_only = true;
	}
}

int
remote_stream_feed(struct remote_stream *s, const char *bytes, size_t n, char **cause)
{
	int rc = remote_sse_feed(&s->sse, bytes, n, on_chunk, s, cause);

	if (rc == 1 && !s->stopped)
		s->done = true;
	return rc;
}

int
remote_stream_finish(struct remote_stream *s, char **cause)
{
	int rc = remote_sse_finish(&s->sse, on_chunk, s, cause);

	if (rc < 0)
		return -1;
	if (rc == 1 && !s->stopped)
		s->done = true;
	flush_held(s);
	if (s->finished || s->done || s->stopped)
		return 0;
	if (s->sse.n_events == 0)
		return cause_set(cause, "the answer holds no server-sent event");
	return cause_set(cause, "the stream ended before the reply did (no finish_reason, "
				"no [DONE])");
}

void
remote_stream_release(struct remote_stream *s)
{
	remote_sse_release(&s->sse);
}

/* ---- Error bodies ---- */

/* The first line of body[len], at most cap - 1 bytes, NUL-terminated into line. */
static void
first_line(const char *body, size_t len, char *line, size_t cap)
{
	size_t n = 0;

	while (n < len && n + 1 < cap && body[n] != '\n' && body[n] != '\r' && body[n] != '\0')
		n++;
	memcpy(line, body, n);
	line[n] = '\0';
}

const char *
remote_error_text(const char *body, size_t len, char *buf, size_t cap)
{
	json_t *root = len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
	const char *msg = NULL;
	char line[1024];

	if (json_is_object(root)) {
		msg = error_message(json_object_get(root, "error"));
		if (msg == NULL)
			msg = json_string_value(json_object_get(root, "message"));
		if (msg == NULL)
			msg = json_string_value(json_object_get(root, "detail"));
	}
	if (msg == NULL) {
		first_line(body, len, line, sizeof(line));
		msg = line[0] != '\0' ? line : "(no message)";
	}
	str_show(buf, cap, msg);
	json_decref(root);
	return buf;
}

/* ---- The HTTP side ---- */

#define CONNECT_TIMEOUT_S 10L
/* No byte for this long and the server is taken for gone; a long prefill sends none. */
#define IDLE_TIMEOUT_S    600L
#define MODELS_TIMEOUT_S  60L
#define MODELS_MAX        ((size_t)4 << 20) /* the /v1/models answer */
#define ERROR_BODY_MAX    ((size_t)64 << 10)

static const char STATE_IDLE[] = "idle";
static const char STATE_CONNECTING[] = "connecting";
static const char STATE_WAITING[] = "waiting for first token";
static const char STATE_STREAMING[] = "streaming";
static const char STATE_DONE[] = "done";
static const char STATE_FAILED[] = "failed";

struct remote {
	CURL *curl;   /* one handle for every request: it keeps the connection */
	CURLM *multi; /* drives it, so a stop is seen while no byte comes */
	char *base;   /* "http://host:port", no /v1, no trailing / */
	char *model;
	char *auth; /* "Authorization: Bearer KEY", or NULL */
	int n_ctx;
	char err[CURL_ERROR_SIZE];
	/* The reply running or the last one. */
	struct remote_stream stream;
	double t0, t_end;
	uint64_t bytes_in;
	const char *state;
};

/* One request, as libcurl's callbacks see it. */
struct xfer {
	struct remote *r;
	long status; /* the HTTP status, read at the body's first byte */
	char *body;  /* a body gathered whole (/v1/models, an error); [n_body] */
	size_t n_body, max_body;
	bool over;                    /* the body passed max_body */
	struct remote_stream *stream; /* where a 200 answer goes; NULL: gather it */
	const struct gen_params *gp;  /* NULL: nothing to poll */
	void *arg;
	bool stop; /* poll or the callback said stop */
	bool bad;  /* the stream was malformed or an error event: cause */
	char *cause;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Ask poll, once it has said stop never again (gen_params' rule). */
static bool
ask_stop(struct xfer *x)
{
	if (!x->stop && x->gp != NULL && x->gp->poll != NULL && x->gp->poll(x->arg))
		x->stop = true;
	return x->stop;
}

static void
gather(struct xfer *x, const char *p, size_t n)
{
	if (n > x->max_body - x->n_body) {
		x->over = true;
		n = x->max_body - x->n_body;
	}
	if (n == 0)
		return;
	x->body = xrealloc(x->body, x->n_body + n + 1);
	memcpy(x->body + x->n_body, p, n);
	x->n_body += n;
	x->body[x->n_body] = '\0';
}

/* CURLOPT_WRITEFUNCTION: a 200 chat answer to the stream, anything else gathered. */
static size_t
on_body(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;
	int rc;

	x->r->bytes_in += n;
	if (x->status == 0)
		curl_easy_getinfo(x->r->curl, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->stream == NULL || x->status != 200) {
		gather(x, p, n);
		return n;
	}
	if ((rc = remote_stream_feed(x->stream, p, n, &x->cause)) < 0) {
		x->bad = true;
		return 0;
	}
	if (x->stream->text_chunks > 0)
		x->r->state = STATE_STREAMING;
	if (x->stream->stopped || ask_stop(x)) {
		x->stop = true;
		return 0;
	}
	return n;
}

/* CURLOPT_XFERINFOFUNCTION: the request is sent; stop when poll says so. */
static int
on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
	    curl_off_t ulnow)
{
	struct xfer *x = clientp;

	if (x->r->state == STATE_CONNECTING && ultotal > 0 && ulnow >= ultotal)
		x->r->state = STATE_WAITING;
	return ask_stop(x) ? 1 : 0;
}

static struct curl_slist *
header_add(struct curl_slist *h, const char *line)
{
	struct curl_slist *n = curl_slist_append(h, line);

	if (n == NULL)
		fatal("out of memory (curl_slist_append)");
	return n;
}

/* The request's headers: the key, and for a JSON body its type; no Expect: 100-continue. */
static struct curl_slist *
headers(const struct remote *r, bool json_body)
{
	struct curl_slist *h = header_add(NULL, "Expect:");

	if (json_body) {
		h = header_add(h, "Content-Type: application/json");
		h = header_add(h, "Accept: text/event-stream");
	}
	if (r->auth != NULL)
		h = header_add(h, r->auth);
	return h;
}

/* Options for one request on the reused handle (a reset keeps the connection). */
static void
setup(struct remote *r, struct xfer *x, const char *url, const char *post, struct curl_slist *h)
{
	CURL *c = r->curl;

	curl_easy_reset(c);
	r->err[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, IDLE_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "qnext/" VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
	if (post != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(post));
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
}

/*
 * Run the request until it ends or a stop: poll is asked at least every
 * REMOTE_POLL_MS.  Taking the handle out of the multi mid-answer closes the
 * connection, which is how the server learns to stop generating.
 */
static CURLcode
perform(struct remote *r, struct xfer *x)
{
	CURLcode res = CURLE_OK;
	CURLMcode mc = CURLM_OK;
	CURLMsg *m;
	int running = 1, left;

	if ((mc = curl_multi_add_handle(r->multi, r->curl)) != CURLM_OK)
		running = 0;
	while (running) {
		if ((mc = curl_multi_perform(r->multi, &running)) != CURLM_OK)
			break;
		if (!running || x->bad || ask_stop(x))
			break;
		if ((mc = curl_multi_poll(r->multi, NULL, 0, REMOTE_POLL_MS, NULL)) != CURLM_OK)
			break;
	}
	while ((m = curl_multi_info_read(r->multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE)
			res = m->data.result;
	curl_multi_remove_handle(r->multi, r->curl);
	if (mc != CURLM_OK) {
		snprintf(r->err, sizeof(r->err), "libcurl: %s", curl_multi_strerror(mc));
		res = CURLE_FAILED_INIT;
	}
	if (x->status == 0)
		curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &x->status);
	return res;
}

static int
curl_cause(const struct remote *r, const char *url, CURLcode res, char **cause)
{
	return cause_set(cause, "%s: %s", url,
			 r->err[0] != '\0' ? r->err : curl_easy_strerror(res));
}

static int
http_cause(const char *url, const struct xfer *x, char **cause)
{
	char msg[240];

	return cause_set(
		cause, "%s: HTTP %ld: %s", url, x->status,
		remote_error_text(x->body != NULL ? x->body : "", x->n_body, msg, sizeof(msg)));
}

/* Why a finished request failed (0 when it did not): the status, then the transport. */
static int
request_cause(const struct remote *r, const struct xfer *x, const char *url, CURLcode res,
	      char **cause)
{
	if (x->status != 0 && x->status != 200)
		return http_cause(url, x, cause);
	if (res != CURLE_OK)
		return curl_cause(r, url, res, cause);
	return 0;
}

/* ---- remote_open ---- */

static bool
has_space_or_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == ' ')
			return true;
	return false;
}

/* "host:port/v1/" -> "http://host:port"; docs/remote.md "What qnext sends" */
static int
normalize_base(const char *url, char **out, char **cause)
{
	char show[120], *b, *host;
	size_t n;

	if (url == NULL || *url == '\0')
		return cause_set(cause, "no server URL");
	str_show(show, sizeof(show), url);
	if (has_space_or_control(url))
		return cause_set(cause, "%s: not a URL (a space or control character)", show);
	if (strstr(url, "://") == NULL)
		b = xasprintf("http://%s", url);
	else if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0)
		b = xstrdup(url);
	else
		return cause_set(cause, "%s: not an http:// or https:// URL", show);
	host = strstr(b, "://") + 3;
	n = strlen(b);
	while (b + n > host && b[n - 1] == '/')
		b[--n] = '\0';
	if (b + n - 3 > host && strcmp(b + n - 3, "/v1") == 0)
		b[n -= 3] = '\0';
	while (b + n > host && b[n - 1] == '/')
		b[--n] = '\0';
	if (*host == '\0' || *host == '/') {
		free(b);
		return cause_set(cause, "%s: no host", show);
	}
	*out = b;
	return 0;
}

/* The context length a /v1/models entry gives, else 0. */
static int
ctx_of(const json_t *m)
{
	int v = count_of(json_object_get(m, "max_model_len"));

	if (v <= 0)
		v = count_of(json_object_get(json_object_get(m, "meta"), "n_ctx_train"));
	return MAX(v, 0);
}

/* "the server lists no model NAME (it has: a, b)" */
static int
no_model(const json_t *data, const char *want, const char *url, char **cause)
{
	char list[640] = "", one[64], name[120]; /* 8 names of at most 63 bytes, ", ..." */
	size_t i, shown = 0, len = 0;
	json_t *m;

	if (want == NULL)
		return cause_set(cause, "%s: the server lists no model", url);
	json_array_foreach(data, i, m)
	{
		const char *id = json_string_value(json_object_get(m, "id"));

		if (id == NULL)
			continue;
		if (shown++ == 8) {
			snprintf(list + len, sizeof(list) - len, ", ...");
			break;
		}
		snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "",
			 str_show(one, sizeof(one), id));
		len = strlen(list);
	}
	str_show(name, sizeof(name), want);
	if (shown == 0)
		return cause_set(cause, "%s: the server lists no model %s (it lists none)", url,
				 name);
	return cause_set(cause, "%s: the server lists no model %s (it has: %s)", url, name, list);
}

/* Pick the model from the /v1/models answer: the one asked for, else the first. */
static int
pick_model(struct remote *r, const json_t *root, const char *want, const char *url, char **cause)
{
	const json_t *data = json_object_get(root, "data");
	json_t *m;
	size_t i;

	if (!json_is_array(data))
		return cause_set(cause, "%s: no \"data\" list in the answer", url);
	json_array_foreach(data, i, m)
	{
		const char *id = json_string_value(json_object_get(m, "id"));

		if (id != NULL && *id != '\0' && (want == NULL || strcmp(id, want) == 0)) {
			r->model = xstrdup(id);
			r->n_ctx = ctx_of(m);
			return 0;
		}
	}
	return no_model(data, want, url, cause);
}

/* GET {base}/v1/models and pick the model. */
static int
list_models(struct remote *r, const char *want, char **cause)
{
	char *url = xasprintf("%s/v1/models", r->base);
	struct xfer x = { .r = r, .max_body = MODELS_MAX };
	struct curl_slist *h = headers(r, false);
	json_t *root;
	CURLcode res;
	int rc = -1;

	setup(r, &x, url, NULL, h);
	curl_easy_setopt(r->curl, CURLOPT_TIMEOUT, MODELS_TIMEOUT_S);
	res = perform(r, &x);
	if (request_cause(r, &x, url, res, cause) == 0) {
		if (x.over)
			cause_set(cause, "%s: the answer is over %zu MiB", url, MODELS_MAX >> 20);
		else if ((root = json_parse_object(x.body != NULL ? x.body : "", x.n_body, url, 120,
						   cause)) != NULL) {
			rc = pick_model(r, root, want, url, cause);
			json_decref(root);
		}
	}
	curl_slist_free_all(h);
	free(x.body);
	free(url);
	return rc;
}

struct remote *
remote_open(const struct remote_opts *o, char **cause)
{
	struct remote *r;

	assert_engine();
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		cause_set(cause, "libcurl: %s", curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	if (o->api_key != NULL && has_space_or_control(o->api_key)) {
		cause_set(cause, "the API key holds a space or a control character");
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->state = STATE_IDLE;
	remote_stream_init(&r->stream, NULL, NULL, NULL);
	if (o->api_key != NULL && *o->api_key != '\0')
		r->auth = xasprintf("Authorization: Bearer %s", o->api_key);
	if (normalize_base(o->url, &r->base, cause) != 0)
		goto fail;
	if ((r->curl = curl_easy_init()) == NULL || (r->multi = curl_multi_init()) == NULL) {
		cause_set(cause, "libcurl: cannot start");
		goto fail;
	}
	if (list_models(r, o->model, cause) != 0)
		goto fail;
	log_info("remote: %s at %s, context %d", r->model, r->base, r->n_ctx);
	return r;
fail:
	remote_close(r);
	return NULL;
}

void
remote_close(struct remote *r)
{
	if (r == NULL)
		return;
	remote_stream_release(&r->stream);
	if (r->multi != NULL)
		curl_multi_cleanup(r->multi);
	if (r->curl != NULL)
		curl_easy_cleanup(r->curl);
	if (r->auth != NULL)
		memset(r->auth, 0, strlen(r->auth));
	free(r->auth);
	free(r->base);
	free(r->model);
	free(r);
}

const char *
remote_model(const struct remote *r)
{
	return r->model;
}

const char *
remote_base(const struct remote *r)
{
	return r->base;
}

char *
remote_describe(const struct remote *r)
{
	return xasprintf("%s at %s (remote)", r->model, r->base);
}

int
remote_n_ctx(const struct remote *r)
{
	return r->n_ctx;
}

/* ---- remote_reply ---- */

/* The sampling fields: docs/remote.md "What qnext sends" */
static void
add_sampling(json_t *req, const struct gen_params *gp)
{
	const struct sampler_params *sp = &gp->sp;

	json_object_set_new(req, "temperature", json_real(MAX(sp->temperature, 0.0f)));
	json_object_set_new(req, "top_p", json_real(sp->top_p));
	json_object_set_new(req, "top_k", json_integer(sp->top_k > 0 ? sp->top_k : -1));
	json_object_set_new(req, "min_p", json_real(sp->min_p));
	json_object_set_new(req, "presence_penalty", json_real(sp->presence_penalty));
	if (sp->repetition_penalty != 1.0f)
		json_object_set_new(req, "repetition_penalty", json_real(sp->repetition_penalty));
	if (sp->seed != SAMPLER_SEED_RANDOM)
		json_object_set_new(req, "seed", json_integer((json_int_t)sp->seed));
	if (gp->max_tokens > 0)
		json_object_set_new(req, "max_tokens", json_integer(gp->max_tokens));
	/* vLLM's field (honoured with --reasoning-config), qnext serve's too; others ignore it. */
	if (gp->think_budget > 0)
		json_object_set_new(req, "thinking_token_budget", json_integer(gp->think_budget));
}

/*
 * The messages: role and content.  An assistant's reasoning is not sent, but for the message a
 * reply continues: the template renders that one with its thought.
 */
static json_t *
messages_json(const struct chat_msg *msgs, size_t n, bool cont, char **cause)
{
	json_t *list = json_array(), *m, *jr, *jc;

	for (size_t i = 0; i < n; i++) {
		jr = json_string(msgs[i].role != NULL ? msgs[i].role : "user");
		jc = json_string(msgs[i].content != NULL ? msgs[i].content : "");
		if (jr == NULL || jc == NULL) {
			json_decref(jr);
			json_decref(jc);
			json_decref(list);
			cause_set(cause, "message %zu is not valid UTF-8", i + 1);
			return NULL;
		}
		m = json_object();
		json_object_set_new(m, "role", jr);
		json_object_set_new(m, "content", jc);
		if (cont && i == n - 1 && msgs[i].reasoning != NULL &&
		    (jr = json_string(msgs[i].reasoning)) != NULL)
			json_object_set_new(m, "reasoning_content", jr);
		json_array_append_new(list, m);
	}
	return list;
}

/* The request body, malloc'd; NULL with *cause. */
static char *
request_body(const struct remote *r, const struct chat_msg *msgs, size_t n,
	     const struct gen_params *gp, char **cause)
{
	json_t *req, *list = messages_json(msgs, n, gp->continue_last, cause), *so = json_object();
	char *body;

	if (list == NULL) {
		json_decref(so);
		return NULL;
	}
	req = json_object();
	json_object_set_new(req, "model", json_string(r->model));
	json_object_set_new(req, "messages", list);
	json_object_set_new(req, "stream", json_true());
	json_object_set_new(so, "include_usage", json_true());
	json_object_set_new(req, "stream_options", so);
	add_sampling(req, gp);
	if (gp->continue_last) { /* vLLM's fields for it; qnext serve's too */
		json_object_set_new(req, "continue_final_message", json_true());
		json_object_set_new(req, "add_generation_prompt", json_false());
	}
	body = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(7));
	json_decref(req);
	if (body == NULL)
		fatal("out of memory (json_dumps)");
	return body;
}

static void
fill_stats(const struct remote *r, struct gen_stats *st)
{
	const struct remote_stream *s = &r->stream;

	st->prompt_tokens = MAX(s->prompt_tokens, 0);
	st->reused_tokens = MAX(s->cached_tokens, 0);
	st->gen_tokens = s->completion_tokens >= 0 ? s->completion_tokens : s->text_chunks;
	if (s->t_first > 0) {
		st->ttft_s = s->t_first - r->t0;
		st->decode_s = r->t_end - s->t_first;
	}
	st->prefill_s = st->ttft_s;
}

/* How the request ended: a stop, a bad stream, the transport, the status, the stream's end. */
static int
reply_end(struct remote *r, struct xfer *x, const char *url, CURLcode res, struct gen_stats *st,
	  char **cause)
{
	struct remote_stream *s = &r->stream;
	char *why = NULL;
	int rc = 0;

	if (x->stop || s->stopped) {
		flush_held(s);
		st->stop = GEN_STOP_USER;
	} else if (x->bad) {
		rc = cause_set(cause, "%s: %s", url, x->cause);
	} else if (request_cause(r, x, url, res, cause) != 0) {
		rc = -1;
	} else if ((rc = remote_stream_finish(s, &why)) != 0) {
		cause_set(cause, "%s: %s", url, why);
	} else {
		st->stop = s->length ? GEN_STOP_LENGTH : GEN_STOP_EOS;
	}
	free(why);
	fill_stats(r, st);
	r->state = rc == 0 ? STATE_DONE : STATE_FAILED;
	return rc;
}

static void
log_reply(const struct remote *r, const struct gen_stats *st)
{
	double tps =
		st->gen_tokens > 1 && st->decode_s > 0 ? (st->gen_tokens - 1) / st->decode_s : 0;

	log_info("remote reply: %d prompt tokens (%d cached), %d generated in %.2f s "
		 "(%.2f tok/s), first token %.2f s, %s, %llu bytes",
		 st->prompt_tokens, st->reused_tokens, st->gen_tokens, st->decode_s, tps,
		 st->ttft_s, r->state, (unsigned long long)r->bytes_in);
}

int
remote_reply(struct remote *r, const struct chat_msg *msgs, size_t n, const struct gen_params *gp,
	     session_cb *cb, void *arg, struct gen_stats *st, char **cause)
{
	struct xfer x = { .r = r, .max_body = ERROR_BODY_MAX, .gp = gp, .arg = arg };
	char *url = xasprintf("%s/v1/chat/completions", r->base), *body, *why = NULL;
	struct curl_slist *h;
	CURLcode res;
	int rc;

	assert_engine();
	memset(st, 0, sizeof(*st));
	remote_stream_release(&r->stream);
	remote_stream_init(&r->stream, r->model, cb, arg);
	if (gp->continue_last && n > 0)
		remote_stream_continues(&r->stream, &msgs[n - 1]);
	r->t0 = r->t_end = now_sec();
	r->bytes_in = 0;
	if ((body = request_body(r, msgs, n, gp, &why)) == NULL) {
		r->state = STATE_FAILED;
		rc = cause_set(cause, "%s: %s", url, why);
		free(why);
		free(url);
		return rc;
	}
	r->state = STATE_CONNECTING;
	x.stream = &r->stream;
	h = headers(r, true);
	setup(r, &x, url, body, h);
	res = perform(r, &x);
	r->t_end = now_sec();
	rc = reply_end(r, &x, url, res, st, cause);
	log_reply(r, st);
	curl_slist_free_all(h);
	free(x.cause);
	free(x.body);
	free(body);
	free(url);
	return rc;
}

void
remote_gen_progress(const struct remote *r, int *n, double *t)
{
	*n = r->stream.text_chunks;
	*t = r->stream.t_last;
}

void
remote_net_stats(const struct remote *r, struct remote_stats *out)
{
	const struct remote_stream *s = &r->stream;
	int n = s->completion_tokens >= 0 ? s->completion_tokens : s->text_chunks;

	memset(out, 0, sizeof(*out));
	out->state = r->state;
	out->bytes_in = r->bytes_in;
	if (s->t_first > 0)
		out->ttft_s = s->t_first - r->t0;
	if (n >= 2 && s->t_last > s->t_first)
		out->tok_s = (n - 1) / (s->t_last - s->t_first);
}
