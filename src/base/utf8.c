/* UTF-8 for output that must be text: repairing invalid sequences (U+FFFD, maximal invalid
 * subparts as Unicode recommends), across chunk boundaries with a small carry, checking validity,
 * and escaping valid UTF-8 as the body of a JSON string. Used where a command's raw bytes meet a
 * protocol that only carries text (the bridge protocol's stdout/stderr, native JSON results).
 */
#include <sandbar/base.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Eight bytes at a time (SWAR): the common case, plain ASCII text, is found a word at a time
 * and copied in runs. Each test is exact as a boolean for the whole word. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load8(const unsigned char *s)
{
	uint64_t w;
	memcpy(&w, s, sizeof w);
	return w;
}

static inline uint64_t has_zero(uint64_t v)
{
	return (v - ONES) & ~v & HIGHS;
}

/* Bytes that go into a JSON string as they are: printable ASCII but '"' and '\\'. */
static inline bool plain_byte(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static inline bool plain8(uint64_t w)
{
	uint64_t bad = w & HIGHS;              /* not ASCII */
	bad |= (w - ONES * 0x20) & ~w & HIGHS; /* a control character */
	bad |= has_zero(w ^ (ONES * '"'));
	bad |= has_zero(w ^ (ONES * '\\'));
	return bad == 0;
}

/* Length of the run of plain bytes at s (at most n). */
static size_t plain_run(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (n - i >= 8 && plain8(load8(s + i)))
		i += 8;
	while (i < n && plain_byte(s[i]))
		i++;
	return i;
}

/* Length of the run of ASCII bytes at s (at most n). */
static size_t ascii_run(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (n - i >= 8 && !(load8(s + i) & HIGHS))
		i += 8;
	while (i < n && s[i] < 0x80)
		i++;
	return i;
}

/* The JSON escape of a byte that is not plain ASCII text (< 0x20, '"', '\\'): its length. */
static size_t escape_byte(unsigned char c, char e[6])
{
	static const char hex[] = "0123456789abcdef";
	e[0] = '\\';
	switch (c) {
	case '"':
	case '\\':
		e[1] = (char)c;
		return 2;
	case '\n':
		e[1] = 'n';
		return 2;
	case '\r':
		e[1] = 'r';
		return 2;
	case '\t':
		e[1] = 't';
		return 2;
	case '\b':
		e[1] = 'b';
		return 2;
	case '\f':
		e[1] = 'f';
		return 2;
	default:
		memcpy(e + 1, "u00", 3);
		e[4] = hex[c >> 4];
		e[5] = hex[c & 15];
		return 6;
	}
}

/* 1: a valid sequence of *n bytes; 0: a valid but incomplete prefix (needs more bytes);
 * -1: invalid, replace *n bytes (the maximal invalid subpart, at least 1). */
static int utf8_seq(const unsigned char *s, size_t avail, size_t *n)
{
	unsigned char c = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c < 0x80) {
		*n = 1;
		return 1;
	} else if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		*n = 1;
		return -1;
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= avail) {
			*n = i;
			return 0;
		}
		unsigned char min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
		if (s[i] < min || s[i] > max) {
			*n = i;
			return -1;
		}
	}
	*n = need;
	return 1;
}

static void utf8_scan(const unsigned char *s, size_t len, bool final, sb_buf *out, sb_buf *carry)
{
	size_t i = 0, run = 0; /* run: start of the pending stretch of valid bytes */
	while (i < len) {
		i += ascii_run(s + i, len - i);
		if (i == len)
			break;
		size_t n = 0;
		int k = utf8_seq(s + i, len - i, &n);
		if (k == 1) {
			i += n;
			continue;
		}
		sb_buf_append(out, s + run, i - run);
		if (k == 0 && !final) {
			if (carry)
				sb_buf_append(carry, s + i, len - i);
			return;
		}
		sb_buf_appends(out, "\xEF\xBF\xBD");
		i += n;
		run = i;
	}
	sb_buf_append(out, s + run, i - run);
}

void sb_utf8_feed(sb_buf *carry, const char *data, size_t len, bool final, sb_buf *out)
{
	if (carry->len == 0) {
		utf8_scan((const unsigned char *)data, len, final, out, carry);
		return;
	}
	sb_buf joined = SB_BUF_INIT;
	sb_buf_append(&joined, carry->data, carry->len);
	sb_buf_append(&joined, data, len);
	sb_buf_clear(carry);
	utf8_scan((const unsigned char *)joined.data, joined.len, final, out, carry);
	sb_buf_deinit(&joined);
}

void sb_utf8_repair(const char *data, size_t len, sb_buf *out)
{
	utf8_scan((const unsigned char *)data, len, true, out, NULL);
}

bool sb_utf8_valid_span(const char *data, size_t len, bool final, size_t *used)
{
	const unsigned char *s = (const unsigned char *)data;
	size_t i = 0;
	bool ok = true;
	while (i < len) {
		i += ascii_run(s + i, len - i);
		if (i == len)
			break;
		size_t k = 0;
		int r = utf8_seq(s + i, len - i, &k);
		if (r == 1) {
			i += k;
			continue;
		}
		ok = r == 0 && !final;
		break;
	}
	*used = i;
	return ok;
}

bool sb_utf8_check(sb_buf *carry, const char *data, size_t len, bool final)
{
	sb_buf joined = SB_BUF_INIT;
	const char *s = data;
	size_t n = len;
	if (carry->len) {
		sb_buf_append(&joined, carry->data, carry->len);
		sb_buf_append(&joined, data, len);
		sb_buf_clear(carry);
		s = joined.data;
		n = joined.len;
	}
	size_t used = 0;
	bool ok = sb_utf8_valid_span(s, n, final, &used);
	if (ok && used < n)
		sb_buf_append(carry, s + used, n - used);
	sb_buf_deinit(&joined);
	return ok;
}

void sb_json_escape(const char *data, size_t len, sb_buf *out)
{
	const unsigned char *s = (const unsigned char *)data;
	size_t i = 0;
	while (i < len) {
		size_t run = plain_run(s + i, len - i);
		/* bytes >= 0x80 of the (valid) UTF-8 go as they are too */
		while (i + run < len && s[i + run] >= 0x80)
			run += 1 + plain_run(s + i + run + 1, len - i - run - 1);
		sb_buf_append(out, data + i, run);
		i += run;
		if (i == len)
			break;
		char e[6];
		sb_buf_append(out, e, escape_byte(s[i++], e));
	}
}

size_t sb_json_escape_utf8(const char *data, size_t len, bool final, char *out, size_t room,
                           size_t *used)
{
	const unsigned char *s = (const unsigned char *)data;
	size_t i = 0, o = 0;
	while (i < len && o < room) {
		size_t lim = len - i < room - o ? len - i : room - o;
		size_t run = plain_run(s + i, lim);
		memcpy(out + o, s + i, run);
		i += run;
		o += run;
		if (i == len || o == room)
			break;
		unsigned char c = s[i];
		if (c < 0x80) {
			char e[6];
			size_t k = escape_byte(c, e);
			if (room - o < k)
				break;
			memcpy(out + o, e, k);
			o += k;
			i++;
			continue;
		}
		size_t k = 0;
		int r = utf8_seq(s + i, len - i, &k);
		if (r == 0 && !final)
			break; /* an incomplete sequence: it waits for the next bytes */
		if (r == 1) {
			if (room - o < k)
				break;
			memcpy(out + o, s + i, k);
			o += k;
		} else {
			if (room - o < 3)
				break;
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
		}
		i += k;
	}
	*used = i;
	return o;
}
