/* fault.cli_disk_full: `sandbar run` whose workspace's disk fills up while the changes come
 * back, as a user meets it: the real binary, a real sandbox, the workspace on a small tmpfs
 * (mounted in this test's private mount namespace; we are root). The run fails with the
 * documented restore exit status (125) and a message saying the disk is full and naming the
 * path; every local file is as it was, nothing half-restored is left; the lease is kept and
 * says how to finish; once there is room, `sandbar pull` brings every change home. */
#include "clitest.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static bool have_mounts;

/* "finish with `sandbar pull ID`" in text: ID, malloc'd, or NULL. */
static char *finish_lease(const char *text)
{
	const char *p = strstr(text, "`sandbar pull ");
	if (!p)
		return NULL;
	p += strlen("`sandbar pull ");
	size_t n = strcspn(p, "`");
	return p[n] ? sb_xstrndup(p, n) : NULL;
}

static void run_on_a_full_disk_keeps_the_work_and_says_where(void **state)
{
	clit *t = *state;
	SBT_REQUIRE(have_mounts, "needs root and a private mount namespace to mount a small tmpfs");
	assert_int_equal(mount("tmpfs", t->ws, "tmpfs", 0, "size=2m,mode=0755"), 0);
	sbt_write_str(t->ws, "keep.txt", "keep\n");
	sbt_write_str(t->ws, "src/old.txt", "old\n");

	clit_res r;
	int code = clit_run(t, &r, NULL,
	                    CLIT_V("run", "-w", t->ws, "--", "sh", "-c",
	                           "head -c 4000000 /dev/zero > big.bin && echo new > small.txt "
	                           "&& echo changed > keep.txt && rm src/old.txt"));
	if (code != 125)
		print_error("run: exit %d\n%s\n", code, r.err);
	assert_int_equal(code, 125);
	assert_non_null(strstr(r.err, "no space left on device"));
	assert_non_null(strstr(r.err, t->ws)); /* where */
	char *lease = finish_lease(r.err);
	assert_non_null(lease);
	clit_res_free(&r);

	/* Local files as they were; nothing half-restored. */
	char *keep = sbt_read(t->ws, "keep.txt", NULL);
	assert_string_equal(keep, "keep\n");
	free(keep);
	char *old = sbt_read(t->ws, "src/old.txt", NULL);
	assert_string_equal(old, "old\n");
	free(old);
	char *big = sbt_path(t->ws, "big.bin"), *small = sbt_path(t->ws, "small.txt"),
	     *staging = sbt_path(t->ws, ".sandbar-restore");
	struct stat st;
	assert_int_equal(lstat(big, &st), -1);
	assert_int_equal(lstat(small, &st), -1);
	assert_int_equal(lstat(staging, &st), -1);
	/* The work is kept in its lease. */
	json_t *l = clit_find_lease(t, lease);
	assert_non_null(l);
	json_decref(l);

	/* Room again: the pull brings every change home. */
	assert_int_equal(mount(NULL, t->ws, NULL, MS_REMOUNT, "size=64m,mode=0755"), 0);
	code = clit_run(t, &r, NULL, CLIT_V("pull", "-q", "--lease", lease));
	if (code != 0)
		print_error("pull: exit %d\n%s\n", code, r.err);
	assert_int_equal(code, 0);
	clit_res_free(&r);
	assert_int_equal(lstat(big, &st), 0);
	assert_int_equal(st.st_size, 4000000);
	char *s = sbt_read(t->ws, "small.txt", NULL);
	assert_string_equal(s, "new\n");
	free(s);
	keep = sbt_read(t->ws, "keep.txt", NULL);
	assert_string_equal(keep, "changed\n");
	free(keep);
	assert_int_equal(lstat(staging, &st), -1);
	char *gone = sbt_path(t->ws, "src/old.txt");
	assert_int_equal(lstat(gone, &st), -1);
	free(gone);
	assert_int_equal(umount2(t->ws, MNT_DETACH), 0);
	free(big);
	free(small);
	free(staging);
	free(lease);
}

int main(void)
{
	/* The tmpfs must not show outside this test: a mount namespace of its own, private. */
	have_mounts = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
	              mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	if (!have_mounts)
		print_message("no private mount namespace here (%s)\n", strerror(errno));
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(run_on_a_full_disk_keeps_the_work_and_says_where),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
