/* The warm pool (`sandbar serve --warm N`, issue 15): N sandboxes of the default acquire
 * configuration started ahead of time, so that a matching acquire claims one instead of
 * starting a sandbox. A claimed sandbox leaves the pool for good; the pool only ever refills
 * with new sandboxes (a background thread), never with returned ones. */
#ifndef SB_SERVER_WARM_POOL_H
#define SB_SERVER_WARM_POOL_H

#include <sandbar/sandbox.h>

#include "leases.h"

#define SBS_WARM_MAX 64 /* the most --warm takes: each one is a running sandbox */

typedef struct sbs_warm sbs_warm;

/* Start a pool of n (1..SBS_WARM_MAX) sandboxes made with cfg (borrowed: it must outlive the
 * pool); the refill thread starts at once and fills it in the background. */
sb_err *sbs_warm_start(const sb_sandbox_config *cfg, unsigned n, sbs_warm **out);
/* Stop the refill thread and destroy every sandbox still waiting (a daemon shutdown). */
void sbs_warm_stop(sbs_warm *w);

/* Whether an acquire with these parameters may take a warm sandbox: no lease id of its own,
 * network none, no egress, callback or mounts, every limit the default. The TTL does not
 * matter (set at the claim). */
bool sbs_warm_matches(const sbs_lease_params *p);
/* A warm sandbox, now the caller's (it never returns to the pool), or NULL when none waits.
 * Never waits for a sandbox to start; wakes the refill thread. */
sb_sandbox *sbs_warm_take(sbs_warm *w);
/* The claimed sandbox's lease record is stored: recovery now goes by the record, not by the
 * pool's marker (removed here). */
void sbs_warm_claimed(sbs_warm *w, const char *id);
/* The pool's size and how many sandboxes wait in it now. */
void sbs_warm_counts(sbs_warm *w, unsigned *size, unsigned *ready);

/* Recovery at start: each warm sandbox an earlier daemon left (its marker in <state>/warm/)
 * is destroyed, unless known(ud, id) says a lease record owns it (claimed just before the
 * crash); the markers go either way. Returns how many sandboxes it destroyed. */
size_t sbs_warm_recover(const sb_sandbox_config *cfg, bool (*known)(void *ud, const char *id),
                        void *ud);

#endif
