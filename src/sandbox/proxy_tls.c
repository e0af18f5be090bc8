/* TLS for the egress proxy: a CA made per proxy (per lease) at start, whose key never leaves
 * this process; a certificate per terminated host signed by it (cached); and the upstream
 * client context, which verifies the real server against the system store (plus a test CA). */
#include "proxy_int.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define LEAF_CACHE_MAX 64
#define CERT_DAYS 30

typedef struct leaf {
	char *host;
	SSL_CTX *ctx;
} leaf;

struct sbpx_tls {
	EVP_PKEY *ca_key;
	X509 *ca;
	EVP_PKEY *leaf_key; /* one key for every host certificate of this proxy */
	SSL_CTX *client;
	pthread_mutex_t mu;
	leaf cache[LEAF_CACHE_MAX];
	size_t ncache, next_evict;
	long serial;
};

static sb_err *ossl_err(const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();
	ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return sb_err_new(SB_E_IO, "egress proxy TLS: %s: %s", what, e ? buf : "failed");
}

static EVP_PKEY *new_key(void)
{
	return EVP_EC_gen("P-256");
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ex)
		return false;
	bool ok = X509_add_ext(cert, ex, -1) == 1;
	X509_EXTENSION_free(ex);
	return ok;
}

static X509 *new_cert(long serial, const char *cn, EVP_PKEY *pub)
{
	X509 *c = X509_new();
	if (!c)
		return NULL;
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), (long)CERT_DAYS * 24 * 3600);
	X509_NAME *n = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"sandbar", -1, -1,
	                           0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_pubkey(c, pub);
	return c;
}

/* The CA kept from before (a re-adopted lease's sandbox trusts it already). */
static sb_err *load_ca(sbpx_tls *t, const char *cert_pem, const char *key_pem)
{
	BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
	if (cb)
		t->ca = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	if (kb)
		t->ca_key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	BIO_free(cb);
	BIO_free(kb);
	if (!t->ca || !t->ca_key || X509_check_private_key(t->ca, t->ca_key) != 1)
		return ossl_err("loading the kept CA");
	if (!(t->leaf_key = new_key()))
		return ossl_err("making the certificate key");
	return NULL;
}

sb_err *sbpx_tls_new(const char *upstream_ca, const char *name, const char *ca_cert_pem,
                     const char *ca_key_pem, sbpx_tls **out)
{
	sbpx_tls *t = sb_xcalloc(1, sizeof *t);
	pthread_mutex_init(&t->mu, NULL);
	t->serial = 2;
	sb_err *err = NULL;
	unsigned char rnd[8];
	if ((err = sb_random_bytes(rnd, sizeof rnd)))
		goto fail;
	long serial = 1;
	for (size_t i = 0; i < 6; i++)
		serial = (serial << 8) | rnd[i];
	t->serial = serial + 1;
	if (ca_cert_pem && ca_key_pem) {
		if ((err = load_ca(t, ca_cert_pem, ca_key_pem)))
			goto fail;
		goto client;
	}
	char cn[160];
	snprintf(cn, sizeof cn, "sandbar egress proxy CA %.64s", name ? name : "");
	if (!(t->ca_key = new_key()) || !(t->leaf_key = new_key()) ||
	    !(t->ca = new_cert(serial, cn, t->ca_key))) {
		err = ossl_err("making the CA key");
		goto fail;
	}
	X509_set_issuer_name(t->ca, X509_get_subject_name(t->ca));
	if (!add_ext(t->ca, t->ca, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !add_ext(t->ca, t->ca, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(t->ca, t->ca, NID_subject_key_identifier, "hash") ||
	    !X509_sign(t->ca, t->ca_key, EVP_sha256())) {
		err = ossl_err("signing the CA certificate");
		goto fail;
	}
client:
	if (!(t->client = SSL_CTX_new(TLS_client_method()))) {
		err = ossl_err("client context");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->client, TLS1_2_VERSION);
	SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
	SSL_CTX_clear_mode(t->client, SSL_MODE_AUTO_RETRY);
	if (SSL_CTX_set_default_verify_paths(t->client) != 1) {
		err = ossl_err("loading the system CA store");
		goto fail;
	}
	if (upstream_ca && SSL_CTX_load_verify_locations(t->client, upstream_ca, NULL) != 1) {
		err = sb_err_prefix(ossl_err("loading the upstream CA"), "%s", upstream_ca);
		goto fail;
	}
	*out = t;
	return NULL;
fail:
	sbpx_tls_free(t);
	return err;
}

void sbpx_tls_free(sbpx_tls *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ncache; i++) {
		free(t->cache[i].host);
		SSL_CTX_free(t->cache[i].ctx);
	}
	SSL_CTX_free(t->client);
	X509_free(t->ca);
	EVP_PKEY_free(t->ca_key);
	EVP_PKEY_free(t->leaf_key);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

char *sbpx_tls_ca_pem(const sbpx_tls *t)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b || PEM_write_bio_X509(b, t->ca) != 1) {
		BIO_free(b);
		return NULL;
	}
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *out = sb_xstrndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

char *sbpx_tls_ca_key_pem(const sbpx_tls *t)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b || PEM_write_bio_PrivateKey(b, t->ca_key, NULL, NULL, 0, NULL, NULL) != 1) {
		BIO_free(b);
		return NULL;
	}
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *out = sb_xstrndup(data, (size_t)n);
	OPENSSL_cleanse(data, (size_t)n);
	BIO_free(b);
	return out;
}

static SSL_CTX *make_leaf(sbpx_tls *t, const char *host, sb_err **err)
{
	long serial;
	pthread_mutex_lock(&t->mu);
	serial = t->serial++;
	pthread_mutex_unlock(&t->mu);
	X509 *c = new_cert(serial, host, t->leaf_key);
	SSL_CTX *ctx = NULL;
	if (!c)
		goto fail;
	X509_set_issuer_name(c, X509_get_subject_name(t->ca));
	unsigned char a[16];
	bool ip = inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
	char san[300];
	snprintf(san, sizeof san, "%s:%s", ip ? "IP" : "DNS", host);
	if (!add_ext(c, t->ca, NID_subject_alt_name, san) ||
	    !add_ext(c, t->ca, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(c, t->ca, NID_ext_key_usage, "serverAuth") ||
	    !add_ext(c, t->ca, NID_authority_key_identifier, "keyid:always") ||
	    !X509_sign(c, t->ca_key, EVP_sha256()))
		goto fail;
	if (!(ctx = SSL_CTX_new(TLS_server_method())))
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
	if (SSL_CTX_use_certificate(ctx, c) != 1 || SSL_CTX_use_PrivateKey(ctx, t->leaf_key) != 1)
		goto fail;
	X509_free(c);
	return ctx;
fail:
	*err = ossl_err("making a certificate");
	X509_free(c);
	SSL_CTX_free(ctx);
	return NULL;
}

void *sbpx_tls_server_ctx(sbpx_tls *t, const char *host, sb_err **err)
{
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->ncache; i++)
		if (strcmp(t->cache[i].host, host) == 0) {
			SSL_CTX *c = t->cache[i].ctx;
			SSL_CTX_up_ref(c);
			pthread_mutex_unlock(&t->mu);
			return c;
		}
	pthread_mutex_unlock(&t->mu);
	SSL_CTX *c = make_leaf(t, host, err);
	if (!c)
		return NULL;
	pthread_mutex_lock(&t->mu);
	size_t slot = t->ncache < LEAF_CACHE_MAX ? t->ncache++ : t->next_evict++ % LEAF_CACHE_MAX;
	if (t->cache[slot].ctx) {
		free(t->cache[slot].host);
		SSL_CTX_free(t->cache[slot].ctx);
	}
	t->cache[slot].host = sb_xstrdup(host);
	t->cache[slot].ctx = c;
	SSL_CTX_up_ref(c);
	pthread_mutex_unlock(&t->mu);
	return c; /* the caller frees its reference */
}

void *sbpx_tls_client_ctx(sbpx_tls *t)
{
	return t->client;
}
