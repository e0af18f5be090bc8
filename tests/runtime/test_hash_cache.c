/* runtime.hash_cache: the local hash cache (runtime/hash_cache.c) gives a file its cached hash
 * only while that version of the file is unchanged: a rewrite of the same size with its mtime
 * set back, or a replacement by another inode, is hashed again; files written within a second
 * of the walk are never cached; a cache that does not read back whole gives nothing; a cache
 * that is still exact is not written again. */
#include "harness.h"

#include "runtime/rt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NFILES 20

typedef struct fixture {
	char *root, *ws, *cache;
	sb_excludes ex;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->root = sbt_mkdtemp("hash-cache");
	f->ws = sbt_path(f->root, "ws");
	f->cache = sbt_path(f->root, "state/hashes/ws");
	sb_excludes_init(&f->ex);
	assert_int_equal(sbt_sh("mkdir -p '%s/sub' && cd '%s' && i=0; while [ $i -lt %d ]; do "
	                        "echo \"content $i\" > sub/f$i.txt; i=$((i+1)); done && "
	                        "ln -s sub/f1.txt link",
	                        f->ws, f->ws, NFILES),
	                 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	sbt_sh("rm -rf '%s'", f->root);
	sb_excludes_deinit(&f->ex);
	free(f->root);
	free(f->ws);
	free(f->cache);
	free(f);
	return 0;
}

static int64_t now_ns(int64_t plus_s)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec + plus_s) * 1000000000 + ts.tv_nsec;
}

/* A snapshot of the workspace, every file hashed, saved to the cache as if the walk had been
 * walk_offset_s seconds from now. */
static void save_cache(fixture *f, int64_t walk_offset_s)
{
	sb_snap s;
	SB_ASSERT_OK(sb_snap_take(f->ws, &f->ex, false, &s));
	SB_ASSERT_OK(sb_snap_hash_all(&s));
	SB_ASSERT_OK(sb_rt_hash_cache_save(f->cache, &s, now_ns(walk_offset_s), SIZE_MAX));
	sb_snap_deinit(&s);
}

static size_t count_hashed(const sb_snap *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		n += s->v[i].hashed;
	return n;
}

/* Apply the cache to a fresh snapshot; every cached hash must be the file's real one. */
static size_t apply_and_check(fixture *f, sb_snap *s)
{
	SB_ASSERT_OK(sb_snap_take(f->ws, &f->ex, false, s));
	bool all_used;
	size_t used = sb_rt_hash_cache_apply(f->cache, s, &all_used);
	assert_int_equal(used, count_hashed(s));
	sb_snap truth;
	SB_ASSERT_OK(sb_snap_take(f->ws, &f->ex, false, &truth));
	SB_ASSERT_OK(sb_snap_hash_all(&truth));
	for (size_t i = 0; i < s->n; i++) {
		if (!s->v[i].hashed)
			continue;
		sb_snap_entry *t = sb_snap_find(&truth, s->v[i].path);
		assert_non_null(t);
		assert_memory_equal(s->v[i].sha, t->sha, SB_SHA256_LEN);
	}
	sb_snap_deinit(&truth);
	return used;
}

static void unchanged_files_take_their_hash_from_the_cache(void **state)
{
	fixture *f = *state;
	save_cache(f, 2); /* a walk two seconds from now: no file is too recent to cache */
	sb_snap s;
	assert_int_equal(apply_and_check(f, &s), NFILES);
	sb_snap_deinit(&s);
}

static ino_t inode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

/* A repeat run that finds every cached hash still good does not write the cache again; one that
 * hashed a file anew does (a new file, by an atomic rename). */
static void an_unchanged_cache_is_not_rewritten(void **state)
{
	fixture *f = *state;
	save_cache(f, 2);
	ino_t before = inode_of(f->cache);
	sb_snap s;
	SB_ASSERT_OK(sb_snap_take(f->ws, &f->ex, false, &s));
	bool all_used;
	size_t used = sb_rt_hash_cache_apply(f->cache, &s, &all_used);
	assert_int_equal(used, NFILES);
	assert_true(all_used);
	SB_ASSERT_OK(sb_snap_hash_all(&s));
	SB_ASSERT_OK(sb_rt_hash_cache_save(f->cache, &s, now_ns(2), used));
	assert_int_equal(inode_of(f->cache), before);
	sb_snap_deinit(&s);
	/* one file more: cacheable, so the cache is written */
	assert_int_equal(sbt_sh("echo new > '%s/sub/new.txt'", f->ws), 0);
	SB_ASSERT_OK(sb_snap_take(f->ws, &f->ex, false, &s));
	used = sb_rt_hash_cache_apply(f->cache, &s, &all_used);
	assert_int_equal(used, NFILES);
	SB_ASSERT_OK(sb_snap_hash_all(&s));
	SB_ASSERT_OK(sb_rt_hash_cache_save(f->cache, &s, now_ns(2), used));
	assert_int_not_equal(inode_of(f->cache), before);
	sb_snap_deinit(&s);
}

static void a_rewrite_with_its_mtime_set_back_is_hashed_again(void **state)
{
	fixture *f = *state;
	save_cache(f, 2);
	char *p = sbt_path(f->ws, "sub/f3.txt");
	struct stat before;
	assert_int_equal(stat(p, &before), 0);
	/* same size, other bytes, the old mtime: only ctime (and the content) tell */
	assert_int_equal(sbt_sh("printf 'CONTENT 3\\n' > '%s'", p), 0);
	struct timespec times[2] = {before.st_atim, before.st_mtim};
	assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
	sb_snap s;
	assert_int_equal(apply_and_check(f, &s), NFILES - 1);
	assert_false(sb_snap_find(&s, "sub/f3.txt")->hashed);
	sb_snap_deinit(&s);
	free(p);
}

static void a_replacement_by_another_inode_is_hashed_again(void **state)
{
	fixture *f = *state;
	save_cache(f, 2);
	assert_int_equal(sbt_sh("cd '%s/sub' && cp -p f4.txt .new && mv .new f4.txt", f->ws), 0);
	sb_snap s;
	assert_int_equal(apply_and_check(f, &s), NFILES - 1);
	assert_false(sb_snap_find(&s, "sub/f4.txt")->hashed);
	sb_snap_deinit(&s);
}

static void files_written_within_a_second_of_the_walk_are_not_cached(void **state)
{
	fixture *f = *state;
	save_cache(f, 0); /* every file was just written */
	sb_snap s;
	assert_int_equal(apply_and_check(f, &s), 0);
	sb_snap_deinit(&s);
}

static void a_damaged_cache_gives_nothing(void **state)
{
	fixture *f = *state;
	save_cache(f, 2);
	struct stat st;
	assert_int_equal(stat(f->cache, &st), 0);
	assert_true(st.st_size > 100);
	/* cut in the middle of the last record */
	assert_int_equal(truncate(f->cache, st.st_size - 5), 0);
	sb_snap s;
	assert_int_equal(apply_and_check(f, &s), 0);
	sb_snap_deinit(&s);
	/* another version's header (version 1 also held a content hash) */
	save_cache(f, 2);
	assert_int_equal(sbt_sh("printf 'sandbar-hash-cache 1' | dd of='%s' conv=notrunc "
	                        "status=none",
	                        f->cache),
	                 0);
	assert_int_equal(apply_and_check(f, &s), 0);
	sb_snap_deinit(&s);
	/* no cache at all */
	assert_int_equal(unlink(f->cache), 0);
	assert_int_equal(apply_and_check(f, &s), 0);
	sb_snap_deinit(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(unchanged_files_take_their_hash_from_the_cache, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(an_unchanged_cache_is_not_rewritten, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_rewrite_with_its_mtime_set_back_is_hashed_again,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(a_replacement_by_another_inode_is_hashed_again, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        files_written_within_a_second_of_the_walk_are_not_cached, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_damaged_cache_gives_nothing, setup, teardown),
	};
	return cmocka_run_group_tests_name("runtime.hash_cache", tests, NULL, NULL);
}
