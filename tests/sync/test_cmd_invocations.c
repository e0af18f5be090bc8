/* sync.cmd_invocations: remote commands per run through a command prefix (#15: at most 4), in
 * both sync modes, counted by a wrapper that appends a line per invocation and then execs. Into
 * a --remote-dir: one command stages (incremental: it also lists the far tree and reads the
 * answer), the command, one restores (incremental: the listing, then the selection, in the same
 * command), for a first and a repeat run alike. A temporary remote directory adds its mktemp
 * and its removal (cli/target.c): 5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"
#include "counting.h"
#include "runtime/harness.h"

static void fill_workspace(clit *t)
{
	SB_ASSERT_OK(sb_fs_mkdir_p(t->ws, 0755));
	int rc = sbt_sh("cd '%s' && mkdir -p src && i=0; while [ $i -lt 50 ]; do "
	                "head -c 20000 /dev/urandom > src/f$i.bin; i=$((i+1)); done && "
	                "echo v1 > edit.txt && echo x > gone.txt",
	                t->ws);
	assert_int_equal(rc, 0);
}

/* One run in mode; its remote commands (and its stdout into *out, when out is given). */
static int counted_run_out(clit *t, const char *mode, bool temp_dir, const char *cmd, char **out)
{
	char *calls;
	char *wrapper = synct_wrapper(t, &calls);
	sbt_sh("rm -f '%s'", calls);
	char *via = sb_strfmt("cmd:%s sh -c", wrapper);
	char *remote = sbt_path(t->root, "remote");
	char *tmp = sbt_path(t->root, "tmp");
	SB_ASSERT_OK(sb_fs_mkdir_p(tmp, 0755));
	char *env_tmp = sb_strfmt("TMPDIR=%s", tmp);
	char *env_mode = sb_strfmt("SANDBAR_SYNC=%s", mode);
	clit_res r;
	int code =
	    temp_dir
	        ? clit_run(t, &r, CLIT_V(env_tmp, env_mode),
	                   CLIT_V("run", "-q", "-w", t->ws, "--via", via, "--", "sh", "-c", cmd))
	        : clit_run(t, &r, CLIT_V(env_tmp, env_mode),
	                   CLIT_V("run", "-q", "-w", t->ws, "--via", via, "--remote-dir", remote,
	                          "--", "sh", "-c", cmd));
	if (code != 0)
		print_error("%s: exit %d, stderr:\n%s\n", mode, code, r.err);
	assert_int_equal(code, 0);
	int n = synct_count_lines(calls);
	if (out)
		*out = sb_xstrdup(r.out);
	clit_res_free(&r);
	free(env_mode);
	free(env_tmp);
	free(tmp);
	free(remote);
	free(via);
	free(wrapper);
	free(calls);
	return n;
}

static int counted_run(clit *t, const char *mode, bool temp_dir, const char *cmd)
{
	return counted_run_out(t, mode, temp_dir, cmd, NULL);
}

static void expect_at_most(int n, int max, const char *what)
{
	if (n > max) {
		print_error("%s: %d remote invocations, at most %d expected\n", what, n, max);
		fail();
	}
}

static void given_dir_is_three_commands_in_both_modes(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	const char *modes[] = {"full", "incremental"};
	for (size_t i = 0; i < 2; i++) {
		sbt_write_str(t->ws, "edit.txt", "v1\n");
		int first = counted_run(t, modes[i], false,
		                        "cat edit.txt; echo v2 > edit.txt; rm -f gone.txt");
		rth_assert_file(t->ws, "edit.txt", "v2\n");
		assert_false(rth_exists(t->ws, "gone.txt"));
		sbt_write_str(t->ws, "src/f1.bin", "local change\n");
		int repeat = counted_run(
		    t, modes[i], false, "grep -q 'local change' src/f1.bin && echo made > new.txt");
		rth_assert_file(t->ws, "new.txt", "made\n");
		expect_at_most(first, 3, modes[i]);
		expect_at_most(repeat, 3, modes[i]);
		assert_true(first >= 3 && repeat >= 3); /* the count is real: stage, run, restore */
	}
}

static void temp_dir_is_made_by_the_staging_command(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	const char *modes[] = {"full", "incremental"};
	for (size_t i = 0; i < 2; i++) {
		char *out = NULL;
		int n = counted_run_out(t, modes[i], true, "echo v3 > edit.txt; pwd; stat -c %a .",
		                        &out);
		expect_at_most(n, 4, modes[i]);
		assert_int_equal(n, 4); /* stage, run, restore, remove */
		/* a fresh private directory while it ran, gone afterwards */
		assert_int_equal(strncmp(out, "/tmp/sandbar-run-", 17), 0);
		char *nl = strchr(out, '\n');
		assert_non_null(nl);
		*nl = '\0';
		assert_string_equal(nl + 1, "700\n");
		assert_int_equal(sbt_sh("test ! -e '%s'", out), 0);
		free(out);
	}
	rth_assert_file(t->ws, "edit.txt", "v3\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(given_dir_is_three_commands_in_both_modes),
	    CLIT_TEST(temp_dir_is_made_by_the_staging_command),
	};
	return cmocka_run_group_tests_name("sync.cmd_invocations", tests, NULL, NULL);
}
