/* anywhere.flood: one local client cannot lock the daemon's other clients out. 2,000
 * connections from one peer (127.0.0.2), idle or trickling a request head that never ends,
 * are held open against a real `sandbar serve`, and meanwhile another client's authenticated
 * `GET /v1/leases` answers within a second, every time. */
#include "anyt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLOOD 2000
#define PROBES 5

/* A connection from 127.0.0.2 (another peer than the probing client), or -1. */
static int flood_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in src = {.sin_family = AF_INET};
	src.sin_addr.s_addr = htonl(0x7f000002);
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0 ||
	    connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void flood_does_not_lock_out_another_client(void **state)
{
	anyt *a = *state;
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < FLOOD + 256) {
		rl.rlim_cur = rl.rlim_max;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	assert_true(rl.rlim_cur >= FLOOD + 256);
	char *tok = sbt_path(a->t.root, "token");
	assert_int_equal(anyt_serve(a, "127.0.0.1", tok, 0600, NULL), 0);
	int *fds = calloc(FLOOD, sizeof *fds);
	int opened = 0;
	for (int i = 0; i < FLOOD; i++) {
		fds[i] = flood_connect(a->port);
		if (fds[i] < 0)
			fail_msg("flood connection %d: %s", i, strerror(errno));
		opened++;
		/* every other one trickles a request head that never completes */
		if (i % 2 && write(fds[i], "GET /v1/leases HTTP/1.1\r\nX-Slow: ", 33) != 33)
			fail_msg("writing to flood connection %d: %s", i, strerror(errno));
	}
	print_message("%d flood connections open\n", opened);
	for (int p = 0; p < PROBES; p++) {
		/* a trickle of more bytes on the flood, as a slowloris would */
		for (int i = 1; i < FLOOD; i += 2)
			if (write(fds[i], "x", 1) < 0 && errno != EPIPE && errno != ECONNRESET)
				fail_msg("trickle on %d: %s", i, strerror(errno));
		char *body = NULL;
		int64_t t0 = sb_mono_ms();
		int status = anyt_http(a, "GET", "/v1/leases", NULL, &body);
		int64_t took = sb_mono_ms() - t0;
		print_message("GET /v1/leases during the flood: %d in %lld ms\n", status,
		              (long long)took);
		assert_int_equal(status, 200);
		assert_true(took < 1000);
		free(body);
	}
	for (int i = 0; i < FLOOD; i++)
		close(fds[i]);
	free(fds);
	free(tok);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(flood_does_not_lock_out_another_client, anyt_setup,
	                                    anyt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
