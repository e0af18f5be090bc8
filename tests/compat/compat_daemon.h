/* Test helpers for the bridge tests: a real daemon in a child process (its own state directory,
 * a bearer token, 127.0.0.1 on a free port), and a plain libcurl client that returns status,
 * content type and the exact body bytes, so the tests see the wire and not our own client. */
#ifndef BRIDGE_DAEMON_H
#define BRIDGE_DAEMON_H

#include <sandbar/base.h>
#include <sys/types.h>

#include "sb_json.h"

#define CT_TOKEN "compat-test-token-0123456789"

typedef struct ct_daemon {
	pid_t pid;
	int port;
	char *state_dir;
	char *base_url; /* http://127.0.0.1:<port> */
} ct_daemon;

/* Start a daemon; token NULL = none configured (fail closed). hmac_keys_file may be NULL. */
void ct_daemon_start(ct_daemon *d, const char *token, const char *hmac_keys_file);
/* The same with a pinned Host for signed requests (NULL = any) and an SSE keepalive interval
 * (0 = the daemon's default). */
void ct_daemon_start_ex(ct_daemon *d, const char *token, const char *hmac_keys_file,
                        const char *expected_host, int64_t keepalive_ms);
/* All the knobs: zero/NULL fields take the daemon's defaults. */
typedef struct ct_daemon_opts {
	const char *token, *hmac_keys_file, *expected_host;
	int64_t keepalive_ms;
	uint64_t max_output;   /* --max-output */
	const char *state_dir; /* an existing state directory (a restart); NULL = a new one */
} ct_daemon_opts;
void ct_daemon_start_opts(ct_daemon *d, const ct_daemon_opts *o);
/* SIGTERM, wait, remove the state directory (sandboxes destroyed first). */
void ct_daemon_stop(ct_daemon *d);
/* Stop the daemon (its sandboxes and state stay) and start a new one on the same state
 * directory with the test token (a new port: base_url changes). */
void ct_daemon_restart(ct_daemon *d);

/* The daemon one test program's tests share: ct_group_setup (a cmocka group setup) starts it
 * with the test token, ct_group_teardown stops it. */
extern ct_daemon ct_shared;
int ct_group_setup(void **state);
int ct_group_teardown(void **state);

typedef struct ct_resp {
	long status;
	char content_type[128];
	sb_buf body;
	json_t *json; /* parsed body when it is JSON, else NULL */
} ct_resp;

void ct_resp_deinit(ct_resp *r);

/* One request. token NULL = no Authorization header. body may be NULL. on_body, when set, sees
 * every received piece as it arrives (to act in the middle of a stream). */
typedef void (*ct_piece_fn)(void *ud, const char *p, size_t n);
void ct_http(const ct_daemon *d, const char *method, const char *path, const char *token,
             const char *body, ct_piece_fn on_body, void *ud, ct_resp *out);
/* The same with extra request headers ("Name: value" lines; NULL-terminated; may be NULL). */
void ct_http_h(const ct_daemon *d, const char *method, const char *path, const char *token,
               const char *const *headers, const char *body, ct_piece_fn on_body, void *ud,
               ct_resp *out);
/* POST/DELETE with a JSON body built by json_pack-style args, the test token. */
void ct_call(const ct_daemon *d, const char *method, const char *path, json_t *body, ct_resp *out);

/* Host path of a lease's workspace directory (what /workspace is inside). malloc'd. */
char *ct_workspace(const ct_daemon *d, const char *lease_id);
/* Kill every process of a lease's sandbox (as a crash would). */
void ct_kill_sandbox(const ct_daemon *d, const char *lease_id);

#endif
