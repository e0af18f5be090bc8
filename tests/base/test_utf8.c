/* base.utf8: the one-pass encoder of command output into a JSON string (UTF-8 repair and JSON
 * escaping together, plain ASCII a word at a time) gives exactly the bytes of a plain
 * byte-at-a-time reference, whatever the input, however it is split into chunks and however
 * small the output buffer; the validity check and the other UTF-8 helpers agree with it too. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the reference: Unicode's table of well-formed sequences, one byte at a time */

/* The valid range of the second byte after lead c, and the sequence length (0: invalid). */
static size_t ref_shape(unsigned char c, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xBF;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return 2;
	if (c == 0xE0)
		*lo = 0xA0;
	if (c == 0xED)
		*hi = 0x9F;
	if (c >= 0xE0 && c <= 0xEF)
		return 3;
	if (c == 0xF0)
		*lo = 0x90;
	if (c == 0xF4)
		*hi = 0x8F;
	if (c >= 0xF0 && c <= 0xF4)
		return 4;
	return 0;
}

/* Repair (each maximal invalid subpart becomes U+FFFD), then escape for JSON. */
static void ref_encode(const unsigned char *s, size_t n, bool escape, sb_buf *out)
{
	for (size_t i = 0; i < n;) {
		unsigned char lo, hi;
		size_t need = ref_shape(s[i], &lo, &hi), k = 1;
		while (need > 1 && k < need && i + k < n && s[i + k] >= (k == 1 ? lo : 0x80) &&
		       s[i + k] <= (k == 1 ? hi : 0xBF))
			k++;
		if (need == 0 || k < need) {
			sb_buf_appends(out, "\xEF\xBF\xBD");
			i += k;
			continue;
		}
		if (need > 1 || !escape) {
			sb_buf_append(out, s + i, need);
			i += need;
			continue;
		}
		unsigned char c = s[i++];
		if (c == '"')
			sb_buf_appends(out, "\\\"");
		else if (c == '\\')
			sb_buf_appends(out, "\\\\");
		else if (c == '\n')
			sb_buf_appends(out, "\\n");
		else if (c == '\r')
			sb_buf_appends(out, "\\r");
		else if (c == '\t')
			sb_buf_appends(out, "\\t");
		else if (c == '\b')
			sb_buf_appends(out, "\\b");
		else if (c == '\f')
			sb_buf_appends(out, "\\f");
		else if (c < 0x20)
			sb_buf_appendf(out, "\\u%04x", c);
		else
			sb_buf_appendc(out, (char)c);
	}
}

static bool ref_valid(const unsigned char *s, size_t n)
{
	sb_buf a = SB_BUF_INIT;
	ref_encode(s, n, false, &a);
	bool same = a.len == n && (n == 0 || memcmp(a.data, s, n) == 0);
	sb_buf_deinit(&a);
	return same;
}

/* ---- inputs that hit every path: long plain runs, escapes, valid and broken sequences */

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void make_input(uint64_t seed, size_t n, sb_buf *out)
{
	static const char *const atoms[] = {"\"",
	                                    "\\",
	                                    "\n",
	                                    "\r",
	                                    "\t",
	                                    "\b",
	                                    "\f",
	                                    "\x01",
	                                    "\x1f",
	                                    "\x7f",
	                                    "\x00",
	                                    "\xC3\xA9",
	                                    "\xE2\x82\xAC",
	                                    "\xF0\x9F\x98\x80",
	                                    "\xEF\xBF\xBD",
	                                    "\xF4\x8F\xBF\xBF",
	                                    "\xC3",
	                                    "\xE2\x82",
	                                    "\xF0\x9F\x98",
	                                    "\x80",
	                                    "\xBF",
	                                    "\xC0\x80",
	                                    "\xC1\xBF",
	                                    "\xE0\x80\x80",
	                                    "\xED\xA0\x80",
	                                    "\xF0\x80\x80\x80",
	                                    "\xF4\x90\x80\x80",
	                                    "\xF5",
	                                    "\xFF",
	                                    "\xFE",
	                                    "\xE0\xA0",
	                                    "\xED\x9F\xBF"};
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
	while (out->len < n) {
		uint64_t r = rng(&s);
		if (r % 4 == 0) {
			const char *a = atoms[(r >> 8) % (sizeof atoms / sizeof atoms[0])];
			sb_buf_append(out, a, a[0] ? strlen(a) : 1);
		} else {
			size_t run = (size_t)((r >> 16) % 40);
			for (size_t i = 0; i < run; i++)
				sb_buf_appendc(out, (char)(' ' + (rng(&s) % 95)));
		}
	}
	out->len = n;
}

/* Feed data to sb_json_escape_utf8 in random chunks with random output room, the way the
 * result writer does (an incomplete tail is kept and joined with the next chunk). */
static void chunked_encode(const unsigned char *d, size_t n, uint64_t seed, size_t max_room,
                           sb_buf *out)
{
	uint64_t s = seed + 7;
	sb_buf win = SB_BUF_INIT;
	size_t fed = 0, pos = 0;
	char room_buf[4096];
	bool need = true;
	for (;;) {
		if (need && fed < n) {
			/* keep the unencoded tail, add the next chunk */
			if (win.data) /* nothing is allocated before the first chunk */
				memmove(win.data, win.data + pos, win.len - pos);
			win.len -= pos;
			pos = 0;
			size_t chunk = 1 + (size_t)(rng(&s) % 300);
			if (chunk > n - fed)
				chunk = n - fed;
			sb_buf_append(&win, d + fed, chunk);
			fed += chunk;
		}
		bool final = fed == n;
		size_t room = 6 + (size_t)(rng(&s) % (max_room - 5));
		size_t used = 0;
		size_t o = sb_json_escape_utf8(win.data ? win.data + pos : "", win.len - pos, final,
		                               room_buf, room, &used);
		assert_true(o <= room);
		sb_buf_append(out, room_buf, o);
		pos += used;
		need = pos == win.len || o == 0;
		if (final && pos == win.len)
			break;
		if (final)
			assert_true(o > 0); /* with room >= 6 the last bytes always progress */
		else if (o == 0)
			assert_true(win.len - pos <= 3); /* only an incomplete sequence waits */
	}
	sb_buf_deinit(&win);
}

static void one_pass_encoder_matches_reference(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 300; seed++) {
		sb_buf in = SB_BUF_INIT, want = SB_BUF_INIT, got = SB_BUF_INIT, whole = SB_BUF_INIT;
		make_input(seed, (size_t)(seed * 37 % 5000), &in);
		ref_encode((const unsigned char *)in.data, in.len, true, &want);
		chunked_encode((const unsigned char *)in.data, in.len, seed, seed % 2 ? 12 : 4096,
		               &got);
		if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0)
			fail_msg("seed %llu: %zu bytes encoded, %zu expected",
			         (unsigned long long)seed, got.len, want.len);
		/* one call with ample room */
		char *big = sb_xmalloc(in.len * 6 + 1);
		size_t used = 0;
		size_t o = sb_json_escape_utf8(in.data ? in.data : "", in.len, true, big,
		                               in.len * 6 + 1, &used);
		assert_int_equal(used, in.len);
		assert_int_equal(o, want.len);
		assert_memory_equal(big, want.data ? want.data : "", o);
		free(big);
		/* the two-step helpers: repair then escape */
		sb_buf carry = SB_BUF_INIT, rep = SB_BUF_INIT;
		size_t cut = in.len / 3;
		sb_utf8_feed(&carry, in.data ? in.data : "", cut, false, &rep);
		sb_utf8_feed(&carry, in.data ? in.data + cut : "", in.len - cut, true, &rep);
		sb_json_escape(rep.data ? rep.data : "", rep.len, &whole);
		assert_int_equal(whole.len, want.len);
		assert_memory_equal(whole.data ? whole.data : "", want.data ? want.data : "",
		                    want.len);
		sb_buf_deinit(&carry);
		sb_buf_deinit(&rep);
		sb_buf_deinit(&in);
		sb_buf_deinit(&want);
		sb_buf_deinit(&got);
		sb_buf_deinit(&whole);
	}
}

static void plain_text_and_every_escape(void **state)
{
	(void)state;
	char all[128];
	for (int i = 0; i < 128; i++)
		all[i] = (char)i;
	sb_buf want = SB_BUF_INIT;
	ref_encode((const unsigned char *)all, sizeof all, true, &want);
	char out[1024];
	size_t used = 0;
	size_t o = sb_json_escape_utf8(all, sizeof all, true, out, sizeof out, &used);
	assert_int_equal(used, sizeof all);
	assert_int_equal(o, want.len);
	assert_memory_equal(out, want.data, o);
	assert_non_null(memmem(out, o, "\\u0000\\u0001", 12));
	assert_non_null(memmem(out, o, "\\b\\t\\n\\u000b\\f\\r", 16));
	assert_non_null(memmem(out, o, " !\\\"#", 5));
	assert_non_null(memmem(out, o, "[\\\\]", 4));
	assert_int_equal(out[o - 1], 0x7f);
	sb_buf_deinit(&want);
	/* A long plain run is copied up to the room, never past it. */
	char text[100];
	memset(text, 'x', sizeof text);
	o = sb_json_escape_utf8(text, sizeof text, true, out, 37, &used);
	assert_int_equal(o, 37);
	assert_int_equal(used, 37);
	/* An escape that does not fit waits. */
	o = sb_json_escape_utf8("ab\x01", 3, true, out, 7, &used);
	assert_int_equal(o, 2);
	assert_int_equal(used, 2);
}

static void validity_check_matches_reference(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 300; seed++) {
		sb_buf in = SB_BUF_INIT;
		make_input(seed, (size_t)(seed * 13 % 700), &in);
		/* Half the inputs without broken sequences: plain text and the valid atoms. */
		if (seed % 2) {
			sb_buf rep = SB_BUF_INIT;
			sb_utf8_repair(in.data ? in.data : "", in.len, &rep);
			sb_buf_deinit(&in);
			in = rep;
		}
		bool want = ref_valid((const unsigned char *)in.data, in.len);
		if (seed % 2)
			assert_true(want);
		for (size_t cut = 0; cut <= in.len; cut += 1 + in.len / 17) {
			sb_buf carry = SB_BUF_INIT;
			bool ok = sb_utf8_check(&carry, in.data ? in.data : "", cut, false);
			if (ok)
				ok = sb_utf8_check(&carry, in.data ? in.data + cut : "",
				                   in.len - cut, true);
			assert_int_equal(ok, want);
			sb_buf_deinit(&carry);
		}
		size_t used = 0;
		assert_int_equal(sb_utf8_valid_span(in.data ? in.data : "", in.len, true, &used),
		                 want);
		if (want)
			assert_int_equal(used, in.len);
		sb_buf_deinit(&in);
	}
	size_t used = 0;
	assert_true(sb_utf8_valid_span("ab\xE2\x82", 4, false, &used));
	assert_int_equal(used, 2);
	assert_false(sb_utf8_valid_span("ab\xE2\x82", 4, true, &used));
	assert_false(sb_utf8_valid_span("ab\xFFxxxxxxxxxxxxxx", 17, false, &used));
	assert_int_equal(used, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_pass_encoder_matches_reference),
	    cmocka_unit_test(plain_text_and_every_escape),
	    cmocka_unit_test(validity_check_matches_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
