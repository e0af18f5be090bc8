/* Allocation that never returns NULL: running out of memory aborts with a message, so the rest
 * of the code has one less failure path to get wrong (the Redis approach). */
#include <sandbar/base.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(size_t n)
{
	char msg[96];
	int len = snprintf(msg, sizeof msg, "sandbar: out of memory allocating %zu bytes\n", n);
	if (len > 0)
		(void)!write(2, msg, (size_t)len);
	abort();
}

void *sb_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *sb_xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		oom(count * size);
	return p;
}

void *sb_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *sb_xstrdup(const char *s)
{
	return sb_xmemdup(s, strlen(s) + 1);
}

char *sb_xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = sb_xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void *sb_xmemdup(const void *p, size_t n)
{
	void *q = sb_xmalloc(n);
	if (n)
		memcpy(q, p, n);
	return q;
}
