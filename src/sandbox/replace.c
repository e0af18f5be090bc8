/* The one workspace replace (DESIGN.md §9.7), used by the sandbox runner's sync-in (`sandbar run`,
 * `sandbar push`) and by the daemon's workspace PUT (native and compat clients).
 *
 * Steps, each recorded in run/replace.journal before it starts:
 *   extract  the archive goes whole into <target>/.sandbar-replace-<id>/new;
 *   stash    every old entry but the kept ones moves into <staging>/old;
 *   install  every entry of <staging>/new moves into the target (merging into kept dirs);
 *   done     the staging directory is removed.
 * Recovery (next open or replace): extract → remove staging; stash → move <staging>/old back;
 * install → finish the moves; done → remove staging. All moves are renames inside one directory
 * tree, so each is atomic; the target directory itself is never renamed. File work runs as the
 * lease owner; the journal lives in run/, which sandboxed code cannot reach. */
#include "sandbox_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STAGING_PREFIX ".sandbar-replace-"
#define JOURNAL_NAME "replace.journal"
#define LOCK_NAME "replace.lock"
#define JOURNAL_MAGIC "sandbar-replace-1"
#define JOURNAL_MAX 8192
/* Test hook: the process exits (status 86) after this many moves, to prove recovery. */
#define CRASH_ENV "SANDBAR_TEST_REPLACE_EXIT_AFTER_MOVES"

typedef enum phase { PH_EXTRACT, PH_STASH, PH_INSTALL, PH_DONE } phase;
static const char *const phase_names[] = {"extract", "stash", "install", "done"};

typedef struct job {
	const sb_sandbox *sb;
	const char *rel;
	const char *staging;
	char *const *keep;
	sb_replace_special special;
	int tar_fd;
	uint64_t bytes, specials;
	unsigned moves;
} job;

sb_err *sb_ws_open_dir(const sb_sandbox *sb, const char *rel, bool create, int *out)
{
	/* workspace_fd is an O_PATH handle: open the directory itself for reading first. */
	int root = openat(sb->workspace_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return sb_err_sys(errno, "opening the workspace %s", sb->workspace);
	sb_err *err = sb_fs_open_dir_nofollow(root, rel ? rel : "", create, out);
	close(root);
	if (!err)
		return NULL;
	/* Say what it means for a lease: a link or file on the way is an escape attempt. */
	int e = err->sys_errno;
	sb_err *mapped =
	    e == ELOOP || e == ENOTDIR
	        ? sb_err_new(SB_E_ESCAPE, "%s/%s: a component is a symlink or not a directory",
	                     sb->workspace_mount, rel)
	    : e == ENOENT ? sb_err_new(SB_E_NOTFOUND, "no directory %s/%s in lease %s",
	                               sb->workspace_mount, rel, sb->id)
	                  : sb_err_prefix(err, "lease %s", sb->id);
	if (mapped != err)
		sb_err_free(err);
	return mapped;
}

static const char *what_of(const job *j)
{
	return j->rel && j->rel[0] ? j->rel : "the workspace";
}

static void moved(job *j)
{
	j->moves++;
	const char *v = getenv(CRASH_ENV);
	if (v && *v && j->moves >= (unsigned)strtoul(v, NULL, 10))
		_exit(86);
}

/* Names in the directory dfd (an fd we may read), without "." and "..". */
static sb_err *list_names(int dfd, const char *what, char ***out)
{
	*out = NULL;
	int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (!d) {
		if (lfd >= 0)
			close(lfd);
		return sb_err_sys(errno, "listing %s", what);
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			sb_strv_push(out, de->d_name);
	sb_err *err = errno ? sb_err_sys(errno, "listing %s", what) : NULL;
	closedir(d);
	if (err) {
		sb_strv_free(*out);
		*out = NULL;
	}
	return err;
}

static bool in_list(char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* Open (creating it when mk) <staging>/<sub> below dfd. */
static sb_err *open_sub(int dfd, const char *staging, const char *sub, bool mk, int *out)
{
	int sfd = -1;
	sb_err *err = sb_fs_open_beneath(dfd, staging, O_RDONLY | O_DIRECTORY, 0, 0, &sfd);
	if (err)
		return err;
	if (mk && mkdirat(sfd, sub, 0700) < 0 && errno != EEXIST)
		err = sb_err_sys(errno, "creating %s/%s", staging, sub);
	if (!err)
		err = sb_fs_open_beneath(sfd, sub, O_RDONLY | O_DIRECTORY, 0, 0, out);
	close(sfd);
	return err;
}

static sb_err *do_extract(void *ud)
{
	job *j = ud;
	int dfd = -1, nfd = -1;
	sb_err *err = sb_ws_open_dir(j->sb, j->rel, true, &dfd);
	if (err)
		return err;
	if (mkdirat(dfd, j->staging, 0700) < 0)
		err = sb_err_sys(errno, "creating the staging directory %s in %s", j->staging,
		                 what_of(j));
	if (!err)
		err = open_sub(dfd, j->staging, "new", true, &nfd);
	if (!err) {
		char *p = sb_strfmt("/proc/self/fd/%d", nfd);
		sb_tar_extract_opts xo = {.special = j->special == SB_REPLACE_SPECIAL_REFUSE
		                                         ? SB_TAR_SPECIAL_REFUSE
		                                         : SB_TAR_SPECIAL_SKIP};
		err = sb_tar_extract_ex(j->tar_fd, p, &xo, &j->bytes, &j->specials);
		free(p);
		/* p names a descriptor; say where that is on the host (a full disk, say) */
		if (err)
			err = sb_err_prefix(err, "in %s%s%s/%s/new", j->sb->workspace,
			                    j->rel && j->rel[0] ? "/" : "", j->rel ? j->rel : "",
			                    j->staging);
	}
	if (nfd >= 0)
		close(nfd);
	close(dfd);
	return err;
}

/* The target directory and one directory of its staging area ("old" or "new"). */
static sb_err *open_pair(job *j, const char *sub, bool create, int *dfd, int *sfd)
{
	*dfd = *sfd = -1;
	sb_err *err = sb_ws_open_dir(j->sb, j->rel, false, dfd);
	if (!err)
		err = open_sub(*dfd, j->staging, sub, create, sfd);
	return err;
}

static void close_pair(int dfd, int sfd)
{
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
}

/* Old entries (all but kept ones and the staging directory) into <staging>/old. */
static sb_err *do_stash(void *ud)
{
	job *j = ud;
	int dfd, ofd;
	char **names = NULL;
	sb_err *err = open_pair(j, "old", true, &dfd, &ofd);
	if (!err)
		err = list_names(dfd, what_of(j), &names);
	for (size_t i = 0; !err && names && names[i]; i++) {
		const char *n = names[i];
		if (strcmp(n, j->staging) == 0 || in_list(j->keep, n))
			continue;
		if (renameat(dfd, n, ofd, n) < 0)
			err = sb_err_sys(errno, "moving the old %s of %s aside", n, what_of(j));
		else
			moved(j);
	}
	sb_strv_free(names);
	close_pair(dfd, ofd);
	return err;
}

/* Roll back: every stashed entry returns (nothing new was moved in yet). */
static sb_err *do_unstash(void *ud)
{
	job *j = ud;
	int dfd, ofd;
	char **names = NULL;
	sb_err *err = open_pair(j, "old", false, &dfd, &ofd);
	if (err && err->sys_errno == ENOENT) {
		sb_err_free(err); /* the crash came before anything was stashed */
		close_pair(dfd, ofd);
		return NULL;
	}
	if (!err)
		err = list_names(ofd, what_of(j), &names);
	for (size_t i = 0; !err && names && names[i]; i++)
		if (renameat(ofd, names[i], dfd, names[i]) < 0)
			err =
			    sb_err_sys(errno, "moving the old %s of %s back", names[i], what_of(j));
	sb_strv_free(names);
	close_pair(dfd, ofd);
	return err;
}

/* Move every entry of sfd into dfd under the same name. Only kept entries (or ones an
 * interrupted run moved already) can exist there: a directory on both sides is merged, anything
 * else is replaced. Every directory is opened without following symlinks. Resumable: what was
 * moved is no longer in sfd. */
static sb_err *move_entries(job *j, int sfd, int dfd)
{
	char **names = NULL;
	sb_err *err = list_names(sfd, "the extracted archive", &names);
	for (size_t i = 0; !err && names && names[i]; i++) {
		const char *n = names[i];
		if (renameat(sfd, n, dfd, n) == 0) {
			moved(j);
			continue;
		}
		int e = errno;
		struct stat ss, ds;
		if (fstatat(sfd, n, &ss, AT_SYMLINK_NOFOLLOW) < 0 ||
		    fstatat(dfd, n, &ds, AT_SYMLINK_NOFOLLOW) < 0) {
			err = sb_err_sys(e, "moving %s into %s", n, what_of(j));
			break;
		}
		if (S_ISDIR(ss.st_mode) && S_ISDIR(ds.st_mode)) {
			int a = -1, b = -1;
			err = sb_fs_open_beneath(sfd, n, O_RDONLY | O_DIRECTORY, 0, 0, &a);
			if (!err)
				err = sb_fs_open_beneath(dfd, n, O_RDONLY | O_DIRECTORY, 0, 0, &b);
			if (!err)
				err = move_entries(j, a, b);
			if (a >= 0)
				close(a);
			if (b >= 0)
				close(b);
			continue;
		}
		char *p = sb_strfmt("/proc/self/fd/%d/%s", dfd, n);
		err = sb_fs_rm_rf(p);
		free(p);
		if (!err && renameat(sfd, n, dfd, n) < 0)
			err = sb_err_sys(errno, "moving %s into %s", n, what_of(j));
		if (!err)
			moved(j);
	}
	sb_strv_free(names);
	return err;
}

static sb_err *do_install(void *ud)
{
	job *j = ud;
	int dfd, nfd;
	sb_err *err = open_pair(j, "new", false, &dfd, &nfd);
	if (!err)
		err = move_entries(j, nfd, dfd);
	close_pair(dfd, nfd);
	return err;
}

static sb_err *do_remove_staging(void *ud)
{
	job *j = ud;
	int dfd = -1;
	sb_err *err = sb_ws_open_dir(j->sb, j->rel, false, &dfd);
	if (err && (err->code == SB_E_NOTFOUND || err->code == SB_E_ESCAPE)) {
		/* The target went away, or sandboxed code put a link in its place: the staging
		 * directory went with the old directory, out of our reach (never followed). */
		sb_err_free(err);
		return NULL;
	}
	if (err)
		return err;
	char *p = sb_strfmt("/proc/self/fd/%d/%s", dfd, j->staging);
	err = sb_fs_rm_rf(p);
	free(p);
	close(dfd);
	return err;
}

/* ---- journal */

static char *journal_path(const sb_sandbox *sb)
{
	return sb_strfmt("%s/%s", sb->run_dir, JOURNAL_NAME);
}

static sb_err *journal_write(const sb_sandbox *sb, phase ph, const job *j)
{
	sb_buf b = SB_BUF_INIT;
	const char *fields[] = {JOURNAL_MAGIC, phase_names[ph], j->rel ? j->rel : "", j->staging};
	for (size_t i = 0; i < 4; i++) {
		sb_buf_appends(&b, fields[i]);
		sb_buf_appendc(&b, '\0');
	}
	char *p = journal_path(sb);
	sb_err *err = sb_fs_write_atomic(p, b.data, b.len, 0600);
	if (err)
		err =
		    sb_err_prefix(err, "writing the workspace replace journal of lease %s", sb->id);
	free(p);
	sb_buf_deinit(&b);
	return err;
}

static void journal_remove(const sb_sandbox *sb)
{
	char *p = journal_path(sb);
	if (unlink(p) < 0 && errno != ENOENT)
		sb_warn("lease %s: could not remove the workspace replace journal %s: %s", sb->id,
		        p, strerror(errno));
	free(p);
}

/* Take the lease's replace lock (blocking, or not with try); 0 = busy elsewhere. */
static sb_err *lock_take(const sb_sandbox *sb, bool try, int *fd_out)
{
	*fd_out = -1;
	int fd = openat(sb->run_fd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return sb_err_sys(errno, "opening the workspace replace lock of lease %s", sb->id);
	int rc;
	do
		rc = flock(fd, LOCK_EX | (try ? LOCK_NB : 0));
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		int e = errno;
		close(fd);
		if (try && e == EWOULDBLOCK)
			return NULL;
		return sb_err_sys(e, "locking the workspace replace of lease %s", sb->id);
	}
	*fd_out = fd;
	return NULL;
}

static sb_err *journal_parse(const sb_sandbox *sb, const sb_buf *b, phase *ph, char **rel,
                             char **staging)
{
	const char *f[4] = {0};
	size_t n = 0, at = 0;
	while (n < 4 && at < b->len) {
		const char *s = b->data + at;
		size_t len = strnlen(s, b->len - at);
		if (at + len >= b->len)
			break; /* unterminated */
		f[n++] = s;
		at += len + 1;
	}
	if (n != 4 || strcmp(f[0], JOURNAL_MAGIC) != 0)
		return sb_err_new(
		    SB_E_INVAL,
		    "lease %s: the workspace replace journal in %s is not one sandbar "
		    "wrote; remove it after checking the workspace",
		    sb->id, sb->run_dir);
	int p = -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(f[1], phase_names[i]) == 0)
			p = i;
	sb_err *rerr = f[2][0] ? sb_path_check_relative(f[2]) : NULL;
	bool rel_ok = !rerr;
	sb_err_free(rerr);
	if (p < 0 || !rel_ok || strncmp(f[3], STAGING_PREFIX, strlen(STAGING_PREFIX)) != 0 ||
	    strchr(f[3], '/'))
		return sb_err_new(
		    SB_E_INVAL,
		    "lease %s: the workspace replace journal in %s is damaged; remove "
		    "it after checking the workspace",
		    sb->id, sb->run_dir);
	*ph = (phase)p;
	*rel = sb_xstrdup(f[2]);
	*staging = sb_xstrdup(f[3]);
	return NULL;
}

/* With the lock held: act on a journal left by an interrupted replace. */
static sb_err *recover_locked(const sb_sandbox *sb)
{
	char *path = journal_path(sb);
	sb_buf b = SB_BUF_INIT;
	bool found;
	sb_err *err = sb_read_file_if_any(path, JOURNAL_MAX, &b, &found);
	free(path);
	if (!err && !found)
		return NULL;
	phase ph = PH_EXTRACT;
	char *rel = NULL, *staging = NULL;
	if (!err)
		err = journal_parse(sb, &b, &ph, &rel, &staging);
	sb_buf_deinit(&b);
	if (err)
		return err;
	job j = {.sb = sb, .rel = rel, .staging = staging, .tar_fd = -1};
	if (ph == PH_STASH) {
		sb_warn("lease %s: rolling back a workspace replace of %s that was interrupted",
		        sb->id, what_of(&j));
		err = sb_sandbox_as_owner(sb, do_unstash, &j);
	} else if (ph == PH_INSTALL) {
		sb_warn("lease %s: finishing a workspace replace of %s that was interrupted",
		        sb->id, what_of(&j));
		err = sb_sandbox_as_owner(sb, do_install, &j);
	}
	if (err && err->code == SB_E_ESCAPE) {
		/* Sandboxed code replaced the target with a link: never follow it. What was
		 * staged moved with the directory; the journal must not block every later replace.
		 */
		sb_warn("lease %s: abandoning the interrupted replace of %s: %s", sb->id,
		        what_of(&j), err->msg);
		sb_err_free(err);
		err = NULL;
	}
	if (!err)
		err = sb_sandbox_as_owner(sb, do_remove_staging, &j);
	if (!err)
		journal_remove(sb);
	else
		err = sb_err_prefix(err, "lease %s: recovering an interrupted workspace replace",
		                    sb->id);
	free(rel);
	free(staging);
	return err;
}

sb_err *sb_replace_recover(const sb_sandbox *sb, bool try_lock)
{
	if (faccessat(sb->run_fd, JOURNAL_NAME, F_OK, AT_EACCESS) != 0 && errno == ENOENT)
		return NULL; /* the common case: no lock taken */
	int lfd = -1;
	sb_err *err = lock_take(sb, try_lock, &lfd);
	if (err || lfd < 0)
		return err;
	err = recover_locked(sb);
	close(lfd);
	return err;
}

sb_err *sb_sandbox_workspace_replace(sb_sandbox *sb, int tar_fd, const sb_sandbox_replace_opts *o,
                                     sb_sandbox_replace_result *res)
{
	static const sb_sandbox_replace_opts none = {0};
	if (!o)
		o = &none;
	if (res)
		*res = (sb_sandbox_replace_result){0};
	for (size_t i = 0; o->keep && o->keep[i]; i++)
		if (!o->keep[i][0] || strchr(o->keep[i], '/'))
			return sb_err_new(SB_E_INVAL,
			                  "workspace replace in lease %s: kept name \"%s\" must be "
			                  "one top-level name",
			                  sb->id, o->keep[i]);
	int lfd = -1;
	sb_err *err = lock_take(sb, false, &lfd);
	if (err)
		return err;
	if ((err = recover_locked(sb))) {
		close(lfd);
		return err;
	}
	char *staging = sb_random_id(STAGING_PREFIX);
	job j = {.sb = sb,
	         .rel = o->rel ? o->rel : "",
	         .staging = staging,
	         .keep = o->keep,
	         .special = o->special};
	/* extract: a failure leaves only the staging directory, which goes again */
	if ((err = journal_write(sb, PH_EXTRACT, &j)))
		goto out;
	err = sb_owner_transfer(sb, do_extract, &j, &j.tar_fd, tar_fd, true, o->progress,
	                        o->progress_ud);
	if (!err)
		err = journal_write(sb, PH_STASH, &j);
	if (err) {
		sb_err *cerr = sb_sandbox_as_owner(sb, do_remove_staging, &j);
		if (cerr) {
			sb_warn("lease %s: could not remove the staging directory %s in %s: %s",
			        sb->id, staging, what_of(&j), cerr->msg);
			sb_err_free(cerr); /* the journal stays: the next replace removes it */
		} else {
			journal_remove(sb);
		}
		goto out;
	}
	/* stash: a failure moves everything back */
	if ((err = sb_sandbox_as_owner(sb, do_stash, &j)) ||
	    (err = journal_write(sb, PH_INSTALL, &j))) {
		sb_err *rerr = sb_sandbox_as_owner(sb, do_unstash, &j);
		if (!rerr)
			rerr = sb_sandbox_as_owner(sb, do_remove_staging, &j);
		if (!rerr)
			journal_remove(sb);
		else if (journal_write(sb, PH_STASH, &j) == NULL)
			sb_warn("lease %s: rolling back the replace of %s failed (%s); the next "
			        "open or replace of the lease retries",
			        sb->id, what_of(&j), rerr->msg);
		sb_err_free(rerr);
		goto out;
	}
	/* install: from here on the new tree wins; an error leaves the journal to finish it */
	if ((err = sb_sandbox_as_owner(sb, do_install, &j))) {
		err = sb_err_prefix(err, "moving the new entries in (the next open or replace of "
		                         "the lease finishes it)");
		goto out;
	}
	if ((err = journal_write(sb, PH_DONE, &j)))
		goto out;
	if ((err = sb_sandbox_as_owner(sb, do_remove_staging, &j)))
		goto out;
	journal_remove(sb);
	if (res) {
		res->bytes = j.bytes;
		res->specials_skipped = j.specials;
	}
out:
	free(staging);
	close(lfd);
	return err ? sb_err_prefix(err, "replacing %s of lease %s", what_of(&j), sb->id) : NULL;
}
