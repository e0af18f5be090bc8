/* The egress proxy's policy: allowlist entries and request rules, and the policy built from
 * an egress configuration. The addresses it denies and the resolver are in proxy_addr.c. */
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

#define ENTRY_MAX 1024 /* characters per entry */
#define HOSTS_MAX_BYTES (1u << 20)

void sbpx_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static bool name_char_ok(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

bool sbpx_name_ok(const char *s)
{
	if (!*s || strlen(s) > 253)
		return false;
	for (; *s; s++)
		if (!name_char_ok(*s))
			return false;
	return true;
}

static bool port_parse(const char *s, int *port)
{
	if (!*s || strlen(s) > 5)
		return false;
	int v = 0;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (*s - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*port = v;
	return true;
}

bool sbpx_split_hostport(const char *s, char *host, size_t hostlen, int *port, int defport)
{
	const char *colon;
	size_t hl;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end)
			return false;
		hl = (size_t)(end - s - 1);
		s++;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && end[1] != ':')
			return false;
	} else {
		colon = strrchr(s, ':');
		hl = colon ? (size_t)(colon - s) : strlen(s);
		if (colon && memchr(s, ':', hl))
			return false; /* a bare IPv6 literal needs brackets */
	}
	if (hl == 0 || hl >= hostlen)
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	sbpx_lower(host);
	if (!colon) {
		*port = defport;
		return defport > 0;
	}
	return port_parse(colon + 1, port);
}

void sbpx_entry_deinit(sbpx_entry *e)
{
	free(e->name);
	free(e->method);
	free(e->path);
	free(e->text);
	memset(e, 0, sizeof *e);
}

bool sbpx_parse_addr(const char *s, int *family, unsigned char *addr)
{
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

sb_err *sbpx_entry_parse(const char *text, sbpx_entry *out)
{
	memset(out, 0, sizeof *out);
	size_t n = strlen(text);
	if (n == 0 || n > ENTRY_MAX)
		return sb_err_new(SB_E_INVAL, "allowlist entry \"%.64s\" is empty or too long",
		                  text);
	char *copy = sb_xstrdup(text);
	char *words[4] = {0};
	int nw = 0;
	for (char *save = NULL, *w = strtok_r(copy, " \t", &save); w;
	     w = strtok_r(NULL, " \t", &save)) {
		if (nw == 3) {
			nw = 4;
			break;
		}
		words[nw++] = w;
	}
	sb_err *err = NULL;
	if (nw != 1 && nw != 3) {
		err = sb_err_new(
		    SB_E_INVAL,
		    "allowlist entry \"%s\": write HOST[:PORT], *.DOMAIN, an IP or CIDR, "
		    "or 'HOST METHOD /path-prefix'",
		    text);
		goto out;
	}
	out->text = sb_xstrdup(text);
	char *target = words[0];
	/* CIDR: a.b.c.d/n or v6/n (no port) */
	char *slash = strchr(target, '/');
	if (slash) {
		*slash = '\0';
		int max;
		if (!sbpx_parse_addr(target, &out->family, out->addr) ||
		    !port_parse(slash[1] ? slash + 1 : "x", &out->prefix) ||
		    out->prefix > (max = out->family == AF_INET ? 32 : 128)) {
			/* prefix 0 fails port_parse: /0 would allow everything, say so */
			err = sb_err_new(
			    SB_E_INVAL,
			    "allowlist entry \"%s\": a CIDR is ADDRESS/N with N from 1 to "
			    "32 (IPv4) or 128 (IPv6)",
			    text);
			goto out;
		}
		out->kind = SBPX_ADDR;
	} else {
		char host[256];
		int port = 0;
		const char *colon = strchr(target, ':');
		const char *portp = NULL;
		size_t hl;
		if (target[0] == '[') {
			const char *end = strchr(target, ']');
			if (!end || (end[1] && end[1] != ':')) {
				err = sb_err_new(SB_E_INVAL,
				                 "allowlist entry \"%s\": write [IPV6]:PORT", text);
				goto out;
			}
			hl = (size_t)(end - target - 1);
			target++;
			portp = end[1] ? end + 2 : NULL;
		} else if (colon && !strchr(colon + 1, ':')) {
			hl = (size_t)(colon - target);
			portp = colon + 1;
		} else {
			hl = strlen(target); /* a name, or a bare IPv6 address */
		}
		if (hl == 0 || hl >= sizeof host || (portp && !port_parse(portp, &port))) {
			err = sb_err_new(SB_E_INVAL,
			                 "allowlist entry \"%s\": bad host or port (1 to 65535)",
			                 text);
			goto out;
		}
		memcpy(host, target, hl);
		host[hl] = '\0';
		sbpx_lower(host);
		out->port = port;
		if (sbpx_parse_addr(host, &out->family, out->addr)) {
			out->kind = SBPX_ADDR;
			out->prefix = out->family == AF_INET ? 32 : 128;
		} else if (strncmp(host, "*.", 2) == 0 && sbpx_name_ok(host + 2) &&
		           strchr(host + 2, '.')) {
			out->kind = SBPX_WILD;
			out->name = sb_xstrdup(host + 1); /* ".example.com" */
		} else if (sbpx_name_ok(host)) {
			out->kind = SBPX_NAME;
			out->name = sb_xstrdup(host);
		} else {
			err = sb_err_new(SB_E_INVAL,
			                 "allowlist entry \"%s\": \"%s\" is not a host name, "
			                 "*.DOMAIN (with at least one dot), or an IP address",
			                 text, host);
			goto out;
		}
	}
	if (nw == 3) {
		const char *m = words[1], *path = words[2];
		bool mok = strlen(m) < 16 && *m;
		for (const char *c = m; *c && mok; c++)
			mok = isupper((unsigned char)*c);
		if (!mok || path[0] != '/' || out->kind == SBPX_ADDR) {
			err = sb_err_new(SB_E_INVAL,
			                 "allowlist entry \"%s\": a request rule is 'HOST METHOD "
			                 "/path-prefix' with an upper-case METHOD and a host name",
			                 text);
			goto out;
		}
		out->method = sb_xstrdup(m);
		out->path = sb_xstrdup(path);
	}
out:
	free(copy);
	if (err)
		sbpx_entry_deinit(out);
	return err;
}

bool sbpx_entry_matches_host(const sbpx_entry *e, const char *host, int port)
{
	if (e->port && e->port != port)
		return false;
	if (e->kind == SBPX_NAME)
		return strcmp(e->name, host) == 0;
	if (e->kind == SBPX_WILD) {
		size_t hl = strlen(host), sl = strlen(e->name);
		return hl > sl && strcmp(host + hl - sl, e->name) == 0;
	}
	int fam;
	unsigned char a[16];
	if (!sbpx_parse_addr(host, &fam, a) || fam != e->family)
		return false;
	int bits = e->prefix, full = bits / 8;
	if (memcmp(a, e->addr, (size_t)full) != 0)
		return false;
	if (bits % 8) {
		unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
		if ((a[full] & mask) != (e->addr[full] & mask))
			return false;
	}
	return true;
}

const sbpx_entry *sbpx_host_allowed(const sbpx_policy *p, const char *host, int port, bool *inspect)
{
	const sbpx_entry *first = NULL;
	bool plain = false;
	for (size_t i = 0; i < p->nentries; i++) {
		const sbpx_entry *e = &p->entries[i];
		if (!sbpx_entry_matches_host(e, host, port))
			continue;
		if (!first)
			first = e;
		if (!e->method)
			plain = true;
	}
	*inspect = first && !plain;
	return first;
}

bool sbpx_request_allowed(const sbpx_policy *p, const char *host, int port, const char *method,
                          const char *path)
{
	for (size_t i = 0; i < p->nentries; i++) {
		const sbpx_entry *e = &p->entries[i];
		if (!sbpx_entry_matches_host(e, host, port))
			continue;
		if (!e->method)
			return true;
		if (strcmp(e->method, method) == 0 &&
		    strncmp(path, e->path, strlen(e->path)) == 0) {
			/* a prefix ends at a segment boundary or the query: /v1 is not /v10 */
			size_t l = strlen(e->path);
			char next = path[l];
			if (e->path[l - 1] == '/' || next == '\0' || next == '/' || next == '?')
				return true;
		}
	}
	return false;
}

/* ---- policy */

static void push_addr(struct sockaddr_storage **v, size_t *n, const struct sockaddr *sa)
{
	*v = realloc(*v, (*n + 1) * sizeof **v);
	if (!*v)
		abort();
	memset(&(*v)[*n], 0, sizeof **v);
	memcpy(&(*v)[*n], sa,
	       sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	(*n)++;
}

sb_err *sbpx_policy_init(sbpx_policy *p, const sb_egress_config *c)
{
	memset(p, 0, sizeof *p);
	sb_err *err = NULL;
	size_t n = 0;
	while (c->allow && c->allow[n])
		n++;
	p->entries = sb_xcalloc(n ? n : 1, sizeof *p->entries);
	for (size_t i = 0; i < n; i++) {
		if ((err = sbpx_entry_parse(c->allow[i], &p->entries[i])))
			goto fail;
		p->nentries++;
	}
	for (size_t i = 0; i < c->nsecrets; i++) {
		/* a secret's host is allowlisted (its requests are terminated anyway) */
		const char *h = c->secrets[i].host;
		bool inspect;
		if (!h || !sbpx_name_ok(h))
			return sb_err_new(SB_E_INVAL, "secret for \"%s\": not a host name",
			                  h ? h : "");
		if (!sbpx_host_allowed(p, h, 443, &inspect)) {
			p->entries = realloc(p->entries, (p->nentries + 1) * sizeof *p->entries);
			if (!p->entries)
				abort();
			if ((err = sbpx_entry_parse(h, &p->entries[p->nentries])))
				goto fail;
			p->nentries++;
		}
	}
	if (c->hosts_file) {
		sb_buf b = SB_BUF_INIT;
		err = sb_read_file(c->hosts_file, HOSTS_MAX_BYTES, &b);
		if (!err)
			err = sbpx_hosts_parse(p, b.data ? b.data : "", b.len);
		sb_buf_deinit(&b);
		if (err) {
			err = sb_err_prefix(err, "proxy hosts file %s", c->hosts_file);
			goto fail;
		}
		p->use_hosts = true;
	}
	for (size_t i = 0; c->deny_listeners && c->deny_listeners[i]; i++) {
		char host[256];
		int port = 0;
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		if (!sbpx_split_hostport(c->deny_listeners[i], host, sizeof host, &port, 0) &&
		    port == 0)
			snprintf(host, sizeof host, "%s", c->deny_listeners[i]);
		struct sockaddr_in *s4 = (void *)&ss;
		struct sockaddr_in6 *s6 = (void *)&ss;
		if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
		} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
		} else {
			err = sb_err_new(SB_E_INVAL, "daemon listener \"%s\" is not ADDRESS[:PORT]",
			                 c->deny_listeners[i]);
			goto fail;
		}
		sbpx_set_port(&ss, port);
		/* a listener on 0.0.0.0 / :: answers on every address of the host: those are
		 * denied anyway (below), and loopback always */
		push_addr(&p->deny, &p->ndeny, (struct sockaddr *)&ss);
	}
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) == 0) {
		for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
			if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET ||
			                    i->ifa_addr->sa_family == AF_INET6))
				push_addr(&p->local, &p->nlocal, i->ifa_addr);
		freeifaddrs(ifa);
	}
	return NULL;
fail:
	sbpx_policy_deinit(p);
	return err;
}

void sbpx_policy_deinit(sbpx_policy *p)
{
	for (size_t i = 0; i < p->nentries; i++)
		sbpx_entry_deinit(&p->entries[i]);
	free(p->entries);
	for (size_t i = 0; i < p->nhosts; i++)
		free(p->hosts[i].name);
	free(p->hosts);
	free(p->deny);
	free(p->local);
	memset(p, 0, sizeof *p);
}
