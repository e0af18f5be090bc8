/* UTF-8 for output that must be text: repairing invalid sequences (U+FFFD, maximal invalid
 * subparts as Unicode recommends), across chunk boundaries with a small carry, checking validity,
 * and escaping valid UTF-8 as the body of a JSON string. Used where a command's raw bytes meet a
 * protocol that only carries text (the bridge protocol's stdout/stderr, native JSON results).
 */
#include <sandbar/base.h>

#include <stdio.h>

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

bool sb_utf8_check(sb_buf *carry, const char *data, size_t len, bool final)
{
	sb_buf joined = SB_BUF_INIT;
	const unsigned char *s = (const unsigned char *)data;
	size_t n = len;
	if (carry->len) {
		sb_buf_append(&joined, carry->data, carry->len);
		sb_buf_append(&joined, data, len);
		sb_buf_clear(carry);
		s = (const unsigned char *)joined.data;
		n = joined.len;
	}
	bool ok = true;
	for (size_t i = 0; i < n && ok;) {
		size_t k = 0;
		int r = utf8_seq(s + i, n - i, &k);
		if (r == 1) {
			i += k;
		} else if (r == 0 && !final) {
			sb_buf_append(carry, s + i, n - i);
			break;
		} else {
			ok = false;
		}
	}
	sb_buf_deinit(&joined);
	return ok;
}

void sb_json_escape(const char *data, size_t len, sb_buf *out)
{
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_buf_append(out, data + run, i - run);
		run = i + 1;
		switch (c) {
		case '"':
			sb_buf_appends(out, "\\\"");
			break;
		case '\\':
			sb_buf_appends(out, "\\\\");
			break;
		case '\n':
			sb_buf_appends(out, "\\n");
			break;
		case '\r':
			sb_buf_appends(out, "\\r");
			break;
		case '\t':
			sb_buf_appends(out, "\\t");
			break;
		case '\b':
			sb_buf_appends(out, "\\b");
			break;
		case '\f':
			sb_buf_appends(out, "\\f");
			break;
		default:
			sb_buf_appendf(out, "\\u%04x", c);
			break;
		}
	}
	sb_buf_append(out, data + run, len - run);
}
