/* sandbar daemon (DESIGN.md §6): the authenticated HTTP/1.1 server behind `sandbar serve`.
 *
 * The CLI fills an sb_server_config, then sb_server_new() + sb_server_start() +
 * sb_server_run_until_signal() + sb_server_free(). Everything (auth, routes, lease store,
 * exec streaming, reaper, metrics) lives behind this handle; docs/api.md lists the routes.
 */
#ifndef SANDBAR_SERVER_H
#define SANDBAR_SERVER_H

#include <sandbar/base.h>
#include <sandbar/sandbox.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_SERVER_LISTEN_DEFAULT "127.0.0.1:7469"

/* Bounds; 0 in the config = these defaults. */
#define SB_SERVER_MAX_CONNECTIONS_DEFAULT 8192 /* with a complete request: a thread each */
#define SB_SERVER_MAX_WAITING_DEFAULT 8192     /* still sending their request head */
#define SB_SERVER_HEADER_TIMEOUT_MS_DEFAULT 10000
#define SB_SERVER_IDLE_TIMEOUT_S_DEFAULT 30 /* a kept-alive connection between requests */
#define SB_SERVER_MAX_HEADER_BYTES_DEFAULT (32u * 1024u) /* request line + headers */
#define SB_SERVER_MAX_JSON_BYTES_DEFAULT (1u << 20)      /* JSON request bodies */
#define SB_SERVER_MAX_JSON_DEPTH_DEFAULT 32
#define SB_SERVER_MAX_UPLOAD_BYTES_DEFAULT (4ull << 30) /* files and workspace uploads */
#define SB_SERVER_OUTPUT_CAP_DEFAULT SB_SANDBOX_SPOOL_BYTES_DEFAULT /* JSON exec result */
#define SB_SERVER_KEEPALIVE_MS_DEFAULT 15000                        /* SSE ": keepalive" interval */
#define SB_SERVER_REAP_MS_DEFAULT 1000                              /* reaper period */
#define SB_SERVER_DRAIN_MS_DEFAULT 10000                            /* SIGTERM: wait for requests */
#define SB_SERVER_NONCE_CACHE_DEFAULT 200000                        /* remembered HMAC nonces */

typedef struct sb_server_limits {
	unsigned max_connections;      /* connections past their request head (thread each) */
	unsigned max_waiting;          /* connections still sending their request head */
	unsigned max_waiting_per_peer; /* of those, per uid (unix socket) or address (TCP); a
	                                * new one evicts the peer's oldest */
	int64_t header_timeout_ms;     /* to send a complete request head */
	unsigned idle_timeout_s;       /* a kept-alive connection between two requests */
	size_t max_header_bytes;
	size_t max_json_bytes;
	size_t max_json_depth;
	uint64_t max_upload_bytes;
	/* The most output per stream a JSON exec result (native or bridge) returns; a longer one is
	 * a 413 output_too_large, never a cut result. At most the sandbox spool size. */
	uint64_t output_cap;
	int64_t keepalive_ms;
	int64_t reap_ms;
	int64_t drain_ms;
	size_t nonce_cache;
} sb_server_limits;

/* Strings are borrowed during sb_server_new (copied). Zero/NULL fields take defaults. */
typedef struct sb_server_config {
	const char *listen;      /* "HOST:PORT" ("[::1]:7469" for IPv6); NULL = default, unless
	                          * socket_path is set and listen_tcp is false */
	bool listen_tcp;         /* set by sb_server_config_init; clear to serve only the socket */
	const char *socket_path; /* unix socket (mode 0660), NULL = none */
	const char *state_dir;   /* NULL = $XDG_STATE_HOME/sandbar, /var/lib/sandbar for root */
	const char *token;       /* bearer token; NULL = token_file, then env SANDBAR_TOKEN */
	const char *token_file;
	const char *hmac_keys_file; /* "key-id secret" lines */
	const char *expected_host;  /* pinned Host of HMAC-signed requests; NULL = any */
	const char *tls_cert_file;  /* PEM; both or neither */
	const char *tls_key_file;
	sb_server_limits limits;
	sb_sandbox_config sandbox; /* state_dir is filled from ours */
	const char *overlay_dir;   /* kept by PUT workspace; NULL = ".paperclip-runtime" */
	bool access_log;           /* one JSON line per request on the log fd; default true */
	/* The operator's [callback NAME] entries that acquire's `callback` field may name
	 * (borrowed: they must outlive the server). */
	const sb_callback_entry *callbacks;
	size_t ncallbacks;
	/* The callback bridge every Paperclip-compat lease gets (its clients cannot ask for one):
	 * the JSON of acquire's `callback` field, or just the NAME of a [callback NAME] entry,
	 * meaning {"name": NAME, "preset": "paperclip"}. NULL = none. */
	const char *compat_callback;
	/* The operator's named secrets ([serve] secret.NAME, DESIGN.md §9.11) that acquire's
	 * network.secrets may name; their values are read by the daemon, never sent to a client
	 * or a sandbox (borrowed: they must outlive the server). */
	const sb_egress_secret_entry *secrets;
	size_t nsecrets;
	/* Host paths below which acquire's mounts may bind ([serve] mount_allow, NULL-terminated;
	 * NULL = no mounts through the API). Copied. */
	const char *const *mount_allow;
	/* Test options for every allowlist lease's proxy: a hosts file for its resolver and an
	 * extra CA for upstreams (NULL = DNS, the system store). Copied. */
	const char *egress_hosts_file;
	const char *egress_upstream_ca;
	/* Sandboxes of the default acquire configuration kept started (`serve --warm N`,
	 * [serve] warm = N): 0 = none, at most 64. Destroyed when the daemon stops. */
	unsigned warm;
} sb_server_config;

void sb_server_config_init(sb_server_config *cfg);

typedef struct sb_server sb_server;

/* Load keys/token/TLS material, open the state (SQLite, WAL), re-adopt leases. Does not listen.
 * Warns (and refuses every request later) when neither a token nor HMAC keys are configured. */
sb_err *sb_server_new(const sb_server_config *cfg, sb_server **out);
/* Start listening (threads of its own). */
sb_err *sb_server_start(sb_server *s);
/* TCP port actually bound (useful with "127.0.0.1:0"); 0 when not listening on TCP. */
int sb_server_port(const sb_server *s);
/* Block until SIGTERM or SIGINT (blocked in the calling thread and delivered through a
 * signalfd; other threads should block them too) or sb_server_request_stop(); then stop
 * accepting, drain in-flight requests for up to drain_ms, end open streams (without an `end`
 * event: clients reattach) and return. Sandboxes keep running. */
sb_err *sb_server_run_until_signal(sb_server *s);
/* Ask run_until_signal to return (thread-safe, async-signal-safe). */
void sb_server_request_stop(sb_server *s);
/* Stop listening and drain (idempotent); called by run_until_signal and sb_server_free. */
void sb_server_stop(sb_server *s);
void sb_server_free(sb_server *s);

#ifdef __cplusplus
}
#endif
#endif
