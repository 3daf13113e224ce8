/*
 * prompt.h - `qnext [-p PROMPT] [options]`: one question answered on stdout,
 * and the line-mode reply that the readline chat (`qnext chat --plain`,
 * ui/cli.c) runs turn after turn: the options both take, the conversation,
 * one reply streamed as it is generated.
 *
 * Main thread only; in line mode the engine runs on the main thread.
 */
#ifndef QNEXT_PROMPT_H
#define QNEXT_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"
#include "subcmd.h"

struct remote;
struct session;
struct sampler_params;

/* The options of `qnext [options]` and `qnext chat [options]`. */
struct prompt_opts {
	const char *model, *prompt, *system, *messages;
	int threads, n_ctx, max_tokens;
	int think_budget; /* --think-budget: reasoning tokens per reply at most; 0 = no limit */
	bool thinking, quiet, f32, plain, dry_run;
	bool raw; /* --raw: the full-screen chat shows answers' Markdown as it is */
	/* Sampling overrides; NAN / -1 = keep the model's default. */
	float temp, top_p, min_p, presence, repeat;
	int top_k;
	uint64_t seed;         /* SAMPLER_SEED_RANDOM: a fresh one per reply */
	uint64_t expert_cache; /* --expert-cache: XCACHE_AUTO, 0 = off, or bytes */
	uint64_t state_cache;  /* --state-cache: SNAPSHOT_AUTO, 0 = off, or bytes */
	/* --remote URL: an OpenAI-compatible server answers instead (model = its model id). */
	const char *remote, *api_key; /* api_key: --api-key, else $QNEXT_API_KEY, or NULL */
	/* The settings file (settings.h), read after the flags: the keys it sets
	 * that no flag did are in the fields above.  1 << enum setting_key: */
	unsigned from_flag, from_conf;
	struct settings conf; /* owned: prompt_opts_release */
};

/* What answers in line mode: a local session, or a remote server (--remote). */
struct prompt_engine {
	struct session *s;
	struct remote *r;
};

/* Messages with owned strings. */
struct prompt_convo {
	struct chat_msg *m;
	size_t n, cap;
};

/*
 * Parse argv into *o (OUT); 0 to go on, or -1 to exit with status *status
 * after usage (on stdout for --help) or a message.
 */
int prompt_parse_args(struct prompt_opts *o, int argc, char **argv, subcmd_usage_fn *usage,
		      int *status);

/*
 * Take the settings file's values (settings_path) for what no flag set:
 * flags override the file, the file the defaults; -m, then $QNEXT_MODEL,
 * then the file's model.  prompt_parse_args calls it.  0, or -1 after
 * "qnext: FILE:LINE: key: why" on stderr.
 */
int prompt_apply_config(struct prompt_opts *o);

/* Free what o owns (the settings read).  Accepts NULL. */
void prompt_opts_release(struct prompt_opts *o);

/* Put the sampling options the user gave over the model's defaults in *sp; returns the
 * fields set (a bitwise or of enum sampler_field; SP_SEED always). */
unsigned prompt_apply_overrides(const struct prompt_opts *o, struct sampler_params *sp);

/* Append a message (both strings copied). */
void prompt_convo_add(struct prompt_convo *c, const char *role, const char *content);
void prompt_convo_release(struct prompt_convo *c); /* empties c for reuse */

/*
 * Open what answers: the session for o->model (or the model found), or
 * with o->remote the server there.  0, or -1 after a message on stderr.
 */
int prompt_engine_open(const struct prompt_opts *o, struct prompt_engine *pe);
void prompt_engine_close(struct prompt_engine *pe);
/* The context length; 0 when a remote server does not say. */
int prompt_engine_n_ctx(const struct prompt_engine *pe);

/* Make Ctrl-C stop the reply in progress instead of the process. */
void prompt_catch_sigint(void);

/*
 * One reply to the conversation c: the answer streamed to stdout, the
 * reasoning (--thinking) or a status line to stderr, then the statistics
 * unless o->quiet; the answer is appended to c.  0, or -1 with *cause.
 */
int prompt_reply(const struct prompt_engine *pe, struct prompt_convo *c,
		 const struct prompt_opts *o, char **cause);

/* Whether s is only white space. */
bool prompt_blank(const char *s);

/* --dry-run: print the plan for the model o names; the exit status. */
int prompt_dry_run(const struct prompt_opts *o);

/* Answer o->prompt (stdin for NULL or "-") after o->messages; the exit status. */
int prompt_answer(const struct prompt_opts *o);

#endif
