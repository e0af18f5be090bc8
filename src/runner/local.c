/* The local runner: commands as child process groups on this host, driven by one poll loop per
 * execution that writes stdin, reads stdout and stderr, watches the child through a pidfd, the
 * deadline and the cancel token, and hands output to the caller synchronously (back-pressure:
 * while on_output runs nothing more is read, so a slow consumer stalls the child on a full pipe).
 *
 * Stopping (timeout, cancel, callback error) is SIGTERM to the group, then SIGKILL to the group
 * after the grace period. The leader is not reaped until the end (waitid WNOWAIT), so its pid,
 * which is also the group id, cannot be reused while we may still signal it. Once the leader has
 * exited or been killed, the pipes get at most one grace period to reach EOF: a grandchild that
 * left the group but holds them open cannot hang the runner.
 *
 * SIGPIPE: the executing thread blocks SIGPIPE while a command runs, so a child that closes its
 * stdin early gives EPIPE instead of killing this process. A SIGPIPE raised meanwhile (by those
 * writes, or by the callbacks, which run on this thread and see EPIPE too) is consumed before the
 * caller's mask is restored, unless the caller had SIGPIPE blocked already. Nothing process-wide
 * is changed.
 */
#include "runner_int.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (64u * 1024u)
/* Without pidfds (Linux < 5.3) the loop polls the child's state at this interval at most. */
#define NO_PIDFD_TICK_MAX_MS 50

typedef struct local_runner {
	sb_runner base;
	char *default_cwd;
} local_runner;

/* The state of one execution; lives on the executing thread's stack. */
typedef struct run {
	const sb_exec_request *req;
	const sb_exec_callbacks *cb;
	sb_local_child child;
	int pidfd;
	int cancel_fd;
	size_t in_off;
	/* stdin_stream: bytes read from req->stdin_fd not yet written to the child */
	char *sbuf;
	size_t soff, sfill;
	uint64_t streamed;
	bool src_open;
	sb_tail out, err;
	char *chunk;
	int64_t grace_ms;
	int64_t deadline;    /* monotonic ms of the timeout, 0 = none */
	int64_t kill_at;     /* SIGKILL due (after SIGTERM), 0 = not pending */
	int64_t drain_until; /* stop waiting for pipe EOF after this, 0 = not yet bounded */
	bool exited;         /* the leader is a zombie (not yet reaped) or gone */
	bool stopping;       /* SIGTERM sent */
	bool timed_out;
	bool callbacks_off; /* a callback failed: call none again */
	sb_err *fail;       /* what execute returns */
} run;

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	/* The kernel sets O_CLOEXEC on pidfds. */
	long fd = syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -1 : (int)fd;
#else
	(void)pid;
	return -1;
#endif
}

/* Signal the group; if that fails (a member we may not signal), the leader alone, but only while
 * it has not exited. */
static void signal_group(run *r, int sig)
{
	if (kill(-r->child.pid, sig) == 0)
		return;
	if (!r->exited)
		(void)kill(r->child.pid, sig);
}

/* Begin stopping the command: SIGTERM now, SIGKILL after the grace period. why (may be NULL) is
 * the error execute returns; the first one wins. */
static void stop(run *r, sb_err *why)
{
	if (why && !r->fail)
		r->fail = why;
	else if (why)
		sb_err_free(why);
	if (r->stopping)
		return;
	r->stopping = true;
	sb_close(&r->child.in_fd);
	signal_group(r, SIGTERM);
	r->kill_at = sb_mono_ms() + r->grace_ms;
}

static void check_exit(run *r)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	int rc;
	do
		rc = waitid(P_PID, (id_t)r->child.pid, &si, WEXITED | WNOHANG | WNOWAIT);
	while (rc != 0 && errno == EINTR);
	/* ECHILD: someone else reaped it (SIGCHLD ignored by the host, or a stray waitpid(-1)). */
	if ((rc == 0 && si.si_pid == 0) || (rc != 0 && errno != ECHILD))
		return;
	r->exited = true;
	sb_close(&r->pidfd);
	sb_close(&r->child.in_fd);
	if (!r->drain_until)
		r->drain_until = sb_mono_ms() + r->grace_ms;
}

static void deliver(run *r, sb_stream stream, const char *data, size_t n)
{
	sb_tail_append(stream == SB_STREAM_STDOUT ? &r->out : &r->err, data, n);
	if (!r->cb->on_output || r->callbacks_off)
		return;
	sb_err *e = r->cb->on_output(r->cb->ud, stream, data, n);
	if (e) {
		r->callbacks_off = true;
		stop(r, e);
	}
}

/* One read per wake-up and stream, so both streams and stdin progress fairly. */
static void read_stream(run *r, int *fd, sb_stream stream)
{
	for (;;) {
		ssize_t n = read(*fd, r->chunk, READ_CHUNK);
		if (n > 0) {
			deliver(r, stream, r->chunk, (size_t)n);
			return;
		}
		if (n == 0) {
			sb_close(fd);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			sb_warn("reading %s of pid %d: %s; treating it as closed",
			        stream == SB_STREAM_STDOUT ? "stdout" : "stderr", (int)r->child.pid,
			        strerror(errno));
		if (errno != EAGAIN)
			sb_close(fd);
		return;
	}
}

/* Hand len bytes to the child's stdin: how many it took, or -1 when stdin is closed now. A
 * full pipe (EAGAIN) takes 0. The command stopped reading (closed stdin or exited): like a
 * shell pipeline, that is its business, not a failure of the run. */
static ssize_t write_child(run *r, const char *data, size_t len)
{
	ssize_t n;
	do
		n = write(r->child.in_fd, data, len);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN)
		return 0;
	if (errno != EPIPE)
		sb_warn("writing stdin of pid %d: %s; closing it", (int)r->child.pid,
		        strerror(errno));
	sb_close(&r->child.in_fd);
	return -1;
}

static void write_stdin(run *r)
{
	ssize_t n = write_child(r, (const char *)r->req->stdin_data + r->in_off,
	                        r->req->stdin_len - r->in_off);
	if (n <= 0)
		return;
	r->in_off += (size_t)n;
	if (r->in_off == r->req->stdin_len)
		sb_close(&r->child.in_fd);
	if (r->cb->on_stdin_progress && !r->callbacks_off)
		r->cb->on_stdin_progress(r->cb->ud, r->in_off, r->req->stdin_len);
}

/* stdin_stream: refill the buffer from the caller's descriptor (readable or at EOF). */
static void read_source(run *r)
{
	ssize_t n;
	do
		n = read(r->req->stdin_fd, r->sbuf, READ_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		r->soff = 0;
		r->sfill = (size_t)n;
		return;
	}
	if (n < 0 && errno == EAGAIN)
		return;
	if (n < 0)
		sb_warn("reading the stdin source of pid %d: %s; closing its stdin",
		        (int)r->child.pid, strerror(errno));
	r->src_open = false;
	sb_close(&r->child.in_fd);
}

/* stdin_stream: hand buffered bytes to the child. */
static void write_stream(run *r)
{
	ssize_t n = write_child(r, r->sbuf + r->soff, r->sfill - r->soff);
	if (n < 0) {
		r->src_open = false; /* the caller sees its writer fail once it closes the source */
		return;
	}
	r->soff += (size_t)n;
	r->streamed += (uint64_t)n;
	if (n > 0 && r->cb->on_stdin_progress && !r->callbacks_off)
		r->cb->on_stdin_progress(r->cb->ud, r->streamed, 0);
}

static int64_t earliest(int64_t a, int64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

/* Poll failed for a reason other than EINTR (ENOMEM): stop hard and stop listening. */
static void abandon(run *r, int errnum)
{
	stop(r, sb_err_sys(errnum, "waiting for pid %d", (int)r->child.pid));
	signal_group(r, SIGKILL);
	sb_close(&r->child.out_fd);
	sb_close(&r->child.err_fd);
	r->exited = true; /* the final waitpid blocks until it is */
}

static void loop(run *r)
{
	int tick = 1;
	for (;;) {
		int64_t now = sb_mono_ms();
		if (!r->exited && !r->stopping && r->deadline && now >= r->deadline) {
			r->timed_out = true;
			stop(r, NULL);
		}
		if (r->kill_at && now >= r->kill_at) {
			signal_group(r, SIGKILL);
			r->kill_at = 0;
			if (!r->drain_until)
				r->drain_until = now + r->grace_ms;
		}
		if (r->drain_until && now >= r->drain_until) {
			sb_close(&r->child.out_fd);
			sb_close(&r->child.err_fd);
		}
		if (r->pidfd < 0 && !r->exited)
			check_exit(r);
		if (r->exited && r->child.out_fd < 0 && r->child.err_fd < 0)
			return;

		struct pollfd pfd[6];
		int n = 0, i_out = -1, i_err = -1, i_in = -1, i_pid = -1, i_cancel = -1, i_src = -1;
		bool streaming = r->req->stdin_stream;
		if (streaming && r->child.in_fd >= 0 && r->soff == r->sfill) {
			if (r->src_open)
				pfd[i_src = n++] =
				    (struct pollfd){.fd = r->req->stdin_fd, .events = POLLIN};
			else
				sb_close(&r->child.in_fd);
		}
		if (r->child.out_fd >= 0)
			pfd[i_out = n++] = (struct pollfd){.fd = r->child.out_fd, .events = POLLIN};
		if (r->child.err_fd >= 0)
			pfd[i_err = n++] = (struct pollfd){.fd = r->child.err_fd, .events = POLLIN};
		if (r->child.in_fd >= 0 && (!streaming || r->soff < r->sfill))
			pfd[i_in = n++] = (struct pollfd){.fd = r->child.in_fd, .events = POLLOUT};
		if (r->pidfd >= 0)
			pfd[i_pid = n++] = (struct pollfd){.fd = r->pidfd, .events = POLLIN};
		if (r->cancel_fd >= 0 && !r->stopping)
			pfd[i_cancel = n++] = (struct pollfd){.fd = r->cancel_fd, .events = POLLIN};

		int64_t wake = r->kill_at;
		if (r->child.out_fd >= 0 || r->child.err_fd >= 0)
			wake = earliest(wake, r->drain_until);
		if (!r->exited && !r->stopping)
			wake = earliest(wake, r->deadline);
		if (r->pidfd < 0 && !r->exited) {
			wake = earliest(wake, now + tick);
			tick = tick * 2 > NO_PIDFD_TICK_MAX_MS ? NO_PIDFD_TICK_MAX_MS : tick * 2;
		}
		int timeout = -1;
		if (wake)
			timeout =
			    wake - now > INT_MAX ? INT_MAX : (int)(wake > now ? wake - now : 0);

		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			abandon(r, errno);
			return;
		}
		const short done = POLLIN | POLLHUP | POLLERR;
		if (i_out >= 0 && (pfd[i_out].revents & (done | POLLNVAL)))
			read_stream(r, &r->child.out_fd, SB_STREAM_STDOUT);
		if (i_err >= 0 && r->child.err_fd >= 0 && (pfd[i_err].revents & (done | POLLNVAL)))
			read_stream(r, &r->child.err_fd, SB_STREAM_STDERR);
		if (i_in >= 0 && r->child.in_fd >= 0 &&
		    (pfd[i_in].revents & (POLLOUT | POLLHUP | POLLERR | POLLNVAL)))
			streaming ? write_stream(r) : write_stdin(r);
		if (i_src >= 0 && r->child.in_fd >= 0 &&
		    (pfd[i_src].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
			read_source(r);
		if (i_pid >= 0 && (pfd[i_pid].revents & (done | POLLNVAL)))
			check_exit(r);
		if (i_cancel >= 0 && (pfd[i_cancel].revents & (done | POLLNVAL)))
			stop(r, sb_err_new(SB_E_CANCELED, "command \"%s\" (pid %d) was canceled",
			                   r->req->argv[0], (int)r->child.pid));
	}
}

/* Reap the leader and describe how it ended. */
static void finish(run *r, sb_exec_result *res)
{
	int status = 0;
	pid_t got;
	do
		got = waitpid(r->child.pid, &status, 0);
	while (got < 0 && errno == EINTR);
	if (got == r->child.pid && WIFEXITED(status)) {
		res->has_exit_code = true;
		res->exit_code = WEXITSTATUS(status);
	} else if (got == r->child.pid && WIFSIGNALED(status)) {
		snprintf(res->signal, sizeof(res->signal), "%s", sb_signal_name(WTERMSIG(status)));
	} else {
		sb_warn("the exit status of pid %d is unknown (reaped elsewhere)",
		        (int)r->child.pid);
	}
	res->timed_out = r->timed_out;
	sb_tail_finish(&r->out, &res->out, &res->out_truncated);
	sb_tail_finish(&r->err, &res->err, &res->err_truncated);
}

/* dir made absolute against base (NULL = this process's cwd). malloc'd. */
static char *absolute_dir(const char *base, const char *dir)
{
	if (base)
		return sb_strfmt("%s/%s", base, dir);
	char *here = getcwd(NULL, 0);
	char *abs = sb_strfmt("%s/%s", here ? here : ".", dir);
	free(here);
	return abs;
}

/* The working directory a request runs in: its own (relative ones against the runner's
 * default), else the runner's default, else NULL (this process's cwd). *owned is set when the
 * result was allocated. */
static const char *request_cwd(const local_runner *lr, const sb_exec_request *req, char **owned)
{
	*owned = NULL;
	if (!req->cwd)
		return lr->default_cwd;
	if (req->cwd[0] == '/')
		return req->cwd;
	/* Absolute, so that the executable found relative to it stays right after the child's
	 * chdir. */
	return *owned = absolute_dir(lr->default_cwd, req->cwd);
}

static sb_err *local_execute(sb_runner *base, const sb_exec_request *req,
                             const sb_exec_callbacks *cb, sb_cancel *cancel, sb_exec_result *res)
{
	local_runner *lr = base->impl;
	if (cancel && sb_cancel_is_set(cancel))
		return sb_err_new(SB_E_CANCELED, "command \"%s\" was canceled before it started",
		                  req->argv[0]);

	sigset_t pipe_only, old_mask;
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);

	char *owned_cwd;
	const char *cwd = request_cwd(lr, req, &owned_cwd);
	run r = {
	    .req = req,
	    .cb = cb,
	    .pidfd = -1,
	    .cancel_fd = sb_cancel_fd(cancel),
	    .grace_ms = sb_runner_effective_grace_ms(req->grace_ms),
	};
	int64_t wall_start = sb_wall_ms();
	int64_t mono_start = sb_mono_ms();
	sb_err *err = sb_local_spawn(req, cwd, &r.child);
	free(owned_cwd);
	if (err) {
		if (r.child.pid > 0) {
			(void)kill(-r.child.pid, SIGKILL);
			while (waitpid(r.child.pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
		return err;
	}
	r.pidfd = open_pidfd(r.child.pid);
	size_t cap = req->output_cap ? req->output_cap : SB_OUTPUT_CAP_DEFAULT;
	sb_tail_init(&r.out, cap);
	sb_tail_init(&r.err, cap);
	r.chunk = sb_xmalloc(READ_CHUNK);
	if (req->timeout_ms > 0)
		r.deadline = mono_start + req->timeout_ms;

	res->pid = (int)r.child.pid;
	sb_iso8601(wall_start, res->started_at);
	if (cb->on_spawn) {
		sb_err *e = cb->on_spawn(cb->ud, res->pid, res->started_at);
		if (e) {
			r.callbacks_off = true;
			stop(&r, e);
		}
	}
	if (req->stdin_stream) {
		r.sbuf = sb_xmalloc(READ_CHUNK);
		r.src_open = true;
	} else if (r.child.in_fd >= 0 && req->stdin_len == 0) {
		sb_close(&r.child.in_fd);
	}

	loop(&r);
	finish(&r, res);
	sb_iso8601(sb_wall_ms(), res->finished_at);
	res->duration_ms = sb_mono_ms() - mono_start;

	sb_close(&r.child.in_fd);
	sb_close(&r.child.out_fd);
	sb_close(&r.child.err_fd);
	sb_close(&r.pidfd);
	sb_tail_deinit(&r.out);
	sb_tail_deinit(&r.err);
	free(r.chunk);
	free(r.sbuf);
	sigset_t pending;
	if (!sigismember(&old_mask, SIGPIPE) && sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE)) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	return r.fail;
}

static sb_err *local_sync_in(sb_runner *r, const char *remote_dir, char *const *preserve,
                             int tar_fd, sb_progress_fn progress, void *progress_ud)
{
	(void)r;
	return sb_local_sync_in(remote_dir, preserve, tar_fd, progress, progress_ud);
}

static sb_err *local_sync_out(sb_runner *r, const char *remote_dir, const sb_excludes *ex,
                              int tar_fd, sb_progress_fn progress, void *progress_ud)
{
	(void)r;
	return sb_local_sync_out(remote_dir, ex, tar_fd, progress, progress_ud);
}

static void local_destroy(sb_runner *base)
{
	local_runner *lr = base->impl;
	free(lr->default_cwd);
	free(lr);
}

static const sb_runner_ops local_ops = {
    .name = "local",
    .execute = local_execute,
    .sync_in = local_sync_in,
    .sync_out = local_sync_out,
    .manifest = sb_local_manifest,
    .sync_out_paths = sb_local_sync_out_paths,
    .sync_in_delta = sb_local_sync_in_delta,
    .file_read = sb_local_file_read,
    .file_write = sb_local_file_write,
    .destroy = local_destroy,
};

sb_runner *sb_local_runner_new(const sb_local_runner_opts *opts)
{
	local_runner *lr = sb_xcalloc(1, sizeof(*lr));
	lr->base.ops = &local_ops;
	lr->base.impl = lr;
	lr->base.caps =
	    SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_PROGRESS | SB_RUNNER_CAP_STDIN_STREAM;
	if (opts && opts->file_transfer)
		lr->base.caps |= SB_RUNNER_CAP_FILE_TRANSFER | SB_RUNNER_CAP_DELTA;
	if (opts && opts->default_cwd)
		lr->default_cwd = opts->default_cwd[0] == '/'
		                      ? sb_xstrdup(opts->default_cwd)
		                      : absolute_dir(NULL, opts->default_cwd);
	return &lr->base;
}
