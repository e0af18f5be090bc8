/* Orphaned sandbox processes: a sandbox's bwrap is detached from its creator (launch.c forks
 * twice), so when the sandbox ends, its bwrap is reaped by whoever adopted it. A long-running
 * creator (the daemon) adopts them itself as a child subreaper and reaps them, instead of
 * leaving them to PID 1, which on some hosts (a container's or a VM's minimal init) reaps late
 * or never: hundreds of zombies after a burst of destroys.
 *
 * Reaping takes any child, so it must not steal one that a thread waits for by pid (the
 * launcher's middle process, health's popen): those waits hold the children lock shared,
 * reaping holds it exclusively.
 */
#include "sandbox_int.h"

#include <errno.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* Process-wide by nature: children belong to the process, not to any object of ours. */
static pthread_rwlock_t children_lock = PTHREAD_RWLOCK_INITIALIZER;

void sb_children_wait_begin(void)
{
	pthread_rwlock_rdlock(&children_lock);
}

void sb_children_wait_end(void)
{
	pthread_rwlock_unlock(&children_lock);
}

sb_err *sb_sandbox_adopt_orphans(void)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return sb_err_sys(errno, "becoming the subreaper of detached sandbox processes");
	return NULL;
}

size_t sb_sandbox_reap_orphans(void)
{
	size_t n = 0;
	pthread_rwlock_wrlock(&children_lock);
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid > 0) {
			n++;
			continue;
		}
		if (pid < 0 && errno == EINTR)
			continue;
		break; /* 0: none exited yet; ECHILD: no children */
	}
	pthread_rwlock_unlock(&children_lock);
	return n;
}
