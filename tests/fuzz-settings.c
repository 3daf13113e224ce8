/*
 * fuzz-settings.c - libFuzzer harness for the settings file's parser
 * (settings_parse) and writer (settings_update).  The input is the file's
 * text; one that parses has every key formatted back and a key replaced,
 * and the text settings_update returns must parse to the same keys (a key
 * written back is read back).  Built by `make fuzz`; single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "settings.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write each key s sets back into text; the result must parse to the same set. */
static void
round_trip(const struct settings *s, const char *text, size_t len)
{
	for (int k = 0; k < SET_N; k++) {
		char *v = settings_format(s, (enum setting_key)k), *out, *cause = NULL;
		struct settings t;
		size_t n;

		if (v == NULL)
			continue;
		out = settings_update(text, len, settings_key_name((enum setting_key)k), v, &n);
		if (settings_parse(&t, out, n, "fuzz", &cause) != 0 || t.set != s->set)
			abort(); /* a value the parser gave back must read back */
		settings_release(&t);
		free(out);
		free(v);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings s;
	char *text = xmalloc(size + 1), *cause = NULL;

	if (size > 0)
		memcpy(text, data, size);
	text[size] = '\0';
	if (settings_parse(&s, text, size, "fuzz", &cause) == 0) {
		round_trip(&s, text, size);
		settings_release(&s);
	} else if (cause == NULL) {
		abort(); /* a failure must say why */
	}
	free(cause);
	free(text);
	return 0;
}
