/*
 * slash.c - what a typed line does: a slash command (parsed by commands.c)
 * is run here, anything else is a message to the model; and the actions of
 * the conversation list's keys (browser_key says which), the y/n question,
 * exporting and copying.
 *
 * UI thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "commands.h"
#include "markdown.h"
#include "models.h"
#include "msg.h"
#include "plan.h"
#include "queue.h"
#include "settings.h"
#include "store.h"
#include "thread-role.h"
#include "ui-int.h"
#include "util.h"
#include "xcache.h"

/* "random" or the number (static buffer: use at once). */
static const char *
seed_str(uint64_t seed)
{
	static char buf[32];

	if (seed == SAMPLER_SEED_RANDOM)
		return "random (a fresh one per answer)";
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)seed);
	return buf;
}

/* Where setting k's value came from: /set, a flag, the file, the model or built in. */
static enum setting_src
origin(const struct app *a, enum setting_key k)
{
	unsigned bit = 1u << k;

	if (a->from_chat & bit)
		return SRC_CHAT;
	if (a->from_flag & bit)
		return SRC_FLAG;
	if (a->from_conf & bit)
		return SRC_CONFIG;
	/* The sampling fields the user left are the model's once it is loaded. */
	if (k >= SET_TEMP && k <= SET_REPEAT && a->model_desc != NULL && !a->remote)
		return SRC_MODEL;
	return SRC_DEFAULT;
}

/* One line of /show: the key, its value, where the value came from. */
static void
show_line(char *buf, size_t n, size_t *len, const struct app *a, enum setting_key k,
	  const char *value)
{
	if (*len < n)
		*len += (size_t)snprintf(buf + *len, n - *len, "\n  %-17s %-22s %s",
					 settings_key_name(k), value,
					 settings_src_name(origin(a, k)));
}

/* /show params: every setting, and where it came from (docs/ui.md "Settings file"). */
static void
show_params(struct app *a)
{
	const struct sampler_params *p = &a->gp.sp;
	char buf[2048], v[SET_N][48], *path = settings_path(), *shown;
	size_t len = 0;

	snprintf(v[SET_TEMP], 48, "%.2f", p->temperature);
	snprintf(v[SET_TOP_K], 48, "%d", p->top_k);
	snprintf(v[SET_TOP_P], 48, "%.2f", p->top_p);
	snprintf(v[SET_MIN_P], 48, "%.2f", p->min_p);
	snprintf(v[SET_PRESENCE], 48, "%.2f", p->presence_penalty);
	snprintf(v[SET_REPEAT], 48, "%.2f", p->repetition_penalty);
	snprintf(v[SET_SEED], 48, "%s",
		 p->seed == SAMPLER_SEED_RANDOM ? "random" : seed_str(p->seed));
	snprintf(v[SET_MAX_TOKENS], 48, "%d", a->gp.max_tokens);
	snprintf(v[SET_CTX], 48, a->n_ctx > 0 ? "%d" : "the model's", a->n_ctx);
	snprintf(v[SET_THREADS], 48, a->threads > 0 ? "%d" : "physical cores", a->threads);
	snprintf(v[SET_EXPERT_CACHE], 48, "%s",
		 a->expert_cache == XCACHE_AUTO ? "auto"
		 : a->expert_cache == 0         ? "off"
						: "a size");
	snprintf(v[SET_MOUSE], 48, "%s", a->mouse ? "on" : "off");
	snprintf(v[SET_MARKDOWN], 48, "%s", a->tr.markdown ? "on" : "off");
	snprintf(v[SET_THINKING], 48, "%s", a->think_default_open ? "show" : "hide");
	snprintf(v[SET_THINK_BUDGET], 48, a->gp.think_budget > 0 ? "%d" : "off",
		 a->gp.think_budget);
	shown = path != NULL ? settings_display_path(path) : xstrdup("(no $HOME)");
	len = (size_t)snprintf(buf, sizeof(buf), "settings (file %s; flags override it):", shown);
	for (int k = SET_TEMP; k < SET_N; k++)
		if (k != SET_SYSTEM)
			show_line(buf, sizeof(buf), &len, a, (enum setting_key)k, v[k]);
	show_line(buf, sizeof(buf), &len, a, SET_MODEL, a->model_dir);
	ui_info(a, "%s", buf);
	free(shown);
	free(path);
}

static void
show(struct app *a, const struct command *c)
{
	const struct gauge_view *g = gauges(a);

	if (c->show == SHOW_SYSTEM)
		ui_info(a, "system prompt: %s", a->system != NULL ? a->system : "(none)");
	else if (c->show == SHOW_MODEL)
		ui_info(a, "model: %s\n%s", a->model_dir,
			a->model_desc != NULL ? a->model_desc : "(not loaded)");
	else if (c->show == SHOW_STATS)
		ui_info(a,
			"last turn: prompt %d tokens (%d reused), %d generated, prefill %.0f "
			"tok/s, decode %.1f tok/s, first token %.2f s",
			g->last_stats.prompt_tokens, g->last_stats.reused_tokens,
			g->last_stats.gen_tokens, g->prefill_tps, g->decode_tps, g->ttft);
	else
		show_params(a);
}

/* The settings file's key for a /set parameter. */
static enum setting_key
param_key(enum command_param p)
{
	static const enum setting_key keys[] = {
		[PARAM_TEMP] = SET_TEMP,         [PARAM_TOP_P] = SET_TOP_P,
		[PARAM_TOP_K] = SET_TOP_K,       [PARAM_MIN_P] = SET_MIN_P,
		[PARAM_SEED] = SET_SEED,         [PARAM_MAX_TOKENS] = SET_MAX_TOKENS,
		[PARAM_PRESENCE] = SET_PRESENCE, [PARAM_REPEAT] = SET_REPEAT,
		[PARAM_MOUSE] = SET_MOUSE,       [PARAM_THINK_BUDGET] = SET_THINK_BUDGET,
		[PARAM_MARKDOWN] = SET_MARKDOWN,
	};

	return keys[p];
}

/* /set applied: say so, and with --save write the settings file too. */
static void
set_done(struct app *a, const struct command *c)
{
	enum setting_key k = param_key(c->param);
	char *path, *value, *cause = NULL, *shown;

	if (!c->save) {
		ui_status(a, false, "%s set for this chat only (/set --save %s ... keeps it)",
			  settings_key_name(k), commands_param_name(c->param));
		return;
	}
	if ((path = settings_path()) == NULL) {
		ui_status(a, true, "not saved: no $XDG_CONFIG_HOME or $HOME");
		return;
	}
	value = k == SET_MOUSE || k == SET_MARKDOWN       ? xstrdup(c->value ? "on" : "off")
		: c->value == (double)(long long)c->value ? xasprintf("%.0f", c->value)
							  : xasprintf("%.9g", c->value);
	shown = settings_display_path(path);
	if (settings_save(path, settings_key_name(k), value, &cause) != 0)
		ui_status(a, true, "set for this chat, not saved: %s", cause);
	else
		ui_status(a, false, "%s = %s, saved in %s", settings_key_name(k), value, shown);
	free(shown);
	free(cause);
	free(value);
	free(path);
}

static void
set_param(struct app *a, const struct command *c)
{
	struct sampler_params *p = &a->gp.sp;

	/* A choice of the user's: a model loaded later does not undo it. */
	switch (c->param) {
	case PARAM_TEMP:
		p->temperature = (float)c->value, a->sp_set |= SP_TEMPERATURE;
		break;
	case PARAM_TOP_P:
		p->top_p = (float)c->value, a->sp_set |= SP_TOP_P;
		break;
	case PARAM_TOP_K:
		p->top_k = (int)c->value, a->sp_set |= SP_TOP_K;
		break;
	case PARAM_MIN_P:
		p->min_p = (float)c->value, a->sp_set |= SP_MIN_P;
		break;
	case PARAM_SEED:
		p->seed = c->value < 0 ? SAMPLER_SEED_RANDOM : (uint64_t)c->value;
		a->sp_set |= SP_SEED;
		break;
	case PARAM_MAX_TOKENS:
		a->gp.max_tokens = (int)c->value;
		break;
	case PARAM_PRESENCE:
		p->presence_penalty = (float)c->value, a->sp_set |= SP_PRESENCE;
		break;
	case PARAM_REPEAT:
		p->repetition_penalty = (float)c->value, a->sp_set |= SP_REPEAT;
		break;
	case PARAM_THINK_BUDGET:
		a->gp.think_budget = (int)c->value;
		break;
	case PARAM_MOUSE:
		screen_mouse(a, c->value != 0);
		break;
	case PARAM_MARKDOWN: /* every answer is laid out again at the next draw (entry_stale) */
		a->tr.markdown = c->value != 0;
		break;
	}
	a->from_chat |= 1u << param_key(c->param);
	set_done(a, c);
}

/* The current chat's title for editing, or NULL (static buffer: use at once). */
static const char *
current_title(struct app *a)
{
	static char buf[256];
	struct store_conv c;

	if (history_store(a) == NULL || a->conv_id <= 0 ||
	    store_conv_get(history_store(a), a->conv_id, &c, NULL) != 0)
		return NULL;
	snprintf(buf, sizeof(buf), "%s", c.title != NULL ? c.title : "");
	store_conv_release(&c);
	return buf;
}

static void
rename_line(struct app *a, const char *line)
{
	char *cause = NULL;

	if (line[0] == '\0')
		return;
	if (!chat_ensure_conv(a) ||
	    store_conv_rename(history_store(a), a->conv_id, line, &cause) != 0)
		chat_store_warn(a, cause);
	else
		ui_status(a, false, "renamed to \"%s\"", line);
}

static void
delete_current(struct app *a)
{
	char *cause = NULL;

	if (history_store(a) != NULL && a->conv_id > 0 &&
	    store_conv_delete(history_store(a), a->conv_id, &cause) != 0) {
		chat_store_warn(a, cause);
		return;
	}
	chat_drop(a);
	ui_status(a, false, "conversation deleted");
}

void
slash_confirm(struct app *a, const char *question, void (*fn)(struct app *))
{
	assert_ui();
	free(a->confirm_text);
	a->confirm_text = xasprintf("%s (y/n)", question);
	a->confirm_fn = fn;
	a->overlay = OVERLAY_CONFIRM;
	screen_dirty(a);
}

void
slash_export(struct app *a, int64_t id, bool json, const char *path)
{
	enum store_format fmt = json ? STORE_JSON : STORE_MARKDOWN;
	char *cause = NULL, *def = NULL;

	assert_ui();
	if (history_store(a) == NULL || id <= 0) {
		ui_status(a, true, "nothing saved to export");
		return;
	}
	if (path == NULL)
		path = def = xasprintf("qnext-%lld.%s", (long long)id, json ? "json" : "md");
	if (store_export_file(history_store(a), id, fmt, path, &cause) != 0)
		ui_status(a, true, "export failed: %s", cause);
	else
		ui_status(a, false, "exported to %s", path);
	free(cause);
	free(def);
}

/*
 * Copy text to the terminal's clipboard with OSC 52.  Plain, also under
 * tmux: tmux takes it into its buffer and the outer clipboard with
 * `set-clipboard on`, while the passthrough wrapping is dropped unless
 * `allow-passthrough` is on (off by default).
 */
static void
osc52(struct app *a, const char *text)
{
	size_t n = strlen(text);
	unsigned char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock(b64, (const unsigned char *)text, (int)n);
	printf("\033]52;c;%s\a", b64);
	fflush(stdout);
	free(b64);
	ui_status(a, false, "copied %zu bytes (through the terminal: OSC 52)", n);
}

static void
copy(struct app *a, enum command_copy what)
{
	struct entry *e = transcript_last(&a->tr, ENTRY_ASSISTANT);
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (what == COPY_ALL) {
		for (int i = 0; i < a->tr.n; i++) {
			const struct entry *x = a->tr.e[i];
			const char *who = x->kind == ENTRY_USER ? "## you\n\n" : "## qnext\n\n";

			if (x->kind != ENTRY_USER && x->kind != ENTRY_ASSISTANT)
				continue;
			cap = len + strlen(who) + x->len + 3;
			buf = xrealloc(buf, cap);
			len += (size_t)sprintf(buf + len, "%s%s\n\n", who, x->text);
		}
	} else if (e != NULL && what == COPY_CODE) {
		/* The last fenced code block of the last answer, as the screen finds fences. */
		buf = md_last_code(e->text, e->len);
	} else if (e != NULL)
		buf = xstrdup(e->text);
	if (buf == NULL || buf[0] == '\0') {
		ui_status(a, true, "nothing to copy: %s",
			  what == COPY_CODE               ? "no code block in the last answer"
			  : e == NULL && what != COPY_ALL ? "no answer yet"
							  : "it is empty");
		free(buf);
		return;
	}
	osc52(a, buf);
	free(buf);
}

static void
set_system(struct app *a, const char *text)
{
	char *cause = NULL;

	free(a->system);
	a->system = text != NULL && text[0] != '\0' ? xstrdup(text) : NULL;
	if (history_store(a) != NULL && a->conv_id > 0 &&
	    store_conv_set_system(history_store(a), a->conv_id, a->system, &cause) != 0)
		chat_store_warn(a, cause);
	ui_status(a, false, a->system ? "system prompt set" : "system prompt cleared");
}

static void
think_all(struct app *a, enum command_think t)
{
	bool open = t == THINK_SHOW || (t == THINK_TOGGLE && !a->think_default_open);

	a->think_default_open = open;
	for (int i = 0; i < a->tr.n; i++)
		a->tr.e[i]->think_open = open;
	screen_dirty(a);
}

/*
 * Ask the engine for the models /model lists (MSG_MODELS; models.h says why not here): the one
 * loaded and the settings file's first.  pick: 0 to show them, N to load the N-th.
 */
static void
ask_models(struct app *a, long pick)
{
	struct msg m = { .type = MSG_MODELS, .u.models = { .find = models_find, .pick = pick } };
	struct settings conf;
	char *path = settings_path();

	memset(&conf, 0, sizeof(conf));
	if (path != NULL && settings_load(&conf, path, NULL) == 0 && conf.str[SET_MODEL] != NULL)
		m.u.models.known[1] = xstrdup(conf.str[SET_MODEL]);
	m.u.models.known[0] = xstrdup(a->model_dir);
	settings_release(&conf);
	free(path);
	queue_push(a->to_engine, &m);
	ui_status(a, false, "/model: looking for models...");
}

/* /model: the list, numbered. */
static void
list_models(struct app *a, const struct model_found *v, size_t n)
{
	char buf[4096], size[32];
	size_t len;

	len = (size_t)snprintf(buf, sizeof(buf), "models (/model N loads one):");
	for (size_t i = 0; i < n && len < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "\n  %zu. %s  %s  %s%s",
					i + 1, v[i].dir, plan_bytes(v[i].size, size, sizeof(size)),
					v[i].verdict,
					strcmp(v[i].dir, a->model_dir) == 0 ? "  (loaded)" : "");
	ui_info(a, "%s", n > 0 ? buf : "no model found: /model DIR loads one by its folder");
}

/* Load the model in dir in the background, unless the engine is busy. */
static void
load_model(struct app *a, const char *dir)
{
	if (a->state == APP_GENERATING || a->state == APP_LOADING) {
		ui_status(a, true, "/model: wait for the %s first (Ctrl-C stops an answer)",
			  a->state == APP_LOADING ? "load" : "answer");
		return;
	}
	free(a->model_dir);
	a->model_dir = xstrdup(dir);
	free(a->model_desc);
	a->model_desc = NULL;
	chat_load(a);
	ui_info(a, "loading %s; this chat goes on with it", a->model_dir);
}

void
slash_models_found(struct app *a, const struct msg_models *f)
{
	assert_ui();
	ui_status_clear(a);
	if (f->pick == 0)
		list_models(a, f->found, f->n);
	else if ((size_t)f->pick > f->n)
		ui_status(a, true, "/model: no model %ld; /model lists %zu", f->pick, f->n);
	else
		load_model(a, f->found[f->pick - 1].dir);
}

/* /model [N|DIR]: list the models found, or load one in the background. */
static void
slash_model(struct app *a, const char *arg)
{
	char *end = NULL;
	long i = arg != NULL ? strtol(arg, &end, 10) : 0;

	if (a->remote)
		ui_status(a, true, "/model: a remote server answers; it chooses its models");
	else if (arg == NULL)
		ask_models(a, 0);
	else if (*end != '\0')
		load_model(a, arg);
	else if (i < 1)
		ui_status(a, true, "/model: no model %ld; /model lists them", i);
	else
		ask_models(a, i);
}

/* /help: the overlay, or one command's lines in the transcript. */
void
slash_help(struct app *a, const char *topic)
{
	char *t;

	assert_ui();
	if (topic == NULL) {
		screen_help_open(a);
	} else if ((t = commands_help_topic(topic)) == NULL)
		ui_status(a, true, "no command /%s; /help lists them",
			  topic[0] == '/' ? topic + 1 : topic);
	else {
		ui_info(a, "%s", t);
		free(t);
	}
}

static void
run_command(struct app *a, const struct command *c)
{
	switch (c->id) {
	case CMD_HELP:
		slash_help(a, c->arg);
		break;
	case CMD_NEW:
		chat_new(a);
		break;
	case CMD_REGEN:
		chat_regen(a);
		break;
	case CMD_EDIT:
		chat_edit(a, c->number);
		break;
	case CMD_SYSTEM:
		if (c->arg == NULL)
			ui_info(a, "system prompt: %s", a->system ? a->system : "(none)");
		else
			set_system(a, c->arg);
		break;
	case CMD_SET:
		set_param(a, c);
		break;
	case CMD_SHOW:
		show(a, c);
		break;
	case CMD_THINK:
		think_all(a, c->think);
		break;
	case CMD_CHATS:
		browser_open(a, NULL);
		break;
	case CMD_SEARCH:
		browser_open(a, c->arg);
		break;
	case CMD_RENAME:
		if (c->arg != NULL)
			rename_line(a, c->arg);
		else
			inputline_ask(a, "new title: ", current_title(a), rename_line);
		break;
	case CMD_DELETE:
		slash_confirm(a, "delete this conversation?", delete_current);
		break;
	case CMD_EXPORT:
		slash_export(a, a->conv_id, c->format == EXPORT_JSON, c->path);
		break;
	case CMD_COPY:
		copy(a, c->copy);
		break;
	case CMD_QUIT:
		a->quit = true;
		break;
	case CMD_CONTINUE:
		chat_continue(a);
		break;
	case CMD_DROP:
		chat_drop_turns(a, (int)c->value);
		break;
	case CMD_COMPACT:
		chat_compact(a);
		break;
	case CMD_MODEL:
		slash_model(a, c->arg);
		break;
	}
	screen_dirty(a);
}

static void
user_line(struct app *a, const char *line)
{
	struct command c;
	char *cause = NULL;
	int r;

	if ((r = commands_parse(line, &c, &cause)) == 0) {
		run_command(a, &c);
		command_free(&c);
		return;
	}
	if (r < 0) {
		ui_status(a, true, "%s", cause);
		free(cause);
		return;
	}
	if (a->state != APP_IDLE) {
		ui_status(a, true, "%s: your text is kept, Enter sends it then%s",
			  a->state == APP_GENERATING ? "an answer is being generated"
			  : a->state == APP_LOADING  ? "the model is still loading"
						     : "no model is loaded (see above)",
			  a->state == APP_GENERATING ? " (Ctrl-C stops the answer)" : "");
		free(a->kept_line);
		a->kept_line = xstrdup(line);
		return;
	}
	if (line[0] == '/' && line[1] == '/')
		line++; /* "//text" is a message that starts with a slash */
	transcript_add(&a->tr, ENTRY_USER, line);
	history_sync(a); /* the question, and anything still unsaved above it */
	chat_send(a);
}

static void
quit_confirmed(struct app *a)
{
	a->quit = true;
}

void
slash_line(struct app *a, const char *line)
{
	assert_ui();
	if (line != NULL) {
		user_line(a, line);
		return;
	}
	/* Ctrl-D on an empty line */
	if (a->state == APP_GENERATING)
		slash_confirm(a, "an answer is being generated: quit anyway?", quit_confirmed);
	else
		a->quit = true;
}

void
slash_search_line(struct app *a, const char *line)
{
	int from;

	assert_ui();
	if (line[0] != '\0') {
		free(a->tr.search);
		a->tr.search = xstrdup(line);
	}
	if (a->tr.search == NULL)
		return;
	from = a->tr.search_hit >= 0 ? a->tr.search_hit : a->tr.total_lines;
	a->tr.search_hit = transcript_find(&a->tr, a->tr.search, from);
	if (a->tr.search_hit < 0 && from < a->tr.total_lines) /* wrap around */
		a->tr.search_hit = transcript_find(&a->tr, a->tr.search, a->tr.total_lines);
	if (a->tr.search_hit < 0) {
		ui_status(a, true, "not found: %s", a->tr.search);
		return;
	}
	/* Put the hit in the middle of the transcript area. */
	a->tr.scroll = MAX(0, a->tr.total_lines - a->tr.search_hit - (screen_rows(a) - 4) / 2);
	ui_status(a, false, "found \"%s\" (Ctrl-S, Enter: next)", a->tr.search);
}

static void
browser_delete_confirmed(struct app *a)
{
	char *cause = NULL;
	int64_t id = browser_target(a);

	if (store_conv_delete(history_store(a), id, &cause) != 0) {
		ui_status(a, true, "delete failed: %s", cause);
		free(cause);
	} else {
		if (id == a->conv_id)
			chat_drop(a);
		ui_status(a, false, "conversation deleted");
	}
	browser_open(a, NULL);
}

/* A key in the conversation list, and what it asks for. */
void
slash_browser_key(struct app *a, int k)
{
	int64_t id;
	char *title, *q;

	assert_ui();
	switch (browser_key(a, k, &id, &title)) {
	case BROWSER_OPEN:
		chat_open(a, id);
		break;
	case BROWSER_SEARCH:
		inputline_ask(a, "search chats: ", NULL, browser_search_line);
		break;
	case BROWSER_RENAME:
		inputline_ask(a, "new title: ", title, browser_rename_line);
		break;
	case BROWSER_DELETE:
		q = xasprintf("delete #%lld \"%s\"?", (long long)id, title);
		slash_confirm(a, q, browser_delete_confirmed);
		free(q);
		break;
	case BROWSER_EXPORT:
		slash_export(a, id, false, NULL);
		break;
	case BROWSER_STAY:
		break;
	}
	free(title);
}
