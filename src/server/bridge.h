/* The Paperclip sandbox bridge protocol (paperclip-bridge-protocol.md) served by the daemon under
 * /api/paperclip-sandbox/v1 and /v2, on top of the daemon's own auth, lease service, exec
 * service and SSE writer. bridge_input.c holds the pure pieces (input coercion, lease ids, the
 * command script, UTF-8 repair) so they can be tested and fuzzed without a daemon;
 * bridge_routes.c the lease routes, bridge_exec.c the exec route.
 */
#ifndef SB_SERVER_BRIDGE_H
#define SB_SERVER_BRIDGE_H

#include <sandbar/base.h>
#include "sb_json.h"

typedef struct sbs_server sbs_server;

/* Register every bridge route (both prefixes) and the bridge's 404 fallback. */
void sbs_bridge_routes_register(sbs_server *srv);
/* The sandbox configuration of every bridge lease (acquire, G1, probe), named "paperclip":
 * the warm pool keeps sandboxes of exactly this one for the bridge (warm_pool.h). */
struct sbs_warm_config;
void sbs_bridge_warm_config(const sbs_server *srv, struct sbs_warm_config *out);

#define BRIDGE_PREFIX_V1 "/api/paperclip-sandbox/v1"
#define BRIDGE_PREFIX_V2 "/api/paperclip-sandbox/v2"
#define BRIDGE_PROVIDER "sandbar"
#define BRIDGE_DEFAULT_CWD "/workspace/paperclip"
#define BRIDGE_DEFAULT_SESSION "paperclip"
#define BRIDGE_DEFAULT_TIMEOUT_MS 300000
#define BRIDGE_MAX_TIMEOUT_MS 86400000
#define BRIDGE_DEFAULT_SLEEP_AFTER "10m"
#define BRIDGE_SENTINEL_NAME ".paperclip-lease.json"
#define BRIDGE_SENTINEL_MAX 4096
#define BRIDGE_FENCE_TTL_MS 60000
#define BRIDGE_FENCE_RENEW_MS 15000
#define BRIDGE_STR_MAX 4096 /* any one string field */

/* ---------------------------------------------------------------- input coercion (§2.1) */

/* Booleans: absent -> def; otherwise true only when exactly JSON true. */
bool bridge_bool(const json_t *o, const char *key, bool def);
/* Strings: trimmed; absent, empty or not a string -> def (NULL allowed). malloc'd or NULL. */
char *bridge_str(const json_t *o, const char *key, const char *def);
/* Integers as JavaScript's Number() then truncation: numbers and numeric strings; anything
 * non-finite or absent -> def. */
int64_t bridge_int(const json_t *o, const char *key, int64_t def);
/* The whole set of lease/exec options every body may carry, with the bridge's defaults. */
typedef struct bridge_opts {
	char *remote_cwd; /* requestedCwd, no trailing '/' unless "/" */
	bool named;       /* sessionStrategy != "default" */
	char *session_id;
	bool keep_alive;
	char *sleep_after;
	bool normalize_id;
	int64_t timeout_ms; /* within [1, BRIDGE_MAX_TIMEOUT_MS] */
} bridge_opts;

/* Fill from a body; SB_E_INVAL for a cwd that is not absolute or a field over BRIDGE_STR_MAX. */
sb_err *bridge_opts_parse(const json_t *body, bridge_opts *out);
void bridge_opts_deinit(bridge_opts *o);

/* ---------------------------------------------------------------- ids (§2.4) */

/* Normalise as the bridge does (lower-case; runs outside [a-z0-9-] -> '-'; no leading,
 * trailing or repeated '-'). malloc'd. */
char *bridge_normalize_id(const char *s);
/* The lease id of an acquisition: "pc-acq-<acquisitionId>" or, for reuse, "pc-scope-<scope>",
 * normalised when normalize. SB_E_INVAL when it is empty or cannot be a sandbox id
 * ([A-Za-z0-9_-]{1,64}). */
sb_err *bridge_lease_id(const char *acquisition_id, const char *reuse_scope_id, bool normalize,
                        char **out);
bool bridge_is_hex32(const char *s);
/* ^[A-Za-z_][A-Za-z0-9_]*$ */
bool bridge_env_key_ok(const char *k);

/* ---------------------------------------------------------------- the mirror (sentinel) */

/* "<cwd>/.paperclip-lease.json" (trailing slashes of cwd removed). malloc'd. */
char *bridge_sentinel_path(const char *cwd);
/* The script that creates cwd and atomically replaces the sentinel with json (under set -eu, a
 * quoted pending path removed by an EXIT trap, printf, mv). malloc'd. */
char *bridge_sentinel_write_script(const char *cwd, const char *json, const char *pending_tag);

/* ---------------------------------------------------------------- exec composition (§2.6) */

typedef struct bridge_cmd {
	const char *command;
	char *const *args;     /* NULL-terminated, may be NULL */
	const char *cwd;       /* NULL = none */
	char *const *env_keys; /* names only: values travel in the exec's environment */
	const char *stdin_tag; /* non-NULL: stdin arrives on the exec's stdin and is staged
	                        * through /tmp/.paperclip-bridge-stdin-<tag> */
} bridge_cmd;

/* The `sh -c` script: /etc/profile sourced quietly (client env values restored after it), cd to
 * the cwd, stdin staged through a private temp file that is unlinked before the command runs,
 * then exec of the quoted command and args. malloc'd. */
char *bridge_exec_script(const bridge_cmd *c);

#endif
