/* File and workspace transfer routes (docs/api.md): PUT/GET/DELETE of single files and tar
 * streams of the whole workspace. The routes check the request, call the files service
 * (files.c, which owns every touch of the workspace) and format the reply. Bodies are spooled
 * to unlinked temp files by the pipeline (never held in memory). */
#include "files.h"
#include "server_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sb_json.h"

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

/* ------------------------------------------------------------------ PUT file */

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
	int src = sbs_req_body_fd(r, &size);
	sb_err *err = sbs_files_put(l, rel, src, mode);
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

static void h_get_file(sbs_req *r, void *ud)
{
	(void)ud;
	const char *rel;
	if (!rel_or_reply(r, &rel))
		return;
	sbs_lease *l = lease_or_reply(r);
	if (!l)
		return;
	int spool = -1;
	uint32_t mode = 0;
	sb_err *err = sbs_req_spool_file(r, &spool);
	if (!err)
		err = sbs_files_get(l, rel, spool, &mode);
	sbs_lease_unref(l);
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
	sb_err *err =
	    sbs_files_delete(l, rel, rq && (strcmp(rq, "1") == 0 || strcmp(rq, "true") == 0));
	sbs_lease_unref(l);
	if (err) {
		reply_workspace_err(r, err, rel);
		return;
	}
	sbs_reply_json(r, 200, json_pack("{s:s, s:b}", "path", rel, "deleted", 1));
}

/* ------------------------------------------------------------------ workspace tar */

/* ?path=<in-sandbox directory> (default: the workspace) as a path relative to the host-side
 * workspace; replies 400 and returns NULL when it is outside. */
static char *dir_param_or_reply(sbs_req *r, sbs_lease *l)
{
	const char *path = sbs_req_query_get(r, "path");
	if (!path || !path[0])
		return sb_xstrdup("");
	char *rel = NULL;
	sb_err *err = sbs_files_map_dir(l, path, &rel);
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
	if (!err) /* a device, FIFO or socket member is refused (400 naming it) */
		err = sbs_files_replace_workspace(l, rel, src, keep);
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
	if (!err)
		err = sbs_files_workspace_tar(l, rel, &ex, spool);
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
