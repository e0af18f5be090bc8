/* Internals of the bridge client (bridge_http.c: one HTTP exchange with libcurl, bridge.c:
 * lease operations, bridge_runner.c: the runner). Not installed.
 */
#ifndef SANDBAR_RUNNER_BRIDGE_INT_H
#define SANDBAR_RUNNER_BRIDGE_INT_H

#include <sandbar/runner.h>

#include "sse.h" /* beside this header */
#include "sb_json.h"

#define BRIDGE_PREFIX_V1 "/api/paperclip-sandbox/v1"
#define BRIDGE_PREFIX_V2 "/api/paperclip-sandbox/v2"
#define BRIDGE_REQUEST_TIMEOUT_DEFAULT 300000
#define BRIDGE_COMMAND_TIMEOUT_DEFAULT 300000
/* The protocol has no "no deadline": a request without one asks for the longest timeout the
 * protocol allows (the plugin's timeoutMs range ends at 24 h), not the 5-minute default. */
#define BRIDGE_COMMAND_TIMEOUT_MAX 86400000
#define BRIDGE_EXEC_GRACE_MS 60000
#define BRIDGE_MAX_JSON_BODY (96u * 1024u * 1024u) /* complete results repeat 2 x 4 MiB */

/* Connection settings, copied from sb_bridge_opts. */
typedef struct bridge_conf {
	char *base_url; /* without trailing slashes */
	char *token;
	char *hmac_key_id, *hmac_secret;
	char *host; /* Host header to send and sign; NULL = the URL's */
	char *ca_file;
	bool insecure;
	char *unix_socket;
	int64_t request_timeout_ms;
} bridge_conf;

sb_err *bridge_conf_init(bridge_conf *c, const sb_bridge_opts *o);
void bridge_conf_deinit(bridge_conf *c);

typedef struct bridge_req {
	const char *method;
	const char *path; /* appended to base_url; may carry a query */
	const char *body; /* JSON; NULL = no body */
	size_t body_len;
	int upload_fd; /* seekable fd streamed as the body (PUT tar); -1 = none */
	uint64_t upload_len;
	const char *content_type; /* NULL = application/json when there is a body */
	const char *accept;       /* NULL = application/json */
	int64_t timeout_ms;       /* whole exchange; 0 = none */
	bool sign;                /* HMAC-sign instead of the bearer token */
	sb_sse_parser *sse;       /* a 2xx text/event-stream body is fed here */
	int download_fd;          /* a 2xx body is written here; -1 = buffer it */
	sb_cancel *cancel;
	sb_progress_fn progress; /* upload/download bytes */
	void *progress_ud;
} bridge_req;

#define BRIDGE_REQ_INIT                                                                            \
	{                                                                                          \
		.upload_fd = -1, .download_fd = -1                                                 \
	}

typedef struct bridge_resp {
	long status;
	bool is_sse; /* the body went to req->sse */
	sb_buf body; /* buffered body (non-2xx, or 2xx without sse/download_fd) */
} bridge_resp;

void bridge_resp_deinit(bridge_resp *r);

/* One exchange. Transport failures (connect, TLS, timeout, cancel, an SSE or download sink
 * error) are errors; any HTTP status is a response. */
sb_err *bridge_http_do(const bridge_conf *c, const bridge_req *rq, bridge_resp *rs);

/* The error a non-2xx response stands for: the server's {error, message, details?} mapped to
 * an sb_errcode (acquisition_in_progress SB_E_BUSY, acquisition_conflict SB_E_CONFLICT,
 * sandbox_state_lost SB_E_STATE_LOST, unauthorized SB_E_AUTH, invalid_request SB_E_INVAL,
 * not_found SB_E_NOTFOUND, anything else SB_E_PROTOCOL), the message prefixed with what.
 * *code_out (optional) gets the server's error code ("" when none) and *lease_out (optional,
 * malloc'd) details.providerLeaseId. */
sb_err *bridge_error(const bridge_resp *rs, const char *what, char **code_out, char **lease_out);

/* Sign a request: the headers (one "Name: value" per string) to add. Fails with
 * SB_E_UNSUPPORTED when no key is configured. */
sb_err *bridge_sign(const bridge_conf *c, const char *method, const char *path_and_query,
                    const char *host, const char body_sha256_hex[SB_SHA256_HEX_LEN],
                    char ***headers_out);

/* The connection of a client and whether its requests are signed (bridge.c). */
const bridge_conf *bridge_client_conf(sb_bridge *b, bool *sign);

/* The exec wire format, shared by the runner and its tests. */
typedef struct bridge_exec {
	const char *lease_id, *acquisition_id;
	char *const *argv;
	const char *cwd;
	char *const *env; /* KEY=VALUE */
	const char *stdin_data;
	size_t stdin_len;
	bool has_stdin;
	int64_t timeout_ms;
	bool stream;
	const char *session_strategy, *session_id;
} bridge_exec;

/* Parse and validate a result object ({exitCode:int|null, timedOut:bool, stdout, stderr}) into
 * res, keeping the last cap bytes of each stream. SB_E_PROTOCOL
 * "malformed_execute_response: ..." when the shape is wrong. */
sb_err *bridge_parse_result(const json_t *j, size_t cap, sb_exec_result *res);

#endif
