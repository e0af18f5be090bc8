/* The local runner's native file transfer: sync_out packs a directory (excludes and "._*" left
 * out), sync_in replaces a directory's contents with the archive while keeping the preserved
 * top-level names. A round trip reproduces bytes, modes and symlinks. */
#include "rt.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct progress_seen {
	int calls;
	uint64_t done, total;
} progress_seen;

static void note_progress(void *ud, uint64_t done, uint64_t total)
{
	progress_seen *p = ud;
	p->calls++;
	p->done = done;
	p->total = total;
}

static void put(const char *dir, const char *rel, const void *p, size_t n, mode_t mode)
{
	char *path = sb_strfmt("%s/%s", dir, rel);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	SB_ASSERT_OK(sb_fs_mkdir_p(path, 0755));
	*slash = '/';
	char *tmp = rt_tmpfile(p, n);
	assert_int_equal(rename(tmp, path), 0);
	assert_int_equal(chmod(path, mode), 0);
	free(tmp);
	free(path);
}

static bool exists(const char *dir, const char *rel)
{
	char *path = sb_strfmt("%s/%s", dir, rel);
	struct stat st;
	bool ok = lstat(path, &st) == 0;
	free(path);
	return ok;
}

static void sync_out_then_in_round_trips_and_keeps_preserved_entries(void **state)
{
	(void)state;
	char *src = rt_tmpdir(), *dst = rt_tmpdir();
	unsigned char bin[256];
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	put(src, "a.txt", "alpha\n", 6, 0644);
	put(src, "sub/deep/b.bin", bin, sizeof(bin), 0600);
	put(src, "run.sh", "#!/bin/sh\n", 10, 0755);
	put(src, "._resource_fork", "x", 1, 0644);
	put(src, "node_modules/pkg/index.js", "js", 2, 0644);
	char *link = sb_strfmt("%s/link", src);
	assert_int_equal(symlink("a.txt", link), 0);
	free(link);

	put(dst, "old.txt", "stale", 5, 0644);
	put(dst, "keep/k", "kept", 4, 0644);
	put(dst, "olddir/x", "x", 1, 0644);

	sb_local_runner_opts opts = {.file_transfer = true};
	sb_runner *r = sb_local_runner_new(&opts);
	char *archive = rt_tmpfile("", 0);
	int fd = open(archive, O_RDWR | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	sb_excludes ex;
	sb_excludes_init(&ex);
	sb_excludes_add_dir(&ex, "node_modules");
	progress_seen out_p = {0}, in_p = {0};
	SB_ASSERT_OK(sb_runner_sync_out(r, src, &ex, fd, note_progress, &out_p));
	assert_int_equal(out_p.calls, 1);
	assert_true(out_p.done > 0);
	assert_int_equal((off_t)out_p.done, lseek(fd, 0, SEEK_CUR));

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	SB_ASSERT_OK(sb_runner_sync_in(r, dst, RT_ARGV("keep"), fd, note_progress, &in_p));
	assert_int_equal(in_p.calls, 1);
	close(fd);

	size_t n = 0;
	char *got = sbt_read(dst, "a.txt", &n);
	assert_string_equal(got, "alpha\n");
	free(got);
	got = sbt_read(dst, "sub/deep/b.bin", &n);
	assert_int_equal(n, sizeof(bin));
	assert_memory_equal(got, bin, sizeof(bin));
	free(got);
	struct stat st;
	char *p = sb_strfmt("%s/run.sh", dst);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755);
	free(p);
	p = sb_strfmt("%s/link", dst);
	char target[64] = {0};
	assert_int_equal(readlink(p, target, sizeof(target) - 1), 5);
	assert_string_equal(target, "a.txt");
	free(p);
	assert_true(exists(dst, "keep/k"));
	assert_false(exists(dst, "old.txt"));
	assert_false(exists(dst, "olddir"));
	assert_false(exists(dst, "._resource_fork"));
	assert_false(exists(dst, "node_modules"));

	sb_excludes_deinit(&ex);
	unlink(archive);
	free(archive);
	sb_runner_free(r);
	rt_rmdir(src);
	rt_rmdir(dst);
}

static void sync_in_creates_a_missing_directory(void **state)
{
	(void)state;
	char *src = rt_tmpdir(), *base = rt_tmpdir();
	put(src, "f", "1", 1, 0644);
	sb_local_runner_opts opts = {.file_transfer = true};
	sb_runner *r = sb_local_runner_new(&opts);
	char *archive = rt_tmpfile("", 0);
	int fd = open(archive, O_RDWR | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	SB_ASSERT_OK(sb_runner_sync_out(r, src, NULL, fd, NULL, NULL));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	char *dst = sb_strfmt("%s/new/nested", base);
	SB_ASSERT_OK(sb_runner_sync_in(r, dst, NULL, fd, NULL, NULL));
	assert_true(exists(dst, "f"));
	close(fd);
	unlink(archive);
	free(archive);
	free(dst);
	sb_runner_free(r);
	rt_rmdir(src);
	rt_rmdir(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sync_out_then_in_round_trips_and_keeps_preserved_entries),
	    cmocka_unit_test(sync_in_creates_a_missing_directory),
	};
	return cmocka_run_group_tests_name("runner.local_sync", tests, NULL, NULL);
}
