/* Internals shared by the bridge route files (bridge_routes.c, bridge_release.c, bridge_exec.c)
 * and their ownership service (bridge_owner.c); they need the
 * daemon's service headers, which bridge.h (the pure helpers) does not. */
#ifndef SB_SERVER_BRIDGE_INT_H
#define SB_SERVER_BRIDGE_INT_H

#include "bridge.h"
#include "server_int.h"
#include "sb_json.h"

#define BRIDGE_EXEC_BODY_MAX (64u * 1024u * 1024u) /* /exec JSON, stdin included */

/* Run `sh -c script` at cwd "/" in the sandbox (setup commands: mkdir, the mirror). */
sb_err *bridge_run_sh(sb_sandbox *sb, const char *script, const void *stdin_data, size_t stdin_len,
                      int64_t timeout_ms, sb_exec_result *res);
/* The ownership mirror's JSON, and writing it atomically into o->remote_cwd. */
json_t *bridge_mirror_json(const char *lease_id, const char *acquisition_id,
                           const char *fingerprint, const bridge_opts *o, bool resumed);
sb_err *bridge_write_mirror(sb_sandbox *sb, const char *lease_id, const char *acquisition_id,
                            const char *fingerprint, const bridge_opts *o, bool resumed);
/* The mirror as the sandbox holds it now: NULL (and no error) when missing, corrupt or over
 * BRIDGE_SENTINEL_MAX bytes, since each of those means the same: state lost. */
sb_err *bridge_read_mirror(sb_sandbox *sb, const char *cwd, int64_t timeout_ms, json_t **out);
/* "... failed with exit code N: <stderr>" for a setup command that ran and failed. */
sb_err *bridge_command_failed(const char *action, const sb_exec_result *res);
/* metadata.paperclip of a lease record, NULL when the lease was not made by the bridge. */
const json_t *bridge_record_meta(const sbs_lease_info *li);

/* G1 (pre-ownership) clients: requests under BRIDGE_PREFIX_V1 without an acquisitionId. A
 * lease they acquire is owned by the internal acquisition "g1:<lease id>" (an acquisitionId a
 * G2 client may not use), and only such a lease accepts G1 requests (§9.11: any other answers
 * 409 to a request without acquisitionId). */
#define BRIDGE_G1_ACQ_PREFIX "g1:"
bool bridge_is_g1_acquisition(const char *acquisition_id);
bool bridge_lease_is_g1(const sbs_lease_info *li);
bool bridge_req_is_v1(sbs_req *r);

/* bridge_sessions.c: the env and cwd a named-session exec runs with: the session's, overridden
 * by the request's (which then persist). A new session starts with the request's. Drop forgets
 * one session (after a timeout), or with id NULL every session of the acquisition. */
sb_err *bridge_session_apply(sbs_server *srv, const char *lease_id, const char *acq, const char *id,
                             char ***env, char **cwd);
void bridge_session_drop(sbs_server *srv, const char *lease_id, const char *acq, const char *id);

/* 409: lease_id belongs to a G2 acquisition and the (G1) request named none. */
void bridge_reply_owned_by_v2(sbs_req *r, const char *lease_id);

/* POST /exec (bridge_exec.c); release and DELETE (bridge_release.c). */
void bridge_route_exec(sbs_req *r, void *ud);
void bridge_route_release(sbs_req *r, void *ud);
void bridge_route_delete(sbs_req *r, void *ud);

#endif
