/*
 * test-think.c - the reasoning/answer splitter fed whole tokens, single
 * bytes and awkward splits of the tags.
 */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "think.h"

struct sink {
	char part[2][256];
	size_t n[2];
	int calls;
};

static void
collect(void *arg, enum think_part part, const char *text, size_t len)
{
	struct sink *s = arg;

	memcpy(s->part[part] + s->n[part], text, len);
	s->n[part] += len;
	s->part[part][s->n[part]] = '\0';
	s->calls++;
}

/* Feed text in pieces of `step` bytes (0 = whole), no token ids. */
static void
run_text(const char *text, size_t step, struct sink *s)
{
	struct think_split t;
	size_t n = strlen(text);

	memset(s, 0, sizeof(*s));
	think_init(&t, -1, -1, true);
	for (size_t at = 0; at < n;) {
		size_t k = step == 0 ? n : (n - at < step ? n - at : step);

		think_feed(&t, -1, text + at, k, collect, s);
		at += k;
	}
	think_flush(&t, collect, s);
}

static void
check_text(const char *text, const char *reasoning, const char *answer)
{
	struct sink s;

	for (size_t step = 0; step <= 9; step++) {
		run_text(text, step, &s);
		T_ASSERT(strcmp(s.part[THINK_REASONING], reasoning) == 0);
		T_ASSERT(strcmp(s.part[THINK_ANSWER], answer) == 0);
	}
}

int
main(void)
{
	struct think_split t;
	struct sink s;

	check_text("Let me think.</think>\n\nThe answer is 4.", "Let me think.",
		   "The answer is 4.");
	check_text("<think>\nhmm</think>\n\nok", "\nhmm", "ok");
	check_text("a </b> and </thin k> c</think>x</think>y", "a </b> and </thin k> c",
		   "x</think>y");
	check_text("no end tag <", "no end tag <", "");
	check_text("</think>only answer", "", "only answer");

	/* By token id: the tag token itself is never shown. */
	memset(&s, 0, sizeof(s));
	think_init(&t, 151667, 151668, true);
	think_feed(&t, 151667, "<think>", 7, collect, &s);
	think_feed(&t, 100, "I ", 2, collect, &s);
	think_feed(&t, 101, "see", 3, collect, &s);
	think_feed(&t, 151668, "</think>", 8, collect, &s);
	think_feed(&t, 271, "\n\n", 2, collect, &s);
	think_feed(&t, 102, "Yes", 3, collect, &s);
	think_flush(&t, collect, &s);
	T_ASSERT(strcmp(s.part[THINK_REASONING], "I see") == 0);
	T_ASSERT(strcmp(s.part[THINK_ANSWER], "Yes") == 0);

	/* A non-thinking start goes straight to the answer. */
	memset(&s, 0, sizeof(s));
	think_init(&t, -1, 151668, false);
	think_feed(&t, 5, "plain", 5, collect, &s);
	T_ASSERT(strcmp(s.part[THINK_ANSWER], "plain") == 0);
	T_EQ_INT(s.n[THINK_REASONING], 0);
	return t_done("test-think");
}
