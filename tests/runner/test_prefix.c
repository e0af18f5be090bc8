/* The prefix runner through local prefixes: `sh -c` as a shell prefix, and `sh -c 'exec "$@"' sh`
 * and `env` as argv prefixes. Every quoting case, the working directory, environment additions and
 * a cleared environment must arrive unchanged; stdin, exit codes and timeouts pass through. */
#include "rt.h"
#include "quoting_cases.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct prefix_kind {
	const char *label;
	char *const *prefix;
	bool is_shell;
} prefix_kind;

static const prefix_kind kinds[] = {
    {"shell prefix sh -c", RT_ARGV("sh", "-c"), true},
    {"argv prefix sh -c 'exec \"$@\"' sh", RT_ARGV("sh", "-c", "exec \"$@\"", "sh"), false},
    {"argv prefix env", RT_ARGV("env"), false},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static sb_runner *make(const prefix_kind *k)
{
	sb_prefix_runner_opts opts = {.prefix = k->prefix, .prefix_is_shell = k->is_shell};
	sb_runner *r = NULL;
	SB_ASSERT_OK(sb_prefix_runner_new(&opts, &r));
	assert_string_equal(sb_runner_name(r), "prefix");
	return r;
}

static void run_ok(sb_runner *r, const sb_exec_request *req, sb_exec_result *res)
{
	sb_exec_result_init(res);
	SB_ASSERT_OK(sb_runner_execute(r, req, NULL, NULL, res));
	if (!sb_exec_result_ok(res))
		print_error("exit %d signal %s stderr: %s\n", res->exit_code, res->signal,
		            sb_buf_cstr(&res->err));
	assert_true(sb_exec_result_ok(res));
}

static void every_quoting_case_arrives_unchanged(void **state)
{
	(void)state;
	size_t n = sb_strv_len(quoting_cases);
	char **argv = NULL;
	sb_strv_push(&argv, "printf");
	sb_strv_push(&argv, "[%s]\\n");
	sb_buf want = SB_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		sb_strv_push(&argv, quoting_cases[i]);
		sb_buf_appendf(&want, "[%s]\n", quoting_cases[i]);
	}
	for (size_t k = 0; k < N_KINDS; k++) {
		print_message("%s\n", kinds[k].label);
		sb_runner *r = make(&kinds[k]);
		sb_exec_request req = {.argv = argv};
		sb_exec_result res;
		run_ok(r, &req, &res);
		assert_string_equal(sb_buf_cstr(&res.out), sb_buf_cstr(&want));
		assert_int_equal(res.pid, 0);
		sb_exec_result_deinit(&res);

		/* The same words as environment values (env(1) path) and one at a time as argv[1].
		 */
		for (size_t i = 0; i < n; i++) {
			char *entry = sb_strfmt("SB_Q=%s", quoting_cases[i]);
			sb_exec_request ereq = {.argv = RT_ARGV("printenv", "SB_Q"),
			                        .env = RT_ARGV(entry)};
			run_ok(r, &ereq, &res);
			char *line = sb_strfmt("%s\n", quoting_cases[i]);
			assert_string_equal(sb_buf_cstr(&res.out), line);
			free(line);
			free(entry);
			sb_exec_result_deinit(&res);
		}
		sb_runner_free(r);
	}
	sb_buf_deinit(&want);
	sb_strv_free(argv);
}

static void cwd_with_awkward_name_is_entered(void **state)
{
	(void)state;
	char *dir = rt_tmpdir();
	char *odd = sb_strfmt("%s/-it's a \"dir\" $x \\ \xe2\x9c\x93", dir);
	assert_int_equal(mkdir(odd, 0755), 0);
	for (size_t k = 0; k < N_KINDS; k++) {
		sb_runner *r = make(&kinds[k]);
		sb_exec_request req = {.argv = RT_ARGV("pwd"), .cwd = odd};
		sb_exec_result res;
		run_ok(r, &req, &res);
		char *want = sb_strfmt("%s\n", odd);
		assert_string_equal(sb_buf_cstr(&res.out), want);
		free(want);
		sb_exec_result_deinit(&res);
		sb_runner_free(r);
	}
	/* A relative directory starting with '-' is not taken for an option of cd. */
	char *here = getcwd(NULL, 0);
	assert_int_equal(chdir(dir), 0);
	sb_runner *r = make(&kinds[0]);
	sb_exec_request req = {.argv = RT_ARGV("pwd"), .cwd = strrchr(odd, '/') + 1};
	sb_exec_result res;
	run_ok(r, &req, &res);
	char *want = sb_strfmt("%s\n", odd);
	assert_string_equal(sb_buf_cstr(&res.out), want);
	free(want);
	sb_exec_result_deinit(&res);
	sb_runner_free(r);
	assert_int_equal(chdir(here), 0);
	free(here);
	free(odd);
	rt_rmdir(dir);
}

static void env_clear_and_unusual_names_pass_through(void **state)
{
	(void)state;
	for (size_t k = 0; k < N_KINDS; k++) {
		sb_runner *r = make(&kinds[k]);
		sb_exec_request req = {.argv = RT_ARGV("env"),
		                       .env = RT_ARGV("ONLY=1", "dotted.name=x y"),
		                       .clear_env = true};
		sb_exec_result res;
		run_ok(r, &req, &res);
		assert_string_equal(
		    sb_buf_cstr(&res.out),
		    "ONLY=1\ndotted.name=x y\n"
		    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
		sb_exec_result_deinit(&res);
		sb_runner_free(r);
	}
}

static void argv0_with_equals_sign_runs_with_env_additions(void **state)
{
	(void)state;
	char *dir = rt_tmpdir();
	char *path = sb_strfmt("%s/a=b", dir);
	char *tmp = rt_tmpfile("#!/bin/sh\necho \"ran with $X\"\n", 29);
	assert_int_equal(rename(tmp, path), 0);
	free(tmp);
	assert_int_equal(chmod(path, 0755), 0);
	sb_runner *r = make(&kinds[1]);
	sb_exec_request req = {.argv = RT_ARGV("./a=b"), .cwd = dir, .env = RT_ARGV("X=1")};
	sb_exec_result res;
	run_ok(r, &req, &res);
	assert_string_equal(sb_buf_cstr(&res.out), "ran with 1\n");
	sb_exec_result_deinit(&res);
	sb_runner_free(r);
	free(path);
	rt_rmdir(dir);
}

static void stdin_exit_codes_signals_and_timeouts_pass_through(void **state)
{
	(void)state;
	unsigned char in[256];
	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	for (size_t k = 0; k < N_KINDS; k++) {
		sb_runner *r = make(&kinds[k]);
		assert_true(sb_runner_caps(r) & SB_RUNNER_CAP_STDIN);
		sb_exec_request req = {
		    .argv = RT_ARGV("cat"), .has_stdin = true, .stdin_data = in, .stdin_len = 256};
		sb_exec_result res;
		run_ok(r, &req, &res);
		assert_int_equal(res.out.len, 256);
		assert_memory_equal(res.out.data, in, 256);
		sb_exec_result_deinit(&res);

		sb_exec_request ex = {.argv = RT_ARGV("sh", "-c", "echo err >&2; exit 7")};
		sb_exec_result_init(&res);
		SB_ASSERT_OK(sb_runner_execute(r, &ex, NULL, NULL, &res));
		assert_true(res.has_exit_code);
		assert_int_equal(res.exit_code, 7);
		assert_string_equal(sb_buf_cstr(&res.err), "err\n");
		sb_exec_result_deinit(&res);

		sb_exec_request slow = {.argv = RT_ARGV("sleep", "30"), .timeout_ms = 100};
		sb_exec_result_init(&res);
		SB_ASSERT_OK(sb_runner_execute(r, &slow, NULL, NULL, &res));
		assert_true(res.timed_out);
		assert_false(sb_exec_result_ok(&res));
		sb_exec_result_deinit(&res);
		sb_runner_free(r);
	}
}

static void no_stdin_prefix_refuses_stdin(void **state)
{
	(void)state;
	sb_prefix_runner_opts opts = {
	    .prefix = RT_ARGV("sh", "-c"), .prefix_is_shell = true, .no_stdin = true};
	sb_runner *r = NULL;
	SB_ASSERT_OK(sb_prefix_runner_new(&opts, &r));
	assert_false(sb_runner_caps(r) & SB_RUNNER_CAP_STDIN);
	sb_exec_request req = {.argv = RT_ARGV("cat"), .has_stdin = true};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(r, &req, NULL, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_UNSUPPORTED);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
	sb_runner_free(r);
}

static void missing_prefix_command_is_a_spawn_error(void **state)
{
	(void)state;
	sb_prefix_runner_opts opts = {.prefix = RT_ARGV("sb-no-such-ssh", "-T", "host", "--"),
	                              .prefix_is_shell = true};
	sb_runner *r = NULL;
	SB_ASSERT_OK(sb_prefix_runner_new(&opts, &r));
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = rt_run(r, RT_ARGV("true"), &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_SPAWN);
	assert_true(sb_str_has_prefix(err->msg, "failed to start \"sb-no-such-ssh\" in \""));
	assert_non_null(strstr(err->msg, "PATH ("));
	sb_err_free(err);
	sb_exec_result_deinit(&res);
	sb_runner_free(r);

	opts.prefix = RT_ARGV(NULL);
	err = sb_prefix_runner_new(&opts, &r);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	sb_err_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_quoting_case_arrives_unchanged),
	    cmocka_unit_test(cwd_with_awkward_name_is_entered),
	    cmocka_unit_test(env_clear_and_unusual_names_pass_through),
	    cmocka_unit_test(argv0_with_equals_sign_runs_with_env_additions),
	    cmocka_unit_test(stdin_exit_codes_signals_and_timeouts_pass_through),
	    cmocka_unit_test(no_stdin_prefix_refuses_stdin),
	    cmocka_unit_test(missing_prefix_command_is_a_spawn_error),
	};
	return cmocka_run_group_tests_name("runner.prefix", tests, NULL, NULL);
}
