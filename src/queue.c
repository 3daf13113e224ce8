/*
 * queue.c - the message queue between the UI and the engine (see queue.h).
 *
 * A mutex-protected singly linked list with a condition variable for the
 * blocking consumer and an eventfd for the poll(2)ing one.  Pushes are rare
 * (one per token at most), so a list node allocation per message is fine.
 *
 * Any thread.
 */
#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

struct node {
	struct msg m;
	struct node *next;
};

struct queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct node *head, *tail;
	int efd;
};

void
msg_free(struct msg *m)
{
	switch (m->type) {
	case MSG_LOAD:
		free(m->u.load.dir);
		break;
	case MSG_PROMPT:
		for (int i = 0; i < m->u.prompt.n_conv; i++) {
			free((char *)m->u.prompt.conv[i].role);
			free((char *)m->u.prompt.conv[i].content);
			free((char *)m->u.prompt.conv[i].reasoning);
			free((char *)m->u.prompt.conv[i].tool_calls_json);
		}
		free(m->u.prompt.conv);
		free(m->u.prompt.tools_json);
		break;
	case MSG_PROGRESS:
		free(m->u.progress.phase);
		break;
	case MSG_READY:
		free(m->u.ready.desc);
		break;
	case MSG_TOKEN:
		free(m->u.token.text);
		break;
	case MSG_NET:
		free(m->u.net.state);
		break;
	case MSG_ERROR:
		free(m->u.error.text);
		break;
	case MSG_MODELS:
	case MSG_MODELS_FOUND:
		free(m->u.models.known[0]);
		free(m->u.models.known[1]);
		for (size_t i = 0; i < m->u.models.n; i++) { /* as models_free, a floor up */
			free(m->u.models.found[i].dir);
			free(m->u.models.found[i].verdict);
		}
		free(m->u.models.found);
		break;
	case MSG_CANCEL:
	case MSG_QUIT:
	case MSG_PREFILL:
	case MSG_DONE:
		break; /* nothing owned */
	}
	memset(m, 0, sizeof(*m));
}

struct chat_msg *
msg_conv_copy(const struct chat_msg *m, int n)
{
	struct chat_msg *c = xcalloc((size_t)(n > 0 ? n : 1), sizeof(*c));

	for (int i = 0; i < n; i++) {
		c[i].role = xstrdup(m[i].role);
		c[i].content = xstrdup(m[i].content != NULL ? m[i].content : "");
		if (m[i].tool_calls_json != NULL)
			c[i].tool_calls_json = xstrdup(m[i].tool_calls_json);
	}
	return c;
}

struct queue *
queue_new(char **cause)
{
	struct queue *q = xcalloc(1, sizeof(*q));

	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		cause_set(cause, "eventfd: %s", strerror(errno));
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	return q;
}

void
queue_free(struct queue *q)
{
	struct node *n, *next;

	if (q == NULL)
		return;
	for (n = q->head; n != NULL; n = next) {
		next = n->next;
		msg_free(&n->m);
		free(n);
	}
	close(q->efd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
}

void
queue_push(struct queue *q, const struct msg *m)
{
	struct node *n = xcalloc(1, sizeof(*n));
	uint64_t one = 1;

	n->m = *m;
	pthread_mutex_lock(&q->mu);
	if (q->tail != NULL)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	pthread_cond_signal(&q->cv);
	/* Under the lock, so a consumer that acked and found the list empty
	 * cannot miss this wake-up. */
	if (write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		fatal("queue: eventfd write: %s", strerror(errno));
	pthread_mutex_unlock(&q->mu);
}

static bool
take(struct queue *q, struct msg *out)
{
	struct node *n = q->head;

	if (n == NULL)
		return false;
	q->head = n->next;
	if (q->head == NULL)
		q->tail = NULL;
	*out = n->m;
	free(n);
	return true;
}

bool
queue_pop(struct queue *q, struct msg *out)
{
	bool ok;

	pthread_mutex_lock(&q->mu);
	ok = take(q, out);
	pthread_mutex_unlock(&q->mu);
	return ok;
}

void
queue_wait(struct queue *q, struct msg *out)
{
	pthread_mutex_lock(&q->mu);
	while (!take(q, out))
		pthread_cond_wait(&q->cv, &q->mu);
	pthread_mutex_unlock(&q->mu);
}

int
queue_fd(const struct queue *q)
{
	return q->efd;
}

void
queue_ack(struct queue *q)
{
	uint64_t v;

	pthread_mutex_lock(&q->mu);
	if (read(q->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		fatal("queue: eventfd read: %s", strerror(errno));
	pthread_mutex_unlock(&q->mu);
}
