/* base.helper_program: how sandbar finds its own programs (sb_helper_program). The variable
 * wins, as given; the build path counts only when executable; the install path is the last
 * word even when missing. (Beside the running program: the cli and anywhere tests, whose
 * sandbar finds sandbar-serve and sandbar-init next to it.) */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void the_variable_wins_as_given(void **state)
{
	(void)state;
	setenv("SBT_HELPER", "/nowhere/x", 1);
	char *p = sb_helper_program("SBT_HELPER", "sandbar-nothing", NULL, "/install/x");
	assert_string_equal(p, "/nowhere/x");
	free(p);
	setenv("SBT_HELPER", "", 1); /* empty: as if unset */
	p = sb_helper_program("SBT_HELPER", "sandbar-nothing", NULL, "/install/x");
	assert_string_equal(p, "/install/x");
	free(p);
	unsetenv("SBT_HELPER");
}

static void an_executable_build_path_comes_before_the_install_path(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("helper");
	char *built = sbt_path(dir, "sandbar-nothing");
	assert_int_equal(sbt_sh("printf '#!/bin/sh\\n' > '%s'", built), 0);
	/* not executable: skipped */
	char *p = sb_helper_program("SBT_HELPER_UNSET", "sandbar-nothing", built, "/install/x");
	assert_string_equal(p, "/install/x");
	free(p);
	assert_int_equal(chmod(built, 0755), 0);
	p = sb_helper_program("SBT_HELPER_UNSET", "sandbar-nothing", built, "/install/x");
	assert_string_equal(p, built);
	free(p);
	sbt_sh("rm -rf '%s'", dir);
	free(built);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_variable_wins_as_given),
	    cmocka_unit_test(an_executable_build_path_comes_before_the_install_path),
	};
	return cmocka_run_group_tests_name("base.helper_program", tests, NULL, NULL);
}
