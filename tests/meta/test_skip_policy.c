/* sbt_skip never lets a test pass quietly: without SANDBAR_ALLOW_SKIP=1 the case fails (and the
 * program exits non-zero); with it the case is skipped, prints the SBT_SKIP_MARKER line naming
 * the case and its reason, and appends that line to $SBT_SKIP_LOG. The program runs itself with
 * the argument "case" to get a test that cannot run. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void cannot_run_here(void **state)
{
	(void)state;
	sbt_skip("the meta fixture asks for %s", "something absent");
}

static char *self;

static void skipping_fails_by_default(void **state)
{
	(void)state;
	char *out = sbt_sh_out("env -u SANDBAR_ALLOW_SKIP -u SBT_SKIP_LOG CI=true '%s' case 2>&1; "
	                       "echo \"exit=$?\"",
	                       self);
	print_message("%s", out);
	assert_non_null(strstr(out, "cannot_run_here cannot run here: the meta fixture asks for "
	                            "something absent"));
	assert_non_null(strstr(out, "SANDBAR_ALLOW_SKIP=1"));
	assert_null(strstr(out, SBT_SKIP_MARKER));
	assert_null(strstr(out, "exit=0"));
	free(out);
	/* any other value than 1 is not an explicit permission either */
	out =
	    sbt_sh_out("SANDBAR_ALLOW_SKIP=yes '%s' case >/dev/null 2>&1; echo \"exit=$?\"", self);
	assert_null(strstr(out, "exit=0"));
	free(out);
	/* and under CI even the permission does not make a skip pass */
	out = sbt_sh_out("SANDBAR_ALLOW_SKIP=1 CI=true '%s' case >/dev/null 2>&1; "
	                 "echo \"exit=$?\"",
	                 self);
	assert_null(strstr(out, "exit=0"));
	free(out);
}

static void allowed_skip_is_named_and_logged(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("skip-policy");
	char *log = sbt_path(dir, "skipped.txt");
	char *out = sbt_sh_out("env -u CI SANDBAR_ALLOW_SKIP=1 SBT_SKIP_LOG='%s' '%s' case 2>&1; "
	                       "echo \"exit=$?\"",
	                       log, self);
	print_message("%s", out);
	assert_non_null(strstr(out, "exit=0"));
	const char *m = strstr(out, SBT_SKIP_MARKER);
	assert_non_null(m);
	assert_non_null(strstr(m, "cannot_run_here"));
	assert_non_null(strstr(m, "something absent"));
	char *logged = sbt_read(dir, "skipped.txt", NULL);
	assert_non_null(logged);
	assert_true(strncmp(logged, SBT_SKIP_MARKER, strlen(SBT_SKIP_MARKER)) == 0);
	assert_non_null(strstr(logged, "cannot_run_here"));
	assert_non_null(strstr(logged, "something absent"));
	free(logged);
	free(out);
	free(log);
	sbt_rmtree(dir);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "case") == 0) {
		const struct CMUnitTest one[] = {cmocka_unit_test(cannot_run_here)};
		return cmocka_run_group_tests(one, NULL, NULL);
	}
	self = argv[0];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(skipping_fails_by_default),
	    cmocka_unit_test(allowed_skip_is_named_and_logged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
