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
/* What a streamed response body carried. */
typedef enum sbs_stream_kind {
	SBS_STREAM_JSON, /* a JSON exec result */
	SBS_STREAM_SSE,  /* an SSE stream */
	SBS_STREAM_FILE, /* a file, an archive, raw exec output */
	SBS_STREAM_KINDS
} sbs_stream_kind;
void sbs_metrics_bytes_streamed(sbs_metrics *m, sbs_stream_kind kind, uint64_t n);
void sbs_metrics_exec_started(sbs_metrics *m);
void sbs_metrics_exec_finished(sbs_metrics *m);
/* A lease was created (a sandbox made, not a replay) in duration_us. */
void sbs_metrics_acquired(sbs_metrics *m, int64_t duration_us);
/* An acquire failed inside the daemon; reason is a static string (sb_errcode_name). */
void sbs_metrics_acquire_failed(sbs_metrics *m, const char *reason);
/* Leases by state are counted at render time; pass them in. */
typedef struct sbs_lease_counts {
	uint64_t pending, active, destroying, destroyed, lost;
} sbs_lease_counts;
void sbs_metrics_render(sbs_metrics *m, const sbs_lease_counts *leases, sb_buf *out);

#endif
