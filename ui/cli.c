/*
 * cli.c - the chat started from the command line (see cli.h): the
 * full-screen one (app.c) or, with --plain or without a terminal, the
 * line-mode chat on readline, which runs prompt.h's reply turn after turn;
 * Ctrl-C stops the current answer.  `qnext [options]` starts here too and
 * hands a question (-p, --messages, or stdin that is not a terminal) to
 * tools/prompt.c.
 *
 * It lives in ui/ because it drives readline.  In line mode there is no UI
 * thread to keep responsive, so the engine runs on the main thread.
 *
 * Exit status: 0 success, 1 runtime error, 2 usage error.
 * Main thread only.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "app.h"
#include "chat-template.h"
#include "forward.h"
#include "paths.h"
#include "prompt.h"
#include "remote.h"
#include "sampler.h"
#include "session.h"
#include "settings.h"
#include "subcmd.h"
#include "util.h"

static void
chat_usage(FILE *f)
{
	subcmd_usage(f, "chat");
	fprintf(f,
		"The full-screen chat; --plain, or input or output that is not a terminal,\n"
		"gives the line-mode chat on readline (Ctrl-C stops an answer, /quit leaves).\n"
		"  -m, --model DIR       model directory (else $QNEXT_MODEL, then the HF cache)\n"
		"  --system TEXT         system message\n"
		"  --temp X  --top-k N  --top-p X  --min-p X  --presence-penalty X\n"
		"  --repeat-penalty X    sampling; defaults from generation_config.json\n"
		"  --seed N              fixed seed in [0, 2^53-1]; -1 or none: fresh per reply\n"
		"  -n, --max-tokens N    tokens per reply at most (default 32768)\n"
		"  --think-budget N      reasoning tokens per reply at most, then the\n"
		"                        answer (default 0: no limit)\n"
		"  -c, --ctx N           context length (default " STR(
			CTX_N_CTX_DEFAULT) ")\n"
					   "  -t, --threads N       worker threads (default: "
					   "physical cores)\n"
					   "  --thinking            --plain: show the reasoning on "
					   "stderr\n"
					   "  -q, --quiet           --plain: no statistics line\n"
					   "  --f32                 float32 activations (the "
					   "reference path; slower)\n"
					   "  --expert-cache auto|off|SIZE\n"
					   "                        when the model does not fit in "
					   "RAM, hold SIZE of routed\n"
					   "                        experts (800M, 12G) read from "
					   "disk as routed; auto\n"
					   "                        (default) sizes it from free "
					   "memory, only when needed\n"
					   "  --state-cache auto|off|SIZE\n"
					   "                        disk for saved states of "
					   "conversations, so reopening\n"
					   "                        one re-reads nothing (default "
					   "auto: 8G at most)\n"
					   "  --remote URL          chat with an OpenAI-compatible "
					   "server (qnext serve,\n"
					   "                        vLLM, llama-server); -m names "
					   "its "
					   "model\n"
					   "  --api-key KEY         its key (default: "
					   "$QNEXT_API_KEY)\n"
					   "  --raw                 answers as written (no "
					   "Markdown)\n");
}

static int
chat_plain(const struct prompt_opts *o)
{
	struct prompt_convo c = { 0 };
	struct prompt_engine pe;
	char *line, *cause = NULL;
	int n_ctx;

	if (prompt_engine_open(o, &pe) != 0)
		return 1;
	n_ctx = prompt_engine_n_ctx(&pe);
	if (o->system != NULL)
		prompt_convo_add(&c, "system", o->system);
	prompt_catch_sigint();
	if (pe.r != NULL)
		fprintf(stderr, "qnext: chat with %s", remote_model(pe.r));
	if (n_ctx > 0)
		fprintf(stderr, "%s %d-token context", pe.r != NULL ? "," : "qnext: chat with",
			n_ctx);
	fprintf(stderr, "; Ctrl-C stops an answer, Ctrl-D or /quit leaves\n");
	while ((line = readline("> ")) != NULL) {
		if (strcmp(line, "/quit") == 0) {
			free(line);
			break;
		}
		if (!prompt_blank(line)) {
			add_history(line);
			prompt_convo_add(&c, "user", line);
			if (prompt_reply(&pe, &c, o, &cause) != 0) {
				fprintf(stderr, "qnext: %s\n", cause);
				free((char *)c.m[--c.n].role);
				free((char *)c.m[c.n].content);
			}
		}
		free(line);
	}
	free(cause);
	prompt_convo_release(&c);
	prompt_engine_close(&pe);
	return 0;
}

/* The full-screen chat on the model found for o. */
static int
full_screen(const struct prompt_opts *o)
{
	struct app_opts ao = { .n_ctx = o->n_ctx,
			       .threads = o->threads,
			       .system = o->system,
			       .expert_cache = o->expert_cache,
			       .state_cache = o->state_cache,
			       .raw = o->raw };
	struct remote_opts ro = { .url = o->remote, .api_key = o->api_key, .model = o->model };
	char *cause = NULL, *dir;
	int rc;

	if (o->remote != NULL) {
		ao.remote = &ro;
		dir = xstrdup(o->remote);
	} else {
		dir = paths_find_model(o->model, &cause);
	}
	if (dir == NULL) {
		fprintf(stderr, "qnext: %s\n", cause);
		free(cause);
		free(dir);
		return 1;
	}
	ao.model_dir = dir;
	/* The user's choices only: the engine reads the model's defaults. */
	ao.params_set = prompt_apply_overrides(o, &ao.params.sp);
	ao.params.max_tokens = o->max_tokens;
	ao.params.think_budget = o->think_budget;
	ao.from_flag = o->from_flag;
	ao.from_conf = o->from_conf;
	ao.mouse = (o->conf.set & (1u << SET_MOUSE)) && o->conf.num[SET_MOUSE] != 0;
	ao.think_open = (o->conf.set & (1u << SET_THINKING)) && o->conf.num[SET_THINKING] != 0;
	rc = app_run(&ao);
	free(dir);
	return rc;
}

/* `qnext [options]` lists every command: it is where a user starts. */
static void
cli_usage(FILE *f)
{
	subcmd_usage_all(f);
}

int
cli_main(int argc, char **argv)
{
	struct prompt_opts o;
	int status;

	if (prompt_parse_args(&o, argc, argv, cli_usage, &status) != 0)
		return status;
	if (o.dry_run)
		status = prompt_dry_run(&o);
	else if (o.prompt == NULL && o.messages == NULL && isatty(0))
		status = o.plain ? chat_plain(&o) : full_screen(&o);
	else
		status = prompt_answer(&o);
	prompt_opts_release(&o);
	return status;
}

int
cli_chat_main(int argc, char **argv)
{
	struct prompt_opts o;
	int status;

	if (prompt_parse_args(&o, argc, argv, chat_usage, &status) != 0)
		return status;
	status = o.plain || !isatty(0) || !isatty(1) ? chat_plain(&o) : full_screen(&o);
	prompt_opts_release(&o);
	return status;
}
