/* Internals of the egress proxy (issue 14, DESIGN.md §9.10, §9.14): the policy (proxy_policy.c:
 * allowlist entries, request rules, the address deny list, a hosts-file resolver; no I/O but
 * the resolver, fuzzed), the TLS side (proxy_tls.c: per-proxy CA, leaf certificates, upstream
 * verification), the connection handler (proxy.c) and the lease glue (proxy_lease.c). */
#ifndef SANDBAR_PROXY_INT_H
#define SANDBAR_PROXY_INT_H

#include <netinet/in.h>
#include <sys/socket.h>

#include <sandbar/sandbox.h>

#define SBPX_HEAD_MAX (32u * 1024u) /* request line + headers */
#define SBPX_ADDRS_MAX 16           /* addresses tried per name */
#define SBPX_DENIED_LIST_MAX 64
#define SBPX_FORWARD_NAME "proxy" /* the init forward (src/init/forward.c) */

typedef enum { SBPX_NAME, SBPX_WILD, SBPX_ADDR } sbpx_kind;

typedef struct sbpx_entry {
	sbpx_kind kind;
	char *name;             /* NAME: the host; WILD: ".suffix" (lower case) */
	int family;             /* ADDR: AF_INET or AF_INET6 */
	unsigned char addr[16]; /* ADDR: network order */
	int prefix;             /* ADDR: prefix length */
	int port;               /* 0 = any */
	char *method;           /* request rule, or NULL */
	char *path;             /* request rule path prefix, or NULL */
	char *text;             /* the entry as written, for messages */
} sbpx_entry;

typedef struct sbpx_hosts_line {
	char *name; /* lower case */
	struct sockaddr_storage addr;
} sbpx_hosts_line;

typedef struct sbpx_policy {
	sbpx_entry *entries;
	size_t nentries;
	sbpx_hosts_line *hosts; /* from hosts_file, when set */
	size_t nhosts;
	bool use_hosts;
	struct sockaddr_storage *deny; /* listeners refused always (port 0 = every port) */
	size_t ndeny;
	struct sockaddr_storage *local; /* the host's own addresses (getifaddrs) */
	size_t nlocal;
} sbpx_policy;

/* Parse one allowlist entry; SB_E_INVAL naming it. */
sb_err *sbpx_entry_parse(const char *text, sbpx_entry *out);
void sbpx_entry_deinit(sbpx_entry *e);
/* Build the policy (entries, hosts file, deny listeners, the host's addresses). */
sb_err *sbpx_policy_init(sbpx_policy *p, const sb_egress_config *c);
void sbpx_policy_deinit(sbpx_policy *p);
/* Parse hosts(5) text into p->hosts (bounded: lines past the limit are an error). */
sb_err *sbpx_hosts_parse(sbpx_policy *p, const char *text, size_t len);

/* Is host (a name or an IP literal, lower case) at port on the allowlist? Returns the first
 * matching entry or NULL. *inspect is set when every matching entry is a request rule (so the
 * requests themselves must be checked, and HTTPS terminated). */
const sbpx_entry *sbpx_host_allowed(const sbpx_policy *p, const char *host, int port,
                                    bool *inspect);
/* Is METHOD path allowed to host:port by a request rule (or an entry without one)? */
bool sbpx_request_allowed(const sbpx_policy *p, const char *host, int port, const char *method,
                          const char *path);
/* The address check (DESIGN.md §9.10): NULL when sa may be connected to, else the rule that
 * denies it (static text). An IP/CIDR entry lifts the range check, never the daemon's own
 * listeners. */
const char *sbpx_addr_denied(const sbpx_policy *p, const struct sockaddr *sa);
/* Resolve host (name or literal) to at most max addresses with port set: the hosts file when
 * configured, else getaddrinfo. Returns the count, 0 when unknown (*why says why). */
size_t sbpx_resolve(const sbpx_policy *p, const char *host, int port, struct sockaddr_storage *out,
                    size_t max, const char **why);
/* "a.b.c.d" / "v6" text of an address. */
void sbpx_addr_text(const struct sockaddr *sa, char *buf, size_t len);
/* Split "host:port" / "[v6]:port" (CONNECT target); host lower-cased into host. */
bool sbpx_split_hostport(const char *s, char *host, size_t hostlen, int *port, int defport);

/* ---- proxy_tls.c */
typedef struct sbpx_tls sbpx_tls;
/* A new CA, or the one given (both PEM) when a re-adopted lease's sandbox trusts it. */
sb_err *sbpx_tls_new(const char *upstream_ca, const char *name, const char *ca_cert_pem,
                     const char *ca_key_pem, sbpx_tls **out);
void sbpx_tls_free(sbpx_tls *t);
char *sbpx_tls_ca_pem(const sbpx_tls *t);
/* The CA's private key (PEM, malloc'd): only ever written 0600 outside every sandbox. */
char *sbpx_tls_ca_key_pem(const sbpx_tls *t);

/* ---- proxy.c, for proxy_lease.c */
/* sb_egress_proxy_new with the CA kept from before (both PEM, or NULL = a new one). */
sb_err *sbpx_proxy_new(const sb_egress_config *c, const char *name, const char *ca_cert_pem,
                       const char *ca_key_pem, sb_egress_proxy **out);
/* The CA key (PEM, malloc'd) or NULL when the proxy terminates no TLS. */
char *sbpx_proxy_ca_key_pem(const sb_egress_proxy *p);
/* Called for each denied destination ("HOST:PORT (rule)") from the connection's thread. */
/* Serve fd on the calling thread once a worker has taken next(next_arg), the caller's own loop
 * (a listener's or a forwarder's): the connection skips a thread wake-up and the loop goes on
 * in parallel. False when the proxy refused fd (stopping, full: answered 503 and closed) or no
 * worker could take next: the caller keeps its loop. */
bool sbpx_proxy_serve_here(sb_egress_proxy *p, int fd, void (*next)(void *), void *next_arg);
void sbpx_proxy_on_denied(sb_egress_proxy *p, void (*fn)(void *ud, const char *what), void *ud);
/* An SSL_CTX (as void *, to keep OpenSSL out of this header) serving a certificate for host;
 * cached. NULL with *err on failure. */
void *sbpx_tls_server_ctx(sbpx_tls *t, const char *host, sb_err **err);
/* The upstream client context (verifies against the system store plus upstream_ca). */
void *sbpx_tls_client_ctx(sbpx_tls *t);

/* ---- shared by proxy_policy.c, proxy_addr.c and egress_config.c */
void sbpx_lower(char *s);
/* A host name of [A-Za-z0-9._-], at most 253 characters. */
bool sbpx_name_ok(const char *s);
/* An IPv4 or IPv6 literal into addr (16 bytes); *family AF_INET or AF_INET6. */
bool sbpx_parse_addr(const char *s, int *family, unsigned char *addr);
bool sbpx_entry_matches_host(const sbpx_entry *e, const char *host, int port);
void sbpx_set_port(struct sockaddr_storage *ss, int port);

/* ---- proxy_pool.c: worker threads, reused across connections */
typedef struct sbpx_pool sbpx_pool;
sbpx_pool *sbpx_pool_new(size_t max_threads, size_t stack);
/* Run fn(arg) on an idle worker or a new one; false when stopping, at the bound, or a thread
 * cannot start (fn is then not called). */
bool sbpx_pool_run(sbpx_pool *p, void (*fn)(void *), void *arg);
/* Stop: queued tasks still run; waits until every worker has ended. */
void sbpx_pool_free(sbpx_pool *p);

/* ---- proxy_relay.c: I/O over a socket or a TLS session, and the relay */
typedef struct sbpx_io {
	int fd;
	struct ssl_st *ssl; /* NULL: plain socket */
} sbpx_io;
/* >0 bytes, 0 EOF, -1 error, -2 nothing yet (TLS records that carried no data) */
ssize_t sbpx_io_read(sbpx_io *o, void *buf, size_t len);
bool sbpx_io_write(sbpx_io *o, const void *buf, size_t len);
bool sbpx_io_pending(sbpx_io *o);
/* Send pre (prelen bytes) to b, then move bytes both ways until the upstream b is done or
 * neither side moves for a long time; *up_out and *down_out receive the bytes moved. */
void sbpx_relay(sbpx_io *a, sbpx_io *b, const char *pre, size_t prelen, uint64_t *up_out,
                uint64_t *down_out);

/* ---- proxy_head.c: the request head */
typedef struct sbpx_head {
	char *buf; /* the raw bytes read (head + whatever followed) */
	size_t len, head_len;
	char method[16];
	char *target;
	char version[16];
	char *lines[128]; /* header lines "Name: value" (pointers into a copy) */
	size_t nlines;
	char *copy;
} sbpx_head;
/* Read a head from o and parse it: 0, -1 when the client went away, or the HTTP status to
 * answer (*why set). */
int sbpx_head_read(sbpx_io *o, sbpx_head *h, const char **why);
/* Parse h->buf[0..h->head_len) (a complete head, ending in an empty line): 0 or the status to
 * answer (*why set). */
int sbpx_head_parse(sbpx_head *h, const char **why);
/* Where the head in b[0..n) ends (just past "\r\n\r\n"), 0 when it does not yet. */
size_t sbpx_head_end(const char *b, size_t n);
void sbpx_head_deinit(sbpx_head *h);
/* Whether a header line names the header name (case-insensitive). */
bool sbpx_header_is(const char *line, const char *name);
/* The head sent upstream: origin-form path, hop-by-hop and proxy headers dropped, the secret
 * line (when given) replacing any header secret_header, and "Connection: close". */
void sbpx_upstream_head(const sbpx_head *h, const char *path, const char *host_hdr,
                        const char *secret_header, const char *secret_line, sb_buf *out);

#endif
