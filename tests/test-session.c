/*
 * test-session.c - the reply loop end to end on the tiny golden model:
 * the golden conversation with greedy sampling on the float32 path must
 * generate exactly the golden greedy_ids up to the first that is a padding
 * row of lm_head (the reference's argmax runs over every row; the sampler
 * only over the tokenizer's ids, and no sampled id is ever past them), both
 * through session_reply and
 * through the real `qnext` binary (its stdout + reasoning on stderr must be
 * the text of those ids); a follow-up turn reuses the saved prefix and gives
 * the same tokens as a fresh session; a prompt longer than the context is a
 * clean error; the poll is asked within every layer of the prefill, a stop
 * takes effect at the poll that asks for it, and a reply after a stopped
 * prefill is the reply a fresh session gives (and still reuses the prefix
 * saved before).  A thinking budget closes the thought after that many
 * tokens with tokens the engine feeds, and the answer after them is what the
 * model's forward pass gives for that prefix; a reply continued
 * (continue_last) goes on as the uninterrupted reply did.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "forward.h"
#include "model.h"
#include "safetensors.h"
#include "session.h"
#include "t.h"
#include "tokenizer.h"
#include "util.h"

#define TINY "share/tiny"

static struct chat_msg msgs[8];
static size_t n_msgs;
static json_t *golden_json;

static void
load_messages(void)
{
	json_t *m;
	size_t i;

	golden_json = json_load_file(TINY "/golden.json", 0, NULL);
	json_array_foreach(json_object_get(golden_json, "messages"), i, m)
	{
		msgs[i].role = json_string_value(json_object_get(m, "role"));
		msgs[i].content = json_string_value(json_object_get(m, "content"));
		n_msgs = i + 1;
	}
}

static bool
collect(void *arg, enum think_part part, const char *text, size_t len)
{
	(void)arg, (void)part, (void)text, (void)len;
	return true;
}

/* Stops the reply at poll call stop_at, or at call `after` past the nth progress report. */
struct stopper {
	int calls, stop_at;
	int progress, stop_progress, after, since;
	int calls_at_first_progress;
};

static bool
stopper_poll(void *arg)
{
	struct stopper *p = arg;

	p->calls++;
	if (p->stop_progress > 0 && p->progress >= p->stop_progress)
		return ++p->since == p->after;
	return p->calls == p->stop_at;
}

static void
stopper_progress(void *arg, int done, int total)
{
	struct stopper *p = arg;

	if (p->progress++ == 0)
		p->calls_at_first_progress = p->calls;
	(void)done, (void)total;
}

static int
stopped_reply(struct session *s, const struct chat_msg *m, size_t n, struct stopper *p,
	      struct gen_stats *st)
{
	struct gen_params gp = { .max_tokens = 4,
				 .poll = stopper_poll,
				 .progress = stopper_progress };
	char *cause = NULL;
	int rc;

	sampler_params_default(&gp.sp);
	gp.sp.temperature = 0;
	rc = session_reply(s, m, n, &gp, collect, p, st, &cause);
	free(cause);
	return rc;
}

static struct session *
open_tiny(int n_ctx)
{
	struct session_opts o = { .dir = TINY, .n_ctx = n_ctx, .n_threads = 2, .f32 = true };
	char *cause = NULL;
	struct session *s = session_open(&o, &cause);

	if (s == NULL)
		fprintf(stderr, "%s\n", cause);
	free(cause);
	return s;
}

static int
greedy_reply(struct session *s, const struct chat_msg *m, size_t n, int max, struct gen_stats *st)
{
	struct gen_params gp = { .max_tokens = max };
	char *cause = NULL;
	int rc;

	sampler_params_default(&gp.sp);
	gp.sp.temperature = 0;
	rc = session_reply(s, m, n, &gp, collect, NULL, st, &cause);
	if (rc != 0)
		fprintf(stderr, "%s\n", cause);
	free(cause);
	return rc;
}

/* Run the binary on the golden conversation; compare its text with the ids'. */
static void
test_cli(const struct tokenizer *t, const int32_t *ids, int n)
{
	const char *bin = getenv("QNEXT_BIN") ? getenv("QNEXT_BIN") : "./qnext";
	char *want = tokenizer_decode_all(t, ids, (size_t)n), *cmd, *got, *err;
	size_t len;

	cmd = xasprintf("%s -m %s --messages %s/golden.json --f32 --temp 0 --max-tokens %d "
			"--thinking -q >/tmp/qnext-session.out 2>/tmp/qnext-session.err",
			bin, TINY, TINY, n);
	T_EQ_INT(system(cmd), 0);
	got = read_file("/tmp/qnext-session.out", &len, NULL);
	err = read_file("/tmp/qnext-session.err", NULL, NULL);
	/* No </think> among the golden ids: all of it is reasoning (stderr). */
	T_ASSERT(got != NULL && got[0] == '\0');
	T_ASSERT(err != NULL && strncmp(err, want, strlen(want)) == 0);
	T_ASSERT(err != NULL && strcmp(err + strlen(want), "\n") == 0);
	free(cmd);
	free(got);
	free(err);
	free(want);
}

/* The text of a reply by part, for the thinking budget and continuation checks. */
struct parts {
	char text[2][4096];
	size_t len[2];
};

static bool
by_part(void *arg, enum think_part part, const char *text, size_t len)
{
	struct parts *p = arg;

	if (p->len[part] + len < sizeof(p->text[part])) {
		memcpy(p->text[part] + p->len[part], text, len);
		p->len[part] += len;
		p->text[part][p->len[part]] = '\0';
	}
	return true;
}

/* Greedy, the end-of-turn token ignored, so only the limits end a reply. */
static void
greedy_params(struct gen_params *gp, int max_tokens, int think_budget)
{
	memset(gp, 0, sizeof(*gp));
	sampler_params_default(&gp->sp);
	gp->sp.temperature = 0;
	gp->sp.presence_penalty = 0;
	gp->sp.repetition_penalty = 1;
	gp->max_tokens = max_tokens;
	gp->think_budget = think_budget;
	gp->ignore_eos = true;
}

/*
 * With a thinking budget of N, the reply is N sampled reasoning tokens, then
 * "\n</think>\n\n" fed by the engine (no newline when the reasoning ends in
 * one), then the answer; the answer is what the model's own forward pass
 * gives when the prompt and those ids are fed as a prefill (a context of its
 * own, greedy), so the forced tokens really went into the context.  Without
 * a budget the thought goes on.
 */
static void
test_think_budget(void)
{
	enum { N = 5, AFTER = 6 };
	struct session *s = open_tiny(512);
	const struct tokenizer *tok = session_tokenizer(s);
	struct ctx_opts co = { .n_ctx = 512, .n_batch = 256, .n_threads = 2, .f32 = true };
	struct gen_params gp;
	struct gen_stats st;
	struct parts p = { 0 };
	int32_t *close = NULL, *prompt = NULL, *all;
	size_t n_close = 0, n_prompt = 0;
	const int32_t *ids;
	char *cause = NULL, *text, *reason, *want_reason;
	const char *closing;
	bool nl;
	struct ctx *c;
	float *logits;
	int n, vocab = session_model(s)->cfg.vocab_size, at;

	greedy_params(&gp, 64, N);
	T_EQ_INT(session_reply(s, msgs, n_msgs, &gp, by_part, &p, &st, &cause), 0);
	ids = session_last_ids(s, &n);
	reason = tokenizer_decode_all(tok, ids, N);
	nl = reason[0] != '\0' && reason[strlen(reason) - 1] == '\n';
	closing = nl ? "</think>\n\n" : "\n</think>\n\n";
	T_EQ_INT(tokenizer_encode(tok, closing, strlen(closing), &close, &n_close, NULL), 0);
	T_ASSERT(n_close >= 2);
	at = N + (int)n_close;
	T_EQ_INT(n, 64);
	T_EQ_INT(st.gen_tokens, n);
	T_EQ_INT(st.stop, GEN_STOP_LENGTH);
	for (int i = 0; i < N; i++)
		T_ASSERT(ids[i] != tokenizer_token_id(tok, "</think>"));
	T_ASSERT(memcmp(ids + N, close, n_close * sizeof(int32_t)) == 0);
	want_reason = xasprintf("%s%s", reason, nl ? "" : "\n");
	T_ASSERT(strcmp(p.text[THINK_REASONING], want_reason) == 0);
	T_ASSERT(p.len[THINK_ANSWER] > 0);

	/* The same prefix as a prefill, then greedy: the same answer. */
	text = chat_template_render(msgs, n_msgs, NULL, true, &cause);
	T_EQ_INT(tokenizer_encode(tok, text, strlen(text), &prompt, &n_prompt, NULL), 0);
	all = xcalloc(n_prompt + (size_t)n, sizeof(int32_t));
	memcpy(all, prompt, n_prompt * sizeof(int32_t));
	memcpy(all + n_prompt, ids, (size_t)at * sizeof(int32_t));
	c = ctx_new(session_model(s), &co, &cause);
	logits = xcalloc((size_t)vocab, sizeof(float));
	T_ASSERT(c != NULL);
	T_EQ_INT(ctx_forward(c, all, (int)n_prompt + at, logits, false, &cause), 0);
	for (int i = at; i < n; i++) {
		int32_t want = argmax_f32(logits, MIN(vocab, tokenizer_n_vocab(tok)));

		T_EQ_INT(ids[i], want);
		T_EQ_INT(ctx_forward(c, &want, 1, logits, false, &cause), 0);
	}

	/* Without a budget, the greedy reply is still thinking at that length. */
	memset(&p, 0, sizeof(p));
	greedy_params(&gp, at + 2, 0);
	T_EQ_INT(session_reply(s, msgs, n_msgs, &gp, by_part, &p, &st, &cause), 0);
	T_EQ_INT(p.len[THINK_ANSWER], 0);
	T_ASSERT(p.len[THINK_REASONING] > strlen(reason));
	free(cause);
	free(logits);
	ctx_free(c);
	free(all);
	free(prompt);
	free(text);
	free(reason);
	free(want_reason);
	free(close);
	session_close(s);
}

/*
 * Whether the message m (the reply so far) renders, left open, as the tokens
 * of prompt[0..n_prompt) followed by ids[0..k): then a continuation starts
 * from the very context the uninterrupted reply had.  A random model's
 * tokens need not survive decoding and encoding again, so the test looks for
 * a stopping point where they do.
 */
static bool
renders_as(const struct tokenizer *tok, const struct chat_msg *m, size_t n, const int32_t *prompt,
	   size_t n_prompt, const int32_t *ids, int k)
{
	bool in_thought, same;
	char *text = chat_template_render_continue(m, n, NULL, &in_thought, NULL);
	int32_t *got = NULL;
	size_t n_got = 0;

	same = text != NULL && tokenizer_encode(tok, text, strlen(text), &got, &n_got, NULL) == 0 &&
	       n_got == n_prompt + (size_t)k &&
	       memcmp(got, prompt, n_prompt * sizeof(int32_t)) == 0 &&
	       memcmp(got + n_prompt, ids, (size_t)k * sizeof(int32_t)) == 0;
	free(got);
	free(text);
	return same;
}

/*
 * Continuing the last message (gen_params.continue_last): a reply stopped at
 * the token limit, sent back as the assistant's message, goes on with the
 * tokens the uninterrupted reply has after it, with the base reused; in the
 * thought, and past a thinking budget of `budget`, in the answer.
 */
static void
test_continue(const struct chat_msg *conv, size_t n_conv, int budget, int min_k)
{
	enum { WHOLE = 24, MORE = 6 };
	struct session *s = open_tiny(512);
	const struct tokenizer *tok = session_tokenizer(s);
	struct gen_params gp;
	struct gen_stats st;
	struct parts part, more;
	struct chat_msg m[8];
	int32_t want[WHOLE], *prompt = NULL;
	size_t n_prompt = 0;
	const int32_t *ids;
	char *cause = NULL, *text;
	int n, k;

	greedy_params(&gp, WHOLE, budget);
	T_EQ_INT(session_reply(s, conv, n_conv, &gp, collect, NULL, &st, &cause), 0);
	ids = session_last_ids(s, &n);
	T_EQ_INT(n, WHOLE);
	memcpy(want, ids, sizeof(want));
	text = chat_template_render(conv, n_conv, NULL, true, &cause);
	T_EQ_INT(tokenizer_encode(tok, text, strlen(text), &prompt, &n_prompt, NULL), 0);
	memcpy(m, conv, n_conv * sizeof(conv[0]));
	/* The longest reply so far that renders back as its own tokens. */
	for (k = WHOLE - MORE; k >= min_k; k--) {
		memset(&part, 0, sizeof(part));
		greedy_params(&gp, k, budget);
		T_EQ_INT(session_reply(s, conv, n_conv, &gp, by_part, &part, &st, &cause), 0);
		m[n_conv] = (struct chat_msg){ .role = "assistant",
					       .content = part.text[THINK_ANSWER],
					       .reasoning = part.text[THINK_REASONING] };
		if (renders_as(tok, m, n_conv + 1, prompt, n_prompt, want, k))
			break;
	}
	T_ASSERT(k >= min_k);
	memset(&more, 0, sizeof(more));
	greedy_params(&gp, MORE, budget);
	gp.continue_last = true;
	T_EQ_INT(session_reply(s, m, n_conv + 1, &gp, by_part, &more, &st, &cause), 0);
	T_ASSERT(cause == NULL);
	ids = session_last_ids(s, &n);
	T_EQ_INT(n, MORE);
	T_ASSERT(k >= min_k && memcmp(ids, want + k, MORE * sizeof(int32_t)) == 0);
	T_EQ_INT(st.prompt_tokens, (int)n_prompt + k);
	T_ASSERT(st.reused_tokens > 0);
	/* Past the budget the continuation is answer only. */
	if (budget > 0)
		T_ASSERT(more.len[THINK_REASONING] == 0 && more.len[THINK_ANSWER] > 0);
	free(cause);
	free(text);
	free(prompt);
	session_close(s);
}

int
main(void)
{
	struct st_set *g = st_open_file(TINY "/golden.safetensors", NULL);
	const struct st_tensor *gi = st_find(g, "greedy_ids");
	struct session *s = open_tiny(512), *fresh;
	struct gen_stats st;
	struct chat_msg more[8];
	const int32_t *ids;
	int old_base;
	int32_t first[64];
	int n, n_first, n_gold = 0;

	load_messages();
	T_ASSERT(s != NULL && gi != NULL);
	/* The golden ids before the first padding row (9 of tiny's 24). */
	while (n_gold < gi->n_elems &&
	       ((const int32_t *)gi->data)[n_gold] < tokenizer_n_vocab(session_tokenizer(s)))
		n_gold++;
	T_ASSERT(n_gold >= 8);
	T_EQ_INT(greedy_reply(s, msgs, n_msgs, n_gold, &st), 0);
	ids = session_last_ids(s, &n);
	T_EQ_INT(n, n_gold);
	T_ASSERT(memcmp(ids, gi->data, (size_t)n_gold * sizeof(int32_t)) == 0);
	T_EQ_INT(st.prompt_tokens, 153);
	T_EQ_INT(st.stop, GEN_STOP_LENGTH);
	test_cli(session_tokenizer(s), gi->data, n_gold);

	/* Polled within every layer of the prefill, not once per chunk. */
	{
		struct stopper p = { 0 };
		int layers = session_model(s)->cfg.n_layers;

		fresh = open_tiny(512);
		T_EQ_INT(stopped_reply(fresh, msgs, n_msgs, &p, &st), 0);
		/* Fresh: the base (one chunk), then the generation prompt. */
		T_EQ_INT(p.progress, 2);
		T_ASSERT(p.calls_at_first_progress >= layers);
		session_close(fresh);
		/* A stop at any poll of the prefill ends the reply there, and the
		 * next reply is the golden one. */
		for (int k = 1; k <= p.calls_at_first_progress + 3; k += 5) {
			struct stopper q = { .stop_at = k };

			fresh = open_tiny(512);
			T_EQ_INT(stopped_reply(fresh, msgs, n_msgs, &q, &st), 0);
			T_EQ_INT(st.stop, GEN_STOP_USER);
			T_EQ_INT(st.gen_tokens, 0);
			T_EQ_INT(q.calls, k);
			T_EQ_INT(q.progress, k > p.calls_at_first_progress);
			T_EQ_INT(greedy_reply(fresh, msgs, n_msgs, n_gold, &st), 0);
			ids = session_last_ids(fresh, &n);
			T_EQ_INT(n, n_gold);
			T_ASSERT(memcmp(ids, gi->data, (size_t)n_gold * sizeof(int32_t)) == 0);
			session_close(fresh);
		}
	}

	/* A follow-up turn stopped while its new messages are read keeps the
	 * saved prefix; stopped in the generation prompt, the new one. */
	memcpy(more, msgs, n_msgs * sizeof(msgs[0]));
	more[n_msgs] = (struct chat_msg){ .role = "assistant", .content = "Short answer." };
	more[n_msgs + 1] = (struct chat_msg){ .role = "user", .content = "And then?" };
	{
		struct stopper p = { .stop_at = 3 }, q = { .stop_progress = 1, .after = 2 };

		T_EQ_INT(stopped_reply(s, more, n_msgs + 2, &p, &st), 0);
		T_EQ_INT(st.stop, GEN_STOP_USER);
		T_ASSERT(st.reused_tokens > 100);
		old_base = st.reused_tokens;
		T_EQ_INT(stopped_reply(s, more, n_msgs + 2, &q, &st), 0);
		T_EQ_INT(st.stop, GEN_STOP_USER);
		T_EQ_INT(st.reused_tokens, old_base);
		T_EQ_INT(q.progress, 1);
	}
	/* A follow-up turn reuses the saved prefix ... */
	T_EQ_INT(greedy_reply(s, more, n_msgs + 2, 16, &st), 0);
	T_ASSERT(st.reused_tokens > 100 && st.reused_tokens < st.prompt_tokens);
	T_ASSERT(st.reused_tokens > old_base); /* the base saved by the stopped reply */
	ids = session_last_ids(s, &n_first);
	memcpy(first, ids, (size_t)n_first * sizeof(int32_t));
	/* ... and generates what a fresh session does. */
	fresh = open_tiny(512);
	T_EQ_INT(greedy_reply(fresh, more, n_msgs + 2, 16, &st), 0);
	T_EQ_INT(st.reused_tokens, 0);
	ids = session_last_ids(fresh, &n);
	T_EQ_INT(n, n_first);
	T_ASSERT(memcmp(ids, first, (size_t)n * sizeof(int32_t)) == 0);
	session_close(fresh);
	session_close(s);

	/*
	 * A chat_template.jinja beside the model is compared too: the same
	 * template as tiny's tokenizer_config (the built-in one) gives no notice,
	 * another one names the file.
	 */
	{
		json_t *tc = json_load_file(TINY "/tokenizer_config.json", 0, NULL);
		const char *tpl = json_string_value(json_object_get(tc, "chat_template"));
		char dir[] = "/tmp/test-session-XXXXXX", *cmd, *path, *cause = NULL;
		struct session_opts o = { .n_ctx = 64, .n_threads = 1, .f32 = true };
		struct session *t;
		FILE *f;

		T_ASSERT(tpl != NULL && mkdtemp(dir) != NULL);
		cmd = xasprintf("ln -s $PWD/%s/* %s/", TINY, dir);
		T_EQ_INT(system(cmd), 0);
		path = xasprintf("%s/chat_template.jinja", dir);
		o.dir = dir;
		for (int k = 0; k < 2 && tpl != NULL; k++) {
			f = fopen(path, "w");
			fputs(k == 0 ? tpl : "{{ messages }}", f);
			fclose(f);
			t = session_open(&o, &cause);
			T_ASSERT(t != NULL);
			if (k == 0)
				T_ASSERT(t != NULL && session_notice(t) == NULL);
			else
				T_STR_CONTAINS(t != NULL ? session_notice(t) : NULL,
					       "chat template (chat_template.jinja) differs");
			session_close(t);
		}
		free(cmd);
		cmd = xasprintf("rm -rf %s", dir);
		T_EQ_INT(system(cmd), 0);
		free(cmd);
		free(path);
		free(cause);
		json_decref(tc);
	}

	/* No length asked for: the one default, CTX_N_CTX_DEFAULT. */
	s = open_tiny(0);
	T_ASSERT(s != NULL);
	T_EQ_INT(session_n_ctx(s), CTX_N_CTX_DEFAULT);
	session_close(s);

	/* A prompt longer than the context is refused before any work. */
	s = open_tiny(64);
	{
		struct gen_params gp = { .max_tokens = 4 };
		char *cause = NULL;

		sampler_params_default(&gp.sp);
		T_EQ_INT(session_reply(s, msgs, n_msgs, &gp, collect, NULL, &st, &cause), -1);
		T_STR_CONTAINS(cause, "does not fit the context of 64");
		free(cause);
	}
	session_close(s);

	/*
	 * Never an id past the tokenizer's: tiny's lm_head has 1088 rows and its
	 * tokenizer 982 ids; at temperature 2 over all rows a random model picks
	 * one of the 106 padding rows about one token in ten.
	 */
	s = open_tiny(1024);
	{
		struct gen_params gp = { .max_tokens = 300 };
		struct chat_msg hi = { .role = "user", .content = "Hi" };
		int n_tok = tokenizer_n_vocab(session_tokenizer(s)), past = 0;
		char *cause = NULL;

		T_ASSERT(n_tok < 1088);
		sampler_params_default(&gp.sp);
		gp.sp.temperature = 2;
		gp.sp.top_k = 0;
		gp.sp.top_p = 1;
		gp.sp.min_p = 0;
		gp.sp.seed = 11;
		T_EQ_INT(session_reply(s, &hi, 1, &gp, collect, NULL, &st, &cause), 0);
		ids = session_last_ids(s, &n);
		T_ASSERT(n > 50);
		for (int i = 0; i < n; i++)
			past += ids[i] >= n_tok;
		T_EQ_INT(past, 0);
		free(cause);
	}
	session_close(s);
	test_think_budget();
	{
		struct chat_msg hi[] = { { .role = "user", .content = "Hi" } };

		test_continue(msgs, n_msgs, 0, 2);
		test_continue(hi, 1, 0, 2);
		test_continue(hi, 1, 3, 3 + 4);
	}
	st_close(g);
	json_decref(golden_json);
	return t_done("test-session");
}
