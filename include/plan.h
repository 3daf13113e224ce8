/*
 * plan.h - `qnext plan`: what a checkpoint will cost on this machine before
 * it is run.  From the checkpoint's real layout (bits of every module group,
 * as bound by model_open) and the context length it derives the bytes the
 * model maps, the weight bytes read per decoded token, the DeltaNet state,
 * the KV cache and scratch that forward.c allocates; from the machine (RAM,
 * swap, free disk, CPU, and the bandwidths `qnext bench-hw` remembered) it
 * decides whether the model fits in RAM and predicts the decode speed, or
 * the disk-bound speed when it does not fit (docs/perf.md "Decode ceiling",
 * docs/perf.md "Models larger than RAM").
 *
 * The arithmetic is split from the probing so it can be tested:
 * plan_model_init() reads an opened model, plan_machine_probe() the machine,
 * and plan_compute() is a pure function of the two.
 *
 * Thread affinity: the CLI main thread (plan_print is also what the main
 * command's --dry-run calls).  plan_compute is pure: any thread.
 */
#ifndef QNEXT_PLAN_H
#define QNEXT_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "forward.h"
#include "hwinfo.h"

struct model;

#define PLAN_DEFAULT_CTX  CTX_N_CTX_DEFAULT   /* the chat's default context (the engine's) */
#define PLAN_N_BATCH      256                 /* the chat's prefill batch (session.c) */
#define PLAN_OVERHEAD     ((uint64_t)1 << 30) /* process, tokenizer, UI, libraries */
#define PLAN_DISK_ASSUMED 2.0                 /* GB/s assumed when the disk was not measured */

/* Module groups, in the order they are printed. */
enum plan_group_id {
	PLAN_EXPERTS,     /* routed experts (gate, up, down of every expert) */
	PLAN_SHARED,      /* shared expert gate, up, down */
	PLAN_SHARED_GATE, /* shared_expert_gate (the 1-row sigmoid gate) */
	PLAN_ROUTER,      /* mlp.gate */
	PLAN_ATTN,        /* full attention q, k, v, o */
	PLAN_GDN,         /* DeltaNet in_proj_qkvz, in_proj_ba, out_proj */
	PLAN_MLP,         /* dense MLP (layers that are not MoE; none in Qwen3-Next) */
	PLAN_EMBED,       /* embed_tokens (one row read per token) */
	PLAN_LM_HEAD,     /* lm_head */
	PLAN_N_GROUPS
};

struct plan_group {
	const char *name;      /* static: "routed experts", ... */
	int n_mats;            /* matrices in the group; 0 = absent */
	char formats[64];      /* the distinct formats found: "int4 g128", "int8 g128 + bf16" */
	uint64_t bytes;        /* bytes in the checkpoint */
	uint64_t decode_bytes; /* bytes read per decoded token */
};

/* What a checkpoint costs at a context length.  Bytes throughout. */
struct plan_model {
	struct plan_group groups[PLAN_N_GROUPS];
	int n_shards;
	uint64_t mapped_bytes;        /* sum of the shard files' sizes (what mmap maps) */
	uint64_t weight_bytes;        /* every bound matrix (model->weight_bytes) */
	uint64_t decode_bytes;        /* weights read per decoded token (model->decode_bytes) */
	uint64_t expert_bytes;        /* all routed experts */
	uint64_t expert_decode_bytes; /* the top-k routed experts read per token */
	int n_ctx;                    /* context length the sizes below are for */
	int n_threads;                /* workers (sizes the attention score rows) */
	uint64_t kv_token_bytes;      /* K and V per context position (half floats) */
	uint64_t kv_bytes;            /* kv_token_bytes * n_ctx */
	uint64_t state_bytes;         /* DeltaNet conv windows and recurrent states */
	uint64_t snapshot_bytes;      /* ctx_save()'s copy of the DeltaNet states */
	uint64_t scratch_bytes;       /* per-batch buffers for PLAN_N_BATCH-token steps */
	uint64_t ctx_bytes;           /* kv + state + snapshot + scratch */
};

/* The machine.  Bytes; speeds in GB/s with 0 meaning not measured. */
struct plan_machine {
	uint64_t mem_total, mem_available; /* MemTotal, MemAvailable */
	uint64_t swap_total, swap_free;
	uint64_t disk_free; /* free bytes where the model lives; 0 = unknown */
	struct hwinfo_cpu cpu;
	bool measured;   /* hw.json was found */
	double read_1t;  /* streaming read, one thread */
	double read_all; /* streaming read, all cores: the bandwidth decode sees */
	int read_threads;
	double disk_gbs;                 /* sequential read without the page cache */
	uint64_t disk_bytes;             /* how much bench-hw read to measure it */
	char disk_path[HWINFO_PATH_LEN]; /* what bench-hw read to measure disk_gbs */
	int64_t when;                    /* when bench-hw ran (seconds since the epoch) */
};

enum plan_fit {
	PLAN_FITS,      /* weights + context + overhead <= MemAvailable */
	PLAN_FITS_BUSY, /* <= MemTotal but > MemAvailable: other programs hold the rest */
	PLAN_NO_FIT,    /* > MemTotal: decode reads experts from disk */
};

struct plan_result {
	uint64_t need_bytes; /* mapped + ctx + PLAN_OVERHEAD */
	enum plan_fit fit;
	double tok_s;     /* read_all / decode_bytes; 0 when not measured */
	double tok_s_ctx; /* the same with a full context: weights + DeltaNet state read
			   * and written + the whole KV cache read */
	/* When need_bytes > MemAvailable (uniform routing assumed): */
	uint64_t cache_bytes; /* RAM left for the page cache to hold weights */
	double expert_cached; /* fraction of routed expert bytes that stays cached */
	uint64_t miss_bytes;  /* bytes read from disk per decoded token */
	double disk_gbs;      /* the disk speed used */
	bool disk_assumed;    /* disk_gbs is PLAN_DISK_ASSUMED */
	double tok_s_disk;    /* 1 / (memory time + disk time) per token */
	/* The expert cache qnext makes instead (--expert-cache auto, xcache_budget): */
	uint64_t xc_bytes;      /* experts it holds */
	uint64_t xc_resident;   /* every-token weights left to the page cache */
	double xc_cached;       /* share of the routed expert bytes it holds */
	uint64_t xc_miss_bytes; /* read from disk per token with uniform routing */
	double xc_tok_s;        /* 1 / (memory time + disk time) per token */
};

/*
 * Fill *pm (OUT) from an opened model for a context of n_ctx positions run
 * on n_threads workers: module groups with their formats and bytes, shard
 * sizes (stat), and the KV cache, DeltaNet state, snapshot and scratch
 * that ctx_new would allocate (forward.c's ctx_plan).  0, or -1 with
 * *cause when a shard cannot be stat'ed.
 */
int plan_model_init(struct plan_model *pm, const struct model *m, int n_ctx, int n_threads,
		    char **cause);

/* Copy what bench-hw measured (r) into *mc (OUT; other fields untouched). */
void plan_machine_from_hw(struct plan_machine *mc, const struct hwinfo *r);

/* Fill *mc (OUT): /proc/meminfo, statvfs(dir) (dir may be NULL), the CPU, and
 * hw.json when bench-hw has run.  Never fails; unknown figures are 0. */
void plan_machine_probe(const char *dir, struct plan_machine *mc);

/* Decide fit and predict speeds (OUT *r).  Pure. */
void plan_compute(const struct plan_model *pm, const struct plan_machine *mc,
		  struct plan_result *r);

/* The plan as one JSON object (malloc'd, no newline). */
char *plan_json(const char *dir, const struct plan_model *pm, const struct plan_machine *mc,
		const struct plan_result *r);

/* The plan as readable text on f. */
void plan_write(FILE *f, const char *dir, const struct plan_model *pm,
		const struct plan_machine *mc, const struct plan_result *r);

/* b in decimal units ("43.21 GB", "812.3 MB", "58.4 kB", "512 B"), matching the GB/s
 * of the bandwidths.  Writes at most n bytes to buf and returns buf. */
const char *plan_bytes(uint64_t b, char *buf, size_t n);

/*
 * Open the model in dir, probe the machine and print the plan for n_ctx
 * positions (0 = PLAN_DEFAULT_CTX) to stdout, as text or JSON.  Returns 0,
 * or -1 after printing "qnext: CAUSE" on stderr.
 */
int plan_print(const char *dir, int n_ctx, bool json);

/* Entry point for `qnext plan ARGS`; returns the process exit status. */
int plan_main(int argc, char **argv);

#endif
