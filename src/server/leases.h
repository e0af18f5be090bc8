/* The lease service: acquire (idempotent on acquisition id, fingerprint-checked), list, renew,
 * destroy with tombstones, execution fences that hold off a destroy, the TTL reaper and the
 * re-adoption of sandboxes at start. Shared by the native /v1 routes and the Paperclip bridge.
 *
 * Locking: one mutex for the table; sandbox creation and destruction run outside it, guarded
 * by the PENDING / DESTROYING states so that concurrent callers see 503 / 409 instead of
 * waiting.
 */
#ifndef SB_SERVER_LEASES_H
#define SB_SERVER_LEASES_H

#include <sandbar/sandbox.h>

#include "store.h"
#include "sb_json.h"

typedef struct sbs_leases sbs_leases;
typedef struct sbs_lease sbs_lease; /* a referenced live lease */

#define SBS_ACQUISITION_ID_MAX 256

/* Whether id has the form of a lease or exec id, [A-Za-z0-9_-]{1,SB_SANDBOX_ID_MAX}: the ids the
 * sandbox layer accepts, checked here so the client gets a 400 rather than a failed sandbox. */
bool sbs_id_ok(const char *id);

sb_err *sbs_leases_new(const sb_sandbox_config *sbcfg, sbs_store *store, sbs_leases **out);
/* Closes every handle; the sandboxes keep running. */
void sbs_leases_free(sbs_leases *ls);
/* Re-adopt at start: every stored PENDING/ACTIVE/DESTROYING lease is opened again (dead ->
 * LOST; a PENDING one is cleaned up; a DESTROYING one is destroyed), and lease directories on
 * disk without a record are adopted as ACTIVE without an acquisition. */
sb_err *sbs_leases_recover(sbs_leases *ls);

typedef struct sbs_lease_params {
	const char *lease_id;           /* NULL = generated "lease_<32 hex>"; [A-Za-z0-9_-]{1,64} */
	const char *acquisition_id;     /* required, 1..SBS_ACQUISITION_ID_MAX printable bytes */
	const char *fingerprint;        /* NULL = derived from the fields below */
	bool network;                   /* mode full */
	const sb_egress_config *egress; /* mode allowlist: the proxy's config, or NULL */
	char *const *secret_names;      /* the named secrets in egress (fingerprint, lease info) */
	const sb_sandbox_mount *mounts; /* host paths bound into the sandbox (resolved) */
	size_t nmounts;
	const char *const *mount_roots; /* the operator's mount_allow, checked again at create */
	const sb_callback_config *callback; /* a callback bridge for the lease, or NULL */
	const char *callback_json;          /* its request JSON (canonical): in the fingerprint */
	sb_sandbox_limits limits;
	int64_t ttl_s;                               /* 0 = no expiry */
	const char *issue_id, *run_id, *reuse_scope; /* audit; may be NULL */
	/* Keep the lease for reuse under this key (1..SBS_ACQUISITION_ID_MAX printable bytes):
	 * an acquire with the key of a live lease whose configuration (network, mounts, limits,
	 * callback) is the same gets that lease back (SBS_ACQ_REUSED, its TTL renewed); with
	 * another configuration, or a lost sandbox, that lease is destroyed and a new one made.
	 * Not with lease_id. NULL = an ordinary acquire. */
	const char *reuse_key;
	const json_t *metadata; /* stored with the record; borrowed */
	/* Runs after the sandbox exists and before the lease turns ACTIVE (e.g. mkdir, sentinel).
	 * An error destroys the sandbox and fails the acquire. May be NULL. */
	sb_err *(*setup)(void *ud, sb_sandbox *sb);
	void *setup_ud;
} sbs_lease_params;

typedef enum sbs_acquire_outcome {
	SBS_ACQ_CLAIMED,     /* a new lease was created */
	SBS_ACQ_REPLAYED,    /* same acquisition and fingerprint: the existing lease */
	SBS_ACQ_IN_PROGRESS, /* same acquisition still being set up: retry later (503) */
	SBS_ACQ_CONFLICT,    /* acquisition or lease id taken with other parameters/owner (409) */
	SBS_ACQ_COMPLETED,   /* this acquisition's lease was destroyed: never revived (409) */
	SBS_ACQ_DESTROYING,  /* the lease is being destroyed (409) */
	SBS_ACQ_REUSED,      /* reuse_key: the live lease kept under that key, same configuration */
} sbs_acquire_outcome;

const char *sbs_acquire_outcome_name(sbs_acquire_outcome o);

/* Acquire. On success *outcome says what happened and *info (init'ed by the caller, may be
 * NULL) describes the lease (for IN_PROGRESS/CONFLICT/COMPLETED/DESTROYING: the record that
 * stands in the way). An error means the sandbox could not be created or set up (reply 500
 * acquisition_failed) or the store failed. */
sb_err *sbs_leases_acquire(sbs_leases *ls, const sbs_lease_params *p, sbs_acquire_outcome *outcome,
                           sbs_lease_info *info);

/* The fingerprint acquire derives when p->fingerprint is NULL (hex SHA-256); malloc'd. */
char *sbs_lease_params_fingerprint(const sbs_lease_params *p);

/* lease_network.c: the normalised network object of p ({"mode", "allow"?, "secrets"?}) and its
 * mounts ([{"host", "path", "mode"}], NULL when none): the fingerprint and the record use them. */
json_t *sbs_lease_params_network_json(const sbs_lease_params *p);
json_t *sbs_lease_params_mounts_json(const sbs_lease_params *p);
/* Add the live counters of the lease's egress proxy to the "network" object of a Lease JSON
 * (connections_allowed/denied, bytes_up/down, denied, denied_more); nothing without one. */
void sbs_leases_annotate_network(sbs_leases *ls, json_t *lease);
/* Per-lease egress proxy counters as Prometheus text (docs/api.md "Metrics"). */
void sbs_leases_egress_metrics(sbs_leases *ls, sb_buf *out);

/* Record of a lease (tombstones included). SB_E_NOTFOUND when never seen. */
sb_err *sbs_leases_info(sbs_leases *ls, const char *id, sbs_lease_info *out);
/* Every lease as a JSON array (sbs_lease_info_json); tombstones when include_destroyed. */
sb_err *sbs_leases_list(sbs_leases *ls, bool include_destroyed, json_t **out);
void sbs_leases_counts(sbs_leases *ls, uint64_t counts[5]); /* indexed by sbs_lease_state */

enum {
	SBS_GET_ALLOW_LOST = 1u << 0, /* also return LOST leases (sandbox opened dead) */
	SBS_GET_USE = 1u << 1, /* a client's request: the use hook runs (the reaper's probes and
	                        * exec bookkeeping are not uses) */
};
/* The warm pool (warm_pool.h) an acquire of one of its configurations claims a sandbox from
 * instead of starting one (the lease's sandbox_id names it when the lease has an id of its
 * own); NULL = none. Set before serving, cleared after serving stopped. */
struct sbs_warm;
void sbs_leases_set_warm(sbs_leases *ls, struct sbs_warm *w);

/* Called (outside the service's lock) with the id of every lease sbs_leases_get hands out with
 * SBS_GET_USE: the idle-sleep service (sleep.c) counts it as activity and wakes the lease. */
void sbs_leases_set_use_hook(sbs_leases *ls, void (*fn)(void *ud, const char *id), void *ud);
/* A referenced handle of an ACTIVE lease (or LOST with the flag). SB_E_NOTFOUND for unknown or
 * destroyed ids (the message says which), SB_E_BUSY while PENDING, SB_E_CONFLICT while
 * DESTROYING, SB_E_STATE_LOST for a lost one without the flag. Release with sbs_lease_unref. */
sb_err *sbs_leases_get(sbs_leases *ls, const char *id, unsigned flags, sbs_lease **out);
void sbs_lease_unref(sbs_lease *l);
/* The lease's sandbox is gone: an active lease becomes lost (persisted, logged once). Called by
 * the reaper's probe and as soon as an operation on the sandbox reports SB_E_STATE_LOST. */
void sbs_lease_mark_lost(sbs_lease *l, const char *reason);
/* Another reference to a lease already held. */
void sbs_lease_ref(sbs_lease *l);
const char *sbs_lease_id(const sbs_lease *l);
sb_sandbox *sbs_lease_sandbox(sbs_lease *l);
/* The processes running in l's sandbox, as a JSON array of {pid, ppid, pgid, state,
 * rss_bytes, exec_id, cmdline}. */
sb_err *sbs_lease_processes_json(sbs_lease *l, json_t **out);
sbs_leases *sbs_lease_service(sbs_lease *l);
/* Snapshot of the record. */
void sbs_lease_get_info(sbs_lease *l, sbs_lease_info *out);

/* Execution fences: an operation a destroy must not cut short (an exec being started, a file
 * being written, a bridge execution). expires_at_ms 0 = until ended; an expired fence no longer
 * holds off a destroy. Beginning a fence id that is already present renews it and sets
 * *replayed (may be NULL). SB_E_CONFLICT when the lease is not ACTIVE. */
sb_err *sbs_lease_fence_begin(sbs_lease *l, const char *fence_id, int64_t expires_at_ms,
                              bool *replayed);
/* SB_E_NOTFOUND for an unknown fence. */
sb_err *sbs_lease_fence_renew(sbs_lease *l, const char *fence_id, int64_t expires_at_ms);
/* Drop the fence; if a deferred destroy waits and this was the last fence, it runs now. */
void sbs_lease_fence_end(sbs_lease *l, const char *fence_id);

sb_err *sbs_leases_renew(sbs_leases *ls, const char *id, int64_t ttl_s, sbs_lease_info *out);
/* Replace the record's metadata (route layers keep their own fields there). */
sb_err *sbs_leases_set_metadata(sbs_leases *ls, const char *id, const json_t *metadata);

typedef enum sbs_destroy_outcome {
	SBS_DESTROY_DONE,        /* destroyed now */
	SBS_DESTROY_ALREADY,     /* a tombstone: destroyed before (idempotent success) */
	SBS_DESTROY_BUSY,        /* live fences or running execs: refused (409 lease_busy) */
	SBS_DESTROY_CONFLICT,    /* acquisition_id given and it does not own the lease (409) */
	SBS_DESTROY_DEFERRED,    /* marked DESTROYING; destroyed when the last fence ends */
	SBS_DESTROY_IN_PROGRESS, /* another destroy is running */
} sbs_destroy_outcome;

typedef struct sbs_destroy_opts {
	const char *acquisition_id; /* NULL = any owner */
	bool force;                 /* kill running execs and ignore fences */
	bool defer;                 /* when busy: DEFERRED instead of BUSY */
	const char *reason;         /* recorded: "client", "expired", ... */
} sbs_destroy_opts;

/* Destroy a lease. SB_E_NOTFOUND for an id never seen. *busy (optional) receives the fence ids
 * and running exec ids that made it BUSY/DEFERRED (sb_strv_free). An error from the sandbox
 * leaves the record DESTROYING so that a retry finishes the job. */
sb_err *sbs_leases_destroy(sbs_leases *ls, const char *id, const sbs_destroy_opts *o,
                           sbs_destroy_outcome *outcome, char ***busy);

/* One reaper pass: destroy leases whose TTL passed (unless busy: retried next pass), mark dead
 * sandboxes LOST, prune old tombstones. */
void sbs_leases_reap(sbs_leases *ls, int64_t now_ms);

#endif
