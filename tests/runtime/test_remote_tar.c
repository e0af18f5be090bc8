/* The remote archive step of restore (spec §2.6, §6.2, §8.1) through real runners: tar's exit 1
 * ("file changed as we read it") is tolerated, exit 2 fails with tar's stdout in the error, an
 * empty workspace archives to 1024 zero bytes, and no archive ever has a "./" self-entry.
 */
#include "harness.h"
#include "runtime/rt.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* A runtime prepared from a local tree holding one file. */
static void start_prepared(rth_env *e)
{
	rth_env_init(e, true);
	sbt_write_str(e->local, "a.txt", "base\n");
	rth_env_prepare(e);
}

/* tar on the remote PATH: `-cf` runs the real tar, then does `after`. */
static void shim_tar(rth_env *e, const char *after)
{
	char *real = sbt_sh_out("command -v tar");
	real[strcspn(real, "\n")] = '\0';
	char *dir = sbt_path(e->base, "shim");
	char *script =
	    sb_strfmt("#!/bin/sh\n"
	              "if [ \"$1\" = \"-cf\" ] || [ \"$1\" = \"-c\" ]; then '%s' \"$@\"; %s; fi\n"
	              "exec '%s' \"$@\"\n",
	              real, after, real);
	sbt_write(dir, "tar", script, strlen(script), 0755);
	char *path = sb_strfmt("PATH=%s:/usr/local/bin:/usr/bin:/bin", dir);
	rth_rec_add_env(e->rec, path);
	free(path);
	free(script);
	free(dir);
	free(real);
}

static void tar_exit_one_is_tolerated(void **state)
{
	(void)state;
	rth_env e;
	start_prepared(&e);
	shim_tar(&e, "echo 'tar: .: file changed as we read it' >&2; exit 1");
	sbt_write_str(e.ws, "a.txt", "remote\n");
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, NULL));
	rth_assert_file(e.local, "a.txt", "remote\n");
	rth_env_free(&e);
}

static void tar_exit_two_fails_with_stdout(void **state)
{
	(void)state;
	rth_env e;
	start_prepared(&e);
	shim_tar(&e, "echo 'tar: workspace-download.tar: Cannot open: Permission denied'; exit 2");
	sbt_write_str(e.ws, "a.txt", "remote\n");
	sb_err *err = sb_runtime_restore(e.rt, NULL, NULL);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "failed with exit code 2"));
	assert_non_null(strstr(
	    err->msg, "stdout: tar: workspace-download.tar: Cannot open: Permission denied"));
	sb_err_free(err);
	rth_assert_file(e.local, "a.txt", "base\n");
	rth_env_free(&e);
}

static char *run_archive(rth_env *e, const char *dir, const char *tar)
{
	sb_rt_ctx c = {.runner = e->runner, .shell = "sh", .timeout_ms = 60000};
	sb_excludes ex;
	sb_excludes_init(&ex);
	sb_excludes_add(&ex, ".paperclip-runtime");
	sb_excludes_add_dir(&ex, "node_modules");
	char *script = sb_rt_script_archive(dir, tar, &ex);
	SB_ASSERT_OK(sb_rt_run(&c, script, NULL, NULL, 0, NULL));
	free(script);
	sb_excludes_deinit(&ex);
	return sbt_sh_out("tar -tf '%s' | LC_ALL=C sort", tar);
}

static void empty_workspace_archive_is_1024_zero_bytes(void **state)
{
	(void)state;
	rth_env e;
	start_prepared(&e);
	char *dir = sbt_path(e.base, "empty");
	SB_ASSERT_OK(sb_fs_mkdir_p(dir, 0755));
	sbt_write_str(dir, ".paperclip-runtime/x", "overlay only\n");
	char *tar = sbt_path(e.base, "out/empty.tar");
	char *list = run_archive(&e, dir, tar);
	assert_string_equal(list, "");
	size_t len = 0;
	char *bytes = sbt_read(e.base, "out/empty.tar", &len);
	assert_int_equal(len, 1024);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(bytes[i], 0);
	free(bytes);
	free(list);
	free(tar);
	free(dir);
	rth_env_free(&e);
}

static void archives_have_no_self_entry(void **state)
{
	(void)state;
	rth_env e;
	start_prepared(&e);
	char *dir = sbt_path(e.base, "tree");
	sbt_write_str(dir, "plain", "p\n");
	sbt_write_str(dir, ".hidden", "h\n");
	sbt_write_str(dir, "..double", "d\n");
	sbt_write_str(dir, "sub/node_modules/x", "heavy\n");
	sbt_write_str(dir, "._apple", "a\n");
	char *tar = sbt_path(e.base, "tree.tar");
	char *list = run_archive(&e, dir, tar);
	assert_string_equal(list, "..double\n.hidden\nplain\nsub/\n");
	free(list);
	/* and the host-side archive (libarchive) of the same tree */
	int fd = open(tar, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	sb_excludes ex;
	sb_excludes_init(&ex);
	sb_excludes_add_dir(&ex, "node_modules");
	SB_ASSERT_OK(sb_tar_create(dir, &ex, false, fd, NULL));
	close(fd);
	sb_excludes_deinit(&ex);
	list = sbt_sh_out("tar -tf '%s' | LC_ALL=C sort", tar);
	assert_null(strstr(list, "./"));
	assert_non_null(strstr(list, ".hidden"));
	assert_null(strstr(list, "._apple"));
	assert_null(strstr(list, "node_modules"));
	free(list);
	free(tar);
	free(dir);
	rth_env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tar_exit_one_is_tolerated),
	    cmocka_unit_test(tar_exit_two_fails_with_stdout),
	    cmocka_unit_test(empty_workspace_archive_is_1024_zero_bytes),
	    cmocka_unit_test(archives_have_no_self_entry),
	};
	return rth_run_both("runtime.remote_tar", tests, sizeof tests / sizeof tests[0]);
}
