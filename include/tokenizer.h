/*
 * tokenizer.h - the Qwen3 byte-level BPE tokenizer, read from a Hugging Face
 * tokenizer.json: text to token ids (added tokens, NFC, regex pre-tokenizer,
 * BPE by merge rank) and ids back to UTF-8 text, token by token.
 *
 * Thread affinity: tokenizer_load*() runs on one thread (the engine thread or
 * a tool).  The loaded tokenizer is immutable, so any number of threads may
 * encode and decode with it at once until tokenizer_free().  A struct
 * tok_decoder is plain caller-owned state for one output stream.
 *
 * Ownership: ids from tokenizer_encode and strings from tokenizer_decode_all
 * are malloc'd and freed by the caller with free(3); error causes likewise.
 */
#ifndef QNEXT_TOKENIZER_H
#define QNEXT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tokenizer; /* opaque, immutable once loaded */

/*
 * Load `dir`/tokenizer.json.  When `dir`/tokenizer_config.json exists it must
 * be a JSON object and its added_tokens_decoder, if any, must agree with
 * tokenizer.json (a sanity check; nothing else is read from it yet).
 * Returns NULL and sets *cause (malloc'd, naming the file) on failure.
 */
struct tokenizer *tokenizer_load(const char *dir, char **cause);

/*
 * Load a tokenizer from the text of a tokenizer.json (`len` bytes, need not be
 * NUL-terminated).  `what` names the source in error messages.  Supported:
 * model BPE (vocab object, merges as "a b" strings or [a, b] pairs, optional
 * unk_token/fuse_unk/ignore_merges); normalizer null, NFC or a Sequence of
 * NFC; pre_tokenizer ByteLevel (add_prefix_space false), alone with
 * use_regex true (the GPT-2 regex) or after Split stages (Regex or String
 * pattern, behavior Isolated); decoder null or ByteLevel.  Anything else is an
 * error that names the unsupported type (as are added tokens with lstrip,
 * rstrip or single_word; "normalized" is ignored: all are matched in the raw
 * text).  A merge that names a token missing from the vocabulary is an error,
 * as in Hugging Face tokenizers.  A byte with no one-byte token and no
 * unk_token is dropped when encoding, as there.
 */
struct tokenizer *tokenizer_load_json(const char *json, size_t len, const char *what, char **cause);

/* Release everything.  Accepts NULL. */
void tokenizer_free(struct tokenizer *t);

/*
 * Encode `len` bytes of `text` (need not be NUL-terminated; NUL bytes are
 * ordinary characters).  Added tokens ("<|im_end|>", "<think>", ...) are found
 * in the raw text first, longest match first, special or not; the rest is
 * NFC-normalized, pre-tokenized and BPE-merged.  Bytes that are not valid
 * UTF-8 are replaced by U+FFFD first (one per maximal invalid subpart, as
 * Python's errors='replace' does).  No BOS/EOS is added.
 * OUT: *ids (malloc'd, caller frees; NULL when *n_ids is 0) and *n_ids.
 * Empty text gives 0 ids and returns 0.  Returns -1 with *cause on failure
 * (text over 2 GiB, a regex engine limit hit).
 */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int32_t **ids,
		     size_t *n_ids, char **cause);

/*
 * The id of the token whose text is exactly `content`: an added token by its
 * content ("</think>"), else a regular token by its byte-level spelling as
 * in tokenizer.json ("Ġworld" for " world").  -1 when there is none.
 */
int tokenizer_token_id(const struct tokenizer *t, const char *content);

/* Largest id + 1 over the vocabulary and the added tokens. */
int tokenizer_n_vocab(const struct tokenizer *t);

/* True for added tokens marked "special" (<|im_end|>; not <think>). */
bool tokenizer_is_special(const struct tokenizer *t, int32_t id);

/*
 * Streaming decoder state: the bytes of a UTF-8 sequence that a later token
 * may complete.  Initialize with tok_decoder_init; plain data, one per stream.
 */
struct tok_decoder {
	unsigned char pend[4]; /* a valid but incomplete UTF-8 prefix */
	int n_pend;            /* 0..3 bytes used in pend */
};

void tok_decoder_init(struct tok_decoder *d);

/*
 * The most bytes one tokenizer_decode call can write for this tokenizer:
 * 3 * (3 + longest token in bytes), since every held or token byte yields at
 * most one U+FFFD (3 bytes).  Size `out` with it.
 */
size_t tokenizer_decode_max(const struct tokenizer *t);

/*
 * Append the UTF-8 text of token `id` to `out` (at most `cap` bytes, not
 * NUL-terminated) and return the number of bytes written.  Regular tokens
 * give their bytes, added tokens their content.  Bytes of a UTF-8 sequence
 * that is not complete yet are held in `d` and written once a later token
 * completes it; invalid bytes become U+FFFD (EF BF BD), so the concatenated
 * output equals Python's bytes.decode('utf-8', errors='replace') of all the
 * token bytes.  An id that names no token (negative, >= n_vocab, or a hole)
 * decodes as the bytes of U+FFFD.  With cap >= tokenizer_decode_max(t)
 * nothing is lost; a smaller cap truncates the output.
 */
size_t tokenizer_decode(const struct tokenizer *t, struct tok_decoder *d, int32_t id, char *out,
			size_t cap);

/* End of stream: write U+FFFD for a held incomplete sequence (needs cap >= 3)
 * and reset `d`.  Returns the bytes written (0 or 3). */
size_t tok_decoder_flush(struct tok_decoder *d, char *out, size_t cap);

/* Decode `n` ids at once, flushed.  Returns a malloc'd NUL-terminated string
 * (caller frees). */
char *tokenizer_decode_all(const struct tokenizer *t, const int32_t *ids, size_t n);

#endif
