/* cli.conflict: the user edits a file while the command edits the same file in the sandbox.
 * The command signals "ready" on its output and then waits for a go file that the test drops
 * into the lease's workspace (<state>/leases/<id>/workspace, sandbox.h), so the local edit
 * surely lands between staging and restore. */
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static const char script[] = "echo remote > f.txt; echo other > other.txt; echo ready; "
                             "while [ ! -e go ]; do sleep 0.01; done; rm -f go";

/* Runs the conflicting command with extra flags; returns the exit code. */
static int conflicting_run(clit *t, clit_res *r, const char *f1, const char *f2)
{
	sbt_write_str(t->ws, "f.txt", "base\n");
	clit_proc p;
	const char *args[12] = {"run", "-w", t->ws};
	size_t n = 3;
	if (f1)
		args[n++] = f1;
	if (f2)
		args[n++] = f2;
	args[n++] = "--";
	args[n++] = "sh";
	args[n++] = "-c";
	args[n++] = script;
	clit_start(t, &p, NULL, args);
	/* With --json the command's stdout is on our stderr. */
	bool json = (f1 && !strcmp(f1, "--json")) || (f2 && !strcmp(f2, "--json"));
	clit_wait_for(json ? p.err_path : p.out_path, "ready");
	sbt_write_str(t->ws, "f.txt", "local\n");
	char *pattern = sb_strfmt("%s/leases/*/workspace", t->state);
	char *remote_ws = clit_wait_glob(pattern);
	sbt_write_str(remote_ws, "go", "");
	free(remote_ws);
	free(pattern);
	return clit_finish(t, &p, r);
}

static void conflict_keeps_both_versions_and_is_reported(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(conflicting_run(t, &r, NULL, NULL), 0);
	assert_non_null(strstr(r.err, "1 in conflict"));
	assert_non_null(strstr(r.err, "conflict: f.txt"));
	assert_non_null(strstr(r.err, "f.txt.sandbar-remote"));
	clit_res_free(&r);
	char *local = sbt_read(t->ws, "f.txt", NULL);
	char *remote = sbt_read(t->ws, "f.txt.sandbar-remote", NULL);
	char *other = sbt_read(t->ws, "other.txt", NULL);
	assert_string_equal(local, "local\n");
	assert_string_equal(remote, "remote\n");
	assert_string_equal(other, "other\n");
	free(local);
	free(remote);
	free(other);
}

static void conflict_in_json(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(conflicting_run(t, &r, "--json", NULL), 0);
	json_t *j = clit_json(r.out);
	json_t *ch = json_object_get(j, "changes");
	assert_true(clit_json_set_eq(json_object_get(ch, "conflicts"), CLIT_V("f.txt")));
	assert_true(clit_json_set_eq(json_object_get(ch, "added"), CLIT_V("other.txt")));
	json_decref(j);
	clit_res_free(&r);
	char *remote = sbt_read(t->ws, "f.txt.sandbar-remote", NULL);
	assert_string_equal(remote, "remote\n");
	free(remote);
}

static void conflict_fail_applies_nothing_and_exits_125(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(conflicting_run(t, &r, "--conflict", "fail"), 125);
	assert_non_null(strstr(r.err, "f.txt"));
	clit_res_free(&r);
	char *local = sbt_read(t->ws, "f.txt", NULL);
	assert_string_equal(local, "local\n");
	free(local);
	assert_null(sbt_read(t->ws, "f.txt.sandbar-remote", NULL));
	assert_null(sbt_read(t->ws, "other.txt", NULL));
}

static void conflict_take_remote_takes_it(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(conflicting_run(t, &r, "--conflict", "take-remote"), 0);
	assert_non_null(strstr(r.err, "f.txt"));
	clit_res_free(&r);
	char *f = sbt_read(t->ws, "f.txt", NULL);
	assert_string_equal(f, "remote\n");
	free(f);
	char *other = sbt_read(t->ws, "other.txt", NULL);
	assert_string_equal(other, "other\n");
	free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) CLIT_TEST(f)
	    T(conflict_keeps_both_versions_and_is_reported),
	    T(conflict_in_json),
	    T(conflict_fail_applies_nothing_and_exits_125),
	    T(conflict_take_remote_takes_it),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
