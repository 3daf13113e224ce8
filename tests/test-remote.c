/*
 * test-remote.c - the OpenAI-compatible client (engine/remote.c).
 *
 * First the pure part: the server-sent-events reader on hand-written
 * streams (CRLF, CR, comments, fields, [DONE]), then the recorded streams
 * of tests/data/remote (vLLM with reasoning_content and with reasoning,
 * llama-server, no reasoning parser, <think> tags in the content) fed
 * whole, in fixed pieces, byte by byte, in random pieces, with CRLF and CR
 * line ends and without the space after "data:", checking the exact
 * reasoning and answer and the token counts; then the malformed streams,
 * which must give one line of cause.  Then remote_open and remote_reply
 * against tests/replay-server.py (python3, started here, killed at the
 * end): the texts, the figures, the request's fields, a kept connection,
 * the key check, an overloaded server, a wrong path, a refused connection,
 * and stops: from the callback, from poll mid-stream and while the server
 * sends nothing yet.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "remote.h"
#include "t.h"
#include "util.h"

#define DATA "tests/data/remote/"

/* The reasoning every recorded stream shares, and the answer most of them give. */
#define R_TEXT \
	"Okay, the user asks what 2 + 2 is. That's basic arithmetic: two plus two equals four."
#define R_FULL R_TEXT " So the answer is 4.\n"
#define A_FULL "2 + 2 = **4**."

/* ---- What the callback got ---- */

struct sink {
	char text[2][8192];
	size_t n[2];
	int calls;
	int stop_at;    /* > 0: return false on this call */
	bool after_end; /* called again after returning false */
	bool overflow;
	struct remote *r; /* when set: remote_gen_progress is checked in the callback */
	int last_n;       /* ... its count, never going back */
	bool progress_ok;
	const char *state; /* remote_net_stats' state seen in the callback */
};

static void
sink_init(struct sink *k)
{
	memset(k, 0, sizeof(*k));
	k->progress_ok = true;
}

static bool
collect(void *arg, enum think_part part, const char *text, size_t len)
{
	struct sink *k = arg;

	if (k->stop_at > 0 && k->calls >= k->stop_at)
		k->after_end = true;
	k->calls++;
	if (k->n[part] + len >= sizeof(k->text[part]))
		k->overflow = true;
	else {
		memcpy(k->text[part] + k->n[part], text, len);
		k->n[part] += len;
		k->text[part][k->n[part]] = '\0';
	}
	if (k->r != NULL) {
		struct remote_stats ns;
		double t;
		int n;

		remote_gen_progress(k->r, &n, &t);
		if (n < 1 || n < k->last_n || t <= 0)
			k->progress_ok = false;
		k->last_n = n;
		remote_net_stats(k->r, &ns);
		k->state = ns.state;
	}
	return k->stop_at == 0 || k->calls < k->stop_at;
}

/* ---- The events reader alone ---- */

struct events {
	char data[8][64];
	int n;
};

static int
on_event(void *arg, const char *data, size_t len, char **cause)
{
	struct events *e = arg;

	if (e->n < 8 && len < sizeof(e->data[0])) {
		memcpy(e->data[e->n], data, len);
		e->data[e->n][len] = '\0';
	}
	e->n++;
	return 0;
}

/* Feed text byte by byte and whole; both must give the same events. */
static int
sse_run(const char *text, struct events *e, char **cause)
{
	struct remote_sse p;
	struct events whole = { 0 };
	int rc = 0, rw;

	memset(e, 0, sizeof(*e));
	remote_sse_init(&p);
	for (size_t i = 0; text[i] != '\0' && rc == 0; i++)
		rc = remote_sse_feed(&p, text + i, 1, on_event, e, cause);
	if (rc == 0)
		rc = remote_sse_finish(&p, on_event, e, cause);
	remote_sse_release(&p);
	remote_sse_init(&p);
	rw = remote_sse_feed(&p, text, strlen(text), on_event, &whole, NULL);
	if (rw == 0)
		rw = remote_sse_finish(&p, on_event, &whole, NULL);
	remote_sse_release(&p);
	T_EQ_INT(rw, rc);
	T_EQ_INT(whole.n, e->n);
	for (int i = 0; i < e->n && i < 8; i++)
		T_ASSERT(strcmp(whole.data[i], e->data[i]) == 0);
	return rc;
}

static void
test_sse_lines(void)
{
	struct events e;
	char *cause = NULL;

	/* Comments and other fields are skipped; data lines join with \n; "data" alone is empty. */
	T_EQ_INT(sse_run(": ping\nevent: message\nid: 7\nretry: 1000\ndata: a\ndata:b\ndata\n\n",
			 &e, &cause),
		 0);
	T_EQ_INT(e.n, 1);
	T_ASSERT(strcmp(e.data[0], "a\nb\n") == 0);
	/* CRLF, CR and LF line ends, mixed; a CRLF is one line end, not two. */
	T_EQ_INT(sse_run("data: x\r\n\r\ndata: y\r\rdata: z\n\ndata: w\r\n\n"
			 "data: a\r\ndata: b\r\n\r\n",
			 &e, &cause),
		 0);
	T_EQ_INT(e.n, 5);
	T_ASSERT(strcmp(e.data[0], "x") == 0 && strcmp(e.data[1], "y") == 0);
	T_ASSERT(strcmp(e.data[2], "z") == 0 && strcmp(e.data[3], "w") == 0);
	T_ASSERT(strcmp(e.data[4], "a\nb") == 0);
	/* One space goes after the colon, not two; "datax" is another field. */
	T_EQ_INT(sse_run("data:  two\n\ndatax: no\n\n:data: no\n\n", &e, &cause), 0);
	T_EQ_INT(e.n, 1);
	T_ASSERT(strcmp(e.data[0], " two") == 0);
	/* [DONE] ends the stream: what follows is never read. */
	T_EQ_INT(sse_run("data: 1\n\ndata: [DONE]\n\ndata: after\n\n", &e, &cause), 1);
	T_EQ_INT(e.n, 1);
	/* A blank line with no data line makes no event; an unclosed last event counts. */
	T_EQ_INT(sse_run("\n\n\r\n: x\n\ndata: last", &e, &cause), 0);
	T_EQ_INT(e.n, 1);
	T_ASSERT(strcmp(e.data[0], "last") == 0);
	T_ASSERT(cause == NULL);
}

/* A line over 1 MiB, and an event over 1 MiB made of short lines: an error, not a crash. */
static void
test_sse_bounds(void)
{
	struct remote_sse p;
	struct events e = { 0 };
	char *cause = NULL, piece[4096];
	size_t fed = 0;
	int rc = 0;

	memset(piece, 'x', sizeof(piece));
	memcpy(piece, "data: ", 6);
	remote_sse_init(&p);
	while (rc == 0 && fed <= REMOTE_EVENT_MAX + sizeof(piece)) {
		rc = remote_sse_feed(&p, piece, sizeof(piece), on_event, &e, &cause);
		fed += sizeof(piece);
	}
	T_EQ_INT(rc, -1);
	T_ASSERT(fed > REMOTE_EVENT_MAX);
	T_STR_CONTAINS(cause, "over 1 MiB");
	remote_sse_release(&p);
	free(cause);
	cause = NULL;

	memset(piece, 'y', sizeof(piece));
	memcpy(piece, "data: ", 6);
	piece[sizeof(piece) - 1] = '\n';
	remote_sse_init(&p);
	for (fed = 0, rc = 0; rc == 0 && fed <= 2 * REMOTE_EVENT_MAX; fed += sizeof(piece))
		rc = remote_sse_feed(&p, piece, sizeof(piece), on_event, &e, &cause);
	T_EQ_INT(rc, -1);
	T_EQ_INT(e.n, 0);
	T_STR_CONTAINS(cause, "event 1: a line or event over 1 MiB");
	remote_sse_release(&p);
	free(cause);
}

/* ---- The recorded streams ---- */

struct expect {
	const char *file, *model, *reasoning, *answer;
	int prompt, completion, cached;
	bool length;
};

static const struct expect streams[] = {
	{ "vllm-stream.sse", "Qwen/Qwen3-Next-80B-A3B-Thinking", R_FULL, A_FULL, 17, 35, 16,
	  false },
	{ "vllm-reasoning-field.sse", "vllm-new", "Okay, the user asks what 2 + 2 is Simple.", "4.",
	  17, 16, -1, false },
	{ "llama-stream.sse", "Qwen3-Next-80B-A3B-Thinking-Q4_K_M.gguf", R_FULL, "2 + 2 =", 75, 31,
	  60, true },
	{ "noparser-stream.sse", "qwen3-next-thinking", R_FULL, A_FULL, 17, 35, -1, false },
	{ "think-tags-stream.sse", "qwen3-next-80b-q4.gguf", R_FULL, A_FULL, 20, 38, 0, false },
};

/*
 * Feed body[len] to a stream in pieces: step 0 whole, else `step` bytes,
 * SIZE_MAX random pieces of 1 to 40 bytes.  Returns the stream's result.
 */
static int
stream_run(const char *body, size_t len, const char *model, size_t step, unsigned *seed,
	   struct sink *k, struct remote_stream *s, char **cause)
{
	int rc = 0;

	remote_stream_init(s, model, collect, k);
	for (size_t at = 0; at < len && rc == 0;) {
		size_t n = step == 0          ? len
			   : step == SIZE_MAX ? 1 + (size_t)rand_r(seed) % 40
					      : step;

		n = MIN(n, len - at);
		rc = remote_stream_feed(s, body + at, n, cause);
		at += n;
	}
	if (rc >= 0 && remote_stream_finish(s, cause) != 0)
		rc = -1;
	return rc;
}

static bool
stream_matches(const struct expect *x, const char *body, size_t len, size_t step, unsigned *seed)
{
	struct remote_stream s;
	struct sink k;
	char *cause = NULL;
	bool ok;
	int rc;

	sink_init(&k);
	rc = stream_run(body, len, x->model, step, seed, &k, &s, &cause);
	ok = rc >= 0 && cause == NULL && !k.overflow &&
	     strcmp(k.text[THINK_REASONING], x->reasoning) == 0 &&
	     strcmp(k.text[THINK_ANSWER], x->answer) == 0 && s.prompt_tokens == x->prompt &&
	     s.completion_tokens == x->completion && s.cached_tokens == x->cached &&
	     s.length == x->length && s.finished && s.done && !s.stopped;
	if (!ok)
		fprintf(stderr,
			"%s, pieces of %zu: rc %d (%s)\n  reasoning \"%s\"\n  answer \"%s\"\n",
			x->file, step, rc, cause != NULL ? cause : "", k.text[THINK_REASONING],
			k.text[THINK_ANSWER]);
	remote_stream_release(&s);
	free(cause);
	return ok;
}

/* body with every "from" replaced by "to"; malloc'd. */
static char *
replace_all(const char *body, const char *from, const char *to, size_t *len)
{
	size_t nf = strlen(from), nt = strlen(to), n = 0;
	char *out = xmalloc(strlen(body) * (nt > nf ? nt : 1) + 1);

	for (const char *p = body; *p != '\0';) {
		if (strncmp(p, from, nf) == 0) {
			memcpy(out + n, to, nt);
			n += nt, p += nf;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
	*len = n;
	return out;
}

static void
test_recorded(const struct expect *x)
{
	static const size_t steps[] = { 0, 1, 2, 3, 5, 7, 13, 64, 1000 };
	char path[256], *body, *cause = NULL, *v;
	unsigned seed = 1234;
	size_t len, vlen;
	int bad = 0;

	snprintf(path, sizeof(path), DATA "%s", x->file);
	if ((body = read_file(path, &len, &cause)) == NULL) {
		T_ASSERT(!"a recorded stream reads");
		fprintf(stderr, "%s\n", cause);
		free(cause);
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(steps); i++)
		bad += !stream_matches(x, body, len, steps[i], &seed);
	for (int i = 0; i < 200; i++)
		bad += !stream_matches(x, body, len, SIZE_MAX, &seed);
	T_EQ_INT(bad, 0);
	/* The same stream with CRLF, with CR, and with "data:" and no space. */
	v = replace_all(body, "\n", "\r\n", &vlen);
	T_ASSERT(stream_matches(x, v, vlen, 1, &seed) && stream_matches(x, v, vlen, 0, &seed));
	free(v);
	v = replace_all(body, "\n", "\r", &vlen);
	T_ASSERT(stream_matches(x, v, vlen, 1, &seed) && stream_matches(x, v, vlen, 0, &seed));
	free(v);
	v = replace_all(body, "data: ", "data:", &vlen);
	T_ASSERT(stream_matches(x, v, vlen, 3, &seed));
	free(v);
	free(body);
}

/* One stream from text; its result, texts in k, cause as it says. */
static int
stream_text(const char *text, const char *model, struct sink *k, struct remote_stream *s,
	    char **cause)
{
	unsigned seed = 7;
	int rc;

	sink_init(k);
	rc = stream_run(text, strlen(text), model, 1, &seed, k, s, cause);
	remote_stream_release(s);
	return rc;
}

#define CHUNK(delta) "data: {\"choices\":[{\"index\":0,\"delta\":" delta "}]}\n\n"
#define FINISH                                           \
	"data: {\"choices\":[{\"index\":0,\"delta\":{}," \
	"\"finish_reason\":\"stop\"}]}\n\n"

static void
test_bad_streams(void)
{
	static const struct {
		const char *text, *cause;
	} bad[] = {
		{ "data: {not json}\n\n", "event 1: not valid JSON" },
		{ CHUNK("{\"content\":\"a\"}") "data: [1,2]\n\n", "event 2: not a JSON object" },
		{ "data: {\"error\":{\"message\":\"boom\",\"type\":\"InternalServerError\","
		  "\"code\":500}}\n\n",
		  "event 1: the server reports an error: boom" },
		{ "data: {\"object\":\"error\",\"message\":\"old "
		  "style\",\"type\":\"BadRequestError\"}"
		  "\n\n",
		  "the server reports an error: old style" },
		{ "data: {\"error\":\"Unauthorized\"}\n\n", "reports an error: Unauthorized" },
		{ "data: {\"error\":{\"message\":\"\\u001b[31mred\"}}\n\n", "error: ?[31mred" },
		{ CHUNK("{\"content\":\"cut\"}"), "the stream ended before the reply did" },
		{ "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"not streamed\"}}]}",
		  "the answer holds no server-sent event" },
		{ "", "the answer holds no server-sent event" },
	};
	struct remote_stream s;
	struct sink k;

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char *cause = NULL;

		T_EQ_INT(stream_text(bad[i].text, "m", &k, &s, &cause), -1);
		T_STR_CONTAINS(cause, bad[i].cause);
		free(cause);
	}
}

static void
test_stream_cases(void)
{
	struct remote_stream s;
	struct sink k;
	char *cause = NULL;

	/* Once a reasoning field came, content is the answer, tags and all. */
	T_EQ_INT(stream_text(CHUNK("{\"reasoning_content\":\"r\"}") CHUNK(
				     "{\"content\":\"a</think>b\",\"reasoning_content\":null}")
				     FINISH,
			     "x-thinking", &k, &s, &cause),
		 0);
	T_ASSERT(strcmp(k.text[THINK_REASONING], "r") == 0);
	T_ASSERT(strcmp(k.text[THINK_ANSWER], "a</think>b") == 0);
	T_ASSERT(s.saw_reasoning && s.text_chunks == 2 && s.t_first > 0 && s.t_last >= s.t_first);
	/* No reasoning field: a Thinking model id starts in the reasoning... */
	T_EQ_INT(stream_text(CHUNK("{\"content\":\"abc</think>xyz\"}") FINISH,
			     "Some-THINKING-model", &k, &s, &cause),
		 0);
	T_ASSERT(strcmp(k.text[THINK_REASONING], "abc") == 0);
	T_ASSERT(strcmp(k.text[THINK_ANSWER], "xyz") == 0);
	/* ... any other in the answer, unless the content opens with <think>. */
	T_EQ_INT(stream_text(CHUNK("{\"content\":\"abc</think>xyz\"}") FINISH, "plain", &k, &s,
			     &cause),
		 0);
	T_ASSERT(strcmp(k.text[THINK_ANSWER], "abc</think>xyz") == 0 && k.n[THINK_REASONING] == 0);
	T_EQ_INT(stream_text(CHUNK("{\"content\":\"<thinking> is a tag\"}") FINISH, "plain", &k, &s,
			     &cause),
		 0);
	T_ASSERT(strcmp(k.text[THINK_ANSWER], "<thinking> is a tag") == 0);
	/* Held text (maybe "<think>", maybe "</think>") comes out at the end. */
	T_EQ_INT(stream_text(CHUNK("{\"content\":\"<th\"}") FINISH, "plain", &k, &s, &cause), 0);
	T_ASSERT(strcmp(k.text[THINK_ANSWER], "<th") == 0);
	T_EQ_INT(stream_text(CHUNK("{\"content\":\"so </thi\"}") FINISH, "a-think", &k, &s, &cause),
		 0);
	T_ASSERT(strcmp(k.text[THINK_REASONING], "so </thi") == 0 && k.n[THINK_ANSWER] == 0);
	/* Counts: nulls, floats and negatives are not counts; huge ones are cut to INT_MAX. */
	T_EQ_INT(stream_text(CHUNK("{\"content\":null,\"reasoning\":null}") FINISH
			     "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1e3,"
			     "\"completion_tokens\":-4,\"prompt_tokens_details\":null}}\n\n"
			     "data: {\"usage\":{\"prompt_tokens\":99999999999999}}\n\n",
			     "m", &k, &s, &cause),
		 0);
	T_EQ_INT(k.calls, 0);
	T_EQ_INT(s.text_chunks, 0);
	T_EQ_INT(s.prompt_tokens, INT_MAX);
	T_EQ_INT(s.completion_tokens, -1);
	T_EQ_INT(s.cached_tokens, -1);
	/* The callback says stop: no call after, and the stream is over. */
	sink_init(&k);
	k.stop_at = 3;
	{
		char *body, *c2 = NULL;
		size_t len;
		unsigned seed = 3;

		body = read_file(DATA "vllm-stream.sse", &len, NULL);
		T_EQ_INT(stream_run(body, len, "m", 5, &seed, &k, &s, &c2), 1);
		T_ASSERT(s.stopped && !s.done && c2 == NULL);
		T_EQ_INT(k.calls, 3);
		T_ASSERT(!k.after_end);
		T_ASSERT(strcmp(k.text[THINK_REASONING], "Okay, the") == 0);
		remote_stream_release(&s);
		free(body);
	}
	T_ASSERT(cause == NULL);
}

/* One stream read as going on with last (remote_stream_continues). */
static void
continued(const char *text, const char *model, const struct chat_msg *last, struct sink *k)
{
	struct remote_stream s;
	char *cause = NULL;

	sink_init(k);
	remote_stream_init(&s, model, collect, k);
	remote_stream_continues(&s, last);
	T_EQ_INT(remote_stream_feed(&s, text, strlen(text), &cause), 0);
	T_EQ_INT(remote_stream_finish(&s, &cause), 0);
	T_ASSERT(cause == NULL);
	free(cause);
	remote_stream_release(&s);
}

static void
test_stream_continue(void)
{
	const struct chat_msg answer = { .role = "assistant",
					 .content = "The sum",
					 .reasoning = "x" };
	const struct chat_msg thought = { .role = "assistant",
					  .content = "",
					  .reasoning = "Let me" };
	struct sink k;

	/* An answer goes on as the answer, newlines kept, whatever a parser labels it... */
	continued(CHUNK("{\"reasoning_content\":\"\\n is\"}") CHUNK("{\"content\":\" 4.\"}") FINISH,
		  "x-thinking", &answer, &k);
	T_ASSERT(strcmp(k.text[THINK_ANSWER], "\n is 4.") == 0 && k.n[THINK_REASONING] == 0);
	/* ... and content with no parser is the answer, for a Thinking model id too. */
	continued(CHUNK("{\"content\":\"\\n\\nis 4.\"}") FINISH, "a-Thinking-model", &answer, &k);
	T_ASSERT(strcmp(k.text[THINK_ANSWER], "\n\nis 4.") == 0 && k.n[THINK_REASONING] == 0);
	/* Inside the thought: content with no parser is reasoning until </think>, any model id. */
	continued(CHUNK("{\"content\":\"\\n more</think>4\"}") FINISH, "plain", &thought, &k);
	T_ASSERT(strcmp(k.text[THINK_REASONING], "\n more") == 0);
	T_ASSERT(strcmp(k.text[THINK_ANSWER], "4") == 0);
	/* ... and with a parser, its fields as they say. */
	continued(CHUNK("{\"reasoning_content\":\" more\"}") CHUNK("{\"content\":\"4\"}") FINISH,
		  "plain", &thought, &k);
	T_ASSERT(strcmp(k.text[THINK_REASONING], " more") == 0);
	T_ASSERT(strcmp(k.text[THINK_ANSWER], "4") == 0);
}

static void
test_error_text(void)
{
	static const struct {
		const char *body, *text;
	} cases[] = {
		{ "{\"error\":{\"message\":\"Incorrect API key provided.\",\"type\":\"x\"}}",
		  "Incorrect API key provided." },
		{ "{\"error\":\"Unauthorized\"}", "Unauthorized" },
		{ "{\"object\":\"error\",\"message\":\"vLLM's own\",\"code\":400}", "vLLM's own" },
		{ "{\"detail\":\"Not Found\"}", "Not Found" },
		{ "404 page not found\nsecond line", "404 page not found" },
		{ "\r\nafter a blank", "(no message)" },
		{ "", "(no message)" },
		{ "<html>\x1b[2J</html>", "<html>?[2J</html>" },
	};
	char buf[64], big[3000];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		T_ASSERT(strcmp(remote_error_text(cases[i].body, strlen(cases[i].body), buf,
						  sizeof(buf)),
				cases[i].text) == 0);
	memset(big, 'z', sizeof(big));
	remote_error_text(big, sizeof(big), buf, sizeof(buf));
	T_ASSERT(strlen(buf) < sizeof(buf) && strstr(buf, "...") != NULL);
}

/* ---- Against the replay server ---- */

struct server {
	pid_t pid;
	int port;
};

/* Start tests/replay-server.py with args (NULL-terminated); its port, or -1. */
static int
server_start(struct server *sv, const char *const *args)
{
	const char *argv[40] = { "python3", "tests/replay-server.py" };
	char line[32] = "";
	struct pollfd pfd;
	size_t n = 0, a = 2;
	int fd[2];

	while (*args != NULL && a + 1 < ARRAY_LEN(argv))
		argv[a++] = *args++;
	sv->pid = -1;
	sv->port = -1;
	if (pipe(fd) != 0)
		return -1;
	if ((sv->pid = fork()) == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd[1]);
	pfd = (struct pollfd){ .fd = fd[0], .events = POLLIN };
	while (n + 1 < sizeof(line) && strchr(line, '\n') == NULL && poll(&pfd, 1, 10000) == 1) {
		ssize_t k = read(fd[0], line + n, sizeof(line) - 1 - n);

		if (k <= 0)
			break;
		line[n += (size_t)k] = '\0';
	}
	close(fd[0]);
	sv->port = atoi(line) > 0 ? atoi(line) : -1;
	if (sv->port < 0)
		fprintf(stderr, "test-remote: python3 tests/replay-server.py did not start\n");
	return sv->port;
}

static void
server_stop(struct server *sv)
{
	if (sv->pid > 0) {
		kill(sv->pid, SIGTERM);
		waitpid(sv->pid, NULL, 0);
	}
	sv->pid = -1;
}

static char tmpdir[] = "/tmp/qnext-test-remote-XXXXXX";
static char rec_path[256], log_path[256];

static json_t *
last_request(void)
{
	return json_load_file(rec_path, 0, NULL);
}

static char *
url_of(const struct server *sv, const char *tail)
{
	return xasprintf("http://127.0.0.1:%d%s", sv->port, tail);
}

/*
 * A replay server with args and a remote opened on it; NULL (the failure
 * asserted, the server stopped) when either fails.  replay_close undoes both.
 */
static struct remote *
replay_open(struct server *sv, const char *const *args)
{
	struct remote_opts o = { 0 };
	struct remote *r;
	char *cause = NULL;

	if (server_start(sv, args) < 0) {
		T_ASSERT(!"the replay server starts");
		server_stop(sv);
		return NULL;
	}
	o.url = url_of(sv, "");
	r = remote_open(&o, &cause);
	T_ASSERT(r != NULL);
	if (r == NULL)
		server_stop(sv);
	free((char *)o.url);
	free(cause);
	return r;
}

static void
replay_close(struct server *sv, struct remote *r)
{
	remote_close(r);
	server_stop(sv);
}

struct poller {
	int calls;
	int stop_at_n;    /* > 0: true once remote_gen_progress counts this many */
	double stop_at_s; /* > 0: true this long after t0 */
	double t0, t_true;
	struct remote *r;
	const char *state; /* remote_net_stats' state when poll said stop */
	struct sink k;     /* the callback's (the same arg) */
};

static bool
poll_cb(void *arg)
{
	struct poller *p = arg;
	struct remote_stats ns;
	double t;
	int n;

	p->calls++;
	remote_gen_progress(p->r, &n, &t);
	if ((p->stop_at_n > 0 && n >= p->stop_at_n) ||
	    (p->stop_at_s > 0 && now_sec() - p->t0 >= p->stop_at_s)) {
		if (p->t_true == 0) {
			p->t_true = now_sec();
			remote_net_stats(p->r, &ns);
			p->state = ns.state;
		}
		return true;
	}
	return false;
}

static bool
poll_collect(void *arg, enum think_part part, const char *text, size_t len)
{
	struct poller *p = arg;

	return collect(&p->k, part, text, len);
}

static const struct chat_msg conv[] = {
	{ .role = "system", .content = "You are terse." },
	{ .role = "user", .content = "What is 2+2?" },
	{ .role = "assistant", .content = "4.", .reasoning = "secret thoughts" },
	{ .role = "user", .content = "What is 2+2, again?" },
};

static struct gen_params
params(void)
{
	struct gen_params gp = { .max_tokens = 512, .think_budget = 300, .poll = poll_cb };

	gp.sp = (struct sampler_params){ .temperature = 0.6f,
					 .top_k = 20,
					 .top_p = 0.95f,
					 .min_p = 0,
					 .presence_penalty = 1.5f,
					 .repetition_penalty = 1.0f,
					 .seed = 42 };
	return gp;
}

/* One reply on r with gp; its result and the texts in p->k. */
static int
reply(struct remote *r, const struct gen_params *gp, struct poller *p, struct gen_stats *st,
      char **cause)
{
	int stop_at = p->k.stop_at;

	sink_init(&p->k);
	p->k.stop_at = stop_at;
	p->k.r = r;
	p->r = r;
	p->t0 = now_sec();
	return remote_reply(r, conv, ARRAY_LEN(conv), gp, poll_collect, p, st, cause);
}

static bool
str_is(const json_t *o, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL && strcmp(v, want) == 0;
}

static double
num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* The first request's body: what qnext sends. */
static void
check_request(const char *model, int *peer_port)
{
	json_t *rec = last_request(), *b = json_object_get(rec, "body");
	json_t *msgs = json_object_get(b, "messages"), *a = json_array_get(msgs, 2);

	T_ASSERT(rec != NULL);
	T_ASSERT(str_is(b, "model", model));
	T_EQ_INT(json_array_size(msgs), 4);
	T_ASSERT(str_is(a, "role", "assistant"));
	T_ASSERT(str_is(a, "content", "4."));
	T_EQ_INT(json_object_size(a), 2); /* role and content: no reasoning */
	T_ASSERT(json_is_true(json_object_get(b, "stream")));
	T_ASSERT(json_is_true(
		json_object_get(json_object_get(b, "stream_options"), "include_usage")));
	T_NEAR(num(b, "temperature"), 0.6, 1e-6);
	T_NEAR(num(b, "top_p"), 0.95, 1e-6);
	T_EQ_INT(json_integer_value(json_object_get(b, "top_k")), 20);
	T_NEAR(num(b, "min_p"), 0, 0);
	T_NEAR(num(b, "presence_penalty"), 1.5, 1e-6);
	T_ASSERT(json_object_get(b, "repetition_penalty") == NULL);
	T_EQ_INT(json_integer_value(json_object_get(b, "seed")), 42);
	T_EQ_INT(json_integer_value(json_object_get(b, "max_tokens")), 512);
	T_EQ_INT(json_integer_value(json_object_get(b, "thinking_token_budget")), 300);
	T_ASSERT(json_object_get(b, "continue_final_message") == NULL);
	T_ASSERT(json_object_get(b, "add_generation_prompt") == NULL);
	T_ASSERT(json_is_null(json_object_get(rec, "authorization")));
	*peer_port = (int)json_integer_value(json_object_get(rec, "peer_port"));
	json_decref(rec);
}

/* The second request: the other branches of the sampling fields. */
static void
check_request_other(int peer_port)
{
	json_t *rec = last_request(), *b = json_object_get(rec, "body");

	T_NEAR(num(b, "temperature"), 0, 0);
	T_EQ_INT(json_integer_value(json_object_get(b, "top_k")), -1);
	T_NEAR(num(b, "repetition_penalty"), 1.1, 1e-6);
	T_ASSERT(json_object_get(b, "seed") == NULL);
	T_ASSERT(json_object_get(b, "max_tokens") == NULL);
	T_ASSERT(json_object_get(b, "thinking_token_budget") == NULL);
	/* The same connection as the first reply's: the handle keeps it. */
	T_EQ_INT(json_integer_value(json_object_get(rec, "peer_port")), peer_port);
	json_decref(rec);
}

static void
check_texts(const struct sink *k, const struct expect *x)
{
	T_ASSERT(strcmp(k->text[THINK_REASONING], x->reasoning) == 0);
	T_ASSERT(strcmp(k->text[THINK_ANSWER], x->answer) == 0);
	T_ASSERT(k->progress_ok);
}

/*
 * Going on with the answer conv[2]: vLLM's continue_final_message, the message's thought sent
 * with it, and the reply (this stream labels most of it reasoning) taken as the answer's, its
 * content's opening newlines kept.
 */
static void
test_reply_continue(struct remote *r, struct poller *p)
{
	struct gen_params gp = params();
	struct gen_stats st;
	char *cause = NULL, *want = xasprintf("%s\n\n%s", R_FULL, A_FULL);
	json_t *rec, *b, *last;

	gp.continue_last = true;
	sink_init(&p->k);
	p->k.r = p->r = r;
	p->t0 = now_sec();
	T_EQ_INT(remote_reply(r, conv, 3, &gp, poll_collect, p, &st, &cause), 0);
	T_ASSERT(cause == NULL);
	T_EQ_INT(p->k.n[THINK_REASONING], 0);
	T_ASSERT(strcmp(p->k.text[THINK_ANSWER], want) == 0);
	if (strcmp(p->k.text[THINK_ANSWER], want) != 0)
		fprintf(stderr, "  continued: \"%s\"\n", p->k.text[THINK_ANSWER]);
	rec = last_request();
	b = json_object_get(rec, "body");
	last = json_array_get(json_object_get(b, "messages"), 2);
	T_EQ_INT(json_array_size(json_object_get(b, "messages")), 3);
	T_ASSERT(json_is_true(json_object_get(b, "continue_final_message")));
	T_ASSERT(json_is_false(json_object_get(b, "add_generation_prompt")));
	T_ASSERT(str_is(last, "content", "4.") &&
		 str_is(last, "reasoning_content", "secret thoughts"));
	json_decref(rec);
	free(want);
}

/* The first model, its reply, the request, a second reply on the same connection. */
static void
test_reply_vllm(const struct server *sv)
{
	char *url = url_of(sv, "/v1/"), *base = url_of(sv, ""), *cause = NULL, *d;
	struct remote_opts o = { .url = url };
	struct gen_params gp = params();
	struct poller p = { 0 };
	struct remote_stats ns;
	struct gen_stats st;
	struct remote *r = remote_open(&o, &cause);
	size_t len = 0;
	int port = -1;

	T_ASSERT(r != NULL && cause == NULL);
	if (r == NULL) {
		fprintf(stderr, "%s\n", cause);
		free(cause);
		free(url);
		free(base);
		return;
	}
	T_ASSERT(strcmp(remote_model(r), streams[0].model) == 0);
	T_ASSERT(strcmp(remote_base(r), base) == 0);
	T_EQ_INT(remote_n_ctx(r), 262144);
	d = remote_describe(r);
	T_STR_CONTAINS(d, "Qwen/Qwen3-Next-80B-A3B-Thinking at http://127.0.0.1:");
	T_STR_CONTAINS(d, " (remote)");
	free(d);
	remote_net_stats(r, &ns);
	T_ASSERT(strcmp(ns.state, "idle") == 0);

	T_EQ_INT(reply(r, &gp, &p, &st, &cause), 0);
	check_texts(&p.k, &streams[0]);
	T_ASSERT(p.k.state != NULL && strcmp(p.k.state, "streaming") == 0);
	T_ASSERT(p.calls > 0);
	T_EQ_INT(st.prompt_tokens, 17);
	T_EQ_INT(st.gen_tokens, 35);
	T_EQ_INT(st.reused_tokens, 16);
	T_EQ_INT(st.stop, GEN_STOP_EOS);
	T_ASSERT(st.ttft_s > 0 && st.ttft_s < 5 && st.decode_s >= 0);
	T_NEAR(st.prefill_s, st.ttft_s, 0);
	remote_net_stats(r, &ns);
	T_ASSERT(strcmp(ns.state, "done") == 0);
	free(read_file(DATA "vllm-stream.sse", &len, NULL));
	T_EQ_INT(ns.bytes_in, len);
	T_NEAR(ns.ttft_s, st.ttft_s, 1e-9);
	check_request(streams[0].model, &port);

	gp.sp.temperature = 0;
	gp.sp.top_k = 0;
	gp.sp.repetition_penalty = 1.1f;
	gp.sp.seed = SAMPLER_SEED_RANDOM;
	gp.max_tokens = 0;
	gp.think_budget = 0;
	T_EQ_INT(reply(r, &gp, &p, &st, &cause), 0);
	check_texts(&p.k, &streams[0]);
	check_request_other(port);

	/* The callback says stop: the connection goes, and the next reply opens another. */
	p.k.stop_at = 2;
	T_EQ_INT(reply(r, &gp, &p, &st, &cause), 0);
	T_EQ_INT(st.stop, GEN_STOP_USER);
	T_EQ_INT(p.k.calls, 2);
	T_ASSERT(!p.k.after_end);
	p.k.stop_at = 0;
	T_EQ_INT(reply(r, &gp, &p, &st, &cause), 0);
	check_texts(&p.k, &streams[0]);
	T_EQ_INT(st.stop, GEN_STOP_EOS);
	T_ASSERT(cause == NULL);
	test_reply_continue(r, &p);
	remote_close(r);
	free(url);
	free(base);
}

/* Each other recorded stream through a real connection, picked by model id. */
static void
test_reply_models(const struct server *sv)
{
	char *url = url_of(sv, "");
	struct gen_params gp = params();
	struct poller p = { 0 };
	struct gen_stats st;

	for (size_t i = 1; i < ARRAY_LEN(streams); i++) {
		const struct expect *x = &streams[i];
		struct remote_opts o = { .url = url, .model = x->model };
		char *cause = NULL;
		struct remote *r = remote_open(&o, &cause);

		T_ASSERT(r != NULL);
		if (r == NULL) {
			fprintf(stderr, "%s\n", cause);
			free(cause);
			continue;
		}
		T_EQ_INT(remote_n_ctx(r), i == 2 ? 262144 : 0);
		T_EQ_INT(reply(r, &gp, &p, &st, &cause), 0);
		check_texts(&p.k, x);
		T_EQ_INT(st.prompt_tokens, x->prompt);
		T_EQ_INT(st.gen_tokens, x->completion);
		T_EQ_INT(st.reused_tokens, MAX(x->cached, 0));
		T_EQ_INT(st.stop, x->length ? GEN_STOP_LENGTH : GEN_STOP_EOS);
		T_ASSERT(cause == NULL);
		remote_close(r);
	}
	free(url);
}

/* remote_open's refusals, each one line naming the URL. */
static void
test_open_errors(const struct server *sv)
{
	struct {
		char *url;
		const char *model, *cause;
	} cases[] = {
		{ url_of(sv, ""), "nope",
		  "/v1/models: the server lists no model nope (it has: "
		  "Qwen/Qwen3-Next-80B-A3B-Thinking, Qwen3-Next-80B-A3B-Thinking-Q4_K_M.gguf, " },
		{ url_of(sv, "/nope"), NULL, "/nope/v1/models: HTTP 404: 404 page not found" },
		{ xstrdup("ftp://127.0.0.1/"), NULL,
		  "ftp://127.0.0.1/: not an http:// or https:// URL" },
		{ xstrdup("http://"), NULL, "http://: no host" },
		{ xstrdup("http://a b"), NULL, "http://a b: not a URL" },
	};
	struct remote_opts o;
	struct remote *r;
	char *cause = NULL, *base = url_of(sv, "");

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		o = (struct remote_opts){ .url = cases[i].url, .model = cases[i].model };
		T_ASSERT(remote_open(&o, &cause) == NULL);
		T_STR_CONTAINS(cause, cases[i].cause);
		T_ASSERT(cause != NULL && strchr(cause, '\n') == NULL);
		free(cause);
		cause = NULL;
		free(cases[i].url);
	}
	/* No scheme: http:// is understood. */
	o = (struct remote_opts){ .url = base + strlen("http://") };
	r = remote_open(&o, &cause);
	T_ASSERT(r != NULL && strcmp(remote_base(r), base) == 0);
	remote_close(r);
	free(base);
}

/* A server that wants a key: the 401's message, then the key in the header. */
static void
test_key(void)
{
	const char *args[] = { "--model",  "m=" DATA "vllm-stream.sse",
			       "--key",    "sekrit",
			       "--record", rec_path,
			       NULL };
	struct server sv;
	struct remote_opts o = { 0 };
	struct gen_params gp = params();
	struct poller p = { 0 };
	struct gen_stats st;
	struct remote *r;
	char *cause = NULL, *want, *url;
	json_t *rec;

	if (server_start(&sv, args) < 0) {
		T_ASSERT(!"the replay server starts");
		server_stop(&sv);
		return;
	}
	url = url_of(&sv, "");
	want = xasprintf("%s/v1/models: HTTP 401: Incorrect API key provided.", url);
	o.url = url;
	T_ASSERT(remote_open(&o, &cause) == NULL);
	T_ASSERT(cause != NULL && strcmp(cause, want) == 0);
	free(cause);
	cause = NULL;
	o.api_key = "wrong";
	T_ASSERT(remote_open(&o, &cause) == NULL);
	T_ASSERT(cause != NULL && strcmp(cause, want) == 0);
	free(cause);
	cause = NULL;
	o.api_key = "bad\r\nX-Injected: 1";
	T_ASSERT(remote_open(&o, &cause) == NULL);
	T_STR_CONTAINS(cause, "API key");
	free(cause);
	cause = NULL;
	o.api_key = "sekrit";
	r = remote_open(&o, &cause);
	T_ASSERT(r != NULL);
	if (r != NULL) {
		T_EQ_INT(reply(r, &gp, &p, &st, &cause), 0);
		T_ASSERT(strcmp(p.k.text[THINK_ANSWER], A_FULL) == 0);
		rec = last_request();
		T_ASSERT(str_is(rec, "authorization", "Bearer sekrit"));
		json_decref(rec);
	}
	remote_close(r);
	free(cause);
	free(want);
	free(url);
	server_stop(&sv);
}

/* An overloaded server: 503 and its message; the stream's state is "failed". */
static void
test_503(void)
{
	/* Ten models of long names: a wrong one names eight, each cut short. */
	char names[10][128];
	const char *args[24] = { "--chat-status", "503", "--model", "m=" DATA "vllm-stream.sse" };
	struct server sv;
	struct gen_params gp = params();
	struct poller p = { 0 };
	struct remote_stats ns;
	struct gen_stats st;
	struct remote_opts o = { 0 };
	struct remote *r;
	char *cause = NULL, *want, *url;

	for (int i = 0; i < 9; i++) {
		snprintf(names[i], sizeof(names[i]),
			 "%d-org/"
			 "a-model-name-of-many-many-many-characters-and-then-some-Q4_K_M.gguf=" DATA
			 "vllm-stream.sse",
			 i);
		args[4 + 2 * i] = "--model";
		args[5 + 2 * i] = names[i];
	}
	if (server_start(&sv, args) < 0) {
		T_ASSERT(!"the replay server starts");
		server_stop(&sv);
		return;
	}
	url = url_of(&sv, "");
	o = (struct remote_opts){ .url = url, .model = "nope" };
	T_ASSERT(remote_open(&o, &cause) == NULL);
	T_STR_CONTAINS(cause, "(it has: m, 0-org/a-model-name-of-many-many-many-characters-and-"
			      "then-som..., 1-org/");
	T_STR_CONTAINS(cause, ", 6-org/a-model-name-of-many-many-many-characters-and-then-som..., "
			      "...)");
	T_ASSERT(cause != NULL && strstr(cause, "7-org") == NULL);
	free(cause);
	cause = NULL;
	o.model = NULL;
	want = xasprintf("%s/v1/chat/completions: HTTP 503: The server is overloaded, try again "
			 "later.",
			 url);
	r = remote_open(&o, &cause);
	T_ASSERT(r != NULL && strcmp(remote_model(r), "m") == 0);
	T_ASSERT(r != NULL);
	if (r != NULL) {
		T_EQ_INT(reply(r, &gp, &p, &st, &cause), -1);
		T_ASSERT(cause != NULL && strcmp(cause, want) == 0);
		T_EQ_INT(p.k.calls, 0);
		remote_net_stats(r, &ns);
		T_ASSERT(strcmp(ns.state, "failed") == 0);
	}
	remote_close(r);
	free(cause);
	free(want);
	free(url);
	server_stop(&sv);
}

/* The server's log: how many events it sent before the client went. */
static int
events_sent_before_disconnect(double wait_s)
{
	double end = now_sec() + wait_s;
	int sent = -1;

	while (sent < 0 && now_sec() < end) {
		char *text = read_file(log_path, NULL, NULL), *hit;

		if (text != NULL && (hit = strstr(text, "disconnected")) != NULL)
			sent = atoi(strstr(text, "sent ") + 5);
		free(text);
		if (sent < 0)
			usleep(20000);
	}
	return sent;
}

/* A stream of 34 events 0.1 s apart: poll says stop after 3 chunks with text. */
static void
test_stop_mid_stream(void)
{
	const char *args[] = {
		"--model", "m=" DATA "vllm-stream.sse", "--delay", "0.1", "--log", log_path, NULL
	};
	struct server sv;
	struct gen_params gp = params();
	struct poller p = { .stop_at_n = 3 };
	struct remote_stats ns;
	struct gen_stats st;
	struct remote *r = replay_open(&sv, args);
	char *cause = NULL;
	double t_end;
	int sent;

	if (r != NULL) {
		T_EQ_INT(reply(r, &gp, &p, &st, &cause), 0);
		t_end = now_sec();
		T_EQ_INT(st.stop, GEN_STOP_USER);
		T_ASSERT(p.t_true > 0);
		printf("test-remote: stop mid-stream returned %.0f ms after poll said so, "
		       "%.2f s into a 3.3 s stream\n",
		       (t_end - p.t_true) * 1e3, t_end - p.t0);
		T_ASSERT(t_end - p.t_true < 0.25);
		T_ASSERT(t_end - p.t0 < 1.5);
		T_ASSERT(strcmp(p.k.text[THINK_REASONING], "Okay, the") == 0);
		T_EQ_INT(st.gen_tokens, 3);
		remote_net_stats(r, &ns);
		T_ASSERT(strcmp(ns.state, "done") == 0);
		T_ASSERT(ns.tok_s > 2 && ns.tok_s < 20); /* 10 a second, as the server sends */
		/* The server saw the connection close and stopped sending. */
		sent = events_sent_before_disconnect(2.0);
		printf("test-remote: the server stopped after %d of 34 events\n", sent);
		T_ASSERT(sent > 0 && sent < 10);
		replay_close(&sv, r);
	}
	free(cause);
}

/* A server that sends nothing for 5 s (a long prefill): poll's stop is seen all the same. */
static void
test_stop_before_first(void)
{
	const char *args[] = { "--model", "m=" DATA "vllm-stream.sse", "--first-delay", "5", NULL };
	struct server sv;
	struct gen_params gp = params();
	struct poller p = { .stop_at_s = 0.3 };
	struct gen_stats st;
	struct remote *r = replay_open(&sv, args);
	char *cause = NULL;
	double t_end;

	if (r != NULL) {
		T_EQ_INT(reply(r, &gp, &p, &st, &cause), 0);
		t_end = now_sec();
		/* From when poll would first say stop, not from when it was asked. */
		printf("test-remote: stop before the first byte returned %.0f ms after the stop "
		       "was asked for\n",
		       (t_end - p.t0 - p.stop_at_s) * 1e3);
		T_EQ_INT(st.stop, GEN_STOP_USER);
		T_ASSERT(p.state != NULL && strcmp(p.state, "waiting for first token") == 0);
		T_ASSERT(t_end - p.t0 - p.stop_at_s < 0.25);
		T_EQ_INT(p.k.calls, 0);
		T_EQ_INT(st.gen_tokens, 0);
		T_NEAR(st.ttft_s, 0, 0);
		replay_close(&sv, r);
	}
	free(cause);
}

/* The main server: every recorded stream, then its port closed for the refused connection. */
static void
test_server(void)
{
	const char *args[] = {
		"--model",  "Qwen/Qwen3-Next-80B-A3B-Thinking=" DATA "vllm-stream.sse",
		"--model",  "Qwen3-Next-80B-A3B-Thinking-Q4_K_M.gguf=" DATA "llama-stream.sse",
		"--model",  "vllm-new=" DATA "vllm-reasoning-field.sse",
		"--model",  "qwen3-next-thinking=" DATA "noparser-stream.sse",
		"--model",  "qwen3-next-80b-q4.gguf=" DATA "think-tags-stream.sse",
		"--ctx",    "Qwen/Qwen3-Next-80B-A3B-Thinking=vllm:262144",
		"--ctx",    "Qwen3-Next-80B-A3B-Thinking-Q4_K_M.gguf=llama:262144",
		"--record", rec_path,
		NULL
	};
	struct server sv;
	struct remote_opts o = { 0 };
	struct gen_params gp = params();
	struct poller p = { 0 };
	struct gen_stats st;
	struct remote *r;
	char *cause = NULL, *url, *want;

	if (server_start(&sv, args) < 0) {
		T_ASSERT(!"the replay server starts");
		server_stop(&sv);
		return;
	}
	test_reply_vllm(&sv);
	test_reply_models(&sv);
	test_open_errors(&sv);
	url = url_of(&sv, "");
	o.url = url;
	r = remote_open(&o, &cause);
	server_stop(&sv);
	/* The server is gone: a reply on the kept connection fails, naming the URL. */
	want = xasprintf("%s/v1/chat/completions: ", url);
	T_ASSERT(r != NULL);
	if (r != NULL) {
		T_EQ_INT(reply(r, &gp, &p, &st, &cause), -1);
		T_ASSERT(cause != NULL && strncmp(cause, want, strlen(want)) == 0);
		printf("test-remote: with the server gone: %s\n", cause != NULL ? cause : "");
		free(cause);
		cause = NULL;
	}
	remote_close(r);
	free(want);
	/* And nothing listens there any more. */
	want = xasprintf("%s/v1/models: ", url);
	T_ASSERT(remote_open(&o, &cause) == NULL);
	T_ASSERT(cause != NULL && strncmp(cause, want, strlen(want)) == 0);
	T_STR_CONTAINS(cause, "onnect");
	printf("test-remote: refused: %s\n", cause != NULL ? cause : "");
	free(cause);
	free(want);
	free(url);
}

int
main(void)
{
	double t0 = now_sec();

	signal(SIGPIPE, SIG_IGN);
	setenv("no_proxy", "*", 1); /* the replay server is on 127.0.0.1, whatever the proxy */
	test_sse_lines();
	test_sse_bounds();
	for (size_t i = 0; i < ARRAY_LEN(streams); i++)
		test_recorded(&streams[i]);
	test_bad_streams();
	test_stream_cases();
	test_stream_continue();
	test_error_text();
	if (mkdtemp(tmpdir) == NULL) {
		T_ASSERT(!"mkdtemp");
		return t_done("test-remote");
	}
	snprintf(rec_path, sizeof(rec_path), "%s/request.json", tmpdir);
	snprintf(log_path, sizeof(log_path), "%s/server.log", tmpdir);
	test_server();
	test_key();
	test_503();
	test_stop_mid_stream();
	test_stop_before_first();
	unlink(rec_path);
	unlink(log_path);
	rmdir(tmpdir);
	printf("test-remote: %.1f s\n", now_sec() - t0);
	return t_done("test-remote");
}
