/*
 * test-commands.c - every slash command and alias parsed, blanks, argument
 * errors and ranges, messages that are not commands, Tab completion, and a
 * help text that names every command.
 */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "t.h"
#include "util.h"

/* Parse a line that must be a valid command. */
static struct command
ok(const char *line)
{
	struct command c;
	char *cause = NULL;
	int rc = commands_parse(line, &c, &cause);

	if (rc != 0)
		fprintf(stderr, "'%s': rc %d, %s\n", line, rc, cause ? cause : "(no cause)");
	T_EQ_INT(rc, 0);
	T_ASSERT(cause == NULL);
	free(cause);
	return c;
}

/* Parse a line that must fail with a cause containing want. */
static void
bad(const char *line, const char *want)
{
	struct command c;
	char *cause = NULL;

	T_EQ_INT(commands_parse(line, &c, &cause), -1);
	T_STR_CONTAINS(cause, want);
	T_ASSERT(cause == NULL || strchr(cause, '\n') == NULL); /* one line */
	T_ASSERT(c.arg == NULL && c.path == NULL);
	command_free(&c);
	free(cause);
}

static void
id_only(const char *line, enum command_id id)
{
	struct command c = ok(line);

	T_EQ_INT(c.id, id);
	T_ASSERT(c.arg == NULL);
	command_free(&c);
}

/* Parse a line whose command takes text and check the text. */
static void
with_arg(const char *line, enum command_id id, const char *arg)
{
	struct command c = ok(line);

	T_EQ_INT(c.id, id);
	T_ASSERT(arg == NULL ? c.arg == NULL : c.arg != NULL && strcmp(c.arg, arg) == 0);
	command_free(&c);
}

static void
test_simple(void)
{
	id_only("/help", CMD_HELP);
	id_only("/?", CMD_HELP);
	with_arg("/help set", CMD_HELP, "set");
	with_arg("/help /set", CMD_HELP, "set");
	id_only("/new", CMD_NEW);
	id_only("/clear", CMD_NEW);
	id_only("/regen", CMD_REGEN);
	id_only("/chats", CMD_CHATS);
	id_only("/delete", CMD_DELETE);
	id_only("/quit", CMD_QUIT);
	id_only("/exit", CMD_QUIT);
	id_only("/bye", CMD_QUIT);
	/* Blanks around and case. */
	id_only("  /quit  ", CMD_QUIT);
	id_only("\t/regen\n", CMD_REGEN);
	id_only("/QUIT", CMD_QUIT);
	id_only("/Help", CMD_HELP);
	T_ASSERT(strcmp(commands_name(CMD_QUIT), "/quit") == 0);
	T_ASSERT(strcmp(commands_name(CMD_SYSTEM), "/system") == 0);
}

static void
test_text_args(void)
{
	with_arg("/system", CMD_SYSTEM, NULL);
	with_arg("/system You are terse.", CMD_SYSTEM, "You are terse.");
	with_arg("/system   two  spaces kept  inside  ", CMD_SYSTEM, "two  spaces kept  inside");
	with_arg("/system \"\"", CMD_SYSTEM, "");
	with_arg("/system \"\"\"\nline one\nline two\n\"\"\"", CMD_SYSTEM, "line one\nline two");
	with_arg("/system\nline one\nline two", CMD_SYSTEM, "line one\nline two");
	with_arg("/system \"\"\"\"\"\"", CMD_SYSTEM, "");
	with_arg("/system say \"hi\"", CMD_SYSTEM, "say \"hi\"");
	bad("/system \"\"\"unclosed", "missing the closing \"\"\"");
	with_arg("/search kv cache", CMD_SEARCH, "kv cache");
	with_arg("/rename  My chat ", CMD_RENAME, "My chat");
	with_arg("/rename", CMD_RENAME, NULL); /* the UI asks for a title */
	bad("/search", "/search: expected a query");
	bad("/search   ", "/search: expected a query");
	{
		struct command c = ok("/continue");

		T_EQ_INT(c.id, CMD_CONTINUE);
		command_free(&c);
		c = ok("/compact");
		T_EQ_INT(c.id, CMD_COMPACT);
		command_free(&c);
		c = ok("/drop");
		T_EQ_INT(c.id, CMD_DROP);
		T_ASSERT(c.value == 1);
		command_free(&c);
		c = ok("/drop 3");
		T_ASSERT(c.value == 3);
		command_free(&c);
	}
	bad("/drop 0", "/drop: 0 is out of range (1 or more)");
	bad("/drop two", "/drop: expected a whole number, got 'two'");
	bad("/drop 1 2", "/drop: unexpected '2'");
	bad("/continue now", "/continue takes no arguments");
	bad("/compact 1", "/compact takes no arguments");
	bad("/read x", "unknown command /read");
}

static void
set_ok(const char *line, enum command_param p, double v)
{
	struct command c = ok(line);

	T_EQ_INT(c.id, CMD_SET);
	T_EQ_INT(c.param, p);
	T_NEAR(c.value, v, 0.0);
	command_free(&c);
}

static void
test_set(void)
{
	set_ok("/set temp 0.7", PARAM_TEMP, 0.7);
	set_ok("/set temperature 1", PARAM_TEMP, 1.0);
	set_ok("/set TEMP 0", PARAM_TEMP, 0.0);
	set_ok("/set temp 5", PARAM_TEMP, 5.0);
	set_ok("/set\ttop_p\t0.95 ", PARAM_TOP_P, 0.95);
	set_ok("/set top_k 20", PARAM_TOP_K, 20.0);
	set_ok("/set top_k 0", PARAM_TOP_K, 0.0);
	set_ok("/set top_k 20.0", PARAM_TOP_K, 20.0);
	set_ok("/set min_p 0.05", PARAM_MIN_P, 0.05);
	set_ok("/set seed 0", PARAM_SEED, 0.0);
	set_ok("/set seed 9007199254740991", PARAM_SEED, 9007199254740991.0);
	set_ok("/set seed -1", PARAM_SEED, -1.0); /* back to a fresh seed per answer */
	set_ok("/set max_tokens 1", PARAM_MAX_TOKENS, 1.0);
	set_ok("/set presence -1.5", PARAM_PRESENCE, -1.5);
	set_ok("/set presence_penalty 1.5", PARAM_PRESENCE, 1.5);
	set_ok("/set repeat 1.1", PARAM_REPEAT, 1.1);
	set_ok("/set repetition_penalty 1", PARAM_REPEAT, 1.0);
	set_ok("/set temp -0", PARAM_TEMP, 0.0);
	set_ok("/set think_budget 512", PARAM_THINK_BUDGET, 512.0);
	set_ok("/set think_budget 0", PARAM_THINK_BUDGET, 0.0);
	set_ok("/set think_budget off", PARAM_THINK_BUDGET, 0.0);
	set_ok("/set think_budget OFF", PARAM_THINK_BUDGET, 0.0);

	bad("/set temp hot", "/set temp: expected a number, got 'hot'");
	bad("/set temp", "/set temp: expected a value");
	bad("/set", "/set: expected a parameter and a value");
	bad("/set foo 1", "/set: unknown parameter 'foo'");
	bad("/set foo 1", "temp, top_p, top_k, min_p, seed, max_tokens, presence, repeat");
	bad("/set temp 7", "/set temp: 7 is out of range (0 to 5)");
	bad("/set temp -0.1", "out of range");
	bad("/set temp nan", "expected a number, got 'nan'");
	bad("/set temp inf", "expected a number");
	bad("/set temp 0.7x", "expected a number, got '0.7x'");
	bad("/set temp 0.7 0.8", "/set temp: unexpected '0.8'");
	bad("/set top_p 1.01", "/set top_p: 1.01 is out of range (0 to 1)");
	bad("/set min_p -1", "/set min_p: -1 is out of range");
	bad("/set top_k -1", "/set top_k: -1 is out of range (0 or more)");
	bad("/set top_k 2.5", "/set top_k: expected a whole number, got '2.5'");
	bad("/set top_k many", "/set top_k: expected a whole number, got 'many'");
	bad("/set max_tokens 0", "/set max_tokens: 0 is out of range (1 or more)");
	bad("/set seed -2", "/set seed: -2 is out of range");
	bad("/set seed 9007199254740992", "/set seed: 9007199254740992 is out of range");
	bad("/set seed 1e300", "/set seed: 1e300 is out of range");
	bad("/set repeat 0", "/set repeat: 0 is out of range");
	bad("/set presence 3", "/set presence: 3 is out of range (-2 to 2)");
	bad("/set think_budget -1", "/set think_budget: -1 is out of range (0 or off");
	bad("/set think_budget 1.5", "/set think_budget: expected a whole number");
	bad("/set think_budget on", "/set think_budget: expected a whole number, got 'on'");
	bad("/set temp off", "/set temp: expected a number, got 'off'");
	bad("/set ctx 4096", "/set: unknown parameter 'ctx'");
	bad("/set temp 0.12345678901234567890123456789012345678901234567890123456789012345",
	    "expected a number");

	/* Names come from one table, in enum order. */
	T_ASSERT(strcmp(commands_param_name(PARAM_TEMP), "temp") == 0);
	T_ASSERT(strcmp(commands_param_name(PARAM_REPEAT), "repeat") == 0);
	for (int p = PARAM_TEMP; p <= PARAM_THINK_BUDGET; p++) {
		char line[64];
		struct command c;

		snprintf(line, sizeof(line), "/set %s 1", commands_param_name(p));
		c = ok(line);
		T_EQ_INT(c.param, p);
		command_free(&c);
	}
}

static void
test_keywords(void)
{
	struct command c;

	c = ok("/show");
	T_EQ_INT(c.show, SHOW_PARAMS);
	c = ok("/show params");
	T_EQ_INT(c.show, SHOW_PARAMS);
	c = ok("/show system");
	T_EQ_INT(c.show, SHOW_SYSTEM);
	c = ok("/show MODEL");
	T_EQ_INT(c.show, SHOW_MODEL);
	c = ok("/show stats");
	T_EQ_INT(c.show, SHOW_STATS);
	bad("/show everything", "/show: expected params, system, model or stats, got 'everything'");
	bad("/show stats now", "/show: unexpected 'now'");

	c = ok("/think");
	T_EQ_INT(c.id, CMD_THINK);
	T_EQ_INT(c.think, THINK_TOGGLE);
	c = ok("/think show");
	T_EQ_INT(c.think, THINK_SHOW);
	c = ok("/think hide");
	T_EQ_INT(c.think, THINK_HIDE);
	bad("/think off", "/think: expected show or hide, got 'off'");
	bad("/think show hide", "/think: unexpected 'hide'");

	c = ok("/copy");
	T_EQ_INT(c.id, CMD_COPY);
	T_EQ_INT(c.copy, COPY_LAST);
	c = ok("/copy last");
	T_EQ_INT(c.copy, COPY_LAST);
	c = ok("/copy all");
	T_EQ_INT(c.copy, COPY_ALL);
	c = ok("/copy code");
	T_EQ_INT(c.copy, COPY_CODE);
	bad("/copy first", "/copy: expected last, all or code, got 'first'");
}

static void
export_ok(const char *line, enum command_format f, const char *path)
{
	struct command c = ok(line);

	T_EQ_INT(c.id, CMD_EXPORT);
	T_EQ_INT(c.format, f);
	T_ASSERT(path == NULL ? c.path == NULL : c.path != NULL && strcmp(c.path, path) == 0);
	T_ASSERT(c.arg == NULL);
	command_free(&c);
}

static void
test_export(void)
{
	export_ok("/export", EXPORT_MD, NULL);
	export_ok("/export md", EXPORT_MD, NULL);
	export_ok("/export markdown", EXPORT_MD, NULL);
	export_ok("/export json", EXPORT_JSON, NULL);
	export_ok("/export JSON out.txt", EXPORT_JSON, "out.txt");
	export_ok("/export md chat.json", EXPORT_MD, "chat.json"); /* explicit wins */
	export_ok("/export chat.json", EXPORT_JSON, "chat.json");
	export_ok("/export ~/chats/today.md", EXPORT_MD, "~/chats/today.md");
	export_ok("/export json  my chats/a b.json ", EXPORT_JSON, "my chats/a b.json");
	bad("/export pdf", "/export: expected md or json, got 'pdf'");
}

static void
test_not_commands(void)
{
	struct command c;
	char *cause = NULL;

	T_EQ_INT(commands_parse("hello", &c, &cause), 1);
	T_EQ_INT(commands_parse("", &c, &cause), 1);
	T_EQ_INT(commands_parse("   ", &c, &cause), 1);
	T_EQ_INT(commands_parse("what does /help do?", &c, &cause), 1);
	T_EQ_INT(commands_parse("//usr/bin is where?", &c, &cause), 1);
	T_EQ_INT(commands_parse("\n/help", &c, &cause), 1); /* a newline first: a message */
	T_ASSERT(cause == NULL);
	T_ASSERT(c.arg == NULL);

	bad("/foo", "unknown command /foo; /help lists them");
	bad("/usr/bin/ls", "unknown command /usr/bin/ls");
	bad("/", "a command name must follow '/'");
	bad("/ help", "a command name must follow '/'");
	bad("/regen now", "/regen takes no arguments");
	bad("/quit please", "/quit takes no arguments");
	bad("/clear all", "/new takes no arguments");
	bad("/helpme", "unknown command /helpme");
	bad("/verylongcommandnamethatgoesonandonandonandonandonandon",
	    "unknown command /verylongcommandnamethatgoesonandonandona; /help"); /* 40 chars */
	command_free(NULL);
}

/*
 * Complete line at start; want is readline's array joined by spaces: the
 * substitution text, then the candidates when there are several ("" = NULL).
 */
static void
complete(const char *line, int start, const char *want)
{
	char **v = commands_complete(line, start);
	char got[512] = "";
	size_t at = 0;

	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		at += (size_t)snprintf(got + at, sizeof(got) - at, "%s%s", i ? " " : "", v[i]);
	if (strcmp(got, want) != 0)
		fprintf(stderr, "complete('%s', %d) = '%s', want '%s'\n", line, start, got, want);
	T_ASSERT(strcmp(got, want) == 0);
	T_ASSERT(v == NULL || v[0] != NULL); /* never an empty array */
	commands_complete_free(v);
}

static void
test_complete(void)
{
	complete(
		"/", 0,
		"/ /? /bye /chats /clear /compact /continue /copy /delete /drop /edit /exit "
		"/export /help /model /new /quit /regen /rename /search /set /show /system /think");
	complete(
		"", 0,
		"/ /? /bye /chats /clear /compact /continue /copy /delete /drop /edit /exit "
		"/export /help /model /new /quit /regen /rename /search /set /show /system /think");
	complete("/c", 0, "/c /chats /clear /compact /continue /copy");
	complete("/co", 0, "/co /compact /continue /copy");
	complete("/cop", 0, "/copy");
	complete("/re", 0, "/re /regen /rename");
	complete("/reg", 0, "/regen");
	complete("/ex", 0, "/ex /exit /export");
	complete("/S", 0, "/s /search /set /show /system");
	complete("/se", 0, "/se /search /set");
	complete("/sh", 0, "/show");
	complete("/quit", 0, "/quit");
	complete("/quits", 0, "");
	complete("  /he", 2, "/help");
	complete("/he more", 0, "/help"); /* the word ends at a blank */
	complete("hello", 0, "");
	complete("/set ", 5,
		 " markdown max_tokens min_p mouse presence repeat seed temp think_budget top_k "
		 "top_p");
	complete("/set t", 5, "t temp think_budget top_k top_p");
	complete("/set top", 5, "top_ top_k top_p");
	complete("/set top_p", 5, "top_p");
	complete("/SET  Te", 6, "temp");
	complete("/set temp ", 10, "");
	complete("/show ", 6, " model params stats system");
	complete("/show s", 6, "s stats system");
	complete("/think ", 7, " hide show");
	complete("/think h", 7, "hide");
	complete("/export ", 8, " json md");
	complete("/export j", 8, "json");
	complete("/copy ", 6, " all code last");
	complete("/copy c", 6, "code");
	complete("/help se", 6, "se search set");
	complete("/help /", 6, "");
	complete("/regen ", 7, "");
	complete("/foo ", 5, "");
	complete("hello /set ", 11, "");
	complete("/set", -1, "");
	complete("/set", 99, "");

	T_ASSERT(commands_complete_path("/export md ", 11));
	T_ASSERT(commands_complete_path("/export JSON ~/x", 13));
	T_ASSERT(commands_complete_path(" /export markdown ", 18));
	T_ASSERT(!commands_complete_path("/export ", 8));
	T_ASSERT(!commands_complete_path("/export pdf ", 12));
	T_ASSERT(!commands_complete_path("/export md a ", 13));
	T_ASSERT(!commands_complete_path("/set ", 5));
	T_ASSERT(!commands_complete_path("/expo", 0));
	T_ASSERT(!commands_complete_path("hello ", 6));
	T_ASSERT(!commands_complete_path("/export md ", 40));
}

static void
test_help(void)
{
	const char *h = commands_help(), *line;
	static const char *const names[] = {
		"/help", "/?",     "/new",       "/clear",   "/regen",  "/system",      "/set",
		"/show", "/think", "/chats",     "/search",  "/rename", "/delete",      "/export",
		"/copy", "/quit",  "/exit",      "/bye",     "temp",    "top_p",        "top_k",
		"min_p", "seed",   "max_tokens", "presence", "repeat",  "think_budget", "/edit",
	};
	char **all = commands_complete("/", 0);

	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		T_STR_CONTAINS(h, names[i]);
	/* Every completable command is in the help. */
	for (size_t i = 1; all != NULL && all[i] != NULL; i++)
		T_STR_CONTAINS(h, all[i]);
	commands_complete_free(all);
	/* Lines fit an 80-column overlay with its border. */
	for (line = h; *line != '\0';) {
		const char *nl = strchr(line, '\n');

		T_ASSERT(nl != NULL && nl - line <= 78);
		if (nl == NULL)
			break;
		line = nl + 1;
	}
}

/* /help NAME gives that command's lines, by any spelling, and nothing else. */
/* /set --save, /set mouse|markdown on|off, /model [N|DIR]. */
static void
test_settings_commands(void)
{
	struct command c;
	char *cause = NULL;

	T_EQ_INT(commands_parse("/set --save temp 0.5", &c, &cause), 0);
	T_ASSERT(c.id == CMD_SET && c.save && c.param == PARAM_TEMP);
	T_NEAR(c.value, 0.5, 0);
	command_free(&c);
	T_EQ_INT(commands_parse("/set temp 0.5", &c, &cause), 0);
	T_ASSERT(!c.save);
	command_free(&c);
	T_EQ_INT(commands_parse("/set mouse on", &c, &cause), 0);
	T_ASSERT(c.param == PARAM_MOUSE && c.value == 1);
	command_free(&c);
	T_EQ_INT(commands_parse("/set --save mouse off", &c, &cause), 0);
	T_ASSERT(c.save && c.param == PARAM_MOUSE && c.value == 0);
	command_free(&c);
	T_EQ_INT(commands_parse("/set mouse maybe", &c, &cause), -1);
	T_STR_CONTAINS(cause, "/set mouse");
	free(cause), cause = NULL;
	T_EQ_INT(commands_parse("/set markdown off", &c, &cause), 0);
	T_ASSERT(c.param == PARAM_MARKDOWN && c.value == 0 && !c.save);
	command_free(&c);
	T_EQ_INT(commands_parse("/set --save markdown on", &c, &cause), 0);
	T_ASSERT(c.save && c.param == PARAM_MARKDOWN && c.value == 1);
	command_free(&c);
	T_EQ_INT(commands_parse("/set markdown 2", &c, &cause), -1);
	T_STR_CONTAINS(cause, "/set markdown");
	free(cause), cause = NULL;
	T_EQ_INT(commands_parse("/set --save", &c, &cause), -1);
	free(cause), cause = NULL;
	T_EQ_INT(commands_parse("/model", &c, &cause), 0);
	T_ASSERT(c.id == CMD_MODEL && c.arg == NULL);
	command_free(&c);
	T_EQ_INT(commands_parse("/model 2", &c, &cause), 0);
	T_ASSERT(c.id == CMD_MODEL && c.arg != NULL && strcmp(c.arg, "2") == 0);
	command_free(&c);
}

static void
test_help_topic(void)
{
	char *t;

	t = commands_help_topic("set");
	T_ASSERT(t != NULL && strncmp(t, "  /set [--save] <param>", 23) == 0);
	T_STR_CONTAINS(t, "max_tokens >= 1");
	T_ASSERT(t != NULL && strstr(t, "/show") == NULL && strstr(t, "/system") == NULL);
	free(t);
	t = commands_help_topic("/clear");
	T_ASSERT(t != NULL && strstr(t, "/new, /clear") != NULL && strstr(t, "/regen") == NULL);
	free(t);
	t = commands_help_topic("quit");
	T_ASSERT(t != NULL && strstr(t, "/quit") != NULL);
	free(t);
	t = commands_help_topic("?");
	T_ASSERT(t != NULL && strstr(t, "/help [command]") != NULL);
	free(t);
	T_ASSERT(commands_help_topic("s") == NULL);
	T_ASSERT(commands_help_topic("nosuch") == NULL);
	T_ASSERT(commands_help_topic("") == NULL);
}

/* /edit [N]: N counts the user's messages from 1; bare means the last (0). */
static void
test_edit(void)
{
	struct command c = ok("/edit");

	T_EQ_INT(c.id, CMD_EDIT);
	T_EQ_INT(c.number, 0);
	command_free(&c);
	c = ok("/EDIT 3 ");
	T_EQ_INT(c.id, CMD_EDIT);
	T_EQ_INT(c.number, 3);
	command_free(&c);
	bad("/edit 0", "/edit: expected the number of one of your messages, got '0'");
	bad("/edit -2", "got '-2'");
	bad("/edit 1.5", "got '1.5'");
	bad("/edit two", "got 'two'");
	bad("/edit 2 3", "/edit: unexpected '3'");
	T_ASSERT(strcmp(commands_name(CMD_EDIT), "/edit") == 0);
}

int
main(void)
{
	test_simple();
	test_text_args();
	test_set();
	test_keywords();
	test_export();
	test_not_commands();
	test_complete();
	test_help();
	test_help_topic();
	test_edit();
	test_settings_commands();
	return t_done("test-commands");
}
