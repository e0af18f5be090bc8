/* Authentication middleware: decides, from the request line and headers alone, whether a request
 * may reach the router (bearer token or HMAC signature), and afterwards checks the HMAC body
 * digest against the bytes actually received. Runs for every route except the NOAUTH ones.
 * Never logs or returns a secret.
 */
#ifndef SB_SERVER_AUTHN_H
#define SB_SERVER_AUTHN_H

#include <sandbar/auth.h>
#include <sandbar/base.h>

typedef struct sbs_auth sbs_auth;

typedef struct sbs_auth_config {
	const char *token;           /* NULL = no bearer token */
	const sb_hmac_keyring *keys; /* copied; NULL or empty = no HMAC */
	const char *expected_host;   /* NULL = any Host (HMAC still binds the Host it signed) */
	int64_t skew_s;              /* 0 = SB_HMAC_SKEW_S */
	size_t nonce_cache;          /* max remembered nonces; 0 = default */
	/* Called (outside the auth lock) for every nonce accepted, so that a restarted daemon
	 * still refuses replays inside the window (the store keeps them). May be NULL. */
	sb_err *(*persist)(void *ud, const char *key, int64_t expires_s);
	void *persist_ud;
} sbs_auth_config;

sbs_auth *sbs_auth_new(const sbs_auth_config *cfg);
void sbs_auth_free(sbs_auth *a);
/* Load a nonce remembered by an earlier run (key "<key-id>\n<nonce>"). */
void sbs_auth_remember(sbs_auth *a, const char *key, int64_t expires_s);
/* True when no token and no key is configured: every request is refused. */
bool sbs_auth_fail_closed(const sbs_auth *a);

/* What the header phase saw; filled by sbs_auth_check_headers. */
typedef struct sbs_auth_state {
	bool ok;
	bool hmac;                                /* the body digest must still be checked */
	char key_id[SB_HMAC_KEY_ID_MAX + 1];      /* "bearer" for the token */
	unsigned char body_sha256[SB_SHA256_LEN]; /* declared digest (hmac) */
} sbs_auth_state;

/* Header lookup for the middleware (case-insensitive name), NULL when absent. */
typedef const char *(*sbs_header_fn)(void *ud, const char *name);

/* Check the credentials of a request. raw_target is the request target as received ("/p?q").
 * now_s is the wall clock in unix seconds. Returns NULL and fills st on success; SB_E_AUTH with
 * a message safe to send to the client otherwise. A valid HMAC request's nonce is recorded. */
sb_err *sbs_auth_check_headers(sbs_auth *a, const char *method, const char *raw_target,
                               sbs_header_fn header, void *hud, int64_t now_s, sbs_auth_state *st);
/* After the body: compare its SHA-256 with the declared one (HMAC only). */
sb_err *sbs_auth_check_body(const sbs_auth_state *st, const unsigned char digest[SB_SHA256_LEN]);

/* Parse "Bearer <token>" (scheme case-insensitive, token trimmed). NULL when not a bearer
 * header. Returns a pointer into value and its length. */
const char *sbs_auth_bearer_token(const char *value, size_t *len);

#endif
