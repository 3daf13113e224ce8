/*
 * think.h - split a thinking model's streamed output into reasoning and
 * answer.
 *
 * The Thinking template's generation prompt ends inside the thought
 * (`<think>\n`), so output is reasoning until `</think>`, then the answer.
 * The tag is matched by token id when the tokenizer has one, and otherwise
 * (or when a model spells it out of several tokens) by text, even when it
 * arrives split across tokens or bytes.  A stray leading `<think>` is
 * dropped, and newlines right after `</think>` are not part of the answer
 * (the chat template strips them too).
 *
 * Thread affinity: one owner (the engine thread or the line-mode CLI).
 */
#ifndef QNEXT_THINK_H
#define QNEXT_THINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat-types.h" /* enum think_part */

/* Receives each piece of text and which part it belongs to. */
typedef void think_emit_fn(void *arg, enum think_part part, const char *text, size_t len);

struct think_split {
	int32_t end_id;   /* token id of "</think>", -1 when none */
	int32_t start_id; /* token id of "<think>", -1 when none */
	bool in_answer;
	bool at_start; /* nothing emitted in this part yet */
	char hold[16]; /* text that may be the beginning of a tag */
	size_t n_hold;
};

/* Start in the reasoning part (thinking == true) or directly in the answer. */
void think_init(struct think_split *t, int32_t start_id, int32_t end_id, bool thinking);

/* Feed one token's id (or -1 when unknown) and its decoded text. */
void think_feed(struct think_split *t, int32_t id, const char *text, size_t len,
		think_emit_fn *emit, void *arg);

/* Emit whatever is still held (end of generation). */
void think_flush(struct think_split *t, think_emit_fn *emit, void *arg);

#endif
