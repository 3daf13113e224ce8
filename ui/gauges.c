/*
 * gauges.c - the figures the status rows show: the load's progress and
 * read-ahead speed, the turn's prompt progress and live decode speed, the
 * last turn's speeds, the page-fault rate; with a remote engine, its request's
 * state and figures.  It owns them (struct gauges,
 * a->gauges): app.c and chat.c report what happened, screen.c and slash.c
 * read them through gauges() (a const view).  It calls no other UI file.
 *
 * UI thread only.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "msg.h"

#include "session.h" /* gen_stats_prefill_tps, gen_stats_decode_tps */
#include "thread-role.h"
#include "ui-int.h"
#include "util.h"

/* gauges.c's own state (a->gauges): what is shown, and what it is worked out from. */
struct gauges {
	struct gauge_view v;
	/* The read-ahead's last report: when, and whether it was reading. */
	double load_last_t;
	bool load_reading;
	int tok_n0; /* engine's token count and time at the turn's first token */
	double tok_t0;
	uint64_t last_majflt; /* at the last gauges_tick, and when it was */
	double last_gauge_t;
};

struct gauges *
gauges_new(void)
{
	return xcalloc(1, sizeof(struct gauges));
}

void
gauges_free(struct gauges *g)
{
	if (g == NULL)
		return;
	free(g->v.load_phase);
	free(g->v.net_state);
	free(g);
}

const struct gauge_view *
gauges(const struct app *a)
{
	assert_ui();
	return &a->gauges->v;
}

void
gauges_load_start(struct app *a)
{
	assert_ui();
	a->gauges->v.load_t0 = now_sec();
}

void
gauges_progress(struct app *a, char *phase, uint64_t bytes_read, uint64_t bytes_total, double t)
{
	struct gauges *g = a->gauges;
	bool reading = phase != NULL && strcmp(phase, "reading weights") == 0;

	assert_ui();
	if (reading && g->load_reading && t > g->load_last_t && bytes_read >= g->v.load_done) {
		g->v.load_read_s += t - g->load_last_t;
		g->v.load_read_bytes += bytes_read - g->v.load_done;
	}
	g->load_reading = reading;
	g->load_last_t = t;
	g->v.load_done = bytes_read;
	g->v.load_total = bytes_total;
	free(g->v.load_phase);
	g->v.load_phase = phase;
}

void
gauges_turn_start(struct app *a)
{
	struct gauges *g = a->gauges;

	assert_ui();
	g->tok_n0 = 0;
	g->v.tok_rate = 0;
	g->v.decode_tps = 0;
	g->v.prefill_done = g->v.prefill_total = 0;
	free(g->v.net_state);
	g->v.net_state = NULL;
	g->v.net_bytes = 0;
	g->v.net_ttft = g->v.net_tok_s = 0;
}

void
gauges_prefill(struct app *a, int done, int total)
{
	assert_ui();
	a->gauges->v.prefill_done = done;
	a->gauges->v.prefill_total = total;
}

/*
 * The decode speed so far, from the engine's own count and clock: tokens
 * reach this thread in batches, so arrival times say nothing about speed.
 * Averaged from the turn's first token, as the final figure is.
 */
void
gauges_token(struct app *a, int n, double t)
{
	struct gauges *g = a->gauges;

	assert_ui();
	if (g->tok_n0 == 0 || n < g->tok_n0) {
		g->tok_n0 = n;
		g->tok_t0 = t;
	} else if (n > g->tok_n0 && t > g->tok_t0)
		g->v.tok_rate = (n - g->tok_n0) / (t - g->tok_t0);
}

void
gauges_done(struct app *a, const struct gen_stats *s)
{
	struct gauge_view *v = &a->gauges->v;

	assert_ui();
	v->prefill_tps = gen_stats_prefill_tps(s);
	v->decode_tps = gen_stats_decode_tps(s);
	v->ttft = s->ttft_s;
	v->last_stats = *s;
}

void
gauges_net(struct app *a, struct msg_net *m)
{
	struct gauge_view *v = &a->gauges->v;

	assert_ui();
	free(v->net_state);
	v->net_state = m->state;
	m->state = NULL;
	v->net_bytes = m->bytes_in;
	v->net_ttft = m->ttft_s;
	v->net_tok_s = m->tok_s;
	v->net_t = m->t;
}

bool
gauges_tick(struct app *a)
{
	struct gauges *g = a->gauges;
	struct rusage ru;
	double t = now_sec();

	assert_ui();
	if (t - g->last_gauge_t < 1.0)
		return false;
	getrusage(RUSAGE_SELF, &ru);
	if (g->last_gauge_t > 0)
		g->v.majflt_rate =
			((double)ru.ru_majflt - (double)g->last_majflt) / (t - g->last_gauge_t);
	g->last_majflt = (uint64_t)ru.ru_majflt;
	g->last_gauge_t = t;
	return true;
}
