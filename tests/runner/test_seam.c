/* The runner seam itself: request validation before any runner sees a request, result helpers,
 * signal names, capabilities, and runners without native file transfer. */
#include "rt.h"

#include <signal.h>
#include <string.h>

static void expect_invalid(sb_runner *r, const sb_exec_request *req, sb_errcode code,
                           const char *fragment)
{
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(r, req, NULL, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, code);
	if (!strstr(err->msg, fragment))
		print_error("message \"%s\" lacks \"%s\"\n", err->msg, fragment);
	assert_non_null(strstr(err->msg, fragment));
	assert_int_equal(res.pid, 0);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
}

static void invalid_requests_are_refused_before_running(void **state)
{
	(void)state;
	sb_runner *r = sb_local_runner_new(NULL);
	sb_exec_request req = {0};
	expect_invalid(r, &req, SB_E_INVAL, "argv must name a command");
	req.argv = RT_ARGV("");
	expect_invalid(r, &req, SB_E_INVAL, "argv must name a command");
	req.argv = RT_ARGV("true");
	req.cwd = "";
	expect_invalid(r, &req, SB_E_INVAL, "cwd is empty");
	req.cwd = NULL;
	req.env = RT_ARGV("NOEQUALS");
	expect_invalid(r, &req, SB_E_INVAL, "\"NOEQUALS\" is not KEY=VALUE");
	req.env = RT_ARGV("=value");
	expect_invalid(r, &req, SB_E_INVAL, "is not KEY=VALUE");
	req.env = NULL;
	req.stdin_len = 3;
	req.stdin_data = "abc";
	expect_invalid(r, &req, SB_E_INVAL, "has_stdin is false");
	req.has_stdin = true;
	req.stdin_data = NULL;
	expect_invalid(r, &req, SB_E_INVAL, "stdin_data is NULL");
	req = (sb_exec_request){.argv = RT_ARGV("true"), .timeout_ms = -1};
	expect_invalid(r, &req, SB_E_INVAL, "timeout_ms -1 is negative");
	req = (sb_exec_request){.argv = RT_ARGV("true"), .grace_ms = -5};
	expect_invalid(r, &req, SB_E_INVAL, "grace_ms -5 is negative");

	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(NULL, &req, NULL, NULL, &res);
	assert_non_null(err);
	sb_err_free(err);
	err = sb_runner_execute(r, NULL, NULL, NULL, &res);
	assert_non_null(err);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
	sb_runner_free(r);
}

static void result_ok_needs_exit_zero_no_timeout_no_transport_error(void **state)
{
	(void)state;
	sb_exec_result r;
	sb_exec_result_init(&r);
	assert_false(sb_exec_result_ok(&r)); /* no exit code */
	r.has_exit_code = true;
	assert_true(sb_exec_result_ok(&r));
	r.timed_out = true;
	assert_false(sb_exec_result_ok(&r));
	r.timed_out = false;
	r.exit_code = 1;
	assert_false(sb_exec_result_ok(&r));
	r.exit_code = 0;
	r.transport_error_code = sb_xstrdup("duplex_channel_lost");
	r.transport_error_msg = sb_xstrdup("the channel closed");
	assert_false(sb_exec_result_ok(&r));
	sb_exec_result_deinit(&r);
	assert_null(r.transport_error_code);
	sb_exec_result_deinit(&r); /* twice is harmless */
}

static void signal_names_round_trip(void **state)
{
	(void)state;
	assert_string_equal(sb_signal_name(SIGKILL), "SIGKILL");
	assert_string_equal(sb_signal_name(SIGTERM), "SIGTERM");
	assert_string_equal(sb_signal_name(SIGSEGV), "SIGSEGV");
	assert_string_equal(sb_signal_name(SIGRTMIN + 1), "SIG35");
	assert_int_equal(sb_signal_number("SIGKILL"), SIGKILL);
	assert_int_equal(sb_signal_number("TERM"), SIGTERM);
	assert_int_equal(sb_signal_number("SIG35"), 35);
	assert_int_equal(sb_signal_number("SIGNOPE"), 0);
	assert_int_equal(sb_signal_number(""), 0);
	assert_int_equal(sb_signal_number(NULL), 0);
	for (int s = 1; s < 65; s++)
		assert_int_equal(sb_signal_number(sb_signal_name(s)), s);
}

static void capabilities_and_missing_file_transfer(void **state)
{
	(void)state;
	sb_runner *plain = sb_local_runner_new(NULL);
	assert_string_equal(sb_runner_name(plain), "local");
	unsigned caps = sb_runner_caps(plain);
	assert_true(caps & SB_RUNNER_CAP_STDIN);
	assert_true(caps & SB_RUNNER_CAP_STDIN_PROGRESS);
	assert_false(caps & SB_RUNNER_CAP_FILE_TRANSFER);
	sb_err *err = sb_runner_sync_in(plain, "/tmp/x", NULL, 0, NULL, NULL);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_UNSUPPORTED);
	sb_err_free(err);
	err = sb_runner_sync_out(plain, "/tmp/x", NULL, 1, NULL, NULL);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_UNSUPPORTED);
	sb_err_free(err);
	sb_runner_free(plain);

	sb_local_runner_opts opts = {.file_transfer = true};
	sb_runner *ft = sb_local_runner_new(&opts);
	assert_true(sb_runner_caps(ft) & SB_RUNNER_CAP_FILE_TRANSFER);
	err = sb_runner_sync_in(ft, "relative/dir", NULL, 0, NULL, NULL);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	sb_err_free(err);
	sb_runner_free(ft);
	sb_runner_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(invalid_requests_are_refused_before_running),
	    cmocka_unit_test(result_ok_needs_exit_zero_no_timeout_no_transport_error),
	    cmocka_unit_test(signal_names_round_trip),
	    cmocka_unit_test(capabilities_and_missing_file_transfer),
	};
	return cmocka_run_group_tests_name("runner.seam", tests, NULL, NULL);
}
