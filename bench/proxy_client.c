/* The client half of bench_proxy's sandbox rows: N small GETs (or bulk GETs) to an HTTP upstream,
 * either directly or through the proxy named by HTTP_PROXY ("http://127.0.0.1:PORT"), one
 * connection per request. It runs on the host for the direct baseline and inside a sandbox
 * (copied into the workspace) for the path a sandboxed command really takes: loopback inside
 * the sandbox, sandbar-init's forwarder, the proxy, the upstream. Prints the median seconds per
 * request. libc only, so it runs inside a sandbox that sees only the system's libraries. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int connect_port(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("proxy_client: connect");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: proxy_client N UPSTREAM_PORT PATH MIN_BYTES\n");
		return 2;
	}
	int n = atoi(argv[1]), up = atoi(argv[2]);
	const char *path = argv[3];
	size_t want = strtoull(argv[4], NULL, 10);
	const char *proxy = getenv("HTTP_PROXY");
	int proxy_port = 0;
	if (proxy && sscanf(proxy, "http://127.0.0.1:%d", &proxy_port) != 1) {
		fprintf(stderr, "proxy_client: cannot read HTTP_PROXY=%s\n", proxy);
		return 1;
	}
	double *t = calloc((size_t)n, sizeof *t);
	static char buf[1 << 18];
	for (int i = 0; i < n; i++) {
		double t0 = now();
		int fd = connect_port(proxy_port ? proxy_port : up);
		char req[256];
		int len = proxy_port ? snprintf(req, sizeof req,
		                                "GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: "
		                                "127.0.0.1\r\n\r\n",
		                                up, path)
		                     : snprintf(req, sizeof req,
		                                "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
		if (write(fd, req, (size_t)len) != len) {
			perror("proxy_client: write");
			return 1;
		}
		size_t total = 0;
		for (;;) {
			ssize_t k = read(fd, buf, sizeof buf);
			if (k <= 0)
				break;
			total += (size_t)k;
		}
		close(fd);
		t[i] = now() - t0;
		if (total < want) {
			fprintf(stderr, "proxy_client: short response (%zu of %zu bytes)\n", total,
			        want);
			return 1;
		}
	}
	qsort(t, (size_t)n, sizeof *t, cmp);
	printf("%.9f\n", t[n / 2]);
	free(t);
	return 0;
}
