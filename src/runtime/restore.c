/* restore (spec §3.1, §8.3): take the restore lock, fetch the remote workspace (remote tar +
 * chunked download, or the native stream) into a staging dir inside the local workspace (so
 * files are renamed into place, not copied twice), three-way merge it, and move the baseline
 * forward to what the remote now holds. Failures always reach the caller; the last status is
 * always "finalize".
 */
#include "rt.h"

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESTORE_LOCK_TIMEOUT_MS 30000

#define STAGING_MARK "sandbar-staging"

/* Remove the staging dir with its marker last, so that a removal killed part way leaves
 * either the marker (ours: cleared next time) or an empty directory. */
static sb_err *clear_staging(const char *staging)
{
	char *tree = sb_strfmt("%s/tree", staging);
	sb_err *err = sb_fs_rm_rf(tree);
	free(tree);
	return err ? err : sb_fs_rm_rf(staging);
}

/* Create <workspace>/.sandbar-restore with its marker; a leftover of ours (marker present) is
 * cleared first, anything else by that name is the user's and is refused, never deleted. */
static sb_err *make_staging(const char *staging)
{
	char *mark = sb_strfmt("%s/%s", staging, STAGING_MARK);
	sb_err *err = NULL;
	struct stat st;
	if (lstat(staging, &st) == 0) {
		struct stat ms;
		/* A removal killed between the marker and the directory leaves it empty: an empty
		 * directory holds nothing of anyone's, and rmdir removes nothing else. */
		if (S_ISDIR(st.st_mode) && lstat(mark, &ms) != 0 && rmdir(staging) == 0)
			; /* gone: created afresh below */
		else if (!S_ISDIR(st.st_mode) || lstat(mark, &ms) != 0)
			err =
			    sb_err_new(SB_E_EXISTS,
			               "%s exists but was not made by sandbar; move it out of the "
			               "workspace and restore again",
			               staging);
		else
			err = clear_staging(staging); /* left by a crashed restore */
	} else if (errno != ENOENT) {
		err = sb_err_sys(errno, "checking %s", staging);
	}
	if (!err && mkdir(staging, 0700) != 0)
		err = sb_err_sys(errno, "creating the restore staging dir %s", staging);
	if (!err) {
		/* An empty marker: nothing to tear, nothing worth an fsync. */
		int fd = open(mark, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			err = sb_err_sys(errno, "creating %s", mark);
		else
			close(fd);
	}
	free(mark);
	return err;
}

static void remove_staging(const char *dir)
{
	sb_err *err = clear_staging(dir);
	if (err) {
		sb_warn("could not remove the restore staging dir %s: %s", dir, err->msg);
		sb_err_free(err);
	}
}

/* Running as root, what the restore created in a user's workspace takes the owner of its
 * parent directory (a replaced file had that of the file it replaced, which in a user's tree
 * is the same): root never leaves root-owned files behind in someone else's repository.
 *
 * Paths come sorted, so most share their directories with the one before: the directories
 * already fixed for it are not looked at again, and the last parent's owner is remembered. */
typedef struct owner_fixer {
	const char *root;
	char *done;   /* the directory part of the previous path, every component fixed */
	char *parent; /* the directory whose stat is cached in pst */
	struct stat pst;
} owner_fixer;

/* The owner of dir (absolute), from the cache when it is the last one asked for. */
static bool parent_stat(owner_fixer *f, const char *dir, struct stat *st)
{
	if (!f->parent || strcmp(f->parent, dir) != 0) {
		free(f->parent);
		f->parent = NULL;
		if (stat(dir, &f->pst) != 0)
			return false;
		f->parent = sb_xstrdup(dir);
	}
	*st = f->pst;
	return true;
}

/* Whether the first len bytes of rel are whole components of the already fixed directory. */
static bool already_fixed(const owner_fixer *f, const char *rel, size_t len)
{
	return f->done && strncmp(f->done, rel, len) == 0 &&
	       (f->done[len] == '\0' || f->done[len] == '/');
}

static void own_like_parent(owner_fixer *f, const char *rel)
{
	char *path = sb_strfmt("%s/%s", f->root, rel);
	size_t skip = strlen(f->root) + 1;
	/* Each component from the top, so that created directories are fixed too. */
	for (char *p = path + skip;; p++) {
		bool end = *p == '\0';
		if (*p != '/' && !end)
			continue;
		if (!end && already_fixed(f, path + skip, (size_t)(p - path - (ptrdiff_t)skip)))
			continue;
		char saved = *p;
		*p = '\0';
		struct stat st, pst;
		char *slash = strrchr(path, '/');
		*slash = '\0';
		bool have_parent = parent_stat(f, path, &pst);
		*slash = '/';
		/* A directory of root's: what root created there already has its owner. */
		if (have_parent && pst.st_uid != 0 && lstat(path, &st) == 0 && st.st_uid == 0 &&
		    lchown(path, pst.st_uid, pst.st_gid) != 0)
			sb_warn("could not give %s the owner of its directory: %s", path,
			        strerror(errno));
		*p = saved;
		if (end)
			break;
	}
	free(f->done);
	const char *last = strrchr(rel, '/');
	f->done = last ? sb_xstrndup(rel, (size_t)(last - rel)) : NULL;
	free(path);
}

void sb_rt_fix_owners(const char *root, char *const *paths);
void sb_rt_fix_owners(const char *root, char *const *paths)
{
	if (geteuid() != 0)
		return;
	owner_fixer f = {.root = root};
	for (size_t i = 0; paths && paths[i]; i++)
		own_like_parent(&f, paths[i]);
	free(f.done);
	free(f.parent);
}

/* Commits made remotely come back as a branch, fetched from the staged copy of the remote
 * .git (never copied over the local one). A failure here is a warning in the report: the
 * working-tree changes still merge, and the remote .git stays in the sandbox. */
static int chown_cb(const sb_walk_entry *e, void *ud, sb_err **err)
{
	(void)err;
	struct stat gst, st;
	if (stat((const char *)ud, &gst) == 0 && gst.st_uid != 0 &&
	    fstatat(e->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid == 0)
		(void)fchownat(e->dirfd, e->name, gst.st_uid, gst.st_gid, AT_SYMLINK_NOFOLLOW);
	return SB_WALK_CONTINUE;
}

static void import_commits(sb_runtime *rt, const sb_runtime_restore_opts *o, const char *tree,
                           sb_restore_report *rep)
{
	char remote_head[41];
	char *git = sb_strfmt("%s/.git", tree);
	struct stat st;
	bool staged = lstat(git, &st) == 0 && S_ISDIR(st.st_mode);
	free(git);
	if (!staged)
		return;
	sb_err *err = sb_git_head(tree, remote_head);
	if (!err && (!remote_head[0] || strcmp(remote_head, rt->git_base) == 0))
		return; /* no commit made remotely */
	char *branch = NULL;
	if (!err) {
		if (o->branch && *o->branch)
			branch = sb_xstrdup(o->branch);
		else if (rt->lease_id && *rt->lease_id && strcmp(rt->lease_id, "managed") != 0)
			branch = sb_strfmt("sandbar/%s", rt->lease_id);
		else
			branch = sb_strfmt("sandbar/run-%lld", (long long)(sb_wall_ms() / 1000));
		char local_head[41];
		err = sb_git_head(rt->local_dir, local_head);
		if (!err && !local_head[0] && !rt->git_base[0]) {
			char *lg = sb_strfmt("%s/.git", rt->local_dir);
			bool has = lstat(lg, &st) == 0;
			free(lg);
			if (!has)
				err = sb_err_new(
				    SB_E_NOTFOUND,
				    "commits were made in the sandbox, but %s holds no git "
				    "repository to bring them into",
				    rt->local_dir);
		}
	}
	size_t n = 0;
	if (!err)
		err =
		    sb_git_fetch_branch(rt->local_dir, tree, remote_head, branch, rt->git_base, &n);
	if (err) {
		free(rep->git_warning);
		rep->git_warning =
		    sb_strfmt("commits made in the sandbox were not brought back: %s", err->msg);
		sb_rt_say(&rt->ctx.progress, rep->git_warning);
		sb_err_free(err);
		free(branch);
		return;
	}
	free(rep->branch);
	rep->branch = branch;
	rep->n_commits = n;
	/* The fetch wrote objects and refs under .git as us. */
	if (geteuid() == 0) {
		char *g = sb_strfmt("%s/.git", rt->local_dir);
		sb_err_free(sb_fs_walk(g, chown_cb, g));
		free(g);
	}
}

/* The bytes the remote tree may unpack to (see sb_runtime_restore_opts.max_extracted_bytes):
 * a generous multiple of the workspace as staged, so that a build or an install still fits,
 * while an archive of hard links to one big file cannot fill the disk. */
static uint64_t extract_limit(const sb_snap *baseline, int64_t asked)
{
	if (asked != 0)
		return asked < 0 ? 0 : (uint64_t)asked;
	uint64_t staged = 0;
	for (size_t i = 0; i < baseline->n; i++)
		if (baseline->v[i].type == SB_FT_FILE)
			staged += baseline->v[i].size;
	uint64_t limit = staged > UINT64_MAX / SB_RESTORE_EXTRACT_FACTOR
	                     ? UINT64_MAX
	                     : staged * SB_RESTORE_EXTRACT_FACTOR;
	return limit < (uint64_t)SB_RESTORE_EXTRACT_FLOOR ? (uint64_t)SB_RESTORE_EXTRACT_FLOOR
	                                                  : limit;
}

static sb_err *fetch_and_merge(sb_runtime *rt, const sb_runtime_restore_opts *o, const sb_rt_ctx *c,
                               sb_restore_report *rep)
{
	char *staging = NULL, *tree = NULL, *download = NULL, *lock_root = NULL;
	sb_rt_lock lock = {NULL};
	sb_snap next;
	sb_snap_init(&next);
	sb_rt_known known; /* every file's hash, taken as it is extracted */
	sb_rt_known_init(&known);
	char **dirs_made = NULL;
	/* The lock covers the staging dir as well as the merge: both live in the workspace. */
	sb_err *err = sb_rt_lock_root(rt->lock_root, &lock_root);
	if (!err)
		err = sb_rt_lock_acquire(lock_root, rt->local_dir, RESTORE_LOCK_TIMEOUT_MS, &lock);
	if (err)
		goto out;
	staging = sb_strfmt("%s/%s", rt->local_dir, SB_RT_STAGING_DIR);
	err = make_staging(staging);
	if (err) {
		free(staging);
		staging = NULL; /* not ours to remove */
		goto out;
	}
	tree = sb_strfmt("%s/tree", staging);
	download = sb_strfmt("%s/workspace-download.tar", rt->root_dir);
	sb_rt_progress p;
	sb_rt_progress_init(&p, &c->progress, &c->status, SB_PHASE_RESTORE, "Restoring",
	                    "workspace", "from");
	sb_rt_fetch f = {
	    .remote_dir = rt->remote_dir,
	    .ex = &rt->archive_ex, /* the transfer set: .git comes too, for its commits */
	    .download_tar = download,
	    .max_bytes = o->max_bytes,
	    .max_extracted = extract_limit(&rt->baseline, o->max_extracted_bytes),
	    .local_dest = tree,
	    .native = rt->native,
	    .label = "workspace",
	    .known = &known,
	};
	uint64_t bytes = 0;
	bool full = true, checksum = o->checksum || sb_rt_sync_checksum();
	int64_t fetched_at = sb_wall_ms() / 1000, fetched_ns = sb_rt_ctime_clock_ns();
	sb_rt_delta d;
	memset(&d, 0, sizeof d);
	sb_snap_init(&d.src);
	sb_snap_init(&d.git_next);
	if (sb_rt_sync_incremental(rt) || checksum) {
		err = sb_fs_mkdir_p(tree, 0700);
		if (!err)
			err = sb_rt_delta_fetch(rt, c, &f, checksum, &p, &d, &full);
		if (!err && full)
			err = sb_fs_rm_rf(tree); /* a partial selection, or empty */
		if (err) {
			sb_rt_delta_deinit(&d);
			goto out;
		}
		rep->bytes_moved += d.bytes + d.manifest_bytes;
	}
	if (full) {
		sb_rt_progress_init(&p, &c->progress, &c->status, SB_PHASE_RESTORE, "Restoring",
		                    "workspace", "from");
		err = sb_rt_fetch_out(c, &f, &p, &bytes);
		if (err) {
			sb_rt_delta_deinit(&d);
			goto out;
		}
		rep->bytes_moved += bytes;
	}
	if (full || d.git_changed)
		import_commits(rt, o, tree, rep);
	sb_rt_merge m = {
	    .baseline = &rt->baseline,
	    .source_dir = tree,
	    .target_dir = rt->local_dir,
	    .ex = &rt->restore_ex,
	    .policy = o->policy,
	    .move_files = true,
	    .source = full ? NULL : &d.src,
	    .known = &known,
	    .dirs_made = &dirs_made,
	};
	err = sb_rt_merge_apply(&m, rep, &next);
	sb_rt_fix_owners(rt->local_dir, dirs_made); /* an empty one is in no file's path */
	sb_rt_fix_owners(rt->local_dir, rep->added);
	sb_rt_fix_owners(rt->local_dir, rep->changed);
	for (size_t i = 0; i < rep->n_conflicts; i++) {
		char *one[] = {rep->conflicts[i].remote_copy ? rep->conflicts[i].remote_copy
		                                             : rep->conflicts[i].path,
		               NULL};
		sb_rt_fix_owners(rt->local_dir, one);
	}
	/* The remote tree is now the common ancestor of both sides: the next restore compares
	 * against it, so changes applied now are not seen again as conflicts. */
	if (!err)
		err = sb_snap_hash_all(&next);
	if (!err) {
		sb_snap_deinit(&rt->baseline);
		rt->baseline = next;
		sb_snap_init(&next);
		/* What the far side held when it was listed (or archived) is the new baseline. */
		rt->base_sec = full ? fetched_at : d.listed_at;
		rt->far_known_ns = full ? fetched_ns : d.listed_ns;
		sb_snap_deinit(&rt->git_snap);
		rt->git_snap_ok = !full;
		if (!full) {
			rt->git_snap = d.git_next;
			sb_snap_init(&d.git_next);
		}
	}
	sb_rt_delta_deinit(&d);
out:
	if (staging)
		remove_staging(staging);
	sb_rt_lock_release(&lock);
	sb_snap_deinit(&next);
	sb_rt_known_deinit(&known);
	sb_strv_free(dirs_made);
	free(staging);
	free(tree);
	free(download);
	free(lock_root);
	return err;
}

sb_err *sb_runtime_restore(sb_runtime *rt, const sb_runtime_restore_opts *opts,
                           sb_restore_report *report)
{
	sb_runtime_restore_opts o = {0};
	if (opts)
		o = *opts;
	sb_rt_ctx c = rt->ctx;
	if (o.progress.fn)
		c.progress = o.progress;
	sb_restore_report scratch;
	sb_restore_report_init(&scratch);
	sb_rt_status(&c.status, SB_PHASE_RESTORE, "Restoring workspace from sandbox");
	sb_err *err = fetch_and_merge(rt, &o, &c, report ? report : &scratch);
	sb_restore_report_deinit(&scratch);
	sb_rt_status(&c.status, SB_PHASE_FINALIZE, "Finalizing sandbox workspace");
	if (err)
		return sb_err_prefix(err, "restoring the workspace %s from %s", rt->local_dir,
		                     rt->remote_dir);
	return NULL;
}
