/* Helpers for the warm-pool tests (sync.warm_*): a real daemon (sandbar-serve-test, the library
 * `sandbar serve` wraps) with --warm N, the pool's sandboxes as the state directory shows them
 * (<state>/warm/<id> markers, lease.json) and the host processes inside a sandbox's cgroup. */
#ifndef SB_SYNC_WARMTEST_H
#define SB_SYNC_WARMTEST_H

#include "srvtest.h"

/* curl_global_init, a daemon with a pool of n, and a check that sandboxes can be made here. */
void warmt_start(sbt_daemon *d, int n);
/* The daemon of a warm-pool test group: cmocka setup (`serve --warm 2`) and teardown. */
extern sbt_daemon warmt_daemon;
int warmt_setup(void **state);
int warmt_teardown(void **state);
/* The configurations `serve --warm N` keeps N sandboxes of each: the native API's default and
 * the Paperclip bridge's (network full, the operator's compat_callback: none here). */
#define WARMT_DEFAULT "default"
#define WARMT_BRIDGE "paperclip"
#define WARMT_CONFIGS 2
/* GET /v1/health's "warm" and "warm_ready" (config NULL: the totals), else the size and ready
 * count of warm_pools.<config>. */
void warmt_counts(sbt_daemon *d, const char *config, int *size, int *ready);
/* warm_pools.<config>.claimed and .empty: acquires that claimed one, that found none. */
void warmt_claims(sbt_daemon *d, const char *config, int *claimed, int *empty);
/* Wait (at most 30 s) until every configuration has n ready (and the markers say so too);
 * fails the test otherwise. */
void warmt_wait_ready(sbt_daemon *d, int n);
/* The ids of the sandboxes waiting in the pool for config (NULL: any; their markers, which name
 * the configuration), NULL-terminated (sb_strv_free). */
char **warmt_ids(sbt_daemon *d, const char *config);
bool warmt_has(char *const *ids, const char *id);
/* The "sandbox_id" of lease id (GET /v1/leases/{id}): its directory under <state>/leases/. */
char *warmt_sandbox_id(sbt_daemon *d, const char *id);
/* The cgroup directories and init's host pid and start time a lease's lease.json records. */
typedef struct warmt_sandbox {
	char **cgroups;
	long init_pid;
	long long init_start;
} warmt_sandbox;
void warmt_sandbox_read(sbt_daemon *d, const char *id, warmt_sandbox *out);
void warmt_sandbox_deinit(warmt_sandbox *s);
/* Host processes in a cgroup of lease id (any hierarchy: /proc/PID/cgroup names
 * /sandbar/<id>-...). */
int warmt_procs(const char *id);
/* Whether the process recorded as the sandbox's init still runs (same pid and start time). */
bool warmt_init_alive(const warmt_sandbox *s);
/* POST /api/paperclip-sandbox/v2/leases/acquire for acquisition acq (environment "env", run
 * "run"); returns providerLeaseId (malloc'd) or fails the test. */
char *warmt_bridge_acquire(sbt_daemon *d, const char *acq);
/* POST /v1/leases with body; returns the lease id (malloc'd) or fails the test. */
char *warmt_acquire(sbt_daemon *d, const char *body);
/* Run script in lease id (JSON exec); returns its stdout (malloc'd), fails on a non-zero exit. */
char *warmt_exec(sbt_daemon *d, const char *id, const char *script);
void warmt_destroy(sbt_daemon *d, const char *id);

/* Shell lines for the claim tests: WARMT_CHECK_LEFT prints one line per thing an earlier
 * claim could have left (marks in the workspace, /tmp and $HOME; its background process);
 * WARMT_DIRTY leaves each of them. */
#define WARMT_CHECK_LEFT                                                                           \
	"for f in /workspace/warm-mark /tmp/warm-mark \"$HOME/warm-mark\"; do "                    \
	"[ -e \"$f\" ] && echo \"left: $f\"; done; "                                               \
	"for f in /proc/[0-9]*/cmdline; do "                                                       \
	"[ \"$(tr '\\0' ' ' < $f 2>/dev/null)\" = 'sleep 7777 ' ] && echo 'process left'; done; "
#define WARMT_DIRTY                                                                                \
	"echo x > /workspace/warm-mark; echo x > /tmp/warm-mark; echo x > \"$HOME/warm-mark\"; "   \
	"setsid sleep 7777 </dev/null >/dev/null 2>&1 & sleep 0.2; "

#endif
