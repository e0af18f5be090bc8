/* Idle sleep of leases (DESIGN.md §9.6 `sleeping`): a lease with a sleep-after policy (the
 * bridge's keepAlive:false + sleepAfter, the native API's sleep_after) that has had no request
 * and no running command for that long has its command processes frozen (sb_sandbox_freeze);
 * the next request to it thaws them before it is served (the lease service's use hook). Policy
 * and state live in the state database, so a sleeping lease stays asleep, and is woken, across
 * daemon restarts. While any lease may sleep, the daemon holds an empty freezer group frozen
 * (sb_freezer_hold), so that a wake is a plain thaw (tens of microseconds) rather than a
 * kernel code rewrite (milliseconds); the reaper takes and lets go of it. */
#ifndef SB_SERVER_SLEEP_H
#define SB_SERVER_SLEEP_H

#include "leases.h"
#include "store.h"

typedef struct sbs_sleep sbs_sleep;

sb_err *sbs_sleep_new(sbs_leases *ls, sbs_store *st, sbs_sleep **out);
void sbs_sleep_free(sbs_sleep *z);
/* after_ms 0: never sleeps (keepAlive). */
sb_err *sbs_sleep_set_policy(sbs_sleep *z, const char *lease_id, int64_t after_ms);
/* One pass (the reaper's period): put idle leases to sleep, forget gone ones. */
void sbs_sleep_tick(sbs_sleep *z, int64_t now_ms);
/* Explicitly: SB_E_BUSY while a command runs (sleep only); SB_E_NOTFOUND for no live lease. */
sb_err *sbs_sleep_now(sbs_sleep *z, const char *lease_id);
sb_err *sbs_sleep_wake(sbs_sleep *z, const char *lease_id);
/* For lease JSON (docs/api.md "Lease"): "state":"sleeping" and "sleeping_since" when asleep,
 * "sleep_after_ms" when a policy is set. */
void sbs_sleep_annotate(sbs_sleep *z, json_t *lease);
size_t sbs_sleep_count(sbs_sleep *z);
/* A duration: a number of seconds, or a string "<n>[ms|s|m|h|d]" (bare number = seconds). */
sb_err *sbs_parse_duration_ms(const json_t *v, int64_t *ms);

#endif
