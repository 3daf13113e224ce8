/*
 * tokenizer.c - the Qwen3 byte-level BPE tokenizer (Hugging Face tokenizers'
 * BPE model with the GPT-2 byte map), loaded from tokenizer.json.
 *
 * The file follows the data: the tables a loaded tokenizer keeps (one entry
 * per id, an open-addressing hash from spelling to id, one from a pair of ids
 * to its merge), UTF-8 helpers, loading (model, added tokens, normalizer,
 * pre-tokenizer, decoder), encoding, then decoding.
 *
 * DESIGN
 * Encoding is Hugging Face's pipeline, step for step, because the ids must be
 * exactly theirs: invalid UTF-8 is replaced by U+FFFD (a Rust &str cannot hold
 * it, so this is our choice), added tokens are cut out of the raw text
 * (leftmost, then longest), each remaining segment is NFC-normalized, split by
 * the pre-tokenizer regexes (PCRE2 with UTF and UCP, JIT-compiled, with \s
 * spelled out as Oniguruma's White_Space), and every piece is BPE-merged on
 * its raw bytes.  Working on raw bytes rather than on the byte-level spelling
 * works because the byte map is a bijection: a word's
 * symbols start as the 256 one-byte tokens and merges are looked up by id
 * pair, so no string is built per word.  The merge loop is HF's word.rs: a
 * min-heap on (rank, position) with stale entries skipped, so long words cost
 * n log n.  Most words repeat, so each encode call keeps a small hash of words
 * already merged; it lives in the call, not in the tokenizer, which keeps the
 * tokenizer immutable and shareable between threads.
 *
 * Decoding concatenates token bytes and runs them through an incremental
 * UTF-8 decoder with Python's "replace" rule (one U+FFFD per maximal invalid
 * subpart), holding an incomplete tail in struct tok_decoder.
 *
 * Thread affinity: loading on one thread; the result is read-only, so encode
 * and decode may run on any threads at once.
 */
#include "tokenizer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include "util.h"

/* Ids at or above this are refused, which bounds what a hostile file can make
 * us allocate; the real vocabulary ends at 151668. */
#define ID_LIMIT       (1 << 22)
/* A tokenizer.json over 1 GiB is refused, so arena offsets fit 32 bits. */
#define JSON_MAX       (1u << 30)
/* Merges resolved together while loading (see merge_prepare). */
#define MERGE_BATCH    16
/* Regex split stages a pre-tokenizer may chain. */
#define MAX_STAGES     8
/* Strings from the file quoted in messages are cut to about this many bytes. */
#define SHOW           64
/* Words longer than this are merged each time instead of being cached. */
#define CACHE_WORD_MAX 64
/* Encode refuses longer text: symbol positions are int32_t. */
#define TEXT_MAX       ((size_t)INT32_MAX)
/* The PCRE2 JIT stack of one encode call grows up to this. */
#define JIT_STACK_MAX  (4u << 20)
#define MERGE_EMPTY    UINT64_MAX
/* ByteLevel's own split regex (HF pre_tokenizers/byte_level.rs), used when
 * ByteLevel has use_regex true. */
#define GPT2_REGEX \
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static const char replacement[3] = { '\xef', '\xbf', '\xbd' }; /* U+FFFD */

enum tok_kind { TOK_ABSENT, TOK_REGULAR, TOK_ADDED };

struct tok {
	uint32_t off, len;           /* decoded bytes: t->bytes.p[off .. off+len) */
	uint32_t name_off, name_len; /* tokenizer.json spelling in t->names (regular tokens) */
	uint8_t kind;                /* enum tok_kind */
	bool special;                /* added token with "special": true */
};

struct merge {
	uint64_t key;   /* left id << 32 | right id; MERGE_EMPTY marks a free slot */
	uint32_t rank;  /* index in model.merges: lower ranks merge first */
	int32_t new_id; /* the token spelled left + right */
};

struct added {
	int32_t id;
	uint32_t off, len;   /* content: t->bytes.p[off .. off+len), never empty */
	unsigned char first; /* its first byte */
};

struct buf {
	char *p;
	size_t n, cap; /* bytes used, allocated */
};

struct tokenizer {
	struct tok *tok; /* [cap_tok], indexed by id */
	int n_vocab;     /* largest id + 1 */
	size_t cap_tok;
	struct buf bytes; /* decoded bytes of all tokens */
	struct buf names; /* vocab spellings, as in the file */
	uint64_t *vslot;  /* [vmask + 1] spelling hash: hash high half << 32 | id + 1 */
	size_t vmask;
	struct merge *mslot; /* [mmask + 1] pair hash */
	size_t mmask;
	int mbits;               /* log2(mmask + 1) */
	int32_t byte_id[256];    /* id of each byte's one-byte token, -1 if none */
	uint16_t byte_char[256]; /* GPT-2 bytes_to_unicode: byte -> code point */
	int16_t char_byte[324];  /* its inverse over U+0000..U+0143, -1 elsewhere */
	struct added *added;     /* [n_added], by first byte, then longest first */
	size_t n_added;
	uint32_t first[257];           /* added[first[b] .. first[b+1]) start with byte b */
	size_t max_len;                /* longest decoded token, bytes */
	bool nfc;                      /* normalizer is NFC */
	pcre2_code *stage[MAX_STAGES]; /* pre-tokenizer splits, applied in order */
	int n_stages;
	int32_t unk_id; /* model.unk_token, -1 when none */
	bool fuse_unk, ignore_merges;
};

/* --- small helpers ------------------------------------------------------ */

/* Append n bytes; returns the offset they start at. */
static uint32_t
buf_add(struct buf *b, const void *p, size_t n)
{
	size_t off = b->n;

	if (b->n + n > b->cap) {
		b->cap = MAX(b->cap * 2, b->n + n + 64);
		b->p = xrealloc(b->p, b->cap);
	}
	if (n > 0)
		memcpy(b->p + b->n, p, n);
	b->n += n;
	return (uint32_t)off;
}

/* A fast 64-bit hash of a short byte string (words, spellings). */
static uint64_t
hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 29);
}

static size_t
pow2_at_least(size_t n)
{
	size_t p = 16;

	while (p < n)
		p *= 2;
	return p;
}

/* The value of `key`, or NULL when absent or JSON null. */
static json_t *
get(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_null(v) ? NULL : v;
}

/* The "type" of a JSON object, or a placeholder for messages. */
static const char *
type_of(json_t *o)
{
	json_t *v = get(o, "type");

	return json_is_string(v) ? json_string_value(v) : "(missing)";
}

/* A boolean option: absent means `def`; anything but true/false is an error. */
static int
get_flag(json_t *o, const char *key, bool def, bool *out)
{
	json_t *v = get(o, key);

	if (v == NULL)
		*out = def;
	else if (json_is_boolean(v))
		*out = json_is_true(v);
	else
		return -1;
	return 0;
}

/* --- UTF-8 -------------------------------------------------------------- */

/*
 * Classify the sequence at s[0] (n >= 1 bytes available): k > 0, a valid
 * sequence of k bytes; -k, an invalid maximal subpart of k bytes (replace it
 * by one U+FFFD and go on after it); 0, a valid prefix cut off by the end.
 * The second-byte ranges exclude overlongs, surrogates and > U+10FFFF, which
 * is what makes the subparts match Python's and the Unicode standard's.
 */
static int
utf8_scan(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	int need, i;

	if (c < 0x80)
		return 1;
	if (c < 0xc2 || c > 0xf4)
		return -1;
	need = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (i = 1; i < need; i++) {
		if ((size_t)i >= n)
			return 0;
		if (s[i] < lo || s[i] > hi)
			return -i;
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

static bool
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	uint64_t w;
	int k;

	while (i < n) {
		/* Eight ASCII bytes at a time: most text is mostly ASCII. */
		for (; i + 8 <= n; i += 8) {
			memcpy(&w, s + i, 8);
			if (w & 0x8080808080808080ull)
				break;
		}
		if (i == n)
			break;
		if ((k = utf8_scan(s + i, n - i)) <= 0)
			return false;
		i += (size_t)k;
	}
	return true;
}

/* A malloc'd copy of s with each invalid subpart replaced by U+FFFD. */
static char *
utf8_sanitize(const unsigned char *s, size_t n, size_t *out_len)
{
	struct buf b = { NULL, 0, 0 };
	size_t i = 0;
	int k;

	while (i < n) {
		k = utf8_scan(s + i, n - i);
		if (k > 0) {
			buf_add(&b, s + i, (size_t)k);
			i += (size_t)k;
		} else {
			buf_add(&b, replacement, 3);
			i = k < 0 ? i + (size_t)-k : n;
		}
	}
	*out_len = b.n;
	return b.p;
}

/* Write code point cp (< 0x800) as UTF-8; returns the length. */
static size_t
utf8_put2(char *p, unsigned cp)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	p[0] = (char)(0xc0 | cp >> 6);
	p[1] = (char)(0x80 | (cp & 0x3f));
	return 2;
}

/* --- byte map and hash tables ------------------------------------------ */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
 * other 68 take U+0100.. in byte order. */
static void
byte_map_init(struct tokenizer *t)
{
	unsigned next = 256;
	int b;

	for (b = 0; b < (int)ARRAY_LEN(t->char_byte); b++)
		t->char_byte[b] = -1;
	for (b = 0; b < 256; b++) {
		bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;

		t->byte_char[b] = (uint16_t)(printable ? (unsigned)b : next++);
		t->char_byte[t->byte_char[b]] = (int16_t)b;
	}
}

/* Slots keep the upper half of the hash beside the id, so a probe touches the
 * token's spelling only when that half matches; loading does three lookups
 * per merge, and each avoided cache miss there counts. */
static int32_t
vocab_find_h(const struct tokenizer *t, const char *s, size_t n, uint64_t h)
{
	size_t i = h & t->vmask;
	uint64_t v;
	const struct tok *k;

	for (;; i = (i + 1) & t->vmask) {
		if ((v = t->vslot[i]) == 0)
			return -1;
		if (v >> 32 != h >> 32)
			continue;
		k = &t->tok[(uint32_t)v - 1];
		if (k->name_len == n && memcmp(t->names.p + k->name_off, s, n) == 0)
			return (int32_t)((uint32_t)v - 1);
	}
}

static int32_t
vocab_find(const struct tokenizer *t, const char *s, size_t n)
{
	return vocab_find_h(t, s, n, hash_bytes(s, n));
}

static void
vocab_insert(struct tokenizer *t, int32_t id)
{
	const struct tok *k = &t->tok[id];
	uint64_t h = hash_bytes(t->names.p + k->name_off, k->name_len);
	size_t i = h & t->vmask;

	while (t->vslot[i] != 0)
		i = (i + 1) & t->vmask;
	t->vslot[i] = (h >> 32) << 32 | ((uint32_t)id + 1);
}

static size_t
merge_slot(const struct tokenizer *t, uint64_t key)
{
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> (64 - t->mbits));

	while (t->mslot[i].key != MERGE_EMPTY && t->mslot[i].key != key)
		i = (i + 1) & t->mmask;
	return i;
}

static const struct merge *
merge_find(const struct tokenizer *t, int32_t a, int32_t b)
{
	const struct merge *m = &t->mslot[merge_slot(t, (uint64_t)a << 32 | (uint32_t)b)];

	return m->key == MERGE_EMPTY ? NULL : m;
}

/* --- loading: the model ------------------------------------------------- */

/* Check an id field; on success *id holds it. */
static int
check_id(json_t *v, int32_t *id)
{
	json_int_t x;

	if (!json_is_integer(v) || (x = json_integer_value(v)) < 0 || x >= ID_LIMIT)
		return -1;
	*id = (int32_t)x;
	return 0;
}

/* Make room for `id` in t->tok; new entries are TOK_ABSENT. */
static void
tok_reserve(struct tokenizer *t, int32_t id)
{
	size_t cap = t->cap_tok;

	if ((size_t)id >= cap) {
		t->cap_tok = MAX(2 * cap, (size_t)id + 1);
		t->tok = xrealloc(t->tok, t->cap_tok * sizeof(*t->tok));
		memset(t->tok + cap, 0, (t->cap_tok - cap) * sizeof(*t->tok));
	}
	t->n_vocab = MAX(t->n_vocab, id + 1);
}

/* The decoded bytes of a vocab spelling: each character mapped back through
 * the byte map, or, as HF's ByteLevel decoder does, the spelling itself when
 * some character is not in the map. */
static void
add_decoded(struct tokenizer *t, struct tok *k, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, start = t->bytes.n;
	unsigned cp;
	unsigned char b;

	for (i = 0; i < n; i++) {
		/* jansson gives valid UTF-8; the map only uses 1- and 2-byte forms. */
		cp = u[i];
		if (cp >= 0xc0 && cp < 0xe0 && i + 1 < n)
			cp = (cp & 0x1f) << 6 | (u[++i] & 0x3f);
		if (cp >= ARRAY_LEN(t->char_byte) || t->char_byte[cp] < 0) {
			t->bytes.n = start;
			k->off = buf_add(&t->bytes, s, n);
			k->len = (uint32_t)n;
			return;
		}
		b = (unsigned char)t->char_byte[cp];
		buf_add(&t->bytes, &b, 1);
	}
	k->off = (uint32_t)start;
	k->len = (uint32_t)(t->bytes.n - start);
}

static int
load_vocab(struct tokenizer *t, json_t *vocab, const char *what, char **cause)
{
	const char *key;
	json_t *v;
	struct tok *k;
	int32_t id;
	size_t n;
	char s1[SHOW], s2[SHOW];

	t->vmask = pow2_at_least(2 * json_object_size(vocab)) - 1;
	t->vslot = xcalloc(t->vmask + 1, sizeof(*t->vslot));
	t->cap_tok = json_object_size(vocab) + 64;
	t->tok = xcalloc(t->cap_tok, sizeof(*t->tok));
	json_object_foreach(vocab, key, v)
	{
		if (check_id(v, &id) < 0)
			return cause_set(cause, "%s: model.vocab '%s' has no id in 0..%d", what,
					 str_show(s1, sizeof(s1), key), ID_LIMIT - 1);
		tok_reserve(t, id);
		k = &t->tok[id];
		if (k->kind != TOK_ABSENT)
			return cause_set(cause, "%s: model.vocab: id %d is both '%s' and '%s'",
					 what, (int)id, str_show(s1, sizeof(s1), key),
					 str_show(s2, sizeof(s2), t->names.p + k->name_off));
		n = strlen(key);
		k->kind = TOK_REGULAR;
		k->name_off = buf_add(&t->names, key, n + 1); /* NUL kept for messages */
		k->name_len = (uint32_t)n;
		add_decoded(t, k, key, n);
		vocab_insert(t, id);
	}
	return 0;
}

/* The two halves of merge i, "a b" or ["a", "b"]. */
static int
merge_parts(json_t *m, const char **a, size_t *a_len, const char **b, size_t *b_len)
{
	const char *s, *sp;

	if (json_is_string(m)) {
		s = json_string_value(m);
		if ((sp = strchr(s, ' ')) == NULL)
			return -1;
		*a = s;
		*a_len = (size_t)(sp - s);
		*b = sp + 1;
		*b_len = strlen(sp + 1);
		return 0;
	}
	if (!json_is_array(m) || json_array_size(m) != 2 || !json_is_string(json_array_get(m, 0)) ||
	    !json_is_string(json_array_get(m, 1)))
		return -1;
	*a = json_string_value(json_array_get(m, 0));
	*a_len = json_string_length(json_array_get(m, 0));
	*b = json_string_value(json_array_get(m, 1));
	*b_len = json_string_length(json_array_get(m, 1));
	return 0;
}

/* Merges are resolved in batches: hash all three spellings of each merge
 * and prefetch their slots first, then look them up, so that the cache
 * misses of one batch overlap instead of following each other (a third
 * less load time). */
struct merge_job {
	size_t off[3], len[3]; /* a, b and a + b in the batch buffer */
	uint64_t h[3];
};

/* Phase one for merge m: copy its halves and their concatenation to tmp,
 * hash them and prefetch their slots. */
static int
merge_prepare(const struct tokenizer *t, json_t *m, struct buf *tmp, struct merge_job *j)
{
	const char *a, *b;
	size_t a_len, b_len;
	int k;

	if (merge_parts(m, &a, &a_len, &b, &b_len) < 0)
		return -1;
	j->off[0] = j->off[2] = buf_add(tmp, a, a_len);
	j->off[1] = buf_add(tmp, b, b_len);
	j->len[0] = a_len;
	j->len[1] = b_len;
	j->len[2] = a_len + b_len;
	for (k = 0; k < 3; k++) {
		j->h[k] = hash_bytes(tmp->p + j->off[k], j->len[k]);
#if defined(__GNUC__)
		__builtin_prefetch(&t->vslot[j->h[k] & t->vmask]);
#endif
	}
	return 0;
}

/* Phase two: the ids; a merge naming a token outside the vocabulary (either
 * half or their concatenation) is an error, as in HF. */
static int
merge_resolve(const struct tokenizer *t, const struct buf *tmp, const struct merge_job *j, size_t i,
	      int32_t ids[3], const char *what, char **cause)
{
	char s[SHOW], name[SHOW];
	int k;

	for (k = 0; k < 3; k++) {
		ids[k] = vocab_find_h(t, tmp->p + j->off[k], j->len[k], j->h[k]);
		if (ids[k] >= 0)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)MIN(j->len[k], sizeof(name) - 1),
			 tmp->p + j->off[k]);
		return cause_set(cause, "%s: model.merges[%zu] references unknown token '%s'", what,
				 i, str_show(s, sizeof(s), name));
	}
	return 0;
}

static void
merge_add(struct tokenizer *t, const int32_t ids[3], size_t rank)
{
	uint64_t key = (uint64_t)ids[0] << 32 | (uint32_t)ids[1];
	struct merge *m = &t->mslot[merge_slot(t, key)];

	/* A repeated pair keeps its last rank, as HF's HashMap collect does. */
	m->key = key;
	m->rank = (uint32_t)rank;
	m->new_id = ids[2];
}

static int
load_merge_batch(struct tokenizer *t, json_t *merges, size_t from, struct buf *tmp,
		 const char *what, char **cause)
{
	struct merge_job jobs[MERGE_BATCH];
	size_t n = MIN(MERGE_BATCH, json_array_size(merges) - from), i;
	int32_t ids[3];

	tmp->n = 0;
	for (i = 0; i < n; i++)
		if (merge_prepare(t, json_array_get(merges, from + i), tmp, &jobs[i]) < 0)
			return cause_set(cause,
					 "%s: model.merges[%zu] is neither \"a b\" nor "
					 "[\"a\", \"b\"]",
					 what, from + i);
	for (i = 0; i < n; i++) {
		if (merge_resolve(t, tmp, &jobs[i], from + i, ids, what, cause) < 0)
			return -1;
		merge_add(t, ids, from + i);
	}
	return 0;
}

static int
load_merges(struct tokenizer *t, json_t *merges, const char *what, char **cause)
{
	struct buf tmp = { NULL, 0, 0 };
	size_t i;
	int rc = 0;

	buf_add(&tmp, "", 1); /* never NULL, even for empty spellings */
	t->mmask = pow2_at_least(2 * json_array_size(merges)) - 1;
	for (t->mbits = 0; ((size_t)1 << t->mbits) <= t->mmask; t->mbits++)
		;
	t->mslot = xmalloc((t->mmask + 1) * sizeof(*t->mslot));
	for (i = 0; i <= t->mmask; i++)
		t->mslot[i].key = MERGE_EMPTY;
	for (i = 0; i < json_array_size(merges) && rc == 0; i += MERGE_BATCH)
		rc = load_merge_batch(t, merges, i, &tmp, what, cause);
	free(tmp.p);
	return rc;
}

/* dropout, byte_fallback and subword affixes change results; refuse them. */
static int
check_model_options(struct tokenizer *t, json_t *model, const char *what, char **cause)
{
	json_t *v;
	bool byte_fallback;

	if ((v = get(model, "dropout")) != NULL &&
	    !(json_is_number(v) && json_number_value(v) == 0))
		return cause_set(cause, "%s: model.dropout is not supported", what);
	if (get_flag(model, "byte_fallback", false, &byte_fallback) < 0 || byte_fallback)
		return cause_set(cause, "%s: model.byte_fallback is not supported", what);
	if (((v = get(model, "continuing_subword_prefix")) != NULL &&
	     !(json_is_string(v) && json_string_length(v) == 0)) ||
	    ((v = get(model, "end_of_word_suffix")) != NULL &&
	     !(json_is_string(v) && json_string_length(v) == 0)))
		return cause_set(cause, "%s: model subword prefixes/suffixes are not supported",
				 what);
	if (get_flag(model, "fuse_unk", false, &t->fuse_unk) < 0 ||
	    get_flag(model, "ignore_merges", false, &t->ignore_merges) < 0)
		return cause_set(cause, "%s: model.fuse_unk/ignore_merges must be true or false",
				 what);
	return 0;
}

static int
check_model(json_t *model, const char *what, char **cause)
{
	char s[SHOW];

	if (!json_is_object(model))
		return cause_set(cause, "%s: model missing or not an object", what);
	if (!json_is_string(get(model, "type")))
		return cause_set(cause, "%s: model.type missing", what);
	if (strcmp(type_of(model), "BPE") != 0)
		return cause_set(cause, "%s: model.type '%s' is not supported", what,
				 str_show(s, sizeof(s), type_of(model)));
	if (!json_is_object(get(model, "vocab")))
		return cause_set(cause, "%s: model.vocab missing or not an object", what);
	if (!json_is_array(get(model, "merges")))
		return cause_set(cause, "%s: model.merges missing or not a list", what);
	return 0;
}

static int
load_unk(struct tokenizer *t, json_t *model, const char *what, char **cause)
{
	json_t *v = get(model, "unk_token");
	char s[SHOW];

	t->unk_id = -1;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return cause_set(cause, "%s: model.unk_token must be a string", what);
	t->unk_id = vocab_find(t, json_string_value(v), json_string_length(v));
	if (t->unk_id < 0)
		return cause_set(cause, "%s: model.unk_token '%s' is not in the vocabulary", what,
				 str_show(s, sizeof(s), json_string_value(v)));
	return 0;
}

/* --- loading: added tokens ---------------------------------------------- */

/* By first byte, then longest first, so the first hit at a position is the
 * longest; then by id, to be deterministic. */
static int
added_cmp(const void *pa, const void *pb)
{
	const struct added *a = pa, *b = pb;

	if (a->first != b->first)
		return a->first < b->first ? -1 : 1;
	if (a->len != b->len)
		return a->len > b->len ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static int
load_added_one(struct tokenizer *t, json_t *v, size_t i, const char *what, char **cause)
{
	json_t *c = json_is_object(v) ? get(v, "content") : NULL;
	struct added *a = &t->added[t->n_added];
	struct tok *k;
	bool flag, special;
	char s[SHOW];

	if (!json_is_string(c) || json_string_length(c) == 0)
		return cause_set(cause, "%s: added_tokens[%zu] has no content", what, i);
	if (get_flag(v, "special", false, &special) < 0)
		return cause_set(cause, "%s: added_tokens[%zu].special must be true or false", what,
				 i);
	if ((get_flag(v, "lstrip", false, &flag) < 0 || flag) ||
	    (get_flag(v, "rstrip", false, &flag) < 0 || flag) ||
	    (get_flag(v, "single_word", false, &flag) < 0 || flag))
		return cause_set(cause,
				 "%s: added token '%s': lstrip, rstrip and single_word are "
				 "not supported",
				 what, str_show(s, sizeof(s), json_string_value(c)));
	if (check_id(get(v, "id"), &a->id) < 0)
		return cause_set(cause, "%s: added_tokens[%zu] has no id in 0..%d", what, i,
				 ID_LIMIT - 1);
	tok_reserve(t, a->id);
	k = &t->tok[a->id];
	if (k->kind == TOK_ADDED)
		return cause_set(cause, "%s: added_tokens: id %d appears twice", what, (int)a->id);
	a->len = (uint32_t)json_string_length(c);
	a->off = buf_add(&t->bytes, json_string_value(c), a->len);
	a->first = (unsigned char)json_string_value(c)[0];
	/* The content, not the vocab spelling, is what HF decodes an added id to. */
	k->kind = TOK_ADDED;
	k->off = a->off;
	k->len = a->len;
	k->special = special;
	t->n_added++;
	return 0;
}

static int
load_added(struct tokenizer *t, json_t *list, const char *what, char **cause)
{
	json_t *v;
	size_t i, j;

	if (json_array_size(list) == 0)
		return 0;
	t->added = xcalloc(json_array_size(list), sizeof(*t->added));
	json_array_foreach(list, i, v)
	{
		if (load_added_one(t, v, i, what, cause) < 0)
			return -1;
	}
	qsort(t->added, t->n_added, sizeof(*t->added), added_cmp);
	for (i = 0, j = 0; i < 256; i++) {
		t->first[i] = (uint32_t)j;
		while (j < t->n_added && t->added[j].first == i)
			j++;
	}
	t->first[256] = (uint32_t)j;
	return 0;
}

/* --- loading: normalizer, pre-tokenizer, decoder ------------------------ */

static int
load_normalizer(struct tokenizer *t, json_t *n, int depth, const char *what, char **cause)
{
	json_t *list, *v;
	size_t i;
	char s[SHOW];

	if (n == NULL)
		return 0;
	if (strcmp(type_of(n), "NFC") == 0) {
		t->nfc = true;
		return 0;
	}
	if (strcmp(type_of(n), "Sequence") != 0 || depth > 4 ||
	    !json_is_array(list = get(n, "normalizers")))
		return cause_set(cause, "%s: normalizer type '%s' is not supported", what,
				 str_show(s, sizeof(s), type_of(n)));
	json_array_foreach(list, i, v)
	{
		if (load_normalizer(t, v, depth + 1, what, cause) < 0)
			return -1;
	}
	return 0;
}

/* Copy the escape (or, in a class, the POSIX class) at re[i] unchanged;
 * returns its length.  \Q...\E quotes everything up to \E. */
static size_t
copy_escape(struct buf *b, const char *re, size_t n, size_t i)
{
	const char *close = re[i] == '[' ? ":]" : re[i + 1] == 'Q' ? "\\E" : NULL;
	const char *end = close == NULL ? NULL : memmem(re + i + 2, n - i - 2, close, 2);
	size_t k = close == NULL ? 2 : end == NULL ? n - i : (size_t)(end - re) + 2 - i;

	buf_add(b, re + i, k);
	return k;
}

/*
 * Rewrite \s and \S (outside classes) as Unicode White_Space, which is what
 * Oniguruma, the engine behind HF's regexes, means by \s.  PCRE2's \s also
 * matches U+180E, which Unicode dropped from White_Space in 6.3, and would cut
 * "x\u180e'sy" as x|\u180e|'s|y instead of x|\u180e'|sy.  \S inside a class has
 * no such spelling and is left alone.  Only [, ], \ and [: :] are structural
 * here; everything else is copied.
 */
static void
onig_spaces(struct buf *b, const char *re, size_t n)
{
	static const char ws[] = "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}"
				 "\\x{2029}\\x{202f}\\x{205f}\\x{3000}";
	bool in_class = false;
	size_t i = 0;

	while (i < n) {
		if (re[i] == '\\' && i + 1 < n && re[i + 1] == 's') {
			buf_add(b, "[", in_class ? 0 : 1);
			buf_add(b, ws, sizeof(ws) - 1);
			buf_add(b, "]", in_class ? 0 : 1);
			i += 2;
		} else if (re[i] == '\\' && i + 1 < n && re[i + 1] == 'S' && !in_class) {
			buf_add(b, "[^", 2);
			buf_add(b, ws, sizeof(ws) - 1);
			buf_add(b, "]", 1);
			i += 2;
		} else if ((re[i] == '\\' && i + 1 < n) ||
			   (in_class && re[i] == '[' && i + 1 < n && re[i + 1] == ':')) {
			i += copy_escape(b, re, n, i);
		} else if (!in_class && re[i] == '[') {
			/* A ']' right after '[' or '[^' is a literal. */
			in_class = true;
			buf_add(b, re + i++, 1);
			if (i < n && re[i] == '^')
				buf_add(b, re + i++, 1);
			if (i < n && re[i] == ']')
				buf_add(b, re + i++, 1);
		} else {
			in_class = in_class && re[i] != ']';
			buf_add(b, re + i++, 1);
		}
	}
}

static pcre2_code *
compile(const char *re, size_t len, uint32_t opts, const char *what, char **cause)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE off;
	pcre2_code *code;
	int err;

	code = pcre2_compile((PCRE2_SPTR)re, len, PCRE2_UTF | PCRE2_UCP | opts, &err, &off, NULL);
	if (code == NULL) {
		pcre2_get_error_message(err, msg, sizeof(msg));
		cause_set(cause, "%s: pre_tokenizer regex: %s at offset %zu", what,
			  (const char *)msg, (size_t)off);
		return NULL;
	}
	/* Without JIT (not built in, or no executable memory) PCRE2's interpreter
	 * gives the same matches, only slower. */
	pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
	return code;
}

/*
 * The pattern is compiled as written first, so that errors point into the
 * file's text, then with Oniguruma's \s.  The explicit class costs nothing
 * measurable under JIT.
 */
static int
add_stage(struct tokenizer *t, const char *re, size_t len, uint32_t opts, const char *what,
	  char **cause)
{
	struct buf b = { NULL, 0, 0 };
	pcre2_code *code;

	if (t->n_stages == MAX_STAGES)
		return cause_set(cause, "%s: pre_tokenizer has more than %d splits", what,
				 MAX_STAGES);
	if ((code = compile(re, len, opts, what, cause)) == NULL)
		return -1;
	if ((opts & PCRE2_LITERAL) == 0) {
		pcre2_code_free(code);
		onig_spaces(&b, re, len);
		code = compile(b.p != NULL ? b.p : "", b.n, opts, what, cause);
		free(b.p);
		if (code == NULL)
			return -1;
	}
	t->stage[t->n_stages++] = code;
	return 0;
}

/* Split with behavior Isolated: matches and the gaps between them both
 * become pieces. */
static int
load_split(struct tokenizer *t, json_t *p, const char *what, char **cause)
{
	json_t *pat = get(p, "pattern"), *re, *beh = get(p, "behavior");
	bool invert;
	char s[SHOW];

	if (!json_is_string(beh) || strcmp(json_string_value(beh), "Isolated") != 0)
		return cause_set(
			cause, "%s: pre_tokenizer Split behavior '%s' is not supported", what,
			json_is_string(beh) ? str_show(s, sizeof(s), json_string_value(beh))
					    : "(missing)");
	if (get_flag(p, "invert", false, &invert) < 0 || invert)
		return cause_set(cause, "%s: pre_tokenizer Split invert is not supported", what);
	if (json_is_string(re = get(pat, "Regex")))
		return add_stage(t, json_string_value(re), json_string_length(re), 0, what, cause);
	if (json_is_string(re = get(pat, "String")))
		return add_stage(t, json_string_value(re), json_string_length(re), PCRE2_LITERAL,
				 what, cause);
	return cause_set(cause, "%s: pre_tokenizer Split has no Regex or String pattern", what);
}

static int
load_byte_level(struct tokenizer *t, json_t *p, const char *what, char **cause)
{
	bool prefix, use_regex;

	/* HF's defaults for absent fields are true. */
	if (get_flag(p, "add_prefix_space", true, &prefix) < 0 || prefix)
		return cause_set(cause,
				 "%s: pre_tokenizer ByteLevel add_prefix_space is not "
				 "supported",
				 what);
	if (get_flag(p, "use_regex", true, &use_regex) < 0)
		return cause_set(cause,
				 "%s: pre_tokenizer ByteLevel use_regex must be true or "
				 "false",
				 what);
	if (use_regex)
		return add_stage(t, GPT2_REGEX, strlen(GPT2_REGEX), 0, what, cause);
	return 0;
}

static int
load_pretok_one(struct tokenizer *t, json_t *p, bool *byte_level, const char *what, char **cause)
{
	char s[SHOW];

	if (*byte_level)
		return cause_set(cause, "%s: pre_tokenizer step after ByteLevel is not supported",
				 what);
	if (strcmp(type_of(p), "Split") == 0)
		return load_split(t, p, what, cause);
	if (strcmp(type_of(p), "ByteLevel") == 0) {
		*byte_level = true;
		return load_byte_level(t, p, what, cause);
	}
	return cause_set(cause, "%s: pre_tokenizer type '%s' is not supported", what,
			 str_show(s, sizeof(s), type_of(p)));
}

static int
load_pretok(struct tokenizer *t, json_t *p, const char *what, char **cause)
{
	json_t *list, *v;
	bool byte_level = false;
	size_t i;

	if (p == NULL)
		return cause_set(cause,
				 "%s: pre_tokenizer is null; only byte-level BPE is "
				 "supported",
				 what);
	if (strcmp(type_of(p), "Sequence") != 0) {
		if (load_pretok_one(t, p, &byte_level, what, cause) < 0)
			return -1;
	} else if (!json_is_array(list = get(p, "pretokenizers"))) {
		return cause_set(cause, "%s: pre_tokenizer Sequence has no pretokenizers list",
				 what);
	} else {
		json_array_foreach(list, i, v)
		{
			if (load_pretok_one(t, v, &byte_level, what, cause) < 0)
				return -1;
		}
	}
	if (!byte_level)
		return cause_set(cause,
				 "%s: pre_tokenizer has no ByteLevel step; only byte-level "
				 "BPE is supported",
				 what);
	return 0;
}

static int
check_decoder(json_t *d, const char *what, char **cause)
{
	char s[SHOW];

	if (d == NULL || strcmp(type_of(d), "ByteLevel") == 0)
		return 0;
	return cause_set(cause, "%s: decoder type '%s' is not supported", what,
			 str_show(s, sizeof(s), type_of(d)));
}

/* --- loading: putting it together --------------------------------------- */

/* tokenizer.json or tokenizer_config.json: at most JSON_MAX bytes, one JSON object. */
static json_t *
parse_json(const char *text, size_t len, const char *what, char **cause)
{
	if (len > JSON_MAX) {
		cause_set(cause, "%s: larger than %u bytes", what, JSON_MAX);
		return NULL;
	}
	return json_parse_object(text, len, what, SHOW, cause);
}

/* The one-byte tokens every word starts from, and the decode bound. */
static void
finish(struct tokenizer *t)
{
	char s[2];
	int i;

	for (i = 0; i < 256; i++)
		t->byte_id[i] = vocab_find(t, s, utf8_put2(s, t->byte_char[i]));
	for (i = 0; i < t->n_vocab; i++)
		t->max_len = MAX(t->max_len, t->tok[i].len);
}

static int
load_root(struct tokenizer *t, json_t *root, const char *what, char **cause)
{
	json_t *model = get(root, "model"), *added = get(root, "added_tokens");

	if (check_model(model, what, cause) < 0 || check_model_options(t, model, what, cause) < 0)
		return -1;
	if (added != NULL && !json_is_array(added))
		return cause_set(cause, "%s: added_tokens is not a list", what);
	if (load_vocab(t, get(model, "vocab"), what, cause) < 0 ||
	    load_merges(t, get(model, "merges"), what, cause) < 0 ||
	    load_unk(t, model, what, cause) < 0 || load_added(t, added, what, cause) < 0 ||
	    load_normalizer(t, get(root, "normalizer"), 0, what, cause) < 0 ||
	    load_pretok(t, get(root, "pre_tokenizer"), what, cause) < 0 ||
	    check_decoder(get(root, "decoder"), what, cause) < 0)
		return -1;
	finish(t);
	return 0;
}

struct tokenizer *
tokenizer_load_json(const char *json, size_t len, const char *what, char **cause)
{
	struct tokenizer *t;
	json_t *root;

	if ((root = parse_json(json, len, what, cause)) == NULL)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	byte_map_init(t);
	if (load_root(t, root, what, cause) < 0) {
		tokenizer_free(t);
		t = NULL;
	}
	json_decref(root);
	return t;
}

void
tokenizer_free(struct tokenizer *t)
{
	int i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n_stages; i++)
		pcre2_code_free(t->stage[i]);
	free(t->added);
	free(t->mslot);
	free(t->vslot);
	free(t->names.p);
	free(t->bytes.p);
	free(t->tok);
	free(t);
}

/* tokenizer_config.json's added_tokens_decoder {"151645": {"content":
 * "<|im_end|>", ...}} must name the same tokens as tokenizer.json. */
static int
check_config_tokens(const struct tokenizer *t, json_t *dec, const char *what, char **cause)
{
	const char *key;
	json_t *v, *c;
	char *end, s[SHOW];
	long id;

	if (dec == NULL)
		return 0;
	if (!json_is_object(dec))
		return cause_set(cause, "%s: added_tokens_decoder is not an object", what);
	json_object_foreach(dec, key, v)
	{
		id = strtol(key, &end, 10);
		c = get(v, "content");
		if (*key == '\0' || *end != '\0' || !json_is_string(c))
			return cause_set(cause, "%s: added_tokens_decoder '%s' is malformed", what,
					 str_show(s, sizeof(s), key));
		if (tokenizer_token_id(t, json_string_value(c)) != id)
			return cause_set(cause,
					 "%s: added_tokens_decoder %s '%s' disagrees with "
					 "tokenizer.json",
					 what, key, str_show(s, sizeof(s), json_string_value(c)));
	}
	return 0;
}

static int
check_config(const struct tokenizer *t, const char *dir, char **cause)
{
	char *path = xasprintf("%s/tokenizer_config.json", dir), *text = NULL;
	json_t *root = NULL;
	size_t len;
	int rc = -1;

	if (access(path, F_OK) != 0) {
		rc = 0;
		goto out;
	}
	if ((text = read_file_max(path, READ_MAX_CONFIG, &len, cause)) == NULL ||
	    (root = parse_json(text, len, path, cause)) == NULL)
		goto out;
	rc = check_config_tokens(t, get(root, "added_tokens_decoder"), path, cause);
out:
	json_decref(root);
	free(text);
	free(path);
	return rc;
}

struct tokenizer *
tokenizer_load(const char *dir, char **cause)
{
	char *path = xasprintf("%s/tokenizer.json", dir), *text;
	struct tokenizer *t = NULL;
	size_t len;

	if ((text = read_file(path, &len, cause)) != NULL)
		t = tokenizer_load_json(text, len, path, cause);
	free(text);
	free(path);
	if (t != NULL && check_config(t, dir, cause) < 0) {
		tokenizer_free(t);
		return NULL;
	}
	return t;
}

/* --- encoding ----------------------------------------------------------- */

/* One BPE symbol: a run of the word's bytes that is one token so far. */
struct sym {
	int32_t id;
	int32_t prev, next; /* neighbours in the word, -1 at the ends */
	uint32_t len;       /* bytes covered; 0 once merged into its left neighbour */
};

/* A possible merge of sym[pos] with its right neighbour. */
struct cand {
	uint32_t rank;
	int32_t pos;
	int32_t new_id;
};

/* A cached word: its bytes in enc.wkeys, its ids in enc.wids. */
struct wslot {
	uint64_t h;
	uint32_t key_off, key_len; /* key_len 0: free slot */
	uint32_t ids_off, n_ids;
};

/* The state of one tokenizer_encode call. */
struct enc {
	const struct tokenizer *t;
	int32_t *ids; /* [cap_ids] the output */
	size_t n_ids, cap_ids;
	pcre2_match_data *md;
	pcre2_match_context *mc;
	pcre2_jit_stack *js;
	struct sym *sym; /* [cap_sym] scratch for one word */
	size_t cap_sym;
	struct cand *heap; /* [cap_heap] min-heap on (rank, pos) */
	size_t n_heap, cap_heap;
	struct wslot *wslot; /* [wmask + 1] word cache */
	size_t wmask, n_words;
	struct buf wkeys;
	int32_t *wids; /* [cap_wids] ids of cached words */
	size_t n_wids, cap_wids;
	struct buf spell; /* byte-level spelling of a word, for ignore_merges */
	struct buf norm;  /* NFC of the current segment */
};

static void
push_id(struct enc *e, int32_t id)
{
	if (e->n_ids == e->cap_ids) {
		e->cap_ids = MAX(64, e->cap_ids * 2);
		e->ids = xrealloc(e->ids, e->cap_ids * sizeof(*e->ids));
	}
	e->ids[e->n_ids++] = id;
}

static bool
cand_less(const struct cand *a, const struct cand *b)
{
	return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

/* The heap was sized for the word, so pushing never reallocates. */
static void
heap_push(struct enc *e, struct cand c)
{
	size_t i = e->n_heap++, up;

	for (; i > 0 && cand_less(&c, &e->heap[up = (i - 1) / 2]); i = up)
		e->heap[i] = e->heap[up];
	e->heap[i] = c;
}

static struct cand
heap_pop(struct enc *e)
{
	struct cand top = e->heap[0], last = e->heap[--e->n_heap];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < e->n_heap) {
		if (c + 1 < e->n_heap && cand_less(&e->heap[c + 1], &e->heap[c]))
			c++;
		if (!cand_less(&e->heap[c], &last))
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	e->heap[i] = last;
	return top;
}

static void
try_pair(struct enc *e, int32_t pos)
{
	const struct sym *l = &e->sym[pos];
	const struct merge *m = merge_find(e->t, l->id, e->sym[l->next].id);
	struct cand c;

	if (m != NULL) {
		c.rank = m->rank;
		c.pos = pos;
		c.new_id = m->new_id;
		heap_push(e, c);
	}
}

static void
add_sym(struct enc *e, int32_t *n, int32_t id, uint32_t len)
{
	struct sym *s = &e->sym[*n];

	s->id = id;
	s->len = len;
	s->prev = *n - 1;
	s->next = -1;
	if (*n > 0)
		e->sym[*n - 1].next = *n;
	(*n)++;
}

/* The word's bytes as symbols.  A byte without a one-byte token becomes the
 * unknown token (runs of them fused when fuse_unk) or, with no unk_token, is
 * dropped: HF's merge_word does the same. */
static int32_t
word_symbols(struct enc *e, const unsigned char *w, size_t n)
{
	const struct tokenizer *t = e->t;
	int32_t ns = 0, id;
	size_t i;

	for (i = 0; i < n; i++) {
		id = t->byte_id[w[i]];
		if (id < 0 && t->unk_id < 0)
			continue;
		if (id < 0 && t->fuse_unk && ns > 0 && e->sym[ns - 1].id == t->unk_id &&
		    t->byte_id[w[i - 1]] < 0) {
			e->sym[ns - 1].len++;
			continue;
		}
		add_sym(e, &ns, id < 0 ? t->unk_id : id, 1);
	}
	return ns;
}

/* ignore_merges: a word that is a whole vocab entry is that one token. */
static int32_t
whole_word(struct enc *e, const unsigned char *w, size_t n)
{
	char s[2];
	size_t i;

	e->spell.n = 0;
	for (i = 0; i < n; i++)
		buf_add(&e->spell, s, utf8_put2(s, e->t->byte_char[w[i]]));
	return vocab_find(e->t, e->spell.p, e->spell.n);
}

static void
reserve_word(struct enc *e, size_t n)
{
	if (n > e->cap_sym) {
		e->cap_sym = MAX(n, 2 * e->cap_sym);
		e->sym = xrealloc(e->sym, e->cap_sym * sizeof(*e->sym));
	}
	/* n - 1 first pairs, then at most two new ones per merge. */
	if (3 * n > e->cap_heap) {
		e->cap_heap = MAX(3 * n, 2 * e->cap_heap);
		e->heap = xrealloc(e->heap, e->cap_heap * sizeof(*e->heap));
	}
}

/* HF's word.rs merge_all: always apply the lowest-ranked pair present,
 * leftmost first; heap entries made stale by earlier merges are skipped. */
static void
bpe_merge(struct enc *e, const unsigned char *w, size_t n)
{
	struct sym *l, *r;
	const struct merge *m;
	struct cand c;
	int32_t ns, i;

	if (e->t->ignore_merges && (i = whole_word(e, w, n)) >= 0) {
		push_id(e, i);
		return;
	}
	reserve_word(e, n);
	ns = word_symbols(e, w, n);
	e->n_heap = 0;
	for (i = 0; i + 1 < ns; i++)
		try_pair(e, i);
	while (e->n_heap > 0) {
		c = heap_pop(e);
		l = &e->sym[c.pos];
		if (l->len == 0 || l->next < 0)
			continue;
		r = &e->sym[l->next];
		m = merge_find(e->t, l->id, r->id);
		if (m == NULL || m->new_id != c.new_id)
			continue;
		l->id = c.new_id;
		l->len += r->len;
		r->len = 0;
		l->next = r->next;
		if (l->next >= 0)
			e->sym[l->next].prev = c.pos;
		if (l->prev >= 0)
			try_pair(e, l->prev);
		if (l->next >= 0)
			try_pair(e, c.pos);
	}
	for (i = ns > 0 ? 0 : -1; i >= 0; i = e->sym[i].next)
		push_id(e, e->sym[i].id);
}

static struct wslot *
cache_slot(struct enc *e, uint64_t h, const char *w, size_t n)
{
	size_t i = h & e->wmask;
	struct wslot *s;

	for (;; i = (i + 1) & e->wmask) {
		s = &e->wslot[i];
		if (s->key_len == 0 ||
		    (s->h == h && s->key_len == n && memcmp(e->wkeys.p + s->key_off, w, n) == 0))
			return s;
	}
}

static void
cache_grow(struct enc *e)
{
	struct wslot *old = e->wslot;
	size_t n_old = old == NULL ? 0 : e->wmask + 1, i, j;

	e->wmask = (n_old == 0 ? 1024 : 2 * n_old) - 1;
	e->wslot = xcalloc(e->wmask + 1, sizeof(*e->wslot));
	for (i = 0; i < n_old; i++) {
		if (old[i].key_len == 0)
			continue;
		for (j = old[i].h & e->wmask; e->wslot[j].key_len != 0; j = (j + 1) & e->wmask)
			;
		e->wslot[j] = old[i];
	}
	free(old);
}

static void
cache_put(struct enc *e, struct wslot *s, uint64_t h, const char *w, size_t n, size_t from)
{
	size_t k = e->n_ids - from;

	if (e->n_wids + k > e->cap_wids) {
		e->cap_wids = MAX(e->n_wids + k, 2 * e->cap_wids);
		e->wids = xrealloc(e->wids, e->cap_wids * sizeof(*e->wids));
	}
	if (k > 0) /* memcpy from NULL is undefined even for 0 bytes */
		memcpy(e->wids + e->n_wids, e->ids + from, k * sizeof(*e->wids));
	s->h = h;
	s->key_off = buf_add(&e->wkeys, w, n);
	s->key_len = (uint32_t)n;
	s->ids_off = (uint32_t)e->n_wids;
	s->n_ids = (uint32_t)k;
	e->n_wids += k;
	if (++e->n_words * 2 > e->wmask)
		cache_grow(e);
}

/* One pre-token: from the cache when seen before in this call. */
static void
bpe_word(struct enc *e, const char *w, size_t n)
{
	struct wslot *s;
	uint64_t h;
	size_t from = e->n_ids, i;

	if (n == 0)
		return;
	if (n > CACHE_WORD_MAX) {
		bpe_merge(e, (const unsigned char *)w, n);
		return;
	}
	if (e->wslot == NULL)
		cache_grow(e);
	h = hash_bytes(w, n);
	s = cache_slot(e, h, w, n);
	if (s->key_len != 0) {
		for (i = 0; i < s->n_ids; i++)
			push_id(e, e->wids[s->ids_off + i]);
		return;
	}
	bpe_merge(e, (const unsigned char *)w, n);
	cache_put(e, s, h, w, n, from);
}

static int
regex_error(int rc, char **cause)
{
	PCRE2_UCHAR msg[256];

	pcre2_get_error_message(rc, msg, sizeof(msg));
	return cause_set(cause, "tokenizer: pre-tokenizer regex failed: %s", (const char *)msg);
}

/* Split s by regex stage k (matches and the gaps between them are pieces, as
 * with HF's Isolated) and hand each piece to stage k + 1; after the last
 * stage a piece is a word. */
static int
split_stage(struct enc *e, int k, const char *s, size_t n, char **cause)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
	size_t pos = 0, last = 0, ms, me;
	int rc;

	if (k == e->t->n_stages) {
		bpe_word(e, s, n);
		return 0;
	}
	while (pos < n) {
		rc = pcre2_match(e->t->stage[k], (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, e->md,
				 e->mc);
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0)
			return regex_error(rc, cause);
		ms = ov[0];
		me = ov[1];
		if (ms < last || me < ms || me > n)
			return cause_set(cause, "tokenizer: pre-tokenizer regex matched backwards");
		if ((ms > last && split_stage(e, k + 1, s + last, ms - last, cause) < 0) ||
		    (me > ms && split_stage(e, k + 1, s + ms, me - ms, cause) < 0))
			return -1;
		last = me;
		/* An empty match: step over one character, like onig's find_iter. */
		for (pos = me + (me == ms); pos < n && ((unsigned char)s[pos] & 0xc0) == 0x80;
		     pos++)
			;
	}
	if (last < n)
		return split_stage(e, k + 1, s + last, n - last, cause);
	return 0;
}

/* Does any byte of s[from..n) start or continue a code point >= U+0300?
 * Returns its index, or n. */
static size_t
find_high(const char *s, size_t n, size_t from)
{
	while (from < n && (unsigned char)s[from] < 0xcc)
		from++;
	return from;
}

/* Append NFC(s[0..n)) to b. */
static int
nfc_append(struct buf *b, const char *s, size_t n, char **cause)
{
	utf8proc_uint8_t *norm;
	utf8proc_ssize_t r;

	r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &norm,
			 UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (r < 0)
		return cause_set(cause, "tokenizer: NFC failed: %s", utf8proc_errmsg(r));
	buf_add(b, norm, (size_t)r);
	free(norm);
	return 0;
}

/*
 * NFC, then the pre-tokenizer.  Code points below U+0300 (no byte >= 0xCC)
 * are NFC already and never compose with each other, and an ASCII character
 * never composes with what precedes it, so only the runs from the last ASCII
 * character before a code point >= U+0300 to the next ASCII character go
 * through utf8proc; text without such code points is used as it is.
 */
static int
segment(struct enc *e, const char *s, size_t n, char **cause)
{
	size_t i = find_high(s, n, 0), lo, hi, done = 0;

	if (!e->t->nfc || i == n)
		return split_stage(e, 0, s, n, cause);
	e->norm.n = 0;
	while (i < n) {
		for (lo = i; lo > done && (unsigned char)s[lo] >= 0x80; lo--)
			;
		for (hi = i; hi < n && (unsigned char)s[hi] >= 0x80; hi++)
			;
		buf_add(&e->norm, s + done, lo - done);
		if (nfc_append(&e->norm, s + lo, hi - lo, cause) < 0)
			return -1;
		done = hi;
		i = find_high(s, n, hi);
	}
	buf_add(&e->norm, s + done, n - done);
	return split_stage(e, 0, e->norm.p, e->norm.n, cause);
}

/* The longest added token at s (n bytes left), or NULL. */
static const struct added *
added_at(const struct tokenizer *t, const char *s, size_t n)
{
	const struct added *a;
	uint32_t i, b = (unsigned char)*s;

	for (i = t->first[b]; i < t->first[b + 1]; i++) {
		a = &t->added[i];
		if (a->len <= n && memcmp(t->bytes.p + a->off, s, a->len) == 0)
			return a;
	}
	return NULL;
}

/* Cut the added tokens out of the raw text, leftmost first, and encode the
 * segments between them. */
static int
split_added(struct enc *e, const char *s, size_t n, char **cause)
{
	const struct tokenizer *t = e->t;
	const struct added *a;
	size_t i = 0, seg = 0;

	while (i < n) {
		if (t->first[(unsigned char)s[i]] == t->first[(unsigned char)s[i] + 1] ||
		    (a = added_at(t, s + i, n - i)) == NULL) {
			i++;
			continue;
		}
		if (i > seg && segment(e, s + seg, i - seg, cause) < 0)
			return -1;
		push_id(e, a->id);
		i += a->len;
		seg = i;
	}
	if (n > seg)
		return segment(e, s + seg, n - seg, cause);
	return 0;
}

static void
enc_release(struct enc *e)
{
	pcre2_match_data_free(e->md);
	pcre2_match_context_free(e->mc);
	pcre2_jit_stack_free(e->js);
	free(e->sym);
	free(e->heap);
	free(e->wslot);
	free(e->wkeys.p);
	free(e->wids);
	free(e->spell.p);
	free(e->norm.p);
}

int
tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int32_t **ids,
		 size_t *n_ids, char **cause)
{
	struct enc e;
	char *clean = NULL;
	int rc;

	*ids = NULL;
	*n_ids = 0;
	if (len > TEXT_MAX)
		return cause_set(cause, "tokenizer: text of %zu bytes is too long", len);
	if (len == 0)
		return 0;
	memset(&e, 0, sizeof(e));
	e.t = t;
	if (!utf8_valid((const unsigned char *)text, len))
		text = clean = utf8_sanitize((const unsigned char *)text, len, &len);
	e.md = pcre2_match_data_create(1, NULL);
	e.mc = pcre2_match_context_create(NULL);
	if (e.md == NULL || e.mc == NULL)
		fatal("out of memory for PCRE2 match data");
	/* NULL when JIT is unavailable; matching then uses the interpreter. */
	if ((e.js = pcre2_jit_stack_create(32 * 1024, JIT_STACK_MAX, NULL)) != NULL)
		pcre2_jit_stack_assign(e.mc, NULL, e.js);
	rc = split_added(&e, text, len, cause);
	if (rc == 0) {
		*ids = e.ids;
		*n_ids = e.n_ids;
	} else {
		free(e.ids);
	}
	enc_release(&e);
	free(clean);
	return rc;
}

/* --- lookups ------------------------------------------------------------ */

int
tokenizer_token_id(const struct tokenizer *t, const char *content)
{
	size_t n = strlen(content), i;

	for (i = 0; i < t->n_added; i++)
		if (t->added[i].len == n && memcmp(t->bytes.p + t->added[i].off, content, n) == 0)
			return t->added[i].id;
	return vocab_find(t, content, n);
}

int
tokenizer_n_vocab(const struct tokenizer *t)
{
	return t->n_vocab;
}

bool
tokenizer_is_special(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && t->tok[id].special;
}

/* --- decoding ----------------------------------------------------------- */

/* Output that stops at the first piece that does not fit, so a short buffer
 * loses a tail but never holds half a character. */
struct out {
	char *p;
	size_t cap, n;
	bool full;
};

static void
put(struct out *o, const void *p, size_t n)
{
	if (o->full || n > o->cap - o->n) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->n, p, n);
	o->n += n;
}

void
tok_decoder_init(struct tok_decoder *d)
{
	memset(d, 0, sizeof(*d));
}

size_t
tokenizer_decode_max(const struct tokenizer *t)
{
	return 3 * (3 + MAX(t->max_len, sizeof(replacement)));
}

/* Feed bytes to the held prefix until it completes or breaks; returns the
 * bytes of s consumed. */
static size_t
feed_pending(struct tok_decoder *d, const unsigned char *s, size_t n, struct out *o)
{
	size_t i = 0;
	int k;

	while (d->n_pend > 0 && i < n) {
		d->pend[d->n_pend++] = s[i];
		k = utf8_scan(d->pend, (size_t)d->n_pend);
		if (k == 0) {
			i++;
		} else if (k > 0) {
			put(o, d->pend, (size_t)k);
			d->n_pend = 0;
			i++;
		} else {
			/* The new byte broke the sequence: the held prefix is one
			 * maximal subpart and the byte starts afresh. */
			put(o, replacement, 3);
			d->n_pend = 0;
		}
	}
	return i;
}

static void
decode_bytes(struct tok_decoder *d, const unsigned char *s, size_t n, struct out *o)
{
	size_t i = feed_pending(d, s, n, o), j;
	int k;

	while (i < n) {
		for (j = i; j < n && s[j] < 0x80; j++)
			;
		if (j > i) {
			put(o, s + i, j - i);
			i = j;
			continue;
		}
		k = utf8_scan(s + i, n - i);
		if (k > 0) {
			put(o, s + i, (size_t)k);
			i += (size_t)k;
		} else if (k < 0) {
			put(o, replacement, 3);
			i += (size_t)-k;
		} else {
			memcpy(d->pend, s + i, n - i);
			d->n_pend = (int)(n - i);
			i = n;
		}
	}
}

size_t
tokenizer_decode(const struct tokenizer *t, struct tok_decoder *d, int32_t id, char *out,
		 size_t cap)
{
	struct out o = { out, cap, 0, false };
	const struct tok *k;

	if (id < 0 || id >= t->n_vocab || t->tok[id].kind == TOK_ABSENT) {
		decode_bytes(d, (const unsigned char *)replacement, 3, &o);
	} else {
		k = &t->tok[id];
		decode_bytes(d, (const unsigned char *)t->bytes.p + k->off, k->len, &o);
	}
	return o.n;
}

size_t
tok_decoder_flush(struct tok_decoder *d, char *out, size_t cap)
{
	struct out o = { out, cap, 0, false };

	if (d->n_pend > 0)
		put(&o, replacement, 3);
	d->n_pend = 0;
	return o.n;
}

char *
tokenizer_decode_all(const struct tokenizer *t, const int32_t *ids, size_t n)
{
	struct tok_decoder d;
	size_t max = tokenizer_decode_max(t), len = 0, cap = max + 1, i;
	char *s = xmalloc(cap);

	tok_decoder_init(&d);
	for (i = 0; i < n; i++) {
		if (cap - len < max + 1) {
			cap = 2 * cap + max;
			s = xrealloc(s, cap);
		}
		len += tokenizer_decode(t, &d, ids[i], s + len, cap - len);
	}
	len += tok_decoder_flush(&d, s + len, cap - len);
	s[len] = '\0';
	return s;
}
