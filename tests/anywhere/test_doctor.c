/* anywhere.doctor: `sandbar doctor` (the copied binary, state directory in a 0700 tree) on this
 * healthy host creates a sandbox and exits 0; with a PATH that lacks bwrap it exits non-zero
 * and names bubblewrap with the command that installs it. */
#include "anyt.h"

#include <string.h>

static void healthy_host(void **state)
{
	anyt *a = *state;
	clit_res r;
	int code = clit_run(&a->t, &r, NULL, CLIT_V("doctor"));
	if (code != 0)
		print_error("sandbar doctor: %d\n%s\n%s\n", code, r.out, r.err);
	assert_int_equal(code, 0);
	assert_non_null(strstr(r.out, "ok    sandbox "));
	assert_non_null(strstr(r.out, "ok    bubblewrap "));
	assert_null(strstr(r.out, "FAIL"));
	clit_res_free(&r);
}

static void path_without_bwrap(void **state)
{
	anyt *a = *state;
	char *empty = sbt_path(a->t.root, "empty-bin");
	SB_ASSERT_OK(sb_fs_mkdir_p(empty, 0700));
	char *path = sb_strfmt("PATH=%s", empty);
	clit_res r;
	int code = clit_run(&a->t, &r, CLIT_V(path), CLIT_V("doctor"));
	assert_int_not_equal(code, 0);
	assert_non_null(strstr(r.out, "FAIL  bubblewrap"));
	assert_non_null(strstr(r.out, "apt-get install bubblewrap"));
	assert_non_null(strstr(r.out, "FAIL  sandbox"));
	clit_res_free(&r);
	free(path);
	free(empty);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(healthy_host, anyt_setup, anyt_teardown),
	    cmocka_unit_test_setup_teardown(path_without_bwrap, anyt_setup, anyt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
