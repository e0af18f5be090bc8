/* The daemon's durable state: one SQLite database (WAL) at <state>/sandbar.db holding lease
 * records (live ones and tombstones of destroyed ones) and an audit trail. One connection,
 * serialised by a mutex: writes are small and rare next to exec traffic. */
#ifndef SB_SERVER_STORE_H
#define SB_SERVER_STORE_H

#include <sandbar/base.h>
#include <sandbar/sandbox.h>
#include "sb_json.h"

typedef enum sbs_lease_state {
	SBS_LEASE_PENDING = 0, /* claimed, sandbox being set up */
	SBS_LEASE_ACTIVE = 1,
	SBS_LEASE_DESTROYING = 2,
	SBS_LEASE_DESTROYED = 3, /* tombstone: the id and its acquisition can never come back */
	SBS_LEASE_LOST = 4, /* the sandbox died (crash, reboot); spooled output still readable */
} sbs_lease_state;

const char *sbs_lease_state_name(sbs_lease_state s);

/* One lease record. Strings are malloc'd (NULL when absent); metadata is a reference. */
typedef struct sbs_lease_info {
	char id[SB_SANDBOX_ID_MAX + 1];
	/* The id of the lease's sandbox (its directory under <state>/leases/, its cgroups): ""
	 * = id. Differs from id only when the lease claimed a warm sandbox (started under an id
	 * of the pool's) and has an id of its own (the bridge's pc-acq-..., a client's lease_id).
	 * sbs_lease_info_sandbox_id() reads it. */
	char sandbox_id[SB_SANDBOX_ID_MAX + 1];
	char *acquisition_id;
	char *fingerprint;
	char *issue_id, *run_id, *reuse_scope;
	/* a lease kept for reuse (POST /v1/leases "reuse_key"): its key, and the fingerprint of
	 * the configuration a reuse must match (network, mounts, limits, callback) */
	char *reuse_key, *reuse_fingerprint;
	char *reason; /* why destroyed / lost */
	sbs_lease_state state;
	bool network; /* mode full */
	/* The normalised network object {"mode", "allow"?, "secrets"?} (secrets by name) and the
	 * mounts [{"host", "path", "mode"}]; NULL = mode none or full as network says / none. */
	json_t *net;
	json_t *mounts;
	sb_sandbox_limits limits;
	sb_sandbox_enforced enforced;
	int64_t ttl_s;
	int64_t created_ms, renewed_ms, expires_ms, finished_ms; /* expires 0 = none */
	json_t *metadata; /* free-form, for route layers (the bridge); may be NULL */
} sbs_lease_info;

void sbs_lease_info_init(sbs_lease_info *li);
/* The id the lease's sandbox has on disk: sandbox_id, else id. */
const char *sbs_lease_info_sandbox_id(const sbs_lease_info *li);
void sbs_lease_info_deinit(sbs_lease_info *li);
void sbs_lease_info_copy(sbs_lease_info *dst, const sbs_lease_info *src);
/* The public JSON form (docs/api.md "Lease"). */
json_t *sbs_lease_info_json(const sbs_lease_info *li);
/* And back (the store keeps records in that form). */
sb_err *sbs_lease_info_from_json(const json_t *j, sbs_lease_info *out);

typedef struct sbs_store sbs_store;

sb_err *sbs_store_open(const char *path, sbs_store **out);
void sbs_store_close(sbs_store *st);
/* Live records are keyed by lease id; tombstones by acquisition id (a destroyed acquisition
 * stays destroyed even when a later acquisition reuses the lease id). */
/* Insert or replace the live record with li->id. */
sb_err *sbs_store_lease_put(sbs_store *st, const sbs_lease_info *li);
/* The live record, else the newest tombstone of that id. SB_E_NOTFOUND when neither. */
sb_err *sbs_store_lease_get(sbs_store *st, const char *id, sbs_lease_info *out);
sb_err *sbs_store_lease_by_acquisition(sbs_store *st, const char *acquisition_id,
                                       sbs_lease_info *out);
/* Every record (tombstones first, then live ones by creation). Free with sbs_store_leases_free. */
sb_err *sbs_store_lease_all(sbs_store *st, sbs_lease_info **out, size_t *n);
void sbs_store_leases_free(sbs_lease_info *v, size_t n);
sb_err *sbs_store_lease_delete(sbs_store *st, const char *id);
/* Atomically drop the live record and write li (state DESTROYED) as its acquisition's tombstone
 * (acquisition "adopted:<id>" when it has none). */
sb_err *sbs_store_lease_tombstone(sbs_store *st, const sbs_lease_info *li);
int64_t sbs_store_tombstone_count(sbs_store *st);
/* How long tombstones and audit lines are kept: a destroy stays idempotent for a week. */
#define SBS_RETENTION_MS (7LL * 24 * 3600 * 1000)
/* Forget tombstones finished before cutoff_ms, and audit lines written before it. */
sb_err *sbs_store_prune_tombstones(sbs_store *st, int64_t cutoff_ms);
sb_err *sbs_store_prune_audit(sbs_store *st, int64_t cutoff_ms);
int64_t sbs_store_audit_count(sbs_store *st);
/* Accepted HMAC nonces, so that a restart does not reopen the replay window. */
sb_err *sbs_store_nonce_put(sbs_store *st, const char *key, int64_t expires_s);
/* Call fn for every nonce that expires after now_s. */
sb_err *sbs_store_nonces_load(sbs_store *st, int64_t now_s,
                              void (*fn)(void *ud, const char *key, int64_t expires_s), void *ud);
sb_err *sbs_store_nonces_prune(sbs_store *st, int64_t now_s);
/* Named sessions of the bridge protocol (store_sessions.c), kept with their lease (dropped with
 * it) and bounded per lease: each (lease, acquisition, session id) has a cwd (NULL = none yet)
 * and an environment ("K=V" entries). */
/* *found false (and *cwd, *env NULL) when there is no such session. */
sb_err *sbs_store_session_get(sbs_store *st, const char *lease_id, const char *acquisition_id,
                              const char *session_id, bool *found, char **cwd, char ***env);
/* Insert or replace, then keep only the max_per_lease most recently used sessions of the lease. */
sb_err *sbs_store_session_put(sbs_store *st, const char *lease_id, const char *acquisition_id,
                              const char *session_id, const char *cwd, char *const *env,
                              int64_t used_ms, size_t max_per_lease);
/* Forget one session, or (session_id NULL) every session of that lease and acquisition. */
sb_err *sbs_store_session_drop(sbs_store *st, const char *lease_id, const char *acquisition_id,
                               const char *session_id);
int64_t sbs_store_session_count(sbs_store *st, const char *lease_id);
/* Append an audit line (detail may be NULL; borrowed). The trail keeps the same days as the
 * tombstones (SBS_RETENTION_MS): the reaper prunes older lines, so it never grows without end. */
sb_err *sbs_store_audit(sbs_store *st, const char *lease_id, const char *action,
                        const json_t *detail);

#endif
