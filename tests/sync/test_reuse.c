/* sync.reuse: `sandbar run --reuse KEY` through the real binary and real sandboxes (#15). The
 * second run finds the same lease (a marker left outside the workspace is still there), staging
 * still replaces the workspace wholly (a file deleted locally is gone in the lease), a changed
 * setting starts fresh, and a destroyed or idle-expired lease is replaced with a stderr line. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

/* Runs `sh -c cmd` with --reuse key plus extra args (up to two), returning the exit code. */
static int reuse_run(clit *t, clit_res *r, const char *key, const char *extra1, const char *extra2,
                     const char *cmd)
{
	if (extra2)
		return clit_run(t, r, CLIT_V("SANDBAR_SYNC"),
		                CLIT_V("run", "-q", "-w", t->ws, "--reuse", key, extra1, extra2,
		                       "--", "sh", "-c", cmd));
	if (extra1)
		return clit_run(t, r, CLIT_V("SANDBAR_SYNC"),
		                CLIT_V("run", "-q", "-w", t->ws, "--reuse", key, extra1, "--", "sh",
		                       "-c", cmd));
	return clit_run(t, r, CLIT_V("SANDBAR_SYNC"),
	                CLIT_V("run", "-q", "-w", t->ws, "--reuse", key, "--", "sh", "-c", cmd));
}

static void expect(clit *t, const char *key, const char *e1, const char *e2, const char *cmd,
                   const char *out_has, const char *err_has)
{
	clit_res r;
	int code = reuse_run(t, &r, key, e1, e2, cmd);
	if (code != 0 || (out_has && !strstr(r.out, out_has)) ||
	    (err_has && !strstr(r.err, err_has)) || (!err_has && strstr(r.err, "starting fresh")))
		print_error("cmd %s: exit %d\nstdout:\n%s\nstderr:\n%s\n", cmd, code, r.out, r.err);
	assert_int_equal(code, 0);
	if (out_has)
		assert_non_null(strstr(r.out, out_has));
	if (err_has)
		assert_non_null(strstr(r.err, err_has));
	else
		assert_null(strstr(r.err, "starting fresh"));
	clit_res_free(&r);
}

static const char *const MARK = "test -e /tmp/mark && echo SAME || echo FRESH; touch /tmp/mark";

static void second_run_finds_the_lease_and_a_deleted_file_is_gone(void **state)
{
	clit *t = *state;
	assert_int_equal(sbt_sh("echo a > '%s/keep.txt' && echo b > '%s/gone.txt'", t->ws, t->ws),
	                 0);
	expect(t, "k1", NULL, NULL, MARK, "FRESH", NULL);
	assert_int_equal(sbt_sh("rm '%s/gone.txt'", t->ws), 0);
	expect(t, "k1", NULL, NULL,
	       "test -e /tmp/mark && echo SAME; test -e gone.txt && echo STALE; cat keep.txt",
	       "SAME", NULL);
	clit_res r;
	assert_int_equal(reuse_run(t, &r, "k1", NULL, NULL, "test -e gone.txt || echo CLEAN"), 0);
	assert_non_null(strstr(r.out, "CLEAN"));
	assert_null(strstr(r.out, "STALE"));
	clit_res_free(&r);
}

static void changed_settings_start_fresh(void **state)
{
	clit *t = *state;
	expect(t, "k2", NULL, NULL, MARK, "FRESH", NULL);
	expect(t, "k2", NULL, NULL, MARK, "SAME", NULL);
	expect(t, "k2", "--memory", "256M", MARK, "FRESH", "other settings; starting fresh");
	expect(t, "k2", "--memory", "256M", MARK, "SAME", NULL);
}

static void destroyed_or_expired_lease_is_replaced(void **state)
{
	clit *t = *state;
	expect(t, "k3", NULL, NULL, MARK, "FRESH", NULL);
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "destroy", "reuse-k3")), 0);
	clit_res_free(&r);
	expect(t, "k3", NULL, NULL, MARK, "FRESH", "was lost");
	expect(t, "k3", NULL, NULL, MARK, "SAME", NULL);
	/* Last used "an hour ago": past a 10-minute idle limit. */
	assert_int_equal(sbt_sh("touch -d '1 hour ago' '%s/reuse/k3'", t->state), 0);
	expect(t, "k3", "--reuse-idle", "10m", MARK, "FRESH", "expired; starting fresh");
	expect(t, "k3", "--reuse-idle", "10m", MARK, "SAME", NULL);
}

/* A run on a reused lease killed with SIGKILL leaves its work in the lease: the next --reuse
 * run refuses (staging would replace that work, starting fresh would destroy it) and names
 * `sandbar pull`; after the pull the work is home and the lease is reused again. */
static void a_killed_runs_work_is_never_staged_over(void **state)
{
	clit *t = *state;
	expect(t, "k4", NULL, NULL, "true", NULL, NULL);
	clit_proc p;
	clit_start(t, &p, CLIT_V("SANDBAR_SYNC"),
	           CLIT_V("run", "-q", "-w", t->ws, "--reuse", "k4", "--", "sh", "-c",
	                  "echo work > made.txt; sleep 60"));
	char *made = sb_strfmt("%s/leases/reuse-k4/workspace/made.txt", t->state);
	clit_wait_for(made, "work");
	free(made);
	clit_stop(t, p.pid, SIGKILL);
	free(p.out_path);
	free(p.err_path);
	/* idle past its limit: the reaper keeps it all the same, and says why */
	assert_int_equal(sbt_sh("touch -d '2 hours ago' '%s/reuse/k4'", t->state), 0);
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "prune")), 0);
	assert_non_null(strstr(r.err, "kept idle reused lease reuse-k4"));
	clit_res_free(&r);
	assert_int_not_equal(reuse_run(t, &r, "k4", NULL, NULL, "true"), 0);
	assert_non_null(strstr(r.err, "sandbar pull reuse-k4"));
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("pull", "-q", "reuse-k4")), 0);
	clit_res_free(&r);
	char *got = sbt_read(t->ws, "made.txt", NULL);
	assert_non_null(got);
	assert_string_equal(got, "work\n");
	free(got);
	/* home now; the lease had sat "2 hours" (past the default 1h), so it starts fresh */
	expect(t, "k4", NULL, NULL, "cat made.txt", "work", "expired; starting fresh");
}

static void a_bad_key_is_refused(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_not_equal(reuse_run(t, &r, "../x", NULL, NULL, "true"), 0);
	assert_non_null(strstr(r.err, "a key is"));
	clit_res_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(second_run_finds_the_lease_and_a_deleted_file_is_gone,
	                                    clit_setup, clit_teardown),
	    cmocka_unit_test_setup_teardown(changed_settings_start_fresh, clit_setup,
	                                    clit_teardown),
	    cmocka_unit_test_setup_teardown(destroyed_or_expired_lease_is_replaced, clit_setup,
	                                    clit_teardown),
	    cmocka_unit_test_setup_teardown(a_killed_runs_work_is_never_staged_over, clit_setup,
	                                    clit_teardown),
	    cmocka_unit_test_setup_teardown(a_bad_key_is_refused, clit_setup, clit_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
