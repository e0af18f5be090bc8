/* String helpers: prefixes, formatted copies, string vectors (argv/env) and strict parsers for
 * the numbers, sizes and durations that users type on command lines and in config files. */
#include <sandbar/base.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool sb_str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool sb_str_has_suffix(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);
	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

char *sb_strfmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_buf b = SB_BUF_INIT;
	sb_buf_vappendf(&b, fmt, ap);
	va_end(ap);
	return sb_buf_steal(&b, NULL);
}

size_t sb_strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

char **sb_strv_dup(char *const *v)
{
	size_t n = sb_strv_len(v);
	char **out = sb_xcalloc(n + 1, sizeof *out);
	for (size_t i = 0; i < n; i++)
		out[i] = sb_xstrdup(v[i]);
	return out;
}

void sb_strv_free(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

void sb_strv_push(char ***v, const char *s)
{
	size_t n = sb_strv_len(*v);
	*v = sb_xrealloc(*v, (n + 2) * sizeof **v);
	(*v)[n] = sb_xstrdup(s);
	(*v)[n + 1] = NULL;
}

const char *sb_env_get(char *const *env, const char *key, size_t klen)
{
	for (char *const *e = env; e && *e; e++)
		if (strncmp(*e, key, klen) == 0 && (*e)[klen] == '=')
			return *e + klen + 1;
	return NULL;
}

sb_err *sb_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s || isspace((unsigned char)*s))
		return sb_err_new(SB_E_INVAL, "expected a whole number, got \"%s\"", s ? s : "");
	errno = 0;
	char *end = NULL;
	long long v = strtoll(s, &end, 10);
	if (errno == ERANGE || *end != '\0')
		return sb_err_new(SB_E_INVAL, "expected a whole number, got \"%s\"", s);
	if (v < min || v > max)
		return sb_err_new(SB_E_INVAL, "%lld is out of range [%lld, %lld]", v,
		                  (long long)min, (long long)max);
	*out = (int64_t)v;
	return NULL;
}

/* A non-negative decimal with an optional fractional part, then a unit suffix. */
static bool split_number(const char *s, double *num, const char **unit)
{
	if (!s || !isdigit((unsigned char)*s))
		return false;
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno == ERANGE || end == s || v < 0)
		return false;
	*num = v;
	*unit = end;
	return true;
}

sb_err *sb_parse_size(const char *s, uint64_t *out)
{
	double v;
	const char *unit;
	if (!split_number(s, &v, &unit))
		return sb_err_new(SB_E_INVAL, "invalid size \"%s\" (examples: 512M, 2G, 65536)",
		                  s ? s : "");
	double mul;
	if (!strcmp(unit, "") || !strcasecmp(unit, "b"))
		mul = 1;
	else if (!strcasecmp(unit, "k") || !strcasecmp(unit, "kb") || !strcasecmp(unit, "kib"))
		mul = 1024.0;
	else if (!strcasecmp(unit, "m") || !strcasecmp(unit, "mb") || !strcasecmp(unit, "mib"))
		mul = 1024.0 * 1024;
	else if (!strcasecmp(unit, "g") || !strcasecmp(unit, "gb") || !strcasecmp(unit, "gib"))
		mul = 1024.0 * 1024 * 1024;
	else if (!strcasecmp(unit, "t") || !strcasecmp(unit, "tb") || !strcasecmp(unit, "tib"))
		mul = 1024.0 * 1024 * 1024 * 1024;
	else
		return sb_err_new(SB_E_INVAL, "invalid size unit in \"%s\" (use K, M, G or T)", s);
	double bytes = v * mul;
	if (bytes >= 18446744073709551616.0)
		return sb_err_new(SB_E_INVAL, "size \"%s\" is too large", s);
	*out = (uint64_t)bytes;
	return NULL;
}

sb_err *sb_parse_duration_ms(const char *s, int64_t *out)
{
	double v;
	const char *unit;
	if (!split_number(s, &v, &unit))
		return sb_err_new(SB_E_INVAL,
		                  "invalid duration \"%s\" (examples: 500ms, 30s, 5m, 1h)",
		                  s ? s : "");
	double mul;
	if (!strcmp(unit, "ms"))
		mul = 1;
	else if (!strcmp(unit, "") || !strcmp(unit, "s"))
		mul = 1000;
	else if (!strcmp(unit, "m"))
		mul = 60000;
	else if (!strcmp(unit, "h"))
		mul = 3600000;
	else if (!strcmp(unit, "d"))
		mul = 86400000;
	else
		return sb_err_new(SB_E_INVAL, "invalid duration unit in \"%s\" (use ms, s, m, h)",
		                  s);
	double ms = v * mul;
	if (ms > 9.0e15)
		return sb_err_new(SB_E_INVAL, "duration \"%s\" is too long", s);
	*out = (int64_t)ms;
	return NULL;
}

void sb_hex_encode(const void *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[s[i] >> 4];
		out[2 * i + 1] = digits[s[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool sb_hex_decode(const char *s, size_t n, unsigned char *out)
{
	for (size_t i = 0; i < n; i++) {
		int h = hex_digit(s[2 * i]), l = hex_digit(s[2 * i + 1]);
		if (h < 0 || l < 0)
			return false;
		out[i] = (unsigned char)(h * 16 + l);
	}
	return true;
}
