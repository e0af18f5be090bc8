/* A disk filling up, on a small tmpfs mounted in this test's private mount namespace (we are
 * root):
 *  - during a restore (the local workspace is full): the restore fails with an error that says
 *    the disk is full and where, leaves every local file as it was and no staging behind; once
 *    there is room again, a restore completes;
 *  - during staging (the far side is full): the prepare fails saying so, the local workspace
 *    is untouched;
 *  - during a spool write (the lease's state is full): the command is neither blocked nor
 *    killed by a closed pipe, and its status says its output was cut (never a silent gap);
 *  - during the daemon's workspace upload (PUT /v1/leases/{id}/workspace onto a full state
 *    directory): an error that says the disk is full and names the path, the workspace exactly
 *    as it was, no staging directory left, and the lease still usable.
 */
#include "harness.h"
#include "sbx.h"
#include "srvtest.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

static void full_far_side_fails_the_staging(bool command_path)
{
	SBT_REQUIRE(have_mounts, "needs root and a private mount namespace to mount a small tmpfs");
	char *local = sbt_mkdtemp("df-stage-local");
	char *ref = sbt_mkdtemp("df-stage-ref");
	char *remote = sbt_mkdtemp("df-stage-remote");
	mount_small(remote, "1m");
	char *ws = sbt_path(remote, "ws");
	sbt_write_str(local, "README", "the local workspace\n");
	assert_int_equal(sbt_sh("head -c 3145728 /dev/urandom > '%s/big.bin'", local), 0);
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
	sb_err *err = sb_runtime_prepare(&o, &rt);
	assert_non_null(err);
	print_message("staging onto a full disk: %s\n", err->msg);
	/* GNU tar reading a stream reports the short write itself ("Wrote only N of M bytes")
	 * rather than the errno. */
	assert_true(strstr(err->msg, "No space left on device") != NULL ||
	            strstr(err->msg, "Wrote only") != NULL);
	sb_err_free(err);
	assert_null(rt);
	rth_assert_trees_equal(ref, local, NULL);
	sb_runner_free(runner);
	free(ws);
	assert_int_equal(umount2(remote, MNT_DETACH), 0);
	sbt_rmtree(remote);
	sbt_rmtree(ref);
	sbt_rmtree(local);
}

static void native_staging_onto_a_full_disk(void **state)
{
	(void)state;
	full_far_side_fails_the_staging(false);
}

static void command_path_staging_onto_a_full_disk(void **state)
{
	(void)state;
	full_far_side_fails_the_staging(true);
}

static void spool_on_a_full_disk_is_cut_and_said(void **state)
{
	(void)state;
	SBT_REQUIRE(have_mounts, "needs root and a private mount namespace to mount a small tmpfs");
	char *st_dir = sbx_state_dir();
	mount_small(st_dir, "6m");
	sb_sandbox *sb = sbx_create(st_dir, "diskfull", NULL);
	/* 16 MiB into a spool with 6 MiB of room, then a word on stdout's exit status */
	char *argv[] = {"sh", "-c", "head -c 16777216 /dev/zero; exit $?", NULL};
	sb_sandbox_exec_req req = {.argv = argv};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	sb_sandbox_exec_status st;
	int64_t deadline = sb_mono_ms() + 60000;
	for (;;) {
		SB_ASSERT_OK(sb_sandbox_exec_status_of(x, &st));
		if (!st.running || sb_mono_ms() > deadline)
			break;
		SB_ASSERT_OK(sb_sandbox_exec_wait(x, 200, NULL));
	}
	print_message("spool on a full disk: running %d, exit %d, signal %d, %llu bytes spooled, "
	              "truncated %d\n",
	              st.running, st.exit_code, st.signal, (unsigned long long)st.stdout_size,
	              st.stdout_truncated);
	assert_false(st.running); /* never blocked on a pipe nobody reads */
	/* head wrote everything: no EPIPE, no SIGPIPE from a pipe closed under it */
	assert_true(st.has_exit_code);
	assert_int_equal(st.exit_code, 0);
	assert_true(st.stdout_truncated); /* and the cut is said */
	assert_true(st.stdout_size < 16777216u);
	sb_sandbox_exec_free(x);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	assert_int_equal(umount2(st_dir, MNT_DETACH), 0);
	sbx_state_free(st_dir);
}

static char *put_workspace(sbt_daemon *d, const char *lease, const char *tar, long *status)
{
	char *t = sb_strfmt("/v1/leases/%s/workspace", lease);
	sbt_req rq = {.method = "PUT", .target = t, .in_file = tar};
	sbt_resp r;
	*status = sbt_http(d, &rq, &r);
	char *body = sb_xstrdup(sb_buf_cstr(&r.body));
	sbt_resp_deinit(&r);
	free(t);
	return body;
}

/* A daemon whose state directory is a 24 MiB tmpfs, a lease holding the small "old" tree, and a
 * PUT of new.tar (made by make_new in the test's directory): the reply must be an error saying
 * the disk is full and naming a path on it (prefix), the workspace must stay the old tree with no
 * staging left, and the lease must go on working. */
static void upload_onto_a_full_disk(const char *make_new, bool spool_side)
{
	SBT_REQUIRE(have_mounts, "needs root and a private mount namespace to mount a small tmpfs");
	char *tmp = sbt_mkdtemp("df-put");
	assert_int_equal(
	    sbt_sh("cd '%s' && mkdir old new && for i in 1 2 3 4 5; do echo old $i > "
	           "old/f$i.txt; done && mkdir old/sub && echo deep > old/sub/d.txt && "
	           "(cd new && %s) && echo new > new/f1.txt && tar -C old -cf old.tar . "
	           "&& tar -C new -cf new.tar .",
	           tmp, make_new),
	    0);
	char *room = sbt_path(tmp, "room");
	assert_int_equal(mkdir(room, 0755), 0);
	mount_small(room, "24m");
	/* the daemon's directory (state, request spool, workspaces) on the small disk */
	char *saved = getenv("TMPDIR") ? sb_xstrdup(getenv("TMPDIR")) : NULL;
	setenv("TMPDIR", room, 1);
	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	if (saved)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
	SBT_REQUIRE(sbt_sandbox_ok(&d), SBT_NO_SANDBOX);
	char *lease = sbt_acquire(&d, "fault-put-full");
	char *ws = sb_strfmt("%s/leases/%s/workspace", d.state_dir, lease);
	char *old_tar = sbt_path(tmp, "old.tar"), *new_tar = sbt_path(tmp, "new.tar");
	long status = 0;
	char *body = put_workspace(&d, lease, old_tar, &status);
	assert_int_equal(status, 200);
	free(body);

	body = put_workspace(&d, lease, new_tar, &status);
	print_message("PUT onto a full disk: %ld %s", status, body);
	assert_int_equal(status, 500);
	/* says what happened and where: the request spool, or the workspace being extracted */
	assert_non_null(strstr(body, "No space left on device"));
	assert_non_null(strstr(body, spool_side ? d.state_dir : ws));
	free(body);
	/* the workspace is exactly the old tree, with no staging left behind */
	assert_int_equal(
	    sbt_sh("diff -r --no-dereference -x .paperclip-runtime '%s/old' '%s'", tmp, ws), 0);
	char *left = sbt_sh_out("ls -A '%s' | grep '^.sandbar-replace-'; true", ws);
	assert_string_equal(left, "");
	free(left);
	/* and the lease goes on: a command runs, a smaller upload goes through */
	char *x = sb_strfmt("/v1/leases/%s/exec", lease);
	json_t *j = sbt_call(&d, "POST", x, "{\"argv\":[\"cat\",\"f1.txt\"]}", &status);
	assert_int_equal(status, 200);
	assert_string_equal(sbt_jstr(j, "stdout"), "old 1\n");
	json_decref(j);
	free(x);
	body = put_workspace(&d, lease, old_tar, &status);
	assert_int_equal(status, 200);
	free(body);

	sbt_daemon_stop(&d);
	assert_int_equal(umount2(room, MNT_DETACH), 0);
	free(old_tar);
	free(new_tar);
	free(ws);
	free(lease);
	free(room);
	sbt_rmtree(tmp);
}

/* 36 MiB of incompressible data: the request body itself does not fit. */
static void daemon_upload_spool_on_a_full_disk(void **state)
{
	(void)state;
	upload_onto_a_full_disk(
	    "for i in 1 2 3; do head -c 12582912 /dev/urandom > big$i.bin; done", true);
}

/* 14 MiB: the body is spooled, but its extraction beside it does not fit. */
static void daemon_upload_extract_on_a_full_disk(void **state)
{
	(void)state;
	upload_onto_a_full_disk("head -c 14680064 /dev/urandom > big.bin", false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(native_restore_on_a_full_disk),
	    cmocka_unit_test(command_path_restore_on_a_full_disk),
	    cmocka_unit_test(native_staging_onto_a_full_disk),
	    cmocka_unit_test(command_path_staging_onto_a_full_disk),
	    cmocka_unit_test(spool_on_a_full_disk_is_cut_and_said),
	    cmocka_unit_test(daemon_upload_spool_on_a_full_disk),
	    cmocka_unit_test(daemon_upload_extract_on_a_full_disk),
	};
	curl_global_init(CURL_GLOBAL_ALL);
	int rc = cmocka_run_group_tests(tests, setup, NULL);
	curl_global_cleanup();
	return rc;
}
