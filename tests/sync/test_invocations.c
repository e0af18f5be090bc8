/* sync.invocations: a run through a command prefix costs a fixed number of remote commands
 * whatever the workspace's size (before #15, 85 for 113 MiB): one that stages (the archive
 * streamed into the far tar's stdin), the command, one that restores (the far tar's stdout
 * streamed into the extractor), plus a temporary directory's creation and removal.
 * The prefix is a wrapper script that counts every invocation and how many stdin bytes it
 * carried, then runs the command with `sh -c` as ssh would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"
#include "counting.h"
#include "runtime/harness.h"

/* 40 MiB in 400 files: far past the old 3 MiB chunks (which took one command each). */
static void fill_workspace(clit *t)
{
	SB_ASSERT_OK(sb_fs_mkdir_p(t->ws, 0755));
	int rc = sbt_sh("cd '%s' && mkdir -p src && i=0; while [ $i -lt 400 ]; do "
	                "head -c 104857 /dev/urandom > src/f$i.bin; i=$((i+1)); done",
	                t->ws);
	assert_int_equal(rc, 0);
	sbt_write_str(t->ws, "edit.txt", "v1\n");
	sbt_write_str(t->ws, "gone.txt", "x\n");
}

static void run_counted(clit *t, const char *remote_dir, int max_calls)
{
	fill_workspace(t);
	char *calls;
	char *wrapper = synct_wrapper(t, &calls);
	char *via = sb_strfmt("cmd:%s", wrapper);
	char *tmp = sbt_path(t->root, "tmp");
	SB_ASSERT_OK(sb_fs_mkdir_p(tmp, 0755));
	char *env_tmp = sb_strfmt("TMPDIR=%s", tmp);
	clit_res r;
	const char *cmd = "cat edit.txt; echo v2 > edit.txt; rm gone.txt; echo made > new.txt; "
	                  "head -c 1000000 /dev/urandom > src/big-new.bin";
	int code =
	    remote_dir
	        ? clit_run(t, &r, CLIT_V(env_tmp),
	                   CLIT_V("run", "-q", "-w", t->ws, "--via", via, "--remote-dir",
	                          remote_dir, "--", "sh", "-c", cmd))
	        : clit_run(t, &r, CLIT_V(env_tmp),
	                   CLIT_V("run", "-q", "-w", t->ws, "--via", via, "--", "sh", "-c", cmd));
	if (code != 0) {
		print_error("exit %d, stderr:\n%s\n", code, r.err);
		fail();
	}
	assert_string_equal(r.out, "v1\n");
	rth_assert_file(t->ws, "edit.txt", "v2\n");
	rth_assert_file(t->ws, "new.txt", "made\n");
	assert_false(rth_exists(t->ws, "gone.txt"));
	assert_int_equal(sbt_sh("test $(stat -c %%s '%s/src/big-new.bin') -eq 1000000", t->ws), 0);
	int n = synct_count_lines(calls);
	if (n > max_calls) {
		print_error("%d remote invocations, at most %d expected\n", n, max_calls);
		fail();
	}
	clit_res_free(&r);
	free(env_tmp);
	free(tmp);
	free(via);
	free(wrapper);
	free(calls);
}

/* The user's own remote directory: stage (which checks that it is empty or ours), command,
 * restore. */
static void prefix_run_into_a_given_dir_is_three_commands(void **state)
{
	clit *t = *state;
	char *remote = sbt_path(t->root, "remote");
	run_counted(t, remote, 3);
	free(remote);
}

/* A temporary remote directory adds its creation and its removal. */
static void prefix_run_with_a_temp_dir_is_at_most_five_commands(void **state)
{
	clit *t = *state;
	run_counted(t, NULL, 5);
}

/* A --remote-dir holding someone else's files is refused by the staging command itself, on
 * both the streamed (cmd:) and the native (local) path, and nothing in it is deleted; --force
 * or an earlier staging of ours lets it through. */
static void foreign_remote_dir_is_refused_and_kept(void **state)
{
	clit *t = *state;
	SB_ASSERT_OK(sb_fs_mkdir_p(t->ws, 0755));
	sbt_write_str(t->ws, "a.txt", "mine\n");
	const char *vias[] = {"cmd:sh -c", "local"};
	for (size_t i = 0; i < 2; i++) {
		char *remote = sb_strfmt("%s/remote%zu", t->root, i);
		sbt_write_str(remote, "precious.txt", "keep me\n");
		clit_res r;
		int code = clit_run(t, &r, NULL,
		                    CLIT_V("run", "-q", "-w", t->ws, "--via", vias[i],
		                           "--remote-dir", remote, "--", "true"));
		assert_int_equal(code, 125);
		assert_non_null(strstr(r.err, "is not empty and was not created by sandbar"));
		rth_assert_file(remote, "precious.txt", "keep me\n");
		clit_res_free(&r);
		/* --force: replaced */
		code = clit_run(t, &r, NULL,
		                CLIT_V("run", "-q", "-w", t->ws, "--via", vias[i], "--remote-dir",
		                       remote, "--force", "--", "cat", "a.txt"));
		assert_int_equal(code, 0);
		assert_false(rth_exists(remote, "precious.txt"));
		clit_res_free(&r);
		/* ours now: staged again without --force */
		code = clit_run(t, &r, NULL,
		                CLIT_V("run", "-q", "-w", t->ws, "--via", vias[i], "--remote-dir",
		                       remote, "--", "cat", "a.txt"));
		assert_int_equal(code, 0);
		assert_string_equal(r.out, "mine\n");
		clit_res_free(&r);
		free(remote);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(prefix_run_into_a_given_dir_is_three_commands),
	    CLIT_TEST(prefix_run_with_a_temp_dir_is_at_most_five_commands),
	    CLIT_TEST(foreign_remote_dir_is_refused_and_kept),
	};
	return cmocka_run_group_tests_name("sync.invocations", tests, NULL, NULL);
}
