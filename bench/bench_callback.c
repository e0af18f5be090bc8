/* Callback bridge benchmarks (issue 16): a GET relayed from inside a sandbox (curl -> in-sandbox
 * endpoint -> sandbar-init -> relay -> upstream) against the same GET sent directly to the
 * upstream on loopback, both timed by curl itself (median of its per-transfer time_total); and a
 * sustained run of relayed GETs from one sandbox (one after another), counting errors.
 *
 * The in-sandbox endpoint answers one request per connection, so the relayed client opens a new
 * connection each time. The direct baseline is measured twice, labelled: with a new connection
 * each (Connection: close, like for like) and with one kept-alive connection (the best a direct
 * client can do). The upstream is a minimal HTTP/1.1 responder with keep-alive, a thread per
 * connection, in this process; the relay may keep its own connection to it alive. */
#include <sandbar/sandbox.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "benchutil.h"

#define N_LAT 300
#define N_RATE 2000

static int up_fd, up_port;

static void die(sb_err *err, const char *what)
{
	if (err) {
		fprintf(stderr, "bench_callback: %s: %s\n", what, err->msg);
		exit(1);
	}
}

/* The upstream: one thread, epoll over the listener and every connection (no thread start in
 * any measured path); GETs without bodies, kept alive until the client closes or asks to. */
typedef struct up_conn {
	int fd;
	size_t len;
	char buf[8192];
} up_conn;

static void *upstream(void *arg)
{
	(void)arg;
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                            "Content-Length: 11\r\n\r\n{\"ok\":true}";
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, up_fd, &ev);
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		for (int i = 0; i < n; i++) {
			up_conn *c = evs[i].data.ptr;
			if (!c) {
				int fd = accept4(up_fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd < 0)
					continue;
				int one = 1;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
				c = calloc(1, sizeof *c);
				c->fd = fd;
				struct epoll_event ce = {.events = EPOLLIN, .data.ptr = c};
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
				continue;
			}
			ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
			bool done = got <= 0;
			if (got > 0)
				c->len += (size_t)got;
			char *end;
			while (!done && (end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
				size_t hlen = (size_t)(end - c->buf) + 4;
				done = memmem(c->buf, hlen, "\r\nConnection: close", 19) != NULL;
				(void)!send(c->fd, reply, sizeof reply - 1, MSG_NOSIGNAL);
				memmove(c->buf, c->buf + hlen, c->len - hlen);
				c->len -= hlen;
			}
			if (done || c->len == sizeof c->buf) {
				close(c->fd); /* also leaves the epoll set */
				free(c);
			}
		}
	}
}

/* Run a shell script in the sandbox; its stdout (malloc'd). */
static char *run_in(sb_sandbox *sb, const char *script)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	sb_sandbox_exec_req req = {.argv = argv};
	sb_sandbox_exec *x = NULL;
	die(sb_sandbox_exec_start(sb, &req, &x), "exec");
	sb_sandbox_exec_status st;
	for (;;) {
		die(sb_sandbox_exec_status_of(x, &st), "status");
		if (!st.running)
			break;
		die(sb_sandbox_exec_wait(x, 1000, NULL), "wait");
	}
	sb_buf out = SB_BUF_INIT;
	uint64_t off = 0;
	for (;;) {
		char buf[65536];
		size_t got = 0;
		die(sb_sandbox_exec_read(x, SB_STREAM_STDOUT, off, buf, sizeof buf, &got), "read");
		if (!got)
			break;
		sb_buf_append(&out, buf, got);
		off += got;
	}
	sb_sandbox_exec_free(x);
	char *s = sb_xstrdup(sb_buf_cstr(&out));
	sb_buf_deinit(&out);
	return s;
}

/* "code time" lines: median time in seconds, count of non-200 in *errors. */
static double median_of(const char *text, size_t *n_out, size_t *errors)
{
	size_t cap = 64, n = 0;
	double *v = malloc(cap * sizeof *v);
	*errors = 0;
	for (const char *p = text; *p;) {
		int code = 0;
		double t = 0;
		if (sscanf(p, "%d %lf", &code, &t) == 2) {
			if (code != 200)
				(*errors)++;
			if (n == cap)
				v = realloc(v, (cap *= 2) * sizeof *v);
			v[n++] = t;
		}
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		p = nl + 1;
	}
	double m = n ? sbb_median(v, n) : 0;
	free(v);
	*n_out = n;
	return m;
}

/* A curl command line fetching url n times (config on stdin keeps argv short). */
static char *curl_script(const char *url, int n, bool parallel, bool token, bool fresh)
{
	sb_buf b = SB_BUF_INIT;
	sb_buf_appends(&b, "{ ");
	sb_buf_appends(&b, "for i in $(seq ");
	char num[32];
	snprintf(num, sizeof num, "%d", n);
	sb_buf_appends(&b, num);
	sb_buf_appends(&b, "); do echo \"url = \\\"");
	sb_buf_appends(&b, url);
	sb_buf_appends(&b, "\\\"\"; echo 'output = /dev/null'; done; } | curl -s -K - ");
	if (parallel)
		sb_buf_appends(&b, "--parallel --parallel-max 8 ");
	if (token)
		sb_buf_appends(&b, "-H \"Authorization: Bearer $SANDBAR_CALLBACK_TOKEN\" ");
	if (fresh)
		sb_buf_appends(&b, "-H 'Connection: close' ");
	sb_buf_appends(&b, "-w '%{http_code} %{time_total}\\n'");
	char *s = sb_xstrdup(sb_buf_cstr(&b));
	sb_buf_deinit(&b);
	return s;
}

/* Median curl time_total of N_LAT direct GETs from this host. */
static double direct_median(const char *url, bool fresh, size_t *n, size_t *errors)
{
	char *s = curl_script(url, N_LAT, false, false, fresh);
	FILE *p = popen(s, "r");
	sb_buf hb = SB_BUF_INIT;
	char line[256];
	while (p && fgets(line, sizeof line, p))
		sb_buf_appends(&hb, line);
	if (p)
		pclose(p);
	double m = median_of(sb_buf_cstr(&hb), n, errors);
	sb_buf_deinit(&hb);
	free(s);
	return m;
}

int main(void)
{
	sb_log_set_level(SB_LOG_WARN); /* no access line per relayed request */
	up_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	if (up_fd < 0 || bind(up_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(up_fd, 512) < 0 || getsockname(up_fd, (struct sockaddr *)&a, &alen) < 0) {
		perror("bench_callback: upstream socket");
		return 1;
	}
	up_port = ntohs(a.sin_port);
	pthread_t th;
	pthread_create(&th, NULL, upstream, NULL);

	char *state = sbb_tmpdir("sandbar-bench", 0711);
	sb_sandbox_config cfg;
	sb_sandbox_config_init(&cfg);
	cfg.state_dir = state;
	char *origin = sb_strfmt("http://127.0.0.1:%d", up_port);
	char *origins[] = {origin, NULL};
	sb_callback_entry e = {.name = "up", .origins = origins};
	static const char cbjson[] =
	    "{\"name\":\"up\",\"routes\":[{\"method\":\"GET\",\"path\":\"^/api/ping$\"}]}";
	sb_callback_config *cb = NULL;
	die(sb_callback_config_from_json(cbjson, strlen(cbjson), &e, 1, &cb), "callback config");
	sb_sandbox_opts opts = {.callback = cb};
	sb_sandbox *sb = NULL;
	die(sb_sandbox_create(&cfg, "cb-bench", &opts, &sb), "create");
	char *cb_url = sb_sandbox_callback_url(sb);
	char *relayed = sb_strfmt("%s/api/ping", cb_url);
	char *direct = sb_strfmt("%s/api/ping", origin);

	/* warm-up */
	char *s = curl_script(relayed, 20, false, true, false);
	free(run_in(sb, s));
	free(s);

	size_t n_r, n_d, n_k, err_r, err_d, err_k;
	s = curl_script(relayed, N_LAT, false, true, false);
	char *out = run_in(sb, s);
	double med_r = median_of(out, &n_r, &err_r);
	free(out);
	free(s);
	double med_d = direct_median(direct, true, &n_d, &err_d);
	double med_k = direct_median(direct, false, &n_k, &err_k);
	if (n_r < N_LAT || n_d < N_LAT || n_k < N_LAT || err_r || err_d || err_k) {
		fprintf(stderr,
		        "bench_callback: %zu/%zu relayed (%zu errors), %zu/%zu direct (%zu), "
		        "%zu/%zu direct keep-alive (%zu)\n",
		        n_r, (size_t)N_LAT, err_r, n_d, (size_t)N_LAT, err_d, n_k, (size_t)N_LAT,
		        err_k);
		return 1;
	}
	sbb_row_ms("callback: relayed GET round trip, new client connection each (median of 300)",
	           med_r, med_d, "direct GET on loopback, new connection each");
	sbb_row_ms("callback: relayed GET round trip, new client connection each (median of 300)",
	           med_r, med_k, "direct GET on loopback, one kept-alive connection");

	s = curl_script(relayed, N_RATE, false, true, false);
	double t0 = sbb_now();
	out = run_in(sb, s);
	double dt = sbb_now() - t0;
	size_t n_ok, n_err;
	(void)median_of(out, &n_ok, &n_err);
	free(out);
	free(s);
	char ours[96], base[64], ratio[64];
	snprintf(ours, sizeof ours, "%.0f req/s (%zu requests, %zu errors)", (double)n_ok / dt,
	         n_ok, n_err);
	snprintf(base, sizeof base, "200 req/s (issue 16)");
	snprintf(ratio, sizeof ratio, "%.1fx", (double)n_ok / dt / 200.0);
	sbb_row("callback: relayed GETs from one sandbox, one after another", ours, base, ratio);

	free(relayed);
	free(direct);
	free(cb_url);
	die(sb_sandbox_destroy(sb), "destroy");
	sb_callback_config_free(cb);
	free(origin);
	sb_err_free(sb_fs_rm_rf(state));
	return n_err || n_ok < N_RATE ? 1 : 0;
}
