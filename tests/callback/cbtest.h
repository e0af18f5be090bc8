/* Helpers for the callback bridge tests: a real HTTP/1.1 upstream on 127.0.0.1 run on threads of
 * the test process (it records every request it receives), the real `sandbar serve` started and
 * killed as a subprocess, and calls into a sandbox through the daemon's exec API. */
#ifndef SB_CBTEST_H
#define SB_CBTEST_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "clitest.h"

#define CBT_TOKEN "cbt-daemon-token-0123456789abcdef"
#define CBT_SECRET "upstream-secret-Zq8Wv4Kt1Lp0"
#define CBT_SECRET_ENV "CBT_UPSTREAM_SECRET"

typedef struct cbt_seen {
	char method[16];
	char *target;  /* path + query */
	char *headers; /* raw header lines */
	sb_buf body;
} cbt_seen;

/* The upstream, HTTP/1.1 with keep-alive (unless the client sends Connection: close). Paths:
 * /api/slow?ms=N answers after N ms (after signalling its arrival); /api/echo* and /api/blobs*
 * answer 200 with the request's body and Content-Type; /api/drop* reads the request and closes
 * without answering; /api/closes* answers, then closes the connection without saying so;
 * anything else answers 200 {"ok":true,"path":...}. Every request is recorded in full, and
 * every accepted connection counted. */
typedef struct cbt_upstream {
	int fd, port;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	cbt_seen *seen;
	size_t nseen;
	int slow_arrived;
	int accepted; /* connections */
	bool stop;
} cbt_upstream;

void cbt_upstream_start(cbt_upstream *u);
void cbt_upstream_stop(cbt_upstream *u);
/* Requests received so far whose target starts with prefix (NULL = all). */
size_t cbt_upstream_count(cbt_upstream *u, const char *prefix);
/* Connections accepted so far. */
int cbt_upstream_accepted(cbt_upstream *u);
/* Wait (<= 30 s, else fail) until n requests to /api/slow have arrived. */
void cbt_upstream_wait_slow(cbt_upstream *u, int n);
/* Copy of the last request whose target starts with prefix (caller frees with
 * cbt_seen_free), NULL when none. */
cbt_seen *cbt_upstream_last(cbt_upstream *u, const char *prefix);
void cbt_seen_free(cbt_seen *s);
/* Does any recorded request contain needle (in target, headers or body)? */
bool cbt_upstream_saw(cbt_upstream *u, const char *needle);

/* Write the config file with [callback up] pointing at the upstream, credential from env. */
char *cbt_write_config(clit *t, const cbt_upstream *u);

typedef struct cbt_daemon {
	pid_t pid;
	int port;
	char *config, *state, *log;
	clit *t;
} cbt_daemon;

void cbt_daemon_start(cbt_daemon *d, clit *t, const char *config);
void cbt_daemon_kill(cbt_daemon *d);    /* SIGKILL and reap */
void cbt_daemon_restart(cbt_daemon *d); /* start again on the same state and port */
void cbt_daemon_stop(cbt_daemon *d);    /* destroy leases, SIGTERM, reap */

/* HTTP to the daemon with the bearer token: returns the status, body in *out (optional). */
long cbt_api(cbt_daemon *d, const char *method, const char *target, const char *json, sb_buf *out);
/* Acquire a lease with the callback JSON (an object's text); returns its id, or NULL with
 * *status (optional) set when the acquire failed. */
char *cbt_acquire(cbt_daemon *d, const char *callback_json, long *status);

typedef struct cbt_result {
	int http;    /* status the in-sandbox client got (0 = none) */
	sb_buf body; /* the response body as the client got it, exact bytes */
	sb_buf err;  /* curl's stderr */
	bool daemon_failed;
} cbt_result;

/* From inside the sandbox of lease: curl METHOD path with optional body (exact bytes) and
 * extra curl arguments; env entries are "K=V" for the command. exec_id may be NULL. */
void cbt_call(cbt_daemon *d, const char *lease, const char *method, const char *path,
              const void *body, size_t blen, const char *const *curl_args, const char *const *env,
              const char *exec_id, cbt_result *res);
void cbt_result_deinit(cbt_result *r);
/* Run a shell script in the sandbox; returns its stdout (malloc'd). */
char *cbt_sh(cbt_daemon *d, const char *lease, const char *script);

/* The script cbt_call runs (exported for the `sandbar run` test). */
extern const char cbt_client_script[];

#endif
