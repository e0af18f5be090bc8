/* Incremental parser for the Server-Sent Events that a sandbox bridge streams from /exec
 * (paperclip-bridge-protocol.md §2.7): CRLF normalised to LF, frames split on a blank line,
 * `event:` sets the type (default "message"), `data:` lines joined with "\n", leading
 * whitespace of a value trimmed, `:` comments (keepalives) skipped. Every size is bounded so a
 * hostile server cannot make the client buffer without limit.
 */
#ifndef SANDBAR_RUNNER_SSE_H
#define SANDBAR_RUNNER_SSE_H

#include <sandbar/base.h>

typedef struct sb_sse_limits {
	size_t max_line;    /* one line, bytes (0 = 64 MiB) */
	size_t max_frame;   /* event type + id + joined data of one frame (0 = 64 MiB) */
	uint64_t max_total; /* the whole stream (0 = 4 GiB) */
} sb_sse_limits;

/* One dispatched frame. data is NUL-terminated (data_len excludes it); id is NULL when the frame
 * had no `id:` field. An error stops the parser and is returned by the feed call. */
typedef sb_err *(*sb_sse_event_fn)(void *ud, const char *event, const char *id, const char *data,
                                   size_t data_len);

typedef struct sb_sse_parser {
	sb_sse_limits lim;
	sb_sse_event_fn fn;
	void *ud;
	sb_buf line;     /* the current, unterminated line */
	bool pending_cr; /* the last byte fed was '\r' (maybe the first half of CRLF) */
	sb_buf event;    /* the current frame's fields */
	sb_buf data;
	sb_buf id;
	bool has_event, has_data, has_id;
	uint64_t total;
	sb_err *failed;  /* sticky: once a feed failed, every later call fails the same way */
	uint64_t frames; /* frames dispatched */
} sb_sse_parser;

void sb_sse_init(sb_sse_parser *p, const sb_sse_limits *lim, sb_sse_event_fn fn, void *ud);
void sb_sse_deinit(sb_sse_parser *p);
/* Feed the next bytes of the stream (any split: inside a line, inside a CRLF, inside a UTF-8
 * sequence). Returns NULL or the first error (a bound crossed, or the callback's error); the
 * returned error is a copy the caller frees. */
sb_err *sb_sse_feed(sb_sse_parser *p, const void *data, size_t len);
/* End of stream: a trailing frame that was not closed by a blank line is dispatched. */
sb_err *sb_sse_finish(sb_sse_parser *p);

#endif
