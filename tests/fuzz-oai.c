/*
 * fuzz-oai.c - libFuzzer harness for the chat-completions request parser
 * (oai_request_parse), the bytes `qnext serve` takes from any client.  A
 * request that parses is turned into every reply shape and the stop scan
 * runs over its messages' text, so a parsed value that breaks later is
 * found too.  Built by `make fuzz`; single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oai.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

			(void)oai_stop_scan(r.stop, r.n_stop, t, strlen(t), &hit);
			free(oai_chunk_json(&rp, NULL, THINK_ANSWER, t, NULL));
		}
		free(oai_completion_json(&rp, "", "", "stop", &st));
	} else if (cause == NULL) {
		abort(); /* a refusal must say why */
	}
	free(param);
	free(cause);
	oai_request_free(&r);
	return 0;
}
