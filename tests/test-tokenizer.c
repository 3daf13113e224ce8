/*
 * test-tokenizer.c - the Qwen3 tokenizer against golden ids: the 264 cases of
 * tests/data/qwen3-tokenizer/cases.json (ids from a port of HF tokenizers),
 * the tiny and small golden prompts, decode round trips, streaming decode of
 * split UTF-8, invalid bytes, and clean errors for bad tokenizer.json files.
 * Runs from the repository root; single-threaded.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <utf8proc.h>

#include "safetensors.h"
#include "t.h"
#include "tokenizer.h"
#include "util.h"

#define QWEN_DIR   "share/qwen3-tokenizer"
#define QWEN_CASES "tests/data/qwen3-tokenizer/cases.json"

static bool
ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

static void
print_ids(const char *label, const int32_t *ids, size_t n)
{
	size_t i;

	fprintf(stderr, "  %s (%zu):", label, n);
	for (i = 0; i < n && i < 40; i++)
		fprintf(stderr, " %d", (int)ids[i]);
	fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

/* Encode s; on failure report and return -1. */
static int
enc(const struct tokenizer *t, const char *s, size_t len, int32_t **ids, size_t *n)
{
	char *cause = NULL;

	if (tokenizer_encode(t, s, len, ids, n, &cause) == 0)
		return 0;
	fprintf(stderr, "encode failed: %s\n", cause);
	free(cause);
	return -1;
}

static bool
encodes_to(const struct tokenizer *t, const char *s, size_t len, const int32_t *want, size_t n_want)
{
	int32_t *ids;
	size_t n;
	bool ok;

	if (enc(t, s, len, &ids, &n) < 0)
		return false;
	ok = ids_equal(ids, n, want, n_want);
	if (!ok) {
		print_ids("want", want, n_want);
		print_ids("got", ids, n);
	}
	free(ids);
	return ok;
}

static char *
nfc(const char *s)
{
	return (char *)utf8proc_NFC((const utf8proc_uint8_t *)s);
}

/* Decode token by token into one buffer; every chunk must be valid UTF-8 on
 * its own (the decoder holds partial sequences back). */
static char *
decode_stream(const struct tokenizer *t, const int32_t *ids, size_t n, bool *chunks_valid)
{
	struct tok_decoder d;
	size_t max = tokenizer_decode_max(t), len = 0, k, i;
	char *s = xmalloc(n * max + 4);
	utf8proc_int32_t cp;
	utf8proc_ssize_t r;

	*chunks_valid = true;
	tok_decoder_init(&d);
	for (i = 0; i < n; i++) {
		k = tokenizer_decode(t, &d, ids[i], s + len, max);
		for (size_t j = 0; j < k; j += (size_t)r) {
			r = utf8proc_iterate((const utf8proc_uint8_t *)s + len + j,
					     (utf8proc_ssize_t)(k - j), &cp);
			if (r <= 0) {
				*chunks_valid = false;
				break;
			}
		}
		len += k;
	}
	len += tok_decoder_flush(&d, s + len, 3);
	s[len] = '\0';
	return s;
}

/* Every golden case, encoded exactly, then decoded back to NFC(text). */
static void
test_cases(const struct tokenizer *t)
{
	json_error_t err;
	json_t *root = json_load_file(QWEN_CASES, 0, &err), *c, *v;
	size_t i, j, n, bad = 0, bad_rt = 0;
	int32_t *want, *ids;
	const char *text;
	char *back, *stream, *norm;
	bool valid;

	T_ASSERT(json_is_array(root));
	T_EQ_INT(json_array_size(root), 264);
	json_array_foreach(root, i, c)
	{
		text = json_string_value(json_object_get(c, "text"));
		want = xmalloc((json_array_size(json_object_get(c, "ids")) + 1) * sizeof(*want));
		json_array_foreach(json_object_get(c, "ids"), j, v) want[j] =
			(int32_t)json_integer_value(v);
		if (enc(t, text, json_string_length(json_object_get(c, "text")), &ids, &n) < 0) {
			bad++;
			free(want);
			continue;
		}
		if (!ids_equal(ids, n, want, json_array_size(json_object_get(c, "ids")))) {
			if (bad++ < 10) {
				fprintf(stderr, "case %zu: %s\n", i, text);
				print_ids("want", want, json_array_size(json_object_get(c, "ids")));
				print_ids("got", ids, n);
			}
		}
		back = tokenizer_decode_all(t, ids, n);
		stream = decode_stream(t, ids, n, &valid);
		norm = nfc(text);
		if (strcmp(back, norm) != 0 || strcmp(stream, norm) != 0 || !valid) {
			if (bad_rt++ < 5)
				fprintf(stderr, "case %zu round trip: '%s' vs '%s'\n", i, back,
					norm);
		}
		free(norm);
		free(stream);
		free(back);
		free(ids);
		free(want);
	}
	T_EQ_INT(bad, 0);
	T_EQ_INT(bad_rt, 0);
	json_decref(root);
}

/* The prompt of golden.json, tokenized, is golden.safetensors' input_ids. */
static void
test_golden(const char *dir)
{
	char *cause = NULL, *path = xasprintf("%s/golden.safetensors", dir);
	char *jpath = xasprintf("%s/golden.json", dir);
	struct tokenizer *t = tokenizer_load(dir, &cause);
	struct st_set *set = st_open_file(path, &cause);
	const struct st_tensor *x = set == NULL ? NULL : st_find(set, "input_ids");
	json_t *g = json_load_file(jpath, 0, NULL), *p = json_object_get(g, "prompt_text");
	char *back;
	int32_t *ids;
	size_t n;

	if (cause != NULL)
		fprintf(stderr, "%s: %s\n", dir, cause);
	T_ASSERT(t != NULL && x != NULL && json_is_string(p));
	if (t != NULL && x != NULL && json_is_string(p) && x->dtype == ST_I32) {
		T_ASSERT(encodes_to(t, json_string_value(p), json_string_length(p), x->data,
				    (size_t)x->n_elems));
		back = tokenizer_decode_all(t, x->data, (size_t)x->n_elems);
		T_ASSERT(strcmp(back, json_string_value(p)) == 0);
		free(back);
		if (enc(t, json_string_value(p), json_string_length(p), &ids, &n) == 0)
			T_ASSERT(n > 100);
		free(ids);
	}
	json_decref(g);
	st_close(set);
	tokenizer_free(t);
	free(cause);
	free(jpath);
	free(path);
}

/* The id of byte b's one-byte token (GPT-2 bytes_to_unicode spelling). */
static int32_t
byte_tok(const struct tokenizer *t, int b)
{
	unsigned cp = (unsigned)b, next = 256;
	int i;
	char s[3];

	if (!((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae)) {
		for (i = 0; i < b; i++)
			if (!((i >= '!' && i <= '~') || (i >= 0xa1 && i <= 0xac) || i >= 0xae))
				next++;
		cp = next;
	}
	if (cp < 0x80) {
		s[0] = (char)cp;
		s[1] = '\0';
	} else {
		s[0] = (char)(0xc0 | cp >> 6);
		s[1] = (char)(0x80 | (cp & 0x3f));
		s[2] = '\0';
	}
	return tokenizer_token_id(t, s);
}

/* Decode the one-byte tokens of `bytes` one at a time, flushed. */
static bool
bytes_decode_to(const struct tokenizer *t, const char *bytes, size_t n, const char *want)
{
	int32_t ids[16];
	char *s;
	size_t i;
	bool ok;

	for (i = 0; i < n; i++)
		ids[i] = byte_tok(t, (unsigned char)bytes[i]);
	s = tokenizer_decode_all(t, ids, n);
	ok = strcmp(s, want) == 0;
	if (!ok)
		fprintf(stderr, "  decoded '%s', want '%s'\n", s, want);
	free(s);
	return ok;
}

/* Python's bytes.decode('utf-8', 'replace'): one U+FFFD per maximal subpart. */
static void
test_decode_bytes(const struct tokenizer *t)
{
	int i;

	for (i = 0; i < 256; i++)
		T_ASSERT(byte_tok(t, i) >= 0);
	T_ASSERT(bytes_decode_to(t, "\x80", 1, "\xef\xbf\xbd"));
	T_ASSERT(bytes_decode_to(t, "\xe2\x82", 2, "\xef\xbf\xbd"));
	T_ASSERT(bytes_decode_to(t, "\xe2\x82\x41", 3, "\xef\xbf\xbd\x41"));
	T_ASSERT(bytes_decode_to(t, "\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"));
	T_ASSERT(bytes_decode_to(t, "\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
	T_ASSERT(bytes_decode_to(t, "\xe0\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd"));
	T_ASSERT(bytes_decode_to(t, "\xf4\x90\x80\x80", 4,
				 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
	T_ASSERT(bytes_decode_to(t, "\xf0\x9f\x98", 3, "\xef\xbf\xbd"));
	T_ASSERT(bytes_decode_to(t, "\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"));
	T_ASSERT(bytes_decode_to(t, "\xf0\x9f\x98<", 4, "\xef\xbf\xbd<"));
}

/* An emoji that BPE splits into byte pieces: nothing comes out until the
 * token that completes it; cut off early, the flush gives one U+FFFD. */
static void
test_decode_split(const struct tokenizer *t)
{
	struct tok_decoder d;
	char out[64];
	int32_t *ids;
	size_t n, k, i, held;

	if (enc(t, "\xf0\x9f\xa6\x9c", 4, &ids, &n) < 0)
		return;
	T_ASSERT(n >= 2);
	tok_decoder_init(&d);
	for (i = 0, k = 0; i < n; i++) {
		held = tokenizer_decode(t, &d, ids[i], out + k, sizeof(out) - k);
		if (i + 1 < n)
			T_EQ_INT(held, 0);
		k += held;
	}
	T_EQ_INT(k, 4);
	T_ASSERT(memcmp(out, "\xf0\x9f\xa6\x9c", 4) == 0);
	T_EQ_INT(tok_decoder_flush(&d, out, sizeof(out)), 0);
	tok_decoder_init(&d);
	for (i = 0; i + 1 < n; i++)
		T_EQ_INT(tokenizer_decode(t, &d, ids[i], out, sizeof(out)), 0);
	T_EQ_INT(tok_decoder_flush(&d, out, sizeof(out)), 3);
	T_ASSERT(memcmp(out, "\xef\xbf\xbd", 3) == 0);
	free(ids);
}

/* Ids naming no token decode as U+FFFD; added tokens as their content; a
 * short buffer truncates and never overflows. */
static void
test_decode_ids(const struct tokenizer *t)
{
	static const int32_t bad[] = { -1, 151669, 1 << 30 };
	struct tok_decoder d;
	char out[64], *s;

	s = tokenizer_decode_all(t, bad, 3);
	T_ASSERT(strcmp(s, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") == 0);
	free(s);
	tok_decoder_init(&d);
	T_EQ_INT(tokenizer_decode(t, &d, 151668, out, sizeof(out)), 8);
	T_ASSERT(memcmp(out, "</think>", 8) == 0);
	T_EQ_INT(tokenizer_decode(t, &d, 151668, out, 4), 0);
	T_ASSERT(tokenizer_decode_max(t) >= 9 && tokenizer_decode_max(t) < 4096);
}

static void
test_basics(const struct tokenizer *t)
{
	static const int32_t hello[] = { 9707, 1879 }, hello_sp[] = { 21927, 1879 };
	int32_t *ids = (int32_t *)&ids;
	size_t n = 99;
	char *cause = NULL;

	T_EQ_INT(tokenizer_token_id(t, "</think>"), 151668);
	T_EQ_INT(tokenizer_token_id(t, "<think>"), 151667);
	T_EQ_INT(tokenizer_token_id(t, "<|im_end|>"), 151645);
	T_EQ_INT(tokenizer_token_id(t, "<|endoftext|>"), 151643);
	T_EQ_INT(tokenizer_token_id(t, "Hello"), 9707);
	T_EQ_INT(tokenizer_token_id(t, "\xc4\xa0world"), 1879); /* "Ġworld" */
	T_EQ_INT(tokenizer_token_id(t, "no such token at all"), -1);
	T_EQ_INT(tokenizer_n_vocab(t), 151669);
	T_ASSERT(tokenizer_is_special(t, 151645));
	T_ASSERT(!tokenizer_is_special(t, 151668));
	T_ASSERT(!tokenizer_is_special(t, 9707));
	T_ASSERT(!tokenizer_is_special(t, -1) && !tokenizer_is_special(t, 1 << 30));
	T_ASSERT(encodes_to(t, "Hello world", 11, hello, 2));
	T_ASSERT(encodes_to(t, " Hello world", 12, hello_sp, 2));
	/* Empty text: no ids, no error. */
	T_EQ_INT(tokenizer_encode(t, "", 0, &ids, &n, &cause), 0);
	T_ASSERT(ids == NULL && n == 0 && cause == NULL);
	/* Invalid UTF-8 is read as U+FFFD, one per maximal subpart. */
	if (enc(t,
		"a\xff"
		"b\xe2\x82",
		5, &ids, &n) == 0) {
		T_ASSERT(encodes_to(t,
				    "a\xef\xbf\xbd"
				    "b\xef\xbf\xbd",
				    8, ids, n));
		free(ids);
	}
	/* U+180E is not White_Space for Oniguruma (HF): "\u180e'" is one symbol
	 * piece and "sy" a word, where PCRE2's own \s would cut "'s" out. */
	if (enc(t, "x\xe1\xa0\x8e'sy", 7, &ids, &n) == 0) {
		T_ASSERT(n >= 3 && ids[n - 1] == tokenizer_token_id(t, "sy"));
		for (size_t i = 0; i < n; i++)
			T_ASSERT(ids[i] != tokenizer_token_id(t, "'s"));
		free(ids);
	}
	/* NFC across the runs that need it: e+acute, a-ring+acute after a
	 * non-ASCII base, Cyrillic E+diaeresis, with ASCII around. */
	if (enc(t, "cafe\xcc\x81 x\xc3\xa5\xcc\x81y \xd0\x95\xcc\x88!", 19, &ids, &n) == 0) {
		T_ASSERT(encodes_to(t, "caf\xc3\xa9 x\xc7\xbby \xd0\x81!", 14, ids, n));
		free(ids);
	}
	/* NUL is an ordinary character. */
	if (enc(t, "a\0b", 3, &ids, &n) == 0) {
		T_EQ_INT(n, 3);
		free(ids);
	}
}

/* Words over the cache limit take the uncached heap merge; repeated words the
 * cache.  Both must give what a fresh encode of the piece gives. */
static void
test_words(const struct tokenizer *t)
{
	char *w = xmalloc(20001), *back;
	uint32_t x = 12345;
	int32_t *ids, *one;
	size_t n, n1, i;

	for (i = 0; i < 20000; i++) {
		x = x * 1103515245u + 12345u;
		w[i] = (char)('a' + (x >> 16) % 26);
	}
	w[20000] = '\0';
	if (enc(t, w, 20000, &ids, &n) == 0) {
		T_ASSERT(n > 1000 && n < 20000);
		back = tokenizer_decode_all(t, ids, n);
		T_ASSERT(strcmp(back, w) == 0);
		free(back);
		free(ids);
	}
	free(w);
	if (enc(t, "hello hello hello", 17, &ids, &n) == 0 && enc(t, " hello", 6, &one, &n1) == 0) {
		T_ASSERT(n == 3 && n1 == 1 && ids[1] == one[0] && ids[2] == one[0]);
		free(one);
		free(ids);
	}
}

/* A tiny tokenizer.json: a, b, c, Ġ and two merges; `merges` and the other
 * parts vary per test. */
#define MINI_VOCAB "{\"a\":0,\"b\":1,\"c\":2,\"\\u0120\":3,\"ab\":4,\"abc\":5}"
#define MINI_ADDED                                          \
	"[{\"id\":7,\"content\":\"<x>\",\"special\":true}," \
	"{\"id\":8,\"content\":\"<xy>\",\"special\":false}]"
#define MINI_NORM "{\"type\":\"NFC\"}"
#define MINI_PRE  "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"

static char *
mini(const char *type, const char *vocab, const char *merges, const char *norm, const char *pre)
{
	return xasprintf("{\"added_tokens\":%s,\"normalizer\":%s,\"pre_tokenizer\":%s,"
			 "\"decoder\":{\"type\":\"ByteLevel\"},"
			 "\"model\":{\"type\":\"%s\",\"vocab\":%s,\"merges\":%s}}",
			 MINI_ADDED, norm, pre, type, vocab, merges);
}

static struct tokenizer *
mini_load(const char *json, char **cause)
{
	return tokenizer_load_json(json, strlen(json), "tokenizer.json", cause);
}

static void
check_mini(const char *json)
{
	static const int32_t abc[] = { 5 }, abab[] = { 4, 3, 4 }, abcab[] = { 5, 4 };
	static const int32_t added[] = { 0, 8, 1, 7 }, dropped[] = { 0 };
	char *cause = NULL, *s;
	struct tokenizer *t = mini_load(json, &cause);

	T_ASSERT(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "  %s\n", cause);
		free(cause);
		return;
	}
	T_ASSERT(encodes_to(t, "abc", 3, abc, 1));
	T_ASSERT(encodes_to(t, "ab ab", 5, abab, 3));
	T_ASSERT(encodes_to(t, "abcab", 5, abcab, 2));
	/* Longest added token first: <xy> wins over <x>. */
	T_ASSERT(encodes_to(t, "a<xy>b<x>", 9, added, 4));
	/* A byte without a token and no unk_token is dropped, as in HF. */
	T_ASSERT(encodes_to(t, "az", 2, dropped, 1));
	T_ASSERT(tokenizer_is_special(t, 7) && !tokenizer_is_special(t, 8));
	T_EQ_INT(tokenizer_n_vocab(t), 9);
	s = tokenizer_decode_all(t, added, 4);
	T_ASSERT(strcmp(s, "a<xy>b<x>") == 0);
	free(s);
	tokenizer_free(t);
}

static void
test_mini(void)
{
	static const char *const norms[] = {
		"null",
		MINI_NORM,
		"{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"}]}",
	};
	char *j;
	size_t i;

	for (i = 0; i < ARRAY_LEN(norms); i++) {
		j = mini("BPE", MINI_VOCAB, "[\"a b\",\"ab c\"]", norms[i], MINI_PRE);
		check_mini(j);
		free(j);
	}
	/* Merges as pairs, and a Split + ByteLevel(use_regex false) sequence. */
	j = mini("BPE", MINI_VOCAB, "[[\"a\",\"b\"],[\"ab\",\"c\"]]", MINI_NORM,
		 "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
		 "{\"Regex\":\" ?\\\\p{L}+|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
		 "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}");
	check_mini(j);
	free(j);
}

/* Load `json` (freed here); it must fail with a cause containing `want`. */
static void
load_fails(char *json, const char *want)
{
	char *cause = NULL;
	struct tokenizer *t = mini_load(json, &cause);

	T_ASSERT(t == NULL);
	T_STR_CONTAINS(cause, want);
	tokenizer_free(t);
	free(cause);
	free(json);
}

static void
test_errors(void)
{
	const char *m = "[\"a b\"]";

	load_fails(xstrdup("{\"model\": "), "tokenizer.json: not valid JSON");
	load_fails(xstrdup("[1, 2]"), "tokenizer.json: not a JSON object");
	load_fails(mini("WordPiece", MINI_VOCAB, m, MINI_NORM, MINI_PRE),
		   "tokenizer.json: model.type 'WordPiece' is not supported");
	load_fails(mini("BPE", MINI_VOCAB, m, MINI_NORM, "{\"type\":\"Metaspace\"}"),
		   "tokenizer.json: pre_tokenizer type 'Metaspace' is not supported");
	load_fails(mini("BPE", MINI_VOCAB, m, "{\"type\":\"NFKC\"}", MINI_PRE),
		   "tokenizer.json: normalizer type 'NFKC' is not supported");
	load_fails(xstrdup("{\"model\":{\"type\":\"BPE\",\"merges\":[]}}"),
		   "tokenizer.json: model.vocab missing");
	load_fails(mini("BPE", MINI_VOCAB, "[\"a b\",\"a z\"]", MINI_NORM, MINI_PRE),
		   "tokenizer.json: model.merges[1] references unknown token 'z'");
	load_fails(mini("BPE", MINI_VOCAB, "[\"b c\"]", MINI_NORM, MINI_PRE),
		   "references unknown token 'bc'");
	load_fails(mini("BPE", MINI_VOCAB, "[\"abc\"]", MINI_NORM, MINI_PRE),
		   "model.merges[0] is neither");
	load_fails(mini("BPE", "{\"a\":-1}", "[]", MINI_NORM, MINI_PRE), "has no id");
	load_fails(mini("BPE", "{\"a\":0,\"b\":0}", "[]", MINI_NORM, MINI_PRE), "id 0 is both");
	load_fails(mini("BPE", MINI_VOCAB, m, MINI_NORM,
			"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
			"{\"Regex\":\"(\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\","
			"\"add_prefix_space\":false,\"use_regex\":false}]}"),
		   "pre_tokenizer regex");
	load_fails(mini("BPE", MINI_VOCAB, m, MINI_NORM, "null"), "pre_tokenizer is null");
}

static int
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* tokenizer_load checks tokenizer_config.json's added_tokens_decoder. */
static void
test_config_dir(void)
{
	char *dir = xasprintf("tests/data/tmp-tokenizer-%d", (int)getpid());
	char *tj = xasprintf("%s/tokenizer.json", dir),
	     *cj = xasprintf("%s/tokenizer_config.json", dir);
	char *json = mini("BPE", MINI_VOCAB, "[\"a b\"]", MINI_NORM, MINI_PRE), *cause = NULL;
	struct tokenizer *t;

	T_ASSERT(mkdir(dir, 0700) == 0 && write_text(tj, json) == 0);
	t = tokenizer_load(dir, &cause); /* no tokenizer_config.json: fine */
	T_ASSERT(t != NULL);
	tokenizer_free(t);
	T_ASSERT(write_text(cj, "{\"added_tokens_decoder\":{\"7\":{\"content\":\"<x>\"}}}") == 0);
	t = tokenizer_load(dir, &cause);
	T_ASSERT(t != NULL);
	tokenizer_free(t);
	T_ASSERT(write_text(cj, "{\"added_tokens_decoder\":{\"8\":{\"content\":\"<x>\"}}}") == 0);
	t = tokenizer_load(dir, &cause);
	T_ASSERT(t == NULL);
	T_STR_CONTAINS(cause, "added_tokens_decoder 8");
	free(cause);
	cause = NULL;
	unlink(cj);
	unlink(tj);
	rmdir(dir);
	t = tokenizer_load(dir, &cause);
	T_ASSERT(t == NULL && cause != NULL);
	free(cause);
	free(json);
	free(cj);
	free(tj);
	free(dir);
}

int
main(void)
{
	char *cause = NULL;
	double t0 = now_sec();
	struct tokenizer *t = tokenizer_load(QWEN_DIR, &cause);

	printf("qwen3 tokenizer.json loaded in %.3f s\n", now_sec() - t0);
	T_ASSERT(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "%s\n", cause);
		free(cause);
		return t_done("test-tokenizer");
	}
	test_basics(t);
	test_cases(t);
	test_decode_bytes(t);
	test_decode_split(t);
	test_decode_ids(t);
	test_words(t);
	tokenizer_free(t);
	test_golden("share/tiny");
	test_golden("tests/data/small");
	test_mini();
	test_errors();
	test_config_dir();
	return t_done("test-tokenizer");
}
