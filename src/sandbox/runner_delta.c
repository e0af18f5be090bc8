/* The sandbox runner's incremental transfer (SB_RUNNER_CAP_DELTA, #15): the far tree is the
 * lease's host-side workspace, so its manifest is a walk on this side (no command inside the
 * sandbox), the selection is one tar made here, and a delta is applied here. Everything runs as
 * the lease owner, below the workspace, never following a symlink on the way (sb_ws_open_dir),
 * so sandboxed code that races us can make a transfer fail, never reach outside. */
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct ws_job {
	const sb_sandbox *sb;
	const char *rel; /* the directory, relative to the workspace */
	bool create;
	/* manifest */
	const sb_excludes *ex;
	const sb_manifest_opts *mo;
	sb_manifest *man;
	/* sync_out_paths, sync_in_delta */
	char *const *paths;
	int tar_fd;
	uint64_t specials;
	/* file_read, file_write */
	const char *name;
	size_t max;
	sb_buf *out;
	const void *data;
	size_t len;
} ws_job;

/* Run fn on the open directory j->rel as the owner, with its "/proc/self/fd" path. */
static sb_err *with_dir(ws_job *j, sb_err *(*fn)(ws_job *j, int dfd, const char *path))
{
	int dfd = -1;
	sb_err *err = sb_ws_open_dir(j->sb, j->rel, j->create, &dfd);
	if (err)
		return err;
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", dfd);
	err = fn(j, dfd, path);
	close(dfd);
	return err;
}

static sb_err *take_manifest(ws_job *j, int dfd, const char *path)
{
	(void)dfd;
	return sb_manifest_take(path, j->ex, j->mo, j->man);
}

static sb_err *as_owner_manifest(void *ud)
{
	return with_dir(ud, take_manifest);
}

static sb_err *send_paths(ws_job *j, int dfd, const char *path)
{
	(void)dfd;
	return sb_tar_create_paths(path, j->paths, j->tar_fd, NULL);
}

static sb_err *as_owner_send(void *ud)
{
	return with_dir(ud, send_paths);
}

static sb_err *apply_delta(ws_job *j, int dfd, const char *path)
{
	(void)dfd;
	sb_tar_extract_opts xo = {.special = SB_TAR_SPECIAL_SKIP};
	return sb_tree_apply_delta(path, j->paths, j->tar_fd, &xo, NULL, &j->specials);
}

static sb_err *as_owner_apply(void *ud)
{
	return with_dir(ud, apply_delta);
}

static sb_err *read_small(ws_job *j, int dfd, const char *path)
{
	(void)path;
	int fd = openat(dfd, j->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? sb_err_new(SB_E_NOTFOUND, "no file %s", j->name)
		                       : sb_err_sys(errno, "opening %s", j->name);
	struct stat st;
	sb_err *err = fstat(fd, &st) != 0    ? sb_err_sys(errno, "reading %s", j->name)
	              : !S_ISREG(st.st_mode) ? sb_err_new(SB_E_INVAL, "%s is not a file", j->name)
	                                     : sb_read_fd_all(fd, j->max, j->out);
	close(fd);
	return err;
}

static sb_err *as_owner_read(void *ud)
{
	return with_dir(ud, read_small);
}

static sb_err *write_small(ws_job *j, int dfd, const char *path)
{
	(void)path;
	if (!j->data) {
		if (unlinkat(dfd, j->name, 0) != 0 && errno != ENOENT)
			return sb_err_sys(errno, "removing %s", j->name);
		return NULL;
	}
	char tmp[300];
	snprintf(tmp, sizeof tmp, ".%.200s.sandbar-tmp-%d", j->name, (int)gettid());
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return sb_err_sys(errno, "writing %s", j->name);
	sb_err *err = sb_write_all(fd, j->data, j->len);
	if (close(fd) != 0 && !err)
		err = sb_err_sys(errno, "writing %s", j->name);
	if (!err && renameat(dfd, tmp, dfd, j->name) != 0)
		err = sb_err_sys(errno, "writing %s", j->name);
	if (err)
		unlinkat(dfd, tmp, 0);
	return err;
}

static sb_err *as_owner_write(void *ud)
{
	return with_dir(ud, write_small);
}

sb_err *sb_ws_manifest(const sb_sandbox *sb, const char *remote_dir, const sb_excludes *ex,
                       const sb_manifest_opts *o, sb_manifest *out)
{
	char *rel = NULL;
	sb_err *err = sb_sandbox_map_path(sb, remote_dir, &rel);
	ws_job j = {.sb = sb, .rel = rel, .ex = ex, .mo = o, .man = out};
	if (!err)
		err = sb_sandbox_as_owner(sb, as_owner_manifest, &j);
	free(rel);
	return err;
}

sb_err *sb_ws_sync_out_paths(const sb_sandbox *sb, const char *remote_dir, char *const *paths,
                             int tar_fd, sb_progress_fn progress, void *progress_ud)
{
	char *rel = NULL;
	sb_err *err = sb_sandbox_map_path(sb, remote_dir, &rel);
	ws_job j = {.sb = sb, .rel = rel, .paths = paths};
	if (!err)
		err = sb_owner_transfer(sb, as_owner_send, &j, &j.tar_fd, tar_fd, false, progress,
		                        progress_ud);
	free(rel);
	return err ? sb_err_prefix(err, "sync out of %s of lease %s", remote_dir, sb->id) : NULL;
}

sb_err *sb_ws_sync_in_delta(const sb_sandbox *sb, const char *remote_dir, char *const *dels,
                            int tar_fd, sb_progress_fn progress, void *progress_ud)
{
	char *rel = NULL;
	sb_err *err = sb_sandbox_map_path(sb, remote_dir, &rel);
	ws_job j = {.sb = sb, .rel = rel, .create = true, .paths = dels, .tar_fd = -1};
	if (!err && tar_fd >= 0)
		err = sb_owner_transfer(sb, as_owner_apply, &j, &j.tar_fd, tar_fd, true, progress,
		                        progress_ud);
	else if (!err)
		err = sb_sandbox_as_owner(sb, as_owner_apply, &j);
	free(rel);
	if (!err && j.specials)
		sb_info("sync into %s of lease %s: skipped %llu device, FIFO or socket member(s)",
		        remote_dir, sb->id, (unsigned long long)j.specials);
	return err ? sb_err_prefix(err, "sync into %s of lease %s", remote_dir, sb->id) : NULL;
}

/* The directory and the name of a file's remote path. */
static sb_err *split_file(const sb_sandbox *sb, const char *path, char **rel, const char **name)
{
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1])
		return sb_err_new(SB_E_INVAL, "%s names no file", path);
	char *dir = slash == path ? sb_xstrdup("/") : sb_xstrndup(path, (size_t)(slash - path));
	sb_err *err = sb_sandbox_map_path(sb, dir, rel);
	free(dir);
	*name = slash + 1;
	if (!err && (strcmp(*name, ".") == 0 || strcmp(*name, "..") == 0))
		err = sb_err_new(SB_E_ESCAPE, "%s names no file", path);
	return err;
}

sb_err *sb_ws_file_read(const sb_sandbox *sb, const char *path, size_t max, sb_buf *out)
{
	char *rel = NULL;
	ws_job j = {.sb = sb, .max = max, .out = out};
	sb_err *err = split_file(sb, path, &rel, &j.name);
	j.rel = rel;
	if (!err)
		err = sb_sandbox_as_owner(sb, as_owner_read, &j);
	free(rel);
	return err;
}

sb_err *sb_ws_file_write(const sb_sandbox *sb, const char *path, const void *data, size_t len)
{
	char *rel = NULL;
	ws_job j = {.sb = sb, .create = data != NULL, .data = data, .len = len};
	sb_err *err = split_file(sb, path, &rel, &j.name);
	j.rel = rel;
	if (!err)
		err = sb_sandbox_as_owner(sb, as_owner_write, &j);
	free(rel);
	if (err && err->code == SB_E_NOTFOUND && !data) {
		sb_err_free(err); /* removing a file whose directory is gone: nothing to remove */
		err = NULL;
	}
	return err;
}
