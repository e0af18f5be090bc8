/* Percent-decoding and query-string parsing for request targets from outside. Every input is
 * bounded by the caller (the header size limit); malformed escapes and NUL bytes are refused
 * rather than passed on, so no later layer sees an ambiguous path. */
#include <sandbar/base.h>

#include <stdlib.h>
#include <string.h>

sb_err *sb_url_decode(const char *src, size_t len, bool plus_is_space, sb_buf *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '%') {
			if (len - i < 3)
				return sb_err_new(SB_E_INVAL,
				                  "truncated percent escape at byte %zu", i);
			unsigned char byte;
			if (!sb_hex_decode(src + i + 1, 1, &byte))
				return sb_err_new(SB_E_INVAL, "bad percent escape at byte %zu", i);
			c = (char)byte;
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		if (c == '\0')
			return sb_err_new(SB_E_INVAL, "NUL byte in URL at byte %zu", i);
		sb_buf_appendc(out, c);
	}
	return NULL;
}

sb_err *sb_query_parse(const char *raw, size_t len, sb_query *out)
{
	out->pairs = NULL;
	out->n = 0;
	size_t i = 0;
	sb_buf k = SB_BUF_INIT, v = SB_BUF_INIT;
	sb_err *err = NULL;
	while (i < len) {
		const char *amp = memchr(raw + i, '&', len - i);
		size_t end = amp ? (size_t)(amp - raw) : len;
		if (end > i) {
			if (out->n >= SB_QUERY_MAX_PAIRS) {
				err = sb_err_new(SB_E_TOO_LARGE, "more than %d query parameters",
				                 SB_QUERY_MAX_PAIRS);
				goto fail;
			}
			const char *eq = memchr(raw + i, '=', end - i);
			size_t klen = eq ? (size_t)(eq - (raw + i)) : end - i;
			sb_buf_clear(&k);
			sb_buf_clear(&v);
			if ((err = sb_url_decode(raw + i, klen, true, &k)))
				goto fail;
			if (eq &&
			    (err = sb_url_decode(eq + 1, end - (size_t)(eq + 1 - raw), true, &v)))
				goto fail;
			out->pairs = sb_xrealloc(out->pairs, (out->n + 1) * sizeof *out->pairs);
			out->pairs[out->n].key = sb_xstrdup(sb_buf_cstr(&k));
			out->pairs[out->n].value = sb_xstrdup(sb_buf_cstr(&v));
			out->n++;
		}
		i = end + 1;
	}
	sb_buf_deinit(&k);
	sb_buf_deinit(&v);
	return NULL;
fail:
	sb_buf_deinit(&k);
	sb_buf_deinit(&v);
	sb_query_deinit(out);
	return sb_err_prefix(err, "query string");
}

void sb_query_deinit(sb_query *q)
{
	for (size_t i = 0; i < q->n; i++) {
		free(q->pairs[i].key);
		free(q->pairs[i].value);
	}
	free(q->pairs);
	q->pairs = NULL;
	q->n = 0;
}

const char *sb_query_get(const sb_query *q, const char *key)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->pairs[i].key, key) == 0)
			return q->pairs[i].value;
	return NULL;
}
