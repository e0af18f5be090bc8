/* One lease keeps its namespaces between execs: /tmp contents and background processes. */
#include "sbx.h"

#include <string.h>

static void tmp_and_background_process_persist_between_execs(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox *sb = sbx_create(state, "persist", NULL);
	sbx_result r;
	sbx_sh(sb, "echo kept > /tmp/f; sleep 300 > /dev/null 2>&1 & echo $! > /tmp/bg; echo ok",
	       &r);
	assert_string_equal(sb_buf_cstr(&r.out), "ok\n");
	assert_true(r.st.has_exit_code && r.st.exit_code == 0);
	sbx_result_free(&r);
	/* (the background shell may still be on its way to exec'ing sleep: give it a moment) */
	sbx_sh(sb,
	       "cat /tmp/f; p=$(cat /tmp/bg); kill -0 $p && echo alive; "
	       "for i in $(seq 100); do c=$(tr '\\0' ' ' < /proc/$p/cmdline); "
	       "[ \"$c\" = 'sleep 300 ' ] && break; sleep 0.02; done; printf '%s' \"$c\"",
	       &r);
	assert_string_equal(sb_buf_cstr(&r.out), "kept\nalive\nsleep 300 ");
	sbx_result_free(&r);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tmp_and_background_process_persist_between_execs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
