/*
 * oai.c - the OpenAI chat-completions wire format (see oai.h).
 *
 * DESIGN: the request is checked field by field into struct oai_request,
 * each failure naming the field as OpenAI's `param` does; unknown fields
 * are ignored, as every OpenAI-compatible server does, because clients
 * send many (user, metadata, ...).  Replies are built as jansson objects
 * and dumped compact, one line each, as SSE data lines must be.
 *
 * Any thread (no shared state).
 */
#include "oai.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <utf8proc.h>

#include "util.h"

/* ---- request ---------------------------------------------------------------- */

/* A failed check: the client's message and the field it is about. */
static int
reject(char **param, char **cause, const char *field, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		fatal("out of memory");
	va_end(ap);
	*cause = xasprintf("%s: %s", field, msg);
	*param = xstrdup(field);
	free(msg);
	return -1;
}

/* The text of a content: a string, or an array of {"type":"text","text"} parts
 * joined; NULL stays NULL.  -1 after reject(). */
static int
content_text(json_t *c, const char *field, char **out, char **param, char **cause)
{
	size_t i, len = 0;
	json_t *part;
	char *s;

	*out = NULL;
	if (c == NULL || json_is_null(c))
		return 0;
	if (json_is_string(c)) {
		*out = xstrdup(json_string_value(c));
		return 0;
	}
	if (!json_is_array(c))
		return reject(param, cause, field, "must be a string or an array of text parts");
	s = xstrdup("");
	json_array_foreach(c, i, part)
	{
		const char *type = json_string_value(json_object_get(part, "type"));
		json_t *text = json_object_get(part, "text");
		size_t n;

		if (type == NULL || strcmp(type, "text") != 0 || !json_is_string(text)) {
			char *f = xasprintf("%s[%zu]", field, i);
			int rc = reject(param, cause, f,
					"only {\"type\": \"text\", \"text\": ...} parts are "
					"supported (the model reads text only)");

			free(f);
			free(s);
			return rc;
		}
		n = json_string_length(text);
		s = xrealloc(s, len + n + 1);
		memcpy(s + len, json_string_value(text), n);
		len += n;
		s[len] = '\0';
	}
	*out = s;
	return 0;
}

/* Roles the template knows; "developer" is OpenAI's newer name for "system". */
static const char *
role_name(const char *role)
{
	static const char *const roles[] = { "system", "user", "assistant", "tool" };

	if (strcmp(role, "developer") == 0)
		return "system";
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(role, roles[i]) == 0)
			return roles[i];
	return NULL;
}

static int
parse_message(json_t *m, size_t i, struct chat_msg *out, char **param, char **cause)
{
	char field[64];
	const char *role;
	json_t *reasoning, *calls;
	char *text;

	snprintf(field, sizeof(field), "messages[%zu]", i);
	if (!json_is_object(m))
		return reject(param, cause, field, "must be an object");
	role = json_string_value(json_object_get(m, "role"));
	snprintf(field, sizeof(field), "messages[%zu].role", i);
	if (role == NULL)
		return reject(param, cause, field, "missing (a string is required)");
	if ((out->role = role_name(role)) == NULL)
		return reject(param, cause, field,
			      "unknown role (system, developer, user, assistant or tool)");
	snprintf(field, sizeof(field), "messages[%zu].content", i);
	if (content_text(json_object_get(m, "content"), field, &text, param, cause) != 0)
		return -1;
	out->content = text;
	if (text == NULL && strcmp(out->role, "assistant") != 0)
		return reject(param, cause, field, "missing (only an assistant's may be null)");
	/* A thinking model's earlier reasoning, under either name servers use. */
	reasoning = json_object_get(m, "reasoning_content");
	if (reasoning == NULL)
		reasoning = json_object_get(m, "reasoning");
	if (json_is_string(reasoning) && strcmp(out->role, "assistant") == 0)
		out->reasoning = xstrdup(json_string_value(reasoning));
	calls = json_object_get(m, "tool_calls");
	if (json_is_array(calls) && json_array_size(calls) > 0 &&
	    strcmp(out->role, "assistant") == 0)
		out->tool_calls_json = json_dumps(calls, JSON_COMPACT);
	return 0;
}

static int
parse_messages(json_t *root, struct oai_request *r, char **param, char **cause)
{
	json_t *ms = json_object_get(root, "messages"), *m;
	size_t i;

	if (!json_is_array(ms) || json_array_size(ms) == 0)
		return reject(param, cause, "messages", "a non-empty array is required");
	r->msgs = xcalloc(json_array_size(ms), sizeof(*r->msgs));
	json_array_foreach(ms, i, m)
	{
		r->n_msgs = i + 1;
		if (parse_message(m, i, &r->msgs[i], param, cause) != 0)
			return -1;
	}
	return 0;
}

/* A number field in [lo, hi]; absent or null leaves *out.  1 when set. */
static int
number_field(json_t *root, const char *key, double lo, double hi, double *out, char **param,
	     char **cause)
{
	json_t *v = json_object_get(root, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return reject(param, cause, key, "must be a number");
	*out = json_number_value(v);
	if (!(*out >= lo && *out <= hi))
		return reject(param, cause, key, "must be between %g and %g", lo, hi);
	return 1;
}

/* An integer field in [lo, hi]; as number_field. */
static int
int_field(json_t *root, const char *key, long long lo, long long hi, long long *out, char **param,
	  char **cause)
{
	json_t *v = json_object_get(root, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return reject(param, cause, key, "must be an integer");
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return reject(param, cause, key, "must be between %lld and %lld", lo, hi);
	return 1;
}

/* The sampling fields; ranges are OpenAI's where it has them. */
static int
parse_sampling(json_t *root, struct oai_request *r, char **param, char **cause)
{
	struct sampler_params *sp = &r->sp;
	double x = 0;
	long long k = 0;
	int got;

#define NUM(key, lo, hi, field, bit)                                               \
	do {                                                                       \
		if ((got = number_field(root, key, lo, hi, &x, param, cause)) < 0) \
			return -1;                                                 \
		if (got)                                                           \
			sp->field = (float)x, r->sp_set |= (bit);                  \
	} while (0)
	NUM("temperature", 0, 2, temperature, SP_TEMPERATURE);
	NUM("top_p", 0, 1, top_p, SP_TOP_P);
	NUM("min_p", 0, 1, min_p, SP_MIN_P);
	NUM("presence_penalty", -2, 2, presence_penalty, SP_PRESENCE);
	NUM("repetition_penalty", 0.01, 10, repetition_penalty, SP_REPEAT);
#undef NUM
	/* vLLM and llama-server take -1 for "off"; qnext's off is 0. */
	if ((got = int_field(root, "top_k", -1, 1 << 20, &k, param, cause)) < 0)
		return -1;
	if (got)
		sp->top_k = k < 0 ? 0 : (int)k, r->sp_set |= SP_TOP_K;
	if ((got = int_field(root, "seed", 0, (long long)SAMPLER_SEED_MAX, &k, param, cause)) < 0)
		return -1;
	if (got)
		sp->seed = (uint64_t)k, r->sp_set |= SP_SEED;
	if ((got = number_field(root, "frequency_penalty", -2, 2, &x, param, cause)) < 0)
		return -1;
	if (got && x != 0)
		return reject(param, cause, "frequency_penalty",
			      "not supported (presence_penalty is)");
	return 0;
}

static int
parse_stop(json_t *root, struct oai_request *r, char **param, char **cause)
{
	json_t *v = json_object_get(root, "stop"), *s;
	size_t i;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		if (json_string_length(v) == 0)
			return reject(param, cause, "stop", "must not be empty");
		r->stop[r->n_stop++] = xstrdup(json_string_value(v));
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > OAI_MAX_STOP)
		return reject(param, cause, "stop", "must be a string or an array of at most %d",
			      OAI_MAX_STOP);
	json_array_foreach(v, i, s)
	{
		if (!json_is_string(s) || json_string_length(s) == 0)
			return reject(param, cause, "stop", "[%zu] must be a non-empty string", i);
		r->stop[r->n_stop++] = xstrdup(json_string_value(s));
	}
	return 0;
}

/* What qnext cannot do, refused rather than silently ignored. */
static int
parse_unsupported(json_t *root, char **param, char **cause)
{
	json_t *lp = json_object_get(root, "logprobs");
	long long n = 1;

	if (int_field(root, "n", 1, 1, &n, param, cause) < 0)
		return -1;
	if (json_is_true(lp))
		return reject(param, cause, "logprobs", "not supported");
	return 0;
}

/*
 * tools: function tools, which the template lists in the system turn as
 * they are (docs/serve.md "Tools").  tool_choice "auto" (the default) or
 * "none" (the tools are left out of the prompt); one that forces a call is
 * refused, since nothing here can make the model call one.
 */
static int
parse_tools(json_t *root, struct oai_request *r, char **param, char **cause)
{
	json_t *tools = json_object_get(root, "tools"), *tc = json_object_get(root, "tool_choice");
	json_t *t, *f;
	const char *choice = json_string_value(tc);
	char field[32];
	size_t i;

	if (tc != NULL && !json_is_null(tc) &&
	    (choice == NULL || (strcmp(choice, "auto") != 0 && strcmp(choice, "none") != 0)))
		return reject(param, cause, "tool_choice",
			      "only \"auto\" and \"none\" are supported (a call cannot be forced)");
	if (tools == NULL || json_is_null(tools))
		return 0;
	if (!json_is_array(tools))
		return reject(param, cause, "tools", "must be an array");
	json_array_foreach(tools, i, t)
	{
		f = json_object_get(t, "function");
		snprintf(field, sizeof(field), "tools[%zu]", i);
		if (!json_is_object(t) ||
		    strcmp(json_string_value(json_object_get(t, "type")) ?: "", "function") != 0 ||
		    !json_is_object(f) || !json_is_string(json_object_get(f, "name")))
			return reject(
				param, cause, field,
				"expected {\"type\": \"function\", \"function\": {\"name\": ...}}");
	}
	if (json_array_size(tools) > 0 && (choice == NULL || strcmp(choice, "none") != 0))
		r->tools_json = json_dumps(tools, JSON_COMPACT);
	return 0;
}

static int
parse_flags(json_t *root, struct oai_request *r, char **param, char **cause)
{
	json_t *v = json_object_get(root, "stream"), *so = json_object_get(root, "stream_options");
	long long k = 0;
	int got;

	if (v != NULL && !json_is_null(v) && !json_is_boolean(v))
		return reject(param, cause, "stream", "must be true or false");
	r->stream = json_is_true(v);
	v = json_object_get(root, "ignore_eos");
	if (v != NULL && !json_is_null(v) && !json_is_boolean(v))
		return reject(param, cause, "ignore_eos", "must be true or false");
	r->ignore_eos = json_is_true(v);
	if (so != NULL && !json_is_null(so) && !json_is_object(so))
		return reject(param, cause, "stream_options", "must be an object");
	r->include_usage = json_is_true(json_object_get(so, "include_usage"));
	v = json_object_get(root, "model");
	if (v != NULL && !json_is_null(v) && !json_is_string(v))
		return reject(param, cause, "model", "must be a string");
	if (json_is_string(v))
		r->model = xstrdup(json_string_value(v));
	/* The newer name wins when both are given, as OpenAI documents. */
	if ((got = int_field(root, "max_tokens", 1, INT32_MAX, &k, param, cause)) < 0)
		return -1;
	if (got)
		r->max_tokens = (int)k;
	if ((got = int_field(root, "max_completion_tokens", 1, INT32_MAX, &k, param, cause)) < 0)
		return -1;
	if (got)
		r->max_tokens = (int)k;
	/* vLLM's name (with --reasoning-config); 0 is no limit, as --think-budget 0. */
	if ((got = int_field(root, "thinking_token_budget", 0, INT32_MAX, &k, param, cause)) < 0)
		return -1;
	if (got)
		r->think_budget = (int)k;
	return 0;
}

/*
 * vLLM's continue_final_message (with add_generation_prompt false): the reply
 * goes on with the last message, an assistant's, instead of answering it.
 * add_generation_prompt false alone would leave the model nothing to write
 * into; refused.
 */
static int
parse_continue(json_t *root, struct oai_request *r, char **param, char **cause)
{
	json_t *c = json_object_get(root, "continue_final_message");
	json_t *g = json_object_get(root, "add_generation_prompt");

	if (c != NULL && !json_is_null(c) && !json_is_boolean(c))
		return reject(param, cause, "continue_final_message", "must be true or false");
	if (g != NULL && !json_is_null(g) && !json_is_boolean(g))
		return reject(param, cause, "add_generation_prompt", "must be true or false");
	r->continue_final = json_is_true(c);
	if (r->continue_final && json_is_true(g))
		return reject(param, cause, "add_generation_prompt",
			      "cannot be true with continue_final_message");
	if (!r->continue_final && json_is_false(g))
		return reject(param, cause, "add_generation_prompt",
			      "false is supported only with continue_final_message");
	if (r->continue_final && strcmp(r->msgs[r->n_msgs - 1].role, "assistant") != 0)
		return reject(param, cause, "continue_final_message",
			      "the last message must be the assistant's");
	return 0;
}

int
oai_request_parse(const char *body, size_t len, struct oai_request *r, char **param, char **cause)
{
	json_error_t err;
	json_t *root;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	*param = NULL;
	*cause = NULL;
	/* Duplicate keys refused: a body that says two things is a client bug. */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		char show[96];

		*cause = xasprintf("the body is not valid JSON: %s (line %d, column %d)",
				   str_show(show, sizeof(show), err.text), err.line, err.column);
		return -1;
	}
	if (!json_is_object(root))
		*cause = xstrdup("the body must be a JSON object");
	else if (parse_messages(root, r, param, cause) == 0 &&
		 parse_sampling(root, r, param, cause) == 0 &&
		 parse_stop(root, r, param, cause) == 0 &&
		 parse_unsupported(root, param, cause) == 0 &&
		 parse_tools(root, r, param, cause) == 0 &&
		 parse_flags(root, r, param, cause) == 0 &&
		 parse_continue(root, r, param, cause) == 0)
		rc = 0;
	json_decref(root);
	return rc;
}

void
oai_request_free(struct oai_request *r)
{
	for (size_t i = 0; i < r->n_msgs; i++) {
		/* role points into a static table; the rest was copied here. */
		free((char *)r->msgs[i].content);
		free((char *)r->msgs[i].reasoning);
		free((char *)r->msgs[i].tool_calls_json);
	}
	free(r->msgs);
	free(r->model);
	free(r->tools_json);
	for (int i = 0; i < r->n_stop; i++)
		free(r->stop[i]);
	memset(r, 0, sizeof(*r));
}

/* ---- replies ------------------------------------------------------------------ */

/*
 * A JSON string of text that may not be valid UTF-8 (a token can end
 * inside a character): invalid bytes become U+FFFD, as a client's decoder
 * would show them, because jansson refuses invalid strings.
 */
static json_t *
jstr(const char *s)
{
	size_t len = strlen(s), n = 0;
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
	json_t *j;
	char *fixed;

	if ((j = json_stringn(s, len)) != NULL)
		return j;
	fixed = xmalloc(3 * len + 1);
	for (size_t i = 0; i < len;) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);

		if (k <= 0) {
			memcpy(fixed + n, "\xEF\xBF\xBD", 3);
			n += 3, i++;
		} else {
			memcpy(fixed + n, s + i, (size_t)k);
			n += (size_t)k, i += (size_t)k;
		}
	}
	j = json_stringn(fixed, n);
	free(fixed);
	return j != NULL ? j : json_string("");
}

/* Dump and free j: one compact line. */
static char *
dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	if (s == NULL)
		fatal("out of memory");
	return s;
}

char *
oai_error_json(const char *message, const char *type, const char *param, const char *code)
{
	return dump(json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message", jstr(message), "type",
			      type, "param", param != NULL ? jstr(param) : json_null(), "code",
			      code != NULL ? json_string(code) : json_null()));
}

void
oai_reply_init(struct oai_reply *rp, const char *model)
{
	static unsigned counter; /* GLOBAL: per process; only the id's tail */
	unsigned c = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);

	rp->created = (long long)time(NULL);
	rp->model = model;
	snprintf(rp->id, sizeof(rp->id), "chatcmpl-%llx%05x%04x", (unsigned long long)rp->created,
		 (unsigned)getpid() & 0xfffff, c & 0xffff);
}

const char *
oai_finish_reason(enum gen_stop stop)
{
	return stop == GEN_STOP_LENGTH || stop == GEN_STOP_CONTEXT ? "length" : "stop";
}

static json_t *
usage_json(const struct gen_stats *st)
{
	return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", st->prompt_tokens,
			 "completion_tokens", st->gen_tokens, "total_tokens",
			 st->prompt_tokens + st->gen_tokens, "prompt_tokens_details",
			 "cached_tokens", st->reused_tokens);
}

static json_t *
reply_base(const struct oai_reply *rp, const char *object)
{
	return json_pack("{s:s,s:s,s:I,s:o}", "id", rp->id, "object", object, "created",
			 (json_int_t)rp->created, "model", jstr(rp->model));
}

char *
oai_chunk_json(const struct oai_reply *rp, const char *role, enum think_part part, const char *text,
	       const char *finish)
{
	json_t *j = reply_base(rp, "chat.completion.chunk"), *delta = json_object();

	if (role != NULL) {
		json_object_set_new(delta, "role", json_string(role));
		json_object_set_new(delta, "content", json_string(""));
	} else if (text != NULL) {
		json_object_set_new(delta,
				    part == THINK_REASONING ? "reasoning_content" : "content",
				    jstr(text));
	}
	json_object_set_new(j, "choices",
			    json_pack("[{s:i,s:o,s:n,s:o}]", "index", 0, "delta", delta, "logprobs",
				      "finish_reason",
				      finish != NULL ? json_string(finish) : json_null()));
	return dump(j);
}

char *
oai_usage_chunk_json(const struct oai_reply *rp, const struct gen_stats *st)
{
	json_t *j = reply_base(rp, "chat.completion.chunk");

	json_object_set_new(j, "choices", json_array());
	json_object_set_new(j, "usage", usage_json(st));
	return dump(j);
}

/* Whether s is empty or blanks only (the newlines the model writes around its tool calls). */
static bool
blank(const char *s)
{
	return s[strspn(s, " \t\r\n")] == '\0';
}

char *
oai_completion_json(const struct oai_reply *rp, const char *content, const char *reasoning,
		    char *const *calls, int n_calls, const char *finish, const struct gen_stats *st)
{
	json_t *j = reply_base(rp, "chat.completion"), *list;
	json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content",
				n_calls > 0 && blank(content) ? json_null() : jstr(content));

	if (reasoning != NULL && reasoning[0] != '\0')
		json_object_set_new(msg, "reasoning_content", jstr(reasoning));
	if (n_calls > 0) {
		list = json_array();
		for (int i = 0; i < n_calls; i++)
			json_array_append_new(list, json_loads(calls[i], 0, NULL));
		json_object_set_new(msg, "tool_calls", list);
	}
	json_object_set_new(j, "choices",
			    json_pack("[{s:i,s:o,s:n,s:s}]", "index", 0, "message", msg, "logprobs",
				      "finish_reason", finish));
	json_object_set_new(j, "usage", usage_json(st));
	return dump(j);
}

char *
oai_models_json(const char *model, long long created, int n_ctx)
{
	return dump(json_pack("{s:s,s:[{s:o,s:s,s:I,s:s,s:i}]}", "object", "list", "data", "id",
			      jstr(model), "object", "model", "created", (json_int_t)created,
			      "owned_by", "qnext", "max_model_len", n_ctx));
}

/* ---- stop strings ------------------------------------------------------------- */

size_t
oai_stop_scan(char *const *stop, int n_stop, const char *buf, size_t len, bool *hit)
{
	size_t safe = len, first = len;

	*hit = false;
	for (int i = 0; i < n_stop; i++) {
		size_t sl = strlen(stop[i]);
		const char *at = memmem(buf, len, stop[i], sl);

		if (at != NULL) {
			*hit = true;
			first = MIN(first, (size_t)(at - buf));
			continue;
		}
		/* The longest tail of buf that is a beginning of stop[i]. */
		for (size_t k = MIN(sl - 1, len); k > 0; k--) {
			if (memcmp(buf + len - k, stop[i], k) == 0) {
				safe = MIN(safe, len - k);
				break;
			}
		}
	}
	return *hit ? first : safe;
}

/* ---- tool calls ------------------------------------------------------------------ */

static const char CALL_OPEN[] = "<tool_call>", CALL_CLOSE[] = "</tool_call>";

/* The longest tail of buf[len] that is a beginning of tag (shorter than the tag). */
static size_t
tag_start_tail(const char *buf, size_t len, const char *tag)
{
	size_t tl = strlen(tag);

	for (size_t k = MIN(len, tl - 1); k > 0; k--)
		if (memcmp(buf + len - k, tag, k) == 0)
			return k;
	return 0;
}

/* Drop the first n bytes of what is held. */
static void
held_drop(struct oai_toolscan *t, size_t n)
{
	memmove(t->held, t->held + n, t->len - n);
	t->len -= n;
}

void
oai_toolscan_feed(struct oai_toolscan *t, const char *text, size_t len, oai_piece_fn *fn, void *arg)
{
	const char *at;
	size_t keep;

	if (len == 0)
		return;
	if (t->len + len > t->cap) {
		t->cap = MAX(2 * t->cap, t->len + len);
		t->held = xrealloc(t->held, t->cap);
	}
	memcpy(t->held + t->len, text, len);
	t->len += len;
	for (;;) {
		if (!t->in_call) {
			at = memmem(t->held, t->len, CALL_OPEN, strlen(CALL_OPEN));
			if (at == NULL) {
				keep = tag_start_tail(t->held, t->len, CALL_OPEN);
				if (t->len > keep)
					fn(arg, OAI_TEXT, t->held, t->len - keep);
				held_drop(t, t->len - keep);
				return;
			}
			if (at > t->held)
				fn(arg, OAI_TEXT, t->held, (size_t)(at - t->held));
			held_drop(t, (size_t)(at - t->held) + strlen(CALL_OPEN));
			t->in_call = true;
		}
		at = memmem(t->held, t->len, CALL_CLOSE, strlen(CALL_CLOSE));
		if (at == NULL) {
			if (t->len > OAI_CALL_MAX) { /* not a call after all: text, as written */
				fn(arg, OAI_TEXT, CALL_OPEN, strlen(CALL_OPEN));
				fn(arg, OAI_TEXT, t->held, t->len);
				t->len = 0;
				t->in_call = false;
			}
			return;
		}
		fn(arg, OAI_CALL, t->held, (size_t)(at - t->held));
		held_drop(t, (size_t)(at - t->held) + strlen(CALL_CLOSE));
		t->in_call = false;
	}
}

void
oai_toolscan_finish(struct oai_toolscan *t, oai_piece_fn *fn, void *arg)
{
	if (t->in_call)
		fn(arg, OAI_TEXT, CALL_OPEN, strlen(CALL_OPEN));
	if (t->len > 0)
		fn(arg, OAI_TEXT, t->held, t->len);
	free(t->held);
	memset(t, 0, sizeof(*t));
}

char *
oai_tool_call(const char *body, size_t len)
{
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL), *args;
	const char *name = json_string_value(json_object_get(j, "name"));
	char *arguments, *call, id[32];
	static unsigned counter; /* GLOBAL: per process; only the id's tail */
	unsigned c = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);

	args = json_object_get(j, "arguments");
	if (name == NULL || !(json_is_object(args) || json_is_string(args))) {
		json_decref(j);
		return NULL;
	}
	/* A string is already the arguments' JSON text; an object is written out as OpenAI does. */
	arguments = json_is_string(args) ? xstrdup(json_string_value(args))
					 : json_dumps(args, JSON_COMPACT);
	snprintf(id, sizeof(id), "call_%08x%04x%04x", (unsigned)time(NULL),
		 (unsigned)getpid() & 0xffff, c & 0xffff);
	call = dump(json_pack("{s:s,s:s,s:{s:o,s:o}}", "id", id, "type", "function", "function",
			      "name", jstr(name), "arguments", jstr(arguments)));
	free(arguments);
	json_decref(j);
	return call;
}

char *
oai_tool_chunk_json(const struct oai_reply *rp, int index, const char *call)
{
	json_t *j = reply_base(rp, "chat.completion.chunk"), *c = json_loads(call, 0, NULL);

	json_object_set_new(c, "index", json_integer(index));
	json_object_set_new(j, "choices",
			    json_pack("[{s:i,s:{s:[o]},s:n,s:n}]", "index", 0, "delta",
				      "tool_calls", c, "logprobs", "finish_reason"));
	return dump(j);
}
