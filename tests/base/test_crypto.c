/* base.crypto: SHA-256, HMAC-SHA256 (RFC 4231 vectors), constant-time compares, random ids. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void sha256_known_vectors_and_streaming(void **state)
{
	(void)state;
	char hex[SB_SHA256_HEX_LEN];
	sb_sha256_hex("", 0, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sb_sha256_hex("abc", 3, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sb_sha256 *c = sb_sha256_new();
	sb_sha256_update(c, "a", 1);
	sb_sha256_update(c, "bc", 2);
	unsigned char d[SB_SHA256_LEN], e[SB_SHA256_LEN];
	sb_sha256_final(c, d);
	sb_sha256_once("abc", 3, e);
	assert_memory_equal(d, e, SB_SHA256_LEN);
	/* The context is reusable after final. */
	sb_sha256_update(c, "abc", 3);
	sb_sha256_final(c, d);
	assert_memory_equal(d, e, SB_SHA256_LEN);
	sb_sha256_free(c);
}

static void sha256_file_matches_sha256sum(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-sha");
	unsigned char data[300000];
	sbt_fill_random(data, sizeof data, 3);
	sbt_write(dir, "f", data, sizeof data, 0644);
	char *path = sbt_path(dir, "f");
	unsigned char d[SB_SHA256_LEN];
	SB_ASSERT_OK(sb_sha256_file(path, d));
	char hex[SB_SHA256_HEX_LEN];
	sb_hex_encode(d, sizeof d, hex);
	char *theirs = sbt_sh_out("sha256sum '%s' | cut -c1-64 | tr -d '\\n'", path);
	assert_string_equal(hex, theirs);
	free(theirs);
	sb_err *err = sb_sha256_file("/nonexistent/x", d);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_NOTFOUND);
	sb_err_free(err);
	free(path);
	sbt_rmtree(dir);
}

static void hmac_sha256_rfc4231(void **state)
{
	(void)state;
	unsigned char key[20];
	memset(key, 0x0b, sizeof key);
	unsigned char mac[SB_SHA256_LEN];
	sb_hmac_sha256(key, sizeof key, "Hi There", 8, mac);
	char hex[SB_SHA256_HEX_LEN];
	sb_hex_encode(mac, sizeof mac, hex);
	assert_string_equal(hex,
	                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	sb_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
	sb_hex_encode(mac, sizeof mac, hex);
	assert_string_equal(hex,
	                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void constant_time_compares(void **state)
{
	(void)state;
	assert_true(sb_ct_equal("abcd", "abcd", 4));
	assert_false(sb_ct_equal("abcd", "abce", 4));
	assert_true(sb_ct_streq("token", "token"));
	assert_false(sb_ct_streq("token", "token2"));
	assert_false(sb_ct_streq("", "x"));
	assert_true(sb_ct_streq("", ""));
}

static void random_ids_are_unique_and_hex(void **state)
{
	(void)state;
	char *a = sb_random_id("lease-");
	char *b = sb_random_id("lease-");
	assert_int_equal(strlen(a), 6 + 32);
	assert_true(sb_str_has_prefix(a, "lease-"));
	assert_string_not_equal(a, b);
	for (const char *p = a + 6; *p; p++)
		assert_non_null(strchr("0123456789abcdef", *p));
	free(a);
	free(b);
	unsigned char z[64] = {0}, r[64] = {0};
	SB_ASSERT_OK(sb_random_bytes(r, sizeof r));
	assert_false(sb_ct_equal(z, r, sizeof r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sha256_known_vectors_and_streaming),
	    cmocka_unit_test(sha256_file_matches_sha256sum),
	    cmocka_unit_test(hmac_sha256_rfc4231),
	    cmocka_unit_test(constant_time_compares),
	    cmocka_unit_test(random_ids_are_unique_and_hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
