/*
 * hwinfo.c - what this machine is and what `qnext bench-hw` measured on it
 * (see hwinfo.h): the CPU from /proc/cpuinfo, sysfs topology and the kernel
 * tier, and hw.json, where the measurements are remembered for `qnext plan`.
 * Split from benchhw.c so that plan reads the record without depending on
 * the command that writes it.
 *
 * Any thread: the parsers are pure, the rest touch only their own files.
 */
#include "hwinfo.h"

#include <sys/stat.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "kernels.h"
#include "paths.h"
#include "sysinfo.h"
#include "util.h"

#define HW_JSON_VERSION 1

/* ---- the CPU ------------------------------------------------------------- */

/* The /proc/cpuinfo flags that decide which kernels can run, in print order. */
static const char *const cpu_flags[] = {
	"avx2",        "fma",      "f16c",     "avx512f",  "avx512bw", "avx512vl",
	"avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
};

/* The value of the line starting with `key` (up to ':'), or NULL; *len (OUT) its length. */
static const char *
cpuinfo_value(const char *text, const char *key, size_t *len)
{
	size_t klen = strlen(key);
	const char *p = text, *eol, *colon;

	for (; *p != '\0'; p = eol + 1) {
		if ((eol = strchr(p, '\n')) == NULL)
			eol = p + strlen(p) - 1; /* last line: the loop ends after it */
		if (strncmp(p, key, klen) != 0 ||
		    (p[klen] != ' ' && p[klen] != '\t' && p[klen] != ':'))
			continue;
		if ((colon = strchr(p, ':')) == NULL || colon > eol)
			continue;
		for (colon++; *colon == ' ' || *colon == '\t'; colon++)
			;
		*len = *eol == '\n' ? (size_t)(eol - colon) : strlen(colon);
		return colon;
	}
	return NULL;
}

/* Whether the space-separated list [s, s+len) holds the word w. */
static bool
has_word(const char *s, size_t len, const char *w)
{
	size_t wl = strlen(w);

	for (size_t i = 0; i + wl <= len; i++) {
		if ((i > 0 && s[i - 1] != ' ' && s[i - 1] != '\t') || memcmp(s + i, w, wl) != 0)
			continue;
		if (i + wl == len || s[i + wl] == ' ' || s[i + wl] == '\t' || s[i + wl] == '\r')
			return true;
	}
	return false;
}

void
hwinfo_parse_cpuinfo(const char *text, struct hwinfo_cpu *cpu)
{
	const char *v;
	size_t len = 0, at = 0;

	snprintf(cpu->name, sizeof(cpu->name), "unknown");
	if ((v = cpuinfo_value(text, "model name", &len)) != NULL && len > 0) {
		while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\r'))
			len--;
		snprintf(cpu->name, sizeof(cpu->name), "%.*s", (int)len, v);
	}
	cpu->features[0] = '\0';
	if ((v = cpuinfo_value(text, "flags", &len)) == NULL)
		return;
	for (size_t i = 0; i < ARRAY_LEN(cpu_flags); i++) {
		if (!has_word(v, len, cpu_flags[i]))
			continue;
		at += (size_t)snprintf(cpu->features + at, sizeof(cpu->features) - at, "%s%s",
				       at > 0 ? " " : "", cpu_flags[i]);
		if (at >= sizeof(cpu->features))
			break;
	}
}

void
hwinfo_cpu(struct hwinfo_cpu *cpu)
{
	char *text = read_file("/proc/cpuinfo", NULL, NULL);

	memset(cpu, 0, sizeof(*cpu));
	hwinfo_parse_cpuinfo(text != NULL ? text : "", cpu);
	free(text);
	snprintf(cpu->kernels, sizeof(cpu->kernels), "%s", kernels_get()->name);
	cpu->n_cores = sysinfo_cores(&cpu->n_cpus);
}

/* ---- hw.json --------------------------------------------------------------- */

char *
hwinfo_cache_dir_made(char **cause)
{
	char *dir = paths_xdg_dir("XDG_CACHE_HOME", ".cache");

	if (dir == NULL) {
		cause_set(cause, "neither XDG_CACHE_HOME nor HOME is set");
		return NULL;
	}
	if (paths_mkdirs(dir, 0700, cause) != 0) {
		free(dir);
		return NULL;
	}
	return dir;
}

char *
hwinfo_cache_path(void)
{
	char *dir = paths_xdg_dir("XDG_CACHE_HOME", ".cache"), *path;

	if (dir == NULL)
		return NULL;
	path = xasprintf("%s/hw.json", dir);
	free(dir);
	return path;
}

static json_t *
result_json(const struct hwinfo *r)
{
	return json_pack("{s:i, s:I, s:{s:s, s:s, s:s, s:i, s:i}, s:I, s:I, s:f, s:f, s:i, "
			 "s:{s:s, s:I, s:f, s:b, s:f}}",
			 "version", HW_JSON_VERSION, "when", (json_int_t)r->when, "cpu", "name",
			 r->cpu.name, "features", r->cpu.features, "kernels", r->cpu.kernels,
			 "cores", r->cpu.n_cores, "cpus", r->cpu.n_cpus, "mem_total",
			 (json_int_t)r->mem_total, "swap_total", (json_int_t)r->swap_total,
			 "read_gbs_1t", r->read_1t, "read_gbs_all", r->read_all, "read_threads",
			 r->n_threads, "disk", "path", r->disk.path, "bytes",
			 (json_int_t)r->disk.bytes, "gbs", r->disk.gbs, "direct", r->disk.direct,
			 "cached_before", r->disk.cached_before);
}

char *
hwinfo_json(const struct hwinfo *r)
{
	json_t *o = result_json(r);
	char *s;

	if (o == NULL)
		fatal("hwinfo_json: json_pack failed");
	s = json_dumps(o, JSON_INDENT(0) | JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		fatal("hwinfo_json: out of memory");
	return s;
}

int
hwinfo_save(const struct hwinfo *r, char **cause)
{
	char *dir = hwinfo_cache_dir_made(cause), *path, *text;
	int rc;

	if (dir == NULL)
		return -1;
	path = xasprintf("%s/hw.json", dir);
	text = hwinfo_json(r);
	text = xrealloc(text, strlen(text) + 2);
	strcat(text, "\n");
	rc = file_write_atomic(path, text, strlen(text), 0644, cause);
	free(text);
	free(path);
	free(dir);
	return rc;
}

static double
num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : 0;
}

static void
str(json_t *o, const char *key, char *out, size_t n)
{
	json_t *v = json_object_get(o, key);

	snprintf(out, n, "%s", json_is_string(v) ? json_string_value(v) : "");
}

int
hwinfo_load(struct hwinfo *r, char **cause)
{
	char *path = hwinfo_cache_path();
	json_error_t err;
	json_t *o, *cpu, *disk;

	memset(r, 0, sizeof(*r));
	if (path == NULL)
		return cause_set(cause, "neither XDG_CACHE_HOME nor HOME is set");
	if ((o = json_load_file(path, 0, &err)) == NULL) {
		cause_set(cause, "%s: %s", path, err.text);
		free(path);
		return -1;
	}
	if (!json_is_object(o) || num(o, "version") != HW_JSON_VERSION ||
	    !json_is_number(json_object_get(o, "read_gbs_all"))) {
		cause_set(cause, "%s: not a qnext bench-hw result (version %d)", path,
			  HW_JSON_VERSION);
		json_decref(o);
		free(path);
		return -1;
	}
	r->when = (int64_t)num(o, "when");
	if (json_is_object(cpu = json_object_get(o, "cpu"))) {
		str(cpu, "name", r->cpu.name, sizeof(r->cpu.name));
		str(cpu, "features", r->cpu.features, sizeof(r->cpu.features));
		str(cpu, "kernels", r->cpu.kernels, sizeof(r->cpu.kernels));
		r->cpu.n_cores = (int)num(cpu, "cores");
		r->cpu.n_cpus = (int)num(cpu, "cpus");
	}
	r->mem_total = (uint64_t)num(o, "mem_total");
	r->swap_total = (uint64_t)num(o, "swap_total");
	r->read_1t = num(o, "read_gbs_1t");
	r->read_all = num(o, "read_gbs_all");
	r->n_threads = (int)num(o, "read_threads");
	if (json_is_object(disk = json_object_get(o, "disk"))) {
		str(disk, "path", r->disk.path, sizeof(r->disk.path));
		r->disk.bytes = (uint64_t)num(disk, "bytes");
		r->disk.gbs = num(disk, "gbs");
		r->disk.direct = json_is_true(json_object_get(disk, "direct"));
		r->disk.cached_before = num(disk, "cached_before");
	}
	json_decref(o);
	free(path);
	return 0;
}
