/* The lease service's insides, shared by its files (leases.c, lease_acquire.c, lease_fences.c,
 * lease_reaper.c) and by nothing else: the table, the lease record with its references and
 * fences. Every function here expects ls->mu held when its name ends in _locked or says so. */
#ifndef SB_SERVER_LEASES_INT_H
#define SB_SERVER_LEASES_INT_H

#include "leases.h"
#include "warm_pool.h"

#include <pthread.h>

typedef struct fence {
	char *id;
	int64_t expires_ms;
} fence;

struct sbs_lease {
	int refs; /* under ls->mu */
	sbs_leases *ls;
	sbs_lease_info info;
	sb_sandbox *sb; /* NULL while PENDING */
	fence *fences;
	size_t nfences;
	bool deferred; /* a destroy waits for the fences/execs to end */
	/* A thread is checking whether a deferred destroy can run now; the lease stays deferred
	 * meanwhile, so a forced destroy can still take it over (and the checker then steps aside).
	 */
	bool rechecking;
	char *deferred_reason;
	bool removed; /* no longer in the table */
};

struct sbs_leases {
	pthread_mutex_t mu;
	const sb_sandbox_config *cfg;
	sbs_store *store;
	sbs_lease **v;
	size_t n;
	int64_t tombstones;
	/* Held across a tombstone's store write and its count, and across the reaper's prune and
	 * recount, so that a recount never misses a tombstone counted but not yet stored. */
	pthread_mutex_t tomb_mu;
	/* Orders the store writes of lease records (sbs_lt_persist_lease, tombstones): taken
	 * before tomb_mu and mu, never while holding either. */
	pthread_mutex_t persist_mu;
	int64_t last_probe_ms;
	void (*use_hook)(void *ud, const char *id); /* idle sleep: a lease was used */
	/* The warm pool acquire claims from, or NULL: set before the daemon serves and cleared
	 * after it stopped serving, so acquire reads it without mu. */
	sbs_warm *warm;
	void *use_ud;
};

void sbs_lt_free(sbs_lease *l);
sbs_lease *sbs_lt_find(sbs_leases *ls, const char *id);
sbs_lease *sbs_lt_find_acq(sbs_leases *ls, const char *acq);
/* The live lease whose sandbox has id sid (sbs_lease_info_sandbox_id), or NULL. */
sbs_lease *sbs_lt_find_sandbox(sbs_leases *ls, const char *sid);
/* The live lease kept for reuse under key (not one being destroyed), or NULL. */
sbs_lease *sbs_lt_find_reuse(sbs_leases *ls, const char *key);
sbs_lease *sbs_lt_add(sbs_leases *ls, const sbs_lease_info *info);
void sbs_lt_remove(sbs_leases *ls, sbs_lease *l);
void sbs_lt_audit(sbs_leases *ls, const char *id, const char *action, json_t *detail);
void sbs_lt_persist(sbs_leases *ls, const sbs_lease_info *li);
/* Store l's info as it is now (see leases.c); the caller holds neither mu nor tomb_mu. */
void sbs_lt_persist_lease(sbs_leases *ls, sbs_lease *l);
sb_err *sbs_lt_find_tombstone(sbs_leases *ls, const char *id);
/* Take mu and find id: the live lease, mu held; or NULL, mu released, and *gone set as
 * sbs_lt_find_tombstone says (NULL: it was destroyed). */
sbs_lease *sbs_lt_lock_find(sbs_leases *ls, const char *id, sb_err **gone);
size_t sbs_lt_live_fences(sbs_lease *l, int64_t now, char ***ids);
sb_err *sbs_lt_destroy_now(sbs_leases *ls, sbs_lease *l, const char *reason);
sb_err *sbs_lt_running_execs(sb_sandbox *sb, char ***ids, size_t *n);

#endif
