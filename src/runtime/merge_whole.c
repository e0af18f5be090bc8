/* The restore merge's fast case (see merge.c for the merge): a directory the local side never
 * had, whose every entry is a plain addition, moved into the workspace by one rename of its
 * staged copy instead of one mkdir or rename per entry. A restore that brings back a directory
 * the local side never had (node_modules after an install, a build tree, the whole workspace
 * into an empty one) is the common case of a large restore.
 */
#include "merge_int.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The mode mkdirat(…, 0755) gives: the umask is read, not set (umask(2) would change it for
 * every thread while it is read). */
mode_t sb_rt_created_dir_mode(void)
{
	sb_buf b = SB_BUF_INIT;
	mode_t mask = 022;
	sb_err *err = sb_read_file("/proc/self/status", 1u << 16, &b);
	const char *u = err ? NULL : strstr(sb_buf_cstr(&b), "\nUmask:");
	if (u)
		mask = (mode_t)strtoul(u + 8, NULL, 8) & 0777;
	sb_err_free(err);
	sb_buf_deinit(&b);
	return 0755 & ~mask;
}

_Static_assert(offsetof(item, path) == 0, "sb_rt_path_lower_bound reads the path first");

static bool below(const char *path, const char *prefix, size_t len)
{
	return strncmp(path, prefix, len) == 0;
}

/* The items below the directory item k, [*lo, *hi), when the whole directory may be moved in
 * one rename: the merge would create every entry below it and nothing else. That holds when
 * the local side and the baseline have nothing there (so nothing local is lost or kept), every
 * entry below it is a plain addition, and the staged copy holds nothing else there: the source
 * walk passed over nothing below it (an excluded or ignored entry must stay out of the
 * workspace). An incremental restore's staged copy holds only the fetched selection, never
 * more; what it lacks (empty directories) is created after the move. */
bool sb_rt_merge_whole_dir_movable(merger *g, size_t k, size_t *lo, size_t *hi)
{
	const item *it = &g->v[k];
	if (!g->moved_ok || g->src.rootfd < 0 || it->act != ACT_APPLY || it->s->type != SB_FT_DIR ||
	    it->b || it->c)
		return false;
	char *prefix = sb_strfmt("%s/", it->path);
	size_t len = strlen(prefix), n_left = sb_strv_len(g->left_out);
	size_t l = sb_rt_path_lower_bound(g->left_out, n_left, sizeof *g->left_out, prefix);
	bool ok = sb_snap_count_below(g->m->baseline, prefix) == 0 &&
	          sb_snap_count_below(&g->cur, prefix) == 0 &&
	          !(l < n_left && below(g->left_out[l], prefix, len));
	size_t a = k + 1 + sb_rt_path_lower_bound(g->v + k + 1, g->n - k - 1, sizeof *g->v, prefix);
	size_t e = a;
	for (; ok && e < g->n && below(g->v[e].path, prefix, len); e++)
		ok = g->v[e].act == ACT_APPLY && !g->v[e].b && !g->v[e].c && !g->v[e].placed;
	ok = ok && e - a == sb_snap_count_below(&g->src, prefix);
	free(prefix);
	*lo = a;
	*hi = e;
	return ok;
}

/* Give a moved directory the mode the entry-by-entry path would have created it with; one the
 * staged copy did not hold (an incremental fetch brings files, not empty directories) is
 * created. */
static sb_err *settle_dir(merger *g, const char *path)
{
	int fd;
	sb_err *err = sb_fs_open_dir_nofollow(g->rootfd, path, true, &fd);
	if (err)
		return err;
	if (fchmod(fd, g->dir_mode) != 0)
		err = sb_err_sys(errno, "setting the mode of %s", path);
	close(fd);
	return err;
}

/* Rename the source directory of item k into place when nothing is there (never replacing
 * anything: RENAME_NOREPLACE), and mark the items below it placed. *moved false: not possible
 * here (something is in the way, another file system): the caller goes entry by entry. */
sb_err *sb_rt_merge_move_whole_dir(merger *g, size_t k, size_t lo, size_t hi, bool *moved)
{
	*moved = false;
	item *it = &g->v[k];
	int pfd = -1, spfd = -1;
	const char *name;
	sb_err *err = sb_rt_merge_open_parent(g, it->path, &pfd, &name);
	if (err) {
		bool fallback = sb_rt_merge_blocked(err);
		if (fallback)
			sb_err_free(err);
		return fallback ? NULL : err;
	}
	struct stat st;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
		return NULL;
	char *parent = sb_xstrndup(it->path, (size_t)(name - it->path) - (name > it->path));
	err = sb_fs_open_dir_nofollow(g->src.rootfd, parent, false, &spfd);
	free(parent);
	if (err)
		return sb_err_prefix(err, "opening the staged copy of %s", it->path);
	int r = renameat2(spfd, name, pfd, name, RENAME_NOREPLACE);
	int rename_errno = errno;
	close(spfd);
	if (r != 0)
		return rename_errno == EEXIST || rename_errno == ENOENT || rename_errno == EXDEV ||
		               rename_errno == EINVAL || rename_errno == ENOSYS
		           ? NULL
		           : sb_err_sys(rename_errno, "moving the directory %s into place",
		                        it->path);
	*moved = true;
	sb_rt_merge_made_dir(g, it->path);
	err = settle_dir(g, it->path);
	for (size_t j = lo; j < hi; j++) {
		item *c = &g->v[j];
		c->placed = true;
		if (c->s->type == SB_FT_DIR)
			sb_rt_merge_made_dir(g, c->path);
		if (c->s->type == SB_FT_FILE)
			g->rep->bytes_written += c->s->size;
		if (!err && c->s->type == SB_FT_DIR)
			err = settle_dir(g, c->path);
	}
	return err;
}
