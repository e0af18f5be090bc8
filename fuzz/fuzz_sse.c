/* Fuzz target: the bridge SSE parser never crashes, honours its bounds, and yields the same
 * events whether the stream arrives at once or split into pieces at arbitrary points (the first
 * input byte picks the piece size), which is what network reads do to it. */
#include "../src/runner/sse.h" /* private header, reached without extra include paths */

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sb_err *record(void *ud, const char *event, const char *id, const char *d, size_t n)
{
	sb_buf *log = ud;
	/* Length-prefixed so that different event sequences cannot serialise alike. */
	sb_buf_appendf(log, "%zu:%s|%zu:%s|%zu:", strlen(event), event, id ? strlen(id) : 0,
	               id ? id : "", n);
	sb_buf_append(log, d, n);
	if (strcmp(event, "stop") == 0)
		return sb_err_new(SB_E_CANCELED, "stop event");
	return NULL;
}

static bool run(const uint8_t *p, size_t n, size_t piece, sb_buf *log, sb_errcode *code)
{
	sb_sse_limits lim = {.max_line = 512, .max_frame = 1024, .max_total = 1 << 16};
	sb_sse_parser ps;
	sb_sse_init(&ps, &lim, record, log);
	sb_err *err = NULL;
	for (size_t off = 0; off < n && !err; off += piece)
		err = sb_sse_feed(&ps, p + off, n - off < piece ? n - off : piece);
	if (!err)
		err = sb_sse_finish(&ps);
	if (ps.line.len > lim.max_line || ps.data.len > lim.max_frame)
		abort();
	sb_sse_deinit(&ps);
	*code = err ? err->code : SB_E_OK;
	sb_err_free(err);
	return *code == SB_E_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t piece = (size_t)(data[0] % 17) + 1;
	sb_buf whole = SB_BUF_INIT, split = SB_BUF_INIT;
	sb_errcode c1, c2;
	bool ok1 = run(data + 1, size - 1, size, &whole, &c1);
	bool ok2 = run(data + 1, size - 1, piece, &split, &c2);
	/* Errors may surface at different events only when a bound is crossed mid-piece; without
	 * errors, both ways must agree byte for byte. */
	if (ok1 != ok2 || c1 != c2)
		abort();
	if (ok1 && (whole.len != split.len ||
	            memcmp(sb_buf_cstr(&whole), sb_buf_cstr(&split), whole.len) != 0))
		abort();
	sb_buf_deinit(&whole);
	sb_buf_deinit(&split);
	return 0;
}
