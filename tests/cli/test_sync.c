/* cli.sync: `sandbar run --keep`, then `sandbar push` / `sandbar exec` / `sandbar pull`
 * against the kept lease: a pull merges the lease's changes, the next pull only brings what
 * changed since, --exclude given to push holds in both directions. */
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static char *run_keep(clit *t)
{
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, NULL, CLIT_V("run", "--keep", "--json", "-w", t->ws, "--", "true")), 0);
	json_t *j = clit_json(r.out);
	char *id = sb_xstrdup(json_string_value(json_object_get(j, "lease_id")));
	assert_non_null(strstr(r.err, id)); /* "lease ... kept" */
	json_decref(j);
	clit_res_free(&r);
	return id;
}

static void exec_in(clit *t, const char *id, const char *script)
{
	clit_res r;
	int code =
	    clit_run(t, &r, NULL, CLIT_V("exec", "-q", "--lease", id, "--", "sh", "-c", script));
	if (code != 0) {
		print_error("exec `%s`: exit %d\n%s\n", script, code, r.err);
		fail();
	}
	clit_res_free(&r);
}

static json_t *pull_json(clit *t, const char *id, int want)
{
	clit_res r;
	int code = clit_run(t, &r, NULL, CLIT_V("pull", "--json", "--lease", id));
	if (code != want) {
		print_error("pull: exit %d\n%s\n", code, r.err);
		fail();
	}
	json_t *j = clit_json(r.out);
	clit_res_free(&r);
	return j;
}

static void push_exec_pull_and_pull_again(void **state)
{
	clit *t = *state;
	char *id = run_keep(t);
	sbt_write_str(t->ws, "a.txt", "a1\n");
	sbt_write_str(t->ws, "old.txt", "old\n");
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("push", "--lease", id, "-w", t->ws)), 0);
	assert_non_null(strstr(r.err, "staged into lease"));
	clit_res_free(&r);
	exec_in(t, id,
	        "cat a.txt >/dev/null && echo a2 > a.txt && echo one > one.txt && rm old.txt");
	json_t *j = pull_json(t, id, 0);
	json_t *ch = json_object_get(j, "changes");
	assert_true(clit_json_set_eq(json_object_get(ch, "added"), CLIT_V("one.txt")));
	assert_true(clit_json_set_eq(json_object_get(ch, "changed"), CLIT_V("a.txt")));
	assert_true(clit_json_set_eq(json_object_get(ch, "deleted"), CLIT_V("old.txt")));
	assert_string_equal(json_string_value(json_object_get(j, "lease_id")), id);
	json_decref(j);
	char *a = sbt_read(t->ws, "a.txt", NULL), *one = sbt_read(t->ws, "one.txt", NULL);
	assert_string_equal(a, "a2\n");
	assert_string_equal(one, "one\n");
	assert_null(sbt_read(t->ws, "old.txt", NULL));
	free(a);
	free(one);

	/* The second pull brings only what changed since the first. */
	exec_in(t, id, "echo two > two.txt");
	j = pull_json(t, id, 0);
	ch = json_object_get(j, "changes");
	assert_true(clit_json_set_eq(json_object_get(ch, "added"), CLIT_V("two.txt")));
	assert_true(clit_json_set_eq(json_object_get(ch, "changed"), CLIT_V(NULL)));
	assert_true(clit_json_set_eq(json_object_get(ch, "deleted"), CLIT_V(NULL)));
	json_decref(j);
	j = pull_json(t, id, 0);
	ch = json_object_get(j, "changes");
	assert_true(clit_json_set_eq(json_object_get(ch, "added"), CLIT_V(NULL)));
	assert_true(clit_json_set_eq(json_object_get(ch, "changed"), CLIT_V(NULL)));
	json_decref(j);
	char *two = sbt_read(t->ws, "two.txt", NULL);
	assert_string_equal(two, "two\n");
	free(two);

	/* Both sides edit a.txt: the default keeps ours and writes theirs beside it. */
	exec_in(t, id, "echo remote > a.txt");
	sbt_write_str(t->ws, "a.txt", "local\n");
	j = pull_json(t, id, 0);
	ch = json_object_get(j, "changes");
	assert_true(clit_json_set_eq(json_object_get(ch, "conflicts"), CLIT_V("a.txt")));
	json_decref(j);
	a = sbt_read(t->ws, "a.txt", NULL);
	char *theirs = sbt_read(t->ws, "a.txt.sandbar-remote", NULL);
	assert_string_equal(a, "local\n");
	assert_string_equal(theirs, "remote\n");
	free(a);
	free(theirs);
	free(id);
}

static void push_exclude_holds_both_ways(void **state)
{
	clit *t = *state;
	char *id = run_keep(t);
	sbt_write_str(t->ws, "secret/k", "mine\n");
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("push", "-q", "--lease", id, "-w", t->ws, "--exclude", "secret")),
	    0);
	clit_res_free(&r);
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("exec", "-q", "--lease", id, "--", "sh", "-c",
	                    "if [ -e secret/k ]; then echo staged; else echo absent; fi; "
	                    "mkdir -p secret; echo theirs > secret/k; echo x > x.txt")),
	    0);
	assert_string_equal(r.out, "absent\n");
	clit_res_free(&r);
	json_t *j = pull_json(t, id, 0);
	assert_true(clit_json_set_eq(json_object_get(json_object_get(j, "changes"), "added"),
	                             CLIT_V("x.txt")));
	json_decref(j);
	char *k = sbt_read(t->ws, "secret/k", NULL);
	assert_string_equal(k, "mine\n");
	free(k);
	free(id);
}

static bool list_offers_pull(clit *t, const char *id)
{
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "list")), 0);
	char *hint = sb_strfmt("finish with: sandbar pull %s\n", id);
	bool offered = strstr(r.out, hint) != NULL;
	free(hint);
	clit_res_free(&r);
	return offered;
}

/* `sandbar lease list` offers `sandbar pull` only while there is something to bring back:
 * after a push, not after the pull that brought it (it said so forever, the baseline a pull
 * leaves looking like staged work), and again after the next push. */
static void lease_list_offers_a_pull_only_while_work_is_pending(void **state)
{
	clit *t = *state;
	char *id = run_keep(t);
	sbt_write_str(t->ws, "a.txt", "a1\n");
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("push", "-q", "--lease", id, "-w", t->ws)),
	                 0);
	clit_res_free(&r);
	assert_true(list_offers_pull(t, id));
	exec_in(t, id, "echo a2 > a.txt");
	json_decref(pull_json(t, id, 0));
	assert_false(list_offers_pull(t, id));
	json_t *o = clit_find_lease(t, id);
	assert_non_null(o);
	assert_true(json_is_null(json_object_get(o, "finish")));
	json_decref(o);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("push", "-q", "--lease", id, "-w", t->ws)),
	                 0);
	clit_res_free(&r);
	assert_true(list_offers_pull(t, id));
	free(id);
}

/* `sandbar run --keep` whose restore succeeded leaves nothing to pull, and its saved state is
 * the restored one: a later pull of what the lease changed since applies cleanly, with no
 * conflict against the run's own changes. */
static void a_kept_run_whose_work_came_back_offers_no_pull(void **state)
{
	clit *t = *state;
	sbt_write_str(t->ws, "a.txt", "a0\n");
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("run", "-q", "--keep", "--json", "-w", t->ws, "--", "sh",
	                                 "-c", "echo a1 > a.txt")),
	                 0);
	json_t *j = clit_json(r.out);
	char *id = sb_xstrdup(json_string_value(json_object_get(j, "lease_id")));
	json_decref(j);
	clit_res_free(&r);
	char *a = sbt_read(t->ws, "a.txt", NULL);
	assert_string_equal(a, "a1\n");
	free(a);
	assert_false(list_offers_pull(t, id));
	exec_in(t, id, "echo a2 > a.txt");
	j = pull_json(t, id, 0);
	assert_int_equal(
	    json_array_size(json_object_get(json_object_get(j, "changes"), "conflicts")), 0);
	json_decref(j);
	a = sbt_read(t->ws, "a.txt", NULL);
	assert_string_equal(a, "a2\n");
	free(a);
	free(id);
}

static void pull_before_push_and_unknown_lease_are_125(void **state)
{
	clit *t = *state;
	clit_res r;
	char *id = clit_acquire(t);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("pull", "--lease", id)), 125);
	assert_non_null(strstr(r.err, "sandbar push"));
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("push", "--lease", "lease-nope")), 125);
	assert_non_null(strstr(r.err, "lease-nope"));
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("pull", "--lease", id, "-w", t->ws)), 125);
	assert_non_null(strstr(r.err, "--workspace"));
	clit_res_free(&r);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) CLIT_TEST(f)
	    T(push_exec_pull_and_pull_again),
	    T(push_exclude_holds_both_ways),
	    T(lease_list_offers_a_pull_only_while_work_is_pending),
	    T(a_kept_run_whose_work_came_back_offers_no_pull),
	    T(pull_before_push_and_unknown_lease_are_125),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
