/* The daemon under churn: cycles of acquire -> JSON exec of `seq 1 1000` -> DELETE at
 * concurrency 1, 20 and 100 (cycles per second, acquire p50/p99, failures), 5000 idle
 * connections held (the daemon's RSS against its start figure, GET /v1/health latency while
 * they are open), and the RSS five seconds after the load ended. The daemon is the real
 * `sandbar serve` on a unix socket in a child process, so its memory is its own. */
#include <sandbar/base.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchdaemon.h"
#include "benchutil.h"

#define IDLE_CONNECTIONS 5000

static sbb_daemon g_d;

static long call(CURL *c, const char *method, const char *target, const char *body, sb_buf *out)
{
	return sbb_daemon_call(&g_d, c, method, target, body, out);
}

typedef struct worker {
	int idx, cycles, failures;
	double *acquire_s, *exec_s, *destroy_s; /* per cycle */
	const char *tag;
} worker;

static void *work(void *ud)
{
	worker *w = ud;
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	for (int i = 0; i < w->cycles; i++) {
		char body[128];
		snprintf(body, sizeof body, "{\"acquisition_id\":\"%s-%d-%d\"}", w->tag, w->idx, i);
		double t0 = sbb_now();
		long st = call(c, "POST", "/v1/leases", body, &out);
		w->acquire_s[i] = sbb_now() - t0;
		const char *p = strstr(sb_buf_cstr(&out), "\"id\":\"");
		if (st != 200 || !p) {
			if (!w->failures)
				fprintf(stderr, "# acquire failed: %ld %s\n", st,
				        sb_buf_cstr(&out));
			w->failures++;
			continue;
		}
		char id[80];
		snprintf(id, sizeof id, "%.*s", (int)strcspn(p + 6, "\""), p + 6);
		char t[160];
		snprintf(t, sizeof t, "/v1/leases/%s/exec", id);
		t0 = sbb_now();
		if (call(c, "POST", t, "{\"argv\":[\"seq\",\"1\",\"1000\"]}", &out) != 200)
			w->failures++;
		w->exec_s[i] = sbb_now() - t0;
		snprintf(t, sizeof t, "/v1/leases/%s", id);
		t0 = sbb_now();
		if (call(c, "DELETE", t, NULL, &out) != 200)
			w->failures++;
		w->destroy_s[i] = sbb_now() - t0;
	}
	sb_buf_deinit(&out);
	curl_easy_cleanup(c);
	return NULL;
}

/* GET /v1/health every 10 ms while a churn runs: the latency a monitor sees under load. */
typedef struct prober {
	volatile int stop;
	size_t n, failed;
	double lat[20000];
} prober;

static void *probe(void *ud)
{
	prober *p = ud;
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	while (!p->stop && p->n < sizeof p->lat / sizeof p->lat[0]) {
		double t0 = sbb_now();
		if (call(c, "GET", "/v1/health", NULL, &out) == 200)
			p->lat[p->n++] = sbb_now() - t0;
		else
			p->failed++;
		sb_sleep_ms(10);
	}
	sb_buf_deinit(&out);
	curl_easy_cleanup(c);
	return NULL;
}

static void churn(int conc, int total)
{
	prober *pr = sb_xcalloc(1, sizeof *pr);
	pthread_t pth;
	pthread_create(&pth, NULL, probe, pr);
	int per = total / conc;
	worker *w = sb_xcalloc((size_t)conc, sizeof *w);
	pthread_t *th = sb_xcalloc((size_t)conc, sizeof *th);
	double *acq = sb_xcalloc((size_t)(per * conc), sizeof *acq);
	double *ex = sb_xcalloc((size_t)(per * conc), sizeof *ex);
	double *de = sb_xcalloc((size_t)(per * conc), sizeof *de);
	char tag[32];
	snprintf(tag, sizeof tag, "c%d", conc);
	double t0 = sbb_now();
	for (int i = 0; i < conc; i++) {
		w[i] = (worker){.idx = i,
		                .cycles = per,
		                .acquire_s = acq + i * per,
		                .exec_s = ex + i * per,
		                .destroy_s = de + i * per,
		                .tag = tag};
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	int failures = 0;
	for (int i = 0; i < conc; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
	}
	double wall = sbb_now() - t0;
	pr->stop = 1;
	pthread_join(pth, NULL);
	size_t n = (size_t)(per * conc);
	char fig[128], ours[128], base[64];
	snprintf(fig, sizeof fig,
	         "churn at concurrency %d (%zu cycles: acquire, exec seq 1 1000, destroy)", conc,
	         n);
	snprintf(ours, sizeof ours, "%.0f cycles/s, %d failures", (double)n / wall, failures);
	sbb_row(fig, ours, "-", conc == 20 ? "target >= 150 cycles/s, 0 failures" : "0 failures");
	double p50 = sbb_percentile(acq, n, 0.5), p99 = sbb_percentile(acq, n, 0.99);
	snprintf(fig, sizeof fig, "acquire latency at concurrency %d, p50 / p99", conc);
	snprintf(ours, sizeof ours, "%.2f ms / %.2f ms", p50 * 1e3, p99 * 1e3);
	snprintf(base, sizeof base, "-");
	sbb_row(fig, ours, base, "-");
	snprintf(fig, sizeof fig, "exec / destroy latency at concurrency %d, p50", conc);
	snprintf(ours, sizeof ours, "%.2f ms / %.2f ms", sbb_percentile(ex, n, 0.5) * 1e3,
	         sbb_percentile(de, n, 0.5) * 1e3);
	sbb_row(fig, ours, "-", "-");
	snprintf(fig, sizeof fig, "GET /v1/health during churn at concurrency %d, p50 / p99", conc);
	if (pr->n)
		snprintf(ours, sizeof ours, "%.2f ms / %.2f ms (%zu probes, %zu failed)",
		         sbb_percentile(pr->lat, pr->n, 0.5) * 1e3,
		         sbb_percentile(pr->lat, pr->n, 0.99) * 1e3, pr->n, pr->failed);
	else
		snprintf(ours, sizeof ours, "no probe answered (%zu failed)", pr->failed);
	sbb_row(fig, ours, "-", "target p99 <= 50 ms");
	free(pr);
	free(acq);
	free(ex);
	free(de);
	free(th);
	free(w);
}

static int connect_unix(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", g_d.sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void idle_connections(long start_kib)
{
	int *fds = sb_xcalloc(IDLE_CONNECTIONS, sizeof *fds);
	int held = 0;
	for (int i = 0; i < IDLE_CONNECTIONS; i++)
		if ((fds[i] = connect_unix()) >= 0)
			held++;
	sb_sleep_ms(500); /* let the daemon accept them all */
	long kib = sbb_daemon_rss_kib(&g_d);
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	double lat[200];
	int ok = 0;
	for (int i = 0; i < 200; i++) {
		double t0 = sbb_now();
		ok += call(c, "GET", "/v1/health", NULL, &out) == 200;
		lat[i] = sbb_now() - t0;
	}
	char ours[128], base[64], ratio[64];
	snprintf(ours, sizeof ours, "%d of %d held, RSS %.1f MiB", held, IDLE_CONNECTIONS,
	         (double)kib / 1024);
	snprintf(base, sizeof base, "RSS at start %.1f MiB", (double)start_kib / 1024);
	snprintf(ratio, sizeof ratio, "target <= 64 MiB");
	sbb_row("idle connections held (unix socket, nothing sent)", ours, base, ratio);
	double p50 = sbb_percentile(lat, 200, 0.5), p99 = sbb_percentile(lat, 200, 0.99);
	snprintf(ours, sizeof ours, "p50 %.2f ms, p99 %.2f ms, %d/200 answered", p50 * 1e3,
	         p99 * 1e3, ok);
	sbb_row("GET /v1/health while 5000 idle connections are open", ours, "-",
	        "target p99 <= 50 ms");
	for (int i = 0; i < IDLE_CONNECTIONS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	sb_buf_deinit(&out);
	curl_easy_cleanup(c);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	if (!sbb_daemon_start(&g_d, "bench-churn", NULL))
		return 1;
	long start_kib = sbb_daemon_rss_kib(&g_d);
	/* SANDBAR_BENCH_CHURN="20:400[,c:n...]" runs only those churns (for profiling) */
	const char *only = getenv("SANDBAR_BENCH_CHURN");
	if (only && *only) {
		for (const char *p = only; *p;) {
			int conc = 0, total = 0, used = 0;
			if (sscanf(p, "%d:%d%n", &conc, &total, &used) != 2 || conc < 1 ||
			    conc > 1000 || total < conc || total > 100000) {
				fprintf(stderr, "SANDBAR_BENCH_CHURN: want c:n[,c:n...], got %s\n",
				        only);
				break;
			}
			churn(conc, total);
			p += used;
			p += *p == ',';
		}
	} else {
		churn(1, 50);
		churn(20, 400);
		churn(100, 500);
		idle_connections(start_kib);
	}
	sb_sleep_ms(5000);
	long after = sbb_daemon_rss_kib(&g_d);
	char ours[64], base[64], ratio[64];
	snprintf(ours, sizeof ours, "%.1f MiB", (double)after / 1024);
	snprintf(base, sizeof base, "%.1f MiB at start", (double)start_kib / 1024);
	snprintf(ratio, sizeof ratio, "%.2fx (target <= 2x)", (double)after / (double)start_kib);
	sbb_row("daemon RSS 5 s after the load ended", ours, base, ratio);
	sbb_daemon_stop(&g_d);
	curl_global_cleanup();
	return 0;
}
