/* The runner seam: request validation and normalisation in front of every runner, the result
 * helpers and signal names. Runners (local, prefix, sandbox, bridge) implement sb_runner_ops and
 * receive only requests that passed sb_runner_execute's checks, with grace_ms and output_cap
 * already resolved to their effective values (see runner_int.h).
 */
#include "runner_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_exec_result_init(sb_exec_result *r)
{
	memset(r, 0, sizeof(*r));
	sb_buf_init(&r->out);
	sb_buf_init(&r->err);
}

void sb_exec_result_deinit(sb_exec_result *r)
{
	if (!r)
		return;
	sb_buf_deinit(&r->out);
	sb_buf_deinit(&r->err);
	free(r->transport_error_code);
	free(r->transport_error_msg);
	r->transport_error_code = NULL;
	r->transport_error_msg = NULL;
}

bool sb_exec_result_ok(const sb_exec_result *r)
{
	return r->has_exit_code && r->exit_code == 0 && !r->timed_out &&
	       r->transport_error_code == NULL;
}

/* ---------------------------------------------------------------- exit status */

int sb_exit_status(const sb_exit_how *how)
{
	if (how->timed_out)
		return SB_EXIT_TIMEOUT;
	if (how->has_exit_code)
		return how->exit_code;
	if (how->signo > 0)
		return SB_EXIT_SIGNAL_BASE + how->signo;
	return SB_EXIT_FAILURE;
}

int sb_exec_result_exit_status(const sb_exec_result *r)
{
	sb_exit_how how = {.timed_out = r->timed_out,
	                   .has_exit_code = r->has_exit_code,
	                   .exit_code = r->exit_code,
	                   .signo = sb_signal_number(r->signal)};
	return sb_exit_status(&how);
}

int sb_exit_status_for_start_error(const sb_err *err)
{
	if (!err)
		return SB_EXIT_OK;
	if (err->code != SB_E_SPAWN)
		return SB_EXIT_FAILURE;
	return err->sys_errno == ENOENT ? SB_EXIT_NOTFOUND : SB_EXIT_NOEXEC;
}

/* ---------------------------------------------------------------- signals */

static const struct {
	int signo;
	const char *name;
} signal_table[] = {
    {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},       {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
    {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"},     {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
    {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},     {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
    {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"},     {SIGTERM, "SIGTERM"}, {SIGSTKFLT, "SIGSTKFLT"},
    {SIGCHLD, "SIGCHLD"}, {SIGCONT, "SIGCONT"},     {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"},
    {SIGTTIN, "SIGTTIN"}, {SIGTTOU, "SIGTTOU"},     {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"},
    {SIGXFSZ, "SIGXFSZ"}, {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"},
    {SIGIO, "SIGIO"},     {SIGPWR, "SIGPWR"},       {SIGSYS, "SIGSYS"},
};

#define SIGNAL_TABLE_LEN (sizeof(signal_table) / sizeof(signal_table[0]))

const char *sb_signal_name(int signo)
{
	for (size_t i = 0; i < SIGNAL_TABLE_LEN; i++)
		if (signal_table[i].signo == signo)
			return signal_table[i].name;
	/* Unknown numbers (real-time signals, garbage): a per-thread buffer keeps this callable
	 * from several threads; the string lives until the thread's next unknown lookup. */
	static _Thread_local char unknown[16];
	snprintf(unknown, sizeof(unknown), "SIG%d", signo);
	return unknown;
}

int sb_signal_number(const char *name)
{
	if (!name || !*name)
		return 0;
	const char *bare = sb_str_has_prefix(name, "SIG") ? name + 3 : name;
	for (size_t i = 0; i < SIGNAL_TABLE_LEN; i++)
		if (strcmp(signal_table[i].name + 3, bare) == 0)
			return signal_table[i].signo;
	/* "SIG<n>" is what sb_signal_name produces for numbers it has no name for. */
	int64_t n = 0;
	sb_err *err = sb_parse_int64(bare, 1, 127, &n);
	if (err) {
		sb_err_free(err);
		return 0;
	}
	return (int)n;
}

/* ---------------------------------------------------------------- dispatch */

static sb_err *check_request(const sb_runner *r, const sb_exec_request *req)
{
	if (!req->argv || !req->argv[0] || !req->argv[0][0])
		return sb_err_new(SB_E_INVAL, "exec request: argv must name a command");
	if (req->cwd && !req->cwd[0])
		return sb_err_new(SB_E_INVAL, "exec request: cwd is empty (use NULL for the "
		                              "runner's default)");
	if (req->env) {
		for (char *const *e = req->env; *e; e++) {
			const char *eq = strchr(*e, '=');
			if (!eq || eq == *e)
				return sb_err_new(SB_E_INVAL,
				                  "exec request: environment entry \"%s\" is not "
				                  "KEY=VALUE",
				                  *e);
		}
	}
	if (!req->has_stdin && req->stdin_len > 0)
		return sb_err_new(SB_E_INVAL,
		                  "exec request: stdin_len is %zu but has_stdin is false",
		                  req->stdin_len);
	if (req->stdin_len > 0 && !req->stdin_data)
		return sb_err_new(SB_E_INVAL,
		                  "exec request: stdin_len is %zu but stdin_data is "
		                  "NULL",
		                  req->stdin_len);
	if (req->stdin_stream && (!req->has_stdin || req->stdin_len || req->stdin_fd < 0))
		return sb_err_new(SB_E_INVAL, "exec request: a stdin stream needs has_stdin, a "
		                              "descriptor and no stdin_data");
	if (req->tty && !req->stdin_stream)
		return sb_err_new(SB_E_INVAL, "exec request: a terminal needs a stdin stream");
	if (req->tty && !(r->caps & SB_RUNNER_CAP_TTY))
		return sb_err_new(SB_E_UNSUPPORTED,
		                  "the %s runner cannot give a command a terminal (use the "
		                  "embedded sandbox)",
		                  r->ops->name);
	if (req->stdin_stream && !(r->caps & SB_RUNNER_CAP_STDIN_STREAM))
		return sb_err_new(SB_E_UNSUPPORTED,
		                  "the %s runner cannot stream stdin (use the embedded sandbox)",
		                  r->ops->name);
	if (req->has_stdin && !(r->caps & SB_RUNNER_CAP_STDIN))
		return sb_err_new(SB_E_UNSUPPORTED,
		                  "the %s runner cannot pass stdin to a command; send the data "
		                  "another way (e.g. a file)",
		                  r->ops->name);
	if (req->timeout_ms < 0)
		return sb_err_new(SB_E_INVAL, "exec request: timeout_ms %lld is negative",
		                  (long long)req->timeout_ms);
	if (req->grace_ms < 0)
		return sb_err_new(SB_E_INVAL, "exec request: grace_ms %lld is negative",
		                  (long long)req->grace_ms);
	return NULL;
}

sb_err *sb_runner_execute(sb_runner *r, const sb_exec_request *req, const sb_exec_callbacks *cb,
                          sb_cancel *cancel, sb_exec_result *res)
{
	if (!r || !r->ops || !r->ops->execute)
		return sb_err_new(SB_E_INVAL, "exec: no runner");
	if (!req || !res)
		return sb_err_new(SB_E_INVAL,
		                  "exec on the %s runner: request and result are "
		                  "required",
		                  r->ops->name);
	sb_err *err = check_request(r, req);
	if (err)
		return err;

	sb_exec_request norm = *req;
	norm.grace_ms = sb_runner_effective_grace_ms(req->grace_ms);
	if (norm.output_cap == 0)
		norm.output_cap = SB_OUTPUT_CAP_DEFAULT;
	static const sb_exec_callbacks no_callbacks = {0};
	return r->ops->execute(r, &norm, cb ? cb : &no_callbacks, cancel, res);
}

int64_t sb_runner_effective_grace_ms(int64_t grace_ms)
{
	if (grace_ms == 0)
		grace_ms = SB_GRACE_MS_DEFAULT;
	return grace_ms < 1000 ? 1000 : grace_ms;
}

unsigned sb_runner_caps(const sb_runner *r)
{
	return r ? r->caps : 0;
}

const char *sb_runner_name(const sb_runner *r)
{
	return r && r->ops ? r->ops->name : "none";
}

sb_err *sb_runner_sync_in(sb_runner *r, const char *remote_dir, char *const *preserve, int tar_fd,
                          sb_progress_fn progress, void *progress_ud)
{
	if (!r || !r->ops)
		return sb_err_new(SB_E_INVAL, "sync in: no runner");
	if (!(r->caps & SB_RUNNER_CAP_FILE_TRANSFER) || !r->ops->sync_in)
		return sb_err_new(SB_E_UNSUPPORTED,
		                  "the %s runner has no native file transfer; use the "
		                  "command-based transfer",
		                  r->ops->name);
	if (!remote_dir || !remote_dir[0])
		return sb_err_new(SB_E_INVAL, "sync in on the %s runner: remote_dir is empty",
		                  r->ops->name);
	if (tar_fd < 0)
		return sb_err_new(SB_E_INVAL, "sync in to %s: no tar stream", remote_dir);
	return r->ops->sync_in(r, remote_dir, preserve, tar_fd, progress, progress_ud);
}

sb_err *sb_runner_sync_out(sb_runner *r, const char *remote_dir, const sb_excludes *ex, int tar_fd,
                           sb_progress_fn progress, void *progress_ud)
{
	if (!r || !r->ops)
		return sb_err_new(SB_E_INVAL, "sync out: no runner");
	if (!(r->caps & SB_RUNNER_CAP_FILE_TRANSFER) || !r->ops->sync_out)
		return sb_err_new(SB_E_UNSUPPORTED,
		                  "the %s runner has no native file transfer; use the "
		                  "command-based transfer",
		                  r->ops->name);
	if (!remote_dir || !remote_dir[0])
		return sb_err_new(SB_E_INVAL, "sync out on the %s runner: remote_dir is empty",
		                  r->ops->name);
	if (tar_fd < 0)
		return sb_err_new(SB_E_INVAL, "sync out of %s: no tar stream", remote_dir);
	return r->ops->sync_out(r, remote_dir, ex, tar_fd, progress, progress_ud);
}

bool sb_runner_can_delta(const sb_runner *r)
{
	const sb_runner_ops *o = r && r->ops ? r->ops : NULL;
	return o && (r->caps & SB_RUNNER_CAP_DELTA) && (r->caps & SB_RUNNER_CAP_FILE_TRANSFER) &&
	       o->manifest && o->sync_out_paths && o->sync_in_delta && o->file_read &&
	       o->file_write;
}

/* The checks every SB_RUNNER_CAP_DELTA op shares: a runner that has the op, a remote path. */
static sb_err *delta_check(const sb_runner *r, bool has_op, const char *what, const char *path)
{
	if (!r || !r->ops)
		return sb_err_new(SB_E_INVAL, "%s: no runner", what);
	if (!(r->caps & SB_RUNNER_CAP_DELTA) || !has_op)
		return sb_err_new(SB_E_UNSUPPORTED, "the %s runner cannot %s", r->ops->name, what);
	if (!path || path[0] != '/')
		return sb_err_new(SB_E_INVAL,
		                  "%s on the %s runner: the remote path is not absolute", what,
		                  r->ops->name);
	return NULL;
}

sb_err *sb_runner_manifest(sb_runner *r, const char *remote_dir, const sb_excludes *ex,
                           const sb_manifest_opts *o, sb_manifest *out)
{
	sb_manifest_init(out);
	sb_err *err = delta_check(r, r && r->ops && r->ops->manifest, "list a tree", remote_dir);
	return err ? err : r->ops->manifest(r, remote_dir, ex, o, out);
}

sb_err *sb_runner_sync_out_paths(sb_runner *r, const char *remote_dir, char *const *paths,
                                 int tar_fd, sb_progress_fn progress, void *progress_ud)
{
	sb_err *err = delta_check(r, r && r->ops && r->ops->sync_out_paths, "send chosen entries",
	                          remote_dir);
	if (!err && tar_fd < 0)
		err = sb_err_new(SB_E_INVAL, "sync out of %s: no tar stream", remote_dir);
	return err ? err
	           : r->ops->sync_out_paths(r, remote_dir, paths, tar_fd, progress, progress_ud);
}

sb_err *sb_runner_sync_in_delta(sb_runner *r, const char *remote_dir, char *const *dels, int tar_fd,
                                sb_progress_fn progress, void *progress_ud)
{
	sb_err *err =
	    delta_check(r, r && r->ops && r->ops->sync_in_delta, "apply a delta", remote_dir);
	return err ? err
	           : r->ops->sync_in_delta(r, remote_dir, dels, tar_fd, progress, progress_ud);
}

sb_err *sb_runner_file_read(sb_runner *r, const char *path, size_t max, sb_buf *out)
{
	sb_err *err = delta_check(r, r && r->ops && r->ops->file_read, "read a file", path);
	return err ? err : r->ops->file_read(r, path, max, out);
}

sb_err *sb_runner_file_write(sb_runner *r, const char *path, const void *data, size_t len)
{
	sb_err *err = delta_check(r, r && r->ops && r->ops->file_write, "write a file", path);
	return err ? err : r->ops->file_write(r, path, data, len);
}

void sb_runner_free(sb_runner *r)
{
	if (r && r->ops && r->ops->destroy)
		r->ops->destroy(r);
}
