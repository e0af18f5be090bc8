/* base.json: bounded parsing (size, depth) and typed field accessors. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void parses_within_bounds(void **state)
{
	(void)state;
	const char *t = "{\"a\":[1,{\"b\":\"[[[[\"}],\"s\":\"x\"}";
	json_t *j = NULL;
	SB_ASSERT_OK(sb_json_parse_object(t, strlen(t), 1024, 3, &j));
	const char *s = NULL;
	SB_ASSERT_OK(sb_json_get_str(j, "s", true, &s));
	assert_string_equal(s, "x");
	json_decref(j);
}

static void rejects_too_deep(void **state)
{
	(void)state;
	sb_buf b = SB_BUF_INIT;
	for (int i = 0; i < 65; i++)
		sb_buf_appendc(&b, '[');
	for (int i = 0; i < 65; i++)
		sb_buf_appendc(&b, ']');
	json_t *j = NULL;
	sb_err *err = sb_json_parse(b.data, b.len, 1 << 20, 64, &j);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_TOO_LARGE);
	assert_non_null(strstr(err->msg, "deeper than 64"));
	assert_null(j);
	sb_err_free(err);
	/* Exactly at the limit is fine. */
	SB_ASSERT_OK(sb_json_parse(b.data + 1, b.len - 2, 1 << 20, 64, &j));
	json_decref(j);
	/* Brackets inside strings (with escaped quotes) do not count. */
	const char *t = "{\"k\":\"\\\"[[[[[[[[[[\"}";
	SB_ASSERT_OK(sb_json_parse(t, strlen(t), 1024, 1, &j));
	json_decref(j);
	sb_buf_deinit(&b);
}

static void rejects_too_large_and_malformed(void **state)
{
	(void)state;
	json_t *j = NULL;
	const char *t = "{\"a\": 1}";
	sb_err *err = sb_json_parse(t, strlen(t), 4, 8, &j);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_TOO_LARGE);
	sb_err_free(err);
	const char *bad[] = {"{", "{\"a\":}", "[1,]", "{\"a\":1,\"a\":2}", "nul", ""};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err = sb_json_parse(bad[i], strlen(bad[i]), 1024, 8, &j);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_INVAL);
		sb_err_free(err);
	}
	err = sb_json_parse_object("[1]", 3, 1024, 8, &j);
	assert_non_null(err);
	assert_null(j);
	sb_err_free(err);
}

static void accessors_check_types_and_name_fields(void **state)
{
	(void)state;
	const char *t = "{\"n\":5,\"b\":true,\"s\":\"str\",\"v\":[\"a\",\"b\"],\"bad\":[1],"
	                "\"nul\":null}";
	json_t *j = NULL;
	SB_ASSERT_OK(sb_json_parse_object(t, strlen(t), 1024, 8, &j));
	int64_t n = 0;
	SB_ASSERT_OK(sb_json_get_int(j, "n", true, 0, 10, &n));
	assert_int_equal(n, 5);
	bool b = false;
	SB_ASSERT_OK(sb_json_get_bool(j, "b", true, &b));
	assert_true(b);
	char **v = NULL;
	SB_ASSERT_OK(sb_json_get_strv(j, "v", true, 10, &v));
	assert_string_equal(v[1], "b");
	sb_strv_free(v);
	/* Optional and absent / null: untouched. */
	const char *s = "keep";
	SB_ASSERT_OK(sb_json_get_str(j, "missing", false, &s));
	SB_ASSERT_OK(sb_json_get_str(j, "nul", false, &s));
	assert_string_equal(s, "keep");

	struct {
		sb_err *err;
		const char *needle;
	} cases[] = {
	    {sb_json_get_int(j, "n", true, 0, 4, &n), "between 0 and 4"},
	    {sb_json_get_int(j, "s", true, 0, 4, &n), "\"s\" must be an integer"},
	    {sb_json_get_str(j, "n", true, &s), "\"n\" must be a string"},
	    {sb_json_get_bool(j, "s", true, &b), "\"s\" must be true or false"},
	    {sb_json_get_str(j, "missing", true, &s), "\"missing\" is required"},
	    {sb_json_get_strv(j, "bad", true, 10, &v), "\"bad\"[0] must be a string"},
	    {sb_json_get_strv(j, "v", true, 1, &v), "over the limit"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		assert_non_null(cases[i].err);
		if (!strstr(cases[i].err->msg, cases[i].needle))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, cases[i].err->msg,
			         cases[i].needle);
		sb_err_free(cases[i].err);
	}
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parses_within_bounds),
	    cmocka_unit_test(rejects_too_deep),
	    cmocka_unit_test(rejects_too_large_and_malformed),
	    cmocka_unit_test(accessors_check_types_and_name_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
