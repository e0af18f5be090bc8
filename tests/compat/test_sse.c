/* The client SSE parser (paperclip-bridge-protocol.md §2.7) on byte streams a bridge produces:
 * CRLF and LF framing, keepalive comments, joined data lines, a split at every byte position
 * (inside CRLF, inside a multi-byte character) giving the same events, and its bounds. */
#include "testutil.h"

#include "../../src/runner/sse.h"

#include <string.h>

typedef struct events {
	sb_buf log;
	int n;
} events;

static sb_err *record(void *ud, const char *event, const char *id, const char *data, size_t n)
{
	events *ev = ud;
	sb_buf_appendf(&ev->log, "[%s|%s|", event, id ? id : "-");
	sb_buf_append(&ev->log, data, n);
	sb_buf_appends(&ev->log, "]");
	ev->n++;
	return NULL;
}

/* Parse s fed in pieces of `piece` bytes; returns the event log (caller frees). */
static char *parse(const char *s, size_t len, size_t piece, int *n, sb_errcode *code)
{
	events ev = {SB_BUF_INIT, 0};
	sb_sse_parser p;
	sb_sse_init(&p, NULL, record, &ev);
	sb_err *err = NULL;
	for (size_t off = 0; off < len && !err; off += piece)
		err = sb_sse_feed(&p, s + off, len - off < piece ? len - off : piece);
	if (!err)
		err = sb_sse_finish(&p);
	*code = err ? err->code : SB_E_OK;
	sb_err_free(err);
	sb_sse_deinit(&p);
	*n = ev.n;
	return sb_buf_steal(&ev.log, NULL);
}

static const char stream_lf[] = "event: stdout\ndata: {\"data\":\"line one\\nline two\"}\n\n"
                                ": keepalive\n\n"
                                "event: stderr\ndata: {\"data\":\"caf\xc3\xa9 \xe2\x82\xac\"}\n\n"
                                "event: complete\ndata: {\"exitCode\":0}\n\n";

static const char expected[] = "[stdout|-|{\"data\":\"line one\\nline two\"}]"
                               "[stderr|-|{\"data\":\"caf\xc3\xa9 \xe2\x82\xac\"}]"
                               "[complete|-|{\"exitCode\":0}]";

static void sse_frames_split_on_blank_lines_and_skip_keepalives(void **state)
{
	(void)state;
	int n;
	sb_errcode code;
	char *log = parse(stream_lf, strlen(stream_lf), 1 << 20, &n, &code);
	assert_int_equal(code, SB_E_OK);
	assert_int_equal(n, 3);
	assert_string_equal(log, expected);
	free(log);
}

static void sse_crlf_stream_gives_the_same_events_as_lf(void **state)
{
	(void)state;
	sb_buf crlf = SB_BUF_INIT;
	for (const char *p = stream_lf; *p; p++) {
		if (*p == '\n')
			sb_buf_appendc(&crlf, '\r');
		sb_buf_appendc(&crlf, *p);
	}
	/* Every split position, including between '\r' and '\n' and inside "é" and "€". */
	for (size_t piece = 1; piece <= 9; piece++) {
		int n;
		sb_errcode code;
		char *log = parse(crlf.data, crlf.len, piece, &n, &code);
		assert_int_equal(code, SB_E_OK);
		assert_string_equal(log, expected);
		free(log);
	}
	sb_buf_deinit(&crlf);
}

static void sse_every_two_piece_split_gives_the_same_events(void **state)
{
	(void)state;
	size_t len = strlen(stream_lf);
	for (size_t cut = 0; cut <= len; cut++) {
		events ev = {SB_BUF_INIT, 0};
		sb_sse_parser p;
		sb_sse_init(&p, NULL, record, &ev);
		SB_ASSERT_OK(sb_sse_feed(&p, stream_lf, cut));
		SB_ASSERT_OK(sb_sse_feed(&p, stream_lf + cut, len - cut));
		SB_ASSERT_OK(sb_sse_finish(&p));
		assert_string_equal(sb_buf_cstr(&ev.log), expected);
		sb_sse_deinit(&p);
		sb_buf_deinit(&ev.log);
	}
}

static void sse_data_lines_join_with_newline_and_default_type_is_message(void **state)
{
	(void)state;
	const char s[] = "id: 7\ndata:a\ndata:   b\nretry: 10\nbogus\n\n";
	int n;
	sb_errcode code;
	char *log = parse(s, strlen(s), 3, &n, &code);
	assert_int_equal(code, SB_E_OK);
	assert_string_equal(log, "[message|7|a\nb]");
	free(log);
}

static void sse_unterminated_last_frame_is_dispatched_at_end(void **state)
{
	(void)state;
	const char s[] = "event: complete\r\ndata: {}";
	int n;
	sb_errcode code;
	char *log = parse(s, strlen(s), 2, &n, &code);
	assert_int_equal(code, SB_E_OK);
	assert_string_equal(log, "[complete|-|{}]");
	free(log);
}

static void sse_line_and_frame_bounds_are_enforced(void **state)
{
	(void)state;
	sb_sse_limits lim = {.max_line = 16, .max_frame = 18, .max_total = 64};
	events ev = {SB_BUF_INIT, 0};
	sb_sse_parser p;
	sb_sse_init(&p, &lim, record, &ev);
	sb_err *err = sb_sse_feed(&p, "data: 0123456789abcdef\n", 23);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_TOO_LARGE);
	assert_non_null(strstr(err->msg, "line"));
	sb_err_free(err);
	/* Sticky: the stream is not trusted after a bound was crossed. */
	err = sb_sse_feed(&p, "\n", 1);
	assert_non_null(err);
	sb_err_free(err);
	sb_sse_deinit(&p);

	sb_sse_init(&p, &lim, record, &ev);
	err = sb_sse_feed(&p, "data: 0123456789\ndata: 0123456789\n", 34);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "frame"));
	sb_err_free(err);
	sb_sse_deinit(&p);

	sb_sse_init(&p, &lim, record, &ev);
	SB_ASSERT_OK(sb_sse_feed(&p, ": 0123456789\n\n: 0123456789\n\n", 28));
	SB_ASSERT_OK(sb_sse_feed(&p, ": 0123456789\n\n: 0123456789\n\n", 28));
	err = sb_sse_feed(&p, ": 0123456789\n\n", 14);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "stream"));
	sb_err_free(err);
	sb_sse_deinit(&p);
	assert_int_equal(ev.n, 0);
	sb_buf_deinit(&ev.log);
}

static sb_err *refuse(void *ud, const char *event, const char *id, const char *data, size_t n)
{
	(void)ud, (void)id, (void)data, (void)n;
	return sb_err_new(SB_E_CANCELED, "consumer refused %s", event);
}

static void sse_callback_error_stops_the_parser(void **state)
{
	(void)state;
	sb_sse_parser p;
	sb_sse_init(&p, NULL, refuse, NULL);
	sb_err *err = sb_sse_feed(&p, "event: stdout\ndata: x\n\nevent: b\n", 32);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CANCELED);
	assert_string_equal(err->msg, "consumer refused stdout");
	sb_err_free(err);
	sb_sse_deinit(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sse_frames_split_on_blank_lines_and_skip_keepalives),
	    cmocka_unit_test(sse_crlf_stream_gives_the_same_events_as_lf),
	    cmocka_unit_test(sse_every_two_piece_split_gives_the_same_events),
	    cmocka_unit_test(sse_data_lines_join_with_newline_and_default_type_is_message),
	    cmocka_unit_test(sse_unterminated_last_frame_is_dispatched_at_end),
	    cmocka_unit_test(sse_line_and_frame_bounds_are_enforced),
	    cmocka_unit_test(sse_callback_error_stops_the_parser),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
