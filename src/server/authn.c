/* Authentication before routing. Bearer tokens are compared through SHA-256 digests in constant
 * time; HMAC requests are checked for the pinned Host, the timestamp window, a fresh nonce and
 * the signature over the canonical string (hmac.c), and the declared body digest is compared
 * with the received body after the upload. Nonces live in a hash table that forgets entries
 * once their timestamp leaves the window, bounded in size (full = refuse, never forget early). */
#include "authn.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct nonce_ent {
	struct nonce_ent *next;
	int64_t expires_s;
	char key[]; /* "<key-id>\n<nonce>" */
} nonce_ent;

struct sbs_auth {
	bool have_token;
	unsigned char token_digest[SB_SHA256_LEN];
	sb_hmac_keyring keys;
	char *expected_host;
	int64_t skew_s;
	size_t nonce_max;
	pthread_mutex_t mu;
	nonce_ent **buckets;
	size_t nbuckets;
	size_t nnonces;
	int64_t last_purge_s;
	sb_err *(*persist)(void *ud, const char *key, int64_t expires_s);
	void *persist_ud;
};

sbs_auth *sbs_auth_new(const sbs_auth_config *cfg)
{
	sbs_auth *a = sb_xcalloc(1, sizeof *a);
	if (cfg->token && cfg->token[0]) {
		a->have_token = true;
		sb_sha256_once(cfg->token, strlen(cfg->token), a->token_digest);
	}
	if (cfg->keys) {
		for (size_t i = 0; i < cfg->keys->n; i++) {
			a->keys.keys =
			    sb_xrealloc(a->keys.keys, (a->keys.n + 1) * sizeof(sb_hmac_key));
			sb_hmac_key *k = &a->keys.keys[a->keys.n++];
			*k = cfg->keys->keys[i];
			k->secret = sb_xmemdup(cfg->keys->keys[i].secret, k->secret_len);
		}
	}
	if (cfg->expected_host && cfg->expected_host[0]) {
		a->expected_host = sb_xstrdup(cfg->expected_host);
		for (char *p = a->expected_host; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	a->skew_s = cfg->skew_s > 0 ? cfg->skew_s : SB_HMAC_SKEW_S;
	a->nonce_max = cfg->nonce_cache ? cfg->nonce_cache : 200000;
	a->persist = cfg->persist;
	a->persist_ud = cfg->persist_ud;
	a->nbuckets = 4096;
	a->buckets = sb_xcalloc(a->nbuckets, sizeof *a->buckets);
	pthread_mutex_init(&a->mu, NULL);
	return a;
}

void sbs_auth_free(sbs_auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nbuckets; i++) {
		nonce_ent *e = a->buckets[i];
		while (e) {
			nonce_ent *n = e->next;
			free(e);
			e = n;
		}
	}
	free(a->buckets);
	sb_hmac_keyring_deinit(&a->keys);
	OPENSSL_cleanse(a->token_digest, sizeof a->token_digest);
	free(a->expected_host);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

bool sbs_auth_fail_closed(const sbs_auth *a)
{
	return !a->have_token && a->keys.n == 0;
}

const char *sbs_auth_bearer_token(const char *value, size_t *len)
{
	if (strncasecmp(value, "Bearer", 6) != 0 || (value[6] != ' ' && value[6] != '\t'))
		return NULL;
	const char *p = value + 6;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strlen(p);
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	*len = n;
	return p;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static void purge_locked(sbs_auth *a, int64_t now_s)
{
	for (size_t i = 0; i < a->nbuckets; i++) {
		nonce_ent **pp = &a->buckets[i];
		while (*pp) {
			if ((*pp)->expires_s < now_s) {
				nonce_ent *dead = *pp;
				*pp = dead->next;
				free(dead);
				a->nnonces--;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	a->last_purge_s = now_s;
}

static void insert_locked(sbs_auth *a, const char *k, size_t b, int64_t expires_s)
{
	size_t kl = strlen(k);
	nonce_ent *e = sb_xmalloc(sizeof *e + kl + 1);
	memcpy(e->key, k, kl + 1);
	e->expires_s = expires_s;
	e->next = a->buckets[b];
	a->buckets[b] = e;
	a->nnonces++;
}

/* Record key/nonce; SB_E_AUTH when seen inside the window or when the cache is full. */
static sb_err *nonce_record(sbs_auth *a, const char *key_id, const char *nonce, int64_t ts,
                            int64_t now_s)
{
	char *k = sb_strfmt("%s\n%s", key_id, nonce);
	size_t b = fnv1a(k) % a->nbuckets;
	sb_err *err = NULL;
	pthread_mutex_lock(&a->mu);
	if (now_s - a->last_purge_s >= 10 || a->nnonces >= a->nonce_max)
		purge_locked(a, now_s);
	for (nonce_ent *e = a->buckets[b]; e; e = e->next) {
		if (strcmp(e->key, k) == 0) {
			err = sb_err_new(SB_E_AUTH, "nonce already used (replayed request)");
			goto out;
		}
	}
	if (a->nnonces >= a->nonce_max) {
		err = sb_err_new(SB_E_AUTH, "replay cache full; retry in a few seconds");
		goto out;
	}
	/* Kept until the timestamp can no longer pass the window check. */
	insert_locked(a, k, b, ts + a->skew_s + 1);
out:
	pthread_mutex_unlock(&a->mu);
	if (!err && a->persist) {
		sb_err *perr = a->persist(a->persist_ud, k, ts + a->skew_s + 1);
		if (perr) {
			/* Still refused in this run; only a restart could miss it. */
			sb_warn("remembering a nonce: %s", perr->msg);
			sb_err_free(perr);
		}
	}
	free(k);
	return err;
}

void sbs_auth_remember(sbs_auth *a, const char *key, int64_t expires_s)
{
	pthread_mutex_lock(&a->mu);
	size_t b = fnv1a(key) % a->nbuckets;
	bool dup = false;
	for (nonce_ent *e = a->buckets[b]; e && !dup; e = e->next)
		dup = strcmp(e->key, key) == 0;
	if (!dup && a->nnonces < a->nonce_max)
		insert_locked(a, key, b, expires_s);
	pthread_mutex_unlock(&a->mu);
}

static bool nonce_ok(const char *n)
{
	size_t len = strlen(n);
	if (len < SB_HMAC_NONCE_MIN || len > SB_HMAC_NONCE_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)n[i]) && n[i] != '_' && n[i] != '-')
			return false;
	return true;
}

static bool hex_digest(const char *s, unsigned char out[SB_SHA256_LEN])
{
	if (strlen(s) != 2 * SB_SHA256_LEN)
		return false;
	for (size_t i = 0; i < SB_SHA256_LEN; i++) {
		unsigned v = 0;
		for (int j = 0; j < 2; j++) {
			char c = s[2 * i + (size_t)j];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				return false;
		}
		out[i] = (unsigned char)v;
	}
	return true;
}

static sb_err *check_hmac(sbs_auth *a, const char *method, const char *raw_target,
                          const char *authz, sbs_header_fn header, void *hud, int64_t now_s,
                          sbs_auth_state *st)
{
	char key_id[SB_HMAC_KEY_ID_MAX + 1];
	unsigned char sig[SB_SHA256_LEN];
	sb_err *err = sb_hmac_parse_authorization(authz, strlen(authz), key_id, sig);
	if (err)
		return err;
	const sb_hmac_key *k = sb_hmac_keyring_find(&a->keys, key_id);
	if (!k)
		return sb_err_new(SB_E_AUTH, "unknown HMAC key id");
	const char *host = header(hud, "Host");
	const char *ts = header(hud, "X-Sandbar-Timestamp");
	const char *nonce = header(hud, "X-Sandbar-Nonce");
	const char *digest = header(hud, "X-Sandbar-Content-SHA256");
	if (!host || !ts || !nonce || !digest)
		return sb_err_new(SB_E_AUTH, "signed requests need Host, X-Sandbar-Timestamp, "
		                             "X-Sandbar-Nonce and X-Sandbar-Content-SHA256");
	if (a->expected_host && strcasecmp(host, a->expected_host) != 0)
		return sb_err_new(SB_E_AUTH, "Host does not match the pinned host");
	int64_t t = 0;
	err = sb_parse_int64(ts, 0, INT64_MAX / 2, &t);
	if (err) {
		sb_err_free(err);
		return sb_err_new(SB_E_AUTH, "X-Sandbar-Timestamp is not unix seconds");
	}
	if (t < now_s - a->skew_s || t > now_s + a->skew_s)
		return sb_err_new(SB_E_AUTH, "X-Sandbar-Timestamp outside the +-%llds window",
		                  (long long)a->skew_s);
	if (!nonce_ok(nonce))
		return sb_err_new(SB_E_AUTH, "X-Sandbar-Nonce must be %d..%d of [A-Za-z0-9_-]",
		                  SB_HMAC_NONCE_MIN, SB_HMAC_NONCE_MAX);
	if (!hex_digest(digest, st->body_sha256))
		return sb_err_new(SB_E_AUTH, "X-Sandbar-Content-SHA256 is not a hex SHA-256");
	sb_buf canon = SB_BUF_INIT;
	err = sb_hmac_canonical_request(method, raw_target, host, ts, nonce, digest, &canon);
	if (err) {
		sb_buf_deinit(&canon);
		sb_err_free(err);
		return sb_err_new(SB_E_AUTH, "request target cannot be canonicalised");
	}
	unsigned char mac[SB_SHA256_LEN];
	sb_hmac_sha256(k->secret, k->secret_len, canon.data, canon.len, mac);
	sb_buf_deinit(&canon);
	if (!sb_ct_equal(mac, sig, sizeof mac))
		return sb_err_new(SB_E_AUTH, "bad signature");
	/* Only a correctly signed request consumes its nonce: nobody else can fill the cache. */
	if ((err = nonce_record(a, key_id, nonce, t, now_s)))
		return err;
	st->hmac = true;
	memcpy(st->key_id, key_id, sizeof key_id);
	return NULL;
}

sb_err *sbs_auth_check_headers(sbs_auth *a, const char *method, const char *raw_target,
                               sbs_header_fn header, void *hud, int64_t now_s, sbs_auth_state *st)
{
	memset(st, 0, sizeof *st);
	if (sbs_auth_fail_closed(a))
		return sb_err_new(SB_E_AUTH, "the daemon has no token and no HMAC keys configured: "
		                             "every request is refused");
	const char *authz = header(hud, "Authorization");
	if (!authz)
		return sb_err_new(SB_E_AUTH, "missing Authorization header");
	size_t tlen = 0;
	const char *tok = sbs_auth_bearer_token(authz, &tlen);
	sb_err *err;
	if (tok) {
		if (!a->have_token)
			return sb_err_new(SB_E_AUTH, "bearer tokens are not accepted here");
		unsigned char d[SB_SHA256_LEN];
		sb_sha256_once(tok, tlen, d);
		if (!sb_ct_equal(d, a->token_digest, sizeof d))
			return sb_err_new(SB_E_AUTH, "missing or invalid bearer token");
		snprintf(st->key_id, sizeof st->key_id, "bearer");
		st->ok = true;
		return NULL;
	}
	if (a->keys.n == 0)
		return sb_err_new(SB_E_AUTH, "HMAC signatures are not accepted here");
	if ((err = check_hmac(a, method, raw_target, authz, header, hud, now_s, st)))
		return err;
	st->ok = true;
	return NULL;
}

sb_err *sbs_auth_check_body(const sbs_auth_state *st, const unsigned char digest[SB_SHA256_LEN])
{
	if (!st->hmac)
		return NULL;
	if (!sb_ct_equal(st->body_sha256, digest, SB_SHA256_LEN))
		return sb_err_new(SB_E_AUTH, "body does not match X-Sandbar-Content-SHA256");
	return NULL;
}
