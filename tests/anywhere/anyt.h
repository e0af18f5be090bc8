/* Helpers of the anywhere tests: a private (0700) root whose path has spaces, holding copies of
 * the built `sandbar`, `sandbar-init` and `sandbar-serve`, a workspace and a state directory; and a
 * real `sandbar serve` started from that copy, stopped (and its leases destroyed) on every exit
 * path: by the teardown, by an atexit handler when a failure unwinds, and by SIGTERM
 * (PR_SET_PDEATHSIG) when the test program itself dies. */
#ifndef SB_ANYT_H
#define SB_ANYT_H

#include "../cli/clitest.h"

typedef struct anyt {
	clit t;       /* t.root: 0700; t.bin: the copied sandbar; t.state: "<root>/st ate" */
	char *bindir; /* "<root>/dir with spaces/bin" */
	/* the daemon, when started */
	pid_t pid;
	int port;
	char *dstate, *token, *sock, *log, *url;
} anyt;

/* cmocka setup/teardown. */
int anyt_setup(void **state);
int anyt_teardown(void **state);

/* Start `sandbar serve` (the copy) listening on listen_host:<free port> and a unix socket in
 * the root, with the state directory in the root and the token at token_path (written 0600
 * when token_mode is 0600, else with that mode). Returns 0 once it listens, or its exit code
 * when it refused to start (its stderr in *err_out, malloc'd, when err_out). */
int anyt_serve(anyt *a, const char *listen_host, const char *token_path, unsigned token_mode,
               char **err_out);
/* Stop the daemon (SIGTERM, wait) and destroy its leases. Idempotent. */
void anyt_stop(anyt *a);

/* HTTP to the daemon with the token (curl); returns the status, the body in *body (malloc'd).
 */
int anyt_http(anyt *a, const char *method, const char *path, const char *json_body, char **body);

/* The first global IPv4 address of this host (not loopback), or NULL. malloc'd. */
char *anyt_host_address(void);

#endif
