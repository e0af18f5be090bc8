/* Execs on the host side: start a command through sandbar-init, then follow it through its
 * spool directory (output files readable from any offset, status.json replaced atomically by
 * init; waiting for changes: exec_wait.c). Attaching by id works the same before and after a
 * restart, which is what makes recovery possible. Execs by id (status, removal, list, signal)
 * and the sandbox's processes: exec_admin.c. */
#include "exec_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sb_json.h"

#define STATUS_MAX 4096

static const char *const stream_names[2] = {"stdout", "stderr"};

static const char *const default_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=" SB_SANDBOX_HOME,
    "USER=sandbox",
    "LOGNAME=sandbox",
    "SHELL=/bin/sh",
    "TMPDIR=/tmp",
    "LANG=C.UTF-8",
    NULL,
};

static bool env_overridden(char *const *add, const char *kv)
{
	size_t klen = strcspn(kv, "=");
	for (size_t i = 0; add && add[i]; i++)
		if (strncmp(add[i], kv, klen) == 0 && add[i][klen] == '=')
			return true;
	return false;
}

static sb_err *build_request(sb_sandbox *sb, const sb_sandbox_exec_req *req, const char *id,
                             const char *cwd, sbi_msg *m)
{
	int bad = 0;
	bad |= sbi_msg_add(m, "op", "exec");
	bad |= sbi_msg_add(m, "id", id);
	bad |= sbi_msg_add(m, "cwd", cwd);
	bad |= sbi_msg_addi(m, "timeout_ms", req->timeout_ms);
	bad |= sbi_msg_addi(m, "grace_ms", req->grace_ms > 0 ? req->grace_ms : SB_GRACE_MS_DEFAULT);
	bad |= sbi_msg_add(m, "stdin",
	                   req->stdin_mode == SB_SANDBOX_STDIN_PIPE && !req->tty ? "pipe" : "null");
	if (req->stdin_mode == SB_SANDBOX_STDIN_PIPE && !req->tty && req->input_reattach)
		bad |= sbi_msg_add(m, "hold", "1");
	if (req->tty)
		bad |= sb_exec_tty_fields(req, m);
	bad |= sbi_msg_add(m, "notify", "1");
	bad |= sbi_msg_add(m, "wake", "1");
	for (size_t i = 0; req->argv[i]; i++)
		bad |= sbi_msg_add(m, "arg", req->argv[i]);
	if (!req->clear_env)
		for (size_t i = 0; default_env[i]; i++)
			if (!env_overridden(req->env, default_env[i]))
				bad |= sbi_msg_add(m, "env", default_env[i]);
	/* the egress proxy (proxy_lease.c) and the callback bridge's endpoint (callback.c),
	 * unless the request sets its own; the proxy's NO_PROXY covers the callback name too */
	for (size_t i = 0; sb->px_env && sb->px_env[i]; i++)
		if (!env_overridden(req->env, sb->px_env[i]))
			bad |= sbi_msg_add(m, "env", sb->px_env[i]);
	for (size_t i = 0; sb->cb_env && sb->cb_env[i]; i++)
		if (!env_overridden(req->env, sb->cb_env[i]) &&
		    !env_overridden(sb->px_env, sb->cb_env[i]))
			bad |= sbi_msg_add(m, "env", sb->cb_env[i]);
	for (size_t i = 0; req->env && req->env[i]; i++) {
		if (!strchr(req->env[i], '=') || req->env[i][0] == '=')
			return sb_err_new(SB_E_INVAL, "environment entry \"%s\" is not KEY=VALUE",
			                  req->env[i]);
		bad |= sbi_msg_add(m, "env", req->env[i]);
	}
	if (bad)
		return sb_err_new(SB_E_TOO_LARGE,
		                  "exec request for lease %s is over %u bytes (argv + env)", sb->id,
		                  SBI_FRAME_MAX);
	return NULL;
}

static sb_sandbox_exec *new_handle(sb_sandbox *sb, const char *exec_id)
{
	sb_sandbox_exec *x = sb_xcalloc(1, sizeof *x);
	x->sb = sb;
	snprintf(x->id, sizeof x->id, "%s", exec_id);
	x->dirfd = x->out[0] = x->out[1] = x->ino = x->stdin_w = x->conn = x->wake = -1;
	sbi_reader_init(&x->rd);
	x->alive_checked_ms = sb_mono_ms();
	return x;
}

/* init makes an exec's spool directory right after replying to its start: a handle from
 * exec_start opens it on first need. False while it does not exist yet. */
static bool ensure_dir(sb_sandbox_exec *x)
{
	if (x->dirfd < 0)
		x->dirfd = openat(x->sb->spool_fd, x->id, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return x->dirfd >= 0;
}

sb_err *sb_sandbox_exec_start(sb_sandbox *sb, const sb_sandbox_exec_req *req, sb_sandbox_exec **out)
{
	*out = NULL;
	if (sb->dead)
		return sb_err_new(SB_E_STATE_LOST, "the sandbox of lease %s is gone", sb->id);
	if (!req || !req->argv || !req->argv[0] || !req->argv[0][0])
		return sb_err_new(SB_E_INVAL, "exec in lease %s: argv is empty", sb->id);
	if (req->timeout_ms < 0 || req->grace_ms < 0)
		return sb_err_new(SB_E_INVAL, "exec in lease %s: negative timeout", sb->id);
	const char *cwd = req->cwd ? req->cwd : sb->workspace_mount;
	if (cwd[0] != '/')
		return sb_err_new(SB_E_INVAL, "exec in lease %s: cwd \"%s\" is not absolute",
		                  sb->id, cwd);
	char *gen = NULL;
	const char *id = req->exec_id;
	if (!id)
		id = gen = sb_random_id("ex_");
	sb_err *err = sb_lease_check_id("exec", id);
	sbi_msg m, reply;
	sbi_msg_init(&m);
	sbi_msg_init(&reply);
	int in[2] = {-1, -1}, wake[2] = {-1, -1}, conn = -1, master = -1;
	sbi_reader rd;
	sbi_reader_init(&rd);
	if (err || (err = build_request(sb, req, id, cwd, &m)))
		goto out;
	if (req->stdin_mode == SB_SANDBOX_STDIN_PIPE && !req->tty && pipe2(in, O_CLOEXEC) < 0) {
		err = sb_err_sys(errno, "stdin pipe for lease %s", sb->id);
		goto out;
	}
	/* init's wake-ups for this exec: one byte per spooled chunk and one after the exit */
	if (pipe2(wake, O_CLOEXEC) < 0 || (err = sb_fd_set_nonblock(wake[0], true))) {
		err = err ? err : sb_err_sys(errno, "wake pipe for lease %s", sb->id);
		goto out;
	}
	int fds[3], nfds = 0;
	if (in[0] >= 0)
		fds[nfds++] = in[0];
	if (in[0] >= 0 && req->input_reattach)
		fds[nfds++] = in[1]; /* init keeps a copy of the write end (init/input.c) */
	fds[nfds++] = wake[1];
	if ((err = sb_ctl_call_fd(sb, &m, fds, nfds, &reply, &conn, &rd, &master)))
		goto out;
	sb_close(&in[0]);
	sb_close(&wake[1]);
	if (sbi_msg_get(&reply, "stage")) {
		const char *msg = sbi_msg_get(&reply, "msg");
		err = sb_err_new(SB_E_SPAWN, "failed to start \"%s\" in \"%s\": %s", req->argv[0],
		                 cwd, msg ? msg : "unknown reason");
		/* The caller tells "not found" (ENOENT from exec) from "cannot start" by it. */
		long long e = 0;
		const char *stage = sbi_msg_get(&reply, "stage");
		if (!strcmp(stage, "exec") && sbi_msg_geti(&reply, "errno", 1, 4095, &e) == 0)
			err->sys_errno = (int)e;
		goto out;
	}
	if ((err = sb_ctl_reply_err(sb, &reply, "starting a command")))
		goto out;
	if (req->tty && master < 0) {
		/* it runs, but nobody could type into it: stop it rather than hang */
		sbi_msg kill_m;
		sbi_msg_init(&kill_m);
		sbi_msg_add(&kill_m, "op", "signal");
		sbi_msg_add(&kill_m, "id", id);
		sbi_msg_addi(&kill_m, "sig", SIGKILL);
		sbi_msg_clear(&reply);
		sb_err_free(sb_ctl_call(sb, &kill_m, NULL, 0, &reply));
		sbi_msg_deinit(&kill_m);
		err = sb_err_new(SB_E_PROTOCOL,
		                 "exec %s in lease %s: sandbar-init sent no terminal for it", id,
		                 sb->id);
		goto out;
	}
	*out = new_handle(sb, id);
	(*out)->stdin_w = req->tty ? master : in[1];
	if (req->tty)
		master = -1;
	else
		in[1] = -1;
	if ((err = sb_fd_set_nonblock(conn, true)))
		goto out;
	(*out)->conn = conn;
	conn = -1;
	(*out)->wake = wake[0];
	wake[0] = -1;
	sbi_reader_deinit(&(*out)->rd);
	(*out)->rd = rd;
	sbi_reader_init(&rd);
	long long v = 0;
	if (sbi_msg_geti(&reply, "pid", 1, INT32_MAX, &v) == 0)
		(*out)->pid = (int)v;
	if (sbi_msg_geti(&reply, "started_at_ms", 0, INT64_MAX, &v) == 0)
		(*out)->started_ms = v;
out:
	if (err && *out) {
		sb_sandbox_exec_free(*out);
		*out = NULL;
	}
	sb_close(&conn);
	sb_close(&master);
	sbi_reader_deinit(&rd);
	sb_close(&wake[0]);
	sb_close(&wake[1]);
	sb_close(&in[0]);
	sb_close(&in[1]);
	sbi_msg_deinit(&m);
	sbi_msg_deinit(&reply);
	free(gen);
	return err;
}

static void status_from_msg(const sbi_msg *m, const char *id, sb_sandbox_exec_status *f);

/* Ask init to treat this handle like the one that started the exec: wake-ups on a pipe and
 * the exit message on a connection, instead of an inotify watch per follower. Best effort:
 * without it (init no longer tracks the exec, or the sandbox is dead) the handle falls back
 * to the spool's files. */
static void watch_exec(sb_sandbox_exec *x)
{
	int wake[2] = {-1, -1}, conn = -1;
	sbi_msg m, reply;
	sbi_msg_init(&m);
	sbi_msg_init(&reply);
	sbi_reader rd;
	sbi_reader_init(&rd);
	sb_err *err = NULL;
	if (pipe2(wake, O_CLOEXEC) < 0 || (err = sb_fd_set_nonblock(wake[0], true)))
		goto out;
	sbi_msg_add(&m, "op", "watch");
	sbi_msg_add(&m, "id", x->id);
	if ((err = sb_ctl_call_keep(x->sb, &m, &wake[1], 1, &reply, &conn, &rd)))
		goto out;
	const char *ok = sbi_msg_get(&reply, "ok");
	if (!ok || strcmp(ok, "1") != 0)
		goto out;
	sb_sandbox_exec_status st;
	status_from_msg(&reply, x->id, &st);
	long long watching = 0;
	sbi_msg_geti(&reply, "watching", 0, 1, &watching);
	if (!st.running) {
		x->final_st = st;
		x->final = true;
		goto out;
	}
	if (!watching || (err = sb_fd_set_nonblock(conn, true)))
		goto out;
	x->pid = st.pid;
	x->started_ms = st.started_at_ms;
	x->conn = conn;
	x->wake = wake[0];
	conn = wake[0] = -1;
	sbi_reader_deinit(&x->rd);
	x->rd = rd;
	sbi_reader_init(&rd);
out:
	sb_err_free(err);
	sb_close(&conn);
	sb_close(&wake[0]);
	sb_close(&wake[1]);
	sbi_reader_deinit(&rd);
	sbi_msg_deinit(&m);
	sbi_msg_deinit(&reply);
}

sb_err *sb_exec_ask_status(sb_sandbox *sb, const char *exec_id, sbi_msg *reply)
{
	sbi_msg m;
	sbi_msg_init(&m);
	sbi_msg_add(&m, "op", "status");
	sbi_msg_add(&m, "id", exec_id);
	sb_err *err = sb_ctl_call(sb, &m, NULL, 0, reply);
	sbi_msg_deinit(&m);
	return err;
}

static bool init_tracks(sb_sandbox *sb, const char *exec_id)
{
	int saved = errno;
	sbi_msg reply;
	sbi_msg_init(&reply);
	sb_err *err = sb_exec_ask_status(sb, exec_id, &reply);
	const char *ok = err ? NULL : sbi_msg_get(&reply, "ok");
	bool tracked = ok && strcmp(ok, "1") == 0;
	sb_err_free(err);
	sbi_msg_deinit(&reply);
	errno = saved;
	return tracked;
}

static sb_err *attach_plain(sb_sandbox *sb, const char *exec_id, sb_sandbox_exec **out)
{
	*out = NULL;
	sb_err *err = sb_lease_check_id("exec", exec_id);
	if (err)
		return err;
	sb_sandbox_exec *x = new_handle(sb, exec_id);
	x->dirfd = openat(sb->spool_fd, exec_id, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (x->dirfd < 0 && errno == ENOENT && !sb->dead) {
		/* init makes the directory on first need (output, a record): an exec it tracks
		 * may have none yet. Once init answered, any directory it was making exists. */
		if (init_tracks(sb, exec_id)) {
			*out = x;
			return NULL;
		}
		x->dirfd = openat(sb->spool_fd, exec_id, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (x->dirfd < 0) {
		err = errno == ENOENT
		          ? sb_err_new(SB_E_NOTFOUND, "no exec %s in lease %s", exec_id, sb->id)
		          : sb_err_sys(errno, "opening exec %s of lease %s", exec_id, sb->id);
		goto fail;
	}
	*out = x;
	return NULL;
fail:
	sb_sandbox_exec_free(x);
	return err;
}

sb_err *sb_sandbox_exec_attach(sb_sandbox *sb, const char *exec_id, sb_sandbox_exec **out)
{
	sb_err *err = attach_plain(sb, exec_id, out);
	if (!err && !sb->dead)
		watch_exec(*out);
	return err;
}

const char *sb_sandbox_exec_id(const sb_sandbox_exec *x)
{
	return x->id;
}

int sb_sandbox_exec_stdin_fd(const sb_sandbox_exec *x)
{
	return x->stdin_w;
}

int sb_sandbox_exec_take_stdin(sb_sandbox_exec *x)
{
	int fd = x->stdin_w;
	x->stdin_w = -1;
	return fd;
}

void sb_sandbox_exec_close_stdin(sb_sandbox_exec *x)
{
	sb_close(&x->stdin_w);
}

sb_err *sb_sandbox_exec_read(sb_sandbox_exec *x, sb_stream stream, uint64_t offset, void *buf,
                             size_t max, size_t *got)
{
	*got = 0;
	if (stream != SB_STREAM_STDOUT && stream != SB_STREAM_STDERR)
		return sb_err_new(SB_E_INVAL, "unknown stream %d", (int)stream);
	if (offset > (uint64_t)INT64_MAX)
		return sb_err_new(SB_E_INVAL, "offset %llu out of range",
		                  (unsigned long long)offset);
	int s = stream == SB_STREAM_STDOUT ? 0 : 1;
	if (x->out[s] < 0) {
		/* init creates the file with the first byte */
		if (!ensure_dir(x))
			return NULL; /* not even the directory yet: nothing written */
		x->out[s] = openat(x->dirfd, stream_names[s], O_RDONLY | O_CLOEXEC);
		if (x->out[s] < 0 && errno == ENOENT)
			return NULL;
		if (x->out[s] < 0)
			return sb_err_sys(errno, "opening the %s of exec %s in lease %s",
			                  stream_names[s], x->id, x->sb->id);
	}
	int fd = x->out[s];
	for (;;) {
		ssize_t n = pread(fd, buf, max, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sb_err_sys(errno, "reading output of exec %s in lease %s", x->id,
			                  x->sb->id);
		*got = (size_t)n;
		return NULL;
	}
}

static sb_err *parse_status(sb_sandbox_exec *x, const char *text, size_t len,
                            sb_sandbox_exec_status *st)
{
	json_t *j = NULL;
	sb_err *err = sb_json_parse_object(text, len, STATUS_MAX, 4, &j);
	int64_t pid = 0, sig = 0, code = 0;
	const json_t *codej = j ? json_object_get(j, "exit_code") : NULL;
	if (!err &&
	    ((err = sb_json_get_bool(j, "running", true, &st->running)) ||
	     (err = sb_json_get_int(j, "pid", false, 0, INT32_MAX, &pid)) ||
	     (err = sb_json_get_int(j, "started_at_ms", false, 0, INT64_MAX, &st->started_at_ms)) ||
	     (err =
	          sb_json_get_int(j, "finished_at_ms", false, 0, INT64_MAX, &st->finished_at_ms)) ||
	     (err = sb_json_get_int(j, "signal", false, 0, 128, &sig)) ||
	     (err = sb_json_get_bool(j, "timed_out", false, &st->timed_out)) ||
	     (err = sb_json_get_bool(j, "oom_killed", false, &st->oom_killed)) ||
	     (err = sb_json_get_bool(j, "stdout_truncated", false, &st->stdout_truncated)) ||
	     (err = sb_json_get_bool(j, "stderr_truncated", false, &st->stderr_truncated)) ||
	     (json_is_integer(codej) &&
	      (err = sb_json_get_int(j, "exit_code", false, 0, 255, &code)))))
		err = sb_err_prefix(err, "status of exec %s in lease %s", x->id, x->sb->id);
	st->pid = (int)pid;
	st->signal = (int)sig;
	st->has_exit_code = json_is_integer(codej);
	st->exit_code = (int)code;
	json_decref(j);
	return err;
}

static bool init_alive(const sb_sandbox *sb)
{
	return sb->info.init_pid > 0 && sb_proc_start_time(sb->info.init_pid) == sb->init_start;
}

static void fill_sizes(sb_sandbox_exec *x, sb_sandbox_exec_status *st)
{
	struct stat fs;
	for (int s = 0; s < 2; s++) {
		if (x->out[s] < 0 && ensure_dir(x))
			x->out[s] = openat(x->dirfd, stream_names[s], O_RDONLY | O_CLOEXEC);
		if (x->out[s] >= 0 && fstat(x->out[s], &fs) == 0)
			*(s == 0 ? &st->stdout_size : &st->stderr_size) = (uint64_t)fs.st_size;
	}
}

/* A dead sandbox never finishes its execs: say so instead of letting readers wait. Checked
 * at most every ALIVE_CHECK_MS (a /proc read). */
sb_err *sb_exec_check_alive(sb_sandbox_exec *x)
{
	if (!x->sb->dead && sb_mono_ms() - x->alive_checked_ms < ALIVE_CHECK_MS)
		return NULL;
	x->alive_checked_ms = sb_mono_ms();
	if (!x->sb->dead && init_alive(x->sb))
		return NULL;
	return sb_err_new(SB_E_STATE_LOST,
	                  "exec %s in lease %s will never finish: the sandbox is gone", x->id,
	                  x->sb->id);
}

/* An exec's state as sbi_exec_describe puts it in a message. */
static void status_from_msg(const sbi_msg *m, const char *id, sb_sandbox_exec_status *f)
{
	long long v = 0;
	memset(f, 0, sizeof *f);
	snprintf(f->exec_id, sizeof f->exec_id, "%s", id);
	f->running = sbi_msg_geti(m, "running", 0, 1, &v) == 0 && v;
	f->has_exit_code = sbi_msg_geti(m, "exit_code", 0, 255, &v) == 0;
	f->exit_code = (int)(f->has_exit_code ? v : 0);
	f->signal = sbi_msg_geti(m, "signal", 0, 128, &v) == 0 ? (int)v : 0;
	f->timed_out = sbi_msg_geti(m, "timed_out", 0, 1, &v) == 0 && v;
	f->oom_killed = sbi_msg_geti(m, "oom_killed", 0, 1, &v) == 0 && v;
	f->stdout_truncated = sbi_msg_geti(m, "stdout_truncated", 0, 1, &v) == 0 && v;
	f->stderr_truncated = sbi_msg_geti(m, "stderr_truncated", 0, 1, &v) == 0 && v;
	f->pid = sbi_msg_geti(m, "pid", 0, INT32_MAX, &v) == 0 ? (int)v : 0;
	if (sbi_msg_geti(m, "started_at_ms", 0, INT64_MAX, &v) == 0)
		f->started_at_ms = v;
	if (sbi_msg_geti(m, "finished_at_ms", 0, INT64_MAX, &v) == 0)
		f->finished_at_ms = v;
}

/* Take init's exit message from the start connection if it has arrived (never blocks). */
static void poll_exit_message(sb_sandbox_exec *x)
{
	while (x->conn >= 0 && !x->final) {
		sbi_msg m;
		sbi_msg_init(&m);
		int got = sbi_reader_take(&x->rd, &m, NULL, NULL);
		if (got == 1) {
			const char *op = sbi_msg_get(&m, "op");
			if (op && strcmp(op, "exit") == 0) {
				status_from_msg(&m, x->id, &x->final_st);
				x->final = true;
			}
			sbi_msg_deinit(&m);
			continue;
		}
		sbi_msg_deinit(&m);
		long n = got < 0 ? 0 : sbi_reader_fill(&x->rd, x->conn);
		if (n > 0)
			continue;
		if (n == -EAGAIN || n == -EINTR)
			return;
		/* closed or broken: status.json remains the source of truth */
		sb_close(&x->conn);
	}
	if (x->final)
		sb_close(&x->conn);
}

sb_err *sb_sandbox_exec_status_of(sb_sandbox_exec *x, sb_sandbox_exec_status *st)
{
	memset(st, 0, sizeof *st);
	poll_exit_message(x);
	if (x->final) {
		*st = x->final_st;
		fill_sizes(x, st);
		return NULL;
	}
	snprintf(st->exec_id, sizeof st->exec_id, "%s", x->id);
	if (x->conn >= 0) {
		/* we started it and init will tell us when it ends: no need to read the record */
		st->running = true;
		st->pid = x->pid;
		st->started_at_ms = x->started_ms;
		fill_sizes(x, st);
		return sb_exec_check_alive(x);
	}
	char buf[STATUS_MAX];
	size_t len = 0;
	int fd = ensure_dir(x) ? openat(x->dirfd, "status.json", O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0 && errno != ENOENT)
		return sb_err_sys(errno, "status of exec %s in lease %s", x->id, x->sb->id);
	if (fd >= 0) {
		sb_err *err = sb_read_full(fd, buf, sizeof buf, &len);
		close(fd);
		if (err)
			return sb_err_prefix(err, "status of exec %s", x->id);
	}
	sb_err *err = NULL;
	if (len > 0)
		err = parse_status(x, buf, len, st);
	else {
		/* init writes the first record only if the command lives a few ms */
		st->running = true;
		st->pid = x->pid;
		st->started_at_ms = x->started_ms;
	}
	if (err)
		return err;
	fill_sizes(x, st);
	return st->running ? sb_exec_check_alive(x) : NULL;
}

/* The inotify watch is set up on first need: a command that is over before anyone waits
 * never pays for it. Returns true when it was just created (the caller must re-read, since
 * changes before the watch existed were not seen). */
void sb_sandbox_exec_free(sb_sandbox_exec *x)
{
	if (!x)
		return;
	sb_close(&x->dirfd);
	sb_close(&x->out[0]);
	sb_close(&x->out[1]);
	sb_close(&x->ino);
	sb_close(&x->stdin_w);
	sb_close(&x->conn);
	sb_close(&x->wake);
	sbi_reader_deinit(&x->rd);
	free(x);
}

sb_err *sb_sandbox_exec_status_by_id(sb_sandbox *sb, const char *exec_id,
                                     sb_sandbox_exec_status *st)
{
	sb_sandbox_exec *x = NULL;
	sb_err *err = attach_plain(sb, exec_id, &x);
	if (err)
		return err;
	/* init answers from memory for the execs it still tracks (exactly in step with its exit
	 * messages); the record on disk covers the rest and a dead sandbox */
	sbi_msg m, reply;
	sbi_msg_init(&m);
	sbi_msg_init(&reply);
	sbi_msg_add(&m, "op", "status");
	sbi_msg_add(&m, "id", exec_id);
	sb_err *cerr =
	    sb->dead ? sb_err_new(SB_E_STATE_LOST, "dead") : sb_ctl_call(sb, &m, NULL, 0, &reply);
	const char *ok = cerr ? NULL : sbi_msg_get(&reply, "ok");
	if (ok && strcmp(ok, "1") == 0) {
		status_from_msg(&reply, exec_id, st);
		fill_sizes(x, st);
	} else {
		err = sb_sandbox_exec_status_of(x, st);
	}
	sb_err_free(cerr);
	sbi_msg_deinit(&m);
	sbi_msg_deinit(&reply);
	sb_sandbox_exec_free(x);
	return err;
}

/* Is init still writing the exec's records (it would recreate a removed directory)? */
int sb_sandbox_exec_exit_status(const sb_sandbox_exec_status *st)
{
	sb_exit_how how = {.timed_out = st->timed_out,
	                   .has_exit_code = st->has_exit_code,
	                   .exit_code = st->exit_code,
	                   .signo = st->signal};
	return sb_exit_status(&how);
}
