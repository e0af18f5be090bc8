/* Daemon metrics, rendered as Prometheus text on GET /metrics. Counters are atomics so the hot
 * paths (every request, every streamed chunk) never take a lock. */
#ifndef SB_SERVER_METRICS_H
#define SB_SERVER_METRICS_H

#include <sandbar/base.h>

typedef struct sbs_metrics sbs_metrics;

sbs_metrics *sbs_metrics_new(void);
void sbs_metrics_free(sbs_metrics *m);
void sbs_metrics_request(sbs_metrics *m, unsigned status, int64_t duration_us);
void sbs_metrics_auth_failure(sbs_metrics *m);
void sbs_metrics_bytes_streamed(sbs_metrics *m, uint64_t n);
void sbs_metrics_exec_started(sbs_metrics *m);
void sbs_metrics_exec_finished(sbs_metrics *m);
/* Leases by state are counted at render time; pass them in. */
typedef struct sbs_lease_counts {
	uint64_t pending, active, destroying, destroyed, lost;
} sbs_lease_counts;
void sbs_metrics_render(sbs_metrics *m, const sbs_lease_counts *leases, sb_buf *out);

#endif
