/*
 * serve.h - `qnext serve`: the model behind an OpenAI-compatible HTTP
 * endpoint (POST /v1/chat/completions, streamed or whole; GET /v1/models;
 * GET /health), for editors, Open WebUI, scripts using the OpenAI client
 * libraries, and `qnext --remote`.  docs/serve.md says what it accepts.
 *
 * Main thread only (the entry point); the HTTP library's connection
 * threads and the engine thread are started inside.
 */
#ifndef QNEXT_SERVE_H
#define QNEXT_SERVE_H

/* Entry point for `qnext serve ARGS`; returns the process exit status. */
int serve_main(int argc, char **argv);

#endif
