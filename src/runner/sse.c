/* Server-Sent Events parser for bridge exec streams (see sse.h). Works line by line so that a
 * frame never has to be held twice: each completed line updates the current frame's fields, a
 * blank line dispatches it. Bytes arrive in arbitrary pieces; the only state carried between
 * pieces is the unterminated line and a possible '\r' awaiting its '\n'.
 */
#include "sse.h"

#include <string.h>

#define SSE_DEFAULT_LINE (64u * 1024u * 1024u)
#define SSE_DEFAULT_FRAME (64u * 1024u * 1024u)
#define SSE_DEFAULT_TOTAL (4ull * 1024u * 1024u * 1024u)

void sb_sse_init(sb_sse_parser *p, const sb_sse_limits *lim, sb_sse_event_fn fn, void *ud)
{
	memset(p, 0, sizeof(*p));
	if (lim)
		p->lim = *lim;
	if (!p->lim.max_line)
		p->lim.max_line = SSE_DEFAULT_LINE;
	if (!p->lim.max_frame)
		p->lim.max_frame = SSE_DEFAULT_FRAME;
	if (!p->lim.max_total)
		p->lim.max_total = SSE_DEFAULT_TOTAL;
	p->fn = fn;
	p->ud = ud;
	sb_buf_init(&p->line);
	sb_buf_init(&p->event);
	sb_buf_init(&p->data);
	sb_buf_init(&p->id);
}

void sb_sse_deinit(sb_sse_parser *p)
{
	sb_buf_deinit(&p->line);
	sb_buf_deinit(&p->event);
	sb_buf_deinit(&p->data);
	sb_buf_deinit(&p->id);
	sb_err_free(p->failed);
	p->failed = NULL;
}

static sb_err *fail(sb_sse_parser *p, sb_err *err)
{
	/* Keep the error for later calls and hand the caller its own copy. */
	p->failed = err;
	return sb_err_new(err->code, "%s", err->msg);
}

static void reset_frame(sb_sse_parser *p)
{
	sb_buf_clear(&p->event);
	sb_buf_clear(&p->data);
	sb_buf_clear(&p->id);
	p->has_event = p->has_data = p->has_id = false;
}

static sb_err *dispatch(sb_sse_parser *p)
{
	/* A frame of only comments (a keepalive) or unknown fields carries nothing. */
	if (!p->has_event && !p->has_data && !p->has_id)
		return NULL;
	const char *event = p->has_event && p->event.len ? sb_buf_cstr(&p->event) : "message";
	const char *id = p->has_id ? sb_buf_cstr(&p->id) : NULL;
	p->frames++;
	sb_err *err = p->fn ? p->fn(p->ud, event, id, sb_buf_cstr(&p->data), p->data.len) : NULL;
	reset_frame(p);
	return err;
}

static size_t frame_size(const sb_sse_parser *p)
{
	return p->event.len + p->data.len + p->id.len;
}

/* One complete line, without its terminator. */
static sb_err *process_line(sb_sse_parser *p, const char *s, size_t n)
{
	if (n == 0)
		return dispatch(p);
	if (s[0] == ':')
		return NULL; /* comment: ": keepalive" */
	const char *colon = memchr(s, ':', n);
	size_t name_len = colon ? (size_t)(colon - s) : n;
	const char *val = colon ? colon + 1 : s + n;
	size_t val_len = (size_t)(s + n - val);
	while (val_len > 0 && (*val == ' ' || *val == '\t')) {
		val++;
		val_len--;
	}
	sb_buf *dst = NULL;
	size_t joiner = 0; /* a data line after another is joined with '\n' */
	if (name_len == 5 && memcmp(s, "event", 5) == 0) {
		sb_buf_clear(&p->event);
		p->has_event = true;
		dst = &p->event;
	} else if (name_len == 4 && memcmp(s, "data", 4) == 0) {
		joiner = p->has_data ? 1 : 0;
		p->has_data = true;
		dst = &p->data;
	} else if (name_len == 2 && memcmp(s, "id", 2) == 0) {
		sb_buf_clear(&p->id);
		p->has_id = true;
		dst = &p->id;
	} else {
		return NULL; /* "retry:" and unknown fields are ignored */
	}
	/* Checked before anything is added, the joiner included: the frame never grows past the
	 * limit, not even by one byte (fuzz_sse found that). */
	if (frame_size(p) + joiner + val_len > p->lim.max_frame)
		return sb_err_new(SB_E_TOO_LARGE,
		                  "event stream frame is over the %zu byte limit (frame %llu)",
		                  p->lim.max_frame, (unsigned long long)p->frames + 1);
	if (joiner)
		sb_buf_appendc(dst, '\n');
	sb_buf_append(dst, val, val_len);
	return NULL;
}

static sb_err *end_line(sb_sse_parser *p)
{
	sb_err *err = process_line(p, p->line.data ? p->line.data : "", p->line.len);
	sb_buf_clear(&p->line);
	return err;
}

static sb_err *append_line(sb_sse_parser *p, const char *s, size_t n)
{
	if (p->line.len + n > p->lim.max_line)
		return sb_err_new(SB_E_TOO_LARGE,
		                  "event stream line is over the %zu byte limit (frame %llu)",
		                  p->lim.max_line, (unsigned long long)p->frames + 1);
	sb_buf_append(&p->line, s, n);
	return NULL;
}

sb_err *sb_sse_feed(sb_sse_parser *p, const void *data, size_t len)
{
	if (p->failed)
		return sb_err_new(p->failed->code, "%s", p->failed->msg);
	if (p->total + len > p->lim.max_total || p->total + len < p->total)
		return fail(p,
		            sb_err_new(SB_E_TOO_LARGE, "event stream is over the %llu byte limit",
		                       (unsigned long long)p->lim.max_total));
	p->total += len;
	const char *s = data, *end = s + len;
	sb_err *err = NULL;
	while (s < end) {
		if (p->pending_cr) {
			/* "\r\n" is one line end; a lone '\r' is an ordinary byte of the line. */
			p->pending_cr = false;
			if (*s == '\n') {
				s++;
				if ((err = end_line(p)))
					return fail(p, err);
				continue;
			}
			if ((err = append_line(p, "\r", 1)))
				return fail(p, err);
		}
		const char *stop = s;
		while (stop < end && *stop != '\n' && *stop != '\r')
			stop++;
		if ((err = append_line(p, s, (size_t)(stop - s))))
			return fail(p, err);
		if (stop == end)
			break;
		s = stop + 1;
		if (*stop == '\r') {
			p->pending_cr = true;
			continue;
		}
		if ((err = end_line(p)))
			return fail(p, err);
	}
	return NULL;
}

sb_err *sb_sse_finish(sb_sse_parser *p)
{
	if (p->failed)
		return sb_err_new(p->failed->code, "%s", p->failed->msg);
	sb_err *err = NULL;
	if (p->pending_cr) {
		p->pending_cr = false;
		if ((err = append_line(p, "\r", 1)))
			return fail(p, err);
	}
	if (p->line.len && (err = end_line(p)))
		return fail(p, err);
	if ((err = dispatch(p)))
		return fail(p, err);
	return NULL;
}
