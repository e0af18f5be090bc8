/* Where `sandbar run` executes: an embedded local sandbox (default), the host (--via local), any
 * machine a command prefix reaches (--via 'cmd:ssh -T host --'), or a lease on a daemon or
 * Paperclip-compatible bridge (--bridge URL). Each gives a runner, a remote workspace directory
 * and a lease id to keep or release. */
#ifndef SB_CLI_TARGET_H
#define SB_CLI_TARGET_H

#include <sandbar/runner.h>
#include <sandbar/sandbox.h>

#include "cli.h"

typedef enum cli_via {
	CLI_VIA_SANDBOX,
	CLI_VIA_LOCAL,
	CLI_VIA_PREFIX,
	CLI_VIA_BRIDGE,
} cli_via;

typedef struct cli_target_opts {
	cli_via via;
	char **prefix;          /* CLI_VIA_PREFIX: the command prefix words */
	const char *remote_dir; /* NULL = the target's default */
	const char *bridge_url; /* CLI_VIA_BRIDGE */
	bool network;
	const sb_egress_config *egress; /* CLI_VIA_SANDBOX: network mode allowlist, or NULL */
	uint64_t memory_bytes;
	const sb_sandbox_mount *mounts; /* CLI_VIA_SANDBOX: --mount */
	size_t nmounts;
	const sb_callback_config *callback; /* CLI_VIA_SANDBOX: a callback bridge, or NULL */
	const char *reuse_key;              /* CLI_VIA_SANDBOX: --reuse KEY, or NULL */
	int64_t reuse_idle_ms;
	const cli_config *config;
} cli_target_opts;

typedef struct cli_target {
	cli_via via;
	sb_runner *runner;
	char *remote_dir;    /* where the workspace is staged */
	char *lease_id;      /* printed with --keep; NULL for targets without leases */
	char *local_tmp;     /* CLI_VIA_LOCAL: the temporary remote dir on this host */
	bool remote_tmp;     /* CLI_VIA_PREFIX: remote_dir was created by us (removed on release) */
	sb_sandbox *sandbox; /* CLI_VIA_SANDBOX */
	void *bridge;        /* CLI_VIA_BRIDGE: the bridge lease */
} cli_target;

/* Parse a --via value ("sandbox", "local", "cmd:PREFIX..."): PREFIX is split into words like a
 * shell would (quotes and backslashes; no expansions). */
sb_err *cli_via_parse(const char *s, cli_via *via, char ***prefix);

sb_err *cli_target_acquire(const cli_target_opts *opts, cli_target *t);
/* Release (destroy) the lease or temp dir; with keep, only close handles. */
sb_err *cli_target_release(cli_target *t, bool keep);

/* The bridge half (bridge_target.c): a lease on a sandbar daemon or Paperclip bridge. */
sb_err *cli_bridge_acquire(const cli_target_opts *opts, cli_target *t);
sb_err *cli_bridge_release(cli_target *t, bool keep);

#endif
