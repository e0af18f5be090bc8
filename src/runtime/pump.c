/* Streaming a tar between two ends without a temp file: the producer (an archiver or a runner's
 * sync_out) writes into a pipe on its own thread while the consumer (an extractor or a runner's
 * sync_in) reads it on the caller's thread. SIGPIPE is blocked on the producer thread so that a
 * consumer that gives up turns into an EPIPE error instead of killing the process; the error that
 * caused the stop is the one reported.
 */
#include "runtime/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

typedef struct producer {
	sb_rt_pump_fn fn;
	void *ud;
	int fd;
	sb_err *err;
} producer;

static void *producer_main(void *arg)
{
	producer *p = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	p->err = p->fn(p->ud, p->fd);
	sb_close(&p->fd);
	/* A SIGPIPE left pending on this thread is discarded when it exits. */
	return NULL;
}

/* Read what the consumer left (tar padding after the end marker) so the producer never sees a
 * closed pipe after a successful transfer. */
static void drain(int fd)
{
	char buf[65536];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r > 0 || (r < 0 && errno == EINTR))
			continue;
		return;
	}
}

static bool is_epipe(const sb_err *e)
{
	return e && e->sys_errno == EPIPE;
}

sb_err *sb_rt_pump(sb_rt_pump_fn producer_fn, void *pud, sb_rt_pump_fn consumer, void *cud)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return sb_err_sys(errno, "creating a pipe for the workspace tar stream");
	producer p = {.fn = producer_fn, .ud = pud, .fd = fds[1], .err = NULL};
	pthread_t tid;
	int rc = pthread_create(&tid, NULL, producer_main, &p);
	if (rc != 0) {
		close(fds[0]);
		close(fds[1]);
		return sb_err_sys(rc, "starting the workspace tar stream thread");
	}
	int rfd = fds[0];
	sb_err *cerr = consumer(cud, rfd);
	if (!cerr)
		drain(rfd);
	sb_close(&rfd); /* a producer still writing now gets EPIPE and stops */
	pthread_join(tid, NULL);
	sb_err *perr = p.err;
	if (cerr && (!perr || is_epipe(perr))) {
		sb_err_free(perr);
		return cerr;
	}
	sb_err_free(cerr);
	return perr;
}
