/* cli.prune: what killed runs leave behind is removed, and nothing else. `sandbar run` prunes
 * the `run-` leases whose sandbox is gone before it acquires its own, and `sandbar lease prune`
 * does the same for every lease: a lease that cannot be read must not take the pruning process
 * down (it once freed the open error twice, corrupting the heap of the `sandbar run` that
 * pruned: an abort, a crash or a hang before the command started), and a dead init whose pid
 * now belongs to another process must not keep its lease forever (pid_max may be 32768). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clitest.h"

/* The state `lease list --json` gives lease id, or NULL when it is not listed; malloc'd. */
static char *listed_state(clit *t, const char *id)
{
	json_t *o = clit_find_lease(t, id);
	char *st = o ? sb_xstrdup(json_string_value(json_object_get(o, "state"))) : NULL;
	json_decref(o);
	return st;
}

static bool lease_dir_exists(clit *t, const char *id)
{
	char *p = sb_strfmt("%s/leases/%s", t->state, id);
	bool there = access(p, F_OK) == 0;
	free(p);
	return there;
}

static void run_and_prune_survive_an_unreadable_lease(void **state)
{
	clit *t = *state;
	/* a `run-` lease whose record is not JSON: opening it fails with an error that is not
	 * "its sandbox is gone" */
	const char *id = "run-0123456789abcdef0123456789abcdef";
	char *dir = sb_strfmt("%s/leases/%s", t->state, id);
	sbt_write_str(dir, "lease.json", "this is not a lease record");
	sbt_write_str(dir, "run/.keep", "");
	sbt_write_str(dir, "spool/.keep", "");
	sbt_write_str(dir, "workspace/.keep", "");
	for (int i = 0; i < 3; i++) { /* the double free did not always abort at once */
		clit_proc p;
		clit_start(t, &p, NULL, CLIT_V("run", "-q", "--", "sh", "-c", "echo ran"));
		clit_res r;
		int code = clit_finish(t, &p, &r); /* fails the test after 60 s */
		if (code != 0)
			print_message("run %d: exit %d: %s\n", i, code, r.err);
		assert_int_equal(code, 0);
		assert_string_equal(r.out, "ran\n");
		clit_res_free(&r);
		assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "prune")), 0);
		clit_res_free(&r);
	}
	/* not ours to judge: it stays, for its owner to look at */
	assert_true(lease_dir_exists(t, id));
	char *rm = sb_strfmt("rm -rf '%s'", dir);
	assert_int_equal(sbt_sh("%s", rm), 0);
	free(rm);
	free(dir);
}

/* Wait (10 s at most) until pid is gone or a zombie. */
static void wait_gone(pid_t pid)
{
	for (int i = 0; i < 1000; i++) {
		char *stat = sb_strfmt("/proc/%d/stat", (int)pid);
		char *s = sbt_read("/", stat + 1, NULL);
		free(stat);
		char *close_paren = s ? strrchr(s, ')') : NULL;
		bool gone = !s || (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z');
		free(s);
		if (gone)
			return;
		usleep(10000);
	}
	fail_msg("pid %d still runs 10 s after SIGKILL", (int)pid);
}

static void prune_removes_a_dead_lease_whose_init_pid_was_reused(void **state)
{
	clit *t = *state;
	char *id = clit_acquire(t);
	char *rec = sb_strfmt("leases/%s/lease.json", id);
	char *text = sbt_read(t->state, rec, NULL);
	assert_non_null(text);
	json_t *j = clit_json(text);
	free(text);
	pid_t init = (pid_t)json_integer_value(json_object_get(j, "init_pid"));
	assert_true(init > 1);
	assert_int_equal(kill(init, SIGKILL), 0);
	wait_gone(init);
	/* The pid is taken again, by a process that is not its init (here: this test, which
	 * outlives the prune): same pid field, another start time. */
	json_object_set_new(j, "init_pid", json_integer(getpid()));
	char *out = json_dumps(j, JSON_COMPACT);
	sbt_write_str(t->state, rec, out);
	free(out);
	json_decref(j);

	char *st = listed_state(t, id);
	assert_non_null(st);
	assert_string_equal(st, "lost"); /* its sandbox is gone and it holds no work */
	free(st);
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "prune")), 0);
	if (lease_dir_exists(t, id))
		print_message("prune said: %s%s\n", r.out, r.err);
	assert_false(lease_dir_exists(t, id));
	assert_non_null(strstr(r.err, id));
	clit_res_free(&r);
	assert_null(listed_state(t, id));
	free(rec);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(run_and_prune_survive_an_unreadable_lease),
	    CLIT_TEST(prune_removes_a_dead_lease_whose_init_pid_was_reused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
