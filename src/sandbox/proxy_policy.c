/* The egress proxy's policy: allowlist entries and request rules, the address deny list of
 * DESIGN.md §9.10 and the resolver (a hosts file for tests, else the system's). */
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

#define ENTRY_MAX 1024       /* characters per entry */
#define HOSTS_MAX_LINES 4096 /* hosts file lines kept */
#define HOSTS_MAX_BYTES (1u << 20)

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static bool name_char_ok(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

static bool name_ok(const char *s)
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
	lower(host);
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

static bool parse_addr(const char *s, int *family, unsigned char *addr)
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
		if (!parse_addr(target, &out->family, out->addr) ||
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
		lower(host);
		out->port = port;
		if (parse_addr(host, &out->family, out->addr)) {
			out->kind = SBPX_ADDR;
			out->prefix = out->family == AF_INET ? 32 : 128;
		} else if (strncmp(host, "*.", 2) == 0 && name_ok(host + 2) &&
		           strchr(host + 2, '.')) {
			out->kind = SBPX_WILD;
			out->name = sb_xstrdup(host + 1); /* ".example.com" */
		} else if (name_ok(host)) {
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

static bool entry_matches_host(const sbpx_entry *e, const char *host, int port)
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
	if (!parse_addr(host, &fam, a) || fam != e->family)
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
		if (!entry_matches_host(e, host, port))
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
		if (!entry_matches_host(e, host, port))
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

/* ---- addresses */

static bool v4_in(uint32_t a, uint32_t net, int bits)
{
	uint32_t mask = bits ? ~0u << (32 - bits) : 0;
	return (a & mask) == (net & mask);
}

static const char *v4_class(uint32_t a)
{
	static const struct {
		uint32_t net;
		int bits;
		const char *name;
	} ranges[] = {
	    {0x7f000000u, 8, "loopback (127.0.0.0/8)"},
	    {0xa9fe0000u, 16, "link-local (169.254.0.0/16, cloud metadata included)"},
	    {0x0a000000u, 8, "private (10.0.0.0/8)"},
	    {0xac100000u, 12, "private (172.16.0.0/12)"},
	    {0xc0a80000u, 16, "private (192.168.0.0/16)"},
	    {0x64400000u, 10, "shared address space (100.64.0.0/10)"},
	    {0x00000000u, 8, "\"this network\" (0.0.0.0/8)"},
	    {0xe0000000u, 4, "multicast (224.0.0.0/4)"},
	    {0xf0000000u, 4, "reserved (240.0.0.0/4, broadcast included)"},
	};
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
		if (v4_in(a, ranges[i].net, ranges[i].bits))
			return ranges[i].name;
	return NULL;
}

static const char *v6_class(const unsigned char *a)
{
	static const unsigned char zero[16];
	if (memcmp(a, zero, 15) == 0 && (a[15] == 1 || a[15] == 0))
		return a[15] ? "loopback (::1)" : "unspecified (::)";
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return "link-local (fe80::/10)";
	if ((a[0] & 0xfe) == 0xfc)
		return "unique local (fc00::/7)";
	if (a[0] == 0xff)
		return "multicast (ff00::/8)";
	return NULL;
}

/* Normalise v4-mapped IPv6 to IPv4 (the kernel connects those to the IPv4 address). */
static void norm(const struct sockaddr *sa, int *family, unsigned char *a, int *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;
		*family = AF_INET;
		memcpy(a, &s->sin_addr, 4);
		*port = ntohs(s->sin_port);
		return;
	}
	const struct sockaddr_in6 *s = (const void *)sa;
	*port = ntohs(s->sin6_port);
	if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr) || IN6_IS_ADDR_V4COMPAT(&s->sin6_addr)) {
		*family = AF_INET;
		memcpy(a, s->sin6_addr.s6_addr + 12, 4);
		return;
	}
	*family = AF_INET6;
	memcpy(a, &s->sin6_addr, 16);
}

void sbpx_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	int fam, port;
	unsigned char a[16];
	norm(sa, &fam, a, &port);
	if (!inet_ntop(fam, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

static bool same_addr(const struct sockaddr *x, const struct sockaddr *y, bool ports)
{
	int fx, fy, px, py;
	unsigned char ax[16], ay[16];
	norm(x, &fx, ax, &px);
	norm(y, &fy, ay, &py);
	if (fx != fy || memcmp(ax, ay, fx == AF_INET ? 4 : 16) != 0)
		return false;
	return !ports || px == 0 || py == 0 || px == py;
}

const char *sbpx_addr_denied(const sbpx_policy *p, const struct sockaddr *sa)
{
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return "not an internet address";
	for (size_t i = 0; i < p->ndeny; i++) {
		const struct sockaddr *d = (const struct sockaddr *)&p->deny[i];
		if (same_addr(sa, d, true))
			return "the sandbar daemon's own listener (never reachable from a sandbox)";
		/* a listener on 0.0.0.0 / :: answers on every address of this host */
		int df, dp, sf, sp;
		unsigned char da[16], sa_[16];
		static const unsigned char zero[16];
		norm(d, &df, da, &dp);
		norm(sa, &sf, sa_, &sp);
		if (memcmp(da, zero, df == AF_INET ? 4 : 16) == 0 && (dp == 0 || dp == sp)) {
			bool host = (sf == AF_INET && sa_[0] == 127) ||
			            (sf == AF_INET6 && memcmp(sa_, zero, 15) == 0 && sa_[15] == 1);
			for (size_t k = 0; k < p->nlocal && !host; k++)
				host = same_addr(sa, (const struct sockaddr *)&p->local[k], false);
			if (host)
				return "the sandbar daemon's own listener (never reachable from a "
				       "sandbox)";
		}
	}
	int fam, port;
	unsigned char a[16];
	norm(sa, &fam, a, &port);
	char text[INET6_ADDRSTRLEN];
	inet_ntop(fam, a, text, sizeof text);
	/* an explicit IP or CIDR entry lifts the range checks */
	for (size_t i = 0; i < p->nentries; i++)
		if (p->entries[i].kind == SBPX_ADDR &&
		    entry_matches_host(&p->entries[i], text, port))
			return NULL;
	uint32_t v4 = 0;
	if (fam == AF_INET)
		memcpy(&v4, a, 4);
	const char *cls = fam == AF_INET ? v4_class(ntohl(v4)) : v6_class(a);
	if (cls)
		return cls;
	for (size_t i = 0; i < p->nlocal; i++)
		if (same_addr(sa, (const struct sockaddr *)&p->local[i], false))
			return "an address of this host";
	return NULL;
}

/* ---- resolver */

sb_err *sbpx_hosts_parse(sbpx_policy *p, const char *text, size_t len)
{
	size_t cap = 0;
	const char *end = text + len;
	while (text < end) {
		const char *nl = memchr(text, '\n', (size_t)(end - text));
		size_t ll = nl ? (size_t)(nl - text) : (size_t)(end - text);
		char line[1024];
		if (ll >= sizeof line)
			return sb_err_new(SB_E_INVAL, "hosts file: a line is over %zu bytes",
			                  sizeof line - 1);
		memcpy(line, text, ll);
		line[ll] = '\0';
		text += ll + (nl ? 1 : 0);
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *save = NULL, *addr = strtok_r(line, " \t\r", &save);
		if (!addr)
			continue;
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		struct sockaddr_in *s4 = (void *)&ss;
		struct sockaddr_in6 *s6 = (void *)&ss;
		if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
			s4->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1)
			s6->sin6_family = AF_INET6;
		else
			return sb_err_new(SB_E_INVAL, "hosts file: \"%s\" is not an address", addr);
		for (char *name; (name = strtok_r(NULL, " \t\r", &save));) {
			if (p->nhosts == HOSTS_MAX_LINES)
				return sb_err_new(SB_E_INVAL, "hosts file: over %d names",
				                  HOSTS_MAX_LINES);
			if (p->nhosts == cap) {
				cap = cap ? cap * 2 : 16;
				p->hosts = realloc(p->hosts, cap * sizeof *p->hosts);
				if (!p->hosts)
					abort();
			}
			sbpx_hosts_line *h = &p->hosts[p->nhosts++];
			h->name = sb_xstrdup(name);
			lower(h->name);
			h->addr = ss;
		}
	}
	return NULL;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

size_t sbpx_resolve(const sbpx_policy *p, const char *host, int port, struct sockaddr_storage *out,
                    size_t max, const char **why)
{
	size_t n = 0;
	int fam;
	unsigned char a[16];
	*why = "the name does not resolve";
	if (parse_addr(host, &fam, a)) {
		memset(&out[0], 0, sizeof out[0]);
		if (fam == AF_INET) {
			struct sockaddr_in *s = (void *)&out[0];
			s->sin_family = AF_INET;
			memcpy(&s->sin_addr, a, 4);
		} else {
			struct sockaddr_in6 *s = (void *)&out[0];
			s->sin6_family = AF_INET6;
			memcpy(&s->sin6_addr, a, 16);
		}
		set_port(&out[0], port);
		return 1;
	}
	if (p->use_hosts) {
		for (size_t i = 0; i < p->nhosts && n < max; i++)
			if (strcmp(p->hosts[i].name, host) == 0) {
				out[n] = p->hosts[i].addr;
				set_port(&out[n], port);
				n++;
			}
		if (!n)
			*why = "the name is not in the proxy's hosts file";
		return n;
	}
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc) {
		*why = gai_strerror(rc);
		return 0;
	}
	for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memset(&out[n], 0, sizeof out[n]);
		memcpy(&out[n], ai->ai_addr, ai->ai_addrlen);
		set_port(&out[n], port);
		n++;
	}
	freeaddrinfo(res);
	return n;
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
		if (!h || !name_ok(h))
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
		set_port(&ss, port);
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
		if (!s->header || !*s->header || !name_ok(s->header) || !s->value_ref ||
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
	memset(s, 0, sizeof *s);
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
	lower(out->host);
	out->header = sb_xstrndup(eq + 1, (size_t)(colon - eq - 1));
	out->placeholder_env = sb_xstrdup(colon + 1);
	out->value_ref = sb_strfmt("env:%s", colon + 1);
	bool envok = true;
	for (const char *c = colon + 1; *c; c++)
		envok &= isalnum((unsigned char)*c) || *c == '_';
	if (!name_ok(out->host) || !name_ok(out->header) || !envok) {
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
