/* base.git: sb_git_head reads HEAD exactly as git does for a work tree, a linked work tree
 * (.git is a file) and an unborn branch; a directory without a repository answers "" without
 * error; after sb_git_prewarm, calls from several threads at once still answer right. */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define GIT "git -c user.email=t@example.com -c user.name=t -c init.defaultBranch=main "

static char *repo_with_commit(const char *root)
{
	char *repo = sbt_path(root, "repo");
	assert_int_equal(sbt_sh("mkdir -p '%s' && cd '%s' && " GIT
	                        "init -q && echo a > a.txt && " GIT "add a.txt && " GIT
	                        "commit -qm one",
	                        repo, repo),
	                 0);
	return repo;
}

static char *rev_parse(const char *dir)
{
	char *out = sbt_sh_out("cd '%s' && git rev-parse HEAD", dir);
	assert_non_null(out);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

static void assert_head_is_gits(const char *dir)
{
	char head[41];
	SB_ASSERT_OK(sb_git_head(dir, head));
	char *want = rev_parse(dir);
	assert_string_equal(head, want);
	free(want);
}

static void work_tree_head_is_gits(void **state)
{
	(void)state;
	char *root = sbt_mkdtemp("git");
	char *repo = repo_with_commit(root);
	assert_head_is_gits(repo);
	free(repo);
	sbt_sh("rm -rf '%s'", root);
	free(root);
}

static void linked_work_tree_head_is_gits(void **state)
{
	(void)state;
	char *root = sbt_mkdtemp("git");
	char *repo = repo_with_commit(root);
	char *linked = sbt_path(root, "linked");
	assert_int_equal(sbt_sh("cd '%s' && git worktree add -q -b side '%s' && cd '%s' && echo b "
	                        "> b.txt && " GIT "add b.txt && " GIT "commit -qm two",
	                        repo, linked, linked),
	                 0);
	assert_head_is_gits(linked);
	free(linked);
	free(repo);
	sbt_sh("rm -rf '%s'", root);
	free(root);
}

static void no_repository_and_unborn_head_are_empty(void **state)
{
	(void)state;
	char *root = sbt_mkdtemp("git");
	char head[41] = "x";
	SB_ASSERT_OK(sb_git_head(root, head));
	assert_string_equal(head, "");
	char *fresh = sbt_path(root, "fresh");
	assert_int_equal(sbt_sh("mkdir '%s' && cd '%s' && git init -q", fresh, fresh), 0);
	strcpy(head, "x");
	SB_ASSERT_OK(sb_git_head(fresh, head));
	assert_string_equal(head, "");
	free(fresh);
	sbt_sh("rm -rf '%s'", root);
	free(root);
}

typedef struct reader {
	const char *repo;
	char head[41];
	sb_err *err;
} reader;

static void *read_head(void *arg)
{
	reader *r = arg;
	for (int i = 0; i < 20 && !r->err; i++)
		r->err = sb_git_head(r->repo, r->head);
	return NULL;
}

static void heads_read_while_prewarming_are_right(void **state)
{
	(void)state;
	char *root = sbt_mkdtemp("git");
	char *repo = repo_with_commit(root);
	char *want = rev_parse(repo);
	sb_git_prewarm(root); /* no repository there: nothing to start, nothing to fail */
	sb_git_prewarm(repo); /* the threads below race with its start */
	reader rs[3];
	pthread_t ts[3];
	for (int i = 0; i < 3; i++) {
		rs[i] = (reader){.repo = repo};
		assert_int_equal(pthread_create(&ts[i], NULL, read_head, &rs[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(ts[i], NULL), 0);
		SB_ASSERT_OK(rs[i].err);
		assert_string_equal(rs[i].head, want);
	}
	sb_git_prewarm(NULL); /* idempotent */
	free(want);
	free(repo);
	sbt_sh("rm -rf '%s'", root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(work_tree_head_is_gits),
	    cmocka_unit_test(linked_work_tree_head_is_gits),
	    cmocka_unit_test(no_repository_and_unborn_head_are_empty),
	    cmocka_unit_test(heads_read_while_prewarming_are_right),
	};
	return cmocka_run_group_tests_name("base.git", tests, NULL, NULL);
}
