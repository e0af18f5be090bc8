/* base.optional_libs: libarchive and libgit2 are loaded on first use, not linked. On a host where
 * one cannot be loaded, every base function that needs it answers an error naming the library
 * and its Debian package (and does nothing else: no directory created), never a crash. The calls
 * run in a copy of this program started with LD_LIBRARY_PATH on a directory whose
 * libarchive.so.13 and libgit2.so.1.5 are empty files, which dlopen refuses. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHILD_ENV "SBT_OPTIONAL_LIBS_CHILD"

/* ---- the child: one line per call, "<call> <code> <message>" ("<call> 0 ok" on success) */

static void report(const char *call, sb_err *err)
{
	printf("%s %d %s\n", call, err ? (int)err->code : 0, err ? err->msg : "ok");
	sb_err_free(err);
}

static int child_tar(const char *dir)
{
	char *src = sbt_path(dir, "src");
	char *dst = sbt_path(dir, "dst");
	if (mkdir(src, 0755) != 0)
		return 2;
	int fd = open(dir, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (fd < 0)
		return 2;
	report("create", sb_tar_create(src, NULL, false, fd, NULL));
	report("extract", sb_tar_extract(fd, dst, NULL));
	struct stat st;
	printf("dst_created %d\n", lstat(dst, &st) == 0);
	close(fd);
	free(src);
	free(dst);
	return 0;
}

static int child_git(const char *dir)
{
	char *dotgit = sbt_path(dir, ".git"); /* enough for sb_git_head to start libgit2 */
	if (mkdir(dotgit, 0755) != 0)
		return 2;
	sb_git_prewarm(dir); /* fails on its thread, quietly: the calls below report it */
	char head[41];
	report("head", sb_git_head(dir, head));
	size_t n = 0;
	report("fetch", sb_git_fetch_branch(dir, dir, "", "b", "", &n));
	sb_matcher *m = NULL;
	report("matcher", sb_matcher_new(dir, &m));
	printf("matcher_null %d\n", m == NULL);
	sb_matcher_free(m);
	free(dotgit);
	return 0;
}

/* ---- the parent */

/* The child's output for what ("tar" or "git"), run in a fresh directory with the libraries
 * unloadable. */
static char *run_child(const char *what)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	assert_true(n > 0);
	self[n] = '\0';
	char *dir = sbt_mkdtemp("optional-libs");
	sbt_write_str(dir, "libs/libarchive.so.13", "");
	sbt_write_str(dir, "libs/libgit2.so.1.5", "");
	char *work = sbt_path(dir, "work");
	assert_int_equal(mkdir(work, 0755), 0);
	char *out = sbt_sh_out("LD_LIBRARY_PATH='%s/libs' " CHILD_ENV "=%s '%s' '%s'", dir, what,
	                       self, work);
	assert_non_null(out);
	free(work);
	sbt_rmtree(dir);
	return out;
}

/* The line for call in out says SB_E_UNSUPPORTED with a message holding each of the words. */
static void assert_unsupported(const char *out, const char *call, const char *const *words)
{
	char *key = sb_strfmt("%s %d ", call, (int)SB_E_UNSUPPORTED);
	const char *line = strstr(out, key);
	if (!line)
		fail_msg("no SB_E_UNSUPPORTED error from %s in:\n%s", call, out);
	size_t len = strcspn(line, "\n");
	char *msg = sb_xstrndup(line, len);
	for (size_t i = 0; words[i]; i++)
		if (!strstr(msg, words[i]))
			fail_msg("the error of %s does not say \"%s\": %s", call, words[i], msg);
	free(msg);
	free(key);
}

static void tar_without_libarchive_is_an_error_naming_the_package(void **state)
{
	(void)state;
	char *out = run_child("tar");
	assert_unsupported(
	    out, "create",
	    (const char *const[]){"archiving", "libarchive.so.13", "libarchive13", NULL});
	assert_unsupported(
	    out, "extract",
	    (const char *const[]){"extracting into", "libarchive.so.13", "libarchive13", NULL});
	assert_non_null(strstr(out, "dst_created 0\n"));
	free(out);
}

static void git_without_libgit2_is_an_error_naming_the_package(void **state)
{
	(void)state;
	char *out = run_child("git");
	const char *const words[] = {"libgit2.so.1.5", "libgit2-1.5", NULL};
	assert_unsupported(out, "head", words);
	assert_unsupported(out, "fetch", words);
	assert_unsupported(out, "matcher", words);
	assert_non_null(strstr(out, "matcher_null 1\n"));
	free(out);
}

int main(int argc, char **argv)
{
	const char *child = getenv(CHILD_ENV);
	if (child && argc == 2) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		return strcmp(child, "tar") == 0 ? child_tar(argv[1]) : child_git(argv[1]);
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tar_without_libarchive_is_an_error_naming_the_package),
	    cmocka_unit_test(git_without_libgit2_is_an_error_naming_the_package),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
