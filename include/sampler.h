/*
 * sampler.h - choose the next token from logits: greedy, temperature,
 * top-k, top-p, min-p, presence and repetition penalties, seeded RNG.
 *
 * Order (Hugging Face's): penalties, temperature, top-k, softmax, top-p,
 * min-p, draw.  Temperature <= 0 or top_k == 1 means greedy.  Defaults come
 * from the model's generation_config.json, else docs/model-format.md "Generation defaults" (Qwen's
 * recommendation for the Thinking model).
 *
 * Thread affinity: a sampler belongs to one thread (the engine thread).
 */
#ifndef QNEXT_SAMPLER_H
#define QNEXT_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "chat-types.h" /* struct sampler_params, SAMPLER_SEED_* */

#define SAMPLER_MAX_EOS 8

/* Generation settings read from a model directory. */
struct gen_config {
	struct sampler_params p;
	int n_eos;
	int32_t eos[SAMPLER_MAX_EOS]; /* stop tokens */
};

/* docs/model-format.md "Generation defaults": 0.6 / top-k 20 / top-p 0.95 / min-p 0,
 * no penalties, seed 0. */
void sampler_params_default(struct sampler_params *p);

/* seed itself, or for SAMPLER_SEED_RANDOM a random one in [0, SAMPLER_SEED_MAX]. */
uint64_t sampler_seed_pick(uint64_t seed);

/* Copy the fields named in `fields` (enum sampler_field) from src to dst. */
void sampler_fields_copy(struct sampler_params *dst, const struct sampler_params *src,
			 unsigned fields);

/* p as a JSON object (temperature, top_k, ..., seed), malloc'd: saved with an answer. */
char *sampler_params_json(const struct sampler_params *p);

/*
 * Defaults, then dir/generation_config.json when it exists (temperature,
 * top_k, top_p, min_p, repetition_penalty, do_sample false = greedy,
 * eos_token_id int or list).  eos falls back to {151645, 151643} when the
 * file names none.  Returns 0, or -1 with *cause for a malformed file.
 */
int gen_config_load(struct gen_config *g, const char *dir, char **cause);

struct sampler;

/* n_vocab: logits per row; n_valid: ids >= n_valid are never chosen (padding rows). */
struct sampler *sampler_new(const struct sampler_params *p, int n_vocab, int n_valid);
void sampler_free(struct sampler *s); /* accepts NULL */

/* Forget the token history the penalties use and re-seed. */
void sampler_reset(struct sampler *s);

/* Record a token (prompt or generated) for the penalties. */
void sampler_accept(struct sampler *s, int32_t id);

/* Pick the next token; logits [n_vocab] are modified. */
int32_t sampler_sample(struct sampler *s, float *logits);

#endif
