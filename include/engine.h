/*
 * engine.h - the engine thread: owns the model, the context, the tokenizer
 * and the sampler, and talks to the UI only through two queues.
 *
 * It answers MSG_LOAD (open the model reporting MSG_PROGRESS, then
 * MSG_READY, with the context length and sampling defaults it resolved, or
 * MSG_ERROR; then, whenever no message waits, read the weights
 * into memory reporting MSG_PROGRESS: see msg.h), MSG_PROMPT (stream
 * MSG_PREFILL, MSG_TOKEN, then MSG_DONE or MSG_ERROR for that seq),
 * MSG_CANCEL and MSG_QUIT (checked between the layers of a prefill step,
 * so a stop waits a fraction of a second, and between tokens).  A prompt or
 * load that arrives while a turn runs stops the turn and runs next.
 *
 * Thread affinity: engine_start/engine_join from the UI thread; everything
 * else happens on the engine thread, which blocks all signals.
 */
#ifndef QNEXT_ENGINE_H
#define QNEXT_ENGINE_H

struct queue;
struct engine;
struct remote_opts;

/*
 * Start the thread reading `in` and writing `out`.  remote: NULL for the
 * local model (MSG_LOAD names its directory), else the OpenAI-compatible
 * server whose replies stand in for it (remote.h; copied): MSG_LOAD then
 * checks the server and the model (its dir is not used), MSG_PROMPT
 * streams the server's reply, with MSG_NET about the request.  NULL +
 * cause on failure.
 */
struct engine *engine_start(struct queue *in, struct queue *out, const struct remote_opts *remote,
			    char **cause);

/* Wait for the thread to end (after MSG_QUIT was pushed) and free it. */
void engine_join(struct engine *e);

#endif
