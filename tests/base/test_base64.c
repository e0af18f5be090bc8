/* base.base64: streaming encode/decode, white space tolerance, malformed input rejected. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void encodes_rfc4648_vectors(void **state)
{
	(void)state;
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		sb_buf out = SB_BUF_INIT;
		sb_b64_encode(in[i], strlen(in[i]), &out);
		assert_string_equal(sb_buf_cstr(&out), want[i]);
		assert_int_equal(out.len, sb_b64_encoded_len(strlen(in[i])));
		sb_buf back = SB_BUF_INIT;
		SB_ASSERT_OK(sb_b64_decode(out.data, out.len, &back));
		assert_int_equal(back.len, strlen(in[i]));
		assert_memory_equal(sb_buf_cstr(&back), in[i], back.len);
		sb_buf_deinit(&out);
		sb_buf_deinit(&back);
	}
}

/* The plain-buffer encoder gives the streaming encoder's bytes for every length. */
static void encode_to_matches_streaming(void **state)
{
	(void)state;
	unsigned char data[300];
	sbt_fill_random(data, sizeof data, 11);
	char out[400];
	for (size_t n = 0; n <= sizeof data; n++) {
		sb_buf want = SB_BUF_INIT;
		sb_b64_encode(data, n, &want);
		size_t o = sb_b64_encode_to(data, n, out);
		assert_int_equal(o, sb_b64_encoded_len(n));
		assert_int_equal(o, want.len);
		assert_memory_equal(out, want.data ? want.data : "", o);
		sb_buf_deinit(&want);
	}
}

/* Streams split at every possible point give the same bytes as one call. */
static void streaming_split_anywhere_round_trips(void **state)
{
	(void)state;
	unsigned char data[1000];
	sbt_fill_random(data, sizeof data, 7);
	sb_buf whole = SB_BUF_INIT;
	sb_b64_encode(data, sizeof data, &whole);
	for (size_t cut = 0; cut <= 40; cut++) {
		sb_b64enc e;
		sb_b64enc_init(&e);
		sb_buf enc = SB_BUF_INIT;
		sb_b64enc_update(&e, data, cut, &enc);
		sb_b64enc_update(&e, data + cut, sizeof data - cut, &enc);
		sb_b64enc_final(&e, &enc);
		assert_int_equal(enc.len, whole.len);
		assert_memory_equal(enc.data, whole.data, enc.len);

		sb_b64dec d;
		sb_b64dec_init(&d);
		sb_buf dec = SB_BUF_INIT;
		SB_ASSERT_OK(sb_b64dec_update(&d, whole.data, cut, &dec));
		SB_ASSERT_OK(sb_b64dec_update(&d, whole.data + cut, whole.len - cut, &dec));
		SB_ASSERT_OK(sb_b64dec_final(&d, &dec));
		assert_int_equal(dec.len, sizeof data);
		assert_memory_equal(dec.data, data, sizeof data);
		sb_buf_deinit(&enc);
		sb_buf_deinit(&dec);
	}
	sb_buf_deinit(&whole);
}

static void decode_skips_whitespace_like_base64_wraps(void **state)
{
	(void)state;
	const char *wrapped = "Zm9v\nYmFy\r\n Zm9v\tYg==\n";
	sb_buf out = SB_BUF_INIT;
	SB_ASSERT_OK(sb_b64_decode(wrapped, strlen(wrapped), &out));
	assert_string_equal(sb_buf_cstr(&out), "foobarfoob");
	sb_buf_deinit(&out);
}

static void decode_rejects_malformed_input(void **state)
{
	(void)state;
	const char *bad[] = {
	    "Zm9v!",    /* foreign character */
	    "Zg=",      /* ends inside a group */
	    "Zg",       /* dangling final group */
	    "Z===",     /* padding too early */
	    "Zg==Zg==", /* data after padding */
	    "Zh==",     /* non-zero pad bits */
	    "Zm9=",     /* non-zero pad bits (2-byte group) */
	    "=Zm9",     /* padding first */
	    "Zm9vY",    /* lone sextet */
	    "Zm\x00v",  /* NUL */
	};
	size_t lens[] = {5, 3, 2, 4, 8, 4, 4, 4, 5, 4};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		sb_buf out = SB_BUF_INIT;
		sb_err *err = sb_b64_decode(bad[i], lens[i], &out);
		if (!err)
			fail_msg("accepted malformed base64 case %zu", i);
		assert_int_equal(err->code, SB_E_INVAL);
		sb_err_free(err);
		sb_buf_deinit(&out);
	}
}

/* Agrees with coreutils base64 on all 256 byte values. */
static void matches_coreutils_base64(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-b64");
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	sbt_write(dir, "bytes", all, sizeof all, 0644);
	char *theirs = sbt_sh_out("base64 -w0 < '%s/bytes'", dir);
	sb_buf ours = SB_BUF_INIT;
	sb_b64_encode(all, sizeof all, &ours);
	assert_string_equal(theirs, sb_buf_cstr(&ours));
	free(theirs);
	sb_buf_deinit(&ours);
	sbt_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(encodes_rfc4648_vectors),
	    cmocka_unit_test(encode_to_matches_streaming),
	    cmocka_unit_test(streaming_split_anywhere_round_trips),
	    cmocka_unit_test(decode_skips_whitespace_like_base64_wraps),
	    cmocka_unit_test(decode_rejects_malformed_input),
	    cmocka_unit_test(matches_coreutils_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
