/*
 * test-plan.c - `qnext plan` and `qnext bench-hw` arithmetic and files.
 *
 * The byte counts of the golden models are computed here from first
 * principles, from their config.json and the AutoRound GPTQ format (written
 * out below), not with the code under test: per module group, the weights
 * read per decoded token, KV cache, DeltaNet state; the mapped bytes from
 * stat(2) of the shards.  The context's total is forward.c's ctx_plan,
 * checked against the accounting of a real context (ctx_bytes).  The fit decision and the
 * speed predictions run on hand-made facts and an injected /proc/meminfo.
 * hw.json round-trips through a temporary XDG_CACHE_HOME, and the JSON
 * outputs parse.
 */
#include <sys/stat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "benchhw.h"
#include "forward.h"
#include "model.h"
#include "plan.h"
#include "sysinfo.h"
#include "t.h"
#include "util.h"

/*
 * Bytes of one linear layer y = W x with `in` inputs and `out` outputs.
 *
 * AutoRound GPTQ with b bits and group size gs, G = ceil(in / gs) groups:
 *   qweight  int32 [in*b/32][out]  ->  in * out * b/8 bytes
 *   qzeros   int32 [G][out*b/32]   ->  G * out * b/8 bytes
 *   scales   fp16  [G][out]        ->  2 * G * out bytes
 * so int8: in*out + G*out + 2*G*out; int4: in*out/2 + G*out/2 + 2*G*out.
 * BF16 weight [out][in]: 2 * in * out.
 */
static uint64_t
gptq(uint64_t in, uint64_t out, uint64_t bits, uint64_t gs)
{
	uint64_t G = (in + gs - 1) / gs;

	return in * out * bits / 8 + G * out * bits / 8 + 2 * G * out;
}

static uint64_t
bf16(uint64_t in, uint64_t out)
{
	return 2 * in * out;
}

/* What a golden model should cost, by hand from its config.json and shard headers. */
struct expect {
	const char *dir;
	uint64_t groups[PLAN_N_GROUPS];        /* bytes in the checkpoint */
	uint64_t groups_decode[PLAN_N_GROUPS]; /* bytes read per decoded token */
	uint64_t weights, decode;
	uint64_t kv_token; /* K and V per context position */
	uint64_t state;    /* DeltaNet conv windows + recurrent states */
};

static void
sum_expect(struct expect *e)
{
	for (int g = 0; g < PLAN_N_GROUPS; g++) {
		e->weights += e->groups[g];
		e->decode += e->groups_decode[g];
	}
}

/*
 * tiny: hidden 256, 4 layers (layers 0-2 DeltaNet, 3 full: full_attention_interval 4),
 * vocab 1088; attention 4 heads x 64, 2 KV heads; DeltaNet 2 key heads, 4 value heads,
 * dk = dv = 32, conv 4; 16 experts, top 4, width 128; shared width 128; group 128.
 * Formats (from the shard headers): experts int4; shared expert, attention, in_proj_qkvz,
 * out_proj and embed_tokens int8; in_proj_ba, router, shared gate, lm_head BF16.
 */
static void
expect_tiny(struct expect *e)
{
	const uint64_t d = 256, V = 1088, gs = 128;
	const uint64_t key_dim = 2 * 32, value_dim = 4 * 32, qkvz = 2 * key_dim + 2 * value_dim;
	const uint64_t expert = gptq(d, 128, 4, gs) * 2 + gptq(128, d, 4, gs); /* gate, up, down */

	memset(e, 0, sizeof(*e));
	e->dir = "share/tiny";
	e->groups[PLAN_EMBED] = gptq(d, V, 8, gs);
	e->groups_decode[PLAN_EMBED] = e->groups[PLAN_EMBED] / V; /* one row */
	e->groups[PLAN_LM_HEAD] = e->groups_decode[PLAN_LM_HEAD] = bf16(d, V);
	e->groups[PLAN_GDN] =
		3 * (gptq(d, qkvz, 8, gs) + bf16(d, 2 * 4) + gptq(value_dim, d, 8, gs));
	e->groups[PLAN_ATTN] =
		gptq(d, 4 * 64 * 2, 8, gs) + 2 * gptq(d, 2 * 64, 8, gs) + gptq(4 * 64, d, 8, gs);
	e->groups[PLAN_ROUTER] = 4 * bf16(d, 16);
	e->groups[PLAN_SHARED] = 4 * (2 * gptq(d, 128, 8, gs) + gptq(128, d, 8, gs));
	e->groups[PLAN_SHARED_GATE] = 4 * bf16(d, 1);
	for (int g = PLAN_SHARED; g <= PLAN_GDN; g++)
		e->groups_decode[g] = e->groups[g];
	e->groups[PLAN_EXPERTS] = 4 * 16 * expert;
	e->groups_decode[PLAN_EXPERTS] = 4 * 4 * expert;
	sum_expect(e);
	/* 1 full layer x 2 KV heads x 64 x (K + V) x 4 bytes. */
	e->kv_token = 1 * 2 * 64 * 2 * 2; /* half-precision K and V */
	/* 3 DeltaNet layers x (3 x conv_dim (2*64 + 128) + Hv*dk*dv (4*32*32)) x 4 bytes. */
	e->state = 3 * (3 * (2 * key_dim + value_dim) + 4 * 32 * 32) * 4;
	/* The same by hand as literal numbers, as a check on the formulas above. */
	T_EQ_INT(e->decode, 2494726);
	T_EQ_INT(e->state, 58368);
}

/*
 * small: hidden 256, 8 layers (3 and 7 full), vocab 1920; attention 8 heads x 64,
 * 1 KV head; DeltaNet 8 key heads, 16 value heads, dk = dv = 32, conv 4; 32 experts,
 * top 6, width 64; shared width 128; group 64.  Formats: experts and shared expert
 * int4; attention, DeltaNet (in_proj_ba too), router and embed_tokens int8; shared
 * gate and lm_head BF16.
 */
static void
expect_small(struct expect *e)
{
	const uint64_t d = 256, V = 1920, gs = 64;
	const uint64_t key_dim = 8 * 32, value_dim = 16 * 32, qkvz = 2 * key_dim + 2 * value_dim;
	const uint64_t expert = gptq(d, 64, 4, gs) * 2 + gptq(64, d, 4, gs);

	memset(e, 0, sizeof(*e));
	e->dir = "tests/data/small";
	e->groups[PLAN_EMBED] = gptq(d, V, 8, gs);
	e->groups_decode[PLAN_EMBED] = e->groups[PLAN_EMBED] / V;
	e->groups[PLAN_LM_HEAD] = e->groups_decode[PLAN_LM_HEAD] = bf16(d, V);
	e->groups[PLAN_GDN] =
		6 * (gptq(d, qkvz, 8, gs) + gptq(d, 2 * 16, 8, gs) + gptq(value_dim, d, 8, gs));
	e->groups[PLAN_ATTN] = 2 * (gptq(d, 8 * 64 * 2, 8, gs) + 2 * gptq(d, 1 * 64, 8, gs) +
				    gptq(8 * 64, d, 8, gs));
	e->groups[PLAN_ROUTER] = 8 * gptq(d, 32, 8, gs);
	e->groups[PLAN_SHARED] = 8 * (2 * gptq(d, 128, 4, gs) + gptq(128, d, 4, gs));
	e->groups[PLAN_SHARED_GATE] = 8 * bf16(d, 1);
	for (int g = PLAN_SHARED; g <= PLAN_GDN; g++)
		e->groups_decode[g] = e->groups[g];
	e->groups[PLAN_EXPERTS] = 8 * 32 * expert;
	e->groups_decode[PLAN_EXPERTS] = 8 * 6 * expert;
	sum_expect(e);
	e->kv_token = 2 * 1 * 64 * 2 * 2;
	e->state = 6 * (3 * (2 * key_dim + value_dim) + 16 * 32 * 32) * 4;
	T_EQ_INT(e->groups[PLAN_EXPERTS], 6782976);
	T_EQ_INT(e->state, 466944);
}

static uint64_t
shard_sizes(const char *dir)
{
	uint64_t sum = 0;

	for (int i = 1; i <= 2; i++) {
		char path[256];
		struct stat st;

		snprintf(path, sizeof(path), "%s/model-0000%d-of-00002.safetensors", dir, i);
		T_ASSERT(stat(path, &st) == 0);
		sum += (uint64_t)st.st_size;
	}
	return sum;
}

/* Bytes of a kernels qact buffer for n inputs and t tokens: int8 q and its permuted copy,
 * a float scale and an int32 sum per 32-input block. */
static uint64_t
qact(uint64_t n, uint64_t t)
{
	uint64_t blk = (n + 31) / 32;

	return 2 * t * blk * 32 + t * blk * 8;
}

static void
test_model(const struct expect *e, uint64_t qact_total)
{
	struct plan_model pm;
	struct ctx_plan cp;
	struct model *m;
	struct ctx *c;
	struct ctx_opts co = { .n_ctx = 512, .n_batch = PLAN_N_BATCH, .n_threads = 2 };
	char *cause = NULL;

	if ((m = model_open(e->dir, &cause)) == NULL) {
		fprintf(stderr, "%s\n", cause);
		T_ASSERT(0);
		free(cause);
		return;
	}
	T_EQ_INT(plan_model_init(&pm, m, 512, 2, &cause), 0);
	for (int g = 0; g < PLAN_N_GROUPS; g++) {
		T_EQ_INT(pm.groups[g].bytes, e->groups[g]);
		T_EQ_INT(pm.groups[g].decode_bytes, e->groups_decode[g]);
	}
	T_EQ_INT(pm.weight_bytes, e->weights);
	T_EQ_INT(pm.decode_bytes, e->decode);
	T_EQ_INT(pm.expert_bytes, e->groups[PLAN_EXPERTS]);
	T_EQ_INT(pm.expert_decode_bytes, e->groups_decode[PLAN_EXPERTS]);
	T_EQ_INT(pm.mapped_bytes, shard_sizes(e->dir));
	T_EQ_INT(pm.n_shards, 2);
	T_EQ_INT(pm.kv_token_bytes, e->kv_token);
	T_EQ_INT(pm.kv_bytes, e->kv_token * 512);
	T_EQ_INT(pm.state_bytes, e->state);
	T_EQ_INT(pm.snapshot_bytes, e->state); /* ctx_save keeps one full copy */
	T_EQ_INT(pm.ctx_bytes, pm.kv_bytes + pm.state_bytes + pm.snapshot_bytes + pm.scratch_bytes);

	/* ctx_plan counts what ctx_new allocates: the buffers ctx_bytes() counts, exactly,
	 * and the activation buffers apart; plan reports the same total. */
	ctx_plan(m, &co, &cp);
	T_EQ_INT(cp.qact, qact_total);
	T_EQ_INT(cp.total, pm.ctx_bytes);
	T_EQ_INT(cp.kv + cp.state + cp.snapshot + cp.scratch + cp.qact, cp.total);
	T_EQ_INT(cp.n_ctx, 512);
	T_EQ_INT(cp.n_batch, PLAN_N_BATCH);
	T_EQ_INT(cp.n_threads, 2);
	if ((c = ctx_new(m, &co, &cause)) != NULL) {
		T_EQ_INT(ctx_bytes(c) + cp.qact, cp.total);
		ctx_free(c);
	} else {
		T_ASSERT(0);
	}
	/* The float32 path keeps keys and values in float32: twice the KV cache. */
	co.f32 = true;
	ctx_plan(m, &co, &cp);
	T_EQ_INT(cp.kv, 2 * pm.kv_bytes);
	if ((c = ctx_new(m, &co, &cause)) != NULL) {
		T_EQ_INT(ctx_bytes(c) + cp.qact, cp.total);
		ctx_free(c);
	} else {
		T_ASSERT(0);
	}

	/* Default context. */
	T_EQ_INT(plan_model_init(&pm, m, 0, 2, &cause), 0);
	T_EQ_INT(pm.n_ctx, 40960);
	T_EQ_INT(pm.kv_bytes, e->kv_token * 40960);
	free(cause);
	model_close(m);
}

/* The real checkpoint's figures (docs/perf.md "Bytes per token"), an injected meminfo
 * of a 23.5 GiB machine, and a measured 38 GB/s and 1.5 GB/s disk. */
static void
test_compute(void)
{
	static const char meminfo[] = "MemTotal:       24683656 kB\n"
				      "MemFree:        14537124 kB\n"
				      "MemAvailable:   23190640 kB\n"
				      "SwapTotal:             0 kB\n"
				      "SwapFree:              0 kB\n";
	struct plan_model pm = { 0 };
	struct plan_machine mc = { 0 };
	struct plan_result r;
	struct sysinfo_mem mem;
	double avail = 23190640.0 * 1024, hot, frac, miss;

	pm.mapped_bytes = 43200000000ull;
	pm.decode_bytes = 3240000000ull;
	pm.expert_bytes = 40000000000ull;
	pm.expert_decode_bytes = 785000000ull;
	pm.ctx_bytes = 2200000000ull;
	pm.state_bytes = 79000000ull;
	pm.kv_bytes = 2000000000ull;
	sysinfo_parse_meminfo(meminfo, &mem);
	mc.mem_total = mem.total;
	mc.mem_available = mem.available;
	mc.read_all = 38;
	mc.disk_gbs = 1.5;
	plan_compute(&pm, &mc, &r);

	/* need = weights + context + 1 GiB > MemTotal: does not fit. */
	T_EQ_INT(r.need_bytes, 43200000000ull + 2200000000ull + 1073741824ull);
	T_EQ_INT(r.fit, PLAN_NO_FIT);
	/* In RAM: bandwidth / bytes per token; with a full context the state is read
	 * and written and all of K and V read too. */
	T_NEAR(r.tok_s, 38e9 / 3.24e9, 1e-9);
	T_NEAR(r.tok_s_ctx, 38e9 / (3.24e9 + 2 * 79e6 + 2e9), 1e-9);
	/* Disk-bound: RAM after context and overhead holds the 2.455 GB read every token,
	 * the rest a share of the 40 GB of experts; misses come from disk. */
	hot = 3.24e9 - 0.785e9;
	frac = (avail - 2.2e9 - 1073741824.0 - hot) / 40e9;
	miss = (1 - frac) * 0.785e9;
	T_EQ_INT(r.cache_bytes, (uint64_t)(avail - 2.2e9 - 1073741824.0));
	T_NEAR(r.expert_cached, frac, 1e-9);
	T_NEAR(r.expert_cached, 0.4505, 1e-3); /* docs/perf.md "Models larger than RAM" */
	T_NEAR((double)r.miss_bytes, miss, 1.0);
	T_NEAR(r.tok_s_disk, 1 / (3.24e9 / 38e9 + miss / 1.5e9), 1e-6);
	T_NEAR(r.tok_s_disk, 2.68, 0.01); /* docs/perf.md "Models larger than RAM" */
	T_ASSERT(!r.disk_assumed);
	/* The expert cache: the page cache keeps all but the experts and the embedding
	 * table (none in this made-up layout: 3.2 GB); the cache has what is left after
	 * the context and a reserve of 3 % of RAM; misses are read at the disk's speed. */
	{
		double total = (double)mem.total, resident = 43.2e9 - 40e9;
		double xb = avail - resident - 2.2e9 - total / 33, xfrac = xb / 40e9;
		double xmiss = (1 - xfrac) * 0.785e9;

		T_EQ_INT(r.xc_resident, 3200000000ull);
		T_NEAR((double)r.xc_bytes, xb, 2.0);
		T_NEAR(r.xc_cached, xfrac, 1e-9);
		T_NEAR((double)r.xc_miss_bytes, xmiss, 1.0);
		T_NEAR(r.xc_tok_s, 1 / (3.24e9 / 38e9 + xmiss / 1.5e9), 1e-6);
		/* Nothing left beside the every-token weights: no cache. */
		mc.mem_available = 4000000000ull;
		plan_compute(&pm, &mc, &r);
		T_EQ_INT(r.xc_bytes, 0);
		T_NEAR(r.xc_tok_s, 0, 0);
		mc.mem_available = mem.available;
	}

	/* Disk not measured: assumed 2 GB/s; bandwidth not measured: no in-RAM figure. */
	mc.disk_gbs = 0;
	mc.read_all = 0;
	plan_compute(&pm, &mc, &r);
	T_ASSERT(r.disk_assumed);
	T_NEAR(r.disk_gbs, 2.0, 0);
	T_NEAR(r.tok_s, 0, 0);
	T_NEAR(r.tok_s_disk, 1 / (miss / 2e9), 1e-6);

	/* A 64 GiB machine: fits; with only 30 GiB available: fits but busy. */
	sysinfo_parse_meminfo("MemTotal: 67108864 kB\nMemAvailable: 62914560 kB\n", &mem);
	mc.mem_total = mem.total;
	mc.mem_available = mem.available;
	mc.read_all = 80;
	plan_compute(&pm, &mc, &r);
	T_EQ_INT(r.fit, PLAN_FITS);
	T_NEAR(r.tok_s, 80e9 / 3.24e9, 1e-9);
	T_NEAR(r.tok_s_disk, 0, 0);
	sysinfo_parse_meminfo("MemTotal: 67108864 kB\nMemAvailable: 31457280 kB\n", &mem);
	mc.mem_available = mem.available;
	plan_compute(&pm, &mc, &r);
	T_EQ_INT(r.fit, PLAN_FITS_BUSY);
	T_ASSERT(r.tok_s_disk > 0 && r.tok_s_disk < r.tok_s);

	/* The boundary: exactly enough available fits, a byte less does not. */
	mc.mem_available = 43200000000ull + 2200000000ull + 1073741824ull;
	plan_compute(&pm, &mc, &r);
	T_EQ_INT(r.fit, PLAN_FITS);
	mc.mem_available--;
	plan_compute(&pm, &mc, &r);
	T_EQ_INT(r.fit, PLAN_FITS_BUSY);
	mc.mem_total = mc.mem_available;
	plan_compute(&pm, &mc, &r);
	T_EQ_INT(r.fit, PLAN_NO_FIT);

	/* So little RAM that even the per-token weights miss: every expert byte and the
	 * part of the rest that does not fit come from disk. */
	mc.mem_total = mc.mem_available = 2200000000ull + 1073741824ull + 1000000000ull;
	mc.disk_gbs = 2;
	plan_compute(&pm, &mc, &r);
	T_EQ_INT(r.cache_bytes, 1000000000ull);
	T_NEAR(r.expert_cached, 0, 0);
	T_EQ_INT(r.miss_bytes, 785000000ull + (2455000000ull - 1000000000ull));
}

static void
test_cpuinfo(void)
{
	struct hwinfo_cpu c;

	hwinfo_parse_cpuinfo("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
			     "model name\t: AMD EPYC 9R14 96-Core Processor\n"
			     "flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni fma "
			     "avx512vlx f16c avx512bw\n"
			     "processor\t: 1\nmodel name\t: other\n",
			     &c);
	T_EQ_INT(strcmp(c.name, "AMD EPYC 9R14 96-Core Processor"), 0);
	/* Whole words only (avx512vlx is not avx512vl), in qnext's order. */
	T_EQ_INT(strcmp(c.features, "avx2 fma f16c avx512f avx512bw avx512_vnni"), 0);
	hwinfo_parse_cpuinfo("", &c);
	T_EQ_INT(strcmp(c.name, "unknown"), 0);
	T_EQ_INT(strcmp(c.features, ""), 0);
	hwinfo_parse_cpuinfo("flags: amx_tile amx_int8 avx_vnni", &c);
	T_EQ_INT(strcmp(c.features, "avx_vnni amx_tile amx_int8"), 0);
	hwinfo_cpu(&c);
	T_ASSERT(c.n_cores >= 1 && c.n_cpus >= c.n_cores && c.kernels[0] != '\0');
}

static void
test_hw_json(void)
{
	char dir[] = "/tmp/test-plan-XXXXXX", *path, *cause = NULL, *s, *row;
	struct hwinfo r = { 0 }, back;
	struct plan_machine mc;
	json_t *j;
	FILE *f;

	T_ASSERT(mkdtemp(dir) != NULL);
	setenv("XDG_CACHE_HOME", dir, 1);
	path = hwinfo_cache_path();
	T_ASSERT(path != NULL && strncmp(path, dir, strlen(dir)) == 0);
	T_STR_CONTAINS(path, "/qnext/hw.json");
	T_EQ_INT(hwinfo_load(&back, &cause), -1); /* nothing measured yet */
	T_ASSERT(cause != NULL);

	snprintf(r.cpu.name, sizeof(r.cpu.name), "Test \"CPU\" | 9000");
	snprintf(r.cpu.features, sizeof(r.cpu.features), "avx2 fma f16c");
	snprintf(r.cpu.kernels, sizeof(r.cpu.kernels), "avx2");
	r.cpu.n_cores = 8;
	r.cpu.n_cpus = 16;
	r.mem_total = 68719476736ull;
	r.swap_total = 0;
	r.read_1t = 38.25;
	r.read_all = 67.5;
	r.n_threads = 8;
	snprintf(r.disk.path, sizeof(r.disk.path), "/models/x/model-00001-of-00009.safetensors");
	r.disk.bytes = 4294967296ull;
	r.disk.gbs = 3.125;
	r.disk.direct = true;
	r.when = 1790000000;
	T_EQ_INT(hwinfo_save(&r, &cause), 0);
	T_ASSERT(access(path, R_OK) == 0);
	T_EQ_INT(hwinfo_load(&back, &cause), 0);
	T_EQ_INT(strcmp(back.cpu.name, r.cpu.name), 0);
	T_EQ_INT(strcmp(back.cpu.features, r.cpu.features), 0);
	T_EQ_INT(strcmp(back.cpu.kernels, "avx2"), 0);
	T_EQ_INT(back.cpu.n_cores, 8);
	T_EQ_INT(back.cpu.n_cpus, 16);
	T_EQ_INT(back.mem_total, r.mem_total);
	T_NEAR(back.read_1t, 38.25, 0);
	T_NEAR(back.read_all, 67.5, 0);
	T_EQ_INT(back.n_threads, 8);
	T_EQ_INT(strcmp(back.disk.path, r.disk.path), 0);
	T_EQ_INT(back.disk.bytes, r.disk.bytes);
	T_NEAR(back.disk.gbs, 3.125, 0);
	T_ASSERT(back.disk.direct);
	T_EQ_INT(back.when, r.when);

	/* plan picks it up. */
	plan_machine_probe(NULL, &mc);
	T_ASSERT(mc.measured);
	T_NEAR(mc.read_all, 67.5, 0);
	T_NEAR(mc.disk_gbs, 3.125, 0);
	T_ASSERT(mc.mem_total > 0 && mc.cpu.n_cores >= 1);

	/* The JSON form parses and carries the figures. */
	s = hwinfo_json(&r);
	j = json_loads(s, 0, NULL);
	T_ASSERT(j != NULL);
	T_NEAR(json_number_value(json_object_get(j, "read_gbs_all")), 67.5, 0);
	T_EQ_INT(strcmp(json_string_value(json_object_get(json_object_get(j, "cpu"), "name")),
			r.cpu.name),
		 0);
	json_decref(j);
	free(s);

	row = benchhw_markdown(&r, 20.83, 0);
	T_EQ_INT(
		strcmp(row,
		       "| Test \"CPU\" / 9000 (8 cores, avx2) | 64 GiB | 38.2 / 67.5 | 20.8 | – |"),
		0);
	free(row);
	row = benchhw_markdown(&r, 0, 17.3);
	T_STR_CONTAINS(row, "| – | 17.3 |");
	free(row);

	/* A damaged file is "not measured", not a crash. */
	f = fopen(path, "w");
	T_ASSERT(f != NULL);
	fputs("{\"version\": 1, \"read_gbs_all\": \"fast\"", f);
	fclose(f);
	T_EQ_INT(hwinfo_load(&back, &cause), -1);
	plan_machine_probe(NULL, &mc);
	T_ASSERT(!mc.measured);
	f = fopen(path, "w");
	fputs("[1, 2]", f);
	fclose(f);
	T_EQ_INT(hwinfo_load(&back, &cause), -1);

	/* A relative XDG_CACHE_HOME is ignored (XDG spec): HOME is used. */
	setenv("XDG_CACHE_HOME", "relative", 1);
	setenv("HOME", "/home/u", 1);
	free(path);
	path = hwinfo_cache_path();
	T_EQ_INT(strcmp(path, "/home/u/.cache/qnext/hw.json"), 0);

	s = xasprintf("%s/qnext/hw.json", dir);
	unlink(s);
	*strrchr(s, '/') = '\0';
	rmdir(s);
	free(s);
	rmdir(dir);
	free(path);
	free(cause);
}

static void
test_plan_json(void)
{
	struct plan_model pm;
	struct plan_machine mc = { 0 };
	struct plan_result r;
	struct model *m;
	json_t *j, *g;
	char *s, *cause = NULL, *text = NULL;
	size_t len = 0;
	FILE *f;

	if ((m = model_open("share/tiny", &cause)) == NULL) {
		T_ASSERT(0);
		free(cause);
		return;
	}
	T_EQ_INT(plan_model_init(&pm, m, 4096, 2, &cause), 0);
	mc.mem_total = mc.mem_available = 1ull << 20; /* 1 MiB: does not fit */
	plan_compute(&pm, &mc, &r);
	s = plan_json("share/tiny", &pm, &mc, &r);
	j = json_loads(s, 0, NULL);
	T_ASSERT(j != NULL);
	T_EQ_INT(json_integer_value(json_object_get(j, "decode_bytes")), 2494726);
	T_EQ_INT(json_integer_value(json_object_get(j, "n_ctx")), 4096);
	T_EQ_INT(strcmp(json_string_value(json_object_get(j, "fit")), "no"), 0);
	T_ASSERT(json_is_false(json_object_get(j, "swap_needed")));
	T_ASSERT(json_is_null(json_object_get(j, "decode_tok_s"))); /* bandwidth not measured */
	T_ASSERT(json_is_object(json_object_get(j, "disk_bound")));
	T_ASSERT(json_is_true(
		json_object_get(json_object_get(j, "disk_bound"), "disk_gbs_assumed")));
	g = json_object_get(j, "groups");
	T_EQ_INT(json_array_size(g), 8); /* no dense MLP */
	T_EQ_INT(strcmp(json_string_value(json_object_get(json_array_get(g, 5), "formats")),
			"int8 g128 + bf16"),
		 0); /* DeltaNet: in_proj_ba is BF16 in tiny */
	json_decref(j);
	free(s);

	/* The text names the verdict, the swap advice and the missing measurement. */
	f = open_memstream(&text, &len);
	plan_write(f, "share/tiny", &pm, &mc, &r);
	fclose(f);
	T_STR_CONTAINS(text, "no swap setup is needed");
	T_STR_CONTAINS(text, "not measured: run qnext bench-hw");
	T_STR_CONTAINS(text, "int4 g128");
	free(text);
	model_close(m);
	free(cause);
	T_EQ_INT(plan_print("/nonexistent/model", 0, false), -1);
}

static void
test_measure(void)
{
	struct hwinfo_disk d;
	struct stat st;
	char *cause = NULL;
	const char *shard = "share/tiny/model-00001-of-00002.safetensors";

	/* Small buffer: the machinery, not the figure. */
	T_ASSERT(benchhw_stream_read((size_t)16 << 20, 2, 3) > 0);
	T_ASSERT(benchhw_stream_read((size_t)16 << 20, 1, 1) > 0);
	T_EQ_INT(benchhw_disk_read(shard, BENCHHW_DISK_MAX, &d, &cause), 0);
	T_ASSERT(stat(shard, &st) == 0);
	T_EQ_INT(d.bytes, st.st_size); /* smaller than the limit: the whole file */
	T_ASSERT(d.gbs > 0);
	T_EQ_INT(benchhw_disk_read(shard, 4096, &d, &cause), 0);
	T_EQ_INT(d.bytes, 4096);
	T_EQ_INT(benchhw_disk_read("/nonexistent/file", 4096, &d, &cause), -1);
	T_STR_CONTAINS(cause, "/nonexistent/file");
	free(cause);
}

int
main(void)
{
	struct expect e;

	expect_tiny(&e);
	/* Activation buffers (qa, qa2: widest input 1024 = intermediate_size, 256 tokens;
	 * qg: 256 inputs for 256 x top-4 rows; qm: 128 wide; qs: shared 128 wide). */
	test_model(&e, 2 * qact(1024, 256) + qact(256, 1024) + qact(128, 1024) + qact(128, 256));
	expect_small(&e);
	/* small: widest 1024 (intermediate_size), rows 256 x 6; expert width 64. */
	test_model(&e, 2 * qact(1024, 256) + qact(256, 1536) + qact(64, 1536) + qact(128, 256));
	test_compute();
	test_cpuinfo();
	test_hw_json();
	test_plan_json();
	test_measure();
	return t_done("test-plan");
}
