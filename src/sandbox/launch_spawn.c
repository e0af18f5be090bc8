/* The two launcher processes of a sandbox, started like posix_spawn does (see launch.c for
 * why): the middle one takes a session of its own and starts the grandchild, which joins the
 * lease's cgroups, enters a private mount namespace for the bind sources when we are root,
 * drops privileges, puts init's descriptors at their numbers and execs bwrap. Both share our
 * memory until then: async-signal-safe calls only. */
#include "launch_int.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Only async-signal-safe calls from here until exec: the caller may have threads. */
static void write_pid(const char *cgdir_procs, int pid)
{
	char num[16];
	int n = 0;
	char rev[16];
	do {
		rev[n++] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid > 0);
	for (int i = 0; i < n; i++)
		num[i] = rev[n - 1 - i];
	int fd = open(cgdir_procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, num, (size_t)n) != n)
		_exit(121);
	close(fd);
}

static void say(int log, const char *a, const char *b)
{
	if (write(log, a, strlen(a)) < 0 || write(log, b, strlen(b)) < 0 || write(log, "\n", 1) < 0)
		return;
}

/* strerror may allocate (it translates): the static description instead. */
static const char *errno_text(int e)
{
	const char *s = strerrordesc_np(e);
	return s ? s : "unknown error";
}

/* As root, in a mount namespace of our own: the bind sources at bs's paths (see the top).
 * Each source is cloned as a detached mount before the unshare (a plain bind from a descriptor
 * fails with EINVAL once the descriptor's mount belongs to another namespace) and attached in
 * the new namespace. */
static void private_binds(const bind_srcs *bs, bool rootfs, int log)
{
	static const int fds[] = {FD_WS, FD_HOME, FD_INIT, FD_ROOTFS};
	const char *dst[] = {bs->ws, bs->home, bs->init, bs->rootfs};
	int n = rootfs ? 4 : 3, tree[4];
	for (int i = 0; i < n; i++) {
		unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH;
		if (i == 3)
			flags |= AT_RECURSIVE;
		tree[i] = (int)syscall(SYS_open_tree, fds[i], "", flags);
		if (tree[i] < 0) {
			say(log, "sandbar: open_tree of a bind source: ", errno_text(errno));
			_exit(127);
		}
		close(fds[i]);
	}
	/* the --mount sources, from the descriptors opened when they were checked */
	int mtree[SB_MOUNTS_MAX];
	bool mdir[SB_MOUNTS_MAX];
	size_t nm = bs->l->nmounts;
	for (size_t i = 0; i < nm; i++) {
		struct stat st;
		mtree[i] = (int)syscall(SYS_open_tree, FD_MOUNTS + (int)i, "",
		                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
		                            AT_EMPTY_PATH);
		if (mtree[i] < 0 || fstat(mtree[i], &st) < 0) {
			say(log, "sandbar: open_tree of a --mount source: ", bs->l->mounts[i].host);
			_exit(127);
		}
		close(FD_MOUNTS + (int)i);
		mdir[i] = S_ISDIR(st.st_mode);
	}
	if (unshare(CLONE_NEWNS) < 0) {
		say(log, "sandbar: unshare(CLONE_NEWNS): ", errno_text(errno));
		_exit(127);
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("sandbar", bs->priv, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") < 0) {
		say(log, "sandbar: mounting a tmpfs on ", bs->priv);
		_exit(127);
	}
	int fd = open(bs->init, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (fd < 0 || close(fd) < 0 || mkdir(bs->ws, 0755) < 0 || mkdir(bs->home, 0755) < 0 ||
	    (rootfs && mkdir(bs->rootfs, 0755) < 0)) {
		say(log, "sandbar: creating mount points in ", bs->priv);
		_exit(127);
	}
	for (int i = 0; i < n; i++) {
		if (syscall(SYS_move_mount, tree[i], "", AT_FDCWD, dst[i],
		            MOVE_MOUNT_F_EMPTY_PATH) < 0) {
			say(log, "sandbar: binding into the private mount namespace: ", dst[i]);
			_exit(127);
		}
		close(tree[i]);
	}
	for (size_t i = 0; i < nm; i++) {
		const char *dst_m = bs->mounts[i];
		int mp = mdir[i]
		             ? mkdir(dst_m, 0755)
		             : close(open(dst_m, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
		if (mp < 0 || syscall(SYS_move_mount, mtree[i], "", AT_FDCWD, dst_m,
		                      MOVE_MOUNT_F_EMPTY_PATH) < 0) {
			say(log,
			    "sandbar: binding a --mount source into the private mount namespace: ",
			    dst_m);
			_exit(127);
		}
		close(mtree[i]);
	}
}

static void grandchild(const sb_launch *l, const bind_srcs *bs, char **argv, char **envp,
                       char **procs_files, const int *src, int nsrc, int devnull, int log)
{
	for (size_t i = 0; procs_files && procs_files[i]; i++)
		write_pid(procs_files[i], getpid());
	/* move every descriptor above the target range first, then into place */
	int tmp[FD_COUNT_MAX];
	for (int i = 0; i < nsrc; i++) {
		tmp[i] = -1;
		if (src[i] >= 0 && (tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 64)) < 0)
			_exit(123);
	}
	if (dup2(devnull, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
		_exit(124);
	for (int i = 0; i < nsrc; i++)
		if (tmp[i] >= 0 && dup2(tmp[i], FD_CTL + i) < 0)
			_exit(125);
	close_range(FD_CTL + (unsigned)nsrc, ~0U, 0);
	if (bs->priv)
		private_binds(bs, l->rootfs != NULL, 2);
	if (l->drop_privs) {
		/* raw: libc's wrappers would signal the daemon's threads to change theirs too */
		if (syscall(SYS_setgroups, 0, NULL) < 0 ||
		    syscall(SYS_setresgid, (gid_t)l->gid, (gid_t)l->gid, (gid_t)l->gid) < 0 ||
		    syscall(SYS_setresuid, (uid_t)l->uid, (uid_t)l->uid, (uid_t)l->uid) < 0)
			_exit(122);
	}
	/* The daemon's handlers live in the memory we share: none may run here. What the
	 * daemon ignores stays ignored across exec, except SIGPIPE. */
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sigaction(sig, NULL, &sa) < 0)
			continue;
		if ((sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN) || sig == SIGPIPE) {
			memset(&sa, 0, sizeof sa);
			sa.sa_handler = SIG_DFL;
			sigaction(sig, &sa, NULL);
		}
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(argv[0], argv, envp);
	_exit(126);
}

#define SPAWN_STACK (128u * 1024u)
#define SPAWN_STACKS_KEPT 8

/* Stacks for the launcher processes, kept for reuse: unmapping memory the daemon's threads
 * share costs a TLB shoot-down across CPUs on every launch. Process-wide by nature, like the
 * children they serve. */
static pthread_mutex_t stacks_mu = PTHREAD_MUTEX_INITIALIZER;
static char *stacks_kept[SPAWN_STACKS_KEPT];
static size_t nstacks_kept;

/* Room for both processes: the middle's upper half, the grandchild's lower half. */
static char *stacks_get(void)
{
	char *s = NULL;
	pthread_mutex_lock(&stacks_mu);
	if (nstacks_kept)
		s = stacks_kept[--nstacks_kept];
	pthread_mutex_unlock(&stacks_mu);
	if (s)
		return s;
	s = mmap(NULL, 2 * SPAWN_STACK, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	return s == MAP_FAILED ? NULL : s;
}

static void stacks_put(char *s)
{
	pthread_mutex_lock(&stacks_mu);
	if (nstacks_kept < SPAWN_STACKS_KEPT) {
		stacks_kept[nstacks_kept++] = s;
		s = NULL;
	}
	pthread_mutex_unlock(&stacks_mu);
	if (s)
		munmap(s, 2 * SPAWN_STACK);
}

static int grandchild_main(void *arg)
{
	const spawn_ctx *c = arg;
	grandchild(c->l, c->bs, c->argv, c->envp, c->procs, c->src, c->nsrc, c->devnull, c->log);
	return 126; /* not reached */
}

/* The middle process: a session of its own, the grandchild, and gone once that has exec'd. */
static int middle_main(void *arg)
{
	spawn_ctx *c = arg;
	if (setsid() < 0)
		_exit(120);
	pid_t g =
	    clone(grandchild_main, c->stack + SPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, c);
	_exit(g < 0 ? 119 : 0);
}

sb_err *sb_launch_spawn(spawn_ctx *ctx, const char *lease_id, int *status)
{
	char *stacks = stacks_get();
	if (!stacks)
		return sb_err_sys(errno, "allocating the launch stacks of lease %s", lease_id);
	ctx->stack = stacks;
	sigset_t all, saved;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	sb_children_wait_begin();
	/* returns once the middle process has exited, i.e. once bwrap runs */
	pid_t mid =
	    clone(middle_main, stacks + 2 * SPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, ctx);
	int clone_errno = errno;
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	sb_err *err = NULL;
	if (mid < 0)
		err = sb_err_sys(clone_errno, "starting the sandbox process of lease %s", lease_id);
	else
		while (waitpid(mid, status, 0) < 0 && errno == EINTR)
			;
	sb_children_wait_end();
	stacks_put(stacks);
	return err;
}
