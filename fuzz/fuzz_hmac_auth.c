/* Fuzz target: the HMAC Authorization header parser and the canonical request builder never
 * crash, and what the parser accepts has a valid key id and a full 32-byte signature. The
 * input is split at the first newline: Authorization value, then a request target. */
#include <sandbar/auth.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	const char *nl = memchr(p, '\n', size);
	size_t alen = nl ? (size_t)(nl - p) : size;
	char id[SB_HMAC_KEY_ID_MAX + 1];
	unsigned char sig[SB_SHA256_LEN];
	sb_err *err = sb_hmac_parse_authorization(p, alen, id, sig);
	if (!err) {
		size_t n = strlen(id);
		if (n == 0 || n > SB_HMAC_KEY_ID_MAX)
			abort();
	}
	sb_err_free(err);
	if (nl) {
		char *target = sb_xstrndup(nl + 1, size - alen - 1);
		sb_buf out = SB_BUF_INIT;
		err = sb_hmac_canonical_request("GET", target, "h", "1", "nonce-0123456789ab",
		                                SB_SHA256_EMPTY_HEX, &out);
		if (!err && memchr(out.data, '\0', out.len))
			abort(); /* decoded NULs must never reach the canonical string */
		sb_err_free(err);
		sb_buf_deinit(&out);
		free(target);
	}
	return 0;
}
