/* The warm pool (`sandbar serve --warm N`, issue 15): sandboxes started ahead of time, N for
 * each configuration the daemon names (the native default, the Paperclip bridge's), so that an
 * acquire of exactly one of those configurations claims one instead of starting a sandbox. A
 * claimed sandbox leaves the pool for good; the pool only ever refills with new sandboxes (a
 * background thread per configuration), never with returned ones. */
#ifndef SB_SERVER_WARM_POOL_H
#define SB_SERVER_WARM_POOL_H

#include <sandbar/sandbox.h>

#include "leases.h"

#define SBS_WARM_MAX 64        /* the most --warm takes per configuration: each is a sandbox */
#define SBS_WARM_CONFIGS_MAX 4 /* configurations one pool keeps */

typedef struct sbs_warm sbs_warm;

/* A configuration the pool keeps sandboxes of. Everything not named here is the default: no
 * egress allowlist, no mounts, no named secrets, every limit 0 (the operator's defaults). */
typedef struct sbs_warm_config {
	const char *name;                   /* [a-z0-9-]{1,32}: health, metrics, log, markers */
	bool network;                       /* mode full; false = none */
	const sb_callback_config *callback; /* borrowed (outlives the pool); NULL = none */
	const char *callback_json;          /* its canonical JSON: NULL exactly when callback is */
} sbs_warm_config;

/* Start a pool of n (1..SBS_WARM_MAX) sandboxes for each of the nconfigs (1..
 * SBS_WARM_CONFIGS_MAX) configurations (copied; the strings and callbacks they point to, and
 * cfg, are borrowed and must outlive the pool), made with cfg; the refill threads start at
 * once and fill it in the background. */
sb_err *sbs_warm_start(const sb_sandbox_config *cfg, const sbs_warm_config *configs,
                       size_t nconfigs, unsigned n, sbs_warm **out);
/* Stop the refill threads and destroy every sandbox still waiting (a daemon shutdown). */
void sbs_warm_stop(sbs_warm *w);

/* Whether an acquire with these parameters gets exactly the sandbox configuration c makes:
 * the same network mode (none or full; an egress allowlist never matches), the same callback
 * (both none, or the same canonical JSON), no mounts, no named secrets, every limit 0. The
 * lease id, TTL, audit fields and metadata do not matter (set at the claim). */
bool sbs_warm_matches(const sbs_warm_config *c, const sbs_lease_params *p);
/* A warm sandbox of the configuration p asks for, now the caller's (it never returns to the
 * pool), or NULL when no configuration matches or none of it waits; *config (may be NULL)
 * names the configuration it came from. Never waits for a sandbox to start; wakes the
 * configuration's refill thread. */
sb_sandbox *sbs_warm_take(sbs_warm *w, const sbs_lease_params *p, const char **config);
/* The claimed sandbox's lease record is stored: recovery now goes by the record, not by the
 * pool's marker (removed here). */
void sbs_warm_claimed(sbs_warm *w, const char *id);

/* One configuration's figures. */
typedef struct sbs_warm_stats {
	const char *name;
	unsigned size;    /* n */
	unsigned ready;   /* started and waiting now */
	uint64_t claimed; /* acquires that took one */
	uint64_t empty;   /* acquires of this configuration that found none waiting */
} sbs_warm_stats;
/* Fill out[0..] (at most max) in the order the configurations were given; returns how many. */
size_t sbs_warm_stats_get(sbs_warm *w, sbs_warm_stats *out, size_t max);
/* Over every configuration: how many sandboxes the pool keeps and how many wait now. */
void sbs_warm_counts(sbs_warm *w, unsigned *size, unsigned *ready);

/* Recovery at start: each warm sandbox an earlier daemon left (its marker in <state>/warm/,
 * whatever its configuration) is destroyed, unless known(ud, id) says a lease record owns it
 * (claimed just before the crash); the markers go either way. Returns how many sandboxes it
 * destroyed. */
size_t sbs_warm_recover(const sb_sandbox_config *cfg, bool (*known)(void *ud, const char *id),
                        void *ud);

#endif
