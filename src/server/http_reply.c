/* Replies to a request: whole bodies (bytes, JSON, errors with their status mapping, files),
 * streamed bodies pulled by libmicrohttpd, and the SSE writer. Each holds the request's
 * reference until libmicrohttpd frees the response, so the access log counts every byte sent. */
#include "http_req.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------------ replies */

static void queue(sbs_req *r, unsigned status, struct MHD_Response *resp, const char *ctype)
{
	if (!resp) {
		sb_error("cannot create a response for %s %s", r->method, r->path);
		r->phase = SBS_REQ_REPLIED;
		return;
	}
	if (ctype)
		MHD_add_response_header(resp, "Content-Type", ctype);
	bool retry_after = false;
	for (size_t i = 0; i < r->nhdrs; i++) {
		MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
		retry_after = retry_after || strcasecmp(r->hdrs[i].name, "Retry-After") == 0;
	}
	/* Every 503 says when to come back (docs/api.md): the conditions are all short-lived. */
	if (status == 503 && !retry_after)
		MHD_add_response_header(resp, "Retry-After", "1");
	/* A client that has not authenticated may not keep a connection (and its thread) open:
	 * the gate only holds connections still sending their first request. */
	if (r->srv->draining || status == 401)
		MHD_add_response_header(resp, "Connection", "close");
	r->status = status;
	if (MHD_queue_response(r->conn, status, resp) != MHD_YES)
		sb_warn("could not queue the %u reply to %s %s", status, r->method, r->path);
	MHD_destroy_response(resp);
	r->phase = SBS_REQ_REPLIED;
}

void sbs_reply_bytes(sbs_req *r, unsigned status, const char *content_type, const void *p, size_t n)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(n, (void *)p, MHD_RESPMEM_MUST_COPY);
	atomic_fetch_add(&r->bytes_out, n);
	queue(r, status, resp, content_type);
}

void sbs_reply_json(sbs_req *r, unsigned status, json_t *body)
{
	char *s = sb_json_dumps(body);
	json_decref(body);
	size_t n = strlen(s);
	/* A trailing newline makes `curl` output readable; JSON parsers ignore it. */
	s = sb_xrealloc(s, n + 2);
	s[n] = '\n';
	s[n + 1] = '\0';
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(n + 1, s, MHD_RESPMEM_MUST_FREE);
	atomic_fetch_add(&r->bytes_out, n + 1);
	queue(r, status, resp, "application/json");
}

static void reply_verror(sbs_req *r, unsigned status, const char *code, json_t *details,
                         const char *fmt, va_list ap) SB_PRINTF(5, 0);

static void reply_verror(sbs_req *r, unsigned status, const char *code, json_t *details,
                         const char *fmt, va_list ap)
{
	sb_buf msg = SB_BUF_INIT;
	sb_buf_vappendf(&msg, fmt, ap);
	json_t *j = json_object();
	json_object_set_new(j, "error", json_string(code));
	json_object_set_new(j, "message", json_string(sb_buf_cstr(&msg)));
	if (details)
		json_object_set_new(j, "details", details);
	sb_buf_deinit(&msg);
	sbs_reply_json(r, status, j);
}

void sbs_reply_error(sbs_req *r, unsigned status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply_verror(r, status, code, NULL, fmt, ap);
	va_end(ap);
}

void sbs_reply_error_details(sbs_req *r, unsigned status, const char *code, json_t *details,
                             const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply_verror(r, status, code, details, fmt, ap);
	va_end(ap);
}

unsigned sbs_err_status(const sb_err *err, const char **code)
{
	switch (err->code) {
	case SB_E_INVAL:
		*code = "invalid_request";
		return 400;
	case SB_E_ESCAPE:
		*code = "invalid_request";
		return 400;
	case SB_E_NOTFOUND:
		*code = "not_found";
		return 404;
	case SB_E_EXISTS:
		*code = "conflict";
		return 409;
	case SB_E_CONFLICT:
		*code = "conflict";
		return 409;
	case SB_E_STATE_LOST:
		*code = "sandbox_state_lost";
		return 409;
	case SB_E_TOO_LARGE:
		*code = "payload_too_large";
		return 413;
	case SB_E_FILE_TOO_LARGE:
		*code = "payload_too_large";
		return 413;
	case SB_E_SPAWN:
		*code = "spawn_failed";
		return 400;
	case SB_E_AUTH:
		*code = "unauthorized";
		return 401;
	case SB_E_BUSY:
		*code = "busy";
		return 503;
	case SB_E_UNSUPPORTED:
		*code = "unsupported";
		return 501;
	default:
		*code = "internal_error";
		return 500;
	}
}

void sbs_reply_err(sbs_req *r, sb_err *err)
{
	const char *code;
	unsigned st = sbs_err_status(err, &code);
	if (st >= 500)
		sb_warn("%s %s: %s", r->method, r->path, err->msg);
	sbs_reply_error(r, st, code, "%s", err->msg);
	sb_err_free(err);
}

void sbs_reply_fd(sbs_req *r, unsigned status, const char *content_type, int fd, uint64_t size)
{
	struct MHD_Response *resp = MHD_create_response_from_fd64(size, fd);
	if (!resp) {
		close(fd);
		sbs_reply_error(r, 500, "internal_error", "cannot create a file response");
		return;
	}
	atomic_fetch_add(&r->bytes_out, size);
	sbs_metrics_bytes_streamed(r->srv->metrics, SBS_STREAM_FILE, size);
	queue(r, status, resp, content_type);
}

typedef struct stream_ctx {
	sbs_req *r;
	sbs_stream_kind kind; /* for the bytes-streamed counter */
	sbs_stream_fill fill;
	void *ud;
	void (*free_ud)(void *ud);
} stream_ctx;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	stream_ctx *c = cls;
	for (;;) {
		ssize_t n = c->fill(c->ud, buf, max);
		if (n > 0) {
			atomic_fetch_add(&c->r->bytes_out, (uint64_t)n);
			sbs_metrics_bytes_streamed(c->r->srv->metrics, c->kind, (uint64_t)n);
			return n;
		}
		if (n == -1)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (n < -1)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		/* 0: the filler waited a while without data; thread-per-connection MHD must not
		 * get 0 back (it would spin), so ask again, unless the daemon drains: then the
		 * stream is cut (a chunked body without its end tells the client it was
		 * interrupted). */
		if (c->r->srv->draining)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
}

static void stream_free(void *cls)
{
	stream_ctx *c = cls;
	if (c->free_ud)
		c->free_ud(c->ud);
	sbs_http_req_unref(c->r);
	free(c);
}

void sbs_reply_stream(sbs_req *r, unsigned status, const char *content_type, sbs_stream_fill fill,
                      void *ud, void (*free_ud)(void *ud))
{
	stream_ctx *c = sb_xcalloc(1, sizeof *c);
	c->r = r;
	c->kind = strcmp(content_type, "text/event-stream") == 0  ? SBS_STREAM_SSE
	          : strcmp(content_type, "application/json") == 0 ? SBS_STREAM_JSON
	                                                          : SBS_STREAM_FILE;
	c->fill = fill;
	c->ud = ud;
	c->free_ud = free_ud;
	atomic_fetch_add(&r->refs, 1);
	struct MHD_Response *resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, SBS_HTTP_POOL_MIN / 2, stream_reader, c, stream_free);
	if (!resp) {
		stream_free(c);
		sbs_reply_error(r, 500, "internal_error", "cannot create a stream response");
		return;
	}
	queue(r, status, resp, content_type);
}

/* ------------------------------------------------------------------ SSE */

struct sbs_sse {
	sbs_server *srv;
	sb_buf buf;
	size_t pos;
	int64_t last_ms; /* last time anything was queued */
	bool done;
	bool aborted; /* cut the stream: the client must not take it for complete */
	bool partial; /* an event is half written (sbs_sse_raw): no keepalive may cut in */
	sbs_sse_step step;
	void *ud;
	void (*free_ud)(void *ud);
};

void sbs_sse_event(sbs_sse *s, const char *type, const char *id, json_t *data)
{
	char *d = sb_json_dumps(data);
	json_decref(data);
	sb_buf_appendf(&s->buf, "event: %s\n", type);
	if (id)
		sb_buf_appendf(&s->buf, "id: %s\n", id);
	sb_buf_appendf(&s->buf, "data: %s\n\n", d);
	free(d);
	s->last_ms = sb_mono_ms();
}

void sbs_sse_comment(sbs_sse *s, const char *text)
{
	sb_buf_appendf(&s->buf, ": %s\n\n", text);
	s->last_ms = sb_mono_ms();
}

void sbs_sse_raw(sbs_sse *s, const void *data, size_t len)
{
	sb_buf_append(&s->buf, data, len);
	s->last_ms = sb_mono_ms();
	const char *d = data;
	s->partial = !(len >= 2 && d[len - 2] == '\n' && d[len - 1] == '\n');
}

void sbs_sse_abort(sbs_sse *s)
{
	s->aborted = true;
	s->done = true;
}

bool sbs_sse_draining(const sbs_sse *s)
{
	return s->srv->draining != 0;
}

size_t sbs_sse_pending(const sbs_sse *s)
{
	return s->buf.len - s->pos;
}

/* The longest a step may block: short enough to notice a drain promptly. */
#define SSE_STEP_MAX_MS 500

static ssize_t sse_fill(void *ud, char *out, size_t max)
{
	sbs_sse *s = ud;
	if (s->aborted)
		return -2;
	while (s->pos >= s->buf.len) {
		sb_buf_clear(&s->buf);
		s->pos = 0;
		if (s->done || s->srv->draining)
			return s->partial ? -2 : -1; /* a half event must not look complete */
		int64_t ka = s->srv->limits.keepalive_ms;
		int64_t left = s->last_ms + ka - sb_mono_ms();
		if (left <= 0 && !s->partial) {
			sbs_sse_comment(s, "keepalive");
			break;
		}
		int64_t wait = left < SSE_STEP_MAX_MS ? (left > 0 ? left : 0) : SSE_STEP_MAX_MS;
		if (!s->step(s->ud, s, wait))
			s->done = true;
		if (s->aborted)
			return -2;
	}
	size_t n = s->buf.len - s->pos;
	if (n > max)
		n = max;
	memcpy(out, s->buf.data + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

static void sse_free(void *ud)
{
	sbs_sse *s = ud;
	if (s->free_ud)
		s->free_ud(s->ud);
	sb_buf_deinit(&s->buf);
	free(s);
}

void sbs_reply_sse(sbs_req *r, sbs_sse_step step, void *ud, void (*free_ud)(void *ud))
{
	sbs_sse *s = sb_xcalloc(1, sizeof *s);
	s->srv = r->srv;
	s->step = step;
	s->ud = ud;
	s->free_ud = free_ud;
	s->last_ms = sb_mono_ms();
	/* One step before the reply goes out, without waiting: what is known at once (an exec's
	 * start event) reaches the client even when a drain begins right after. */
	if (!step(ud, s, 0))
		s->done = true;
	sbs_req_add_header(r, "Cache-Control", "no-cache");
	sbs_req_add_header(r, "X-Accel-Buffering", "no");
	sbs_reply_stream(r, 200, "text/event-stream", sse_fill, s, sse_free);
}
