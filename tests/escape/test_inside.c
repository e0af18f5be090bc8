/* Sandboxed code trying to get out, from inside real sandboxes with esc-probe's raw system
 * calls: /proc/<pid>/root and cwd tricks that would reach the host's file system, privileged
 * calls (mount, unshare, setns, keyctl, bpf, perf_event_open, ptrace of init), the terminal
 * (an inherited tty and TIOCSTI), signals and ptrace aimed at another lease's processes, and
 * the host paths (the state directory, another lease's workspace and spool, the control socket,
 * /root, /home) that must simply not exist inside.
 */
#include "sbx.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *state;
static sb_sandbox *sb, *other;
static char *marker_dir; /* host directory with a marker file, outside every sandbox */
static char *root_marker;

static int setup(void **s)
{
	(void)s;
	/* an inherited terminal: make the test's own stdin a pty before the sandboxes start, so
	 * a leak of it into the sandbox would show */
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0) {
		int t = open(ptsname(m), O_RDWR | O_NOCTTY);
		if (t >= 0) {
			dup2(t, 0);
			close(t);
		}
	}
	state = sbx_state_dir();
	sb = sbx_create(state, "esc-in", NULL);
	other = sbx_create(state, "esc-other", NULL);
	marker_dir = sbt_mkdtemp("esc-marker");
	sbt_write_str(marker_dir, "host-marker", "host\n");
	assert_int_equal(
	    sbt_sh("chmod 755 '%s' && chmod 644 '%s/host-marker'", marker_dir, marker_dir), 0);
	root_marker = sb_strfmt("/root/.sandbar-escape-marker-%d", (int)getpid());
	assert_int_equal(sbt_sh("echo root > '%s' && chmod 644 '%s'", root_marker, root_marker), 0);
	sbt_write_str(sb_sandbox_workspace_dir(other), "other-secret", "other\n");
	char *dst = sb_strfmt("%s/esc-probe", sb_sandbox_workspace_dir(sb));
	assert_int_equal(
	    sbt_sh("cp '%s/esc-probe' '%s' && chmod 755 '%s'", SB_TEST_BUILD_DIR, dst, dst), 0);
	free(dst);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	unlink(root_marker);
	free(root_marker);
	sbt_rmtree(marker_dir);
	SB_ASSERT_OK(sb_sandbox_destroy(other));
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
	return 0;
}

static void probe(sb_sandbox *in, char **args, sbx_result *r)
{
	char *argv[64] = {"/workspace/esc-probe"};
	size_t n = 1;
	for (size_t i = 0; args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	sbx_run(in, argv, 60000, r);
	if (!strstr(sb_buf_cstr(&r->out), "done=1"))
		fail_msg("esc-probe did not finish: %s / %s", sb_buf_cstr(&r->out),
		         sb_buf_cstr(&r->err));
}

/* No line of the probe's report says "=ok", except those named in allowed. */
static void assert_nothing_ok(const char *report, const char *const *allowed)
{
	char *copy = sb_xstrdup(report), *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!sb_str_has_suffix(l, "=ok"))
			continue;
		bool fine = false;
		for (size_t i = 0; allowed && allowed[i]; i++)
			fine = fine || sb_str_has_prefix(l, allowed[i]);
		if (!fine)
			fail_msg("escape: %s", l);
	}
	free(copy);
}

static void expect(const char *report, const char *line)
{
	if (!strstr(report, line)) {
		print_error("%s\n", report);
		fail_msg("expected \"%s\" in the report above", line);
	}
}

static void proc_roots_do_not_reach_host_files(void **s)
{
	(void)s;
	char *marker = sbt_path(marker_dir, "host-marker");
	char *other_ws = sb_strfmt("%s/other-secret", sb_sandbox_workspace_dir(other));
	char *other_spool = sb_strfmt("%s/leases/esc-other/spool", state);
	char *ctl = sb_strfmt("%s/leases/esc-in/run", state);
	char *db = sb_strfmt("%s/leases", state);
	char *args[] = {"proc", marker, other_ws, other_spool, ctl, db, root_marker, NULL};
	sbx_result r;
	probe(sb, args, &r);
	const char *o = sb_buf_cstr(&r.out);
	assert_nothing_ok(o, NULL);
	/* it did try through init's root and its own */
	char *line = sb_strfmt("open via /proc/1/root%s=", marker);
	expect(o, line);
	free(line);
	expect(o, "chroot_proc1_root=");
	sbx_result_free(&r);
	free(marker);
	free(other_ws);
	free(other_spool);
	free(ctl);
	free(db);
}

static void privileged_calls_are_refused(void **s)
{
	(void)s;
	char *args[] = {"privileged", NULL};
	sbx_result r;
	probe(sb, args, &r);
	const char *o = sb_buf_cstr(&r.out);
	/* opening a namespace file is harmless (joining it is not); kill(1) "succeeds" but a pid
	 * namespace's init ignores it (checked below) */
	static const char *const allowed[] = {"open_init_mnt_ns=", "kill_init=", NULL};
	assert_nothing_ok(o, allowed);
	static const char *const tried[] = {"mount_tmpfs=",
	                                    "mount_bind_root=",
	                                    "mount_proc=",
	                                    "unshare_user=",
	                                    "unshare_mount=",
	                                    "unshare_pid=",
	                                    "unshare_net=",
	                                    "setns_init_mnt=",
	                                    "setns_own_user=",
	                                    "keyctl=",
	                                    "add_key=",
	                                    "bpf=",
	                                    "perf_event_open=",
	                                    "ptrace_attach_init=",
	                                    "ptrace_seize_init=",
	                                    "chroot=",
	                                    "mknod_char=",
	                                    "sethostname=",
	                                    "setuid_0=",
	                                    "open_proc_kcore=",
	                                    "open_dev_mem=",
	                                    "open_sysrq=",
	                                    "open_core_pattern=",
	                                    "open_modprobe=",
	                                    "open_uevent_helper=",
	                                    "open_cgroup_release_agent="};
	for (size_t i = 0; i < sizeof tried / sizeof tried[0]; i++)
		expect(o, tried[i]);
	sbx_result_free(&r);
	/* kill(1) from inside left init alive */
	assert_true(sb_sandbox_alive(sb));
}

static void no_terminal_reaches_the_sandbox(void **s)
{
	(void)s;
	assert_true(isatty(0)); /* setup gave this process a tty as stdin */
	char *args[] = {"tty", NULL};
	sbx_result r;
	probe(sb, args, &r);
	const char *o = sb_buf_cstr(&r.out);
	/* setsid may succeed: a new session without a terminal changes nothing */
	static const char *const allowed[] = {"setsid=", NULL};
	assert_nothing_ok(o, allowed);
	expect(o, "fd0_is=/dev/null\n");
	expect(o, "fd0_isatty=0\n");
	expect(o, "fd1_isatty=0\n");
	expect(o, "fd2_isatty=0\n");
	assert_null(strstr(o, "/dev/pts"));
	sbx_result_free(&r);
}

static void another_lease_cannot_be_signalled_or_traced(void **s)
{
	(void)s;
	char *argv[] = {"sleep", "60", NULL};
	sb_sandbox_exec_req req = {.argv = argv};
	sb_sandbox_exec *victim = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(other, &req, &victim));
	int pids[32];
	size_t n = sbx_host_pids(other, pids, 32);
	assert_true(n >= 2);
	/* aim at the other lease's host pids (and the same numbers as seen inside: 1, 2, ...) */
	char *args[48] = {"signal"};
	size_t a = 1;
	char bufs[40][16];
	for (size_t i = 0; i < n && a < 36; i++) {
		snprintf(bufs[a], sizeof bufs[a], "%d", pids[i]);
		args[a] = bufs[a];
		a++;
	}
	args[a++] = "1";
	args[a++] = "2";
	args[a] = NULL;
	sbx_result r;
	probe(sb, args, &r);
	const char *o = sb_buf_cstr(&r.out);
	/* inside its own namespace pid 2.. may be its own processes: only the other lease's
	 * survival is the verdict */
	for (size_t i = 0; i < n; i++) {
		char k[64];
		snprintf(k, sizeof k, "kill_%d=ok", pids[i]);
		assert_null(strstr(o, k));
		snprintf(k, sizeof k, "ptrace_%d=ok", pids[i]);
		assert_null(strstr(o, k));
	}
	sbx_result_free(&r);
	/* the other lease's command and init are untouched */
	sb_sandbox_exec_status st;
	SB_ASSERT_OK(sb_sandbox_exec_status_of(victim, &st));
	assert_true(st.running);
	assert_true(sb_sandbox_alive(other));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(kill(pids[i], 0), 0);
	SB_ASSERT_OK(sb_sandbox_exec_signal(other, sb_sandbox_exec_id(victim), SIGKILL));
	sbx_result done = {0};
	sbx_follow(victim, &done);
	sbx_result_free(&done);
	sb_sandbox_exec_free(victim);
	/* and our own sandbox survived its kill(-1) as well */
	assert_true(sb_sandbox_alive(sb));
}

static void host_paths_are_invisible(void **s)
{
	(void)s;
	char *script = sb_strfmt(
	    "ls -A /home; "
	    "for p in '%s' '%s' '%s/leases' '%s/leases/esc-in/run' '%s' /root/.bashrc "
	    "/var/lib/sandbar /run/sandbar; do test -e \"$p\" && echo \"VISIBLE $p\"; done; "
	    "find / -xdev \\( -name 'ctl.sock' -o -name 'sandbar.db' -o -name 'lease.json' "
	    "-o -name 'other-secret' -o -name 'host-marker' \\) 2>/dev/null | sed 's/^/FOUND /'; "
	    "echo end",
	    state, root_marker, state, state, marker_dir);
	sbx_result r;
	sbx_sh(sb, script, &r);
	free(script);
	const char *o = sb_buf_cstr(&r.out);
	assert_true(sb_str_has_prefix(o, "sandbox\n"));
	assert_null(strstr(o, "VISIBLE"));
	assert_null(strstr(o, "FOUND"));
	assert_non_null(strstr(o, "end\n"));
	sbx_result_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(proc_roots_do_not_reach_host_files),
	    cmocka_unit_test(privileged_calls_are_refused),
	    cmocka_unit_test(no_terminal_reaches_the_sandbox),
	    cmocka_unit_test(another_lease_cannot_be_signalled_or_traced),
	    cmocka_unit_test(host_paths_are_invisible),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
