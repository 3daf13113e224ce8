/*
 * queue.h - a thread-safe FIFO of struct msg with a wake-up fd.
 *
 * Two queues join the UI and the engine: ui->engine and engine->ui.  The
 * UI poll(2)s queue_fd() together with stdin and drains with queue_pop();
 * the engine blocks in queue_wait() and checks queue_pop() between tokens.
 * The fd is an eventfd written under the queue's lock, so many messages
 * coalesce into one wake-up.
 *
 * Any thread.
 */
#ifndef QNEXT_QUEUE_H
#define QNEXT_QUEUE_H

#include <stdbool.h>

#include "msg.h"

struct queue;

/* NULL + cause when the eventfd cannot be made. */
struct queue *queue_new(char **cause);

/* Free the queue and every message still in it.  Accepts NULL. */
void queue_free(struct queue *q);

/* Append a copy of *m; the queue takes ownership of its payload. */
void queue_push(struct queue *q, const struct msg *m);

/* Take the oldest message into *out; false when empty.  Never blocks. */
bool queue_pop(struct queue *q, struct msg *out);

/* Block until a message is there, then take it. */
void queue_wait(struct queue *q, struct msg *out);

/* Readable while messages may be waiting; call queue_ack() before draining. */
int queue_fd(const struct queue *q);

/* Reset the fd's readiness (read the eventfd counter). */
void queue_ack(struct queue *q);

#endif
