/* base.str: string helpers, vectors, parsers, shell quoting, time formats and errors. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void strv_push_dup_free(void **state)
{
	(void)state;
	char **v = NULL;
	sb_strv_push(&v, "a");
	sb_strv_push(&v, "b c");
	assert_int_equal(sb_strv_len(v), 2);
	char **d = sb_strv_dup(v);
	assert_string_equal(d[1], "b c");
	assert_null(d[2]);
	sb_strv_free(v);
	sb_strv_free(d);
	assert_int_equal(sb_strv_len(NULL), 0);
}

static void parse_size_units_and_errors(void **state)
{
	(void)state;
	uint64_t v;
	SB_ASSERT_OK(sb_parse_size("512", &v));
	assert_int_equal(v, 512);
	SB_ASSERT_OK(sb_parse_size("64k", &v));
	assert_int_equal(v, 65536);
	SB_ASSERT_OK(sb_parse_size("256M", &v));
	assert_int_equal(v, 256ull << 20);
	SB_ASSERT_OK(sb_parse_size("1.5G", &v));
	assert_int_equal(v, 3ull << 29);
	const char *bad[] = {"", "-1", "12Q", "M", " 5", "1e400"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		sb_err *err = sb_parse_size(bad[i], &v);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_INVAL);
		sb_err_free(err);
	}
}

static void parse_duration_units_and_errors(void **state)
{
	(void)state;
	int64_t ms;
	SB_ASSERT_OK(sb_parse_duration_ms("500ms", &ms));
	assert_int_equal(ms, 500);
	SB_ASSERT_OK(sb_parse_duration_ms("30", &ms));
	assert_int_equal(ms, 30000);
	SB_ASSERT_OK(sb_parse_duration_ms("5m", &ms));
	assert_int_equal(ms, 300000);
	SB_ASSERT_OK(sb_parse_duration_ms("1h", &ms));
	assert_int_equal(ms, 3600000);
	sb_err *err = sb_parse_duration_ms("5 minutes", &ms);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "5 minutes"));
	sb_err_free(err);
}

static void parse_int64_is_strict(void **state)
{
	(void)state;
	int64_t v;
	SB_ASSERT_OK(sb_parse_int64("-12", -100, 100, &v));
	assert_int_equal(v, -12);
	const char *bad[] = {"", "12x", " 1", "99999999999999999999", "101"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		sb_err *err = sb_parse_int64(bad[i], -100, 100, &v);
		assert_non_null(err);
		sb_err_free(err);
	}
}

/* Every hard case must come back byte for byte through a real sh. */
static void shell_quote_round_trips_through_sh(void **state)
{
	(void)state;
	const char *cases[] = {
	    "plain",      "with space",     "it's", "'", "''",          "a\"b",
	    "$HOME",      "`id`",           "*",    "?", "back\\slash", "new\nline",
	    "tab\there",  "unicodé ✓ 日本", "-n",   "",  "!x",          "a'\"'\"'b",
	    ";rm -rf /;", "$(echo no)",
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *q = sb_shell_quoted(cases[i]);
		char *out = sbt_sh_out("printf '%%s|' %s", q);
		char *want = sb_strfmt("%s|", cases[i]);
		assert_string_equal(out, want);
		free(q);
		free(out);
		free(want);
	}
	char *q = sb_shell_quoted("it's");
	assert_string_equal(q, "'it'\"'\"'s'");
	free(q);
	char *argv[] = {"echo", "a b", "c'd", NULL};
	char *j = sb_shell_join(argv);
	char *out = sbt_sh_out("%s", j);
	assert_string_equal(out, "a b c'd\n");
	free(j);
	free(out);
}

static void iso8601_formats_and_parses(void **state)
{
	(void)state;
	char ts[SB_ISO8601_LEN];
	sb_iso8601(1795698445123LL, ts);
	assert_string_equal(ts, "2026-11-26T13:07:25.123Z");
	int64_t back;
	SB_ASSERT_OK(sb_iso8601_parse(ts, &back));
	assert_int_equal(back, 1795698445123LL);
	SB_ASSERT_OK(sb_iso8601_parse("2026-11-26T13:07:25Z", &back));
	assert_int_equal(back, 1795698445000LL);
	sb_err *err = sb_iso8601_parse("2026-11-26 13:07:25", &back);
	assert_non_null(err);
	sb_err_free(err);
	assert_true(sb_mono_ms() > 0);
	int64_t a = sb_mono_ns();
	sb_sleep_ms(2); /* not synchronisation: the clock must show the time slept */
	assert_true(sb_mono_ns() - a >= 2000000);
}

static void errors_carry_code_message_and_context(void **state)
{
	(void)state;
	sb_err *err = sb_err_sys(2, "opening %s", "/nope");
	assert_int_equal(err->code, SB_E_NOTFOUND);
	assert_int_equal(err->sys_errno, 2);
	assert_string_equal(err->msg, "opening /nope: No such file or directory");
	err = sb_err_prefix(err, "loading config");
	assert_string_equal(err->msg, "loading config: opening /nope: No such file or directory");
	sb_err_free(err);
	assert_string_equal(sb_errcode_name(SB_E_FILE_TOO_LARGE), "ERR_SANDBOX_FILE_TOO_LARGE");
	assert_string_equal(sb_errcode_name(SB_E_INVAL), "invalid_request");
	assert_null(sb_err_prefix(NULL, "x"));
}

static void hex_and_prefix_helpers(void **state)
{
	(void)state;
	char hex[7];
	sb_hex_encode("\x00\xab\xff", 3, hex);
	assert_string_equal(hex, "00abff");
	assert_true(sb_str_has_prefix("sandbar", "sand"));
	assert_false(sb_str_has_prefix("sa", "sand"));
	assert_true(sb_str_has_suffix("file.tar", ".tar"));
	assert_false(sb_str_has_suffix("r", ".tar"));
}

static void hex_decode_takes_either_case_and_refuses_non_digits(void **state)
{
	(void)state;
	unsigned char out[3];
	assert_true(sb_hex_decode("00aBfF", 3, out));
	assert_memory_equal(out, "\x00\xab\xff", 3);
	assert_true(sb_hex_decode("7f", 1, out));
	assert_int_equal(out[0], 0x7f);
	assert_false(sb_hex_decode("0g", 1, out));
	assert_false(sb_hex_decode("g0", 1, out));
	assert_false(sb_hex_decode("12 4", 2, out));
	assert_false(sb_hex_decode("1\0", 1, out));
	assert_true(sb_hex_decode("", 0, out));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(strv_push_dup_free),
	    cmocka_unit_test(parse_size_units_and_errors),
	    cmocka_unit_test(parse_duration_units_and_errors),
	    cmocka_unit_test(parse_int64_is_strict),
	    cmocka_unit_test(shell_quote_round_trips_through_sh),
	    cmocka_unit_test(iso8601_formats_and_parses),
	    cmocka_unit_test(errors_carry_code_message_and_context),
	    cmocka_unit_test(hex_and_prefix_helpers),
	    cmocka_unit_test(hex_decode_takes_either_case_and_refuses_non_digits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
