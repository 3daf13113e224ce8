/*
 * util.h - small helpers every module uses: checked allocation, error causes,
 * half/bfloat16 conversion and a monotonic clock.
 *
 * Any thread.  The x-allocators abort with a message on out-of-memory (small,
 * program-sized allocations only); big user-sized buffers are allocated with
 * plain malloc and reported by the caller.
 */
#ifndef QNEXT_UTIL_H
#define QNEXT_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)    ((a) < (b) ? (a) : (b))
#define MAX(a, b)    ((a) > (b) ? (a) : (b))
/* A macro's value as a string literal: STR(CTX_N_CTX_DEFAULT) is "40960". */
#define STR_(x)      #x
#define STR(x)       STR_(x)

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* Abort-on-OOM allocators.  Size 0 is a bug and aborts too. */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
/* malloc'd printf; caller frees. */
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/*
 * Set *cause (when cause != NULL) to a malloc'd message and return -1, so a
 * failing function can write `return cause_set(cause, "...", ...);`.  An
 * existing message in *cause is freed first.
 */
int cause_set(char **cause, const char *fmt, ...) PRINTF_LIKE(2, 3);

/*
 * Put len bytes at path whole or not at all: written to a temporary file
 * beside it (mode bits `mode`), fsync'd, then renamed over path, so neither
 * a reader nor a crash ever sees half a file.  Returns 0, or -1 with *cause
 * "cannot write PATH: reason" and errno as the failing call left it (callers
 * tell a read-only directory, EACCES/EROFS/EPERM, from other failures).
 */
int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode, char **cause);

/* Print "qnext: fmt" plus newline to stderr and abort (impossible states only). */
void fatal(const char *fmt, ...) PRINTF_LIKE(1, 2) __attribute__((noreturn));
/*
 * Run fn first thing in fatal(), before the message is printed: the
 * full-screen UI puts the terminal back so the message is readable.  fn may
 * run on any thread and must be async-signal-safe.
 */
void fatal_set_hook(void (*fn)(void));

/* IEEE half and bfloat16 to float. */
float fp16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f); /* round to nearest even */
uint16_t f32_to_fp16(float f); /* round to nearest even */

/*
 * Copy text from an untrusted file into buf[cap] for a one-line message:
 * control bytes become '?', and text longer than cap - 4 bytes is cut at a
 * UTF-8 boundary and ends in "...".  cap must be at least 4.  Returns buf.
 */
const char *str_show(char *buf, size_t cap, const char *s);

/*
 * Write s[0..n) to f; when f is a terminal, control characters other than
 * newline and tab are shown in caret notation (ESC as ^[, DEL as ^?) and
 * C1 controls (U+0080-U+009F) as '?', so text from a model or a saved chat
 * cannot move the cursor, retitle the window or recolour the terminal.
 * s holds whole UTF-8 characters (what the tokenizer's decoder gives).
 */
void term_write(FILE *f, const char *s, size_t n);

/*
 * Block every signal in the calling thread except the synchronous faults
 * (SIGBUS, SIGSEGV, SIGFPE, SIGILL), saving the old mask in *old (may be
 * NULL).  Worker threads leave signals to the UI thread, but a fault is
 * raised in the thread that faults: blocked there, it kills the process
 * without its handler (the shard guard, the terminal restore) ever running.
 */
void signals_block_async(sigset_t *old);

/*
 * A command-line value of option opt: an integer (arg_int) or a finite
 * number (arg_double) in [lo, hi].  0, or -1 after a one-line message on
 * stderr that names who ("qnext bench"), the option and the value.
 */
int arg_int(const char *who, const char *opt, const char *s, long lo, long hi, int *out);
int arg_double(const char *who, const char *opt, const char *s, double lo, double hi, double *out);

/* Index of the largest of x[0..n) (the first one on ties); n >= 1. */
int argmax_f32(const float *x, int n);

/* Seconds from a monotonic clock. */
double now_sec(void);

/*
 * Bounds on what qnext reads whole.  The real model's shard index is about
 * 20 MB and its tokenizer.json 11 MB; configs are kilobytes (hundreds with
 * an extra_config for every layer).
 */
#define READ_MAX_BIG    ((size_t)256 << 20) /* tokenizer, shard index, stdin */
#define READ_MAX_CONFIG ((size_t)16 << 20)  /* config.json and its kind */

/*
 * Read a whole regular file of at most max bytes into a malloc'd,
 * NUL-terminated buffer.  The open never blocks (O_NONBLOCK: a FIFO is
 * refused, not waited on), and anything that is not a regular file (a FIFO,
 * /dev/zero, a directory) is refused by name.  Returns NULL and sets cause
 * on failure.  *len_out (optional) receives the length without the NUL.
 */
char *read_file_max(const char *path, size_t max, size_t *len_out, char **cause);

/* read_file_max with READ_MAX_BIG. */
char *read_file(const char *path, size_t *len_out, char **cause);

/*
 * A JSON file read with read_file_max (regular files only, at most max
 * bytes) and parsed with duplicate keys refused; NULL with cause ("PATH:
 * not a regular file", "PATH:LINE: what") on failure.
 */
json_t *json_read_file(const char *path, size_t max, char **cause);

/*
 * text[len] parsed as a JSON object, duplicate keys refused; NULL with cause
 * "WHAT: not valid JSON: ERROR (line L, column C)", ERROR cut by str_show to
 * show bytes (each loader keeps its own width), or "WHAT: not a JSON object".
 * The one-line error of config.json, tokenizer.json and their kin.
 */
json_t *json_parse_object(const char *text, size_t len, const char *what, size_t show,
			  char **cause);

/* Everything an open descriptor (stdin, a pipe) gives until EOF, at most max
 * bytes; name is what errors call it.  Same result as read_file_max. */
char *read_fd(int fd, const char *name, size_t max, size_t *len_out, char **cause);

#endif
