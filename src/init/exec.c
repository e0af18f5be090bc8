/* sandbar-init: starting commands and recording their exit (spooling their output: spool.c).
 *
 * Each command gets its own session (so its process group is its pid), pipes for stdout and
 * stderr that init copies into the spool files (so sandboxed code never holds a spool fd), the
 * request's stdin, cwd and env, and rlimits; no_new_privs and the seccomp filter come from init
 * itself. The starting connection hears of the exit first (message + wake-up byte); the status
 * record (status.json, replaced atomically) follows in the same loop turn, and a "running"
 * record is written only for commands that outlive a few milliseconds.
 */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/seccomp.h>

enum { STAGE_CHDIR = 1, STAGE_EXEC, STAGE_SETUP };

static void reply_err(sbi_msg *reply, int err, const char *msg)
{
	sbi_msg_clear(reply);
	sbi_msg_add(reply, "ok", "0");
	sbi_msg_addi(reply, "errno", err);
	sbi_msg_add(reply, "msg", msg);
}

static long long read_oom_kills(const sbi_state *st)
{
	if (st->oom_fd < 0)
		return 0;
	char buf[4096];
	ssize_t n = pread(st->oom_fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, "oom_kill ", 9) == 0)
			return strtoll(p + 9, NULL, 10);
	return 0;
}

/* The outcome of an exec as both records carry it. */
typedef struct outcome {
	bool running;
	bool has_code;
	int code, sig;
	bool oom;
} outcome;

static outcome outcome_of(bool running, int wstatus, bool oom)
{
	outcome o = {.running = running, .oom = oom};
	if (!running && WIFEXITED(wstatus)) {
		o.has_code = true;
		o.code = WEXITSTATUS(wstatus);
	} else if (!running && WIFSIGNALED(wstatus)) {
		o.sig = WTERMSIG(wstatus);
	}
	return o;
}

/* The exec's spool directory, made on first need. false when it cannot be (logged once; the
 * exec's output is then dropped and its records skipped). */
bool sbi_exec_ensure_dir(const sbi_state *st, sbi_exec *x)
{
	if (x->dirfd >= 0)
		return true;
	if (x->dir_failed)
		return false;
	if ((mkdirat(st->spool_fd, x->id, 0700) < 0 && errno != EEXIST) ||
	    (x->dirfd = openat(st->spool_fd, x->id, O_DIRECTORY | O_PATH | O_CLOEXEC)) < 0) {
		sbi_log("exec %s: creating its spool directory: %s (its output is dropped)", x->id,
		        strerror(errno));
		x->dir_failed = true;
		return false;
	}
	return true;
}

/* status.json, replaced atomically (temp file + rename), by the writer thread. */
static void write_status(const sbi_state *st, sbi_exec *x, outcome o)
{
	char code[16] = "null";
	if (o.has_code)
		snprintf(code, sizeof code, "%d", o.code);
	char buf[512];
	int n = snprintf(buf, sizeof buf,
	                 "{\"id\":\"%s\",\"pid\":%d,\"running\":%s,\"started_at_ms\":%lld,"
	                 "\"finished_at_ms\":%lld,\"exit_code\":%s,\"signal\":%d,"
	                 "\"timed_out\":%s,\"oom_killed\":%s,\"stdout_truncated\":%s,"
	                 "\"stderr_truncated\":%s}\n",
	                 x->id, (int)x->pid, o.running ? "true" : "false", (long long)x->started_ms,
	                 (long long)x->finished_ms, code, o.sig, x->timed_out ? "true" : "false",
	                 o.oom ? "true" : "false", x->truncated[0] ? "true" : "false",
	                 x->truncated[1] ? "true" : "false");
	if (n > 0 && (size_t)n < sizeof buf)
		sbi_records_put(st, x, buf, (size_t)n);
}

void sbi_exec_describe(const sbi_exec *x, sbi_msg *m)
{
	outcome o = outcome_of(!x->exited, x->wstatus, x->oom);
	sbi_msg_add(m, "id", x->id);
	sbi_msg_addi(m, "running", o.running);
	sbi_msg_addi(m, "pid", x->pid);
	if (o.has_code)
		sbi_msg_addi(m, "exit_code", o.code);
	sbi_msg_addi(m, "signal", o.sig);
	sbi_msg_addi(m, "timed_out", x->timed_out);
	sbi_msg_addi(m, "oom_killed", o.oom);
	sbi_msg_addi(m, "stdout_truncated", x->truncated[0]);
	sbi_msg_addi(m, "stderr_truncated", x->truncated[1]);
	sbi_msg_addi(m, "recording", x->pending_records > 0);
	sbi_msg_addi(m, "started_at_ms", x->started_ms);
	sbi_msg_addi(m, "finished_at_ms", x->finished_ms);
}

bool sbi_exec_watch(sbi_exec *x, int notify_fd, int wake_fd)
{
	if (x->exited) {
		if (notify_fd >= 0)
			close(notify_fd);
		if (wake_fd >= 0)
			close(wake_fd);
		return false;
	}
	struct sbi_watcher *w = realloc(x->watchers, (x->nwatchers + 1) * sizeof *w);
	if (!w) {
		if (notify_fd >= 0)
			close(notify_fd);
		if (wake_fd >= 0)
			close(wake_fd);
		return true; /* still running; this reader falls back to the files */
	}
	x->watchers = w;
	if (wake_fd >= 0)
		fcntl(wake_fd, F_SETFL, O_NONBLOCK);
	x->watchers[x->nwatchers++] = (struct sbi_watcher){notify_fd, wake_fd};
	return true;
}

/* Non-blocking: a full pipe means that reader has wake-ups pending anyway; a reader that went
 * away makes the write fail (SIGPIPE is blocked). */
void sbi_exec_wake_watchers(sbi_exec *x)
{
	for (size_t i = 0; i < x->nwatchers; i++)
		if (x->watchers[i].wake_fd >= 0)
			(void)!write(x->watchers[i].wake_fd, "w", 1);
}

static void drop_watchers(sbi_exec *x)
{
	for (size_t i = 0; i < x->nwatchers; i++) {
		if (x->watchers[i].notify_fd >= 0)
			close(x->watchers[i].notify_fd);
		if (x->watchers[i].wake_fd >= 0)
			close(x->watchers[i].wake_fd);
	}
	free(x->watchers);
	x->watchers = NULL;
	x->nwatchers = 0;
}

/* Tell every reader that it ended: one message instead of re-reading status.json, then a
 * wake-up so that a reader polling its pipe looks. */
static void notify_exit(sbi_exec *x)
{
	sbi_msg m;
	sbi_msg_init(&m);
	sbi_msg_add(&m, "op", "exit");
	sbi_exec_describe(x, &m);
	for (size_t i = 0; i < x->nwatchers; i++)
		if (x->watchers[i].notify_fd >= 0)
			(void)sbi_send(x->watchers[i].notify_fd, &m, NULL, 0);
	sbi_msg_deinit(&m);
	sbi_exec_wake_watchers(x);
	drop_watchers(x);
}

static const int limit_res[3] = {RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_CORE};

/* Each limit as asked, but never above our own hard limit (raising it needs a privilege). */
int sbi_exec_setup(sbi_state *st)
{
	unsigned long long want[3] = {st->nofile, st->nproc, 0};
	for (int i = 0; i < 3; i++) {
		struct rlimit rl;
		if (getrlimit(limit_res[i], &rl) < 0)
			return -1;
		rlim_t v = (rlim_t)want[i];
		if (rl.rlim_max != RLIM_INFINITY && v > rl.rlim_max)
			v = rl.rlim_max;
		st->limits[i].rlim_cur = st->limits[i].rlim_max = v;
	}
	st->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return st->devnull < 0 ? -1 : 0;
}

/* What the vfork-style child needs; it shares our memory, so it reports failures here. */
typedef struct spawn_args {
	const sbi_state *st;
	char **argv, **env;
	const char *cwd;
	int in, out, err;
	bool tty;         /* in = out = err = a terminal's slave, to become the controlling one */
	int stage, error; /* written by the child before it exits */
} spawn_args;

/* execvpe with the command's own PATH (not init's): the child shares init's memory, so it
 * must not touch environ. Like execvp, a later EACCES is reported over ENOENT. */
static void exec_path(spawn_args *a)
{
	const char *file = a->argv[0];
	if (strchr(file, '/')) {
		execve(file, a->argv, a->env);
		return;
	}
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	for (size_t i = 0; a->env[i]; i++)
		if (strncmp(a->env[i], "PATH=", 5) == 0)
			path = a->env[i] + 5;
	size_t flen = strlen(file);
	int saved = ENOENT;
	char buf[PATH_MAX];
	for (const char *p = path;; p++) {
		const char *colon = strchr(p, ':');
		size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
		if (dlen + 1 + flen + 1 <= sizeof buf) {
			memcpy(buf, p, dlen);
			size_t off = dlen;
			if (dlen == 0)
				buf[off++] = '.';
			buf[off++] = '/';
			memcpy(buf + off, file, flen + 1);
			execve(buf, a->argv, a->env);
			if (errno == EACCES)
				saved = EACCES;
			else if (errno != ENOENT && errno != ENOTDIR)
				saved = errno;
		}
		if (!colon)
			break;
		p = colon;
	}
	errno = saved;
}

/* Half the cgroup's memory added to a command's OOM badness: any command outranks init. */
#define COMMAND_OOM_SCORE_ADJ "500"

static void oom_adj_set(const sbi_state *st, const char *v)
{
	/* best effort: a failure only loses the preference */
	if (st->oom_adj_fd >= 0 && pwrite(st->oom_adj_fd, v, strlen(v), 0) < 0)
		sbi_log("setting oom_score_adj to %s: %s", v, strerror(errno));
}

/* Runs in the child (CLONE_VM | CLONE_VFORK, own stack): only system calls from here. */
static int child(void *arg)
{
	spawn_args *a = arg;
	const sbi_state *st = a->st;
	a->stage = STAGE_SETUP;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setsid() < 0 || (a->tty && ioctl(a->in, TIOCSCTTY, 0) < 0) || dup2(a->in, 0) < 0 ||
	    dup2(a->out, 1) < 0 || dup2(a->err, 2) < 0)
		goto fail;
	a->stage = STAGE_CHDIR;
	if (chdir(a->cwd) < 0)
		goto fail;
	a->stage = STAGE_SETUP;
	for (int i = 0; i < 3; i++)
		if (setrlimit(limit_res[i], &st->limits[i]) < 0)
			goto fail;
	/* no_new_privs and the seccomp filter are inherited from init, which installed them on
	 * itself at start: compiling the filter once instead of per command */
	a->stage = STAGE_EXEC;
	exec_path(a);
fail:
	a->error = errno;
	_exit(127);
}

#define CHILD_STACK (64u * 1024u)
#define RUNNING_STATUS_DELAY_MS 5
#define STDOUT_PIPE_BYTES (256 * 1024)

static char **collect(const sbi_msg *m, const char *key)
{
	size_t n = sbi_msg_count(m, key), i = 0, pos = 0;
	char **v = calloc(n + 1, sizeof *v);
	if (!v)
		return NULL;
	const char *k, *val;
	while (sbi_msg_next(m, &pos, &k, &val))
		if (strcmp(k, key) == 0)
			v[i++] = (char *)val;
	return v;
}

static void exec_free(sbi_exec *x)
{
	if (x->input >= 0)
		close(x->input);
	for (int s = 0; s < 2; s++) {
		if (x->pipe[s] >= 0)
			close(x->pipe[s]);
		if (x->file[s] >= 0)
			close(x->file[s]);
	}
	if (x->dirfd >= 0)
		close(x->dirfd);
	drop_watchers(x);
	free(x);
}

void sbi_exec_start(sbi_state *st, const sbi_msg *req, int stdin_fd, int held_fd, int notify_fd,
                    int wake_fd, sbi_msg *reply, int *reply_fd)
{
	*reply_fd = -1;
	const char *tty_req = sbi_msg_get(req, "tty");
	bool tty = tty_req && strcmp(tty_req, "1") == 0;
	int master = -1, slave = -1;
	const char *id = sbi_msg_get(req, "id"), *cwd = sbi_msg_get(req, "cwd");
	long long timeout_ms = 0, grace_ms = 1000;
	char **argv = NULL, **env = NULL;
	sbi_exec *x = NULL;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1};
	if (!id || !sbi_id_valid(id) || !cwd || sbi_msg_count(req, "arg") == 0) {
		reply_err(reply, EINVAL, "exec request needs a valid id, cwd and argv");
		goto out;
	}
	sbi_msg_geti(req, "timeout_ms", 0, INT64_MAX / 2, &timeout_ms);
	sbi_msg_geti(req, "grace_ms", 0, INT64_MAX / 2, &grace_ms);
	if (sbi_exec_find(st, id)) {
		reply_err(reply, EEXIST, "an exec with this id is still running");
		goto out;
	}
	argv = collect(req, "arg");
	env = collect(req, "env");
	x = calloc(1, sizeof *x);
	if (!argv || !env || !x) {
		reply_err(reply, ENOMEM, "out of memory");
		goto out;
	}
	snprintf(x->id, sizeof x->id, "%s", id);
	x->dirfd = x->pipe[0] = x->pipe[1] = x->file[0] = x->file[1] = -1;
	x->input = held_fd;
	held_fd = -1;
	if (notify_fd >= 0 || wake_fd >= 0)
		sbi_exec_watch(x, notify_fd, wake_fd);
	notify_fd = wake_fd = -1;
	/* The spool directory is made on first need (output, a status record), never on the
	 * path the host waits on: a directory operation can take milliseconds on a busy disk.
	 * Only the id's novelty is checked now. stdout and stderr files
	 * appear with the first byte: readers treat a missing file as empty. */
	struct stat sst;
	if (fstatat(st->spool_fd, id, &sst, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) {
		reply_err(reply, EEXIST, "exec id already used");
		goto out;
	}
	int in = stdin_fd >= 0 ? stdin_fd : st->devnull;
	if (tty) {
		/* one terminal for all three; its output is the exec's stdout, stderr stays empty
		 */
		char why[160];
		if (sbi_tty_open(req, &master, &slave, why, sizeof why) < 0) {
			reply_err(reply, errno, why);
			goto out;
		}
		in = slave;
	} else if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		reply_err(reply, errno, "creating pipes");
		goto out;
	}
	/* A bigger stdout pipe moves bulk output with a quarter of the wake-ups between the
	 * command and our splice (a 100 MiB output spools in about half the time). Best effort:
	 * the kernel refuses past the user's pipe-buffer allowance, and 64 KiB still works. */
	if (!tty)
		(void)fcntl(outp[0], F_SETPIPE_SZ, STDOUT_PIPE_BYTES);
	x->oom_before = read_oom_kills(st);
	x->started_ms = sbi_wall_ms();
	spawn_args a = {st,  argv, env, cwd, in, tty ? slave : outp[1], tty ? slave : errp[1],
	                tty, 0,    0};
	/* vfork semantics (like posix_spawn): no page-table copy, and we resume only once the
	 * child has exec'd or failed, with the failure in a.stage / a.error */
	static char *stack;
	if (!stack && !(stack = malloc(CHILD_STACK))) {
		reply_err(reply, ENOMEM, "out of memory");
		goto out;
	}
	/* When the lease's memory runs out, the kernel kills the largest process of its cgroup:
	 * make that a command, never us (the lease would go with us). The child inherits the
	 * raised score; going back down to 0 needs no privilege either. The child cannot raise
	 * its own: a non-dumpable process's /proc/self is root's until it execs. */
	oom_adj_set(st, COMMAND_OOM_SCORE_ADJ);
	pid_t pid = clone(child, stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	oom_adj_set(st, "0");
	if (pid < 0) {
		reply_err(reply, errno, "clone");
		goto out;
	}
	if (outp[1] >= 0)
		close(outp[1]);
	if (errp[1] >= 0)
		close(errp[1]);
	outp[1] = errp[1] = -1;
	if (slave >= 0)
		close(slave); /* only the command holds it now: its exit ends the output (EIO) */
	slave = -1;
	if (a.error) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		char msg[256];
		const char *what = a.stage == STAGE_CHDIR  ? "cannot change to the directory"
		                   : a.stage == STAGE_EXEC ? "cannot execute the program"
		                                           : "cannot set up the process";
		snprintf(msg, sizeof msg, "%s: %s", what, strerror(a.error));
		reply_err(reply, a.error, msg);
		sbi_msg_add(reply, "stage", a.stage == STAGE_CHDIR ? "chdir" : "exec");
		goto out;
	}
	x->pid = pid;
	if (tty) {
		*reply_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
		if (*reply_fd < 0)
			sbi_log("exec %s: duplicating its terminal for the host: %s", x->id,
			        strerror(errno));
		x->pipe[0] = master;
		x->tty = true;
		master = -1;
	} else {
		x->pipe[0] = outp[0];
		x->pipe[1] = errp[0];
		outp[0] = errp[0] = -1;
	}
	for (int s = 0; s < 2; s++)
		if (x->pipe[s] >= 0)
			fcntl(x->pipe[s], F_SETFL, O_NONBLOCK);
	x->grace_ms = grace_ms;
	if (timeout_ms > 0)
		x->deadline_ms = sbi_mono_ms() + timeout_ms;
	/* The "running" record is written only if the command outlives a few milliseconds: a
	 * short command gets just its final record, and readers treat a missing record as
	 * running. */
	x->status_due_ms = sbi_mono_ms() + RUNNING_STATUS_DELAY_MS;
	x->next = st->execs;
	st->execs = x;
	x = NULL;
	sbi_msg_clear(reply);
	sbi_msg_add(reply, "ok", "1");
	sbi_msg_addi(reply, "pid", pid);
	sbi_msg_addi(reply, "started_at_ms", st->execs->started_ms);
	goto out;
out:
	if (x)
		exec_free(x);
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (stdin_fd >= 0)
		close(stdin_fd);
	if (held_fd >= 0)
		close(held_fd);
	if (master >= 0)
		close(master);
	if (slave >= 0)
		close(slave);
	if (notify_fd >= 0)
		close(notify_fd);
	if (wake_fd >= 0)
		close(wake_fd);
	free(argv);
	free(env);
}

sbi_exec *sbi_exec_find(sbi_state *st, const char *id)
{
	for (sbi_exec *x = st->execs; x; x = x->next)
		if (strcmp(x->id, id) == 0)
			return x;
	return NULL;
}

static void exec_finish(sbi_state *st, sbi_exec *x, int wstatus)
{
	/* the process is gone, so what it wrote is in the pipes: spool it before the status
	 * (exited first: this pump needs no wake-up of its own, the exit message follows) */
	x->exited = true;
	if (x->input >= 0) { /* nobody reads it any more */
		close(x->input);
		x->input = -1;
	}
	for (int s = 0; s < 2; s++)
		sbi_exec_pump(st, x, s);
	x->finished_ms = sbi_wall_ms();
	x->wstatus = wstatus;
	x->oom = WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL &&
	         read_oom_kills(st) > x->oom_before;
	/* The host hears first; the record follows in this same loop turn, before init reads
	 * any other request, so a status request (answered from this table) always agrees. */
	notify_exit(x);
	write_status(st, x, outcome_of(false, wstatus, x->oom));
}

void sbi_exec_reap(sbi_state *st)
{
	for (;;) {
		int ws;
		pid_t pid = waitpid(-1, &ws, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		for (sbi_exec *x = st->execs; x; x = x->next)
			if (x->pid == pid && !x->exited) {
				exec_finish(st, x, ws);
				break;
			}
	}
}

int sbi_exec_timeouts(sbi_state *st)
{
	int64_t now = sbi_mono_ms(), next = -1;
	for (sbi_exec *x = st->execs; x; x = x->next) {
		if (x->exited)
			continue;
		if (x->status_due_ms && now >= x->status_due_ms) {
			x->status_due_ms = 0;
			write_status(st, x, outcome_of(true, 0, false));
		}
		if (x->status_due_ms && (next < 0 || x->status_due_ms - now < next))
			next = x->status_due_ms - now;
		if (x->deadline_ms && now >= x->deadline_ms) {
			x->deadline_ms = 0;
			x->timed_out = true;
			kill(-x->pid, SIGTERM);
			x->kill_at_ms = now + (x->grace_ms > 0 ? x->grace_ms : 1000);
		}
		if (x->kill_at_ms && now >= x->kill_at_ms) {
			x->kill_at_ms = 0;
			kill(-x->pid, SIGKILL);
		}
		int64_t due = x->deadline_ms ? x->deadline_ms : x->kill_at_ms;
		if (due && (next < 0 || due - now < next))
			next = due - now;
	}
	return next < 0 ? -1 : (int)(next > INT_MAX ? INT_MAX : next);
}

void sbi_exec_gc(sbi_state *st)
{
	sbi_exec **pp = &st->execs;
	while (*pp) {
		sbi_exec *x = *pp;
		if (x->exited && x->pipe[0] < 0 && x->pipe[1] < 0 && x->pending_records == 0) {
			*pp = x->next;
			exec_free(x);
		} else {
			pp = &x->next;
		}
	}
}
