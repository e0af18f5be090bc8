/* The one exclude matcher (managed-runtime spec §2.8) used by archives, snapshots and restores,
 * so all three agree on what is left out. Matching is literal on '/'-separated relative paths:
 * "*\/X/\*" and "*\/X" match the segment(s) X at any depth, "X/\*" matches below X, anything else
 * is a path prefix. There is deliberately no globbing: tar's unanchored globs and a literal merge
 * would otherwise disagree about names containing '*' or '['. */
#include <sandbar/base.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void sb_excludes_init(sb_excludes *ex)
{
	ex->patterns = sb_xcalloc(1, sizeof *ex->patterns);
	ex->matcher = NULL;
}

void sb_excludes_deinit(sb_excludes *ex)
{
	if (!ex)
		return;
	sb_strv_free(ex->patterns);
	ex->patterns = NULL;
}

void sb_excludes_add(sb_excludes *ex, const char *pattern)
{
	if (!pattern || !*pattern)
		return;
	for (char **p = ex->patterns; p && *p; p++)
		if (strcmp(*p, pattern) == 0)
			return;
	sb_strv_push(&ex->patterns, pattern);
}

void sb_excludes_add_dir(sb_excludes *ex, const char *dir)
{
	if (!dir || !*dir)
		return;
	char *forms[4] = {
	    sb_xstrdup(dir),
	    sb_strfmt("%s/*", dir),
	    sb_strfmt("*/%s", dir),
	    sb_strfmt("*/%s/*", dir),
	};
	for (size_t i = 0; i < 4; i++) {
		sb_excludes_add(ex, forms[i]);
		free(forms[i]);
	}
}

sb_err *sb_excludes_check_user(const char *path)
{
	if (!path || !*path)
		return sb_err_new(SB_E_INVAL, "exclude path is empty");
	size_t bad = strcspn(path, "*?[\\");
	if (path[bad])
		return sb_err_new(SB_E_INVAL,
		                  "exclude path %s contains the glob character '%c': excludes are "
		                  "plain relative paths",
		                  path, path[bad]);
	sb_err *err = sb_path_check_relative(path);
	if (err) {
		/* Same words for every rejection: the caller gave a bad exclude, not an escape. */
		err->code = SB_E_INVAL;
		return sb_err_prefix(err, "invalid exclude");
	}
	return NULL;
}

/* p starts with x and the next character ends a segment. */
static bool under_or_equal(const char *p, const char *x, size_t xlen)
{
	return strncmp(p, x, xlen) == 0 && (p[xlen] == '\0' || p[xlen] == '/');
}

/* x at any depth: p == x, starts with x/, ends with /x, or contains /x/. */
static bool segment_anywhere(const char *p, const char *x, size_t xlen)
{
	if (xlen == 0)
		return false;
	if (under_or_equal(p, x, xlen))
		return true;
	for (const char *s = strchr(p, '/'); s; s = strchr(s + 1, '/'))
		if (under_or_equal(s + 1, x, xlen))
			return true;
	return false;
}

static bool match_one(const char *pat, const char *p)
{
	size_t plen = strlen(pat);
	if (plen >= 2 && pat[0] == '*' && pat[1] == '/') {
		const char *x = pat + 2;
		size_t xlen = plen - 2;
		if (xlen >= 2 && x[xlen - 2] == '/' && x[xlen - 1] == '*')
			xlen -= 2;
		return segment_anywhere(p, x, xlen);
	}
	if (plen >= 2 && pat[plen - 2] == '/' && pat[plen - 1] == '*')
		return strncmp(p, pat, plen - 1) == 0; /* starts with "X/" */
	return under_or_equal(p, pat, plen);
}

bool sb_excludes_match_entry(const sb_excludes *ex, const char *relpath, bool is_dir)
{
	if (!ex || !relpath)
		return false;
	for (char **pat = ex->patterns; pat && *pat; pat++)
		if (match_one(*pat, relpath))
			return true;
	/* Inside a repository's own directory no rule applies: it is staged whole or not at all
	 * (sb_matcher_match decides on the ".git" entry itself). */
	if (!ex->matcher || strncmp(relpath, ".git/", 5) == 0 || strstr(relpath, "/.git/"))
		return false;
	return sb_matcher_match(ex->matcher, relpath, is_dir) != SB_RULE_NONE;
}

bool sb_excludes_match(const sb_excludes *ex, const char *relpath)
{
	return sb_excludes_match_entry(ex, relpath, false);
}
