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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The calling thread's file-system identity becomes the owner's, for fn only. Linux keeps
 * credentials per thread and the raw system calls (unlike glibc's setgroups wrapper) change
 * just this thread: other threads of a daemon keep working as root meanwhile. A non-zero fsuid
 * also drops the thread's file-system capabilities (DAC override, fowner, ...), so every
 * permission check inside fn is the sandbox user's. No fork: a forked child of a threaded
 * process may inherit locks held by other threads (glibc's locale lock, taken by libarchive)
 * and hang. */
sb_err *sb_sandbox_as_owner(const sb_sandbox *sb, sb_err *(*fn)(void *ud), void *ud)
{
	if (geteuid() != 0)
		return fn(ud);
	gid_t saved[256];
	int nsaved = getgroups((int)(sizeof saved / sizeof saved[0]), saved);
	if (nsaved < 0)
		return sb_err_sys(errno, "reading the supplementary groups");
	uid_t uid = (uid_t)sb->info.host_uid;
	gid_t gid = (gid_t)sb->info.host_gid;
	sb_err *err = NULL;
	if (syscall(SYS_setgroups, 0, NULL) < 0) {
		err = sb_err_sys(errno, "dropping supplementary groups for lease %s", sb->id);
		goto restore;
	}
	/* setfs[ug]id report the previous value, not errors: ask twice to confirm */
	syscall(SYS_setfsgid, gid);
	syscall(SYS_setfsuid, uid);
	if ((gid_t)syscall(SYS_setfsgid, gid) != gid || (uid_t)syscall(SYS_setfsuid, uid) != uid) {
		err = sb_err_new(SB_E_IO, "cannot switch to uid %lld / gid %lld for lease %s",
		                 (long long)uid, (long long)gid, sb->id);
		goto restore;
	}
	err = fn(ud);
restore:
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, getegid());
	if (syscall(SYS_setgroups, (size_t)nsaved, saved) < 0 ||
	    (uid_t)syscall(SYS_setfsuid, 0) != 0)
		sb_error("lease %s: could not restore this thread's credentials after a "
		         "workspace operation",
		         sb->id);
	return err;
}

int sb_sandbox_workspace_fd(const sb_sandbox *sb)
{
	return sb->workspace_fd;
}
