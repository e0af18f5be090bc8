/* The local disk filling up during a restore: the local workspace is a small tmpfs mounted in
 * this test's private mount namespace (we are root), and the remote side grew beyond it. The
 * restore must fail with an error that says the disk is full, leave every local file as it was,
 * and leave no staging behind; once there is room again, a restore completes.
 */
#include "harness.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static bool have_mounts;

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		print_message("no private mount namespace here (%s): skipping\n", strerror(errno));
		return 0;
	}
	have_mounts = true;
	return 0;
}

static void mount_small(const char *dir, const char *size)
{
	char *opts = sb_strfmt("size=%s,mode=0755", size);
	assert_int_equal(mount("tmpfs", dir, "tmpfs", 0, opts), 0);
	free(opts);
}

static void full_disk_fails_the_restore_and_keeps_local_files(bool command_path)
{
	SBT_REQUIRE(have_mounts, "needs root and a private mount namespace to mount a small tmpfs");
	char *local = sbt_mkdtemp("df-local");
	mount_small(local, "2m");
	char *ref = sbt_mkdtemp("df-ref");
	char *base = sbt_mkdtemp("df-remote");
	char *ws = sbt_path(base, "ws");
	for (int i = 0; i < 20; i++) {
		char *rel = sb_strfmt("src/f%d.txt", i);
		char *body = sb_strfmt("local version %d\n", i);
		sbt_write_str(local, rel, body);
		free(body);
		free(rel);
	}
	char half[512 * 1024];
	sbt_fill_random(half, sizeof half, 3);
	sbt_write(local, "data.bin", half, sizeof half, 0644);
	assert_int_equal(sbt_sh("cp -a '%s/.' '%s/'", local, ref), 0);

	sb_runner *runner = rth_runner(true);
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = ws},
	    .adapter_key = "claude",
	    .workspace_local_dir = local,
	    .force_command_path = command_path,
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	/* remote work: every small file changed, data.bin rewritten, and 4 MiB that cannot fit */
	for (int i = 0; i < 20; i++) {
		char *rel = sb_strfmt("src/f%d.txt", i);
		char *body = sb_strfmt("remote version %d\n", i);
		sbt_write_str(ws, rel, body);
		free(body);
		free(rel);
	}
	sbt_fill_random(half, sizeof half, 4);
	sbt_write(ws, "data.bin", half, sizeof half, 0644);
	assert_int_equal(sbt_sh("head -c 4194304 /dev/urandom > '%s/huge.bin'", ws), 0);

	sb_restore_report rep;
	sb_restore_report_init(&rep);
	sb_err *err = sb_runtime_restore(rt, NULL, &rep);
	assert_non_null(err);
	print_message("restore on a full disk: %s\n", err->msg);
	/* the user is told the disk is full, and where */
	assert_true(strstr(err->msg, "No space left on device") != NULL);
	assert_non_null(strstr(err->msg, local));
	sb_err_free(err);
	assert_int_equal(rep.n_added + rep.n_changed + rep.n_deleted, 0);
	sb_restore_report_deinit(&rep);
	rth_assert_trees_equal(ref, local, NULL);

	/* room again: the same restore completes */
	assert_int_equal(mount("tmpfs", local, "tmpfs", MS_REMOUNT, "size=16m"), 0);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, NULL));
	rth_assert_trees_equal(ws, local, (const char *const[]){".paperclip-runtime", NULL});

	sb_runtime_free(rt);
	sb_runner_free(runner);
	free(ws);
	sbt_rmtree(base);
	sbt_rmtree(ref);
	assert_int_equal(umount2(local, MNT_DETACH), 0);
	sbt_rmtree(local);
}

static void native_restore_on_a_full_disk(void **state)
{
	(void)state;
	full_disk_fails_the_restore_and_keeps_local_files(false);
}

static void command_path_restore_on_a_full_disk(void **state)
{
	(void)state;
	full_disk_fails_the_restore_and_keeps_local_files(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(native_restore_on_a_full_disk),
	    cmocka_unit_test(command_path_restore_on_a_full_disk),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
