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

#define READY_TIMEOUT_MS 20000
#define SB_STR_(x) #x
#define SB_STR(x) SB_STR_(x)

/* The host's (or rootfs') passwd/group without any entry for the sandbox uid/gid or name,
 * plus "sandbox" for them, in a sealed memfd. */
static sb_err *account_file(const char *rootfs, const char *name, const char *line, int *out)
{
	char *path = sb_strfmt("%s/etc/%s", rootfs ? rootfs : "", name);
	sb_buf in = SB_BUF_INIT, outb = SB_BUF_INIT;
	*out = -1;
	bool found;
	sb_err *err = sb_read_file_if_any(path, 4u << 20, &in, &found);
	free(path);
	if (err)
		return err;
	if (!found) /* a root file system without the file: leave it so (its /etc may be read-only)
	             */
		return NULL;
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
	int nsrc = FD_MOUNTS - FD_CTL + (int)l->nmounts;
	bind_srcs bs;
	sb_launch_binds_init(&bs, l);
	int net_exit_rd = -1;
	for (int i = 0; i < nsrc; i++)
		src[i] = -1;
	int ready[2] = {-1, -1}, info[2] = {-1, -1}, devnull = -1, log = -1, owner_wr = -1;
	char **argv = NULL, **procs = NULL;
	char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};

	if ((err = bind_listener(sb, &src[FD_CTL - FD_CTL])))
		goto out;
	if ((err = sb_seccomp_memfd(&src[FD_SECCOMP - FD_CTL])))
		goto out;
	src[FD_SPOOL - FD_CTL] = fcntl(sb->spool_fd, F_DUPFD_CLOEXEC, 3);
	for (size_t i = 0; i < l->nmounts; i++)
		if ((src[FD_MOUNTS - FD_CTL + (int)i] =
		         fcntl(l->mount_fds[i], F_DUPFD_CLOEXEC, 3)) < 0) {
			err = sb_err_sys(errno, "duplicating the --mount sources of lease %s",
			                 sb->id);
			goto out;
		}
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
	/* bwrap writes its info once it has cloned the sandbox's first process, which then waits
	 * for bwrap's go-ahead. Were we killed before that write with the only read end, bwrap
	 * would die of SIGPIPE and leave that process waiting forever, owned by nobody. With a
	 * read end of its own the write succeeds; init then finds its creator gone and ends the
	 * sandbox (owner_died). */
	src[FD_INFO_HELD - FD_CTL] = info[0];
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
	argv = sb_launch_bwrap_argv(sb, l, &bs, l->oom_file != NULL, accounts, resolv);
	for (size_t i = 0; l->cgroups && l->cgroups[i]; i++) {
		char *p = sb_strfmt("%s/cgroup.procs", l->cgroups[i]);
		sb_strv_push(&procs, p);
		free(p);
	}
	spawn_ctx ctx = {.l = l,
	                 .bs = &bs,
	                 .argv = argv,
	                 .envp = envp,
	                 .procs = procs,
	                 .src = src,
	                 .nsrc = nsrc,
	                 .devnull = devnull,
	                 .log = log};
	int ws = 0;
	if ((err = sb_launch_spawn(&ctx, sb->id, &ws)))
		goto out;
	/* our copies of the child's ends must go, so EOF means the sandbox died */
	sb_close(&ready[1]);
	sb_close(&info[1]);
	sb_close(&src[FD_NETEXIT - FD_CTL]);
	src[FD_READY - FD_CTL] = src[FD_INFO - FD_CTL] = src[FD_INFO_HELD - FD_CTL] = -1;
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
	/* these slots only lend the pipes' ends, which are closed below */
	src[FD_READY - FD_CTL] = src[FD_INFO - FD_CTL] = src[FD_INFO_HELD - FD_CTL] = -1;
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
	sb_strv_free(argv);
	sb_strv_free(procs);
	sb_launch_binds_deinit(&bs);
	return err;
}
