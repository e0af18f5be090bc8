/* See bare_relay.h. One thread per connection; the bench's connections are sequential. */
#include "bare_relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPE_BYTES (1u << 20) /* as the egress proxy's bulk pipe */

static int upstream;

/* Move what `from` has to `to` through the pipe; false at EOF or on error. */
static bool move(int from, int to, const int pipe[2])
{
	ssize_t n = splice(from, NULL, pipe[1], NULL, PIPE_BYTES, SPLICE_F_MOVE);
	for (ssize_t left = n; left > 0;) {
		ssize_t w = splice(pipe[0], NULL, to, NULL, (size_t)left, SPLICE_F_MOVE);
		if (w <= 0)
			return false;
		left -= w;
	}
	return n > 0;
}

static void *relay_one(void *arg)
{
	int c = (int)(intptr_t)arg;
	int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)upstream)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int up[2] = {-1, -1}, down[2] = {-1, -1};
	if (u < 0 || connect(u, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0)
		goto out;
	(void)fcntl(up[1], F_SETPIPE_SZ, PIPE_BYTES);
	(void)fcntl(down[1], F_SETPIPE_SZ, PIPE_BYTES);
	struct pollfd pf[2] = {{c, POLLIN, 0}, {u, POLLIN, 0}};
	for (;;) {
		if (poll(pf, 2, -1) < 0)
			break;
		if (pf[0].revents && !move(c, u, up)) {
			pf[0].fd =
			    -1; /* the client is done sending: half-close towards the upstream */
			shutdown(u, SHUT_WR);
		}
		if (pf[1].revents && !move(u, c, down))
			break;
	}
out:
	for (int i = 0; i < 2; i++) {
		if (up[i] >= 0)
			close(up[i]);
		if (down[i] >= 0)
			close(down[i]);
	}
	if (u >= 0)
		close(u);
	close(c);
	return NULL;
}

static void *accept_loop(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, relay_one, (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

int bare_relay_start(int upstream_port)
{
	upstream = upstream_port;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 64) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("bare_relay: listen");
		exit(1);
	}
	pthread_t t;
	if (pthread_create(&t, NULL, accept_loop, (void *)(intptr_t)lfd) != 0) {
		perror("bare_relay: thread");
		exit(1);
	}
	pthread_detach(t);
	return ntohs(sa.sin_port);
}
