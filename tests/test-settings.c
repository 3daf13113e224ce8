/*
 * test-settings.c - src/settings.c: every key parsed and formatted back,
 * comments and blank lines, bad values and unknown keys with their
 * "file:line: key:" messages, the last of a repeated key winning,
 * settings_update keeping the other lines, and settings_save refusing a bad
 * value with the file left as it was.  Single-threaded; writes under a
 * temporary folder.
 */
#include "settings.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"
#include "util.h"

/* Parse text; 0 or -1, with the cause in *cause (caller frees). */
static int
parse(struct settings *s, const char *text, char **cause)
{
	return settings_parse(s, text, strlen(text), "cfg", cause);
}

/* The message text fails with, or "" when it parses. */
static char *
fails_with(const char *text)
{
	struct settings s;
	char *cause = NULL;

	if (parse(&s, text, &cause) == 0) {
		settings_release(&s);
		return xstrdup("");
	}
	return cause != NULL ? cause : xstrdup("(no cause)");
}

static void
test_every_key(void)
{
	static const char text[] = "# a comment\n"
				   "\n"
				   "model = /models/qwen next\n"
				   "temp = 0.6\n"
				   "top_k=20\n"
				   "  top_p =0.95  \n"
				   "min_p = 0\n"
				   "presence_penalty = -1.5\n"
				   "repeat_penalty = 1.1\n"
				   "seed = -1\n"
				   "max_tokens = 4096\n"
				   "ctx = 8192\n"
				   "threads = 8\n"
				   "expert_cache = 12G\n"
				   "system = You are terse. # not a comment\n"
				   "mouse = on\n"
				   "thinking = show\r\n"
				   "think_budget = 512\n"
				   "markdown = off\n";
	static const char *const want[SET_N] = {
		"/models/qwen next",
		"0.6",
		"20",
		"0.95",
		"0",
		"-1.5",
		"1.1",
		"-1",
		"4096",
		"8192",
		"8",
		"12G",
		"You are terse. # not a comment",
		"on",
		"show",
		"512",
		"off",
	};
	struct settings s;
	char *cause = NULL;

	T_EQ_INT(parse(&s, text, &cause), 0);
	T_EQ_INT(s.set, (1u << SET_N) - 1);
	for (int k = 0; k < SET_N; k++) {
		char *v = settings_format(&s, (enum setting_key)k);

		T_ASSERT(v != NULL && strcmp(v, want[k]) == 0);
		if (v == NULL || strcmp(v, want[k]) != 0)
			fprintf(stderr, "  key %s: got '%s', want '%s'\n",
				settings_key_name((enum setting_key)k), v ? v : "(null)", want[k]);
		T_EQ_INT(settings_key_find(settings_key_name((enum setting_key)k)), k);
		free(v);
	}
	T_EQ_INT(s.line[SET_MODEL], 3);
	T_EQ_INT(s.line[SET_THINKING], 17);
	T_NEAR(s.num[SET_TEMP], 0.6, 1e-12);
	T_NEAR(s.num[SET_MOUSE], 1, 0);
	settings_release(&s);
	T_EQ_INT(settings_key_find("temperature"), -1);
	T_ASSERT(settings_key_name(SET_N) == NULL);
}

static void
test_switches(void)
{
	struct settings s;
	char *cause = NULL;

	T_EQ_INT(parse(&s, "mouse = off\nthinking = hide\n", &cause), 0);
	T_EQ_INT(s.set, (1u << SET_MOUSE) | (1u << SET_THINKING));
	T_NEAR(s.num[SET_MOUSE], 0, 0);
	T_NEAR(s.num[SET_THINKING], 0, 0);
	settings_release(&s);
	T_EQ_INT(parse(&s, "mouse = yes", &cause), 0); /* no newline at the end */
	T_NEAR(s.num[SET_MOUSE], 1, 0);
	settings_release(&s);
	T_EQ_INT(parse(&s, "markdown = off\n", &cause), 0);
	T_EQ_INT(s.set, 1u << SET_MARKDOWN);
	T_NEAR(s.num[SET_MARKDOWN], 0, 0);
	settings_release(&s);
	T_EQ_INT(parse(&s, "markdown = rich\n", &cause), -1);
	T_STR_CONTAINS(cause, "markdown: 'rich' is not on or off");
	free(cause), cause = NULL;
	/* Nothing set: an empty file, or only comments. */
	T_EQ_INT(parse(&s, "", &cause), 0);
	T_EQ_INT(s.set, 0);
	T_EQ_INT(parse(&s, "# temp = 9x\n   \n\t# x\n", &cause), 0);
	T_EQ_INT(s.set, 0);
}

static void
test_errors(void)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "temp = 0.5\n\n\n\n\n\ntemp = 2x\n", "cfg:7: temp: '2x' is not a number" },
		{ "temp = 101", "cfg:1: temp: 101 is out of range (0 to 100)" },
		{ "temp = nan", "cfg:1: temp: 'nan' is not a number" },
		{ "top_k = 2.5", "cfg:1: top_k: '2.5' is not a whole number" },
		{ "top_k = -1", "cfg:1: top_k: -1 is out of range" },
		{ "top_p = 1.5", "cfg:1: top_p: 1.5 is out of range (0 to 1)" },
		{ "min_p = x", "cfg:1: min_p: 'x' is not a number" },
		{ "presence_penalty = 11", "cfg:1: presence_penalty: 11 is out of range" },
		{ "repeat_penalty = 0", "cfg:1: repeat_penalty: 0 is out of range (0.01 to 10)" },
		{ "seed = -2", "cfg:1: seed: -2 is out of range" },
		{ "seed = 9007199254740992", "cfg:1: seed: 9007199254740992 is out of range" },
		{ "max_tokens = 0", "cfg:1: max_tokens: 0 is out of range" },
		{ "ctx = 8", "cfg:1: ctx: 8 is out of range (16 to 16777216)" },
		{ "threads = 2000", "cfg:1: threads: 2000 is out of range (1 to 1024)" },
		{ "mouse = maybe", "cfg:1: mouse: 'maybe' is not on or off" },
		{ "thinking = on", "cfg:1: thinking: 'on' is not show or hide" },
		{ "model =", "cfg:1: model: expected a value" },
		{ "expert_cache =   ", "cfg:1: expert_cache: expected a value" },
		{ "# ok\ntmep = 0.5\n", "cfg:2: unknown key 'tmep'" },
		{ "Temp = 0.5", "cfg:1: unknown key 'Temp'" },
		{ "temp 0.5", "cfg:1: expected KEY = VALUE, got 'temp 0.5'" },
		{ "= 0.5", "cfg:1: expected KEY = VALUE" },
	};
	struct settings s;
	char *cause = NULL;

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char *got = fails_with(bad[i].text);

		T_STR_CONTAINS(got, bad[i].want);
		free(got);
	}
	/* A NUL byte is not text; a failed parse leaves nothing owned. */
	T_EQ_INT(settings_parse(&s, "temp = 1\0x", 10, "cfg", &cause), -1);
	T_STR_CONTAINS(cause, "NUL");
	T_EQ_INT(s.set, 0);
	T_ASSERT(s.str[SET_MODEL] == NULL);
	free(cause);
}

/* A repeated key: the last line wins, and line[] says which it was. */
static void
test_last_wins(void)
{
	struct settings s;
	char *cause = NULL;

	T_EQ_INT(parse(&s, "model = /a\ntemp = 1\nmodel = /b\n", &cause), 0);
	T_ASSERT(strcmp(s.str[SET_MODEL], "/b") == 0);
	T_EQ_INT(s.line[SET_MODEL], 3);
	settings_release(&s);
}

static void
test_update(void)
{
	static const char text[] = "# mine\ntemp = 0.6 \n\n# sampling\ntop_k = 20\ntemp = 1";
	size_t n;
	char *out = settings_update(text, strlen(text), "temp", "0.3", &n);

	/* The last temp line is replaced; comments and the other lines stay. */
	T_ASSERT(strcmp(out, "# mine\ntemp = 0.6 \n\n# sampling\ntop_k = 20\ntemp = 0.3") == 0);
	T_EQ_INT(n, strlen(out));
	free(out);
	out = settings_update(text, strlen(text), "mouse", "on", NULL);
	T_ASSERT(strcmp(out, "# mine\ntemp = 0.6 \n\n# sampling\ntop_k = 20\ntemp = 1\n"
			     "mouse = on\n") == 0);
	free(out);
	/* A commented-out key is not the key. */
	out = settings_update("# mouse = on\n", 13, "mouse", "off", NULL);
	T_ASSERT(strcmp(out, "# mouse = on\nmouse = off\n") == 0);
	free(out);
	/* A new file says what it is. */
	out = settings_update("", 0, "ctx", "4096", NULL);
	T_ASSERT(strncmp(out, "# qnext settings", 16) == 0);
	T_STR_CONTAINS(out, "\nctx = 4096\n");
	free(out);
}

static char *
slurp(const char *path)
{
	return read_file(path, NULL, NULL);
}

static void
test_save_load(void)
{
	char dir[] = "/tmp/qnext-test-settings-XXXXXX", *path, *text, *cause = NULL;
	struct settings s;

	T_ASSERT(mkdtemp(dir) != NULL);
	path = xasprintf("%s/sub/qnext/config", dir);
	/* No file: nothing set, no error. */
	T_EQ_INT(settings_load(&s, path, &cause), 0);
	T_EQ_INT(s.set, 0);
	T_EQ_INT(settings_save(path, "temp", "0.4", &cause), 0);
	T_EQ_INT(settings_save(path, "mouse", "on", &cause), 0);
	T_EQ_INT(settings_save(path, "temp", "0.5", &cause), 0);
	T_EQ_INT(settings_load(&s, path, &cause), 0);
	T_EQ_INT(s.set, (1u << SET_TEMP) | (1u << SET_MOUSE));
	T_NEAR(s.num[SET_TEMP], 0.5, 1e-12);
	settings_release(&s);
	text = slurp(path);
	T_STR_CONTAINS(text, "\ntemp = 0.5\nmouse = on\n");
	/* A bad value is refused and the file stays as it was. */
	T_EQ_INT(settings_save(path, "temp", "hot", &cause), -1);
	T_STR_CONTAINS(cause, "config:");
	T_STR_CONTAINS(cause, "temp: 'hot' is not a number");
	free(cause), cause = NULL;
	T_EQ_INT(settings_save(path, "nosuch", "1", &cause), -1);
	T_STR_CONTAINS(cause, "unknown key 'nosuch'");
	free(cause), cause = NULL;
	T_EQ_INT(settings_save(path, "system", "two\nlines", &cause), -1);
	free(cause), cause = NULL;
	{
		char *again = slurp(path);

		T_ASSERT(again != NULL && text != NULL && strcmp(again, text) == 0);
		free(again);
	}
	free(text);
	/* A broken file is said with its line by load. */
	T_EQ_INT(file_write_atomic(path, "temp = 1\nbogus\n", 15, 0600, NULL), 0);
	T_EQ_INT(settings_load(&s, path, &cause), -1);
	T_STR_CONTAINS(cause, "config:2: expected KEY = VALUE");
	free(cause), cause = NULL;
	/* A folder where the file should be is an error, not "nothing set". */
	text = xasprintf("%s/sub", dir);
	T_EQ_INT(settings_load(&s, text, &cause), -1);
	free(cause), cause = NULL;
	free(text);
	unlink(path);
	text = xasprintf("rm -rf '%s'", dir);
	T_EQ_INT(system(text), 0);
	free(text);
	free(path);
}

static void
test_paths(void)
{
	char *p;

	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	p = settings_path();
	T_ASSERT(p != NULL && strcmp(p, "/xdg/qnext/config") == 0);
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", "/home/u", 1);
	p = settings_path();
	T_ASSERT(p != NULL && strcmp(p, "/home/u/.config/qnext/config") == 0);
	free(p);
	p = settings_display_path("/home/u/.config/qnext/config");
	T_ASSERT(strcmp(p, "~/.config/qnext/config") == 0);
	free(p);
	p = settings_display_path("/home/user2/x");
	T_ASSERT(strcmp(p, "/home/user2/x") == 0);
	free(p);
	T_ASSERT(strcmp(settings_src_name(SRC_FLAG), "flag") == 0);
	T_ASSERT(strcmp(settings_src_name(SRC_CONFIG), "config") == 0);
}

int
main(void)
{
	test_every_key();
	test_switches();
	test_errors();
	test_last_wins();
	test_update();
	test_save_load();
	test_paths();
	return t_done("test-settings");
}
