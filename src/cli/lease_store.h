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

/* Whether the state saved for lease_id still waits to be brought back: saved by a `sandbar
 * run` (then killed, or its restore failed) or by a `sandbar push`, and not pulled since. The
 * state a `sandbar pull` saves as its next baseline is not, until something saves it anew. */
bool cli_lease_work_pending(const cli_sandbox_env *env, const char *lease_id);
/* After a pull: the state file now saved for lease_id has been brought back. Recorded beside
 * it as the file's identity (device, inode, size, mtime), so that any later save of the state
 * (a new inode: sb_runtime_save renames) makes the work pending again. */
sb_err *cli_lease_mark_pulled(const cli_sandbox_env *env, const char *lease_id);
/* Remove the saved state of lease_id and its pulled mark (the lease is gone or finished). */
void cli_lease_forget_state(const cli_sandbox_env *env, const char *lease_id);

/* Remove the leftovers of dead sandboxes: leases whose sandbar-init is gone and which hold no
 * work (no saved state). Kept and orphaned leases with work stay. Only ids starting with
 * prefix when it is not NULL (`sandbar run` prunes only its own "run-" leases, never a
 * daemon's). Each removal is reported on out (NULL = silent). Returns how many were removed. */
int cli_lease_prune(cli_sandbox_env *env, const char *prefix, FILE *out);

#endif
