/* Prometheus text for GET /metrics: request counts by status class, request and acquire latency
 * histograms, auth and acquire failures, exec and streaming counters. Lock-free: every counter
 * is an atomic; acquire failure reasons are a fixed set of error-code names. */
#include "metrics.h"

#include <sandbar/sandbox.h>

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const double bucket_s[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof bucket_s / sizeof bucket_s[0])

typedef struct histogram {
	atomic_uint_fast64_t buckets[NBUCKETS + 1]; /* the last: over every bound */
	atomic_uint_fast64_t sum_us;
	atomic_uint_fast64_t count;
} histogram;

/* Acquire failure reasons: the error-code names of sb_errcode_name, one slot each. */
#define NREASONS 24

struct sbs_metrics {
	atomic_uint_fast64_t req_by_class[6]; /* 1xx..5xx, [0] other */
	histogram requests;
	histogram acquires;
	atomic_uint_fast64_t auth_failures;
	atomic_uint_fast64_t bytes_streamed[SBS_STREAM_KINDS];
	atomic_uint_fast64_t execs_total;
	atomic_int_fast64_t execs_running;
	atomic_uint_fast64_t acquire_failures[NREASONS];
	const char *_Atomic reason_names[NREASONS];
};

static const char *const kind_names[SBS_STREAM_KINDS] = {"json", "sse", "file"};

sbs_metrics *sbs_metrics_new(void)
{
	return sb_xcalloc(1, sizeof(sbs_metrics));
}

void sbs_metrics_free(sbs_metrics *m)
{
	free(m);
}

static void observe(histogram *h, int64_t duration_us)
{
	if (duration_us < 0)
		duration_us = 0;
	atomic_fetch_add(&h->count, 1);
	atomic_fetch_add(&h->sum_us, (uint64_t)duration_us);
	double s = (double)duration_us / 1e6;
	size_t i = 0;
	while (i < NBUCKETS && s > bucket_s[i])
		i++;
	atomic_fetch_add(&h->buckets[i], 1);
}

void sbs_metrics_request(sbs_metrics *m, unsigned status, int64_t duration_us)
{
	unsigned cls = status / 100;
	atomic_fetch_add(&m->req_by_class[cls >= 1 && cls <= 5 ? cls : 0], 1);
	observe(&m->requests, duration_us);
}

void sbs_metrics_auth_failure(sbs_metrics *m)
{
	atomic_fetch_add(&m->auth_failures, 1);
}

void sbs_metrics_bytes_streamed(sbs_metrics *m, sbs_stream_kind kind, uint64_t n)
{
	assert(kind < SBS_STREAM_KINDS);
	atomic_fetch_add(&m->bytes_streamed[kind], n);
}

void sbs_metrics_exec_started(sbs_metrics *m)
{
	atomic_fetch_add(&m->execs_total, 1);
	atomic_fetch_add(&m->execs_running, 1);
}

void sbs_metrics_exec_finished(sbs_metrics *m)
{
	int_fast64_t before = atomic_fetch_sub(&m->execs_running, 1);
	assert(before > 0); /* every finish matches one start */
	(void)before;
}

void sbs_metrics_acquired(sbs_metrics *m, int64_t duration_us)
{
	observe(&m->acquires, duration_us);
}

void sbs_metrics_acquire_failed(sbs_metrics *m, const char *reason)
{
	/* reason is a static error-code name: the same pointer names the same slot */
	for (size_t i = 0; i < NREASONS; i++) {
		const char *cur = atomic_load(&m->reason_names[i]);
		if (!cur) {
			const char *expected = NULL;
			if (!atomic_compare_exchange_strong(&m->reason_names[i], &expected, reason))
				cur = expected;
			else
				cur = reason;
		}
		if (strcmp(cur, reason) == 0) {
			atomic_fetch_add(&m->acquire_failures[i], 1);
			return;
		}
	}
}

static void render_histogram(sb_buf *out, const char *name, const char *help, histogram *h)
{
	sb_buf_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	uint64_t cum = 0;
	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += atomic_load(&h->buckets[i]);
		sb_buf_appendf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_s[i],
		               (unsigned long long)cum);
	}
	cum += atomic_load(&h->buckets[NBUCKETS]);
	sb_buf_appendf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
	               (unsigned long long)cum, name, (double)atomic_load(&h->sum_us) / 1e6, name,
	               (unsigned long long)atomic_load(&h->count));
}

void sbs_metrics_render(sbs_metrics *m, const sbs_lease_counts *l, sb_buf *out)
{
	sb_buf_appends(out,
	               "# HELP sandbar_leases Leases by state.\n# TYPE sandbar_leases gauge\n");
	const char *names[] = {"pending", "active", "destroying", "destroyed", "lost"};
	const uint64_t vals[] = {l->pending, l->active, l->destroying, l->destroyed, l->lost};
	for (size_t i = 0; i < 5; i++)
		sb_buf_appendf(out, "sandbar_leases{state=\"%s\"} %llu\n", names[i],
		               (unsigned long long)vals[i]);
	int64_t running = atomic_load(&m->execs_running);
	sb_buf_appendf(
	    out,
	    "# HELP sandbar_execs_running Execs started by this daemon and not yet "
	    "seen to finish.\n# TYPE sandbar_execs_running gauge\n"
	    "sandbar_execs_running %lld\n"
	    "# HELP sandbar_execs_total Execs started.\n# TYPE sandbar_execs_total counter\n"
	    "sandbar_execs_total %llu\n"
	    "# HELP sandbar_bytes_streamed_total Response body bytes streamed, by kind: JSON "
	    "exec results, SSE streams, files and archives.\n"
	    "# TYPE sandbar_bytes_streamed_total counter\n",
	    (long long)(running < 0 ? 0 : running),
	    (unsigned long long)atomic_load(&m->execs_total));
	for (size_t k = 0; k < SBS_STREAM_KINDS; k++)
		sb_buf_appendf(out, "sandbar_bytes_streamed_total{kind=\"%s\"} %llu\n",
		               kind_names[k],
		               (unsigned long long)atomic_load(&m->bytes_streamed[k]));
	sb_buf_appendf(out,
	               "# HELP sandbar_auth_failures_total Requests refused with 401.\n"
	               "# TYPE sandbar_auth_failures_total counter\n"
	               "sandbar_auth_failures_total %llu\n"
	               "# HELP sandbar_spares_discarded_total Spare lease directories found "
	               "incomplete and discarded instead of used.\n"
	               "# TYPE sandbar_spares_discarded_total counter\n"
	               "sandbar_spares_discarded_total %llu\n",
	               (unsigned long long)atomic_load(&m->auth_failures),
	               (unsigned long long)sb_sandbox_spares_discarded());
	sb_buf_appends(out, "# HELP sandbar_acquire_failures_total Acquires that failed inside "
	                    "the daemon (500 acquisition_failed), by error code.\n"
	                    "# TYPE sandbar_acquire_failures_total counter\n");
	uint64_t failed = 0;
	for (size_t i = 0; i < NREASONS; i++) {
		const char *r = atomic_load(&m->reason_names[i]);
		if (!r)
			break;
		uint64_t n = atomic_load(&m->acquire_failures[i]);
		failed += n;
		sb_buf_appendf(out, "sandbar_acquire_failures_total{reason=\"%s\"} %llu\n", r,
		               (unsigned long long)n);
	}
	if (!failed)
		sb_buf_appends(out, "sandbar_acquire_failures_total{reason=\"none\"} 0\n");
	render_histogram(out, "sandbar_acquire_duration_seconds",
	                 "Time to create a lease (acquires that made a sandbox).", &m->acquires);
	sb_buf_appends(out, "# HELP sandbar_http_requests_total Requests by status class.\n"
	                    "# TYPE sandbar_http_requests_total counter\n");
	const char *cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
	for (size_t i = 0; i < 6; i++)
		sb_buf_appendf(out, "sandbar_http_requests_total{class=\"%s\"} %llu\n", cls[i],
		               (unsigned long long)atomic_load(&m->req_by_class[i]));
	render_histogram(out, "sandbar_http_request_duration_seconds",
	                 "Time to the reply (streams: to their end).", &m->requests);
}
