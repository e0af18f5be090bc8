/* esc-probe: runs INSIDE a sandbox during the escape tests and tries, with raw system calls, to
 * get out: through /proc roots, with privileged calls, through the terminal, or by signalling
 * processes it should not reach. One "name=result" line per attempt: "ok" when the call
 * succeeded (an escape), else the errno name. Static and unsanitized, like sbx-probe.
 *
 *   esc-probe proc <host-path>...   open each host path through /proc/{1,self,<pid>}/root|cwd
 *   esc-probe privileged            mount, unshare, setns, keyctl, bpf, perf, ptrace of init
 *   esc-probe tty                   what fd 0-2 are; TIOCSTI on them; open /dev/tty
 *   esc-probe signal <pid>...       kill/ptrace each pid, then kill(-1, SIGKILL)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long rc)
{
	if (rc >= 0)
		printf("%s=ok\n", name);
	else
		printf("%s=%s\n", name, strerrorname_np(errno));
	fflush(stdout);
}

static void try_open(const char *label, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char name[4200];
	snprintf(name, sizeof name, "open %.16s %.4096s", label, path);
	report(name, fd);
	if (fd >= 0)
		close(fd);
}

static void proc_checks(int argc, char **argv)
{
	static const char *const via[] = {"root", "cwd"};
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *de;
	char pids[256][32];
	size_t np = 0;
	strcpy(pids[np++], "self");
	strcpy(pids[np++], "thread-self");
	while ((de = readdir(d)) && np < 256)
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
			snprintf(pids[np++], sizeof pids[0], "%.20s", de->d_name);
	closedir(d);
	for (int a = 0; a < argc; a++)
		for (size_t p = 0; p < np; p++)
			for (size_t v = 0; v < 2; v++) {
				char path[8192];
				/* /proc/<pid>/root/<abs>, and climbing out of cwd with ".." */
				int n = snprintf(path, sizeof path, "/proc/%s/%s%s", pids[p],
				                 via[v], argv[a]);
				if (n > 0 && (size_t)n < sizeof path)
					try_open("via", path);
				n = snprintf(path, sizeof path,
				             "/proc/%s/%s/../../../../../../..%s", pids[p], via[v],
				             argv[a]);
				if (n > 0 && (size_t)n < sizeof path)
					try_open("climb", path);
			}
	for (int a = 0; a < argc; a++)
		try_open("direct", argv[a]);
	/* a chroot back out needs privileges it must not have */
	report("chroot_proc1_root", chroot("/proc/1/root"));
	printf("done=1\n");
}

static void privileged_checks(void)
{
	report("mount_tmpfs", mount("none", "/tmp", "tmpfs", 0, NULL));
	report("mount_bind_root", mount("/", "/tmp", NULL, MS_BIND, NULL));
	report("mount_proc", mount("proc", "/tmp", "proc", 0, NULL));
	report("unshare_user", unshare(CLONE_NEWUSER));
	report("unshare_mount", unshare(CLONE_NEWNS));
	report("unshare_pid", unshare(CLONE_NEWPID));
	report("unshare_net", unshare(CLONE_NEWNET));
	int mnt = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
	report("open_init_mnt_ns", mnt);
	report("setns_init_mnt", syscall(SYS_setns, mnt, 0));
	int self_user = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
	report("setns_own_user", syscall(SYS_setns, self_user, CLONE_NEWUSER));
	report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
	report("add_key", syscall(SYS_add_key, "user", "k", "v", 1, -3));
	report("bpf", syscall(SYS_bpf, 0, NULL, 0));
	report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	report("ptrace_attach_init", ptrace(PTRACE_ATTACH, 1, NULL, NULL));
	report("ptrace_seize_init", ptrace(PTRACE_SEIZE, 1, NULL, NULL));
	report("kill_init", kill(1, SIGKILL));
	report("chroot", chroot("/tmp"));
	report("mknod_char", mknod("/tmp/esc-null", S_IFCHR | 0666, makedev(1, 3)));
	report("sethostname", sethostname("escaped", 7));
	report("setuid_0", setuid(0));
	report("open_proc_kcore", open("/proc/kcore", O_RDONLY | O_CLOEXEC));
	report("open_dev_mem", open("/dev/mem", O_RDONLY | O_CLOEXEC));
	report("open_sysrq", open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC));
	/* the classic container escapes: host-wide helpers the kernel runs as root */
	report("open_core_pattern", open("/proc/sys/kernel/core_pattern", O_WRONLY | O_CLOEXEC));
	report("open_modprobe", open("/proc/sys/kernel/modprobe", O_WRONLY | O_CLOEXEC));
	report("open_uevent_helper", open("/sys/kernel/uevent_helper", O_WRONLY | O_CLOEXEC));
	report("open_cgroup_release_agent",
	       open("/sys/fs/cgroup/release_agent", O_WRONLY | O_CLOEXEC));
	printf("done=1\n");
}

static void tty_checks(void)
{
	for (int fd = 0; fd < 3; fd++) {
		char link[64], buf[256];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = '\0';
		printf("fd%d_is=%s\n", fd, buf);
		printf("fd%d_isatty=%d\n", fd, isatty(fd));
		char c = 'x';
		char name[32];
		snprintf(name, sizeof name, "tiocsti_fd%d", fd);
		report(name, ioctl(fd, TIOCSTI, &c));
	}
	int t = open("/dev/tty", O_RDWR | O_CLOEXEC);
	report("open_dev_tty", t);
	if (t >= 0) {
		char c = 'x';
		report("tiocsti_dev_tty", ioctl(t, TIOCSTI, &c));
	}
	report("setsid", setsid());
	printf("done=1\n");
}

static void signal_checks(int argc, char **argv)
{
	for (int a = 0; a < argc; a++) {
		long pid = strtol(argv[a], NULL, 10);
		char name[64];
		snprintf(name, sizeof name, "kill_%ld", pid);
		report(name, kill((pid_t)pid, SIGKILL));
		snprintf(name, sizeof name, "ptrace_%ld", pid);
		report(name, ptrace(PTRACE_ATTACH, (pid_t)pid, NULL, NULL));
	}
	printf("done=1\n");
	fflush(stdout);
	/* everything this process may signal: must stay inside its own sandbox */
	kill(-1, SIGKILL);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "proc"))
		proc_checks(argc - 2, argv + 2);
	else if (argc > 1 && !strcmp(argv[1], "privileged"))
		privileged_checks();
	else if (argc > 1 && !strcmp(argv[1], "tty"))
		tty_checks();
	else if (argc > 1 && !strcmp(argv[1], "signal"))
		signal_checks(argc - 2, argv + 2);
	else
		return 2;
	return 0;
}
