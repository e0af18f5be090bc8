/* The egress proxy (issue 14): every connection handed to it speaks HTTP CONNECT or plain-HTTP
 * proxying. The host name is checked against the allowlist, the proxy resolves it itself and
 * checks every address it would connect to (DESIGN.md §9.10), and a refused request gets a 403
 * naming the rule. Hosts with a secret or request rules are terminated with the proxy's own CA:
 * each request is checked and gets the secret header, and the real upstream is verified.
 *
 * One request per upstream connection: the proxy sends "Connection: close" upstream, so a
 * client cannot reuse a tunnel it was given for one host or request for another.
 *
 * Over 600 lines: one connection's life from head to relay, in its plain and TLS-terminated
 * forms, plus the listener and the proxy's lifetime; the head parser (proxy_head.c), the relay
 * (proxy_relay.c), the policy and addresses (proxy_policy.c, proxy_addr.c) are apart. */
#include "proxy_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define CONNECT_TIMEOUT_MS 10000
#define HEAD_TIMEOUT_S 60
#define CONNS_MAX 1024
#define SECRET_MAX (64u * 1024u)

typedef struct px_secret {
	char *host;
	char *header; /* lower case */
	char *line;   /* "Header: value\r\n" (secret) */
} px_secret;

typedef struct px_conn {
	struct sb_egress_proxy *p;
	int fd;
	int up;
} px_conn;

struct sb_egress_proxy {
	char *name;
	sbpx_policy pol;
	sbpx_tls *tls; /* when a host is terminated */
	px_secret *secrets;
	size_t nsecrets;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	px_conn *conns[CONNS_MAX];
	size_t nconns;
	bool stopping;
	sbpx_pool *pool; /* the connections' threads */
	uint64_t allowed, denied, up, down;
	char **denied_list;
	size_t ndenied_list;
	uint64_t denied_more;
	void (*on_denied)(void *ud, const char *what);
	void *on_denied_ud;
	int lfd, stop[2];
	pthread_t lthread; /* the listener's first thread; the listening moves between threads */
	bool lstarted, listening;
	char *lpath;
};

/* ---- statistics */

static void count_denied(struct sb_egress_proxy *p, const char *host, int port, const char *rule)
{
	char *item = sb_strfmt("%s:%d (%s)", host, port, rule);
	pthread_mutex_lock(&p->mu);
	p->denied++;
	bool seen = false;
	for (size_t i = 0; i < p->ndenied_list && !seen; i++)
		seen = strcmp(p->denied_list[i], item) == 0;
	if (!seen) {
		if (p->ndenied_list < SBPX_DENIED_LIST_MAX) {
			sb_strv_push(&p->denied_list, item);
			p->ndenied_list++;
		} else {
			p->denied_more++;
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (p->on_denied)
		p->on_denied(p->on_denied_ud, item);
	else
		sb_info("egress %s: denied %s", p->name, item);
	free(item);
}

void sb_egress_proxy_stats(sb_egress_proxy *p, sb_egress_stats *out)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&p->mu);
	out->conns_allowed = p->allowed;
	out->conns_denied = p->denied;
	out->bytes_up = p->up;
	out->bytes_down = p->down;
	for (size_t i = 0; i < p->ndenied_list; i++)
		sb_strv_push(&out->denied, p->denied_list[i]);
	out->denied_more = p->denied_more;
	pthread_mutex_unlock(&p->mu);
}

/* ---- answers */

static void answer(sbpx_io *o, int status, const char *rule, const char *fmt, ...) SB_PRINTF(4, 5);
static void answer(sbpx_io *o, int status, const char *rule, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const char *reason = status == 403   ? "Forbidden"
	                     : status == 400 ? "Bad Request"
	                     : status == 502 ? "Bad Gateway"
	                     : status == 504 ? "Gateway Timeout"
	                     : status == 431 ? "Request Header Fields Too Large"
	                                     : "Error";
	char head[1536];
	int body = (int)strlen(msg) + (int)strlen("sandbar egress proxy: \n");
	int n = snprintf(head, sizeof head,
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                 "Content-Length: %d\r\nConnection: close\r\n%s%s%s"
	                 "\r\nsandbar egress proxy: %s\n",
	                 status, reason, body, rule ? "X-Sandbar-Denied: " : "", rule ? rule : "",
	                 rule ? "\r\n" : "", msg);
	if (n > 0)
		sbpx_io_write(o, head, (size_t)n < sizeof head ? (size_t)n : sizeof head - 1);
}

/* ---- upstream connection */

static int connect_timeout(const struct sockaddr_storage *ss)
{
	socklen_t sl =
	    ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)ss, sl) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	struct pollfd pf = {fd, POLLOUT, 0};
	int err = 0;
	socklen_t el = sizeof err;
	if (poll(&pf, 1, CONNECT_TIMEOUT_MS) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
		close(fd);
		errno = err ? err : ETIMEDOUT;
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	int one = 1; /* heads and small replies go out at once */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Check and connect: the upstream socket, or -1 after answering the client. */
static int open_upstream(struct sb_egress_proxy *p, sbpx_io *cl, const char *host, int port)
{
	struct sockaddr_storage addrs[SBPX_ADDRS_MAX];
	const char *why = NULL;
	size_t n = sbpx_resolve(&p->pol, host, port, addrs, SBPX_ADDRS_MAX, &why);
	if (!n) {
		count_denied(p, host, port, "does not resolve");
		answer(cl, 502, NULL, "cannot resolve %s: %s", host, why);
		return -1;
	}
	const char *denied = NULL;
	char atext[64] = "";
	int last_errno = 0;
	for (size_t i = 0; i < n; i++) {
		const char *d = sbpx_addr_denied(&p->pol, (struct sockaddr *)&addrs[i]);
		if (d) {
			if (!denied) {
				denied = d;
				sbpx_addr_text((struct sockaddr *)&addrs[i], atext, sizeof atext);
			}
			continue;
		}
		int fd = connect_timeout(&addrs[i]);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		/* the address actually connected to passes the check too */
		struct sockaddr_storage peer;
		socklen_t pl = sizeof peer;
		if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 ||
		    (d = sbpx_addr_denied(&p->pol, (struct sockaddr *)&peer))) {
			close(fd);
			denied = d ? d : "peer address unknown";
			continue;
		}
		return fd;
	}
	if (denied) {
		char rule[256];
		snprintf(rule, sizeof rule, "address %s is %s", atext, denied);
		count_denied(p, host, port, rule);
		answer(cl, 403, "address",
		       "%s:%d resolves to %s, which is %s: denied (only an IP or CIDR entry on the "
		       "allowlist lifts this check)",
		       host, port, atext, denied);
		return -1;
	}
	answer(cl, 502, NULL, "connecting to %s:%d: %s", host, port, strerror(last_errno));
	return -1;
}

/* Relay a and b (proxy_relay.c) and count the bytes moved. */
static void relay(struct sb_egress_proxy *p, sbpx_io *a, sbpx_io *b, const char *pre, size_t prelen)
{
	uint64_t up = 0, down = 0;
	sbpx_relay(a, b, pre, prelen, &up, &down);
	pthread_mutex_lock(&p->mu);
	p->up += up;
	p->down += down;
	pthread_mutex_unlock(&p->mu);
}

static const px_secret *secret_for(struct sb_egress_proxy *p, const char *host)
{
	for (size_t i = 0; i < p->nsecrets; i++)
		if (strcmp(p->secrets[i].host, host) == 0)
			return &p->secrets[i];
	return NULL;
}

static void allowed(struct sb_egress_proxy *p)
{
	pthread_mutex_lock(&p->mu);
	p->allowed++;
	pthread_mutex_unlock(&p->mu);
}

/* Send the client's request upstream (its head rebuilt for path, with the secret when sec),
 * then relay what follows both ways. The head can hold the secret: it is wiped. */
static void forward(struct sb_egress_proxy *p, sbpx_io *cl, sbpx_io *up, const sbpx_head *h,
                    const char *path, const char *host, const px_secret *sec)
{
	sb_buf hb = SB_BUF_INIT;
	sbpx_upstream_head(h, path, host, sec ? sec->header : NULL, sec ? sec->line : NULL, &hb);
	bool sent = sbpx_io_write(up, hb.data, hb.len);
	size_t head_len = hb.len;
	memset(hb.data, 0, hb.len);
	sb_buf_deinit(&hb);
	if (sent) {
		allowed(p);
		pthread_mutex_lock(&p->mu);
		p->up += head_len; /* the head we sent counts as bytes up too */
		pthread_mutex_unlock(&p->mu);
		relay(p, cl, up, h->buf + h->head_len, h->len - h->head_len);
	}
}

/* ---- one connection */

static void set_up(px_conn *k, int fd)
{
	pthread_mutex_lock(&k->p->mu);
	k->up = fd;
	bool stopping = k->p->stopping;
	pthread_mutex_unlock(&k->p->mu);
	if (stopping && fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

/* The terminated tunnel of a CONNECT to host:port (secret or request rules). */
static void serve_terminated(px_conn *k, sbpx_io *cl, const char *host, int port, int upfd,
                             const sbpx_head *h)
{
	struct sb_egress_proxy *p = k->p;
	sb_err *err = NULL;
	SSL_CTX *sctx = sbpx_tls_server_ctx(p->tls, host, &err);
	SSL *cs = NULL, *us = NULL;
	sbpx_io tc = {cl->fd, NULL}, tu = {upfd, NULL};
	sbpx_head rq;
	memset(&rq, 0, sizeof rq);
	if (!sctx) {
		answer(cl, 502, NULL, "%s", err->msg);
		sb_err_free(err);
		return;
	}
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	if (h->len > h->head_len || !sbpx_io_write(cl, ok, sizeof ok - 1))
		goto out; /* bytes before our 200: not a TLS client that waits */
	cs = SSL_new(sctx);
	if (!cs || !SSL_set_fd(cs, cl->fd) || SSL_accept(cs) != 1)
		goto out; /* the client did not trust us or went away */
	tc.ssl = cs;
	const char *why = NULL;
	int st = sbpx_head_read(&tc, &rq, &why);
	if (st) {
		if (st > 0)
			answer(&tc, st, NULL, "%s", why);
		goto out;
	}
	if (rq.target[0] != '/') {
		answer(&tc, 400, NULL, "inside a tunnel the request target must be a path");
		goto out;
	}
	if (!sbpx_request_allowed(&p->pol, host, port, rq.method, rq.target)) {
		char rule[300];
		snprintf(rule, sizeof rule, "request %s %.200s matches no rule", rq.method,
		         rq.target);
		count_denied(p, host, port, rule);
		answer(&tc, 403, "request-rule",
		       "%s %s to %s is not allowed by the request rules for this host", rq.method,
		       rq.target, host);
		goto out;
	}
	us = SSL_new(sbpx_tls_client_ctx(p->tls));
	if (!us || !SSL_set_fd(us, upfd)) {
		answer(&tc, 502, NULL, "TLS to %s failed", host);
		goto out;
	}
	unsigned char tmp[16];
	bool ip = inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
	if (!ip)
		SSL_set_tlsext_host_name(us, host);
	if (ip ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(us), host)
	       : !SSL_set1_host(us, host)) {
		answer(&tc, 502, NULL, "TLS to %s: cannot set the name to verify", host);
		goto out;
	}
	if (SSL_connect(us) != 1) {
		long v = SSL_get_verify_result(us);
		ERR_clear_error();
		answer(&tc, 502, "upstream-certificate", "TLS to %s:%d failed: %s", host, port,
		       v != X509_V_OK ? X509_verify_cert_error_string(v) : "handshake failed");
		count_denied(p, host, port, "upstream certificate not verified");
		goto out;
	}
	tu.ssl = us;
	forward(p, &tc, &tu, &rq, rq.target, host, secret_for(p, host));
out:
	sbpx_head_deinit(&rq);
	if (cs) {
		SSL_shutdown(cs);
		SSL_free(cs);
	}
	if (us)
		SSL_free(us);
	SSL_CTX_free(sctx);
}

static void serve(px_conn *k)
{
	struct sb_egress_proxy *p = k->p;
	sbpx_io cl = {k->fd, NULL};
	struct timeval tv = {HEAD_TIMEOUT_S, 0};
	setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	sbpx_head h;
	const char *why = NULL;
	int st = sbpx_head_read(&cl, &h, &why);
	if (st) {
		if (st > 0)
			answer(&cl, st, NULL, "%s", why);
		sbpx_head_deinit(&h);
		return;
	}
	char host[256];
	int port = 0;
	const char *path = NULL;
	bool connect_req = strcmp(h.method, "CONNECT") == 0;
	if (connect_req) {
		if (!sbpx_split_hostport(h.target, host, sizeof host, &port, 0)) {
			answer(&cl, 400, NULL, "CONNECT needs HOST:PORT");
			goto out;
		}
	} else {
		if (strncasecmp(h.target, "http://", 7) != 0) {
			answer(&cl, 400, NULL,
			       "a proxy request needs an absolute http:// URL (HTTPS goes through "
			       "CONNECT)");
			goto out;
		}
		const char *auth = h.target + 7, *slash = strpbrk(auth, "/?");
		size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
		char authority[300];
		if (alen == 0 || alen >= sizeof authority || memchr(auth, '@', alen)) {
			answer(&cl, 400, NULL, "bad URL authority");
			goto out;
		}
		memcpy(authority, auth, alen);
		authority[alen] = '\0';
		if (!sbpx_split_hostport(authority, host, sizeof host, &port, 80)) {
			answer(&cl, 400, NULL, "bad host or port in the URL");
			goto out;
		}
		path = slash ? slash : "/";
	}
	bool inspect = false;
	if (!sbpx_host_allowed(&p->pol, host, port, &inspect)) {
		count_denied(p, host, port, "not on the allowlist");
		answer(&cl, 403, "allowlist",
		       "%s:%d is not on the allowlist (add it with --allow-net %s or the config's "
		       "allow_net)",
		       host, port, host);
		goto out;
	}
	const px_secret *sec = secret_for(p, host);
	if (!connect_req && inspect && !sbpx_request_allowed(&p->pol, host, port, h.method, path)) {
		char rule[300];
		snprintf(rule, sizeof rule, "request %s %.200s matches no rule", h.method, path);
		count_denied(p, host, port, rule);
		answer(&cl, 403, "request-rule",
		       "%s %s to %s is not allowed by the request rules for this host", h.method,
		       path, host);
		goto out;
	}
	int upfd = open_upstream(p, &cl, host, port);
	if (upfd < 0)
		goto out;
	set_up(k, upfd);
	sbpx_io up = {upfd, NULL};
	if (connect_req && (sec || inspect) && p->tls) {
		serve_terminated(k, &cl, host, port, upfd, &h);
	} else if (connect_req) {
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
		if (sbpx_io_write(&cl, ok, sizeof ok - 1)) {
			allowed(p);
			relay(p, &cl, &up, h.buf + h.head_len, h.len - h.head_len);
		}
	} else {
		forward(p, &cl, &up, &h, path, host, sec);
	}
out:
	sbpx_head_deinit(&h);
}

static void conn_forget(px_conn *k)
{
	struct sb_egress_proxy *p = k->p;
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->nconns; i++)
		if (p->conns[i] == k) {
			p->conns[i] = p->conns[--p->nconns];
			break;
		}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void conn_main(void *arg)
{
	px_conn *k = arg;
	serve(k);
	pthread_mutex_lock(&k->p->mu);
	int up = k->up;
	k->up = -1;
	pthread_mutex_unlock(&k->p->mu);
	conn_forget(k); /* before closing: sb_egress_proxy_free shuts down what is listed */
	if (up >= 0)
		close(up);
	close(k->fd);
	free(k);
}

/* A connection record for fd, listed unless the proxy stops or is full (then NULL, fd kept). */
static px_conn *conn_take(sb_egress_proxy *p, int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	px_conn *k = sb_xcalloc(1, sizeof *k);
	k->p = p;
	k->fd = fd;
	k->up = -1;
	pthread_mutex_lock(&p->mu);
	bool room = !p->stopping && p->nconns < CONNS_MAX;
	if (room)
		p->conns[p->nconns++] = k;
	pthread_mutex_unlock(&p->mu);
	if (!room)
		free(k);
	return room ? k : NULL;
}

static void refuse(int fd)
{
	sbpx_io cl = {fd, NULL};
	answer(&cl, 503, NULL, "too many connections through this proxy at once; retry");
	close(fd);
}

void sb_egress_proxy_serve_fd(sb_egress_proxy *p, int fd)
{
	px_conn *k = conn_take(p, fd);
	if (k && sbpx_pool_run(p->pool, conn_main, k))
		return;
	if (k) {
		conn_forget(k);
		free(k);
	}
	refuse(fd);
}

bool sbpx_proxy_serve_here(sb_egress_proxy *p, int fd, void (*next)(void *), void *next_arg)
{
	px_conn *k = conn_take(p, fd);
	if (k && sbpx_pool_run(p->pool, next, next_arg)) {
		conn_main(k);
		return true;
	}
	if (k) {
		conn_forget(k);
		free(k);
	}
	refuse(fd);
	return false;
}

/* ---- unix socket listener: whichever thread accepts serves that connection itself and hands
 * the listening on to a worker (one thread wake-up less per connection than a listener that
 * hands each connection over) */

static void listen_loop(void *arg)
{
	struct sb_egress_proxy *p = arg;
	for (;;) {
		struct pollfd pf[2] = {{p->lfd, POLLIN, 0}, {p->stop[0], POLLIN, 0}};
		int rc = poll(pf, 2, -1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0 || pf[1].revents)
			break;
		int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0 && sbpx_proxy_serve_here(p, fd, listen_loop, p))
			return; /* the listening went on in a worker */
		if (fd < 0 && (errno == EMFILE || errno == ENFILE))
			poll(NULL, 0, 100); /* let connections finish */
	}
	pthread_mutex_lock(&p->mu);
	p->listening = false;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void *listen_main(void *arg)
{
	listen_loop(arg);
	return NULL;
}

sb_err *sb_egress_proxy_listen_unix(sb_egress_proxy *p, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (p->lstarted)
		return sb_err_new(SB_E_INVAL, "egress proxy %s listens already", p->name);
	if (strlen(path) >= sizeof sa.sun_path)
		return sb_err_new(SB_E_INVAL, "socket path %s is too long", path);
	memcpy(sa.sun_path, path, strlen(path));
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	mode_t old = umask(0077);
	int rc = p->lfd < 0 ? -1 : bind(p->lfd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || listen(p->lfd, 512) < 0 || pipe2(p->stop, O_CLOEXEC) < 0)
		return sb_err_sys(errno, "egress proxy: listening on %s", path);
	p->listening = true;
	int e = pthread_create(&p->lthread, NULL, listen_main, p);
	if (e) {
		p->listening = false;
		return sb_err_sys(e, "egress proxy: starting the listener thread");
	}
	p->lstarted = true;
	p->lpath = sb_xstrdup(path);
	return NULL;
}

/* ---- lifetime */

static sb_err *read_secret(const char *ref, char **out)
{
	*out = NULL;
	if (strncmp(ref, "env:", 4) == 0) {
		const char *v = getenv(ref + 4);
		if (!v || !*v)
			return sb_err_new(SB_E_INVAL,
			                  "%s is not set in the environment of the process running "
			                  "the egress proxy",
			                  ref + 4);
		*out = sb_xstrdup(v);
		return NULL;
	}
	if (strncmp(ref, "file:", 5) == 0) {
		sb_buf b = SB_BUF_INIT;
		sb_err *err = sb_read_file(ref + 5, SECRET_MAX, &b);
		if (err) {
			sb_buf_deinit(&b);
			return err;
		}
		while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
			b.data[--b.len] = '\0';
		*out = sb_xstrdup(sb_buf_cstr(&b));
		memset(b.data, 0, b.len);
		sb_buf_deinit(&b);
		return NULL;
	}
	return sb_err_new(SB_E_INVAL, "a secret's value is env:VAR or file:PATH");
}

sb_err *sb_egress_proxy_new(const sb_egress_config *c, const char *name, sb_egress_proxy **out)
{
	return sbpx_proxy_new(c, name, NULL, NULL, out);
}

void sbpx_proxy_on_denied(sb_egress_proxy *p, void (*fn)(void *ud, const char *what), void *ud)
{
	p->on_denied = fn;
	p->on_denied_ud = ud;
}

sb_err *sbpx_proxy_new(const sb_egress_config *c, const char *name, const char *ca_cert_pem,
                       const char *ca_key_pem, sb_egress_proxy **out)
{
	sb_err *err = sb_egress_config_check(c);
	if (err)
		return err;
	struct sb_egress_proxy *p = sb_xcalloc(1, sizeof *p);
	p->name = sb_xstrdup(name ? name : "proxy");
	p->lfd = p->stop[0] = p->stop[1] = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->pool = sbpx_pool_new(CONNS_MAX, 256 * 1024);
	if ((err = sbpx_policy_init(&p->pol, c))) {
		sbpx_pool_free(p->pool);
		free(p->name);
		free(p);
		return err;
	}
	bool terminate = c->nsecrets > 0;
	for (size_t i = 0; i < p->pol.nentries; i++)
		terminate |= p->pol.entries[i].method != NULL;
	if (terminate &&
	    (err = sbpx_tls_new(c->upstream_ca, p->name, ca_cert_pem, ca_key_pem, &p->tls)))
		goto fail;
	if (c->nsecrets)
		p->secrets = sb_xcalloc(c->nsecrets, sizeof *p->secrets);
	for (size_t i = 0; i < c->nsecrets; i++) {
		char *v = NULL;
		if ((err = read_secret(c->secrets[i].value_ref, &v))) {
			err = sb_err_prefix(err, "secret for %s", c->secrets[i].host);
			goto fail;
		}
		if (strpbrk(v, "\r\n")) {
			memset(v, 0, strlen(v));
			free(v);
			err = sb_err_new(SB_E_INVAL, "secret for %s: the value holds a line break",
			                 c->secrets[i].host);
			goto fail;
		}
		px_secret *s = &p->secrets[p->nsecrets++];
		s->host = sb_xstrdup(c->secrets[i].host);
		s->header = sb_xstrdup(c->secrets[i].header);
		for (char *ch = s->header; *ch; ch++)
			*ch = (char)tolower((unsigned char)*ch);
		/* an Authorization value without a scheme is a bearer token (OPENAI_API_KEY) */
		bool bearer = strcasecmp(s->header, "authorization") == 0 && !strchr(v, ' ');
		s->line =
		    sb_strfmt("%s: %s%s\r\n", c->secrets[i].header, bearer ? "Bearer " : "", v);
		memset(v, 0, strlen(v));
		free(v);
	}
	*out = p;
	return NULL;
fail:
	sb_egress_proxy_free(p);
	return err;
}

char *sb_egress_proxy_ca_pem(const sb_egress_proxy *p)
{
	return p->tls ? sbpx_tls_ca_pem(p->tls) : NULL;
}

char *sbpx_proxy_ca_key_pem(const sb_egress_proxy *p)
{
	return p->tls ? sbpx_tls_ca_key_pem(p->tls) : NULL;
}

void sb_egress_proxy_free(sb_egress_proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->lstarted) {
		/* the listening ends first, then the connections (the listener's first thread may
		 * be serving one), then that thread is joined */
		(void)!write(p->stop[1], "x", 1);
		while (p->listening)
			pthread_cond_wait(&p->cv, &p->mu);
		unlink(p->lpath);
	}
	p->stopping = true;
	for (size_t i = 0; i < p->nconns; i++) {
		shutdown(p->conns[i]->fd, SHUT_RDWR);
		if (p->conns[i]->up >= 0)
			shutdown(p->conns[i]->up, SHUT_RDWR);
	}
	while (p->nconns)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	if (p->lstarted)
		pthread_join(p->lthread, NULL);
	sbpx_pool_free(p->pool); /* its workers are idle: every connection ended */
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->stop[0] >= 0) {
		close(p->stop[0]);
		close(p->stop[1]);
	}
	for (size_t i = 0; i < p->nsecrets; i++) {
		memset(p->secrets[i].line, 0, strlen(p->secrets[i].line));
		free(p->secrets[i].line);
		free(p->secrets[i].host);
		free(p->secrets[i].header);
	}
	free(p->secrets);
	sb_strv_free(p->denied_list);
	sbpx_tls_free(p->tls);
	sbpx_policy_deinit(&p->pol);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->lpath);
	free(p->name);
	free(p);
}
