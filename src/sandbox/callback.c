/* The host side of the callback bridge (issue 16): a relay per lease, running in the process
 * that created or re-adopted it (the daemon, or `sandbar run`).
 *
 * The relay attaches to sandbar-init's "callback" forward (src/init/forward.c) on a connection
 * of its own; init hands it every connection made to the in-sandbox endpoint. Each connection
 * goes to a worker thread (kept for a while when idle, so a request does not pay for a thread
 * start) that reads one request (bounded), checks token (401), Host (421), route (403),
 * body size (413), JSON (415) and queue depth (503), forwards it upstream with libcurl, the
 * allowlisted headers and the credential (read here, never inside the sandbox), and writes the
 * response back binary-safe, then closes (one request per connection).
 *
 * Upstream connections are kept alive between requests: finished curl handles go back to a
 * small per-relay pool, each with its connection cache. libcurl silently resends a request
 * when a reused connection dies before any response byte arrives (Curl_retry_request, for
 * POSTs too; CURLOPT_FORBID_RETRY_ON_REUSE only exists from 8.16), so an unsafe request
 * always goes on a fresh connection (CURLOPT_FRESH_CONNECT): a resend can then never happen,
 * and a connection lost after sending is the indeterminate 409 below. Safe requests may be
 * resent: that is what makes them safe.
 *
 * Never twice: before an unsafe request goes upstream the relay marks the connection "sent" in
 * init, which holds its own copy of every connection until released. If this process dies
 * mid-request, the next relay gets the connection back from init with that mark and answers
 * 409 {"outcome":"indeterminate","retryable":false} instead of sending again; a connection
 * that was handed out but never marked is answered 503 retryable (it never reached upstream).
 */
#include "callback_int.h"
#include "sandbox_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_BYTES 32         /* >= 24 random bytes (issue 16), base64url */
#define CLIENT_IO_TIMEOUT_S 10 /* reading the request, writing the response */
#define CREDENTIAL_MAX (64u * 1024u)
#define EXTRA_WORKERS 32 /* connections read beyond the queue depth, to answer 503 */
#define CURL_POOL_MAX 8  /* idle upstream handles (and their connections) kept per relay */
#define WORKER_IDLE_S 30 /* an idle worker thread ends after this long */

struct sbcb_relay {
	pthread_mutex_t mu; /* refs, workers, inflight, sends on attach */
	int refs;
	int attach; /* connection to sandbar-init (the forward's attachment) */
	sbi_reader rd;
	int stop[2]; /* pipe: the reader thread stops when it becomes readable */
	pthread_t thread;
	bool thread_started;
	sb_callback_config *cfg;
	char *lease_id;
	char *token;
	int port;
	char *cred_header;          /* "Name: value" or NULL */
	uint32_t workers, inflight; /* connections being served (queued included), upstream calls */
	pthread_cond_t work;        /* a connection queued, or stopping */
	struct cb_conn *queue, *queue_tail;
	uint32_t threads, idle_threads, queued;
	bool stopping;
	sb_callback_stats *stats;
	CURL *idle[CURL_POOL_MAX]; /* finished handles, their connections still open */
	size_t nidle;
};

typedef struct cb_conn {
	struct sbcb_relay *r;
	struct cb_conn *next;
	int fd;
	unsigned long long id;
	bool handed;
	char state[16];
} cb_conn;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
}

static void relay_unref(struct sbcb_relay *r)
{
	pthread_mutex_lock(&r->mu);
	bool last = --r->refs == 0;
	pthread_mutex_unlock(&r->mu);
	if (!last)
		return;
	sb_close(&r->attach);
	sbi_reader_deinit(&r->rd);
	sb_close(&r->stop[0]);
	sb_close(&r->stop[1]);
	sb_callback_config_free(r->cfg);
	free(r->lease_id);
	free(r->token);
	free(r->cred_header);
	for (size_t i = 0; i < r->nidle; i++)
		curl_easy_cleanup(r->idle[i]);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->work);
	free(r);
}

static void count(struct sbcb_relay *r, int which)
{
	if (!r->stats)
		return;
	uint64_t *f = which == 0   ? &r->stats->allowed
	              : which == 1 ? &r->stats->denied
	                           : &r->stats->indeterminate;
	__atomic_add_fetch(f, 1, __ATOMIC_RELAXED);
}

/* A fire-and-forget message to init about connection id ("mark" or "release"). */
static int tell_init(struct sbcb_relay *r, const char *op, unsigned long long id, const char *state)
{
	sbi_msg m;
	sbi_msg_init(&m);
	sbi_msg_add(&m, "op", op);
	sbi_msg_add(&m, "name", SBCB_FORWARD_NAME);
	sbi_msg_addi(&m, "id", (long long)id);
	if (state)
		sbi_msg_add(&m, "state", state);
	pthread_mutex_lock(&r->mu);
	int rc = r->attach >= 0 ? sbi_send(r->attach, &m, NULL, 0) : -EPIPE;
	pthread_mutex_unlock(&r->mu);
	sbi_msg_deinit(&m);
	return rc;
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 421:
		return "Misdirected Request";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Status";
	}
}

/* Write a whole response; errors are ignored (the client went away). */
static void respond(int fd, int status, const char *headers, const void *body, size_t len,
                    bool head_only)
{
	sb_buf b = SB_BUF_INIT;
	char line[256];
	snprintf(line, sizeof line,
	         "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n", status,
	         reason(status), len);
	sb_buf_appends(&b, line);
	if (headers)
		sb_buf_appends(&b, headers);
	sb_buf_appends(&b, "\r\n");
	if (!head_only && len)
		sb_buf_append(&b, body, len);
	size_t off = 0;
	while (off < b.len) {
		ssize_t n = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	sb_buf_deinit(&b);
}

static void respond_json(int fd, int status, const char *json)
{
	respond(fd, status, "Content-Type: application/json\r\n", json, strlen(json), false);
}

static void respond_error(int fd, int status, const char *msg, bool retryable)
{
	json_t *j = json_object();
	json_object_set_new(j, "error", json_string(msg));
	if (status == 503 || status == 502)
		json_object_set_new(j, "retryable", json_boolean(retryable));
	char *s = sb_json_dumps(j);
	json_decref(j);
	respond_json(fd, status, s);
	free(s);
}

static void respond_indeterminate(int fd)
{
	respond_json(fd, 409,
	             "{\"error\":\"The outcome of this request is unknown: it may have been "
	             "applied upstream. Check before retrying.\",\"outcome\":\"indeterminate\","
	             "\"retryable\":false}");
}

/* ---- upstream */

typedef struct upstream_resp {
	sb_buf body;
	sb_buf headers; /* relayed response headers, "Name: value\r\n" each */
	size_t max;
	bool too_big;
	bool indeterminate; /* x-paperclip-bridge-outcome: indeterminate */
} upstream_resp;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	upstream_resp *u = ud;
	size_t len = size * n;
	if (u->body.len + len > u->max) {
		u->too_big = true;
		return 0;
	}
	sb_buf_append(&u->body, p, len);
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	upstream_resp *u = ud;
	size_t len = size * n;
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		u->headers.len = 0; /* a new response (after 100 Continue) */
		return len;
	}
	static const char *const keep[] = {
	    "content-type:", "etag:", "last-modified:", "location:", "cache-control:",
	    "x-request-id:", NULL};
	for (size_t i = 0; keep[i]; i++) {
		size_t kl = strlen(keep[i]);
		if (len > kl && strncasecmp(p, keep[i], kl) == 0 && len < 4096 &&
		    !memchr(p, '\0', len)) {
			sb_buf_append(&u->headers, p, len);
			if (len < 2 || p[len - 2] != '\r' || p[len - 1] != '\n') {
				/* normalise a bare LF line ending */
				while (u->headers.len &&
				       (u->headers.data[u->headers.len - 1] == '\n' ||
				        u->headers.data[u->headers.len - 1] == '\r'))
					u->headers.len--;
				sb_buf_appends(&u->headers, "\r\n");
			}
		}
	}
	const char *k = "x-paperclip-bridge-outcome:";
	if (len > strlen(k) && strncasecmp(p, k, strlen(k)) == 0) {
		const char *v = p + strlen(k);
		while (*v == ' ')
			v++;
		if ((size_t)(p + len - v) >= 13 && strncasecmp(v, "indeterminate", 13) == 0)
			u->indeterminate = true;
	}
	return len;
}

/* An upstream handle: an idle one (a live connection to reuse) or a new one. */
static CURL *handle_take(struct sbcb_relay *r)
{
	pthread_mutex_lock(&r->mu);
	CURL *h = r->nidle ? r->idle[--r->nidle] : NULL;
	pthread_mutex_unlock(&r->mu);
	return h ? h : curl_easy_init();
}

/* Back to the pool, options cleared (its connections stay open), or closed when full. */
static void handle_give(struct sbcb_relay *r, CURL *h)
{
	if (!h)
		return;
	curl_easy_reset(h);
	pthread_mutex_lock(&r->mu);
	bool kept = r->nidle < CURL_POOL_MAX;
	if (kept)
		r->idle[r->nidle++] = h;
	pthread_mutex_unlock(&r->mu);
	if (!kept)
		curl_easy_cleanup(h);
}

/* ---- one connection */

static bool read_more(int fd, sb_buf *b, size_t want)
{
	char tmp[65536];
	size_t n = want < sizeof tmp ? want : sizeof tmp;
	ssize_t got;
	do
		got = recv(fd, tmp, n, 0);
	while (got < 0 && errno == EINTR);
	if (got <= 0)
		return false;
	sb_buf_append(b, tmp, (size_t)got);
	return true;
}

static const sb_callback_route *find_route(const sb_callback_config *c, const sbcb_request *q)
{
	for (size_t i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].method, q->method) == 0 &&
		    sbcb_route_match(c->routes[i].pattern, q->path))
			return &c->routes[i];
	return NULL;
}

static bool host_ok(const struct sbcb_relay *r, const char *host)
{
	if (!host)
		return false;
	char want[300];
	snprintf(want, sizeof want, "127.0.0.1:%d", r->port);
	if (strcmp(host, want) == 0)
		return true;
	if (!r->cfg->host_name)
		return false;
	snprintf(want, sizeof want, "%s:%d", r->cfg->host_name, r->port);
	return strcasecmp(host, want) == 0 || strcasecmp(host, r->cfg->host_name) == 0;
}

static bool token_ok(const struct sbcb_relay *r, const char *auth)
{
	/* the comparison takes the same time whatever the header holds */
	const char *tok = auth && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : "";
	return sb_ct_streq(tok, r->token);
}

typedef struct outcome {
	int status;
	const char *route;
	size_t bytes_in, bytes_out;
	int kind; /* 0 allowed, 1 denied, 2 indeterminate, -1 none */
} outcome;

static void relay_upstream(struct sbcb_relay *r, cb_conn *k, const sbcb_request *q,
                           const char *body, size_t blen, outcome *o)
{
	bool unsafe = sbcb_unsafe_method(q->method);
	if (unsafe && tell_init(r, "mark", k->id, "sent") < 0) {
		/* without the mark a restart could not tell: do not send */
		respond_error(k->fd, 503, "callback bridge unavailable (sandbar-init unreachable)",
		              true);
		o->status = 503;
		o->kind = 1;
		return;
	}
	pthread_once(&curl_once, curl_init);
	CURL *h = handle_take(r);
	upstream_resp u = {SB_BUF_INIT, SB_BUF_INIT, 0, false, false};
	u.max = (size_t)(r->cfg->max_body_bytes * 6 + 65536);
	if (u.max < (16u << 20))
		u.max = 16u << 20;
	struct curl_slist *hl = NULL;
	char *url = sb_strfmt("%s%s%s", r->cfg->upstream, q->path, q->query);
	for (size_t i = 0; i < q->nheaders; i++)
		for (size_t a = 0; r->cfg->headers && r->cfg->headers[a]; a++)
			if (strcmp(q->headers[i].name, r->cfg->headers[a]) == 0) {
				char *line =
				    sb_strfmt("%s: %s", q->headers[i].name, q->headers[i].value);
				hl = curl_slist_append(hl, line);
				free(line);
			}
	if (blen > 0 && !sbcb_header_get(q, "content-type"))
		hl = curl_slist_append(hl, "Content-Type:");
	hl = curl_slist_append(hl, "Expect:");
	if (!sbcb_header_get(q, "accept"))
		hl = curl_slist_append(hl, "Accept:"); /* not curl's default either */
	if (r->cred_header)
		hl = curl_slist_append(hl, r->cred_header);
	CURLcode rc = CURLE_OUT_OF_MEMORY;
	long status = 0;
	long req_size = 0;
	if (h) {
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)r->cfg->timeout_ms);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
		                 (long)(r->cfg->timeout_ms < 10000 ? r->cfg->timeout_ms : 10000));
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &u);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, &u);
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
		/* never on a reused connection: libcurl would resend it if that one was dead */
		curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, unsafe ? 1L : 0L);
		if (strcmp(q->method, "HEAD") == 0) {
			curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		} else if (strcmp(q->method, "GET") != 0 || blen > 0) {
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
			if (blen > 0 || strcmp(q->method, "POST") == 0 ||
			    strcmp(q->method, "PUT") == 0 || strcmp(q->method, "PATCH") == 0) {
				curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
				curl_easy_setopt(h, CURLOPT_POSTFIELDS, blen ? body : "");
			}
		}
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &req_size);
	}
	bool never_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	                  rc == CURLE_OUT_OF_MEMORY || rc == CURLE_UNSUPPORTED_PROTOCOL ||
	                  rc == CURLE_URL_MALFORMAT || (rc != CURLE_OK && req_size == 0);
	o->bytes_in = blen;
	if (rc == CURLE_OK && !u.indeterminate) {
		respond(k->fd, (int)status, u.headers.len ? sb_buf_cstr(&u.headers) : NULL,
		        u.body.data, u.body.len, strcmp(q->method, "HEAD") == 0);
		o->status = (int)status;
		o->bytes_out = u.body.len;
		o->kind = 0;
	} else if (unsafe && !never_sent) {
		respond_indeterminate(k->fd);
		o->status = 409;
		o->kind = 2;
	} else if (rc == CURLE_OK) {
		/* a safe request the upstream itself calls indeterminate */
		respond_error(k->fd, 502, "upstream reported an indeterminate outcome", true);
		o->status = 502;
		o->kind = 0;
	} else {
		char msg[512];
		snprintf(msg, sizeof msg, "upstream %s: %s", never_sent ? "unreachable" : "failed",
		         u.too_big ? "response too large" : curl_easy_strerror(rc));
		int st = never_sent ? 503 : rc == CURLE_OPERATION_TIMEDOUT ? 504 : 502;
		respond_error(k->fd, st, msg, true);
		o->status = st;
		o->kind = never_sent ? 1 : 0;
	}
	if (rc != CURLE_OK)
		sb_warn("callback lease %s: %s %s: %s", r->lease_id, q->method, q->path,
		        curl_easy_strerror(rc));
	curl_slist_free_all(hl);
	if (rc == CURLE_OK)
		handle_give(r, h);
	else if (h)
		curl_easy_cleanup(h); /* whatever state its connection is in, drop it */
	free(url);
	sb_buf_deinit(&u.body);
	sb_buf_deinit(&u.headers);
}

static void serve(struct sbcb_relay *r, cb_conn *k, outcome *o, sbcb_request *q)
{
	if (k->handed && strcmp(k->state, "sent") == 0) {
		/* a previous relay sent it upstream and died before answering */
		respond_indeterminate(k->fd);
		o->status = 409;
		o->kind = 2;
		return;
	}
	if (k->handed) {
		respond_error(k->fd, 503,
		              "callback bridge restarted while reading this request; it was not "
		              "sent upstream",
		              true);
		o->status = 503;
		o->kind = 1;
		return;
	}
	struct timeval tv = {CLIENT_IO_TIMEOUT_S, 0};
	setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	sb_buf b = SB_BUF_INIT;
	size_t hlen = 0;
	while (!(hlen = sbcb_head_len(b.data ? b.data : "", b.len))) {
		if (b.len > SBCB_HEAD_MAX) {
			respond_error(k->fd, 431, "request head too large", false);
			o->status = 431;
			o->kind = 1;
			goto out;
		}
		if (!read_more(k->fd, &b, SBCB_HEAD_MAX + 1 - b.len))
			goto out; /* gone or silent: nothing to answer */
	}
	const char *why = NULL;
	int st = sbcb_parse_head(b.data, hlen, q, &why);
	o->kind = 1;
	if (st) {
		respond_error(k->fd, st, why, false);
		o->status = st;
		goto out;
	}
	if (!token_ok(r, sbcb_header_get(q, "authorization"))) {
		respond_json(k->fd, 401, "{\"error\":\"Invalid bridge token.\"}");
		o->status = 401;
		goto out;
	}
	if (!host_ok(r, sbcb_header_get(q, "host"))) {
		char msg[160];
		snprintf(msg, sizeof msg,
		         "Misdirected request: the Host header must be 127.0.0.1:%d", r->port);
		respond_error(k->fd, 421, msg, false);
		o->status = 421;
		goto out;
	}
	const sb_callback_route *route = find_route(r->cfg, q);
	if (!route) {
		char *msg = sb_strfmt("Route not allowed: %s %s", q->method, q->path);
		respond_error(k->fd, 403, msg, false);
		free(msg);
		o->status = 403;
		goto out;
	}
	o->route = route->pattern;
	uint64_t clen = q->has_length ? q->content_length : 0;
	if (clen > r->cfg->max_body_bytes) {
		char msg[160];
		snprintf(msg, sizeof msg, "request body of %llu bytes is over the limit of %llu",
		         (unsigned long long)clen, (unsigned long long)r->cfg->max_body_bytes);
		respond_error(k->fd, 413, msg, false);
		o->status = 413;
		goto out;
	}
	const char *ct = sbcb_header_get(q, "content-type");
	if (clen > 0 && !route->any_body && (!ct || !sbcb_is_json_type(ct))) {
		respond_error(k->fd, 415,
		              "the callback bridge relays JSON bodies only "
		              "(Content-Type: application/json) on this route",
		              false);
		o->status = 415;
		goto out;
	}
	while (b.len - hlen < clen)
		if (!read_more(k->fd, &b, (size_t)(clen - (b.len - hlen)))) {
			respond_error(k->fd, 400, "request body shorter than its Content-Length",
			              false);
			o->status = 400;
			goto out;
		}
	pthread_mutex_lock(&r->mu);
	bool slot = r->inflight < r->cfg->queue_depth;
	if (slot)
		r->inflight++;
	pthread_mutex_unlock(&r->mu);
	if (!slot) {
		respond_error(k->fd, 503, "callback queue full; retry later", true);
		o->status = 503;
		goto out;
	}
	relay_upstream(r, k, q, b.data + hlen, (size_t)clen, o);
	pthread_mutex_lock(&r->mu);
	r->inflight--;
	pthread_mutex_unlock(&r->mu);
out:
	sb_buf_deinit(&b);
}

static void conn_serve(cb_conn *k)
{
	struct sbcb_relay *r = k->r;
	int64_t t0 = sb_mono_ms();
	outcome o = {0, NULL, 0, 0, -1};
	sbcb_request q;
	memset(&q, 0, sizeof q);
	serve(r, k, &o, &q);
	if (o.kind >= 0) {
		count(r, o.kind);
		sb_info("callback lease=%s %s %s route=%s status=%d bytes_in=%zu bytes_out=%zu "
		        "ms=%lld",
		        r->lease_id, q.method[0] ? q.method : "-", q.path ? q.path : "-",
		        o.route ? o.route : "-", o.status, o.bytes_in, o.bytes_out,
		        (long long)(sb_mono_ms() - t0));
	}
	sbcb_request_deinit(&q);
	close(k->fd);
	tell_init(r, "release", k->id, NULL);
	pthread_mutex_lock(&r->mu);
	r->workers--;
	pthread_mutex_unlock(&r->mu);
	free(k);
}

/* A worker: serves queued connections; ends when idle for WORKER_IDLE_S or when the relay
 * stops with nothing queued. Holds a reference on the relay. */
static void *worker_main(void *arg)
{
	struct sbcb_relay *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->queue && !r->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += WORKER_IDLE_S;
			r->idle_threads++;
			int rc = pthread_cond_timedwait(&r->work, &r->mu, &ts);
			r->idle_threads--;
			if (rc == ETIMEDOUT && !r->queue)
				goto end;
		}
		cb_conn *k = r->queue;
		if (!k)
			break; /* stopping */
		r->queue = k->next;
		r->queued--;
		if (!r->queue)
			r->queue_tail = NULL;
		pthread_mutex_unlock(&r->mu);
		conn_serve(k);
		pthread_mutex_lock(&r->mu);
	}
end:
	r->threads--;
	pthread_mutex_unlock(&r->mu);
	relay_unref(r);
	return NULL;
}

static void conn_arrived(struct sbcb_relay *r, const sbi_msg *m, int fd)
{
	long long id = 0, handed = 0;
	if (sbi_msg_geti(m, "id", 1, (long long)(~0ull >> 1), &id) < 0) {
		close(fd);
		return;
	}
	sbi_msg_geti(m, "handed", 0, 1, &handed);
	cb_conn *k = sb_xcalloc(1, sizeof *k);
	k->r = r;
	k->fd = fd;
	k->id = (unsigned long long)id;
	k->handed = handed != 0;
	const char *st = sbi_msg_get(m, "state");
	snprintf(k->state, sizeof k->state, "%s", st ? st : "");
	pthread_mutex_lock(&r->mu);
	bool room = r->workers < r->cfg->queue_depth + EXTRA_WORKERS;
	/* a thread per connection being served, started only when none is idle */
	bool spawn = room && r->queued >= r->idle_threads;
	if (spawn) {
		r->threads++;
		r->refs++;
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&a, 256 * 1024);
		if (pthread_create(&t, &a, worker_main, r) != 0) {
			r->threads--;
			r->refs--;
			room = r->threads > 0; /* the running ones will get to it */
		}
		pthread_attr_destroy(&a);
	}
	if (room) {
		r->workers++;
		if (r->queue_tail)
			r->queue_tail->next = k;
		else
			r->queue = k;
		r->queue_tail = k;
		r->queued++;
		pthread_cond_signal(&r->work);
	}
	pthread_mutex_unlock(&r->mu);
	if (room)
		return;
	/* too many connections at once: answer without reading (the client may see a reset) */
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	respond_error(fd, 503, "callback queue full; retry later", true);
	count(r, 1);
	close(fd);
	tell_init(r, "release", k->id, NULL);
	free(k);
}

static void on_conn(void *ud, const sbi_msg *m, int fd)
{
	conn_arrived(ud, m, fd);
}

static void *reader_main(void *arg)
{
	struct sbcb_relay *r = arg;
	if (!sb_ctl_forward_loop(r->attach, &r->rd, r->stop[0], on_conn, r))
		sb_warn("callback lease %s: sandbar-init closed the bridge's channel; the "
		        "callback endpoint stops answering",
		        r->lease_id);
	return NULL;
}

/* ---- setup, resume, stop */

static sb_err *read_credential(const char *ref, const char *lease, char **out)
{
	*out = NULL;
	if (!ref)
		return NULL;
	if (strncmp(ref, "env:", 4) == 0) {
		const char *v = getenv(ref + 4);
		if (!v || !*v)
			return sb_err_new(
			    SB_E_INVAL,
			    "callback of lease %s: the credential %s is not set in this "
			    "process's environment",
			    lease, ref);
		*out = sb_xstrdup(v);
		return NULL;
	}
	if (strncmp(ref, "file:", 5) == 0) {
		sb_buf b = SB_BUF_INIT;
		sb_err *err = sb_read_file(ref + 5, CREDENTIAL_MAX, &b);
		if (err) {
			sb_buf_deinit(&b);
			return sb_err_prefix(err, "callback of lease %s: reading the credential",
			                     lease);
		}
		while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
			b.data[--b.len] = '\0';
		*out = sb_xstrdup(sb_buf_cstr(&b));
		sb_buf_deinit(&b);
		return NULL;
	}
	return sb_err_new(SB_E_INVAL,
	                  "callback of lease %s: credential \"%s\" must be env:VAR or file:PATH",
	                  lease, ref);
}

static void set_env(sb_sandbox *sb, const sb_callback_config *c, const char *token, int port)
{
	sb_strv_free(sb->cb_env);
	sb->cb_env = NULL;
	free(sb->cb_url);
	sb->cb_url = c->host_name ? sb_strfmt("http://%s:%d", c->host_name, port)
	                          : sb_strfmt("http://127.0.0.1:%d", port);
	char *v = sb_strfmt("SANDBAR_CALLBACK_URL=%s", sb->cb_url);
	sb_strv_push(&sb->cb_env, v);
	free(v);
	v = sb_strfmt("SANDBAR_CALLBACK_TOKEN=%s", token);
	sb_strv_push(&sb->cb_env, v);
	free(v);
	if (c->paperclip) {
		v = sb_strfmt("PAPERCLIP_API_URL=%s", sb->cb_url);
		sb_strv_push(&sb->cb_env, v);
		free(v);
		v = sb_strfmt("PAPERCLIP_BRIDGE_TOKEN=%s", token);
		sb_strv_push(&sb->cb_env, v);
		free(v);
	}
	/* proxies (#14) never see loopback or the bridge's name */
	char *np = sb_strfmt("localhost,127.0.0.1,::1%s%s", c->host_name ? "," : "",
	                     c->host_name ? c->host_name : "");
	v = sb_strfmt("NO_PROXY=%s", np);
	sb_strv_push(&sb->cb_env, v);
	free(v);
	v = sb_strfmt("no_proxy=%s", np);
	sb_strv_push(&sb->cb_env, v);
	free(v);
	free(np);
}

static sb_err *relay_start(sb_sandbox *sb, const sb_sandbox_config *cfg, sb_callback_config *c,
                           const char *token, int port, struct sbcb_relay **out)
{
	struct sbcb_relay *r = sb_xcalloc(1, sizeof *r);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->work, NULL);
	r->refs = 1;
	r->attach = r->stop[0] = r->stop[1] = -1;
	sbi_reader_init(&r->rd);
	r->cfg = c;
	r->lease_id = sb_xstrdup(sb->id);
	r->token = sb_xstrdup(token);
	r->stats = cfg ? cfg->callback_stats : NULL;
	char *cred = NULL;
	sb_err *err = read_credential(c->credential, sb->id, &cred);
	if (err)
		goto fail;
	if (cred) {
		bool bearer =
		    !c->credential_header || strcasecmp(c->credential_header, "authorization") == 0;
		r->cred_header = bearer ? sb_strfmt("Authorization: Bearer %s", cred)
		                        : sb_strfmt("%s: %s", c->credential_header, cred);
		memset(cred, 0, strlen(cred));
		free(cred);
	}
	if (pipe2(r->stop, O_CLOEXEC) < 0) {
		err = sb_err_sys(errno, "callback of lease %s: pipe", sb->id);
		goto fail;
	}
	err = sb_ctl_listen(sb, SBCB_FORWARD_NAME, port, "starting the callback endpoint",
	                    &r->attach, &r->rd, &r->port);
	if (err)
		goto fail;
	int rc = pthread_create(&r->thread, NULL, reader_main, r);
	if (rc) {
		err = sb_err_sys(rc, "callback of lease %s: starting the relay thread", sb->id);
		goto fail;
	}
	r->thread_started = true;
	*out = r;
	return NULL;
fail:
	r->cfg = NULL; /* the caller's */
	relay_unref(r);
	return err;
}

sb_err *sb_callback_hosts_fd(const char *rootfs, const char *name, int *out)
{
	*out = -1;
	char *path = sb_strfmt("%s/etc/hosts", rootfs ? rootfs : "");
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 1u << 20, &b);
	free(path);
	if (err && err->sys_errno == ENOENT) {
		sb_err_free(err);
		err = NULL;
		sb_buf_appends(&b, "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
	}
	if (err) {
		sb_buf_deinit(&b);
		return sb_err_prefix(err, "/etc/hosts for the callback bridge");
	}
	if (b.len && b.data[b.len - 1] != '\n')
		sb_buf_appends(&b, "\n");
	char *line = sb_strfmt("127.0.0.1\t%s\n", name);
	sb_buf_appends(&b, line);
	free(line);
	int fd = memfd_create("hosts", MFD_CLOEXEC);
	if (fd < 0)
		err = sb_err_sys(errno, "memfd for /etc/hosts");
	else if ((err = sb_write_all(fd, b.data, b.len)) || lseek(fd, 0, SEEK_SET) < 0) {
		err = err ? err : sb_err_sys(errno, "rewinding /etc/hosts");
		close(fd);
	} else {
		*out = fd;
	}
	sb_buf_deinit(&b);
	return err;
}

static char *state_path(const sb_sandbox *sb)
{
	return sb_strfmt("%s/callback.json", sb->run_dir);
}

sb_err *sb_callback_setup(sb_sandbox *sb, const sb_sandbox_config *cfg, const sb_callback_config *c)
{
	unsigned char raw[TOKEN_BYTES];
	sb_err *err = sb_random_bytes(raw, sizeof raw);
	if (err)
		return err;
	sb_buf tb = SB_BUF_INIT;
	sb_b64_encode(raw, sizeof raw, &tb);
	/* base64url, unpadded: safe in a header and a URL */
	char *token = sb_xstrdup(sb_buf_cstr(&tb));
	sb_buf_deinit(&tb);
	for (char *p = token; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	char *eq = strchr(token, '=');
	if (eq)
		*eq = '\0';
	char *cj = sbcb_config_dump(c);
	sb_callback_config *copy = NULL;
	if ((err = sbcb_config_load(cj, strlen(cj), &copy)))
		goto out;
	struct sbcb_relay *r = NULL;
	if ((err = relay_start(sb, cfg, copy, token, 0, &r)))
		goto out;
	sb->cb_relay = r;
	copy = NULL;
	json_t *st = json_object();
	json_object_set_new(st, "config", json_loads(cj, 0, NULL));
	json_object_set_new(st, "token", json_string(token));
	json_object_set_new(st, "port", json_integer(r->port));
	char *s = sb_json_dumps(st);
	json_decref(st);
	char *path = state_path(sb);
	err = sb_fs_write_atomic(path, s, strlen(s), 0600);
	free(path);
	free(s);
	if (err)
		goto out;
	set_env(sb, r->cfg, token, r->port);
out:
	sb_callback_config_free(copy);
	free(cj);
	memset(token, 0, strlen(token));
	free(token);
	return err;
}

sb_err *sb_callback_resume(sb_sandbox *sb, const sb_sandbox_config *cfg, bool relay)
{
	char *path = state_path(sb);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 1u << 20, &b);
	free(path);
	if (err && err->sys_errno == ENOENT) {
		sb_err_free(err);
		sb_buf_deinit(&b);
		return NULL; /* no callback on this lease */
	}
	json_t *j = NULL;
	sb_callback_config *c = NULL;
	const char *token = NULL;
	int64_t port = 0;
	if (err || (err = sb_json_parse_object(b.data, b.len, 1u << 20, 10, &j)) ||
	    (err = sb_json_get_str(j, "token", true, &token)) ||
	    (err = sb_json_get_int(j, "port", true, 1, 65535, &port)))
		goto out;
	char *cs = json_dumps(json_object_get(j, "config"), JSON_COMPACT);
	err = cs ? sbcb_config_load(cs, strlen(cs), &c)
	         : sb_err_new(SB_E_INVAL, "no config in callback.json");
	free(cs);
	if (err)
		goto out;
	set_env(sb, c, token, (int)port);
	if (relay && cfg && cfg->run_callbacks && !sb->dead) {
		struct sbcb_relay *r = NULL;
		if ((err = relay_start(sb, cfg, c, token, (int)port, &r)))
			goto out;
		sb->cb_relay = r;
		c = NULL;
	}
out:
	if (err)
		err = sb_err_prefix(err, "resuming the callback bridge of lease %s", sb->id);
	sb_callback_config_free(c);
	json_decref(j);
	sb_buf_deinit(&b);
	return err;
}

void sb_callback_stop(sb_sandbox *sb)
{
	struct sbcb_relay *r = sb->cb_relay;
	sb->cb_relay = NULL;
	sb_strv_free(sb->cb_env);
	sb->cb_env = NULL;
	free(sb->cb_url);
	sb->cb_url = NULL;
	if (!r)
		return;
	if (r->thread_started) {
		(void)!write(r->stop[1], "x", 1);
		pthread_join(r->thread, NULL);
	}
	/* running and queued requests are served; then the workers end (their references) */
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_cond_broadcast(&r->work);
	pthread_mutex_unlock(&r->mu);
	relay_unref(r);
}

char *sb_sandbox_callback_url(const sb_sandbox *sb)
{
	return sb->cb_url ? sb_xstrdup(sb->cb_url) : NULL;
}
