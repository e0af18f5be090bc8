/* sandbar request signing (docs/auth.md): HMAC-SHA256 over a canonical form of an HTTP request,
 * shared by the daemon (which verifies) and by every client (CLI, bridge runner) that signs.
 *
 * Canonical string, lines joined by "\n" (no trailing newline):
 *   SANDBAR-HMAC-SHA256
 *   <METHOD>                 upper case
 *   <canonical path>         percent-decoded, then re-encoded (RFC 3986 unreserved kept, '/' kept)
 *   <canonical query>        pairs decoded, re-encoded like the path (but '/' encoded), sorted
 *                            by key then value (bytewise), joined "k=v&k=v"; "" when none
 *   <host>                   the Host header, lower-cased
 *   <timestamp>              X-Sandbar-Timestamp, decimal unix seconds
 *   <nonce>                  X-Sandbar-Nonce, 16..128 chars of [A-Za-z0-9_-]
 *   <body sha256 hex>        X-Sandbar-Content-SHA256, lower-case hex of the exact body bytes
 * Authorization: SANDBAR-HMAC-SHA256 key=<key-id>, signature=<hex HMAC-SHA256(secret, canonical)>
 */
#ifndef SANDBAR_AUTH_H
#define SANDBAR_AUTH_H

#include <sandbar/base.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_HMAC_SCHEME "SANDBAR-HMAC-SHA256"
#define SB_HMAC_SKEW_S 300 /* accepted clock skew either way, seconds */
#define SB_HMAC_NONCE_MIN 16
#define SB_HMAC_NONCE_MAX 128
#define SB_HMAC_KEY_ID_MAX 64           /* key ids: [A-Za-z0-9_.-]{1,64} */
#define SB_HMAC_CANON_MAX (64u * 1024u) /* bound on path + query in a canonical string */
/* SHA-256 of the empty body, for requests without one. */
#define SB_SHA256_EMPTY_HEX "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* The headers a signed request carries (NUL-terminated values). */
typedef struct sb_hmac_headers {
	char authorization[sizeof(SB_HMAC_SCHEME) + SB_HMAC_KEY_ID_MAX + 96];
	char timestamp[24];
	char nonce[SB_HMAC_NONCE_MAX + 1];
	char content_sha256[SB_SHA256_HEX_LEN];
} sb_hmac_headers;

/* Canonical path of a raw request path (no query): percent-decoded and re-encoded. SB_E_INVAL
 * for a malformed escape, a NUL, a path not starting with '/', or more than SB_HMAC_CANON_MAX
 * bytes. Appends to out. */
sb_err *sb_hmac_canonical_path(const char *raw_path, size_t len, sb_buf *out);
/* Canonical query of a raw query string (the part after '?', without it; may be empty). */
sb_err *sb_hmac_canonical_query(const char *raw_query, size_t len, sb_buf *out);
/* The whole canonical string. path_and_query is the request target as sent ("/v1/x?a=b"). */
sb_err *sb_hmac_canonical_request(const char *method, const char *path_and_query, const char *host,
                                  const char *timestamp, const char *nonce,
                                  const char *body_sha256_hex, sb_buf *out);

/* Sign a request: fills the four headers. body_sha256_hex NULL = the empty body; unix_s 0 = now;
 * nonce NULL = 32 random hex characters. secret is the raw key bytes (the second word of a
 * line of the daemon's --hmac-keys file). */
sb_err *sb_hmac_sign_request(const char *key_id, const void *secret, size_t secret_len,
                             const char *method, const char *path_and_query, const char *host,
                             const char *body_sha256_hex, int64_t unix_s, const char *nonce,
                             sb_hmac_headers *out);

/* Parse an Authorization header value of the SANDBAR-HMAC-SHA256 scheme: the scheme word
 * (case-insensitive), then "key=<id>" and "signature=<64 hex>" separated by ',' and optional
 * spaces, in any order, each exactly once. key_id receives a NUL-terminated copy. */
sb_err *sb_hmac_parse_authorization(const char *value, size_t len,
                                    char key_id[SB_HMAC_KEY_ID_MAX + 1],
                                    unsigned char signature[SB_SHA256_LEN]);

/* Key ring: "key-id secret" lines (blank lines and '#' comments ignored). */
typedef struct sb_hmac_key {
	char id[SB_HMAC_KEY_ID_MAX + 1];
	unsigned char *secret;
	size_t secret_len;
} sb_hmac_key;

typedef struct sb_hmac_keyring {
	sb_hmac_key *keys;
	size_t n;
} sb_hmac_keyring;

sb_err *sb_hmac_keyring_load(const char *path, sb_hmac_keyring *out);
sb_err *sb_hmac_keyring_parse(const char *text, size_t len, sb_hmac_keyring *out);
const sb_hmac_key *sb_hmac_keyring_find(const sb_hmac_keyring *kr, const char *id);
void sb_hmac_keyring_deinit(sb_hmac_keyring *kr);

#ifdef __cplusplus
}
#endif
#endif
