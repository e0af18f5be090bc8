/* The public side of the network policy (<sandbar/sandbox.h>): network mode names, checking,
 * copying and freeing an egress configuration, and parsing --secret HOST=HEADER:ENV. */
#include "proxy_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- config helpers (public) */

const char *sb_net_mode_name(sb_net_mode m)
{
	return m == SB_NET_FULL ? "full" : m == SB_NET_ALLOWLIST ? "allowlist" : "none";
}

int sb_net_mode_parse(const char *s)
{
	if (strcmp(s, "none") == 0 || strcmp(s, "false") == 0)
		return SB_NET_NONE;
	if (strcmp(s, "allowlist") == 0)
		return SB_NET_ALLOWLIST;
	if (strcmp(s, "full") == 0 || strcmp(s, "true") == 0)
		return SB_NET_FULL;
	return -1;
}

sb_err *sb_egress_config_check(const sb_egress_config *c)
{
	sbpx_policy p;
	sb_egress_config shallow = *c;
	shallow.hosts_file = NULL; /* read when the proxy starts */
	sb_err *err = sbpx_policy_init(&p, &shallow);
	if (!err)
		sbpx_policy_deinit(&p);
	for (size_t i = 0; !err && i < c->nsecrets; i++) {
		const sb_egress_secret *s = &c->secrets[i];
		if (!s->header || !*s->header || !sbpx_name_ok(s->header) || !s->value_ref ||
		    (strncmp(s->value_ref, "env:", 4) != 0 &&
		     strncmp(s->value_ref, "file:", 5) != 0))
			err = sb_err_new(
			    SB_E_INVAL,
			    "secret for %s: needs a header name and a value from env:VAR "
			    "or file:PATH",
			    s->host);
	}
	return err;
}

static char *dup0(const char *s)
{
	return s ? sb_xstrdup(s) : NULL;
}

sb_egress_config *sb_egress_config_copy(const sb_egress_config *c)
{
	sb_egress_config *o = sb_xcalloc(1, sizeof *o);
	for (size_t i = 0; c->allow && c->allow[i]; i++)
		sb_strv_push(&o->allow, c->allow[i]);
	for (size_t i = 0; c->deny_listeners && c->deny_listeners[i]; i++)
		sb_strv_push(&o->deny_listeners, c->deny_listeners[i]);
	o->hosts_file = dup0(c->hosts_file);
	o->upstream_ca = dup0(c->upstream_ca);
	if (c->nsecrets) {
		o->secrets = sb_xcalloc(c->nsecrets, sizeof *o->secrets);
		o->nsecrets = c->nsecrets;
		for (size_t i = 0; i < c->nsecrets; i++) {
			o->secrets[i].host = dup0(c->secrets[i].host);
			o->secrets[i].header = dup0(c->secrets[i].header);
			o->secrets[i].value_ref = dup0(c->secrets[i].value_ref);
			o->secrets[i].placeholder_env = dup0(c->secrets[i].placeholder_env);
			o->secrets[i].name = dup0(c->secrets[i].name);
		}
	}
	return o;
}

void sb_egress_secret_deinit(sb_egress_secret *s)
{
	free(s->host);
	free(s->header);
	free(s->value_ref);
	free(s->placeholder_env);
	free(s->name);
	memset(s, 0, sizeof *s);
}

/* ---- the operator's named secrets (DESIGN.md §9.11) */

void sb_egress_secret_entry_deinit(sb_egress_secret_entry *e)
{
	free(e->name);
	sb_strv_free(e->hosts);
	free(e->header);
	free(e->value_ref);
	free(e->placeholder_env);
	memset(e, 0, sizeof *e);
}

static bool env_name_ok(const char *s)
{
	if (!*s || strlen(s) > 128 || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

sb_err *sb_egress_secret_entry_check(const sb_egress_secret_entry *e)
{
	size_t n = e->name ? strlen(e->name) : 0;
	bool ok = n > 0 && n <= 64;
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)e->name[i]) || e->name[i] == '-' || e->name[i] == '_';
	if (!ok)
		return sb_err_new(SB_E_INVAL, "secret names are [A-Za-z0-9_-]{1,64}, not \"%s\"",
		                  e->name ? e->name : "");
	if (!e->value_ref ||
	    (strncmp(e->value_ref, "env:", 4) != 0 && strncmp(e->value_ref, "file:", 5) != 0) ||
	    (strncmp(e->value_ref, "env:", 4) == 0 && !env_name_ok(e->value_ref + 4)) ||
	    (strncmp(e->value_ref, "file:", 5) == 0 && e->value_ref[5] != '/'))
		return sb_err_new(SB_E_INVAL,
		                  "secret %s: the value is env:VAR or file:/ABSOLUTE/PATH (the "
		                  "config file holds no secret values)",
		                  e->name);
	if (!e->hosts || !e->hosts[0])
		return sb_err_new(
		    SB_E_INVAL, "secret %s: pin it to its hosts with secret.%s.hosts = HOST[, ...]",
		    e->name, e->name);
	for (size_t i = 0; e->hosts[i]; i++)
		if (!sbpx_name_ok(e->hosts[i]) || strchr(e->hosts[i], '*'))
			return sb_err_new(SB_E_INVAL, "secret %s: \"%s\" is not a host name",
			                  e->name, e->hosts[i]);
	if (e->header && !sbpx_name_ok(e->header))
		return sb_err_new(SB_E_INVAL, "secret %s: \"%s\" is not a header name", e->name,
		                  e->header);
	if (e->placeholder_env && !env_name_ok(e->placeholder_env))
		return sb_err_new(SB_E_INVAL, "secret %s: \"%s\" is not a variable name", e->name,
		                  e->placeholder_env);
	return NULL;
}

sb_err *sb_egress_config_add_named(sb_egress_config *c, const sb_egress_secret_entry *entries,
                                   size_t n, const char *name)
{
	const sb_egress_secret_entry *e = NULL;
	for (size_t i = 0; i < n && !e; i++)
		if (strcmp(entries[i].name, name) == 0)
			e = &entries[i];
	if (!e)
		return sb_err_new(SB_E_NOTFOUND,
		                  "no secret \"%.64s\" in the operator's config (a [serve] "
		                  "secret.NAME entry)",
		                  name);
	size_t k = sb_strv_len(e->hosts);
	c->secrets = sb_xrealloc(c->secrets, (c->nsecrets + k) * sizeof *c->secrets);
	for (size_t i = 0; i < k; i++) {
		sb_egress_secret *s = &c->secrets[c->nsecrets++];
		memset(s, 0, sizeof *s);
		s->host = sb_xstrdup(e->hosts[i]);
		sbpx_lower(s->host);
		s->header = sb_xstrdup(e->header ? e->header : "authorization");
		s->value_ref = sb_xstrdup(e->value_ref);
		const char *ph = e->placeholder_env                      ? e->placeholder_env
		                 : strncmp(e->value_ref, "env:", 4) == 0 ? e->value_ref + 4
		                                                         : NULL;
		s->placeholder_env = ph ? sb_xstrdup(ph) : NULL;
		s->name = sb_xstrdup(e->name);
	}
	return NULL;
}

void sb_egress_config_free(sb_egress_config *c)
{
	if (!c)
		return;
	sb_strv_free(c->allow);
	sb_strv_free(c->deny_listeners);
	free(c->hosts_file);
	free(c->upstream_ca);
	for (size_t i = 0; i < c->nsecrets; i++)
		sb_egress_secret_deinit(&c->secrets[i]);
	free(c->secrets);
	free(c);
}

sb_err *sb_egress_secret_parse(const char *spec, sb_egress_secret *out)
{
	memset(out, 0, sizeof *out);
	const char *eq = strchr(spec, '='), *colon = eq ? strchr(eq + 1, ':') : NULL;
	if (!eq || !colon || eq == spec || colon == eq + 1 || !colon[1] || strlen(spec) > 512)
		return sb_err_new(SB_E_INVAL,
		                  "secret \"%s\": write HOST=HEADER:ENV, e.g. "
		                  "api.anthropic.com=x-api-key:ANTHROPIC_API_KEY",
		                  spec);
	out->host = sb_xstrndup(spec, (size_t)(eq - spec));
	sbpx_lower(out->host);
	out->header = sb_xstrndup(eq + 1, (size_t)(colon - eq - 1));
	out->placeholder_env = sb_xstrdup(colon + 1);
	out->value_ref = sb_strfmt("env:%s", colon + 1);
	bool envok = true;
	for (const char *c = colon + 1; *c; c++)
		envok &= isalnum((unsigned char)*c) || *c == '_';
	if (!sbpx_name_ok(out->host) || !sbpx_name_ok(out->header) || !envok) {
		sb_egress_secret_deinit(out);
		return sb_err_new(
		    SB_E_INVAL,
		    "secret \"%s\": HOST must be a host name, HEADER a header name and "
		    "ENV a variable name",
		    spec);
	}
	return NULL;
}

void sb_egress_stats_deinit(sb_egress_stats *s)
{
	sb_strv_free(s->denied);
	memset(s, 0, sizeof *s);
}
