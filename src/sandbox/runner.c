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

#define POLL_MS 500 /* also how often a dead sandbox is noticed */

typedef struct sandbox_runner {
	sb_sandbox *sb;
	char *default_cwd;
	bool own;
} sandbox_runner;

#define STDIN_STREAM_BUF (64u * 1024u)

typedef struct run_state {
	sb_sandbox_exec *x;
	const sb_exec_callbacks *cb;
	sb_tail tail[2];
	sb_exec_cursor cur; /* both streams, from the start */
} run_state;

static sb_err *take_output(void *ud, sb_stream stream, uint64_t offset, const char *data,
                           size_t len)
{
	(void)offset;
	run_state *rs = ud;
	sb_tail_append(&rs->tail[stream == SB_STREAM_STDOUT ? 0 : 1], data, len);
	if (rs->cb && rs->cb->on_output)
		return rs->cb->on_output(rs->cb->ud, stream, data, len);
	return NULL;
}

/* Status, then every new byte of both streams to the callbacks and the tails, through the one
 * follower (without waiting: this loop also watches stdin and cancellation). */
static sb_err *status_and_drain(run_state *rs, sb_sandbox_exec_status *st)
{
	bool finished = false;
	return sb_sandbox_exec_follow(rs->x, &rs->cur, 0, 0, take_output, rs, &finished, st);
}

static void fill_result(const sb_sandbox_exec_status *st, run_state *rs, sb_exec_result *res)
{
	res->has_exit_code = st->has_exit_code;
	res->exit_code = st->exit_code;
	res->signal[0] = '\0';
	if (st->signal)
		snprintf(res->signal, sizeof res->signal, "%s", sb_signal_name(st->signal));
	res->timed_out = st->timed_out;
	res->oom_killed = st->oom_killed;
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

/* The last window size the resize descriptor holds goes to the command's terminal. */
static void apply_resize(sb_sandbox_exec *x, int fd)
{
	uint16_t rec[2 * 32], last[2] = {0, 0};
	ssize_t n;
	while ((n = read(fd, rec, sizeof rec)) > 0) {
		size_t whole = (size_t)n / sizeof last * 2;
		if (whole >= 2)
			memcpy(last, rec + whole - 2, sizeof last);
		if ((size_t)n < sizeof rec)
			break;
	}
	if (last[0] && last[1])
		sb_err_free(sb_sandbox_exec_resize(x, last[0], last[1]));
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
	    .tty = req->tty,
	    .tty_rows = req->tty_rows,
	    .tty_cols = req->tty_cols,
	    .tty_term = req->tty_term,
	};
	int resize_fd = req->tty ? req->tty_resize_fd : -1;
	run_state rs = {0};
	size_t cap = req->output_cap ? req->output_cap : SB_OUTPUT_CAP_DEFAULT;
	sb_tail_init(&rs.tail[0], cap);
	sb_tail_init(&rs.tail[1], cap);
	rs.cb = cb;
	rs.cur.streams = (1u << SB_STREAM_STDOUT) | (1u << SB_STREAM_STDERR);
	sb_err *err = sb_sandbox_exec_start(impl->sb, &xr, &rs.x);
	if (err)
		goto out;
	/* the wake-up fd exists before the first read, so no change can slip between them */
	(void)sb_sandbox_exec_fd(rs.x);
	sb_sandbox_exec_status st;
	if ((err = sb_sandbox_exec_status_of(rs.x, &st)))
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
		if ((err = status_and_drain(&rs, &st))) {
			if (err->code == SB_E_STATE_LOST)
				break; /* the sandbox died: reported as before, nothing to kill */
			goto kill;
		}
		if (!st.running && kill_at) {
			err = sb_err_new(SB_E_CANCELED, "command \"%s\" cancelled", req->argv[0]);
			goto out;
		}
		if (!st.running)
			break;
		/* fetched each time: it changes if init goes away mid-command */
		bool want_src = src_open && in >= 0 && soff == sfill;
		struct pollfd p[5] = {{sb_sandbox_exec_fd(rs.x), POLLIN, 0},
		                      {kill_at ? -1 : sb_cancel_fd(cancel), POLLIN, 0},
		                      {req->stdin_stream && soff == sfill ? -1 : in, POLLOUT, 0},
		                      {want_src ? req->stdin_fd : -1, POLLIN, 0},
		                      {in >= 0 ? resize_fd : -1, POLLIN, 0}};
		int64_t wait_ms = POLL_MS;
		if (kill_at && kill_at - sb_mono_ms() < wait_ms)
			wait_ms = kill_at - sb_mono_ms() > 0 ? kill_at - sb_mono_ms() : 0;
		int rc = poll(p, 5, (int)wait_ms);
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
				/* EOF (or the source failed): the command sees EOF; a terminal has
				 * none, so it keeps running and can still be resized */
				src_open = false;
				if (!req->tty) {
					sb_sandbox_exec_close_stdin(rs.x);
					in = -1;
				}
			}
		}
		if (in >= 0 && p[4].revents)
			apply_resize(rs.x, resize_fd);
		if (req->stdin_stream && in >= 0 && soff < sfill && p[2].revents) {
			ssize_t w = sb_write_nosigpipe(in, sbuf + soff, sfill - soff);
			if (w > 0)
				soff += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				src_open = false; /* the command stopped reading */
				sb_sandbox_exec_close_stdin(rs.x);
				in = -1;
			}
		} else if (!req->stdin_stream && in >= 0 && p[2].revents) {
			const char *data = req->stdin_data;
			ssize_t w =
			    sb_write_nosigpipe(in, data + in_done, req->stdin_len - in_done);
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
	return err;
}

/* ---- file transfer */

typedef struct xfer {
	const sb_sandbox *sb;
	char *rel; /* owned */
	const sb_excludes *ex;
	int tar_fd;
} xfer;

static sb_err *do_sync_out(void *ud)
{
	xfer *t = ud;
	int dfd = -1;
	sb_err *err = sb_ws_open_dir(t->sb, t->rel, false, &dfd);
	if (err)
		return err;
	char *p = sb_strfmt("/proc/self/fd/%d", dfd);
	err = sb_tar_create(p, t->ex, false, t->tar_fd, NULL);
	free(p);
	close(dfd);
	return err;
}

/* Sync-in is the one workspace replace (sb_sandbox_workspace_replace): the old tree survives
 * anything that fails, and special members are skipped and counted as tar always did here. */
static sb_err *sr_sync_in(sb_runner *r, const char *remote_dir, char *const *preserve, int tar_fd,
                          sb_progress_fn progress, void *progress_ud)
{
	sandbox_runner *impl = r->impl;
	char *rel = NULL;
	sb_err *err = sb_sandbox_map_path(impl->sb, remote_dir, &rel);
	if (err)
		return err;
	sb_sandbox_replace_opts o = {.rel = rel,
	                             .keep = preserve,
	                             .special = SB_REPLACE_SPECIAL_SKIP_AND_COUNT,
	                             .progress = progress,
	                             .progress_ud = progress_ud};
	sb_sandbox_replace_result res;
	err = sb_sandbox_workspace_replace(impl->sb, tar_fd, &o, &res);
	free(rel);
	if (!err && res.specials_skipped)
		sb_info("sync into %s of lease %s: skipped %llu device, FIFO or socket member(s)",
		        remote_dir, impl->sb->id, (unsigned long long)res.specials_skipped);
	return err ? sb_err_prefix(err, "sync into %s of lease %s", remote_dir, impl->sb->id)
	           : NULL;
}

static sb_err *sr_sync_out(sb_runner *r, const char *remote_dir, const sb_excludes *ex, int tar_fd,
                           sb_progress_fn progress, void *progress_ud)
{
	sandbox_runner *impl = r->impl;
	xfer t = {.sb = impl->sb, .ex = ex};
	sb_err *err = sb_sandbox_map_path(impl->sb, remote_dir, &t.rel);
	if (!err)
		err = sb_owner_transfer(impl->sb, do_sync_out, &t, &t.tar_fd, tar_fd, false,
		                        progress, progress_ud);
	free(t.rel);
	return err ? sb_err_prefix(err, "sync out of %s of lease %s", remote_dir, impl->sb->id)
	           : NULL;
}

/* The incremental ops: runner_delta.c on this runner's lease. */
static sb_err *sr_manifest(sb_runner *r, const char *remote_dir, const sb_excludes *ex,
                           const sb_manifest_opts *o, sb_manifest *out)
{
	return sb_ws_manifest(((sandbox_runner *)r->impl)->sb, remote_dir, ex, o, out);
}

static sb_err *sr_sync_out_paths(sb_runner *r, const char *remote_dir, char *const *paths,
                                 int tar_fd, sb_progress_fn progress, void *progress_ud)
{
	return sb_ws_sync_out_paths(((sandbox_runner *)r->impl)->sb, remote_dir, paths, tar_fd,
	                            progress, progress_ud);
}

static sb_err *sr_sync_in_delta(sb_runner *r, const char *remote_dir, char *const *dels, int tar_fd,
                                sb_progress_fn progress, void *progress_ud)
{
	return sb_ws_sync_in_delta(((sandbox_runner *)r->impl)->sb, remote_dir, dels, tar_fd,
	                           progress, progress_ud);
}

static sb_err *sr_file_read(sb_runner *r, const char *path, size_t max, sb_buf *out)
{
	return sb_ws_file_read(((sandbox_runner *)r->impl)->sb, path, max, out);
}

static sb_err *sr_file_write(sb_runner *r, const char *path, const void *data, size_t len)
{
	return sb_ws_file_write(((sandbox_runner *)r->impl)->sb, path, data, len);
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
    .manifest = sr_manifest,
    .sync_out_paths = sr_sync_out_paths,
    .sync_in_delta = sr_sync_in_delta,
    .file_read = sr_file_read,
    .file_write = sr_file_write,
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
	          SB_RUNNER_CAP_TTY | SB_RUNNER_CAP_FILE_TRANSFER | SB_RUNNER_CAP_DELTA;
	r->impl = impl;
	*out = r;
	return NULL;
}
