/* Host-side access to a lease's workspace: mapping in-sandbox paths to host paths, and running
 * file operations under the sandbox owner's credentials in a child process, so that sandboxed
 * code racing symlinks into the workspace can never make a privileged daemon read or write
 * anything the sandbox user could not reach anyway. */
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OWNER_MSG_MAX 4096

sb_err *sb_sandbox_map_path(const sb_sandbox *sb, const char *inside_path, char **rel_out)
{
	*rel_out = NULL;
	const char *m = sb->workspace_mount;
	size_t ml = strlen(m);
	if (!inside_path || strncmp(inside_path, m, ml) != 0 ||
	    (inside_path[ml] != '\0' && inside_path[ml] != '/'))
		return sb_err_new(SB_E_ESCAPE,
		                  "path \"%s\" is outside the workspace %s of lease %s",
		                  inside_path ? inside_path : "(null)", m, sb->id);
	const char *rest = inside_path + ml;
	while (*rest == '/')
		rest++;
	char *rel = sb_xstrdup(rest);
	size_t n = strlen(rel);
	while (n > 0 && rel[n - 1] == '/')
		rel[--n] = '\0';
	if (n > 0) {
		sb_err *err = sb_path_check_relative(rel);
		if (err) {
			/* "..", "." or empty segments: never a plain path inside the workspace */
			free(rel);
			err->code = SB_E_ESCAPE;
			return sb_err_prefix(err, "path \"%s\" in lease %s", inside_path, sb->id);
		}
	}
	*rel_out = rel;
	return NULL;
}

static void send_err(int fd, const sb_err *err)
{
	int hdr[2] = {(int)err->code, err->sys_errno};
	size_t len = strlen(err->msg);
	if (len > OWNER_MSG_MAX)
		len = OWNER_MSG_MAX;
	if (!sb_write_all(fd, hdr, sizeof hdr))
		sb_err_free(sb_write_all(fd, err->msg, len));
}

int sb_sandbox_workspace_fd(const sb_sandbox *sb)
{
	return sb->workspace_fd;
}

sb_err *sb_owner_start(const sb_sandbox *sb, sb_err *(*fn)(void *ud), void *ud, int close_in_child,
                       sb_owner_child *oc)
{
	int p[2];
	oc->pid = -1;
	oc->errfd = -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return sb_err_sys(errno, "pipe for a workspace operation in lease %s", sb->id);
	pid_t pid = fork();
	if (pid < 0) {
		sb_err *err =
		    sb_err_sys(errno, "fork for a workspace operation in lease %s", sb->id);
		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid == 0) {
		close(p[0]);
		if (close_in_child >= 0)
			close(close_in_child);
		signal(SIGPIPE, SIG_DFL);
		sb_err *err = NULL;
		if (geteuid() == 0 && (setgroups(0, NULL) < 0 ||
		                       setresgid((gid_t)sb->info.host_gid, (gid_t)sb->info.host_gid,
		                                 (gid_t)sb->info.host_gid) < 0 ||
		                       setresuid((uid_t)sb->info.host_uid, (uid_t)sb->info.host_uid,
		                                 (uid_t)sb->info.host_uid) < 0))
			err = sb_err_sys(errno, "switching to uid %lld",
			                 (long long)sb->info.host_uid);
		if (!err)
			err = fn(ud);
		if (err)
			send_err(p[1], err);
		_exit(err ? 1 : 0);
	}
	close(p[1]);
	oc->pid = pid;
	oc->errfd = p[0];
	return NULL;
}

sb_err *sb_owner_finish(const sb_sandbox *sb, sb_owner_child *oc)
{
	sb_buf b = SB_BUF_INIT;
	sb_err *rerr = sb_read_fd_all(oc->errfd, OWNER_MSG_MAX + 64, &b);
	sb_close(&oc->errfd);
	int ws = 0;
	while (waitpid(oc->pid, &ws, 0) < 0 && errno == EINTR)
		;
	oc->pid = -1;
	sb_err *err = NULL;
	if (rerr) {
		err = sb_err_prefix(rerr, "workspace operation in lease %s", sb->id);
	} else if (b.len >= 2 * sizeof(int)) {
		int hdr[2];
		memcpy(hdr, b.data, sizeof hdr);
		err = sb_err_new((sb_errcode)hdr[0], "%.*s", (int)(b.len - sizeof hdr),
		                 b.data + sizeof hdr);
		err->sys_errno = hdr[1];
	} else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		err = sb_err_new(SB_E_INTERNAL,
		                 "workspace operation in lease %s died (status 0x%x)", sb->id, ws);
	}
	sb_buf_deinit(&b);
	return err;
}

sb_err *sb_sandbox_as_owner(const sb_sandbox *sb, sb_err *(*fn)(void *ud), void *ud)
{
	sb_owner_child oc;
	sb_err *err = sb_owner_start(sb, fn, ud, -1, &oc);
	return err ? err : sb_owner_finish(sb, &oc);
}
