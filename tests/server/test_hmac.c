/* The request signer and its parsers (auth.h): canonical form, signing, the Authorization
 * header parser and the key file, against fixed vectors so a client in another language can
 * check itself against docs/auth.md. */
#include <sandbar/auth.h>

#include <string.h>

#include "server/http.h"
#include "testutil.h"

static void canonical_query_sorts_decodes_and_reencodes(void **state)
{
	(void)state;
	sb_buf b = SB_BUF_INIT;
	const char *q = "b=2&a=x%20y&a=1&c&d=%7e+";
	SB_ASSERT_OK(sb_hmac_canonical_query(q, strlen(q), &b));
	assert_string_equal(sb_buf_cstr(&b), "a=1&a=x%20y&b=2&c=&d=~%20");
	sb_buf_deinit(&b);
}

static void canonical_path_normalises_escapes(void **state)
{
	(void)state;
	sb_buf b = SB_BUF_INIT;
	const char *p = "/v1/leases/a%2db/files/x%20y.txt";
	SB_ASSERT_OK(sb_hmac_canonical_path(p, strlen(p), &b));
	assert_string_equal(sb_buf_cstr(&b), "/v1/leases/a-b/files/x%20y.txt");
	sb_buf_clear(&b);
	sb_err *err = sb_hmac_canonical_path("/bad%zz", 7, &b);
	assert_non_null(err);
	sb_err_free(err);
	err = sb_hmac_canonical_path("/nul%00", 7, &b);
	assert_non_null(err);
	sb_err_free(err);
	sb_buf_deinit(&b);
}

static void canonical_request_has_the_documented_lines(void **state)
{
	(void)state;
	sb_buf b = SB_BUF_INIT;
	SB_ASSERT_OK(sb_hmac_canonical_request("get", "/v1/leases/x?z=1&a=2", "Sandbar.Test",
	                                       "1700000000", "nonce-0123456789ab",
	                                       SB_SHA256_EMPTY_HEX, &b));
	assert_string_equal(sb_buf_cstr(&b),
	                    "SANDBAR-HMAC-SHA256\nGET\n/v1/leases/x\na=2&z=1\n"
	                    "sandbar.test\n1700000000\nnonce-0123456789ab\n" SB_SHA256_EMPTY_HEX);
	sb_buf_deinit(&b);
}

static void signature_matches_a_fixed_vector(void **state)
{
	(void)state;
	sb_hmac_headers h;
	SB_ASSERT_OK(sb_hmac_sign_request("k1", "secret-one-0123456789abcdef", 27, "GET",
	                                  "/v1/health", "sandbar.test", NULL, 1700000000,
	                                  "nonce-0123456789ab", &h));
	/* Computed independently with: printf '<canonical>' | openssl dgst -sha256 -hmac ... */
	char *expect = sbt_sh_out(
	    "printf 'SANDBAR-HMAC-SHA256\\nGET\\n/v1/health\\n\\nsandbar.test\\n1700000000\\n"
	    "nonce-0123456789ab\\n%s' | openssl dgst -sha256 -hmac "
	    "'secret-one-0123456789abcdef' | sed 's/.*= //' | tr -d '\\n'",
	    SB_SHA256_EMPTY_HEX);
	char want[256];
	snprintf(want, sizeof want, "SANDBAR-HMAC-SHA256 key=k1, signature=%s", expect);
	assert_string_equal(h.authorization, want);
	assert_string_equal(h.timestamp, "1700000000");
	assert_string_equal(h.content_sha256, SB_SHA256_EMPTY_HEX);
	free(expect);
}

static void authorization_parser_accepts_any_order_and_rejects_junk(void **state)
{
	(void)state;
	char id[SB_HMAC_KEY_ID_MAX + 1];
	unsigned char sig[SB_SHA256_LEN];
	const char *hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	char *v = sb_strfmt("sandbar-hmac-sha256 signature=%s,key=abc", hex64);
	SB_ASSERT_OK(sb_hmac_parse_authorization(v, strlen(v), id, sig));
	assert_string_equal(id, "abc");
	assert_int_equal(sig[1], 0x11);
	free(v);
	const char *bad[] = {
	    "Bearer x",
	    "SANDBAR-HMAC-SHA256",
	    "SANDBAR-HMAC-SHA256 key=a",
	    "SANDBAR-HMAC-SHA256 key=a, key=b, signature=00",
	    "SANDBAR-HMAC-SHA256 key=a b, signature=zz",
	    "SANDBAR-HMAC-SHA256X key=a, signature=00",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sb_err *err = sb_hmac_parse_authorization(bad[i], strlen(bad[i]), id, sig);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_AUTH);
		sb_err_free(err);
	}
}

static void keyring_parses_lines_and_rejects_duplicates(void **state)
{
	(void)state;
	sb_hmac_keyring kr;
	const char *t = "# comment\n\n  k1   0123456789abcdef0  \nk.2 fedcba98765432100\n";
	SB_ASSERT_OK(sb_hmac_keyring_parse(t, strlen(t), &kr));
	assert_int_equal(kr.n, 2);
	const sb_hmac_key *k = sb_hmac_keyring_find(&kr, "k1");
	assert_non_null(k);
	assert_int_equal(k->secret_len, 17);
	assert_memory_equal(k->secret, "0123456789abcdef0", 17);
	assert_null(sb_hmac_keyring_find(&kr, "k3"));
	sb_hmac_keyring_deinit(&kr);
	const char *dup = "a 0123456789abcdef\na 0123456789abcdef\n";
	sb_err *err = sb_hmac_keyring_parse(dup, strlen(dup), &kr);
	assert_non_null(err);
	sb_err_free(err);
	const char *shortk = "a short\n";
	err = sb_hmac_keyring_parse(shortk, strlen(shortk), &kr);
	assert_non_null(err);
	sb_err_free(err);
}

static void query_parser_keeps_duplicates_in_order(void **state)
{
	(void)state;
	sb_query q;
	const char *raw = "exclude=a&exclude=b%2Fc&&x";
	SB_ASSERT_OK(sb_query_parse(raw, strlen(raw), &q));
	assert_int_equal(q.n, 3);
	assert_string_equal(q.pairs[1].value, "b/c");
	assert_string_equal(q.pairs[2].key, "x");
	assert_string_equal(q.pairs[2].value, "");
	assert_string_equal(sb_query_get(&q, "exclude"), "a");
	sb_query_deinit(&q);
}

static void noop(sbs_req *r, void *ud)
{
	(void)r;
	(void)ud;
}

static void router_matches_params_rest_and_methods(void **state)
{
	(void)state;
	sbs_router *rt = sbs_router_new();
	sbs_router_add(rt, "GET", "/v1/leases/{id}", 0, noop, (void *)1);
	sbs_router_add(rt, "PUT", "/v1/leases/{id}/files/{path...}", 0, noop, (void *)2);
	sbs_match m;
	sb_err *err = NULL;
	assert_true(sbs_router_match(rt, "GET", "/v1/leases/abc/", &m, &err));
	assert_ptr_equal(m.ud, (void *)1);
	assert_true(sbs_param_name_eq(m.names[0], "id"));
	assert_string_equal(m.values[0], "abc");
	sbs_match_deinit(&m);
	assert_true(sbs_router_match(rt, "PUT", "/v1/leases/x/files/a/b%20c/d", &m, &err));
	assert_string_equal(m.values[1], "a/b c/d");
	assert_true(sbs_param_name_eq(m.names[1], "path"));
	sbs_match_deinit(&m);
	assert_false(sbs_router_match(rt, "POST", "/v1/leases/abc", &m, &err));
	assert_true(m.path_matched);
	sbs_match_deinit(&m);
	assert_false(sbs_router_match(rt, "PUT", "/v1/leases/x/files/a/../b", &m, &err));
	assert_non_null(err);
	sb_err_free(err);
	sbs_router_free(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(canonical_query_sorts_decodes_and_reencodes),
	    cmocka_unit_test(canonical_path_normalises_escapes),
	    cmocka_unit_test(canonical_request_has_the_documented_lines),
	    cmocka_unit_test(signature_matches_a_fixed_vector),
	    cmocka_unit_test(authorization_parser_accepts_any_order_and_rejects_junk),
	    cmocka_unit_test(keyring_parses_lines_and_rejects_duplicates),
	    cmocka_unit_test(query_parser_keeps_duplicates_in_order),
	    cmocka_unit_test(router_matches_params_rest_and_methods),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
