/* The command path over a runner that carries bytes both ways (SB_RUNNER_CAP_STDIN_STREAM:
 * local, prefix over ssh / kubectl exec -i / docker exec -i, the sandbox): one remote command per
 * direction, whatever the size, and no temporary archive anywhere.
 *
 * In: a producer thread writes the tar of the local tree into a pipe while the runner streams
 * that pipe into `tar -x -f -` on the far side (after the same destroy-then-replace wipe as the
 * chunked path). Out: the far `tar -c -f -` writes to stdout, and every chunk of output the
 * runner hands us goes into a pipe that an extractor thread unpacks into the staging directory.
 * The archive size limit is checked on the running total, so a too-large tree stops the far tar
 * before anything reaches the workspace (DESIGN.md §9.8).
 *
 * SIGPIPE: both pipes may lose their reader (the far tar failed, the extractor refused a
 * member). The threads that write to them block SIGPIPE, so that shows as EPIPE, and the error
 * reported is the one that caused it, not the EPIPE.
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* stdout of the far tar is consumed by the callback; the kept tail only feeds error messages
 * (binary, so keep it small). */
#define STREAM_OUTPUT_CAP 4096u

bool sb_rt_can_stream(const sb_rt_ctx *c)
{
	unsigned want = SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_STREAM;
	return (sb_runner_caps(c->runner) & want) == want;
}

/* Block SIGPIPE on this thread; returns whether it was blocked before. */
static bool block_sigpipe(void)
{
	sigset_t pipe_only, old;
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
	return sigismember(&old, SIGPIPE);
}

/* Consume a SIGPIPE our writes raised, then unblock it unless it was blocked before. */
static void restore_sigpipe(bool was_blocked)
{
	if (was_blocked)
		return;
	sigset_t pipe_only, pending;
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_UNBLOCK, &pipe_only, NULL);
}

static bool is_epipe(const sb_err *e)
{
	return e && e->code == SB_E_IO && e->sys_errno == EPIPE;
}

/* The error to report when both ends may have failed: the cause, not its EPIPE echo. */
static sb_err *pick_error(sb_err *local, sb_err *remote)
{
	if (!local)
		return remote;
	if (!remote)
		return local;
	if (is_epipe(local)) {
		sb_err_free(local);
		return remote;
	}
	sb_err_free(remote);
	return local;
}

int sb_rt_stream_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	/* Best effort: past the per-user pipe quota the kernel keeps the default size. */
	(void)fcntl(fds[1], F_SETPIPE_SZ, SB_RT_STREAM_PIPE_BYTES);
	return 0;
}

/* ---- in */

typedef struct producer {
	const sb_rt_stage *s;
	int fd; /* the pipe's write end, the thread's */
	int rd; /* its read end, the caller's */
	pthread_t thread;
	uint64_t bytes;
	sb_err *err;
} producer;

static void *produce(void *arg)
{
	producer *pr = arg;
	block_sigpipe(); /* a new thread: nothing to restore, the mask dies with it */
	const sb_rt_stage *s = pr->s;
	pr->err = sb_rt_stage_tar(s, s->delta ? s->pick : NULL, s->pick_ud, pr->fd, &pr->bytes);
	sb_close(&pr->fd);
	return NULL;
}

static void on_stdin_progress(void *ud, uint64_t done, uint64_t total)
{
	(void)total; /* a stream: the size is known only at its end */
	sb_rt_progress_report(ud, done, 0);
}

/* The archive writer on a thread of its own, writing into a new pipe whose read end is
 * *read_fd. */
static sb_err *start_producer(const sb_rt_stage *s, producer *pr)
{
	int fds[2];
	if (sb_rt_stream_pipe(fds) != 0)
		return sb_err_sys(errno, "creating the pipe that streams %s", s->local_dir);
	*pr = (producer){.s = s, .fd = fds[1], .rd = fds[0]};
	int rc = pthread_create(&pr->thread, NULL, produce, pr);
	if (rc != 0) {
		close(fds[0]);
		close(fds[1]);
		return sb_err_sys(rc, "starting the archive writer for %s", s->local_dir);
	}
	return NULL;
}

/* A transfer's end, told to the progress display; the byte count out when it succeeded. */
static sb_err *transfer_end(sb_rt_progress *p, sb_err *err, uint64_t bytes, uint64_t *bytes_out)
{
	if (err) {
		sb_rt_progress_fail(p);
		return err;
	}
	sb_rt_progress_complete(p, bytes, bytes);
	*bytes_out = bytes;
	return NULL;
}

sb_err *sb_rt_stream_in(const sb_rt_ctx *c, const sb_rt_stage *s, sb_rt_progress *p,
                        sb_rt_timer *tm, uint64_t *bytes_out)
{
	producer pr;
	sb_err *serr = start_producer(s, &pr);
	if (serr)
		return serr;
	sb_rt_progress_report(p, 0, 0);
	char *script = sb_rt_script_extract(s->remote_dir, NULL, s->spare);
	if (s->ensure_dir || s->ours_marker || s->create_fresh) {
		sb_buf b = SB_BUF_INIT;
		sb_rt_script_stage_head(&b, s);
		sb_buf_appends(&b, script);
		if (s->ensure_dir) {
			sb_buf_appends(&b, " && mkdir -p ");
			sb_shell_quote(&b, s->ensure_dir);
		}
		free(script);
		script = sb_buf_steal(&b, NULL);
	}
	sb_rt_stdin in = {.has = true, .stream = true, .fd = pr.rd};
	sb_exec_callbacks cb = {.on_stdin_progress = on_stdin_progress, .ud = p};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *rerr = sb_rt_run(c, script, &in, &cb, STREAM_OUTPUT_CAP, &res);
	rerr = sb_rt_stage_head_error(s, &res, rerr);
	sb_exec_result_deinit(&res);
	free(script);
	/* The far side is done reading: a writer still going gets EPIPE, not a hang. */
	close(pr.rd);
	pthread_join(pr.thread, NULL);
	sb_rt_timer_mark(tm, "stream");
	sb_err *err;
	if (rerr && rerr->code == SB_E_EXISTS) {
		sb_err_free(pr.err); /* its EPIPE: the guard read nothing */
		err = rerr;
	} else {
		err = pick_error(pr.err, rerr);
	}
	return transfer_end(p, err, pr.bytes, bytes_out);
}

/* Native: the same producer feeds the runner's sync_in through a pipe (no temp archive). */
sb_err *sb_rt_stream_native_in(const sb_rt_ctx *c, const sb_rt_stage *s, sb_rt_progress *p,
                               sb_rt_timer *tm, uint64_t *bytes_out)
{
	if (s->delta && !s->pick) { /* removals only */
		sb_err *err =
		    sb_runner_sync_in_delta(c->runner, s->remote_dir, s->dels, -1, NULL, NULL);
		sb_rt_timer_mark(tm, "stream");
		return transfer_end(p, err, 0, bytes_out);
	}
	producer pr;
	sb_err *serr = start_producer(s, &pr);
	if (serr)
		return serr;
	sb_err *rerr = s->delta ? sb_runner_sync_in_delta(c->runner, s->remote_dir, s->dels, pr.rd,
	                                                  on_stdin_progress, p)
	                        : sb_runner_sync_in(c->runner, s->remote_dir, s->spare, pr.rd,
	                                            on_stdin_progress, p);
	close(pr.rd);
	pthread_join(pr.thread, NULL);
	sb_rt_timer_mark(tm, "stream");
	return transfer_end(p, pick_error(pr.err, rerr), pr.bytes, bytes_out);
}

/* ---- out */

typedef struct extractor {
	int fd;
	const char *dest;
	sb_tar_extract_opts xo;
	sb_err *err;
} extractor;

static void *extract(void *arg)
{
	extractor *x = arg;
	x->err = sb_tar_extract_ex(x->fd, x->dest, &x->xo, NULL, NULL);
	if (!x->err) {
		/* Drain what follows the end marker (tar's record padding), so the writer never
		 * blocks on a full pipe that nobody reads. */
		char buf[4096];
		ssize_t n;
		while ((n = read(x->fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
			;
	}
	sb_close(&x->fd);
	return NULL;
}

typedef struct out_sink {
	const sb_rt_fetch *f;
	sb_rt_progress *p;
	int fd;
	uint64_t bytes;
	sb_err *err; /* what stopped the far tar, kept to report it rather than the cancel */
} out_sink;

static sb_err *on_tar_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	out_sink *k = ud;
	if (stream != SB_STREAM_STDOUT)
		return NULL;
	if (k->f->max_bytes > 0 && k->bytes + len > (uint64_t)k->f->max_bytes) {
		uint64_t seen = k->bytes + len;
		k->err = sb_err_new(SB_E_FILE_TOO_LARGE,
		                    "Remote archive of %s is more than %llu bytes, exceeding the "
		                    "%lld byte limit",
		                    k->f->remote_dir, (unsigned long long)k->bytes,
		                    (long long)k->f->max_bytes);
		k->err->actual_bytes = seen > INT64_MAX ? INT64_MAX : (int64_t)seen;
		k->err->limit_bytes = k->f->max_bytes;
		return sb_err_new(SB_E_FILE_TOO_LARGE, "%s", k->err->msg);
	}
	sb_err *err = sb_write_all(k->fd, data, len);
	if (err) {
		k->err = err;
		return sb_err_new(err->code, "%s", err->msg);
	}
	k->bytes += len;
	sb_rt_progress_report(k->p, k->bytes, 0);
	return NULL;
}

struct sb_rt_out {
	extractor x;
	pthread_t thread;
	out_sink k;
	bool was_blocked;
	sb_exec_callbacks cb;
};

const sb_exec_callbacks *sb_rt_out_callbacks(sb_rt_out *o)
{
	return &o->cb;
}

sb_err *sb_rt_out_open(const sb_rt_fetch *f, sb_rt_progress *p, sb_rt_out **out)
{
	*out = NULL;
	int fds[2];
	if (sb_rt_stream_pipe(fds) != 0)
		return sb_err_sys(errno, "creating the pipe that streams %s", f->remote_dir);
	sb_rt_out *o = sb_xcalloc(1, sizeof *o);
	o->x = (extractor){.fd = fds[0], .dest = f->local_dest, .xo = sb_rt_fetch_extract_opts(f)};
	int rc = pthread_create(&o->thread, NULL, extract, &o->x);
	if (rc != 0) {
		close(fds[0]);
		close(fds[1]);
		free(o);
		return sb_err_sys(rc, "starting the extractor for %s", f->remote_dir);
	}
	o->was_blocked = block_sigpipe();
	sb_rt_progress_report(p, 0, 0);
	o->k = (out_sink){.f = f, .p = p, .fd = fds[1]};
	o->cb = (sb_exec_callbacks){.on_output = on_tar_output, .ud = &o->k};
	*out = o;
	return NULL;
}

sb_err *sb_rt_out_close(sb_rt_out *o, sb_err *rerr, const char *script, sb_exec_result *res,
                        uint64_t *bytes_out)
{
	if (rerr && res && (rerr->code == SB_E_COMMAND || rerr->code == SB_E_TIMEOUT)) {
		/* stdout is the archive; the far tar's own words (some tars report on stdout)
		 * follow its last NUL byte. */
		size_t keep = res->out.len;
		while (keep > 0 && res->out.data[keep - 1] != '\0')
			keep--;
		sb_buf_consume(&res->out, keep);
		sb_err_free(rerr);
		rerr = sb_rt_command_error(script, res);
	}
	close(o->k.fd); /* the extractor sees the end of the archive */
	pthread_join(o->thread, NULL);
	restore_sigpipe(o->was_blocked);
	sb_err *err;
	if (o->k.err && !is_epipe(o->k.err)) {
		/* The size limit (or a failed write) stopped the far tar. */
		sb_err_free(rerr);
		sb_err_free(o->x.err);
		err = o->k.err;
	} else if (rerr && (rerr->code == SB_E_COMMAND || rerr->code == SB_E_TIMEOUT)) {
		/* The far tar failed by itself: its message says why; what it wrote is junk. */
		sb_err_free(o->k.err);
		sb_err_free(o->x.err);
		err = rerr;
	} else {
		/* The extractor refused the stream (then the writes fail with EPIPE and the
		 * far tar is stopped: the extractor's error is the cause). */
		sb_err_free(o->k.err);
		err = pick_error(o->x.err, rerr);
	}
	if (err)
		sb_rt_progress_fail(o->k.p);
	else
		sb_rt_progress_complete(o->k.p, o->k.bytes, o->k.bytes);
	*bytes_out = o->k.bytes;
	free(o);
	return err;
}

sb_err *sb_rt_stream_out(const sb_rt_ctx *c, const sb_rt_fetch *f, sb_rt_progress *p,
                         sb_rt_timer *tm, uint64_t *bytes_out)
{
	sb_rt_out *o;
	sb_err *err = sb_rt_out_open(f, p, &o);
	if (err)
		return err;
	char *script = sb_rt_script_archive(f->remote_dir, NULL, f->ex);
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *rerr = sb_rt_run(c, script, NULL, &o->cb, STREAM_OUTPUT_CAP, &res);
	err = sb_rt_out_close(o, rerr, script, &res, bytes_out);
	sb_exec_result_deinit(&res);
	free(script);
	sb_rt_timer_mark(tm, "stream");
	return err;
}

/* Native out without a size limit: the runner's sync_out writes into a pipe that the extractor
 * unpacks as it comes (with a limit, transfer.c keeps the archive in a file to measure it
 * before extracting anything). */
typedef struct native_count {
	sb_rt_progress *p;
	uint64_t bytes;
} native_count;

static void count_native(void *ud, uint64_t done, uint64_t total)
{
	(void)total;
	native_count *n = ud;
	if (done > n->bytes)
		n->bytes = done;
	sb_rt_progress_report(n->p, done, 0);
}

sb_err *sb_rt_stream_native_out(const sb_rt_ctx *c, const sb_rt_fetch *f, sb_rt_progress *p,
                                sb_rt_timer *tm, uint64_t *bytes_out)
{
	int fds[2];
	if (sb_rt_stream_pipe(fds) != 0)
		return sb_err_sys(errno, "creating the pipe that streams %s", f->remote_dir);
	extractor x = {.fd = fds[0], .dest = f->local_dest, .xo = sb_rt_fetch_extract_opts(f)};
	pthread_t t;
	int rc = pthread_create(&t, NULL, extract, &x);
	if (rc != 0) {
		close(fds[0]);
		close(fds[1]);
		return sb_err_sys(rc, "starting the extractor for %s", f->remote_dir);
	}
	bool was_blocked = block_sigpipe();
	native_count n = {.p = p};
	sb_err *rerr = f->paths ? sb_runner_sync_out_paths(c->runner, f->remote_dir, f->paths,
	                                                   fds[1], count_native, &n)
	                        : sb_runner_sync_out(c->runner, f->remote_dir, f->ex, fds[1],
	                                             count_native, &n);
	close(fds[1]);
	pthread_join(t, NULL);
	restore_sigpipe(was_blocked);
	sb_rt_timer_mark(tm, "stream");
	/* A sync_out that failed on EPIPE was stopped by the extractor: report the cause. Any
	 * other failure of the transfer is the cause itself (the extractor then saw a cut). */
	return transfer_end(p, pick_error(rerr, x.err), n.bytes, bytes_out);
}
