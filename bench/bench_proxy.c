/* Egress proxy benchmarks (issue 14), ratios of medians measured in the same run:
 *  - request latency through the proxy vs direct (one small GET per connection, loopback);
 *  - bulk throughput through the proxy vs direct (one 64 MiB GET);
 *  - `sandbar run -- true` with an allowlist vs without.
 * The upstream is a small C server on 127.0.0.1 (allowed by an IP entry); the proxy listens on
 * a unix socket, as it is reached from a sandbox (sandbar-init hands it the sandbox's socket). */
#include "benchutil.h"

#include <sandbar/sandbox.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define REQUESTS 300
#define BULK_BYTES (64u << 20)
#define BULK_ROUNDS 7
#define RUNS 11

extern char **environ;

static int srv_port;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *serve_one(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];
	size_t n = 0;
	while (n < sizeof buf - 1) {
		ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	size_t size = strstr(buf, " /bulk") ? BULK_BYTES : 16;
	char head[128];
	int hl =
	    snprintf(head, sizeof head,
	             "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", size);
	if (write(fd, head, (size_t)hl) < 0)
		goto out;
	memset(buf, 'x', sizeof buf);
	while (size) {
		size_t k = size < sizeof buf ? size : sizeof buf;
		ssize_t w = write(fd, buf, k);
		if (w <= 0)
			break;
		size -= (size_t)w;
	}
out:
	close(fd);
	return NULL;
}

static void *server_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_t t;
		pthread_create(&t, NULL, serve_one, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
	return NULL;
}

static int connect_tcp(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv_port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect upstream");
	return fd;
}

static int connect_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect proxy");
	return fd;
}

/* One GET; returns seconds, checks the body size. */
static double get(const char *proxy, const char *path, size_t want)
{
	double t0 = sbb_now();
	int fd = proxy ? connect_unix(proxy) : connect_tcp();
	char req[256];
	int n = proxy
	            ? snprintf(req, sizeof req,
	                       "GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: "
	                       "127.0.0.1\r\n\r\n",
	                       srv_port, path)
	            : snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (write(fd, req, (size_t)n) != n)
		die("write");
	static char buf[1 << 18];
	size_t total = 0;
	for (;;) {
		ssize_t k = read(fd, buf, sizeof buf);
		if (k <= 0)
			break;
		total += (size_t)k;
	}
	close(fd);
	double t = sbb_now() - t0;
	if (total < want) {
		fprintf(stderr, "bench_proxy: short response (%zu of %zu bytes)\n", total, want);
		exit(1);
	}
	return t;
}

static double run_true(const char *sandbar, const char *state, const char *ws, bool allow)
{
	char *argv[16];
	int a = 0;
	argv[a++] = (char *)sandbar;
	argv[a++] = "run";
	argv[a++] = "-q";
	argv[a++] = "--state-dir";
	argv[a++] = (char *)state;
	argv[a++] = "-w";
	argv[a++] = (char *)ws;
	if (allow) {
		argv[a++] = "--allow-net";
		argv[a++] = "api.anthropic.com";
	}
	argv[a++] = "--";
	argv[a++] = "true";
	argv[a] = NULL;
	double t0 = sbb_now();
	pid_t pid;
	if (posix_spawn(&pid, sandbar, NULL, NULL, argv, environ) != 0)
		die("spawn sandbar");
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench_proxy: sandbar run failed\n");
		exit(1);
	}
	return sbb_now() - t0;
}

int main(void)
{
	char tmpl[] = "/tmp/sandbar-bench-proxy-XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir || chmod(dir, 0755) < 0)
		die("mkdtemp");
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 512) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		die("listen");
	srv_port = ntohs(sa.sin_port);
	pthread_t st;
	pthread_create(&st, NULL, server_main, (void *)(intptr_t)lfd);

	char *sock = NULL;
	if (asprintf(&sock, "%s/proxy.sock", dir) < 0)
		die("asprintf");
	char *allow[] = {"127.0.0.1", NULL};
	sb_egress_config c = {.allow = allow};
	sb_egress_proxy *px = NULL;
	sb_err *err = sb_egress_proxy_new(&c, "bench", &px);
	if (!err)
		err = sb_egress_proxy_listen_unix(px, sock);
	if (err) {
		fprintf(stderr, "bench_proxy: %s\n", err->msg);
		return 1;
	}

	static double direct[REQUESTS], proxied[REQUESTS];
	for (int i = 0; i < 20; i++) { /* warm up */
		get(NULL, "/small", 16);
		get(sock, "/small", 16);
	}
	for (int i = 0; i < REQUESTS; i++) { /* interleaved: the same load for both */
		direct[i] = get(NULL, "/small", 16);
		proxied[i] = get(sock, "/small", 16);
	}
	sbb_row_ms("request latency (proxy vs direct)", sbb_median(proxied, REQUESTS),
	           sbb_median(direct, REQUESTS), "direct");

	double bd[BULK_ROUNDS], bp[BULK_ROUNDS];
	for (int i = 0; i < BULK_ROUNDS; i++) {
		bd[i] = get(NULL, "/bulk", BULK_BYTES);
		bp[i] = get(sock, "/bulk", BULK_BYTES);
	}
	double mbd = BULK_BYTES / sbb_median(bd, BULK_ROUNDS) / 1e6;
	double mbp = BULK_BYTES / sbb_median(bp, BULK_ROUNDS) / 1e6;
	char o[64], b[64], r[64];
	snprintf(o, sizeof o, "%.0f MB/s", mbp);
	snprintf(b, sizeof b, "%.0f MB/s (direct)", mbd);
	snprintf(r, sizeof r, "%.2f", mbp / mbd);
	sbb_row("bulk throughput (proxy / direct)", o, b, r);
	sb_egress_proxy_free(px);

	/* sandbar run -- true with and without an allowlist */
	char *sandbar = NULL, *state = NULL, *ws = NULL;
	if (asprintf(&sandbar, "%s/sandbar", SB_BENCH_BUILD_DIR) < 0 ||
	    asprintf(&state, "%s/state", dir) < 0 || asprintf(&ws, "%s/ws", dir) < 0)
		die("asprintf");
	mkdir(ws, 0755);
	double with[RUNS], without[RUNS];
	run_true(sandbar, state, ws, false);
	run_true(sandbar, state, ws, true);
	for (int i = 0; i < RUNS; i++) {
		without[i] = run_true(sandbar, state, ws, false);
		with[i] = run_true(sandbar, state, ws, true);
	}
	sbb_row_ms("sandbar run -- true, allowlist vs none", sbb_median(with, RUNS),
	           sbb_median(without, RUNS), "network none");
	char *cmd = NULL;
	if (asprintf(&cmd, "rm -rf '%s'", dir) >= 0 && system(cmd) != 0)
		fprintf(stderr, "bench_proxy: could not remove %s\n", dir);
	free(cmd);
	free(sock);
	free(sandbar);
	free(state);
	free(ws);
	return 0;
}
