/* The egress proxy's request head (proxy.c): read from the client, bounded (32 KiB, 128
 * header lines), parsed strictly (no folded lines, an upper-case method, HTTP/1.x), and the
 * head sent upstream built from it. The parser is a pure function of the bytes, fuzzed by
 * fuzz/fuzz_proxy_head.c: the client is code running in the sandbox. */
#include "proxy_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sbpx_head_deinit(sbpx_head *h)
{
	free(h->buf);
	free(h->copy);
	memset(h, 0, sizeof *h);
}

size_t sbpx_head_end(const char *b, size_t n)
{
	for (size_t i = 3; i < n; i++)
		if (b[i] == '\n' && b[i - 1] == '\r' && b[i - 2] == '\n' && b[i - 3] == '\r')
			return i + 1;
	return 0;
}

int sbpx_head_read(sbpx_io *o, sbpx_head *h, const char **why)
{
	memset(h, 0, sizeof *h);
	h->buf = malloc(SBPX_HEAD_MAX);
	if (!h->buf)
		abort();
	for (;;) {
		if (h->len == SBPX_HEAD_MAX) {
			*why = "request head over 32 KiB";
			return 431;
		}
		ssize_t n = sbpx_io_read(o, h->buf + h->len, SBPX_HEAD_MAX - h->len);
		if (n == -2)
			continue;
		if (n <= 0) {
			*why = "connection closed before a complete request";
			return -1;
		}
		size_t from = h->len > 3 ? h->len - 3 : 0;
		h->len += (size_t)n;
		size_t e = sbpx_head_end(h->buf + from, h->len - from);
		if (e) {
			h->head_len = from + e;
			break;
		}
	}
	return sbpx_head_parse(h, why);
}

/* Control characters other than HTAB: never in a request line or a field (RFC 9110 5.5). A
 * bare CR in particular would end a line for some upstreams and not for us. */
static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return true;
	return false;
}

int sbpx_head_parse(sbpx_head *h, const char **why)
{
	if (memchr(h->buf, '\0', h->head_len)) {
		*why = "NUL byte in the request head";
		return 400;
	}
	h->copy = sb_xstrndup(h->buf, h->head_len);
	char *save = NULL;
	char *line = strtok_r(h->copy, "\n", &save);
	if (!line) {
		*why = "empty request";
		return 400;
	}
	size_t ll = strlen(line);
	if (ll && line[ll - 1] == '\r')
		line[--ll] = '\0';
	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || sp1 == line || !sp2 || (size_t)(sp1 - line) >= sizeof h->method ||
	    strchr(sp2 + 1, ' ') || strlen(sp2 + 1) >= sizeof h->version ||
	    strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		*why = "malformed request line";
		return 400;
	}
	*sp1 = *sp2 = '\0';
	snprintf(h->method, sizeof h->method, "%s", line);
	for (const char *c = h->method; *c; c++)
		if (!isupper((unsigned char)*c)) {
			*why = "malformed method";
			return 400;
		}
	h->target = sp1 + 1;
	if (!*h->target || has_ctl(h->target) || strchr(h->target, '\t')) {
		*why = "malformed request target";
		return 400;
	}
	snprintf(h->version, sizeof h->version, "%s", sp2 + 1);
	for (char *l; (l = strtok_r(NULL, "\n", &save));) {
		size_t n = strlen(l);
		if (n && l[n - 1] == '\r')
			l[--n] = '\0';
		if (!n)
			break;
		char *colon = strchr(l, ':');
		if (!colon || colon == l || l[0] == ' ' || l[0] == '\t' || has_ctl(l)) {
			*why = "malformed header line (folded lines are not accepted)";
			return 400;
		}
		for (char *c = l; c < colon; c++)
			if (!isgraph((unsigned char)*c)) {
				*why = "malformed header name";
				return 400;
			}
		if (h->nlines == sizeof h->lines / sizeof h->lines[0]) {
			*why = "over 128 header lines";
			return 431;
		}
		h->lines[h->nlines++] = l;
	}
	return 0;
}

bool sbpx_header_is(const char *line, const char *name)
{
	size_t n = strlen(name);
	return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* The head sent upstream: origin-form, hop-by-hop and proxy headers dropped, the secret (if
 * any) set, and "Connection: close". */
void sbpx_upstream_head(const sbpx_head *h, const char *path, const char *host_hdr,
                        const char *secret_header, const char *secret_line, sb_buf *out)
{
	sb_buf_appendf(out, "%s %s HTTP/1.1\r\n", h->method, path);
	bool have_host = false;
	for (size_t i = 0; i < h->nlines; i++) {
		const char *l = h->lines[i];
		if (sbpx_header_is(l, "proxy-connection") ||
		    sbpx_header_is(l, "proxy-authorization") || sbpx_header_is(l, "connection") ||
		    sbpx_header_is(l, "keep-alive") ||
		    (secret_header && sbpx_header_is(l, secret_header)))
			continue;
		if (sbpx_header_is(l, "host"))
			have_host = true;
		sb_buf_appendf(out, "%s\r\n", l);
	}
	if (!have_host)
		sb_buf_appendf(out, "Host: %s\r\n", host_hdr);
	if (secret_line)
		sb_buf_appends(out, secret_line);
	sb_buf_appends(out, "Connection: close\r\n\r\n");
}
