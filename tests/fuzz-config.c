/*
 * fuzz-config.c - libFuzzer harness for the config.json parser
 * (config_parse).  The input is the config text; when it holds a NUL byte,
 * what follows is the quantization_config.json text.  A config that parses
 * is then asked for a few modules' quantization, which runs the extra_config
 * regexes, and released.  Built by `make fuzz`; single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const modules[] = {
	"model.layers.0.linear_attn.in_proj_qkvz",
	"model.layers.3.self_attn.q_proj",
	"model.layers.1.mlp.experts.7.down_proj",
	"lm_head",
	"",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model_config c;
	char *text = xmalloc(size + 1), *cause = NULL;
	const char *q = NULL;
	size_t len = size, qlen = 0;
	int bits, gs;

	if (size > 0)
		memcpy(text, data, size);
	text[size] = '\0';
	if (strlen(text) < size) {
		len = strlen(text);
		q = text + len + 1;
		qlen = size - len - 1;
	}
	if (config_parse(&c, text, len, q, qlen, "fuzz", &cause) == 0) {
		for (size_t i = 0; i < ARRAY_LEN(modules); i++)
			config_module_quant(&c, modules[i], &bits, &gs, NULL);
		config_release(&c);
	} else if (cause == NULL) {
		abort(); /* a failure must say why */
	}
	free(cause);
	free(text);
	return 0;
}
