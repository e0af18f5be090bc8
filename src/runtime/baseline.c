/* The baseline: what the local workspace held when it was staged, the "base" side of every
 * three-way merge a restore does. Taken in two steps. The walk (and the hash cache, which names
 * the hashes of files unchanged since an earlier run) comes before anything is staged. The
 * hashes of the other files come from the bytes the staging archives, as it reads them
 * (sb_rt_baseline_hooks): the baseline then says exactly what the far side received, and the
 * workspace is read once, not twice. An incremental staging compares hashes before it picks what
 * to send, so it has them all taken first (sb_rt_baseline_hash); so does everything after the
 * staging, for the files the archive did not tell (left out of it, or gone before it read them).
 */
#include "rt.h"

#include <string.h>
#include <time.h>

sb_err *sb_rt_baseline_take(sb_runtime *rt, const char *hash_cache)
{
	/* Read before the walk: an entry written during it is newer, hence hashed remotely. */
	struct timespec walk_start;
	clock_gettime(CLOCK_REALTIME, &walk_start);
	rt->base_sec = walk_start.tv_sec;
	sb_err *err = sb_snap_take(rt->local_dir, &rt->restore_ex, false, &rt->baseline);
	if (err)
		return sb_err_prefix(err, "recording the baseline of %s", rt->local_dir);
	bool all_used = false;
	size_t cached =
	    hash_cache ? sb_rt_hash_cache_apply(hash_cache, &rt->baseline, &all_used) : 0;
	sb_debug("baseline of %s: %zu entries, %zu file hashes from the cache", rt->local_dir,
	         rt->baseline.n, cached);
	rt->base_hash = (struct sb_rt_base_hash){
	    .pending = true,
	    .cache_file = hash_cache,
	    .walk_ns = (int64_t)walk_start.tv_sec * 1000000000 + walk_start.tv_nsec,
	    .cached = all_used ? cached : SIZE_MAX,
	};
	/* The .git goes whole (it is no part of the merge): its stat snapshot tells an incremental
	 * restore (which the restore options may ask for) whether it changed. */
	if (!sb_excludes_match_entry(&rt->archive_ex, ".git", true))
		err = sb_rt_git_snapshot(rt->local_dir, &rt->archive_ex,
		                         sb_rt_hash_since(rt->base_sec), sb_rt_sync_checksum(),
		                         &rt->git_snap);
	rt->git_snap_ok = rt->delta_ok = !err;
	return err ? sb_err_prefix(err, "recording the baseline of %s", rt->local_dir) : NULL;
}

/* On the staging's archive writer: only files the baseline holds and has no hash for yet. */
static sb_snap_entry *unhashed(sb_runtime *rt, const char *relpath)
{
	sb_snap_entry *e = sb_snap_find(&rt->baseline, relpath);
	return e && e->type == SB_FT_FILE && !e->hashed ? e : NULL;
}

static bool want_hash(void *ud, const char *relpath)
{
	return unhashed(ud, relpath) != NULL;
}

/* The hash of the bytes staged, with their size, as hash_fd takes them from a read of the file:
 * a file rewritten since the walk is described as it was sent. */
static void on_staged(void *ud, const char *relpath, uint64_t size, int64_t ctime_ns,
                      const unsigned char sha[SB_SHA256_LEN])
{
	(void)ctime_ns;
	sb_snap_entry *e = unhashed(ud, relpath);
	if (!e)
		return;
	memcpy(e->sha, sha, SB_SHA256_LEN);
	e->size = size;
	e->hashed = true;
	e->content_digest = false;
}

void sb_rt_baseline_hooks(sb_runtime *rt, sb_rt_stage *s)
{
	if (!rt->base_hash.pending)
		return;
	s->on_file = on_staged;
	s->want_hash = want_hash;
	s->hash_ud = rt;
}

sb_err *sb_rt_baseline_hash(sb_runtime *rt)
{
	if (!rt->base_hash.pending)
		return NULL;
	rt->base_hash.pending = false;
	sb_snap_hasher h;
	sb_snap_hash_start(&rt->baseline, &h); /* two threads: the files not hashed yet */
	sb_err *err = sb_snap_hash_finish(&h);
	if (!err)
		err = sb_snap_hash_all(&rt->baseline); /* drops the root fd */
	if (err)
		return sb_err_prefix(err, "recording the baseline of %s", rt->local_dir);
	const char *cache = rt->base_hash.cache_file;
	rt->base_hash.cache_file = NULL;
	if (cache) {
		sb_err *cerr = sb_rt_hash_cache_save(cache, &rt->baseline, rt->base_hash.walk_ns,
		                                     rt->base_hash.cached);
		if (cerr) /* it only saves time: the next run hashes every file */
			sb_warn("%s", cerr->msg);
		sb_err_free(cerr);
	}
	return NULL;
}
