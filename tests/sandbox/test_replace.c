/* The one workspace replace (DESIGN.md §9.7), called directly: the new tree replaces the old
 * one except the kept names; a refused archive changes nothing; and a process killed after any
 * number of moves leaves, once the lease is opened again, exactly the old tree or exactly the
 * new one, never a mix, with no staging directory and no journal left behind. */
#include "sbx.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OLD_TREE                                                                                   \
	"rm -rf /workspace/* /workspace/.[!.]* 2>/dev/null; cd /workspace && mkdir -p b e keep "   \
	"&& "                                                                                      \
	"echo old-a > a && echo old-c > b/c && echo old-f > e/f && echo k > keep/k && "            \
	"echo old-g > g"
#define OLD_LIST "./a\n./b\n./b/c\n./e\n./e/f\n./g\n./keep\n./keep/k\n"
#define NEW_LIST "./b\n./b/d\n./keep\n./keep/k\n./keep/n\n./x\n./y\n./y/z\n"

static char *listing(sb_sandbox *sb)
{
	sbx_result r;
	sbx_sh(sb, "cd /workspace && find . -mindepth 1 | LC_ALL=C sort", &r);
	char *out = sb_xstrdup(sb_buf_cstr(&r.out));
	sbx_result_free(&r);
	return out;
}

/* The new tree as a tar file in dir: x, b/d, y/z and keep/n (merged into the kept keep/). */
static char *new_tar(const char *dir)
{
	assert_int_equal(sbt_sh("cd '%s' && mkdir -p t/b t/y t/keep && echo new-x > t/x && "
	                        "echo new-d > t/b/d && echo new-z > t/y/z && echo n > t/keep/n && "
	                        "tar -C t -cf new.tar x b y keep",
	                        dir),
	                 0);
	return sbt_path(dir, "new.tar");
}

static sb_err *replace_from(sb_sandbox *sb, const char *tar, sb_replace_special special)
{
	int fd = open(tar, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	char *keep[] = {"keep", NULL};
	sb_sandbox_replace_opts o = {.keep = keep, .special = special};
	sb_err *err = sb_sandbox_workspace_replace(sb, fd, &o, NULL);
	close(fd);
	return err;
}

static void replace_keeps_only_the_kept_names(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	char *tmp = sbt_mkdtemp("replace");
	sb_sandbox *sb = sbx_create(state, "replace", NULL);
	sbx_result r;
	sbx_sh(sb, OLD_TREE, &r);
	sbx_result_free(&r);
	char *tar = new_tar(tmp);
	SB_ASSERT_OK(replace_from(sb, tar, SB_REPLACE_SPECIAL_REFUSE));
	char *l = listing(sb);
	assert_string_equal(l, NEW_LIST);
	free(l);
	/* an archive with a FIFO, refused: nothing changes, nothing is left over */
	assert_int_equal(sbt_sh("cd '%s' && mkfifo t/pipe && tar -C t -cf fifo.tar x pipe", tmp),
	                 0);
	char *fifo = sbt_path(tmp, "fifo.tar");
	sb_err *err = replace_from(sb, fifo, SB_REPLACE_SPECIAL_REFUSE);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "pipe"));
	sb_err_free(err);
	l = listing(sb);
	assert_string_equal(l, NEW_LIST);
	free(l);
	free(fifo);
	free(tar);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbt_rmtree(tmp);
	sbx_state_free(state);
}

static void killed_after_any_move_recovers_old_or_new(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	char *tmp = sbt_mkdtemp("replace-crash");
	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	sb_sandbox *sb = sbx_create(state, "replace-crash", NULL);
	char *tar = new_tar(tmp);
	int olds = 0, news = 0;
	bool finished = false;
	for (int k = 1; k < 100 && !finished; k++) {
		sbx_result r;
		sbx_sh(sb, OLD_TREE, &r);
		sbx_result_free(&r);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			char num[16];
			snprintf(num, sizeof num, "%d", k);
			setenv("SANDBAR_TEST_REPLACE_EXIT_AFTER_MOVES", num, 1);
			sb_err *err = replace_from(sb, tar, SB_REPLACE_SPECIAL_REFUSE);
			_exit(err ? 1 : 0);
		}
		int st = 0;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		if (WEXITSTATUS(st) == 0) {
			finished = true; /* fewer than k moves: the replace ran to its end */
		} else {
			assert_int_equal(WEXITSTATUS(st), 86);
			/* the next open finishes or rolls back what the crash left */
			sb_sandbox *again = NULL;
			SB_ASSERT_OK(sb_sandbox_open(&cfg, "replace-crash", &again));
			sb_sandbox_close(again);
		}
		char *l = listing(sb);
		bool is_old = strcmp(l, OLD_LIST) == 0, is_new = strcmp(l, NEW_LIST) == 0;
		if (!is_old && !is_new)
			fail_msg(
			    "after a crash at move %d the workspace is neither old nor new:\n%s", k,
			    l);
		olds += is_old;
		news += is_new;
		free(l);
		char *journal = sbt_sh_out("ls -A '%s/leases/replace-crash/run'", state);
		assert_null(strstr(journal, "replace.journal"));
		free(journal);
	}
	print_message("crash points: %d rolled back, %d finished\n", olds, news);
	assert_true(finished);
	assert_true(olds > 0 && news > 0); /* both halves of the journal were exercised */
	free(tar);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbt_rmtree(tmp);
	sbx_state_free(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(replace_keeps_only_the_kept_names),
	    cmocka_unit_test(killed_after_any_move_recovers_old_or_new),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
