/* HMAC-SHA256 request signing (include/sandbar/auth.h, docs/auth.md): canonical paths and
 * queries, the canonical string, the signer clients use, the Authorization header parser and the
 * key ring file. The daemon's verifier (authn.c) builds on the same functions, so signer and
 * verifier cannot drift apart. */
#include <sandbar/auth.h>

#include <ctype.h>
#include <stdlib.h>
#include <openssl/crypto.h>
#include <string.h>

static bool unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void encode(sb_buf *out, const char *s, size_t n, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/')) {
			sb_buf_appendc(out, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			sb_buf_append(out, e, 3);
		}
	}
}

sb_err *sb_hmac_canonical_path(const char *raw_path, size_t len, sb_buf *out)
{
	if (len == 0 || raw_path[0] != '/')
		return sb_err_new(SB_E_INVAL, "request path must start with '/'");
	if (len > SB_HMAC_CANON_MAX)
		return sb_err_new(SB_E_TOO_LARGE, "request path longer than %u bytes",
		                  SB_HMAC_CANON_MAX);
	sb_buf d = SB_BUF_INIT;
	sb_err *err = sb_url_decode(raw_path, len, false, &d);
	if (!err)
		encode(out, d.data ? d.data : "", d.len, true);
	sb_buf_deinit(&d);
	return err;
}

typedef struct qpair {
	sb_buf k, v;
} qpair;

static int qpair_cmp(const void *a, const void *b)
{
	const qpair *x = a, *y = b;
	int c = strcmp(sb_buf_cstr((sb_buf *)&x->k), sb_buf_cstr((sb_buf *)&y->k));
	if (c)
		return c;
	return strcmp(sb_buf_cstr((sb_buf *)&x->v), sb_buf_cstr((sb_buf *)&y->v));
}

sb_err *sb_hmac_canonical_query(const char *raw_query, size_t len, sb_buf *out)
{
	if (len > SB_HMAC_CANON_MAX)
		return sb_err_new(SB_E_TOO_LARGE, "query string longer than %u bytes",
		                  SB_HMAC_CANON_MAX);
	sb_query q;
	sb_err *err = sb_query_parse(raw_query, len, &q);
	if (err)
		return err;
	qpair *v = sb_xcalloc(q.n ? q.n : 1, sizeof *v);
	for (size_t i = 0; i < q.n; i++) {
		sb_buf_appends(&v[i].k, q.pairs[i].key);
		sb_buf_appends(&v[i].v, q.pairs[i].value);
	}
	qsort(v, q.n, sizeof *v, qpair_cmp);
	for (size_t i = 0; i < q.n; i++) {
		if (i)
			sb_buf_appendc(out, '&');
		encode(out, sb_buf_cstr(&v[i].k), v[i].k.len, false);
		sb_buf_appendc(out, '=');
		encode(out, sb_buf_cstr(&v[i].v), v[i].v.len, false);
		sb_buf_deinit(&v[i].k);
		sb_buf_deinit(&v[i].v);
	}
	free(v);
	sb_query_deinit(&q);
	return NULL;
}

sb_err *sb_hmac_canonical_request(const char *method, const char *path_and_query, const char *host,
                                  const char *timestamp, const char *nonce,
                                  const char *body_sha256_hex, sb_buf *out)
{
	sb_buf_appends(out, SB_HMAC_SCHEME "\n");
	for (const char *m = method; *m; m++)
		sb_buf_appendc(out, (char)toupper((unsigned char)*m));
	sb_buf_appendc(out, '\n');
	const char *q = strchr(path_and_query, '?');
	size_t plen = q ? (size_t)(q - path_and_query) : strlen(path_and_query);
	sb_err *err = sb_hmac_canonical_path(path_and_query, plen, out);
	if (err)
		return err;
	sb_buf_appendc(out, '\n');
	if (q && (err = sb_hmac_canonical_query(q + 1, strlen(q + 1), out)))
		return err;
	sb_buf_appendc(out, '\n');
	for (const char *h = host; *h; h++)
		sb_buf_appendc(out, (char)tolower((unsigned char)*h));
	sb_buf_appendf(out, "\n%s\n%s\n", timestamp, nonce);
	for (const char *d = body_sha256_hex; *d; d++)
		sb_buf_appendc(out, (char)tolower((unsigned char)*d));
	return NULL;
}

static bool key_id_ok(const char *s, size_t n)
{
	if (n == 0 || n > SB_HMAC_KEY_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

sb_err *sb_hmac_sign_request(const char *key_id, const void *secret, size_t secret_len,
                             const char *method, const char *path_and_query, const char *host,
                             const char *body_sha256_hex, int64_t unix_s, const char *nonce,
                             sb_hmac_headers *out)
{
	memset(out, 0, sizeof *out);
	if (!key_id_ok(key_id, strlen(key_id)))
		return sb_err_new(SB_E_INVAL, "bad HMAC key id \"%s\": use [A-Za-z0-9_.-]{1,%d}",
		                  key_id, SB_HMAC_KEY_ID_MAX);
	if (!body_sha256_hex)
		body_sha256_hex = SB_SHA256_EMPTY_HEX;
	if (strlen(body_sha256_hex) != SB_SHA256_HEX_LEN - 1)
		return sb_err_new(SB_E_INVAL, "body digest must be 64 hex characters");
	snprintf(out->content_sha256, sizeof out->content_sha256, "%s", body_sha256_hex);
	snprintf(out->timestamp, sizeof out->timestamp, "%lld",
	         (long long)(unix_s ? unix_s : sb_wall_ms() / 1000));
	if (nonce) {
		size_t n = strlen(nonce);
		if (n < SB_HMAC_NONCE_MIN || n > SB_HMAC_NONCE_MAX)
			return sb_err_new(SB_E_INVAL, "nonce must have %d..%d characters",
			                  SB_HMAC_NONCE_MIN, SB_HMAC_NONCE_MAX);
		memcpy(out->nonce, nonce, n + 1);
	} else {
		unsigned char rnd[16];
		sb_err *err = sb_random_bytes(rnd, sizeof rnd);
		if (err)
			return err;
		sb_hex_encode(rnd, sizeof rnd, out->nonce);
	}
	sb_buf canon = SB_BUF_INIT;
	sb_err *err = sb_hmac_canonical_request(method, path_and_query, host, out->timestamp,
	                                        out->nonce, out->content_sha256, &canon);
	if (err) {
		sb_buf_deinit(&canon);
		return err;
	}
	unsigned char mac[SB_SHA256_LEN];
	char hex[SB_SHA256_HEX_LEN];
	sb_hmac_sha256(secret, secret_len, canon.data, canon.len, mac);
	sb_hex_encode(mac, sizeof mac, hex);
	snprintf(out->authorization, sizeof out->authorization, "%s key=%s, signature=%s",
	         SB_HMAC_SCHEME, key_id, hex);
	sb_buf_deinit(&canon);
	return NULL;
}

sb_err *sb_hmac_parse_authorization(const char *value, size_t len,
                                    char key_id[SB_HMAC_KEY_ID_MAX + 1],
                                    unsigned char signature[SB_SHA256_LEN])
{
	size_t slen = strlen(SB_HMAC_SCHEME);
	if (len < slen || strncasecmp(value, SB_HMAC_SCHEME, slen) != 0 ||
	    (len > slen && value[slen] != ' ' && value[slen] != '\t'))
		return sb_err_new(SB_E_AUTH, "Authorization scheme is not " SB_HMAC_SCHEME);
	size_t i = slen;
	bool have_key = false, have_sig = false;
	while (i < len) {
		while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		if (i >= len)
			break;
		size_t start = i;
		while (i < len && value[i] != ',' && value[i] != ' ' && value[i] != '\t')
			i++;
		const char *item = value + start;
		size_t n = i - start;
		if (n > 4 && strncmp(item, "key=", 4) == 0) {
			if (have_key || !key_id_ok(item + 4, n - 4))
				return sb_err_new(SB_E_AUTH,
				                  "bad or repeated key= in Authorization");
			memcpy(key_id, item + 4, n - 4);
			key_id[n - 4] = '\0';
			have_key = true;
		} else if (n > 10 && strncmp(item, "signature=", 10) == 0) {
			if (have_sig || n - 10 != 2 * SB_SHA256_LEN)
				return sb_err_new(SB_E_AUTH,
				                  "bad or repeated signature= in Authorization");
			if (!sb_hex_decode(item + 10, SB_SHA256_LEN, signature))
				return sb_err_new(SB_E_AUTH, "signature is not hexadecimal");
			have_sig = true;
		} else {
			return sb_err_new(SB_E_AUTH, "unknown item in Authorization header");
		}
	}
	if (!have_key || !have_sig)
		return sb_err_new(SB_E_AUTH, "Authorization needs key= and signature=");
	return NULL;
}

sb_err *sb_hmac_keyring_parse(const char *text, size_t len, sb_hmac_keyring *out)
{
	memset(out, 0, sizeof *out);
	size_t i = 0, lineno = 0;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		lineno++;
		size_t a = i;
		while (a < end && isspace((unsigned char)text[a]))
			a++;
		size_t b = end;
		while (b > a && isspace((unsigned char)text[b - 1]))
			b--;
		if (a < b && text[a] != '#') {
			size_t ks = a;
			while (a < b && !isspace((unsigned char)text[a]))
				a++;
			size_t klen = a - ks;
			while (a < b && isspace((unsigned char)text[a]))
				a++;
			if (!key_id_ok(text + ks, klen) || a >= b) {
				sb_hmac_keyring_deinit(out);
				return sb_err_new(SB_E_INVAL,
				                  "HMAC keys line %zu: expected \"key-id secret\" "
				                  "with key-id [A-Za-z0-9_.-]{1,%d}",
				                  lineno, SB_HMAC_KEY_ID_MAX);
			}
			if (b - a < 16) {
				sb_hmac_keyring_deinit(out);
				return sb_err_new(
				    SB_E_INVAL, "HMAC keys line %zu: secret shorter than 16 bytes",
				    lineno);
			}
			char id[SB_HMAC_KEY_ID_MAX + 1];
			memcpy(id, text + ks, klen);
			id[klen] = '\0';
			if (sb_hmac_keyring_find(out, id)) {
				sb_hmac_keyring_deinit(out);
				return sb_err_new(SB_E_INVAL,
				                  "HMAC keys line %zu: key id \"%s\" repeated",
				                  lineno, id);
			}
			out->keys = sb_xrealloc(out->keys, (out->n + 1) * sizeof *out->keys);
			sb_hmac_key *k = &out->keys[out->n++];
			memcpy(k->id, id, klen + 1);
			k->secret = sb_xmemdup(text + a, b - a);
			k->secret_len = b - a;
		}
		i = end + 1;
	}
	return NULL;
}

sb_err *sb_hmac_keyring_load(const char *path, sb_hmac_keyring *out)
{
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 1u << 20, &b);
	if (!err)
		err = sb_hmac_keyring_parse(b.data ? b.data : "", b.len, out);
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	sb_buf_deinit(&b);
	if (err)
		return sb_err_prefix(err, "loading HMAC keys from %s", path);
	return NULL;
}

const sb_hmac_key *sb_hmac_keyring_find(const sb_hmac_keyring *kr, const char *id)
{
	for (size_t i = 0; i < kr->n; i++)
		if (strcmp(kr->keys[i].id, id) == 0)
			return &kr->keys[i];
	return NULL;
}

void sb_hmac_keyring_deinit(sb_hmac_keyring *kr)
{
	for (size_t i = 0; i < kr->n; i++) {
		OPENSSL_cleanse(kr->keys[i].secret, kr->keys[i].secret_len);
		free(kr->keys[i].secret);
	}
	free(kr->keys);
	kr->keys = NULL;
	kr->n = 0;
}
