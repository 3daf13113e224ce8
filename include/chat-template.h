/*
 * chat-template.h - the Qwen3 Thinking chat template (docs/model-format.md "Chat template")
 * rendered natively, byte for byte what Jinja2 renders from
 * tests/data/chat-template/qwen3-thinking.jinja with Hugging Face's tojson
 * (json.dumps with ensure_ascii=False: keys in given order, non-ASCII kept).
 *
 * Any thread: no global state; every call works on its arguments and returns
 * a fresh malloc'd string that the caller frees with free(3).
 *
 * Inputs the template would render in a meaningless way are refused with a
 * cause instead: no messages, a message without a string role, a first system
 * message whose content is not a string, tool_calls or tools that are not
 * arrays, a tool call without a string name or without arguments.  Messages
 * with an unknown role render as nothing, as in the template.  JSON strings
 * may not hold U+0000 and integers must fit in 64 bits (jansson's limits).
 */
#ifndef QNEXT_CHAT_TEMPLATE_H
#define QNEXT_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "chat-types.h" /* struct chat_msg */

/*
 * Render msgs[0..n-1] with the tools in tools_json (a JSON array of tool
 * definitions, or NULL for none).  With add_generation_prompt the prompt ends
 * in "<|im_start|>assistant\n<think>\n", ready for the model's reply.
 * Each tool call is {"type": "function", "function": {"name": N, "arguments":
 * A}} or {"name": N, "arguments": A}; A is a JSON value, or a string that is
 * emitted verbatim.
 * Returns the prompt (caller frees), or NULL with *cause set (caller frees).
 */
char *chat_template_render(const struct chat_msg *msgs, size_t n, const char *tools_json,
			   bool add_generation_prompt, char **cause);

/*
 * Render msgs[0..n-1] with the last message, which must be the assistant's
 * (without tool calls), left open for the model to go on with: as a final
 * assistant message renders, but without the "<|im_end|>\n" after it
 * (transformers' continue_final_message).  The prefix before that message is
 * what chat_template_render(msgs, n - 1, tools_json, false) gives.  When the
 * message has no answer yet and its thought was not closed (no "</think>"
 * in its content), the prompt ends inside the reasoning ("<think>\nR", R
 * kept but for leading newlines) and *in_thought is true; otherwise it ends
 * after the answer so far ("<think>\nR\n</think>\n\nA") and *in_thought is
 * false.  Returns the prompt (caller frees), or NULL with *cause set.
 */
char *chat_template_render_continue(const struct chat_msg *msgs, size_t n, const char *tools_json,
				    bool *in_thought, char **cause);

/*
 * Render the conversation in json[0..len-1], an object
 * {"messages": [...], "tools": [...]} (tools optional, other keys ignored);
 * each message has "role" and may have "content" (string; anything else
 * renders as ""), "reasoning_content" and "tool_calls".  The generation
 * prompt is appended.
 * Returns 0 with OUT: *out the prompt (caller frees), or -1 with *cause set.
 */
int chat_template_render_json(const char *json, size_t len, char **out, char **cause);

/*
 * Whether template_text (a tokenizer_config.json "chat_template") is the
 * template this module implements.  Trailing whitespace is ignored, so the
 * .jinja file with its final newline matches too.
 */
bool chat_template_is_builtin(const char *template_text);

#endif
