/* Callback bridge configuration: the client's JSON (API field, `sandbar run --callback FILE`)
 * checked against the operator's named entry (DESIGN.md §9.11: credentials only by name, the
 * upstream within the entry's origins, limits lowered never raised), the Paperclip route
 * preset, and the form kept in the lease's run/callback.json for a restarted relay. */
#include "callback_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define ROUTES_MAX 256

/* Paperclip's agent callback routes (spec appendix "Route allowlist"): identity, heartbeat
 * context, issues, comments, documents, checkout, interactions, attachments, the OpenAPI
 * document. Everything else stays denied (agent creation, secrets, keys, approvals, ...). */
static const struct {
	const char *method, *pattern;
	bool any_body;
} paperclip_routes[] = {
    {"GET", "^/api/agents/me$", false},
    {"GET", "^/api/openapi\\.json$", false},
    {"GET", "^/api/issues/[^/]+/heartbeat-context$", false},
    {"GET", "^/api/issues/[^/]+$", false},
    {"PATCH", "^/api/issues/[^/]+$", false},
    {"GET", "^/api/issues/[^/]+/comments$", false},
    {"POST", "^/api/issues/[^/]+/comments$", false},
    {"GET", "^/api/issues/[^/]+/documents$", false},
    {"GET", "^/api/issues/[^/]+/documents/[^/]+$", false},
    {"PUT", "^/api/issues/[^/]+/documents/[^/]+$", false},
    {"POST", "^/api/issues/[^/]+/checkout$", false},
    {"GET", "^/api/issues/[^/]+/interactions$", false},
    {"POST", "^/api/issues/[^/]+/interactions$", false},
    {"POST", "^/api/companies/[^/]+/issues/[^/]+/attachments$", true},
};

static const char *const default_headers[] = {"accept", "content-type", "if-match", "if-none-match",
                                              NULL};
static const char *const paperclip_headers[] = {
    "accept", "content-type", "if-match", "if-none-match", "x-paperclip-github-capability", NULL};

void sb_callback_config_free(sb_callback_config *c)
{
	if (!c)
		return;
	free(c->upstream);
	free(c->credential);
	free(c->credential_header);
	free(c->host_name);
	for (size_t i = 0; i < c->nroutes; i++) {
		free(c->routes[i].method);
		free(c->routes[i].pattern);
	}
	free(c->routes);
	sb_strv_free(c->headers);
	free(c);
}

void sb_callback_entry_deinit(sb_callback_entry *e)
{
	free(e->name);
	sb_strv_free(e->origins);
	free(e->credential);
	free(e->credential_header);
	memset(e, 0, sizeof *e);
}

static void add_route(sb_callback_config *c, const char *m, const char *p, bool any)
{
	c->routes = sb_xrealloc(c->routes, (c->nroutes + 1) * sizeof *c->routes);
	c->routes[c->nroutes++] = (sb_callback_route){sb_xstrdup(m), sb_xstrdup(p), any};
}

/* "scheme://host[:port]" of a URL, lower-cased with the default port made explicit; NULL when
 * it is not an http(s) URL without user info, query or fragment. */
static char *origin_of(const char *url, const char **path_out)
{
	size_t sl;
	const char *dport;
	if (strncasecmp(url, "http://", 7) == 0) {
		sl = 7;
		dport = "80";
	} else if (strncasecmp(url, "https://", 8) == 0) {
		sl = 8;
		dport = "443";
	} else {
		return NULL;
	}
	const char *h = url + sl;
	size_t hl = strcspn(h, "/");
	if (hl == 0 || memchr(h, '@', hl) || strpbrk(url, "?# \t\r\n\\"))
		return NULL;
	bool has_port = false;
	const char *close = h[0] == '[' ? memchr(h, ']', hl) : NULL;
	const char *colon = NULL;
	for (const char *p = close ? close : h; p < h + hl; p++)
		if (*p == ':')
			colon = p;
	has_port = colon != NULL;
	char *o = has_port ? sb_strfmt("%.*s%.*s", (int)sl, url, (int)hl, h)
	                   : sb_strfmt("%.*s%.*s:%s", (int)sl, url, (int)hl, h, dport);
	for (char *p = o; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (path_out)
		*path_out = h + hl;
	return o;
}

static sb_err *get_routes(json_t *arr, sb_callback_config *c)
{
	if (!arr || json_is_null(arr))
		return NULL;
	if (!json_is_array(arr) || json_array_size(arr) > ROUTES_MAX)
		return sb_err_new(SB_E_INVAL,
		                  "callback.routes must be an array of at most %d "
		                  "{\"method\",\"path\"} objects",
		                  ROUTES_MAX);
	size_t i;
	json_t *r;
	json_array_foreach(arr, i, r)
	{
		const char *m = NULL, *p = NULL;
		bool any = false;
		sb_err *err;
		if (!json_is_object(r))
			return sb_err_new(SB_E_INVAL, "callback.routes[%zu] must be an object", i);
		if ((err = sb_json_get_str(r, "method", true, &m)) ||
		    (err = sb_json_get_str(r, "path", true, &p)) ||
		    (err = sb_json_get_bool(r, "anyBody", false, &any)))
			return sb_err_prefix(err, "callback.routes[%zu]", i);
		bool mok = strlen(m) > 0 && strlen(m) < 16;
		for (const char *k = m; *k; k++)
			mok = mok && *k >= 'A' && *k <= 'Z';
		if (!mok)
			return sb_err_new(SB_E_INVAL,
			                  "callback.routes[%zu].method \"%s\" is not an upper-case "
			                  "HTTP method",
			                  i, m);
		if (strlen(p) > 512 || !sbcb_route_valid(p))
			return sb_err_new(
			    SB_E_INVAL,
			    "callback.routes[%zu].path \"%s\": use an anchored path of "
			    "literal text, \"\\\\.\" and at most one \"[^/]+\" per "
			    "segment",
			    i, p);
		add_route(c, m, p, any);
	}
	return NULL;
}

static sb_err *limit(json_t *j, const char *key, int64_t ceiling, int64_t *out)
{
	int64_t v = 0;
	sb_err *err = sb_json_get_int(j, key, false, 0, INT64_MAX, &v);
	if (err)
		return sb_err_prefix(err, "callback");
	if (v > ceiling)
		return sb_err_new(SB_E_INVAL,
		                  "callback.%s %lld is above the operator's ceiling %lld; ask for "
		                  "less or omit it",
		                  key, (long long)v, (long long)ceiling);
	*out = v ? v : ceiling;
	return NULL;
}

sb_err *sb_callback_config_from_json(const char *text, size_t len, const sb_callback_entry *entries,
                                     size_t nentries, sb_callback_config **out)
{
	*out = NULL;
	json_t *j = NULL;
	sb_err *err = sb_json_parse_object(text, len, 256 * 1024, 8, &j);
	if (err)
		return sb_err_prefix(err, "callback configuration");
	sb_callback_config *c = sb_xcalloc(1, sizeof *c);
	const char *name = NULL, *upstream = NULL, *preset = NULL, *host = NULL;
	const sb_callback_entry *e = NULL;
	char **headers = NULL, *origin = NULL;
	if ((err = sb_json_get_str(j, "name", true, &name)) ||
	    (err = sb_json_get_str(j, "upstream", false, &upstream)) ||
	    (err = sb_json_get_str(j, "preset", false, &preset)) ||
	    (err = sb_json_get_str(j, "hostName", false, &host)) ||
	    (err = sb_json_get_strv(j, "headers", false, 64, &headers))) {
		err = sb_err_prefix(err, "callback");
		goto out;
	}
	for (size_t i = 0; i < nentries && !e; i++)
		if (strcmp(entries[i].name, name) == 0)
			e = &entries[i];
	if (!e) {
		err = sb_err_new(SB_E_INVAL,
		                 "callback.name \"%s\" is not configured; the operator adds a "
		                 "[callback %s] section to the config file",
		                 name, name);
		goto out;
	}
	if (!e->origins || !e->origins[0]) {
		err =
		    sb_err_new(SB_E_INVAL, "[callback %s] has no upstream origin configured", name);
		goto out;
	}
	if (!upstream)
		upstream = e->origins[0];
	const char *upath = NULL;
	origin = origin_of(upstream, &upath);
	bool allowed = false;
	for (size_t i = 0; origin && e->origins[i] && !allowed; i++) {
		char *o = origin_of(e->origins[i], NULL);
		allowed = o && strcmp(o, origin) == 0;
		free(o);
	}
	if (!allowed) {
		err = sb_err_new(SB_E_INVAL,
		                 "callback.upstream \"%s\" is not within the origins [callback %s] "
		                 "allows",
		                 upstream, name);
		goto out;
	}
	c->upstream = sb_xstrdup(upstream);
	size_t ul = strlen(c->upstream);
	while (ul > 0 && c->upstream[ul - 1] == '/' && (size_t)(upath - upstream) < ul)
		c->upstream[--ul] = '\0';
	c->credential = e->credential ? sb_xstrdup(e->credential) : NULL;
	c->credential_header = e->credential_header ? sb_xstrdup(e->credential_header) : NULL;
	if (host) {
		bool ok = strlen(host) > 0 && strlen(host) < 200;
		for (const char *k = host; *k && ok; k++)
			ok = isalnum((unsigned char)*k) || *k == '-' || *k == '.';
		if (!ok) {
			err = sb_err_new(SB_E_INVAL, "callback.hostName \"%s\" is not a host name",
			                 host);
			goto out;
		}
		c->host_name = sb_xstrdup(host);
	}
	if (preset && strcmp(preset, "paperclip") == 0) {
		c->paperclip = true;
		for (size_t i = 0; i < sizeof paperclip_routes / sizeof paperclip_routes[0]; i++)
			add_route(c, paperclip_routes[i].method, paperclip_routes[i].pattern,
			          paperclip_routes[i].any_body);
	} else if (preset) {
		err = sb_err_new(SB_E_INVAL, "callback.preset \"%s\" is unknown (known: paperclip)",
		                 preset);
		goto out;
	}
	if ((err = get_routes(json_object_get(j, "routes"), c)))
		goto out;
	if (c->nroutes == 0) {
		err =
		    sb_err_new(SB_E_INVAL,
		               "callback needs routes (or \"preset\":\"paperclip\"): nothing would "
		               "be allowed");
		goto out;
	}
	if (headers) {
		for (size_t i = 0; headers[i]; i++)
			for (char *k = headers[i]; *k; k++) {
				*k = (char)tolower((unsigned char)*k);
				if (!isalnum((unsigned char)*k) && *k != '-') {
					err = sb_err_new(
					    SB_E_INVAL,
					    "callback.headers: \"%s\" is not a header name",
					    headers[i]);
					goto out;
				}
			}
		for (size_t i = 0; headers[i]; i++)
			if (strcmp(headers[i], "authorization") == 0 ||
			    strcmp(headers[i], "host") == 0 ||
			    strcmp(headers[i], "content-length") == 0 ||
			    strcmp(headers[i], "cookie") == 0 ||
			    (c->credential_header &&
			     strcasecmp(headers[i], c->credential_header) == 0)) {
				err = sb_err_new(
				    SB_E_INVAL, "callback.headers: \"%s\" cannot be passed through",
				    headers[i]);
				goto out;
			}
		c->headers = headers;
		headers = NULL;
	} else {
		c->headers = sb_strv_dup(
		    (char *const *)(c->paperclip ? paperclip_headers : default_headers));
	}
	int64_t v;
	if ((err = limit(j, "maxBodyBytes",
	                 (int64_t)(e->max_body_bytes ? e->max_body_bytes : SBCB_MAX_BODY_DEFAULT),
	                 &v)))
		goto out;
	c->max_body_bytes = (uint64_t)v;
	if ((err =
	         limit(j, "queueDepth", e->queue_depth ? e->queue_depth : SBCB_QUEUE_DEFAULT, &v)))
		goto out;
	c->queue_depth = (uint32_t)v;
	if ((err = limit(j, "timeoutMs", e->timeout_ms ? e->timeout_ms : SBCB_TIMEOUT_MS_DEFAULT,
	                 &v)))
		goto out;
	c->timeout_ms = v;
	*out = c;
	c = NULL;
out:
	free(origin);
	sb_strv_free(headers);
	sb_callback_config_free(c);
	json_decref(j);
	return err;
}

char *sbcb_config_dump(const sb_callback_config *c)
{
	json_t *j = json_object();
	json_object_set_new(j, "upstream", json_string(c->upstream));
	if (c->credential)
		json_object_set_new(j, "credential", json_string(c->credential));
	if (c->credential_header)
		json_object_set_new(j, "credentialHeader", json_string(c->credential_header));
	if (c->host_name)
		json_object_set_new(j, "hostName", json_string(c->host_name));
	json_t *rs = json_array();
	for (size_t i = 0; i < c->nroutes; i++) {
		json_t *r = json_object();
		json_object_set_new(r, "method", json_string(c->routes[i].method));
		json_object_set_new(r, "path", json_string(c->routes[i].pattern));
		json_object_set_new(r, "anyBody", json_boolean(c->routes[i].any_body));
		json_array_append_new(rs, r);
	}
	json_object_set_new(j, "routes", rs);
	json_t *hs = json_array();
	for (size_t i = 0; c->headers && c->headers[i]; i++)
		json_array_append_new(hs, json_string(c->headers[i]));
	json_object_set_new(j, "headers", hs);
	json_object_set_new(j, "maxBodyBytes", json_integer((json_int_t)c->max_body_bytes));
	json_object_set_new(j, "queueDepth", json_integer((json_int_t)c->queue_depth));
	json_object_set_new(j, "timeoutMs", json_integer((json_int_t)c->timeout_ms));
	json_object_set_new(j, "paperclip", json_boolean(c->paperclip));
	char *s = sb_json_dumps(j);
	json_decref(j);
	return s;
}

sb_err *sbcb_config_load(const char *text, size_t len, sb_callback_config **out)
{
	*out = NULL;
	json_t *j = NULL;
	sb_err *err = sb_json_parse_object(text, len, 1u << 20, 8, &j);
	if (err)
		return err;
	sb_callback_config *c = sb_xcalloc(1, sizeof *c);
	const char *up = NULL, *cred = NULL, *ch = NULL, *host = NULL;
	int64_t mb = 0, qd = 0, to = 0;
	if ((err = sb_json_get_str(j, "upstream", true, &up)) ||
	    (err = sb_json_get_str(j, "credential", false, &cred)) ||
	    (err = sb_json_get_str(j, "credentialHeader", false, &ch)) ||
	    (err = sb_json_get_str(j, "hostName", false, &host)) ||
	    (err = sb_json_get_strv(j, "headers", true, 64, &c->headers)) ||
	    (err = sb_json_get_int(j, "maxBodyBytes", true, 0, INT64_MAX, &mb)) ||
	    (err = sb_json_get_int(j, "queueDepth", true, 1, UINT32_MAX, &qd)) ||
	    (err = sb_json_get_int(j, "timeoutMs", true, 1, INT64_MAX, &to)) ||
	    (err = sb_json_get_bool(j, "paperclip", false, &c->paperclip)) ||
	    (err = get_routes(json_object_get(j, "routes"), c)))
		goto out;
	c->upstream = sb_xstrdup(up);
	c->credential = cred ? sb_xstrdup(cred) : NULL;
	c->credential_header = ch ? sb_xstrdup(ch) : NULL;
	c->host_name = host ? sb_xstrdup(host) : NULL;
	c->max_body_bytes = (uint64_t)mb;
	c->queue_depth = (uint32_t)qd;
	c->timeout_ms = to;
	*out = c;
	c = NULL;
out:
	sb_callback_config_free(c);
	json_decref(j);
	return err;
}
