/* The local hash cache (#15: hash only what changed): the baseline's file hashes, kept between
 * runs of one workspace, so that a repeat run hashes only the files written since, not the
 * whole tree (100 MiB of SHA-256, twice, is most of a repeat run's staging).
 *
 * A cached hash is used only for a file whose size, mtime, ctime, inode and device are all what
 * they were when it was hashed. Any write to a file sets its ctime to the time of the write, and
 * nothing sets a ctime back, so a file whose ctime is unchanged has not been written. The one
 * gap is a write in the same clock tick as the one before it, after the hash was taken: so a
 * file whose ctime or mtime is less than a second older than the walk that hashed it is not
 * cached at all (hashed again next time).
 *
 * The file is this host's alone (native byte order): "sandbar-hash-cache 2\n", then per file
 * size, mtime_ns, ctime_ns, ino, dev (8 bytes each), the plain SHA-256 (32 bytes), the path's
 * length (2 bytes) and the path. (Version 1 also held a content hash: such a file is discarded.)
 * Anything that does not read back exactly (a version, a short record, a bad path) discards the
 * whole cache: it only saves time, and a wrong hash must never come out of it. */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

#define MAGIC "sandbar-hash-cache 2\n"
#define FIXED (5 * 8 + SB_SHA256_LEN + 2)
#define PATH_MAX_LEN 4096
#define FILE_MAX (256u * 1024u * 1024u) /* ~1.5 M files; a bigger cache is not read */
#define RACY_NS 1000000000LL

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static void put_u64(sb_buf *b, uint64_t v)
{
	sb_buf_append(b, &v, sizeof v);
}

/* One record at p (n bytes left): its length, or 0 when it does not read back. */
static size_t parse_record(const unsigned char *p, size_t n, sb_snap_entry *rec, char *path)
{
	if (n < FIXED)
		return 0;
	uint16_t len;
	memcpy(&len, p + FIXED - 2, sizeof len);
	if (len == 0 || len > PATH_MAX_LEN || n - FIXED < len || memchr(p + FIXED, '\0', len))
		return 0;
	rec->size = get_u64(p);
	rec->seen.mtime_ns = (int64_t)get_u64(p + 8);
	rec->seen.ctime_ns = (int64_t)get_u64(p + 16);
	rec->seen.ino = get_u64(p + 24);
	rec->seen.dev = get_u64(p + 32);
	memcpy(rec->sha, p + 40, SB_SHA256_LEN);
	memcpy(path, p + FIXED, len);
	path[len] = '\0';
	return FIXED + len;
}

static bool same_version(const sb_snap_entry *e, const sb_snap_entry *rec)
{
	return e->type == SB_FT_FILE && !e->hashed && e->size == rec->size &&
	       e->seen.mtime_ns == rec->seen.mtime_ns && e->seen.ctime_ns == rec->seen.ctime_ns &&
	       e->seen.ino == rec->seen.ino && e->seen.dev == rec->seen.dev;
}

size_t sb_rt_hash_cache_apply(const char *file, sb_snap *s, bool *all_used)
{
	*all_used = false;
	sb_buf b = SB_BUF_INIT;
	bool found = false;
	sb_err *err = sb_read_file_if_any(file, FILE_MAX, &b, &found);
	if (err || !found || b.len < sizeof MAGIC - 1 ||
	    memcmp(b.data, MAGIC, sizeof MAGIC - 1) != 0) {
		if (err)
			sb_debug("hash cache %s not used: %s", file, err->msg);
		sb_err_free(err);
		sb_buf_deinit(&b);
		return 0;
	}
	/* Read every record before using one: a cache that does not read back whole is unused. */
	const unsigned char *p = (const unsigned char *)b.data + sizeof MAGIC - 1;
	size_t left = b.len - (sizeof MAGIC - 1), nrec = 0;
	for (size_t off = 0; off < left; nrec++) {
		sb_snap_entry rec;
		char path[PATH_MAX_LEN + 1];
		size_t k = parse_record(p + off, left - off, &rec, path);
		if (!k) {
			sb_debug("hash cache %s not used: record %zu does not read back", file,
			         nrec);
			sb_buf_deinit(&b);
			return 0;
		}
		off += k;
	}
	size_t used = 0;
	for (size_t off = 0; off < left;) {
		sb_snap_entry rec;
		char path[PATH_MAX_LEN + 1];
		off += parse_record(p + off, left - off, &rec, path);
		sb_snap_entry *e = sb_snap_find(s, path);
		if (!e || !same_version(e, &rec))
			continue;
		memcpy(e->sha, rec.sha, SB_SHA256_LEN);
		e->hashed = true;
		used++;
	}
	sb_buf_deinit(&b);
	*all_used = used == nrec;
	return used;
}

sb_err *sb_rt_hash_cache_save(const char *file, const sb_snap *s, int64_t walk_start_ns,
                              size_t unchanged)
{
	sb_buf b = SB_BUF_INIT;
	sb_buf_appends(&b, MAGIC);
	size_t nrec = 0;
	for (size_t i = 0; i < s->n; i++) {
		const sb_snap_entry *e = &s->v[i];
		size_t len = strlen(e->path);
		if (e->type != SB_FT_FILE || !e->hashed || e->content_digest ||
		    len > PATH_MAX_LEN || e->seen.ctime_ns > walk_start_ns - RACY_NS ||
		    e->seen.mtime_ns > walk_start_ns - RACY_NS)
			continue;
		if (b.len + FIXED + len > FILE_MAX)
			break; /* the rest is hashed again next time */
		put_u64(&b, e->size);
		put_u64(&b, (uint64_t)e->seen.mtime_ns);
		put_u64(&b, (uint64_t)e->seen.ctime_ns);
		put_u64(&b, e->seen.ino);
		put_u64(&b, e->seen.dev);
		sb_buf_append(&b, e->sha, SB_SHA256_LEN);
		uint16_t l16 = (uint16_t)len;
		sb_buf_append(&b, &l16, sizeof l16);
		sb_buf_append(&b, e->path, len);
		nrec++;
	}
	if (nrec == unchanged) {
		/* Every record the file holds was used and nothing else is cacheable: the cache
		 * already says exactly this (same versions, same hashes, same order). */
		sb_buf_deinit(&b);
		return NULL;
	}
	char *dir = sb_rt_dirname(file);
	sb_err *err = sb_fs_mkdir_p(dir, 0700);
	free(dir);
	if (!err) {
		sb_atomic_file af;
		err = sb_atomic_open(file, 0600, &af);
		if (!err) {
			err = sb_write_all(af.fd, b.data, b.len);
			/* a lost cache costs one full hashing, not a result: no fsync */
			if (!err)
				err = sb_atomic_commit_nosync(&af);
			else
				sb_atomic_abort(&af);
		}
	}
	sb_buf_deinit(&b);
	return err ? sb_err_prefix(err, "saving the hash cache %s", file) : NULL;
}
