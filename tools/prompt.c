/*
 * prompt.c - `qnext -p QUESTION`, and the line-mode reply it shares with
 * the readline chat (see prompt.h).
 *
 * One question renders the chat template, prefills, and streams the answer
 * to stdout as it is generated; the reasoning goes to stderr (dim on a
 * terminal) with --thinking and is hidden otherwise, when a live status
 * line on a terminal's stderr counts the tokens spent reasoning; a stats
 * line ends the run on stderr unless -q.  `qnext chat --plain` (ui/cli.c)
 * runs the same reply turn after turn on readline.
 *
 * In these line modes there is no UI thread to keep responsive, so the
 * engine runs on the main thread and Ctrl-C is a flag polled between
 * tokens.
 *
 * Exit status: 0 success, 1 runtime error, 2 usage error.
 * Main thread only.
 */
#include "prompt.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "chat-template.h"
#include "paths.h"
#include "plan.h"
#include "remote.h"
#include "sampler.h"
#include "session.h"
#include "settings.h"
#include "snapshot.h"
#include "util.h"
#include "xcache.h"

/* GLOBAL: set by the SIGINT handler, read between tokens (line modes only). */
static volatile sig_atomic_t interrupted;

/* ---- options ------------------------------------------------------------ */

static int
parse_num(const char *opt, const char *s, double lo, double hi, double *out)
{
	return arg_double("qnext", opt, s, lo, hi, out);
}

static int
parse_xcache(const char *s, uint64_t *out)
{
	char *cause = NULL;

	if (xcache_parse(s, out, &cause) == 0)
		return 0;
	fprintf(stderr, "qnext: %s\n", cause);
	free(cause);
	return -1;
}

/* --state-cache: the sizes --expert-cache takes (docs/resume.md "Budget and eviction"). */
static int
parse_state_cache(const char *s, uint64_t *out)
{
	char *cause = NULL;

	if (snapshot_budget_parse(s, out, &cause) == 0)
		return 0;
	fprintf(stderr, "qnext: %s\n", cause);
	free(cause);
	return -1;
}

static int
parse_int(const char *opt, const char *s, long lo, long hi, int *out)
{
	return arg_int("qnext", opt, s, lo, hi, out);
}

/* --seed: -1 (a fresh seed per reply) or a fixed one in [0, SAMPLER_SEED_MAX]. */
static int
parse_seed(const char *s, uint64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < -1 || v > (long long)SAMPLER_SEED_MAX) {
		fprintf(stderr,
			"qnext: --seed: '%s' is not -1 (random) or an integer in [0, %llu]\n", s,
			(unsigned long long)SAMPLER_SEED_MAX);
		return -1;
	}
	*out = v < 0 ? SAMPLER_SEED_RANDOM : (uint64_t)v;
	return 0;
}

enum {
	OPT_SYSTEM = 256,
	OPT_MESSAGES,
	OPT_TEMP,
	OPT_TOPK,
	OPT_TOPP,
	OPT_MINP,
	OPT_PRESENCE,
	OPT_REPEAT,
	OPT_SEED,
	OPT_THINKING,
	OPT_F32,
	OPT_PLAIN,
	OPT_DRY_RUN,
	OPT_XCACHE,
	OPT_STATE_CACHE,
	OPT_REMOTE,
	OPT_API_KEY,
	OPT_THINK_BUDGET,
	OPT_RAW,
};

static const struct option longopts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "prompt", required_argument, NULL, 'p' },
	{ "system", required_argument, NULL, OPT_SYSTEM },
	{ "messages", required_argument, NULL, OPT_MESSAGES },
	{ "temp", required_argument, NULL, OPT_TEMP },
	{ "top-k", required_argument, NULL, OPT_TOPK },
	{ "top-p", required_argument, NULL, OPT_TOPP },
	{ "min-p", required_argument, NULL, OPT_MINP },
	{ "presence-penalty", required_argument, NULL, OPT_PRESENCE },
	{ "repeat-penalty", required_argument, NULL, OPT_REPEAT },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "max-tokens", required_argument, NULL, 'n' },
	{ "think-budget", required_argument, NULL, OPT_THINK_BUDGET },
	{ "ctx", required_argument, NULL, 'c' },
	{ "threads", required_argument, NULL, 't' },
	{ "thinking", no_argument, NULL, OPT_THINKING },
	{ "quiet", no_argument, NULL, 'q' },
	{ "f32", no_argument, NULL, OPT_F32 },
	{ "plain", no_argument, NULL, OPT_PLAIN },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "expert-cache", required_argument, NULL, OPT_XCACHE },
	{ "state-cache", required_argument, NULL, OPT_STATE_CACHE },
	{ "remote", required_argument, NULL, OPT_REMOTE },
	{ "api-key", required_argument, NULL, OPT_API_KEY },
	{ "raw", no_argument, NULL, OPT_RAW },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The settings file's key an option sets, or -1 (settings.h). */
static int
opt_key(int ch)
{
	switch (ch) {
	case 'm':
		return SET_MODEL;
	case OPT_SYSTEM:
		return SET_SYSTEM;
	case OPT_TEMP:
		return SET_TEMP;
	case OPT_TOPK:
		return SET_TOP_K;
	case OPT_TOPP:
		return SET_TOP_P;
	case OPT_MINP:
		return SET_MIN_P;
	case OPT_PRESENCE:
		return SET_PRESENCE;
	case OPT_REPEAT:
		return SET_REPEAT;
	case OPT_SEED:
		return SET_SEED;
	case 'n':
		return SET_MAX_TOKENS;
	case 'c':
		return SET_CTX;
	case 't':
		return SET_THREADS;
	case OPT_XCACHE:
		return SET_EXPERT_CACHE;
	case OPT_THINK_BUDGET:
		return SET_THINK_BUDGET;
	case OPT_RAW:
		return SET_MARKDOWN;
	default:
		return -1;
	}
}

/* One option into o; 0 ok, -1 bad value, 1 help. */
static int
parse_opt(struct prompt_opts *o, int ch, const char *arg)
{
	double v;
	int rc = 0;

	switch (ch) {
	case 'm':
		o->model = arg;
		break;
	case 'p':
		o->prompt = arg;
		break;
	case OPT_SYSTEM:
		o->system = arg;
		break;
	case OPT_MESSAGES:
		o->messages = arg;
		break;
	case OPT_TEMP:
		rc = parse_num("--temp", arg, 0, 100, &v), o->temp = (float)v;
		break;
	case OPT_TOPK:
		rc = parse_int("--top-k", arg, 0, 1000000000, &o->top_k);
		break;
	case OPT_TOPP:
		rc = parse_num("--top-p", arg, 0, 1, &v), o->top_p = (float)v;
		break;
	case OPT_MINP:
		rc = parse_num("--min-p", arg, 0, 1, &v), o->min_p = (float)v;
		break;
	case OPT_PRESENCE:
		rc = parse_num("--presence-penalty", arg, -10, 10, &v), o->presence = (float)v;
		break;
	case OPT_REPEAT:
		rc = parse_num("--repeat-penalty", arg, 0.01, 10, &v), o->repeat = (float)v;
		break;
	case OPT_SEED:
		rc = parse_seed(arg, &o->seed);
		break;
	case 'n':
		rc = parse_int("--max-tokens", arg, 1, 1000000000, &o->max_tokens);
		break;
	case OPT_THINK_BUDGET:
		rc = parse_int("--think-budget", arg, 0, 1000000000, &o->think_budget);
		break;
	case 'c':
		rc = parse_int("--ctx", arg, 16, 1 << 24, &o->n_ctx);
		break;
	case 't':
		rc = parse_int("--threads", arg, 1, 1024, &o->threads);
		break;
	case OPT_THINKING:
		o->thinking = true;
		break;
	case 'q':
		o->quiet = true;
		break;
	case OPT_F32:
		o->f32 = true;
		break;
	case OPT_PLAIN:
		o->plain = true;
		break;
	case OPT_RAW:
		o->raw = true;
		break;
	case OPT_DRY_RUN:
		o->dry_run = true;
		break;
	case OPT_XCACHE:
		rc = parse_xcache(arg, &o->expert_cache);
		break;
	case OPT_STATE_CACHE:
		rc = parse_state_cache(arg, &o->state_cache);
		break;
	case OPT_REMOTE:
		o->remote = arg;
		break;
	case OPT_API_KEY:
		o->api_key = arg;
		break;
	case 'h':
		return 1;
	default:
		return -1;
	}
	return rc;
}

/* Parse argv; returns -1 to exit with status *status after usage() or a message. */
int
prompt_parse_args(struct prompt_opts *o, int argc, char **argv, subcmd_usage_fn *usage, int *status)
{
	int ch, r;

	memset(o, 0, sizeof(*o));
	o->temp = o->top_p = o->min_p = o->presence = o->repeat = NAN;
	o->top_k = -1;
	o->seed = SAMPLER_SEED_RANDOM;
	o->max_tokens = 32768;
	o->expert_cache = XCACHE_AUTO;
	o->state_cache = SNAPSHOT_AUTO;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "m:p:n:c:t:qh", longopts, NULL)) != -1) {
		if (opt_key(ch) >= 0)
			o->from_flag |= 1u << opt_key(ch);
		if ((r = parse_opt(o, ch, optarg)) != 0) {
			usage(r > 0 ? stdout : stderr);
			*status = r > 0 ? 0 : 2;
			return -1;
		}
	}
	if ((*status = subcmd_no_operands(argc, argv, usage)) != 0)
		return -1;
	if (o->api_key == NULL)
		o->api_key = getenv("QNEXT_API_KEY");
	if (o->remote != NULL && o->dry_run) {
		fprintf(stderr, "qnext: --dry-run plans a local model; it has no meaning with "
				"--remote\n");
		*status = 2;
		return -1;
	}
	if (prompt_apply_config(o) != 0) {
		*status = 2;
		return -1;
	}
	return 0;
}

/* The file's expert_cache (auto|off|SIZE) into o; -1 after a message naming the line. */
static int
config_xcache(struct prompt_opts *o, const char *path)
{
	char *cause = NULL, *shown;

	if (xcache_parse(o->conf.str[SET_EXPERT_CACHE], &o->expert_cache, &cause) == 0)
		return 0;
	shown = settings_display_path(path);
	fprintf(stderr, "qnext: %s:%d: expert_cache: %s\n", shown, o->conf.line[SET_EXPERT_CACHE],
		cause);
	free(shown);
	free(cause);
	return -1;
}

/* One key of the file into o's field for it (the file checked the range). */
static void
config_take(struct prompt_opts *o, enum setting_key k)
{
	const struct settings *c = &o->conf;
	double v = c->num[k];

	switch (k) {
	case SET_MODEL:
		o->model = c->str[k];
		break;
	case SET_SYSTEM:
		o->system = c->str[k];
		break;
	case SET_TEMP:
		o->temp = (float)v;
		break;
	case SET_TOP_K:
		o->top_k = (int)v;
		break;
	case SET_TOP_P:
		o->top_p = (float)v;
		break;
	case SET_MIN_P:
		o->min_p = (float)v;
		break;
	case SET_PRESENCE:
		o->presence = (float)v;
		break;
	case SET_REPEAT:
		o->repeat = (float)v;
		break;
	case SET_SEED:
		o->seed = v < 0 ? SAMPLER_SEED_RANDOM : (uint64_t)v;
		break;
	case SET_MAX_TOKENS:
		o->max_tokens = (int)v;
		break;
	case SET_CTX:
		o->n_ctx = (int)v;
		break;
	case SET_THREADS:
		o->threads = (int)v;
		break;
	case SET_THINK_BUDGET:
		o->think_budget = (int)v;
		break;
	case SET_MARKDOWN:
		o->raw = v == 0;
		break;
	default:
		break; /* expert_cache: config_xcache; mouse, thinking: the full-screen chat's */
	}
}

int
prompt_apply_config(struct prompt_opts *o)
{
	char *path = settings_path(), *cause = NULL;
	const char *env = getenv("QNEXT_MODEL");
	int rc = 0;

	if (path == NULL)
		return 0;
	if (settings_load(&o->conf, path, &cause) != 0) {
		fprintf(stderr, "qnext: %s\n", cause);
		free(cause);
		free(path);
		return -1;
	}
	for (int k = 0; k < SET_N; k++) {
		unsigned bit = 1u << k;

		if (!(o->conf.set & bit) || (o->from_flag & bit))
			continue;
		/* $QNEXT_MODEL beats the file; with --remote, -m names the server's model. */
		if (k == SET_MODEL && ((env != NULL && *env != '\0') || o->remote != NULL))
			continue;
		if (k == SET_EXPERT_CACHE && config_xcache(o, path) != 0)
			rc = -1;
		config_take(o, (enum setting_key)k);
		o->from_conf |= bit;
	}
	free(path);
	return rc;
}

void
prompt_opts_release(struct prompt_opts *o)
{
	if (o != NULL)
		settings_release(&o->conf);
}

unsigned
prompt_apply_overrides(const struct prompt_opts *o, struct sampler_params *sp)
{
	unsigned set = SP_SEED;

	if (!isnan(o->temp))
		sp->temperature = o->temp, set |= SP_TEMPERATURE;
	if (o->top_k >= 0)
		sp->top_k = o->top_k, set |= SP_TOP_K;
	if (!isnan(o->top_p))
		sp->top_p = o->top_p, set |= SP_TOP_P;
	if (!isnan(o->min_p))
		sp->min_p = o->min_p, set |= SP_MIN_P;
	if (!isnan(o->presence))
		sp->presence_penalty = o->presence, set |= SP_PRESENCE;
	if (!isnan(o->repeat))
		sp->repetition_penalty = o->repeat, set |= SP_REPEAT;
	/* Not the model's default: without --seed every reply gets a fresh seed. */
	sp->seed = o->seed;
	return set;
}

/* ---- conversation ------------------------------------------------------- */

void
prompt_convo_add(struct prompt_convo *c, const char *role, const char *content)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		c->m = xrealloc(c->m, c->cap * sizeof(*c->m));
	}
	memset(&c->m[c->n], 0, sizeof(c->m[0]));
	c->m[c->n].role = xstrdup(role);
	c->m[c->n].content = xstrdup(content);
	c->n++;
}

void
prompt_convo_release(struct prompt_convo *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free((char *)c->m[i].role);
		free((char *)c->m[i].content);
		free((char *)c->m[i].reasoning);
	}
	free(c->m);
	memset(c, 0, sizeof(*c));
}

/* Load {"messages": [{"role", "content", "reasoning_content"?}...]} from a file. */
static int
convo_load(struct prompt_convo *c, const char *path, char **cause)
{
	json_error_t err;
	json_t *j = json_load_file(path, 0, &err), *msgs, *m;
	size_t i;

	if (j == NULL)
		return cause_set(cause, "%s:%d: %s", path, err.line, err.text);
	msgs = json_is_array(j) ? j : json_object_get(j, "messages");
	if (!json_is_array(msgs)) {
		json_decref(j);
		return cause_set(cause, "%s: expected {\"messages\": [...]}", path);
	}
	json_array_foreach(msgs, i, m)
	{
		json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
		json_t *rc = json_object_get(m, "reasoning_content");

		if (!json_is_string(role) ||
		    (content != NULL && !json_is_string(content) && !json_is_null(content))) {
			json_decref(j);
			return cause_set(cause,
					 "%s: messages[%zu]: needs a string role and content", path,
					 i);
		}
		prompt_convo_add(c, json_string_value(role),
				 json_is_string(content) ? json_string_value(content) : "");
		if (json_is_string(rc))
			c->m[c->n - 1].reasoning = xstrdup(json_string_value(rc));
	}
	json_decref(j);
	return 0;
}

/* ---- streaming output ------------------------------------------------------ */

struct out_state {
	bool thinking, dim, quiet;
	bool in_reasoning; /* a dim reasoning span is open on stderr */
	char last;         /* last answer byte written */
	char *answer;      /* collected answer (chat history) */
	size_t n_answer, cap_answer;
	/*
	 * The live status line on stderr ("thinking... N tokens, S s"), so a
	 * terminal is not blank for the minutes the model may reason before it
	 * answers.  Only on a terminal, without --thinking (the reasoning itself
	 * shows then) and without -q; erased before the answer is printed.
	 */
	const struct prompt_engine *pe; /* what answers: its token count for a remote one */
	bool live;                      /* draw the status line */
	bool shown;                     /* it is on screen now */
	bool decoding;                  /* the first generated text has arrived */
	bool drew_thinking;             /* the "thinking" form has been drawn */
	int n_polls;                 /* polls since the last prefill chunk: once decoding, tokens */
	int prompt_done;             /* prompt tokens processed, all prefill passes together */
	int chunk_done, chunk_total; /* the last progress report: done of total in its pass */
	double t0;                   /* the reply began */
	double t_decode;             /* the first generated text arrived */
	double t_drawn;              /* the status line was last drawn */
};

/*
 * Redraw the status line in place, at most ten times a second; the first
 * "thinking" line at once, to say that the prompt is read.
 */
static void
status_tick(struct out_state *o)
{
	double now = now_sec();

	if (!o->live || (now - o->t_drawn < 0.1 && !(o->decoding && !o->drew_thinking)))
		return;
	o->drew_thinking = o->decoding;
	if (o->decoding)
		fprintf(stderr, "\r\033[Kthinking... %d token%s, %.1f s", o->n_polls,
			o->n_polls == 1 ? "" : "s", now - o->t_decode);
	else
		fprintf(stderr, "\r\033[Kreading the prompt... %d token%s, %.1f s", o->prompt_done,
			o->prompt_done == 1 ? "" : "s", now - o->t0);
	fflush(stderr);
	o->shown = true;
	o->t_drawn = now;
}

static void
status_erase(struct out_state *o)
{
	if (o->shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		o->shown = false;
	}
}

static bool
on_text(void *arg, enum think_part part, const char *text, size_t len)
{
	struct out_state *o = arg;

	if (!o->decoding) {
		o->decoding = true;
		o->t_decode = now_sec();
	}
	if (part == THINK_REASONING) {
		if (!o->thinking)
			return !interrupted;
		if (o->dim && !o->in_reasoning)
			fputs("\033[2m", stderr);
		o->in_reasoning = true;
		term_write(stderr, text, len);
		fflush(stderr);
		return !interrupted;
	}
	if (o->live) {
		status_erase(o);
		o->live = false;
	}
	if (o->in_reasoning) {
		fputs(o->dim ? "\033[0m\n" : "\n", stderr);
		fflush(stderr);
		o->in_reasoning = false;
	}
	term_write(stdout, text, len);
	fflush(stdout);
	o->last = text[len - 1];
	if (o->n_answer + len + 1 > o->cap_answer) {
		o->cap_answer = 2 * (o->n_answer + len + 1);
		o->answer = xrealloc(o->answer, o->cap_answer);
	}
	memcpy(o->answer + o->n_answer, text, len);
	o->n_answer += len;
	o->answer[o->n_answer] = '\0';
	return !interrupted;
}

/*
 * Called between layers of a prefill chunk and once after each generated
 * token.  Every chunk ends with on_progress, which zeroes the count, so
 * once text arrives the count is the number of tokens generated.
 */
static bool
poll_interrupt(void *arg)
{
	struct out_state *o = arg;

	o->n_polls++;
	/* A remote engine polls on a clock, not per token: count its chunks instead. */
	if (o->pe->r != NULL) {
		double t;

		remote_gen_progress(o->pe->r, &o->n_polls, &t);
	}
	if (o->decoding)
		status_tick(o);
	return interrupted != 0;
}

static void
on_progress(void *arg, int done, int total)
{
	struct out_state *o = arg;

	/* Each prefill pass (the part kept for reuse, then the rest) counts from 0. */
	if (o->chunk_done >= o->chunk_total)
		o->chunk_done = 0;
	o->prompt_done += done - o->chunk_done;
	o->chunk_done = done;
	o->chunk_total = total;
	o->n_polls = 0;
	status_tick(o);
}

static void
print_stats(const struct gen_stats *st, uint64_t seed)
{
	double pp = gen_stats_prefill_tps(st), tg = gen_stats_decode_tps(st);

	fprintf(stderr,
		"[prompt %d tokens (%d reused), prefill %.1f tok/s, decode %.1f tok/s (%d tokens), "
		"first token %.2f s, %s, seed %llu]\n",
		st->prompt_tokens, st->reused_tokens, pp, tg, st->gen_tokens, st->ttft_s,
		gen_stop_name(st->stop), (unsigned long long)seed);
}

/* One reply to the conversation; streams it and appends it to c. */
int
prompt_reply(const struct prompt_engine *pe, struct prompt_convo *c, const struct prompt_opts *o,
	     char **cause)
{
	struct gen_params gp = { .max_tokens = o->max_tokens,
				 .think_budget = o->think_budget,
				 .poll = poll_interrupt,
				 .progress = on_progress };
	const char *term = getenv("TERM");
	struct out_state os = { .pe = pe,
				.thinking = o->thinking,
				.dim = isatty(2) && getenv("NO_COLOR") == NULL,
				.quiet = o->quiet,
				.last = '\n' };
	struct gen_stats st;
	int rc;

	/* A dumb terminal cannot erase a line. */
	os.live = isatty(2) && !o->thinking && !o->quiet &&
		  (term == NULL || strcmp(term, "dumb") != 0);
	os.t0 = os.t_drawn = now_sec();

	if (pe->r != NULL)
		sampler_params_default(&gp.sp); /* the model card's, sent with every request */
	else
		gp.sp = session_gen_config(pe->s)->p;
	prompt_apply_overrides(o, &gp.sp);
	/* Resolved here, per reply, and printed with the stats so it can be reused. */
	gp.sp.seed = sampler_seed_pick(gp.sp.seed);
	interrupted = 0;
	if (pe->r != NULL)
		rc = remote_reply(pe->r, c->m, c->n, &gp, on_text, &os, &st, cause);
	else
		rc = session_reply(pe->s, c->m, c->n, &gp, on_text, &os, &st, cause);
	status_erase(&os);
	if (rc != 0) {
		free(os.answer);
		return -1;
	}
	if (os.in_reasoning)
		fputs(os.dim ? "\033[0m\n" : "\n", stderr);
	if (os.last != '\n')
		putchar('\n');
	fflush(stdout);
	if (!o->quiet)
		print_stats(&st, gp.sp.seed);
	prompt_convo_add(c, "assistant", os.answer != NULL ? os.answer : "");
	free(os.answer);
	return 0;
}

/* ---- the session and the question
 * ------------------------------------------------------------------- */

static void
on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

void
prompt_catch_sigint(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

/* The local session for o->model (or the discovered one); NULL after a message. */
static struct session *
open_session(const struct prompt_opts *o)
{
	struct session_opts so = { .n_ctx = o->n_ctx,
				   .n_threads = o->threads,
				   .f32 = o->f32,
				   .expert_cache = o->expert_cache,
				   .state_cache = o->state_cache };
	struct session *s;
	char *cause = NULL, *dir = paths_find_model(o->model, &cause);

	if (dir == NULL) {
		fprintf(stderr, "qnext: %s\n", cause);
		free(cause);
		return NULL;
	}
	so.dir = dir;
	if ((s = session_open(&so, &cause)) == NULL)
		fprintf(stderr, "qnext: %s\n", cause);
	else if (session_notice(s) != NULL)
		fprintf(stderr, "qnext: note: %s\n", session_notice(s));
	free(cause);
	free(dir);
	return s;
}

int
prompt_engine_open(const struct prompt_opts *o, struct prompt_engine *pe)
{
	struct remote_opts ro = { .url = o->remote, .api_key = o->api_key, .model = o->model };
	char *cause = NULL;

	memset(pe, 0, sizeof(*pe));
	if (o->remote == NULL)
		return (pe->s = open_session(o)) != NULL ? 0 : -1;
	if ((pe->r = remote_open(&ro, &cause)) != NULL)
		return 0;
	fprintf(stderr, "qnext: %s\n", cause);
	free(cause);
	return -1;
}

void
prompt_engine_close(struct prompt_engine *pe)
{
	session_close(pe->s);
	remote_close(pe->r);
	memset(pe, 0, sizeof(*pe));
}

int
prompt_engine_n_ctx(const struct prompt_engine *pe)
{
	return pe->r != NULL ? remote_n_ctx(pe->r) : session_n_ctx(pe->s);
}

/*
 * All of stdin (at most READ_MAX_BIG bytes), trailing newlines dropped; NULL
 * after a one-line error.  A NUL byte is refused: the prompt is a C string
 * from here on and would end there without a word.
 */
static char *
read_stdin(void)
{
	char *cause = NULL, *buf, *nul;
	size_t len;

	if ((buf = read_fd(STDIN_FILENO, "stdin", READ_MAX_BIG, &len, &cause)) == NULL) {
		fprintf(stderr, "qnext: %s\n", cause);
		free(cause);
		return NULL;
	}
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		fprintf(stderr, "qnext: stdin: the prompt has a NUL byte (at byte %zu)\n",
			(size_t)(nul - buf));
		free(buf);
		return NULL;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	return buf;
}

bool
prompt_blank(const char *s)
{
	return s[strspn(s, " \t\r\n")] == '\0';
}

static int
one_shot(const struct prompt_opts *o, const char *question)
{
	struct prompt_convo c = { 0 };
	struct prompt_engine pe;
	char *cause = NULL;
	int rc = 1;

	if (o->messages != NULL && convo_load(&c, o->messages, &cause) != 0) {
		fprintf(stderr, "qnext: %s\n", cause);
		goto out;
	}
	if (o->system != NULL && (c.n == 0 || strcmp(c.m[0].role, "system") != 0)) {
		struct prompt_convo tmp = { 0 };

		prompt_convo_add(&tmp, "system", o->system);
		for (size_t i = 0; i < c.n; i++)
			prompt_convo_add(&tmp, c.m[i].role, c.m[i].content);
		prompt_convo_release(&c);
		c = tmp;
	}
	if (question != NULL)
		prompt_convo_add(&c, "user", question);
	if (prompt_engine_open(o, &pe) != 0)
		goto out;
	prompt_catch_sigint();
	if (prompt_reply(&pe, &c, o, &cause) != 0)
		fprintf(stderr, "qnext: %s\n", cause);
	else
		rc = 0;
	prompt_engine_close(&pe);
out:
	free(cause);
	prompt_convo_release(&c);
	return rc;
}

int
prompt_dry_run(const struct prompt_opts *o)
{
	char *cause = NULL, *dir = paths_find_model(o->model, &cause);
	int status = dir != NULL && plan_print(dir, o->n_ctx, false) == 0 ? 0 : 1;

	if (dir == NULL)
		fprintf(stderr, "qnext: %s\n", cause);
	free(cause);
	free(dir);
	return status;
}

int
prompt_answer(const struct prompt_opts *o)
{
	char *question;
	int rc;

	if (o->prompt == NULL || strcmp(o->prompt, "-") == 0) {
		if ((question = read_stdin()) == NULL)
			return 1;
	} else {
		question = xstrdup(o->prompt);
	}
	if (prompt_blank(question) && o->messages == NULL) {
		fprintf(stderr, "qnext: the prompt is empty\n");
		free(question);
		return 2;
	}
	rc = one_shot(o, prompt_blank(question) ? NULL : question);
	free(question);
	return rc;
}
