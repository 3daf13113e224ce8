/*
 * fuzz-oai.c - libFuzzer harness for the chat-completions request parser
 * (oai_request_parse), the bytes `qnext serve` takes from any client.  A
 * request that parses is turned into every reply shape, and the stop scan
 * and the tool call scanner run over its messages' text (which a model may
 * write as well), so a parsed value that breaks later is found too.  Built
 * by `make fuzz`; single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oai.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A call the scanner found, turned into both of its reply shapes. */
static void
on_piece(void *arg, enum oai_piece kind, const char *text, size_t len)
{
	char *call;

	if (kind == OAI_CALL && (call = oai_tool_call(text, len)) != NULL) {
		free(oai_tool_chunk_json(arg, 0, call));
		free(oai_completion_json(arg, "", "", &call, 1, "tool_calls",
					 &(struct gen_stats){ 0 }));
		free(call);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oai_request r;
	struct oai_reply rp;
	struct gen_stats st = { 0 };
	char *param = NULL, *cause = NULL;
	bool hit;

	if (oai_request_parse((const char *)data, size, &r, &param, &cause) == 0) {
		oai_reply_init(&rp, r.model != NULL ? r.model : "m");
		for (size_t i = 0; i < r.n_msgs; i++) {
			const char *t = r.msgs[i].content != NULL ? r.msgs[i].content : "";

			struct oai_toolscan sc = { 0 };

			(void)oai_stop_scan(r.stop, r.n_stop, t, strlen(t), &hit);
			free(oai_chunk_json(&rp, NULL, THINK_ANSWER, t, NULL));
			oai_toolscan_feed(&sc, t, strlen(t) / 2, on_piece, &rp);
			oai_toolscan_feed(&sc, t + strlen(t) / 2, strlen(t) - strlen(t) / 2,
					  on_piece, &rp);
			oai_toolscan_finish(&sc, on_piece, &rp);
		}
		free(oai_completion_json(&rp, "", "", NULL, 0, "stop", &st));
	} else if (cause == NULL) {
		abort(); /* a refusal must say why */
	}
	free(param);
	free(cause);
	oai_request_free(&r);
	return 0;
}
