/* The workspace files of a lease, for the file and workspace routes (routes_files.c): put,
 * get and delete one file, replace the whole workspace, archive it. Every touch of the
 * workspace happens inside sb_sandbox_as_owner() with paths resolved by sb_fs_open_beneath(),
 * so neither ".." nor a symlink planted by sandboxed code can reach outside it, and the
 * daemon's root rights are never used on files the sandbox controls. Writes are atomic (temp
 * + rename in the target directory) and run under an execution fence, so that a destroy waits
 * for them instead of cutting them short. */
#include "files.h"
#include "server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_CHUNK (128u * 1024u)

/* Run fn as the lease owner under an execution fence (its id: prefix + random), so that a
 * destroy waits for the write instead of cutting it short. */
static sb_err *as_owner_fenced(sbs_lease *l, const char *prefix, sb_err *(*fn)(void *ud), void *ud)
{
	char *fence = sb_random_id(prefix);
	sb_err *err = sbs_lease_fence_begin(l, fence, 0, NULL);
	if (!err) {
		err = sb_sandbox_as_owner(sbs_lease_sandbox(l), fn, ud);
		sbs_lease_fence_end(l, fence);
	}
	free(fence);
	return err;
}

/* Copy all of src (from offset 0, by pread: the offset may be shared) to dst. */
static sb_err *copy_fd(int src, int dst, uint64_t *copied)
{
	char *buf = sb_xmalloc(COPY_CHUNK);
	uint64_t off = 0;
	sb_err *err = NULL;
	for (;;) {
		ssize_t n = pread(src, buf, COPY_CHUNK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = sb_err_sys(errno, "reading");
			break;
		}
		if (n == 0)
			break;
		if ((err = sb_write_all(dst, buf, (size_t)n)))
			break;
		off += (uint64_t)n;
	}
	free(buf);
	if (copied)
		*copied = off;
	return err;
}

/* Split rel into its parent ("" for the root) and last segment. */
static void split_rel(const char *rel, char **parent, const char **name)
{
	const char *slash = strrchr(rel, '/');
	if (slash) {
		*parent = sb_xstrndup(rel, (size_t)(slash - rel));
		*name = slash + 1;
	} else {
		*parent = sb_xstrdup("");
		*name = rel;
	}
}

/* The workspace directory, opened through its O_PATH descriptor (as the owner, who may not be
 * able to traverse the state directory's path). */
static int open_ws(int ws_fd)
{
	return openat(ws_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Open the parent directory of rel beneath the workspace (creating it when mkdirs). */
static sb_err *open_parent(const char *ws, int ws_fd, const char *rel, bool mkdirs, int *pfd,
                           const char **name, char **parent)
{
	int root = open_ws(ws_fd);
	if (root < 0)
		return sb_err_sys(errno, "opening workspace %s", ws);
	split_rel(rel, parent, name);
	sb_err *err = NULL;
	if ((*parent)[0] == '\0') {
		*pfd = root;
		return NULL;
	}
	err = sb_fs_open_beneath(root, *parent, O_RDONLY | O_DIRECTORY, 0,
	                         mkdirs ? SB_OPEN_MKDIRS : 0, pfd);
	close(root);
	return err;
}

/* Where a job acts: the workspace (its path for messages, and its O_PATH descriptor, reachable
 * whatever the modes of its ancestors) and the path relative to it. */
typedef struct ws_ref {
	const char *ws;
	int ws_fd;
	const char *rel;
} ws_ref;

static ws_ref ws_of(sbs_lease *l, const char *rel)
{
	return (ws_ref){.ws = sb_sandbox_workspace_dir(sbs_lease_sandbox(l)),
	                .ws_fd = sb_sandbox_workspace_fd(sbs_lease_sandbox(l)),
	                .rel = rel};
}

/* ------------------------------------------------------------------ PUT file */

typedef struct put_job {
	ws_ref at;
	int src;
	mode_t mode;
} put_job;

static sb_err *put_as_owner(void *ud)
{
	put_job *j = ud;
	int root = -1, pfd = -1, tfd = -1;
	char *parent = NULL, *tmp = NULL, *tmp_rel = NULL;
	const char *name = NULL;
	sb_err *err = NULL;
	split_rel(j->at.rel, &parent, &name);
	char rnd[17];
	unsigned char b[8];
	if ((err = sb_random_bytes(b, sizeof b)))
		goto out;
	sb_hex_encode(b, sizeof b, rnd);
	tmp = sb_strfmt(".%s.sbtmp-%s", name, rnd);
	if (strlen(tmp) > 255) {
		free(tmp);
		tmp = sb_strfmt(".sbtmp-%s", rnd);
	}
	tmp_rel = parent[0] ? sb_strfmt("%s/%s", parent, tmp) : sb_xstrdup(tmp);
	root = open_ws(j->at.ws_fd);
	if (root < 0) {
		err = sb_err_sys(errno, "opening workspace %s", j->at.ws);
		goto out;
	}
	/* The temp file first (creating missing parents), then the parent it landed in: both
	 * resolved beneath the workspace, so a swapped parent still cannot lead outside. */
	if ((err = sb_fs_open_beneath(root, tmp_rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600,
	                              SB_OPEN_MKDIRS, &tfd)))
		goto out;
	if (parent[0]) {
		if ((err = sb_fs_open_beneath(root, parent, O_RDONLY | O_DIRECTORY, 0, 0, &pfd)))
			goto out;
	} else {
		pfd = root;
		root = -1;
	}
	if ((err = copy_fd(j->src, tfd, NULL)))
		goto unlink;
	if (fchmod(tfd, j->mode) < 0 || fsync(tfd) < 0) {
		err = sb_err_sys(errno, "finishing %s", j->at.rel);
		goto unlink;
	}
	struct stat st;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		err = sb_err_new(SB_E_CONFLICT, "%s is a directory", j->at.rel);
		goto unlink;
	}
	if (renameat(pfd, tmp, pfd, name) < 0) {
		err = sb_err_sys(errno, "replacing %s", j->at.rel);
		goto unlink;
	}
	if (fsync(pfd) < 0)
		err = sb_err_sys(errno, "syncing the directory of %s", j->at.rel);
	goto out;
unlink:
	unlinkat(pfd, tmp, 0);
out:
	if (tfd >= 0)
		close(tfd);
	if (pfd >= 0)
		close(pfd);
	if (root >= 0)
		close(root);
	free(parent);
	free(tmp);
	free(tmp_rel);
	return err;
}

typedef struct get_job {
	ws_ref at;
	int dst;
	int info_fd; /* the mode goes back through a pipe (the job may run in a child) */
} get_job;

static sb_err *get_as_owner(void *ud)
{
	get_job *j = ud;
	int root = open_ws(j->at.ws_fd);
	if (root < 0)
		return sb_err_sys(errno, "opening workspace %s", j->at.ws);
	int fd = -1;
	sb_err *err = sb_fs_open_beneath(root, j->at.rel, O_RDONLY, 0, 0, &fd);
	close(root);
	if (err)
		return err;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err = sb_err_sys(errno, "stat %s", j->at.rel);
	} else if (!S_ISREG(st.st_mode)) {
		err = sb_err_new(SB_E_INVAL, "%s is not a regular file", j->at.rel);
	} else {
		uint32_t m = (uint32_t)(st.st_mode & 07777);
		err = sb_write_all(j->info_fd, &m, sizeof m);
		if (!err)
			err = copy_fd(fd, j->dst, NULL);
	}
	close(fd);
	return err;
}

typedef struct del_job {
	ws_ref at;
	bool recursive;
} del_job;

static sb_err *del_as_owner(void *ud)
{
	del_job *j = ud;
	int pfd = -1;
	char *parent = NULL;
	const char *name = NULL;
	sb_err *err = open_parent(j->at.ws, j->at.ws_fd, j->at.rel, false, &pfd, &name, &parent);
	if (err)
		goto out;
	if (unlinkat(pfd, name, 0) == 0)
		goto out;
	if (errno == EISDIR || errno == EPERM) {
		if (!j->recursive) {
			if (unlinkat(pfd, name, AT_REMOVEDIR) < 0)
				err = errno == ENOTEMPTY
				          ? sb_err_new(SB_E_CONFLICT,
				                       "%s is a non-empty directory; add "
				                       "?recursive=1",
				                       j->at.rel)
				          : sb_err_sys(errno, "removing %s", j->at.rel);
			goto out;
		}
		/* Through the already-confined parent fd: rm_rf never follows symlinks. */
		char *p = sb_strfmt("/proc/self/fd/%d/%s", pfd, name);
		err = sb_fs_rm_rf(p);
		free(p);
		goto out;
	}
	err = sb_err_sys(errno, "removing %s", j->at.rel);
out:
	if (pfd >= 0)
		close(pfd);
	free(parent);
	return err;
}

/* Open the directory rel beneath the workspace; "" is the workspace itself. Runs as the lease
 * owner. */
static sb_err *open_dir_beneath(const char *ws, int ws_fd, const char *rel, int *out)
{
	int root = open_ws(ws_fd);
	if (root < 0)
		return sb_err_sys(errno, "opening workspace %s", ws);
	if (!rel[0]) {
		*out = root;
		return NULL;
	}
	sb_err *err = sb_fs_open_beneath(root, rel, O_RDONLY | O_DIRECTORY, 0, 0, out);
	close(root);
	return err;
}

typedef struct ws_get_job {
	ws_ref at;
	const sb_excludes *ex;
	int dst;
} ws_get_job;

static sb_err *ws_get_as_owner(void *ud)
{
	ws_get_job *j = ud;
	int dfd = -1;
	sb_err *err = open_dir_beneath(j->at.ws, j->at.ws_fd, j->at.rel, &dfd);
	if (err)
		return err;
	char *dir = sb_strfmt("/proc/self/fd/%d", dfd);
	err = sb_tar_create(dir, j->ex, false, j->dst, NULL);
	free(dir);
	close(dfd);
	return err;
}

sb_err *sbs_files_put(sbs_lease *l, const char *rel, int src, mode_t mode)
{
	put_job j = {.at = ws_of(l, rel), .src = src, .mode = mode};
	return as_owner_fenced(l, "file-", put_as_owner, &j);
}

sb_err *sbs_files_get(sbs_lease *l, const char *rel, int dst, uint32_t *mode_out)
{
	int pp[2] = {-1, -1};
	if (pipe2(pp, O_CLOEXEC) < 0)
		return sb_err_sys(errno, "pipe");
	get_job j = {.at = ws_of(l, rel), .dst = dst, .info_fd = pp[1]};
	sb_err *err = sb_sandbox_as_owner(sbs_lease_sandbox(l), get_as_owner, &j);
	if (!err) {
		size_t got = 0;
		sb_close(&pp[1]);
		err = sb_read_full(pp[0], mode_out, sizeof *mode_out, &got);
		if (!err && got != sizeof *mode_out)
			err = sb_err_new(SB_E_INTERNAL, "file mode not reported");
	}
	sb_close(&pp[0]);
	sb_close(&pp[1]);
	return err;
}

sb_err *sbs_files_delete(sbs_lease *l, const char *rel, bool recursive)
{
	del_job j = {.at = ws_of(l, rel), .recursive = recursive};
	return sb_sandbox_as_owner(sbs_lease_sandbox(l), del_as_owner, &j);
}

sb_err *sbs_files_map_dir(sbs_lease *l, const char *path, char **rel_out)
{
	return sb_sandbox_map_path(sbs_lease_sandbox(l), path, rel_out);
}

sb_err *sbs_files_replace_workspace(sbs_lease *l, const char *rel, int src, char **keep)
{
	/* The one workspace replace: the old tree survives a bad archive, and a device, FIFO
	 * or socket member is refused (naming it) rather than skipped. */
	char *fence = sb_random_id("workspace-");
	sb_err *err = sbs_lease_fence_begin(l, fence, 0, NULL);
	if (!err) {
		sb_sandbox_replace_opts o = {
		    .rel = rel, .keep = keep, .special = SB_REPLACE_SPECIAL_REFUSE};
		err = sb_sandbox_workspace_replace(sbs_lease_sandbox(l), src, &o, NULL);
		sbs_lease_fence_end(l, fence);
	}
	free(fence);
	return err;
}

sb_err *sbs_files_workspace_tar(sbs_lease *l, const char *rel, const sb_excludes *ex, int dst)
{
	ws_get_job j = {.at = ws_of(l, rel), .ex = ex, .dst = dst};
	return sb_sandbox_as_owner(sbs_lease_sandbox(l), ws_get_as_owner, &j);
}
