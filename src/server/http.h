/* The daemon's HTTP machinery, shared by every route file (native /v1 and the Paperclip bridge):
 * the router (method + path pattern -> handler), the request as handlers see it (params, query,
 * headers, body), replies (JSON, errors, files, SSE streams) and the SSE writer.
 *
 * Threads: every connection has its own thread, so a handler may block (create a sandbox, wait
 * for an exec). A handler is called once, after authentication and after the whole body was
 * received (buffered for JSON routes, spooled to an unlinked file for upload routes), and must
 * queue exactly one reply with one of the sbs_reply_* functions.
 */
#ifndef SB_SERVER_HTTP_H
#define SB_SERVER_HTTP_H

#include <sandbar/base.h>
#include "sb_json.h"

typedef struct sbs_server sbs_server;
typedef struct sbs_req sbs_req;
typedef struct sbs_router sbs_router;

typedef void (*sbs_handler)(sbs_req *r, void *ud);

/* Route flags. */
enum {
	SBS_ROUTE_NOAUTH = 1u << 0,     /* no credentials needed (GET /v1/health only) */
	SBS_ROUTE_BODY_JSON = 1u << 1,  /* body buffered up to max_json_bytes (413 beyond) */
	SBS_ROUTE_BODY_SPOOL = 1u << 2, /* body spooled to an unlinked temp file up to
	                                 * max_upload_bytes; sbs_req_body_fd() */
};

/* ------------------------------------------------------------------ router */

sbs_router *sbs_router_new(void);
void sbs_router_free(sbs_router *rt);
/* Register a route. pattern segments: literal, "{name}" (one non-empty segment) or, last only,
 * "{name...}" (the rest of the path, one or more segments, joined by '/'). Segments are matched
 * after percent-decoding; a trailing '/' on the request path is ignored. method NULL = any.
 * The first registered match wins. */
void sbs_router_add(sbs_router *rt, const char *method, const char *pattern, unsigned flags,
                    sbs_handler h, void *ud);
/* Handler for authenticated requests whose path starts with prefix but matches no route
 * (default: 404 {"error":"not_found"}). Longest prefix wins. */
void sbs_router_set_fallback(sbs_router *rt, const char *prefix, sbs_handler h, void *ud);

/* Result of matching (for the dispatcher and the fuzz target). params are decoded copies. */
#define SBS_MAX_PARAMS 8
/* The least memory pool of a connection (libmicrohttpd's CONNECTION_MEMORY_LIMIT), which also
 * holds a streamed response's write buffer. */
#define SBS_HTTP_POOL_MIN (256u * 1024u)
typedef struct sbs_match {
	sbs_handler h;
	void *ud;
	unsigned flags;
	bool path_matched; /* some route matched the path but not the method */
	size_t nparams;
	const char *names[SBS_MAX_PARAMS];
	char *values[SBS_MAX_PARAMS];
} sbs_match;

/* Match a raw (still percent-encoded) path without its query. Returns true when a route (or a
 * fallback) was found. SB_E_INVAL in *err for a malformed path (bad escape, NUL, "." or ".."
 * segments). Free with sbs_match_deinit. */
bool sbs_router_match(const sbs_router *rt, const char *method, const char *raw_path, sbs_match *m,
                      sb_err **err);
void sbs_match_deinit(sbs_match *m);
/* Does a match name (pattern text after '{': "id}" or "path...}") name parameter `name`? */
bool sbs_param_name_eq(const char *pattern_name, const char *name);

/* ------------------------------------------------------------------ the request */

sbs_server *sbs_req_server(sbs_req *r);
/* A nameless temp file in the daemon's spool directory, for a route that buffers a transfer. */
sb_err *sbs_req_spool_file(sbs_req *r, int *fd_out);
const char *sbs_req_method(sbs_req *r);
/* Decoded path (no query). */
const char *sbs_req_path(sbs_req *r);
/* A route parameter by name ("id", "path"); NULL when absent. */
const char *sbs_req_param(sbs_req *r, const char *name);
const sb_query *sbs_req_query(sbs_req *r);
const char *sbs_req_query_get(sbs_req *r, const char *key);
/* A query flag: "1", "true", "yes" or present without a value; dflt when absent. */
bool sbs_req_query_bool(sbs_req *r, const char *key, bool dflt);
/* Request header (case-insensitive name); NULL when absent. */
const char *sbs_req_header(sbs_req *r, const char *name);
/* True when the Accept header asks for text/event-stream. */
bool sbs_req_wants_sse(sbs_req *r);
/* The buffered body (SBS_ROUTE_BODY_JSON); len 0 and "" when none. */
const char *sbs_req_body(sbs_req *r, size_t *len);
/* The body parsed as a JSON object within the configured size and depth limits; an empty body
 * gives an empty object. On error a 400 invalid_request reply has been queued and false is
 * returned: the handler just returns. *out is owned by the caller (json_decref). */
bool sbs_req_json(sbs_req *r, json_t **out);
/* The spooled body (SBS_ROUTE_BODY_SPOOL): a read-only fd positioned at 0, owned by the request,
 * and its size. */
int sbs_req_body_fd(sbs_req *r, uint64_t *size);
/* HMAC key id the request was signed with, "bearer" for the token, "" for none. */
const char *sbs_req_auth_id(sbs_req *r);
/* Lease id for the access log. */
void sbs_req_set_lease(sbs_req *r, const char *lease_id);
/* Run fn(ud) once the request is over (reply sent or connection gone), on the connection's
 * thread: for cleanup that is slow and need not delay the reply (closing an exec handle closes
 * an inotify fd, which can take milliseconds). */
void sbs_req_on_done(sbs_req *r, void (*fn)(void *ud), void *ud);
/* Add a header to the reply that will be queued. */
void sbs_req_add_header(sbs_req *r, const char *name, const char *value);

/* ------------------------------------------------------------------ replies */

/* JSON reply; steals body. */
void sbs_reply_json(sbs_req *r, unsigned status, json_t *body);
/* {"error": code, "message": ...} */
void sbs_reply_error(sbs_req *r, unsigned status, const char *code, const char *fmt, ...)
    SB_PRINTF(4, 5);
/* Same with "details" (stolen, may be NULL). */
void sbs_reply_error_details(sbs_req *r, unsigned status, const char *code, json_t *details,
                             const char *fmt, ...) SB_PRINTF(5, 6);
/* Map an sb_err to status + code (INVAL and ESCAPE 400 invalid_request, NOTFOUND 404 not_found,
 * EXISTS and CONFLICT 409 conflict, TOO_LARGE 413 payload_too_large, BUSY 503 busy, STATE_LOST
 * 409 sandbox_state_lost, SPAWN 400 spawn_failed, AUTH 401, UNSUPPORTED 501 unsupported, else
 * 500 internal_error) and reply; frees err. Every 503 reply carries Retry-After: 1. */
void sbs_reply_err(sbs_req *r, sb_err *err);
unsigned sbs_err_status(const sb_err *err, const char **code);
/* Raw bytes (copied). */
void sbs_reply_bytes(sbs_req *r, unsigned status, const char *content_type, const void *p,
                     size_t n);
/* Stream size bytes of fd from its current offset; takes ownership of fd. */
void sbs_reply_fd(sbs_req *r, unsigned status, const char *content_type, int fd, uint64_t size);

/* Streamed body of unknown length (chunked). fill writes up to max bytes into buf and returns
 * the count, 0 to wait and be called again (it may block up to a short while itself), -1 for
 * the end, -2 to abort the connection. free_ud is called once when the reply is done. */
typedef ssize_t (*sbs_stream_fill)(void *ud, char *buf, size_t max);
void sbs_reply_stream(sbs_req *r, unsigned status, const char *content_type, sbs_stream_fill fill,
                      void *ud, void (*free_ud)(void *ud));

/* ------------------------------------------------------------------ SSE */

typedef struct sbs_sse sbs_sse;

/* An SSE producer step, called on the connection's thread whenever the client can take more.
 * It may block for at most max_wait_ms (waiting for output) and appends events with
 * sbs_sse_event / sbs_sse_comment. Returns true to be called again, false when the stream is
 * complete. The writer adds ": keepalive" when keepalive_ms pass without an event and ends the
 * stream (without further events) when the server drains. */
typedef bool (*sbs_sse_step)(void *ud, sbs_sse *s, int64_t max_wait_ms);
/* Reply 200 text/event-stream (Cache-Control: no-cache, X-Accel-Buffering: no). The first step
 * runs at once (max_wait_ms 0), before the reply is queued. */
void sbs_reply_sse(sbs_req *r, sbs_sse_step step, void *ud, void (*free_ud)(void *ud));
/* "event: <type>\n[id: <id>\n]data: <compact JSON>\n\n"; steals data. id may be NULL. */
void sbs_sse_event(sbs_sse *s, const char *type, const char *id, json_t *data);
/* Raw bytes of an event being written in pieces (a large `data:` line); the producer writes the
 * "event:"/"data: " framing and the final blank line itself. */
void sbs_sse_raw(sbs_sse *s, const void *data, size_t len);
/* End the stream as cut (the connection is closed without the chunked terminator), for a
 * producer that cannot finish an event it began. */
void sbs_sse_abort(sbs_sse *s);
/* ": <text>\n\n" */
void sbs_sse_comment(sbs_sse *s, const char *text);
/* True once the server started draining: stop producing. */
bool sbs_sse_draining(const sbs_sse *s);
/* Bytes queued but not yet handed to the connection (for back-pressure in producers). */
size_t sbs_sse_pending(const sbs_sse *s);

#endif
