/* Output tails: keep only the last `cap` bytes of a stream in a ring, so a command that prints
 * gigabytes costs cap bytes of memory. When bytes were dropped, the result starts at a UTF-8
 * code point boundary so a cut never leaves half a character at the front. */
#include <sandbar/base.h>

#include <string.h>

void sb_tail_init(sb_tail *t, size_t cap)
{
	sb_buf_init(&t->buf);
	t->cap = cap;
	t->start = 0;
	t->total = 0;
}

void sb_tail_deinit(sb_tail *t)
{
	sb_buf_deinit(&t->buf);
}

void sb_tail_append(sb_tail *t, const void *p, size_t n)
{
	const char *s = p;
	t->total += n;
	if (t->cap == 0)
		return;
	if (n >= t->cap) {
		/* Only the last cap bytes of this chunk survive. */
		sb_buf_clear(&t->buf);
		sb_buf_append(&t->buf, s + (n - t->cap), t->cap);
		t->start = 0;
		return;
	}
	if (t->buf.len < t->cap) {
		size_t room = t->cap - t->buf.len;
		size_t take = n < room ? n : room;
		sb_buf_append(&t->buf, s, take);
		s += take;
		n -= take;
		if (n == 0)
			return;
	}
	/* Ring is full: overwrite from start, wrapping. */
	while (n > 0) {
		size_t run = t->cap - t->start;
		if (run > n)
			run = n;
		memcpy(t->buf.data + t->start, s, run);
		t->start = (t->start + run) % t->cap;
		s += run;
		n -= run;
	}
}

void sb_tail_finish(sb_tail *t, sb_buf *out, bool *truncated)
{
	sb_buf_clear(out);
	bool cut = t->total > t->buf.len;
	if (t->buf.len == t->cap && t->start != 0) {
		sb_buf_append(out, t->buf.data + t->start, t->cap - t->start);
		sb_buf_append(out, t->buf.data, t->start);
	} else {
		sb_buf_append(out, t->buf.data ? t->buf.data : "", t->buf.len);
	}
	if (cut) {
		/* Skip continuation bytes (10xxxxxx) at the front: at most 3 in valid UTF-8. */
		size_t skip = 0;
		while (skip < 3 && skip < out->len &&
		       ((unsigned char)out->data[skip] & 0xC0) == 0x80)
			skip++;
		sb_buf_consume(out, skip);
	}
	if (truncated)
		*truncated = cut;
	sb_buf_clear(&t->buf);
	t->start = 0;
	t->total = 0;
}
