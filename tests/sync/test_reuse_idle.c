/* sync.reuse_idle: a `sandbar run --reuse KEY` lease idle longer than its --reuse-idle does not
 * wait for its key to come back: `sandbar lease prune` and the start of any `sandbar run`
 * destroy it (lease and record), while a lease idle for less, or one a run is using however
 * long ago it was taken, stays. Real binary, real sandboxes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clitest.h"

static void reuse_true(clit *t, const char *key, const char *idle)
{
	clit_res r;
	int code = clit_run(
	    t, &r, CLIT_V("SANDBAR_SYNC"),
	    CLIT_V("run", "-q", "-w", t->ws, "--reuse", key, "--reuse-idle", idle, "--", "true"));
	if (code != 0)
		print_error("run --reuse %s: exit %d: %s\n", key, code, r.err);
	assert_int_equal(code, 0);
	clit_res_free(&r);
}

/* The lease's last use moved into the past (its record's mtime is what idle time measures). */
static void age(clit *t, const char *key, const char *ago)
{
	assert_int_equal(sbt_sh("touch -d '%s' '%s/reuse/%s'", ago, t->state, key), 0);
}

static bool lease_exists(clit *t, const char *key)
{
	char *p = sb_strfmt("%s/leases/reuse-%s/lease.json", t->state, key);
	bool there = access(p, F_OK) == 0;
	free(p);
	return there;
}

static bool record_exists(clit *t, const char *key)
{
	char *p = sb_strfmt("%s/reuse/%s", t->state, key);
	bool there = access(p, F_OK) == 0;
	free(p);
	return there;
}

static void prune_removes_only_the_leases_idle_past_their_limit(void **state)
{
	clit *t = *state;
	reuse_true(t, "old", "10m");
	reuse_true(t, "recent", "2h");
	age(t, "old", "1 hour ago");    /* past its 10 minutes */
	age(t, "recent", "1 hour ago"); /* within its 2 hours */
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "prune")), 0);
	assert_non_null(strstr(r.err, "removed reused lease reuse-old"));
	assert_null(strstr(r.err, "reuse-recent"));
	assert_non_null(strstr(r.out, "1 lease removed"));
	clit_res_free(&r);
	assert_false(lease_exists(t, "old"));
	assert_false(record_exists(t, "old"));
	assert_true(lease_exists(t, "recent"));
	assert_true(record_exists(t, "recent"));
	/* the key comes back to a fresh lease, without a word about expiry */
	clit_res r2;
	assert_int_equal(clit_run(t, &r2, CLIT_V("SANDBAR_SYNC"),
	                          CLIT_V("run", "-q", "-w", t->ws, "--reuse", "old", "--", "true")),
	                 0);
	assert_null(strstr(r2.err, "starting fresh"));
	clit_res_free(&r2);
	assert_true(lease_exists(t, "old"));
}

static void any_run_start_reaps_them(void **state)
{
	clit *t = *state;
	reuse_true(t, "stale", "10m");
	age(t, "stale", "1 hour ago");
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("run", "-w", t->ws, "--", "true")), 0);
	assert_non_null(strstr(r.err, "removed reused lease reuse-stale"));
	clit_res_free(&r);
	assert_false(lease_exists(t, "stale"));
	assert_false(record_exists(t, "stale"));
}

static void a_lease_in_use_is_never_reaped(void **state)
{
	clit *t = *state;
	reuse_true(t, "busy", "10m");
	/* a long command: the run took the lease "an hour ago" and still uses it */
	clit_proc p;
	clit_start(t, &p, CLIT_V("SANDBAR_SYNC"),
	           CLIT_V("run", "-q", "-w", t->ws, "--reuse", "busy", "--reuse-idle", "10m", "--",
	                  "sh", "-c", "echo ready; while [ ! -e go ]; do sleep 0.05; done; rm go"));
	clit_wait_for(p.out_path, "ready");
	age(t, "busy", "1 hour ago");
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "prune")), 0);
	assert_null(strstr(r.err, "reuse-busy"));
	clit_res_free(&r);
	assert_true(lease_exists(t, "busy"));
	char *ws = sb_strfmt("%s/leases/reuse-busy/workspace", t->state);
	sbt_write_str(ws, "go", "");
	free(ws);
	assert_int_equal(clit_finish(t, &p, &r), 0);
	clit_res_free(&r);
	/* its idle time starts when the run ends: not expired now */
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "prune")), 0);
	assert_null(strstr(r.err, "reuse-busy"));
	clit_res_free(&r);
	assert_true(lease_exists(t, "busy"));
	assert_true(record_exists(t, "busy"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(prune_removes_only_the_leases_idle_past_their_limit),
	    CLIT_TEST(any_run_start_reaps_them),
	    CLIT_TEST(a_lease_in_use_is_never_reaped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
