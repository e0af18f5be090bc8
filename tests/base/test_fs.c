/* base.fs: atomic replace, mkdir -p, rm -rf that never follows links, copies, temp dirs. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Number of entries in dir (without "." and ".."). */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode;
}

static void expect_code(sb_err *err, sb_errcode code)
{
	assert_non_null(err);
	if (err->code != code)
		print_error("unexpected error (%s): %s\n", sb_errcode_name(err->code), err->msg);
	assert_int_equal(err->code, code);
	sb_err_free(err);
}

static void write_atomic_replaces_content_with_exact_mode(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-fs");
	char *path = sbt_path(dir, "config.json");
	SB_ASSERT_OK(sb_fs_write_atomic(path, "old", 3, 0644));
	mode_t old_umask = umask(077);
	SB_ASSERT_OK(sb_fs_write_atomic(path, "new content", 11, 0640));
	umask(old_umask);
	char *got = sbt_read(dir, "config.json", NULL);
	assert_string_equal(got, "new content");
	assert_int_equal(mode_of(path) & 07777, 0640); /* exact, not filtered by the umask */
	assert_int_equal(count_entries(dir), 1);       /* no temp file left */
	SB_ASSERT_OK(sb_fs_write_atomic(path, "", 0, 0600));
	free(got);
	got = sbt_read(dir, "config.json", NULL);
	assert_string_equal(got, "");
	free(got);
	free(path);
	sbt_rmtree(dir);
}

static void write_atomic_failed_rename_keeps_old_and_no_temp(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-fs");
	/* The target is a non-empty directory: rename(2) cannot replace it. */
	sbt_write_str(dir, "target/keep", "kept");
	char *path = sbt_path(dir, "target");
	sb_err *err = sb_fs_write_atomic(path, "x", 1, 0644);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_IO);
	assert_non_null(strstr(err->msg, path));
	sb_err_free(err);
	char *kept = sbt_read(dir, "target/keep", NULL);
	assert_string_equal(kept, "kept");
	free(kept);
	assert_int_equal(count_entries(dir), 1);
	free(path);
	sbt_rmtree(dir);
}

static void write_atomic_rejects_bad_paths(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-fs");
	expect_code(sb_fs_write_atomic("", "x", 1, 0644), SB_E_INVAL);
	char *trailing = sbt_path(dir, "sub/");
	expect_code(sb_fs_write_atomic(trailing, "x", 1, 0644), SB_E_INVAL);
	char *dotdot = sbt_path(dir, "..");
	expect_code(sb_fs_write_atomic(dotdot, "x", 1, 0644), SB_E_INVAL);
	char *missing = sbt_path(dir, "no/such/file");
	expect_code(sb_fs_write_atomic(missing, "x", 1, 0644), SB_E_NOTFOUND);
	assert_int_equal(count_entries(dir), 0);
	free(trailing);
	free(dotdot);
	free(missing);
	sbt_rmtree(dir);
}

static void atomic_stream_abort_leaves_target_untouched(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-fs");
	sbt_write_str(dir, "f", "before");
	char *path = sbt_path(dir, "f");
	sb_atomic_file af;
	SB_ASSERT_OK(sb_atomic_open(path, 0600, &af));
	SB_ASSERT_OK(sb_write_all(af.fd, "partial", 7));
	assert_int_equal(count_entries(dir), 2); /* target and temp side by side */
	sb_atomic_abort(&af);
	assert_int_equal(af.fd, -1);
	assert_int_equal(count_entries(dir), 1);
	char *got = sbt_read(dir, "f", NULL);
	assert_string_equal(got, "before");
	free(got);
	/* commit after abort is a caller bug, reported, not a crash */
	expect_code(sb_atomic_commit(&af), SB_E_INVAL);
	SB_ASSERT_OK(sb_atomic_open(path, 0600, &af));
	SB_ASSERT_OK(sb_write_all(af.fd, "streamed", 8));
	SB_ASSERT_OK(sb_atomic_commit(&af));
	got = sbt_read(dir, "f", NULL);
	assert_string_equal(got, "streamed");
	free(got);
	sb_atomic_abort(&af); /* harmless after commit */
	bool fd0_open = fcntl(0, F_GETFD) != -1;
	sb_atomic_file zeroed = {0};
	sb_atomic_abort(&zeroed); /* and on a never-opened struct: fd 0 is left alone */
	assert_int_equal(fcntl(0, F_GETFD) != -1, fd0_open);
	assert_int_equal(count_entries(dir), 1);
	free(path);
	sbt_rmtree(dir);
}

static void mkdir_p_creates_nested_and_accepts_existing(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-fs");
	char *deep = sbt_path(dir, "a/b//c/d/");
	SB_ASSERT_OK(sb_fs_mkdir_p(deep, 0755));
	SB_ASSERT_OK(sb_fs_mkdir_p(deep, 0755));
	char *d = sbt_path(dir, "a/b/c/d");
	assert_true(S_ISDIR(mode_of(d)));
	sbt_write_str(dir, "file", "x");
	char *onfile = sbt_path(dir, "file");
	expect_code(sb_fs_mkdir_p(onfile, 0755), SB_E_EXISTS);
	char *through = sbt_path(dir, "file/sub");
	expect_code(sb_fs_mkdir_p(through, 0755), SB_E_IO);
	expect_code(sb_fs_mkdir_p("", 0755), SB_E_INVAL);
	free(deep);
	free(d);
	free(onfile);
	free(through);
	sbt_rmtree(dir);
}

static void rm_rf_removes_tree_without_following_symlinks(void **state)
{
	(void)state;
	char *outside = sbt_mkdtemp("sb-fs-outside");
	sbt_write_str(outside, "precious/file", "keep me");
	char *dir = sbt_mkdtemp("sb-fs");
	sbt_write_str(dir, "tree/a/b/c", "x");
	sbt_write_str(dir, "tree/ro/inner", "y");
	char *precious = sbt_path(outside, "precious");
	char *link = sbt_path(dir, "tree/a/link-to-outside");
	assert_int_equal(symlink(precious, link), 0);
	char *link2 = sbt_path(dir, "tree/dangling");
	assert_int_equal(symlink("/nonexistent/path", link2), 0);
	/* read-only and unsearchable directories, as module caches leave them */
	char *ro = sbt_path(dir, "tree/ro");
	assert_int_equal(chmod(ro, 0555), 0);
	char *locked = sbt_path(dir, "tree/a/b");
	assert_int_equal(chmod(locked, 0), 0);
	char *tree = sbt_path(dir, "tree");
	SB_ASSERT_OK(sb_fs_rm_rf(tree));
	assert_int_equal(count_entries(dir), 0);
	char *kept = sbt_read(outside, "precious/file", NULL);
	assert_string_equal(kept, "keep me");
	free(kept);
	/* a missing path is success; a symlink is removed, not its target */
	SB_ASSERT_OK(sb_fs_rm_rf(tree));
	char *missing_parent = sbt_path(dir, "no/such/thing");
	SB_ASSERT_OK(sb_fs_rm_rf(missing_parent));
	char *toplink = sbt_path(dir, "toplink");
	assert_int_equal(symlink(precious, toplink), 0);
	SB_ASSERT_OK(sb_fs_rm_rf(toplink));
	assert_int_equal(count_entries(dir), 0);
	assert_int_equal(count_entries(precious), 1);
	expect_code(sb_fs_rm_rf("/"), SB_E_INVAL);
	expect_code(sb_fs_rm_rf(""), SB_E_INVAL);
	free(precious);
	free(link);
	free(link2);
	free(ro);
	free(locked);
	free(tree);
	free(missing_parent);
	free(toplink);
	sbt_rmtree(dir);
	sbt_rmtree(outside);
}

static void clear_dir_keeps_named_entries_and_never_follows_links(void **state)
{
	(void)state;
	char *outside = sbt_mkdtemp("sb-fs-outside");
	sbt_write_str(outside, "precious/file", "keep me");
	char *dir = sbt_mkdtemp("sb-fs");
	sbt_write_str(dir, "keep/inner", "k");
	sbt_write_str(dir, "kept.txt", "k");
	sbt_write_str(dir, "gone/a/b", "x");
	sbt_write_str(dir, "gone.txt", "x");
	char *precious = sbt_path(outside, "precious");
	char *link = sbt_path(dir, "link-to-outside");
	assert_int_equal(symlink(precious, link), 0);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	char *keep[] = {"keep", "kept.txt", "not-there", NULL};
	SB_ASSERT_OK(sb_fs_clear_dir(dfd, dir, keep));
	assert_int_equal(count_entries(dir), 2);
	char *k = sbt_read(dir, "keep/inner", NULL);
	assert_string_equal(k, "k");
	free(k);
	k = sbt_read(outside, "precious/file", NULL);
	assert_string_equal(k, "keep me");
	free(k);
	SB_ASSERT_OK(sb_fs_clear_dir(dfd, dir, NULL));
	assert_int_equal(count_entries(dir), 0);
	close(dfd);
	free(precious);
	free(link);
	sbt_rmtree(dir);
	sbt_rmtree(outside);
}

static void copy_file_copies_bytes_never_links(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-fs");
	size_t n = 3 * 1024 * 1024 + 17;
	char *data = sb_xmalloc(n);
	sbt_fill_random(data, n, 42);
	sbt_write(dir, "src", data, n, 0644);
	sbt_write_str(dir, "dst", "old");
	char *src = sbt_path(dir, "src"), *dst = sbt_path(dir, "dst");
	SB_ASSERT_OK(sb_fs_copy_file(src, dst, 0751));
	size_t got_len = 0;
	char *got = sbt_read(dir, "dst", &got_len);
	assert_int_equal(got_len, n);
	assert_memory_equal(got, data, n);
	struct stat s1, s2;
	assert_int_equal(stat(src, &s1), 0);
	assert_int_equal(stat(dst, &s2), 0);
	assert_int_not_equal(s1.st_ino, s2.st_ino);
	assert_int_equal(s2.st_nlink, 1);
	assert_int_equal(s2.st_mode & 07777, 0751);
	assert_int_equal(count_entries(dir), 2);
	/* the copy is independent of its source */
	sbt_write_str(dir, "src", "changed");
	free(got);
	got = sbt_read(dir, "dst", &got_len);
	assert_int_equal(got_len, n);
	free(got);
	sbt_write(dir, "empty", "", 0, 0600);
	char *empty = sbt_path(dir, "empty"), *empty2 = sbt_path(dir, "empty2");
	SB_ASSERT_OK(sb_fs_copy_file(empty, empty2, 0600));
	got = sbt_read(dir, "empty2", &got_len);
	assert_int_equal(got_len, 0);
	free(got);
	free(data);
	free(src);
	free(dst);
	free(empty);
	free(empty2);
	sbt_rmtree(dir);
}

static void copy_file_refuses_links_fifos_and_missing(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-fs");
	sbt_write_str(dir, "real", "data");
	char *link = sbt_path(dir, "link"), *fifo = sbt_path(dir, "fifo");
	char *dst = sbt_path(dir, "dst"), *missing = sbt_path(dir, "missing");
	assert_int_equal(symlink("real", link), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	expect_code(sb_fs_copy_file(link, dst, 0644), SB_E_INVAL);
	expect_code(sb_fs_copy_file(fifo, dst, 0644), SB_E_INVAL); /* and does not hang */
	expect_code(sb_fs_copy_file(missing, dst, 0644), SB_E_NOTFOUND);
	char *real = sbt_path(dir, "real"), *nodir = sbt_path(dir, "nodir/dst");
	expect_code(sb_fs_copy_file(real, nodir, 0644), SB_E_NOTFOUND);
	assert_int_equal(count_entries(dir), 3); /* real, link, fifo: no dst, no temp */
	free(link);
	free(fifo);
	free(dst);
	free(missing);
	free(real);
	free(nodir);
	sbt_rmtree(dir);
}

static void mkdtemp_is_private_unique_and_honours_tmpdir(void **state)
{
	(void)state;
	char *base = sbt_mkdtemp("sb-fs");
	char *old = getenv("TMPDIR") ? sb_xstrdup(getenv("TMPDIR")) : NULL;
	char *with_slash = sb_strfmt("%s/", base);
	setenv("TMPDIR", with_slash, 1);
	char *a = NULL, *b = NULL;
	SB_ASSERT_OK(sb_fs_mkdtemp("job", &a));
	SB_ASSERT_OK(sb_fs_mkdtemp("job", &b));
	assert_string_not_equal(a, b);
	assert_true(sb_str_has_prefix(a, base));
	assert_non_null(strstr(a, "/job-"));
	assert_int_equal(mode_of(a) & 07777, 0700);
	char *bad = NULL;
	expect_code(sb_fs_mkdtemp("a/b", &bad), SB_E_INVAL);
	assert_null(bad);
	expect_code(sb_fs_mkdtemp("", &bad), SB_E_INVAL);
	if (old)
		setenv("TMPDIR", old, 1);
	else
		unsetenv("TMPDIR");
	free(old);
	free(with_slash);
	free(a);
	free(b);
	sbt_rmtree(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(write_atomic_replaces_content_with_exact_mode),
	    cmocka_unit_test(write_atomic_failed_rename_keeps_old_and_no_temp),
	    cmocka_unit_test(write_atomic_rejects_bad_paths),
	    cmocka_unit_test(atomic_stream_abort_leaves_target_untouched),
	    cmocka_unit_test(mkdir_p_creates_nested_and_accepts_existing),
	    cmocka_unit_test(rm_rf_removes_tree_without_following_symlinks),
	    cmocka_unit_test(clear_dir_keeps_named_entries_and_never_follows_links),
	    cmocka_unit_test(copy_file_copies_bytes_never_links),
	    cmocka_unit_test(copy_file_refuses_links_fifos_and_missing),
	    cmocka_unit_test(mkdtemp_is_private_unique_and_honours_tmpdir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
