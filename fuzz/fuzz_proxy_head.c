/* Fuzz target: the egress proxy's request head parser (sandbox/proxy_head.c), which reads what
 * code in the sandbox sends. It never crashes or reads past the head, keeps its bounds (16-byte
 * method, 128 header lines), accepts only what it documents, and the head it would send
 * upstream never carries a hop-by-hop header, a second secret, or a line break inside a line. */
#include "../src/sandbox/proxy_int.h" /* private header, reached without extra include paths */

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > SBPX_HEAD_MAX)
		return 0;
	size_t end = sbpx_head_end((const char *)data, size);
	if (!end)
		return 0;
	sbpx_head h;
	memset(&h, 0, sizeof h);
	/* exactly the head's bytes, so a read past them is caught by the sanitizer */
	h.buf = malloc(end);
	if (!h.buf)
		abort();
	memcpy(h.buf, data, end);
	h.len = h.head_len = end;
	const char *why = NULL;
	int st = sbpx_head_parse(&h, &why);
	if (st != 0) {
		if ((st != 400 && st != 431) || !why)
			abort();
		sbpx_head_deinit(&h);
		return 0;
	}
	if (!h.method[0] || !h.target || h.nlines > 128 || strncmp(h.version, "HTTP/1.", 7) != 0)
		abort();
	for (const char *c = h.method; *c; c++)
		if (!isupper((unsigned char)*c))
			abort();
	sb_buf out = SB_BUF_INIT;
	sbpx_upstream_head(&h, h.target, "example.org", "x-api-key", "x-api-key: SECRET\r\n", &out);
	const char *o = sb_buf_cstr(&out);
	size_t secrets = 0;
	for (const char *l = o; *l;) {
		const char *nl = strstr(l, "\r\n");
		if (!nl)
			abort(); /* every line ends in CRLF */
		size_t n = (size_t)(nl - l);
		if (memchr(l, '\n', n) || memchr(l, '\r', n))
			abort();
		if (n >= 10 && strncasecmp(l, "x-api-key:", 10) == 0)
			secrets++;
		if ((n >= 11 && strncasecmp(l, "connection:", 11) == 0 &&
		     strcmp(l + 0, "Connection: close\r\n\r\n") != 0) ||
		    (n >= 17 && strncasecmp(l, "proxy-connection:", 17) == 0) ||
		    (n >= 20 && strncasecmp(l, "proxy-authorization:", 20) == 0))
			abort();
		l = nl + 2;
	}
	if (secrets != 1)
		abort();
	sb_buf_deinit(&out);
	sbpx_head_deinit(&h);
	return 0;
}
