/* The router: a list of (method, pattern) routes matched in registration order against the
 * percent-decoded segments of a request path, plus per-prefix fallbacks for authenticated
 * requests that match nothing. Patterns are split once at registration; matching allocates only
 * the decoded parameter values it returns. */
#include "http.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 64

typedef struct route {
	char *method;
	char **segs; /* pattern segments */
	size_t nsegs;
	bool rest; /* last segment is "{name...}" */
	unsigned flags;
	sbs_handler h;
	void *ud;
} route;

typedef struct fallback {
	char *prefix;
	sbs_handler h;
	void *ud;
} fallback;

struct sbs_router {
	route *routes;
	size_t n;
	fallback *fbs;
	size_t nfb;
};

sbs_router *sbs_router_new(void)
{
	return sb_xcalloc(1, sizeof(sbs_router));
}

void sbs_router_free(sbs_router *rt)
{
	if (!rt)
		return;
	for (size_t i = 0; i < rt->n; i++) {
		free(rt->routes[i].method);
		for (size_t j = 0; j < rt->routes[i].nsegs; j++)
			free(rt->routes[i].segs[j]);
		free(rt->routes[i].segs);
	}
	for (size_t i = 0; i < rt->nfb; i++)
		free(rt->fbs[i].prefix);
	free(rt->routes);
	free(rt->fbs);
	free(rt);
}

void sbs_router_add(sbs_router *rt, const char *method, const char *pattern, unsigned flags,
                    sbs_handler h, void *ud)
{
	route r = {0};
	r.method = method ? sb_xstrdup(method) : NULL;
	r.flags = flags;
	r.h = h;
	r.ud = ud;
	const char *p = pattern;
	while (*p == '/')
		p++;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		r.segs = sb_xrealloc(r.segs, (r.nsegs + 1) * sizeof *r.segs);
		r.segs[r.nsegs++] = sb_xstrndup(p, n);
		p += n;
		while (*p == '/')
			p++;
	}
	if (r.nsegs && sb_str_has_suffix(r.segs[r.nsegs - 1], "...}"))
		r.rest = true;
	rt->routes = sb_xrealloc(rt->routes, (rt->n + 1) * sizeof *rt->routes);
	rt->routes[rt->n++] = r;
}

void sbs_router_set_fallback(sbs_router *rt, const char *prefix, sbs_handler h, void *ud)
{
	rt->fbs = sb_xrealloc(rt->fbs, (rt->nfb + 1) * sizeof *rt->fbs);
	rt->fbs[rt->nfb].prefix = sb_xstrdup(prefix);
	rt->fbs[rt->nfb].h = h;
	rt->fbs[rt->nfb].ud = ud;
	rt->nfb++;
}

void sbs_match_deinit(sbs_match *m)
{
	for (size_t i = 0; i < m->nparams; i++)
		free(m->values[i]);
	memset(m, 0, sizeof *m);
}

/* Split the raw path into decoded segments. Empty segments ("//") are dropped except that the
 * result must be non-empty for "/"; "." and ".." are refused. */
static sb_err *split_path(const char *raw, char **segs, size_t *nsegs)
{
	*nsegs = 0;
	if (raw[0] != '/')
		return sb_err_new(SB_E_INVAL, "request path must start with '/'");
	const char *p = raw;
	sb_buf b = SB_BUF_INIT;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		sb_buf_clear(&b);
		sb_err *err = sb_url_decode(p, n, false, &b);
		if (!err &&
		    (strcmp(sb_buf_cstr(&b), ".") == 0 || strcmp(sb_buf_cstr(&b), "..") == 0))
			err = sb_err_new(SB_E_INVAL, "\".\" and \"..\" segments are not allowed");
		/* a decoded '/' would turn one parameter into two path segments */
		if (!err && memchr(sb_buf_cstr(&b), '/', b.len))
			err = sb_err_new(SB_E_INVAL,
			                 "an encoded '/' (%%2F) is not allowed in a path segment");
		if (!err && *nsegs >= MAX_SEGS)
			err = sb_err_new(SB_E_INVAL, "more than %d path segments", MAX_SEGS);
		if (err) {
			for (size_t i = 0; i < *nsegs; i++)
				free(segs[i]);
			*nsegs = 0;
			sb_buf_deinit(&b);
			return err;
		}
		segs[(*nsegs)++] = sb_buf_steal(&b, NULL);
		p += n;
	}
	sb_buf_deinit(&b);
	return NULL;
}

static bool is_param(const char *seg)
{
	return seg[0] == '{';
}

static bool match_route(const route *r, char **segs, size_t nsegs, sbs_match *m)
{
	if (r->rest ? nsegs < r->nsegs : nsegs != r->nsegs)
		return false;
	for (size_t i = 0; i < r->nsegs; i++) {
		if (r->rest && i == r->nsegs - 1)
			break;
		if (!is_param(r->segs[i]) && strcmp(r->segs[i], segs[i]) != 0)
			return false;
	}
	m->nparams = 0;
	for (size_t i = 0; i < r->nsegs && m->nparams < SBS_MAX_PARAMS; i++) {
		if (!is_param(r->segs[i]))
			continue;
		/* names[] must outlive the match: point at the pattern text after '{'. The
		 * trailing "}" / "...}" is excluded by the comparison in sbs_req_param. */
		m->names[m->nparams] = r->segs[i] + 1;
		if (r->rest && i == r->nsegs - 1) {
			sb_buf b = SB_BUF_INIT;
			for (size_t j = i; j < nsegs; j++) {
				if (j > i)
					sb_buf_appendc(&b, '/');
				sb_buf_appends(&b, segs[j]);
			}
			m->values[m->nparams++] = sb_buf_steal(&b, NULL);
		} else {
			m->values[m->nparams++] = sb_xstrdup(segs[i]);
		}
	}
	return true;
}

bool sbs_router_match(const sbs_router *rt, const char *method, const char *raw_path, sbs_match *m,
                      sb_err **err)
{
	memset(m, 0, sizeof *m);
	*err = NULL;
	char *segs[MAX_SEGS];
	size_t nsegs = 0;
	if ((*err = split_path(raw_path, segs, &nsegs)))
		return false;
	bool found = false;
	for (size_t i = 0; i < rt->n && !found; i++) {
		const route *r = &rt->routes[i];
		sbs_match tmp = {0};
		if (!match_route(r, segs, nsegs, &tmp))
			continue;
		if (r->method && strcmp(r->method, method) != 0) {
			m->path_matched = true;
			sbs_match_deinit(&tmp);
			continue;
		}
		bool pm = m->path_matched;
		*m = tmp;
		m->path_matched = pm;
		m->h = r->h;
		m->ud = r->ud;
		m->flags = r->flags;
		found = true;
	}
	if (!found) {
		size_t best = 0;
		for (size_t i = 0; i < rt->nfb; i++) {
			size_t n = strlen(rt->fbs[i].prefix);
			if (strncmp(raw_path, rt->fbs[i].prefix, n) == 0 && n >= best) {
				best = n;
				m->h = rt->fbs[i].h;
				m->ud = rt->fbs[i].ud;
				m->flags = 0;
				found = true;
			}
		}
	}
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	return found;
}

bool sbs_param_name_eq(const char *pattern_name, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(pattern_name, name, n) != 0)
		return false;
	return strcmp(pattern_name + n, "}") == 0 || strcmp(pattern_name + n, "...}") == 0;
}
