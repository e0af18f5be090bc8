/* Full network for a sandbox (DESIGN §9.9): the sandbox always has its own network namespace;
 * "full" adds user-mode networking by slirp4netns attached to it, which reaches the internet
 * through ordinary host sockets but never the host itself:
 *
 *   - --disable-host-loopback: the gateway address does not lead to the host's 127.0.0.1;
 *   - as root, an nftables rule rejects every packet the sandbox user's sockets (slirp4netns
 *     runs as that user) send to an address of the host (fib daddr type local), so the
 *     daemon's TCP port is out of reach on every interface;
 *   - the sandbox's /etc/resolv.conf names slirp's DNS forwarder.
 *
 * slirp4netns is started detached (like bwrap: its own session, the lease's cgroups) as the
 * sandbox user. It joins the sandbox's outer user namespace (bwrap nests a second one for the
 * final uid mapping; the network namespace belongs to the outer one) and its network namespace
 * through descriptors opened as root. It exits when the sandbox does: its --exit-fd is the read
 * end of a pipe whose write end only bwrap and sandbar-init hold.
 *
 * /dev/net/tun may be 0600 on the host (it is on some); as root the helper gets a private
 * mount namespace with its own 0666 node for the same device, so nothing on the host changes.
 */
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define NET_READY_TIMEOUT_MS 10000
#define SLIRP_DNS "10.0.2.3"

/* PATH, then the sbin directories (root's tools live there and PATH may lack them). */
static char *find_tool(const char *name)
{
	const char *path = getenv("PATH");
	char *all = sb_strfmt("%s:/usr/sbin:/sbin:/usr/bin:/bin", path && *path ? path : "");
	char *save = NULL, *found = NULL;
	for (char *dir = strtok_r(all, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		if (!*dir)
			continue;
		char *p = sb_strfmt("%s/%s", dir, name);
		if (access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(all);
	return found;
}

sb_err *sb_net_check(void)
{
	char *slirp = find_tool("slirp4netns");
	if (!slirp)
		return sb_err_new(SB_E_UNSUPPORTED,
		                  "full network needs slirp4netns: install it (apt-get install "
		                  "slirp4netns, or run scripts/bootstrap)");
	free(slirp);
	if (geteuid() == 0) {
		char *nft = find_tool("nft");
		if (!nft)
			return sb_err_new(
			    SB_E_UNSUPPORTED,
			    "full network as root needs nftables to keep sandboxes off "
			    "the host's addresses: install it (apt-get install nftables, "
			    "or run scripts/bootstrap)");
		free(nft);
	}
	return NULL;
}

/* The rule is installed once per process and uid; replacing the table is idempotent. */
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t guarded_uid = -1;

sb_err *sb_net_host_guard(int64_t uid)
{
	if (geteuid() != 0)
		return NULL;
	pthread_mutex_lock(&guard_lock);
	bool done = guarded_uid == uid;
	pthread_mutex_unlock(&guard_lock);
	if (done)
		return NULL;
	char *nft = find_tool("nft");
	if (!nft)
		return sb_net_check();
	char *rules = sb_strfmt("table inet sandbar {}\n"
	                        "delete table inet sandbar\n"
	                        "table inet sandbar {\n"
	                        "  chain output {\n"
	                        "    type filter hook output priority 0; policy accept;\n"
	                        "    meta skuid %lld fib daddr type local meta l4proto tcp "
	                        "counter reject with tcp reset\n"
	                        "    meta skuid %lld fib daddr type local counter reject\n"
	                        "  }\n"
	                        "}\n",
	                        (long long)uid, (long long)uid);
	int in[2];
	sb_err *err = NULL;
	if (pipe2(in, O_CLOEXEC) < 0) {
		err = sb_err_sys(errno, "pipe for nft");
		goto out;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 1);
		execl(nft, nft, "-f", "-", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	if (pid > 0)
		err = sb_write_all(in[1], rules, strlen(rules));
	sb_err_free(err);
	err = NULL;
	close(in[1]);
	int ws = 0;
	while (pid > 0 && waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (pid < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		err = sb_err_new(SB_E_UNSUPPORTED,
		                 "installing the nftables rule that keeps sandboxes off the host's "
		                 "addresses failed (%s -f -, see its message above); full network "
		                 "needs a kernel with nf_tables",
		                 nft);
	else {
		pthread_mutex_lock(&guard_lock);
		guarded_uid = uid;
		pthread_mutex_unlock(&guard_lock);
	}
out:
	free(nft);
	free(rules);
	return err;
}

sb_err *sb_net_resolv_conf(int *fd_out)
{
	*fd_out = -1;
	int fd = memfd_create("resolv.conf", MFD_CLOEXEC);
	if (fd < 0)
		return sb_err_sys(errno, "memfd for resolv.conf");
	static const char text[] = "# written by sandbar: slirp4netns forwards DNS\n"
	                           "nameserver " SLIRP_DNS "\n";
	sb_err *err = sb_write_all(fd, text, sizeof text - 1);
	if (!err && lseek(fd, 0, SEEK_SET) < 0)
		err = sb_err_sys(errno, "rewinding resolv.conf");
	if (err) {
		close(fd);
		return err;
	}
	*fd_out = fd;
	return NULL;
}

/* Only async-signal-safe calls between fork and exec. */
static void helper_child(const sb_launch *l, char **argv, char **procs, int devnull, int log,
                         const char *priv, const int *keep, int nkeep)
{
	for (int i = 0; i < nkeep; i++)
		if (fcntl(keep[i], F_SETFD, 0) < 0) /* the descriptors slirp4netns inherits */
			_exit(123);
	for (size_t i = 0; procs && procs[i]; i++) {
		int fd = open(procs[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			_exit(121);
		close(fd);
	}
	if (dup2(devnull, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
		_exit(124);
	if (l->drop_privs) {
		if (priv) {
			char node[64];
			size_t n = strlen(priv);
			if (n + 8 > sizeof node)
				_exit(127);
			memcpy(node, priv, n);
			memcpy(node + n, "/tun", 5);
			if (unshare(CLONE_NEWNS) < 0 ||
			    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
			    mount("sandbar", priv, "tmpfs", MS_NOSUID, "mode=0755,size=16k") < 0 ||
			    mknod(node, S_IFCHR | 0666, makedev(10, 200)) < 0 ||
			    chmod(node, 0666) < 0 ||
			    mount(node, "/dev/net/tun", NULL, MS_BIND, NULL) < 0) {
				static const char msg[] =
				    "sandbar: preparing /dev/net/tun failed\n";
				if (write(2, msg, sizeof msg - 1) < 0)
					_exit(127);
				_exit(127);
			}
		}
		if (setgroups(0, NULL) < 0 ||
		    setresgid((gid_t)l->gid, (gid_t)l->gid, (gid_t)l->gid) < 0 ||
		    setresuid((uid_t)l->uid, (uid_t)l->uid, (uid_t)l->uid) < 0)
			_exit(122);
	}
	signal(SIGPIPE, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	execve(argv[0], argv, envp);
	_exit(126);
}

sb_err *sb_net_start(const sb_sandbox *sb, const sb_launch *l, int init_pid, int exit_rd, int log)
{
	sb_err *err = NULL;
	char *slirp = find_tool("slirp4netns");
	int userns = -1, outer = -1, netns = -1, ready[2] = {-1, -1}, devnull = -1;
	char **argv = NULL, **procs = NULL;
	if (!slirp)
		return sb_net_check();
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/ns/user", init_pid);
	if ((userns = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err = sb_err_sys(errno, "opening %s (lease %s)", path, sb->id);
		goto out;
	}
	/* bwrap's nested namespace, if any: the network namespace belongs to its parent */
	outer = ioctl(userns, NS_GET_PARENT);
	if (outer < 0 && errno != EPERM) {
		err = sb_err_sys(errno, "finding the user namespace of lease %s", sb->id);
		goto out;
	}
	if (outer < 0) {
		outer = userns;
		userns = -1;
	}
	snprintf(path, sizeof path, "/proc/%d/ns/net", init_pid);
	if ((netns = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err = sb_err_sys(errno, "opening %s (lease %s)", path, sb->id);
		goto out;
	}
	if (pipe2(ready, O_CLOEXEC) < 0 || (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
		err = sb_err_sys(errno, "pipes for the network of lease %s", sb->id);
		goto out;
	}
	int keep[] = {outer, netns, ready[1], exit_rd};
	char *a;
	sb_strv_push(&argv, slirp);
	sb_strv_push(&argv, "--configure");
	sb_strv_push(&argv, "--mtu=65520");
	sb_strv_push(&argv, "--disable-host-loopback");
	a = sb_strfmt("--ready-fd=%d", ready[1]);
	sb_strv_push(&argv, a);
	free(a);
	a = sb_strfmt("--exit-fd=%d", exit_rd);
	sb_strv_push(&argv, a);
	free(a);
	a = sb_strfmt("--userns-path=/proc/self/fd/%d", outer);
	sb_strv_push(&argv, a);
	free(a);
	sb_strv_push(&argv, "--netns-type=path");
	a = sb_strfmt("/proc/self/fd/%d", netns);
	sb_strv_push(&argv, a);
	free(a);
	sb_strv_push(&argv, "tap0");
	for (size_t i = 0; l->cgroups && l->cgroups[i]; i++) {
		char *p = sb_strfmt("%s/cgroup.procs", l->cgroups[i]);
		sb_strv_push(&procs, p);
		free(p);
	}
	const char *priv = NULL;
	struct stat st;
	if (l->drop_privs && stat("/dev/net/tun", &st) == 0 && (st.st_mode & 0006) != 0006) {
		static const char *const bases[] = {"/mnt", "/media", "/srv", "/tmp"};
		for (size_t i = 0; i < sizeof bases / sizeof bases[0] && !priv; i++)
			if (stat(bases[i], &st) == 0 && S_ISDIR(st.st_mode))
				priv = bases[i];
	}
	pid_t mid = fork();
	if (mid < 0) {
		err = sb_err_sys(errno, "fork for the network of lease %s", sb->id);
		goto out;
	}
	if (mid == 0) {
		if (setsid() < 0)
			_exit(120);
		pid_t g = fork();
		if (g == 0)
			helper_child(l, argv, procs, devnull, log, priv, keep, 4);
		_exit(g < 0 ? 119 : 0);
	}
	int ws = 0;
	while (waitpid(mid, &ws, 0) < 0 && errno == EINTR)
		;
	sb_close(&ready[1]);
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		err = sb_err_new(SB_E_SPAWN, "starting slirp4netns for lease %s: fork failed",
		                 sb->id);
		goto out;
	}
	struct pollfd pfd = {ready[0], POLLIN, 0};
	int rc;
	do
		rc = poll(&pfd, 1, NET_READY_TIMEOUT_MS);
	while (rc < 0 && errno == EINTR);
	char c = 0;
	if (rc <= 0 || read(ready[0], &c, 1) != 1)
		err = sb_err_new(SB_E_SPAWN,
		                 "the network of lease %s did not come up (slirp4netns %s; see "
		                 "%s/init.log)",
		                 sb->id, rc == 0 ? "timed out" : "exited", sb->run_dir);
out:
	if (userns >= 0)
		close(userns);
	if (outer >= 0)
		close(outer);
	if (netns >= 0)
		close(netns);
	sb_close(&ready[0]);
	sb_close(&ready[1]);
	sb_close(&devnull);
	sb_strv_free(argv);
	sb_strv_free(procs);
	free(slirp);
	return err;
}
