/*
 * app.h - the full-screen chat (ncurses + readline) and its engine thread.
 *
 * app_run() takes over the terminal, starts the engine thread, asks it to
 * load the model in the background, and runs the UI loop until the user
 * quits; the terminal is restored on every way out.
 *
 * UI thread only (the caller's thread becomes the UI thread).
 */
#ifndef QNEXT_APP_H
#define QNEXT_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "chat-types.h"

struct remote_opts;

struct app_opts {
	const char *model_dir;
	int n_ctx;                /* 0 = the engine's default (it reports the length) */
	int threads;              /* 0 = physical cores */
	const char *system;       /* system prompt, or NULL */
	struct gen_params params; /* token limit, and the sampling fields in params_set */
	unsigned params_set;      /* enum sampler_field: what the user chose; the rest
				     are the model's defaults, which the engine reports */
	uint64_t expert_cache;    /* session_opts.expert_cache */
	uint64_t state_cache;     /* session_opts.state_cache */
	/* Not NULL: chat with this OpenAI-compatible server instead (model_dir is then
	 * its URL, for the screen until the server is reached). */
	const struct remote_opts *remote;
	/* Where the settings came from (1 << enum setting_key, settings.h): the
	 * command line, the settings file; and the file's mouse and thinking. */
	unsigned from_flag, from_conf;
	bool mouse, think_open;
	bool raw; /* answers shown as written, their Markdown not laid out */
};

/* Run the chat; returns the process exit status. */
int app_run(const struct app_opts *o);

#endif
