/* Host-side access to a lease's workspace: mapping in-sandbox paths to host paths, and running
 * file operations under the sandbox owner's credentials on a thread of their own, so that sandboxed
 * code racing symlinks into the workspace can never make a privileged daemon read or write
 * anything the sandbox user could not reach anyway. */
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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

int sb_sandbox_workspace_fd(const sb_sandbox *sb)
{
	return sb->workspace_fd;
}

struct owner_job {
	const sb_sandbox *sb;
	sb_err *(*fn)(void *ud);
	void *ud;
	int close_when_done;
	sb_err *err;
};

/* Runs on its own thread. Credentials are per thread in the kernel: the raw syscalls change only
 * this thread's (glibc's wrappers would change every thread of the process), and they die with
 * it. A thread rather than a fork, because a forked child of a multithreaded process may not
 * take locks (locale, stdio, libarchive's) that another thread held at the fork. */
static void *owner_thread(void *arg)
{
	struct owner_job *job = arg;
	const sb_sandbox *sb = job->sb;
	/* Its own cwd, root and umask: operations may fchdir into the workspace, and a shared
	 * cwd would move the whole process (every other thread's relative paths, another
	 * lease's transfer included) into a directory sandboxed code controls. */
	if (unshare(CLONE_FS) < 0)
		job->err = sb_err_sys(errno,
		                      "unsharing the file system attributes of a workspace "
		                      "operation in lease %s",
		                      sb->id);
	if (!job->err && geteuid() == 0) {
		gid_t gid = (gid_t)sb->info.host_gid;
		uid_t uid = (uid_t)sb->info.host_uid;
		if (syscall(SYS_setgroups, 0, NULL) < 0 ||
		    syscall(SYS_setresgid, gid, gid, gid) < 0 ||
		    syscall(SYS_setresuid, uid, uid, uid) < 0)
			job->err = sb_err_sys(errno, "switching to uid %lld",
			                      (long long)sb->info.host_uid);
	}
	if (!job->err)
		job->err = job->fn(job->ud);
	if (job->close_when_done >= 0)
		close(job->close_when_done);
	return NULL;
}

sb_err *sb_owner_start(const sb_sandbox *sb, sb_err *(*fn)(void *ud), void *ud,
                       int close_when_done, sb_owner_child *oc)
{
	struct owner_job *job = sb_xcalloc(1, sizeof *job);
	job->sb = sb;
	job->fn = fn;
	job->ud = ud;
	job->close_when_done = close_when_done;
	int rc = pthread_create(&oc->thread, NULL, owner_thread, job);
	if (rc != 0) {
		if (close_when_done >= 0)
			close(close_when_done);
		free(job);
		oc->job = NULL;
		return sb_err_sys(rc, "starting a workspace operation in lease %s", sb->id);
	}
	oc->job = job;
	return NULL;
}

sb_err *sb_owner_finish(const sb_sandbox *sb, sb_owner_child *oc)
{
	(void)sb;
	if (!oc->job)
		return NULL;
	pthread_join(oc->thread, NULL);
	sb_err *err = oc->job->err;
	free(oc->job);
	oc->job = NULL;
	return err;
}

sb_err *sb_sandbox_as_owner(const sb_sandbox *sb, sb_err *(*fn)(void *ud), void *ud)
{
	sb_owner_child oc;
	sb_err *err = sb_owner_start(sb, fn, ud, -1, &oc);
	return err ? err : sb_owner_finish(sb, &oc);
}
