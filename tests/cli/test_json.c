/* cli.json: `sandbar run --json` prints exactly one result object on stdout, after the
 * command's output, which then goes to stderr; every documented field is checked. */
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static void check_phases(json_t *j)
{
	json_t *ph = json_object_get(j, "phases");
	assert_true(json_is_object(ph));
	for (const char *const *k =
	         CLIT_V("acquire_ms", "prepare_ms", "exec_ms", "restore_ms", "release_ms");
	     *k; k++) {
		json_t *v = json_object_get(ph, *k);
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			print_error("phases.%s is not a non-negative integer\n", *k);
			fail();
		}
	}
}

static void json_reports_every_field(void **state)
{
	clit *t = *state;
	sbt_write_str(t->ws, "edit.txt", "v1\n");
	sbt_write_str(t->ws, "gone.txt", "bye\n");
	sbt_write_str(t->ws, "sub/deep/old.txt", "old\n");
	char big[8192];
	sbt_fill_random(big, sizeof big, 7);
	sbt_write(t->ws, "blob.bin", big, sizeof big, 0644);
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("run", "--json", "-w", t->ws, "--", "sh", "-c",
	                                 "echo command-stdout; echo command-stderr >&2; "
	                                 "echo v2 > edit.txt; rm gone.txt sub/deep/old.txt; "
	                                 "mkdir -p sub/new; echo n > sub/new/made.txt; exit 4")),
	                 4);
	/* stdout is the JSON object and nothing else. */
	assert_null(strstr(r.out, "command-stdout"));
	assert_non_null(strstr(r.err, "command-stdout\n"));
	assert_non_null(strstr(r.err, "command-stderr\n"));
	/* The object replaces the human summary (sandbar(1)). */
	assert_null(strstr(r.err, "in conflict;"));
	size_t len = strlen(r.out);
	assert_true(len > 0 && r.out[len - 1] == '\n');
	assert_null(memchr(r.out, '\n', len - 1));
	json_t *j = clit_json(r.out);
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 4);
	assert_true(json_is_integer(json_object_get(j, "exit_code")));
	assert_true(json_is_null(json_object_get(j, "signal")));
	assert_true(json_is_false(json_object_get(j, "timed_out")));
	const char *lease = json_string_value(json_object_get(j, "lease_id"));
	assert_non_null(lease);
	assert_true(strlen(lease) > 0);
	check_phases(j);
	json_t *up = json_object_get(j, "bytes_up"), *down = json_object_get(j, "bytes_down");
	assert_true(json_is_integer(up) && json_is_integer(down));
	/* The staged tree holds blob.bin whole; the restored one holds the new file. */
	assert_true(json_integer_value(up) >= (json_int_t)sizeof big);
	assert_true(json_integer_value(down) > 0);
	json_t *ch = json_object_get(j, "changes");
	assert_true(json_is_object(ch));
	assert_true(clit_json_set_eq(json_object_get(ch, "added"), CLIT_V("sub/new/made.txt")));
	assert_true(clit_json_set_eq(json_object_get(ch, "changed"), CLIT_V("edit.txt")));
	assert_true(clit_json_set_eq(json_object_get(ch, "deleted"),
	                             CLIT_V("gone.txt", "sub/deep/old.txt")));
	assert_true(json_is_array(json_object_get(ch, "conflicts")));
	assert_int_equal(json_array_size(json_object_get(ch, "conflicts")), 0);
	/* The lease was released. */
	char *dir = sb_strfmt("%s/leases/%s", t->state, lease);
	assert_int_not_equal(sbt_sh("test -e '%s'", dir), 0);
	free(dir);
	json_decref(j);
	clit_res_free(&r);
	char *made = sbt_read(t->ws, "sub/new/made.txt", NULL);
	assert_string_equal(made, "n\n");
	free(made);
}

static void json_reports_a_signal(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("run", "--json", "-q", "-w", t->ws, "--", "sh", "-c", "kill -TERM $$")),
	    128 + 15);
	json_t *j = clit_json(r.out);
	assert_true(json_is_null(json_object_get(j, "exit_code")));
	const char *sig = json_string_value(json_object_get(j, "signal"));
	assert_non_null(sig);
	assert_non_null(strstr(sig, "TERM"));
	assert_true(json_is_false(json_object_get(j, "timed_out")));
	check_phases(j);
	json_decref(j);
	clit_res_free(&r);
}

static void json_reports_a_timeout(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("run", "--json", "-q", "--timeout", "100ms", "-w", t->ws,
	                                 "--", "sleep", "30")),
	                 124);
	json_t *j = clit_json(r.out);
	assert_true(json_is_true(json_object_get(j, "timed_out")));
	json_decref(j);
	clit_res_free(&r);
}

static void json_with_keep_names_the_kept_lease(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("run", "--json", "--keep", "-q", "-w", t->ws, "--", "true")),
	    0);
	json_t *j = clit_json(r.out);
	const char *lease = json_string_value(json_object_get(j, "lease_id"));
	assert_non_null(lease);
	char *dir = sb_strfmt("%s/leases/%s", t->state, lease);
	assert_int_equal(sbt_sh("test -d '%s'", dir), 0);
	free(dir);
	json_decref(j);
	clit_res_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) CLIT_TEST(f)
	    T(json_reports_every_field),
	    T(json_reports_a_signal),
	    T(json_reports_a_timeout),
	    T(json_with_keep_names_the_kept_lease),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
