/* The egress proxy's addresses (DESIGN.md §9.10): the deny list of loopback, link-local and
 * private ranges (and the host's own addresses) checked on every address the proxy would
 * connect to, and the resolver (a hosts file for tests, else the system's). */
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

#define HOSTS_MAX_LINES 4096 /* hosts file lines kept */

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
		    sbpx_entry_matches_host(&p->entries[i], text, port))
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
			sbpx_lower(h->name);
			h->addr = ss;
		}
	}
	return NULL;
}

void sbpx_set_port(struct sockaddr_storage *ss, int port)
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
	if (sbpx_parse_addr(host, &fam, a)) {
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
		sbpx_set_port(&out[0], port);
		return 1;
	}
	if (p->use_hosts) {
		for (size_t i = 0; i < p->nhosts && n < max; i++)
			if (strcmp(p->hosts[i].name, host) == 0) {
				out[n] = p->hosts[i].addr;
				sbpx_set_port(&out[n], port);
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
		sbpx_set_port(&out[n], port);
		n++;
	}
	freeaddrinfo(res);
	return n;
}
