/* The local runner's native file transfer: a directory on this host replaced by, or packed into,
 * a tar stream (sb_runner_ops.sync_in / sync_out). The archive work itself is base's
 * sb_tar_extract / sb_tar_create; this file adds the "replace the contents, keep what the caller
 * preserves" rule and the progress report.
 */
#include "runner_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sb_err *check_dir(const char *what, const char *remote_dir)
{
	if (remote_dir[0] != '/')
		return sb_err_new(SB_E_INVAL, "%s: remote directory \"%s\" must be absolute", what,
		                  remote_dir);
	return NULL;
}

/* Delete every top-level entry of dir except the preserved names. */
static sb_err *clear_dir(const char *dir, char *const *preserve)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return sb_err_sys(errno, "sync in: opening %s", dir);
	sb_err *err = sb_fs_clear_dir(dfd, dir, preserve);
	close(dfd);
	if (err)
		err = sb_err_prefix(err, "sync in: clearing %s", dir);
	return err;
}

sb_err *sb_local_sync_in(const char *remote_dir, char *const *preserve, int tar_fd,
                         sb_progress_fn progress, void *progress_ud)
{
	sb_err *err = check_dir("sync in", remote_dir);
	if (err)
		return err;
	if ((err = sb_fs_mkdir_p(remote_dir, 0755)))
		return sb_err_prefix(err, "sync in: creating %s", remote_dir);
	if ((err = clear_dir(remote_dir, preserve)))
		return err;
	uint64_t bytes = 0;
	if ((err = sb_tar_extract(tar_fd, remote_dir, &bytes)))
		return sb_err_prefix(err, "sync in: extracting into %s", remote_dir);
	/* sb_tar_extract reports no intermediate progress; the caller gets the final count. */
	if (progress)
		progress(progress_ud, bytes, bytes);
	return NULL;
}

sb_err *sb_local_sync_out(const char *remote_dir, const sb_excludes *ex, int tar_fd,
                          sb_progress_fn progress, void *progress_ud)
{
	sb_err *err = check_dir("sync out", remote_dir);
	if (err)
		return err;
	uint64_t bytes = 0;
	if ((err = sb_tar_create(remote_dir, ex, false, tar_fd, &bytes)))
		return sb_err_prefix(err, "sync out: archiving %s", remote_dir);
	if (progress)
		progress(progress_ud, bytes, bytes);
	return NULL;
}

/* ---- the incremental ops (SB_RUNNER_CAP_DELTA): the same tree, reached directly */

sb_err *sb_local_manifest(sb_runner *r, const char *remote_dir, const sb_excludes *ex,
                          const sb_manifest_opts *o, sb_manifest *out)
{
	(void)r;
	struct stat st;
	if (lstat(remote_dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return sb_err_new(SB_E_NOTFOUND, "no directory %s", remote_dir);
	return sb_manifest_take(remote_dir, ex, o, out);
}

sb_err *sb_local_sync_out_paths(sb_runner *r, const char *remote_dir, char *const *paths,
                                int tar_fd, sb_progress_fn progress, void *progress_ud)
{
	(void)r;
	uint64_t bytes = 0;
	sb_err *err = sb_tar_create_paths(remote_dir, paths, tar_fd, &bytes);
	if (err)
		return sb_err_prefix(err, "sync out: archiving entries of %s", remote_dir);
	if (progress)
		progress(progress_ud, bytes, bytes);
	return NULL;
}

sb_err *sb_local_sync_in_delta(sb_runner *r, const char *remote_dir, char *const *dels, int tar_fd,
                               sb_progress_fn progress, void *progress_ud)
{
	(void)r;
	sb_err *err = sb_fs_mkdir_p(remote_dir, 0755);
	uint64_t bytes = 0;
	if (!err)
		err = sb_tree_apply_delta(remote_dir, dels, tar_fd, NULL, &bytes, NULL);
	if (err)
		return sb_err_prefix(err, "sync in: applying a delta to %s", remote_dir);
	if (progress)
		progress(progress_ud, bytes, bytes);
	return NULL;
}

sb_err *sb_local_file_read(sb_runner *r, const char *path, size_t max, sb_buf *out)
{
	(void)r;
	bool found = false;
	sb_err *err = sb_read_file_if_any(path, max, out, &found);
	if (!err && !found)
		err = sb_err_new(SB_E_NOTFOUND, "no file %s", path);
	return err;
}

sb_err *sb_local_file_write(sb_runner *r, const char *path, const void *data, size_t len)
{
	(void)r;
	if (!data) {
		if (unlink(path) != 0 && errno != ENOENT)
			return sb_err_sys(errno, "removing %s", path);
		return NULL;
	}
	char *dir = sb_xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	sb_err *err = slash && slash != dir ? sb_fs_mkdir_p(dir, 0755) : NULL;
	free(dir);
	sb_atomic_file af;
	if (!err)
		err = sb_atomic_open(path, 0644, &af);
	if (err)
		return err;
	err = sb_write_all(af.fd, data, len);
	if (err) {
		sb_atomic_abort(&af);
		return err;
	}
	return sb_atomic_commit_nosync(&af);
}
