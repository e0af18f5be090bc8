/* Starting one local command: the environment it gets, the executable lookup, and posix_spawn
 * into a new process group with pipes for stdin, stdout and stderr.
 *
 * The working directory and the executable are checked here, before spawning, so that a command
 * that cannot start fails with a message naming the exact cause (and the PATH that was searched)
 * instead of a bare errno from the child.
 */
#include "runner_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* Variables that make a nested coding agent believe it runs inside another one (managed-runtime
 * spec §1.4): never passed on. */
static const char *const nesting_guards[] = {
    "CLAUDECODE",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SESSION",
    "CLAUDE_CODE_PARENT_SESSION",
};

static size_t key_len(const char *entry)
{
	const char *eq = strchr(entry, '=');
	return eq ? (size_t)(eq - entry) : strlen(entry);
}

static bool same_key(const char *a, const char *b)
{
	size_t n = key_len(a);
	return n == key_len(b) && memcmp(a, b, n) == 0;
}

static bool is_nesting_guard(const char *entry)
{
	size_t n = key_len(entry);
	for (size_t i = 0; i < sizeof(nesting_guards) / sizeof(nesting_guards[0]); i++)
		if (strlen(nesting_guards[i]) == n && memcmp(nesting_guards[i], entry, n) == 0)
			return true;
	return false;
}

static bool in_additions(char *const *add, const char *entry)
{
	for (char *const *a = add; a && *a; a++)
		if (same_key(*a, entry))
			return true;
	return false;
}

/* The child's environment as an array of borrowed pointers (environ's strings and the request's
 * additions stay alive for the call): the inherited environment minus the nesting guards and the
 * keys the request overrides (unless clear_env), then the additions (the last one of a key wins),
 * then a default PATH when there is none. Free only the array. */
static char **build_env(const sb_exec_request *req)
{
	size_t n_inherit = (!req->clear_env && environ) ? sb_strv_len(environ) : 0;
	size_t n_add = req->env ? sb_strv_len(req->env) : 0;
	char **v = sb_xcalloc(n_inherit + n_add + 2, sizeof(char *));
	size_t n = 0;
	bool has_path = false;
	for (size_t i = 0; i < n_inherit; i++) {
		char *e = environ[i];
		if (!strchr(e, '=') || is_nesting_guard(e) || in_additions(req->env, e))
			continue;
		has_path = has_path || sb_str_has_prefix(e, "PATH=");
		v[n++] = e;
	}
	for (size_t i = 0; i < n_add; i++) {
		if (in_additions(req->env + i + 1, req->env[i]))
			continue;
		has_path = has_path || sb_str_has_prefix(req->env[i], "PATH=");
		v[n++] = req->env[i];
	}
	if (!has_path)
		v[n++] = (char *)"PATH=" SB_RUNNER_DEFAULT_PATH;
	v[n] = NULL;
	return v;
}

static const char *env_value(char *const *env, const char *key)
{
	size_t n = strlen(key);
	for (; *env; env++)
		if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

/* path relative to cwd (NULL = this process's cwd) as this process can open it. */
static char *at_cwd(const char *cwd, const char *path)
{
	if (path[0] == '/' || !cwd)
		return sb_xstrdup(path);
	return sb_strfmt("%s/%s", cwd, path);
}

/* 0 when path is a regular file we may execute, else the errno execve would give. */
static int check_executable(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0)
		return EACCES;
	return 0;
}

/* Find cmd as execvp would with the child's PATH and cwd. Returns 0 and a malloc'd path for
 * posix_spawn, or the errno: ENOENT when no PATH entry has it, EACCES when one has it but it is
 * not executable. */
static int resolve_command(const char *cmd, const char *path_env, const char *cwd, char **out)
{
	if (strchr(cmd, '/')) {
		char *p = at_cwd(cwd, cmd);
		int e = check_executable(p);
		if (e == 0)
			*out = p;
		else
			free(p);
		return e;
	}
	int result = ENOENT;
	const char *seg = path_env;
	for (;;) {
		const char *end = strchrnul(seg, ':');
		/* An empty PATH entry means the current directory, as in execvp. */
		char *dir = end == seg ? sb_xstrdup(".") : sb_xstrndup(seg, (size_t)(end - seg));
		char *rel = sb_strfmt("%s/%s", dir, cmd);
		char *p = at_cwd(cwd, rel);
		free(dir);
		free(rel);
		int e = check_executable(p);
		if (e == 0) {
			*out = p;
			return 0;
		}
		free(p);
		if (e == EACCES || e == EISDIR)
			result = EACCES;
		if (!*end)
			break;
		seg = end + 1;
	}
	return result;
}

static char *display_cwd(const char *cwd)
{
	if (cwd)
		return sb_xstrdup(cwd);
	char *here = getcwd(NULL, 0);
	if (!here)
		return sb_xstrdup("(current directory unknown)");
	char *copy = sb_xstrdup(here);
	free(here);
	return copy;
}

static sb_err *spawn_error(const char *cmd, const char *cwd, const char *fmt, ...) SB_PRINTF(3, 4);

static sb_err *spawn_error(const char *cmd, const char *cwd, const char *fmt, ...)
{
	sb_buf why = SB_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_buf_vappendf(&why, fmt, ap);
	va_end(ap);
	char *where = display_cwd(cwd);
	sb_err *err = sb_err_new(SB_E_SPAWN, "failed to start \"%s\" in \"%s\": %s", cmd, where,
	                         sb_buf_cstr(&why));
	free(where);
	sb_buf_deinit(&why);
	return err;
}

static sb_err *check_cwd(const char *cmd, const char *cwd)
{
	struct stat st;
	if (stat(cwd, &st) != 0) {
		if (errno == ENOENT)
			return spawn_error(cmd, cwd, "the working directory does not exist");
		return spawn_error(cmd, cwd, "cannot use the working directory: %s",
		                   strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return spawn_error(cmd, cwd, "the working directory is not a directory");
	if (access(cwd, X_OK) != 0)
		return spawn_error(cmd, cwd, "cannot enter the working directory: %s",
		                   strerror(errno));
	return NULL;
}

/* Pipes with both ends O_CLOEXEC (so that commands spawned concurrently by other threads never
 * inherit them) and above fd 2 (so that the child's dup2 onto 0..2 cannot clobber another pipe
 * end when this process runs with a standard descriptor closed). */
static sb_err *make_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) != 0)
		return sb_err_sys(errno, "creating a pipe for a command");
	for (int i = 0; i < 2; i++) {
		if (fds[i] > 2)
			continue;
		int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (moved < 0) {
			int e = errno;
			sb_close(&fds[0]);
			sb_close(&fds[1]);
			return sb_err_sys(e, "moving a command pipe above fd 2");
		}
		close(fds[i]);
		fds[i] = moved;
	}
	return NULL;
}

static void close_pair(int fds[2])
{
	sb_close(&fds[0]);
	sb_close(&fds[1]);
}

/* Signals the child gets with their default action whatever this process does with them: a
 * daemon embedding sandbar may ignore SIGPIPE or SIGHUP, and ignored dispositions survive exec. */
static void child_default_signals(sigset_t *set)
{
	sigemptyset(set);
	static const int sigs[] = {SIGPIPE, SIGXFSZ, SIGHUP,  SIGINT,  SIGQUIT,
	                           SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(set, sigs[i]);
}

/* The child gets stdin, stdout and stderr and nothing else: our own descriptors are O_CLOEXEC,
 * but the embedding program (or whatever started it) may hold inheritable ones. */
static int close_inherited(posix_spawn_file_actions_t *fa)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	return posix_spawn_file_actions_addclosefrom_np(fa, STDERR_FILENO + 1);
#else
	(void)fa;
	return 0;
#endif
}

sb_err *sb_local_spawn(const sb_exec_request *req, const char *cwd, sb_local_child *child)
{
	const char *cmd = req->argv[0];
	child->pid = 0;
	child->in_fd = child->out_fd = child->err_fd = -1;

	if (cwd) {
		sb_err *err = check_cwd(cmd, cwd);
		if (err)
			return err;
	}
	char **envp = build_env(req);
	const char *path_env = env_value(envp, "PATH");
	char *exe = NULL;
	int lookup = resolve_command(cmd, path_env, cwd, &exe);
	if (lookup != 0) {
		sb_err *err;
		if (lookup == ENOENT && !strchr(cmd, '/'))
			err = spawn_error(cmd, cwd,
			                  "command not found in PATH (%s); verify the command, "
			                  "the working directory and PATH",
			                  path_env);
		else if (lookup == ENOENT)
			err = spawn_error(cmd, cwd, "no such file");
		else
			err = spawn_error(cmd, cwd, "%s", strerror(lookup));
		/* How the exit status tells "not found" (127) from "cannot start" (126). */
		err->sys_errno = lookup;
		free(envp);
		return err;
	}

	int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
	sb_err *err = NULL;
	if ((req->has_stdin && (err = make_pipe(in))) || (err = make_pipe(out)) ||
	    (err = make_pipe(errp)))
		goto out;

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int rc = posix_spawn_file_actions_init(&fa);
	if (rc != 0) {
		err = sb_err_sys(rc, "preparing to start \"%s\"", cmd);
		goto out;
	}
	rc = posix_spawnattr_init(&attr);
	if (rc != 0) {
		posix_spawn_file_actions_destroy(&fa);
		err = sb_err_sys(rc, "preparing to start \"%s\"", cmd);
		goto out;
	}
	sigset_t empty, defaults;
	sigemptyset(&empty);
	child_default_signals(&defaults);
	/* The child leads a new process group (so timeouts signal everything it starts), with an
	 * empty signal mask: this thread blocks SIGPIPE while it runs commands. */
	if ((rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	                                              POSIX_SPAWN_SETSIGDEF)) ||
	    (rc = posix_spawnattr_setpgroup(&attr, 0)) ||
	    (rc = posix_spawnattr_setsigmask(&attr, &empty)) ||
	    (rc = posix_spawnattr_setsigdefault(&attr, &defaults)) ||
	    (rc = req->has_stdin ? posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO)
	                         : posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
	                                                            O_RDONLY, 0)) ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO)) ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, errp[1], STDERR_FILENO)) ||
	    (cwd && (rc = posix_spawn_file_actions_addchdir_np(&fa, cwd))) ||
	    (rc = close_inherited(&fa))) {
		err = sb_err_sys(rc, "preparing to start \"%s\"", cmd);
	} else {
		pid_t pid = 0;
		rc = posix_spawn(&pid, exe, &fa, &attr, req->argv, envp);
		if (rc != 0) {
			err = spawn_error(cmd, cwd, "%s", strerror(rc));
			err->sys_errno = rc;
		} else
			child->pid = pid;
	}
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (err)
		goto out;

	/* Our ends never block: one poll loop serves stdin and both output pipes. */
	if ((in[1] >= 0 && (err = sb_fd_set_nonblock(in[1], true))) ||
	    (err = sb_fd_set_nonblock(out[0], true)) || (err = sb_fd_set_nonblock(errp[0], true)))
		goto out; /* the caller kills and reaps child->pid */
	child->in_fd = in[1];
	child->out_fd = out[0];
	child->err_fd = errp[0];
	in[1] = out[0] = errp[0] = -1;
out:
	close_pair(in);
	close_pair(out);
	close_pair(errp);
	free(exe);
	free(envp);
	return err;
}
