/*
 * oai.h - the OpenAI chat-completions wire format as `qnext serve` speaks
 * it: a request body parsed and checked into plain data, the JSON of the
 * replies (whole, or streamed as chunks), the error object, the model list,
 * and the matching of `stop` strings against the streamed answer.
 *
 * Pure functions over jansson: no sockets, no engine.  Request bodies are
 * untrusted bytes (tests/fuzz-oai.c).  What is accepted and what each field
 * does is docs/serve.md "The request".
 *
 * Any thread (no shared state).
 */
#ifndef QNEXT_OAI_H
#define QNEXT_OAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat-types.h"

#define OAI_MAX_STOP 4 /* stop strings at most, as OpenAI's API allows */

/* A parsed POST /v1/chat/completions body.  Every string is owned. */
struct oai_request {
	struct chat_msg *msgs; /* [n_msgs] role, content, reasoning, tool_calls_json */
	size_t n_msgs;
	char *model;                /* the "model" asked for, or NULL */
	bool stream, include_usage; /* "stream", "stream_options.include_usage" */
	struct sampler_params sp;   /* the fields in sp_set; the rest unset (0) */
	unsigned sp_set;            /* enum sampler_field: what the request chose */
	int max_tokens;             /* "max_completion_tokens" or "max_tokens"; 0 = none */
	bool ignore_eos;            /* vLLM's extension: generate max_tokens whatever comes */
	int think_budget;    /* vLLM's "thinking_token_budget": reasoning tokens, then the answer */
	bool continue_final; /* vLLM's "continue_final_message": go on with the last message */
	char *tools_json;    /* "tools" (compact JSON) for the template to list, or NULL */
	char *stop[OAI_MAX_STOP]; /* [n_stop] non-empty strings */
	int n_stop;
};

/*
 * Parse body[len] into *r (zeroed first).  0, or -1 with *cause (a one-line
 * message for the client) and *param (the field at fault, e.g.
 * "messages[2].content", or NULL), both malloc'd.  *r needs oai_request_free
 * either way.
 */
int oai_request_parse(const char *body, size_t len, struct oai_request *r, char **param,
		      char **cause);
void oai_request_free(struct oai_request *r); /* accepts a zeroed one */

/*
 * {"error":{"message","type","param","code"}}: OpenAI's error object.
 * type e.g. "invalid_request_error"; param and code may be NULL.  malloc'd.
 */
char *oai_error_json(const char *message, const char *type, const char *param, const char *code);

/* What every reply of one request repeats. */
struct oai_reply {
	char id[48];       /* "chatcmpl-..." */
	long long created; /* Unix seconds */
	const char *model; /* the served model's id (borrowed) */
};

/* Fill id (unique within the process and across runs) and created. */
void oai_reply_init(struct oai_reply *rp, const char *model);

/* "stop" or "length" for how the reply ended. */
const char *oai_finish_reason(enum gen_stop stop);

/*
 * One streamed chunk, without the SSE framing: a delta holding role
 * "assistant" (first chunk only, role != NULL, text ""), or text in the
 * part's field (reasoning_content or content), or an empty delta with
 * finish_reason when finish != NULL.  malloc'd JSON.
 */
char *oai_chunk_json(const struct oai_reply *rp, const char *role, enum think_part part,
		     const char *text, const char *finish);

/* The last chunk under stream_options.include_usage: choices [] and usage. */
char *oai_usage_chunk_json(const struct oai_reply *rp, const struct gen_stats *st);

/*
 * The whole reply (stream false): message content, reasoning_content and
 * tool_calls (calls[0..n_calls), each oai_tool_call's JSON; content null
 * when there are calls and it is blank), usage.
 */
char *oai_completion_json(const struct oai_reply *rp, const char *content, const char *reasoning,
			  char *const *calls, int n_calls, const char *finish,
			  const struct gen_stats *st);

/*
 * Tool calls in the answer.  The Qwen3 template asks the model to write
 * each as <tool_call>\n{"name": N, "arguments": {...}}\n</tool_call>; the
 * scanner takes the answer's text as it streams and hands fn the text
 * between calls (OAI_TEXT) and each whole call's body (OAI_CALL), holding
 * back text that may still turn out to be a tag.  A call longer than
 * OAI_CALL_MAX is given up on and handed on as text, tags and all.
 */
#define OAI_CALL_MAX (1u << 20)
enum oai_piece { OAI_TEXT, OAI_CALL };
typedef void oai_piece_fn(void *arg, enum oai_piece kind, const char *text, size_t len);
struct oai_toolscan {
	char *held; /* text not handed on yet */
	size_t len, cap;
	bool in_call; /* held is a call's body so far, after its <tool_call> */
};
void oai_toolscan_feed(struct oai_toolscan *t, const char *text, size_t len, oai_piece_fn *fn,
		       void *arg);
/* The answer ended: what is held goes out as text (an unclosed call with its tag); frees. */
void oai_toolscan_finish(struct oai_toolscan *t, oai_piece_fn *fn, void *arg);

/*
 * A call's body as OpenAI's tool call, {"id": "call_...", "type": "function",
 * "function": {"name": N, "arguments": "<the arguments as a JSON string>"}}:
 * malloc'd JSON, or NULL when body is not {"name": string, "arguments":
 * object or string} (the caller shows it as text, as vLLM's parser does).
 */
char *oai_tool_call(const char *body, size_t len);

/* A streamed chunk whose delta holds tool call number index (call: oai_tool_call's JSON). */
char *oai_tool_chunk_json(const struct oai_reply *rp, int index, const char *call);

/* GET /v1/models: the one model, with max_model_len (the context), as vLLM lists it. */
char *oai_models_json(const char *model, long long created, int n_ctx);

/*
 * Stop strings over a streamed answer: given the answer text not yet sent,
 * buf[len], return how many leading bytes may be sent now.  When a stop
 * string occurs, *hit = true and the return value is where the earliest one
 * starts (the text from there on is never sent); otherwise the bytes kept
 * back are the longest tail of buf that begins some stop string.
 */
size_t oai_stop_scan(char *const *stop, int n_stop, const char *buf, size_t len, bool *hit);

#endif
