/* Prometheus text for GET /metrics: request counts by status class, a latency histogram, auth
 * failures, exec and streaming counters. Lock-free: every counter is an atomic. */
#include "metrics.h"

#include <stdatomic.h>
#include <stdlib.h>

static const double bucket_s[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof bucket_s / sizeof bucket_s[0])

struct sbs_metrics {
	atomic_uint_fast64_t req_by_class[6]; /* 1xx..5xx, [0] other */
	atomic_uint_fast64_t hist[NBUCKETS + 1];
	atomic_uint_fast64_t dur_sum_us;
	atomic_uint_fast64_t req_count;
	atomic_uint_fast64_t auth_failures;
	atomic_uint_fast64_t bytes_streamed;
	atomic_uint_fast64_t execs_total;
	atomic_int_fast64_t execs_running;
};

sbs_metrics *sbs_metrics_new(void)
{
	return sb_xcalloc(1, sizeof(sbs_metrics));
}

void sbs_metrics_free(sbs_metrics *m)
{
	free(m);
}

void sbs_metrics_request(sbs_metrics *m, unsigned status, int64_t duration_us)
{
	unsigned cls = status / 100;
	atomic_fetch_add(&m->req_by_class[cls >= 1 && cls <= 5 ? cls : 0], 1);
	atomic_fetch_add(&m->req_count, 1);
	if (duration_us < 0)
		duration_us = 0;
	atomic_fetch_add(&m->dur_sum_us, (uint64_t)duration_us);
	double s = (double)duration_us / 1e6;
	size_t i = 0;
	while (i < NBUCKETS && s > bucket_s[i])
		i++;
	atomic_fetch_add(&m->hist[i], 1);
}

void sbs_metrics_auth_failure(sbs_metrics *m)
{
	atomic_fetch_add(&m->auth_failures, 1);
}

void sbs_metrics_bytes_streamed(sbs_metrics *m, uint64_t n)
{
	atomic_fetch_add(&m->bytes_streamed, n);
}

void sbs_metrics_exec_started(sbs_metrics *m)
{
	atomic_fetch_add(&m->execs_total, 1);
	atomic_fetch_add(&m->execs_running, 1);
}

void sbs_metrics_exec_finished(sbs_metrics *m)
{
	atomic_fetch_sub(&m->execs_running, 1);
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
	    "# HELP sandbar_bytes_streamed_total Response body bytes streamed (exec "
	    "output, files, archives).\n# TYPE sandbar_bytes_streamed_total counter\n"
	    "sandbar_bytes_streamed_total %llu\n"
	    "# HELP sandbar_auth_failures_total Requests refused with 401.\n"
	    "# TYPE sandbar_auth_failures_total counter\n"
	    "sandbar_auth_failures_total %llu\n",
	    (long long)(running < 0 ? 0 : running),
	    (unsigned long long)atomic_load(&m->execs_total),
	    (unsigned long long)atomic_load(&m->bytes_streamed),
	    (unsigned long long)atomic_load(&m->auth_failures));
	sb_buf_appends(out, "# HELP sandbar_http_requests_total Requests by status class.\n"
	                    "# TYPE sandbar_http_requests_total counter\n");
	const char *cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
	for (size_t i = 0; i < 6; i++)
		sb_buf_appendf(out, "sandbar_http_requests_total{class=\"%s\"} %llu\n", cls[i],
		               (unsigned long long)atomic_load(&m->req_by_class[i]));
	sb_buf_appends(out, "# HELP sandbar_http_request_duration_seconds Time to the reply "
	                    "(streams: to their end).\n"
	                    "# TYPE sandbar_http_request_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += atomic_load(&m->hist[i]);
		sb_buf_appendf(out,
		               "sandbar_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
		               bucket_s[i], (unsigned long long)cum);
	}
	cum += atomic_load(&m->hist[NBUCKETS]);
	sb_buf_appendf(out,
	               "sandbar_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	               "sandbar_http_request_duration_seconds_sum %.6f\n"
	               "sandbar_http_request_duration_seconds_count %llu\n",
	               (unsigned long long)cum, (double)atomic_load(&m->dur_sum_us) / 1e6,
	               (unsigned long long)atomic_load(&m->req_count));
}
