/* Soak: a real daemon under concurrent streaming execs, workspace uploads and a flood of idle
 * connections for a bounded time (#18). SANDBAR_SOAK_STREAMS (default 200) threads each run
 * SSE execs one after another, SANDBAR_SOAK_UPLOADS (50) threads PUT workspace archives, and
 * SANDBAR_SOAK_IDLE (2000) connections are opened and never used, for SANDBAR_SOAK_SECONDS (60).
 *
 * Every stream is checked: its chunks arrive at consecutive offsets (no byte lost or twice), the
 * `end` event's stdout_bytes equals what arrived, and the SHA-256 of what arrived equals that
 * of the exec's output read back afterwards. Each line a command prints carries the machine's
 * uptime when printed (read by the shell from /proc/uptime, no fork; 10 ms resolution), so
 * the event latency is measured end to end. An upload is checked by reading back a file it
 * carried. Any other answer than the documented ones (200; 503 busy when a limit is reached)
 * counts as a failure; the daemon's peak RSS is sampled every 100 ms. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "benchdaemon.h"
#include "benchutil.h"

#define LINES_PER_EXEC 10
#define STREAMS_PER_LEASE 10
#define UPLOAD_BYTES (256u * 1024u)
#define MAX_LATENCIES 200000

static sbb_daemon g_d;
static double g_deadline;
static atomic_int g_failures, g_execs, g_uploads, g_busy;
static atomic_llong g_bytes;
static pthread_mutex_t g_lat_mu = PTHREAD_MUTEX_INITIALIZER;
static double *g_lat;
static size_t g_nlat;

/* Count a failure; the first few are described on stderr. */
#define fail(...)                                                                                  \
	do {                                                                                       \
		if (atomic_fetch_add(&g_failures, 1) < 10) {                                       \
			fprintf(stderr, "# " __VA_ARGS__);                                         \
			fprintf(stderr, "\n");                                                     \
		}                                                                                  \
	} while (0)

static double uptime_now(void)
{
	FILE *f = fopen("/proc/uptime", "r");
	double up = 0;
	if (f) {
		if (fscanf(f, "%lf", &up) != 1)
			up = 0;
		fclose(f);
	}
	return up;
}

/* ---- one SSE exec */

typedef struct stream {
	sb_buf pending;  /* bytes of the event stream not yet parsed */
	sb_buf line;     /* the command's current output line */
	uint64_t got;    /* stdout bytes received */
	sb_sha256 *hash; /* of those bytes */
	bool ended, bad;
	uint64_t end_bytes;
	char exec_id[80];
} stream;

static void on_line(const char *l, size_t n)
{
	char buf[64];
	snprintf(buf, sizeof buf, "%.*s", (int)(n < 63 ? n : 63), l);
	int i = 0;
	double up = 0;
	if (sscanf(buf, "%d %lf", &i, &up) != 2)
		return;
	double lat = uptime_now() - up;
	pthread_mutex_lock(&g_lat_mu);
	if (g_nlat < MAX_LATENCIES)
		g_lat[g_nlat++] = lat < 0 ? 0 : lat;
	pthread_mutex_unlock(&g_lat_mu);
}

static void on_event(stream *s, const char *ev, size_t n)
{
	const char *type = strstr(ev, "event: ");
	const char *data = strstr(ev, "data: ");
	if (!type || !data || (size_t)(data - ev) > n)
		return;
	type += 7;
	data += 6;
	if (strncmp(type, "start", 5) == 0) {
		sbb_json_str(data, "exec_id", s->exec_id, sizeof s->exec_id);
	} else if (strncmp(type, "stdout", 6) == 0) {
		const char *o = strstr(data, "\"offset\":");
		char b64[8192];
		sbb_json_str(data, "data_b64", b64, sizeof b64);
		unsigned long long off = o ? strtoull(o + 9, NULL, 10) : ~0ull;
		sb_buf raw = SB_BUF_INIT;
		sb_err *err = sb_b64_decode(b64, strlen(b64), &raw);
		if (err || off != s->got) {
			s->bad = true; /* a gap, a repeat, or a chunk we could not read */
			sb_err_free(err);
		} else {
			sb_sha256_update(s->hash, raw.data, raw.len);
			s->got += raw.len;
			for (size_t k = 0; k < raw.len; k++) {
				if (raw.data[k] == '\n') {
					on_line(s->line.data ? s->line.data : "", s->line.len);
					sb_buf_clear(&s->line);
				} else {
					sb_buf_append(&s->line, raw.data + k, 1);
				}
			}
		}
		sb_buf_deinit(&raw);
	} else if (strncmp(type, "end", 3) == 0) {
		const char *b = strstr(data, "\"stdout_bytes\":");
		s->end_bytes = b ? strtoull(b + 15, NULL, 10) : 0;
		s->ended = true;
	}
}

static size_t on_sse(char *p, size_t sz, size_t nm, void *ud)
{
	stream *s = ud;
	sb_buf_append(&s->pending, p, sz * nm);
	for (;;) {
		const char *d = s->pending.data;
		const char *e = d ? strstr(sb_buf_cstr(&s->pending), "\n\n") : NULL;
		if (!e)
			break;
		size_t n = (size_t)(e - d) + 2;
		char *ev = sb_xstrndup(d, n);
		on_event(s, ev, n);
		free(ev);
		memmove(s->pending.data, d + n, s->pending.len - n);
		s->pending.len -= n;
		s->pending.data[s->pending.len] = '\0';
	}
	return sz * nm;
}

static void check_readback(CURL *c, const char *lease, stream *s, sb_buf *out)
{
	char target[300];
	snprintf(target, sizeof target, "/v1/leases/%s/execs/%s/output?stream=stdout", lease,
	         s->exec_id);
	long st = sbb_daemon_call(&g_d, c, "GET", target, NULL, out);
	unsigned char a[SB_SHA256_LEN], b[SB_SHA256_LEN];
	sb_sha256_final(s->hash, a);
	sb_sha256_once(out->data ? out->data : "", out->len, b);
	if (st != 200 || memcmp(a, b, sizeof a) != 0)
		fail("exec %s: the stream's SHA-256 differs from the output read back (%ld)",
		     s->exec_id, st);
}

static void one_exec(CURL *c, const char *lease, int n, sb_buf *out)
{
	stream s = {.pending = SB_BUF_INIT, .line = SB_BUF_INIT, .hash = sb_sha256_new()};
	char url[300], body[400];
	snprintf(url, sizeof url, "http://localhost/v1/leases/%s/exec", lease);
	/* 1 KiB lines, one a second: `read` is a builtin, so only sleep forks */
	snprintf(body, sizeof body,
	         "{\"script\":\"p=$(printf %%0900d 0); i=0; while [ $i -lt %d ]; do read up x "
	         "< /proc/uptime; echo \\\"$i $up $p\\\"; i=$((i+1)); sleep 1; done\"}",
	         n);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, g_d.sock);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " SBB_TOKEN);
	h = curl_slist_append(h, "Accept: text/event-stream");
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	CURLcode rc = curl_easy_perform(c);
	long st = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	if (rc != CURLE_OK || st != 200) {
		if (st == 503)
			atomic_fetch_add(&g_busy, 1);
		else
			fail("exec in %s: HTTP %ld", lease, st ? st : -(long)rc);
	} else if (s.bad || !s.ended || s.end_bytes != s.got) {
		fail("exec %s: stream broken (gap or repeat, no end, or a byte count off: %ld)",
		     s.exec_id, (long)(s.end_bytes - s.got));
	} else {
		atomic_fetch_add(&g_execs, 1);
		atomic_fetch_add(&g_bytes, (long long)s.got);
		check_readback(c, lease, &s, out);
		s.hash = NULL; /* finalised */
	}
	if (s.hash)
		sb_sha256_free(s.hash);
	sb_buf_deinit(&s.pending);
	sb_buf_deinit(&s.line);
}

static void *streamer(void *arg)
{
	const char *lease = arg;
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	while (sbb_now() + LINES_PER_EXEC < g_deadline)
		one_exec(c, lease, LINES_PER_EXEC, &out);
	sb_buf_deinit(&out);
	curl_easy_cleanup(c);
	return NULL;
}

/* ---- uploads */

typedef struct uploader {
	char lease[96];
	const sb_buf *archive;
	int idx;
} uploader;

static void *upload_loop(void *arg)
{
	uploader *u = arg;
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	char target[200];
	snprintf(target, sizeof target, "/v1/leases/%s/workspace", u->lease);
	while (sbb_now() < g_deadline) {
		long st = sbb_daemon_call_body(&g_d, c, "PUT", target, u->archive->data,
		                               u->archive->len, &out);
		if (st == 200)
			atomic_fetch_add(&g_uploads, 1);
		else if (st == 503)
			atomic_fetch_add(&g_busy, 1);
		else
			fail("upload to %s: HTTP %ld", u->lease, st);
	}
	snprintf(target, sizeof target, "/v1/leases/%s/files/soak/blob", u->lease);
	long st = sbb_daemon_call(&g_d, c, "GET", target, NULL, &out);
	if (st != 200 || out.len != UPLOAD_BYTES)
		fail("reading back the upload of %s: HTTP %ld", u->lease, st);
	sb_buf_deinit(&out);
	curl_easy_cleanup(c);
	return NULL;
}

static bool make_archive(sb_buf *out)
{
	char *dir = sbb_tmpdir("sandbar-soak-tar", 0700);
	char cmd[400];
	snprintf(cmd, sizeof cmd,
	         "mkdir -p %s/soak && head -c %u /dev/urandom > %s/soak/blob && tar -C %s -cf "
	         "%s/a.tar soak",
	         dir, UPLOAD_BYTES, dir, dir, dir);
	bool ok = system(cmd) == 0;
	char path[200];
	snprintf(path, sizeof path, "%s/a.tar", dir);
	sb_err *err = ok ? sb_read_file(path, 64u << 20, out) : NULL;
	ok = ok && !err;
	sb_err_free(err);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ok = system(cmd) == 0 && ok;
	free(dir);
	return ok;
}

/* ---- idle connections and memory */

static int hold_idle(int n, int *fds)
{
	int held = 0;
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof sa.sun_path, "%s", g_d.sock);
		if (fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0)
			held++;
	}
	return held;
}

static atomic_long g_peak_kib;

static void *sample_rss(void *arg)
{
	(void)arg;
	while (sbb_now() < g_deadline + 15) {
		long kib = sbb_daemon_rss_kib(&g_d);
		if (kib > atomic_load(&g_peak_kib))
			atomic_store(&g_peak_kib, kib);
		sb_sleep_ms(100);
	}
	return NULL;
}

static char *acquire(CURL *c, const char *name, sb_buf *out)
{
	char body[160], id[96];
	snprintf(body, sizeof body, "{\"acquisition_id\":\"%s\"}", name);
	if (sbb_daemon_call(&g_d, c, "POST", "/v1/leases", body, out) != 200 ||
	    !sbb_json_str(sb_buf_cstr(out), "id", id, sizeof id)[0]) {
		fprintf(stderr, "# acquire %s: %.200s\n", name, sb_buf_cstr(out));
		return NULL;
	}
	return sb_xstrdup(id);
}

static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	return v && atoi(v) > 0 ? atoi(v) : dflt;
}

int main(void)
{
	int streams = env_int("SANDBAR_SOAK_STREAMS", 200);
	int uploads = env_int("SANDBAR_SOAK_UPLOADS", 50);
	int idle = env_int("SANDBAR_SOAK_IDLE", 2000);
	int seconds = env_int("SANDBAR_SOAK_SECONDS", 60);
	curl_global_init(CURL_GLOBAL_ALL);
	g_lat = sb_xcalloc(MAX_LATENCIES, sizeof *g_lat);
	sb_buf archive = SB_BUF_INIT;
	if (!make_archive(&archive) || !sbb_daemon_start(&g_d, "soak-load", NULL))
		return 1;
	long start_kib = sbb_daemon_rss_kib(&g_d);
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	int nleases = (streams + STREAMS_PER_LEASE - 1) / STREAMS_PER_LEASE;
	char **leases = sb_xcalloc((size_t)nleases, sizeof *leases);
	uploader *up = sb_xcalloc((size_t)uploads, sizeof *up);
	for (int i = 0; i < nleases; i++) {
		char name[64];
		snprintf(name, sizeof name, "soak-stream-%d", i);
		if (!(leases[i] = acquire(c, name, &out)))
			return 1;
	}
	for (int i = 0; i < uploads; i++) {
		char name[64];
		snprintf(name, sizeof name, "soak-upload-%d", i);
		char *id = acquire(c, name, &out);
		if (!id)
			return 1;
		snprintf(up[i].lease, sizeof up[i].lease, "%s", id);
		free(id);
		up[i].archive = &archive;
	}
	int *fds = sb_xcalloc((size_t)idle, sizeof *fds);
	int held = hold_idle(idle, fds);
	g_deadline = sbb_now() + seconds;
	pthread_t rss, *st = sb_xcalloc((size_t)streams, sizeof *st),
	               *ut = sb_xcalloc((size_t)uploads, sizeof *ut);
	pthread_create(&rss, NULL, sample_rss, NULL);
	for (int i = 0; i < streams; i++)
		pthread_create(&st[i], NULL, streamer, leases[i / STREAMS_PER_LEASE]);
	for (int i = 0; i < uploads; i++)
		pthread_create(&ut[i], NULL, upload_loop, &up[i]);
	for (int i = 0; i < streams; i++)
		pthread_join(st[i], NULL);
	for (int i = 0; i < uploads; i++)
		pthread_join(ut[i], NULL);
	pthread_join(rss, NULL);
	for (int i = 0; i < idle; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	double p50 = sbb_percentile(g_lat, g_nlat, 0.5), p99 = sbb_percentile(g_lat, g_nlat, 0.99);
	char figures[600];
	snprintf(figures, sizeof figures,
	         "%d streams over %d leases: %d execs, %.1f MiB streamed and checksummed; %d "
	         "uploads of %u KiB by %d threads; %d of %d idle connections held; %d answered "
	         "503 busy (a documented limit); event latency p50 %.0f ms p99 %.0f ms (%zu "
	         "lines, 10 ms resolution); daemon RSS %.1f MiB at start, %.1f MiB peak",
	         streams, nleases, atomic_load(&g_execs), (double)atomic_load(&g_bytes) / (1 << 20),
	         atomic_load(&g_uploads), UPLOAD_BYTES / 1024, uploads, held, idle,
	         atomic_load(&g_busy), p50 * 1e3, p99 * 1e3, g_nlat, (double)start_kib / 1024,
	         (double)atomic_load(&g_peak_kib) / 1024);
	int trials = atomic_load(&g_execs) + atomic_load(&g_uploads) + atomic_load(&g_failures);
	printf("streaming execs, workspace uploads and idle connections at once for %d "
	       "s\t%d\t%d\t%s\n",
	       seconds, trials, atomic_load(&g_failures), figures);
	for (int i = 0; i < nleases; i++)
		free(leases[i]);
	free(leases);
	free(up);
	free(fds);
	free(st);
	free(ut);
	free(g_lat);
	sb_buf_deinit(&out);
	sb_buf_deinit(&archive);
	curl_easy_cleanup(c);
	sbb_daemon_stop(&g_d);
	curl_global_cleanup();
	return 0;
}
