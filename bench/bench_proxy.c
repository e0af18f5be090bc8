/* Egress proxy benchmarks (issue 14), ratios of medians measured in the same run:
 *  - request latency through the proxy vs direct (one small GET per connection, loopback);
 *  - bulk throughput through the proxy vs direct (one 64 MiB GET);
 *  - `sandbar run -- true` with an allowlist vs without.
 * The upstream is a small C server on 127.0.0.1 (allowed by an IP entry). The first two are
 * measured twice: from a command inside a sandbox (`sandbar run --allow-net`, the path agents
 * take: loopback in the sandbox, sandbar-init's forwarder, the proxy) against the same client
 * on the host going direct; and against the proxy alone on a unix socket, which isolates the
 * proxy's own cost from the forwarder's. The sandboxed path crosses two TCP connections (the
 * sandbox's loopback, then the upstream) where the direct client crosses one, so its bulk row is
 * also compared with a bare TCP relay (bare_relay.c): the same client on the host through a relay
 * that only moves bytes, what any user-space proxy costs on this machine. */
#include "bare_relay.h"
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
#define BOX_ROUNDS 3

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

/* Run argv, its stdout captured; returns the first line as a number (the client's median). */
static double spawn_median(char *const argv[], char *const envp[])
{
	int pfd[2];
	if (pipe(pfd) < 0)
		die("pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	pid_t pid;
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, envp) != 0)
		die("spawn");
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	char out[256];
	size_t n = 0;
	ssize_t k;
	while (n < sizeof out - 1 && (k = read(pfd[0], out + n, sizeof out - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = '\0';
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !n) {
		fprintf(stderr, "bench_proxy: %s failed\n", argv[0]);
		exit(1);
	}
	return strtod(out, NULL);
}

/* The client's median over n requests for path, inside a sandbox through the proxy or on the
 * host straight to port (the upstream's, or the bare relay's). */
static double client_median_to(const char *sandbar, const char *state, const char *ws, bool boxed,
                               int to_port, int n, const char *path, size_t want)
{
	char ns[16], port[16], wants[32];
	snprintf(ns, sizeof ns, "%d", n);
	snprintf(port, sizeof port, "%d", to_port);
	snprintf(wants, sizeof wants, "%zu", want);
	char *client = NULL;
	if (asprintf(&client, "%s/proxy_client", ws) < 0)
		die("asprintf");
	char *boxed_argv[] = {(char *)sandbar,
	                      "run",
	                      "-q",
	                      "--state-dir",
	                      (char *)state,
	                      "-w",
	                      (char *)ws,
	                      "--allow-net",
	                      "127.0.0.1",
	                      "--",
	                      "./proxy_client",
	                      ns,
	                      port,
	                      (char *)path,
	                      wants,
	                      NULL};
	char *direct_argv[] = {client, ns, port, (char *)path, wants, NULL};
	char *no_env[] = {"PATH=/usr/bin:/bin", NULL};
	double t = boxed ? spawn_median(boxed_argv, environ) : spawn_median(direct_argv, no_env);
	free(client);
	return t;
}

/* The client's median over n requests for path, inside a sandbox through the proxy or on the
 * host direct. */
static double client_median(const char *sandbar, const char *state, const char *ws, bool boxed,
                            int n, const char *path, size_t want)
{
	return client_median_to(sandbar, state, ws, boxed, srv_port, n, path, want);
}

static void copy_file(const char *from, const char *to)
{
	char *cmd = NULL;
	if (asprintf(&cmd, "cp '%s' '%s'", from, to) < 0 || system(cmd) != 0)
		die("copying the proxy client");
	free(cmd);
}

int main(void)
{
	char *dir = sbb_tmpdir("sandbar-bench-proxy", 0755);
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
	sbb_row_ms("proxy alone: request latency (proxy vs direct)", sbb_median(proxied, REQUESTS),
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
	sbb_row("proxy alone: bulk throughput (proxy / direct)", o, b, r);
	sb_egress_proxy_free(px);

	/* The sandboxed command's path, and sandbar run -- true with and without an allowlist */
	char *sandbar = NULL, *state = NULL, *ws = NULL, *client = NULL;
	if (asprintf(&sandbar, "%s/sandbar", SB_BENCH_BUILD_DIR) < 0 ||
	    asprintf(&state, "%s/state", dir) < 0 || asprintf(&ws, "%s/ws", dir) < 0 ||
	    asprintf(&client, "%s/bench/proxy_client", SB_BENCH_BUILD_DIR) < 0)
		die("asprintf");
	mkdir(ws, 0755);
	char *ws_client = NULL;
	if (asprintf(&ws_client, "%s/proxy_client", ws) < 0)
		die("asprintf");
	copy_file(client, ws_client);
	int relay_port = bare_relay_start(srv_port);
	double lb[BOX_ROUNDS], ld[BOX_ROUNDS], bb[BOX_ROUNDS], bdir[BOX_ROUNDS], brel[BOX_ROUNDS],
	    lrel[BOX_ROUNDS];
	for (int i = 0; i < BOX_ROUNDS; i++) { /* interleaved rounds: the same load for both */
		lb[i] = client_median(sandbar, state, ws, true, REQUESTS, "/small", 16);
		ld[i] = client_median(sandbar, state, ws, false, REQUESTS, "/small", 16);
		bb[i] = client_median(sandbar, state, ws, true, BULK_ROUNDS, "/bulk", BULK_BYTES);
		bdir[i] =
		    client_median(sandbar, state, ws, false, BULK_ROUNDS, "/bulk", BULK_BYTES);
		lrel[i] =
		    client_median_to(sandbar, state, ws, false, relay_port, REQUESTS, "/small", 16);
		brel[i] = client_median_to(sandbar, state, ws, false, relay_port, BULK_ROUNDS,
		                           "/bulk", BULK_BYTES);
	}
	sbb_row_ms("sandboxed command: request latency (proxy vs direct)",
	           sbb_median(lb, BOX_ROUNDS), sbb_median(ld, BOX_ROUNDS), "direct");
	sbb_row_ms("reference: bare TCP relay on the host, request latency (relay vs direct)",
	           sbb_median(lrel, BOX_ROUNDS), sbb_median(ld, BOX_ROUNDS), "direct");
	double mbb = BULK_BYTES / sbb_median(bb, BOX_ROUNDS) / 1e6;
	double mbdir = BULK_BYTES / sbb_median(bdir, BOX_ROUNDS) / 1e6;
	snprintf(o, sizeof o, "%.0f MB/s", mbb);
	snprintf(b, sizeof b, "%.0f MB/s (direct)", mbdir);
	snprintf(r, sizeof r, "%.2f", mbb / mbdir);
	sbb_row("sandboxed command: bulk throughput (proxy / direct)", o, b, r);
	double mbrel = BULK_BYTES / sbb_median(brel, BOX_ROUNDS) / 1e6;
	snprintf(o, sizeof o, "%.0f MB/s", mbrel);
	snprintf(r, sizeof r, "%.2f", mbrel / mbdir);
	sbb_row("reference: bare TCP relay on the host (relay / direct)", o, b, r);
	snprintf(o, sizeof o, "%.0f MB/s", mbb);
	snprintf(b, sizeof b, "%.0f MB/s (bare relay)", mbrel);
	snprintf(r, sizeof r, "%.2f", mbb / mbrel);
	sbb_row("sandboxed command: bulk throughput (proxy / bare TCP relay)", o, b, r);
	unlink(ws_client);
	free(ws_client);
	free(client);
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
