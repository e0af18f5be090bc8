/* base.buf: growable buffers and output tails. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void buf_appends_and_stays_nul_terminated(void **state)
{
	(void)state;
	sb_buf b = SB_BUF_INIT;
	assert_string_equal(sb_buf_cstr(&b), "");
	sb_buf_appends(&b, "abc");
	sb_buf_appendc(&b, '-');
	sb_buf_appendf(&b, "%d/%s", 42, "x");
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abc-42/x");
	sb_buf_consume(&b, 4);
	assert_string_equal(b.data, "42/x");
	sb_buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	sb_buf_deinit(&b);
}

static void buf_holds_binary_and_grows(void **state)
{
	(void)state;
	sb_buf b = SB_BUF_INIT;
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	for (int k = 0; k < 1000; k++)
		sb_buf_append(&b, all, sizeof all);
	assert_int_equal(b.len, 256000);
	assert_memory_equal(b.data + 255 * 256, all, 256);
	size_t len = 0;
	char *p = sb_buf_steal(&b, &len);
	assert_int_equal(len, 256000);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(p);
}

static void tail_keeps_last_bytes_exactly(void **state)
{
	(void)state;
	sb_tail t;
	sb_tail_init(&t, 10);
	sb_buf out = SB_BUF_INIT;
	bool trunc = true;
	sb_tail_append(&t, "hello", 5);
	sb_tail_finish(&t, &out, &trunc);
	assert_string_equal(out.data, "hello");
	assert_false(trunc);

	/* Many small appends wrapping the ring several times (finish leaves it reusable). */
	for (int i = 0; i < 1000; i++) {
		char c = (char)('a' + i % 26);
		sb_tail_append(&t, &c, 1);
	}
	sb_tail_finish(&t, &out, &trunc);
	assert_true(trunc);
	char want[11];
	for (int i = 0; i < 10; i++)
		want[i] = (char)('a' + (990 + i) % 26);
	want[10] = 0;
	assert_string_equal(out.data, want);

	/* One append bigger than the cap. */
	sb_tail_append(&t, "0123456789abcdefghij", 20);
	sb_tail_finish(&t, &out, &trunc);
	assert_string_equal(out.data, "abcdefghij");
	assert_true(trunc);
	sb_tail_deinit(&t);
	sb_buf_deinit(&out);
}

static void tail_cut_starts_at_utf8_boundary(void **state)
{
	(void)state;
	sb_tail t;
	sb_tail_init(&t, 5);
	sb_buf out = SB_BUF_INIT;
	bool trunc = false;
	/* € is 3 bytes (e2 82 ac): the last 5 bytes start inside it. */
	const char *s = "xxxx\xe2\x82\xac"
	                "abc";
	sb_tail_append(&t, s, strlen(s));
	sb_tail_finish(&t, &out, &trunc);
	assert_true(trunc);
	/* Last 5 bytes: 82 ac a b c; the continuation bytes are dropped. */
	assert_string_equal(out.data, "abc");
	sb_tail_deinit(&t);
	sb_buf_deinit(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(buf_appends_and_stays_nul_terminated),
	    cmocka_unit_test(buf_holds_binary_and_grows),
	    cmocka_unit_test(tail_keeps_last_bytes_exactly),
	    cmocka_unit_test(tail_cut_starts_at_utf8_boundary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
