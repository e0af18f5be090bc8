/* HMAC signing of bridge requests with the daemon's own signer (include/sandbar/auth.h), so the
 * client and the server can never disagree on the canonical form: the four headers of a
 * SANDBAR-HMAC-SHA256 request over method, target, Host, timestamp, nonce and body digest.
 */
#include "bridge_int.h"

#include <sandbar/auth.h>
#include <stdlib.h>
#include <string.h>

sb_err *bridge_sign(const bridge_conf *c, const char *method, const char *path_and_query,
                    const char *host, const char body_sha256_hex[SB_SHA256_HEX_LEN],
                    char ***headers_out)
{
	*headers_out = NULL;
	if (!c->hmac_key_id || !c->hmac_secret)
		return sb_err_new(SB_E_UNSUPPORTED, "no HMAC key is configured for %s",
		                  c->base_url);
	sb_hmac_headers h;
	sb_err *err =
	    sb_hmac_sign_request(c->hmac_key_id, c->hmac_secret, strlen(c->hmac_secret), method,
	                         path_and_query, host, body_sha256_hex, 0, NULL, &h);
	if (err)
		return sb_err_prefix(err, "signing %s %s", method, path_and_query);
	char **v = NULL;
	char *line = sb_strfmt("Authorization: %s", h.authorization);
	sb_strv_push(&v, line);
	free(line);
	line = sb_strfmt("X-Sandbar-Timestamp: %s", h.timestamp);
	sb_strv_push(&v, line);
	free(line);
	line = sb_strfmt("X-Sandbar-Nonce: %s", h.nonce);
	sb_strv_push(&v, line);
	free(line);
	line = sb_strfmt("X-Sandbar-Content-SHA256: %s", h.content_sha256);
	sb_strv_push(&v, line);
	free(line);
	*headers_out = v;
	return NULL;
}
