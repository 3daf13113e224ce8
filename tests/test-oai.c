/*
 * test-oai.c - the OpenAI wire format (tools/oai.c): requests parsed into
 * the right fields or refused naming the field, replies that parse back
 * with the fields clients read, and the stop-string scan over every split
 * of a stream.  Single-threaded.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "oai.h"
#include "t.h"
#include "util.h"

static int
parse(const char *body, struct oai_request *r, char **param, char **cause)
{
	return oai_request_parse(body, strlen(body), r, param, cause);
}

static void
test_parse_ok(void)
{
	struct oai_request r;
	char *param, *cause;
	const char *body =
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
		"\"temperature\":0.5,\"top_p\":0.9,\"top_k\":-1,\"min_p\":0.05,"
		"\"presence_penalty\":1.5,\"seed\":42,\"max_tokens\":9,\"max_completion_tokens\":7,"
		"\"thinking_token_budget\":64,"
		"\"stop\":[\"END\",\"##\"],\"user\":\"ignored\",\"messages\":["
		"{\"role\":\"developer\",\"content\":\"sys\"},"
		"{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
		"{\"type\":\"text\",\"text\":\"b\"}]},"
		"{\"role\":\"assistant\",\"content\":null,\"reasoning\":\"r\"}]}";

	T_EQ_INT(parse(body, &r, &param, &cause), 0);
	T_ASSERT(r.stream && r.include_usage);
	T_ASSERT(r.model != NULL && strcmp(r.model, "m") == 0);
	T_EQ_INT(r.n_msgs, 3);
	T_ASSERT(strcmp(r.msgs[0].role, "system") == 0 && strcmp(r.msgs[0].content, "sys") == 0);
	T_ASSERT(strcmp(r.msgs[1].content, "ab") == 0);
	T_ASSERT(r.msgs[2].content == NULL && strcmp(r.msgs[2].reasoning, "r") == 0);
	T_ASSERT(r.sp.temperature == 0.5f && r.sp.top_p == 0.9f && r.sp.min_p == 0.05f);
	T_EQ_INT(r.sp.top_k, 0);
	T_EQ_INT(r.sp.seed, 42);
	T_EQ_INT(r.sp_set, SP_TEMPERATURE | SP_TOP_P | SP_TOP_K | SP_MIN_P | SP_PRESENCE | SP_SEED);
	T_EQ_INT(r.max_tokens, 7);
	T_EQ_INT(r.think_budget, 64);
	T_EQ_INT(r.n_stop, 2);
	T_ASSERT(strcmp(r.stop[1], "##") == 0);
	oai_request_free(&r);
	/* Nothing optional: nothing set. */
	T_EQ_INT(
		parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r, &param, &cause),
		0);
	T_EQ_INT(r.sp_set, 0);
	T_ASSERT(!r.stream && r.max_tokens == 0 && r.n_stop == 0 && r.model == NULL);
	T_EQ_INT(r.think_budget, 0);
	T_ASSERT(!r.continue_final);
	oai_request_free(&r);
	/* vLLM's continue_final_message, with or without add_generation_prompt false. */
	T_EQ_INT(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
		       "{\"role\":\"assistant\",\"content\":\"The\",\"reasoning_content\":\"r\"}],"
		       "\"continue_final_message\":true,\"add_generation_prompt\":false}",
		       &r, &param, &cause),
		 0);
	T_ASSERT(r.continue_final && strcmp(r.msgs[1].reasoning, "r") == 0);
	oai_request_free(&r);
	T_EQ_INT(parse("{\"messages\":[{\"role\":\"assistant\",\"content\":null}],"
		       "\"continue_final_message\":true}",
		       &r, &param, &cause),
		 0);
	T_ASSERT(r.continue_final);
	oai_request_free(&r);
}

static void
refused(const char *body, const char *want_param, const char *want_text)
{
	struct oai_request r;
	char *param = NULL, *cause = NULL;

	T_EQ_INT(parse(body, &r, &param, &cause), -1);
	T_ASSERT(cause != NULL && strstr(cause, want_text) != NULL);
	if (want_param == NULL)
		T_ASSERT(param == NULL);
	else
		T_ASSERT(param != NULL && strcmp(param, want_param) == 0);
	if (cause != NULL && strstr(cause, want_text) == NULL)
		fprintf(stderr, "  cause: %s\n", cause);
	free(param), free(cause);
	oai_request_free(&r);
}

static void
test_parse_refused(void)
{
	refused("", NULL, "not valid JSON");
	refused("[]", NULL, "must be a JSON object");
	refused("{\"messages\":{}}", "messages", "non-empty array");
	refused("{\"messages\":[1]}", "messages[0]", "must be an object");
	refused("{\"messages\":[{\"role\":\"x\",\"content\":\"\"}]}", "messages[0].role",
		"unknown role");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":3}]}", "messages[0].content",
		"string or an array");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
		"messages[0].content[0]", "text");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":-1}",
		"temperature", "between 0 and 2");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":1.5}", "seed",
		"integer");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"\"]}", "stop",
		"non-empty");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":3}", "n", "between");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		"\"thinking_token_budget\":-1}",
		"thinking_token_budget", "between");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		"\"continue_final_message\":true}",
		"continue_final_message", "the last message must be the assistant's");
	refused("{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\"}],"
		"\"continue_final_message\":true,\"add_generation_prompt\":true}",
		"add_generation_prompt", "cannot be true");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		"\"add_generation_prompt\":false}",
		"add_generation_prompt", "only with continue_final_message");
	refused("{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\"}],"
		"\"continue_final_message\":1}",
		"continue_final_message", "true or false");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}", "tools",
		"must be an array");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":["
		"{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":\"retrieval\"}]}",
		"tools[1]", "expected");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		"\"tool_choice\":\"required\"}",
		"tool_choice", "cannot be forced");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":1}", "stream",
		"true or false");
	refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"frequency_penalty\":1}",
		"frequency_penalty", "not supported");
	refused("{\"messages\":[],\"messages\":[]}", NULL, "duplicate");
}

/* A reply parses back as JSON with the fields a client reads. */
static void
test_replies(void)
{
	struct oai_reply rp;
	struct gen_stats st = { .prompt_tokens = 10, .reused_tokens = 4, .gen_tokens = 3 };
	json_t *j;
	char *s;

	oai_reply_init(&rp, "model\xff");
	T_ASSERT(strncmp(rp.id, "chatcmpl-", 9) == 0);
	/* Invalid UTF-8 (a token ending inside a character) becomes U+FFFD, not a failure. */
	s = oai_chunk_json(&rp, NULL, THINK_REASONING, "ab\xe2\x82", NULL);
	j = json_loads(s, 0, NULL);
	T_ASSERT(j != NULL);
	T_ASSERT(strcmp(json_string_value(json_object_get(
				json_object_get(json_array_get(json_object_get(j, "choices"), 0),
						"delta"),
				"reasoning_content")),
			"ab\xef\xbf\xbd\xef\xbf\xbd") == 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(j, "model")), "model\xef\xbf\xbd") == 0);
	json_decref(j);
	free(s);
	s = oai_completion_json(&rp, "answer", "thought", NULL, 0, "stop", &st);
	j = json_loads(s, 0, NULL);
	T_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")),
		 13);
	T_EQ_INT(json_integer_value(json_object_get(
			 json_object_get(json_object_get(j, "usage"), "prompt_tokens_details"),
			 "cached_tokens")),
		 4);
	json_decref(j);
	free(s);
	s = oai_error_json("bad", "invalid_request_error", "messages", NULL);
	T_ASSERT(strcmp(s, "{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\","
			   "\"param\":\"messages\",\"code\":null}}") == 0);
	free(s);
	T_ASSERT(strcmp(oai_finish_reason(GEN_STOP_CONTEXT), "length") == 0);
	T_ASSERT(strcmp(oai_finish_reason(GEN_STOP_EOS), "stop") == 0);
}

/*
 * Stream text through the scan in pieces of k bytes, as serve.c does;
 * return what was let through.
 */
static char *
stream_through(char *const *stop, int n, const char *text, size_t k, bool *hit)
{
	char *held = xstrdup(""), *out = xcalloc(strlen(text) + 1, 1);
	size_t nh = 0, no = 0;

	*hit = false;
	for (size_t i = 0; i < strlen(text) && !*hit; i += k) {
		size_t m = MIN(k, strlen(text) - i), safe;

		held = xrealloc(held, nh + m + 1);
		memcpy(held + nh, text + i, m);
		nh += m;
		safe = oai_stop_scan(stop, n, held, nh, hit);
		memcpy(out + no, held, safe);
		no += safe;
		memmove(held, held + safe, nh - safe);
		nh -= safe;
	}
	if (!*hit) {
		memcpy(out + no, held, nh);
		no += nh;
	}
	out[no] = '\0';
	free(held);
	return out;
}

static void
test_stop(void)
{
	char s1[] = "</end>", s2[] = "xyz";
	char *stop[] = { s1, s2 };
	bool hit;
	char *out;

	for (size_t k = 1; k <= 12; k++) {
		out = stream_through(stop, 2, "hello </en wor</end> more", k, &hit);
		T_ASSERT(hit && strcmp(out, "hello </en wor") == 0);
		free(out);
		out = stream_through(stop, 2, "ab xy x", k, &hit);
		T_ASSERT(!hit && strcmp(out, "ab xy x") == 0);
		free(out);
	}
	/* The earliest of two matches wins. */
	T_EQ_INT(oai_stop_scan(stop, 2, "a xyz b </end>", 14, &hit), 2);
	T_ASSERT(hit);
	/* A held tail: "</e" may begin "</end>". */
	T_EQ_INT(oai_stop_scan(stop, 2, "abc</e", 6, &hit), 3);
	T_ASSERT(!hit);
	T_EQ_INT(oai_stop_scan(NULL, 0, "abc", 3, &hit), 3);
}

/* What the tool call scanner handed on: the text joined, the calls' bodies joined by '|'. */
struct pieces {
	char text[512], calls[512];
	int n_calls;
};

static void
on_piece(void *arg, enum oai_piece kind, const char *text, size_t len)
{
	struct pieces *p = arg;
	char *to = kind == OAI_TEXT ? p->text : p->calls;

	if (kind == OAI_CALL && p->n_calls++ > 0)
		strcat(p->calls, "|");
	strncat(to, text, len);
}

/* text through a scanner in pieces of k bytes (0: whole). */
static void
scan(const char *text, size_t k, struct pieces *p)
{
	struct oai_toolscan t = { 0 };
	size_t n = strlen(text);

	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < n; i += k == 0 ? n : k)
		oai_toolscan_feed(&t, text + i, MIN(k == 0 ? n : k, n - i), on_piece, p);
	oai_toolscan_finish(&t, on_piece, p);
}

#define CALL1 "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
#define CALL2 "{\"name\":\"now\",\"arguments\":\"{}\"}"

static void
test_tool_scan(void)
{
	static const char text[] = "Let me look.\n\n<tool_call>" CALL1
				   "</tool_call>\n<tool_call>" CALL2 "</tool_call>";
	struct pieces p;
	bool all = true;

	/* Every piece size finds the same text and calls. */
	for (size_t k = 0; k <= sizeof(text); k++) {
		scan(text, k, &p);
		all &= strcmp(p.text, "Let me look.\n\n\n") == 0 && p.n_calls == 2 &&
		       strcmp(p.calls, CALL1 "|" CALL2) == 0;
	}
	T_ASSERT(all);
	/* Text that is not a call, or not a whole one, stays text, tags and all. */
	scan("a <tool> b <tool_c", 3, &p);
	T_ASSERT(strcmp(p.text, "a <tool> b <tool_c") == 0 && p.n_calls == 0);
	scan("x<tool_call>{\"name\": \"f\"", 1, &p);
	T_ASSERT(strcmp(p.text, "x<tool_call>{\"name\": \"f\"") == 0 && p.n_calls == 0);
	scan("</tool_call> alone", 0, &p);
	T_ASSERT(strcmp(p.text, "</tool_call> alone") == 0 && p.n_calls == 0);
}

/* Calls as OpenAI's objects; what is not one is refused; the replies that carry them. */
static void
test_tool_calls(void)
{
	struct oai_reply rp;
	struct gen_stats st = { .prompt_tokens = 9, .gen_tokens = 4 };
	char *c1 = oai_tool_call(CALL1, strlen(CALL1)), *c2 = oai_tool_call(CALL2, strlen(CALL2));
	char *calls[2] = { c1, c2 }, *s;
	json_t *j, *m, *tc;
	static const char *const not_calls[] = {
		"{\"arguments\": {}}",
		"{\"name\": \"f\", \"arguments\": 3}",
		"{\"name\": 7, \"arguments\": {}}",
		"not json",
		"{\"name\": \"f\"}",
		"[\"f\", {}]",
		"{\"name\": \"f\", \"arguments\": {}, \"name\": \"g\"}",
	};

	T_ASSERT(c1 != NULL && c2 != NULL);
	j = json_loads(c1, 0, NULL);
	T_ASSERT(strncmp(json_string_value(json_object_get(j, "id")) ?: "", "call_", 5) == 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(j, "type")) ?: "", "function") == 0);
	m = json_object_get(j, "function");
	T_ASSERT(strcmp(json_string_value(json_object_get(m, "name")) ?: "", "get_weather") == 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(m, "arguments")) ?: "",
			"{\"city\":\"Paris\"}") == 0);
	json_decref(j);
	j = json_loads(c2, 0, NULL);
	T_ASSERT(strcmp(json_string_value(
				json_object_get(json_object_get(j, "function"), "arguments"))
				?: "",
			"{}") == 0);
	json_decref(j);
	for (size_t i = 0; i < ARRAY_LEN(not_calls); i++)
		T_ASSERT(oai_tool_call(not_calls[i], strlen(not_calls[i])) == NULL);

	oai_reply_init(&rp, "m");
	s = oai_completion_json(&rp, "\n\n", "", calls, 2, "tool_calls", &st);
	j = json_loads(s, 0, NULL);
	m = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
	tc = json_object_get(m, "tool_calls");
	T_ASSERT(json_is_null(json_object_get(m, "content")));
	T_EQ_INT(json_array_size(tc), 2);
	T_ASSERT(strcmp(json_string_value(json_object_get(
				json_object_get(json_array_get(tc, 1), "function"), "name"))
				?: "",
			"now") == 0);
	T_ASSERT(strcmp(json_string_value(json_object_get(
				json_array_get(json_object_get(j, "choices"), 0), "finish_reason"))
				?: "",
			"tool_calls") == 0);
	json_decref(j);
	free(s);
	s = oai_completion_json(&rp, "Sure.", "", calls, 1, "tool_calls", &st);
	T_ASSERT(strstr(s, "\"content\":\"Sure.\"") != NULL);
	free(s);
	s = oai_tool_chunk_json(&rp, 1, c2);
	j = json_loads(s, 0, NULL);
	tc = json_array_get(
		json_object_get(
			json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta"),
			"tool_calls"),
		0);
	T_EQ_INT(json_integer_value(json_object_get(tc, "index")), 1);
	T_ASSERT(strcmp(json_string_value(json_object_get(json_object_get(tc, "function"), "name"))
				?: "",
			"now") == 0);
	json_decref(j);
	free(s);
	free(c1), free(c2);
}

/* tools and tool_choice in a request. */
static void
test_tools_parse(void)
{
	struct oai_request r;
	char *param, *cause;
	const char *tool = "{\"type\":\"function\",\"function\":{\"name\":\"f\","
			   "\"parameters\":{\"type\":\"object\"}}}";
	char *body = xasprintf("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
			       "\"tools\":[%s],\"tool_choice\":\"auto\"}",
			       tool);

	T_EQ_INT(parse(body, &r, &param, &cause), 0);
	T_ASSERT(r.tools_json != NULL && strstr(r.tools_json, "\"name\":\"f\"") != NULL);
	oai_request_free(&r);
	free(body);
	body = xasprintf("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
			 "\"tools\":[%s],\"tool_choice\":\"none\"}",
			 tool);
	T_EQ_INT(parse(body, &r, &param, &cause), 0);
	T_ASSERT(r.tools_json == NULL);
	oai_request_free(&r);
	free(body);
	/* A conversation that used them: the assistant's call and the tool's answer. */
	T_EQ_INT(
		parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
		      "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\","
		      "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
		      "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"42\"}]}",
		      &r, &param, &cause),
		0);
	T_ASSERT(r.msgs[1].tool_calls_json != NULL && strcmp(r.msgs[2].role, "tool") == 0);
	oai_request_free(&r);
}

int
main(void)
{
	test_parse_ok();
	test_parse_refused();
	test_tool_scan();
	test_tool_calls();
	test_tools_parse();
	test_replies();
	test_stop();
	return t_done("test-oai");
}
