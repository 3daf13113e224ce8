/*
 * fuzz-remote.c - libFuzzer harness for what qnext reads from a chat
 * server: the server-sent-events reader and the chunk handling
 * (remote_stream_*, engine/remote.c), and remote_error_text.
 *
 * Input: byte 0 picks the model id (bit 0: a Thinking one) and the size of
 * the pieces the body is fed in (bits 1-7: 1 to 128 bytes); byte 1 is the
 * callback call that says stop (0: none); the rest is the answer's body.
 * The body is read twice, whole and in pieces, and the two readings must
 * agree: the same result, the same reasoning and answer text, the same
 * figures; a failure must say why, a success must not.  A third reading
 * stops at the chosen call and must get no call after it.  Built by `make
 * fuzz`; single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	char *text[2];
	size_t n[2];
	int calls, stop_at;
	bool stopped;
};

static bool
collect(void *arg, enum think_part part, const char *text, size_t len)
{
	struct sink *k = arg;

	if (k->stopped || len == 0 || (part != THINK_REASONING && part != THINK_ANSWER))
		abort(); /* no call after a stop, no empty text, no third part */
	k->text[part] = xrealloc(k->text[part], k->n[part] + len + 1);
	memcpy(k->text[part] + k->n[part], text, len);
	k->n[part] += len;
	k->calls++;
	if (k->stop_at > 0 && k->calls == k->stop_at)
		k->stopped = true;
	return !k->stopped;
}

/* Read body in pieces of step bytes (0: whole); the result, its cause in *cause. */
static int
run(const char *body, size_t len, const char *model, size_t step, struct sink *k,
    struct remote_stream *s, char **cause)
{
	int rc = 0;

	remote_stream_init(s, model, collect, k);
	for (size_t at = 0; at < len && rc == 0;) {
		size_t n = step == 0 ? len - at : MIN(step, len - at);

		rc = remote_stream_feed(s, body + at, n, cause);
		at += n;
	}
	if (rc >= 0 && remote_stream_finish(s, cause) != 0)
		rc = -1;
	if ((rc < 0) != (*cause != NULL))
		abort(); /* a failure says why; a success says nothing */
	return rc;
}

static bool
same_text(const struct sink *a, const struct sink *b, int part)
{
	return a->n[part] == b->n[part] &&
	       (a->n[part] == 0 || memcmp(a->text[part], b->text[part], a->n[part]) == 0);
}

static bool
same_figures(const struct remote_stream *a, const struct remote_stream *b)
{
	return a->prompt_tokens == b->prompt_tokens &&
	       a->completion_tokens == b->completion_tokens &&
	       a->cached_tokens == b->cached_tokens && a->text_chunks == b->text_chunks &&
	       a->finished == b->finished && a->length == b->length &&
	       a->saw_reasoning == b->saw_reasoning && a->done == b->done;
}

static void
sink_free(struct sink *k)
{
	free(k->text[0]);
	free(k->text[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sink whole = { 0 }, split = { 0 }, stop = { 0 };
	struct remote_stream s1, s2, s3;
	char *c1 = NULL, *c2 = NULL, *c3 = NULL, buf[64];
	const char *model, *body = (const char *)data + 2;
	size_t len, step;
	int r1, r2;

	if (size < 2)
		return 0;
	model = data[0] & 1 ? "Qwen/Qwen3-Next-80B-A3B-Thinking" : "plain-model";
	step = 1 + (data[0] >> 1);
	len = size - 2;
	r1 = run(body, len, model, 0, &whole, &s1, &c1);
	r2 = run(body, len, model, step, &split, &s2, &c2);
	if (r1 != r2 || !same_text(&whole, &split, 0) || !same_text(&whole, &split, 1) ||
	    !same_figures(&s1, &s2))
		abort(); /* the split changed the reading */
	stop.stop_at = data[1];
	run(body, len, model, step, &stop, &s3, &c3);
	remote_error_text(body, len, buf, sizeof(buf));
	if (strlen(buf) >= sizeof(buf))
		abort();
	remote_stream_release(&s1);
	remote_stream_release(&s2);
	remote_stream_release(&s3);
	sink_free(&whole);
	sink_free(&split);
	sink_free(&stop);
	free(c1);
	free(c2);
	free(c3);
	return 0;
}
