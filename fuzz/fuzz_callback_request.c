/* Fuzz target: the callback bridge's request parser and the parts of the relay that read
 * untrusted bytes from inside a sandbox (head framing, request line, headers, Content-Length,
 * the path checks, route matching), plus the client JSON of a callback configuration. A
 * request either fails with a 4xx/5xx status or parses into a path that starts with '/', has no
 * dot segment and no encoded '/', '.' or '\', and headers with lower-case names. */
#include <stdlib.h>
#include <string.h>

#include "../src/sandbox/callback_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checked in every build (NDEBUG included): a violated property is a crash for the fuzzer. */
#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

static const char *const patterns[] = {"^/api/issues/[^/]+/comments$", "/api/agents/me",
                                       "^/api/x/[^/]+\\.json$", "^/[^/]+/[^/]+$"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 0 && data[0] == '{') {
		/* a callback configuration as a client would send it */
		sb_callback_entry e = {0};
		e.name = "up";
		char *origins[] = {"http://127.0.0.1:3100", NULL};
		e.origins = origins;
		sb_callback_config *c = NULL;
		sb_err *err = sb_callback_config_from_json((const char *)data, size, &e, 1, &c);
		if (!err) {
			CHECK(c->nroutes > 0 && c->queue_depth > 0 && c->timeout_ms > 0);
			for (size_t i = 0; i < c->nroutes; i++)
				CHECK(sbcb_route_valid(c->routes[i].pattern));
			char *dump = sbcb_config_dump(c);
			sb_callback_config *back = NULL;
			sb_err *e2 = sbcb_config_load(dump, strlen(dump), &back);
			CHECK(!e2);
			sb_callback_config_free(back);
			free(dump);
		}
		sb_err_free(err);
		sb_callback_config_free(c);
		return 0;
	}
	const char *buf = (const char *)data;
	size_t hlen = sbcb_head_len(buf, size);
	if (!hlen)
		hlen = size; /* also parse incomplete or oversized heads */
	sbcb_request q;
	const char *why = NULL;
	int st = sbcb_parse_head(buf, hlen, &q, &why);
	if (st == 0) {
		CHECK(q.path && q.path[0] == '/');
		CHECK(!strstr(q.path, "/../") && !strstr(q.path, "/./") && !strstr(q.path, "//"));
		CHECK(!strchr(q.path, '\\'));
		for (size_t i = 0; i < q.nheaders; i++)
			for (const char *c = q.headers[i].name; *c; c++)
				CHECK(!(*c >= 'A' && *c <= 'Z'));
		for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++)
			(void)sbcb_route_match(patterns[i], q.path);
		const char *ct = sbcb_header_get(&q, "content-type");
		if (ct)
			(void)sbcb_is_json_type(ct);
	} else {
		CHECK(st >= 400 && st < 600 && why);
	}
	sbcb_request_deinit(&q);
	return 0;
}
