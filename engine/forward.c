/*
 * forward.c - the Qwen3-Next forward pass (docs/model-format.md "Forward pass").
 *
 * DESIGN: tokens are processed in steps of up to n_batch tokens.  Each step
 * runs the decoder layers over all its tokens at once, so every weight matrix
 * is streamed once per step: projections are matrix x batch products, the
 * MoE block groups the step's tokens by expert, the DeltaNet recurrence walks
 * the tokens in order with each head's state kept in cache, and attention
 * reads the KV cache.  Decode is the same code with a batch of one.
 *
 * Parallel work goes through the pool as "steps", each ended by one barrier
 * (pool.h): a list of independent matrix products, cut into chunks of output
 * rows of about CHUNK_BYTES of weights each, or a loop over heads with one
 * head (or head group) per chunk.  Chunks are claimed by whichever worker is
 * free, so a worker the OS has descheduled does not hold up the others.
 * Products that do not depend on each other share a step even when they
 * belong to different parts of the layer (the router and the shared
 * expert's gate/up; the experts' down and the shared down), and a DeltaNet
 * layer's conv, norms, gates and recurrence run as one step per key head, so
 * a decoded token costs 6 steps per layer.  Small sequential glue (norms,
 * routing, gathering) runs on the owner thread between steps.
 *
 * With an expert cache (ctx_opts.expert_cache, xcache.h; for models larger
 * than RAM) the routed experts' matrices come from the cache rather than
 * the mapping: moe_experts_cached pins the chosen ones, computes them as
 * their reads land, and starts the next layer's likely reads (guess_next).
 * The arithmetic is the same, so the logits are bit for bit the same.
 *
 * Numerics: residual stream, norms, softmax, rotary, conv and delta-rule
 * state are float32.  Matrix products use float32 activations on the
 * reference path (ctx_opts.f32) and int8 activations per 32-block for
 * quantized weights otherwise.
 *
 * Thread affinity: the context's owner thread; workers only run the chunk
 * functions below, on disjoint outputs.
 */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model.h"
#include "ops.h"
#include "pool.h"
#include "safetensors.h"
#include "thread-role.h"
#include "util.h"
#include "xcache.h"

/* What a step says when a shard lost pages under it (st_changed). */
#define MODEL_CHANGED "the model file changed or shrank while in use; restart qnext to reload it"

/* Prompt tokens per step at least when the expert cache serves the experts. */
#define XCACHE_BATCH 1024

/* Matrix products per step at most (experts x 2 + router + shared x 3 in the MoE). */
#define MAX_JOBS 1100

/*
 * How products are cut into chunks (job_rows).  A chunk is a range of output
 * rows over all inputs.  In the GPTQ layout that is a segment of 4 bytes per
 * output from every packed row of qweight, and short segments stream badly
 * from DRAM (measured on the 64-expert model, one thread, int8 2048 x 12288:
 * 2.5-4 GB/s at 128-256 B segments, 7-8 at 4 KiB, 9 at 8 KiB, 12-13 at
 * 16 KiB and more), so a decode chunk keeps segments of at least SEG_BYTES.
 * 8 KiB rather than 16 so that the biggest decode steps still have enough
 * chunks to share (in_proj_qkvz: 6 of 4 MiB rather than 3 of 8); decode at
 * 2 threads beside other work measured 4 KiB <= 8 KiB ~ 16 KiB, all far
 * above chunks of 64 KiB of weights, which cut int8 matrices into 32-row
 * strips (0.7 tok/s, where 8 KiB segments gave 1.9-2.9 in the same hour).
 * With more tokens each weight feeds more work and segments may shrink in
 * proportion, down to MIN_ROWS outputs: prefill of 128 tokens at 2 threads,
 * two interleaved rounds, measured 24 and 35 tok/s with 32-row chunks, 26
 * and 42 with 128, 28 and 47 with 512 (1024: as 512; the static split
 * before: 25 and 25).  Float weights are row-major: any rows are one stream,
 * and a chunk is about CHUNK_BYTES.
 */
#define SEG_BYTES   (8 << 10)
#define MIN_ROWS    512
#define CHUNK_BYTES (64 << 10)

struct mm_job {
	const struct qmat *W;
	const float *X;       /* [n_tok][W->n_in] (float path) */
	const struct qact *A; /* quantized X (int8 path), or NULL */
	int n_tok;
	float *Y; /* [n_tok][ldy] */
	int ldy;
	enum fwd_phase phase; /* charged with its share of the step's time */
	int c0;               /* first chunk of the job in its step */
	int rows;             /* output rows per chunk (the last may be short) */
};

/* One Gated DeltaNet layer's recurrent state. */
struct gdn_state {
	float *conv; /* [conv_kernel - 1][conv_dim] last raw conv inputs, oldest first */
	float *S;    /* [Hv][dv][dk] delta-rule state, one dk-row per value channel */
};

struct ctx {
	const struct model *m;
	const struct kernels *k;
	struct pool *pool;
	struct ctx_opts o;
	int pos;
	uint64_t bytes;   /* ctx_alloc'd so far: ctx_bytes() */
	uint64_t q_bytes; /* qact buffers made so far (not in bytes) */
	bool plan_only;   /* ctx_plan: count the buffers, allocate nothing */

	/* Per-step activations, [n_batch][...]. */
	float *x;        /* [B][dim] residual stream */
	float *h;        /* [B][dim] normed input of a block */
	float *y;        /* [B][dim] block output */
	float *big1;     /* [B][big] projection outputs (qkvz, q+gate) */
	float *big2;     /* [B][big] conv output / attention output */
	float *mid;      /* [B][mid] small projections (ba, k, v) */
	float *zbuf;     /* [B][value_dim] DeltaNet output gate z */
	struct qact qa;  /* quantized h (or any block input) */
	struct qact qa2; /* quantized second-stage inputs */

	/* Full attention. */
	/* [n_full][n_kv][n_ctx][head_dim]: float (reference path) or IEEE half
	 * (int8 path by default: half the bytes a long context reads; ctx_opts.kv_bits). */
	float *kc, *vc;
	uint16_t *kh, *vh;
	bool kv16;
	float *scores;    /* [n_threads][heads per KV head][n_ctx] per-worker softmax rows */
	double *inv_freq; /* [rotary_dim / 2] */

	/* DeltaNet. */
	struct gdn_state *gdn; /* [n_layers] (used for DeltaNet layers) */
	float *gb;             /* [B][Hv] beta, then [B][Hv] g */

	/* MoE. */
	float *router;      /* [B][n_experts] logits -> probabilities */
	int *sel;           /* [B][top_k] chosen experts */
	float *selw;        /* [B][top_k] their weights */
	int *cnt;           /* [n_experts] assignments per expert */
	int *off;           /* [n_experts + 1] start of each expert's slice */
	int *slot_tok;      /* [B * top_k] token of each slice row */
	int *tok_row;       /* [B][top_k] slice row of each choice (sorted per token) */
	float *slot_w;      /* [B * top_k] routing weight of each slice row */
	float *gx;          /* [B * top_k][dim] gathered inputs */
	float *g1, *g2;     /* [B * top_k][inter] gate and up outputs */
	float *gy;          /* [B * top_k][dim] expert outputs */
	float *sh1, *sh2;   /* [B][shared_inter] */
	float *shy;         /* [B][dim] */
	float *shr;         /* [B] shared expert gate logit */
	struct qact qg;     /* quantized gx rows */
	struct qact qm;     /* quantized intermediate rows */
	struct qact qs;     /* quantized shared intermediate */
	struct qact *views; /* [2][n_experts] per-expert row views of qg and qm */

	/* Expert cache (ctx_opts.expert_cache): NULL when the mapping serves the experts. */
	struct xcache *xc;
	int *need;              /* [n_experts] experts the step's tokens chose, in index order */
	int *xh;                /* [n_experts] their pin handles */
	const struct qmat **xq; /* [n_experts] their gate, up, down once read */
	float *spec_logits;     /* [n_experts] the next layer's router on this layer's input */
	int *spec, spec_n;      /* [n_experts] the next layer's experts to read ahead */
	char *io_err;           /* a read failed: ctx_forward's cause */

	/* How routing went (ctx_routing): choices per expert, and the experts the last
	 * token chose, for the share that the next token chooses again. */
	uint64_t *route_n; /* [n_layers][n_experts] */
	int *route_prev;   /* [n_layers][top_k], -1 before the first token */
	uint64_t route_same, route_pairs;

	/* Per-worker scratch, [n_threads][64 * max_in]: the BLAS fallback's
	 * dequantized tiles, or a DeltaNet head's output row (tmp_of). */
	float *thr_tmp;
	int max_in;

	/* Jobs of the current step. */
	struct mm_job jobs[MAX_JOBS];
	int n_jobs;
	uint64_t job_bytes; /* their weights */

	/* Snapshot of every DeltaNet layer's conv and recurrent state. */
	float *snap;  /* [n_gdn_layers][conv + S] */
	int snap_pos; /* -1: none */

	float *capture; /* [n_layers + 1][capture_n][dim] or NULL */
	int capture_n, capture_at;

	/* Asked between layers whether to give up (ctx_set_abort). */
	bool (*abort_fn)(void *);
	void *abort_arg;
	bool aborting; /* the current ctx_forward was told to stop */
	bool torn;     /* a step was abandoned half-way: the state is not usable */

	/* Time and bytes by phase (ctx_profile_take). */
	struct ctx_profile prof;
	enum fwd_phase phase;
	double phase_t; /* when the current phase began */
};

/* ---- profile ------------------------------------------------------------ */

/* Charge the time since the last switch to the current phase, then enter p. */
static void
phase(struct ctx *c, enum fwd_phase p)
{
	double t = now_sec();

	c->prof.seconds[c->phase] += t - c->phase_t;
	c->phase_t = t;
	c->phase = p;
}

/* A parallel step of n_chunks chunks, ended by one barrier. */
static void
pool_step(struct ctx *c, pool_fn *fn, void *arg, int n_chunks)
{
	c->prof.barriers++;
	pool_run(c->pool, fn, arg, n_chunks);
}

const char *
ctx_phase_name(enum fwd_phase p)
{
	static const char *const names[FWD_PHASES] = {
		[FWD_GLUE] = "glue",     [FWD_ATTN] = "attention",  [FWD_GDN] = "deltanet",
		[FWD_ROUTER] = "router", [FWD_EXPERTS] = "experts", [FWD_SHARED] = "shared expert",
		[FWD_MLP] = "dense mlp", [FWD_HEAD] = "lm_head",
	};

	return (unsigned)p < FWD_PHASES ? names[p] : "?";
}

void
ctx_profile_take(struct ctx *c, struct ctx_profile *p)
{
	*p = c->prof;
	memset(&c->prof, 0, sizeof(c->prof));
}

/* ---- matrix products through the pool -------------------------------- */

static bool
use_q8(const struct ctx *c, const struct qmat *W)
{
	return !c->o.f32 && W->fmt == WFMT_GPTQ && qmat_q8_ok(W);
}

/* A, or NULL when the product `part` (FLOAT_*) keeps float activations. */
static const struct qact *
act_for(const struct ctx *c, unsigned part, const struct qact *A)
{
	return c->o.float_parts & part ? NULL : A;
}

/* Queue Y = W X for the next run_jobs(), charged to the current phase.  A may be NULL
 * (float path).  Jobs of one step must not read what another writes. */
static void
add_job(struct ctx *c, const struct qmat *W, const float *X, const struct qact *A, int n_tok,
	float *Y, int ldy)
{
	struct mm_job *j;
	uint64_t bytes = qmat_bytes(W);

	if (c->n_jobs == MAX_JOBS)
		fatal("forward: too many matrix products in one step");
	j = &c->jobs[c->n_jobs++];
	c->prof.bytes[c->phase] += bytes;
	c->job_bytes += bytes;
	j->W = W;
	j->X = X;
	j->A = use_q8(c, W) ? A : NULL;
	j->n_tok = n_tok;
	j->Y = Y;
	j->ldy = ldy;
	j->phase = c->phase;
}

/* Worker w's scratch: 64 * max_in floats. */
static float *
tmp_of(struct ctx *c, int worker)
{
	return c->thr_tmp + (size_t)worker * 64 * c->max_in;
}

static bool
job_blas(const struct mm_job *j)
{
	return j->A == NULL && j->n_tok >= 64 && j->W->fmt == WFMT_GPTQ;
}

/*
 * Output rows per chunk (see SEG_BYTES), on multiples of 32 rows (the
 * kernels' fastest unit; 64 for the BLAS fallback's tiles, 16 for matrices
 * of fewer than 64 rows).  A small matrix is one chunk, and so is every
 * matrix when the pool has one thread: there is nobody to share with.
 */
static int
job_rows(const struct ctx *c, const struct mm_job *j)
{
	int n_out = j->W->n_out, align = job_blas(j) ? 64 : n_out < 64 ? 16 : 32;
	uint64_t min_rows, pieces;
	int rows;

	if (pool_size(c->pool) == 1)
		return n_out;
	if (j->W->fmt == WFMT_GPTQ)
		min_rows = MAX(SEG_BYTES / 4 / (uint64_t)j->n_tok, MIN_ROWS);
	else
		min_rows = CHUNK_BYTES / MAX(qmat_bytes(j->W) / (uint64_t)n_out, 1);
	min_rows = (MAX(min_rows, 1) + (uint64_t)align - 1) / (uint64_t)align * (uint64_t)align;
	pieces = (uint64_t)n_out / min_rows;
	if (pieces <= 1)
		return n_out;
	rows = (int)(((uint64_t)n_out + pieces - 1) / pieces);
	return (rows + align - 1) / align * align;
}

static void
job_range(struct ctx *c, const struct mm_job *j, int b, int e, int worker)
{
	if (j->A != NULL) {
		/* The worker's tmp row is free during a product: the kernel may keep
		 * a chunk's partial sums there (packed, away from Y's strides). */
		kernels_use_y_scratch(tmp_of(c, worker), (size_t)64 * c->max_in * sizeof(float));
		c->k->matmul_q8(j->W, j->A, j->Y, j->ldy, b, e);
		kernels_use_y_scratch(NULL, 0);
	} else if (job_blas(j))
		kernels_matmul_blas(j->W, j->X, j->n_tok, j->Y, j->ldy, b, e, tmp_of(c, worker));
	else
		c->k->matmul_f32(j->W, j->X, j->n_tok, j->Y, j->ldy, b, e);
}

/* Chunk k of the step: find its job (the last with c0 <= k) and run its rows. */
static void
job_chunk(void *arg, int k, int worker)
{
	struct ctx *c = arg;
	int lo = 0, hi = c->n_jobs - 1;
	const struct mm_job *j;
	int b;

	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;

		if (c->jobs[mid].c0 <= k)
			lo = mid;
		else
			hi = mid - 1;
	}
	j = &c->jobs[lo];
	b = (k - j->c0) * j->rows;
	job_range(c, j, b, MIN(b + j->rows, j->W->n_out), worker);
}

/*
 * Run the queued products as one step, their chunks numbered in the order
 * the jobs were queued.  The pool hands chunks out in that order, so callers
 * queue the biggest products first: the last chunks, which a worker that
 * comes late may still take, are then the small ones.  The step's time goes
 * to the phases of its jobs in proportion to their weights, so a step shared
 * by two parts of the layer (router and shared expert) still shows both in
 * `bench --phases`.
 */
static void
run_jobs(struct ctx *c)
{
	int n_chunks = 0;
	double t0, dt;

	if (c->n_jobs == 0)
		return;
	for (int i = 0; i < c->n_jobs; i++) {
		struct mm_job *j = &c->jobs[i];

		j->c0 = n_chunks;
		j->rows = job_rows(c, j);
		n_chunks += (j->W->n_out + j->rows - 1) / j->rows;
	}
	t0 = now_sec();
	c->prof.seconds[c->phase] += t0 - c->phase_t;
	pool_step(c, job_chunk, c, n_chunks);
	c->phase_t = now_sec();
	dt = c->phase_t - t0;
	for (int i = 0; i < c->n_jobs; i++) {
		double share = c->job_bytes > 0
				       ? (double)qmat_bytes(c->jobs[i].W) / (double)c->job_bytes
				       : 1.0 / c->n_jobs;

		c->prof.seconds[c->jobs[i].phase] += dt * share;
	}
	c->n_jobs = 0;
	c->job_bytes = 0;
}

/*
 * Row-parallel glue.  A prompt step's work between the products (quantizing
 * activations, gathering the experts' inputs, SwiGLU, combining the experts'
 * outputs) is per row; done on the calling thread alone it left the other
 * workers idle (the glue phase alone took 1.7-2.1 ms per prompt token with
 * 2 threads, no less than with 1).  So a step of many rows is
 * cut into about four chunks per thread and run in the pool; a short one
 * (decode) stays on the calling thread, where a barrier would cost more.
 * Every row gets the same operations either way.
 */
#define GLUE_MIN_ROWS 8

struct rows_step {
	struct ctx *c;
	void (*fn)(const struct rows_step *s, int r0, int r1);
	int n_rows, per;
	int n;                         /* floats per row */
	const float *X;                /* quantize: input; swiglu: up */
	float *Y;                      /* swiglu: gate, in place */
	struct qact *A;                /* quantize, gather: output */
	const struct qact *src;        /* gather: quantized token rows */
	const struct layer_moe *moe;   /* combine */
	const struct layer_attn *attn; /* attention: norm, rotary, KV rows */
	const float *w;                /* norm: weights */
	int slot;                      /* attention: the layer's KV cache slot */
};

static void
rows_chunk(void *arg, int k, int worker)
{
	const struct rows_step *s = arg;
	int r0 = k * s->per;

	(void)worker;
	s->fn(s, r0, MIN(r0 + s->per, s->n_rows));
}

static void
rows_run(struct ctx *c, struct rows_step *s)
{
	int th = pool_size(c->pool);

	if (th == 1 || s->n_rows < 2 * GLUE_MIN_ROWS) {
		s->fn(s, 0, s->n_rows);
		return;
	}
	s->per = MAX(GLUE_MIN_ROWS, (s->n_rows + 4 * th - 1) / (4 * th));
	pool_step(c, rows_chunk, s, (s->n_rows + s->per - 1) / s->per);
}

/* A view of rows [t0, t0 + n_tok) of a quantized batch (kernels.h layout). */
static struct qact
qact_rows(const struct qact *A, int t0, int n_tok)
{
	struct qact v = *A;
	size_t row = (size_t)A->n_blk * QK;

	v.q = A->q + (size_t)t0 * row;
	v.qp = A->qp + (size_t)t0 * row;
	v.d = A->d + (size_t)t0 * A->n_blk;
	v.sum = A->sum + (size_t)t0 * A->n_blk;
	v.n_tok = n_tok;
	return v;
}

/* The shape quantize_act gives a batch of n_tok rows of n inputs, set ahead of the rows. */
static void
qact_shape(struct qact *A, int n, int n_tok)
{
	A->n = n;
	A->n_tok = n_tok;
	A->n_blk = (n + QK - 1) / QK;
}

static void
quantize_rows(const struct rows_step *s, int r0, int r1)
{
	struct qact v = qact_rows(s->A, r0, r1 - r0);

	s->c->k->quantize_act(s->X + (size_t)r0 * s->n, r1 - r0, s->n, &v);
}

/* Quantize X [n_tok][n] into A when any product on the int8 path will need it. */
static const struct qact *
quantize(struct ctx *c, struct qact *A, const float *X, int n_tok, int n)
{
	struct rows_step s = {
		.c = c, .fn = quantize_rows, .n_rows = n_tok, .n = n, .X = X, .A = A
	};

	if (c->o.f32)
		return NULL;
	qact_shape(A, n, n_tok);
	rows_run(c, &s);
	return A;
}

/*
 * Ask the caller whether to give up.  Once told yes, stay stopped without
 * asking again: a poll that consumes a cancel message says yes only once.
 */
static bool
stopping(struct ctx *c)
{
	if (!c->aborting && c->abort_fn != NULL)
		c->aborting = c->abort_fn(c->abort_arg);
	return c->aborting;
}

/* ---- gated attention (docs/model-format.md "Gated attention") ---------- */

/* Norm + rotary for q and k of token t; store k, v into the cache. */
static void
attn_prepare(struct ctx *c, const struct layer_attn *a, int slot, int t, int n_tok)
{
	const struct model_config *cfg = &c->m->cfg;
	int hd = cfg->head_dim, nkv = cfg->n_kv_heads, qd = cfg->n_heads * hd;
	int pos = c->pos + t;
	float *qg = c->big1 + (size_t)t * 2 * qd;
	float *kk = c->mid + (size_t)t * 2 * nkv * hd, *vv = kk + nkv * hd;

	(void)n_tok;
	for (int h = 0; h < cfg->n_heads; h++) {
		float *q = qg + (size_t)h * 2 * hd;

		ops_rmsnorm_zc(q, q, a->q_norm, hd, cfg->rms_eps);
		ops_rope(q, cfg->rotary_dim, pos, c->inv_freq);
	}
	for (int h = 0; h < nkv; h++) {
		size_t at = (((size_t)slot * nkv + h) * c->o.n_ctx + pos) * hd;
		float *k = kk + h * hd;

		ops_rmsnorm_zc(k, k, a->k_norm, hd, cfg->rms_eps);
		ops_rope(k, cfg->rotary_dim, pos, c->inv_freq);
		if (c->kv16) {
			c->k->to_half(c->kh + at, k, hd);
			c->k->to_half(c->vh + at, vv + h * hd, hd);
		} else {
			memcpy(c->kc + at, k, (size_t)hd * sizeof(float));
			memcpy(c->vc + at, vv + h * hd, (size_t)hd * sizeof(float));
		}
	}
}

static void
attn_prepare_rows(const struct rows_step *s, int t0, int t1)
{
	for (int t = t0; t < t1; t++)
		attn_prepare(s->c, s->attn, s->slot, t, s->n_rows);
}

struct attn_step {
	struct ctx *c;
	int slot, n_tok;
	int n_sub; /* chunks per (token, KV head) */
};

/*
 * Query heads [h0, h1) of token t, which share KV head kvh:
 * softmax(q K^T / sqrt(hd)) V, times sigmoid(gate).  Positions are the outer
 * loop, so each key and value row is read from memory once for all the
 * heads of the group (GQA: 8 query heads per KV head in the model), and
 * stays in L1 while every head uses it; on the 16-bit cache scores_h and
 * mix_h also convert each row from half once for several heads (decode at
 * 32k positions was compute-bound on that conversion).  sc: [h1 - h0][n_ctx].
 */
static void
attn_group(struct ctx *c, int slot, int t, int kvh, int h0, int h1, float *sc)
{
	const struct model_config *cfg = &c->m->cfg;
	int hd = cfg->head_dim, nkv = cfg->n_kv_heads, qd = cfg->n_heads * hd;
	int n_pos = c->pos + t + 1, ng = h1 - h0;
	size_t base = ((size_t)slot * nkv + kvh) * c->o.n_ctx * hd, ld = (size_t)c->o.n_ctx;
	const float *q0 = c->big1 + (size_t)t * 2 * qd;
	float *o0 = c->big2 + (size_t)t * qd;
	float scale = 1.0f / sqrtf((float)hd);

	if (c->kv16)
		c->k->scores_h(q0 + (size_t)h0 * 2 * hd, 2 * hd, ng, c->kh + base, n_pos, hd, scale,
			       sc, ld);
	else
		for (int s = 0; s < n_pos; s++)
			for (int g = 0; g < ng; g++)
				sc[g * ld + s] =
					scale * c->k->dot(q0 + (size_t)(h0 + g) * 2 * hd,
							  c->kc + base + (size_t)s * hd, hd);
	for (int g = 0; g < ng; g++) {
		float *p = sc + g * ld, mx = -INFINITY;
		double sum = 0;

		for (int s = 0; s < n_pos; s++)
			mx = p[s] > mx ? p[s] : mx;
		for (int s = 0; s < n_pos; s++) {
			p[s] = expf(p[s] - mx);
			sum += p[s];
		}
		c->k->scale(p, (float)(1.0 / sum), n_pos);
		memset(o0 + (size_t)(h0 + g) * hd, 0, (size_t)hd * sizeof(float));
	}
	if (c->kv16)
		c->k->mix_h(o0 + (size_t)h0 * hd, hd, ng, sc, ld, c->vh + base, n_pos, hd);
	else
		for (int s = 0; s < n_pos; s++)
			for (int g = 0; g < ng; g++)
				c->k->axpy(o0 + (size_t)(h0 + g) * hd, sc[g * ld + s],
					   c->vc + base + (size_t)s * hd, hd);
	for (int g = 0; g < ng; g++) {
		const float *gate = q0 + (size_t)(h0 + g) * 2 * hd + hd;
		float *o = o0 + (size_t)(h0 + g) * hd;

		for (int i = 0; i < hd; i++)
			o[i] *= ops_sigmoid(gate[i]);
	}
}

/*
 * Query heads per chunk: a whole GQA group (each KV row read once) unless
 * that leaves workers idle, then the group split into n_sub parts.
 */
static int
attn_sub(const struct ctx *c, int n_tok)
{
	int per = c->m->cfg.n_heads / c->m->cfg.n_kv_heads;
	int units = n_tok * c->m->cfg.n_kv_heads, n_sub = 1;

	while (n_sub < per && units * n_sub < pool_size(c->pool))
		n_sub *= 2;
	while (per % n_sub != 0)
		n_sub--;
	return n_sub;
}

/* Chunk i: token, KV head and part of its query heads (attn_sub). */
static void
attn_chunk(void *arg, int i, int worker)
{
	struct attn_step *st = arg;
	struct ctx *c = st->c;
	int nkv = c->m->cfg.n_kv_heads, per = c->m->cfg.n_heads / nkv, part = per / st->n_sub;
	int sub = i % st->n_sub, kvh = i / st->n_sub % nkv, t = i / st->n_sub / nkv;

	attn_group(c, st->slot, t, kvh, kvh * per + sub * part, kvh * per + (sub + 1) * part,
		   c->scores + (size_t)worker * per * c->o.n_ctx);
}

/* Gated attention; false when told to stop part-way. */
static bool
layer_attn(struct ctx *c, const struct layer_attn *a, int slot, int n_tok)
{
	const struct model_config *cfg = &c->m->cfg;
	int hd = cfg->head_dim, kd = cfg->n_kv_heads * hd, qd = cfg->n_heads * hd;
	const struct qact *A;
	struct attn_step st = { c, slot, n_tok, attn_sub(c, n_tok) };

	phase(c, FWD_ATTN);
	A = quantize(c, &c->qa, c->h, n_tok, cfg->hidden_size);
	/* k and v of token t share one row of mid: [k | v]. */
	add_job(c, &a->q_proj, c->h, A, n_tok, c->big1, 2 * qd);
	add_job(c, &a->k_proj, c->h, A, n_tok, c->mid, 2 * kd);
	add_job(c, &a->v_proj, c->h, A, n_tok, c->mid + kd, 2 * kd);
	run_jobs(c);
	if (stopping(c))
		return false;
	rows_run(c, &(struct rows_step){ .c = c,
					 .fn = attn_prepare_rows,
					 .n_rows = n_tok,
					 .attn = a,
					 .slot = slot });
	pool_step(c, attn_chunk, &st, n_tok * cfg->n_kv_heads * st.n_sub);
	if (stopping(c))
		return false;
	add_job(c, &a->o_proj, c->big2, quantize(c, &c->qa2, c->big2, n_tok, qd), n_tok, c->y,
		cfg->hidden_size);
	run_jobs(c);
	return true;
}

/* ---- Gated DeltaNet (docs/model-format.md "Gated DeltaNet") ------------ */

/*
 * After the input projections, everything of a DeltaNet layer up to the
 * output projection is independent per key head g: its q and k channels and
 * the channels of its r = Hv / Hk value heads go through the conv alone, and
 * each value head's recurrence reads only them.  So one chunk per key head
 * does the scatter, conv, norms, gates and recurrence of that group, and the
 * layer needs one step for all of it.  Every number is computed by the same
 * operations in the same order as stage by stage, so results do not change.
 */
struct gdn_step {
	struct ctx *c;
	const struct layer_gdn *g;
	struct gdn_state *s;
	int n_tok;
};

/*
 * Scatter key head g's part of the grouped qkvz projection of token t into
 * the conv input order [q heads | k heads | v heads] (big2's row t) and z
 * (zbuf's row t).
 */
static void
gdn_split(struct ctx *c, int t, int g)
{
	const struct model *m = c->m;
	int dk = m->cfg.lin_k_dim, dv = m->cfg.lin_v_dim;
	int r = m->cfg.lin_n_v_heads / m->cfg.lin_n_k_heads, grp = 2 * dk + 2 * r * dv;
	const float *src = c->big1 + (size_t)t * m->qkvz_dim + (size_t)g * grp;
	float *u = c->big2 + (size_t)t * m->qkvz_dim, *z = c->zbuf + (size_t)t * m->value_dim;

	memcpy(u + g * dk, src, (size_t)dk * sizeof(float));
	memcpy(u + m->key_dim + g * dk, src + dk, (size_t)dk * sizeof(float));
	memcpy(u + 2 * m->key_dim + g * r * dv, src + 2 * dk, (size_t)r * dv * sizeof(float));
	memcpy(z + g * r * dv, src + 2 * dk + r * dv, (size_t)r * dv * sizeof(float));
}

/*
 * Causal depthwise conv + SiLU for channels [b, e), in place over the rows of
 * big2 (stride qkvz_dim); then the conv state keeps the last Kc-1 raw inputs.
 *
 * Token t's output reads the raw inputs of tokens t-Kc+1..t, so walking the
 * tokens from last to first lets each output overwrite its own input: the
 * rows it still needs are earlier ones, not yet touched.  The inner loop runs
 * along a row over CONV_CH channels (contiguous, vectorised by the compiler)
 * with the weights transposed beside it; a channel-at-a-time scan down the
 * rows strode qkvz_dim floats per token and missed the cache on every one.
 * Each output takes the same operations in the same order as that scan.
 */
#define CONV_CH 64

static void
conv_block(struct gdn_step *st, int c0, int n)
{
	struct ctx *c = st->c;
	const int kc = c->m->cfg.conv_kernel, cd = c->m->conv_dim, T = st->n_tok;
	const size_t ld = (size_t)c->m->qkvz_dim;
	float wt[16][CONV_CH], old[15][CONV_CH];
	float *state = st->s->conv + c0;
	int i, j, t;

	for (j = 0; j < kc; j++)
		for (i = 0; i < n; i++)
			wt[j][i] = st->g->conv[(size_t)(c0 + i) * kc + j];
	for (j = 0; j < kc - 1; j++)
		memcpy(old[j], state + (size_t)j * cd, (size_t)n * sizeof(float));
	/* The new state: position p of [old state | raw rows] is T + j. */
	for (j = 0; j < kc - 1; j++) {
		int p = T + j;
		const float *src = p < kc - 1 ? old[p] : c->big2 + (size_t)(p - (kc - 1)) * ld + c0;

		memcpy(state + (size_t)j * cd, src, (size_t)n * sizeof(float));
	}
	for (t = T - 1; t >= 0; t--) {
		float *u = c->big2 + (size_t)t * ld + c0, acc[CONV_CH];

		for (i = 0; i < n; i++)
			acc[i] = wt[kc - 1][i] * u[i];
		for (j = 0; j < kc - 1; j++) {
			int p = t + j;
			const float *x =
				p < kc - 1 ? old[p] : c->big2 + (size_t)(p - (kc - 1)) * ld + c0;

			for (i = 0; i < n; i++)
				acc[i] += wt[j][i] * x[i];
		}
		c->k->silu(acc, u, n);
	}
}

static void
gdn_conv_range(struct gdn_step *st, int b, int e)
{
	for (int c0 = b; c0 < e; c0 += CONV_CH)
		conv_block(st, c0, MIN(CONV_CH, e - c0));
}

/* l2-normalise q and k of key head g of token t; q also gets 1/sqrt(dk). */
static void
gdn_qk_norm(struct ctx *c, int t, int g)
{
	const struct model *m = c->m;
	int dk = m->cfg.lin_k_dim;
	float *u = c->big2 + (size_t)t * m->qkvz_dim;

	ops_l2norm(u + g * dk, dk, 1e-6f, 1.0f / sqrtf((float)dk));
	ops_l2norm(u + m->key_dim + g * dk, dk, 1e-6f, 1.0f);
}

/* beta = sigmoid(b), g = -exp(A_log) * softplus(a + dt_bias) for value head h of token t. */
static void
gdn_gates(struct ctx *c, const struct layer_gdn *g, int t, int h)
{
	int hv = c->m->cfg.lin_n_v_heads, r = hv / c->m->cfg.lin_n_k_heads;
	const float *ba = c->mid + (size_t)t * 2 * hv;
	float *beta = c->gb + (size_t)t * 2 * hv, *gg = beta + hv;
	int grp = h / r, s = h % r;

	beta[h] = ops_sigmoid(ba[grp * 2 * r + s]);
	gg[h] = g->neg_exp_a[h] * ops_softplus(ba[grp * 2 * r + r + s] + g->dt_bias[h]);
}

/*
 * The gated delta rule for value head h over the step's tokens, then the
 * gated RMSNorm of each output, which replaces the head's z in zbuf (the
 * output projection's input).  S is [dv][dk]: each value channel's row is
 * decayed, read against k, corrected by the delta and read against q, and
 * depends on no other row.  So a prompt walks S in blocks of GDN_ROWS rows
 * (16 KiB at dk = 128, in L1), each block through GDN_TOKENS tokens before
 * the next; the whole 64 KiB of S per token came from L2.  Each row gets
 * the same operations in the same order as token by token.  tmp is the
 * worker's (64 * max_in floats, at least GDN_TOKENS * dv).
 */
#define GDN_ROWS   32
#define GDN_TOKENS 64

static void
gdn_head(struct gdn_step *st, int h, float *tmp)
{
	struct ctx *c = st->c;
	const struct model *m = c->m;
	int dk = m->cfg.lin_k_dim, dv = m->cfg.lin_v_dim, hv = m->cfg.lin_n_v_heads;
	int kh = h / (hv / m->cfg.lin_n_k_heads), rows = st->n_tok > 1 ? GDN_ROWS : dv;
	float *S = st->s->S + (size_t)h * dv * dk;

	for (int t0 = 0; t0 < st->n_tok; t0 += GDN_TOKENS) {
		int t1 = MIN(t0 + GDN_TOKENS, st->n_tok);

		for (int r0 = 0; r0 < dv; r0 += rows) {
			int nr = MIN(rows, dv - r0);

			for (int t = t0; t < t1; t++) {
				const float *u = c->big2 + (size_t)t * m->qkvz_dim;
				const float *q = u + kh * dk, *kk = u + m->key_dim + kh * dk;
				const float *v = u + 2 * m->key_dim + h * dv;
				const float *gb = c->gb + (size_t)t * 2 * hv;

				ops_delta_step(c->k, S + (size_t)r0 * dk, dk, nr, q, kk, v + r0,
					       gb[h], expf(gb[hv + h]),
					       tmp + (size_t)(t - t0) * dv + r0);
			}
		}
		for (int t = t0; t < t1; t++) {
			float *z = c->zbuf + (size_t)t * m->value_dim + h * dv;
			float *o = tmp + (size_t)(t - t0) * dv;

			ops_rmsnorm_gated(c->k, o, st->g->norm, z, dv, m->cfg.rms_eps);
			memcpy(z, o, (size_t)dv * sizeof(float));
		}
	}
}

/* Chunk g: key head g and its value heads, from the projection to the head outputs. */
static void
gdn_group_chunk(void *arg, int g, int worker)
{
	struct gdn_step *st = arg;
	struct ctx *c = st->c;
	const struct model *m = c->m;
	int dk = m->cfg.lin_k_dim, dv = m->cfg.lin_v_dim;
	int r = m->cfg.lin_n_v_heads / m->cfg.lin_n_k_heads;

	for (int t = 0; t < st->n_tok; t++)
		gdn_split(c, t, g);
	gdn_conv_range(st, g * dk, (g + 1) * dk);
	gdn_conv_range(st, m->key_dim + g * dk, m->key_dim + (g + 1) * dk);
	gdn_conv_range(st, 2 * m->key_dim + g * r * dv, 2 * m->key_dim + (g + 1) * r * dv);
	for (int t = 0; t < st->n_tok; t++) {
		gdn_qk_norm(c, t, g);
		for (int h = g * r; h < (g + 1) * r; h++)
			gdn_gates(c, st->g, t, h);
	}
	for (int h = g * r; h < (g + 1) * r; h++)
		gdn_head(st, h, tmp_of(c, worker));
}

/*
 * Gated DeltaNet: three steps (input projections, the per-head work, the
 * output projection); false when told to stop part-way.  In a long prefill
 * each takes a good share of a layer, so the caller is asked between them.
 */
static bool
layer_gdn(struct ctx *c, const struct layer_gdn *g, struct gdn_state *s, int n_tok)
{
	const struct model *m = c->m;
	const struct qact *A;
	struct gdn_step st = { c, g, s, n_tok };

	phase(c, FWD_GDN);
	A = quantize(c, &c->qa, c->h, n_tok, m->cfg.hidden_size);
	add_job(c, &g->in_qkvz, c->h, A, n_tok, c->big1, m->qkvz_dim);
	add_job(c, &g->in_ba, c->h, act_for(c, FLOAT_BA, A), n_tok, c->mid,
		2 * m->cfg.lin_n_v_heads);
	run_jobs(c);
	if (stopping(c))
		return false;
	/* Head outputs replace z in zbuf [T][value_dim]. */
	pool_step(c, gdn_group_chunk, &st, m->cfg.lin_n_k_heads);
	if (stopping(c))
		return false;
	add_job(c, &g->out, c->zbuf, quantize(c, &c->qa2, c->zbuf, n_tok, m->value_dim), n_tok,
		c->y, m->cfg.hidden_size);
	run_jobs(c);
	return true;
}

/* ---- sparse MoE (docs/model-format.md "Sparse MoE") -------------------- */

/* Route token t: probabilities in router, choices in sel/selw. */
static void
moe_route(struct ctx *c, int t)
{
	const struct model_config *cfg = &c->m->cfg;
	int tk = cfg->n_experts_per_tok;

	ops_moe_route(c->router + (size_t)t * cfg->n_experts, cfg->n_experts, tk,
		      cfg->norm_topk_prob, c->sel + (size_t)t * tk, c->selw + (size_t)t * tk);
}

/*
 * Order the step's (token, expert) pairs by expert: the slice rows, each
 * row's token and weight, and each choice's row.  The inputs are gathered
 * by the caller (moe_inputs).
 */
static void
moe_group(struct ctx *c, int n_tok)
{
	const struct model_config *cfg = &c->m->cfg;
	int ne = cfg->n_experts, tk = cfg->n_experts_per_tok;

	memset(c->cnt, 0, (size_t)ne * sizeof(int));
	for (int i = 0; i < n_tok * tk; i++)
		c->cnt[c->sel[i]]++;
	c->off[0] = 0;
	for (int e = 0; e < ne; e++)
		c->off[e + 1] = c->off[e] + c->cnt[e];
	memset(c->cnt, 0, (size_t)ne * sizeof(int));
	for (int i = 0; i < n_tok * tk; i++) {
		int e = c->sel[i], row = c->off[e] + c->cnt[e]++;

		c->slot_tok[row] = i / tk;
		c->slot_w[row] = c->selw[i];
		c->tok_row[i] = row;
	}
}

/* Whether every routed expert's gate and up take the int8 path (then no float inputs). */
static bool
experts_q8(const struct ctx *c, const struct layer_moe *e)
{
	for (int x = 0; x < c->m->cfg.n_experts; x++)
		if (!use_q8(c, &e->gate[x]) || !use_q8(c, &e->up[x]))
			return false;
	return true;
}

static void
gather_floats(const struct rows_step *s, int r0, int r1)
{
	const struct ctx *c = s->c;
	size_t d = (size_t)s->n;

	for (int r = r0; r < r1; r++)
		memcpy(c->gx + (size_t)r * d, c->h + (size_t)c->slot_tok[r] * d, d * sizeof(float));
}

static void
gather_quantized(const struct rows_step *s, int r0, int r1)
{
	qact_gather(s->A, r0, s->src, s->c->slot_tok + r0, r1 - r0);
}

/*
 * The routed experts' inputs in slice order: the token rows of Ah (h as the
 * router quantized it) copied, or when some expert needs floats (or on the
 * float path) the rows of h gathered into gx and quantized.  NULL on the
 * float path.
 */
static const struct qact *
moe_inputs(struct ctx *c, const struct layer_moe *e, const struct qact *Ah, int n_rows)
{
	int d = c->m->cfg.hidden_size;
	struct rows_step s = { .c = c, .n_rows = n_rows, .n = d, .A = &c->qg, .src = Ah };

	if (Ah != NULL && experts_q8(c, e)) {
		qact_shape(&c->qg, d, n_rows);
		s.fn = gather_quantized;
		rows_run(c, &s);
		return &c->qg;
	}
	s.fn = gather_floats;
	rows_run(c, &s);
	return quantize(c, &c->qg, c->gx, n_rows, d);
}

/* g = silu(g) * u, row by row (the same lanes for a row in decode and prefill). */
static void
swiglu_chunk(const struct rows_step *s, int r0, int r1)
{
	size_t n = (size_t)s->n;

	for (int r = r0; r < r1; r++) {
		float *g = s->Y + (size_t)r * n;
		const float *u = s->X + (size_t)r * n;

		s->c->k->silu(g, g, s->n);
		for (size_t i = 0; i < n; i++)
			g[i] *= u[i];
	}
}

/* g = silu(g) * u over n_rows rows of n. */
static void
swiglu_rows(struct ctx *c, float *g, const float *u, int n_rows, int n)
{
	struct rows_step s = {
		.c = c, .fn = swiglu_chunk, .n_rows = n_rows, .n = n, .X = u, .Y = g
	};

	rows_run(c, &s);
}

/*
 * y of tokens [t0, t1): the gated shared expert plus each routed expert's
 * output times its weight, added in slice order (ascending row) so the sum
 * is the same whichever thread makes it.
 */
static void
combine_chunk(const struct rows_step *s, int t0, int t1)
{
	struct ctx *c = s->c;
	const struct layer_moe *e = s->moe;
	int d = s->n, tk = c->m->cfg.n_experts_per_tok;

	for (int t = t0; t < t1; t++) {
		float *y = c->y + (size_t)t * d, gate = e->has_shared ? ops_sigmoid(c->shr[t]) : 0;
		int *rows = c->tok_row + (size_t)t * tk;

		for (int i = 0; i < d; i++)
			y[i] = e->has_shared ? gate * c->shy[(size_t)t * d + i] : 0;
		for (int i = 1; i < tk; i++) /* insertion sort: tk is small */
			for (int j = i; j > 0 && rows[j - 1] > rows[j]; j--) {
				int tmp = rows[j];

				rows[j] = rows[j - 1];
				rows[j - 1] = tmp;
			}
		for (int i = 0; i < tk; i++)
			c->k->axpy(y, c->slot_w[rows[i]], c->gy + (size_t)rows[i] * d, d);
	}
}

/*
 * Expert x's rows of A (int8 slice rows from a0 on; NULL on the float path)
 * as a view kept in views[x], which must outlive the jobs that read it.
 */
static const struct qact *
expert_rows(const struct ctx *c, const struct qact *A, int a0, struct qact *views, int x)
{
	int r0 = c->off[x];

	if (A == NULL)
		return NULL;
	views[x] = qact_rows(A, r0 - a0, c->off[x + 1] - r0);
	return &views[x];
}

/* Queue expert x's gate and up on its slice rows (gx -> g1, g2); A as moe_inputs made it. */
static void
expert_gate_up(struct ctx *c, const struct qact *A, int x, const struct qmat *gate,
	       const struct qmat *up)
{
	int d = c->m->cfg.hidden_size, w = c->m->cfg.moe_inter;
	int r0 = c->off[x], n = c->off[x + 1] - r0;
	const struct qact *Ax = expert_rows(c, A, 0, c->views, x);

	add_job(c, gate, c->gx + (size_t)r0 * d, Ax, n, c->g1 + (size_t)r0 * w, w);
	add_job(c, up, c->gx + (size_t)r0 * d, Ax, n, c->g2 + (size_t)r0 * w, w);
}

/* Queue expert x's down projection on its slice rows (g1 -> gy); A holds the
 * quantized g1 rows from slice row a0 on. */
static void
expert_down(struct ctx *c, const struct qact *A, int a0, int x, const struct qmat *down)
{
	int d = c->m->cfg.hidden_size, w = c->m->cfg.moe_inter;
	int r0 = c->off[x], n = c->off[x + 1] - r0;
	const struct qact *Ax = expert_rows(c, A, a0, c->views + c->m->cfg.n_experts, x);

	add_job(c, down, c->g1 + (size_t)r0 * w, Ax, n, c->gy + (size_t)r0 * d, d);
}

/* The shared expert's SwiGLU and down projection (its gate/up ran with the
 * router), queued to lead the step of the routed experts' down projections. */
static void
shared_down(struct ctx *c, const struct layer_moe *e, int n_tok)
{
	int sw = c->m->cfg.shared_inter;

	phase(c, FWD_SHARED);
	swiglu_rows(c, c->sh1, c->sh2, n_tok, sw);
	add_job(c, &e->sh_down, c->sh1, quantize(c, &c->qs, c->sh1, n_tok, sw), n_tok, c->shy,
		c->m->cfg.hidden_size);
	phase(c, FWD_EXPERTS);
}

/*
 * The routed experts, and the shared expert's down projection in the step of
 * their down projections; false when told to stop between the two halves.
 */
static bool
moe_experts(struct ctx *c, const struct layer_moe *e, const struct qact *Ah, int n_tok, int n_rows)
{
	const struct model_config *cfg = &c->m->cfg;
	int w = cfg->moe_inter;
	const struct qact *A;

	phase(c, FWD_EXPERTS);
	A = moe_inputs(c, e, Ah, n_rows);
	for (int x = 0; x < cfg->n_experts; x++)
		if (c->off[x + 1] > c->off[x])
			expert_gate_up(c, A, x, &e->gate[x], &e->up[x]);
	run_jobs(c);
	/* For a long prefill the experts are most of a layer's time. */
	if (stopping(c))
		return false;
	/* The shared expert's down (the biggest) leads this step. */
	if (e->has_shared)
		shared_down(c, e, n_tok);
	swiglu_rows(c, c->g1, c->g2, n_rows, w);
	A = quantize(c, &c->qm, c->g1, n_rows, w);
	for (int x = 0; x < cfg->n_experts; x++)
		if (c->off[x + 1] > c->off[x])
			expert_down(c, A, 0, x, &e->down[x]);
	run_jobs(c);
	return true;
}

/* ---- the same with the expert cache (xcache.h) ------------------------- */

/* Queue gate and up of the group's expert k (its bytes are in: xcache_wait returns at once,
 * or waits when the caller chose to); false on a read error. */
static bool
queue_gate_up(struct ctx *c, const struct qact *A, int k)
{
	if ((c->xq[k] = xcache_wait(c->xc, c->xh[k], &c->io_err)) == NULL)
		return false;
	expert_gate_up(c, A, c->need[k], &c->xq[k][0], &c->xq[k][1]);
	return true;
}

/*
 * Gate and up of the group's experts [g0, g1) as their bytes arrive: each
 * step takes every expert in memory by then, and only when none is does
 * the owner wait, for the first one still being read.  So the products
 * overlap the reads (a long prompt on a cold cache reads every expert of a
 * layer), and a decoded token whose experts are all in memory takes one step.
 */
static bool
group_gate_up(struct ctx *c, const struct qact *A, int g0, int g1)
{
	int left = g1 - g0;

	while (left > 0) {
		int queued = 0, first = -1;

		for (int k = g0; k < g1; k++) {
			if (c->xq[k] != NULL)
				continue;
			if (first < 0)
				first = k;
			if (xcache_ready(c->xc, c->xh[k])) {
				if (!queue_gate_up(c, A, k))
					return false;
				queued++;
			}
		}
		if (queued == 0) {
			if (!queue_gate_up(c, A, first))
				return false;
			queued = 1;
		}
		run_jobs(c);
		left -= queued;
	}
	return true;
}

/* SwiGLU, quantization and down projection of the group's rows. */
static void
group_down(struct ctx *c, int g0, int g1)
{
	int w = c->m->cfg.moe_inter;
	int r0 = c->off[c->need[g0]], r1 = c->off[c->need[g1 - 1] + 1];
	const struct qact *A;

	swiglu_rows(c, c->g1 + (size_t)r0 * w, c->g2 + (size_t)r0 * w, r1 - r0, w);
	/* Rows are quantized one by one, so a group's rows give the same bits as all. */
	A = quantize(c, &c->qm, c->g1 + (size_t)r0 * w, r1 - r0, w);
	for (int k = g0; k < g1; k++)
		expert_down(c, A, r0, c->need[k], &c->xq[k][2]);
	run_jobs(c);
}

/*
 * One group of the chosen experts, at most the cache's capacity - 1: pin
 * them (their reads start), compute gate and up as their bytes arrive
 * (group_gate_up), then the down projections.  The first
 * group also starts the guessed next layer's reads and runs the shared
 * expert's down projection.  False on a read error (c->io_err) or a stop.
 */
static bool
experts_group(struct ctx *c, int li, const struct layer_moe *e, const struct qact *A, int n_tok,
	      int g0, int g1)
{
	bool ok;

	for (int k = g0; k < g1; k++) {
		c->xh[k] = xcache_pin(c->xc, li, c->need[k]);
		c->xq[k] = NULL;
	}
	if (g0 == 0 && c->spec_n > 0)
		xcache_speculate(c->xc, li + 1, c->spec, c->spec_n);
	ok = group_gate_up(c, A, g0, g1) && !stopping(c);
	if (ok && g0 == 0 && e->has_shared)
		shared_down(c, e, n_tok);
	if (ok)
		group_down(c, g0, g1);
	for (int k = g0; k < g1; k++)
		xcache_unpin(c->xc, c->xh[k]);
	return ok;
}

/* A new sequence: its first token has no token before it. */
static void
route_forget(struct ctx *c)
{
	size_t n = (size_t)c->m->cfg.n_layers * (size_t)MAX(c->m->cfg.n_experts_per_tok, 1);

	for (size_t i = 0; i < n; i++)
		c->route_prev[i] = -1;
}

/* Count the step's choices of layer li (ctx_routing). */
static void
route_count(struct ctx *c, int li, int n_tok)
{
	int ne = c->m->cfg.n_experts, tk = c->m->cfg.n_experts_per_tok;
	int *prev = c->route_prev + (size_t)li * tk;

	for (int t = 0; t < n_tok; t++) {
		const int *sel = c->sel + (size_t)t * tk;

		for (int k = 0; k < tk; k++) {
			c->route_n[(size_t)li * ne + sel[k]]++;
			if (prev[0] < 0)
				continue;
			c->route_pairs++;
			for (int j = 0; j < tk; j++)
				c->route_same += prev[j] == sel[k];
		}
		memcpy(prev, sel, (size_t)tk * sizeof(int));
	}
}

static int
cmp_u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

void
ctx_routing(const struct ctx *c, struct ctx_routing *r)
{
	int ne = c->m->cfg.n_experts, top = MAX(1, ne / 10), layers = 0;
	uint64_t *v = xmalloc((size_t)MAX(ne, 1) * sizeof(uint64_t)), all = 0, hot = 0;

	memset(r, 0, sizeof(*r));
	for (int l = 0; l < c->m->cfg.n_layers; l++) {
		uint64_t sum = 0;

		if (!c->m->layers[l].moe)
			continue;
		memcpy(v, c->route_n + (size_t)l * ne, (size_t)ne * sizeof(uint64_t));
		qsort(v, (size_t)ne, sizeof(uint64_t), cmp_u64_desc);
		for (int x = 0; x < ne; x++)
			sum += v[x];
		for (int x = 0; x < top; x++)
			hot += v[x];
		for (int x = 0; x < ne; x++)
			r->used += v[x] > 0;
		all += sum;
		layers++;
	}
	free(v);
	r->choices = all;
	r->top10_share = all > 0 ? (double)hot / (double)all : 0;
	r->reuse = c->route_pairs > 0 ? (double)c->route_same / (double)c->route_pairs : 0;
	r->experts = (uint64_t)layers * (uint64_t)ne;
}

static bool
moe_experts_cached(struct ctx *c, int li, const struct layer_moe *e, const struct qact *Ah,
		   int n_tok, int n_rows)
{
	int n_need = 0, cap = MAX(1, xcache_capacity(c->xc) - 1);
	const struct qact *A;

	phase(c, FWD_EXPERTS);
	A = moe_inputs(c, e, Ah, n_rows);
	for (int x = 0; x < c->m->cfg.n_experts; x++)
		if (c->off[x + 1] > c->off[x])
			c->need[n_need++] = x;
	if (n_tok == 1)
		xcache_score(c->xc, li, c->need, n_need);
	for (int g0 = 0; g0 < n_need; g0 += cap)
		if (!experts_group(c, li, e, A, n_tok, g0, MIN(n_need, g0 + cap)))
			return false;
	return true;
}

/*
 * With the cache, a decoded token also runs the next MoE layer's router on
 * this layer's input (consecutive layers' residual streams are close), in
 * the router's step: its top choices are read while this layer computes.
 * A prompt step with choices enough to use nearly every expert of a layer
 * (tokens x top-k >= 2 x experts: 1 - e^-2 = 86 % of them, by chance alone)
 * reads all of the next layer's ahead instead, when the cache has room.
 */
static void
guess_next(struct ctx *c, int li, const struct qact *A, int n_tok)
{
	const struct model *m = c->m;
	int ne = m->cfg.n_experts;

	c->spec_n = 0;
	if (c->xc == NULL || li + 1 >= m->cfg.n_layers || !m->layers[li + 1].moe)
		return;
	if (n_tok > 1) {
		/* ... and room for three layers' experts, or the read-ahead would push out
		 * this layer's before they are used. */
		if ((int64_t)n_tok * m->cfg.n_experts_per_tok >= 2 * (int64_t)ne &&
		    xcache_capacity(c->xc) >= 3 * ne)
			for (int x = 0; x < ne; x++)
				c->spec[c->spec_n++] = x;
		return;
	}
	add_job(c, &m->layers[li + 1].moe_w.router, c->h, act_for(c, FLOAT_ROUTER, A), 1,
		c->spec_logits, ne);
	c->spec_n = -1; /* chosen after the step (guess_take) */
}

static void
guess_take(struct ctx *c)
{
	if (c->spec_n < 0) {
		c->spec_n = MIN(c->m->cfg.n_experts_per_tok, c->m->cfg.n_experts);
		ops_top_k(c->spec_logits, c->m->cfg.n_experts, c->spec_n, c->spec);
	}
}

/* The MoE block; false when told to stop part-way (c->y is then garbage). */
static bool
layer_moe(struct ctx *c, int li, const struct layer_moe *e, int n_tok)
{
	const struct model_config *cfg = &c->m->cfg;
	int d = cfg->hidden_size, n_rows = n_tok * cfg->n_experts_per_tok;
	const struct qact *A;

	phase(c, FWD_ROUTER);
	A = quantize(c, &c->qa, c->h, n_tok, d);
	if (e->has_shared) {
		/* The shared expert reads only h: its gate/up share the router's
		 * step, queued first as the bigger products. */
		int sw = cfg->shared_inter;

		phase(c, FWD_SHARED);
		add_job(c, &e->sh_gate, c->h, A, n_tok, c->sh1, sw);
		add_job(c, &e->sh_up, c->h, A, n_tok, c->sh2, sw);
		add_job(c, &e->sh_router, c->h, act_for(c, FLOAT_SHGATE, A), n_tok, c->shr, 1);
		phase(c, FWD_ROUTER);
	}
	add_job(c, &e->router, c->h, act_for(c, FLOAT_ROUTER, A), n_tok, c->router, cfg->n_experts);
	guess_next(c, li, A, n_tok);
	run_jobs(c);
	phase(c, FWD_GLUE);
	for (int t = 0; t < n_tok; t++)
		moe_route(c, t);
	route_count(c, li, n_tok);
	moe_group(c, n_tok);
	guess_take(c);
	if (!(c->xc != NULL ? moe_experts_cached(c, li, e, A, n_tok, n_rows)
			    : moe_experts(c, e, A, n_tok, n_rows)) ||
	    stopping(c))
		return false;
	phase(c, FWD_GLUE);
	rows_run(c, &(struct rows_step){
			    .c = c, .fn = combine_chunk, .n_rows = n_tok, .n = d, .moe = e });
	return true;
}

static void
layer_mlp(struct ctx *c, const struct layer_mlp *l, int n_tok)
{
	int d = c->m->cfg.hidden_size, w = c->m->cfg.intermediate_size;
	const struct qact *A;

	phase(c, FWD_MLP);
	A = quantize(c, &c->qa, c->h, n_tok, d);
	/* Dense layers reuse the expert buffers (sized for top_k x inter rows). */
	add_job(c, &l->gate, c->h, A, n_tok, c->g1, w);
	add_job(c, &l->up, c->h, A, n_tok, c->g2, w);
	run_jobs(c);
	swiglu_rows(c, c->g1, c->g2, n_tok, w);
	add_job(c, &l->down, c->g1, quantize(c, &c->qm, c->g1, n_tok, w), n_tok, c->y, d);
	run_jobs(c);
}

/* ---- the decoder ------------------------------------------------------- */

static void
capture(struct ctx *c, int layer, int t0, int n_tok)
{
	int d = c->m->cfg.hidden_size;

	if (c->capture == NULL || c->capture_at + t0 + n_tok > c->capture_n)
		return;
	memcpy(c->capture + ((size_t)layer * c->capture_n + c->capture_at + t0) * d, c->x,
	       (size_t)n_tok * d * sizeof(float));
}

static void
norm_chunk(const struct rows_step *s, int t0, int t1)
{
	for (int t = t0; t < t1; t++)
		ops_rmsnorm_zc(s->Y + (size_t)t * s->n, s->X + (size_t)t * s->n, s->w, s->n,
			       s->c->m->cfg.rms_eps);
}

/* y = rmsnorm(x) * (1 + w) for n_tok rows of the hidden size. */
static void
norm_rows(struct ctx *c, float *y, const float *x, const float *w, int n_tok)
{
	rows_run(c, &(struct rows_step){ .c = c,
					 .fn = norm_chunk,
					 .n_rows = n_tok,
					 .n = c->m->cfg.hidden_size,
					 .X = x,
					 .Y = y,
					 .w = w });
}

static void
add_chunk(const struct rows_step *s, int t0, int t1)
{
	size_t n = (size_t)s->n;

	for (size_t i = (size_t)t0 * n; i < (size_t)t1 * n; i++)
		s->Y[i] += s->X[i];
}

/* x += y for n_tok rows of the hidden size. */
static void
add_rows(struct ctx *c, float *x, const float *y, int n_tok)
{
	rows_run(c, &(struct rows_step){ .c = c,
					 .fn = add_chunk,
					 .n_rows = n_tok,
					 .n = c->m->cfg.hidden_size,
					 .X = y,
					 .Y = x });
}

/*
 * One step through every layer.  The abort callback is asked before each
 * layer and between its parts, so a stop waits for at most one part of one
 * layer (a fraction of a second for a 256-token step of the 80B model, where
 * a whole step takes tens of seconds on a small machine).  false = stopped:
 * the layers before have already updated their DeltaNet states and KV cache
 * rows for these tokens, the rest have not.
 */
static bool
decoder_step(struct ctx *c, const int32_t *tok, int n_tok, int t0)
{
	const struct model *m = c->m;
	int d = m->cfg.hidden_size, slot = 0;

	c->prof.tokens += (uint64_t)n_tok;
	c->prof.bytes[FWD_GLUE] +=
		qmat_bytes(&m->embed) / (uint64_t)m->cfg.vocab_size * (uint64_t)n_tok;
	for (int t = 0; t < n_tok; t++)
		qmat_row_f32(&m->embed, tok[t], c->x + (size_t)t * d);
	capture(c, 0, t0, n_tok);
	for (int i = 0; i < m->cfg.n_layers; i++) {
		const struct layer *l = &m->layers[i];

		if (stopping(c))
			return false;
		norm_rows(c, c->h, c->x, l->in_norm, n_tok);
		if (!(l->full ? layer_attn(c, &l->attn, slot++, n_tok)
			      : layer_gdn(c, &l->gdn, &c->gdn[i], n_tok)) ||
		    stopping(c))
			return false;
		phase(c, FWD_GLUE);
		add_rows(c, c->x, c->y, n_tok);
		norm_rows(c, c->h, c->x, l->post_norm, n_tok);
		if (l->moe) {
			if (!layer_moe(c, i, &l->moe_w, n_tok))
				return false;
		} else
			layer_mlp(c, &l->mlp, n_tok);
		phase(c, FWD_GLUE);
		add_rows(c, c->x, c->y, n_tok);
		capture(c, i + 1, t0, n_tok);
	}
	return true;
}

/* Final norm + lm_head for rows [r0, r0 + n) of the step into logits. */
static void
head(struct ctx *c, int r0, int n, float *logits)
{
	const struct model *m = c->m;
	int d = m->cfg.hidden_size;

	phase(c, FWD_HEAD);
	norm_rows(c, c->h, c->x + (size_t)r0 * d, m->final_norm, n);
	add_job(c, &m->lm_head, c->h, quantize(c, &c->qa, c->h, n, d), n, logits,
		m->cfg.vocab_size);
	run_jobs(c);
	phase(c, FWD_GLUE);
}

int
ctx_forward(struct ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
	    char **cause)
{
	int vocab = c->m->cfg.vocab_size;

	assert_engine();
	if (c->torn)
		return cause_set(cause, "the context was stopped in the middle of a step; reset or "
					"restore it first");
	if (n <= 0)
		return cause_set(cause, "no tokens to process");
	if (c->pos + n > c->o.n_ctx)
		return cause_set(cause, "context full: %d + %d tokens exceed --ctx %d", c->pos, n,
				 c->o.n_ctx);
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= vocab)
			return cause_set(cause, "token id %d out of range (vocabulary %d)",
					 tokens[i], vocab);
	if (st_changed())
		return cause_set(cause, MODEL_CHANGED);
	c->aborting = false;
	c->phase = FWD_GLUE;
	c->phase_t = now_sec();
	for (int t0 = 0; t0 < n; t0 += c->o.n_batch) {
		int nt = MIN(c->o.n_batch, n - t0);

		if (!decoder_step(c, tokens + t0, nt, t0)) {
			phase(c, FWD_GLUE);
			c->torn = true;
			c->capture_at += t0;
			if (c->io_err != NULL) {
				cause_set(cause, "%s", c->io_err);
				free(c->io_err);
				c->io_err = NULL;
				return -1;
			}
			return 1;
		}
		if (c->xc != NULL)
			xcache_tick(c->xc);
		if (logits != NULL && all_logits)
			head(c, 0, nt, logits + (size_t)t0 * vocab);
		else if (logits != NULL && t0 + nt == n)
			head(c, nt - 1, 1, logits);
		c->pos += nt;
	}
	phase(c, FWD_GLUE); /* charge the last stretch */
	c->capture_at += n;
	if (st_changed()) { /* the step read zeros for weights: its numbers are wrong */
		c->torn = true;
		return cause_set(cause, MODEL_CHANGED);
	}
	return 0;
}

/* ---- context lifetime -------------------------------------------------- */

/* n zeroed elements of size bytes, counted in c->bytes; NULL when only planning. */
static void *
ctx_alloc(struct ctx *c, size_t n, size_t size, bool *ok)
{
	void *p = NULL;

	if (n == 0)
		n = 1;
	if (!c->plan_only && (p = calloc(n, size)) == NULL)
		*ok = false;
	c->bytes += n * size;
	return p;
}

/* qact_init, counted in c->q_bytes; only counted when planning.  Whether it worked. */
static bool
ctx_qact(struct ctx *c, struct qact *a, int n, int n_tok)
{
	c->q_bytes += qact_bytes(n, n_tok);
	return c->plan_only || qact_init(a, n, n_tok) == 0;
}

static bool
alloc_moe(struct ctx *c, int B)
{
	const struct model_config *cfg = &c->m->cfg;
	size_t rows = (size_t)B * MAX(cfg->n_experts_per_tok, 1), d = (size_t)cfg->hidden_size;
	size_t w = (size_t)MAX(cfg->moe_inter, 1), sw = (size_t)MAX(cfg->shared_inter, 1);
	bool ok = true;

	/* Dense layers (none in Qwen3-Next, but allowed) put B rows of
	 * intermediate_size into g1/g2. */
	for (int i = 0; i < cfg->n_layers; i++)
		if (!c->m->layers[i].moe)
			w = MAX(w, (size_t)cfg->intermediate_size);
	c->router = ctx_alloc(c, (size_t)B * cfg->n_experts, sizeof(float), &ok);
	c->sel = ctx_alloc(c, rows, sizeof(int), &ok);
	c->selw = ctx_alloc(c, rows, sizeof(float), &ok);
	c->cnt = ctx_alloc(c, (size_t)cfg->n_experts, sizeof(int), &ok);
	c->off = ctx_alloc(c, (size_t)cfg->n_experts + 1, sizeof(int), &ok);
	c->slot_tok = ctx_alloc(c, rows, sizeof(int), &ok);
	c->tok_row = ctx_alloc(c, rows, sizeof(int), &ok);
	c->slot_w = ctx_alloc(c, rows, sizeof(float), &ok);
	c->gx = ctx_alloc(c, rows * d, sizeof(float), &ok);
	c->g1 = ctx_alloc(c, rows * w, sizeof(float), &ok);
	c->g2 = ctx_alloc(c, rows * w, sizeof(float), &ok);
	c->gy = ctx_alloc(c, rows * d, sizeof(float), &ok);
	c->sh1 = ctx_alloc(c, (size_t)B * sw, sizeof(float), &ok);
	c->sh2 = ctx_alloc(c, (size_t)B * sw, sizeof(float), &ok);
	c->shy = ctx_alloc(c, (size_t)B * d, sizeof(float), &ok);
	c->shr = ctx_alloc(c, (size_t)B, sizeof(float), &ok);
	c->views = ctx_alloc(c, 2 * (size_t)MAX(cfg->n_experts, 1), sizeof(struct qact), &ok);
	c->route_n = ctx_alloc(c, (size_t)cfg->n_layers * (size_t)MAX(cfg->n_experts, 1),
			       sizeof(uint64_t), &ok);
	c->route_prev = ctx_alloc(c, (size_t)cfg->n_layers * (size_t)MAX(cfg->n_experts_per_tok, 1),
				  sizeof(int), &ok);
	if (ok && !c->plan_only)
		route_forget(c);
	if (ok && (!ctx_qact(c, &c->qg, (int)d, (int)rows) ||
		   !ctx_qact(c, &c->qm, (int)w, (int)rows) || !ctx_qact(c, &c->qs, (int)sw, B)))
		ok = false;
	return ok;
}

/* Floats of one DeltaNet layer's state: conv window then S. */
static size_t
gdn_floats(const struct ctx *c)
{
	const struct model_config *cfg = &c->m->cfg;

	return (size_t)(cfg->conv_kernel - 1) * c->m->conv_dim +
	       (size_t)cfg->lin_n_v_heads * cfg->lin_v_dim * cfg->lin_k_dim;
}

/* The KV cache: K and V of every full-attention layer, half or single floats. */
static bool
alloc_kv(struct ctx *c)
{
	const struct model *m = c->m;
	const struct model_config *cfg = &m->cfg;
	size_t kv = (size_t)m->n_full * cfg->n_kv_heads * c->o.n_ctx * cfg->head_dim;
	bool ok = true;

	c->kv16 = c->o.kv_bits == 16 || (c->o.kv_bits == 0 && !c->o.f32);
	if (c->kv16) {
		c->kh = ctx_alloc(c, kv, sizeof(uint16_t), &ok);
		c->vh = ctx_alloc(c, kv, sizeof(uint16_t), &ok);
	} else {
		c->kc = ctx_alloc(c, kv, sizeof(float), &ok);
		c->vc = ctx_alloc(c, kv, sizeof(float), &ok);
	}
	return ok;
}

/* The per-layer table of DeltaNet states (bookkeeping: alloc_gdn fills it). */
static bool
alloc_gdn_table(struct ctx *c)
{
	bool ok = true;

	c->gdn = ctx_alloc(c, (size_t)c->m->cfg.n_layers, sizeof(struct gdn_state), &ok);
	return ok;
}

/* Each DeltaNet layer's conv window and recurrent state. */
static bool
alloc_gdn(struct ctx *c)
{
	const struct model *m = c->m;
	const struct model_config *cfg = &m->cfg;
	size_t st = (size_t)cfg->lin_n_v_heads * cfg->lin_v_dim * cfg->lin_k_dim;
	bool ok = true;

	for (int i = 0; ok && i < cfg->n_layers; i++) {
		float *conv, *S;

		if (m->layers[i].full)
			continue;
		conv = ctx_alloc(c, (size_t)(cfg->conv_kernel - 1) * m->conv_dim, sizeof(float),
				 &ok);
		S = ctx_alloc(c, st, sizeof(float), &ok);
		if (c->gdn != NULL) { /* NULL when only planning */
			c->gdn[i].conv = conv;
			c->gdn[i].S = S;
		}
	}
	return ok;
}

/* ctx_save's copy of every DeltaNet layer's state. */
static bool
alloc_snap(struct ctx *c)
{
	const struct model_config *cfg = &c->m->cfg;
	bool ok = true;

	c->snap = ctx_alloc(c, (size_t)(cfg->n_layers - c->m->n_full) * gdn_floats(c),
			    sizeof(float), &ok);
	c->snap_pos = -1;
	return ok;
}

/* Per-step activations for B tokens, and per-worker rows for n_thr workers. */
static bool
alloc_step(struct ctx *c, int B, int n_thr)
{
	const struct model *m = c->m;
	const struct model_config *cfg = &m->cfg;
	size_t d = (size_t)cfg->hidden_size, qd = (size_t)cfg->n_heads * cfg->head_dim;
	size_t big = MAX((size_t)m->qkvz_dim, 2 * qd);
	size_t mid =
		MAX((size_t)4 * cfg->n_kv_heads * cfg->head_dim, (size_t)2 * cfg->lin_n_v_heads);
	bool ok = true;

	c->max_in = (int)MAX(MAX(d, qd), (size_t)m->value_dim);
	c->max_in =
		MAX(c->max_in, MAX(cfg->moe_inter, MAX(cfg->shared_inter, cfg->intermediate_size)));
	c->x = ctx_alloc(c, B * d, sizeof(float), &ok);
	c->h = ctx_alloc(c, B * d, sizeof(float), &ok);
	c->y = ctx_alloc(c, B * d, sizeof(float), &ok);
	c->big1 = ctx_alloc(c, B * big, sizeof(float), &ok);
	c->big2 = ctx_alloc(c, B * big, sizeof(float), &ok);
	c->mid = ctx_alloc(c, B * mid, sizeof(float), &ok);
	c->zbuf = ctx_alloc(c, B * (size_t)m->value_dim, sizeof(float), &ok);
	c->gb = ctx_alloc(c, (size_t)B * 2 * cfg->lin_n_v_heads, sizeof(float), &ok);
	c->scores = ctx_alloc(c, (size_t)n_thr * (cfg->n_heads / cfg->n_kv_heads) * c->o.n_ctx,
			      sizeof(float), &ok);
	c->inv_freq = ctx_alloc(c, (size_t)cfg->rotary_dim / 2 + 1, sizeof(double), &ok);
	c->thr_tmp = ctx_alloc(c, (size_t)n_thr * 64 * c->max_in, sizeof(float), &ok);
	if (ok && (!ctx_qact(c, &c->qa, c->max_in, B) || !ctx_qact(c, &c->qa2, c->max_in, B)))
		ok = false;
	if (ok && !c->plan_only)
		ops_rope_freqs(c->inv_freq, cfg->rotary_dim, cfg->rope_theta);
	return ok;
}

/*
 * Every buffer of the context for n_thr workers, each kind counted in *p
 * (OUT): what ctx_new allocates and what ctx_plan counts are one code.
 * Whether all could be had.
 */
static bool
alloc_buffers(struct ctx *c, int n_thr, struct ctx_plan *p)
{
	int B = c->o.n_batch;
	uint64_t at = c->bytes;
	bool ok;

	memset(p, 0, sizeof(*p));
	ok = alloc_step(c, B, n_thr) && alloc_moe(c, B) && alloc_gdn_table(c);
	p->scratch = c->bytes - at;
	at = c->bytes;
	ok = ok && alloc_kv(c);
	p->kv = c->bytes - at;
	at = c->bytes;
	ok = ok && alloc_gdn(c);
	p->state = c->bytes - at;
	at = c->bytes;
	ok = ok && alloc_snap(c);
	p->snapshot = c->bytes - at;
	p->qact = c->q_bytes;
	p->total = c->bytes + c->q_bytes;
	p->n_ctx = c->o.n_ctx;
	p->n_batch = B;
	p->n_threads = n_thr;
	return ok;
}

/* The expert cache and its per-step arrays (ctx_opts.expert_cache). */
static bool
make_xcache(struct ctx *c, char **cause)
{
	struct xcache_opts xo = { .budget = c->o.expert_cache,
				  .keep_resident = true,
				  .watch_memory = !c->o.expert_fixed,
				  .read = c->o.expert_read };
	size_t ne = (size_t)MAX(c->m->cfg.n_experts, 1);

	if (xo.budget == XCACHE_AUTO && (xo.budget = xcache_auto(c->m, c->bytes)) == 0)
		return true; /* the model fits: the mapping is faster */
	if ((c->xc = xcache_new(c->m, &xo, cause)) == NULL)
		return false;
	c->need = xcalloc(ne, sizeof(int));
	c->xh = xcalloc(ne, sizeof(int));
	c->xq = xcalloc(ne, sizeof(*c->xq));
	c->spec_logits = xcalloc(ne, sizeof(float));
	c->spec = xcalloc(ne, sizeof(int));
	return true;
}

bool
ctx_cache_stats(const struct ctx *c, struct xcache_stats *s)
{
	if (c->xc == NULL)
		return false;
	xcache_stats(c->xc, s);
	return true;
}

/* c->o from o with ctx_new's defaults filled in. */
static void
resolve_opts(struct ctx *c, const struct ctx_opts *o)
{
	c->o = *o;
	if (c->o.float_parts == 0)
		c->o.float_parts = FLOAT_DEFAULT;
	if (c->o.n_ctx <= 0)
		c->o.n_ctx = CTX_N_CTX_DEFAULT;
	if (c->o.n_batch <= 0)
		c->o.n_batch = 64;
	if (c->o.n_threads <= 0)
		c->o.n_threads = pool_default_threads();
	/* With the expert cache a prompt step reads each chosen expert that is not in memory
	 * once: longer steps amortise those reads over more tokens
	 * (docs/perf.md "Models larger than RAM"). */
	if (o->expert_cache != 0 && (o->expert_cache != XCACHE_AUTO || xcache_auto(c->m, 0) > 0))
		c->o.n_batch = MAX(c->o.n_batch, XCACHE_BATCH);
	c->o.n_batch = MIN(c->o.n_batch, c->o.n_ctx);
}

void
ctx_plan(const struct model *m, const struct ctx_opts *o, struct ctx_plan *p)
{
	struct ctx *c = xcalloc(1, sizeof(*c));

	c->m = m;
	c->plan_only = true;
	resolve_opts(c, o);
	alloc_buffers(c, c->o.n_threads, p);
	free(c);
}

struct ctx *
ctx_new(const struct model *m, const struct ctx_opts *o, char **cause)
{
	struct ctx *c = xcalloc(1, sizeof(*c));
	struct ctx_plan plan;

	assert_engine();
	c->m = m;
	c->o = *o;
	c->k = o->kernels != NULL ? o->kernels : kernels_get();
	/* One step queues gate and up of every routed expert, the shared
	 * expert's and the router: refuse here what add_job would abort on. */
	if (2 * m->cfg.n_experts + 8 > MAX_JOBS) {
		cause_set(cause, "%s/config.json: num_experts %d is more than qnext handles (%d)",
			  m->dir, m->cfg.n_experts, (MAX_JOBS - 8) / 2);
		goto fail;
	}
	resolve_opts(c, o);
	if ((c->pool = pool_new(c->o.n_threads, cause)) == NULL)
		goto fail;
	if (!alloc_buffers(c, pool_size(c->pool), &plan)) {
		cause_set(cause,
			  "out of memory for a %d-token context (%.1f GB needed); try a "
			  "smaller --ctx",
			  c->o.n_ctx, (double)c->bytes / 1e9);
		goto fail;
	}
	if (o->expert_cache > 0 && !make_xcache(c, cause))
		goto fail;
	return c;
fail:
	ctx_free(c);
	return NULL;
}

void
ctx_free(struct ctx *c)
{
	assert_engine();
	if (c == NULL)
		return;
	pool_free(c->pool);
	xcache_free(c->xc);
	free(c->need), free(c->xh), free(c->xq), free(c->spec_logits), free(c->spec);
	free(c->io_err);
	free(c->route_n), free(c->route_prev);
	if (c->gdn != NULL)
		for (int i = 0; i < c->m->cfg.n_layers; i++) {
			free(c->gdn[i].conv);
			free(c->gdn[i].S);
		}
	free(c->gdn);
	free(c->snap);
	free(c->kc);
	free(c->vc);
	free(c->kh);
	free(c->vh);
	free(c->x), free(c->h), free(c->y), free(c->big1), free(c->big2), free(c->mid);
	free(c->zbuf), free(c->gb), free(c->scores), free(c->inv_freq), free(c->thr_tmp);
	free(c->router), free(c->sel), free(c->selw), free(c->cnt), free(c->off);
	free(c->slot_tok), free(c->tok_row), free(c->slot_w), free(c->gx);
	free(c->g1), free(c->g2), free(c->gy);
	free(c->sh1), free(c->sh2), free(c->shy), free(c->shr), free(c->views);
	qact_release(&c->qa);
	qact_release(&c->qa2);
	qact_release(&c->qg);
	qact_release(&c->qm);
	qact_release(&c->qs);
	free(c);
}

void
ctx_reset(struct ctx *c)
{
	const struct model *m = c->m;
	const struct model_config *cfg = &m->cfg;

	assert_engine();
	c->pos = 0;
	c->snap_pos = -1;
	c->torn = false;
	route_forget(c);
	for (int i = 0; i < cfg->n_layers; i++) {
		if (m->layers[i].full)
			continue;
		memset(c->gdn[i].conv, 0,
		       (size_t)(cfg->conv_kernel - 1) * m->conv_dim * sizeof(float));
		memset(c->gdn[i].S, 0,
		       (size_t)cfg->lin_n_v_heads * cfg->lin_v_dim * cfg->lin_k_dim *
			       sizeof(float));
	}
}

/* Copy every DeltaNet state to (save) or from (!save) the snapshot. */
static void
snap_copy(struct ctx *c, bool save)
{
	const struct model_config *cfg = &c->m->cfg;
	size_t nc = (size_t)(cfg->conv_kernel - 1) * c->m->conv_dim, per = gdn_floats(c);
	float *p = c->snap;

	for (int i = 0; i < cfg->n_layers; i++) {
		if (c->m->layers[i].full)
			continue;
		if (save) {
			memcpy(p, c->gdn[i].conv, nc * sizeof(float));
			memcpy(p + nc, c->gdn[i].S, (per - nc) * sizeof(float));
		} else {
			memcpy(c->gdn[i].conv, p, nc * sizeof(float));
			memcpy(c->gdn[i].S, p + nc, (per - nc) * sizeof(float));
		}
		p += per;
	}
}

void
ctx_save(struct ctx *c)
{
	assert_engine();
	if (c->torn)
		return; /* keep the last good snapshot rather than a broken state */
	snap_copy(c, true);
	c->snap_pos = c->pos;
}

int
ctx_restore(struct ctx *c)
{
	assert_engine();
	if (c->snap_pos < 0)
		return -1;
	snap_copy(c, false);
	c->pos = c->snap_pos;
	c->torn = false;
	return 0;
}

void
ctx_state_layout(const struct ctx *c, struct ctx_state_layout *l)
{
	const struct model_config *cfg = &c->m->cfg;

	memset(l, 0, sizeof(*l));
	l->kv_bits = c->kv16 ? 16 : 32;
	l->f32 = c->o.f32;
	l->float_parts = c->o.float_parts;
	l->n_ctx = c->o.n_ctx;
	l->n_full = c->m->n_full;
	l->n_kv_heads = cfg->n_kv_heads;
	l->head_dim = cfg->head_dim;
	l->n_gdn = cfg->n_layers - c->m->n_full;
	l->gdn_floats = gdn_floats(c);
}

uint64_t
ctx_state_bytes(const struct ctx *c, int n_pos)
{
	return (uint64_t)n_pos * ctx_kv_bytes_per_pos(c) +
	       (uint64_t)(c->m->cfg.n_layers - c->m->n_full) * gdn_floats(c) * sizeof(float);
}

/* Hand every piece of the first n_pos positions' cache and the snapshot to fn, in order. */
static int
state_walk(struct ctx *c, int n_pos, ctx_io_fn *fn, void *arg)
{
	const struct model_config *cfg = &c->m->cfg;
	size_t es = c->kv16 ? sizeof(uint16_t) : sizeof(float);
	size_t run = (size_t)n_pos * cfg->head_dim;
	int r = 0;

	for (int slot = 0; r == 0 && slot < c->m->n_full; slot++)
		for (int h = 0; r == 0 && h < cfg->n_kv_heads; h++) {
			size_t at =
				((size_t)slot * cfg->n_kv_heads + h) * c->o.n_ctx * cfg->head_dim;
			char *k = c->kv16 ? (char *)(c->kh + at) : (char *)(c->kc + at);
			char *v = c->kv16 ? (char *)(c->vh + at) : (char *)(c->vc + at);

			if ((r = fn(arg, k, run * es)) == 0)
				r = fn(arg, v, run * es);
		}
	if (r == 0)
		r = fn(arg, c->snap,
		       (size_t)(cfg->n_layers - c->m->n_full) * gdn_floats(c) * sizeof(float));
	return r;
}

int
ctx_state_export(struct ctx *c, ctx_io_fn *fn, void *arg)
{
	assert_engine();
	if (c->snap_pos < 0)
		return -1;
	return state_walk(c, c->snap_pos, fn, arg);
}

int
ctx_state_import(struct ctx *c, int n_pos, ctx_io_fn *fn, void *arg)
{
	int r;

	assert_engine();
	ctx_reset(c);
	if (n_pos < 1 || n_pos >= c->o.n_ctx)
		return -1;
	if ((r = state_walk(c, n_pos, fn, arg)) != 0) {
		ctx_reset(c);
		return r;
	}
	c->snap_pos = n_pos;
	return 0;
}

void
ctx_set_abort(struct ctx *c, bool (*fn)(void *arg), void *arg)
{
	c->abort_fn = fn;
	c->abort_arg = arg;
}

int
ctx_saved_pos(const struct ctx *c)
{
	return c->snap_pos;
}

int
ctx_pos(const struct ctx *c)
{
	return c->pos;
}

uint64_t
ctx_bytes(const struct ctx *c)
{
	return c->bytes;
}

void
ctx_capture_hidden(struct ctx *c, float *buf, int n_total)
{
	c->capture = buf;
	c->capture_n = n_total;
	c->capture_at = 0;
}

int
ctx_fill_synthetic(struct ctx *c, int n, char **cause)
{
	const struct model_config *cfg = &c->m->cfg;
	int nkv = cfg->n_kv_heads, hd = cfg->head_dim;
	uint64_t x = 0x9E3779B97F4A7C15ull;

	if (n < 0 || c->pos + n > c->o.n_ctx) {
		cause_set(cause, "%d more positions do not fit in a context of %d", n, c->o.n_ctx);
		return -1;
	}
	for (int slot = 0; slot < c->m->n_full; slot++)
		for (int h = 0; h < nkv; h++)
			for (int p = c->pos; p < c->pos + n; p++) {
				size_t at = (((size_t)slot * nkv + h) * c->o.n_ctx + p) * hd;

				for (int i = 0; i < hd; i++) {
					float k, v;

					/* xorshift: uniform in [-1, 1), no libc state touched */
					x ^= x << 13, x ^= x >> 7, x ^= x << 17;
					k = (float)((int64_t)x >> 11) * 0x1p-52f;
					x ^= x << 13, x ^= x >> 7, x ^= x << 17;
					v = (float)((int64_t)x >> 11) * 0x1p-52f;
					if (c->kv16) {
						c->kh[at + i] = f32_to_fp16(k);
						c->vh[at + i] = f32_to_fp16(v);
					} else {
						c->kc[at + i] = k;
						c->vc[at + i] = v;
					}
				}
			}
	c->pos += n;
	return 0;
}

uint64_t
ctx_kv_bytes_per_pos(const struct ctx *c)
{
	const struct model_config *cfg = &c->m->cfg;

	return (uint64_t)c->m->n_full * cfg->n_kv_heads * cfg->head_dim * 2 *
	       (c->kv16 ? sizeof(uint16_t) : sizeof(float));
}
