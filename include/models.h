/*
 * models.h - the model directories qnext can find, for the chat's /model:
 * each with the bytes of its weight files and the plan's verdict on this
 * machine (will it fit in RAM, how fast will it decode; plan.h).
 *
 * Main or engine thread: it opens each model (its headers, no weights
 * read) and probes the machine, up to about a second per model for the
 * full-size checkpoint, which is why the chat asks the engine thread for
 * it (MSG_MODELS) rather than freeze the screen.  struct model_found is in
 * chat-types.h, so that the list can travel in a message.  Ownership: the
 * array and its strings are malloc'd for the caller (models_free).
 */
#ifndef QNEXT_MODELS_H
#define QNEXT_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "chat-types.h"

/*
 * The models found, in order: the caller's known directories (the one
 * loaded, the settings file's), $QNEXT_MODEL, the Hugging Face cache's
 * snapshot (paths.h), the bundled tiny model (DATADIR/tiny, ./share/tiny).
 * A directory without a config.json is left out and one reached twice
 * (realpath) is listed once.  known may hold NULLs.  *n gets the count.
 */
struct model_found *models_find(const char *const *known, size_t n_known, size_t *n);

/* Free v[0..n).  Accepts NULL. */
void models_free(struct model_found *v, size_t n);

#endif
