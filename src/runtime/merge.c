/* The three-way restore merge (spec §3.3, improved per §8.2). For every path in the baseline or
 * the remote (source) snapshot: a remote change is applied when the local side still matches the
 * baseline; when both sides changed it differently it is a conflict, handled by the policy
 * (keep-local writes the remote version beside as <name>.sandbar-remote; take-remote applies it;
 * fail applies nothing). Every write goes to a temp name and is renamed into place, and every
 * target path is opened beneath the workspace root without following symlinks, so neither a
 * remote entry nor a local symlink can make the merge write outside the workspace. A new
 * directory whose every entry is an addition moves in one rename (merge_whole.c).
 */
#include "merge_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void add_item(merger *g, const char *path, sb_snap_entry *b, sb_snap_entry *s,
                     sb_snap_entry *c, action act, sb_conflict_kind kind)
{
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->v = sb_xrealloc(g->v, g->cap * sizeof *g->v);
	}
	g->v[g->n++] = (item){path, b, s, c, act, kind, false};
}

static void add_conflict(merger *g, const char *path, sb_conflict_kind kind, bool kept_remote,
                         const char *copy)
{
	sb_restore_report *r = g->rep;
	r->conflicts = sb_xrealloc(r->conflicts, (r->n_conflicts + 1) * sizeof *r->conflicts);
	r->conflicts[r->n_conflicts++] = (sb_runtime_conflict){
	    .path = sb_xstrdup(path),
	    .kind = kind,
	    .kept_remote = kept_remote,
	    .remote_copy = copy ? sb_xstrdup(copy) : NULL,
	};
}

/* Append to a NULL-terminated report list, growing geometrically (thousands of entries). */
static void note(char ***v, size_t *n, size_t *cap, const char *path)
{
	if (*n + 2 > *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*v = sb_xrealloc(*v, *cap * sizeof **v);
	}
	(*v)[(*n)++] = sb_xstrdup(path);
	(*v)[*n] = NULL;
}

void sb_rt_merge_made_dir(merger *g, const char *path)
{
	note(&g->dirs_made, &g->n_dirs_made, &g->cap_dirs_made, path);
}

/* Decide what to do with one path. */
static sb_err *plan_path(merger *g, const char *path, sb_snap_entry *b, sb_snap_entry *s)
{
	sb_snap *base = g->m->baseline;
	bool eq;
	sb_err *err = sb_snap_equal(base, b, &g->src, s, &eq);
	if (err || eq)
		return err; /* the remote did not change it: whatever is local stays */
	sb_snap_entry *c = sb_snap_find(&g->cur, path);
	err = sb_snap_equal(&g->src, s, &g->cur, c, &eq);
	if (err || eq)
		return err; /* both sides already agree */
	bool local_same;
	err = sb_snap_equal(base, b, &g->cur, c, &local_same);
	if (err)
		return err;
	/* Creating a directory never loses local bytes, and a directory's disappearance is
	 * settled by rmdir, which only succeeds when nothing is left in it. */
	if (s && s->type == SB_FT_DIR && !c)
		local_same = true;
	if (!s && b && b->type == SB_FT_DIR && c && c->type == SB_FT_DIR)
		local_same = true;
	if (local_same) {
		add_item(g, path, b, s, c, s ? ACT_APPLY : ACT_DELETE, SB_CONFLICT_BOTH_CHANGED);
		return NULL;
	}
	sb_conflict_kind kind = s && c ? SB_CONFLICT_BOTH_CHANGED
	                        : !s   ? SB_CONFLICT_REMOTE_DELETED
	                               : SB_CONFLICT_LOCAL_DELETED;
	add_item(g, path, b, s, c, ACT_CONFLICT, kind);
	return NULL;
}

static sb_err *plan(merger *g)
{
	sb_snap *base = g->m->baseline;
	size_t i = 0, j = 0;
	sb_err *err = NULL;
	while (!err && (i < base->n || j < g->src.n)) {
		int cmp = i >= base->n    ? 1
		          : j >= g->src.n ? -1
		                          : strcmp(base->v[i].path, g->src.v[j].path);
		if (cmp < 0) {
			err = plan_path(g, base->v[i].path, &base->v[i], NULL);
			i++;
		} else if (cmp > 0) {
			err = plan_path(g, g->src.v[j].path, NULL, &g->src.v[j]);
			j++;
		} else {
			err = plan_path(g, base->v[i].path, &base->v[i], &g->src.v[j]);
			i++;
			j++;
		}
	}
	return err;
}

static void drop_parent_cache(merger *g)
{
	sb_close(&g->pc_fd);
	free(g->pc_path);
	g->pc_path = NULL;
}

/* The parent directory of path (borrowed: valid until the next call or drop_parent_cache), and
 * *name set to the last segment. */
sb_err *sb_rt_merge_open_parent(merger *g, const char *path, int *pfd, const char **name)
{
	const char *slash = strrchr(path, '/');
	*name = slash ? slash + 1 : path;
	size_t plen = slash ? (size_t)(slash - path) : 0;
	if (g->pc_path && strlen(g->pc_path) == plen && memcmp(g->pc_path, path, plen) == 0) {
		*pfd = g->pc_fd;
		return NULL;
	}
	drop_parent_cache(g);
	char *parent = sb_xstrndup(path, plen);
	/* Any symlink on the way, even one that stays inside the workspace, blocks the path
	 * (sb_rt_merge_blocked). Snapshot paths come from readdir: no "." or ".." components. */
	sb_err *err = sb_fs_open_dir_nofollow(g->rootfd, parent, true, &g->pc_fd);
	if (err) {
		free(parent);
		return err;
	}
	g->pc_path = parent;
	*pfd = g->pc_fd;
	return NULL;
}

bool sb_rt_merge_blocked(const sb_err *err)
{
	return err->code == SB_E_ESCAPE || err->sys_errno == ENOTDIR || err->sys_errno == ELOOP ||
	       err->sys_errno == EXDEV;
}

/* Remove whatever is at name in pfd. Directories only when empty unless force. */
static sb_err *remove_at(int pfd, const char *name, const char *path, bool force, bool *busy)
{
	*busy = false;
	struct stat st;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? NULL : sb_err_sys(errno, "checking %s", path);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(pfd, name, 0) != 0 && errno != ENOENT)
			return sb_err_sys(errno, "removing %s", path);
		return NULL;
	}
	if (unlinkat(pfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return NULL;
	if (errno != ENOTEMPTY && errno != EEXIST)
		return sb_err_sys(errno, "removing the directory %s", path);
	if (!force) {
		*busy = true;
		return NULL;
	}
	char *proc = sb_strfmt("/proc/self/fd/%d/%s", pfd, name);
	sb_err *err = sb_fs_rm_rf(proc);
	free(proc);
	return err;
}

/* Write the source entry s as name in pfd (file: temp + rename by sb_fs_copy_file; symlink:
 * temp link + rename; dir: mkdir). */
static sb_err *write_entry(merger *g, int pfd, const char *name, const char *path,
                           const sb_snap_entry *s)
{
	if (s->type == SB_FT_DIR) {
		if (mkdirat(pfd, name, 0755) != 0 && errno != EEXIST)
			return sb_err_sys(errno, "creating the directory %s", path);
		return NULL;
	}
	if (s->type == SB_FT_SYMLINK) {
		/* Like a file, the staged link itself is renamed into place: a temp link made
		 * beside the target would outlive a restore killed between its two steps, and
		 * the next restore would take it for a local addition. */
		char *staged = sb_strfmt("%s/%s", g->m->source_dir, s->path);
		int moved = g->moved_ok ? renameat(AT_FDCWD, staged, pfd, name) : -1;
		int move_errno = errno;
		free(staged);
		if (moved == 0)
			return NULL;
		if (g->moved_ok && move_errno != EXDEV)
			return sb_err_sys(move_errno, "moving the symlink %s into place", path);
		char *tmp = sb_rt_temp_name(name, ".sandbar-link.");
		sb_err *err = NULL;
		if (symlinkat(s->target, pfd, tmp) != 0)
			err = sb_err_sys(errno, "creating the symlink %s", path);
		else if (renameat(pfd, tmp, pfd, name) != 0) {
			err = sb_err_sys(errno, "renaming the symlink %s into place", path);
			unlinkat(pfd, tmp, 0);
		}
		free(tmp);
		return err;
	}
	/* The source is a file our extraction created in the staging dir on the workspace's
	 * file system: renaming it into place is atomic and copies nothing. Its hash is taken
	 * first, because the remote tree becomes the next baseline. */
	sb_err *err = sb_snap_entry_hash(&g->src, (sb_snap_entry *)s);
	if (err)
		return err;
	char *src = sb_strfmt("%s/%s", g->m->source_dir, s->path);
	if (g->moved_ok && renameat(AT_FDCWD, src, pfd, name) == 0) {
		g->rep->bytes_written += s->size;
		free(src);
		return NULL;
	}
	if (g->moved_ok && errno != EXDEV) {
		err = sb_err_sys(errno, "moving %s into place", path);
		free(src);
		return err;
	}
	/* A mount point inside the workspace (EXDEV): copy, still temp + rename. The destination
	 * is named through the already-confined parent fd, so no component is resolved again. */
	char *dst = sb_strfmt("/proc/self/fd/%d/%s", pfd, name);
	err = sb_fs_copy_file(src, dst, s->mode & 0777);
	if (err)
		err = sb_err_prefix(err, "writing %s", path);
	else
		g->rep->bytes_written += s->size;
	free(src);
	free(dst);
	return err;
}

/* Place the remote entry at its path; *blocked when a local entry prevents it. */
static sb_err *apply_remote(merger *g, const item *it, bool force, bool *blocked)
{
	*blocked = false;
	int pfd = -1;
	const char *name;
	sb_err *err = sb_rt_merge_open_parent(g, it->path, &pfd, &name);
	if (err) {
		if (sb_rt_merge_blocked(err)) {
			sb_err_free(err);
			*blocked = true;
			return NULL;
		}
		return err;
	}
	if (it->s->type == SB_FT_DIR) {
		struct stat st;
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
		    unlinkat(pfd, name, 0) != 0)
			err =
			    sb_err_sys(errno, "removing %s to make room for a directory", it->path);
	} else {
		/* A file or link replaces a directory only when the directory is gone or empty
		 * (its unchanged children were deleted first). */
		bool busy;
		struct stat st;
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
			err = remove_at(pfd, name, it->path, force, &busy);
			if (!err && busy) {
				*blocked = true;
				return NULL;
			}
		}
	}
	if (!err)
		err = write_entry(g, pfd, name, it->path, it->s);
	return err;
}

/* keep-local: the remote file or link goes beside the local entry. */
static sb_err *write_beside(merger *g, const item *it, char **copy_out)
{
	*copy_out = NULL;
	if (it->s->type == SB_FT_DIR)
		return NULL; /* its children are placed (or reported) one by one */
	char *copy = sb_strfmt("%s%s", it->path, SB_RUNTIME_REMOTE_SUFFIX);
	item beside = *it;
	beside.path = copy;
	bool blocked;
	sb_err *err = apply_remote(g, &beside, false, &blocked);
	if (err || blocked)
		free(copy);
	else
		*copy_out = copy;
	return err;
}

static sb_err *fail_with_conflicts(merger *g)
{
	sb_buf m = SB_BUF_INIT;
	size_t n = 0;
	for (size_t i = 0; i < g->n; i++) {
		const item *it = &g->v[i];
		if (it->act != ACT_CONFLICT)
			continue;
		add_conflict(g, it->path, it->kind, false, NULL);
		if (n < 50)
			sb_buf_appendf(&m, "\n  %s (%s)", it->path,
			               sb_conflict_kind_name(it->kind));
		n++;
	}
	if (n > 50)
		sb_buf_appendf(&m, "\n  ... and %zu more", n - 50);
	sb_err *err = sb_err_new(SB_E_CONFLICT,
	                         "workspace restore into %s stopped: %zu path(s) changed both "
	                         "locally and in the sandbox, nothing was applied (policy fail); "
	                         "restore again with keep-local or take-remote:%s",
	                         g->m->target_dir, n, sb_buf_cstr(&m));
	sb_buf_deinit(&m);
	return err;
}

/* Remove the local entry. force: a conflict resolved for the remote (any kind, any content;
 * reported as a conflict, not in the deleted list). */
static sb_err *delete_local(merger *g, const item *it, bool force, bool dir_pass)
{
	int pfd = -1;
	const char *name;
	sb_err *err = sb_rt_merge_open_parent(g, it->path, &pfd, &name);
	if (err) {
		bool gone = sb_rt_merge_blocked(err) || err->sys_errno == ENOENT;
		if (gone)
			sb_err_free(err);
		return gone ? NULL : err;
	}
	bool busy = false;
	struct stat st;
	bool exists = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (exists && S_ISDIR(st.st_mode) != dir_pass && !force)
		return NULL;
	if (exists)
		err = remove_at(pfd, name, it->path, force, &busy);
	if (exists && S_ISDIR(st.st_mode))
		drop_parent_cache(g); /* it may have been the cached directory */
	if (!err && exists && !busy && !force && !S_ISDIR(st.st_mode))
		note(&g->rep->deleted, &g->rep->n_deleted, &g->cap_deleted, it->path);
	return err;
}

static sb_err *run_merge(merger *g)
{
	sb_conflict_policy pol = g->m->policy;
	bool any_conflict = false;
	for (size_t i = 0; i < g->n; i++)
		any_conflict |= g->v[i].act == ACT_CONFLICT;
	if (any_conflict && pol == SB_CONFLICT_FAIL)
		return fail_with_conflicts(g);

	sb_err *err = NULL;
	/* 1. deletions of files and links, then of directories, deepest first */
	for (int pass = 0; pass < 2 && !err; pass++) {
		for (size_t k = g->n; k-- > 0 && !err;) {
			item *it = &g->v[k];
			bool take =
			    it->act == ACT_CONFLICT && pol == SB_CONFLICT_TAKE_REMOTE && !it->s;
			if (it->act != ACT_DELETE && !take)
				continue;
			bool is_dir = it->b && it->b->type == SB_FT_DIR;
			if (take && pass == 0) {
				err = delete_local(g, it, true, false);
				if (!err)
					add_conflict(g, it->path, it->kind, true, NULL);
				continue;
			}
			if (take || is_dir != (pass == 1))
				continue;
			err = delete_local(g, it, false, is_dir);
		}
	}
	/* 2. creations and replacements, parents first */
	for (size_t k = 0; k < g->n && !err; k++) {
		item *it = &g->v[k];
		if (it->act == ACT_DELETE)
			continue;
		if (it->act == ACT_CONFLICT && !it->s && pol == SB_CONFLICT_TAKE_REMOTE)
			continue; /* settled by the deletion pass */
		bool blocked = false, moved = false;
		size_t lo, hi;
		if (!it->placed && sb_rt_merge_whole_dir_movable(g, k, &lo, &hi) &&
		    (err = sb_rt_merge_move_whole_dir(g, k, lo, hi, &moved)))
			break;
		if (moved || it->placed) {
			if (it->s->type != SB_FT_DIR)
				note(&g->rep->added, &g->rep->n_added, &g->cap_added, it->path);
			continue;
		}
		if (it->act == ACT_APPLY ||
		    (it->act == ACT_CONFLICT && pol == SB_CONFLICT_TAKE_REMOTE)) {
			err = apply_remote(g, it, it->act == ACT_CONFLICT, &blocked);
			if (err)
				break;
			if (!blocked && it->act == ACT_CONFLICT) {
				add_conflict(g, it->path, it->kind, true, NULL);
				continue;
			}
			if (!blocked) {
				if (it->s->type == SB_FT_DIR) {
					if (!it->c || it->c->type != SB_FT_DIR)
						sb_rt_merge_made_dir(g, it->path);
					continue; /* the report lists files and links */
				}
				if (it->c)
					note(&g->rep->changed, &g->rep->n_changed, &g->cap_changed,
					     it->path);
				else
					note(&g->rep->added, &g->rep->n_added, &g->cap_added,
					     it->path);
				continue;
			}
		}
		/* keep-local conflicts, and remote entries a local entry blocks */
		if (it->act == ACT_CONFLICT && !it->s) {
			add_conflict(g, it->path, it->kind, false, NULL);
			continue;
		}
		char *copy = NULL;
		err = write_beside(g, it, &copy);
		if (!err)
			add_conflict(g, it->path, blocked ? SB_CONFLICT_BLOCKED : it->kind, false,
			             copy);
		free(copy);
	}
	return err;
}

sb_err *sb_rt_merge_apply(const sb_rt_merge *m, sb_restore_report *rep, sb_snap *source_out)
{
	merger g;
	memset(&g, 0, sizeof g);
	g.m = m;
	g.rootfd = -1;
	g.pc_fd = -1;
	sb_restore_report_init(&g.scratch);
	g.rep = rep ? rep : &g.scratch;
	g.moved_ok = m->move_files;
	/* A report that already holds entries (a caller reusing it) has at least n + 1 slots. */
	g.cap_added = g.rep->n_added ? g.rep->n_added + 1 : 0;
	g.cap_changed = g.rep->n_changed ? g.rep->n_changed + 1 : 0;
	g.cap_deleted = g.rep->n_deleted ? g.rep->n_deleted + 1 : 0;
	sb_snap_init(&g.src);
	sb_snap_init(&g.cur);
	sb_err *err = NULL;
	if (m->source) {
		g.src = *m->source;
		sb_snap_init(m->source);
	} else {
		err = sb_snap_take_noting(m->source_dir, m->ex, false, &g.src, &g.left_out);
	}
	if (!err && m->known)
		sb_rt_known_apply(m->known, &g.src);
	g.dir_mode = sb_rt_created_dir_mode();
	if (!err) {
		/* Every source file is hashed anyway (it becomes the next baseline): do it on two
		 * threads, overlapping the walk of the local tree. */
		sb_snap_hasher h;
		sb_snap_hash_start(&g.src, &h);
		err = sb_snap_take(m->target_dir, m->ex, false, &g.cur);
		sb_err *herr = sb_snap_hash_finish(&h);
		if (err)
			sb_err_free(herr);
		else
			err = herr;
	}
	if (!err) {
		g.rootfd = open(m->target_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (g.rootfd < 0)
			err = sb_err_sys(errno, "opening the workspace %s", m->target_dir);
	}
	if (!err)
		err = plan(&g);
	if (!err)
		err = run_merge(&g);
	drop_parent_cache(&g);
	sb_close(&g.rootfd);
	free(g.v);
	sb_strv_free(g.left_out);
	if (m->dirs_made)
		*m->dirs_made = g.dirs_made;
	else
		sb_strv_free(g.dirs_made);
	if (!err && source_out) {
		*source_out = g.src;
		sb_snap_init(&g.src);
	}
	sb_snap_deinit(&g.src);
	sb_snap_deinit(&g.cur);
	sb_restore_report_deinit(&g.scratch);
	return err;
}
