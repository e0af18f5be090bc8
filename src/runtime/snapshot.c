/* Tree snapshots for the three-way merge (spec §3.3): every directory, regular file (permission
 * bits, size, SHA-256) and symlink (target text) below a root, under the runtime's one exclude
 * list (the hash is the plain SHA-256, holes unread: sb_rt_plain_hash); FIFOs, sockets and devices
 * are ignored, symlinks never followed. The baseline hashes everything while the tree is as it was
 * at prepare; the other snapshots hash a file only when a comparison gets that far (same kind, mode
 * and size), which keeps restores of big trees cheap.
 */
#include "rt.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void sb_snap_init(sb_snap *s)
{
	memset(s, 0, sizeof *s);
	s->rootfd = -1;
}

void sb_snap_deinit(sb_snap *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].path);
		free(s->v[i].target);
	}
	free(s->v);
	sb_close(&s->rootfd);
	sb_snap_init(s);
}

/* Hash an open regular file; updates size to what was hashed. */
static sb_err *hash_fd(int fd, const char *path, sb_snap_entry *e)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return sb_err_sys(errno, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return sb_err_new(SB_E_CONFLICT, "%s changed while it was being snapshotted", path);
	sb_err *err = sb_rt_plain_hash(fd, path, e->sha, &e->size);
	if (!err) {
		e->hashed = true;
		e->content_digest = false;
	}
	return err;
}

typedef struct walk_ctx {
	sb_snap *s;
	const sb_excludes *ex;
	bool hash_now;
	char ***left_out; /* NULL: not wanted */
} walk_ctx;

static int on_entry(const sb_walk_entry *we, void *ud, sb_err **err)
{
	walk_ctx *w = ud;
	if (sb_rt_name_ignored(we->name) ||
	    sb_excludes_match_entry(w->ex, we->relpath, we->type == SB_FT_DIR)) {
		if (w->left_out)
			sb_strv_push(w->left_out, we->relpath);
		return we->type == SB_FT_DIR ? SB_WALK_SKIP : SB_WALK_CONTINUE;
	}
	if (we->type == SB_FT_OTHER) {
		if (w->left_out)
			sb_strv_push(w->left_out, we->relpath);
		return SB_WALK_CONTINUE;
	}
	sb_snap *s = w->s;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = sb_xrealloc(s->v, s->cap * sizeof *s->v);
	}
	sb_snap_entry *e = &s->v[s->n];
	memset(e, 0, sizeof *e);
	e->path = sb_xstrdup(we->relpath);
	e->type = we->type;
	e->mode = we->mode;
	e->size = we->size;
	e->mtime_sec = we->mtime_sec;
	e->seen.mtime_ns = (int64_t)we->st->st_mtim.tv_sec * 1000000000 + we->st->st_mtim.tv_nsec;
	e->seen.ctime_ns = (int64_t)we->st->st_ctim.tv_sec * 1000000000 + we->st->st_ctim.tv_nsec;
	e->seen.ino = (uint64_t)we->st->st_ino;
	e->seen.dev = (uint64_t)we->st->st_dev;
	s->n++;
	if (we->type == SB_FT_SYMLINK) {
		sb_buf t = SB_BUF_INIT;
		size_t cap = 256;
		for (;;) {
			sb_buf_clear(&t);
			sb_buf_reserve(&t, cap + 1);
			ssize_t r = readlinkat(we->dirfd, we->name, t.data, cap);
			if (r < 0) {
				*err = sb_err_sys(errno, "reading the symlink %s", we->relpath);
				sb_buf_deinit(&t);
				return SB_WALK_STOP;
			}
			if ((size_t)r < cap) {
				t.len = (size_t)r;
				t.data[t.len] = '\0';
				break;
			}
			cap *= 2;
		}
		e->target = sb_buf_steal(&t, NULL);
	} else if (we->type == SB_FT_FILE && w->hash_now) {
		int fd = openat(we->dirfd, we->name,
		                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			*err = sb_err_sys(errno, "opening %s to snapshot it", we->relpath);
			return SB_WALK_STOP;
		}
		*err = hash_fd(fd, we->relpath, e);
		close(fd);
		if (*err)
			return SB_WALK_STOP;
	}
	return SB_WALK_CONTINUE;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const sb_snap_entry *)a)->path, ((const sb_snap_entry *)b)->path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

sb_err *sb_snap_take(const char *root, const sb_excludes *ex, bool hash_now, sb_snap *out)
{
	return sb_snap_take_noting(root, ex, hash_now, out, NULL);
}

sb_err *sb_snap_take_noting(const char *root, const sb_excludes *ex, bool hash_now, sb_snap *out,
                            char ***left_out)
{
	sb_snap_init(out);
	if (left_out)
		*left_out = NULL;
	walk_ctx w = {.s = out, .ex = ex, .hash_now = hash_now, .left_out = left_out};
	sb_err *err = sb_fs_walk(root, on_entry, &w);
	if (!err && !hash_now) {
		out->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (out->rootfd < 0)
			err = sb_err_sys(errno, "opening %s", root);
	}
	if (err) {
		sb_snap_deinit(out);
		if (left_out) {
			sb_strv_free(*left_out);
			*left_out = NULL;
		}
		return sb_err_prefix(err, "snapshotting %s", root);
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof *out->v, cmp_entry);
	size_t n_left = left_out ? sb_strv_len(*left_out) : 0;
	if (n_left > 1)
		qsort(*left_out, n_left, sizeof **left_out, cmp_str);
	return NULL;
}

size_t sb_rt_path_lower_bound(const void *v, size_t n, size_t size, const char *key)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *path = *(const char *const *)((const char *)v + mid * size);
		if (strcmp(path, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

sb_snap_entry *sb_snap_find(const sb_snap *s, const char *path)
{
	size_t i = sb_snap_lower_bound(s, path);
	return i < s->n && strcmp(s->v[i].path, path) == 0 ? &s->v[i] : NULL;
}

_Static_assert(offsetof(sb_snap_entry, path) == 0, "sb_rt_path_lower_bound reads the path first");

size_t sb_snap_lower_bound(const sb_snap *s, const char *key)
{
	return sb_rt_path_lower_bound(s->v, s->n, sizeof *s->v, key);
}

size_t sb_snap_count_below(const sb_snap *s, const char *prefix)
{
	size_t len = strlen(prefix), i = sb_snap_lower_bound(s, prefix), n = 0;
	while (i + n < s->n && strncmp(s->v[i + n].path, prefix, len) == 0)
		n++;
	return n;
}

/* Open e's file below s's root (never through a symlink), to hash it. */
static sb_err *open_entry(const sb_snap *s, const sb_snap_entry *e, int *fd)
{
	if (s->rootfd < 0)
		return sb_err_new(
		    SB_E_INTERNAL,
		    "snapshot entry %s must be hashed, and the snapshot no longer has "
		    "its root",
		    e->path);
	sb_err *err = sb_fs_open_beneath(s->rootfd, e->path,
	                                 O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0, 0, fd);
	return err ? sb_err_prefix(err, "opening %s to hash it", e->path) : NULL;
}

static sb_err *ensure_hash(const sb_snap *s, sb_snap_entry *e)
{
	if (e->hashed)
		return NULL;
	int fd;
	sb_err *err = open_entry(s, e, &fd);
	if (err)
		return err;
	err = hash_fd(fd, e->path, e);
	close(fd);
	return err;
}

sb_err *sb_snap_entry_hash(const sb_snap *s, sb_snap_entry *e)
{
	return e->type == SB_FT_FILE ? ensure_hash(s, e) : NULL;
}

static sb_err *hash_every_other(sb_snap *s, size_t first)
{
	for (size_t i = first; i < s->n; i += 2) {
		if (s->v[i].type != SB_FT_FILE)
			continue;
		sb_err *err = ensure_hash(s, &s->v[i]);
		if (err)
			return err;
	}
	return NULL;
}

static void *hasher_main(void *arg)
{
	sb_snap_hasher *h = arg;
	h->err = hash_every_other(h->s, 1);
	return NULL;
}

void sb_snap_hash_start(sb_snap *s, sb_snap_hasher *h)
{
	h->s = s;
	h->err = NULL;
	h->started = pthread_create(&h->thread, NULL, hasher_main, h) == 0;
}

sb_err *sb_snap_hash_finish(sb_snap_hasher *h)
{
	sb_err *err = hash_every_other(h->s, 0);
	if (h->started) {
		pthread_join(h->thread, NULL);
		h->started = false;
	} else if (!err) {
		err = hash_every_other(h->s, 1); /* no helper thread: do its half too */
	}
	if (err) {
		sb_err_free(h->err);
		return err;
	}
	return h->err;
}

sb_err *sb_snap_hash_all(sb_snap *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].type != SB_FT_FILE)
			continue;
		sb_err *err = ensure_hash(s, &s->v[i]);
		if (err)
			return err;
	}
	sb_close(&s->rootfd);
	return NULL;
}

/* The content hash of the live file behind e (of snapshot s), to compare it with an entry of a
 * baseline saved as state version 2. */
static sb_err *live_content_hash(const sb_snap *s, const sb_snap_entry *e,
                                 unsigned char out[SB_SHA256_LEN])
{
	int fd;
	sb_err *err = open_entry(s, e, &fd);
	if (err)
		return err;
	uint64_t size;
	err = sb_rt_content_hash(fd, e->path, out, &size);
	close(fd);
	if (!err && size != e->size)
		err = sb_err_new(SB_E_CONFLICT, "%s changed while it was being compared", e->path);
	return err;
}

/* Two hashed files of the same size: equal digests, taking the content hash of the live side
 * when exactly one side holds a saved version-2 content hash. */
static sb_err *same_digest(const sb_snap *sa, const sb_snap_entry *a, const sb_snap *sb,
                           const sb_snap_entry *b, bool *eq)
{
	if (a->content_digest == b->content_digest) {
		*eq = memcmp(a->sha, b->sha, SB_SHA256_LEN) == 0;
		return NULL;
	}
	const sb_snap_entry *saved = a->content_digest ? a : b;
	unsigned char live[SB_SHA256_LEN];
	sb_err *err =
	    a->content_digest ? live_content_hash(sb, b, live) : live_content_hash(sa, a, live);
	*eq = !err && memcmp(saved->sha, live, SB_SHA256_LEN) == 0;
	return err;
}

sb_err *sb_snap_equal(const sb_snap *sa, sb_snap_entry *a, const sb_snap *sb, sb_snap_entry *b,
                      bool *eq)
{
	*eq = false;
	if (!a || !b) {
		*eq = !a && !b;
		return NULL;
	}
	if (a->type != b->type)
		return NULL;
	switch (a->type) {
	case SB_FT_DIR:
		*eq = true;
		return NULL;
	case SB_FT_SYMLINK:
		*eq = strcmp(a->target, b->target) == 0;
		return NULL;
	case SB_FT_FILE:
		break;
	default:
		return NULL;
	}
	/* Permission bits only: the transports keep those and nothing else (no setuid/sticky). */
	if ((a->mode & 0777) != (b->mode & 0777) || a->size != b->size)
		return NULL;
	sb_err *err = ensure_hash(sa, a);
	if (!err)
		err = ensure_hash(sb, b);
	if (err)
		return err;
	if (a->size != b->size)
		return NULL; /* one of them was rewritten while it was hashed */
	return same_digest(sa, a, sb, b, eq);
}
