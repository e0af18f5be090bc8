/* Helpers for the server tests: start and stop real daemons (sandbar-serve-test) on a unix
 * socket and on 127.0.0.1, and talk to them with libcurl, signed or not. */
#ifndef SB_SRVTEST_H
#define SB_SRVTEST_H

#include <curl/curl.h>
#include <sandbar/auth.h>
#include <sandbar/base.h>
#include <sys/types.h>

#include "testutil.h"

#define SBT_TOKEN "sbt-token-0123456789abcdef"
#define SBT_KEY1 "k1"
#define SBT_SECRET1 "secret-one-0123456789abcdef"
#define SBT_KEY2 "k2"
#define SBT_SECRET2 "secret-two-0123456789abcdef"
#define SBT_HOST "sandbar.test"

typedef struct sbt_daemon_opts {
	bool tls;
	bool no_token;    /* configure neither token nor keys: fail closed */
	int keepalive_ms; /* 0 = default */
	long max_json_bytes;
	long max_upload_bytes;
	int max_connections;
	int max_waiting_per_peer;
	long header_timeout_ms;
	long max_output; /* bytes per stream of a JSON exec (--max-output); 0 = default */
	int warm;        /* sandboxes in the warm pool (--warm); 0 = none */
} sbt_daemon_opts;

typedef struct sbt_daemon {
	pid_t pid;
	char *dir; /* test root (removed at stop) */
	char *state_dir;
	char *sock;
	char *port_file;
	char *cert; /* TLS certificate (PEM) when tls */
	int port;
	sbt_daemon_opts opts;
} sbt_daemon;

/* Start a daemon listening on both a unix socket and 127.0.0.1:<free port>. */
void sbt_daemon_start(sbt_daemon *d, const sbt_daemon_opts *o);
/* Start again on the same state directory (after a stop or kill). */
void sbt_daemon_restart(sbt_daemon *d);
/* Send sig and wait for the process. Returns its wait status. */
int sbt_daemon_signal(sbt_daemon *d, int sig);
/* Destroy every lease (force), SIGTERM, wait, remove the directory. */
void sbt_daemon_stop(sbt_daemon *d);

/* The halves of a cmocka group fixture around a daemon the file's tests share: curl_global_init
 * then sbt_daemon_start(d, o); sbt_daemon_stop(d) then curl_global_cleanup. */
void sbt_group_start(sbt_daemon *d, const sbt_daemon_opts *o);
void sbt_group_stop(sbt_daemon *d);
/* The calling test needs sandboxes: ok is the group's sbt_sandbox_ok result (see sbt_skip). */
#define SBT_NEED_SANDBOX(ok) SBT_REQUIRE(ok, SBT_NO_SANDBOX)

typedef enum sbt_auth {
	SBT_AUTH_BEARER = 0,
	SBT_AUTH_NONE,
	SBT_AUTH_HMAC,
} sbt_auth;

typedef struct sbt_req {
	const char *method;
	const char *target; /* "/v1/...?..." */
	const void *body;
	size_t body_len; /* 0 with body != NULL: strlen */
	sbt_auth auth;
	bool tcp;          /* via 127.0.0.1 instead of the unix socket */
	const char *token; /* bearer override */
	/* HMAC tampering for the auth matrix */
	const char *key_id, *secret;
	const char *host; /* Host header (default SBT_HOST) */
	int64_t ts_offset_s;
	const char *nonce;
	const char *sign_body; /* sign this body instead of the one sent */
	const char *accept;
	const char *const *headers; /* extra "Name: value", NULL-terminated */
	size_t abort_after;         /* abort the transfer after this many body bytes (0 = never) */
	const char *out_file;       /* stream the body into this file instead of memory */
	const char *in_file;        /* upload this file as the body */
} sbt_req;

typedef struct sbt_resp {
	long status;
	sb_buf body;
	sb_buf headers;
	json_t *json; /* parsed when the body is JSON */
	CURLcode curl_rc;
} sbt_resp;

void sbt_resp_deinit(sbt_resp *r);
/* Perform; returns the status (0 on transport failure). */
long sbt_http(sbt_daemon *d, const sbt_req *rq, sbt_resp *out);
/* Convenience: method + target + JSON body text (may be NULL), bearer auth; returns the parsed
 * JSON (caller decrefs; NULL when not JSON) and *status. */
json_t *sbt_call(sbt_daemon *d, const char *method, const char *target, const char *body,
                 long *status);
/* Prepare a curl handle for rq (for the multi interface); the handle writes into out. */
CURL *sbt_easy(sbt_daemon *d, const sbt_req *rq, sbt_resp *out, struct curl_slist **hdrs);
/* Collect the result of a handle made by sbt_easy (after the multi interface ran it). */
void sbt_easy_finish(CURL *c, sbt_resp *out, struct curl_slist *h);
/* A header value from out->headers (case-insensitive), malloc'd or NULL. */
char *sbt_resp_header(const sbt_resp *r, const char *name);

typedef struct sbt_event {
	char *type;
	char *id;
	json_t *data;
} sbt_event;

/* Complete SSE events in text (comments skipped; *keepalives counts them). */
size_t sbt_sse_parse(const char *text, size_t len, sbt_event **out, size_t *keepalives);
void sbt_events_free(sbt_event *v, size_t n);

/* The string member k of the JSON object j; NULL when j or the member is missing or not a
 * string. */
const char *sbt_jstr(const json_t *j, const char *k);
/* A fresh lease via POST /v1/leases; returns its id (malloc'd). */
char *sbt_acquire(sbt_daemon *d, const char *acquisition_id);
/* Whether the daemon reports it can create sandboxes on this host (GET /v1/health). */
bool sbt_sandbox_ok(sbt_daemon *d);

/* A TCP connection to 127.0.0.1:port (the test fails when it cannot be made). */
int sbt_tcp_connect(int port);

#endif
