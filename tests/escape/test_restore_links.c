/* The host side of the runner seam following links planted by sandboxed code: sync_out, the
 * managed runtime's restore (native and command path) and prepare through the sandbox runner.
 * The targets are host paths outside the workspace that the sandbox's host user may read and
 * write, so only confinement protects them. A planted link comes back as a link (never its
 * target's content), a directory replaced by a link never makes the merge delete or write
 * through it, and a directory flipped to a link and back while a transfer runs never makes the
 * transfer read or write outside.
 */
#include "harness.h"
#include "sbx.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sandbar/sandbox.h>

#define SECRET "host-secret-9876543210"

static char *state;
static sb_sandbox *sb;
static sb_runner *run;
static char *OUT; /* host dir outside the workspace, owned by the sandbox's host user */

static int setup(void **s)
{
	(void)s;
	state = sbx_state_dir();
	sb = sbx_create(state, "esc-links", NULL);
	SB_ASSERT_OK(sb_sandbox_runner_new(sb, NULL, &run));
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	OUT = sbt_mkdtemp("esc-out");
	sbt_write_str(OUT, "secret.txt", SECRET "\n");
	sbt_write_str(OUT, "a.txt", "host a\n");
	assert_int_equal(sbt_sh("chown -R %lld:%lld '%s' && chmod 0755 '%s'",
	                        (long long)info.host_uid, (long long)info.host_gid, OUT, OUT),
	                 0);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	sb_runner_free(run);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
	sbt_rmtree(OUT);
	return 0;
}

static void sh_ok(const char *script)
{
	sbx_result r;
	sbx_sh(sb, script, &r);
	if (!r.st.has_exit_code || r.st.exit_code != 0)
		fail_msg("script failed: %s: %s", script, sb_buf_cstr(&r.err));
	sbx_result_free(&r);
}

static void assert_outside_untouched(void)
{
	char *list = sbt_sh_out("ls -A '%s'", OUT);
	assert_string_equal(list, "a.txt\nsecret.txt\n");
	free(list);
	rth_assert_file(OUT, "secret.txt", SECRET "\n");
	rth_assert_file(OUT, "a.txt", "host a\n");
}

/* No regular file under dir holds the secret (links are not followed). */
static void assert_no_secret_in(const char *dir)
{
	assert_int_not_equal(sbt_sh("grep -r -q '%s' '%s' 2>/dev/null", SECRET, dir), 0);
}

static sb_runtime *prepare(const char *local, bool command_path)
{
	sb_runtime_prepare_opts o = {
	    .runner = run,
	    .spec = {.remote_cwd = "/workspace"},
	    .adapter_key = "claude",
	    .workspace_local_dir = local,
	    .force_command_path = command_path,
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	return rt;
}

static void planted_links_come_back_as_links(bool command_path)
{
	char *local = sbt_mkdtemp("esc-local");
	sbt_write_str(local, "keep.txt", "local\n");
	sb_runtime *rt = prepare(local, command_path);
	char *script = sb_strfmt("cd /workspace && ln -s '%s/secret.txt' filelink && "
	                         "ln -s '%s' dirlink && mkdir -p deep/er && "
	                         "ln -s ../../../../../../../../../../..'%s' deep/er/up",
	                         OUT, OUT, OUT);
	sh_ok(script);
	free(script);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, NULL));
	static const char *const links[] = {"filelink", "dirlink", "deep/er/up"};
	for (size_t i = 0; i < 3; i++) {
		char *p = sbt_path(local, links[i]);
		struct stat st;
		assert_int_equal(lstat(p, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		free(p);
	}
	assert_no_secret_in(local);
	assert_outside_untouched();
	sb_runtime_free(rt);
	sbt_rmtree(local);
}

static void native_restore_keeps_planted_links(void **s)
{
	(void)s;
	planted_links_come_back_as_links(false);
}

static void command_restore_keeps_planted_links(void **s)
{
	(void)s;
	planted_links_come_back_as_links(true);
}

/* The remote replaced the directory sub/ (with a.txt in it, unchanged locally) by a link to
 * OUT, which holds an a.txt of its own: the merge deletes the local sub/a.txt and places the
 * link, and never deletes or writes OUT/a.txt through it. */
static void directory_replaced_by_a_link(bool command_path)
{
	char *local = sbt_mkdtemp("esc-local");
	sbt_write_str(local, "sub/a.txt", "local a\n");
	sbt_write_str(local, "sub/b.txt", "local b\n");
	sb_runtime *rt = prepare(local, command_path);
	char *script = sb_strfmt("cd /workspace && rm -rf sub && ln -s '%s' sub", OUT);
	sh_ok(script);
	free(script);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	sb_err *err = sb_runtime_restore(rt, NULL, &rep);
	print_message("restore: %s, %zu conflicts\n", err ? err->msg : "ok", rep.n_conflicts);
	sb_err_free(err);
	sb_restore_report_deinit(&rep);
	assert_outside_untouched();
	assert_no_secret_in(local);
	/* and with take-remote, which forces remote changes over local ones */
	sbt_write_str(local, "sub2/a.txt", "x\n");
	sb_runtime_free(rt);
	rt = prepare(local, command_path);
	script = sb_strfmt("cd /workspace && rm -rf sub2 && ln -s '%s' sub2", OUT);
	sh_ok(script);
	free(script);
	sbt_write_str(local, "sub2/a.txt", "changed locally\n");
	sb_runtime_restore_opts ro = {.policy = SB_CONFLICT_TAKE_REMOTE};
	err = sb_runtime_restore(rt, &ro, NULL);
	sb_err_free(err);
	assert_outside_untouched();
	sb_runtime_free(rt);
	sbt_rmtree(local);
}

static void native_restore_never_follows_a_replaced_directory(void **s)
{
	(void)s;
	directory_replaced_by_a_link(false);
}

static void command_restore_never_follows_a_replaced_directory(void **s)
{
	(void)s;
	directory_replaced_by_a_link(true);
}

/* Sandboxed code flips race/ between a directory (holding a file) and a link to OUT while the
 * host restores and prepares again and again. */
static void start_flipper(void)
{
	char *script = sb_strfmt("cd /workspace && timeout 600 sh -c 'while :; do rm -rf race; "
	                         "mkdir race; echo inside > race/f.txt; rm -rf race; "
	                         "ln -s %s race; done' >/dev/null 2>&1 & echo $! > /tmp/flip.pid",
	                         OUT);
	sh_ok(script);
	free(script);
}

static void swapped_directory_never_leads_a_transfer_outside(bool command_path)
{
	char *local = sbt_mkdtemp("esc-local");
	sbt_write_str(local, "race/new.txt", "pwned\n");
	sbt_write_str(local, "race/secret.txt", "local copy\n");
	sb_runtime *rt = prepare(local, command_path);
	start_flipper();
	int ok = 0, failed = 0;
	for (int i = 0; i < 25; i++) {
		/* restore: reads the remote race/ (sync_out or remote tar) */
		sb_err *err = sb_runtime_restore(rt, NULL, NULL);
		if (err)
			failed++;
		else
			ok++;
		sb_err_free(err);
		assert_no_secret_in(local);
		/* prepare: writes race/ into the remote (sync_in or remote tar -x) */
		sb_runtime_free(rt);
		assert_int_equal(sbt_sh("rm -rf '%s'/race && mkdir -p '%s/race' && echo pwned > "
		                        "'%s/race/new.txt'",
		                        local, local, local),
		                 0);
		sb_runtime_prepare_opts o = {
		    .runner = run,
		    .spec = {.remote_cwd = "/workspace"},
		    .adapter_key = "claude",
		    .workspace_local_dir = local,
		    .force_command_path = command_path,
		};
		/* The flipper may make any one staging fail (its rename races the extract);
		 * what must hold is that none ever writes outside. Retry until one lands. */
		rt = NULL;
		for (int attempt = 0; attempt < 50 && !rt; attempt++) {
			err = sb_runtime_prepare(&o, &rt);
			sb_err_free(err);
			assert_outside_untouched();
		}
		assert_non_null(rt);
	}
	print_message("restores while racing: %d ok, %d failed\n", ok, failed);
	sh_ok("kill $(cat /tmp/flip.pid)");
	assert_outside_untouched();
	assert_no_secret_in(local);
	sb_runtime_free(rt);
	sbt_rmtree(local);
}

static void native_transfers_survive_a_swapped_directory(void **s)
{
	(void)s;
	swapped_directory_never_leads_a_transfer_outside(false);
}

static void command_transfers_survive_a_swapped_directory(void **s)
{
	(void)s;
	swapped_directory_never_leads_a_transfer_outside(true);
}

/* sync_out of a directory flipped to a link: refused or the link itself, never OUT's files. */
static void sync_out_of_a_swapped_directory_never_reads_outside(void **s)
{
	(void)s;
	start_flipper();
	for (int i = 0; i < 100; i++) {
		char tmpl[] = "/tmp/esc-sync-XXXXXX";
		int fd = mkstemp(tmpl);
		assert_true(fd >= 0);
		sb_err *err = sb_runner_sync_out(run, "/workspace/race", NULL, fd, NULL, NULL);
		sb_err_free(err);
		close(fd);
		assert_int_not_equal(sbt_sh("grep -q '%s' '%s'", SECRET, tmpl), 0);
		unlink(tmpl);
	}
	sh_ok("kill $(cat /tmp/flip.pid)");
	assert_outside_untouched();
}

/* The host-side transfer runs in the daemon's (or the library user's) process: it must not move
 * that process into a sandbox-controlled directory, where every relative path of every other
 * thread (another lease's transfer included) would then resolve. */
static void transfers_leave_the_process_directory_alone(void **s)
{
	(void)s;
	char before[4096], after[4096];
	assert_non_null(getcwd(before, sizeof before));
	char *src = sbt_mkdtemp("esc-src");
	sbt_write_str(src, "x.txt", "x\n");
	char tmpl[] = "/tmp/esc-tar-XXXXXX";
	int fd = mkstemp(tmpl);
	unlink(tmpl);
	assert_int_equal(sbt_sh("tar -C '%s' -cf /proc/%d/fd/%d x.txt", src, (int)getpid(), fd), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	SB_ASSERT_OK(sb_runner_sync_in(run, "/workspace/cwdtest", NULL, fd, NULL, NULL));
	assert_non_null(getcwd(after, sizeof after));
	assert_string_equal(before, after);
	assert_int_equal(ftruncate(fd, 0), 0);
	SB_ASSERT_OK(sb_runner_sync_out(run, "/workspace/cwdtest", NULL, fd, NULL, NULL));
	assert_non_null(getcwd(after, sizeof after));
	assert_string_equal(before, after);
	close(fd);
	sbt_rmtree(src);
}

/* A hard link in the workspace to a file the sandbox user cannot write (root's, 0644): a
 * transfer in that carries the same name replaces the name, never writes the file. */
static void sync_in_never_writes_through_a_hard_link(void **s)
{
	(void)s;
	const char *ws = sb_sandbox_workspace_dir(sb);
	sbt_write_str(ws, "rootfile", "root content\n");
	char *rf = sbt_path(ws, "rootfile"), *hl = sbt_path(ws, "hl");
	assert_int_equal(chown(rf, 0, 0), 0);
	assert_int_equal(chmod(rf, 0644), 0);
	/* the sandbox cannot make the link (protected_hardlinks); the host does, as if it could */
	sbx_result r;
	sbx_sh(sb, "ln /workspace/rootfile /workspace/hl-try 2>&1; echo rc=$?", &r);
	print_message("sandboxed ln of a root file: %s", sb_buf_cstr(&r.out));
	sbx_result_free(&r);
	unlink(hl);
	assert_int_equal(link(rf, hl), 0);
	char *src = sbt_mkdtemp("esc-src");
	sbt_write_str(src, "hl", "pwned\n");
	char tmpl[] = "/tmp/esc-tar-XXXXXX";
	int fd = mkstemp(tmpl);
	unlink(tmpl);
	assert_int_equal(sbt_sh("tar -C '%s' -cf /proc/%d/fd/%d hl", src, (int)getpid(), fd), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	/* keep rootfile (preserve) so only hl is replaced */
	char *keep[] = {"rootfile", NULL};
	SB_ASSERT_OK(sb_runner_sync_in(run, "/workspace", keep, fd, NULL, NULL));
	close(fd);
	rth_assert_file(ws, "rootfile", "root content\n");
	rth_assert_file(ws, "hl", "pwned\n");
	unlink(rf);
	unlink(hl);
	free(rf);
	free(hl);
	sbt_rmtree(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(transfers_leave_the_process_directory_alone),
	    cmocka_unit_test(native_restore_keeps_planted_links),
	    cmocka_unit_test(command_restore_keeps_planted_links),
	    cmocka_unit_test(native_restore_never_follows_a_replaced_directory),
	    cmocka_unit_test(command_restore_never_follows_a_replaced_directory),
	    cmocka_unit_test(native_transfers_survive_a_swapped_directory),
	    cmocka_unit_test(command_transfers_survive_a_swapped_directory),
	    cmocka_unit_test(sync_out_of_a_swapped_directory_never_reads_outside),
	    cmocka_unit_test(sync_in_never_writes_through_a_hard_link),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
