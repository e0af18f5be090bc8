/* The seccomp filter and no_new_privs, exercised by raw system calls from inside a sandbox. */
#include "sbx.h"

#include <string.h>

static void denied_system_calls_fail_inside(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox *sb = sbx_create(state, "seccomp", NULL);
	sbx_install_probe(sb);
	char *argv[] = {"/workspace/probe", "seccomp", NULL};
	sbx_result r;
	sbx_run(sb, argv, 60000, &r);
	const char *o = sb_buf_cstr(&r.out);
	static const char *const eperm[] = {
	    "unshare_user",
	    "clone_newuser",
	    "mount",
	    "umount2",
	    "pivot_root",
	    "ptrace",
	    "kexec_load",
	    "init_module",
	    "finit_module",
	    "delete_module",
	    "bpf",
	    "perf_event_open",
	    "keyctl",
	    "add_key",
	    "request_key",
	    "userfaultfd",
	    "setns",
	    "reboot",
	    "swapon",
	    "swapoff",
	    "open_by_handle_at",
	    "prlimit_init",
	    "io_uring_setup",
	};
	for (size_t i = 0; i < sizeof eperm / sizeof eperm[0]; i++) {
		char *want = sb_strfmt("\n%s=EPERM\n", eperm[i]);
		char *text = sb_strfmt("\n%s", o);
		if (!strstr(text, want))
			print_error("expected %s in:\n%s\n", want + 1, o);
		assert_non_null(strstr(text, want));
		free(want);
		free(text);
	}
	/* clone3 cannot be filtered by flags: ENOSYS makes libc fall back to clone */
	assert_non_null(strstr(o, "clone3=ENOSYS"));
	sbx_result_free(&r);

	/* and the tools people would reach for fail too */
	sbx_sh(sb,
	       "unshare -U true 2>&1 && echo UNSHARED; unshare -r true 2>&1 && echo UNSHARED; "
	       "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m 2>&1 && echo MOUNTED; echo end",
	       &r);
	assert_null(strstr(sb_buf_cstr(&r.out), "UNSHARED"));
	assert_null(strstr(sb_buf_cstr(&r.out), "MOUNTED"));
	assert_non_null(strstr(sb_buf_cstr(&r.out), "end"));
	sbx_result_free(&r);
	/* ordinary work still runs: fork/exec through clone, threads */
	sbx_sh(sb, "(echo sub) && echo $(echo nested) && ls / >/dev/null && echo fine", &r);
	assert_string_equal(sb_buf_cstr(&r.out), "sub\nnested\nfine\n");
	sbx_result_free(&r);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(denied_system_calls_fail_inside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
