/* Starting a sandbox: bubblewrap with sandbar-init as PID 1, detached from the caller.
 *
 * The caller starts two processes in a row (the middle one calls setsid and exits once the
 * second has exec'd) so bwrap is not our child and never dies with us: no --die-with-parent.
 * The grandchild joins the lease's cgroups, drops to the sandbox host user when we are root,
 * arranges the descriptors init needs at fixed numbers and execs bwrap. Readiness is one byte
 * on a pipe from init; bwrap's --info-fd gives init's host pid.
 *
 * Both are started like posix_spawn does, with clone(CLONE_VM | CLONE_VFORK) on stacks of
 * their own, not with fork: a fork of the daemon copies its page tables and then makes every
 * thread's next write to each page a copy-on-write fault with a TLB shoot-down across CPUs,
 * which under churn cost the daemon more CPU than everything else in a lease's life. Sharing
 * our memory, they may only make system calls (no malloc, no stdio, no libc wrapper that
 * broadcasts to threads such as setresuid), and all signals stay blocked until their handlers
 * are reset.
 *
 * Reaching the bind sources (DESIGN §9.3): bubblewrap 0.8 resolves even --bind-fd sources back
 * through their path, as the sandbox user, so a state directory or sandbar-init below a 0700
 * directory (/root/..., any mktemp -d) would be out of its reach. When we are root the
 * grandchild therefore enters a private mount namespace before dropping privileges, mounts a
 * small 0755 tmpfs on an unused top-level directory there (PRIV_BASES) and binds the
 * workspace, home, sandbar-init and the root file system into it from descriptors opened as
 * root; bwrap then binds those paths. Nothing on the host changes mode and the host's mount
 * table does not see any of it. Without root the sandbox runs as the caller, who can reach
 * its own paths, and the descriptors are bound directly.
 */
#include "sandbox_int.h"

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

#define READY_TIMEOUT_MS 20000
#define SB_STR_(x) #x
#define SB_STR(x) SB_STR_(x)

/* Descriptor numbers inside bwrap / init. */
enum {
	FD_CTL = 3,
	FD_SPOOL,
	FD_SECCOMP,
	FD_READY,
	FD_INFO,
	FD_WS,
	FD_HOME,
	FD_INIT,
	FD_OOM,
	FD_PASSWD,
	FD_GROUP,
	FD_NETEXIT,
	FD_RESOLV,
	FD_ROOTFS,
	FD_HOSTS,
	FD_CABUNDLE,
	FD_OWNER,
	FD_COUNT_MAX
};

/* Where the private mount namespace puts the bind sources: the first of these that is a
 * directory (sandboxes never see the host's copy of them). */
static const char *const PRIV_BASES[] = {"/mnt", "/media", "/srv", "/tmp"};

static const char *priv_base(void)
{
	for (size_t i = 0; i < sizeof PRIV_BASES / sizeof PRIV_BASES[0]; i++) {
		struct stat st;
		if (lstat(PRIV_BASES[i], &st) == 0 && S_ISDIR(st.st_mode))
			return PRIV_BASES[i];
	}
	return NULL;
}

long long sb_proc_start_time(int pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 4096, &b);
	long long t = -1;
	if (!err) {
		const char *p = strrchr(sb_buf_cstr(&b), ')');
		/* field 22 (starttime); after ')' come fields 3.. */
		for (int field = 2; p && field < 22; field++)
			p = strchr(p + 1, ' ');
		if (p)
			t = strtoll(p + 1, NULL, 10);
	}
	sb_err_free(err);
	sb_buf_deinit(&b);
	return t;
}

static void push(char ***v, const char *a)
{
	sb_strv_push(v, a);
}

static void push3(char ***v, const char *a, const char *b, const char *c)
{
	sb_strv_push(v, a);
	sb_strv_push(v, b);
	if (c)
		sb_strv_push(v, c);
}

/* The read-only system part of the file system. */
/* One top-level entry made visible read-only: a directory or file bound, a symlink recreated. */
static void add_entry(char ***v, const char *src, const char *bind_src, const char *dst)
{
	struct stat st;
	if (lstat(src, &st) < 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlink(src, target, sizeof target - 1);
		if (n <= 0)
			return;
		target[n] = '\0';
		push3(v, "--symlink", target, dst);
	} else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
		push3(v, "--ro-bind", bind_src, dst);
	}
}

/* The read-only system part of the file system: the host's /usr, /etc, /bin, /sbin, /lib*,
 * /opt, or every top-level entry of a configured root file system except the places the
 * sandbox provides itself (so their mount points can be made in bwrap's own root). */
static void add_system_dirs(char ***v, const char *rootfs, const char *rootfs_bind,
                            const char *workspace_mount)
{
	if (!rootfs) {
		static const char *const dirs[] = {"/usr",   "/etc",   "/bin",    "/sbin", "/lib",
		                                   "/lib32", "/lib64", "/libx32", "/opt"};
		for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
			add_entry(v, dirs[i], dirs[i], dirs[i]);
		return;
	}
	size_t wlen = strcspn(workspace_mount + 1, "/");
	DIR *d = opendir(rootfs);
	if (!d)
		return; /* bwrap then runs on an empty root and init fails to start: reported */
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		static const char *const own[] = {".",   "..",  "proc", "dev",
		                                  "tmp", "sys", "home", ".sandbar-init"};
		bool skip = strlen(de->d_name) == wlen &&
		            strncmp(de->d_name, workspace_mount + 1, wlen) == 0;
		for (size_t i = 0; i < sizeof own / sizeof own[0] && !skip; i++)
			skip = strcmp(de->d_name, own[i]) == 0;
		if (!skip) {
			sb_strv_push(&names, de->d_name);
			n++;
		}
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		char *src = sb_strfmt("%s/%s", rootfs, names[i]);
		char *dst = sb_strfmt("/%s", names[i]);
		char *bsrc = sb_strfmt("%s/%s", rootfs_bind, names[i]);
		add_entry(v, src, bsrc, dst);
		free(bsrc);
		free(src);
		free(dst);
	}
	sb_strv_free(names);
}

/* The bind sources as bwrap sees them: in the private mount namespace (priv != NULL) or from
 * descriptors. */
typedef struct bind_srcs {
	const char *priv; /* PRIV_BASES entry, or NULL */
	char *ws, *home, *init, *rootfs;
	char **mounts; /* one per l->mounts: priv/mN, or the host path itself */
	const sb_launch *l;
} bind_srcs;

static void bind_srcs_init(bind_srcs *b, const sb_launch *l)
{
	memset(b, 0, sizeof *b);
	b->l = l;
	b->priv = l->drop_privs ? priv_base() : NULL;
	for (size_t i = 0; i < l->nmounts; i++) {
		char *m =
		    b->priv ? sb_strfmt("%s/m%zu", b->priv, i) : sb_xstrdup(l->mounts[i].host);
		sb_strv_push(&b->mounts, m);
		free(m);
	}
	if (b->priv) {
		b->ws = sb_strfmt("%s/w", b->priv);
		b->home = sb_strfmt("%s/h", b->priv);
		b->init = sb_strfmt("%s/i", b->priv);
		b->rootfs = sb_strfmt("%s/r", b->priv);
	} else {
		b->ws = sb_strfmt("%d", FD_WS);
		b->home = sb_strfmt("%d", FD_HOME);
		b->init = sb_strfmt("%d", FD_INIT);
		b->rootfs = l->rootfs ? sb_xstrdup(l->rootfs) : NULL;
	}
}

static void bind_srcs_deinit(bind_srcs *b)
{
	free(b->ws);
	free(b->home);
	free(b->init);
	free(b->rootfs);
	sb_strv_free(b->mounts);
}

/* Is path (resolved) inside what add_system_dirs shows the sandbox? */
static bool visible_in_sandbox(const char *path)
{
	static const char *const dirs[] = {"/usr",   "/etc",   "/bin",    "/sbin", "/lib",
	                                   "/lib32", "/lib64", "/libx32", "/opt"};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		size_t n = strlen(dirs[i]);
		if (strncmp(path, dirs[i], n) == 0 && (path[n] == '/' || path[n] == '\0'))
			return true;
	}
	return false;
}

/* The daemon's configuration and whatever the caller names: covered where the sandbox would
 * see them (after the system directories are bound, before / turns read-only). */
static void add_hidden(char ***v, const sb_launch *l)
{
	if (l->rootfs)
		return; /* a root file system of its own shows nothing of the host's */
	const char *fixed[] = {"/etc/sandbar", NULL};
	const char *const *lists[] = {fixed, l->hide_paths};
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0; lists[k] && lists[k][i]; i++) {
			char *real = realpath(lists[k][i], NULL);
			struct stat st;
			bool covered = false; /* inside a directory hidden already */
			for (size_t j = 0; real && *v && (*v)[j] && !covered; j++) {
				size_t n = strlen((*v)[j]);
				covered = j > 0 && strcmp((*v)[j - 1], "--tmpfs") == 0 &&
				          strncmp(real, (*v)[j], n) == 0 &&
				          (real[n] == '/' || real[n] == '\0');
			}
			if (real && !covered && visible_in_sandbox(real) && lstat(real, &st) == 0) {
				if (S_ISDIR(st.st_mode)) {
					push3(v, "--perms", "0700", NULL);
					push3(v, "--tmpfs", real, NULL);
				} else {
					push3(v, "--ro-bind", "/dev/null", real);
				}
			}
			free(real);
		}
	}
}

static char **build_argv(const sb_sandbox *sb, const sb_launch *l, const bind_srcs *bs,
                         bool have_oom, bool have_accounts, bool have_resolv)
{
	char **v = NULL, num[32];
	push(&v, l->bwrap);
	push(&v, "--unshare-user");
	push(&v, "--unshare-ipc");
	push(&v, "--unshare-pid");
	push(&v, "--unshare-uts");
	push(&v, "--unshare-cgroup");
	push(&v, "--unshare-net"); /* always: full network is slirp4netns attached to it */
	snprintf(num, sizeof num, "%d", SB_SANDBOX_INNER_UID);
	push3(&v, "--uid", num, NULL);
	push3(&v, "--gid", num, NULL);
	push3(&v, "--hostname", "sandbar", NULL);
	push(&v, "--as-pid-1");
	push(&v, "--new-session");
	snprintf(num, sizeof num, "%d", FD_INFO);
	push3(&v, "--info-fd", num, NULL);
	add_system_dirs(&v, l->rootfs, bs->rootfs, sb->workspace_mount);
	add_hidden(&v, l);
	if (have_accounts) {
		/* a name for the sandbox uid, whatever the host's /etc says about uid 1000 */
		snprintf(num, sizeof num, "%d", FD_PASSWD);
		push3(&v, "--ro-bind-data", num, "/etc/passwd");
		snprintf(num, sizeof num, "%d", FD_GROUP);
		push3(&v, "--ro-bind-data", num, "/etc/group");
	}
	if (have_resolv) {
		snprintf(num, sizeof num, "%d", FD_RESOLV);
		push3(&v, "--ro-bind-data", num, "/etc/resolv.conf");
	}
	if (l->hosts_name) {
		/* the callback bridge's name resolves to the sandbox's loopback */
		snprintf(num, sizeof num, "%d", FD_HOSTS);
		push3(&v, "--ro-bind-data", num, "/etc/hosts");
	}
	if (l->ca_bundle) {
		/* the egress proxy's CA added to the system bundle (proxy_lease.c) */
		snprintf(num, sizeof num, "%d", FD_CABUNDLE);
		push3(&v, "--ro-bind-data", num, "/etc/ssl/certs/ca-certificates.crt");
	}
	push3(&v, "--proc", "/proc", NULL);
	push3(&v, "--dev", "/dev", NULL);
	char size[32];
	snprintf(size, sizeof size, "%llu", (unsigned long long)l->tmpfs_bytes);
	push3(&v, "--perms", "01777", NULL);
	push3(&v, "--size", size, NULL);
	push3(&v, "--tmpfs", "/dev/shm", NULL);
	push3(&v, "--perms", "01777", NULL);
	push3(&v, "--size", size, NULL);
	push3(&v, "--tmpfs", "/tmp", NULL);
	push3(&v, bs->priv ? "--bind" : "--bind-fd", bs->home, SB_SANDBOX_HOME);
	push3(&v, bs->priv ? "--bind" : "--bind-fd", bs->ws, sb->workspace_mount);
	push3(&v, bs->priv ? "--ro-bind" : "--ro-bind-fd", bs->init, "/.sandbar-init");
	for (size_t i = 0; i < l->nmounts; i++) /* after home: a target may lie in it */
		push3(&v, l->mounts[i].rw ? "--bind" : "--ro-bind", bs->mounts[i],
		      l->mounts[i].target);
	push3(&v, "--remount-ro", "/dev", NULL);
	push3(&v, "--remount-ro", "/", NULL);
	push3(&v, "--chdir", "/", NULL);
	push(&v, "/.sandbar-init");
	snprintf(num, sizeof num, "%d", FD_CTL);
	push3(&v, "--ctl-fd", num, NULL);
	snprintf(num, sizeof num, "%d", FD_SPOOL);
	push3(&v, "--spool-fd", num, NULL);
	snprintf(num, sizeof num, "%d", FD_SECCOMP);
	push3(&v, "--seccomp-fd", num, NULL);
	snprintf(num, sizeof num, "%d", FD_READY);
	push3(&v, "--ready-fd", num, NULL);
	if (have_oom) {
		snprintf(num, sizeof num, "%d", FD_OOM);
		push3(&v, "--oom-fd", num, NULL);
	}
	snprintf(num, sizeof num, "%llu", (unsigned long long)l->nofile);
	push3(&v, "--nofile", num, NULL);
	snprintf(num, sizeof num, "%llu", (unsigned long long)l->nproc);
	push3(&v, "--nproc", num, NULL);
	snprintf(num, sizeof num, "%llu", (unsigned long long)l->spool_max);
	push3(&v, "--spool-max", num, NULL);
	if (l->watch_owner) {
		snprintf(num, sizeof num, "%d", FD_OWNER);
		push3(&v, "--owner-fd", num, NULL);
	}
	return v;
}

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
	/* the --mount sources, by path: we are still root here and can reach them */
	int mtree[SB_MOUNTS_MAX];
	bool mdir[SB_MOUNTS_MAX];
	size_t nm = bs->l->nmounts;
	for (size_t i = 0; i < nm; i++) {
		struct stat st;
		const char *host = bs->l->mounts[i].host;
		mtree[i] = (int)syscall(SYS_open_tree, AT_FDCWD, host,
		                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (mtree[i] < 0 || fstat(mtree[i], &st) < 0) {
			say(log, "sandbar: open_tree of a --mount source: ", host);
			_exit(127);
		}
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

/* What the two processes the launch starts need (they share our memory while they run). */
typedef struct spawn_ctx {
	const sb_launch *l;
	const bind_srcs *bs;
	char **argv, **envp, **procs;
	const int *src;
	int nsrc, devnull, log;
	char *stack; /* the grandchild's */
} spawn_ctx;

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

/* The host's (or rootfs') passwd/group without any entry for the sandbox uid/gid or name,
 * plus "sandbox" for them, in a sealed memfd. */
static sb_err *account_file(const char *rootfs, const char *name, const char *line, int *out)
{
	char *path = sb_strfmt("%s/etc/%s", rootfs ? rootfs : "", name);
	sb_buf in = SB_BUF_INIT, outb = SB_BUF_INIT;
	*out = -1;
	sb_err *err = sb_read_file(path, 4u << 20, &in);
	free(path);
	if (err && err->sys_errno == ENOENT) {
		/* a root file system without the file: leave it so (its /etc may be read-only) */
		sb_err_free(err);
		return NULL;
	}
	if (err)
		return err;
	char id[16];
	snprintf(id, sizeof id, "%d", SB_SANDBOX_INNER_UID);
	const char *p = sb_buf_cstr(&in);
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		/* name:x:id:... — drop lines naming "sandbox" or using the id */
		const char *c1 = memchr(p, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p)) : NULL;
		const char *c3 = c2 ? memchr(c2 + 1, ':', len - (size_t)(c2 + 1 - p)) : NULL;
		bool drop = (c1 && (size_t)(c1 - p) == 7 && strncmp(p, "sandbox", 7) == 0) ||
		            (c2 && c3 && (size_t)(c3 - c2 - 1) == strlen(id) &&
		             strncmp(c2 + 1, id, strlen(id)) == 0);
		if (!drop && len > 0) {
			sb_buf_append(&outb, p, len);
			sb_buf_appendc(&outb, '\n');
		}
		p += len + (nl ? 1 : 0);
	}
	sb_buf_appends(&outb, line);
	sb_buf_deinit(&in);
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		err = sb_err_sys(errno, "memfd for /etc/%s", name);
	else if ((err = sb_write_all(fd, outb.data, outb.len)) || lseek(fd, 0, SEEK_SET) < 0) {
		err = err ? err : sb_err_sys(errno, "rewinding /etc/%s", name);
		close(fd);
	} else {
		*out = fd;
	}
	sb_buf_deinit(&outb);
	return err;
}

static sb_err *bind_listener(sb_sandbox *sb, int *out)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sb_err_sys(errno, "creating the control socket of lease %s", sb->id);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/ctl.sock", sb->run_fd);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
		sb_err *err = sb_err_sys(errno, "binding %s/ctl.sock", sb->run_dir);
		close(fd);
		return err;
	}
	*out = fd;
	return NULL;
}

static int parse_child_pid(const char *json)
{
	const char *p = strstr(json, "\"child-pid\"");
	if (!p || !(p = strchr(p, ':')))
		return -1;
	return (int)strtol(p + 1, NULL, 10);
}

/* bwrap writes {"child-pid": N, ...} and may keep the descriptor open: read up to the '}'. */
static void read_info(int fd, sb_buf *out)
{
	int64_t deadline = sb_mono_ms() + 5000;
	while (!memchr(out->data ? out->data : "", '}', out->len) && out->len < 65536) {
		int64_t left = deadline - sb_mono_ms();
		struct pollfd pfd = {fd, POLLIN, 0};
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return;
		char buf[1024];
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		sb_buf_append(out, buf, (size_t)n);
	}
}

static char *log_tail(const sb_sandbox *sb)
{
	char *path = sb_strfmt("%s/init.log", sb->run_dir);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 1u << 20, &b);
	free(path);
	sb_err_free(err);
	while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
		b.data[--b.len] = '\0';
	const char *s = sb_buf_cstr(&b);
	if (b.len > 600)
		s += b.len - 600;
	char *out = sb_xstrdup(*s ? s : "(no output)");
	sb_buf_deinit(&b);
	return out;
}

sb_err *sb_launch_sandbox(sb_sandbox *sb, const sb_launch *l)
{
	sb_err *err = NULL;
	int src[FD_COUNT_MAX - FD_CTL];
	int nsrc = FD_OWNER - FD_CTL + 1;
	bind_srcs bs;
	bind_srcs_init(&bs, l);
	int net_exit_rd = -1;
	for (int i = 0; i < nsrc; i++)
		src[i] = -1;
	int ready[2] = {-1, -1}, info[2] = {-1, -1}, devnull = -1, log = -1, owner_wr = -1;
	char **argv = NULL, **procs = NULL;
	char *stacks = NULL;
	char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};

	if ((err = bind_listener(sb, &src[FD_CTL - FD_CTL])))
		goto out;
	if ((err = sb_seccomp_memfd(&src[FD_SECCOMP - FD_CTL])))
		goto out;
	src[FD_SPOOL - FD_CTL] = fcntl(sb->spool_fd, F_DUPFD_CLOEXEC, 3);
	if ((src[FD_WS - FD_CTL] = fcntl(sb->workspace_fd, F_DUPFD_CLOEXEC, 3)) < 0 ||
	    (src[FD_HOME - FD_CTL] = open(sb->home, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (src[FD_INIT - FD_CTL] = open(l->init_path, O_PATH | O_CLOEXEC)) < 0) {
		err = sb_err_sys(errno, "opening the directories and init binary of lease %s",
		                 sb->id);
		goto out;
	}
	if ((err = account_file(l->rootfs, "passwd",
	                        "sandbox:x:" SB_STR(SB_SANDBOX_INNER_UID) ":" SB_STR(
	                            SB_SANDBOX_INNER_UID) "::" SB_SANDBOX_HOME ":/bin/sh\n",
	                        &src[FD_PASSWD - FD_CTL])) ||
	    (err = account_file(l->rootfs, "group", "sandbox:x:" SB_STR(SB_SANDBOX_INNER_UID) ":\n",
	                        &src[FD_GROUP - FD_CTL])))
		goto out;
	if (bs.priv && l->rootfs &&
	    (src[FD_ROOTFS - FD_CTL] = open(l->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err = sb_err_sys(errno, "opening the root file system %s", l->rootfs);
		goto out;
	}
	if (l->hosts_name &&
	    (err = sb_callback_hosts_fd(l->rootfs, l->hosts_name, &src[FD_HOSTS - FD_CTL])))
		goto out;
	if (l->ca_bundle) {
		int fd = memfd_create("ca-bundle", MFD_CLOEXEC);
		if (fd < 0 || (err = sb_write_all(fd, l->ca_bundle, strlen(l->ca_bundle))) ||
		    lseek(fd, 0, SEEK_SET) < 0) {
			err =
			    err ? err : sb_err_sys(errno, "memfd for the CA bundle of %s", sb->id);
			if (fd >= 0)
				close(fd);
			goto out;
		}
		src[FD_CABUNDLE - FD_CTL] = fd;
	}
	if (l->oom_file && (src[FD_OOM - FD_CTL] = open(l->oom_file, O_RDONLY | O_CLOEXEC)) < 0) {
		err = sb_err_sys(errno, "opening %s", l->oom_file);
		goto out;
	}
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(info, O_CLOEXEC) < 0) {
		err = sb_err_sys(errno, "creating pipes for lease %s", sb->id);
		goto out;
	}
	if (l->watch_owner) {
		/* init's end of the creator watch; ours is held by this process alone (close on
		 * exec), so it closes exactly when the creator exits, however it exits */
		int ow[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ow) < 0) {
			err = sb_err_sys(errno, "creating the owner socket of lease %s", sb->id);
			goto out;
		}
		src[FD_OWNER - FD_CTL] = ow[0];
		owner_wr = ow[1];
	}
	src[FD_READY - FD_CTL] = ready[1];
	src[FD_INFO - FD_CTL] = info[1];
	char *logpath = sb_strfmt("%s/init.log", sb->run_dir);
	log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	free(logpath);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (log < 0 || devnull < 0) {
		err = sb_err_sys(errno, "opening %s/init.log", sb->run_dir);
		goto out;
	}
	bool accounts = src[FD_PASSWD - FD_CTL] >= 0 && src[FD_GROUP - FD_CTL] >= 0;
	if (!accounts) {
		sb_close(&src[FD_PASSWD - FD_CTL]);
		sb_close(&src[FD_GROUP - FD_CTL]);
	}
	bool resolv = false;
	if (l->network) {
		/* slirp4netns exits when this pipe's write end (held by bwrap and init) closes */
		int ex[2];
		if (pipe2(ex, O_CLOEXEC) < 0) {
			err = sb_err_sys(errno, "creating pipes for lease %s", sb->id);
			goto out;
		}
		net_exit_rd = ex[0];
		src[FD_NETEXIT - FD_CTL] = ex[1];
		if ((err = sb_net_host_guard(l->uid)))
			goto out;
		/* a generated resolv.conf where the system's is a plain file */
		char *rc = sb_strfmt("%s/etc/resolv.conf", l->rootfs ? l->rootfs : "");
		struct stat rst;
		if (lstat(rc, &rst) == 0 && S_ISREG(rst.st_mode)) {
			if ((err = sb_net_resolv_conf(&src[FD_RESOLV - FD_CTL]))) {
				free(rc);
				goto out;
			}
			resolv = true;
		}
		free(rc);
	}
	argv = build_argv(sb, l, &bs, l->oom_file != NULL, accounts, resolv);
	for (size_t i = 0; l->cgroups && l->cgroups[i]; i++) {
		char *p = sb_strfmt("%s/cgroup.procs", l->cgroups[i]);
		sb_strv_push(&procs, p);
		free(p);
	}
	if (!(stacks = stacks_get())) {
		err = sb_err_sys(errno, "allocating the launch stacks of lease %s", sb->id);
		goto out;
	}
	spawn_ctx ctx = {.l = l,
	                 .bs = &bs,
	                 .argv = argv,
	                 .envp = envp,
	                 .procs = procs,
	                 .src = src,
	                 .nsrc = nsrc,
	                 .devnull = devnull,
	                 .log = log,
	                 .stack = stacks};
	sigset_t all, saved;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	sb_children_wait_begin();
	/* returns once the middle process has exited, i.e. once bwrap runs */
	pid_t mid =
	    clone(middle_main, stacks + 2 * SPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &ctx);
	int clone_errno = errno;
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (mid < 0) {
		sb_children_wait_end();
		err = sb_err_sys(clone_errno, "starting the sandbox process of lease %s", sb->id);
		goto out;
	}
	int ws = 0;
	while (waitpid(mid, &ws, 0) < 0 && errno == EINTR)
		;
	sb_children_wait_end();
	/* our copies of the child's ends must go, so EOF means the sandbox died */
	sb_close(&ready[1]);
	sb_close(&info[1]);
	sb_close(&src[FD_NETEXIT - FD_CTL]);
	src[FD_READY - FD_CTL] = src[FD_INFO - FD_CTL] = -1;
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		err = sb_err_new(SB_E_SPAWN,
		                 "starting the sandbox of lease %s: the launcher process could not "
		                 "start bwrap (status %d); see %s/init.log",
		                 sb->id, ws, sb->run_dir);
		goto out;
	}
	/* bwrap reports init's pid right after creating it; what the caller records about the
	 * sandbox (lease.json) is written while init is still starting */
	sb_buf ib = SB_BUF_INIT;
	read_info(info[0], &ib);
	int pid = parse_child_pid(sb_buf_cstr(&ib));
	if (pid > 0) {
		sb->info.init_pid = pid;
		sb->init_start = sb_proc_start_time(pid);
		if (l->started && (err = l->started(sb))) {
			kill(pid, SIGKILL);
			goto done;
		}
	}
	char c = 0;
	struct pollfd pfd = {ready[0], POLLIN, 0};
	int rc;
	do
		rc = poll(&pfd, 1, READY_TIMEOUT_MS);
	while (rc < 0 && errno == EINTR);
	ssize_t n = rc > 0 ? read(ready[0], &c, 1) : -1;
	if (n == 1 && c == 'R' && pid > 0) {
		if (l->network && (err = sb_net_start(sb, l, pid, net_exit_rd, log)))
			kill(pid, SIGKILL);
		if (!err && owner_wr >= 0) {
			sb->owner_fd = owner_wr;
			owner_wr = -1;
		}
		goto done;
	}
	if (n == 1 && c == 'R') {
		err = sb_err_new(SB_E_PROTOCOL, "bwrap did not report the sandbox pid of lease %s",
		                 sb->id);
		goto done;
	}
	char *tail = log_tail(sb);
	err = sb_err_new(SB_E_SPAWN,
	                 "the sandbox of lease %s did not start (%s): %s; check that bubblewrap "
	                 "works for uid %lld and that %s is executable by it",
	                 sb->id, rc == 0 ? "timed out" : "exited", tail,
	                 (long long)sb->info.host_uid, l->init_path);
	free(tail);
	if (rc == 0 && pid > 0)
		kill(pid, SIGKILL); /* a hung start */
done:
	sb_buf_deinit(&ib);
out:
	for (int i = 0; i < nsrc; i++)
		if (src[i] >= 0)
			close(src[i]);
	sb_close(&ready[0]);
	sb_close(&ready[1]);
	sb_close(&info[0]);
	sb_close(&info[1]);
	sb_close(&devnull);
	sb_close(&log);
	sb_close(&net_exit_rd);
	sb_close(&owner_wr);
	if (stacks)
		stacks_put(stacks);
	sb_strv_free(argv);
	sb_strv_free(procs);
	bind_srcs_deinit(&bs);
	return err;
}
