/* A real `sandbar serve` for benchmarks and soak scenarios: started in a child process on a
 * unix socket in a fresh 0711 directory (so sandboxes can bind from below it), called with
 * libcurl and the bearer token, and measured from outside (RSS, open descriptors, database
 * size), so its figures are its own. */
#ifndef SB_BENCHDAEMON_H
#define SB_BENCHDAEMON_H

#include <sandbar/base.h>

#include <curl/curl.h>
#include <sys/types.h>

#define SBB_TOKEN "bench-token-0123456789abcdef" /* the daemon's bearer token */

#define SBB_MAX_EXTRA 24

typedef struct sbb_daemon {
	pid_t pid;
	const char
	    *extra[SBB_MAX_EXTRA]; /* extra `sandbar serve` arguments (the caller's strings) */
	size_t nextra;
	char dir[64];   /* $TMPDIR/sandbar-<tag>-XXXXXX */
	char sock[100]; /* dir/sock */
	char state[128];
} sbb_daemon;

/* Start the daemon (extra_args: NULL-terminated extra `sandbar serve` arguments, or NULL) and
 * wait until /v1/health answers; false (with a message on stderr) if it did not. Raises our
 * RLIMIT_NOFILE to its hard limit first. */
bool sbb_daemon_start(sbb_daemon *d, const char *tag, const char *const *extra_args);
/* (SBB_DAEMON_LOG=FILE appends the daemon's log to FILE.) */
/* SIGKILL the daemon, then start it again on the same state and socket (sandboxes outlive it);
 * false (with a message on stderr) when it did not come back. */
bool sbb_daemon_kill_restart(sbb_daemon *d);
/* SIGTERM, wait, and remove its directory. */
void sbb_daemon_stop(sbb_daemon *d);
/* One request on c (a handle of the caller's thread); the status, 0 when none arrived. body
 * NULL is a GET-style request without a body. The reply goes into out. */
long sbb_daemon_call(const sbb_daemon *d, CURL *c, const char *method, const char *target,
                     const char *body, sb_buf *out);
/* The same with a body of len bytes (binary: an archive). */
long sbb_daemon_call_body(const sbb_daemon *d, CURL *c, const char *method, const char *target,
                          const void *body, size_t len, sb_buf *out);
/* The value of "key":"..." in a JSON reply, copied into buf (empty when absent). */
const char *sbb_json_str(const char *json, const char *key, char *buf, size_t size);
/* The daemon's resident memory (KiB), open descriptors, and the bytes of sandbar.db in use
 * (pages minus free pages, the write-ahead log included; -1 when unreadable). */
long sbb_daemon_rss_kib(const sbb_daemon *d);
long sbb_daemon_fds(const sbb_daemon *d);
long long sbb_daemon_db_bytes(const sbb_daemon *d);
/* Rows of one table of sandbar.db, -1 when unreadable. */
long long sbb_daemon_db_rows(const sbb_daemon *d, const char *table);

#endif
