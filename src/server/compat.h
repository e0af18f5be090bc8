/* The Paperclip sandbox bridge protocol (paperclip-bridge-protocol.md) served by the daemon under
 * /api/paperclip-sandbox/v1 and /v2, on top of the daemon's own auth, lease service, exec
 * service and SSE writer. compat_input.c holds the pure pieces (input coercion, lease ids, the
 * command script, UTF-8 repair) so they can be tested and fuzzed without a daemon;
 * compat_routes.c the lease routes, compat_exec.c the exec route.
 */
#ifndef SB_SERVER_COMPAT_H
#define SB_SERVER_COMPAT_H

#include <sandbar/base.h>

typedef struct sbs_server sbs_server;

/* Register every bridge route (both prefixes) and the bridge's 404 fallback. */
void sbs_compat_routes_register(sbs_server *srv);

#define COMPAT_PREFIX_V1 "/api/paperclip-sandbox/v1"
#define COMPAT_PREFIX_V2 "/api/paperclip-sandbox/v2"
#define COMPAT_PROVIDER "sandbar"
#define COMPAT_DEFAULT_CWD "/workspace/paperclip"
#define COMPAT_DEFAULT_SESSION "paperclip"
#define COMPAT_DEFAULT_TIMEOUT_MS 300000
#define COMPAT_MAX_TIMEOUT_MS 86400000
#define COMPAT_DEFAULT_SLEEP_AFTER "10m"
#define COMPAT_SENTINEL_NAME ".paperclip-lease.json"
#define COMPAT_SENTINEL_MAX 4096
#define COMPAT_FENCE_TTL_MS 60000
#define COMPAT_FENCE_RENEW_MS 15000
#define COMPAT_STR_MAX 4096 /* any one string field */

/* ---------------------------------------------------------------- input coercion (§2.1) */

/* Booleans: absent -> def; otherwise true only when exactly JSON true. */
bool compat_bool(const json_t *o, const char *key, bool def);
/* Strings: trimmed; absent, empty or not a string -> def (NULL allowed). malloc'd or NULL. */
char *compat_str(const json_t *o, const char *key, const char *def);
/* Integers as JavaScript's Number() then truncation: numbers and numeric strings; anything
 * non-finite or absent -> def. */
int64_t compat_int(const json_t *o, const char *key, int64_t def);
/* The whole set of lease/exec options every body may carry, with the bridge's defaults. */
typedef struct compat_opts {
	char *remote_cwd; /* requestedCwd, no trailing '/' unless "/" */
	bool named;       /* sessionStrategy != "default" */
	char *session_id;
	bool keep_alive;
	char *sleep_after;
	bool normalize_id;
	int64_t timeout_ms; /* within [1, COMPAT_MAX_TIMEOUT_MS] */
} compat_opts;

/* Fill from a body; SB_E_INVAL for a cwd that is not absolute or a field over COMPAT_STR_MAX. */
sb_err *compat_opts_parse(const json_t *body, compat_opts *out);
void compat_opts_deinit(compat_opts *o);

/* ---------------------------------------------------------------- ids (§2.4) */

/* Normalise as the bridge does (lower-case; runs outside [a-z0-9-] -> '-'; no leading,
 * trailing or repeated '-'). malloc'd. */
char *compat_normalize_id(const char *s);
/* The lease id of an acquisition: "pc-acq-<acquisitionId>" or, for reuse, "pc-scope-<scope>",
 * normalised when normalize. SB_E_INVAL when it is empty or cannot be a sandbox id
 * ([A-Za-z0-9_-]{1,64}). */
sb_err *compat_lease_id(const char *acquisition_id, const char *reuse_scope_id, bool normalize,
                        char **out);
bool compat_is_hex32(const char *s);
/* ^[A-Za-z_][A-Za-z0-9_]*$ */
bool compat_env_key_ok(const char *k);

/* ---------------------------------------------------------------- the mirror (sentinel) */

/* "<cwd>/.paperclip-lease.json" (trailing slashes of cwd removed). malloc'd. */
char *compat_sentinel_path(const char *cwd);
/* The script that creates cwd and atomically replaces the sentinel with json (under set -eu, a
 * quoted pending path removed by an EXIT trap, printf, mv). malloc'd. */
char *compat_sentinel_write_script(const char *cwd, const char *json, const char *pending_tag);

/* ---------------------------------------------------------------- exec composition (§2.6) */

typedef struct compat_cmd {
	const char *command;
	char *const *args;     /* NULL-terminated, may be NULL */
	const char *cwd;       /* NULL = none */
	char *const *env_keys; /* names only: values travel in the exec's environment */
	const char *stdin_tag; /* non-NULL: stdin arrives on the exec's stdin and is staged
	                        * through /tmp/.paperclip-bridge-stdin-<tag> */
} compat_cmd;

/* The `sh -c` script: /etc/profile sourced quietly (client env values restored after it), cd to
 * the cwd, stdin staged through a private temp file that is unlinked before the command runs,
 * then exec of the quoted command and args. malloc'd. */
char *compat_exec_script(const compat_cmd *c);

#endif
