/* The request pipeline on libmicrohttpd: for every request, in the connection's own thread,
 * (1) the raw target is captured and parsed, (2) the route is matched and the credentials are
 * checked before anything else (401 for everything but NOAUTH routes, unknown paths included),
 * (3) the body is hashed and buffered (JSON) or spooled to an unlinked file (uploads) within
 * the limits (413 beyond), (4) the HMAC body digest is compared with what arrived, and (5) the
 * handler runs and queues one reply (http_reply.c has the replies and the SSE writer). A request is
 * reference counted: the connection holds one reference until MHD reports completion and a
 * streamed reply holds one until its reader is freed; the last one writes the access-log line.
 */
#include "http_req.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "sb_json.h"

#define DISCARD_MAX (64ull << 20) /* body bytes swallowed after a refusal before hanging up */

long sbs_http_inflight(sbs_server *srv)
{
	return atomic_load(&srv->http_inflight);
}

static void access_log(sbs_req *r)
{
	int64_t dur_us = (sb_mono_ns() - r->start_ns) / 1000;
	sbs_metrics_request(r->srv->metrics, r->status, dur_us);
	if (!r->srv->access_log)
		return;
	json_t *j = json_object();
	json_object_set_new(j, "type", json_string("access"));
	json_object_set_new(j, "method", json_string(r->method ? r->method : "-"));
	json_object_set_new(j, "path", json_string(r->path ? r->path : "-"));
	json_object_set_new(j, "status", json_integer(r->status));
	json_object_set_new(j, "bytes", json_integer((json_int_t)atomic_load(&r->bytes_out)));
	json_object_set_new(j, "duration_ms", json_real((double)dur_us / 1000.0));
	if (r->lease[0])
		json_object_set_new(j, "lease", json_string(r->lease));
	if (r->auth.key_id[0])
		json_object_set_new(j, "key_id", json_string(r->auth.key_id));
	char *s = sb_json_dumps(j);
	sb_info("%s", s);
	free(s);
	json_decref(j);
}

void sbs_http_req_unref(sbs_req *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	if (r->done_fn)
		r->done_fn(r->done_ud);
	access_log(r);
	free(r->raw_target);
	free(r->method);
	free(r->path);
	sb_query_deinit(&r->query);
	sbs_match_deinit(&r->match);
	free(r->pend_code);
	free(r->pend_msg);
	sb_sha256_free(r->hash);
	sb_buf_deinit(&r->body);
	sb_close(&r->spool_fd);
	for (size_t i = 0; i < r->nhdrs; i++) {
		free(r->hdrs[i].name);
		free(r->hdrs[i].value);
	}
	free(r->hdrs);
	sbs_server *srv = r->srv;
	free(r);
	long before = atomic_fetch_sub(&srv->http_inflight, 1);
	assert(before > 0);
	(void)before;
}

void *sbs_http_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
	sbs_req *r = sb_xcalloc(1, sizeof *r);
	atomic_init(&r->refs, 1);
	atomic_init(&r->bytes_out, 0);
	r->srv = cls;
	r->conn = conn;
	r->raw_target = sb_xstrdup(uri ? uri : "");
	r->spool_fd = -1;
	r->start_ns = sb_mono_ns();
	r->status = 0;
	atomic_fetch_add(&r->srv->http_inflight, 1);
	return r;
}

void sbs_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	sbs_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	sbs_http_req_unref(r);
}

/* ------------------------------------------------------------------ accessors */

sbs_server *sbs_req_server(sbs_req *r)
{
	return r->srv;
}

sb_err *sbs_req_spool_file(sbs_req *r, int *fd_out)
{
	return sb_fs_tmpfile(r->srv->tmp_dir, fd_out);
}

const char *sbs_req_method(sbs_req *r)
{
	return r->method;
}

const char *sbs_req_path(sbs_req *r)
{
	return r->path;
}

const char *sbs_req_param(sbs_req *r, const char *name)
{
	for (size_t i = 0; i < r->match.nparams; i++)
		if (sbs_param_name_eq(r->match.names[i], name))
			return r->match.values[i];
	return NULL;
}

const sb_query *sbs_req_query(sbs_req *r)
{
	return &r->query;
}

const char *sbs_req_query_get(sbs_req *r, const char *key)
{
	return sb_query_get(&r->query, key);
}

bool sbs_req_query_bool(sbs_req *r, const char *key, bool dflt)
{
	const char *v = sbs_req_query_get(r, key);
	if (!v)
		return dflt;
	return strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
	       v[0] == '\0';
}

const char *sbs_req_header(sbs_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static const char *header_cb(void *ud, const char *name)
{
	return sbs_req_header(ud, name);
}

bool sbs_req_wants_sse(sbs_req *r)
{
	const char *a = sbs_req_header(r, "Accept");
	return a && strstr(a, "text/event-stream") != NULL;
}

const char *sbs_req_body(sbs_req *r, size_t *len)
{
	if (len)
		*len = r->body.len;
	return sb_buf_cstr(&r->body);
}

int sbs_req_body_fd(sbs_req *r, uint64_t *size)
{
	if (size)
		*size = r->body_size;
	return r->spool_fd;
}

bool sbs_req_json(sbs_req *r, json_t **out)
{
	*out = NULL;
	if (r->body.len == 0) {
		*out = json_object();
		return true;
	}
	sb_err *err = sb_json_parse_object(r->body.data, r->body.len, r->srv->limits.max_json_bytes,
	                                   r->srv->limits.max_json_depth, out);
	if (err) {
		/* The size was enforced while reading (413); what fails here is syntax or nesting
		 * depth: a bad request. */
		sbs_reply_error(r, 400, "invalid_request", "request body: %s", err->msg);
		sb_err_free(err);
		return false;
	}
	return true;
}

const char *sbs_req_auth_id(sbs_req *r)
{
	return r->auth.key_id;
}

void sbs_req_set_lease(sbs_req *r, const char *lease_id)
{
	snprintf(r->lease, sizeof r->lease, "%s", lease_id ? lease_id : "");
}

void sbs_req_on_done(sbs_req *r, void (*fn)(void *ud), void *ud)
{
	if (r->done_fn) /* one slot is all the routes need; never lose a cleanup */
		r->done_fn(r->done_ud);
	r->done_fn = fn;
	r->done_ud = ud;
}

void sbs_req_add_header(sbs_req *r, const char *name, const char *value)
{
	r->hdrs = sb_xrealloc(r->hdrs, (r->nhdrs + 1) * sizeof *r->hdrs);
	r->hdrs[r->nhdrs].name = sb_xstrdup(name);
	r->hdrs[r->nhdrs].value = sb_xstrdup(value);
	r->nhdrs++;
}

/* ------------------------------------------------------------------ the pipeline */

static void refuse(sbs_req *r, unsigned status, const char *code, const char *msg)
{
	r->refused = true;
	r->pend_status = status;
	free(r->pend_code);
	free(r->pend_msg);
	r->pend_code = sb_xstrdup(code);
	r->pend_msg = sb_xstrdup(msg);
}

/* Whether to answer a refused request before its body arrives. A reply sent early is followed
 * by a close with the body still unread, which the kernel turns into a reset that many clients
 * see instead of the reply (curl: "send failure"). So a body we can afford to swallow is read
 * and dropped first, and the reply then arrives whole; only an unauthenticated request or a
 * body beyond DISCARD_MAX is cut short. */
static bool refuse_before_body(sbs_req *r)
{
	const char *cl = sbs_req_header(r, "Content-Length");
	const char *te = sbs_req_header(r, "Transfer-Encoding");
	if (!te && (!cl || strcmp(cl, "0") == 0))
		return false; /* no body: the reply goes at the end as usual */
	if (r->pend_status == 401)
		return true;
	int64_t n = 0;
	sb_err *e = cl ? sb_parse_int64(cl, 0, INT64_MAX, &n) : NULL;
	bool big = e || (cl && (uint64_t)n > DISCARD_MAX);
	sb_err_free(e);
	return big;
}

static void send_refusal(sbs_req *r)
{
	sbs_reply_error(r, r->pend_status, r->pend_code, "%s", r->pend_msg);
}

/* First call: everything that can be decided from the request line and headers. */
static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
	(void)kind;
	*(size_t *)cls += strlen(key) + 2 + (value ? strlen(value) : 0) + 2; /* "k: v\r\n" */
	return MHD_YES;
}

static void begin(sbs_req *r, const char *method)
{
	sbs_server *srv = r->srv;
	r->method = sb_xstrdup(method);
	/* The limit /v1/health advertises is the one enforced (MHD's own bound is the connection
	 * memory, twice as large): request line plus header fields. */
	size_t hbytes = strlen(method) + 1 + strlen(r->raw_target) + 11;
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_header_size, &hbytes);
	if (hbytes > srv->limits.max_header_bytes) {
		char *m = sb_strfmt("request headers of %zu bytes exceed the limit of %zu", hbytes,
		                    srv->limits.max_header_bytes);
		r->path = sb_xstrdup(r->raw_target);
		refuse(r, 431, "request_header_fields_too_large", m);
		free(m);
		return;
	}
	const char *q = strchr(r->raw_target, '?');
	size_t plen = q ? (size_t)(q - r->raw_target) : strlen(r->raw_target);
	char *raw_path = sb_xstrndup(r->raw_target, plen);
	sb_buf dp = SB_BUF_INIT;
	sb_err *path_err = sb_url_decode(raw_path, plen, false, &dp);
	r->path = sb_buf_steal(&dp, NULL);
	if (!path_err && q)
		path_err = sb_query_parse(q + 1, strlen(q + 1), &r->query);
	if (!path_err) {
		r->matched = sbs_router_match(srv->router, method, raw_path, &r->match, &path_err);
	}
	free(raw_path);

	if (!(r->matched && (r->match.flags & SBS_ROUTE_NOAUTH))) {
		sb_err *aerr = sbs_auth_check_headers(srv->auth, method, r->raw_target, header_cb,
		                                      r, sb_wall_ms() / 1000, &r->auth);
		if (aerr) {
			sbs_metrics_auth_failure(srv->metrics);
			/* Paperclip's bridge routes answer in the bridge's own words (bridge spec
			 * §2.2); the native routes say precisely what was wrong. */
			bool bridge = sb_str_has_prefix(r->raw_target, "/api/paperclip-sandbox/");
			refuse(r, 401, "unauthorized",
			       bridge ? "Missing or invalid bridge bearer token." : aerr->msg);
			sb_err_free(aerr);
			sb_err_free(path_err);
			return;
		}
	}
	if (path_err) {
		refuse(r, 400, "invalid_request", path_err->msg);
		sb_err_free(path_err);
		return;
	}
	if (!r->matched) {
		char *m = sb_strfmt("no route for %s %s", method, r->path);
		if (r->match.path_matched)
			refuse(r, 405, "method_not_allowed", m);
		else
			refuse(r, 404, "not_found", m);
		free(m);
		return;
	}
	const char *cl = sbs_req_header(r, "Content-Length");
	uint64_t limit = (r->match.flags & SBS_ROUTE_BODY_SPOOL) ? srv->limits.max_upload_bytes
	                                                         : srv->limits.max_json_bytes;
	if (cl) {
		int64_t n = 0;
		sb_err *e = sb_parse_int64(cl, 0, INT64_MAX, &n);
		if (e) {
			sb_err_free(e);
		} else if ((uint64_t)n > limit) {
			char *m = sb_strfmt("request body of %lld bytes exceeds the limit of %llu",
			                    (long long)n, (unsigned long long)limit);
			refuse(r, 413, "payload_too_large", m);
			free(m);
			return;
		}
	}
	if (r->auth.hmac)
		r->hash = sb_sha256_new();
	if (r->match.flags & SBS_ROUTE_BODY_SPOOL) {
		sb_err *e = sb_fs_tmpfile(srv->tmp_dir, &r->spool_fd);
		if (e) {
			refuse(r, 500, "internal_error", e->msg);
			sb_err_free(e);
		}
	}
}

static void body_chunk(sbs_req *r, const char *data, size_t n)
{
	if (r->refused) {
		r->discarded += n;
		return;
	}
	if (r->hash)
		sb_sha256_update(r->hash, data, n);
	unsigned flags = r->match.flags;
	uint64_t limit = (flags & SBS_ROUTE_BODY_SPOOL) ? r->srv->limits.max_upload_bytes
	                                                : r->srv->limits.max_json_bytes;
	if (r->body_size + n > limit) {
		char *m = sb_strfmt("request body exceeds the limit of %llu bytes",
		                    (unsigned long long)limit);
		refuse(r, 413, "payload_too_large", m);
		free(m);
		return;
	}
	r->body_size += n;
	if (flags & SBS_ROUTE_BODY_SPOOL) {
		sb_err *e = sb_write_all(r->spool_fd, data, n);
		if (e) {
			/* the descriptor's number tells a client nothing: name the directory (a
			 * full disk is the usual cause) */
			e = sb_err_prefix(e, "spooling the request body in %s", r->srv->tmp_dir);
			refuse(r, 500, "internal_error", e->msg);
			sb_err_free(e);
		}
	} else if (flags & SBS_ROUTE_BODY_JSON) {
		sb_buf_append(&r->body, data, n);
	}
	/* Other routes take no body: it is hashed (HMAC binds it) and dropped. */
}

static void finish(sbs_req *r)
{
	if (r->refused) {
		send_refusal(r);
		return;
	}
	if (r->hash) {
		unsigned char d[SB_SHA256_LEN];
		sb_sha256_final(r->hash, d);
		sb_err *e = sbs_auth_check_body(&r->auth, d);
		if (e) {
			sbs_metrics_auth_failure(r->srv->metrics);
			sbs_reply_error(r, 401, "unauthorized", "%s", e->msg);
			sb_err_free(e);
			return;
		}
	}
	if (r->spool_fd >= 0 && lseek(r->spool_fd, 0, SEEK_SET) < 0) {
		sbs_reply_error(r, 500, "internal_error", "rewinding the upload: %s",
		                strerror(errno));
		return;
	}
	r->match.h(r, r->match.ud);
	if (r->phase != SBS_REQ_REPLIED) {
		sb_error("handler for %s %s queued no reply", r->method, r->path);
		sbs_reply_error(r, 500, "internal_error", "the handler produced no reply");
	}
}

enum MHD_Result sbs_http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
	(void)url;
	(void)version;
	sbs_req *r = *con_cls;
	if (!r) {
		r = sbs_http_uri_log(cls, url, conn);
		*con_cls = r;
	}
	if (r->phase == SBS_REQ_NEW) {
		begin(r, method);
		assert(r->phase == SBS_REQ_NEW); /* begin() only records a refusal */
		r->phase = SBS_REQ_BODY;
		if (r->refused && *upload_data_size == 0 && refuse_before_body(r)) {
			send_refusal(r);
			return MHD_YES;
		}
		return MHD_YES;
	}
	if (r->phase == SBS_REQ_REPLIED) {
		/* Reply queued early; MHD may still pass the body: drop it. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		body_chunk(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		if (r->refused && r->discarded > DISCARD_MAX)
			return MHD_NO;
		return MHD_YES;
	}
	finish(r);
	return MHD_YES;
}
