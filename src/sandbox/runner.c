/* The sandbox runner: runner.h on top of a lease. execute() starts the command through
 * sandbar-init and follows its spool (streaming output with back pressure, stdin from memory,
 * timeouts enforced by init); sync_in/sync_out move tar streams straight into and out of the
 * lease's host-side workspace directory, as the sandbox owner, confined below the workspace,
 * with plain copies (never hard links: the sandbox must not share inodes with the caller). */
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (64u * 1024u)
#define POLL_MS 500 /* also how often a dead sandbox is noticed */

typedef struct sandbox_runner {
	sb_sandbox *sb;
	char *default_cwd;
	bool own;
} sandbox_runner;

#define STDIN_STREAM_BUF (64u * 1024u)

/* Write to the stdin pipe without a process-wide SIGPIPE when the command closed its end. */
static ssize_t write_nosigpipe(int fd, const void *p, size_t n)
{
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	ssize_t w = write(fd, p, n);
	int saved = errno;
	if (w < 0 && errno == EPIPE) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return w;
}

typedef struct run_state {
	sb_sandbox_exec *x;
	const sb_exec_callbacks *cb;
	sb_tail tail[2];
	uint64_t off[2];
	char *buf;
} run_state;

/* Hand every new byte of both streams to the callbacks and the tails. */
static sb_err *drain(run_state *rs)
{
	for (int s = 0; s < 2; s++) {
		for (;;) {
			size_t got = 0;
			sb_err *err = sb_sandbox_exec_read(
			    rs->x, s == 0 ? SB_STREAM_STDOUT : SB_STREAM_STDERR, rs->off[s],
			    rs->buf, READ_CHUNK, &got);
			if (err)
				return err;
			if (got == 0)
				break;
			rs->off[s] += got;
			sb_tail_append(&rs->tail[s], rs->buf, got);
			if (rs->cb && rs->cb->on_output &&
			    (err = rs->cb->on_output(rs->cb->ud,
			                             s == 0 ? SB_STREAM_STDOUT : SB_STREAM_STDERR,
			                             rs->buf, got)))
				return err;
		}
	}
	return NULL;
}

static void fill_result(const sb_sandbox_exec_status *st, run_state *rs, sb_exec_result *res)
{
	res->has_exit_code = st->has_exit_code;
	res->exit_code = st->exit_code;
	res->signal[0] = '\0';
	if (st->signal)
		snprintf(res->signal, sizeof res->signal, "%s", sb_signal_name(st->signal));
	res->timed_out = st->timed_out;
	if (st->oom_killed) {
		static const char note[] =
		    "\nsandbar: the command was killed by the lease's memory limit (out of "
		    "memory)\n";
		sb_tail_append(&rs->tail[1], note, sizeof note - 1);
	}
	sb_tail_finish(&rs->tail[0], &res->out, &res->out_truncated);
	sb_tail_finish(&rs->tail[1], &res->err, &res->err_truncated);
	res->out_truncated |= st->stdout_truncated; /* the spool itself dropped output */
	res->err_truncated |= st->stderr_truncated;
	res->pid = st->pid;
	sb_iso8601(st->started_at_ms, res->started_at);
	sb_iso8601(st->finished_at_ms ? st->finished_at_ms : sb_wall_ms(), res->finished_at);
	res->duration_ms =
	    (st->finished_at_ms ? st->finished_at_ms : sb_wall_ms()) - st->started_at_ms;
}

static sb_err *sr_execute(sb_runner *r, const sb_exec_request *req, const sb_exec_callbacks *cb,
                          sb_cancel *cancel, sb_exec_result *res)
{
	char *sbuf = NULL; /* a streamed stdin's buffer */
	sandbox_runner *impl = r->impl;
	if (!req || !req->argv || !req->argv[0])
		return sb_err_new(SB_E_INVAL, "sandbox runner: argv is empty");
	sb_sandbox_exec_req xr = {
	    .argv = req->argv,
	    .cwd = req->cwd ? req->cwd : impl->default_cwd,
	    .env = req->env,
	    .clear_env = req->clear_env,
	    .stdin_mode = req->has_stdin ? SB_SANDBOX_STDIN_PIPE : SB_SANDBOX_STDIN_NULL,
	    .timeout_ms = req->timeout_ms,
	    .grace_ms = req->grace_ms < SB_GRACE_MS_DEFAULT ? SB_GRACE_MS_DEFAULT : req->grace_ms,
	};
	run_state rs = {0};
	size_t cap = req->output_cap ? req->output_cap : SB_OUTPUT_CAP_DEFAULT;
	sb_tail_init(&rs.tail[0], cap);
	sb_tail_init(&rs.tail[1], cap);
	rs.cb = cb;
	rs.buf = sb_xmalloc(READ_CHUNK);
	sb_err *err = sb_sandbox_exec_start(impl->sb, &xr, &rs.x);
	if (err)
		goto out;
	/* the wake-up fd exists before the first read, so no change can slip between them */
	(void)sb_sandbox_exec_fd(rs.x);
	sb_sandbox_exec_status st;
	if ((err = sb_sandbox_exec_get_status(rs.x, &st)))
		goto kill;
	if (cb && cb->on_spawn) {
		char started[SB_ISO8601_LEN];
		sb_iso8601(st.started_at_ms, started);
		if ((err = cb->on_spawn(cb->ud, st.pid, started)))
			goto kill;
	}
	int in = sb_sandbox_exec_stdin_fd(rs.x);
	size_t in_done = 0;
	if (in >= 0) {
		if ((err = sb_fd_set_nonblock(in, true)))
			goto kill;
		if (req->stdin_len == 0 && !req->stdin_stream) {
			sb_sandbox_exec_close_stdin(rs.x);
			in = -1;
		}
	}
	/* a streamed stdin (sandbar run -i): what the source has, as the command takes it */
	sbuf = req->stdin_stream ? malloc(STDIN_STREAM_BUF) : NULL;
	size_t sfill = 0, soff = 0;
	bool src_open = req->stdin_stream;
	if (req->stdin_stream && !sbuf)
		abort();
	/* Cancelling stops the command the way a timeout does: TERM, so it can save its work,
	 * then KILL once the grace period is over. 0 = not cancelled yet. */
	int64_t kill_at = 0;
	for (;;) {
		if (!kill_at && sb_cancel_is_set(cancel)) {
			kill_at = sb_mono_ms() + xr.grace_ms;
			sb_err_free(
			    sb_sandbox_exec_signal(impl->sb, sb_sandbox_exec_id(rs.x), SIGTERM));
		}
		if (kill_at && sb_mono_ms() >= kill_at) {
			err = sb_err_new(SB_E_CANCELED, "command \"%s\" cancelled", req->argv[0]);
			goto kill;
		}
		if ((err = sb_sandbox_exec_get_status(rs.x, &st)))
			break;
		if ((err = drain(&rs)))
			goto kill;
		if (!st.running && kill_at) {
			err = sb_err_new(SB_E_CANCELED, "command \"%s\" cancelled", req->argv[0]);
			goto out;
		}
		if (!st.running)
			break;
		/* fetched each time: it changes if init goes away mid-command */
		bool want_src = src_open && in >= 0 && soff == sfill;
		struct pollfd p[4] = {{sb_sandbox_exec_fd(rs.x), POLLIN, 0},
		                      {kill_at ? -1 : sb_cancel_fd(cancel), POLLIN, 0},
		                      {req->stdin_stream && soff == sfill ? -1 : in, POLLOUT, 0},
		                      {want_src ? req->stdin_fd : -1, POLLIN, 0}};
		int64_t wait_ms = POLL_MS;
		if (kill_at && kill_at - sb_mono_ms() < wait_ms)
			wait_ms = kill_at - sb_mono_ms() > 0 ? kill_at - sb_mono_ms() : 0;
		int rc = poll(p, 4, (int)wait_ms);
		if (rc < 0 && errno != EINTR) {
			err = sb_err_sys(errno, "waiting for command \"%s\"", req->argv[0]);
			goto kill;
		}
		if (rc > 0 && p[0].revents && (err = sb_sandbox_exec_wait(rs.x, 0, NULL)))
			goto kill;
		if (req->stdin_stream && in >= 0 && p[3].revents) {
			ssize_t n = read(req->stdin_fd, sbuf, STDIN_STREAM_BUF);
			if (n > 0) {
				sfill = (size_t)n;
				soff = 0;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				src_open =
				    false; /* EOF (or the source failed): the command sees EOF */
				sb_sandbox_exec_close_stdin(rs.x);
				in = -1;
			}
		}
		if (req->stdin_stream && in >= 0 && soff < sfill && p[2].revents) {
			ssize_t w = write_nosigpipe(in, sbuf + soff, sfill - soff);
			if (w > 0)
				soff += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				src_open = false; /* the command stopped reading */
				sb_sandbox_exec_close_stdin(rs.x);
				in = -1;
			}
		} else if (!req->stdin_stream && in >= 0 && p[2].revents) {
			const char *data = req->stdin_data;
			ssize_t w = write_nosigpipe(in, data + in_done, req->stdin_len - in_done);
			if (w > 0) {
				in_done += (size_t)w;
				if (cb && cb->on_stdin_progress)
					cb->on_stdin_progress(cb->ud, in_done, req->stdin_len);
			}
			if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
			    in_done == req->stdin_len) {
				/* done, or the command stopped reading (EPIPE): it sees EOF */
				sb_sandbox_exec_close_stdin(rs.x);
				in = -1;
			}
		}
	}
	if (err && err->code == SB_E_STATE_LOST) {
		/* the command ran but the sandbox died under it: a result with a transport error */
		res->transport_error_code = sb_xstrdup("sandbox_lost");
		res->transport_error_msg = sb_xstrdup(err->msg);
		sb_err_free(err);
		err = NULL;
		st.running = false;
	}
	if (!err)
		fill_result(&st, &rs, res);
	goto out;
kill:
	sb_err_free(sb_sandbox_exec_signal(impl->sb, sb_sandbox_exec_id(rs.x), SIGKILL));
out:
	free(sbuf);
	sb_sandbox_exec_free(rs.x);
	sb_tail_deinit(&rs.tail[0]);
	sb_tail_deinit(&rs.tail[1]);
	free(rs.buf);
	return err;
}

/* ---- file transfer */

/* Open (and with create, make) rel below the workspace one component at a time, refusing
 * symlinks anywhere: the workspace is writable by sandboxed code. */
static sb_err *open_confined(const sb_sandbox *sb, const char *rel, bool create, int *out)
{
	/* workspace_fd is an O_PATH handle: open the directory itself for reading first. */
	int root = openat(sb->workspace_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return sb_err_sys(errno, "opening the workspace %s", sb->workspace);
	sb_err *err = sb_fs_open_dir_nofollow(root, rel, create, out);
	close(root);
	if (!err)
		return NULL;
	/* Say what it means for a lease: a link or file on the way is an escape attempt. */
	int e = err->sys_errno;
	sb_err *mapped =
	    e == ELOOP || e == ENOTDIR
	        ? sb_err_new(SB_E_ESCAPE, "%s/%s: a component is a symlink or not a directory",
	                     sb->workspace_mount, rel)
	    : e == ENOENT ? sb_err_new(SB_E_NOTFOUND, "no directory %s/%s in lease %s",
	                               sb->workspace_mount, rel, sb->id)
	                  : sb_err_prefix(err, "lease %s", sb->id);
	if (mapped != err)
		sb_err_free(err);
	return mapped;
}

typedef struct xfer {
	const sb_sandbox *sb;
	const char *rel;
	char *const *preserve;
	const sb_excludes *ex;
	int tar_fd;
} xfer;

/* "/proc/self/fd/<n>": a path for functions that take one, resolving to an open directory
 * without walking its (possibly unreachable) ancestors. */
static char *fd_path(int fd, const char *name)
{
	return name ? sb_strfmt("/proc/self/fd/%d/%s", fd, name)
	            : sb_strfmt("/proc/self/fd/%d", fd);
}

/* As the owner: empty the directory but for preserve[], then extract into it. */
static sb_err *do_sync_in(void *ud)
{
	xfer *t = ud;
	int dfd = -1;
	sb_err *err = open_confined(t->sb, t->rel, true, &dfd);
	if (err)
		return err;
	char *display = sb_strfmt("%s/%s", t->sb->workspace_mount, t->rel);
	err = sb_fs_clear_dir(dfd, display, t->preserve);
	free(display);
	if (!err) {
		char *p = fd_path(dfd, NULL);
		err = sb_tar_extract(t->tar_fd, p, NULL);
		free(p);
	}
	close(dfd);
	return err;
}

static sb_err *do_sync_out(void *ud)
{
	xfer *t = ud;
	int dfd = -1;
	sb_err *err = open_confined(t->sb, t->rel, false, &dfd);
	if (err)
		return err;
	char *p = fd_path(dfd, NULL);
	err = sb_tar_create(p, t->ex, false, t->tar_fd, NULL);
	free(p);
	close(dfd);
	return err;
}

/* Copy src to dst counting bytes for progress. A reader that went away (EPIPE) ends the
 * copy quietly: its own error is the one worth reporting. */
static sb_err *pump(int src, int dst, sb_progress_fn progress, void *ud)
{
	char *buf = sb_xmalloc(READ_CHUNK);
	uint64_t done = 0;
	sb_err *err = NULL;
	for (;;) {
		ssize_t n = read(src, buf, READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = sb_err_sys(errno, "reading the tar stream");
			break;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write_nosigpipe(dst, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				if (errno != EPIPE)
					err = sb_err_sys(errno, "writing the tar stream");
				goto out;
			}
			off += w;
		}
		done += (uint64_t)n;
		progress(ud, done, 0);
	}
out:
	free(buf);
	return err;
}

/* Run fn as the owner with t->tar_fd = tar_fd, or, with a progress callback, through a pipe
 * that this thread feeds or drains while counting bytes (so progress is reported on the
 * caller's thread) as the owner's thread does the tar work. */
static sb_err *transfer(const sb_sandbox *sb, sb_err *(*fn)(void *), xfer *t, int tar_fd,
                        bool inbound, sb_progress_fn progress, void *ud)
{
	if (!progress) {
		t->tar_fd = tar_fd;
		return sb_sandbox_as_owner(sb, fn, t);
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return sb_err_sys(errno, "pipe for a workspace transfer in lease %s", sb->id);
	int mine = inbound ? p[1] : p[0], theirs = inbound ? p[0] : p[1];
	t->tar_fd = theirs;
	sb_owner_child oc;
	/* The owner thread closes its end when done: a writer's EOF ends our pump. */
	sb_err *err = sb_owner_start(sb, fn, t, theirs, &oc);
	if (err) {
		close(mine);
		return err;
	}
	sb_err *perr =
	    inbound ? pump(tar_fd, mine, progress, ud) : pump(mine, tar_fd, progress, ud);
	close(mine);
	err = sb_owner_finish(sb, &oc);
	if (err) {
		sb_err_free(perr);
		return err;
	}
	return perr;
}

static sb_err *sr_sync_in(sb_runner *r, const char *remote_dir, char *const *preserve, int tar_fd,
                          sb_progress_fn progress, void *progress_ud)
{
	sandbox_runner *impl = r->impl;
	char *rel = NULL;
	sb_err *err = sb_sandbox_map_path(impl->sb, remote_dir, &rel);
	if (err)
		return err;
	xfer t = {.sb = impl->sb, .rel = rel, .preserve = preserve};
	err = transfer(impl->sb, do_sync_in, &t, tar_fd, true, progress, progress_ud);
	free(rel);
	return err ? sb_err_prefix(err, "sync into %s of lease %s", remote_dir, impl->sb->id)
	           : NULL;
}

static sb_err *sr_sync_out(sb_runner *r, const char *remote_dir, const sb_excludes *ex, int tar_fd,
                           sb_progress_fn progress, void *progress_ud)
{
	sandbox_runner *impl = r->impl;
	char *rel = NULL;
	sb_err *err = sb_sandbox_map_path(impl->sb, remote_dir, &rel);
	if (err)
		return err;
	xfer t = {.sb = impl->sb, .rel = rel, .ex = ex};
	err = transfer(impl->sb, do_sync_out, &t, tar_fd, false, progress, progress_ud);
	free(rel);
	return err ? sb_err_prefix(err, "sync out of %s of lease %s", remote_dir, impl->sb->id)
	           : NULL;
}

static void sr_destroy(sb_runner *r)
{
	sandbox_runner *impl = r->impl;
	if (impl->own)
		sb_sandbox_close(impl->sb);
	free(impl->default_cwd);
	free(impl);
	free(r);
}

static const sb_runner_ops sandbox_ops = {
    .name = "sandbox",
    .execute = sr_execute,
    .sync_in = sr_sync_in,
    .sync_out = sr_sync_out,
    .destroy = sr_destroy,
};

sb_err *sb_sandbox_runner_new(sb_sandbox *sb, const sb_sandbox_runner_opts *opts, sb_runner **out)
{
	*out = NULL;
	if (!sb)
		return sb_err_new(SB_E_INVAL, "sandbox runner needs a sandbox");
	sandbox_runner *impl = sb_xcalloc(1, sizeof *impl);
	impl->sb = sb;
	impl->own = opts && opts->own_sandbox;
	impl->default_cwd =
	    sb_xstrdup(opts && opts->default_cwd ? opts->default_cwd : sb->workspace_mount);
	sb_runner *r = sb_xcalloc(1, sizeof *r);
	r->ops = &sandbox_ops;
	r->caps = SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_PROGRESS | SB_RUNNER_CAP_STDIN_STREAM |
	          SB_RUNNER_CAP_FILE_TRANSFER;
	r->impl = impl;
	*out = r;
	return NULL;
}
