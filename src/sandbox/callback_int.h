/* Internals of the callback bridge (issue 16, DESIGN.md §9.11, §9.14): the bounded HTTP/1.1
 * request parser and route matcher (callback_http.c, fuzzed), the configuration (callback_config.c)
 * and the host-side relay (callback.c). */
#ifndef SANDBAR_CALLBACK_INT_H
#define SANDBAR_CALLBACK_INT_H

#include <sandbar/sandbox.h>

#include "sb_json.h"

#define SBCB_HEAD_MAX (16u * 1024u) /* request line + headers */
#define SBCB_HEADERS_MAX 64
#define SBCB_PATH_MAX 4096
#define SBCB_FORWARD_NAME "callback" /* the init forward (see src/init/forward.c) */

typedef struct sbcb_header {
	char *name; /* lower-cased */
	char *value;
} sbcb_header;

typedef struct sbcb_request {
	char method[16];
	char *path;  /* "/a/b", checked: no dot segments, no encoded '/', '.' or '\' */
	char *query; /* "?a=b" or "" */
	sbcb_header headers[SBCB_HEADERS_MAX];
	size_t nheaders;
	bool has_length;
	uint64_t content_length;
} sbcb_request;

/* Length of the head in buf (through the blank line), 0 while incomplete. */
size_t sbcb_head_len(const char *buf, size_t len);
/* Parse a complete head of len bytes. Returns 0, or the HTTP status to answer (400, 431, 501,
 * 505) with *why set to a static message. out is filled as far as parsed; free with
 * sbcb_request_deinit in either case. */
int sbcb_parse_head(const char *buf, size_t len, sbcb_request *out, const char **why);
void sbcb_request_deinit(sbcb_request *r);
/* First value of a (lower-case) header, NULL when absent. */
const char *sbcb_header_get(const sbcb_request *r, const char *name);
/* Does path match the anchored pattern? Patterns are literal text, "\." for a dot, and
 * "[^/]+" for one or more characters other than '/'; an optional leading '^' and trailing '$'
 * are accepted. */
bool sbcb_route_match(const char *pattern, const char *path);
/* Is pattern one sbcb_route_match understands? */
bool sbcb_route_valid(const char *pattern);
/* Is a Content-Type value JSON (application/json or application/<x>+json)? */
bool sbcb_is_json_type(const char *ct);
/* Is the method one that may change state upstream (anything but GET, HEAD, OPTIONS)? */
bool sbcb_unsafe_method(const char *m);

/* callback_config.c */
/* The config as JSON text (for run/callback.json), and back. */
/* callback_respond.c: a whole response to the sandboxed client, then shutdown(SHUT_WR); errors
 * are ignored (the client went away). */
void sbcb_respond(int fd, int status, const char *headers, const void *body, size_t len,
                  bool head_only);
void sbcb_respond_json(int fd, int status, const char *json);
void sbcb_respond_error(int fd, int status, const char *msg, bool retryable);
void sbcb_respond_indeterminate(int fd);

/* callback.c: the relay of one lease. Start takes c (freed by the relay; on failure, still the
 * caller's) and listens on the in-sandbox port (0: any); stop serves what is queued, then
 * drops the starter's reference. */
struct sbcb_relay;
sb_err *sbcb_relay_start(sb_sandbox *sb, const sb_sandbox_config *cfg, sb_callback_config *c,
                         const char *token, int port, struct sbcb_relay **out);
int sbcb_relay_port(const struct sbcb_relay *r);
void sbcb_relay_stop(struct sbcb_relay *r);

char *sbcb_config_dump(const sb_callback_config *c);
sb_err *sbcb_config_load(const char *json_text, size_t len, sb_callback_config **out);
/* Default ceilings and header allowlist. */
#define SBCB_MAX_BODY_DEFAULT ((uint64_t)10 * 1024 * 1024 + 64 * 1024)
#define SBCB_QUEUE_DEFAULT 64u
#define SBCB_TIMEOUT_MS_DEFAULT 30000

#endif
