/*
 * plan.c - `qnext plan`: will this checkpoint fit, and how fast will it
 * decode here?  Decode reads every non-expert matrix, the top-k experts of
 * each layer and lm_head once per token, so its ceiling is memory bandwidth
 * divided by those bytes (docs/perf.md "Decode ceiling").  When weights,
 * context and overhead exceed the RAM, the experts that do not stay in the
 * page cache are read from disk on every token, and the disk sets the pace
 * (docs/perf.md "Models larger than RAM").
 *
 * In order: the checkpoint's facts (module groups, shard sizes, the
 * context's allocations as forward.c's ctx_plan reports them), the
 * machine's facts,
 * the arithmetic (pure), then the text and JSON forms and the command.
 *
 * CLI main thread (also the main command's --dry-run); plan_compute is pure.
 */
#include "plan.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "forward.h"
#include "kernels.h"
#include "model.h"
#include "paths.h"
#include "pool.h"
#include "safetensors.h"
#include "subcmd.h"
#include "sysinfo.h"
#include "util.h"
#include "xcache.h"

/* ---- the checkpoint ------------------------------------------------------- */

static const char *const group_names[PLAN_N_GROUPS] = {
	[PLAN_EXPERTS] = "routed experts",  [PLAN_SHARED] = "shared expert",
	[PLAN_SHARED_GATE] = "shared gate", [PLAN_ROUTER] = "router",
	[PLAN_ATTN] = "attention",          [PLAN_GDN] = "DeltaNet proj.",
	[PLAN_MLP] = "dense MLP",           [PLAN_EMBED] = "embed_tokens",
	[PLAN_LM_HEAD] = "lm_head",
};

static void
fmt_name(const struct qmat *W, char *buf, size_t len)
{
	if (W->fmt == WFMT_GPTQ)
		snprintf(buf, len, "int%d g%d", W->bits, W->group_size);
	else
		snprintf(buf, len, "%s",
			 W->fmt == WFMT_F32   ? "f32"
			 : W->fmt == WFMT_F16 ? "f16"
					      : "bf16");
}

/* Count W into group g: its bytes, and `decode` of them as read per token. */
static void
add(struct plan_model *pm, enum plan_group_id g, const struct qmat *W, uint64_t decode)
{
	struct plan_group *G = &pm->groups[g];
	char f[32];
	size_t n = strlen(G->formats);

	G->n_mats++;
	G->bytes += qmat_bytes(W);
	G->decode_bytes += decode;
	/* List each distinct format once ("int8 g128 + bf16"). */
	fmt_name(W, f, sizeof(f));
	for (const char *p = G->formats; (p = strstr(p, f)) != NULL; p += strlen(f))
		if ((p == G->formats || p[-1] == ' ') &&
		    (p[strlen(f)] == '\0' || p[strlen(f)] == ' '))
			return;
	snprintf(G->formats + n, sizeof(G->formats) - n, "%s%s", n > 0 ? " + " : "", f);
}

static void
add_all(struct plan_model *pm, enum plan_group_id g, const struct qmat *W)
{
	add(pm, g, W, qmat_bytes(W));
}

static void
count_groups(struct plan_model *pm, const struct model *m)
{
	const struct model_config *c = &m->cfg;

	for (int g = 0; g < PLAN_N_GROUPS; g++)
		pm->groups[g].name = group_names[g];
	/* One embedding row per token; lm_head whole. */
	add(pm, PLAN_EMBED, &m->embed, qmat_bytes(&m->embed) / (uint64_t)c->vocab_size);
	add_all(pm, PLAN_LM_HEAD, &m->lm_head);
	for (int i = 0; i < c->n_layers; i++) {
		const struct layer *l = &m->layers[i];
		uint64_t ex = 0;

		if (l->full) {
			add_all(pm, PLAN_ATTN, &l->attn.q_proj);
			add_all(pm, PLAN_ATTN, &l->attn.k_proj);
			add_all(pm, PLAN_ATTN, &l->attn.v_proj);
			add_all(pm, PLAN_ATTN, &l->attn.o_proj);
		} else {
			add_all(pm, PLAN_GDN, &l->gdn.in_qkvz);
			add_all(pm, PLAN_GDN, &l->gdn.in_ba);
			add_all(pm, PLAN_GDN, &l->gdn.out);
		}
		if (!l->moe) {
			add_all(pm, PLAN_MLP, &l->mlp.gate);
			add_all(pm, PLAN_MLP, &l->mlp.up);
			add_all(pm, PLAN_MLP, &l->mlp.down);
			continue;
		}
		add_all(pm, PLAN_ROUTER, &l->moe_w.router);
		if (l->moe_w.has_shared) {
			add_all(pm, PLAN_SHARED, &l->moe_w.sh_gate);
			add_all(pm, PLAN_SHARED, &l->moe_w.sh_up);
			add_all(pm, PLAN_SHARED, &l->moe_w.sh_down);
			add_all(pm, PLAN_SHARED_GATE, &l->moe_w.sh_router);
		}
		/* Experts: top-k of n read per token, counted as model.c does
		 * (equal expert sizes), so the groups add up to decode_bytes. */
		for (int x = 0; x < c->n_experts; x++) {
			add(pm, PLAN_EXPERTS, &l->moe_w.gate[x], 0);
			add(pm, PLAN_EXPERTS, &l->moe_w.up[x], 0);
			add(pm, PLAN_EXPERTS, &l->moe_w.down[x], 0);
			ex += qmat_bytes(&l->moe_w.gate[x]) + qmat_bytes(&l->moe_w.up[x]) +
			      qmat_bytes(&l->moe_w.down[x]);
		}
		pm->groups[PLAN_EXPERTS].decode_bytes +=
			ex / (uint64_t)c->n_experts * (uint64_t)c->n_experts_per_tok;
	}
}

/* The context's memory as forward.c's ctx_new allocates it, for PLAN_N_BATCH-token steps. */
static void
count_context(struct plan_model *pm, const struct model *m, int n_ctx, int n_threads)
{
	struct ctx_opts o = { .n_ctx = n_ctx, .n_batch = PLAN_N_BATCH, .n_threads = n_threads };
	struct ctx_plan cp;

	ctx_plan(m, &o, &cp);
	pm->n_ctx = cp.n_ctx;
	pm->n_threads = cp.n_threads;
	pm->kv_token_bytes = cp.kv / (uint64_t)cp.n_ctx;
	pm->kv_bytes = cp.kv;
	pm->state_bytes = cp.state;
	pm->snapshot_bytes = cp.snapshot;
	pm->scratch_bytes = cp.scratch + cp.qact;
	pm->ctx_bytes = cp.total;
}

int
plan_model_init(struct plan_model *pm, const struct model *m, int n_ctx, int n_threads,
		char **cause)
{
	struct stat st;

	memset(pm, 0, sizeof(*pm));
	if (n_ctx <= 0)
		n_ctx = PLAN_DEFAULT_CTX;
	if (n_threads <= 0)
		n_threads = pool_default_threads();
	pm->n_shards = st_shard_count(m->st);
	for (int i = 0; i < pm->n_shards; i++) {
		const char *p = st_shard_path(m->st, i);

		if (stat(p, &st) != 0)
			return cause_set(cause, "%s: %s", p, strerror(errno));
		pm->mapped_bytes += (uint64_t)st.st_size;
	}
	pm->weight_bytes = m->weight_bytes;
	pm->decode_bytes = m->decode_bytes;
	count_groups(pm, m);
	pm->expert_bytes = pm->groups[PLAN_EXPERTS].bytes;
	pm->expert_decode_bytes = pm->groups[PLAN_EXPERTS].decode_bytes;
	count_context(pm, m, n_ctx, n_threads);
	return 0;
}

/* ---- the machine ---------------------------------------------------------- */

void
plan_machine_from_hw(struct plan_machine *mc, const struct hwinfo *r)
{
	mc->measured = true;
	mc->read_1t = r->read_1t;
	mc->read_all = r->read_all;
	mc->read_threads = r->n_threads;
	mc->disk_gbs = r->disk.gbs;
	mc->disk_bytes = r->disk.bytes;
	snprintf(mc->disk_path, sizeof(mc->disk_path), "%s", r->disk.path);
	mc->when = r->when;
}

void
plan_machine_probe(const char *dir, struct plan_machine *mc)
{
	struct sysinfo_mem mem;
	struct hwinfo hw;
	struct statvfs vfs;

	memset(mc, 0, sizeof(*mc));
	if (sysinfo_mem_effective(&mem) == 0) {
		mc->mem_total = mem.total;
		mc->mem_available = mem.available;
		mc->swap_total = mem.swap_total;
		mc->swap_free = mem.swap_free;
	}
	if (dir != NULL && statvfs(dir, &vfs) == 0)
		mc->disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	hwinfo_cpu(&mc->cpu);
	if (hwinfo_load(&hw, NULL) == 0 && hw.read_all > 0)
		plan_machine_from_hw(mc, &hw);
}

/* ---- the arithmetic --------------------------------------------------------- */

static uint64_t
sub0(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

void
plan_compute(const struct plan_model *pm, const struct plan_machine *mc, struct plan_result *r)
{
	/* Read every token whatever the routing: all but the routed experts. */
	uint64_t hot = sub0(pm->decode_bytes, pm->expert_decode_bytes);
	double mem_sec = 0;

	memset(r, 0, sizeof(*r));
	r->need_bytes = pm->mapped_bytes + pm->ctx_bytes + PLAN_OVERHEAD;
	if (r->need_bytes <= mc->mem_available)
		r->fit = PLAN_FITS;
	else if (r->need_bytes <= mc->mem_total)
		r->fit = PLAN_FITS_BUSY;
	else
		r->fit = PLAN_NO_FIT;
	if (mc->read_all > 0 && pm->decode_bytes > 0) {
		/* Full context: the recurrent states are read and written, the whole
		 * KV cache read, on top of the weights. */
		double ctx = (double)pm->decode_bytes + 2.0 * (double)pm->state_bytes +
			     (double)pm->kv_bytes;

		mem_sec = (double)pm->decode_bytes / (mc->read_all * 1e9);
		r->tok_s = 1 / mem_sec;
		r->tok_s_ctx = mc->read_all * 1e9 / ctx;
	}
	r->disk_gbs = mc->disk_gbs > 0 ? mc->disk_gbs : PLAN_DISK_ASSUMED;
	r->disk_assumed = !(mc->disk_gbs > 0);
	if (r->fit == PLAN_FITS)
		return;
	/*
	 * What RAM can hold once the context and the process have theirs: the
	 * weights read every token stay cached (they are touched constantly);
	 * the rest holds a share of the routed experts.  With uniform routing
	 * the hit rate equals that share, and each miss is read from disk.
	 */
	r->cache_bytes = sub0(mc->mem_available, pm->ctx_bytes + PLAN_OVERHEAD);
	if (r->cache_bytes >= hot) {
		uint64_t ex_cache = r->cache_bytes - hot;

		r->expert_cached = pm->expert_bytes > 0
					   ? MIN(1.0, (double)ex_cache / (double)pm->expert_bytes)
					   : 1.0;
		r->miss_bytes =
			(uint64_t)((1 - r->expert_cached) * (double)pm->expert_decode_bytes);
	} else {
		r->expert_cached = 0;
		r->miss_bytes = pm->expert_decode_bytes + (hot - r->cache_bytes);
	}
	r->tok_s_disk = 1 / (mem_sec + (double)r->miss_bytes / (r->disk_gbs * 1e9));
	/* The expert cache: the page cache keeps only the every-token weights (the
	 * embedding table gives one row per token), the rest is whole experts. */
	r->xc_resident =
		sub0(sub0(pm->mapped_bytes, pm->expert_bytes), pm->groups[PLAN_EMBED].bytes);
	r->xc_bytes = xcache_budget(pm->mapped_bytes, r->xc_resident, pm->ctx_bytes,
				    mc->mem_available, mc->mem_total);
	if (r->xc_bytes > 0 && pm->expert_bytes > 0) {
		r->xc_cached = MIN(1.0, (double)r->xc_bytes / (double)pm->expert_bytes);
		r->xc_miss_bytes = (uint64_t)((1 - r->xc_cached) * (double)pm->expert_decode_bytes);
		r->xc_tok_s = 1 / (mem_sec + (double)r->xc_miss_bytes / (r->disk_gbs * 1e9));
	}
}

/* ---- output ----------------------------------------------------------------- */

const char *
plan_bytes(uint64_t b, char *buf, size_t n)
{
	double v = (double)b;

	if (v >= 1e9)
		snprintf(buf, n, "%.2f GB", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, n, "%.1f MB", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, n, "%.1f kB", v / 1e3);
	else
		snprintf(buf, n, "%llu B", (unsigned long long)b);
	return buf;
}

static const char *
fit_name(enum plan_fit f)
{
	return f == PLAN_FITS ? "fits" : f == PLAN_FITS_BUSY ? "busy" : "no";
}

static json_t *
real_or_null(double v)
{
	return v > 0 ? json_real(v) : json_null();
}

char *
plan_json(const char *dir, const struct plan_model *pm, const struct plan_machine *mc,
	  const struct plan_result *r)
{
	json_t *o = json_object(), *groups = json_array(), *mach, *disk = json_null();
	char *s;

	for (int g = 0; g < PLAN_N_GROUPS; g++) {
		const struct plan_group *G = &pm->groups[g];

		if (G->n_mats == 0)
			continue;
		json_array_append_new(groups,
				      json_pack("{s:s, s:s, s:i, s:I, s:I}", "name", G->name,
						"formats", G->formats, "matrices", G->n_mats,
						"bytes", (json_int_t)G->bytes, "decode_bytes",
						(json_int_t)G->decode_bytes));
	}
	mach = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:s}", "cpu",
			 mc->cpu.name, "features", mc->cpu.features, "kernels", mc->cpu.kernels,
			 "cores", mc->cpu.n_cores, "mem_total", (json_int_t)mc->mem_total,
			 "mem_available", (json_int_t)mc->mem_available, "swap_total",
			 (json_int_t)mc->swap_total, "swap_free", (json_int_t)mc->swap_free,
			 "disk_free", (json_int_t)mc->disk_free, "read_gbs_1t",
			 real_or_null(mc->read_1t), "read_gbs_all", real_or_null(mc->read_all),
			 "disk_read_gbs", real_or_null(mc->disk_gbs), "bandwidth",
			 mc->read_all > 0 ? "measured" : "not measured: run qnext bench-hw");
	if (r->fit != PLAN_FITS)
		disk = json_pack("{s:I, s:f, s:I, s:f, s:b, s:f, s:{s:I, s:I, s:f, s:I, s:f}}",
				 "cache_bytes", (json_int_t)r->cache_bytes,
				 "expert_cached_fraction", r->expert_cached, "disk_bytes_per_token",
				 (json_int_t)r->miss_bytes, "disk_gbs", r->disk_gbs,
				 "disk_gbs_assumed", r->disk_assumed, "decode_tok_s", r->tok_s_disk,
				 "expert_cache", "bytes", (json_int_t)r->xc_bytes, "resident_bytes",
				 (json_int_t)r->xc_resident, "expert_cached_fraction", r->xc_cached,
				 "disk_bytes_per_token", (json_int_t)r->xc_miss_bytes,
				 "decode_tok_s", r->xc_tok_s);
	json_object_set_new(o, "model", json_string(dir));
	json_object_set_new(o, "n_ctx", json_integer(pm->n_ctx));
	json_object_set_new(o, "shards", json_integer(pm->n_shards));
	json_object_set_new(o, "mapped_bytes", json_integer((json_int_t)pm->mapped_bytes));
	json_object_set_new(o, "weight_bytes", json_integer((json_int_t)pm->weight_bytes));
	json_object_set_new(o, "decode_bytes", json_integer((json_int_t)pm->decode_bytes));
	json_object_set_new(o, "groups", groups);
	json_object_set_new(o, "kv_bytes_per_token", json_integer((json_int_t)pm->kv_token_bytes));
	json_object_set_new(o, "kv_bytes", json_integer((json_int_t)pm->kv_bytes));
	json_object_set_new(o, "deltanet_state_bytes", json_integer((json_int_t)pm->state_bytes));
	json_object_set_new(o, "snapshot_bytes", json_integer((json_int_t)pm->snapshot_bytes));
	json_object_set_new(o, "scratch_bytes", json_integer((json_int_t)pm->scratch_bytes));
	json_object_set_new(o, "context_bytes", json_integer((json_int_t)pm->ctx_bytes));
	json_object_set_new(o, "overhead_bytes", json_integer((json_int_t)PLAN_OVERHEAD));
	json_object_set_new(o, "need_bytes", json_integer((json_int_t)r->need_bytes));
	json_object_set_new(o, "machine", mach);
	json_object_set_new(o, "fit", json_string(fit_name(r->fit)));
	json_object_set_new(o, "decode_tok_s", real_or_null(r->tok_s));
	json_object_set_new(o, "decode_tok_s_full_ctx", real_or_null(r->tok_s_ctx));
	json_object_set_new(o, "disk_bound", disk);
	json_object_set_new(o, "swap_needed", json_false());
	s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL)
		fatal("plan_json: out of memory");
	return s;
}

static void
write_groups(FILE *f, const struct plan_model *pm)
{
	char a[32], b[32];

	fprintf(f, "  %-16s %-20s %8s %15s %15s\n", "weights", "format", "matrices",
		"in checkpoint", "read per token");
	for (int g = 0; g < PLAN_N_GROUPS; g++) {
		const struct plan_group *G = &pm->groups[g];

		if (G->n_mats > 0)
			fprintf(f, "  %-16s %-20s %8d %15s %15s\n", G->name, G->formats, G->n_mats,
				plan_bytes(G->bytes, a, sizeof(a)),
				plan_bytes(G->decode_bytes, b, sizeof(b)));
	}
	fprintf(f, "  %-16s %-20s %8s %15s %15s\n", "total", "", "",
		plan_bytes(pm->weight_bytes, a, sizeof(a)),
		plan_bytes(pm->decode_bytes, b, sizeof(b)));
}

static void
write_machine(FILE *f, const struct plan_machine *mc)
{
	char a[32], b[32], c[32];

	fprintf(f, "machine\n");
	fprintf(f, "  CPU              %s; %s; kernels %s; %d physical cores\n", mc->cpu.name,
		mc->cpu.features[0] != '\0' ? mc->cpu.features : "no AVX2", mc->cpu.kernels,
		mc->cpu.n_cores);
	fprintf(f, "  RAM              %s total, %s available; swap %s",
		plan_bytes(mc->mem_total, a, sizeof(a)),
		plan_bytes(mc->mem_available, b, sizeof(b)),
		mc->swap_total > 0 ? plan_bytes(mc->swap_total, c, sizeof(c)) : "none");
	fprintf(f, mc->swap_total > 0 ? " (%s free)\n" : "\n",
		plan_bytes(mc->swap_free, a, sizeof(a)));
	if (mc->disk_free > 0)
		fprintf(f, "  disk             %s free where the model lives\n",
			plan_bytes(mc->disk_free, a, sizeof(a)));
	if (mc->read_all > 0) {
		char when[32] = "";
		time_t t = (time_t)mc->when;
		struct tm tm;

		if (t > 0 && localtime_r(&t, &tm) != NULL)
			strftime(when, sizeof(when), ", %Y-%m-%d", &tm);
		fprintf(f,
			"  memory read      %.2f GB/s on 1 thread, %.2f GB/s on %d thread%s "
			"(qnext bench-hw%s)\n",
			mc->read_1t, mc->read_all, mc->read_threads,
			mc->read_threads == 1 ? "" : "s", when);
	} else {
		fprintf(f, "  memory read      not measured: run qnext bench-hw\n");
	}
	if (mc->disk_gbs > 0)
		fprintf(f, "  disk read        %.2f GB/s sequential (%s of %s)\n", mc->disk_gbs,
			plan_bytes(mc->disk_bytes, a, sizeof(a)), mc->disk_path);
}

void
plan_write(FILE *f, const char *dir, const struct plan_model *pm, const struct plan_machine *mc,
	   const struct plan_result *r)
{
	char a[32], b[32], c[32], d[32];

	fprintf(f, "plan for %s, %d-token context\n\n", dir, pm->n_ctx);
	fprintf(f,
		"checkpoint         %d shard%s, %s mapped (read-only; pages load on first use)\n",
		pm->n_shards, pm->n_shards == 1 ? "" : "s",
		plan_bytes(pm->mapped_bytes, a, sizeof(a)));
	write_groups(f, pm);
	fprintf(f, "\ncontext\n");
	fprintf(f, "  KV cache         %s (fp32 K and V, %s per token)\n",
		plan_bytes(pm->kv_bytes, a, sizeof(a)),
		plan_bytes(pm->kv_token_bytes, b, sizeof(b)));
	fprintf(f, "  DeltaNet state   %s, and %s for the snapshot that lets a chat resume\n",
		plan_bytes(pm->state_bytes, a, sizeof(a)),
		plan_bytes(pm->snapshot_bytes, b, sizeof(b)));
	fprintf(f, "  scratch          %s (%d-token prefill batches, %d threads)\n",
		plan_bytes(pm->scratch_bytes, a, sizeof(a)), MIN(PLAN_N_BATCH, pm->n_ctx),
		pm->n_threads);
	fprintf(f, "  total            %s\n\n", plan_bytes(pm->ctx_bytes, a, sizeof(a)));
	write_machine(f, mc);
	fprintf(f, "\nverdict\n");
	fprintf(f, "  memory needed    %s = weights %s + context %s + overhead %s\n",
		plan_bytes(r->need_bytes, a, sizeof(a)), plan_bytes(pm->mapped_bytes, b, sizeof(b)),
		plan_bytes(pm->ctx_bytes, c, sizeof(c)), plan_bytes(PLAN_OVERHEAD, d, sizeof(d)));
	if (r->fit == PLAN_FITS)
		fprintf(f, "  fits in RAM      yes (%s available)\n",
			plan_bytes(mc->mem_available, a, sizeof(a)));
	else if (r->fit == PLAN_FITS_BUSY)
		fprintf(f,
			"  fits in RAM      in the %s total, but only %s is available now:\n"
			"                   other programs hold the rest; until they release it,\n"
			"                   decode reads from disk as below\n",
			plan_bytes(mc->mem_total, a, sizeof(a)),
			plan_bytes(mc->mem_available, b, sizeof(b)));
	else
		fprintf(f, "  fits in RAM      no: %s of RAM\n",
			plan_bytes(mc->mem_total, a, sizeof(a)));
	if (r->tok_s > 0)
		fprintf(f,
			"  decode %-9s %.1f tok/s ceiling (%.2f GB/s / %s per token);\n"
			"                   %.1f tok/s with all %d positions filled\n",
			r->fit == PLAN_FITS ? "" : "in RAM", r->tok_s, mc->read_all,
			plan_bytes(pm->decode_bytes, a, sizeof(a)), r->tok_s_ctx, pm->n_ctx);
	else
		fprintf(f, "  decode           not predicted: memory bandwidth not measured; "
			   "run qnext bench-hw\n");
	if (r->fit == PLAN_FITS)
		return;
	fprintf(f,
		"  disk-bound       ~%.1f tok/s%s: with %s of RAM for the page cache,\n"
		"                   the %s read every token stays cached, and %.0f%% of the\n"
		"                   %s of routed experts; with uniform routing %s per\n"
		"                   token comes from disk at %.2f GB/s%s.\n"
		"                   Real routing is skewed, so more hits and a faster decode\n"
		"                   are likely; random expert reads run below the sequential "
		"figure\n",
		r->tok_s_disk, r->tok_s > 0 ? "" : " (disk time only)",
		plan_bytes(r->cache_bytes, a, sizeof(a)),
		plan_bytes(sub0(pm->decode_bytes, pm->expert_decode_bytes), b, sizeof(b)),
		100 * r->expert_cached, plan_bytes(pm->expert_bytes, c, sizeof(c)),
		plan_bytes(r->miss_bytes, d, sizeof(d)), r->disk_gbs,
		r->disk_assumed ? " (assumed: disk not measured, run qnext bench-hw)" : "");
	if (r->xc_bytes > 0)
		fprintf(f,
			"  expert cache     what qnext does here (--expert-cache auto): the %s\n"
			"                   read every token stay in the page cache, %s holds\n"
			"                   %.0f%% of the routed experts, read whole as routers "
			"choose\n"
			"                   them; with uniform routing %s per token from disk:\n"
			"                   ~%.1f tok/s%s, more as routing is skewed\n",
			plan_bytes(r->xc_resident, a, sizeof(a)),
			plan_bytes(r->xc_bytes, b, sizeof(b)), 100 * r->xc_cached,
			plan_bytes(r->xc_miss_bytes, c, sizeof(c)), r->xc_tok_s,
			r->tok_s > 0 ? "" : " (disk time only)");
	else
		fprintf(f, "  expert cache     none: too little memory beside the weights every "
			   "token\n"
			   "                   reads; the page cache serves the experts\n");
	fprintf(f, "  swap             no swap setup is needed: the weights are a read-only file\n"
		   "                   mapping, so under memory pressure the kernel drops their\n"
		   "                   pages and reads them again from the model files; they\n"
		   "                   never go to swap\n");
}

int
plan_print(const char *dir, int n_ctx, bool json)
{
	struct plan_model pm;
	struct plan_machine mc;
	struct plan_result r;
	struct model *m;
	char *cause = NULL;

	if ((m = model_open(dir, &cause)) == NULL ||
	    plan_model_init(&pm, m, n_ctx, 0, &cause) != 0) {
		fprintf(stderr, "qnext: %s\n", cause);
		free(cause);
		model_close(m);
		return -1;
	}
	plan_machine_probe(dir, &mc);
	plan_compute(&pm, &mc, &r);
	if (json) {
		char *s = plan_json(dir, &pm, &mc, &r);

		printf("%s\n", s);
		free(s);
	} else {
		plan_write(stdout, dir, &pm, &mc, &r);
	}
	model_close(m);
	return 0;
}

static void
usage(FILE *f)
{
	subcmd_usage(f, "plan");
}

int
plan_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *model = NULL;
	bool json = false;
	long n_ctx = PLAN_DEFAULT_CTX;
	char *end, *dir, *cause = NULL;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "m:c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			model = optarg;
			break;
		case 'c':
			n_ctx = strtol(optarg, &end, 10);
			if (*end != '\0' || n_ctx < 16 || n_ctx > 1 << 24) {
				fprintf(stderr, "qnext plan: --ctx: '%s' is not in [16, %d]\n",
					optarg, 1 << 24);
				return 2;
			}
			break;
		case 'J':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((dir = paths_find_model(model, &cause)) == NULL) {
		fprintf(stderr, "qnext plan: %s\n", cause);
		free(cause);
		return 1;
	}
	rc = plan_print(dir, (int)n_ctx, json) == 0 ? 0 : 1;
	free(dir);
	return rc;
}
