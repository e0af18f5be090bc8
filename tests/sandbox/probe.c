/* sbx-probe: runs INSIDE a sandbox during the tests and reports, one "name=result" line each,
 * what happened when it tried things sandboxed code must not be able to do. "ok" means the
 * call succeeded; otherwise the errno name. Linked statically, so it also runs on a bare
 * configured root file system. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *name, long rc)
{
	if (rc >= 0)
		printf("%s=ok\n", name);
	else
		printf("%s=%s\n", name, strerrorname_np(errno));
	fflush(stdout);
}

static void seccomp_checks(void)
{
	report("unshare_user", unshare(CLONE_NEWUSER));
	long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0);
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid((pid_t)pid, NULL, 0);
	report("clone_newuser", pid);
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.exit_signal = SIGCHLD;
	pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid((pid_t)pid, NULL, 0);
	report("clone3", pid);
	report("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
	report("umount2", umount2("/tmp", MNT_DETACH));
	report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
	report("ptrace", ptrace(PTRACE_TRACEME, 0, NULL, NULL));
	report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
	report("init_module", syscall(SYS_init_module, NULL, 0, ""));
	report("finit_module", syscall(SYS_finit_module, -1, "", 0));
	report("delete_module", syscall(SYS_delete_module, "x", 0));
	report("bpf", syscall(SYS_bpf, 0, NULL, 0));
	report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
	report("add_key", syscall(SYS_add_key, "user", "k", "v", 1, -3));
	report("request_key", syscall(SYS_request_key, "user", "k", NULL, 0));
	report("userfaultfd", syscall(SYS_userfaultfd, 0));
	/* io_uring would run system calls the filter never sees */
	unsigned char params[120] = {0}; /* struct io_uring_params */
	report("io_uring_setup", syscall(SYS_io_uring_setup, 4, params));
	report("setns", syscall(SYS_setns, 0, 0));
	report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
	report("swapon", syscall(SYS_swapon, "/tmp/x", 0));
	report("swapoff", syscall(SYS_swapoff, "/tmp/x"));
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
	struct rlimit rl = {1, 1};
	report("prlimit_init", syscall(SYS_prlimit64, 1, RLIMIT_NOFILE, &rl, NULL));
}

/* Look for the host-side state anywhere in the visible file system. */
static void hunt(const char *dir, int depth)
{
	if (depth > 12)
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", strcmp(dir, "/") ? dir : "", de->d_name);
		if (!strcmp(path, "/proc") || !strcmp(path, "/sys") || !strcmp(path, "/dev"))
			continue;
		if (!strcmp(de->d_name, "ctl.sock") || !strcmp(de->d_name, "status.json") ||
		    !strcmp(de->d_name, "lease.json") || !strcmp(de->d_name, "spool") ||
		    strstr(de->d_name, "sbx-state-"))
			printf("found=%s\n", path);
		struct stat st;
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			hunt(path, depth + 1);
	}
	closedir(d);
}

static void isolation_checks(void)
{
	report("open_init_fd_dir", open("/proc/1/fd", O_RDONLY | O_DIRECTORY));
	report("open_init_fd3", open("/proc/1/fd/3", O_RDONLY));
	report("open_init_fd4", open("/proc/1/fd/4", O_RDONLY | O_DIRECTORY));
	report("open_init_environ", open("/proc/1/environ", O_RDONLY));
	report("open_init_mem", open("/proc/1/mem", O_RDONLY));
	char buf[256];
	report("readlink_init_cwd", readlink("/proc/1/cwd", buf, sizeof buf));
	report("readlink_init_root", readlink("/proc/1/root", buf, sizeof buf));
	report("ptrace_attach_init", ptrace(PTRACE_ATTACH, 1, NULL, NULL));
	char x;
	struct iovec local = {&x, 1}, remote = {(void *)0x400000, 1};
	report("process_vm_readv_init", process_vm_readv(1, &local, 1, &remote, 1, 0));
	ssize_t n = readlink("/proc/self/fd/1", buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = '\0';
	printf("stdout_is=%s\n", strncmp(buf, "pipe:", 5) == 0 ? "pipe" : buf);
	report("kill_init", kill(1, SIGKILL));
	hunt("/", 0);
	printf("done=1\n");
}

/* In a sandbox on a configured root file system: what is there and what is not. */
static void rootfs_checks(void)
{
	static const char *const paths[] = {"/usr/bin/sh",   "/etc/marker", "/workspace",
	                                    "/home/sandbox", "/tmp",        "/proc/self",
	                                    "/root"};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		printf("%s=%s\n", paths[i], access(paths[i], F_OK) == 0 ? "present" : "absent");
	FILE *f = fopen("/etc/marker", "r");
	char line[128] = "";
	if (f) {
		if (!fgets(line, sizeof line, f))
			line[0] = '\0';
		fclose(f);
	}
	printf("marker=%s", line);
	int fd = open("/etc/x", O_WRONLY | O_CREAT, 0644);
	report("write_etc", fd);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "seccomp"))
		seccomp_checks();
	else if (argc > 1 && !strcmp(argv[1], "isolation"))
		isolation_checks();
	else if (argc > 1 && !strcmp(argv[1], "rootfs"))
		rootfs_checks();
	else
		return 2;
	return 0;
}
