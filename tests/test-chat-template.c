/*
 * test-chat-template.c - engine/chat-template.c against Jinja2: every
 * conversation in tests/data/chat-template/cases.json and the tiny model's
 * golden prompt byte for byte, the two examples of docs/model-format.md "Chat template", tojson's
 * number and string formatting, the template's branches (tool calls, tool
 * response grouping, thinking kept or dropped), recognition of the template
 * text, and inputs that must fail with a cause.  The expected prompts of the
 * inline cases were rendered by Jinja2 with Hugging Face's tojson.  Run from
 * the repository root.  Single-threaded.
 */
#include "chat-template.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "t.h"
#include "util.h"

#define CASES  "tests/data/chat-template/cases.json"
#define JINJA  "tests/data/chat-template/qwen3-thinking.jinja"
#define GOLDEN "share/tiny/golden.json"
#define TOKCFG "share/tiny/tokenizer_config.json"

#define GEN "<|im_start|>assistant\n<think>\n"

/* Print up to n bytes of s with control characters escaped. */
static void
show(const char *s, size_t n)
{
	for (size_t i = 0; i < n && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			fputs("\\n", stderr);
		else if (c < 0x20)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
}

/* Pass when got equals want; otherwise say where they first differ. */
static void
same(const char *what, const char *got, const char *want)
{
	size_t i = 0, line = 1, from;

	if (got != NULL && strcmp(got, want) == 0) {
		t_pass++;
		return;
	}
	t_fail++;
	if (got == NULL) {
		fprintf(stderr, "FAIL: %s: no output\n", what);
		return;
	}
	while (got[i] != '\0' && got[i] == want[i])
		line += got[i++] == '\n';
	from = i > 40 ? i - 40 : 0;
	fprintf(stderr, "FAIL: %s: differs at byte %zu (line %zu)\n  got:  ...", what, i, line);
	show(got + from, i - from + 40);
	fputs("\n  want: ...", stderr);
	show(want + from, i - from + 40);
	fputs("\n", stderr);
}

/* s with every ' turned into ", so JSON in this file needs no escaping. */
static char *
q(const char *s)
{
	char *t = xstrdup(s);

	for (char *p = t; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return t;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = s != NULL ? strlen(s) : 0, k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Render the conversation q(json); NULL and a printed cause on failure. */
static char *
render_q(const char *json)
{
	char *text = q(json), *out = NULL, *cause = NULL;

	if (chat_template_render_json(text, strlen(text), &out, &cause) == -1) {
		fprintf(stderr, "render failed: %s\n", cause);
		out = NULL;
	}
	free(cause);
	free(text);
	return out;
}

static void
check_q(const char *what, const char *json, const char *want)
{
	char *out = render_q(json);

	same(what, out, want);
	free(out);
}

/* The conversation q(json) must fail with a cause containing needle. */
static void
check_fails(const char *json, const char *needle)
{
	char *text = q(json), *out = (char *)"unset", *cause = NULL;

	T_EQ_INT(chat_template_render_json(text, strlen(text), &out, &cause), -1);
	T_ASSERT(out == NULL);
	T_STR_CONTAINS(cause, needle);
	free(cause);
	free(text);
}

static void
test_cases(void)
{
	json_error_t err;
	json_t *cases, *c;
	size_t i;

	cases = json_load_file(CASES, 0, &err);
	T_ASSERT(json_is_array(cases));
	T_ASSERT(json_array_size(cases) > 0);
	json_array_foreach(cases, i, c)
	{
		char *text = json_dumps(c, 0), *out = NULL, *cause = NULL, what[64];

		snprintf(what, sizeof(what), "%s case %zu", CASES, i);
		if (chat_template_render_json(text, strlen(text), &out, &cause) == -1)
			fprintf(stderr, "%s: %s\n", what, cause);
		same(what, out, json_string_value(json_object_get(c, "prompt")));
		free(out);
		free(cause);
		free(text);
	}
	json_decref(cases);
}

static void
test_golden(void)
{
	json_error_t err;
	json_t *g, *conv;
	char *text, *out = NULL, *cause = NULL;

	g = json_load_file(GOLDEN, 0, &err);
	T_ASSERT(g != NULL);
	conv = json_pack("{sO}", "messages", json_object_get(g, "messages"));
	text = json_dumps(conv, 0);
	T_EQ_INT(chat_template_render_json(text, strlen(text), &out, &cause), 0);
	same(GOLDEN, out, json_string_value(json_object_get(g, "prompt_text")));
	free(out);
	free(cause);
	free(text);
	json_decref(conv);
	json_decref(g);
}

/* docs/model-format.md "Chat template" examples, through the struct interface. */
static void
test_model_md(void)
{
	struct chat_msg hi[] = { { "user", "Hi", NULL, NULL } };
	struct chat_msg two[] = {
		{ "system", "S", NULL, NULL },
		{ "user", "U1", NULL, NULL },
		{ "assistant", "R1\xe2\x80\xa6</think>\n\nA1", NULL, NULL },
		{ "user", "U2", NULL, NULL },
	};
	char *out, *cause = NULL;

	out = chat_template_render(hi, ARRAY_LEN(hi), NULL, true, &cause);
	same("doc example hi", out, "<|im_start|>user\nHi<|im_end|>\n" GEN);
	free(out);
	out = chat_template_render(two, ARRAY_LEN(two), NULL, true, &cause);
	same("doc example two turns", out,
	     "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
	     "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n" GEN);
	free(out);
	T_ASSERT(cause == NULL);
}

/*
 * Python's json.dumps formatting of numbers and strings in tools.  The last
 * array holds 2^-44, 2^-24 and 2^89, whose shortest digits are not the
 * correctly rounded ones (the gap below a power of two is half the gap above).
 */
static void
test_tojson(void)
{
	char *out = render_q(
		"{'messages': [{'role': 'user', 'content': 'x'}], 'tools': [{'d': 'a/b \\'q\\' "
		"\\\\ \xc3\xa9 \xe2\x9c\x93 \\u0001\\u001f\\t\\r\\b\\f\\u007f \\u2028', 'p': "
		"{'x': 0.1, 'y': 1.0, 'z': 1e20, 'w': 1e16, 'v': 1e15, 'u': 0.0001, 't': 1e-5, "
		"'s': -0.0, 'r': 123456789.125, 'q': 5e-324, 'p': 1.7976931348623157e308, "
		"'o': 2.5e-7, 'n': -42, 'm': [], 'l': {}, 'k': [true, false, null], 'j': 0, "
		"'b': 1, 'b': 2, 'i': 9007199254740993, 'h': 0.3e0, 'g': "
		"2.2250738585072014e-308}}, "
		"[1, 'two'], 'plain', 3.5, [0.000000000000056843418860808015, "
		"5.960464477539063e-8, "
		"6.189700196426902e26]]}");

	T_STR_CONTAINS(out,
		       "<tools>\n{\"d\": \"a/b \\\"q\\\" \\\\ \xc3\xa9 \xe2\x9c\x93 "
		       "\\u0001\\u001f\\t\\r\\b\\f\x7f \xe2\x80\xa8\", \"p\": {\"x\": 0.1, "
		       "\"y\": 1.0, \"z\": 1e+20, \"w\": 1e+16, \"v\": 1000000000000000.0, "
		       "\"u\": 0.0001, \"t\": 1e-05, \"s\": -0.0, \"r\": 123456789.125, "
		       "\"q\": 5e-324, \"p\": 1.7976931348623157e+308, \"o\": 2.5e-07, "
		       "\"n\": -42, \"m\": [], \"l\": {}, \"k\": [true, false, null], "
		       "\"j\": 0, \"b\": 2, \"i\": 9007199254740993, \"h\": 0.3, "
		       "\"g\": 2.2250738585072014e-308}}\n[1, \"two\"]\n\"plain\"\n3.5\n"
		       "[5.684341886080802e-14, 5.960464477539063e-08, 6.189700196426902e+26]\n"
		       "</tools>\n");
	free(out);
}

static void
test_branches(void)
{
	/* reasoning_content, string and object arguments, the three call shapes,
	 * tool responses grouped until another role, an unknown role rendering
	 * nothing, a <tool_response> user message that is not a query. */
	check_q("tool calls",
		"{'messages': [{'role': 'user', 'content': 'go'}, {'role': 'assistant', "
		"'content': '\\n\\nText', 'reasoning_content': '\\nplan\\n', 'tool_calls': "
		"[{'name': 'a', 'arguments': '{\\'raw\\': 1}'}, {'type': 'function', 'function': "
		"{'name': 'b', 'arguments': {'k': [1, 2.5]}}}, {'function': {}, 'name': 'c', "
		"'arguments': null}]}, {'role': 'tool', 'content': 'r1'}, {'role': 'tool', "
		"'content': null}, {'role': 'developer', 'content': 'ignored'}, {'role': 'tool', "
		"'content': 'r3'}, {'role': 'user', 'content': "
		"'<tool_response>\\nfoo\\n</tool_response>'}, {'role': 'assistant', 'content': "
		"'<think>x</think>y'}]}",
		"<|im_start|>user\ngo<|im_end|>\n<|im_start|>assistant\n<think>\nplan\n</think>\n\n"
		"Text\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"raw\": 1}}\n</tool_call>\n"
		"<tool_call>\n{\"name\": \"b\", \"arguments\": {\"k\": [1, 2.5]}}\n</tool_call>\n"
		"<tool_call>\n{\"name\": \"c\", \"arguments\": null}\n</tool_call><|im_end|>\n"
		"<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\n\n"
		"</tool_response><|im_end|>\n<|im_start|>user\n<tool_response>\nr3\n"
		"</tool_response><|im_end|>\n<|im_start|>user\n<tool_response>\nfoo\n"
		"</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\nx\n</think>\n\ny"
		"<|im_end|>\n" GEN);
	/* Thinking dropped before the last query, kept after it when non-empty or
	 * last; an empty reasoning_content stops the </think> split. */
	check_q("multi-step",
		"{'messages': [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': "
		"'old'}, {'role': 'assistant', 'content': 'old thought</think>old answer'}, "
		"{'role': 'user', 'content': 'Q'}, {'role': 'assistant', 'content': "
		"'r1\\n</think>\\n\\n', 'tool_calls': [{'type': 'function', 'function': "
		"{'name': 't', 'arguments': {}}}]}, {'role': 'tool', 'content': 'out'}, "
		"{'role': 'assistant', 'content': '\\n<think>\\n\\nr2\\n\\n</think>\\n\\nanswer'}, "
		"{'role': 'assistant', 'content': 'no think'}, {'role': 'assistant', 'content': "
		"'a</think>b</think>\\nc', 'reasoning_content': ''}]}",
		"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nold<|im_end|>\n"
		"<|im_start|>assistant\nold answer<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n"
		"<|im_start|>assistant\n<think>\nr1\n</think>\n\n<tool_call>\n{\"name\": \"t\", "
		"\"arguments\": {}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n"
		"out\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\nr2\n</think>\n\n"
		"answer<|im_end|>\n<|im_start|>assistant\nno think<|im_end|>\n"
		"<|im_start|>assistant\n<think>\n\n</think>\n\na</think>b</"
		"think>\nc<|im_end|>\n" GEN);
	/* Content that is not a string renders as ""; empty tools are no tools. */
	check_q("odd content",
		"{'messages': [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': "
		"null}, {'role': 'user', 'content': [{'type': 'text', 'text': 'hi'}]}, {'role': "
		"'system', 'content': 5}, {'role': 'user', 'content': "
		"'<tool_response>x</tool_response>'}, {'role': 'assistant', 'content': "
		"'</think>'}, {'role': 'assistant'}], 'tools': []}",
		"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>user\n"
		"<|im_end|>\n<|im_start|>system\n<|im_end|>\n<|im_start|>user\n"
		"<tool_response>x</tool_response><|im_end|>\n<|im_start|>assistant\n<|im_end|>\n"
		"<|im_start|>assistant\n<|im_end|>\n" GEN);
	/* No real query at all: nothing counts as the current round. */
	check_q("no query",
		"{'messages': [{'role': 'tool', 'content': 't0'}, {'role': 'assistant', "
		"'content': '<think>\\n\\n</think>', 'tool_calls': []}], 'tools': null}",
		"<|im_start|>user\n<tool_response>\nt0\n</tool_response><|im_end|>\n"
		"<|im_start|>assistant\n<|im_end|>\n" GEN);
}

/* The struct interface: tools and tool calls as JSON text, no generation
 * prompt, and a conversation that renders to nothing. */
static void
test_struct(void)
{
	struct chat_msg m[] = {
		{ "system", "sys", NULL, NULL },
		{ "user", "q", NULL, NULL },
		{ "assistant", "", "r", "[{'name': 'f', 'arguments': {'a': 1}}]" },
		{ "tool", "{'ok': true}", NULL, NULL },
	};
	struct chat_msg other[] = { { "developer", "x", NULL, NULL } };
	char *calls = q(m[2].tool_calls_json), *tools = q("[{'name': 'f'}]"), *out, *cause = NULL;

	m[2].tool_calls_json = calls;
	out = chat_template_render(m, ARRAY_LEN(m), tools, false, &cause);
	T_STR_CONTAINS(out, "<|im_start|>system\nsys\n\n# Tools\n");
	T_STR_CONTAINS(out, "<tools>\n{\"name\": \"f\"}\n</tools>");
	T_STR_CONTAINS(out,
		       "<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
		       "<think>\nr\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": "
		       "{\"a\": 1}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n"
		       "{'ok': true}\n</tool_response><|im_end|>\n");
	T_ASSERT(ends_with(out, "</tool_response><|im_end|>\n"));
	free(out);
	out = chat_template_render(other, ARRAY_LEN(other), NULL, false, &cause);
	same("unknown role only", out, "");
	free(out);
	T_ASSERT(cause == NULL);
	free(tools);
	free(calls);
}

static void
test_builtin(void)
{
	json_error_t err;
	json_t *cfg = json_load_file(TOKCFG, 0, &err);
	const char *tmpl = json_string_value(json_object_get(cfg, "chat_template"));
	char *file, *copy, *cause = NULL;

	T_ASSERT(tmpl != NULL);
	T_ASSERT(chat_template_is_builtin(tmpl));
	file = read_file(JINJA, NULL, &cause);
	T_ASSERT(file != NULL);
	T_ASSERT(chat_template_is_builtin(file));
	copy = xstrdup(tmpl);
	copy[strlen(copy) / 2] ^= 1;
	T_ASSERT(!chat_template_is_builtin(copy));
	copy[strlen(copy) / 2] ^= 1;
	copy[strlen(copy) - 1] = '\0';
	T_ASSERT(!chat_template_is_builtin(copy));
	T_ASSERT(!chat_template_is_builtin(""));
	T_ASSERT(!chat_template_is_builtin(NULL));
	free(copy);
	free(file);
	free(cause);
	json_decref(cfg);
}

static void
test_errors(void)
{
	struct chat_msg noname[] = { { NULL, "x", NULL, NULL } };
	struct chat_msg badcalls[] = { { "assistant", "x", NULL, "{\"a\": 1}" } };
	char *out, *cause = NULL;

	check_fails("{'messages': [", "JSON line 1");
	check_fails("{'messages': []} x", "JSON");
	check_fails("[]", "not a JSON object");
	check_fails("{'tools': []}", "\"messages\" is missing");
	check_fails("{'messages': {}}", "\"messages\" is not an array");
	check_fails("{'messages': []}", "no messages");
	check_fails("{'messages': [{'role': 'user', 'content': 'a\\u0000b'}]}", "JSON");
	check_fails("{'messages': [{'role': 'user'}], 'tools': {}}", "\"tools\" is not an array");
	check_fails("{'messages': ['hi']}", "messages[0] is not an object");
	check_fails("{'messages': [{'role': 'user'}, {'content': 'x'}]}",
		    "messages[1] has no string \"role\"");
	check_fails("{'messages': [{'role': 1}]}", "messages[0] has no string \"role\"");
	check_fails("{'messages': [{'role': 'system', 'content': null}]}",
		    "system message needs string content");
	check_fails("{'messages': [{'role': 'assistant', 'tool_calls': 'f()'}]}",
		    "messages[0].tool_calls is not an array");
	check_fails("{'messages': [{'role': 'assistant', 'tool_calls': [1]}]}",
		    "messages[0].tool_calls[0] is not an object");
	check_fails("{'messages': [{'role': 'assistant', 'tool_calls': [{'arguments': {}}]}]}",
		    "messages[0].tool_calls[0] has no string \"name\"");
	check_fails("{'messages': [{'role': 'user'}, {'role': 'assistant', 'tool_calls': "
		    "[{'name': 'a', 'arguments': 1}, {'function': {'name': 'f'}}]}]}",
		    "messages[1].tool_calls[1] has no \"arguments\"");
	check_fails("{'messages': [{'role': 'assistant', 'tool_calls': [{'function': 'f'}]}]}",
		    "messages[0].tool_calls[0].function is not an object");
	out = chat_template_render(noname, 1, NULL, true, &cause);
	T_ASSERT(out == NULL);
	T_STR_CONTAINS(cause, "messages[0] has no role");
	out = chat_template_render(badcalls, 1, NULL, true, &cause);
	T_ASSERT(out == NULL);
	T_STR_CONTAINS(cause, "messages[0].tool_calls: not a JSON array");
	out = chat_template_render(badcalls, 1, "[", true, &cause);
	T_ASSERT(out == NULL);
	out = chat_template_render(noname + 1, 0, "[", true, &cause);
	T_ASSERT(out == NULL);
	T_STR_CONTAINS(cause, "tools: JSON line");
	out = chat_template_render(noname + 1, 0, NULL, true, &cause);
	T_ASSERT(out == NULL);
	T_STR_CONTAINS(cause, "no messages");
	free(cause);
}

/*
 * chat_template_render_continue: the last assistant message left open, after
 * the answer so far or inside its thought; the text before it is the
 * rendering of the messages before it; other last messages are refused.
 */
static void
test_continue(void)
{
	struct chat_msg answer[] = {
		{ "system", "S", NULL, NULL },
		{ "user", "U1", NULL, NULL },
		{ "assistant", "R1\n</think>\n\nA1 so fa", NULL, NULL },
	};
	struct chat_msg thought[] = {
		{ "user", "U1", NULL, NULL },
		{ "assistant", "", "\nhalf a thought\n", NULL },
	};
	struct chat_msg closed[] = {
		{ "user", "U1", NULL, NULL },
		{ "assistant", "R</think>\n\n", NULL, NULL },
	};
	char *out, *before, *cause = NULL;
	bool in_thought = true;

	out = chat_template_render_continue(answer, 3, NULL, &in_thought, &cause);
	before = chat_template_render(answer, 2, NULL, false, &cause);
	same("continue an answer", out,
	     "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
	     "<|im_start|>assistant\n<think>\nR1\n</think>\n\nA1 so fa");
	T_ASSERT(!in_thought);
	T_ASSERT(out != NULL && before != NULL && strncmp(out, before, strlen(before)) == 0);
	free(out);
	free(before);
	/* The thought keeps its last newline: the model wrote it. */
	out = chat_template_render_continue(thought, 2, NULL, &in_thought, &cause);
	same("continue a thought", out,
	     "<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\n<think>\nhalf a thought\n");
	T_ASSERT(in_thought);
	free(out);
	out = chat_template_render_continue(closed, 2, NULL, &in_thought, &cause);
	same("continue after a closed thought", out,
	     "<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\n<think>\nR\n</think>\n\n");
	T_ASSERT(!in_thought);
	free(out);
	T_ASSERT(cause == NULL);
	T_ASSERT(chat_template_render_continue(answer, 2, NULL, &in_thought, &cause) == NULL);
	T_STR_CONTAINS(cause, "only an assistant message");
	free(cause);
}

int
main(void)
{
	test_cases();
	test_golden();
	test_model_md();
	test_tojson();
	test_branches();
	test_struct();
	test_builtin();
	test_errors();
	test_continue();
	return t_done("test-chat-template");
}
