/*
 * session.c - model + context + tokenizer + sampler, and the reply loop
 * (see session.h).
 *
 * DESIGN: the rendered conversation splits into a stable base (every
 * complete message; the template never changes it when a message is
 * appended) and the generation prompt (`<|im_start|>assistant\n<think>\n`).
 * After prefilling the base the context state is saved (ctx_save); the
 * next reply restores it when the old base is a prefix of the new one and
 * prefills only the difference.  Earlier replies' reasoning, which the
 * template drops, therefore never has to be undone.  With a state cache
 * (snapshot.h) the saved base also goes to disk when a reply ends, and a
 * conversation the context does not hold starts from the longest base saved
 * there (docs/resume.md "Lookup").
 *
 * Thread affinity: the opening thread only.
 */
#include "session.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "forward.h"
#include "log.h"
#include "model.h"
#include "snapshot.h"
#include "thread-role.h"
#include "tokenizer.h"
#include "util.h"

struct session {
	struct model *m;
	struct ctx *ctx;
	struct tokenizer *tok;
	struct snapshot_cache *sc; /* saved states on disk, or NULL */
	struct gen_config gen;
	int n_ctx;
	char *notice;
	int32_t think_start, think_end;
	int32_t im_start; /* <|im_start|>: where a message begins (-1 when unknown) */
	int32_t *base;    /* tokens of the saved base (ctx_saved_pos of them) */
	int n_base;
	int32_t *out; /* [n_ctx] ids of the last reply */
	int n_out;
	double t_out;  /* now_sec() when out[n_out - 1] was sampled */
	float *logits; /* [vocab] */
	char *text;    /* [tokenizer_decode_max + 8] one token's text */
};

const char *
gen_stop_name(enum gen_stop stop)
{
	switch (stop) {
	case GEN_STOP_EOS:
		return "end of turn";
	case GEN_STOP_LENGTH:
		return "token limit";
	case GEN_STOP_CONTEXT:
		return "context full";
	case GEN_STOP_USER:
		return "stopped";
	}
	return "?";
}

double
gen_stats_prefill_tps(const struct gen_stats *st)
{
	int new_tok = st->prompt_tokens - st->reused_tokens;

	return st->prefill_s > 0 && new_tok > 0 ? new_tok / st->prefill_s : 0;
}

double
gen_stats_decode_tps(const struct gen_stats *st)
{
	return st->gen_tokens > 1 && st->decode_s > 0 ? (st->gen_tokens - 1) / st->decode_s : 0;
}

/*
 * Note a chat template the model ships that is not the built-in one: in
 * tokenizer_config.json, or in chat_template.jinja (where re-saved
 * repositories put it; transformers prefers that file).
 */
static void
check_template(struct session *s, const char *dir)
{
	char *path = xasprintf("%s/tokenizer_config.json", dir);
	char *jinja = xasprintf("%s/chat_template.jinja", dir), *text = NULL;
	json_t *j = json_read_file(path, READ_MAX_CONFIG, NULL);
	json_t *t = json_object_get(j, "chat_template");
	const char *which = NULL;

	if (json_is_string(t) && !chat_template_is_builtin(json_string_value(t)))
		which = "tokenizer_config.json";
	if (access(jinja, F_OK) == 0 &&
	    ((text = read_file_max(jinja, READ_MAX_CONFIG, NULL, NULL)) == NULL ||
	     !chat_template_is_builtin(text)))
		which = "chat_template.jinja";
	if (which != NULL)
		s->notice =
			xasprintf("the model's chat template (%s) differs from qnext's built-in "
				  "Qwen3 Thinking template; using the built-in one",
				  which);
	json_decref(j);
	free(text);
	free(jinja);
	free(path);
}

struct tok_job {
	const char *dir;
	struct tokenizer *tok;
	char *cause;
};

static void *
tok_thread(void *arg)
{
	struct tok_job *j = arg;

	j->tok = tokenizer_load(j->dir, &j->cause);
	return NULL;
}

/* tok_thread on a thread of its own; it also runs inline, on the caller's thread. */
static void *
tok_thread_own(void *arg)
{
	thread_role_set(ROLE_IO);
	return tok_thread(arg);
}

/*
 * The tokenizer (parsing an 11 MB JSON file) and the model (parsing the
 * shard headers, binding tensors) take similar time and share nothing, so
 * they load side by side: time to ready is the longer of the two.
 */
static int
load_both(struct session *s, const char *dir, char **cause)
{
	struct tok_job j = { .dir = dir };
	pthread_t th;
	bool threaded = pthread_create(&th, NULL, tok_thread_own, &j) == 0;

	if (!threaded)
		tok_thread(&j);
	s->m = model_open(dir, cause);
	if (threaded)
		pthread_join(th, NULL);
	s->tok = j.tok;
	if (s->tok == NULL) {
		cause_set(cause, "%s", j.cause);
		free(j.cause);
		return -1;
	}
	free(j.cause);
	return s->m != NULL ? 0 : -1;
}

/* The state cache; one that cannot be had costs speed, never the chat. */
static void
open_states(struct session *s, uint64_t budget)
{
	char *why = NULL;

	if (budget > 0 && (s->sc = snapshot_open(s->m, s->ctx, NULL, budget, &why)) == NULL) {
		log_info("no state cache: %s", why);
		free(why);
	}
}

struct session *
session_open(const struct session_opts *o, char **cause)
{
	struct session *s = xcalloc(1, sizeof(*s));
	struct ctx_opts co = { .n_batch = 256,
			       .n_threads = o->n_threads,
			       .f32 = o->f32,
			       .expert_cache = o->expert_cache };

	assert_engine();
	if (load_both(s, o->dir, cause) != 0 || gen_config_load(&s->gen, o->dir, cause) != 0)
		goto fail;
	s->n_ctx = o->n_ctx > 0 ? o->n_ctx : CTX_N_CTX_DEFAULT;
	co.n_ctx = s->n_ctx;
	if ((s->ctx = ctx_new(s->m, &co, cause)) == NULL)
		goto fail;
	s->think_start = tokenizer_token_id(s->tok, "<think>");
	s->think_end = tokenizer_token_id(s->tok, "</think>");
	s->im_start = tokenizer_token_id(s->tok, "<|im_start|>");
	open_states(s, o->state_cache);
	s->base = xcalloc((size_t)s->n_ctx, sizeof(int32_t));
	s->out = xcalloc((size_t)s->n_ctx, sizeof(int32_t));
	s->logits = xcalloc((size_t)s->m->cfg.vocab_size, sizeof(float));
	s->text = xmalloc(tokenizer_decode_max(s->tok) + 8);
	check_template(s, o->dir);
	if (model_warning(s->m) != NULL) {
		char *both = s->notice != NULL ? xasprintf("%s; %s", model_warning(s->m), s->notice)
					       : xstrdup(model_warning(s->m));

		free(s->notice);
		s->notice = both;
	}
	return s;
fail:
	session_close(s);
	return NULL;
}

void
session_close(struct session *s)
{
	assert_engine();
	if (s == NULL)
		return;
	snapshot_close(s->sc);
	ctx_free(s->ctx);
	model_close(s->m);
	tokenizer_free(s->tok);
	free(s->notice);
	free(s->base);
	free(s->out);
	free(s->logits);
	free(s->text);
	free(s);
}

const struct gen_config *
session_gen_config(const struct session *s)
{
	return &s->gen;
}

const char *
session_notice(const struct session *s)
{
	return s->notice;
}

bool
session_cache_stats(const struct session *s, struct xcache_stats *st)
{
	return ctx_cache_stats(s->ctx, st);
}

const struct model *
session_model(const struct session *s)
{
	return s->m;
}

const struct tokenizer *
session_tokenizer(const struct session *s)
{
	return s->tok;
}

int
session_n_ctx(const struct session *s)
{
	return s->n_ctx;
}

const int32_t *
session_last_ids(const struct session *s, int *n)
{
	*n = s->n_out;
	return s->out;
}

void
session_gen_progress(const struct session *s, int *n, double *t)
{
	*n = s->n_out;
	*t = s->t_out;
}

/*
 * The prompt's text: the conversation and the generation prompt, or with
 * gp->continue_last the last message left open (*in_thought: it ends inside
 * the reasoning, as the generation prompt does).
 */
static char *
render_full(const struct chat_msg *msgs, size_t n, const struct gen_params *gp, bool *in_thought,
	    char **cause)
{
	*in_thought = true;
	if (gp->continue_last)
		return chat_template_render_continue(msgs, n, gp->tools_json, in_thought, cause);
	return chat_template_render(msgs, n, gp->tools_json, true, cause);
}

/* Tokens of the conversation: base (complete messages) and full (+ generation prompt). */
static int
encode_prompt(struct session *s, const struct chat_msg *msgs, size_t n, const struct gen_params *gp,
	      bool *in_thought, int32_t **base, size_t *n_base, int32_t **full, size_t *n_full,
	      char **cause)
{
	/* Continued, the last message is not complete: the base ends before it. */
	size_t n_complete = gp->continue_last && n > 0 ? n - 1 : n;
	char *tb = n_complete > 0
			   ? chat_template_render(msgs, n_complete, gp->tools_json, false, cause)
			   : xstrdup(""),
	     *tf = NULL;
	int rc = -1;

	*base = *full = NULL;
	if (tb == NULL || (tf = render_full(msgs, n, gp, in_thought, cause)) == NULL)
		goto out;
	if (tokenizer_encode(s->tok, tb, strlen(tb), base, n_base, cause) != 0 ||
	    tokenizer_encode(s->tok, tf, strlen(tf), full, n_full, cause) != 0)
		goto out;
	/* The base must be a token prefix of the full prompt to be reused. */
	if (*n_base > *n_full || memcmp(*base, *full, *n_base * sizeof(int32_t)) != 0)
		*n_base = 0;
	rc = 0;
out:
	free(tb);
	free(tf);
	return rc;
}

/*
 * Feed ids[0..n) in chunks, reporting progress after each.  The context
 * polls between layers (ctx_set_abort), since one chunk of the 80B model can
 * take tens of seconds on a small machine.  1 = stopped by poll.
 */
static int
feed(struct session *s, const int32_t *ids, int n, float *logits, const struct gen_params *gp,
     void *arg, char **cause)
{
	int r = 0;

	ctx_set_abort(s->ctx, gp->poll, arg);
	for (int at = 0; at < n && r == 0; at += 256) {
		int k = MIN(256, n - at);

		r = ctx_forward(s->ctx, ids + at, k, at + k == n ? logits : NULL, false, cause);
		if (r == 0 && gp->progress != NULL)
			gp->progress(arg, at + k, n);
	}
	ctx_set_abort(s->ctx, NULL, NULL);
	return r;
}

/*
 * The longest prefix of base longer than min saved on disk at a message
 * boundary, restored into the context and made the session's saved base; 0
 * when none.  States are only saved after a complete message, and the next
 * message begins with <|im_start|>, so those positions are the only
 * candidates (docs/resume.md "Lookup").
 */
static int
restore_saved(struct session *s, const int32_t *base, int n_base, int min)
{
	int *cand, n = 0, got;

	if (s->sc == NULL || n_base <= min || n_base < 1)
		return 0;
	cand = xmalloc((size_t)n_base * sizeof(int));
	for (int i = min + 1; i < n_base; i++)
		if (base[i] == s->im_start)
			cand[n++] = i;
	cand[n++] = n_base;
	got = snapshot_restore(s->sc, s->ctx, base, cand, n);
	free(cand);
	if (got == 0 || ctx_restore(s->ctx) != 0)
		return 0;
	memcpy(s->base, base, (size_t)got * sizeof(int32_t));
	s->n_base = got;
	return got;
}

/*
 * Where the prefill of base can start: the longer of the live context's saved base (when it is a
 * prefix of base) and a state on disk (restore_saved), restored into the context; 0 after a
 * reset.  The disk is asked even when the live base fits, for a longer state: a conversation
 * reopened after a shorter one that shares its start (a branch cut off earlier).  A failed
 * read of a disk state resets the context, so the live base is checked again after it.
 */
static int
resume_point(struct session *s, const int32_t *base, int n_base)
{
	bool live = n_base > 0 && s->n_base > 0 && s->n_base <= n_base &&
		    memcmp(s->base, base, (size_t)s->n_base * sizeof(int32_t)) == 0;
	int got = restore_saved(s, base, n_base, live ? s->n_base : 0);

	if (got > 0)
		return got;
	if (live && ctx_saved_pos(s->ctx) == s->n_base && ctx_restore(s->ctx) == 0)
		return s->n_base;
	ctx_reset(s->ctx);
	s->n_base = 0;
	return 0;
}

/*
 * Prefill the conversation from resume_point.  Every reply starts from ctx_restore or
 * ctx_reset, so the state a stopped or failed reply leaves behind (torn mid-step, or past the base)
 * is never read again.  The snapshot and s->base change together, only after the whole base is in,
 * so a stop before that keeps the old base reusable.
 */
static int
prefill(struct session *s, const int32_t *base, int n_base, const int32_t *full, int n_full,
	const struct gen_params *gp, void *arg, struct gen_stats *st, char **cause)
{
	int start = 0, r;

	start = resume_point(s, base, n_base);
	st->reused_tokens = start;
	if (n_base > start) {
		if ((r = feed(s, base + start, n_base - start, NULL, gp, arg, cause)) != 0)
			return r;
		start = n_base;
	}
	if (n_base > 0 && n_base > s->n_base) {
		ctx_save(s->ctx);
		memcpy(s->base, base, (size_t)n_base * sizeof(int32_t));
		s->n_base = n_base;
	}
	return feed(s, full + start, n_full - start, s->logits, gp, arg, cause);
}

static bool
is_eos(const struct session *s, int32_t id)
{
	for (int i = 0; i < s->gen.n_eos; i++)
		if (s->gen.eos[i] == id)
			return true;
	return false;
}

/*
 * The splitter's output for one token, gathered so the callback gets one
 * piece per token and part: the splitter may cut a token's text in several
 * pieces, and what it held back comes out with a later token's.
 */
struct emit_arg {
	session_cb *cb;
	void *arg;
	bool stop;
	enum think_part part; /* of buf */
	char *buf;
	size_t len, cap;
};

/* Hand the gathered text to the callback. */
static void
deliver(struct emit_arg *e)
{
	if (e->len > 0 && !e->stop && !e->cb(e->arg, e->part, e->buf, e->len))
		e->stop = true;
	e->len = 0;
}

static void
emit(void *v, enum think_part part, const char *text, size_t len)
{
	struct emit_arg *e = v;

	if (e->len > 0 && part != e->part)
		deliver(e);
	e->part = part;
	if (e->len + len > e->cap) {
		e->cap = MAX(2 * e->cap, e->len + len);
		e->buf = xrealloc(e->buf, e->cap);
	}
	memcpy(e->buf + e->len, text, len);
	e->len += len;
}

/* Append id to the reply and hand its text to the splitter; returns the text's length
 * (the text is in s->text). */
static size_t
take_token(struct session *s, int32_t id, struct think_split *ts, struct tok_decoder *dec,
	   struct emit_arg *ea)
{
	size_t n;

	s->out[s->n_out++] = id;
	n = tokenizer_decode(s->tok, dec, id, s->text, tokenizer_decode_max(s->tok) + 8);
	think_feed(ts, id, s->text, n, emit, ea);
	return n;
}

/*
 * The thinking budget is spent: close the thought for the model, putting
 * "\n</think>\n\n" into the reply after the sampled ids[0] (no newline when
 * the reasoning ends in one), which is how the chat template writes a closed
 * thought, so the context holds what a later turn renders and the next token
 * sampled is the answer's first.  Returns how many ids there are to feed now
 * (ids[0] and the forced ones).
 */
static int
close_thought(struct session *s, int32_t *ids, int cap, bool nl, struct think_split *ts,
	      struct tok_decoder *dec, struct emit_arg *ea)
{
	const char *text = nl ? "</think>\n\n" : "\n</think>\n\n";
	int32_t *forced = NULL;
	size_t n_forced = 0;
	int n = 1;

	if (tokenizer_encode(s->tok, text, strlen(text), &forced, &n_forced, NULL) != 0)
		return 1; /* cannot happen with a loaded tokenizer: go on thinking */
	for (size_t i = 0; i < n_forced && n < cap; i++) {
		ids[n++] = forced[i];
		take_token(s, forced[i], ts, dec, ea);
	}
	free(forced);
	return n;
}

/*
 * Sample and decode until a stop condition.  The prompt ends inside the
 * reasoning (in_thought) or, continuing an answer, after it.  Each round
 * feeds the sampled token, and when the thinking budget runs out with it,
 * the tokens that close the thought.
 */
static int
decode_loop(struct session *s, struct sampler *smp, const struct gen_params *gp, void *arg,
	    struct emit_arg *ea, bool in_thought, struct gen_stats *st, char **cause)
{
	struct think_split ts;
	struct tok_decoder dec;
	int n_reason = 0, n_feed;
	int32_t ids[8];
	size_t n;

	think_init(&ts, s->think_start, s->think_end, in_thought);
	tok_decoder_init(&dec);
	for (;;) {
		int32_t id = sampler_sample(smp, s->logits);
		double t = now_sec();

		if (s->n_out == 0)
			st->ttft_s = t;
		if (is_eos(s, id) && !gp->ignore_eos) {
			st->stop = GEN_STOP_EOS;
			break;
		}
		s->t_out = t;
		sampler_accept(smp, id);
		n = take_token(s, id, &ts, &dec, ea);
		ids[0] = id;
		n_feed = 1;
		if (!ts.in_answer && gp->think_budget > 0 && ++n_reason >= gp->think_budget)
			n_feed = close_thought(s, ids, (int)ARRAY_LEN(ids),
					       n > 0 && s->text[n - 1] == '\n', &ts, &dec, ea);
		deliver(ea);
		if (ea->stop || (gp->poll != NULL && gp->poll(arg))) {
			st->stop = GEN_STOP_USER;
			break;
		}
		if (s->n_out >= gp->max_tokens) {
			st->stop = GEN_STOP_LENGTH;
			break;
		}
		if (ctx_pos(s->ctx) + n_feed > s->n_ctx) {
			st->stop = GEN_STOP_CONTEXT;
			break;
		}
		if (ctx_forward(s->ctx, ids, n_feed, s->logits, false, cause) != 0)
			return -1;
	}
	n = tok_decoder_flush(&dec, s->text, tokenizer_decode_max(s->tok) + 8);
	think_feed(&ts, -1, s->text, n, emit, ea);
	think_flush(&ts, emit, ea);
	deliver(ea);
	return 0;
}

/* What a bug report about speed needs of a turn; never its text. */
static void
log_turn(const struct gen_stats *st)
{
	log_info("reply: %d prompt tokens (%d reused) in %.2f s, %d generated in %.2f s "
		 "(%.2f tok/s), first token %.2f s, %s; expert cache %d/%d, %llu hits, "
		 "%llu misses, %llu MB read",
		 st->prompt_tokens, st->reused_tokens, st->prefill_s, st->gen_tokens, st->decode_s,
		 gen_stats_decode_tps(st), st->ttft_s, gen_stop_name(st->stop), st->cache_used,
		 st->cache_slots, (unsigned long long)st->cache_hits,
		 (unsigned long long)st->cache_misses, (unsigned long long)(st->cache_read >> 20));
}

/*
 * Put the saved base on disk once the reply is out, so the next time this
 * conversation is opened it is not read again.  After the reply rather than
 * when the base is fed: the first token must not wait for the disk.
 */
static void
save_state(struct session *s)
{
	char *cause = NULL;

	if (s->sc != NULL && s->n_base > 0 && ctx_saved_pos(s->ctx) == s->n_base &&
	    snapshot_save(s->sc, s->ctx, s->base, s->n_base, &cause) != 0) {
		log_info("state not saved: %s", cause);
		free(cause);
	}
}

int
session_reply(struct session *s, const struct chat_msg *msgs, size_t n, const struct gen_params *gp,
	      session_cb *cb, void *arg, struct gen_stats *st, char **cause)
{
	int32_t *base = NULL, *full = NULL;
	size_t n_base = 0, n_full = 0;
	struct emit_arg ea = { .cb = cb, .arg = arg };
	struct sampler *smp = NULL;
	double t0 = now_sec(), t1;
	int rc = -1, r;
	bool in_thought;
	struct xcache_stats x0 = { 0 }, x1;

	assert_engine();
	memset(st, 0, sizeof(*st));
	ctx_cache_stats(s->ctx, &x0);
	s->n_out = 0;
	s->t_out = t0;
	if (encode_prompt(s, msgs, n, gp, &in_thought, &base, &n_base, &full, &n_full, cause) != 0)
		goto out;
	st->prompt_tokens = (int)n_full;
	if ((int)n_full >= s->n_ctx) {
		cause_set(cause,
			  "the prompt has %zu tokens and does not fit the context of %d "
			  "(raise --ctx)",
			  n_full, s->n_ctx);
		goto out;
	}
	if ((r = prefill(s, base, (int)n_base, full, (int)n_full, gp, arg, st, cause)) < 0)
		goto out;
	t1 = now_sec();
	st->prefill_s = t1 - t0;
	if (r == 1) {
		st->stop = GEN_STOP_USER;
		rc = 0;
		goto out;
	}
	/* Only ids the tokenizer knows: lm_head has padding rows past them
	 * (151,669-151,935 in the real model) that decode to nothing. */
	smp = sampler_new(&gp->sp, s->m->cfg.vocab_size,
			  MIN(s->m->cfg.vocab_size, tokenizer_n_vocab(s->tok)));
	st->ttft_s = t1;
	if (decode_loop(s, smp, gp, arg, &ea, in_thought, st, cause) != 0)
		goto out;
	st->decode_s = now_sec() - st->ttft_s;
	st->ttft_s -= t0;
	st->gen_tokens = s->n_out;
	rc = 0;
out:
	if (ctx_cache_stats(s->ctx, &x1)) {
		st->cache_slots = x1.slots;
		st->cache_used = x1.used;
		st->cache_hits = x1.hits + x1.late - x0.hits - x0.late;
		st->cache_misses = x1.misses - x0.misses;
		st->cache_read = x1.bytes_read - x0.bytes_read;
	}
	if (rc == 0) {
		log_turn(st);
		save_state(s);
	}
	sampler_free(smp);
	free(ea.buf);
	free(base);
	free(full);
	return rc;
}
