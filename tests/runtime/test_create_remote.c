/* runtime.create_remote: prepare's create_remote_dir (#15: a temporary remote directory without
 * a mktemp command of its own). The first staging command makes the directory, mode 0700; a
 * name that is already taken, by a directory or by a symlink, fails the staging and nothing is
 * written into or through it. Both command-path runners, both sync modes (sync.runtime_*). */
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

typedef struct fixture {
	char *local, *base, *remote;
	sb_runner *runner;
} fixture;

static void fixture_init(fixture *f)
{
	f->local = sbt_mkdtemp("rt-local");
	f->base = sbt_mkdtemp("rt-base");
	f->remote = sbt_path(f->base, "fresh");
	sbt_write_str(f->local, "a.txt", "a\n");
	sbt_write_str(f->local, "sub/b.txt", "b\n");
	f->runner = rth_runner(false);
}

static void fixture_deinit(fixture *f)
{
	sb_runner_free(f->runner);
	sbt_rmtree(f->local);
	sbt_rmtree(f->base);
	free(f->remote);
}

static sb_err *prepare_fresh(fixture *f, sb_runtime **rt)
{
	sb_runtime_prepare_opts o = {
	    .runner = f->runner,
	    .spec = {.remote_cwd = f->remote},
	    .adapter_key = "claude",
	    .workspace_local_dir = f->local,
	    .create_remote_dir = true,
	};
	return sb_runtime_prepare(&o, rt);
}

static void the_staging_makes_a_private_directory(void **state)
{
	(void)state;
	fixture f;
	fixture_init(&f);
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(prepare_fresh(&f, &rt));
	struct stat st;
	assert_int_equal(lstat(f.remote, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	rth_assert_file(f.remote, "sub/b.txt", "b\n");
	sb_runtime_free(rt);
	fixture_deinit(&f);
}

static void a_taken_name_is_refused(void **state)
{
	(void)state;
	fixture f;
	fixture_init(&f);
	/* a directory someone else made at that name */
	assert_int_equal(mkdir(f.remote, 0777), 0);
	sb_runtime *rt = NULL;
	sb_err *err = prepare_fresh(&f, &rt);
	assert_non_null(err);
	sb_err_free(err);
	assert_null(rt);
	assert_false(rth_exists(f.remote, "a.txt"));
	/* a symlink to a directory of theirs: nothing goes through it */
	assert_int_equal(rmdir(f.remote), 0);
	char *theirs = sbt_path(f.base, "theirs");
	assert_int_equal(mkdir(theirs, 0777), 0);
	assert_int_equal(symlink(theirs, f.remote), 0);
	err = prepare_fresh(&f, &rt);
	assert_non_null(err);
	sb_err_free(err);
	assert_false(rth_exists(theirs, "a.txt"));
	free(theirs);
	fixture_deinit(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_staging_makes_a_private_directory),
	    cmocka_unit_test(a_taken_name_is_refused),
	};
	return rth_run_both("runtime.create_remote", tests, sizeof tests / sizeof tests[0]);
}
