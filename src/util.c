/*
 * util.c - checked allocation, error causes, float conversions, clock.
 * Any thread.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

void *
xmalloc(size_t size)
{
	void *p;

	if (size == 0)
		fatal("xmalloc: zero size");
	if ((p = malloc(size)) == NULL)
		fatal("out of memory allocating %zu bytes", size);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if (nmemb == 0 || size == 0)
		fatal("xcalloc: zero size");
	if ((p = calloc(nmemb, size)) == NULL)
		fatal("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

void *
xrealloc(void *old, size_t size)
{
	void *p;

	if (size == 0)
		fatal("xrealloc: zero size");
	if ((p = realloc(old, size)) == NULL)
		fatal("out of memory allocating %zu bytes", size);
	return p;
}

char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

static char *xvasprintf(const char *fmt, va_list ap) PRINTF_LIKE(1, 0);

static char *
xvasprintf(const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *s;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		fatal("vsnprintf failed");
	s = xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

int
cause_set(char **cause, const char *fmt, ...)
{
	va_list ap;

	if (cause == NULL)
		return -1;
	free(*cause);
	va_start(ap, fmt);
	*cause = xvasprintf(fmt, ap);
	va_end(ap);
	return -1;
}

/* GLOBAL: what fatal() runs first (set once by the UI thread at start). */
static void (*fatal_hook)(void);

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t k;

	while (len > 0) {
		if ((k = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

int
file_write_atomic(const char *path, const void *data, size_t len, unsigned mode, char **cause)
{
	const char *slash = strrchr(path, '/');
	char *tmp = slash != NULL
			    ? xasprintf("%.*s/.%s.XXXXXX", (int)(slash - path), path, slash + 1)
			    : xasprintf(".%s.XXXXXX", path);
	int fd, e;

	if ((fd = mkstemp(tmp)) < 0)
		goto fail;
	if (fchmod(fd, (mode_t)mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		goto fail;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		errno = e;
		goto fail;
	}
	free(tmp);
	return 0;
fail:
	e = errno;
	cause_set(cause, "cannot write %s: %s", path, strerror(e));
	free(tmp);
	errno = e;
	return -1;
}

void
fatal_set_hook(void (*fn)(void))
{
	fatal_hook = fn;
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	if (fatal_hook != NULL)
		fatal_hook();
	fputs("qnext: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* stderr redirected to a file is buffered: abort() would lose the message. */
	fflush(stderr);
	abort();
}

float
fp16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	uint32_t bits;
	float f;

	if (exp == 0) {
		/* Zero or subnormal: value = man * 2^-24, exact in float. */
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &bits, sizeof(f));
	return f;
}

float
bf16_to_f32(uint16_t b)
{
	uint32_t bits = (uint32_t)b << 16;
	float f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

uint16_t
f32_to_bf16(float f)
{
	uint32_t bits;

	memcpy(&bits, &f, sizeof(bits));
	if ((bits & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((bits >> 16) | 0x40); /* quiet NaN */
	bits += 0x7fffu + ((bits >> 16) & 1);
	return (uint16_t)(bits >> 16);
}

uint16_t
f32_to_fp16(float f)
{
	uint32_t bits, sign, man;
	int exp;

	memcpy(&bits, &f, sizeof(bits));
	sign = (bits >> 16) & 0x8000u;
	exp = (int)((bits >> 23) & 0xff) - 127 + 15;
	man = bits & 0x7fffffu;
	if (((bits >> 23) & 0xff) == 0xff)
		return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7c00u);
	if (exp <= 0) {
		/* Subnormal half: shift the full mantissa, round to nearest even. */
		uint32_t m, shift, half, rest;

		if (exp < -10)
			return (uint16_t)sign;
		m = man | 0x800000u;
		shift = (uint32_t)(14 - exp);
		half = 1u << (shift - 1);
		rest = m & ((1u << shift) - 1);
		m >>= shift;
		if (rest > half || (rest == half && (m & 1)))
			m++;
		return (uint16_t)(sign | m);
	}
	{
		uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
		uint32_t rest = man & 0x1fffu;

		if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
			h++; /* may carry into the exponent, which is right */
		return (uint16_t)h;
	}
}

const char *
str_show(char *buf, size_t cap, const char *s)
{
	size_t n = strlen(s), i;

	if (n > cap - 4) {
		n = cap - 4;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	strcpy(buf + n, n < strlen(s) ? "..." : "");
	return buf;
}

int
argmax_f32(const float *x, int n)
{
	int b = 0;

	for (int i = 1; i < n; i++)
		if (x[i] > x[b])
			b = i;
	return b;
}

double
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int
arg_int(const char *who, const char *opt, const char *s, long lo, long hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "%s: %s: '%s' is not an integer in [%ld, %ld]\n", who, opt, s, lo,
			hi);
		return -1;
	}
	*out = (int)v;
	return 0;
}

int
arg_double(const char *who, const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	/* isfinite: "nan" and "inf" parse, and NaN passes every range test. */
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi) {
		fprintf(stderr, "%s: %s: '%s' is not a number in [%g, %g]\n", who, opt, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

void
signals_block_async(sigset_t *old)
{
	sigset_t set;

	sigfillset(&set);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGILL);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

void
term_write(FILE *f, const char *s, size_t n)
{
	size_t i = 0, from = 0;

	if (!isatty(fileno(f))) {
		fwrite(s, 1, n, f);
		return;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool c1 = c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
			  (unsigned char)s[i + 1] <= 0x9F;

		if ((c >= 0x20 && c != 0x7F && !c1) || c == '\n' || c == '\t')
			continue;
		fwrite(s + from, 1, i - from, f);
		if (c1) {
			fputc('?', f);
			i++;
		} else {
			fputc('^', f);
			fputc(c == 0x7F ? '?' : c + '@', f);
		}
		from = i + 1;
	}
	fwrite(s + from, 1, n - from, f);
}

char *
read_fd(int fd, const char *name, size_t max, size_t *len_out, char **cause)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			buf = xrealloc(buf, cap + 1);
		}
		n = read(fd, buf + len, MIN(cap - len, max + 1 - len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cause_set(cause, "%s: read error: %s", name, strerror(errno));
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		if ((len += (size_t)n) > max) {
			cause_set(cause, "%s: larger than %zu bytes, more than such a file may be",
				  name, max);
			free(buf);
			return NULL;
		}
	}
	buf[len] = '\0';
	if (len_out != NULL)
		*len_out = len;
	return buf;
}

char *
read_file_max(const char *path, size_t max, size_t *len_out, char **cause)
{
	struct stat sb;
	char *buf;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) == -1) {
		cause_set(cause, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		cause_set(cause, "%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	buf = read_fd(fd, path, max, len_out, cause);
	close(fd);
	return buf;
}

char *
read_file(const char *path, size_t *len_out, char **cause)
{
	return read_file_max(path, READ_MAX_BIG, len_out, cause);
}

json_t *
json_parse_object(const char *text, size_t len, const char *what, size_t show, char **cause)
{
	json_error_t err;
	json_t *root;
	char msg[JSON_ERROR_TEXT_LENGTH];

	if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err)) == NULL) {
		cause_set(cause, "%s: not valid JSON: %s (line %d, column %d)", what,
			  str_show(msg, MIN(show, sizeof(msg)), err.text), err.line, err.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		cause_set(cause, "%s: not a JSON object", what);
		return NULL;
	}
	return root;
}

json_t *
json_read_file(const char *path, size_t max, char **cause)
{
	json_error_t err;
	size_t len;
	char *text = read_file_max(path, max, &len, cause);
	json_t *j;

	if (text == NULL)
		return NULL;
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	free(text);
	if (j == NULL)
		cause_set(cause, "%s:%d: %s", path, err.line, err.text);
	return j;
}
