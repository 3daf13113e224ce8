/*
 * msg.h - the messages between the UI thread and the engine thread.
 *
 * Messages are values: a struct copied into the queue, owning its text and
 * conversation (the receiver frees them with msg_free).  Every message about
 * a turn carries that turn's seq; the UI bumps seq for each prompt and drops
 * anything carrying an older one, so tokens still in flight after a stop
 * never reach the screen.  Types are numbered in blocks by direction, as
 * tmux numbers its protocol.
 *
 * Any thread (plain data).
 */
#ifndef QNEXT_MSG_H
#define QNEXT_MSG_H

#include <stdint.h>

#include "chat-template.h"
#include "session.h"
#include "think.h"

enum msg_type {
	/* UI -> engine. */
	MSG_LOAD = 100, /* text: model directory; n: context length; n2: threads;
			  a: session_opts.expert_cache */
	MSG_PROMPT,     /* seq, conv[n_conv], params: generate the assistant's reply */
	MSG_CANCEL,     /* seq: stop that turn */
	MSG_QUIT,       /* stop whatever runs and end the thread */

	/* Engine -> UI. */
	MSG_PROGRESS = 200, /* loading: a, b, t, text = phase (below) */
	MSG_READY,          /* model usable: text = description; n = context length;
			     * n2 = 1 for the full-size model, 0 for a test-sized one */
	MSG_PREFILL,        /* seq: a = prompt tokens processed, b = to process; t */
	MSG_TOKEN,          /* seq: text, part, n, t (below) */
	MSG_DONE,           /* seq: the turn ended; stats */
	MSG_ERROR,          /* seq (0 = no turn, e.g. the load): text = one line */
};

struct msg {
	enum msg_type type;
	uint64_t seq;
	char *text; /* owned, may be NULL */
	enum think_part part;
	struct chat_msg *conv; /* owned deep copy [n_conv] (role, content) */
	int n_conv;
	struct gen_params params; /* poll/progress are ignored */
	struct gen_stats stats;
	uint64_t a, b;
	int n, n2;
	double t; /* engine's now_sec() when the event happened (MSG_TOKEN, MSG_PREFILL,
		     MSG_PROGRESS) */
};

/*
 * MSG_PROGRESS (seq 0), about the model being loaded: a = bytes of weights
 * read into memory so far, b = bytes of the weight files in all, t = the
 * engine's now_sec() when sent; text = the phase:
 *   "opening"          a = 0 and b > 0 from the first message (the files are
 *                      sized before anything is opened; b = 0 only when no
 *                      file is named like weights), again every 0.25 s
 *                      until MSG_READY or MSG_ERROR.
 *   "reading weights"  after MSG_READY, the read-ahead: at least every 64 MiB
 *                      or 0.25 s.
 *   "paused"           a prompt runs first; the read-ahead goes on (a
 *                      "reading weights" with the same a) once the turn has
 *                      ended and no message waits.  Once per turn.
 *   "done"             a == b: all read.  The last MSG_PROGRESS of the load.
 *   "model larger than free memory: reading on demand"
 *                      a == b == 0: no read-ahead (pages come as used).  The
 *                      last MSG_PROGRESS of the load.
 * Within a load a never decreases and stays <= b, and b stays the same,
 * except that the first "reading weights" corrects it should the index name
 * other files than the ones found by name (and the on-demand notice's 0).
 * A new MSG_LOAD starts over with "opening".
 *
 * MSG_TOKEN: the text of one token (sometimes of several, or none: see
 * session_gen_progress) in one part.  n = tokens generated so far in the
 * turn, reasoning and answer alike, counting the latest sampled one; t = the
 * engine's now_sec() when that n-th token was sampled.  So the live speed is
 * (n - n0) / (t - t0) between two MSG_TOKENs of the turn, whenever they
 * reach the UI.  n never decreases and goes up by one or more per message;
 * it repeats only when one token's text ends the reasoning and starts the
 * answer (two messages, one per part) and for the held-back text sent when
 * the turn ends.  The last n equals MSG_DONE's stats.gen_tokens unless the
 * last tokens showed no text (a final `</think>`).
 */

/* Free what m owns (text, conv) and zero it.  Accepts a zeroed message. */
void msg_free(struct msg *m);

/* Deep copy of role and content of n messages (reasoning is never sent). */
struct chat_msg *msg_conv_copy(const struct chat_msg *m, int n);

#endif
