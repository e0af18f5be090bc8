/* The seccomp filter every sandboxed command runs under, compiled once with libseccomp and
 * handed to sandbar-init as raw BPF (so the init binary needs no libseccomp).
 *
 * Default allow; denied with EPERM: mounting (old and new mount API), ptrace and cross-process
 * memory access, kexec, kernel modules, bpf, perf_event_open, keyrings, userfaultfd, namespace
 * changes (unshare, setns, clone with CLONE_NEWUSER), reboot, swap, open_by_handle_at, and
 * prlimit on any process but oneself (sandbar-init runs under the same uid). clone3 answers
 * ENOSYS so that libc falls back to clone, whose flags the filter can inspect.
 */
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *const denied[] = {
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "io_uring_setup", /* a kernel attack surface of its own, and it bypasses the filter */
    "io_uring_enter",
    "io_uring_register",
    "unshare",
    "setns",
    "reboot",
    "swapon",
    "swapoff",
    "open_by_handle_at",
    "name_to_handle_at",
    "acct",
    "quotactl",
    "lookup_dcookie",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char *bpf;
static size_t bpf_len;
static char *bpf_error;

static void compile(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = 0, memfd = -1;
	const char *what = "seccomp_init";
	if (!ctx) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture (e.g. iopl) */
		what = denied[i];
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0)
			goto out;
	}
	what = "clone";
	const struct scmp_arg_cmp newuser = {
	    .arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = CLONE_NEWUSER, .datum_b = CLONE_NEWUSER};
	if ((rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
	                                 &newuser)) < 0)
		goto out;
	what = "clone3";
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
		goto out;
	what = "prlimit64";
	const struct scmp_arg_cmp other_pid = {
	    .arg = 0, .op = SCMP_CMP_NE, .datum_a = 0, .datum_b = 0};
	if ((rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(prlimit64), 1,
	                                 &other_pid)) < 0)
		goto out;
	what = "export";
	memfd = memfd_create("sandbar-seccomp-build", MFD_CLOEXEC);
	if (memfd < 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = seccomp_export_bpf(ctx, memfd)) < 0)
		goto out;
	off_t size = lseek(memfd, 0, SEEK_END);
	if (size <= 0) {
		rc = -EIO;
		goto out;
	}
	bpf_len = (size_t)size;
	bpf = sb_xmalloc(bpf_len);
	size_t got = 0;
	while (got < bpf_len) {
		ssize_t n = pread(memfd, bpf + got, bpf_len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			free(bpf);
			bpf = NULL;
			goto out;
		}
		got += (size_t)n;
	}
out:
	if (rc < 0)
		bpf_error = sb_strfmt("building the seccomp filter (%s): %s", what, strerror(-rc));
	if (memfd >= 0)
		close(memfd);
	if (ctx)
		seccomp_release(ctx);
}

sb_err *sb_seccomp_memfd(int *fd_out)
{
	pthread_once(&once, compile);
	if (!bpf)
		return sb_err_new(SB_E_UNSUPPORTED, "%s",
		                  bpf_error ? bpf_error : "no seccomp filter");
	int fd = memfd_create("sandbar-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return sb_err_sys(errno, "memfd_create for the seccomp filter");
	sb_err *err = sb_write_all(fd, bpf, bpf_len);
	if (!err &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		err = sb_err_sys(errno, "sealing the seccomp filter");
	if (err) {
		close(fd);
		return err;
	}
	*fd_out = fd;
	return NULL;
}
