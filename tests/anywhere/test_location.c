/* anywhere.location: the built binaries, copied into a 0700 tree whose path has spaces, with
 * the state directory and the workspace in it too, run a sandboxed command and bring its
 * change back. Nothing is chmod'ed: the tree is still 0700 afterwards. */
#include "anyt.h"

#include <sys/stat.h>

static void sandboxed_command_from_a_private_tree(void **state)
{
	anyt *a = *state;
	sbt_write_str(a->t.ws, "a", "from the host\n");
	clit_res r;
	int code = clit_run(&a->t, &r, NULL,
	                    CLIT_V("run", "-q", "-w", a->t.ws, "--", "sh", "-c",
	                           "cat a && echo made inside > b && id -u"));
	if (code != 0)
		print_error("sandbar run: %d\n%s\n", code, r.err);
	assert_int_equal(code, 0);
	assert_string_equal(r.out, "from the host\n1000\n");
	char *b = sbt_read(a->t.ws, "b", NULL);
	assert_non_null(b);
	assert_string_equal(b, "made inside\n");
	free(b);
	clit_res_free(&r);
	struct stat st;
	assert_int_equal(stat(a->t.root, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(a->t.state, &st), 0);
	assert_int_equal(st.st_mode & 0077, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(sandboxed_command_from_a_private_tree, anyt_setup,
	                                    anyt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
