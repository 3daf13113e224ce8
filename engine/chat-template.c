/*
 * chat-template.c - a native renderer of the Qwen3 Thinking chat template.
 *
 * The template (qwen3-thinking.jinja, kept below as builtin_template so that
 * chat_template_is_builtin() can recognise it in a model's tokenizer_config)
 * is re-implemented rule by rule rather than interpreted: a Jinja engine in C
 * would be far more code than the one template the model ships.  Each
 * function below names the template branch it follows; docs/model-format.md "Chat template" states
 * the same rules in prose.  Reading order: the embedded template, a growing
 * string buffer, Python's json.dumps (the template's tojson filter), the
 * string surgery on "<think>" tags, the per-role renderers, and last the two
 * front ends that turn C structs or a JSON conversation into struct turn.
 *
 * Python semantics carry over to bytes unchanged: every split and strip in the
 * template works on ASCII separators, which never occur inside a UTF-8
 * sequence.
 *
 * Any thread: no global state beyond the constant template text.
 */
#include "chat-template.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util.h"

/*
 * The template as Hugging Face's tokenizer_config.json carries it: the .jinja
 * file without its final newline.  Generated from the file, not typed in;
 * the test compares the two.
 */
/* clang-format off */
static const char builtin_template[] =
	"{%- if tools %}\n"
	"    {{- '<|im_start|>system\\n' }}\n"
	"    {%- if messages[0].role == 'system' %}\n"
	"        {{- messages[0].content + '\\n\\n' }}\n"
	"    {%- endif %}\n"
	"    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user "
	"query.\\n\\nYou are provided with function signatures within <tools></tools> XML "
	"tags:\\n<tools>\" }}\n"
	"    {%- for tool in tools %}\n"
	"        {{- \"\\n\" }}\n"
	"        {{- tool | tojson }}\n"
	"    {%- endfor %}\n"
	"    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function "
	"name and arguments within <tool_call></tool_call> XML "
	"tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
	"<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
	"{%- else %}\n"
	"    {%- if messages[0].role == 'system' %}\n"
	"        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
	"    {%- endif %}\n"
	"{%- endif %}\n"
	"{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
	"{%- for message in messages[::-1] %}\n"
	"    {%- set index = (messages|length - 1) - loop.index0 %}\n"
	"    {%- if ns.multi_step_tool and message.role == \"user\" and message.content is "
	"string and not(message.content.startswith('<tool_response>') and "
	"message.content.endswith('</tool_response>')) %}\n"
	"        {%- set ns.multi_step_tool = false %}\n"
	"        {%- set ns.last_query_index = index %}\n"
	"    {%- endif %}\n"
	"{%- endfor %}\n"
	"{%- for message in messages %}\n"
	"    {%- if message.content is string %}\n"
	"        {%- set content = message.content %}\n"
	"    {%- else %}\n"
	"        {%- set content = '' %}\n"
	"    {%- endif %}\n"
	"    {%- if (message.role == \"user\") or (message.role == \"system\" and not "
	"loop.first) %}\n"
	"        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}\n"
	"    {%- elif message.role == \"assistant\" %}\n"
	"        {%- set reasoning_content = '' %}\n"
	"        {%- if message.reasoning_content is string %}\n"
	"            {%- set reasoning_content = message.reasoning_content %}\n"
	"        {%- else %}\n"
	"            {%- if '</think>' in content %}\n"
	"                {%- set reasoning_content = "
	"((content.split('</think>')|first).rstrip('\\n').split('<think>')|last).lstrip('\\n') "
	"%}\n"
	"                {%- set content = (content.split('</think>')|last).lstrip('\\n') %}\n"
	"            {%- endif %}\n"
	"        {%- endif %}\n"
	"        {%- if loop.index0 > ns.last_query_index %}\n"
	"            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
	"                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + "
	"reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
	"            {%- else %}\n"
	"                {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
	"            {%- endif %}\n"
	"        {%- else %}\n"
	"            {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
	"        {%- endif %}\n"
	"        {%- if message.tool_calls %}\n"
	"            {%- for tool_call in message.tool_calls %}\n"
	"                {%- if (loop.first and content) or (not loop.first) %}\n"
	"                    {{- '\\n' }}\n"
	"                {%- endif %}\n"
	"                {%- if tool_call.function %}\n"
	"                    {%- set tool_call = tool_call.function %}\n"
	"                {%- endif %}\n"
	"                {{- '<tool_call>\\n{\"name\": \"' }}\n"
	"                {{- tool_call.name }}\n"
	"                {{- '\", \"arguments\": ' }}\n"
	"                {%- if tool_call.arguments is string %}\n"
	"                    {{- tool_call.arguments }}\n"
	"                {%- else %}\n"
	"                    {{- tool_call.arguments | tojson }}\n"
	"                {%- endif %}\n"
	"                {{- '}\\n</tool_call>' }}\n"
	"            {%- endfor %}\n"
	"        {%- endif %}\n"
	"        {{- '<|im_end|>\\n' }}\n"
	"    {%- elif message.role == \"tool\" %}\n"
	"        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n"
	"            {{- '<|im_start|>user' }}\n"
	"        {%- endif %}\n"
	"        {{- '\\n<tool_response>\\n' }}\n"
	"        {{- content }}\n"
	"        {{- '\\n</tool_response>' }}\n"
	"        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
	"            {{- '<|im_end|>\\n' }}\n"
	"        {%- endif %}\n"
	"    {%- endif %}\n"
	"{%- endfor %}\n"
	"{%- if add_generation_prompt %}\n"
	"    {{- '<|im_start|>assistant\\n<think>\\n' }}\n"
	"{%- endif %}"
;
/* clang-format on */

#define IM_START   "<|im_start|>"
#define IM_END     "<|im_end|>\n"
#define GEN_PROMPT "<|im_start|>assistant\n<think>\n"
#define TOOLS_HEAD                                                                         \
	"# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" \
	"You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
#define TOOLS_TAIL                                                                           \
	"\n</tools>\n\nFor each function call, return a json object with function name and " \
	"arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "       \
	"<function-name>, \"arguments\": <args-json-object>}\n</tool_call>" IM_END

/* One message as the template sees it. */
struct turn {
	const char *role;      /* never NULL */
	const char *content;   /* NULL when message.content is not a string */
	const char *reasoning; /* NULL when message.reasoning_content is not a string */
	json_t *tool_calls;    /* NULL or a JSON array (borrowed) */
};

/* A growing NUL-terminated string; p is NULL until the first append. */
struct sbuf {
	char *p;    /* [cap] bytes, p[len] == '\0' */
	size_t len; /* bytes used, without the NUL */
	size_t cap; /* bytes allocated */
};

/* A borrowed piece of a string, not NUL-terminated. */
struct span {
	const char *p;
	size_t len;
};

static void
sb_addn(struct sbuf *sb, const char *s, size_t n)
{
	if (sb->len + n + 1 > sb->cap) {
		sb->cap = MAX(MAX(2 * sb->cap, sb->len + n + 1), 256);
		sb->p = xrealloc(sb->p, sb->cap);
	}
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

static void
sb_adds(struct sbuf *sb, const char *s)
{
	sb_addn(sb, s, strlen(s));
}

static void
sb_addspan(struct sbuf *sb, struct span s)
{
	sb_addn(sb, s.p, s.len);
}

/*
 * Python's repr(float), which json.dumps uses: the shortest digit string that
 * reads back as x, written positionally when the decimal exponent is in
 * (-4, 16] and with a two-digit-minimum exponent otherwise.  jansson prints
 * %.17g instead (0.1 becomes 0.10000000000000001), so reals are formatted
 * here.  The digits are found by trying 1..17 significant digits; besides the
 * correctly rounded candidate its upper or lower neighbour may be the one that
 * reads back, next to a power of two where the gaps on the two sides differ.
 * Only digits and 'e' are parsed, so a locale's decimal comma does no harm.
 */
static int
shortest_digits(double x, char *digits, size_t size)
{
	char tmp[48], *e;
	uint64_t m, cand[3];
	int p, exp10, k, nd;

	for (p = 1; p <= 17; p++) {
		snprintf(tmp, sizeof(tmp), "%.*e", p - 1, x);
		e = strchr(tmp, 'e');
		m = 0;
		for (char *c = tmp; c < e; c++)
			if (*c >= '0' && *c <= '9')
				m = m * 10 + (uint64_t)(*c - '0');
		exp10 = atoi(e + 1) - (p - 1); /* x ~ m * 10^exp10 */
		cand[0] = m;
		cand[1] = m + 1;
		cand[2] = m - 1;
		for (k = 0; k < 3; k++) {
			snprintf(tmp, sizeof(tmp), "%" PRIu64 "e%d", cand[k], exp10);
			if (cand[k] != 0 && strtod(tmp, NULL) == x)
				goto found;
		}
	}
	fatal("chat-template: no round-trip digits for %a", x);
found:
	nd = snprintf(digits, size, "%" PRIu64, cand[k]);
	while (nd > 1 && digits[nd - 1] == '0')
		digits[--nd] = '\0';
	/* Position of the decimal point: value = 0.digits * 10^decpt. */
	return exp10 + snprintf(tmp, sizeof(tmp), "%" PRIu64, cand[k]);
}

static void
dump_real(struct sbuf *sb, double x)
{
	char digits[24], out[64];
	int decpt, nd, n = 0;

	if (x == 0) {
		sb_adds(sb, signbit(x) ? "-0.0" : "0.0");
		return;
	}
	if (x < 0) {
		out[n++] = '-';
		x = -x;
	}
	decpt = shortest_digits(x, digits, sizeof(digits));
	nd = (int)strlen(digits);
	if (decpt <= -4 || decpt > 16)
		snprintf(out + n, sizeof(out) - (size_t)n, "%c%s%se%c%02d", digits[0],
			 nd > 1 ? "." : "", digits + 1, decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
	else if (decpt <= 0)
		snprintf(out + n, sizeof(out) - (size_t)n, "0.%.*s%s", -decpt, "0000", digits);
	else if (decpt < nd)
		snprintf(out + n, sizeof(out) - (size_t)n, "%.*s.%s", decpt, digits,
			 digits + decpt);
	else
		snprintf(out + n, sizeof(out) - (size_t)n, "%s%.*s.0", digits, decpt - nd,
			 "0000000000000000");
	sb_adds(sb, out);
}

/* A JSON string as json.dumps(ensure_ascii=False) writes it: only the quote,
 * the backslash and C0 controls are escaped; '/', DEL and non-ASCII stay. */
static void
dump_string(struct sbuf *sb, const char *s, size_t n)
{
	char esc[8];
	size_t i, run = 0;

	sb_addn(sb, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_addn(sb, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"':
			sb_adds(sb, "\\\"");
			break;
		case '\\':
			sb_adds(sb, "\\\\");
			break;
		case '\b':
			sb_adds(sb, "\\b");
			break;
		case '\f':
			sb_adds(sb, "\\f");
			break;
		case '\n':
			sb_adds(sb, "\\n");
			break;
		case '\r':
			sb_adds(sb, "\\r");
			break;
		case '\t':
			sb_adds(sb, "\\t");
			break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			sb_adds(sb, esc);
		}
	}
	sb_addn(sb, s + run, n - run);
	sb_addn(sb, "\"", 1);
}

/* tojson: json.dumps(v, ensure_ascii=False) with separators ", " and ": " and
 * keys in document order (jansson keeps insertion order; a duplicate key keeps
 * its first position and its last value, as Python's dict does). */
static void
dump_value(struct sbuf *sb, json_t *v)
{
	char num[32];
	const char *key;
	json_t *item;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		sb_adds(sb, "{");
		i = 0;
		json_object_foreach(v, key, item)
		{
			if (i++ > 0)
				sb_adds(sb, ", ");
			dump_string(sb, key, strlen(key));
			sb_adds(sb, ": ");
			dump_value(sb, item);
		}
		sb_adds(sb, "}");
		break;
	case JSON_ARRAY:
		sb_adds(sb, "[");
		json_array_foreach(v, i, item)
		{
			if (i > 0)
				sb_adds(sb, ", ");
			dump_value(sb, item);
		}
		sb_adds(sb, "]");
		break;
	case JSON_STRING:
		dump_string(sb, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		sb_adds(sb, num);
		break;
	case JSON_REAL:
		dump_real(sb, json_real_value(v));
		break;
	case JSON_TRUE:
		sb_adds(sb, "true");
		break;
	case JSON_FALSE:
		sb_adds(sb, "false");
		break;
	case JSON_NULL:
		sb_adds(sb, "null");
		break;
	}
}

/* Python truthiness of a JSON value, for the template's bare `if x`. */
static bool
truthy(const json_t *v)
{
	if (v == NULL)
		return false;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return json_object_size(v) > 0;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0;
	case JSON_TRUE:
		return true;
	case JSON_FALSE:
		return false;
	case JSON_NULL:
		return false;
	}
	return false;
}

static struct span
span_of(const char *s)
{
	struct span sp = { s, strlen(s) };

	return sp;
}

static bool
span_starts(struct span s, const char *prefix)
{
	size_t n = strlen(prefix);

	return s.len >= n && memcmp(s.p, prefix, n) == 0;
}

static bool
span_ends(struct span s, const char *suffix)
{
	size_t n = strlen(suffix);

	return s.len >= n && memcmp(s.p + s.len - n, suffix, n) == 0;
}

/* str.lstrip('\n') and str.rstrip('\n'). */
static struct span
lstrip_nl(struct span s)
{
	while (s.len > 0 && s.p[0] == '\n') {
		s.p++;
		s.len--;
	}
	return s;
}

static struct span
rstrip_nl(struct span s)
{
	while (s.len > 0 && s.p[s.len - 1] == '\n')
		s.len--;
	return s;
}

/* The text after the last occurrence of tag, or s itself: str.split(tag)|last.
 * The tags cannot overlap themselves, so the last match found left to right is
 * the start of split()'s last piece. */
static struct span
after_last(struct span s, const char *tag)
{
	size_t n = strlen(tag);
	const char *end = s.p + s.len, *q;

	while ((q = memmem(s.p, s.len, tag, n)) != NULL) {
		s.p = q + n;
		s.len = (size_t)(end - s.p);
	}
	return s;
}

/*
 * Without reasoning_content the template takes the reasoning from a content
 * of the form "[<think>]\nR\n</think>\n\nA": R is what precedes the first
 * "</think>" (right-stripped of newlines) after its last "<think>" (then
 * left-stripped), and the content becomes what follows the last "</think>",
 * left-stripped.
 */
static void
split_think(struct span *content, struct span *reasoning)
{
	const char *first = memmem(content->p, content->len, "</think>", 8);
	struct span r;

	if (first == NULL)
		return;
	r.p = content->p;
	r.len = (size_t)(first - content->p);
	*reasoning = lstrip_nl(after_last(rstrip_nl(r), "<think>"));
	*content = lstrip_nl(after_last(*content, "</think>"));
}

/*
 * ns.last_query_index: the last user message that is a real query, not tool
 * output the client wrapped in <tool_response> tags; n - 1 when there is none.
 * Assistant turns after it keep their thinking.
 */
static size_t
last_query_index(const struct turn *t, size_t n)
{
	size_t i;

	for (i = n; i-- > 0;) {
		struct span c;

		if (strcmp(t[i].role, "user") != 0 || t[i].content == NULL)
			continue;
		c = span_of(t[i].content);
		if (!(span_starts(c, "<tool_response>") && span_ends(c, "</tool_response>")))
			return i;
	}
	return n - 1;
}

/* `{% if tools %}`: the system turn that lists the tools, with the first
 * message's text in front when that message is the system prompt. */
static void
render_tools(struct sbuf *sb, const struct turn *first, json_t *tools)
{
	json_t *tool;
	size_t i;

	sb_adds(sb, IM_START "system\n");
	if (strcmp(first->role, "system") == 0) {
		sb_adds(sb, first->content);
		sb_adds(sb, "\n\n");
	}
	sb_adds(sb, TOOLS_HEAD);
	json_array_foreach(tools, i, tool)
	{
		sb_adds(sb, "\n");
		dump_value(sb, tool);
	}
	sb_adds(sb, TOOLS_TAIL);
}

/* One <tool_call> block.  A "function" member, when truthy, holds the call;
 * string arguments are emitted verbatim, anything else through tojson. */
static int
render_tool_call(struct sbuf *sb, json_t *call, size_t i, size_t j, char **cause)
{
	json_t *fn, *name, *args;

	if (!json_is_object(call))
		return cause_set(cause, "messages[%zu].tool_calls[%zu] is not an object", i, j);
	fn = json_object_get(call, "function");
	if (truthy(fn)) {
		if (!json_is_object(fn))
			return cause_set(cause,
					 "messages[%zu].tool_calls[%zu].function is not an object",
					 i, j);
		call = fn;
	}
	name = json_object_get(call, "name");
	args = json_object_get(call, "arguments");
	if (!json_is_string(name))
		return cause_set(cause, "messages[%zu].tool_calls[%zu] has no string \"name\"", i,
				 j);
	if (args == NULL)
		return cause_set(cause, "messages[%zu].tool_calls[%zu] has no \"arguments\"", i, j);
	sb_adds(sb, "<tool_call>\n{\"name\": \"");
	sb_addn(sb, json_string_value(name), json_string_length(name));
	sb_adds(sb, "\", \"arguments\": ");
	if (json_is_string(args))
		sb_addn(sb, json_string_value(args), json_string_length(args));
	else
		dump_value(sb, args);
	sb_adds(sb, "}\n</tool_call>");
	return 0;
}

/*
 * An assistant turn.  Thinking is shown only for turns after the last real
 * query (the current tool-calling round), and there only for the final
 * message or when it is non-empty; earlier turns lose it.  Note that the tool
 * calls' leading newline tests the content before its lstrip.
 */
static int
render_assistant(struct sbuf *sb, const struct turn *t, size_t i, size_t n, size_t last_query,
		 char **cause)
{
	struct span content = span_of(t->content != NULL ? t->content : "");
	struct span reasoning = { "", 0 };
	json_t *call;
	size_t j;

	if (t->reasoning != NULL)
		reasoning = span_of(t->reasoning);
	else
		split_think(&content, &reasoning);
	sb_adds(sb, IM_START "assistant\n");
	if (i > last_query && (i == n - 1 || reasoning.len > 0)) {
		sb_adds(sb, "<think>\n");
		sb_addspan(sb, lstrip_nl(rstrip_nl(reasoning)));
		sb_adds(sb, "\n</think>\n\n");
		sb_addspan(sb, lstrip_nl(content));
	} else {
		sb_addspan(sb, content);
	}
	if (t->tool_calls != NULL) {
		json_array_foreach(t->tool_calls, j, call)
		{
			if (j > 0 || content.len > 0)
				sb_adds(sb, "\n");
			if (render_tool_call(sb, call, i, j, cause) == -1)
				return -1;
		}
	}
	sb_adds(sb, IM_END);
	return 0;
}

/* A tool result; a run of them shares one user turn. */
static void
render_tool(struct sbuf *sb, const struct turn *t, size_t i, size_t n)
{
	if (i == 0 || strcmp(t[i - 1].role, "tool") != 0)
		sb_adds(sb, IM_START "user");
	sb_adds(sb, "\n<tool_response>\n");
	sb_adds(sb, t[i].content != NULL ? t[i].content : "");
	sb_adds(sb, "\n</tool_response>");
	if (i == n - 1 || strcmp(t[i + 1].role, "tool") != 0)
		sb_adds(sb, IM_END);
}

/*
 * The last message left open for the model to go on with (transformers'
 * continue_final_message): rendered as the template renders a final
 * assistant message after the last query, minus its "<|im_end|>".  With no
 * answer yet and no closed thought ("</think>" in the content), the prompt
 * ends inside the reasoning, kept as it is but for leading newlines (the
 * template's strip would eat a newline the model has already produced);
 * *in_thought says which.  Tool calls cannot be continued.
 */
static int
render_open_assistant(struct sbuf *sb, const struct turn *t, size_t i, size_t last_query,
		      bool *in_thought, char **cause)
{
	struct span content = span_of(t->content != NULL ? t->content : "");
	struct span reasoning = { "", 0 };
	bool closed = memmem(content.p, content.len, "</think>", 8) != NULL;

	if (strcmp(t->role, "assistant") != 0 || t->tool_calls != NULL)
		return cause_set(cause,
				 "messages[%zu]: only an assistant message without tool "
				 "calls can be continued",
				 i);
	if (t->reasoning != NULL)
		reasoning = span_of(t->reasoning);
	else
		split_think(&content, &reasoning);
	sb_adds(sb, IM_START "assistant\n");
	*in_thought = false;
	if (i <= last_query) {
		sb_addspan(sb, content);
	} else if (content.len == 0 && !closed) {
		sb_adds(sb, "<think>\n");
		sb_addspan(sb, lstrip_nl(reasoning));
		*in_thought = true;
	} else {
		sb_adds(sb, "<think>\n");
		sb_addspan(sb, lstrip_nl(rstrip_nl(reasoning)));
		sb_adds(sb, "\n</think>\n\n");
		sb_addspan(sb, lstrip_nl(content));
	}
	return 0;
}

/* How the prompt ends after the messages. */
enum tail {
	TAIL_NONE,       /* add_generation_prompt false */
	TAIL_GEN_PROMPT, /* add_generation_prompt true */
	TAIL_OPEN,       /* the last message left open (render_open_assistant) */
};

/* The whole template.  tools: NULL or a JSON array; in_thought: TAIL_OPEN's
 * answer (NULL otherwise).  Returns the prompt or NULL with *cause set. */
static char *
render(const struct turn *t, size_t n, json_t *tools, enum tail tail, bool *in_thought,
       char **cause)
{
	struct sbuf sb = { NULL, 0, 0 };
	size_t i, last_query;

	if (n == 0) {
		cause_set(cause, "no messages");
		return NULL;
	}
	/* The template concatenates this content to strings, which raises unless
	 * it is one. */
	if (strcmp(t[0].role, "system") == 0 && t[0].content == NULL) {
		cause_set(cause, "messages[0]: a system message needs string content");
		return NULL;
	}
	if (truthy(tools)) {
		render_tools(&sb, &t[0], tools);
	} else if (strcmp(t[0].role, "system") == 0) {
		sb_adds(&sb, IM_START "system\n");
		sb_adds(&sb, t[0].content);
		sb_adds(&sb, IM_END);
	}
	last_query = last_query_index(t, n);
	for (i = 0; i < n; i++) {
		const char *role = t[i].role;

		if (tail == TAIL_OPEN && i == n - 1) {
			if (render_open_assistant(&sb, &t[i], i, last_query, in_thought, cause) ==
			    -1) {
				free(sb.p);
				return NULL;
			}
		} else if (strcmp(role, "user") == 0 || (strcmp(role, "system") == 0 && i > 0)) {
			sb_adds(&sb, IM_START);
			sb_adds(&sb, role);
			sb_adds(&sb, "\n");
			sb_adds(&sb, t[i].content != NULL ? t[i].content : "");
			sb_adds(&sb, IM_END);
		} else if (strcmp(role, "assistant") == 0) {
			if (render_assistant(&sb, &t[i], i, n, last_query, cause) == -1) {
				free(sb.p);
				return NULL;
			}
		} else if (strcmp(role, "tool") == 0) {
			render_tool(&sb, t, i, n);
		}
	}
	if (tail == TAIL_GEN_PROMPT)
		sb_adds(&sb, GEN_PROMPT);
	return sb.p != NULL ? sb.p : xstrdup("");
}

/* Parse JSON text that must be an array (tools, tool calls); NULL with *cause
 * set otherwise.  what names it in the message. */
static json_t *
load_array(const char *text, const char *what, char **cause)
{
	json_error_t err;
	json_t *v;

	if ((v = json_loads(text, 0, &err)) == NULL) {
		cause_set(cause, "%s: JSON line %d column %d: %s", what, err.line, err.column,
			  err.text);
		return NULL;
	}
	if (!json_is_array(v)) {
		json_decref(v);
		cause_set(cause, "%s: not a JSON array", what);
		return NULL;
	}
	return v;
}

/* The C front end of render(): msgs as turns, tools_json parsed. */
static char *
render_msgs(const struct chat_msg *msgs, size_t n, const char *tools_json, enum tail tail,
	    bool *in_thought, char **cause)
{
	struct turn *t = NULL;
	json_t **calls = NULL, *tools = NULL;
	char *out = NULL, *what;
	size_t i;

	if (n > 0) {
		t = xcalloc(n, sizeof(*t));
		calls = xcalloc(n, sizeof(*calls));
	}
	for (i = 0; i < n; i++) {
		if (msgs[i].role == NULL) {
			cause_set(cause, "messages[%zu] has no role", i);
			goto out;
		}
		t[i].role = msgs[i].role;
		t[i].content = msgs[i].content;
		t[i].reasoning = msgs[i].reasoning;
		if (msgs[i].tool_calls_json != NULL) {
			what = xasprintf("messages[%zu].tool_calls", i);
			calls[i] = load_array(msgs[i].tool_calls_json, what, cause);
			free(what);
			if (calls[i] == NULL)
				goto out;
			t[i].tool_calls = calls[i];
		}
	}
	if (tools_json != NULL && (tools = load_array(tools_json, "tools", cause)) == NULL)
		goto out;
	out = render(t, n, tools, tail, in_thought, cause);
out:
	json_decref(tools);
	for (i = 0; i < n; i++)
		json_decref(calls[i]);
	free(calls);
	free(t);
	return out;
}

char *
chat_template_render(const struct chat_msg *msgs, size_t n, const char *tools_json,
		     bool add_generation_prompt, char **cause)
{
	return render_msgs(msgs, n, tools_json, add_generation_prompt ? TAIL_GEN_PROMPT : TAIL_NONE,
			   NULL, cause);
}

char *
chat_template_render_continue(const struct chat_msg *msgs, size_t n, const char *tools_json,
			      bool *in_thought, char **cause)
{
	return render_msgs(msgs, n, tools_json, TAIL_OPEN, in_thought, cause);
}

/* Fill *t from messages[i] of a JSON conversation; the strings stay owned by
 * the JSON document. */
static int
turn_from_json(struct turn *t, json_t *m, size_t i, char **cause)
{
	json_t *role, *content, *reasoning, *calls;

	if (!json_is_object(m))
		return cause_set(cause, "messages[%zu] is not an object", i);
	role = json_object_get(m, "role");
	content = json_object_get(m, "content");
	reasoning = json_object_get(m, "reasoning_content");
	calls = json_object_get(m, "tool_calls");
	if (!json_is_string(role))
		return cause_set(cause, "messages[%zu] has no string \"role\"", i);
	if (calls != NULL && !json_is_null(calls) && !json_is_array(calls))
		return cause_set(cause, "messages[%zu].tool_calls is not an array", i);
	t->role = json_string_value(role);
	t->content = json_is_string(content) ? json_string_value(content) : NULL;
	t->reasoning = json_is_string(reasoning) ? json_string_value(reasoning) : NULL;
	t->tool_calls = json_is_array(calls) ? calls : NULL;
	return 0;
}

int
chat_template_render_json(const char *json, size_t len, char **out, char **cause)
{
	json_error_t err;
	json_t *doc, *msgs, *tools;
	struct turn *t = NULL;
	size_t i, n;
	int rc = -1;

	*out = NULL;
	if ((doc = json_loadb(json, len, 0, &err)) == NULL)
		return cause_set(cause, "conversation: JSON line %d column %d: %s", err.line,
				 err.column, err.text);
	msgs = json_object_get(doc, "messages");
	tools = json_object_get(doc, "tools");
	if (!json_is_object(doc)) {
		cause_set(cause, "conversation: not a JSON object");
		goto out;
	}
	if (!json_is_array(msgs)) {
		cause_set(cause, "conversation: \"messages\" is %s",
			  msgs == NULL ? "missing" : "not an array");
		goto out;
	}
	if (tools != NULL && !json_is_null(tools) && !json_is_array(tools)) {
		cause_set(cause, "conversation: \"tools\" is not an array");
		goto out;
	}
	if ((n = json_array_size(msgs)) > 0)
		t = xcalloc(n, sizeof(*t));
	for (i = 0; i < n; i++)
		if (turn_from_json(&t[i], json_array_get(msgs, i), i, cause) == -1)
			goto out;
	if ((*out = render(t, n, json_is_array(tools) ? tools : NULL, TAIL_GEN_PROMPT, NULL,
			   cause)) != NULL)
		rc = 0;
out:
	free(t);
	json_decref(doc);
	return rc;
}

bool
chat_template_is_builtin(const char *template_text)
{
	size_t n, want = sizeof(builtin_template) - 1;

	if (template_text == NULL)
		return false;
	n = strlen(template_text);
	while (n > 0 && strchr(" \t\r\n", template_text[n - 1]) != NULL)
		n--;
	return n == want && memcmp(template_text, builtin_template, n) == 0;
}
