/* The one mapping from how a command ended to the exit status sandbar reports (sb_exit_status and
 * its wrappers): the table itself, and real local-runner results and start failures through it,
 * so a runner that stops telling "not found" from "cannot start" by errno fails here. */
#include "rt.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void table_maps_each_ending(void **state)
{
	(void)state;
	static const struct {
		sb_exit_how how;
		int want;
	} cases[] = {
	    {{.has_exit_code = true, .exit_code = 0}, 0},
	    {{.has_exit_code = true, .exit_code = 3}, 3},
	    {{.has_exit_code = true, .exit_code = 255}, 255},
	    /* A timeout wins over whatever the kill left behind. */
	    {{.timed_out = true, .signo = SIGKILL}, SB_EXIT_TIMEOUT},
	    {{.timed_out = true, .has_exit_code = true, .exit_code = 1}, SB_EXIT_TIMEOUT},
	    {{.signo = SIGTERM}, 128 + SIGTERM},
	    {{.signo = SIGKILL}, 128 + SIGKILL},
	    {{.signo = SIGINT}, 130},
	    /* Neither an exit code nor a signal: sandbar cannot say, so it failed. */
	    {{0}, SB_EXIT_FAILURE},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(sb_exit_status(&cases[i].how), cases[i].want);
	assert_int_equal(SB_EXIT_TIMEOUT, 124);
	assert_int_equal(SB_EXIT_FAILURE, 125);
	assert_int_equal(SB_EXIT_NOEXEC, 126);
	assert_int_equal(SB_EXIT_NOTFOUND, 127);
	assert_int_equal(SB_EXIT_SIGNAL_BASE, 128);
}

static void start_errors_map_by_code_and_errno_not_by_text(void **state)
{
	(void)state;
	assert_int_equal(sb_exit_status_for_start_error(NULL), 0);
	sb_err *e = sb_err_new(SB_E_SPAWN, "failed to start: command not found in PATH");
	assert_int_equal(sb_exit_status_for_start_error(e), SB_EXIT_NOEXEC); /* text is ignored */
	e->sys_errno = ENOENT;
	assert_int_equal(sb_exit_status_for_start_error(e), SB_EXIT_NOTFOUND);
	e->sys_errno = EACCES;
	assert_int_equal(sb_exit_status_for_start_error(e), SB_EXIT_NOEXEC);
	sb_err_free(e);
	e = sb_err_new(SB_E_IO, "not found in PATH");
	e->sys_errno = ENOENT;
	assert_int_equal(sb_exit_status_for_start_error(e), SB_EXIT_FAILURE);
	sb_err_free(e);
}

static int status_of(sb_runner *r, const char *script)
{
	sb_exec_result res;
	rt_sh(r, script, &res);
	int rc = sb_exec_result_exit_status(&res);
	sb_exec_result_deinit(&res);
	return rc;
}

static void local_results_map_through_the_table(void **state)
{
	(void)state;
	sb_runner *r = sb_local_runner_new(NULL);
	assert_int_equal(status_of(r, "exit 0"), 0);
	assert_int_equal(status_of(r, "exit 42"), 42);
	assert_int_equal(status_of(r, "kill -TERM $$"), 128 + SIGTERM);
	assert_int_equal(status_of(r, "kill -KILL $$"), 128 + SIGKILL);

	sb_exec_request req = {.argv = RT_ARGV("sleep", "30"), .timeout_ms = 100};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(r, &req, NULL, NULL, &res));
	assert_int_equal(sb_exec_result_exit_status(&res), SB_EXIT_TIMEOUT);
	sb_exec_result_deinit(&res);
	sb_runner_free(r);
}

static int start_status(sb_runner *r, char *const *argv, const char *cwd)
{
	sb_exec_request req = {.argv = argv, .cwd = cwd};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(r, &req, NULL, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_SPAWN);
	int rc = sb_exit_status_for_start_error(err);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
	return rc;
}

static void local_start_failures_say_not_found_or_cannot_start(void **state)
{
	(void)state;
	sb_runner *r = sb_local_runner_new(NULL);
	char *dir = rt_tmpdir();
	sbt_write(dir, "plain", "echo hi\n", 8, 0644);
	assert_int_equal(start_status(r, RT_ARGV("sandbar-no-such-command-xyz"), dir),
	                 SB_EXIT_NOTFOUND);
	assert_int_equal(start_status(r, RT_ARGV("./missing"), dir), SB_EXIT_NOTFOUND);
	assert_int_equal(start_status(r, RT_ARGV("./plain"), dir), SB_EXIT_NOEXEC);
	char *gone = sbt_path(dir, "gone");
	assert_int_equal(start_status(r, RT_ARGV("true"), gone), SB_EXIT_NOEXEC);
	free(gone);
	rt_rmdir(dir);
	sb_runner_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(table_maps_each_ending),
	    cmocka_unit_test(start_errors_map_by_code_and_errno_not_by_text),
	    cmocka_unit_test(local_results_map_through_the_table),
	    cmocka_unit_test(local_start_failures_say_not_found_or_cannot_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
