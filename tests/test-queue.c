/*
 * test-queue.c - the UI/engine message queue: order and completeness with a
 * producer thread, the eventfd wake-up seen through poll(2), the blocking
 * consumer, and freeing a queue that still holds messages.  Runs clean
 * under ThreadSanitizer (make tsan-test).
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "t.h"
#include "util.h"

#define N 20000

static void *
producer(void *arg)
{
	struct queue *q = arg;

	for (int i = 1; i <= N; i++) {
		struct msg m = { .type = MSG_TOKEN, .seq = (uint64_t)i };

		m.u.token.text = xasprintf("%d", i);
		queue_push(q, &m);
	}
	return NULL;
}

/* Drain through poll + ack + pop, as the UI does. */
static void
test_poll_consumer(void)
{
	struct queue *q = queue_new(NULL);
	pthread_t th;
	int got = 0, in_order = 1, text_ok = 1, stalls = 0;

	pthread_create(&th, NULL, producer, q);
	while (got < N && stalls < 100) {
		struct pollfd p = { .fd = queue_fd(q), .events = POLLIN };
		struct msg m;

		if (poll(&p, 1, 100) == 0) {
			stalls++;
			continue;
		}
		queue_ack(q);
		while (queue_pop(q, &m)) {
			got++;
			in_order &= m.seq == (uint64_t)got;
			text_ok &= atoi(m.u.token.text) == got;
			msg_free(&m);
		}
	}
	pthread_join(th, NULL);
	T_EQ_INT(got, N);
	T_ASSERT(in_order);
	T_ASSERT(text_ok);
	queue_free(q);
}

static void
test_wait_consumer(void)
{
	struct queue *q = queue_new(NULL);
	pthread_t th;
	int in_order = 1;

	pthread_create(&th, NULL, producer, q);
	for (int i = 1; i <= N; i++) {
		struct msg m;

		queue_wait(q, &m);
		in_order &= m.seq == (uint64_t)i;
		msg_free(&m);
	}
	pthread_join(th, NULL);
	T_ASSERT(in_order);
	{
		struct msg m;

		T_ASSERT(!queue_pop(q, &m)); /* empty now */
	}
	queue_free(q);
}

static void
test_ownership(void)
{
	struct queue *q = queue_new(NULL);
	struct chat_msg conv[2] = { { .role = "user", .content = "hi", .reasoning = "secret" },
				    { .role = "assistant", .content = NULL } };
	struct msg m = { .type = MSG_PROMPT, .seq = 7 }, out;

	m.u.prompt.conv = msg_conv_copy(conv, 2);
	m.u.prompt.n_conv = 2;
	queue_push(q, &m);
	T_ASSERT(queue_pop(q, &out));
	T_EQ_INT(out.u.prompt.n_conv, 2);
	T_ASSERT(strcmp(out.u.prompt.conv[0].content, "hi") == 0);
	T_ASSERT(out.u.prompt.conv[0].reasoning == NULL); /* reasoning is never sent */
	T_ASSERT(strcmp(out.u.prompt.conv[1].content, "") == 0);
	msg_free(&out);
	/* Messages left in a queue are freed with it (ASan checks). */
	m = (struct msg){ .type = MSG_TOKEN, .u.token.text = xstrdup("left behind") };
	queue_push(q, &m);
	queue_free(q);
}

int
main(void)
{
	test_poll_consumer();
	test_wait_consumer();
	test_ownership();
	return t_done("test-queue");
}
