/* Parsing a tree manifest printed by a far side (the runtime's manifest script: `find -printf`
 * and `sha256sum -z`, one exec). Records end with a NUL byte, so any file name fits:
 *
 *   "V 1 <now seconds>"                                   first: version and the far clock
 *   "E <y> <mode octal> <size> <mtime>[.<frac>] <path>"   one per entry, followed by
 *   "<symlink target>"                                    (empty for anything but a symlink)
 *   "H"                                                   then the hashes, sha256sum -z lines:
 *   "<64 hex> <space or *><./path>"                       for the files the far side hashed
 *   "Z"                                                   the end: without it, truncated
 *
 * or "U <reason>" alone when the far side cannot list (a tool missing). Everything is
 * checked: digits and their ranges, kinds, relative paths without "." or "..", no path twice,
 * a hash only for a listed file, nothing after the end; the sizes are bounded by base.h.
 */
#include <sandbar/base.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 200u

void sb_manifest_init(sb_manifest *m)
{
	memset(m, 0, sizeof *m);
}

void sb_manifest_deinit(sb_manifest *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].path);
		free(m->v[i].target);
	}
	free(m->v);
	free(m->untrusted);
	sb_manifest_init(m);
}

typedef struct cursor {
	const char *p, *end;
	size_t recno;
} cursor;

/* The next NUL-terminated record; false at the end of data or when the last has no NUL. */
static bool next_record(cursor *c, const char **rec, size_t *len, sb_err **err)
{
	*err = NULL;
	if (c->p >= c->end)
		return false;
	const char *nul = memchr(c->p, '\0', (size_t)(c->end - c->p));
	if (!nul) {
		*err =
		    sb_err_new(SB_E_PROTOCOL, "manifest record %zu is not terminated (truncated)",
		               c->recno + 1);
		return false;
	}
	*rec = c->p;
	*len = (size_t)(nul - c->p);
	c->p = nul + 1;
	c->recno++;
	return true;
}

/* Decimal digits up to the next space (or the end); advances *s past the space. */
static bool parse_u64(const char **s, const char *end, uint64_t max, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	if (p >= end || *p < '0' || *p > '9')
		return false;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (p < end && *p != ' ')
		return false;
	*s = p < end ? p + 1 : p;
	*out = v;
	return true;
}

static bool parse_mode(const char **s, const char *end, uint32_t *out)
{
	const char *p = *s;
	uint32_t v = 0;
	size_t n = 0;
	for (; p < end && *p >= '0' && *p <= '7'; p++, n++)
		v = v * 8 + (uint32_t)(*p - '0');
	if (n == 0 || n > 5 || v > 07777 || p >= end || *p != ' ')
		return false;
	*s = p + 1;
	*out = v;
	return true;
}

/* "[-]<digits>[.<digits>]": whole seconds (toward zero for the fraction, which is dropped:
 * the archives carry whole seconds). */
static bool parse_mtime(const char **s, const char *end, int64_t *out)
{
	const char *p = *s;
	bool neg = p < end && *p == '-';
	if (neg)
		p++;
	uint64_t v;
	const char *q = p;
	while (q < end && *q >= '0' && *q <= '9')
		q++;
	if (q == p || q - p > 18)
		return false;
	v = 0;
	for (const char *r = p; r < q; r++)
		v = v * 10 + (uint64_t)(*r - '0');
	if (q < end && *q == '.') {
		const char *f = ++q;
		while (q < end && *q >= '0' && *q <= '9')
			q++;
		if (q == f || q - f > 20)
			return false;
	}
	if (q >= end || *q != ' ')
		return false;
	*s = q + 1;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

static bool kind_of(char y, sb_ftype *t)
{
	switch (y) {
	case 'f':
		*t = SB_FT_FILE;
		return true;
	case 'd':
		*t = SB_FT_DIR;
		return true;
	case 'l':
		*t = SB_FT_SYMLINK;
		return true;
	case 'p':
	case 's':
	case 'c':
	case 'b':
	case 'D':
		*t = SB_FT_OTHER;
		return true;
	default:
		return false;
	}
}

static sb_err *check_path(const char *p, size_t n, size_t recno)
{
	if (n == 0 || n > PATH_MAX)
		return sb_err_new(SB_E_PROTOCOL, "manifest record %zu: path of %zu bytes", recno,
		                  n);
	char *s = sb_xstrndup(p, n);
	sb_err *err = sb_path_check_relative(s);
	free(s);
	return err ? sb_err_prefix(err, "manifest record %zu", recno) : NULL;
}

static sb_err *parse_entry(sb_manifest *m, cursor *c, const char *rec, size_t len)
{
	const char *end = rec + len, *s = rec + 2;
	sb_manifest_entry e;
	memset(&e, 0, sizeof e);
	size_t recno = c->recno;
	if (len < 4 || !kind_of(s[0], &e.type) || s[1] != ' ')
		return sb_err_new(SB_E_PROTOCOL, "manifest record %zu: bad kind", recno);
	s += 2;
	if (!parse_mode(&s, end, &e.mode) || !parse_u64(&s, end, (uint64_t)INT64_MAX, &e.size) ||
	    s >= end || !parse_mtime(&s, end, &e.mtime_sec))
		return sb_err_new(SB_E_PROTOCOL, "manifest record %zu: bad mode, size or mtime",
		                  recno);
	sb_err *err = check_path(s, (size_t)(end - s), recno);
	if (err)
		return err;
	const char *trec;
	size_t tlen;
	if (!next_record(c, &trec, &tlen, &err))
		return err ? err
		           : sb_err_new(SB_E_PROTOCOL, "manifest record %zu has no target record",
		                        recno);
	if ((e.type == SB_FT_SYMLINK) != (tlen > 0) || tlen > PATH_MAX)
		return sb_err_new(SB_E_PROTOCOL, "manifest record %zu: bad symlink target", recno);
	if (m->n == SB_MANIFEST_MAX_ENTRIES)
		return sb_err_new(SB_E_TOO_LARGE, "manifest holds more than %u entries",
		                  SB_MANIFEST_MAX_ENTRIES);
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 256;
		m->v = sb_xrealloc(m->v, m->cap * sizeof *m->v);
	}
	e.path = sb_xstrndup(s, (size_t)(end - s));
	if (tlen)
		e.target = sb_xstrndup(trec, tlen);
	m->v[m->n++] = e;
	return NULL;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static sb_err *parse_hash(sb_manifest *m, const char *rec, size_t len, size_t recno)
{
	unsigned char sha[SB_SHA256_LEN];
	if (len < 2 * SB_SHA256_LEN + 4)
		return sb_err_new(SB_E_PROTOCOL, "manifest record %zu: short hash line", recno);
	for (size_t i = 0; i < SB_SHA256_LEN; i++) {
		int hi = hexval(rec[2 * i]), lo = hexval(rec[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return sb_err_new(SB_E_PROTOCOL, "manifest record %zu: bad hash", recno);
		sha[i] = (unsigned char)(hi * 16 + lo);
	}
	const char *s = rec + 2 * SB_SHA256_LEN;
	if (s[0] != ' ' || (s[1] != ' ' && s[1] != '*') || s[2] != '.' || s[3] != '/')
		return sb_err_new(SB_E_PROTOCOL, "manifest record %zu: bad hash line", recno);
	s += 4;
	size_t plen = (size_t)(rec + len - s);
	sb_err *err = check_path(s, plen, recno);
	if (err)
		return err;
	char *path = sb_xstrndup(s, plen);
	sb_manifest_entry *e = sb_manifest_find(m, path);
	free(path);
	if (!e || e->type != SB_FT_FILE || e->hashed)
		return sb_err_new(SB_E_PROTOCOL,
		                  "manifest record %zu: a hash for no listed file, or twice",
		                  recno);
	memcpy(e->sha, sha, sizeof sha);
	e->hashed = true;
	return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const sb_manifest_entry *)a)->path, ((const sb_manifest_entry *)b)->path);
}

static bool is_record(const char *rec, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(rec, word, len) == 0;
}

static sb_err *parse_all(sb_manifest *m, const char *data, size_t len)
{
	if (len > SB_MANIFEST_MAX_BYTES)
		return sb_err_new(SB_E_TOO_LARGE, "manifest of %zu bytes exceeds %u", len,
		                  SB_MANIFEST_MAX_BYTES);
	cursor c = {.p = data, .end = data + len};
	const char *rec;
	size_t rlen;
	sb_err *err = NULL;
	if (!next_record(&c, &rec, &rlen, &err))
		return err ? err : sb_err_new(SB_E_PROTOCOL, "empty manifest");
	if (rlen >= 2 && rec[0] == 'U' && rec[1] == ' ') {
		size_t n = rlen - 2 < REASON_MAX ? rlen - 2 : REASON_MAX;
		char *r = sb_xstrndup(rec + 2, n);
		for (char *q = r; *q; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
				*q = '?';
		m->untrusted = r;
		return NULL;
	}
	const char *s = rec + 4;
	uint64_t now;
	if (rlen < 5 || memcmp(rec, "V 1 ", 4) != 0 ||
	    !parse_u64(&s, rec + rlen, (uint64_t)INT64_MAX, &now) || s != rec + rlen)
		return sb_err_new(SB_E_PROTOCOL, "manifest does not start with its version record");
	m->now_sec = (int64_t)now;
	bool hashes = false;
	for (;;) {
		if (!next_record(&c, &rec, &rlen, &err))
			return err ? err : sb_err_new(SB_E_PROTOCOL, "manifest is truncated");
		if (is_record(rec, rlen, "Z"))
			break;
		if (!hashes && is_record(rec, rlen, "H")) {
			hashes = true;
			if (m->n > 1)
				qsort(m->v, m->n, sizeof *m->v, cmp_entry);
			for (size_t i = 1; i < m->n; i++)
				if (strcmp(m->v[i - 1].path, m->v[i].path) == 0)
					return sb_err_new(SB_E_PROTOCOL,
					                  "manifest lists a path twice");
			continue;
		}
		if (hashes)
			err = parse_hash(m, rec, rlen, c.recno);
		else if (rlen >= 2 && rec[0] == 'E' && rec[1] == ' ')
			err = parse_entry(m, &c, rec, rlen);
		else
			err = sb_err_new(SB_E_PROTOCOL, "manifest record %zu is of no known kind",
			                 c.recno);
		if (err)
			return err;
	}
	if (!hashes)
		return sb_err_new(SB_E_PROTOCOL, "manifest has no hash section");
	if (c.p != c.end)
		return sb_err_new(SB_E_PROTOCOL, "manifest has data after its end record");
	return NULL;
}

sb_err *sb_manifest_parse(const char *data, size_t len, sb_manifest *out)
{
	sb_manifest_init(out);
	sb_err *err = parse_all(out, data, len);
	if (err) {
		sb_manifest_deinit(out);
		return sb_err_prefix(err, "reading the far side's manifest");
	}
	return NULL;
}

sb_manifest_entry *sb_manifest_find(const sb_manifest *m, const char *path)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->v[mid].path, path);
		if (c == 0)
			return &m->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
