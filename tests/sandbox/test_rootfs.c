/* A lease on a configured root file system instead of the host's system directories: only
 * that tree (read-only) plus the sandbox's own workspace, home, /tmp, /proc and /dev. */
#include "sbx.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void rootfs_replaces_the_host_system_directories(void **s)
{
	(void)s;
	/* not built with a dynamically linked sandbar-init (tests/sandbox/CMakeLists.txt) */
	assert_true(SBX_INIT_STATIC);
	char *state = sbx_state_dir();
	char *root = sbt_mkdtemp("sbx-rootfs");
	/* the top of a root file system is 0755 like any "/" (mkdtemp made it 0700); where it
	 * lives does not matter: it is bound from a descriptor */
	assert_int_equal(chmod(root, 0755), 0);
	sbt_write_str(root, "etc/marker", "from the rootfs\n");
	sbt_write_str(root, "home/someone/file", "not visible\n");
	char *bin = sbt_path(root, "bin");
	assert_int_equal(mkdir(bin, 0755), 0);
	char *cmd = sb_strfmt("cp '%s/sbx-probe' '%s/probe'", SB_TEST_BUILD_DIR, bin);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(bin);

	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	cfg.rootfs = root;
	sb_sandbox *sb = NULL;
	SB_ASSERT_OK(sb_sandbox_create(&cfg, "rootfs", NULL, &sb));
	char *argv[] = {"/bin/probe", "rootfs", NULL};
	sbx_result r;
	sbx_run(sb, argv, 60000, &r);
	const char *o = sb_buf_cstr(&r.out);
	if (!r.st.has_exit_code || r.st.exit_code != 0)
		print_error("probe: %s%s\n", o, sb_buf_cstr(&r.err));
	assert_non_null(strstr(o, "/usr/bin/sh=absent"));
	assert_non_null(strstr(o, "/etc/marker=present"));
	assert_non_null(strstr(o, "/workspace=present"));
	assert_non_null(strstr(o, "/home/sandbox=present"));
	assert_non_null(strstr(o, "/tmp=present"));
	assert_non_null(strstr(o, "/proc/self=present"));
	assert_non_null(strstr(o, "/root=absent"));
	assert_non_null(strstr(o, "marker=from the rootfs\n"));
	assert_null(strstr(o, "write_etc=ok"));
	sbx_result_free(&r);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbt_rmtree(root);
	sbx_state_free(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rootfs_replaces_the_host_system_directories),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
