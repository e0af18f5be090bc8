/* base.walk: the recursive walk reports every entry once, sorted, parents first, and never
 * follows a symlink. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct collect {
	sb_buf out;           /* one "type relpath" line per entry */
	const char *skip;     /* relpath to answer SKIP for */
	const char *stop;     /* relpath to answer STOP for */
	bool stop_with_error; /* and set an error there */
	int dirfd_checks;
};

static const char *type_name(sb_ftype t)
{
	switch (t) {
	case SB_FT_FILE:
		return "F";
	case SB_FT_DIR:
		return "D";
	case SB_FT_SYMLINK:
		return "L";
	case SB_FT_OTHER:
		return "O";
	}
	return "?";
}

static int collect_cb(const sb_walk_entry *e, void *ud, sb_err **err)
{
	struct collect *c = ud;
	sb_buf_appendf(&c->out, "%s %s", type_name(e->type), e->relpath);
	if (e->type == SB_FT_FILE)
		sb_buf_appendf(&c->out, " %llu %o", (unsigned long long)e->size,
		               (unsigned)(e->mode & 07777));
	sb_buf_appendc(&c->out, '\n');
	/* the entry's directory fd is usable during the callback */
	struct stat st;
	assert_int_equal(fstatat(e->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mode, e->mode);
	const char *slash = strrchr(e->relpath, '/');
	assert_string_equal(slash ? slash + 1 : e->relpath, e->name);
	c->dirfd_checks++;
	if (c->skip && strcmp(e->relpath, c->skip) == 0)
		return SB_WALK_SKIP;
	if (c->stop && strcmp(e->relpath, c->stop) == 0) {
		if (c->stop_with_error)
			*err = sb_err_new(SB_E_CANCELED, "stopped at %s", e->relpath);
		return SB_WALK_STOP;
	}
	return SB_WALK_CONTINUE;
}

static char *make_tree(void)
{
	char *dir = sbt_mkdtemp("sb-walk");
	sbt_write_str(dir, "b/z", "zz");
	sbt_write_str(dir, "a/y/f", "f");
	sbt_write(dir, "a/x", "xxxx", 4, 0755);
	sbt_write_str(dir, "a.txt", "t");
	sbt_write_str(dir, "B", "upper");
	char *empty = sbt_path(dir, "a/empty");
	assert_int_equal(mkdir(empty, 0700), 0);
	free(empty);
	return dir;
}

static void walk_is_sorted_parents_first(void **state)
{
	(void)state;
	char *dir = make_tree();
	struct collect c = {.out = SB_BUF_INIT};
	SB_ASSERT_OK(sb_fs_walk(dir, collect_cb, &c));
	/* strcmp order per directory ("B" < "a" < "a.txt" < "b"), depth first */
	assert_string_equal(sb_buf_cstr(&c.out), "F B 5 644\n"
	                                         "D a\n"
	                                         "D a/empty\n"
	                                         "F a/x 4 755\n"
	                                         "D a/y\n"
	                                         "F a/y/f 1 644\n"
	                                         "F a.txt 1 644\n"
	                                         "D b\n"
	                                         "F b/z 2 644\n");
	assert_int_equal(c.dirfd_checks, 9);
	sb_buf_deinit(&c.out);
	sbt_rmtree(dir);
}

static void walk_never_follows_symlinks_and_reports_fifos_as_other(void **state)
{
	(void)state;
	char *outside = sbt_mkdtemp("sb-walk-outside");
	sbt_write_str(outside, "secret/s", "s");
	char *dir = sbt_mkdtemp("sb-walk");
	sbt_write_str(dir, "d/f", "f");
	char *p = sbt_path(dir, "out");
	assert_int_equal(symlink(outside, p), 0);
	free(p);
	p = sbt_path(dir, "in");
	assert_int_equal(symlink("d", p), 0);
	free(p);
	p = sbt_path(dir, "dangling");
	assert_int_equal(symlink("nowhere", p), 0);
	free(p);
	p = sbt_path(dir, "pipe");
	assert_int_equal(mkfifo(p, 0600), 0);
	free(p);
	struct collect c = {.out = SB_BUF_INIT};
	SB_ASSERT_OK(sb_fs_walk(dir, collect_cb, &c));
	assert_string_equal(sb_buf_cstr(&c.out), "D d\n"
	                                         "F d/f 1 644\n"
	                                         "L dangling\n"
	                                         "L in\n"
	                                         "L out\n"
	                                         "O pipe\n");
	sb_buf_deinit(&c.out);
	sbt_rmtree(dir);
	sbt_rmtree(outside);
}

static void walk_skip_and_stop(void **state)
{
	(void)state;
	char *dir = make_tree();
	struct collect c = {.out = SB_BUF_INIT, .skip = "a"};
	SB_ASSERT_OK(sb_fs_walk(dir, collect_cb, &c));
	assert_string_equal(sb_buf_cstr(&c.out),
	                    "F B 5 644\nD a\nF a.txt 1 644\nD b\nF b/z 2 644\n");
	sb_buf_clear(&c.out);
	c.skip = NULL;
	c.stop = "a/x";
	SB_ASSERT_OK(sb_fs_walk(dir, collect_cb, &c)); /* STOP without an error: success */
	assert_string_equal(sb_buf_cstr(&c.out), "F B 5 644\nD a\nD a/empty\nF a/x 4 755\n");
	sb_buf_clear(&c.out);
	c.stop_with_error = true;
	sb_err *err = sb_fs_walk(dir, collect_cb, &c);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CANCELED);
	assert_string_equal(err->msg, "stopped at a/x");
	sb_err_free(err);
	sb_buf_deinit(&c.out);
	sbt_rmtree(dir);
}

static void walk_fails_on_missing_or_unreadable_root(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-walk");
	struct collect c = {.out = SB_BUF_INIT};
	char *missing = sbt_path(dir, "missing");
	sb_err *err = sb_fs_walk(missing, collect_cb, &c);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_NOTFOUND);
	assert_non_null(strstr(err->msg, missing));
	sb_err_free(err);
	sbt_write_str(dir, "file", "x");
	char *file = sbt_path(dir, "file");
	err = sb_fs_walk(file, collect_cb, &c);
	assert_non_null(err);
	assert_int_equal(err->sys_errno, ENOTDIR);
	sb_err_free(err);
	if (geteuid() != 0) { /* root reads any directory */
		sbt_write_str(dir, "locked/inner", "x");
		char *locked = sbt_path(dir, "locked");
		assert_int_equal(chmod(locked, 0), 0);
		err = sb_fs_walk(dir, collect_cb, &c);
		assert_non_null(err);
		assert_int_equal(err->sys_errno, EACCES);
		sb_err_free(err);
		assert_int_equal(chmod(locked, 0700), 0);
		free(locked);
	}
	free(missing);
	free(file);
	sb_buf_deinit(&c.out);
	sbt_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(walk_is_sorted_parents_first),
	    cmocka_unit_test(walk_never_follows_symlinks_and_reports_fifos_as_other),
	    cmocka_unit_test(walk_skip_and_stop),
	    cmocka_unit_test(walk_fails_on_missing_or_unreadable_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
