/* The callback bridge's view of an HTTP/1.1 request head, parsed from bytes a sandboxed program
 * sent (untrusted: fuzzed by fuzz/fuzz_callback_request.c). Everything is bounded: the head by
 * SBCB_HEAD_MAX, the headers by SBCB_HEADERS_MAX, the path by SBCB_PATH_MAX. Bodies are framed
 * only by Content-Length; chunked or otherwise encoded bodies are refused, and so is anything
 * that could make the upstream see a different path than the route check saw (dot segments,
 * encoded slashes or dots, backslashes). */
#include "callback_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t sbcb_head_len(const char *buf, size_t len)
{
	for (size_t i = 3; i < len; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
		    buf[i - 3] == '\r')
			return i + 1;
	return 0;
}

void sbcb_request_deinit(sbcb_request *r)
{
	free(r->path);
	free(r->query);
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	memset(r, 0, sizeof *r);
}

const char *sbcb_header_get(const sbcb_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static bool is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static char *dupn(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* A path the route check and the upstream read the same way. */
static bool path_safe(const char *p, size_t n)
{
	if (n == 0 || p[0] != '/' || n > SBCB_PATH_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '#')
			return false;
		if (c == '%') {
			if (i + 2 >= n || !isxdigit((unsigned char)p[i + 1]) ||
			    !isxdigit((unsigned char)p[i + 2]))
				return false;
			char hex[3] = {p[i + 1], p[i + 2], 0};
			long v = strtol(hex, NULL, 16);
			if (v == '/' || v == '.' || v == '\\' || v == 0)
				return false;
		}
		if (c == '/') {
			/* "//" and dot segments */
			size_t seg = i + 1, end = seg;
			while (end < n && p[end] != '/')
				end++;
			size_t sl = end - seg;
			if ((sl == 0 && end < n) || (sl == 1 && p[seg] == '.') ||
			    (sl == 2 && p[seg] == '.' && p[seg + 1] == '.'))
				return false;
		}
	}
	return true;
}

static bool query_safe(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f || c == '#')
			return false;
	}
	return true;
}

int sbcb_parse_head(const char *buf, size_t len, sbcb_request *out, const char **why)
{
	memset(out, 0, sizeof *out);
	if (len > SBCB_HEAD_MAX) {
		*why = "request head too large";
		return 431;
	}
	const char *end = buf + len, *p = buf;
	const char *eol = memchr(p, '\n', len);
	if (!eol || eol == p || eol[-1] != '\r') {
		*why = "malformed request line";
		return 400;
	}
	/* METHOD SP target SP HTTP/1.x */
	const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (!sp1 || sp1 == p || (size_t)(sp1 - p) >= sizeof out->method) {
		*why = "malformed request line";
		return 400;
	}
	for (const char *m = p; m < sp1; m++)
		if (!(*m >= 'A' && *m <= 'Z')) {
			*why = "malformed method";
			return 400;
		}
	memcpy(out->method, p, (size_t)(sp1 - p));
	const char *tgt = sp1 + 1;
	const char *sp2 = memchr(tgt, ' ', (size_t)(eol - 1 - tgt));
	if (!sp2) {
		*why = "malformed request line";
		return 400;
	}
	size_t vlen = (size_t)(eol - 1 - (sp2 + 1));
	if (vlen != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1')) {
		*why = "only HTTP/1.0 and HTTP/1.1 are spoken here";
		return 505;
	}
	const char *q = memchr(tgt, '?', (size_t)(sp2 - tgt));
	const char *pend = q ? q : sp2;
	if (!path_safe(tgt, (size_t)(pend - tgt)) || (q && !query_safe(q, (size_t)(sp2 - q)))) {
		*why = "request target must be a plain absolute path (no dot segments, no encoded "
		       "'/', '.' or '\\')";
		return 400;
	}
	out->path = dupn(tgt, (size_t)(pend - tgt));
	out->query = q ? dupn(q, (size_t)(sp2 - q)) : dupn("", 0);
	if (!out->path || !out->query) {
		*why = "out of memory";
		return 400;
	}
	p = eol + 1;
	for (;;) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol || eol == p || eol[-1] != '\r') {
			*why = "malformed header line";
			return 400;
		}
		if (eol - 1 == p)
			break; /* the blank line */
		if (*p == ' ' || *p == '\t') {
			*why = "folded header lines are not accepted";
			return 400;
		}
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p) {
			*why = "malformed header line";
			return 400;
		}
		for (const char *c = p; c < colon; c++)
			if (!is_tchar((unsigned char)*c)) {
				*why = "malformed header name";
				return 400;
			}
		const char *v = colon + 1, *ve = eol - 1;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *c = v; c < ve; c++)
			if ((unsigned char)*c < 0x20 && *c != '\t') {
				*why = "control character in a header value";
				return 400;
			}
		if (out->nheaders == SBCB_HEADERS_MAX) {
			*why = "too many header lines";
			return 431;
		}
		sbcb_header *h = &out->headers[out->nheaders];
		h->name = dupn(p, (size_t)(colon - p));
		h->value = dupn(v, (size_t)(ve - v));
		if (!h->name || !h->value) {
			free(h->name);
			free(h->value);
			h->name = h->value = NULL;
			*why = "out of memory";
			return 400;
		}
		out->nheaders++;
		for (char *c = h->name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (strcmp(h->name, "transfer-encoding") == 0) {
			*why = "encoded request bodies are not accepted; send Content-Length";
			return 501;
		}
		if (strcmp(h->name, "content-length") == 0) {
			char *e;
			errno = 0;
			unsigned long long n = strtoull(h->value, &e, 10);
			if (out->has_length || !*h->value || *e || errno ||
			    !isdigit((unsigned char)*h->value)) {
				*why = "invalid or repeated Content-Length";
				return 400;
			}
			out->has_length = true;
			out->content_length = n;
		}
		p = eol + 1;
	}
	if (strcmp(out->method, "HEAD") != 0 && strcmp(out->method, "GET") != 0 &&
	    strcmp(out->method, "POST") != 0 && strcmp(out->method, "PUT") != 0 &&
	    strcmp(out->method, "PATCH") != 0 && strcmp(out->method, "DELETE") != 0 &&
	    strcmp(out->method, "OPTIONS") != 0) {
		*why = "method not supported";
		return 501;
	}
	return 0;
}

static bool match_at(const char *pat, const char *s)
{
	for (;;) {
		if (*pat == '\0' || (pat[0] == '$' && pat[1] == '\0'))
			return *s == '\0';
		if (strncmp(pat, "[^/]+", 5) == 0) {
			/* one or more non-'/' characters, then the rest: try each length */
			size_t n = strcspn(s, "/");
			for (size_t k = n; k >= 1; k--)
				if (match_at(pat + 5, s + k))
					return true;
			return false;
		}
		char c = *pat;
		if (c == '\\' && pat[1]) {
			c = pat[1];
			pat++;
		}
		if (*s != c)
			return false;
		pat++;
		s++;
	}
}

bool sbcb_route_valid(const char *pattern)
{
	const char *p = pattern;
	if (*p == '^')
		p++;
	if (*p != '/')
		return false;
	for (; *p; p++) {
		if (strncmp(p, "[^/]+", 5) == 0) {
			/* one per segment, so matching never backtracks more than a segment */
			const char *seg = p;
			while (seg > pattern && seg[-1] != '/')
				seg--;
			const char *next = strstr(seg, "[^/]+");
			if (next != p ||
			    (strchr(p + 5, '/')
			         ? memmem(p + 5, (size_t)(strchr(p + 5, '/') - (p + 5)), "[^/]+",
			                  5) != NULL
			         : strstr(p + 5, "[^/]+") != NULL))
				return false;
			p += 4;
			continue;
		}
		if (*p == '\\') {
			if (!p[1] || !strchr(".-_~+$^()[]{}?*|\\", p[1]))
				return false;
			p++;
			continue;
		}
		if (*p == '$' && p[1] == '\0')
			continue;
		if (strchr("^$()[]{}?*+|.", *p))
			return false; /* a regex feature this matcher does not have */
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return false;
	}
	return true;
}

bool sbcb_route_match(const char *pattern, const char *path)
{
	if (*pattern == '^')
		pattern++;
	return match_at(pattern, path);
}

bool sbcb_is_json_type(const char *ct)
{
	size_t n = strcspn(ct, ";");
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return true;
	return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
	       strncasecmp(ct + n - 5, "+json", 5) == 0;
}

bool sbcb_unsafe_method(const char *m)
{
	return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "OPTIONS") != 0;
}
