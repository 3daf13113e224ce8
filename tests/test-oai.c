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
	s = oai_completion_json(&rp, "answer", "thought", "stop", &st);
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

int
main(void)
{
	test_parse_ok();
	test_parse_refused();
	test_replies();
	test_stop();
	return t_done("test-oai");
}
