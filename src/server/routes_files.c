/* File and workspace transfer routes (docs/api.md): PUT/GET/DELETE of single files and tar
 * streams of the whole workspace. Bodies are spooled to unlinked temp files by the pipeline
 * (never held in memory), and every touch of the workspace happens inside
 * sb_sandbox_as_owner() with paths resolved by sb_fs_open_beneath(), so neither ".." nor a
 * symlink planted by sandboxed code can reach outside it, and the daemon's root rights are
 * never used on files the sandbox controls. Writes are atomic (temp + rename in the target
 * directory). */
#include "server_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sb_json.h"

#define COPY_CHUNK (128u * 1024u)

static sbs_lease *lease_or_reply(sbs_req *r)
{
	const char *id = sbs_req_param(r, "id");
	sbs_req_set_lease(r, id);
	sbs_lease *l = NULL;
	sb_err *err = sbs_leases_get(sbs_req_server(r)->leases, id, SBS_GET_USE, &l);
	if (err) {
		sbs_reply_err(r, err);
		return NULL;
	}
	return l;
}

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

/* Reply to a failed file route (err is consumed): a missing path in the workspace is a 404
 * naming rel (NULL: the directory asked for); anything else goes out as the error it is. */
static void reply_workspace_err(sbs_req *r, sb_err *err, const char *rel)
{
	if (err->code == SB_E_IO && err->sys_errno == ENOENT) {
		sb_err_free(err);
		if (rel)
			sbs_reply_error(r, 404, "not_found", "no file %s in the workspace", rel);
		else
			sbs_reply_error(r, 404, "not_found", "no such directory in the workspace");
		return;
	}
	sbs_reply_err(r, err);
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

/* ------------------------------------------------------------------ PUT file */

typedef struct put_job {
	const char *ws; /* for messages */
	int ws_fd;      /* O_PATH of the workspace: reachable whatever its ancestors' modes */
	const char *rel;
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
	split_rel(j->rel, &parent, &name);
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
	root = open_ws(j->ws_fd);
	if (root < 0) {
		err = sb_err_sys(errno, "opening workspace %s", j->ws);
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
		err = sb_err_sys(errno, "finishing %s", j->rel);
		goto unlink;
	}
	struct stat st;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		err = sb_err_new(SB_E_CONFLICT, "%s is a directory", j->rel);
		goto unlink;
	}
	if (renameat(pfd, tmp, pfd, name) < 0) {
		err = sb_err_sys(errno, "replacing %s", j->rel);
		goto unlink;
	}
	if (fsync(pfd) < 0)
		err = sb_err_sys(errno, "syncing the directory of %s", j->rel);
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

static bool rel_or_reply(sbs_req *r, const char **rel)
{
	*rel = sbs_req_param(r, "path");
	sb_err *err = sb_path_check_relative(*rel);
	if (err) {
		sbs_reply_error(r, 400, "invalid_request", "path: %s", err->msg);
		sb_err_free(err);
		return false;
	}
	return true;
}

static void h_put_file(sbs_req *r, void *ud)
{
	(void)ud;
	const char *rel;
	if (!rel_or_reply(r, &rel))
		return;
	mode_t mode = 0644;
	const char *mh = sbs_req_header(r, "X-Sandbar-Mode");
	if (mh) {
		char *end = NULL;
		unsigned long m = strtoul(mh, &end, 8);
		if (!mh[0] || *end || m > 07777) {
			sbs_reply_error(r, 400, "invalid_request",
			                "X-Sandbar-Mode must be octal permission bits, e.g. 0644");
			return;
		}
		mode = (mode_t)(m & 0777);
	}
	sbs_lease *l = lease_or_reply(r);
	if (!l)
		return;
	uint64_t size = 0;
	put_job j = {.ws = sb_sandbox_workspace_dir(sbs_lease_sandbox(l)),
	             .ws_fd = sb_sandbox_workspace_fd(sbs_lease_sandbox(l)),
	             .rel = rel,
	             .src = sbs_req_body_fd(r, &size),
	             .mode = mode};
	sb_err *err = as_owner_fenced(l, "file-", put_as_owner, &j);
	sbs_lease_unref(l);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	char ms[8];
	snprintf(ms, sizeof ms, "%04o", (unsigned)mode);
	sbs_reply_json(
	    r, 200,
	    json_pack("{s:s, s:I, s:s}", "path", rel, "size", (json_int_t)size, "mode", ms));
}

/* ------------------------------------------------------------------ GET file */

typedef struct get_job {
	const char *ws; /* for messages */
	int ws_fd;      /* O_PATH of the workspace: reachable whatever its ancestors' modes */
	const char *rel;
	int dst;
	int info_fd; /* the mode goes back through a pipe (the job may run in a child) */
} get_job;

static sb_err *get_as_owner(void *ud)
{
	get_job *j = ud;
	int root = open_ws(j->ws_fd);
	if (root < 0)
		return sb_err_sys(errno, "opening workspace %s", j->ws);
	int fd = -1;
	sb_err *err = sb_fs_open_beneath(root, j->rel, O_RDONLY, 0, 0, &fd);
	close(root);
	if (err)
		return err;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err = sb_err_sys(errno, "stat %s", j->rel);
	} else if (!S_ISREG(st.st_mode)) {
		err = sb_err_new(SB_E_INVAL, "%s is not a regular file", j->rel);
	} else {
		uint32_t m = (uint32_t)(st.st_mode & 07777);
		err = sb_write_all(j->info_fd, &m, sizeof m);
		if (!err)
			err = copy_fd(fd, j->dst, NULL);
	}
	close(fd);
	return err;
}

static void h_get_file(sbs_req *r, void *ud)
{
	(void)ud;
	const char *rel;
	if (!rel_or_reply(r, &rel))
		return;
	sbs_lease *l = lease_or_reply(r);
	if (!l)
		return;
	int spool = -1, pp[2] = {-1, -1};
	sb_err *err = sbs_req_spool_file(r, &spool);
	if (!err && pipe2(pp, O_CLOEXEC) < 0)
		err = sb_err_sys(errno, "pipe");
	if (!err) {
		get_job j = {.ws = sb_sandbox_workspace_dir(sbs_lease_sandbox(l)),
		             .ws_fd = sb_sandbox_workspace_fd(sbs_lease_sandbox(l)),
		             .rel = rel,
		             .dst = spool,
		             .info_fd = pp[1]};
		err = sb_sandbox_as_owner(sbs_lease_sandbox(l), get_as_owner, &j);
	}
	sbs_lease_unref(l);
	uint32_t mode = 0;
	if (!err) {
		size_t got = 0;
		sb_close(&pp[1]);
		err = sb_read_full(pp[0], &mode, sizeof mode, &got);
		if (!err && got != sizeof mode)
			err = sb_err_new(SB_E_INTERNAL, "file mode not reported");
	}
	sb_close(&pp[0]);
	sb_close(&pp[1]);
	struct stat st;
	if (!err && (fstat(spool, &st) < 0 || lseek(spool, 0, SEEK_SET) < 0))
		err = sb_err_sys(errno, "spooled copy of %s", rel);
	if (err) {
		sb_close(&spool);
		reply_workspace_err(r, err, rel);
		return;
	}
	char ms[8];
	snprintf(ms, sizeof ms, "%04o", (unsigned)mode);
	sbs_req_add_header(r, "X-Sandbar-Mode", ms);
	sbs_reply_fd(r, 200, "application/octet-stream", spool, (uint64_t)st.st_size);
}

/* ------------------------------------------------------------------ DELETE file */

typedef struct del_job {
	const char *ws; /* for messages */
	int ws_fd;      /* O_PATH of the workspace: reachable whatever its ancestors' modes */
	const char *rel;
	bool recursive;
} del_job;

static sb_err *del_as_owner(void *ud)
{
	del_job *j = ud;
	int pfd = -1;
	char *parent = NULL;
	const char *name = NULL;
	sb_err *err = open_parent(j->ws, j->ws_fd, j->rel, false, &pfd, &name, &parent);
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
				                       j->rel)
				          : sb_err_sys(errno, "removing %s", j->rel);
			goto out;
		}
		/* Through the already-confined parent fd: rm_rf never follows symlinks. */
		char *p = sb_strfmt("/proc/self/fd/%d/%s", pfd, name);
		err = sb_fs_rm_rf(p);
		free(p);
		goto out;
	}
	err = sb_err_sys(errno, "removing %s", j->rel);
out:
	if (pfd >= 0)
		close(pfd);
	free(parent);
	return err;
}

static void h_delete_file(sbs_req *r, void *ud)
{
	(void)ud;
	const char *rel;
	if (!rel_or_reply(r, &rel))
		return;
	const char *rq = sbs_req_query_get(r, "recursive");
	sbs_lease *l = lease_or_reply(r);
	if (!l)
		return;
	del_job j = {.ws = sb_sandbox_workspace_dir(sbs_lease_sandbox(l)),
	             .ws_fd = sb_sandbox_workspace_fd(sbs_lease_sandbox(l)),
	             .rel = rel,
	             .recursive = rq && (strcmp(rq, "1") == 0 || strcmp(rq, "true") == 0)};
	sb_err *err = sb_sandbox_as_owner(sbs_lease_sandbox(l), del_as_owner, &j);
	sbs_lease_unref(l);
	if (err) {
		reply_workspace_err(r, err, rel);
		return;
	}
	sbs_reply_json(r, 200, json_pack("{s:s, s:b}", "path", rel, "deleted", 1));
}

/* ------------------------------------------------------------------ workspace tar */

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

/* ?path=<in-sandbox directory> (default: the workspace) as a path relative to the host-side
 * workspace; replies 400 and returns NULL when it is outside. */
static char *dir_param_or_reply(sbs_req *r, sbs_lease *l)
{
	const char *path = sbs_req_query_get(r, "path");
	if (!path || !path[0])
		return sb_xstrdup("");
	char *rel = NULL;
	sb_err *err = sb_sandbox_map_path(sbs_lease_sandbox(l), path, &rel);
	if (err) {
		sbs_reply_error(r, 400, "invalid_request", "path \"%s\": %s", path, err->msg);
		sb_err_free(err);
		return NULL;
	}
	return rel;
}

static void h_put_workspace(sbs_req *r, void *ud)
{
	(void)ud;
	sbs_server *srv = sbs_req_server(r);
	char **keep = NULL;
	bool any_preserve = false;
	const sb_query *q = sbs_req_query(r);
	for (size_t i = 0; i < q->n; i++) {
		if (strcmp(q->pairs[i].key, "preserve") != 0)
			continue;
		any_preserve = true;
		const char *v = q->pairs[i].value;
		if (!v[0] || strchr(v, '/') || !strcmp(v, ".") || !strcmp(v, "..")) {
			sbs_reply_error(r, 400, "invalid_request",
			                "preserve \"%s\": must be one top-level name", v);
			sb_strv_free(keep);
			return;
		}
		sb_strv_push(&keep, v);
	}
	if (!any_preserve)
		sb_strv_push(&keep, srv->overlay_dir);
	sbs_lease *l = lease_or_reply(r);
	if (!l) {
		sb_strv_free(keep);
		return;
	}
	char *rel = dir_param_or_reply(r, l);
	if (!rel) {
		sbs_lease_unref(l);
		sb_strv_free(keep);
		return;
	}
	uint64_t size = 0;
	int src = sbs_req_body_fd(r, &size);
	sb_err *err = NULL;
	if (lseek(src, 0, SEEK_SET) < 0)
		err = sb_err_sys(errno, "rewinding the upload");
	/* The one workspace replace: the old tree survives a bad archive, and a device, FIFO
	 * or socket member is refused (400 naming it) rather than skipped. */
	char *fence = sb_random_id("workspace-");
	if (!err)
		err = sbs_lease_fence_begin(l, fence, 0, NULL);
	if (!err) {
		sb_sandbox_replace_opts o = {
		    .rel = rel, .keep = keep, .special = SB_REPLACE_SPECIAL_REFUSE};
		err = sb_sandbox_workspace_replace(sbs_lease_sandbox(l), src, &o, NULL);
		sbs_lease_fence_end(l, fence);
	}
	free(fence);
	sbs_lease_unref(l);
	free(rel);
	if (err) {
		sb_strv_free(keep);
		sbs_reply_err(r, err);
		return;
	}
	json_t *kj = json_array();
	for (size_t i = 0; keep && keep[i]; i++)
		json_array_append_new(kj, json_string(keep[i]));
	sb_strv_free(keep);
	sbs_reply_json(r, 200, json_pack("{s:I, s:o}", "bytes", (json_int_t)size, "kept", kj));
}

typedef struct ws_get_job {
	const char *ws; /* for messages */
	int ws_fd;      /* O_PATH of the workspace: reachable whatever its ancestors' modes */
	const char *rel;
	const sb_excludes *ex;
	int dst;
} ws_get_job;

static sb_err *ws_get_as_owner(void *ud)
{
	ws_get_job *j = ud;
	int dfd = -1;
	sb_err *err = open_dir_beneath(j->ws, j->ws_fd, j->rel, &dfd);
	if (err)
		return err;
	char *dir = sb_strfmt("/proc/self/fd/%d", dfd);
	err = sb_tar_create(dir, j->ex, false, j->dst, NULL);
	free(dir);
	close(dfd);
	return err;
}

/* Excludes: plain relative paths, or the exclude matcher's own forms ("*\/X", "*\/X/\*",
 * "X/\*") that the managed runtime sends. Anything else is refused. */
static sb_err *exclude_ok(const char *v)
{
	if (!v[0] || strlen(v) > 4096)
		return sb_err_new(SB_E_INVAL, "empty or longer than 4096 bytes");
	const char *core = v;
	size_t n = strlen(v);
	if (sb_str_has_prefix(core, "*/")) {
		core += 2;
		n -= 2;
	}
	char *c = sb_xstrndup(core, n);
	if (sb_str_has_suffix(c, "/*"))
		c[strlen(c) - 2] = '\0';
	sb_err *err = sb_excludes_check_user(c);
	free(c);
	return err;
}

static void h_get_workspace(sbs_req *r, void *ud)
{
	(void)ud;
	sb_excludes ex;
	sb_excludes_init(&ex);
	const sb_query *q = sbs_req_query(r);
	for (size_t i = 0; i < q->n; i++) {
		if (strcmp(q->pairs[i].key, "exclude") != 0)
			continue;
		sb_err *err = exclude_ok(q->pairs[i].value);
		if (err) {
			sbs_reply_error(r, 400, "invalid_request", "exclude \"%s\": %s",
			                q->pairs[i].value, err->msg);
			sb_err_free(err);
			sb_excludes_deinit(&ex);
			return;
		}
		sb_excludes_add(&ex, q->pairs[i].value);
	}
	sbs_lease *l = lease_or_reply(r);
	if (!l) {
		sb_excludes_deinit(&ex);
		return;
	}
	char *rel = dir_param_or_reply(r, l);
	if (!rel) {
		sbs_lease_unref(l);
		sb_excludes_deinit(&ex);
		return;
	}
	int spool = -1;
	sb_err *err = sbs_req_spool_file(r, &spool);
	if (!err) {
		ws_get_job j = {.ws = sb_sandbox_workspace_dir(sbs_lease_sandbox(l)),
		                .ws_fd = sb_sandbox_workspace_fd(sbs_lease_sandbox(l)),
		                .rel = rel,
		                .ex = &ex,
		                .dst = spool};
		err = sb_sandbox_as_owner(sbs_lease_sandbox(l), ws_get_as_owner, &j);
	}
	sbs_lease_unref(l);
	sb_excludes_deinit(&ex);
	free(rel);
	struct stat st;
	if (!err && (fstat(spool, &st) < 0 || lseek(spool, 0, SEEK_SET) < 0))
		err = sb_err_sys(errno, "spooled workspace archive");
	if (err) {
		sb_close(&spool);
		reply_workspace_err(r, err, NULL);
		return;
	}
	sbs_reply_fd(r, 200, "application/x-tar", spool, (uint64_t)st.st_size);
}

void sbs_file_routes_register(sbs_server *srv)
{
	sbs_router *rt = srv->router;
	sbs_router_add(rt, "PUT", "/v1/leases/{id}/files/{path...}", SBS_ROUTE_BODY_SPOOL,
	               h_put_file, NULL);
	sbs_router_add(rt, "GET", "/v1/leases/{id}/files/{path...}", 0, h_get_file, NULL);
	sbs_router_add(rt, "DELETE", "/v1/leases/{id}/files/{path...}", 0, h_delete_file, NULL);
	sbs_router_add(rt, "PUT", "/v1/leases/{id}/workspace", SBS_ROUTE_BODY_SPOOL,
	               h_put_workspace, NULL);
	sbs_router_add(rt, "GET", "/v1/leases/{id}/workspace", 0, h_get_workspace, NULL);
}
