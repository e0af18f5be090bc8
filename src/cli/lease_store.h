/* Opening kept leases of the embedded sandbox backend by id, from the state directory that
 * `sandbar run --keep` and `sandbar lease acquire` write to (the same one the daemon uses). */
#ifndef SB_CLI_LEASE_STORE_H
#define SB_CLI_LEASE_STORE_H

#include <sandbar/sandbox.h>

#include <stdio.h>

#include "cli.h"

/* A sandbox config whose state_dir is the resolved state directory (owned by the struct). */
typedef struct cli_sandbox_env {
	sb_sandbox_config cfg;
	char *state_dir;
} cli_sandbox_env;

void cli_sandbox_env_init(cli_sandbox_env *env, const cli_config *config);
void cli_sandbox_env_deinit(cli_sandbox_env *env);
/* Open a live lease; the error tells the user how to list leases when the id is unknown. */
sb_err *cli_open_lease(cli_sandbox_env *env, const char *lease_id, sb_sandbox **out);

/* Where `sandbar run` saved what `sandbar pull LEASE` needs (its presence marks a lease that
 * holds work: kept, or orphaned by a killed run). Caller frees. */
char *cli_lease_state_file(const cli_sandbox_env *env, const char *lease_id);

/* Remove the leftovers of dead sandboxes: leases whose sandbar-init is gone and which hold no
 * work (no saved state). Kept and orphaned leases with work stay. Only ids starting with
 * prefix when it is not NULL (`sandbar run` prunes only its own "run-" leases, never a
 * daemon's). Each removal is reported on out (NULL = silent). Returns how many were removed. */
int cli_lease_prune(cli_sandbox_env *env, const char *prefix, FILE *out);

#endif
