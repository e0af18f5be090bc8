/* base.confine: relative-path checks and opening beneath a root, through openat2 and through the
 * component-by-component fallback, which must answer the same on every case. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void check_relative_accepts_plain_and_rejects_the_rest(void **state)
{
	(void)state;
	SB_ASSERT_OK(sb_path_check_relative("a"));
	SB_ASSERT_OK(sb_path_check_relative("a/b c/.hidden/..x/x.."));
	sbt_expect_code(sb_path_check_relative(NULL), SB_E_INVAL, "NULL");
	sbt_expect_code(sb_path_check_relative(""), SB_E_INVAL, "empty");
	sbt_expect_code(sb_path_check_relative("/etc/passwd"), SB_E_ESCAPE, "absolute");
	sbt_expect_code(sb_path_check_relative(".."), SB_E_ESCAPE, "..");
	sbt_expect_code(sb_path_check_relative("../x"), SB_E_ESCAPE, "../x");
	sbt_expect_code(sb_path_check_relative("a/../../x"), SB_E_ESCAPE, "a/../../x");
	sbt_expect_code(sb_path_check_relative("a/.."), SB_E_ESCAPE, "a/..");
	sbt_expect_code(sb_path_check_relative("./a"), SB_E_INVAL, "./a");
	sbt_expect_code(sb_path_check_relative("a/./b"), SB_E_INVAL, "a/./b");
	sbt_expect_code(sb_path_check_relative("a//b"), SB_E_INVAL, "a//b");
	sbt_expect_code(sb_path_check_relative("a/"), SB_E_INVAL, "a/");
	char *long_seg = sb_xmalloc(NAME_MAX + 2);
	memset(long_seg, 'x', NAME_MAX + 1);
	long_seg[NAME_MAX + 1] = '\0';
	sbt_expect_code(sb_path_check_relative(long_seg), SB_E_TOO_LARGE, "long segment");
	char *long_path = sb_xmalloc(PATH_MAX + 2);
	for (size_t i = 0; i < PATH_MAX + 1; i++)
		long_path[i] = i % 2 ? '/' : 'a';
	long_path[PATH_MAX + 1] = '\0';
	sbt_expect_code(sb_path_check_relative(long_path), SB_E_TOO_LARGE, "long path");
	free(long_seg);
	free(long_path);
}

struct fixture {
	char *top; /* holds root/ and outside/ side by side */
	char *root;
	char *outside;
	int rootfd;
};

static void link_at(const char *dir, const char *name, const char *target)
{
	char *p = sbt_path(dir, name);
	assert_int_equal(symlink(target, p), 0);
	free(p);
}

static void fixture_up(struct fixture *f)
{
	f->top = sbt_mkdtemp("sb-confine");
	f->root = sbt_path(f->top, "root");
	f->outside = sbt_path(f->top, "outside");
	sbt_write_str(f->outside, "secret", "outside secret");
	sbt_write_str(f->root, "a/b/file", "inside");
	sbt_write_str(f->root, "top", "top file");
	link_at(f->root, "abs", f->outside);           /* absolute symlink */
	link_at(f->root, "abs_file", "/etc/hostname"); /* absolute, to a file */
	link_at(f->root, "up", "../outside");          /* relative, climbing out */
	link_at(f->root, "a/b/deep_up", "../../../outside/secret");
	link_at(f->root, "chain1", "chain2"); /* a chain that ends outside */
	link_at(f->root, "chain2", "a/../../outside");
	link_at(f->root, "in", "a/b");                /* in-tree, to a directory */
	link_at(f->root, "in_chain", "in");           /* in-tree chain */
	link_at(f->root, "a/b/sibling", "../../top"); /* in-tree, via .. */
	link_at(f->root, "loop", "loop");
	link_at(f->root, "dangling", "a/new_target");
	f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->rootfd >= 0);
}

static void fixture_down(struct fixture *f)
{
	close(f->rootfd);
	free(f->root);
	free(f->outside);
	sbt_rmtree(f->top);
}

static char *read_beneath(int rootfd, const char *rel)
{
	int fd = -1;
	SB_ASSERT_OK(sb_fs_open_beneath(rootfd, rel, O_RDONLY, 0, 0, &fd));
	sb_buf b = SB_BUF_INIT;
	SB_ASSERT_OK(sb_read_fd_all(fd, 1 << 20, &b));
	close(fd);
	return sb_buf_steal(&b, NULL);
}

static void expect_read(int rootfd, const char *rel, const char *want)
{
	char *got = read_beneath(rootfd, rel);
	if (strcmp(got, want) != 0)
		print_error("reading %s: got \"%s\", want \"%s\"\n", rel, got, want);
	assert_string_equal(got, want);
	free(got);
}

static void expect_open_fails(int rootfd, const char *rel, int flags, unsigned sbflags,
                              sb_errcode code)
{
	int fd = 12345;
	sbt_expect_code(sb_fs_open_beneath(rootfd, rel, flags, 0644, sbflags, &fd), code, rel);
	assert_int_equal(fd, -1);
}

static void open_beneath_battery(bool fallback)
{
	sb_fs_beneath_force_fallback(fallback);
	struct fixture f;
	fixture_up(&f);
	int fd = -1;

	/* inside: plain, with in-tree "." and "..", through in-tree links and chains */
	expect_read(f.rootfd, "a/b/file", "inside");
	expect_read(f.rootfd, "a/./b/../b/file", "inside");
	expect_read(f.rootfd, "in/file", "inside");
	expect_read(f.rootfd, "in_chain/file", "inside");
	expect_read(f.rootfd, "a/b/sibling", "top file");
	expect_read(f.rootfd, "in/../../top", "top file"); /* ".." after a link is physical */
	SB_ASSERT_OK(sb_fs_open_beneath(f.rootfd, "a/b", O_RDONLY | O_DIRECTORY, 0, 0, &fd));
	close(fd);

	/* escapes */
	expect_open_fails(f.rootfd, "../outside/secret", O_RDONLY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "a/../../outside/secret", O_RDONLY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "..", O_RDONLY | O_DIRECTORY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "/etc/hostname", O_RDONLY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "abs/secret", O_RDONLY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "abs", O_RDONLY | O_DIRECTORY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "abs_file", O_RDONLY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "up/secret", O_RDONLY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "up", O_RDONLY | O_DIRECTORY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "a/b/deep_up", O_RDONLY, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "chain1/secret", O_RDONLY, 0, SB_E_ESCAPE);

	/* creation: inside works, through an escaping link is refused and writes nothing */
	SB_ASSERT_OK(
	    sb_fs_open_beneath(f.rootfd, "a/created", O_WRONLY | O_CREAT | O_EXCL, 0600, 0, &fd));
	assert_int_equal(write(fd, "c", 1), 1);
	close(fd);
	expect_read(f.rootfd, "a/created", "c");
	expect_open_fails(f.rootfd, "up/pwned", O_WRONLY | O_CREAT, 0, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "abs/pwned", O_WRONLY | O_CREAT, SB_OPEN_MKDIRS, SB_E_ESCAPE);
	expect_open_fails(f.rootfd, "up/x/y/pwned", O_WRONLY | O_CREAT, SB_OPEN_MKDIRS,
	                  SB_E_ESCAPE);
	char *pwned = sbt_path(f.outside, "pwned");
	assert_int_equal(access(pwned, F_OK), -1);
	free(pwned);
	char *x = sbt_path(f.outside, "x");
	assert_int_equal(access(x, F_OK), -1);
	free(x);
	/* O_CREAT through a dangling in-tree link creates its target, inside */
	SB_ASSERT_OK(sb_fs_open_beneath(f.rootfd, "dangling", O_WRONLY | O_CREAT, 0600, 0, &fd));
	close(fd);
	char *target = sbt_read(f.root, "a/new_target", NULL);
	assert_non_null(target);
	free(target);

	/* SB_OPEN_MKDIRS makes the missing parents, also below an in-tree link */
	expect_open_fails(f.rootfd, "m/n/o/file", O_WRONLY | O_CREAT, 0, SB_E_NOTFOUND);
	SB_ASSERT_OK(sb_fs_open_beneath(f.rootfd, "m/n/o/file", O_WRONLY | O_CREAT, 0600,
	                                SB_OPEN_MKDIRS, &fd));
	close(fd);
	SB_ASSERT_OK(
	    sb_fs_open_beneath(f.rootfd, "in/p/q", O_WRONLY | O_CREAT, 0600, SB_OPEN_MKDIRS, &fd));
	close(fd);
	char *q = sbt_read(f.root, "a/b/p/q", NULL);
	assert_non_null(q);
	free(q);
	expect_open_fails(f.rootfd, "top/sub/file", O_WRONLY | O_CREAT, SB_OPEN_MKDIRS, SB_E_IO);

	/* other failures */
	expect_open_fails(f.rootfd, "missing", O_RDONLY, 0, SB_E_NOTFOUND);
	expect_open_fails(f.rootfd, "loop", O_RDONLY, 0, SB_E_IO);
	expect_open_fails(f.rootfd, "in", O_RDONLY | O_NOFOLLOW, 0, SB_E_IO);
	expect_open_fails(f.rootfd, "top/x", O_RDONLY, 0, SB_E_IO);
	expect_open_fails(f.rootfd, "", O_RDONLY, 0, SB_E_INVAL);
	expect_open_fails(f.rootfd, "a", O_RDONLY, 0x100, SB_E_INVAL);
	expect_open_fails(f.rootfd, "a/created", O_WRONLY | O_CREAT | O_EXCL, 0, SB_E_EXISTS);

	fixture_down(&f);
	sb_fs_beneath_force_fallback(false);
}

static void open_beneath_with_openat2(void **state)
{
	(void)state;
	/* Show which resolver this host exercises: on kernels without openat2 both runs test the
	 * fallback, which the next test pins anyway. */
	long r = syscall(SYS_openat2, -1, "", NULL, 0);
	if (r < 0 && errno == ENOSYS)
		print_message("openat2 is not available here: the kernel path is the fallback\n");
	open_beneath_battery(false);
}

static void open_beneath_with_the_fallback_resolver(void **state)
{
	(void)state;
	open_beneath_battery(true);
}

static void fallback_refuses_long_symlink_chains(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-confine");
	sbt_write_str(dir, "end", "end");
	/* l0 -> l1 -> ... -> l40 -> end: 41 links, one more than Linux allows */
	for (int i = 0; i <= 40; i++) {
		char name[16], target[16];
		snprintf(name, sizeof name, "l%d", i);
		if (i == 40)
			snprintf(target, sizeof target, "end");
		else
			snprintf(target, sizeof target, "l%d", i + 1);
		link_at(dir, name, target);
	}
	int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int fb = 0; fb < 2; fb++) {
		sb_fs_beneath_force_fallback(fb);
		expect_open_fails(rootfd, "l0", O_RDONLY, 0, SB_E_IO);
		expect_read(rootfd, "l1", "end"); /* 40 links are fine */
	}
	sb_fs_beneath_force_fallback(false);
	close(rootfd);
	sbt_rmtree(dir);
}

static void expect_sys(sb_err *err, int errnum, const char *what)
{
	if (!err) {
		print_error("%s: expected errno %d, got success\n", what, errnum);
		fail();
	}
	assert_int_equal(err->sys_errno, errnum);
	sb_err_free(err);
}

/* O_NOFOLLOW|O_DIRECTORY on a link: Linux answers ENOTDIR, POSIX allows ELOOP. */
static void expect_blocked(sb_err *err, const char *what)
{
	assert_non_null(err);
	expect_sys(err, err->sys_errno == ELOOP ? ELOOP : ENOTDIR, what);
}

static void open_dir_nofollow_refuses_every_link_and_creates_on_request(void **state)
{
	(void)state;
	struct fixture f;
	fixture_up(&f);
	int fd = -1;
	SB_ASSERT_OK(sb_fs_open_dir_nofollow(f.rootfd, "a/b", false, &fd));
	expect_read(fd, "file", "inside");
	close(fd);
	SB_ASSERT_OK(sb_fs_open_dir_nofollow(f.rootfd, "", false, &fd));
	expect_read(fd, "top", "top file");
	close(fd);
	/* Even a link that stays inside is refused, at the end or on the way. */
	expect_blocked(sb_fs_open_dir_nofollow(f.rootfd, "in", false, &fd), "in");
	expect_blocked(sb_fs_open_dir_nofollow(f.rootfd, "in/x", true, &fd), "in/x");
	expect_blocked(sb_fs_open_dir_nofollow(f.rootfd, "up", true, &fd), "up");
	expect_sys(sb_fs_open_dir_nofollow(f.rootfd, "top/x", true, &fd), ENOTDIR, "top/x");
	expect_sys(sb_fs_open_dir_nofollow(f.rootfd, "new/dir", false, &fd), ENOENT, "new/dir");
	SB_ASSERT_OK(sb_fs_open_dir_nofollow(f.rootfd, "new/dir", true, &fd));
	close(fd);
	struct stat st;
	char *made = sbt_path(f.root, "new/dir");
	assert_int_equal(lstat(made, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(made);
	/* Nothing was created through the links. */
	char *x = sbt_path(f.root, "a/b/x");
	assert_int_not_equal(lstat(x, &st), 0);
	free(x);
	fixture_down(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(check_relative_accepts_plain_and_rejects_the_rest),
	    cmocka_unit_test(open_beneath_with_openat2),
	    cmocka_unit_test(open_beneath_with_the_fallback_resolver),
	    cmocka_unit_test(fallback_refuses_long_symlink_chains),
	    cmocka_unit_test(open_dir_nofollow_refuses_every_link_and_creates_on_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
