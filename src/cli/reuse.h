/* `sandbar run --reuse KEY`: a lease of the embedded sandbox kept between runs and found again
 * by its key, as long as it was made with the same settings and has not sat idle too long. */
#ifndef SB_CLI_REUSE_H
#define SB_CLI_REUSE_H

#include <sandbar/sandbox.h>

#include "lease_store.h"

/* Open the live lease kept under key when its settings' fingerprint matches and it was used
 * less than idle_ms ago; otherwise destroy what is left of it and create a fresh one (saying why
 * on stderr). The lease id is "reuse-KEY" (caller frees). */
sb_err *cli_reuse_acquire(cli_sandbox_env *env, const char *key, const sb_sandbox_opts *sopts,
                          int64_t idle_ms, char **lease_id, sb_sandbox **out);

/* The run using key's lease let it go: its idle time starts now. */
void cli_reuse_release(cli_sandbox_env *env, const char *key);

/* Destroy the reused leases idle past the limit they were made with (and their records),
 * except skip_key's (the run about to take it judges it itself) and any a run holds. One
 * readdir and a stat per key: cheap enough for every run's start. Each removal is reported on
 * out (NULL = silent). Returns how many were removed. */
int cli_reuse_reap(cli_sandbox_env *env, const char *skip_key, FILE *out);

#endif
