/* cli.lease: `sandbar lease acquire/list/renew/destroy`, `sandbar exec --lease` (exit code
 * passthrough, exec id printed) and `sandbar logs` (--offset, --follow) on kept leases. */
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static void lease_acquire_list_renew_destroy(void **state)
{
	clit *t = *state;
	char *id = clit_acquire(t);
	json_t *o = clit_find_lease(t, id);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "state")), "active");
	assert_true(json_is_null(json_object_get(o, "expires_at")));
	json_decref(o);
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "list")), 0);
	assert_non_null(strstr(r.out, id));
	clit_res_free(&r);

	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "renew", id)), 125);
	assert_non_null(strstr(r.err, "--ttl"));
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "renew", id, "--ttl", "1h")), 0);
	clit_res_free(&r);
	o = clit_find_lease(t, id);
	assert_true(json_is_string(json_object_get(o, "expires_at")));
	json_decref(o);

	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "destroy", id)), 0);
	clit_res_free(&r);
	assert_null(clit_find_lease(t, id));
	char *dir = sb_strfmt("%s/leases/%s", t->state, id);
	assert_int_not_equal(sbt_sh("test -e '%s'", dir), 0);
	free(dir);
	/* An unknown lease: a sandbar error naming it. */
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "renew", id, "--ttl", "1h")), 125);
	assert_non_null(strstr(r.err, id));
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "destroy", id)), 125);
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "frob")), 125);
	assert_non_null(strstr(r.err, "frob"));
	clit_res_free(&r);
	free(id);
}

static void lease_acquire_with_ttl_and_limits(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("lease", "acquire", "--ttl", "10m", "--memory", "256M",
	                                 "--pids", "64")),
	                 0);
	char *id = sb_xstrndup(r.out, strcspn(r.out, "\n"));
	clit_res_free(&r);
	json_t *o = clit_find_lease(t, id);
	assert_non_null(o);
	assert_true(json_is_string(json_object_get(o, "expires_at")));
	assert_int_equal(json_integer_value(json_object_get(o, "memory_bytes")), 256 << 20);
	assert_int_equal(json_integer_value(json_object_get(o, "pids")), 64);
	json_decref(o);
	free(id);
}

static void exec_passes_the_exit_code_and_prints_the_exec_id(void **state)
{
	clit *t = *state;
	char *id = clit_acquire(t);
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("exec", "--lease", id, "-e", "SB_X=42", "--", "sh", "-c",
	                                 "echo out $SB_X; echo err >&2; pwd; exit 9")),
	                 9);
	assert_non_null(strstr(r.out, "out 42\n/workspace\n"));
	assert_non_null(strstr(r.err, "err\n"));
	char *exec_id = clit_word_after(r.err, "exec ");
	assert_true(strlen(exec_id) > 0);
	assert_non_null(strstr(r.err, id));
	clit_res_free(&r);
	/* -q: no exec id line. */
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("exec", "-q", "--lease", id, "--", "true")),
	                 0);
	assert_string_equal(r.err, "");
	clit_res_free(&r);
	/* Not found, signal, timeout. */
	assert_int_equal(
	    clit_run(t, &r, NULL, CLIT_V("exec", "-q", "--lease", id, "--", "no-such-command-z")),
	    127);
	clit_res_free(&r);
	/* Found but not executable: 126, not 127. */
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("exec", "-q", "--lease", id, "--", "sh", "-c",
	                                 "printf 'echo hi' > noexec.sh; chmod 644 noexec.sh")),
	                 0);
	clit_res_free(&r);
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("exec", "-q", "--lease", id, "--", "/workspace/noexec.sh")),
	    126);
	clit_res_free(&r);
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("exec", "-q", "--lease", id, "--", "sh", "-c", "kill -9 $$")),
	    137);
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("exec", "-q", "--lease", id, "--timeout", "100ms", "--",
	                                 "sleep", "30")),
	                 124);
	clit_res_free(&r);
	/* An unknown lease is a sandbar error that points at `sandbar lease list`. */
	assert_int_equal(
	    clit_run(t, &r, NULL, CLIT_V("exec", "--lease", "lease-nope", "--", "true")), 125);
	assert_non_null(strstr(r.err, "lease list"));
	clit_res_free(&r);
	free(exec_id);
	free(id);
}

static void exec_interactive_passes_stdin_and_its_end(void **state)
{
	clit *t = *state;
	char *id = clit_acquire(t);
	clit_res r;
	/* The command sees our input and then EOF, so it finishes. */
	assert_int_equal(clit_run_stdin(t, &r, "hello\nworld\n", NULL,
	                                CLIT_V("exec", "-q", "-i", "--lease", id, "--", "sh", "-c",
	                                       "cat; echo done; exit 3")),
	                 3);
	assert_string_equal(r.out, "hello\nworld\ndone\n");
	clit_res_free(&r);
	/* Without -i the command's stdin is empty. */
	assert_int_equal(
	    clit_run_stdin(t, &r, "ignored\n", NULL,
	                   CLIT_V("exec", "-q", "--lease", id, "--", "sh", "-c", "cat; echo done")),
	    0);
	assert_string_equal(r.out, "done\n");
	clit_res_free(&r);
	free(id);
}

static void logs_print_from_an_offset(void **state)
{
	clit *t = *state;
	char *id = clit_acquire(t);
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("exec", "--lease", id, "--", "sh", "-c",
	                                 "printf 0123456789; printf abcdef >&2")),
	                 0);
	char *exec_id = clit_word_after(r.err, "exec ");
	clit_res_free(&r);
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("logs", "--lease", id, "--exec", exec_id, "--offset", "4")),
	    0);
	assert_string_equal(r.out, "456789");
	assert_string_equal(r.err, "ef");
	clit_res_free(&r);
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("logs", "--lease", id, "--exec", exec_id, "--stream", "stdout")),
	    0);
	assert_string_equal(r.out, "0123456789");
	assert_string_equal(r.err, "");
	clit_res_free(&r);
	/* Past the end: nothing, no error. */
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("logs", "--lease", id, "--exec", exec_id, "--offset", "100")),
	    0);
	assert_string_equal(r.out, "");
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("logs", "--lease", id, "--exec", "ex_nope")),
	                 125);
	clit_res_free(&r);
	free(exec_id);
	free(id);
}

static void logs_follow_until_the_exec_ends(void **state)
{
	clit *t = *state;
	char *id = clit_acquire(t);
	/* The exec prints, then waits for a go file dropped into the lease's workspace. */
	clit_proc x;
	clit_start(t, &x, NULL,
	           CLIT_V("exec", "--lease", id, "--", "sh", "-c",
	                  "echo first; while [ ! -e go ]; do sleep 0.01; done; rm -f go; "
	                  "echo second; exit 7"));
	clit_wait_for(x.out_path, "first");
	char *err = sbt_read("/", x.err_path + 1, NULL);
	char *exec_id = clit_word_after(err, "exec ");
	free(err);
	clit_proc f;
	clit_start(t, &f, NULL, CLIT_V("logs", "--lease", id, "--exec", exec_id, "--follow"));
	clit_wait_for(f.out_path, "first");
	char *ws = sb_strfmt("%s/leases/%s/workspace", t->state, id);
	sbt_write_str(ws, "go", "");
	clit_res r;
	assert_int_equal(clit_finish(t, &f, &r), 7);
	assert_string_equal(r.out, "first\nsecond\n");
	clit_res_free(&r);
	assert_int_equal(clit_finish(t, &x, &r), 7);
	assert_string_equal(r.out, "first\nsecond\n");
	clit_res_free(&r);
	free(ws);
	free(exec_id);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) CLIT_TEST(f)
	    T(lease_acquire_list_renew_destroy),
	    T(lease_acquire_with_ttl_and_limits),
	    T(exec_passes_the_exit_code_and_prints_the_exec_id),
	    T(exec_interactive_passes_stdin_and_its_end),
	    T(logs_print_from_an_offset),
	    T(logs_follow_until_the_exec_ends),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
