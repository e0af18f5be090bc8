/* Hashing and secrets through OpenSSL's libcrypto: SHA-256 (streaming and one-shot),
 * HMAC-SHA256, constant-time comparison, and random bytes and ids from the kernel CSPRNG. */
#include <sandbar/base.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

struct sb_sha256 {
	EVP_MD_CTX *ctx;
};

static void sha_die(const char *what)
{
	/* libcrypto failing on SHA-256 with valid arguments means a broken library: nothing to
	 * recover, and continuing would produce wrong digests. */
	sb_error("libcrypto %s failed", what);
	abort();
}

sb_sha256 *sb_sha256_new(void)
{
	sb_sha256 *c = sb_xcalloc(1, sizeof *c);
	c->ctx = EVP_MD_CTX_new();
	if (!c->ctx || EVP_DigestInit_ex(c->ctx, EVP_sha256(), NULL) != 1)
		sha_die("SHA-256 init");
	return c;
}

void sb_sha256_update(sb_sha256 *c, const void *p, size_t n)
{
	if (n && EVP_DigestUpdate(c->ctx, p, n) != 1)
		sha_die("SHA-256 update");
}

void sb_sha256_final(sb_sha256 *c, unsigned char out[SB_SHA256_LEN])
{
	unsigned int len = 0;
	if (EVP_DigestFinal_ex(c->ctx, out, &len) != 1 || len != SB_SHA256_LEN ||
	    EVP_DigestInit_ex(c->ctx, EVP_sha256(), NULL) != 1)
		sha_die("SHA-256 final");
}

void sb_sha256_free(sb_sha256 *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->ctx);
	free(c);
}

void sb_sha256_once(const void *p, size_t n, unsigned char out[SB_SHA256_LEN])
{
	unsigned int len = 0;
	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != SB_SHA256_LEN)
		sha_die("SHA-256");
}

void sb_sha256_hex(const void *p, size_t n, char out[SB_SHA256_HEX_LEN])
{
	unsigned char d[SB_SHA256_LEN];
	sb_sha256_once(p, n, d);
	sb_hex_encode(d, sizeof d, out);
}

sb_err *sb_sha256_fd(int fd, const char *display, unsigned char out[SB_SHA256_LEN])
{
	sb_sha256 *c = sb_sha256_new();
	size_t cap = 256 * 1024;
	char *buf = sb_xmalloc(cap);
	sb_err *err = NULL;
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = sb_err_sys(errno, "reading %s", display);
			break;
		}
		if (n == 0)
			break;
		sb_sha256_update(c, buf, (size_t)n);
	}
	if (!err)
		sb_sha256_final(c, out);
	free(buf);
	sb_sha256_free(c);
	return err;
}

sb_err *sb_sha256_file(const char *path, unsigned char out[SB_SHA256_LEN])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return sb_err_sys(errno, "opening %s", path);
	sb_err *err = sb_sha256_fd(fd, path, out);
	close(fd);
	return err;
}

void sb_hmac_sha256(const void *key, size_t keylen, const void *p, size_t n,
                    unsigned char out[SB_SHA256_LEN])
{
	unsigned int len = 0;
	static const unsigned char empty = 0;
	if (!HMAC(EVP_sha256(), keylen ? key : &empty, (int)keylen, n ? p : &empty, n, out, &len) ||
	    len != SB_SHA256_LEN)
		sha_die("HMAC-SHA256");
}

bool sb_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

bool sb_ct_streq(const char *a, const char *b)
{
	unsigned char da[SB_SHA256_LEN], db[SB_SHA256_LEN];
	sb_sha256_once(a, strlen(a), da);
	sb_sha256_once(b, strlen(b), db);
	return sb_ct_equal(da, db, SB_SHA256_LEN);
}

sb_err *sb_random_bytes(void *p, size_t n)
{
	unsigned char *out = p;
	while (n > 0) {
		ssize_t got = getrandom(out, n, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return sb_err_sys(errno, "reading random bytes from the kernel");
		out += got;
		n -= (size_t)got;
	}
	return NULL;
}

char *sb_random_id(const char *prefix)
{
	unsigned char raw[16];
	sb_err *err = sb_random_bytes(raw, sizeof raw);
	if (err) {
		sb_error("%s", err->msg);
		abort();
	}
	char hex[33];
	sb_hex_encode(raw, sizeof raw, hex);
	return sb_strfmt("%s%s", prefix ? prefix : "", hex);
}
