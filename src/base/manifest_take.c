/* Building a tree manifest here (sb_manifest_take): what the far side's listing script prints
 * (`find -printf` + `sha256sum`, src/runtime/delta.c), made by walking the tree directly, for a
 * runner that reaches the far tree itself (the sandbox runner's workspace, a local directory).
 * The same entries, kinds, modes, sizes, whole-second mtimes, link targets and hashes, so the
 * runtime compares either the same way. */
#include <sandbar/base.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct taker {
	const sb_excludes *ex;
	const sb_manifest_opts *o;
	sb_manifest *m;
} taker;

static bool rules_want_hash(const taker *t, const struct stat *st)
{
	if (t->o->hash_all)
		return true;
	if (t->o->hash_ctime_since_ns > 0 &&
	    (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec >=
	        t->o->hash_ctime_since_ns)
		return true;
	/* find -newermt @X: strictly after X, the nanoseconds included */
	return st->st_mtim.tv_sec > t->o->hash_newer_than ||
	       (st->st_mtim.tv_sec == t->o->hash_newer_than && st->st_mtim.tv_nsec > 0);
}

static bool wants_hash(const taker *t, const sb_walk_entry *e)
{
	return rules_want_hash(t, e->st) &&
	       (!t->o->want_hash || t->o->want_hash(t->o->want_hash_ud, e->relpath, e->size));
}

static sb_err *hash_at(int dirfd, const char *name, const char *rel,
                       unsigned char out[SB_SHA256_LEN])
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return sb_err_sys(errno, "hashing %s: opening it", rel);
	sb_err *err = sb_sha256_fd(fd, rel, out);
	close(fd);
	return err;
}

static sb_err *add_entry(taker *t, const sb_walk_entry *e, bool hash)
{
	sb_manifest *m = t->m;
	if (m->n == SB_MANIFEST_MAX_ENTRIES)
		return sb_err_new(SB_E_TOO_LARGE, "the tree holds more than %u entries",
		                  SB_MANIFEST_MAX_ENTRIES);
	sb_manifest_entry me = {.type = e->type,
	                        .mode = (uint32_t)(e->mode & 07777),
	                        .size = e->size,
	                        .mtime_sec = e->mtime_sec};
	if (e->type == SB_FT_SYMLINK) {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(e->dirfd, e->name, target, PATH_MAX);
		if (n < 0)
			return sb_err_sys(errno, "reading the symlink %s", e->relpath);
		target[n] = '\0';
		me.target = sb_xstrdup(target);
	}
	if (hash && e->type == SB_FT_FILE && wants_hash(t, e)) {
		sb_err *err = hash_at(e->dirfd, e->name, e->relpath, me.sha);
		if (err) {
			free(me.target);
			return err;
		}
		me.hashed = true;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 256;
		m->v = sb_xrealloc(m->v, m->cap * sizeof *m->v);
	}
	me.path = sb_xstrdup(e->relpath);
	m->v[m->n++] = me;
	return NULL;
}

static int take_cb(const sb_walk_entry *e, void *ud, sb_err **err)
{
	taker *t = ud;
	bool is_dir = e->type == SB_FT_DIR;
	bool excluded = (e->name[0] == '.' && e->name[1] == '_') ||
	                (t->ex && sb_excludes_match_entry(t->ex, e->relpath, is_dir));
	if (excluded && !t->o->list_pruned)
		return is_dir ? SB_WALK_SKIP : SB_WALK_CONTINUE;
	*err = add_entry(t, e, !excluded); /* an excluded entry is only listed, to be removed */
	if (*err)
		return SB_WALK_STOP;
	return excluded && is_dir ? SB_WALK_SKIP : SB_WALK_CONTINUE;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const sb_manifest_entry *)a)->path, ((const sb_manifest_entry *)b)->path);
}

sb_err *sb_manifest_take(const char *root, const sb_excludes *ex, const sb_manifest_opts *o,
                         sb_manifest *out)
{
	sb_manifest_init(out);
	out->now_sec = (int64_t)time(NULL);
	taker t = {.ex = ex, .o = o, .m = out};
	sb_err *err = sb_fs_walk(root, take_cb, &t);
	if (err) {
		sb_manifest_deinit(out);
		return sb_err_prefix(err, "listing %s", root);
	}
	/* the walk gives parents before children, which is not strcmp order ("a-b" < "a/b") */
	if (out->n > 1)
		qsort(out->v, out->n, sizeof *out->v, cmp_entry);
	return NULL;
}
