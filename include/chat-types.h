/*
 * chat-types.h - the plain data the UI and the engine have in common: a
 * conversation's messages, sampling and generation parameters, a turn's
 * statistics and the two parts of a thinking model's reply.
 *
 * Both sides include this header and nothing of the other's: the engine's
 * headers (session.h, sampler.h, chat-template.h, think.h) build on it, and
 * the messages between the threads (msg.h) are made of it.  Types and
 * constants only; no function is declared here.
 *
 * Any thread (plain data).
 */
#ifndef QNEXT_CHAT_TYPES_H
#define QNEXT_CHAT_TYPES_H

#include <stdbool.h>
#include <stdint.h>

/*
 * One conversation turn; all strings are borrowed UTF-8.  Without reasoning,
 * an assistant content of the form "...</think>\n\nanswer" carries its own
 * reasoning, as the template reads it.
 */
struct chat_msg {
	const char *role;            /* "system", "user", "assistant" or "tool" */
	const char *content;         /* text, or NULL for none (renders as "") */
	const char *reasoning;       /* assistant's reasoning_content, or NULL */
	const char *tool_calls_json; /* assistant: JSON array of tool calls, or NULL */
};

/* How to choose the next token (sampler.h says in what order they apply). */
struct sampler_params {
	float temperature;        /* <= 0: greedy */
	int top_k;                /* 0: off */
	float top_p;              /* 1: off */
	float min_p;              /* 0: off */
	float presence_penalty;   /* subtracted once from every token already seen; 0: off */
	float repetition_penalty; /* HF style: divides positive, multiplies negative logits; 1: off
				   */
	uint64_t seed;
};

/*
 * A seed that means "a fresh one for every reply" (--seed -1, the front
 * ends' default).  It never reaches a sampler: front ends resolve it with
 * sampler_seed_pick() per turn and store the seed they used.
 */
#define SAMPLER_SEED_RANDOM UINT64_MAX
/* Largest fixed seed: 2^53 - 1, so a seed survives JSON and `/set seed`. */
#define SAMPLER_SEED_MAX    ((UINT64_C(1) << 53) - 1)

/*
 * Which fields of a struct sampler_params a user chose (command line,
 * /set): the UI keeps those and takes the rest from the model's defaults,
 * which the engine reports once the model is open (MSG_READY).
 */
enum sampler_field {
	SP_TEMPERATURE = 1 << 0,
	SP_TOP_K = 1 << 1,
	SP_TOP_P = 1 << 2,
	SP_MIN_P = 1 << 3,
	SP_PRESENCE = 1 << 4,
	SP_REPEAT = 1 << 5,
	SP_SEED = 1 << 6,
};

/* What one reply is generated with. */
struct gen_params {
	struct sampler_params sp;
	int max_tokens;  /* generated tokens at most */
	bool ignore_eos; /* go on past the end-of-turn token (vLLM's ignore_eos: benchmarks, tests)
			  */
	/*
	 * Reasoning tokens at most (0: no limit): once this many sampled tokens
	 * of the reply are reasoning, the engine feeds "\n</think>\n\n" itself
	 * (no newline when the reasoning ends in one) instead of sampling it,
	 * and the model answers (docs/ui.md "Context management").  The forced
	 * tokens count as generated tokens of the reply.
	 */
	int think_budget;
	/*
	 * Go on with the conversation's last message, the assistant's, instead of
	 * answering it (chat_template_render_continue): the reply is the rest of
	 * that message.
	 */
	bool continue_last;
	/*
	 * The tools the template lists in the system turn (a JSON array of
	 * {"type": "function", "function": {...}}, as OpenAI's request has
	 * them), or NULL.  Borrowed: MSG_PROMPT carries its own copy
	 * (msg_prompt.tools_json) and the engine points here at it.
	 */
	const char *tools_json;
	/*
	 * Called during the prefill between layers (and parts of a layer), and
	 * once per generated token; true = stop now.  Not asked again after a
	 * true in the same reply.  May be NULL.  Never sent between threads:
	 * the engine sets its own.
	 */
	bool (*poll)(void *arg);
	/* Called after each prefill chunk with tokens done and to do.  May be NULL. */
	void (*progress)(void *arg, int done, int total);
};

/* Why a reply ended. */
enum gen_stop {
	GEN_STOP_EOS,     /* the model ended its turn */
	GEN_STOP_LENGTH,  /* max_tokens reached */
	GEN_STOP_CONTEXT, /* the context is full */
	GEN_STOP_USER,    /* the callback or poll asked to stop */
};

/* The figures of one reply. */
struct gen_stats {
	int prompt_tokens; /* tokens of the rendered conversation */
	int reused_tokens; /* of which were already in the context */
	int gen_tokens;
	double prefill_s; /* prompt processing (the new tokens only) */
	double ttft_s;    /* call start to the first generated token */
	double decode_s;  /* first token to the end */
	enum gen_stop stop;
	/* The expert cache over this reply (cache_slots 0: none; the mapping serves). */
	int cache_slots, cache_used;       /* experts it may hold, and holds */
	uint64_t cache_hits, cache_misses; /* demanded experts in memory / read then */
	uint64_t cache_read;               /* bytes read from the files */
};

/* The two parts of a thinking model's reply (think.h splits them). */
enum think_part {
	THINK_REASONING,
	THINK_ANSWER,
};

/* A model directory qnext found, with what the plan says of it (models.h). */
struct model_found {
	char *dir;     /* as found (not resolved) */
	uint64_t size; /* bytes of its safetensors files */
	char *verdict; /* "fits in RAM, about 9.1 tok/s", or why it cannot be opened */
};

#endif
