/* The callback relay's upstream side: one request sent with libcurl (the allowlisted headers,
 * the credential, bounded response), its answer relayed to the sandboxed client, and the pool
 * of finished handles whose connections are reused. An unsafe request always goes on a fresh
 * connection, so libcurl's silent resend on a dead reused one can never send it twice (see
 * callback.c). */
#include "callback_relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

void sbcb_upstream_call(struct sbcb_relay *r, int fd, const sbcb_request *q, const char *body,
                        size_t blen, sbcb_outcome *o)
{
	bool unsafe = sbcb_unsafe_method(q->method);
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
		sbcb_respond(fd, (int)status, u.headers.len ? sb_buf_cstr(&u.headers) : NULL,
		             u.body.data, u.body.len, strcmp(q->method, "HEAD") == 0);
		o->status = (int)status;
		o->bytes_out = u.body.len;
		o->kind = 0;
	} else if (unsafe && !never_sent) {
		sbcb_respond_indeterminate(fd);
		o->status = 409;
		o->kind = 2;
	} else if (rc == CURLE_OK) {
		/* a safe request the upstream itself calls indeterminate */
		sbcb_respond_error(fd, 502, "upstream reported an indeterminate outcome", true);
		o->status = 502;
		o->kind = 0;
	} else {
		char msg[512];
		snprintf(msg, sizeof msg, "upstream %s: %s", never_sent ? "unreachable" : "failed",
		         u.too_big ? "response too large" : curl_easy_strerror(rc));
		int st = never_sent ? 503 : rc == CURLE_OPERATION_TIMEDOUT ? 504 : 502;
		sbcb_respond_error(fd, st, msg, true);
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

void sbcb_upstream_pool_drain(struct sbcb_relay *r)
{
	for (size_t i = 0; i < r->nidle; i++)
		curl_easy_cleanup(r->idle[i]);
	r->nidle = 0;
}
