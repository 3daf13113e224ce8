/*
 * bench.c - `qnext bench -m DIR`: prefill and decode speed, with the
 * streaming-read bandwidth of this machine measured in the same run so the
 * decode figure can be read as a fraction of what the memory delivers.
 *
 * Each figure is the median of --reps runs.  Prompt tokens are random ids
 * (fixed seed): speed does not depend on the text.  Achieved weight GB/s =
 * decode tok/s x bytes of weights read per token (every non-expert matrix,
 * top-k experts, lm_head).  On a model that fits in the CPU caches (the
 * golden ones) that exceeds DRAM bandwidth; the ratio means something for
 * models larger than the last-level cache.
 *
 * CLI main thread only.
 */
#include "bench.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include "benchhw.h"
#include "forward.h"
#include "kernels.h"
#include "model.h"
#include "pool.h"
#include "safetensors.h"
#include "session.h"
#include "subcmd.h"
#include "sysinfo.h"
#include "util.h"
#include "xcache.h"

/* Who the option errors name. */
#define WHO "qnext bench"

struct bopts {
	const char *model;
	int prompt, gen, reps, threads;
	int context; /* synthetic positions added after the prompt (--context) */
	int kv_bits; /* --kv-bits: 0 (the path's default), 16 or 32 */
	bool f32, json, phases;
	uint64_t expert_cache; /* --expert-cache: XCACHE_AUTO, 0 = off, or bytes */
};

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct bresult {
	double prefill, decode, ttft, stream;
	double ready;                   /* session_open: model + tokenizer + context, seconds */
	double rss_anon;                /* bytes of anonymous memory (beyond the mapped weights) */
	double rss_peak;                /* peak resident set, bytes */
	struct ctx_profile pre;         /* the prompts of every run, by phase */
	struct ctx_profile dec;         /* the decode steps of every run, by phase */
	uint64_t kv_per_pos;            /* KV cache bytes per position */
	struct ctx_routing routing;     /* over every run */
	bool cached;                    /* an expert cache served the experts */
	struct xcache_stats xpre, xdec; /* its counters over the prompts / the decode steps */
	struct xcache_stats xend;       /* at the end */
};

/* Counters of b minus a, into d (the sizes are b's). */
static void
xstats_add_delta(struct xcache_stats *d, const struct xcache_stats *a, const struct xcache_stats *b)
{
	d->hits += b->hits - a->hits;
	d->late += b->late - a->late;
	d->misses += b->misses - a->misses;
	d->bytes_read += b->bytes_read - a->bytes_read;
	d->evictions += b->evictions - a->evictions;
	d->spec_issued += b->spec_issued - a->spec_issued;
	d->spec_used += b->spec_used - a->spec_used;
	d->predicted += b->predicted - a->predicted;
	d->predicted_ok += b->predicted_ok - a->predicted_ok;
	d->wait_s += b->wait_s - a->wait_s;
}

/* RssAnon from /proc/self/status: what the process holds beyond file pages. */
static double
rss_anon(void)
{
	char *s = read_file("/proc/self/status", NULL, NULL), *p;
	double kb = 0;

	if (s != NULL && (p = strstr(s, "RssAnon:")) != NULL)
		kb = atof(p + 8);
	free(s);
	return kb * 1024;
}

/* Time to ready as the chat sees it (tokenizer and model side by side, then
 * a context); 0 when the directory has no tokenizer. */
static double
time_ready(const struct bopts *o)
{
	struct session_opts so = { .dir = o->model,
				   .n_ctx = o->prompt + o->gen,
				   .n_threads = o->threads,
				   .f32 = o->f32,
				   .expert_cache = o->expert_cache };
	char *path = xasprintf("%s/tokenizer.json", o->model), *cause = NULL;
	FILE *f = fopen(path, "r");
	struct session *s;
	double t;

	free(path);
	if (f == NULL)
		return 0;
	fclose(f);
	t = now_sec();
	s = session_open(&so, &cause);
	t = now_sec() - t;
	free(cause);
	session_close(s);
	return s != NULL ? t : 0;
}

/*
 * Touch every page of the weights through the mapping before measuring, as
 * the chat's read-ahead does, so that the figures are the steady state:
 * otherwise each expert's first use pays its page faults inside the timed
 * decode (on a 64-expert model, enough to halve the experts' bandwidth in a
 * 24-token run).  Skipped when the weights do not fit in free memory.
 */
static void
touch_weights(const struct model *m)
{
	volatile unsigned char sink = 0;
	struct sysinfo_mem mem;
	uint64_t total = 0;

	for (int i = 0; i < st_shard_count(m->st); i++) {
		size_t len;

		st_shard_base(m->st, i, &len);
		total += len;
	}
	if (sysinfo_mem(&mem) != 0 || total > mem.available)
		return;
	for (int i = 0; i < st_shard_count(m->st); i++) {
		size_t len;
		const unsigned char *p = st_shard_base(m->st, i, &len);

		for (size_t k = 0; k < len; k += 4096)
			sink ^= p[k];
	}
	(void)sink;
}

static void
profile_add(struct ctx_profile *sum, const struct ctx_profile *p)
{
	for (int k = 0; k < FWD_PHASES; k++) {
		sum->seconds[k] += p->seconds[k];
		sum->bytes[k] += p->bytes[k];
	}
	sum->barriers += p->barriers;
	sum->tokens += p->tokens;
}

static int
bench_once(struct ctx *c, const struct bopts *o, const int32_t *ids, float *logits, double *pp,
	   double *tg, double *ttft, struct bresult *r, char **cause)
{
	struct ctx_profile p;
	struct xcache_stats x0, x1, x2;
	double t0, t1, t2, tp;

	ctx_cache_stats(c, &x0);
	ctx_reset(c);
	t0 = now_sec();
	if (ctx_forward(c, ids, o->prompt, logits, false, cause) != 0)
		return -1;
	t1 = now_sec();
	tp = t1 - t0;
	ctx_profile_take(c, &p);
	profile_add(&r->pre, &p);
	if (o->context > 0 && ctx_fill_synthetic(c, o->context, cause) != 0)
		return -1;
	ctx_profile_take(c, &p); /* the synthetic context's: not wanted */
	ctx_cache_stats(c, &x1);
	t1 = now_sec();
	for (int i = 0; i < o->gen; i++)
		if (ctx_forward(c, &ids[o->prompt + i], 1, logits, false, cause) != 0)
			return -1;
	t2 = now_sec();
	ctx_profile_take(c, &p);
	profile_add(&r->dec, &p);
	if ((r->cached = ctx_cache_stats(c, &x2))) {
		xstats_add_delta(&r->xpre, &x0, &x1);
		xstats_add_delta(&r->xdec, &x1, &x2);
		r->xend = x2;
	}
	*pp = o->prompt / tp;
	*tg = o->gen / (t2 - t1);
	*ttft = tp;
	return 0;
}

/* Share of demanded experts found in memory (a late prefetch counts as found). */
static double
hit_rate(const struct xcache_stats *x)
{
	uint64_t n = x->hits + x->late + x->misses;

	return n > 0 ? (double)(x->hits + x->late) / (double)n : 0;
}

static void
print_cache(const struct bopts *o, const struct bresult *r)
{
	const struct xcache_stats *d = &r->xdec, *e = &r->xend;
	double n_dec = (double)o->gen * o->reps, n_pre = (double)o->prompt * o->reps;

	printf("expert cache  %d of %d experts (%.2f GB) at the end, %d held; made for %d, "
	       "shrunk %llu times under memory pressure\n",
	       e->slots, e->experts, (double)e->slots * (double)e->slot_bytes / 1e9, e->used,
	       e->slots_max, (unsigned long long)e->shrinks);
	printf("  decode      %5.1f%% hits, %.1f MB read per token, %.0f ms per token waiting "
	       "for reads; next-layer guesses %.0f%% right, %.0f%% of guessed reads used\n",
	       100 * hit_rate(d), (double)d->bytes_read / n_dec / 1e6, 1e3 * d->wait_s / n_dec,
	       d->predicted ? 100.0 * (double)d->predicted_ok / (double)d->predicted : 0,
	       d->spec_issued ? 100.0 * (double)d->spec_used / (double)d->spec_issued : 0);
	printf("  prompt      %5.1f%% hits, %.1f MB read per token\n", 100 * hit_rate(&r->xpre),
	       (double)r->xpre.bytes_read / n_pre / 1e6);
}

static void
print_result(const struct bopts *o, const struct model *m, const struct bresult *r, const char *isa,
	     int threads)
{
	double gbs = r->decode * (double)m->decode_bytes / 1e9;

	if (o->json) {
		printf("{\"model\": \"%s\", \"kernels\": \"%s\", \"threads\": %d, \"f32\": %s, "
		       "\"prompt_tokens\": %d, \"context_tokens\": %d, \"gen_tokens\": %d, "
		       "\"prefill_tok_s\": %.2f, "
		       "\"decode_tok_s\": %.2f, \"ttft_s\": %.4f, \"bytes_per_token\": %llu, "
		       "\"weight_gb_s\": %.2f, \"stream_read_gb_s\": %.2f, \"ready_s\": %.3f, "
		       "\"rss_anon_bytes\": %.0f, \"rss_peak_bytes\": %.0f, "
		       "\"expert_cache_slots\": %d, \"decode_hit_rate\": %.4f, "
		       "\"decode_disk_bytes_per_token\": %.0f}\n",
		       o->model, isa, threads, o->f32 ? "true" : "false", o->prompt, o->context,
		       o->gen, r->prefill, r->decode, r->ttft, (unsigned long long)m->decode_bytes,
		       gbs, r->stream, r->ready, r->rss_anon, r->rss_peak,
		       r->cached ? r->xend.slots : 0, hit_rate(&r->xdec),
		       (double)r->xdec.bytes_read / ((double)o->gen * o->reps));
		return;
	}
	printf("kernels %s, %d threads, %s activations, median of %d runs\n", isa, threads,
	       o->f32 ? "float32" : "int8", o->reps);
	printf("stream read   %8.2f GB/s\n", r->stream);
	printf("prefill       %8.2f tok/s  (%d tokens, time to first token %.3f s)\n", r->prefill,
	       o->prompt, r->ttft);
	if (o->context > 0)
		printf("decode        %8.2f tok/s  (%d tokens after %d of context, %d of them "
		       "synthetic; %.1f MB of KV cache read per token at the end)\n",
		       r->decode, o->gen, o->prompt + o->context, o->context,
		       (double)r->kv_per_pos * (o->prompt + o->context + o->gen) / 1e6);
	else
		printf("decode        %8.2f tok/s  (%d tokens)\n", r->decode, o->gen);
	printf("weights read  %8.2f GB/s  (%.1f MB per token; %.0f%% of stream read)\n", gbs,
	       (double)m->decode_bytes / 1e6, r->stream > 0 ? 100 * gbs / r->stream : 0);
	if (o->context > 0) {
		/* The mean context length over the decoded tokens. */
		double kv = (double)r->kv_per_pos * (o->prompt + o->context + (o->gen - 1) / 2.0);
		double all = r->decode * ((double)m->decode_bytes + kv) / 1e9;

		printf("with KV cache %8.2f GB/s  (%.1f MB per token; %.0f%% of stream read)\n",
		       all, ((double)m->decode_bytes + kv) / 1e6,
		       r->stream > 0 ? 100 * all / r->stream : 0);
	}
	if (r->ready > 0)
		printf("ready         %8.3f s     (model and tokenizer opened, context made)\n",
		       r->ready);
	printf("memory        %8.1f MB anonymous beyond the mapped weights, peak RSS %.1f MB\n",
	       r->rss_anon / 1e6, r->rss_peak / 1e6);
	if (r->routing.choices > 0)
		printf("routing       %.1f%% of choices to each layer's most chosen 10%% of "
		       "experts, "
		       "%.1f%% shared with the token before; %llu of %llu experts chosen\n",
		       100 * r->routing.top10_share, 100 * r->routing.reuse,
		       (unsigned long long)r->routing.used, (unsigned long long)r->routing.experts);
	if (r->cached)
		print_cache(o, r);
}

/*
 * Where a decode step's time goes: per phase, milliseconds and weight bytes
 * per token, the bandwidth that phase achieves and its share of the stream
 * read measured in the same run.  A phase far below the stream read while
 * reading many bytes is where the bandwidth is lost.  For the prompt, which
 * is bound by arithmetic rather than by reading, the milliseconds per token
 * and shares only.
 */
static void
print_phases(const char *what, const struct ctx_profile *p, double stream, bool bandwidth)
{
	double n = p->tokens > 0 ? (double)p->tokens : 1, total = 0;

	for (int k = 0; k < FWD_PHASES; k++)
		total += p->seconds[k];
	printf("%s by phase (%llu tokens, %.2f parallel steps per token):\n", what,
	       (unsigned long long)p->tokens, (double)p->barriers / n);
	if (bandwidth)
		printf("  %-14s %9s %6s %10s %8s %7s\n", "phase", "ms/token", "share", "MB/token",
		       "GB/s", "stream");
	else
		printf("  %-14s %9s %6s\n", "phase", "ms/token", "share");
	for (int k = 0; k < FWD_PHASES; k++) {
		double gbs = p->seconds[k] > 0 ? (double)p->bytes[k] / p->seconds[k] / 1e9 : 0;

		if (p->seconds[k] == 0 && p->bytes[k] == 0)
			continue;
		printf("  %-14s %9.2f %5.1f%%", ctx_phase_name(k), 1e3 * p->seconds[k] / n,
		       total > 0 ? 100 * p->seconds[k] / total : 0);
		if (bandwidth)
			printf(" %10.1f %8.2f %6.0f%%", (double)p->bytes[k] / n / 1e6, gbs,
			       stream > 0 ? 100 * gbs / stream : 0);
		printf("\n");
	}
}

static int
bench_run(const struct bopts *o)
{
	struct ctx_opts co = { .n_ctx = o->prompt + o->context + o->gen,
			       .n_batch = MIN(o->prompt, 512),
			       .n_threads = o->threads,
			       .f32 = o->f32,
			       .kv_bits = o->kv_bits,
			       .expert_cache = o->expert_cache };
	struct model *m = NULL;
	struct ctx *c = NULL;
	struct bresult r = { 0 };
	double pp[64], tg[64], tt[64], tg_run[64], tt_run[64];
	int32_t *ids = NULL;
	float *logits = NULL;
	char *cause = NULL, *desc;
	int rc = 1, threads = o->threads > 0 ? o->threads : pool_default_threads();

	r.ready = time_ready(o);
	if ((m = model_open(o->model, &cause)) == NULL || (c = ctx_new(m, &co, &cause)) == NULL)
		goto out;
	r.kv_per_pos = ctx_kv_bytes_per_pos(c);
	ids = xmalloc((size_t)(o->prompt + o->gen) * sizeof(int32_t));
	srand(1234);
	for (int i = 0; i < o->prompt + o->gen; i++)
		ids[i] = rand() % m->cfg.vocab_size;
	logits = xmalloc((size_t)m->cfg.vocab_size * sizeof(float));
	if (!o->json) {
		desc = model_describe(m);
		printf("model: %s\n", desc);
		free(desc);
	}
	touch_weights(m);
	r.stream = benchhw_stream_read(BENCHHW_STREAM_BYTES, threads, 5);
	for (int i = 0; i < o->reps; i++)
		if (bench_once(c, o, ids, logits, &pp[i], &tg[i], &tt[i], &r, &cause) != 0)
			goto out;
	memcpy(tg_run, tg, sizeof(tg));
	memcpy(tt_run, tt, sizeof(tt));
	r.prefill = median(pp, o->reps); /* (sorts its array) */
	r.decode = median(tg, o->reps);
	r.ttft = median(tt, o->reps);
	ctx_routing(c, &r.routing);
	r.rss_anon = rss_anon();
	{
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		r.rss_peak = (double)ru.ru_maxrss * 1024;
	}
	print_result(o, m, &r, kernels_get()->name, threads);
	if (!o->json && o->reps > 1) {
		/* In run order: with an expert cache or a cold page cache the first is the cold
		 * one. */
		printf("by run        decode");
		for (int i = 0; i < o->reps; i++)
			printf(" %.2f", tg_run[i]);
		printf(" tok/s; time to first token");
		for (int i = 0; i < o->reps; i++)
			printf(" %.2f", tt_run[i]);
		printf(" s\n");
	}
	if (o->phases && !o->json) {
		if (o->prompt > 1)
			print_phases("prompt", &r.pre, r.stream, false);
		print_phases("decode step", &r.dec, r.stream, true);
	}
	rc = 0;
out:
	if (cause != NULL)
		fprintf(stderr, "qnext bench: %s\n", cause);
	free(cause);
	free(ids);
	free(logits);
	ctx_free(c);
	model_close(m);
	return rc;
}

static void
usage(FILE *f)
{
	subcmd_usage(f, "bench");
}

int
bench_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "gen", required_argument, NULL, 'n' },
		{ "reps", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 'j' },
		{ "f32", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "phases", no_argument, NULL, 'P' },
		{ "context", required_argument, NULL, 'c' },
		{ "kv-bits", required_argument, NULL, 'K' },
		{ "expert-cache", required_argument, NULL, 'X' },
		{ NULL, 0, NULL, 0 },
	};
	struct bopts o = { .prompt = 512, .gen = 128, .reps = 5, .expert_cache = XCACHE_AUTO };
	char *cause = NULL;
	int ch, rc = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "m:p:n:r:j:fJh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			o.model = optarg;
			break;
		case 'p':
			rc = arg_int(WHO, "--prompt", optarg, 1, 1 << 24, &o.prompt);
			break;
		case 'n':
			rc = arg_int(WHO, "--gen", optarg, 1, 1 << 24, &o.gen);
			break;
		case 'r':
			rc = arg_int(WHO, "--reps", optarg, 1, 64, &o.reps);
			break;
		case 'j':
			rc = arg_int(WHO, "--threads", optarg, 1, 1024, &o.threads);
			break;
		case 'f':
			o.f32 = true;
			break;
		case 'J':
			o.json = true;
			break;
		case 'P':
			o.phases = true;
			break;
		case 'c':
			rc = arg_int(WHO, "--context", optarg, 0, 1 << 20, &o.context);
			break;
		case 'K':
			rc = arg_int(WHO, "--kv-bits", optarg, 16, 32, &o.kv_bits);
			break;
		case 'X':
			if ((rc = xcache_parse(optarg, &o.expert_cache, &cause)) != 0) {
				fprintf(stderr, WHO ": %s\n", cause);
				free(cause);
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (rc != 0)
			return 2;
	}
	if (o.model == NULL || optind != argc || o.prompt < 1 || o.gen < 1 || o.reps < 1 ||
	    o.reps > 64 || o.context < 0 || o.context > 1 << 20 ||
	    (o.kv_bits != 0 && o.kv_bits != 16 && o.kv_bits != 32)) {
		usage(stderr);
		return 2;
	}
	return bench_run(&o);
}
