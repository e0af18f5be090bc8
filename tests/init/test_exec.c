/* sandbar-init as seen through its requests: process groups and timeouts, signals, stdin,
 * spawn failures, zombie reaping, output readable while a command runs, env and cwd. */
#include "sbx.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *state;
static sb_sandbox *sb;

static int setup(void **s)
{
	(void)s;
	state = sbx_state_dir();
	sb = sbx_create(state, "init", NULL);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
	return 0;
}

static size_t count_processes(void)
{
	sb_sandbox_process *p = NULL;
	size_t n = 0;
	SB_ASSERT_OK(sb_sandbox_list_processes(sb, &p, &n));
	sb_sandbox_processes_free(p, n);
	return n;
}

static void wait_no_processes(void)
{
	for (int i = 0; i < 300 && count_processes() > 0; i++)
		sb_sleep_ms(10);
	assert_int_equal(count_processes(), 0);
}

static void timeout_terminates_the_whole_process_group(void **s)
{
	(void)s;
	char *argv[] = {"sh", "-c", "sleep 100 & sleep 100 & sleep 100", NULL};
	sbx_result r;
	sbx_run(sb, argv, 300, &r);
	assert_true(r.st.timed_out);
	assert_false(r.st.has_exit_code);
	assert_int_equal(r.st.signal, SIGTERM);
	sbx_result_free(&r);
	wait_no_processes(); /* the background sleeps got the TERM too */
}

static void timeout_kills_after_grace_when_term_is_ignored(void **s)
{
	(void)s;
	char *argv[] = {"sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 0.05; done",
	                NULL};
	sb_sandbox_exec_req req = {.argv = argv, .timeout_ms = 200, .grace_ms = 300};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	sbx_result r = {0};
	sbx_follow(x, &r);
	assert_true(r.st.timed_out);
	assert_int_equal(r.st.signal, SIGKILL);
	assert_string_equal(sb_buf_cstr(&r.out), "trapped\n");
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);
	wait_no_processes();
}

static void signal_reaches_the_exec(void **s)
{
	(void)s;
	char *argv[] = {"sleep", "100", NULL};
	sb_sandbox_exec_req req = {.argv = argv};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	sb_sandbox_process *p = NULL;
	size_t n = 0;
	/* right after the start the kernel may not have set up the new command line yet */
	for (int i = 0; i < 100; i++) {
		SB_ASSERT_OK(sb_sandbox_list_processes(sb, &p, &n));
		if (n == 1 && strcmp(p[0].cmdline, "sleep 100") == 0)
			break;
		sb_sandbox_processes_free(p, n);
		p = NULL;
		sb_sleep_ms(10);
	}
	assert_int_equal(n, 1);
	assert_non_null(p);
	assert_string_equal(p[0].cmdline, "sleep 100");
	assert_string_equal(p[0].exec_id, sb_sandbox_exec_id(x));
	assert_int_equal(p[0].pid, p[0].pgid);
	sb_sandbox_processes_free(p, n);
	SB_ASSERT_OK(sb_sandbox_exec_signal(sb, sb_sandbox_exec_id(x), SIGINT));
	sbx_result r = {0};
	sbx_follow(x, &r);
	assert_int_equal(r.st.signal, SIGINT);
	assert_false(r.st.timed_out);
	sbx_result_free(&r);
	sb_err *err = sb_sandbox_exec_signal(sb, sb_sandbox_exec_id(x), SIGINT);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_NOTFOUND);
	sb_err_free(err);
	sb_sandbox_exec_free(x);
}

static void stdin_pipe_reaches_the_command(void **s)
{
	(void)s;
	char *argv[] = {"sha256sum", NULL};
	sb_sandbox_exec_req req = {.argv = argv, .stdin_mode = SB_SANDBOX_STDIN_PIPE};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	size_t len = 3u << 20;
	char *data = sb_xmalloc(len);
	sbt_fill_random(data, len, 42);
	SB_ASSERT_OK(sb_write_all(sb_sandbox_exec_stdin_fd(x), data, len));
	sb_sandbox_exec_close_stdin(x);
	char hex[SB_SHA256_HEX_LEN];
	sb_sha256_hex(data, len, hex);
	free(data);
	sbx_result r = {0};
	sbx_follow(x, &r);
	assert_true(sb_str_has_prefix(sb_buf_cstr(&r.out), hex));
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);
	/* without a pipe, stdin is /dev/null */
	sbx_sh(sb, "wc -c", &r);
	assert_string_equal(sb_buf_cstr(&r.out), "0\n");
	sbx_result_free(&r);
}

static void spawn_failures_are_errors_not_results(void **s)
{
	(void)s;
	char *argv[] = {"no-such-program-here", NULL};
	sb_sandbox_exec_req req = {.argv = argv};
	sb_sandbox_exec *x = NULL;
	sb_err *err = sb_sandbox_exec_start(sb, &req, &x);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_SPAWN);
	assert_non_null(
	    strstr(err->msg, "failed to start \"no-such-program-here\" in \"/workspace\""));
	sb_err_free(err);
	char *ls[] = {"ls", NULL};
	sb_sandbox_exec_req req2 = {.argv = ls, .cwd = "/no/such/dir"};
	err = sb_sandbox_exec_start(sb, &req2, &x);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_SPAWN);
	assert_non_null(strstr(err->msg, "directory"));
	sb_err_free(err);
	/* a failed start leaves no spool behind; a duplicate id is refused */
	sb_sandbox_exec_req req3 = {.argv = ls, .exec_id = "dup"};
	sbx_result r = {0};
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req3, &x));
	sbx_follow(x, &r);
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);
	err = sb_sandbox_exec_start(sb, &req3, &x);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_EXISTS);
	sb_err_free(err);
}

static void orphans_are_reaped(void **s)
{
	(void)s;
	/* the middle shell exits at once, orphaning a child that init must reap */
	sbx_result r;
	sbx_sh(sb, "sh -c 'sleep 0.2 &' ; echo ok", &r);
	sbx_result_free(&r);
	/* the orphan runs out; an unreaped one would stay listed as a zombie for good */
	size_t n = 1;
	for (int i = 0; i < 500 && n > 0; i++) {
		sb_sandbox_process *p = NULL;
		SB_ASSERT_OK(sb_sandbox_list_processes(sb, &p, &n));
		sb_sandbox_processes_free(p, n);
		if (n)
			sb_sleep_ms(10);
	}
	assert_int_equal(n, 0);
}

static void output_is_readable_while_running(void **s)
{
	(void)s;
	char *argv[] = {"sh", "-c", "echo first; read x; echo second", NULL};
	sb_sandbox_exec_req req = {.argv = argv, .stdin_mode = SB_SANDBOX_STDIN_PIPE};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	char buf[64];
	size_t got = 0;
	for (int i = 0; i < 200 && got < 6; i++) {
		SB_ASSERT_OK(sb_sandbox_exec_read(x, SB_STREAM_STDOUT, 0, buf, sizeof buf, &got));
		if (got < 6)
			SB_ASSERT_OK(sb_sandbox_exec_wait(x, 50, NULL));
	}
	assert_int_equal(got, 6);
	assert_memory_equal(buf, "first\n", 6);
	sb_sandbox_exec_status st;
	SB_ASSERT_OK(sb_sandbox_exec_status_of(x, &st));
	assert_true(st.running);
	assert_int_equal(st.stdout_size, 6);
	SB_ASSERT_OK(sb_write_all(sb_sandbox_exec_stdin_fd(x), "go\n", 3));
	sbx_result r = {0};
	sbx_follow(x, &r);
	assert_string_equal(sb_buf_cstr(&r.out), "first\nsecond\n");
	assert_true(r.st.has_exit_code && r.st.exit_code == 0);
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);
}

static void env_and_cwd_follow_the_request(void **s)
{
	(void)s;
	char *argv[] = {"sh", "-c", "pwd; echo $HOME $USER $FOO; echo ${PATH:+haspath}", NULL};
	char *env[] = {"FOO=bar baz", "USER=override", NULL};
	sb_sandbox_exec_req req = {.argv = argv, .env = env, .cwd = "/tmp"};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	sbx_result r = {0};
	sbx_follow(x, &r);
	assert_string_equal(sb_buf_cstr(&r.out), "/tmp\n/home/sandbox override bar baz\nhaspath\n");
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);
	char *argv2[] = {"/usr/bin/env", NULL};
	char *env2[] = {"ONLY=1", NULL};
	sb_sandbox_exec_req req2 = {.argv = argv2, .env = env2, .clear_env = true};
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req2, &x));
	memset(&r, 0, sizeof r);
	sbx_follow(x, &r);
	assert_string_equal(sb_buf_cstr(&r.out), "ONLY=1\n");
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);
}

static void attached_readers_are_woken_by_init(void **s)
{
	(void)s;
	char *argv[] = {"sh", "-c", "echo one; read x; echo two; exit 4", NULL};
	sb_sandbox_exec_req req = {.argv = argv, .stdin_mode = SB_SANDBOX_STDIN_PIPE};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	/* two more readers of the running exec, as a daemon would attach them */
	sb_sandbox_exec *a = NULL, *b = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_attach(sb, sb_sandbox_exec_id(x), &a));
	SB_ASSERT_OK(sb_sandbox_exec_attach(sb, sb_sandbox_exec_id(x), &b));
	/* woken through a pipe from init, not an inotify watch */
	struct stat st;
	assert_int_equal(fstat(sb_sandbox_exec_fd(a), &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	SB_ASSERT_OK(sb_write_all(sb_sandbox_exec_stdin_fd(x), "go\n", 3));
	sbx_result ra = {0}, rb = {0}, rx = {0};
	sbx_follow(a, &ra);
	sbx_follow(b, &rb);
	sbx_follow(x, &rx);
	assert_string_equal(sb_buf_cstr(&ra.out), "one\ntwo\n");
	assert_string_equal(sb_buf_cstr(&rb.out), "one\ntwo\n");
	assert_int_equal(ra.st.exit_code, 4);
	assert_int_equal(rb.st.exit_code, 4);
	assert_int_equal(rx.st.exit_code, 4);
	sbx_result_free(&ra);
	sbx_result_free(&rb);
	sbx_result_free(&rx);
	sb_sandbox_exec_free(a);
	sb_sandbox_exec_free(b);
	sb_sandbox_exec_free(x);
	/* attaching to a finished exec reads its record */
	char **ids = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_list(sb, &ids));
	SB_ASSERT_OK(sb_sandbox_exec_attach(sb, ids[0], &a));
	sb_sandbox_exec_status fs;
	SB_ASSERT_OK(sb_sandbox_exec_status_of(a, &fs));
	assert_false(fs.running);
	sb_sandbox_exec_free(a);
	sb_strv_free(ids);
}

static void finished_execs_can_be_removed(void **s)
{
	(void)s;
	char *sleeper[] = {"sleep", "30", NULL};
	sb_sandbox_exec_req req = {.argv = sleeper, .exec_id = "to-remove"};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	sb_err *err = sb_sandbox_exec_remove(sb, "to-remove");
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_BUSY);
	sb_err_free(err);
	SB_ASSERT_OK(sb_sandbox_exec_signal(sb, "to-remove", SIGKILL));
	sbx_result r = {0};
	sbx_follow(x, &r);
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);
	SB_ASSERT_OK(sb_sandbox_exec_remove(sb, "to-remove"));
	sb_sandbox_exec_status st;
	err = sb_sandbox_exec_status_by_id(sb, "to-remove", &st);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_NOTFOUND);
	sb_err_free(err);
	err = sb_sandbox_exec_remove(sb, "never-was");
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_NOTFOUND);
	sb_err_free(err);
}

static void commands_get_default_signal_dispositions(void **s)
{
	(void)s;
	/* init blocks SIGPIPE for itself; a command must still die of it quietly */
	sbx_result r;
	sbx_sh(sb, "yes | head -n 1; grep -E '^Sig(Blk|Ign):' /proc/self/status", &r);
	const char *o = sb_buf_cstr(&r.out);
	assert_true(sb_str_has_prefix(o, "y\n"));
	assert_non_null(strstr(o, "SigBlk:\t0000000000000000"));
	assert_string_equal(sb_buf_cstr(&r.err), "");
	sbx_result_free(&r);
}

static void status_agrees_with_the_exit_message_at_once(void **s)
{
	(void)s;
	for (int i = 0; i < 20; i++) {
		char script[64];
		snprintf(script, sizeof script, "echo %d; exit %d", i, i % 7);
		char *argv[] = {"sh", "-c", script, NULL};
		sb_sandbox_exec_req req = {.argv = argv};
		sb_sandbox_exec *x = NULL;
		SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
		sbx_result r = {0};
		sbx_follow(x, &r);
		/* another reader asking right after the exit sees the same outcome */
		sb_sandbox_exec_status st;
		SB_ASSERT_OK(sb_sandbox_exec_status_by_id(sb, sb_sandbox_exec_id(x), &st));
		assert_false(st.running);
		assert_true(st.has_exit_code);
		assert_int_equal(st.exit_code, i % 7);
		assert_int_equal(st.exit_code, r.st.exit_code);
		assert_int_equal(st.finished_at_ms, r.st.finished_at_ms);
		assert_int_equal(st.stdout_size, r.out.len);
		sbx_result_free(&r);
		sb_sandbox_exec_free(x);
	}
}

static void output_beyond_the_spool_limit_is_dropped_and_flagged(void **s)
{
	(void)s;
	sb_sandbox_opts o = {.limits = {.spool_bytes = 1000}};
	sb_sandbox *small = sbx_create(state, "init-spool", &o);
	char *argv[] = {"sh", "-c", "seq 1 100000; echo small >&2; echo done > /tmp/d", NULL};
	sbx_result r;
	sbx_run(small, argv, 60000, &r);
	/* the command ran to the end, unblocked */
	assert_true(r.st.has_exit_code && r.st.exit_code == 0);
	assert_int_equal(r.out.len, 1000);
	assert_true(r.st.stdout_truncated);
	assert_int_equal(r.st.stdout_size, 1000);
	assert_true(sb_str_has_prefix(sb_buf_cstr(&r.out), "1\n2\n3\n"));
	assert_string_equal(sb_buf_cstr(&r.err), "small\n");
	assert_false(r.st.stderr_truncated);
	sbx_result_free(&r);
	/* the record on disk says so too */
	char **ids = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_list(small, &ids));
	sb_sandbox_exec_status st;
	SB_ASSERT_OK(sb_sandbox_exec_status_by_id(small, ids[0], &st));
	assert_true(st.stdout_truncated);
	sb_strv_free(ids);
	SB_ASSERT_OK(sb_sandbox_destroy(small));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(timeout_terminates_the_whole_process_group),
	    cmocka_unit_test(timeout_kills_after_grace_when_term_is_ignored),
	    cmocka_unit_test(signal_reaches_the_exec),
	    cmocka_unit_test(stdin_pipe_reaches_the_command),
	    cmocka_unit_test(spawn_failures_are_errors_not_results),
	    cmocka_unit_test(orphans_are_reaped),
	    cmocka_unit_test(output_is_readable_while_running),
	    cmocka_unit_test(env_and_cwd_follow_the_request),
	    cmocka_unit_test(commands_get_default_signal_dispositions),
	    cmocka_unit_test(finished_execs_can_be_removed),
	    cmocka_unit_test(attached_readers_are_woken_by_init),
	    cmocka_unit_test(status_agrees_with_the_exit_message_at_once),
	    cmocka_unit_test(output_beyond_the_spool_limit_is_dropped_and_flagged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
