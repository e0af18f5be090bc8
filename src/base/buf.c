/* Growable byte buffer. Capacity doubles, data stays NUL-terminated past len so text buffers
 * double as C strings, and steal() hands the memory over without a copy. */
#include <sandbar/base.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_buf_init(sb_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void sb_buf_deinit(sb_buf *b)
{
	free(b->data);
	sb_buf_init(b);
}

void sb_buf_reserve(sb_buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1)
		sb_xmalloc(SIZE_MAX); /* aborts: a request this size is a bug */
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = sb_xrealloc(b->data, cap);
	b->cap = cap;
}

void sb_buf_append(sb_buf *b, const void *p, size_t n)
{
	sb_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void sb_buf_appends(sb_buf *b, const char *s)
{
	sb_buf_append(b, s, strlen(s));
}

void sb_buf_appendc(sb_buf *b, char c)
{
	sb_buf_append(b, &c, 1);
}

void sb_buf_vappendf(sb_buf *b, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	int n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0)
		return;
	sb_buf_reserve(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void sb_buf_appendf(sb_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_buf_vappendf(b, fmt, ap);
	va_end(ap);
}

void sb_buf_clear(sb_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void sb_buf_consume(sb_buf *b, size_t n)
{
	if (n >= b->len) {
		sb_buf_clear(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

const char *sb_buf_cstr(sb_buf *b)
{
	if (!b->data)
		sb_buf_reserve(b, 0), b->data[0] = '\0';
	return b->data;
}

char *sb_buf_steal(sb_buf *b, size_t *len_out)
{
	sb_buf_cstr(b);
	char *p = b->data;
	if (len_out)
		*len_out = b->len;
	sb_buf_init(b);
	return p;
}
