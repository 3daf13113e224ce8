/*
 * think.c - the streaming reasoning/answer splitter (see think.h).
 *
 * Text is held back only while it could still be the start of a tag, so at
 * most strlen("</think>") - 1 bytes wait for the next token.
 */
#include "think.h"

#include <string.h>

static const char END_TAG[] = "</think>";
static const char START_TAG[] = "<think>";

void
think_init(struct think_split *t, int32_t start_id, int32_t end_id, bool thinking)
{
	memset(t, 0, sizeof(*t));
	t->start_id = start_id;
	t->end_id = end_id;
	t->in_answer = !thinking;
	t->at_start = true;
}

/* Emit text into the current part, dropping the newlines that open an answer. */
static void
out(struct think_split *t, const char *s, size_t n, think_emit_fn *emit, void *arg)
{
	if (t->in_answer && t->at_start)
		while (n > 0 && *s == '\n')
			s++, n--;
	if (n == 0)
		return;
	t->at_start = false;
	emit(arg, t->in_answer ? THINK_ANSWER : THINK_REASONING, s, n);
}

static void
switch_to_answer(struct think_split *t)
{
	t->in_answer = true;
	t->at_start = true;
	t->n_hold = 0;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of tag. */
static size_t
partial_tag(const char *s, size_t n, const char *tag)
{
	size_t tl = strlen(tag);

	for (size_t k = tl - 1 < n ? tl - 1 : n; k > 0; k--)
		if (memcmp(s + n - k, tag, k) == 0)
			return k;
	return 0;
}

/* Process held + new text byte-wise for the tags while reasoning. */
static void
scan_text(struct think_split *t, const char *text, size_t len, think_emit_fn *emit, void *arg)
{
	while (len > 0 && !t->in_answer) {
		size_t take = sizeof(t->hold) - 1 - t->n_hold, k;
		char *hit;

		take = take < len ? take : len;
		memcpy(t->hold + t->n_hold, text, take);
		t->n_hold += take;
		t->hold[t->n_hold] = '\0';
		text += take, len -= take;
		if (t->at_start && t->n_hold >= strlen(START_TAG) &&
		    memcmp(t->hold, START_TAG, strlen(START_TAG)) == 0) {
			t->n_hold -= strlen(START_TAG);
			memmove(t->hold, t->hold + strlen(START_TAG), t->n_hold);
			t->hold[t->n_hold] = '\0';
		}
		if ((hit = strstr(t->hold, END_TAG)) != NULL) {
			size_t before = (size_t)(hit - t->hold), after;
			char rest[sizeof(t->hold)];

			after = t->n_hold - before - strlen(END_TAG);
			memcpy(rest, hit + strlen(END_TAG), after);
			out(t, t->hold, before, emit, arg);
			switch_to_answer(t);
			out(t, rest, after, emit, arg);
			break;
		}
		k = partial_tag(t->hold, t->n_hold, END_TAG);
		if (t->at_start && k == 0)
			k = partial_tag(t->hold, t->n_hold, START_TAG);
		out(t, t->hold, t->n_hold - k, emit, arg);
		memmove(t->hold, t->hold + t->n_hold - k, k);
		t->n_hold = k;
	}
	if (len > 0)
		out(t, text, len, emit, arg);
}

void
think_feed(struct think_split *t, int32_t id, const char *text, size_t len, think_emit_fn *emit,
	   void *arg)
{
	if (t->in_answer) {
		out(t, text, len, emit, arg);
		return;
	}
	if (id >= 0 && id == t->end_id) {
		out(t, t->hold, t->n_hold, emit, arg);
		switch_to_answer(t);
		return;
	}
	if (id >= 0 && id == t->start_id && t->at_start && t->n_hold == 0)
		return;
	scan_text(t, text, len, emit, arg);
}

void
think_flush(struct think_split *t, think_emit_fn *emit, void *arg)
{
	size_t n = t->n_hold;

	t->n_hold = 0;
	out(t, t->hold, n, emit, arg);
}
