/* What sandboxed code can and cannot see or touch, checked from inside real sandboxes. */
#include "sbx.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *state;
static sb_sandbox *sb;

static int setup(void **s)
{
	(void)s;
	state = sbx_state_dir();
	sb = sbx_create(state, "iso", NULL);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
	return 0;
}

static long host_uid_of(int pid)
{
	char *status = NULL, path[64];
	snprintf(path, sizeof path, "/proc/%d", pid);
	status = sbt_read(path, "status", NULL);
	assert_non_null(status);
	char *uid = strstr(status, "\nUid:");
	assert_non_null(uid);
	long v = strtol(uid + 5, NULL, 10);
	free(status);
	return v;
}

static void sandboxed_processes_have_nonzero_host_uid(void **s)
{
	(void)s;
	char *argv[] = {"sleep", "30", NULL};
	sb_sandbox_exec_req req = {.argv = argv};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	int pids[64];
	size_t n = sbx_host_pids(sb, pids, 64);
	assert_true(n >= 2); /* sandbar-init and sleep */
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(host_uid_of(pids[i]), 0);
	SB_ASSERT_OK(sb_sandbox_exec_signal(sb, sb_sandbox_exec_id(x), SIGKILL));
	sbx_result r = {0};
	sbx_follow(x, &r);
	assert_int_equal(r.st.signal, SIGKILL);
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);
}

static void command_is_not_uid_zero_and_has_no_capabilities(void **s)
{
	(void)s;
	sbx_result r;
	sbx_sh(sb,
	       "id -u; id -g; id -un; id -gn; grep -E '^(CapEff|CapPrm|NoNewPrivs|Seccomp):' "
	       "/proc/self/status",
	       &r);
	assert_true(r.st.has_exit_code && r.st.exit_code == 0);
	const char *o = sb_buf_cstr(&r.out);
	assert_true(sb_str_has_prefix(o, "1000\n1000\nsandbox\nsandbox\n"));
	assert_non_null(strstr(o, "CapEff:\t0000000000000000"));
	assert_non_null(strstr(o, "CapPrm:\t0000000000000000"));
	assert_non_null(strstr(o, "NoNewPrivs:\t1"));
	assert_non_null(strstr(o, "Seccomp:\t2"));
	sbx_result_free(&r);
}

static void cannot_write_outside_workspace_home_and_tmp(void **s)
{
	(void)s;
	sbx_result r;
	sbx_sh(sb,
	       "for d in / /etc /usr /usr/bin /bin /opt /home /proc /dev /var /root; do "
	       "  if echo x > $d/sbx-probe-file 2>/dev/null; then echo WROTE $d; fi; "
	       "done; "
	       "echo a > /workspace/w && echo a > /home/sandbox/h && echo a > /tmp/t && "
	       "echo writable-ok; echo s > /dev/shm/s && echo shm-ok",
	       &r);
	const char *o = sb_buf_cstr(&r.out);
	assert_null(strstr(o, "WROTE"));
	assert_non_null(strstr(o, "writable-ok"));
	assert_non_null(strstr(o, "shm-ok"));
	sbx_result_free(&r);
	/* the writes landed in the lease's host-side directories */
	char *w = sbt_read(sb_sandbox_workspace_dir(sb), "w", NULL);
	char *h = sbt_read(sb_sandbox_home_dir(sb), "h", NULL);
	assert_string_equal(w, "a\n");
	assert_string_equal(h, "a\n");
	free(w);
	free(h);
}

static void cannot_see_host_processes(void **s)
{
	(void)s;
	sbx_result r;
	char *script = sb_strfmt("ls /proc | grep -c '^[0-9]'; test -e /proc/%d && echo SEEN; "
	                         "cat /proc/[0-9]*/comm 2>/dev/null | grep -c test_sandbox",
	                         (int)getpid());
	sbx_sh(sb, script, &r);
	free(script);
	int nprocs = atoi(sb_buf_cstr(&r.out));
	assert_true(nprocs >= 1 && nprocs < 10); /* init, sh, ls, grep: not the host's */
	assert_null(strstr(sb_buf_cstr(&r.out), "SEEN"));
	assert_true(sb_str_has_suffix(sb_buf_cstr(&r.out), "\n0\n"));
	sbx_result_free(&r);
}

static void only_loopback_without_network(void **s)
{
	(void)s;
	sbx_result r;
	sbx_sh(sb, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", &r);
	assert_string_equal(sb_buf_cstr(&r.out), "lo\n");
	sbx_result_free(&r);
}

static void network_lease_sees_host_interfaces(void **s)
{
	(void)s;
	sb_sandbox_opts o = {.network = true};
	sb_sandbox *net = sbx_create(state, "iso-net", &o);
	sbx_result r;
	sbx_sh(net, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | grep -vc '^lo$'", &r);
	assert_true(atoi(sb_buf_cstr(&r.out)) >= 1);
	sbx_result_free(&r);
	SB_ASSERT_OK(sb_sandbox_destroy(net));
}

static void cannot_read_host_root(void **s)
{
	(void)s;
	sbx_result r;
	sbx_sh(sb, "ls -a /root 2>&1; cat /root/.bashrc 2>&1; ls /var/lib 2>&1; echo end", &r);
	const char *o = sb_buf_cstr(&r.out);
	assert_non_null(strstr(o, "No such file or directory"));
	assert_null(strstr(o, ".bashrc\n")); /* no listing of host /root */
	sbx_result_free(&r);
}

static void spool_control_socket_and_init_are_unreachable(void **s)
{
	(void)s;
	sbx_install_probe(sb);
	char *argv[] = {"/workspace/probe", "isolation", NULL};
	sbx_result r;
	sbx_run(sb, argv, 60000, &r);
	const char *o = sb_buf_cstr(&r.out);
	assert_non_null(strstr(o, "done=1"));
	assert_non_null(strstr(o, "open_init_fd_dir=EACCES"));
	assert_non_null(strstr(o, "open_init_fd3=EACCES"));
	assert_non_null(strstr(o, "open_init_fd4=EACCES"));
	assert_non_null(strstr(o, "open_init_environ=EACCES"));
	assert_non_null(strstr(o, "open_init_mem=EACCES"));
	assert_non_null(strstr(o, "readlink_init_cwd=EACCES"));
	assert_non_null(strstr(o, "readlink_init_root=EACCES"));
	assert_non_null(strstr(o, "ptrace_attach_init=EPERM"));
	assert_non_null(strstr(o, "process_vm_readv_init=EPERM"));
	assert_non_null(strstr(o, "stdout_is=pipe"));
	assert_null(strstr(o, "found="));
	sbx_result_free(&r);
	/* kill(1, SIGKILL) from inside is ignored: init still answers */
	assert_true(sb_sandbox_alive(sb));
	/* and the spool on the host holds what init wrote, not what the command could forge */
	char **ids = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_list(sb, &ids));
	assert_true(sb_strv_len(ids) >= 1);
	sb_strv_free(ids);
}

static void other_lease_is_unreachable(void **s)
{
	(void)s;
	sb_sandbox *other = sbx_create(state, "iso-other", NULL);
	sbt_write_str(sb_sandbox_workspace_dir(other), "other-secret-marker", "secret\n");
	sbx_result r;
	sbx_sh(sb,
	       "find / -xdev -name 'other-secret-marker*' 2>/dev/null; "
	       "find /proc/[0-9]*/root/ -maxdepth 2 -name 'other-secret-marker' 2>/dev/null; "
	       "ls /workspace; echo end",
	       &r);
	assert_null(strstr(sb_buf_cstr(&r.out), "other-secret-marker"));
	assert_non_null(strstr(sb_buf_cstr(&r.out), "end"));
	sbx_result_free(&r);
	SB_ASSERT_OK(sb_sandbox_destroy(other));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sandboxed_processes_have_nonzero_host_uid),
	    cmocka_unit_test(command_is_not_uid_zero_and_has_no_capabilities),
	    cmocka_unit_test(cannot_write_outside_workspace_home_and_tmp),
	    cmocka_unit_test(cannot_see_host_processes),
	    cmocka_unit_test(only_loopback_without_network),
	    cmocka_unit_test(network_lease_sees_host_interfaces),
	    cmocka_unit_test(cannot_read_host_root),
	    cmocka_unit_test(spool_control_socket_and_init_are_unreachable),
	    cmocka_unit_test(other_lease_is_unreachable),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
