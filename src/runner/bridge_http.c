/* One HTTP exchange with a sandbox bridge, on libcurl: the request body from memory or from a
 * seekable fd, the response buffered, written to an fd, or fed to the SSE parser as it
 * arrives. Authentication is the bearer token or an HMAC signature (bridge_sign). Cancellation
 * and deadlines abort the transfer through curl's progress callback and timeout. Each call
 * uses its own easy handle, so calls from several threads never share curl state.
 */
#include "bridge_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sb_curl.h"
#include "sb_json.h"

static void trim_trailing_slashes(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
}

static char *dup_or_null(const char *s)
{
	return s && *s ? sb_xstrdup(s) : NULL;
}

sb_err *bridge_conf_init(bridge_conf *c, const sb_bridge_opts *o)
{
	memset(c, 0, sizeof(*c));
	if (!o || !o->base_url || !*o->base_url)
		return sb_err_new(SB_E_INVAL, "bridge: base_url is required (e.g. "
		                              "https://bridge.example:7469)");
	bool https = sb_str_has_prefix(o->base_url, "https://");
	if (!https && !sb_str_has_prefix(o->base_url, "http://"))
		return sb_err_new(SB_E_INVAL,
		                  "bridge: base_url \"%s\" must start with https:// "
		                  "(or http:// for a loopback address)",
		                  o->base_url);
	if (!https && !o->unix_socket) {
		/* The stock plugin refuses clear text except to loopback; so do we. */
		const char *h = o->base_url + strlen("http://");
		if (!sb_str_has_prefix(h, "localhost") && !sb_str_has_prefix(h, "127.") &&
		    !sb_str_has_prefix(h, "[::1]"))
			return sb_err_new(SB_E_INVAL,
			                  "bridge: base_url \"%s\" uses http:// for a host that is "
			                  "not loopback; use https://",
			                  o->base_url);
	}
	bool has_key = o->hmac_key_id && *o->hmac_key_id;
	if (has_key != (o->hmac_secret && *o->hmac_secret))
		return sb_err_new(SB_E_INVAL, "bridge: hmac_key_id and hmac_secret go together");
	if (!has_key && !(o->token && *o->token))
		return sb_err_new(SB_E_INVAL, "bridge: a bearer token or an HMAC key is required");
	if (o->request_timeout_ms < 0)
		return sb_err_new(SB_E_INVAL, "bridge: request_timeout_ms is negative");
	sb_err *cerr = sb_curl_load();
	if (cerr)
		return sb_err_prefix(cerr, "bridge");
	c->base_url = sb_xstrdup(o->base_url);
	trim_trailing_slashes(c->base_url);
	c->token = dup_or_null(o->token);
	c->hmac_key_id = dup_or_null(o->hmac_key_id);
	c->hmac_secret = dup_or_null(o->hmac_secret);
	c->host = dup_or_null(o->expected_host);
	c->ca_file = dup_or_null(o->ca_file);
	c->insecure = o->insecure;
	c->unix_socket = dup_or_null(o->unix_socket);
	c->request_timeout_ms =
	    o->request_timeout_ms ? o->request_timeout_ms : BRIDGE_REQUEST_TIMEOUT_DEFAULT;
	return NULL;
}

void bridge_conf_deinit(bridge_conf *c)
{
	free(c->base_url);
	free(c->token);
	if (c->hmac_secret)
		explicit_bzero(c->hmac_secret, strlen(c->hmac_secret));
	free(c->hmac_key_id);
	free(c->hmac_secret);
	free(c->host);
	free(c->ca_file);
	free(c->unix_socket);
	memset(c, 0, sizeof(*c));
}

void bridge_resp_deinit(bridge_resp *r)
{
	sb_buf_deinit(&r->body);
}

/* ---------------------------------------------------------------- transfer state */

typedef struct xfer {
	CURL *h;
	const bridge_req *rq;
	bridge_resp *rs;
	bool decided; /* status and content type looked at */
	bool to_sse, to_fd;
	sb_err *sink_err; /* why a callback stopped the transfer */
	bool canceled;
	uint64_t sent;
} xfer;

/* Called once, at the first body byte (or at the end for empty bodies). */
static void decide_sink(xfer *x)
{
	if (x->decided)
		return;
	x->decided = true;
	long status = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	x->rs->status = status;
	if (status < 200 || status > 299)
		return;
	char *ct = NULL;
	curl_easy_getinfo(x->h, CURLINFO_CONTENT_TYPE, &ct);
	if (x->rq->sse && ct && strncasecmp(ct, "text/event-stream", 17) == 0)
		x->to_sse = x->rs->is_sse = true;
	else if (x->rq->download_fd >= 0)
		x->to_fd = true;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	xfer *x = ud;
	size_t n = size * nmemb;
	decide_sink(x);
	if (x->to_sse) {
		x->sink_err = sb_sse_feed(x->rq->sse, p, n);
	} else if (x->to_fd) {
		x->sink_err = sb_write_all(x->rq->download_fd, p, n);
		x->sent += n;
		if (!x->sink_err && x->rq->progress)
			x->rq->progress(x->rq->progress_ud, x->sent, 0);
	} else if (x->rs->body.len + n > BRIDGE_MAX_JSON_BODY) {
		x->sink_err = sb_err_new(SB_E_TOO_LARGE, "response body is over the %u byte limit",
		                         BRIDGE_MAX_JSON_BODY);
	} else {
		sb_buf_append(&x->rs->body, p, n);
	}
	return x->sink_err ? 0 : n;
}

static size_t on_upload(char *p, size_t size, size_t nmemb, void *ud)
{
	xfer *x = ud;
	size_t want = size * nmemb;
	for (;;) {
		ssize_t got = read(x->rq->upload_fd, p, want);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			x->sink_err = sb_err_sys(errno, "reading the upload body");
			return CURL_READFUNC_ABORT;
		}
		x->sent += (uint64_t)got;
		if (x->rq->progress)
			x->rq->progress(x->rq->progress_ud, x->sent, x->rq->upload_len);
		return (size_t)got;
	}
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	xfer *x = ud;
	if (x->rq->cancel && sb_cancel_is_set(x->rq->cancel)) {
		x->canceled = true;
		return 1;
	}
	return 0;
}

/* The authority of the base URL ("host:port"), what curl sends as Host. */
static char *url_authority(const char *url)
{
	const char *s = strstr(url, "://");
	s = s ? s + 3 : url;
	size_t n = strcspn(s, "/?#");
	return sb_xstrndup(s, n);
}

static sb_err *body_sha256_hex(const bridge_req *rq, char out[SB_SHA256_HEX_LEN])
{
	if (rq->upload_fd < 0) {
		sb_sha256_hex(rq->body ? rq->body : "", rq->body ? rq->body_len : 0, out);
		return NULL;
	}
	/* A streamed body is hashed first and then rewound: the signature covers it before a
	 * single byte is sent. */
	sb_sha256 *c = sb_sha256_new();
	char buf[65536];
	sb_err *err = NULL;
	if (lseek(rq->upload_fd, 0, SEEK_SET) < 0) {
		err = sb_err_sys(errno, "rewinding the upload body");
		goto out;
	}
	for (;;) {
		ssize_t got = read(rq->upload_fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err = sb_err_sys(errno, "hashing the upload body");
			goto out;
		}
		if (got == 0)
			break;
		sb_sha256_update(c, buf, (size_t)got);
	}
	unsigned char d[SB_SHA256_LEN];
	sb_sha256_final(c, d);
	sb_hex_encode(d, sizeof(d), out);
	if (lseek(rq->upload_fd, 0, SEEK_SET) < 0)
		err = sb_err_sys(errno, "rewinding the upload body");
out:
	sb_sha256_free(c);
	return err;
}

static sb_err *build_headers(const bridge_conf *c, const bridge_req *rq, struct curl_slist **out)
{
	struct curl_slist *h = NULL;
	sb_err *err = NULL;
	char *line = NULL;
	char **signed_headers = NULL;
	char *host = c->host ? sb_xstrdup(c->host) : url_authority(c->base_url);

#define ADD(s)                                                                                     \
	do {                                                                                       \
		struct curl_slist *n_ = curl_slist_append(h, (s));                                 \
		if (!n_) {                                                                         \
			err = sb_err_new(SB_E_INTERNAL, "bridge: out of memory for headers");      \
			goto fail;                                                                 \
		}                                                                                  \
		h = n_;                                                                            \
	} while (0)

	if (c->host) {
		line = sb_strfmt("Host: %s", c->host);
		ADD(line);
		free(line);
		line = NULL;
	}
	if (rq->sign) {
		char hex[SB_SHA256_HEX_LEN];
		if ((err = body_sha256_hex(rq, hex)))
			goto fail;
		if ((err = bridge_sign(c, rq->method, rq->path, host, hex, &signed_headers)))
			goto fail;
		for (char **s = signed_headers; *s; s++)
			ADD(*s);
	} else {
		line = sb_strfmt("Authorization: Bearer %s", c->token ? c->token : "");
		ADD(line);
		explicit_bzero(line, strlen(line));
		free(line);
		line = NULL;
	}
	if (rq->body || rq->upload_fd >= 0) {
		line = sb_strfmt("Content-Type: %s",
		                 rq->content_type ? rq->content_type : "application/json");
		ADD(line);
		free(line);
		line = NULL;
	}
	line = sb_strfmt("Accept: %s", rq->accept ? rq->accept : "application/json");
	ADD(line);
	free(line);
	line = NULL;
	ADD("Expect:"); /* no 100-continue round trip */
#undef ADD
	*out = h;
	sb_strv_free(signed_headers);
	free(host);
	return NULL;
fail:
	free(line);
	sb_strv_free(signed_headers);
	free(host);
	curl_slist_free_all(h);
	return err;
}

sb_err *bridge_http_do(const bridge_conf *c, const bridge_req *rq, bridge_resp *rs)
{
	memset(rs, 0, sizeof(*rs));
	sb_buf_init(&rs->body);
	struct curl_slist *hdrs = NULL;
	sb_err *err = build_headers(c, rq, &hdrs);
	if (err)
		return sb_err_prefix(err, "%s %s", rq->method, rq->path);
	CURL *h = curl_easy_init();
	if (!h) {
		curl_slist_free_all(hdrs);
		return sb_err_new(SB_E_INTERNAL, "%s %s: curl_easy_init failed", rq->method,
		                  rq->path);
	}
	xfer x = {.h = h, .rq = rq, .rs = rs};
	char *url = sb_strfmt("%s%s", c->base_url, rq->path);
	char errbuf[CURL_ERROR_SIZE] = "";

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (rq->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)rq->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->unix_socket)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_socket);
	if (rq->upload_fd >= 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->upload_len);
	} else if (rq->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);

	CURLcode rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		decide_sink(&x);
	if (x.canceled)
		err = sb_err_new(SB_E_CANCELED, "%s %s: canceled", rq->method, rq->path);
	else if (x.sink_err)
		err = sb_err_prefix(x.sink_err, "%s %s", rq->method, rq->path);
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		err =
		    sb_err_new(SB_E_TIMEOUT, "sandbox bridge request %s %s timed out after %lldms",
		               rq->method, rq->path, (long long)rq->timeout_ms);
	else if (rc != CURLE_OK)
		err =
		    sb_err_new(SB_E_IO, "sandbox bridge request %s %s%s failed: %s", rq->method,
		               c->base_url, rq->path, errbuf[0] ? errbuf : curl_easy_strerror(rc));
	x.sink_err = NULL;
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	free(url);
	if (err)
		sb_buf_deinit(&rs->body);
	return err;
}

/* ---------------------------------------------------------------- errors */

static sb_errcode map_code(const char *code, long status)
{
	static const struct {
		const char *name;
		sb_errcode code;
	} map[] = {
	    {"acquisition_in_progress", SB_E_BUSY},  {"acquisition_conflict", SB_E_CONFLICT},
	    {"sandbox_state_lost", SB_E_STATE_LOST}, {"unauthorized", SB_E_AUTH},
	    {"invalid_request", SB_E_INVAL},         {"not_found", SB_E_NOTFOUND},
	    {"payload_too_large", SB_E_TOO_LARGE},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (code && strcmp(code, map[i].name) == 0)
			return map[i].code;
	if (status == 401)
		return SB_E_AUTH;
	if (status == 404)
		return SB_E_NOTFOUND;
	if (status == 413)
		return SB_E_TOO_LARGE;
	return SB_E_PROTOCOL;
}

sb_err *bridge_error(const bridge_resp *rs, const char *what, char **code_out, char **lease_out)
{
	if (code_out)
		*code_out = sb_xstrdup("");
	if (lease_out)
		*lease_out = NULL;
	json_t *j = NULL;
	const char *text = rs->body.data ? rs->body.data : "";
	json_error_t jerr;
	j = json_loadb(text, rs->body.len, JSON_DECODE_ANY, &jerr);
	const char *code = NULL, *msg = NULL;
	if (j && json_is_object(j)) {
		code = json_string_value(json_object_get(j, "error"));
		msg = json_string_value(json_object_get(j, "message"));
		json_t *details = json_object_get(j, "details");
		const char *lid =
		    json_is_object(details)
		        ? json_string_value(json_object_get(details, "providerLeaseId"))
		        : NULL;
		if (lease_out && lid && *lid)
			*lease_out = sb_xstrdup(lid);
	}
	sb_err *err;
	if (code || msg) {
		err = sb_err_new(map_code(code, rs->status), "%s: bridge answered %ld %s: %s", what,
		                 rs->status, code ? code : "error", msg ? msg : "(no message)");
		if (code_out && code) {
			free(*code_out);
			*code_out = sb_xstrdup(code);
		}
	} else if (rs->status == 403 && strstr(text, "1010") && strcasestr(text, "cloudflare")) {
		err = sb_err_new(SB_E_AUTH,
		                 "%s: Cloudflare bot protection (error 1010) blocked the bridge "
		                 "request; exempt the bridge path from bot protection in the "
		                 "Cloudflare dashboard",
		                 what);
	} else {
		/* Not the protocol's error shape (a proxy page, say): show its start only. */
		size_t n = rs->body.len < 240 ? rs->body.len : 240;
		err = sb_err_new(map_code(NULL, rs->status), "%s: bridge answered %ld: %.*s%s",
		                 what, rs->status, (int)n, text, rs->body.len > n ? "..." : "");
	}
	json_decref(j);
	return err;
}
