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
#include "callback_relay.h"

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

#define CLIENT_IO_TIMEOUT_S 10 /* reading the request, writing the response */
#define CREDENTIAL_MAX (64u * 1024u)
#define EXTRA_WORKERS 32 /* connections read beyond the queue depth, to answer 503 */
#define WORKER_IDLE_S 30 /* an idle worker thread ends after this long */

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
	sbcb_upstream_pool_drain(r);
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

static void serve(struct sbcb_relay *r, cb_conn *k, sbcb_outcome *o, sbcb_request *q)
{
	if (k->handed && strcmp(k->state, "sent") == 0) {
		/* a previous relay sent it upstream and died before answering */
		sbcb_respond_indeterminate(k->fd);
		o->status = 409;
		o->kind = 2;
		return;
	}
	if (k->handed) {
		sbcb_respond_error(
		    k->fd, 503,
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
			sbcb_respond_error(k->fd, 431, "request head too large", false);
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
		sbcb_respond_error(k->fd, st, why, false);
		o->status = st;
		goto out;
	}
	if (!token_ok(r, sbcb_header_get(q, "authorization"))) {
		sbcb_respond_json(k->fd, 401, "{\"error\":\"Invalid bridge token.\"}");
		o->status = 401;
		goto out;
	}
	if (!host_ok(r, sbcb_header_get(q, "host"))) {
		char msg[160];
		snprintf(msg, sizeof msg,
		         "Misdirected request: the Host header must be 127.0.0.1:%d", r->port);
		sbcb_respond_error(k->fd, 421, msg, false);
		o->status = 421;
		goto out;
	}
	const sb_callback_route *route = find_route(r->cfg, q);
	if (!route) {
		char *msg = sb_strfmt("Route not allowed: %s %s", q->method, q->path);
		sbcb_respond_error(k->fd, 403, msg, false);
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
		sbcb_respond_error(k->fd, 413, msg, false);
		o->status = 413;
		goto out;
	}
	const char *ct = sbcb_header_get(q, "content-type");
	if (clen > 0 && !route->any_body && (!ct || !sbcb_is_json_type(ct))) {
		sbcb_respond_error(k->fd, 415,
		                   "the callback bridge relays JSON bodies only "
		                   "(Content-Type: application/json) on this route",
		                   false);
		o->status = 415;
		goto out;
	}
	while (b.len - hlen < clen)
		if (!read_more(k->fd, &b, (size_t)(clen - (b.len - hlen)))) {
			sbcb_respond_error(k->fd, 400,
			                   "request body shorter than its Content-Length", false);
			o->status = 400;
			goto out;
		}
	pthread_mutex_lock(&r->mu);
	bool slot = r->inflight < r->cfg->queue_depth;
	if (slot)
		r->inflight++;
	pthread_mutex_unlock(&r->mu);
	if (!slot) {
		sbcb_respond_error(k->fd, 503, "callback queue full; retry later", true);
		o->status = 503;
		goto out;
	}
	if (sbcb_unsafe_method(q->method) && tell_init(r, "mark", k->id, "sent") < 0) {
		/* without the mark a restart could not tell: do not send */
		sbcb_respond_error(k->fd, 503,
		                   "callback bridge unavailable (sandbar-init unreachable)", true);
		o->status = 503;
		o->kind = 1;
	} else {
		sbcb_upstream_call(r, k->fd, q, b.data + hlen, (size_t)clen, o);
	}
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
	sbcb_outcome o = {0, NULL, 0, 0, -1};
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
	sbcb_respond_error(fd, 503, "callback queue full; retry later", true);
	count(r, 1);
	close(fd);
	tell_init(r, "release", k->id, NULL);
	free(k);
}

static bool on_conn(void *ud, const sbi_msg *m, int fd)
{
	conn_arrived(ud, m, fd);
	return true;
}

static void *reader_main(void *arg)
{
	struct sbcb_relay *r = arg;
	if (sb_ctl_forward_loop(r->attach, &r->rd, r->stop[0], on_conn, r) == SB_FWD_CLOSED)
		sb_warn("callback lease %s: sandbar-init closed the bridge's channel; the "
		        "callback endpoint stops answering",
		        r->lease_id);
	return NULL;
}

/* ---- start, stop */

sb_err *sbcb_relay_start(sb_sandbox *sb, const sb_sandbox_config *cfg, sb_callback_config *c,
                         const char *token, int port, struct sbcb_relay **out)
{
	sb_err *lerr = sb_curl_load(); /* the upstream calls need it: fail now, not per call */
	if (lerr)
		return sb_err_prefix(lerr, "callback of lease %s", sb->id);
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
	sb_err *err =
	    c->credential ? sb_secret_ref_read(c->credential, CREDENTIAL_MAX, &cred) : NULL;
	if (err) {
		err = sb_err_prefix(err, "callback of lease %s: credential", sb->id);
		goto fail;
	}
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

void sbcb_relay_stop(struct sbcb_relay *r)
{
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

int sbcb_relay_port(const struct sbcb_relay *r)
{
	return r->port;
}
