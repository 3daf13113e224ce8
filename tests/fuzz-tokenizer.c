/*
 * fuzz-tokenizer.c - libFuzzer harness for the tokenizer.  The input is
 * encoded as text with the tiny fixture's tokenizer (loaded once, from
 * share/tiny relative to the repository root, where fuzz runs) and the
 * ids are decoded back token by token: every chunk must be valid UTF-8 and,
 * for valid UTF-8 input, the whole must be the NFC form of the input.  Then
 * the same bytes are loaded as a tokenizer.json; one that loads encodes a
 * sample and the input and decodes them.  Built by `make fuzz`;
 * single-threaded.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* GLOBAL: loading the fixture on every input would dominate the run time. */
static struct tokenizer *tiny;

static const char sample[] = "<|im_start|>user\nHi there, café 123 😀!<|im_end|>\n<think>\n";

static bool
valid_utf8(const char *s, size_t n)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t r;
	size_t i;

	for (i = 0; i < n; i += (size_t)r)
		if ((r = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
					  (utf8proc_ssize_t)(n - i), &cp)) <= 0)
			return false;
	return true;
}

/* Decode ids streaming; abort on a chunk that is not valid UTF-8.  Returns
 * the malloc'd text (NUL-terminated) and its length. */
static char *
decode(const struct tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
	struct tok_decoder d;
	size_t max = tokenizer_decode_max(t), k, i;
	char *s = xmalloc(n * max + 4);

	*len = 0;
	tok_decoder_init(&d);
	for (i = 0; i < n; i++) {
		k = tokenizer_decode(t, &d, ids[i], s + *len, max);
		if (!valid_utf8(s + *len, k))
			abort();
		*len += k;
	}
	*len += tok_decoder_flush(&d, s + *len, 3);
	s[*len] = '\0';
	return s;
}

/* Encode and decode with the fixture; the round trip must give NFC(text). */
static void
round_trip(const char *text, size_t size)
{
	utf8proc_uint8_t *nfc = NULL;
	utf8proc_ssize_t n_nfc;
	char *cause = NULL, *back;
	int32_t *ids;
	size_t n, len;

	if (tokenizer_encode(tiny, text, size, &ids, &n, &cause) < 0)
		abort(); /* the fixture's regex cannot fail on any text */
	back = decode(tiny, ids, n, &len);
	if (valid_utf8(text, size)) {
		n_nfc = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)size, &nfc,
				     UTF8PROC_STABLE | UTF8PROC_COMPOSE);
		if (n_nfc < 0 || (size_t)n_nfc != len || memcmp(nfc, back, len) != 0)
			abort();
	}
	free(nfc);
	free(back);
	free(ids);
}

/* The input as a tokenizer.json: loading either works or says why. */
static void
load_json(const char *text, size_t size)
{
	struct tokenizer *t;
	char *cause = NULL, *back;
	int32_t *ids;
	size_t n, len;

	if ((t = tokenizer_load_json(text, size, "fuzz", &cause)) == NULL) {
		if (cause == NULL)
			abort();
		free(cause);
		return;
	}
	/* A fuzzed regex may hit PCRE2's limits; that is an error, not a crash. */
	if (tokenizer_encode(t, sample, sizeof(sample) - 1, &ids, &n, &cause) == 0) {
		back = decode(t, ids, n, &len);
		free(back);
		free(ids);
	}
	free(cause);
	cause = NULL;
	if (tokenizer_encode(t, text, size, &ids, &n, &cause) == 0) {
		back = decode(t, ids, n, &len);
		free(back);
		free(ids);
	}
	free(cause);
	tokenizer_free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *cause = NULL;

	if (tiny == NULL && (tiny = tokenizer_load("share/tiny", &cause)) == NULL) {
		fprintf(stderr, "fuzz-tokenizer: %s (run from the repository root)\n", cause);
		abort();
	}
	round_trip((const char *)data, size);
	load_json((const char *)data, size);
	return 0;
}
