/* File-system primitives: atomic replace (temp file beside the target, fsync, rename, fsync of
 * the directory), mkdir -p, rm -rf that never follows symlinks (it works on directory fds with
 * unlinkat), file copies that try a reflink first and never hard-link, and private temp dirs.
 * A reader of the target sees either the old or the new content, never a mix; a failed replace
 * leaves the old content and no temp file behind. */
#include "fs_internal.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

/* The part of the base name kept in a temp name, so dot + base + suffix fits NAME_MAX. */
#define TMP_BASE_MAX 200

/* Split path into its directory ("." when there is none) and last segment. */
static sb_err *split_path(const char *what, const char *path, char **dir, char **base)
{
	*dir = NULL;
	*base = NULL;
	if (!path || !*path)
		return sb_err_new(SB_E_INVAL, "%s: the path is empty", what);
	size_t len = strlen(path);
	if (len > PATH_MAX)
		return sb_err_new(SB_E_TOO_LARGE, "%s: the path is longer than %d bytes", what,
		                  PATH_MAX);
	if (path[len - 1] == '/')
		return sb_err_new(SB_E_INVAL, "%s %s: the path names a directory (trailing '/')",
		                  what, path);
	const char *slash = strrchr(path, '/');
	if (!slash) {
		*dir = sb_xstrdup(".");
		*base = sb_xstrdup(path);
	} else {
		*dir = slash == path ? sb_xstrdup("/") : sb_xstrndup(path, (size_t)(slash - path));
		*base = sb_xstrdup(slash + 1);
	}
	if (strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0) {
		free(*dir);
		free(*base);
		*dir = *base = NULL;
		return sb_err_new(SB_E_INVAL, "%s %s: the path ends in \".\" or \"..\"", what,
		                  path);
	}
	return NULL;
}

static sb_err *fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return sb_err_sys(errno, "opening directory %s to sync it", dir);
	sb_err *err = NULL;
	/* Some file systems cannot sync a directory (EINVAL); the rename is done either way. */
	if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
		err = sb_err_sys(errno, "syncing directory %s", dir);
	close(fd);
	return err;
}

static void atomic_reset(sb_atomic_file *af)
{
	sb_close(&af->fd);
	free(af->tmp_path);
	free(af->path);
	af->tmp_path = NULL;
	af->path = NULL;
}

sb_err *sb_atomic_open(const char *path, mode_t mode, sb_atomic_file *af)
{
	af->fd = -1;
	af->tmp_path = NULL;
	af->path = NULL;
	char *dir, *base;
	sb_err *err = split_path("writing", path, &dir, &base);
	if (err)
		return err;
	size_t keep = strlen(base) > TMP_BASE_MAX ? TMP_BASE_MAX : strlen(base);
	for (int attempt = 0; attempt < 16 && af->fd < 0; attempt++) {
		unsigned char rnd[8];
		char hex[17];
		err = sb_random_bytes(rnd, sizeof rnd);
		if (err)
			break;
		sb_hex_encode(rnd, sizeof rnd, hex);
		free(af->tmp_path);
		af->tmp_path = sb_strfmt("%s/.%.*s.sbtmp-%s", dir, (int)keep, base, hex);
		af->fd =
		    open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (af->fd < 0 && errno != EEXIST) {
			err = sb_err_sys(errno, "writing %s: creating the temp file %s", path,
			                 af->tmp_path);
			break;
		}
	}
	if (!err && af->fd < 0)
		err = sb_err_new(SB_E_EXISTS, "writing %s: no unused temp file name in %s", path,
		                 dir);
	/* The requested mode exactly, not filtered by the umask: the caller said what it wants
	 * (0600 for credentials, the recorded mode for restored files). */
	if (!err && fchmod(af->fd, mode & 07777) != 0) {
		err = sb_err_sys(errno, "writing %s: setting mode %o on %s", path,
		                 (unsigned)(mode & 07777), af->tmp_path);
		unlink(af->tmp_path);
	}
	free(dir);
	free(base);
	if (err) {
		atomic_reset(af);
		return err;
	}
	af->path = sb_xstrdup(path);
	return NULL;
}

void sb_atomic_abort(sb_atomic_file *af)
{
	/* Without a temp path nothing was opened (or it was committed): a zeroed struct's fd 0
	 * is not ours to close. */
	if (!af || !af->tmp_path)
		return;
	sb_close(&af->fd);
	if (af->tmp_path)
		unlink(af->tmp_path);
	atomic_reset(af);
}

sb_err *sb_atomic_commit_opt(sb_atomic_file *af, bool durable)
{
	if (!af || af->fd < 0 || !af->tmp_path || !af->path)
		return sb_err_new(SB_E_INVAL, "committing an atomic file that is not open");
	sb_err *err = NULL;
	if (durable && fsync(af->fd) != 0)
		err = sb_err_sys(errno, "writing %s: syncing %s", af->path, af->tmp_path);
	int fd = af->fd;
	af->fd = -1;
	/* close() reports delayed write errors on some file systems (NFS): do not ignore it. */
	if (close(fd) != 0 && errno != EINTR && !err)
		err = sb_err_sys(errno, "writing %s: closing %s", af->path, af->tmp_path);
	if (!err && rename(af->tmp_path, af->path) != 0)
		err = sb_err_sys(errno, "replacing %s with %s (the old content is kept)", af->path,
		                 af->tmp_path);
	if (err) {
		sb_atomic_abort(af);
		return err;
	}
	if (durable) {
		char *dir = NULL, *base = NULL;
		err = split_path("syncing", af->path, &dir, &base);
		if (!err)
			err = fsync_dir(dir);
		free(dir);
		free(base);
	}
	atomic_reset(af);
	return err;
}

sb_err *sb_atomic_commit(sb_atomic_file *af)
{
	return sb_atomic_commit_opt(af, true);
}

sb_err *sb_atomic_commit_nosync(sb_atomic_file *af)
{
	return sb_atomic_commit_opt(af, false);
}

sb_err *sb_fs_write_atomic(const char *path, const void *p, size_t n, mode_t mode)
{
	sb_atomic_file af;
	sb_err *err = sb_atomic_open(path, mode, &af);
	if (err)
		return err;
	err = sb_write_all(af.fd, p, n);
	if (err) {
		sb_atomic_abort(&af);
		return sb_err_prefix(err, "writing %s", path);
	}
	return sb_atomic_commit(&af);
}

sb_err *sb_fs_mkdir_p(const char *path, mode_t mode)
{
	if (!path || !*path)
		return sb_err_new(SB_E_INVAL, "creating a directory: the path is empty");
	if (strlen(path) > PATH_MAX)
		return sb_err_new(SB_E_TOO_LARGE,
		                  "creating a directory: the path is longer than %d", PATH_MAX);
	char *p = sb_xstrdup(path);
	size_t len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	sb_err *err = NULL;
	for (char *s = p + 1;; s++) {
		bool end = *s == '\0';
		if (!end && *s != '/')
			continue;
		if (!end && s[-1] == '/')
			continue; /* "a//b" */
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			int e = errno;
			struct stat st;
			/* A parent we may not write to (EACCES, EROFS) is fine if it exists. */
			if (end || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
				err = sb_err_sys(e, "creating directory %s", p);
				break;
			}
		}
		if (end)
			break;
		*s = '/';
	}
	if (!err) {
		struct stat st;
		if (stat(p, &st) != 0)
			err = sb_err_sys(errno, "creating directory %s", p);
		else if (!S_ISDIR(st.st_mode))
			err = sb_err_new(SB_E_EXISTS,
			                 "creating directory %s: it exists and is not a directory",
			                 p);
	}
	free(p);
	return err;
}

/* Remove name in dfd and, when it is a directory, everything below it. Directories are opened
 * with O_NOFOLLOW, so a symlink is unlinked, never entered. A directory without write or search
 * permission for us (read-only trees, module caches) is chmod'ed to u+rwx first. */
static sb_err *rm_at(int dfd, const char *name, sb_buf *path)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return NULL;
	if (errno != EISDIR && errno != EPERM)
		return sb_err_sys(errno, "removing %s", path->data);
	int cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0 && errno == EACCES) {
		/* AT_SYMLINK_NOFOLLOW: a symlink swapped in meanwhile is refused, not followed. */
		if (fchmodat(dfd, name, 0700, AT_SYMLINK_NOFOLLOW) == 0)
			cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		else
			errno = EACCES;
	}
	if (cfd < 0) {
		if (errno == ENOENT)
			return NULL;
		return sb_err_sys(errno, "removing %s: opening it", path->data);
	}
	struct stat st;
	if (fstat(cfd, &st) == 0 && (st.st_mode & 0700) != 0700)
		(void)fchmod(cfd,
		             (st.st_mode & 07777) | 0700); /* failure shows up as EACCES below */
	char **names = NULL;
	size_t n = 0;
	sb_err *err = sb_fs_read_names(cfd, path->data, &names, &n);
	size_t base_len = path->len;
	for (size_t i = 0; i < n && !err; i++) {
		path->len = base_len;
		path->data[base_len] = '\0';
		sb_buf_appendc(path, '/');
		sb_buf_appends(path, names[i]);
		err = rm_at(cfd, names[i], path);
	}
	path->len = base_len;
	path->data[base_len] = '\0';
	sb_strv_free(names);
	close(cfd);
	if (!err && unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		err = sb_err_sys(errno, "removing directory %s", path->data);
	return err;
}

static bool kept(char *const *keep, const char *name)
{
	for (char *const *k = keep; k && *k; k++)
		if (strcmp(*k, name) == 0)
			return true;
	return false;
}

sb_err *sb_fs_clear_dir(int dfd, const char *display, char *const *keep)
{
	char **names = NULL;
	size_t n = 0;
	sb_err *err = sb_fs_read_names(dfd, display, &names, &n);
	sb_buf path = SB_BUF_INIT;
	for (size_t i = 0; i < n && !err; i++) {
		if (kept(keep, names[i]))
			continue;
		sb_buf_clear(&path);
		sb_buf_appendf(&path, "%s/%s", display, names[i]);
		err = rm_at(dfd, names[i], &path);
	}
	sb_buf_deinit(&path);
	sb_strv_free(names);
	return err;
}

sb_err *sb_fs_remove_below(int rootfd, const char *rel, const char *display)
{
	sb_err *err = sb_path_check_relative(rel);
	if (err)
		return sb_err_prefix(err, "removing %s/%s", display, rel);
	char *p = sb_xstrdup(rel);
	int dfd = rootfd;
	char *seg = p, *slash;
	while (!err && (slash = strchr(seg, '/'))) {
		*slash = '\0';
		int next = openat(dfd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && (errno == ELOOP || errno == ENOTDIR)) {
			struct stat st;
			bool link =
			    fstatat(dfd, seg, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
			err = link ? sb_err_new(SB_E_ESCAPE, "removing %s/%s: %s is a symlink",
			                        display, rel, p)
			           : NULL; /* a file where a directory was: nothing below it to
			                      remove */
			seg = NULL;
		} else if (next < 0) {
			err = errno == ENOENT ? NULL
			                      : sb_err_sys(errno, "removing %s/%s: opening %s",
			                                   display, rel, p);
			seg = NULL;
		}
		if (dfd != rootfd)
			close(dfd);
		dfd = next;
		if (!seg)
			break;
		*slash = '/';
		seg = slash + 1;
	}
	if (!err && seg) {
		sb_buf shown = SB_BUF_INIT;
		sb_buf_appendf(&shown, "%s/%s", display, rel);
		err = rm_at(dfd, seg, &shown);
		sb_buf_deinit(&shown);
	}
	if (dfd >= 0 && dfd != rootfd)
		close(dfd);
	free(p);
	return err;
}

sb_err *sb_fs_rm_rf(const char *path)
{
	if (!path || !*path)
		return sb_err_new(SB_E_INVAL, "removing a tree: the path is empty");
	char *p = sb_xstrdup(path);
	size_t len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	char *dir = NULL, *base = NULL;
	sb_err *err = NULL;
	if (strcmp(p, "/") == 0)
		err = sb_err_new(SB_E_INVAL, "refusing to remove /");
	else
		err = split_path("removing", p, &dir, &base);
	int dfd = -1;
	if (!err) {
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 && errno != ENOENT && errno != ENOTDIR)
			err = sb_err_sys(errno, "removing %s: opening its directory %s", p, dir);
	}
	if (!err && dfd >= 0) {
		sb_buf shown = SB_BUF_INIT;
		sb_buf_appends(&shown, p);
		err = rm_at(dfd, base, &shown);
		sb_buf_deinit(&shown);
	}
	if (dfd >= 0)
		close(dfd);
	free(dir);
	free(base);
	free(p);
	return err;
}

sb_err *sb_fs_copy_fd(int src_fd, int dst_fd, const char *display)
{
	if (ioctl(dst_fd, FICLONE, src_fd) == 0)
		return NULL;
	/* No reflink here (ext4, tmpfs, different file systems): let the kernel copy, and fall
	 * back to plain reads where it cannot (EXDEV on old kernels, EINVAL/EOPNOTSUPP on special
	 * file systems). */
	bool use_cfr = true;
	uint64_t copied = 0;
	while (use_cfr) {
		ssize_t n = copy_file_range(src_fd, NULL, dst_fd, NULL, (size_t)1 << 30, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
			    errno == EOPNOTSUPP || errno == EBADF || errno == EPERM) {
				use_cfr = false;
				break;
			}
			return sb_err_sys(errno, "copying %s", display);
		}
		if (n == 0) {
			/* Some pseudo file systems report EOF at once: make sure with read(). */
			if (copied == 0)
				use_cfr = false;
			else
				return NULL;
			break;
		}
		copied += (uint64_t)n;
	}
	char *buf = sb_xmalloc(SB_FS_COPY_BUF);
	sb_err *err = NULL;
	for (;;) {
		ssize_t n = read(src_fd, buf, SB_FS_COPY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = sb_err_sys(errno, "copying %s: reading", display);
			break;
		}
		if (n == 0)
			break;
		err = sb_write_all(dst_fd, buf, (size_t)n);
		if (err) {
			err = sb_err_prefix(err, "copying %s", display);
			break;
		}
	}
	free(buf);
	return err;
}

sb_err *sb_fs_copy_file(const char *src, const char *dst, mode_t mode)
{
	if (!src || !*src || !dst || !*dst)
		return sb_err_new(SB_E_INVAL, "copying a file: a path is empty");
	/* O_NOFOLLOW: copying through a symlink could read outside the tree the caller walked;
	 * O_NONBLOCK: a FIFO in its place must not hang us (rejected just below). */
	int sfd = open(src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (sfd < 0) {
		if (errno == ELOOP)
			return sb_err_new(SB_E_INVAL, "copying %s: it is a symlink, not a file",
			                  src);
		return sb_err_sys(errno, "copying %s: opening it", src);
	}
	struct stat st;
	if (fstat(sfd, &st) != 0) {
		sb_err *err = sb_err_sys(errno, "copying %s: examining it", src);
		close(sfd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(sfd);
		return sb_err_new(SB_E_INVAL, "copying %s: it is not a regular file", src);
	}
	int fl = fcntl(sfd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(sfd, F_SETFL, fl & ~O_NONBLOCK);
	sb_atomic_file af;
	sb_err *err = sb_atomic_open(dst, mode, &af);
	if (!err) {
		err = sb_fs_copy_fd(sfd, af.fd, src);
		if (err)
			sb_atomic_abort(&af);
		else
			err = sb_atomic_commit_opt(&af, false);
		if (err)
			err = sb_err_prefix(err, "copying %s to %s", src, dst);
	}
	close(sfd);
	return err;
}

sb_err *sb_fs_mkdtemp(const char *prefix, char **out)
{
	*out = NULL;
	if (!prefix || !*prefix || strchr(prefix, '/'))
		return sb_err_new(
		    SB_E_INVAL,
		    "making a temp directory: the prefix must be one non-empty segment");
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	size_t tlen = strlen(tmp);
	while (tlen > 1 && tmp[tlen - 1] == '/')
		tlen--;
	char *tmpl = sb_strfmt("%.*s/%s-XXXXXX", (int)tlen, tmp, prefix);
	if (!mkdtemp(tmpl)) {
		sb_err *err = sb_err_sys(errno, "making a temp directory %s (check $TMPDIR)", tmpl);
		free(tmpl);
		return err;
	}
	*out = tmpl;
	return NULL;
}

sb_err *sb_fs_tmpfile(const char *dir, int *fd_out)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		/* O_TMPFILE unsupported on this file system: create and unlink at once. */
		char *path = sb_strfmt("%s/spool-XXXXXX", dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0) {
			sb_err *err = sb_err_sys(errno, "creating a temp file in %s", dir);
			free(path);
			return err;
		}
		unlink(path);
		free(path);
	}
	*fd_out = fd;
	return NULL;
}
